"""MaximumDiversification re-uses its compiled CVXPY program across repeated fits.

A factor covariance with bounds and a budget only is solved without CVXPY (the ``"factor"``
path, tests/test_maxdiv_factor_path.py); these tests ask for CVXPY with ``save_problem=True``
(``CVXPY``), which keeps the program's reuse, the subject here, on every family."""

from __future__ import annotations

import pickle

import cvxpy as cp
import numpy as np
import pandas as pd
import pytest
import sklearn.base

import xl_factorlasso.core.optimization._base as md
from xl_factorlasso.core._base import clone
from xl_factorlasso.core.covariance import FactorCovariance
from xl_factorlasso.core.optimization import MaximumDiversification

TOL = 1e-6
CVXPY = {"save_problem": True}  # the CVXPY program, whatever the constraint family


def make_data(n: int, T: int = 300, k: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    factors = rng.normal(0.0003, 0.01, (T, k))
    loadings = rng.normal(0.5, 0.5, (n, k))
    noise = rng.normal(0.0, 1.0, (T, n)) * rng.uniform(0.005, 0.03, n)
    X = pd.DataFrame(factors @ loadings.T + noise, columns=[f"A{i}" for i in range(n)])
    F = pd.DataFrame(factors, columns=[f"F{j}" for j in range(k)])
    return X, F


@pytest.fixture(scope="module")
def windows():
    """Rolling windows of one data set, each with its factor covariance."""
    X, F = make_data(30, 330)
    out = []
    for start in (0, 15, 30):
        Xw, Fw = X.iloc[start:start + 300], F.iloc[start:start + 300]
        out.append((Xw, FactorCovariance.from_ols(Xw, Fw)))
    return out


@pytest.fixture
def builds(monkeypatch):
    """Counts parametric builds (compilations of a re-usable program)."""
    calls = []
    original = md._build_parametric

    def spy(spec, values=None):
        calls.append(spec.n)
        return original(spec, values)

    monkeypatch.setattr(md, "_build_parametric", spy)
    return calls


def constant_fit(monkeypatch, params, X):
    """The reference: the program built with constants (no Parameters, no cache)."""
    with monkeypatch.context() as patch:
        patch.setattr(md, "_reusable", lambda spec: False)
        return MaximumDiversification(**params).fit(X)


PARAMS = [
    {},
    {"max_weights": 0.1, "l1_coef": 1e-3, "l2_coef": 1e-2},
    {"min_weights": -0.05, "budget": None, "min_budget": 0.9, "max_budget": 1.1,
     "max_short": 0.2, "max_long": 1.2},
    {"transaction_costs": 0.002, "max_turnover": 0.08, "previous_weights": 1 / 30,
     "risk_free_rate": 1e-4, "management_fees": 1e-4},
    {"linear_constraints": ["A0 + A1 <= 0.05", "A2 >= 0.02"], "min_return": 0.01},
]


@pytest.mark.parametrize("params", PARAMS)
def test_second_fit_reuses_program_and_equals_fresh_fit(monkeypatch, windows, builds, params):
    model = MaximumDiversification(save_problem=True, **params)
    (X0, fc0), (X1, fc1) = windows[0], windows[1]
    model.set_params(covariance=fc0).fit(X0)  # first fit of the structure: constants
    assert not model.problem_.parameters() and builds == []
    model.fit(X0)  # the structure repeats: the parametric program is compiled and kept
    first = model.problem_
    assert first.is_dpp() and first.parameters()
    model.set_params(covariance=fc1).fit(X1)
    assert model.problem_ is first and builds == [30]
    fresh = MaximumDiversification(covariance=fc1, **CVXPY, **params).fit(X1)
    np.testing.assert_allclose(model.weights_, fresh.weights_, atol=TOL)
    reference = constant_fit(monkeypatch, {"covariance": fc1, **CVXPY, **params}, X1)
    np.testing.assert_allclose(model.weights_, reference.weights_, atol=TOL)
    assert model.problem_values_["ratio"] == pytest.approx(reference.problem_values_["ratio"],
                                                           rel=1e-7)
    assert not np.allclose(model.weights_, MaximumDiversification(
        covariance=fc0, **CVXPY, **params).fit(X0).weights_, atol=1e-4)  # the data did change


def test_changed_values_with_same_structure_reuse(windows, builds):
    X, fc = windows[0]
    model = MaximumDiversification(covariance=fc, max_weights=0.2, previous_weights=0.0,
                                   max_turnover=0.15, **CVXPY)
    model.fit(X).fit(X)
    model.set_params(max_weights=0.1, previous_weights=1 / 30, max_turnover=0.1).fit(X)
    assert builds == [30]
    fresh = MaximumDiversification(covariance=fc, max_weights=0.1, previous_weights=1 / 30,
                                   max_turnover=0.1, **CVXPY).fit(X)
    np.testing.assert_allclose(model.weights_, fresh.weights_, atol=TOL)


def test_min_return_array_reuses(windows, builds):
    (X0, fc0), (X1, fc1) = windows[0], windows[1]
    targets = [0.005, 0.01]
    model = MaximumDiversification(covariance=fc0, min_return=targets).fit(X0).fit(X0)
    model.set_params(covariance=fc1).fit(X1)
    assert builds == [30]
    fresh = MaximumDiversification(covariance=fc1, min_return=targets).fit(X1)
    np.testing.assert_allclose(model.weights_, fresh.weights_, atol=TOL)


@pytest.mark.parametrize("change", [
    {"max_weights": None},                                    # a constraint dropped
    {"max_long": 1.0},                                        # a new constraint
    {"min_weights": {"A0": -np.inf}},                         # the bounds' pattern
    {"linear_constraints": ["A0 <= 0.05"]},                   # a new linear constraint
    {"l1_coef": 1e-3},                                        # a new objective term
])
def test_structural_change_rebuilds(windows, builds, change):
    X, fc = windows[0]
    model = MaximumDiversification(covariance=fc, save_problem=True).fit(X).fit(X)
    first = model.problem_
    model.set_params(**change).fit(X)  # a new structure: built with constants first
    assert model.problem_ is not first and builds == [30]
    model.fit(X)
    second = model.problem_
    assert second.parameters() and builds == [30, 30]
    model.fit(X)
    assert model.problem_ is second and len(builds) == 2  # the new structure is kept
    fresh = MaximumDiversification(covariance=fc, **CVXPY, **change).fit(X)
    np.testing.assert_allclose(model.weights_, fresh.weights_, atol=TOL)


def test_factor_exposure_constraint_rebuilds_when_loadings_change(windows, builds):
    # The constraint matrices are part of the signature; a factor name's row is B' (data).
    (X0, fc0), (X1, fc1) = windows[0], windows[1]
    model = MaximumDiversification(covariance=fc0, linear_constraints=["F0 >= 0.2"], **CVXPY)
    model.fit(X0).fit(X0)
    model.set_params(covariance=fc1).fit(X1)  # a new signature: constants again
    assert builds == [30]
    model.fit(X1)
    assert builds == [30, 30]


def test_different_n_or_factor_count_rebuilds(builds):
    model = MaximumDiversification(save_problem=True)
    problems = []
    for n, k in ((20, 3), (25, 3), (25, 4)):
        X, F = make_data(n, k=k, seed=n + k)
        fc = FactorCovariance.from_ols(X, F)
        model.set_params(covariance=fc).fit(X)
        problems.append(model.problem_)
        fresh = MaximumDiversification(covariance=fc, **CVXPY).fit(X)
        np.testing.assert_allclose(model.weights_, fresh.weights_, atol=TOL)
    assert builds == []  # each (n, k) is new to the model, and fresh fits are one-offs
    assert len({id(p) for p in problems}) == 3


def test_clone_and_pickle_drop_the_cache(windows, builds):
    X, fc = windows[0]
    # (not save_problem: the problem_ it keeps does not pickle; max_long keeps CVXPY)
    model = MaximumDiversification(covariance=fc, max_long=1.0)
    model.fit(X).fit(X)
    assert "_compiled" in vars(model) and builds == [30]
    for copy in (sklearn.base.clone(model), clone(model)):
        assert "_compiled" not in vars(copy) and not hasattr(copy, "weights_")
        copy.fit(X)
        np.testing.assert_allclose(copy.weights_, model.weights_, atol=TOL)
    assert builds == [30]  # a copy's first fit is a constant build
    restored = pickle.loads(pickle.dumps(model))
    assert "_compiled" not in vars(restored)
    np.testing.assert_allclose(restored.weights_, model.weights_, atol=0)
    restored.fit(X).fit(X)
    assert len(builds) == 2


def test_paths_that_do_not_reuse(windows, builds):
    X, fc = windows[0]
    # Dense covariance, user callables and tracking error: built with constants every fit.
    dense = MaximumDiversification(save_problem=True).fit(X)
    assert not dense.problem_.parameters() and "_compiled" not in vars(dense)
    custom = MaximumDiversification(covariance=fc, save_problem=True,
                                    add_constraints=lambda y, t: y[0] <= 0.05 * t)
    custom.fit(X)
    first = custom.problem_
    custom.fit(X)
    assert custom.problem_ is not first and custom.weights_.iloc[0] <= 0.05 + TOL
    objective = MaximumDiversification(covariance=fc, add_objective=lambda y: 1e-3 * cp.norm1(y))
    objective.fit(X)
    bench = X.mean(axis=1)
    tracking = MaximumDiversification(covariance=fc, max_tracking_error=0.01).fit(X, bench)
    assert tracking.weights_ is not None
    assert builds == []
