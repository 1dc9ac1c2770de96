"""Factor-model covariance assembly."""

from ._factor_covariance import FactorCovariance, assemble_factor_covariance

__all__ = ["FactorCovariance", "assemble_factor_covariance"]
