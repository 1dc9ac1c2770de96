"""Optimisation failures that both skfolio's and this project's handlers catch.

Each class subclasses skfolio's ``ConvexOptimizationError`` (so ``skfolio.exceptions.
OptimizationError`` and ``cvxpy.SolverError`` catch it, and skfolio's fallback machinery treats
it as an optimisation failure) and the matching core class (so ``except
xl_factorlasso.InfeasibleProblemError`` catches it too).

The message of an infeasible or failed solve is skfolio's own sentence, word for word, because
skfolio's users (and its tests) compare ``error_`` and ``fallback_chain_`` with it. The core's
diagnosis, which names the constraints that conflict, is kept in ``diagnosis`` (and
``conflicts`` / ``status``) and shown under the message in a traceback (an exception note).
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


def translate(error: _core.OptimizationError, solver: str) -> ConvexOptimizationError:
    """The skfolio-facing class for a core failure: skfolio's message for ``solver``, the
    core's message as ``diagnosis`` and a note, the same ``conflicts`` / ``status``."""
    diagnosis = str(error)
    message = (f"Solver '{solver}' failed. Try another solver, or solve with "
               "solver_params=dict(verbose=True) for more information")
    if isinstance(error, _core.InfeasibleProblemError):
        out = InfeasibleProblemError(message, conflicts=error.conflicts)
    elif isinstance(error, _core.SolverFailedError):
        out = SolverFailedError(message, status=error.status)
    else:  # the core's other failures have no skfolio counterpart: keep their message
        out = ConvexOptimizationError(diagnosis)
    out.diagnosis = diagnosis
    if out.args[0] != diagnosis and hasattr(out, "add_note"):  # Python >= 3.11
        out.add_note(diagnosis)
    return out
