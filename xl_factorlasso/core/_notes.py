"""Notes: the UserWarnings a fit raises for its user, recorded instead where a caller asks.

A rolling fit runs its dates in worker processes or in the threads of a Dask worker, where a
warning is printed on the worker's console and never reaches the user, and where
``warnings.catch_warnings`` (process-wide state) cannot tell two threads' warnings apart.
Inside :func:`recorded` the fit's own notes go to a list held by a context variable (one per
thread, and per asyncio task), which the caller returns with its results; elsewhere they are
ordinary ``warnings.warn`` calls, as before. :func:`dated_notes` words the notes of many
dates (a rolling fit's, a backtest's optimisations') as one warning each, with their dates.
:func:`user_warnings` collects the UserWarnings of any code run in a block (a backtest's
optimisations, a workbook job's fit): the notes of steps that run in this process.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import pandas as pd

__all__ = ["dated_notes", "names_text", "note", "recorded", "user_warnings"]

_SINK: ContextVar[list[tuple[type[Warning], str]] | None] = ContextVar(
    "xl_factorlasso_notes", default=None)


def names_text(names, limit: int = 10) -> str:
    """``a, b, c ...``: the first ``limit`` names of a note as a reader writes them (a
    workbook shows the notes in FL_STATUS, where ``['a', 'b']`` would be a Python repr)."""
    names = list(names)
    return ", ".join(map(str, names[:limit])) + (" ..." if len(names) > limit else "")


def note(message: str, category: type[Warning] = UserWarning, stacklevel: int = 1) -> None:
    """``warnings.warn(message, category, stacklevel)`` (``stacklevel`` counted from the
    caller), or, inside :func:`recorded`, ``(category, message)`` appended to its list."""
    sink = _SINK.get()
    if sink is None:
        warnings.warn(message, category, stacklevel=stacklevel + 1)
    else:
        sink.append((category, message))


@contextmanager
def recorded() -> Iterator[list[tuple[type[Warning], str]]]:
    """The notes raised in this thread inside the block, as ``(category, message)`` in order
    (repeats included), instead of warnings."""
    sink: list[tuple[type[Warning], str]] = []
    token = _SINK.set(sink)
    try:
        yield sink
    finally:
        _SINK.reset(token)


@contextmanager
def user_warnings(others: str = "pass") -> Iterator[list[tuple[type[Warning], str]]]:
    """The UserWarnings raised inside the block, by any code, each ``(category, message)``
    once in order of first appearance (folds and dates repeat them), in the list it yields,
    filled when the block ends.

    Parameters
    ----------
    others : {"pass", "drop"}
        What becomes of the other warnings (NumPy's RuntimeWarnings, deprecations): warned
        again when the block ends, under the filters in force, or dropped (a workbook job,
        which has no console to show them).

    ``warnings.catch_warnings`` is process-wide: two such blocks running at once in threads can
    lose or swap warnings (:func:`recorded` keeps a fit's own notes per thread).
    """
    if others not in ("pass", "drop"):
        raise ValueError(f"others must be 'pass' or 'drop', got {others!r}")
    out: list[tuple[type[Warning], str]] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield out
        finally:
            kept = [w for w in caught if issubclass(w.category, UserWarning)]
            out.extend(dict.fromkeys((w.category, str(w.message)) for w in kept))
    if others == "pass":  # (outside the block: under the caller's filters again)
        for w in caught:
            if not issubclass(w.category, UserWarning):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def dated_notes(notes: list[tuple[pd.Timestamp, type[Warning], str]], n_dates: int
                ) -> list[tuple[type[Warning], str]]:
    """Each distinct ``(category, message)`` of ``notes`` (``(date, category, message)`` in
    date order) once, in order of first appearance, its message prefixed with the dates it
    was raised at (of ``n_dates``): the same whether the dates ran serially, in processes or
    on a cluster."""
    at: dict[tuple[type[Warning], str], list[pd.Timestamp]] = {}
    for date, category, message in notes:
        dates = at.setdefault((category, message), [])
        if not dates or dates[-1] != date:  # a note repeated within one date counts once
            dates.append(date)
    out = []
    for (category, message), dates in at.items():
        shown = [str(d.date()) for d in dates]
        if len(shown) == 1:
            where = f"rebalancing date {shown[0]}"
        elif len(shown) == n_dates:
            where = f"every rebalancing date ({n_dates}, {shown[0]} to {shown[-1]})"
        elif len(shown) <= 3:
            where = f"rebalancing dates {', '.join(shown[:-1])} and {shown[-1]}"
        else:
            where = f"{len(shown)} of {n_dates} rebalancing dates, from {shown[0]} to {shown[-1]}"
        out.append((category, f"{where}: {message}"))
    return out
