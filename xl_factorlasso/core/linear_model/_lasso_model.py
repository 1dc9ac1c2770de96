"""``LassoModel``: sparse multi-output factor regression with signs, prior and group penalties."""

from __future__ import annotations

import numbers
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .._base import BaseEstimator, clone
from .._notes import names_text, note
from .._threads import limit_blas_threads
from ..cluster import (
    ClusterCorrelationTransform,
    DependenceMeasure,
    DistanceTransform,
    apply_cluster_correlation_transform,
    cluster_from_correlation,
    compute_dependence_matrix,
    ewm_lambda,
    pairwise_correlation,
)
from ..cluster._choices import parse_choice
from ..exceptions import ModelNotFittedError, SolveError
from ._adaptive import adaptive_weights
from ._auto_signs import (
    DetectedSigns,
    check_threshold,
    check_variance,
    detect_signs,
    resolve_signs,
)
from ._certified import CertifiedSolver, Solution
from ._collinearity import dependence_testable, dependent_columns, equal_columns
from ._compat import FactorlassoCompatMixin, overridden
from ._engine import DEFAULT_MAX_ITER, DEFAULT_TOL
from ._expert_bounds import (
    ExpertBounds,
    check_expert_params,
    exclusion_mask,
    expert_bounds,
    floor_centres,
    leave_one_out_budgets,
)
from ._lambda_max import lambda_max_from_stats
from ._model_type import LassoModelType
from ._ols_prior import (
    OlsPrior,
    _date_weights,
    check_named_set_params,
    check_ols_prior_params,
    ols_prior,
    zero_incompatible,
)
from ._penalty import PenaltySpec, penalty_value
from ._preparation import (
    PreparedPanel,
    SufficientStats,
    check_loss_normalization,
    coerce_panel_sums,
    prepare_panel,
)
from ._unilasso import UniLassoDesign, UniLassoSolver, unilasso_design, unilasso_spec

__all__ = ["LassoModel", "LassoEstimationResult", "lambda_max"]

MIN_ROWS = 5
# model types whose solvers take hard constraints (signs, floors, exclusions)
_HARD_CONSTRAINT_TYPES = ("LASSO", "GROUP_LASSO", "HIERARCHICAL_CLUSTER_GROUP_LASSO",
                          "FACTOR_CLUSTER_GROUP_LASSO")


@dataclass
class LassoEstimationResult:
    """In-sample diagnostics in the loss's EWMA norm (factorlasso's ``estimation_result_``).

    ``alpha`` is the weighted mean residual on the prepared data, ``ss_res`` the weighted mean
    squared residual, ``ss_total`` the weighted variance of the prepared response and
    ``r2 = 1 - ss_res / ss_total``.
    """

    estimated_beta: np.ndarray
    alpha: np.ndarray
    ss_total: np.ndarray
    ss_res: np.ndarray
    r2: np.ndarray


@dataclass
class _FitSetup:
    """Everything a solve needs that does not depend on ``reg_lambda``."""

    x: pd.DataFrame
    y: pd.DataFrame
    panel: PreparedPanel | None  # None once set up: its statistics are all a solve reads
    stats: SufficientStats
    spec: PenaltySpec
    clusters: pd.Series | None
    linkage: np.ndarray | None
    cutoff: float | None
    lambda_max: float
    cluster_span: float | None = None
    detected: DetectedSigns | None = None
    sign_span: float | None = None
    ols: OlsPrior | None = None
    unilasso: UniLassoDesign | None = None
    effective_prior: np.ndarray | None = None  # the prior centre before floor centring
    expert: ExpertBounds | None = None
    excluded: np.ndarray | None = None
    # cluster_mean budgets: (first-pass coef_, budget_rule_status_, the reg_lambda of both)
    first_pass: tuple | None = None
    # the rolling fit's carried window statistics (``core.rolling._incremental``): counts and
    # weighted means for _install instead of re-reading x and y
    window: object | None = None
    # the same from the preparation (PreparedPanel.n_obs, .means), kept without the panel
    n_obs: np.ndarray | None = None
    means: tuple | None = None

    def objective(self, coef: np.ndarray, reg_lambda: float,
                  terms: np.ndarray | None = None) -> float:
        """The objective at ``coef`` (N x M); for UniLasso stage two's, at ``theta = B / b``.
        ``terms``: ``stats.loss_terms(coef)`` when the caller has them (not for UniLasso)."""
        if self.unilasso is None:
            return self.stats.loss(coef, terms) + penalty_value(coef, self.spec, reg_lambda)
        theta = self.unilasso.theta(coef)
        return self.unilasso.stats.loss(theta) + penalty_value(theta, self.spec, reg_lambda)


class LassoModel(FactorlassoCompatMixin, BaseEstimator):
    """Sparse multi-output linear factor model ``y_t = alpha + B x_t + e_t``.

    The objective (see :mod:`xl_factorlasso.core.linear_model._formulation`) is the
    EWMA-weighted mean squared error of the (demeaned) panel plus ``reg_lambda`` times an
    L1, group or sparse-group penalty on ``B - B0``, with a sign constraint on every cell.
    Names, defaults and semantics follow factorlasso 1.0.6, so that on the same data the
    coefficients agree with it to solver tolerance.

    Parameters
    ----------
    model_type : LassoModelType or str, default LASSO
        ``LASSO``, ``UNILASSO``, ``GROUP_LASSO``, ``HIERARCHICAL_CLUSTER_GROUP_LASSO`` (alias
        ``GROUP_LASSO_CLUSTERS``, "HCGL"), ``FACTOR_CLUSTER_GROUP_LASSO`` ("FCGL"),
        ``COOPERATIVE_GROUP_LASSO`` ("COOP", on ``group_data``) or
        ``COOPERATIVE_CLUSTER_GROUP_LASSO`` ("CCGL", on discovered clusters). The cooperative
        types penalise each cluster x factor block's positive and negative parts apart (soft
        sign coherence) and take no sign constraint: ``factors_beta_loading_signs`` and
        ``nonneg=True`` are refused, derived signs are not enforced (``derived_signs_`` stays
        None) and adaptive weights are not used, as in factorlasso 1.0.6.
        ``UNILASSO`` (:mod:`~xl_factorlasso.core.linear_model._unilasso`, as factorlasso
        1.0.6) fits each response in two stages on its valid rows, unweighted (``span``
        only demeans): univariate slopes ``b``, then an L1-penalised regression on the
        univariate fits ``x_j b_j`` with weights ``theta``, ``B = theta * b``;
        ``reg_lambda`` penalises ``theta`` and the loss is ``(1/T_k)`` per response. It takes
        no signs, prior, ``nonneg``, ``auto_sign_constraints``, ``apply_ols_prior`` or
        ``loss_normalization="weight_sum"`` (ValueError); ``objective_value_`` and
        ``reg_lambda_max_`` are stage two's.
    group_data : pandas.Series, optional
        Response -> group label, required by ``GROUP_LASSO`` and ``COOPERATIVE_GROUP_LASSO``;
        must cover every response.
    reg_lambda : float, default 1e-5
        Penalty weight ``lambda >= 0``.
    span : float, optional
        EWMA span of the loss weights and the demeaning, ``lambda_w = 1 - 2/(span+1)``;
        ``None`` weights all rows equally.
    demean : bool, default True
        Subtract the column mean (``span=None``) or the causal EWMA mean before fitting.
    cutoff_fraction : float, default 0.5
        HCGL/FCGL: cut the dendrogram at this fraction of the largest pairwise distance, in (0, 1].
    n_clusters : int, optional
        HCGL/FCGL: cut into at most this many clusters instead. ``1`` puts every response in
        one cluster without computing their dependence or a linkage (``linkage_`` and
        ``cutoff_`` are then None).
    linkage_method : str, default "ward"
        SciPy linkage method for cluster discovery.
    group_penalty : {"normalized", "yuan_lin"}, default "normalized"
        Group weights ``sqrt(|g|/G)`` or ``sqrt(|g|)``.
    l1_weight : float, default 0.0
        Sparse-group mix ``a`` in [0, 1]: ``(1-a)`` group term + ``a`` L1 term.
    factors_beta_loading_signs : pandas.DataFrame, optional
        Responses x factors, each cell ``0`` (zero), ``1`` (>= 0), ``-1`` (<= 0) or NaN (free).
    factors_beta_prior : pandas.DataFrame, optional
        Responses x factors centre ``B0`` of the penalty (NaN = 0). Must respect the signs.
        With ``apply_ols_prior``: finite cells override the OLS centre (NaN defers to it) and
        a cell the final signs forbid is set to 0 instead of refused.
    nonneg : bool, default False
        All coefficients >= 0; ignored when a sign matrix is given (as in factorlasso).
    warmup_period : int, optional, default 12
        Responses with fewer valid observations are fitted, then their loadings are set to
        zero and their diagnostics to NaN (with a warning). ``None`` disables it.
    solver : str, default "CLARABEL"
        CVXPY solver name.
    solver_params : dict, optional
        Keyword arguments for ``solver`` (e.g. ``{"tol_gap_rel": 1e-10}`` for Clarabel, whose
        linear solver defaults to QDLDL here).
    solver_fallbacks : list of str, optional
        Solvers to try, in order and with their default settings, when ``solver`` fails.
    verbose : bool, default False
        Forwarded to the solver.
    engine : {"auto", "fast", "cvxpy"}, default "auto"
        ``"fast"``: the accelerated proximal-gradient engine on the sufficient statistics
        (:mod:`~xl_factorlasso.core.linear_model._engine`); :class:`SolveError` if it cannot
        certify within its budget. ``"cvxpy"``: the CVXPY formulation with ``solver``, in
        scaled units. ``"auto"``: the fast engine, falling back to CVXPY when the solution is
        not certified (``solver_`` then says so); an explicit ``solver`` other than CLARABEL or
        any ``solver_params`` is a request for that CVXPY solve, which ``"auto"`` honours.
        Whatever the engine, an answer is accepted only when its relative duality gap
        (computed from the data and the point alone) is at most ``tol``; an uncertified
        CVXPY answer is polished by the fast engine, else :class:`SolveError`. At
        ``reg_lambda >= reg_lambda_max_`` the prior is returned without a solve.
    engine_params : dict, optional
        ``tol`` (relative duality gap that certifies any answer, default 1e-8) and
        ``max_iter`` (the fast engine's iteration budget, default 20000).
    dependence_measure : {"pearson", "spearman", "gerber"}, default "pearson"
        HCGL/FCGL: dependence of the prepared responses that the clustering reads (see
        :func:`~xl_factorlasso.core.cluster.compute_dependence_matrix`).
    gerber_threshold : float, default 0.5
        ``"gerber"``: a move counts when beyond this many standard deviations, in [0, 1].
    distance_transform : {"one_minus_rho", "chord", "arccos"}, default "one_minus_rho"
        HCGL/FCGL: distance ``1 - rho``, ``sqrt(2 (1 - rho))`` or ``arccos(rho)`` that the
        linkage merges on (a ``cutoff_fraction`` does not carry over between them).
    cluster_correlation_transform : {"none", "remove_pc1"}, default "none"
        HCGL/FCGL: ``"remove_pc1"`` removes the dominant eigencomponent of the dependence
        matrix before clustering (see
        :func:`~xl_factorlasso.core.cluster.remove_first_principal_component`).
    cluster_correlation_span : float, optional
        HCGL/FCGL: EWMA span of the clustering (its demeaning and its weights); by default
        the fit's ``span``. A different span prepares the responses again with it.
    auto_sign_constraints : bool, default False
        Derive a sign for every cell from pooled univariate slopes on the prepared arrays
        (:mod:`~xl_factorlasso.core.linear_model._auto_signs`): per response for LASSO (and
        any single-response fit), per ``group_data`` group for GROUP_LASSO, per discovered
        cluster for HCGL/FCGL. Non-NaN cells of ``factors_beta_loading_signs`` override
        derived ones; a nonzero prior overrides a conflicting derived sign. With a sign
        matrix in force ``nonneg`` is ignored (as in factorlasso).
    auto_sign_threshold_t : float or None, default 0.75
        Screening gate: derived cells with ``|t| <`` this are forced to 0. ``None`` or 0: no
        gate; ``inf``: every derived cell 0. Must be >= 0 (factorlasso silently ignores a
        negative value).
    auto_sign_adaptive_weights : bool, default False
        With ``auto_sign_constraints``: adaptive penalty weights from the pooled slopes
        (:mod:`~xl_factorlasso.core.linear_model._adaptive`, as factorlasso 1.0.6): per-cell
        L1 weights ``1 / max(|slope|, floor)^gamma``, and their root mean squares on the row
        (GROUP_LASSO, HCGL) or cluster-by-factor block (FCGL) norms. Ignored without
        ``auto_sign_constraints``.
    auto_sign_adaptive_gamma, auto_sign_adaptive_floor : float, default 1.0, 1e-3
        The exponent ``gamma`` and the stabiliser ``floor`` of the adaptive weights (both
        finite and > 0).
    auto_sign_excluded_factors : list or tuple of str, optional
        Factors exempt from derived signs (their cells stay free unless signed explicitly).
    auto_sign_ewma_span : float, optional
        EWMA span of the date weights of the slopes (``None``: equal weights).
    auto_sign_use_fit_span : bool, default False
        Use ``span`` as the slopes' span instead (exclusive with ``auto_sign_ewma_span``).
    auto_sign_variance : {"independent", "date"}, default "independent"
        Variance of the screening t-statistic: responses of a pool independent, or scores
        summed by date (date-clustered sandwich).
    apply_ols_prior : bool, default False
        Centre the penalty on an empirical prior (:mod:`~xl_factorlasso.core.linear_model.\
_ols_prior`, as factorlasso 1.0.6): per response, the univariate weighted OLS slope (with
        intercept, on the original data, with the fit's span) of the factor selected by
        ``prior_selection_type``, 0 elsewhere. Finite cells of ``factors_beta_prior`` override
        it (NaN defers to it); a nonzero centre overrides a conflicting derived sign; a centre
        that the final signs (explicit, or ``nonneg`` without signs) forbid is set to 0.
    prior_selection_type : {"highest_r2"}, default "highest_r2"
        The factor with the highest weighted R2 (first in factor order on ties).
    factor_for_prior : dict or pandas.Series, optional
        Response -> factor (its univariate slope) or a list of up to 2 factors (the slopes of
        one joint weighted regression; a pair with weighted VIF > ``named_set_max_vif`` keeps
        its first factor), overriding the selection; omitted responses keep it. Needs
        ``apply_ols_prior``.
    max_named_factors : {1, 2}, default 2
        Most factors one ``factor_for_prior`` entry may name.
    named_set_max_vif : float >= 1 or None, default 2.5
        Largest weighted VIF of a named pair (on its joint regression's rows and weights);
        None: no check (a singular pair then has a zero centre).
    excluded_factors : dict or pandas.Series, optional
        Response -> factor or list of factors whose loadings are pinned to 0 (a hard zero over
        every sign layer; they cannot win the automatic OLS prior). A factor also named in
        ``factor_for_prior`` or with a nonzero ``factors_beta_prior`` cell is refused; responses
        not in ``y`` are ignored. Unlike factorlasso, ``nonneg`` keeps holding on the other
        cells (factorlasso's zero-sign matrix replaces ``nonneg``).
    expert_prior_bound_n_std : float >= 0, optional
        Floors on the selected OLS cells (see
        :mod:`~xl_factorlasso.core.linear_model._expert_bounds`):
        ``|B_ij| >= max(0, |c| - n_std * HAC_SE(c))`` on the side of the OLS target
        ``c``. Needs ``apply_ols_prior``.
    expert_prior_hac_lags : int >= 0, default 0
        Bartlett bandwidth (rows of the original grid) of the HAC standard errors.
    expert_prior_hac_lags_freq_dict : dict, optional
        Frequency -> lags, carried for callers that pick a cadence (a fit uses
        ``expert_prior_hac_lags``), as factorlasso.
    expert_prior_exposure_budget : pandas.DataFrame, optional
        Responses x factors budgets ``d_ij >= 0`` on the non-selected loadings; a response with a
        finite cell uses the exposure-budget slack instead of ``n_std`` standard errors.
    expert_prior_bound_centre : {"prior", "floor"}, default "prior"
        Penalty centre of a floored cell: the OLS target, or the floor itself.
    expert_prior_bound_scope : {"all", "named"}, default "all"
        Floor every selection, or only the ``factor_for_prior`` ones.
    expert_prior_budget_rule : {"n_std", "cluster_mean"}, default "n_std"
        ``"cluster_mean"`` (group models): budgets from a first, prior-free fit at the same
        ``reg_lambda``, the mean absolute loading of the other members of each cluster
        (``budget_first_pass_coef_``, ``budget_rule_status_``); not with cross-validation.
    loss_normalization : {"sample", "weight_sum"}, default "sample"
        ``"sample"``: every response's weighted squared error is divided by the number of
        prepared rows ``T'``. ``"weight_sum"``: response ``i``'s is divided by its own weight
        mass ``S_i = sum_t w_ti`` (a short history weighs as much as a long one). On a balanced
        panel the two fits agree at ``lambda_weight_sum = lambda_sample * T' / S``. The
        objective, ``reg_lambda_max_`` and the certificate follow it; the diagnostics do not
        change.
    unilasso_loo : bool, default True
        UNILASSO: stage two regresses on leave-one-out univariate fits (each row's slope
        refitted without it, as published); False: on the in-sample fits.
    unilasso_non_negative : bool, default True
        UNILASSO: ``theta >= 0``, so each loading keeps the sign of its univariate slope.

    Attributes
    ----------
    coef_ : pandas.DataFrame, shape (N, M)
        Loadings, responses x factors.
    alpha_const_ : pandas.Series, shape (N,)
        Economic intercept ``ybar_w - B xbar_w`` with the loss's weights on the original data;
        :meth:`predict` adds it.
    intercept_ : pandas.Series, shape (N,)
        Weighted mean residual of the prepared (demeaned) problem; 0 without a span. Kept for
        factorlasso compatibility: use ``alpha_const_`` as the intercept.
    clusters_ : pandas.Series or None
        Group label per response (user groups or discovered clusters).
    linkage_ : numpy.ndarray or None
        SciPy linkage matrix of the cluster discovery.
    cutoff_ : float or None
        Dendrogram cut height.
    effective_cluster_correlation_span_ : float or None
        Span the clustering used (``cluster_correlation_span``, else ``span``).
    r2_ : pandas.Series
        In-sample weighted R^2 per response.
    residual_variance_, total_variance_ : pandas.Series
        Weighted residual and total variance per response (the loss's EWMA norm).
    n_obs_ : pandas.Series
        Valid observations per response.
    estimation_result_ : LassoEstimationResult
        The same diagnostics as arrays (factorlasso compatible).
    solver_status_ : str
        Always ``"optimal"``: a fit is installed only when certified (``duality_gap_ <=
        tol``, or for a LASSO within the gap's rounding floor at a point stationary to
        rounding: docs/formulation.md); nothing else is ever reported as a result.
    solver_ : str
        What produced the answer: ``"closed form"`` (``reg_lambda >= reg_lambda_max_``: the
        prior), ``"fast"``, a CVXPY solver name (e.g. ``"CLARABEL"``, or
        ``"CLARABEL (optimal_inaccurate, certified)"`` when the solver doubted an answer the
        certificate accepts), ``"CLARABEL + fast polish"`` (CVXPY's answer needed the fast
        engine to be certified), each followed by e.g.
        ``" (fast engine not certified: gap 3e-06)"`` after an automatic fallback.
    duality_gap_ : float
        Relative duality gap of the answer, ``(F(B) - dual bound) / F(B)``: an upper bound of
        its relative distance to the optimal objective, for every engine.
    n_iter_ : int or None
        Fast-engine iterations (0 for the closed form, None for CVXPY's own answer).
    objective_value_ : float
        Objective at the solution (loss including its constant + penalty), before warmup zeroing.
    reg_lambda_max_ : float
        Smallest ``reg_lambda`` at which the fit equals the prior.
    n_features_in_, feature_names_in_
        Number and names of factors.
    derived_signs_ : pandas.DataFrame or None
        The sign matrix the solver used (explicit and/or derived), None without one.
    detected_signs_, sign_slopes_, sign_t_stats_, sign_effective_n_, sign_valid_counts_ : \
pandas.DataFrame or None
        With ``auto_sign_constraints``: the gated detected signs (before overrides and
        exclusions), the pooled slopes, their t-statistics, the Kish effective number of
        dates and the pooled valid observation counts, responses x factors; else None.
    effective_sign_span_ : float or None
        The span the slopes used.
    sign_penalty_weights_ : pandas.DataFrame or None
        With adaptive weights: the per-cell L1 weights, responses x factors; else None.
    sign_block_weights_ : numpy.ndarray, shape (G, M), or None
        With adaptive weights on FCGL blocks: the block weights, clusters (in the order of
        their first appearance in ``clusters_``, as factorlasso) x factors; else None.
    ols_betas_, ols_r2_ : pandas.DataFrame or None
        With ``apply_ols_prior``: the univariate weighted slopes and R2 of every
        (response, factor) pair on the original data (NaN where undefined); else None.
    ols_beta_prior_, effective_beta_prior_ : pandas.DataFrame or None
        With ``apply_ols_prior``: the selected OLS centres (before explicit overrides and
        signs), and the centre the solver used (after both); else None.
    effective_factor_for_prior_, named_set_diagnostics_ : dict, pandas.DataFrame or None
        With ``apply_ols_prior``: each response's named factors after the VIF check (empty:
        automatic), and per response ``requested_set``, ``named_set``, ``named_set_status``,
        ``largest_vif``; else None.
    excluded_factor_mask_ : pandas.DataFrame of bool or None
        The cells ``excluded_factors`` pinned to 0.
    prior_lower_bounds_, prior_upper_bounds_ : pandas.DataFrame or None
        With expert bounds: the floors (NaN: unbounded), responses x factors; else None.
    prior_bound_diagnostics_ : pandas.DataFrame or None
        One row per selected cell: OLS/HAC statistics, floor, slack, status, competitor.
    resolved_budgets_, budget_sources_, effective_prior_hac_lags_ : optional
        The budgets used (NaN: n_std rule) and their source per cell; the HAC bandwidth.
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

    # ------------------------------------------------------------------ validation
    def _checked_lambda(self, value=None) -> float:
        lam = self.reg_lambda if value is None else value
        if isinstance(lam, bool) or not isinstance(lam, numbers.Real) or not np.isfinite(lam):
            raise ValueError(f"reg_lambda must be a finite number >= 0, got {lam!r}")
        if lam < 0:
            raise ValueError(f"reg_lambda must be >= 0, got {lam!r}")
        return float(lam)

    def _checked_params(self) -> dict:
        model_type = LassoModelType.parse(self.model_type)
        l1 = self.l1_weight
        if isinstance(l1, bool) or not isinstance(l1, numbers.Real) or not 0.0 <= l1 <= 1.0:
            raise ValueError(f"l1_weight must be in [0, 1], got {l1!r}")
        cf = self.cutoff_fraction
        if isinstance(cf, bool) or not isinstance(cf, numbers.Real) or not 0.0 < cf <= 1.0:
            raise ValueError(f"cutoff_fraction must be in (0, 1], got {cf!r}")
        if self.span is not None:
            ewm_lambda(self.span)  # raises with the message users need
        if self.n_clusters is not None and (
            isinstance(self.n_clusters, bool)
            or not isinstance(self.n_clusters, numbers.Integral)
            or self.n_clusters < 1
        ):
            raise ValueError(f"n_clusters must be a whole number >= 1, got {self.n_clusters!r}")
        if self.group_penalty not in ("normalized", "yuan_lin"):
            raise ValueError(
                f"group_penalty must be 'normalized' or 'yuan_lin', got {self.group_penalty!r}"
            )
        if self.warmup_period is not None and (
            isinstance(self.warmup_period, bool)
            or not isinstance(self.warmup_period, numbers.Integral)
            or self.warmup_period < 0
        ):
            raise ValueError(
                f"warmup_period must be a whole number >= 0 or None, got {self.warmup_period!r}"
            )
        self._checked_auto_signs()
        if model_type.uses_group_data and self.group_data is None:
            raise ValueError(
                f"model_type {model_type.name} needs group_data (response -> group)")
        if model_type.is_cooperative:
            # factorlasso 1.0.6 refuses them too: the cooperative penalty takes no hard sign
            if self.factors_beta_loading_signs is not None:
                raise ValueError(
                    f"factors_beta_loading_signs is not supported by {model_type.name}, which "
                    "takes no sign constraint (its penalty favours sign-coherent blocks)")
            if self.nonneg:
                raise ValueError(
                    f"nonneg=True is not supported by {model_type.name}, which takes no sign "
                    "constraint (its penalty favours sign-coherent blocks)")
        check_loss_normalization(self.loss_normalization)
        self._checked_engine()
        self._checked_unilasso(model_type)
        check_named_set_params(self.max_named_factors, self.named_set_max_vif)
        selections = check_ols_prior_params(
            self.apply_ols_prior, self.prior_selection_type, self.factor_for_prior,
            self.max_named_factors)
        expert = check_expert_params(self, bool(self.apply_ols_prior))
        # floors and exclusions are hard constraints: only the solvers that take signs
        # (factorlasso refuses them for UniLasso and the cooperative types too)
        if model_type.name not in _HARD_CONSTRAINT_TYPES:
            for name, given in (("expert prior bounds", expert["enabled"]),
                                ("excluded_factors", self.excluded_factors is not None)):
                if given:
                    raise ValueError(f"{name} are not supported by {model_type.name}, which "
                                     "takes no hard constraint; use LASSO, GROUP_LASSO, HCGL "
                                     "or FCGL")
        return {"model_type": model_type, "l1_weight": float(l1), "cutoff_fraction": float(cf),
                "prior_selections": selections, "expert": expert,
                **self._checked_cluster_options()}

    def _checked_cluster_options(self) -> dict:
        """The cluster-discovery options, checked for every model type (as factorlasso does)."""
        c = self.gerber_threshold
        if isinstance(c, bool) or not isinstance(c, numbers.Real) or not 0.0 <= c <= 1.0:
            raise ValueError(f"gerber_threshold must lie in [0, 1], got {c!r}")
        span = self.span if self.cluster_correlation_span is None else (
            self.cluster_correlation_span)
        if self.cluster_correlation_span is not None:
            try:
                ewm_lambda(self.cluster_correlation_span)
            except ValueError:
                raise ValueError(
                    "cluster_correlation_span must be a finite number >= 1 or None, got "
                    f"{self.cluster_correlation_span!r}"
                ) from None
        return {
            "dependence_measure": parse_choice(
                DependenceMeasure, self.dependence_measure, "dependence_measure"),
            "gerber_threshold": float(c),
            "distance_transform": parse_choice(
                DistanceTransform, self.distance_transform, "distance_transform"),
            "cluster_correlation_transform": parse_choice(
                ClusterCorrelationTransform, self.cluster_correlation_transform,
                "cluster_correlation_transform"),
            "cluster_span": None if span is None else float(span),
        }

    def _checked_unilasso(self, model_type: LassoModelType) -> None:
        """The ``unilasso_*`` flags (always), and with UNILASSO the inputs its solver takes
        none of: refused as factorlasso does (ValueError), never silently dropped."""
        for name in ("unilasso_loo", "unilasso_non_negative"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if model_type is not LassoModelType.UNILASSO:
            return
        why = ("UNILASSO takes no sign constraint (unilasso_non_negative keeps each loading's "
               "univariate sign)")
        if self.factors_beta_loading_signs is not None:
            raise ValueError(f"factors_beta_loading_signs is not supported: {why}")
        if self.nonneg:
            raise ValueError(f"nonneg=True is not supported: {why}")
        if self.auto_sign_constraints:
            # factorlasso derives the signs and then ignores them; refusing is clearer
            raise ValueError(f"auto_sign_constraints=True is not supported: {why}")
        if self.factors_beta_prior is not None:
            raise ValueError("factors_beta_prior is not supported: UNILASSO takes no beta prior")
        if self.apply_ols_prior:
            raise ValueError("apply_ols_prior=True is not supported: UNILASSO takes no beta "
                             "prior")
        if self.loss_normalization != "sample":
            # stage two has its own per-response (1/T_k) loss, as in factorlasso
            raise ValueError(f"loss_normalization={self.loss_normalization!r} is not supported: "
                             "UNILASSO divides each response's loss by its own rows")

    def _checked_auto_signs(self) -> None:
        """The ``auto_sign_*`` parameters (checked whether or not derivation is on)."""
        for name in ("auto_sign_constraints", "auto_sign_adaptive_weights",
                     "auto_sign_use_fit_span"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        check_threshold(self.auto_sign_threshold_t)
        check_variance(self.auto_sign_variance)
        for name in ("auto_sign_adaptive_gamma", "auto_sign_adaptive_floor"):
            value = getattr(self, name)
            if (isinstance(value, bool) or not isinstance(value, numbers.Real)
                    or not 0 < value < np.inf):
                raise ValueError(f"{name} must be a number > 0, got {value!r}")
        if self.auto_sign_ewma_span is not None:
            ewm_lambda(self.auto_sign_ewma_span)
        if self.auto_sign_use_fit_span and self.auto_sign_ewma_span is not None:
            raise ValueError("give either auto_sign_use_fit_span or auto_sign_ewma_span, "
                             "not both")
        excluded = self.auto_sign_excluded_factors
        if excluded is not None and (
                not isinstance(excluded, (list, tuple))
                or any(not isinstance(name, str) for name in excluded)
                or len(set(excluded)) != len(excluded)):
            raise ValueError("auto_sign_excluded_factors must be a list of distinct factor "
                             f"names, got {excluded!r}")

    def _checked_engine(self) -> tuple[str, dict]:
        engine = self.engine.strip().lower() if isinstance(self.engine, str) else self.engine
        if engine not in ("auto", "fast", "cvxpy"):
            raise ValueError(f"engine must be 'auto', 'fast' or 'cvxpy', got {self.engine!r}")
        params = {"tol": DEFAULT_TOL, "max_iter": DEFAULT_MAX_ITER}
        given = self.engine_params or {}
        if not isinstance(given, dict):
            raise ValueError(f"engine_params must be a dict, got {type(given).__name__}")
        unknown = sorted(set(given) - set(params))
        if unknown:
            raise ValueError(f"engine_params: unknown key {unknown[0]!r}; known: max_iter, tol")
        params.update(given)
        tol, max_iter = params["tol"], params["max_iter"]
        if isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not 0 < tol < np.inf:
            raise ValueError(f"engine_params['tol'] must be a number > 0, got {tol!r}")
        if (isinstance(max_iter, bool) or not isinstance(max_iter, numbers.Integral)
                or max_iter < 1):
            raise ValueError(
                f"engine_params['max_iter'] must be a whole number >= 1, got {max_iter!r}"
            )
        return engine, {"tol": float(tol), "max_iter": int(max_iter)}

    def _uses_fast_engine(self) -> bool:
        engine, _ = self._checked_engine()
        if engine != "auto":
            return engine == "fast"
        # An explicit CVXPY solver or solver settings ask for that solve.
        return str(self.solver).upper() == "CLARABEL" and not self.solver_params

    @staticmethod
    def _cell_matrix(matrix, name: str, rows: pd.Index, cols: pd.Index) -> np.ndarray:
        """A responses x factors input as an array in (rows, cols) order, labels checked."""
        if isinstance(matrix, pd.DataFrame):
            if (matrix.index.equals(rows) and matrix.columns.equals(cols)
                    and all(dt.kind in "fiu" for dt in matrix.dtypes)):
                # already aligned numbers (e.g. the rolling fit's block-level copy): no label
                # to look up, nothing to convert or reorder
                values = matrix.to_numpy(dtype=float, copy=True)
                if np.isinf(values).any():
                    r, c = np.argwhere(np.isinf(values))[0]
                    raise ValueError(f"{name}[{rows[r]!r}, {cols[c]!r}] is infinite")
                return values
            missing_rows = [r for r in rows if r not in matrix.index]
            extra_rows = [r for r in matrix.index if r not in rows]
            missing_cols = [c for c in cols if c not in matrix.columns]
            extra_cols = [c for c in matrix.columns if c not in cols]
            if missing_rows:
                raise ValueError(f"{name}: response {missing_rows[0]!r} of y has no row")
            if extra_rows:
                raise ValueError(f"{name}: row {extra_rows[0]!r} is not a response in y")
            if missing_cols:
                raise ValueError(f"{name}: factor {missing_cols[0]!r} of x has no column")
            if extra_cols:
                raise ValueError(f"{name}: column {extra_cols[0]!r} is not a factor in x")
            if matrix.index.has_duplicates or matrix.columns.has_duplicates:
                raise ValueError(f"{name}: duplicate row or column labels")
            frame = matrix.loc[rows, cols]
        else:
            arr = np.asarray(matrix)
            if arr.shape != (len(rows), len(cols)):
                raise ValueError(
                    f"{name}: expected shape {(len(rows), len(cols))} (responses x factors), "
                    f"got {arr.shape}"
                )
            frame = pd.DataFrame(arr, index=rows, columns=cols)
        values = frame.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
        bad = frame.notna().to_numpy() & np.isnan(values)
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise ValueError(
                f"{name}[{rows[r]!r}, {cols[c]!r}]: {frame.iat[r, c]!r} is not a number"
            )
        if np.isinf(values).any():
            r, c = np.argwhere(np.isinf(values))[0]
            raise ValueError(f"{name}[{rows[r]!r}, {cols[c]!r}] is infinite")
        return values

    def _signs_and_prior(self, x: pd.DataFrame, y: pd.DataFrame, ols: OlsPrior | None,
                         explicit_prior: np.ndarray | None):
        """Explicit signs and the prior centre (the OLS prior ``ols`` overlaid by the finite
        cells of ``explicit_prior``, ``factors_beta_prior`` as read by ``_setup``). Without an
        OLS prior a conflict of the explicit prior with the signs is an error; with one,
        conflicting cells are zeroed later against the final signs (factorlasso's rule)."""
        signs = None
        if self.factors_beta_loading_signs is not None:
            signs = self._cell_matrix(
                self.factors_beta_loading_signs, "factors_beta_loading_signs", y.columns, x.columns
            )
            bad = ~np.isnan(signs) & ~np.isin(signs, (0.0, 1.0, -1.0))
            if bad.any():
                r, c = np.argwhere(bad)[0]
                raise ValueError(
                    f"factors_beta_loading_signs[{y.columns[r]!r}, {x.columns[c]!r}]: "
                    f"{float(signs[r, c])!r} is not one of 0, 1, -1 or blank"
                )
        prior = np.zeros((y.shape[1], x.shape[1]))
        if explicit_prior is not None:
            prior = np.nan_to_num(explicit_prior) if ols is None else np.where(
                np.isnan(explicit_prior), ols.prior, explicit_prior)
        elif ols is not None:
            prior = ols.prior.copy()
        if ols is not None:
            return signs, prior
        if signs is not None:
            conflict = ((signs == 0) & (prior != 0)) | ((signs == 1) & (prior < 0)) | (
                (signs == -1) & (prior > 0)
            )
            if conflict.any():
                r, c = np.argwhere(conflict)[0]
                raise ValueError(
                    f"factors_beta_prior[{y.columns[r]!r}, {x.columns[c]!r}] = {prior[r, c]!r} "
                    f"contradicts its sign constraint {int(signs[r, c])}"
                )
        elif self.nonneg and not self.auto_sign_constraints and (prior < 0).any():
            r, c = np.argwhere(prior < 0)[0]
            raise ValueError(
                f"factors_beta_prior[{y.columns[r]!r}, {x.columns[c]!r}] = {prior[r, c]!r} "
                "is negative but nonneg=True"
            )
        return signs, prior

    # ------------------------------------------------------------------ fitting
    def _setup(self, x, y, *, window=None) -> _FitSetup:
        """Validate inputs and derive everything that does not depend on ``reg_lambda``.

        ``window`` (the rolling fit's hook, :class:`~xl_factorlasso.core.rolling._incremental.\
Window`): the statistics of ``x``, ``y`` (already coerced) carried from the previous date,
        used instead of preparing the panel; it is only given for models that read nothing
        else of the prepared panel (no UNILASSO, no derived signs).
        """
        # (a rolling block's model: its parameters, checked once for all the dates)
        params = (self._checked_params() if window is None else
                  window.block.once("params", (self,), self._checked_params))
        model_type = params["model_type"]
        if window is None:
            x, y, x_sum = coerce_panel_sums(x, y)  # (the sums: preparation's first pass)
            panel = prepare_panel(x, y, span=self.span, demean=bool(self.demean), x_sum=x_sum)
            n_rows, any_valid = panel.n_rows, bool(panel.mask.any())
        else:
            panel, n_rows, any_valid = None, window.n_rows, window.any_valid
        if n_rows < MIN_ROWS:
            raise ValueError(
                f"too few rows: {n_rows} usable row(s) after preparation, "
                f"at least {MIN_ROWS} are needed"
            )
        if not any_valid:
            raise ValueError("y: no valid observation (every response cell is missing)")
        # A rolling window's block reads and checks the matrices once for all its dates (the
        # same parameters and labels give the same arrays; without an OLS prior, the signs and
        # the prior centre too); copies, so no date's arrays are another's.
        cells = (self, self.factors_beta_loading_signs, self.factors_beta_prior, y.columns,
                 x.columns)
        explicit_prior = None
        if self.factors_beta_prior is not None:
            def read_prior():
                return self._cell_matrix(self.factors_beta_prior, "factors_beta_prior",
                                         y.columns, x.columns)
            explicit_prior = (read_prior() if window is None else
                              window.block.once("explicit_prior", cells, read_prior).copy())
        exclusions = exclusion_mask(self.excluded_factors, x, y, params["prior_selections"],
                                  explicit_prior)
        ols = None
        if self.apply_ols_prior:
            ols = ols_prior(x, y, self.span, self.warmup_period, params["prior_selections"],
                            max_vif=self.named_set_max_vif, excluded=exclusions)
        if window is None or ols is not None:
            signs, prior = self._signs_and_prior(x, y, ols, explicit_prior)
        else:
            signs, prior = window.block.once(
                "signs_and_prior", cells + (self.nonneg, self.auto_sign_constraints),
                lambda: self._signs_and_prior(x, y, None, explicit_prior))
            signs = None if signs is None else signs.copy()
            prior = prior.copy()
        if exclusions is not None and exclusions.any():
            # a hard zero over every other sign layer, as factorlasso; nonneg still holds on
            # the other cells (factorlasso's sign matrix would silently drop it)
            if signs is None:
                fill = 1.0 if self.nonneg and not self.auto_sign_constraints else np.nan
                signs = np.full(prior.shape, fill)
            signs = np.where(exclusions, 0.0, signs)
        stats = (SufficientStats.from_panel(panel, self.loss_normalization) if window is None
                 else window.stats(self.loss_normalization))
        if not np.any(stats.yty > 0.0):
            what = "every column is constant" if self.demean else "every value is 0"
            raise ValueError(_too_small("y", y) or
                             f"y: no response varies ({what}): there is nothing to fit")
        _check_flat_factors(stats, x, bool(self.demean))
        if window is None:
            warn_dependent_factors(x, _factor_gram(stats, panel), panel.n_rows,
                                   column_sums=panel._cache.get("x_sum"))

        if model_type is LassoModelType.UNILASSO:
            design = unilasso_design(panel, bool(self.unilasso_loo))
            spec = unilasso_spec(design, bool(self.unilasso_non_negative))
            return _FitSetup(x, y, None, stats, spec, None, None, None,
                             lambda_max_from_stats(design.stats, spec),
                             params["cluster_span"], unilasso=design, n_obs=panel.n_obs,
                             means=panel.means)
        n = y.shape[1]
        geometry = model_type.geometry if n > 1 else "cell"  # one response: plain LASSO
        clusters = linkage = cutoff = None
        groups = group_weight = None
        if model_type.uses_group_data and n > 1:
            gd = self.group_data
            if not isinstance(gd, pd.Series):
                raise ValueError("group_data must be a pandas Series: response -> group")
            missing = y.columns[~y.columns.isin(gd.index)]  # (a loop: 0.7 ms at N = 500)
            if len(missing):
                raise ValueError(f"group_data: response {missing[0]!r} has no group")
            clusters = gd.loc[y.columns]
            if clusters.isna().any():
                raise ValueError(
                    f"group_data: response {clusters.index[clusters.isna()][0]!r} has no group"
                )
        elif model_type.discovers_clusters and n > 1 and self.n_clusters == 1:
            # one cluster whatever the dependence: no dependence matrix, no linkage
            clusters = pd.Series(np.ones(n, dtype=np.int32), index=y.columns, name="cluster")
        elif model_type.discovers_clusters and n > 1:
            dependence = None if window is None else window.dependence(params)
            if dependence is None and panel is None:
                panel = prepare_panel(x, y, span=self.span, demean=bool(self.demean))
            found = self._discover_clusters(x, y, panel, params, dependence)
            clusters, linkage, cutoff = found.labels, found.linkage, found.cutoff
        if clusters is not None:
            groups, n_groups = _group_codes(clusters)
            sizes = np.bincount(groups, minlength=n_groups).astype(float)
            if self.group_penalty == "normalized":
                group_weight = np.sqrt(sizes / n_groups)
            else:
                group_weight = np.sqrt(sizes)
        detected = sign_span = None
        if self.auto_sign_constraints:
            excluded = list(self.auto_sign_excluded_factors or ())
            unknown = [name for name in excluded if name not in x.columns]
            if unknown:
                raise ValueError(
                    f"auto_sign_excluded_factors: {unknown[0]!r} is not a factor in x")
            sign_span = self.span if self.auto_sign_use_fit_span else self.auto_sign_ewma_span
            # the slopes see the prepared arrays with their missing cells restored
            offset = len(x) - panel.n_rows
            detected = detect_signs(
                np.where(x.iloc[offset:].notna().to_numpy(), panel.x, np.nan),
                np.where(panel.mask, panel.y, np.nan),
                groups, sign_span, check_threshold(self.auto_sign_threshold_t),
                self.auto_sign_variance,
            )
            if not model_type.is_cooperative:  # diagnostics only: nothing enforces them
                signs = resolve_signs(detected.signs, signs, prior, x.columns.isin(excluded))
        if ols is not None:
            # only cells the final signs forbid lose their centre; nothing is re-selected
            prior = zero_incompatible(prior, signs, bool(self.nonneg))
        effective_prior, expert, first_pass, automatic = prior, None, None, None
        n_std = self.expert_prior_bound_n_std
        if params["expert"]["cluster_mean"]:
            first_pass = self._budget_first_pass(x, y, clusters)
            automatic = leave_one_out_budgets(first_pass[0], first_pass[3])[0]
            n_std = 1.0 if n_std is None else n_std  # small clusters: one standard error
        if params["expert"]["enabled"]:
            expert = expert_bounds(
                x, y, _date_weights(len(x), self.span), ols, ols.prior, prior, explicit_prior,
                signs, n_std=n_std,
                hac_lags=int(self.expert_prior_hac_lags),
                min_rows=max(3, int(self.warmup_period or 0)),
                budget=params["expert"]["budget"], scope=self.expert_prior_bound_scope,
                excluded=exclusions, automatic=automatic)
            if self.expert_prior_bound_centre == "floor":
                prior = floor_centres(prior, expert.lower, expert.upper)
        adaptive = None
        if (self.auto_sign_constraints and self.auto_sign_adaptive_weights
                and not model_type.is_cooperative):  # factorlasso's cooperative solve has none
            adaptive = self._adaptive_weights(detected, geometry, groups)
        pinned = stats.zero_cells()

        def penalty_spec():
            return PenaltySpec(
                geometry=geometry,
                groups=groups,
                group_weight=group_weight,
                l1_weight=params["l1_weight"],
                prior=prior,
                signs=signs,
                nonneg=bool(self.nonneg),
                # a factor that is identically zero on a response's observations (constant, or
                # missing there) leaves the loss: the penalty alone holds that cell at the prior
                pinned=pinned,
                cell_weight=None if adaptive is None else adaptive.cell,
                row_weight=None if adaptive is None else adaptive.row,
                block_weight=None if adaptive is None else adaptive.block,
                cooperative=model_type.is_cooperative and geometry == "block",
                lower_bound=None if expert is None else expert.lower,
                upper_bound=None if expert is None else expert.upper,
            )

        if (window is not None and groups is None and adaptive is None and expert is None
                and ols is None and not pinned.any()):
            # a rolling block's dates then share one spec, read-only (with its box, formed once:
            # PenaltySpec.box); they differ only by their statistics
            spec = window.block.once("spec", cells, lambda: _read_only(penalty_spec()))
        else:
            spec = penalty_spec()
        lam_max = lambda_max_from_stats(stats, spec)
        # the prepared panel (a float copy of y) is not kept: everything after this point reads
        # the statistics, so it is freed before the solve
        return _FitSetup(x, y, None, stats, spec, clusters, linkage, cutoff, lam_max,
                         params["cluster_span"], detected, sign_span, ols,
                         effective_prior=effective_prior, expert=expert, excluded=exclusions,
                         first_pass=first_pass and first_pass[:3], window=window,
                         n_obs=None if panel is None else panel.n_obs,
                         means=None if panel is None else panel.means)

    def _budget_first_pass(self, x, y, clusters) -> tuple:
        """``cluster_mean``: the unfloored, prior-free fit at this ``reg_lambda``, as
        factorlasso (signs, exclusions and adaptive weights kept).

        Returns ``(coef_, budget_rule_status_, reg_lambda, clusters_)``.
        """
        if clusters is None:
            raise ValueError(
                "expert_prior_budget_rule='cluster_mean' needs a partition of the responses: "
                "model_type GROUP_LASSO, HCGL or FCGL with more than one response")
        first = clone(self).set_params(
            expert_prior_budget_rule="n_std", expert_prior_bound_n_std=None,
            expert_prior_exposure_budget=None, apply_ols_prior=False, factor_for_prior=None,
            factors_beta_prior=None)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the main fit reports the same warnings
            first.fit(x, y)
        _, status = leave_one_out_budgets(first.coef_, first.clusters_)
        return first.coef_.copy(), status, self._checked_lambda(), first.clusters_

    def _adaptive_weights(self, detected: DetectedSigns, geometry: str, groups):
        """The adaptive weights of this fit; refused when one is not a positive finite number
        (an overflow of ``|slope|^gamma`` or ``floor^gamma``), never a silently unpenalised or
        infinitely penalised cell."""
        found = adaptive_weights(detected.slopes, detected.signs, geometry, groups,
                                 float(self.auto_sign_adaptive_gamma),
                                 float(self.auto_sign_adaptive_floor))
        for part in (found.cell, found.row, found.block):
            if part is not None and not np.all((part > 0) & np.isfinite(part)):
                raise ValueError(
                    "auto_sign_adaptive_gamma / auto_sign_adaptive_floor: the adaptive weights "
                    "1 / max(|slope|, floor)^gamma overflow (a weight is 0 or infinite) with "
                    f"gamma={self.auto_sign_adaptive_gamma!r}, "
                    f"floor={self.auto_sign_adaptive_floor!r}; use a smaller gamma or a "
                    "larger floor")
        return found

    def _discover_clusters(self, x, y, panel: PreparedPanel | None, params: dict,
                           dependence: np.ndarray | None = None):
        """Partition the responses from the dependence of their prepared values.

        Masked cells are missing again (zero-filling is the solver's convenience, not a zero
        return). A clustering span other than the fit's prepares the responses again with it
        (its own EWMA demeaning and first-row drop), as factorlasso does. ``dependence``: the
        same matrix computed from carried sums (the rolling fit), used as given.
        """
        span = params["cluster_span"]
        if dependence is None:
            if span != (None if self.span is None else float(self.span)):
                panel = prepare_panel(x, y, span=span, demean=bool(self.demean))
            if not panel.n_rows:
                raise ValueError(
                    "cluster_correlation_span: no row is left to cluster the responses")
            if (panel.y_shift is not None and span is None
                    and params["dependence_measure"] is DependenceMeasure.PEARSON):
                # A complete panel whose demeaning is deferred: y = values - y_shift is not
                # formed (a copy of the panel), Pearson being blind to the shift. (The
                # deferral needs |mean| <= sd per column, so the only columns y holds at 0
                # are all-zero values: no correlation either way.)
                dependence = pairwise_correlation(panel.values)
            else:
                # nothing to restore on a complete panel: no second copy of y
                observed = (panel.y if panel.mask.all()
                            else np.where(panel.mask, panel.y, np.nan))
                dependence = compute_dependence_matrix(
                    observed, params["dependence_measure"], span=span,
                    gerber_threshold=params["gerber_threshold"])
        # wrapped, not copied (pandas copies an array by default): nothing else holds it
        dependence = pd.DataFrame(dependence, index=y.columns, columns=y.columns, copy=False)
        try:
            dependence = apply_cluster_correlation_transform(
                dependence, params["cluster_correlation_transform"])
        except ValueError as err:
            # Raised, as factorlasso does: a correlation beyond 1 has no common mode to remove.
            raise ValueError(
                f"cluster_correlation_transform='remove_pc1' cannot be applied: {err}. The "
                "dependence matrix of the responses is not a correlation matrix (with missing "
                "values and a span each pair is estimated over its own rows); use it without a "
                "span, or on responses without gaps"
            ) from None
        return cluster_from_correlation(
            dependence,
            cutoff_fraction=params["cutoff_fraction"],
            n_clusters=self.n_clusters,
            linkage_method=self.linkage_method,
            distance_transform=params["distance_transform"],
        )

    @limit_blas_threads
    def fit(self, x, y, verbose=None, span=None, *, cluster_correlation_span=None) -> LassoModel:
        """Fit the model.

        Parameters
        ----------
        x : pandas.DataFrame or array-like, shape (T, M)
            Factor returns (missing rows allowed; a partly missing row is mean-imputed).
        y : pandas.DataFrame or array-like, shape (T, N)
            Response returns; NaN marks a missing observation (ragged histories are masked).
        verbose, span, cluster_correlation_span : optional
            Override the parameters of the same names for this fit only (None: the
            parameter), as factorlasso's ``fit``; without ``cluster_correlation_span`` (call
            or parameter) the clustering uses the effective ``span``. ``effective_span_``
            and ``effective_cluster_correlation_span_`` record what the fit used.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            Bad parameters or inputs; the message names the argument and the label (also a
            column whose values overflow the sums of squares, a panel where no response
            varies, or one where every response is shorter than ``warmup_period``).
        SolveError
            No answer could be certified (after every fallback and the polish), or a derived
            number overflowed; no fitted state is changed.
        """
        with overridden(self, verbose=verbose, span=span,
                        cluster_correlation_span=cluster_correlation_span):
            self._checked_lambda()  # a bad reg_lambda is reported before any preparation
            return self._fit_prepared(self._setup(x, y))

    @limit_blas_threads
    def fit_reg_lambda_path(self, x, y, reg_lambdas, verbose=None, span=None,
                            cluster_correlation_span=None) -> list[LassoModel]:
        """Fit at every ``reg_lambda`` of ``reg_lambdas``, sharing one preparation.

        Each returned model is what ``clone(self).set_params(reg_lambda=lam).fit(x, y, verbose,
        span, cluster_correlation_span=cluster_correlation_span)`` would be (same attributes,
        certified like any fit, see ``solver_status_``), so its coefficients agree with a
        fresh fit to the certification tolerance, not bit for bit. factorlasso 1.0.6's method
        of the same name and semantics.

        How: everything that does not depend on ``reg_lambda`` (preparation, statistics,
        clusters, signs, OLS prior, bounds, adaptive weights, ``lambda_max``, the intercept's
        weighted means) is derived once and one certified solver (one :class:`FastEngine`,
        its spectra computed once) solves the distinct values from the largest down, each
        warm-started at the previous answer; values at or above ``reg_lambda_max_`` are the
        prior in closed form. Exception: ``expert_prior_budget_rule="cluster_mean"`` budgets
        come from a first-pass fit at the same ``reg_lambda``, so that rule gets a fresh
        :meth:`fit` per value.

        The returned models share one read-only preparation (``x``, ``y`` and their
        statistics, not a copy per model); their fitted attributes are their own.

        Parameters
        ----------
        x, y
            As in :meth:`fit`.
        reg_lambdas : sequence of float
            Penalty weights ``>= 0``, in any order, duplicates allowed; not empty.
        verbose, span, cluster_correlation_span : optional
            As in :meth:`fit` (None: the parameter; factorlasso's ``verbose`` defaults to False).

        Returns
        -------
        list of LassoModel
            One fitted model per value, in the order of ``reg_lambdas``.

        Raises
        ------
        ValueError, SolveError
            As :meth:`fit` (an empty or invalid ``reg_lambdas`` before any preparation).
            ``self`` is never fitted or changed by this method, on success or on error.
        """
        try:
            values = [] if isinstance(reg_lambdas, (str, bytes)) else list(reg_lambdas)
        except TypeError:
            values = []
        if not values:
            raise ValueError("reg_lambdas must be a non-empty sequence of numbers >= 0, got "
                             f"{reg_lambdas!r}")
        lambdas = [self._checked_lambda(value) for value in values]
        overrides = {"verbose": verbose, "span": span,
                     "cluster_correlation_span": cluster_correlation_span}
        with overridden(self, **overrides):
            shared = None
            if not self._checked_params()["expert"]["cluster_mean"]:
                # the intercept's weighted means and the counts come with the preparation
                # (_FitSetup.means, .n_obs): every model of the path reads them, no new pass
                shared = self._setup(x, y)
                self._check_warmup(shared)
                solver = self._solver(shared)
        models: list[LassoModel | None] = [None] * len(lambdas)
        previous = None  # (lambda, Solution) of the last solve: the next warm start
        for j in sorted(range(len(lambdas)), key=lambda k: -lambdas[k]):
            lam = lambdas[j]
            model = clone(self).set_params(reg_lambda=lam)
            if shared is None:
                models[j] = model.fit(x, y, verbose, span,
                                      cluster_correlation_span=cluster_correlation_span)
                continue
            if previous is None or previous[0] != lam:
                warm = None if previous is None else previous[1].coef
                previous = (lam, solver.solve(lam, coef_init=warm))
            with overridden(model, **overrides):  # _install reads span, warmup_period
                model._install(shared, previous[1], lam)
            models[j] = model
        return models

    def _fit_prepared(self, setup: _FitSetup, *, coef_init=None) -> LassoModel:
        """:meth:`fit` on data already prepared by ``_setup`` (which ignores ``reg_lambda``,
        except for ``cluster_mean`` budgets: those are prepared again at another lambda);
        ``coef_init`` (N x M) warm-starts the fast engine (the rolling fit's previous date)."""
        lam = self._checked_lambda()
        if setup.first_pass is not None and setup.first_pass[2] != lam:
            setup = self._setup(setup.x, setup.y)
        self._check_warmup(setup)  # before the solve: a rolling window of a few rows
        self._install(setup, self._solver(setup, lam).solve(lam, coef_init=coef_init), lam)
        setup.stats.release_gram()  # (the model keeps the setup; a deferred Gram's root suffices)
        return self

    def _solver(self, setup: _FitSetup, reg_lambda=None) -> CertifiedSolver | UniLassoSolver:
        """The certified solve path for ``setup`` (reusable across lambdas, e.g. by CV, except
        with ``cluster_mean`` budgets, which hold for the ``reg_lambda`` of their first pass)."""
        if setup.first_pass is not None and reg_lambda != setup.first_pass[2]:
            raise ValueError(
                "expert_prior_budget_rule='cluster_mean': the budgets come from a first-pass "
                "fit at one reg_lambda, so one preparation cannot serve a grid of lambdas "
                "(cross-validation); use expert_prior_bound_n_std or declared budgets")
        kind, params = self._checked_engine()
        design = setup.unilasso
        certified = CertifiedSolver(
            setup.stats if design is None else design.stats, setup.spec, setup.lambda_max,
            engine=kind,
            use_fast=self._uses_fast_engine(), tol=params["tol"], max_iter=params["max_iter"],
            solver=self.solver, solver_params=self.solver_params,
            solver_fallbacks=self.solver_fallbacks, verbose=bool(self.verbose),
        )
        return certified if design is None else UniLassoSolver(design, certified)

    def _check_warmup(self, setup: _FitSetup) -> None:
        """ValueError when every response has fewer than ``warmup_period`` observations:
        nothing would be reported. Checked before the solve, which it would waste (a rolling
        fit of 5-row windows under warmup_period=12 solved every FCGL window first: 60-90 s
        for 204 dates, random search)."""
        if self.warmup_period is None:
            return
        n_obs = _observation_counts(setup)
        if np.all(n_obs < self.warmup_period):
            raise ValueError(
                f"y: every response has fewer than warmup_period={self.warmup_period} "
                f"observations (at most {int(np.max(n_obs, initial=0))}): nothing would be left "
                "to report; lower warmup_period or give a longer history"
            )

    def _install(self, setup: _FitSetup, solution: Solution, lam: float) -> None:
        """Derive every fitted attribute from a certified solution and set them together.

        Raises (changing nothing) when a number that should be finite is not. Its callers
        (``_fit_prepared``, ``fit_reg_lambda_path``) refuse a panel with no response left to
        report on before the solve (:meth:`_check_warmup`).
        """
        x, y, stats = setup.x, setup.y, setup.stats
        coef = solution.coef.copy()
        _check_solution(coef, x.columns, y.columns)
        with np.errstate(over="ignore", invalid="ignore"):
            terms = stats.loss_terms(coef)  # (the objective and the diagnostics both read them)
            objective = setup.objective(coef, lam, terms if setup.unilasso is None else None)
            diag = _diagnostics(stats, coef, terms)
        if not np.isfinite(objective):
            raise SolveError(f"the objective at the solution is {objective} (overflow): the "
                             "data or the prior are too large in magnitude", gap=solution.gap)
        counts = _observation_counts(setup)  # (NumPy: a Series' comparisons cost 0.1 ms)
        clusters = setup.clusters
        if self.warmup_period is not None:
            short = counts < self.warmup_period
            if short.any():
                names = list(y.columns[short])
                note(
                    f"{short.sum()} of {len(short)} responses have fewer than "
                    f"warmup_period={self.warmup_period} observations; their loadings are set "
                    f"to zero: {names_text(names)}",
                    UserWarning,
                    stacklevel=3,
                )
                coef[short] = 0.0
                for arr in diag.values():
                    arr[short] = np.nan
                if clusters is not None:
                    clusters = clusters.drop(y.columns[short])
        else:
            short = np.zeros(y.shape[1], dtype=bool)
            empty = counts == 0
            if empty.any():  # (with a warmup_period these are among the short ones, said above)
                names = list(y.columns[empty])
                note(
                    f"{empty.sum()} of {len(empty)} responses have no observation; their "
                    "loadings are the prior and their intercept, R^2 and residual variance are "
                    f"NaN: {names_text(names)}",
                    UserWarning,
                    stacklevel=3,
                )
        _note_prior_below_mean(setup, diag["r2"], ~short, bool(self.demean))
        with np.errstate(over="ignore", invalid="ignore"):
            x_means, y_means = _intercept_means(setup, self.span)
            alpha = y_means - np.einsum("nm,nm->n", coef, x_means)
        alpha[short] = np.nan
        # Stats and coefficients are finite; what is derived from them must be too.
        observed = (stats.mass > 0) & ~short
        for name, values in (("residual variance", diag["ss_res"]),
                             ("in-sample intercept", diag["alpha"]), ("alpha_const", alpha)):
            bad = observed & ~np.isfinite(values)
            if bad.any():
                raise SolveError(
                    f"the {name} of response {y.columns[np.flatnonzero(bad)[0]]!r} overflows: "
                    "the data or the loadings are too large in magnitude", gap=solution.gap)

        idx = y.columns
        self.coef_ = pd.DataFrame(coef, index=idx, columns=x.columns)
        self.alpha_const_ = pd.Series(alpha, index=idx, name="alpha_const")
        self.intercept_ = pd.Series(diag["alpha"], index=idx, name="intercept")
        self.r2_ = pd.Series(diag["r2"], index=idx, name="r2")
        self.residual_variance_ = pd.Series(diag["ss_res"], index=idx, name="residual_variance")
        self.total_variance_ = pd.Series(diag["ss_total"], index=idx, name="total_variance")
        self.estimation_result_ = LassoEstimationResult(
            estimated_beta=coef, alpha=diag["alpha"], ss_total=diag["ss_total"],
            ss_res=diag["ss_res"], r2=diag["r2"],
        )
        self.n_obs_ = pd.Series(counts, index=idx, name="n_obs")
        self.clusters_ = clusters
        self.linkage_ = setup.linkage
        self.cutoff_ = setup.cutoff
        self.solver_status_ = solution.status
        self.solver_ = solution.solver
        self.duality_gap_ = float(solution.gap)
        self.n_iter_ = solution.n_iter
        self.objective_value_ = float(objective)
        self.reg_lambda_max_ = setup.lambda_max
        self.effective_span_ = self.span
        self.effective_cluster_correlation_span_ = setup.cluster_span
        self.n_features_in_ = x.shape[1]
        self.feature_names_in_ = np.asarray(x.columns, dtype=object)
        signs = setup.spec.signs
        # (a copy: the spec's signs may be shared by a rolling block's dates)
        self.derived_signs_ = (None if signs is None else pd.DataFrame(
            signs.copy(), index=idx, columns=x.columns, copy=False))
        found = setup.detected
        for name, field in (("detected_signs_", "signs"), ("sign_slopes_", "slopes"),
                            ("sign_t_stats_", "t_stats"), ("sign_effective_n_", "effective_n"),
                            ("sign_valid_counts_", "valid_counts")):
            setattr(self, name, None if found is None else pd.DataFrame(
                getattr(found, field).copy(), index=idx, columns=x.columns))
        self.effective_sign_span_ = setup.sign_span
        ols = setup.ols
        for name, values in (("ols_betas_", None if ols is None else ols.betas),
                             ("ols_r2_", None if ols is None else ols.r2),
                             ("ols_beta_prior_", None if ols is None else ols.prior),
                             ("effective_beta_prior_",
                              None if ols is None else setup.effective_prior)):
            setattr(self, name, None if values is None else pd.DataFrame(
                values.copy(), index=idx, columns=x.columns))
        self._install_expert(setup)
        spec = setup.spec
        self.sign_penalty_weights_ = None if spec.cell_weight is None else pd.DataFrame(
            spec.cell_weight.copy(), index=idx, columns=x.columns)
        # rows in the order the clusters first appear in clusters_, as factorlasso's
        self.sign_block_weights_ = (None if spec.block_weight is None
                                    else spec.block_weight[pd.unique(spec.groups)])
        self._fit_setup_ = setup

    def _install_expert(self, setup: _FitSetup) -> None:
        """The named-set, exclusion and expert-bound attributes (factorlasso's names)."""
        idx, cols, ols, expert = setup.y.columns, setup.x.columns, setup.ols, setup.expert
        self.effective_factor_for_prior_ = (
            None if ols is None else {r: ols.named.get(r, ()) for r in idx})
        self.named_set_diagnostics_ = None if ols is None else ols.named_diagnostics.copy()
        self.excluded_factor_mask_ = (None if setup.excluded is None else pd.DataFrame(
            setup.excluded.copy(), index=idx, columns=cols))

        def frame(values):
            return pd.DataFrame(values.copy(), index=idx, columns=cols)

        self.prior_lower_bounds_ = None if expert is None else frame(expert.lower)
        self.prior_upper_bounds_ = None if expert is None else frame(expert.upper)
        self.prior_bound_diagnostics_ = None if expert is None else expert.diagnostics.copy()
        self.resolved_budgets_ = None if expert is None else expert.budgets.copy()
        self.budget_sources_ = None if expert is None else expert.budget_sources.copy()
        self.effective_prior_hac_lags_ = (None if expert is None
                                          else int(self.expert_prior_hac_lags))
        first = setup.first_pass
        self.budget_first_pass_coef_ = None if first is None else first[0].copy()
        self.budget_rule_status_ = None if first is None else first[1].copy()

    # ------------------------------------------------------------------ use
    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise ModelNotFittedError(
                f"this {type(self).__name__} is not fitted yet: call fit first")

    def _factor_matrix(self, x) -> tuple[np.ndarray, pd.Index | None]:
        names = self.coef_.columns
        if isinstance(x, pd.DataFrame):
            missing = [c for c in names if c not in x.columns]
            if missing:
                raise ValueError(f"x: factor {missing[0]!r} used in the fit is missing")
            return x.loc[:, names].to_numpy(dtype=float), x.index
        if isinstance(x, pd.Series):
            return self._factor_matrix(x.to_frame())
        arr = np.asarray(x, dtype=float)
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.shape[1] != len(names):
            raise ValueError(f"x: expected {len(names)} factor columns, got {arr.shape[1]}")
        return arr, None

    def predict(self, x):
        """Fitted responses ``x B' + alpha_const_`` (no constant when ``demean=False``).

        Returns a DataFrame (rows of ``x``, responses) for labelled input, else an array.
        """
        self._check_fitted()
        arr, index = self._factor_matrix(x)
        with np.errstate(over="ignore", invalid="ignore"):
            pred = arr @ self.coef_.to_numpy().T
            if self.demean:
                pred = pred + self.alpha_const_.to_numpy()
        _check_prediction(pred, arr, self.coef_.index)
        if index is None:
            return pred
        return pd.DataFrame(pred, index=index, columns=self.coef_.index)

    def score(self, x, y) -> float:
        """Mean over responses of the out-of-sample R^2 (test-sample mean; NaN pairs skipped).

        Responses with no variance or no observation are left out of the mean. A prediction
        or an R^2 that overflows is a ValueError naming the response, never an infinite score.
        """
        pred = np.asarray(self.predict(x), dtype=float)
        if isinstance(y, pd.DataFrame):
            yv = y.loc[:, self.coef_.index].to_numpy(dtype=float)
        else:
            yv = np.asarray(y, dtype=float)
            if yv.ndim == 1:
                yv = yv[:, None]
        return _mean_r2(yv, pred, self.coef_.index)

    def _scorer(self, setup: _FitSetup):
        """``(score, short)`` for many solutions on one training set, without installing them.

        ``score(coef, x_test, y_test)`` equals :meth:`score` of the model that ``_install``
        would build from ``coef`` (same zeroed short responses, intercept and R^2), on
        positional arrays; ``short`` flags the responses below ``warmup_period``. A
        cross-validation grid scores every lambda this way instead of building pandas
        attributes it throws away.
        """
        y = setup.y
        n_obs = _observation_counts(setup)
        short = np.zeros(y.shape[1], dtype=bool)
        if self.warmup_period is not None:
            short = n_obs < self.warmup_period
        x_means, y_means = _intercept_means(setup, self.span)

        def score(coef: np.ndarray, x_test: np.ndarray, y_test: np.ndarray) -> float:
            coef = np.where(short[:, None], 0.0, coef)
            with np.errstate(over="ignore", invalid="ignore"):
                pred = x_test @ coef.T
                if self.demean:
                    alpha = y_means - np.einsum("nm,nm->n", coef, x_means)
                    pred = pred + np.where(short, np.nan, alpha)
            _check_prediction(pred, x_test, y.columns)
            return _mean_r2(y_test, pred, y.columns)

        return score, short

    def objective(self, coef) -> float:
        """Objective of the last fitted data and penalty at ``coef`` (N x M)."""
        self._check_fitted()
        setup = self._fit_setup_
        b = np.asarray(coef.loc[self.coef_.index, self.coef_.columns] if isinstance(
            coef, pd.DataFrame) else coef, dtype=float)
        lam = self._checked_lambda()
        return float(setup.objective(b, lam))

    def lambda_max(self, x, y) -> float:
        """Smallest ``reg_lambda`` at which the fit on ``(x, y)`` equals the prior."""
        return self._setup(x, y).lambda_max


def lambda_max(x, y, **params) -> float:
    """Smallest ``reg_lambda`` at which ``LassoModel(**params)`` fits ``B = B0`` (the prior).

    For plain LASSO without prior this is ``max |(2/T) X'WY|`` on the prepared data.
    """
    return LassoModel(**params).lambda_max(x, y)


def warn_dependent_factors(x: pd.DataFrame, gram: np.ndarray | None = None,
                           n_rows: int | None = None, stacklevel: int = 5,
                           column_sums: np.ndarray | None = None) -> None:
    """A UserWarning naming factor columns that are linear combinations of one another on
    the rows of the fit, once demeaned (:mod:`._collinearity`): two equal columns, one
    proportional to another, ``MKT = MKT-RF + RF``. Any move of the loadings along the
    combination leaves the objective unchanged, so the loadings are not unique and two solves
    (warm and cold starts, a rolling fit in one block and in several) can differ along it,
    both certified: random search found serial and ``n_jobs=2`` rolling loadings 3e2 apart on
    two equal columns. ``gram``: the factors' ``X'WX`` on ``n_rows`` prepared rows when the
    caller has it; else formed from ``x`` (NaN-demeaned, missing cells at 0, as prepared).
    Where :func:`~._collinearity.dependence_testable` says no (too many factors, or dependent
    by count) only equal columns are looked for (``column_sums``: the sums of ``x``'s columns,
    when the caller has them)."""
    m = x.shape[1]
    if m < 2:
        return
    found = None
    if dependence_testable(m, len(x)):
        if gram is None:
            values = x.to_numpy(dtype=float)
            with np.errstate(over="ignore", invalid="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # an all-missing column
                centred = np.nan_to_num(values - np.nanmean(values, axis=0), nan=0.0)
                gram, n_rows = centred.T @ centred, len(values)
        if np.all(np.isfinite(gram)):  # (overflowing values: the preparation names them)
            found = dependent_columns(gram, int(n_rows))
    if found is None:
        found = equal_columns(x.to_numpy(dtype=float), column_sums)
    if not found:
        return
    names = [repr(x.columns[k]) for k in found]
    listed = f"{', '.join(names[:-1])} and {names[-1]}"
    what = ("are proportional" if len(found) == 2
            else "are linearly dependent (one is a combination of the others)")
    note(
        f"x: factors {listed} {what} on the rows of the fit, once demeaned: their loadings "
        "are not unique (moving them along that combination leaves the objective unchanged) "
        "and fits can split them differently; drop one of them",
        UserWarning, stacklevel=stacklevel)


def _check_flat_factors(stats: SufficientStats, x: pd.DataFrame, demean: bool) -> None:
    """Factors with the same value on every row of the fit (0 once demeaned; or 0 itself
    without ``demean``), or with none, explain nothing: their loadings stay at the prior.
    Every factor so: a ValueError (the fit returned the prior in silence, and a
    cross-validation chose the smallest lambda of a grid of equal scores); some: a UserWarning
    naming them (``x`` the fit's factors)."""
    flat = ~(stats.gram_diagonal() > 0.0).any(axis=0)
    if not flat.any():
        return
    what = "constant" if demean else "0"
    if flat.all():
        raise ValueError(_too_small("x", x) or f"x: every factor is {what} on the rows of the "
                         "fit: there is nothing to fit")
    empty = x.isna().all(axis=0).to_numpy()
    for names, state in ((x.columns[flat & ~empty], f"{what} on every row of the fit"),
                         (x.columns[flat & empty], "missing on every row of the fit")):
        if len(names):
            shown = ", ".join(map(repr, names[:10])) + (" ..." if len(names) > 10 else "")
            one = len(names) == 1
            note(f"x: factor{'' if one else 's'} {shown} {'is' if one else 'are'} "
                 f"{state}: {'its' if one else 'their'} loadings stay at the prior "
                 "(0 without one)", UserWarning, stacklevel=5)


#: Below this in magnitude (and not 0) a value's square nears the subnormal range (~2e-308),
#: where its digits are lost: the fit names such data, the workbook refuses such a cell.
UNDERFLOW_LIMIT = 1e-150


def _too_small(name: str, frame: pd.DataFrame) -> str | None:
    """Why nothing in ``frame`` varies for the fit when its values are not 0 but too small to
    square (all below :data:`UNDERFLOW_LIMIT` in magnitude: their squares lose their digits to
    underflow, 0 below ~1e-162), else None: returns of 1e-200 were said to be "constant"."""
    with np.errstate(invalid="ignore"):
        top = np.fmax.reduce(np.abs(frame.to_numpy(dtype=float)), axis=None, initial=0.0)
    if not 0.0 < top < UNDERFLOW_LIMIT:
        return None
    return (f"{name}: every value is at most {top:.3g} in magnitude: their squares lose their "
            "digits to underflow, so nothing varies for the fit; scale them up (returns are "
            "decimals: 0.05 for 5 %)")


def _factor_gram(stats: SufficientStats, panel) -> np.ndarray | None:
    """The prepared factors' Gram on every row, for :func:`warn_dependent_factors`: the
    statistics' own where one mask pattern covers every row, else one product of the prepared
    ``x`` (a pattern's Gram covers only its rows: a single response observed on 7 of 33 rows
    is dependent by count), None where that test does not apply (a deferred Gram: more
    factors than rows; too many factors)."""
    if stats.deferred or not dependence_testable(panel.x.shape[1], panel.n_rows):
        return None
    patterns = panel.mask_patterns()[0]
    if len(patterns) == 1 and patterns[0].all():
        return stats.gram[0]
    return panel.x.T @ panel.x


def _group_codes(labels: pd.Series) -> tuple[np.ndarray, int]:
    """``(codes, number of groups)``: the codes of ``pd.factorize(labels, sort=True)``.

    Integer labels (discovered clusters, the one cluster of ``n_clusters=1``) are coded by
    ``np.unique``, which sorts them as pandas does (and they hold no missing value): 5 us
    instead of pandas' 40 us a fit. Other labels (``group_data``'s strings, mixed types) go
    through pandas.
    """
    values = labels.to_numpy()
    if values.dtype.kind in "iu":
        uniques, codes = np.unique(values, return_inverse=True)
        return codes.astype(np.intp, copy=False), len(uniques)
    codes, uniques = pd.factorize(labels, sort=True)
    return np.asarray(codes), len(uniques)


def _read_only(spec: PenaltySpec) -> PenaltySpec:
    """``spec`` with its arrays read-only (shared by the dates of a rolling block)."""
    for value in vars(spec).values():
        if isinstance(value, np.ndarray):
            value.flags.writeable = False
    return spec


def _check_solution(coef: np.ndarray, factors: pd.Index, responses: pd.Index) -> None:
    """SolveError naming the first non-finite coefficient (never install NaN or inf)."""
    bad = ~np.isfinite(coef)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise SolveError(
            f"the solution is not finite: coefficient of response {responses[r]!r} on factor "
            f"{factors[c]!r} is {coef[r, c]}"
        )


def _diagnostics(stats: SufficientStats, coef: np.ndarray,
                 terms: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """factorlasso's in-sample diagnostics from the sufficient statistics (no T x N residuals);
    ``terms``: ``stats.loss_terms(coef)`` when the caller has them."""
    if terms is None:
        terms = stats.loss_terms(coef)
    with np.errstate(invalid="ignore", divide="ignore"):
        mass = np.where(stats.mass > 0, stats.mass, np.nan)
        xw = stats.xw[stats.pattern]
        alpha = (stats.yw - np.einsum("nm,nm->n", coef, xw)) / mass
        ss_res = np.maximum(terms, 0.0) / mass
        ymean = stats.yw / mass
        ss_total = np.maximum(stats.yty / mass - ymean**2, 0.0)
        r2 = np.where(ss_total > 0, 1.0 - ss_res / ss_total, np.nan)
    return {"alpha": alpha, "ss_res": ss_res, "ss_total": ss_total, "r2": r2}


def _note_prior_below_mean(setup: _FitSetup, r2: np.ndarray, reported: np.ndarray,
                           demean: bool) -> None:
    """Note the responses whose in-sample R^2 is below 0 under a prior centre.

    With demeaned data, zero loadings give R^2 = 0 and cost no more penalty than any others
    when the centre is 0, so the minimiser's R^2 is at least 0; below 0, a nonzero centre holds
    the loadings where they explain less than none would (the template's JGB10: a block-average
    prior of 0.91 on Rates against an OLS slope of 0.29, R^2 -0.71). The user sees a negative
    number without a reason otherwise. (Without demeaning zero loadings give no R^2 of 0, and
    UniLasso's R^2 is of its own design: no note.)"""
    if not demean or setup.unilasso is not None:
        return
    with np.errstate(invalid="ignore"):
        below = reported & (r2 < -1e-9)  # (not rounding's)
    if not below.any():  # (every fit and rolling date comes here: the prior read only below)
        return
    below[below] = np.any(setup.spec.prior[below] != 0.0, axis=1)
    if below.any():
        note(
            f"{below.sum()} of {len(below)} responses have an in-sample R^2 below 0: the "
            "penalty holds their loadings near a prior centre that explains less of their "
            "returns than no loadings would (a smaller reg_lambda lets the data move them, or "
            f"revise their prior): {names_text(setup.y.columns[below])}",
            UserWarning,
            stacklevel=4,
        )


def _observation_counts(setup: _FitSetup) -> np.ndarray:
    """Finite observations of every response over the original rows, from the preparation
    (or the rolling window) instead of another pass over ``y``."""
    if setup.window is not None:
        return np.asarray(setup.window.n_obs)
    if setup.n_obs is not None:
        return setup.n_obs
    return np.isfinite(setup.y.to_numpy(dtype=float)).sum(axis=0)


def _intercept_means(setup: _FitSetup, span) -> tuple[np.ndarray, np.ndarray]:
    """``(xbar_w, ybar_w)`` of the economic intercept ``ybar_w - B xbar_w`` (weights
    ``lambda^(T-1-t)`` on each response's valid rows; a missing factor cell counts as 0, as in
    factorlasso): carried by the rolling window or summed during the preparation."""
    if setup.window is not None:
        return setup.window.weighted_means()
    if setup.means is not None:
        return setup.means
    return _weighted_means(setup.x, setup.y, span)


def _weighted_means(x: pd.DataFrame, y: pd.DataFrame, span) -> tuple[np.ndarray, np.ndarray]:
    """``(xbar_w, ybar_w)`` per response: (N, M) and (N,), of :func:`_intercept_means`, from
    the frames (a setup prepared without them)."""
    xa = x.to_numpy(dtype=float)
    ya = y.to_numpy(dtype=float)
    t_rows = len(xa)
    w = np.ones(t_rows) if span is None else ewm_lambda(span) ** np.arange(t_rows - 1, -1, -1.0)
    valid = np.isfinite(ya) & ~np.isnan(xa).all(axis=1)[:, None]
    wv = w[:, None] * valid  # (T, N)
    with np.errstate(invalid="ignore", divide="ignore"):
        tot = wv.sum(axis=0)
        x_means = (wv.T @ np.nan_to_num(xa)) / tot[:, None]
        y_means = np.einsum("tn,tn->n", wv, np.nan_to_num(ya)) / tot
    return x_means, y_means


def _raise_overflow(response) -> None:
    raise ValueError(
        f"x: the prediction of response {response!r} overflows (factor values too large for "
        "its loadings)"
    )


def _check_prediction(pred: np.ndarray, x: np.ndarray, responses: pd.Index) -> None:
    """ValueError when a prediction from a complete factor row is infinite."""
    over = np.isinf(pred) & np.isfinite(x).all(axis=1)[:, None]
    if over.any():
        _raise_overflow(responses[int(np.flatnonzero(over.any(axis=0))[0])])


def _mean_r2(y: np.ndarray, pred: np.ndarray, responses: pd.Index) -> float:
    """Mean R^2 over the responses that can be scored (NaN when none can).

    Raises ValueError naming the response when a prediction overflows where ``y`` is
    observed, or when its R^2 is too large in magnitude to represent.
    """
    over = np.isinf(pred) & np.isfinite(y)
    if over.any():
        _raise_overflow(responses[int(np.flatnonzero(over.any(axis=0))[0])])
    r2 = _r2_columns(y, pred)
    if np.isinf(r2).any():
        col = int(np.flatnonzero(np.isinf(r2))[0])
        raise ValueError(
            f"the R^2 of response {responses[col]!r} overflows: its prediction errors are too "
            "large next to its variance in y on this sample to be represented (check the units "
            "of x and y)"
        )
    return float(np.nanmean(r2)) if np.isfinite(r2).any() else float("nan")


def _r2_columns(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """R^2 per column over the pairs where both are finite; NaN without variance.

    Deviations and residuals are divided by their largest magnitude before squaring, so
    neither sum overflows nor underflows whatever the units.
    """
    ok = np.isfinite(y) & np.isfinite(pred)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        count = ok.sum(axis=0)
        yz = np.where(ok, y, 0.0)
        mean = yz.sum(axis=0) / count
        dev = np.where(ok, y - mean, 0.0)
        res = np.where(ok, y - pred, 0.0)
        sd = np.abs(dev).max(axis=0, initial=0.0)
        sr = np.abs(res).max(axis=0, initial=0.0)
        ss_tot = ((dev / np.where(sd > 0, sd, 1.0)) ** 2).sum(axis=0)
        ss_res = ((res / np.where(sr > 0, sr, 1.0)) ** 2).sum(axis=0)
        ratio = ss_res / ss_tot * (sr / np.where(sd > 0, sd, 1.0)) ** 2
        return np.where(sd > 0, 1.0 - ratio, np.nan)
