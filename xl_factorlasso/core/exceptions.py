"""Exceptions raised by the numerical core."""

from __future__ import annotations

__all__ = ["SolveError"]


class SolveError(RuntimeError):
    """A convex solve did not reach an optimal solution (after every fallback solver).

    Attributes
    ----------
    attempts : list of tuple
        ``(solver, status or error message)`` for every solver tried, in order.
    """

    def __init__(self, message: str, attempts: list[tuple[str, str]] | None = None):
        super().__init__(message)
        self.attempts = list(attempts or [])
