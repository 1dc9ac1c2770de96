"""Maximum-diversification portfolio: maximise ``sigma'w / sqrt(w' Sigma w)``.

The ratio is maximised through its Charnes–Cooper homogenisation, a second-order cone program in
``y = t * w`` and the scale ``t > 0`` (see :func:`_formulate`, the one place the model is
written, and ``docs/maxdiv.md``).
"""

from __future__ import annotations

import copy
import inspect
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import cvxpy as cp
import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._base import BaseEstimator, clone
from ._equations import equations_to_matrix
from ._exceptions import InfeasibleProblemError, OptimizationError, SolverFailedError
from ._feasibility import LinearBlock, LinearSystem, irreducible_conflict
from ._polish import (
    RATIO_TOLERANCE,
    PolishReport,
    repair_cost,
    snap_and_restore,
    strict_violations,
)
from ._portfolio import Population, Portfolio
from ._risk import RiskModel, dense_root, resolve_risk_model
from ._validation import (
    asset_vector,
    check_returns,
    constraint_names,
    positive_float,
    real_float,
)

__all__ = ["MaximumDiversification", "NotFittedError"]

# A returned solution may violate a constraint by at most this much (weights units, scaled by
# 1 + |right-hand side|); anything worse is a failure, never a result.
_TOLERANCE = 1e-6
# skfolio's guard on the Charnes–Cooper scale.
_MIN_SCALE = 1e-12
_CLARABEL_DEFAULTS = {"tol_gap_abs": 1e-9, "tol_gap_rel": 1e-9, "tol_feas": 1e-9}
_PORTFOLIO_KEYS = ("name", "risk_free_rate", "transaction_costs", "management_fees",
                   "previous_weights")


# Screened solve (see MaximumDiversification._solve_screened): used from this many assets on,
# abandoned when the working set passes this fraction of them.
_SCREEN_MIN_ASSETS = 200
_SCREEN_MAX_FRACTION = 0.5
_SCREEN_ROUNDS = 8
_SCREEN_TOLERANCE = 1e-7
_SURROGATE_RANK = 20


def _screenable(spec: _Spec) -> bool:
    """Screening needs a dense covariance, an objective whose gradient is known (no
    add_objective), one solve, and y_j = 0 on a lower bound for most assets."""
    return (spec.risk_form in ("qp", "soc-dense") and spec.add_objective is None
            and spec.n >= _SCREEN_MIN_ASSETS
            and not spec.min_return_is_array and spec.lower is not None
            and np.count_nonzero(spec.lower == 0) > spec.n * _SCREEN_MAX_FRACTION)


def _low_rank_plus_diagonal(cov: np.ndarray, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """``F`` (n x rank) and ``d`` with ``Sigma ~ F F' + diag(d**2)`` and the same diagonal
    (randomised range finder with one power iteration, fixed seed)."""
    n = cov.shape[0]
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(cov @ rng.standard_normal((n, min(rank + 10, n))))[0]
    basis = np.linalg.qr(cov @ basis)[0]
    values, vectors = np.linalg.eigh(basis.T @ cov @ basis)
    top = np.argsort(values)[::-1][:rank]
    root = (basis @ vectors[:, top]) * np.sqrt(np.clip(values[top], 0.0, None))
    diag = np.diag(cov)
    residual = np.clip(diag - np.sum(root**2, axis=1), 1e-6 * diag, None)
    return root, np.sqrt(residual)


class NotFittedError(ValueError, AttributeError):
    """``predict``/``score`` called before ``fit``."""


@dataclass
class _Spec:
    """Validated inputs of one optimisation, in weight units."""

    n: int
    assets: pd.Index | None
    risk: RiskModel
    lower: np.ndarray | None  # may hold -inf
    upper: np.ndarray | None  # may hold +inf
    budget: float | None
    min_budget: float | None
    max_budget: float | None
    max_long: float | None
    max_short: float | None
    costs: np.ndarray | None  # None when all zero
    fees: np.ndarray | None
    previous: np.ndarray  # zeros when previous_weights is None
    previous_given: bool
    A_eq: np.ndarray
    b_eq: np.ndarray
    eq_labels: tuple[str, ...]
    A_ineq: np.ndarray
    b_ineq: np.ndarray
    ineq_labels: tuple[str, ...]
    turnover: float | None
    tracking_error: float | None
    tracking_root: np.ndarray | None  # R with ||R [w; 1]|| = ||X w - b|| (QR of [X, -b])
    tracking_scale: float  # sqrt(T - 1)
    min_returns: list[float] | None
    min_return_is_array: bool
    risk_free_rate: float
    l1: float
    l2: float
    add_objective: Callable | None
    add_constraints: Callable | None
    solver: str
    solver_params: dict
    scale_objective: float
    scale_constraints: float
    h: float  # Charnes–Cooper normalisation: (numerator - r_f) * t == h
    risk_form: str  # "qp", "soc-dense" or "soc-factor"


@dataclass
class _Handles:
    problem: cp.Problem
    y: cp.Variable
    t: cp.Variable
    min_return: cp.Parameter | None
    custom_objective: cp.Expression | None
    custom_constraints: list
    fixing: cp.Constraint | None = None  # y[excluded] == 0 in a screened solve
    params: dict = field(default_factory=dict)  # name -> cp.Parameter (a re-usable problem)
    min_return_scale: float = 1.0  # the min_return coefficient is min_return * rc

    def set_min_return(self, target: float):
        self.min_return.value = self.min_return_scale * target

    def update(self, values: dict):
        """Load new coefficients (same :func:`_signature` as the ones built) into the
        Parameters."""
        for name, param in self.params.items():
            param.value = values[name]
        self.min_return_scale = values["rc"]


def _n_positional(func: Callable, name: str) -> int:
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return 1
    required = [
        p for p in params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    if len(required) not in (1, 2):
        raise ValueError(
            f"{name} must take 1 argument (y) or 2 arguments (y, t), got {len(required)}"
        )
    return len(required)


def _call_custom(func: Callable, name: str, y: cp.Variable, t: cp.Variable):
    args = (y,) if _n_positional(func, name) == 1 else (y, t)
    try:
        return func(*args)
    except Exception as err:  # noqa: BLE001 - user code: report it with context
        raise ValueError(f"{name} raised {type(err).__name__}: {err}") from err


def _coefficients(spec: _Spec, working_set: np.ndarray | None) -> tuple[dict, dict]:
    """The data of the program: ``values`` (name -> number or array, every scale factor already
    multiplied in, so that each enters the model as one coefficient) and ``nonneg`` (names whose
    sign matters for convexity). In a re-usable problem each becomes a ``cp.Parameter``."""
    n = spec.n
    so, sc = spec.scale_objective, spec.scale_constraints
    # Constraints in return units (cones, numerator) are also divided by h = mean volatility:
    # the solver's feasibility tolerances are absolute, and a risk of 0.002 would otherwise be
    # resolved only to about 1e-6 relative.
    rc = sc / spec.h
    active = np.arange(n) if working_set is None else working_set
    values: dict[str, Any] = {"rc": rc, "so": so}
    nonneg = {"rc", "so", "costs", "l1", "l2", "te"}
    if spec.risk_form == "soc-factor":
        values["root"] = rc * spec.risk.factor_root.T
        values["residual"] = rc * spec.risk.residual_sd
    elif spec.risk_form == "soc-dense":
        cov = spec.risk.covariance
        if working_set is not None:
            cov = cov[np.ix_(active, active)]
        values["root"] = rc * dense_root(cov).T
    net_sigma = spec.risk.sigma - spec.fees if spec.fees is not None else spec.risk.sigma
    values["sigma"] = rc * net_sigma
    values["rf"] = rc * spec.risk_free_rate
    if spec.costs is not None:
        values["costs"] = rc * spec.costs
    if spec.costs is not None or spec.turnover is not None:
        values["previous"] = spec.previous
    for bound, name in ((spec.lower, "lower"), (spec.upper, "upper")):
        if bound is not None:
            idx = active[np.isfinite(bound[active])]
            if idx.size:
                values[name] = sc * bound[idx]
    for name in ("budget", "min_budget", "max_budget", "max_long", "max_short", "turnover"):
        if getattr(spec, name) is not None:
            values[name] = sc * getattr(spec, name)
    if spec.A_eq.shape[0]:
        values["b_eq"] = sc * spec.b_eq
    if spec.A_ineq.shape[0]:
        values["b_ineq"] = sc * spec.b_ineq
    if spec.tracking_error is not None:
        values["tracking"] = rc * spec.tracking_root[:, :n]
        values["benchmark"] = rc * spec.tracking_root[:, n]
        values["te"] = rc * spec.tracking_error * spec.tracking_scale
    if spec.min_returns is not None:
        values["min_return"] = rc * spec.min_returns[0]
    if spec.l1:
        values["l1"] = so * spec.l1
    if spec.l2:
        values["l2"] = so * spec.l2
    return values, {name: name in nonneg for name in values}


def _signature(spec: _Spec, role: str, values: dict) -> tuple:
    """Everything that fixes the structure of the re-usable program (all data not in
    :func:`_coefficients` included): equal signatures mean the same compiled problem applies."""
    def pattern(bound):
        return None if bound is None else np.isfinite(bound).tobytes()

    return (
        role, spec.n, spec.risk_form,
        None if spec.risk.factor_root is None else spec.risk.factor_root.shape[1],
        pattern(spec.lower), pattern(spec.upper),
        tuple(getattr(spec, name) is not None for name in (
            "budget", "min_budget", "max_budget", "max_long", "max_short", "costs", "turnover",
            "tracking_error", "min_returns")),
        spec.min_return_is_array, spec.A_eq.shape, spec.A_eq.tobytes(), spec.A_ineq.shape,
        spec.A_ineq.tobytes(), spec.scale_constraints, bool(spec.l1), bool(spec.l2),
        tuple((name, np.shape(value)) for name, value in values.items()),
    )


def _reusable(spec: _Spec) -> bool:
    """Whether the program is built once with Parameters and re-solved on new data: the factor
    form (a factor covariance) without user callables (their
    expressions may hold data we cannot see) and without a tracking-error cone (its (n+1)^2
    triangle comes from X). A dense n x n root or covariance as a Parameter makes CVXPY's DPP
    compilation far slower than a fresh constant build (measured: 43 s against 4.8 s for the
    cone at n = 1000), so dense covariances are always built afresh."""
    return (spec.risk_form == "soc-factor" and spec.add_objective is None
            and spec.add_constraints is None and spec.tracking_error is None)


def _build_problem(spec: _Spec, working_set: np.ndarray | None = None) -> _Handles:
    """The program with the data as constants (see :func:`_formulate`)."""
    return _formulate(spec, working_set, parametric=False)


def _build_parametric(spec: _Spec, values: dict | None = None) -> _Handles:
    """The program with the data as ``cp.Parameter``s (DPP), to be re-solved by
    :meth:`_Handles.update` on new data of the same :func:`_signature`."""
    return _formulate(spec, None, parametric=True, values=values)


def _formulate(spec: _Spec, working_set: np.ndarray | None, parametric: bool,
               values: dict | None = None) -> _Handles:
    """The homogenised (Charnes–Cooper) program, written once.

    With ``w = y / t`` and ``N(w) = sigma'w - fees'w - sum c|w - w_prev|`` (the net weighted
    volatility), maximising ``(N(w) - r_f) / (sigma_p(w) + l1 |w|_1 + l2 |w|_2^2)`` over the
    constraint set becomes::

        minimise   so * ( ||G' y|| + l1 |y|_1 + l2 |y|^2 / t + add_objective(y, t) )
        subject to N(y, t) - r_f t == h            (>= h when costs make N concave)
                   every weight constraint, multiplied through by t
                   t >= 0

    All terms are positively homogeneous in ``(y, t)``, so the optimum is the same for any
    ``h > 0``; ``h`` (the mean asset volatility) and ``so = 1 / mean volatility`` only keep the
    numbers near 1. ``G`` is a square root of Sigma: the factor model's ``[B chol(Sigma_f), diag(
    sqrt(D))]``, or a dense Cholesky factor. When the objective is the risk alone and Sigma is
    dense, ``(so ||G' y||)^2 = so^2 y' Sigma y`` is minimised instead (same minimiser, a QP that
    Clarabel factors faster than an n x n triangular cone). Transaction costs use
    ``z >= |y - w_prev t|`` (tight at the optimum, costs >= 0).

    Every datum is one coefficient from :func:`_coefficients`; with ``parametric`` each is a
    ``cp.Parameter`` and the program is DPP (parameter times variable only), so CVXPY compiles it
    once and later solves only substitute values.

    ``working_set`` (dense covariance only, never parametric; see
    :meth:`MaximumDiversification._solve_screened`) fixes ``y_j = 0`` outside it, drops their
    bound rows and keeps only ``Sigma[W, W]`` and ``y[W]`` in the objective; everything else is
    unchanged.
    """
    n = spec.n
    computed, nonneg = _coefficients(spec, working_set)
    values = computed if values is None else values
    params: dict[str, tuple] = {}
    if parametric:
        for name, value in values.items():
            params[name] = cp.Parameter(np.shape(value), name=name, value=value,
                                        nonneg=nonneg[name])
        P = params.__getitem__
    else:
        P = values.__getitem__
    y = cp.Variable(n, name="y")  # homogenised weights, y = t * w
    t = cp.Variable(nonneg=True, name="t")  # Charnes–Cooper scale (skfolio leaves it free)
    sc = spec.scale_constraints
    constraints: list[cp.Constraint] = []

    # Assets in play: all, or a screened solve's working set (the others are fixed at 0).
    active, y_active, fixing = np.arange(n), y, None
    if working_set is not None:
        active, y_active = working_set, y[working_set]
        fixing = y[np.setdiff1d(np.arange(n), working_set)] == 0
        constraints.append(fixing)

    # Risk t * sigma_p(w) = ||G' y||.
    if spec.risk_form == "soc-factor":
        s = cp.Variable(nonneg=True, name="s")
        root_y = cp.hstack([P("root") @ y, cp.multiply(P("residual"), y)])
        constraints.append(cp.SOC(P("rc") * s, root_y))
        risk_term = P("so") * s
    elif spec.risk_form == "qp":
        cov = spec.risk.covariance
        if working_set is not None:
            cov = cov[np.ix_(active, active)]
        risk_term = spec.scale_objective**2 * cp.quad_form(y_active, cp.psd_wrap(cov))
    else:
        s = cp.Variable(nonneg=True, name="s")
        constraints.append(cp.SOC(P("rc") * s, P("root") @ y_active))
        risk_term = P("so") * s

    # Numerator rc * t * N(w): weighted volatilities net of fees and transaction costs.
    numerator = P("sigma") @ y
    if spec.costs is not None:
        z = cp.Variable(n, nonneg=True, name="z")  # z >= |y - w_prev t|
        moved = y - P("previous") * t
        constraints += [z >= moved, z >= -moved]
        numerator = numerator - P("costs") @ z
        constraints.append(numerator - P("rf") * t >= sc)  # rc * h == sc
    else:
        constraints.append(numerator - P("rf") * t == sc)

    # Weight constraints, each homogenised by t (rows scaled by sc).
    for bound, name in ((spec.lower, "lower"), (spec.upper, "upper")):
        if name not in values:
            continue
        idx = active[np.isfinite(bound[active])]
        y_idx = y if idx.size == n else y[idx]
        constraints.append(sc * y_idx >= P(name) * t if name == "lower"
                           else sc * y_idx <= P(name) * t)
    if spec.budget is not None:
        constraints.append(sc * cp.sum(y) == P("budget") * t)
    if spec.min_budget is not None:
        constraints.append(sc * cp.sum(y) >= P("min_budget") * t)
    if spec.max_budget is not None:
        constraints.append(sc * cp.sum(y) <= P("max_budget") * t)
    if spec.max_long is not None:
        constraints.append(sc * cp.sum(cp.pos(y)) <= P("max_long") * t)
    if spec.max_short is not None:
        constraints.append(sc * cp.sum(cp.neg(y)) <= P("max_short") * t)
    if spec.A_eq.shape[0]:
        constraints.append((sc * spec.A_eq) @ y == P("b_eq") * t)
    if spec.A_ineq.shape[0]:
        constraints.append((sc * spec.A_ineq) @ y <= P("b_ineq") * t)
    if spec.turnover is not None:  # per asset, as skfolio: |w_i - w_prev_i| <= max_turnover
        constraints.append(sc * cp.abs(y - P("previous") * t) <= P("turnover") * t)
    if spec.tracking_error is not None:  # ||X w - b|| / sqrt(T-1) <= TE
        constraints.append(cp.SOC(P("te") * t, P("tracking") @ y + P("benchmark") * t))
    min_return = None
    if spec.min_returns is not None:  # N(w) >= min_return
        if spec.min_return_is_array and not parametric:
            min_return = cp.Parameter(name="min_return", value=values["min_return"])
        elif spec.min_return_is_array:
            min_return = params["min_return"]
        constraints.append(numerator >= (min_return if min_return is not None
                                         else P("min_return")) * t)

    custom_constraints: list[cp.Constraint] = []
    if spec.add_constraints is not None:
        out = _call_custom(spec.add_constraints, "add_constraints", y, t)
        custom_constraints = list(out) if isinstance(out, (list, tuple)) else [out]
        for c in custom_constraints:
            if not isinstance(c, cp.constraints.constraint.Constraint):
                raise ValueError(f"add_constraints must return CVXPY constraints, got "
                                 f"{type(c).__name__}")
            if not c.is_dcp():
                raise ValueError(f"add_constraints returned a non-convex (non-DCP) constraint: {c}")
        constraints += custom_constraints

    objective = risk_term
    if spec.l1:
        objective = objective + P("l1") * cp.norm1(y_active)
    if spec.l2:  # l2 |w|^2 * t = l2 |y|^2 / t: the penalty joins the ratio's denominator
        objective = objective + P("l2") * cp.quad_over_lin(y_active, t)
    custom_objective = None
    if spec.add_objective is not None:
        custom_objective = _call_custom(spec.add_objective, "add_objective", y, t)
        if not isinstance(custom_objective, cp.Expression) or custom_objective.size != 1:
            raise ValueError("add_objective must return a scalar CVXPY expression")
        if not custom_objective.is_convex():
            raise ValueError("add_objective must return a convex (DCP) expression; it is minimised")
        objective = objective + spec.scale_objective * custom_objective

    problem = cp.Problem(cp.Minimize(objective), constraints)
    return _Handles(problem, y, t, min_return, custom_objective, custom_constraints, fixing,
                    params, values["rc"])


class MaximumDiversification(BaseEstimator):
    r"""Maximum-diversification portfolio (skfolio's parameter set, stricter checks).

    Maximises the diversification ratio

    .. math:: D(w) = \frac{\sigma^\top w - \text{costs}(w) - f^\top w - r_f}
                          {\sqrt{w^\top \Sigma w} + l_1 \lVert w\rVert_1 + l_2\lVert w\rVert_2^2}

    with :math:`\sigma = \sqrt{\operatorname{diag}\Sigma}`, by its Charnes–Cooper homogenisation
    (a second-order cone program, or its QP form when the risk alone is minimised over a dense
    covariance, solved by Clarabel through CVXPY). In the default case it is
    :math:`\sigma^\top w / \sqrt{w^\top\Sigma w}` over long-only, fully invested portfolios.

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
        Multiplies every objective term. Default ``1 / mean(sigma)`` so the objective is about
        ``1 / D``.
    scale_constraints : float, optional
        Multiplies both sides of every built-in constraint. Default 1. (Constraints in return
        units are additionally divided by the mean volatility.)
    save_problem : bool, default=False
        Keep the CVXPY problem in ``problem_`` (also when the solve fails).
    add_objective : callable, optional
        ``f(y)`` or ``f(y, t)`` returning a convex scalar CVXPY expression added to the
        minimised objective. It receives the *homogenised* variables: ``y = t * w``, a
        ``cp.Variable(n_assets)``, and ``t > 0``, a scalar ``cp.Variable``. Make it
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
        (``ValueError``) are not caught.
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
        ``(estimator repr, "success" or error message)`` for each attempt after a failure.
    error_ : str, list or None
        The primary failure message (a list aligned with rows for an array ``min_return``).
    polish_ : PolishReport, list of PolishReport or None
        What polishing did (``applied``, ``n_snapped``, ``max_change``, ``ratio_change``,
        ``note``); a list aligned with the rows for an array ``min_return`` (None for a failed
        row); None when the weights come from a fallback or the fit failed.
    """

    _estimator_type = None  # an optimiser: y (benchmark returns) is optional

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

    # ------------------------------------------------------------------ validation

    def _validate(self, X, y) -> tuple[_Spec, np.ndarray | None]:
        values, assets = None, None
        if X is not None:
            values, assets, _ = check_returns(X)
        elif self.covariance is None or isinstance(self.covariance, str):
            raise ValueError("X is required unless a covariance matrix or FactorCovariance is "
                             "given")
        risk, assets, fitted_cov = resolve_risk_model(self.covariance, self.span, values, assets)
        n = risk.sigma.shape[0]
        self.covariance_ = fitted_cov

        lower = asset_vector(self.min_weights, "min_weights", n, assets, 0.0,
                             allow_none=True, allow_inf=True)
        upper = asset_vector(self.max_weights, "max_weights", n, assets, 1.0,
                             allow_none=True, allow_inf=True)
        if lower is not None and np.any(lower == np.inf):
            raise ValueError("min_weights cannot be +inf")
        if upper is not None and np.any(upper == -np.inf):
            raise ValueError("max_weights cannot be -inf")
        budget = real_float(self.budget, "budget", allow_none=True)
        min_budget = real_float(self.min_budget, "min_budget", allow_none=True)
        max_budget = real_float(self.max_budget, "max_budget", allow_none=True)
        for name, value in (("min_budget", min_budget), ("max_budget", max_budget)):
            if value is not None and budget is not None:
                raise ValueError(f"budget and {name} cannot both be set; set budget=None to use "
                                 f"{name}")
        max_long = positive_float(self.max_long, "max_long")
        max_short = positive_float(self.max_short, "max_short")

        costs = asset_vector(self.transaction_costs, "transaction_costs", n, assets, 0.0)
        if np.any(costs < 0):
            raise ValueError("transaction_costs must be >= 0 (negative costs are not convex)")
        fees = asset_vector(self.management_fees, "management_fees", n, assets, 0.0)
        previous = asset_vector(self.previous_weights, "previous_weights", n, assets, 0.0,
                                allow_none=True)

        A_eq, b_eq, eq_labels = np.zeros((0, n)), np.zeros(0), ()
        A_ineq, b_ineq, ineq_labels = np.zeros((0, n)), np.zeros(0), ()
        equations = self.linear_constraints
        if isinstance(equations, str):
            equations = [equations]
        if equations is not None:
            equations = list(np.asarray(equations, dtype=object).reshape(-1))
            names = constraint_names(n, assets, self.groups, risk.loadings)
            if not names and any(isinstance(e, str) and e.strip() for e in equations):
                raise ValueError("linear_constraints need names: pass X (or the covariance) as a "
                                 "DataFrame with asset names, or groups")
            parsed = equations_to_matrix(equations, names, n)
            A_eq, b_eq, eq_labels = parsed.A_eq, parsed.b_eq, parsed.equality_labels
            A_ineq, b_ineq, ineq_labels = parsed.A_ineq, parsed.b_ineq, parsed.inequality_labels
        elif self.groups is not None:
            constraint_names(n, assets, self.groups, risk.loadings)  # still validate groups
        if (self.left_inequality is None) != (self.right_inequality is None):
            raise ValueError("left_inequality and right_inequality must be given together")
        if self.left_inequality is not None:
            left = np.asarray(self.left_inequality, dtype=float)
            right = np.asarray(self.right_inequality, dtype=float)
            if left.ndim != 2 or left.shape[1] != n:
                raise ValueError(f"left_inequality must have shape (n_inequalities, {n}), got "
                                 f"{left.shape}")
            if right.shape != (left.shape[0],):
                raise ValueError(f"right_inequality must have shape ({left.shape[0]},), got "
                                 f"{right.shape}")
            if not (np.all(np.isfinite(left)) and np.all(np.isfinite(right))):
                raise ValueError("left_inequality/right_inequality contain NaN or inf")
            A_ineq = np.vstack([A_ineq, left])
            b_ineq = np.concatenate([b_ineq, right])
            ineq_labels += tuple(f"left_inequality row {i}" for i in range(left.shape[0]))

        turnover = positive_float(self.max_turnover, "max_turnover", strict=False)
        tracking_error = positive_float(self.max_tracking_error, "max_tracking_error")
        tracking_root, tracking_scale = None, 1.0
        if tracking_error is not None:
            if values is None:
                raise ValueError("max_tracking_error needs the returns X")
            if y is None:
                raise ValueError("max_tracking_error needs the benchmark returns y in fit(X, y)")
            bench = y.to_numpy(dtype=float) if isinstance(y, (pd.Series, pd.DataFrame)) else (
                np.asarray(y, dtype=float))
            if bench.ndim == 2 and bench.shape[1] == 1:
                bench = bench[:, 0]
            if bench.shape != (values.shape[0],):
                raise ValueError(f"y must be a 1-D benchmark of length {values.shape[0]}, got "
                                 f"shape {bench.shape}")
            if not np.all(np.isfinite(bench)):
                raise ValueError("y contains NaN or infinite values")
            # ||X w - b|| = ||R [w; 1]|| with R from a QR of [X, -b]: no T-sized cone.
            tracking_root = np.linalg.qr(np.column_stack([values, -bench]), mode="r")
            tracking_scale = float(np.sqrt(values.shape[0] - 1))

        min_returns, is_array = None, False
        if self.min_return is not None:
            if np.isscalar(self.min_return):
                min_returns = [real_float(self.min_return, "min_return")]
            else:
                arr = np.asarray(self.min_return, dtype=float).reshape(-1)
                if arr.size == 0 or not np.all(np.isfinite(arr)):
                    raise ValueError("min_return must be a finite number or a non-empty array")
                min_returns, is_array = [float(v) for v in arr], True

        r_f = real_float(self.risk_free_rate, "risk_free_rate")
        l1 = positive_float(self.l1_coef, "l1_coef", allow_none=False, strict=False)
        l2 = positive_float(self.l2_coef, "l2_coef", allow_none=False, strict=False)
        for name in ("add_objective", "add_constraints"):
            func = getattr(self, name)
            if func is not None:
                if not callable(func):
                    raise ValueError(f"{name} must be callable")
                _n_positional(func, name)

        solver = str(self.solver).upper()
        if solver not in cp.installed_solvers():
            raise ValueError(f"solver {self.solver!r} is not installed; installed: "
                             f"{cp.installed_solvers()}")
        if self.solver_params is not None and not isinstance(self.solver_params, Mapping):
            raise ValueError("solver_params must be a dict")
        solver_params = dict(_CLARABEL_DEFAULTS) if solver == "CLARABEL" else {}
        solver_params.update(self.solver_params or {})

        sigma_bar = float(np.mean(risk.sigma))
        scale_objective = positive_float(self.scale_objective, "scale_objective")
        scale_constraints = positive_float(self.scale_constraints, "scale_constraints")
        if risk.is_factor:
            risk_form = "soc-factor"
        elif l1 == 0 and l2 == 0 and self.add_objective is None:
            risk_form = "qp"
        else:
            risk_form = "soc-dense"

        if self.portfolio_params is not None:
            if not isinstance(self.portfolio_params, Mapping):
                raise ValueError("portfolio_params must be a dict")
            unknown = set(self.portfolio_params) - set(_PORTFOLIO_KEYS)
            if unknown:
                raise ValueError(f"portfolio_params has unknown keys {sorted(unknown)}; allowed: "
                                 f"{list(_PORTFOLIO_KEYS)}")
        if not isinstance(self.save_problem, (bool, np.bool_)):
            raise ValueError("save_problem must be a bool")
        if not isinstance(self.polish, (bool, np.bool_)):
            raise ValueError("polish must be a bool")

        spec = _Spec(
            n=n, assets=assets, risk=risk, lower=lower, upper=upper, budget=budget,
            min_budget=min_budget, max_budget=max_budget, max_long=max_long, max_short=max_short,
            costs=costs if np.any(costs) else None, fees=fees if np.any(fees) else None,
            previous=previous if previous is not None else np.zeros(n),
            previous_given=previous is not None,
            A_eq=A_eq, b_eq=b_eq, eq_labels=eq_labels, A_ineq=A_ineq, b_ineq=b_ineq,
            ineq_labels=ineq_labels, turnover=turnover, tracking_error=tracking_error,
            tracking_root=tracking_root, tracking_scale=tracking_scale,
            min_returns=min_returns, min_return_is_array=is_array, risk_free_rate=r_f,
            l1=l1, l2=l2, add_objective=self.add_objective, add_constraints=self.add_constraints,
            solver=solver, solver_params=solver_params,
            scale_objective=scale_objective if scale_objective is not None else 1.0 / sigma_bar,
            scale_constraints=scale_constraints if scale_constraints is not None else 1.0,
            h=sigma_bar, risk_form=risk_form,
        )
        return spec, values

    def _fallbacks(self) -> list:
        fallback = self.fallback
        if fallback is None:
            return []
        items = list(fallback) if isinstance(fallback, (list, tuple)) else [fallback]
        for item in items:
            if isinstance(item, str):
                if item != "previous_weights":
                    raise ValueError(f"fallback string {item!r} is not supported; only "
                                     "'previous_weights' is")
            elif not (hasattr(item, "fit") and hasattr(item, "get_params")):
                raise ValueError(f"fallback must be an estimator, 'previous_weights' or a list of "
                                 f"them, got {type(item).__name__}")
        return items

    # ------------------------------------------------------------------ feasibility

    def _linear_system(self, spec: _Spec) -> LinearSystem:
        """The linear part of the constraints as an LP in ``w`` (see :mod:`._feasibility`).

        Variables: ``w`` (free), then, when needed, ``p >= w`` (long parts, for ``max_long``),
        ``q >= -w`` (short parts, for ``max_short``) and ``z >= |w - previous|`` (for costs), all
        auxiliaries >= 0.
        """
        n = spec.n
        aux = [key for key, on in (("long", spec.max_long is not None),
                                   ("short", spec.max_short is not None),
                                   ("cost", spec.costs is not None)) if on]
        n_vars = n * (1 + len(aux))
        eye = sp.identity(n, format="csr")
        ones = sp.csr_matrix(np.ones((1, n)))

        def rows(w=None, **parts) -> sp.csr_matrix:
            """Stack per-variable blocks (same row count) into rows over all variables."""
            m = (w if w is not None else next(iter(parts.values()))).shape[0]
            blocks = [w if w is not None else sp.csr_matrix((m, n))]
            blocks += [parts.get(key, sp.csr_matrix((m, n))) for key in aux]
            return sp.hstack(blocks, format="csr")

        system = LinearSystem(n_vars=n_vars, n_assets=n)
        add = system.blocks.append
        if spec.lower is not None and np.isfinite(spec.lower).any():
            add(LinearBlock("min_weights", lower=spec.lower))
        if spec.upper is not None and np.isfinite(spec.upper).any():
            add(LinearBlock("max_weights", upper=spec.upper))
        if spec.budget is not None:
            add(LinearBlock(f"budget={spec.budget:g}", A_eq=rows(ones),
                            b_eq=np.array([spec.budget])))
        if spec.min_budget is not None:
            add(LinearBlock(f"min_budget={spec.min_budget:g}", A_ub=rows(-ones),
                            b_ub=np.array([-spec.min_budget])))
        if spec.max_budget is not None:
            add(LinearBlock(f"max_budget={spec.max_budget:g}", A_ub=rows(ones),
                            b_ub=np.array([spec.max_budget])))
        if spec.max_long is not None:  # w - p <= 0, sum(p) <= max_long
            add(LinearBlock(f"max_long={spec.max_long:g}",
                            A_ub=sp.vstack([rows(eye, long=-eye), rows(long=ones)], format="csr"),
                            b_ub=np.r_[np.zeros(n), spec.max_long]))
        if spec.max_short is not None:  # -w - q <= 0, sum(q) <= max_short
            add(LinearBlock(f"max_short={spec.max_short:g}",
                            A_ub=sp.vstack([rows(-eye, short=-eye), rows(short=ones)],
                                           format="csr"),
                            b_ub=np.r_[np.zeros(n), spec.max_short]))
        for i, text in enumerate(spec.eq_labels):
            add(LinearBlock(repr(text), A_eq=rows(sp.csr_matrix(spec.A_eq[i:i + 1])),
                            b_eq=spec.b_eq[i:i + 1]))
        for i, text in enumerate(spec.ineq_labels):
            name = text if text.startswith("left_inequality row") else repr(text)
            add(LinearBlock(name, A_ub=rows(sp.csr_matrix(spec.A_ineq[i:i + 1])),
                            b_ub=spec.b_ineq[i:i + 1]))
        if spec.turnover is not None:  # per asset: previous - turnover <= w <= previous + turnover
            add(LinearBlock(f"max_turnover={spec.turnover:g}",
                            lower=spec.previous - spec.turnover,
                            upper=spec.previous + spec.turnover))
        objective = np.zeros(n_vars)  # maximise N(w) = (sigma - fees)'w - costs'z
        objective[:n] = spec.risk.sigma - (spec.fees if spec.fees is not None else 0.0)
        if spec.costs is not None:
            system.structural.append(LinearBlock(
                "costs", A_ub=sp.vstack([rows(eye, cost=-eye), rows(-eye, cost=-eye)],
                                        format="csr"),
                b_ub=np.r_[spec.previous, -spec.previous]))
            start = n * (1 + aux.index("cost"))
            objective[start:start + n] = -spec.costs
        system.objective = objective
        return system

    @staticmethod
    def _asset_label(spec: _Spec) -> Callable[[int], str]:
        return (lambda i: repr(spec.assets[i])) if spec.assets is not None else (lambda i: f"#{i}")

    def _explain_conflict(self, spec: _Spec, conflict: list[str]) -> str:
        """Extra detail for the common bound/budget conflicts."""
        names = {c.split("=")[0] for c in conflict}
        label = self._asset_label(spec)
        details = []
        if names == {"min_weights", "max_weights"}:
            bad = np.flatnonzero(spec.lower > spec.upper)
            if bad.size:
                details.append("min_weights > max_weights for " +
                               ", ".join(label(i) for i in bad[:10]))
        if names == {"min_weights", "budget"} or names == {"min_weights", "max_budget"}:
            details.append(f"sum(min_weights) = {spec.lower.sum():g}")
        if names == {"max_weights", "budget"} or names == {"max_weights", "min_budget"}:
            details.append(f"sum(max_weights) = {spec.upper.sum():g}")
        return f" ({'; '.join(details)})" if details else ""

    def _precheck(self, spec: _Spec) -> float:
        """Raise InfeasibleProblemError if the linear constraints admit no portfolio with a
        positive ratio; return the largest attainable net weighted volatility."""
        system = self._linear_system(spec)
        status, top = system.maximum()
        if status == "infeasible":
            conflict = irreducible_conflict(system) or [b.name for b in system.blocks]
            raise InfeasibleProblemError(
                "Infeasible: no portfolio satisfies these constraints together: "
                f"{', '.join(conflict)}{self._explain_conflict(spec, conflict)}. Dropping or "
                "relaxing any one of them makes the rest feasible.",
                conflicts=tuple(conflict),
            )
        margin = 1e-9 * float(np.max(spec.risk.sigma))
        if status == "optimal" and top - spec.risk_free_rate <= margin:
            raise InfeasibleProblemError(
                f"Infeasible: risk_free_rate={spec.risk_free_rate:g} is not below the largest net "
                f"weighted volatility the constraints allow ({top:.6g}), so the diversification "
                "ratio cannot be positive",
                conflicts=("risk_free_rate",),
            )
        return top

    # ------------------------------------------------------------------ solve

    def _violations(self, spec: _Spec, w: np.ndarray, handles: _Handles,
                    min_return: float | None, X: np.ndarray | None) -> list[str]:
        """Every constraint the weights break by more than the tolerance."""
        out: list[str] = []

        def check(name: str, excess: np.ndarray | float, rhs: np.ndarray | float = 0.0):
            excess = np.atleast_1d(np.asarray(excess, dtype=float))
            limit = _TOLERANCE * (1.0 + np.abs(np.broadcast_to(rhs, excess.shape)))
            if excess.size and np.any(excess > limit):
                out.append(f"{name} by {float(np.max(excess)):.2e}")

        label = self._asset_label(spec)
        for bound, sign, name in ((spec.lower, 1.0, "min_weights"),
                                  (spec.upper, -1.0, "max_weights")):
            if bound is not None:
                finite = np.isfinite(bound)
                excess = sign * (bound[finite] - w[finite])
                limit = _TOLERANCE * (1 + np.max(np.abs(bound[finite]), initial=0.0))
                if excess.size and np.max(excess) > limit:
                    i = np.flatnonzero(finite)[int(np.argmax(excess))]
                    out.append(f"{name} for {label(i)} by {float(np.max(excess)):.2e}")
        total = w.sum()
        if spec.budget is not None:
            check(f"budget={spec.budget:g}", abs(total - spec.budget), spec.budget)
        if spec.min_budget is not None:
            check("min_budget", spec.min_budget - total, spec.min_budget)
        if spec.max_budget is not None:
            check("max_budget", total - spec.max_budget, spec.max_budget)
        if spec.max_long is not None:
            check("max_long", np.clip(w, 0, None).sum() - spec.max_long, spec.max_long)
        if spec.max_short is not None:
            check("max_short", np.clip(-w, 0, None).sum() - spec.max_short, spec.max_short)
        for i, text in enumerate(spec.eq_labels):
            check(repr(text), abs(spec.A_eq[i] @ w - spec.b_eq[i]), spec.b_eq[i])
        for i, text in enumerate(spec.ineq_labels):
            check(repr(text), spec.A_ineq[i] @ w - spec.b_ineq[i], spec.b_ineq[i])
        if spec.turnover is not None:
            check("max_turnover", np.abs(w - spec.previous) - spec.turnover, spec.turnover)
        if spec.tracking_error is not None:
            te = np.linalg.norm(spec.tracking_root @ np.r_[w, 1.0]) / spec.tracking_scale
            check("max_tracking_error", te - spec.tracking_error, spec.tracking_error)
        if min_return is not None:
            check("min_return", min_return - self._net_volatility(spec, w), min_return)
        for i, c in enumerate(handles.custom_constraints):
            violation = c.violation()
            scale = max(float(handles.t.value), 1.0)
            if violation is None or np.any(~np.isfinite(violation)):
                out.append(f"add_constraints[{i}] could not be evaluated")
            else:
                check(f"add_constraints[{i}]", np.max(violation) / scale)
        return out

    @staticmethod
    def _net_volatility(spec: _Spec, w: np.ndarray) -> float:
        value = spec.risk.sigma @ w
        if spec.fees is not None:
            value -= spec.fees @ w
        if spec.costs is not None:
            value -= spec.costs @ np.abs(w - spec.previous)
        return float(value)

    def _solve_once(self, spec: _Spec, handles: _Handles, min_return: float | None,
                    X: np.ndarray | None) -> tuple[np.ndarray, dict]:
        problem = handles.problem
        hint = ("; try solver_params (e.g. max_iter), scale_objective/scale_constraints, or "
                "another solver")
        # warm_start=False: a kept program's data enter a new solver object, exactly as in a
        # fresh build (CVXPY would otherwise update Clarabel's data in place, keeping the first
        # fit's equilibration, and the result would depend on the earlier fits).
        options = {"warm_start": False, **spec.solver_params}
        try:
            problem.solve(solver=spec.solver, **options)
        except cp.error.SolverError as err:
            raise SolverFailedError(f"Numerical failure: solver {spec.solver} failed ({err})"
                                    f"{hint}", status=problem.status) from err
        status = problem.status
        if status in (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE):
            nonlinear = [name for name, on in (
                ("max_tracking_error", spec.tracking_error is not None),
                ("add_constraints", spec.add_constraints is not None),
            ) if on]
            if nonlinear:
                raise InfeasibleProblemError(
                    f"Infeasible: the solver proves no portfolio satisfies all constraints. The "
                    f"bounds, budget and linear constraints are feasible together (LP check), so "
                    f"the conflict involves {' and '.join(nonlinear)}",
                    conflicts=tuple(nonlinear),
                )
            raise SolverFailedError(
                f"Numerical failure: solver {spec.solver} reports status {status!r} although the "
                f"constraints are feasible (LP check){hint}", status=status)
        if status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE) or handles.y.value is None:
            raise SolverFailedError(
                f"Numerical failure: solver {spec.solver} returned status {status!r}{hint}",
                status=status)
        t = float(handles.t.value)
        if not np.isfinite(t) or t <= _MIN_SCALE:
            raise SolverFailedError(
                f"Numerical failure: degenerate Charnes–Cooper scale t={t:.3g}. With budget=None "
                "and unbounded weights the weight scale is undefined; set budget, "
                "min_budget/max_budget or bounds", status=status)
        w = handles.y.value / t
        if not np.all(np.isfinite(w)):
            raise SolverFailedError("Numerical failure: non-finite weights", status=status)
        broken = self._violations(spec, w, handles, min_return, X)
        if broken:
            raise SolverFailedError(
                f"Numerical failure: solver {spec.solver} returned status {status!r} but the "
                f"solution violates {', '.join(broken)}{hint}", status=status)
        if status == cp.OPTIMAL_INACCURATE:
            warnings.warn(f"Solver {spec.solver} reports an inaccurate solution; the constraints "
                          "hold within tolerance but the ratio may be suboptimal", UserWarning,
                          stacklevel=4)

        return w, self._measures(spec, w, handles, t)

    def _measures(self, spec: _Spec, w: np.ndarray, handles: _Handles, t: float) -> dict:
        """``problem_values_`` of the weights ``w`` (a custom objective is read at the
        variables' current values, which must be ``y = t w``)."""
        risk = spec.risk.volatility(w)
        net = self._net_volatility(spec, w)
        regularization = spec.l1 * np.abs(w).sum() + spec.l2 * (w @ w)
        custom = 0.0
        if handles.custom_objective is not None:
            custom = float(handles.custom_objective.value)
        return {
            "expected_return": net,
            "risk": risk,
            "regularization": float(regularization),
            "ratio": (net - spec.risk_free_rate) / (risk + regularization + custom / t),
            "diversification_ratio": float(spec.risk.sigma @ w / risk),
            "factor": t,
            "objective": t * (risk + regularization) + custom,
        }

    def _polish(self, spec: _Spec, w: np.ndarray, values: dict, handles: _Handles,
                min_return: float | None, X: np.ndarray | None
                ) -> tuple[np.ndarray, dict, PolishReport]:
        """Weights at a corner made exact (see :mod:`._polish`), or the raw ones with a note.

        The polished point must satisfy the bounds exactly, every other built-in constraint to
        1e-12 relative, the certified checks of :meth:`_violations`, each ``add_constraints``
        constraint at least as well as the raw point, and keep the ratio within
        ``RATIO_TOLERANCE`` (relative) of the raw one, plus what the raw point gains from its
        own violations (:func:`._polish.repair_cost`)."""
        if not self.polish:
            return w, values, PolishReport(False, 0, 0.0, 0.0, "polish=False")
        t = values["factor"]
        raw_y = None if handles.y.value is None else np.array(handles.y.value, copy=True)
        raw_custom = [self._custom_excess(c, t) for c in handles.custom_constraints]
        polished, n_snapped = snap_and_restore(spec, w, min_return)
        handles.y.value = t * polished  # custom objective/constraints are read at y = t w
        new_values = self._measures(spec, polished, handles, t)
        problems = strict_violations(spec, polished, min_return)
        problems += self._violations(spec, polished, handles, min_return, X)
        for i, c in enumerate(handles.custom_constraints):
            if self._custom_excess(c, t) > raw_custom[i] + 1e-12:
                problems.append(f"add_constraints[{i}] would hold less well")
        raw_ratio, new_ratio = values["ratio"], new_values["ratio"]
        change = (new_ratio - raw_ratio) / abs(raw_ratio)
        allowed = RATIO_TOLERANCE
        gradient = self._ratio_gradient(spec, w, values)
        if gradient is not None:
            allowed += repair_cost(spec, w, min_return, gradient) / abs(raw_ratio)
        if not np.isfinite(change) or change < -allowed:
            problems.append(f"the ratio would drop by {-change:.1e} (relative; {allowed:.1e} "
                            "allowed)")
        if problems:
            handles.y.value = raw_y
            note = ("kept the solver's weights: the polished point breaks "
                    + "; ".join(problems))
            return w, values, PolishReport(False, 0, 0.0, 0.0, note)
        return polished, new_values, PolishReport(
            True, n_snapped, float(np.max(np.abs(polished - w), initial=0.0)), float(change))

    @staticmethod
    def _ratio_gradient(spec: _Spec, w: np.ndarray, values: dict) -> np.ndarray | None:
        """``d ratio / d w`` (a subgradient at a kink), or None with ``add_objective``, whose
        gradient is not known here."""
        if spec.add_objective is not None:
            return None
        risk = spec.risk
        if risk.is_factor:
            cov_w = risk.factor_root @ (risk.factor_root.T @ w) + risk.residual_sd**2 * w
        else:
            cov_w = risk.covariance @ w
        numerator = risk.sigma - (spec.fees if spec.fees is not None else 0.0)
        if spec.costs is not None:
            numerator = numerator - spec.costs * np.sign(w - spec.previous)
        denominator = values["risk"] + values["regularization"]
        slope = cov_w / values["risk"] + spec.l1 * np.sign(w) + 2.0 * spec.l2 * w
        return (numerator - values["ratio"] * slope) / denominator

    @staticmethod
    def _custom_excess(constraint, t: float) -> float:
        violation = constraint.violation()
        if violation is None or np.any(~np.isfinite(violation)):
            return np.inf
        return float(np.max(violation)) / max(t, 1.0)

    def _optimize(self, spec: _Spec, X: np.ndarray | None):
        top = self._precheck(spec)
        if not spec.min_return_is_array:
            target = spec.min_returns[0] if spec.min_returns else None
            self._check_min_return(spec, target, top)
            screened = self._solve_screened(spec, X, target) if _screenable(spec) else None
            if screened is not None:
                w, values, handles = screened
            else:
                handles = self._problem(spec, "full")
                if self.save_problem:
                    self.problem_ = handles.problem
                w, values = self._solve_once(spec, handles, target, X)
            if self.save_problem:
                self.problem_ = handles.problem
            w, values, self.polish_ = self._polish(spec, w, values, handles, target, X)
            return self._label(spec, w), values, None

        handles = self._problem(spec, "full")
        if self.save_problem:
            self.problem_ = handles.problem
        rows, all_values, errors, reports = [], [], [], []
        for target in spec.min_returns:
            try:
                self._check_min_return(spec, target, top)
                handles.set_min_return(target)
                w, values = self._solve_once(spec, handles, target, X)
                w, values, report = self._polish(spec, w, values, handles, target, X)
                rows.append(w)
                all_values.append(values)
                errors.append(None)
                reports.append(report)
            except OptimizationError as err:
                rows.append(np.full(spec.n, np.nan))
                all_values.append(None)
                errors.append(str(err))
                reports.append(None)
        self.polish_ = reports
        failed = [e for e in errors if e is not None]
        if len(failed) == len(errors):
            raise OptimizationError(f"All {len(errors)} optimisations (one per min_return) failed; "
                                    f"last error: {failed[-1]}")
        if failed:
            warnings.warn(f"{len(failed)} of {len(errors)} min_return values failed; their rows of "
                          "weights_ are NaN (see error_)", UserWarning, stacklevel=3)
        index = pd.Index(spec.min_returns, name="min_return")
        weights = pd.DataFrame(np.vstack(rows), index=index, columns=self._columns(spec))
        return weights, all_values, errors if failed else None

    def _problem(self, spec: _Spec, role: str) -> _Handles:
        """The program for ``spec``.

        The first fit of a structure (:func:`_signature`) is built with constants: compiling
        the parametric program costs 2.5-7x a constant build, a loss for a one-off fit (a
        worksheet function, a ribbon button). When the same structure comes back, the parametric
        program is compiled and kept; from then on a fit only updates its Parameter values.
        Only :func:`_reusable` programs are kept; the others (dense covariance, user callables,
        tracking error) are built with constants each fit."""
        if not _reusable(spec):
            return _build_problem(spec)
        values, _ = _coefficients(spec, None)
        key = _signature(spec, role, values)
        cache = self.__dict__.setdefault("_compiled", {})
        kept = cache.get(role)
        if kept is None or kept[0] != key:
            cache[role] = (key, None)  # seen once: a repeat will compile the parametric program
            return _build_problem(spec)
        if kept[1] is not None:
            kept[1].update(values)
            return kept[1]
        handles = _build_parametric(spec, values)
        if not handles.problem.is_dpp():  # defensive: every coefficient is parameter x variable
            return _build_problem(spec)
        cache[role] = (key, handles)
        return handles

    def __getstate__(self):
        state = super().__getstate__() if hasattr(super(), "__getstate__") else self.__dict__
        state = dict(state)
        state.pop("_compiled", None)  # a compiled CVXPY program: rebuilt on the next fit
        return state

    def _solve_screened(self, spec: _Spec, X: np.ndarray | None, target: float | None):
        """Exact solve on a working set of assets, or None to solve the full problem.

        Max-diversification optima are sparse, and the dense n x n block is what makes the full
        solve slow. So: solve once with a rank-20-plus-diagonal surrogate of Sigma (a cheap
        cone, same constraints); take its support (plus every asset whose lower bound is not 0)
        as the working set W; solve exactly with ``y_j = 0`` outside W. That point is optimal
        for the full problem iff, for each fixed asset, the full problem's lower-bound
        multiplier ``d f / d y_j - mu_j`` is >= 0, where ``mu_j`` is the multiplier of
        ``y_j == 0`` (it carries every other constraint's pull on ``y_j``) and ``d f / d y_j``
        the full objective's (sub)gradient: ``2 so^2 (Sigma y)_j`` for the QP form,
        ``so ((Sigma y)_j / ||G'y|| + l1)`` for the cone form (l1's subgradient at 0 may be
        chosen as +l1, l2's gradient is 0 there). Assets failing the test join W and the solve
        repeats. W contains the surrogate's (feasible) support, so each restricted problem is
        feasible.
        """
        n, cov = spec.n, spec.risk.covariance
        required = spec.lower != 0  # y_j = 0 must sit on the lower bound to be excluded
        root, residual = _low_rank_plus_diagonal(cov, _SURROGATE_RANK)
        surrogate = replace(spec, risk=RiskModel(spec.risk.sigma, "surrogate", factor_root=root,
                                                 residual_sd=residual),
                            risk_form="soc-factor")
        try:
            w0, _ = self._solve_once(surrogate, _build_problem(surrogate), target, X)
        except OptimizationError:
            return None
        working = np.flatnonzero(required | (np.abs(w0) > 1e-6 * np.max(np.abs(w0))))
        so = spec.scale_objective
        for _ in range(_SCREEN_ROUNDS):
            if working.size > n * _SCREEN_MAX_FRACTION:
                return None
            handles = _build_problem(spec, working)
            try:
                w, values = self._solve_once(spec, handles, target, X)
            except OptimizationError:
                return None
            y = handles.y.value
            excluded = np.setdiff1d(np.arange(n), working)
            pull = cov[:, working] @ y[working]  # (Sigma y), y = 0 outside W
            if spec.risk_form == "qp":
                gradient = 2.0 * so**2 * pull
                offset = 0.0
            else:
                gradient = so * pull / np.sqrt(max(y[working] @ pull[working], 1e-300))
                offset = so * spec.l1
            multiplier = (gradient[excluded] + offset
                          - np.asarray(handles.fixing.dual_value).reshape(-1))
            scale = np.max(np.abs(gradient[working]))
            violators = excluded[multiplier < -_SCREEN_TOLERANCE * scale]
            if violators.size == 0:
                return w, values, handles
            working = np.union1d(working, violators)
        return None

    @staticmethod
    def _check_min_return(spec: _Spec, target: float | None, top: float):
        if target is not None and target > top + _TOLERANCE * (1 + abs(top)):
            raise InfeasibleProblemError(
                f"Infeasible: min_return={target:g} exceeds the largest net weighted volatility "
                f"the constraints allow ({top:.6g}); min_return bounds sigma'w - costs - fees",
                conflicts=("min_return",),
            )

    @staticmethod
    def _columns(spec: _Spec) -> pd.Index:
        return spec.assets if spec.assets is not None else pd.RangeIndex(spec.n)

    def _label(self, spec: _Spec, w: np.ndarray) -> pd.Series:
        return pd.Series(w, index=self._columns(spec), name="weights")

    # ------------------------------------------------------------------ public API

    def _reset(self):
        for name in ("weights_", "problem_values_", "problem_", "n_features_in_",
                     "feature_names_in_", "fallback_", "fallback_chain_", "error_",
                     "covariance_", "asset_volatilities_", "polish_", "_spec"):
            if hasattr(self, name):
                delattr(self, name)

    def fit(self, X=None, y=None) -> MaximumDiversification:
        """Find the maximum-diversification weights.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_observations, n_assets), optional
            Asset returns. May be omitted when ``covariance`` is a matrix or a FactorCovariance
            (no ``max_tracking_error`` then).
        y : Series or array-like of shape (n_observations,), optional
            Benchmark returns for ``max_tracking_error``; ignored otherwise.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            Invalid inputs (always raised, never handled by ``fallback``).
        OptimizationError
            :class:`InfeasibleProblemError` or :class:`SolverFailedError` when no fallback
            succeeds and ``raise_on_failure=True``.
        """
        self._reset()
        spec, values = self._validate(X, y)
        fallbacks = self._fallbacks()
        self._spec = spec
        self.n_features_in_ = spec.n
        if spec.assets is not None and all(isinstance(a, str) for a in spec.assets):
            self.feature_names_in_ = np.asarray(spec.assets, dtype=object)
        self.asset_volatilities_ = pd.Series(spec.risk.sigma, index=self._columns(spec),
                                             name="volatility")
        self.fallback_, self.fallback_chain_, self.error_ = None, None, None
        self.polish_ = None
        try:
            weights, problem_values, errors = self._optimize(spec, values)
        except OptimizationError as err:
            self._recover(err, X, y, spec, fallbacks)
            return self
        self.weights_, self.problem_values_, self.error_ = weights, problem_values, errors
        return self

    def _recover(self, err: OptimizationError, X, y, spec: _Spec, fallbacks: list):
        """Run the fallback chain after a failed optimisation."""
        chain = [(repr(self), str(err))]
        for item in fallbacks:
            name = item if isinstance(item, str) else repr(item)
            try:
                if isinstance(item, str):
                    if not spec.previous_given:
                        raise OptimizationError("Fallback 'previous_weights' requested, but "
                                                "previous_weights is None")
                    weights, fitted = spec.previous.copy(), "previous_weights"
                else:
                    fitted = clone(item)
                    params = fitted.get_params(deep=False)
                    if "previous_weights" in params and self.previous_weights is not None:
                        if params["previous_weights"] is not None:
                            warnings.warn(f"fallback {name} has its own previous_weights; they are "
                                          "replaced by the primary estimator's", UserWarning,
                                          stacklevel=3)
                        fitted.set_params(previous_weights=self.previous_weights)
                    fitted.fit(X, y)
                    weights = self._fallback_weights(spec, getattr(fitted, "weights_", None))
            except Exception as fallback_error:  # noqa: BLE001 - any failure moves down the chain
                chain.append((name, str(fallback_error)))
                continue
            chain.append((name, "success"))
            self.weights_ = self._label(spec, weights)
            self.problem_values_ = None
            self.fallback_, self.fallback_chain_, self.error_ = fitted, chain, None
            return
        self.fallback_chain_, self.error_ = chain, str(err)
        if self.raise_on_failure:
            if fallbacks:  # same exception type and attributes, with the chain in the message
                tried = "; ".join(f"{n}: {o}" for n, o in chain[1:])
                augmented = copy.copy(err)
                augmented.args = (f"{err} [fallbacks failed too: {tried}]",)
                raise augmented from err
            raise err
        warnings.warn(f"{type(self).__name__}.fit failed: {str(err).rstrip('.')}. Because "
                      "raise_on_failure=False, "
                      "weights_ is None; see error_ and fallback_chain_.", UserWarning,
                      stacklevel=3)
        self.weights_, self.problem_values_ = None, None

    @staticmethod
    def _fallback_weights(spec: _Spec, weights) -> np.ndarray:
        if weights is None:
            raise OptimizationError("the fallback estimator produced no weights")
        if isinstance(weights, pd.Series) and spec.assets is not None and (
                set(weights.index) == set(spec.assets)):
            weights = weights.reindex(spec.assets)
        w = np.asarray(weights, dtype=float)
        if w.shape != (spec.n,) or not np.all(np.isfinite(w)):
            raise OptimizationError(f"the fallback weights have shape {w.shape} or non-finite "
                                    f"values; expected ({spec.n},)")
        return w

    @property
    def needs_previous_weights(self) -> bool:
        """Whether ``previous_weights`` matter: transaction costs, a turnover cap, or the
        ``"previous_weights"`` fallback."""
        costs = self.transaction_costs
        has_costs = costs is not None and (
            any(v != 0 for v in costs.values()) if isinstance(costs, Mapping)
            else bool(np.any(np.asarray(costs, dtype=float) != 0)))
        fallback = self.fallback if isinstance(self.fallback, (list, tuple)) else [self.fallback]
        return bool(has_costs or self.max_turnover is not None
                    or any(isinstance(f, str) and f == "previous_weights" for f in fallback))

    def _check_fitted(self):
        if not hasattr(self, "weights_"):
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet; call "
                                 "fit first")

    def predict(self, X) -> Portfolio | Population:
        """Evaluate the fitted weights on returns ``X``.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_observations, n_assets)
            Aligned to the fitted assets by name when both are labelled.

        Returns
        -------
        Portfolio or Population
            A :class:`Portfolio` (a failed one, with NaN measures, if ``weights_`` is None), or a
            :class:`Population` when ``min_return`` is an array.
        """
        self._check_fitted()
        spec: _Spec = self._spec
        values, assets, index = check_returns(X)
        if values.shape[1] != spec.n:
            raise ValueError(f"X has {values.shape[1]} assets, the estimator was fitted on "
                             f"{spec.n}")
        columns = self._columns(spec)
        if assets is not None and spec.assets is not None and not assets.equals(spec.assets):
            missing = [a for a in spec.assets if a not in assets]
            if missing:
                raise ValueError(f"X lacks fitted assets {missing[:10]}")
            values = values[:, assets.get_indexer(spec.assets)]
        frame = pd.DataFrame(values, index=index, columns=columns)
        params: dict[str, Any] = {
            "name": type(self).__name__,
            "risk_free_rate": spec.risk_free_rate,
            "transaction_costs": spec.costs if spec.costs is not None else 0.0,
            "management_fees": spec.fees if spec.fees is not None else 0.0,
            "previous_weights": spec.previous,
        }
        for key, value in (self.portfolio_params or {}).items():
            if key in ("transaction_costs", "management_fees", "previous_weights"):
                value = asset_vector(value, f"portfolio_params[{key!r}]", spec.n, spec.assets, 0.0)
            elif key == "risk_free_rate":
                value = real_float(value, "portfolio_params['risk_free_rate']")
            params[key] = value
        if self.weights_ is None:
            return Portfolio(frame, None, optimization_error=self.error_,
                             fallback_chain=self.fallback_chain_, **params)
        if isinstance(self.weights_, pd.DataFrame):
            name = params.pop("name")
            return Population(
                Portfolio(frame, None if np.isnan(row).any() else row,
                          name=f"{name}[min_return={m:g}]", fallback_chain=self.fallback_chain_,
                          **params)
                for m, row in zip(self.weights_.index, self.weights_.to_numpy(), strict=True)
            )
        return Portfolio(frame, self.weights_.to_numpy(), fallback_chain=self.fallback_chain_,
                         **params)

    def fit_predict(self, X, y=None) -> Portfolio | Population:
        """``fit(X, y).predict(X)``."""
        return self.fit(X, y).predict(X)

    def score(self, X, y=None) -> float:
        """Sharpe ratio of ``predict(X)`` (mean over a Population), per period, net of costs and
        fees, as skfolio."""
        prediction = self.predict(X)
        if isinstance(prediction, Population):
            return float(np.nanmean([p.sharpe_ratio for p in prediction]))
        return float(prediction.sharpe_ratio)
