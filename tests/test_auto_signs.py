"""Data-driven signs (``auto_sign_*``) against factorlasso 1.0.6 live, a closed form and CVXPY.

Derived signs must be identical to factorlasso's, slopes and t-statistics equal to 1e-10, and
the coefficients equal to solver tolerance with an objective no worse than factorlasso's
(factorlasso stops at Clarabel's default tolerances).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import xl_factorlasso
from xl_factorlasso import LassoModel, LassoModelCV

fl = pytest.importorskip("factorlasso")

MODEL_TYPES = ["LASSO", "GROUP_LASSO", "HIERARCHICAL_CLUSTER_GROUP_LASSO",
               "FACTOR_CLUSTER_GROUP_LASSO"]
SIGN_DIAGNOSTICS = ["detected_signs_", "sign_slopes_", "sign_t_stats_", "sign_effective_n_",
                    "sign_valid_counts_"]


def panel(seed=3, T=160, M=6, N=12, gaps=True):
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2021-01-01", periods=T, freq="W")
    x = pd.DataFrame(rng.standard_normal((T, M)), index=idx,
                     columns=[f"f{j}" for j in range(M)])
    b = rng.standard_normal((N, M)) * (rng.random((N, M)) < 0.5) * 0.4
    y = pd.DataFrame(x.to_numpy() @ b.T + rng.standard_normal((T, N)), index=idx,
                     columns=[f"y{i}" for i in range(N)])
    if gaps:
        y.iloc[: T // 4, 0] = np.nan  # late start
        if N > 3:
            y.iloc[T // 2: T // 2 + 5, 3] = np.nan  # a gap
            y.iloc[-10:, N - 1] = np.nan  # stops early
        x.iloc[7, 1] = np.nan  # a partly missing factor row
        x.iloc[20, :] = np.nan  # an entirely missing factor row
    return x, y


def fit_both(x, y, model_type="LASSO", **kw):
    kw.setdefault("reg_lambda", 2e-3)
    if model_type == "GROUP_LASSO":
        kw["group_data"] = pd.Series([i % 3 for i in range(y.shape[1])], index=y.columns)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = fl.LassoModel(model_type=getattr(fl.LassoModelType, model_type), **kw).fit(
            x=x, y=y)
        ours = LassoModel(model_type=model_type, **kw).fit(x, y)
    return ours, theirs


def assert_same_signs(ours, theirs):
    pd.testing.assert_frame_equal(ours.derived_signs_, theirs.derived_signs_,
                                  check_dtype=False, check_exact=True)
    pd.testing.assert_frame_equal(ours.detected_signs_, theirs.detected_signs_,
                                  check_dtype=False, check_exact=True)
    for name in SIGN_DIAGNOSTICS[1:]:
        np.testing.assert_allclose(getattr(ours, name), getattr(theirs, name),
                                   rtol=1e-10, atol=1e-10, err_msg=name)
    assert ours.effective_sign_span_ == theirs.effective_sign_span_


def assert_same_fit(ours, theirs, atol=3e-4):
    assert ours.objective_value_ <= ours.objective(theirs.coef_) * (1 + 1e-9)
    np.testing.assert_allclose(ours.coef_, theirs.coef_, atol=atol)
    # where a sign gate forces zero, the fast engine's zero is exact
    gated = (ours.derived_signs_ == 0).to_numpy()
    assert (ours.coef_.to_numpy()[gated] == 0.0).all()


@pytest.mark.parametrize("model_type", MODEL_TYPES)
@pytest.mark.parametrize("span", [None, 26])
@pytest.mark.parametrize("variance", ["independent", "date"])
def test_signs_and_fit_match_factorlasso(model_type, span, variance):
    x, y = panel()
    ours, theirs = fit_both(x, y, model_type, span=span, auto_sign_constraints=True,
                            auto_sign_variance=variance, l1_weight=0.2)
    assert_same_signs(ours, theirs)
    assert_same_fit(ours, theirs)
    # the gate did something on this panel: some cells forced to zero, some signed
    values = ours.derived_signs_.to_numpy()
    assert (values == 0).any() and (np.abs(values) == 1).any()
    if model_type != "LASSO":
        pd.testing.assert_series_equal(ours.clusters_, theirs.clusters_, check_dtype=False,
                                       check_names=False)
        # pooled: members of a group share their detected signs
        for _, members in ours.clusters_.groupby(ours.clusters_):
            rows = ours.detected_signs_.loc[members.index].to_numpy()
            assert (rows == rows[0]).all()


@pytest.mark.parametrize("shape", [(60, 3, 1), (90, 4, 5), (400, 10, 30)])
@pytest.mark.parametrize("model_type", ["LASSO", "HIERARCHICAL_CLUSTER_GROUP_LASSO"])
def test_shapes_match_factorlasso(shape, model_type):
    t_rows, m, n = shape
    x, y = panel(seed=t_rows + n, T=t_rows, M=m, N=n, gaps=n > 1)
    ours, theirs = fit_both(x, y, model_type, auto_sign_constraints=True)
    assert_same_signs(ours, theirs)
    assert_same_fit(ours, theirs)


@pytest.mark.parametrize("sign_span", [dict(auto_sign_ewma_span=12),
                                       dict(auto_sign_use_fit_span=True),
                                       dict(auto_sign_ewma_span=1)])
@pytest.mark.parametrize("variance", ["independent", "date"])
def test_sign_span_matches_factorlasso(sign_span, variance):
    x, y = panel(seed=8)
    ours, theirs = fit_both(x, y, "GROUP_LASSO", span=40, auto_sign_constraints=True,
                            auto_sign_variance=variance, l1_weight=0.5, **sign_span)
    assert_same_signs(ours, theirs)
    assert_same_fit(ours, theirs)
    assert ours.effective_sign_span_ == (40 if "auto_sign_use_fit_span" in sign_span
                                         else sign_span["auto_sign_ewma_span"])


@pytest.mark.parametrize("threshold", [None, 0.0, 2.0, np.inf])
def test_thresholds_match_factorlasso(threshold):
    x, y = panel(seed=5)
    ours, theirs = fit_both(x, y, "LASSO", auto_sign_constraints=True,
                            auto_sign_threshold_t=threshold)
    assert_same_signs(ours, theirs)
    assert_same_fit(ours, theirs)
    detected = ours.detected_signs_.to_numpy()
    slopes = ours.sign_slopes_.to_numpy()
    if not threshold:
        np.testing.assert_array_equal(detected, np.sign(slopes))
    elif np.isinf(threshold):
        assert (detected == 0).all() and (ours.coef_.to_numpy() == 0).all()
    else:
        np.testing.assert_array_equal(
            detected, np.where(np.abs(ours.sign_t_stats_.to_numpy()) < 2.0, 0, np.sign(slopes)))


def test_explicit_cells_excluded_factors_and_prior_precedence():
    x, y = panel(seed=11)
    explicit = pd.DataFrame(np.nan, index=y.columns, columns=x.columns)
    explicit.loc["y0", "f0"] = 0.0
    explicit.loc["y1", "f2"] = -1.0
    explicit.loc["y2", :] = 1.0
    prior = pd.DataFrame(0.0, index=y.columns, columns=x.columns)
    # against the detected direction of (y4, f1), so the prior's sign must replace it
    base = LassoModel(auto_sign_constraints=True, auto_sign_threshold_t=None).fit(x, y)
    detected = base.detected_signs_.loc["y4", "f1"]
    prior.loc["y4", "f1"] = -0.25 * (detected if detected != 0 else 1.0)
    ours, theirs = fit_both(
        x, y, "HIERARCHICAL_CLUSTER_GROUP_LASSO", auto_sign_constraints=True,
        auto_sign_excluded_factors=["f3"], factors_beta_loading_signs=explicit,
        factors_beta_prior=prior, l1_weight=0.3)
    assert_same_signs(ours, theirs)
    assert_same_fit(ours, theirs)
    final = ours.derived_signs_
    assert final.loc["y0", "f0"] == 0 and final.loc["y1", "f2"] == -1
    assert (final.loc["y2"] == 1).all()
    # excluded: free wherever no explicit cell says otherwise
    assert final["f3"].drop("y2").isna().all() and final.loc["y2", "f3"] == 1
    assert final.loc["y4", "f1"] == np.sign(prior.loc["y4", "f1"])


def test_explicit_signs_only_are_reported_and_diagnostics_absent():
    x, y = panel(seed=2, N=4)
    explicit = pd.DataFrame(np.nan, index=y.columns, columns=x.columns)
    explicit.iloc[0, 0] = 1.0
    model = LassoModel(factors_beta_loading_signs=explicit).fit(x, y)
    pd.testing.assert_frame_equal(model.derived_signs_, explicit)
    assert all(getattr(model, name) is None for name in SIGN_DIAGNOSTICS)
    assert LassoModel().fit(x, y).derived_signs_ is None


def test_closed_form_slope_and_t_statistic():
    """LASSO, no span, complete panel: the slope through the origin of the demeaned series
    and its homoskedastic t-statistic with n - 1 degrees of freedom."""
    x, y = panel(seed=4, N=3, gaps=False)
    model = LassoModel(auto_sign_constraints=True).fit(x, y)
    xc = (x - x.mean()).to_numpy()
    yc = (y - y.mean()).to_numpy()
    for i in range(y.shape[1]):
        for j in range(x.shape[1]):
            b = xc[:, j] @ yc[:, i] / (xc[:, j] @ xc[:, j])
            resid = yc[:, i] - b * xc[:, j]
            se = np.sqrt(resid @ resid / (len(xc) - 1) / (xc[:, j] @ xc[:, j]))
            assert model.sign_slopes_.iat[i, j] == pytest.approx(b, rel=1e-12)
            assert model.sign_t_stats_.iat[i, j] == pytest.approx(b / se, rel=1e-10)
            assert model.detected_signs_.iat[i, j] == (np.sign(b) if abs(b / se) >= 0.75
                                                       else 0.0)


@pytest.mark.parametrize("model_type", ["LASSO", "GROUP_LASSO", "FACTOR_CLUSTER_GROUP_LASSO"])
def test_fast_engine_equals_cvxpy_reference_on_derived_problem(model_type):
    x, y = panel(seed=6)
    kw = dict(model_type=model_type, reg_lambda=3e-3, l1_weight=0.25, span=30,
              auto_sign_constraints=True, auto_sign_variance="date")
    if model_type == "GROUP_LASSO":
        kw["group_data"] = pd.Series([i % 4 for i in range(y.shape[1])], index=y.columns)
    fast = LassoModel(engine="fast", **kw).fit(x, y)
    ref = LassoModel(engine="cvxpy", **kw).fit(x, y)
    pd.testing.assert_frame_equal(fast.derived_signs_, ref.derived_signs_)
    assert fast.solver_ == "fast"
    assert fast.duality_gap_ <= 1e-8 and ref.duality_gap_ <= 1e-8
    # both certified to a 1e-8 relative gap: equal objectives, coefficients to ~1e-5
    assert fast.objective_value_ == pytest.approx(ref.objective_value_, rel=2e-8)
    np.testing.assert_allclose(fast.coef_, ref.coef_, atol=5e-5)
    signs = fast.derived_signs_.to_numpy()
    coef = fast.coef_.to_numpy()
    assert (coef[signs == 0] == 0).all()
    assert (coef[signs == 1] >= 0).all() and (coef[signs == -1] <= 0).all()


def test_cross_validation_derives_signs_per_fold_and_keeps_parameters():
    x, y = panel(seed=9, N=6)
    cv = LassoModelCV(base_model=LassoModel(auto_sign_constraints=True,
                                            auto_sign_variance="date"), n_splits=3)
    cv.fit(x, y)
    best = cv.best_model_
    assert best.auto_sign_constraints and best.auto_sign_variance == "date"
    direct = LassoModel(auto_sign_constraints=True, auto_sign_variance="date").fit(x, y)
    pd.testing.assert_frame_equal(best.derived_signs_, direct.derived_signs_)


# ---------------------------------------------------------------------- public helpers
@pytest.mark.parametrize("kw", [
    dict(),
    dict(ewma_span=20),
    dict(variance_estimator="date"),
    dict(ewma_span=15, variance_estimator="date", auto_sign_threshold_t=1.5),
    dict(clusters=[0, 0, 1, 1, 2, 2]),
    dict(clusters=np.array(["a", "b", "a", "c", "c", "b"]), ewma_span=30),
    dict(master_constraints={"f0": 0, "f2": np.nan, 4: -1}),
    dict(auto_sign_threshold_t=None),
])
def test_derive_sign_constraints_matches_factorlasso(kw):
    x, y = panel(seed=12)
    ours_s, ours_b = xl_factorlasso.derive_sign_constraints(x, y, return_slopes=True, **kw)
    theirs_s, theirs_b = fl.derive_sign_constraints(x, y, return_slopes=True, **kw)
    pd.testing.assert_frame_equal(ours_s, theirs_s, check_exact=True)
    pd.testing.assert_frame_equal(ours_b, theirs_b, rtol=1e-12)
    # numpy in, numpy (M,) out
    arr = xl_factorlasso.derive_sign_constraints(x.to_numpy(), y.to_numpy(),
                                                 **{k: v for k, v in kw.items()
                                                    if k != "master_constraints"})
    ref = fl.derive_sign_constraints(x.to_numpy(), y.to_numpy(),
                                     **{k: v for k, v in kw.items() if k != "master_constraints"})
    np.testing.assert_array_equal(arr, ref)
    assert arr.shape == (x.shape[1],)


def test_validate_cluster_signs_matches_factorlasso():
    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.standard_normal((200, 4)), columns=["a", "b", "c", "d"])
    y = pd.DataFrame({"r": x["a"] - 0.3 * x["b"] + x["c"] + 0.1 * rng.standard_normal(200)})
    clusters = [0, 0, 1, 1]
    with pytest.warns(UserWarning, match=r"factors \['b'\] \(positions \[1\]\)"):
        found = xl_factorlasso.validate_cluster_signs(x, y, clusters)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = fl.validate_cluster_signs(x, y, clusters)
    np.testing.assert_array_equal(found, ref)
    np.testing.assert_array_equal(found, [1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert xl_factorlasso.validate_cluster_signs(x, y, [0, 1, 2, 3], warn=True).size == 0
        xl_factorlasso.validate_cluster_signs(x, y, clusters, warn=False)


# ---------------------------------------------------------------------- validation
@pytest.mark.parametrize("kw, message", [
    (dict(auto_sign_threshold_t=-1.0), "auto_sign_threshold_t must be a number >= 0 or None, "
                                       "got -1.0"),
    (dict(auto_sign_threshold_t="high"), "auto_sign_threshold_t must be a number >= 0 or None"),
    (dict(auto_sign_variance="hac"), "auto_sign_variance must be 'independent' or 'date', "
                                     "got 'hac'"),
    (dict(auto_sign_ewma_span=10, auto_sign_use_fit_span=True),
     "give either auto_sign_use_fit_span or auto_sign_ewma_span, not both"),
    (dict(auto_sign_excluded_factors=["nope"]),
     "auto_sign_excluded_factors: 'nope' is not a factor in x"),
    (dict(auto_sign_excluded_factors="f0"),
     "auto_sign_excluded_factors must be a list of distinct factor names, got 'f0'"),
    (dict(auto_sign_constraints="yes"), "auto_sign_constraints must be True or False"),
    (dict(auto_sign_adaptive_weights="yes"), "auto_sign_adaptive_weights must be True or False"),
    (dict(auto_sign_adaptive_floor=0.0), "auto_sign_adaptive_floor must be a number > 0"),
])
def test_bad_parameters_are_named_in_fit(kw, message):
    x, y = panel(seed=1, N=3)
    model = LassoModel(auto_sign_constraints=kw.pop("auto_sign_constraints", True), **kw)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[")):
        model.fit(x, y)
    assert not hasattr(model, "coef_")


def test_adaptive_weights_without_auto_signs_is_the_plain_fit():
    """factorlasso applies adaptive weights only with auto signs; the flag alone is inert."""
    x, y = panel(seed=1, N=3)
    plain = LassoModel(reg_lambda=1e-2).fit(x, y)
    flagged = LassoModel(reg_lambda=1e-2, auto_sign_adaptive_weights=True).fit(x, y)
    pd.testing.assert_frame_equal(plain.coef_, flagged.coef_)


# ---------------------------------------------------------------------- workbook and functions
def _demo_with_derived_signs(settings):
    from tests.workbook_helpers import demo_memory_book
    from xl_factorlasso.core.datasets import load_demo_panel
    from xl_factorlasso.workbook import Area

    d = load_demo_panel()
    io = demo_memory_book(settings=settings)
    n, m = d.y.shape[1], d.x.shape[1]
    io.defined["FL_DERIVED_SIGNS"] = Area("DerivedSigns", 1, 1, n + 1, m + 1)
    return io, d


def test_refit_writes_the_signs_the_fit_imposed():
    from xl_factorlasso.workbook import refit

    settings = {"model_type": "HCGL", "reg_lambda": 1e-5, "span": 52, "n_clusters": 4,
                "auto_sign_constraints": "TRUE", "auto_sign_variance": "date",
                "auto_sign_ewma_span": "fit", "auto_sign_excluded_factors": "USD; Inflation"}
    io, d = _demo_with_derived_signs(settings)
    result = refit(io)
    ref = LassoModel(model_type="HCGL", reg_lambda=1e-5, span=52, n_clusters=4,
                     factors_beta_loading_signs=d.signs, factors_beta_prior=d.prior,
                     auto_sign_constraints=True, auto_sign_variance="date",
                     auto_sign_use_fit_span=True,
                     auto_sign_excluded_factors=["USD", "Inflation"]).fit(d.x, d.y)
    table = io.read(io.names()["FL_DERIVED_SIGNS"])
    assert "FL_DERIVED_SIGNS" in result.written
    assert table[0] == ["asset", *d.x.columns]
    assert [r[0] for r in table[1:]] == list(d.y.columns)
    got = np.array([[np.nan if v is None else v for v in r[1:]] for r in table[1:]], dtype=float)
    np.testing.assert_array_equal(got, ref.derived_signs_.to_numpy())
    coef = np.array([r[1:] for r in io.read(io.names()["FL_COEF"])[1:]], dtype=float)
    np.testing.assert_allclose(coef, ref.coef_, atol=1e-9)
    # the workbook's own sign cells won; the derivation filled the blanks
    explicit = d.signs.to_numpy()
    assert np.array_equal(got[~np.isnan(explicit)], explicit[~np.isnan(explicit)])
    assert (got == 0).any()


def test_refit_without_signs_writes_a_free_table_and_nonneg_ones():
    from xl_factorlasso.workbook import refit

    io, d = _demo_with_derived_signs({"reg_lambda": 1e-4})
    io.defined.pop("FL_SIGNS")
    refit(io)
    table = io.read(io.names()["FL_DERIVED_SIGNS"])
    assert all(v is None for r in table[1:] for v in r[1:])
    io, d = _demo_with_derived_signs({"reg_lambda": 1e-4, "nonneg": True})
    io.defined.pop("FL_SIGNS")
    io.defined.pop("FL_PRIOR")
    refit(io)
    assert all(v == 1.0 for r in io.read(io.names()["FL_DERIVED_SIGNS"])[1:] for v in r[1:])


def test_a_workbook_without_the_name_is_refit_as_before():
    from tests.workbook_helpers import demo_memory_book
    from xl_factorlasso.workbook import refit

    io = demo_memory_book(settings={"auto_sign_constraints": True, "reg_lambda": 1e-4})
    result = refit(io)
    assert "FL_DERIVED_SIGNS" in result.skipped and "FL_COEF" in result.written


def test_worksheet_functions_take_the_auto_sign_settings():
    from tests.workbook_helpers import frame_rows
    from xl_factorlasso import udfs
    from xl_factorlasso.core.datasets import load_demo_panel

    udfs.cache_clear()
    d = load_demo_panel()
    r, f = frame_rows(d.y, "date"), frame_rows(d.x, "date")
    settings = [["auto_sign_constraints", "TRUE"], ["auto_sign_threshold_t", 1.5],
                ["auto_sign_ewma_span", 26]]
    out = udfs.FLASSO_FIT(r, f, 1e-4, "LASSO", None, None, settings)
    ref = LassoModel(reg_lambda=1e-4, auto_sign_constraints=True, auto_sign_threshold_t=1.5,
                     auto_sign_ewma_span=26).fit(d.x, d.y)
    np.testing.assert_allclose(np.array([row[1:] for row in out[1:]], dtype=float), ref.coef_,
                               atol=1e-12)
    assert (ref.derived_signs_ == 0).to_numpy().any()
    bad = udfs.FLASSO_FIT(r, f, 1e-4, "LASSO", None, None,
                          [["auto_sign_excluded_factors", "Rates; BOGUS"]])
    assert bad == ("#FLASSO! settings: row 1, column 2: auto_sign_excluded_factors names "
                   "'BOGUS', which is not a factor of factors")
    bad = udfs.FLASSO_FIT(r, f, 1e-4, "LASSO", None, None, [["auto_sign_variance", "hac"]])
    assert bad == ("#FLASSO! settings: row 1, column 2: auto_sign_variance: 'hac' is not one "
                   "of independent, date")


def test_workbook_setting_errors_name_the_cell():
    from xl_factorlasso.workbook import WorkbookInputError, refit

    io, _ = _demo_with_derived_signs({"reg_lambda": 1e-4, "auto_sign_constraints": True,
                                      "auto_sign_excluded_factors": "BOGUS"})
    with pytest.raises(WorkbookInputError) as info:
        refit(io)
    assert str(info.value) == ("FL_SETTINGS!B4: auto_sign_excluded_factors names 'BOGUS', "
                               "which is not a factor of FL_FACTORS")
    assert io.saved == 0


def test_skfolio_loading_matrix_passes_the_auto_sign_parameters():
    pytest.importorskip("skfolio")
    from xl_factorlasso.skfolio import LassoLoadingMatrix

    x, y = panel(seed=14, N=5)
    kw = dict(reg_lambda=2e-3, auto_sign_constraints=True, auto_sign_variance="date",
              auto_sign_excluded_factors=["f2"])
    loading = LassoLoadingMatrix(**kw).fit(y, x)
    direct = LassoModel(**kw).fit(x, y)
    pd.testing.assert_frame_equal(loading.model_.derived_signs_, direct.derived_signs_)
    np.testing.assert_allclose(loading.loading_matrix_, direct.coef_.to_numpy(), atol=1e-12)
