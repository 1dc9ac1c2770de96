"""The ``backtest`` job on a real .xlsx: every table equals the core run directly on the same
inputs, nothing outside the output names changes, bad settings name their cell and write
nothing, an oversized history is refused before any fit, and the package stays valid."""

from __future__ import annotations

import hashlib
import shutil
import zipfile

import numpy as np
import openpyxl
import pandas as pd
import pytest

from tests.workbook_helpers import MemoryIO, frame_rows
from xl_factorlasso.core import LassoModel
from xl_factorlasso.core.backtest import MaxDiversificationBacktest
from xl_factorlasso.core.datasets import load_demo_panel
from xl_factorlasso.core.optimization import MaximumDiversification
from xl_factorlasso.core.rolling import RollingLassoModel
from xl_factorlasso.workbook import OUTPUTS, WorkbookInputError, XlsxFileIO, run_job
from xl_factorlasso.workbook._builder import build_workbook

TAGS = {"Equities": "EQ", "Govies": "GOV", "Credit": "CRD", "Commodities": "CMDTY"}
SETTINGS = {"model_type": "HCGL", "span": 52, "n_clusters": 4, "reg_lambda": 1e-5,
            "annualization_factor": 52}
ROLLING = {"rebalance": "QE", "min_history": 104, "transaction_cost_bps": 10,
           "history_factor": "Rates"}
HISTORY = ["FL_BETA_HISTORY", "FL_R2_HISTORY", "FL_RESID_VOL_HISTORY", "FL_CLUSTER_HISTORY",
           "FL_WEIGHT_HISTORY", "FL_BACKTEST", "FL_BACKTEST_STATS", "FL_STATUS"]


def _build(path, rolling=ROLLING):
    d = load_demo_panel()
    build_workbook(path, returns=d.y, factors=d.x, signs=d.signs, prior=d.prior,
                   settings=SETTINGS, portfolio_settings={"max_weights": 0.15},
                   constraints=["EQ <= 0.40"],
                   asset_groups=pd.DataFrame({"asset_class": d.clusters.map(TAGS)}),
                   rolling_settings=rolling, readable=True)
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("backtest") / "built.xlsx")


@pytest.fixture(scope="module")
def ran(built, tmp_path_factory):
    """The workbook after the job (its result and the file), and the core run directly."""
    path = tmp_path_factory.mktemp("ran") / "book.xlsx"
    shutil.copy(built, path)
    calls = []
    result = run_job(XlsxFileIO(path), "backtest", progress=lambda *a: calls.append(a))
    d = load_demo_panel()
    # the returns and factors as the workbook holds them (the cells' values, which differ from
    # the panel's by an ulp here and there): the same inputs as the job's, so every table can
    # be compared to 1e-12 (from the panel itself, betas moved by up to 4e-10 on an AMD EPYC)
    x, y = _frame(_table(built, "FL_FACTORS")), _frame(_table(built, "FL_RETURNS"))
    model = LassoModel(model_type="HCGL", span=52, n_clusters=4, reg_lambda=1e-5,
                       factors_beta_loading_signs=d.signs, factors_beta_prior=d.prior)
    groups = {a: [TAGS[c]] for a, c in d.clusters.items()}
    portfolio = MaximumDiversification(max_weights=0.15, transaction_costs=0.001, groups=groups,
                                       linear_constraints=["EQ <= 0.40"])
    bt = MaxDiversificationBacktest(
        RollingLassoModel(model, rebalance="QE", min_history=104, annualization_factor=52),
        portfolio, annualization_factor=52, compounded=True).fit(x, y)
    return path, result, calls, bt


def _table(path, name) -> list[list]:
    io = XlsxFileIO(path)
    return io.read(io.names()[name])


def _frame(rows) -> pd.DataFrame:
    """A dates-down table as a frame (the header's first cell is the corner)."""
    return pd.DataFrame([r[1:] for r in rows[1:]], index=pd.DatetimeIndex([r[0] for r in rows[1:]]),
                        columns=rows[0][1:], dtype=float)


# --------------------------------------------------------------------------- numbers
def test_every_history_equals_the_rolling_model(ran):
    path, result, _calls, bt = ran
    assert result.written == HISTORY and result.skipped == []
    results = bt.rolling_.results_
    assert len(results) == 13  # QE dates with 104 weeks of history in 260 weeks
    rows = _table(path, "FL_BETA_HISTORY")
    assert rows[0] == ["date", "asset", "factor", "beta"]
    long = results.to_long()
    assert len(rows) == 1 + len(long) == 1 + 13 * 24 * 6  # zeros included
    assert [pd.Timestamp(r[0]) for r in rows[1:]] == list(long["date"])
    assert [r[1] for r in rows[1:]] == list(long["asset"])
    assert [r[2] for r in rows[1:]] == list(long["factor"])
    betas = np.array([r[3] for r in rows[1:]], dtype=float)
    np.testing.assert_allclose(betas, long["beta"].to_numpy(), rtol=0, atol=1e-12)
    for name, expected in [("FL_R2_HISTORY", results.get_r2()),
                           ("FL_RESID_VOL_HISTORY", results.get_residual_vols()),
                           ("FL_CLUSTER_HISTORY", results.get_clusters())]:
        got = _frame(_table(path, name))
        assert list(got.index) == list(expected.index), name
        np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(dtype=float), rtol=0,
                                   atol=1e-12, err_msg=name)
    labels = [v for row in result.output("FL_CLUSTER_HISTORY").values[1:] for v in row[1:]]
    # whole numbers; stable labels: a cluster that appears later gets a new one (> 4)
    assert all(type(v) is int for v in labels) and {1, 2, 3, 4} <= set(labels)


def test_the_last_dates_row_is_a_plain_fit_on_the_rows_up_to_it(ran):
    """Independent of the rolling machinery: one LassoModel on the expanding window."""
    path = ran[0]
    d = load_demo_panel()
    last = _frame(_table(path, "FL_R2_HISTORY")).index[-1]
    model = LassoModel(model_type="HCGL", span=52, n_clusters=4, reg_lambda=1e-5,
                       factors_beta_loading_signs=d.signs, factors_beta_prior=d.prior)
    model.fit(d.x.loc[:last], d.y.loc[:last])
    r2 = _frame(_table(path, "FL_R2_HISTORY")).loc[last]
    vol = _frame(_table(path, "FL_RESID_VOL_HISTORY")).loc[last]
    np.testing.assert_allclose(r2.to_numpy(), model.r2_.to_numpy(), atol=1e-6)
    np.testing.assert_allclose(vol.to_numpy(), np.sqrt(52 * model.residual_variance_.to_numpy()),
                               rtol=1e-5)
    beta = [r for r in _table(path, "FL_BETA_HISTORY")[1:] if pd.Timestamp(r[0]) == last]
    coef = np.array([r[3] for r in beta]).reshape(24, 6)
    np.testing.assert_allclose(coef, model.coef_.to_numpy(), atol=1e-6)


def test_the_backtest_tables_equal_the_backtest(ran):
    path, _result, _calls, bt = ran
    strategies = ["factor", "sample", "ewma", "equal_weight"]
    assert bt.strategies_ == strategies
    weights = _frame(_table(path, "FL_WEIGHT_HISTORY"))
    expected = bt.weights_["factor"]
    assert list(weights.index) == list(expected.index) and list(weights.columns) == list(
        expected.columns)
    # two runs of the same certified solves agree to the optimiser's tolerance, not bit for bit
    np.testing.assert_allclose(weights.to_numpy(), expected.to_numpy(), rtol=0, atol=1e-9)
    rows = _table(path, "FL_BACKTEST")
    assert rows[0] == ["date", *(f"{s} return" for s in strategies),
                       *(f"{s} cumulative" for s in strategies),
                       *(f"{s} drawdown" for s in strategies)]
    table = _frame(rows)
    net = bt.returns_.xs("net", axis=1, level=1)[strategies]
    assert list(table.index) == list(net.index)
    np.testing.assert_allclose(table.iloc[:, :4].to_numpy(), net.to_numpy(), rtol=0, atol=1e-10)
    net = table.iloc[:, :4]  # the definitions below on the written returns, exactly
    # cumulative return and drawdown, written out here from their definitions
    wealth = np.cumprod(1 + net.to_numpy(), axis=0)
    np.testing.assert_allclose(table.iloc[:, 4:8].to_numpy(), wealth - 1, rtol=0, atol=1e-12)
    peak = np.maximum(np.maximum.accumulate(wealth, axis=0), 1.0)
    np.testing.assert_allclose(table.iloc[:, 8:].to_numpy(), wealth / peak - 1, rtol=0,
                               atol=1e-12)
    # one answer: the statistics' maximum drawdown is the table's deepest drawdown
    stats = _table(path, "FL_BACKTEST_STATS")
    assert stats[0] == ["strategy", "returns", "annualized_mean", "annualized_volatility",
                        "sharpe_ratio", "sortino_ratio", "max_drawdown", "calmar_ratio",
                        "average_turnover", "total_costs"]
    assert [(r[0], r[1]) for r in stats[1:]] == [(s, k) for s in strategies
                                                 for k in ("gross", "net")]
    np.testing.assert_allclose(np.array([r[2:] for r in stats[1:]], dtype=float),
                               bt.stats_.to_numpy(dtype=float), rtol=1e-6, atol=1e-10)
    for j, s in enumerate(strategies):
        net_dd = next(r[6] for r in stats[1:] if r[:2] == [s, "net"])
        assert net_dd == pytest.approx(-table.iloc[:, 8 + j].min(), abs=1e-12)
        assert net_dd > 0
    assert bt.costs_["factor"].sum() > 0  # 10 bps were charged


def test_status_lists_the_run_and_its_failures(ran):
    path, result, _calls, _bt = ran
    status = dict((r[0], r[1]) for r in _table(path, "FL_STATUS")[1:] if r[0] is not None)
    assert status["model"] == "HIERARCHICAL_CLUSTER_GROUP_LASSO"
    assert status["rebalance"] == "QE" and status["dates fitted"] == "13 of 20"
    assert status["strategies"] == "factor, sample, ewma, equal_weight"
    assert status["cost per unit traded"] == 0.001
    assert status["failures"] == 1
    assert status["failure 1"] == ("7 dates with too little history (before min_history) "
                                   "skipped: 2019-03-29 .. 2020-09-25")
    # (the demo's block-average prior holds JGB10 where its R^2 is below 0, at every date)
    assert status["message"] == (
        "every rebalancing date (13, 2020-12-25 to 2023-12-22): 1 of 24 responses have an "
        "in-sample R^2 below 0: the penalty holds their loadings near a prior centre that "
        "explains less of their returns than no loadings would (a smaller reg_lambda lets the "
        "data move them, or revise their prior): JGB10")
    assert result.summary == ("backtest: HIERARCHICAL_CLUSTER_GROUP_LASSO, 13 of 20 rebalancing "
                              "dates fitted (7 before min_history: warm-up), 0 failures; "
                              "strategies factor, sample, ewma, equal_weight")


def test_progress_reaches_the_total_in_the_calling_process(ran):
    calls = ran[2]
    total = calls[-1][1]
    assert calls[-1] == (total, total) and total == 13 + 13  # the fits, then their dates
    assert all(t == total for _, t in calls)
    assert [c for c, _ in calls] == sorted(c for c, _ in calls)


def test_formats_and_pictures(ran):
    path = ran[0]
    wb = openpyxl.load_workbook(path)
    assert wb["BetaHistory"]["A2"].number_format == "yyyy-mm-dd"
    assert wb["BetaHistory"]["D2"].number_format == "0.000"
    assert wb["Backtest"]["A13"].number_format == "yyyy-mm-dd"
    assert wb["Backtest"]["B13"].number_format == "0.00%"
    assert wb["R2History"]["B2"].number_format == "0.0%"
    status = wb["Diagnostics"]
    row = next(c.row for c in status["A"] if c.value == "cost per unit traded")
    assert status.cell(row, 2).number_format == "0.000%"
    with zipfile.ZipFile(path) as zf:
        media = [n for n in zf.namelist() if n.startswith("xl/media/")]
    assert len(media) == 2  # the loadings through time and the strategies' growth
    assert [p.name for p in ran[1].pictures] == ["FL_BETA_HISTORY_CHART", "FL_BACKTEST_CHART"]


def test_tables_sharing_columns_are_fitted_together(ran):
    """FL_BACKTEST_STATS sits above FL_BACKTEST in the same columns: each column is wide
    enough for both tables' texts (fitted one after the other, the statistics narrowed the
    columns below the strategies' return headers)."""
    from xl_factorlasso.workbook._formats import fitted_width
    from xl_factorlasso.workbook._output_formats import MAX_WIDTH
    from xl_factorlasso.workbook._xlsx import XlsxPackage

    path = ran[0]
    widths = XlsxPackage.open(path).column_widths("Backtest")
    header = _table(path, "FL_BACKTEST")[0]
    stats_header = _table(path, "FL_BACKTEST_STATS")[0]
    for col, text in enumerate(header, start=1):
        assert widths[col] >= fitted_width([text], max_width=MAX_WIDTH), text
    for col, text in enumerate(stats_header, start=1):
        assert widths[col] >= fitted_width([text], max_width=MAX_WIDTH), text


# --------------------------------------------------------------------------- what it touches
def _cells(path) -> dict:
    wb = openpyxl.load_workbook(path)
    return {(ws.title, c.coordinate): c.value for ws in wb.worksheets for row in ws.iter_rows()
            for c in row if c.value is not None}


def _areas(path) -> list:
    return [(a.sheet, a.min_row, a.min_col, a.max_row, a.max_col)
            for n, a in XlsxFileIO(path).names().items() if n in OUTPUTS]


def test_nothing_outside_the_output_names_changes(built, tmp_path):
    path = tmp_path / "book.xlsx"
    shutil.copy(built, path)
    wb = openpyxl.load_workbook(path)
    wb["Backtest"]["P3"] = "analyst note: keep"  # beside the tables, right of the chart
    wb.save(path)
    before, areas = _cells(path), _areas(path)
    with zipfile.ZipFile(path) as zf:
        parts = {n: zf.read(n) for n in zf.namelist()}
    run_job(XlsxFileIO(path), "backtest", pictures=False)
    after = _cells(path)
    areas += _areas(path)

    def inside(key):
        sheet, coord = key
        col, row = openpyxl.utils.cell.coordinate_from_string(coord)
        c = openpyxl.utils.column_index_from_string(col)
        return any(s == sheet and r1 <= row <= r2 and c1 <= c <= c2
                   for s, r1, c1, r2, c2 in areas)

    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    assert changed and all(inside(k) for k in changed)
    assert after[("Backtest", "P3")] == "analyst note: keep"
    names = openpyxl.load_workbook(path).sheetnames
    with zipfile.ZipFile(path) as zf:
        for title in ["Returns", "Factors", "Signs", "Prior", "Settings", "Portfolio",
                      "AssetGroups", "Rolling"]:
            part = f"xl/worksheets/sheet{names.index(title) + 1}.xml"
            assert zf.read(part) == parts[part], title


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _rolling_cells(**cells):
    def edit(wb):
        for ref, value in cells.items():
            wb["Rolling"][ref] = value
    return edit


@pytest.mark.parametrize("edit, message", [
    (_rolling_cells(A6="rebalance", B6="M"),
     "FL_ROLLING_SETTINGS!A6: setting 'rebalance' is given twice (also at A2)"),
    (_rolling_cells(B2="monthly"),
     "FL_ROLLING_SETTINGS!B2: rebalance: 'monthly' is not a rebalancing frequency; write a "
     "pandas frequency such as W-FRI (weekly, Fridays), ME (month end), QE (quarter end) or YE "
     "(year end)"),
    (_rolling_cells(B5="Oil"),
     "FL_ROLLING_SETTINGS!B5: history_factor 'Oil' is not a factor of FL_FACTORS (Equity, "
     "Rates, Credit, USD, Commodities, Inflation)"),
    (lambda wb: wb["Portfolio"].append(["transaction_costs", 0.002]),
     None),  # two sources of the cost: the message names both cells (below)
    (_rolling_cells(A6="window", B6=52),
     "FL_ROLLING_SETTINGS!B3: min_history 104 is more than the window's 52 rows "
     "(FL_ROLLING_SETTINGS!B6): no date could be fitted; lower it or widen the window"),
    (_rolling_cells(A6="benchmarks", B6="sample, momentum"),
     "FL_ROLLING_SETTINGS!B6: benchmarks: 'momentum' is not one of sample, ewma, equal_weight "
     "(or none)"),
])
def test_bad_settings_name_the_cell_and_write_nothing(built, tmp_path, edit, message):
    path = tmp_path / "book.xlsx"
    shutil.copy(built, path)
    wb = openpyxl.load_workbook(path)
    edit(wb)
    wb.save(path)
    if message is None:  # the portfolio settings' table: where did the row land?
        ws = wb["Portfolio"]
        row = next(c.row for c in ws["A"] if c.value == "transaction_costs")
        message = (f"FL_ROLLING_SETTINGS!B4: transaction_cost_bps and FL_PORTFOLIO_SETTINGS!B{row} "
                   "transaction_costs both set the cost per unit traded; keep one "
                   "(transaction_cost_bps 10 = transaction_costs 0.001)")
    before = _digest(path)
    with pytest.raises(WorkbookInputError) as info:
        run_job(XlsxFileIO(path), "backtest")
    assert str(info.value).startswith(message), str(info.value)
    assert _digest(path) == before


def test_a_cancelling_progress_writes_nothing(built, tmp_path):
    path = tmp_path / "book.xlsx"
    shutil.copy(built, path)
    before = _digest(path)

    class Cancelled(Exception):
        pass

    def cancel(done, total):
        if done >= 3:
            raise Cancelled(f"{done} of {total}")

    with pytest.raises(Cancelled, match="3 of 26"):
        run_job(XlsxFileIO(path), "backtest", progress=cancel)
    assert _digest(path) == before


def test_bad_arguments_name_the_argument(built, tmp_path):
    path = tmp_path / "book.xlsx"
    shutil.copy(built, path)
    with pytest.raises(WorkbookInputError) as info:
        run_job(XlsxFileIO(path), "backtest", n_jobs=0)
    assert str(info.value) == ("the n_jobs argument: n_jobs must be a whole number >= 1 or -1 "
                               "(or none), got 0")
    with pytest.raises(WorkbookInputError) as info:
        run_job(XlsxFileIO(path), "backtest", scheduler="nowhere")
    assert str(info.value) == ("the scheduler argument: scheduler: 'nowhere' is not a Dask "
                               "scheduler address such as tcp://10.0.0.5:8786 (or none)")


# --------------------------------------------------------------------------- too many rows
def test_a_history_longer_than_a_sheet_is_refused_before_any_fit():
    rng = np.random.default_rng(0)
    dates = pd.bdate_range("1995-01-02", periods=7300)
    factors = pd.DataFrame(rng.normal(0, 0.01, (7300, 6)), index=dates,
                           columns=[f"F{i}" for i in range(6)])
    returns = pd.DataFrame(rng.normal(0, 0.01, (7300, 24)), index=dates,
                           columns=[f"A{i}" for i in range(24)])
    io = MemoryIO()
    io.put("FL_RETURNS", "Returns", 1, 1, frame_rows(returns, "date"))
    io.put("FL_FACTORS", "Factors", 1, 1, frame_rows(factors, "date"))
    io.put("FL_ROLLING_SETTINGS", "Rolling", 1, 1, [["key", "value"], ["rebalance", "D"]])
    io.put("FL_BETA_HISTORY", "BetaHistory", 1, 1, [["date"]])
    before = io.snapshot()
    with pytest.raises(WorkbookInputError) as info:
        run_job(io, "backtest")
    assert str(info.value) == (
        "FL_BETA_HISTORY: the loadings' history would need 1,051,201 rows (7300 dates x 24 "
        "assets x 6 factors, one row per loading) and a worksheet has 1,048,576; rebalance less "
        "often or start later (FL_ROLLING_SETTINGS!B2), fit fewer assets or factors, or remove "
        "the name FL_BETA_HISTORY to skip that table")
    assert io.snapshot() == before and io.saved == 0 and io.log == []


# --------------------------------------------------------------------------- the package
def test_the_written_workbook_is_a_valid_package(ran, tmp_path, monkeypatch):
    from pathlib import Path

    import tests.test_ooxml_valid as ooxml

    # the shared tools sit beside the checkout: /work/shared for a worktree under /work/wt
    root = Path(__file__).resolve().parents[1]
    for shared in (root.parent / "shared", root.parent.parent / "shared"):
        tool = shared / "tools" / "ooxml-validate" / "ooxml-validate"
        if tool.exists():
            monkeypatch.setattr(ooxml, "VALIDATOR", tool)
            break

    cleared = tmp_path / "cleared.xlsx"
    shutil.copy(ran[0], cleared)
    run_job(XlsxFileIO(cleared), "clear_outputs")
    for name in HISTORY:
        assert all(v is None for row in _table(cleared, name) for v in row), name
    assert ooxml._validate([ran[0], cleared]) == []


# --------------------------------------------------------------------------- Dask
def test_a_dask_client_gives_the_serial_numbers(ran, built, tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    path = tmp_path / "book.xlsx"
    shutil.copy(built, path)
    with distributed.LocalCluster(n_workers=2, processes=False, threads_per_worker=1,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as client:
        result = run_job(XlsxFileIO(path), "backtest", scheduler=client, pictures=False)
    assert result.written == HISTORY
    # every date is certified: blocks that start cold agree with the serial warm starts to the
    # solver's tolerance
    serial = np.array([r[3] for r in _table(ran[0], "FL_BETA_HISTORY")[1:]], dtype=float)
    blocks = np.array([r[3] for r in _table(path, "FL_BETA_HISTORY")[1:]], dtype=float)
    np.testing.assert_allclose(blocks, serial, atol=1e-6)
    np.testing.assert_allclose(_frame(_table(path, "FL_WEIGHT_HISTORY")).to_numpy(),
                               _frame(_table(ran[0], "FL_WEIGHT_HISTORY")).to_numpy(), atol=1e-5)


def test_an_unreachable_scheduler_names_its_cell_and_writes_nothing(built, tmp_path):
    pytest.importorskip("dask.distributed")
    path = tmp_path / "book.xlsx"
    shutil.copy(built, path)
    wb = openpyxl.load_workbook(path)
    wb["Rolling"]["A6"], wb["Rolling"]["B6"] = "scheduler", "tcp://127.0.0.1:9"
    wb.save(path)
    before = _digest(path)
    with pytest.raises(WorkbookInputError) as info:
        run_job(XlsxFileIO(path), "backtest")
    assert str(info.value).startswith(
        "FL_ROLLING_SETTINGS!B6: scheduler 'tcp://127.0.0.1:9': no Dask scheduler answered "
        "within 10 s"), str(info.value)
    assert _digest(path) == before


def test_each_failed_date_is_a_status_row_with_its_strategy_and_reason(built, tmp_path):
    """A missing return in the first window: the sample and EWMA benchmarks cannot estimate a
    covariance at the dates whose window holds it; the factor model can (NaN is missing)."""
    path = tmp_path / "book.xlsx"
    shutil.copy(built, path)
    wb = openpyxl.load_workbook(path)
    wb["Returns"]["B12"] = None
    wb["Rolling"]["A6"], wb["Rolling"]["B6"] = "window", 104
    wb.save(path)
    result = run_job(XlsxFileIO(path), "backtest", pictures=False)
    bt = result.model
    late = bt.failures_[~bt.failures_["reason"].str.startswith("too little history")]
    assert set(late["strategy"]) == {"sample", "ewma"} and len(late) >= 2
    status = [r[1] for r in _table(path, "FL_STATUS")[1:]
              if isinstance(r[0], str) and r[0].startswith("failure ")]
    assert status[0].startswith("7 dates with too little history (before min_history)")
    assert status[1:] == [f"{d.date().isoformat()} {s}: {why} ({action})"
                          for d, s, why, action in late.itertuples(index=False)]
    assert all("SPX" in why for why in late["reason"])  # the reason names the asset


def test_the_fits_notes_reach_the_status_with_their_dates_from_worker_processes(tmp_path):
    """A factor with one value on the first 200 rows: the dates whose 104-row window lies
    inside them warn (its loadings stay at the prior); fitted in two processes, the note
    still reaches FL_STATUS, once, with those dates."""
    d = load_demo_panel()
    x = d.x.copy()
    x.iloc[:200, 0] = 0.001
    path = tmp_path / "book.xlsx"
    build_workbook(path, returns=d.y, factors=x, signs=d.signs, prior=d.prior,
                   settings=SETTINGS, portfolio_settings={"max_weights": 0.15},
                   constraints=["EQ <= 0.40"],
                   asset_groups=pd.DataFrame({"asset_class": d.clusters.map(TAGS)}),
                   rolling_settings={**ROLLING, "window": 104}, readable=True)
    result = run_job(XlsxFileIO(path), "backtest", pictures=False, n_jobs=2)
    notes = result.model.rolling_.notes_
    # (the demo's block-average prior holds JGB10 below an R^2 of 0 at other dates: said apart)
    constant = notes[notes["note"].str.contains("is constant")]
    flat = [t for t in result.model.rolling_.fit_info_.index if x.index.get_loc(t) < 200]
    assert len(flat) >= 2 and list(constant["date"]) == flat
    status = dict((r[0], r[1]) for r in _table(path, "FL_STATUS")[1:] if r[0] is not None)
    said = (f"rebalancing dates {', '.join(str(t.date()) for t in flat[:-1])} and "
            f"{flat[-1].date()}" if len(flat) <= 3 else
            f"{len(flat)} of {len(result.model.rolling_.fit_info_)} rebalancing dates, from "
            f"{flat[0].date()} to {flat[-1].date()}")
    assert f"{said}: x: factor {x.columns[0]!r} is constant on every row of the fit: its " \
           "loadings stay at the prior (0 without one)" in status["message"].split("; ")

