"""The contract on real files: round trips, parts that must survive, and a bad-input corpus.

Every bad input must give its message and leave the file byte-for-byte unchanged.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
import zipfile

import numpy as np
import openpyxl
import pytest
from openpyxl.chart import BarChart, Reference
from openpyxl.workbook.defined_name import DefinedName

from tests.test_xlsx_package import CUSTOM_UI, VBA_BYTES, _make_macro_enabled, _rewrite
from xl_factorlasso import LassoModel, load_demo_panel
from xl_factorlasso.cli import build_demo_workbook, main
from xl_factorlasso.workbook import (
    OUTPUTS,
    WorkbookInputError,
    XlsxFileIO,
    clear_outputs,
    optimise_portfolio,
    refit,
    refit_cv,
)


@pytest.fixture(scope="module")
def demo_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("demo") / "demo.xlsx"
    build_demo_workbook(str(path))
    return path


@pytest.fixture
def book(demo_file, tmp_path):
    path = tmp_path / "book.xlsx"
    shutil.copy(demo_file, path)
    return path


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _all_cells(path) -> dict[tuple[str, str], object]:
    wb = openpyxl.load_workbook(path, keep_vba=True)
    return {(ws.title, c.coordinate): c.value for ws in wb.worksheets for row in ws.iter_rows()
            for c in row if c.value is not None}


def _output_areas(path) -> list[tuple[str, int, int, int, int]]:
    io = XlsxFileIO(path)
    return [(a.sheet, a.min_row, a.min_col, a.max_row, a.max_col)
            for n, a in io.names().items() if n in OUTPUTS]


def _inside(key, areas) -> bool:
    sheet, coord = key
    col, row = openpyxl.utils.cell.coordinate_from_string(coord)
    c = openpyxl.utils.column_index_from_string(col)
    return any(s == sheet and r1 <= row <= r2 and c1 <= c <= c2 for s, r1, c1, r2, c2 in areas)


def _with_chart_and_macros(path):
    """Add a chart on the output sheet, a note beside the outputs, VBA and a ribbon part."""
    wb = openpyxl.load_workbook(path)
    ws = wb["Results"]
    chart = BarChart()
    chart.add_data(Reference(wb["Returns"], min_col=2, min_row=1, max_row=10), titles_from_data=True)
    ws.add_chart(chart, "A40")
    ws["A30"] = "analyst note: keep"
    wb["Diagnostics"]["C5"] = 123.0  # between FL_R2 and FL_INTERCEPT
    xlsm = path.with_suffix(".xlsm")
    wb.save(xlsm)
    _rewrite(xlsm, _make_macro_enabled)
    return xlsm


def _styles_only_added(before: bytes, after: bytes) -> None:
    """The jobs' number formats add styles; every existing one keeps its index and content."""
    from lxml import etree

    ns = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
    old, new = etree.fromstring(before), etree.fromstring(after)
    for tag in ("fonts", "fills", "borders", "cellStyleXfs", "cellXfs", "numFmts"):
        a, b = old.find(ns + tag), new.find(ns + tag)
        kept = [etree.tostring(e) for e in a] if a is not None else []
        assert [etree.tostring(e) for e in b][: len(kept)] == kept, tag


@pytest.mark.parametrize("job", ["refit", "refit_cv", "optimise_portfolio", "clear_outputs"])
def test_jobs_change_nothing_outside_their_outputs(book, job):
    path = _with_chart_and_macros(book)
    before_cells = _all_cells(path)
    before_areas = _output_areas(path)
    with zipfile.ZipFile(path) as zf:
        before = {n: zf.read(n) for n in zf.namelist()}
    {"refit": refit, "refit_cv": refit_cv, "optimise_portfolio": optimise_portfolio,
     "clear_outputs": clear_outputs}[job](XlsxFileIO(path))
    after_cells = _all_cells(path)
    areas = before_areas + _output_areas(path)
    for key in set(before_cells) | set(after_cells):
        if not _inside(key, areas):
            assert before_cells.get(key) == after_cells.get(key), key
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None
        after = {n: zf.read(n) for n in zf.namelist()}
    assert after["xl/vbaProject.bin"] == VBA_BYTES
    assert after["customUI/customUI14.xml"] == CUSTOM_UI
    assert after["_rels/.rels"] == before["_rels/.rels"]  # the ribbon relationship survives
    for name in ("xl/theme/theme1.xml", "docProps/core.xml"):
        assert after[name] == before[name], name
    _styles_only_added(before["xl/styles.xml"], after["xl/styles.xml"])
    charts = [n for n in before if n.startswith("xl/charts/")]
    assert charts and all(after[n] == before[n] for n in charts)
    input_sheets = ["Returns", "Factors", "Signs", "Prior", "Settings", "AssetGroups"]
    wb = openpyxl.load_workbook(path, keep_vba=True)
    for title in input_sheets:
        part = f"xl/worksheets/sheet{wb.sheetnames.index(title) + 1}.xml"
        assert after[part] == before[part], title


def test_refit_file_round_trip_equals_direct_fit(book):
    refit(XlsxFileIO(book))
    d = load_demo_panel()
    ref = LassoModel(model_type="HCGL", span=52, n_clusters=4, l1_weight=0.1, reg_lambda=1e-5,
                     factors_beta_loading_signs=d.signs, factors_beta_prior=d.prior).fit(d.x, d.y)
    wb = openpyxl.load_workbook(book)
    coef = np.array([[c.value or 0.0 for c in row[1:]]
                     for row in wb["Results"].iter_rows(min_row=2, max_row=25, max_col=7)])
    np.testing.assert_allclose(coef, ref.coef_.to_numpy(), atol=1e-9)
    assert wb.defined_names["FL_COEF"].attr_text in ("Results!$A$1:$G$25", "'Results'!$A$1:$G$25")
    # pictures are in the package, next to the coefficients
    with zipfile.ZipFile(book) as zf:
        assert sum(n.startswith("xl/media/") for n in zf.namelist()) == 3


def test_cli_refit_inspect_and_out(book, tmp_path, capsys):
    out = tmp_path / "copy.xlsx"
    before = _digest(book)
    assert main(["refit", str(book), "--cv", "--portfolio", "--out", str(out)]) == 0
    assert _digest(book) == before  # --out leaves the source alone
    text = capsys.readouterr().out
    assert "refit_cv" in text and "optimise_portfolio" in text
    assert main(["inspect", str(out)]) == 0
    report = capsys.readouterr().out
    assert "FL_COEF" in report and "no problems found" in report


# --------------------------------------------------------------------------- bad-input corpus
def _set(sheet, cell, value):
    def mutate(wb):
        wb[sheet][cell] = value
    return mutate


def _name(name, ref):
    def mutate(wb):
        if ref is None:
            del wb.defined_names[name]
        else:
            wb.defined_names[name] = DefinedName(name, attr_text=ref)
    return mutate


def _settings(*pairs, sheet="Settings", col="A"):
    def mutate(wb):
        ws = wb[sheet]
        row = 2
        while ws[f"{col}{row}"].value is not None:
            row += 1
        nxt = chr(ord(col) + 1)
        for k, v in pairs:
            ws[f"{col}{row}"], ws[f"{nxt}{row}"] = k, v
            row += 1
    return mutate


def _replace_setting(key, value):
    def mutate(wb):
        ws = wb["Settings"]
        for row in ws.iter_rows(min_row=2, max_col=2):
            if row[0].value == key:
                row[1].value = value
    return mutate


def _many(*mutations):
    def mutate(wb):
        for m in mutations:
            m(wb)
    return mutate


CORPUS = [
    ("text in numbers", "refit", _set("Returns", "C5", "abc"), "FL_RETURNS!C5: 'abc' is not a number"),
    ("#N/A", "refit", _set("Returns", "B7", "#N/A"), "FL_RETURNS!B7: #N/A is an Excel error value"),
    ("#DIV/0! in factors", "refit", _set("Factors", "D9", "#DIV/0!"), "FL_FACTORS!D9: #DIV/0!"),
    ("duplicate asset", "refit", _set("Returns", "D1", "SPX"), "duplicate asset name 'SPX' (also at B1)"),
    ("blank header", "refit", _set("Returns", "C1", None), "FL_RETURNS!C1: the asset name is blank"),
    ("blank date", "refit", _set("Returns", "A5", None), "FL_RETURNS!A5: the date is blank"),
    ("text date", "refit", _set("Returns", "A5", "soon"), "FL_RETURNS!A5: 'soon' is not a date"),
    ("dates out of order", "refit", _set("Factors", "A10", dt.datetime(2030, 1, 4)), "dates must increase"),
    ("mismatched dates", "refit", _set("Factors", "A261", dt.datetime(2030, 1, 4)), "has no row in"),
    ("sign text", "refit", _set("Signs", "B3", "x"), "FL_SIGNS!B3: 'x' is not one of blank, 0, 1, -1, +, -"),
    ("sign value 2", "refit", _set("Signs", "C4", 2), "FL_SIGNS!C4: 2 is not one of"),
    ("unknown asset in prior", "refit", _set("Prior", "A2", "MSFT"), "FL_PRIOR!A2: asset 'MSFT' is not in FL_RETURNS"),
    ("unknown factor in signs", "refit", _set("Signs", "C1", "Momentum"), "FL_SIGNS!C1: factor 'Momentum' is not in FL_FACTORS"),
    ("prior contradicts sign", "refit", _set("Prior", "B2", -0.5), "FL_PRIOR!B2: the prior -0.5"),
    ("text in prior", "refit", _set("Prior", "C3", "abc"), "FL_PRIOR!C3: 'abc' is not a number"),
    ("unknown setting", "refit", _settings(("alpha", 1)), "unknown setting 'alpha'"),
    ("bad lambda", "refit", _replace_setting("reg_lambda", "lots"), "reg_lambda:"),
    ("bad model type", "refit", _replace_setting("model_type", "ridge"), "model_type: 'ridge' is not one of"),
    ("l1_weight out of range", "refit", _replace_setting("l1_weight", 1.5), "l1_weight must be in [0, 1]"),
    ("cutoff out of range", "refit", _settings(("cutoff_fraction", 0)), "cutoff_fraction must be in (0, 1]"),
    ("span below 2", "refit", _replace_setting("span", 0.5), "FL_SETTINGS!B3: span must be >= 2 (or none), got 0.5"),
    ("repeated setting", "refit", _settings(("span", 26)), "setting 'span' is given twice"),
    ("group lasso without groups", "refit", _replace_setting("model_type", "GROUP_LASSO"),
     "needs a group for every asset"),
    ("missing name", "refit", _name("FL_FACTORS", None), "the workbook has no name FL_FACTORS"),
    ("empty returns", "refit", _name("FL_RETURNS", "Returns!$A$1:$Y$1"), "found 1 row(s)"),
    ("T too short", "refit", _many(_name("FL_RETURNS", "Returns!$A$1:$Y$5"),
                                   _name("FL_FACTORS", "Factors!$A$1:$G$5")),
     "FL_RETURNS and FL_FACTORS have 4 dates; after demeaning 3 usable rows remain, the fit needs at least 5"),
    ("output has no room", "refit", _many(_name("FL_R2", "Diagnostics!$D$1:$E$3"),
                                          _set("Diagnostics", "E9", "mine")), "Diagnostics!E9 next to it holds the value 'mine'"),
    ("infeasible portfolio", "optimise_portfolio",
     _settings(("EQ >= 0.9", None), sheet="Portfolio", col="D"), "no portfolio satisfies the constraints"),
    ("unknown name in constraint", "optimise_portfolio",
     _settings(("Bitcoin <= 0.1", None), sheet="Portfolio", col="D"), "FL_CONSTRAINTS!D4:"),
    ("bad covariance choice", "optimise_portfolio",
     _many(lambda wb: wb["Portfolio"].__setitem__("B2", "magic")), "covariance: 'magic' is not one of"),
    ("bounds below budget", "optimise_portfolio",
     lambda wb: wb["Portfolio"].__setitem__("B3", 0.01), "no portfolio satisfies"),
    ("unknown asset in previous weights", "optimise_portfolio",
     _settings(("XYZ", 0.1), sheet="Portfolio", col="F"), "FL_PREV_WEIGHTS!F2: asset 'XYZ' is not in FL_RETURNS"),
]


@pytest.mark.parametrize("case, job, mutate, message", CORPUS, ids=[c[0] for c in CORPUS])
def test_bad_input_corpus(book, case, job, mutate, message):
    wb = openpyxl.load_workbook(book)
    mutate(wb)
    wb.save(book)
    before = _digest(book)
    with pytest.raises(WorkbookInputError) as info:
        {"refit": refit, "optimise_portfolio": optimise_portfolio}[job](XlsxFileIO(book))
    assert message in str(info.value)
    assert _digest(book) == before


def test_cli_reports_bad_input_without_traceback(book, capsys):
    wb = openpyxl.load_workbook(book)
    wb["Signs"]["B3"] = "x"
    wb.save(book)
    before = _digest(book)
    assert main(["refit", str(book)]) == 2
    err = capsys.readouterr().err
    assert "FL_SIGNS!B3" in err and "Traceback" not in err
    assert _digest(book) == before
    assert main(["inspect", str(book)]) == 1
    assert "FL_SIGNS!B3" in capsys.readouterr().out


def test_an_asset_groups_table_with_its_header_alone_means_no_groups(book, tmp_path):
    """FL_ASSET_GROUPS emptied of its assets (its header row kept, as the builder writes it
    without groups) is no groups: the portfolio equals the one with the groups given but
    unused (it was refused: "expected a header row ... found 1 row(s)")."""
    kept = tmp_path / "kept.xlsx"
    shutil.copy(book, kept)
    for path, clear_groups in ((book, True), (kept, False)):
        wb = openpyxl.load_workbook(path)
        for row in wb["Portfolio"].iter_rows(min_row=2, min_col=4, max_col=4):
            row[0].value = None  # no constraint names a group
        if clear_groups:
            for row in wb["AssetGroups"].iter_rows(min_row=2):
                for cell in row:
                    cell.value = None
        wb.save(path)
        optimise_portfolio(XlsxFileIO(path), pictures=False)

    def weights(path):
        wb = openpyxl.load_workbook(path)
        area = XlsxFileIO(path).names()["FL_WEIGHTS"]
        ws = wb[area.sheet]
        return [[c.value for c in r] for r in ws.iter_rows(
            min_row=area.min_row, max_row=area.max_row, min_col=area.min_col,
            max_col=area.max_col)]

    got, expected = weights(book), weights(kept)
    assert len(got) > 10 and got == expected
    assert abs(sum(r[1] for r in got[1:] if isinstance(r[1], float)) - 1.0) < 1e-9


@pytest.mark.parametrize("settings", [{"reg_lambda": 1e-5},
                                      {"reg_lambda": 1e-5, "model_type": "LASSO"}])
def test_the_model_type_dropdown_only_where_there_is_a_model_type_row(tmp_path, settings):
    """Without a model_type row the builder wrote an empty <dataValidations count="0"/>,
    which the Open XML schema refuses (Excel may offer to repair the file)."""
    from xl_factorlasso.workbook._builder import build_workbook

    d = load_demo_panel()
    path = tmp_path / "book.xlsx"
    build_workbook(path, returns=d.y, factors=d.x, settings=settings)
    wb = openpyxl.load_workbook(path)
    sheet = f"xl/worksheets/sheet{wb.sheetnames.index('Settings') + 1}.xml"
    with zipfile.ZipFile(path) as z:
        xml = z.read(sheet).decode()
    assert 'count="0"' not in xml
    validations = wb["Settings"].data_validations.dataValidation
    if "model_type" in settings:
        row = next(c.row for c in wb["Settings"]["A"] if c.value == "model_type")
        assert [str(v.sqref) for v in validations] == [f"B{row}"]
    else:
        assert validations == [] and "<dataValidations" not in xml
