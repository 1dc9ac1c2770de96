"""Sparse multi-output factor regression."""

from ._auto_signs import derive_sign_constraints, validate_cluster_signs
from ._engine import EngineResult, FastEngine, solve_fast
from ._expert_map import ExpertPriorResolution, map_expert_factor_priors
from ._expert_statistics import compute_expert_prior_statistics
from ._lasso_model import LassoEstimationResult, LassoModel, lambda_max
from ._model_type import LassoModelType
from ._penalty import PenaltySpec, penalty_value
from ._preparation import PreparedPanel, SufficientStats, coerce_panel, prepare_panel


def __getattr__(name):
    # The CVXPY reference model is loaded on first use, so the default fast path runs
    # without importing CVXPY.
    if name == "LassoProblem":
        from ._formulation import LassoProblem

        return LassoProblem
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "EngineResult",
    "ExpertPriorResolution",
    "FastEngine",
    "LassoEstimationResult",
    "LassoModel",
    "LassoModelType",
    "LassoProblem",
    "PenaltySpec",
    "PreparedPanel",
    "SufficientStats",
    "coerce_panel",
    "compute_expert_prior_statistics",
    "derive_sign_constraints",
    "lambda_max",
    "map_expert_factor_priors",
    "penalty_value",
    "prepare_panel",
    "solve_fast",
    "validate_cluster_signs",
]
