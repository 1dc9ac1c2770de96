"""More factors than rows at a small penalty (``_homotopy.py``): the LASSO's exact path in
lambda, and the continuation for sparse-group rows.

The references are independent of them: the engine without them at penalties where its
iterations still finish, CVXPY at the default penalty (where the iterations did not: 20,000 of
them, then CVXPY), and the optimality conditions checked on the Gram directly.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from xl_factorlasso import LassoModel, make_factor_panel
from xl_factorlasso.core.linear_model import FastEngine, _engine, _homotopy


def _setup(x, y, **kw):
    return LassoModel(warmup_period=None, **kw)._setup(x, y)


def _without_path(monkeypatch):
    monkeypatch.setattr(_homotopy, "_RATIO", 0.0)


def _kkt_violation(engine, coef, lam) -> float:
    """Largest breach of the optimality conditions at ``coef``, over the threshold: the
    cells' slopes up and down (``FastEngine._descents``) must be >= 0 where the box allows the
    move, and the free cells' gradients must equal the penalty's (both slopes 0)."""
    _, _, _, thr, _, up, down = engine._descents(coef, lam)
    can_up, can_down = coef < engine.hi, coef > engine.lo
    worst = np.maximum(np.where(can_up, -up, 0.0), np.where(can_down, -down, 0.0))
    return float((worst / thr).max())


def test_default_penalty_with_more_factors_than_rows_is_fast_and_equals_cvxpy():
    """60 monthly rows, 100 factors, 20 assets at the default reg_lambda (1e-5, about 1e-6 of
    lambda_max): the fast engine certifies the path's point without iterating, and the answer
    equals CVXPY's."""
    from tests.test_engine import TIGHT

    panel = make_factor_panel(60, 100, 20, seed=0)
    fit = LassoModel(warmup_period=None).fit(panel.x, panel.y)
    assert fit.solver_ == "fast" and fit.duality_gap_ <= 1e-8
    setup = _setup(panel.x, panel.y)
    engine = FastEngine(setup.stats, setup.spec)
    lam = fit.reg_lambda
    assert lam < 1e-5 * setup.lambda_max and not engine._invertible.any()
    assert _homotopy.homotopy_rows(engine, lam).all()
    result = engine.solve(lam)
    assert result.certified and result.iterations == 0
    coef = result.coef
    # at most rank(G) = 59 loadings per response
    assert ((coef != 0).sum(axis=1) <= 59).all() and (coef != 0).sum() > 1000
    ref = LassoModel(warmup_period=None, engine="cvxpy", solver_params=TIGHT).fit(
        panel.x, panel.y.iloc[:, :5])
    ours = LassoModel(warmup_period=None).fit(panel.x, panel.y.iloc[:, :5])
    assert ours.objective_value_ <= ref.objective_value_ * (1 + 1e-10)
    np.testing.assert_allclose(ours.coef_.to_numpy(), ref.coef_.to_numpy(), atol=1e-5)


@pytest.mark.parametrize("case", ["plain", "signs_prior", "bounds_weights_pinned", "ragged",
                                  "span"])
def test_path_equals_the_engine_without_it(case, monkeypatch):
    """At 3e-3 of lambda_max (below the path's threshold, where the iterations still finish)
    the path's answer equals the engine's own on every cell: signs, a prior, floors and caps,
    adaptive weights, pinned cells, a ragged panel, a span."""
    panel = make_factor_panel(50, 80, 4, seed=3)
    x, y = panel.x, panel.y.copy()
    kw = {}
    if case == "signs_prior":
        signs = panel.signs.astype(float).copy()
        prior = panel.prior.copy()
        kw.update(factors_beta_loading_signs=signs, factors_beta_prior=prior)
    if case == "ragged":
        y.iloc[:6, 1] = np.nan
        y.iloc[20:25, 3] = np.nan
    if case == "span":
        kw["span"] = 26
    setup = _setup(x, y, **kw)
    spec = setup.spec
    if case == "bounds_weights_pinned":
        rng = np.random.default_rng(4)
        n, m = spec.prior.shape
        spec = replace(spec, cell_weight=rng.uniform(0.5, 2.0, (n, m)),
                       lower_bound=np.where(rng.random((n, m)) < 0.2, -0.05, np.nan),
                       upper_bound=np.where(rng.random((n, m)) < 0.2, 0.05, np.nan),
                       pinned=rng.random((n, m)) < 0.05)
    lam = 3e-3 * setup.lambda_max
    engine = FastEngine(setup.stats, spec)
    rows = _homotopy.homotopy_rows(engine, lam)
    assert rows.all()
    start, done = _homotopy.homotopy_start(engine, engine.prior.copy(), lam, rows)
    assert done.all() and _kkt_violation(engine, start, lam) <= 1e-7
    fast = engine.solve(lam)
    _without_path(monkeypatch)
    plain = FastEngine(setup.stats, spec).solve(lam)
    assert fast.certified and plain.certified
    np.testing.assert_allclose(fast.coef, plain.coef, rtol=0, atol=1e-8)
    np.testing.assert_allclose(start, plain.coef, rtol=0, atol=1e-8)
    assert ((fast.coef == 0) == (plain.coef == 0)).all()
    lo, hi = spec.lower_upper()
    assert ((fast.coef >= lo) & (fast.coef <= hi)).all()
    if case == "bounds_weights_pinned":
        assert ((fast.coef == hi) & (hi > 0)).any() or ((fast.coef == lo) & (lo < 0)).any()


@pytest.mark.parametrize("seed", range(8))
def test_the_path_point_meets_the_optimality_conditions(seed):
    """Random singular problems at random small penalties: the path's point, before the engine
    touches it, meets every optimality condition to 1e-7 of the threshold (checked on the
    Gram), and stays in the box."""
    rng = np.random.default_rng(seed)
    t_rows, n = int(rng.integers(20, 60)), int(rng.integers(1, 4))
    m = t_rows + int(rng.integers(5, 60))
    panel = make_factor_panel(t_rows, m, n, seed=seed)
    kw = {}
    if seed % 3 == 1:  # signs on some cells only (every cell signed: no path, see below)
        signs = panel.signs.astype(float).where(rng.random(panel.signs.shape) < 0.5)
        kw.update(factors_beta_loading_signs=signs)
    if seed % 3 == 2:
        kw.update(factors_beta_loading_signs=panel.signs.astype(float),
                  factors_beta_prior=panel.prior)
    setup = _setup(panel.x, panel.y, **kw)
    lam = 10.0 ** rng.uniform(-7, -3) * setup.lambda_max
    engine = FastEngine(setup.stats, setup.spec)
    rows = _homotopy.homotopy_rows(engine, lam)
    assert rows.all()
    start, done = _homotopy.homotopy_start(engine, engine.prior.copy(), lam, rows)
    assert done.all()
    assert ((start >= engine.lo) & (start <= engine.hi)).all()
    assert _kkt_violation(engine, start, lam) <= 1e-7
    result = engine.solve(lam)
    assert result.certified
    np.testing.assert_allclose(result.coef, start, rtol=0, atol=1e-9)


def _conditions_hold(gram, r0, omega, dl, du, mu, d, tol=1e-12):
    """The optimality conditions of the module docstring at ``d`` (``q = r0 - G d``)."""
    q = r0 - gram @ d
    free = (d != 0) & (d > dl) & (d < du)
    at_zero = d == 0
    return (np.all(np.abs(q[free] - mu * omega[free] * np.sign(d[free])) <= tol)
            and np.all(q[at_zero & (du > 0)] <= mu * omega[at_zero & (du > 0)] + tol)
            and np.all(q[at_zero & (dl < 0)] >= -mu * omega[at_zero & (dl < 0)] - tol)
            and np.all(q[(d == du) & (d > 0)] >= mu * omega[(d == du) & (d > 0)] - tol)
            and np.all(q[(d == dl) & (d < 0)] <= -mu * omega[(d == dl) & (d < 0)] + tol))


def test_a_path_whose_free_set_empties_goes_on():
    """The only free cell reaches its bound, leaving no free cell: the path goes on from there
    (it indexed its right-hand side with an empty float array, an IndexError raised through
    a rolling backtest by random search). One factor: ``min 0.5 D^2 - D + mu |D|`` with
    ``D <= 0.5`` at ``mu = 0.1`` is the bound (the free minimiser 0.9 is beyond it)."""
    one = (np.array([[1.0]]), np.array([1.0]), np.array([1.0]), np.array([-np.inf]),
           np.array([0.5]))
    np.testing.assert_array_equal(_homotopy._path(*one, 0.1), [0.5])
    # a second cell enters after the first is held at its bound
    gram = np.array([[1.0, 0.3], [0.3, 1.0]])
    r0, omega = np.array([1.0, 0.6]), np.ones(2)
    dl, du = np.array([-np.inf, -np.inf]), np.array([0.5, np.inf])
    d = _homotopy._path(gram, r0, omega, dl, du, 0.05)
    assert d[0] == 0.5 and d[1] > 0
    assert _conditions_hold(gram, r0, omega, dl, du, 0.05, d)


def test_every_cell_signed_tries_the_iterations_first():
    """nonneg on a wide panel at the default penalty: the one-sided box keeps the answer sparse
    and the iterations converge from the prior in tens of steps, so the probe certifies every
    response and none takes the path; the answer equals CVXPY's."""
    from tests.test_engine import TIGHT

    panel = make_factor_panel(60, 100, 6, seed=12)
    setup = _setup(panel.x, panel.y, nonneg=True)
    lam = 1e-5
    engine = FastEngine(setup.stats, setup.spec)
    assert lam < 1e-5 * setup.lambda_max and not engine._invertible.any()
    rows = _homotopy.homotopy_rows(engine, lam)
    assert rows.all()
    _, certified, _, spent = _homotopy.probe_signed(engine, engine.prior.copy(), lam, 1e-8, rows)
    assert certified.all() and spent < _homotopy._PROBE
    result = engine.solve(lam)
    assert result.certified and result.iterations < _homotopy._PROBE
    ref = LassoModel(warmup_period=None, nonneg=True, engine="cvxpy", solver_params=TIGHT).fit(
        panel.x, panel.y)
    np.testing.assert_allclose(result.coef, ref.coef_.to_numpy(), atol=1e-6)


def _fold():
    """The fourth training window of ``LassoModelCV``'s default splits of a (60, 100, 20)
    panel: 40 rows, where a nonneg fit at a tiny penalty holds 39 loadings per response."""
    panel = make_factor_panel(60, 100, 20, seed=0)
    return panel.x.iloc[:40], panel.y.iloc[:40]


@pytest.mark.parametrize("lam", [1e-6, 1e-4])
def test_every_cell_signed_takes_the_path_where_the_iterations_crawl(lam):
    """The same at penalties where the nonneg answer fills the rank (39 loadings per response
    on 40 rows): the probe's iterations do not finish (before the probe, the engine spent
    20,000 iterations, then CVXPY, and failed at 1e-6), the path does. The answer meets the
    optimality conditions on the Gram, and scikit-learn's ``LassoLars(positive=True)``, the
    exact path of another code, gives the same loadings."""
    from sklearn.linear_model import LassoLars

    x, y = _fold()
    setup = _setup(x, y, nonneg=True)
    engine = FastEngine(setup.stats, setup.spec)
    rows = _homotopy.homotopy_rows(engine, lam)
    _, certified, _, spent = _homotopy.probe_signed(engine, engine.prior.copy(), lam, 1e-8, rows)
    assert rows.all() and not certified.any() and spent == _homotopy._PROBE
    fit = LassoModel(warmup_period=None, nonneg=True, reg_lambda=lam).fit(x, y)
    assert fit.solver_ == "fast" and fit.n_iter_ == _homotopy._PROBE
    coef = fit.coef_.to_numpy()
    assert ((coef != 0).sum(axis=1) == 39).all()
    assert _kkt_violation(engine, coef, lam) <= 1e-6
    xc = x.to_numpy() - x.to_numpy().mean(axis=0)
    yc = y.to_numpy() - y.to_numpy().mean(axis=0)
    for i in range(0, 20, 5):
        lars = LassoLars(alpha=lam / 2, fit_intercept=False, positive=True, max_iter=2000)
        np.testing.assert_allclose(coef[i], lars.fit(xc, yc[:, i]).coef_, rtol=0, atol=1e-6)


def test_duplicate_factors_give_up_and_the_engine_still_certifies():
    """Two identical factor columns tie all along the path: the entering column is in the free
    ones' span, the path gives up for the responses that meet it, and the engine solves them as
    before (certified, perhaps by CVXPY)."""
    panel = make_factor_panel(30, 40, 3, seed=5)
    x = panel.x.copy()
    x["dup"] = x.iloc[:, 0]
    same = "x: factors 'f0' and 'dup' are proportional on the rows of the fit"
    with pytest.warns(UserWarning, match=same):
        setup = _setup(x, panel.y)
    lam = 1e-4 * setup.lambda_max
    engine = FastEngine(setup.stats, setup.spec)
    rows = _homotopy.homotopy_rows(engine, lam)
    _, done = _homotopy.homotopy_start(engine, engine.prior.copy(), lam, rows)
    with pytest.warns(UserWarning, match=same):
        fit = LassoModel(warmup_period=None, reg_lambda=lam).fit(x, panel.y)
    assert fit.duality_gap_ <= 1e-8
    assert rows.all() and not done.all()  # the tie is met


def test_rows_above_the_threshold_take_the_usual_path(monkeypatch):
    """One response scaled down 100 times has a lambda_max 100 times smaller: at a penalty
    below the threshold for the others but not for it, only the others take the path, and the
    two parts' certificate is the whole's."""
    panel = make_factor_panel(40, 70, 3, seed=6)
    y = panel.y.copy()
    y.iloc[:, 0] *= 1e-2
    setup = _setup(panel.x, y)
    engine = FastEngine(setup.stats, setup.spec)
    top = (2.0 / engine.t_rows) * _homotopy._mu_max(engine)
    lam = 1e-3 * top[1:].max()
    rows = _homotopy.homotopy_rows(engine, lam)
    assert not rows[0] and rows[1:].all()
    fast = engine.solve(lam)
    _without_path(monkeypatch)
    plain = FastEngine(setup.stats, setup.spec).solve(lam)
    assert fast.certified and plain.certified
    np.testing.assert_allclose(fast.coef, plain.coef, rtol=0, atol=1e-7)
    gaps, objs = engine.unit_gaps(fast.coef, lam)
    assert abs(fast.gap - gaps.sum() / objs.sum()) <= 1e-12


def test_many_factors_beyond_the_spectral_limit():
    """700 factors, 150 rows (no eigendecomposition): the path runs on the rows' rank and the
    answer is certified without CVXPY."""
    panel = make_factor_panel(150, 700, 2, seed=7)
    fit = LassoModel(warmup_period=None).fit(panel.x, panel.y)
    assert fit.solver_ == "fast" and fit.duality_gap_ <= 1e-8
    assert ((fit.coef_.to_numpy() != 0).sum(axis=1) <= 149).all()


def test_full_rank_panels_never_take_the_path():
    """With fewer factors than rows the Gram is invertible: the iterations and Newton's method
    solve even a tiny penalty, and the path is not used."""
    panel = make_factor_panel(120, 20, 5, seed=8)
    setup = _setup(panel.x, panel.y)
    engine = FastEngine(setup.stats, setup.spec)
    assert not _homotopy.homotopy_rows(engine, 1e-8 * setup.lambda_max).any()


def test_rolling_fits_with_more_factors_than_rows():
    """A 40-row window on 60 factors at the default penalty, month-end dates: the warm-started
    rolling fit (each date's support moves, so its Newton try mostly fails and the path is
    taken) equals the cold one, every date certified by the fast engine."""
    from xl_factorlasso import RollingLassoModel

    panel = make_factor_panel(110, 60, 3, seed=9, freq="W-FRI")
    fits = [RollingLassoModel(LassoModel(warmup_period=None), rebalance="ME", window=40,
                              min_history=40, warm_start=warm).fit(panel.x, panel.y)
            for warm in (True, False)]
    info = fits[0].fit_info_
    assert len(info) >= 12 and (info["solver"] == "fast").all()
    assert (info["duality_gap"] <= 1e-8).all()
    for date in fits[0].results_.dates:
        np.testing.assert_allclose(fits[0].results_[date].y_betas.to_numpy(),
                                   fits[1].results_[date].y_betas.to_numpy(), rtol=0,
                                   atol=1e-7)


def test_sparse_group_rows_at_the_default_penalty_are_certified_by_the_engine():
    """HCGL with l1_weight on 60 rows and 100 factors at the default reg_lambda: the direct
    solve does not finish in its probe, the continuation from lambda_max / 2 does, and the
    answer equals CVXPY's (Clarabel, then the engine's polish, as before this start)."""
    panel = make_factor_panel(60, 100, 8, seed=10)
    kw = dict(warmup_period=None, model_type="HIERARCHICAL_CLUSTER_GROUP_LASSO", l1_weight=0.1)
    fit = LassoModel(**kw).fit(panel.x, panel.y)
    assert fit.solver_ == "fast" and fit.duality_gap_ <= 1e-8
    ref = LassoModel(engine="cvxpy", **kw).fit(panel.x, panel.y)
    # (on an AMD EPYC ours lay 1.3e-10 above Clarabel's polished point: both objectives are
    # sums with cancellation, evaluated to about that; the gaps certify 1e-8)
    assert fit.objective_value_ <= ref.objective_value_ * (1 + 1e-9)
    np.testing.assert_allclose(fit.coef_.to_numpy(), ref.coef_.to_numpy(), atol=1e-6)


@pytest.mark.parametrize("case", ["plain", "signs_prior", "group_data"])
def test_continuation_equals_the_direct_solve(case, monkeypatch):
    """At 3e-3 of lambda_max, where the direct solve finishes too: the continuation's answer
    (forced: a one-iteration probe) equals it on every cell."""
    panel = make_factor_panel(50, 80, 6, seed=11)
    kw = dict(model_type="HIERARCHICAL_CLUSTER_GROUP_LASSO", l1_weight=0.2)
    if case == "signs_prior":
        kw.update(factors_beta_loading_signs=panel.signs.astype(float),
                  factors_beta_prior=panel.prior)
    if case == "group_data":
        kw = dict(model_type="GROUP_LASSO", l1_weight=0.3, group_data=pd.Series(
            [f"g{i % 2}" for i in range(6)], index=panel.y.columns))
    setup = _setup(panel.x, panel.y, **kw)
    lam = 3e-3 * setup.lambda_max
    plain = FastEngine(setup.stats, setup.spec)
    monkeypatch.setattr(_homotopy, "_PROBE", 1)
    start, spent = _homotopy.continuation_start(FastEngine(setup.stats, setup.spec), lam, 1e-8,
                                                20_000)
    assert start is not None and spent > 1
    fast = FastEngine(setup.stats, setup.spec).solve(lam)
    monkeypatch.setattr(_engine, "continuation_start", lambda *a, **k: (None, 0))
    direct = plain.solve(lam)
    assert fast.certified and direct.certified
    np.testing.assert_allclose(fast.coef, direct.coef, rtol=0, atol=1e-8)
    assert ((fast.coef == 0) == (direct.coef == 0)).all()
