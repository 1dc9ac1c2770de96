"""A stand-in for the Office.js client: .xlsx -> remote-engine payload, actions -> .xlsx.

The payload has the shape xlwings' Office.js client sends (reference xlwings-on-linux.md §2);
:func:`apply_actions` replays the actions our jobs emit and raises on any other, so a test
notices a new kind of action.
"""

from __future__ import annotations

import base64
import datetime as dt
import zipfile

import openpyxl
from lxml import etree

from xl_factorlasso.workbook import cell_address
from xl_factorlasso.workbook._io import _parse_refers_to
from xl_factorlasso.workbook._xlsx import XlsxPackage

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


def book_payload(path, version: str) -> dict:
    wb = openpyxl.load_workbook(path, data_only=True)
    pictures = _pictures(path, wb)
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
                       "pictures": pictures[ws.title], "tables": []})
    names = []
    titles = [ws.title for ws in wb.worksheets]
    for name, dn in wb.defined_names.items():
        area = _parse_refers_to(dn.attr_text)
        if area is None:
            continue
        names.append({"name": name, "sheet_index": titles.index(area.sheet),
                      "address": area.ref, "scope_sheet_name": None,
                      "scope_sheet_index": None, "book_scope": True})
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
        else:
            raise AssertionError(f"unexpected action {func!r}: {a}")
    for sheet, pics in pictures.items():
        for name, png, anchor in pics:
            pkg.add_picture(sheet, anchor, png, name)
    pkg.save(path)
    return alerts
