"""Exceptions raised by the numerical core."""

from __future__ import annotations

__all__ = ["SolveError"]


class SolveError(RuntimeError):
    """A convex solve did not reach a certified optimum (after every fallback and polish).

    Attributes
    ----------
    attempts : list of tuple
        ``(solver, status or error message)`` for every attempt, in order.
    gap : float or None
        The smallest relative duality gap any attempt reached (``inf`` when none produced a
        point; None when not applicable).
    """

    def __init__(self, message: str, attempts: list[tuple[str, str]] | None = None,
                 gap: float | None = None):
        super().__init__(message)
        self.attempts = list(attempts or [])
        self.gap = gap
