"""The surgical .xlsx/.xlsm editor: reads values as Excel stores them and changes nothing else.

Fixtures are built in ``tmp_path``: openpyxl writes a workbook with styles, formulas, charts, an
image, data validation, merged cells, a table and defined names; the zip is then post-processed
the way Excel writes files (shared strings, cached formula results, calcChain) and, for the
.xlsm variant, given a VBA project and a ribbon (customUI14.xml + its package relationship).
"""

from __future__ import annotations

import datetime as dt
import io
import math
import os
import stat
import warnings
import zipfile

import numpy as np
import openpyxl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree
from openpyxl.chart import BarChart, Reference
from openpyxl.drawing.image import Image as XlImage
from openpyxl.styles import Font, PatternFill
from openpyxl.workbook.defined_name import DefinedName as OpxlDefinedName
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.table import Table
from PIL import Image

from xl_factorlasso.workbook._xlsx import (
    DefinedName,
    ExcelError,
    FormulaNoValue,
    XlsxPackage,
)
from xl_factorlasso.workbook._xlsx_refs import (
    is_valid_name,
    parse_name_target,
    parse_range,
    quote_sheet,
)

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
PR = "http://schemas.openxmlformats.org/package/2006/relationships"
CT = "http://schemas.openxmlformats.org/package/2006/content-types"
XDR = "http://schemas.openxmlformats.org/drawingml/2006/spreadsheetDrawing"
R = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
RT_UI = "http://schemas.microsoft.com/office/2007/relationships/ui/extensibility"
RT_VBA = "http://schemas.microsoft.com/office/2006/relationships/vbaProject"
CUSTOM_UI = (
    b'<customUI xmlns="http://schemas.microsoft.com/office/2009/07/customui">'
    b'<ribbon><tabs><tab id="fl" label="FactorLasso"><group id="g" label="Fit">'
    b'<button id="refit" label="Refit" onAction="Refit"/></group></tab></tabs></ribbon>'
    b"</customUI>"
)
VBA_BYTES = bytes(range(256)) * 8  # any bytes: only their survival is tested

INPUTS = "xl/worksheets/sheet1.xml"
OUT = "xl/worksheets/sheet2.xml"  # the sheet named "Out sheet"
OTHER = "xl/worksheets/sheet3.xml"


# =============================================================================== fixtures
def _png(w=24, h=16, color="red") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), color).save(buf, "PNG")
    return buf.getvalue()


def _q(tag, ns=MAIN):
    return f"{{{ns}}}{tag}"


def _cell(root, ref):
    return root.find(f".//{_q('c')}[@r='{ref}']")


def _rewrite(path, edit):
    """Apply ``edit(members: dict[name, bytes]) -> None`` to a zip file in place."""
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        members = {n: zf.read(n) for n in names}
    edit(members)
    order = [n for n in names if n in members] + [n for n in members if n not in names]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for n in order:
            zf.writestr(n, members[n])


def _xml_edit(members, name, fn):
    root = etree.fromstring(members[name])
    fn(root)
    members[name] = etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True)


def _add_rel(members, rels_name, rid, typ, target):
    def fn(root):
        etree.SubElement(root, _q("Relationship", PR), Id=rid, Type=typ, Target=target)

    _xml_edit(members, rels_name, fn)


def _add_override(members, part, ctype):
    def fn(root):
        etree.SubElement(root, _q("Override", CT), PartName=part, ContentType=ctype)

    _xml_edit(members, "[Content_Types].xml", fn)


def _post_process_like_excel(members):
    """Shared strings, cached formula results, rich text and a calcChain, as Excel writes them."""

    def inputs(root):
        for ref, idx in (("A1", 0), ("B1", 1), ("C1", 2)):
            c = _cell(root, ref)
            for child in list(c):
                c.remove(child)
            c.set("t", "s")
            etree.SubElement(c, _q("v")).text = str(idx)
        _cell(root, "B5").find(_q("v")).text = "6"  # =SUM(B2:B4), cached
        d5 = _cell(root, "D5")  # a formula returning text
        d5.set("t", "str")
        d5.find(_q("v")).text = "xy"
        e5 = _cell(root, "E5")  # a formula returning an error
        e5.set("t", "e")
        e5.find(_q("v")).text = "#DIV/0!"
        e3 = _cell(root, "E3")  # rich inline text: two runs
        for child in list(e3):
            e3.remove(child)
        is_ = etree.SubElement(e3, _q("is"))
        for text in ("rich ", "text"):
            etree.SubElement(etree.SubElement(is_, _q("r")), _q("t")).text = text

    def out(root):
        _cell(root, "D3").find(_q("v")).text = "0.25"  # =Inputs!B2, cached

    _xml_edit(members, INPUTS, inputs)
    _xml_edit(members, OUT, out)
    members["xl/sharedStrings.xml"] = (
        b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="3" '
        b'uniqueCount="3"><si><t>date</t></si><si><r><t>AA</t></r><r><t>A</t></r>'
        b'<rPh sb="0" eb="1"><t>ignored</t></rPh></si><si><t>B_x0009_B</t></si></sst>'
    )
    members["xl/calcChain.xml"] = (
        b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        b'<calcChain xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        b'<c r="B5" i="1"/><c r="C5"/><c r="D5"/><c r="E5"/><c r="D3" i="2"/></calcChain>'
    )
    wb_rels = "xl/_rels/workbook.xml.rels"
    _add_rel(members, wb_rels, "rId90", f"{R}/sharedStrings", "sharedStrings.xml")
    _add_rel(members, wb_rels, "rId91", f"{R}/calcChain", "calcChain.xml")
    _add_override(members, "/xl/sharedStrings.xml",
                  "application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml")
    _add_override(members, "/xl/calcChain.xml",
                  "application/vnd.openxmlformats-officedocument.spreadsheetml.calcChain+xml")


def _make_macro_enabled(members):
    """vbaProject.bin, the macro-enabled content type and a ribbon, as in reference section 6."""
    members["xl/vbaProject.bin"] = VBA_BYTES
    members["customUI/customUI14.xml"] = CUSTOM_UI

    def types(root):
        for o in root.iterchildren(_q("Override", CT)):
            if o.get("PartName") == "/xl/workbook.xml":
                o.set("ContentType", "application/vnd.ms-excel.sheet.macroEnabled.main+xml")
        etree.SubElement(root, _q("Default", CT), Extension="bin",
                         ContentType="application/vnd.ms-office.vbaProject")

    def workbook(root):
        root.find(_q("workbookPr")).set("codeName", "ThisWorkbook")

    _xml_edit(members, "[Content_Types].xml", types)
    _xml_edit(members, "xl/workbook.xml", workbook)
    _add_rel(members, "xl/_rels/workbook.xml.rels", "rId92", RT_VBA, "vbaProject.bin")
    _add_rel(members, "_rels/.rels", "rId99", RT_UI, "customUI/customUI14.xml")


def build_workbook(path, macro=False):
    """A workbook that exercises everything a refit must preserve."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Inputs"
    bold = Font(bold=True)
    for col, text in enumerate(["date", "AAA", "BBB", "flag", "note"], start=1):
        ws.cell(1, col, text).font = bold
    for i, (d, b, c, flag, note) in enumerate([
        (dt.datetime(2024, 1, 5), 0.25, 1.0, True, "  padded "),
        (dt.datetime(2024, 1, 12, 12, 30), 1.75, None, False, "placeholder"),
        (dt.date(1900, 2, 1), 4.0, -2.5, "#N/A", "multi\nline"),
    ], start=2):
        ws.cell(i, 1, d).number_format = "yyyy-mm-dd"
        ws.cell(i, 2, b)
        ws.cell(i, 3, c)
        ws.cell(i, 4, flag)
        ws.cell(i, 5, note)
    ws["B5"] = "=SUM(B2:B4)"
    ws["C5"] = "=C2*2"
    ws["D5"] = '="x"&"y"'
    ws["E5"] = "=1/0"
    ws["G7"] = 42
    ws["G7"].fill = PatternFill("solid", fgColor="FFFF00")
    ws.merge_cells("H10:I11")
    dv = DataValidation(type="list", formula1='"a,b,c"')
    ws.add_data_validation(dv)
    dv.add("A10")
    chart = BarChart()
    chart.add_data(Reference(ws, min_col=2, min_row=1, max_row=4), titles_from_data=True)
    ws.add_chart(chart, "K2")
    ws.add_image(XlImage(io.BytesIO(_png(10, 10, "blue"))), "K20")

    out = wb.create_sheet("Out sheet")
    out["A1"] = "Coefficients"
    out["A1"].font = bold
    out["B2"] = "old"
    out["B2"].font = bold
    out["B2"].fill = PatternFill("solid", fgColor="DDEEFF")
    out["C2"] = 1
    out["D3"] = "=Inputs!B2"
    out["B4"] = 0.5
    out["B4"].number_format = "0.00%"
    out["D4"].number_format = "yyyy-mm-dd"  # styled, empty: a date written here shows as date
    out["F10"] = 999
    out["A6"] = "below"
    out.conditional_formatting.add(
        "F1:F20", openpyxl.formatting.rule.CellIsRule(operator="greaterThan", formula=["0"]))
    chart2 = BarChart()
    chart2.add_data(Reference(ws, min_col=3, min_row=1, max_row=4), titles_from_data=True)
    out.add_chart(chart2, "H2")

    other = wb.create_sheet("Other")
    other.append(["k", "v"])
    other.append(["a", 1])
    other.append(["b", 2])
    other.add_table(Table(displayName="Tbl", ref="A1:B3"))
    other.column_dimensions["E"].number_format = "0.00%"

    wb.defined_names["FL_RETURNS"] = OpxlDefinedName("FL_RETURNS", attr_text="Inputs!$A$1:$C$4")
    wb.defined_names["FL_COEF"] = OpxlDefinedName("FL_COEF", attr_text="'Out sheet'!$B$2:$D$4")
    wb.defined_names["FL_BROKEN"] = OpxlDefinedName("FL_BROKEN", attr_text="#REF!")
    wb.defined_names["FL_MULTI"] = OpxlDefinedName(
        "FL_MULTI", attr_text="Inputs!$A$1:$A$2,Inputs!$C$1:$C$2")
    wb.defined_names["FL_CONST"] = OpxlDefinedName("FL_CONST", attr_text="0.5")
    wb.defined_names["FL_GONE"] = OpxlDefinedName("FL_GONE", attr_text="Nowhere!$A$1")
    ws.defined_names["FL_LOCAL"] = OpxlDefinedName("FL_LOCAL", attr_text="Inputs!$A$1")
    wb.save(path)
    _rewrite(path, _post_process_like_excel)
    if macro:
        _rewrite(path, _make_macro_enabled)
    return path


@pytest.fixture
def xlsx(tmp_path):
    return build_workbook(tmp_path / "model.xlsx")


@pytest.fixture(params=["xlsx", "xlsm"])
def any_book(request, tmp_path):
    macro = request.param == "xlsm"
    return build_workbook(tmp_path / f"model.{request.param}", macro=macro)


def _members(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None
        return {n: zf.read(n) for n in zf.namelist()}


def _cells(xml: bytes) -> dict[str, bytes]:
    root = etree.fromstring(xml)
    return {c.get("r"): etree.tostring(c, method="c14n") for c in root.iter(_q("c"))}


def _load_openpyxl(path, **kw):
    """openpyxl must read the file without a single warning (corrupt parts warn)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        wb = openpyxl.load_workbook(path, **kw)
    assert [str(w.message) for w in caught] == []
    return wb


def _in(ref, bounds):
    r1, c1, r2, c2 = bounds
    r, c = parse_range(ref)[:2]
    return r1 <= r <= r2 and c1 <= c <= c2


# =============================================================================== reading
def test_read_values_every_cell_kind(xlsx):
    pkg = XlsxPackage.open(xlsx)
    assert pkg.sheet_names == ["Inputs", "Out sheet", "Other"]
    rows = pkg.read_values("Inputs", "A1:F5")
    # shared strings (one with runs and an ignored phonetic run, one with an escaped tab)
    assert rows[0] == ["date", "AAA", "B\tB", "flag", "note", None]
    # dates by number format (including before the fictitious 1900-02-29), numbers as float
    assert rows[1][:3] == [dt.datetime(2024, 1, 5), 0.25, 1.0]
    assert rows[2][:3] == [dt.datetime(2024, 1, 12, 12, 30), 1.75, None]
    assert rows[3][:3] == [dt.datetime(1900, 2, 1), 4.0, -2.5]
    assert all(type(v) is float for v in (rows[1][1], rows[1][2], rows[3][2]))
    # booleans and errors
    assert rows[1][3] is True and rows[2][3] is False
    assert isinstance(rows[3][3], ExcelError) and rows[3][3] == "#N/A"
    # inline strings: whitespace kept, rich runs joined, newlines kept
    assert rows[1][4] == "  padded " and rows[2][4] == "rich text" and rows[3][4] == "multi\nline"
    # formulas: cached number, no cached value, cached text, cached error
    assert rows[4][1] == 6.0
    assert rows[4][2] == FormulaNoValue("C2*2")
    assert rows[4][3] == "xy"
    assert isinstance(rows[4][4], ExcelError) and rows[4][4] == "#DIV/0!"
    assert rows[4][5] is None
    # a single cell and a reversed, absolute range
    assert pkg.read_values("Inputs", "G7") == [[42.0]]
    assert pkg.read_values("inputs", "$B$3:$A$2") == [[dt.datetime(2024, 1, 5), 0.25],
                                                       [dt.datetime(2024, 1, 12, 12, 30), 1.75]]


def test_read_date1904_and_iso_dates(tmp_path):
    path = tmp_path / "mac.xlsx"
    wb = openpyxl.Workbook()
    wb.active["A1"] = 0.0
    wb.active["A1"].number_format = "d-mmm-yy"
    wb.active["A2"] = 1.5
    wb.active["A2"].number_format = "General"
    wb.save(path)

    def edit(members):
        _xml_edit(members, "xl/workbook.xml",
                  lambda root: root.find(_q("workbookPr")).set("date1904", "1"))

        def sheet(root):
            c = etree.SubElement(etree.SubElement(root.find(_q("sheetData")), _q("row"), r="3"),
                                 _q("c"), r="A3", t="d")
            etree.SubElement(c, _q("v")).text = "2024-02-29T06:00:00"

        _xml_edit(members, "xl/worksheets/sheet1.xml", sheet)

    _rewrite(path, edit)
    pkg = XlsxPackage.open(path)
    assert pkg.read_values("Sheet", "A1:A3") == [
        [dt.datetime(1904, 1, 1)], [1.5], [dt.datetime(2024, 2, 29, 6)]]


def test_read_sheet_without_explicit_cell_references(tmp_path):
    """``r`` is optional on rows and cells; positions then follow the previous sibling."""
    path = tmp_path / "implicit.xlsx"
    openpyxl.Workbook().save(path)

    def edit(members):
        def sheet(root):
            data = root.find(_q("sheetData"))
            for row_values in (["1", "2"], ["3", "4"]):
                row = etree.SubElement(data, _q("row"))
                for v in row_values:
                    etree.SubElement(etree.SubElement(row, _q("c")), _q("v")).text = v

        _xml_edit(members, "xl/worksheets/sheet1.xml", sheet)

    _rewrite(path, edit)
    pkg = XlsxPackage.open(path)
    assert pkg.read_values("Sheet", "A1:B2") == [[1.0, 2.0], [3.0, 4.0]]
    pkg.write_values("Sheet", "C2", [[5]])  # insertion must not shift implicit neighbours
    pkg.save()
    wb = _load_openpyxl(path)
    assert [[c.value for c in row] for row in wb["Sheet"]["A1:C2"]] == [[1, 2, None], [3, 4, 5]]


# =============================================================================== names
def test_defined_names_and_reasons(xlsx):
    pkg = XlsxPackage.open(xlsx)
    names = pkg.defined_names()
    assert set(names) == {"FL_RETURNS", "FL_COEF"}
    assert names["FL_RETURNS"] == DefinedName("FL_RETURNS", "Inputs", "A1:C4", 1, 1, 4, 3)
    assert names["FL_COEF"] == DefinedName("FL_COEF", "Out sheet", "B2:D4", 2, 2, 4, 4)
    assert names["FL_COEF"].shape == (3, 3)
    reasons = {e.name: e.reason for e in pkg.all_defined_names()}
    assert reasons["FL_RETURNS"] is None and reasons["FL_COEF"] is None
    assert reasons["FL_BROKEN"] == ("refers to #REF!: the cells it pointed to were deleted; "
                                    "define it again on the intended range")
    assert reasons["FL_MULTI"] == ("is a multi-area reference (2 areas: Inputs!$A$1:$A$2, "
                                   "Inputs!$C$1:$C$2); the contract needs one rectangular range")
    assert reasons["FL_CONST"] == "is a constant (0.5), not a range"
    assert reasons["FL_GONE"] == ("refers to sheet 'Nowhere', which is not in the workbook (it "
                                  "has 'Inputs', 'Out sheet', 'Other')")
    local = next(e for e in pkg.all_defined_names() if e.name == "FL_LOCAL")
    assert local.reason.startswith("is local to sheet 'Inputs' (a sheet-scoped name); contract "
                                   "names must be workbook-scope") and local.scope == "Inputs"
    assert local.target == DefinedName("FL_LOCAL", "Inputs", "A1", 1, 1, 1, 1)
    values = pkg.read_values(names["FL_RETURNS"].sheet, names["FL_RETURNS"].ref)
    assert values[0] == ["date", "AAA", "B\tB"]


def test_set_defined_name_creates_and_repoints(xlsx, tmp_path):
    pkg = XlsxPackage.open(xlsx)
    # Excel names are case-insensitive: re-pointing must not create a duplicate.
    got = pkg.set_defined_name("fl_coef", "out sheet", "B2:E9")
    assert got == DefinedName("FL_COEF", "Out sheet", "B2:E9", 2, 2, 9, 5)
    pkg.set_defined_name("FL_WEIGHTS", "Other", "$d$2")
    pkg.set_defined_name("FL_R2", "Inputs", "C3:A1")
    with pytest.raises(ValueError, match="not a valid Excel name"):
        pkg.set_defined_name("A1", "Inputs", "A1")
    with pytest.raises(ValueError, match="not a valid Excel name"):
        pkg.set_defined_name("_xlnm.Print_Area", "Inputs", "A1")
    with pytest.raises(ValueError, match="unknown sheet 'Nope'"):
        pkg.set_defined_name("FL_X", "Nope", "A1")
    with pytest.raises(ValueError, match="bad range reference 'B2:'"):
        pkg.set_defined_name("FL_X", "Inputs", "B2:")
    out = tmp_path / "names.xlsx"
    pkg.save(out)

    root = etree.fromstring(_members(out)["xl/workbook.xml"])
    stored = {d.get("name"): d.text for d in root.iter(_q("definedName"))}
    assert stored["FL_COEF"] == "'Out sheet'!$B$2:$E$9"
    assert stored["FL_WEIGHTS"] == "Other!$D$2"
    assert stored["FL_R2"] == "Inputs!$A$1:$C$3"
    assert sum(1 for n in stored if n.lower() == "fl_coef") == 1
    names = [d.get("name") for d in root.iter(_q("definedName"))]
    assert len(names) == len({n.lower() for n in names}) == 9

    wb = _load_openpyxl(out)
    assert wb.defined_names["FL_COEF"].attr_text == "'Out sheet'!$B$2:$E$9"
    assert list(wb.defined_names["FL_COEF"].destinations) == [("Out sheet", "$B$2:$E$9")]
    reread = XlsxPackage.open(out).defined_names()
    assert reread["FL_R2"] == DefinedName("FL_R2", "Inputs", "A1:C3", 1, 1, 3, 3)


def test_set_defined_name_in_workbook_without_defined_names(tmp_path):
    path = tmp_path / "plain.xlsx"
    openpyxl.Workbook().save(path)

    def strip(members):
        _xml_edit(members, "xl/workbook.xml",
                  lambda root: root.remove(root.find(_q("definedNames"))))

    _rewrite(path, strip)
    pkg = XlsxPackage.open(path)
    pkg.set_defined_name("FL_STATUS", "Sheet", "A1:B2")
    pkg.save()
    root = etree.fromstring(_members(path)["xl/workbook.xml"])
    order = [etree.QName(c).localname for c in root]
    assert order.index("sheets") < order.index("definedNames") < order.index("calcPr")
    assert _load_openpyxl(path).defined_names["FL_STATUS"].attr_text == "Sheet!$A$1:$B$2"


# =============================================================================== the contract
def test_refit_changes_nothing_outside_its_outputs(any_book, tmp_path):
    """The acceptance test: write, clear, re-point, picture, save; diff every part and cell."""
    macro = str(any_book).endswith(".xlsm")
    before = _members(any_book)
    pkg = XlsxPackage.open(any_book)
    written = pkg.write_values("Out sheet", "B2", [
        ["a", "b", "c"],
        [1.5, None, True],
        [-2, ExcelError("#N/A"), dt.datetime(2024, 3, 1)],
    ])
    assert written == "B2:D4"
    pkg.clear_range("Out sheet", "B6:C7")  # nothing there: a no-op that must stay harmless
    pkg.set_defined_name("FL_COEF", "Out sheet", "B2:D4")
    pkg.set_defined_name("FL_STATUS", "Out sheet", "B6:C7")
    pkg.add_picture("Out sheet", "H20", _png(), "FL_HEATMAP", 320, 240)
    out = tmp_path / ("saved" + os.path.splitext(any_book)[1])
    pkg.save(out)
    after = _members(out)

    drawing = "xl/drawings/drawing2.xml"  # openpyxl numbered the Out sheet's chart drawing 2
    allowed = {OUT, "xl/workbook.xml", "[Content_Types].xml", drawing,
               "xl/drawings/_rels/drawing2.xml.rels"}
    # calcChain listed D3, whose formula was overwritten: dropped with its rel and override.
    assert "xl/calcChain.xml" not in after
    assert b"calcChain" not in after["xl/_rels/workbook.xml.rels"]
    assert b"calcChain" not in after["[Content_Types].xml"]
    changed = {n for n in before if n in after and before[n] != after[n]}
    assert changed <= allowed | {"xl/_rels/workbook.xml.rels"}
    assert set(before) - set(after) == {"xl/calcChain.xml"}
    new = set(after) - set(before)
    assert len(new) == 1 and new.pop().startswith("xl/media/")
    # the sheet already had a drawing (its chart): the picture joined it, no new sheet rel
    sheet_rels = "xl/worksheets/_rels/sheet2.xml.rels"
    assert before[sheet_rels] == after[sheet_rels]
    # the workbook's relationships lost exactly the calcChain one
    def rels_of(xml):
        return {(r.get("Id"), r.get("Type"), r.get("Target")) for r in etree.fromstring(xml)}
    wb_rels = "xl/_rels/workbook.xml.rels"
    assert {r[1] for r in rels_of(before[wb_rels]) - rels_of(after[wb_rels])} == {
        f"{R}/calcChain"}
    assert rels_of(after[wb_rels]) < rels_of(before[wb_rels])

    # every cell outside the written range is unchanged, element for element
    old_cells, new_cells = _cells(before[OUT]), _cells(after[OUT])
    bounds = parse_range("B2:D4")
    outside_old = {r: x for r, x in old_cells.items() if not _in(r, bounds)}
    outside_new = {r: x for r, x in new_cells.items() if not _in(r, bounds)}
    assert outside_new == outside_old
    # and every other element of the sheet (merges, conditional formats ...) too
    def others(xml):
        return [etree.tostring(c, method="c14n") for c in etree.fromstring(xml)
                if etree.QName(c).localname not in ("sheetData", "dimension")]
    assert others(after[OUT]) == others(before[OUT])
    root = etree.fromstring(after[OUT])
    assert root.find(_q("dimension")).get("ref") == "A1:F10"
    assert _cell(root, "C2").get("s") == etree.fromstring(before[OUT]).find(
        f".//{_q('c')}[@r='C2']").get("s")
    assert _cell(root, "D3").find(_q("f")) is None

    # the workbook part only changed in its names and calcPr
    wb_old = etree.fromstring(before["xl/workbook.xml"])
    wb_new = etree.fromstring(after["xl/workbook.xml"])
    for tag in ("sheets", "bookViews", "workbookPr"):
        assert etree.tostring(wb_old.find(_q(tag))) == etree.tostring(wb_new.find(_q(tag)))
    assert wb_new.find(_q("calcPr")).get("fullCalcOnLoad") == "1"

    # the chart anchor survives next to the new picture, and chart parts are untouched
    dr = etree.fromstring(after[drawing])
    assert dr.find(f".//{{{XDR}}}graphicFrame") is not None
    names = [e.get("name") for e in dr.iter(f"{{{XDR}}}cNvPr")]
    assert names.count("FL_HEATMAP") == 1 and len(names) == 2
    ids = [e.get("id") for e in dr.iter(f"{{{XDR}}}cNvPr")]
    assert len(ids) == len(set(ids))
    assert all(before[n] == after[n] for n in before if n.startswith("xl/charts/"))

    if macro:
        assert after["xl/vbaProject.bin"] == VBA_BYTES
        assert after["customUI/customUI14.xml"] == CUSTOM_UI
        assert after["_rels/.rels"] == before["_rels/.rels"]
        rels = etree.fromstring(after["_rels/.rels"])
        ui = [r.get("Target") for r in rels if r.get("Type") == RT_UI]
        assert ui == ["customUI/customUI14.xml"]
        assert b"macroEnabled.main+xml" in after["[Content_Types].xml"]

    # openpyxl sees the new values, names, styles and both drawings' objects
    wb = _load_openpyxl(out, keep_vba=macro)
    ws = wb["Out sheet"]
    assert [[c.value for c in row] for row in ws["B2:D4"]] == [
        ["a", "b", "c"], [1.5, None, True], [-2, "#N/A", dt.datetime(2024, 3, 1)]]
    assert ws["B2"].font.b and ws["B2"].fill.fgColor.rgb == "00DDEEFF"
    assert ws["B4"].number_format == "0.00%"
    assert ws["A1"].value == "Coefficients" and ws["F10"].value == 999 and ws["A6"].value == "below"
    assert wb.defined_names["FL_STATUS"].attr_text == "'Out sheet'!$B$6:$C$7"
    assert len(ws._images) == 1 and len(ws._charts) == 1
    assert len(wb["Inputs"]._images) == 1 and len(wb["Inputs"]._charts) == 1
    assert wb["Inputs"]["B5"].value == "=SUM(B2:B4)"
    assert "H10:I11" in {str(r) for r in wb["Inputs"].merged_cells.ranges}
    assert len(wb["Inputs"].data_validations.dataValidation) == 1
    # our reader agrees, including the date written into a date-formatted cell
    back = XlsxPackage.open(out).read_values("Out sheet", "B2:D4")
    assert back[2][2] == dt.datetime(2024, 3, 1) and back[1] == [1.5, None, True]


def test_untouched_package_saves_byte_identical_members(any_book, tmp_path):
    before = _members(any_book)
    pkg = XlsxPackage.open(any_book)
    pkg.read_values("Inputs", "A1:E5")
    pkg.defined_names()
    out = tmp_path / ("copy" + os.path.splitext(any_book)[1])
    pkg.save(out)
    assert _members(out) == before


def test_write_value_types_and_styles(xlsx, tmp_path):
    pkg = XlsxPackage.open(xlsx)
    pkg.write_values("Other", "D5", [
        [np.float64(1.25), np.int64(7), np.bool_(True), float("nan")],
        ["  lead", "ctl\x01char", "_x0041_ literal", dt.date(2024, 1, 31)],
        [10**16, dt.time(6), dt.timedelta(hours=36), np.datetime64("2024-01-31T12:00")],
    ])
    with pytest.raises(ValueError, match=r"Other!E5: inf cannot be stored"):
        pkg.write_values("Other", "D5", [[1.0, math.inf]])
    with pytest.raises(ValueError, match=r"Other!D5: cannot write a value of type dict"):
        pkg.write_values("Other", "D5", [[{}]])
    with pytest.raises(ValueError, match=r"Other!D5: time-zone aware"):
        pkg.write_values("Other", "D5", [[dt.datetime(2024, 1, 1, tzinfo=dt.UTC)]])
    with pytest.raises(ValueError, match=r"Other!D5: '#BOGUS' is not an Excel error"):
        pkg.write_values("Other", "D5", [[ExcelError("#BOGUS")]])
    with pytest.raises(ValueError, match="rows have different lengths"):
        pkg.write_values("Other", "D5", [[1, 2], [3]])
    with pytest.raises(ValueError, match="values must be a list of rows"):
        pkg.write_values("Other", "D5", [1, 2])
    with pytest.raises(ValueError, match="does not fit on the sheet"):
        pkg.write_values("Other", "XFD1", [[1, 2]])
    assert pkg.write_values("Other", "D5", []) == ""
    out = tmp_path / "types.xlsx"
    pkg.save(out)

    root = etree.fromstring(_members(out)[OTHER])
    # a new cell in a column formatted as percent takes the column's style
    col_style = root.find(f"{_q('cols')}/{_q('col')}").get("style")
    assert _cell(root, "E5").get("s") == col_style and _cell(root, "D5").get("s") is None
    assert _cell(root, "G5") is None  # NaN clears: nothing to create
    assert _cell(root, "E6").find(f"{_q('is')}/{_q('t')}").text == "ctl_x0001_char"
    back = XlsxPackage.open(out).read_values("Other", "D5:G7")
    assert back[0] == [1.25, 7.0, True, None]
    assert back[1][:3] == ["  lead", "ctl\x01char", "_x0041_ literal"]
    assert back[1][3] == 45322.0  # no date style on a new cell: the serial
    assert back[2] == [1e16, 0.25, 1.5, 45322.5]
    wb = _load_openpyxl(out)
    assert wb["Other"]["D6"].value == "  lead" and wb["Other"]["E5"].number_format == "0.00%"
    # cells stay in column order inside rows and rows in order inside sheetData
    for row in root.iter(_q("row")):
        cols = [parse_range(c.get("r"))[1] for c in row.iter(_q("c"))]
        assert cols == sorted(cols)
    rows = [int(r.get("r")) for r in root.iter(_q("row"))]
    assert rows == sorted(rows)


def test_clear_range_keeps_styles_and_removes_formulas(xlsx, tmp_path):
    pkg = XlsxPackage.open(xlsx)
    pkg.clear_range("Out sheet", "B2:D4")
    out = tmp_path / "cleared.xlsx"
    pkg.save(out)
    root = etree.fromstring(_members(out)[OUT])
    b2 = _cell(root, "B2")
    assert b2.get("s") is not None and len(b2) == 0 and b2.get("t") is None
    assert _cell(root, "C2") is None  # unstyled and empty: gone
    assert _cell(root, "D3") is None  # its formula was the only content
    assert _cell(root, "D4").get("s") is not None
    assert XlsxPackage.open(out).read_values("Out sheet", "B2:D4") == [[None] * 3] * 3
    wb = _load_openpyxl(out)
    assert wb["Out sheet"]["B2"].font.b and wb["Out sheet"]["B4"].number_format == "0.00%"
    assert "xl/calcChain.xml" not in _members(out)


def test_clearing_and_creating_cells_in_one_row(xlsx, tmp_path):
    pkg = XlsxPackage.open(xlsx)
    pkg.write_values("Out sheet", "C2", [[None, "new", None, 7]])  # C2 goes, D2 and F2 appear
    out = tmp_path / "row.xlsx"
    pkg.save(out)
    root = etree.fromstring(_members(out)[OUT])
    row = root.find(f"{_q('sheetData')}/{_q('row')}[@r='2']")
    assert [c.get("r") for c in row] == ["B2", "D2", "F2"]
    assert XlsxPackage.open(out).read_values("Out sheet", "B2:F2") == [
        ["old", None, "new", None, 7.0]]


def test_calc_chain_kept_when_no_formula_is_touched(xlsx, tmp_path):
    before = _members(xlsx)
    pkg = XlsxPackage.open(xlsx)
    pkg.full_calc_on_load = False
    pkg.write_values("Out sheet", "B2", [[1, 2]])
    out = tmp_path / "kept.xlsx"
    pkg.save(out)
    after = _members(out)
    assert after["xl/calcChain.xml"] == before["xl/calcChain.xml"]
    assert after["xl/workbook.xml"] == before["xl/workbook.xml"]
    assert {n for n in before if before[n] != after[n]} == {OUT}


# =============================================================================== pictures
def test_picture_with_same_name_replaces_the_first(xlsx, tmp_path):
    pkg = XlsxPackage.open(xlsx)
    pkg.add_picture("Out sheet", "H20", _png(20, 10, "red"), "FL_HEATMAP", 200, 100)
    pkg.add_picture("Out sheet", "J22", _png(30, 10, "green"), "FL_HEATMAP")
    pkg.add_picture("Out sheet", "H40", _png(5, 5), "FL_DENDROGRAM", 50, 50)
    out = tmp_path / "pics.xlsx"
    pkg.save(out)
    members = _members(out)
    dr = etree.fromstring(members["xl/drawings/drawing2.xml"])
    pics = [p for p in dr.iter(f"{{{XDR}}}pic")]
    names = [p.find(f".//{{{XDR}}}cNvPr").get("name") for p in pics]
    assert names == ["FL_HEATMAP", "FL_DENDROGRAM"]
    anchor = pics[0].getparent()
    assert anchor.find(f"{{{XDR}}}from/{{{XDR}}}col").text == "9"  # J
    assert anchor.find(f"{{{XDR}}}from/{{{XDR}}}row").text == "21"  # 22
    assert anchor.find(f"{{{XDR}}}ext").get("cx") == str(30 * 9525)  # PNG's own size
    media = sorted(n for n in members if n.startswith("xl/media/"))
    assert len(media) == 3  # Inputs' image + ours (the replaced one is gone)
    rels = etree.fromstring(members["xl/drawings/_rels/drawing2.xml.rels"])
    image_targets = [r.get("Target") for r in rels if r.get("Type").endswith("/image")]
    assert len(image_targets) == 2
    wb = _load_openpyxl(out)
    assert len(wb["Out sheet"]._images) == 2 and len(wb["Out sheet"]._charts) == 1

    pkg = XlsxPackage.open(out)
    assert pkg.remove_picture("Out sheet", "FL_HEATMAP") is True
    assert pkg.remove_picture("Out sheet", "FL_HEATMAP") is False
    assert pkg.remove_picture("Other", "FL_HEATMAP") is False  # no drawing at all
    assert pkg.remove_picture("Out sheet", "Chart 1") is False  # charts are not pictures
    pkg.save()
    members = _members(out)
    assert len([n for n in members if n.startswith("xl/media/")]) == 2
    wb = _load_openpyxl(out)
    assert len(wb["Out sheet"]._images) == 1 and len(wb["Out sheet"]._charts) == 1


def test_picture_on_sheet_without_drawing(any_book, tmp_path):
    macro = str(any_book).endswith(".xlsm")
    before = _members(any_book)
    pkg = XlsxPackage.open(any_book)
    pkg.add_picture("Other", "D2", _png(), "FL_HEATMAP", 100, 80)
    out = tmp_path / ("pic" + os.path.splitext(any_book)[1])
    pkg.save(out)
    after = _members(out)
    new = set(after) - set(before)
    assert {n for n in new if n.startswith("xl/drawings/")} == {
        "xl/drawings/drawing3.xml", "xl/drawings/_rels/drawing3.xml.rels"}
    changed = {n for n in before if before[n] != after[n]}
    assert changed == {OTHER, "xl/worksheets/_rels/sheet3.xml.rels", "[Content_Types].xml"}
    root = etree.fromstring(after[OTHER])
    order = [etree.QName(c).localname for c in root]
    # CT_Worksheet order: ... pageMargins, drawing, ..., tableParts
    assert order.index("pageMargins") < order.index("drawing") < order.index("tableParts")
    assert _cells(after[OTHER]) == _cells(before[OTHER])
    types = etree.fromstring(after["[Content_Types].xml"])
    assert any(o.get("PartName") == "/xl/drawings/drawing3.xml" for o in types)
    wb = _load_openpyxl(out, keep_vba=macro)
    assert len(wb["Other"]._images) == 1 and len(wb["Other"].tables) == 1
    if macro:
        assert after["_rels/.rels"] == before["_rels/.rels"]


def test_picture_errors(xlsx):
    pkg = XlsxPackage.open(xlsx)
    with pytest.raises(ValueError, match="not a PNG"):
        pkg.add_picture("Other", "A1", b"GIF89a....", "x")
    with pytest.raises(ValueError, match="bad cell reference 'A0' on sheet 'Other'"):
        pkg.add_picture("Other", "A0", _png(), "x")
    with pytest.raises(ValueError, match="size must be positive"):
        pkg.add_picture("Other", "A1", _png(), "x", 0, 10)
    with pytest.raises(ValueError, match="unknown sheet 'Missing'"):
        pkg.remove_picture("Missing", "x")


# =============================================================================== refusals
def test_errors_name_sheet_and_cell(xlsx):
    pkg = XlsxPackage.open(xlsx)
    with pytest.raises(ValueError, match=r"unknown sheet 'Nope'; the workbook has \['Inputs'"):
        pkg.read_values("Nope", "A1")
    with pytest.raises(ValueError, match="bad range reference 'A1:ZZZZ3' on sheet 'Inputs'"):
        pkg.read_values("Inputs", "A1:ZZZZ3")
    with pytest.raises(ValueError, match="bad cell reference 'B' on sheet 'Inputs'"):
        pkg.write_values("Inputs", "B", [[1]])
    with pytest.raises(ValueError, match="too large to read"):
        pkg.read_values("Inputs", "A1:Z1048576")
    with pytest.raises(ValueError, match="not an .xlsx/.xlsm package"):
        bad = os.path.join(os.path.dirname(xlsx), "bad.xlsx")
        with open(bad, "wb") as fh:
            fh.write(b"\xd0\xcf\x11\xe0 an OLE file, e.g. .xls or encrypted")
        XlsxPackage.open(bad)


def test_edits_excel_would_reject_are_refused_without_changes(xlsx, tmp_path):
    def edit(members):
        def sheet(root):
            # an array formula in G2:G3 and a second one we overwrite completely in H2:H3
            for ref, text in (("G2", "TRANSPOSE(A1:B1)"), ("H2", "A2:A3*2")):
                row = root.find(f"{_q('sheetData')}/{_q('row')}[@r='2']")
                c = etree.SubElement(row, _q("c"), r=ref)
                f = etree.SubElement(c, _q("f"), t="array", ref=f"{ref}:{ref[0]}3")
                f.text = text
                etree.SubElement(c, _q("v")).text = "1"

        _xml_edit(members, OTHER, sheet)

    _rewrite(xlsx, edit)
    before = _members(xlsx)
    pkg = XlsxPackage.open(xlsx)
    with pytest.raises(ValueError, match=r"Other!G3:H4: would overwrite part of the array formula "
                                         r"in Other!G2:G3"):
        pkg.write_values("Other", "G3", [[1, 2], [3, 4]])
    with pytest.raises(ValueError, match=r"Other!A1: header cell of table 'Tbl' \(column 'k'\)"):
        pkg.write_values("Other", "A1", [["renamed"]])
    with pytest.raises(ValueError, match=r"Other!A1: header cell of table 'Tbl'"):
        pkg.clear_range("Other", "A1:B3")
    with pytest.raises(ValueError, match=r"Inputs!I10: cell is hidden inside the merged range "
                                         r"H10:I11"):
        pkg.write_values("Inputs", "H10", [[1, 2]])
    pkg.save(tmp_path / "unchanged.xlsx")
    assert _members(tmp_path / "unchanged.xlsx") == before

    # allowed: same header text, merged anchor only, a whole array formula
    pkg.write_values("Other", "A1", [["k"]])
    pkg.write_values("Inputs", "H10", [[1, None], [None, None]])
    pkg.write_values("Other", "H2", [[5], [6]])
    pkg.save(tmp_path / "ok.xlsx")
    root = etree.fromstring(_members(tmp_path / "ok.xlsx")[OTHER])
    assert _cell(root, "H2").find(_q("f")) is None and _cell(root, "G2").find(_q("f")) is not None
    _load_openpyxl(tmp_path / "ok.xlsx")


def test_overwriting_a_shared_formula_master_keeps_its_dependents(tmp_path):
    path = tmp_path / "shared.xlsx"
    wb = openpyxl.Workbook()
    ws = wb.active
    for r in range(1, 4):
        for c in range(1, 5):
            ws.cell(r, c, r * c)
    wb.save(path)

    def edit(members):
        def sheet(root):
            row = etree.SubElement(root.find(_q("sheetData")), _q("row"), r="4")
            for i, col in enumerate("ABCD"):
                c = etree.SubElement(row, _q("c"), r=f"{col}4")
                f = etree.SubElement(c, _q("f"), t="shared", si="0")
                if i == 0:
                    f.set("ref", "A4:D4")
                    f.text = "SUM(A1:A3)+$A$1"
                etree.SubElement(c, _q("v")).text = str(6 * (i + 1) + 1)

        _xml_edit(members, "xl/worksheets/sheet1.xml", sheet)

    _rewrite(path, edit)
    pkg = XlsxPackage.open(path)
    pkg.write_values("Sheet", "A4", [["label"]])
    pkg.save()
    root = etree.fromstring(_members(path)["xl/worksheets/sheet1.xml"])
    formulas = {c.get("r"): c.find(_q("f")) for c in root.iter(_q("c"))
                if c.find(_q("f")) is not None}
    assert set(formulas) == {"B4", "C4", "D4"}
    assert [formulas[r].text for r in ("B4", "C4", "D4")] == [
        "SUM(B1:B3)+$A$1", "SUM(C1:C3)+$A$1", "SUM(D1:D3)+$A$1"]
    assert all(f.get("t") is None and f.get("si") is None for f in formulas.values())
    wb = _load_openpyxl(path)
    assert wb.active["A4"].value == "label" and wb.active["C4"].value == "=SUM(C1:C3)+$A$1"


def test_chartsheets_are_listed_but_not_editable(tmp_path):
    path = tmp_path / "charts.xlsx"
    wb = openpyxl.Workbook()
    wb.active.append([1, 2, 3])
    cs = wb.create_chartsheet("Chart1")
    chart = BarChart()
    chart.add_data(Reference(wb.active, min_col=1, max_col=3, min_row=1))
    cs.add_chart(chart)
    wb.save(path)
    pkg = XlsxPackage.open(path)
    assert pkg.sheet_names == ["Sheet", "Chart1"]
    with pytest.raises(ValueError, match="sheet 'Chart1' is a chartsheet, not a worksheet"):
        pkg.write_values("Chart1", "A1", [[1]])


def test_prefixed_spreadsheetml_namespace(tmp_path):
    """Some generators (the .NET Open XML SDK) write ``<x:worksheet xmlns:x=...>``."""
    path = tmp_path / "prefixed.xlsx"
    wb = openpyxl.Workbook()
    wb.active["A1"] = 1
    wb.save(path)

    def edit(members):
        xml = members["xl/worksheets/sheet1.xml"].decode()
        xml = xml.replace('xmlns="http://schemas', 'xmlns:x="http://schemas')
        xml = xml.replace("<", "<x:").replace("<x:/", "</x:").replace("<x:?", "<?")
        members["xl/worksheets/sheet1.xml"] = xml.encode()

    _rewrite(path, edit)
    pkg = XlsxPackage.open(path)
    assert pkg.read_values("Sheet", "A1") == [[1.0]]
    pkg.write_values("Sheet", "B2", [["text", 2]])
    pkg.add_picture("Sheet", "D4", _png(), "p")
    pkg.save()
    xml = _members(path)["xl/worksheets/sheet1.xml"]
    assert b"<x:c r=\"B2\" t=\"inlineStr\"><x:is><x:t>text</x:t>" in xml
    wb = _load_openpyxl(path)
    assert wb.active["B2"].value == "text" and wb.active["C2"].value == 2
    assert len(wb.active._images) == 1


_cells_values = st.one_of(
    st.none(),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.integers(-10**6, 10**6),
    st.booleans(),
    st.text(alphabet="ab _x0A\n\t", max_size=8),
)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(1, 9), st.integers(1, 9),
                          st.integers(1, 3), st.integers(1, 3), st.data()), max_size=6))
def test_random_edits_match_a_model(ops):
    """Any sequence of writes and clears reads back like a plain dict of cells, in our reader
    and in openpyxl, with rows and cells in order."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.xlsx")
        wb = openpyxl.Workbook()
        model = {}
        for r in range(2, 9, 3):
            for c in range(1, 10, 2):
                wb.active.cell(r, c, r * 10 + c)
                model[(r, c)] = float(r * 10 + c)
        wb.active["E5"].font = Font(bold=True)  # a styled cell survives clears
        wb.save(path)
        pkg = XlsxPackage.open(path)
        for is_write, r, c, h, w, data in ops:
            if is_write:
                block = data.draw(st.lists(st.lists(_cells_values, min_size=w, max_size=w),
                                           min_size=h, max_size=h))
                pkg.write_values("Sheet", f"{'ABCDEFGHIJKL'[c - 1]}{r}", block)
                for i, row in enumerate(block):
                    for j, v in enumerate(row):
                        model[(r + i, c + j)] = v
            else:
                pkg.clear_range("Sheet", f"{'ABCDEFGHIJKL'[c - 1]}{r}:"
                                         f"{'ABCDEFGHIJKL'[c + w - 2]}{r + h - 1}")
                for i in range(h):
                    for j in range(w):
                        model[(r + i, c + j)] = None
        expected = [[model.get((r, c)) for c in range(1, 13)] for r in range(1, 13)]
        assert pkg.read_values("Sheet", "A1:L12") == expected
        blob = pkg.to_bytes()
        root = etree.fromstring(zipfile.ZipFile(io.BytesIO(blob)).read("xl/worksheets/sheet1.xml"))
        rows = [int(r.get("r")) for r in root.iter(_q("row"))]
        assert rows == sorted(set(rows))
        for row in root.iter(_q("row")):
            cols = [parse_range(c.get("r"))[1] for c in row]
            assert cols == sorted(set(cols))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            ws = openpyxl.load_workbook(io.BytesIO(blob)).active
        got = [[ws.cell(r, c).value for c in range(1, 13)] for r in range(1, 13)]
        assert got == expected
        assert ws["E5"].font.b


# =============================================================================== saving
def test_save_is_atomic_and_keeps_permissions(xlsx, monkeypatch):
    os.chmod(xlsx, 0o640)
    before = _members(xlsx)
    pkg = XlsxPackage.open(xlsx)
    pkg.write_values("Out sheet", "B2", [["new"]])

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        pkg.save()
    monkeypatch.undo()
    assert _members(xlsx) == before
    assert os.listdir(os.path.dirname(xlsx)) == [os.path.basename(xlsx)]  # no temp left behind

    pkg.save()
    assert stat.S_IMODE(os.stat(xlsx).st_mode) == 0o640
    assert XlsxPackage.open(xlsx).read_values("Out sheet", "B2") == [["new"]]
    # editing continues from what is on disk; a second save keeps the first edit
    pkg.write_values("Out sheet", "C2", [["second"]])
    pkg.save()
    assert XlsxPackage.open(xlsx).read_values("Out sheet", "B2:C2") == [["new", "second"]]
    _load_openpyxl(xlsx)


# =============================================================================== pure helpers
@pytest.mark.parametrize("name, quoted", [
    ("Data", "Data"), ("Out sheet", "'Out sheet'"), ("O'Brien", "'O''Brien'"),
    ("A1", "'A1'"), ("R1C1", "'R1C1'"), ("2024", "'2024'"), ("Données", "'Données'"),
    ("my.sheet_2", "my.sheet_2"),
])
def test_quote_sheet(name, quoted):
    assert quote_sheet(name) == quoted


_BOUNDED = "the contract needs a bounded range such as"


@pytest.mark.parametrize("text, expected", [
    ("Inputs!$A$1:$C$4", ("Inputs", (1, 1, 4, 3))),
    ("'O''Brien x'!B2", ("O'Brien x", (2, 2, 2, 2))),
    ("=Data!$D$9:$B$2", ("Data", (2, 2, 9, 4))),
    ("#REF!", "refers to #REF!: the cells it pointed to were deleted; define it again on the intended range"),
    ("Data!#REF!", "refers to #REF! (Data!#REF!): the cells it pointed to were deleted; define it again on the intended range"),
    ("=Data!$A$1:#REF!", "refers to #REF! (Data!$A$1:#REF!): the cells it pointed to were deleted; define it again on the intended range"),
    ("(Data!$A$1,Data!$B$2)", "is a multi-area reference (2 areas: Data!$A$1, Data!$B$2); the contract needs one rectangular range"),
    ("=S!$A$1:$B$2,S!$D$1", "is a multi-area reference (2 areas: S!$A$1:$B$2, S!$D$1); the contract needs one rectangular range"),
    ("Data!$A:$A", f"refers to the whole column A of sheet 'Data' (Data!$A:$A); {_BOUNDED} Data!$A$1:$A$100"),
    ("=Sheet1!$A:$A", f"refers to the whole column A of sheet 'Sheet1' (Sheet1!$A:$A); {_BOUNDED} Sheet1!$A$1:$A$100"),
    ("'My Data'!$C:$B", f"refers to the whole columns B:C of sheet 'My Data' ('My Data'!$C:$B); {_BOUNDED} 'My Data'!$B$1:$C$100"),
    ("Data!$3:$3", f"refers to the whole row 3 of sheet 'Data' (Data!$3:$3); {_BOUNDED} Data!$A$3:$J$3"),
    ("Data!5:2", f"refers to the whole rows 2:5 of sheet 'Data' (Data!5:2); {_BOUNDED} Data!$A$2:$J$5"),
    ("[1]Data!$A$1", "refers to another workbook (other.xlsx: [1]Data!$A$1); contract ranges must be in this workbook"),
    ("='[other.xlsx]S'!$A$1", "refers to another workbook (other.xlsx: '[other.xlsx]S'!$A$1); contract ranges must be in this workbook"),
    ("='C:\\dir\\[other.xlsx]S'!$A$1", "refers to another workbook (C:\\dir\\other.xlsx: 'C:\\dir\\[other.xlsx]S'!$A$1); contract ranges must be in this workbook"),
    ("[2]!Rates", "refers to another workbook (2: [2]!Rates); contract ranges must be in this workbook"),
    ("OFFSET(Data!$A$1,0,0,5,1)", "is a formula (OFFSET(Data!$A$1,0,0,5,1)), not a fixed range; the contract needs a plain range such as Sheet1!$B$2:$D$9"),
    ("Data!$A$1 Data!$A$1:$B$3", "is a formula (Data!$A$1 Data!$A$1:$B$3), not a fixed range; the contract needs a plain range such as Sheet1!$B$2:$D$9"),
    ("Sheet1:Sheet3!$A$1", "is a 3-D reference across several sheets (Sheet1:Sheet3!$A$1); the contract needs a range on one sheet"),
    ("'Sheet 1:Sheet 3'!$A$1", "is a 3-D reference across several sheets ('Sheet 1:Sheet 3'!$A$1); the contract needs a range on one sheet"),
    ("0.5", "is a constant (0.5), not a range"),
    ('="text"', 'is a constant ("text"), not a range'),
    ("TRUE", "is a constant (TRUE), not a range"),
    ("{1,2;3,4}", "is a constant ({1,2;3,4}), not a range"),
    ("=", "has an empty definition"),
])
def test_parse_name_target(text, expected):
    assert parse_name_target(text, ["other.xlsx"]) == expected


def test_name_validity():
    assert all(is_valid_name(n) for n in ("FL_COEF", "_x", "a.b", "Rate2", "XFE1", "\\x"))
    assert not any(is_valid_name(n) for n in ("A1", "xfd1048576", "R", "C", "R1C1", "1abc",
                                               "has space", "", "a-b"))
