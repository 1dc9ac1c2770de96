"""LASSO's active-set start (``_NewtonFinish.cold_start``, ``FastEngine._support_guess``) and
the two ways the engine solves its Newton systems (padded M x M, or by support size)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import Lasso

from tests.conftest import switch_off_active_set
from tests.test_engine import _fit_pair, _kwargs, assert_same_minimiser
from tests.test_lasso_reference_cvxpy import make_ragged_panel
from xl_factorlasso import LassoModel, make_factor_panel
from xl_factorlasso.core.linear_model import FastEngine, _engine, _newton_finish

pytestmark = [
    pytest.mark.filterwarnings("ignore:solver CLARABEL returned an inaccurate solution"),
    pytest.mark.filterwarnings("ignore:Solution may be inaccurate"),
]


def _engine_of(x, y, **kw):
    kw.setdefault("warmup_period", None)
    setup = LassoModel(**kw)._setup(x, y)
    return FastEngine(setup.stats, setup.spec)


def _record_tries(monkeypatch) -> list:
    """Every Newton try from now on, as ``(support, rows tried, rows accepted)``."""
    tries = []
    take = _newton_finish._NewtonFinish.take

    def recorded(self, out, cand, support, rows):
        accepted, kept = take(self, out, cand, support, rows)
        tries.append((support.copy(), rows.copy(), accepted.copy()))
        return accepted, kept

    monkeypatch.setattr(_newton_finish._NewtonFinish, "take", recorded)
    return tries


@pytest.mark.parametrize("constraint", ["none", "nonneg", "signs_prior"])
@pytest.mark.parametrize("fraction", [0.01, 0.1, 0.5])
def test_cold_start_reaches_the_minimiser_before_any_iteration(monkeypatch, constraint,
                                                               fraction):
    """On a complete panel the guess and its corrections finish every response with no
    proximal iteration, at the minimiser the iterations alone reach (active-set steps off)."""
    p = make_factor_panel(300, 8, 60, seed=4)
    kw = {}
    if constraint == "nonneg":
        kw["factors_beta_loading_signs"] = pd.DataFrame(1.0, index=p.y.columns,
                                                        columns=p.x.columns)
    elif constraint == "signs_prior":
        kw.update(factors_beta_loading_signs=p.signs, factors_beta_prior=p.prior)
    lam = fraction * LassoModel(warmup_period=None, **kw).lambda_max(p.x, p.y)
    engine = _engine_of(p.x, p.y, reg_lambda=lam, **kw)
    fast = engine.solve(lam)
    assert fast.certified and fast.iterations == 0
    switch_off_active_set(monkeypatch)
    monkeypatch.setattr(_engine, "_PADDED_MAX", 0)
    alone = _engine_of(p.x, p.y, reg_lambda=lam, **kw).solve(lam)
    assert alone.certified and alone.iterations > 0
    np.testing.assert_allclose(fast.coef, alone.coef, rtol=0, atol=1e-10)
    if constraint != "none":
        assert (fast.coef[engine.lo == 0.0] >= 0.0).all()


def test_cold_start_equals_scikit_learn_lasso():
    """Unconstrained, complete panel: the full-solve guess path; scikit-learn's Lasso on the
    centred data (alpha = lambda / 2 in its (1/2n) scaling) at a tight tolerance."""
    p = make_factor_panel(400, 10, 30, seed=6)
    lam = 0.05 * LassoModel(warmup_period=None).lambda_max(p.x, p.y)
    model = LassoModel(reg_lambda=lam, warmup_period=None).fit(p.x, p.y)
    assert model.n_iter_ == 0
    x = p.x.to_numpy() - p.x.to_numpy().mean(axis=0)
    y = p.y.to_numpy() - p.y.to_numpy().mean(axis=0)
    ref = Lasso(alpha=lam / 2.0, fit_intercept=False, tol=1e-14, max_iter=100_000).fit(x, y)
    np.testing.assert_allclose(model.coef_.to_numpy(), ref.coef_, rtol=0, atol=1e-8)
    assert ((model.coef_.to_numpy() == 0.0) == (np.abs(ref.coef_) < 1e-10)).all()


@pytest.mark.parametrize("signed", [False, True])
def test_cold_start_on_a_ragged_panel_with_a_span_equals_cvxpy(signed):
    """Several Grams (no full-solve guess) and EWMA weights: equal to tight CVXPY."""
    x, y = make_ragged_panel(seed=5)
    kw = _kwargs("LASSO", 26, 0.0, signed, x, y, reg_lambda=0.05)
    fast, ref = _fit_pair(kw, x, y)
    assert_same_minimiser(fast, ref)


def test_guess_on_a_singular_gram_falls_back_to_the_descents():
    """More factors than rows: the free solve's Cholesky fails; the guess is then the cells
    where moving lowers the objective, and the solve is still certified."""
    p = make_factor_panel(40, 60, 3, seed=1)
    lam = 0.2 * LassoModel(warmup_period=None).lambda_max(p.x, p.y)
    engine = _engine_of(p.x, p.y, reg_lambda=lam)
    idx = np.arange(engine.n)
    up, down = engine._descents(engine.prior, lam, idx)[:2]
    guess = engine._support_guess(engine.prior, lam, idx)
    np.testing.assert_array_equal(guess, np.where(up, 1.0, np.where(down, -1.0, 0.0)))
    assert engine.solve(lam).certified


@pytest.mark.parametrize(("shape", "seed", "fraction"),
                         [((68, 27, 28), 56, 0.5), ((338, 35, 56), 68, 0.001)])
def test_corrections_drop_and_add_in_one_try(monkeypatch, shape, seed, fraction):
    """A refused candidate loses the cells that crossed zero and gains the cells whose
    conditions fail at the point so corrected, in one step: on these panels the cold start
    then lands with no iteration (dropping first and adding at the next try left 4 and 11
    iterations), at the minimiser the iterations alone reach."""
    p = make_factor_panel(*shape, seed=seed)
    lam = fraction * LassoModel(warmup_period=None).lambda_max(p.x, p.y)
    fast = _engine_of(p.x, p.y, reg_lambda=lam).solve(lam)
    assert fast.certified and fast.iterations == 0
    switch_off_active_set(monkeypatch)
    alone = _engine_of(p.x, p.y, reg_lambda=lam).solve(lam)
    assert alone.certified and alone.iterations > 0
    np.testing.assert_allclose(fast.coef, alone.coef, rtol=0, atol=1e-9)


def test_corrections_at_a_tiny_penalty_on_correlated_factors(monkeypatch):
    """The default's scale (1e-7 here) on factors that share one common driver: the cold
    start lands with no iteration (one-sided corrections left 49 iterations), at the
    minimiser the iterations alone reach."""
    p = make_factor_panel(1422, 19, 41, seed=1000)
    x = p.x.add(0.9 * p.x.iloc[:, [0]].to_numpy(), axis=0)
    fast = _engine_of(x, p.y, reg_lambda=1e-7).solve(1e-7)
    assert fast.certified and fast.iterations == 0
    switch_off_active_set(monkeypatch)
    alone = _engine_of(x, p.y, reg_lambda=1e-7).solve(1e-7)
    assert alone.certified
    np.testing.assert_allclose(fast.coef, alone.coef, rtol=0, atol=1e-8)


def test_corrections_settle_on_five_factor_etfs():
    """skfolio's 20 stocks on its 5 factor ETFs (correlations 0.78-0.93), the default penalty:
    corrections that drop and add at once wander there (28-32 iterations followed); once a
    try finishes no row they only drop, and the cold start lands with no iteration."""
    datasets = pytest.importorskip("skfolio.datasets")
    from skfolio.preprocessing import prices_to_returns

    X, F = prices_to_returns(datasets.load_sp500_dataset(), datasets.load_factors_dataset())
    model = LassoModel().fit(F, X)
    assert model.n_iter_ == 0 and model.solver_ == "fast"
    xc, yc = F.to_numpy() - F.to_numpy().mean(axis=0), X.to_numpy() - X.to_numpy().mean(axis=0)
    ref = Lasso(alpha=model.reg_lambda / 2.0, fit_intercept=False, tol=1e-14,
                max_iter=1_000_000).fit(xc, yc)
    np.testing.assert_allclose(model.coef_.to_numpy(), ref.coef_, rtol=0, atol=1e-8)


def test_guess_with_a_box_keeps_the_cells_the_free_solve_keeps(monkeypatch):
    """Nonneg loadings: the guess drops the cells whose sign the free solve flips, as without
    a box, and the first try then finishes most responses (the plain descents finished 6 of
    56)."""
    p = make_factor_panel(300, 8, 60, seed=0)
    kw = {"factors_beta_loading_signs": pd.DataFrame(1.0, index=p.y.columns,
                                                     columns=p.x.columns)}
    lam = 0.05 * LassoModel(warmup_period=None, **kw).lambda_max(p.x, p.y)
    engine = _engine_of(p.x, p.y, reg_lambda=lam, **kw)
    idx = np.arange(engine.n)
    up, down = engine._descents(engine.prior, lam, idx)[:2]
    guess = engine._support_guess(engine.prior, lam, idx)
    assert (guess != 0).sum() < (up | down).sum()
    assert ((guess == 0) | (guess == np.where(up, 1.0, -1.0))).all()  # a subset, same signs
    tries = _record_tries(monkeypatch)
    fast = engine.solve(lam)
    assert fast.certified and fast.iterations == 0
    _, rows, accepted = tries[0]
    assert accepted.sum() > rows.sum() // 2
    assert (fast.coef >= 0.0).all()


@pytest.mark.parametrize(("seed", "fraction"), [(3, 0.3), (4, 0.6)])
def test_guess_never_empties_a_response_the_descents_would_move(seed, fraction):
    """Where the free solve flips every guessed cell of a response, the response keeps its
    plain guess (an empty support is never tried: it would go to the iterations)."""
    p = make_factor_panel(60, 6, 20, seed=seed)
    lam = fraction * LassoModel(warmup_period=None).lambda_max(p.x, p.y)
    engine = _engine_of(p.x, p.y, reg_lambda=lam)
    idx = np.arange(engine.n)
    up, down, grad = engine._descents(engine.prior, lam, idx)[:3]
    plain = np.where(up, 1.0, np.where(down, -1.0, 0.0))
    guess = engine._support_guess(engine.prior, lam, idx)
    # the free solve's own verdict, written out: it flips every cell of some response here
    pull = -np.sign(grad)
    every = np.linalg.solve(engine.gram[0], (engine.xty - 0.5 * engine.t_rows * lam * pull).T).T
    emptied = ~np.where(np.sign(every) == pull, plain, 0.0).any(axis=1) & plain.any(axis=1)
    assert emptied.any()
    np.testing.assert_array_equal(guess[emptied], plain[emptied])
    np.testing.assert_array_equal(guess.any(axis=1), plain.any(axis=1))
    assert engine.solve(lam).certified


@pytest.mark.parametrize("nonneg", [False, True])
def test_warm_start_tries_the_cells_its_start_violates(monkeypatch, nonneg):
    """A warm start (here a larger lambda's answer) tries Newton on its own support plus the
    cells whose conditions fail at the start, with the sign of their descent: a try without
    them would be refused for them. It lands with no iteration, on the cold answer."""
    p = make_factor_panel(400, 12, 30, seed=3)
    kw = {"nonneg": True} if nonneg else {}
    lam_max = LassoModel(warmup_period=None, **kw).lambda_max(p.x, p.y)
    engine = _engine_of(p.x, p.y, reg_lambda=lam_max, **kw)
    start = engine.solve(0.2 * lam_max).coef
    lam = 0.1 * lam_max
    up, down = engine._descents(start, lam)[:2]
    violated = (start == 0.0) & (up | down)
    assert violated.any()
    tries = _record_tries(monkeypatch)
    warm = engine.solve(lam, coef_init=start)
    first = tries[0][0]
    np.testing.assert_array_equal(first[violated], np.where(up, 1.0, -1.0)[violated])
    np.testing.assert_array_equal(first[start != 0], np.sign(start)[start != 0])
    assert warm.certified and warm.iterations == 0
    monkeypatch.undo()
    cold = _engine_of(p.x, p.y, reg_lambda=lam, **kw).solve(lam)
    np.testing.assert_allclose(warm.coef, cold.coef, rtol=0, atol=1e-10)


@pytest.mark.parametrize("nonneg", [False, True])
def test_more_factors_than_rows_add_only_within_room(monkeypatch, nonneg):
    """With more factors than rows (a singular Gram) a warm start adds a response's violated
    cells only while its support stays within 90% of the rows (beyond, the support overfills
    and its system is refused), and the corrections stay one-sided (no cell added in the step
    that drops one). Unconstrained at a small penalty every support is near the rows' count
    (bare supports); non-negative ones are smaller (cells added; at 2e-2 of lambda_max, above
    the exact path's threshold, which non-negative ones now take too). Certified either way."""
    p = make_factor_panel(60, 100, 20, seed=1)
    kw = {"nonneg": True} if nonneg else {}
    lam_max = LassoModel(warmup_period=None, **kw).lambda_max(p.x, p.y)
    engine = _engine_of(p.x, p.y, reg_lambda=lam_max, **kw)
    assert engine.m > engine.t_rows
    start = engine.solve((3e-2 if nonneg else 1e-3) * lam_max).coef
    lam = (2e-2 if nonneg else 3e-4) * lam_max
    up, down = engine._descents(start, lam)[:2]
    violated = (start == 0.0) & (up | down)
    room = (start != 0).sum(axis=1) + violated.sum(axis=1) <= 0.9 * engine.t_rows
    assert violated.any() and room.all() == nonneg and (room.any() or not nonneg)
    corrections = []
    corrected = _newton_finish._NewtonFinish._corrected

    def sided(self, x, cand, support, rows, kept, both=True):
        corrections.append(both)
        return corrected(self, x, cand, support, rows, kept, both)

    tries = _record_tries(monkeypatch)
    monkeypatch.setattr(_newton_finish._NewtonFinish, "_corrected", sided)
    warm = engine.solve(lam, coef_init=start)
    expected = np.where(violated & room[:, None], np.where(up, 1.0, -1.0), np.sign(start))
    np.testing.assert_array_equal(tries[0][0], expected)
    assert not any(corrections)
    assert warm.certified


def test_padded_and_sized_newton_systems_agree(monkeypatch):
    """The padded M x M systems (small problems) and the support-sized ones give the same
    candidate, fixed cells kept."""
    x, y = make_ragged_panel(seed=2)
    engine = _engine_of(x, y, reg_lambda=0.05, span=26)
    lam = 0.05
    rng = np.random.default_rng(0)
    support = rng.choice([-1.0, 0.0, 1.0], size=engine.prior.shape)
    support[0] = 0.0  # a response with nothing free
    rows = np.ones(engine.n, dtype=bool)
    x0 = engine.prior + 0.01
    monkeypatch.setattr(_engine, "_PADDED_MAX", 10**9)
    padded = engine._newton_cell(x0, lam, support, rows)
    monkeypatch.setattr(_engine, "_PADDED_MAX", 0)
    sized = engine._newton_cell(x0, lam, support, rows)
    np.testing.assert_allclose(padded, sized, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(padded[support == 0], x0[support == 0])


def test_cholesky_solve_is_scipys_own():
    """The support guess's free solve (LAPACK's potrf and potrs called directly) gives SciPy's
    ``cho_solve(cho_factor(a, lower=True), b)`` bit for bit, and None wherever those raise
    (not positive definite, non-finite input)."""
    from scipy.linalg import cho_factor, cho_solve

    rng = np.random.default_rng(7)
    for m, n in ((10, 50), (1, 3), (30, 200)):
        z = rng.standard_normal((4 * m, m))
        a, rhs = z.T @ z, rng.standard_normal((n, m))
        out = _engine._cho_solve_lower(a, rhs.T)
        assert out.tobytes() == cho_solve(cho_factor(a, lower=True), rhs.T).tobytes()
    indefinite = np.array([[1.0, 2.0], [2.0, 1.0]])
    assert _engine._cho_solve_lower(indefinite, np.ones((2, 1))) is None
    assert _engine._cho_solve_lower(np.eye(2), np.array([[np.nan], [1.0]])) is None
    assert _engine._cho_solve_lower(np.diag([1.0, np.inf]), np.ones((2, 1))) is None


def test_padded_newton_systems_are_the_written_out_ones():
    """The padded systems: the Gram on the free cells, the identity on the others' diagonal
    (their value kept), solved together; the candidate equals that solve written out."""
    p = make_factor_panel(200, 6, 12, seed=5)
    lam = 0.1 * LassoModel(warmup_period=None).lambda_max(p.x, p.y)
    engine = _engine_of(p.x, p.y, reg_lambda=lam)
    rng = np.random.default_rng(1)
    support = rng.choice([-1.0, 0.0, 1.0], size=engine.prior.shape)
    rows = np.ones(engine.n, dtype=bool)
    x0 = engine.prior + 0.01
    cand = engine._newton_cell(x0, lam, support, rows)
    g = engine.gram[0]
    for i in range(engine.n):
        free = support[i] != 0
        a = np.where(np.outer(free, free), g, 0.0) + np.diag((~free).astype(float))
        rhs = (engine.xty[i] - np.where(free, 0.0, x0[i]) @ g
               - 0.5 * engine.t_rows * lam * support[i])
        expected = np.linalg.solve(a[None], np.where(free, rhs, x0[i])[None, :, None])[0, :, 0]
        np.testing.assert_allclose(cand[i], expected, rtol=1e-12, atol=1e-14)
        np.testing.assert_array_equal(cand[i][~free], x0[i][~free])


def test_without_a_box_inside_is_finite():
    """No box (lo = -inf, hi = inf): the support and the cells a candidate keeps, taken as
    "finite", are those of the box comparisons written out, NaN and infinite cells included."""
    p = make_factor_panel(200, 6, 12, seed=5)
    lam = 0.1 * LassoModel(warmup_period=None).lambda_max(p.x, p.y)
    engine = _engine_of(p.x, p.y, reg_lambda=lam)
    assert engine._unboxed
    rng = np.random.default_rng(3)
    x = engine.prior + rng.standard_normal(engine.prior.shape)
    x[0, 0], x[1, 1], x[2, 2], x[3, :] = np.nan, np.inf, -np.inf, 0.0
    finish = _newton_finish._NewtonFinish(engine, engine._newton_cell, lam)
    inside = (x > engine.lo) & (x < engine.hi)
    np.testing.assert_array_equal(finish.support(x), np.sign(x - engine.prior) * inside)
    support = np.sign(rng.standard_normal(x.shape)) * (rng.random(x.shape) < 0.6)
    expected = ((np.sign(x - engine.prior) == support) | (support == 0)) & \
        (x >= engine.lo) & (x <= engine.hi) & np.isfinite(x)
    for rows in (np.ones(engine.n, dtype=bool), np.arange(engine.n) % 3 == 0):
        _, kept = _newton_finish.newton_accepted(engine, x, support, rows, lam)
        np.testing.assert_array_equal(kept[rows], expected[rows])
        assert kept[~rows].all()


def test_any_and_all_helpers_are_numpys():
    """The bookkeeping's ``_any`` / ``_all`` agree with ``ndarray.any`` / ``all`` on boolean
    arrays, empty ones included."""
    rng = np.random.default_rng(0)
    for shape in ((0,), (1,), (7,), (5, 4), (0, 3)):
        for share in (0.0, 0.2, 1.0):
            flags = rng.random(shape) < share
            assert _newton_finish._any(flags) == bool(flags.any())
            assert _newton_finish._all(flags) == bool(flags.all())
