"""Linear constraints (groups, ``linear_constraints``, ``left_inequality``) on the dense and
factor paths of MaximumDiversification: rows the active-set solver holds active or not.

Every answer is compared with the CVXPY program on the same problem (the active-set solver
switched off): ratio to 1e-6 relative and never below it (certified), weights to 1e-5. The
constraint sets bind: the fit without them breaks at least one, so the answers depend on the
rows' exchanges. The certificate (the Lagrangian dual bound with the rows' multipliers) is
checked against the true loss at feasible points away from the optimum.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.test_maxdiv_dense import factor_returns, ratio
from xl_factorlasso.core.covariance import FactorCovariance
from xl_factorlasso.core.optimization import MaximumDiversification, _dense

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))  # bench_maxdiv


def groups_of(columns: pd.Index) -> pd.DataFrame:
    """Two classifications of the assets: four groups ``g0..g3`` and three sectors
    ``s0..s2``."""
    n = len(columns)
    return pd.DataFrame([[f"g{i % 4}" for i in range(n)], [f"s{(7 * i) % 3}" for i in range(n)]],
                        columns=columns, index=["group", "sector"])


FAMILIES = {
    "groups": {"linear_constraints": ["g0 <= 0.15", "g1 >= 0.3", "s2 <= 0.2"]},
    "equality, caps": {"linear_constraints": ["g0 <= 0.15", "g1 >= 0.3", "s0 == 0.35"],
                       "max_weights": 0.1},
    "long-short": {"linear_constraints": ["g0 <= 0.1", "g2 + g3 >= 0.6"],
                   "min_weights": -0.05, "max_weights": 0.1},
    "turnover": {"linear_constraints": ["g0 <= 0.15", "g1 >= 0.3"], "max_weights": 0.2,
                 "previous_weights": "equal", "max_turnover": 0.03},
    "fees, rf, budget 2": {"linear_constraints": ["g0 <= 0.3", "s1 >= 0.8"], "budget": 2.0,
                           "management_fees": 2e-4, "risk_free_rate": 1e-4},
    "costs": {"linear_constraints": ["g0 <= 0.15", "g1 >= 0.3", "s2 <= 0.2"],
              "max_weights": 0.2, "transaction_costs": 5e-4, "previous_weights": "equal"},
    "costs, long-short": {"linear_constraints": ["g0 <= 0.1", "g2 + g3 >= 0.6"],
                          "min_weights": -0.05, "max_weights": 0.1, "transaction_costs": 1e-3,
                          "previous_weights": "equal"},
}


def problem(family: str, n: int, seed: int, factor: bool):
    X, factors = factor_returns(n, 400, seed)
    fc = FactorCovariance.from_ols(X, factors)
    params = dict(FAMILIES[family], covariance=fc if factor else fc.covariance,
                  groups=groups_of(X.columns))
    if params.get("previous_weights") == "equal":
        params["previous_weights"] = 1.0 / n
    return X, fc.covariance.to_numpy(), params


def _extra(params: dict) -> dict:
    """``ratio``'s net-of-fees-and-costs arguments for ``params``."""
    return {"rf": params.get("risk_free_rate", 0.0), "fees": params.get("management_fees", 0.0),
            "costs": params.get("transaction_costs", 0.0),
            "previous": params.get("previous_weights", 0.0)}


@pytest.mark.parametrize("factor", [False, True], ids=["dense", "factor"])
@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("n, seed", [(40, 0), (150, 1)])
def test_linear_constraints_equal_cvxpy(old_path, family, n, seed, factor):
    X, cov, params = problem(family, n, seed, factor)
    ours = MaximumDiversification(**params).fit(X)
    reference = old_path(X, **params)
    assert ours.solve_.path == ("factor" if factor else "dense")
    assert ours.solve_.relative_gap <= _dense.GAP_TOLERANCE
    assert reference.solve_.path == "cvxpy"
    w, w_ref = ours.weights_.to_numpy(), reference.weights_.to_numpy()
    value, value_ref = ratio(w, cov, **_extra(params)), ratio(w_ref, cov, **_extra(params))
    assert value == pytest.approx(value_ref, rel=1e-6)
    assert value >= value_ref * (1 - _dense.GAP_TOLERANCE)  # certified: never below CVXPY
    # (weights scale with the budget; at a cost's kink ours sits on the previous weight and
    # Clarabel's stops up to ~1e-5 off it: 1.07e-5 on one case here, its ratio lower)
    tol = 1e-5 * params.get("budget", 1.0) * (2.0 if "transaction_costs" in params else 1.0)
    np.testing.assert_allclose(w, w_ref, atol=tol, rtol=0)
    # the rows bind: without them the optimum breaks at least one
    free = MaximumDiversification(**{k: v for k, v in params.items()
                                     if k not in ("linear_constraints", "groups")}).fit(X)
    spec = ours._validate(X, None)[0]
    rows = _dense._rows(spec)
    slack, _ = rows.slack(free.weights_.to_numpy(), 1.0)
    broken = np.where(rows.equality, np.abs(slack), slack)
    assert broken.max() > 1e-3
    slack, _ = rows.slack(w, 1.0)  # ... and hold at ours
    assert np.all(np.where(rows.equality, np.abs(slack), slack) <= 1e-9)


def test_rows_that_do_not_bind_leave_the_answer_unchanged():
    X, cov, params = problem("groups", 80, 2, factor=False)
    params["linear_constraints"] = ["g0 <= 0.9", "s1 >= 0.0"]
    ours = MaximumDiversification(**params).fit(X)
    plain = MaximumDiversification(covariance=params["covariance"]).fit(X)
    assert ours.solve_.path == plain.solve_.path == "dense"
    np.testing.assert_allclose(ours.weights_, plain.weights_, atol=1e-10, rtol=0)


def test_left_inequality_rows_on_a_dense_covariance(old_path):
    """Rows of any sign and density (``left_inequality``), long-short."""
    X, cov, _ = problem("groups", 60, 3, factor=False)
    rng = np.random.default_rng(3)
    left = rng.normal(0, 1, (3, 60))
    params = dict(covariance=cov, min_weights=-0.1, max_weights=0.2, left_inequality=left,
                  right_inequality=np.array([0.05, -0.02, 0.1]))
    ours = MaximumDiversification(**params).fit(X)
    reference = old_path(X, **params)
    assert ours.solve_.path == "dense" and ours.solve_.relative_gap <= _dense.GAP_TOLERANCE
    w, w_ref = ours.weights_.to_numpy(), reference.weights_.to_numpy()
    assert ratio(w, cov) == pytest.approx(ratio(w_ref, cov), rel=1e-6)
    np.testing.assert_allclose(w, w_ref, atol=1e-5, rtol=0)
    assert np.max(left @ w - params["right_inequality"]) > -1e-9  # one binds


def test_factor_exposure_rows_on_the_factor_path(old_path):
    """Factor names in constraints (a row ``B'``: the portfolio's exposure) are rows too."""
    X, factors = factor_returns(100, 400, 8)
    fc = FactorCovariance.from_ols(X, factors)
    params = dict(covariance=fc, max_weights=0.1,
                  linear_constraints=["F0 >= 0.7", "F1 <= 0.3", "F2 - F3 == 0.1"])
    ours = MaximumDiversification(**params).fit(X)
    reference = old_path(X, **params)
    assert ours.solve_.path == "factor" and ours.solve_.relative_gap <= _dense.GAP_TOLERANCE
    cov = fc.covariance.to_numpy()
    w, w_ref = ours.weights_.to_numpy(), reference.weights_.to_numpy()
    assert ratio(w, cov) == pytest.approx(ratio(w_ref, cov), rel=1e-6)
    assert ratio(w, cov) >= ratio(w_ref, cov) * (1 - _dense.GAP_TOLERANCE)
    np.testing.assert_allclose(w, w_ref, atol=2e-5, rtol=0)  # CVXPY's weights on a flat optimum
    exposure = fc.loadings.to_numpy().T @ w
    assert exposure[0] == pytest.approx(0.7, abs=1e-9)  # binds
    assert exposure[2] - exposure[3] == pytest.approx(0.1, abs=1e-9)


@pytest.mark.parametrize("factor", [False, True], ids=["dense", "factor"])
@pytest.mark.parametrize("family", ["groups", "equality, caps", "long-short"])
def test_certificate_bounds_the_true_loss(family, factor):
    """The certified bound is at least the true relative loss of diversification ratio at
    feasible points away from the optimum: between it and another feasible portfolio (the
    optimum of another covariance under the same constraints), and at the optimum of a nearby
    covariance, where the multipliers read off the point are nearly right and the bound is
    small."""
    X, cov, params = problem(family, 60, 4, factor)
    model = MaximumDiversification(**params).fit(X)
    spec = model._validate(X, None)[0]
    a, box, rows = _dense._coefficients(spec), _dense._box(spec), _dense._rows(spec)
    system = (_dense.LowRankCovariance(*params["covariance"].sqrt_components()) if factor
              else cov)
    w_star = model.weights_.to_numpy()
    best = ratio(w_star, cov)
    other = MaximumDiversification(**dict(params, covariance=np.diag(np.diag(cov)))).fit(X)
    nearby = MaximumDiversification(**dict(params, covariance=cov + 1e-6 * np.eye(60))).fit(X)
    points = [(1 - s) * w_star + s * other.weights_.to_numpy() for s in (1e-4, 1e-2, 0.3)]
    for w in points + [nearby.weights_.to_numpy()]:
        bound = _dense.relative_gap(system, a, w, box, None, rows)
        loss = best / ratio(w, cov) - 1
        assert loss > 0 and bound >= loss * (1 - 1e-6)
    assert loss < bound < 1e-3  # the nearby optimum
    # the box's bound alone (no rows) does not certify the optimum under the rows
    assert _dense.relative_gap(system, a, w_star, box, None, None) > 1e-3


def test_warm_start_with_rows_equals_a_cold_fit():
    X, cov, params = problem("equality, caps", 120, 5, factor=True)
    model = MaximumDiversification(**params, warm_start=True)
    model.fit(X.iloc[:300])
    model.fit(X.iloc[50:])
    cold = MaximumDiversification(**params).fit(X.iloc[50:])
    assert model.solve_.path == "factor" and model.solve_.warm_start
    np.testing.assert_allclose(model.weights_, cold.weights_, atol=1e-9, rtol=0)


def test_an_equality_on_bound_assets_only_has_no_free_solution():
    """An active row whose assets are all bound (here at 0, against ``w0 + w1 = 0.5``) leaves
    no solution on that state (``_free_solution`` gives None); from the usual start the
    pivoting frees them, and its answer holds the row and is certified."""
    rows = _dense._Rows(np.array([[1.0, 1.0, 0.0, 0.0]]), np.array([0.5]), np.array([True]))
    cov = np.diag([1.0, 2.0, 3.0, 4.0])
    a = np.sqrt(np.diag(cov))
    box = _dense._Box(np.zeros(4), np.full(4, np.inf), 1.0)
    state = np.array([_dense.LOW, _dense.LOW, _dense.FREE, _dense.FREE], dtype=np.int8)
    assert _dense._free_solution(a, _dense._FreeSetSolver(cov, a), box, state, rows=rows,
                                 active=np.array([True])) is None
    solved = _dense._pivot_dense(cov, a, box, rows)
    assert solved is not None  # from the usual start the pivoting frees them
    y = solved[0] / solved[0].sum()
    assert y[:2].sum() == pytest.approx(0.5, abs=1e-12)
    assert _dense.relative_gap(cov, a, solved[0], box, None, rows) <= _dense.GAP_TOLERANCE


def test_rows_tied_through_the_budget():
    """Two groups that hold every asset, so ``G0 = 1 - G1``. With ``s`` the weight of ``G1``
    at the optimum without rows, ``G1 <= s - 0.1`` forces ``G0 = 1 - s + 0.1``, and ``G0 >=
    1 - s + 0.05`` cannot be active with it. Both are broken at the start (no asset is): made
    active together they leave no solution, nor does ``G1``'s after ``G0``'s; the pivoting then
    keeps only the row that entered (before, it gave no answer there and the fit fell back to
    CVXPY)."""
    sd = np.linspace(0.01, 0.03, 10)
    cov, a = np.diag(sd**2), sd
    odd = np.arange(10) % 2 == 1
    s = float((1 / sd)[odd].sum() / (1 / sd).sum())  # y ~ Sigma^-1 a = 1 / sd
    rows = _dense._Rows(np.vstack([odd, ~odd]) * np.array([[1.0], [-1.0]]),
                        np.array([s - 0.1, -(1 - s + 0.05)]), np.zeros(2, dtype=bool))
    box = _dense._Box(np.full(10, -1.0), np.full(10, 1.0), 1.0)
    state = np.full(10, _dense.FREE, dtype=np.int8)
    active = np.zeros(2, dtype=bool)
    solved = _dense._block_pivoting(a, _dense._FreeSetSolver(cov, a), state, box, rows=rows,
                                    active=active)
    assert solved is not None and list(active) == [True, False]
    w = solved[0] / solved[0].sum()
    assert w[odd].sum() == pytest.approx(s - 0.1, abs=1e-12)
    assert _dense.relative_gap(cov, a, solved[0], box, None, rows) <= _dense.GAP_TOLERANCE


def test_a_dense_answer_settles_the_precheck(monkeypatch):
    """The pre-check's LP (is there a portfolio, and one with a positive net ratio?) is not
    run when the dense path answers: its answer is such a portfolio. Without an answer it runs
    and names the conflict as before."""
    from xl_factorlasso.core.optimization import InfeasibleProblemError, _base

    calls = []
    original = _base._precheck
    monkeypatch.setattr(_base, "_precheck", lambda spec: calls.append(1) or original(spec))
    X, cov, params = problem("groups", 60, 10, factor=True)
    model = MaximumDiversification(**params).fit(X)
    assert model.solve_.path == "factor" and calls == []
    params["linear_constraints"] = ["g0 >= 0.6", "g1 >= 0.6"]
    with pytest.raises(InfeasibleProblemError, match="g0 >= 0.6.*g1 >= 0.6|g1 >= 0.6.*g0 >= 0.6"):
        MaximumDiversification(**params).fit(X)
    assert calls == [1]


@pytest.mark.parametrize("case", ["factor, equality", "dense, one row", "factor, five rows",
                                  "dense, rows tied through the budget"])
def test_single_exchanges_that_leave_a_solution(old_path, case):
    """Problems of ``benchmarks/bench_maxdiv_rows.py`` (its draws 154, 412, 194 and 157, 20
    assets) on which the single exchange of the largest violator left no solution and the fit
    fell back to CVXPY; the pivoting now takes the largest violator whose exchange leaves one,
    or else an exchange of order two.

    Draw 154 fell back with NumPy 2.0's OpenBLAS only: ``G3 == 0.15`` with G3's other assets
    at 0 and at the cap 0.2 forces ``t = 0`` once its last free asset goes to 0, and the
    solve's ``t`` there was round-off of either sign (``+5.9e-13`` was taken as a point); the
    exchange it needs frees the capped asset too. Draw 194 fell back with both NumPy builds.
    On draw 157 (here with its previous weights to 4 decimals) three groups cover every asset
    and their rows cannot all hold; the old code answered after taking such a state's
    round-off ``t = 2.9e-12`` as a point, and a state whose rows force ``t = 0`` now has no
    solution: a row made active releases another."""
    from bench_maxdiv import make_data

    if case == "factor, five rows":
        X, F = make_data(20, 240, seed=194)
        labels = "G3 G0 G0 G3 G2 G1 G4 G0 G3 G3 G4 G1 G1 G0 G3 G0 G5 G5 G1 G0".split()
        params = dict(covariance=FactorCovariance.from_ols(X, F), max_weights=0.15,
                      linear_constraints=["G3 <= 0.132", "G5 >= 0.1737", "G0 >= 0.4616",
                                          "G4 >= 0.1373", "G1 <= 0.1172"])
        cov = params["covariance"].covariance.to_numpy()
    elif case == "dense, rows tied through the budget":
        X, _ = make_data(20, 240, dense=True, seed=157)
        labels = "G2 G1 G2 G2 G3 G3 G3 G1 G2 G1 G1 G1 G1 G2 G1 G3 G2 G3 G3 G1".split()
        previous = np.array([0.0766, 0.091, 0.114, 0.0811, 0.002, 0.0399, 0.0314, 0.0281,
                             0.0524, 0.1453, 0.0021, 0.0071, 0.0645, 0.0293, 0.1062, 0.0602,
                             0.0367, 0.0096, 0.0138, 0.0088])
        params = dict(max_weights=0.15, transaction_costs=1e-4, previous_weights=previous,
                      linear_constraints=["G1 >= 0.5902", "G3 >= 0.394", "G2 <= 0.1288"])
        cov = X.cov().to_numpy()
    elif case == "factor, equality":
        X, F = make_data(20, 240, seed=154)
        labels = "G3 G2 G2 G2 G2 G2 G0 G2 G4 G2 G5 G5 G5 G3 G2 G4 G4 G5 G2 G3".split()
        params = dict(covariance=FactorCovariance.from_ols(X, F), max_weights=0.2,
                      linear_constraints=["G0 <= 0.0285", "G3 == 0.15", "G2 <= 0.3525",
                                          "G5 <= 0.1116"])
        cov = params["covariance"].covariance.to_numpy()
    else:
        X, _ = make_data(20, 240, seed=412)
        labels = "G3 G0 G3 G2 G1 G2 G1 G2 G1 G2 G3 G1 G0 G0 G1 G2 G3 G0 G2 G2".split()
        params = dict(max_weights=0.15, linear_constraints=["G1 <= 0.0813"])
        cov = X.cov().to_numpy()
    params["groups"] = [labels]
    ours = MaximumDiversification(**params).fit(X)
    assert ours.solve_.path == ("factor" if case.startswith("factor") else "dense")
    assert ours.solve_.note == "" and ours.solve_.relative_gap <= _dense.GAP_TOLERANCE
    reference = old_path(X, **params)
    w, w_ref = ours.weights_.to_numpy(), reference.weights_.to_numpy()
    value, value_ref = ratio(w, cov, **_extra(params)), ratio(w_ref, cov, **_extra(params))
    assert value == pytest.approx(value_ref, rel=1e-6)
    assert value >= value_ref * (1 - _dense.GAP_TOLERANCE)


@pytest.mark.parametrize("assets, rhs, expected", [
    ([0, 1, 2], [0.15], True),  # G3 == 0.15 on bound assets only: 0.2 t = 0.15 t
    ([2, 3, 4], [0.15], False),  # a free asset in the row: any t
])
def test_rows_that_force_a_zero_budget(assets, rhs, expected):
    """A state whose held rows imply ``1'y_F = 0`` (so ``t = 0``) has no solution, decided
    from the rows (``_forces_zero_budget``), not from the sign of the round-off ``t`` of the
    solve (``+5.9e-13`` or ``-5.1e-13`` of ``1'|y| = 175`` on draw 154 of bench_maxdiv_rows
    with NumPy 2.0's or 2.4's OpenBLAS). Two groups that cover every asset, with right-hand
    sides that do not add up to the budget, force it too."""
    n = 6
    matrix = np.zeros((1, n))
    matrix[0, assets] = 1.0
    rows = _dense._Rows(matrix, np.array(rhs), np.array([True]))
    sd = np.linspace(0.01, 0.02, n)
    cov, a = np.diag(sd**2), sd
    box = _dense._Box(np.zeros(n), np.full(n, 0.2), 1.0)
    state = np.array([_dense.LOW, _dense.UP, _dense.LOW, _dense.FREE, _dense.FREE,
                      _dense.FREE], dtype=np.int8)
    active = np.array([True])
    free, bound = np.flatnonzero(state == _dense.FREE), np.flatnonzero(state != _dense.FREE)
    b = np.where(state[bound] == _dense.LOW, 0.0, 0.2)
    h = _dense._held_rows(rows, active, free, bound, b, 1.0 - b.sum())[1]
    assert _dense._forces_zero_budget(h, rows, active, free.size) is expected
    solved = _dense._free_solution(a, _dense._FreeSetSolver(cov, a), box, state, rows=rows,
                                   active=active)
    assert (solved is None) is expected
    # two groups over every asset: 0.5 + 0.4 != 1
    halves = np.array([[1.0, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1]])
    rows = _dense._Rows(halves, np.array([0.5, 0.4]), np.array([False, False]))
    state[:] = _dense.FREE
    both = np.array([True, True])
    h = _dense._held_rows(rows, both, np.arange(n), np.zeros(0, dtype=int), np.zeros(0), 1.0)[1]
    assert _dense._forces_zero_budget(h, rows, both, n)
    assert _dense._free_solution(a, _dense._FreeSetSolver(cov, a), box, state, rows=rows,
                                 active=both) is None


@pytest.mark.parametrize("factor", [False, True], ids=["dense", "factor"])
@pytest.mark.parametrize("family", ["groups", "equality, caps", "long-short"])
def test_rows_one_at_a_time_where_the_joint_pivoting_gives_no_answer(monkeypatch, old_path,
                                                                     family, factor):
    """When the pivoting of assets and rows together gives no answer (here forced), the rows
    are exchanged one at a time around the assets' pivoting: the same optimum as CVXPY."""
    original = _dense._block_pivoting

    def joint_fails(*args, **kwargs):
        if kwargs.get("rows") is not None and kwargs.get("exchange_rows", True):
            return None
        return original(*args, **kwargs)

    X, cov, params = problem(family, 60, 11, factor)
    reference = old_path(X, **params)
    monkeypatch.setattr(_dense, "_block_pivoting", joint_fails)
    ours = MaximumDiversification(**params).fit(X)
    assert ours.solve_.path == ("factor" if factor else "dense")
    w, w_ref = ours.weights_.to_numpy(), reference.weights_.to_numpy()
    assert ratio(w, cov) == pytest.approx(ratio(w_ref, cov), rel=1e-6)
    assert ratio(w, cov) >= ratio(w_ref, cov) * (1 - _dense.GAP_TOLERANCE)
    np.testing.assert_allclose(w, w_ref, atol=2e-5, rtol=0)  # CVXPY's weights on a flat optimum


@pytest.mark.parametrize("row", ["g1 >= 0.3", "s0 == 0.4"])
@pytest.mark.parametrize("factor", [False, True], ids=["dense", "factor"])
def test_a_row_out_of_reach_of_the_box_skips_the_pivoting(monkeypatch, row, factor):
    """Equal previous weights put g1 at 0.25 and s0 at 1/3; with ``max_turnover=0.001``
    no portfolio reaches either row. The range of each row over the box and budget (knapsacks)
    says so before any pivoting (which otherwise ran its whole effort: 2.7 s at n = 1000),
    and the LP names the conflict as before."""
    from xl_factorlasso.core.optimization import InfeasibleProblemError

    pivots = []
    original = _dense._block_pivoting
    monkeypatch.setattr(_dense, "_block_pivoting",
                        lambda *a, **k: pivots.append(1) or original(*a, **k))
    X, _, params = problem("turnover", 60, 10, factor)
    params.update(linear_constraints=[row], max_turnover=0.001)
    with pytest.raises(InfeasibleProblemError, match=f"'{row}'.*max_turnover=0.001"):
        MaximumDiversification(**params).fit(X)
    assert pivots == []
    spec, _ = MaximumDiversification(**params)._validate(X, None)
    assert _dense.solve_dense(spec, X) == (
        f"the linear constraint '{row}' cannot hold within the bounds and the budget")
    params["max_turnover"] = 0.1  # within reach: the pivoting answers
    model = MaximumDiversification(**params).fit(X)
    assert pivots and model.solve_.path == ("factor" if factor else "dense")


@pytest.mark.parametrize("rows, extra", [
    (["g0 >= 0.6", "g1 >= 0.6"], {}),
    (["g0 - g1 >= 0.3", "g1 - g0 >= 0.1"], {}),
    (["g0 <= 0.2", "g1 <= 0.2", "g2 + g3 <= 0.55"], {}),
    (["g0 >= 0.75", "s1 <= 0.2"], {"max_weights": 0.05}),  # g0 at its caps puts 0.25 in s1
])
@pytest.mark.parametrize("factor", [False, True], ids=["dense", "factor"])
def test_rows_that_conflict_together_stop_the_pivoting_early(monkeypatch, rows, extra, factor):
    """Rows each within reach alone but not together: at the pivoting's 30th exchange their
    feasibility LP says so and the pivoting stops (it otherwise ran to its limits in every
    stage: several hundred solves, 0.5-0.7 s at n = 30, 3-6 s at n = 1000); the CVXPY path's
    pre-check names the conflict as before. Two rows that do hold together are answered."""
    from xl_factorlasso.core.optimization import InfeasibleProblemError

    solves, checks = [], []
    free, conflict = _dense._free_solution, _dense._rows_conflict
    monkeypatch.setattr(_dense, "_free_solution",
                        lambda *a, **k: solves.append(1) or free(*a, **k))
    monkeypatch.setattr(_dense, "_rows_conflict",
                        lambda *a, **k: checks.append(1) or conflict(*a, **k))
    X, _, params = problem("groups", 60, 10, factor)
    params.update(linear_constraints=rows, **extra)
    spec, _ = MaximumDiversification(**params)._validate(X, None)
    assert _dense._unreachable_row(_dense._rows(spec), _dense._box(spec)) is None
    with pytest.raises(InfeasibleProblemError, match="no portfolio satisfies these "
                                                     "constraints together"):
        MaximumDiversification(**params).fit(X)
    # (a solve or two an exchange; up to ~3 where one leaves no solution and the pivoting
    # tries others, single or paired: 56-86 solves here)
    assert checks == [1] and len(solves) <= 3 * _dense._ROWS_CHECK_AFTER
    assert _dense.solve_dense(spec, X) == (
        "the linear constraints cannot hold together within the bounds and the budget")
    # without the check the same pivoting runs on
    monkeypatch.setattr(_dense, "_ROWS_CHECK_AFTER", -1)
    solves.clear()
    assert _dense.solve_dense(spec, X) == (
        "the active-set solver found no factorable free set or did not converge")
    assert len(solves) > 4 * (2 * _dense._ROWS_CHECK_AFTER + 10)
    monkeypatch.undo()
    params["linear_constraints"] = ["g0 >= 0.3", "g1 >= 0.3"]
    model = MaximumDiversification(**params).fit(X)
    assert model.solve_.path == ("factor" if factor else "dense")
    groups = params["groups"].loc["group"].to_numpy()
    w = model.weights_.to_numpy()
    assert w[groups == "g0"].sum() >= 0.3 - 1e-9 and w[groups == "g1"].sum() >= 0.3 - 1e-9
