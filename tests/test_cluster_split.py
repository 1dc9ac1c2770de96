"""FCGL's single-response clusters solved as LASSO responses where the block iterations crawl
(``_cluster_split``, ``CertifiedSolver._solve_parts``), and Clarabel's tighter tolerances for
the clusters of several responses there.

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
    # an L1 share or cooperative blocks: the single clusters are not plain LASSO responses
    assert single_clusters(replace(spec, l1_weight=0.1)) is None
    assert single_clusters(replace(spec, cooperative=True)) is None
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


def test_a_pair_cluster_is_polished_from_a_tighter_clarabel(wide_panel):
    """Fold 4 (164 rows): clusters of 2, 1, 1 and 1 responses at 1.8e-6, where the fit raised
    SolveError. The single clusters are the LASSO's; the pair goes to Clarabel at 1e-12
    tolerances and Newton's polish, certified, at an objective no higher than Clarabel's on
    the whole problem at tight tolerances."""
    x, y = _fold(wide_panel, 3)
    lam = 1.8e-6
    model, setup, solver = _prepared(x, y, lam)
    solution = solver.solve(lam)
    assert sorted(np.bincount(setup.spec.groups)) == [1, 1, 1, 2]
    assert solution.solver == (
        "single-response clusters: fast; clusters of several responses: CLARABEL + fast "
        "polish (fast engine skipped: singular Gram, small penalty)")
    engine = solver.engine
    assert solution.gap == engine.relative_gap(solution.coef, lam) <= 1e-8
    _, reference = LassoProblem(setup.stats, setup.spec).solve(lam, "CLARABEL", TIGHT)
    assert engine.objective(solution.coef, lam) <= engine.objective(reference, lam) * (1 + 1e-8)


def test_the_pairs_clarabel_gets_tight_tolerances_unless_the_user_sets_them(wide_panel,
                                                                          monkeypatch):
    """What Clarabel is asked where the engine is skipped for blocks: 1e-12 tolerances, for
    the pair alone (the single clusters never reach CVXPY). A user's own ``solver_params``
    ask for CVXPY on the whole problem (as before), with exactly those settings."""
    x, y = _fold(wide_panel, 3)
    seen = []
    original = LassoProblem.solve

    def spy(problem, lam, solver="CLARABEL", solver_params=None, verbose=False):
        seen.append((problem.coef.shape, dict(solver_params or {})))
        return original(problem, lam, solver, solver_params, verbose)

    monkeypatch.setattr(LassoProblem, "solve", spy)
    _, _, solver = _prepared(x, y, 1e-5)
    solver.solve(1e-5)
    assert seen == [((2, 500), {"tol_gap_abs": 1e-12, "tol_gap_rel": 1e-12, "tol_feas": 1e-12,
                                "tol_ktratio": 1e-10})]
    seen.clear()
    _, _, solver = _prepared(x, y, 1e-5, solver_params={"tol_gap_rel": 1e-9})
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
    engine = solver.engine
    assert engine.objective(warm.coef, lam) <= engine.objective(cold.coef, lam) * (1 + 1e-8)
    xc = x.to_numpy() - x.to_numpy().mean(axis=0)
    np.testing.assert_allclose(xc @ warm.coef.T, xc @ cold.coef.T, atol=1e-6)


def test_without_single_clusters_nothing_is_split():
    """One cluster (MultiTaskLasso): one problem, as before."""
    panel = make_factor_panel(40, 60, 4, seed=1)
    _, _, solver = _prepared(panel.x, panel.y, 1e-5, n_clusters=1)
    assert solver._parts() == []
    assert single_clusters(solver.spec) is None
