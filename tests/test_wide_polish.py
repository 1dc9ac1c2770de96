"""Wide panels (more factors than rows) at the default penalty, where the proximal iterations
crawl: FCGL, and sparse-group rows beyond the row Newton finish's size. Engine "auto" goes to
CVXPY first (``iterations_crawl``) and turns its point into Newton's on what it holds active
(``block_polish``, ``FastEngine._row_polish``); the blocks need the accurate norms of
``block_newton(..., accurate=True)``."""

from __future__ import annotations

import numpy as np
import pytest

from tests.test_engine import TIGHT
from xl_factorlasso import LassoModel, LassoModelType, make_factor_panel
from xl_factorlasso.core.exceptions import SolveError
from xl_factorlasso.core.linear_model import FastEngine, _block_newton
from xl_factorlasso.core.linear_model._block_newton import (
    block_activity,
    block_kkt,
    block_newton,
    block_polish,
)
from xl_factorlasso.core.linear_model._certified import CertifiedSolver
from xl_factorlasso.core.linear_model._homotopy import iterations_crawl

FCGL = LassoModelType.FACTOR_CLUSTER_GROUP_LASSO
HCGL = LassoModelType.HIERARCHICAL_CLUSTER_GROUP_LASSO
SKIPPED = "CLARABEL + fast polish (fast iterations skipped: singular Gram, small penalty)"


def _polished(label: str) -> bool:
    """FCGL answered by CVXPY and the polish: the whole problem, or (where clusters of one
    response were found) the clusters of several responses, the single ones by the LASSO's
    fast engine (``_cluster_split``)."""
    return label in (SKIPPED,
                     f"single-response clusters: fast; clusters of several responses: {SKIPPED}")

pytestmark = [
    pytest.mark.filterwarnings("ignore:solver CLARABEL returned an inaccurate solution"),
    pytest.mark.filterwarnings("ignore:Solution may be inaccurate"),
]


def assert_same_fit(engine, x, ours, theirs, lam, atol):
    """``ours`` (a warm start's answer) is the minimiser ``theirs`` is: an objective no higher
    (within the gaps) and the same fitted values on the centred factors ``x``."""
    assert engine.objective(ours, lam) <= engine.objective(theirs, lam) * (1 + 1e-8)
    xc = x.to_numpy() - x.to_numpy().mean(axis=0)
    np.testing.assert_allclose(xc @ ours.T, xc @ theirs.T, atol=atol)


def _wide(seed=1):
    """40 rows, 60 factors, 10 assets: every Gram singular; the default reg_lambda is about
    1e-6 of lambda_max."""
    return make_factor_panel(40, 60, 10, seed=seed)


def _engine_and_clarabel(panel, params=None, **kw):
    """The problem's engine, reg_lambda, and Clarabel's own point (before any certificate or
    polish), at its default tolerances (those of the fit) or ``params``."""
    kw.setdefault("model_type", FCGL)
    model = LassoModel(warmup_period=None, engine="cvxpy", **kw)
    return _clarabel_of(model, panel, params)


def _clarabel_of(model, panel, params=None):
    setup = model._setup(panel.x, panel.y)
    solver = model._solver(setup, model.reg_lambda)
    _, coef = solver.problem(model.reg_lambda).solve(model.reg_lambda, "CLARABEL",
                                                    params or {}, False)
    return solver.engine, model.reg_lambda, setup, coef


@pytest.mark.parametrize("seed", [1, 2])
def test_default_penalty_on_a_wide_panel_is_certified(seed):
    """The fit used to raise SolveError (neither the fast engine nor Clarabel at its default
    tolerances reached a gap of 1e-8); it now returns Clarabel's point polished, certified, at
    an objective no higher than Clarabel's at tight tolerances and with the same fitted
    values."""
    panel = _wide(seed)
    fit = LassoModel(model_type=FCGL, warmup_period=None).fit(panel.x, panel.y)
    assert _polished(fit.solver_)
    assert fit.duality_gap_ <= 1e-8
    engine, lam, setup, default = _engine_and_clarabel(panel)
    assert lam < 1e-5 * setup.lambda_max
    assert engine.relative_gap(default, lam) > 1e-8  # what the fit had to polish
    clarabel = _engine_and_clarabel(panel, TIGHT)[3]
    ours = fit.coef_.to_numpy()
    # within our certified gap of Clarabel's best (its own gap is 1e-9 here)
    assert engine.objective(ours, lam) <= engine.objective(clarabel, lam) * (1 + 1e-9)
    x = panel.x.to_numpy() - panel.x.to_numpy().mean(axis=0)
    np.testing.assert_allclose(x @ ours.T, x @ clarabel.T, atol=1e-5)
    # the blocks we leave at zero are the ones Clarabel drives towards zero
    _, ours_norms = block_activity(engine, ours)
    _, ref_norms = block_activity(engine, clarabel)
    zero = ours_norms == 0.0
    assert zero.any() and (~zero).sum() > engine.n_units * 20  # most blocks active
    assert (ref_norms[zero] < 1e-4 * ref_norms.max()).all()


@pytest.mark.parametrize(("seed", "fraction"), [(1, 1e-3), (2, 2e-3)])
def test_a_certified_cvxpy_answer_gets_the_engines_exact_zeros(seed, fraction):
    """Where "auto" skips the engine and Clarabel's point certifies as it is, the blocks that
    belong at zero sit near 1e-10, not at 0; the answer is Newton's point on its active blocks,
    with the exact zeros and loadings of ``engine="fast"`` (which still certifies at this
    penalty, slower)."""
    panel = _wide(seed)
    top = LassoModel(model_type=FCGL, warmup_period=None).lambda_max(panel.x, panel.y)
    kw = dict(model_type=FCGL, warmup_period=None, reg_lambda=fraction * top)
    engine, lam, _, raw = _clarabel_of(LassoModel(engine="cvxpy", **kw), panel)
    assert engine.relative_gap(raw, lam) <= 1e-8 and not (raw == 0.0).any()
    auto = LassoModel(**kw).fit(panel.x, panel.y)
    fast = LassoModel(engine="fast", **kw).fit(panel.x, panel.y)
    assert _polished(auto.solver_) and auto.n_iter_ == 0 and fast.solver_ == "fast"
    ours, theirs = auto.coef_.to_numpy(), fast.coef_.to_numpy()
    assert (ours == 0.0).sum() > 100
    np.testing.assert_array_equal(ours == 0.0, theirs == 0.0)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-8)


@pytest.mark.parametrize("seed", [1, 2])
def test_a_tenth_of_the_default_penalty_lands_too(seed):
    """At 1e-7 of lambda_max (the bottom of LassoModelCV's default grid on such a panel) the
    block Newton stalls at round-off a little higher (phi between 1e-9 and 1e-8 of kappa); it is
    taken there, and the certificate passes."""
    panel = _wide(seed)
    top = LassoModel(model_type=FCGL, warmup_period=None).lambda_max(panel.x, panel.y)
    fit = LassoModel(model_type=FCGL, warmup_period=None, reg_lambda=1e-7 * top).fit(
        panel.x, panel.y)
    assert _polished(fit.solver_) and fit.duality_gap_ <= 1e-8


def test_the_fast_engine_alone_still_runs_out_of_iterations():
    """What the skip avoids: engine "fast" is the user's explicit choice and still iterates,
    and does not certify this problem within its budget."""
    panel = _wide()
    with pytest.raises(SolveError, match="fast engine not certified"):
        LassoModel(model_type=FCGL, warmup_period=None, engine="fast",
                   engine_params={"max_iter": 2000}).fit(panel.x, panel.y)


def test_polish_finds_the_active_blocks_of_an_interior_point():
    """From Clarabel's point (every block nonzero, the inactive ones some orders below the
    largest), every cluster gets Newton's point on its active blocks: zero blocks meet their
    conditions and the gap is at round-off, far below Clarabel's own."""
    engine, lam, _, clarabel = _engine_and_clarabel(_wide())
    assert block_activity(engine, clarabel)[0].all()
    out, taken = block_polish(engine, clarabel, lam)
    assert taken.all()
    assert block_kkt(engine, out, lam).all()
    assert engine.relative_gap(out, lam) <= 1e-9 < engine.relative_gap(clarabel, lam)


def test_accurate_norms_are_what_lets_newton_land():
    """On the same active blocks, Newton with the norms from ``K^-1 Q K^-1`` stalls (K is as
    ill-conditioned as the singular Gram makes it) while the accurate norms converge."""
    engine, lam, _, clarabel = _engine_and_clarabel(_wide())
    polished, _ = block_polish(engine, clarabel, lam)
    rows = np.ones(engine.n, dtype=bool)
    cheap, cheap_solved = block_newton(engine, polished, lam, rows)
    accurate, accurate_solved = block_newton(engine, polished, lam, rows, accurate=True)
    assert accurate_solved.all() and not cheap_solved.all()
    assert engine.relative_gap(accurate, lam) <= 1e-9


def test_a_warm_start_lands_on_newton_without_cvxpy(monkeypatch):
    """From the minimiser at a neighbouring penalty (a CV grid's or a path's previous lambda),
    engine "auto" tries Newton on that point's active blocks first: certified with no CVXPY
    call and no iteration, equal to the cold fit (objective within the gaps, same fitted
    values)."""
    panel = _wide()
    model = LassoModel(model_type=FCGL, warmup_period=None)
    setup = model._setup(panel.x, panel.y)
    lam = model.reg_lambda
    cold = model._solver(setup, lam).solve(lam)
    assert _polished(cold.solver)
    near = model._solver(setup, 2.0 * lam).solve(2.0 * lam)
    solver = model._solver(setup, lam)
    monkeypatch.setattr(CertifiedSolver, "problem",
                        lambda *args: pytest.fail("CVXPY was called"))
    warm = solver.solve(lam, coef_init=near.coef)
    assert warm.solver == "fast" and warm.n_iter == 0 and warm.gap <= 1e-8
    e = solver.engine
    assert_same_fit(e, panel.x, warm.coef, cold.coef, lam, atol=1e-5)


def test_a_warm_start_joins_the_blocks_whose_conditions_fail(monkeypatch):
    """From the minimiser at a larger penalty with fewer active blocks, Newton on its own set
    is refused (a zero block's pull exceeds its radius); the blocks that fail join, and the
    next Newton point is taken when it is the minimiser."""
    panel = _wide()
    model = LassoModel(model_type=FCGL, warmup_period=None)
    setup = model._setup(panel.x, panel.y)
    solver = model._solver(setup, model.reg_lambda)
    e = solver.engine
    joins = []
    real = _block_newton._joined
    monkeypatch.setattr(_block_newton, "_joined",
                        lambda *args: joins.append(1) or real(*args))
    lam = 1e-3 * setup.lambda_max
    near = model._solver(setup, 1.3 * lam).solve(1.3 * lam).coef
    near, _ = block_polish(e, near, 1.3 * lam)  # exact zeros, as a warm start has
    out, taken = block_polish(e, near, lam, warm=True)
    active_near = block_activity(e, near)[0]
    active_out = block_activity(e, out)[0]
    assert joins and taken.all() and (active_out & ~active_near).any()
    assert e.relative_gap(out, lam) <= 1e-9


def _wide_rows(seed=1):
    """40 rows, 160 factors, 10 assets: N M^2 beyond the row Newton finish's 2e5."""
    return make_factor_panel(40, 160, 10, seed=seed)


@pytest.mark.parametrize("seed", [1, 2])
def test_sparse_group_rows_on_a_wide_panel_are_polished_by_newton(seed):
    """HCGL with an L1 share beyond the row Newton finish's size: Clarabel's point, which
    Newton's steps on the guessed supports alone bring to a gap of 1e-9 (the polish of a CVXPY
    point); the fit itself, answered by the dual start (``_box_ridge``) before any CVXPY, is
    within the certified gap of Clarabel's best objective and has the same fitted values.
    (Before the polish, 20,000 iterations then CVXPY, and for one seed SolveError; before the
    dual start, Clarabel and that polish.)"""
    panel = _wide_rows(seed)
    fit = LassoModel(model_type=HCGL, l1_weight=0.1, warmup_period=None).fit(panel.x, panel.y)
    assert fit.solver_ == "fast" and fit.n_iter_ == 0 and fit.duality_gap_ <= 1e-8
    engine, lam, _, default = _engine_and_clarabel(panel, model_type=HCGL, l1_weight=0.1)
    assert not engine._row_newton_runs()
    assert engine.relative_gap(default, lam) > 1e-8
    polished = engine._row_polish(np.clip(default, engine.lo, engine.hi), lam)
    assert engine.relative_gap(polished, lam) <= 1e-9
    clarabel = _engine_and_clarabel(panel, TIGHT, model_type=HCGL, l1_weight=0.1)[3]
    ours = fit.coef_.to_numpy()
    assert engine.objective(ours, lam) <= engine.objective(clarabel, lam) * (1 + 1e-9)
    x = panel.x.to_numpy() - panel.x.to_numpy().mean(axis=0)
    np.testing.assert_allclose(x @ ours.T, x @ clarabel.T, atol=1e-5)
    # exact zeros where Clarabel's cells are small, more loadings than rows per response
    zero = ours == 0.0
    assert zero.any() and ((~zero).sum(axis=1) > 40).all()
    assert (np.abs(clarabel[zero]) < 1e-4 * np.abs(clarabel).max()).all()


@pytest.mark.parametrize("seed", [1, 2])
def test_sparse_group_rows_from_a_warm_start_go_to_the_fast_engine(monkeypatch, seed):
    """From the minimiser at twice the penalty (a CV grid's previous lambda) the fast engine
    answers without CVXPY (its iterations and the dual start, ``_box_ridge``, as the cold fit
    now does too); certified, equal to the cold fit (objective within the gaps, same fitted
    values)."""
    panel = _wide_rows(seed)
    model = LassoModel(model_type=HCGL, l1_weight=0.1, warmup_period=None)
    setup = model._setup(panel.x, panel.y)
    lam = model.reg_lambda
    cold = model._solver(setup, lam).solve(lam)
    near = model._solver(setup, 2.0 * lam).solve(2.0 * lam)
    assert cold.solver == near.solver == "fast"
    solver = model._solver(setup, lam)
    monkeypatch.setattr(CertifiedSolver, "problem",
                        lambda *args: pytest.fail("CVXPY was called"))
    warm = solver.solve(lam, coef_init=near.coef)
    assert warm.solver == "fast" and warm.gap <= 1e-8
    e = solver.engine
    assert_same_fit(e, panel.x, warm.coef, cold.coef, lam, atol=1e-5)


def test_where_auto_skips_the_fast_engine():
    """FCGL without an L1 share below 1e-2 of lambda_max, with one below 1e-3, and sparse-group
    rows where the row Newton finish (and so the continuation) does not run below 1e-4, every
    Gram singular."""
    def engine_of(x, y, model_type=FCGL, **kw):
        setup = LassoModel(model_type=model_type, warmup_period=None, **kw)._setup(x, y)
        return FastEngine(setup.stats, setup.spec), setup.lambda_max

    rows = _wide_rows()
    engine, top = engine_of(rows.x, rows.y, HCGL, l1_weight=0.1)
    assert iterations_crawl(engine, 1e-5 * top, top)
    assert not iterations_crawl(engine, 2e-4 * top, top)  # there its iterations are faster
    engine, top = engine_of(rows.x, rows.y, HCGL)  # no L1 share: the closed-form start
    assert not iterations_crawl(engine, 1e-5 * top, top)
    small = _wide()  # sparse-group rows where the row Newton and the continuation run
    engine, top = engine_of(small.x, small.y, HCGL, l1_weight=0.1)
    assert engine._row_newton_runs() and not iterations_crawl(engine, 1e-5 * top, top)

    wide = _wide()
    engine, top = engine_of(wide.x, wide.y)
    assert iterations_crawl(engine, 5e-3 * top, top)
    assert not iterations_crawl(engine, 2e-2 * top, top)
    assert not iterations_crawl(engine, 0.0, top)
    sparse_group, top = engine_of(wide.x, wide.y, l1_weight=0.1)  # (stop 32)
    assert iterations_crawl(sparse_group, 5e-4 * top, top)
    assert not iterations_crawl(sparse_group, 2e-3 * top, top)
    tall = make_factor_panel(200, 10, 10, seed=0)
    engine, top = engine_of(tall.x, tall.y)
    assert not iterations_crawl(engine, 1e-5 * top, top)
    # a ragged panel where only a short history's Gram is singular (3 rows, 5 factors)
    panel = make_factor_panel(100, 5, 6, seed=0)
    y = panel.y.copy()
    y.iloc[:97, 0] = np.nan
    engine, top = engine_of(panel.x, y)
    assert not bool(engine._invertible.all())
    assert not iterations_crawl(engine, 1e-5 * top, top)
