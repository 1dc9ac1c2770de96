"""prices_to_returns: the documented rules on hand-made prices (gaps, empty dates, first row),
every error with its column, date and row, and skfolio's prices_to_returns (live) where the
semantics match, with the differences where they do not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xl_factorlasso import PricesError, prices_to_returns

DATES = pd.date_range("2024-01-01", periods=6, freq="D")


def table(**columns):
    return pd.DataFrame(columns, index=DATES[: len(next(iter(columns.values())))])


def test_simple_and_log_returns_by_hand():
    prices = table(a=[100.0, 110.0, 99.0, 99.0], b=[50.0, 25.0, 50.0, 75.0])
    simple = prices_to_returns(prices)
    assert list(simple.index) == list(DATES[1:4])  # the first date has no return
    assert list(simple.columns) == ["a", "b"]
    np.testing.assert_allclose(simple["a"], [0.1, -0.1, 0.0], rtol=0, atol=1e-15)
    np.testing.assert_allclose(simple["b"], [-0.5, 1.0, 0.5], rtol=0, atol=1e-15)
    log = prices_to_returns(prices, "log")
    np.testing.assert_allclose(log["a"], np.log([1.1, 0.9, 1.0]), rtol=1e-15)
    np.testing.assert_allclose(log["b"], np.log([0.5, 2.0, 1.5]), rtol=1e-15)


def test_a_gap_gives_missing_returns_and_span_gaps_spans_it():
    prices = table(a=[100.0, 110.0, np.nan, 121.0, 133.1, np.nan],
                   b=[np.nan, 20.0, 22.0, 24.2, 26.62, 29.282])
    one_period = prices_to_returns(prices)
    np.testing.assert_allclose(one_period["a"], [0.1, np.nan, np.nan, 0.1, np.nan], atol=1e-15)
    # b starts late: no return before its second price
    np.testing.assert_allclose(one_period["b"], [np.nan, 0.1, 0.1, 0.1, 0.1], atol=1e-15)
    spanning = prices_to_returns(prices, span_gaps=True)
    np.testing.assert_allclose(spanning["a"], [0.1, np.nan, 0.1, 0.1, np.nan], atol=1e-15)
    np.testing.assert_allclose(spanning["b"], one_period["b"], atol=0)
    # 121 / 110 - 1 = 0.1: the spanning return covers both days, so the returns compound to the
    # total return
    a = spanning["a"].dropna()
    assert np.prod(1 + a) == pytest.approx(133.1 / 100.0, rel=1e-14)
    log = prices_to_returns(prices, "log", span_gaps=True)["a"].dropna()
    assert log.sum() == pytest.approx(np.log(133.1 / 100.0), rel=1e-14)


def test_a_date_without_any_price_is_dropped():
    prices = table(a=[1.0, np.nan, 1.5, 3.0], b=[2.0, None, 2.2, 2.2])
    returns = prices_to_returns(prices)
    assert list(returns.index) == [DATES[2], DATES[3]]
    np.testing.assert_allclose(returns.to_numpy(), [[0.5, 0.1], [1.0, 0.0]], atol=1e-15)


def test_blank_text_is_a_missing_price_and_python_dates_are_named():
    import datetime

    dates = [datetime.date(2024, 1, d) for d in (1, 2, 3)]
    prices = pd.DataFrame({"a": [1.0, "", 2.0], "b": [1.0, 2.0, "  "]},
                          index=pd.Index(dates, dtype=object))
    returns = prices_to_returns(prices, span_gaps=True)
    np.testing.assert_allclose(returns.to_numpy(), [[np.nan, 1.0], [1.0, np.nan]])
    prices.iloc[1, 1] = -2.0
    with pytest.raises(PricesError, match="column 'b' has the price -2 on 2024-01-02;"):
        prices_to_returns(prices)


def test_numbers_as_dates_and_object_columns():
    prices = pd.DataFrame({"a": ["1", 2, None], "b": [1.0, 1.5, 3.0]}, index=[45000, 45001, 45005])
    returns = prices_to_returns(prices)
    assert list(returns.index) == [45001, 45005]
    np.testing.assert_allclose(returns["a"], [1.0, np.nan])
    np.testing.assert_allclose(returns["b"], [0.5, 1.0])


# ------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    "prices, message, column, row",
    [
        (table(a=[1.0, 2.0, 0.0]), "prices: column 'a' has the price 0 on 2024-01-03; prices must "
         "be > 0", "a", 2),
        (table(a=[1.0, 2.0], b=[1.0, -3.5]), "prices: column 'b' has the price -3.5 on "
         "2024-01-02; prices must be > 0", "b", 1),
        (table(a=[1.0, np.inf]), "prices: column 'a' has the price inf on 2024-01-02", "a", 1),
        (table(a=[1.0, "n/a", 2.0]), "prices: column 'a' has 'n/a' on 2024-01-02, which is not a "
         "price", "a", 1),
        (table(a=[1.0, True, 2.0]), "prices: column 'a' has True on 2024-01-02, which is not a "
         "price", "a", 1),
        (table(a=[True, False]), "prices: column 'a' holds TRUE/FALSE, not prices", "a", 0),
        (pd.DataFrame({"a": [1.0, 2.0, 3.0]}, index=DATES[[0, 2, 1]]),
         r"prices: dates must increase down the rows; 2024-01-03 \(row 2\) is followed by "
         r"2024-01-02 \(row 3\)", None, 2),
        (pd.DataFrame({"a": [1.0, 2.0, 3.0]}, index=DATES[[0, 1, 1]]),
         r"prices: date 2024-01-02 appears twice \(rows 2 and 3\)", None, 2),
        (pd.DataFrame({"a": [1.0, 2.0]}, index=pd.DatetimeIndex([DATES[0], pd.NaT])),
         "prices: row 2 has no date", None, 1),
        (table(a=[1.0, np.nan, 2.0], b=[1.0, 2.0, 3.0]),
         "prices: column 'a' has no return: it needs prices on two consecutive dates", "a", None),
        (table(a=[np.nan, np.nan, np.nan], b=[1.0, 2.0, 3.0]),
         "prices: column 'a' has no return", "a", None),
        (table(a=[1.0]), "prices: at least two dates with prices are needed", None, None),
        (pd.DataFrame(index=DATES), r"prices: the table is empty \(shape \(6, 0\)\)", None, None),
        (pd.DataFrame([[1.0, 2.0]], columns=["a", "a"]), "prices: column 'a' appears twice",
         "a", None),
    ],
    ids=["zero", "negative", "inf", "text", "bool_cell", "bool_column", "unsorted", "duplicate",
         "no_date", "no_consecutive", "all_missing", "one_date", "empty", "duplicate_column"],
)
def test_errors_name_the_column_and_date(prices, message, column, row):
    with pytest.raises(PricesError, match=message) as info:
        prices_to_returns(prices)
    assert info.value.column == column and info.value.row == row
    assert isinstance(info.value, ValueError)


def test_span_gaps_accepts_a_column_without_consecutive_prices():
    prices = table(a=[1.0, np.nan, 2.0], b=[1.0, 2.0, 3.0])
    np.testing.assert_allclose(prices_to_returns(prices, span_gaps=True)["a"], [np.nan, 1.0])


def test_bad_method_and_input_type():
    with pytest.raises(PricesError, match="method must be 'simple' or 'log', got 'linear'"):
        prices_to_returns(table(a=[1.0, 2.0]), "linear")
    with pytest.raises(PricesError, match="prices must be a DataFrame .* got ndarray"):
        prices_to_returns(np.ones((3, 2)))


# ------------------------------------------------------------------- skfolio, live


@pytest.fixture(scope="module")
def sp500():
    datasets = pytest.importorskip("skfolio.datasets")
    return datasets.load_sp500_dataset()


@pytest.fixture(scope="module")
def gappy(sp500):
    """The S&P 500 prices with holes: single missing days, a late listing, an early end, and an
    empty date."""
    prices = sp500.iloc[-300:].copy()
    rng = np.random.default_rng(0)
    for j in range(prices.shape[1]):
        prices.iloc[rng.choice(np.arange(5, 295), 4, replace=False), j] = np.nan
    prices.iloc[:20, 3] = np.nan  # listed late
    prices.iloc[-7:, 5] = np.nan  # ends early
    prices.iloc[100, :] = np.nan  # a holiday
    return prices


@pytest.mark.parametrize("method", ["simple", "log"])
def test_complete_prices_equal_skfolio(sp500, method):
    from skfolio.preprocessing import prices_to_returns as sk_returns

    ours = prices_to_returns(sp500, method)
    sk = sk_returns(sp500, log_returns=method == "log")
    pd.testing.assert_index_equal(ours.index, sk.index)
    np.testing.assert_allclose(ours.to_numpy(), sk.to_numpy(), rtol=1e-12, atol=1e-16)


@pytest.mark.parametrize("method", ["simple", "log"])
def test_gaps_equal_skfolio_without_filling(gappy, method):
    from skfolio.preprocessing import prices_to_returns as sk_returns

    ours = prices_to_returns(gappy, method)
    sk = sk_returns(gappy, log_returns=method == "log", fill_nan=False,
                    drop_inceptions_nan=False)
    pd.testing.assert_index_equal(ours.index, sk.index)
    np.testing.assert_array_equal(np.isnan(ours.to_numpy()), np.isnan(sk.to_numpy()))
    np.testing.assert_allclose(ours.to_numpy(), sk.to_numpy(), rtol=1e-12, atol=1e-16)
    assert np.isnan(ours.to_numpy()).sum() > 4 * 2 * gappy.shape[1]  # the gaps are there


def test_span_gaps_differs_from_skfolio_forward_fill_only_by_invented_zeros(gappy):
    # skfolio's forward fill turns a missing price into a 0 return on its date (and after an
    # asset's last price, and for every asset on the empty date, which is dropped here); the
    # return after the gap is the same spanning return.
    from skfolio.preprocessing import prices_to_returns as sk_returns

    ours = prices_to_returns(gappy, span_gaps=True)
    sk = sk_returns(gappy, fill_nan=True, drop_inceptions_nan=False)
    holiday = gappy.index[100]
    assert holiday not in ours.index and (sk.loc[holiday] == 0.0).all()
    assert len(sk) == len(ours) + 1
    ours, sk = ours.to_numpy(), sk.reindex(ours.index).to_numpy()
    both = ~np.isnan(ours)
    np.testing.assert_allclose(ours[both], sk[both], rtol=1e-12, atol=1e-16)
    filled = np.isnan(ours) & ~np.isnan(sk)
    assert filled.sum() > 0 and np.all(sk[filled] == 0.0)
    np.testing.assert_array_equal(np.isnan(sk), np.isnan(ours) & ~filled)
    # skfolio's default also drops the 20 dates before the late listing; they are kept here
    default = sk_returns(gappy)
    assert len(default) == len(ours) + 1 - 20
