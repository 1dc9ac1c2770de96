"""LP pre-check of the linear constraints, run before the conic solve.

It tells an infeasible problem apart from a numerical failure and names the conflict: when the
bounds, budget and linear rows admit no portfolio, a deletion filter finds an *irreducible*
subset of them (dropping any one member makes the rest feasible). When they are feasible it gives
the largest attainable net weighted volatility ``max sigma'w - costs - fees``, which must exceed
the risk-free rate for the diversification ratio to be positive.

For per-asset bounds, turnover and a budget (the box of :func:`_box`, shared with the dense
path) that largest value is a fractional knapsack, :func:`box_budget_maximum`, with no LP.

Everything here is in weight units ``w`` (not the homogenised variables of the SOCP).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog

if TYPE_CHECKING:
    from ._spec import _Spec

__all__ = ["LinearBlock", "LinearSystem", "box_budget_maximum", "irreducible_conflict"]


class _Infeasible:
    """Stands in for a linprog result when crossing bounds make the LP trivially infeasible."""

    status = 2
    fun = np.nan


@dataclass
class LinearBlock:
    """Rows of one named constraint (e.g. all the ``min_weights`` rows) over the LP variables."""

    name: str
    A_ub: sp.csr_matrix | None = None
    b_ub: np.ndarray | None = None
    A_eq: sp.csr_matrix | None = None
    b_eq: np.ndarray | None = None
    lower: np.ndarray | None = None  # bounds on w (shape n); cheaper for HiGHS than rows
    upper: np.ndarray | None = None


@dataclass
class LinearSystem:
    """The LP: variables ``[w (n), aux...]``; aux variables are >= 0, ``w`` is free.

    ``structural`` blocks define auxiliary variables and can never conflict, so the deletion
    filter keeps them.
    """

    n_vars: int
    n_assets: int
    blocks: list[LinearBlock] = field(default_factory=list)
    structural: list[LinearBlock] = field(default_factory=list)
    objective: np.ndarray | None = None  # maximised

    def _solve(self, blocks: list[LinearBlock], objective: np.ndarray | None):
        parts = blocks + self.structural
        ub = [(b.A_ub, b.b_ub) for b in parts if b.A_ub is not None and b.A_ub.shape[0]]
        eq = [(b.A_eq, b.b_eq) for b in parts if b.A_eq is not None and b.A_eq.shape[0]]
        bounds = np.zeros((self.n_vars, 2))
        bounds[:, 1] = np.inf
        bounds[: self.n_assets, 0] = -np.inf
        for b in parts:
            if b.lower is not None:
                bounds[: self.n_assets, 0] = np.maximum(bounds[: self.n_assets, 0], b.lower)
            if b.upper is not None:
                bounds[: self.n_assets, 1] = np.minimum(bounds[: self.n_assets, 1], b.upper)
        if np.any(bounds[:, 0] > bounds[:, 1]):
            return _Infeasible()
        c = np.zeros(self.n_vars) if objective is None else -objective
        return linprog(
            c,
            A_ub=sp.vstack([a for a, _ in ub]).tocsr() if ub else None,
            b_ub=np.concatenate([b for _, b in ub]) if ub else None,
            A_eq=sp.vstack([a for a, _ in eq]).tocsr() if eq else None,
            b_eq=np.concatenate([b for _, b in eq]) if eq else None,
            bounds=bounds,
            method="highs",
        )

    def is_feasible(self, blocks: list[LinearBlock] | None = None) -> bool | None:
        """True/False, or None when HiGHS cannot decide."""
        result = self._solve(self.blocks if blocks is None else blocks, None)
        if result.status == 0:
            return True
        if result.status == 2:
            return False
        return None

    def maximum(self) -> tuple[str, float]:
        """``("optimal", value)``, ``("unbounded", inf)``, ``("infeasible", nan)`` or
        ``("unknown", nan)`` for the maximum of ``objective`` over all blocks."""
        result = self._solve(self.blocks, self.objective)
        if result.status == 0:
            return "optimal", float(-result.fun)
        if result.status == 3:
            return "unbounded", np.inf
        if result.status == 2:
            # HiGHS may report "infeasible or unbounded"; decide with a zero objective.
            feasible = self.is_feasible()
            if feasible is False:
                return "infeasible", np.nan
            if feasible is True:
                return "unbounded", np.inf
        return "unknown", np.nan


@dataclass(frozen=True)
class _Box:
    """Per-asset bounds (``lower`` finite, ``upper`` may be +inf) and the budget (> 0)."""

    lower: np.ndarray
    upper: np.ndarray
    budget: float


def _box(spec: _Spec) -> _Box:
    """The bounds of a spec whose lower ones are given, with ``max_turnover``'s per-asset
    ``|w - previous| <= max_turnover`` folded in (the same box in the homogenised program:
    ``|y - previous t| <= max_turnover t``); an upper bound that cannot bind (at least the
    budget, with lower bounds >= 0; with shorts it can) is dropped, so the dense path's default
    family pivots on lower bounds only."""
    lower = spec.lower.astype(float)
    upper = np.full(spec.n, np.inf) if spec.upper is None else spec.upper.astype(float)
    if spec.turnover is not None:
        lower = np.maximum(lower, spec.previous - spec.turnover)
        upper = np.minimum(upper, spec.previous + spec.turnover)
    if np.all(lower >= 0):
        upper = np.where(upper >= spec.budget, np.inf, upper)
    return _Box(lower, upper, float(spec.budget))


def _fill(priority: np.ndarray, lengths: np.ndarray, rest: float
          ) -> tuple[np.ndarray, np.ndarray] | None:
    """A fractional knapsack: ``rest >= 0`` units placed on pieces of ``lengths`` (may be inf),
    lowest ``priority`` first. ``(order, take)``: the pieces in that order and the amount each
    takes; None when the pieces hold less than ``rest``."""
    order = np.argsort(priority, kind="stable")
    room = np.minimum(lengths[order], rest)
    take = np.clip(rest - (np.cumsum(room) - room), 0.0, room)
    if take.sum() < rest * (1.0 - 1e-12):
        return None
    return order, take


def box_budget_maximum(a: np.ndarray, box: _Box, costs: np.ndarray | None = None,
                       previous: np.ndarray | None = None) -> float | None:
    """``max a'w - c'|w - previous|`` over ``lower <= w <= upper`` (``box``: ``lower`` finite,
    ``upper`` may be inf) and ``1'w = budget``, without an LP; None when that set is empty.

    The objective is separable and concave per asset: from ``lower`` a weight gains ``a_i +
    c_i`` a unit up to ``previous_i`` (clipped to its box) and ``a_i - c_i`` beyond. Starting
    from ``w = lower``, the ``budget - sum(lower)`` still to place goes to the steepest pieces
    first (:func:`_fill`; an asset's first piece is never the flatter one, so no piece is taken
    before its predecessor).
    """
    lower, upper = box.lower, box.upper
    rest = float(box.budget) - float(np.sum(lower))
    if rest < 0 or np.any(lower > upper):
        return None
    if costs is None:
        slopes, lengths = a, upper - lower
        value = float(a @ lower)
    else:
        kink = np.clip(previous, lower, upper)
        slopes = np.concatenate([a + costs, a - costs])
        lengths = np.concatenate([kink - lower, upper - kink])
        value = float(a @ lower) - float(costs @ np.abs(lower - previous))
    filled = _fill(-slopes, lengths, rest)
    if filled is None:
        return None  # the upper bounds hold less than the budget
    order, take = filled
    return value + float(slopes[order] @ take)


def irreducible_conflict(system: LinearSystem) -> list[str] | None:
    """Names of an irreducible infeasible subset of ``system.blocks`` (deletion filter).

    Returns None if the whole system is in fact feasible or HiGHS cannot decide.
    """
    if system.is_feasible() is not False:
        return None
    kept = list(system.blocks)
    for block in list(kept):
        trial = [b for b in kept if b is not block]
        if system.is_feasible(trial) is False:
            kept = trial
    return [b.name for b in kept]
