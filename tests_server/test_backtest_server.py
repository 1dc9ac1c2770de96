"""Issue 11 on the server add-in: the Backtest ribbon script over HTTP writes the backtest's
FL_* outputs and nothing else, and FLASSO_BETA_HISTORY answers over HTTP what the direct call
answers (Office.js dates: serial numbers)."""

from __future__ import annotations

import datetime as dt
import math
import shutil

import openpyxl

from tests.fake_office_client import apply_actions, book_payload
from tests_server.test_scripts import _written_names
from xl_factorlasso.core.datasets import load_demo_panel
from xl_factorlasso.server import RIBBON, SCRIPTS
from xl_factorlasso.workbook import XlsxFileIO

HISTORY = {"FL_BETA_HISTORY", "FL_R2_HISTORY", "FL_RESID_VOL_HISTORY", "FL_CLUSTER_HISTORY"}
EPOCH = dt.datetime(1899, 12, 30)


def _filled(path, area) -> bool:
    return any(v is not None for row in XlsxFileIO(str(path)).read(area) for v in row)


def _written(actions, path) -> set[str]:
    """The FL_* names whose areas the setValues actions write into; each write is inside one."""
    titles = openpyxl.load_workbook(path, read_only=True).sheetnames
    return _written_names(actions, XlsxFileIO(str(path)).names(), titles)


def test_backtest_is_a_ribbon_button_and_a_script():
    (button,) = [b for b in RIBBON if b.script == "backtest"]
    assert (button.group, button.control_id, button.label, button.action) == (
        "Portfolio", "FactorLassoBacktest", "Backtest", "flasso-backtest")
    assert "backtest" in SCRIPTS


def test_backtest_script_writes_the_history(client, demo_xlsx, tmp_path, xlwings_version):
    path = tmp_path / "book.xlsx"
    shutil.copy(demo_xlsx, path)
    r = client.post("/xlwings/custom-scripts-call/backtest",
                    json=book_payload(path, xlwings_version))
    assert r.status_code == 200, r.text
    actions = r.json()["actions"]
    summary = actions[-1]["args"][0]
    assert actions[-1]["func"] == "alert" and summary.startswith(
        "backtest: HIERARCHICAL_CLUSTER_GROUP_LASSO, ")
    assert apply_actions(path, actions) == [summary]
    written = _written(actions, path)
    assert HISTORY | {"FL_STATUS"} <= written
    assert not written & {"FL_COEF", "FL_WEIGHTS", "FL_CV"}  # other jobs' outputs untouched
    areas = XlsxFileIO(str(path)).names()
    for name in HISTORY:
        assert _filled(path, areas[name]), name


def test_backtest_script_bad_setting_is_one_alert(client, demo_xlsx, tmp_path,
                                                  xlwings_version):
    path = tmp_path / "bad.xlsx"
    shutil.copy(demo_xlsx, path)
    io_ = XlsxFileIO(str(path))
    area = io_.names()["FL_ROLLING_SETTINGS"]
    wb = openpyxl.load_workbook(path)
    ws = wb[area.sheet]
    row = area.min_row + 1  # the demo's table is empty: its first row under the header
    ws.cell(row, area.min_col).value = "rebalance"
    ws.cell(row, area.min_col + 1).value = "monthly"
    wb.save(path)
    r = client.post("/xlwings/custom-scripts-call/backtest",
                    json=book_payload(path, xlwings_version))
    assert r.status_code == 200
    (action,) = r.json()["actions"]
    cell = f"{openpyxl.utils.get_column_letter(area.min_col + 1)}{row}"
    assert action["func"] == "alert"
    assert action["args"][0].startswith(
        f"FL_ROLLING_SETTINGS!{cell}: rebalance: 'monthly' is not a rebalancing frequency")


def _serial_cells(frame) -> list[list]:
    rows = [[float((d.to_pydatetime() - EPOCH).days),
             *(None if math.isnan(v) else float(v) for v in r)]
            for d, r in zip(frame.index, frame.to_numpy(dtype=float), strict=True)]
    return [["date", *map(str, frame.columns)], *rows]


def _body(version: str, *args) -> dict:
    return {"client": "Office.js", "version": version, "runtime": "1.4",
            "func_name": "FLASSO_BETA_HISTORY", "args": list(args),
            "caller_address": "[Book1.xlsx]Formulas!B2", "culture_info_name": "en-US",
            "date_format": "m/d/yyyy"}


def test_beta_history_over_http_equals_the_direct_call(client, xlwings_version):
    import xl_factorlasso.udfs as udfs

    demo = load_demo_panel()
    R, F = _serial_cells(demo.y.iloc[:, :8]), _serial_cells(demo.x)
    udfs.cache_clear()
    r = client.post("/xlwings/custom-functions-call", json=_body(
        xlwings_version, R, F, [["Equity"]], [["QE"]], None, [[104]], [[1e-4]]))
    assert r.status_code == 200, r.text
    got = r.json()["result"]
    udfs.cache_clear()
    direct = udfs.FLASSO_BETA_HISTORY(R, F, "Equity", "QE", None, 104, 1e-4)
    assert not isinstance(direct, str), direct
    assert len(got) == len(direct) > 2
    # serial numbers in the date column: the corner says period, as FLASSO_PREDICT's does
    assert got[0] == direct[0] == ["period", *map(str, demo.y.columns[:8])]
    for g, d in zip(got[1:], direct[1:], strict=True):
        assert g[0] == d[0]  # the serial number of the date, as sent
        assert g[1:] == [float(v) for v in d[1:]]
    # a misspelt factor: one cell naming the argument, HTTP 200
    r = client.post("/xlwings/custom-functions-call", json=_body(
        xlwings_version, R, F, [["Equities"]]))
    assert r.status_code == 200
    assert r.json()["result"] == [[
        "#FLASSO! factor: 'Equities' is not a factor of factors; the factors are Equity, "
        "Rates, Credit, USD, Commodities, Inflation"]]


def test_the_desktop_backtest_helpers_are_not_scripts(client, demo_xlsx, xlwings_version):
    """Only the decorated ``backtest`` is callable: the desktop caller (status bar) and the
    message helper are refused by the request guard."""
    for name in ("backtest_caller", "run_book_backtest", "job_message", "StatusBarProgress"):
        r = client.post(f"/xlwings/custom-scripts-call/{name}",
                        json=book_payload(demo_xlsx, xlwings_version))
        assert r.status_code == 404, name
        assert r.json() == {"detail": f"no script named {name!r}; the scripts are backtest, "
                                      "clear_outputs, optimise_portfolio, refit, refit_cv"}
