"""Polish the optimiser's weights: solver dust is not a weight.

An interior-point solver stops *near* its optimum, strictly inside the constraints: a weight
held at 0 comes back as ``2.2e-12``, a capped one as ``0.0799999999532``. Those digits are not
information. :func:`snap_and_restore` turns them into the values the optimum has:

1. **Snap.** Every weight within ``SNAP_TOLERANCE * (1 + |v|)`` of a value ``v`` where the
   problem has a corner (its lower or upper bound, 0, the turnover limits
   ``previous +- max_turnover``, and with transaction costs the previous weight, where
   ``|w - previous|`` has its kink) is set exactly to ``v``. ``SNAP_TOLERANCE`` is the
   certified tolerance: a solution is only returned when every constraint holds to it, so no
   weight this close to a corner can be told apart from the corner.
2. **Restore.** The other ("free") weights move by the smallest change (least norm) that makes
   every equality hold exactly and puts every active inequality on its bound, a hair
   (``1e-14`` relative) inside so that re-evaluating it cannot round it out: the budget, the
   linear constraint rows, ``min/max_budget``, ``max_long/max_short``, ``min_return`` and the
   tracking-error cone (linearised; a few Newton steps). An inequality is active when it is
   within the snap tolerance of its bound or violated.

:func:`strict_violations` then certifies the result: bounds hold exactly, every other linear or
built-in constraint to ``EXACT_TOLERANCE * (1 + |rhs|)``. The estimator adds the objective check
and keeps the raw point, with a note, when any check fails: the ratio may drop by at most
``RATIO_TOLERANCE`` (relative) plus what the raw point gains from its own violations.
Clarabel's iterates are not strictly feasible: on 1000 assets, 870 weights held at 0 came back
as ``-3.7e-11`` each, which flatters the raw ratio by about 3e-8 (relative) over any feasible
point. :func:`repair_cost` bounds that gain to first order.

Everything here is in weight units ``w`` and reads the estimator's validated ``_Spec``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = [
    "EXACT_TOLERANCE",
    "RATIO_TOLERANCE",
    "SNAP_TOLERANCE",
    "PolishReport",
    "repair_cost",
    "snap_and_restore",
    "strict_violations",
]

# A weight this close to a corner (times 1 + |corner|) is the corner: the certified tolerance
# of the returned solution (``_TOLERANCE`` of the estimator).
SNAP_TOLERANCE = 1e-6
# The polished point satisfies every built-in constraint to this (times 1 + |rhs|); bounds exactly.
EXACT_TOLERANCE = 1e-12
# The polished ratio may be below the raw one by at most this, relative.
RATIO_TOLERANCE = 1e-9

# Active inequalities are restored to this far inside their bound (times 1 + |rhs|): above
# the rounding of a dot product, far below EXACT_TOLERANCE.
_INSIDE = 1e-14
_NEWTON_STEPS = 4
_ROUNDS = 5


@dataclass(frozen=True)
class PolishReport:
    """What polishing did to one solution (``MaximumDiversification.polish_``).

    Attributes
    ----------
    applied : bool
        True when the polished weights were returned; False when the raw solver weights were
        kept (see ``note``).
    n_snapped : int
        Weights set exactly to a bound, to 0, to a turnover limit or to the previous weight.
    max_change : float
        ``max |polished - raw|`` over the weights (0 when not applied).
    ratio_change : float
        ``(ratio(polished) - ratio(raw)) / |ratio(raw)|`` for the maximised ratio; positive when
        polishing improved it. 0 when not applied.
    note : str
        Empty when applied; otherwise why the raw point was kept.
    """

    applied: bool
    n_snapped: int
    max_change: float
    ratio_change: float
    note: str = ""


@dataclass(eq=False)  # rows are compared by identity
class _Row:
    """A constraint ``g(w) <= 0`` (``== 0`` when ``equality``), with its gradient."""

    name: str
    value: Callable[[np.ndarray], float]
    gradient: Callable[[np.ndarray], np.ndarray]
    equality: bool
    scale: float  # 1 + |right-hand side|


def _linear(name: str, a: np.ndarray, b: float, equality: bool) -> _Row:
    return _Row(name, lambda w: float(a @ w - b), lambda w: a, equality, 1.0 + abs(b))


def _box(spec) -> tuple[np.ndarray, np.ndarray]:
    """Per-asset bounds, with ``max_turnover``'s ``previous +- turnover`` folded in."""
    n = spec.n
    lo = np.full(n, -np.inf) if spec.lower is None else spec.lower.astype(float)
    hi = np.full(n, np.inf) if spec.upper is None else spec.upper.astype(float)
    if spec.turnover is not None:
        lo = np.maximum(lo, _turnover_limit(spec.previous, spec.turnover, -1.0))
        hi = np.minimum(hi, _turnover_limit(spec.previous, spec.turnover, 1.0))
    return lo, hi


def _turnover_limit(previous: np.ndarray, turnover, sign: float) -> np.ndarray:
    """``previous + sign * turnover``, moved towards ``previous`` by an ulp where rounding
    would put it outside: a weight snapped there must pass ``|w - previous| <= turnover``
    when a user evaluates it (0.05 + 0.02 rounds to 0.07000000000000001, 0.02 + 4e-18 away)."""
    cap = np.broadcast_to(np.asarray(turnover, dtype=float), previous.shape)
    limit = previous + sign * cap
    for _ in range(4):
        over = np.abs(limit - previous) > cap
        if not over.any():
            break
        limit[over] = np.nextafter(limit[over], previous[over])
    return limit


def _corners(spec, lo: np.ndarray, hi: np.ndarray) -> list[np.ndarray]:
    """Candidate exact values per asset (NaN where a candidate does not apply)."""
    zero = np.where((lo <= 0) & (hi >= 0), 0.0, np.nan)
    out = [np.where(np.isfinite(lo), lo, np.nan), np.where(np.isfinite(hi), hi, np.nan), zero]
    if spec.costs is not None:
        prev = spec.previous
        out.append(np.where((lo <= prev) & (prev <= hi) & (spec.costs > 0), prev, np.nan))
    return out


def _snap(w: np.ndarray, corners: list[np.ndarray], free: np.ndarray) -> int:
    """Set each free weight within the snap tolerance of a corner to the nearest one (in place,
    marking it not free); return how many were snapped."""
    values = np.column_stack(corners)  # n x candidates, NaN where one does not apply
    with np.errstate(invalid="ignore"):
        gap = np.abs(w[:, None] - values)
        close = gap <= SNAP_TOLERANCE * (1.0 + np.abs(values))
    gap = np.where(close, gap, np.inf)
    nearest = np.argmin(gap, axis=1)
    hit = free & close.any(axis=1)
    w[hit] = values[hit, nearest[hit]]
    free[hit] = False
    return int(hit.sum())


def _rows(spec, min_return: float | None) -> list[_Row]:
    """Every constraint other than the per-asset box, as ``g(w) <= 0`` / ``== 0``."""
    n = spec.n
    ones = np.ones(n)
    rows: list[_Row] = []
    if spec.budget is not None:
        rows.append(_linear(f"budget={spec.budget:g}", ones, spec.budget, True))
    if spec.min_budget is not None:
        rows.append(_linear("min_budget", -ones, -spec.min_budget, False))
    if spec.max_budget is not None:
        rows.append(_linear("max_budget", ones, spec.max_budget, False))
    # The long and short sums are linear for a fixed sign pattern, which polishing keeps: a free
    # weight is never within the snap tolerance of 0.
    if spec.max_long is not None:
        long_cap = spec.max_long
        rows.append(_Row("max_long", lambda w: float(np.clip(w, 0, None).sum() - long_cap),
                         lambda w: (w > 0).astype(float), False, 1.0 + long_cap))
    if spec.max_short is not None:
        short_cap = spec.max_short
        rows.append(_Row("max_short", lambda w: float(np.clip(-w, 0, None).sum() - short_cap),
                         lambda w: -(w < 0).astype(float), False, 1.0 + short_cap))
    for i, text in enumerate(spec.eq_labels):
        rows.append(_linear(repr(text), spec.A_eq[i], float(spec.b_eq[i]), True))
    for i, text in enumerate(spec.ineq_labels):
        rows.append(_linear(repr(text), spec.A_ineq[i], float(spec.b_ineq[i]), False))
    if min_return is not None:  # N(w) >= min_return, linear for a fixed sign of w - previous
        slope = spec.mu - (spec.fees if spec.fees is not None else 0.0)

        def net(w):
            value = slope @ w
            if spec.costs is not None:
                value = value - spec.costs @ np.abs(w - spec.previous)
            return float(value)

        def net_gradient(w):
            if spec.costs is None:
                return slope
            return slope - spec.costs * np.sign(w - spec.previous)

        rows.append(_Row("min_return", lambda w: min_return - net(w),
                         lambda w: -net_gradient(w), False, 1.0 + abs(min_return)))
    if spec.tracking_error is not None:  # ||R [w; 1]|| / sqrt(T - 1) <= TE
        root, scale, cap = spec.tracking_root, spec.tracking_scale, spec.tracking_error

        def te(w):
            return float(np.linalg.norm(root @ np.r_[w, 1.0]) / scale)

        def te_gradient(w):
            residual = root @ np.r_[w, 1.0]
            norm = max(float(np.linalg.norm(residual)), 1e-300)
            return root[:, :n].T @ residual / (norm * scale)

        rows.append(_Row("max_tracking_error", lambda w: te(w) - cap, te_gradient, False,
                         1.0 + cap))
    return rows


def _active(rows: list[_Row], w: np.ndarray) -> list[_Row]:
    return [r for r in rows
            if r.equality or r.value(w) >= -SNAP_TOLERANCE * r.scale]


def _restore(rows: list[_Row], w: np.ndarray, free: np.ndarray) -> None:
    """Newton steps of least norm on the free weights towards ``g(w) = 0`` for ``rows``
    (in place)."""
    idx = np.flatnonzero(free)
    if not rows or idx.size == 0:
        return
    # Inequalities aim just inside their bound, so that they still hold when a user evaluates
    # them with other rounding (skfolio's tests assert ``exposure <= -0.05`` exactly).
    margin = np.array([0.0 if r.equality else _INSIDE for r in rows])
    best = np.inf
    for _ in range(_NEWTON_STEPS):
        residual = np.array([r.value(w) / r.scale for r in rows]) + margin
        size = float(np.max(np.abs(residual)))
        if size >= best or size == 0.0:
            break
        best = size
        jacobian = np.vstack([r.gradient(w)[idx] / r.scale for r in rows])
        step, *_ = np.linalg.lstsq(jacobian, -residual, rcond=None)
        w[idx] += step


def snap_and_restore(spec, w_raw: np.ndarray, min_return: float | None
                     ) -> tuple[np.ndarray, int]:
    """The polished weights and how many were snapped to a corner.

    Parameters
    ----------
    spec : _Spec
        The validated problem.
    w_raw : ndarray of shape (n_assets,)
        The certified solver weights.
    min_return : float or None
        The ``min_return`` target of this solve.

    Returns
    -------
    polished : ndarray of shape (n_assets,)
        Not yet certified: check it with :func:`strict_violations`.
    n_snapped : int
    """
    lo, hi = _box(spec)
    corners = _corners(spec, lo, hi)
    rows = _rows(spec, min_return)
    w = w_raw.astype(float).copy()
    free = np.ones(spec.n, dtype=bool)
    n_snapped = _snap(w, corners, free)
    active: list[_Row] = []
    for _ in range(_ROUNDS):
        active = [r for r in _active(rows, w) if r not in active] + active
        _restore(active, w, free)
        # A correction is far below the snap tolerance, so this rarely finds anything: a free
        # weight pushed onto a corner or out of its box, or an inequality newly reached.
        outside = free & ((w < lo) | (w > hi))
        w[outside] = np.clip(w[outside], lo[outside], hi[outside])
        free[outside] = False
        n_snapped += int(outside.sum()) + _snap(w, corners, free)
        if not outside.any() and all(r in active for r in _active(rows, w)):
            break
    return w, n_snapped


def repair_cost(spec, w: np.ndarray, min_return: float | None, gradient: np.ndarray) -> float:
    """A first-order bound on the ratio the weights gain from violating their constraints.

    The best feasible ratio is at least that of any feasible repair of ``w``. Repair a weight
    ``v_i`` outside its bounds by moving it back and another weight by ``-v_i`` (the budget):
    that costs at most ``2 g v_i`` with ``g = max_i |d ratio / d w_i|`` (``gradient``). Repair
    a row violated by ``v_r`` through the weight with its largest coefficient ``|a_r|_max``, the
    same way: at most ``2 g v_r / |a_r|_max``. The sum of those is returned.
    """
    lo, hi = _box(spec)
    total = float(np.sum(np.clip(lo - w, 0.0, None)) + np.sum(np.clip(w - hi, 0.0, None)))
    for row in _rows(spec, min_return):
        value = row.value(w)
        excess = abs(value) if row.equality else max(value, 0.0)
        if excess > 0:
            largest = float(np.max(np.abs(row.gradient(w)), initial=0.0))
            total += excess / largest if largest > 0 else np.inf
    return 2.0 * float(np.max(np.abs(gradient), initial=0.0)) * total


def strict_violations(spec, w: np.ndarray, min_return: float | None) -> list[str]:
    """Every built-in constraint the polished weights break: a bound at all, any other by more
    than ``EXACT_TOLERANCE * (1 + |rhs|)``."""
    out = []
    if spec.lower is not None and np.any(w < spec.lower):
        out.append(f"min_weights by {float(np.max(spec.lower - w)):.2e}")
    if spec.upper is not None and np.any(w > spec.upper):
        out.append(f"max_weights by {float(np.max(w - spec.upper)):.2e}")
    if spec.turnover is not None:
        excess = float(np.max(np.abs(w - spec.previous))) - spec.turnover
        if excess > EXACT_TOLERANCE * (1.0 + spec.turnover):
            out.append(f"max_turnover by {excess:.2e}")
    for row in _rows(spec, min_return):
        value = row.value(w)
        excess = abs(value) if row.equality else value
        if excess > EXACT_TOLERANCE * row.scale:
            out.append(f"{row.name} by {excess:.2e}")
    return out
