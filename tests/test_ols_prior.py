"""The empirical (OLS) prior (``apply_ols_prior``) against factorlasso 1.0.6 live, a closed form
and the CVXPY reference.

OLS betas and R2 must equal factorlasso's to 1e-10, the selected and effective centres too, and
the coefficients agree to solver tolerance with an objective no worse than factorlasso's.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from xl_factorlasso import LassoModel

fl = pytest.importorskip("factorlasso")

OLS_ATTRIBUTES = ["ols_betas_", "ols_r2_", "ols_beta_prior_", "effective_beta_prior_"]


def panel(seed=3, T=150, M=5, N=8, gaps=True, offset=0.0):
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2020-01-05", periods=T, freq="W")
    x = pd.DataFrame(rng.standard_normal((T, M)) + offset, index=idx,
                     columns=[f"f{j}" for j in range(M)])
    b = rng.standard_normal((N, M)) * (rng.random((N, M)) < 0.5) * 0.5
    y = pd.DataFrame(x.to_numpy() @ b.T + rng.standard_normal((T, N)), index=idx,
                     columns=[f"y{i}" for i in range(N)])
    if gaps:
        y.iloc[: T // 3, 0] = np.nan  # late start
        y.iloc[T // 2: T // 2 + 6, 2] = np.nan  # a gap
        x.iloc[9, 1] = np.nan  # a partly missing factor row
        x.iloc[30, :] = np.nan  # an entirely missing factor row
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


def assert_same_prior(ours, theirs):
    for name in OLS_ATTRIBUTES:
        np.testing.assert_allclose(getattr(ours, name), getattr(theirs, name), rtol=1e-10,
                                   atol=1e-10, err_msg=name)
        # NaN (undefined statistic) in exactly the same cells
        np.testing.assert_array_equal(getattr(ours, name).isna(), getattr(theirs, name).isna())
    # the selection itself is identical: the same cells carry a nonzero centre
    np.testing.assert_array_equal(ours.ols_beta_prior_.to_numpy() != 0,
                                  theirs.ols_beta_prior_.to_numpy() != 0)


def assert_same_fit(ours, theirs, atol=3e-4):
    assert ours.duality_gap_ <= 1e-8
    assert ours.objective_value_ <= ours.objective(theirs.coef_) * (1 + 1e-9)
    np.testing.assert_allclose(ours.coef_, theirs.coef_, atol=atol)


@pytest.mark.parametrize("model_type", ["LASSO", "GROUP_LASSO",
                                        "HIERARCHICAL_CLUSTER_GROUP_LASSO"])
@pytest.mark.parametrize("span", [None, 30])
def test_prior_and_fit_match_factorlasso(model_type, span):
    x, y = panel(seed=3)
    ours, theirs = fit_both(x, y, model_type, span=span)
    assert_same_prior(ours, theirs)
    assert_same_fit(ours, theirs)


@pytest.mark.parametrize("seed, kw", [
    (5, dict(warmup_period=105)),  # the late response has too few pairs: no statistic
    (7, dict(span=4.0, warmup_period=None)),  # a short span: few effective rows
    (8, dict(nonneg=True, reg_lambda=5e-3)),  # negative centres are forbidden: zeroed
])
def test_edge_settings_match_factorlasso(seed, kw):
    x, y = panel(seed=seed)
    ours, theirs = fit_both(x, y, **kw)
    assert_same_prior(ours, theirs)
    assert_same_fit(ours, theirs)
    if "warmup_period" in kw and kw["warmup_period"]:
        # y0 has 100 observations < 105: no statistic, a zero centre
        assert ours.ols_betas_.loc["y0"].isna().all()
        assert (ours.ols_beta_prior_.loc["y0"] == 0).all()
    if kw.get("nonneg"):
        assert (ours.ols_beta_prior_.to_numpy() < 0).any()
        assert (ours.effective_beta_prior_.to_numpy() >= 0).all()


def test_large_offset_data_matches_factorlasso():
    # levels around 1e4: the moments must not cancel catastrophically
    x, y = panel(seed=11, offset=1e4, gaps=False)
    ours, theirs = fit_both(x, y, reg_lambda=1e-2)
    assert_same_prior(ours, theirs)
    np.testing.assert_allclose(ours.coef_, theirs.coef_, atol=3e-4)


def test_univariate_statistics_closed_form():
    x, y = panel(seed=4, T=90, M=3, N=3)
    span = 20.0
    model = LassoModel(reg_lambda=1e-3, span=span, apply_ols_prior=True).fit(x, y)
    lam = 1 - 2 / (span + 1)
    w_all = lam ** np.arange(len(x) - 1, -1, -1)
    for i, response in enumerate(y.columns):
        for j, factor in enumerate(x.columns):
            ok = x[factor].notna() & y[response].notna()
            xv, yv, w = x[factor][ok].to_numpy(), y[response][ok].to_numpy(), w_all[ok]
            xm, ym = np.average(xv, weights=w), np.average(yv, weights=w)
            cov = np.sum(w * (xv - xm) * (yv - ym))
            vx, vy = np.sum(w * (xv - xm) ** 2), np.sum(w * (yv - ym) ** 2)
            assert model.ols_betas_.iat[i, j] == pytest.approx(cov / vx, rel=1e-10)
            assert model.ols_r2_.iat[i, j] == pytest.approx(cov * cov / (vx * vy), rel=1e-10)
        best = int(np.argmax(model.ols_r2_.iloc[i].to_numpy()))
        expected = np.zeros(x.shape[1])
        expected[best] = model.ols_betas_.iat[i, best]
        np.testing.assert_array_equal(model.ols_beta_prior_.iloc[i].to_numpy(), expected)


def test_factor_for_prior_single_and_joint_match_factorlasso():
    x, y = panel(seed=9)
    choice = {"y0": "f3", "y1": ["f0", "f2"], "y5": ("f4",), "not_a_response": "f1"}
    ours, theirs = fit_both(x, y, factor_for_prior=choice)
    assert_same_prior(ours, theirs)
    assert_same_fit(ours, theirs)
    prior = ours.ols_beta_prior_
    assert (prior.loc["y0"].drop("f3") == 0).all()
    assert prior.at["y0", "f3"] == ours.ols_betas_.at["y0", "f3"]
    assert (prior.loc["y1", ["f1", "f3", "f4"]] == 0).all()
    # the joint slopes: weighted least squares with intercept on the complete rows
    ok = x[["f0", "f2"]].notna().all(axis=1) & y["y1"].notna()
    design = np.column_stack([np.ones(ok.sum()), x.loc[ok, ["f0", "f2"]].to_numpy()])
    joint = np.linalg.lstsq(design, y.loc[ok, "y1"].to_numpy(), rcond=None)[0][1:]
    np.testing.assert_allclose(prior.loc["y1", ["f0", "f2"]], joint, rtol=1e-10)


def test_collinear_pair_keeps_its_first_factor_as_factorlasso():
    x, y = panel(seed=10, gaps=False)
    x["f1"] = x["f0"] + 0.3 * x["f1"]  # weighted VIF far above 2.5
    ours, theirs = fit_both(x, y, factor_for_prior={"y2": ["f1", "f0"]})
    assert_same_prior(ours, theirs)
    with pytest.warns(UserWarning, match=r"factor_for_prior: the two factors of \['y2'\]"):
        LassoModel(apply_ols_prior=True, factor_for_prior={"y2": ["f1", "f0"]}).fit(x, y)
    assert ours.ols_beta_prior_.at["y2", "f0"] == 0
    assert ours.ols_beta_prior_.at["y2", "f1"] == ours.ols_betas_.at["y2", "f1"]


def test_explicit_prior_cells_and_hard_signs_take_precedence_as_factorlasso():
    x, y = panel(seed=12)
    explicit = pd.DataFrame(np.nan, index=y.columns, columns=x.columns)
    signs = pd.DataFrame(np.nan, index=y.columns, columns=x.columns)
    winners = LassoModel(apply_ols_prior=True).fit(x, y).ols_beta_prior_
    r1 = winners.loc["y1"].abs().idxmax()
    r3 = winners.loc["y3"].abs().idxmax()
    explicit.at["y1", r1] = 0.0  # a finite zero overrides the OLS centre
    explicit.at["y2", "f0"] = 0.25  # an explicit centre next to the OLS one
    signs.at["y3", r3] = 0.0  # a hard zero removes the OLS centre (nothing re-selected)
    signs.at["y2", "f0"] = -1.0  # contradicts the explicit 0.25: zeroed, not an error
    ours, theirs = fit_both(x, y, factors_beta_prior=explicit, factors_beta_loading_signs=signs)
    assert_same_prior(ours, theirs)
    assert_same_fit(ours, theirs)
    eff = ours.effective_beta_prior_
    assert eff.at["y1", r1] == 0.0 and eff.at["y3", r3] == 0.0 and eff.at["y2", "f0"] == 0.0
    assert (eff.loc["y3"] == 0).all()


def test_prior_overrides_derived_signs_as_factorlasso():
    x, y = panel(seed=13)
    ours, theirs = fit_both(x, y, auto_sign_constraints=True, auto_sign_threshold_t=1.5)
    assert_same_prior(ours, theirs)
    pd.testing.assert_frame_equal(ours.derived_signs_, theirs.derived_signs_,
                                  check_dtype=False)
    assert_same_fit(ours, theirs)


def test_without_the_flag_nothing_changes_and_attributes_are_none():
    x, y = panel(seed=2)
    plain = LassoModel(reg_lambda=2e-3).fit(x, y)
    for name in OLS_ATTRIBUTES:
        assert getattr(plain, name) is None
    # the flag at lambda_max returns the prior itself: the centre is the solution
    model = LassoModel(reg_lambda=10.0, apply_ols_prior=True).fit(x, y)
    np.testing.assert_array_equal(model.coef_, model.effective_beta_prior_)


@pytest.mark.parametrize("model_type", ["LASSO", "FACTOR_CLUSTER_GROUP_LASSO"])
def test_fast_engine_equals_cvxpy_reference_on_the_ols_prior(model_type):
    x, y = panel(seed=6)
    kw = dict(model_type=model_type, reg_lambda=3e-3, l1_weight=0.25, span=30,
              apply_ols_prior=True, factor_for_prior={"y4": ["f1", "f3"]})
    fast = LassoModel(engine="fast", **kw).fit(x, y)
    ref = LassoModel(engine="cvxpy", **kw).fit(x, y)
    assert fast.solver_ == "fast"
    assert fast.duality_gap_ <= 1e-8 and ref.duality_gap_ <= 1e-8
    pd.testing.assert_frame_equal(fast.effective_beta_prior_, ref.effective_beta_prior_)
    assert fast.objective_value_ == pytest.approx(ref.objective_value_, rel=2e-8)
    np.testing.assert_allclose(fast.coef_, ref.coef_, atol=5e-5)


@pytest.mark.parametrize("kw, message", [
    (dict(apply_ols_prior="yes"), "apply_ols_prior must be True or False, got 'yes'"),
    (dict(apply_ols_prior=True, prior_selection_type="lowest"),
     "prior_selection_type must be one of ('highest_r2',), got 'lowest'"),
    (dict(prior_selection_type="lowest"),
     "prior_selection_type must be one of ('highest_r2',), got 'lowest'"),
    (dict(factor_for_prior={"y0": "f1"}), "factor_for_prior requires apply_ols_prior=True"),
    (dict(apply_ols_prior=True, factor_for_prior=["f1"]),
     "factor_for_prior must be a mapping or a pandas Series (response -> factor), got list"),
    (dict(apply_ols_prior=True, factor_for_prior={"y0": "zz"}),
     "factor_for_prior['y0']: 'zz' is not a factor in x"),
    (dict(apply_ols_prior=True, factor_for_prior={"y0": ["f1", "f1"]}),
     "factor_for_prior['y0'] names a factor twice: ['f1', 'f1']"),
    (dict(apply_ols_prior=True, factor_for_prior={"y0": ["f1", "f2", "f3"]}),
     "factor_for_prior['y0'] has 3 factors; at most max_named_factors=2 are allowed"),
    (dict(apply_ols_prior=True, factor_for_prior={"y0": []}),
     "factor_for_prior['y0'] must be a factor name or a nonempty list of factor names"),
])
def test_bad_parameters_are_named_in_fit(kw, message):
    x, y = panel(seed=1, N=3)
    model = LassoModel(**kw)
    with pytest.raises(ValueError) as err:
        model.fit(x, y)
    assert message in str(err.value)
    assert not hasattr(model, "coef_")


def test_skfolio_loading_matrix_passes_the_ols_prior_parameters():
    pytest.importorskip("skfolio")
    from xl_factorlasso.skfolio import LassoLoadingMatrix

    x, y = panel(seed=14, N=5)
    kw = dict(reg_lambda=2e-3, apply_ols_prior=True, factor_for_prior={"y1": "f2"})
    loading = LassoLoadingMatrix(**kw).fit(y, x)
    direct = LassoModel(**kw).fit(x, y)
    pd.testing.assert_frame_equal(loading.model_.effective_beta_prior_,
                                  direct.effective_beta_prior_)
    np.testing.assert_allclose(loading.loading_matrix_, direct.coef_.to_numpy(), atol=1e-12)


def test_cross_validation_keeps_the_ols_prior_in_the_refit():
    from xl_factorlasso import LassoModelCV

    x, y = panel(seed=15, N=4)
    base = LassoModel(apply_ols_prior=True, factor_for_prior={"y1": "f0"})
    cv = LassoModelCV(lambdas=[1e-3, 1e-2], n_splits=3, base_model=base).fit(x, y)
    best = cv.best_model_
    direct = LassoModel(apply_ols_prior=True, factor_for_prior={"y1": "f0"},
                        reg_lambda=best.reg_lambda).fit(x, y)
    pd.testing.assert_frame_equal(best.effective_beta_prior_, direct.effective_beta_prior_)
    np.testing.assert_allclose(best.coef_, direct.coef_, atol=1e-12)
    assert best.apply_ols_prior and best.factor_for_prior == {"y1": "f0"}


def test_workbook_refit_applies_the_setting():
    from tests.workbook_helpers import demo_memory_book
    from xl_factorlasso.core.datasets import load_demo_panel
    from xl_factorlasso.workbook import refit

    d = load_demo_panel()
    settings = {"model_type": "HCGL", "reg_lambda": 1e-3, "n_clusters": 3, "span": 52,
                "apply_ols_prior": "TRUE"}
    io = demo_memory_book(settings=settings, prior=False)  # no FL_PRIOR: the OLS centre rules
    refit(io)
    coef = np.array([r[1:] for r in io.read(io.names()["FL_COEF"])[1:]], dtype=float)
    kw = dict(model_type="HCGL", reg_lambda=1e-3, n_clusters=3, span=52,
              factors_beta_loading_signs=d.signs)
    ref = LassoModel(apply_ols_prior=True, **kw).fit(d.x, d.y)
    plain = LassoModel(**kw).fit(d.x, d.y)
    np.testing.assert_allclose(coef, ref.coef_, atol=1e-9)
    assert np.abs(coef - plain.coef_.to_numpy()).max() > 1e-4


def test_workbook_names_the_cell_of_a_bad_flag():
    from tests.workbook_helpers import demo_memory_book
    from xl_factorlasso.workbook import refit

    io = demo_memory_book(settings={"apply_ols_prior": "maybe"})
    before = {name: io.read(area) for name, area in io.names().items()}
    with pytest.raises(ValueError) as err:
        refit(io)
    assert str(err.value) == "FL_SETTINGS!B2: apply_ols_prior: 'maybe' is not TRUE or FALSE"
    assert {name: io.read(area) for name, area in io.names().items()} == before
