"""Adapters between the contract and a real workbook: an xlwings ``Book`` or an .xlsx/.xlsm file.

Both expose the same small surface, so the jobs in :mod:`._jobs` are written once:
read everything first, compute, then write (the remote engine's reads never see its writes).
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ._errors import WorkbookInputError, cell_address
from ._formats import (
    DEFAULT_WIDTH,
    check_cell,
    check_columns,
    check_format_code,
    check_width_bounds,
    column_points,
)

if TYPE_CHECKING:
    from ._xlsx_refs import TableSpan

__all__ = ["Area", "WorkbookIO", "XlsxFileIO", "XlwingsBookIO", "open_workbook"]


@dataclass(frozen=True)
class Area:
    """A rectangular range of one sheet, 1-based and inclusive."""

    sheet: str
    min_row: int
    min_col: int
    max_row: int
    max_col: int

    @property
    def shape(self) -> tuple[int, int]:
        return self.max_row - self.min_row + 1, self.max_col - self.min_col + 1

    @property
    def ref(self) -> str:
        return (
            f"{cell_address(self.min_row, self.min_col)}:{cell_address(self.max_row, self.max_col)}"
        )

    def __str__(self) -> str:
        sheet = f"'{self.sheet}'" if re.search(r"[^A-Za-z0-9_]", self.sheet) else self.sheet
        return f"{sheet}!{self.ref}"

    def resized(self, n_rows: int, n_cols: int) -> Area:
        return Area(
            self.sheet,
            self.min_row,
            self.min_col,
            self.min_row + n_rows - 1,
            self.min_col + n_cols - 1,
        )

    def contains(self, row: int, col: int) -> bool:
        return self.min_row <= row <= self.max_row and self.min_col <= col <= self.max_col


class WorkbookIO(Protocol):
    """What the jobs need from a workbook."""

    def names(self) -> dict[str, Area]:
        """Workbook-scope names that refer to one range, keyed by upper-case name. A name on
        an Excel table (``=tblReturns[#All]``, ``=tblReturns[[#Headers],[#Data]]``) is the
        table's current range; other table references are in :meth:`name_issues`."""

    def read(self, area: Area) -> list[list]:
        """Cell values of ``area`` as rows."""

    def write(self, area: Area, values: list[list]) -> None:
        """Write ``values`` (the shape of ``area``) into ``area``."""

    def clear(self, area: Area) -> None:
        """Clear the contents (not the formats) of ``area``."""

    def define_name(self, name: str, area: Area) -> None:
        """Create or re-point a workbook-scope name."""

    def add_picture(
        self, sheet: str, row: int, col: int, png: bytes, name: str, width: int, height: int
    ) -> None:
        """Put a PNG at cell (row, col), replacing a picture of the same name."""

    def remove_picture(self, sheet: str, name: str) -> None:
        """Delete our picture ``name`` from ``sheet`` if it is there."""

    def name_issues(self) -> dict[str, str]:
        """Defined names that exist but cannot be used as one range, keyed by upper-case name,
        with the reason as a phrase that follows the name (``"refers to #REF! ..."``,
        ``"is a multi-area reference (2 areas: ...)"``, ``"is local to sheet 'Data' ..."``).

        A name in :meth:`names` never appears here; nor do Excel's built-in ``_xlnm.*`` names."""

    def occupied(self, area: Area) -> list[tuple[int, int, str]]:
        """Cells of ``area`` that hold anything a write would destroy or break, row-major, as
        ``(row, col, what)``: a value, a formula (even one whose cached value is ``""``), a
        comment, a merged area, a data validation, a table part. A cell with several such
        things appears once per thing; ``what`` reads in a message (``"the value 'mine'"``,
        ``"a formula =A1*2"``, ``"part of the merged range E8:F9"``)."""

    def write_blocker(self) -> str | None:
        """Why the workbook cannot be written now (open in Excel, locked, read-only), or None."""

    def save(self) -> None:
        """Persist the changes (a file adapter saves atomically; a live Book needs nothing)."""

    # Formats: each returns whether the engine applied it. An engine that cannot format (or
    # not this) returns False and changes nothing; bad arguments raise ValueError.
    def set_number_format(self, area: Area, code: str) -> bool:
        """Give every cell of ``area`` (blank ones too) the number format ``code``.

        Parameters
        ----------
        area : Area
        code : str
            An Excel format code in its English (en-US) form: ``"0.000"``, ``"0.0%"``,
            ``"#,##0.00"``, ``"0.00E+00"``, ``"yyyy-mm-dd"``, ``"General"``.

        Returns
        -------
        bool
            True if applied, False if the engine cannot set number formats.
        """

    def set_column_width(self, sheet: str, first_col: int, width: float,
                         last_col: int | None = None) -> bool:
        """Set the width of columns ``first_col..last_col`` (1-based; one column by default).

        Parameters
        ----------
        sheet : str
        first_col : int
        width : float
            Excel's displayed character units, 0..255 (a default column is 8.43).
        last_col : int, optional

        Returns
        -------
        bool
            True if applied, False if the engine cannot set column widths.
        """

    def fit_columns(self, area: Area, min_width: float = DEFAULT_WIDTH,
                    max_width: float = 60.0) -> bool:
        """Size each column of ``area`` to the text its cells in ``area`` display (Excel's
        AutoFit of a selection), within ``[min_width, max_width]`` characters where the
        engine can tell.

        Returns
        -------
        bool
            True if applied, False if the engine cannot size columns.
        """

    def freeze_panes(self, sheet: str, row: int, col: int) -> bool:
        """Freeze the rows above ``row`` and the columns left of ``col`` (1-based).

        ``(2, 1)`` freezes the header row, ``(2, 2)`` the header row and the label column,
        ``(1, 1)`` unfreezes. Idempotent: freezing again at the same cell changes nothing.

        Returns
        -------
        bool
            True if applied, False if the engine cannot freeze panes.
        """


# --------------------------------------------------------------------------- file adapter
class XlsxFileIO:
    """An .xlsx/.xlsm file edited in place, part by part (VBA, ribbon, charts stay intact).

    Opening only reads: a workbook that is open in Excel can be inspected. Writing is checked
    by :meth:`write_blocker` (and again by :meth:`save`), so a file that is open elsewhere,
    locked or read-only is never replaced.

    Parameters
    ----------
    path : str or path-like
        The workbook to read and, on :meth:`save`, to write.
    out : str or path-like, optional
        Save to this path instead of ``path``.
    """

    def __init__(self, path, out=None):
        from ._xlsx import XlsxPackage

        self.path = os.fspath(path)
        self.out = os.fspath(out) if out is not None else self.path
        if not os.path.exists(self.path):
            raise WorkbookInputError(f"no such workbook: {self.path}")
        try:
            self.package = XlsxPackage.open(self.path)
        except ValueError as err:  # the message names the file, the part and what to do
            raise WorkbookInputError(str(err)) from None
        except Exception as err:  # the file cannot be read at all (permissions, a folder)
            raise WorkbookInputError(
                f"{self.path} is not a readable .xlsx/.xlsm file ({err})"
            ) from None

    def names(self) -> dict[str, Area]:
        """Workbook-scope names that refer to one range; a name on an Excel table
        (``=tblReturns[#All]``) is the table's current range, so it follows the table."""
        out = {}
        for dn in self.package.defined_names().values():
            out[dn.name.upper()] = Area(dn.sheet, dn.min_row, dn.min_col, dn.max_row, dn.max_col)
        return out

    def name_issues(self) -> dict[str, str]:
        """Defined names that are not usable ranges, with the reason (see
        :meth:`XlsxPackage.all_defined_names <._xlsx.XlsxPackage.all_defined_names>`)."""
        return self.package.name_issues()

    def _name_tables(self) -> dict[str, tuple[str, Area]]:
        """Usable names that follow a table: ``{NAME: (table name, the whole table)}``, the
        whole table including a totals row the name leaves out (see :mod:`._growth`)."""
        spans = self.package.table_spans()
        out = {}
        for e in self.package.all_defined_names():
            if e.reason is None and e.table is not None:
                t = spans[e.table.lower()]
                out[e.name.upper()] = (t.name, Area(t.sheet, *t.bounds))
        return out

    def read(self, area: Area) -> list[list]:
        return self.package.read_values(area.sheet, area.ref)

    def occupied(self, area: Area) -> list[tuple[int, int, str]]:
        """Values, formulas, comments, merged ranges, data validations and tables in ``area``
        (see :meth:`XlsxPackage.occupied <._xlsx.XlsxPackage.occupied>`)."""
        return self.package.occupied(area.sheet, area.ref)

    def write(self, area: Area, values: list[list]) -> None:
        self.package.write_values(area.sheet, cell_address(area.min_row, area.min_col), values)

    def clear(self, area: Area) -> None:
        self.package.clear_range(area.sheet, area.ref)

    def define_name(self, name: str, area: Area) -> None:
        self.package.set_defined_name(name, area.sheet, area.ref)

    def add_picture(self, sheet, row, col, png, name, width, height) -> None:
        self.package.add_picture(sheet, cell_address(row, col), png, name, width, height)

    def remove_picture(self, sheet, name) -> None:
        self.package.remove_picture(sheet, name)

    def write_blocker(self) -> str | None:
        """Why the file that :meth:`save` would write (``out``, else ``path``) cannot be
        written now -- open in Excel or LibreOffice, locked, read-only -- or None."""
        from ._xlsx_guard import write_blocker

        return write_blocker(self.out)

    def save(self) -> None:
        """Write atomically to ``out``; raises :class:`WorkbookInputError` with the reason of
        :meth:`write_blocker` instead of writing if the file may not be replaced."""
        self.package.save(self.out)

    # Formats are edited in styles.xml and the sheet part (see :mod:`._xlsx_styles`); they
    # always apply, and an edit that changes nothing leaves the parts byte-identical.
    def set_number_format(self, area: Area, code: str) -> bool:
        self.package.set_number_format(area.sheet, area.ref, code)
        return True

    def set_column_width(self, sheet, first_col, width, last_col=None) -> bool:
        last = first_col if last_col is None else last_col
        self.package.set_column_width(sheet, first_col, last, width)
        return True

    def fit_columns(self, area: Area, min_width=DEFAULT_WIDTH, max_width=60.0) -> bool:
        """Widths estimated from the displayed text (no font renderer: see
        :func:`._xlsx_styles.fitted_width`)."""
        check_width_bounds(min_width, max_width)
        self.package.fit_columns(area.sheet, area.ref, min_width, max_width)
        return True

    def freeze_panes(self, sheet, row, col) -> bool:
        self.package.freeze_panes(sheet, row, col)
        return True


# --------------------------------------------------------------------------- xlwings adapter
_REF = re.compile(r"^=?(?:'((?:[^']|'')+)'|([^!]+))!\$?([A-Z]+)\$?(\d+)(?::\$?([A-Z]+)\$?(\d+))?$")


def _col_number(letters: str) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + ord(ch) - 64
    return n


def _parse_refers_to(text: str) -> Area | None:
    m = _REF.match(text.strip())
    if not m:
        return None
    sheet = (m.group(1) or m.group(2)).replace("''", "'")
    c1, r1 = _col_number(m.group(3)), int(m.group(4))
    c2, r2 = (_col_number(m.group(5)), int(m.group(6))) if m.group(5) else (c1, r1)
    return Area(sheet, min(r1, r2), min(c1, c2), max(r1, r2), max(c1, c2))


def _scope_and_name(full: str) -> tuple[str | None, str]:
    """``'My Sheet'!FL_X`` -> ``("My Sheet", "FL_X")``; a workbook-scope name has no sheet."""
    if "!" not in full:
        return None, full
    scope, bare = full.rsplit("!", 1)
    if len(scope) > 1 and scope.startswith("'") and scope.endswith("'"):
        scope = scope[1:-1].replace("''", "'")
    return scope, bare


def _as_rows(value, shape: tuple[int, int]) -> list[list] | None:
    """An engine's 2-D answer (a scalar for one cell, tuples for more) as rows of ``shape``."""
    if not isinstance(value, (list, tuple)):
        value = [[value]]
    elif value and not isinstance(value[0], (list, tuple)):
        value = [list(value)] if shape[0] == 1 else [[v] for v in value]
    rows = [list(r) for r in value]
    if len(rows) != shape[0] or any(len(r) != shape[1] for r in rows):
        return None
    return rows


class XlwingsBookIO:
    """Any xlwings ``Book``: the desktop COM/AppleScript engine or the remote engine.

    What :meth:`occupied` can see depends on the engine. The desktop engines (Excel on Windows
    and macOS) report values, formulas, merged ranges, notes, threaded comments and tables;
    xlwings exposes no data validations, so those are not reported. The remote engine
    (Office.js add-in, xlwings Server) sees only what the request payload carries: values,
    notes (ExcelApi 1.18) and tables. Formulas and merged ranges would need an extra round
    trip to Excel, which a job does not make -- so there a formula whose result is ``""`` and
    an empty merged cell look empty.

    Formats follow what each engine offers (xlwings 0.37, xlwings Server 1.20); a format an
    engine cannot apply is skipped and the method returns False, so formatting never fails a
    job:

    * number formats: the desktop engines (``NumberFormat``) and the remote engine (action
      ``setNumberFormat``, which Office.js applies to the whole range);
    * column widths: characters on the desktop, points on the remote engine (action
      ``setColumnWidth``), converted for the default fonts (:func:`._formats.column_points`);
    * :meth:`fit_columns`: Excel's AutoFit of the range's cells (remote: ``setAutofit``, which
      xlwings Server restricts to the range's rows). The desktop clamps the result to the
      bounds; the remote engine cannot read widths back, so there the bounds do not apply;
    * frozen panes: xlwings' ``sheet.freeze_panes`` where the engine has it (remote:
      ``freezePaneAtRange`` / ``freezePaneUnfreeze``); on desktop Excel, which xlwings does
      not cover, the book window's ``FreezePanes``/``SplitRow``/``SplitColumn`` (COM on
      Windows, AppleScript on macOS) with the sheet activated for a moment, screen updating
      off, and the active sheet restored;
    * a reading engine (calamine) formats nothing.
    """

    def __init__(self, book):
        self.book = book

    def _book_tables(self) -> dict[str, TableSpan]:
        """Every table the engine can see, keyed by lower-case name (the remote engine's
        payload carries each table's ``range_address``, header and totals row addresses;
        the desktop engines ask Excel)."""
        from ._xlsx_refs import TableSpan

        out: dict[str, TableSpan] = {}
        for sheet in self.book.sheets:
            try:
                tables = list(sheet.tables)
            except Exception:  # an engine or sheet without tables
                continue
            for table in tables:
                try:
                    rng = table.range
                    rows, cols = rng.shape
                    bounds = (rng.row, rng.column, rng.row + rows - 1, rng.column + cols - 1)
                    header = 0 if table.header_row_range is None else 1
                    totals = 0 if table.totals_row_range is None else 1
                    out.setdefault(str(table.name).lower(), TableSpan(
                        str(table.name), sheet.name, bounds, header, totals))
                except Exception:  # a table the engine cannot describe: a name on it says so
                    continue
        return out

    def _classify_names(self) -> tuple[dict[str, Area], dict[str, str], dict[str, tuple]]:
        from ._xlsx_refs import parse_name_target, parse_structured_ref

        try:
            sheets = {s.name.lower(): s.name for s in self.book.sheets}
        except Exception:  # an engine that cannot list sheets: do not judge by sheet
            sheets = None
        tables = None

        def book_tables():  # asked of the engine only if a name refers to a table
            nonlocal tables
            if tables is None:
                tables = self._book_tables()
            return tables

        areas: dict[str, Area] = {}
        issues: dict[str, str] = {}
        followed: dict[str, tuple[str, Area]] = {}
        for name in self.book.names:
            try:
                scope, bare = _scope_and_name(str(name.name))
                refers_to = name.refers_to
            except Exception:  # a hidden name the engine cannot describe
                continue
            key = bare.upper()
            if key.startswith("_XLNM.") or key.startswith("_XLFN."):
                continue  # Excel's own names (print areas, future functions)
            reason = None
            if scope is not None:
                reason = (f"is local to sheet {scope!r} (a sheet-scoped name); contract names "
                          "must be workbook-scope: delete it and define it again with Scope "
                          "'Workbook' in Excel's Name Manager")
            elif refers_to is None:
                reason = "is not a single range (the engine does not say what it refers to)"
            else:
                # "=tblReturns[#All]" on every engine: resolved against the tables, not the
                # engine's own resolution, so that all engines accept the same references.
                parsed = parse_name_target(str(refers_to), tables=book_tables)
                if isinstance(parsed, str):
                    reason = parsed
                else:
                    sheet, bounds = parsed
                    if sheets is not None and sheet.lower() not in sheets:
                        reason = f"refers to sheet {sheet!r}, which is not in the workbook"
                    else:
                        actual = sheets[sheet.lower()] if sheets is not None else sheet
                        areas[key] = Area(actual, *bounds)
                        ref = parse_structured_ref(str(refers_to)) if tables else None
                        if ref is not None and ref.table.lower() in tables:
                            t = tables[ref.table.lower()]
                            followed[key] = (t.name, Area(t.sheet, *t.bounds))
            if reason is not None:
                issues[key] = f"{issues[key]}; {reason}" if key in issues else reason
        return areas, {k: v for k, v in issues.items() if k not in areas}, followed

    def names(self) -> dict[str, Area]:
        """Workbook-scope names that refer to one range; a name on an Excel table
        (``=tblReturns[#All]``) is the table's current range."""
        return self._classify_names()[0]

    def name_issues(self) -> dict[str, str]:
        """Defined names that are not usable ranges, parsed from what ``book.names`` gives
        (``=#REF!``, ``=Sheet1!$A:$A``, ``='[other.xlsx]S'!$A$1``, ``=S!$A$1,S!$D$1``,
        ``=tblReturns[#Data]`` ...)."""
        return self._classify_names()[1]

    def _name_tables(self) -> dict[str, tuple[str, Area]]:
        """Usable names that follow a table: ``{NAME: (table name, the whole table)}``."""
        return self._classify_names()[2]

    def _range(self, area: Area):
        sheet = self.book.sheets[area.sheet]
        return sheet.range((area.min_row, area.min_col), (area.max_row, area.max_col))

    def read(self, area: Area) -> list[list]:
        return self._range(area).options(ndim=2).value

    def occupied(self, area: Area) -> list[tuple[int, int, str]]:
        """What a write into ``area`` would destroy, as far as the engine can tell (see the
        class notes); the same ``(row, col, what)`` entries as the file adapter."""
        from ._xlsx_values import describe_value

        sheet = self.book.sheets[area.sheet]
        rng = self._range(area)
        found: dict[tuple[int, int], list[str]] = {}

        def add(r, c, what):
            if area.contains(r, c):
                found.setdefault((r, c), []).append(what)

        values = _as_rows(rng.options(ndim=2).value, area.shape) or []
        try:
            formulas = _as_rows(rng.formula, area.shape)
        except Exception:  # the remote engine: formulas are not in the payload
            formulas = None
        for i, row in enumerate(values):
            for j, v in enumerate(row):
                r, c = area.min_row + i, area.min_col + j
                f = formulas[i][j] if formulas else None
                if isinstance(f, str) and f.startswith("="):
                    add(r, c, f"a formula {f}")
                elif v is not None and v != "":
                    add(r, c, describe_value(v))
        for r, c in self._comment_cells(sheet, area):
            add(r, c, "a comment")
        for bounds in self._merged_areas(sheet, rng, area):
            for r in range(bounds[0], bounds[2] + 1):
                for c in range(bounds[1], bounds[3] + 1):
                    add(r, c, f"part of the merged range {_ref(bounds)}")
        try:
            tables = list(sheet.tables)
        except Exception:
            tables = []
        for table in tables:
            try:
                tr = table.range
                bounds = (tr.row, tr.column, tr.row + tr.shape[0] - 1,
                          tr.column + tr.shape[1] - 1)
                label = table.name
            except Exception:
                continue
            for r in range(max(bounds[0], area.min_row), min(bounds[2], area.max_row) + 1):
                for c in range(max(bounds[1], area.min_col), min(bounds[3], area.max_col) + 1):
                    add(r, c, f"part of table {label!r}")
        return [(r, c, what) for (r, c), whats in sorted(found.items())
                for what in dict.fromkeys(whats)]

    @staticmethod
    def _comment_cells(sheet, area: Area) -> list[tuple[int, int]]:
        cells: list[tuple[int, int]] = []
        for collection in ("notes", "comments"):
            try:
                items = list(getattr(sheet, collection))
            except Exception:  # not on this engine or platform
                continue
            if not items:
                continue
            try:
                cells += [(it.location.row, it.location.column) for it in items]
            except Exception:
                # The remote engine lists notes but cannot say where synchronously; its
                # cell-level ``note`` is answered from the payload without a round trip.
                if collection != "notes":
                    continue
                for r in range(area.min_row, area.max_row + 1):
                    for c in range(area.min_col, area.max_col + 1):
                        try:
                            if sheet.range((r, c)).note is not None:
                                cells.append((r, c))
                        except Exception:
                            break
        return cells

    @staticmethod
    def _merged_areas(sheet, rng, area: Area) -> list[tuple[int, int, int, int]]:
        try:
            merged = rng.merge_cells  # True, False, or None for "some"
        except Exception:  # the remote engine: not in the payload
            return []
        if merged is False:
            return []
        out, covered = [], set()
        for r in range(area.min_row, area.max_row + 1):
            for c in range(area.min_col, area.max_col + 1):
                if (r, c) in covered:
                    continue
                try:
                    m = sheet.range((r, c)).merge_area
                    rows, cols = m.shape
                    bounds = (m.row, m.column, m.row + rows - 1, m.column + cols - 1)
                except Exception:
                    return out
                if rows * cols > 1:
                    out.append(bounds)
                    covered |= {(i, j) for i in range(bounds[0], bounds[2] + 1)
                                for j in range(bounds[1], bounds[3] + 1)}
        return out

    def write(self, area: Area, values: list[list]) -> None:
        self._range(area).value = values

    def clear(self, area: Area) -> None:
        self._range(area).clear_contents()

    def define_name(self, name: str, area: Area) -> None:
        target = "='" + area.sheet.replace("'", "''") + "'!" + _absolute(area.ref)
        existing = {n.name.upper(): n for n in self.book.names}
        if name.upper() in existing:
            try:
                existing[name.upper()].refers_to = target
                return
            except Exception:  # an engine without the setter: delete and add again
                existing[name.upper()].delete()
        self.book.names.add(name, target)

    def add_picture(self, sheet, row, col, png, name, width, height) -> None:
        sh = self.book.sheets[sheet]
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, f"{name}.png")
            with open(path, "wb") as fh:
                fh.write(png)
            anchor = sh.range((row, col))
            if name in [p.name for p in sh.pictures]:
                sh.pictures[name].delete()
            # xlwings sizes pictures in points; ours are pixels at 96 dpi (0.75 pt each)
            sh.pictures.add(path, name=name, anchor=anchor, width=width * 0.75,
                            height=height * 0.75)

    def remove_picture(self, sheet, name) -> None:
        sh = self.book.sheets[sheet]
        if name in [p.name for p in sh.pictures]:
            sh.pictures[name].delete()

    def write_blocker(self) -> str | None:
        """Always None: the workbook is open in the very Excel that receives the writes, and
        Excel itself owns the file."""
        return None

    def save(self) -> None:
        return None

    # ---------------------------------------------------- formats (see the class notes)
    def _engine(self) -> str:
        try:
            return str(self.book.app.engine.name)
        except Exception:  # an engine without an app (a stand-in Book)
            return ""

    def set_number_format(self, area: Area, code: str) -> bool:
        check_format_code(code, str(area))
        try:
            self._range(area).number_format = code
        except Exception:  # noqa: BLE001 - a reading engine, a protected sheet ...
            return False
        return True

    def set_column_width(self, sheet, first_col, width, last_col=None) -> bool:
        last = first_col if last_col is None else last_col
        check_columns(sheet, first_col, last, width)
        try:
            rng = self.book.sheets[sheet].range((1, first_col), (1, last))
            rng.column_width = column_points(width) if self._engine() == "remote" else width
        except Exception:  # noqa: BLE001
            return False
        return True

    def fit_columns(self, area: Area, min_width=DEFAULT_WIDTH, max_width=60.0) -> bool:
        check_width_bounds(min_width, max_width)
        try:
            self._range(area).columns.autofit()
        except Exception:  # noqa: BLE001
            return False
        if self._engine() == "remote":
            return True  # widths cannot be read back synchronously: no clamping there
        sheet = self.book.sheets[area.sheet]
        for col in range(area.min_col, area.max_col + 1):
            try:
                column = sheet.range((1, col))
                width = column.column_width
                if width is not None and not min_width <= width <= max_width:
                    column.column_width = min(max(width, min_width), max_width)
            except Exception:  # noqa: BLE001 - the AutoFit itself was applied
                continue
        return True

    def freeze_panes(self, sheet, row, col) -> bool:
        check_cell(sheet, row, col)
        try:
            sh = self.book.sheets[sheet]
        except Exception:  # noqa: BLE001
            return False
        try:
            panes = sh.freeze_panes
            if (row, col) == (1, 1):
                panes.unfreeze()
            else:
                panes.freeze_at(_frozen_range(row, col))
            return True
        except NotImplementedError:
            pass  # the desktop engines: through the window below
        except Exception:  # noqa: BLE001
            return False
        if self._engine() != "excel":
            return False
        try:
            _freeze_desktop(sh, row, col)
        except Exception:  # noqa: BLE001 - a hidden sheet, Excel busy in a dialog ...
            return False
        return True


def _frozen_range(row: int, col: int) -> str:
    """The range Office.js' ``freezePanes.freezeAt`` freezes for a pane at (row, col):
    ``A1:B1`` for (2, 3), ``1:1`` for (2, 1), ``A:B`` for (1, 3)."""
    from ._xlsx_refs import col_letters

    rows, cols = row - 1, col - 1
    if rows and cols:
        return f"A1:{col_letters(cols)}{rows}"
    if rows:
        return f"1:{rows}"
    return f"A:{col_letters(cols)}"


def _freeze_desktop(sheet, row: int, col: int) -> None:
    """Freeze panes through the book's first window (COM on Windows, AppleScript on macOS).

    The window freezes what it shows, so the sheet is activated (screen updating off) and the
    previously active sheet restored. Scrolling to A1 first makes the frozen rows the sheet's
    first rows.
    """
    import sys

    book = sheet.book
    app = book.app
    previous = book.sheets.active
    updating = app.screen_updating
    app.screen_updating = False
    try:
        sheet.activate()
        if sys.platform.startswith("win"):
            window = book.api.Windows(1)

            def put(prop, value):
                setattr(window, prop, value)

            names = ("FreezePanes", "ScrollRow", "ScrollColumn", "SplitRow", "SplitColumn")
        else:
            window = book.api.windows[1]

            def put(prop, value):
                getattr(window, prop).set(value)

            names = ("freeze_panes", "scroll_row", "scroll_column", "split_row", "split_column")
        freeze, scroll_row, scroll_col, split_row, split_col = names
        put(freeze, False)
        put(split_row, 0)
        put(split_col, 0)
        if (row, col) != (1, 1):
            put(scroll_row, 1)
            put(scroll_col, 1)
            put(split_row, row - 1)
            put(split_col, col - 1)
            put(freeze, True)
    finally:
        try:
            previous.activate()
        finally:
            app.screen_updating = updating


def _ref(bounds) -> str:
    return Area("", *bounds).ref if bounds[:2] != bounds[2:] else cell_address(*bounds[:2])


def _absolute(ref: str) -> str:
    parts = []
    for cell in ref.split(":"):
        m = re.match(r"([A-Z]+)(\d+)", cell)
        parts.append(f"${m.group(1)}${m.group(2)}")
    return ":".join(parts)


def open_workbook(target, out=None) -> WorkbookIO:
    """An adapter for a path (file) or an xlwings ``Book``."""
    if isinstance(target, (str, os.PathLike)):
        return XlsxFileIO(target, out)
    if hasattr(target, "sheets") and hasattr(target, "names"):
        return XlwingsBookIO(target)
    raise TypeError(f"cannot open {type(target).__name__} as a workbook")
