"""Exceptions raised by the numerical core.

Each is also an instance of the class factorlasso 1.0.6 raises in the same situation, so code
written against factorlasso keeps catching them:

* an unfitted model: factorlasso raises ``RuntimeError``; :class:`ModelNotFittedError` is
  both that and the ``ValueError`` this project raised before;
* bad input: ``ValueError`` in both;
* a failed solve: factorlasso lets CVXPY's ``cvxpy.error.SolverError`` escape;
  :class:`SolveError` is a ``RuntimeError`` and, whenever CVXPY is imported, also a
  ``cvxpy.error.SolverError`` (see :class:`SolveError`).
"""

from __future__ import annotations

import sys

__all__ = ["ModelNotFittedError", "SolveError"]


class ModelNotFittedError(ValueError, RuntimeError):
    """A fitted model was needed (``predict``, ``summary``, ...) before ``fit`` was called.

    A ``ValueError`` (this project's error before) and a ``RuntimeError`` (what factorlasso
    1.0.6 raises), so either ``except`` clause catches it.
    """


class SolveError(RuntimeError):
    """A convex solve did not reach a certified optimum (after every fallback and polish).

    When CVXPY is imported at the moment the error is raised, the instance is also a
    ``cvxpy.error.SolverError`` (the class factorlasso lets escape on a failed solve). Code
    that names ``cvxpy.error.SolverError`` in an ``except`` clause has imported CVXPY, so it
    catches this error; the default fast path, which never imports CVXPY, is not made to.

    Attributes
    ----------
    attempts : list of tuple
        ``(solver, status or error message)`` for every attempt, in order.
    gap : float or None
        The smallest relative duality gap any attempt reached (``inf`` when none produced a
        point; None when not applicable).
    """

    def __new__(cls, *args, **kwargs):
        return super().__new__(_with_cvxpy_base(cls), *args, **kwargs)

    def __init__(self, message: str, attempts: list[tuple[str, str]] | None = None,
                 gap: float | None = None):
        super().__init__(message)
        self.attempts = list(attempts or [])
        self.gap = gap

    def __reduce__(self):
        # Rebuilt from the named class: the CVXPY mix-in is not importable by name.
        base = type(self)._plain if hasattr(type(self), "_plain") else type(self)
        return base, self.args, self.__dict__


_MIXED: dict[type, type] = {}


def _with_cvxpy_base(cls: type) -> type:
    """``cls``, or (CVXPY loaded) a subclass of it and ``cvxpy.error.SolverError``."""
    error_module = sys.modules.get("cvxpy.error")
    solver_error = getattr(error_module, "SolverError", None)
    if solver_error is None or issubclass(cls, solver_error):
        return cls
    if cls not in _MIXED:
        _MIXED[cls] = type(cls.__name__, (cls, solver_error), {
            "__module__": cls.__module__, "__qualname__": cls.__qualname__, "_plain": cls,
            "__doc__": cls.__doc__})
    return _MIXED[cls]
