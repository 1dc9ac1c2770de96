"""The duality gap's rounding floor (``FastEngine.gap_floors``, ``_within_rounding``).

A nonneg LASSO at a tiny penalty on a wide fold (40 rows, 100 factors, 20 responses: the fourth
training window of ``LassoModelCV``'s default splits of a (60, 100, 20) panel) interpolates with
39 loadings per response: the objective is ~1e-4 while the gradient's parts are ~1, so no
double-precision point need show a relative gap of 1e-8. Before the floor, that fit failed on
every engine and ``LassoModelCV`` lost its score. The references here are independent of the
engine's certificate: the gap recomputed from the residuals of the data, and the optimality
conditions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.test_homotopy import _fold
from xl_factorlasso import LassoModel, LassoModelCV, make_factor_panel
from xl_factorlasso.core.exceptions import SolveError
from xl_factorlasso.core.linear_model import FastEngine
from xl_factorlasso.core.linear_model._gap_floor import FLOOR_CAP, FLOOR_EVERY, floor_share

LAM = 1e-6


def _engine(x, y, **kw):
    setup = LassoModel(warmup_period=None, **kw)._setup(x, y)
    return FastEngine(setup.stats, setup.spec)


def _residual_gap(x, y, coef, lam):
    """The nonneg LASSO's duality gap from the centred data's residuals, per response:
    ``F(b) - D(theta)`` at the scaled dual point ``theta = (2/T) r s`` with the largest
    ``s <= 1`` that keeps ``X'theta <= lambda`` (the nonneg dual constraint)."""
    xc = x - x.mean(axis=0)
    yc = y - y.mean(axis=0)
    t = len(xc)
    r = yc - xc @ coef.T
    v = (2.0 / t) * (xc.T @ r).T  # -gradient, (N, M)
    s = np.minimum(1.0, lam / np.maximum(v.max(axis=1), 1e-300))
    primal = (r * r).sum(axis=0) / t + lam * np.abs(coef).sum(axis=1)
    # D(theta) = (1/T)(|y|^2 - |y - (T/2) theta|^2) for f(z) = (1/T)|y - z|^2
    dual = ((yc * yc).sum(axis=0) - ((yc - r * s) ** 2).sum(axis=0)) / t
    return primal - dual, primal


def test_newton_point_of_an_interpolating_fold_is_certified_within_rounding():
    x, y = _fold()
    fit = LassoModel(warmup_period=None, nonneg=True, reg_lambda=LAM).fit(x, y)
    assert fit.solver_ == "fast"
    assert 1e-8 < fit.duality_gap_ < 1e-7  # within tol only with the floor
    coef = fit.coef_.to_numpy()
    assert ((coef != 0).sum(axis=1) == 39).all() and (coef >= 0).all()
    engine = _engine(x, y, nonneg=True)
    gaps, objs = engine.unit_gaps(coef, LAM)
    floors = engine.gap_floors(coef)
    assert (gaps <= floors).all() and (gaps > 0.01 * floors).any()
    assert engine._within_rounding(coef, LAM, gaps, objs, 1e-8).all()
    # the gap from the data's residuals, written here, says the same
    gap, primal = _residual_gap(x.to_numpy(), y.to_numpy(), coef, LAM)
    assert gap.sum() / primal.sum() < 1e-7
    np.testing.assert_allclose(primal, objs, rtol=1e-7)  # (the Gram's loss: ~1e-11 rounding)


def test_a_point_off_the_minimiser_is_not_passed_by_the_floor():
    """The floor excuses rounding, not distance: the fold's answer with one loading moved by
    3e-13 has a gap within tol plus its floor, response by response, but that cell's gradient
    is off by more than its rounding, and the point is refused; moved by 1e-13 (about 200
    units in the last place of that loading), it is rounding and passes."""
    x, y = _fold()
    engine = _engine(x, y, nonneg=True)
    coef = LassoModel(warmup_period=None, nonneg=True, reg_lambda=LAM).fit(x, y).coef_.to_numpy()
    assert engine.certificate(coef, LAM)[1]
    cell = np.flatnonzero(coef[0])[0]
    for step, passes in ((3e-13, False), (1e-13, True)):
        moved = coef.copy()
        moved[0, cell] += step
        gaps, objs = engine.unit_gaps(moved, LAM)
        assert (gaps <= 1e-8 * objs + engine.gap_floors(moved)).all()
        rel, certified = engine.certificate(moved, LAM)
        assert rel > 1e-8 and certified == passes


def test_cross_validation_on_the_wide_nonneg_panel_keeps_every_score():
    panel = make_factor_panel(60, 100, 20, seed=0)
    cv = LassoModelCV(base_model=LassoModel(warmup_period=None, nonneg=True), refit=False)
    cv.fit(panel.x, panel.y)
    assert cv.fold_errors_ == {} and np.isfinite(cv.cv_scores_.to_numpy()).all()
    assert cv.lambdas_.min() == pytest.approx(LAM)


@pytest.mark.parametrize("kw", [{}, {"nonneg": True}])
def test_the_floor_is_negligible_on_ordinary_fits(kw):
    """On a full-rank panel at 0.05 of lambda_max the floor is below 1e-13 of the objective:
    the certificate is the plain gap there."""
    panel = make_factor_panel(500, 10, 50, seed=2)
    model = LassoModel(warmup_period=None, **kw)
    lam = 0.05 * model.lambda_max(panel.x, panel.y)
    engine = _engine(panel.x, panel.y, **kw)
    result = engine.solve(lam)
    gaps, objs = engine.unit_gaps(result.coef, lam)
    assert result.certified and result.gap <= 1e-8
    assert engine.gap_floors(result.coef).sum() < 1e-13 * objs.sum()


def test_group_geometries_have_no_floor():
    """Row groups keep the plain gap (their iterations reach it on wide panels: a floor there
    would pass CVXPY's interior points)."""
    panel = make_factor_panel(60, 100, 8, seed=10)
    engine = _engine(panel.x, panel.y, model_type="HIERARCHICAL_CLUSTER_GROUP_LASSO",
                     l1_weight=0.1)
    assert engine.geometry == "row"
    coef = engine.prior + 0.01
    gaps, objs = engine.unit_gaps(coef, 1e-5)
    assert not engine._within_rounding(coef, 1e-5, gaps, objs, 1e-8).any()


def _late_response(seed):
    """A constant factor and a response observed on 7 of 33 rows, for 10 factors."""
    rng = np.random.default_rng(seed)
    index = pd.date_range("2015-01-02", periods=33, freq="W-FRI")
    x = pd.DataFrame(rng.standard_normal((33, 10)), index=index,
                     columns=[f"f{j}" for j in range(10)])
    x["f9"] = 0.0
    y = pd.DataFrame({"y0": x.iloc[:, :3].sum(axis=1) + rng.standard_normal(33)})
    y.iloc[:26, 0] = np.nan
    return x, y


@pytest.mark.filterwarnings("ignore:x. factor .f9. is constant on every row")  # _late_response
@pytest.mark.parametrize("seed, fraction", [(5, 0.1), (12, 0.1), (7, 0.01)])
def test_a_late_response_is_certified_by_the_fast_engine(seed, fraction):
    """The random search's case: Newton systems were refused only above the panel's 33 rows,
    so a support of 8 or 9 cells on the response's 7 rows was solved (singular but for
    round-off) into loadings of 1e16, stationary to round-off. The floor then passed a relative
    gap of 1 (since capped, below). The systems are now bounded by the response's own rank:
    the fast engine certifies the fit itself, at the CVXPY reference's objective."""
    x, y = _late_response(seed)
    lam = fraction * LassoModel(warmup_period=None).lambda_max(x, y)
    fit = LassoModel(warmup_period=None, reg_lambda=lam, engine="fast").fit(x, y)
    reference = LassoModel(warmup_period=None, reg_lambda=lam, engine="cvxpy").fit(x, y)
    assert fit.solver_ == "fast" and fit.duality_gap_ <= 1e-8
    assert fit.objective_value_ == pytest.approx(reference.objective_value_, rel=1e-8)
    assert np.abs(fit.coef_.to_numpy()).max() < 10.0
    assert (fit.coef_.to_numpy() != 0).sum() <= 7  # no more free loadings than rows


@pytest.mark.filterwarnings("ignore:x. factor .f9. is constant on every row")  # _late_response
@pytest.mark.parametrize("seed", [5, 12])
def test_the_floor_never_excuses_a_diverged_point(seed):
    """The floor grows with the loadings: at the minimiser moved 1e15 along a null direction
    of the response's Gram (its objective unchanged but for round-off) it was as large as the
    objective, and a relative gap of 1 passed as "within rounding" (random search). It now
    excuses at most 100 tol of the objective."""
    x, y = _late_response(seed)
    lam = 0.1 * LassoModel(warmup_period=None).lambda_max(x, y)
    engine = _engine(x, y)
    coef = LassoModel(warmup_period=None, reg_lambda=lam, engine="cvxpy").fit(
        x, y).coef_.to_numpy()
    vals, vecs = np.linalg.eigh(engine.gram[engine.pattern[0]][:9, :9])
    assert vals[0] < 1e-12 * vals[-1]  # 7 rows, 9 factors: a null space
    far = coef.copy()
    far[0, :9] += 1e15 * vecs[:, 0]
    gaps, objs = engine.unit_gaps(far, lam)
    assert engine.gap_floors(far).sum() > 1e-3 * abs(objs.sum())  # what the floor would excuse
    assert not engine._within_rounding(far, lam, gaps, objs, 1e-8).any()


def _wide_fold(scale):
    """7 rows, 20 factors, 10 responses; the factors multiplied by ``scale``, the prior not:
    at ``scale=1e4`` the prior's loadings are 1e4 times too large for the factors, the Gram's
    products with them ~1e9 against an objective of ~1 (the random search's seed 1139)."""
    panel = make_factor_panel(22, 20, 10, seed=1139)
    y = panel.y.iloc[:7]
    return panel.x.iloc[:7] * scale, y, panel.prior


def _group_kw(model_type, y):
    kw = {"GROUP_LASSO": {"group_data": pd.Series(["a"] * 5 + ["b"] * 5, index=y.columns)},
          "FACTOR_CLUSTER_GROUP_LASSO": {"n_clusters": 2},
          "HIERARCHICAL_CLUSTER_GROUP_LASSO": {"n_clusters": 2, "l1_weight": 0.3}}[model_type]
    return dict(model_type=model_type, warmup_period=None, **kw)


def _spent(error):
    """The iterations a floor SolveError reports ("... after N iterations)")."""
    return int(str(error).rsplit("after ", 1)[1].split()[0])


@pytest.mark.parametrize("engine, kw", [("fast", {}), ("auto", {"nonneg": True})])
def test_an_uncertifiable_gap_stops_fcgl_blocks_at_once(engine, kw):
    """The floor's early stop, first written for cooperative blocks, holds for FCGL blocks:
    the fit says within one check of the floor that no point can be certified, where it spent
    20,000 iterations (engine "fast"), or two CLARABEL solves and a 20,000-iteration polish
    (engine "auto"), before a SolveError all the same. With a box, "auto" probes the
    iterations before CVXPY: the probe stops it."""
    x, y, prior = _wide_fold(1e4)
    if kw:
        prior = prior.clip(lower=0.0)
    model = LassoModel(**_group_kw("FACTOR_CLUSTER_GROUP_LASSO", y), **kw, engine=engine,
                       factors_beta_prior=prior, reg_lambda=0.1)
    with pytest.raises(SolveError, match="cannot be certified to tol 1e-08") as caught:
        model.fit(x, y)
    assert [name for name, _ in caught.value.attempts] == ["fast"]  # no CVXPY solve
    assert _spent(caught.value) <= FLOOR_EVERY
    assert not hasattr(model, "coef_")


def test_fcgl_on_auto_stops_the_polish_of_an_uncertifiable_point():
    # without a box the blocks' crawl sends "auto" to CLARABEL first; its polish then stops
    x, y, prior = _wide_fold(1e4)
    model = LassoModel(**_group_kw("FACTOR_CLUSTER_GROUP_LASSO", y), factors_beta_prior=prior,
                       reg_lambda=0.1)
    with pytest.raises(SolveError, match="cannot be certified") as caught:
        model.fit(x, y)
    assert caught.value.attempts[-1][0] == "fast"
    assert _spent(caught.value) <= FLOOR_EVERY


def test_row_groups_are_not_stopped_by_their_floor():
    """A row group is one constraint of the scaling dual point, which cancels the rounding of
    its gradient to first order: the random search's HCGL fit at 1e-8 (12 rows, 24 factors,
    integer responses, seed 440) is certified by CLARABEL at a gap 1e5 times below its floor
    (an early stop there turned the fit into a SolveError)."""
    panel = make_factor_panel(12, 24, 12, seed=65042, freq="W-FRI", start="2015-01-02")
    y = (panel.y * 10).round()
    fit = LassoModel(model_type="HIERARCHICAL_CLUSTER_GROUP_LASSO", span=26.0, n_clusters=10,
                     factors_beta_prior=panel.prior, reg_lambda=1e-8).fit(panel.x, y)
    assert fit.duality_gap_ <= 1e-8
    engine = fit._solver(fit._fit_setup_).engine
    coef = fit.coef_.to_numpy()
    assert engine.geometry == "row"
    floor = engine.gap_floors(coef).sum()
    assert floor > FLOOR_CAP * 1e-8 * fit.objective_value_  # beyond what a block's stop allows
    assert fit.duality_gap_ * fit.objective_value_ < 1e-4 * floor
    assert floor_share(engine, coef, 1e-8)[0] == 0.0


@pytest.mark.parametrize("model_type", ["FACTOR_CLUSTER_GROUP_LASSO", "GROUP_LASSO",
                                        "HIERARCHICAL_CLUSTER_GROUP_LASSO"])
def test_small_penalties_on_scaled_factors_are_not_stopped(model_type):
    """The same fold with the prior in the factors' units: at 1e-7 of lambda_max the floor is
    ~2e-8 of the objective, within what the stop allows, and the fits are certified (their
    gaps a tenth of it: the floor is a bound of the rounding, not its size)."""
    x, y, prior = _wide_fold(1e4)
    model = LassoModel(**_group_kw(model_type, y), factors_beta_prior=prior / 1e4)
    lam = 1e-7 * model.lambda_max(x, y)
    fit = model.set_params(reg_lambda=lam).fit(x, y)
    assert fit.duality_gap_ <= 1e-8
    engine = fit._solver(fit._fit_setup_).engine
    coef = fit.coef_.to_numpy()
    assert engine.gap_floors(coef).sum() < FLOOR_CAP * 1e-8 * fit.objective_value_
    assert floor_share(engine, coef, lam)[0] < FLOOR_CAP * 1e-8  # (rows: 0, see below)
