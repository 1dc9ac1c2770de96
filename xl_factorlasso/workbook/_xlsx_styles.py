"""Formats of a workbook package: number formats (``styles.xml``), column widths (``<cols>``) and
frozen panes (``<sheetView><pane>``), edited surgically like the rest of :mod:`._xlsx`.

A mixin of :class:`._xlsx.XlsxPackage`; it relies on the package's part, relationship and sheet
helpers (``_get_xml``, ``_part_of``, ``_add_part``, ``_add_rel``, ``_set_override``,
``_worksheet``, ``_touch``).

Number formats never grow ``styles.xml`` without bound: a format code is stored once (a built-in
id where Excel has one that does not depend on the locale, else one ``<numFmt>``), and a cell's
new ``<xf>`` -- a copy of its current one with the new ``numFmtId`` -- is looked up among the
existing ``cellXfs`` before one is appended. Formatting the same cells again, in this session or
a later one, therefore adds nothing; an edit that changes nothing leaves every part
byte-identical.

Column widths are in Excel's displayed characters and stored as Excel stores them; a column
fitted to its content gets a width estimated from the text its cells display (see
:mod:`._formats`).
"""

from __future__ import annotations

import copy
import datetime as _dt

from lxml import etree

from ._formats import (
    DEFAULT_WIDTH,
    check_cell,
    check_columns,
    check_format_code,
    check_width_bounds,
    display_text,
    displayed_width,
    fitted_width,
    stored_width,
)
from ._xlsx_opc import MAIN, RT_STYLES, WORKSHEET_ORDER, insert_in_order
from ._xlsx_refs import MAX_COL, col_letters, format_range, parse_cell, parse_range

__all__ = ["StylesMixin"]

CT_STYLES = "application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"
MAX_FORMAT_CELLS = 1_000_000  # a whole-column area would otherwise create a million cells
_FIRST_CUSTOM_ID = 164  # ids below are reserved for built-in formats

# Built-in formats whose display does not depend on the locale: a code equal to one of these is
# stored as its id, no <numFmt>. (14-22 are dates shown in the system's short-date style, 5-8
# and 37-44 currency/accounting in the system's currency: a custom code is exact there.)
BUILTIN_FORMATS = {
    0: "General", 1: "0", 2: "0.00", 3: "#,##0", 4: "#,##0.00", 9: "0%", 10: "0.00%",
    11: "0.00E+00", 12: "# ?/?", 13: "# ??/??", 45: "mm:ss", 46: "[h]:mm:ss", 47: "mmss.0",
    48: "##0.0E+0", 49: "@",
}
_BUILTIN_IDS = {code: i for i, code in BUILTIN_FORMATS.items()}
_XF_DEFAULT = {"numFmtId": "0", "fontId": "0", "fillId": "0", "borderId": "0"}
# Child order of CT_Stylesheet (ECMA-376 Part 1, 18.8.39).
STYLESHEET_ORDER = (
    "numFmts", "fonts", "fills", "borders", "cellStyleXfs", "cellXfs", "cellStyles", "dxfs",
    "tableStyles", "colors", "extLst",
)
_SHEETVIEW_ORDER = ("pane", "selection", "pivotSelection", "extLst")


def _q(tag: str, ns: str = MAIN) -> str:
    return f"{{{ns}}}{tag}"


# =================================================================== the mixin
class StylesMixin:
    """Number formats, column widths and frozen panes (part of :class:`._xlsx.XlsxPackage`)."""

    # ------------------------------------------------------------ styles.xml
    def _styles_root(self, create: bool) -> etree._Element | None:
        part = self._part_of(RT_STYLES)
        if part is None:
            if not create:
                return None
            name = "xl/styles.xml"
            if self._find(name) is not None:  # an orphan part of that name: do not reuse it
                name = self._unused_name("xl/styles{}.xml")
            part = self._add_part(name, root=_minimal_stylesheet())
            self._set_override(part, CT_STYLES)
            self._add_rel(self._workbook_part, RT_STYLES, part)
        return self._get_xml(part)

    def _touch_styles(self) -> None:
        self._touch(self._part_of(RT_STYLES))
        self._date_styles = None  # the date flags of cellXfs are cached by the cell reader

    @staticmethod
    def _custom_formats(root) -> dict[int, str]:
        fmts = root.find(_q("numFmts"))
        out = {}
        for nf in fmts.iterchildren(_q("numFmt")) if fmts is not None else ():
            try:
                out[int(nf.get("numFmtId"))] = nf.get("formatCode", "")
            except (TypeError, ValueError):
                continue
        return out

    def _format_code(self, root, fmt_id: int) -> str:
        """The code of number format ``fmt_id`` (custom, or built-in as openpyxl knows it)."""
        from openpyxl.styles.numbers import BUILTIN_FORMATS as ALL_BUILTIN

        custom = self._custom_formats(root) if root is not None else {}
        if fmt_id in custom:
            return custom[fmt_id]
        return ALL_BUILTIN.get(fmt_id, "General")

    def _format_id(self, root, code: str) -> int:
        """The id for ``code``: a built-in one, an existing ``<numFmt>``, or a new one."""
        if code in _BUILTIN_IDS:
            return _BUILTIN_IDS[code]
        custom = self._custom_formats(root)
        for fmt_id, existing in sorted(custom.items()):
            if existing == code and fmt_id >= _FIRST_CUSTOM_ID:
                return fmt_id
        fmts = root.find(_q("numFmts"))
        if fmts is None:
            fmts = insert_in_order(root, etree.Element(_q("numFmts")), STYLESHEET_ORDER)
        new_id = max([_FIRST_CUSTOM_ID - 1, *custom]) + 1
        etree.SubElement(fmts, _q("numFmt"), numFmtId=str(new_id), formatCode=code)
        fmts.set("count", str(len(fmts.findall(_q("numFmt")))))
        self._touch_styles()
        return new_id

    def _cell_xfs(self, root) -> etree._Element:
        xfs = root.find(_q("cellXfs"))
        if xfs is None or xfs.find(_q("xf")) is None:
            _ensure_defaults(root)
            xfs = root.find(_q("cellXfs"))
            self._touch_styles()
        return xfs

    def _xf_with_format(self, root, old: int, code: str) -> int:
        """Index of a cellXfs entry equal to entry ``old`` but with number format ``code``."""
        # (old xf, code) -> new xf for this package's lifetime; the package's __init__ does not
        # know about formats, hence the lazy attribute.
        cache = self.__dict__.setdefault("_xf_cache", {})
        if (old, code) in cache:
            return cache[(old, code)]
        xfs = self._cell_xfs(root)
        entries = xfs.findall(_q("xf"))
        base = entries[old] if 0 <= old < len(entries) else entries[0]
        if self._format_code(root, _int(base.get("numFmtId"))) == code:
            cache[(old, code)] = old if 0 <= old < len(entries) else 0
            return cache[(old, code)]
        new = copy.deepcopy(base)
        new.set("numFmtId", str(self._format_id(root, code)))
        new.set("applyNumberFormat", "1")
        key = _xf_key(new)
        # An equal entry from an earlier run (or the workbook's author) is reused: repeated
        # runs must not grow styles.xml.
        found = next((i for i, xf in enumerate(entries) if _xf_key(xf) == key), None)
        if found is None:
            xfs.append(new)
            xfs.set("count", str(len(entries) + 1))
            self._touch_styles()
            found = len(entries)
        cache[(old, code)] = found
        return found

    # ------------------------------------------------------------ number formats
    def _xf_codes(self) -> list[str]:
        """The number format code of every cellXfs entry, by index."""
        root = self._styles_root(create=False)
        xfs = root.find(_q("cellXfs")) if root is not None else None
        if xfs is None:
            return []
        return [self._format_code(root, _int(xf.get("numFmtId"))) for xf in xfs.findall(_q("xf"))]

    @staticmethod
    def _style_at(ws, r: int, c: int, col_styles) -> str | None:
        """The ``s`` a cell shows: its own, else its row's or its column's (as in Excel)."""
        row = ws.rows().get(r)
        cell = ws._row_cells(row).get(c) if row is not None else None
        if cell is not None:
            return cell.get("s")
        if row is not None:
            return ws._inherited_style(row, c, col_styles)
        return _style_in(col_styles, c)

    def number_format(self, sheet: str, cell: str) -> str:
        """The number format code of ``cell`` (``"General"`` when it has none).

        A cell that does not exist shows its row's or column's format, as in Excel.
        """
        info, ws = self._worksheet(sheet)
        r, c = parse_cell(cell, info.name)
        return _code_of(self._xf_codes(), self._style_at(ws, r, c, ws._column_styles()))

    def set_number_format(self, sheet: str, ref: str, code: str) -> int:
        """Give every cell of ``ref`` the number format ``code``, keeping the rest of its style.

        Blank cells get the format too (as when a range is formatted in Excel), so values
        written there later show in it.

        Parameters
        ----------
        sheet : str
            Worksheet name.
        ref : str
            A1 range or cell.
        code : str
            An Excel number format code (``"0.000"``, ``"0.0%"``, ``"yyyy-mm-dd"``,
            ``"General"``).

        Returns
        -------
        int
            The number of cells whose style changed (0 when all had the format already; the
            package is then unchanged).

        Raises
        ------
        ValueError
            For an unknown sheet, a bad range, a range of more than 1,000,000 cells, or a code
            that is empty, not a string or longer than Excel's 255 characters.
        """
        info, ws = self._worksheet(sheet)
        code = check_format_code(code, f"{info.name}!{ref}")
        r1, c1, r2, c2 = parse_range(ref, info.name)
        if (r2 - r1 + 1) * (c2 - c1 + 1) > MAX_FORMAT_CELLS:
            raise ValueError(f"{info.name}!{ref}: range is too large to format (limit "
                             f"{MAX_FORMAT_CELLS:,} cells)")
        if code == "General" and self._part_of(RT_STYLES) is None:
            return 0  # without a stylesheet every cell is General already
        root = self._styles_root(create=True)
        col_styles = ws._column_styles()
        rows = ws.rows()
        changed = 0
        created_any = False
        for r in range(r1, r2 + 1):
            row = rows.get(r)
            cells = ws._row_cells(row) if row is not None else {}
            created = False
            for c in range(c1, c2 + 1):
                cell = cells.get(c)
                if cell is not None:
                    base = cell.get("s")
                elif row is not None:
                    base = ws._inherited_style(row, c, col_styles)
                else:
                    base = _style_in(col_styles, c)
                old = int(base) if base and base.isdigit() else 0
                new = self._xf_with_format(root, old, code)
                if new == old:
                    continue  # already shows the format (a missing cell shows its base)
                if cell is None:
                    if row is None:
                        row = ws._new_row(r)
                    cell = etree.SubElement(row, _q("c"), r=f"{col_letters(c)}{r}")
                    cells[c] = cell
                    created = True
                cell.set("s", str(new))
                changed += 1
            if created:
                ws._sort_row(row, cells)
                created_any = True
        if created_any:
            ws._update_dimension()
        if changed:
            self._touch(info.part)
        return changed

    # ------------------------------------------------------------ column widths
    def column_widths(self, sheet: str) -> dict[int, float]:
        """Displayed widths (characters) of the columns that have one, by column number."""
        _, ws = self._worksheet(sheet)
        out = {}
        for lo, hi, attrs in _col_segments(ws.root):
            if attrs.get("width") is None:
                continue
            for c in range(lo, min(hi, MAX_COL) + 1):
                out[c] = displayed_width(float(attrs["width"]))
        return out

    def set_column_width(self, sheet: str, first_col: int, last_col: int, width: float) -> bool:
        """Set the width of columns ``first_col..last_col`` (1-based) to ``width`` characters.

        Existing ``<col>`` ranges are split where the edit cuts them and keep every other
        attribute (style, hidden, outline level); adjacent ranges that end up equal are merged.

        Returns
        -------
        bool
            Whether anything changed (the part is untouched when the widths were already set).

        Raises
        ------
        ValueError
            For an unknown sheet, columns outside 1..16384 or in the wrong order, or a width
            outside Excel's 0..255.
        """
        info, ws = self._worksheet(sheet)
        check_columns(info.name, first_col, last_col, width)
        stored = _number(stored_width(float(width)))
        segments = _col_segments(ws.root)
        covered = [s for s in segments if s[0] <= last_col and s[1] >= first_col]
        if sum(min(hi, last_col) - max(lo, first_col) + 1 for lo, hi, _ in covered) == (
                last_col - first_col + 1) and all(
                a.get("width") == stored and a.get("customWidth") in ("1", "true")
                for _, _, a in covered):
            return False
        new: list[tuple[int, int, dict]] = []
        for lo, hi, attrs in segments:
            if hi < first_col or lo > last_col:
                new.append((lo, hi, attrs))
                continue
            if lo < first_col:
                new.append((lo, first_col - 1, attrs))
            new.append((max(lo, first_col), min(hi, last_col),
                        {**attrs, "width": stored, "customWidth": "1"}))
            if hi > last_col:
                new.append((last_col + 1, hi, attrs))
        taken = sorted((max(lo, first_col), min(hi, last_col)) for lo, hi, _ in covered)
        start = first_col
        for lo, hi in [*taken, (last_col + 1, last_col + 1)]:
            if lo > start:
                new.append((start, lo - 1, {"width": stored, "customWidth": "1"}))
            start = max(start, hi + 1)
        new.sort(key=lambda s: s[0])
        merged: list[tuple[int, int, dict]] = []
        for lo, hi, attrs in new:
            if merged and merged[-1][1] + 1 == lo and merged[-1][2] == attrs:
                merged[-1] = (merged[-1][0], hi, attrs)
            else:
                merged.append((lo, hi, attrs))
        cols = ws.root.find(_q("cols"))
        if cols is None:
            cols = insert_in_order(ws.root, etree.Element(_q("cols")), WORKSHEET_ORDER)
        for el in list(cols):
            cols.remove(el)
        for lo, hi, attrs in merged:
            el = etree.SubElement(cols, _q("col"), min=str(lo), max=str(hi))
            for k, v in attrs.items():
                el.set(k, v)
        self._touch(info.part)
        return True

    def fit_columns(self, sheet: str, ref: str, min_width: float = DEFAULT_WIDTH,
                    max_width: float = 60.0) -> dict[int, float]:
        """Size each column of ``ref`` to the text its cells in ``ref`` display.

        The text is what :func:`display_text` says the value shows in the cell's number
        format; the width is :func:`fitted_width` of those texts (the cells outside ``ref``
        do not count, as in Excel's AutoFit of a selection).

        Returns
        -------
        dict
            The width set for each column number.
        """
        info, ws = self._worksheet(sheet)
        check_width_bounds(min_width, max_width)
        r1, c1, r2, c2 = parse_range(ref, info.name)
        texts: dict[int, list[str]] = {c: [] for c in range(c1, c2 + 1)}
        codes = self._xf_codes()
        for _, c, cell in ws.cells_in((r1, c1, r2, c2)):  # a value needs a <c>: its own style
            v = self._cell_value(cell, info.name)
            if v is not None and not (isinstance(v, str) and not v):
                texts[c].append(display_text(_plain(v), _code_of(codes, cell.get("s"))))
        out = {}
        for c, column in texts.items():
            out[c] = fitted_width(column, min_width, max_width)
            self.set_column_width(info.name, c, c, out[c])
        return out

    # ------------------------------------------------------------ frozen panes
    def frozen_panes(self, sheet: str) -> tuple[int, int]:
        """``(row, col)`` of the first cell that scrolls (``(1, 1)``: nothing is frozen)."""
        _, ws = self._worksheet(sheet)
        views = ws.root.find(_q("sheetViews"))
        view = views.find(_q("sheetView")) if views is not None else None
        pane = view.find(_q("pane")) if view is not None else None
        if pane is None or pane.get("state") not in ("frozen", "frozenSplit"):
            return 1, 1
        return _split(pane.get("ySplit")) + 1, _split(pane.get("xSplit")) + 1

    def freeze_panes(self, sheet: str, row: int, col: int) -> bool:
        """Freeze the rows above ``row`` and the columns left of ``col`` (1-based).

        ``(2, 1)`` freezes the first row, ``(2, 2)`` the first row and column, ``(1, 1)``
        unfreezes. Every view of the sheet gets the same panes; the scroll position is reset
        to A1 so that the frozen rows are the sheet's first rows. Idempotent.

        Returns
        -------
        bool
            Whether anything changed.

        Raises
        ------
        ValueError
            For an unknown sheet or a row/column outside the sheet.
        """
        info, ws = self._worksheet(sheet)
        check_cell(info.name, row, col)
        views = ws.root.find(_q("sheetViews"))
        if views is None:
            if (row, col) == (1, 1):
                return False
            views = insert_in_order(ws.root, etree.Element(_q("sheetViews")), WORKSHEET_ORDER)
            etree.SubElement(views, _q("sheetView"), workbookViewId="0")
        changed = False
        for view in views.iterchildren(_q("sheetView")):
            changed |= _freeze_view(view, row, col)
        if changed:
            self._touch(info.part)
        return changed


# =================================================================== helpers
def _int(text) -> int:
    try:
        return int(text or 0)
    except ValueError:
        return 0


def _split(text) -> int:
    """A pane's ``xSplit``/``ySplit``: a double in the schema, whole rows/columns when frozen."""
    try:
        return int(float(text or 0))
    except ValueError:
        return 0


def _code_of(codes: list[str], style: str | None) -> str:
    idx = _int(style) if style and style.isdigit() else 0
    return codes[idx] if 0 <= idx < len(codes) else "General"


def _plain(v):
    """A value as the width estimate sees it (errors and markers by their text)."""
    if isinstance(v, (str, bool, int, float, _dt.date, _dt.datetime)) or v is None:
        return v
    return str(v)


def _number(x: float) -> str:
    text = repr(float(x))
    return text[:-2] if text.endswith(".0") else text


def _xf_key(xf: etree._Element) -> tuple:
    return (tuple(sorted(xf.attrib.items())),
            tuple(etree.tostring(child) for child in xf if isinstance(child.tag, str)))


def _style_in(col_styles, col: int) -> str | None:
    for lo, hi, style in col_styles:
        if lo <= col <= hi:
            return style
    return None


def _col_segments(root) -> list[tuple[int, int, dict]]:
    """``(min, max, other attributes in file order)`` of every ``<col>``, sorted."""
    cols = root.find(_q("cols"))
    out = []
    for el in cols.iterchildren(_q("col")) if cols is not None else ():
        try:
            lo, hi = int(el.get("min")), int(el.get("max"))
        except (TypeError, ValueError):
            continue
        out.append((lo, hi, {k: v for k, v in el.attrib.items() if k not in ("min", "max")}))
    return sorted(out, key=lambda s: s[0])


def _minimal_stylesheet() -> etree._Element:
    root = etree.Element(_q("styleSheet"), nsmap={None: MAIN})
    _ensure_defaults(root)
    return root


def _ensure_defaults(root: etree._Element) -> None:
    """The entries a stylesheet needs before a cell can point at ``cellXfs``: one font, the two
    fills Excel reserves, one border, the Normal cell style."""
    def holder(tag):
        el = root.find(_q(tag))
        if el is None:
            el = insert_in_order(root, etree.Element(_q(tag)), STYLESHEET_ORDER)
        return el

    fonts = holder("fonts")
    if fonts.find(_q("font")) is None:
        font = etree.SubElement(fonts, _q("font"))
        etree.SubElement(font, _q("sz"), val="11")
        etree.SubElement(font, _q("name"), val="Calibri")
        etree.SubElement(font, _q("family"), val="2")
    fills = holder("fills")
    if fills.find(_q("fill")) is None:
        for pattern in ("none", "gray125"):
            etree.SubElement(etree.SubElement(fills, _q("fill")), _q("patternFill"),
                             patternType=pattern)
    borders = holder("borders")
    if borders.find(_q("border")) is None:
        border = etree.SubElement(borders, _q("border"))
        for side in ("left", "right", "top", "bottom", "diagonal"):
            etree.SubElement(border, _q(side))
    style_xfs = holder("cellStyleXfs")
    if style_xfs.find(_q("xf")) is None:
        etree.SubElement(style_xfs, _q("xf"), **_XF_DEFAULT)
    cell_xfs = holder("cellXfs")
    if cell_xfs.find(_q("xf")) is None:
        etree.SubElement(cell_xfs, _q("xf"), **_XF_DEFAULT, xfId="0")
    styles = root.find(_q("cellStyles"))
    if styles is None:
        styles = holder("cellStyles")
        etree.SubElement(styles, _q("cellStyle"), name="Normal", xfId="0", builtinId="0")
    for tag, child in (("fonts", "font"), ("fills", "fill"), ("borders", "border"),
                       ("cellStyleXfs", "xf"), ("cellXfs", "xf"), ("cellStyles", "cellStyle")):
        el = root.find(_q(tag))
        el.set("count", str(len(el.findall(_q(child)))))


def _freeze_view(view: etree._Element, row: int, col: int) -> bool:
    """Give one ``<sheetView>`` the frozen pane; whether its XML changed."""
    before = etree.tostring(view)
    pane = view.find(_q("pane"))
    old_active = pane.get("activePane", "topLeft") if pane is not None else "topLeft"
    selections = view.findall(_q("selection"))
    current = next((s for s in selections if s.get("pane", "topLeft") == old_active), None)
    active_cell = current.get("activeCell") if current is not None else None
    sqref = current.get("sqref") if current is not None else None
    y, x = row - 1, col - 1
    top_left = f"{col_letters(col)}{row}"
    active = "bottomRight" if x and y else ("bottomLeft" if y else "topRight")
    if pane is not None and (x or y) and pane.get("state") == "frozen" and (
            _split(pane.get("xSplit")), _split(pane.get("ySplit")), pane.get("topLeftCell"),
            pane.get("activePane")) == (x, y, top_left, active):
        return False  # frozen there already: keep the user's selection as it is
    for el in [pane, *selections]:
        if el is not None:
            view.remove(el)
    if not (x or y):
        if active_cell or sqref:
            sel = etree.Element(_q("selection"))
            for k, v in (("activeCell", active_cell), ("sqref", sqref)):
                if v:
                    sel.set(k, v)
            _insert(view, sel)
        return etree.tostring(view) != before
    # The frozen rows are those above the pane in the *unscrolled* view.
    if view.get("topLeftCell") not in (None, "A1"):
        view.set("topLeftCell", "A1")
    new_pane = etree.Element(_q("pane"))
    if x:
        new_pane.set("xSplit", str(x))
    if y:
        new_pane.set("ySplit", str(y))
    new_pane.set("topLeftCell", top_left)
    new_pane.set("activePane", active)
    new_pane.set("state", "frozen")
    _insert(view, new_pane)
    if active == "bottomRight":
        _insert(view, etree.Element(_q("selection"), pane="topRight"))
        _insert(view, etree.Element(_q("selection"), pane="bottomLeft"))
    keep = False
    if active_cell:
        try:
            r, c = parse_cell(active_cell)
            keep = r >= row and c >= col
        except ValueError:
            keep = False
    if keep:
        try:  # the selection must lie in the pane that holds its active cell
            keep = all(b[0] >= row and b[1] >= col
                       for b in (parse_range(part) for part in (sqref or active_cell).split()))
        except ValueError:
            keep = False
    sel = etree.Element(_q("selection"), pane=active)
    sel.set("activeCell", active_cell if keep else top_left)
    sel.set("sqref", (sqref or active_cell) if keep else format_range(row, col, row, col))
    _insert(view, sel)
    return etree.tostring(view) != before


def _insert(view: etree._Element, el: etree._Element) -> None:
    """Insert into a ``<sheetView>`` after siblings of the same or an earlier kind."""
    insert_in_order(view, el, _SHEETVIEW_ORDER)
