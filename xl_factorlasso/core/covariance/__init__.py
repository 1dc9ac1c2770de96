"""Factor-model covariance assembly and risk attribution."""

from ._attribution import RiskAttribution, covariance_risk_attribution, risk_attribution
from ._factor_covariance import FactorCovariance, assemble_factor_covariance

__all__ = [
    "FactorCovariance",
    "RiskAttribution",
    "assemble_factor_covariance",
    "covariance_risk_attribution",
    "risk_attribution",
]
