"""The certificate of the active-set solver's answers (:mod:`._dense`): a bound on the relative
loss of diversification ratio of a point against the optimum, read from ``Sigma``, ``a``, the
constraints and the point only (:func:`relative_gap`), and the problem data it reads:
transaction costs (:class:`_Costs`) and linear constraints (:class:`_Rows`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import scipy.linalg as sla
from scipy.optimize import lsq_linear

from ._feasibility import _Box, _fill
from ._free_set import LowRankCovariance
from ._spec import _Spec

# The certified relative loss of diversification ratio the dense answer may have; Clarabel's
# 1e-9 gap tolerances give today's path about this accuracy.
GAP_TOLERANCE = 1e-9
# Dinkelbach steps of the bounded certificate (each a sort; it ends in a few).
_DINKELBACH_STEPS = 50
# Rounds of the dual bound's working set of sign-bounded multipliers (each adds the breakers).
_WORKING_SET_ROUNDS = 20


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
    positions, transaction costs and linear constraints), at multipliers fitted to ``y``
    (numerator 1, ``g = 2 Sigma y``); ``-inf`` when ``Sigma`` does not factor.

    Costs are written ``a'y - c'z >= 1``, ``z >= +-(y - w_prev t)``. With ``nu`` for the
    numerator (``>= 0`` with costs; free without, as ``a'y = 1``), ``pi+-`` for ``z``'s rows
    (stationarity in ``z``: ``pi+ + pi- = nu c``, so ``s = pi+ - pi-`` needs ``|s| <= nu c``),
    ``mu`` for ``1'y = budget t``, ``l, u >= 0`` for ``y >= lower t`` and ``y <= upper t``,
    ``pi`` for the rows ``E y <= e t`` (``>= 0``; free for equalities) and ``k >= 0`` for ``t
    >= 0``, stationarity in ``t`` reads ``k = -s'w_prev + l'lower - u'upper + mu budget -
    pi'e``, and the dual function is ``nu - v'Sigma^-1 v / 4`` with ``v = nu a - s + l - u +
    mu 1 - E'pi``: a lower bound for every such choice (:func:`_dual_feasible` checks it).

    The multipliers solve the stationarity ``v = g`` with ``k = 0`` in least squares
    (:func:`_stationarity`), on the constraints that hold with equality at ``y`` (the others'
    multipliers are 0): ``nu, mu`` and the tight rows' ``pi`` on the free assets, each bound
    asset's ``l - u - s`` its own residual. Where that fit breaks a sign, the same system is
    solved with the signs as bounds (bounded-variable least squares), and the larger of the
    two bounds is kept; either is only used once clipped to its signs and checked. At the
    optimum the bound equals ``f`` up to round-off (one Cholesky of ``Sigma``, or the factor
    covariance's Woodbury solves). ``f - bound`` is ``t k``, plus each multiplier times its
    constraint's slack, plus ``d'Sigma^-1 d / 4`` with ``d = v - g``."""
    system = _stationarity(a, y, g, box, costs, rows)
    if isinstance(cov, LowRankCovariance):
        def inverse(v):
            return cov.inverse_times(v)
    else:
        try:
            factor = sla.cho_factor(cov, check_finite=False)
        except (np.linalg.LinAlgError, ValueError):
            return -np.inf

        def inverse(v):
            return sla.cho_solve(factor, v, check_finite=False)
    fitted = system.fit()
    point = system.dual_point(fitted)
    bound = _dual_value(point, a, box, costs, rows, inverse)
    f = 0.5 * float(g @ y)
    if point is not None and not system.within_signs(fitted) and not bound >= f * (1 - 1e-12):
        bounded = system.dual_point(system.fit(bounded=True, nu=point.nu))
        bound = max(bound, _dual_value(bounded, a, box, costs, rows, inverse))
    return bound


@dataclass(frozen=True)
class _DualPoint:
    """Multipliers of the homogenised QP (see :func:`_dual_bound`): ``s`` is ``nu c xi``,
    ``pi`` has one entry per row of ``E``."""

    nu: float
    mu: float
    s: np.ndarray
    low: np.ndarray
    up: np.ndarray
    pi: np.ndarray


def _t_coefficient(point: _DualPoint, box: _Box, costs: _Costs | None,
                   rows: _Rows | None) -> float:
    """``k = -s'w_prev + l'lower - u'upper + mu budget - pi'e``, the coefficient of ``t``."""
    finite = np.isfinite(box.upper)
    k = (float(point.low @ box.lower) - float(point.up[finite] @ box.upper[finite])
         + point.mu * box.budget)
    if costs is not None:
        k -= float(point.s @ costs.previous)
    if rows is not None:
        k -= float(point.pi @ rows.rhs)
    return k


def _dual_feasible(point: _DualPoint, box: _Box, costs: _Costs | None,
                   rows: _Rows | None) -> bool:
    """Whether the multipliers are a point of the dual, so that its value bounds ``p*``: all
    finite, ``l, u >= 0`` (``u = 0`` where the upper bound is infinite), ``|s| <= nu c`` (``s
    = 0`` and ``nu`` free without costs), an inequality row's ``pi >= 0`` and ``k >= 0``."""
    values = [np.array([point.nu, point.mu]), point.s, point.low, point.up, point.pi]
    if not all(np.all(np.isfinite(v)) for v in values):
        return False
    if np.any(point.low < 0) or np.any(point.up < 0) or np.any(point.up[np.isinf(box.upper)]):
        return False
    if costs is None:
        if np.any(point.s != 0):
            return False
    elif not (point.nu >= 0 and np.all(np.abs(point.s) <= point.nu * costs.rate)):
        return False
    if rows is not None and np.any(point.pi[~rows.equality] < 0):
        return False
    return _t_coefficient(point, box, costs, rows) >= 0


def _dual_value(point: _DualPoint | None, a: np.ndarray, box: _Box, costs: _Costs | None,
                rows: _Rows | None, inverse) -> float:
    """The dual function ``nu - v'Sigma^-1 v / 4`` at ``point`` (``inverse(v)`` is
    ``Sigma^-1 v`` or None), or ``-inf`` unless the point is dual feasible."""
    if point is None or not _dual_feasible(point, box, costs, rows):
        return -np.inf
    v = point.nu * a - point.s + point.low - point.up + point.mu
    if rows is not None:
        v = v - rows.matrix.T @ point.pi
    u = inverse(v)
    if u is None or not np.all(np.isfinite(u)):
        return -np.inf
    return float(point.nu - 0.25 * (v @ u))


@dataclass(frozen=True)
class _Stationarity:
    """The stationarity of the dual at a point ``y`` (see :func:`_dual_bound`), as a linear
    system in the multipliers ``(nu, mu, pi_tight, b)``: ``C (nu, mu, pi_tight) + b = g`` on
    every asset, ``b`` (``l - u`` plus the kink's ``-s``) only on the assets at a bound or at
    their previous weight, and ``k = 0``. ``weight`` is ``y / t`` (each bound asset's bound or
    previous weight, which ``k`` reads), ``h`` the part of ``k`` in ``(nu, mu, pi_tight)``."""

    a: np.ndarray
    g: np.ndarray
    box: _Box
    costs: _Costs | None
    rows: _Rows | None
    core: np.ndarray  # C, (n, 2 + tight)
    h: np.ndarray  # (2 + tight,)
    weight: np.ndarray  # y / t
    at_low: np.ndarray
    at_up: np.ndarray
    kink: np.ndarray  # at its previous weight (with a cost)
    side: np.ndarray  # the side of the previous weight where not at it
    tight: np.ndarray  # rows that hold with equality

    @property
    def bound(self) -> np.ndarray:
        return self.at_low | self.at_up | self.kink

    def fit(self, bounded: bool = False, nu: float = 0.0) -> np.ndarray | None:
        """``(nu, mu, pi_tight, b)`` of least stationarity residual, or None when the least
        squares fail: the whole system with ``b`` unbounded (the bound assets' ``b`` then
        absorb their equations and ``(nu, mu, pi_tight)`` fit the free assets and ``k = 0``);
        or, ``bounded``, with the signs as bounds (``|s| <= nu c`` at the given ``nu``).

        The bounded fit keeps as variables only the ``b`` that broke their sign (a working
        set), the others unbounded and eliminated (:meth:`_reduced`): a relaxation, so once no
        eliminated ``b`` breaks its sign it is the whole system's bounded least squares. Each
        round adds the breakers (at most ``_WORKING_SET_ROUNDS``, then the last fit, clipped
        by the caller). On 500 assets with 497 at a bound, 54 broke their sign: the whole
        system took 2 s."""
        held = np.zeros(int(np.count_nonzero(self.bound)), dtype=bool)
        fitted = self._reduced(held)
        if not bounded:
            return fitted
        p = self.core.shape[1]
        lower, upper = self._limits(max(nu, 0.0))

        def broken(x):
            return (x[p:] < lower[p:]) | (x[p:] > upper[p:])
        for _ in range(_WORKING_SET_ROUNDS):
            if fitted is None:
                return None
            held |= broken(fitted)
            fitted = self._reduced(held, (lower, upper))
            if fitted is not None and not np.any(broken(fitted) & ~held):
                break
        return fitted

    def _reduced(self, held: np.ndarray, limits: tuple[np.ndarray, np.ndarray] | None = None
                 ) -> np.ndarray | None:
        """The least squares of :meth:`fit` with the bound assets' ``b`` where ``held`` as
        variables (bounded by ``limits`` when given) and the others (``E``) unbounded,
        eliminated: given the rest, they leave their equations the residuals ``d_E = s w_E``
        and ``k`` the residual ``K - w_E'd_E``, with ``s = K / (1 + |w_E|^2)`` and ``K`` the
        residual of ``k`` at ``b_E`` = their equations' residuals; the sum of squares is then
        ``K^2 / (1 + |w_E|^2)``, so ``k``'s row is scaled by ``1 / sqrt(1 + |w_E|^2)``."""
        index = np.flatnonzero(self.bound)
        kept, gone = index[held], index[~held]
        core, g, weight = self.core, self.g, self.weight
        p, m = core.shape[1], kept.size
        free = ~self.bound
        matrix = np.zeros((int(np.count_nonzero(free)) + m + 1, p + m))
        matrix[:-1, :p] = np.vstack([core[free], core[kept]])
        matrix[np.count_nonzero(free) + np.arange(m), p + np.arange(m)] = 1.0
        matrix[-1, :p] = self.h - weight[gone] @ core[gone]  # k, the eliminated b's in it
        matrix[-1, p:] = weight[kept]
        rhs = np.concatenate([g[free], g[kept], [-float(weight[gone] @ g[gone])]])
        spread = 1.0 + float(weight[gone] @ weight[gone])
        matrix[-1] /= np.sqrt(spread)
        rhs[-1] /= np.sqrt(spread)
        try:
            if limits is None:
                x, *_ = np.linalg.lstsq(matrix, rhs, rcond=None)
            else:
                select = np.concatenate([np.ones(p, dtype=bool), held])
                lower, upper = limits[0][select], limits[1][select]
                fixed = lower == upper  # (a kink's room at nu = 0): not a variable of lsq_linear
                x = np.where(fixed, lower, 0.0)
                if np.any(~fixed):
                    solved = lsq_linear(matrix[:, ~fixed], rhs - matrix[:, fixed] @ x[fixed],
                                        bounds=(lower[~fixed], upper[~fixed]), method="bvls",
                                        tol=1e-15)
                    x[~fixed] = solved.x
        except (np.linalg.LinAlgError, ValueError):
            return None
        b = np.empty(index.size)
        b[held] = x[p:]
        k = float(matrix[-1] @ x - rhs[-1]) * np.sqrt(spread)  # K, at b_E = the residuals
        b[~held] = g[gone] - core[gone] @ x[:p] - (k / spread) * weight[gone]
        return np.concatenate([x[:p], b])

    def _limits(self, nu: float) -> tuple[np.ndarray, np.ndarray]:
        """The signs of ``(nu, mu, pi_tight, b)`` as bounds (``b``'s kink part within ``nu
        c``)."""
        p = self.core.shape[1]
        lower, upper = np.full(p, -np.inf), np.full(p, np.inf)
        if self.costs is not None:
            lower[0] = 0.0
        if self.rows is not None:
            lower[2:][~self.rows.equality[self.tight]] = 0.0
        bound = self.bound
        room = np.zeros(bound.size) if self.costs is None else nu * self.costs.rate
        room = np.where(self.kink, room, 0.0)[bound]
        low = np.where(self.at_up[bound], -np.inf, -room)
        up = np.where(self.at_low[bound], np.inf, room)
        return np.concatenate([lower, low]), np.concatenate([upper, up])

    def within_signs(self, fitted: np.ndarray) -> bool:
        """Whether a fit keeps every sign its multipliers need."""
        lower, upper = self._limits(max(float(fitted[0]), 0.0))
        return bool(np.all(fitted >= lower) and np.all(fitted <= upper))

    def dual_point(self, fitted: np.ndarray | None) -> _DualPoint | None:
        """The fit clipped to its signs as a :class:`_DualPoint`, ``mu`` raised where ``k``
        would be negative (None without a fit)."""
        if fitted is None or not np.all(np.isfinite(fitted)):
            return None
        n, p = self.core.shape
        nu, mu = float(fitted[0]), float(fitted[1])
        if self.costs is not None:
            nu = max(nu, 0.0)
        pi = np.zeros(0 if self.rows is None else self.tight.size)
        if self.rows is not None:
            pi[self.tight] = fitted[2:p]
            pi = np.where(self.rows.equality, pi, np.maximum(pi, 0.0))
        b = np.zeros(n)
        b[self.bound] = fitted[p:]
        s = np.zeros(n)
        if self.costs is not None:
            room = nu * self.costs.rate
            s = np.where(self.side != 0, room * self.side, 0.0)
            # a kink's -s takes what it can of b, a bound's multiplier the rest
            s = np.where(self.kink, -np.clip(b, -room, room), s)
            b = np.where(self.kink, b + s, b)
        low = np.where(self.at_low, np.maximum(b, 0.0), 0.0)
        up = np.where(self.at_up & np.isfinite(self.box.upper), np.maximum(-b, 0.0), 0.0)
        point = _DualPoint(nu, mu, s, low, up, pi)
        for _ in range(4):  # (a step below mu's ulp rounds to nothing: then one ulp)
            k = _t_coefficient(point, self.box, self.costs, self.rows)
            if k >= 0:
                break
            mu = max(mu - k / self.box.budget, float(np.nextafter(mu, np.inf)))
            point = replace(point, mu=mu)
        return point


def _stationarity(a: np.ndarray, y: np.ndarray, g: np.ndarray, box: _Box,
                  costs: _Costs | None, rows: _Rows | None) -> _Stationarity:
    """The stationarity system at ``y`` (see :class:`_Stationarity`): which bounds, kinks and
    rows hold with equality (to ``1e-9`` of the point's scale)."""
    n = y.size
    t = float(y.sum()) / box.budget
    tol = 1e-9 * float(np.max(np.abs(y)))
    finite = np.isfinite(box.upper)
    at_low = y <= box.lower * t + tol
    at_up = finite & (y >= np.where(finite, box.upper, 0.0) * t - tol) & ~at_low
    c = np.zeros(n) if costs is None else costs.rate
    w0 = np.zeros(n) if costs is None else costs.previous
    moved = y - w0 * t
    side = np.where(np.abs(moved) <= tol, 0.0, np.sign(moved))
    kink = (c > 0) & (side == 0)
    side = np.where(c > 0, side, 0.0)
    columns = [a - c * side, np.ones(n)]
    h = [-float((c * side) @ w0), box.budget]
    tight = np.zeros(0, dtype=bool)
    if rows is not None:
        slack, scale = rows.slack(y, t)
        tight = rows.equality | (np.abs(slack) <= 1e-9 * scale)
        columns += list(-rows.matrix[tight])
        h += list(-rows.rhs[tight])
    with np.errstate(divide="ignore", invalid="ignore"):
        weight = y / t if t != 0 else np.full(n, np.nan)
    return _Stationarity(a, g, box, costs, rows, np.column_stack(columns), np.array(h), weight,
                         at_low, at_up, kink, side, tight)


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
