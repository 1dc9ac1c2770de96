"""Sparse multi-output factor regression."""

from ._engine import EngineResult, FastEngine, solve_fast
from ._formulation import LassoProblem, PenaltySpec, penalty_value
from ._lasso_model import LassoEstimationResult, LassoModel, lambda_max
from ._model_type import LassoModelType
from ._preparation import PreparedPanel, SufficientStats, coerce_panel, prepare_panel

__all__ = [
    "EngineResult",
    "FastEngine",
    "LassoEstimationResult",
    "LassoModel",
    "LassoModelType",
    "LassoProblem",
    "PenaltySpec",
    "PreparedPanel",
    "SufficientStats",
    "coerce_panel",
    "lambda_max",
    "penalty_value",
    "prepare_panel",
    "solve_fast",
]
