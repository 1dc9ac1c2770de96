"""The CVXPY model of a ratio optimisation, written in one place.

The estimator maximises ``(N(w) - r_f) / (sigma_p(w) + l1 |w|_1 + l2 |w|_2^2)`` with
``N(w) = mu'w - fees'w - sum c |w - w_prev|`` (for maximum diversification ``mu = sigma``, the
asset volatilities). :func:`_formulate` writes its Charnes–Cooper homogenisation, a second-order
cone program in ``y = t * w`` and the scale ``t > 0`` (see ``docs/maxdiv.md``);
:func:`_coefficients` is its data, :func:`_signature` its structure, and :func:`_reusable` says
when the program is compiled once with ``cp.Parameter``s and re-solved on new data.
"""

from __future__ import annotations

from typing import Any

import cvxpy as cp
import numpy as np

from ._risk import dense_root
from ._spec import _call_custom, _Handles, _Spec

__all__: list[str] = []

# The floor of the relative volatility that scales the variable. An asset 1e-9 below the mean
# (a nearly constant price) would put 1e9 in its weight rows, and Clarabel failed on such
# problems that the program in y answers; below the floor its near-zero risk and numerator
# coefficients do no harm. (A random sweep: 1e-4 left one row violated by 1e-7, 1e-2 one
# answer below; 1e-3 neither.)
_REL_FLOOR = 1e-3


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
    # The variable is x = rel * y, each asset in units of its volatility relative to the mean
    # (rel = sigma / h, floored at _REL_FLOOR): the risk becomes a correlation form and, above
    # the floor, the numerator's coefficients are all h. Clarabel equilibrates columns only
    # within [1e-4, 1e4], and with volatilities 1e5 apart it returned points up to 15% below
    # the optimum as "optimal".
    # The risk, numerator, penalties and tracking rows take their coefficients divided by rel
    # here (one coefficient each, so the parametric program stays DPP); the weight constraints,
    # traded amounts and long/short sums keep their rows and auxiliary variables in
    # y = x / rel, where the solver's feasibility tolerance is in weights.
    rel = _relative_volatility(spec)
    values: dict[str, Any] = {"rc": rc, "so": so, "unscale": 1.0 / rel}
    nonneg = {"rc", "so", "costs", "l1", "l2", "te", "unscale"}
    if spec.risk_form == "soc-factor":
        values["root"] = rc * spec.risk.factor_root.T / rel
        values["residual"] = rc * spec.risk.residual_sd / rel
    elif spec.risk_form == "soc-dense":
        values["root"] = rc * dense_root(_scaled_covariance(spec, rel, active)).T
    # The numerator's coefficients net of fees, under the name they have in max diversification.
    net_mu = spec.mu - spec.fees if spec.fees is not None else spec.mu
    values["sigma"] = rc * net_mu / rel
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
    for name in ("budget", "min_budget", "max_budget", "max_long", "max_short"):
        if getattr(spec, name) is not None:
            values[name] = sc * getattr(spec, name)
    if spec.turnover is not None:
        values["turnover"] = sc * spec.turnover
    if spec.A_eq.shape[0]:
        values["b_eq"] = sc * spec.b_eq
    if spec.A_ineq.shape[0]:
        values["b_ineq"] = sc * spec.b_ineq
    if spec.tracking_error is not None:
        values["tracking"] = rc * spec.tracking_root[:, :n] / rel
        values["benchmark"] = rc * spec.tracking_root[:, n]
        values["te"] = rc * spec.tracking_error * spec.tracking_scale
    if spec.min_returns is not None:
        values["min_return"] = rc * spec.min_returns[0]
    if spec.l1:  # l1 |y|_1 = |l1 x / rel|_1
        values["l1"] = so * spec.l1 / rel[active]
    if spec.l2:  # l2 |y|^2 = |sqrt(l2) x / rel|^2
        values["l2"] = np.sqrt(so * spec.l2) / rel[active]
    return values, {name: name in nonneg for name in values}


def _relative_volatility(spec: _Spec) -> np.ndarray:
    """``rel``: each asset's volatility over the mean, floored at ``_REL_FLOOR``."""
    return np.maximum(spec.risk.sigma / spec.h, _REL_FLOOR)


def _scaled_covariance(spec: _Spec, rel: np.ndarray, active: np.ndarray) -> np.ndarray:
    """``Sigma[W, W] / (rel rel')`` on the assets ``active``: the covariance of ``x``."""
    cov = spec.risk.covariance
    if active.size < spec.n:
        cov = cov[np.ix_(active, active)]
    return cov / np.outer(rel[active], rel[active])


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

    With ``w = y / t`` and ``N(w) = mu'w - fees'w - sum c|w - w_prev|`` (``mu = sigma``: the
    net weighted volatility), maximising ``(N(w) - r_f) / (sigma_p(w) + l1 |w|_1 + l2 |w|_2^2)``
    over the constraint set becomes::

        minimise   so * ( ||G' y|| + l1 |y|_1 + l2 |y|^2 / t + add_objective(y, t) )
        subject to N(y, t) - r_f t == h            (>= h when costs make N concave)
                   every weight constraint, multiplied through by t
                   t >= 0

    The solver's variable is ``x = rel * y`` (``rel = max(sigma / h, 1e-3)``, see
    :func:`_coefficients`);
    ``y`` is the expression ``x / rel`` that the weight constraints and the callables use.

    All terms are positively homogeneous in ``(y, t)``, so the optimum is the same for any
    ``h > 0``; ``h`` (the mean asset volatility) and ``so = sqrt(n) / mean volatility`` only keep
    the numbers near 1. ``G`` is a square root of Sigma: the factor model's
    ``[B chol(Sigma_f), diag(sqrt(D))]``, or a dense Cholesky factor. When the objective is the
    risk alone and Sigma is dense, ``(so ||G' y||)^2 = so^2 y' Sigma y`` is minimised instead
    (same minimiser, a QP that Clarabel factors faster than an n x n triangular cone).
    Transaction costs use ``z >= |y - w_prev t|`` (tight at the optimum, costs >= 0).

    Every datum is one coefficient from :func:`_coefficients`; with ``parametric`` each is a
    ``cp.Parameter`` and the program is DPP (parameter times variable only), so CVXPY compiles it
    once and later solves only substitute values.

    ``working_set`` (dense covariance only, never parametric; see
    :func:`._screening._solve_screened`) fixes ``y_j = 0`` outside it, drops their
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
    x = cp.Variable(n, name="x")  # y in volatility units: x = rel * y
    y = cp.multiply(P("unscale"), x)  # homogenised weights, y = t * w
    t = cp.Variable(nonneg=True, name="t")  # Charnes–Cooper scale (skfolio leaves it free)
    sc = spec.scale_constraints
    constraints: list[cp.Constraint] = []

    # Assets in play: all, or a screened solve's working set (the others are fixed at 0).
    active, x_active, fixing = np.arange(n), x, None
    if working_set is not None:
        active, x_active = working_set, x[working_set]
        fixing = y[np.setdiff1d(np.arange(n), working_set)] == 0
        constraints.append(fixing)

    # Risk t * sigma_p(w) = ||G' y||, with G's rows divided by rel.
    if spec.risk_form == "soc-factor":
        s = cp.Variable(nonneg=True, name="s")
        root_y = cp.hstack([P("root") @ x, cp.multiply(P("residual"), x)])
        constraints.append(cp.SOC(P("rc") * s, root_y))
        risk_term = P("so") * s
    elif spec.risk_form == "qp":
        cov = _scaled_covariance(spec, _relative_volatility(spec), active)
        risk_term = spec.scale_objective**2 * cp.quad_form(x_active, cp.psd_wrap(cov))
    else:
        s = cp.Variable(nonneg=True, name="s")
        constraints.append(cp.SOC(P("rc") * s, P("root") @ x_active))
        risk_term = P("so") * s

    # Numerator rc * t * N(w): weighted volatilities net of fees and transaction costs.
    numerator = P("sigma") @ x
    if spec.costs is not None:
        # z >= |y - w_prev t|: traded weights, in y's units like the weight constraints (in
        # x's units a cheap asset's trades were numbers near 1e-7 with costs 1e6 times larger
        # in the numerator, and answers fell up to 1% below the optimum)
        z = cp.Variable(n, nonneg=True, name="z")
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
        moved = sc * (y - P("previous") * t)  # two rows, no auxiliary |.| variable
        constraints += [moved <= P("turnover") * t, moved >= -P("turnover") * t]
    if spec.tracking_error is not None:  # ||X w - b|| / sqrt(T-1) <= TE
        constraints.append(cp.SOC(P("te") * t, P("tracking") @ x + P("benchmark") * t))
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
        objective = objective + cp.norm1(cp.multiply(P("l1"), x_active))
    if spec.l2:  # l2 |w|^2 * t = l2 |y|^2 / t: the penalty joins the ratio's denominator
        objective = objective + cp.quad_over_lin(cp.multiply(P("l2"), x_active), t)
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
                    params, values["rc"], x, values["unscale"])
