"""The inputs of the templates and of the demo are Excel tables, and that changes no number.

* a refit (and a portfolio) of a template equals the same run on a copy whose inputs are plain
  named ranges over the same cells (the copy is made with openpyxl, a reader independent of
  ours): the tables change where the names point, nothing else;
* ten weeks pasted INSIDE the returns and factor tables (their ``ref`` grown, as Excel does when a
  user pastes under a table) are read by every later run: the names follow, ``inspect`` finds no
  problem, FL_STATUS counts the new weeks and the refit equals one on a plain range explicitly
  extended over them; the same weeks pasted under the tables without growing them are reported
  with their cells;
* the demo workbook (``xl-factorlasso demo``) has the same tables and the same answers as its
  plain-range twin (``build_demo_workbook(tables=False)``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import openpyxl
import pytest
from openpyxl.utils import get_column_letter
from openpyxl.utils.cell import range_boundaries
from openpyxl.workbook.defined_name import DefinedName

from xl_factorlasso.cli import build_demo_workbook
from xl_factorlasso.cli import main as cli_main
from xl_factorlasso.workbook import OUTPUTS, Area, XlsxFileIO, run_jobs
from xl_factorlasso.workbook._builder import TABLES
from xl_factorlasso.workbook._growth import adjoining_inputs

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "xl_factorlasso" / "templates"
SYNTHETIC = SHIPPED / "factorlasso_template.xlsx"
SP500 = SHIPPED / "factorlasso_template_sp500.xlsx"
JOBS = ["refit", "optimise_portfolio"]
PASTED = 10


def _plain_copy(src: Path, dst: Path, extend: dict[str, int] | None = None) -> Path:
    """``src`` with every table removed and each input name a plain range over the cells its
    table covered (``extend``: name -> rows added at the bottom of that range)."""
    wb = openpyxl.load_workbook(src)
    defined = {}
    for ws in wb.worksheets:
        for table in list(ws.tables.values()):
            c1, r1, c2, r2 = range_boundaries(table.ref)
            name = next(n for n, t in TABLES.items() if t == table.name)
            r2 += (extend or {}).get(name, 0)
            defined[name] = (f"'{ws.title}'!${get_column_letter(c1)}${r1}:"
                             f"${get_column_letter(c2)}${r2}")
            del ws.tables[table.name]
    assert set(defined) == set(TABLES)
    for name, ref in defined.items():
        del wb.defined_names[name]
        wb.defined_names[name] = DefinedName(name, attr_text=ref)
    wb.save(dst)
    return dst


def _paste_weeks(path: Path, *, grow: bool) -> None:
    """Ten more weeks under the returns and the factors: the first ten weeks again, dated after
    the last one. With ``grow``, the tables are extended over them, as Excel does on a paste
    under a table; without, they are left as they were (a program wrote the cells)."""
    wb = openpyxl.load_workbook(path)
    for sheet, table_name in (("Returns", "tblReturns"), ("Factors", "tblFactors")):
        ws = wb[sheet]
        table = ws.tables[table_name]
        c1, r1, c2, r2 = range_boundaries(table.ref)
        last_date = ws.cell(r2, c1).value
        for k in range(1, PASTED + 1):
            ws.cell(r2 + k, c1, last_date + (ws.cell(r1 + 2, c1).value
                                             - ws.cell(r1 + 1, c1).value) * k)
            ws.cell(r2 + k, c1).number_format = "yyyy-mm-dd"
            for c in range(c1 + 1, c2 + 1):
                ws.cell(r2 + k, c, ws.cell(r1 + k, c).value)
        if grow:
            table.ref = f"{get_column_letter(c1)}{r1}:{get_column_letter(c2)}{r2 + PASTED}"
    wb.save(path)


def _outputs(path: Path) -> dict[str, list[list]]:
    """Every output table as written, without FL_STATUS's time stamps (the only values that
    differ between two runs on the same inputs)."""
    io = XlsxFileIO(path)
    names = io.names()
    out = {name: io.read(names[name]) for name in OUTPUTS}
    out["FL_STATUS"] = [r for r in out["FL_STATUS"] if r[0] != "time"]
    return out


def _run(path: Path, jobs=JOBS) -> dict[str, list[list]]:
    run_jobs(XlsxFileIO(path), jobs, pictures=False)
    return _outputs(path)


@pytest.mark.parametrize("template", [SYNTHETIC, SP500], ids=["synthetic", "sp500"])
def test_a_template_gives_the_answers_of_the_same_data_in_plain_ranges(template, tmp_path):
    tables = tmp_path / "tables.xlsx"
    shutil.copy(template, tables)
    plain = _plain_copy(template, tmp_path / "plain.xlsx")
    assert XlsxFileIO(plain)._name_tables() == {}  # really plain
    assert XlsxFileIO(plain).names() == XlsxFileIO(tables).names()  # over the same cells
    got, expected = _run(tables), _run(plain)
    assert got == expected
    status = dict((r[0], r[1]) for r in got["FL_STATUS"])
    # the synthetic data's block-average prior holds JGB10 where its R^2 is -0.71: said
    assert status["message"] == ("ok" if template == SP500 else
                                 "1 of 24 responses have an in-sample R^2 below 0: the "
                                 "penalty holds their loadings near a prior centre that "
                                 "explains less of their returns than no loadings would (a "
                                 "smaller reg_lambda lets the data move them, or revise their "
                                 "prior): JGB10")


def test_weeks_pasted_inside_the_tables_are_read_by_the_next_run(tmp_path, capsys):
    grown = tmp_path / "grown.xlsx"
    shutil.copy(SP500, grown)
    before = XlsxFileIO(grown).names()
    _paste_weeks(grown, grow=True)
    io = XlsxFileIO(grown)
    names = io.names()
    for name in ("FL_RETURNS", "FL_FACTORS"):
        b = before[name]
        assert names[name] == Area(b.sheet, b.min_row, b.min_col, b.max_row + PASTED, b.max_col)
    assert io.read(names["FL_RETURNS"])[-1][1:] == io.read(names["FL_RETURNS"])[PASTED][1:]
    assert adjoining_inputs(io) == []
    assert cli_main(["inspect", str(grown)]) == 0
    assert "no problems found" in capsys.readouterr().out
    # the plain twin, its names extended over the pasted rows by hand
    plain = _plain_copy(grown, tmp_path / "plain.xlsx")
    assert XlsxFileIO(plain).names() == names
    got = _run(grown, ["refit"])
    status = dict((r[0], r[1]) for r in got["FL_STATUS"])
    weeks = before["FL_RETURNS"].shape[0] - 1
    assert status["assets x factors x dates"] == f"20 x 5 x {weeks + PASTED}"
    assert got == _run(plain, ["refit"])
    # and not the answer without the new weeks
    assert got["FL_COEF"] != _run(_plain_copy(SP500, tmp_path / "old.xlsx"), ["refit"])["FL_COEF"]


def test_weeks_pasted_under_tables_that_did_not_grow_are_reported(tmp_path, capsys):
    path = tmp_path / "pasted.xlsx"
    shutil.copy(SYNTHETIC, path)
    _paste_weeks(path, grow=False)
    found = adjoining_inputs(XlsxFileIO(path))
    assert [a.message for a in found] == [
        "10 rows below table 'tblReturns' of FL_RETURNS (Returns!A262:Y271) hold data the "
        "table leaves out: resize table 'tblReturns' over them (Table Design > Resize Table)",
        "10 rows below table 'tblFactors' of FL_FACTORS (Factors!A262:G271) hold data the "
        "table leaves out: resize table 'tblFactors' over them (Table Design > Resize Table)",
    ]
    cli_main(["inspect", str(path)])
    out = capsys.readouterr().out
    assert "10 rows below table 'tblReturns' of FL_RETURNS (Returns!A262:Y271)" in out


def test_the_demo_inputs_are_tables_with_the_answers_of_plain_ranges(tmp_path, capsys):
    tables, plain = tmp_path / "demo.xlsx", tmp_path / "plain.xlsx"
    build_demo_workbook(str(tables))
    build_demo_workbook(str(plain), tables=False)
    io = XlsxFileIO(tables)
    followed = io._name_tables()
    assert {name: t for name, (t, _area) in followed.items()} == TABLES
    assert all(followed[n][1] == area for n, area in io.names().items() if n in followed)
    assert XlsxFileIO(plain)._name_tables() == {}
    assert XlsxFileIO(plain).names() == io.names()
    assert cli_main(["inspect", str(tables)]) == 0
    assert "no problems found" in capsys.readouterr().out
    assert _run(tables) == _run(plain)
