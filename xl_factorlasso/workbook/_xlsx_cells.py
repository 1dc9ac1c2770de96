"""Reading the cells of a workbook package: values as Excel stores them, and what a write into a
range would destroy (values, formulas, comments, merged ranges, data validations, tables).

A mixin of :class:`._xlsx.XlsxPackage`; it relies on the package's part, relationship and sheet
helpers (``_get_xml``, ``_rels``, ``_find``, ``_part_of``, ``_worksheet``, ``_tables``,
``_date1904``).
"""

from __future__ import annotations

import datetime as _dt
import math
from typing import TYPE_CHECKING

from lxml import etree

from ._xlsx_opc import MAIN, RT_COMMENTS, RT_SHARED_STRINGS, RT_STYLES, RT_THREADED_COMMENTS
from ._xlsx_refs import format_range, parse_cell, parse_range
from ._xlsx_values import (
    BadValue,
    ExcelError,
    FormulaNoValue,
    describe_value,
    from_serial,
    unescape_text,
)

__all__ = ["CellsMixin"]

if TYPE_CHECKING:
    from ._xlsx import _Sheet

MAX_READ_CELLS = 5_000_000  # a full-column name would otherwise allocate gigabytes
# Built-in number formats that display dates or times. 14-22 and 45-47 are the international
# ones; 27-36 and 50-58 are locale-specific (East Asian) date formats.
_BUILTIN_DATE_FORMATS = frozenset([*range(14, 23), *range(27, 37), *range(45, 48), *range(50, 59)])


def _q(tag: str, ns: str = MAIN) -> str:
    return f"{{{ns}}}{tag}"


_TAG_V, _TAG_F, _TAG_IS = _q("v"), _q("f"), _q("is")


class CellsMixin:
    """Cell reading and occupancy (part of :class:`._xlsx.XlsxPackage`)."""

    def _strings(self) -> list[str]:
        if self._shared_strings is None:
            part = self._part_of(RT_SHARED_STRINGS)
            self._shared_strings = []
            if part is not None:
                for si in self._get_xml(part).iterchildren(_q("si")):
                    self._shared_strings.append(unescape_text(_text_of(si)))
        return self._shared_strings

    def _date_style_flags(self) -> list[bool]:
        if self._date_styles is None:
            from openpyxl.styles.numbers import BUILTIN_FORMATS, is_date_format

            part = self._part_of(RT_STYLES)
            flags = []
            if part is not None:
                root = self._get_xml(part)
                custom = {}
                fmts = root.find(_q("numFmts"))
                for nf in fmts.iterchildren(_q("numFmt")) if fmts is not None else ():
                    custom[int(nf.get("numFmtId"))] = nf.get("formatCode", "")
                xfs = root.find(_q("cellXfs"))
                for xf in xfs.iterchildren(_q("xf")) if xfs is not None else ():
                    fid = int(xf.get("numFmtId", "0"))
                    if fid in custom:
                        flags.append(is_date_format(custom[fid]))
                    elif fid in BUILTIN_FORMATS:
                        flags.append(is_date_format(BUILTIN_FORMATS[fid]))
                    else:
                        flags.append(fid in _BUILTIN_DATE_FORMATS)
            self._date_styles = flags
        return self._date_styles

    # ================================================================ reading
    def read_values(self, sheet: str, ref: str) -> list[list]:
        """Values of a rectangular range, row by row.

        Parameters
        ----------
        sheet : str
            Worksheet name.
        ref : str
            A1 range (``"B2:D9"``) or cell.

        Returns
        -------
        list of list
            ``float`` for numbers (``datetime`` if the cell's number format is a date/time
            format), ``str`` for text (shared, inline and formula results), ``bool``,
            :class:`ExcelError` for error values, ``None`` for blanks, and
            :class:`FormulaNoValue` for a formula cell without a cached result, and
            :class:`BadValue` for a cell whose stored content is not a valid value (``NaN``,
            ``INF``, an unparsable number, a shared-string index out of range, a malformed ISO
            date ...: Excel never writes those). Formula cells return their cached value;
            nothing is recalculated.
        """
        info, ws = self._worksheet(sheet)
        bounds = parse_range(ref, info.name)
        nrows, ncols = bounds[2] - bounds[0] + 1, bounds[3] - bounds[1] + 1
        if nrows * ncols > MAX_READ_CELLS:
            raise ValueError(f"{info.name}!{ref}: range of {nrows}x{ncols} cells is too large "
                             f"to read (limit {MAX_READ_CELLS:,})")
        out = [[None] * ncols for _ in range(nrows)]
        for r, c, cell in ws.cells_in(bounds):
            out[r - bounds[0]][c - bounds[1]] = self._cell_value(cell, info.name)
        return out

    def _cell_value(self, c: etree._Element, sheet: str):
        t = c.get("t", "n")
        f = v = node = None
        for child in c:  # one pass over <f>, <v>, <is>: this runs for every cell read
            tag = child.tag
            if tag == _TAG_V:
                v = child
            elif tag == _TAG_F:
                f = child
            elif tag == _TAG_IS:
                node = child
        if t == "inlineStr" and node is not None:
            return unescape_text(_text_of(node))
        text = (v.text or "") if v is not None else None
        if text is None or (text == "" and t != "str"):
            return FormulaNoValue((f.text or "").strip()) if f is not None else None
        if t == "n":
            # float() also takes "nan", "inf", "1e999" and "1_000", none of which Excel writes.
            try:
                number = float(text)
            except ValueError:
                return BadValue(text, f"the stored number {text!r} is not a number")
            if not math.isfinite(number) or "_" in text:
                return BadValue(text, f"the stored number {text!r} is not a finite number")
            style = c.get("s")
            if style is not None and style.isdigit():
                flags = self._date_style_flags()
                idx = int(style)
                if idx < len(flags) and flags[idx]:
                    return from_serial(number, self._date1904())
            return number
        if t == "s":
            strings = self._strings()
            try:
                idx = int(text)
            except ValueError:
                return BadValue(text, f"{text!r} is not a shared-string index")
            if 0 <= idx < len(strings):
                return strings[idx]
            return BadValue(text, f"shared-string index {idx} is out of range (the workbook "
                                  f"has {len(strings)} shared strings)")
        if t == "str":
            return unescape_text(text)
        if t == "b":
            if text.strip() in ("1", "true"):
                return True
            if text.strip() in ("0", "false"):
                return False
            return BadValue(text, f"{text!r} is not a logical value (0 or 1)")
        if t == "e":
            if text.strip().startswith("#"):
                return ExcelError(text.strip())
            return BadValue(text, f"{text!r} is not an Excel error value")
        if t == "d":
            try:
                return _dt.datetime.fromisoformat(text.strip().rstrip("Z"))
            except ValueError:
                return BadValue(text, f"{text!r} is not an ISO 8601 date")
        return BadValue(text, f"unknown cell type t={t!r}")

    # ================================================================ what a write would destroy
    def _comment_cells(self, info: _Sheet) -> set[tuple[int, int]]:
        """Cells with a note (legacy comment) or a threaded comment."""
        cells = set()
        for typ, target in self._rels(info.part).values():
            if typ not in (RT_COMMENTS, RT_THREADED_COMMENTS) or self._find(target) is None:
                continue
            for el in self._get_xml(target).iter():
                if not isinstance(el.tag, str) or el.get("ref") is None:
                    continue
                if etree.QName(el).localname in ("comment", "threadedComment"):
                    try:
                        cells.add(parse_cell(el.get("ref"), info.name))
                    except ValueError:
                        continue
        return cells

    def occupied(self, sheet: str, ref: str) -> list[tuple[int, int, str]]:
        """What a write into ``ref`` would destroy or break, cell by cell.

        Parameters
        ----------
        sheet : str
            Worksheet name.
        ref : str
            A1 range.

        Returns
        -------
        list of (row, col, what)
            Row-major; a cell with several things appears once per thing, in this order: its
            formula (``"a formula =IF(A1>0,\"\",1)"``, also when the cached result is ``""``
            or missing) or value (``"the value 'mine'"``), ``"part of the array formula
            {=...} in G2:G3"``, ``"a comment"`` (a note or a threaded comment), ``"part of the
            merged range E8:F9"``, ``"a data validation"``, ``"part of table 'Tbl1'"``. Cells
            that are empty but formatted are not listed.
        """
        info, ws = self._worksheet(sheet)
        bounds = parse_range(ref, info.name)
        if (bounds[2] - bounds[0] + 1) * (bounds[3] - bounds[1] + 1) > MAX_READ_CELLS:
            raise ValueError(f"{info.name}!{ref}: range is too large to check (limit "
                             f"{MAX_READ_CELLS:,} cells)")
        found: dict[tuple[int, int], list[str]] = {}

        def add(r, c, what):
            found.setdefault((r, c), []).append(what)

        def add_area(area, what):
            for r in range(max(area[0], bounds[0]), min(area[2], bounds[2]) + 1):
                for c in range(max(area[1], bounds[1]), min(area[3], bounds[3]) + 1):
                    add(r, c, what)

        arrays = [a for a in ws.array_formulas() if _overlaps(a[1], bounds)]
        for r, c, cell in sorted(ws.cells_in(bounds), key=lambda t: t[:2]):
            formula = ws.formula_text(cell)
            if formula is not None:
                add(r, c, f"a formula ={formula}" if formula else "a formula")
                continue
            if any(_overlaps(area, (r, c, r, c)) for _, area, _, _ in arrays):
                continue  # a computed result of the array formula, described below
            value = self._cell_value(cell, info.name)
            if value is not None and value != "":
                add(r, c, describe_value(value))
        for kind, area, master, text in arrays:
            what = (f"part of the array formula {{={text}}} in {format_range(*area)}"
                    if kind == "array" else f"part of the data table in {format_range(*area)}")
            for r in range(max(area[0], bounds[0]), min(area[2], bounds[2]) + 1):
                for c in range(max(area[1], bounds[1]), min(area[3], bounds[3]) + 1):
                    if (r, c) != master:
                        add(r, c, what)
        for r, c in sorted(self._comment_cells(info)):
            if bounds[0] <= r <= bounds[2] and bounds[1] <= c <= bounds[3]:
                add(r, c, "a comment")
        for area in ws.merged_ranges():
            if _overlaps(area, bounds):
                add_area(area, f"part of the merged range {format_range(*area)}")
        for area in ws.data_validation_ranges():
            if _overlaps(area, bounds):
                add_area(area, "a data validation")
        for table in self._tables(info):
            if _overlaps(table.bounds, bounds):
                add_area(table.bounds, f"part of table {table.name!r}")
        out = []
        for (r, c), whats in sorted(found.items()):
            for what in dict.fromkeys(whats):  # a note and a threaded comment are one comment
                out.append((r, c, what))
        return out


def _overlaps(a, b) -> bool:
    return not (a[2] < b[0] or b[2] < a[0] or a[3] < b[1] or b[3] < a[1])


def _text_of(node: etree._Element) -> str:
    """Text of a shared or inline string: ``<t>`` or rich-text runs, without phonetic runs."""
    t = node.find(_q("t"))
    if t is not None:
        return t.text or ""
    return "".join((r.findtext(_q("t")) or "") for r in node.iterchildren(_q("r")))
