"""Rebalancing dates and estimation windows of a rolling fit (positions in the data's index).

A rebalancing date is always a row of the data: from a pandas frequency it is the last row of
each period (the last period may be incomplete: its last row is then the date); an explicit
date that is not a row maps to the last row at or before it. A window is the run of rows
``[first, last]`` that ends at the date's row, so nothing after the date is ever read.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["RebalanceDate", "check_index", "rebalance_positions", "window_start"]


@dataclass(frozen=True)
class RebalanceDate:
    """One requested rebalancing date and the row it maps to (``position`` None: no row at or
    before it)."""

    requested: pd.Timestamp
    position: int | None


def check_index(index: pd.Index, what: str = "x") -> pd.DatetimeIndex:
    """The index as a strictly increasing :class:`pandas.DatetimeIndex`, or a ValueError."""
    if not isinstance(index, pd.DatetimeIndex):
        raise ValueError(f"{what}: the index must be dates (a DatetimeIndex), "
                         f"got {type(index).__name__}")
    if index.hasnans:
        raise ValueError(f"{what}: the index has a missing date")
    if not index.is_monotonic_increasing or not index.is_unique:
        bad = np.flatnonzero(np.diff(index.asi8) <= 0)[0] + 1
        raise ValueError(f"{what}: dates must be strictly increasing; row {bad} "
                         f"({index[bad].date()}) does not follow {index[bad - 1].date()}")
    return index


def rebalance_positions(index: pd.DatetimeIndex, rebalance) -> list[RebalanceDate]:
    """The rebalancing dates of ``rebalance`` on ``index``, in time order, without duplicates.

    Parameters
    ----------
    index : pandas.DatetimeIndex
        Strictly increasing row dates.
    rebalance : str or sequence of date-like
        A pandas frequency ("W-FRI", "ME", "QE", ...): the last row of every period that has
        one. A sequence: each date maps to the last row at or before it (``position=None``
        when there is none); two dates that map to the same row keep the first.

    Raises
    ------
    ValueError
        An unknown frequency, an empty list or a value that is not a date, naming it.
    """
    if isinstance(rebalance, str):
        try:
            offset = pd.tseries.frequencies.to_offset(rebalance)
        except ValueError:
            raise ValueError(
                f"rebalance: {rebalance!r} is not a pandas frequency (e.g. 'W-FRI', 'ME', "
                "'QE') nor a list of dates") from None
        rows = pd.Series(np.arange(len(index)), index=index)
        last = rows.resample(offset).last().dropna().astype(int)
        return [RebalanceDate(index[p], int(p)) for p in last.to_numpy()]
    try:
        requested = pd.DatetimeIndex(pd.to_datetime(list(rebalance)))
    except (TypeError, ValueError) as err:
        raise ValueError(f"rebalance: not a list of dates ({err})") from None
    if len(requested) == 0:
        raise ValueError("rebalance: the list of dates is empty")
    if requested.hasnans:
        raise ValueError("rebalance: the list has a missing date")
    out, seen = [], set()
    for date in requested.sort_values().unique():
        pos = int(index.searchsorted(date, side="right")) - 1
        if pos < 0:
            out.append(RebalanceDate(date, None))
        elif pos not in seen:
            seen.add(pos)
            out.append(RebalanceDate(date, pos))
    return out


def window_start(position: int, window) -> int:
    """First row of the window ending at row ``position`` ("expanding": row 0)."""
    return 0 if window == "expanding" else max(0, position - int(window) + 1)
