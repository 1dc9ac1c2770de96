"""Smallest penalty at which the fit equals the prior (``B = B0``), in closed form.

At ``D = B - B0 = 0`` the optimality conditions involve only the loss gradient ``g`` at ``B0``.
Per cell, the part of ``-g`` that a zero subgradient cannot absorb is

* free cell or a sign cell whose prior is strictly inside its half-line: ``|g|``,
* ``+1`` cell at its bound (prior 0): ``max(-g, 0)``; ``-1`` cell at its bound: ``max(g, 0)``,
* ``0`` cell: nothing.

Cell geometry: ``lambda_max = max r / omega`` (``omega`` the L1 weights, 1 unless adaptive).
Group geometries with L1 mix ``a`` need, for every row or block,
``|| max(r - a*lambda*omega, 0) ||_2 <= (1-a) * lambda * W`` (``W`` the group's whole weight,
``w_g`` times its adaptive row or block weight); the left side falls and the right side rises
with lambda, so each group has one root, found by bisection to machine precision.

Cooperative blocks pay the sparse-group norm of ``D+`` plus that of ``D-``; at ``D = 0`` the
excess pushes a cell up where ``-g > 0`` and down where ``-g < 0``, so each block's positive and
negative halves of the excess are two groups, each with the root above.
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
    omega = spec.l1_weights()
    if spec.geometry == "cell" or r.size == 0:
        return float((r / omega).max(initial=0.0))
    a = spec.l1_weight
    if spec.geometry == "row":
        values, cell_w, weight = r, omega, spec.row_weights()
    elif spec.cooperative:
        up = stats.gradient(spec.prior) < 0  # -g > 0: the excess pushes the cell up
        return max(_block_lambda(np.where(up, r, 0.0), omega, spec),
                   _block_lambda(np.where(up, 0.0, r), omega, spec))
    else:
        return _block_lambda(r, omega, spec)
    return float(_group_roots(values, cell_w, weight, a).max(initial=0.0))


def _block_lambda(r: np.ndarray, omega: np.ndarray, spec: PenaltySpec) -> float:
    """The largest root over the (cluster, factor) blocks of the excess ``r``."""
    # One block per (cluster, factor); pad with zeros, which never exceed the threshold.
    m = r.shape[1]
    sizes = np.bincount(spec.groups, minlength=len(spec.group_weight))
    values = np.zeros((len(sizes) * m, sizes.max()))
    cell_w = np.ones_like(values)
    weight = spec.block_weights().ravel()  # block (g, j) is row g * M + j
    for g in range(len(sizes)):
        members = spec.groups == g
        values[g * m:(g + 1) * m, : members.sum()] = r[members].T
        cell_w[g * m:(g + 1) * m, : members.sum()] = omega[members].T
    return float(_group_roots(values, cell_w, weight, spec.l1_weight).max(initial=0.0))


def _group_roots(values: np.ndarray, cell_w: np.ndarray, weight: np.ndarray,
                 a: float) -> np.ndarray:
    """Per row of ``values``: smallest lambda with
    ``|| max(values - a*lambda*cell_w, 0) ||_2 <= (1-a) * lambda * weight``."""
    top = (values / cell_w).max(axis=1, initial=0.0)
    if a <= 0.0:
        return np.linalg.norm(values, axis=1) / weight
    if a >= 1.0:
        return top
    lo, hi = np.zeros_like(top), top / a  # at top / a the L1 part absorbs every excess
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        excess = np.linalg.norm(np.maximum(values - a * mid[:, None] * cell_w, 0.0), axis=1)
        ok = excess <= (1.0 - a) * mid * weight
        new_hi, new_lo = np.where(ok, mid, hi), np.where(ok, lo, mid)
        if np.array_equal(new_hi, hi) and np.array_equal(new_lo, lo):
            break  # no interval can shrink below a float: later rounds repeat this one
        hi, lo = new_hi, new_lo
    return hi
