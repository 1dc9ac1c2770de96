"""The dense path of MaximumDiversification (``core/optimization/_dense.py``).

Every comparison is against an answer computed another way: today's CVXPY path (screened or
full, the dense path switched off), skfolio, closed forms (a diagonal covariance), or a direct
``numpy.linalg.solve``. Ratios are compared to 1e-6 relative or better, weights to 1e-5.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xl_factorlasso.core.covariance import FactorCovariance
from xl_factorlasso.core.optimization import (
    InfeasibleProblemError,
    MaximumDiversification,
    _dense,
    _free_set,
)

D_REL = 1e-6  # ratio, relative (Clarabel's answer is within ~3e-8 of the certified one)
W_ABS = 2e-5  # weights, absolute (a flat optimum: CVXPY's weights move more than its ratio)


def make_returns(n, T, seed, dense=False):
    """Five latent factors plus idiosyncratic noise at daily scale. ``dense=True``: loadings
    centred on 0 and similar volatilities, so that the optimum holds most assets (~85%)."""
    rng = np.random.default_rng(seed)
    factors = rng.normal(0.0003, 0.01, (T, 5))
    loadings = rng.normal(0.0, 0.35, (n, 5)) if dense else rng.normal(0.5, 0.5, (n, 5))
    noise = rng.normal(0, 1, (T, n)) * rng.uniform(0.005, 0.03, n)
    return pd.DataFrame(factors @ loadings.T + noise, columns=[f"A{i:04d}" for i in range(n)])


def factor_returns(n, T, seed, k=5):
    """``make_returns`` plus ``k`` observed factors (returned with them) that drive the assets,
    so that a factor model fitted on them explains a good part of each variance."""
    rng = np.random.default_rng(seed + 100)
    factors = pd.DataFrame(rng.normal(0.0003, 0.01, (T, k)), columns=[f"F{j}" for j in range(k)])
    loadings = rng.normal(0.5, 0.5, (n, k))
    return make_returns(n, T, seed) + factors.to_numpy() @ loadings.T, factors


def ratio(w, cov, rf=0.0, fees=0.0, costs=0.0, previous=0.0):
    """The net ratio: volatilities less fees and transaction costs, less ``rf``, over risk."""
    sigma = np.sqrt(np.diag(cov))
    net = sigma @ w - np.sum(fees * w) - np.sum(costs * np.abs(w - previous)) - rf
    return float(net / np.sqrt(w @ cov @ w))


def assert_same(model, reference, cov, **extra):
    assert model.solve_.path == "dense" and model.solve_.relative_gap <= _dense.GAP_TOLERANCE
    assert reference.solve_.path in ("screened", "cvxpy")
    w, w_ref = model.weights_.to_numpy(), reference.weights_.to_numpy()
    value, value_ref = ratio(w, cov, **extra), ratio(w_ref, cov, **extra)
    assert value == pytest.approx(value_ref, rel=D_REL)
    assert value >= value_ref * (1 - _dense.GAP_TOLERANCE)  # certified: never below CVXPY
    np.testing.assert_allclose(w, w_ref, atol=W_ABS, rtol=0)
    for key in ("ratio", "diversification_ratio"):
        assert model.problem_values_[key] == pytest.approx(reference.problem_values_[key],
                                                           rel=D_REL)
    for key in ("expected_return", "risk", "factor"):  # flat optimum: parts move more than D
        assert model.problem_values_[key] == pytest.approx(reference.problem_values_[key],
                                                           rel=1e-4)


# ------------------------------------------------------------ equal to today's CVXPY path


@pytest.mark.parametrize("n, T", [(50, 300), (200, 600)])
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("dense", [False, True], ids=["sparse", "dense"])
def test_dense_path_equals_cvxpy_path(old_path, n, T, seed, dense):
    X = make_returns(n, T, seed, dense)
    model = MaximumDiversification().fit(X)
    assert_same(model, old_path(X), X.cov().to_numpy())
    held = np.count_nonzero(model.weights_.to_numpy())
    assert (held > 0.6 * n) if dense else (held < 0.5 * n)


@pytest.mark.parametrize("dense", [False, True], ids=["sparse", "dense"])
def test_dense_path_equals_cvxpy_path_n1000(old_path, dense):
    X = make_returns(1000, 2000, 7, dense)
    model = MaximumDiversification().fit(X)
    assert_same(model, old_path(X), X.cov().to_numpy())
    held = np.count_nonzero(model.weights_.to_numpy())
    assert (held > 700) if dense else (held < 300)


@pytest.mark.parametrize("params, extra", [
    ({"risk_free_rate": 0.002}, {"rf": 0.002}),
    ({"management_fees": np.linspace(0.0, 0.004, 60)}, {"fees": np.linspace(0.0, 0.004, 60)}),
    ({"max_weights": None}, {}),
    ({"budget": 2.0, "max_weights": 2.0}, {}),
    ({"max_weights": 0.03}, {}),
    ({"min_weights": 0.002, "max_weights": 0.04, "risk_free_rate": 0.001}, {"rf": 0.001}),
    ({"max_turnover": 0.01, "previous_weights": 1 / 60}, {}),
    ({"max_turnover": 0.004, "previous_weights": np.random.default_rng(0).dirichlet(
        np.ones(60))}, {}),
], ids=["risk_free_rate", "fees", "no_upper", "budget2", "max_weights", "box_rf", "turnover",
        "turnover_previous"])
def test_family_members_take_the_dense_path(old_path, params, extra):
    X = make_returns(60, 400, 3)
    model = MaximumDiversification(**params).fit(X)
    reference = old_path(X, **params)
    assert_same(model, reference, X.cov().to_numpy(), **extra)
    w = model.weights_.to_numpy()
    assert w.sum() == pytest.approx(params.get("budget", 1.0), abs=1e-12)
    assert w.min() >= params.get("min_weights", 0.0)
    upper = params.get("max_weights")
    if upper is not None and upper < 1:
        assert w.max() <= upper and np.count_nonzero(w == upper) >= 2  # the caps bind
    if "max_turnover" in params:  # the box around previous_weights binds, exactly
        moved = np.abs(w - params["previous_weights"])
        assert moved.max() <= params["max_turnover"]
        assert np.count_nonzero(moved == params["max_turnover"]) >= 2


@pytest.mark.parametrize("params", [
    {"min_weights": -0.05, "max_weights": 0.1},
    {"min_weights": -0.01},
    {"min_weights": -0.02, "max_weights": None},
    {"min_weights": -0.03, "max_weights": 0.06, "budget": 0.5},
    {"min_weights": -0.05, "max_weights": 0.1, "risk_free_rate": 0.001},
], ids=["long_short", "short_default_cap", "short_no_cap", "short_budget", "short_rf"])
@pytest.mark.parametrize("n, T, dense", [(60, 400, False), (200, 600, True)],
                         ids=["n60", "n200_dense"])
def test_long_short_takes_the_dense_path(old_path, params, n, T, dense):
    """Short positions: the same pivoting, certified by the Lagrangian dual bound; equal to
    today's CVXPY path, with weights on both bounds."""
    X = make_returns(n, T, 3, dense)
    extra = {"rf": params["risk_free_rate"]} if "risk_free_rate" in params else {}
    model = MaximumDiversification(**params).fit(X)
    assert_same(model, old_path(X, **params), X.cov().to_numpy(), **extra)
    w = model.weights_.to_numpy()
    assert w.sum() == pytest.approx(params.get("budget", 1.0), abs=1e-12)
    assert w.min() >= params["min_weights"] and (w < 0).sum() >= 1
    if not dense:  # (the dense optimum holds most assets inside their bounds)
        assert np.count_nonzero(w == params["min_weights"]) >= 1  # a short bound binds


COST_CASES = {
    "equal_previous": {"transaction_costs": 0.001, "previous_weights": 1 / 60},
    "random_previous": {"transaction_costs": 0.0005,
                        "previous_weights": np.random.default_rng(1).dirichlet(np.ones(60))},
    "costs_long_short": {"transaction_costs": 0.001, "previous_weights": 1 / 60,
                         "min_weights": -0.02, "max_weights": 0.1},
    "costs_caps_turnover": {"transaction_costs": np.linspace(0.0, 0.002, 60),
                            "previous_weights": 1 / 60, "max_weights": 0.05,
                            "max_turnover": 0.02},
}


@pytest.mark.parametrize("case", list(COST_CASES))
@pytest.mark.parametrize("dense", [False, True], ids=["sparse", "dense"])
def test_transaction_costs_take_the_dense_path(old_path, case, dense):
    """A kink at every previous weight: the pivoting's third state (held there), certified
    by the dual bound with costs; the net ratio equals today's CVXPY path's and is never
    below it, and some weights stay exactly at their previous values."""
    params = COST_CASES[case]
    X = make_returns(60, 400, 3, dense)
    model = MaximumDiversification(**params).fit(X)
    reference = old_path(X, **params)
    assert model.solve_.path == "dense" and model.solve_.relative_gap <= _dense.GAP_TOLERANCE
    assert reference.solve_.path in ("screened", "cvxpy")
    cov = X.cov().to_numpy()
    costs = np.broadcast_to(params["transaction_costs"], 60)
    previous = np.broadcast_to(params["previous_weights"], 60)
    w, w_ref = model.weights_.to_numpy(), reference.weights_.to_numpy()
    value = ratio(w, cov, costs=costs, previous=previous)
    value_ref = ratio(w_ref, cov, costs=costs, previous=previous)
    assert value == pytest.approx(value_ref, rel=D_REL)
    assert value >= value_ref * (1 - _dense.GAP_TOLERANCE)
    np.testing.assert_allclose(w, w_ref, atol=W_ABS, rtol=0)
    assert model.problem_values_["ratio"] == pytest.approx(reference.problem_values_["ratio"],
                                                           rel=D_REL)
    assert w.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.count_nonzero(w == previous) >= 1  # held at the kink, exactly


def test_dual_bound_with_costs_bounds_the_true_loss():
    """The certificate with costs, on feasible points near and far from the optimum."""
    X = make_returns(40, 300, 5)
    cov = X.cov().to_numpy()
    a = np.sqrt(np.diag(cov))
    box = _dense._Box(np.zeros(40), np.full(40, 0.1), 1.0)
    costs = _dense._Costs(np.full(40, 0.002), np.full(40, 1 / 40))
    y_star, _ = _dense._pivot_costs(cov, a, box, costs)
    assert _dense.relative_gap(cov, a, y_star, box, costs) <= 1e-12
    w_star = y_star / y_star.sum()
    assert np.isclose(w_star, 1 / 40, rtol=0, atol=1e-14).sum() >= 1

    def value(w):
        return ratio(w, cov, costs=costs.rate, previous=costs.previous)

    rng = np.random.default_rng(4)
    for mix in (1e-6, 1e-3, 1e-1, 0.5):
        other = _dense._knapsack(rng.standard_normal(40), box)[1]
        w = (1 - mix) * w_star + mix * other
        loss = value(w_star) / value(w) - 1.0
        assert 0 < loss <= _dense.relative_gap(cov, a, w, box, costs)
    # without the costs in the certificate the same optimum is not the cost-free one's
    assert _dense.relative_gap(cov, a, y_star, box) > 1e-6


def test_costs_reached_in_steps_when_the_pivoting_cycles():
    """On this problem the pivoting from the cost-free optimum cycles (a kink per asset: no
    P-matrix, so the backup rule does not guarantee an end); reaching the costs in steps,
    each from the last state, ends at the certified optimum."""
    X = make_returns(40, 300, 5)
    cov = X.cov().to_numpy()
    a = np.sqrt(np.diag(cov))
    box = _dense._Box(np.zeros(40), np.full(40, 0.1), 1.0)
    costs = _dense._Costs(np.full(40, 0.002), np.full(40, 1 / 40))
    y0 = _dense._pivot_dense(cov, a, box)[0]
    t0 = y0.sum()
    state = np.where(y0 <= 1e-14, _dense.LOW, np.where(y0 >= 0.1 * t0 * (1 - 1e-12), _dense.UP,
                                                       _dense.FREE)).astype(np.int8)
    side = np.where(y0 >= costs.previous * t0, 1.0, -1.0)
    assert _dense._pivoting_with_costs(a, _dense._FreeSetSolver(cov, a), state, side, box,
                                       costs) is None
    y, _ = _dense._pivot_costs(cov, a, box, costs)
    assert _dense.relative_gap(cov, a, y, box, costs) <= 1e-12


def test_dual_bound_is_a_lower_bound_and_tight_at_the_optimum():
    """On random feasible long-short points the certificate bounds the true loss (the
    optimum from the pivoting, checked against CVXPY above); at the optimum it is round-off."""
    X = make_returns(40, 300, 2)
    cov = X.cov().to_numpy()
    a = np.sqrt(np.diag(cov))
    box = _dense._Box(np.full(40, -0.04), np.full(40, 0.08), 1.0)
    y_star, _ = _dense._pivot_dense(cov, a, box)
    w_star = y_star / y_star.sum()
    assert np.isclose(w_star, -0.04).sum() >= 2 and np.isclose(w_star, 0.08).sum() >= 2
    assert _dense.relative_gap(cov, a, y_star, box) <= 1e-12
    d_star = a @ w_star / np.sqrt(w_star @ cov @ w_star)
    rng = np.random.default_rng(3)
    for mix in (1e-6, 1e-3, 1e-1, 0.5):
        other = _dense._knapsack(rng.standard_normal(40), box)[1]
        w = (1 - mix) * w_star + mix * other
        loss = d_star / (a @ w / np.sqrt(w @ cov @ w)) - 1.0
        assert 0 < loss <= _dense.relative_gap(cov, a, w, box)
    # Wider shorts: portfolios of the box with a'w <= 0 leave the linear (Frank-Wolfe) bound
    # without a value; the dual bound still certifies the optimum.
    wide = _dense._Box(np.full(40, -0.3), np.full(40, 0.5), 1.0)
    assert _dense._knapsack(a, wide)[0] < 0
    y_wide, _ = _dense._pivot_dense(cov, a, wide)
    y_wide = y_wide / (a @ y_wide)
    assert _dense._fractional_minimum(a, 2 * cov @ y_wide, wide, 1.0) == -np.inf
    assert _dense.relative_gap(cov, a, y_wide, wide) <= 1e-12


@pytest.mark.parametrize("dense", [False, True], ids=["sparse", "dense"])
def test_binding_caps_at_n200(old_path, dense):
    X = make_returns(200, 600, 12, dense)
    model = MaximumDiversification(max_weights=0.012).fit(X)
    assert_same(model, old_path(X, max_weights=0.012), X.cov().to_numpy())
    assert np.count_nonzero(model.weights_.to_numpy() == 0.012) >= 5


@pytest.mark.parametrize("params", [
    {"linear_constraints": ["A0000 + A0001 >= 0.05"], "max_long": 1.0},
    {"l1_coef": 1e-3},
    {"min_return": 0.01},
    {"budget": None, "max_budget": 1.0},
    {"budget": None, "min_budget": 0.5, "min_weights": 0.001},
    {"max_long": 1.0},
    {"save_problem": True},
], ids=["linear with max_long", "l1", "min_return", "max_budget", "min_budget, floors",
        "max_long", "save_problem"])
def test_other_families_keep_the_old_path(monkeypatch, params):
    X = make_returns(60, 400, 3)
    tried = []
    original = _dense.solve_dense
    monkeypatch.setattr(_dense, "solve_dense", lambda *a: tried.append(1) or original(*a))
    model = MaximumDiversification(**params).fit(X)
    assert tried == [] and model.solve_.path == "cvxpy" and model.solve_.relative_gap is None
    assert model.solve_.note == ""


def test_min_return_arrays_and_factor_penalties_keep_the_old_path():
    X = make_returns(40, 400, 4)
    model = MaximumDiversification(min_return=[0.005, 0.006]).fit(X)
    assert model.solve_.path == "cvxpy"
    # a factor covariance takes the active-set solver (tests/test_maxdiv_factor_path.py)
    # unless the family asks for more than bounds and a budget
    factors = pd.DataFrame(np.random.default_rng(4).normal(0, 0.01, (400, 3)))
    model = MaximumDiversification(covariance=FactorCovariance.from_ols(X, factors),
                                   l2_coef=1e-3).fit(X)
    assert model.solve_.path == "cvxpy"


def test_dense_answer_is_polished_and_exact():
    X = make_returns(200, 600, 5)
    model = MaximumDiversification().fit(X)
    w = model.weights_.to_numpy()
    assert model.solve_.path == "dense" and model.polish_.applied
    assert model.weights_.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.all(w >= 0.0) and np.count_nonzero(w == 0.0) > 100
    assert not hasattr(model, "problem_")


def test_refit_clears_the_report(old_path):
    X = make_returns(60, 400, 3)
    model = MaximumDiversification().fit(X)
    assert model.solve_.path == "dense" and model.solve_.exchanges >= 0
    model.set_params(l1_coef=1e-3).fit(X)
    assert model.solve_.path == "cvxpy"


# ------------------------------------------------------------ singular and degenerate cases


def test_duplicate_assets_share_equally(old_path):
    X = make_returns(50, 300, 0)
    first, second = MaximumDiversification().fit(X).weights_.nlargest(2).index
    X["DUP1"], X["DUP2"] = X[first], X[second]  # Sigma is singular
    model = MaximumDiversification().fit(X)
    reference = old_path(X)
    assert_same(model, reference, X.cov().to_numpy())
    w = model.weights_
    for name, copy in ((first, "DUP1"), (second, "DUP2")):
        assert w[name] > 0.01 and w[name] == pytest.approx(w[copy], abs=1e-5)


def test_zero_variance_asset_is_rejected_on_both_paths(old_path):
    X = make_returns(30, 300, 0)
    X["A0004"] = 0.0
    message = r"X has the same return \(0\) on each of its 300 rows for asset 'A0004'"
    with pytest.raises(ValueError, match=message):
        MaximumDiversification().fit(X)
    with pytest.raises(ValueError, match=message):
        old_path(X)
    with pytest.raises(ValueError, match="non-positive variance 0 for asset 'A0004'"):
        MaximumDiversification(covariance=X.cov()).fit(X)  # a given matrix: its diagonal


def test_subnormal_variances_are_refused_and_small_units_are_not():
    """Maximum diversification does not depend on the returns' unit: 1e-150 of them give the
    same weights. At 1e-160 the variances (~1e-320) are subnormal, their digits lost: refused
    (the weights moved by 0.04, with NumPy's divide warnings only)."""
    X = make_returns(8, 300, 2)
    w = MaximumDiversification().fit(X).weights_
    assert np.abs(MaximumDiversification().fit(X * 1e-150).weights_ - w).max() < 1e-12
    message = (r"has a variance of \S+ for asset 'A000\d', below the smallest normal double "
               r"\(2.23e-308\)")
    with pytest.raises(ValueError, match="the sample covariance " + message):
        MaximumDiversification().fit(X * 1e-160)
    with pytest.raises(ValueError, match="covariance " + message):  # a given matrix too
        MaximumDiversification(covariance=(X * 1e-160).cov()).fit(X)


def test_solver_keeps_a_zero_variance_asset_out():
    # The core solver on a covariance with a zero row (a_j = 0): the asset stays at 0 and the
    # rest is the optimum without it.
    X = make_returns(30, 300, 1)
    cov = X.cov().to_numpy().copy()
    cov[4, :] = cov[:, 4] = 0.0
    a = np.sqrt(np.diag(cov))
    y, _ = _dense._pivot_dense(cov, a)
    keep = np.arange(30) != 4
    y_rest, _ = _dense._pivot_dense(cov[np.ix_(keep, keep)], a[keep])
    assert y[4] == 0.0
    np.testing.assert_allclose(y[keep], y_rest, rtol=0, atol=1e-12 * np.max(y))
    assert _dense.relative_gap(cov, a, y) <= 1e-12


def test_infeasibility_diagnosis_is_unchanged(old_path):
    X = make_returns(30, 300, 0)
    rf = float(X.std().max()) * 1.01
    with pytest.raises(InfeasibleProblemError) as dense:
        MaximumDiversification(risk_free_rate=rf).fit(X)
    with pytest.raises(InfeasibleProblemError) as old:
        old_path(X, risk_free_rate=rf)
    assert str(dense.value) == str(old.value) and dense.value.conflicts == ("risk_free_rate",)


# ------------------------------------------------------------ certificate and fallback


def test_relative_gap_closed_form_on_a_diagonal_covariance():
    # Sigma = diag(s^2), a = s: y* = c / s, D* = sqrt(n); D(y) = s'y / sqrt(sum s^2 y^2).
    s = np.array([0.01, 0.02, 0.015, 0.03, 0.025])
    cov = np.diag(s**2)
    optimum = 1.0 / s
    assert _dense.relative_gap(cov, s, optimum) <= 1e-15
    for mix in (1e-4, 1e-2):
        y = (1 - mix) * optimum / (s @ optimum) + mix * np.ones(5) / s.sum()
        loss = np.sqrt(5) * np.sqrt(np.sum(s**2 * y**2)) / (s @ y) - 1.0
        bound = _dense.relative_gap(cov, s, y)
        assert 0 < loss <= bound <= 10 * mix  # first order in the distance, the loss second
    # Far from the optimum (equal weights) the linear bound is not positive: no certificate.
    assert _dense.relative_gap(cov, s, np.ones(5)) == np.inf
    y, _ = _dense._pivot_dense(cov, s)
    np.testing.assert_allclose(y * s, np.full(5, 0.2), rtol=1e-12)


def test_relative_gap_bounds_the_true_loss_on_random_points():
    X = make_returns(40, 300, 2)
    cov = X.cov().to_numpy()
    a = np.sqrt(np.diag(cov))
    y_star, _ = _dense._pivot_dense(cov, a)
    d_star = 1.0 / np.sqrt(y_star @ cov @ y_star)
    rng = np.random.default_rng(0)
    for scale in (1e-6, 1e-3, 1e-1):
        y = np.clip(y_star + scale * np.max(y_star) * rng.standard_normal(40), 0, None)
        y /= a @ y
        loss = d_star * np.sqrt(y @ cov @ y) - 1.0
        assert loss <= _dense.relative_gap(cov, a, y) + 1e-15


def test_relative_gap_is_infinite_without_a_bound():
    cov = np.eye(3)
    assert _dense.relative_gap(cov, np.array([1.0, 1.0, 0.0]), np.array([-1.0, 0, 0])) == np.inf
    # a_j < 0 with g_j / a_j above lam = min_{a_i > 0} g_i / a_i: z = (1 + t/2, t) is feasible
    # for every t >= 0 and g'z = 2 - 0.8 t, unbounded below.
    cov = np.array([[1.0, -0.9], [-0.9, 1.0]])
    assert _dense.relative_gap(cov, np.array([1.0, -0.5]), np.array([1.0, 0.0])) == np.inf
    # With a = (1, -1) the same point is certified optimal: g'z = 2 + 0.2 t.
    assert _dense.relative_gap(cov, np.array([1.0, -1.0]), np.array([1.0, 0.0])) == 0.0


def test_uncertified_answer_falls_back(monkeypatch, old_path):
    X = make_returns(60, 400, 6)
    monkeypatch.setattr(_dense, "_pivot_dense",
                        lambda cov, a, box=None, rows=None: (np.ones(a.size) / a.sum(), 0))
    model = MaximumDiversification().fit(X)
    assert model.solve_.path == "cvxpy" and "not certified" in model.solve_.note
    reference = old_path(X)
    np.testing.assert_allclose(model.weights_, reference.weights_, atol=1e-12, rtol=0)


def test_solver_failure_falls_back(monkeypatch):
    X = make_returns(300, 900, 6)
    monkeypatch.setattr(_dense, "_pivot_dense", lambda cov, a, box=None, rows=None: None)
    model = MaximumDiversification().fit(X)
    assert model.solve_.path == "screened" and "did not converge" in model.solve_.note
    assert model.problem_values_["diversification_ratio"] > 1.0


def test_knapsack_equals_linprog():
    from scipy.optimize import linprog

    rng = np.random.default_rng(5)
    for upper in (np.full(30, 0.08), np.r_[np.full(15, 0.1), np.full(15, np.inf)]):
        box = _dense._Box(rng.uniform(0, 0.01, 30), upper, 1.0)
        c = rng.standard_normal(30)
        value, w = _dense._knapsack(c, box)
        reference = linprog(c, A_eq=np.ones((1, 30)), b_eq=[1.0],
                            bounds=list(zip(box.lower, np.where(np.isinf(upper), None, upper),
                                            strict=True)))
        assert value == pytest.approx(reference.fun, abs=1e-12)
        assert w.sum() == pytest.approx(1.0, abs=1e-14)
        assert np.all(w >= box.lower) and np.all(w <= upper)
    assert _dense._knapsack(c, _dense._Box(np.zeros(30), np.full(30, 0.03), 1.0)) is None


def test_bounded_relative_gap_bounds_the_true_loss():
    X = make_returns(40, 300, 2)
    cov = X.cov().to_numpy()
    a = np.sqrt(np.diag(cov))
    box = _dense._Box(np.full(40, 0.005), np.full(40, 0.05), 1.0)
    y_star, _ = _dense._pivot_dense(cov, a, box)
    w_star = y_star / y_star.sum()
    assert np.isclose(w_star, 0.05).sum() >= 3 and np.isclose(w_star, 0.005).sum() >= 3
    assert _dense.relative_gap(cov, a, y_star, box) <= 1e-13
    d_star = a @ w_star / np.sqrt(w_star @ cov @ w_star)
    rng = np.random.default_rng(1)
    for mix in (1e-5, 1e-3, 1e-1):  # feasible points: mixtures with another point of P
        other = _dense._knapsack(rng.standard_normal(40), box)[1]
        w = (1 - mix) * w_star + mix * other
        loss = d_star / (a @ w / np.sqrt(w @ cov @ w)) - 1.0
        assert 0 < loss <= _dense.relative_gap(cov, a, w, box)
    # The box is the certificate's: the unbounded bound would call the capped optimum poor.
    assert _dense.relative_gap(cov, a, y_star) > 1e-3


# ------------------------------------------------------------ the solver's parts


def test_schur_updates_equal_direct_solves():
    rng = np.random.default_rng(1)
    n = 120
    root = rng.standard_normal((n, 150))
    cov = root @ root.T / 150
    a = rng.uniform(0.5, 1.5, n)
    solver = _dense._FreeSetSolver(cov, a)
    base = np.arange(0, 100)
    assert solver.solve(base) is not None and solver.factorisations == 1
    for free in (np.r_[np.arange(0, 95), [101, 110]],  # 5 removed, 2 added
                 np.r_[np.arange(3, 100), [119]],
                 np.arange(0, 100)):
        x = solver.solve(free)
        direct = np.linalg.solve(cov[np.ix_(free, free)], a[free])
        np.testing.assert_allclose(x, direct, rtol=1e-10, atol=0)
    assert solver.factorisations == 1  # every nearby set was an update
    x = solver.solve(np.arange(60, 70))  # far away: cheaper to factor again
    assert solver.factorisations == 2
    np.testing.assert_allclose(x, np.linalg.solve(cov[60:70, 60:70], a[60:70]), rtol=1e-10)


def test_backup_rule_and_cold_start_reach_the_same_optimum(monkeypatch):
    X = make_returns(150, 500, 8)
    cov = X.cov().to_numpy()
    a = np.sqrt(np.diag(cov))
    box = _dense._Box(np.zeros(150), np.full(150, np.inf), 1.0)
    y, _ = _dense._pivot_dense(cov, a)

    def cold():
        state = np.full(150, _dense.FREE, dtype=np.int8)
        return _dense._block_pivoting(a, _dense._FreeSetSolver(cov, a), state, box)

    free_start, _ = cold()
    monkeypatch.setattr(_dense, "_BLOCK_TRIES", 0)
    single, exchanges = cold()
    for other in (free_start, single):
        np.testing.assert_allclose(other, y, rtol=0, atol=1e-10 * np.max(y))
    assert exchanges >= 2


def test_conjugate_gradient_solver_and_stage(monkeypatch):
    X = make_returns(600, 1500, 9, dense=True)
    cov = X.cov().to_numpy()
    a = np.sqrt(np.diag(cov))
    root, residual = _dense._low_rank_plus_diagonal(cov, 20)
    solver = _dense._IterativeSolver(cov, a, root, residual)
    free = np.arange(0, 600, 2)
    rhs = np.column_stack([a[free], np.ones(free.size)])
    direct = np.linalg.solve(cov[np.ix_(free, free)], rhs)
    error = np.linalg.norm(solver.solve(free, rhs) - direct, axis=0)
    assert np.all(error <= 1e-4 * np.linalg.norm(direct, axis=0))  # residual 1e-6 x condition
    # The stage only moves the start: the answer is the one without it.
    y, _ = _dense._pivot_dense(cov, a)
    assert np.count_nonzero(y) > _dense._ITERATIVE_FROM
    monkeypatch.setattr(_dense, "_ITERATIVE_FROM", 10**9)
    y_direct, _ = _dense._pivot_dense(cov, a)
    np.testing.assert_allclose(y, y_direct, rtol=0, atol=1e-10 * np.max(y))
    monkeypatch.setattr(_free_set, "_CG_STEPS", 1)  # CG gives up: the exact stage still answers
    monkeypatch.setattr(_dense, "_ITERATIVE_FROM", 400)
    y_failed, _ = _dense._pivot_dense(cov, a)
    np.testing.assert_allclose(y_failed, y_direct, rtol=0, atol=1e-10 * np.max(y))


def test_low_rank_solver_equals_dense_algebra():
    rng = np.random.default_rng(2)
    root, residual = rng.standard_normal((30, 4)), rng.uniform(0.1, 0.3, 30)
    a = rng.uniform(0.5, 1.5, 30)
    cov = root @ root.T + np.diag(residual**2)
    solver = _dense._LowRankSolver(root, residual, a)
    free = np.arange(3, 25)
    np.testing.assert_allclose(solver.solve(free),
                               np.linalg.solve(cov[np.ix_(free, free)], a[free]), rtol=1e-10)
    y = rng.standard_normal(30)
    np.testing.assert_allclose(solver.product(y), cov @ y, rtol=1e-12)


# ------------------------------------------------------------ skfolio


def test_dense_path_matches_skfolio():
    skfolio = pytest.importorskip("skfolio.optimization")
    for dense in (False, True):
        X = make_returns(200, 600, 11, dense)
        cov = X.cov().to_numpy()
        model = MaximumDiversification().fit(X)
        assert model.solve_.path == "dense"
        sk = skfolio.MaximumDiversification().fit(X)
        assert ratio(model.weights_.to_numpy(), cov) == pytest.approx(ratio(sk.weights_, cov),
                                                                      rel=1e-6)
        np.testing.assert_allclose(model.weights_, sk.weights_, atol=1e-3, rtol=0)


def test_an_overshooting_block_exchange_is_taken_back():
    """From every asset free, the third block exchange puts 100 assets on caps of 0.01: the
    whole budget, nothing left for the free ones, a state without a solution. The pivoting
    takes that exchange back and goes on with single exchanges to the certified optimum
    (before, it gave no answer there)."""
    X, factors = factor_returns(300, 500, 8)
    cov = FactorCovariance.from_ols(X, factors).covariance.to_numpy()
    spec = MaximumDiversification(covariance=cov, max_weights=0.01)._validate(None, None)[0]
    a, box = _dense._coefficients(spec), _dense._box(spec)
    state = np.full(a.size, _dense.FREE, dtype=np.int8)
    solved = _dense._block_pivoting(a, _dense._FreeSetSolver(cov, a), state, box)
    assert solved is not None
    assert _dense.relative_gap(cov, a, solved[0], box) <= _dense.GAP_TOLERANCE
    w = solved[0] / solved[0].sum()
    assert np.count_nonzero(np.isclose(w, 0.01, rtol=1e-9)) > 20  # the caps bind


@pytest.mark.parametrize("params", [
    {"min_weights": -0.1, "max_weights": 0.2, "min_budget": 0.6, "max_budget": 1.2},
    {"max_weights": 0.1, "min_budget": 0.8, "max_budget": 1.5,
     "linear_constraints": ["A0000 + A0001 <= 0.05", "A0002 - A0003 == 0"]},
    {"min_weights": -0.2, "min_budget": 0.5, "transaction_costs": 0.002},
], ids=["long-short", "caps and rows", "costs from cash"])
def test_a_budget_range_is_solved_at_min_budget(old_path, params):
    """Where shrinking the weights keeps every constraint and the ratio (0 in the box, rows with
    b >= 0, equalities with b = 0, costs from zero previous weights, no r_f), the optimum of
    the range is that of budget = min_budget: the dense path answers it, certified, with the
    CVXPY program's ratio on the range."""
    X = make_returns(60, 400, 3)
    cov = X.cov().to_numpy()
    model = MaximumDiversification(budget=None, **params).fit(X)
    reference = old_path(X, budget=None, **params)
    assert model.solve_.path == "dense" and model.solve_.relative_gap <= _dense.GAP_TOLERANCE
    assert "solved at min_budget" in model.solve_.note
    w = model.weights_.to_numpy()
    assert w.sum() == pytest.approx(params["min_budget"], abs=1e-12)
    costs = params.get("transaction_costs", 0.0)
    assert ratio(w, cov, costs=costs) >= ratio(reference.weights_.to_numpy(), cov, costs=costs) * (
        1 - _dense.GAP_TOLERANCE)
    assert ratio(w, cov, costs=costs) == pytest.approx(
        ratio(reference.weights_.to_numpy(), cov, costs=costs), rel=D_REL)


@pytest.mark.parametrize("params", [
    {"risk_free_rate": 1e-4}, {"min_weights": 0.001}, {"max_weights": -0.01, "min_weights": -1},
    {"l2_coef": 0.1}, {"linear_constraints": ["A0000 >= 0.01"]},
    {"linear_constraints": ["A0000 == 0.01"]},
    {"previous_weights": 0.01, "transaction_costs": 0.001}, {"min_budget": None},
], ids=["r_f", "floors", "all short", "l2", "row with b < 0", "equality b != 0",
        "costs from holdings", "no min_budget"])
def test_a_budget_range_stays_whole_where_shrinking_changes_it(params):
    X = make_returns(20, 200, 3)
    base = {"budget": None, "min_budget": 0.5, "max_budget": 1.0, "min_weights": -0.5}
    spec, _ = MaximumDiversification(**{**base, **params})._validate(X, None)
    assert _dense.at_min_budget(spec) is None
    reduced = _dense.at_min_budget(MaximumDiversification(**base)._validate(X, None)[0])
    assert (reduced.budget, reduced.min_budget, reduced.max_budget) == (0.5, None, None)


@pytest.mark.parametrize("budget", [0.8, 1.0])
def test_an_equality_row_on_assets_at_zero_is_certified(old_path, budget):
    """``A0002 - A0003 == 0`` with both weights at 0: the row's multiplier is not fitted on free
    assets, and set to 0 the certificate leaked the residual of the asset that would rise
    (relative gap 1.4e-2 and 2.0e-2 on the optimum, and the fit went to CVXPY)."""
    X = make_returns(60, 400, 3)
    params = {"budget": budget, "max_weights": 0.1, "linear_constraints": ["A0002 - A0003 == 0"]}
    model = MaximumDiversification(**params).fit(X)
    assert model.solve_.path == "dense" and model.solve_.relative_gap <= _dense.GAP_TOLERANCE
    w = model.weights_.to_numpy()
    assert w[2] == w[3] == 0
    cov = X.cov().to_numpy()
    assert ratio(w, cov) == pytest.approx(ratio(old_path(X, **params).weights_.to_numpy(), cov),
                                          rel=D_REL)


@pytest.mark.parametrize("seed", [0, 5, 6])
def test_turnover_that_crosses_a_cap_is_named_not_a_type_error(seed):
    """Previous weights above ``max_weights + max_turnover`` leave the box (turnover folded in)
    empty: the pivoting still returned a point and the certificate's knapsack, finding no
    portfolio, raised ``TypeError: cannot unpack non-iterable NoneType`` (a random sweep).
    The empty box now goes to the LP, which names the two constraints."""
    from xl_factorlasso.core.optimization import InfeasibleProblemError

    rng = np.random.default_rng(seed)
    X = rng.normal(0, 0.01, size=(40, 10))
    previous = rng.dirichlet(np.ones(10))
    assert np.any(previous > 0.13 + 0.094)
    with pytest.raises(InfeasibleProblemError, match="max_weights, max_turnover=0.094"):
        MaximumDiversification(max_weights=0.13, max_turnover=0.094,
                               previous_weights=previous).fit(X)


def test_l2_with_weights_free_to_shrink_is_refused():
    """With ``l2_coef``, ``budget=None`` and nothing that stops the weights shrinking toward 0,
    the penalised ratio rises as they shrink and no portfolio attains the maximum: solvers
    stopped at arbitrary points (on three problems of a random sweep the two formulations of
    the program stopped 1e-5 apart). A ``ValueError`` says what to set; anything that bounds
    the scale lets the fit run."""
    X = make_returns(20, 200, 3)
    with pytest.raises(ValueError, match="l2_coef with budget=None and no min_budget > 0.*"
                                         "Set budget or min_budget > 0, or l2_coef=0"):
        MaximumDiversification(budget=None, l2_coef=1e-3, max_budget=1.0).fit(X)
    for bounded in ({"min_budget": 0.5}, {"budget": 1.0}, {"min_weights": 0.01},
                    {"risk_free_rate": 1e-5}, {"linear_constraints": ["A0000 >= 0.01"]}):
        params = {"budget": None, "l2_coef": 1e-3, **bounded}
        model = MaximumDiversification(**params).fit(X)
        assert np.isfinite(model.weights_.to_numpy()).all()
