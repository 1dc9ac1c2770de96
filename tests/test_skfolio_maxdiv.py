"""xl_factorlasso.skfolio.MaximumDiversification against skfolio's own estimator.

Every comparison fits both estimators on the same inputs and compares the *objective* each
maximises, computed here from the prior's covariance (independent of either solver), to 1e-5
relative, and the weights to 1e-3 absolute (maximum-diversification optima are flat).
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("skfolio")

import cvxpy as cp  # noqa: E402
import skfolio.exceptions as skx  # noqa: E402
import sklearn  # noqa: E402
from skfolio import MultiPeriodPortfolio, Population  # noqa: E402
from skfolio import Portfolio as SkPortfolio  # noqa: E402
from skfolio.datasets import load_factors_dataset, load_sp500_dataset  # noqa: E402
from skfolio.measures import RatioMeasure  # noqa: E402
from skfolio.model_selection import WalkForward, cross_val_predict  # noqa: E402
from skfolio.moments import BaseCovariance, EWCovariance, EWMu  # noqa: E402
from skfolio.optimization import EqualWeighted  # noqa: E402
from skfolio.optimization import MaximumDiversification as SkMaxDiv  # noqa: E402
from skfolio.portfolio import FailedPortfolio  # noqa: E402
from skfolio.preprocessing import prices_to_returns  # noqa: E402
from skfolio.prior import (  # noqa: E402
    BasePrior,
    EmpiricalPrior,
    LoadingMatrixRegression,
    ReturnDistribution,
    TimeSeriesFactorModel,
)
from sklearn.base import clone  # noqa: E402
from sklearn.linear_model import LinearRegression  # noqa: E402

import xl_factorlasso.core.optimization as core  # noqa: E402
from xl_factorlasso.skfolio import (  # noqa: E402
    ConvexOptimizationError,
    InfeasibleProblemError,
    MaximumDiversification,
)

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = ["style", "quality", "style", "defensive", "style"]
SKFOLIO_FAILED = ("Solver 'CLARABEL' failed. Try another solver, or solve with "
                  "solver_params=dict(verbose=True) for more information")


@pytest.fixture(scope="module")
def X() -> pd.DataFrame:
    return prices_to_returns(load_sp500_dataset()).loc["2014":]


@pytest.fixture(scope="module")
def XF(X):
    factors = prices_to_returns(load_factors_dataset())
    return X.align(factors, join="inner", axis=0)


def _factor_prior(**kwargs) -> TimeSeriesFactorModel:
    # OLS loadings: the default LassoCV per asset costs ~1 s and adds nothing to the test
    return TimeSeriesFactorModel(
        loading_matrix_estimator=LoadingMatrixRegression(linear_regressor=LinearRegression()),
        **kwargs,
    )


def _objective(model, w, previous=None, costs=0.0, fees=0.0, r_f=0.0, l1=0.0) -> float:
    """The ratio skfolio maximises, from the fitted prior's covariance (skfolio's numbers)."""
    cov = model.prior_estimator_.return_distribution_.covariance
    sigma = np.sqrt(np.diag(cov))
    previous = np.zeros_like(w) if previous is None else previous
    numerator = sigma @ w - np.sum(costs * np.abs(w - previous)) - np.sum(fees * w) - r_f
    return float(numerator / (np.sqrt(w @ cov @ w) + l1 * np.abs(w).sum()))


def _assert_same_optimum(ours, theirs, **objective):
    assert isinstance(ours.weights_, np.ndarray)
    np.testing.assert_allclose(ours.weights_, theirs.weights_, atol=1e-3)
    np.testing.assert_allclose(_objective(ours, ours.weights_, **objective),
                               _objective(theirs, theirs.weights_, **objective), rtol=1e-5)


# ---------------------------------------------------------------- optional dependency


def _run(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


def test_import_xl_factorlasso_never_imports_skfolio():
    done = _run("import sys, xl_factorlasso, xl_factorlasso.core.optimization\n"
                "print(sorted(m for m in sys.modules if m.split('.')[0] == 'skfolio'))")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_without_skfolio_the_package_says_how_to_install_it():
    done = _run("import sys\nsys.modules['skfolio'] = None\nimport xl_factorlasso\n"
                "print(xl_factorlasso.MaximumDiversification.__name__)\n"
                "import xl_factorlasso.skfolio")
    assert done.returncode == 1
    assert done.stdout.strip() == "MaximumDiversification"
    assert ('ImportError: xl_factorlasso.skfolio needs skfolio, an optional dependency: '
            'pip install "skfolio>=1.12", or install with the extra: pip install '
            '"xl_factorlasso-<version>-py3-none-any.whl[skfolio]" (or ".[skfolio]" in a '
            'checkout)') in done.stderr


# ---------------------------------------------------------------- same optimum as skfolio


GROUPS = [["Equity"] * 3 + ["Fund"] * 5 + ["Bond"] * 12,
          ["US"] * 2 + ["Europe"] * 8 + ["Japan"] * 10]
CASES = {
    "default": {},
    "max_weights": {"max_weights": 0.08},
    "groups_linear": {"groups": GROUPS, "linear_constraints": [
        "Equity <= 0.5 * Bond", "US >= 0.1", "Europe >= 0.5 * Fund", "Japan <= 1"]},
    "binding_groups": {"groups": GROUPS, "linear_constraints": ["Equity >= 0.3", "US <= 0.1"]},
    "long_short": {"min_weights": -0.2, "max_weights": 0.3},
    "max_long_short": {"min_weights": -1.0, "max_long": 1.2, "max_short": 0.2},
    "turnover": {"previous_weights": 1 / 20, "max_turnover": 0.03},
    "l1": {"l1_coef": 0.001},
    "risk_free": {"risk_free_rate": 0.005},
    "fees": {"management_fees": 0.001},
    "costs": {"transaction_costs": 0.0005, "previous_weights": 1 / 20},
    "left_right": {"left_inequality": np.eye(20)[:2], "right_inequality": [0.05, 0.04]},
}


@pytest.mark.parametrize("name", list(CASES))
def test_same_optimum_as_skfolio(X, name):
    kwargs = CASES[name]
    ours = MaximumDiversification(**kwargs).fit(X)
    theirs = SkMaxDiv(**kwargs).fit(X)
    previous = np.full(20, 1 / 20) if "previous_weights" in kwargs else None
    _assert_same_optimum(ours, theirs, previous=previous,
                         costs=kwargs.get("transaction_costs", 0.0),
                         fees=kwargs.get("management_fees", 0.0),
                         r_f=kwargs.get("risk_free_rate", 0.0), l1=kwargs.get("l1_coef", 0.0))
    assert ours.fallback_chain_ is None and ours.error_ is None and ours.fallback_ is None
    assert set(theirs.problem_values_) <= set(ours.problem_values_)
    values = ours.problem_values_
    w = ours.weights_
    sigma = np.sqrt(np.diag(ours.prior_estimator_.return_distribution_.covariance))
    cov = ours.prior_estimator_.return_distribution_.covariance
    np.testing.assert_allclose(values["risk"], np.sqrt(w @ cov @ w), rtol=1e-9)
    if name == "default":  # skfolio's own check: predicted diversification = problem ratio
        np.testing.assert_allclose(values["expected_return"], sigma @ w, rtol=1e-9)
        np.testing.assert_allclose(ours.predict(X).diversification,
                                   values["expected_return"] / values["risk"], rtol=1e-9)


def test_constraints_hold_where_they_bind(X):
    ours = MaximumDiversification(**CASES["binding_groups"]).fit(X)
    w = ours.weights_
    assert w[:3].sum() >= 0.3 - 1e-9 and w[:2].sum() <= 0.1 + 1e-9
    turnover = MaximumDiversification(**CASES["turnover"]).fit(X).weights_
    assert np.max(np.abs(turnover - 1 / 20)) <= 0.03 + 1e-9


def test_budget_range_same_ratio_scale_free(X):
    # the ratio is scale-invariant: any sum in [0.9, 1] is optimal, so compare the ratio and
    # the weights normalised to sum 1
    kwargs = {"budget": None, "min_budget": 0.9, "max_budget": 1.0}
    ours = MaximumDiversification(**kwargs).fit(X)
    theirs = SkMaxDiv(**kwargs).fit(X)
    assert 0.9 - 1e-9 <= ours.weights_.sum() <= 1.0 + 1e-9
    np.testing.assert_allclose(_objective(ours, ours.weights_),
                               _objective(theirs, theirs.weights_), rtol=1e-5)
    np.testing.assert_allclose(ours.weights_ / ours.weights_.sum(),
                               theirs.weights_ / theirs.weights_.sum(), atol=1e-3)


def test_tracking_error_as_skfolio(X):
    benchmark = X.mean(axis=1)
    ours = MaximumDiversification(max_tracking_error=0.003).fit(X, benchmark)
    theirs = SkMaxDiv(max_tracking_error=0.003).fit(X, benchmark)
    _assert_same_optimum(ours, theirs)
    rmse = np.sqrt(np.sum((X.to_numpy() @ ours.weights_ - benchmark.to_numpy()) ** 2)
                   / (len(X) - 1))
    np.testing.assert_allclose(rmse, 0.003, rtol=1e-5)  # binding: unconstrained RMSE is larger


def test_min_return_array_gives_a_population(X):
    targets = [0.0, 0.0195, 0.0199]
    ours = MaximumDiversification(min_return=targets).fit(X)
    theirs = SkMaxDiv(min_return=targets).fit(X)
    assert ours.weights_.shape == (3, 20)
    np.testing.assert_allclose(ours.weights_, theirs.weights_, atol=1e-3)
    for row, values in zip(ours.weights_, ours.problem_values_, strict=True):
        np.testing.assert_allclose(values["expected_return"], ours.prior_estimator_
                                   .return_distribution_.covariance.diagonal() ** 0.5 @ row)
    assert values["expected_return"] >= 0.0199 - 1e-9
    prediction = ours.predict(X)
    assert isinstance(prediction, Population) and len(prediction) == 3
    assert all(isinstance(p, SkPortfolio) for p in prediction)


def test_min_return_array_with_an_unreachable_target(X):
    targets = [0.0, 0.5]  # 0.5 exceeds every asset's volatility
    with pytest.raises(ConvexOptimizationError, match="min_return=0.5 exceeds"):
        MaximumDiversification(min_return=targets).fit(X)
    with pytest.warns(UserWarning, match="1 of 2 min_return values failed"):
        model = MaximumDiversification(min_return=targets, raise_on_failure=False).fit(X)
    assert np.isnan(model.weights_[1]).all() and np.isfinite(model.weights_[0]).all()
    assert model.error_[0] is None and "min_return=0.5 exceeds" in model.error_[1]
    prediction = model.predict(X)
    assert isinstance(prediction[1], FailedPortfolio)
    assert isinstance(prediction[0], SkPortfolio) and not isinstance(prediction[0],
                                                                     FailedPortfolio)


# ---------------------------------------------------------------- factor-model prior


def test_factor_prior_as_skfolio(XF):
    X, F = XF
    ours = MaximumDiversification(prior_estimator=_factor_prior()).fit(X, factors=F)
    theirs = SkMaxDiv(prior_estimator=_factor_prior()).fit(X, factors=F)
    _assert_same_optimum(ours, theirs)
    assert ours.solve_.path == "factor"  # the factor pieces, by Woodbury: no n x n matrix
    values = ours.problem_values_
    # the optimiser used the factor covariance, predict() measures the sample one
    ratio = values["expected_return"] / values["risk"]
    assert abs(ours.predict(X).diversification - ratio) > 1e-3
    model = ours.prior_estimator_.return_distribution_.factor_model
    cov = (model.loading_matrix @ model.factor_covariance @ model.loading_matrix.T
           + np.diag(model.idio_covariance))
    np.testing.assert_allclose(ratio, np.sqrt(np.diag(cov)) @ ours.weights_
                               / np.sqrt(ours.weights_ @ cov @ ours.weights_), rtol=1e-9)


def test_factor_and_family_constraints(XF):
    X, F = XF
    prior = _factor_prior(factor_families=FAMILIES)
    for equations in (["MTUM == 0"], ["style <= -0.05"], ["QUAL >= 0.3", "style <= 0.9"]):
        ours = MaximumDiversification(prior_estimator=prior,
                                      linear_constraints=equations).fit(X, factors=F)
        theirs = SkMaxDiv(prior_estimator=prior, linear_constraints=equations).fit(X, factors=F)
        _assert_same_optimum(ours, theirs)
        B = ours.prior_estimator_.return_distribution_.factor_model.loading_matrix
        exposure = ours.weights_ @ B
        style = exposure[[0, 2, 4]].sum()
        if equations == ["MTUM == 0"]:
            assert abs(exposure[0]) <= 1e-9
        elif equations == ["style <= -0.05"]:
            np.testing.assert_allclose(style, -0.05, atol=1e-9)  # binding
            assert style <= -0.05  # and holding exactly, however the sum is rounded
            assert (ours.weights_ @ B[:, [0, 2, 4]]).sum() <= -0.05
        else:
            assert exposure[1] >= 0.3 - 1e-9 and style <= 0.9 + 1e-9


def test_family_named_like_a_factor_is_an_error(XF):
    X, F = XF
    prior = _factor_prior(factor_families=["MTUM", "q", "s", "d", "v"])
    with pytest.raises(ValueError, match="'MTUM' is both a factor name and a factor family; "
                                         "labels must be unique"):
        MaximumDiversification(prior_estimator=prior,
                               linear_constraints=["MTUM <= 0.5"]).fit(X, factors=F)


# ---------------------------------------------------------------- non-investable assets


class FixedPrior(BasePrior):
    """A prior returning given moments (NaN marks a non-investable asset)."""

    def __init__(self, mu=None, covariance=None):
        self.mu = mu
        self.covariance = covariance

    def fit(self, X, y=None, **fit_params):
        returns = np.asarray(X, dtype=float)
        self.return_distribution_ = ReturnDistribution(
            mu=np.asarray(self.mu, dtype=float), covariance=np.asarray(self.covariance, float),
            returns=returns)
        return self


def test_non_investable_assets_stay_at_zero(X):
    mu = X.mean().to_numpy().copy()
    cov = X.cov().to_numpy().copy()
    mask = np.ones(20, dtype=bool)
    mask[[3, 11]] = False
    mu[3] = np.nan
    cov[11, :] = cov[:, 11] = np.nan
    Xn = X.copy()
    Xn.iloc[:, 11] = np.nan
    prior = FixedPrior(mu=mu, covariance=cov)
    groups = {a: ["Equity" if i < 3 else "Other"] for i, a in enumerate(X.columns)}
    kwargs = {"max_weights": {X.columns[0]: 0.05, X.columns[3]: 0.5},
              "groups": groups, "linear_constraints": ["Equity >= 0.1"]}
    ours = MaximumDiversification(prior_estimator=prior, **kwargs).fit(Xn)
    theirs = SkMaxDiv(prior_estimator=prior, **kwargs).fit(Xn)
    np.testing.assert_array_equal(ours.investable_mask_, mask)
    assert ours.weights_.shape == (20,) and np.all(ours.weights_[~mask] == 0)
    np.testing.assert_allclose(ours.weights_.sum(), 1.0, atol=1e-12)
    np.testing.assert_allclose(ours.weights_, theirs.weights_, atol=1e-3)
    assert ours.weights_[0] <= 0.05 + 1e-12 and ours.weights_[:3].sum() >= 0.1 - 1e-9
    inner = np.ix_(mask, mask)
    w = ours.weights_[mask]
    ratio = np.sqrt(np.diag(cov[inner])) @ w / np.sqrt(w @ cov[inner] @ w)
    np.testing.assert_allclose(ratio, ours.problem_values_["expected_return"]
                               / ours.problem_values_["risk"], rtol=1e-9)
    returns = ours.predict(Xn.fillna(0.0)).returns
    np.testing.assert_allclose(returns, X.to_numpy()[:, mask] @ w)


# ---------------------------------------------------------------- skfolio machinery


def test_cross_val_predict_walk_forward(X):
    cv = WalkForward(train_size=500, test_size=250)
    ours = cross_val_predict(MaximumDiversification(max_weights=0.15), X, cv=cv)
    theirs = cross_val_predict(SkMaxDiv(max_weights=0.15), X, cv=cv)
    assert isinstance(ours, MultiPeriodPortfolio)
    assert len(ours.portfolios) == len(theirs.portfolios) == 7
    for a, b in zip(ours.portfolios, theirs.portfolios, strict=True):
        np.testing.assert_allclose(a.weights, b.weights, atol=1e-3)
    for measure in ("mean", "standard_deviation", "sharpe_ratio", "max_drawdown"):
        np.testing.assert_allclose(getattr(ours, measure), getattr(theirs, measure), rtol=1e-3)


def test_population_and_score(X):
    models = [MaximumDiversification(), MaximumDiversification(max_weights=0.08),
              SkMaxDiv(max_weights=0.08)]
    population = Population([m.fit(X).predict(X) for m in models])
    sharpe = population.measures(measure=RatioMeasure.SHARPE_RATIO)
    np.testing.assert_allclose(sharpe[1], sharpe[2], rtol=1e-3)
    np.testing.assert_allclose(models[0].score(X), population[0].sharpe_ratio)
    assert population[0].name == "MaximumDiversification"


def test_partial_fit_equals_one_fit_on_all_data(X):
    prior = EmpiricalPrior(mu_estimator=EWMu(half_life=200),
                           covariance_estimator=EWCovariance(half_life=200))
    online = MaximumDiversification(prior_estimator=prior)
    for chunk in np.array_split(np.arange(len(X)), 3):
        online.partial_fit(X.iloc[chunk])
    batch = MaximumDiversification(prior_estimator=prior).fit(X)
    np.testing.assert_allclose(online.weights_, batch.weights_, atol=1e-8)
    theirs = SkMaxDiv(prior_estimator=prior).fit(X)
    _assert_same_optimum(online, theirs)


def test_partial_fit_allows_only_previous_weights_fallback(X):
    with pytest.raises(ValueError, match="`partial_fit` only supports fallback=None or "
                                         "fallback='previous_weights'"):
        MaximumDiversification(fallback=EqualWeighted(), prior_estimator=EmpiricalPrior(
            mu_estimator=EWMu(), covariance_estimator=EWCovariance())).partial_fit(X)
    model = MaximumDiversification(
        min_weights=0.1, fallback="previous_weights", previous_weights=1 / 20,
        prior_estimator=EmpiricalPrior(mu_estimator=EWMu(), covariance_estimator=EWCovariance()))
    with pytest.warns(UserWarning, match=r"^MaximumDiversification\.partial_fit failed "
                                         r"\(Infeasible: .*the weights come from the fallback "
                                         r"previous_weights\. See fallback_chain_\.$"):
        model.partial_fit(X)
    np.testing.assert_array_equal(model.weights_, np.full(20, 1 / 20))
    assert model.fallback_ == "previous_weights"
    assert model.fallback_chain_[-1] == ("previous_weights", "success")


class ScaledCovariance(BaseCovariance):
    """A covariance estimator whose ``fit`` needs metadata (``scale``), like skfolio's
    ``ImpliedCovariance`` needs ``implied_vol`` (whose data set is not bundled offline)."""

    def __init__(self, nearest=True):
        super().__init__(nearest=nearest)

    def fit(self, X, y=None, scale=None):
        if scale is None:
            raise ValueError("ScaledCovariance needs scale")
        self._set_covariance(scale * np.cov(np.asarray(X), rowvar=False))
        return self


def test_metadata_routing_reaches_the_prior(X):
    with sklearn.config_context(enable_metadata_routing=True):
        prior = EmpiricalPrior(covariance_estimator=ScaledCovariance().set_fit_request(
            scale=True))
        model = MaximumDiversification(prior_estimator=prior)
        with pytest.raises(ValueError, match="ScaledCovariance needs scale"):
            model.fit(X)
        model.fit(X, scale=4.0)
        np.testing.assert_allclose(model.prior_estimator_.return_distribution_.covariance,
                                   4.0 * X.cov().to_numpy(), rtol=1e-12)
        # a scaled covariance has the same maximum-diversification portfolio
        _assert_same_optimum(model, SkMaxDiv().fit(X))
        routing = model.get_metadata_routing()
        assert "scale" in str(routing)


def test_factors_are_routed_without_enabling_routing(XF):
    X, F = XF
    model = MaximumDiversification(prior_estimator=_factor_prior()).fit(X, factors=F)
    assert list(model.prior_estimator_.return_distribution_.factor_model.factor_names) == list(
        F.columns)


# ---------------------------------------------------------------- failures


def test_failure_is_caught_as_skfolio_cvxpy_and_core_errors(X):
    model = MaximumDiversification(min_weights=0.1)
    for catch in (cp.SolverError, skx.ConvexOptimizationError, skx.OptimizationError,
                  core.InfeasibleProblemError, core.OptimizationError, InfeasibleProblemError):
        with pytest.raises(catch) as caught:
            model.fit(X)
    # skfolio's sentence, word for word (skfolio's users and tests compare error_ with it) ...
    assert str(caught.value) == SKFOLIO_FAILED
    # ... and the core's diagnosis under it: attribute, traceback note, estimator attribute
    diagnosis = caught.value.diagnosis
    assert diagnosis.startswith("Infeasible: no portfolio satisfies these constraints together: "
                                "min_weights, budget=1 (sum(min_weights) = 2)")
    assert caught.value.__notes__ == [diagnosis] and model.diagnosis_ == diagnosis
    assert caught.value.conflicts == ("min_weights", "budget=1")
    with pytest.raises(skx.ConvexOptimizationError) as theirs:
        SkMaxDiv(min_weights=0.1).fit(X)
    assert str(theirs.value) == str(caught.value)
    model.set_params(min_weights=0.0).fit(X)
    assert model.diagnosis_ is None
    assert issubclass(core.OptimizationError, cp.error.SolverError)


def test_fallback_chain_as_skfolio(X):
    ours = MaximumDiversification(min_weights=0.1, fallback=[
        MaximumDiversification(max_weights=0.01), EqualWeighted()])
    # skfolio is silent when a fallback succeeds; these weights are not the ones asked for.
    with pytest.warns(UserWarning) as caught:
        ours.fit(X)
    assert [str(w.message) for w in caught] == [
        "MaximumDiversification.fit failed (Infeasible: no portfolio satisfies these constraints "
        "together: min_weights, budget=1 (sum(min_weights) = 2). Dropping or relaxing any one of "
        "them makes the rest feasible); the weights come from the fallback EqualWeighted() after "
        "1 other fallback(s) failed. See fallback_chain_."]
    assert caught[0].filename == __file__  # points at the user's fit call, not into skfolio
    theirs = SkMaxDiv(min_weights=0.1, fallback=[SkMaxDiv(max_weights=0.01), EqualWeighted()])
    theirs.fit(X)
    assert ours.fallback_chain_ == theirs.fallback_chain_  # reprs and messages
    assert ours.fallback_chain_[1][1] == SKFOLIO_FAILED
    assert ours.fallback_chain_[2] == ("EqualWeighted()", "success")
    np.testing.assert_array_equal(ours.weights_, np.full(20, 1 / 20))
    assert isinstance(ours.fallback_, EqualWeighted) and ours.error_ is None
    assert ours.predict(X).fallback_chain == ours.fallback_chain_
    # a refit that falls back keeps nothing of the previous solve (as skfolio)
    refit = MaximumDiversification().fit(X)
    assert refit.problem_values_ is not None
    # the core's report of the path that answered passes through (the defaults: the dense path)
    assert refit.solve_.path == "dense" and refit.solve_.relative_gap <= 1e-9
    with pytest.warns(UserWarning, match="the weights come from the fallback EqualWeighted()"):
        refit.set_params(min_weights=0.1, fallback=EqualWeighted()).fit(X)
    assert refit.problem_values_ is None and refit.polish_ is None and refit.solve_ is None
    np.testing.assert_array_equal(refit.weights_, np.full(20, 1 / 20))


def test_raise_on_failure_false_gives_a_failed_portfolio(X):
    model = MaximumDiversification(min_weights=0.1, raise_on_failure=False)
    with pytest.warns(UserWarning) as caught:
        model.fit(X)
    assert [str(w.message) for w in caught] == [
        f"MaximumDiversification.fit failed: {SKFOLIO_FAILED}. Because raise_on_failure=False, "
        "weights_ is set to None. Inspect 'error_' and 'fallback_chain_' for details."]
    assert model.weights_ is None and model.error_ == SKFOLIO_FAILED
    assert model.diagnosis_.startswith("Infeasible: no portfolio satisfies these constraints")
    portfolio = model.predict(X)
    assert isinstance(portfolio, FailedPortfolio)
    assert np.isnan(portfolio.mean) and portfolio.optimization_error == model.error_


def test_mixed_integer_parameters_are_refused(X):
    for kwargs in ({"cardinality": 5}, {"threshold_long": 0.01},
                   {"group_cardinalities": {"Equity": 1}, "groups": GROUPS}):
        with pytest.raises(ValueError, match="require a mixed-integer solver and CLARABEL "
                                             "doesn't support MIP problems"):
            MaximumDiversification(**kwargs).fit(X)
    MaximumDiversification(cardinality=20, threshold_long=0.0).fit(X)  # inactive: fine


def test_stricter_than_skfolio(X):
    cases = [
        ({"linear_constraints": ["Foo <= 0.3"], "groups": GROUPS}, "Foo"),
        ({"left_inequality": np.eye(20)[:1]}, "left_inequality and right_inequality must be "
                                              "given together"),
        ({"max_weights": {"NOPE": 0.1}}, r"max_weights refers to unknown assets \['NOPE'\]"),
        ({"groups": {"NOPE": ["A"]}, "linear_constraints": ["A <= 1"]},
         r"groups refers to unknown assets \['NOPE'\]"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            MaximumDiversification(**kwargs).fit(X)
    with pytest.raises(ValueError, match="If `max_weights` is provided as a dictionary, you must "
                                         "input `X` as a DataFrame"):
        MaximumDiversification(max_weights={"AAPL": 0.1}).fit(X.to_numpy())


# ---------------------------------------------------------------- callables


def test_callables_as_skfolio(X):
    def first_is_a_fifth(w):
        return w[0] >= 0.2 * cp.sum(w)

    seen = []

    def with_estimator(w, estimator):
        seen.append(estimator)
        cov = estimator.prior_estimator_.return_distribution_.covariance
        return w[1] <= 0.5 * np.sqrt(cov[1, 1]) / np.sqrt(cov[2, 2]) * w[2]

    for kwargs in ({"add_constraints": first_is_a_fifth},
                   {"add_constraints": with_estimator},
                   {"add_objective": lambda w: 0.002 * cp.norm1(w)}):
        ours = MaximumDiversification(**kwargs).fit(X)
        theirs = SkMaxDiv(**kwargs).fit(X)
        l1 = 0.002 if "add_objective" in kwargs else 0.0
        _assert_same_optimum(ours, theirs, l1=l1)
    # the estimator itself, fitted prior included (skfolio's (w, estimator) form)
    assert {type(e) for e in seen} == {MaximumDiversification, SkMaxDiv}
    with pytest.raises(ValueError, match="Custom functions must have 1 or 2 positional "
                                         "arguments, got 3"):
        MaximumDiversification(add_constraints=lambda w, a, b: w >= 0).fit(X)
    with pytest.raises(ValueError, match="Error while calling add_constraints: "
                                         "ZeroDivisionError") as caught:
        MaximumDiversification(add_constraints=lambda w: 1 / 0).fit(X)
    assert isinstance(caught.value.__cause__.__cause__, ZeroDivisionError)


def test_first_callable_constraint_binds(X):
    model = MaximumDiversification(add_constraints=lambda w: w[0] >= 0.2 * cp.sum(w)).fit(X)
    np.testing.assert_allclose(model.weights_[0], 0.2, atol=1e-7)


# ---------------------------------------------------------------- warnings, state


def _messages(records) -> list[str]:
    return [str(r.message) for r in records if issubclass(r.category, UserWarning)]


def test_one_warning_when_the_covariance_is_repaired(X):
    cov = X.cov().to_numpy().copy()
    cov[0, 1] = cov[1, 0] = 1.5 * np.sqrt(cov[0, 0] * cov[1, 1])  # |correlation| > 1
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        MaximumDiversification(prior_estimator=FixedPrior(mu=X.mean().to_numpy(),
                                                          covariance=cov)).fit(X)
    messages = _messages(records)
    assert len(messages) == 1 and "not positive definite" in messages[0]
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        MaximumDiversification().fit(X.iloc[:15])  # T < n: the prior's estimate is repaired
    messages = _messages(records)
    assert len(messages) == 1 and "not positive definite" in messages[0]


def test_pickle_clone_and_params(X):
    model = MaximumDiversification(max_weights=0.08, groups=GROUPS,
                                   linear_constraints=["Equity <= 0.2"]).fit(X)
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.weights_, model.weights_)
    np.testing.assert_allclose(again.predict(X).returns, model.predict(X).returns)
    assert set(model.get_params(deep=False)) == set(SkMaxDiv().get_params(deep=False))
    fresh = clone(model)
    assert not hasattr(fresh, "weights_") and fresh.get_params()["max_weights"] == 0.08
    assert repr(MaximumDiversification(max_weights=0.08)) == repr(SkMaxDiv(max_weights=0.08))
    saved = MaximumDiversification(save_problem=True).fit(X)
    assert isinstance(saved.problem_, cp.Problem) and saved.problem_.status == "optimal"
    assert model.n_features_in_ == 20 and list(model.feature_names_in_) == list(X.columns)


def test_previous_holdings_outside_x_are_liquidated_as_skfolio(X):
    previous = {**{a: 0.08 for a in X.columns[:10]}, "OLD": 0.2}
    for costs in (0.002, {**{a: 0.002 for a in X.columns}, "OLD": 0.01}):
        kwargs = {"previous_weights": previous, "transaction_costs": costs}
        ours = MaximumDiversification(**kwargs).fit(X)
        theirs = SkMaxDiv(**kwargs).fit(X)
        c = np.full(20, 0.002)
        liquidation = 0.2 * (0.002 if isinstance(costs, float) else 0.01)
        pw = np.r_[np.full(10, 0.08), np.zeros(10)]
        # the liquidation of OLD is a constant cost: it lowers the ratio like a risk-free rate
        _assert_same_optimum(ours, theirs, previous=pw, costs=c, r_f=liquidation)
        # skfolio's expected_return: sigma'w - costs, the liquidation of OLD included
        w = ours.weights_
        sigma = np.sqrt(np.diag(ours.prior_estimator_.return_distribution_.covariance))
        np.testing.assert_allclose(ours.problem_values_["expected_return"],
                                   sigma @ w - c @ np.abs(w - pw) - liquidation, rtol=1e-9)
