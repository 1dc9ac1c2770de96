"""Optimisation failures that both skfolio's and this project's handlers catch.

Each class subclasses skfolio's ``ConvexOptimizationError`` (so ``skfolio.exceptions.
OptimizationError`` and ``cvxpy.SolverError`` catch it, and skfolio's fallback machinery treats
it as an optimisation failure) and the matching core class (so ``except
xl_factorlasso.InfeasibleProblemError`` catches it too). The message is the core's: it names
the conflicting constraints, where skfolio's says only that the solver failed.
"""

from __future__ import annotations

from skfolio.exceptions import ConvexOptimizationError as _SkfolioConvexError

from ..core.optimization import _exceptions as _core

__all__ = ["ConvexOptimizationError", "InfeasibleProblemError", "SolverFailedError", "translate"]


class ConvexOptimizationError(_SkfolioConvexError, _core.OptimizationError):
    """The optimisation did not produce a valid portfolio (skfolio's and the core's class)."""


class InfeasibleProblemError(ConvexOptimizationError, _core.InfeasibleProblemError):
    """No portfolio satisfies the constraints; ``conflicts`` names them."""


class SolverFailedError(ConvexOptimizationError, _core.SolverFailedError):
    """The solver failed numerically or returned an invalid point; ``status`` is CVXPY's."""


def translate(error: _core.OptimizationError) -> ConvexOptimizationError:
    """The skfolio-facing class for a core failure, with the same message and attributes."""
    if isinstance(error, _core.InfeasibleProblemError):
        return InfeasibleProblemError(str(error), conflicts=error.conflicts)
    if isinstance(error, _core.SolverFailedError):
        return SolverFailedError(str(error), status=error.status)
    return ConvexOptimizationError(str(error))
