"""Prices to returns, with every missing or impossible price accounted for.

Rules (``docs/formulation.md``, "Prices to returns"):

* Dates go down the index and must be strictly increasing: a repeated or out-of-order date is
  an error naming both.
* A price must be a number > 0; anything else (text, 0, a negative number, infinity) is an error
  naming the column and the date. A missing price (NaN, None, an empty cell, a blank text such
  as a formula's ``""``) is allowed.
* A date with no price at all is not a trading day: the row is dropped, and the next return runs
  from the previous date that has prices.
* The return on date ``t`` is ``p_t / p_prev - 1`` (``"simple"``) or ``log(p_t / p_prev)``
  (``"log"``), where ``p_prev`` is the price on the previous (kept) date. A missing price gives
  a missing return on its date. The return on the first price after a gap is missing too
  (``span_gaps=False``: every return covers exactly one period), or runs from the last price
  before the gap (``span_gaps=True``: the returns compound to the total return). Before an
  asset's first price and after its last, returns are missing.
* The first date has no return and is dropped; a column left without any return is an error.
"""

from __future__ import annotations

import datetime

import numpy as np
import pandas as pd

from .._cells import numbers_in

__all__ = ["PricesError", "prices_to_returns"]

_METHODS = ("simple", "log")


class PricesError(ValueError):
    """A price table that cannot be turned into returns; the message names the column and date.

    Attributes
    ----------
    column : object or None
        The column label at fault, if one is.
    row : int or None
        The 0-based position of the row at fault in the input, if one is.
    """

    def __init__(self, message: str, column=None, row: int | None = None):
        super().__init__(message)
        self.column = column
        self.row = row


def _date(label) -> str:
    if isinstance(label, (datetime.date, np.datetime64)):
        label = pd.Timestamp(label)
        return label.strftime("%Y-%m-%d") if label == label.normalize() else label.isoformat()
    return str(label)


def _check_dates(index: pd.Index) -> None:
    missing = np.flatnonzero(pd.isna(index))
    if missing.size:
        raise PricesError(f"prices: row {missing[0] + 1} has no date", row=int(missing[0]))
    duplicated = index.duplicated(keep="first")
    if duplicated.any():
        second = int(np.flatnonzero(duplicated)[0])
        first = int(np.flatnonzero(index == index[second])[0])
        raise PricesError(f"prices: date {_date(index[second])} appears twice (rows {first + 1} "
                          f"and {second + 1})", row=second)
    try:
        steps = np.asarray(index[1:] > index[:-1], dtype=bool)
    except TypeError as err:
        raise PricesError(f"prices: the dates cannot be ordered ({err})") from None
    if not steps.all():
        i = int(np.flatnonzero(~steps)[0])
        raise PricesError(
            f"prices: dates must increase down the rows; {_date(index[i])} (row {i + 1}) is "
            f"followed by {_date(index[i + 1])} (row {i + 2})", row=i + 1)


def _numeric(prices: pd.DataFrame) -> np.ndarray:
    """The prices as floats (NaN where missing); any other non-number is an error."""
    values = np.full(prices.shape, np.nan)
    for j, column in enumerate(prices.columns):
        raw = prices.iloc[:, j]
        if raw.dtype == object:  # a blank text cell (a formula's "") is a missing price
            raw = raw.map(lambda v: None if isinstance(v, str) and not v.strip() else v)
        if pd.api.types.is_bool_dtype(raw):
            raise PricesError(f"prices: column {column!r} holds TRUE/FALSE, not prices",
                              column=column, row=0)
        numbers, bad = numbers_in(raw)
        if raw.dtype == object:
            bad |= raw.map(lambda v: isinstance(v, (bool, np.bool_))).to_numpy(dtype=bool)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise PricesError(f"prices: column {column!r} has {raw.iloc[i]!r} on "
                              f"{_date(prices.index[i])}, which is not a price", column=column,
                              row=i)
        values[:, j] = numbers.to_numpy(dtype=float)
    return values


def prices_to_returns(prices: pd.DataFrame, method: str = "simple", *,
                      span_gaps: bool = False) -> pd.DataFrame:
    """Returns from a table of prices (dates down, assets across).

    Parameters
    ----------
    prices : pandas.DataFrame
        Prices, dates (any increasing labels: dates, numbers) as the index, one column per asset.
        Missing prices are NaN/None.
    method : {"simple", "log"}, default "simple"
        ``p_t / p_prev - 1`` or ``log(p_t / p_prev)``.
    span_gaps : bool, default False
        What the first price after a missing one gives: a missing return (False; every return
        is a one-period return) or the return since the last price before the gap (True; the
        returns compound to the total return, one of them over several periods).

    Returns
    -------
    pandas.DataFrame
        Same columns; one row per date with a price, except the first. NaN where a return is
        missing (see the rules in this module's docstring).

    Raises
    ------
    PricesError
        (a ``ValueError``) for a bad ``method``, an empty table, a date that is missing,
        repeated or out of order, a price that is not a number > 0, or a column with no
        return; the message names the column and the date, ``column`` and ``row`` locate it.

    Notes
    -----
    Equal to skfolio's ``prices_to_returns(prices, log_returns=..., fill_nan=False,
    drop_inceptions_nan=False)`` when ``span_gaps=False``. skfolio's defaults
    forward-fill a missing price instead, which invents a 0 return on its date (here: missing)
    and drop every date before the last asset's first price (here: kept, missing for that
    asset); after a gap both give the spanning return (``span_gaps=True``). skfolio accepts
    non-positive prices and unordered dates, and drops a column without prices; here each is an
    error.
    """
    if method not in _METHODS:
        raise PricesError(f"method must be 'simple' or 'log', got {method!r}")
    if not isinstance(prices, pd.DataFrame):
        raise PricesError(f"prices must be a DataFrame (dates down, assets across), got "
                          f"{type(prices).__name__}")
    if prices.shape[1] == 0 or prices.shape[0] == 0:
        raise PricesError(f"prices: the table is empty (shape {prices.shape})")
    if prices.columns.has_duplicates:
        dup = prices.columns[prices.columns.duplicated()][0]
        raise PricesError(f"prices: column {dup!r} appears twice", column=dup)
    _check_dates(prices.index)
    values = _numeric(prices)
    bad = ~np.isnan(values) & ~(np.isfinite(values) & (values > 0))
    if bad.any():
        i, j = (int(k) for k in np.argwhere(bad)[0])
        column = prices.columns[j]
        raise PricesError(f"prices: column {column!r} has the price {values[i, j]:g} on "
                          f"{_date(prices.index[i])}; prices must be > 0", column=column, row=i)

    traded = ~np.isnan(values).all(axis=1)  # a date without any price is not a trading day
    values, dates = values[traded], prices.index[traded]
    if len(dates) < 2:
        raise PricesError("prices: at least two dates with prices are needed for one return")
    previous = values[:-1]
    if span_gaps:  # the last price on or before the previous date
        previous = pd.DataFrame(previous).ffill().to_numpy()
    ratio = values[1:] / previous  # NaN when either price is missing
    returns = np.log(ratio) if method == "log" else ratio - 1.0
    empty = np.isnan(returns).all(axis=0)
    if empty.any():
        column = prices.columns[int(np.flatnonzero(empty)[0])]
        need = "two prices" if span_gaps else "prices on two consecutive dates"
        raise PricesError(f"prices: column {column!r} has no return: it needs {need}",
                          column=column)
    return pd.DataFrame(returns, index=dates[1:], columns=prices.columns)
