"""Polished weights: a weight at a corner of the problem (bound, 0, turnover limit, previous weight
under costs) is exactly that value, every constraint still holds (bounds exactly, the rest to
1e-12), the ratio is not worse than the solver's raw point (computed here with numpy), and the
raw point is kept, with a note, when a polished one would not pass."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xl_factorlasso.core.covariance import FactorCovariance
from xl_factorlasso.core.optimization import MaximumDiversification, _dense
from xl_factorlasso.core.optimization import _solve as md

skd = pytest.importorskip("skfolio.datasets")
from skfolio.optimization import MaximumDiversification as SkMaxDiv  # noqa: E402
from skfolio.preprocessing import prices_to_returns  # noqa: E402

EXACT = 1e-12
GROUPS = [["Equity"] * 3 + ["Fund"] * 5 + ["Bond"] * 12,
          ["US"] * 2 + ["Europe"] * 8 + ["Japan"] * 10]


@pytest.fixture(scope="module")
def X():
    return prices_to_returns(skd.load_sp500_dataset()).loc["2014":]


@pytest.fixture(scope="module")
def factors():
    X, F = prices_to_returns(skd.load_sp500_dataset(), skd.load_factors_dataset())
    return X.loc["2014":], F.loc["2014":]


def member(labels, name):
    return np.array([1.0 if label == name else 0.0 for label in labels])


def ratio(w, cov, *, rf=0.0, costs=0.0, previous=0.0, l1=0.0):
    """The maximised objective, from the covariance with numpy."""
    sigma = np.sqrt(np.diag(cov))
    numerator = sigma @ w - np.sum(costs * np.abs(w - previous)) - rf
    return float(numerator / (np.sqrt(w @ cov @ w) + l1 * np.abs(w).sum()))


def configs(X):
    """name -> (params, corners(n) -> list of per-asset exact values, equality rows, inequality
    rows (a, b) meaning a @ w <= b, objective keywords)."""
    n = X.shape[1]
    previous = np.random.default_rng(7).dirichlet(np.ones(n))
    equity, bond = member(GROUPS[0], "Equity"), member(GROUPS[0], "Bond")
    us, japan = member(GROUPS[1], "US"), member(GROUPS[1], "Japan")
    left = np.vstack([np.r_[np.ones(3), np.zeros(n - 3)], np.r_[np.zeros(n - 5), -np.ones(5)]])
    right = np.array([0.15, -0.3])
    ones = np.ones(n)
    return {
        "default": ({}, [0.0, 1.0], [(ones, 1.0)], [], {}),
        "max_weights": ({"max_weights": 0.08}, [0.0, 0.08], [(ones, 1.0)], [], {}),
        "dict_bounds": ({"min_weights": {X.columns[0]: 0.1, X.columns[5]: 0.05},
                         "max_weights": {X.columns[1]: 0.02, X.columns[4]: 0.0}},
                        None, [(ones, 1.0)], [], {}),
        "budget_half": ({"budget": 0.5, "max_weights": 0.1}, [0.0, 0.1], [(ones, 0.5)], [], {}),
        "groups": ({"groups": GROUPS, "max_weights": 0.25,
                    "linear_constraints": ["Equity >= 0.3", "US >= 0.15", "Japan <= 0.4",
                                           "Bond == 2 * Equity"]},
                   [0.0, 0.25], [(ones, 1.0), (bond - 2 * equity, 0.0)],
                   [(-equity, -0.3), (-us, -0.15), (japan, 0.4)], {}),
        "inequality_matrix": ({"left_inequality": left, "right_inequality": right},
                              [0.0, 1.0], [(ones, 1.0)], list(zip(left, right, strict=True)), {}),
        "long_short_caps": ({"min_weights": -0.3, "max_weights": 0.4, "max_short": 0.2,
                             "max_long": 1.15}, [-0.3, 0.0, 0.4], [(ones, 1.0)], [], {}),
        "turnover": ({"max_turnover": 0.02, "previous_weights": previous},
                     [0.0, limit(previous, -0.02), limit(previous, 0.02)], [(ones, 1.0)], [], {}),
        "costs": ({"transaction_costs": 0.002, "previous_weights": previous},
                  [0.0, 1.0, previous], [(ones, 1.0)], [],
                  {"costs": 0.002, "previous": previous}),
        "costs_turnover_groups": ({"transaction_costs": 0.001, "previous_weights": previous,
                                   "max_turnover": 0.05, "groups": GROUPS,
                                   "linear_constraints": ["Bond <= 0.5"]},
                                  [0.0, previous, limit(previous, -0.05), limit(previous, 0.05)],
                                  [(ones, 1.0)], [(member(GROUPS[0], "Bond"), 0.5)],
                                  {"costs": 0.001, "previous": previous}),
        "l1": ({"l1_coef": 0.01}, [0.0, 1.0], [(ones, 1.0)], [], {"l1": 0.01}),
        "min_return": ({"min_return": 0.024}, [0.0, 1.0], [(ones, 1.0)],
                       [(-np.sqrt(np.diag(X.cov())), -0.024)], {}),
    }


def limit(previous, move):
    """``previous + move``, or the float next to it towards ``previous`` where rounding puts it
    further than ``|move|`` (the turnover corner as a user checks it: ``|w - p| <= cap``)."""
    value = previous + move
    return np.where(np.abs(value - previous) > abs(move), np.nextafter(value, previous), value)


def corner_values(corners, n):
    return [np.broadcast_to(np.asarray(c, dtype=float), (n,)) for c in corners]


def check_polished(w, raw, corners, equalities, inequalities, lower=0.0, upper=1.0):
    """Corners exact, constraints hold, the polished point is the raw one up to dust."""
    n = len(w)
    for i in range(n):
        near = [c[i] for c in corners if abs(raw[i] - c[i]) <= 1e-6 * (1 + abs(c[i]))]
        if near:
            nearest = min(near, key=lambda c: abs(raw[i] - c))
            assert w[i] == nearest, (i, raw[i], w[i])  # exactly, not approximately
    assert np.all(w >= lower) and np.all(w <= upper)
    for a, b in equalities:
        assert abs(a @ w - b) <= EXACT * (1 + abs(b))
    for a, b in inequalities:  # exactly, also when active: restored just inside the bound
        assert a @ w <= b, (a @ w, b)
    assert np.max(np.abs(w - raw)) <= 1e-5


@pytest.mark.parametrize("name", list(configs(pd.DataFrame(np.zeros((3, 20))))))
def test_polished_weights_are_exact_and_feasible(X, name):
    params, corners, equalities, inequalities, objective = configs(X)[name]
    model = MaximumDiversification(**params).fit(X)
    raw_model = MaximumDiversification(polish=False, **params).fit(X)
    w, raw = model.weights_.to_numpy(), raw_model.weights_.to_numpy()
    n = len(w)
    lower, upper = params.get("min_weights", 0.0), params.get("max_weights", 1.0)
    if isinstance(lower, dict):  # dict bounds: the missing assets keep the defaults
        lower = np.array([lower.get(a, 0.0) for a in X.columns])
        upper = np.array([upper.get(a, 1.0) for a in X.columns])
        corners = [lower, upper, 0.0]
    check_polished(w, raw, corner_values(corners, n), equalities, inequalities, lower, upper)
    report = model.polish_
    assert report.applied and report.note == ""
    assert report.max_change == pytest.approx(np.max(np.abs(w - raw)), rel=1e-12, abs=1e-300)
    assert raw_model.polish_.applied is False and raw_model.polish_.note == "polish=False"
    cov = X.cov().to_numpy()
    assert ratio(w, cov, **objective) >= ratio(raw, cov, **objective) * (1 - 1e-9)
    assert report.ratio_change == pytest.approx(
        ratio(w, cov, **objective) / ratio(raw, cov, **objective) - 1, abs=1e-12)
    # problem_values_ describe the polished weights
    assert model.problem_values_["ratio"] == pytest.approx(ratio(w, cov, **objective), rel=1e-12)
    if name == "turnover":
        assert np.max(np.abs(w - params["previous_weights"])) <= 0.02  # exactly, as skfolio


def test_dust_becomes_exact_zeros_and_caps(X, monkeypatch):
    # Dust is an interior-point artefact: the dense path (exact zeros and caps) is switched off.
    monkeypatch.setattr(_dense, "dense_eligible", lambda spec, save_problem=False: False)
    raw = MaximumDiversification(max_weights=0.08, polish=False).fit(X).weights_.to_numpy()
    w = MaximumDiversification(max_weights=0.08).fit(X).weights_.to_numpy()
    dust = (raw > 0) & (raw < 1e-6)
    capped = np.abs(raw - 0.08) < 1e-6
    assert dust.sum() >= 3 and capped.sum() >= 3  # the solver's output has both
    assert np.all(raw[capped] != 0.08)
    assert np.all(w[dust] == 0.0) and np.all(w[capped] == 0.08)
    assert abs(w.sum() - 1.0) <= EXACT
    free = ~dust & ~capped
    assert np.all((w[free] > 1e-6) & (w[free] < 0.08 - 1e-6))


def test_previous_weights_are_kept_exactly_under_costs(X):
    n = X.shape[1]
    previous = np.full(n, 1.0 / n)
    params = dict(transaction_costs=0.002, previous_weights=previous)
    # the interior-point path (save_problem keeps it) stops near the kinks: the polish snaps
    raw = MaximumDiversification(polish=False, save_problem=True, **params).fit(X)
    raw = raw.weights_.to_numpy()
    w = MaximumDiversification(save_problem=True, **params).fit(X).weights_.to_numpy()
    kept = np.abs(raw - previous) <= 1e-6 * (1 + previous)
    assert kept.sum() >= 3 and np.all(raw[kept] != previous[kept])
    assert np.all(w[kept] == previous[kept])
    # the dense path holds them at the kink by construction, before any polish
    dense = MaximumDiversification(polish=False, **params).fit(X)
    assert dense.solve_.path == "dense"
    assert np.all(dense.weights_.to_numpy()[kept] == previous[kept])


@pytest.mark.parametrize("name", ["default", "max_weights", "groups", "turnover", "costs"])
def test_polished_weights_still_match_skfolio(X, name):
    params, *_ = configs(X)[name]
    w = MaximumDiversification(**params).fit(X).weights_.to_numpy()
    sk = SkMaxDiv(**params).fit(X).weights_
    np.testing.assert_allclose(w, sk, atol=1e-3, rtol=0)
    cov = X.cov().to_numpy()
    objective = configs(X)[name][4]
    assert ratio(w, cov, **objective) == pytest.approx(ratio(sk, cov, **objective), rel=1e-5)


def test_tracking_error_stays_within_its_cap(X):
    bench = X.mean(axis=1)
    model = MaximumDiversification(max_tracking_error=0.002, max_weights=0.15).fit(X, bench)
    w = model.weights_.to_numpy()
    te = np.linalg.norm(X.to_numpy() @ w - bench.to_numpy()) / np.sqrt(len(X) - 1)
    assert model.polish_.applied
    assert te <= 0.002 + EXACT
    assert te == pytest.approx(0.002, rel=1e-6)  # binding
    assert abs(w.sum() - 1) <= EXACT and w.min() >= 0 and w.max() <= 0.15
    assert np.count_nonzero(w == 0.0) >= 1


def test_min_budget_max_budget_and_factor_exposures(factors):
    X, F = factors
    fc = FactorCovariance.from_ols(X, F)
    B = fc.loadings
    model = MaximumDiversification(
        covariance=fc, budget=None, min_budget=0.9, max_budget=1.0, min_weights=-0.2,
        max_weights=0.3, linear_constraints=["MTUM == 0", "USMV >= 0.3"]).fit(X)
    w = model.weights_
    assert model.polish_.applied
    assert abs(w @ B["MTUM"]) <= EXACT
    assert w @ B["USMV"] >= 0.3 - EXACT * 1.3
    assert 0.9 - EXACT <= w.sum() <= 1.0 + EXACT
    assert w.min() >= -0.2 and w.max() <= 0.3


def test_min_return_array_reports_each_row(X):
    targets = [0.02, 0.0235, 0.025]
    model = MaximumDiversification(min_return=targets).fit(X)
    sigma = X.std().to_numpy()
    assert len(model.polish_) == 3 and all(r.applied for r in model.polish_)
    for row, target in zip(model.weights_.to_numpy(), targets, strict=True):
        assert sigma @ row >= target - EXACT * (1 + target)
        assert abs(row.sum() - 1) <= EXACT
        assert np.count_nonzero(row == 0.0) >= 1


def test_screened_solve_is_polished():
    rng = np.random.default_rng(3)
    n, T = 400, 900
    factors = rng.normal(0.0003, 0.01, (T, 5))
    loadings = rng.normal(0.5, 0.5, (n, 5))
    noise = rng.normal(0, 1, (T, n)) * rng.uniform(0.005, 0.03, n)
    X = pd.DataFrame(factors @ loadings.T + noise, columns=[f"A{i:04d}" for i in range(n)])
    model = MaximumDiversification(max_weights=0.02).fit(X)
    w = model.weights_.to_numpy()
    assert model.polish_.applied
    zeros = np.count_nonzero(w == 0.0)
    assert zeros > n // 2  # the optimum is sparse, and its zeros are exact
    assert np.all(w[w != 0.0] > 1e-6)
    assert abs(w.sum() - 1) <= EXACT and w.max() <= 0.02


def test_raw_point_is_kept_when_a_custom_constraint_would_break(X):
    # y[0] >= 1e-7 t (w_0 >= 1e-7) holds at the optimum with w_0 on it; polishing would snap
    # w_0 to 0, which breaks a constraint it cannot see: the raw point is kept, with the reason.
    w_free = MaximumDiversification().fit(X).weights_
    zero_asset = int(np.flatnonzero(w_free.to_numpy() == 0.0)[0])

    def floor(y, t):
        return y[zero_asset] >= 1e-7 * t

    model = MaximumDiversification(add_constraints=floor).fit(X)
    w = model.weights_.to_numpy()
    assert not model.polish_.applied
    assert "add_constraints[0] would hold less well" in model.polish_.note
    assert model.polish_.note.startswith("kept the solver's weights: the polished point breaks")
    assert w[zero_asset] >= 1e-7 * (1 - 1e-6)
    raw = MaximumDiversification(add_constraints=floor, polish=False).fit(X).weights_.to_numpy()
    np.testing.assert_array_equal(w, raw)


def test_raw_point_is_kept_when_the_ratio_would_drop(X, monkeypatch):
    # A polish that shifts 1e-6 of weight onto an asset held at 0 costs about 1e-7 of the ratio:
    # more than the 1e-9 allowed, so the solver's weights stay.
    original = md.snap_and_restore

    def worse(spec, w, min_return):
        polished, snapped = original(spec, w, min_return)
        polished = polished.copy()
        zero, top = int(np.argmin(polished)), int(np.argmax(polished))
        polished[zero] += 1e-6
        polished[top] -= 1e-6
        return polished, snapped

    monkeypatch.setattr(md, "snap_and_restore", worse)
    model = MaximumDiversification().fit(X)
    raw = MaximumDiversification(polish=False).fit(X)
    assert not model.polish_.applied
    assert "the polished point breaks the ratio, which would drop by" in model.polish_.note
    np.testing.assert_array_equal(model.weights_.to_numpy(), raw.weights_.to_numpy())
    assert model.problem_values_ == raw.problem_values_


def test_raw_point_is_kept_when_polishing_breaks_a_bound(X, monkeypatch):
    def out_of_bounds(spec, w, min_return):
        polished = w.copy()
        polished[int(np.argmin(w))] = -1e-9
        polished[int(np.argmax(w))] += 1e-9 + (0 - w.min())
        return polished, 0

    monkeypatch.setattr(md, "snap_and_restore", out_of_bounds)
    model = MaximumDiversification().fit(X)
    assert not model.polish_.applied
    assert "min_weights by 1.00e-09" in model.polish_.note


def test_polish_is_validated_and_reported_on_failure(X):
    with pytest.raises(ValueError, match="polish must be a bool"):
        MaximumDiversification(polish="yes").fit(X)
    with pytest.warns(UserWarning, match="come from the fallback previous_weights"):
        model = MaximumDiversification(min_weights=0.1, max_weights=0.01,
                                       fallback="previous_weights", previous_weights=0.05).fit(X)
    assert model.fallback_ == "previous_weights" and model.polish_ is None


def test_snap_does_not_touch_interior_weights(X):
    # long-short without l1: weights far from every corner are left where the solver put them,
    # up to the least-norm budget correction.
    params = {"min_weights": -0.2, "max_weights": 0.3}
    w = MaximumDiversification(**params).fit(X).weights_.to_numpy()
    raw = MaximumDiversification(polish=False, **params).fit(X).weights_.to_numpy()
    assert np.max(np.abs(w - raw)) <= 1e-14
    assert abs(w.sum() - 1) <= EXACT


def test_ratio_check_allows_for_the_raw_points_own_bound_violations():
    # Clarabel's iterates are not strictly feasible: on 1000 assets hundreds of weights held at 0
    # come back as about -4e-11. That flatters the raw ratio over every feasible point; the check
    # allows for it (to first order), and only for it.
    rng = np.random.default_rng(0)
    n, T = 1000, 2000
    F = pd.DataFrame(rng.normal(0, 0.01, (T, 5)), columns=list("abcde"))
    X = pd.DataFrame(F.to_numpy() @ rng.normal(0.5, 0.5, (n, 5)).T
                     + rng.normal(0, 1, (T, n)) * rng.uniform(0.005, 0.03, n),
                     columns=[f"A{i}" for i in range(n)])
    fc = FactorCovariance.from_ols(X, F)
    # (save_problem: the CVXPY program, whose raw point this is about)
    params = dict(covariance=fc, max_weights=0.01, groups=[[f"G{i % 10}" for i in range(n)]],
                  linear_constraints=["G0 <= 0.05", "G1 >= 0.15"], save_problem=True)
    raw = MaximumDiversification(polish=False, **params).fit().weights_.to_numpy()
    model = MaximumDiversification(**params).fit()
    w = model.weights_.to_numpy()
    violation = np.clip(-raw, 0, None).sum() + np.clip(raw - 0.01, 0, None).sum()
    assert np.count_nonzero(raw < 0) > 100 and violation > 1e-9
    assert model.polish_.applied
    assert w.min() == 0.0 and w.max() == 0.01 and np.count_nonzero(w == 0.0) > 800
    cov = fc.covariance.to_numpy()
    sigma = np.sqrt(np.diag(cov))
    r_raw, r_pol = ratio(raw, cov), ratio(w, cov)
    change = r_pol / r_raw - 1
    assert change == pytest.approx(model.polish_.ratio_change, abs=1e-12)
    assert change < -1e-9  # more than the plain tolerance ...
    risk = np.sqrt(raw @ cov @ raw)
    gradient = (sigma - r_raw * cov @ raw / risk) / risk
    assert change >= -(1e-9 + 2 * np.max(np.abs(gradient)) * violation / r_raw)  # ... as allowed
    groups = np.array([i % 10 for i in range(n)])
    assert w[groups == 0].sum() <= 0.05 + EXACT and w[groups == 1].sum() >= 0.15 - EXACT
    assert abs(w.sum() - 1) <= EXACT


def test_repair_cost_counts_bound_and_row_violations(X):
    from xl_factorlasso.core.optimization._polish import repair_cost

    model = MaximumDiversification(groups=GROUPS, linear_constraints=["Equity <= 0.2",
                                                                      "2 * US >= 0.2"]).fit(X)
    spec = model._spec
    gradient = np.linspace(-3.0, 2.0, 20)  # max |g| = 3
    w = np.full(20, 0.05)  # Equity = 0.15, 2 * US = 0.2: feasible (to round-off), nothing to repair
    assert repair_cost(spec, w, None, gradient) <= 1e-14
    w[19], w[18] = -1e-9, 0.1 + 1e-9  # a bound broken by 1e-9 (the budget holds): 2 * 3 * 1e-9
    assert repair_cost(spec, w, None, gradient) == pytest.approx(6e-9, rel=1e-6)
    w = np.full(20, 0.05)
    w[0], w[19] = 0.1 + 4e-9, 0.0  # Equity and the budget both over by 4e-9 (coefficients 1)
    assert repair_cost(spec, w, None, gradient) == pytest.approx(2 * 3 * 8e-9, rel=1e-6)
    w = np.full(20, 0.05)
    w[1], w[19] = 0.05 - 1e-9, 0.05 + 1e-9  # 2 * US short by 2e-9, through coefficient 2
    assert repair_cost(spec, w, None, gradient) == pytest.approx(2 * 3 * 1e-9, rel=1e-6)
