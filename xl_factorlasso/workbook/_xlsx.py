"""Surgical editor for .xlsx/.xlsm packages: write cells, names and pictures, keep everything else.

openpyxl rebuilds a workbook from its own object model on save, which drops what it does not
model (charts and images it loaded, the ``customUI`` relationship of a ribbon, unknown extensions).
A refit must change only its output ranges, so this module edits the OOXML zip directly:

* the package is read into memory once (:meth:`XlsxPackage.open`);
* XML parts are parsed lazily with lxml and re-serialised only if an edit touched them;
* every other zip member is written back with exactly the same bytes;
* :meth:`XlsxPackage.save` writes a temporary file next to the target, fsyncs it and renames it
  over the target, so a crash never leaves a half-written workbook -- and only after
  :mod:`._xlsx_guard` has checked that no one else holds the file.

Reading is bounded and damage-aware (:mod:`._xlsx_archive`); defined names live in
:mod:`._xlsx_names`, cell reading and occupancy in :mod:`._xlsx_cells`, number formats, column
widths and frozen panes in :mod:`._xlsx_styles` (mixins of :class:`XlsxPackage`).

Values are read as Excel stores them (cached results for formula cells); nothing is recalculated.
After a value edit the workbook is flagged ``fullCalcOnLoad`` so that Excel recalculates formulas
that depend on the new values when the file is next opened
(see :attr:`XlsxPackage.full_calc_on_load`).
"""

from __future__ import annotations

import io
import os
import posixpath
import struct
import zipfile
from dataclasses import dataclass
from urllib.parse import unquote

from lxml import etree

from ._errors import WorkbookInputError
from ._xlsx_archive import read_package
from ._xlsx_cells import CellsMixin
from ._xlsx_guard import atomic_write, remove_stale_temps, write_blocker
from ._xlsx_names import DefinedName, NameEntry, NamesMixin
from ._xlsx_opc import (
    CT,
    CT_DRAWING,
    CT_PNG,
    CT_RELS,
    CT_XLSB,
    MAIN,
    PR,
    RT_CALC_CHAIN,
    RT_DRAWING,
    RT_IMAGE,
    RT_OFFICE_DOCUMENT,
    RT_STRICT_OFFICE_DOCUMENT,
    RT_TABLE,
    RT_WORKSHEET,
    STRICT_MAIN,
    WORKBOOK_ORDER,
    WORKSHEET_ORDER,
    XDR,
    A,
    R,
    insert_in_order,
    parse_xml,
    relative_target,
    rels_part_for,
    resolve_target,
    serialize_xml,
)
from ._xlsx_refs import (
    MAX_COL,
    MAX_ROW,
    TableSpan,
    col_letters,
    format_range,
    parse_cell,
    parse_range,
)
from ._xlsx_sheet import EditResult, TableInfo, WorksheetXml
from ._xlsx_styles import StylesMixin
from ._xlsx_values import (
    BadValue,
    ExcelError,
    FormulaNoValue,
    encode_value,
)

__all__ = ["BadValue", "DefinedName", "ExcelError", "FormulaNoValue", "NameEntry", "XlsxPackage"]

_EMU_PER_PX = 9525  # 914400 EMU per inch / 96 px per inch
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _q(tag: str, ns: str = MAIN) -> str:
    return f"{{{ns}}}{tag}"


@dataclass(frozen=True)
class _Sheet:
    name: str
    index: int
    part: str | None  # zip member of a worksheet; None for chartsheets, macro sheets ...
    kind: str


class XlsxPackage(NamesMixin, CellsMixin, StylesMixin):
    """An .xlsx/.xlsm workbook held in memory as its OOXML zip members.

    Use :meth:`open`; edit with :meth:`write_values`, :meth:`clear_range`,
    :meth:`set_defined_name`, :meth:`add_picture` and :meth:`remove_picture`, format with
    :meth:`set_number_format`, :meth:`set_column_width`, :meth:`fit_columns` and
    :meth:`freeze_panes` (:mod:`._xlsx_styles`); then :meth:`save`.

    Attributes
    ----------
    full_calc_on_load : bool
        If true (default) and cell values were written, ``<calcPr fullCalcOnLoad="1">`` is set in
        ``xl/workbook.xml`` on save, so that Excel recalculates formulas that depend on the new
        values when the workbook is opened. Set to false to leave ``workbook.xml`` untouched by
        value edits (cached results of dependent formulas then stay stale until Excel
        recalculates).
    """

    def __init__(self, members: list[tuple[zipfile.ZipInfo, bytes]], comment: bytes, path: str):
        self.path = path
        self.full_calc_on_load = True
        self._comment = comment
        self._order: list[str] = []
        self._infos: dict[str, zipfile.ZipInfo] = {}
        self._data: dict[str, bytes] = {}
        self._lookup: dict[str, str] = {}
        for info, data in members:
            key = self._key(info.filename)
            if key in self._lookup:
                raise ValueError(f"{path}: duplicate zip member {info.filename!r}")
            self._order.append(info.filename)
            self._infos[info.filename] = info
            self._data[info.filename] = data
            self._lookup[key] = info.filename
        self._xml: dict[str, etree._Element] = {}
        self._dirty: set[str] = set()
        self._sheets_cache: dict[str, WorksheetXml] = {}
        self._shared_strings: list[str] | None = None
        self._date_styles: list[bool] | None = None
        self._values_written = False
        self._check_package()

    # ================================================================ opening
    @classmethod
    def open(cls, path) -> XlsxPackage:
        """Read a workbook package into memory.

        Parameters
        ----------
        path : str or os.PathLike
            An ``.xlsx`` or ``.xlsm`` file (``.xltx``/``.xltm``/``.xlam`` work the same way).

        Raises
        ------
        ValueError
            If the file is not an Office Open XML spreadsheet (e.g. ``.xls``, ``.xlsb``, a
            password-protected file, or Strict Open XML), is damaged (the part is named), is
            beyond the size bounds of :mod:`._xlsx_archive`, or has a part with a DOCTYPE.
        """
        path = os.fspath(path)
        remove_stale_temps(path)  # left by a save that was killed; never a live one
        members, comment = read_package(path)
        return cls(members, comment, path)

    def _check_package(self) -> None:
        if self._find("[Content_Types].xml") is None:
            raise ValueError(f"{self.path}: no [Content_Types].xml; not an Office Open XML package")
        rels = self._rels("")
        office = [t for rid, (typ, t) in rels.items() if typ == RT_OFFICE_DOCUMENT]
        if not office:
            if any(typ == RT_STRICT_OFFICE_DOCUMENT for typ, _ in rels.values()):
                raise ValueError(f"{self.path}: Strict Open XML workbooks are not supported; "
                                 "save as a normal Excel Workbook")
            raise ValueError(f"{self.path}: package has no officeDocument relationship")
        self._workbook_part = office[0]
        if self._find(self._workbook_part) is None:
            raise ValueError(f"{self.path}: workbook part {self._workbook_part!r} is missing")
        if (self._content_type(self._workbook_part) or "").startswith(CT_XLSB):
            raise ValueError(f"{self.path}: .xlsb (binary) workbooks are not supported")
        root = self._get_xml(self._workbook_part)
        if etree.QName(root).namespace == STRICT_MAIN:
            raise ValueError(f"{self.path}: Strict Open XML workbooks are not supported")
        if etree.QName(root).namespace != MAIN:
            raise ValueError(
                f"{self.path}: {self._workbook_part!r} is not a SpreadsheetML workbook"
            )

    # ================================================================ zip members / XML parts
    @staticmethod
    def _key(name: str) -> str:
        # OPC part names compare case-insensitively and after percent-decoding.
        return unquote(name).lstrip("/").lower()

    def _find(self, name: str) -> str | None:
        return self._lookup.get(self._key(name))

    def _get_xml(self, name: str) -> etree._Element:
        actual = self._find(name)
        if actual is None:
            raise ValueError(f"{self.path}: part {name!r} is missing from the package")
        if actual not in self._xml:
            self._xml[actual] = parse_xml(self._data[actual], actual)
        return self._xml[actual]

    def _touch(self, name: str) -> None:
        self._dirty.add(self._find(name))

    def _add_part(self, name: str, data: bytes | None = None, root=None) -> str:
        if self._find(name) is not None:
            raise ValueError(f"part {name!r} already exists")
        self._order.append(name)
        self._lookup[self._key(name)] = name
        self._data[name] = data if data is not None else b""
        if root is not None:
            self._xml[name] = root
            self._dirty.add(name)
        return name

    def _delete_part(self, name: str) -> None:
        actual = self._find(name)
        if actual is None:
            return
        # An Override for a part that no longer exists is a dangling entry: remove it too.
        types = self._get_xml("[Content_Types].xml")
        if any(self._key(o.get("PartName", "")) == self._key(actual)
               for o in types.iterchildren(_q("Override", CT))):
            self._set_override(actual, None)
        self._order.remove(actual)
        del self._lookup[self._key(actual)]
        self._data.pop(actual, None)
        self._xml.pop(actual, None)
        self._dirty.discard(actual)
        self._infos.pop(actual, None)

    def _unused_name(self, pattern: str) -> str:
        n = 1
        while self._find(pattern.format(n)) is not None:
            n += 1
        return pattern.format(n)

    # ---------------------------------------------------------------- content types
    def _content_type(self, part: str) -> str | None:
        root = self._get_xml("[Content_Types].xml")
        for o in root.iterchildren(_q("Override", CT)):
            if self._key(o.get("PartName", "")) == self._key(part):
                return o.get("ContentType")
        ext = posixpath.splitext(part)[1].lstrip(".").lower()
        for d in root.iterchildren(_q("Default", CT)):
            if d.get("Extension", "").lower() == ext:
                return d.get("ContentType")
        return None

    def _set_override(self, part: str, content_type: str | None) -> None:
        root = self._get_xml("[Content_Types].xml")
        for o in list(root.iterchildren(_q("Override", CT))):
            if self._key(o.get("PartName", "")) == self._key(part):
                root.remove(o)
        if content_type is not None:
            etree.SubElement(root, _q("Override", CT), PartName="/" + part,
                             ContentType=content_type)
        self._touch("[Content_Types].xml")

    def _ensure_default(self, extension: str, content_type: str) -> None:
        root = self._get_xml("[Content_Types].xml")
        for d in root.iterchildren(_q("Default", CT)):
            if d.get("Extension", "").lower() == extension:
                return
        # Defaults precede Overrides in Excel's files; keep that tidy order.
        new = etree.Element(_q("Default", CT), Extension=extension, ContentType=content_type)
        overrides = root.find(_q("Override", CT))
        if overrides is not None:
            overrides.addprevious(new)
        else:
            root.append(new)
        self._touch("[Content_Types].xml")

    # ---------------------------------------------------------------- relationships
    def _rels(self, source: str) -> dict[str, tuple[str, str]]:
        """Internal relationships of ``source``: ``{rId: (type, target zip member)}``."""
        rels_name = rels_part_for(source)
        if self._find(rels_name) is None:
            return {}
        out = {}
        for rel in self._get_xml(rels_name).iterchildren(_q("Relationship", PR)):
            if rel.get("TargetMode") == "External":
                continue
            out[rel.get("Id")] = (rel.get("Type"), resolve_target(source, rel.get("Target", "")))
        return out

    def _add_rel(self, source: str, rel_type: str, target: str) -> str:
        rels_name = rels_part_for(source)
        if self._find(rels_name) is None:
            self._add_part(rels_name, root=etree.Element(_q("Relationships", PR), nsmap={None: PR}))
            self._ensure_default("rels", CT_RELS)
        root = self._get_xml(rels_name)
        used = {rel.get("Id") for rel in root}
        n = len(used) + 1
        while f"rId{n}" in used:
            n += 1
        rid = f"rId{n}"
        etree.SubElement(root, _q("Relationship", PR), Id=rid, Type=rel_type,
                         Target=relative_target(source, target))
        self._touch(rels_name)
        return rid

    def _remove_rel(self, source: str, rid: str) -> None:
        rels_name = rels_part_for(source)
        if self._find(rels_name) is None:
            return
        root = self._get_xml(rels_name)
        for rel in list(root):
            if rel.get("Id") == rid:
                root.remove(rel)
                self._touch(rels_name)

    def _is_referenced(self, part: str) -> bool:
        """Whether any relationship in the package still targets ``part``."""
        key = self._key(part)
        for name in self._order:
            if not name.endswith(".rels"):
                continue
            folder = posixpath.dirname(posixpath.dirname(name))
            source = posixpath.join(folder, posixpath.basename(name)[: -len(".rels")])
            if any(self._key(t) == key for _, t in self._rels(source).values()):
                return True
        return False

    # ================================================================ workbook structure
    def _sheets(self) -> list[_Sheet]:
        root = self._get_xml(self._workbook_part)
        rels = self._rels(self._workbook_part)
        out = []
        sheets = root.find(_q("sheets"))
        for i, el in enumerate(sheets.iterchildren(_q("sheet")) if sheets is not None else ()):
            typ, target = rels.get(el.get(_q("id", R)), (None, None))
            kind = (typ or "missing").rsplit("/", 1)[-1]
            part = target if typ == RT_WORKSHEET and self._find(target) else None
            out.append(_Sheet(el.get("name"), i, part, kind))
        return out

    @property
    def sheet_names(self) -> list[str]:
        """Names of all sheets in tab order (worksheets and chart sheets)."""
        return [s.name for s in self._sheets()]

    def _sheet(self, sheet: str) -> _Sheet:
        sheets = self._sheets()
        match = [s for s in sheets if s.name == sheet] or [
            s for s in sheets if isinstance(sheet, str) and s.name.lower() == sheet.lower()
        ]
        if not match:
            names = [s.name for s in sheets]
            raise ValueError(f"unknown sheet {sheet!r}; the workbook has {names}")
        if match[0].part is None:
            raise ValueError(f"sheet {match[0].name!r} is a {match[0].kind}, not a worksheet")
        return match[0]

    def _worksheet(self, sheet: str) -> tuple[_Sheet, WorksheetXml]:
        info = self._sheet(sheet)
        ws = self._sheets_cache.get(info.part)
        if ws is None:
            ws = WorksheetXml(info.name, self._get_xml(info.part))
            self._sheets_cache[info.part] = ws
        return info, ws

    def _date1904(self) -> bool:
        pr = self._get_xml(self._workbook_part).find(_q("workbookPr"))
        return pr is not None and pr.get("date1904") in ("1", "true")

    def _part_of(self, rel_type: str) -> str | None:
        for typ, target in self._rels(self._workbook_part).values():
            if typ == rel_type and self._find(target):
                return self._find(target)
        return None

    def _tables(self, info: _Sheet) -> list[TableInfo]:
        return [self._table_info(info, target) for typ, target in self._rels(info.part).values()
                if typ == RT_TABLE and self._find(target) is not None]

    def _table_info(self, info: _Sheet, part: str) -> TableInfo:
        root = self._get_xml(part)
        cols = root.find(_q("tableColumns"))
        names = tuple(c.get("name", "") for c in cols) if cols is not None else ()
        try:
            header_rows = int(root.get("headerRowCount", "1"))
            totals_rows = int(root.get("totalsRowCount", "0"))
        except ValueError:
            raise ValueError(f"{self.path}: table part {part!r} has a row count that is not a "
                             "number") from None
        return TableInfo(
            name=root.get("displayName") or root.get("name", ""),
            bounds=parse_range(root.get("ref"), info.name),
            header_rows=header_rows,
            columns=names,
            totals_rows=totals_rows,
        )

    def table_spans(self) -> dict[str, TableSpan]:
        """Every table of the workbook's worksheets as it is now (``ref`` of
        ``xl/tables/tableN.xml``), keyed by lower-case name: what a name such as
        ``tblReturns[#All]`` resolves against (:func:`._xlsx_refs.resolve_table_ref`).

        A table part whose range or row counts do not parse is listed with the damage (a name
        on it says so); one that is not XML at all is left out.
        """
        out: dict[str, TableSpan] = {}
        for info in self._sheets():
            if info.part is None:
                continue
            for typ, target in self._rels(info.part).values():
                if typ != RT_TABLE or self._find(target) is None:
                    continue
                try:
                    root = self._get_xml(target)
                except ValueError:
                    continue
                name = root.get("displayName") or root.get("name", "")
                try:
                    t = self._table_info(info, target)
                    span = TableSpan(name, info.name, t.bounds, t.header_rows, t.totals_rows)
                except ValueError:
                    span = TableSpan(name, info.name, (1, 1, 1, 1), damage=(
                        f"its part {target} has the range {root.get('ref')!r} and row counts "
                        f"{root.get('headerRowCount', '1')!r}/{root.get('totalsRowCount', '0')!r}"
                        "; the file is damaged: repair it in Excel (File > Open > Open and "
                        "Repair)"))
                out.setdefault(name.lower(), span)
        return out

    # ================================================================ defined names
    # ================================================================ writing
    def write_values(self, sheet: str, top_left: str, values) -> str:
        """Write a rectangular block of values with ``values[0][0]`` at ``top_left``.

        Numbers become ``<v>``, text an inline string (``sharedStrings.xml`` is not touched),
        booleans ``t="b"``, :class:`ExcelError` an error cell, dates/datetimes a serial number,
        ``None``/NaN clears the value. Existing cells keep their style (``s``); new cells take
        the row's or column's style. Formulas of overwritten cells are removed (and
        ``xl/calcChain.xml`` is dropped so that Excel rebuilds it).

        Parameters
        ----------
        sheet : str
            Worksheet name.
        top_left : str
            A1 cell such as ``"B2"``.
        values : sequence of sequences
            Rows of equal length.

        Returns
        -------
        str
            The A1 range written (``"B2:D9"``), empty if ``values`` is empty.

        Raises
        ------
        ValueError
            Naming the sheet and cell for a bad reference, a ragged or oversized block, a value
            that cannot be stored, or an edit Excel would reject (cutting an array formula,
            writing into the hidden part of a merged range, renaming a table header). Nothing is
            changed when it is raised.
        """
        info, ws = self._worksheet(sheet)
        r0, c0 = parse_cell(top_left, info.name)
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
            raise ValueError(f"{info.name}!{top_left}: values must be a list of rows")
        rows = [row for row in values]
        if not rows:
            return ""
        grid_src = []
        for i, row in enumerate(rows):
            if isinstance(row, (str, bytes)) or not hasattr(row, "__iter__"):
                raise ValueError(f"{info.name}!{top_left}: values must be a list of rows "
                                 f"(row {i} is {type(row).__name__})")
            grid_src.append(list(row))
        width = len(grid_src[0])
        if width == 0:
            return ""
        ragged = [i for i, row in enumerate(grid_src) if len(row) != width]
        if ragged:
            raise ValueError(f"{info.name}!{top_left}: rows have different lengths "
                             f"(row 0 has {width}, row {ragged[0]} has {len(grid_src[ragged[0]])})")
        if r0 + len(grid_src) - 1 > MAX_ROW or c0 + width - 1 > MAX_COL:
            raise ValueError(f"{info.name}!{top_left}: a {len(grid_src)}x{width} block does not "
                             "fit on the sheet")
        date1904 = self._date1904()
        grid = [
            [encode_value(v, f"{info.name}!{col_letters(c0 + j)}{r0 + i}", date1904)
             for j, v in enumerate(row)]
            for i, row in enumerate(grid_src)
        ]
        self._apply(info, ws, (r0, c0), grid)
        return format_range(r0, c0, r0 + len(grid) - 1, c0 + width - 1)

    def clear_range(self, sheet: str, ref: str) -> None:
        """Remove values and formulas in ``ref``; cell styles stay.

        Raises
        ------
        ValueError
            For an unknown sheet or bad range, or if the range cuts an array formula or covers
            a table header. Nothing is changed when it is raised.
        """
        info, ws = self._worksheet(sheet)
        r1, c1, r2, c2 = parse_range(ref, info.name)
        grid = [[None] * (c2 - c1 + 1) for _ in range(r2 - r1 + 1)]
        self._apply(info, ws, (r1, c1), grid)

    def _apply(self, info: _Sheet, ws: WorksheetXml, top_left, grid) -> EditResult:
        result = ws.edit(top_left, grid, self._tables(info))
        if not (result.cells_changed or result.rewritten_dependents):
            return result  # e.g. clearing an empty area: leave the part byte-identical
        self._touch(info.part)
        self._values_written = True
        if result.formulas_removed:
            self._drop_calc_chain()
        return result

    def _drop_calc_chain(self) -> None:
        # calcChain lists formula cells; an entry for a cell that no longer has a formula makes
        # Excel "repair" the file. Without the part Excel simply rebuilds the chain.
        for rid, (typ, target) in self._rels(self._workbook_part).items():
            if typ == RT_CALC_CHAIN:
                self._remove_rel(self._workbook_part, rid)
                self._delete_part(target)
                self._set_override(target, None)

    # ================================================================ pictures
    def _drawing_part(self, info: _Sheet, create: bool) -> str | None:
        root = self._get_xml(info.part)
        el = root.find(_q("drawing"))
        if el is not None:
            typ, target = self._rels(info.part).get(el.get(_q("id", R)), (None, None))
            if typ == RT_DRAWING and self._find(target):
                return self._find(target)
            raise ValueError(f"sheet {info.name!r}: its <drawing> relationship is broken")
        if not create:
            return None
        part = self._unused_name("xl/drawings/drawing{}.xml")
        self._add_part(part, root=etree.Element(_q("wsDr", XDR), nsmap={"xdr": XDR, "a": A}))
        self._set_override(part, CT_DRAWING)
        rid = self._add_rel(info.part, RT_DRAWING, part)
        drawing = etree.Element(_q("drawing"), nsmap={"r": R})
        drawing.set(_q("id", R), rid)
        insert_in_order(root, drawing, WORKSHEET_ORDER)
        self._touch(info.part)
        return part

    def add_picture(self, sheet: str, anchor_cell: str, png_bytes: bytes, name: str,
                    width_px: int | None = None, height_px: int | None = None) -> None:
        """Place a PNG with its top-left corner on ``anchor_cell``, replacing a same-named one.

        The picture goes into the sheet's existing drawing part (next to its charts) or into a
        new one. It moves with its anchor cell but is not resized with cells.

        Parameters
        ----------
        sheet : str
            Worksheet name.
        anchor_cell : str
            A1 cell for the top-left corner, e.g. ``"H2"``.
        png_bytes : bytes
            PNG file content.
        name : str
            Picture name (``cNvPr/@name``) used to find and replace it later.
        width_px, height_px : int, optional
            Displayed size in pixels at 96 dpi; default the PNG's own size.
        """
        info, _ = self._worksheet(sheet)
        row, col = parse_cell(anchor_cell, info.name)
        if not isinstance(png_bytes, (bytes, bytearray)) or png_bytes[:8] != _PNG_SIGNATURE:
            raise ValueError(f"picture {name!r} on {info.name!r}: png_bytes is not a PNG image")
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"picture on {info.name!r}: name must be a non-empty string")
        png_w, png_h = struct.unpack(">II", bytes(png_bytes[16:24]))
        width_px = png_w if width_px is None else width_px
        height_px = png_h if height_px is None else height_px
        if not (int(width_px) > 0 and int(height_px) > 0):
            raise ValueError(f"picture {name!r} on {info.name!r}: size must be positive")
        cx, cy = int(width_px) * _EMU_PER_PX, int(height_px) * _EMU_PER_PX

        self.remove_picture(info.name, name)
        drawing = self._drawing_part(info, create=True)
        media = self._add_part(self._unused_name("xl/media/image{}.png"), bytes(png_bytes))
        self._ensure_default("png", CT_PNG)
        rid = self._add_rel(drawing, RT_IMAGE, media)
        root = self._get_xml(drawing)
        # Shape ids must be unique within the drawing (charts and other shapes included).
        ids = [int(e.get("id")) for e in root.iter(_q("cNvPr", XDR))
               if (e.get("id") or "").isdigit()]
        root.append(_picture_anchor(row - 1, col - 1, cx, cy, max(ids, default=0) + 1, name, rid))
        self._touch(drawing)

    def remove_picture(self, sheet: str, name: str) -> bool:
        """Remove the pictures named ``name`` from a sheet (charts and shapes are untouched).

        Returns
        -------
        bool
            Whether a picture was removed (a missing picture is not an error).
        """
        info, _ = self._worksheet(sheet)
        drawing = self._drawing_part(info, create=False)
        if drawing is None:
            return False
        root = self._get_xml(drawing)
        removed_rids, removed_any = [], False
        for anchor in list(root):
            if not isinstance(anchor.tag, str):
                continue
            pic = anchor.find(_q("pic", XDR))
            cnv = pic.find(f"{_q('nvPicPr', XDR)}/{_q('cNvPr', XDR)}") if pic is not None else None
            if cnv is None or cnv.get("name") != name:
                continue
            for blip in pic.iter(_q("blip", A)):
                removed_rids += [blip.get(_q("embed", R)), blip.get(_q("link", R))]
            root.remove(anchor)
            removed_any = True
        if not removed_any:
            return False
        self._touch(drawing)
        rels = self._rels(drawing)
        still_used = {v for el in root.iter() if isinstance(el.tag, str)
                      for k, v in el.attrib.items() if k.startswith(f"{{{R}}}")}
        for rid in {r for r in removed_rids if r}:
            if rid in still_used or rid not in rels:
                continue
            target = rels[rid][1]
            self._remove_rel(drawing, rid)
            if self._find(target) and not self._is_referenced(target):
                self._delete_part(target)
        return True

    # ================================================================ saving
    def _finalise_workbook(self) -> None:
        if not (self._values_written and self.full_calc_on_load):
            return
        root = self._get_xml(self._workbook_part)
        calc = root.find(_q("calcPr"))
        if calc is None:
            calc = insert_in_order(root, etree.Element(_q("calcPr")), WORKBOOK_ORDER)
        if calc.get("fullCalcOnLoad") not in ("1", "true"):
            calc.set("fullCalcOnLoad", "1")
            self._touch(self._workbook_part)

    def to_bytes(self) -> bytes:
        """The package as it would be saved (a zip file's bytes)."""
        buf = io.BytesIO()
        self._write_zip(buf)
        return buf.getvalue()

    def _write_zip(self, fileobj) -> None:
        self._finalise_workbook()
        with zipfile.ZipFile(fileobj, "w", zipfile.ZIP_DEFLATED) as zf:
            for name in self._order:
                data = serialize_xml(self._xml[name]) if name in self._dirty else self._data[name]
                old = self._infos.get(name)
                stamp = old.date_time if old is not None else (1980, 1, 1, 0, 0, 0)
                info = zipfile.ZipInfo(name, date_time=stamp)
                info.compress_type = zipfile.ZIP_DEFLATED
                if old is not None:
                    info.external_attr = old.external_attr
                    if old.compress_type == zipfile.ZIP_STORED:
                        info.compress_type = zipfile.ZIP_STORED
                zf.writestr(info, data)
            if self._comment:
                zf.comment = self._comment

    def save(self, path=None) -> None:
        """Write the package atomically (temporary file in the same folder, fsync, rename).

        Before anything is written, :func:`._xlsx_guard.write_blocker` checks that the file
        may be replaced (not open in Excel or LibreOffice, not locked, not read-only); the
        rename happens under an exclusive POSIX lock on the old file. Stale temporary files of
        earlier, killed saves are removed; ours is removed on any error.

        Parameters
        ----------
        path : str or os.PathLike, optional
            Destination; default the file it was opened from. An existing file keeps its
            permission bits.

        Raises
        ------
        WorkbookInputError
            If the file may not be replaced now; the message says why and what to do. Nothing
            is written.
        """
        path = os.fspath(path if path is not None else self.path)
        blocker = write_blocker(path)
        if blocker is not None:
            raise WorkbookInputError(blocker)
        path = atomic_write(path, self._write_zip)
        # Later edits and saves continue from what is now on disk.
        for name in self._dirty:
            self._data[name] = serialize_xml(self._xml[name])
        self._dirty.clear()
        self.path = path


def _picture_anchor(row0: int, col0: int, cx: int, cy: int, shape_id: int, name: str,
                    rid: str) -> etree._Element:
    """A ``oneCellAnchor`` holding one picture (0-based anchor row/column, size in EMU)."""
    x, a, r = XDR, A, R
    anchor = etree.Element(_q("oneCellAnchor", x), nsmap={"xdr": x, "a": a, "r": r})
    frm = etree.SubElement(anchor, _q("from", x))
    for tag, val in (("col", col0), ("colOff", 0), ("row", row0), ("rowOff", 0)):
        etree.SubElement(frm, _q(tag, x)).text = str(val)
    etree.SubElement(anchor, _q("ext", x), cx=str(cx), cy=str(cy))
    pic = etree.SubElement(anchor, _q("pic", x))
    nv = etree.SubElement(pic, _q("nvPicPr", x))
    etree.SubElement(nv, _q("cNvPr", x), id=str(shape_id), name=name, descr=name)
    cnv_pic = etree.SubElement(nv, _q("cNvPicPr", x))
    etree.SubElement(cnv_pic, _q("picLocks", a), noChangeAspect="1")
    fill = etree.SubElement(pic, _q("blipFill", x))
    blip = etree.SubElement(fill, _q("blip", a))
    blip.set(_q("embed", r), rid)
    etree.SubElement(etree.SubElement(fill, _q("stretch", a)), _q("fillRect", a))
    # No <a:xfrm>: position and size come from the anchor, so nothing can disagree with it.
    sp = etree.SubElement(pic, _q("spPr", x))
    etree.SubElement(etree.SubElement(sp, _q("prstGeom", a), prst="rect"), _q("avLst", a))
    etree.SubElement(anchor, _q("clientData", x))
    return anchor
