"""The factor path of MaximumDiversification: the dense path's active-set solver on a factor
covariance ``B Sigma_f B' + D``, by Woodbury (``_dense.LowRankCovariance``), no n x n matrix.

Every answer is compared with one computed another way: the CVXPY cone program on the same
factor pieces (the factor path switched off), and the dense path on the assembled n x n
matrix (Cholesky factors instead of Woodbury). Ratios to 1e-6 relative (Clarabel stops within
its tolerance; the two exact paths to 1e-10), weights to 1e-5 against CVXPY, 1e-8 between the
exact paths.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pandas as pd
import pytest

from tests.test_maxdiv_dense import factor_returns, ratio
from xl_factorlasso.core.covariance import FactorCovariance
from xl_factorlasso.core.optimization import MaximumDiversification, _dense

FAMILIES = {
    "long-only": {},
    "caps": {"max_weights": 0.05},
    "turnover": {"max_weights": 0.2, "previous_weights": 0.02, "max_turnover": 0.03},
    "fees, rf, budget 2": {"management_fees": 2e-4, "risk_free_rate": 1e-4, "budget": 2.0},
    "long-short": {"min_weights": -0.05, "max_weights": 0.1},
    "costs": {"transaction_costs": 5e-4, "previous_weights": 0.02, "max_weights": 0.2},
}


def factor_covariance(n: int, T: int, seed: int, k: int = 5) -> tuple[pd.DataFrame,
                                                                       FactorCovariance]:
    X, factors = factor_returns(n, T, seed, k)
    return X, FactorCovariance.from_ols(X, factors)


def _extra(params: dict, n: int) -> dict:
    """``ratio``'s net-of-fees-and-costs arguments for ``params``."""
    return {"rf": params.get("risk_free_rate", 0.0), "fees": params.get("management_fees", 0.0),
            "costs": params.get("transaction_costs", 0.0),
            "previous": np.full(n, params.get("previous_weights", 0.0))}


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("n, seed", [(50, 0), (200, 1)])
def test_factor_path_equals_cvxpy(old_path, family, n, seed):
    X, fc = factor_covariance(n, 400, seed)
    params = {"covariance": fc, **FAMILIES[family]}
    ours = MaximumDiversification(**params).fit(X)
    reference = old_path(X, **params)
    assert ours.solve_.path == "factor" and ours.solve_.relative_gap <= _dense.GAP_TOLERANCE
    assert reference.solve_.path == "cvxpy"
    cov = fc.covariance.to_numpy()
    w, w_ref = ours.weights_.to_numpy(), reference.weights_.to_numpy()
    extra = _extra(FAMILIES[family], n)
    value, value_ref = ratio(w, cov, **extra), ratio(w_ref, cov, **extra)
    assert value == pytest.approx(value_ref, rel=1e-6)
    assert value >= value_ref * (1 - _dense.GAP_TOLERANCE)  # certified: never below CVXPY
    np.testing.assert_allclose(w, w_ref, atol=1e-5, rtol=0)
    assert ours.problem_values_["ratio"] == pytest.approx(reference.problem_values_["ratio"],
                                                          rel=1e-6)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_factor_path_equals_dense_path_on_the_matrix(family):
    """Woodbury on the factors and Cholesky factors of the assembled matrix: two exact
    solvers of the same problem."""
    X, fc = factor_covariance(120, 300, 7)
    ours = MaximumDiversification(covariance=fc, **FAMILIES[family]).fit(X)
    dense = MaximumDiversification(covariance=fc.covariance, **FAMILIES[family]).fit(X)
    assert ours.solve_.path == "factor" and dense.solve_.path == "dense"
    np.testing.assert_allclose(ours.weights_, dense.weights_, atol=1e-8, rtol=0)
    assert ours.problem_values_["ratio"] == pytest.approx(dense.problem_values_["ratio"],
                                                          rel=1e-10)


@pytest.mark.parametrize("family", ["long-only", "caps", "long-short", "costs"])
def test_certificate_reads_the_factors_as_the_matrix(family):
    """``relative_gap`` on the factors (products and Woodbury solves) equals it on the n x n
    matrix (products and a Cholesky) at the optimum and at points away from it: the closed
    form, the fractional knapsack and the Lagrangian dual bound."""
    X, fc = factor_covariance(80, 300, 3)
    model = MaximumDiversification(covariance=fc, **FAMILIES[family]).fit(X)
    spec = model._validate(X, None)[0]
    a, box = _dense._coefficients(spec), _dense._box(spec)
    costs = None if spec.costs is None else _dense._Costs(spec.costs, spec.previous)
    F, d = fc.sqrt_components()
    low_rank = _dense.LowRankCovariance(F, d)
    cov = fc.covariance.to_numpy()
    rng = np.random.default_rng(0)
    w = model.weights_.to_numpy()
    points = [w] + [np.clip(w + rng.normal(0, 2e-3, w.size), box.lower, box.upper)
                    for _ in range(3)]
    gaps = []
    for y in points:
        ours, theirs = (_dense.relative_gap(c, a, y, box, costs) for c in (low_rank, cov))
        assert ours == pytest.approx(theirs, rel=1e-6, abs=1e-12)
        gaps.append(ours)
    assert gaps[0] <= _dense.GAP_TOLERANCE and min(gaps[1:]) > 1e-6


def test_woodbury_solves_match_numpy():
    X, fc = factor_covariance(60, 300, 4)
    F, d = fc.sqrt_components()
    cov = fc.covariance.to_numpy()
    rng = np.random.default_rng(1)
    v = rng.normal(size=60)
    low_rank = _dense.LowRankCovariance(F, d)
    np.testing.assert_allclose(low_rank @ v, cov @ v, rtol=1e-12, atol=0)
    np.testing.assert_allclose(low_rank.inverse_times(v), np.linalg.solve(cov, v), rtol=1e-9)
    free = np.sort(rng.choice(60, 25, replace=False))
    rhs = rng.normal(size=(25, 3))
    np.testing.assert_allclose(low_rank.system(v).solve(free, rhs),
                               np.linalg.solve(cov[np.ix_(free, free)], rhs), rtol=1e-9)


def test_zero_residual_variance_takes_cvxpy(old_path):
    """Woodbury needs every residual variance > 0: an asset the factors span exactly keeps the
    CVXPY program, and ``solve_.note`` says why."""
    X, fc = factor_covariance(40, 300, 5)
    residual = fc.residual_variance.copy()
    residual.iloc[3] = 0.0
    fc = FactorCovariance(fc.loadings, fc.factor_covariance, residual)
    model = MaximumDiversification(covariance=fc).fit(X)
    assert model.solve_.path == "cvxpy" and "residual variance is zero" in model.solve_.note
    np.testing.assert_allclose(model.weights_, old_path(X, covariance=fc).weights_, atol=1e-9)


@pytest.mark.parametrize("params", [{"linear_constraints": ["F0 >= 0.6"], "max_long": 1.0},
                                    {"l1_coef": 1e-3},
                                    {"max_long": 1.2, "min_weights": -0.1}])
def test_other_families_keep_cvxpy(params):
    X, fc = factor_covariance(40, 300, 6)
    model = MaximumDiversification(covariance=fc, **params).fit(X)
    assert model.solve_.path == "cvxpy" and model.solve_.note == ""


def test_warm_start_on_the_factor_path():
    """The next window's covariance from this fit's weights: answered warm, the same weights
    as a cold fit."""
    X, factors = factor_returns(300, 500, 8)
    fc0 = FactorCovariance.from_ols(X.iloc[:400], factors.iloc[:400])
    fc1 = FactorCovariance.from_ols(X.iloc[20:420], factors.iloc[20:420])
    model = MaximumDiversification(covariance=fc0, max_weights=0.05, warm_start=True).fit()
    assert model.solve_.path == "factor" and not model.solve_.warm_start
    model.set_params(covariance=fc1).fit()
    cold = MaximumDiversification(covariance=fc1, max_weights=0.05).fit()
    assert model.solve_.path == "factor" and model.solve_.warm_start
    assert model.solve_.exchanges < cold.solve_.exchanges
    np.testing.assert_allclose(model.weights_, cold.weights_, atol=1e-10)


def test_large_universe_without_an_n_by_n_matrix():
    """At n = 4000 (an n x n matrix: 128 MB) the fit's allocations stay far below one."""
    n, k, T = 4000, 8, 300
    rng = np.random.default_rng(2)
    assets = [f"A{i}" for i in range(n)]
    factors = [f"F{j}" for j in range(k)]
    loadings = pd.DataFrame(rng.normal(0.5, 0.5, (n, k)), index=assets, columns=factors)
    f = rng.normal(0, 0.01, (T, k))
    fc = FactorCovariance(loadings, pd.DataFrame(np.cov(f.T), index=factors, columns=factors),
                          pd.Series(rng.uniform(0.5, 3.0, n) * 1e-4, index=assets))
    tracemalloc.start()
    try:
        model = MaximumDiversification(covariance=fc).fit()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert model.solve_.path == "factor" and model.solve_.relative_gap <= _dense.GAP_TOLERANCE
    assert peak < 0.25 * n * n * 8
    w = model.weights_.to_numpy()
    assert w.sum() == pytest.approx(1.0) and np.all(w >= 0) and np.count_nonzero(w) > 100


def test_an_overshooting_block_exchange_is_taken_back_on_the_factors():
    """test_maxdiv_dense's overshooting case (caps of 0.01 bound for the whole budget after
    the third block exchange) with Woodbury solves: the same certified optimum as the dense
    solver's."""
    X, fc = factor_covariance(300, 500, 8)
    spec = MaximumDiversification(covariance=fc, max_weights=0.01)._validate(None, None)[0]
    a, box = _dense._coefficients(spec), _dense._box(spec)
    F, d = fc.sqrt_components()
    cov = fc.covariance.to_numpy()
    answers = []
    for system in (_dense._FreeSetSolver(cov, a), _dense.LowRankCovariance(F, d).system(a)):
        state = np.full(a.size, _dense.FREE, dtype=np.int8)
        solved = _dense._block_pivoting(a, system, state, box)
        assert solved is not None
        assert _dense.relative_gap(cov, a, solved[0], box) <= _dense.GAP_TOLERANCE
        answers.append(solved[0] / solved[0].sum())
    np.testing.assert_allclose(answers[0], answers[1], atol=1e-12)
