"""MaximumDiversification API: sklearn conventions, input errors, custom callables, failure
handling (infeasible vs numerical), fallback chain, predict/score."""

from __future__ import annotations

import warnings

import cvxpy as cp
import numpy as np
import pandas as pd
import pytest

from xl_factorlasso.core.optimization import (
    EquationError,
    InfeasibleProblemError,
    MaximumDiversification,
    NotFittedError,
    OptimizationError,
    Population,
    Portfolio,
    SolverFailedError,
    _dense,
    ewma_effective_sample,
)

skd = pytest.importorskip("skfolio.datasets")
from skfolio.preprocessing import prices_to_returns  # noqa: E402

TOL = 1e-6
GROUPS = [["Equity"] * 3 + ["Fund"] * 5 + ["Bond"] * 12,
          ["US"] * 2 + ["Europe"] * 8 + ["Japan"] * 10]


@pytest.fixture(scope="module")
def X():
    return prices_to_returns(skd.load_sp500_dataset()).loc["2014":]


@pytest.fixture(scope="module")
def fitted(X):
    return MaximumDiversification().fit(X)


# ------------------------------------------------------------------ sklearn conventions


def test_sklearn_clone_get_set_params():
    from sklearn.base import clone

    inner = MaximumDiversification(max_weights=0.01)
    model = MaximumDiversification(min_weights=0.1, fallback=[inner, "previous_weights"],
                                   linear_constraints=["US >= 0.1"], covariance=np.eye(3))
    copy = clone(model)
    assert copy is not model
    params, copied = model.get_params(deep=False), copy.get_params(deep=False)
    assert set(params) == set(copied)
    assert copied["min_weights"] == 0.1 and copied["linear_constraints"] == ["US >= 0.1"]
    assert copied["fallback"][0] is not inner and copied["fallback"][0].max_weights == 0.01
    np.testing.assert_array_equal(copied["covariance"], np.eye(3))
    assert "fallback" in model.get_params(deep=True)
    model.set_params(max_weights=0.5, budget=None)
    assert model.max_weights == 0.5 and model.budget is None
    with pytest.raises(ValueError, match="Invalid parameter 'maxweights'"):
        model.set_params(maxweights=1)


def test_nested_set_params_and_repr():
    from sklearn.covariance import LedoitWolf

    model = MaximumDiversification(covariance=LedoitWolf())
    assert "covariance__block_size" in model.get_params(deep=True)
    model.set_params(covariance__assume_centered=True)
    assert model.covariance.assume_centered is True
    assert repr(MaximumDiversification()) == "MaximumDiversification()"
    assert repr(MaximumDiversification(min_weights=0.1, budget=None)) == (
        "MaximumDiversification(budget=None, min_weights=0.1)")


def test_init_stores_parameters_untouched_and_fit_sets_attributes(X):
    bounds = {"AAPL": 0.2}
    model = MaximumDiversification(max_weights=bounds)
    assert model.max_weights is bounds
    assert not hasattr(model, "weights_")
    model.fit(X)
    assert model.max_weights is bounds
    assert isinstance(model.weights_, pd.Series) and list(model.weights_.index) == list(X.columns)
    assert model.n_features_in_ == 20
    assert list(model.feature_names_in_) == list(X.columns)
    assert model.fallback_ is None and model.fallback_chain_ is None and model.error_ is None
    assert set(model.problem_values_) == {"expected_return", "risk", "regularization", "ratio",
                                          "diversification_ratio", "factor", "objective"}
    assert model.problem_values_["factor"] > 0
    np.testing.assert_allclose(model.asset_volatilities_, X.std(), rtol=1e-12)
    assert not hasattr(model, "problem_")


def test_numpy_input_gets_positional_labels(X):
    model = MaximumDiversification().fit(X.to_numpy())
    assert isinstance(model.weights_.index, pd.RangeIndex)
    assert not hasattr(model, "feature_names_in_")
    np.testing.assert_allclose(model.weights_.to_numpy(),
                               MaximumDiversification().fit(X).weights_.to_numpy(), atol=1e-9)


def test_refit_clears_previous_results(X):
    model = MaximumDiversification(save_problem=True).fit(X)
    assert hasattr(model, "problem_")
    model.set_params(save_problem=False, min_weights=0.1, raise_on_failure=False)
    with pytest.warns(UserWarning):
        model.fit(X)
    assert not hasattr(model, "problem_") and model.weights_ is None


def test_save_problem(X):
    model = MaximumDiversification(save_problem=True).fit(X)
    assert isinstance(model.problem_, cp.Problem) and model.problem_.status == cp.OPTIMAL


def test_needs_previous_weights():
    assert not MaximumDiversification().needs_previous_weights
    assert MaximumDiversification(transaction_costs=0.01).needs_previous_weights
    assert MaximumDiversification(transaction_costs={"A": 0.01}).needs_previous_weights
    assert MaximumDiversification(max_turnover=0.1).needs_previous_weights
    assert MaximumDiversification(fallback=["previous_weights"]).needs_previous_weights


# ------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    "params, fit_kwargs, message",
    [
        ({"budget": 1.0, "min_budget": 0.5}, {}, "budget and min_budget cannot both be set"),
        ({"budget": 1.0, "max_budget": 1.5}, {}, "budget and max_budget cannot both be set"),
        ({"max_long": 0.0}, {}, "max_long must be strictly positive"),
        ({"max_short": -1}, {}, "max_short must be strictly positive"),
        ({"min_weights": {"NOPE": 0.1}}, {}, r"min_weights refers to unknown assets \['NOPE'\]"),
        ({"max_weights": {"AAPL": 0.1, "XYZ": 1}}, {}, r"unknown assets \['XYZ'\]"),
        ({"previous_weights": {"OLD": 0.1}}, {}, r"previous_weights refers to unknown assets"),
        ({"min_weights": np.zeros(19)}, {}, r"min_weights must have shape \(n_assets,\) = \(20,\)"),
        ({"max_weights": np.r_[np.nan, np.ones(19)]}, {}, "max_weights is NaN for asset 'AAPL'"),
        ({"transaction_costs": -0.01}, {}, "transaction_costs must be >= 0"),
        ({"left_inequality": np.ones((1, 20))}, {}, "must be given together"),
        ({"left_inequality": np.ones((1, 19)), "right_inequality": np.ones(1)}, {},
         r"left_inequality must have shape \(n_inequalities, 20\)"),
        ({"left_inequality": np.ones((2, 20)), "right_inequality": np.ones(3)}, {},
         r"right_inequality must have shape \(2,\)"),
        ({"linear_constraints": ["Foo <= 0.3"]}, {}, "unknown asset, group or factor name 'Foo'"),
        ({"groups": GROUPS, "linear_constraints": ["equity <= 0.3"]}, {},
         "did you mean 'Equity'"),
        ({"groups": GROUPS, "linear_constraints": ["Equity > 0.3"]}, {},
         "'>' is not a valid comparison operator"),
        ({"groups": {"AAPL": ["Tech"], "NOPE": ["Tech"]}}, {}, r"groups refers to unknown assets"),
        ({"groups": [["AAPL"] + ["x"] * 19]}, {}, "'AAPL' is both an asset name and a group label"),
        ({"groups": np.array([["a"] * 19])}, {}, r"shape \(n_levels, 20\)"),
        ({"max_tracking_error": 0.01}, {}, r"needs the benchmark returns y"),
        ({"max_tracking_error": 0.01}, {"y": np.zeros(5)}, "y must be a 1-D benchmark of length"),
        ({"solver": "NOT_A_SOLVER"}, {}, "solver 'NOT_A_SOLVER' is not installed"),
        ({"add_constraints": lambda a, b, c: []}, {}, "must take 1 argument .* or 2 arguments"),
        ({"add_objective": lambda y: -cp.norm(y)}, {}, "add_objective must return a convex"),
        ({"add_constraints": lambda y: cp.norm(y) >= 1}, {}, "non-convex"),
        ({"add_constraints": lambda y: 1 / 0}, {}, "add_constraints raised ZeroDivisionError"),
        ({"add_constraints": lambda y: "y >= 0"}, {}, "must return CVXPY constraints"),
        ({"span": 0.5}, {}, "span must be a number > 1"),
        ({"span": 20, "covariance": np.eye(20)}, {}, "span applies only"),
        ({"covariance": np.eye(19)}, {}, r"covariance has shape \(19, 19\) but X has 20 assets"),
        ({"covariance": np.ones((20, 20)) - 2 * np.eye(20)}, {}, "non-positive variance"),
        ({"covariance": "shrunk"}, {}, "covariance must be None, 'sample'"),
        ({"portfolio_params": {"colour": "red"}}, {}, r"portfolio_params has unknown keys"),
        ({"fallback": "equal"}, {}, "fallback string 'equal' is not supported"),
        ({"fallback": [3]}, {}, "fallback must be an estimator"),
        ({"risk_free_rate": np.nan}, {}, "risk_free_rate must be finite"),
        ({"l1_coef": -1}, {}, "l1_coef must be >= 0"),
        ({"min_return": [0.01, np.inf]}, {}, "min_return must be a finite number"),
    ],
)
def test_invalid_inputs_raise_value_error_naming_the_problem(X, params, fit_kwargs, message):
    with pytest.raises(ValueError, match=message):
        MaximumDiversification(**params).fit(X, **fit_kwargs)


def test_labelled_series_inputs_in_any_order(X):
    """A per-asset Series in the assets' order is read as an array, one in another order by its
    labels (as a dict); both give the same weights, and a bad value names its asset."""
    caps = pd.Series(np.linspace(0.08, 0.2, X.shape[1]), index=X.columns)
    aligned = MaximumDiversification(max_weights=caps).fit(X).weights_
    shuffled = MaximumDiversification(max_weights=caps.iloc[::-1]).fit(X).weights_
    by_array = MaximumDiversification(max_weights=caps.to_numpy()).fit(X).weights_
    np.testing.assert_array_equal(aligned.to_numpy(), by_array.to_numpy())
    np.testing.assert_array_equal(aligned.to_numpy(), shuffled.to_numpy())
    assert (aligned.to_numpy() <= caps.to_numpy() + TOL).all()
    with pytest.raises(ValueError, match="max_weights is NaN for asset 'BAC'"):
        MaximumDiversification(max_weights=caps.where(caps.index != "BAC")).fit(X)
    with pytest.raises(ValueError, match="max_weights is NaN for asset 'BAC'"):
        MaximumDiversification(max_weights=caps.astype("Float64").where(
            caps.index != "BAC", pd.NA)).fit(X)
    text = caps.astype(object)
    text["BAC"] = "ten"
    with pytest.raises(ValueError, match=r"max_weights\['BAC'\] must be a number, got 'ten'"):
        MaximumDiversification(max_weights=text).fit(X)


def test_dict_inputs_need_asset_names(X):
    with pytest.raises(ValueError, match="min_weights is a dict, so X .* must be a DataFrame"):
        MaximumDiversification(min_weights={"AAPL": 0.1}).fit(X.to_numpy())
    with pytest.raises(ValueError, match="linear_constraints need names"):
        MaximumDiversification(linear_constraints=["x >= 1"]).fit(X.to_numpy())
    # Array groups work with unlabelled X.
    w = MaximumDiversification(groups=GROUPS, linear_constraints=["Bond >= 0.8"]).fit(
        X.to_numpy()).weights_.to_numpy()
    assert w[8:].sum() >= 0.8 - TOL


@pytest.mark.parametrize("T, span", [(1, 7.0), (3, 1.5), (10, 3.0), (60, 52.0), (1000, 52.0),
                                     (5, 1e9), (2000, 30.0)])
def test_ewma_effective_sample_is_kish_of_the_weights(T, span):
    """``(sum v)^2 / sum v^2`` of ewma_covariance's weights, summed here one by one: T for
    equal weights (a huge span), the span on a long window."""
    lam = 1.0 - 2.0 / (span + 1.0)
    v = lam ** np.arange(T - 1, -1, -1, dtype=float)
    assert ewma_effective_sample(T, span) == pytest.approx(v.sum() ** 2 / (v ** 2).sum(),
                                                            rel=1e-13)
    assert ewma_effective_sample(T, span) <= min(T, span)


def test_an_ewma_covariance_with_no_more_effective_rows_than_assets_is_refused():
    """Span 10 on 400 rows of 10 assets weighs like 10 equal rows: refused, as a sample
    covariance of 10 rows is; span 10.5 (10.5 rows) is fitted."""
    rng = np.random.default_rng(3)
    X = pd.DataFrame(rng.normal(0, 0.01, (400, 10)), columns=[f"A{i}" for i in range(10)])
    with pytest.raises(ValueError, match=r"^span=10 gives the 400 observations the weight of "
                                         r"10\.0 equal ones \(the effective sample size\), "
                                         r"not more than the 10 assets: .*give a span above 10 "):
        MaximumDiversification(span=10).fit(X)
    # a short window counts for fewer rows than the span: 11 rows (a sample covariance
    # would be allowed) with span 15 weigh like 9.4
    with pytest.raises(ValueError, match=r"span=15 gives the 11 observations the weight of 9\.4"):
        MaximumDiversification(span=15).fit(X.iloc[-11:])
    model = MaximumDiversification(span=10.5).fit(X)
    assert ewma_effective_sample(400, 10.5) == pytest.approx(10.5)
    assert model.weights_.sum() == pytest.approx(1.0)


def test_bad_returns_and_covariances(X):
    bad = X.copy()
    bad.iloc[3, 2] = np.nan
    with pytest.raises(ValueError, match="X contains NaN or infinite values .*'BAC'"):
        MaximumDiversification().fit(bad)
    with pytest.raises(ValueError, match="sample covariance is singular"):
        MaximumDiversification().fit(X.iloc[:15])
    with pytest.raises(ValueError, match="X is required"):
        MaximumDiversification().fit()
    cov = X.cov().rename(index={"AAPL": "APPLE"}, columns={"AAPL": "APPLE"})
    with pytest.raises(ValueError, match=r"missing assets \['AAPL'\]; unknown assets \['APPLE'\]"):
        MaximumDiversification(covariance=cov).fit(X)
    asym = X.cov().to_numpy().copy()
    asym[0, 1] *= 2
    with pytest.raises(ValueError, match="not symmetric"):
        MaximumDiversification(covariance=asym).fit(X)


@pytest.mark.parametrize("span", [None, 500.0])
def test_a_constant_return_column_is_refused_naming_the_asset(X, span):
    """Its sample variance is the mean's rounding (1.8e-33 for 0.1 on 50 rows), not 0: the
    positive-variance test let it through and the optimiser weighted it arbitrarily."""
    flat = X.copy()
    flat["BAC"] = 0.1
    assert 0.0 < flat["BAC"].var() < 1e-30  # (why the variance test alone missed it)
    with pytest.raises(ValueError, match=r"X has the same return \(0.1\) on each of its "
                                         rf"{len(X)} rows for asset 'BAC'"):
        MaximumDiversification(span=span).fit(flat)


def test_indefinite_covariance_is_clipped_with_warning(X):
    cov = X.cov().to_numpy()
    vals, vecs = np.linalg.eigh(cov)
    vals[0] = -0.1 * vals[0] - 1e-6
    bent = (vecs * vals) @ vecs.T
    with pytest.warns(UserWarning, match="not positive definite"):
        model = MaximumDiversification(covariance=bent).fit(X)
    assert model.weights_.sum() == pytest.approx(1.0)
    assert np.all(np.linalg.eigvalsh(model.covariance_) > 0)
    np.testing.assert_allclose(np.diag(model.covariance_), np.diag(bent))  # variances kept


def test_value_errors_are_not_swallowed_by_fallback(X):
    with pytest.raises(EquationError):
        MaximumDiversification(linear_constraints=["Foo <= 1"], fallback="previous_weights",
                               previous_weights=0.05, raise_on_failure=False).fit(X)


# --------------------------------------------------------- add_constraints / add_objective


def test_add_constraints_receive_homogenised_weights_and_scale(X):
    # One argument: y = t * w. A homogeneous constraint means the same thing in w.
    w = MaximumDiversification(add_constraints=lambda y: y[0] >= 0.2 * cp.sum(y)).fit(X).weights_
    assert w.iloc[0] >= 0.2 - TOL
    # Two arguments: (y, t). Constants are multiplied by t.
    w = MaximumDiversification(add_constraints=lambda y, t: [y[0] >= 0.2 * t, y[1] <= 0.01 * t]
                               ).fit(X).weights_
    assert w.iloc[0] >= 0.2 - TOL and w.iloc[1] <= 0.01 + TOL
    # Effective number of assets >= 15, i.e. |w|^2 <= 1/15: |y| <= t / sqrt(15).
    base = MaximumDiversification().fit(X).weights_
    assert 1 / (base**2).sum() < 15
    w = MaximumDiversification(add_constraints=lambda y, t: cp.norm(y, 2) <= t / np.sqrt(15)
                               ).fit(X).weights_
    assert 1 / (w**2).sum() >= 15 - 1e-5


def test_add_constraints_match_builtin_constraint(X):
    builtin = MaximumDiversification(max_weights=0.08).fit(X).weights_
    custom = MaximumDiversification(add_constraints=lambda y, t: y <= 0.08 * t).fit(X).weights_
    np.testing.assert_allclose(custom, builtin, atol=1e-6)


def test_add_objective_matches_l1_and_l2(X):
    # Long-only and fully invested, |w|_1 = 1 adds a constant to the denominator: the optimum
    # is flat, so the two programs (the built-in folds l1 into x's coefficients, the callable
    # sees y) agree on the ratio to 1e-9 and on the weights only to about 1e-5.
    cov = X.cov().to_numpy()
    sd = np.sqrt(np.diag(cov))

    def penalised(w):
        return sd @ w / (np.sqrt(w @ cov @ w) + 0.01 * np.abs(w).sum())

    l1 = MaximumDiversification(l1_coef=0.01).fit(X).weights_
    custom = MaximumDiversification(add_objective=lambda y: 0.01 * cp.norm1(y)).fit(X).weights_
    assert penalised(custom.to_numpy()) == pytest.approx(penalised(l1.to_numpy()), rel=1e-9)
    np.testing.assert_allclose(custom, l1, atol=1e-4)
    l2 = MaximumDiversification(l2_coef=0.02).fit(X).weights_
    custom = MaximumDiversification(add_objective=lambda y, t: 0.02 * cp.quad_over_lin(y, t)
                                    ).fit(X).weights_
    np.testing.assert_allclose(custom, l2, atol=1e-5)
    assert np.max(np.abs(l1 - MaximumDiversification().fit(X).weights_)) > 1e-3


# ---------------------------------------------------------------- failure modes


def test_infeasible_bounds_named(X):
    with pytest.raises(InfeasibleProblemError) as info:
        MaximumDiversification(min_weights=0.1).fit(X)
    assert set(info.value.conflicts) == {"min_weights", "budget=1"}
    assert "sum(min_weights) = 2" in str(info.value)
    with pytest.raises(InfeasibleProblemError, match="min_weights > max_weights for 'AMD'"):
        MaximumDiversification(min_weights={"AMD": 0.3}, max_weights={"AMD": 0.2}).fit(X)
    with pytest.raises(InfeasibleProblemError, match=r"sum\(max_weights\) = 0.8"):
        MaximumDiversification(max_weights=0.04).fit(X)


def test_infeasible_linear_rows_named(X):
    constraints = ["Equity >= 0.6", "Japan <= 0.9", "Bond >= 0.5", "US <= 1"]
    with pytest.raises(InfeasibleProblemError) as info:
        MaximumDiversification(groups=GROUPS, linear_constraints=constraints).fit(X)
    # Irreducible: the two group floors, the budget and the no-short bounds; not the others.
    assert set(info.value.conflicts) == {"'Equity >= 0.6'", "'Bond >= 0.5'", "budget=1",
                                         "min_weights"}
    assert "'Japan <= 0.9'" not in str(info.value)
    left = np.zeros((2, 20))
    left[0, :3], left[1, 3:] = -1, -1
    with pytest.raises(InfeasibleProblemError, match="left_inequality row 0.*inequality row 1"):
        MaximumDiversification(left_inequality=left, right_inequality=[-0.5, -0.6]).fit(X)
    with pytest.raises(InfeasibleProblemError, match="budget=1, max_turnover=0.02"):
        MaximumDiversification(max_turnover=0.02).fit(X)
    with pytest.raises(InfeasibleProblemError, match="budget=1, max_long=0.5"):
        MaximumDiversification(max_long=0.5).fit(X)


def test_risk_free_rate_above_every_volatility(X):
    top = X.std().max()
    with pytest.raises(InfeasibleProblemError, match="risk_free_rate=0.05 is not below") as info:
        MaximumDiversification(risk_free_rate=0.05).fit(X)
    assert info.value.conflicts == ("risk_free_rate",)
    assert f"{top:.6g}" in str(info.value)  # the best attainable weighted volatility
    # Just below the most volatile asset it is still feasible and concentrates there.
    w = MaximumDiversification(risk_free_rate=top * 0.999).fit(X).weights_
    assert w.idxmax() == X.std().idxmax() and w.max() > 0.99


def test_min_return_above_attainable(X):
    with pytest.raises(InfeasibleProblemError, match="min_return=0.05 exceeds"):
        MaximumDiversification(min_return=0.05).fit(X)


def test_nonlinear_infeasibility_is_reported_as_infeasible(X):
    bench = 1.5 * X["AAPL"]  # needs 150% in AAPL
    with pytest.raises(InfeasibleProblemError, match="conflict involves max_tracking_error"):
        MaximumDiversification(max_tracking_error=1e-4).fit(X, bench)
    with pytest.raises(InfeasibleProblemError, match="conflict involves add_constraints"):
        MaximumDiversification(add_constraints=lambda y, t: cp.norm(y, 2) <= t / np.sqrt(25)
                               ).fit(X)


@pytest.mark.filterwarnings("ignore:Solution may be inaccurate")
def test_numerical_failure_is_not_called_infeasible(X):
    with pytest.raises(SolverFailedError) as info:
        MaximumDiversification(solver_params={"max_iter": 2}).fit(X)
    assert "Numerical failure" in str(info.value) and "infeasib" not in str(info.value).lower()
    assert not isinstance(info.value, InfeasibleProblemError)


def test_violating_solution_is_never_returned(X, monkeypatch):
    # Corrupt the solver output after a successful solve: the check must refuse it.
    original = cp.Problem.solve
    sd = X.std().to_numpy()

    def corrupted(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        # the solver's variable is x = y * sigma / mean(sigma): move y[0] by 0.06
        x = next(v for v in self.variables() if v.name() == "x")
        x.value = x.value + np.r_[0.06 * sd[0] / sd.mean(), np.zeros(x.size - 1)]
        return out

    monkeypatch.setattr(cp.Problem, "solve", corrupted)
    # The default family would take the dense path, which does not call CVXPY.
    monkeypatch.setattr(_dense, "dense_eligible", lambda spec, save_problem=False: False)
    with pytest.raises(SolverFailedError, match="violates budget=1"):
        MaximumDiversification().fit(X)
    with pytest.raises(SolverFailedError, match="violates max_weights for 'AAPL' by"):
        MaximumDiversification(max_weights=0.05).fit(X)


def test_solver_params_merge_with_defaults(X):
    model = MaximumDiversification(solver_params={"verbose": False}, save_problem=True).fit(X)
    assert model.problem_.status == cp.OPTIMAL
    other = MaximumDiversification(solver="SCS", solver_params={"eps": 1e-9, "max_iters": 200000}
                                   ).fit(X).weights_
    np.testing.assert_allclose(other, MaximumDiversification().fit(X).weights_, atol=1e-3)


# --------------------------------------------------------- fallback and raise_on_failure


def test_fallback_chain_order_and_previous_weights(X):
    previous = pd.Series(1 / 20, index=X.columns)
    with pytest.warns(UserWarning, match="come from the fallback previous_weights"):
        model = MaximumDiversification(
            min_weights=0.1, previous_weights=previous,
            fallback=[MaximumDiversification(max_weights=0.01), "previous_weights"]).fit(X)
    chain = model.fallback_chain_
    assert [step for step, _ in chain] == [repr(model), "MaximumDiversification(max_weights=0.01)",
                                           "previous_weights"]
    assert "min_weights, budget=1" in chain[0][1]
    assert "max_weights, budget=1" in chain[1][1]
    assert chain[2][1] == "success"
    assert model.fallback_ == "previous_weights" and model.error_ is None
    pd.testing.assert_series_equal(model.weights_, previous.rename("weights"))
    assert model.predict(X).fallback_chain == chain


def test_fallback_estimator_gets_previous_weights(X):
    previous = np.full(20, 0.05)
    inner = MaximumDiversification(max_turnover=0.05, previous_weights=0.0)
    with pytest.warns(UserWarning, match="has its own previous_weights"), pytest.warns(
            UserWarning, match=r"come from the fallback MaximumDiversification\(max_turnover"):
        model = MaximumDiversification(min_weights=0.1, previous_weights=previous,
                                       fallback=inner).fit(X)
    assert model.fallback_ is not inner and model.fallback_.previous_weights is previous
    assert inner.previous_weights == 0.0 and not hasattr(inner, "weights_")
    assert np.max(np.abs(model.weights_ - previous)) <= 0.05 + TOL
    assert model.fallback_chain_[-1] == (repr(inner), "success")


def test_fallback_to_skfolio_estimator(X):
    from skfolio.optimization import EqualWeighted

    with pytest.warns(UserWarning, match=r"come from the fallback EqualWeighted\(\)"):
        model = MaximumDiversification(min_weights=0.1, fallback=EqualWeighted()).fit(X)
    np.testing.assert_allclose(model.weights_, 1 / 20)
    assert model.fallback_chain_[-1] == ("EqualWeighted()", "success")


def test_previous_weights_fallback_without_previous_weights(X):
    model = MaximumDiversification(min_weights=0.1, fallback="previous_weights",
                                   raise_on_failure=False)
    with pytest.warns(UserWarning, match="raise_on_failure=False"):
        model.fit(X)
    assert model.fallback_chain_[1] == (
        "previous_weights",
        "Fallback 'previous_weights' requested, but previous_weights is None")
    assert model.weights_ is None


def test_all_fallbacks_fail_raises_primary_with_chain(X):
    model = MaximumDiversification(min_weights=0.1,
                                   fallback=[MaximumDiversification(risk_free_rate=1.0)])
    with pytest.raises(InfeasibleProblemError, match="fallbacks failed too.*risk_free_rate=1") as e:
        model.fit(X)
    assert set(e.value.conflicts) == {"min_weights", "budget=1"}
    assert not hasattr(model, "weights_")
    assert len(model.fallback_chain_) == 2
    with pytest.raises(NotFittedError):
        model.predict(X)


def test_raise_on_failure_false(X):
    model = MaximumDiversification(min_weights=0.1, raise_on_failure=False)
    with pytest.warns(UserWarning, match="fit failed: Infeasible.*weights_ is None"):
        model.fit(X)
    assert model.weights_ is None and model.problem_values_ is None
    assert model.error_.startswith("Infeasible")
    assert model.fallback_chain_ is None  # no fallback set: no chain ran (as skfolio)
    portfolio = model.predict(X)
    assert isinstance(portfolio, Portfolio) and portfolio.failed
    assert portfolio.fallback_chain is None
    assert portfolio.optimization_error == model.error_
    assert np.isnan(portfolio.sharpe_ratio) and np.isnan(portfolio.diversification)
    assert np.isnan(model.score(X))


INFEASIBLE_MIN_WEIGHTS = (
    "Infeasible: no portfolio satisfies these constraints together: min_weights, budget=1 "
    "(sum(min_weights) = 2). Dropping or relaxing any one of them makes the rest feasible.")


def fit_recording(model, X):
    """Fit, returning the messages of every UserWarning raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(X)
    return [str(w.message) for w in caught if issubclass(w.category, UserWarning)]


def test_fallback_chain_is_none_without_fallback(X):
    clean = MaximumDiversification(fallback=MaximumDiversification())
    assert fit_recording(clean, X) == []  # a clean fit: no chain, no warning
    assert clean.fallback_chain_ is None and clean.fallback_ is None
    assert clean.predict(X).fallback_chain is None
    failing = MaximumDiversification(min_weights=0.1)
    with pytest.raises(InfeasibleProblemError) as raised:
        failing.fit(X)
    assert str(raised.value) == INFEASIBLE_MIN_WEIGHTS
    assert failing.fallback_chain_ is None and failing.error_ == INFEASIBLE_MIN_WEIGHTS


def test_a_rescued_fit_warns_naming_the_error_and_the_fallback(X):
    from skfolio.optimization import EqualWeighted

    model = MaximumDiversification(min_weights=0.1, fallback=EqualWeighted())
    assert fit_recording(model, X) == [
        "MaximumDiversification.fit failed (" + INFEASIBLE_MIN_WEIGHTS.rstrip(".") + "); the "
        "weights come from the fallback EqualWeighted(). See fallback_chain_."]
    assert model.fallback_chain_ == [
        ("MaximumDiversification(fallback=EqualWeighted(), min_weights=0.1)",
         INFEASIBLE_MIN_WEIGHTS),
        ("EqualWeighted()", "success")]
    np.testing.assert_array_equal(model.weights_.to_numpy(), np.full(20, 1 / 20))


def test_a_rescue_after_failed_fallbacks_says_how_many_failed(X):
    previous = pd.Series(1 / 20, index=X.columns)
    model = MaximumDiversification(
        min_weights=0.1, previous_weights=previous,
        fallback=[MaximumDiversification(max_weights=0.01), "previous_weights"])
    assert fit_recording(model, X) == [
        "MaximumDiversification.fit failed (" + INFEASIBLE_MIN_WEIGHTS.rstrip(".") + "); the "
        "weights come from the fallback previous_weights after 1 other fallback(s) failed. See "
        "fallback_chain_."]
    assert [outcome == "success" for _, outcome in model.fallback_chain_] == [False, False, True]


def test_min_return_array_with_partial_failure(X):
    model = MaximumDiversification(min_return=[0.02, 0.05], raise_on_failure=False)
    with pytest.warns(UserWarning, match="1 of 2 min_return values failed"):
        model.fit(X)
    assert np.isfinite(model.weights_.iloc[0]).all() and model.weights_.iloc[1].isna().all()
    assert model.error_[0] is None and "min_return=0.05 exceeds" in model.error_[1]
    assert model.problem_values_[1] is None
    population = model.predict(X)
    assert isinstance(population, Population)
    assert not population[0].failed and population[1].failed
    with pytest.raises(OptimizationError, match="All 2 optimisations"):
        MaximumDiversification(min_return=[0.05, 0.06]).fit(X)


# ------------------------------------------------------------------- predict and score


def test_predict_matches_skfolio_portfolio(X):
    from skfolio import Portfolio as SkPortfolio

    previous = np.linspace(0, 0.1, 20)
    previous /= previous.sum()
    params = dict(transaction_costs=0.001, management_fees=0.0002, previous_weights=previous,
                  risk_free_rate=0.0001)
    model = MaximumDiversification(**params).fit(X)
    ours = model.predict(X)
    sk = SkPortfolio(X, weights=model.weights_.to_numpy(), **params)
    assert ours.mean == pytest.approx(sk.mean, rel=1e-12)
    assert ours.standard_deviation == pytest.approx(sk.standard_deviation, rel=1e-12)
    assert ours.sharpe_ratio == pytest.approx(sk.sharpe_ratio, rel=1e-12)
    assert ours.diversification == pytest.approx(sk.diversification, rel=1e-12)
    assert ours.turnover == pytest.approx(sk.turnover, rel=1e-12)
    assert ours.total_cost == pytest.approx(sk.total_cost, rel=1e-12)
    assert ours.total_fee == pytest.approx(sk.total_fee, rel=1e-12)
    assert ours.effective_number_assets == pytest.approx(sk.effective_number_assets, rel=1e-12)
    assert model.score(X) == pytest.approx(sk.sharpe_ratio, rel=1e-12)
    assert ours.name == "MaximumDiversification"
    assert list(ours.summary().index)[:3] == ["mean", "standard_deviation", "sharpe_ratio"]


def test_predict_aligns_columns_and_portfolio_params(X, fitted):
    shuffled = X[X.columns[::-1]]
    a, b = fitted.predict(X), fitted.predict(shuffled)
    pd.testing.assert_series_equal(a.returns, b.returns)
    model = MaximumDiversification(portfolio_params={"name": "MD", "risk_free_rate": 0.001}).fit(X)
    portfolio = model.predict(X)
    assert portfolio.name == "MD"
    assert portfolio.sharpe_ratio == pytest.approx((a.mean - 0.001) / a.standard_deviation)
    with pytest.raises(ValueError, match="X lacks fitted assets"):
        fitted.predict(X.rename(columns={"AAPL": "APPLE"}))
    with pytest.raises(ValueError, match="X has 19 assets"):
        fitted.predict(X.iloc[:, 1:])


def test_fit_predict_and_not_fitted(X):
    portfolio = MaximumDiversification().fit_predict(X)
    assert portfolio.diversification == pytest.approx(
        MaximumDiversification().fit(X).problem_values_["diversification_ratio"], rel=1e-9)
    with pytest.raises(NotFittedError):
        MaximumDiversification().predict(X)


def test_warnings_free_default_fit(X):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        MaximumDiversification().fit(X)
