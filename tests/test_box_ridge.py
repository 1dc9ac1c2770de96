"""Row groups (HCGL, GROUP_LASSO) with a box (signs, signs and a prior, ``nonneg``) or an L1
share on wide panels at small penalties: the held cells from the dual of each response's
box-constrained ridge problem, then the row Newton step (``_box_ridge``).

Before it these fits spent 20,000 proximal iterations (4-15 s) and then went to Clarabel and
its polish: HCGL ``nonneg`` on (123,321,2) at 6.3e-7 of ``lambda_max`` took 14.7 s, with signs
on (101,236,4) at 3.2e-8 6.8 s. The references here are independent of the engine: CVXPY's
formulation of the same ridge problem, and Clarabel's point at tight tolerances."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pandas as pd
import pytest

from tests.test_engine import TIGHT
from xl_factorlasso import LassoModel, LassoModelType, make_factor_panel
from xl_factorlasso.core.linear_model._box_ridge import (
    box_ridge,
    dual_start_applies,
    held_row_point,
    range_root,
    row_dual_start,
)
from xl_factorlasso.core.linear_model._formulation import LassoProblem

HCGL = LassoModelType.HIERARCHICAL_CLUSTER_GROUP_LASSO

pytestmark = [
    pytest.mark.filterwarnings("ignore:solver CLARABEL returned an inaccurate solution"),
    pytest.mark.filterwarnings("ignore:Solution may be inaccurate"),
]


def _model(shape, seed, fraction, model_type=HCGL, **kw):
    """A panel, ``model_type`` with ``kw`` at ``fraction`` of its ``lambda_max``."""
    panel = make_factor_panel(*shape, seed=seed)
    kw = dict(model_type=model_type, **kw)
    if kw.pop("signs", False):
        kw["factors_beta_loading_signs"] = panel.signs
    if kw.pop("prior", False):
        kw["factors_beta_prior"] = panel.prior
    if model_type is LassoModelType.GROUP_LASSO:
        kw["group_data"] = _groups(panel)
    lam = fraction * LassoModel(**kw).lambda_max(panel.x, panel.y)
    return panel, LassoModel(reg_lambda=lam, **kw)


def _groups(panel):
    """Two user groups of responses, alternating."""
    names = panel.y.columns
    return pd.Series([f"g{k % 2}" for k in range(len(names))], index=names)


def _solver(panel, model):
    setup = model._setup(panel.x, panel.y)
    return setup, model._solver(setup, model.reg_lambda)


def _clarabel_objective(setup, lam):
    """The objective of Clarabel's point at tight tolerances, clipped into the box (its
    constraints hold to ~1e-9 only, which can put it below the minimum): an upper bound of the
    minimum that owes nothing to the engine."""
    status, coef = LassoProblem(setup.stats, setup.spec).solve(lam, "CLARABEL", TIGHT)
    assert coef is not None, status
    return setup.objective(np.clip(coef, *setup.spec.lower_upper()), lam)


# ------------------------------------------------------------------ the dual of one ridge problem
def _ridge_cvxpy(a, r, nu, dl, du, k1):
    d = cp.Variable(a.shape[1])
    objective = 0.5 * cp.sum_squares(a @ d) - r @ d + k1 @ cp.abs(d) + 0.5 * nu * cp.sum_squares(d)
    cp.Problem(cp.Minimize(objective), [d >= dl, d <= du]).solve(
        solver="CLARABEL", tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
    return d.value


def _ridge_value(a, r, nu, k1, d):
    return 0.5 * np.sum((a @ d) ** 2) - r @ d + k1 @ np.abs(d) + 0.5 * nu * d @ d


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("l1", [0.0, 0.3])
def test_box_ridge_is_the_ridge_problems_minimiser(seed, l1):
    """Wide (12 rows, 40 cells), one-sided, two-sided and pinned cells, with and without an L1
    share: the dual's ``d`` equals CVXPY's minimiser of the primal, and ``w = A d``."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((12, 40))
    r = a.T @ rng.standard_normal(12) + 0.3 * rng.standard_normal(40)
    dl = np.where(rng.random(40) < 0.5, 0.0, -np.inf)
    du = np.where(rng.random(40) < 0.3, 0.2, np.inf)
    dl[:3] = du[:3] = 0.0  # pinned (a sign of 0)
    k1 = np.full(40, l1)
    nu = 0.05
    d, w, free, ok = box_ridge(a, r, nu, dl, du, k1, np.zeros(12))
    assert ok
    ref = _ridge_cvxpy(a, r, nu, dl, du, k1)
    np.testing.assert_allclose(d, ref, atol=1e-6)
    assert _ridge_value(a, r, nu, k1, d) <= _ridge_value(a, r, nu, k1, ref) + 1e-10
    np.testing.assert_allclose(w, a @ d, atol=1e-10 * max(1.0, np.abs(w).max()))
    assert np.all(d >= dl) and np.all(d <= du) and np.all(d[:3] == 0.0)
    inside = (d > dl) & (d < du) & ((d != 0.0) | (l1 == 0.0))
    np.testing.assert_array_equal(free, inside)


def test_range_root_reproduces_a_singular_gram():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((15, 50))
    gram = x.T @ x
    a = range_root(gram)
    assert a.shape[0] <= 15
    np.testing.assert_allclose(a.T @ a, gram, atol=1e-10 * np.abs(gram).max())
    root = rng.standard_normal((7, 20))
    np.testing.assert_array_equal(range_root(None, root), root)  # a deferred Gram's own root


# ------------------------------------------------------------------ whole fits
# (shape, seed, fraction of lambda_max, options): random wide panels where the iterations
# crawled; the first two took 4.4 and 6.8 s before (Clarabel and its polish after 20,000
# iterations), the third 0.9 s, the fourth (sparse-group, signs and a prior) 1.6 s
CASES = [
    ((21, 76, 8), 5026, 6.7e-8, dict(nonneg=True)),
    ((101, 236, 4), 5008, 3.2e-8, dict(signs=True)),
    ((20, 31, 8), 5004, 5.4e-8, dict(signs=True, prior=True)),
    ((29, 84, 11), 5011, 9.6e-5, dict(signs=True, prior=True, l1_weight=0.1)),
    ((22, 58, 8), 5034, 6.2e-6, dict(l1_weight=0.1)),
]


@pytest.mark.parametrize("shape,seed,fraction,kw", CASES)
def test_held_rows_are_certified_no_higher_than_clarabel(shape, seed, fraction, kw):
    """Every response's point accepted (in the box, the conditions off its free cells met), the
    whole certified, and its objective above Clarabel's tight point's (clipped into the box, no
    lower than the minimum) by less than the tolerance the certificate promises (1e-8).

    Not by less than the reported gap: the objectives compared here come from the sufficient
    statistics (y'y - 2 b'X'y + b'X'Xb), whose rounding at a fit that nearly interpolates is far
    above that gap. In the second case (3.2e-8 of lambda_max on 101 rows and 236 factors: loss
    1.7e-11, objective 5.2e-5, nearly all penalty), with OpenBLAS's Haswell kernels started with
    OPENBLAS_NUM_THREADS=1, they put the point (reported gap 1.6e-15) 1.56e-13 above Clarabel's.
    From the residuals in long double it lies 8.7e-14 below it."""
    panel, model = _model(shape, seed, fraction, **kw)
    setup, solver = _solver(panel, model)
    lam = model.reg_lambda
    engine = solver.engine
    assert dual_start_applies(engine, lam, solver.lambda_max)
    point, accepted = held_row_point(engine, lam)
    assert accepted.all()
    gap, ok = solver._gap(point, lam)
    assert ok and gap <= 1e-8
    assert np.all(point >= engine.lo) and np.all(point <= engine.hi)
    objective = setup.objective(point, lam)
    reference = _clarabel_objective(setup, lam)
    assert objective - reference <= 1e-8 * abs(reference)


@pytest.mark.parametrize("shape,seed,fraction,kw", CASES[:3])
def test_fit_is_answered_by_the_dual_start(shape, seed, fraction, kw):
    """``LassoModel.fit`` (engine "auto" and "fast") answers with no iteration and no CVXPY,
    the signs kept."""
    panel, model = _model(shape, seed, fraction, **kw)
    for engine in ("auto", "fast"):
        fit = model.set_params(engine=engine).fit(panel.x, panel.y)
        assert fit.solver_ == "fast" and fit.n_iter_ == 0
        assert fit.duality_gap_ <= 1e-8
        coef = fit.coef_.to_numpy()
        if kw.get("nonneg"):
            assert np.all(coef >= 0.0)
        if kw.get("signs"):
            signs = panel.signs.loc[fit.coef_.index, fit.coef_.columns].to_numpy()
            assert np.all(coef[signs == 0] == 0.0)
            assert np.all(coef[signs > 0] >= 0.0) and np.all(coef[signs < 0] <= 0.0)


def test_rows_whose_pull_is_within_the_threshold_stay_at_the_prior():
    """Near ``lambda_max`` most rows belong at the prior: the dual start leaves them there
    exactly (their condition, not a solve) and solves the others."""
    panel, model = _model((30, 70, 8), 11, 0.6, nonneg=True)
    setup, solver = _solver(panel, model)
    engine, lam = solver.engine, model.reg_lambda
    x, support, found = row_dual_start(engine, lam)
    zero = ~(support != 0).any(axis=1)
    assert zero.any() and (~zero).any() and found.all()
    np.testing.assert_array_equal(x[zero], engine.prior[zero])
    point, accepted = held_row_point(engine, lam)
    assert accepted.all()
    assert solver._gap(point, lam)[1]
    np.testing.assert_array_equal(point[zero], engine.prior[zero])


def test_group_lasso_rows_with_signs():
    panel, model = _model((40, 120, 6), 7, 1e-6, model_type=LassoModelType.GROUP_LASSO,
                          signs=True)
    setup, solver = _solver(panel, model)
    point, accepted = held_row_point(solver.engine, model.reg_lambda)
    assert accepted.all() and solver._gap(point, model.reg_lambda)[1]
    fit = model.fit(panel.x, panel.y)
    assert fit.solver_ == "fast" and fit.n_iter_ == 0


@pytest.mark.parametrize("kw,shape,applies", [
    (dict(nonneg=True), (30, 70, 4), True),
    (dict(l1_weight=0.1), (30, 70, 4), True),
    (dict(), (30, 70, 4), False),  # every cell free: the closed form
    (dict(nonneg=True), (200, 30, 4), False),  # not wide: the iterations settle
    (dict(nonneg=True, model_type=LassoModelType.LASSO), (30, 70, 4), False),
    (dict(nonneg=True, model_type=LassoModelType.FACTOR_CLUSTER_GROUP_LASSO), (30, 70, 4),
     False),
])
def test_where_the_dual_start_applies(kw, shape, applies):
    panel, model = _model(shape, 3, 1e-5, **kw)
    setup, solver = _solver(panel, model)
    lam = model.reg_lambda
    assert dual_start_applies(solver.engine, lam, solver.lambda_max) is applies
    assert not dual_start_applies(solver.engine, solver.lambda_max, solver.lambda_max)


def test_a_warm_start_gives_the_cold_answer():
    """A grid's next penalty from the previous minimiser (as ``LassoModelCV`` and
    ``fit_reg_lambda_path`` solve): the same certified answer as from the prior."""
    panel, model = _model((48, 100, 6), 21, 1e-6, nonneg=True)
    setup, solver = _solver(panel, model)
    lam = model.reg_lambda
    previous = solver.solve(3.0 * lam)
    warm = solver.solve(lam, coef_init=previous.coef)
    cold = solver.solve(lam)
    assert warm.solver == cold.solver == "fast"
    for answer in (warm, cold):
        assert answer.gap <= 1e-8
    scale = np.abs(cold.coef).max()
    np.testing.assert_allclose(warm.coef, cold.coef, atol=1e-6 * scale)
    assert setup.objective(warm.coef, lam) <= setup.objective(cold.coef, lam) * (1 + 1e-8)
    assert setup.objective(cold.coef, lam) <= setup.objective(warm.coef, lam) * (1 + 1e-8)


def test_many_responses_probe_the_iterations_first():
    """More than 32 responses: the iterations from the prior first, for about the duals' own
    work (40 min(M, T')^2 / M of them), which at a moderate penalty certify the fit; with few
    responses the duals start at once."""
    from xl_factorlasso.core.linear_model._box_ridge import rows_probe

    panel, model = _model((60, 100, 40), 4, 1e-2, nonneg=True)
    setup, solver = _solver(panel, model)
    assert rows_probe(solver.engine) == int(40 * 60.0 ** 2 / 100)
    answer = solver.solve(model.reg_lambda)
    assert answer.solver == "fast" and answer.n_iter > 0 and answer.gap <= 1e-8
    panel, model = _model((60, 100, 8), 4, 1e-2, nonneg=True)
    setup, solver = _solver(panel, model)
    assert rows_probe(solver.engine) == 0
    answer = solver.solve(model.reg_lambda)
    assert answer.solver == "fast" and answer.n_iter == 0 and answer.gap <= 1e-8


def test_a_dual_that_does_not_converge_halves_the_step_of_nu():
    """HCGL with signs, a prior and an L1 share on (120,200,10) at the default penalty: one
    response's dual did not converge after Newton moved ``nu`` six-fold (160 steps short),
    which left the fit to Clarabel; halving the step back from the last converged ``nu``
    settles it, and the fit is answered by the dual start."""
    panel = make_factor_panel(120, 200, 10, seed=0)
    model = LassoModel(model_type=HCGL, l1_weight=0.1, warmup_period=None,
                       factors_beta_loading_signs=panel.signs, factors_beta_prior=panel.prior)
    fit = model.fit(panel.x, panel.y)
    assert fit.solver_ == "fast" and fit.n_iter_ == 0 and fit.duality_gap_ <= 1e-8
    setup = model._setup(panel.x, panel.y)
    x, support, found = row_dual_start(model._solver(setup, model.reg_lambda).engine,
                                       model.reg_lambda)
    assert found.all()


# ------------------------------------------------------------------ a narrow panel, a short span
def _short_span_model(fraction):
    """GROUP_LASSO with signs and an L1 share on 30 rows and 28 factors (narrow), at span 3:
    the oldest row weighs 2e-9 of the newest, so the (invertible) Grams are conditioned about
    like singular ones (harness seed 906's fold had the same shape)."""
    panel = make_factor_panel(30, 28, 6, seed=3, freq="W-FRI", start="2015-01-02")
    rng = np.random.default_rng(0)
    signs = pd.DataFrame(rng.choice([-1.0, 0.0, 1.0, np.nan], size=(6, 28),
                                    p=[0.2, 0.2, 0.2, 0.4]),
                         index=panel.y.columns, columns=panel.x.columns)
    kw = dict(model_type=LassoModelType.GROUP_LASSO, group_data=_groups(panel), l1_weight=0.3,
              span=3.0, demean=False, factors_beta_loading_signs=signs, engine="fast")
    lam = fraction * LassoModel(**kw).lambda_max(panel.x, panel.y)
    return panel, signs, LassoModel(reg_lambda=lam, **kw)


@pytest.mark.parametrize("fraction", [1e-5, 1e-7])
def test_an_ill_conditioned_narrow_panel_takes_the_dual_start(fraction):
    """Before, the iterations crawled there: 7,318 at 1e-5 of ``lambda_max`` (gap 7e-13), and
    at 1e-7 20,000 of them ended at gap 2.5e-3 (``SolveError``). The dual start answers both
    with no iteration, certified, within the signs, and no higher than Clarabel's tight
    point."""
    panel, signs, model = _short_span_model(fraction)
    setup, solver = _solver(panel, model)
    engine = solver.engine
    assert not (~engine._invertible[engine.pattern]).all()  # not singular: ill-conditioned
    assert dual_start_applies(engine, model.reg_lambda, solver.lambda_max)
    fit = model.fit(panel.x, panel.y)
    assert fit.solver_ == "fast" and fit.n_iter_ == 0 and fit.duality_gap_ <= 1e-8
    coef = fit.coef_.to_numpy()
    s = signs.loc[fit.coef_.index, fit.coef_.columns].to_numpy()
    assert np.all(coef[s == 0] == 0.0)
    assert np.all(coef[s > 0] >= 0.0) and np.all(coef[s < 0] <= 0.0)
    objective = fit.objective_value_
    reference = _clarabel_objective(setup, model.reg_lambda)
    assert objective <= reference + 1e-9 * abs(reference)


def test_a_well_conditioned_narrow_panel_keeps_the_iterations():
    """The same panel without the short span: its Grams are well conditioned, the iterations
    settle, and the dual start does not run."""
    panel, _, model = _short_span_model(1e-5)
    model.set_params(span=None)
    setup, solver = _solver(panel, model)
    assert not dual_start_applies(solver.engine, model.reg_lambda, solver.lambda_max)
