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
from xl_factorlasso.core.linear_model import FastEngine

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
