"""Cooperative blocks on wide panels at small penalties: Newton's step on the iterates' face,
and a quick SolveError where the gap's rounding makes any certificate impossible.

A random search found ``LassoModelCV`` with the cooperative penalties on tiny panels (more
factors than training rows) spending 40-140 s: every grid value below ~1e-5 ran the engine's
20,000 iterations, uncertified, then again from the prior (engine "fast"), or 2,000 iterations,
two CLARABEL solves and a 20,000-iteration polish (engine "auto") before its SolveError.
:mod:`xl_factorlasso.core.linear_model._coop_newton` alternates rounds of iterations with
Newton's step on the face of their iterate (the cooperative objective is smooth there), and
stops at once where the duality gap's rounding floor exceeds what ``tol`` allows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xl_factorlasso import LassoModel, LassoModelCV, LassoModelType, make_factor_panel
from xl_factorlasso.core.exceptions import SolveError
from xl_factorlasso.core.linear_model._coop_newton import (
    _FIRST_ROUND,
    _NEWTON_STEPS,
    _face_system,
    _newton_step,
    _objective,
    face_newton,
)
from xl_factorlasso.core.linear_model._engine import FastEngine
from xl_factorlasso.core.linear_model._penalty import PenaltySpec
from xl_factorlasso.core.linear_model._preparation import SufficientStats, prepare_panel

pytestmark = [
    pytest.mark.filterwarnings("ignore:solver CLARABEL returned an inaccurate solution"),
    pytest.mark.filterwarnings("ignore:Solution may be inaccurate"),
]


def _wide_panel():
    """The random search's seed 344: 15 weekly rows, 21 factors, 3 responses, one group."""
    panel = make_factor_panel(15, 21, 3, seed=410204, freq="W-FRI", start="2015-01-02")
    kw = dict(model_type=LassoModelType.COOPERATIVE_GROUP_LASSO,
              group_data=pd.Series("g0", index=panel.y.columns), l1_weight=0.0,
              factors_beta_prior=panel.prior, demean=False, warmup_period=None)
    return panel.x, panel.y, kw


@pytest.mark.parametrize("reg_lambda", [1e-5, 1e-6])
def test_wide_cooperative_fit_at_a_small_penalty_is_certified_by_the_fast_engine(reg_lambda):
    # 6 rows, 21 factors, from the prior: the iterations alone took 16,880 iterations at 1e-5
    # and ended uncertified after 20,000 at 1e-6 (SolveError); a continuation from
    # lambda_max / 2 with Newton's step certifies both in under 3,000
    x, y, kw = _wide_panel()
    x, y = x.iloc[:6], y.iloc[:6]
    fast = LassoModel(**kw, engine="fast", reg_lambda=reg_lambda).fit(x, y)
    assert fast.solver_ == "fast" and fast.n_iter_ <= 4000
    # the independent certificate, recomputed from the installed loadings
    engine = fast._solver(fast._fit_setup_).engine
    gap = engine.relative_gap(fast.coef_.to_numpy(), reg_lambda)
    assert gap <= 1e-8 and fast.duality_gap_ <= 1e-8
    reference = LassoModel(**kw, engine="cvxpy", reg_lambda=reg_lambda).fit(x, y)
    np.testing.assert_allclose(fast.objective_value_, reference.objective_value_, rtol=1e-8)
    # The certificate's promise: no feasible point, Clarabel's included, lies lower by more
    # than the gap. (Not "never above Clarabel's": at 1e-6, where Clarabel's own gap is 4e-9,
    # one machine's rounding left the certified point 7e-11 above it, within its 3e-10 gap.)
    gap, f_fast = engine.duality_gap(fast.coef_.to_numpy(), reg_lambda)
    _, f_ref = engine.duality_gap(np.clip(reference.coef_.to_numpy(), engine.lo, engine.hi),
                                  reg_lambda)
    assert 0.0 <= gap <= 1e-8 * f_fast and f_fast - f_ref <= gap + 1e-15 * f_fast


def test_wide_cooperative_cv_scores_every_fold_that_has_enough_rows():
    # default grid, 5 folds of 2-10 training rows: 14 grid values of the three folds with
    # 6, 8 and 10 rows failed (40,000 iterations each), the CV took ~100 s
    x, y, kw = _wide_panel()
    cv = LassoModelCV(base_model=LassoModel(**kw, engine="fast"), n_splits=5,
                      refit=False).fit(x, y)
    scores = cv.cv_scores_
    assert scores[["fold_0", "fold_1"]].isna().all().all()  # 2 and 4 rows: too few
    assert np.isfinite(scores[["fold_2", "fold_3", "fold_4"]].to_numpy()).all()
    assert {k for k, _ in cv.fold_errors_} == {0, 1}
    assert all("too few rows" in message for message in cv.fold_errors_.values())


def _badly_scaled_panel():
    """Factors in units 1e4 times too small (Gram entries ~1e9) and a prior, on a few rows:
    at absolute penalties of 1e-1 and below (~1e-10 of ``lambda_max``) the objective lies
    below the rounding of the gap's terms."""
    panel = make_factor_panel(22, 20, 10, seed=1139)
    kw = dict(model_type=LassoModelType.COOPERATIVE_CLUSTER_GROUP_LASSO, l1_weight=0.3,
              span=26.0, loss_normalization="weight_sum", factors_beta_prior=panel.prior,
              warmup_period=None)
    return panel.x * 1e4, panel.y, kw


def test_an_uncertifiable_gap_is_said_after_one_round():
    # engine "fast": no CVXPY solve, no polish; "auto" tries CVXPY from the prior, and its
    # polish stops after one round
    x, y, kw = _badly_scaled_panel()
    for engine, attempts in (("fast", 1), ("auto", None)):
        model = LassoModel(**kw, engine=engine, reg_lambda=0.1)
        with pytest.raises(SolveError, match="cannot be certified") as caught:
            model.fit(x.iloc[:7], y.iloc[:7])
        assert f"after {_FIRST_ROUND} iterations" in str(caught.value)
        if attempts is not None:
            assert len(caught.value.attempts) == attempts
        assert not hasattr(model, "coef_")


def test_uncertifiable_cv_grid_values_are_fold_errors():
    x, y, kw = _badly_scaled_panel()
    cv = LassoModelCV(base_model=LassoModel(**kw), n_splits=2, lambdas=[0.1, 1e-3],
                      refit=False)
    with pytest.raises(ValueError, match="failed on every fold.*cannot be certified"):
        cv.fit(x, y)


# ------------------------------------------------------------------ face_newton's linear algebra
def _coop_engine(seed):
    """8 rows, 12 factors (every Gram singular), 9 responses in clusters of 3, 4, 1 and 1: the
    blocks span several responses, and the lone responses' parts of a face are singular."""
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(rng.normal(size=(8, 12)))
    y = pd.DataFrame(x.to_numpy() @ rng.normal(size=(12, 9)) * 0.3 + rng.normal(size=(8, 9)))
    groups = np.array([0, 0, 0, 1, 1, 1, 1, 2, 3])
    spec = PenaltySpec(geometry="block", groups=groups,
                       group_weight=np.sqrt(np.bincount(groups)), l1_weight=0.2,
                       prior=0.1 * rng.normal(size=(9, 12)), signs=None, nonneg=False,
                       cooperative=True)
    return FastEngine(SufficientStats.from_panel(prepare_panel(x, y)), spec)


def _dense_newton_system(engine, x, lam):
    """The face's gradient, Hessian and minimum-norm Newton step, written plainly: one dense
    k x k Hessian of all free cells, its pseudo-inverse from a full eigendecomposition."""
    prior, t2 = engine.prior, 2.0 / engine.t_rows
    c_half = lam * (1.0 - engine.a) * np.repeat(engine.group_w, 2)
    d = x - prior
    rows, cols = np.nonzero(d)
    vals = d[rows, cols]
    sign = np.sign(vals)
    grad = ((t2 * (engine.gram[0] @ x.T).T - t2 * engine.xty)[rows, cols]
            + lam * engine.a * engine.omega[rows, cols] * sign)
    hess = np.zeros((len(rows), len(rows)))
    for a in range(len(rows)):
        for b in range(len(rows)):
            if rows[a] == rows[b]:
                hess[a, b] = t2 * engine.gram[0][cols[a], cols[b]]
    keys = 2 * engine.gid.reshape(d.shape)[rows, cols] + (sign < 0)
    for key in np.unique(keys):
        idx = np.flatnonzero(keys == key)
        norm = np.linalg.norm(vals[idx])
        u = vals[idx] / norm
        grad[idx] += c_half[key] * u
        hess[np.ix_(idx, idx)] += c_half[key] / norm * (np.eye(len(idx)) - np.outer(u, u))
    evals, evecs = np.linalg.eigh(hess)
    keep = evals > 1e-12 * evals[-1]
    step = -evecs[:, keep] @ ((evecs[:, keep].T @ grad) / evals[keep])
    return rows, cols, vals, keys, grad, hess, step


def _dense_face_newton(engine, x, lam):
    """face_newton written plainly: the dense step above, the whole objective at every trial."""
    value = _objective(engine, x, lam)
    for _ in range(_NEWTON_STEPS):
        rows, cols, vals, _, grad, _, step = _dense_newton_system(engine, x, lam)
        slope = grad @ step
        if not slope < 0.0:
            break
        t = 1.0
        for _ in range(30):
            new_d = vals + t * step
            new_d[np.sign(new_d) != np.sign(vals)] = 0.0
            cand = x.copy()
            cand[rows, cols] = engine.prior[rows, cols] + new_d
            new_value = _objective(engine, cand, lam)
            if new_value <= value + 1e-4 * t * slope:
                break
            t *= 0.5
        else:
            break
        decrease, x, value = value - new_value, cand, new_value
        if decrease <= 1e-15 * abs(value) and t == 1.0:
            break
    return x


@pytest.mark.parametrize("seed", [0, 2])
@pytest.mark.parametrize("lam", [1e-2, 1e-3])
def test_face_newton_step_is_the_dense_pseudo_inverse_step(seed, lam):
    engine = _coop_engine(seed)
    x = engine.solve(lam, max_iter=300).coef  # uncertified: a face of ~80 cells
    rows, cols, vals, keys, grad, hess, step = _dense_newton_system(engine, x, lam)
    c_half = lam * (1.0 - engine.a) * np.repeat(engine.group_w, 2)
    half_grad, parts, _, blocks = _face_system(engine, rows, cols, vals, keys, c_half,
                                               2.0 / engine.t_rows)
    assembled = np.zeros_like(hess)
    for idx, block in zip(parts, blocks, strict=True):
        assembled[np.ix_(idx, idx)] = block
    assert len(parts) > 1 and any(len(np.unique(rows[idx])) > 1 for idx in parts)
    np.testing.assert_allclose(assembled, hess, rtol=0, atol=1e-14 * np.abs(hess).max())
    sign = np.sign(vals)
    fast_grad = ((2.0 / engine.t_rows) * (engine._gram_times(x) - engine.xty)[rows, cols]
                 + lam * engine.a * engine.omega[rows, cols] * sign + half_grad)
    # (near the face's minimum the gradient cancels: its rounding is that of G b and X'y)
    scale = 2.0 / engine.t_rows * np.abs(engine.xty).max()
    np.testing.assert_allclose(fast_grad, grad, rtol=0, atol=1e-14 * scale)
    got = _newton_step(parts, blocks, grad)
    # either step is as accurate as eps times the condition number of the kept spectrum (2e6
    # at seed 0, 1e-3): no closer than that to the other
    evals = np.linalg.eigvalsh(hess)
    cond = evals[-1] / evals[evals > 1e-12 * evals[-1]][0]
    np.testing.assert_allclose(got, step, rtol=0,
                               atol=max(1e-10, 1e-15 * cond) * np.abs(step).max())
    # at 1e-3 a lone response's part is singular: its step came from the eigendecomposition
    smallest = [np.linalg.eigvalsh(block)[0] / evals[-1] for block in blocks]
    assert (min(smallest) < 1e-12) == (lam == 1e-3)


def test_a_positive_definite_block_below_the_whole_hessians_cut_off_is_pseudo_inverted():
    # blocks of eigenvalues (1e3, 1) and (1e-10, 2e-9): the second is positive definite, but
    # 1e-10 lies below 1e-12 of the whole Hessian's largest eigenvalue, so the pseudo-inverse
    # drops it (the Cholesky test's shift refuses the block; the cut-off is the first's 1e3)
    rng = np.random.default_rng(5)
    rotate = [np.linalg.qr(rng.normal(size=(2, 2)))[0] for _ in range(2)]
    blocks = [q @ np.diag(e) @ q.T for q, e in zip(rotate, ([1e3, 1.0], [1e-10, 2e-9]),
                                                    strict=True)]
    parts = [np.array([0, 2]), np.array([1, 3])]
    grad = rng.normal(size=4)
    # the pseudo-inverse from the blocks' own eigenvectors (an eigendecomposition of the
    # whole would resolve 1e-10 only to ~1e-13 absolute)
    want = np.empty(4)
    want[parts[0]] = -rotate[0] @ ((rotate[0].T @ grad[parts[0]]) / [1e3, 1.0])
    want[parts[1]] = -rotate[1][:, 1] * (rotate[1][:, 1] @ grad[parts[1]]) / 2e-9
    np.testing.assert_allclose(_newton_step(parts, blocks, grad), want, rtol=1e-6)


@pytest.mark.parametrize("seed", [0, 2])
@pytest.mark.parametrize("lam", [1e-2, 1e-3])
def test_face_newton_reaches_the_dense_references_point(seed, lam):
    engine = _coop_engine(seed)
    x = engine.solve(lam, max_iter=300).coef
    want, got = _dense_face_newton(engine, x, lam), face_newton(engine, x, lam)
    # every Gram is singular, so are the faces: along their near-null directions the two
    # minimum-norm steps part by rounding (3e-14 of the largest |B - B0| under NumPy 2.4's
    # OpenBLAS, up to 2.6e-8 under 2.0's started at two threads), not in what they minimise:
    # the same face (every cell's side of the prior), objectives equal to 1.5e-13 or better
    np.testing.assert_array_equal(np.sign(got - engine.prior), np.sign(want - engine.prior))
    np.testing.assert_allclose(_objective(engine, got, lam), _objective(engine, want, lam),
                               rtol=1e-12)


def test_a_warm_start_takes_newtons_step_on_its_own_face_first():
    """Along a path (as a CV grid), the previous minimiser's face usually holds at the next
    penalty: Newton's step on it is then the answer, with no iteration. Before, every
    warm-started value ran a round of 200 iterations whose iterate had left that face, and
    a second of 400 (600 each on this wide panel of 25 rows and 29 factors). The answers are
    the cold fits' (each certified on its own)."""
    panel = make_factor_panel(25, 29, 12, seed=7, freq="W-FRI", start="2015-01-02")
    kw = dict(model_type=LassoModelType.COOPERATIVE_CLUSTER_GROUP_LASSO, l1_weight=0.3)
    lam_max = LassoModel(**kw).lambda_max(panel.x, panel.y)
    grid = lam_max * np.geomspace(1e-2, 1e-5, 12)
    models = LassoModel(**kw).fit_reg_lambda_path(panel.x, panel.y, grid)
    iterations = [m.n_iter_ for m in models]
    assert all(m.solver_ == "fast" and m.duality_gap_ <= 1e-8 for m in models)
    # no iteration at the last five values but one at most (40 iterations at the eighth with
    # OpenBLAS's Haswell kernels; none with this machine's AVX-512 ones)
    assert sum(i == 0 for i in iterations[7:]) >= 4, iterations
    assert max(iterations[1:]) <= _FIRST_ROUND, iterations
    cold = LassoModel(**kw, reg_lambda=grid[11]).fit(panel.x, panel.y)
    warm_objective = cold.objective(models[11].coef_)
    assert abs(warm_objective - cold.objective_value_) <= 3e-8 * cold.objective_value_
