"""Data pasted next to a contract input that its name leaves out is found, with its cells.

Ten weeks pasted under FL_RETURNS and an asset column typed beside it used to be ignored
without a word. :func:`adjoining_data` names the cells on every engine, reads only a bounded
strip next to the range, and never mistakes another FL_* range for left-out data.
"""

from __future__ import annotations

from pathlib import Path

import openpyxl
import pytest
from openpyxl.workbook.defined_name import DefinedName
from openpyxl.worksheet.table import Table

from tests.file_safety_helpers import FakeBook, FakeName, FakeSheet
from tests.test_tables import DesktopTable
from tests.workbook_helpers import MemoryIO
from xl_factorlasso.cli import build_demo_workbook
from xl_factorlasso.workbook import Area, XlsxFileIO, XlwingsBookIO, _growth
from xl_factorlasso.workbook._growth import Adjoining, adjoining_data, adjoining_inputs

ROOT = Path(__file__).resolve().parents[1]
_PLAIN_FIX = "hold data the name leaves out: extend the name, or make the range an Excel Table"
PASTED = ("10 rows below FL_RETURNS (Returns!A262:Y271) and 1 column to its right "
          f"(Returns!Z1:Z261) {_PLAIN_FIX}")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    path = tmp_path_factory.mktemp("growth") / "demo.xlsx"
    build_demo_workbook(str(path), tables=False)  # plain named ranges
    return path


def _paste(src, dst, *, rows=range(262, 272), column=True):
    """Ten more weeks under the returns and a new asset column beside them."""
    wb = openpyxl.load_workbook(src)
    ws = wb["Returns"]
    for r in rows:
        ws.cell(r, 1, ws.cell(261, 1).value)
        for c in range(2, 26):
            ws.cell(r, c, 0.001 * c)
    if column:
        ws.cell(1, 26, "NEW")
        for r in range(2, 262):
            ws.cell(r, 26, 0.002)
    wb.save(dst)
    return dst


def test_demo_with_pasted_weeks_and_a_new_asset(demo, tmp_path):
    io = XlsxFileIO(_paste(demo, tmp_path / "pasted.xlsx"))
    found = adjoining_inputs(io)
    assert found == [Adjoining("FL_RETURNS", Area("Returns", 1, 1, 261, 25),
                               Area("Returns", 262, 1, 271, 25), Area("Returns", 1, 26, 261, 26))]
    assert found[0].message == str(found[0]) == PASTED
    assert found[0].cells == (Area("Returns", 262, 1, 271, 25), Area("Returns", 1, 26, 261, 26))


def test_nothing_adjoins_the_demo_or_the_templates(demo):
    assert adjoining_inputs(XlsxFileIO(demo)) == []
    for template in sorted((ROOT / "xl_factorlasso" / "templates").glob("factorlasso_template.xls*")):
        # the "what it does" column beside FL_SETTINGS is commentary, not a left-out column
        assert adjoining_inputs(XlsxFileIO(template)) == [], template.name


@pytest.mark.parametrize("rows, column, message", [
    (range(262, 263), False, "1 row below FL_RETURNS (Returns!A262:Y262) holds data the name "
     "leaves out: extend the name, or make the range an Excel Table"),
    ((), True, "1 column to the right of FL_RETURNS (Returns!Z1:Z261) holds data the name "
     "leaves out: extend the name, or make the range an Excel Table"),
    # a blank row ends the pasted block: row 266 and below are something else
    ((262, 263, 264, 265, 267, 268), False, f"4 rows below FL_RETURNS (Returns!A262:Y265) "
     f"{_PLAIN_FIX}"),
])
def test_exact_cells_left_out(demo, tmp_path, rows, column, message):
    io = XlsxFileIO(_paste(demo, tmp_path / "p.xlsx", rows=rows, column=column))
    assert [a.message for a in adjoining_inputs(io)] == [message]


def test_a_setting_typed_below_is_found_but_a_comment_column_is_not(demo, tmp_path):
    wb = openpyxl.load_workbook(demo)
    ws = wb["Settings"]
    ws["C1"], ws["C2"] = "what it does", "the model"  # beside FL_SETTINGS: commentary
    ws["A31"], ws["B31"] = "warmup_period", 20
    wb.save(tmp_path / "s.xlsx")
    assert [a.message for a in adjoining_inputs(XlsxFileIO(tmp_path / "s.xlsx"))] == [
        "1 row below FL_SETTINGS (Settings!A31:B31) holds data the name leaves out: extend the "
        "name, or make the range an Excel Table"]


# ============================================================================ other FL_* names
def _memory(cells: dict[tuple[int, int], object], names: dict[str, str]) -> MemoryIO:
    io = MemoryIO()
    io.cells = {("S", r, c): v for (r, c), v in cells.items()}
    from openpyxl.utils.cell import range_boundaries

    for name, ref in names.items():
        c1, r1, c2, r2 = range_boundaries(ref)
        io.defined[name] = Area("S", r1, c1, r2, c2)
    return io


def _block(r1, c1, r2, c2, value=1.0):
    return {(r, c): value for r in range(r1, r2 + 1) for c in range(c1, c2 + 1)}


def test_another_fl_range_is_not_left_out_data():
    # FL_FACTORS right beside FL_RETURNS, FL_SIGNS right under it: neither is flagged, but a
    # column typed beside FL_FACTORS is FL_FACTORS's business.
    cells = {**_block(1, 1, 4, 3), **_block(1, 4, 4, 5), **_block(5, 1, 7, 3), **_block(1, 6, 4, 6)}
    io = _memory(cells, {"FL_RETURNS": "A1:C4", "FL_FACTORS": "D1:E4", "FL_SIGNS": "A5:C7"})
    assert adjoining_data(io, "FL_RETURNS", io.defined["FL_RETURNS"]) is None
    assert [a.message for a in adjoining_inputs(io)] == [
        "1 column to the right of FL_FACTORS (S!F1:F4) holds data the name leaves out: extend "
        "the name, or make the range an Excel Table"]
    # a name of the user's own is not the contract's: data under it is still left out
    io.defined["MY_NOTES"] = Area("S", 5, 1, 7, 3)
    del io.defined["FL_SIGNS"]
    assert adjoining_data(io, "FL_RETURNS", io.defined["FL_RETURNS"]).below == Area("S", 5, 1, 7, 3)


def test_blank_looking_cells_do_not_count():
    cells = {**_block(1, 1, 4, 3), (5, 1): "   ", (5, 2): "", (1, 4): None}
    io = _memory(cells, {"FL_RETURNS": "A1:C4"})
    assert adjoining_data(io, "FL_RETURNS", io.defined["FL_RETURNS"]) is None
    io.cells[("S", 5, 3)] = 0.0  # a zero is data
    assert adjoining_data(io, "FL_RETURNS", io.defined["FL_RETURNS"]).below == Area("S", 5, 1, 5, 3)


# ============================================================================ bounded reading
class Recording(MemoryIO):
    def __init__(self, io: MemoryIO):
        super().__init__()
        self.cells, self.defined, self.reads = io.cells, io.defined, []

    def read(self, area):
        self.reads.append(area)
        return super().read(area)


def test_only_a_strip_next_to_the_range_is_read():
    io = Recording(_memory({**_block(1, 1, 4, 3), **_block(5, 1, 304, 3), (1000, 1): 1.0},
                           {"FL_RETURNS": "A1:C4"}))
    found = adjoining_data(io, "FL_RETURNS", io.defined["FL_RETURNS"], names=io.defined)
    assert found.below == Area("S", 5, 1, 304, 3) and found.right is None
    # chunks of 64, 128 and 256 rows below (the third ends at the blank row 305), and one of
    # 16 columns to the right: nothing else of the sheet, and row 1000 is never seen
    assert io.reads == [Area("S", 5, 1, 68, 3), Area("S", 69, 1, 196, 3),
                        Area("S", 197, 1, 452, 3), Area("S", 1, 4, 4, 19)]


def test_a_run_longer_than_the_limit_is_reported_as_at_least(monkeypatch):
    monkeypatch.setattr(_growth, "MAX_ROWS", 100)
    monkeypatch.setattr(_growth, "MAX_COLS", 20)
    io = Recording(_memory({**_block(1, 1, 4, 3), **_block(5, 1, 400, 3), **_block(1, 4, 4, 60)},
                           {"FL_RETURNS": "A1:C4"}))
    found = adjoining_data(io, "FL_RETURNS", io.defined["FL_RETURNS"])
    assert found.message == (
        "at least 100 rows below FL_RETURNS (S!A5:C104) and at least 20 columns to its right "
        f"(S!D1:W4) {_PLAIN_FIX}")
    assert max(a.max_row for a in io.reads) == 104 and max(a.max_col for a in io.reads) == 23


def test_a_range_at_the_edge_of_the_sheet_reads_nothing_beyond_it():
    io = Recording(_memory({(1_048_576, 16_384): 1.0}, {"FL_RETURNS": "XFC1048575:XFD1048576"}))
    assert adjoining_data(io, "FL_RETURNS", io.defined["FL_RETURNS"]) is None
    assert io.reads == []


# ============================================================================ tables
def _table_with_rows_below(path, *, totals: bool):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Returns"
    ws.append(["date", "SPX", "UST"])
    for i in range(5):
        ws.append([i + 1, 0.01, 0.02])
    last = 6
    if totals:
        ws.append(["Total", 0.05, 0.1])
        last = 7
    ws.add_table(Table(displayName="tblReturns", ref=f"A1:C{last}",
                       totalsRowCount=1 if totals else None))
    wb.defined_names["FL_RETURNS"] = DefinedName(
        "FL_RETURNS", attr_text="tblReturns[[#Headers],[#Data]]")
    wb.save(path)
    return path


def test_a_table_with_a_totals_row_has_nothing_left_out(tmp_path):
    io = XlsxFileIO(_table_with_rows_below(tmp_path / "t.xlsx", totals=True))
    assert io.names()["FL_RETURNS"] == Area("Returns", 1, 1, 6, 3)
    assert adjoining_inputs(io) == []


def test_rows_under_a_table_ask_for_the_table_to_be_resized(tmp_path):
    path = _table_with_rows_below(tmp_path / "t.xlsx", totals=True)
    wb = openpyxl.load_workbook(path)
    for r in (8, 9):
        wb["Returns"].append([r, 0.03, 0.04])
    wb.save(path)
    assert [a.message for a in adjoining_inputs(XlsxFileIO(path))] == [
        "2 rows below table 'tblReturns' of FL_RETURNS (Returns!A8:C9) hold data the table "
        "leaves out: resize table 'tblReturns' over them (Table Design > Resize Table)"]


# ============================================================================ other engines
def test_remote_engine_finds_the_same_cells(demo, tmp_path):
    xw = pytest.importorskip("xlwings")
    if not xw.__pro__:  # pragma: no cover - depends on the machine's licence key
        pytest.skip("xlwings' remote engine needs XLWINGS_LICENSE_KEY")
    from tests.fake_office_client import book_payload

    path = _paste(demo, tmp_path / "pasted.xlsx")
    io = XlwingsBookIO(xw.Book(json=book_payload(path, xw.__version__)))
    assert [a.message for a in adjoining_inputs(io)] == [PASTED]


def test_desktop_engine_finds_the_same_cells():
    sheet = FakeSheet("Returns")
    sheet.values.update({(1, 1): "date", (1, 2): "SPX"})
    sheet.values.update({(r, c): 0.01 for r in range(2, 9) for c in (1, 2)})  # rows 7-8 pasted
    sheet.values.update({(1, 4): "not adjoining", (3, 4): 1.0})  # beyond the blank column C
    book = FakeBook([sheet], [FakeName("FL_RETURNS", "='Returns'!$A$1:$B$6"),
                              FakeName("FL_FACTORS", "=tblF[#All]")])
    sheet.table_list = [DesktopTable(sheet, "tblF", (20, 1, 22, 2))]
    sheet.values.update({(r, c): 0.5 for r in range(20, 25) for c in (1, 2)})  # tblF + 2 rows
    found = adjoining_inputs(XlwingsBookIO(book))
    assert [a.message for a in found] == [
        "2 rows below FL_RETURNS (Returns!A7:B8) hold data the name leaves out: extend the "
        "name, or make the range an Excel Table",
        "2 rows below table 'tblF' of FL_FACTORS (Returns!A23:B24) hold data the table leaves "
        "out: resize table 'tblF' over them (Table Design > Resize Table)"]
