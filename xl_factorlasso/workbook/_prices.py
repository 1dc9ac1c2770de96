"""Returns from a panel of prices in cells, every problem named on its cell.

The panel is read as every panel is (:func:`~._tables.parse_panel`: a header row of asset
names, dates down the first column, numbers that are never guessed), then turned into returns
by :func:`xl_factorlasso.core.preprocessing.prices_to_returns`, whose errors (a price that is not
> 0, an asset without any return) carry the column and row at fault: here they become the
cell of the range. ``FLASSO_RETURNS`` and ``xl-factorlasso returns`` both use
:func:`returns_from_prices`.
"""

from __future__ import annotations

import pandas as pd

from ..core.preprocessing import PricesError, prices_to_returns
from ._errors import WorkbookInputError
from ._tables import Block, frame_cell, is_blank, panel_fast, parse_number, parse_panel, shown

__all__ = ["METHODS", "read_method", "returns_from_prices"]

#: The kinds of return: ``p_t / p_prev - 1`` and ``log(p_t / p_prev)``.
METHODS = ("simple", "log")
_PLAIN = (float, type(None))


def read_method(value) -> str:
    """``simple`` or ``log`` (any case, surrounding spaces allowed; blank = ``simple``).

    Raises
    ------
    ValueError
        For any other value, saying which are allowed.
    """
    if value is None or is_blank(value):
        return "simple"
    if isinstance(value, str) and value.strip().lower() in METHODS:
        return value.strip().lower()
    raise ValueError(f"{shown(value)} is not a method of returns: use simple (p_t / p_prev - 1, "
                     "the default) or log (log(p_t / p_prev))")


def _check_prices(b: Block) -> None:
    """Every non-blank cell below the header and right of the dates is a number ("a price"
    in the message, where :func:`parse_panel` would say "a return")."""
    for i in range(1, b.shape[0]):
        row = b.values[i]
        for j in range(1, b.shape[1]):
            if type(row[j]) not in _PLAIN:  # a number or a blank needs no message
                parse_number(b, i, j, what="a price")


def _located(b: Block, frame: pd.DataFrame, err: PricesError) -> WorkbookInputError:
    """A :class:`PricesError` of the parsed frame on the cell of ``b`` it comes from."""
    message = str(err)
    if message.startswith("prices: "):
        message = message[len("prices: "):]
    j = frame.columns.get_loc(err.column) if err.column is not None else None
    if err.row is not None:
        i, col = frame_cell(b, err.row, -1 if j is None else j)
        return b.error(message, i, col)
    if j is not None:  # a whole column (no return at all): its header cell
        return b.error(message, 0, j + 1)
    return b.error(message)


def returns_from_prices(block: Block, method: str = "simple", *,
                        span_gaps: bool = False) -> pd.DataFrame:
    """Returns of a price panel in cells.

    Parameters
    ----------
    block : Block
        The price panel: a header row (a corner label, then one asset name per column), dates
        (or periods) increasing down the first column, prices below; a blank cell is a missing
        price.
    method : {"simple", "log"}, default "simple"
    span_gaps : bool, default False
        See :func:`~xl_factorlasso.core.preprocessing.prices_to_returns`: whether the first
        price after a missing one gives the return since the last price (True) or a missing
        return (False).

    Returns
    -------
    pandas.DataFrame
        Dates (without the first) down, the assets across, NaN where a return is missing; the
        index is named ``date`` (dates) or ``period`` (numbers).

    Raises
    ------
    WorkbookInputError
        Naming ``block.name`` and the cell at fault: text, an error value or a date where a
        price should be, a price that is not > 0, a date that is missing, repeated or out of
        order, an asset without any return, fewer than two dates with prices.
    """
    b = block.trimmed()
    frame = panel_fast(b)
    if frame is None:
        _check_prices(b)
        frame = parse_panel(b, "asset", fast=False)
    try:
        return prices_to_returns(frame, method, span_gaps=span_gaps)
    except PricesError as err:
        raise _located(b, frame, err) from None
