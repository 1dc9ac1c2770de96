"""Adaptive penalty weights from the univariate slopes (``auto_sign_adaptive_weights``).

The adaptive LASSO of Zou (2006) penalises a cell less the stronger its univariate evidence:

    omega_ij = 1 / max(|beta_uni_ij|, floor)^gamma,

with ``omega_ij = 1`` where the detected sign is 0 (the cell is held at zero by the sign
constraint, its weight is a placeholder). The group norms get the root mean square of the
cell weights they cover (Wang and Leng 2008 for rows), over the cells whose detected sign is not
0, 1 where there is none: a row weight ``rho_i`` per response (row geometry) and a block
weight ``kappa_gj`` per cluster and factor (block geometry). The slopes and signs are the
detection of :mod:`~xl_factorlasso.core.linear_model._auto_signs` before overrides and
exclusions, as in factorlasso 1.0.6.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["AdaptiveWeights", "adaptive_weights"]


@dataclass(frozen=True)
class AdaptiveWeights:
    """The weights of one fit: ``cell`` (N, M); ``row`` (N,) for the row geometry, else None;
    ``block`` (G, M) for the block geometry, else None."""

    cell: np.ndarray
    row: np.ndarray | None
    block: np.ndarray | None


def _root_mean_square(squares: np.ndarray, active: np.ndarray, axis: int) -> np.ndarray:
    count = active.sum(axis=axis)
    total = np.where(active, squares, 0.0).sum(axis=axis)
    return np.sqrt(np.where(count > 0, total / np.maximum(count, 1), 1.0))


def adaptive_weights(slopes: np.ndarray, signs: np.ndarray, geometry: str,
                     groups: np.ndarray | None, gamma: float, floor: float) -> AdaptiveWeights:
    """Adaptive weights of a fit (see the module docstring).

    Parameters
    ----------
    slopes, signs : numpy.ndarray, shape (N, M)
        Pooled univariate slopes and the gated detected signs (0 = screened out).
    geometry : {"cell", "row", "block"}
        The penalty geometry of the fit (a one-response fit is "cell").
    groups : numpy.ndarray of int, shape (N,), or None
        Group code ``0..G-1`` per response (block geometry).
    gamma, floor : float
        The exponent and the stabiliser, both > 0 (checked by the caller).

    Returns
    -------
    AdaptiveWeights
    """
    with np.errstate(over="ignore", divide="ignore"):  # an overflow is refused by the caller
        cell = 1.0 / np.maximum(np.abs(slopes), floor) ** gamma
        cell = np.where(signs == 0, 1.0, cell)
        squares = cell * cell
    active = signs != 0
    row = _root_mean_square(squares, active, axis=1) if geometry == "row" else None
    block = None
    if geometry == "block":
        block = np.vstack([_root_mean_square(squares[groups == g], active[groups == g], axis=0)
                           for g in range(int(groups.max()) + 1)])
    return AdaptiveWeights(cell, row, block)
