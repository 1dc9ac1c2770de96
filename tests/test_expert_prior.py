"""Expert prior bounds, named sets, exposure budgets and ``excluded_factors`` against factorlasso
1.0.6 live, an independent HAC sandwich and the CVXPY reference; FL_PRIOR_USED in the workbook.

Bounds and budgets must equal factorlasso's to 1e-9 with NaN in the same cells, the diagnostics
must carry the same statuses, and the coefficients agree to solver tolerance with an objective
no worse than factorlasso's at its own point.
"""

from __future__ import annotations

import subprocess
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from xl_factorlasso import LassoModel
from xl_factorlasso.core.linear_model._expert_bounds import wls_hac

fl = pytest.importorskip("factorlasso")

ROOT = Path(__file__).resolve().parents[1]
# beside the checkout, or beside its worktree folder
VALIDATOR = next((up / "shared" / "tools" / "ooxml-validate" / "ooxml-validate"
                  for up in (ROOT.parent, ROOT.parent.parent)
                  if (up / "shared" / "tools" / "ooxml-validate").is_dir()), Path("/nonexistent"))
BOUNDS = ["prior_lower_bounds_", "prior_upper_bounds_"]


def panel(seed=3, T=160, M=5, N=9, gaps=True, corr=0.5):
    """Correlated factors (so the budget slopes Gamma matter) and sparse loadings."""
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2019-01-06", periods=T, freq="W")
    common = rng.standard_normal((T, 1))
    x = pd.DataFrame(np.sqrt(1 - corr) * rng.standard_normal((T, M)) + np.sqrt(corr) * common,
                     index=idx, columns=[f"f{j}" for j in range(M)])
    b = rng.standard_normal((N, M)) * (rng.random((N, M)) < 0.5) * 0.6
    y = pd.DataFrame(x.to_numpy() @ b.T + 0.8 * rng.standard_normal((T, N)), index=idx,
                     columns=[f"y{i}" for i in range(N)])
    if gaps:
        y.iloc[: T // 4, 0] = np.nan  # a late start
        y.iloc[T // 2: T // 2 + 5, 3] = np.nan  # an internal gap: HAC lags count calendar rows
        x.iloc[11, 2] = np.nan
    return x, y


def fit_both(x, y, model_type="LASSO", **kw):
    kw.setdefault("reg_lambda", 2e-3)
    kw.setdefault("apply_ols_prior", True)
    if model_type == "GROUP_LASSO":
        kw["group_data"] = pd.Series([i % 3 for i in range(y.shape[1])], index=y.columns)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = fl.LassoModel(model_type=getattr(fl.LassoModelType, model_type), **kw).fit(
            x=x, y=y)
        ours = LassoModel(model_type=model_type, **kw).fit(x, y)
    return ours, theirs


def assert_same_frame(a, b, name, atol=1e-9):
    np.testing.assert_array_equal(a.isna().to_numpy(), b.isna().to_numpy(), err_msg=name)
    np.testing.assert_allclose(a.to_numpy(dtype=float), b.to_numpy(dtype=float), rtol=1e-9,
                               atol=atol, err_msg=name)


def assert_same_bounds(ours, theirs):
    for name in [*BOUNDS, "effective_beta_prior_", "ols_beta_prior_"]:
        assert_same_frame(getattr(ours, name), getattr(theirs, name), name)
    d_o, d_t = ours.prior_bound_diagnostics_, theirs.prior_bound_diagnostics_
    assert list(d_o.columns) == list(d_t.columns)
    for col in ("asset", "factor", "selection", "status", "slack_source", "competitor",
                "imposed"):
        assert list(d_o[col]) == list(d_t[col]), col
    for col in ("reference_beta", "se_hac", "floor", "slack", "competitor_slope",
                "competitor_correlation", "implied_budget", "effective_n"):
        np.testing.assert_allclose(d_o[col].astype(float), d_t[col].astype(float), rtol=1e-8,
                                   atol=1e-12, err_msg=col)
    assert ours.effective_prior_hac_lags_ == theirs.effective_prior_hac_lags_


def assert_same_fit(ours, theirs, atol=3e-4):
    assert ours.duality_gap_ <= 1e-8
    assert ours.objective_value_ <= ours.objective(theirs.coef_) * (1 + 1e-9)
    np.testing.assert_allclose(ours.coef_, theirs.coef_, atol=atol)
    if ours.prior_lower_bounds_ is None:
        return
    lower = ours.prior_lower_bounds_.to_numpy()
    upper = ours.prior_upper_bounds_.to_numpy()
    coef = ours.coef_.to_numpy()
    assert np.all(coef[np.isfinite(lower)] >= lower[np.isfinite(lower)])  # exactly, no slack
    assert np.all(coef[np.isfinite(upper)] <= upper[np.isfinite(upper)])


# ---------------------------------------------------------------------------- factorlasso live
@pytest.mark.parametrize("model_type, seed, kw", [
    ("LASSO", 3, dict(expert_prior_bound_n_std=1.0)),
    ("LASSO", 4, dict(expert_prior_bound_n_std=0.5, expert_prior_hac_lags=4, span=40)),
    ("LASSO", 5, dict(expert_prior_bound_n_std=1.0, expert_prior_bound_centre="floor",
                      reg_lambda=2e-2)),
    ("LASSO", 6, dict(expert_prior_bound_n_std=0.0, expert_prior_bound_scope="named",
                      factor_for_prior={"y1": ["f0", "f2"], "y4": "f3", "y5": ["f1", "f4"]},
                      named_set_max_vif=None)),
    ("GROUP_LASSO", 7, dict(expert_prior_bound_n_std=1.5, expert_prior_hac_lags=2)),
    ("HIERARCHICAL_CLUSTER_GROUP_LASSO", 8, dict(expert_prior_bound_n_std=1.0, span=30,
                                                 expert_prior_bound_centre="floor")),
    ("FACTOR_CLUSTER_GROUP_LASSO", 9, dict(expert_prior_bound_n_std=1.0, l1_weight=0.3)),
])
def test_n_std_floors_and_fit_match_factorlasso(model_type, seed, kw):
    x, y = panel(seed=seed)
    ours, theirs = fit_both(x, y, model_type, **kw)
    assert_same_bounds(ours, theirs)
    assert np.isfinite(ours.prior_lower_bounds_.to_numpy()).any() or np.isfinite(
        ours.prior_upper_bounds_.to_numpy()).any()  # the case imposes floors
    assert_same_fit(ours, theirs)


def test_floor_centre_binds_the_floors():
    """With the centre on the floor and a heavy penalty, loadings sit exactly on their floors."""
    x, y = panel(seed=5)
    ours, theirs = fit_both(x, y, "LASSO", expert_prior_bound_n_std=1.0,
                            expert_prior_bound_centre="floor", reg_lambda=0.5)
    lower = ours.prior_lower_bounds_.to_numpy()
    upper = ours.prior_upper_bounds_.to_numpy()
    coef = ours.coef_.to_numpy()
    bound = np.where(np.isfinite(lower), lower, upper)
    held = np.isfinite(bound)
    assert held.sum() >= 3
    np.testing.assert_array_equal(coef[held], bound[held])  # exact, not interior-point close
    assert_same_fit(ours, theirs)


def test_exposure_budgets_match_factorlasso_with_signs():
    x, y = panel(seed=11)
    budget = pd.DataFrame({"f1": [0.2, np.nan, 0.0], "f3": [0.1, 0.3, np.nan],
                           "f4": [np.nan, 0.05, 0.4]}, index=["y0", "y2", "y6"])
    signs = pd.DataFrame(np.nan, index=y.columns, columns=x.columns)
    signs.loc["y2", "f4"] = 1.0
    signs.loc["y0", "f3"] = 0.0
    ours, theirs = fit_both(x, y, "LASSO", expert_prior_exposure_budget=budget,
                            expert_prior_bound_n_std=2.0, factors_beta_loading_signs=signs)
    assert_same_bounds(ours, theirs)
    assert_same_frame(ours.resolved_budgets_, theirs.resolved_budgets_, "resolved_budgets_")
    assert ours.budget_sources_.equals(theirs.budget_sources_)
    sources = ours.prior_bound_diagnostics_.set_index("asset")["slack_source"]
    assert set(sources.loc[["y0", "y2", "y6"]]) == {"budget"} and "n_std" in set(sources)
    assert_same_fit(ours, theirs)


@pytest.mark.parametrize("model_type", ["GROUP_LASSO", "HIERARCHICAL_CLUSTER_GROUP_LASSO"])
def test_cluster_mean_budgets_match_factorlasso(model_type):
    x, y = panel(seed=12, N=10)
    kw = dict(expert_prior_budget_rule="cluster_mean", n_clusters=2)
    if model_type == "GROUP_LASSO":
        kw.pop("n_clusters")
    ours, theirs = fit_both(x, y, model_type, **kw)
    assert_same_frame(ours.budget_first_pass_coef_, theirs.budget_first_pass_coef_,
                      "budget_first_pass_coef_", atol=1e-6)
    assert ours.budget_rule_status_.equals(theirs.budget_rule_status_)
    assert (ours.budget_rule_status_ == "cluster_mean").any()
    assert_same_frame(ours.resolved_budgets_, theirs.resolved_budgets_, "resolved_budgets_",
                      atol=1e-6)
    for name in BOUNDS:
        assert_same_frame(getattr(ours, name), getattr(theirs, name), name, atol=1e-6)
    assert list(ours.prior_bound_diagnostics_.status) == list(
        theirs.prior_bound_diagnostics_.status)
    assert_same_fit(ours, theirs)


def test_cluster_mean_is_refused_by_a_lambda_grid_and_by_lasso():
    from xl_factorlasso import LassoModelCV

    x, y = panel(seed=12, N=6)
    base = LassoModel(model_type="GROUP_LASSO", apply_ols_prior=True,
                      group_data=pd.Series([0, 0, 0, 1, 1, 1], index=y.columns),
                      expert_prior_budget_rule="cluster_mean")
    with pytest.raises(ValueError, match="one preparation cannot serve a grid of lambdas"):
        LassoModelCV(lambdas=[1e-3, 1e-2], n_splits=3, base_model=base).fit(x, y)
    with pytest.raises(ValueError, match="cluster_mean' needs a partition of the responses"):
        LassoModel(apply_ols_prior=True, expert_prior_budget_rule="cluster_mean").fit(x, y)


@pytest.mark.parametrize("vif, statuses", [
    (2.5, None), (None, None), (1.0, {"y1": "named_set_demoted", "y5": "named_set_demoted"}),
])
def test_named_set_diagnostics_match_factorlasso(vif, statuses):
    x, y = panel(seed=13)
    ffp = {"y1": ["f0", "f2"], "y3": "f4", "y5": ["f1", "f4"], "zz": "f0"}
    ours, theirs = fit_both(x, y, "LASSO", factor_for_prior=ffp, named_set_max_vif=vif)
    d_o, d_t = ours.named_set_diagnostics_, theirs.named_set_diagnostics_
    assert list(d_o.index) == list(d_t.index) == list(y.columns)
    for col in ("requested_set", "named_set", "named_set_status"):
        assert list(d_o[col]) == list(d_t[col]), col
    np.testing.assert_allclose(d_o.largest_vif, d_t.largest_vif, rtol=1e-10)
    assert ours.effective_factor_for_prior_ == theirs.effective_factor_for_prior_
    if statuses:
        assert {r: d_o.named_set_status[r] for r in statuses} == statuses
    assert_same_frame(ours.effective_beta_prior_, theirs.effective_beta_prior_, "prior")
    assert_same_fit(ours, theirs)


def test_excluded_factors_match_factorlasso():
    x, y = panel(seed=14)
    theirs0 = fit_both(x, y, "LASSO")[1]
    winners = theirs0.ols_r2_.idxmax(axis=1)  # exclude each of two responses' OLS winner
    excluded = {"y0": winners["y0"], "y3": [winners["y3"], "f0" if winners["y3"] != "f0"
                                            else "f1"], "absent": "f2"}
    ours, theirs = fit_both(x, y, "LASSO", excluded_factors=excluded,
                            expert_prior_bound_n_std=1.0)
    assert ours.excluded_factor_mask_.equals(theirs.excluded_factor_mask_)
    mask = ours.excluded_factor_mask_.to_numpy()
    assert mask.sum() == 3
    assert np.all(ours.coef_.to_numpy()[mask] == 0.0)  # exact zeros
    assert (ours.derived_signs_.to_numpy()[mask] == 0).all()
    assert_same_frame(ours.ols_beta_prior_, theirs.ols_beta_prior_, "ols_beta_prior_")
    assert ours.ols_beta_prior_.loc["y0", winners["y0"]] == 0  # a new winner was chosen
    assert_same_bounds(ours, theirs)
    assert_same_fit(ours, theirs)


def test_excluded_factors_keep_nonneg_on_the_other_cells():
    """Documented difference: factorlasso's zero-sign matrix drops ``nonneg``; here it holds."""
    x, y = panel(seed=15)
    model = LassoModel(reg_lambda=1e-3, nonneg=True, excluded_factors={"y1": "f2"}).fit(x, y)
    assert model.coef_.loc["y1", "f2"] == 0.0
    assert (model.coef_.to_numpy() >= 0).all()
    free = LassoModel(reg_lambda=1e-3).fit(x, y)
    assert (free.coef_.to_numpy() < 0).any()  # the constraint is doing something


@pytest.mark.parametrize("kw, message", [
    (dict(excluded_factors={"y0": "zz"}), "excluded_factors['y0']: 'zz' is not a factor in x"),
    (dict(excluded_factors={"y0": ["f1", "f1"]}), "excluded_factors['y0'] names a factor twice"),
    (dict(excluded_factors=["f1"]), "excluded_factors must be a mapping or pandas Series"),
    (dict(apply_ols_prior=True, factor_for_prior={"y0": "f1"}, excluded_factors={"y0": "f1"}),
     "excluded_factors['y0']: 'f1' is also its factor_for_prior"),
    (dict(factors_beta_prior="prior", excluded_factors={"y1": "f2"}),
     "excluded_factors['y1']: factors_beta_prior['y1', 'f2'] is nonzero"),
    (dict(expert_prior_bound_n_std=1.0), "expert_prior_bound_n_std requires apply_ols_prior"),
    (dict(apply_ols_prior=True, expert_prior_bound_n_std=-1),
     "expert_prior_bound_n_std must be a finite number >= 0 or None, got -1"),
    (dict(apply_ols_prior=True, expert_prior_bound_n_std=True),
     "expert_prior_bound_n_std must be a finite number >= 0 or None, got True"),
    (dict(apply_ols_prior=True, expert_prior_hac_lags=1.5),
     "expert_prior_hac_lags must be a whole number >= 0, got 1.5"),
    (dict(apply_ols_prior=True, expert_prior_hac_lags_freq_dict={"W": -1}),
     "expert_prior_hac_lags_freq_dict['W'] must be a whole number >= 0, got -1"),
    (dict(apply_ols_prior=True, expert_prior_bound_centre="mid"),
     "expert_prior_bound_centre must be one of ('prior', 'floor'), got 'mid'"),
    (dict(apply_ols_prior=True, expert_prior_bound_scope="some"),
     "expert_prior_bound_scope must be one of ('all', 'named'), got 'some'"),
    (dict(apply_ols_prior=True, expert_prior_budget_rule="median"),
     "expert_prior_budget_rule must be one of ('n_std', 'cluster_mean'), got 'median'"),
    (dict(expert_prior_budget_rule="cluster_mean"),
     "expert_prior_budget_rule='cluster_mean' requires apply_ols_prior=True"),
    (dict(apply_ols_prior=True, expert_prior_exposure_budget=pd.DataFrame({"f1": [-0.1]},
                                                                          index=["y0"])),
     "expert_prior_exposure_budget cells must be finite numbers >= 0"),
    (dict(apply_ols_prior=True, expert_prior_exposure_budget=pd.DataFrame({"zz": [0.1]},
                                                                          index=["y0"])),
     "expert_prior_exposure_budget: column 'zz' is not a factor in x"),
    (dict(max_named_factors=3), "max_named_factors must be 1 or 2, got 3"),
    (dict(named_set_max_vif=0.5), "named_set_max_vif must be a finite number >= 1 or None"),
    (dict(apply_ols_prior=True, max_named_factors=1, factor_for_prior={"y0": ["f1", "f2"]}),
     "factor_for_prior['y0'] has 2 factors; at most max_named_factors=1 are allowed"),
])
def test_bad_parameters_are_named_in_fit(kw, message):
    x, y = panel(seed=1, N=5)
    if kw.get("factors_beta_prior") == "prior":
        kw["factors_beta_prior"] = pd.DataFrame(0.3, index=y.columns, columns=x.columns)
    model = LassoModel(**kw)
    with pytest.raises(ValueError) as err:
        model.fit(x, y)
    assert message in str(err.value)
    assert not hasattr(model, "coef_")


def test_without_the_options_nothing_changes_and_attributes_are_none():
    x, y = panel(seed=2)
    plain = LassoModel(reg_lambda=2e-3, apply_ols_prior=True).fit(x, y)
    for name in [*BOUNDS, "prior_bound_diagnostics_", "resolved_budgets_", "budget_sources_",
                 "effective_prior_hac_lags_", "budget_first_pass_coef_",
                 "budget_rule_status_", "excluded_factor_mask_"]:
        assert getattr(plain, name) is None, name
    assert plain.named_set_diagnostics_.named_set_status.eq("automatic").all()
    unbounded = LassoModel(reg_lambda=2e-3, apply_ols_prior=True,
                           expert_prior_bound_n_std=1e6).fit(x, y)  # every floor is 0
    assert unbounded.prior_lower_bounds_.isna().all().all()
    assert set(unbounded.prior_bound_diagnostics_.status) == {"zero_floor"}
    pd.testing.assert_frame_equal(unbounded.coef_, plain.coef_)


# ---------------------------------------------------------------------------- engines
@pytest.mark.parametrize("model_type, kw", [
    ("LASSO", dict(expert_prior_bound_centre="floor", reg_lambda=5e-2)),
    ("LASSO", dict(span=30, expert_prior_hac_lags=3)),
    ("FACTOR_CLUSTER_GROUP_LASSO", dict(l1_weight=0.25, expert_prior_bound_centre="floor",
                                        reg_lambda=2e-2)),
    ("HIERARCHICAL_CLUSTER_GROUP_LASSO", dict(l1_weight=0.1, reg_lambda=1e-2)),
])
def test_fast_engine_equals_cvxpy_reference_with_floors(model_type, kw):
    x, y = panel(seed=16)
    kw = dict(model_type=model_type, apply_ols_prior=True, expert_prior_bound_n_std=0.5,
              n_clusters=3, **kw)
    kw.setdefault("reg_lambda", 3e-3)
    fast = LassoModel(engine="fast", **kw).fit(x, y)
    ref = LassoModel(engine="cvxpy", **kw).fit(x, y)
    assert fast.solver_ == "fast"
    assert fast.duality_gap_ <= 1e-8 and ref.duality_gap_ <= 1e-8
    pd.testing.assert_frame_equal(fast.prior_lower_bounds_, ref.prior_lower_bounds_)
    assert fast.objective_value_ == pytest.approx(ref.objective_value_, rel=2e-8)
    np.testing.assert_allclose(fast.coef_, ref.coef_, atol=5e-5)
    lower = fast.prior_lower_bounds_.to_numpy()
    assert np.isfinite(lower).any()
    assert np.all(fast.coef_.to_numpy()[np.isfinite(lower)] >= lower[np.isfinite(lower)])


def test_lambda_max_returns_the_prior_inside_the_floors():
    """Above lambda_max the fit is the (floored) centre itself, without a solve."""
    x, y = panel(seed=17)
    kw = dict(apply_ols_prior=True, expert_prior_bound_n_std=1.0,
              expert_prior_bound_centre="floor")
    probe = LassoModel(**kw).fit(x, y)
    top = LassoModel(reg_lambda=probe.reg_lambda_max_ * 1.01, **kw).fit(x, y)
    lower, upper = probe.prior_lower_bounds_, probe.prior_upper_bounds_
    centre = probe.effective_beta_prior_.where(lower.isna(), lower).where(upper.isna(), upper)
    np.testing.assert_array_equal(top.coef_.to_numpy(), centre.to_numpy())


# ---------------------------------------------------------------------------- HAC statistics
def _sandwich(x, y, w, lags):
    """Independent formulation: the dense T x T Bartlett kernel on the calendar grid."""
    valid = np.isfinite(x).all(axis=1) & np.isfinite(y) & (w > 0)
    t = np.flatnonzero(valid)
    X = np.column_stack([np.ones(len(t)), x[valid]])
    W = np.diag(w[valid])
    e = y[valid] - X @ np.linalg.solve(X.T @ W @ X, X.T @ W @ y[valid])
    K = np.maximum(0.0, 1.0 - np.abs(t[:, None] - t[None, :]) / (lags + 1))
    S = (W @ X) * e[:, None]
    bread = np.linalg.inv(X.T @ W @ X)
    n, p = len(t), X.shape[1]
    V = bread @ (S.T @ K @ S) @ bread * n / (n - p)
    return np.linalg.solve(X.T @ W @ X, X.T @ W @ y[valid]), np.sqrt(np.diag(V))


@pytest.mark.parametrize("lags", [0, 1, 3, 7])
@pytest.mark.parametrize("k", [1, 2])
def test_wls_hac_equals_a_dense_sandwich_and_factorlasso(lags, k):
    from factorlasso.inference._wls import compute_wls_hac_statistics

    rng = np.random.default_rng(lags + 10 * k)
    T = 60
    x = rng.standard_normal((T, k)) + 3.0
    y = x @ rng.standard_normal(k) + rng.standard_normal(T) * (1 + np.abs(x[:, 0]))
    x[5, 0], y[17], y[30:34] = np.nan, np.nan, np.nan  # gaps keep their calendar positions
    w = 0.97 ** np.arange(T - 1, -1, -1)
    got = wls_hac(x, y, w, lags, 3)
    coef, se = _sandwich(x, y, w, lags)
    assert got.status == "ok" and got.observations == T - 6 and got.calendar_gaps == 6
    np.testing.assert_allclose(got.coef, coef, rtol=1e-10)
    np.testing.assert_allclose(got.se, se, rtol=1e-9)
    theirs = compute_wls_hac_statistics(x, y, w, lags, 3)
    np.testing.assert_allclose(got.se, theirs.standard_error, rtol=1e-9)
    assert got.effective_n == pytest.approx(theirs.effective_n, rel=1e-12)


def test_wls_hac_closed_form_white_univariate():
    """Lag 0, equal weights, one regressor: se^2 = n/(n-2) sum(d^2 e^2) / (sum d^2)^2."""
    x = np.array([0.0, 1.0, 2.0, 4.0, 7.0, 8.0])
    y = np.array([1.0, 0.5, 3.0, 2.0, 6.5, 9.0])
    d = x - x.mean()
    b = d @ y / (d @ d)
    e = y - y.mean() - b * d
    se = np.sqrt(6 / 4 * np.sum(d ** 2 * e ** 2) / (d @ d) ** 2)
    got = wls_hac(x[:, None], y, np.ones(6), 0, 3)
    assert got.coef[1] == pytest.approx(b, rel=1e-13)
    assert got.se[1] == pytest.approx(se, rel=1e-12)


def test_wls_hac_reports_what_it_cannot_identify():
    x = np.ones((10, 1))
    assert wls_hac(x, np.arange(10.0), np.ones(10), 0, 3).status == "rank_deficient"
    short = wls_hac(np.arange(10.0)[:, None], np.arange(10.0), np.ones(10), 0, 12)
    assert short.status == "insufficient_observations" and np.isnan(short.se).all()


# ---------------------------------------------------------------------------- skfolio mirror
def test_skfolio_loading_matrix_passes_the_expert_parameters():
    pytest.importorskip("skfolio")
    from xl_factorlasso.skfolio import LassoLoadingMatrix

    x, y = panel(seed=18, N=5)
    kw = dict(reg_lambda=2e-3, apply_ols_prior=True, expert_prior_bound_n_std=0.5,
              expert_prior_hac_lags=2, excluded_factors={"y2": "f1"})
    loading = LassoLoadingMatrix(**kw).fit(y, x)
    direct = LassoModel(**kw).fit(x, y)
    pd.testing.assert_frame_equal(loading.model_.prior_lower_bounds_,
                                  direct.prior_lower_bounds_)
    np.testing.assert_allclose(loading.loading_matrix_, direct.coef_.to_numpy(), atol=1e-12)


# ---------------------------------------------------------------------------- workbook
def _book(tmp_path, settings, prior=None, name="book.xlsx"):
    from xl_factorlasso.core.datasets import load_demo_panel
    from xl_factorlasso.workbook._builder import build_workbook

    d = load_demo_panel()
    path = tmp_path / name
    build_workbook(path, returns=d.y, factors=d.x, signs=d.signs, prior=prior,
                   settings=settings)
    return path, d


def _prior_used(io):
    table = io.read(io.names()["FL_PRIOR_USED"])
    values = np.array([[np.nan if v is None else v for v in r[1:]] for r in table[1:]],
                      dtype=float)
    return table, values


def test_refit_writes_the_prior_in_force_and_the_file_is_valid(tmp_path):
    from xl_factorlasso.core.datasets import load_demo_panel
    from xl_factorlasso.workbook import XlsxFileIO, refit

    settings = {"model_type": "HCGL", "reg_lambda": 1e-3, "span": 52, "n_clusters": 3,
                "apply_ols_prior": True, "expert_prior_bound_n_std": 1.0,
                "expert_prior_hac_lags": 2, "named_set_max_vif": 3.0}
    d = load_demo_panel()
    prior = pd.DataFrame(np.nan, index=d.y.columns, columns=d.x.columns)
    prior.iloc[0, 1] = 0.25  # a filled FL_PRIOR cell wins over the OLS centre
    path, d = _book(tmp_path, settings, prior)
    result = refit(XlsxFileIO(path))
    assert "FL_PRIOR_USED" in result.written
    ref = LassoModel(model_type="HCGL", reg_lambda=1e-3, span=52, n_clusters=3,
                     factors_beta_loading_signs=d.signs, factors_beta_prior=prior,
                     apply_ols_prior=True, expert_prior_bound_n_std=1.0,
                     expert_prior_hac_lags=2, named_set_max_vif=3.0).fit(d.x, d.y)
    io = XlsxFileIO(path)
    table, values = _prior_used(io)
    assert table[0] == ["asset", *d.x.columns]
    assert [r[0] for r in table[1:]] == list(d.y.columns)
    # the file's numbers round-trip through the xlsx text: equal to the last bits
    np.testing.assert_allclose(values, ref.effective_beta_prior_.to_numpy(), rtol=1e-13,
                               atol=0)
    assert values[0, 1] == 0.25 or d.signs.iloc[0, 1] in (0.0, -1.0)
    coef = np.array([r[1:] for r in io.read(io.names()["FL_COEF"])[1:]], dtype=float)
    np.testing.assert_allclose(coef, ref.coef_, atol=1e-9)
    assert ref.prior_lower_bounds_.notna().any().any()  # floors were in force
    if not VALIDATOR.exists():
        pytest.skip(f"no validator at {VALIDATOR}")
    run = subprocess.run([str(VALIDATOR), str(path)], capture_output=True, text=True,
                         timeout=900)
    if "== FILE" not in run.stdout:
        pytest.skip(f"the validator could not run: {run.stderr[-300:]}")
    assert run.stdout.count("== FILE") == 1, run.stdout
    errors = [line for line in run.stdout.splitlines() if line.startswith("ERR")
              and not ("/xl/styles.xml" in line and "x:font[" in line)]
    assert errors == [], run.stdout


def test_refit_writes_the_explicit_prior_without_ols_and_blanks_without_a_prior(tmp_path):
    from xl_factorlasso.workbook import XlsxFileIO, refit

    path, _ = _book(tmp_path, {"reg_lambda": 1e-4})
    refit(XlsxFileIO(path))
    table, values = _prior_used(XlsxFileIO(path))
    assert table[0][0] == "asset (no prior in force)" and np.isnan(values).all()
    from xl_factorlasso.core.datasets import load_demo_panel

    prior = load_demo_panel().prior
    path2, _ = _book(tmp_path, {"reg_lambda": 1e-4}, prior, name="explicit.xlsx")
    refit(XlsxFileIO(path2))
    table, values = _prior_used(XlsxFileIO(path2))
    assert table[0][0] == "asset"
    np.testing.assert_array_equal(values, prior.fillna(0.0).to_numpy())


def test_floors_without_the_ols_prior_name_the_settings_cell(tmp_path):
    from tests.workbook_helpers import demo_memory_book
    from xl_factorlasso.workbook import refit

    io = demo_memory_book(settings={"reg_lambda": 1e-4, "expert_prior_bound_n_std": 1})
    before = {name: io.read(area) for name, area in io.names().items()}
    with pytest.raises(ValueError) as err:
        refit(io)
    assert str(err.value) == (
        "FL_SETTINGS!B3: expert_prior_bound_n_std floors the OLS prior: it needs "
        "apply_ols_prior = TRUE (or leave it blank)")
    assert {name: io.read(area) for name, area in io.names().items()} == before


def _book_with_prior_factors(settings, rows):
    from tests.workbook_helpers import demo_memory_book

    io = demo_memory_book(settings=settings, prior=False)
    io.put("FL_PRIOR_FACTOR", "PriorFactor", 1, 1, rows, reserve=(10, 3))
    return io


def test_prior_factor_range_reaches_factor_for_prior():
    from xl_factorlasso.core.datasets import load_demo_panel
    from xl_factorlasso.workbook import refit
    from xl_factorlasso.workbook._inspect import inspect_workbook

    d = load_demo_panel()
    a, f = list(d.y.columns), list(d.x.columns)
    settings = {"model_type": "LASSO", "reg_lambda": 1e-3, "apply_ols_prior": True,
                "named_set_max_vif": "none"}
    io = _book_with_prior_factors(settings, [["asset", "factor", "factor 2"],
                                             [a[0], f[2], None], [a[3], f[0], f[1]]])
    report = inspect_workbook(io)
    assert report.ok, report.problems
    refit(io)
    ref = LassoModel(reg_lambda=1e-3, apply_ols_prior=True, named_set_max_vif=None,
                     factors_beta_loading_signs=d.signs,
                     factor_for_prior={a[0]: f[2], a[3]: [f[0], f[1]]}).fit(d.x, d.y)
    coef = np.array([r[1:] for r in io.read(io.names()["FL_COEF"])[1:]], dtype=float)
    np.testing.assert_allclose(coef, ref.coef_, atol=1e-9)
    assert ref.named_set_diagnostics_.loc[a[3], "named_set"] == (f[0], f[1])
    plain = LassoModel(reg_lambda=1e-3, apply_ols_prior=True,
                       factors_beta_loading_signs=d.signs).fit(d.x, d.y)
    assert not np.allclose(plain.effective_beta_prior_, ref.effective_beta_prior_)


@pytest.mark.parametrize("settings, rows, message", [
    ({"apply_ols_prior": True}, [["asset", "factor"], ["nope", "f0"]],
     "FL_PRIOR_FACTOR!A2: 'nope' is not an asset of FL_RETURNS"),
    ({"apply_ols_prior": True}, [["asset", "factor"], ["A1", "zz"]],
     "FL_PRIOR_FACTOR!B2: 'zz' is not a factor of FL_FACTORS"),
    ({"apply_ols_prior": True}, [["asset", "factor"], ["A1", "F1"], ["A1", "F2"]],
     "FL_PRIOR_FACTOR!A3: 'A1' is listed twice (first at A2)"),
    ({"apply_ols_prior": True}, [["A1", "F1", "F1"]], "FL_PRIOR_FACTOR!C1: 'F1' is named twice"),
    ({"apply_ols_prior": True}, [["A1", None, None]], "FL_PRIOR_FACTOR!B1: no factor given for"),
    ({"apply_ols_prior": True}, [["A1", "F1", "F2", "F3"]],
     "FL_PRIOR_FACTOR!D1: a third factor for 'A1': a named prior uses one or two factors"),
    ({"apply_ols_prior": True, "max_named_factors": 1}, [["A1", "F1", "F2"]],
     "FL_PRIOR_FACTOR!C1: 'A1' names 2 factors but max_named_factors is 1"),
    ({}, [["A1", "F1"]], "FL_PRIOR_FACTOR!A1: names the factors of the OLS prior, which is off"),
])
def test_prior_factor_range_names_the_bad_cell(settings, rows, message):
    from xl_factorlasso.core.datasets import load_demo_panel
    from xl_factorlasso.workbook import refit

    d = load_demo_panel()
    names = {"A1": d.y.columns[0], "F1": d.x.columns[0], "F2": d.x.columns[1],
             "F3": d.x.columns[2]}
    rows = [[names.get(v, v) for v in r] for r in rows]
    message = message.replace("'A1'", repr(names["A1"])).replace("'F1'", repr(names["F1"]))
    io = _book_with_prior_factors({"reg_lambda": 1e-3, **settings}, rows)
    before = {name: io.read(area) for name, area in io.names().items()}
    with pytest.raises(ValueError) as err:
        refit(io)
    assert str(err.value).startswith(message), str(err.value)
    assert {name: io.read(area) for name, area in io.names().items()} == before


def test_worksheet_functions_take_the_expert_settings():
    from tests.workbook_helpers import frame_rows
    from xl_factorlasso import udfs
    from xl_factorlasso.core.datasets import load_demo_panel

    udfs.cache_clear()
    d = load_demo_panel()
    r, f = frame_rows(d.y, "date"), frame_rows(d.x, "date")
    settings = [["apply_ols_prior", "TRUE"], ["expert_prior_bound_n_std", 0.5],
                ["expert_prior_hac_lags", 3], ["expert_prior_bound_centre", "floor"],
                ["named_set_max_vif", 4], ["max_named_factors", 1]]
    out = udfs.FLASSO_FIT(r, f, 1e-3, "LASSO", None, None, settings)
    ref = LassoModel(reg_lambda=1e-3, apply_ols_prior=True, expert_prior_bound_n_std=0.5,
                     expert_prior_hac_lags=3, expert_prior_bound_centre="floor",
                     named_set_max_vif=4.0, max_named_factors=1).fit(d.x, d.y)
    np.testing.assert_allclose(np.array([row[1:] for row in out[1:]], dtype=float), ref.coef_,
                               atol=1e-12)
    assert ref.prior_lower_bounds_.notna().any().any() or ref.prior_upper_bounds_.notna().any(
    ).any()
    bad = udfs.FLASSO_FIT(r, f, 1e-3, "LASSO", None, None, [["expert_prior_bound_scope", "x"]])
    assert bad == ("#FLASSO! settings: row 1, column 2: expert_prior_bound_scope: 'x' is not "
                   "one of all, named")


def test_solvers_without_hard_constraints_refuse_floors_and_exclusions(monkeypatch):
    """UniLasso and the cooperative types take no hard constraint (as in factorlasso); the
    check reads the allowed types, so simulate one such type by removing LASSO from them."""
    from xl_factorlasso.core.linear_model import _lasso_model

    monkeypatch.setattr(_lasso_model, "_HARD_CONSTRAINT_TYPES", ("GROUP_LASSO",))
    x, y = panel(seed=1, N=5)
    for kw, what in ((dict(apply_ols_prior=True, expert_prior_bound_n_std=1.0),
                      "expert prior bounds"), (dict(excluded_factors={"y0": "f1"}),
                                               "excluded_factors")):
        with pytest.raises(ValueError, match=f"{what} are not supported by LASSO, which takes "
                                             "no hard constraint"):
            LassoModel(**kw).fit(x, y)
    LassoModel(apply_ols_prior=True).fit(x, y)  # the prior alone is a soft centre: allowed


@pytest.mark.parametrize("model_type", ["UNILASSO", "COOPERATIVE_GROUP_LASSO",
                                        "COOPERATIVE_CLUSTER_GROUP_LASSO"])
def test_unilasso_and_cooperative_types_refuse_floors_and_exclusions(model_type):
    x, y = panel(seed=1, N=5)
    extra = {"group_data": pd.Series([0, 0, 1, 1, 1], index=y.columns)} if (
        model_type == "COOPERATIVE_GROUP_LASSO") else {}
    for kw, what in ((dict(expert_prior_bound_n_std=1.0), "expert prior bounds"),
                     (dict(excluded_factors={"y0": "f1"}), "excluded_factors")):
        if model_type == "UNILASSO" and what != "excluded_factors":
            continue  # floors need the OLS prior, which UNILASSO refuses itself
        if model_type != "UNILASSO":
            kw = {**kw, "apply_ols_prior": True}
        model = LassoModel(model_type=model_type, **extra, **kw)
        with pytest.raises(ValueError) as err:
            model.fit(x, y)
        assert str(err.value) == (f"{what} are not supported by {model_type}, which takes no "
                                  "hard constraint; use LASSO, GROUP_LASSO, HCGL or FCGL")
        assert not hasattr(model, "coef_")


def test_floors_with_a_cooperative_type_name_the_settings_cell():
    from tests.workbook_helpers import demo_memory_book
    from xl_factorlasso.workbook import refit

    io = demo_memory_book(settings={"reg_lambda": 1e-4, "model_type": "CCGL",
                                    "apply_ols_prior": True, "expert_prior_bound_n_std": 1})
    before = {name: io.read(area) for name, area in io.names().items()}
    with pytest.raises(ValueError) as err:
        refit(io)
    assert str(err.value) == (
        "FL_SETTINGS!B5: expert_prior_bound_n_std floors are hard constraints, which model_type "
        "COOPERATIVE_CLUSTER_GROUP_LASSO does not take; use LASSO, GROUP_LASSO, HCGL or FCGL "
        "(or leave it blank)")
    assert {name: io.read(area) for name, area in io.names().items()} == before
