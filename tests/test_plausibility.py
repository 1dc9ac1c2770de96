"""Numbers that parse but are not returns, and settings that do not fit the data.

``check_plausible`` names the first implausible cell (beyond ``max_abs_return``, an Excel date
serial, an overflow); ``fit_inputs`` refuses too few dates, more clusters than assets, a
warmup no asset reaches and more CV folds than the dates allow, each with the core's own rule
(checked against the core at the boundary) and the cell of the setting.
"""

from __future__ import annotations

import datetime as dt
import warnings

import numpy as np
import pandas as pd
import pytest

from tests.workbook_helpers import demo_memory_book, frame_rows
from xl_factorlasso import udfs
from xl_factorlasso.core import LassoModel, LassoModelCV, SolveError
from xl_factorlasso.core.datasets import load_demo_panel
from xl_factorlasso.workbook import WorkbookInputError, refit
from xl_factorlasso.workbook._inputs import check_cv, fit_inputs
from xl_factorlasso.workbook._plausibility import OVERFLOW_LIMIT, check_plausible
from xl_factorlasso.workbook._portfolio import complete_rows
from xl_factorlasso.workbook._tables import Block, parse_panel

DECIMALS = "returns are decimals: 0.05 for 5 %"
BOUND = "prices or percent? (max_abs_return in FL_SETTINGS sets the bound; none switches it off)"


@pytest.fixture(scope="module")
def demo():
    return load_demo_panel()


def panel_block(frame, name="FL_RETURNS", **changes):
    """The frame's cells at A1 of a sheet, with ``{(row, col): value}`` changes (1-based)."""
    rows = frame_rows(frame, "date")
    for (r, c), v in changes.items():
        rows[r - 1][c - 1] = v
    return Block.of(name, rows, 1, 1)


def refused(frame, block, **kw) -> str:
    with pytest.raises(WorkbookInputError) as info:
        check_plausible(frame, block, **kw)
    return str(info.value)


# --------------------------------------------------------------------------- check_plausible
def test_plausible_returns_pass(demo):
    block = panel_block(demo.y)
    check_plausible(parse_panel(block), block, bound=5.0)
    check_plausible(demo.y, "FL_RETURNS", bound=None)


@pytest.mark.parametrize("value, message", [
    (12.5, f"12.5 is not a plausible return (beyond +/-5, i.e. 500 %): {DECIMALS}; {BOUND}"),
    (-6.0, f"-6 is not a plausible return (beyond +/-5, i.e. 500 %): {DECIMALS}; {BOUND}"),
    (43831.0, "43831 looks like the Excel date 2020-01-01 (its serial number), not a return: is a "
              f"date column among the returns? ({DECIMALS})"),
    (1e200, f"1e+200 is too large to compute with: its square overflows; {DECIMALS}"),
    (float("inf"), "inf is not a finite number"),
    (-3e-160, "-3e-160 is too small to compute with: a value other than 0 must be at least "
              f"1e-150 in magnitude (the squares of smaller ones lose their digits to "
              f"underflow); {DECIMALS}"),
])
def test_the_first_implausible_value_is_named_by_its_cell(demo, value, message):
    frame = demo.y.copy()
    frame.iloc[3, 1] = value  # row 5, column C of the sheet
    block = panel_block(frame)
    assert refused(frame, block, bound=5.0) == f"FL_RETURNS!C5: {message}"


def test_prices_say_how_many_values_of_the_column_are_beyond(demo):
    frame = demo.y.copy()
    frame["SX5E"] = 3000.0 + np.arange(len(frame))
    frame.loc[frame.index[:10], "SX5E"] = np.nan  # a ragged start
    message = refused(frame, panel_block(frame), bound=5.0)
    assert message == (
        "FL_RETURNS!D12: 3010 is not a plausible return (beyond +/-5, i.e. 500 %, as are 249 "
        f"other values of 'SX5E'): {DECIMALS}; {BOUND}")


def test_blank_rows_and_a_block_away_from_a1_still_name_the_right_cell(demo):
    frame = demo.y.iloc[:6].copy()
    rows = frame_rows(frame, "date")
    rows.insert(3, [None] * len(rows[0]))  # a blank row after the second date
    rows[5][4] = 7.0  # the 4th date, column UKX
    block = Block.of("FL_RETURNS", rows, 10, 2)  # the range starts at B10
    parsed = parse_panel(block)
    assert refused(parsed, block, bound=5.0).startswith(
        "FL_RETURNS!F15: 7 is not a plausible return")


def test_bound_none_keeps_only_the_overflow_check(demo):
    frame = demo.y.copy()
    frame.iloc[0, 0] = 250.0
    check_plausible(frame, "FL_RETURNS", bound=None)
    frame.iloc[0, 0] = OVERFLOW_LIMIT * 10
    assert refused(frame, "FL_RETURNS", bound=None) == (
        f"FL_RETURNS: 'SPX' on 2019-01-04: 1e+151 is too large to compute with: its square "
        f"overflows; {DECIMALS}")


def test_zero_and_the_underflow_limit_pass_and_bound_none_keeps_the_underflow_check(demo):
    frame = demo.y.copy()
    frame.iloc[0, 0], frame.iloc[1, 0], frame.iloc[2, 0] = 0.0, -1e-150, 1e-150
    check_plausible(frame, "FL_RETURNS")
    frame.iloc[3, 0] = 5e-324  # the smallest subnormal double
    assert refused(frame, "FL_RETURNS", bound=None).startswith(
        "FL_RETURNS: 'SPX' on 2019-01-25: 4.94066e-324 is too small to compute with")


def test_the_bound_is_inclusive_and_a_missing_value_is_fine(demo):
    frame = demo.y.copy()
    frame.iloc[0, 0], frame.iloc[1, 0] = 5.0, np.nan
    check_plausible(frame, "FL_RETURNS", bound=5.0)
    frame.iloc[0, 0] = np.nextafter(5.0, 6.0)
    assert "is not a plausible return" in refused(frame, "FL_RETURNS", bound=5.0)


def test_an_overflowing_value_would_break_the_core(demo):
    """Why the overflow check exists: the core's sums of squares become infinite."""
    x, y = demo.x.iloc[:60], demo.y.iloc[:60, :3].copy()
    y.iloc[5, 0] = 1e200
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            model = LassoModel(warmup_period=None).fit(x, y)
        except (ValueError, SolveError):
            return  # the core fails without saying which cell: the workbook names it first
    assert not np.isfinite(model.r2_.iloc[0]) or not np.isfinite(model.objective_value_)


# --------------------------------------------------------------------------- fit_inputs
def inputs(demo, settings=None, *, rows=None, cv=False, returns=None):
    y = demo.y if returns is None else returns
    x = demo.x
    if rows is not None:
        y, x = y.iloc[:rows], x.iloc[:rows]
    block = None if settings is None else Block.of(
        "FL_SETTINGS", [["key", "value"], *[[k, v] for k, v in settings.items()]], 1, 1)
    return fit_inputs(y, x, settings=block, cv=cv,
                      blocks=(panel_block(y), panel_block(x, "FL_FACTORS")))


def refused_inputs(*args, **kw) -> str:
    with pytest.raises(WorkbookInputError) as info:
        inputs(*args, **kw)
    return str(info.value)


def test_fit_inputs_checks_returns_and_factors_with_the_settings_bound(demo):
    y = demo.y.copy()
    y.iloc[0, 0] = 8.0
    assert refused_inputs(demo, returns=y).startswith("FL_RETURNS!B2: 8 is not a plausible return")
    inputs(demo, {"max_abs_return": 10}, returns=y)
    inputs(demo, {"max_abs_return": "none"}, returns=y)
    x = demo.x.copy()
    x.iloc[2, 1] = 44000.0
    with pytest.raises(WorkbookInputError) as info:
        fit_inputs(demo.y, x, blocks=(None, panel_block(x, "FL_FACTORS")))
    assert str(info.value) == (
        "FL_FACTORS!C4: 44000 looks like the Excel date 2020-06-18 (its serial number), not a "
        f"factor return: is a date column among the factor returns? ({DECIMALS})")


def _core_rows_error(demo, n, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            LassoModel(warmup_period=None, **params).fit(demo.x.iloc[:n], demo.y.iloc[:n])
        except ValueError as err:
            return str(err)
    return None


@pytest.mark.parametrize("settings, n, enough, message", [
    ({"span": 52}, 5, 6, "FL_RETURNS: FL_RETURNS and FL_FACTORS have 5 dates; after demeaning 4 "
                         "usable rows remain, the fit needs at least 5"),
    ({"span": 52, "warmup_period": 0}, 4, 6,
     "FL_RETURNS: FL_RETURNS and FL_FACTORS have 4 dates; after demeaning 3 usable rows remain, "
     "the fit needs at least 5"),
    ({"warmup_period": 0}, 4, 5, "FL_RETURNS: FL_RETURNS and FL_FACTORS have 4 dates; the fit "
                                 "needs at least 5"),
    ({"span": 52, "demean": False, "warmup_period": 0}, 4, 5,
     "FL_RETURNS: FL_RETURNS and FL_FACTORS have 4 dates; the fit needs at least 5"),
])
def test_too_few_dates_names_the_inputs_and_the_counts(demo, settings, n, enough, message):
    assert refused_inputs(demo, settings, rows=n) == message
    params = {k: v for k, v in settings.items() if k in ("span", "demean")}
    assert "too few rows" in _core_rows_error(demo, enough - 1, **params)  # the core agrees
    inputs(demo, {**settings, "warmup_period": 0}, rows=enough)
    assert _core_rows_error(demo, enough, **params) is None


def test_more_clusters_than_assets_names_the_cell(demo):
    assert refused_inputs(demo, {"model_type": "HCGL", "n_clusters": 25}) == (
        "FL_SETTINGS!B3: n_clusters 25 is more than the 24 assets of FL_RETURNS; use at most 24")
    inputs(demo, {"model_type": "HCGL", "n_clusters": 24})


def test_a_warmup_no_asset_reaches_names_the_cell_or_the_default(demo):
    y = demo.y.copy()
    y.iloc[:5, :] = np.nan  # every asset has 255 returns
    assert refused_inputs(demo, {"warmup_period": 256}, returns=y) == (
        "FL_SETTINGS!B2: warmup_period 256 is more than the 255 returns of any asset in "
        "FL_RETURNS: every loading would be set to zero; use at most 255, or none")
    inputs(demo, {"warmup_period": 255}, returns=y)
    assert refused_inputs(demo, rows=8) == (
        "FL_SETTINGS: the default warmup_period 12 is more than the 8 returns of any asset in "
        "FL_RETURNS: every loading would be set to zero; use at most 8, or none")


def test_no_return_at_all_is_refused(demo):
    y = demo.y.copy() * np.nan
    assert refused_inputs(demo, returns=y) == (
        "FL_RETURNS: every return is blank: there is nothing to fit")


# --------------------------------------------------------------------------- cross-validation
def test_cv_splits_against_the_dates_with_the_core_splits(demo):
    fits = inputs(demo, {"cv_splits": 20, "warmup_period": 0}, rows=126)
    assert check_cv(fits) == 20  # 126 // 21 = 6 rows in the first window: enough
    assert refused_inputs(demo, {"cv_splits": 25, "warmup_period": 0}, rows=126, cv=True) == (
        "FL_SETTINGS!B2: cv_splits 25 is too many for the 126 dates: the first training window "
        "would have 4 rows and needs 5 (5 usable rows); use at most 24")
    assert refused_inputs(demo, {"cv_splits": 24, "warmup_period": 0, "span": 52}, rows=126,
                          cv=True) == (
        "FL_SETTINGS!B2: cv_splits 24 is too many for the 126 dates: the first training window "
        "would have 5 rows and needs 6 (5 usable rows after demeaning); use at most 20")
    assert refused_inputs(demo, rows=40, cv=True) == (
        "FL_SETTINGS: the default cv_splits 5 is too many for the 40 dates: the first training "
        "window would have 6 rows and needs 12 (warmup_period 12); use at most 2 (or lower "
        "warmup_period)")


@pytest.mark.parametrize("splits, span", [(24, None), (25, None), (20, 52), (21, 52)])
def test_the_first_fold_rule_is_the_core_rule(demo, splits, span):
    """At the boundary: what check_cv accepts, every fold of the core fits; what it refuses,
    the first fold of the core cannot fit (a blank fold)."""
    x, y = demo.x.iloc[:126], demo.y.iloc[:126, :4]
    settings = {"cv_splits": splits, "warmup_period": 0, **({"span": span} if span else {})}
    block = Block.of("FL_SETTINGS", [[k, v] for k, v in settings.items()], 1, 1)
    try:
        fit_inputs(y, x, settings=block, cv=True)
        accepted = True
    except WorkbookInputError:
        accepted = False
    cv = LassoModelCV(lambdas=[1e-4], n_splits=splits, refit=False,
                      base_model=LassoModel(span=span, warmup_period=None)).fit(x, y)
    assert accepted == bool(np.isfinite(cv.cv_scores_.to_numpy()).all())


# --------------------------------------------------------------------------- jobs and functions
def test_refit_with_percent_returns_writes_nothing():
    io = demo_memory_book()
    io.cells[("Returns", 5, 3)] = 12.5
    before = io.snapshot()
    with pytest.raises(WorkbookInputError) as info:
        refit(io)
    # the cell once the job passes the blocks to fit_inputs; the column and date until then
    assert str(info.value) in (
        f"FL_RETURNS!C5: 12.5 is not a plausible return (beyond +/-5, i.e. 500 %): {DECIMALS}; "
        f"{BOUND}",
        f"FL_RETURNS: 'NDX' on 2019-01-25: 12.5 is not a plausible return (beyond +/-5, i.e. "
        f"500 %): {DECIMALS}; {BOUND}")
    assert io.snapshot() == before and io.log == [] and io.saved == 0


def test_refit_with_too_few_dates_names_the_inputs():
    io = demo_memory_book(settings={"span": 52})
    for key in [k for k in io.cells if k[0] in ("Returns", "Factors") and k[1] > 5]:
        del io.cells[key]
    with pytest.raises(WorkbookInputError) as info:
        refit(io)
    assert str(info.value) == ("FL_RETURNS: FL_RETURNS and FL_FACTORS have 4 dates; after "
                               "demeaning 3 usable rows remain, the fit needs at least 5")


def test_worksheet_functions_check_plausibility(demo):
    udfs.cache_clear()
    r, f = frame_rows(demo.y, "date"), frame_rows(demo.x, "date")
    r[4][2] = 7.5
    assert udfs.FLASSO_FIT(r, f) == (
        "#FLASSO! returns: row 5, column 3: 7.5 is not a plausible return (beyond +/-5, i.e. "
        f"500 %): {DECIMALS}; prices or percent? (max_abs_return in settings sets the bound; "
        "none switches it off)")
    assert isinstance(udfs.FLASSO_FIT(r, f, None, None, None, None,
                                      [["max_abs_return", "none"]]), list)
    assert udfs.FLASSO_MAXDIV(r) == (
        "#FLASSO! returns: row 5, column 3: 7.5 is not a plausible return (beyond +/-5, i.e. "
        f"500 %): {DECIMALS}; prices or percent? (max_abs_return in settings sets the bound; "
        "none switches it off)")
    assert isinstance(udfs.FLASSO_MAXDIV(r, [["max_abs_return", 10]]), list)
    f[3][1] = dt.datetime(2020, 1, 1)  # a date-formatted factor return
    assert udfs.FLASSO_FIT(frame_rows(demo.y, "date"), f) == (
        "#FLASSO! factors: row 4, column 2: 2020-01-01 is a date, not a return (the cell has a "
        "date format; give it a number format)")


def test_worksheet_factor_covariance_runs_the_same_checks(demo):
    udfs.cache_clear()
    r, f = frame_rows(demo.y, "date"), frame_rows(demo.x, "date")
    out = udfs.FLASSO_MAXDIV(r, [["covariance", "factor"], ["factor_n_clusters", 40],
                                 ["model_type", "HCGL"]], None, None, f)
    assert out == ("#FLASSO! settings: row 2, column 2: factor_n_clusters 40 is more than the 24 "
                   "assets of returns; use at most 24")


def test_the_portfolio_returns_need_two_dates(demo):
    with pytest.raises(WorkbookInputError) as info:
        complete_rows(demo.y.iloc[:1], "FL_RETURNS", "")
    assert str(info.value) == ("FL_RETURNS: only 1 date: a covariance of the returns needs at "
                               "least 2")


def test_the_check_is_the_same_for_iso_and_serial_dates(demo):
    rows = frame_rows(demo.y, "date")
    for row in rows[1:]:
        row[0] = float((pd.Timestamp(row[0]) - pd.Timestamp("1899-12-30")).days)
    rows[2][5] = -9.0
    block = Block.of("returns", rows)
    assert refused(parse_panel(block), block, bound=5.0, source="settings").startswith(
        "returns: row 3, column 6: -9 is not a plausible return")


def test_scenario_factors_of_predict_are_checked_with_the_same_bound(demo):
    udfs.cache_clear()
    r, f = frame_rows(demo.y, "date"), frame_rows(demo.x, "date")
    scenario = [f[0], [f[1][0], 2.5, *f[1][2:]], [f[2][0], *f[2][1:3], 25.0, *f[2][4:]]]
    assert udfs.FLASSO_PREDICT(r, f, scenario) == (
        "#FLASSO! new_factors: row 3, column 4: 25 is not a plausible factor return (beyond "
        f"+/-5, i.e. 500 %): {DECIMALS}; prices or percent? (max_abs_return in settings sets the "
        "bound; none switches it off)")
    table = udfs.FLASSO_PREDICT(r, f, scenario, None, None, None, None, [["max_abs_return", 30]])
    assert isinstance(table, list) and len(table) == 3
