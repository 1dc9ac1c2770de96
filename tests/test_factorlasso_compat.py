"""What a user switching from factorlasso 1.0.6 by changing the import meets, against it live.

``fit(x, y, verbose, span, cluster_correlation_span=...)``, the aliases, ``copy``, ``summary``,
``plot_signs``, scikit-learn's tags / ``clone`` / ``Pipeline``, the utility functions under
factorlasso's names, the exception hierarchy and the top-level names of issue 15's items 1, 3
and 5. factorlasso is installed with the ``bench`` extra; the module is skipped without it.
"""

from __future__ import annotations

import pickle
import re
import types
import warnings

import numpy as np
import pandas as pd
import pytest

import xl_factorlasso as xf
from xl_factorlasso import LassoModel, ModelNotFittedError, SolveError

fl = pytest.importorskip("factorlasso")
from factorlasso.linear_model import _inspection as fl_inspection  # noqa: E402
from factorlasso.utils._ewm import InitType, NanBackfill  # noqa: E402

cvxpy = pytest.importorskip("cvxpy")


def panel(seed=1, T=150, M=5, N=12):
    """Sparse loadings, late starts, a gap, an early stop and a partly missing factor row."""
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2020-01-01", periods=T, freq="W")
    x = pd.DataFrame(rng.standard_normal((T, M)), columns=[f"f{i}" for i in range(M)], index=idx)
    b = rng.standard_normal((N, M)) * (rng.random((N, M)) < 0.5)
    y = pd.DataFrame(x.to_numpy() @ b.T + rng.standard_normal((T, N)),
                     columns=[f"y{i}" for i in range(N)], index=idx)
    y.iloc[:40, 2] = np.nan
    y.iloc[100:103, 7] = np.nan
    y.iloc[-20:, 9] = np.nan
    x.iloc[10, 1] = np.nan
    return x, y


def both(model_type="LASSO", **kw):
    """(ours, theirs), fitted on ``panel()`` with the same parameters."""
    x, y = panel()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = fl.LassoModel(model_type=getattr(fl.LassoModelType, model_type), **kw).fit(
            x=x, y=y)
    ours = LassoModel(model_type=model_type, **kw).fit(x, y)
    return ours, theirs, x, y


def assert_same_fit(ours, theirs):
    # factorlasso stops at Clarabel's default tolerances (~1e-4 from the optimum in places,
    # see test_parity_factorlasso); ours is certified and never worse in the objective.
    assert ours.objective_value_ <= ours.objective(theirs.coef_) * (1 + 1e-9)
    np.testing.assert_allclose(ours.coef_, theirs.coef_, atol=2e-4)


# ---------------------------------------------------------------------------- aliases
@pytest.mark.parametrize("model_type", ["LASSO", "HIERARCHICAL_CLUSTER_GROUP_LASSO"])
def test_aliases_equal_factorlassos(model_type):
    ours, theirs, x, y = both(model_type, reg_lambda=0.03, span=40)
    assert_same_fit(ours, theirs)
    np.testing.assert_allclose(ours.estimated_betas, theirs.estimated_betas, atol=2e-4)
    assert ours.estimated_betas is ours.coef_
    pd.testing.assert_frame_equal(ours.x, theirs.x)
    pd.testing.assert_frame_equal(ours.y, theirs.y)
    if model_type == "LASSO":
        assert ours.clusters is theirs.clusters is None
        assert ours.linkage is theirs.linkage is None
        assert ours.cutoff is theirs.cutoff is None
    else:
        pd.testing.assert_series_equal(ours.clusters, theirs.clusters, check_names=False,
                                       check_dtype=False)
        np.testing.assert_allclose(ours.linkage, theirs.linkage, rtol=1e-10)
        assert ours.cutoff == pytest.approx(theirs.cutoff, rel=1e-10)
        assert ours.clusters is ours.clusters_ and ours.linkage is ours.linkage_


def test_aliases_before_fit_are_none_and_read_only():
    model = LassoModel()
    theirs = fl.LassoModel()
    for name in ("estimated_betas", "clusters", "linkage", "cutoff", "x", "y"):
        assert getattr(model, name) is None
        assert getattr(theirs, name) is None
        with pytest.raises(AttributeError):
            setattr(model, name, pd.DataFrame())
    assert "x" not in model.get_params() and "estimated_betas" not in model.get_params()


# ---------------------------------------------------------------------------- fit(...)
@pytest.mark.parametrize("model_type", ["LASSO", "HIERARCHICAL_CLUSTER_GROUP_LASSO"])
def test_per_call_span_is_a_model_built_with_that_span(model_type):
    x, y = panel()
    model = LassoModel(model_type=model_type, reg_lambda=0.03, auto_sign_constraints=True,
                       auto_sign_use_fit_span=True)
    model.fit(x, y, span=25)
    built = LassoModel(model_type=model_type, reg_lambda=0.03, span=25,
                       auto_sign_constraints=True, auto_sign_use_fit_span=True).fit(x, y)
    assert model.span is None  # the parameter is unchanged: the span was for that fit only
    assert model.effective_span_ == 25 == built.effective_span_
    assert model.effective_cluster_correlation_span_ == built.effective_cluster_correlation_span_
    assert model.effective_sign_span_ == 25
    for name in ("coef_", "alpha_const_", "intercept_", "r2_", "derived_signs_"):
        np.testing.assert_array_equal(getattr(model, name), getattr(built, name))
    if model_type != "LASSO":
        assert model.effective_cluster_correlation_span_ == 25
        np.testing.assert_array_equal(model.linkage_, built.linkage_)
    # factorlasso's fit(span=...) gives the same fit
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = fl.LassoModel(model_type=getattr(fl.LassoModelType, model_type),
                               reg_lambda=0.03, auto_sign_constraints=True,
                               auto_sign_use_fit_span=True).fit(x, y, span=25)
    assert theirs.span is None and theirs.effective_span_ == 25
    assert_same_fit(model, theirs)
    pd.testing.assert_frame_equal(model.derived_signs_, theirs.derived_signs_,
                                  check_dtype=False)


def test_per_call_span_leaves_a_configured_cluster_span_and_positional_order():
    x, y = panel()
    kw = dict(model_type="HCGL", reg_lambda=0.03, cluster_correlation_span=60)
    model = LassoModel(**kw).fit(x, y, False, 25)  # factorlasso's order: verbose, span
    built = LassoModel(span=25, **kw).fit(x, y)
    assert model.effective_cluster_correlation_span_ == 60
    np.testing.assert_array_equal(model.coef_, built.coef_)
    # a per-call clustering span overrides both, for that fit only
    model.fit(x, y, span=25, cluster_correlation_span=10)
    assert model.effective_cluster_correlation_span_ == 10
    assert model.cluster_correlation_span == 60
    np.testing.assert_array_equal(
        model.linkage_,
        LassoModel(**{**kw, "cluster_correlation_span": 10}, span=25).fit(x, y).linkage_)


def test_bad_per_call_span_is_refused_and_restores_the_parameters():
    x, y = panel()
    model = LassoModel(reg_lambda=0.03, span=30).fit(x, y)
    before = model.coef_
    with pytest.raises(ValueError, match=r"^span must be a finite number >= 1, got 0\.5$"):
        model.fit(x, y, span=0.5)
    assert model.span == 30 and model.coef_ is before  # nothing changed
    with pytest.raises(ValueError, match="span"):
        fl.LassoModel(reg_lambda=0.03).fit(x, y, span=0.5)


def test_per_call_verbose_reaches_the_solver_and_is_restored(capfd):
    x, y = panel()
    model = LassoModel(reg_lambda=0.03, engine="cvxpy")
    model.fit(x, y)
    assert "Clarabel" not in capfd.readouterr().out
    model.fit(x, y, verbose=True)
    assert "Clarabel" in capfd.readouterr().out
    assert model.verbose is False


# ---------------------------------------------------------------------------- copy
def test_copy_is_unfitted_with_overrides_as_factorlasso():
    x, y = panel()
    prior = pd.DataFrame(0.0, index=y.columns, columns=x.columns)
    model = LassoModel(reg_lambda=0.03, span=30, factors_beta_prior=prior).fit(x, y)
    twin = model.copy()
    assert not hasattr(twin, "coef_") and twin.estimated_betas is None
    assert twin.get_params() == model.get_params()
    assert twin.factors_beta_prior is prior  # shared, as factorlasso's copy
    other = model.copy({"reg_lambda": 0.1})
    assert other.reg_lambda == 0.1 and other.span == 30 and model.reg_lambda == 0.03
    theirs = fl.LassoModel(reg_lambda=0.03).fit(x, y)
    assert theirs.copy().coef_ is None and theirs.copy({"reg_lambda": 0.1}).reg_lambda == 0.1
    with pytest.raises(TypeError):
        model.copy({"no_such": 1})
    with pytest.raises(TypeError):
        theirs.copy({"no_such": 1})


# ---------------------------------------------------------------------------- summary
_LABELS = {  # factorlasso's text label -> our key
    "model_type": "model_type", "responses (N)": "n_responses", "factors (M)": "n_factors",
    "reg_lambda": "reg_lambda", "l1_weight (alpha)": "l1_weight", "clusters (HCGL)": "n_clusters",
    "sign-gated cells": "sign_gated_cells", "mean R^2": "mean_r2",
}


def _parse_fl_summary(text: str) -> dict:
    out = {}
    for line in text.splitlines()[2:]:
        label, value = (part.strip() for part in line.split(":", 1))
        if label == "active coefs":
            k, total, share = re.fullmatch(r"(\d+) / (\d+) \(([\d.]+)%\)", value).groups()
            out.update(active_coefs=int(k), n_coefs=int(total), active_share=float(share) / 100)
        else:
            out[_LABELS[label]] = value
    return out


@pytest.mark.parametrize("model_type, kw", [
    ("LASSO", {}),
    ("HIERARCHICAL_CLUSTER_GROUP_LASSO", {"auto_sign_constraints": True, "l1_weight": 0.2}),
])
def test_summary_has_factorlassos_content(model_type, kw):
    ours, theirs, _, _ = both(model_type, reg_lambda=0.03, **kw)
    summary = ours.summary()
    assert isinstance(summary, pd.Series) and summary.name == "summary"
    # every number is the one computed from the fitted attributes
    coef = ours.coef_.to_numpy()
    assert summary["active_coefs"] == int((np.abs(coef) > 1e-8).sum())
    assert summary["n_coefs"] == coef.size == 60
    assert summary["active_share"] == summary["active_coefs"] / 60
    assert summary["mean_r2"] == pytest.approx(np.nanmean(ours.r2_), abs=1e-15)
    # factorlasso's own summary of the same fitted attributes has the same content ...
    fitted = types.SimpleNamespace(
        coef_=ours.coef_, model_type=getattr(fl.LassoModelType, model_type),
        reg_lambda=ours.reg_lambda, l1_weight=ours.l1_weight, clusters_=ours.clusters_,
        auto_sign_constraints=ours.auto_sign_constraints, derived_signs_=ours.derived_signs_,
        estimation_result_=ours.estimation_result_)
    text = _parse_fl_summary(fl_inspection.summary(fitted))
    assert list(text) == [k for k in summary.index if k in text]
    assert set(summary.index) == set(text)
    assert text["model_type"] == summary["model_type"] == model_type
    for key in ("n_responses", "n_factors", "n_clusters", "sign_gated_cells"):
        if key in text:
            assert int(text[key]) == summary[key]
    for key in ("active_coefs", "n_coefs"):
        assert text[key] == summary[key]
    assert text["active_share"] == pytest.approx(summary["active_share"], abs=5e-4)
    assert float(text["reg_lambda"]) == summary["reg_lambda"] == 0.03
    assert float(text["l1_weight"]) == summary["l1_weight"]
    assert float(text["mean_r2"]) == pytest.approx(summary["mean_r2"], abs=5e-5)
    # ... and factorlasso's fit gives the same numbers, to its solver tolerance
    assert summary["mean_r2"] == pytest.approx(np.nanmean(theirs.estimation_result_.r2),
                                               abs=1e-5)
    if ours.clusters_ is not None:
        assert summary["n_clusters"] == theirs.clusters_.nunique()


def test_summary_before_fit_is_a_runtime_error_in_both():
    with pytest.raises(RuntimeError, match="not fitted yet: call fit first"):
        LassoModel().summary()
    with pytest.raises(RuntimeError):
        fl.LassoModel().summary()


# ---------------------------------------------------------------------------- plot_signs
def test_plot_signs_draws_the_sign_matrix():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ours, theirs, x, _ = both("HIERARCHICAL_CLUSTER_GROUP_LASSO", reg_lambda=0.03,
                              auto_sign_constraints=True)
    ax = ours.plot_signs()
    assert isinstance(ax, matplotlib.axes.Axes)
    assert isinstance(theirs.plot_signs(), matplotlib.axes.Axes)  # what factorlasso returns
    drawn = ax.images[0].get_array()
    signs = ours.derived_signs_.to_numpy(dtype=float)
    np.testing.assert_array_equal(np.ma.getdata(drawn)[~np.isnan(signs)],
                                  signs[~np.isnan(signs)])
    np.testing.assert_array_equal(np.ma.getmaskarray(drawn), np.isnan(signs))
    assert [t.get_text() for t in ax.get_xticklabels()] == list(x.columns)
    _, given = plt.subplots()
    assert ours.plot_signs(ax=given) is given
    plt.close("all")


def test_plot_signs_without_a_sign_matrix_is_a_runtime_error_in_both():
    ours, theirs, _, _ = both("LASSO", reg_lambda=0.03)
    with pytest.raises(RuntimeError, match=r"^plot_signs: this fit used no sign matrix"):
        ours.plot_signs()
    with pytest.raises(RuntimeError):
        theirs.plot_signs()
    with pytest.raises(ModelNotFittedError):
        LassoModel().plot_signs()


# ---------------------------------------------------------------------------- scikit-learn
def test_sklearn_tags_clone_and_pipeline():
    sklearn = pytest.importorskip("sklearn")
    from sklearn.base import clone, is_regressor
    from sklearn.pipeline import Pipeline
    from sklearn.utils import get_tags

    del sklearn
    ours, theirs = LassoModel(reg_lambda=0.03, span=30), fl.LassoModel(reg_lambda=0.03)
    for tags in (get_tags(ours), get_tags(theirs)):
        assert tags.estimator_type == "regressor"
        assert tags.target_tags.multi_output and tags.target_tags.required
        assert tags.input_tags.allow_nan
    assert is_regressor(ours)

    twin = clone(ours)
    assert twin is not ours and twin.get_params() == ours.get_params()
    x, y = panel()
    xa, ya = x.to_numpy(), y.to_numpy()
    pipe = Pipeline([("model", clone(ours))]).fit(xa, ya)
    direct = LassoModel(reg_lambda=0.03, span=30).fit(xa, ya)
    np.testing.assert_array_equal(pipe.predict(xa), direct.predict(xa))
    assert pipe.score(xa, ya) == direct.score(xa, ya)
    # NaN in y (and in x) is accepted, as the tags declare
    assert np.isnan(ya).any() and np.isnan(xa).any()


# ---------------------------------------------------------------------------- utilities
def _nan_data(seed=4, T=80, N=4):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((T, N))
    a[:7, 1] = np.nan  # late start
    a[30:34, 2] = np.nan  # a gap
    a[50, :] = np.nan  # an empty row
    a[0, 3] = np.nan
    a[-5:, 0] = np.inf  # treated as missing by both
    return a


@pytest.mark.parametrize("kind", ["frame", "series", "array", "array1d"])
@pytest.mark.parametrize("kw", [
    {"span": 12}, {"span": 1.0}, {"ewm_lambda": 0.9}, {},
    {"span": 12, "init_type": InitType.MEAN}, {"span": 12, "init_type": InitType.ZERO},
    {"span": 5, "init_type": InitType.VAR}, {"span": 12, "init_value": 0.25},
])
def test_compute_ewm_equals_factorlassos(kind, kw):
    a = _nan_data()
    idx = pd.date_range("2021-01-01", periods=len(a), freq="D")
    data = {"frame": pd.DataFrame(a, index=idx, columns=list("abcd")),
            "series": pd.Series(a[:, 1], index=idx, name="b"),
            "array": a, "array1d": a[:, 2]}[kind]
    ours = xf.compute_ewm(data, **kw)
    theirs = fl.compute_ewm(data, **kw)
    assert type(ours) is type(theirs)
    np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), rtol=1e-12, atol=1e-14)
    assert np.array_equal(np.isnan(np.asarray(ours)), np.isnan(np.asarray(theirs)))
    if isinstance(data, (pd.DataFrame, pd.Series)):
        assert ours.index.equals(theirs.index)


def test_compute_ewm_init_type_by_name_and_refused_options():
    a = _nan_data()
    np.testing.assert_array_equal(xf.compute_ewm(a, span=9, init_type="mean"),
                                  xf.compute_ewm(a, span=9, init_type=InitType.MEAN))
    with pytest.raises(ValueError, match=r"^nan_backfill \(only FFILL, the fit's rule, is "
                                         r"supported\) must be one of FFILL, got "):
        xf.compute_ewm(a, span=9, nan_backfill=NanBackfill.ZERO_FILL)
    with pytest.raises(ValueError, match=r"^init_type must be one of X0, ZERO, MEAN, VAR"):
        xf.compute_ewm(a, span=9, init_type="median")
    with pytest.raises(ValueError, match=r"^ewm_lambda must be a finite number in \[0, 1\), "
                                         r"got 1\.0$"):
        xf.compute_ewm(a, ewm_lambda=1.0)
    with pytest.raises(ValueError, match=r"^span must be a finite number >= 1, got 0\.5$"):
        xf.compute_ewm(a, span=0.5)


@pytest.mark.parametrize("kw", [
    {"span": 10}, {"span": 10, "is_corr": True}, {"ewm_lambda": 0.97, "is_corr": True}, {},
])
@pytest.mark.parametrize("cross, start", [(False, False), (True, False), (False, True)])
def test_compute_ewm_covar_equals_factorlassos(kw, cross, start):
    a = _nan_data()
    a = a - np.nanmean(np.where(np.isfinite(a), a, np.nan), axis=0)
    b = _nan_data(seed=5) if cross else None
    covar0 = np.full((4, 4), 0.1) + np.eye(4) if start else None
    if start:
        covar0[0, 1] = np.nan  # counted as 0 by both
    ours = xf.compute_ewm_covar(a, b, covar0=covar0, **kw)
    theirs = fl.compute_ewm_covar(a, b, covar0=covar0, **kw)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-14)


def test_compute_ewm_covar_of_one_observation_equals_factorlassos():
    row = np.array([0.5, -1.0, np.nan])
    covar0 = np.eye(3)
    for kw in ({"span": 5}, {"span": 5, "is_corr": True}):
        np.testing.assert_allclose(xf.compute_ewm_covar(row, covar0=covar0, **kw),
                                   fl.compute_ewm_covar(row, covar0=covar0, **kw), rtol=1e-12)
    with pytest.raises(ValueError, match=r"^b must have the shape of a \(3,\), got \(2,\)$"):
        xf.compute_ewm_covar(row, np.ones(2))


@pytest.mark.parametrize("span", [None, 10, 1.5])
@pytest.mark.parametrize("demean", [True, False])
def test_get_x_y_np_equals_factorlassos(span, demean):
    x, y = panel()
    x.iloc[20, :] = np.nan  # an all-missing factor row masks every response there
    ours = xf.get_x_y_np(x, y, span=span, demean=demean)
    theirs = fl.get_x_y_np(x, y, span=span, demean=demean)
    for a, b in zip(ours, theirs, strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype == np.float64
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    # a Series on each side
    ours = xf.get_x_y_np(x["f0"], y["y3"], span=span, demean=demean)
    theirs = fl.get_x_y_np(x["f0"], y["y3"], span=span, demean=demean)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_get_x_y_np_refuses_different_dates():
    x, y = panel()
    with pytest.raises(ValueError, match=r"^x and y have different row labels"):
        xf.get_x_y_np(x, y.shift(1, freq="D"))


@pytest.mark.parametrize("order", [None, ["b", "a", "c"], ["c", "a"]])
def test_set_group_loadings_equals_factorlassos(order):
    groups = pd.Series(["a", "b", "a", "c", "b"], index=[f"y{i}" for i in range(5)])
    ours = xf.set_group_loadings(groups, group_order=order)
    theirs = fl.set_group_loadings(groups, group_order=order)
    pd.testing.assert_frame_equal(ours, theirs)
    assert ours.sum(axis=1).le(1).all()
    with pytest.raises(ValueError, match=r"^group_data must be a pandas Series, got list$"):
        xf.set_group_loadings(["a", "b"])


# ---------------------------------------------------------------------------- exceptions
def test_unfitted_model_is_caught_by_both_hierarchies():
    x, _ = panel()
    for call in (lambda m: m.predict(x), lambda m: m.summary(), lambda m: m.objective(None)):
        with pytest.raises(ModelNotFittedError, match=r"^this LassoModel is not fitted yet"):
            call(LassoModel())
        for cls in (RuntimeError, ValueError):  # factorlasso's, and ours before
            with pytest.raises(cls):
                call(LassoModel())
    with pytest.raises(RuntimeError, match="not fitted"):
        fl.LassoModel().predict(x)


def test_bad_input_is_a_valueerror_in_both():
    x, y = panel()
    with pytest.raises(ValueError, match=r"^l1_weight must be in \[0, 1\], got 2$"):
        LassoModel(l1_weight=2).fit(x, y)  # validated in fit (scikit-learn's convention) ...
    with pytest.raises(ValueError):
        fl.LassoModel(l1_weight=2)  # ... where factorlasso validates in its constructor


def test_failed_solve_is_caught_as_cvxpys_solver_error(iterations_only):
    x, y = panel()
    # an iteration budget far too small to certify: the fast engine gives up
    model = LassoModel(reg_lambda=0.03, engine="fast", engine_params={"max_iter": 2})
    with pytest.raises(SolveError):
        model.fit(x, y)
    assert not hasattr(model, "coef_")
    try:
        model.fit(x, y)
    except cvxpy.error.SolverError as err:  # factorlasso's class on a failed solve
        caught = err
    assert isinstance(caught, RuntimeError) and isinstance(caught, SolveError)
    assert type(caught).__name__ == "SolveError"
    again = pickle.loads(pickle.dumps(caught))
    assert str(again) == str(caught) and again.gap == caught.gap
    assert again.attempts == caught.attempts
    # factorlasso's failed solve raises that class
    with pytest.raises(cvxpy.error.SolverError):
        fl.LassoModel(reg_lambda=0.03, solver="NO_SUCH_SOLVER").fit(x, y)


# ---------------------------------------------------------------------------- names
IN_SCOPE = {  # factorlasso 1.0.6's top-level names covered by issue 15 (and 11)
    "LassoModel", "LassoModelCV", "LassoModelType", "LassoEstimationResult",
    "derive_sign_constraints", "validate_cluster_signs",  # item 1
    "DependenceMeasure", "DistanceTransform", "ClusterCorrelationTransform",  # item 3
    "ClusterCorrelationTransformResult", "compute_dependence_matrix", "compute_gerber_matrix",
    "remove_first_principal_component", "apply_cluster_correlation_transform",
    "compute_clusters_from_corr_matrix",
    "compute_ewm", "compute_ewm_covar", "get_x_y_np", "set_group_loadings",  # item 5
    "CurrentFactorCovarData", "RollingFactorCovarData",  # issue 11's rolling containers
    "ExpertPriorResolution", "map_expert_factor_priors",  # item 2's expert prior map
    "compute_expert_prior_statistics",
}


def test_factorlasso_top_level_names():
    have = sorted(name for name in fl.__all__ if name in xf.__all__)
    missing = sorted(set(fl.__all__) - set(have))
    print(f"\nfactorlasso {fl.__version__}: {len(have)} of {len(fl.__all__)} top-level names "
          f"here: {have}\nnot here: {missing}")
    assert IN_SCOPE <= set(fl.__all__)
    assert IN_SCOPE <= set(have)
    for name in IN_SCOPE:
        assert callable(getattr(xf, name)), name
