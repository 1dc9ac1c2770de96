"""A stand-in for the Office.js client: .xlsx -> remote-engine payload, actions -> .xlsx.

The payload has the shape xlwings' Office.js client sends (reference xlwings-on-linux.md §2);
:func:`apply_actions` replays the actions our jobs emit and raises on any other, so a test
notices a new kind of action.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import zipfile

import openpyxl
from lxml import etree

from xl_factorlasso.workbook import cell_address
from xl_factorlasso.workbook._io import _parse_refers_to
from xl_factorlasso.workbook._xlsx import XlsxPackage
from xl_factorlasso.workbook._xlsx_refs import (
    col_number,
    format_range,
    parse_name_target,
    parse_structured_ref,
)

XDR = "http://schemas.openxmlformats.org/drawingml/2006/spreadsheetDrawing"


def _pictures(path, wb) -> dict[str, list[dict]]:
    """Picture names per sheet, read from the drawing parts."""
    out: dict[str, list[dict]] = {ws.title: [] for ws in wb.worksheets}
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        for i, ws in enumerate(wb.worksheets, start=1):
            rels = f"xl/worksheets/_rels/sheet{i}.xml.rels"
            if rels not in names:
                continue
            for rel in etree.fromstring(zf.read(rels)):
                if rel.get("Type", "").endswith("/drawing"):
                    part = "xl/drawings/" + rel.get("Target").split("/")[-1]
                    root = etree.fromstring(zf.read(part))
                    for pic in root.iter(f"{{{XDR}}}pic"):
                        c = pic.find(f"{{{XDR}}}nvPicPr/{{{XDR}}}cNvPr")
                        out[ws.title].append({"name": c.get("name"), "width": 0, "height": 0})
    return out


def _tables(pkg: XlsxPackage) -> dict[str, list[dict]]:
    """Each sheet's tables as the add-in sends them: unqualified addresses of the whole table,
    its header, data body and totals rows (``static/js/custom-scripts/index.js``)."""
    out: dict[str, list[dict]] = {}
    for t in pkg.table_spans().values():
        if t.damage is not None:
            continue  # Excel would have repaired or dropped it before the add-in ran
        r1, c1, r2, c2 = t.bounds
        top, bottom = r1 + t.header_rows, r2 - t.totals_rows
        out.setdefault(t.sheet, []).append({
            "name": t.name,
            "range_address": format_range(r1, c1, r2, c2),
            "row_count": r2 - r1 + 1,
            "column_count": c2 - c1 + 1,
            "header_row_range_address": format_range(r1, c1, r1, c2) if t.header_rows else None,
            "data_body_range_address": format_range(top, c1, bottom, c2),
            "total_row_range_address": format_range(r2, c1, r2, c2) if t.totals_rows else None,
            "show_headers": bool(t.header_rows),
            "show_totals": bool(t.totals_rows),
        })
    return out


def _excel_resolves(pkg: XlsxPackage, formula: str):
    """``(sheet, bounds)`` where Excel's ``NamedItem.getRange()`` puts a name now, ``None``
    for a table reference it resolves in a way these tests do not model (a column, this
    row), or ``False`` for a name the add-in does not send here (not a range).

    Excel resolves every table reference to rows of the table (a bare name to its data body),
    whether or not the contract accepts it: only the adapter judges.
    """
    parsed = parse_name_target(formula)
    if not isinstance(parsed, str):
        return parsed
    ref = parse_structured_ref(formula)
    tables = {k: t for k, t in pkg.table_spans().items() if t.damage is None}
    if ref is None or (not ref.bracketed and ref.table.lower() not in tables):
        return False
    if ref.table.lower() not in tables or ref.columns or ref.this_row:
        return None
    t = tables[ref.table.lower()]
    r1, c1, r2, c2 = t.bounds
    top = r1 if "headers" in ref.parts else r1 + t.header_rows
    bottom = r2 if "totals" in ref.parts else r2 - t.totals_rows
    return t.sheet, (top, c1, bottom, c2)


def book_payload(path, version: str) -> dict:
    wb = openpyxl.load_workbook(path, data_only=True)
    pkg = XlsxPackage.open(path)
    pictures = _pictures(path, wb)
    tables = _tables(pkg)
    sheets = []
    for ws in wb.worksheets:
        values = []
        for row in ws.iter_rows(min_row=1, max_row=ws.max_row, max_col=ws.max_column):
            vals = []
            for c in row:
                v = c.value
                if isinstance(v, dt.datetime):
                    v = v.isoformat() + ".000Z"
                vals.append("" if v is None else v)
            values.append(vals)
        sheets.append({"name": ws.title, "values": values or [[""]],
                       "pictures": pictures[ws.title], "tables": tables.get(ws.title, [])})
    names = []
    titles = [ws.title for ws in wb.worksheets]
    for name, dn in wb.defined_names.items():
        # NamedItem.formula and, for a range, where Excel resolves it now
        resolved = _excel_resolves(pkg, dn.attr_text)
        if resolved is False:
            continue
        sheet, bounds = resolved or (None, None)
        names.append({"name": name, "refers_to": "=" + dn.attr_text, "type": "Range",
                      "sheet_index": titles.index(sheet) if sheet else None,
                      "address": format_range(*bounds) if bounds else None,
                      "scope_sheet_name": None, "scope_sheet_index": None, "book_scope": True})
    return {"client": "Office.js", "version": version,
            "book": {"name": str(path).rsplit("/", 1)[-1], "active_sheet_index": 0,
                     "selection": "A1"},
            "names": names, "sheets": sheets}


def _ref(a: dict) -> str:
    r, c = a["start_row"] + 1, a["start_column"] + 1
    return f"{cell_address(r, c)}:{cell_address(r + a['row_count'] - 1, c + a['column_count'] - 1)}"


def apply_actions(path, actions: list[dict]) -> list[str]:
    """Replay remote-engine actions on the file; returns the alert messages."""
    pkg = XlsxPackage.open(path)
    titles = pkg.sheet_names
    alerts = []
    pictures: dict[str, list[str]] = {}
    for a in actions:
        func = a["func"]
        sheet = titles[a["sheet_position"]] if a.get("sheet_position") is not None else None

        if func == "setValues":
            values = [[None if v == "" else v for v in row] for row in a["values"]]
            pkg.write_values(sheet, cell_address(a["start_row"] + 1, a["start_column"] + 1),
                             values)
        elif func == "rangeClearContents":
            pkg.clear_range(sheet, _ref(a))
        elif func in ("namesAdd", "setNameRefersTo"):
            name, target = (a["args"][0], a["args"][1]) if func == "namesAdd" else (
                a["args"][0], a["args"][-1])
            area = _parse_refers_to(target)
            pkg.set_defined_name(name, area.sheet, area.ref)
        elif func == "addPicture":
            png = base64.b64decode(a["args"][0])
            anchor = cell_address(a["args"][2] + 1, a["args"][1] + 1)
            pictures.setdefault(sheet, []).append(("Image", png, anchor))
        elif func == "setPictureName":
            idx, name = a["args"]
            entry = pictures[sheet][-1]
            pictures[sheet][-1] = (name, entry[1], entry[2])
        elif func in ("setPictureWidth", "setPictureHeight", "setPictureLeft", "setPictureTop"):
            pass  # sizes are not checked by these tests
        elif func == "deletePicture":
            pass  # replaced below by name (add_picture replaces a picture of the same name)
        elif func == "alert":
            alerts.append(a["args"][0])
        elif func == "setNumberFormat":  # Office.js: numberFormat = [[code]] for the range
            pkg.set_number_format(sheet, _ref(a), a["args"][0])
        elif func == "freezePaneAtRange":  # freezePanes.freezeAt(range): rows, columns or both
            target = a["args"][0]
            rows = re.fullmatch(r"1:(\d+)", target)
            cols = re.fullmatch(r"A:([A-Z]+)", target)
            both = re.fullmatch(r"A1:([A-Z]+)(\d+)", target)
            if rows:
                pkg.freeze_panes(sheet, int(rows.group(1)) + 1, 1)
            elif cols:
                pkg.freeze_panes(sheet, 1, col_number(cols.group(1)) + 1)
            else:
                pkg.freeze_panes(sheet, int(both.group(2)) + 1, col_number(both.group(1)) + 1)
        elif func == "freezePaneUnfreeze":
            pkg.freeze_panes(sheet, 1, 1)
        elif func in ("setColumnWidth", "setAutofit"):
            pass  # widths in points / measured by Excel: checked on the actions themselves
        else:
            raise AssertionError(f"unexpected action {func!r}: {a}")
    for sheet, pics in pictures.items():
        for name, png, anchor in pics:
            pkg.add_picture(sheet, anchor, png, name)
    pkg.save(path)
    return alerts
