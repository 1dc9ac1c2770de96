"""FCGL on wide panels at small penalties: single-response clusters solved as LASSO responses
where the block iterations crawl (``_cluster_split``, ``CertifiedSolver._solve_parts``),
Clarabel again at tighter tolerances where its first point does not certify, sparse-group
FCGL, and one cluster from the minimum-norm solution (``interpolant_start``).

The folds are those of ``LassoModelCV`` (expanding windows, 5 splits) on the (250, 500, 5)
panel of ``make_factor_panel(seed=0)``: more factors than rows, where every fit below about
7e-5 raised ``SolveError`` on some fold before (Clarabel's point at relative gaps ~1e-6, then
20,000 polishing iterations)."""

from __future__ import annotations

import contextlib
from dataclasses import replace

import numpy as np
import pytest
from sklearn.linear_model import LassoLars

from tests.test_engine import TIGHT
from tests.test_wide_polish import assert_same_fit
from xl_factorlasso import LassoModel, LassoModelType, make_factor_panel
from xl_factorlasso.core.exceptions import SolveError
from xl_factorlasso.core.linear_model import FastEngine
from xl_factorlasso.core.linear_model._certified import CertifiedSolver
from xl_factorlasso.core.linear_model._cluster_split import single_clusters, split_problem
from xl_factorlasso.core.linear_model._formulation import LassoProblem
from xl_factorlasso.core.model_selection._lasso_cv import expanding_window_splits

FCGL = LassoModelType.FACTOR_CLUSTER_GROUP_LASSO

pytestmark = [
    pytest.mark.filterwarnings("ignore:solver CLARABEL returned an inaccurate solution"),
    pytest.mark.filterwarnings("ignore:Solution may be inaccurate"),
]


@pytest.fixture(scope="module")
def wide_panel():
    return make_factor_panel(250, 500, 5, seed=0)


def _fold(panel, k):
    rows = expanding_window_splits(len(panel.x), 5)[k][0]
    return panel.x.iloc[rows], panel.y.iloc[rows]


def _prepared(x, y, lam, **kw):
    model = LassoModel(model_type=FCGL, warmup_period=None, reg_lambda=lam, **kw)
    setup = model._setup(x, y)
    return model, setup, model._solver(setup, lam)


def test_the_parts_objectives_sum_to_the_whole():
    """At any point, the FCGL objective equals the LASSO objective of its single clusters (L1
    weights = their blocks' weights, adaptive factor included) plus the FCGL objective of the
    other clusters, renumbered: the split changes no number of the problem."""
    panel = make_factor_panel(80, 6, 5, seed=3)
    model, setup, _ = _prepared(panel.x, panel.y, 0.01)
    spec = setup.spec
    groups = np.array([0, 1, 1, 2, 3])  # clusters {0}, {1, 2}, {3}, {4}
    rng = np.random.default_rng(0)
    spec = replace(spec, groups=groups, group_weight=np.array([0.5, 0.9, 0.7, 0.6]),
                   block_weight=rng.uniform(0.5, 2.0, (4, 6)))
    alone = single_clusters(spec)
    np.testing.assert_array_equal(alone, [True, False, False, True, True])
    whole = FastEngine(setup.stats, spec)
    parts = [(rows, FastEngine(*split_problem(setup.stats, spec, rows)))
             for rows in (alone, ~alone)]
    assert [e.geometry for _, e in parts] == ["cell", "block"]
    assert parts[1][1].n_units == 1
    for _ in range(3):
        coef = rng.standard_normal((5, 6)) * (rng.random((5, 6)) < 0.6)
        total = sum(e.objective(coef[rows], 0.01) for rows, e in parts)
        assert total == pytest.approx(whole.objective(coef, 0.01), rel=1e-13)
    # with an L1 share (adaptive L1 weights too) a single cluster's cell pays
    # lambda (a omega + (1 - a) W) |D|, and the pair keeps its sparse-group blocks
    spec = replace(spec, l1_weight=0.3, cell_weight=rng.uniform(0.5, 2.0, (5, 6)))
    whole = FastEngine(setup.stats, spec)
    parts = [(rows, FastEngine(*split_problem(setup.stats, spec, rows)))
             for rows in (alone, ~alone)]
    assert parts[1][1].a == 0.3
    coef = rng.standard_normal((5, 6))
    total = sum(e.objective(coef[rows], 0.01) for rows, e in parts)
    assert total == pytest.approx(whole.objective(coef, 0.01), rel=1e-13)
    assert single_clusters(replace(spec, groups=np.array([0, 0, 1, 1, 1]))) is None


@pytest.mark.parametrize("lam", [1e-6, 7e-5])
def test_a_fold_of_single_clusters_is_the_lasso_path(wide_panel, lam):
    """Fold 5 (205 rows, 500 factors): every found cluster is single. The fit raised
    SolveError at both penalties; it is now the fast engine's (the LASSO's exact path on a
    singular Gram, no iteration), and each response equals scikit-learn's LassoLars on the
    same objective."""
    x, y = _fold(wide_panel, 4)
    fit = LassoModel(model_type=FCGL, warmup_period=None, reg_lambda=lam).fit(x, y)
    assert fit.clusters_.nunique() == 5
    assert fit.solver_ == "fast" and fit.n_iter_ == 0
    # each response: (1/T)||y - X b||^2 + lam w |b|_1, w = sqrt(1/G) ("normalized" weights)
    weight = np.sqrt(1.0 / 5)
    xc = x.to_numpy() - x.to_numpy().mean(axis=0)
    for i, name in enumerate(y.columns):
        yc = y[name].to_numpy() - y[name].mean()
        lars = LassoLars(alpha=lam * weight / 2.0, fit_intercept=False).fit(xc, yc)
        np.testing.assert_allclose(fit.coef_.to_numpy()[i], lars.coef_, rtol=0, atol=1e-6)
        assert (fit.coef_.to_numpy()[i] != 0).sum() <= len(x) - 1  # at most the rank


def _spy_on_clarabel(monkeypatch):
    """A list that records (the problem's shape, the solver settings) of every CVXPY solve."""
    seen = []
    original = LassoProblem.solve

    def spy(problem, lam, solver="CLARABEL", solver_params=None, verbose=False):
        seen.append((problem.coef.shape, dict(solver_params or {})))
        return original(problem, lam, solver, solver_params, verbose)

    monkeypatch.setattr(LassoProblem, "solve", spy)
    return seen


@pytest.mark.parametrize("lam", [1.8e-6, 1e-6])
def test_a_pair_cluster_is_polished_from_clarabel(wide_panel, monkeypatch, lam):
    """Fold 4 (164 rows): clusters of 2, 1, 1 and 1 responses, where the fit raised SolveError.
    The single clusters are the LASSO's and never reach CVXPY; the pair alone goes to Clarabel
    and Newton's polish, and where no guess from Clarabel's default point passes, to Clarabel
    again at 1e-12 tolerances (here at 1e-6 on one machine, not on another: the guesses are
    near their limit). Certified, at an objective no higher than Clarabel's on the whole
    problem at tight tolerances."""
    x, y = _fold(wide_panel, 3)
    model, setup, solver = _prepared(x, y, lam)
    seen = _spy_on_clarabel(monkeypatch)
    solution = solver.solve(lam)
    assert sorted(np.bincount(setup.spec.groups)) == [1, 1, 1, 2]
    tight = {"tol_gap_abs": 1e-12, "tol_gap_rel": 1e-12, "tol_feas": 1e-12, "tol_ktratio": 1e-10}
    assert seen in ([((2, 500), {})], [((2, 500), {}), ((2, 500), tight)])
    assert solution.solver == (
        "single-response clusters: fast; clusters of several responses: CLARABEL + fast "
        "polish (fast iterations skipped: singular Gram, small penalty)")
    assert solution.n_iter <= 100  # Newton's point, or a few iterations from it
    engine = solver.engine
    # each part certified by its own certificate (the single clusters' may use the LASSO's
    # rounding floor); the gap reported is the whole problem's, as computed
    assert solution.gap == engine.relative_gap(solution.coef, lam) < 2e-8
    for rows, part in solver._parts():
        assert part.engine.certificate(solution.coef[rows], lam, 1e-8)[1]
    monkeypatch.undo()
    _, reference = LassoProblem(setup.stats, setup.spec).solve(lam, "CLARABEL", TIGHT)
    assert engine.objective(solution.coef, lam) <= engine.objective(reference, lam) * (1 + 1e-8)


def test_a_users_solver_params_ask_for_cvxpy_on_the_whole_problem(wide_panel, monkeypatch):
    """With ``solver_params`` the user asks for CVXPY (as before this split): the whole
    problem, with exactly those settings."""
    x, y = _fold(wide_panel, 3)
    seen = _spy_on_clarabel(monkeypatch)
    _, _, solver = _prepared(x, y, 1e-5, solver_params={"tol_gap_rel": 1e-9},
                             engine_params={"max_iter": 50})  # (a short polish)
    with contextlib.suppress(SolveError):  # (the user's looser Clarabel need not certify)
        solver.solve(1e-5)
    assert seen[0] == ((5, 500), {"tol_gap_rel": 1e-9})


def test_warm_starts_go_to_each_part(wide_panel, monkeypatch):
    """Down a CV grid the previous penalty's answer warm-starts each part: certified with no
    CVXPY call, equal to the cold answer (objective within the gaps, same fitted values)."""
    x, y = _fold(wide_panel, 3)
    lam = 1e-5
    _, _, solver = _prepared(x, y, lam)
    cold = solver.solve(lam)
    near = solver.solve(2.0 * lam)
    monkeypatch.setattr(CertifiedSolver, "problem",
                        lambda *args: pytest.fail("CVXPY was called"))
    warm = solver.solve(lam, coef_init=near.coef)
    assert warm.solver == "fast" and warm.gap <= 1e-8
    assert_same_fit(solver.engine, x, warm.coef, cold.coef, lam, atol=1e-6)


def test_without_single_clusters_nothing_is_split():
    """One cluster (MultiTaskLasso): one problem, as before."""
    panel = make_factor_panel(40, 60, 4, seed=1)
    _, _, solver = _prepared(panel.x, panel.y, 1e-5, n_clusters=1)
    assert solver._parts() == []
    assert single_clusters(solver.spec) is None


def _sparse_group_case(t, m, n, seed, fraction, **kw):
    """A wide panel with FCGL ``l1_weight=0.5`` at ``fraction`` of lambda_max (random fits
    that raised SolveError: 20,000 iterations did not certify, nor Clarabel, nor the polish)."""
    panel = make_factor_panel(t, m, n, seed=seed)
    kw = dict(model_type=FCGL, warmup_period=None, l1_weight=0.5, **kw)
    lam = fraction * LassoModel(**kw).lambda_max(panel.x, panel.y)
    return panel, kw, lam


@pytest.mark.parametrize(("shape", "seed", "fraction", "kw", "label", "solves"), [
    ((24, 40, 4), 9055, 1.73e-6, {"n_clusters": 1}, "fast", []),
    ((29, 46, 11), 7034, 2.01e-6, {}, "single-response clusters: fast; clusters of several "
     "responses: CLARABEL + fast polish (fast iterations skipped: singular Gram, small penalty)",
     [{}]),
])
def test_sparse_group_fcgl_on_a_wide_panel_is_certified(shape, seed, fraction, kw, label,
                                                        solves, monkeypatch):
    """The engine's iterations are skipped below 1e-3 of lambda_max. Found clusters: Clarabel's
    default point is not certified, and Newton's point on what it holds active, with cells held
    at zero (the L1 kink, ``_boxed_blocks``), is, with no second solve (stop 32 asked Clarabel
    again at 1e-12); the single clusters are the LASSO's. One cluster: the duals'
    (``_dual_blocks``), with no Clarabel solve (it went to Clarabel before stop 43). The
    answer's objective is no higher than Clarabel's on the whole problem at tight
    tolerances."""
    panel, kw, lam = _sparse_group_case(*shape, seed, fraction, **kw)
    seen = _spy_on_clarabel(monkeypatch)
    fit = LassoModel(reg_lambda=lam, **kw).fit(panel.x, panel.y)
    assert fit.solver_ == label and fit.duality_gap_ <= 1e-8
    assert [params for _, params in seen] == solves
    model = LassoModel(reg_lambda=lam, **kw)
    setup = model._setup(panel.x, panel.y)
    engine = model._solver(setup, lam).engine
    _, reference = LassoProblem(setup.stats, setup.spec).solve(lam, "CLARABEL", TIGHT)
    ours = fit.coef_.to_numpy()
    assert engine.objective(ours, lam) <= engine.objective(reference, lam) * (1 + 1e-8)


def test_clarabel_is_asked_again_at_tight_tolerances(monkeypatch):
    """Engine "cvxpy", Newton's guesses withheld (``polish_start`` returns the point): Clarabel's
    default point has a relative gap of ~2e-7, the second one, at 1e-12 tolerances, certifies;
    a user's ``solver_params`` get exactly one solve with their settings."""
    panel, kw, lam = _sparse_group_case(24, 40, 4, 9055, 1.73e-6, n_clusters=1)
    seen = _spy_on_clarabel(monkeypatch)
    monkeypatch.setattr(FastEngine, "polish_start", lambda self, coef, *a, **k: coef)
    fit = LassoModel(reg_lambda=lam, engine="cvxpy", **kw).fit(panel.x, panel.y)
    assert fit.solver_ == "CLARABEL" and fit.n_iter_ is None and fit.duality_gap_ <= 1e-8
    assert [params for _, params in seen] == [{}, {"tol_gap_abs": 1e-12, "tol_gap_rel": 1e-12,
                                                    "tol_feas": 1e-12, "tol_ktratio": 1e-10}]
    seen.clear()
    with contextlib.suppress(SolveError):
        LassoModel(reg_lambda=lam, engine="cvxpy", solver_params={"max_iter": 100},
                   engine_params={"max_iter": 50}, **kw).fit(panel.x, panel.y)
    assert [params for _, params in seen] == [{"max_iter": 100}]


def test_a_sparse_group_warm_start_needs_neither_iterations_nor_cvxpy(monkeypatch):
    """Down a CV grid, FCGL with an L1 share crawls from the previous answer as from the prior
    (a fold of 96 rows: 1.3-1.7 s of iterations per lambda against 0.4 s for Clarabel); below
    1e-3 of lambda_max a warm start gets Newton's point on the previous answer's active blocks
    and cells (``_boxed_blocks``), which certifies here: no iteration, no CVXPY call (stop 32
    went to Clarabel)."""
    panel, kw, lam = _sparse_group_case(24, 40, 4, 9055, 1.73e-6, n_clusters=1)
    model = LassoModel(reg_lambda=lam, **kw)
    setup = model._setup(panel.x, panel.y)
    solver = model._solver(setup, lam)
    near = solver.solve(2.0 * lam)
    monkeypatch.setattr(FastEngine, "solve", lambda *a, **k: pytest.fail("the engine iterated"))
    seen = _spy_on_clarabel(monkeypatch)
    warm = solver.solve(lam, coef_init=near.coef)
    assert warm.solver == "fast" and warm.n_iter == 0 and not seen
    assert warm.gap <= 1e-8


def test_one_cluster_from_the_minimum_norm_solution(monkeypatch):
    """FCGL with one cluster (MultiTaskLasso) on 60 rows and 100 factors at the default penalty:
    the active-set Newton from the minimum-norm solution (``interpolant_start``) drops the one
    block whose ``nu`` runs away, the smallest of that solution's, and its second point is the
    minimiser: certified with no CVXPY call and no iteration (Clarabel and its polish took
    about 5 s), at an objective no higher than Clarabel's at tight tolerances."""
    panel = make_factor_panel(60, 100, 20, seed=0)
    kw = dict(model_type=FCGL, warmup_period=None, n_clusters=1)
    model = LassoModel(**kw)
    setup = model._setup(panel.x, panel.y)
    lam = model.reg_lambda
    monkeypatch.setattr(CertifiedSolver, "problem", lambda *a: pytest.fail("CVXPY was called"))
    fit = LassoModel(**kw).fit(panel.x, panel.y)
    assert fit.solver_ == "fast" and fit.n_iter_ == 0 and fit.duality_gap_ <= 1e-8
    coef = fit.coef_.to_numpy()
    zero = np.flatnonzero((coef == setup.spec.prior).all(axis=0))
    engine = model._solver(setup, lam).engine
    d0 = np.linalg.lstsq(engine.gram[0], engine._prior_residual().T, rcond=None)[0]
    assert list(zero) == [int(np.argmin(np.linalg.norm(d0, axis=1)))]
    monkeypatch.undo()
    _, reference = LassoProblem(setup.stats, setup.spec).solve(lam, "CLARABEL", TIGHT)
    assert engine.objective(coef, lam) <= engine.objective(reference, lam) * (1 + 1e-8)


def test_the_minimum_norm_start_applies_to_one_unboxed_cluster_only():
    """With a sign box the minimum-norm solution is not feasible (None: CVXPY as before), and
    several clusters are left to CVXPY by the solver."""
    from xl_factorlasso.core.linear_model._block_newton import interpolant_start

    panel = make_factor_panel(60, 100, 20, seed=0)
    model = LassoModel(model_type=FCGL, warmup_period=None, n_clusters=1, nonneg=True)
    setup = model._setup(panel.x, panel.y)
    assert interpolant_start(model._solver(setup, 1e-5).engine, 1e-5) is None
