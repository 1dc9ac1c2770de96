"""FL_* names on Excel tables (ListObjects), on the file, remote and desktop engines.

A name defined as ``=tblReturns[#All]`` follows the table: when Excel extends the table over
pasted rows or a new column, every engine reads the table's new range, and a refit on it
equals a refit on the same data in a plain range. References that would read the wrong cells
(the data rows without the header, one column, the totals row) get a reason, not a guess.
"""

from __future__ import annotations

import openpyxl
import pytest
from openpyxl.workbook.defined_name import DefinedName
from openpyxl.worksheet.table import Table, TableColumn

from tests.file_safety_helpers import FakeBook, FakeName, FakeRange, FakeSheet
from xl_factorlasso.cli import build_demo_workbook
from xl_factorlasso.workbook import Area, XlsxFileIO, XlwingsBookIO, refit
from xl_factorlasso.workbook._inspect import inspect_workbook
from xl_factorlasso.workbook._xlsx_refs import (
    TableSpan,
    parse_name_target,
    parse_structured_ref,
)

# ============================================================================ the references
_TABLES = {
    "tblreturns": TableSpan("tblReturns", "Returns", (1, 1, 271, 26)),
    "tbltotals": TableSpan("tblTotals", "My Data", (3, 2, 10, 4), 1, 1),
    "tblbare": TableSpan("tblBare", "S", (1, 1, 5, 2), 0, 0),
}
_FIX = "define it as =tblReturns[#All]"
_READS = "the contract reads the header row and the data rows: " + _FIX


@pytest.mark.parametrize("text, expected", [
    ("tblReturns[#All]", ("Returns", (1, 1, 271, 26))),
    ("=tblreturns[#all]", ("Returns", (1, 1, 271, 26))),
    ("tblReturns[[#Headers],[#Data]]", ("Returns", (1, 1, 271, 26))),
    ("tblReturns[[#Headers], [#Data]]", ("Returns", (1, 1, 271, 26))),
    ("tblReturns[[#Data],[#Headers]]", ("Returns", (1, 1, 271, 26))),
    ("'Returns'!tblReturns[#All]", ("Returns", (1, 1, 271, 26))),
    ("Returns!tblReturns[#All]", ("Returns", (1, 1, 271, 26))),
    # the totals row is left out by [[#Headers],[#Data]] ...
    ("tblTotals[[#Headers],[#Data]]", ("My Data", (3, 2, 9, 4))),
    # ... and refused in [#All], where it would be read as a row of data
    ("tblTotals[#All]", "covers the totals row of table 'tblTotals' (tblTotals[#All]: "
     "'My Data'!B10:D10), which would be read as data; define it as "
     "=tblTotals[[#Headers],[#Data]] or turn off Total Row in Table Design"),
    ("tblReturns", "refers to the data rows of table 'tblReturns' without its header row "
     f"(tblReturns alone means tblReturns[#Data] in Excel); {_READS}"),
    ("tblReturns[#Data]", "refers to the data rows of table 'tblReturns' without its header "
     f"row (tblReturns[#Data]); {_READS}"),
    ("tblReturns[]", "refers to the data rows of table 'tblReturns' without its header "
     f"row (tblReturns[]); {_READS}"),
    ("tblReturns[#Headers]", "refers to the header row of table 'tblReturns' only "
     f"(tblReturns[#Headers]); {_READS}"),
    ("tblReturns[#Totals]", "refers to the totals row of table 'tblReturns' only "
     f"(tblReturns[#Totals]); {_READS}"),
    ("tblReturns[[#Data],[#Totals]]", "refers to the data rows and the totals row of table "
     f"'tblReturns' without its header row (tblReturns[[#Data],[#Totals]]); {_READS}"),
    ("tblReturns[SPX]", "refers to column 'SPX' of table 'tblReturns' only (tblReturns[SPX]); "
     f"the contract reads the whole table with its header row: {_FIX}"),
    ("tblReturns[[#All],[SPX]]", "refers to column 'SPX' of table 'tblReturns' only "
     f"(tblReturns[[#All],[SPX]]); the contract reads the whole table with its header row: "
     f"{_FIX}"),
    ("tblReturns[[SPX]:[UST 10y]]", "refers to columns 'SPX' to 'UST 10y' of table "
     "'tblReturns' only (tblReturns[[SPX]:[UST 10y]]); the contract reads the whole table "
     f"with its header row: {_FIX}"),
    ("tblReturns[Rate'[%']]", "refers to column 'Rate[%]' of table 'tblReturns' only "
     f"(tblReturns[Rate'[%']]); the contract reads the whole table with its header row: {_FIX}"),
    ("tblReturns[#This Row]", "refers to one row of table 'tblReturns', the row of the formula "
     f"that uses it (tblReturns[#This Row]), not a fixed range; {_FIX}"),
    ("tblReturns[@[S P X]]", "refers to one row of table 'tblReturns', the row of the formula "
     f"that uses it (tblReturns[@[S P X]]), not a fixed range; {_FIX}"),
    ("Factors!tblReturns[#All]", "refers to table 'tblReturns' on sheet 'Factors' "
     f"(Factors!tblReturns[#All]), but that table is on sheet 'Returns'; {_FIX}"),
    ("tblBare[#All]", "refers to table 'tblBare', whose header row is switched off "
     "(tblBare[#All]); the contract reads the names in the header row: turn on Header Row "
     "in Table Design"),
    ("tblGone[#All]", "refers to table 'tblGone' (tblGone[#All]), which is not in the "
     "workbook (its tables are tblBare, tblReturns, tblTotals)"),
    ("tblReturns[#All]:[#Data]", "is a formula (tblReturns[#All]:[#Data]), not a fixed range; "
     "the contract needs a plain range such as Sheet1!$B$2:$D$9"),
    # A bare identifier that is no table is judged as before (a cell, a constant, a formula).
    ("Returns!B2", ("Returns", (2, 2, 2, 2))),
    ("TRUE", "is a constant (TRUE), not a range"),
    ("[1]!Rates", "refers to another workbook (other.xlsx: [1]!Rates); contract ranges must "
     "be in this workbook"),
])
def test_table_references(text, expected):
    assert parse_name_target(text, ["other.xlsx"], _TABLES) == expected


def test_tables_are_only_listed_for_a_table_reference():
    calls = []

    def tables():
        calls.append(1)
        return _TABLES

    assert parse_name_target("Returns!$A$1:$B$2", (), tables) == ("Returns", (1, 1, 2, 2))
    assert parse_name_target("#REF!", (), tables).startswith("refers to #REF!")
    assert calls == []
    assert parse_name_target("tblReturns[#All]", (), tables) == ("Returns", (1, 1, 271, 26))
    assert calls == [1]


def test_structured_reference_parts():
    ref = parse_structured_ref("='My Sheet'!tbl.Q1[[#Headers],[#Data],[A]:[B]]")
    assert (ref.sheet, ref.table, ref.parts, ref.columns, ref.this_row, ref.bracketed) == (
        "My Sheet", "tbl.Q1", frozenset({"headers", "data"}), ("A:B",), False, True)
    assert parse_structured_ref("tbl").parts == frozenset({"data"})
    assert parse_structured_ref("tbl[@]").this_row
    assert parse_structured_ref("'[other.xlsx]S'!tbl[#All]") is None  # another workbook
    assert parse_structured_ref("Data!$A$1") is None
    assert parse_structured_ref("tbl[[#All]") is None  # unbalanced


# ============================================================================ the file adapter
def _table_book(path, *, n_rows=5, name_text="tblReturns[#All]", totals=False, header=True,
                extra_names=()):
    """Returns!A1:C(1+n_rows) as table tblReturns, FL_RETURNS defined by ``name_text``."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Returns"
    ws.append(["date", "SPX", "UST"])
    for i in range(n_rows):
        ws.append([i + 1, 0.01 * (i + 1), -0.02 * (i + 1)])
    last = 1 + n_rows
    if totals:
        ws.append(["Total", "=SUBTOTAL(109,[SPX])", None])
        last += 1
    table = Table(displayName="tblReturns", ref=f"A1:C{last}",
                  totalsRowCount=1 if totals else None)
    if not header:
        ws.delete_rows(1)
        table.ref = f"A1:C{last - 1}"
        table.headerRowCount = 0
    ws.add_table(table)
    wb.defined_names["FL_RETURNS"] = DefinedName("FL_RETURNS", attr_text=name_text)
    for name, text in extra_names:
        wb.defined_names[name] = DefinedName(name, attr_text=text)
    wb.save(path)
    return path


def _grow(path, *, rows=0, new_column=None):
    """What Excel does when a user pastes rows under the table or types a new column beside
    it: the cells are written and the table's ``ref`` is extended (the name is untouched)."""
    wb = openpyxl.load_workbook(path)
    ws = wb["Returns"]
    table = ws.tables["tblReturns"]
    r1, c1, r2, c2 = _bounds(table.ref)
    for i in range(rows):
        r = r2 + 1 + i
        ws.cell(r, 1, r - 1)
        for c in range(2, c2 + 1):
            ws.cell(r, c, 0.001 * r * c)
    r2 += rows
    if new_column is not None:
        c2 += 1
        ws.cell(1, c2, new_column)
        for r in range(2, r2 + 1):
            ws.cell(r, c2, 0.003 * r)
        table.tableColumns.append(TableColumn(id=c2, name=new_column))
    table.ref = f"A{r1}:{openpyxl.utils.get_column_letter(c2)}{r2}"
    table.autoFilter.ref = table.ref
    wb.save(path)


def _bounds(ref):
    from openpyxl.utils.cell import range_boundaries

    c1, r1, c2, r2 = range_boundaries(ref)
    return r1, c1, r2, c2


def test_file_adapter_follows_a_table_that_grew(tmp_path):
    path = _table_book(tmp_path / "t.xlsx")
    io = XlsxFileIO(path)
    assert io.names() == {"FL_RETURNS": Area("Returns", 1, 1, 6, 3)}
    assert io._name_tables() == {"FL_RETURNS": ("tblReturns", Area("Returns", 1, 1, 6, 3))}
    _grow(path, rows=10, new_column="NEW")
    io = XlsxFileIO(path)
    assert io.names() == {"FL_RETURNS": Area("Returns", 1, 1, 16, 4)}
    values = io.read(io.names()["FL_RETURNS"])
    assert values[0] == ["date", "SPX", "UST", "NEW"]
    assert values[-1] == [15.0, pytest.approx(0.032), pytest.approx(0.048), pytest.approx(0.048)]
    assert io.name_issues() == {}


@pytest.mark.parametrize("text", ["tblReturns[[#Headers],[#Data]]", "'Returns'!tblReturns[#All]",
                                  "TBLRETURNS[#ALL]"])
def test_file_adapter_accepts_the_forms_excel_writes(tmp_path, text):
    io = XlsxFileIO(_table_book(tmp_path / "t.xlsx", name_text=text))
    assert io.names() == {"FL_RETURNS": Area("Returns", 1, 1, 6, 3)}


def test_file_adapter_leaves_the_totals_row_out_or_refuses_it(tmp_path):
    io = XlsxFileIO(_table_book(tmp_path / "a.xlsx", totals=True,
                                name_text="tblReturns[[#Headers],[#Data]]"))
    assert io.names() == {"FL_RETURNS": Area("Returns", 1, 1, 6, 3)}
    # the totals row is part of the table, so data under it is looked for below row 7
    assert io._name_tables() == {"FL_RETURNS": ("tblReturns", Area("Returns", 1, 1, 7, 3))}
    io = XlsxFileIO(_table_book(tmp_path / "b.xlsx", totals=True))
    assert io.names() == {}
    assert io.name_issues() == {"FL_RETURNS": (
        "covers the totals row of table 'tblReturns' (tblReturns[#All]: Returns!A7:C7), which "
        "would be read as data; define it as =tblReturns[[#Headers],[#Data]] or turn off "
        "Total Row in Table Design")}


def test_inspect_names_the_reference_to_fix(tmp_path):
    path = _table_book(tmp_path / "t.xlsx", name_text="tblReturns",
                       extra_names=[("FL_FACTORS", "tblFactors[#All]"),
                                    ("FL_SIGNS", "tblReturns[SPX]")])
    report = inspect_workbook(XlsxFileIO(path))
    assert report.problems[:3] == [
        "FL_RETURNS: the name FL_RETURNS refers to the data rows of table 'tblReturns' "
        "without its header row (tblReturns alone means tblReturns[#Data] in Excel); the "
        "contract reads the header row and the data rows: define it as =tblReturns[#All]",
        "FL_FACTORS: the name FL_FACTORS refers to table 'tblFactors' (tblFactors[#All]), "
        "which is not in the workbook (its tables are tblReturns)",
        "FL_SIGNS: the name FL_SIGNS refers to column 'SPX' of table 'tblReturns' only "
        "(tblReturns[SPX]); the contract reads the whole table with its header row: define "
        "it as =tblReturns[#All]",
    ]


def test_a_table_without_its_header_row_is_refused(tmp_path):
    io = XlsxFileIO(_table_book(tmp_path / "t.xlsx", header=False))
    assert io.name_issues()["FL_RETURNS"].startswith(
        "refers to table 'tblReturns', whose header row is switched off")


# ============================================================================ demo as tables
def _demo_with_tables(path, *, returns_rows=261):
    """The demo workbook with FL_RETURNS and FL_FACTORS as tables (Returns!A1:Y261 and
    Factors!A1:G261 hold the same cells as in the plain demo); tblReturns covers only the
    first ``returns_rows`` rows."""
    build_demo_workbook(str(path), tables=False)  # plain named ranges
    wb = openpyxl.load_workbook(path)
    for name, sheet, table, last_col in (("FL_RETURNS", "Returns", "tblReturns", "Y"),
                                         ("FL_FACTORS", "Factors", "tblFactors", "G")):
        rows = returns_rows if table == "tblReturns" else 261
        ws = wb[sheet]
        ws.add_table(Table(displayName=table, ref=f"A1:{last_col}{rows}"))
        del wb.defined_names[name]
        wb.defined_names[name] = DefinedName(name, attr_text=f"{table}[#All]")
    wb.save(path)
    return path


def _outputs(path) -> dict:
    wb = openpyxl.load_workbook(path)
    return {(ws.title, c.coordinate): c.value for ws in wb.worksheets
            if ws.title in ("Results", "Diagnostics") for row in ws.iter_rows() for c in row
            if c.value is not None}


@pytest.fixture(scope="module")
def plain_refit(tmp_path_factory):
    path = tmp_path_factory.mktemp("plain") / "plain.xlsx"
    build_demo_workbook(str(path), tables=False)  # plain named ranges
    refit(XlsxFileIO(path))
    return path


def _same_outputs(a_path, b_path):
    a, b = _outputs(a_path), _outputs(b_path)
    assert set(a) == set(b)
    stamps = {k for k, v in a.items() if isinstance(v, str) and v[:2] == "20"}  # FL_STATUS time
    assert len(stamps) <= 1
    assert {k: v for k, v in a.items() if k not in stamps} == {
        k: v for k, v in b.items() if k not in stamps}


def test_refit_on_a_grown_table_equals_the_refit_on_a_plain_range(tmp_path, plain_refit):
    # tblReturns was made over the first 250 weeks; the last 10 were pasted under it ...
    path = _demo_with_tables(tmp_path / "tables.xlsx", returns_rows=251)
    io = XlsxFileIO(path)
    assert io.names()["FL_RETURNS"] == Area("Returns", 1, 1, 251, 25)
    # ... and Excel extended the table over them: the name now reads all 260 weeks.
    wb = openpyxl.load_workbook(path)
    wb["Returns"].tables["tblReturns"].ref = "A1:Y261"
    wb["Returns"].tables["tblReturns"].autoFilter.ref = "A1:Y261"
    wb.save(path)
    io = XlsxFileIO(path)
    assert io.names()["FL_RETURNS"] == Area("Returns", 1, 1, 261, 25)
    assert io.names()["FL_FACTORS"] == Area("Factors", 1, 1, 261, 7)
    refit(io)
    _same_outputs(plain_refit, path)


# ============================================================================ the remote engine
@pytest.fixture
def remote_book():
    xw = pytest.importorskip("xlwings")
    if not xw.__pro__:  # pragma: no cover - depends on the machine's licence key
        pytest.skip("xlwings' remote engine needs XLWINGS_LICENSE_KEY")
    from tests.fake_office_client import book_payload

    return lambda path: xw.Book(json=book_payload(path, xw.__version__))


def test_payload_carries_tables_and_names_as_office_js_does(tmp_path):
    from tests.fake_office_client import book_payload

    path = _table_book(tmp_path / "t.xlsx", totals=True,
                       name_text="tblReturns[[#Headers],[#Data]]",
                       extra_names=[("FL_X", "tblReturns")])
    payload = book_payload(path, "0")
    assert payload["sheets"][0]["tables"] == [{
        "name": "tblReturns", "range_address": "A1:C7", "row_count": 7, "column_count": 3,
        "header_row_range_address": "A1:C1", "data_body_range_address": "A2:C6",
        "total_row_range_address": "A7:C7", "show_headers": True, "show_totals": True}]
    by_name = {n["name"]: n for n in payload["names"]}
    assert (by_name["FL_RETURNS"]["refers_to"], by_name["FL_RETURNS"]["address"]) == (
        "=tblReturns[[#Headers],[#Data]]", "A1:C6")
    assert (by_name["FL_X"]["refers_to"], by_name["FL_X"]["address"]) == ("=tblReturns", "A2:C6")


def test_remote_engine_follows_a_table_that_grew(tmp_path, remote_book):
    path = _table_book(tmp_path / "t.xlsx",
                       extra_names=[("FL_X", "tblReturns[#Data]"), ("FL_Y", "tblNone[#All]")])
    _grow(path, rows=10, new_column="NEW")
    io, direct = XlwingsBookIO(remote_book(path)), XlsxFileIO(path)
    assert io.names() == direct.names() == {"FL_RETURNS": Area("Returns", 1, 1, 16, 4)}
    assert io.name_issues() == direct.name_issues()
    assert set(io.name_issues()) == {"FL_X", "FL_Y"}
    assert io._name_tables() == direct._name_tables()
    assert io.read(io.names()["FL_RETURNS"]) == direct.read(direct.names()["FL_RETURNS"])


def test_remote_refit_on_tables_writes_what_the_file_adapter_writes(tmp_path, remote_book,
                                                                    plain_refit):
    from tests.fake_office_client import apply_actions
    from xl_factorlasso.ribbon import run_book_job

    path = _demo_with_tables(tmp_path / "remote.xlsx")
    book = remote_book(path)
    message = run_book_job(book, "refit")
    assert apply_actions(path, book.json()["actions"]) == [message]
    assert "refit" in message
    _same_outputs(plain_refit, path)
    # the names on the tables were left alone
    assert XlsxFileIO(path).package.defined_names()["FL_RETURNS"].ref == "A1:Y261"
    formulas = {e.name: e.formula for e in XlsxFileIO(path).package.all_defined_names()}
    assert formulas["FL_RETURNS"] == "tblReturns[#All]"


# ============================================================================ the desktop engine
class DesktopTable:
    """The part of a desktop ``xlwings.Table`` the adapter reads (COM ListObject)."""

    def __init__(self, sheet, name, bounds, header=True, totals=False):
        r1, c1, r2, c2 = bounds
        self.name = name
        self.range = FakeRange(sheet, r1, c1, r2, c2)
        self.header_row_range = FakeRange(sheet, r1, c1, r1, c2) if header else None
        self.totals_row_range = FakeRange(sheet, r2, c1, r2, c2) if totals else None


def _desktop_book(rows=6, cols=3, names=(("FL_RETURNS", "=tblReturns[#All]"),)):
    sheet = FakeSheet("Returns")
    for r in range(1, 30):
        for c in range(1, 8):
            sheet.values[(r, c)] = None
    sheet.values.update({(1, 1): "date", (1, 2): "SPX", (1, 3): "UST"})
    for r in range(2, rows + 1):
        sheet.values.update({(r, 1): float(r - 1), (r, 2): 0.01 * r, (r, 3): -0.01 * r})
    sheet.table_list = [DesktopTable(sheet, "tblReturns", (1, 1, rows, cols))]
    return FakeBook([sheet], [FakeName(n, t) for n, t in names]), sheet


def test_desktop_engine_follows_a_table_that_grew():
    book, sheet = _desktop_book(names=[("FL_RETURNS", "=tblReturns[#All]"),
                                       ("FL_X", "=tblReturns[#Totals]"),
                                       ("FL_Y", "='Returns'!$A$1:$B$3")])
    io = XlwingsBookIO(book)
    assert io.names() == {"FL_RETURNS": Area("Returns", 1, 1, 6, 3),
                          "FL_Y": Area("Returns", 1, 1, 3, 2)}
    assert io.name_issues() == {"FL_X": (
        "refers to the totals row of table 'tblReturns' only (tblReturns[#Totals]); the "
        "contract reads the header row and the data rows: define it as =tblReturns[#All]")}
    # The user pastes 4 weeks and types a new column; Excel extends the ListObject.
    for r in range(7, 11):
        sheet.values.update({(r, 1): float(r - 1), (r, 2): 0.5, (r, 3): 0.25})
    sheet.values.update({(r, 4): 0.1 for r in range(2, 11)})
    sheet.values[(1, 4)] = "NEW"
    sheet.table_list = [DesktopTable(sheet, "tblReturns", (1, 1, 10, 4))]
    io = XlwingsBookIO(book)
    assert io.names()["FL_RETURNS"] == Area("Returns", 1, 1, 10, 4)
    assert io._name_tables() == {"FL_RETURNS": ("tblReturns", Area("Returns", 1, 1, 10, 4))}
    assert io.read(io.names()["FL_RETURNS"])[-1] == [9.0, 0.5, 0.25, 0.1]


def test_desktop_engine_leaves_a_totals_row_out():
    book, sheet = _desktop_book(names=[("FL_RETURNS", "=tblReturns[[#Headers],[#Data]]"),
                                       ("FL_ALL", "=tblReturns[#All]")])
    sheet.table_list = [DesktopTable(sheet, "tblReturns", (1, 1, 7, 3), totals=True)]
    io = XlwingsBookIO(book)
    assert io.names() == {"FL_RETURNS": Area("Returns", 1, 1, 6, 3)}
    assert io.name_issues()["FL_ALL"].startswith(
        "covers the totals row of table 'tblReturns' (tblReturns[#All]: Returns!A7:C7)")


def test_defining_an_output_name_keeps_the_name_on_a_table(tmp_path):
    """A job re-points output names; the input's table reference is stored as it was."""
    path = _table_book(tmp_path / "t.xlsx")
    io = XlsxFileIO(path)
    io.define_name("FL_COEF", Area("Returns", 20, 1, 22, 2))
    io.save()
    io = XlsxFileIO(path)
    assert io.names() == {"FL_COEF": Area("Returns", 20, 1, 22, 2),
                          "FL_RETURNS": Area("Returns", 1, 1, 6, 3)}
    assert [e.formula for e in io.package.all_defined_names()] == [
        "Returns!$A$20:$B$22", "tblReturns[#All]"]


def test_a_damaged_table_part_is_reported_not_guessed(tmp_path):
    from tests.file_safety_helpers import members, write_zip

    path = _table_book(tmp_path / "t.xlsx")
    parts = members(path)
    parts["xl/tables/table1.xml"] = parts["xl/tables/table1.xml"].replace(
        b'ref="A1:C6"', b'ref="A1:C"')
    write_zip(path, parts)
    io = XlsxFileIO(path)
    assert io.names() == {}
    assert io.name_issues() == {"FL_RETURNS": (
        "refers to table 'tblReturns' (tblReturns[#All]), which cannot be read: its part "
        "xl/tables/table1.xml has the range 'A1:C' and row counts '1'/'0'; the file is damaged: "
        "repair it in Excel (File > Open > Open and Repair)")}
