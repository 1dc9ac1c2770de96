"""Newton's finish of FCGL blocks (``_block_newton``): the secular equations in ``nu``, the
zero blocks' conditions, and the engine's answers with and without it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.test_engine import TIGHT, _fit_pair, _kwargs, assert_same_minimiser
from tests.test_lasso_reference_cvxpy import make_ragged_panel
from xl_factorlasso import LassoModel, make_factor_panel
from xl_factorlasso.core.linear_model import FastEngine, _engine
from xl_factorlasso.core.linear_model._block_newton import (
    _solve_batch,
    block_activity,
    block_kkt,
    block_newton,
)

LAM = 0.2  # on this panel (lambda_max 0.32) two of the four factor blocks are active

pytestmark = [
    pytest.mark.filterwarnings("ignore:solver CLARABEL returned an inaccurate solution"),
    pytest.mark.filterwarnings("ignore:Solution may be inaccurate"),
]


def _stationarity(engine, coef, lam):
    """Largest |(2/T')(G b - c) + lambda w D_gj / ||D_gj|| | over the cells of nonzero blocks,
    relative to the largest gradient: the optimality condition written out here."""
    d = coef - engine.prior
    grad = (2.0 / engine.t_rows) * (engine._gram_times(coef) - engine.xty)
    norms = np.sqrt(np.bincount(engine.gid, weights=(d * d).ravel(),
                                minlength=engine.n_groups))
    w = engine.group_w[engine.gid].reshape(d.shape)
    nrm = norms[engine.gid].reshape(d.shape)
    on = nrm > 0
    res = np.where(on, grad + lam * w * d / np.where(on, nrm, 1.0), 0.0)
    return np.abs(res).max() / np.abs(grad).max()


def test_one_active_factor_is_the_closed_form():
    """|A| = 1: D = r / (g + nu) and nu ||r|| / (g + nu) = kappa, so nu = kappa g / (||r|| - kappa)."""
    rng = np.random.default_rng(0)
    r = rng.standard_normal((6, 1))
    g, kappa = 2.5, np.array([[0.4 * np.linalg.norm(r)]])
    found, done = _solve_batch(np.full((1, 1, 1, 1), g), (r.T @ r)[None, None], kappa,
                               np.ones((1, 1)))
    assert done.all()
    nu = kappa[0, 0] * g / (np.linalg.norm(r) - kappa[0, 0])
    np.testing.assert_allclose(r / (g + found[0, 0]), r / (g + nu), rtol=1e-13)


def test_secular_equations_hold_for_a_batch_and_several_patterns():
    """Three clusters at once, each with two Grams (patterns): at the answer every block's
    nu_j ||D_j|| equals kappa_j and each part's rows solve their own linear system."""
    rng = np.random.default_rng(1)
    k, n_batch = 3, 3
    grams = np.empty((n_batch, 2, k, k))
    residuals = [[rng.standard_normal((rows, k)) * 3.0 for rows in (5, 4)]
                 for _ in range(n_batch)]
    for b in range(n_batch):
        for p in range(2):
            a = rng.standard_normal((20, k))
            grams[b, p] = a.T @ a
    q = np.array([[r.T @ r for r in parts] for parts in residuals])
    kappa = rng.uniform(0.3, 1.0, (n_batch, k))
    found, done = _solve_batch(grams, q, kappa, np.ones((n_batch, k)))
    assert done.all()
    for b in range(n_batch):
        ds = [np.linalg.solve(grams[b, p] + np.diag(found[b]), residuals[b][p].T).T
              for p in range(2)]
        nu = kappa[b] / np.sqrt(sum((d * d).sum(axis=0) for d in ds))
        for p in range(2):
            np.testing.assert_allclose(ds[p] @ (grams[b, p] + np.diag(nu)), residuals[b][p],
                                       atol=1e-12)


def _one_cluster_engine(seed=8, reg_lambda=LAM, signed=False, span=26):
    x, y = make_ragged_panel(seed=seed)  # ragged: several Grams (patterns) in the one cluster
    kw = _kwargs("FCGL", span, 0.0, signed, x, y, reg_lambda=reg_lambda)
    kw["n_clusters"] = 1
    fast, ref = _fit_pair(kw, x, y)
    setup = fast._fit_setup_
    return FastEngine(setup.stats, setup.spec), fast, ref


def test_newton_from_a_perturbed_point_returns_the_minimiser():
    """On the minimiser's active blocks, from a point 1e-3 off, one call returns the minimiser:
    stationarity at round-off, a gap at round-off, equal to tight CVXPY."""
    engine, fast, ref = _one_cluster_engine()
    assert_same_minimiser(fast, ref)
    assert len(engine.gram) > 1  # several patterns: the sums over patterns are exercised
    best = fast.coef_.to_numpy()
    active, _ = block_activity(engine, best)
    assert 2 <= active.sum() < engine.m  # some blocks active, some at zero: the test has teeth
    rng = np.random.default_rng(0)
    start = np.where(best != engine.prior, best * (1 + 1e-3 * rng.standard_normal(best.shape)),
                     best)
    start_gap, objective = engine.duality_gap(start, LAM)
    cand, solved = block_newton(engine, start, LAM, np.ones(engine.n, dtype=bool))
    assert solved.all() and block_kkt(engine, cand, LAM).all()
    gap, objective = engine.duality_gap(cand, LAM)
    assert gap / objective <= 1e-13 < start_gap / objective
    assert _stationarity(engine, cand, LAM) <= 1e-12
    np.testing.assert_allclose(cand, best, atol=1e-9)
    # Clarabel stops ~1e-6 off here: within assert_same_minimiser's allowance
    np.testing.assert_allclose(cand, ref.coef_.to_numpy(), atol=1e-5)


def test_a_block_that_belongs_at_zero_is_refused_and_the_solve_still_lands():
    """A warm start with a block active that the minimiser has at zero: Newton on that support
    cannot be the minimiser (it fails, or the zero blocks' test / the box refuses it), and the
    solve goes on to the minimiser."""
    engine, fast, _ = _one_cluster_engine()
    best = fast.coef_.to_numpy()
    active, _ = block_activity(engine, best)
    zero = int(np.flatnonzero(~active[0])[0])
    start = best.copy()
    start[:, zero] = engine.prior[:, zero] + 1e-2
    start = np.clip(start, engine.lo, engine.hi)
    cand, solved = block_newton(engine, start, LAM, np.ones(engine.n, dtype=bool))
    if solved.all():
        kept = ((cand >= engine.lo) & (cand <= engine.hi)).all()
        assert not (kept and block_kkt(engine, cand, LAM).all() and
                    np.allclose(cand, best, atol=1e-6))
    out = engine.solve(LAM, coef_init=start)
    assert out.certified
    np.testing.assert_allclose(out.coef, best, atol=1e-8)


def test_zero_blocks_conditions():
    """At the prior (every block zero) the conditions hold iff lambda >= lambda_max."""
    x, y = make_ragged_panel(seed=3)
    kw = _kwargs("FCGL", None, 0.0, False, x, y)
    kw["n_clusters"] = 1
    model = LassoModel(**kw)
    lam_max = model.lambda_max(x, y)
    setup = model._setup(x, y)
    engine = FastEngine(setup.stats, setup.spec)
    assert block_kkt(engine, engine.prior, lam_max * (1 + 1e-6)).all()
    assert not block_kkt(engine, engine.prior, lam_max * 0.99).any()


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("n_clusters", [1, 3])
def test_engine_with_and_without_the_block_newton_agree(monkeypatch, signed, n_clusters):
    """The same minimiser with the finish and with proximal iterations alone (finish disabled);
    with the finish the stationarity is at round-off and the iterations fewer."""
    p = make_factor_panel(400, 6, 40, seed=2)
    kw = dict(model_type="FCGL", warmup_period=None, n_clusters=n_clusters)
    if signed:  # every loading nonnegative: some cells sit at the bound 0
        kw["factors_beta_loading_signs"] = pd.DataFrame(1.0, index=p.y.columns,
                                                        columns=p.x.columns)
    lam = 0.05 * LassoModel(**kw).lambda_max(p.x, p.y)
    setup = LassoModel(reg_lambda=lam, **kw)._setup(p.x, p.y)
    engine = FastEngine(setup.stats, setup.spec)
    with_newton = engine.solve(lam)
    monkeypatch.setattr(_engine, "_BLOCK_NEWTON_SIZE", 0)
    without = FastEngine(setup.stats, setup.spec).solve(lam)
    assert with_newton.certified and without.certified
    if signed:
        assert (with_newton.coef == 0.0).any() and (with_newton.coef > 0.0).any()
    np.testing.assert_allclose(with_newton.coef, without.coef, atol=1e-7)
    if not signed:
        assert _stationarity(engine, with_newton.coef, lam) <= 1e-11
        assert with_newton.iterations < without.iterations


def test_fcgl_one_cluster_fit_equals_cvxpy_with_signs():
    """Signs and a prior (box bounds that bind): the finish only takes clusters whose active
    cells are inside the box, and the fit still equals tight CVXPY."""
    x, y = make_ragged_panel(seed=5)
    kw = _kwargs("FCGL", None, 0.0, True, x, y, reg_lambda=0.03)
    kw["n_clusters"] = 1
    fast = LassoModel(engine="fast", **kw).fit(x, y)
    ref = LassoModel(engine="cvxpy", solver_params=TIGHT, **kw).fit(x, y)
    assert_same_minimiser(fast, ref)


def _fcgl_one(seed, fraction, t=300, m=6, n=30):
    p = make_factor_panel(t, m, n, seed=seed)
    kw = dict(model_type="FCGL", warmup_period=None, n_clusters=1)
    lam = fraction * LassoModel(**kw).lambda_max(p.x, p.y)
    setup = LassoModel(reg_lambda=lam, **kw)._setup(p.x, p.y)
    return setup, lam


def _without_newton(monkeypatch, setup, lam):
    with monkeypatch.context() as patched:
        patched.setattr(_engine, "_BLOCK_NEWTON_SIZE", 0)
        return FastEngine(setup.stats, setup.spec).solve(lam)


def test_cold_start_tries_every_cluster_after_one_iteration(monkeypatch):
    """Every block active at the answer: the first iteration's active blocks are the answer's,
    and the try after it ends the solve."""
    setup, lam = _fcgl_one(seed=2, fraction=0.05, t=400, n=40)
    engine = FastEngine(setup.stats, setup.spec)
    got = engine.solve(lam)
    assert got.certified and got.iterations == 1
    assert block_activity(engine, got.coef)[0].all()
    alone = _without_newton(monkeypatch, setup, lam)
    assert alone.iterations > 1
    np.testing.assert_allclose(got.coef, alone.coef, rtol=0, atol=1e-7)
    assert _stationarity(engine, got.coef, lam) <= 1e-11


def test_a_wrong_first_guess_keeps_the_usual_schedule(monkeypatch):
    """After one iteration a block is active that belongs at zero: the early try is refused,
    the later tries (the usual schedule, not switched off by it) still end at the minimiser."""
    setup, lam = _fcgl_one(seed=0, fraction=0.5)
    engine = FastEngine(setup.stats, setup.spec)
    first = engine.prox(engine.prior - (2.0 / engine.t_rows) * engine.step
                        * (engine._gram_times(engine.prior) - engine.xty), lam)
    got = engine.solve(lam)
    assert got.certified and got.iterations > 1
    early = block_activity(engine, first)[0]
    final = block_activity(engine, got.coef)[0]
    assert (early & ~final).any()  # the guess had a block too many
    alone = _without_newton(monkeypatch, setup, lam)
    np.testing.assert_allclose(got.coef, alone.coef, rtol=0, atol=1e-7)
    assert _stationarity(engine, got.coef, lam) <= 1e-11
