"""Exceptions raised by the optimisers.

Invalid *inputs* always raise :class:`ValueError` (or :class:`EquationError`, a subclass).
A failed *optimisation* raises a subclass of :class:`OptimizationError`; only those trigger
``fallback`` and are swallowed by ``raise_on_failure=False``.
"""

from __future__ import annotations

# Only the optimisation package imports this module, and it loads CVXPY anyway.
import cvxpy as cp

__all__ = [
    "EquationError",
    "rescued_message",
    "InfeasibleProblemError",
    "OptimizationError",
    "SolverFailedError",
]


class EquationError(ValueError):
    """A linear-constraint string that cannot be parsed; the message quotes the string."""


class OptimizationError(cp.error.SolverError, RuntimeError):
    """The optimisation did not produce a valid portfolio.

    Also a ``cvxpy.error.SolverError`` (itself an ``Exception``), so code written for skfolio,
    which catches ``cvxpy.SolverError`` around an optimiser's ``fit``, catches it too.
    """


class InfeasibleProblemError(OptimizationError):
    """No portfolio satisfies the constraints.

    Attributes
    ----------
    conflicts : tuple of str
        Names of the constraints that cannot hold together. For the linear constraints this is
        an irreducible set: dropping any one of them makes the others feasible.
    """

    def __init__(self, message: str, conflicts: tuple[str, ...] = ()):
        super().__init__(message)
        self.conflicts = tuple(conflicts)


class SolverFailedError(OptimizationError):
    """The solver failed numerically, or returned a solution that violates the constraints.

    Attributes
    ----------
    status : str or None
        The CVXPY status reported by the solver, if any.
    """

    def __init__(self, message: str, status: str | None = None):
        super().__init__(message)
        self.status = status


def rescued_message(owner: str, error: str, fallback: str, n_failed: int) -> str:
    """The warning when a fallback rescues ``owner`` (e.g. ``"MaximumDiversification.fit"``)
    from ``error``: the weights are not the ones asked for. Shared by the core estimator and
    the skfolio-facing one, so both say it the same way."""
    before = f" after {n_failed} other fallback(s) failed" if n_failed else ""
    return (f"{owner} failed ({error.rstrip('.')}); the weights come from the fallback "
            f"{fallback}{before}. See fallback_chain_.")
