"""``loss_normalization``: factorlasso 1.0.6's "sample" (divide by T') and "weight_sum" (divide
each response by its own weight mass S_i), applied once in the sufficient statistics."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from tests.test_engine import TIGHT, assert_same_minimiser
from tests.test_lasso_reference_cvxpy import GROUPS, make_ragged_panel, make_signs_prior
from tests.test_parity_factorlasso import panel
from xl_factorlasso import LassoModel, LassoModelCV
from xl_factorlasso.core.cluster import ewm_lambda
from xl_factorlasso.core.linear_model._penalty import penalty_value
from xl_factorlasso.core.linear_model._preparation import prepare_panel

pytestmark = [
    pytest.mark.filterwarnings("ignore:solver CLARABEL returned an inaccurate solution"),
    pytest.mark.filterwarnings("ignore:Solution may be inaccurate"),
]

ALL_TYPES = ["LASSO", "GROUP_LASSO", "HCGL", "FCGL", "COOPERATIVE_GROUP_LASSO",
             "COOPERATIVE_CLUSTER_GROUP_LASSO"]
HARD_SIGNS = ["LASSO", "GROUP_LASSO", "HCGL", "FCGL"]


def _kw(model_type, y, **extra):
    kw = dict(model_type=model_type, warmup_period=None, **extra)
    if model_type in ("GROUP_LASSO", "COOPERATIVE_GROUP_LASSO"):
        kw["group_data"] = GROUPS if y.shape[1] == len(GROUPS) else pd.Series(
            [i % 3 for i in range(y.shape[1])], index=y.columns)
    return kw


def balanced_panel(seed=0, t_rows=120, m=4, n=7):
    x, y = make_ragged_panel(t_rows=t_rows, m=m, n=n, seed=seed)
    rng = np.random.default_rng(seed)
    x = x.fillna(0.1)
    return x, y.fillna(pd.DataFrame(rng.standard_normal(y.shape), index=y.index,
                                    columns=y.columns))


@pytest.mark.parametrize("model_type", ALL_TYPES)
def test_weight_sum_is_sample_on_a_balanced_panel_without_span(model_type):
    """S_i = T' for every response: the statistics are scaled by exactly 1."""
    x, y = balanced_panel()
    kw = _kw(model_type, y, reg_lambda=0.05, l1_weight=0.2)
    sample = LassoModel(**kw).fit(x, y)
    ws = LassoModel(loss_normalization="weight_sum", **kw).fit(x, y)
    np.testing.assert_array_equal(ws.coef_, sample.coef_)
    assert ws.reg_lambda_max_ == sample.reg_lambda_max_
    assert ws.objective_value_ == sample.objective_value_


@pytest.mark.parametrize("model_type", ALL_TYPES)
def test_closed_form_lambda_on_a_balanced_panel_with_span(model_type):
    """With a span every response has the mass S = sum_k lambda^k (k < T'), so weight_sum at
    lambda * T'/S is sample at lambda, with objectives in the ratio T'/S."""
    x, y = balanced_panel(seed=1)
    span = 26
    t_prime = len(y) - 1  # the EWMA demeaning drops the first row
    decay = ewm_lambda(span)
    mass = (1 - decay**t_prime) / (1 - decay)
    ratio = t_prime / mass
    kw = _kw(model_type, y, span=span, l1_weight=0.2)
    sample = LassoModel(reg_lambda=0.04, **kw).fit(x, y)
    ws = LassoModel(reg_lambda=0.04 * ratio, loss_normalization="weight_sum", **kw).fit(x, y)
    np.testing.assert_allclose(ws.coef_, sample.coef_, atol=1e-8)
    assert ws.reg_lambda_max_ == pytest.approx(sample.reg_lambda_max_ * ratio, rel=1e-10)
    assert ws.objective_value_ == pytest.approx(sample.objective_value_ * ratio, rel=1e-8)
    # the diagnostics are in the loss's EWMA norm either way
    np.testing.assert_allclose(ws.r2_, sample.r2_, atol=1e-9)
    np.testing.assert_allclose(ws.residual_variance_, sample.residual_variance_, rtol=1e-8)


def _direct_objective(x, y, coef, spec, reg_lambda, span):
    """sum_i sum_t w_ti (y_ti - x_t b_i)^2 / S_i + penalty, on the T' x N prepared arrays."""
    prep = prepare_panel(x, y, span=span)
    w = prep.weights()
    resid = prep.y - prep.x @ coef.T
    mass = w.sum(axis=0)
    loss = sum((w[:, i] * resid[:, i] ** 2).sum() / mass[i] for i in range(y.shape[1])
               if mass[i] > 0)
    return loss + penalty_value(coef, spec, reg_lambda)


@pytest.mark.parametrize("model_type", ["LASSO", "HCGL", "COOPERATIVE_CLUSTER_GROUP_LASSO"])
@pytest.mark.parametrize("span", [None, 30])
def test_objective_is_the_per_response_mass_loss_on_a_ragged_panel(model_type, span):
    x, y = make_ragged_panel(seed=2)
    model = LassoModel(loss_normalization="weight_sum",
                       **_kw(model_type, y, span=span, reg_lambda=0.03, l1_weight=0.1)).fit(x, y)
    spec = model._fit_setup_.spec
    for coef in (model.coef_.to_numpy(), np.zeros(model.coef_.shape),
                 np.random.default_rng(0).standard_normal(model.coef_.shape)):
        assert model.objective(coef) == pytest.approx(
            _direct_objective(x, y, coef, spec, 0.03, span), rel=1e-12)
    # and the short histories weigh more than in "sample": a different fit
    sample = LassoModel(**_kw(model_type, y, span=span, reg_lambda=0.03, l1_weight=0.1)).fit(
        x, y)
    assert np.abs(model.coef_.to_numpy() - sample.coef_.to_numpy()).max() > 1e-4


@pytest.mark.parametrize("span", [None, 30])
def test_without_penalty_each_response_keeps_its_least_squares_fit(span):
    """At lambda = 0 the loss is separable and scaling a response's loss does not move its
    minimiser: same coefficients and diagnostics on a ragged panel."""
    x, y = make_ragged_panel(seed=3)
    sample = LassoModel(reg_lambda=0.0, span=span, warmup_period=None).fit(x, y)
    ws = LassoModel(reg_lambda=0.0, span=span, warmup_period=None,
                    loss_normalization="weight_sum").fit(x, y)
    np.testing.assert_allclose(ws.coef_, sample.coef_, atol=1e-9)
    np.testing.assert_allclose(ws.r2_, sample.r2_, atol=1e-10)


@pytest.mark.parametrize("model_type", ["LASSO", "HCGL", "FCGL", "COOPERATIVE_GROUP_LASSO"])
@pytest.mark.parametrize("span", [None, 30])
def test_fast_engine_equals_cvxpy_reference(model_type, span):
    x, y = make_ragged_panel(seed=4)
    kw = _kw(model_type, y, span=span, reg_lambda=0.05, l1_weight=0.2,
             loss_normalization="weight_sum")
    if model_type in HARD_SIGNS:
        signs, prior = make_signs_prior(x, y)
        kw.update(factors_beta_loading_signs=signs, factors_beta_prior=prior)
    fast = LassoModel(engine="fast", **kw).fit(x, y)
    ref = LassoModel(engine="cvxpy", solver_params=TIGHT, **kw).fit(x, y)
    assert_same_minimiser(fast, ref)


def test_cross_validation_and_the_skfolio_loading_matrix_follow_it():
    x, y = make_ragged_panel(seed=5)
    base = LassoModel(model_type="HCGL", span=30, loss_normalization="weight_sum",
                      warmup_period=None)
    cv = LassoModelCV(base_model=base, lambdas=[0.01, 0.05], n_splits=3).fit(x, y)
    assert cv.best_model_.loss_normalization == "weight_sum"
    direct = LassoModel(model_type="HCGL", span=30, loss_normalization="weight_sum",
                        warmup_period=None, reg_lambda=cv.best_lambda_).fit(x, y)
    np.testing.assert_allclose(cv.best_model_.coef_, direct.coef_, atol=1e-12)
    skfolio = pytest.importorskip("xl_factorlasso.skfolio")
    # skfolio's convention: X are the assets, y the factors
    lm = skfolio.LassoLoadingMatrix(model_type="HCGL", span=30, reg_lambda=0.05,
                                    loss_normalization="weight_sum", warmup_period=None)
    lm.fit(y.fillna(0.0), x.fillna(0.0))
    ref = LassoModel(model_type="HCGL", span=30, reg_lambda=0.05, warmup_period=None,
                     loss_normalization="weight_sum").fit(x.fillna(0.0), y.fillna(0.0))
    np.testing.assert_allclose(lm.loading_matrix_, ref.coef_.to_numpy(), atol=1e-12)


@pytest.mark.parametrize("value, message", [
    ("mean", "loss_normalization must be 'sample' or 'weight_sum', got 'mean'"),
    ("Weight_Sum", "loss_normalization must be 'sample' or 'weight_sum', got 'Weight_Sum'"),
    (None, "loss_normalization must be 'sample' or 'weight_sum', got None"),
    (1, "loss_normalization must be 'sample' or 'weight_sum', got 1"),
])
def test_bad_values_are_refused_naming_the_parameter(value, message):
    x, y = make_ragged_panel(seed=0)
    with pytest.raises(ValueError) as err:
        LassoModel(loss_normalization=value).fit(x, y)
    assert str(err.value) == message


# ---------------------------------------------------------------- as factorlasso
@pytest.mark.parametrize("model_type", ["LASSO", "GROUP_LASSO", "HIERARCHICAL_CLUSTER_GROUP_LASSO",
                                        "FACTOR_CLUSTER_GROUP_LASSO", "COOPERATIVE_GROUP_LASSO",
                                        "COOPERATIVE_CLUSTER_GROUP_LASSO"])
@pytest.mark.parametrize("span", [None, 30])
@pytest.mark.parametrize("seed", [1, 2])
def test_parity_with_factorlasso(model_type, span, seed):
    fl = pytest.importorskip("factorlasso")
    x, y, signs, prior = panel(seed=seed)
    kw = dict(reg_lambda=0.2, span=span, l1_weight=0.3, factors_beta_prior=prior,
              loss_normalization="weight_sum")
    if model_type in ("GROUP_LASSO", "COOPERATIVE_GROUP_LASSO"):
        kw["group_data"] = pd.Series([i % 3 for i in range(y.shape[1])], index=y.columns)
    if not model_type.startswith("COOPERATIVE"):
        kw["factors_beta_loading_signs"] = signs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = fl.LassoModel(model_type=getattr(fl.LassoModelType, model_type), **kw).fit(
            x=x, y=y)
    ours = LassoModel(model_type=model_type, **kw).fit(x, y)
    assert ours.objective_value_ <= ours.objective(theirs.coef_) * (1 + 1e-9)
    np.testing.assert_allclose(ours.coef_, theirs.coef_.loc[y.columns, x.columns], atol=2e-4)
    np.testing.assert_allclose(ours.r2_, theirs.estimation_result_.r2, atol=1e-4)


# ---------------------------------------------------------------- the workbook
def test_workbook_setting_reaches_the_fit_and_a_bad_value_names_its_cell():
    from tests.workbook_helpers import demo_memory_book
    from xl_factorlasso.core.datasets import load_demo_panel
    from xl_factorlasso.workbook import refit

    d = load_demo_panel()
    settings = {"model_type": "HCGL", "reg_lambda": 1e-4, "n_clusters": 4, "span": 52,
                "loss_normalization": "weight_sum"}
    io = demo_memory_book(settings=settings)
    refit(io)
    coef = np.array([r[1:] for r in io.read(io.names()["FL_COEF"])[1:]], dtype=float)
    kw = dict(model_type="HCGL", reg_lambda=1e-4, n_clusters=4, span=52,
              factors_beta_loading_signs=d.signs, factors_beta_prior=d.prior)
    ref = LassoModel(loss_normalization="weight_sum", **kw).fit(d.x, d.y)
    np.testing.assert_allclose(np.nan_to_num(coef), ref.coef_, atol=1e-9)
    plain = LassoModel(**kw).fit(d.x, d.y)
    assert np.abs(ref.coef_.to_numpy() - plain.coef_.to_numpy()).max() > 1e-4

    io = demo_memory_book(settings={"loss_normalization": "mean"})
    before = {name: io.read(area) for name, area in io.names().items()}
    with pytest.raises(ValueError) as err:
        refit(io)
    assert str(err.value) == ("FL_SETTINGS!B2: loss_normalization: 'mean' is not one of "
                              "sample, weight_sum")
    assert {name: io.read(area) for name, area in io.names().items()} == before
