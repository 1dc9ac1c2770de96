"""FCGL with a box (signs, signs and a prior, ``nonneg``) on wide panels at small penalties:
Newton's point on what another point holds active and at a bound (``_boxed_blocks``), and
the short probe of the iterations before CVXPY (``_certified._BOXED_BLOCKS_PROBE``).

Before them, these fits raised ``SolveError`` (Clarabel's points at relative gaps of 0.8 and
4e-4 by the certificate, and 20,000 polishing iterations from there did not close it) or took
Clarabel's dense factorisations (82 s for one non-negative cluster at (119,291,10))."""

from __future__ import annotations

import numpy as np
import pytest

from tests.test_engine import TIGHT
from xl_factorlasso import LassoModel, LassoModelType, make_factor_panel
from xl_factorlasso.core.linear_model import _certified
from xl_factorlasso.core.linear_model._boxed_blocks import boxed_block_polish
from xl_factorlasso.core.linear_model._formulation import LassoProblem

FCGL = LassoModelType.FACTOR_CLUSTER_GROUP_LASSO

pytestmark = [
    pytest.mark.filterwarnings("ignore:solver CLARABEL returned an inaccurate solution"),
    pytest.mark.filterwarnings("ignore:Solution may be inaccurate"),
]


def _model(shape, seed, fraction, **kw):
    """A wide panel, FCGL with ``kw`` at ``fraction`` of its ``lambda_max``."""
    panel = make_factor_panel(*shape, seed=seed)
    kw = dict(model_type=FCGL, **kw)
    if kw.pop("signs", False):
        kw["factors_beta_loading_signs"] = panel.signs
    if kw.pop("prior", False):
        kw["factors_beta_prior"] = panel.prior
    lam = fraction * LassoModel(**kw).lambda_max(panel.x, panel.y)
    return panel, LassoModel(reg_lambda=lam, **kw)


def _reference(model, panel):
    """The objective of Clarabel's point at tight tolerances, in the box (an upper bound of
    the minimum, independent of the engine's Newton and iterations)."""
    setup = model._setup(panel.x, panel.y)
    status, coef = LassoProblem(setup.stats, setup.spec).solve(model.reg_lambda, "CLARABEL",
                                                                TIGHT)
    assert coef is not None, status
    return setup.objective(coef, model.reg_lambda)


def _assert_in_signs(fit, panel):
    signs = panel.signs.to_numpy()
    coef = fit.coef_.to_numpy()
    assert np.all(coef[signs == 0] == 0.0)
    assert np.all(coef[signs > 0] >= 0.0) and np.all(coef[signs < 0] <= 0.0)


def test_newton_certifies_clarabels_default_point_with_signs():
    """Found clusters with signs on (22, 60, 4) at 1e-7 of lambda_max: Clarabel's default point
    is far from certified (the interior point keeps the cells that belong on a bound, and the
    blocks that belong at zero, off them), while Newton's point on what it holds active and
    at a bound is certified at once."""
    panel, model = _model((22, 60, 4), 2001, 1e-7, signs=True)
    lam = model.reg_lambda
    setup = model._setup(panel.x, panel.y)
    solver = model._solver(setup, lam)
    status, point = solver.problem(lam).solve(lam)
    assert point is not None, status
    gap, ok = solver._gap(point, lam)
    assert not ok and gap > 1e-2
    engine = solver.engine
    boxed = engine.geometry == "block" and not engine._unboxed
    assert boxed
    polished, found = boxed_block_polish(engine, point, lam, np.ones(engine.n, dtype=bool))
    assert found.any()
    gap, ok = solver._gap(polished, lam)
    assert ok and gap <= 1e-8
    assert np.all(polished >= engine.lo) and np.all(polished <= engine.hi)


def test_signs_at_a_tiny_penalty_are_certified_no_higher_than_clarabel():
    """The same fit through ``LassoModel``: certified (the starting code raised SolveError),
    in the signs, and no higher than Clarabel's tight point."""
    panel, model = _model((22, 60, 4), 2001, 1e-7, signs=True)
    fit = model.fit(panel.x, panel.y)
    assert fit.duality_gap_ <= 1e-8
    _assert_in_signs(fit, panel)
    assert fit.objective_value_ <= _reference(model, panel) * (1 + 1e-8)


def test_one_cluster_with_signs_and_prior_is_certified_no_higher_than_clarabel():
    """One cluster with signs and a prior on (36, 134, 8) at 1e-7 of lambda_max (the starting
    code: SolveError after 13 s): certified, in the signs, no higher than Clarabel's tight
    point (Newton's point from the probe's iterations or from Clarabel's, as the iterations'
    rounding falls)."""
    panel, model = _model((36, 134, 8), 2006, 1e-7, signs=True, prior=True, n_clusters=1)
    fit = model.fit(panel.x, panel.y)
    assert fit.duality_gap_ <= 1e-8
    _assert_in_signs(fit, panel)
    assert fit.objective_value_ <= _reference(model, panel) * (1 + 1e-8)


def test_a_large_cluster_with_signs_needs_no_cvxpy(monkeypatch):
    """One cluster with signs and a prior on (113, 269, 10) at 1e-5 of lambda_max, where one
    Clarabel solve takes about 20 s (its factorisation is dense in N M = 2690) and the starting
    code took 44 s: the probe's iterations, then Newton's point on what they hold active and
    at a bound (from 100 to 2,000 iterations every such point passed); CVXPY is never called."""
    calls = []
    original = LassoProblem.solve
    monkeypatch.setattr(LassoProblem, "solve",
                        lambda self, *a, **k: calls.append(a) or original(self, *a, **k))
    panel, model = _model((113, 269, 10), 1020, 1e-5, signs=True, prior=True, n_clusters=1)
    fit = model.fit(panel.x, panel.y)
    assert fit.solver_ == "fast" and not calls
    assert fit.n_iter_ == _certified._BOXED_BLOCKS_PROBE
    assert fit.duality_gap_ <= 1e-8
    _assert_in_signs(fit, panel)


def test_sparse_non_negative_cluster_is_certified_by_the_probe():
    """One non-negative cluster on (119, 291, 10) at 1e-7 of lambda_max: the iterations
    certify within the probe (the starting code skipped them for Clarabel and its polish)."""
    panel, model = _model((119, 291, 10), 1001, 1e-7, nonneg=True, n_clusters=1)
    fit = model.fit(panel.x, panel.y)
    assert fit.solver_ == "fast"
    assert fit.n_iter_ <= _certified._BOXED_BLOCKS_PROBE
    assert fit.duality_gap_ <= 1e-8
    assert (fit.coef_.to_numpy() >= 0).all()


def test_unboxed_blocks_keep_their_path(monkeypatch):
    """Without a box the probe does not run: a wide unboxed FCGL fit at a small penalty still
    skips the iterations (CVXPY's point, then Newton's, as before)."""
    ran = []
    original = _certified.FastEngine.solve
    monkeypatch.setattr(_certified.FastEngine, "solve",
                        lambda self, *a, **k: ran.append(k.get("max_iter")) or
                        original(self, *a, **k))
    panel, model = _model((36, 134, 8), 2006, 1e-5, n_clusters=2)
    fit = model.fit(panel.x, panel.y)
    assert fit.duality_gap_ <= 1e-8
    assert _certified._BOXED_BLOCKS_PROBE not in ran


def test_clarabel_factors_a_dense_cluster_with_faer():
    """One FCGL cluster on a wide panel makes Clarabel's KKT factor dense in ``N M``: there
    faer's dense kernels (3x faster at (60,100,20) and (250,500,5)); QDLDL elsewhere, and a
    user's ``direct_solve_method`` wins."""
    from xl_factorlasso.core.linear_model._formulation import _kkt_method

    def method(shape, **kw):
        panel, model = _model(shape, 0, 1e-5, **kw)
        setup = model._setup(panel.x, panel.y)
        return _kkt_method(setup.stats, setup.spec), model, panel

    assert method((60, 100, 20), nonneg=True, n_clusters=1)[0] == "faer"
    assert method((500, 30, 50), nonneg=True, n_clusters=1)[0] == "qdldl"  # narrow
    assert method((24, 40, 4), n_clusters=1)[0] == "qdldl"  # 160 cells
    _, model, panel = method((60, 100, 20), nonneg=True, n_clusters=1)
    setup = model._setup(panel.x, panel.y)
    problem = LassoProblem(setup.stats, setup.spec)
    seen = []
    original = problem.problem.solve
    problem.problem.solve = lambda **k: seen.append(k.get("direct_solve_method")) or \
        original(**{**k, "max_iter": 1})
    problem.solve(model.reg_lambda)
    problem.solve(model.reg_lambda, solver_params={"direct_solve_method": "qdldl"})
    assert seen == ["faer", "qdldl"]


# the solver label's note where "auto" went to CVXPY because the iterations crawl
SKIPPED_NOTE = " (fast iterations skipped: singular Gram, small penalty)"
TRIED_NOTE = (" (fast probe and Newton guesses not certified, full iterations skipped: "
              "singular Gram, small penalty)")


@pytest.mark.parametrize(("shape", "seed", "fraction", "kw", "note"), [
    # a box: the probe's iterations and Newton's guesses (and the duals') ran, did not certify
    ((22, 60, 4), 2001, 1e-7, {"signs": True}, TRIED_NOTE),
    # no box: nothing of the engine ran before CVXPY
    ((36, 134, 8), 2006, 1e-5, {"n_clusters": 2}, SKIPPED_NOTE),
], ids=["probe-and-guesses", "skipped"])
def test_the_label_says_what_of_the_fast_engine_ran(shape, seed, fraction, kw, note,
                                                    monkeypatch):
    """FL_STATUS shows ``solver_``: where the probe and Newton's guesses ran before CVXPY it
    must not say the fast engine was skipped (it said "fast engine skipped" on both paths)."""
    probes = []
    original = _certified.FastEngine.solve
    monkeypatch.setattr(_certified.FastEngine, "solve",
                        lambda self, *a, **k: probes.append(k.get("max_iter")) or
                        original(self, *a, **k))
    panel, model = _model(shape, seed, fraction, **kw)
    fit = model.fit(panel.x, panel.y)
    assert fit.duality_gap_ <= 1e-8
    assert fit.solver_ == "CLARABEL + fast polish" + note
    assert (_certified._BOXED_BLOCKS_PROBE in probes) == (note == TRIED_NOTE)


def test_crawl_notes():
    assert _certified._crawl_note(set()) == SKIPPED_NOTE
    assert _certified._crawl_note({"probe", "guesses"}) == TRIED_NOTE
    assert _certified._crawl_note({"guesses"}) == (
        " (fast Newton guesses not certified, full iterations skipped: singular Gram, small "
        "penalty)")


def test_one_cholesky_factor_gives_the_solution_and_the_inverse():
    """The boxed Newton's per-response step (``_spd_solve_inverse``): from one Cholesky factor,
    the solution and the whole inverse of ``G_FF + diag(nu)``, as LU gives them; where the
    factor fails (not positive definite) LU's answer, and None where the system is singular."""
    from xl_factorlasso.core.linear_model._boxed_blocks import _spd_solve_inverse

    rng = np.random.default_rng(3)
    a = rng.standard_normal((40, 90))
    system = a @ a.T / 90 + np.diag(rng.uniform(1e-6, 1e-2, 40))
    rhs = rng.standard_normal(40)
    sol, inv = _spd_solve_inverse(system, rhs)
    np.testing.assert_allclose(inv, np.linalg.inv(system), rtol=1e-9, atol=1e-12 * abs(inv).max())
    np.testing.assert_allclose(inv, inv.T, rtol=0, atol=0)  # (both triangles written)
    np.testing.assert_allclose(system @ sol, rhs, rtol=0, atol=1e-10 * abs(rhs).max())
    indefinite = np.array([[1.0, 2.0], [2.0, 1.0]])  # no Cholesky factor; LU solves it
    sol, inv = _spd_solve_inverse(indefinite, np.array([3.0, 3.0]))
    np.testing.assert_allclose(sol, [1.0, 1.0], rtol=1e-14)
    np.testing.assert_allclose(inv, np.array([[-1.0, 2.0], [2.0, -1.0]]) / 3.0, rtol=1e-14)
    assert _spd_solve_inverse(np.ones((2, 2)), np.ones(2)) is None


def test_guesses_that_must_certify_as_a_whole_stop_at_the_first_cluster_without_a_point(
        monkeypatch):
    """Before Clarabel the guesses certify the whole fit or nothing, so after a cluster without
    a point the others are not tried (``every=True``); after Clarabel each cluster's point
    still counts and every cluster is tried."""
    from xl_factorlasso.core.linear_model import _boxed_blocks

    panel, model = _model((40, 90, 12), 7, 1e-5, nonneg=True)
    engine = model._solver(model._setup(panel.x, panel.y)).engine
    assert engine.polishes_held_blocks and engine.n_units >= 3
    tried = []

    def first_fails(self, d):
        tried.append(len(self.grams))
        return None if len(tried) == 1 else np.zeros_like(d)

    monkeypatch.setattr(_boxed_blocks._Cluster, "solve", first_fails)
    rows = np.ones(engine.n, dtype=bool)
    lam = model.reg_lambda
    _, found = boxed_block_polish(engine, engine.prior, lam, rows, every=True)
    assert len(tried) == 1 and not found.any()
    tried.clear()
    _, found = boxed_block_polish(engine, engine.prior, lam, rows)
    assert len(tried) == engine.n_units and found.sum() == engine.n - tried[0]
