"""Labelled blocks of cells -> pandas objects, with messages that name the range and the cell.

A :class:`Block` is the 2-D values of one named range (or of one worksheet-function argument)
plus where it sits, so every message can say ``FL_SIGNS!C7: 'x' is not one of ...``. Readers
accept what the engines deliver: numbers, strings, booleans, ``None``/``""`` for blanks,
``datetime`` for dates (ISO strings from the remote engine too) and Excel error values
(``#N/A``, ``#VALUE!``, ...) as strings.
"""

from __future__ import annotations

import datetime as dt
import math
import numbers
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ._errors import WorkbookInputError, cell_address

__all__ = [
    "Block",
    "EXCEL_ERRORS",
    "parse_keyvalue",
    "parse_list",
    "parse_matrix",
    "parse_panel",
    "parse_series",
    "panel_fast",
    "parse_sign",
    "parse_number",
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
    """A cell value as a user reads it: ``2`` not ``2.0``, text in quotes."""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return repr(v) if isinstance(v, str) else str(v)


def is_blank(v) -> bool:
    return (
        v is None
        or (isinstance(v, str) and v.strip() == "")
        or (isinstance(v, float) and math.isnan(v))
    )


def is_error(v) -> bool:
    return isinstance(v, str) and v.strip().upper() in EXCEL_ERRORS


def parse_number(block: Block, i: int, j: int, *, blank=np.nan, what: str = "a number") -> float:
    """One numeric cell; a blank gives ``blank``; text, booleans and error values are errors."""
    v = block.values[i][j]
    if is_blank(v):
        return blank
    if is_error(v):
        raise block.error(
            f"{v.strip()} is an Excel error value; leave the cell blank for a missing value", i, j
        )
    if isinstance(v, bool):
        raise block.error(f"{v!r} is a TRUE/FALSE value, not {what}", i, j)
    if isinstance(v, numbers.Real):
        f = float(v)
    else:
        try:
            f = float(str(v).strip().replace(",", ""))
        except ValueError:
            raise block.error(f"{v!r} is not {what}", i, j) from None
    if not math.isfinite(f):
        raise block.error(f"{v!r} is not a finite number", i, j)
    return f


def _label(block: Block, i: int, j: int, what: str) -> str:
    v = block.values[i][j]
    if is_blank(v):
        raise block.error(f"the {what} is blank", i, j)
    if is_error(v):
        raise block.error(f"the {what} is the error value {v.strip()}", i, j)
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


def _show_date(v) -> str:
    if isinstance(v, pd.Timestamp):
        return v.date().isoformat() if v == v.normalize() else v.isoformat()
    return shown(v)


def _as_date(v):
    if isinstance(v, (dt.datetime, dt.date, pd.Timestamp, np.datetime64)):
        return pd.Timestamp(v).tz_localize(None) if pd.Timestamp(v).tzinfo else pd.Timestamp(v)
    if isinstance(v, str):
        try:
            ts = pd.Timestamp(v.strip())
        except (ValueError, TypeError):
            return None
        return ts.tz_convert(None) if ts.tzinfo else ts
    return None


_FAST_NUMBER_TYPES = (float, int, np.float64, type(None))


def panel_fast(b: Block) -> pd.DataFrame | None:
    """The frame :func:`parse_panel` returns, for the common case where nothing can go wrong.

    Text header labels, unique and non-blank; dates all ``datetime`` (naive) or all numbers,
    strictly increasing; every other cell a finite number or ``None``. Anything else returns
    ``None`` and goes through the cell-by-cell path, which finds and names the problem. This
    path is ~10x faster on a 500 x 51 panel (worksheet functions recalculate often).
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
    if all(isinstance(d, dt.datetime) and d.tzinfo is None for d in dates):
        index = pd.DatetimeIndex(dates, name="date")
    elif all(type(d) in (float, int, np.float64) for d in dates):
        arr = np.asarray(dates, dtype=float)
        if not np.all(np.isfinite(arr)):
            return None
        index = pd.Index(arr, name="period")
    else:
        return None
    if not (index.is_monotonic_increasing and index.is_unique):
        return None
    data = np.array([r[1:] for r in rows[1:]], dtype=float)  # None -> NaN
    if np.isinf(data).any():
        return None
    return pd.DataFrame(data, index=index, columns=columns)


def parse_panel(block: Block, what: str = "asset", *, fast: bool = True) -> pd.DataFrame:
    """A panel: header row of labels, first column dates (or periods), numbers below.

    Blank cells are missing values. Fully blank rows are skipped. Dates must be unique and
    increasing (the fit weights recent rows more and cross-validates forward in time).
    ``fast=False`` skips the vectorised path (tests compare the two).
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
    index, rows = [], []
    kind = None
    for i in range(1, n_rows):
        row = b.values[i]
        if all(is_blank(v) for v in row):
            continue
        raw = row[0]
        if is_blank(raw):
            raise b.error("the date is blank but the row has values", i, 0)
        date = _as_date(raw)
        if date is not None:
            label, this = date, "date"
        elif isinstance(raw, numbers.Real) and not isinstance(raw, bool):
            label, this = float(raw), "number"
        else:
            raise b.error(f"{raw!r} is not a date", i, 0)
        if kind is None:
            kind = this
        elif this != kind:
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
        rows.append([parse_number(b, i, j) for j in range(1, n_cols)])
    if not rows:
        raise b.error("no data rows below the header")
    idx = (
        pd.DatetimeIndex([d for d, _ in index], name="date")
        if kind == "date"
        else pd.Index([d for d, _ in index], name="period")
    )
    return pd.DataFrame(np.array(rows, dtype=float), index=idx, columns=columns)


def parse_sign(block: Block, i: int, j: int) -> float:
    """A sign cell: blank (free), 0, 1 / + (>= 0), -1 / - (<= 0)."""
    v = block.values[i][j]
    if is_blank(v):
        return np.nan
    if is_error(v):
        raise block.error(
            f"{v.strip()} is an Excel error value; leave the cell blank for a free loading", i, j
        )
    text = str(v).strip()
    mapping = {"+": 1.0, "-": -1.0, "0": 0.0, "1": 1.0, "-1": -1.0, "+1": 1.0}
    if isinstance(v, numbers.Real) and not isinstance(v, bool) and float(v) in (0.0, 1.0, -1.0):
        return float(v)
    if text in mapping:
        return mapping[text]
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
    rows whose key is blank. Keys are case-insensitive; a repeated key is an error.
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
            continue
        k = str(key).strip().lower().replace(" ", "_")
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
        if is_error(v):
            raise b.error(f"{v.strip()} is an Excel error value", i, 0)
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
