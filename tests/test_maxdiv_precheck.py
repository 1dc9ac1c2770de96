"""The pre-check's closed form for bounds, turnover and a budget (with fees and transaction
costs): the largest net weighted volatility equals the LP's (HiGHS) on the same constraints,
and sets without a portfolio still reach the LP and its conflict message."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xl_factorlasso.core.optimization import InfeasibleProblemError, MaximumDiversification
from xl_factorlasso.core.optimization._diagnosis import _box_budget_top, _linear_system
from xl_factorlasso.core.optimization._feasibility import _Box, box_budget_maximum


def _spec(n, rng, **params):
    cov = np.diag(rng.uniform(0.5, 2.0, n)) * 1e-4
    X = pd.DataFrame(rng.normal(0, 0.01, (3 * n, n)), columns=[f"A{i}" for i in range(n)])
    model = MaximumDiversification(covariance=pd.DataFrame(cov, X.columns, X.columns), **params)
    return model._validate(X, None)[0]


def _families(n, rng):
    previous = rng.dirichlet(np.ones(n))
    return [
        {},
        {"max_weights": 3.0 / n},
        {"min_weights": -0.1, "max_weights": 0.3},
        {"min_weights": {"A0": 0.05, "A1": 0.02}, "max_weights": None},
        {"max_turnover": 0.02, "previous_weights": previous},
        {"transaction_costs": rng.uniform(0, 0.02, n), "previous_weights": previous,
         "max_weights": 0.4},
        {"transaction_costs": 0.01, "previous_weights": previous, "min_weights": -0.2,
         "max_weights": 0.25, "management_fees": rng.uniform(0, 0.005, n), "budget": 1.5},
        {"transaction_costs": 0.003, "previous_weights": 2.0 * previous - 0.05,
         "max_turnover": 0.05},  # previous weights outside the box: one piece per asset
    ]


@pytest.mark.parametrize("seed", range(6))
def test_closed_form_equals_the_lp(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 60))
    for params in _families(n, rng):
        spec = _spec(n, rng, **params)
        top = _box_budget_top(spec)
        status, lp = _linear_system(spec).maximum()
        assert status == "optimal" and top is not None, params
        assert top == pytest.approx(lp, rel=1e-9, abs=1e-12), params


def test_other_families_are_left_to_the_lp():
    rng = np.random.default_rng(0)
    for params in ({"linear_constraints": ["A0 <= 0.1"]}, {"max_long": 1.2, "min_weights": -0.1},
                   {"budget": None, "min_budget": 0.9, "max_budget": 1.0},
                   {"min_weights": None}):
        assert _box_budget_top(_spec(10, rng, **params)) is None, params


def test_empty_sets_keep_the_lp_conflict_message():
    """No portfolio: the closed form says None and the fit names the conflict as before."""
    assert box_budget_maximum(np.ones(3), _Box(np.full(3, 0.5), np.ones(3), 1.0)) is None
    assert box_budget_maximum(np.ones(3), _Box(np.zeros(3), np.full(3, 0.2), 1.0)) is None
    rng = np.random.default_rng(1)
    X = pd.DataFrame(rng.normal(0, 0.01, (60, 5)), columns=list("ABCDE"))
    with pytest.raises(InfeasibleProblemError, match=r"max_weights, budget=1.*sum\(max_weights\)"):
        MaximumDiversification(max_weights=0.1).fit(X)
    with pytest.raises(InfeasibleProblemError, match="risk_free_rate"):
        MaximumDiversification(risk_free_rate=1.0).fit(X)


def test_a_hand_computed_case():
    # a = (3, 2, 1), costs 0.5 around previous (0.2, 0.5, 0.3), box [0, 0.6], budget 1:
    # pieces from w = 0: A up to 0.2 at 3.5, then to 0.6 at 2.5; B to 0.5 at 2.5, then 1.5;
    # C to 0.3 at 1.5. Value at 0: -0.5 * 1.0 = -0.5; fill 1.0: 0.2 * 3.5 + 0.8 * 2.5 = 2.7.
    top = box_budget_maximum(np.array([3.0, 2.0, 1.0]), _Box(np.zeros(3), np.full(3, 0.6), 1.0),
                             np.full(3, 0.5), np.array([0.2, 0.5, 0.3]))
    assert top == pytest.approx(-0.5 + 2.7, abs=1e-15)
