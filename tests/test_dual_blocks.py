"""FCGL with a box on wide panels where responses hold more free cells than rows: the active
blocks and held cells from the duals of the responses' ridge problems (``_dual_blocks``), and
``_boxed_blocks``' Newton on them.

There the guesses of ``_boxed_blocks`` from the probe's point oscillate (one non-negative
cluster on the fold of 40 rows of the (60,100,20) cross-validation: its lower grid went to
Clarabel's dense factorisation and two scores were missing; one cluster with signs and a prior
at (250,500,5) took 19.5 s through Clarabel). The references are Clarabel's point at tight
tolerances and Woodbury's inverse against NumPy's."""

from __future__ import annotations

import numpy as np
import pytest

from tests.test_box_ridge import _clarabel_objective
from xl_factorlasso import LassoModel, LassoModelType, make_factor_panel
from xl_factorlasso.core.linear_model._boxed_blocks import boxed_block_polish
from xl_factorlasso.core.linear_model._dual_blocks import (
    _duals,
    _eta_gradient,
    _eta_hessian,
    _gradient,
    dual_block_polish,
    dual_blocks_apply,
    overfull,
)

FCGL = LassoModelType.FACTOR_CLUSTER_GROUP_LASSO

pytestmark = [
    pytest.mark.filterwarnings("ignore:solver CLARABEL returned an inaccurate solution"),
    pytest.mark.filterwarnings("ignore:Solution may be inaccurate"),
]


def _problem(shape, seed, fraction, box, rows=None, n_clusters=1):
    """``n_clusters`` clusters (one by default), ``box`` ("nonneg", "signs": the panel's signs
    and prior, or "l1": no box, an L1 share of 0.1), at ``fraction`` of ``lambda_max``, on the
    first ``rows`` rows."""
    panel = make_factor_panel(*shape, seed=seed)
    x, y = (panel.x, panel.y) if rows is None else (panel.x.iloc[:rows], panel.y.iloc[:rows])
    kw = dict(model_type=FCGL, n_clusters=n_clusters)
    if box == "nonneg":
        kw["nonneg"] = True
    elif box == "l1":  # no box, an L1 share
        kw["l1_weight"] = 0.1
    else:
        kw["factors_beta_loading_signs"] = panel.signs
        kw["factors_beta_prior"] = panel.prior
    lam = fraction * LassoModel(**kw).lambda_max(x, y)
    model = LassoModel(reg_lambda=lam, **kw)
    setup = model._setup(x, y)
    return x, y, model, setup, model._solver(setup, lam)


def test_the_hessian_in_eta_is_the_slopes_derivative():
    """``h``'s Hessian in ``eta`` (Woodbury in the rows, no cancellation as ``nu`` grows)
    against central differences of its gradient, on three responses of 6 rows and 15 cells
    with no box (no free cell changes under the differences)."""
    rng = np.random.default_rng(0)
    n, r, m = 3, 6, 15
    roots = [(rng.standard_normal((r, m)), 1.0) for _ in range(n)]
    resid = rng.standard_normal((n, m))
    kappa = rng.uniform(0.1, 1.0, m)
    lo, hi, k1 = np.full((n, m), -np.inf), np.full((n, m), np.inf), np.zeros((n, m))
    eta = rng.uniform(0.05, 2.0, m)

    def solve(e):
        ws = [np.zeros(r) for _ in range(n)]
        d, free = _duals(roots, resid, kappa / e, lo, hi, k1, ws)
        norms = np.sqrt((d * d).sum(axis=0))
        return d, free, _eta_gradient(_gradient(roots, resid, ws), norms, e, lo, hi, k1, kappa)

    d, free, _ = solve(eta)
    hess = _eta_hessian(roots, free, d, kappa / eta, eta, np.arange(m))
    step = 1e-6 * eta
    for k in range(m):
        up, down = eta.copy(), eta.copy()
        up[k] += step[k]
        down[k] -= step[k]
        column = (solve(up)[2] - solve(down)[2]) / (2.0 * step[k])
        np.testing.assert_allclose(hess[:, k], column, rtol=1e-5, atol=1e-7 * np.abs(hess).max())
    assert np.all(np.linalg.eigvalsh(hess) > 0.0)  # (h convex; strictly, every cell free)


# (shape, seed, fraction, box, rows): every response of the probe's point holds more free cells
# than rows, and the guesses of _boxed_blocks do not finish
CASES = [
    ((20, 50, 8), 1, 1e-4, "nonneg", None),
    ((20, 50, 8), 1, 1e-6, "nonneg", None),
    # from the prior its duals ran out of 100 evaluations on an AVX-512 machine's rounding
    ((24, 60, 10), 2, 1e-6, "nonneg", None),
    ((60, 100, 20), 0, 1e-4, "nonneg", 40),  # the cross-validation's fold of 40 rows
]


def _assert_duals_certify(setup, solver, lam):
    """The duals from the prior give a point in the box, certified to 1e-8, no higher than
    Clarabel's objective."""
    engine = solver.engine
    point, found = dual_block_polish(engine, lam, np.ones(engine.n, dtype=bool))
    assert found.all()
    gap, ok = solver._gap(point, lam)
    assert ok and gap <= 1e-8
    assert np.all(point >= engine.lo) and np.all(point <= engine.hi)
    reference = _clarabel_objective(setup, lam)
    assert setup.objective(point, lam) <= reference + 1e-9 * abs(reference)


@pytest.mark.parametrize("shape,seed,fraction,box,rows", CASES)
def test_duals_certify_where_the_guesses_fail(shape, seed, fraction, box, rows):
    x, y, model, setup, solver = _problem(shape, seed, fraction, box, rows)
    engine, lam = solver.engine, model.reg_lambda
    probe = engine.solve(lam, tol=solver.tol, max_iter=300)
    assert not probe.certified and overfull(engine, probe.coef)
    guessed, found = boxed_block_polish(engine, probe.coef, lam, np.ones(engine.n, dtype=bool))
    assert not (found.all() and solver._gap(guessed, lam)[1])
    _assert_duals_certify(setup, solver, lam)


# one-cluster fits of a random sweep (T 20-60, M 50-120, N 5-20, 1e-6 to 1e-3 of lambda_max)
# whose duals from the prior ran out of 200 evaluations with Newton's steps in log nu (blocks
# heading to zero climbing by majorise-minimise steps); the projected steps in eta settled
# them in 16 and 82
SWEPT = [
    ((36, 108, 6), 215, 8.007264104848668e-4, "signs"),
    ((20, 97, 5), 92, 4.1901645516503563e-4, "nonneg"),
]


@pytest.mark.parametrize("shape,seed,fraction,box", SWEPT)
def test_duals_from_the_prior_settle_where_the_log_nu_steps_ran_out(shape, seed, fraction, box):
    _x, _y, model, setup, solver = _problem(shape, seed, fraction, box)
    _assert_duals_certify(setup, solver, model.reg_lambda)


# a block held just above zero (its eta 1e-25 to 1e-9 of the largest, its pull within 1e-4 of
# its threshold) whose Newton step went far below zero while its own slope asked for more: the
# step's length was bounded by that block's decade (t 1e-23), and the duals ran out of their
# 200 evaluations; the fit went through Clarabel in 6.6 s (a sweep of wide fits, problem 190)
CLIPPED = [((54, 151, 16), 190, 1.3394973906625461e-06, "nonneg")]


@pytest.mark.parametrize("shape,seed,fraction,box", CLIPPED)
def test_a_block_the_step_moves_up_its_slope_does_not_bound_the_step(shape, seed, fraction,
                                                                    box):
    _x, _y, model, setup, solver = _problem(shape, seed, fraction, box)
    _assert_duals_certify(setup, solver, model.reg_lambda)


def test_signs_and_a_prior_fit_is_fast_and_certified():
    """One cluster with signs and a prior on (120,200,10) at the default penalty (6.5 s through
    Clarabel's dense factorisation before): ``fit`` answers "fast" after the probe, in the
    sign box."""
    panel = make_factor_panel(120, 200, 10, seed=0)
    kw = dict(model_type=FCGL, n_clusters=1, factors_beta_loading_signs=panel.signs,
              factors_beta_prior=panel.prior)
    fit = LassoModel(**kw).fit(panel.x, panel.y)
    assert fit.solver_ == "fast" and fit.duality_gap_ <= 1e-8
    signs = panel.signs.loc[fit.coef_.index, fit.coef_.columns].to_numpy()
    coef = fit.coef_.to_numpy()
    assert np.all(coef[signs == 0] == 0.0)
    assert np.all(coef[signs > 0] >= 0.0) and np.all(coef[signs < 0] <= 0.0)


def test_the_fold_of_forty_rows_is_certified():
    """The non-negative cluster on the fold of 40 rows, at the bottom of ``LassoModelCV``'s
    grid (lambda 1e-6). The steps in log nu before the projected ones in eta needed 51-183
    evaluations from the prior depending on the BLAS, and the fit went through Clarabel (18 s)
    or raised a SolveError (NumPy 1.26's OpenBLAS: the polish stalled at 3.1e-8). The steps in
    eta reach the same sets in 34 under three BLAS set-ups and the fit answers "fast" in about
    0.5 s. The certificate stays on a knife's edge (its rounding floor 2.2e-7 of the objective;
    Newton's point shows 7.4e-9 to 1.0e-8 depending on the BLAS), so Clarabel's route is
    still accepted."""
    x, y, model, setup, solver = _problem((60, 100, 20), 0, 1e-6, "nonneg", 40)
    lam = 1e-6  # (absolute, as the grid's)
    fit = LassoModel(model_type=FCGL, n_clusters=1, nonneg=True, reg_lambda=lam).fit(x, y)
    assert fit.solver_ == "fast" or fit.solver_.startswith("CLARABEL + fast polish")
    coef = fit.coef_.to_numpy()
    assert np.all(coef >= 0.0)
    # within 1e-8, or beyond it only by the gap's rounding floor (the duals' Newton point:
    # 1.3e-8 with NumPy 2.4's OpenBLAS at two threads, where the fit raised a SolveError)
    gap = solver.engine.relative_gap(coef, lam)  # (recomputed)
    assert gap == pytest.approx(fit.duality_gap_, rel=1e-6)
    assert gap <= 1e-8 or solver._gap(coef, lam, stationary=True)[1]
    reference = _clarabel_objective(setup, lam)
    assert abs(setup.objective(coef, lam) - reference) <= 1e-8 * abs(reference)


def test_the_rounding_floor_excuses_rounding_only():
    """The fold's Newton point is within its gap's rounding floor (2.2e-7 of the objective)
    whatever the BLAS rounds its gap to (8.2e-9 to 1.3e-8); the same point with one active
    block's cells moved by 1e-4 of their size is not, nor is it certified."""
    _x, _y, _model, _setup, solver = _problem((60, 100, 20), 0, 1e-6, "nonneg", 40)
    engine, lam = solver.engine, 1e-6
    point, found = dual_block_polish(engine, lam, np.ones(engine.n, dtype=bool))
    assert found.all() and solver._gap(point, lam, stationary=True)[1]
    assert solver._dual(point, None, lam)[2]  # (what the fit takes)
    active = np.flatnonzero(np.abs(point - engine.prior).sum(axis=0) > 0)
    moved = point.copy()
    moved[:, active[0]] *= 1.0 + 1e-4
    moved = np.clip(moved, engine.lo, engine.hi)
    gap, ok = solver._gap(moved, lam)
    assert not ok and not solver._gap(moved, lam, stationary=True)[1] and gap > 1e-7


def test_a_warm_start_from_a_neighbouring_minimiser():
    """From the minimiser at 3 lambda (a CV grid's previous point): the same answer as cold."""
    x, y, model, setup, solver = _problem((60, 100, 20), 0, 1e-5, "nonneg", rows=40)
    lam = model.reg_lambda
    previous = solver.solve(3.0 * lam)
    warm = solver.solve(lam, coef_init=previous.coef)
    cold = solver.solve(lam)
    for answer in (warm, cold):
        assert answer.gap <= 1e-8
    a, b = setup.objective(warm.coef, lam), setup.objective(cold.coef, lam)
    assert abs(a - b) <= 1e-8 * abs(b)


@pytest.mark.parametrize("shape,box,rows,n_clusters,applies", [
    ((60, 100, 20), "nonneg", 40, 1, True),  # one cluster of 2000 cells
    ((20, 50, 8), "nonneg", None, 1, True),  # one cluster, 400 cells
    ((20, 50, 8), "nonneg", None, 2, False),  # found clusters of 400 cells at most: Clarabel
    ((200, 50, 8), "nonneg", None, 1, False),  # not wide
    ((20, 50, 8), "l1", None, 1, True),  # one cluster, an L1 share and no box
    ((60, 100, 20), "l1", 40, 2, False),  # found clusters without a box: Clarabel
])
def test_where_the_duals_apply(shape, box, rows, n_clusters, applies):
    x, y, model, setup, solver = _problem(shape, 0, 1e-5, box, rows, n_clusters)
    assert dual_blocks_apply(solver.engine, solver._one_cluster) is applies


# one cluster from a sweep of wide fits, each left to Clarabel before: non-negative, 1,173
# cells (problem 226: below the size where found clusters go to Clarabel; 4.8 s, the duals
# 0.14 s), and sparse-group without a box (problem 70: 1.5 s, the duals 0.12 s)
@pytest.mark.parametrize("shape,seed,fraction,extra", [
    ((29, 69, 17), 226, 3.2083846622601836e-05, dict(nonneg=True)),
    ((34, 58, 20), 70, 5.006351156317461e-06, dict(l1_weight=0.1)),
])
def test_one_small_cluster_is_solved_by_the_duals(shape, seed, fraction, extra):
    panel = make_factor_panel(*shape, seed=seed)
    kw = dict(model_type=FCGL, n_clusters=1, warmup_period=None, **extra)
    lam = fraction * LassoModel(**kw).lambda_max(panel.x, panel.y)
    model = LassoModel(reg_lambda=lam, **kw).fit(panel.x, panel.y)
    assert model.solver_ == "fast"
    reference = LassoModel(reg_lambda=lam, engine="cvxpy", **kw).fit(panel.x, panel.y)
    assert model.objective_value_ <= reference.objective_value_ * (1 + 1e-9)


def test_overfull():
    x, y, model, setup, solver = _problem((20, 50, 8), 1, 1e-4, "nonneg")
    engine = solver.engine
    assert not overfull(engine, engine.prior)
    full = np.clip(engine.prior + 1.0, engine.lo, engine.hi)  # every cell free and nonzero
    assert overfull(engine, full)
