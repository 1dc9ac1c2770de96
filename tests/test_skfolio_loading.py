"""``LassoLoadingMatrix`` inside skfolio: loadings, the assembled prior and the optimisers on it.

Every number is checked against a direct computation: the loadings against ``LassoModel``
itself, the prior against ``B Sigma_f B' + diag(residual variance)`` built by hand, and each
optimiser against an independent solve on that hand-built covariance.
"""

from __future__ import annotations

import inspect
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("skfolio")
cp = pytest.importorskip("cvxpy")

from skfolio.datasets import load_factors_dataset, load_sp500_dataset  # noqa: E402
from skfolio.model_selection import WalkForward, cross_val_predict  # noqa: E402
from skfolio.optimization import HierarchicalRiskParity, MeanRisk, RiskBudgeting  # noqa: E402
from skfolio.optimization import MaximumDiversification as SkMaxDiv  # noqa: E402
from skfolio.preprocessing import prices_to_returns  # noqa: E402
from skfolio.prior import BasePrior, ReturnDistribution, TimeSeriesFactorModel  # noqa: E402
from sklearn.base import clone  # noqa: E402

from xl_factorlasso.core.covariance import FactorCovariance  # noqa: E402
from xl_factorlasso.core.datasets import make_factor_panel  # noqa: E402
from xl_factorlasso.core.linear_model import LassoModel, LassoModelType  # noqa: E402
from xl_factorlasso.core.model_selection import LassoModelCV  # noqa: E402
from xl_factorlasso.core.optimization import MaximumDiversification as CoreMaxDiv  # noqa: E402
from xl_factorlasso.skfolio import LassoLoadingMatrix  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TIGHT = {"tol_gap_abs": 1e-12, "tol_gap_rel": 1e-12, "tol_feas": 1e-12}


@pytest.fixture(scope="module")
def sp500():
    """skfolio's 20 S&P 500 stocks and 5 factor ETFs, daily returns on common dates."""
    return prices_to_returns(load_sp500_dataset(), load_factors_dataset())


def _hand_prior(model: LassoModel, X: pd.DataFrame, F: pd.DataFrame):
    """``(mu, Sigma)`` of a time-series factor model built from a fitted ``LassoModel``."""
    b = model.coef_.loc[X.columns, F.columns].to_numpy()
    a = model.alpha_const_.loc[X.columns].to_numpy()
    f = F.to_numpy()
    resid = X.to_numpy() - f @ b.T - a
    cov = b @ np.cov(f, rowvar=False, ddof=1) @ b.T + np.diag(resid.var(axis=0, ddof=1))
    return b @ f.mean(axis=0) + a, cov


def _prior(**params) -> TimeSeriesFactorModel:
    return TimeSeriesFactorModel(loading_matrix_estimator=LassoLoadingMatrix(**params))


class _FixedPrior(BasePrior):
    """A prior holding a given covariance (skfolio then builds a dense Cholesky of it) and,
    optionally, given return scenarios (else those of ``X``)."""

    def __init__(self, covariance=None, returns=None):
        self.covariance = covariance
        self.returns = returns

    def fit(self, X, y=None, **fit_params):
        returns = np.asarray(X if self.returns is None else self.returns, dtype=float)
        self.return_distribution_ = ReturnDistribution(
            mu=returns.mean(axis=0), covariance=np.asarray(self.covariance), returns=returns
        )
        return self


# --------------------------------------------------------------------------- the loadings
def test_parameters_mirror_lasso_model():
    ours = inspect.signature(LassoLoadingMatrix.__init__).parameters
    theirs = inspect.signature(LassoModel.__init__).parameters
    assert list(ours)[: len(theirs)] == list(theirs)
    for name, par in theirs.items():
        assert ours[name].default == par.default, name
    assert list(ours)[len(theirs):] == ["cv", "lambdas"]
    assert ours["cv"].default is None and ours["lambdas"].default is None


def test_loading_matrix_equals_direct_fit(sp500):
    X, F = sp500
    params = dict(reg_lambda=2e-5, model_type=LassoModelType.HIERARCHICAL_CLUSTER_GROUP_LASSO,
                  l1_weight=0.3)
    est = LassoLoadingMatrix(**params).fit(X, F)
    direct = LassoModel(**params).fit(F, X)
    assert isinstance(est.loading_matrix_, np.ndarray)
    assert est.loading_matrix_.shape == (20, 5) and est.intercepts_.shape == (20,)
    np.testing.assert_array_equal(est.loading_matrix_, direct.coef_.to_numpy())
    np.testing.assert_array_equal(est.intercepts_, direct.alpha_const_.to_numpy())
    assert 0 < np.count_nonzero(est.loading_matrix_) < 100  # sparse, not empty
    pd.testing.assert_series_equal(est.model_.clusters_, direct.clusters_)
    pd.testing.assert_series_equal(est.model_.r2_, direct.r2_)
    assert est.reg_lambda_ == 2e-5 and est.cv_model_ is None
    assert est.n_features_in_ == 20
    np.testing.assert_array_equal(est.feature_names_in_, np.asarray(X.columns, dtype=object))
    # The same numbers from arrays (no labels): positions carry the meaning.
    arr = LassoLoadingMatrix(**params).fit(X.to_numpy(), F.to_numpy())
    np.testing.assert_array_equal(arr.loading_matrix_, est.loading_matrix_)
    np.testing.assert_array_equal(arr.intercepts_, est.intercepts_)
    assert arr.n_features_in_ == 20 and not hasattr(arr, "feature_names_in_")


def test_no_demean_means_no_intercept(sp500):
    X, F = sp500
    est = LassoLoadingMatrix(demean=False).fit(X, F)
    np.testing.assert_array_equal(est.intercepts_, np.zeros(20))
    np.testing.assert_array_equal(est.loading_matrix_,
                                  LassoModel(demean=False).fit(F, X).coef_.to_numpy())


def test_signs_are_respected(sp500):
    X, F = sp500
    free = LassoModel(reg_lambda=1e-6).fit(F, X).coef_
    # Ask for the opposite sign of every free loading on two factors, and zero on a third.
    signs = pd.DataFrame(np.nan, index=X.columns, columns=F.columns)
    signs["MTUM"] = -np.sign(free["MTUM"]).replace(0.0, 1.0)
    signs["VLUE"] = -np.sign(free["VLUE"]).replace(0.0, 1.0)
    signs["SIZE"] = 0.0
    assert ((free["MTUM"] * signs["MTUM"]) < 0).sum() >= 10  # the constraint binds
    est = LassoLoadingMatrix(reg_lambda=1e-6, factors_beta_loading_signs=signs).fit(X, F)
    b = pd.DataFrame(est.loading_matrix_, index=X.columns, columns=F.columns)
    s = signs.to_numpy()
    assert np.all(b.to_numpy()[s == 0] == 0.0)
    assert np.all(b.to_numpy()[s == 1] >= 0.0)
    assert np.all(b.to_numpy()[s == -1] <= 0.0)
    assert np.count_nonzero(b[["QUAL", "USMV"]]) > 0  # the free factors still load
    direct = LassoModel(reg_lambda=1e-6, factors_beta_loading_signs=signs).fit(F, X)
    np.testing.assert_array_equal(est.loading_matrix_, direct.coef_.to_numpy())


def test_labelled_matrices_align_by_label(sp500):
    X, F = sp500
    rng = np.random.default_rng(4)
    signs = pd.DataFrame(rng.choice([np.nan, 1.0, -1.0, 0.0], size=(20, 5)),
                         index=X.columns, columns=F.columns)
    prior = pd.DataFrame(0.1 * np.abs(rng.standard_normal((20, 5))),
                         index=X.columns, columns=F.columns) * signs.fillna(0.0)
    ref = LassoLoadingMatrix(factors_beta_loading_signs=signs,
                             factors_beta_prior=prior).fit(X, F).loading_matrix_
    # Shuffled rows and columns plus an asset and a factor the fit does not use.
    extra = pd.DataFrame(1.0, index=["NOT_IN_X"], columns=F.columns)
    shuffled_signs = pd.concat([signs, extra]).assign(OTHER=1.0).iloc[::-1, ::-1]
    shuffled_prior = pd.concat([prior, 0 * extra]).assign(OTHER=0.0).iloc[::-1, ::-1]
    est = LassoLoadingMatrix(factors_beta_loading_signs=shuffled_signs,
                             factors_beta_prior=shuffled_prior).fit(X, F)
    np.testing.assert_array_equal(est.loading_matrix_, ref)
    # Arrays by position with unlabelled inputs give the same loadings.
    arr = LassoLoadingMatrix(factors_beta_loading_signs=signs.to_numpy(),
                             factors_beta_prior=prior.to_numpy()).fit(X.to_numpy(), F.to_numpy())
    np.testing.assert_array_equal(arr.loading_matrix_, ref)
    direct = LassoModel(factors_beta_loading_signs=signs, factors_beta_prior=prior).fit(F, X)
    np.testing.assert_array_equal(ref, direct.coef_.to_numpy())


def test_prior_pulls_towards_its_centre(sp500):
    X, F = sp500
    prior = pd.DataFrame(0.0, index=X.columns, columns=F.columns)
    prior["USMV"] = 0.5
    lam = 5e-5
    without = LassoLoadingMatrix(reg_lambda=lam).fit(X, F).loading_matrix_
    with_prior = LassoLoadingMatrix(reg_lambda=lam, factors_beta_prior=prior).fit(X, F)
    direct = LassoModel(reg_lambda=lam, factors_beta_prior=prior).fit(F, X)
    np.testing.assert_array_equal(with_prior.loading_matrix_, direct.coef_.to_numpy())
    usmv = list(F.columns).index("USMV")
    moved = np.abs(with_prior.loading_matrix_[:, usmv] - 0.5)
    assert np.sum(moved < np.abs(without[:, usmv] - 0.5)) >= 15
    assert np.sum(with_prior.loading_matrix_[:, usmv] == 0.5) >= 1  # held at the centre


def test_group_lasso_groups_by_label_or_position(sp500):
    X, F = sp500
    labels = np.array(["tech"] * 5 + ["fin"] * 5 + ["other"] * 10)
    groups = pd.Series(labels, index=X.columns)
    est = LassoLoadingMatrix(model_type="GROUP_LASSO", group_data=groups.iloc[::-1],
                             reg_lambda=3e-5).fit(X, F)
    direct = LassoModel(model_type="GROUP_LASSO", group_data=groups, reg_lambda=3e-5).fit(F, X)
    np.testing.assert_array_equal(est.loading_matrix_, direct.coef_.to_numpy())
    arr = LassoLoadingMatrix(model_type="GROUP_LASSO", group_data=list(labels),
                             reg_lambda=3e-5).fit(X.to_numpy(), F.to_numpy())
    np.testing.assert_array_equal(arr.loading_matrix_, est.loading_matrix_)


def test_synthetic_panel_signs_and_prior_by_position():
    panel = make_factor_panel(400, 6, 15, seed=7)
    params = dict(reg_lambda=1e-3, factors_beta_loading_signs=panel.signs,
                  factors_beta_prior=panel.prior)
    labelled = LassoLoadingMatrix(**params).fit(panel.y, panel.x)
    direct = LassoModel(**params).fit(panel.x, panel.y)
    np.testing.assert_array_equal(labelled.loading_matrix_, direct.coef_.to_numpy())
    positional = LassoLoadingMatrix(
        reg_lambda=1e-3, factors_beta_loading_signs=panel.signs.to_numpy(),
        factors_beta_prior=panel.prior.to_numpy(),
    ).fit(panel.y.to_numpy(), panel.x.to_numpy())
    # (arrays and frames reach BLAS in different memory layouts: 1e-15 apart under NumPy 2.0's
    # OpenBLAS, bit-identical under 2.4's)
    np.testing.assert_allclose(positional.loading_matrix_, labelled.loading_matrix_, rtol=0,
                               atol=1e-12)
    s = panel.signs.to_numpy()
    b = labelled.loading_matrix_
    assert np.all(b[s == 0] == 0) and np.all(b[s == 1] >= 0) and np.all(b[s == -1] <= 0)
    assert (s == 0).sum() > 0 and (s == 1).sum() > 0 and (s == -1).sum() > 0


@pytest.mark.parametrize(
    ("params", "labelled", "message"),
    [
        ({"factors_beta_loading_signs": np.ones((5, 20))}, True,
         "factors_beta_loading_signs: expected shape (20, 5) (assets x factors), got (5, 20)"),
        ({"factors_beta_prior": np.zeros((20, 4))}, False,
         "factors_beta_prior: expected shape (20, 5) (assets x factors), got (20, 4)"),
        ({"factors_beta_loading_signs": "drop AAPL"}, True,
         "factors_beta_loading_signs: asset 'AAPL' of X has no row"),
        ({"factors_beta_prior": "drop VLUE"}, True,
         "factors_beta_prior: factor 'VLUE' has no column"),
        ({"factors_beta_loading_signs": "frame"}, False,
         "factors_beta_loading_signs is a DataFrame, so X and the factors must be DataFrames "
         "too (their column labels align it); with arrays, give an array of shape (20, 5) "
         "(assets x factors)"),
        ({"factors_beta_loading_signs": "two"}, True,
         "factors_beta_loading_signs['AAPL', 'MTUM']: 2.0 is not one of 0, 1, -1 or blank"),
        ({"group_data": ["a"] * 19, "model_type": "GROUP_LASSO"}, True,
         "group_data: expected one group per asset, shape (20,), got (19,)"),
        ({"lambdas": [1e-5, 1e-4]}, True,
         "lambdas is the cross-validation grid: it needs cv (the number of folds); without "
         "cv, reg_lambda is used"),
        ({"cv": 0}, True, "cv must be None or a whole number of folds >= 1, got 0"),
        ({"reg_lambda": -1.0}, True, "reg_lambda must be >= 0, got -1.0"),
    ],
    ids=["signs-shape", "prior-shape", "signs-asset", "prior-factor", "frame-with-arrays",
         "signs-value", "groups-length", "lambdas-without-cv", "cv-zero", "negative-lambda"],
)
def test_bad_input_is_a_clear_value_error(sp500, params, labelled, message):
    X, F = sp500
    frame = pd.DataFrame(1.0, index=X.columns, columns=F.columns)
    frames = {"drop AAPL": frame.drop(index="AAPL"), "drop VLUE": frame.drop(columns="VLUE"),
              "frame": frame, "two": frame.replace(1.0, 2.0)}
    params = {key: frames[value] if isinstance(value, str) and value in frames else value
              for key, value in params.items()}
    data = (X, F) if labelled else (X.to_numpy(), F.to_numpy())
    with pytest.raises(ValueError) as err:
        LassoLoadingMatrix(**params).fit(*data)
    assert str(err.value) == message


def test_missing_factors_and_mismatched_dates(sp500):
    X, F = sp500
    with pytest.raises(ValueError, match=r"^LassoLoadingMatrix.fit needs the factor returns y"):
        LassoLoadingMatrix().fit(X, None)
    with pytest.raises(ValueError) as err:
        LassoLoadingMatrix().fit(X.iloc[1:], F.iloc[:-1])
    assert str(err.value) == (
        "X and the factors have different dates (first in X only: "
        f"{X.index[-1]!r})"
    )
    with pytest.raises(ValueError) as err:
        LassoLoadingMatrix().fit(X.to_numpy()[1:], F.to_numpy())
    assert str(err.value) == ("X has 2262 observations but the factors have 2263: they must "
                              "be the same dates")


def test_cv_chooses_lambda_like_lasso_model_cv(sp500):
    X, F = sp500
    est = LassoLoadingMatrix(cv=4, lambdas="auto").fit(X, F)
    direct = LassoModelCV(lambdas="auto", n_splits=4).fit(F, X)
    assert est.reg_lambda_ == direct.best_lambda_
    pd.testing.assert_frame_equal(est.cv_model_.cv_scores_, direct.cv_scores_)
    np.testing.assert_array_equal(est.loading_matrix_, direct.best_model_.coef_.to_numpy())
    refit = LassoModel(reg_lambda=direct.best_lambda_).fit(F, X)
    np.testing.assert_allclose(est.loading_matrix_, refit.coef_.to_numpy(), rtol=0, atol=1e-12)


# --------------------------------------------------------------------------- the prior
def test_prior_is_the_hand_built_factor_model(sp500):
    X, F = sp500
    prior = _prior(reg_lambda=1e-5).fit(X, factors=F)
    direct = LassoModel(reg_lambda=1e-5).fit(F, X)
    mu, cov = _hand_prior(direct, X, F)
    dist = prior.return_distribution_
    np.testing.assert_allclose(dist.covariance, cov, rtol=0, atol=1e-12)
    assert np.abs(dist.covariance - cov).max() <= 1e-12 * np.abs(cov).max()
    np.testing.assert_allclose(dist.mu, mu, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(dist.factor_model.loading_matrix, direct.coef_.to_numpy())
    # The residual variances are skfolio's, which the core FactorCovariance reproduces.
    fc = FactorCovariance(
        loadings=direct.coef_, factor_covariance=F.cov(),
        residual_variance=pd.Series(np.diag(cov) - np.diag(
            direct.coef_.to_numpy() @ F.cov().to_numpy() @ direct.coef_.to_numpy().T),
            index=X.columns),
    )
    np.testing.assert_allclose(fc.covariance.to_numpy(), dist.covariance, rtol=0, atol=1e-12)


# --------------------------------------------------------------------------- optimisers
def test_mean_risk_minimum_variance_matches_cvxpy(sp500):
    X, F = sp500
    # Tight tolerances on both sides: the minimum is flat enough that skfolio's default gap
    # (1e-9) leaves weights 2e-4 apart.
    model = MeanRisk(prior_estimator=_prior(), solver_params=TIGHT).fit(X, factors=F)
    _, cov = _hand_prior(LassoModel().fit(F, X), X, F)
    w = cp.Variable(20)
    problem = cp.Problem(cp.Minimize(cp.quad_form(w, cov)), [cp.sum(w) == 1, w >= 0])
    problem.solve(solver="CLARABEL", **TIGHT)
    var_ours = model.weights_ @ cov @ model.weights_
    assert var_ours == pytest.approx(problem.value, rel=1e-7)
    np.testing.assert_allclose(model.weights_, w.value, rtol=0, atol=1e-6)
    assert np.count_nonzero(w.value > 1e-6) >= 2  # a real portfolio, not a corner


# skfolio's solve at these tight tolerances ends "inaccurate" on some machines' rounding (an
# AVX-512 one here); the risk contributions are checked independently below, to 1e-7
@pytest.mark.filterwarnings("ignore:Solution may be inaccurate")
def test_risk_budgeting_is_equal_risk_contribution(sp500):
    X, F = sp500
    model = RiskBudgeting(prior_estimator=_prior(), solver_params=TIGHT).fit(X, factors=F)
    _, cov = _hand_prior(LassoModel().fit(F, X), X, F)
    w = model.weights_
    contributions = w * (cov @ w) / (w @ cov @ w)
    np.testing.assert_allclose(contributions, np.full(20, 1 / 20), rtol=0, atol=1e-7)
    assert np.ptp(w) > 0.01  # equal risk, not equal weights
    fixed = RiskBudgeting(prior_estimator=_FixedPrior(covariance=cov),
                          solver_params=TIGHT).fit(X)
    np.testing.assert_allclose(w, fixed.weights_, rtol=0, atol=1e-6)


def test_hierarchical_risk_parity_on_the_lasso_prior(sp500):
    X, F = sp500
    model = HierarchicalRiskParity(prior_estimator=_prior()).fit(X, factors=F)
    direct = LassoModel().fit(F, X)
    _, cov = _hand_prior(direct, X, F)
    # HRP clusters on the prior's return scenarios, which a factor model makes F B' + a.
    scenarios = F.to_numpy() @ direct.coef_.to_numpy().T + direct.alpha_const_.to_numpy()
    fixed = HierarchicalRiskParity(
        prior_estimator=_FixedPrior(covariance=cov, returns=scenarios)).fit(X)
    np.testing.assert_allclose(model.weights_, fixed.weights_, rtol=0, atol=1e-12)
    sample = HierarchicalRiskParity().fit(X)
    assert np.abs(model.weights_ - sample.weights_).max() > 0.01  # the prior matters


def test_maximum_diversification_on_the_lasso_prior(sp500):
    X, F = sp500
    model = SkMaxDiv(prior_estimator=_prior()).fit(X, factors=F)
    direct = LassoModel().fit(F, X)
    _, cov = _hand_prior(direct, X, F)
    sigma = np.sqrt(np.diag(cov))

    def ratio(w):
        return sigma @ w / np.sqrt(w @ cov @ w)

    b = direct.coef_
    core = CoreMaxDiv(covariance=FactorCovariance(
        loadings=b, factor_covariance=F.cov(),
        residual_variance=pd.Series(np.diag(cov) - np.diag(b.to_numpy() @ F.cov().to_numpy()
                                                             @ b.to_numpy().T), index=X.columns),
    )).fit()
    d_sk = ratio(model.weights_)
    d_core = core.problem_values_["diversification_ratio"]
    assert d_sk == pytest.approx(d_core, rel=1e-5)
    assert ratio(core.weights_.to_numpy()) == pytest.approx(d_core, rel=1e-9)
    values = model.problem_values_
    assert values["expected_return"] / values["risk"] == pytest.approx(d_sk, rel=1e-5)
    assert d_sk > 1.5  # diversified: well above a single asset's ratio of 1
    np.testing.assert_allclose(model.weights_, core.weights_.to_numpy(), rtol=0, atol=1e-3)


# --------------------------------------------------------------------------- sklearn plumbing
def test_clone_get_params_and_pickle(sp500):
    X, F = sp500
    signs = pd.DataFrame(1.0, index=X.columns, columns=F.columns)
    est = LassoLoadingMatrix(reg_lambda=3e-5, span=120, factors_beta_loading_signs=signs, cv=None)
    params = est.get_params()
    assert params["reg_lambda"] == 3e-5 and params["span"] == 120
    assert params["factors_beta_loading_signs"] is signs
    twin = clone(est)
    assert type(twin) is LassoLoadingMatrix and twin is not est
    assert twin.get_params()["reg_lambda"] == 3e-5
    pd.testing.assert_frame_equal(twin.factors_beta_loading_signs, signs)
    assert not hasattr(twin, "loading_matrix_")
    est.fit(X, F)
    assert np.all(est.loading_matrix_ >= 0)
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(again.loading_matrix_, est.loading_matrix_)
    np.testing.assert_array_equal(again.intercepts_, est.intercepts_)
    pd.testing.assert_frame_equal(again.model_.predict(F.iloc[:10]), est.model_.predict(F.iloc[:10]))
    # A cloned, pickled prior inside a pipeline fits to the same covariance.
    prior = pickle.loads(pickle.dumps(clone(_prior(reg_lambda=3e-5))))
    cov = prior.fit(X, factors=F).return_distribution_.covariance
    np.testing.assert_array_equal(cov, _prior(reg_lambda=3e-5).fit(
        X, factors=F).return_distribution_.covariance)
    assert prior.get_params()["loading_matrix_estimator__reg_lambda"] == 3e-5


_FOLDS: list[tuple[pd.Index, np.ndarray]] = []


class _RecordingLoadings(LassoLoadingMatrix):
    """Remembers the rows and loadings of every fit (clone keeps the class)."""

    def fit(self, X, y):
        super().fit(X, y)
        _FOLDS.append((X.index, self.loading_matrix_.copy()))
        return self


def test_walk_forward_folds_fit_on_their_training_rows(sp500):
    X, F = sp500
    _FOLDS.clear()
    cv = WalkForward(train_size=504, test_size=252)
    model = MeanRisk(prior_estimator=TimeSeriesFactorModel(
        loading_matrix_estimator=_RecordingLoadings(reg_lambda=2e-5)))
    path = cross_val_predict(model, X, cv=cv, params={"factors": F})
    splits = list(cv.split(X))
    assert len(_FOLDS) == len(splits) == len(path.portfolios) >= 6
    for (rows, loadings), (train, test), portfolio in zip(
            _FOLDS, splits, path.portfolios, strict=True):
        assert rows.equals(X.index[train])
        direct = LassoModel(reg_lambda=2e-5).fit(F.iloc[train], X.iloc[train])
        np.testing.assert_array_equal(loadings, direct.coef_.to_numpy())
        np.testing.assert_array_equal(portfolio.observations, X.index[test].to_numpy())
    # The loadings differ between folds: each fold really refits.
    assert not np.array_equal(_FOLDS[0][1], _FOLDS[-1][1])
