"""FLASSO_BETA_HISTORY: one factor's loadings at every rebalancing date, equal to
RollingLassoModel run directly; arguments read as Excel passes them, problems named by argument,
one rolling fit shared by every factor's formula."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from tests.conftest import cells
from xl_factorlasso import udfs
from xl_factorlasso.core import LassoModel, RollingLassoModel

EXCEL_EPOCH = dt.datetime(1899, 12, 30)


@pytest.fixture(autouse=True)
def fresh_cache():
    udfs.cache_clear()
    yield
    udfs.cache_clear()


def _frame(table) -> pd.DataFrame:
    """A result table back as a frame (dates down, assets across)."""
    assert not isinstance(table, str), table
    header, *rows = table
    assert header[0] == "date"
    return pd.DataFrame([r[1:] for r in rows], index=[r[0] for r in rows],
                        columns=header[1:], dtype=float)


def _same_fit(got, expected):
    """The UDF's loadings are the rolling model's: the UDF builds its panels from cell lists,
    whose memory layout can make BLAS round the products differently (1e-15 apart under
    NumPy 2.0's OpenBLAS, bit-identical under 2.4's); 1e-12 still tells any other fit apart."""
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_defaults_equal_the_rolling_model(demo, R, F):
    """Month-end dates, expanding window, LassoModel() defaults."""
    got = _frame(udfs.FLASSO_BETA_HISTORY(R, F, "Equity"))
    rolling = RollingLassoModel(LassoModel()).fit(demo.x, demo.y)
    expected = rolling.results_.get_beta("Equity")
    assert list(got.columns) == list(demo.y.columns)
    assert [pd.Timestamp(d) for d in got.index] == list(expected.index)
    assert len(got) == len(rolling.results_) > 50
    _same_fit(got.to_numpy(), expected.to_numpy())


def test_every_argument_equals_the_rolling_model(demo, R, F):
    signs = demo.signs.iloc[:10]
    prior = demo.prior.iloc[:10]

    def matrix(frame):
        return [["asset", *frame.columns],
                *[[a, *(None if np.isnan(v) else float(v) for v in row)]
                  for a, row in zip(frame.index, frame.to_numpy(), strict=True)]]

    settings = [["key", "value"], ["span", 52], ["l1_weight", 0.1], ["n_clusters", 4]]
    got = _frame(udfs.FLASSO_BETA_HISTORY(R, F, "Rates", "QE", 156.0, 104.0, 1e-4, "HCGL",
                                          matrix(signs), matrix(prior), settings))
    model = LassoModel(reg_lambda=1e-4, model_type="HCGL", span=52, l1_weight=0.1, n_clusters=4,
                       factors_beta_loading_signs=signs.reindex(demo.y.columns),
                       factors_beta_prior=prior.reindex(demo.y.columns))
    rolling = RollingLassoModel(model, rebalance="QE", window=156, min_history=104).fit(
        demo.x, demo.y)
    expected = rolling.results_.get_beta("Rates")
    assert len(rolling.failures_) > 0  # the first quarters lack 104 rows: left out
    assert [pd.Timestamp(d) for d in got.index] == list(expected.index)
    _same_fit(got.to_numpy(), expected.to_numpy())


def test_explicit_dates_and_serial_numbers(demo, R, F):
    dates = [[dt.datetime(2021, 6, 30)], [None], [dt.datetime(2022, 12, 31)]]
    got = udfs.FLASSO_BETA_HISTORY(R, F, "Credit", dates, "expanding")
    rolling = RollingLassoModel(rebalance=["2021-06-30", "2022-12-31"]).fit(demo.x, demo.y)
    expected = rolling.results_.get_beta("Credit")
    frame = _frame(got)
    assert [pd.Timestamp(d) for d in frame.index] == list(expected.index)
    _same_fit(frame.to_numpy(), expected.to_numpy())
    # Office.js: dates are serial numbers, in the panels and in rebalance; the same fits,
    # answered with the panel's own serial numbers
    serial = udfs.FLASSO_BETA_HISTORY(
        cells(demo.y, dates="serial"), cells(demo.x, dates="serial"), "Credit",
        [[(dt.datetime(2021, 6, 30) - EXCEL_EPOCH).days * 1.0],
         [(dt.datetime(2022, 12, 31) - EXCEL_EPOCH).days * 1.0]])
    assert [r[1:] for r in serial] == [r[1:] for r in got]
    assert serial[0][0] == "period"  # numbers in the date column, as FLASSO_PREDICT says
    assert [r[0] for r in serial[1:]] == [(pd.Timestamp(d) - EXCEL_EPOCH).days * 1.0
                                          for d in expected.index]
    # an ISO date in one cell is a date, not a frequency
    one = _frame(udfs.FLASSO_BETA_HISTORY(R, F, "Credit", "2021-06-30"))
    _same_fit(one.to_numpy(), expected.to_numpy()[:1])


def test_one_rolling_fit_serves_every_factor(R, F, monkeypatch):
    fits = []
    original = RollingLassoModel.fit

    def counting(self, x, y, **kwargs):
        fits.append(1)
        return original(self, x, y, **kwargs)

    monkeypatch.setattr(RollingLassoModel, "fit", counting)
    a = udfs.FLASSO_BETA_HISTORY(R, F, "Equity", "QE")
    b = udfs.FLASSO_BETA_HISTORY(R, F, "USD", "QE")
    again = udfs.FLASSO_BETA_HISTORY(R, F, "Equity", [["QE"]])  # a cell and a literal alike
    assert fits == [1] and again == a and a != b
    udfs.FLASSO_BETA_HISTORY(R, F, "Equity", "QE", 104)  # another window: another fit
    assert fits == [1, 1]


@pytest.mark.parametrize(("args", "message"), [
    (("Equities",), "#FLASSO! factor: 'Equities' is not a factor of factors; the factors are "
                    "Equity, Rates, Credit, USD, Commodities, Inflation"),
    ((None,), "#FLASSO! factor: give the name of a factor (a header of factors)"),
    (("Equity", "monthly"), "#FLASSO! rebalance: 'monthly' is not a rebalancing frequency; "
                            "write a pandas frequency such as W-FRI (weekly, Fridays), ME "
                            "(month end), QE (quarter end) or YE (year end)"),
    (("Equity", "M"), "#FLASSO! rebalance: 'M' is not a rebalancing frequency; "
                      "write a pandas frequency such as W-FRI (weekly, Fridays), ME "
                      "(month end), QE (quarter end) or YE (year end)"),  # deprecated alias
    (("Equity", [["2021-06-30"], ["30/06/2022"]]),
     "#FLASSO! rebalance: row 2, column 1: '30/06/2022' is not a date: the day/month order of "
     "such text depends on the locale (01/02/2020: 1 February or 2 January?); type it as a "
     "date (or as ISO text such as 2020-01-31); expected a pandas frequency (ME, W-FRI, QE) "
     "in one cell or a range of rebalancing dates"),
    (("Equity", [[dt.datetime(1990, 1, 31)]]),
     "#FLASSO! rebalance: no rebalancing date could be fitted (first: 1990-01-31: no data at "
     "or before 1990-01-31 (the data start on 2019-01-04))"),
    (("Equity", "QE", "abc"), "#FLASSO! window: 'abc' is neither expanding nor a number of "
                              "rows"),
    (("Equity", "QE", 52.5), "#FLASSO! window: must be a whole number >= 2, got 52.5"),
    (("Equity", "QE", None, 0), "#FLASSO! min_history: must be a whole number >= 2 (or none), got 0"),
    (("Equity", "QE", 52, 104), "#FLASSO! min_history: 104 is more than the window's 52 rows: "
                                "no date could be fitted; lower it or widen the window"),
    (("Equity", "QE", None, 1000), "#FLASSO! min_history: no rebalancing date could be "
                                   "fitted (first: 2019-03-29: too little history: 13 rows < "
                                   "min_history=1000)"),
    (("Equity", "QE", 1000), "#FLASSO! window: no rebalancing date could be fitted (first: "
                             "2019-03-29: too little history: 13 rows < min_history=1000)"),
    (("Equity", "QE", "Expanding", 104.0), None),  # the sheet's spelling and Excel's numbers
    (("Equity", "QE", None, None, -1.0), "#FLASSO! reg_lambda:"),
])
def test_problems_name_the_argument(R, F, args, message):
    out = udfs.FLASSO_BETA_HISTORY(R, F, *args)
    if message is None:
        assert not isinstance(out, str) and out[0][0] == "date", out
        return
    assert isinstance(out, str) and out.startswith(message), out
    if not message.endswith(":"):
        assert out == message


def test_bad_cell_of_returns_is_named(demo, F):
    bad = cells(demo.y)
    bad[5][3] = "#N/A"
    out = udfs.FLASSO_BETA_HISTORY(bad, F, "Equity")
    assert out.startswith("#FLASSO! returns: row 6, column 4:") and "#N/A" in out


# --------------------------------------------------------------------------- one answer
def _load_build():
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("factorlasso_template_build_beta_history",
                                                  root / "workbook_template" / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_formulas_sheet_entry_equals_the_backtest_job(tmp_path):
    """The template's FLASSO_BETA_HISTORY formula (workbook_template/build.py), evaluated on a
    workbook's cells as Excel would call it, gives that factor's rows of the FL_BETA_HISTORY
    the Backtest job writes into the same workbook."""
    from xl_factorlasso.cli import DEMO_ROLLING, build_demo_workbook
    from xl_factorlasso.workbook import XlsxFileIO, run_job

    build = _load_build()
    (formula,) = [f for name, _what, f, _fmt in build.FORMULAS if name == "FLASSO_BETA_HISTORY"]
    path = tmp_path / "book.xlsx"
    build_demo_workbook(str(path), rolling_settings=DEMO_ROLLING)
    io_ = XlsxFileIO(str(path))
    values = {name: io_.read(area) for name, area in io_.names().items()}
    got = build.evaluate_formula(formula, values, udfs)
    run_job(XlsxFileIO(str(path)), "backtest", pictures=False)
    written = XlsxFileIO(str(path))
    rows = [r for r in written.read(written.names()["FL_BETA_HISTORY"]) if r[0] is not None]
    long = pd.DataFrame(rows[1:], columns=rows[0])
    factor = values["FL_FACTORS"][0][1]  # the first factor: the formula's and the job's default
    wide = long[long["factor"] == factor].pivot(index="date", columns="asset", values="beta")
    frame = _frame(got)
    assert factor == "Equity" and len(frame) > 30
    assert [pd.Timestamp(d) for d in frame.index] == [pd.Timestamp(d) for d in wide.index]
    np.testing.assert_array_equal(frame.to_numpy(), wide[frame.columns].to_numpy(float))


# --------------------------------------------------------------------------- found by fuzzing
def _serial(table, start):
    """``table`` dated by the numbers start, start + 7, ... instead of its dates."""
    return [table[0], *[[start + 7.0 * k, *row[1:]] for k, row in enumerate(table[1:])]]


@pytest.mark.parametrize("value", [1e300, 1e9, -1e9, 3e6])
def test_a_rebalancing_number_that_is_no_date_is_named(R, F, value):
    """A number beyond the calendar (pandas cannot put 1e9 days after 1899-12-30) was an
    internal error (OutOfBoundsTimedelta)."""
    out = udfs.FLASSO_BETA_HISTORY(R, F, "Equity", [["2021-06-30"], [value]])
    assert out.startswith(f"#FLASSO! rebalance: row 2, column 1: {value:g} is not an Excel "
                          "date serial number"), out


def test_a_panel_dated_by_numbers_beyond_the_calendar_is_named(demo):
    y, x = demo.y.iloc[:60, :6], demo.x.iloc[:60]
    out = udfs.FLASSO_BETA_HISTORY(_serial(cells(y), 1e9), _serial(cells(x), 1e9), "Equity")
    assert out.startswith("#FLASSO! returns: row 2, column 1: 1e+09 is not an Excel date "
                          "serial number"), out
    # serial numbers of real dates still work (Office.js sends dates so)
    ok = udfs.FLASSO_BETA_HISTORY(_serial(cells(y), 43469.0), _serial(cells(x), 43469.0),
                                  "Equity", "QE")
    assert isinstance(ok, list) and ok[0][0] == "period", ok


def test_a_failed_date_gives_its_reason_without_the_exception_class(demo):
    zero = demo.y.iloc[:60, :4] * 0.0
    out = udfs.FLASSO_BETA_HISTORY(cells(zero), cells(demo.x.iloc[:60]), "Equity", "QE")
    assert out.startswith("#FLASSO! returns: no rebalancing date could be fitted (first: "), out
    assert "Error:" not in out, out
