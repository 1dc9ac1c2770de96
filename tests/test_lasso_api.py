"""Estimator API: fitted attributes, predict/score, scikit-learn interoperability, warmup."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, TimeSeriesSplit
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from tests.conftest import make_panel
from xl_factorlasso import LassoModel, LassoModelType


def test_fitted_attributes_shapes_and_labels(panel):
    x, y, _ = panel
    m = LassoModel(model_type="HCGL", reg_lambda=0.05).fit(x, y)
    assert m.coef_.shape == (8, 4)
    assert list(m.coef_.index) == list(y.columns) and list(m.coef_.columns) == list(x.columns)
    for attr in ("alpha_const_", "intercept_", "r2_", "residual_variance_", "total_variance_"):
        s = getattr(m, attr)
        assert list(s.index) == list(y.columns) and np.isfinite(s).all(), attr
    assert m.clusters_.index.equals(y.columns) and m.linkage_.shape == (7, 4)
    assert m.cutoff_ > 0 and m.solver_status_ == "optimal" and m.solver_ == "fast"
    assert m.n_features_in_ == 4 and list(m.feature_names_in_) == list(x.columns)
    assert (m.n_obs_ == 120).all()
    # in-sample R^2 is 1 - ss_res / ss_total, with no span the intercept_ is zero
    np.testing.assert_allclose(m.r2_, 1 - m.residual_variance_ / m.total_variance_)
    np.testing.assert_allclose(m.intercept_, 0.0, atol=1e-12)


def test_predict_and_score_definitions(panel):
    x, y, _ = panel
    m = LassoModel(reg_lambda=0.02).fit(x, y)
    pred = m.predict(x)
    expected = x.to_numpy() @ m.coef_.to_numpy().T + m.alpha_const_.to_numpy()
    np.testing.assert_allclose(pred, expected)
    assert pred.index.equals(x.index) and list(pred.columns) == list(y.columns)
    resid = y - pred
    r2 = 1 - (resid**2).sum() / ((y - y.mean()) ** 2).sum()
    assert m.score(x, y) == pytest.approx(r2.mean(), rel=1e-12)
    # unweighted in-sample R^2 without a span equals the fitted diagnostics
    np.testing.assert_allclose(r2, m.r2_, rtol=1e-10)
    # numpy input gives numpy output, in the same positional order
    np.testing.assert_allclose(m.predict(x.to_numpy()), pred.to_numpy())


def test_alpha_const_is_ols_intercept_when_unpenalised(panel):
    x, y, _ = panel
    m = LassoModel(reg_lambda=0.0).fit(x, y)
    X1 = np.column_stack([np.ones(len(x)), x.to_numpy()])
    sol = np.linalg.lstsq(X1, y.to_numpy(), rcond=None)[0]
    np.testing.assert_allclose(m.alpha_const_, sol[0], atol=1e-6)
    np.testing.assert_allclose(m.coef_.to_numpy(), sol[1:].T, atol=1e-6)


def test_predict_without_demean_has_no_constant(panel):
    x, y, _ = panel
    m = LassoModel(reg_lambda=0.01, demean=False).fit(x, y)
    np.testing.assert_allclose(m.predict(x), x.to_numpy() @ m.coef_.to_numpy().T)


def test_score_skips_missing_and_constant_responses(panel):
    x, y, _ = panel
    m = LassoModel(reg_lambda=0.02).fit(x, y)
    y2 = y.copy()
    y2.iloc[:10, 0] = np.nan
    y2["a1"] = 1.0  # no variance: left out of the mean
    pred = m.predict(x)
    expected = []
    for c in y.columns:
        if c == "a1":
            continue
        ok = y2[c].notna()
        e = y2[c][ok] - pred[c][ok]
        expected.append(1 - (e**2).sum() / ((y2[c][ok] - y2[c][ok].mean()) ** 2).sum())
    assert m.score(x, y2) == pytest.approx(np.mean(expected), rel=1e-12)


def test_numpy_inputs_get_generated_names(panel):
    x, y, _ = panel
    m = LassoModel(reg_lambda=0.02).fit(x.to_numpy(), y.to_numpy())
    assert list(m.coef_.columns) == ["x0", "x1", "x2", "x3"]
    assert list(m.coef_.index) == [f"y{i}" for i in range(8)]
    ref = LassoModel(reg_lambda=0.02).fit(x, y)
    np.testing.assert_allclose(m.coef_.to_numpy(), ref.coef_.to_numpy(), atol=1e-10)


def test_get_set_params_and_clone():
    m = LassoModel(model_type=LassoModelType.FACTOR_CLUSTER_GROUP_LASSO, reg_lambda=0.3, span=20)
    params = m.get_params()
    assert params["reg_lambda"] == 0.3 and params["span"] == 20 and params["warmup_period"] == 12
    c = clone(m)
    assert c is not m and c.get_params() == params
    c.set_params(reg_lambda=0.1)
    assert m.reg_lambda == 0.3 and c.reg_lambda == 0.1
    with pytest.raises(ValueError, match="Invalid parameter 'alpha'"):
        m.set_params(alpha=1)
    assert "reg_lambda=0.3" in repr(m)


def test_pipeline_and_gridsearch(panel):
    x, y, _ = panel
    pipe = Pipeline([("id", FunctionTransformer()), ("lasso", LassoModel())])
    grid = GridSearchCV(pipe, {"lasso__reg_lambda": [1e-3, 0.05, 5.0]}, cv=TimeSeriesSplit(3))
    grid.fit(x.to_numpy(), y.to_numpy())
    # a huge penalty predicts the mean only: it cannot win on this data
    assert grid.best_params_["lasso__reg_lambda"] in (1e-3, 0.05)
    direct = [
        np.mean(
            [
                LassoModel(reg_lambda=lam)
                .fit(x.to_numpy()[tr], y.to_numpy()[tr])
                .score(x.to_numpy()[te], y.to_numpy()[te])
                for tr, te in TimeSeriesSplit(3).split(x)
            ]
        )
        for lam in (1e-3, 0.05, 5.0)
    ]
    np.testing.assert_allclose(grid.cv_results_["mean_test_score"], direct, rtol=1e-9)


def test_warmup_zeroes_short_responses():
    x, y, _ = make_panel(T=60, M=3, N=5)
    y.iloc[:52, 3] = np.nan  # 8 observations < 12
    m = LassoModel(model_type="HCGL", reg_lambda=0.01)
    # the names as a reader writes them (the note lands in FL_STATUS): no Python list repr
    with pytest.warns(UserWarning, match=r"warmup_period=12 .* set to zero: a3$"):
        m.fit(x, y)
    assert (m.coef_.loc["a3"] == 0).all() and np.isnan(m.r2_["a3"])
    assert np.isnan(m.alpha_const_["a3"]) and "a3" not in m.clusters_.index
    assert m.n_obs_["a3"] == 8
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m2 = LassoModel(model_type="HCGL", reg_lambda=0.01, warmup_period=None).fit(x, y)
    assert (m2.coef_.loc["a3"] != 0).any()


def test_nonneg_applies_without_signs_only(panel):
    x, y, true = panel
    m = LassoModel(reg_lambda=0.01, nonneg=True).fit(x, y)
    assert (m.coef_.to_numpy() >= 0).all()
    signs = pd.DataFrame(np.nan, index=y.columns, columns=x.columns)
    signs.iloc[0, 0] = 1
    m2 = LassoModel(reg_lambda=0.01, nonneg=True, factors_beta_loading_signs=signs).fit(x, y)
    assert (m2.coef_.to_numpy() < -0.05).any()  # factorlasso semantics: nonneg ignored


def test_single_response_group_model_is_lasso(panel):
    x, y, _ = panel
    one = y[["a0"]]
    a = LassoModel(model_type="FCGL", reg_lambda=0.05).fit(x, one)
    b = LassoModel(reg_lambda=0.05).fit(x, one)
    np.testing.assert_allclose(a.coef_, b.coef_, atol=1e-8)
    assert a.clusters_ is None


def test_model_type_parsing():
    assert LassoModelType.parse("hcgl") is LassoModelType.HIERARCHICAL_CLUSTER_GROUP_LASSO
    assert LassoModelType.GROUP_LASSO_CLUSTERS is LassoModelType.HIERARCHICAL_CLUSTER_GROUP_LASSO
    fcgl = LassoModelType.FACTOR_CLUSTER_GROUP_LASSO
    assert LassoModelType.parse("factor cluster group lasso") is fcgl
    assert LassoModelType.parse(1) is LassoModelType.LASSO
    assert LassoModelType.parse("LassoModelType.GROUP_LASSO") is LassoModelType.GROUP_LASSO
    assert LassoModelType.parse(2) is LassoModelType.UNILASSO  # factorlasso's integer
    with pytest.raises(ValueError):
        LassoModelType.parse(0)
