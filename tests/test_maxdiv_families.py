"""Core optimiser: factor families in linear_constraints; failures are also cvxpy SolverErrors."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pandas as pd
import pytest

from xl_factorlasso.core.covariance import FactorCovariance
from xl_factorlasso.core.optimization import (
    InfeasibleProblemError,
    MaximumDiversification,
    OptimizationError,
)

FACTORS = ["mom", "qual", "val", "lowvol"]


@pytest.fixture(scope="module")
def panel():
    rng = np.random.default_rng(7)
    T, n = 600, 12
    F = pd.DataFrame(rng.normal(0, 0.01, (T, 4)), columns=FACTORS)
    B = rng.normal(0.6, 0.5, (4, n))
    X = pd.DataFrame(F.to_numpy() @ B + rng.normal(0, 0.01, (T, n)),
                     columns=[f"A{i}" for i in range(n)])
    return X, FactorCovariance.from_ols(X, F)


def _with(fc: FactorCovariance, families) -> FactorCovariance:
    return FactorCovariance(fc.loadings, fc.factor_covariance, fc.residual_variance,
                            factor_families=families)


def test_default_has_no_families(panel):
    _, fc = panel
    assert fc.factor_families is None
    with pytest.raises(ValueError, match="style"):  # unknown name, as before
        MaximumDiversification(covariance=fc, linear_constraints=["style <= 1"]).fit()


def test_family_is_the_sum_of_its_factors(panel):
    X, fc = panel
    families = ["style", None, "style", "defensive"]
    by_family = MaximumDiversification(
        covariance=_with(fc, families), min_weights=-0.3,
        linear_constraints=["style <= 0.4", "defensive >= 0.5"]).fit(X)
    by_factor = MaximumDiversification(
        covariance=fc, min_weights=-0.3,
        linear_constraints=["mom + val <= 0.4", "lowvol >= 0.5"]).fit(X)
    np.testing.assert_allclose(by_family.weights_, by_factor.weights_, atol=1e-9)
    exposure = by_family.weights_ @ fc.loadings
    assert exposure["mom"] + exposure["val"] <= 0.4 + 1e-9
    assert exposure["lowvol"] >= 0.5 - 1e-9
    # at least one binds, so the family constraint did something
    free = MaximumDiversification(covariance=fc, min_weights=-0.3).fit(X).weights_ @ fc.loadings
    assert free["mom"] + free["val"] > 0.4 + 1e-3 or free["lowvol"] < 0.5 - 1e-3
    # the same families as a Series by factor name (a factor left out has no family)
    series = pd.Series({"lowvol": "defensive", "val": "style", "mom": "style"})
    again = MaximumDiversification(
        covariance=_with(fc, series), min_weights=-0.3,
        linear_constraints=["style <= 0.4", "defensive >= 0.5"]).fit(X)
    np.testing.assert_array_equal(again.weights_, by_family.weights_)


@pytest.mark.parametrize(("families", "groups", "message"), [
    (["mom", "x", "x", "y"], None, "'mom' is both a factor name and a factor family"),
    (["A0", "x", "x", "y"], None, "'A0' is both an asset name and a factor family"),
    (["Tech", "x", "x", "y"], [["Tech"] * 6 + ["Other"] * 6],
     "'Tech' is both a group label and a factor family"),
])
def test_family_clash_is_an_error(panel, families, groups, message):
    X, fc = panel
    with pytest.raises(ValueError, match=message + "; labels must be unique"):
        MaximumDiversification(covariance=_with(fc, families), groups=groups,
                               linear_constraints=["x <= 1"]).fit(X)


def test_families_must_match_the_factors(panel):
    X, fc = panel
    with pytest.raises(ValueError, match=r"FactorCovariance.factor_families must have one label "
                                         r"per factor \(4\), got 3"):
        MaximumDiversification(covariance=_with(fc, ["a", "b", "c"])).fit(X)
    with pytest.raises(ValueError, match=r"FactorCovariance.factor_families refers to unknown "
                                         r"factors \['size'\]"):
        MaximumDiversification(covariance=_with(fc, pd.Series({"size": "s"}))).fit(X)


def test_optimization_errors_are_cvxpy_solver_errors(panel):
    X, fc = panel
    assert issubclass(OptimizationError, cp.error.SolverError)
    assert issubclass(OptimizationError, RuntimeError)  # still, for existing handlers
    with pytest.raises(cp.SolverError) as caught:
        MaximumDiversification(covariance=fc, min_weights=0.1).fit(X)
    assert isinstance(caught.value, InfeasibleProblemError)
    assert str(caught.value).startswith("Infeasible: no portfolio satisfies these constraints "
                                        "together: min_weights, budget=1")
