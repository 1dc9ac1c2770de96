"""Labelled blocks of cells -> pandas objects, with messages that name the range and the cell.

A :class:`Block` is the 2-D values of one named range (or of one worksheet-function argument)
plus where it sits, so every message can say ``FL_SIGNS!C7: 'x' is not one of ...``. Readers
accept what the engines deliver: numbers, strings, booleans, ``None``/``""`` for blanks,
``datetime`` for dates (ISO strings from the remote engine too), Excel error values
(``#N/A``, ``#VALUE!``, ...) as strings or :class:`~._xlsx_values.ExcelError`, and the file
reader's markers :class:`~._xlsx_values.FormulaNoValue` and :class:`~._xlsx_values.BadValue`.

Nothing is guessed: text is a number only when it is a plain number (``-1.5e-3``), a date only
when it is ISO 8601 (``2020-01-31``); anything else is an error naming the cell.
"""

from __future__ import annotations

import datetime as dt
import math
import numbers
import re
import unicodedata
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ._errors import WorkbookInputError, cell_address
from ._xlsx_values import BadValue, ExcelError, FormulaNoValue

__all__ = [
    "Block",
    "EXCEL_ERRORS",
    "cell_date",
    "cell_number",
    "cell_problem",
    "frame_cell",
    "is_blank",
    "is_error",
    "parse_keyvalue",
    "parse_list",
    "parse_matrix",
    "parse_panel",
    "parse_series",
    "panel_fast",
    "parse_sign",
    "parse_number",
    "shown",
    "text_number",
]

EXCEL_ERRORS = frozenset(
    {
        "#N/A",
        "#VALUE!",
        "#REF!",
        "#DIV/0!",
        "#NUM!",
        "#NAME?",
        "#NULL!",
        "#SPILL!",
        "#CALC!",
        "#GETTING_DATA",
        "#FIELD!",
        "#BLOCKED!",
        "#BUSY!",
        "#UNKNOWN!",
        "#CONNECT!",
    }
)


@dataclass(frozen=True)
class Block:
    """The values of a named range or a function argument, and where they sit.

    Attributes
    ----------
    name : str
        ``FL_RETURNS`` or a worksheet-function argument name.
    values : list of list
    row, col : int or None
        1-based sheet position of the top-left cell; ``None`` for a function argument, whose
        cells are then named by their position inside the argument.
    """

    name: str
    values: list
    row: int | None = None
    col: int | None = None

    @classmethod
    def of(cls, name: str, values, row: int | None = None, col: int | None = None) -> Block:
        """Normalise ``values`` (scalar, 1-D or 2-D) to a list of equal-length rows."""
        if values is None:
            rows: list = [[None]]
        elif isinstance(values, (list, tuple)):
            if values and all(isinstance(v, (list, tuple)) for v in values):
                rows = [list(r) for r in values]
            else:
                rows = [[v] for v in values]  # a column
        elif isinstance(values, np.ndarray):
            arr = values if values.ndim == 2 else values.reshape(-1, 1)
            rows = arr.tolist()
        else:
            rows = [[values]]
        width = max((len(r) for r in rows), default=0)
        rows = [r + [None] * (width - len(r)) for r in rows]
        return cls(name, rows, row, col)

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.values), (len(self.values[0]) if self.values else 0)

    def cell(self, i: int, j: int) -> str:
        """Address of cell ``(i, j)`` (0-based inside the block)."""
        if self.row is None or self.col is None:
            return f"row {i + 1}, column {j + 1}"
        return cell_address(self.row + i, self.col + j)

    def error(self, message: str, i: int | None = None, j: int | None = None):
        cell = None if i is None else self.cell(i, j)
        if cell is not None and self.row is None:  # relative position: say it in words
            return WorkbookInputError(f"{cell}: {message}", name=self.name)
        return WorkbookInputError(message, name=self.name, cell=cell)

    def is_empty(self) -> bool:
        """Every cell blank."""
        return all(is_blank(v) for row in self.values for v in row)

    def trimmed(self) -> Block:
        """Without trailing blank rows and columns (named ranges are often larger than the data)."""
        vals = self.values
        n_rows = len(vals)
        while n_rows and all(is_blank(v) for v in vals[n_rows - 1]):
            n_rows -= 1
        n_cols = len(vals[0]) if vals else 0
        while n_cols and all(is_blank(vals[i][n_cols - 1]) for i in range(n_rows)):
            n_cols -= 1
        return Block(self.name, [r[:n_cols] for r in vals[:n_rows]], self.row, self.col)


def shown(v) -> str:
    """A cell value as a user reads it: ``2`` not ``2.0``, text in quotes, dates in ISO; cut
    to about 60 characters (a message is one line)."""
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        text = str(int(v))
    elif isinstance(v, str):
        text = str.__repr__(str(v))  # an ExcelError subclass would show its class name
    elif isinstance(v, (dt.datetime, dt.date)) and v is not pd.NaT:
        text = _show_date(pd.Timestamp(v))
    else:
        text = str(v)
    return text if len(text) <= 60 else text[:57] + "..."


def is_blank(v) -> bool:
    """An empty cell: ``None``, blank text, a float NaN (pandas' missing value) or NaT."""
    return (
        v is None
        or (isinstance(v, str) and v.strip() == "")
        or (isinstance(v, float) and math.isnan(v))
        or v is pd.NaT
    )


def is_error(v) -> bool:
    """An Excel error value (``#N/A``), as the file reader's marker or as text."""
    return isinstance(v, ExcelError) or (
        isinstance(v, str) and v.strip().upper() in EXCEL_ERRORS
    )


def cell_problem(v, remedy: str = "") -> str | None:
    """Why a non-blank cell holds no usable value at all, or ``None``.

    Excel error values (``remedy`` is appended, e.g. ``"; leave the cell blank ..."``), formulas
    without a calculated value (a file saved by openpyxl) and stored content that is not a
    valid value (:class:`~._xlsx_values.BadValue`).
    """
    if isinstance(v, str):
        return f"{v.strip()} is an Excel error value{remedy}" if is_error(v) else None
    if isinstance(v, FormulaNoValue):
        formula = f"={v.formula[:57]}{'...' * (len(v.formula) > 57)}" if v.formula else (
            "the formula"
        )
        return (
            f"{formula} has no calculated value (the file was saved by a program that does not "
            "calculate, e.g. openpyxl); open and save it in Excel, or type the value"
        )
    if isinstance(v, BadValue):
        return f"{v.reason} (the file holds no valid value for this cell); type the value again"
    return None


# --------------------------------------------------------------------------- numbers
# A plain number, ASCII digits only (Python's float() also takes '1_000', 'nan', Arabic-Indic
# digits, ...; none of them is something a user means as a return).
_PLAIN_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_SPACED_NUMBER = re.compile(r"[+-]?[0-9]{1,3}(?:[ '\u00a0\u202f\u2009][0-9]{3})+(?:\.[0-9]*)?")
_DATE_TYPES = (dt.date, dt.time, dt.timedelta, np.datetime64, np.timedelta64)


def _text_problem(text: str, what: str, blank_means: str) -> str:
    """Why a text is not a plain number, with the likely cause when there is one."""
    t = text.strip()
    bare = t.lower().lstrip("+-")
    if bare == "nan":
        return f"{text!r} is not a number; leave the cell blank for {blank_means}"
    if bare in ("inf", "infinity"):
        return f"{text!r} is not a finite number"
    if "," in t:
        return (
            f"{text!r} is not {what}: commas are read neither as decimal commas nor as thousands "
            "separators; type it with a decimal point and no separators (e.g. 0.5, 1000)"
        )
    if "%" in t:
        return (
            f"{text!r} is not {what}: a percent sign is not read; type a decimal "
            "(0.05 for 5 %)"
        )
    if any(unicodedata.category(ch) == "Sc" for ch in t):
        return f"{text!r} is not {what}: currency signs are not read; type the number alone"
    if _SPACED_NUMBER.fullmatch(t):
        return (
            f"{text!r} is not {what}: separators inside a number are not read; type it "
            "without them"
        )
    if "\u2212" in t:
        return f"{text!r} is not {what}: type the minus sign as '-'"
    return f"{text!r} is not {what}"


def text_number(
    text: str, what: str = "a number", *, blank_means: str = "a missing value"
) -> float:
    """A text cell as a number: only plain numbers (``-1.5``, ``2e-3``), surrounding spaces
    allowed; anything else raises ``ValueError`` with the reason (commas, percent, ...)."""
    t = text.strip()
    if not _PLAIN_NUMBER.fullmatch(t):
        raise ValueError(_text_problem(text, what, blank_means))
    f = float(t)
    if not math.isfinite(f):
        raise ValueError(f"{text!r} is not a finite number (too large)")
    return f


def cell_number(
    v, what: str = "a number", *, date_what: str | None = None, blank_means: str = "a missing value"
) -> float:
    """A non-blank cell as a finite float, or ``ValueError`` saying what is wrong with it.

    Parameters
    ----------
    v : object
        The cell value (not blank: the caller decides what a blank means).
    what : str
        What the cell should hold, for messages (``"a number"``).
    date_what : str, optional
        Name used when the cell holds a date (``"a return"``); defaults to ``what``.
    blank_means : str
        What a blank cell would mean, offered as the remedy for an Excel error value.
    """
    problem = cell_problem(v, f"; leave the cell blank for {blank_means}")
    if problem is not None:
        raise ValueError(problem)
    if isinstance(v, (bool, np.bool_)):
        raise ValueError(f"{v!r} is a TRUE/FALSE value, not {what}")
    if isinstance(v, _DATE_TYPES):
        raise ValueError(
            f"{shown(v)} is a date, not {date_what or what} (the cell has a date format; "
            "give it a number format)"
        )
    if isinstance(v, numbers.Real):
        try:
            f = float(v)
        except OverflowError:
            raise ValueError(f"{shown(v)} is not a finite number (too large)") from None
        if not math.isfinite(f):
            raise ValueError(f"{shown(v)} is not a finite number")
        return f
    if isinstance(v, str):
        return text_number(v, what, blank_means=blank_means)
    raise ValueError(f"{shown(v)} is not {what}")


def parse_number(
    block: Block,
    i: int,
    j: int,
    *,
    blank=np.nan,
    what: str = "a number",
    date_what: str | None = None,
) -> float:
    """One numeric cell; a blank gives ``blank``; text, booleans, dates and error values are
    errors naming the cell (see :func:`cell_number`)."""
    v = block.values[i][j]
    if is_blank(v):
        return blank
    try:
        return cell_number(v, what, date_what=date_what)
    except ValueError as err:
        raise block.error(str(err), i, j) from None


def _label(block: Block, i: int, j: int, what: str) -> str:
    v = block.values[i][j]
    if is_blank(v):
        raise block.error(f"the {what} is blank", i, j)
    if is_error(v):
        raise block.error(f"the {what} is the error value {v.strip()}", i, j)
    problem = cell_problem(v)
    if problem is not None:
        raise block.error(problem, i, j)
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return str(v).strip()


def _labels(block: Block, cells: list[tuple[int, int]], what: str) -> list[str]:
    seen: dict[str, tuple[int, int]] = {}
    out = []
    for i, j in cells:
        label = _label(block, i, j, what)
        if label in seen:
            raise block.error(
                f"duplicate {what} {label!r} (also at {block.cell(*seen[label])})", i, j
            )
        seen[label] = (i, j)
        out.append(label)
    return out


# --------------------------------------------------------------------------- dates
def _show_date(v) -> str:
    if isinstance(v, pd.Timestamp):
        return v.date().isoformat() if v == v.normalize() else v.isoformat()
    return shown(v)


# ISO 8601 calendar dates, optionally with a time and a zone (the remote engine sends
# '2021-01-01T00:00:00.000Z'). Year first, so the day/month order is never in doubt.
_ISO_DATE = re.compile(
    r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}"
    r"(?:[T ][0-9]{1,2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,9})?)?)?"
    r"(?:Z|[+-][0-9]{2}(?::?[0-9]{2})?)?"
)
_TYPE_A_DATE = "type it as a date (or as ISO text such as 2020-01-31)"


def _timestamp(v) -> pd.Timestamp:
    ts = pd.Timestamp(v)
    return ts.tz_convert(None) if ts.tzinfo is not None else ts


def cell_date(v) -> tuple[object, str]:
    """A non-blank date cell as ``(label, kind)``: ``(Timestamp, "date")`` or
    ``(float, "number")`` (a period or an Excel serial); ``ValueError`` otherwise.

    Text is a date only in ISO 8601 form: ``today``, ``Q1`` or ``01/02/2020`` (1 February or
    2 January?) are refused rather than guessed. Time zones are converted to UTC.
    """
    problem = cell_problem(v)
    if problem is not None:
        raise ValueError(problem)
    if isinstance(v, (bool, np.bool_)):
        raise ValueError(f"{v!r} is a TRUE/FALSE value, not a date")
    if isinstance(v, (dt.datetime, dt.date, np.datetime64)):
        ts = pd.Timestamp(v)
        if ts is pd.NaT:
            raise ValueError("NaT is not a date")
        # an aware datetime: the wall-clock date the cell shows
        return (ts.tz_localize(None) if ts.tzinfo is not None else ts), "date"
    if isinstance(v, numbers.Real):
        try:
            f = float(v)
        except OverflowError:
            f = math.inf
        if not math.isfinite(f):
            raise ValueError(f"{shown(v)} is not a finite number")
        return f, "number"
    if isinstance(v, str):
        t = v.strip()
        if _ISO_DATE.fullmatch(t):
            try:
                return _timestamp(t), "date"
            except ValueError:
                raise ValueError(f"{v!r} is not a valid date; {_TYPE_A_DATE}") from None
        if re.search(r"[0-9][/.][0-9]", t):
            raise ValueError(
                f"{v!r} is not a date: the day/month order of such text depends on the "
                f"locale (01/02/2020: 1 February or 2 January?); {_TYPE_A_DATE}"
            )
        raise ValueError(f"{v!r} is not a date; {_TYPE_A_DATE}")
    raise ValueError(f"{shown(v)} is not a date")


# --------------------------------------------------------------------------- panels
_FAST_NUMBER_TYPES = (float, int, np.float64, type(None))


def panel_fast(b: Block) -> pd.DataFrame | None:
    """The frame :func:`parse_panel` returns, for the common case where nothing can go wrong.

    Text header labels, unique and non-blank; dates all ``datetime`` (naive) or all numbers,
    strictly increasing; every other cell a finite number or ``None``. Anything else returns
    ``None`` and goes through :func:`parse_panel`'s checked path, which reads the dates one
    by one (ISO text, blank rows, order) and the numbers cell by cell only when they are not
    all plain numbers, so that it finds and names the problem.
    """
    rows = b.values
    if len(rows) < 2 or len(rows[0]) < 2:
        return None
    header = rows[0][1:]
    if not all(type(v) is str for v in header):
        return None
    columns = [v.strip() for v in header]
    if not all(columns) or len(set(columns)) != len(columns) or any(map(is_error, columns)):
        return None
    seen: set[type] = set()
    for r in rows[1:]:
        seen.update(map(type, r[1:]))
    if not seen.issubset(_FAST_NUMBER_TYPES):
        return None
    dates = [r[0] for r in rows[1:]]
    if all(isinstance(d, dt.datetime) and d.tzinfo is None and d is not pd.NaT for d in dates):
        index = pd.DatetimeIndex(dates, name="date")
    elif all(type(d) in (float, int, np.float64) for d in dates):
        arr = _floats(dates)
        if arr is None or not np.all(np.isfinite(arr)):
            return None
        index = pd.Index(arr, name="period")
    else:
        return None
    if not (index.is_monotonic_increasing and index.is_unique):
        return None
    data = _floats([r[1:] for r in rows[1:]])  # None -> NaN
    if data is None or np.isinf(data).any():
        return None
    return pd.DataFrame(data, index=index, columns=columns)


def _floats(values) -> np.ndarray | None:
    """Plain numbers and ``None`` as a float array; ``None`` if an int is beyond a float."""
    try:
        return np.array(values, dtype=float)
    except OverflowError:
        return None


def parse_panel(block: Block, what: str = "asset", *, fast: bool = True) -> pd.DataFrame:
    """A panel: header row of labels, first column dates (or periods), numbers below.

    Blank cells are missing values. Fully blank rows are skipped. Dates must be unique and
    increasing (the fit weights recent rows more and cross-validates forward in time).
    ``fast=False`` skips the vectorised path (tests compare the two). The values are checked
    to be numbers here; whether they are plausible returns is :func:`check_plausible`'s job.
    """
    b = block.trimmed()
    frame = panel_fast(b) if fast else None
    if frame is not None:
        return frame
    n_rows, n_cols = b.shape
    if n_rows < 2 or n_cols < 2:
        raise b.error(
            f"expected a header row of {what} names, a first column of dates and at least one "
            f"row of data; found {n_rows} row(s) x {n_cols} column(s)"
        )
    columns = _labels(b, [(0, j) for j in range(1, n_cols)], f"{what} name")
    index = []
    kind = None
    for i in range(1, n_rows):
        row = b.values[i]
        raw = row[0]
        if is_blank(raw):
            if all(is_blank(v) for v in row):
                continue
            raise b.error("the date is blank but the row has values", i, 0)
        try:
            label, this = cell_date(raw)
        except ValueError as err:
            raise b.error(str(err), i, 0) from None
        if kind is None:
            kind = this
        elif this != kind:
            if len(index) == 1 and _next_kind(b, i + 1) == this:
                # only the first row differs: it is the odd one, not the second
                first = index[0][1]
                raise b.error(f"{shown(b.values[first][0])} is a {kind} but the rows below hold "
                              f"{this}s; use one kind of date", first, 0)
            raise b.error(f"{shown(raw)} mixes {this}s with the {kind}s above", i, 0)
        if index and label <= index[-1][0]:
            word = "repeats" if label == index[-1][0] else "is earlier than"
            raise b.error(
                f"{_show_date(label)} {word} the row above ({b.cell(index[-1][1], 0)}); "
                "dates must increase",
                i,
                0,
            )
        index.append((label, i))
    if not index:
        raise b.error("no data rows below the header")
    body = [b.values[i][1:] for _, i in index]
    seen: set[type] = set()
    for r in body:
        seen.update(map(type, r))
    data = _floats(body) if seen.issubset(_FAST_NUMBER_TYPES) else None
    if data is None or np.isinf(data).any():  # the cell-by-cell reader names the problem
        data = np.array(
            [[parse_number(b, i, j, date_what="a return") for j in range(1, n_cols)]
             for _, i in index],
            dtype=float,
        )
    idx = (
        pd.DatetimeIndex([d for d, _ in index], name="date")
        if kind == "date"
        else pd.Index([d for d, _ in index], name="period")
    )
    return pd.DataFrame(data, index=idx, columns=columns)


def _next_kind(b: Block, start: int) -> str | None:
    """The kind (date or number) of the first readable date cell from row ``start`` on."""
    for i in range(start, b.shape[0]):
        raw = b.values[i][0]
        if is_blank(raw):
            continue
        try:
            return cell_date(raw)[1]
        except ValueError:
            return None
    return None


def frame_cell(block: Block, row: int, col: int) -> tuple[int, int]:
    """Position in ``block.trimmed()`` of the value at ``(row, col)`` of its parsed panel.

    :func:`parse_panel` keeps the header's columns in order and skips fully blank rows, so the
    ``row``-th kept data row is found by counting them.
    """
    b = block.trimmed()
    kept = -1
    for i in range(1, b.shape[0]):
        if not is_blank(b.values[i][0]) or not all(is_blank(v) for v in b.values[i]):
            kept += 1
            if kept == row:
                return i, col + 1
    raise IndexError(f"row {row} is not in the panel of {block.name}")


# --------------------------------------------------------------------------- other layouts
_SIGNS = {"+": 1.0, "-": -1.0, "0": 0.0, "1": 1.0, "-1": -1.0, "+1": 1.0}


def parse_sign(block: Block, i: int, j: int) -> float:
    """A sign cell: blank (free), 0, 1 / + (>= 0), -1 / - (<= 0)."""
    v = block.values[i][j]
    if is_blank(v):
        return np.nan
    problem = cell_problem(v, "; leave the cell blank for a free loading")
    if problem is not None:
        raise block.error(problem, i, j)
    if isinstance(v, numbers.Real) and not isinstance(v, bool) and v in (0, 1, -1):
        return float(v)  # compared exactly first: float() of a huge int would overflow
    if isinstance(v, str) and v.strip() in _SIGNS:
        return _SIGNS[v.strip()]
    raise block.error(f"{shown(v)} is not one of blank, 0, 1, -1, +, -", i, j)


def parse_matrix(
    block: Block,
    *,
    rows_what: str = "asset",
    cols_what: str = "factor",
    cell=parse_number,
) -> pd.DataFrame:
    """A labelled matrix: corner cell, header row of column labels, first column row labels."""
    b = block.trimmed()
    n_rows, n_cols = b.shape
    if n_rows < 2 or n_cols < 2:
        raise b.error(
            f"expected a header row of {cols_what} names and a first column of {rows_what} "
            f"names; found {n_rows} row(s) x {n_cols} column(s)"
        )
    columns = _labels(b, [(0, j) for j in range(1, n_cols)], f"{cols_what} name")
    keep = [i for i in range(1, n_rows) if not all(is_blank(v) for v in b.values[i])]
    index = _labels(b, [(i, 0) for i in keep], f"{rows_what} name")
    data = [[cell(b, i, j) for j in range(1, n_cols)] for i in keep]
    return pd.DataFrame(data, index=index, columns=columns)


def _header_skipped(b: Block, words: tuple[str, ...]) -> int:
    first = b.values[0][0] if b.values and b.values[0] else None
    return 1 if isinstance(first, str) and first.strip().lower() in words else 0


def parse_keyvalue(block: Block) -> dict[str, tuple[object, str, tuple[int, int]]]:
    """``key | value`` rows -> ``{key: (value, cell of the value, (i, j))}``.

    An optional header row (``key``, ``setting``, ``parameter``, ``name``) is skipped, as are
    blank rows. Keys are case-insensitive; a repeated key is an error, and so is a value
    without a key (a name cleared by mistake would leave its setting at the default, unsaid).
    Values are returned as found (blank -> ``None``); the settings readers check them.
    """
    b = block.trimmed()
    if b.shape[0] == 0:
        return {}
    if b.shape[1] < 2:
        raise b.error("expected two columns: key and value")
    out: dict[str, tuple[object, str, tuple[int, int]]] = {}
    where: dict[str, str] = {}
    for i in range(_header_skipped(b, ("key", "setting", "parameter", "name")), b.shape[0]):
        key = b.values[i][0]
        if is_blank(key):
            if not is_blank(b.values[i][1]):
                raise b.error(f"{shown(b.values[i][1])} has no setting name beside it (in "
                              f"{b.cell(i, 0)}): type the setting's name there, or clear "
                              "the value", i, 1)
            continue
        problem = cell_problem(key)
        if problem is not None:
            raise b.error(f"the setting name: {problem}", i, 0)
        k = shown(key) if not isinstance(key, str) else key
        k = k.strip().lower().replace(" ", "_")
        if k in out:
            raise b.error(f"setting {k!r} is given twice (also at {where[k]})", i, 0)
        value = b.values[i][1]
        out[k] = (None if is_blank(value) else value, b.cell(i, 1), (i, 1))
        where[k] = b.cell(i, 0)
    return out


def parse_list(block: Block) -> list[tuple[str, str]]:
    """Non-blank cells of the first column -> ``[(text, cell), ...]``.

    A header cell ``constraint`` is skipped.
    """
    b = block.trimmed()
    if b.shape[0] == 0:
        return []
    start = _header_skipped(b, ("constraint", "constraints"))
    out = []
    for i in range(start, b.shape[0]):
        v = b.values[i][0]
        if is_blank(v):
            continue
        problem = cell_problem(v)
        if problem is not None:
            raise b.error(problem, i, 0)
        out.append((str(v).strip(), b.cell(i, 0)))
    return out


def parse_series(block: Block, *, what: str = "asset", value=parse_number) -> pd.Series:
    """``label | value`` rows -> Series; an optional header row (``asset``) is skipped."""
    b = block.trimmed()
    if b.shape[0] == 0:
        return pd.Series(dtype=float)
    if b.shape[1] < 2:
        raise b.error(f"expected two columns: {what} and value")
    start = _header_skipped(b, (what, "asset", "name", "ticker"))
    keep = [i for i in range(start, b.shape[0]) if not all(is_blank(v) for v in b.values[i][:2])]
    labels = _labels(b, [(i, 0) for i in keep], f"{what} name")
    values = [value(b, i, 1) for i in keep]
    return pd.Series(values, index=labels)
