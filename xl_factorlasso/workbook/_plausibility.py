"""Are the numbers of a panel plausible returns? Checked before any fit, naming the cell.

A panel can hold numbers that parse and still are not returns: prices, percentages (``5`` for
5 %), a date column pasted among the returns (``43831``), or values so large that the squares
the fit computes overflow. The fit would run on them and return wrong loadings without a word,
so the workbook layer refuses them first. The bound is the ``max_abs_return`` setting (default
5, i.e. 500 % per period; ``none`` switches the bound off, never the overflow check). A value
so close to 0 that its square underflows is refused too: no return is that small, and a
column of them has variances of 0 or subnormal ones, whose digits are lost (the fit saw "no
response varies"; the optimiser's weights moved by 0.04).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..core.linear_model._lasso_model import UNDERFLOW_LIMIT  # (the fit's, named there too)
from ._errors import WorkbookInputError
from ._tables import Block, frame_cell, shown
from ._xlsx_values import from_serial

__all__ = ["MAX_ABS_RETURN", "OVERFLOW_LIMIT", "UNDERFLOW_LIMIT", "check_plausible"]

#: Default bound on ``|return|`` per period (500 %).
MAX_ABS_RETURN = 5.0
#: Beyond this a value's square, summed over thousands of rows, overflows a float (~1.8e308).
OVERFLOW_LIMIT = 1e150
# Excel serial numbers of 1950-01-01 and 2099-12-31: a whole number in this range among
# returns is far more likely a date than a return of several thousand times the investment.
_SERIAL_RANGE = (18264.0, 73050.0)
_DECIMALS = "returns are decimals: 0.05 for 5 %"


def _problem(v: float, *, bound: float | None, what: str, source: str, others: str) -> str:
    """The message for the first implausible value; ``others`` says how many more its column
    has (``", as are 259 other values of 'SPX'"``) or is empty."""
    if not math.isfinite(v):
        return f"{shown(v)} is not a finite number{others}"
    if abs(v) > OVERFLOW_LIMIT:
        return f"{v:g} is too large to compute with{others}: its square overflows; {_DECIMALS}"
    if abs(v) < UNDERFLOW_LIMIT:
        return (f"{v:g} is too small to compute with{others}: a value other than 0 must be "
                f"at least {UNDERFLOW_LIMIT:g} in magnitude (the squares of smaller ones lose "
                f"their digits to underflow); {_DECIMALS}")
    if v.is_integer() and _SERIAL_RANGE[0] <= v <= _SERIAL_RANGE[1]:
        date = from_serial(v).date().isoformat()
        return (
            f"{shown(v)} looks like the Excel date {date} (its serial number){others}, not a "
            f"{what}: is a date column among the {what}s? ({_DECIMALS})"
        )
    return (
        f"{shown(v)} is not a plausible {what} (beyond +/-{bound:g}, i.e. {bound * 100:g} %"
        f"{others}): {_DECIMALS}; prices or percent? (max_abs_return in {source} sets the "
        "bound; none switches it off)"
    )


def check_plausible(
    frame: pd.DataFrame,
    block: Block | str,
    *,
    bound: float | None = MAX_ABS_RETURN,
    what: str = "return",
    source: str = "FL_SETTINGS",
) -> None:
    """Refuse a panel of returns holding a value that is not a plausible return.

    Vectorised: one pass over the values when they are fine (about 1 ms for 2000 x 500).

    Parameters
    ----------
    frame : pandas.DataFrame
        A panel parsed by :func:`~._tables.parse_panel` from ``block`` (NaN = missing).
    block : Block or str
        The cells it came from, to name the cell at fault; or only the input's name (the
        message then names the column and the date).
    bound : float or None
        Largest ``|value|`` accepted (``max_abs_return``); ``None``: no bound, but infinite
        values, values beyond :data:`OVERFLOW_LIMIT` and values other than 0 below
        :data:`UNDERFLOW_LIMIT` in magnitude are still refused.
    what : str
        What a value is, for the message (``"return"``, ``"factor return"``).
    source : str
        Where ``max_abs_return`` is set (``FL_SETTINGS``, ``settings``, ...), for the message.

    Raises
    ------
    WorkbookInputError
        Naming the first offending cell (row by row): an infinite value, a value beyond the
        overflow limit or below the underflow limit (not 0), a whole number that is an Excel
        date serial of 1950-2099, or a value beyond ``bound``.
    """
    values = frame.to_numpy(dtype=float)
    limit = OVERFLOW_LIMIT if bound is None else min(float(bound), OVERFLOW_LIMIT)
    with np.errstate(invalid="ignore"):
        size = np.abs(values)
        # NaN (a missing value) compares False; inf True
        bad = (size > limit) | ((size < UNDERFLOW_LIMIT) & (size > 0.0))
    if not bad.any():
        return
    r, c = (int(k) for k in np.argwhere(bad)[0])
    more = int(bad[:, c].sum()) - 1
    others = ""
    if more:
        verb, plural = ("is", "") if more == 1 else ("are", "s")
        others = f", as {verb} {more} other value{plural} of {frame.columns[c]!r}"
    message = _problem(float(values[r, c]), bound=bound, what=what, source=source, others=others)
    if isinstance(block, Block):
        i, j = frame_cell(block, r, c)
        raise block.trimmed().error(message, i, j)
    raise WorkbookInputError(
        f"{frame.columns[c]!r} on {shown(frame.index[r])}: {message}", name=block
    )
