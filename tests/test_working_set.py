"""Many factors: the LASSO solved on working sets of factor columns (``_working_set.py``).

The working set runs where the engine is not spectral (more than ``_SPECTRAL_MAX`` factors).
Here ``_SPECTRAL_MAX`` is lowered so that it runs on panels of 40-140 factors, and ``_START``
so that it takes several rounds (one test keeps both as shipped, at 650 factors); the
reference is the same problem solved by the engine as it was before (spectral, every column,
no working set), and once by CVXPY. Most tests also check that the working set did what it
claims: rounds on fewer columns than the problem has.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from xl_factorlasso import LassoModel
from xl_factorlasso.core.linear_model import FastEngine, _engine, _working_set


def _panel(t_rows=240, m=120, n=4, active=6, seed=0, ragged=False):
    """Factors with a common component, each response loading on ``active`` of them."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((t_rows, m)) + 0.4 * rng.standard_normal((t_rows, 1))
    coef = np.zeros((n, m))
    for i in range(n):
        coef[i, rng.choice(m, active, replace=False)] = rng.uniform(0.5, 1.5, active) * \
            rng.choice([-1.0, 1.0], active)
    y = x @ coef.T + rng.standard_normal((t_rows, n))
    if ragged:
        y[:30, 1] = np.nan
        y[100:120, 2] = np.nan
    idx = pd.date_range("2010-01-01", periods=t_rows, freq="W-FRI")
    return (pd.DataFrame(x, index=idx, columns=[f"f{j}" for j in range(m)]),
            pd.DataFrame(y, index=idx, columns=[f"y{i}" for i in range(n)]))


def _working_sets(monkeypatch) -> list[int]:
    """Lower the spectral limit and the first set; the list records every round's columns."""
    monkeypatch.setattr(_engine, "_SPECTRAL_MAX", 20)
    monkeypatch.setattr(_working_set, "_START", 4)
    sizes: list[int] = []
    build = _working_set._columns_engine

    def recording(engine, cols):
        sizes.append(len(cols))
        return build(engine, cols)

    monkeypatch.setattr(_working_set, "_columns_engine", recording)
    return sizes


def _lambda_max(kw, x, y) -> float:
    return LassoModel(**kw)._setup(x, y).lambda_max


def _reference(kw, x, y):
    return LassoModel(**kw).fit(x, y)  # before the patches: spectral, every column


def _same(fit, ref, atol=1e-9):
    assert fit.duality_gap_ <= 1e-8
    np.testing.assert_allclose(fit.coef_.to_numpy(), ref.coef_.to_numpy(), rtol=0, atol=atol)
    assert ((fit.coef_.to_numpy() == 0) == (ref.coef_.to_numpy() == 0)).all()  # exact zeros
    np.testing.assert_allclose(fit.objective_value_, ref.objective_value_, rtol=1e-12)


@pytest.mark.parametrize("case", ["plain", "ragged", "span", "nonneg", "signs_prior"])
def test_working_set_finds_the_whole_minimiser(case, monkeypatch):
    x, y = _panel(ragged=case == "ragged")
    kw = dict(model_type="LASSO", warmup_period=None)
    if case == "span":
        kw["span"] = 104
    if case == "nonneg":
        kw["nonneg"] = True
    if case == "signs_prior":
        # a prior on three columns (they stay in every working set) and signs on others
        signs = pd.DataFrame(np.nan, index=y.columns, columns=x.columns)
        prior = pd.DataFrame(0.0, index=y.columns, columns=x.columns)
        prior.iloc[:, [3, 50, 90]] = 0.3
        signs.iloc[:, [3, 50, 90]] = 1.0
        signs.iloc[:, 10:40] = -1.0
        signs.iloc[:, 60:70] = 0.0
        kw.update(factors_beta_loading_signs=signs, factors_beta_prior=prior)
    kw["reg_lambda"] = 0.3 * _lambda_max(kw, x, y)  # a sparse answer: 5-10 of 120 per row
    ref = _reference(kw, x, y)
    seen = _working_sets(monkeypatch)
    fit = LassoModel(**kw).fit(x, y)
    _same(fit, ref)
    assert len(seen) >= 3 and max(seen) < x.shape[1] / 2, seen  # rounds on a part of the columns
    assert seen == sorted(seen)  # the set only grows
    if case == "signs_prior":
        assert (fit.coef_.iloc[:, 60:70] == 0).all().all()
        assert (fit.coef_.iloc[:, 10:40] <= 0).all().all()


def test_a_dense_answer_leaves_the_working_set_for_the_whole_problem(monkeypatch):
    """At a small lambda most columns are active: after the first round the columns that
    break the conditions would fill more than ``_SHARE`` of them, so the working set hands the
    whole problem to the engine, from the start it was given."""
    x, y = _panel()
    kw = dict(model_type="LASSO", warmup_period=None)
    kw["reg_lambda"] = 0.01 * _lambda_max(kw, x, y)
    ref = _reference(kw, x, y)
    assert (ref.coef_.to_numpy() != 0).sum(axis=1).min() > 0.5 * x.shape[1]
    seen = _working_sets(monkeypatch)
    fit = LassoModel(**kw).fit(x, y)
    _same(fit, ref, atol=1e-8)
    assert len(seen) == 1  # one round, then the whole problem


def test_working_set_agrees_with_cvxpy(monkeypatch):
    """An independent reference: the CVXPY program (Clarabel at tight tolerances)."""
    from tests.test_engine import TIGHT

    x, y = _panel(t_rows=160, m=80, n=3, seed=3)
    kw = dict(model_type="LASSO", warmup_period=None)
    kw["reg_lambda"] = 0.2 * _lambda_max(kw, x, y)
    ref = LassoModel(engine="cvxpy", solver_params=TIGHT, **kw).fit(x, y)
    seen = _working_sets(monkeypatch)
    fit = LassoModel(**kw).fit(x, y)
    assert len(seen) >= 2 and max(seen) < x.shape[1] / 2
    assert fit.objective_value_ <= ref.objective_value_ * (1 + 1e-12)
    np.testing.assert_allclose(fit.coef_.to_numpy(), ref.coef_.to_numpy(), atol=1e-6)


def test_weights_bounds_and_pinned_cells_on_the_engine(monkeypatch):
    """Adaptive L1 weights, expert floors and caps, and pinned cells, restricted with the
    columns: the engine's answer equals the spectral engine's on every column."""
    x, y = _panel(seed=5)
    kw = dict(model_type="LASSO", warmup_period=None)
    lam = 0.25 * _lambda_max(kw, x, y)
    setup = LassoModel(reg_lambda=lam, **kw)._setup(x, y)
    rng = np.random.default_rng(7)
    n, m = setup.spec.prior.shape
    lower = np.where(rng.random((n, m)) < 0.1, -0.2, np.nan)
    upper = np.where(rng.random((n, m)) < 0.1, 0.3, np.nan)
    pinned = rng.random((n, m)) < 0.05
    spec = replace(setup.spec, cell_weight=rng.uniform(0.5, 2.0, (n, m)), lower_bound=lower,
                   upper_bound=upper, pinned=pinned)
    best = FastEngine(setup.stats, spec).solve(lam)
    seen = _working_sets(monkeypatch)
    engine = FastEngine(setup.stats, spec)
    assert not engine.spectral
    fast = engine.solve(lam)
    assert best.certified and fast.certified and len(seen) >= 2
    np.testing.assert_allclose(fast.coef, best.coef, rtol=0, atol=1e-9)
    assert ((fast.coef == 0) == (best.coef == 0)).all()
    lo, hi = spec.lower_upper()
    assert ((fast.coef >= lo) & (fast.coef <= hi)).all()


def test_warm_starts_of_a_path_keep_their_support_in_the_set(monkeypatch):
    """fit_reg_lambda_path warm-starts each lambda at the previous answer: the working set
    starts from that answer's columns; every model equals a fresh reference fit."""
    x, y = _panel(seed=2)
    kw = dict(model_type="LASSO", warmup_period=None)
    top = _lambda_max(kw, x, y)
    lambdas = [0.5 * top, 0.35 * top, 0.25 * top]
    refs = [_reference(dict(kw, reg_lambda=lam), x, y) for lam in lambdas]
    seen = _working_sets(monkeypatch)
    path = LassoModel(reg_lambda=lambdas[0], **kw).fit_reg_lambda_path(x, y, lambdas)
    for fit, ref in zip(path, refs, strict=True):
        _same(fit, ref)
    assert seen and max(seen) < x.shape[1] / 2


def test_many_factors_without_patches():
    """At 650 factors (beyond the spectral limit as shipped) a sparse LASSO is solved on working
    sets; the reference is the spectral engine on every column."""
    x, y = _panel(t_rows=400, m=650, n=2, active=8, seed=11)
    kw = dict(model_type="LASSO", warmup_period=None)
    kw["reg_lambda"] = 0.3 * _lambda_max(kw, x, y)
    setup = LassoModel(**kw)._setup(x, y)
    engine = FastEngine(setup.stats, setup.spec)
    assert not engine.spectral
    seen: list[int] = []
    build = _working_set._columns_engine
    try:
        _working_set._columns_engine = lambda e, cols: seen.append(len(cols)) or build(e, cols)
        fast = engine.solve(kw["reg_lambda"])
    finally:
        _working_set._columns_engine = build
    # more factors than rows: the 650 x 650 Gram was never formed (products through X)
    assert setup.stats.deferred and "gram" not in vars(engine)
    best = FastEngine(setup.stats, setup.spec, spectral=True).solve(kw["reg_lambda"])
    assert fast.certified and best.certified
    assert seen and max(seen) <= 2 * _working_set._START  # a few hundred columns at most
    np.testing.assert_allclose(fast.coef, best.coef, rtol=0, atol=1e-9)


@pytest.mark.parametrize("seed", range(12))
def test_random_problems_equal_the_spectral_engine(seed, monkeypatch):
    """Random sizes, lambdas, signs, priors on a few columns, floors and caps, adaptive weights,
    ragged masks and spans: the engine on working sets (or handing over to the whole problem)
    gives the spectral engine's minimiser on every cell."""
    rng = np.random.default_rng(100 + seed)
    t_rows, m, n = int(rng.integers(80, 300)), int(rng.integers(40, 140)), int(rng.integers(1, 6))
    x, y = _panel(t_rows, m, n, active=int(rng.integers(2, 10)), seed=seed,
                  ragged=bool(seed % 3 == 0) and t_rows > 130 and n >= 3)
    kw = dict(model_type="LASSO", warmup_period=None, span=[None, 52][seed % 2])
    if seed % 4 == 1:
        signs = pd.DataFrame(rng.choice([np.nan, 1.0, -1.0, 0.0], size=(n, m),
                                        p=[0.6, 0.2, 0.15, 0.05]),
                             index=y.columns, columns=x.columns)
        prior = pd.DataFrame(0.0, index=y.columns, columns=x.columns)
        cols = rng.choice(m, 3, replace=False)
        signs.iloc[:, cols] = 1.0
        prior.iloc[:, cols] = rng.uniform(0.1, 0.5, (n, 3))
        kw.update(factors_beta_loading_signs=signs, factors_beta_prior=prior)
    elif seed % 4 == 2:
        kw["nonneg"] = True
    lam = float(rng.uniform(0.05, 0.6)) * _lambda_max(kw, x, y)
    setup = LassoModel(reg_lambda=lam, **kw)._setup(x, y)
    spec = setup.spec
    if seed % 4 == 3:
        spec = replace(spec, cell_weight=rng.uniform(0.5, 2.0, (n, m)),
                       lower_bound=np.where(rng.random((n, m)) < 0.1, -0.1, np.nan),
                       upper_bound=np.where(rng.random((n, m)) < 0.1, 0.2, np.nan))
    best = FastEngine(setup.stats, spec).solve(lam)
    _working_sets(monkeypatch)
    fast = FastEngine(setup.stats, spec).solve(lam)
    assert best.certified and fast.certified
    np.testing.assert_allclose(fast.coef, best.coef, rtol=0, atol=1e-8)
    lo, hi = spec.lower_upper()
    assert ((fast.coef >= lo) & (fast.coef <= hi)).all()
