"""Carried window statistics of the rolling fit (core/rolling/_incremental.py).

The statistics of every window, carried from date to date, equal those the model prepares
from scratch on the window (to 1e-10 relative to each quantity's scale); what cannot be
carried exactly is prepared from scratch (and says why); nothing drifts and nothing depends
on the dates fitted before; the snapshots and each date's fit equal a fresh fit's.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from xl_factorlasso import LassoModel, RollingLassoModel, make_factor_panel
from xl_factorlasso.core.cluster import compute_dependence_matrix
from xl_factorlasso.core.covariance._factor_covariance import fit_factor_covariance
from xl_factorlasso.core.linear_model._lasso_model import _diagnostics, _weighted_means
from xl_factorlasso.core.linear_model._preparation import (
    SufficientStats,
    coerce_panel,
    prepare_panel,
)
from xl_factorlasso.core.rolling import _estimator
from xl_factorlasso.core.rolling._incremental import CHUNK, BlockStatistics

T, M, N = 200, 4, 9
RTOL = 1e-10


@pytest.fixture(scope="module")
def panel():
    return make_factor_panel(T, M, N, seed=11, freq="W-FRI", start="2016-01-01")


def _ragged(panel):
    """Responses that start late, end early and have gaps; means far from zero."""
    y = panel.y.copy() + 0.3
    y.iloc[:70, 1] = np.nan  # enters the windows late
    y.iloc[150:, 2] = np.nan  # leaves
    y.iloc[[20, 21, 90, 140], 3] = np.nan  # gaps
    y.iloc[100:103, 4] = np.nan
    return panel.x + 0.05, y


def _close(got, want, scale=None, rtol=RTOL):
    """``|got - want| <= rtol * scale`` elementwise, scale the largest magnitude of ``want``."""
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    assert got.shape == want.shape
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    got, want = got[~np.isnan(want)], want[~np.isnan(want)]
    if scale is None:
        scale = np.abs(want).max(initial=0.0)
    np.testing.assert_allclose(got, want, rtol=0, atol=rtol * scale + 1e-300)


def _windows(window, n_rows, every=4, first=30):
    stops = range(first, n_rows, every)
    if window == "expanding":
        return [(0, s) for s in stops]
    return [(max(0, s - window + 1), s) for s in stops]


def _check_window(model, win, x, y, start, stop):
    xw, yw = coerce_panel(x.iloc[start:stop + 1], y.iloc[start:stop + 1])
    prepared = prepare_panel(xw, yw, span=model.span, demean=bool(model.demean))
    want = SufficientStats.from_panel(prepared, model.loss_normalization)
    got = win.stats(model.loss_normalization)
    assert got.n_rows == want.n_rows == win.n_rows
    # per response: the Gram of its mask pattern, and every other statistic
    _close(got.gram[got.pattern], want.gram[want.pattern])
    _close(got.xw[got.pattern], want.xw[want.pattern],
           scale=np.sqrt(want.mass.max() * np.abs(want.gram).max()))
    _close(got.xty, want.xty)
    _close(got.yty, want.yty)
    _close(got.yw, want.yw, scale=np.sqrt(want.mass.max() * want.yty.max()))
    _close(got.mass, want.mass)
    # same patterns: two responses share a Gram in one iff they do in the other
    same = lambda p: p[:, None] == p[None, :]  # noqa: E731
    np.testing.assert_array_equal(same(got.pattern), same(want.pattern))
    np.testing.assert_array_equal(got.zero_cells(), want.zero_cells())
    # what _install and the snapshot read
    np.testing.assert_array_equal(win.n_obs, np.isfinite(yw.to_numpy()).sum(axis=0))
    x_means, y_means = _weighted_means(xw, yw, model.span)
    got_x, got_y = win.weighted_means()
    np.testing.assert_array_equal(np.isnan(got_y), np.isnan(y_means))
    _close(np.nan_to_num(got_x), np.nan_to_num(x_means))
    _close(np.nan_to_num(got_y), np.nan_to_num(y_means))
    _close(win.factor_covariance(), fit_factor_covariance(xw, model.span, bool(model.demean)))
    return got, want


CASES = {
    "plain": dict(),
    "no_demean": dict(demean=False),
    "span": dict(span=26),
    "span_no_demean": dict(span=26, demean=False),
    "weight_sum": dict(loss_normalization="weight_sum"),
    "span_weight_sum": dict(span=26, loss_normalization="weight_sum"),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("window", ["expanding", 60])
@pytest.mark.parametrize("ragged", [False, True], ids=["complete", "ragged"])
def test_carried_statistics_equal_the_windows_own(panel, case, window, ragged):
    model = LassoModel(**CASES[case])
    x, y = _ragged(panel) if ragged else (panel.x, panel.y)
    jobs = _windows(window, T)
    block = BlockStatistics(model, x, y, [s for s, _ in jobs])
    if model.span is not None and model.demean and window != "expanding":
        # the causal EWMA mean restarts at every window's first row: never carried
        assert "restarts at every window's first row" in block.reason
        assert all(block.window(s, e) is None for s, e in jobs)
        return
    assert block.reason is None
    for start, stop in jobs:
        win = block.window(start, stop)
        if win is None:
            # only a response seen once in the window: demeaned to exactly zero, from scratch
            counts = y.iloc[start:stop + 1].notna().sum()
            assert model.demean and "constant" in block.last_reason and (counts == 1).any()
            continue
        _check_window(model, win, x, y, start, stop)


@pytest.mark.parametrize("window", ["expanding", 50])
def test_clustering_correlation_from_the_sums(panel, window):
    model = LassoModel(model_type="HCGL")
    params = model._checked_params()
    jobs = _windows(window, T, every=7)
    block = BlockStatistics(model, panel.x, panel.y, [s for s, _ in jobs])
    for start, stop in jobs:
        win = block.window(start, stop)
        got = win.dependence(params)
        xw, yw = coerce_panel(panel.x.iloc[start:stop + 1], panel.y.iloc[start:stop + 1])
        prepared = prepare_panel(xw, yw, span=None, demean=True)
        want = compute_dependence_matrix(np.where(prepared.mask, prepared.y, np.nan))
        _close(got, want, scale=1.0)
    # with a gap in the window the clustering reads the panel (pairwise-complete)
    x, y = _ragged(panel)
    block = BlockStatistics(model, x, y, [0])
    assert block.window(0, 120).dependence(params) is None
    # another measure or a span: not from the sums
    for other in (LassoModel(model_type="HCGL", dependence_measure="spearman"),
                  LassoModel(model_type="HCGL", span=26)):
        block = BlockStatistics(other, panel.x, panel.y, [0])
        assert block.window(0, 120).dependence(other._checked_params()) is None


def test_options_that_read_the_panel_are_prepared_from_scratch(panel):
    x, y = panel.x, panel.y
    for model, why in ((LassoModel(model_type="UNILASSO"), "UNILASSO"),
                       (LassoModel(auto_sign_constraints=True), "derived signs"),
                       (LassoModel(span=26), "restarts at every window's first row")):
        block = BlockStatistics(model, x, y, [0, 10])
        assert why in block.reason
        assert block.window(10, 100) is None and block.last_reason == block.reason


def test_a_window_holding_a_missing_factor_value_is_prepared_from_scratch(panel):
    x = panel.x.copy()
    x.iloc[100, 2] = np.nan
    model = LassoModel()
    block = BlockStatistics(model, x, panel.y, [0])
    assert block.window(0, 99) is not None
    assert block.window(0, 100) is None and "missing" in block.last_reason
    # a fixed window is carried again once the row has left it
    block = BlockStatistics(model, x, panel.y, [50, 95, 101])
    assert block.window(50, 99) is not None
    assert block.window(95, 140) is None
    win = block.window(101, 150)
    assert win is not None
    _check_window(model, win, x, panel.y, 101, 150)


def test_a_constant_column_in_the_window_is_prepared_from_scratch(panel):
    y = panel.y.copy()
    y.iloc[40:120, 5] = 0.25  # constant over [40, 119]: demeaned to round-off there
    model = LassoModel()
    block = BlockStatistics(model, panel.x, y, [40, 60, 100])
    assert block.window(40, 119) is None and "constant" in block.last_reason
    assert block.window(60, 110) is None
    win = block.window(100, 180)  # varies again
    _check_window(model, win, panel.x, y, 100, 180)
    # without demeaning nothing is zeroed: carried
    block = BlockStatistics(LassoModel(demean=False), panel.x, y, [40])
    _check_window(LassoModel(demean=False), block.window(40, 119), panel.x, y, 40, 119)


def test_a_demeaning_that_cancels_is_prepared_from_scratch(panel):
    y = panel.y.copy()
    y.iloc[:, 0] = 1e6 + y.iloc[:, 0]  # mean / spread ~ 1e6: sum y^2 - n ybar^2 cancels
    block = BlockStatistics(LassoModel(), panel.x, y, [0])
    assert block.window(0, 150) is None and "cancels" in block.last_reason
    # the rolling fit still equals fresh fits there (it prepared them from scratch)
    base = LassoModel(reg_lambda=1e-4)
    roll = RollingLassoModel(base, rebalance="QE", min_history=60, warm_start=False).fit(
        panel.x, y)
    date = roll.results_.dates[-1]
    stop = panel.x.index.get_loc(date) + 1
    fresh = LassoModel(reg_lambda=1e-4).fit(panel.x.iloc[:stop], y.iloc[:stop])
    pd.testing.assert_frame_equal(roll.results_[date].y_betas, fresh.coef_, check_exact=True)


def test_data_that_do_not_coerce_end_the_carried_rows_at_the_bad_row(panel):
    y = panel.y.copy().astype(object)
    y.iloc[120, 0] = "n/a"
    block = BlockStatistics(LassoModel(), panel.x, y, [0])
    assert block.reason is None and block.n_carried == 120
    win = block.window(0, 119)
    _check_window(LassoModel(), win, panel.x, y.iloc[:120].astype(float), 0, 119)
    assert block.window(0, 120) is None and "coerce" in block.last_reason
    # and the rolling fit: dates before the bad row fitted, later ones fail naming it
    roll = RollingLassoModel(LassoModel(reg_lambda=1e-4), rebalance="QE", min_history=60,
                             on_failure="skip").fit(panel.x, y)
    bad_date = panel.x.index[120]
    assert all(d < bad_date for d in roll.results_.dates)
    bad = roll.failures_[roll.failures_["reason"].str.contains("'n/a' is not a number")]
    later = [d for d in roll.dates_ if d >= bad_date]
    assert list(bad["date"]) == later and len(later) >= 2


def test_nothing_is_subtracted_so_a_window_does_not_depend_on_earlier_dates(panel):
    """The sums of a window are the same bits whether earlier dates were carried before it
    or it is the first date (a parallel block's first date): no drift to reset."""
    x, y = _ragged(panel)
    model = LassoModel(span=26, demean=False)
    jobs = _windows(70, T, every=3)
    carried = BlockStatistics(model, x, y, [s for s, _ in jobs])
    for i, (start, stop) in enumerate(jobs):
        got = carried.window(start, stop).stats()
        alone = BlockStatistics(model, x, y, [start]).window(start, stop).stats()
        for name in ("gram", "xty", "yty", "xw", "yw", "mass"):
            np.testing.assert_array_equal(getattr(got, name), getattr(alone, name))
        if i == len(jobs) - 1:
            _check_window(model, carried.window(start, stop), x, y, start, stop)
    # every chunk of rows was summed once over all the dates
    assert carried.raw.chunks_summed == len({k for s, e in jobs
                                             for k in range(-(-s // CHUNK), (e + 1) // CHUNK)})
    # a block that starts at another absolute row (offset) sums the same chunks
    offset = 37
    shifted = BlockStatistics(model, x.iloc[offset:], y.iloc[offset:], [100 - offset], offset)
    a = shifted.window(100 - offset, 180 - offset).stats()
    b = BlockStatistics(model, x, y, [100]).window(100, 180).stats()
    np.testing.assert_array_equal(a.xty, b.xty)


@pytest.mark.filterwarnings("ignore:(rebalancing date.* )?1 of 9 responses have fewer than warmup")
def test_snapshot_quantities_equal_the_from_scratch_snapshot(panel):
    """x_covar from the carried sums, and ewma_var / residual_var / r2 / insample_alpha of the
    same coefficients, equal the from-scratch snapshot's."""
    x, y = _ragged(panel)
    model = LassoModel(span=52, reg_lambda=1e-4)
    block = BlockStatistics(model, x, y, [0])
    for stop in (60, 121, 199):
        win = block.window(0, stop)
        xw, yw = x.iloc[:stop + 1], y.iloc[:stop + 1]
        got = LassoModel(**model.get_params())
        got._fit_prepared(got._setup(xw, yw, window=win))
        want = LassoModel(**model.get_params()).fit(xw, yw)
        coef = got.coef_.to_numpy()
        # the diagnostics at the same coefficients, from either statistics
        d_got = _diagnostics(win.stats(), coef)
        d_want = _diagnostics(want._fit_setup_.stats, coef)
        for key in ("ss_total", "ss_res", "r2"):
            _close(d_got[key], d_want[key])
        np.testing.assert_allclose(got.coef_, want.coef_, rtol=0, atol=1e-8)
        _close(win.factor_covariance(), fit_factor_covariance(xw, 52, True))
        np.testing.assert_allclose(got.alpha_const_, want.alpha_const_, rtol=0, atol=1e-9)
        np.testing.assert_array_equal(got.n_obs_, want.n_obs_)


# ------------------------------------------------------------------ fits equal fresh fits
def _configs(panel):
    lam = 0.05 * LassoModel().lambda_max(panel.x, panel.y)
    groups = pd.Series([i % 3 for i in range(N)], index=panel.y.columns)
    return {
        "lasso_span": LassoModel(reg_lambda=lam, span=26, demean=False),
        "lasso_signs_prior": LassoModel(reg_lambda=lam, factors_beta_loading_signs=panel.signs,
                                        factors_beta_prior=panel.prior),
        "hcgl": LassoModel(model_type="HCGL", reg_lambda=lam, l1_weight=0.1),
        "hcgl_span": LassoModel(model_type="HCGL", reg_lambda=lam, l1_weight=0.1, span=52),
        "group": LassoModel(model_type="GROUP_LASSO", reg_lambda=lam, group_data=groups),
        "fcgl": LassoModel(model_type="FCGL", reg_lambda=lam, n_clusters=3,
                           loss_normalization="weight_sum"),
    }


@pytest.mark.filterwarnings("ignore:(rebalancing date.* )?1 of 9 responses have fewer than warmup")
@pytest.mark.parametrize("config", ["lasso_span", "lasso_signs_prior", "hcgl", "hcgl_span",
                                    "group", "fcgl"])
@pytest.mark.parametrize("window", ["expanding", 80])
def test_each_carried_date_equals_a_fresh_fit(panel, monkeypatch, config, window):
    base = _configs(panel)[config]
    x, y = _ragged(panel)
    carried = []
    original = _estimator._fit_date

    def spy(*args, **kwargs):
        carried.append(args[-1] is not None if len(args) > 6 else kwargs.get("window")
                       is not None)
        return original(*args, **kwargs)

    monkeypatch.setattr(_estimator, "_fit_date", spy)
    roll = RollingLassoModel(base, rebalance="QE", window=window, min_history=60,
                             warm_start=False).fit(x, y)
    expected_carried = not (base.span is not None and base.demean and window != "expanding")
    assert carried and all(c == expected_carried for c in carried)
    assert (roll.fit_info_["duality_gap"] <= 1e-8).all()
    index = x.index
    for date in roll.results_.dates:
        stop = index.get_loc(date) + 1
        start = 0 if window == "expanding" else max(0, stop - window)
        xw, yw = x.iloc[start:stop], y.iloc[start:stop]
        fresh = LassoModel(**base.get_params()).fit(xw, yw)
        snap = roll.results_[date]
        np.testing.assert_allclose(snap.y_betas, fresh.coef_, rtol=0, atol=1e-8)
        _close(snap.x_covar, fit_factor_covariance(xw, base.span, bool(base.demean)))
        if fresh.clusters_ is not None:  # same partition (labels renumbered stably)
            a = snap.clusters.reindex(fresh.clusters_.index)
            pairs = pd.crosstab(a, fresh.clusters_)
            assert ((pairs > 0).sum(axis=1) == 1).all() and ((pairs > 0).sum(axis=0) == 1).all()
        for col, attr in (("residual_var", "residual_variance_"), ("r2", "r2_"),
                          ("ewma_var", "total_variance_")):
            np.testing.assert_allclose(snap.y_variances[col], getattr(fresh, attr),
                                       rtol=1e-6, atol=1e-12)


# ------------------------------------------------------------------ per-block shortcuts
def test_block_level_sign_and_prior_matrices_read_the_same_numbers(panel):
    """The block reads the sign/prior matrices once; every date then takes the aligned copy
    through the fast path of _cell_matrix, which gives the same array (and refusal)."""
    rows, cols = panel.y.columns, panel.x.columns
    shuffled = panel.signs.iloc[::-1, ::-1].astype(object)  # other order, object cells
    slow = LassoModel._cell_matrix(shuffled, "factors_beta_loading_signs", rows, cols)
    aligned = pd.DataFrame(slow, index=rows, columns=cols)
    fast = LassoModel._cell_matrix(aligned, "factors_beta_loading_signs", rows, cols)
    np.testing.assert_array_equal(fast, slow)
    bad = aligned.copy()
    bad.iloc[2, 1] = np.inf
    with pytest.raises(ValueError, match=r"factors_beta_prior\['y2', 'f1'\] is infinite"):
        LassoModel._cell_matrix(bad, "factors_beta_prior", rows, cols)
    # a matrix the model refuses is left as given: every date reports it
    prior = panel.prior.astype(object)
    prior.iloc[0, 0] = "high"
    base = LassoModel(factors_beta_prior=prior)
    block = BlockStatistics(base, panel.x, panel.y, [0])
    assert _estimator._aligned_cells(base, block) is base
    roll = RollingLassoModel(base, rebalance="QE", min_history=60, on_failure="skip").fit(
        panel.x, panel.y)
    assert len(roll.results_) == 0
    assert roll.failures_["reason"].str.contains("'high' is not a number").sum() >= 3



def test_block_reads_signs_and_prior_once_each_date_its_own_arrays(panel, monkeypatch):
    """The block checks the sign and prior matrices once (BlockStatistics.once); every date's
    setup has the arrays a fresh setup reads, in arrays of its own, and a refused matrix is
    refused at every date."""
    lam = 0.05 * LassoModel().lambda_max(panel.x, panel.y)
    base = LassoModel(reg_lambda=lam, factors_beta_loading_signs=panel.signs,
                      factors_beta_prior=panel.prior)
    block = BlockStatistics(base, panel.x, panel.y, [0])
    model = _estimator._aligned_cells(base, block)
    calls = []
    original = LassoModel._signs_and_prior

    def counted(self, *args):
        calls.append(self)
        return original(self, *args)

    monkeypatch.setattr(LassoModel, "_signs_and_prior", counted)
    setups = []
    for stop in (79, 99, 119, 139):
        xw, yw = panel.x.iloc[:stop + 1], panel.y.iloc[:stop + 1]
        got = model._setup(xw, yw, window=block.window(0, stop))
        want = LassoModel(**base.get_params())._setup(xw, yw)
        np.testing.assert_array_equal(got.spec.signs, want.spec.signs)
        np.testing.assert_array_equal(got.spec.prior, want.spec.prior)
        assert got.lambda_max == pytest.approx(want.lambda_max, rel=RTOL)  # (carried stats)
        setups.append(got)
        for got_bound, want_bound in zip(got.spec.lower_upper(), want.spec.lower_upper(),
                                         strict=True):
            np.testing.assert_array_equal(got_bound, want_bound)
    assert sum(c is model for c in calls) == 1  # once for the block's four dates
    # one spec for the block's dates (read-only: shared), each fitted model its own signs
    assert all(s.spec is setups[0].spec for s in setups)
    assert not setups[0].spec.signs.flags.writeable
    roll = RollingLassoModel(base, rebalance="QE", min_history=60).fit(panel.x, panel.y)
    snaps = [roll.results_[d] for d in roll.results_.dates]
    assert len(snaps) >= 3
    for a, b in zip(snaps[:-1], snaps[1:], strict=True):
        assert not np.shares_memory(a.derived_signs.to_numpy(), b.derived_signs.to_numpy())
        np.testing.assert_array_equal(a.derived_signs, panel.signs)
    snaps[0].derived_signs.iloc[0, 0] = 7.0  # its own, writable
    assert snaps[1].derived_signs.iloc[0, 0] != 7.0
    # a prior that contradicts its signs: every date reports it
    prior = panel.prior.copy()
    signs = panel.signs.copy()
    signs.iloc[0, 0], prior.iloc[0, 0] = 1.0, -0.5
    bad = LassoModel(reg_lambda=lam, factors_beta_loading_signs=signs, factors_beta_prior=prior)
    roll = RollingLassoModel(bad, rebalance="QE", min_history=60, on_failure="skip").fit(
        panel.x, panel.y)
    fitted = ~roll.failures_["reason"].str.startswith("too little history")
    assert len(roll.results_) == 0 and fitted.sum() >= 3
    assert roll.failures_["reason"][fitted].str.contains("contradicts its sign constraint").all()


def _bisection_100_rounds(values, cell_w, weight, a):
    """The smallest lambda with ||max(v - a lambda c, 0)|| <= (1 - a) lambda w, by 100 rounds
    of bisection (the reference the early stop must reproduce bit for bit)."""
    top = (values / cell_w).max(axis=1, initial=0.0)
    lo, hi = np.zeros_like(top), top / a
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        ok = (np.linalg.norm(np.maximum(values - a * mid[:, None] * cell_w, 0.0), axis=1)
              <= (1.0 - a) * mid * weight)
        lo, hi = np.where(ok, lo, mid), np.where(ok, mid, hi)
    return hi


def test_lambda_max_bisection_stops_early_with_the_same_bits():
    from xl_factorlasso.core.linear_model._lambda_max import _group_roots

    rng = np.random.default_rng(5)
    for _ in range(200):
        r, c = rng.integers(1, 30), rng.integers(1, 15)
        values = np.abs(rng.normal(size=(r, c))) * 10.0 ** rng.uniform(-8, 3)
        values[rng.random((r, c)) < 0.3] = 0.0
        cell_w = rng.uniform(0.1, 3.0, size=(r, c))
        weight = rng.uniform(0.1, 3.0, size=r)
        a = float(rng.choice([0.01, 0.1, 0.5, 0.9, 0.999]))
        np.testing.assert_array_equal(_group_roots(values, cell_w, weight, a),
                                      _bisection_100_rounds(values, cell_w, weight, a))


def test_sums_finite_is_the_cellwise_test():
    """_Sums.finite's shortcut (a finite total) gives the cell-wise answer, also where the
    total of finite cells overflows."""
    from xl_factorlasso.core.rolling._incremental import _Sums

    sums = _Sums(np.zeros((3, 2)), np.zeros((3, 2)), np.ones((3, 2), dtype=bool), 1.0, False)
    sums.move_to(0, 3)
    assert sums.finite()
    big = np.full((4, 2), 1e308)  # finite cells whose total overflows
    for value, want in ((big, True), (np.array([[1.0, np.inf]]), False),
                        (np.array([[np.nan, 1.0]]), False),
                        (np.array([[np.inf, -np.inf]]), False)):
        sums.c = value
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # (no overflow warning either)
            assert sums.finite() is want
