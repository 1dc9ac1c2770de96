"""Smallest penalty at which the fit equals the prior (``B = B0``), in closed form.

At ``D = B - B0 = 0`` the optimality conditions involve only the loss gradient ``g`` at ``B0``.
Per cell, the part of ``-g`` that a zero subgradient cannot absorb is

* free cell or a sign cell whose prior is strictly inside its half-line: ``|g|``,
* ``+1`` cell at its bound (prior 0): ``max(-g, 0)``; ``-1`` cell at its bound: ``max(g, 0)``,
* ``0`` cell: nothing.

Cell geometry: ``lambda_max = max r``. Group geometries with L1 mix ``a`` need, for every row
or block, ``|| max(r - a*lambda, 0) ||_2 <= (1-a) * lambda * w_g``; the left side falls and the
right side rises with lambda, so each group has one root, found by bisection to machine precision.
"""

from __future__ import annotations

import numpy as np

from ._penalty import PenaltySpec
from ._preparation import SufficientStats

__all__ = ["lambda_max_from_stats"]


def _excess(stats: SufficientStats, spec: PenaltySpec) -> np.ndarray:
    g = stats.gradient(spec.prior)
    r = np.abs(g)
    lower, upper = spec.lower_upper()
    at_lower = np.isfinite(lower) & (spec.prior <= lower)
    at_upper = np.isfinite(upper) & (spec.prior >= upper)
    r = np.where(at_lower & ~at_upper, np.maximum(-g, 0.0), r)
    r = np.where(at_upper & ~at_lower, np.maximum(g, 0.0), r)
    r = np.where(at_lower & at_upper, 0.0, r)
    return r


def lambda_max_from_stats(stats: SufficientStats, spec: PenaltySpec) -> float:
    """``lambda_max`` for prepared statistics and a penalty geometry (see module docstring)."""
    r = _excess(stats, spec)
    if spec.geometry == "cell" or r.size == 0:
        return float(r.max(initial=0.0))
    a = spec.l1_weight
    if spec.geometry == "row":
        values, weight = r, spec.group_weight[spec.groups]
    else:
        # One block per (cluster, factor); pad with zeros, which never exceed the threshold.
        sizes = np.bincount(spec.groups, minlength=len(spec.group_weight))
        values = np.zeros((len(sizes) * r.shape[1], sizes.max()))
        weight = np.repeat(spec.group_weight, r.shape[1])
        for g in range(len(sizes)):
            members = r[spec.groups == g]  # (|g|, M)
            values[g * r.shape[1]:(g + 1) * r.shape[1], : len(members)] = members.T
    return float(_group_roots(values, weight, a).max(initial=0.0))


def _group_roots(values: np.ndarray, weight: np.ndarray, a: float) -> np.ndarray:
    """Per row of ``values``: smallest lambda with
    ``|| max(values - a*lambda, 0) ||_2 <= (1-a) * lambda * weight``."""
    top = values.max(axis=1, initial=0.0)
    if a <= 0.0:
        return np.linalg.norm(values, axis=1) / weight
    if a >= 1.0:
        return top
    lo, hi = np.zeros_like(top), top / a  # at top / a the L1 part absorbs every excess
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        excess = np.linalg.norm(np.maximum(values - a * mid[:, None], 0.0), axis=1)
        ok = excess <= (1.0 - a) * mid * weight
        hi = np.where(ok, mid, hi)
        lo = np.where(ok, lo, mid)
    return hi
