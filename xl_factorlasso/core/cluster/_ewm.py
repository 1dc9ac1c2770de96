"""Exponentially weighted mean, covariance and correlation (RiskMetrics span convention).

``lambda = 1 - 2 / (span + 1)``. The recursions and their missing-value rules are those of
factorlasso 1.0.6, so that a fit here reproduces one there:

* mean: ``m_t = lambda m_{t-1} + (1 - lambda) z_t``, ``m_0 = z_0``; a column whose first value is
  missing starts from 0 at its first observation; a missing value carries the last mean.
* covariance: ``S_t = lambda S_{t-1} + (1 - lambda) a_t a_t'`` from ``S = 0`` on data the caller
  has already centred; a pair with a missing value keeps its last value (no decay that step).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "covariance_to_correlation",
    "ewm_correlation",
    "ewm_covariance",
    "ewm_lambda",
    "ewm_mean",
    "ewm_mean_decay",
    "ewm_cross_moment",
]


def ewm_lambda(span: float) -> float:
    """Decay ``1 - 2 / (span + 1)`` of a span (``span >= 1``)."""
    if span is None or isinstance(span, bool) or not np.isfinite(span) or span < 1:
        raise ValueError(f"span must be a finite number >= 1, got {span!r}")
    return 1.0 - 2.0 / (float(span) + 1.0)


def _as_array(data) -> np.ndarray:
    a = np.array(data, dtype=float, copy=True)
    a[~np.isfinite(a)] = np.nan
    return a


def ewm_mean(data, span: float):
    """Causal EWMA mean including the current observation.

    Parameters
    ----------
    data : array-like or pandas object, shape (T,) or (T, N)
    span : float

    Returns
    -------
    Same type and shape as ``data``. Entries before a column's first observation are NaN.
    """
    return ewm_mean_decay(data, ewm_lambda(span))


def ewm_mean_decay(data, lam: float, init=None):
    """:func:`ewm_mean` with the decay ``lam`` in [0, 1) and an optional initial state.

    ``init`` (scalar or one value per column) replaces the first observation as the state a
    column starts from at its first observation; by default the first row, 0 where missing.
    """
    a = _as_array(data)
    squeeze = a.ndim == 1
    a2 = a[:, None] if squeeze else a
    out = np.full_like(a2, np.nan)
    if a2.shape[0]:
        first = a2[0]
        if init is None:
            init = np.where(np.isfinite(first), first, 0.0)
        init = np.broadcast_to(np.asarray(init, dtype=float), first.shape)
        last = np.where(np.isfinite(first), init, np.nan)
        out[0] = last
        for t in range(1, a2.shape[0]):
            obs = a2[t]
            started = np.isfinite(last)
            prev = np.where(~started & np.isfinite(obs), init, last)
            current = lam * prev + (1.0 - lam) * obs
            last = np.where(np.isfinite(current), current, prev)
            out[t] = last
    result = out[:, 0] if squeeze else out
    if isinstance(data, pd.DataFrame):
        return pd.DataFrame(result, index=data.index, columns=data.columns)
    if isinstance(data, pd.Series):
        return pd.Series(result, index=data.index, name=data.name)
    return result


def ewm_covariance(data, span: float) -> np.ndarray:
    """EWMA second-moment matrix of already-centred data at the last observation.

    Parameters
    ----------
    data : array-like, shape (T, N)
        Centred returns; NaN marks a missing observation.
    span : float

    Returns
    -------
    numpy.ndarray, shape (N, N)
    """
    return ewm_cross_moment(data, None, ewm_lambda(span))


def ewm_cross_moment(a, b, lam: float, start=None) -> np.ndarray:
    """:func:`ewm_covariance` of ``a`` against ``b`` (None: ``a``) with decay ``lam``.

    ``start`` is the matrix the recursion starts from (default zeros; non-finite entries
    count as 0). An entry whose product is missing keeps its last value.
    """
    a = _as_array(a)
    if a.ndim == 1:
        a = a[:, None]
    if b is None:
        b = a
    else:
        b = _as_array(b)
        if b.ndim == 1:
            b = b[:, None]
    t_rows, n = a.shape
    if start is None:
        covar = np.zeros((n, b.shape[1]))
    else:
        covar = np.array(start, dtype=float)
        covar[~np.isfinite(covar)] = 0.0
    valid = np.isfinite(a) if b is a else None
    # A column whose observations form one run to the end decays every pair on every later
    # row, so the recursion (from zero) is a single weighted Gram matrix. Only gaps or trailing
    # NaN need the row-by-row recursion.
    if valid is not None and start is None and not np.any(valid[:-1] & ~valid[1:]):
        z = np.where(valid, a, 0.0)
        w = (1.0 - lam) * lam ** np.arange(t_rows - 1, -1, -1)
        return (z * w[:, None]).T @ z
    for t in range(t_rows):
        new = lam * covar + (1.0 - lam) * np.outer(a[t], b[t])
        covar = np.where(np.isfinite(new), new, covar)
    return covar


def covariance_to_correlation(covar: np.ndarray) -> np.ndarray:
    """Correlation from a covariance; a zero-variance column gets a zero row and unit diagonal.

    "Zero" is relative to the largest variance, so that the units of the data (returns in
    1e-8 or 1e8) do not change the correlations.
    """
    d = np.diag(covar).copy()
    top = np.nanmax(d, initial=0.0)
    if not top > 0.0:
        return np.identity(len(d))
    pos = d > 1e-12 * top
    inv = np.zeros_like(d)
    inv[pos] = 1.0 / np.sqrt(d[pos])
    corr = covar * np.outer(inv, inv)
    np.fill_diagonal(corr, np.where(pos, np.diag(corr), 1.0))
    return corr


def ewm_correlation(data, span: float) -> np.ndarray:
    """EWMA correlation of already-centred data (see :func:`ewm_covariance`)."""
    return covariance_to_correlation(ewm_covariance(data, span))
