"""Number formats, column widths and frozen panes on every engine.

* the file adapter edits styles.xml, ``<cols>`` and ``<sheetView>`` surgically: openpyxl and
  LibreOffice read the formats back, Microsoft's validator accepts the package, parts that were
  not edited keep their bytes, and formatting again (5 refits) does not grow styles.xml;
* the remote engine (``xw.Book(json=...)``) emits the actions xlwings Server applies, and those
  actions, replayed the way its JavaScript applies them, give the file adapter's formats;
* an engine that cannot format says so (False) and changes nothing; bad arguments name the
  sheet;
* MemoryIO keeps formats like values for the jobs' tests;
* the demo workbook shows its dates (no ``###``) with its header rows frozen.
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import zipfile

import openpyxl
import pytest
from lxml import etree

from tests.test_ooxml_valid import _validate
from tests.workbook_helpers import MemoryIO, demo_memory_book
from xl_factorlasso.cli import build_demo_workbook
from xl_factorlasso.templates import template_path
from xl_factorlasso.workbook import Area, XlsxFileIO, XlwingsBookIO, refit, run_jobs
from xl_factorlasso.workbook._formats import (
    column_points,
    display_text,
    displayed_width,
    fitted_width,
    stored_width,
    text_width,
)
from xl_factorlasso.workbook._io import _freeze_desktop, _frozen_range
from xl_factorlasso.workbook._xlsx import XlsxPackage

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
RESULTS = "xl/worksheets/sheet7.xml"  # the demo's Results sheet


def _q(tag):
    return f"{{{MAIN}}}{tag}"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    path = tmp_path_factory.mktemp("formats") / "demo.xlsx"
    build_demo_workbook(str(path))
    return path


@pytest.fixture(scope="module")
def refitted(demo, tmp_path_factory):
    path = tmp_path_factory.mktemp("formats") / "refitted.xlsx"
    shutil.copy(demo, path)
    run_jobs(XlsxFileIO(path), ["refit", "optimise_portfolio"])
    return path


def _members(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def _body(area: Area) -> Area:
    """The numbers of an output table: below its header, right of its label column."""
    return Area(area.sheet, area.min_row + 1, area.min_col + 1, area.max_row, area.max_col)


def format_outputs(io) -> None:
    """What a job does after writing: the jobs' own formats, on the outputs as they stand."""
    from xl_factorlasso.workbook import OUTPUTS, OutputTable
    from xl_factorlasso.workbook._output_formats import apply_formats

    names = io.names()
    placed = [(OutputTable(n, io.read(a)), a) for n, a in names.items() if n in OUTPUTS]
    assert apply_formats(io, placed) == []


# =================================================================== file adapter
def test_openpyxl_reads_back_formats_widths_and_panes(refitted, tmp_path):
    path = tmp_path / "formatted.xlsx"
    shutil.copy(refitted, path)
    io = XlsxFileIO(path)
    coef = io.names()["FL_COEF"]
    assert io.set_number_format(_body(coef), "0.000") is True
    assert io.set_number_format(Area("Results", 1, 1, 1, 7), "@") is True  # the header row
    assert io.set_column_width("Results", 2, 11.5, last_col=7) is True
    assert io.fit_columns(Area("Results", 2, 1, 25, 1)) is True  # the asset labels
    assert io.freeze_panes("Results", 2, 2) is True
    io.save()

    wb = openpyxl.load_workbook(path)
    ws = wb["Results"]
    assert {ws.cell(r, c).number_format for r in range(2, 26) for c in range(2, 8)} == {"0.000"}
    assert ws["A2"].number_format == "General" and ws["B1"].number_format == "@"
    # the rest of each cell's style is kept: the header's fill
    assert ws["B1"].fill.fgColor.rgb == "00DDEBF7"
    assert ws.freeze_panes == "B2"
    dims = ws.column_dimensions["B"]  # one <col> for B:G
    assert (dims.min, dims.max, dims.width) == (2, 7, stored_width(11.5)) == (2, 7, 12.2109375)
    # column A fits 'CONVERT' (7 capitals: 8.4 * 1.1 + 1 = 10.24 characters = 72 px)
    assert ws.column_dimensions["A"].width == stored_width(10.29)
    assert XlsxPackage.open(path).column_widths("Results")[1] == 10.29
    # the values are untouched and the number cells still read as numbers
    before = openpyxl.load_workbook(refitted)["Results"]
    assert [[c.value for c in row] for row in ws["A1:G25"]] == [
        [c.value for c in row] for row in before["A1:G25"]]


def test_builtin_codes_use_their_id_and_custom_codes_are_stored_once(demo, tmp_path):
    path = tmp_path / "ids.xlsx"
    shutil.copy(demo, path)  # before any job: the jobs' own formats would add codes
    pkg = XlsxPackage.open(path)
    styles = etree.fromstring(_members(path)["xl/styles.xml"])
    custom = {int(nf.get("numFmtId")): nf.get("formatCode") for nf in styles.iter(_q("numFmt"))}
    assert custom == {164: "yyyy-mm-dd h:mm:ss", 165: "yyyy-mm-dd", 166: "0.0000"}
    pkg.set_number_format("Results", "B2:B3", "0.00%")  # built-in 10
    pkg.set_number_format("Results", "C2:C3", "0.0000")  # the workbook's own 166
    pkg.set_number_format("Results", "D2:D3", "0.000")  # new: 167
    pkg.set_number_format("Results", "E2:E3", "0.000")
    pkg.save()
    styles = etree.fromstring(_members(path)["xl/styles.xml"])
    nfs = styles.find(_q("numFmts"))
    assert {int(nf.get("numFmtId")): nf.get("formatCode") for nf in nfs} == {
        **custom, 167: "0.000"}
    assert nfs.get("count") == "4"
    xfs = styles.find(_q("cellXfs")).findall(_q("xf"))
    assert styles.find(_q("cellXfs")).get("count") == str(len(xfs))
    sheet = etree.fromstring(_members(path)[RESULTS])
    style = {c.get("r"): int(c.get("s", 0)) for c in sheet.iter(_q("c"))}
    assert [xfs[style[ref]].get("numFmtId") for ref in ("B2", "C2", "D2", "E3")] == [
        "10", "166", "167", "167"]
    assert style["D2"] == style["E3"]  # one xf for the same (old style, code)
    assert all(xfs[style[ref]].get("applyNumberFormat") == "1" for ref in ("B2", "D2"))
    wb = openpyxl.load_workbook(path)
    assert [wb["Results"][ref].number_format for ref in ("B2", "C3", "D2", "E3")] == [
        "0.00%", "0.0000", "0.000", "0.000"]


def test_five_refits_leave_styles_the_size_of_one(demo, tmp_path):
    once, five = tmp_path / "once.xlsx", tmp_path / "five.xlsx"
    for path, runs in ((once, 1), (five, 5)):
        shutil.copy(demo, path)
        for _ in range(runs):
            io = XlsxFileIO(path)
            refit(io, pictures=False)
            io = XlsxFileIO(path)
            format_outputs(io)
            io.save()
    a, b = _members(once), _members(five)
    assert b["xl/styles.xml"] == a["xl/styles.xml"]
    assert b[RESULTS] == a[RESULTS]
    # formatting an already formatted workbook changes no byte of the package
    pkg = XlsxPackage.open(five)
    format_outputs(XlsxFileIO(five))  # on a fresh adapter: nothing to save
    io = XlsxFileIO(five)
    format_outputs(io)
    assert io.package._dirty == set()
    assert pkg.to_bytes() == io.package.to_bytes()


def test_untouched_parts_keep_their_bytes(demo, tmp_path):
    path = tmp_path / "parts.xlsx"
    shutil.copy(demo, path)  # not yet formatted by a job
    before = _members(path)
    io = XlsxFileIO(path)
    format_outputs(io)
    io.save()
    after = _members(path)
    assert list(after) == list(before)
    changed = {n for n in before if before[n] != after[n]}
    assert changed == {"xl/styles.xml", RESULTS, "xl/worksheets/sheet8.xml",
                       "xl/worksheets/sheet9.xml", "xl/worksheets/sheet10.xml",
                       "xl/worksheets/sheet11.xml", "xl/worksheets/sheet12.xml",
                       "xl/worksheets/sheet14.xml",
                       *(f"xl/worksheets/sheet{k}.xml" for k in range(17, 23))}
    # Results, DerivedSigns, PriorUsed, Diagnostics, CV, Portfolio, Risk; Backtest,
    # WeightHistory, BetaHistory, R2History, ResidVolHistory, ClusterHistory
    assert zipfile.ZipFile(path).testzip() is None


def test_a_format_already_in_place_changes_nothing(refitted, tmp_path):
    path = tmp_path / "same.xlsx"
    shutil.copy(refitted, path)
    pkg = XlsxPackage.open(path)
    assert pkg.set_number_format("Results", "A2:A25", "General") == 0
    assert pkg.set_number_format("Returns", "B2:Y261", "0.0000") == 0  # the builder's
    assert pkg.freeze_panes("Returns", 2, 2) is False  # frozen by the builder
    dates = fitted_width(["date", "0000-00-00"], max_width=40.0)  # what the builder set
    assert pkg.column_widths("Returns")[1] == dates == 11.43
    assert pkg.set_column_width("Returns", 1, 1, dates) is False
    assert pkg._dirty == set()


def _cols(path, part) -> list[dict]:
    root = etree.fromstring(_members(path)[part])
    return [dict(c.attrib) for c in root.find(_q("cols"))]


def test_column_widths_split_and_merge_col_ranges(tmp_path):
    path = tmp_path / "cols.xlsx"
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "S"
    ws["A1"] = 1
    ws["A1"].number_format = "0.000"  # cellXfs entry 1: the style of the columns below
    wb.save(path)
    part = "xl/worksheets/sheet1.xml"

    def edit(root):  # a <cols> as Excel writes them: a styled, hidden range and a single column
        cols = root.find(_q("cols"))
        if cols is None:
            cols = etree.Element(_q("cols"))
            root.find(_q("sheetData")).addprevious(cols)
        for el in list(cols):
            cols.remove(el)
        etree.SubElement(cols, _q("col"), min="2", max="10", width="15.7109375", style="1",
                         hidden="1", customWidth="1")
        etree.SubElement(cols, _q("col"), min="13", max="13", width="20", customWidth="1")

    members = _members(path)
    root = etree.fromstring(members[part])
    edit(root)
    members[part] = etree.tostring(root, xml_declaration=True, encoding="UTF-8",
                                   standalone=True)
    with zipfile.ZipFile(path, "w") as zf:
        for n, data in members.items():
            zf.writestr(n, data)

    pkg = XlsxPackage.open(path)
    assert pkg.set_column_width("S", 4, 5, 9.0) is True
    pkg.save()
    w9 = repr(stored_width(9.0))
    assert w9 == "9.7109375"
    kept = {"width": "15.7109375", "style": "1", "hidden": "1", "customWidth": "1"}
    assert _cols(path, part) == [
        {"min": "2", "max": "3", **kept},
        {"min": "4", "max": "5", **kept, "width": w9},
        {"min": "6", "max": "10", **kept},
        {"min": "13", "max": "13", "width": "20", "customWidth": "1"},
    ]
    # setting the old width again merges the three pieces back into one range
    pkg = XlsxPackage.open(path)
    assert pkg.set_column_width("S", 4, 5, displayed_width(15.7109375)) is True
    pkg.save()
    assert _cols(path, part) == [
        {"min": "2", "max": "10", **kept},
        {"min": "13", "max": "13", "width": "20", "customWidth": "1"},
    ]
    # a range over gaps and an existing column: new ranges fill the gaps only
    pkg = XlsxPackage.open(path)
    assert pkg.set_column_width("S", 11, 14, 9.0) is True
    assert pkg.set_column_width("S", 11, 14, 9.0) is False  # idempotent
    pkg.save()
    assert _cols(path, part)[1:] == [{"min": "11", "max": "14", "width": w9,
                                      "customWidth": "1"}]
    widths = XlsxPackage.open(path).column_widths("S")
    assert widths[3] == 15.0 and widths[11] == widths[14] == 9.0 and 1 not in widths
    wb = openpyxl.load_workbook(path)
    assert wb["S"].column_dimensions["B"].hidden is True
    assert wb["S"].column_dimensions["B"].number_format == "0.000"


def _panes(path, part) -> str:
    root = etree.fromstring(_members(path)[part])
    view = root.find(f"{_q('sheetViews')}/{_q('sheetView')}")
    return etree.tostring(view, encoding="unicode").replace(f' xmlns="{MAIN}"', "")


@pytest.mark.parametrize(("row", "col", "openpyxl_says", "xml"), [
    (2, 1, "A2", '<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>'
                 '<selection pane="bottomLeft" activeCell="A2" sqref="A2"/>'),
    (3, 2, "B3", '<pane xSplit="1" ySplit="2" topLeftCell="B3" activePane="bottomRight" '
                 'state="frozen"/><selection pane="topRight"/><selection pane="bottomLeft"/>'
                 '<selection pane="bottomRight" activeCell="B3" sqref="B3"/>'),
    (1, 3, "C1", '<pane xSplit="2" topLeftCell="C1" activePane="topRight" state="frozen"/>'
                 '<selection pane="topRight" activeCell="C1" sqref="C1"/>'),
    (1, 1, None, '<selection activeCell="A1" sqref="A1"/>'),
])
def test_frozen_panes(refitted, tmp_path, row, col, openpyxl_says, xml):
    path = tmp_path / "panes.xlsx"
    shutil.copy(refitted, path)
    pkg = XlsxPackage.open(path)
    assert pkg.freeze_panes("Results", 1, 1) is True  # the demo freezes B2: start unfrozen
    assert pkg.frozen_panes("Results") == (1, 1)
    assert pkg.freeze_panes("Results", row, col) is ((row, col) != (1, 1))
    assert pkg.freeze_panes("Results", row, col) is False  # idempotent
    assert pkg.frozen_panes("Results") == (row, col)
    pkg.save()
    assert _panes(path, RESULTS) == f'<sheetView workbookViewId="0">{xml}</sheetView>'
    assert openpyxl.load_workbook(path)["Results"].freeze_panes == openpyxl_says
    # re-freezing elsewhere replaces the pane; unfreezing keeps the active cell
    pkg = XlsxPackage.open(path)
    pkg.freeze_panes("Results", 1, 1)
    pkg.save()
    active = "A1" if (row, col) == (1, 1) else f"{'ABC'[col - 1]}{row}"
    assert _panes(path, RESULTS) == (f'<sheetView workbookViewId="0"><selection '
                                     f'activeCell="{active}" sqref="{active}"/></sheetView>')


def test_freezing_a_scrolled_view_resets_the_scroll_and_keeps_a_selection_in_the_pane(
        refitted, tmp_path):
    path = tmp_path / "scrolled.xlsx"
    shutil.copy(refitted, path)
    members = _members(path)
    root = etree.fromstring(members[RESULTS])
    view = root.find(f"{_q('sheetViews')}/{_q('sheetView')}")
    for el in list(view):
        view.remove(el)
    view.set("topLeftCell", "C40")  # scrolled down and right, a range selected
    etree.SubElement(view, _q("selection"), activeCell="D41", sqref="D41:E45")
    members[RESULTS] = etree.tostring(root, xml_declaration=True, encoding="UTF-8",
                                      standalone=True)
    with zipfile.ZipFile(path, "w") as zf:
        for n, data in members.items():
            zf.writestr(n, data)
    pkg = XlsxPackage.open(path)
    assert pkg.freeze_panes("Results", 2, 1) is True
    pkg.save()
    assert _panes(path, RESULTS) == (
        '<sheetView workbookViewId="0" topLeftCell="A1"><pane ySplit="1" topLeftCell="A2" '
        'activePane="bottomLeft" state="frozen"/><selection pane="bottomLeft" '
        'activeCell="D41" sqref="D41:E45"/></sheetView>')


def test_a_workbook_without_styles_gets_a_minimal_stylesheet(tmp_path):
    path = tmp_path / "bare.xlsx"
    wb = openpyxl.Workbook()
    wb.active["A1"] = 0.25
    wb.active["A2"] = "text"
    wb.save(path)
    members = _members(path)
    del members["xl/styles.xml"]
    for name in ("xl/_rels/workbook.xml.rels", "[Content_Types].xml"):
        root = etree.fromstring(members[name])
        for el in list(root):
            if "styles" in (el.get("Target", "") + el.get("PartName", "")):
                root.remove(el)
        members[name] = etree.tostring(root, xml_declaration=True, encoding="UTF-8",
                                       standalone=True)
    for c in etree.fromstring(members["xl/worksheets/sheet1.xml"]).iter(_q("c")):
        assert c.get("s") is None  # nothing points into the removed part
    with zipfile.ZipFile(path, "w") as zf:
        for n, data in members.items():
            zf.writestr(n, data)
    pkg = XlsxPackage.open(path)
    assert pkg.number_format("Sheet", "A1") == "General"
    assert pkg.set_number_format("Sheet", "A1:A3", "0.0%") == 3
    pkg.save()
    assert "xl/styles.xml" in _members(path)
    ws = openpyxl.load_workbook(path)["Sheet"]
    assert [ws[f"A{r}"].number_format for r in (1, 2, 3)] == ["0.0%"] * 3
    assert [ws[f"A{r}"].value for r in (1, 2, 3)] == [0.25, "text", None]
    assert _validate([path]) == []


def test_every_formatted_package_passes_the_validator(refitted, tmp_path):
    paths = []
    for i, (row, col) in enumerate(((2, 1), (2, 2), (1, 3))):
        path = tmp_path / f"valid{i}.xlsx"
        shutil.copy(refitted, path)
        io = XlsxFileIO(path)
        format_outputs(io)
        io.freeze_panes("Results", row, col)
        io.set_column_width("CV", 1, 30.0, last_col=3)
        io.set_number_format(Area("CV", 1, 1, 30, 12), "yyyy-mm-dd")  # blank cells too
        io.save()
        paths.append(path)
    template = tmp_path / "template.xlsm"
    shutil.copy(template_path(macro=True), template)
    run_jobs(XlsxFileIO(template), ["refit", "optimise_portfolio"])
    io = XlsxFileIO(template)
    format_outputs(io)
    io.save()
    assert _validate([*paths, template]) == []


def _soffice():
    exe = shutil.which("soffice")
    if exe is None:
        pytest.skip("LibreOffice is not installed")
    return exe


def test_libreoffice_reads_the_formats(refitted, tmp_path):
    """LibreOffice opens the edited package and saves back the same formats and widths.

    (A headless conversion drops every sheet view, so frozen panes cannot be checked here:
    openpyxl, the validator and the exact XML above check them.)"""
    path = tmp_path / "lo.xlsx"
    shutil.copy(refitted, path)
    io = XlsxFileIO(path)
    format_outputs(io)
    io.freeze_panes("Results", 2, 2)
    io.set_column_width("Results", 2, 14.0)
    io.save()
    out = tmp_path / "out"
    run = subprocess.run([_soffice(), "--headless", f"-env:UserInstallation=file://{tmp_path}/lo",
                          "--convert-to", "xlsx", "--outdir", str(out), str(path)],
                         capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr
    wb = openpyxl.load_workbook(out / "lo.xlsx")
    assert wb["Results"]["C5"].number_format == "0.000"
    assert wb["Portfolio"]["J3"].number_format == "0.00%"
    # LibreOffice stores widths in its own rounding: within a pixel of ours
    assert abs(wb["Results"].column_dimensions["B"].width - stored_width(14.0)) < 1 / 7


# =================================================================== estimates
@pytest.mark.parametrize(("value", "code", "text"), [
    (0.22174, "0.0%", "22.2%"),
    (-0.5, "0.000", "-0.500"),
    (1234.5, "#,##0.00", "1,234.50"),
    (0.000123, "0.00E+00", "1.23E-04"),
    (2.217e-12, "General", "2.217E-12"),
    (0.000371691394332118, "General", "0.000371691"),
    (123456789012.0, "General", "1.23457E+11"),
    (52.0, "General", "52"),
    (0.0, "General", "0"),
    (-3.0, '0.0;"minus "0.0', "minus 3.0"),
    (dt.datetime(2024, 1, 5), "yyyy-mm-dd", "0000-00-00"),
    (dt.datetime(2024, 1, 5), "d mmmm yyyy", "00 September 0000"),  # the longest
    (dt.datetime(2024, 1, 5), 'dd"."mmm h:mm AM/PM', "00.Sep 00:00 AM"),
    (0.0, '0.0;-0.0;"zero"', "zero"),
    (1234.5, "\\$#,##0_);[Red](\\$#,##0)", "$1,235 "),
    (-1234.5, "\\$#,##0_);[Red](\\$#,##0)", "($1,235)"),
    (True, "General", "TRUE"),
    ("reg_lambda", "0.000", "reg_lambda"),
    (1e30, "0.000", f"{10**30}.000"),  # beyond Decimal's default 28 digits
    (-1e300, "#,##0.00", f"-{10**300:,}.00"),  # the shortest repr, as Excel
])
def test_display_text(value, code, text):
    assert display_text(value, code) == text


def test_widths_and_their_units():
    assert stored_width(8.43) == 9.140625 and displayed_width(9.140625) == 8.43
    # Excel snaps a width to whole pixels: 12.5 characters = 92.5 px shows as 92 px = 12.43
    assert [displayed_width(stored_width(w)) for w in (1, 10, 12.5, 100)] == [1, 10, 12.43,
                                                                              100]
    assert column_points(8.43) == 48.0  # Excel's default column: 64 px = 48 pt
    assert column_points(12) == 66.75
    assert text_width("0000-00-00") == 8 + 2 * 0.7  # digits 1, '-' 0.7
    assert text_width("Mil.") == 1.5 + 0.5 + 0.5 + 0.5
    assert fitted_width(["asset"]) == 8.43  # never below Excel's default
    # (9.4 * 1.1 + 1) = 11.34 characters = 79.4 pixels: 80 pixels = 11.43 characters
    assert fitted_width(["0000-00-00"]) == 11.43
    assert fitted_width(["x" * 200]) == 60.0
    assert fitted_width([], min_width=2.0) == 2.0
    # fitted widths are whole pixels: they survive the file's storage unchanged
    for n in range(1, 60):
        w = fitted_width(["0" * n], min_width=0.0)
        assert displayed_width(stored_width(w)) == w, n


# =================================================================== remote engine
xw = pytest.importorskip("xlwings")
remote_only = pytest.mark.skipif(not xw.__pro__, reason="the remote engine needs a licence key")


def _remote_book(path):
    from tests.fake_office_client import book_payload

    return xw.Book(json=book_payload(path, xw.__version__))


def _replay(path, actions) -> None:
    """Apply format actions as xlwings Server's JavaScript does (the fake Office client)."""
    from tests.fake_office_client import apply_actions

    apply_actions(path, actions)


@remote_only
def test_remote_actions(refitted):
    book = _remote_book(refitted)
    io = XlwingsBookIO(book)
    assert io.set_number_format(Area("Results", 2, 2, 25, 7), "0.000") is True
    assert io.set_column_width("Results", 2, 12.0, last_col=4) is True
    assert io.fit_columns(Area("Results", 1, 1, 25, 1), max_width=20.0) is True
    assert io.freeze_panes("Results", 2, 1) is True
    assert io.freeze_panes("Results", 3, 2) is True
    assert io.freeze_panes("Results", 1, 3) is True
    assert io.freeze_panes("Results", 1, 1) is True
    pos = 6  # Results is the seventh sheet
    box = {"sheet_position": pos, "values": None}
    none = {"start_row": None, "start_column": None, "row_count": None, "column_count": None}
    assert book.json()["actions"] == [
        {"func": "setNumberFormat", "args": ["0.000"], **box, "start_row": 1,
         "start_column": 1, "row_count": 24, "column_count": 6},
        {"func": "setColumnWidth", "args": [66.75], **box, "start_row": 0, "start_column": 1,
         "row_count": 1, "column_count": 3},
        {"func": "setAutofit", "args": ["columns"], **box, "start_row": 0, "start_column": 0,
         "row_count": 25, "column_count": 1},
        {"func": "freezePaneAtRange", "args": ["1:1"], **box, **none},
        {"func": "freezePaneAtRange", "args": ["A1:A2"], **box, **none},
        {"func": "freezePaneAtRange", "args": ["A:B"], **box, **none},
        {"func": "freezePaneUnfreeze", "args": [None], **box, **none},
    ]


@remote_only
def test_remote_actions_give_the_file_adapters_formats(refitted, tmp_path):
    direct, remote = tmp_path / "direct.xlsx", tmp_path / "remote.xlsx"
    shutil.copy(refitted, direct)
    shutil.copy(refitted, remote)
    io = XlsxFileIO(direct)
    format_outputs(io)
    io.freeze_panes("Results", 2, 2)
    io.save()
    book = _remote_book(remote)
    format_outputs(XlwingsBookIO(book))
    XlwingsBookIO(book).freeze_panes("Results", 2, 2)
    _replay(remote, book.json()["actions"])

    def formats(path):
        wb = openpyxl.load_workbook(path)
        return ({(ws.title, c.coordinate): c.number_format for ws in wb.worksheets
                 for row in ws.iter_rows() for c in row},
                {ws.title: ws.freeze_panes for ws in wb.worksheets})

    assert formats(remote) == formats(direct)
    assert _members(remote)["xl/styles.xml"] == _members(direct)["xl/styles.xml"]


def test_frozen_range_of_office_js():
    assert [_frozen_range(*rc) for rc in ((2, 1), (4, 1), (2, 2), (5, 3), (1, 2), (1, 28))] == [
        "1:1", "1:3", "A1:A1", "A1:B4", "A:A", "A:AA"]


# =================================================================== engines that cannot
def test_a_reading_engine_formats_nothing(refitted):
    book = xw.Book(str(refitted), mode="r")  # calamine: reads only
    try:
        io = XlwingsBookIO(book)
        assert io.names()["FL_COEF"] == Area("Results", 1, 1, 25, 7)
        assert io.set_number_format(Area("Results", 2, 2, 3, 3), "0.0%") is False
        assert io.set_column_width("Results", 1, 20.0) is False
        assert io.fit_columns(Area("Results", 1, 1, 25, 1)) is False
        assert io.freeze_panes("Results", 2, 1) is False
    finally:
        book.close()


class _Window:
    """A stand-in for Excel's COM Window: records what is set, in order."""

    def __init__(self, log):
        object.__setattr__(self, "log", log)

    def __setattr__(self, name, value):
        self.log.append((name, value))


class _Api:
    def __init__(self, log):
        self.window = _Window(log)

    def Windows(self, i):  # noqa: N802 - COM's name
        assert i == 1
        return self.window


class _Sheet:
    def __init__(self, name, book, hidden=False):
        self.name, self.book, self.hidden = name, book, hidden

    def activate(self):
        if self.hidden:
            raise RuntimeError("Activate method of Worksheet class failed")
        self.book.log.append(("activate", self.name))


class _Book:
    """A desktop Book as far as the window fallback uses it."""

    def __init__(self):
        self.log = []
        self.api = _Api(self.log)
        self.app = type("App", (), {"screen_updating": True})()
        self.results = _Sheet("Results", self)
        self.sheets = type("Sheets", (), {"active": _Sheet("Start", self)})()


def test_desktop_freeze_goes_through_the_window_and_restores_the_sheet(monkeypatch):
    monkeypatch.setattr("sys.platform", "win32")
    book = _Book()
    _freeze_desktop(book.results, 2, 3)
    assert book.log == [("activate", "Results"), ("FreezePanes", False), ("SplitRow", 0),
                        ("SplitColumn", 0), ("ScrollRow", 1), ("ScrollColumn", 1),
                        ("SplitRow", 1), ("SplitColumn", 2), ("FreezePanes", True),
                        ("activate", "Start")]
    assert book.app.screen_updating is True
    book.log.clear()
    _freeze_desktop(book.results, 1, 1)  # unfreeze: no split is set again
    assert book.log == [("activate", "Results"), ("FreezePanes", False), ("SplitRow", 0),
                        ("SplitColumn", 0), ("activate", "Start")]
    book.log.clear()
    with pytest.raises(RuntimeError):  # a hidden sheet: the adapter turns this into False
        _freeze_desktop(_Sheet("Hidden", book, hidden=True), 2, 1)
    assert book.log == [("activate", "Start")] and book.app.screen_updating is True


# =================================================================== arguments
@pytest.mark.parametrize(("call", "message"), [
    (lambda io: io.set_column_width("Results", 0, 10.0),
     "sheet 'Results': column 0 is not a column number 1..16384"),
    (lambda io: io.set_column_width("Results", 3, 10.0, last_col=2),
     "sheet 'Results': columns 3..2 are in the wrong order"),
    (lambda io: io.set_column_width("Results", 1, 300.0),
     "sheet 'Results': column width 300.0 is not a number of characters 0..255"),
    (lambda io: io.set_column_width("Results", 1, True),
     "sheet 'Results': column width True is not a number of characters 0..255"),
    (lambda io: io.set_number_format(Area("Results", 2, 2, 3, 3), ""),
     "Results!B2:C3: number format '' is not a format code"),
    (lambda io: io.set_number_format(Area("Results", 2, 2, 3, 3), "0" * 256),
     "Results!B2:C3: number format of 256 characters is longer than Excel's 255"),
    (lambda io: io.freeze_panes("Results", 0, 1),
     "sheet 'Results': row 0 is not a row number 1..1048576"),
    (lambda io: io.fit_columns(Area("Results", 1, 1, 2, 1), min_width=20.0, max_width=10.0),
     "column width bounds 20.0..10.0 are not 0 <= min <= max <= 255 characters"),
])
def test_bad_arguments_are_refused_on_every_adapter(refitted, call, message):
    adapters = [XlsxFileIO(refitted), demo_memory_book()]
    if xw.__pro__:
        adapters.append(XlwingsBookIO(_remote_book(refitted)))
    for io in adapters:
        with pytest.raises(ValueError) as err:
            call(io)
        assert str(err.value) == message, type(io).__name__
    assert adapters[0].package._dirty == set()


# =================================================================== MemoryIO
def test_memory_io_keeps_formats_like_values():
    io = demo_memory_book()
    before = io.snapshot()
    area = Area("Returns", 2, 2, 261, 25)
    assert io.set_number_format(area, "0.0000") is True
    assert io.number_format("Returns", 2, 2) == "0.0000"
    assert io.number_format("Returns", 1, 2) == "General"
    assert io.fit_columns(Area("Returns", 1, 1, 261, 2)) is True
    # General shows a date's serial number in Excel; the estimate takes the longer ISO text
    assert display_text(io.cells[("Returns", 2, 1)]) == "2019-01-04T00:00:00"
    assert io.widths[("Returns", 1)] == 20.43  # 17.6 * 1.1 + 1 = 20.36 characters: 143 px
    assert io.widths[("Returns", 2)] == 8.43  # '-0.0123' needs less than a default column
    assert io.set_column_width("Results", 2, 12.0, last_col=3) is True
    assert io.widths[("Results", 2)] == io.widths[("Results", 3)] == 12.0
    assert io.freeze_panes("Results", 2, 2) is True and io.frozen == {"Results": (2, 2)}
    assert io.freeze_panes("Results", 1, 1) is True and io.frozen == {}
    assert io.snapshot() != before
    assert [e[0] for e in io.log] == ["number_format", "fit_columns", "column_width",
                                      "freeze_panes", "freeze_panes"]


def test_memory_io_as_an_engine_that_cannot_format():
    io = demo_memory_book()
    io.can_format = False
    before = io.snapshot()
    assert io.set_number_format(Area("Results", 2, 2, 3, 3), "0.0%") is False
    assert io.set_column_width("Results", 1, 10.0) is False
    assert io.fit_columns(Area("Results", 1, 1, 3, 1)) is False
    assert io.freeze_panes("Results", 2, 1) is False
    assert io.snapshot() == before and io.log == []


def test_memory_io_fit_uses_the_cells_format():
    io = MemoryIO()
    io.put("FL_X", "S", 1, 1, [["weight"], [0.123456789], [0.5]])
    io.fit_columns(Area("S", 1, 1, 3, 1), min_width=0.0)
    general = io.widths[("S", 1)]
    io.set_number_format(Area("S", 2, 1, 3, 1), "0.0%")
    io.fit_columns(Area("S", 1, 1, 3, 1), min_width=0.0)
    assert io.widths[("S", 1)] == fitted_width(["weight", "12.3%", "50.0%"], min_width=0.0)
    assert io.widths[("S", 1)] < general == fitted_width(["weight", "0.123456789", "0.5"],
                                                          min_width=0.0)


# =================================================================== the demo workbook
def test_demo_inputs_are_readable(demo):
    wb = openpyxl.load_workbook(demo)
    returns = wb["Returns"]
    assert returns["A2"].number_format == "yyyy-mm-dd" and returns["B2"].number_format == "0.0000"
    assert wb["Prior"]["B2"].number_format == "0.00"
    assert displayed_width(returns.column_dimensions["A"].width) >= 10.75
    assert {ws.title: ws.freeze_panes for ws in wb.worksheets} == {
        "Start": None, "Returns": "B2", "Factors": "B2", "Signs": "B2", "Prior": "B2",
        "Settings": "A2", "Results": "B2", "DerivedSigns": "B2", "PriorUsed": "B2",
        "Diagnostics": "A2", "CV": "A2", "Portfolio": "A2",
        "AssetGroups": "B2", "Risk": "A2", "ExposureBudget": "B2", "Rolling": "A2",
        "Backtest": "A2", "WeightHistory": "A2", "BetaHistory": "A2", "R2History": "A2",
        "ResidVolHistory": "A2", "ClusterHistory": "A2"}
    settings = wb["Settings"]
    assert displayed_width(settings.column_dimensions["A"].width) == fitted_width(
        [c.value for c in settings["A"] if c.value])


def test_libreoffice_shows_the_demo_dates(demo, tmp_path):
    """Rendered as a user sees it: the dates print as dates, no cell shows ###."""
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext is not installed")
    run = subprocess.run([_soffice(), "--headless", f"-env:UserInstallation=file://{tmp_path}/lo",
                          "--convert-to", "pdf", "--outdir", str(tmp_path), str(demo)],
                         capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr
    text = subprocess.run(["pdftotext", str(tmp_path / "demo.pdf"), "-"], capture_output=True,
                          text=True, check=True).stdout
    assert "###" not in text
    assert text.count("2019-01-04") == 2  # the first date of Returns and of Factors
    assert "annualization_factor" in text and "-0.0051" in text


def test_switching_formats_back_and_forth_reuses_the_styles(tmp_path):
    path = tmp_path / "toggle.xlsx"
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "S"
    for r in range(1, 4):
        ws.cell(r, 1, value=r / 7)
        ws.cell(r, 1).alignment = openpyxl.styles.Alignment(horizontal="center")
        ws.cell(r, 1).font = openpyxl.styles.Font(bold=True)
    wb.save(path)
    xfs_before = len(etree.fromstring(_members(path)["xl/styles.xml"]).find(_q("cellXfs")))
    for _ in range(5):
        for code in ("0.0%", "0.000", "0.0%"):
            pkg = XlsxPackage.open(path)
            pkg.set_number_format("S", "A1:A3", code)
            pkg.save()
    styles = etree.fromstring(_members(path)["xl/styles.xml"])
    xfs = styles.find(_q("cellXfs")).findall(_q("xf"))
    assert len(xfs) == xfs_before + 2  # one copy per code, found again on every later run
    assert [nf.get("formatCode") for nf in styles.iter(_q("numFmt"))] == ["0.0%", "0.000"]
    new = xfs[-2]  # the copy keeps the cell's font and alignment
    assert new.find(_q("alignment")).get("horizontal") == "center"
    assert new.get("fontId") == xfs[int(etree.fromstring(_members(path)[
        "xl/worksheets/sheet1.xml"]).find(f".//{_q('c')}").get("s"))].get("fontId")
    ws = openpyxl.load_workbook(path)["S"]
    assert [(c.number_format, c.font.b, c.alignment.horizontal) for (c,) in ws["A1:A3"]] == [
        ("0.0%", True, "center")] * 3


def test_a_missing_cell_shows_its_column_or_row_format(tmp_path):
    path = tmp_path / "inherit.xlsx"
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "S"
    ws["A1"] = 1
    ws.column_dimensions["C"].number_format = "0.00"
    ws.row_dimensions[5].number_format = "0.000"
    wb.save(path)
    pkg = XlsxPackage.open(path)
    assert [pkg.number_format("S", ref) for ref in ("A1", "C9", "B5", "Z9")] == [
        "General", "0.00", "0.000", "General"]
    # formatting C9 (no cell yet) starts from the column's style: nothing else is lost
    assert pkg.set_number_format("S", "C8:C9", "0.00") == 0
    assert pkg.set_number_format("S", "C9", "0.0%") == 1
    pkg.save()
    ws = openpyxl.load_workbook(path)["S"]
    assert ws["C9"].number_format == "0.0%" and ws["C9"].value is None
    # (openpyxl gives a missing cell the default style; Excel shows the column's)
    assert XlsxPackage.open(path).number_format("S", "C8") == "0.00"
