"""``LassoLoadingMatrix``: the sparse, sign-constrained ``LassoModel`` as a skfolio loading matrix.

skfolio's ``TimeSeriesFactorModel`` asks its ``loading_matrix_estimator`` for ``B`` (assets x
factors) and the intercepts ``a``, then assembles the prior ``mu = B mu_f + a`` and
``Sigma = B Sigma_f B' + diag(var(X - F B' - a, ddof=1))``. This estimator answers with the
project's :class:`~xl_factorlasso.core.linear_model.LassoModel`, so that MeanRisk,
RiskBudgeting, HRP or MaxDiv can run on a sparse, sign-constrained factor model.

skfolio passes ``fit(X, y)`` with ``X`` the asset returns and ``y`` the factor returns, as
the user gave them (DataFrames stay DataFrames); ``LassoModel`` has the opposite order
(``fit(x=factors, y=assets)``). Sign and prior matrices are assets x factors, aligned by label
when both inputs are labelled, by position otherwise.
"""

from __future__ import annotations

import inspect
import numbers

import numpy as np
import pandas as pd
import sklearn.utils.validation as skv
from skfolio.prior import BaseLoadingMatrix

from ..core.linear_model import LassoModel, LassoModelType
from ..core.model_selection import LassoModelCV

__all__ = ["LassoLoadingMatrix"]

# The LassoModel parameters this estimator forwards unchanged: all of them, read from its
# signature so a parameter added there is forwarded (the constructor below must list it too,
# explicitly, for scikit-learn's get_params; a test checks the two agree).
_MODEL_PARAMS = tuple(inspect.signature(LassoModel.__init__).parameters)[1:]
_CELL_MATRICES = ("factors_beta_loading_signs", "factors_beta_prior")


class LassoLoadingMatrix(BaseLoadingMatrix):
    """Sparse multi-output factor loadings for skfolio's ``TimeSeriesFactorModel``.

    One :class:`~xl_factorlasso.core.linear_model.LassoModel` regresses every asset on the
    factors at once (LASSO, group LASSO or cluster group LASSO, with sign constraints and a
    prior), where skfolio's default fits one ``LassoCV`` per asset.

    Parameters
    ----------
    model_type, group_data, reg_lambda, span, demean, cutoff_fraction, n_clusters, \
linkage_method, group_penalty, l1_weight, nonneg, warmup_period, solver, solver_params, \
solver_fallbacks, verbose, engine, engine_params, dependence_measure, gerber_threshold, \
distance_transform, cluster_correlation_transform, cluster_correlation_span, \
auto_sign_constraints, auto_sign_threshold_t, auto_sign_adaptive_weights, \
auto_sign_adaptive_gamma, auto_sign_adaptive_floor, auto_sign_excluded_factors, \
auto_sign_ewma_span, auto_sign_use_fit_span, auto_sign_variance, apply_ols_prior, \
prior_selection_type, factor_for_prior, loss_normalization, unilasso_loo, unilasso_non_negative, \
max_named_factors, named_set_max_vif, excluded_factors, expert_prior_bound_n_std, \
expert_prior_hac_lags, expert_prior_hac_lags_freq_dict, expert_prior_exposure_budget, \
expert_prior_bound_centre, expert_prior_bound_scope, expert_prior_budget_rule
        As in :class:`~xl_factorlasso.core.linear_model.LassoModel` (same names, same
        defaults). ``group_data`` maps each asset to its group: a Series indexed by the
        asset labels of a DataFrame ``X``, or an array of length ``n_assets``.
    factors_beta_loading_signs : pandas.DataFrame or array-like, optional
        Assets x factors, each cell ``0`` (loading fixed at zero), ``1`` (>= 0), ``-1``
        (<= 0) or NaN (free). A DataFrame is aligned by label and needs both ``X`` and the
        factors as DataFrames; it may hold more assets or factors than the fit uses (a
        pre-selection step in a pipeline may drop assets) but must cover all of them. An
        array must have shape ``(n_assets, n_factors)`` and is read by position.
    factors_beta_prior : pandas.DataFrame or array-like, optional
        Assets x factors centre ``B0`` of the penalty (NaN = 0), given as the signs are.
    cv : int, optional
        Choose ``reg_lambda`` by expanding-window cross-validation with this many folds
        (:class:`~xl_factorlasso.core.model_selection.LassoModelCV`, warm-started on one
        preparation per fold) instead of using ``reg_lambda``. ``None`` (default): no CV.
    lambdas : array-like or "auto", optional
        The CV grid (needs ``cv``). ``None``: factorlasso's 20 values on [1e-6, 1e-1];
        ``"auto"``: 20 values from ``1e-3 * lambda_max`` to ``lambda_max``.

    Attributes
    ----------
    loading_matrix_ : numpy.ndarray, shape (n_assets, n_factors)
        ``B``: ``model_.coef_`` as an array, assets in the order of ``X``.
    intercepts_ : numpy.ndarray, shape (n_assets,)
        ``model_.alpha_const_`` (the intercept :meth:`LassoModel.predict` adds), zeros when
        ``demean=False`` (the model then has no constant).
    model_ : LassoModel
        The fitted model: ``coef_``, ``r2_``, ``clusters_``, ``solver_``, ``duality_gap_``...
    reg_lambda_ : float
        The penalty used: ``reg_lambda``, or the one chosen by cross-validation.
    cv_model_ : LassoModelCV or None
        The fitted cross-validation (scores per fold and lambda) when ``cv`` is set.
    n_features_in_ : int
        Number of assets seen in ``fit``.
    feature_names_in_ : numpy.ndarray
        Asset names, when ``X`` is a DataFrame with string column names.

    Examples
    --------
    >>> from skfolio.optimization import MeanRisk
    >>> from skfolio.prior import TimeSeriesFactorModel
    >>> model = MeanRisk(prior_estimator=TimeSeriesFactorModel(
    ...     loading_matrix_estimator=LassoLoadingMatrix(reg_lambda=1e-5)))
    >>> model.fit(X, factors=F)  # doctest: +SKIP
    """

    def __init__(
        self,
        model_type=LassoModelType.LASSO,
        group_data=None,
        reg_lambda=1e-5,
        span=None,
        demean=True,
        cutoff_fraction=0.5,
        n_clusters=None,
        linkage_method="ward",
        group_penalty="normalized",
        l1_weight=0.0,
        factors_beta_loading_signs=None,
        factors_beta_prior=None,
        nonneg=False,
        warmup_period=12,
        solver="CLARABEL",
        solver_params=None,
        solver_fallbacks=None,
        verbose=False,
        engine="auto",
        engine_params=None,
        dependence_measure="pearson",
        gerber_threshold=0.5,
        distance_transform="one_minus_rho",
        cluster_correlation_transform="none",
        cluster_correlation_span=None,
        auto_sign_constraints=False,
        auto_sign_threshold_t=0.75,
        auto_sign_adaptive_weights=False,
        auto_sign_adaptive_gamma=1.0,
        auto_sign_adaptive_floor=1e-3,
        auto_sign_excluded_factors=None,
        auto_sign_ewma_span=None,
        auto_sign_use_fit_span=False,
        auto_sign_variance="independent",
        apply_ols_prior=False,
        prior_selection_type="highest_r2",
        factor_for_prior=None,
        loss_normalization="sample",
        unilasso_loo=True,
        unilasso_non_negative=True,
        max_named_factors=2,
        named_set_max_vif=2.5,
        excluded_factors=None,
        expert_prior_bound_n_std=None,
        expert_prior_hac_lags=0,
        expert_prior_hac_lags_freq_dict=None,
        expert_prior_exposure_budget=None,
        expert_prior_bound_centre="prior",
        expert_prior_bound_scope="all",
        expert_prior_budget_rule="n_std",
        cv=None,
        lambdas=None,
    ):
        self.model_type = model_type
        self.group_data = group_data
        self.reg_lambda = reg_lambda
        self.span = span
        self.demean = demean
        self.cutoff_fraction = cutoff_fraction
        self.n_clusters = n_clusters
        self.linkage_method = linkage_method
        self.group_penalty = group_penalty
        self.l1_weight = l1_weight
        self.factors_beta_loading_signs = factors_beta_loading_signs
        self.factors_beta_prior = factors_beta_prior
        self.nonneg = nonneg
        self.warmup_period = warmup_period
        self.solver = solver
        self.solver_params = solver_params
        self.solver_fallbacks = solver_fallbacks
        self.verbose = verbose
        self.engine = engine
        self.engine_params = engine_params
        self.dependence_measure = dependence_measure
        self.gerber_threshold = gerber_threshold
        self.distance_transform = distance_transform
        self.cluster_correlation_transform = cluster_correlation_transform
        self.cluster_correlation_span = cluster_correlation_span
        self.auto_sign_constraints = auto_sign_constraints
        self.auto_sign_threshold_t = auto_sign_threshold_t
        self.auto_sign_adaptive_weights = auto_sign_adaptive_weights
        self.auto_sign_adaptive_gamma = auto_sign_adaptive_gamma
        self.auto_sign_adaptive_floor = auto_sign_adaptive_floor
        self.auto_sign_excluded_factors = auto_sign_excluded_factors
        self.auto_sign_ewma_span = auto_sign_ewma_span
        self.auto_sign_use_fit_span = auto_sign_use_fit_span
        self.auto_sign_variance = auto_sign_variance
        self.apply_ols_prior = apply_ols_prior
        self.prior_selection_type = prior_selection_type
        self.factor_for_prior = factor_for_prior
        self.loss_normalization = loss_normalization
        self.unilasso_loo = unilasso_loo
        self.unilasso_non_negative = unilasso_non_negative
        self.max_named_factors = max_named_factors
        self.named_set_max_vif = named_set_max_vif
        self.excluded_factors = excluded_factors
        self.expert_prior_bound_n_std = expert_prior_bound_n_std
        self.expert_prior_hac_lags = expert_prior_hac_lags
        self.expert_prior_hac_lags_freq_dict = expert_prior_hac_lags_freq_dict
        self.expert_prior_exposure_budget = expert_prior_exposure_budget
        self.expert_prior_bound_centre = expert_prior_bound_centre
        self.expert_prior_bound_scope = expert_prior_bound_scope
        self.expert_prior_budget_rule = expert_prior_budget_rule
        self.cv = cv
        self.lambdas = lambdas

    def fit(self, X, y) -> LassoLoadingMatrix:
        """Fit the loadings of the assets ``X`` on the factors ``y``.

        Parameters
        ----------
        X : pandas.DataFrame or array-like, shape (n_observations, n_assets)
            Asset returns (NaN marks a missing observation, as in ``LassoModel``).
        y : pandas.DataFrame or array-like, shape (n_observations, n_factors)
            Factor returns (``TimeSeriesFactorModel`` passes its ``factors``).

        Returns
        -------
        self

        Raises
        ------
        ValueError
            Bad parameters or inputs, named (e.g. a sign matrix whose shape or labels do not
            match the assets and factors).
        xl_factorlasso.core.exceptions.SolveError
            No certified solution could be found.
        """
        if y is None:
            raise ValueError(
                "LassoLoadingMatrix.fit needs the factor returns y (TimeSeriesFactorModel "
                "passes them from fit(X, factors=...))"
            )
        # Feature names are the assets, as for skfolio's estimators; X itself is not converted.
        skv.validate_data(self, X, skip_check_array=True, reset=True)
        assets, factors = _frames(X, y)
        params = {name: getattr(self, name) for name in _MODEL_PARAMS}
        labelled = isinstance(X, pd.DataFrame) and isinstance(y, pd.DataFrame)
        for name in _CELL_MATRICES:
            if params[name] is not None:
                params[name] = _cell_matrix(params[name], name, assets, factors, labelled)
        if params["group_data"] is not None:
            params["group_data"] = _group_data(
                params["group_data"], assets, isinstance(X, pd.DataFrame))
        template = LassoModel(**params)
        if self.cv is None:
            if self.lambdas is not None:
                raise ValueError("lambdas is the cross-validation grid: it needs cv (the "
                                 "number of folds); without cv, reg_lambda is used")
            model = template.fit(factors, assets)
            cv_model = None
            reg_lambda = float(model.reg_lambda)
        else:
            if (isinstance(self.cv, bool) or not isinstance(self.cv, numbers.Integral)
                    or self.cv < 1):
                raise ValueError(f"cv must be None or a whole number of folds >= 1, "
                                 f"got {self.cv!r}")
            cv_model = LassoModelCV(lambdas=self.lambdas, n_splits=int(self.cv),
                                    base_model=template).fit(factors, assets)
            model = cv_model.best_model_
            reg_lambda = float(cv_model.best_lambda_)

        self.model_ = model
        self.cv_model_ = cv_model
        self.reg_lambda_ = reg_lambda
        self.loading_matrix_ = model.coef_.to_numpy(dtype=float, copy=True)
        if model.demean:
            self.intercepts_ = model.alpha_const_.to_numpy(dtype=float, copy=True)
        else:
            self.intercepts_ = np.zeros(assets.shape[1])
        return self


def _frames(X, y) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Assets and factors as DataFrames; unlabelled columns become ``x0..`` and ``f0..``."""
    assets = _frame(X, "X", "x")
    factors = _frame(y, "y (the factors)", "f")
    if len(assets) != len(factors):
        raise ValueError(f"X has {len(assets)} observations but the factors have "
                         f"{len(factors)}: they must be the same dates")
    if isinstance(X, pd.DataFrame) and isinstance(y, pd.DataFrame):
        if not assets.index.equals(factors.index):
            diff = assets.index.difference(factors.index)
            where = f" (first in X only: {diff[0]!r})" if len(diff) else ""
            raise ValueError(f"X and the factors have different dates{where}")
    else:
        factors = factors.set_axis(assets.index, axis=0)
    return assets, factors


def _frame(data, name: str, prefix: str) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, pd.Series):
        return data.to_frame()
    arr = np.asarray(data)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (observations x columns), got {arr.ndim}-D")
    return pd.DataFrame(arr, columns=[f"{prefix}{i}" for i in range(arr.shape[1])])


def _cell_matrix(matrix, name: str, assets: pd.DataFrame, factors: pd.DataFrame,
                 labelled: bool) -> pd.DataFrame:
    """An assets x factors input aligned to the fit's assets and factors, or a ValueError."""
    rows, cols = assets.columns, factors.columns
    if isinstance(matrix, pd.DataFrame):
        if not labelled:
            raise ValueError(
                f"{name} is a DataFrame, so X and the factors must be DataFrames too (their "
                f"column labels align it); with arrays, give an array of shape "
                f"{(len(rows), len(cols))} (assets x factors)"
            )
        if matrix.index.has_duplicates or matrix.columns.has_duplicates:
            raise ValueError(f"{name}: duplicate row or column labels")
        # Extra rows or columns are allowed (a pipeline may drop assets before the fit);
        # a misspelt label still fails, because the label it should have been is missing.
        missing = [a for a in rows if a not in matrix.index]
        if missing:
            raise ValueError(f"{name}: asset {missing[0]!r} of X has no row")
        missing = [f for f in cols if f not in matrix.columns]
        if missing:
            raise ValueError(f"{name}: factor {missing[0]!r} has no column")
        return matrix.loc[rows, cols]
    arr = np.asarray(matrix)
    if arr.shape != (len(rows), len(cols)):
        raise ValueError(
            f"{name}: expected shape {(len(rows), len(cols))} (assets x factors), got "
            f"{arr.shape}"
        )
    return pd.DataFrame(arr, index=rows, columns=cols)


def _group_data(groups, assets: pd.DataFrame, labelled: bool) -> pd.Series:
    """Asset -> group, aligned by label (a Series with labelled X) or by position."""
    rows = assets.columns
    if isinstance(groups, pd.Series) and labelled:
        return groups
    if isinstance(groups, pd.Series):
        raise ValueError("group_data is a Series, so X must be a DataFrame (its column labels "
                         f"align it); with an array X, give {len(rows)} group labels in asset "
                         "order")
    arr = np.asarray(groups, dtype=object)
    if arr.shape != (len(rows),):
        raise ValueError(f"group_data: expected one group per asset, shape {(len(rows),)}, "
                         f"got {arr.shape}")
    return pd.Series(arr, index=rows)
