"""The certificate of the active-set solver's answers (:mod:`._dense`): a bound on the relative
loss of diversification ratio of a point against the optimum, read from ``Sigma``, ``a``, the
constraints and the point only (:func:`relative_gap`), and the problem data it reads:
transaction costs (:class:`_Costs`) and linear constraints (:class:`_Rows`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla

from ._feasibility import _Box, _fill
from ._free_set import LowRankCovariance
from ._spec import _Spec

# The certified relative loss of diversification ratio the dense answer may have; Clarabel's
# 1e-9 gap tolerances give today's path about this accuracy.
GAP_TOLERANCE = 1e-9
# Dinkelbach steps of the bounded certificate (each a sort; it ends in a few).
_DINKELBACH_STEPS = 50


@dataclass(frozen=True)
class _Costs:
    """Transaction costs ``c >= 0`` per unit traded away from ``previous`` (``w_prev``): the
    numerator loses ``c'|w - w_prev|``, in the homogenised program ``c'|y - w_prev t|``."""

    rate: np.ndarray
    previous: np.ndarray


@dataclass(frozen=True)
class _Rows:
    """The linear constraints (``linear_constraints``, groups, ``left_inequality``) in the
    homogenised program: ``E y <= e t``, or ``E y = e t`` where ``equality`` (rows of
    ``A_eq w = b_eq`` first, then ``A_ineq w <= b_ineq``)."""

    matrix: np.ndarray  # (k, n)
    rhs: np.ndarray  # (k,)
    equality: np.ndarray  # (k,) bool

    def slack(self, y: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
        """``E y - e t`` (<= 0 where an inequality holds) and its round-off scale."""
        return (self.matrix @ y - self.rhs * t,
                np.abs(self.matrix) @ np.abs(y) + np.abs(self.rhs) * t)


def _rows(spec: _Spec) -> _Rows | None:
    """The spec's linear constraints as :class:`_Rows`, or None when it has none."""
    if not spec.A_eq.size and not spec.A_ineq.size:
        return None
    n = spec.n
    matrix = np.vstack([spec.A_eq.reshape(-1, n), spec.A_ineq.reshape(-1, n)]).astype(float)
    rhs = np.concatenate([spec.b_eq, spec.b_ineq]).astype(float)
    equality = np.arange(len(rhs)) < spec.A_eq.reshape(-1, n).shape[0]
    return _Rows(matrix, rhs, equality)


def _numerator(a: np.ndarray, y: np.ndarray, box: _Box | None, costs: _Costs | None) -> float:
    """``a'y``, less ``c'|y - w_prev t|`` (``t = 1'y / budget``) with transaction costs."""
    value = float(a @ y)
    if costs is not None:
        t = float(y.sum()) / box.budget
        value -= float(costs.rate @ np.abs(y - costs.previous * t))
    return value


def relative_gap(cov: np.ndarray | LowRankCovariance, a: np.ndarray, y: np.ndarray,
                 box: _Box | None = None, costs: _Costs | None = None,
                 rows: _Rows | None = None) -> float:
    """A certified bound on the relative loss of diversification ratio of ``y``.

    ``y`` is scaled to ``a'y = 1`` (long-only: negative entries set to 0 first). For the convex
    ``p* = min y'Sigma y`` over the feasible cone ``K`` (``a'y = 1``, ``y = t w`` with ``w`` in
    the box-and-budget polytope ``P``; ``box=None``: long-only, no upper bound) and ``g = 2
    Sigma y``, convexity gives ``p* >= f(y) - g'y + m`` with ``m = min {g'z : z in K}``, and
    ``g'y = 2 f``. The diversification ratio is ``D = 1 / sqrt(f)``, so ``D*/D(y) - 1 <=
    sqrt(f / (m - f)) - 1``, returned (``inf`` when no positive lower bound holds).

    Long-only without upper bounds ``m`` has a closed form by LP duality: ``m = min_{a_j > 0}
    g_j / a_j`` when that is at least ``max_{a_j < 0} g_j / a_j`` and ``g_j >= 0`` wherever
    ``a_j = 0`` (otherwise ``-inf``). With bounds see :func:`_fractional_minimum`. With short
    positions (a negative lower bound) the cone holds points with ``a'w`` near 0 and that
    linear bound is ``-inf``, and transaction costs (``costs``: the normalisation is then
    ``a'y - c'|y - w_prev t| = 1``) are not linear: the Lagrangian dual bound of
    :func:`_dual_bound` is used for both, and for linear constraints (``rows``), whose
    polytope the knapsacks do not describe. The bound assumes ``y`` feasible: the caller checks
    the weights against every constraint (:func:`._diagnosis._violations`)."""
    y = np.asarray(y, dtype=float)
    default = costs is None and rows is None and (
        box is None or (np.all(box.lower == 0) and np.all(np.isinf(box.upper))))
    if default:
        y = np.clip(y, 0.0, None)
    scale = _numerator(a, y, box, costs)
    if not np.isfinite(scale) or scale <= 0:
        return np.inf
    y = y / scale
    g = 2.0 * (cov @ y)
    f = 0.5 * float(g @ y)
    if default:
        lower = _closed_form_minimum(a, g) - f  # f - g'y + m
    elif costs is not None or rows is not None or np.any(box.lower < 0):
        lower = _dual_bound(cov, a, y, g, box, costs, rows)
    else:
        lower = _fractional_minimum(a, g, box, theta=2.0 * f) - f
    if not (np.isfinite(lower) and lower > 0 and f > 0):
        return np.inf
    return max(float(np.sqrt(f / lower)) - 1.0, 0.0)


def _dual_bound(cov: np.ndarray | LowRankCovariance, a: np.ndarray, y: np.ndarray, g: np.ndarray,
                box: _Box, costs: _Costs | None = None, rows: _Rows | None = None) -> float:
    """A lower bound on ``p*`` from the Lagrangian dual of the homogenised QP (any box, short
    positions and transaction costs included), at multipliers read off ``y`` (numerator 1,
    ``g = 2 Sigma y``); ``-inf`` when ``Sigma`` does not factor.

    Costs are written ``a'y - c'z >= 1``, ``z >= +-(y - w_prev t)``. With ``nu >= 0`` for the
    numerator, ``pi+-`` for ``z``'s rows (stationarity in ``z``: ``pi+ + pi- = nu c``, so
    ``pi+ - pi- = nu c xi`` with ``|xi| <= 1``), ``mu`` for ``1'y = budget t``, ``l, u >= 0``
    for ``y >= lower t`` and ``y <= upper t`` and ``k >= 0`` for ``t >= 0``, stationarity in
    ``t`` reads ``k = -nu (c xi)'w_prev + l'lower - u'upper + mu budget``, and the dual
    function is ``nu - v'Sigma^-1 v / 4`` with ``v = nu (a - c xi) + l - u + mu 1``: a lower
    bound for every such choice. ``nu, mu`` are fitted on the free assets (``g = nu (a - c s)
    + mu`` there, ``s`` the side of the previous weight), ``xi`` is that side, or for a weight
    at its previous one the clipped ``-r / (nu c)`` (``r = g - nu a - mu``), ``l, u`` are the
    positive parts of ``r + nu c xi`` on the weights at a bound, and ``mu`` is raised where
    needed so that ``k >= 0``; a wrong guess only loosens the bound. At the optimum it equals
    ``f`` up to round-off (one Cholesky of ``Sigma``).

    Linear constraints ``E y <= e t`` (``rows``) add ``pi >= 0`` (free for equalities): ``v``
    gains ``- E'pi`` and ``k`` gains ``- pi'e``. ``pi`` is fitted with ``nu, mu`` on the rows
    that hold with equality at ``y`` (0 elsewhere), then clipped to its sign."""
    n = y.size
    t = float(y.sum()) / box.budget
    tol = 1e-9 * float(np.max(np.abs(y)))
    finite = np.isfinite(box.upper)
    at_low = y <= box.lower * t + tol
    at_up = finite & (y >= np.where(finite, box.upper, 0.0) * t - tol) & ~at_low
    c = np.zeros(n) if costs is None else costs.rate
    w0 = np.zeros(n) if costs is None else costs.previous
    moved = y - w0 * t
    at_prev = (c > 0) & (np.abs(moved) <= tol) & ~(at_low | at_up)
    side = np.where(np.abs(moved) <= tol, 0.0, np.sign(moved))
    free = ~(at_low | at_up | at_prev)
    if np.count_nonzero(free) < 2:
        return -np.inf
    columns = [(a - c * side)[free], np.ones(np.count_nonzero(free))]
    pi, tight = np.zeros(0), np.zeros(0, dtype=bool)
    if rows is not None:
        slack, scale = rows.slack(y, t)
        tight = rows.equality | (np.abs(slack) <= 1e-9 * scale)
        columns += list(-rows.matrix[tight][:, free])
    fitted, *_ = np.linalg.lstsq(np.column_stack(columns), g[free], rcond=None)
    nu, mu = fitted[:2]
    if costs is not None and not nu > 0:  # the numerator's row is an inequality
        return -np.inf
    r = g - nu * a - mu
    if rows is not None:
        pi = np.zeros(tight.size)
        pi[tight] = fitted[2:]
        pi = np.where(rows.equality, pi, np.maximum(pi, 0.0))
        r = r + rows.matrix.T @ pi
        bounded = at_low | at_up
        for j in np.flatnonzero(tight):
            support = rows.matrix[j] != 0
            if np.any(support & ~bounded):  # fitted above on its free assets
                continue
            step = _row_multiplier(r[support], rows.matrix[j, support], at_low[support],
                                   bool(rows.equality[j]), pi[j])
            pi[j] += step
            r = r + step * rows.matrix[j]
    with np.errstate(divide="ignore", invalid="ignore"):
        kink = np.clip(np.where(c > 0, -r / (nu * c), 0.0), -1.0, 1.0)
    xi = np.where(side != 0, side, kink)
    r = r + nu * c * xi  # a lower bound's multiplier; minus an upper bound's
    low = np.where(at_low, np.maximum(r, 0.0), 0.0)
    up = np.where(at_up, np.maximum(-r, 0.0), 0.0)
    k = (-nu * float((c * xi) @ w0) + float(low @ box.lower)
         - float(up[finite] @ box.upper[finite]) + mu * box.budget)
    if rows is not None:
        k -= float(pi @ rows.rhs)
    if k < 0:
        mu -= k / box.budget
    v = nu * (a - c * xi) + low - up + mu
    if rows is not None:
        v = v - rows.matrix.T @ pi
    if isinstance(cov, LowRankCovariance):
        u = cov.inverse_times(v)
    else:
        try:
            u = sla.cho_solve(sla.cho_factor(cov, check_finite=False), v, check_finite=False)
        except (np.linalg.LinAlgError, ValueError):
            u = None
    if u is None:
        return -np.inf
    return float(nu - 0.25 * (v @ u))


def _row_multiplier(r: np.ndarray, e: np.ndarray, low: np.ndarray, equality: bool,
                    pi: float) -> float:
    """The change of a tight row's multiplier when its assets all sit at a bound (so the fit
    on the free assets left it at 0): the middle of the steps ``s`` that give each asset's
    residual ``r + s e`` the sign its bound's multiplier needs (``>= 0`` at a lower bound,
    ``<= 0`` at an upper one), with ``pi + s >= 0`` for an inequality. An equality ``w_2 -
    w_3 = 0`` with both at 0 is the case: without it the residual of the asset that would
    rise leaked into the bound (2e-2 on a certified optimum)."""
    with np.errstate(divide="ignore"):
        edge = -r / e
    rising = np.where(low, e > 0, e < 0)  # the step's lower limits; the others its upper ones
    lo = float(np.max(edge[rising], initial=-np.inf))
    hi = float(np.min(edge[~rising], initial=np.inf))
    if not equality:
        lo = max(lo, -pi)
    if np.isfinite(lo) and np.isfinite(hi):
        step = 0.5 * (lo + hi)
    elif np.isfinite(lo):
        step = max(lo, 0.0)
    elif np.isfinite(hi):
        step = min(hi, 0.0)
    else:
        step = 0.0
    # an inequality's multiplier stays >= 0 whatever the limits (the bound's validity)
    return step if equality else max(step, -pi)


def _closed_form_minimum(a: np.ndarray, g: np.ndarray) -> float:
    """``min {g'z : a'z = 1, z >= 0}`` (see :func:`relative_gap`)."""
    pos, neg, zero = a > 0, a < 0, a == 0
    if not pos.any() or np.any(g[zero] < 0):
        return -np.inf
    lam = float(np.min(g[pos] / a[pos]))
    if neg.any() and lam < float(np.max(g[neg] / a[neg])):
        return -np.inf
    return lam


def _knapsack(c: np.ndarray, box: _Box) -> tuple[float, np.ndarray] | None:
    """``min c'w`` over ``lower <= w <= upper, 1'w = budget`` and its minimiser (the cheapest
    coefficients filled first), or None when that set is empty."""
    rest = box.budget - float(box.lower.sum())
    filled = None if rest < 0 else _fill(c, box.upper - box.lower, rest)
    if filled is None:
        return None
    order, take = filled
    w = box.lower.copy()
    w[order] += take
    w = np.minimum(w, box.upper)  # lower + (upper - lower) may round one ulp above upper
    return float(c @ w), w


def _fractional_minimum(a: np.ndarray, g: np.ndarray, box: _Box, theta: float) -> float:
    """A lower bound on ``m = min {g'z : a'z = 1, z in cone(P)} = min_{w in P} g'w / a'w``
    (see :func:`relative_gap`), which needs ``A = min_P a'w > 0``.

    For any ``theta`` and ``phi = min_P (g - theta a)'w`` (a fractional knapsack), every
    ``w`` in ``P`` has ``g'w / a'w >= theta + min(phi, 0) / A``. Dinkelbach's iteration from
    ``theta`` (the value at a point of the cone, so ``>= m``) takes ``theta`` down to ``m``,
    where ``phi`` is 0 up to round-off. ``A > 0`` holds for long-only bounds when every
    ``a_j > 0``; with short positions the optimal face of the knapsack holds portfolios with
    ``a'w <= 0`` and round-off leaves no certified bound: :func:`_dual_bound` is used there."""
    low = _knapsack(a, box)
    if low is None or not low[0] > 0:
        return -np.inf
    for _ in range(_DINKELBACH_STEPS):
        phi, w = _knapsack(g - theta * a, box)  # not None: the box held A's minimiser
        if phi >= 0:
            break
        step = float(g @ w) / float(a @ w)  # a'w >= A > 0
        if not step < theta:  # round-off at the root
            break
        theta = step
    phi, _ = _knapsack(g - theta * a, box)
    return theta + min(phi, 0.0) / low[0]
