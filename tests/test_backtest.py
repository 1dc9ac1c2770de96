"""MaxDiversificationBacktest: holdings in closed form, no look-ahead, failure policies, the
factor strategy against a dense per-date optimisation, and skfolio's measures, MultiPeriodPortfolio
and WalkForward + cross_val_predict on the same weights and windows."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest

from xl_factorlasso import (
    LassoModel,
    MaxDiversificationBacktest,
    MaximumDiversification,
    RollingLassoModel,
    make_factor_panel,
)
from xl_factorlasso.core.backtest import infer_annualization_factor, return_statistics

STATS = ["annualized_mean", "annualized_volatility", "sharpe_ratio", "sortino_ratio",
         "max_drawdown", "calmar_ratio", "average_turnover", "total_costs"]


def _rolling(**kw):
    kw.setdefault("estimator", LassoModel(reg_lambda=1e-6))
    return RollingLassoModel(**kw)


@pytest.fixture(scope="module")
def panel():
    p = make_factor_panel(160, 3, 8, seed=5, freq="W-FRI", start="2015-01-02")
    # make_factor_panel's returns are in percent-like units: scale to weekly returns.
    return p.x * 0.01, p.y * 0.01


@pytest.fixture(scope="module")
def fitted(panel):
    x, y = panel
    bt = MaxDiversificationBacktest(
        rolling=_rolling(rebalance="QE", window=60),
        portfolio=MaximumDiversification(transaction_costs=0.002, max_weights=0.4))
    return bt.fit(x, y)


def _dr(w, cov):
    """Diversification ratio of ``w`` under a dense ``cov``, by plain numpy."""
    cov = np.asarray(cov, dtype=float)
    return float(w @ np.sqrt(np.diag(cov)) / np.sqrt(w @ cov @ w))


def _drift(w, rows):
    """``w`` drifted through the return rows (independent of the package's Book)."""
    w = np.asarray(w, dtype=float)
    for r in np.asarray(rows, dtype=float):
        w = w * (1 + r) / (1 + w @ r)
    return w


# ---------------------------------------------------------------------------- closed forms
def _two_assets():
    dates = pd.date_range("2020-01-03", periods=9, freq="W-FRI")
    y = pd.DataFrame([[0.01, 0.02], [-0.01, 0.0], [0.03, -0.02], [0.0, 0.01],
                      [0.10, -0.10], [0.00, 0.20], [-0.05, 0.05],
                      [0.02, 0.04], [0.00, 0.00]], index=dates, columns=["A", "B"])
    x = pd.DataFrame({"f": [0.01, -0.02, 0.015, 0.0, 0.03, -0.01, 0.02, -0.005, 0.01]},
                     index=dates)
    return x, y


@pytest.mark.parametrize("drift", [True, False])
def test_equal_weight_two_assets_in_closed_form(drift):
    x, y = _two_assets()
    bt = MaxDiversificationBacktest(
        rolling=_rolling(rebalance=[y.index[3], y.index[6]]),
        portfolio=MaximumDiversification(transaction_costs=0.01),
        benchmarks=("equal_weight",), annualization_factor=52, drift=drift).fit(x, y)
    assert list(bt.rebalance_dates_) == [y.index[3], y.index[6]]
    got = bt.returns_["equal_weight"]
    assert list(got.index) == list(y.index[4:])
    if drift:
        # Row 4: (0.5, 0.5) earns 0 and drifts to (0.55, 0.45); row 5: earns 0.45 * 0.2.
        h5 = np.array([0.55, 0.54]) / 1.09
        g6 = -0.05 * h5[0] + 0.05 * h5[1]
        h6 = np.array([h5[0] * 0.95, h5[1] * 1.05]) / (1 + g6)
        turnover = abs(0.5 - h6[0]) + abs(0.5 - h6[1])
        gross = [0.0, 0.09, g6, 0.03, 0.0]
    else:  # reset to (0.5, 0.5) every row: nothing to trade at the second date
        h6 = np.array([0.5, 0.5])
        turnover = 0.0
        gross = [0.0, 0.10, 0.0, 0.03, 0.0]
    np.testing.assert_allclose(got["gross"], gross, rtol=0, atol=1e-15)
    net = np.array(gross) - [0.01, 0, 0, 0.01 * turnover, 0]  # costs on the first row only
    np.testing.assert_allclose(got["net"], net, rtol=0, atol=1e-15)
    np.testing.assert_allclose(bt.turnover_["equal_weight"], [1.0, turnover], atol=1e-15)
    np.testing.assert_allclose(bt.costs_["equal_weight"], [0.01, 0.01 * turnover], atol=1e-15)
    np.testing.assert_allclose(bt.weights_["equal_weight"].to_numpy(), 0.5)
    assert bt.stats_.loc[("equal_weight", "net"), "total_costs"] == pytest.approx(
        0.01 + 0.01 * turnover, abs=1e-15)
    assert bt.stats_.loc[("equal_weight", "gross"), "average_turnover"] == pytest.approx(
        (1 + turnover) / 2, abs=1e-15)
    # Ex ante: the equal weights under the sample covariance of the window (rows 0..date).
    ea = bt.diversification_[("equal_weight", "ex_ante")]
    assert ea.iloc[0] == pytest.approx(_dr(np.full(2, 0.5), y.iloc[:4].cov()), rel=1e-12)
    assert ea.iloc[1] == pytest.approx(_dr(np.full(2, 0.5), y.iloc[:7].cov()), rel=1e-12)
    # Realised over the first holding period (rows 4-6): weights' asset vols over the
    # strategy's realised volatility there.
    period = y.iloc[4:7]
    realised = 0.5 * period.std().sum() / np.std(gross[:3], ddof=1)
    assert bt.diversification_[("equal_weight", "realised")].iloc[0] == pytest.approx(
        realised, rel=1e-12)


def test_management_fees_are_taken_from_every_net_return():
    x, y = _two_assets()
    bt = MaxDiversificationBacktest(
        rolling=_rolling(rebalance=[y.index[3], y.index[6]]),
        portfolio=MaximumDiversification(management_fees={"A": 0.002}),
        benchmarks=("equal_weight",), annualization_factor=52).fit(x, y)
    got = bt.returns_["equal_weight"]
    # A's weight entering rows 4..8: 0.5, drifted 0.55 and 0.55/1.09, then 0.5 after the
    # second rebalance and 0.5 * 1.02 / 1.03 on the last row.
    held_a = [0.5, 0.55, 0.55 / 1.09, 0.5, 0.51 / 1.03]
    np.testing.assert_allclose(got["gross"] - got["net"], 0.002 * np.array(held_a),
                               rtol=1e-13, atol=0)
    assert (bt.costs_ == 0).all().all()


def test_factor_strategy_turnover_costs_and_drift_are_consistent(fitted, panel):
    """For every strategy: the turnover is measured against the holdings drifted (by an
    independent loop) from the previous date's weights, and the net return is the gross less
    the costs on the first row after a rebalance."""
    _, y = panel
    bt = fitted
    index = y.index
    for s in bt.strategies_:
        w = bt.weights_[s]
        for k in range(1, len(w)):
            a, b = index.get_loc(w.index[k - 1]), index.get_loc(w.index[k])
            held = _drift(w.iloc[k - 1], y.iloc[a + 1:b + 1])
            turnover = np.abs(w.iloc[k].to_numpy() - held).sum()
            assert bt.turnover_[s].iloc[k] == pytest.approx(turnover, abs=1e-12)
            assert bt.costs_[s].iloc[k] == pytest.approx(0.002 * turnover, abs=1e-14)
        diff = (bt.returns_[(s, "gross")] - bt.returns_[(s, "net")])
        charged = diff[diff != 0]
        # Charged on the row after the rebalance; one on the last row has no row to charge.
        paid = bt.costs_[s][(bt.costs_[s] > 0) & (w.index < index[-1])]
        assert list(charged.index) == [index[index.get_loc(d) + 1] for d in paid.index]
        np.testing.assert_allclose(charged, paid, rtol=1e-12)
    assert bt.strategies_ == ["factor", "sample", "ewma", "equal_weight"]
    assert list(bt.stats_.columns) == STATS
    assert list(bt.stats_.index) == [(s, k) for s in bt.strategies_ for k in ("gross", "net")]
    assert list(bt.failures_.columns) == ["date", "strategy", "reason", "action"]
    assert list(bt.diversification_.columns) == [
        (s, k) for s in bt.strategies_ for k in ("ex_ante", "realised")]
    assert bt.rolling_.results_.n_observations == len(bt.rolling_.fit_info_)


def test_gross_returns_are_the_drifted_holdings_times_the_returns(fitted, panel):
    _, y = panel
    bt = fitted
    w = bt.weights_["factor"]
    positions = [y.index.get_loc(d) for d in w.index] + [len(y) - 1]
    expected = []
    for k in range(len(w)):
        h = w.iloc[k].to_numpy()
        for t in range(positions[k] + 1, positions[k + 1] + 1):
            r = y.iloc[t].to_numpy()
            expected.append(h @ r)
            h = h * (1 + r) / (1 + h @ r)
    np.testing.assert_allclose(bt.returns_[("factor", "gross")], expected, rtol=0, atol=1e-15)


# ---------------------------------------------------------------------------- no look-ahead
def test_no_look_ahead(panel):
    x, y = panel
    make = lambda: MaxDiversificationBacktest(  # noqa: E731
        rolling=_rolling(rebalance="QE", window=60),
        portfolio=MaximumDiversification(transaction_costs=0.001))
    base = make().fit(x, y)
    cut = base.rebalance_dates_[3]
    later = x.index > cut
    rng = np.random.default_rng(1)
    x2, y2 = x.copy(), y.copy()
    x2.loc[later] = rng.normal(0, 0.02, (later.sum(), x.shape[1]))
    y2.loc[later] = rng.normal(0, 0.03, (later.sum(), y.shape[1]))
    other = make().fit(x2, y2)
    upto = base.rebalance_dates_ <= cut
    for s in base.strategies_:
        pd.testing.assert_frame_equal(base.weights_[s][upto], other.weights_[s][upto])
    pd.testing.assert_frame_equal(base.turnover_[upto], other.turnover_[upto])
    pd.testing.assert_frame_equal(base.diversification_.xs("ex_ante", axis=1, level=1)[upto],
                                  other.diversification_.xs("ex_ante", axis=1, level=1)[upto])
    assert not base.weights_["factor"][~upto].equals(other.weights_["factor"][~upto])


# ---------------------------------------------------------------------------- factor strategy
def test_factor_strategy_equals_dense_per_date_optimisation(fitted, panel):
    """Each date's factor weights equal MaximumDiversification on the dense B Sigma_f B' + D of
    that date (same constraints; previous weights = the last date's weights drifted here)."""
    _, y = panel
    bt = fitted
    w = bt.weights_["factor"]
    failed = set(bt.failures_.loc[bt.failures_.strategy == "factor", "date"])
    checked = 0
    for k, date in enumerate(w.index):
        if date in failed:
            continue
        cov = bt.rolling_.results_[date].get_y_covar()
        prev = np.zeros(w.shape[1])
        if k > 0:
            a, b = y.index.get_loc(w.index[k - 1]), y.index.get_loc(date)
            prev = _drift(w.iloc[k - 1], y.iloc[a + 1:b + 1])
        ref = MaximumDiversification(covariance=cov, transaction_costs=0.002, max_weights=0.4,
                                     previous_weights=pd.Series(prev, index=w.columns)).fit()
        ours, theirs = w.iloc[k].to_numpy(), ref.weights_.to_numpy()
        assert _dr(ours, cov) == pytest.approx(_dr(theirs, cov), rel=1e-6)
        np.testing.assert_allclose(ours, theirs, atol=1e-4)
        # Ex ante DR: the dense one, though computed from the factor pieces.
        assert bt.diversification_.loc[date, ("factor", "ex_ante")] == pytest.approx(
            _dr(ours, cov), rel=1e-10)
        checked += 1
    assert checked >= 3


def test_factor_strategy_compiles_its_program_once(panel, monkeypatch):
    """One optimiser is kept across dates: where the constraints need CVXPY (a cap on the
    shorts), the factor form's parametric program is compiled once (at the second date) and
    then only given new data."""
    import xl_factorlasso.core.optimization._base as md

    builds = []
    original = md._build_parametric
    monkeypatch.setattr(md, "_build_parametric",
                        lambda spec, values=None: builds.append(spec.n) or original(spec, values))
    x, y = panel
    bt = MaxDiversificationBacktest(
        rolling=_rolling(rebalance="QE", window=60), benchmarks=(),
        portfolio=MaximumDiversification(min_weights=-0.1, max_short=0.2)).fit(x, y)
    traded = int((bt.weights_["factor"] != 0).any(axis=1).sum())
    assert traded >= 5 and builds == [y.shape[1]]


def test_factor_strategy_warm_starts_the_factor_path(panel, monkeypatch):
    """With bounds and a budget the factor strategy needs no CVXPY (solve_.path "factor"):
    every date after the first starts from the previous date's weights, and the weights are
    those of a fresh cold optimisation of the same covariance as an n x n matrix (no costs or
    turnover: the holdings do not enter)."""
    from xl_factorlasso.core.optimization import _dense

    calls = []
    original = _dense.solve_dense

    def spy(spec, X=None, start=None):
        out = original(spec, X, start)
        calls.append((spec.risk.is_factor, start is not None, out[4]))
        return out

    monkeypatch.setattr(_dense, "solve_dense", spy)
    x, y = panel
    bt = MaxDiversificationBacktest(rolling=_rolling(rebalance="QE", window=60), benchmarks=(),
                                    portfolio=MaximumDiversification(max_weights=0.4)).fit(x, y)
    w = bt.weights_["factor"]
    assert len(calls) == len(w) >= 5 and all(factor for factor, _, _ in calls)
    assert [started for _, started, _ in calls] == [False] + [True] * (len(w) - 1)
    assert sum(answered for _, _, answered in calls) >= len(w) - 2
    monkeypatch.setattr(_dense, "solve_dense", original)
    for date in w.index[-3:]:
        cov = bt.rolling_.results_[date].get_y_covar()
        cold = MaximumDiversification(covariance=cov, max_weights=0.4).fit()
        assert cold.solve_.path == "dense"  # the n x n matrix: the other path
        np.testing.assert_allclose(w.loc[date].to_numpy(), cold.weights_.to_numpy(), atol=1e-9)


# ---------------------------------------------------------------------------- failures
def _regime_panel():
    """One factor; asset A's beta falls from 1.2 to 0.1 at row 100, so an exposure floor of
    0.8 on the factor is feasible early and infeasible once the window sees only the new
    regime."""
    rng = np.random.default_rng(7)
    T = 180
    dates = pd.date_range("2010-01-01", periods=T, freq="W-FRI")
    f = rng.normal(0.001, 0.02, T)
    beta_a = np.where(np.arange(T) < 100, 1.2, 0.1)
    betas = np.column_stack([beta_a, np.full(T, 0.3), np.full(T, 0.5)])
    y = pd.DataFrame(f[:, None] * betas + rng.normal(0, 0.01, (T, 3)), index=dates,
                     columns=["A", "B", "C"])
    return pd.DataFrame({"f": f}, index=dates), y


def _regime_backtest(on_failure):
    x, y = _regime_panel()
    dates = [x.index[p] for p in range(59, 180, 20)]
    return MaxDiversificationBacktest(
        rolling=_rolling(rebalance=dates, window=40),
        portfolio=MaximumDiversification(linear_constraints=["f >= 0.8"]),
        benchmarks=(), on_failure=on_failure, annualization_factor=52), x, y


def test_infeasible_date_keeps_the_drifted_holdings():
    bt, x, y = _regime_backtest("previous")
    bt.fit(x, y)
    fails = bt.failures_
    assert len(fails) >= 1 and set(fails.strategy) == {"factor"}
    assert fails.reason.str.contains("Infeasible").all(), fails.reason.tolist()
    assert (fails.action == "kept previous holdings").all()
    w = bt.weights_["factor"]
    first = w.index.get_loc(fails.date.iloc[0])
    assert first >= 1  # a success came before
    for date in fails.date:
        k = w.index.get_loc(date)
        a, b = y.index.get_loc(w.index[k - 1]), y.index.get_loc(date)
        np.testing.assert_allclose(w.iloc[k], _drift(w.iloc[k - 1], y.iloc[a + 1:b + 1]),
                                   rtol=0, atol=1e-15)
        assert bt.turnover_.loc[date, "factor"] == 0 and bt.costs_.loc[date, "factor"] == 0
    # Successful dates meet the exposure floor.
    ok = ~w.index.isin(fails.date)
    for date in w.index[ok]:
        beta = bt.rolling_.results_[date].y_betas["f"].to_numpy()
        assert w.loc[date].to_numpy() @ beta >= 0.8 - 1e-9


def test_infeasible_date_raises_with_the_date():
    bt, x, y = _regime_backtest("previous")
    bt.fit(x, y)
    date = bt.failures_.date.iloc[0]
    bt2, _, _ = _regime_backtest("raise")
    with pytest.raises(ValueError, match=rf"rebalancing date {date.date()}, strategy "
                                         r"'factor': InfeasibleProblemError"):
        bt2.fit(x, y)


def test_an_optimiser_that_does_not_raise_is_a_failure_too():
    """raise_on_failure=False: the optimiser warns and gives no weights; the backtest records
    the failure with the optimiser's error and keeps the holdings."""
    bt, x, y = _regime_backtest("previous")
    bt.set_params(portfolio=MaximumDiversification(linear_constraints=["f >= 0.8"],
                                                   raise_on_failure=False))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bt.fit(x, y)
    reference, _, _ = _regime_backtest("previous")
    reference.fit(x, y)
    assert list(bt.failures_.date) == list(reference.failures_.date)
    assert bt.failures_.reason.str.startswith("optimisation failed: ").all()
    pd.testing.assert_frame_equal(bt.weights_["factor"], reference.weights_["factor"])
    # the optimiser's warning at each failed date, named with its date; by date in notes_
    failed = list(bt.failures_.date)
    assert list(bt.notes_.date) == failed and set(bt.notes_.strategy) == {"factor"}
    said = [str(w.message) for w in caught if "raise_on_failure=False" in str(w.message)]
    first, later = bt.notes_.note.iloc[0], bt.notes_.note.iloc[1]
    assert "min_weights, budget=1" in first and "max_weights, budget=1" in later
    assert (bt.notes_.note.iloc[1:] == later).all() and len(failed) == 4
    d = [t.date() for t in failed]
    assert said == [f"rebalancing date {d[0]}: strategy 'factor': {first}",
                    f"rebalancing dates {d[1]}, {d[2]} and {d[3]}: strategy 'factor': {later}"]


@pytest.mark.parametrize("on_failure", ["previous", "raise"])
def test_the_warm_up_is_said_and_the_backtest_starts_after_it(panel, on_failure):
    x, y = panel
    bt = MaxDiversificationBacktest(rolling=_rolling(rebalance="QE", window=60),
                                    benchmarks=("sample", "equal_weight"),
                                    on_failure=on_failure).fit(x, y)
    quarter_ends = y.index.to_series().resample("QE").last()
    n_early = int((quarter_ends < y.index[59]).sum())
    assert n_early >= 2
    early = bt.failures_[bt.failures_.reason.str.startswith("too little history")]
    assert len(early) == 3 * n_early  # every strategy, never raised, even with "raise"
    assert (early.action == "not a rebalance (warm-up)").all()
    # The first rebalance is the first quarter end with 60 rows; returns start the row after,
    # so no warm-up cash dilutes the statistics.
    first = quarter_ends[quarter_ends >= y.index[59]].iloc[0]
    assert bt.rebalance_dates_[0] == first
    assert bt.returns_.index[0] == y.index[y.index.get_loc(first) + 1]
    for s in bt.strategies_:
        assert bt.turnover_[s].iloc[0] == pytest.approx(1.0, abs=1e-9)  # from cash


@pytest.mark.parametrize("on_failure", ["previous", "raise"])
def test_a_factor_model_failure_follows_the_policy(panel, on_failure):
    x, y = panel
    x = x.copy()
    x.iloc[100, 1] = np.inf  # every 30-row window holding row 100 fails to fit
    dates = list(x.index[[79, 99, 109, 119, 149]])
    bt = MaxDiversificationBacktest(rolling=_rolling(rebalance=dates, window=30),
                                    benchmarks=("sample",), on_failure=on_failure)
    if on_failure == "raise":
        with pytest.raises(ValueError, match=rf"rebalancing date {dates[2].date()}, strategy "
                                             r"'factor': factor model: ValueError: x: column"):
            bt.fit(x, y)
        return
    bt.fit(x, y)
    f = bt.failures_
    assert list(f.date) == dates[2:4] and set(f.strategy) == {"factor"}
    assert f.reason.str.startswith("factor model: ValueError: x: column 'f1'").all()
    assert (f.action == "kept previous holdings").all()
    w = bt.weights_["factor"]
    held = _drift(w.loc[dates[1]], y.iloc[100:110])
    np.testing.assert_allclose(w.loc[dates[2]], held, rtol=0, atol=1e-15)
    np.testing.assert_allclose(w.loc[dates[3]], _drift(held, y.iloc[110:120]), rtol=0,
                               atol=1e-15)
    assert np.isnan(bt.diversification_.loc[dates[2], ("factor", "ex_ante")])
    assert bt.turnover_.loc[dates[4], "factor"] > 0  # rebalanced again once the fit works
    assert not bt.failures_.strategy.eq("sample").any()


@pytest.mark.filterwarnings("ignore:rebalancing dates .* 1 of 8 responses have fewer than warmup")
def test_missing_returns_refuse_sample_and_ewma_naming_the_asset(panel):
    x, y = panel
    y = y.copy()
    y.iloc[:70, 2] = np.nan  # y2 starts late
    bt = MaxDiversificationBacktest(rolling=_rolling(rebalance="QE", window=60)).fit(x, y)
    f = bt.failures_
    gap = f[f.reason.str.startswith("missing returns")]
    assert set(gap.strategy) == {"sample", "ewma"}
    assert gap.reason.str.contains("window for y2 ").all()  # a name, not a Python list
    # The factor model has no residual variance for y2 while it has too few rows: refused.
    factor = f[(f.strategy == "factor") & ~f.reason.str.startswith("too little history")]
    assert len(factor) and (factor.reason == "factor model: no finite loadings or residual "
                                             "variance for y2").all()
    # Equal weight holds the assets with a complete window only, then all of them.
    ew = bt.weights_["equal_weight"]
    first = ew.index[(ew != 0).any(axis=1)][0]
    n = y.shape[1]
    window_start = y.index[y.index.get_loc(first) - 59]
    if window_start <= y.index[69]:
        assert ew.loc[first, "y2"] == 0
        np.testing.assert_allclose(ew.loc[first].drop("y2"), 1 / (n - 1))
    np.testing.assert_allclose(ew.iloc[-1], 1 / n)


def test_an_ewma_span_not_above_the_assets_is_refused_before_any_fit(panel, monkeypatch):
    x, y = panel  # 8 assets
    fits = []
    monkeypatch.setattr(RollingLassoModel, "fit", lambda self, *a, **k: fits.append(1))
    with pytest.raises(ValueError, match=r"^ewma_span: 8 is not above the 8 assets: .* give "
                                         r"ewma_span above 8 or leave 'ewma' out of benchmarks"):
        MaxDiversificationBacktest(rolling=_rolling(window=60), ewma_span=8).fit(x, y)
    spanned = _rolling(window=60, estimator=LassoModel(reg_lambda=1e-6, span=6))
    with pytest.raises(ValueError, match=r"^ewma_span: 6 \(the default: the factor model's "
                                         r"span\) is not above the 8 assets"):
        MaxDiversificationBacktest(rolling=spanned).fit(x, y)
    with pytest.raises(ValueError, match=r"^ewma_span: 4 \(the default: annualization_factor\)"):
        MaxDiversificationBacktest(rolling=_rolling(window=60),
                                   annualization_factor=4).fit(x, y)
    assert not fits


def test_ewma_dates_with_too_few_effective_rows_fail_like_a_short_sample_window(panel):
    """Span 9 for 8 assets, expanding window: a window of T rows weighs like
    ``9 (1 - 0.8^T) / (1 + 0.8^T)`` equal rows, not above 8 up to T = 12. Those dates are EWMA
    failures saying so (the sample benchmark has them from T = 9 on); the later ones equal
    MaximumDiversification(span=9) on the window."""
    x, y = panel
    rows = [6, 8, 10, 11, 12, 13, 30]  # the windows have rows + 1 rows
    bt = MaxDiversificationBacktest(
        rolling=_rolling(rebalance=list(y.index[rows]), min_history=7), ewma_span=9,
        benchmarks=("sample", "ewma")).fit(x, y)
    f = bt.failures_.set_index(["date", "strategy"])
    for r in rows:
        date, T = y.index[r], r + 1
        v = 0.8 ** np.arange(T - 1, -1, -1, dtype=float)
        effective = v.sum() ** 2 / (v ** 2).sum()
        if T <= 8:  # both: fewer rows than assets
            assert (date, "ewma") in f.index and (date, "sample") in f.index
            assert f.loc[(date, "ewma"), "reason"].startswith(f"the window has {T} rows")
        elif effective <= 8:
            assert (date, "sample") not in f.index
            assert f.loc[(date, "ewma"), "reason"] == (
                f"ewma_span: span=9 gives the {T} observations the weight of {effective:.1f} "
                "equal ones (the effective sample size), not more than the 8 assets: the EWMA "
                "covariance is then as ill-determined as a sample covariance of that many rows, "
                "and the portfolio would follow the noise of its smallest eigenvalues; the "
                "window is too short for the span here: a longer window or a later "
                "min_history leaves such dates out")
        else:
            assert T >= 13 and (date, "ewma") not in f.index
            ref = MaximumDiversification(span=9).fit(y.iloc[:T])
            cov = ref.covariance_
            assert _dr(bt.weights_["ewma"].loc[date].to_numpy(), cov) == pytest.approx(
                _dr(ref.weights_.to_numpy(), cov), rel=1e-6)
    with pytest.raises(ValueError, match=r"rebalancing date .*strategy 'ewma': ewma_span: "
                                         r"span=9 gives the 10 observations"):
        MaxDiversificationBacktest(
            rolling=_rolling(rebalance=list(y.index[[9, 30]]),
                             estimator=LassoModel(reg_lambda=1e-6, warmup_period=None)),
            ewma_span=9, benchmarks=("ewma",), on_failure="raise").fit(x, y)


@pytest.mark.parametrize("value, message", [
    (np.inf, "is infinite: the holdings cannot compound it"),
    (-np.inf, "is infinite: the holdings cannot compound it"),
    (-1.5, "is -1.5, below -1: more than everything held would be lost; give simple returns, "
           "not percentages or log returns"),
    ("1,5%", "is not a number: '1,5%'"),
])
def test_returns_the_holdings_cannot_compound_are_refused_before_any_fit(panel, monkeypatch,
                                                                         value, message):
    """An infinite return passed the rolling model (its windows are failures) and the books
    drifted through it: returns, turnover, costs and statistics became inf or NaN with no
    error (random search). Such a cell, one below -1 or text is named before any fit; a total
    loss (-1) is a return."""
    x, y = panel
    y = y.astype(object) if isinstance(value, str) else y.copy()
    y.iloc[40, 1] = value
    fits = []
    monkeypatch.setattr(RollingLassoModel, "fit", lambda self, *a, **k: fits.append(1))
    with pytest.raises(ValueError, match=f"^y: the return of 'y1' on {y.index[40].date()} "
                                         f"{re.escape(message)}$"):
        MaxDiversificationBacktest(rolling=_rolling(window=60)).fit(x, y)
    assert not fits
    monkeypatch.undo()
    y = panel[1].copy()
    y.iloc[100, 1] = -1.0
    bt = MaxDiversificationBacktest(rolling=_rolling(rebalance="QE", window=60),
                                    benchmarks=("equal_weight",)).fit(x, y)
    assert np.isfinite(bt.returns_.to_numpy()).all()


def test_a_suspended_asset_fails_the_dates_whose_window_it_is_flat_in(panel):
    """Returns of 0 for 40 weeks (a suspended or stale price): a 30-row window inside them has
    an asset of zero volatility, which the optimiser refuses as bad data. That ValueError
    stopped the whole backtest whatever on_failure said (random search); now each such date
    of each optimised strategy is a failure with its reason, and the others rebalance."""
    x, y = panel
    y = y.copy()
    y.iloc[60:100, 2] = 0.0
    rolling = _rolling(rebalance="ME", window=30)
    bt = MaxDiversificationBacktest(rolling=rolling).fit(x, y)
    f = bt.failures_[~bt.failures_.action.str.contains("warm-up")]
    flat = [d for d in bt.rebalance_dates_
            if y.index.get_loc(d) - 29 >= 60 and y.index.get_loc(d) < 100]
    assert flat
    for strategy, reason in (
            ("factor", "factor model: zero volatility for y2 (no variation in the window: "
                       "a suspended or stale price?)"),
            ("sample", "no variation in the window for y2 (a suspended or stale price?): "
                       "the sample covariance has a zero variance"),
            ("ewma", "no variation in the window for y2 (a suspended or stale price?): the "
                     "ewma covariance has a zero variance")):
        rows = f[f.strategy == strategy]
        assert list(rows.date) == flat and (rows.reason == reason).all(), strategy
        held = bt.weights_[strategy]
        for d in flat:  # kept the holdings (drifting), traded nothing
            assert bt.turnover_.loc[d, strategy] == 0.0
        assert (held.loc[bt.rebalance_dates_[-1]] > 0).any()
    assert "equal_weight" not in set(f.strategy)
    assert np.isfinite(bt.returns_.to_numpy()).all()
    with pytest.raises(ValueError, match=f"rebalancing date {flat[0].date()}, strategy "
                                         "'factor': factor model: zero volatility for"):
        MaxDiversificationBacktest(rolling=rolling, on_failure="raise").fit(x, y)


def test_a_held_asset_without_a_return_is_an_error(panel):
    x, y = panel
    y = y.copy()
    y.iloc[-3, 1] = np.nan  # y1 has no return on a row where equal weight holds it
    bt = MaxDiversificationBacktest(rolling=_rolling(rebalance="QE", window=60),
                                    benchmarks=("equal_weight",))
    with pytest.raises(ValueError, match=rf"y: asset 'y1' has no return on "
                                         rf"{y.index[-3].date()} while the "):
        bt.fit(x, y)


def test_a_date_before_the_data_is_a_failure_of_every_strategy(panel):
    x, y = panel
    dates = [pd.Timestamp("2000-01-31"), y.index[80], y.index[120]]
    bt = MaxDiversificationBacktest(rolling=_rolling(rebalance=dates, window=60)).fit(x, y)
    early = bt.failures_[bt.failures_.date == dates[0]]
    assert list(early.strategy) == bt.strategies_
    assert early.reason.str.startswith("no data at or before 2000-01-31").all()
    assert list(bt.rebalance_dates_) == dates[1:]


# ---------------------------------------------------------------------------- progress
def test_progress_counts_fits_then_rebalances_and_can_cancel(panel):
    x, y = panel
    calls = []
    bt = MaxDiversificationBacktest(rolling=_rolling(rebalance="QE", window=60),
                                    benchmarks=("equal_weight",))
    bt.fit(x, y, progress=lambda done, total: calls.append((done, total)))
    n_dates = len(bt.rebalance_dates_)
    n_fits = len(bt.rolling_.fit_info_)
    assert n_dates == n_fits  # the warm-up dates are neither
    total = n_fits + n_dates
    assert {t for _, t in calls} == {total}
    done = [d for d, _ in calls]
    assert done == sorted(done) and done[-1] == total
    assert done[-n_dates:] == list(range(n_fits + 1, total + 1))

    assert list(bt.timings_.index) == ["rolling fits", "factor", "equal_weight"]
    assert (bt.timings_ >= 0).all()

    class Stop(Exception):
        pass

    def cancel(done, total):
        if done > n_fits + 1:
            raise Stop

    with pytest.raises(Stop):
        bt.fit(x, y, progress=cancel)


class _ReportingRolling(RollingLassoModel):
    """A rolling model whose fit reports progress (interface (b) of issue 11)."""

    def fit(self, x, y, *, progress=None):
        super().fit(x, y)
        if progress is not None:
            for k in range(len(self.fit_info_)):
                progress(k + 1, len(self.fit_info_))
        return self


def test_progress_passes_through_a_reporting_rolling_model(panel):
    x, y = panel
    calls = []
    rolling = _ReportingRolling(LassoModel(reg_lambda=1e-6), rebalance="QE", window=60)
    bt = MaxDiversificationBacktest(rolling=rolling, benchmarks=())
    bt.fit(x, y, progress=lambda done, total: calls.append((done, total)))
    n_fits, n_dates = len(bt.rolling_.fit_info_), len(bt.rebalance_dates_)
    total = n_fits + n_dates
    assert calls == ([(k, total) for k in range(1, n_fits + 1)] + [(n_fits, total)]
                     + [(n_fits + k, total) for k in range(1, n_dates + 1)])


def test_bad_rolling_parameters_are_named_before_any_work(panel):
    x, y = panel
    with pytest.raises(ValueError, match=r"window must be 'expanding' or a whole number of "
                                         r"rows >= 1, got 'abc'"):
        MaxDiversificationBacktest(rolling=RollingLassoModel(window="abc")).fit(x, y)


# ---------------------------------------------------------------------------- measures
@pytest.mark.parametrize("compounded", [False, True])
def test_statistics_equal_skfolio_measures(compounded):
    mt = pytest.importorskip("skfolio.measures")
    r = np.random.default_rng(3).normal(0.002, 0.02, 300)
    a, rf = 52.0, 0.0003
    got = return_statistics(r, a, rf, compounded)
    mdd = mt.max_drawdown(mt.get_drawdowns(r, compounded=compounded))
    semi = mt.semi_deviation(r)
    std = mt.standard_deviation(r)
    expected = {
        "annualized_mean": a * mt.mean(r),
        "annualized_volatility": np.sqrt(a) * std,
        "sharpe_ratio": np.sqrt(a) * (mt.mean(r) - rf) / std,
        "sortino_ratio": np.sqrt(a) * (mt.mean(r) - rf) / semi,
        "max_drawdown": mdd,
        "calmar_ratio": a * (mt.mean(r) - rf) / mdd,
    }
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-12, abs=1e-15), key


def test_zero_risk_ratios_are_nan_not_inf():
    got = return_statistics(np.zeros(10), 52)
    assert np.isnan(got["sharpe_ratio"]) and np.isnan(got["calmar_ratio"])
    assert got["max_drawdown"] == 0 and got["annualized_volatility"] == 0


@pytest.mark.parametrize("freq, factor", [("B", 252), ("W-FRI", 52), ("ME", 12),
                                          ("QE", 4), ("YE", 1)])
def test_annualization_factor_from_the_dates(freq, factor):
    assert infer_annualization_factor(pd.date_range("2020-01-01", periods=30,
                                                    freq=freq)) == factor


def _walk_forward_backtest(x, y, train, test, **kw):
    n_folds = (len(y) - train) // test
    dates = [y.index[train - 1 + k * test] for k in range(n_folds)]
    return MaxDiversificationBacktest(
        rolling=_rolling(rebalance=dates, window=train), benchmarks=("sample",),
        annualization_factor=52, drift=False, **kw).fit(x, y)


def test_returns_and_measures_equal_skfolio_multi_period_portfolio(panel):
    pytest.importorskip("skfolio")
    from skfolio.portfolio import MultiPeriodPortfolio, Portfolio

    x, y = panel
    train, test = 60, 20
    bt = _walk_forward_backtest(x, y, train, test, portfolio=MaximumDiversification(
        risk_free_rate=1e-4, management_fees=2e-4))
    for s in ("factor", "sample"):
        w = bt.weights_[s]
        portfolios = [Portfolio(X=y.iloc[train + k * test:train + (k + 1) * test],
                                weights=w.iloc[k].to_numpy(), annualization_factor=52,
                                risk_free_rate=1e-4, management_fees=2e-4)
                      for k in range(len(w))]
        mpp = MultiPeriodPortfolio(portfolios=portfolios, annualization_factor=52,
                                   risk_free_rate=1e-4)
        # Net of fees (no transaction costs here: skfolio charges those on every row).
        np.testing.assert_allclose(bt.returns_[(s, "net")], mpp.returns, rtol=0,
                                   atol=1e-15)
        st = bt.stats_.loc[(s, "net")]
        assert st.annualized_mean == pytest.approx(mpp.annualized_mean, rel=1e-12)
        assert st.annualized_volatility == pytest.approx(mpp.annualized_standard_deviation,
                                                         rel=1e-12)
        assert st.sharpe_ratio == pytest.approx(mpp.annualized_sharpe_ratio, rel=1e-12)
        assert st.sortino_ratio == pytest.approx(mpp.annualized_sortino_ratio, rel=1e-12)
        assert st.max_drawdown == pytest.approx(mpp.max_drawdown, rel=1e-12)
        assert st.calmar_ratio == pytest.approx(52 * mpp.calmar_ratio, rel=1e-12)
        # skfolio's diversification uses the net returns' volatility: fees are constant per
        # row here (fully invested), so it equals the gross one.
        np.testing.assert_allclose(bt.diversification_[(s, "realised")],
                                   [p.diversification for p in portfolios], rtol=1e-9)


def test_sample_weights_equal_skfolio_walk_forward(panel):
    pytest.importorskip("skfolio")
    from skfolio.model_selection import WalkForward, cross_val_predict
    from skfolio.optimization import MaximumDiversification as SkMaxDiv

    x, y = panel
    train, test = 60, 20
    bt = _walk_forward_backtest(x, y, train, test)
    mpp = cross_val_predict(SkMaxDiv(), y, cv=WalkForward(test_size=test, train_size=train))
    assert len(mpp.portfolios) == len(bt.rebalance_dates_)
    w = bt.weights_["sample"]
    for k, p in enumerate(mpp.portfolios):
        cov = y.iloc[k * test:train + k * test].cov()
        ours, theirs = w.iloc[k].to_numpy(), np.asarray(p.weights)
        assert _dr(ours, cov) == pytest.approx(_dr(theirs, cov), rel=1e-5)
        np.testing.assert_allclose(ours, theirs, atol=1e-4)  # skfolio's solver tolerance
        assert bt.diversification_[("sample", "ex_ante")].iloc[k] == pytest.approx(
            _dr(theirs, cov), rel=1e-5)
    np.testing.assert_allclose(bt.returns_[("sample", "gross")], mpp.returns, atol=1e-5)


# ---------------------------------------------------------------------------- validation
@pytest.mark.parametrize("kw, message", [
    ({"benchmarks": "sample"}, r"benchmarks must be a list of \['sample', 'ewma', "
                               r"'equal_weight'\], got 'sample'"),
    ({"benchmarks": ("sample", "min_var")}, r"benchmarks: unknown strategy 'min_var'"),
    ({"benchmarks": ("ewma", "ewma")}, r"benchmarks: a strategy is listed twice"),
    ({"on_failure": "skip"}, r"on_failure must be one of \['previous', 'raise'\], got 'skip'"),
    ({"ewma_span": 1}, r"ewma_span must be a number > 1, got 1"),
    ({"annualization_factor": 0}, r"annualization_factor must be a number > 0, got 0"),
    ({"drift": "yes"}, r"drift must be True or False, got 'yes'"),
    ({"rolling": LassoModel()}, r"rolling must be a RollingLassoModel, got LassoModel"),
    ({"portfolio": LassoModel()}, r"portfolio must be a MaximumDiversification, got "
                                  r"LassoModel"),
    ({"portfolio": MaximumDiversification(min_return=[0.01, 0.02])},
     r"portfolio.min_return: the backtest holds one portfolio per date; give one number"),
    ({"portfolio": MaximumDiversification(max_tracking_error=0.01)},
     r"portfolio.max_tracking_error: the backtest has no benchmark returns to track"),
])
def test_bad_parameters_are_named(panel, kw, message):
    x, y = panel
    with pytest.raises(ValueError, match=message):
        MaxDiversificationBacktest(**kw).fit(x, y)


def test_defaults_and_reexports():
    import xl_factorlasso
    import xl_factorlasso.core as core
    from xl_factorlasso.core.backtest import MaxDiversificationBacktest as direct

    assert xl_factorlasso.MaxDiversificationBacktest is direct
    assert core.MaxDiversificationBacktest is direct
    bt = MaxDiversificationBacktest()
    assert bt.get_params() == {
        "rolling": None, "portfolio": None, "benchmarks": ("sample", "ewma", "equal_weight"),
        "ewma_span": None, "on_failure": "previous", "annualization_factor": None,
        "drift": True, "compounded": False}


def test_default_span_and_annualization(panel):
    x, y = panel
    bt = MaxDiversificationBacktest(rolling=_rolling(rebalance="QE", window=60),
                                    benchmarks=("ewma",)).fit(x, y)
    assert bt.annualization_factor_ == 52 and bt.ewma_span_ == 52
    spanned = _rolling(rebalance="QE", window=60,
                       estimator=LassoModel(reg_lambda=1e-6, span=26))
    bt = MaxDiversificationBacktest(rolling=spanned, benchmarks=("ewma",)).fit(x, y)
    assert bt.ewma_span_ == 26
    # The EWMA weights equal MaximumDiversification(span=26) on the same window.
    date = bt.rebalance_dates_[-1]
    row = y.index.get_loc(date)
    ref = MaximumDiversification(span=26, previous_weights=None).fit(y.iloc[row - 59:row + 1])
    assert _dr(bt.weights_["ewma"].loc[date].to_numpy(), ref.covariance_) == pytest.approx(
        _dr(ref.weights_.to_numpy(), ref.covariance_), rel=1e-6)
