"""Cell-level reading and editing of one worksheet part (``<sheetData>``) with lxml.

The editor changes only the ``<c>`` elements inside the target rectangle (plus ``<row>`` elements
it has to create, ``<dimension>`` and, when a shared formula's master cell is overwritten, the
formulas of that master's dependents, which are rewritten as ordinary formulas with the same
meaning). Every check runs before the first mutation, so a refused edit leaves the part intact.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from lxml import etree

from ._xlsx_opc import MAIN, WORKSHEET_ORDER, XML_SPACE, insert_in_order
from ._xlsx_refs import cell_col, col_letters, format_range, parse_cell, parse_range

__all__ = ["TableInfo", "WorksheetXml"]

_ROW = f"{{{MAIN}}}row"
_C = f"{{{MAIN}}}c"
_F = f"{{{MAIN}}}f"
_V = f"{{{MAIN}}}v"
_IS = f"{{{MAIN}}}is"
_T = f"{{{MAIN}}}t"
_EXT = f"{{{MAIN}}}extLst"
# Attributes that describe a cell's old content rather than its format: dropped on overwrite.
# cm/vm point into metadata.xml (dynamic arrays, rich values) and are wrong for plain values.
_CONTENT_ATTRS = ("t", "cm", "vm")


@dataclass(frozen=True)
class TableInfo:
    """An Excel table (ListObject) on the sheet: enough to protect its header row and to
    resolve a name that refers to it (``bounds`` covers header, data and totals rows)."""

    name: str
    bounds: tuple[int, int, int, int]
    header_rows: int
    columns: tuple[str, ...]
    totals_rows: int = 0


@dataclass
class EditResult:
    """What an edit changed, for the package-level bookkeeping."""

    formulas_removed: int = 0
    cells_changed: int = 0
    rewritten_dependents: list[str] = field(default_factory=list)


def _intersects(a, b) -> bool:
    return not (a[2] < b[0] or b[2] < a[0] or a[3] < b[1] or b[3] < a[1])


def _contains(outer, inner) -> bool:
    return outer[0] <= inner[0] and outer[1] <= inner[1] and inner[2] <= outer[2] and (
        inner[3] <= outer[3]
    )


class WorksheetXml:
    """One parsed worksheet part.

    Parameters
    ----------
    name : str
        Sheet name, used in error messages.
    root : lxml.etree._Element
        The parsed ``<worksheet>`` element (edited in place).
    """

    def __init__(self, name: str, root: etree._Element):
        self.name = name
        self.root = root
        self.sheet_data = root.find(f"{{{MAIN}}}sheetData")
        if self.sheet_data is None:
            raise ValueError(f"sheet {name!r}: worksheet part has no <sheetData>")
        self._explicit_refs()
        self._rows: dict[int, etree._Element] | None = None
        self._row_keys: list[int] = []

    # ---------------------------------------------------------------- indexing
    def _explicit_refs(self) -> None:
        """Give every row and cell an explicit ``r``.

        ``r`` is optional in SpreadsheetML (position then follows the previous sibling);
        inserting an element into such a sheet would silently shift its neighbours.
        """
        prev_row = 0
        for row in self.sheet_data.iterchildren(_ROW):
            r = row.get("r")
            rnum = int(r) if r else prev_row + 1
            if not r:
                row.set("r", str(rnum))
            prev_row = rnum
            prev_ref = None
            for c in row.iterchildren(_C):
                ref = c.get("r")
                if not ref:
                    col = parse_cell(prev_ref, self.name)[1] + 1 if prev_ref else 1
                    ref = f"{col_letters(col)}{rnum}"
                    c.set("r", ref)
                prev_ref = ref

    def rows(self) -> dict[int, etree._Element]:
        """Row number -> ``<row>`` element."""
        if self._rows is None:
            self._rows = {int(row.get("r")): row for row in self.sheet_data.iterchildren(_ROW)}
            self._row_keys = sorted(self._rows)
        return self._rows

    def _row_cells(self, row: etree._Element) -> dict[int, etree._Element]:
        return {cell_col(c.get("r")): c for c in row.iterchildren(_C)}

    def cells_in(self, bounds):
        """Yield ``(row, col, <c>)`` for the existing cells inside ``bounds``."""
        r1, c1, r2, c2 = bounds
        for rnum, row in self.rows().items():
            if r1 <= rnum <= r2:
                for col, c in self._row_cells(row).items():
                    if c1 <= col <= c2:
                        yield rnum, col, c

    def cell_map(self) -> dict[tuple[int, int], etree._Element]:
        """Every existing cell by ``(row, col)`` (for comparisons in tests and checks)."""
        return {
            (rnum, col): c
            for rnum, row in self.rows().items()
            for col, c in self._row_cells(row).items()
        }

    def merged_ranges(self) -> list[tuple[int, int, int, int]]:
        """Bounds of every merged range on the sheet."""
        merges = self.root.find(f"{{{MAIN}}}mergeCells")
        if merges is None:
            return []
        return [
            parse_range(m.get("ref"), self.name)
            for m in merges.iterchildren(f"{{{MAIN}}}mergeCell")
        ]

    def data_validation_ranges(self) -> list[tuple[int, int, int, int]]:
        """Bounds of every range a data validation applies to.

        Both the classic ``<dataValidations>`` and the Excel 2010 extension
        (``x14:dataValidation`` with an ``xm:sqref`` child, written when a list refers to
        another sheet) are read. A reference that does not parse is skipped.
        """
        out = []
        holders = [self.root.find(f"{{{MAIN}}}dataValidations"), self.root.find(_EXT)]
        for holder in (h for h in holders if h is not None):
            for el in holder.iter():
                if not isinstance(el.tag, str) or etree.QName(el).localname != "dataValidation":
                    continue
                sqref = el.get("sqref")
                if sqref is None:
                    sqref = next((c.text for c in el if isinstance(c.tag, str)
                                  and etree.QName(c).localname == "sqref"), None)
                for ref in (sqref or "").split():
                    try:
                        out.append(parse_range(ref, self.name))
                    except ValueError:
                        continue
        return out

    def array_formulas(self) -> list[tuple[str, tuple[int, int, int, int], tuple[int, int], str]]:
        """``(kind, bounds, master cell, formula text)`` of every array formula (kind
        ``"array"``) and data table (``"dataTable"``)."""
        out = []
        for f in self.sheet_data.iter(_F):
            if f.get("t") in ("array", "dataTable") and f.get("ref"):
                try:
                    out.append((f.get("t"), parse_range(f.get("ref"), self.name),
                                self._formula_cell(f), (f.text or "").strip()))
                except ValueError:
                    continue
        return out

    def formula_text(self, c: etree._Element) -> str | None:
        """The formula of cell ``c`` as Excel shows it (without ``=``), or None if it has none.

        A dependent of a shared formula stores no text: it is translated from its master.
        """
        f = c.find(_F)
        if f is None:
            return None
        text = (f.text or "").strip()
        if text or f.get("t") != "shared" or f.get("si") is None:
            return text
        for other in self.sheet_data.iter(_F):
            if (other.get("t") == "shared" and other.get("si") == f.get("si")
                    and (other.text or "").strip()):
                origin = self._formula_cell(other)
                try:
                    return _translate(other.text.strip(), origin, self._formula_cell(f),
                                      self.name)
                except ValueError:
                    return other.text.strip()
        return ""

    # ---------------------------------------------------------------- checks
    def _formula_cell(self, f: etree._Element) -> tuple[int, int]:
        return parse_cell(f.getparent().get("r"), self.name)

    def _check(self, bounds, grid, tables) -> dict[etree._Element, str]:
        """Refuse edits Excel would reject; return rewritten formulas for shared dependents."""
        r1, c1, _, _ = bounds
        where = f"{self.name}!{format_range(*bounds)}"

        def value_at(r, c):
            return grid[r - r1][c - c1]

        # An array formula (or data table) is edited as a whole in Excel: a partial overwrite
        # cannot be represented, so it is refused rather than silently breaking the formula.
        shared: dict[str, list[etree._Element]] = {}
        for f in self.sheet_data.iter(_F):
            kind = f.get("t", "normal")
            if kind in ("array", "dataTable") and f.get("ref"):
                area = parse_range(f.get("ref"), self.name)
                if _intersects(area, bounds) and not _contains(bounds, area):
                    raise ValueError(
                        f"{where}: would overwrite part of the {kind} formula in "
                        f"{self.name}!{format_range(*area)}; clear or move that formula first"
                    )
            elif kind == "shared" and f.get("si") is not None:
                shared.setdefault(f.get("si"), []).append(f)

        for merge in self.merged_ranges():
            if not _intersects(merge, bounds):
                continue
            for r in range(max(merge[0], bounds[0]), min(merge[2], bounds[2]) + 1):
                for c in range(max(merge[1], bounds[1]), min(merge[3], bounds[3]) + 1):
                    if (r, c) != (merge[0], merge[1]) and value_at(r, c) is not None:
                        raise ValueError(
                            f"{self.name}!{col_letters(c)}{r}: cell is hidden inside the merged "
                            f"range {format_range(*merge)}; a value written there would not show"
                        )

        for table in tables:
            tr1, tc1, _, tc2 = table.bounds
            if table.header_rows < 1 or not (bounds[0] <= tr1 <= bounds[2]):
                continue
            for c in range(max(tc1, bounds[1]), min(tc2, bounds[3]) + 1):
                expected = table.columns[c - tc1] if c - tc1 < len(table.columns) else None
                new = value_at(tr1, c)
                if new is None or new[0] != "s" or new[1] != expected:
                    raise ValueError(
                        f"{self.name}!{col_letters(c)}{tr1}: header cell of table "
                        f"{table.name!r} (column {expected!r}); Excel requires it to keep the "
                        "column's name"
                    )

        # A shared formula stores its text only in the master cell. If the master is
        # overwritten, dependents outside the edit get their own, translated formula.
        rewrites: dict[etree._Element, str] = {}
        for group in shared.values():
            masters = [f for f in group if f.get("ref") is not None or (f.text or "").strip()]
            if not masters:
                continue
            master = masters[0]
            mr, mc = self._formula_cell(master)
            if not (bounds[0] <= mr <= bounds[2] and bounds[1] <= mc <= bounds[3]):
                continue
            for f in group:
                if f is master:
                    continue
                r, c = self._formula_cell(f)
                if bounds[0] <= r <= bounds[2] and bounds[1] <= c <= bounds[3]:
                    continue
                rewrites[f] = _translate(master.text or "", (mr, mc), (r, c), self.name)
        return rewrites

    # ---------------------------------------------------------------- editing
    def edit(self, top_left: tuple[int, int], grid, tables=()) -> EditResult:
        """Write ``grid`` (rows of ``(kind, text)`` or ``None`` = clear) at ``top_left``.

        Raises
        ------
        ValueError
            Before any change, if the edit would cut an array formula, hide a value inside a
            merged range or rename a table header.
        """
        r0, c0 = top_left
        bounds = (r0, c0, r0 + len(grid) - 1, c0 + len(grid[0]) - 1)
        rewrites = self._check(bounds, grid, tables)
        result = EditResult()

        for f, text in rewrites.items():
            for attr in ("t", "si", "ref"):
                f.attrib.pop(attr, None)
            f.text = text
            result.rewritten_dependents.append(f.getparent().get("r"))

        col_styles = self._column_styles()
        rows = self.rows()
        for i, values in enumerate(grid):
            rnum = r0 + i
            row = rows.get(rnum)
            if row is None:
                if all(v is None for v in values):
                    continue
                row = self._new_row(rnum)
            cells = self._row_cells(row)
            created = False
            for j, value in enumerate(values):
                col = c0 + j
                c = cells.get(col)
                if value is None:
                    if c is not None:
                        result.formulas_removed += self._clear_cell(c)
                        result.cells_changed += 1
                        if c.get("s") is None and len(c) == 0 and set(c.attrib) <= {"r"}:
                            row.remove(c)  # nothing left to keep: no style, no content
                            del cells[col]
                    continue
                if c is None:
                    c = etree.SubElement(row, _C, r=f"{col_letters(col)}{rnum}")
                    style = self._inherited_style(row, col, col_styles)
                    if style:
                        c.set("s", style)
                    cells[col] = c
                    created = True
                result.formulas_removed += self._set_cell(c, value)
                result.cells_changed += 1
            if created:
                self._sort_row(row, cells)
        self._update_dimension()
        return result

    def _new_row(self, rnum: int) -> etree._Element:
        rows = self.rows()
        keys = self._row_keys
        row = etree.Element(_ROW, r=str(rnum))
        pos = bisect.bisect_right(keys, rnum)
        if pos < len(keys):
            rows[keys[pos]].addprevious(row)
        elif keys:
            rows[keys[-1]].addnext(row)
        else:
            self.sheet_data.insert(0, row)
        keys.insert(pos, rnum)
        rows[rnum] = row
        return row

    def _sort_row(self, row: etree._Element, cells: dict[int, etree._Element]) -> None:
        # Cells must be in column order; re-append the <c> children sorted, keeping any
        # trailing extLst last.
        ext = row.find(_EXT)
        for col in sorted(cells):
            row.append(cells[col])
        if ext is not None:
            row.append(ext)
        spans = row.get("spans")
        if spans is not None:
            # spans is only an optimisation hint but must not exclude existing cells
            row.set("spans", f"{min(cells)}:{max(cells)}")

    def _column_styles(self) -> list[tuple[int, int, str]]:
        cols = self.root.find(f"{{{MAIN}}}cols")
        if cols is None:
            return []
        return [
            (int(col.get("min")), int(col.get("max")), col.get("style"))
            for col in cols.iterchildren(f"{{{MAIN}}}col")
            if col.get("style") not in (None, "0")
        ]

    @staticmethod
    def _inherited_style(row, col: int, col_styles) -> str | None:
        # A new cell shows the row format if the row has one, else the column format: keep what
        # the user sees in the empty cell.
        if row.get("customFormat") in ("1", "true") and row.get("s") not in (None, "0"):
            return row.get("s")
        for lo, hi, style in col_styles:
            if lo <= col <= hi:
                return style
        return None

    @staticmethod
    def _clear_cell(c: etree._Element) -> int:
        removed = 0
        for child in list(c):
            if child.tag in (_F, _V, _IS):
                removed += child.tag == _F
                c.remove(child)
        for attr in _CONTENT_ATTRS:
            c.attrib.pop(attr, None)
        return removed

    def _set_cell(self, c: etree._Element, value: tuple[str, str]) -> int:
        removed = self._clear_cell(c)
        kind, text = value
        ext = c.find(_EXT)
        if kind == "s":
            c.set("t", "inlineStr")
            node = etree.Element(_IS)
            t = etree.SubElement(node, _T)
            t.text = text
            if text != text.strip() or "\n" in text:
                t.set(XML_SPACE, "preserve")
        else:
            if kind != "n":
                c.set("t", kind)
            node = etree.Element(_V)
            node.text = text
        if ext is not None:
            ext.addprevious(node)
        else:
            c.append(node)
        return removed

    def _update_dimension(self) -> None:
        """Make ``<dimension>`` cover every cell (never shrinking what Excel recorded)."""
        bounds = None
        for rnum, row in self.rows().items():
            cols = [cell_col(c.get("r")) for c in row.iterchildren(_C)]
            if not cols:
                continue
            b = (rnum, min(cols), rnum, max(cols))
            bounds = b if bounds is None else _union(bounds, b)
        dim = self.root.find(f"{{{MAIN}}}dimension")
        if dim is not None and dim.get("ref"):
            try:
                old = parse_range(dim.get("ref"), self.name)
            except ValueError:
                old = None
            # Excel writes "A1" for an empty sheet; that is not a used range worth keeping.
            if old is not None and bounds is not None and old != (1, 1, 1, 1):
                bounds = _union(bounds, old)
            elif old is not None and bounds is None:
                return
        if bounds is None:
            bounds = (1, 1, 1, 1)
        ref = format_range(*bounds)
        if dim is None:
            dim = insert_in_order(self.root, etree.Element(f"{{{MAIN}}}dimension"), WORKSHEET_ORDER)
        if dim.get("ref") != ref:
            dim.set("ref", ref)


def _union(a, b) -> tuple[int, int, int, int]:
    return min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])


def _translate(formula: str, origin: tuple[int, int], dest: tuple[int, int], sheet: str) -> str:
    """Shared-formula text of ``origin`` as it reads in ``dest`` (relative refs shifted)."""
    from openpyxl.formula.translate import Translator

    src = f"{col_letters(origin[1])}{origin[0]}"
    dst = f"{col_letters(dest[1])}{dest[0]}"
    try:
        return Translator("=" + formula, origin=src).translate_formula(dst)[1:]
    except Exception as exc:  # the translator raises bare exceptions on odd syntax
        raise ValueError(
            f"{sheet}!{src}: cannot move the shared formula ={formula} to {dst} ({exc}); "
            "the edit was refused"
        ) from None
