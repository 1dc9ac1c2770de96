"""RollingLassoModel: dates, windows, no look-ahead, failures, warm starts, stable labels, and
the factorlasso-named containers (RollingFactorCovarData / CurrentFactorCovarData)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from rolling_helpers import changed_after

from xl_factorlasso import (
    CurrentFactorCovarData,
    LassoModel,
    RollingFactorCovarData,
    RollingLassoModel,
    SolveError,
    assemble_factor_covariance,
    make_factor_panel,
    stable_cluster_labels,
)
from xl_factorlasso.core.rolling import rebalance_positions

T, M, N = 260, 5, 12


@pytest.fixture(scope="module")
def panel():
    return make_factor_panel(T, M, N, seed=3, freq="W-FRI", start="2015-01-02")


def _lam(panel, frac=0.05):
    return frac * LassoModel().lambda_max(panel.x, panel.y)


def _configs(panel):
    lam = _lam(panel)
    return {
        "lasso_signs_prior": LassoModel(reg_lambda=lam, factors_beta_loading_signs=panel.signs,
                                        factors_beta_prior=panel.prior),
        "hcgl_l1": LassoModel(model_type="HCGL", reg_lambda=lam, l1_weight=0.1, span=52),
        "auto_ols": LassoModel(reg_lambda=lam, auto_sign_constraints=True,
                               apply_ols_prior=True),
    }


def _same_snapshot(a: CurrentFactorCovarData, b: CurrentFactorCovarData, atol=0.0):
    for name in ("x_covar", "y_betas", "y_variances"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name), check_exact=atol == 0,
                                      atol=atol, rtol=0)
    assert a.estimation_date == b.estimation_date


# ---------------------------------------------------------------------------- dates
def test_frequency_dates_are_the_last_row_of_each_period(panel):
    index = panel.x.index[3:-2]  # starts and ends inside a month
    got = [p.position for p in rebalance_positions(index, "ME")]
    months = index.to_period("M")
    expected = [int(np.flatnonzero(months == m)[-1]) for m in months.unique()]
    assert got == expected
    assert got[-1] == len(index) - 1  # the incomplete last month counts, at its last row
    quarters = [p.position for p in rebalance_positions(index, "QE")]
    q = index.to_period("Q")
    assert quarters == [int(np.flatnonzero(q == k)[-1]) for k in q.unique()]


def test_explicit_dates_map_to_the_last_row_at_or_before(panel):
    index = panel.x.index  # Fridays
    wed = index[10] - pd.Timedelta(days=2)
    sat = index[9] + pd.Timedelta(days=1)
    got = rebalance_positions(index, [index[20], wed, "2000-01-31", sat])
    # sorted; the date before the data has no row; the Saturday and the Wednesday after it
    # both map to row 9: the first is kept
    assert [(g.requested, g.position) for g in got] == [
        (pd.Timestamp("2000-01-31"), None), (sat, 9), (index[20], 20)]


@pytest.mark.parametrize("bad, message", [
    ("MONTHLY", "rebalance: 'MONTHLY' is not a pandas frequency"),
    ([], "rebalance: the list of dates is empty"),
    (["2020-01-01", "not a date"], "rebalance: not a list of dates"),
])
def test_bad_rebalance_is_named(panel, bad, message):
    with pytest.raises(ValueError, match=message):
        RollingLassoModel(rebalance=bad).fit(panel.x, panel.y)


@pytest.mark.parametrize("params, message", [
    ({"window": 0}, "window must be 'expanding' or a whole number of rows >= 1, got 0"),
    ({"window": "rolling"}, "window must be 'expanding'"),
    ({"min_history": 0}, "min_history must be a whole number of rows >= 1, got 0"),
    ({"on_failure": "ignore"}, r"on_failure must be one of \['previous', 'skip', 'raise'\]"),
    ({"warm_start": "yes"}, "warm_start must be True or False"),
    ({"annualization_factor": 0}, "annualization_factor must be a number > 0"),
    ({"estimator": "lasso"}, "estimator must be a LassoModel, got str"),
    ({"estimator": LassoModel(reg_lambda=-1.0)}, "reg_lambda must be >= 0"),
])
def test_bad_parameters_are_named_before_any_fit(panel, params, message):
    model = RollingLassoModel(**params)
    with pytest.raises(ValueError, match=message):
        model.fit(panel.x, panel.y)
    assert not hasattr(model, "results_")


def test_bad_data_is_named(panel):
    with pytest.raises(ValueError, match="x must be a pandas DataFrame indexed by date"):
        RollingLassoModel().fit(panel.x.to_numpy(), panel.y)
    with pytest.raises(ValueError, match="x: the index must be dates"):
        RollingLassoModel().fit(panel.x.reset_index(drop=True), panel.y.reset_index(drop=True))
    shuffled = panel.x.iloc[[1, 0, *range(2, T)]]
    with pytest.raises(ValueError, match="x: dates must be strictly increasing; row 1"):
        RollingLassoModel().fit(shuffled, panel.y.loc[shuffled.index])
    with pytest.raises(ValueError, match="y: row 0 is dated"):
        RollingLassoModel().fit(panel.x, panel.y.shift(1, freq="D"))


# ---------------------------------------------------------------------------- correctness
@pytest.mark.parametrize("config", ["lasso_signs_prior", "hcgl_l1", "auto_ols"])
def test_no_look_ahead(panel, config):
    """Changing every row after d, and adding rows, leaves every result at or before d as it
    was, bit for bit (warm starts included)."""
    base = _configs(panel)[config]
    roll = RollingLassoModel(base, rebalance="QE", min_history=40)
    first = roll.fit(panel.x, panel.y).results_
    d = first.dates[-3]
    x2, y2 = changed_after(panel.x, panel.y, d)
    second = RollingLassoModel(base, rebalance="QE", min_history=40).fit(x2, y2)
    later = second.results_
    assert len(later) > len(first)
    before = [t for t in first.dates if t <= d]
    assert [t for t in later.dates if t <= d] == before and len(before) >= 5
    for t in before:
        _same_snapshot(first[t], later[t])
        if first[t].clusters is not None:
            pd.testing.assert_series_equal(first[t].clusters, later[t].clusters)
    # and the results after d did change
    assert not np.allclose(first[first.dates[-1]].y_betas, later[first.dates[-2]].y_betas)


@pytest.mark.parametrize("config", ["lasso_signs_prior", "hcgl_l1", "auto_ols"])
@pytest.mark.parametrize("window", ["expanding", 120])
def test_each_date_equals_a_fresh_fit_on_its_window(panel, config, window):
    base = _configs(panel)[config]
    cold = RollingLassoModel(base, rebalance="QE", window=window, min_history=60,
                             warm_start=False).fit(panel.x, panel.y)
    warm = RollingLassoModel(base, rebalance="QE", window=window, min_history=60).fit(
        panel.x, panel.y)
    assert len(cold.results_) >= 10
    assert (warm.fit_info_["duality_gap"] <= 1e-8).all()
    index = panel.x.index
    for date in cold.results_.dates:
        stop = index.get_loc(date) + 1
        start = 0 if window == "expanding" else max(0, stop - window)
        info = cold.fit_info_.loc[date]
        assert (info["first_row"], info["n_rows"]) == (index[start], stop - start)
        xw, yw = panel.x.iloc[start:stop], panel.y.iloc[start:stop]
        fresh = LassoModel(**base.get_params()).fit(xw, yw)
        snap = cold.results_[date]
        # a cold rolling fit is the fresh fit's computation on statistics carried from the
        # previous date (equal to the window's to round-off): the same certified optimum
        pd.testing.assert_frame_equal(snap.y_betas, fresh.coef_, check_exact=False,
                                      rtol=0, atol=1e-8)
        pd.testing.assert_frame_equal(
            snap.x_covar, assemble_factor_covariance(fresh, xw).factor_covariance,
            check_exact=False, rtol=1e-10, atol=0)
        np.testing.assert_allclose(snap.y_variances["residual_var"],
                                   fresh.residual_variance_, rtol=1e-6)
        np.testing.assert_allclose(snap.y_variances["r2"], fresh.r2_, rtol=0, atol=1e-6)
        # the warm start reaches the same certified optimum
        np.testing.assert_allclose(warm.results_[date].y_betas, fresh.coef_, rtol=0, atol=1e-8)
    if window != "expanding":
        assert cold.fit_info_["n_rows"].iloc[-1] == window


def test_expanding_and_integer_windows_differ_only_once_the_window_is_full(panel):
    base = _configs(panel)["lasso_signs_prior"]
    dates = list(panel.x.index[[59, 99, 159, 259]])
    exp = RollingLassoModel(base, rebalance=dates).fit(panel.x, panel.y).results_
    win = RollingLassoModel(base, rebalance=dates, window=100, min_history=60).fit(
        panel.x, panel.y).results_
    # rows 0..59 and 0..99: the 100-row window holds the whole history
    for d in dates[:2]:
        _same_snapshot(exp[d], win[d])
    for d in dates[2:]:
        assert np.abs(exp[d].y_betas.to_numpy() - win[d].y_betas.to_numpy()).max() > 1e-3


def test_annualization_scales_variances_not_loadings(panel):
    base = _configs(panel)["lasso_signs_prior"]
    one = RollingLassoModel(base, rebalance="QE", min_history=60).fit(panel.x, panel.y).results_
    ann = RollingLassoModel(base, rebalance="QE", min_history=60,
                            annualization_factor=52).fit(panel.x, panel.y).results_
    d = one.dates[-1]
    pd.testing.assert_frame_equal(ann[d].y_betas, one[d].y_betas)
    np.testing.assert_allclose(ann[d].x_covar, 52 * one[d].x_covar, rtol=1e-15)
    for col in ("residual_var", "ewma_var", "insample_alpha"):
        np.testing.assert_allclose(ann[d].y_variances[col], 52 * one[d].y_variances[col],
                                   rtol=1e-15)
    pd.testing.assert_series_equal(ann[d].y_variances["r2"], one[d].y_variances["r2"])


# ---------------------------------------------------------------------------- failures
def test_min_history_failures_are_reported_not_skipped_silently(panel):
    roll = RollingLassoModel(_configs(panel)["lasso_signs_prior"], rebalance="QE",
                             min_history=60).fit(panel.x, panel.y)
    index = panel.x.index
    q = index.to_period("Q")
    ends = [int(np.flatnonzero(q == k)[-1]) for k in q.unique()]
    short = [e for e in ends if e + 1 < 60]
    assert len(short) == 4
    expected = pd.DataFrame({
        "date": [index[e] for e in short],
        "reason": [f"too little history: {e + 1} rows < min_history=60" for e in short],
        "action": "skipped"})
    pd.testing.assert_frame_equal(roll.failures_, expected)
    assert list(roll.dates_) == [index[e] for e in ends]
    assert list(roll.results_.dates) == [index[e] for e in ends if e + 1 >= 60]


def test_integer_window_needs_a_full_window_by_default(panel):
    roll = RollingLassoModel(_configs(panel)["lasso_signs_prior"], rebalance="QE",
                             window=100).fit(panel.x, panel.y)
    assert roll.failures_["reason"].str.endswith("< min_history=100").all()
    assert (roll.fit_info_["n_rows"] == 100).all()


def _broken(panel):
    """x with an infinite value on row 130: every 30-row window holding it fails."""
    x = panel.x.copy()
    x.iloc[130, 2] = np.inf
    dates = list(x.index[[99, 119, 129, 139, 159, 179]])
    return x, dates


def test_on_failure_previous_keeps_the_last_snapshot(panel):
    x, dates = _broken(panel)
    roll = RollingLassoModel(_configs(panel)["lasso_signs_prior"], rebalance=dates, window=30,
                             on_failure="previous").fit(x, panel.y)
    res = roll.results_
    assert list(res.dates) == dates
    for d in dates[3:5]:  # windows [110, 139] and [130, 159] hold row 130
        assert res[d] is res[dates[2]]
        assert res[d].estimation_date == dates[2]
    assert res[dates[5]].estimation_date == dates[5]
    reason = (f"ValueError: x: column 'f2', row {x.index[130]!r} is infinite")
    expected = pd.DataFrame({"date": dates[3:5], "reason": [reason, reason],
                             "action": f"kept previous ({dates[2].date()})"})
    pd.testing.assert_frame_equal(roll.failures_, expected)
    # get_y_covars as of a failed date gives the kept snapshot's covariance
    covs = res.get_y_covars(dates=[dates[3]])
    pd.testing.assert_frame_equal(covs[dates[3]], res[dates[2]].get_y_covar())


def test_on_failure_skip_and_raise(panel):
    x, dates = _broken(panel)
    base = _configs(panel)["lasso_signs_prior"]
    skip = RollingLassoModel(base, rebalance=dates, window=30, on_failure="skip").fit(
        x, panel.y)
    assert list(skip.results_.dates) == dates[:3] + dates[5:]
    assert list(skip.failures_["action"]) == ["skipped", "skipped"]
    assert list(skip.dates_) == dates
    with pytest.raises(ValueError, match=(
            f"^rebalancing date {dates[3].date()}: x: column 'f2', row .* is infinite$")):
        RollingLassoModel(base, rebalance=dates, window=30, on_failure="raise").fit(x, panel.y)


def test_previous_with_nothing_before_skips(panel):
    x = panel.x.copy()
    x.iloc[5, 0] = np.inf
    roll = RollingLassoModel(_configs(panel)["lasso_signs_prior"], rebalance=list(
        x.index[[20, 40]]), window=20).fit(x, panel.y)
    assert list(roll.results_.dates) == [x.index[40]]
    assert list(roll.failures_["action"]) == ["skipped"]


def test_explicit_date_before_the_data_is_a_failure(panel):
    roll = RollingLassoModel(_configs(panel)["lasso_signs_prior"],
                             rebalance=["2014-12-31", panel.x.index[100]]).fit(panel.x, panel.y)
    assert roll.failures_.to_dict("records") == [{
        "date": pd.Timestamp("2014-12-31"), "action": "skipped",
        "reason": f"no data at or before 2014-12-31 (the data start on "
                  f"{panel.x.index[0].date()})"}]
    assert list(roll.results_.dates) == [panel.x.index[100]]


# ---------------------------------------------------------------------------- warm start
@pytest.mark.parametrize("config", ["lasso_signs_prior", "hcgl_l1"])
def test_warm_start_gives_the_cold_answers(panel, config):
    base = _configs(panel)[config]
    kw = dict(rebalance="ME", min_history=52)
    warm = RollingLassoModel(base, **kw).fit(panel.x, panel.y)
    cold = RollingLassoModel(base, warm_start=False, **kw).fit(panel.x, panel.y)
    assert list(warm.results_.dates) == list(cold.results_.dates)
    assert warm.fit_info_["warm"].iloc[1:].all() and not warm.fit_info_["warm"].iloc[0]
    assert not cold.fit_info_["warm"].any()
    for d in warm.results_.dates:
        np.testing.assert_allclose(warm.results_[d].y_betas, cold.results_[d].y_betas,
                                   rtol=0, atol=1e-8)
        np.testing.assert_allclose(warm.results_[d].y_variances["r2"],
                                   cold.results_[d].y_variances["r2"], rtol=0, atol=1e-10)
    # the warm start is used: HCGL takes fewer iterations to the same certified answers (LASSO
    # solves, warm or cold, mostly end in active-set steps before any iteration)
    if config == "hcgl_l1":
        assert warm.fit_info_["n_iter"].sum() < cold.fit_info_["n_iter"].sum()
    print(f"\n{config}: iterations warm {warm.fit_info_['n_iter'].sum():.0f}, "
          f"cold {cold.fit_info_['n_iter'].sum():.0f}")


def test_a_warm_start_the_iterations_cannot_certify_is_solved_cold(panel, monkeypatch):
    """When the fast engine does not certify from a warm start it starts again from the
    prior, before CVXPY: a rolling date warm-started from the previous date ended at gap 2e-2
    and Clarabel answered 3.3e-6 away from the optimum that the cold fit (and the parallel
    run's cold block start) certified, so serial and n_jobs=2 differed (random search). Here
    every warm solve is cut to one iteration: the answers are the cold ones, exactly."""
    from xl_factorlasso.core.linear_model import _engine

    original = _engine.FastEngine.solve
    warm_calls = []

    def one_warm_iteration(self, reg_lambda, coef_init=None, **kw):
        if coef_init is not None:
            warm_calls.append(1)
            kw["max_iter"] = 1
        return original(self, reg_lambda, coef_init=coef_init, **kw)

    base = _configs(panel)["hcgl_l1"]
    kw = dict(rebalance=list(panel.x.index[[80, 90, 100]]), min_history=52)
    cold = RollingLassoModel(base, warm_start=False, **kw).fit(panel.x, panel.y)
    monkeypatch.setattr(_engine.FastEngine, "solve", one_warm_iteration)
    warm = RollingLassoModel(base, **kw).fit(panel.x, panel.y)
    assert warm_calls and list(warm.fit_info_["warm"]) == [False, True, True]
    assert (warm.fit_info_["solver"] == "fast").all()
    for d in warm.results_.dates:
        np.testing.assert_array_equal(warm.results_[d].y_betas, cold.results_[d].y_betas)


# ---------------------------------------------------------------------------- labels
def test_permuted_identical_partition_keeps_its_labels():
    assets = [f"a{i}" for i in range(8)]
    prev = pd.Series([1, 1, 2, 2, 2, 3, 3, 7], index=assets)
    # the same partition, numbered differently by the clustering
    current = pd.Series([5, 5, 1, 1, 1, 2, 2, 9], index=assets)
    labels, nxt = stable_cluster_labels(current, prev, next_label=8)
    pd.testing.assert_series_equal(labels, prev.rename("cluster"))
    assert nxt == 8  # nothing new handed out



def test_labels_on_the_same_assets_as_through_the_label_lookups():
    """Same assets in the same order (the shortcut) or in another order (the lookups): the
    same stable labels."""
    rng = np.random.default_rng(3)
    assets = [f"a{i}" for i in range(40)]
    prev = pd.Series(rng.integers(1, 6, 40), index=assets)
    current = pd.Series(rng.integers(0, 7, 40), index=assets)
    same, nxt_same = stable_cluster_labels(current, prev, next_label=6)
    shuffled = prev.iloc[rng.permutation(40)]
    other, nxt_other = stable_cluster_labels(current, shuffled, next_label=6)
    pd.testing.assert_series_equal(same, other)
    assert nxt_same == nxt_other

def test_split_and_new_clusters_get_fresh_labels():
    assets = [f"a{i}" for i in range(7)]
    prev = pd.Series([1, 1, 1, 1, 2, 2, 2], index=assets)
    # cluster 1 splits 3 + 1; a new asset a7 arrives alone
    current = pd.Series([4, 4, 4, 6, 3, 3, 3, 8], index=[*assets, "a7"])
    labels, nxt = stable_cluster_labels(current, prev, next_label=3)
    assert labels.to_dict() == {"a0": 1, "a1": 1, "a2": 1, "a3": 3, "a4": 2, "a5": 2,
                                "a6": 2, "a7": 4}
    assert nxt == 5
    # first date: labels 1, 2, ... in order of first appearance, whatever the raw numbers
    first, nxt = stable_cluster_labels(pd.Series([9, 4, 9, 2], index=list("abcd")), None)
    assert first.tolist() == [1, 2, 1, 3] and nxt == 4


def test_a_retired_label_is_never_reused():
    prev = pd.Series([1, 1, 2, 2], index=list("abcd"))
    merged, nxt = stable_cluster_labels(pd.Series([0, 0, 0, 0], index=list("abcd")), prev, 3)
    assert merged.tolist() == [1, 1, 1, 1]  # the tie goes to the first previous cluster
    split, nxt = stable_cluster_labels(pd.Series([0, 0, 1, 1], index=list("abcd")), merged, nxt)
    assert split.tolist() == [1, 1, 3, 3] and nxt == 4  # not 2: 2 meant another cluster


def test_rolling_cluster_labels_follow_identical_partitions(panel):
    model = LassoModel(model_type="HCGL", reg_lambda=_lam(panel), l1_weight=0.1)
    roll = RollingLassoModel(model, rebalance="QE", min_history=60).fit(panel.x, panel.y)
    hist = roll.results_.get_clusters()
    assert hist.shape == (len(roll.results_), N)
    assert list(hist.columns) == list(panel.y.columns)
    same = 0
    for a, b in zip(hist.index[:-1], hist.index[1:], strict=True):
        pa, pb = hist.loc[a], hist.loc[b]
        if _partition(pa) == _partition(pb):
            same += 1
            pd.testing.assert_series_equal(pa, pb, check_names=False)
    assert same >= 3  # the loop above did compare identical partitions
    # a label kept from one date to the next always names clusters with assets in common
    for a, b in zip(hist.index[:-1], hist.index[1:], strict=True):
        for label in set(hist.loc[a]) & set(hist.loc[b]):
            assert ((hist.loc[a] == label) & (hist.loc[b] == label)).any()


def _partition(labels: pd.Series) -> set:
    return {frozenset(g) for g in labels.groupby(labels).groups.values()}


# ---------------------------------------------------------------------------- containers
def test_panels_and_long_export(panel):
    roll = RollingLassoModel(_configs(panel)["lasso_signs_prior"], rebalance="QE",
                             min_history=60).fit(panel.x, panel.y)
    res = roll.results_
    long = roll.to_long()
    assert list(long.columns) == ["date", "asset", "factor", "beta"]
    assert len(long) == len(res) * N * M
    wide = long.pivot_table(index=["date", "asset"], columns="factor", values="beta")
    for d in res.dates:
        pd.testing.assert_frame_equal(
            wide.loc[d].reindex(index=panel.y.columns, columns=panel.x.columns),
            res[d].y_betas, check_names=False)
    r2 = res.get_r2()
    assert r2.index.equals(res.dates) and list(r2.columns) == list(panel.y.columns)
    d = res.dates[4]
    np.testing.assert_array_equal(r2.loc[d], res[d].y_variances["r2"])
    np.testing.assert_allclose(res.get_residual_vols().loc[d],
                               np.sqrt(res[d].y_variances["residual_var"]), rtol=1e-15)
    np.testing.assert_array_equal(res.get_beta("f1").loc[d], res[d].y_betas["f1"])
    assert res.get_factor_var("f0")[d] == res[d].x_covar.loc["f0", "f0"]
    assert res.get_latest() is res[res.dates[-1]]
    assert res[str(d.date())] is res[d]
    clusters = res.get_clusters()  # a LASSO fit has none
    assert clusters.shape == (len(res), N) and clusters.isna().all().all()
    assert list(iter(res)) == list(res.dates) and res.n_observations == len(res)
    # Sigma_y = B Sigma_x B' + D, checked against the FactorCovariance it converts to
    snap = res[d]
    np.testing.assert_allclose(snap.get_y_covar(), snap.to_factor_covariance().covariance,
                               rtol=1e-14)
    vols = snap.get_model_vols()
    np.testing.assert_allclose(vols["total_vol"] ** 2, np.diag(snap.y_covar), rtol=1e-12)
    sub = snap.filter_on_tickers(["y3", "y0"])
    pd.testing.assert_frame_equal(sub.get_y_covar(), snap.get_y_covar().loc[["y3", "y0"],
                                                                            ["y3", "y0"]])
    with pytest.raises(ValueError, match="only 'orthogonal'"):
        snap.get_y_covar(residual_type="empirical")


def test_as_of_retrieval_never_uses_a_later_snapshot(panel):
    roll = RollingLassoModel(_configs(panel)["lasso_signs_prior"], rebalance="QE",
                             min_history=60).fit(panel.x, panel.y)
    res = roll.results_
    d0, d1 = res.dates[2], res.dates[3]
    mid = d0 + (d1 - d0) / 2
    covs = res.get_y_covars(dates=[mid, d1])
    pd.testing.assert_frame_equal(covs[mid], res[d0].get_y_covar())
    pd.testing.assert_frame_equal(covs[d1], res[d1].get_y_covar())
    with pytest.raises(ValueError, match="no snapshot was estimated at or before"):
        res.get_y_covars(dates=[res.dates[0] - pd.Timedelta(days=1)])
    assert repr(RollingFactorCovarData()) == "RollingFactorCovarData(empty)"
    assert list(RollingFactorCovarData().to_long().columns) == ["date", "asset", "factor",
                                                                "beta"]


def test_ragged_history_keeps_short_assets_as_nan_rows(panel):
    y = panel.y.copy()
    y.iloc[:150, 0] = np.nan  # y0 starts late
    with pytest.warns(UserWarning, match="fewer than warmup_period"):
        roll = RollingLassoModel(LassoModel(reg_lambda=_lam(panel), warmup_period=52),
                                 rebalance=list(panel.x.index[[120, 259]])).fit(panel.x, y)
    early, late = roll.results_[panel.x.index[120]], roll.results_[panel.x.index[259]]
    assert np.isnan(early.y_variances.loc["y0", "residual_var"])
    assert (early.y_betas.loc["y0"] == 0).all()
    assert np.isfinite(late.y_variances.loc["y0", "residual_var"])


# ---------------------------------------------------------------------------- factorlasso
def test_containers_match_factorlassos_from_the_same_fits(panel):
    """factorlasso's own containers, filled from factorlasso's per-date fits on the same
    windows, give the same panels and covariances, to the accuracy of factorlasso's CLARABEL
    answers (its loadings differ from the certified optimum by up to ~3e-5 here)."""
    fl = pytest.importorskip("factorlasso")
    x, y = panel.x.iloc[:, :4], panel.y.iloc[:, :6]
    lam = 0.05 * LassoModel().lambda_max(x, y)
    dates = list(x.index[[79, 159, 259]])
    ours = RollingLassoModel(LassoModel(reg_lambda=lam), rebalance=dates, window=80).fit(
        x, y).results_
    theirs = fl.RollingFactorCovarData()
    for d in dates:
        stop = x.index.get_loc(d) + 1
        xw, yw = x.iloc[stop - 80:stop], y.iloc[stop - 80:stop]
        model = fl.LassoModel(reg_lambda=lam).fit(xw, yw)
        er = model.estimation_result_
        xc = xw - xw.mean()  # span=None: equal weights, ddof 0 (an independent formulation)
        theirs.add(d, fl.CurrentFactorCovarData(
            x_covar=xc.T @ xc / len(xc), y_betas=model.coef_,
            y_variances=pd.DataFrame({"residual_var": er.ss_res, "r2": er.r2,
                                      "ewma_var": er.ss_total}, index=y.columns),
            estimation_date=d))
    assert list(ours.dates) == list(theirs.dates)
    for d in dates:
        np.testing.assert_allclose(ours.get_y_betas()[d], theirs.get_y_betas()[d], atol=1e-4)
        np.testing.assert_allclose(ours.get_x_covars()[d], theirs.get_x_covars()[d],
                                   rtol=1e-12)
        np.testing.assert_allclose(ours.get_y_covars()[d], theirs.get_y_covars()[d],
                                   rtol=0, atol=1e-4)
    for name in ("get_r2", "get_residual_vars", "get_ewma_vars", "get_residual_vols",
                 "get_total_vols", "get_systematic_vars"):
        a, b = getattr(ours, name)(), getattr(theirs, name)()
        assert a.shape == b.shape, name
        np.testing.assert_allclose(a.to_numpy(dtype=float), b.to_numpy(dtype=float),
                                   rtol=0, atol=1e-4, err_msg=name)
    np.testing.assert_allclose(ours.get_beta("f1"), theirs.get_beta("f1"), atol=1e-4)
    np.testing.assert_allclose(ours.get_factor_var("f2"), theirs.get_factor_var("f2"),
                               rtol=1e-12)
    # as-of retrieval agrees, between fit dates too
    query = [dates[0] + pd.Timedelta(days=3), dates[2]]
    a, b = ours.get_y_covars(dates=query), theirs.get_y_covars(dates=query)
    assert list(a) == list(b)
    for q in query:
        np.testing.assert_allclose(a[q], b[q], rtol=0, atol=1e-4)
    # the latest snapshot converts into factorlasso's snapshot and assembles the same Sigma_y
    latest = ours.get_latest()
    converted = fl.CurrentFactorCovarData(x_covar=latest.x_covar, y_betas=latest.y_betas,
                                          y_variances=latest.y_variances)
    np.testing.assert_allclose(converted.get_y_covar(), latest.get_y_covar(), rtol=1e-14)
    pd.testing.assert_frame_equal(converted.get_model_vols(), latest.get_model_vols(),
                                  check_names=False)


def test_solve_failure_is_raised_with_its_date_and_attempts(panel, iterations_only):
    model = LassoModel(reg_lambda=_lam(panel), engine="fast", engine_params={"max_iter": 1})
    dates = list(panel.x.index[[99, 199]])
    with pytest.raises(SolveError, match=f"^rebalancing date {dates[0].date()}: ") as info:
        RollingLassoModel(model, rebalance=dates, on_failure="raise").fit(panel.x, panel.y)
    assert info.value.attempts and info.value.gap > 0
    roll = RollingLassoModel(model, rebalance=dates, on_failure="skip").fit(panel.x, panel.y)
    assert len(roll.results_) == 0
    assert roll.failures_["reason"].str.startswith("SolveError: fast engine not certified").all()


def test_sklearn_clone_and_params(panel):
    sklearn_base = pytest.importorskip("sklearn.base")
    roll = RollingLassoModel(LassoModel(reg_lambda=0.01), rebalance="QE", window=52)
    params = roll.get_params()
    assert params["estimator__reg_lambda"] == 0.01 and params["window"] == 52
    copy = sklearn_base.clone(roll)
    assert copy.get_params()["estimator__reg_lambda"] == 0.01
    assert copy.estimator is not roll.estimator
    roll.fit(panel.x, panel.y)
    assert not hasattr(roll.estimator, "coef_")  # the estimator itself is never fitted
