"""Portfolio optimisation: the maximum-diversification estimator and its helpers."""

from ._base import NotFittedError
from ._dense import SolveReport
from ._equations import (
    Equation,
    LinearConstraints,
    equations_to_matrix,
    format_equation,
    parse_equation,
)
from ._exceptions import (
    EquationError,
    InfeasibleProblemError,
    OptimizationError,
    SolverFailedError,
)
from ._maximum_diversification import MaximumDiversification
from ._polish import PolishReport
from ._portfolio import Population, Portfolio
from ._risk import ewma_covariance, ewma_effective_sample

__all__ = [
    "Equation",
    "EquationError",
    "InfeasibleProblemError",
    "LinearConstraints",
    "MaximumDiversification",
    "NotFittedError",
    "OptimizationError",
    "PolishReport",
    "Population",
    "Portfolio",
    "SolveReport",
    "SolverFailedError",
    "equations_to_matrix",
    "ewma_covariance",
    "ewma_effective_sample",
    "format_equation",
    "parse_equation",
]
