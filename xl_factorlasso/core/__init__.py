"""Numerical core: estimators and statistics, no knowledge of Excel.

Public names are re-exported here and from :mod:`xl_factorlasso`.
"""

from .backtest import MaxDiversificationBacktest
from .cluster import (
    ClusterCorrelationTransform,
    ClusterCorrelationTransformResult,
    ClusterResult,
    DependenceMeasure,
    DistanceTransform,
    apply_cluster_correlation_transform,
    cluster_from_correlation,
    compute_clusters_from_corr_matrix,
    compute_dependence_matrix,
    compute_gerber_matrix,
    ewm_correlation,
    ewm_covariance,
    ewm_lambda,
    ewm_mean,
    remove_first_principal_component,
    response_correlation,
)
from .covariance import (
    FactorCovariance,
    RiskAttribution,
    assemble_factor_covariance,
    covariance_risk_attribution,
    risk_attribution,
)
from .datasets import FactorPanel, load_demo_panel, make_factor_panel
from .exceptions import ModelNotFittedError, SolveError
from .linear_model import (
    ExpertPriorResolution,
    LassoEstimationResult,
    LassoModel,
    LassoModelType,
    compute_expert_prior_statistics,
    derive_sign_constraints,
    lambda_max,
    map_expert_factor_priors,
    validate_cluster_signs,
)
from .model_selection import LassoModelCV, default_lambda_grid, expanding_window_splits
from .preprocessing import PricesError, prices_to_returns
from .rolling import (
    CurrentFactorCovarData,
    RollingFactorCovarData,
    RollingLassoModel,
    stable_cluster_labels,
)
from .utils import compute_ewm, compute_ewm_covar, get_x_y_np, set_group_loadings

# The optimisation names are loaded on first use: they import CVXPY (~50 MB, ~0.5 s),
# which a fit with the default fast engine never needs.
_OPTIMIZATION_NAMES = (
    "EquationError",
    "InfeasibleProblemError",
    "MaximumDiversification",
    "OptimizationError",
    "PolishReport",
    "Population",
    "Portfolio",
    "SolveReport",
    "SolverFailedError",
    "parse_equation",
)


def __getattr__(name):
    if name in _OPTIMIZATION_NAMES:
        from . import optimization

        value = getattr(optimization, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_OPTIMIZATION_NAMES))


__all__ = [
    *_OPTIMIZATION_NAMES,
    "ClusterCorrelationTransform",
    "ClusterCorrelationTransformResult",
    "ClusterResult",
    "CurrentFactorCovarData",
    "DependenceMeasure",
    "DistanceTransform",
    "ExpertPriorResolution",
    "FactorCovariance",
    "FactorPanel",
    "LassoEstimationResult",
    "LassoModel",
    "LassoModelCV",
    "LassoModelType",
    "MaxDiversificationBacktest",
    "ModelNotFittedError",
    "PricesError",
    "RiskAttribution",
    "RollingFactorCovarData",
    "RollingLassoModel",
    "SolveError",
    "apply_cluster_correlation_transform",
    "assemble_factor_covariance",
    "cluster_from_correlation",
    "compute_clusters_from_corr_matrix",
    "compute_dependence_matrix",
    "compute_expert_prior_statistics",
    "compute_ewm",
    "compute_ewm_covar",
    "compute_gerber_matrix",
    "covariance_risk_attribution",
    "default_lambda_grid",
    "derive_sign_constraints",
    "ewm_correlation",
    "ewm_covariance",
    "ewm_lambda",
    "ewm_mean",
    "expanding_window_splits",
    "get_x_y_np",
    "lambda_max",
    "load_demo_panel",
    "make_factor_panel",
    "map_expert_factor_priors",
    "prices_to_returns",
    "remove_first_principal_component",
    "response_correlation",
    "risk_attribution",
    "set_group_loadings",
    "stable_cluster_labels",
    "validate_cluster_signs",
]
