"""MaximumDiversification(warm_start=True): the dense pivoting of the next fit starts from the
previous fit's weights. Only the time may change: every answer is compared with a cold fit on
the same data (the dense path from its cold start, or CVXPY with the dense path off)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.test_maxdiv_dense import factor_returns, make_returns
from xl_factorlasso import (
    LassoModel,
    MaxDiversificationBacktest,
    MaximumDiversification,
    RollingLassoModel,
    make_factor_panel,
)
from xl_factorlasso.core.covariance import FactorCovariance
from xl_factorlasso.core.optimization import _dense


def dr(w, cov):
    cov = np.asarray(cov, dtype=float)
    return float(w @ np.sqrt(np.diag(cov)) / np.sqrt(w @ cov @ w))


def cold_dense_off(X, monkeypatch, **params):
    """CVXPY's answer (the dense path switched off)."""
    with monkeypatch.context() as patch:
        patch.setattr(_dense, "dense_eligible", lambda spec, save_problem=False: False)
        return MaximumDiversification(**params).fit(X)


@pytest.mark.parametrize("span", [None, 150], ids=["sample", "ewma"])
def test_warm_fits_equal_cold_fits_on_moving_windows(span, monkeypatch):
    """Eight windows moving by 5 rows: each warm fit equals the cold fit of its window, and from
    the second on the pivoting started from the previous weights. With an EWMA covariance
    (span 150 on 150 rows for 100 assets: an effective sample of 114 rows, condition number
    about 4e3 times the sample's) the warm answers are checked against CVXPY's."""
    X = make_returns(100, 190, 3, dense=True)
    warm = MaximumDiversification(span=span, warm_start=True)
    started = 0
    for k in range(8):
        block = X.iloc[5 * k:5 * k + 150]
        warm.fit(block)
        cold = MaximumDiversification(span=span).fit(block)
        cov = warm.covariance_.to_numpy() if hasattr(warm.covariance_, "to_numpy") else \
            np.asarray(warm.covariance_)
        assert warm.solve_.path == "dense"
        assert warm.solve_.relative_gap <= _dense.GAP_TOLERANCE
        started += warm.solve_.warm_start
        if k == 0:
            assert not warm.solve_.warm_start  # nothing to start from
        w = warm.weights_.to_numpy()
        if cold.solve_.path == "dense":
            np.testing.assert_allclose(w, cold.weights_.to_numpy(), atol=1e-9, rtol=0)
        reference = cold_dense_off(block, monkeypatch, span=span)
        # certified, so never below CVXPY; on this covariance (condition number ~2e11) CVXPY's
        # answers sit up to 1.4e-6 below the certified ones
        value, value_ref = dr(w, cov), dr(reference.weights_.to_numpy(), cov)
        assert value >= value_ref * (1 - _dense.GAP_TOLERANCE)
        assert value == pytest.approx(value_ref, rel=5e-6)
        # (a flat optimum: CVXPY's weights move more than its ratio)
        np.testing.assert_allclose(w, reference.weights_.to_numpy(), atol=1e-4, rtol=0)
    assert started == 7


def test_warm_start_needs_the_same_assets_in_the_same_order():
    X = make_returns(40, 200, 1, dense=True)
    model = MaximumDiversification(warm_start=True).fit(X)
    for other in (X[X.columns[::-1]], X.iloc[:, :30]):
        model.fit(other)
        assert model.solve_.path == "dense" and not model.solve_.warm_start
        np.testing.assert_allclose(model.weights_.to_numpy(),
                                   MaximumDiversification().fit(other).weights_.to_numpy(),
                                   atol=1e-12, rtol=0)
    model.fit(X.iloc[:, :30])  # the same 30 again: warm
    assert model.solve_.warm_start


def test_warm_start_is_off_by_default():
    X = make_returns(40, 200, 2, dense=True)
    model = MaximumDiversification().fit(X)
    model.fit(X.iloc[5:])
    assert not model.solve_.warm_start


@pytest.mark.parametrize("groups, path", [(False, "dense"), (True, "dense"), (True, "factor")])
def test_warm_fits_with_transaction_costs_equal_cold_fits(groups, path, monkeypatch):
    """Ten rebalances of a backtest's shape: each date's previous holdings are the last
    weights drifted by five rows of returns. The warm fit starts the costs' pivoting from the
    last weights (holding what they held) instead of the cost-free optimum; its weights equal
    the cold fit's and CVXPY's, and many of them sit at the kink (held), which the costs make.
    The factor path gets each window's OLS factor covariance."""
    if path == "dense":
        X = make_returns(100, 210, 3, dense=True)
    else:
        X, factors = factor_returns(100, 210, 3)
    n = X.shape[1]
    params = dict(transaction_costs=0.002, max_weights=0.05)
    if groups:
        sectors = [f"s{j % 4}" for j in range(n)]
        params.update(groups=pd.DataFrame([sectors], columns=X.columns, index=["sector"]),
                      linear_constraints=["s0 <= 0.2", "s1 >= 0.3"])
    previous = pd.Series(1.0 / n, index=X.columns)
    warm = MaximumDiversification(warm_start=True, **params)
    started = held = 0
    for k in range(10):
        block = X.iloc[5 * k:5 * k + 150]
        if path == "factor":
            params["covariance"] = FactorCovariance.from_ols(block,
                                                             factors.iloc[5 * k:5 * k + 150])
            warm.set_params(covariance=params["covariance"])
        warm.set_params(previous_weights=previous)
        warm.fit(block)
        cold = MaximumDiversification(previous_weights=previous, **params).fit(block)
        w = warm.weights_.to_numpy()
        assert warm.solve_.path == path and cold.solve_.path == path
        assert warm.solve_.relative_gap <= _dense.GAP_TOLERANCE
        started += warm.solve_.warm_start
        np.testing.assert_allclose(w, cold.weights_.to_numpy(), atol=1e-9, rtol=0)
        held += int(np.sum(np.abs(w - previous.to_numpy()) <= 1e-12))
        if k in (1, 9):
            reference = cold_dense_off(block, monkeypatch, previous_weights=previous, **params)
            np.testing.assert_allclose(w, reference.weights_.to_numpy(), atol=2e-5, rtol=0)
        growth = np.prod(1.0 + X.iloc[5 * k + 150:5 * k + 155].to_numpy(), axis=0)
        drifted = w * growth
        previous = pd.Series(drifted / drifted.sum(), index=X.columns)
    assert started == 9 and held >= 100


def test_warm_start_must_be_a_bool():
    X = make_returns(5, 50, 0, dense=True)
    with pytest.raises(ValueError, match="warm_start must be a bool, got 'yes'"):
        MaximumDiversification(warm_start="yes").fit(X)


def test_warm_state_puts_weights_at_their_bounds_on_them():
    X = make_returns(6, 100, 4, dense=True)
    model = MaximumDiversification(min_weights=0.0, max_weights=0.3).fit(X)
    weights = pd.Series([0.0, 0.3, 0.2, 0.35, -0.01, 0.16], index=X.columns)
    start = _dense.warm_state(model._spec, weights)
    np.testing.assert_array_equal(
        start.state, [_dense.LOW, _dense.UP, _dense.FREE, _dense.UP, _dense.LOW, _dense.FREE])
    np.testing.assert_array_equal(start.weights, weights.to_numpy())
    assert not start.held.any()  # no costs: nothing held
    holdings = np.array([0.1, 0.3, 0.2, 0.2, 0.1, 0.16])
    np.testing.assert_array_equal(_dense.warm_state(model._spec, weights, holdings).held,
                                  [False, True, True, False, False, True])
    assert _dense.warm_state(model._spec, weights.iloc[::-1]) is None  # another order
    assert _dense.warm_state(model._spec, weights.iloc[:5]) is None
    assert _dense.warm_state(model._spec, weights.where(weights > 0)) is None  # NaN
    assert _dense.warm_state(model._spec, None) is None


def test_backtest_dates_start_from_the_previous_weights(monkeypatch):
    """The backtest's sample and EWMA optimisers start each date (after their first) from the
    previous date's weights, and their weights are those of a cold fit of the same window."""
    panel = make_factor_panel(150, 3, 12, seed=7, freq="W-FRI", start="2015-01-02")
    x, y = panel.x * 0.01, panel.y * 0.01
    starts = []
    solve = _dense.solve_dense

    def recording(spec, X=None, start=None):
        starts.append(start is not None)
        return solve(spec, X, start)

    monkeypatch.setattr(_dense, "solve_dense", recording)
    window = 60
    bt = MaxDiversificationBacktest(
        rolling=RollingLassoModel(LassoModel(reg_lambda=1e-6), rebalance="ME", window=window),
        benchmarks=("sample", "ewma")).fit(x, y)
    dates = bt.weights_["sample"].dropna(how="all").index
    assert len(dates) >= 6
    assert sum(starts) >= 2 * (len(dates) - 1)  # each strategy's later dates
    monkeypatch.setattr(_dense, "solve_dense", solve)
    for strategy, span in (("sample", None), ("ewma", bt.ewma_span_)):
        for date in dates:
            end = y.index.get_loc(date)
            block = y.iloc[end - window + 1:end + 1]
            cold = MaximumDiversification(span=span).fit(block)
            np.testing.assert_allclose(bt.weights_[strategy].loc[date].to_numpy(),
                                       cold.weights_.to_numpy(), atol=1e-9, rtol=0)
