"""Maximum-diversification portfolio: maximise ``sigma'w / sqrt(w' Sigma w)``.

The thin public estimator: its parameters and the one choice specific to the objective, the
numerator ``sigma = sqrt(diag(Sigma))`` (skfolio's ``_weighted_volatilities``). Everything else
(constraints, the Charnes–Cooper cone program in :func:`._formulation._formulate`, diagnosis,
solving, fallback, predict) is :class:`._base.ConvexRatioOptimization`; see
``docs/maxdiv.md``.
"""

from __future__ import annotations

import numpy as np

from ._base import ConvexRatioOptimization
from ._risk import RiskModel

__all__ = ["MaximumDiversification"]


class MaximumDiversification(ConvexRatioOptimization):
    r"""Maximum-diversification portfolio (skfolio's parameter set, stricter checks).

    Maximises the diversification ratio

    .. math:: D(w) = \frac{\sigma^\top w - \text{costs}(w) - f^\top w - r_f}
                          {\sqrt{w^\top \Sigma w} + l_1 \lVert w\rVert_1 + l_2\lVert w\rVert_2^2}

    with :math:`\sigma = \sqrt{\operatorname{diag}\Sigma}`, by its Charnes–Cooper homogenisation
    (a second-order cone program, or its QP form when the risk alone is minimised over a dense
    covariance, solved by Clarabel through CVXPY; with per-asset bounds and a budget only, on a
    dense or a factor covariance, by a certified active-set solver instead, see ``solve_``).
    In the default case it is :math:`\sigma^\top w / \sqrt{w^\top\Sigma w}` over long-only,
    fully invested portfolios.

    Parameters
    ----------
    covariance : None, "sample", array-like, DataFrame, FactorCovariance or estimator, default=None
        The covariance :math:`\Sigma` (it replaces skfolio's ``prior_estimator``).

        * ``None`` / ``"sample"``: sample covariance of ``X`` (``ddof=1``, as skfolio's
          ``EmpiricalPrior``), or the EWMA covariance when ``span`` is set.
        * a matrix (n_assets x n_assets); a DataFrame is aligned to ``X`` by label. A matrix that
          is not positive definite has its eigenvalues clipped (with a warning), keeping the
          variances.
        * a :class:`~xl_factorlasso.core.covariance.FactorCovariance`
          ``B Sigma_f B' + diag(D)``: the cone uses ``B chol(Sigma_f)`` stacked with
          ``sqrt(D)``, never an n x n factor, and factor names become usable in
          ``linear_constraints`` (exposure constraints).
        * an unfitted estimator with ``fit(X)`` and ``covariance_`` (e.g.
          ``sklearn.covariance.LedoitWolf()``); it is cloned and fitted on ``X``.
    span : float, optional
        EWMA span (> 1) for the covariance of ``X``: decay ``lambda = 1 - 2 / (span + 1)``,
        weight ``lambda**k`` on the observation ``k`` periods before the last, EWMA-demeaned and
        bias-corrected exactly like pandas ``X.ewm(span=span).cov()`` at the last date.
    min_weights : float, dict, array-like of shape (n_assets,) or None, default=0.0
        Lower bounds. A dict maps asset names to bounds (others get 0; an unknown name is an
        error). ``None`` or ``-inf`` means no bound.
    max_weights : float, dict, array-like of shape (n_assets,) or None, default=1.0
        Upper bounds; dict entries missing get 1. ``None`` or ``inf`` means no bound.
    budget : float or None, default=1.0
        ``sum(w) == budget``. ``None`` for no budget constraint (the ratio is then
        scale-invariant and so is the scale of the weights, unless bounds fix it).
    min_budget, max_budget : float, optional
        ``sum(w) >= min_budget`` / ``<= max_budget``; require ``budget=None``.
    max_short, max_long : float, optional
        Caps (> 0) on the sum of negative weights (absolute) and of positive weights.
    transaction_costs : float, dict or array-like of shape (n_assets,), default=0.0
        Linear costs ``sum c_i |w_i - previous_i|`` (>= 0, per period like the returns),
        subtracted from the numerator.
    management_fees : float, dict or array-like of shape (n_assets,), default=0.0
        ``sum f_i w_i`` subtracted from the numerator.
    previous_weights : float, dict or array-like of shape (n_assets,), optional
        For costs, turnover and the ``"previous_weights"`` fallback; default zero. Unlike
        skfolio an unknown asset name is an error (it is not treated as a liquidation).
    groups : dict or array-like of shape (n_levels, n_assets), optional
        Group labels for ``linear_constraints``: ``{asset: [label, ...]}`` or one row of labels
        per level. Asset names (from ``X``/the covariance) are always usable too.
    linear_constraints : str or list of str, optional
        E.g. ``["Equity <= 0.5 * Bond", "US >= 0.1", "2*SPX + 3*Europe == Bond + 0.05"]``;
        grammar in :mod:`._equations`. An unknown name is a ``ValueError`` naming it.
    left_inequality, right_inequality : array-like of shape (m, n_assets) and (m,), optional
        ``left_inequality @ w <= right_inequality``; give both or neither.
    l1_coef, l2_coef : float, default=0.0
        Penalties added to the denominator: ``l1 |w|_1`` and ``l2 |w|_2^2``. (skfolio's l2
        term depends on the level of mean returns; this one does not.)
    risk_free_rate : float, default=0.0
        Subtracted from the weighted volatility in the numerator (X's periodicity); also used by
        ``predict``/``score``.
    min_return : float or array-like, optional
        Floor on the *net weighted volatility* ``N(w)`` (as skfolio: the numerator, not the
        mean return). An array solves once per value; ``weights_`` is then a DataFrame.
    max_tracking_error : float, optional
        ``||X w - y|| / sqrt(T - 1) <= max_tracking_error`` (RMSE against the benchmark ``y``
        given to ``fit``, not demeaned).
    max_turnover : float, optional
        Per-asset cap ``|w_i - previous_i| <= max_turnover`` (as skfolio; not the sum).
    solver : str, default="CLARABEL"
        Any installed CVXPY solver.
    solver_params : dict, optional
        Passed to ``problem.solve``. For Clarabel they are merged over
        ``{"tol_gap_abs": 1e-9, "tol_gap_rel": 1e-9, "tol_feas": 1e-9}`` (skfolio uses the two
        gap tolerances and replaces them with a user dict).
    scale_objective : float, optional
        Multiplies every objective term. Default ``sqrt(n_assets) / mean(sigma)``, so the
        objective is about ``sqrt(n_assets) / D``, near 1 (Clarabel's gap tolerances are
        absolute on objectives below 1).
    scale_constraints : float, optional
        Multiplies both sides of every built-in constraint. Default 1. (Constraints in return
        units are additionally divided by the mean volatility.)
    save_problem : bool, default=False
        Keep the CVXPY problem in ``problem_`` (also when the solve fails).
    add_objective : callable, optional
        ``f(y)`` or ``f(y, t)`` returning a convex scalar CVXPY expression added to the
        minimised objective. It receives the *homogenised* variables: ``y = t * w``, an
        affine expression of length n_assets, and ``t > 0``, a scalar ``cp.Variable``. Make it
        1-homogeneous in ``(y, t)``, i.e. ``t * g(w)``; ``g(w)`` then joins the denominator.
        Example: ``lambda y, t: 0.01 * cp.quad_over_lin(y, t)`` adds ``0.01 |w|^2``.
    add_constraints : callable, optional
        ``f(y)`` or ``f(y, t)`` returning a CVXPY constraint or a list of them, in the same
        homogenised variables. Multiply constants by ``t``: ``w_0 >= 0.2`` is
        ``y[0] >= 0.2 * t``; ``|w|_2^2 <= 1/20`` is ``cp.norm(y, 2) <= t / np.sqrt(20)``;
        ``w_0 >= 0.2 sum(w)`` is ``y[0] >= 0.2 * cp.sum(y)``. (skfolio passes only ``y``, which
        makes ``w``-unit constraints silently wrong.)
    portfolio_params : dict, optional
        Overrides for the :class:`Portfolio` built by ``predict``: ``name``,
        ``risk_free_rate``, ``transaction_costs``, ``management_fees``, ``previous_weights``.
    fallback : estimator, "previous_weights" or list of them, optional
        Tried in order when the optimisation fails (:class:`OptimizationError`: infeasible or
        numerical failure). An estimator is cloned, given ``previous_weights`` and fitted on the
        same ``X, y``; ``"previous_weights"`` returns those weights. Invalid inputs
        (``ValueError``) are not caught. A fit rescued by a fallback warns (``UserWarning``)
        naming the primary error and the fallback used.
    raise_on_failure : bool, default=True
        When every attempt fails: raise (True), or warn and set ``weights_ = None`` (False), in
        which case ``predict`` returns a failed :class:`Portfolio` with NaN measures.
    polish : bool, default=True
        Make weights at a corner of the problem exact (solver dust is not a weight): a weight
        within the certified tolerance (1e-6, relative to ``1 + |value|``) of its bound, of 0,
        of a turnover limit or (with transaction costs) of its previous weight is set to that
        value, and the other weights move by the least-norm change that keeps the budget, the
        equalities and every active inequality exact. The polished point is used only if it
        satisfies the bounds exactly and every other built-in constraint to 1e-12 relative,
        and its ratio is at most 1e-9 (relative) below the solver's; otherwise the solver's
        weights are kept and ``polish_`` says why. See ``docs/maxdiv.md``.
    warm_start : bool, default=False
        Start the next ``fit`` from this fit's ``weights_`` (scikit-learn's meaning): the
        dense and factor paths' pivoting begins with every weight at its bound on that bound
        and the others free, and falls back to its cold start when that does not answer. Only
        the time changes: the answer is certified as always. For a sequence of related fits on
        the same assets (a backtest's rebalancing dates); ignored when the assets differ,
        with transaction costs, and on the CVXPY paths.

    Attributes
    ----------
    weights_ : pandas.Series of shape (n_assets,), DataFrame (n_min_return, n_assets) or None
        Optimal weights, labelled by asset (a RangeIndex for unlabelled ``X``).
    problem_values_ : dict or list of dict
        ``expected_return`` (net weighted volatility ``N(w)``), ``risk`` (``sigma_p(w)``),
        ``regularization`` (``l1|w|_1 + l2|w|^2``), ``ratio`` (the maximised objective),
        ``diversification_ratio`` (``sigma'w / sigma_p``), ``factor`` (``t``), ``objective``
        (the homogenised objective without ``scale_objective``).
    problem_ : cvxpy.Problem
        Only with ``save_problem=True``.
    covariance_ : DataFrame, ndarray, FactorCovariance or fitted estimator
        The covariance used.
    asset_volatilities_ : pandas.Series
        ``sigma``, the volatilities in the numerator.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when the asset labels are all strings.
    fallback_ : estimator, "previous_weights" or None
        The fallback that produced ``weights_``.
    fallback_chain_ : list of (str, str) or None
        ``(estimator repr, "success" or error message)`` for each attempt, the primary first,
        when the fallback chain ran after a failure; None after a clean fit and when no
        ``fallback`` is set (as skfolio).
    error_ : str, list or None
        The primary failure message (a list aligned with rows for an array ``min_return``).
    polish_ : PolishReport, list of PolishReport or None
        What polishing did (``applied``, ``n_snapped``, ``max_change``, ``ratio_change``,
        ``note``); a list aligned with the rows for an array ``min_return`` (None for a failed
        row); None when the weights come from a fallback or the fit failed.
    solve_ : SolveReport or None
        Which path solved the fit (``path``: ``"dense"``, the active-set solver used for
        per-asset bounds (long-only or long-short) and a budget; ``"factor"``, the same on a
        ``FactorCovariance``, by Woodbury solves; ``"screened"`` or ``"cvxpy"``), the
        active-set solver's certified ``relative_gap`` (a bound on the relative loss of
        ratio), its ``exchanges``, and a ``note`` when that solver was tried and
        gave no certified answer, and whether it started from the previous fit
        (``warm_start``). After a
        failed solve it names the path that failed; None when the fit failed before a solve
        (invalid or infeasible inputs).
    """

    def __init__(
        self,
        covariance=None,
        span=None,
        min_weights=0.0,
        max_weights=1.0,
        budget=1.0,
        min_budget=None,
        max_budget=None,
        max_short=None,
        max_long=None,
        transaction_costs=0.0,
        management_fees=0.0,
        previous_weights=None,
        groups=None,
        linear_constraints=None,
        left_inequality=None,
        right_inequality=None,
        l1_coef=0.0,
        l2_coef=0.0,
        risk_free_rate=0.0,
        min_return=None,
        max_tracking_error=None,
        max_turnover=None,
        solver="CLARABEL",
        solver_params=None,
        scale_objective=None,
        scale_constraints=None,
        save_problem=False,
        add_objective=None,
        add_constraints=None,
        portfolio_params=None,
        fallback=None,
        raise_on_failure=True,
        polish=True,
        warm_start=False,
    ):
        self.covariance = covariance
        self.span = span
        self.min_weights = min_weights
        self.max_weights = max_weights
        self.budget = budget
        self.min_budget = min_budget
        self.max_budget = max_budget
        self.max_short = max_short
        self.max_long = max_long
        self.transaction_costs = transaction_costs
        self.management_fees = management_fees
        self.previous_weights = previous_weights
        self.groups = groups
        self.linear_constraints = linear_constraints
        self.left_inequality = left_inequality
        self.right_inequality = right_inequality
        self.l1_coef = l1_coef
        self.l2_coef = l2_coef
        self.risk_free_rate = risk_free_rate
        self.min_return = min_return
        self.max_tracking_error = max_tracking_error
        self.max_turnover = max_turnover
        self.solver = solver
        self.solver_params = solver_params
        self.scale_objective = scale_objective
        self.scale_constraints = scale_constraints
        self.save_problem = save_problem
        self.add_objective = add_objective
        self.add_constraints = add_constraints
        self.portfolio_params = portfolio_params
        self.fallback = fallback
        self.raise_on_failure = raise_on_failure
        self.polish = polish
        self.warm_start = warm_start

    def _numerator(self, risk: RiskModel) -> np.ndarray:
        """``sigma``, the asset volatilities: the numerator ``sigma'w`` of the ratio."""
        return risk.sigma
