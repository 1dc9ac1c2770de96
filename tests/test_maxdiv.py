"""MaximumDiversification against independent references: the study's S&P 500 numbers, skfolio
itself, and a Charnes–Cooper model written here. Every constraint is checked on the weights."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pandas as pd
import pytest

from xl_factorlasso.core.covariance import FactorCovariance
from xl_factorlasso.core.optimization import MaximumDiversification, _dense, ewma_covariance
from xl_factorlasso.core.optimization import _screening as md

skd = pytest.importorskip("skfolio.datasets")
from skfolio.optimization import MaximumDiversification as SkMaxDiv  # noqa: E402
from skfolio.preprocessing import prices_to_returns  # noqa: E402

D_REL = 1e-5  # diversification ratio, relative
W_ABS = 1e-3  # weights, absolute (max-diversification optima are flat)
TOL = 1e-6  # constraint satisfaction on returned weights

UPSTREAM_GROUPS = [["Equity"] * 3 + ["Fund"] * 5 + ["Bond"] * 12,
                   ["US"] * 2 + ["Europe"] * 8 + ["Japan"] * 10]
UPSTREAM_CONSTRAINTS = ["Equity <= 0.5 * Bond", "US >= 0.1", "Europe >= 0.5 * Fund", "Japan <= 1"]


# ------------------------------------------------------------------------- data & helpers


@pytest.fixture(scope="module")
def sp500():
    return prices_to_returns(skd.load_sp500_dataset())


@pytest.fixture(scope="module")
def sp500_2014(sp500):
    return sp500.loc["2014":]


@pytest.fixture(scope="module")
def sp500_factors():
    return prices_to_returns(skd.load_sp500_dataset(), skd.load_factors_dataset())


def make_returns(n, T, seed):
    """Five latent factors plus idiosyncratic noise at daily scale."""
    rng = np.random.default_rng(seed)
    factors = rng.normal(0.0003, 0.01, (T, 5))
    loadings = rng.normal(0.5, 0.5, (n, 5))
    noise = rng.normal(0, 1, (T, n)) * rng.uniform(0.005, 0.03, n)
    return pd.DataFrame(factors @ loadings.T + noise, columns=[f"A{i:04d}" for i in range(n)])


def diversification(w, cov):
    sigma = np.sqrt(np.diag(cov))
    return float(sigma @ w / np.sqrt(w @ cov @ w))


def net_ratio(w, cov, *, rf=0.0, fees=0.0, costs=0.0, previous=0.0, l1=0.0, l2=0.0):
    """The objective the estimator maximises, evaluated directly in weights."""
    sigma = np.sqrt(np.diag(cov))
    num = sigma @ w - np.sum(fees * w) - np.sum(costs * np.abs(w - previous)) - rf
    den = np.sqrt(w @ cov @ w) + l1 * np.abs(w).sum() + l2 * (w @ w)
    return float(num / den)


def charnes_cooper(cov, *, lower=0.0, upper=1.0, budget=1.0, A_ub=None, b_ub=None, A_eq=None,
                   b_eq=None, previous=None, turnover=None, l1=0.0, l2=0.0, costs=None, fees=None,
                   rf=0.0):
    """Independent homogenised model: numerator normalised to 1, Cholesky cone, t free but >= 0
    by the bounds. Written from the maths, sharing no code with the package."""
    n = cov.shape[0]
    sigma = np.sqrt(np.diag(cov))
    L = np.linalg.cholesky(cov)
    y, k = cp.Variable(n), cp.Variable()
    pw = np.zeros(n) if previous is None else np.broadcast_to(previous, (n,))
    num = (sigma - (0 if fees is None else fees)) @ y
    if costs is not None:
        num = num - cp.sum(cp.multiply(costs, cp.abs(y - pw * k)))
    cons = [num - rf * k >= 1, k >= 0]
    if lower is not None:
        cons.append(y >= np.broadcast_to(lower, (n,)) * k)
    if upper is not None:
        cons.append(y <= np.broadcast_to(upper, (n,)) * k)
    if budget is not None:
        cons.append(cp.sum(y) == budget * k)
    if A_ub is not None:
        cons.append(A_ub @ y <= b_ub * k)
    if A_eq is not None:
        cons.append(A_eq @ y == b_eq * k)
    if turnover is not None:
        cons.append(cp.abs(y - pw * k) <= turnover * k)
    objective = cp.norm(L.T @ y) + l1 * cp.norm1(y)
    if l2:
        objective = objective + l2 * cp.quad_over_lin(y, k)
    cp.Problem(cp.Minimize(objective), cons).solve(
        solver="CLARABEL", tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
    return y.value / k.value


def assert_same_solution(w, w_ref, value, value_ref):
    assert value == pytest.approx(value_ref, rel=D_REL)
    np.testing.assert_allclose(np.asarray(w, dtype=float), np.asarray(w_ref, dtype=float),
                               atol=W_ABS, rtol=0)


def group_vector(labels, name):
    return np.array([1.0 if label == name else 0.0 for label in labels])


# ---------------------------------------------------------- the study's S&P 500 numbers


@pytest.mark.parametrize(
    "params, expected",
    [
        ({}, 1.870761),
        ({"max_weights": 0.08}, 1.863168),
        ({"min_weights": -0.2, "max_weights": 0.3}, 1.875105),
        ({"groups": UPSTREAM_GROUPS, "linear_constraints": UPSTREAM_CONSTRAINTS}, 1.870762),
    ],
    ids=["default", "max_weights", "long_short", "groups"],
)
def test_sp500_reference_numbers(sp500, params, expected):
    model = MaximumDiversification(**params).fit(sp500)
    cov = sp500.cov().to_numpy()
    w = model.weights_.to_numpy()
    assert diversification(w, cov) == pytest.approx(expected, rel=D_REL)
    assert model.predict(sp500).diversification == pytest.approx(expected, rel=D_REL)
    values = model.problem_values_
    assert values["expected_return"] / values["risk"] == pytest.approx(expected, rel=D_REL)
    sk = SkMaxDiv(**params).fit(sp500)
    assert_same_solution(w, sk.weights_, diversification(w, cov),
                         diversification(sk.weights_, cov))
    assert w.sum() == pytest.approx(1.0, abs=TOL)
    lower = params.get("min_weights", 0.0)
    upper = params.get("max_weights", 1.0)
    assert w.min() >= lower - TOL and w.max() <= upper + TOL


def test_sp500_upstream_docstring_weights(sp500):
    # skfolio's docstring prints these weights for the default fit on the full data set.
    w = MaximumDiversification().fit(sp500).weights_.to_numpy()
    np.testing.assert_allclose(w[[0, 1, 2, -3, -2, -1]],
                               [0.0821, 0.0697, 0.0243, 0.0945, 0.0893, 0.0143], atol=1e-3)


@pytest.mark.parametrize("l1, expected", [(0.001, 1.868), (0.01, 1.716), (0.1, 1.325)])
def test_sp500_l1_reference_numbers(sp500, l1, expected):
    # The study: l1 concentrates a long-only, fully invested portfolio (D to 3 decimals).
    w = MaximumDiversification(l1_coef=l1).fit(sp500).weights_.to_numpy()
    assert diversification(w, sp500.cov().to_numpy()) == pytest.approx(expected, abs=6e-4)


def test_sp500_min_return_binds_on_weighted_volatility(sp500):
    model = MaximumDiversification(min_return=0.025).fit(sp500)
    assert model.problem_values_["expected_return"] == pytest.approx(0.025, abs=1e-7)
    assert sp500.std().to_numpy() @ model.weights_.to_numpy() == pytest.approx(0.025, abs=1e-7)


def test_costs_keep_previous_weights_and_fees_equal_risk_free_rate(sp500_2014):
    X = sp500_2014
    # The study: with c = 0.01 and previous = 1/n the optimiser stays exactly at previous.
    w = MaximumDiversification(transaction_costs=0.01, previous_weights=1 / 20).fit(X).weights_
    np.testing.assert_allclose(w, 1 / 20, atol=1e-6)
    # With budget 1, a flat fee f is the same as r_f = f.
    fees = MaximumDiversification(management_fees=0.001).fit(X).weights_
    rf = MaximumDiversification(risk_free_rate=0.001).fit(X).weights_
    np.testing.assert_allclose(fees, rf, atol=1e-6)
    assert np.max(np.abs(rf - MaximumDiversification().fit(X).weights_)) > 1e-3


def test_dict_groups_equal_array_groups(sp500_2014):
    X = sp500_2014
    constraints = ["Equity >= 0.3", "US >= 0.15", "Japan <= 0.4"]
    by_asset = {asset: [UPSTREAM_GROUPS[0][i], UPSTREAM_GROUPS[1][i]]
                for i, asset in enumerate(X.columns)}
    a = MaximumDiversification(groups=UPSTREAM_GROUPS, linear_constraints=constraints).fit(X)
    b = MaximumDiversification(groups=by_asset, linear_constraints=constraints).fit(X)
    np.testing.assert_allclose(a.weights_, b.weights_, atol=1e-8)
    assert a.weights_.iloc[:3].sum() >= 0.3 - TOL


# ---------------------------------------------------------------- skfolio, live configs


def _sk_configs(X):
    assets = list(X.columns)
    n = len(assets)
    rng = np.random.default_rng(7)
    previous = rng.dirichlet(np.ones(n))
    left = np.vstack([np.r_[np.ones(3), np.zeros(n - 3)], np.r_[np.zeros(n - 5), -np.ones(5)]])
    right = np.array([0.15, -0.3])
    labels0, labels1 = UPSTREAM_GROUPS
    eq, bond = group_vector(labels0, "Equity"), group_vector(labels0, "Bond")
    us, japan = group_vector(labels1, "US"), group_vector(labels1, "Japan")
    cfgs = {
        "groups_binding": dict(
            params=dict(groups=UPSTREAM_GROUPS,
                        linear_constraints=["Equity >= 0.3", "US >= 0.15", "Japan <= 0.4",
                                            "Bond == 2 * Equity"]),
            checks=[lambda w: 0.3 - eq @ w, lambda w: 0.15 - us @ w, lambda w: japan @ w - 0.4,
                    lambda w: abs(bond @ w - 2 * eq @ w)]),
        "asset_names": dict(
            params=dict(linear_constraints=[f"{assets[0]} + {assets[1]} >= 0.25",
                                            f"{assets[2]} <= 0.5 * {assets[3]}"]),
            checks=[lambda w: 0.25 - w[0] - w[1], lambda w: w[2] - 0.5 * w[3]]),
        "dict_bounds": dict(
            params=dict(min_weights={assets[0]: 0.1, assets[5]: 0.05},
                        max_weights={assets[1]: 0.02, assets[4]: 0.0}),
            checks=[lambda w: 0.1 - w[0], lambda w: 0.05 - w[5], lambda w: w[1] - 0.02,
                    lambda w: w[4], lambda w: -w.min()]),
        "budget_half": dict(params=dict(budget=0.5, max_weights=0.1),
                            checks=[lambda w: abs(w.sum() - 0.5), lambda w: w.max() - 0.1]),
        "long_short_caps": dict(
            params=dict(min_weights=-0.3, max_weights=0.4, max_short=0.2, max_long=1.15),
            checks=[lambda w: np.clip(-w, 0, None).sum() - 0.2,
                    lambda w: np.clip(w, 0, None).sum() - 1.15, lambda w: -0.3 - w.min()]),
        "inequality_matrix": dict(params=dict(left_inequality=left, right_inequality=right),
                                  checks=[lambda w: np.max(left @ w - right)]),
        "turnover": dict(params=dict(max_turnover=0.02, previous_weights=previous),
                         checks=[lambda w: np.max(np.abs(w - previous)) - 0.02]),
        "turnover_no_previous": dict(params=dict(max_turnover=0.1),
                                     checks=[lambda w: np.max(np.abs(w)) - 0.1]),
        "rf": dict(params=dict(risk_free_rate=0.01), ratio=dict(rf=0.01), checks=[]),
        "fees": dict(params=dict(management_fees={assets[0]: 0.002, assets[7]: 0.004}),
                     ratio=dict(fees=np.r_[0.002, np.zeros(6), 0.004, np.zeros(n - 8)]),
                     checks=[]),
        "costs": dict(params=dict(transaction_costs=0.002, previous_weights=previous),
                      ratio=dict(costs=0.002, previous=previous), checks=[]),
        "l1": dict(params=dict(l1_coef=0.01), ratio=dict(l1=0.01), checks=[]),
        "min_return": dict(params=dict(min_return=0.024),
                           checks=[lambda w: 0.024 - np.sqrt(np.diag(X.cov())) @ w]),
        "scaled": dict(params=dict(scale_objective=100.0, scale_constraints=100.0), checks=[]),
    }
    return cfgs


SK_CONFIGS = list(_sk_configs(pd.DataFrame(np.zeros((3, 20)), columns=[f"c{i}" for i in
                                                                          range(20)])))


@pytest.mark.parametrize("name", SK_CONFIGS)
def test_matches_skfolio(sp500_2014, name):
    X = sp500_2014
    cfg = _sk_configs(X)[name]
    cov = X.cov().to_numpy()
    model = MaximumDiversification(**cfg["params"]).fit(X)
    sk = SkMaxDiv(**cfg["params"]).fit(X)
    w = model.weights_.to_numpy()
    ratio = cfg.get("ratio", {})
    assert_same_solution(w, sk.weights_, net_ratio(w, cov, **ratio),
                         net_ratio(sk.weights_, cov, **ratio))
    assert model.problem_values_["ratio"] == pytest.approx(net_ratio(w, cov, **ratio), rel=1e-9)
    budget = cfg["params"].get("budget", 1.0)
    assert w.sum() == pytest.approx(budget, abs=TOL)
    for check in cfg["checks"]:
        assert check(w) <= TOL * (1 + abs(check(np.zeros_like(w))))
    lower = cfg["params"].get("min_weights", 0.0)
    if np.isscalar(lower):
        assert w.min() >= lower - TOL


def test_min_budget_max_budget_matches_skfolio_ratio(sp500_2014):
    X = sp500_2014
    cov = X.cov().to_numpy()
    params = dict(budget=None, min_budget=0.9, max_budget=1.1, max_weights=0.12)
    w = MaximumDiversification(**params).fit(X).weights_.to_numpy()
    sk = SkMaxDiv(**params).fit(X)
    # With budget=None the ratio is scale-invariant: compare the ratio, check the bounds.
    assert diversification(w, cov) == pytest.approx(diversification(sk.weights_, cov), rel=D_REL)
    assert 0.9 - TOL <= w.sum() <= 1.1 + TOL
    assert w.max() <= 0.12 + TOL and w.min() >= -TOL


def test_tracking_error_matches_skfolio(sp500_2014):
    X = sp500_2014
    bench = X.mean(axis=1)
    params = dict(max_tracking_error=0.002)
    model = MaximumDiversification(**params).fit(X, bench)
    sk = SkMaxDiv(**params).fit(X, bench)
    w = model.weights_.to_numpy()
    cov = X.cov().to_numpy()
    rmse = np.linalg.norm(X.to_numpy() @ w - bench.to_numpy()) / np.sqrt(len(X) - 1)
    assert rmse == pytest.approx(0.002, rel=1e-5)  # binding
    unconstrained = MaximumDiversification().fit(X).weights_.to_numpy()
    assert np.linalg.norm(X.to_numpy() @ unconstrained - bench) / np.sqrt(len(X) - 1) > 0.0025
    assert_same_solution(w, sk.weights_, diversification(w, cov), diversification(sk.weights_, cov))


def test_min_return_array_matches_skfolio(sp500_2014):
    X = sp500_2014
    targets = [0.02, 0.0235, 0.025]
    model = MaximumDiversification(min_return=targets).fit(X)
    sk = SkMaxDiv(min_return=targets).fit(X)
    assert isinstance(model.weights_, pd.DataFrame) and model.weights_.shape == (3, 20)
    sigma = X.std().to_numpy()
    for row, sk_row, target, values in zip(model.weights_.to_numpy(), sk.weights_, targets,
                                           model.problem_values_, strict=True):
        assert sigma @ row >= target - TOL
        assert values["expected_return"] == pytest.approx(sigma @ row)
        np.testing.assert_allclose(row, sk_row, atol=W_ABS)
    population = model.predict(X)
    assert len(population) == 3
    assert population.summary().shape[0] == 3


@pytest.mark.parametrize("n", [50, 200])
def test_reference_config_b_synthetic_matches_skfolio(n):
    # Configuration (b) of the study: groups, linear constraints, turnover, previous, l1.
    X = make_returns(n, max(2 * n, 500), 20240611 + n)
    groups = [[f"Sector{i % 5}" for i in range(n)], [["US", "EU", "ASIA"][i % 3] for i in range(n)]]
    params = dict(groups=groups,
                  linear_constraints=["Sector0 <= 0.30", "US >= 0.40", "EU <= 0.35",
                                      "Sector1 >= 0.5 * Sector2", "Sector3 + Sector4 <= 0.45"],
                  max_turnover=0.05, previous_weights=1 / n, l1_coef=1e-3)
    model = MaximumDiversification(**params).fit(X)
    sk = SkMaxDiv(**params).fit(X)
    w = model.weights_.to_numpy()
    cov = X.cov().to_numpy()
    assert_same_solution(w, sk.weights_, net_ratio(w, cov, l1=1e-3),
                         net_ratio(sk.weights_, cov, l1=1e-3))
    sector = np.array([i % 5 for i in range(n)])
    region = np.array([i % 3 for i in range(n)])
    assert w[sector == 0].sum() <= 0.30 + TOL
    assert w[region == 0].sum() >= 0.40 - TOL
    assert w[region == 1].sum() <= 0.35 + TOL
    assert w[sector == 1].sum() >= 0.5 * w[sector == 2].sum() - TOL
    assert w[(sector == 3) | (sector == 4)].sum() <= 0.45 + TOL
    assert np.max(np.abs(w - 1 / n)) <= 0.05 + TOL
    assert w.min() >= -TOL and w.sum() == pytest.approx(1.0, abs=TOL)


# ------------------------------------------------------ independent Charnes–Cooper model


@pytest.fixture(scope="module")
def synthetic50():
    return make_returns(50, 500, 11)


@pytest.mark.parametrize(
    "params, reference, ratio",
    [
        ({}, {}, {}),
        ({"max_weights": 0.05}, {"upper": 0.05}, {}),
        ({"min_weights": -0.1, "max_weights": 0.2}, {"lower": -0.1, "upper": 0.2}, {}),
        # Market neutral: r_f > 0 pins the scale of the weights (with r_f = 0 and budget 0 the
        # ratio is scale-invariant and any point on the optimal ray is a solution).
        ({"budget": 0.0, "min_weights": -0.2, "max_weights": 0.2, "risk_free_rate": 0.001},
         {"budget": 0.0, "lower": -0.2, "upper": 0.2, "rf": 0.001}, {"rf": 0.001}),
        ({"l1_coef": 0.005}, {"l1": 0.005}, {"l1": 0.005}),
        ({"l2_coef": 0.05}, {"l2": 0.05}, {"l2": 0.05}),
        ({"risk_free_rate": 0.004}, {"rf": 0.004}, {"rf": 0.004}),
        ({"transaction_costs": 0.001, "previous_weights": 0.02},
         {"costs": 0.001, "previous": 0.02}, {"costs": 0.001, "previous": 0.02}),
        ({"max_turnover": 0.03, "previous_weights": 0.02},
         {"turnover": 0.03, "previous": 0.02}, {}),
    ],
    ids=["default", "max_weights", "long_short", "market_neutral", "l1", "l2", "rf", "costs",
         "turnover"],
)
def test_matches_independent_charnes_cooper(synthetic50, params, reference, ratio):
    X = synthetic50
    cov = X.cov().to_numpy()
    w = MaximumDiversification(**params).fit(X).weights_.to_numpy()
    w_ref = charnes_cooper(cov, **reference)
    assert_same_solution(w, w_ref, net_ratio(w, cov, **ratio), net_ratio(w_ref, cov, **ratio))


def test_l2_is_a_denominator_penalty_brute_force():
    # l2 maximises (sigma'w) / (sigma_p + l2 |w|^2) exactly: check against a direct nonlinear
    # search over the simplex on a small problem (no homogenisation involved).
    from scipy.optimize import minimize

    X = make_returns(6, 400, 3)
    cov = X.cov().to_numpy()
    l2 = 0.02
    w = MaximumDiversification(l2_coef=l2).fit(X).weights_.to_numpy()
    best = -np.inf
    rng = np.random.default_rng(0)
    for _ in range(8):
        res = minimize(lambda v: -net_ratio(v, cov, l2=l2), rng.dirichlet(np.ones(6)),
                       method="SLSQP", bounds=[(0, 1)] * 6,
                       constraints=[{"type": "eq", "fun": lambda v: v.sum() - 1}],
                       options={"ftol": 1e-14, "maxiter": 500})
        best = max(best, -res.fun)
    assert net_ratio(w, cov, l2=l2) == pytest.approx(best, rel=1e-6)
    plain = MaximumDiversification().fit(X).weights_.to_numpy()
    assert net_ratio(w, cov, l2=l2) > net_ratio(plain, cov, l2=l2) + 1e-6  # it changes the answer


def test_results_do_not_depend_on_the_level_of_returns(synthetic50):
    # Every term is homogeneous, so shifting all returns (mean, not covariance) changes nothing,
    # including l2 (skfolio's l2 effect moves with the mean).
    shifted = synthetic50 + 0.01
    for params in ({}, {"l2_coef": 0.05}, {"l1_coef": 0.002}):
        a = MaximumDiversification(**params).fit(synthetic50).weights_
        b = MaximumDiversification(**params).fit(shifted).weights_
        np.testing.assert_allclose(a, b, atol=1e-6)


# --------------------------------------------------------------------- factor covariance


def test_factor_covariance_matches_skfolio_time_series_factor_model(sp500_factors):
    from skfolio.prior import LoadingMatrixRegression, TimeSeriesFactorModel
    from sklearn.linear_model import LinearRegression

    X, F = sp500_factors
    fc = FactorCovariance.from_ols(X, F)
    model = MaximumDiversification(covariance=fc).fit(X)
    prior = TimeSeriesFactorModel(loading_matrix_estimator=LoadingMatrixRegression(
        LinearRegression()))
    sk = SkMaxDiv(prior_estimator=prior).fit(X, factors=F)
    cov = fc.covariance.to_numpy()
    w = model.weights_.to_numpy()
    assert_same_solution(w, sk.weights_, diversification(w, cov), diversification(sk.weights_, cov))
    assert model.problem_values_["diversification_ratio"] == pytest.approx(
        diversification(w, cov), rel=1e-9)
    # The optimiser used the factor covariance, predict uses the sample one: they differ.
    assert abs(model.predict(X).diversification - diversification(w, cov)) > 1e-3


def test_factor_covariance_lasso_reference_number(sp500_factors):
    # The study: skfolio's default TimeSeriesFactorModel (LassoCV loadings) gives D = 1.768874 on
    # the factor covariance and 1.722168 on the sample covariance. Take its B, Sigma_f and D.
    from skfolio.prior import TimeSeriesFactorModel

    X, F = sp500_factors
    fm = TimeSeriesFactorModel().fit(X, factors=F).return_distribution_.factor_model
    fc = FactorCovariance(
        loadings=pd.DataFrame(fm.loading_matrix, index=X.columns, columns=F.columns),
        factor_covariance=pd.DataFrame(fm.factor_covariance, index=F.columns, columns=F.columns),
        residual_variance=pd.Series(np.asarray(fm.idio_covariance), index=X.columns),
    )
    model = MaximumDiversification(covariance=fc).fit(X)
    values = model.problem_values_
    assert values["diversification_ratio"] == pytest.approx(1.768874, rel=D_REL)
    assert model.predict(X).diversification == pytest.approx(1.722168, rel=D_REL)


def test_factor_cone_has_no_dense_n_by_n_block():
    n = 200
    X = make_returns(n, 600, 5)
    rng = np.random.default_rng(1)
    F = pd.DataFrame(rng.normal(0, 0.01, (600, 4)), columns=list("abcd"))
    fc = FactorCovariance.from_ols(X, F)
    dense = MaximumDiversification(covariance=fc.covariance, save_problem=True).fit(X)
    factor = MaximumDiversification(covariance=fc, save_problem=True).fit(X)
    data, _, _ = factor.problem_.get_problem_data(cp.CLARABEL)
    def nnz(d):
        return d["A"].nnz + (d["P"].nnz if d.get("P") is not None else 0)

    assert nnz(data) < 20 * n  # about n x (k + 3) entries, not n^2 / 2
    dense_data, _, _ = dense.problem_.get_problem_data(cp.CLARABEL)
    assert nnz(dense_data) > n * n / 2
    assert_same_solution(factor.weights_, dense.weights_,
                         factor.problem_values_["diversification_ratio"],
                         dense.problem_values_["diversification_ratio"])


def test_factor_names_in_linear_constraints(sp500_factors):
    X, F = sp500_factors
    fc = FactorCovariance.from_ols(X, F)
    B = fc.loadings
    model = MaximumDiversification(
        covariance=fc, min_weights=-0.5,
        linear_constraints=["MTUM == 0", "USMV >= 0.3", "QUAL + VLUE <= 1.5"]).fit(X)
    w = model.weights_
    assert w @ B["MTUM"] == pytest.approx(0.0, abs=TOL)
    assert w @ B["USMV"] >= 0.3 - TOL
    assert w @ (B["QUAL"] + B["VLUE"]) <= 1.5 + TOL
    cov = fc.covariance.to_numpy()
    A_eq = B[["MTUM"]].to_numpy().T
    A_ub = np.vstack([-B["USMV"].to_numpy(), (B["QUAL"] + B["VLUE"]).to_numpy()])
    w_ref = charnes_cooper(cov, lower=-0.5, A_eq=A_eq, b_eq=np.zeros(1), A_ub=A_ub,
                           b_ub=np.array([-0.3, 1.5]))
    assert_same_solution(w, w_ref, diversification(w.to_numpy(), cov), diversification(w_ref, cov))


def test_factor_covariance_without_returns():
    X = make_returns(30, 300, 9)
    rng = np.random.default_rng(2)
    fc = FactorCovariance.from_ols(X, pd.DataFrame(rng.normal(0, 0.01, (300, 3)), columns=list("xyz")))
    with_x = MaximumDiversification(covariance=fc).fit(X).weights_
    without = MaximumDiversification(covariance=fc).fit().weights_
    pd.testing.assert_series_equal(with_x, without)
    assert list(without.index) == list(X.columns)


# -------------------------------------------------------------------- other covariances


def test_ewma_covariance_is_pandas_ewm(synthetic50):
    span = 60
    ours = ewma_covariance(synthetic50.to_numpy(), span)
    pandas_cov = synthetic50.ewm(span=span).cov().loc[synthetic50.index[-1]].to_numpy()
    np.testing.assert_allclose(ours, pandas_cov, rtol=1e-10, atol=1e-14)
    w = MaximumDiversification(span=span).fit(synthetic50).weights_.to_numpy()
    w_ref = charnes_cooper(pandas_cov)
    assert_same_solution(w, w_ref, diversification(w, pandas_cov),
                         diversification(w_ref, pandas_cov))
    plain = MaximumDiversification().fit(synthetic50).weights_.to_numpy()
    assert np.max(np.abs(plain - w)) > 1e-3  # the span changes the covariance


def test_covariance_dataframe_is_aligned_by_label(sp500_2014):
    cov = sp500_2014.cov()
    shuffled = cov.iloc[::-1, ::-1]
    a = MaximumDiversification().fit(sp500_2014).weights_
    b = MaximumDiversification(covariance=shuffled).fit(sp500_2014).weights_
    c = MaximumDiversification(covariance=cov.to_numpy()).fit(sp500_2014).weights_
    np.testing.assert_allclose(a, b, atol=1e-6)
    np.testing.assert_allclose(a, c, atol=1e-6)
    assert list(b.index) == list(sp500_2014.columns)


def test_covariance_estimator_matches_skfolio_ledoit_wolf(sp500_2014):
    from skfolio.moments import LedoitWolf as SkLedoitWolf
    from skfolio.prior import EmpiricalPrior
    from sklearn.covariance import LedoitWolf

    X = sp500_2014
    model = MaximumDiversification(covariance=LedoitWolf()).fit(X)
    sk = SkMaxDiv(prior_estimator=EmpiricalPrior(covariance_estimator=SkLedoitWolf())).fit(X)
    cov = model.covariance_.covariance_
    w = model.weights_.to_numpy()
    assert_same_solution(w, sk.weights_, diversification(w, cov), diversification(sk.weights_, cov))


# ------------------------------------------------------------------- screened dense solve


@pytest.fixture(scope="module")
def synthetic400():
    return make_returns(400, 900, 400)


@pytest.fixture
def no_dense_path(monkeypatch):
    """These tests exercise the screening: the default family would take the dense path
    (tests/test_maxdiv_dense.py) first."""
    monkeypatch.setattr(_dense, "dense_eligible", lambda spec, save_problem=False: False)


def _full_solve(monkeypatch, params, X):
    with monkeypatch.context() as patch:
        patch.setattr(md, "_SCREEN_MIN_ASSETS", 10**9)
        return MaximumDiversification(**params).fit(X)


@pytest.mark.parametrize(
    "params",
    [{}, {"max_weights": 0.01},
     {"linear_constraints": ["A0000 + A0001 >= 0.05"], "transaction_costs": 0.0005,
      "previous_weights": 1 / 400},
     {"l1_coef": 2e-3, "max_turnover": 0.02, "previous_weights": 1 / 400},  # cone form
     {"l2_coef": 0.05}],
    ids=["default", "max_weights", "rows_costs", "l1_turnover", "l2"])
def test_screened_solve_equals_full_solve(monkeypatch, synthetic400, params, no_dense_path):
    calls = []
    original = MaximumDiversification._solve_screened

    def spy(self, *args):
        out = original(self, *args)
        calls.append(out is not None)
        return out

    monkeypatch.setattr(MaximumDiversification, "_solve_screened", spy)
    screened = MaximumDiversification(**params).fit(synthetic400)
    assert calls == [True]  # the working-set path produced the answer
    full = _full_solve(monkeypatch, params, synthetic400)
    cov = synthetic400.cov().to_numpy()
    ratio = {"costs": 0.0005, "previous": 1 / 400} if "transaction_costs" in params else {}
    ratio.update(l1=params.get("l1_coef", 0.0), l2=params.get("l2_coef", 0.0))
    assert_same_solution(screened.weights_, full.weights_,
                         net_ratio(screened.weights_.to_numpy(), cov, **ratio),
                         net_ratio(full.weights_.to_numpy(), cov, **ratio))


def test_screening_adds_assets_until_certified(monkeypatch, synthetic400, no_dense_path):
    # A rank-1 surrogate misses much of the support, so the KKT test must grow the working set.
    monkeypatch.setattr(md, "_SURROGATE_RANK", 1)
    sizes = []
    original = md._build_problem

    def spy(spec, working_set=None):
        if working_set is not None:
            sizes.append(len(working_set))
        return original(spec, working_set)

    monkeypatch.setattr(md, "_build_problem", spy)
    screened = MaximumDiversification().fit(synthetic400).weights_.to_numpy()
    assert len(sizes) >= 2 and sizes == sorted(sizes) and sizes[-1] > sizes[0]
    monkeypatch.setattr(md, "_build_problem", original)
    full = _full_solve(monkeypatch, {}, synthetic400).weights_.to_numpy()
    cov = synthetic400.cov().to_numpy()
    assert_same_solution(screened, full, diversification(screened, cov), diversification(full, cov))


def test_screened_solve_matches_skfolio(synthetic400):
    X = synthetic400
    w = MaximumDiversification().fit(X).weights_.to_numpy()
    sk = SkMaxDiv().fit(X).weights_
    cov = X.cov().to_numpy()
    assert_same_solution(w, sk, diversification(w, cov), diversification(sk, cov))
