"""FLASSO_RETURNS called directly, with the 2-D lists Excel passes.

Checked against pandas computed directly on the same prices (``p / p.shift(1) - 1``, the log of
the ratio), against skfolio's ``prices_to_returns`` (live, its bundled S&P 500 prices) where the
semantics match (complete prices; gaps without its forward fill), on gaps with and without
``span_gaps``, on the date kinds of every runtime, and for every problem the message naming the
argument and the cell.
"""

from __future__ import annotations

import copy
import datetime as dt

import numpy as np
import pandas as pd
import pytest

from xl_factorlasso import udfs


def cells(df: pd.DataFrame, dates: str = "datetime") -> list:
    def date(d):
        if dates == "serial":
            return float((d - pd.Timestamp("1899-12-30")).days)
        if dates == "iso":
            return d.strftime("%Y-%m-%d")
        return d.to_pydatetime()

    return [["Date", *map(str, df.columns)],
            *[[date(d), *(None if np.isnan(v) else float(v) for v in row)]
              for d, row in zip(df.index, df.to_numpy(dtype=float), strict=True)]]


def frame(table: list) -> pd.DataFrame:
    """A spilled result back to a DataFrame (blank -> NaN)."""
    header, *rows = table
    return pd.DataFrame([[np.nan if v is None else v for v in r[1:]] for r in rows],
                        index=[r[0] for r in rows], columns=header[1:], dtype=float)


@pytest.fixture(scope="module")
def sp500():
    datasets = pytest.importorskip("skfolio.datasets")
    return datasets.load_sp500_dataset().iloc[-260:, :12]


@pytest.fixture(scope="module")
def gappy(sp500):
    prices = sp500.copy()
    rng = np.random.default_rng(1)
    for j in range(prices.shape[1]):
        prices.iloc[rng.choice(np.arange(3, 255), 3, replace=False), j] = np.nan
    prices.iloc[:10, 2] = np.nan  # listed late
    prices.iloc[50, :] = np.nan  # a holiday: no price at all
    return prices


def test_simple_and_log_equal_pandas(sp500):
    simple = udfs.FLASSO_RETURNS(cells(sp500))
    assert simple[0] == ["date", *sp500.columns]
    assert [r[0] for r in simple[1:]] == [d.to_pydatetime() for d in sp500.index[1:]]
    expected = (sp500 / sp500.shift(1) - 1).iloc[1:]
    np.testing.assert_array_equal(frame(simple).to_numpy(), expected.to_numpy())
    log = udfs.FLASSO_RETURNS(cells(sp500), "log")
    np.testing.assert_allclose(frame(log).to_numpy(),
                               np.log(sp500 / sp500.shift(1)).iloc[1:].to_numpy(), rtol=1e-15)
    assert udfs.FLASSO_RETURNS(cells(sp500), " LOG ") == log  # any case, spaces allowed
    assert udfs.FLASSO_RETURNS(cells(sp500), "simple") == simple


@pytest.mark.parametrize("method", ["simple", "log"])
def test_equal_skfolio_where_the_semantics_match(sp500, gappy, method):
    from skfolio.preprocessing import prices_to_returns as sk_returns

    complete = frame(udfs.FLASSO_RETURNS(cells(sp500), method))
    sk = sk_returns(sp500, log_returns=method == "log")
    assert list(complete.index) == [d.to_pydatetime() for d in sk.index]
    np.testing.assert_allclose(complete.to_numpy(), sk.to_numpy(), rtol=1e-12, atol=1e-16)
    # with gaps: skfolio without its forward fill (which would invent 0 returns)
    ours = frame(udfs.FLASSO_RETURNS(cells(gappy), method))
    sk = sk_returns(gappy, log_returns=method == "log", fill_nan=False,
                    drop_inceptions_nan=False)
    assert list(ours.index) == [d.to_pydatetime() for d in sk.index]  # the holiday is dropped
    np.testing.assert_array_equal(np.isnan(ours.to_numpy()), np.isnan(sk.to_numpy()))
    np.testing.assert_allclose(ours.to_numpy(), sk.to_numpy(), rtol=1e-12, atol=1e-16)


def test_gaps_and_span_gaps():
    days = [dt.datetime(2024, 1, d) for d in range(1, 6)]
    prices = [["date", "A", "B"], [days[0], 100.0, None], [days[1], 110.0, 20.0],
              [days[2], None, 22.0], [days[3], 121.0, 24.2], [days[4], 133.1, ""]]
    one_period = udfs.FLASSO_RETURNS(prices)
    assert [r[0] for r in one_period] == ["date", *days[1:]]
    got = frame(one_period)
    np.testing.assert_allclose(got["A"], [0.1, np.nan, np.nan, 0.1], atol=1e-15)
    np.testing.assert_allclose(got["B"], [np.nan, 0.1, 0.1, np.nan], atol=1e-15)
    assert one_period[2][1] is None and one_period[4][2] is None  # blank cells, never NaN
    spanning = frame(udfs.FLASSO_RETURNS(prices, None, True))
    np.testing.assert_allclose(spanning["A"], [0.1, np.nan, 0.1, 0.1], atol=1e-15)  # 121/110
    assert udfs.FLASSO_RETURNS(prices, None, "FALSE") == one_period
    assert frame(udfs.FLASSO_RETURNS(prices, "log", [[True]]))["A"].iloc[2] == pytest.approx(
        np.log(1.1), rel=1e-15)


@pytest.mark.parametrize("dates", ["serial", "iso"])
def test_dates_as_every_runtime_sends_them(sp500, dates):
    base = frame(udfs.FLASSO_RETURNS(cells(sp500)))
    got = udfs.FLASSO_RETURNS(cells(sp500, dates))
    np.testing.assert_array_equal(frame(got).to_numpy(), base.to_numpy())
    if dates == "serial":  # Office.js: serial numbers stay numbers (periods)
        assert got[0][0] == "period" and got[1][0] == float(
            (sp500.index[1] - pd.Timestamp("1899-12-30")).days)
    else:
        assert got[0][0] == "date" and got[1][0] == sp500.index[1].to_pydatetime()


def test_text_numbers_and_office_js_cells():
    days = [dt.datetime(2024, 1, d) for d in range(1, 4)]
    plain = [["date", "A"], [days[0], 100.0], [days[1], 105.0], [days[2], 99.75]]
    as_text = [["date", "A"], [days[0], " 100 "], [days[1], "1.05e2"], [days[2], "99.75"]]
    office = [["date", {"type": "String", "basicValue": "A"}], [days[0], 100.0],
              [days[1], {"type": "Double", "basicValue": 105.0}], [days[2], 99.75]]
    expected = udfs.FLASSO_RETURNS(plain)
    assert frame(expected)["A"].tolist() == [105.0 / 100.0 - 1, 99.75 / 105.0 - 1]
    assert udfs.FLASSO_RETURNS(as_text) == expected
    assert udfs.FLASSO_RETURNS(office) == expected


def _set(table, i, j, value):
    out = copy.deepcopy(table)
    out[i][j] = value
    return out


def bad_cases(P):
    """(label, call, argument, fragments)."""
    f = udfs.FLASSO_RETURNS
    return [
        ("text price", lambda: f(_set(P, 3, 2, "abc")), "prices",
         ["row 4, column 3: 'abc' is not a price"]),
        ("decimal comma", lambda: f(_set(P, 3, 2, "101,5")), "prices",
         ["row 4, column 3: '101,5' is not a price: commas are read neither as decimal commas"]),
        ("percent", lambda: f(_set(P, 3, 2, "5%")), "prices", ["a percent sign is not read"]),
        ("error value", lambda: f(_set(P, 2, 1, "#N/A")), "prices",
         ["row 3, column 2: #N/A is an Excel error value"]),
        ("Office.js error", lambda: f(_set(P, 2, 1, {"type": "Error", "errorType": "Div0"})),
         "prices", ["row 3, column 2: #DIV/0! is an Excel error value"]),
        ("a date as a price", lambda: f(_set(P, 5, 3, dt.datetime(2020, 1, 1))), "prices",
         ["row 6, column 4: 2020-01-01 is a date, not a price"]),
        ("TRUE", lambda: f(_set(P, 5, 3, True)), "prices", ["TRUE/FALSE"]),
        ("zero price", lambda: f(_set(P, 4, 2, 0.0)), "prices",
         ["row 5, column 3: column 'AMD' has the price 0 on", "prices must be > 0"]),
        ("negative price", lambda: f(_set(P, 7, 1, -3.0)), "prices",
         ["row 8, column 2: column 'AAPL' has the price -3 on"]),
        ("a column without returns", lambda: f(
            [r[:3] + [None if 0 < i % 2 else r[3]] if i else r[:4] for i, r in enumerate(P)]),
         "prices", ["row 1, column 4: column 'BAC' has no return: it needs prices on two "
                    "consecutive dates"]),
        ("dates not increasing", lambda: f([P[0], P[2], P[1], *P[3:]]), "prices",
         ["row 3, column 1", "dates must increase"]),
        ("repeated date", lambda: f([P[0], P[1], P[1], *P[2:]]), "prices",
         ["row 3, column 1", "repeats the row above"]),
        ("locale date", lambda: f(_set(P, 2, 0, "01/02/2024")), "prices",
         ["row 3, column 1: '01/02/2024' is not a date: the day/month order"]),
        ("blank asset name", lambda: f(_set(P, 0, 2, None)), "prices",
         ["row 1, column 3: the asset name is blank"]),
        ("duplicate asset", lambda: f(_set(P, 0, 2, "AAPL")), "prices",
         ["duplicate asset name 'AAPL'"]),
        ("one date", lambda: f(P[:2]), "prices", ["at least two dates with prices"]),
        ("empty", lambda: f(None), "prices", ["the range is empty"]),
        ("bad method", lambda: f(P, "ln"), "method",
         ["'ln' is not a method of returns: use simple", "or log"]),
        ("method as a number", lambda: f(P, 2), "method", ["2 is not a method of returns"]),
        ("method range", lambda: f(P, [["log", "simple"]]), "method",
         ["expected a single value, got a range of 2 cells"]),
        ("bad span_gaps", lambda: f(P, None, "maybe"), "span_gaps",
         ["'maybe' is not TRUE or FALSE"]),
    ]


def test_bad_input_names_the_argument_and_the_cell(sp500):
    P = cells(sp500.iloc[:20, :4])
    for label, call, argument, fragments in bad_cases(P):
        out = call()
        assert isinstance(out, str) and out.startswith(f"#FLASSO! {argument}:"), (label, out)
        for fragment in fragments:
            assert fragment in out, (label, fragment, out)
        assert "\n" not in out and "Traceback" not in out
    assert udfs.FLASSO_RETURNS(_set(P, 3, 2, "abc")) == (
        "#FLASSO! prices: row 4, column 3: 'abc' is not a price")


def test_results_are_cached_on_the_content(sp500, monkeypatch):
    from xl_factorlasso.workbook import _prices

    calls = []
    original = _prices.prices_to_returns

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(_prices, "prices_to_returns", counting)
    udfs.cache_clear()
    P = cells(sp500.iloc[:30])
    first = udfs.FLASSO_RETURNS(P)
    assert udfs.FLASSO_RETURNS(copy.deepcopy(P)) == first and len(calls) == 1
    udfs.FLASSO_RETURNS(P, "log")
    assert len(calls) == 2  # every argument is part of the key
    udfs.cache_clear()
