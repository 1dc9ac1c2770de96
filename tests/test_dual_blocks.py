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
    _inverse,
    dual_block_polish,
    dual_blocks_apply,
    overfull,
)

FCGL = LassoModelType.FACTOR_CLUSTER_GROUP_LASSO

pytestmark = [
    pytest.mark.filterwarnings("ignore:solver CLARABEL returned an inaccurate solution"),
    pytest.mark.filterwarnings("ignore:Solution may be inaccurate"),
]


def _problem(shape, seed, fraction, box, rows=None):
    """One cluster, ``box`` ("nonneg" or "signs": the panel's signs and prior), at
    ``fraction`` of ``lambda_max``, on the first ``rows`` rows."""
    panel = make_factor_panel(*shape, seed=seed)
    x, y = (panel.x, panel.y) if rows is None else (panel.x.iloc[:rows], panel.y.iloc[:rows])
    kw = dict(model_type=FCGL, n_clusters=1)
    if box == "nonneg":
        kw["nonneg"] = True
    else:
        kw["factors_beta_loading_signs"] = panel.signs
        kw["factors_beta_prior"] = panel.prior
    lam = fraction * LassoModel(**kw).lambda_max(x, y)
    model = LassoModel(reg_lambda=lam, **kw)
    setup = model._setup(x, y)
    return x, y, model, setup, model._solver(setup, lam)


def test_woodbury_inverse():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((6, 15))
    free = rng.random(15) < 0.7
    nu = rng.uniform(0.01, 2.0, 15)
    direct = np.linalg.inv(a[:, free].T @ a[:, free] + np.diag(nu[free]))
    np.testing.assert_allclose(_inverse(a, free, nu), direct, rtol=1e-9, atol=1e-9)


# (shape, seed, fraction, box, rows): every response of the probe's point holds more free cells
# than rows, and the guesses of _boxed_blocks do not finish
CASES = [
    ((20, 50, 8), 1, 1e-4, "nonneg", None),
    ((20, 50, 8), 1, 1e-6, "nonneg", None),
    # from the prior its duals ran out of 100 evaluations on an AVX-512 machine's rounding
    ((24, 60, 10), 2, 1e-6, "nonneg", None),
    ((60, 100, 20), 0, 1e-4, "nonneg", 40),  # the cross-validation's fold of 40 rows
]


@pytest.mark.parametrize("shape,seed,fraction,box,rows", CASES)
def test_duals_certify_where_the_guesses_fail(shape, seed, fraction, box, rows):
    x, y, model, setup, solver = _problem(shape, seed, fraction, box, rows)
    engine, lam = solver.engine, model.reg_lambda
    probe = engine.solve(lam, tol=solver.tol, max_iter=300)
    assert not probe.certified and overfull(engine, probe.coef)
    guessed, found = boxed_block_polish(engine, probe.coef, lam, np.ones(engine.n, dtype=bool))
    assert not (found.all() and solver._gap(guessed, lam)[1])
    point, found = dual_block_polish(engine, lam, np.ones(engine.n, dtype=bool))
    assert found.all()
    gap, ok = solver._gap(point, lam)
    assert ok and gap <= 1e-8
    assert np.all(point >= engine.lo) and np.all(point <= engine.hi)
    reference = _clarabel_objective(setup, lam)
    assert setup.objective(point, lam) <= reference + 1e-9 * abs(reference)


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
    grid (lambda 1e-6), is on a knife's edge of rounding. With OpenBLAS's Haswell kernels the
    probe and the duals answer "fast" in 0.5 s. With this machine's AVX-512 kernels the duals'
    steps from the prior needed more than their 100 evaluations (stop 40's code raised a
    SolveError, its polish of Clarabel's point stalled at 3e-8): now "fast" where OpenBLAS
    starts with its default threads, and through Clarabel, its polish and the duals from the
    polished point where it starts with OPENBLAS_NUM_THREADS=1."""
    x, y, model, setup, solver = _problem((60, 100, 20), 0, 1e-6, "nonneg", 40)
    lam = 1e-6  # (absolute, as the grid's)
    fit = LassoModel(model_type=FCGL, n_clusters=1, nonneg=True, reg_lambda=lam).fit(x, y)
    assert fit.solver_ == "fast" or fit.solver_.startswith("CLARABEL + fast polish")
    assert fit.duality_gap_ <= 1e-8 and np.all(fit.coef_.to_numpy() >= 0.0)
    coef = fit.coef_.to_numpy()
    assert solver.engine.relative_gap(coef, lam) <= 1e-8  # recomputed
    reference = _clarabel_objective(setup, lam)
    assert abs(setup.objective(coef, lam) - reference) <= 1e-8 * abs(reference)


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


@pytest.mark.parametrize("shape,box,rows,applies", [
    ((60, 100, 20), "nonneg", 40, True),  # one cluster of 2000 cells
    ((20, 50, 8), "nonneg", None, False),  # 400 cells: Clarabel's factorisation is cheap
    ((200, 50, 8), "nonneg", None, False),  # not wide
])
def test_where_the_duals_apply(shape, box, rows, applies):
    x, y, model, setup, solver = _problem(shape, 0, 1e-5, box, rows)
    assert dual_blocks_apply(solver.engine) is applies


def test_overfull():
    x, y, model, setup, solver = _problem((20, 50, 8), 1, 1e-4, "nonneg")
    engine = solver.engine
    assert not overfull(engine, engine.prior)
    full = np.clip(engine.prior + 1.0, engine.lo, engine.hi)  # every cell free and nonzero
    assert overfull(engine, full)
