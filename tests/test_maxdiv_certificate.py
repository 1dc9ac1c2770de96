"""The dense path's certificate with linear constraints (``_certificate._dual_bound``): its
multipliers are fitted to the point's stationarity with every active row and bound, so an
optimum certifies when rows hold assets at their bounds, and any multipliers it evaluates are
checked dual feasible, so a point away from the optimum is still refused.

The problems are small random draws (:func:`sweep_problem`: caps, a group equality and a group
inequality, or rows of one asset) on which the pivoting's point was optimal (its ratio equal
to CVXPY's, or above it, to round-off) and the earlier fit's certificate read it as 0.093 (a
group row through capped assets) or gave no bound at all (rows of one asset).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from tests.test_maxdiv_dense import ratio
from xl_factorlasso.core.optimization import MaximumDiversification, _certificate, _dense

# n = 8, caps 0.2: G0 (assets 2, 3, 4) == 0.205, G1 (assets 0, 5, 7) <= 0.395; at the optimum
# assets 1, 5 and 6 sit at the cap and G1 binds with asset 5 capped in it.
SD = np.array([0.01779994167955683, 0.01785883009773303, 0.03462033148658074,
               0.027187997987906363, 0.038290877712255596, 0.006137812201713572,
               0.015430984961661122, 0.008631660839322914])
LOADING = np.array([0.009836433091765951, 0.011667861279925234, -0.003138231254212967,
                    -0.0044164755352285, -0.006264980551801781, 0.0033820454335169894,
                    0.005930388898252541, 0.0054143959449896055])
LABELS = ["G1", "G2", "G0", "G0", "G0", "G1", "G2", "G1"]
CAP = 0.2
RULES = ["G0 == 0.205", "G1 <= 0.395"]

# n = 5, caps 0.3: a row on asset 4 alone (== 0.115) and one on asset 1 (<= 0.088); at the
# optimum assets 0 and 2 are capped and asset 3 is the only free one.
SD_ONE = np.array([0.028422928143528925, 0.014627851346438615, 0.006363924661236778,
                   0.04643568429025483, 0.010489392123344004])
LOADING_ONE = np.array([-4.5682113475222835e-03, -1.9085001869622983e-03,
                        -8.7497181007483386e-03, 4.5788319147004610e-05,
                        5.9291428523959681e-03])
LABELS_ONE = ["G2", "G1", "G2", "G2", "G0"]
CAP_ONE = 0.3
RULES_ONE = ["G0 == 0.115", "G1 <= 0.088"]


def fit_params(sd, loading, labels, cap, rules):
    """``MaximumDiversification`` arguments and returns (their covariance is not read)."""
    names = [f"x{i}" for i in range(sd.size)]
    cov = np.diag(sd**2) + np.outer(loading, loading)
    X = pd.DataFrame(np.random.default_rng(0).normal(0.0, 0.01, (50, sd.size)), columns=names)
    params = dict(covariance=pd.DataFrame(cov, index=names, columns=names),
                  groups=pd.DataFrame([labels], columns=names, index=["group"]),
                  linear_constraints=rules, max_weights=cap)
    return X, cov, params


def arrays(sd, loading, labels, cap, rules):
    """``(cov, a, box, rows)`` of the homogenised program for the same problem."""
    cov = np.diag(sd**2) + np.outer(loading, loading)
    a = np.sqrt(np.diag(cov))
    matrix, rhs, equality = [], [], []
    for rule in rules:
        group, sense, value = rule.split()
        matrix.append([float(label == group) for label in labels])
        rhs.append(float(value))
        equality.append(sense == "==")
    rows = _dense._Rows(np.array(matrix), np.array(rhs), np.array(equality))
    box = _dense._Box(np.zeros(sd.size), np.full(sd.size, cap), 1.0)
    return cov, a, box, rows


@pytest.mark.parametrize("problem", [(SD, LOADING, LABELS, CAP, RULES),
                                     (SD_ONE, LOADING_ONE, LABELS_ONE, CAP_ONE, RULES_ONE)],
                         ids=["group row through capped assets", "rows of one asset"])
def test_optimum_with_rows_on_bound_assets_is_certified(old_path, problem):
    """The pivoting's point certifies (before: a bound of 0.093, and none with one free asset,
    so the fit fell back to CVXPY), and the fit's ratio is CVXPY's to 1e-6."""
    cov, a, box, rows = arrays(*problem)
    y, _ = _dense._pivot_dense(cov, a, box, rows)
    assert _dense.relative_gap(cov, a, y, box, None, rows) <= _dense.GAP_TOLERANCE
    X, cov, params = fit_params(*problem)
    ours = MaximumDiversification(**params).fit(X)
    reference = old_path(X, **params)
    assert ours.solve_.path == "dense" and ours.solve_.note == ""
    assert ours.solve_.relative_gap <= _dense.GAP_TOLERANCE
    assert reference.solve_.path == "cvxpy"
    w, w_ref = ours.weights_.to_numpy(), reference.weights_.to_numpy()
    assert ratio(w, cov) == pytest.approx(ratio(w_ref, cov), rel=1e-6)
    assert ratio(w, cov) >= ratio(w_ref, cov) * (1 - 1e-9)
    np.testing.assert_allclose(w, y / y.sum(), atol=1e-12, rtol=0)


@pytest.mark.parametrize("step", [1e-4, 1e-2])
@pytest.mark.parametrize("pair", [(2, 3), (0, 7), (7, 5)],
                         ids=["within G0", "within G1", "off the cap in G1"])
def test_points_moved_off_the_optimum_are_refused(pair, step):
    """A feasible point moved off the optimum (weight shifted between two assets of a row, so
    the rows and bounds still hold) is refused: its bound is at least its true loss of ratio,
    above the tolerance, and within 10x of that loss (before: 0.093 at every such point)."""
    cov, a, box, rows = arrays(SD, LOADING, LABELS, CAP, RULES)
    y, _ = _dense._pivot_dense(cov, a, box, rows)
    w_star = np.clip(y / y.sum(), 0.0, CAP)  # (a capped weight may round an ulp above)
    w = w_star.copy()
    w[pair[0]] += step
    w[pair[1]] -= step
    assert np.all(w >= 0) and np.all(w <= CAP)
    np.testing.assert_allclose(rows.matrix @ w, rows.matrix @ w_star, atol=1e-15, rtol=0)
    loss = ratio(w_star, cov) / ratio(w, cov) - 1.0
    gap = _dense.relative_gap(cov, a, w, box, None, rows)
    assert _dense.GAP_TOLERANCE < loss <= gap <= 10.0 * loss


def test_dual_points_are_checked_feasible():
    """The multipliers fitted at the optimum are dual feasible and their value is ``f`` to
    round-off; each sign the dual needs, broken, makes the value ``-inf`` rather than a bound."""
    cov, a, box, rows = arrays(SD, LOADING, LABELS, CAP, RULES)
    y, _ = _dense._pivot_dense(cov, a, box, rows)
    y = y / (a @ y)
    g = 2.0 * cov @ y
    f = float(y @ cov @ y)
    system = _certificate._stationarity(a, y, g, box, None, rows)
    point = system.dual_point(system.fit(bounded=True))
    factor = np.linalg.cholesky(cov)

    def inverse(v):
        return np.linalg.solve(factor.T, np.linalg.solve(factor, v))

    assert _certificate._dual_feasible(point, box, None, rows)
    assert _certificate._dual_value(point, a, box, None, rows, inverse) == pytest.approx(
        f, rel=1e-12)
    assert point.pi[1] > 0 and np.all(point.up[[0, 2, 3, 4, 7]] == 0)  # G1 binds; uncapped
    k = _certificate._t_coefficient(point, box, None, rows)
    broken = [
        replace(point, pi=point.pi * np.array([1.0, -1.0])),  # an inequality's pi < 0
        replace(point, up=-point.up),  # an upper bound's u < 0
        replace(point, mu=point.mu - (abs(k) + 1e-3) / box.budget),  # k < 0
        replace(point, s=np.full(8, 1e-3)),  # costs' s without costs
        replace(point, nu=np.nan),
    ]
    for bad in broken:
        assert not _certificate._dual_feasible(bad, box, None, rows)
        assert _certificate._dual_value(bad, a, box, None, rows, inverse) == -np.inf
    costs = _dense._Costs(np.full(8, 1e-3), np.full(8, 1 / 8))
    too_much = replace(point, s=np.full(8, 2e-3 * point.nu))  # |s| > nu c
    assert not _certificate._dual_feasible(too_much, box, costs, rows)
    unbounded = _dense._Box(np.zeros(8), np.full(8, np.inf), 1.0)  # u with no upper bound
    assert not _certificate._dual_feasible(point, unbounded, None, rows)


def sweep_problem(seed: int):
    """Draw ``seed`` of a random search over small problems with rows on bound assets: n in
    5..11, one-factor or diagonal covariance, caps 0.2-0.3, one or two group rows (the first an
    equality). The problems above are its draws 1772 and 47 written out."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 12))
    sd = 10 ** rng.uniform(-2.3, -1.3, n)
    cov, a = np.diag(sd**2), sd.copy()
    if rng.random() < 0.5:
        loading = rng.normal(0, 0.01, (n, 1))
        cov = cov + loading @ loading.T
        a = np.sqrt(np.diag(cov))
    cap = float(rng.choice([0.2, 0.25, 0.3]))
    box = _dense._Box(np.zeros(n), np.full(n, cap), 1.0)
    groups = rng.integers(0, 3, n)
    matrix, rhs, equality = [], [], []
    for j in range(int(rng.integers(1, 3))):
        members = (groups == j).astype(float)
        if members.sum() == 0:
            continue
        matrix.append(members)
        rhs.append(round(float(rng.uniform(0.05, 0.6) * members.sum() / n * 2), 3))
        equality.append(j == 0)
    return cov, a, box, _dense._Rows(np.array(matrix), np.array(rhs), np.array(equality))


# the draws of seeds 0..3000 (n * cap >= 1.3) whose pivoting point was refused (every one
# optimal: CVXPY's dual at full accuracy equals f to 1e-14)
UNCERTIFIED_BEFORE = [47, 123, 158, 430, 445, 548, 827, 1772, 1867, 1914, 1980, 2117]


def test_the_sweeps_refused_optima_are_certified_and_their_neighbours_bounded():
    """Every such draw's optimum certifies, and feasible points between it and another
    feasible point (the optimum of a random diagonal covariance under the same constraints)
    have a bound of at least their true loss, refused once that loss exceeds the tolerance."""
    rng = np.random.default_rng(0)
    refused = 0
    for seed in UNCERTIFIED_BEFORE:
        cov, a, box, rows = sweep_problem(seed)
        y, _ = _dense._pivot_dense(cov, a, box, rows)
        assert _dense.relative_gap(cov, a, y, box, None, rows) <= _dense.GAP_TOLERANCE, seed
        w_star = y / y.sum()
        other, _ = _dense._pivot_dense(np.diag(rng.uniform(0.5, 2.0, a.size) * np.diag(cov)), a,
                                       box, rows)
        other = other / other.sum()
        for mix in (1e-6, 1e-4, 1e-2, 0.5):
            w = (1 - mix) * w_star + mix * other
            loss = ratio(w_star, cov) / ratio(w, cov) - 1.0
            gap = _dense.relative_gap(cov, a, w, box, None, rows)
            assert gap >= loss * (1 - 1e-6), seed
            assert loss <= _dense.GAP_TOLERANCE or gap > _dense.GAP_TOLERANCE, seed
            refused += gap > _dense.GAP_TOLERANCE
    assert refused >= 24


@pytest.mark.parametrize("seed", [1772, 827])
@pytest.mark.parametrize("step", [0.0, 1e-3], ids=["optimum", "moved"])
def test_the_working_set_solves_the_whole_bounded_least_squares(seed, step):
    """The bounded fit keeps only the sign-breaking multipliers as variables; its residual is
    the whole system's bounded least squares' (``lsq_linear`` on every multiplier), as the
    eliminated ones are a relaxation that ends within their signs: at the optimum (round-off)
    and at a point moved off it within the rows (the same bounds active, a residual left)."""
    from scipy.optimize import lsq_linear

    cov, a, box, rows = sweep_problem(seed)
    y, _ = _dense._pivot_dense(cov, a, box, rows)
    w = y / y.sum()
    free = np.flatnonzero((w > 1e-9) & (w < box.upper - 1e-9))
    pair = [j for j in free if rows.matrix[:, j] @ rows.matrix[:, free[0]] == rows.matrix[:, free[0]] @ rows.matrix[:, free[0]] and np.all(rows.matrix[:, j] == rows.matrix[:, free[0]])][:2]
    w[pair[0]] += step
    w[pair[1]] -= step
    y = w / (a @ w)
    g = 2.0 * cov @ y
    system = _certificate._stationarity(a, y, g, box, None, rows)
    assert not system.within_signs(system.fit())  # the case the bounded fit is for
    held = system.fit(bounded=True)
    assert system.within_signs(held)
    bound = system.bound
    n = system.core.shape[0]
    unit = np.zeros((n + 1, int(bound.sum())))
    unit[np.flatnonzero(bound), np.arange(int(bound.sum()))] = 1.0
    unit[n] = system.weight[bound]
    whole = np.hstack([np.vstack([system.core, system.h]), unit])
    rhs = np.append(g, 0.0)
    reference = lsq_linear(whole, rhs, bounds=system._limits(0.0), method="bvls", tol=1e-15)
    residual = np.linalg.norm(whole @ held - rhs)
    least = np.linalg.norm(whole @ reference.x - rhs)
    assert residual <= least * (1 + 1e-9) + 1e-14 * np.abs(g).max()
    if step == 0:
        assert residual <= 1e-14 * np.abs(g).max()  # stationary to round-off
    else:
        assert least > 1e-6 * np.abs(g).max()  # a residual that the fits compare on
