"""Data next to a contract input that its name leaves out (rows pasted below, a column added).

A plain named range does not grow: ten more weeks pasted under ``FL_RETURNS`` or a new asset
column beside it are silently ignored by a refit that reads the name. An Excel table grows
when a user types or pastes next to it, but not when a program writes there or Excel's
"include new rows and columns in table" option is off. :func:`adjoining_data` finds such
data -- non-empty rows directly below the range in its columns, non-empty columns directly
to its right in its rows (header row included), each run contiguous until a blank row or
column -- and :class:`Adjoining` says which cells, in words a user can act on.

Only a bounded strip next to the range is read, in chunks that double while they are full
(at most :data:`MAX_ROWS` rows and :data:`MAX_COLS` columns), never the whole sheet. Cells of
another ``FL_*`` name count as blank: an input placed right next to another is not data the
first one leaves out.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._contract import INPUTS, spec
from ._io import Area, WorkbookIO
from ._xlsx_refs import MAX_COL, MAX_ROW

__all__ = ["MAX_COLS", "MAX_ROWS", "Adjoining", "adjoining_data", "adjoining_inputs"]

#: The most rows below and columns to the right that are read; more is reported "at least".
MAX_ROWS = 10_000
MAX_COLS = 1_000
_FIRST_ROWS, _FIRST_COLS = 64, 16
_GROWS_RIGHT = ("panel", "matrix")


@dataclass(frozen=True)
class Adjoining:
    """Data adjoining a name's range that the name leaves out.

    Attributes
    ----------
    name : str
        The contract name (``"FL_RETURNS"``).
    area : Area
        The range the name refers to now.
    below : Area or None
        The non-empty rows directly below, in the name's columns.
    right : Area or None
        The non-empty columns directly to the right, in the name's rows.
    table : str or None
        The Excel table the name follows, if it is a name on a table (the remedy is then to
        resize the table, not the name).
    more_below, more_right : bool
        The scan stopped at :data:`MAX_ROWS` / :data:`MAX_COLS` with data still going on.
    """

    name: str
    area: Area
    below: Area | None
    right: Area | None
    table: str | None = None
    more_below: bool = False
    more_right: bool = False

    @property
    def cells(self) -> tuple[Area, ...]:
        """The ranges left out, below first."""
        return tuple(a for a in (self.below, self.right) if a is not None)

    @property
    def message(self) -> str:
        """One sentence naming the cells and the remedy, e.g. ``"10 rows below FL_RETURNS
        (Returns!A262:Y271) and 1 column to its right (Returns!Z1:Z261) hold data the name
        leaves out: extend the name, or make the range an Excel Table"``."""
        owner = self.name if self.table is None else f"table {self.table!r} of {self.name}"
        phrases, counts = [], []
        if self.below is not None:
            counts.append(self.below.shape[0])
            phrases.append(f"{_count(counts[-1], 'row', self.more_below)} below {owner} "
                           f"({_show(self.below)})")
        if self.right is not None:
            counts.append(self.right.shape[1])
            where = "to its right" if phrases else f"to the right of {owner}"
            phrases.append(f"{_count(counts[-1], 'column', self.more_right)} {where} "
                           f"({_show(self.right)})")
        single = counts == [1] and not (self.more_below or self.more_right)
        if self.table is None:
            leaves, fix = "the name leaves out", "extend the name, or make the range an Excel Table"
        else:
            leaves = "the table leaves out"
            fix = f"resize table {self.table!r} over them (Table Design > Resize Table)"
        return f"{' and '.join(phrases)} {'holds' if single else 'hold'} data {leaves}: {fix}"

    def __str__(self) -> str:
        return self.message


def _count(n: int, word: str, more: bool) -> str:
    return f"{'at least ' if more else ''}{n} {word}{'' if n == 1 else 's'}"


def _show(area: Area) -> str:
    text = str(area)
    return text.rsplit(":", 1)[0] if area.shape == (1, 1) else text


def _blank(v) -> bool:
    return v is None or (isinstance(v, str) and not v.strip())


def _run_length(io: WorkbookIO, sheet: str, start: int, lo: int, hi: int, *, rows: bool,
                others: list[Area]) -> tuple[int, bool]:
    """How many rows (or columns) from ``start`` hold data in ``lo..hi`` of the other axis,
    until the first blank one; and whether the scan stopped at its limit instead."""
    cap = MAX_ROWS if rows else MAX_COLS
    edge = (MAX_ROW if rows else MAX_COL) - start + 1  # rows (columns) left on the sheet
    limit = min(cap, edge)
    chunk, found = (_FIRST_ROWS if rows else _FIRST_COLS), 0
    while found < limit:
        n = min(chunk, limit - found)
        first = start + found
        area = (Area(sheet, first, lo, first + n - 1, hi) if rows
                else Area(sheet, lo, first, hi, first + n - 1))
        values = io.read(area)
        for k in range(n):
            if rows:
                line = [((first + k, lo + j), v) for j, v in enumerate(values[k])]
            else:
                line = [((lo + j, first + k), row[k]) for j, row in enumerate(values)]
            if all(_blank(v) or _in_other(others, *rc) for rc, v in line):
                return found + k, False
        found += n
        chunk *= 2
    return found, found == cap and cap < edge


def _in_other(others: list[Area], row: int, col: int) -> bool:
    return any(a.contains(row, col) for a in others)


def adjoining_data(
    io: WorkbookIO,
    name: str,
    area: Area,
    *,
    names: dict[str, Area] | None = None,
    table: tuple[str, Area] | None = None,
    right: bool | None = None,
) -> Adjoining | None:
    """Data directly below or to the right of ``area`` that the name ``name`` leaves out.

    Parameters
    ----------
    io : WorkbookIO
        The workbook; only :meth:`~WorkbookIO.read` of strips next to ``area`` is used (and
        :meth:`~WorkbookIO.names` if ``names`` is not given).
    name : str
        The contract name, for the message.
    area : Area
        The range the name refers to now.
    names : dict, optional
        ``io.names()`` if already read: cells of every other ``FL_*`` name count as blank.
    table : (str, Area), optional
        The table the name follows and the whole table's range; rows below are then looked
        for under the table (below its totals row). Found from the adapter when not given.
    right : bool, optional
        Whether to look to the right too. By default yes for a panel or a matrix (a new
        column is a new asset, factor or grouping) and for a name outside the contract, no
        for the key | value, list and series inputs, whose columns are fixed (a column beside
        them is commentary, like the template's "what it does" column beside FL_SETTINGS).

    Returns
    -------
    Adjoining or None
        None when nothing adjoins the range.
    """
    if names is None:
        names = io.names()
    if table is None:
        table = _name_tables(io).get(name.upper())
    if right is None:
        right = name.upper() not in INPUTS or spec(name).layout in _GROWS_RIGHT
    n_right, more_right = 0, False
    others = [a for n, a in names.items()
              if n.upper().startswith("FL_") and n.upper() != name.upper()
              and a.sheet.lower() == area.sheet.lower()]
    bottom = max(area.max_row, table[1].max_row) if table is not None else area.max_row
    n_below, more_below = _run_length(io, area.sheet, bottom + 1, area.min_col, area.max_col,
                                      rows=True, others=others)
    if right:
        n_right, more_right = _run_length(io, area.sheet, area.max_col + 1, area.min_row,
                                          area.max_row, rows=False, others=others)
    if not n_below and not n_right:
        return None
    below_area = (Area(area.sheet, bottom + 1, area.min_col, bottom + n_below, area.max_col)
                  if n_below else None)
    right_area = (Area(area.sheet, area.min_row, area.max_col + 1, area.max_row,
                       area.max_col + n_right) if n_right else None)
    return Adjoining(name.upper(), area, below_area, right_area, table[0] if table else None,
                     more_below, more_right)


def _name_tables(io: WorkbookIO) -> dict[str, tuple[str, Area]]:
    # The file and xlwings adapters know which names follow a table; another WorkbookIO
    # (an in-memory test book) has none.
    finder = getattr(io, "_name_tables", None)
    return finder() if finder is not None else {}


def adjoining_inputs(io: WorkbookIO, names: dict[str, Area] | None = None) -> list[Adjoining]:
    """:func:`adjoining_data` for every contract input the workbook defines, in contract
    order: what ``inspect`` reports and a job puts in FL_STATUS.

    Parameters
    ----------
    io : WorkbookIO
    names : dict, optional
        ``io.names()`` if already read.
    """
    if names is None:
        names = io.names()
    tables = _name_tables(io)
    out = []
    for name in INPUTS:
        area = names.get(name)
        if area is None:
            continue
        found = adjoining_data(io, name, area, names=names, table=tables.get(name))
        if found is not None:
            out.append(found)
    return out
