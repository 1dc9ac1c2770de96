"""Dependence matrices of a return panel for cluster discovery: Pearson, Spearman, Gerber.

Names, defaults and semantics are factorlasso 1.0.6's (``compute_dependence_matrix``,
``compute_gerber_matrix``), so that a partition found here is the one found there.

* ``pearson``: pairwise-complete sample correlation without a span, the EWMA correlation of
  :func:`~xl_factorlasso.core.cluster.ewm_correlation` with one.
* ``spearman``: the same on the ranks of each column (ties averaged, missing values kept
  missing), ranked once over the whole sample. With a span the ranks are first centred at
  their mean: the EWMA recursion is a second moment and needs centred data. (factorlasso 1.0.6
  runs it on the raw ranks 1..T, which are all positive: two independent series then show a
  "correlation" near 0.75 whatever their dependence; a documented difference.)
* ``gerber``: ``g_ij = (n_UU + n_DD - n_UD - n_DU) / (n_ij - n_NN)`` where a leg moves up
  (down) when its value is ``>= c sigma`` (``<= -c sigma``), ``n_ij`` counts the rows where
  both legs are observed and ``n_NN`` those where neither leg moves; every count is weighted by
  the observation weights (uniform, or EWMA ``lambda^(T-1-t)``), each normalised to sum to 1.
  ``sigma`` is the weighted standard deviation of the column over its own observations; the
  thresholds apply to the values as given (Gerber is not invariant to centring).
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
import pandas as pd

from ._choices import DependenceMeasure, parse_choice
from ._ewm import covariance_to_correlation, ewm_correlation, ewm_lambda
from ._hierarchical import pairwise_correlation

__all__ = ["compute_dependence_matrix", "compute_gerber_matrix"]

_BACKFILLS = ("ffill", "deflated_ffill", "zero_fill", "nan_fill")


def _panel(a) -> np.ndarray:
    a = np.asarray(a, dtype=float)
    if a.ndim != 2:
        raise ValueError(f"a must be 2-dimensional (T, N), got shape {a.shape}")
    return a


def _checked_threshold(gerber_threshold) -> float:
    c = gerber_threshold
    if isinstance(c, bool) or not isinstance(c, numbers.Real) or not 0.0 <= c <= 1.0:
        raise ValueError(f"gerber_threshold must lie in [0, 1], got {c!r}")
    return float(c)


def _observation_weights(n_obs: int, span) -> np.ndarray:
    """Weights of the rows summing to one, most recent last: uniform, or EWMA with ``span``."""
    if n_obs <= 0:
        raise ValueError("a has no rows: a dependence matrix needs observations")
    if span is None:
        return np.full(n_obs, 1.0 / n_obs)
    w = ewm_lambda(span) ** np.arange(n_obs - 1, -1, -1, dtype=float)
    total = w.sum()
    if not (np.isfinite(total) and total > 0.0):  # lambda**T underflows only if span ~ 1
        raise ValueError(f"span={span!r} gives no usable weight over {n_obs} rows")
    return w / total


def compute_gerber_matrix(a, span=None, gerber_threshold: float = 0.5) -> np.ndarray:
    """Gerber co-movement matrix, optionally EWMA-weighted (Gerber et al., 2022).

    Parameters
    ----------
    a : array-like, shape (T, N)
        Return panel; a missing (non-finite) value removes that row from every pair of its
        column.
    span : float, optional
        EWMA span of the observation weights; None weights the rows equally.
    gerber_threshold : float, default 0.5
        ``c`` in [0, 1]: a leg moves when it is at least ``c`` of its standard deviation away
        from zero.

    Returns
    -------
    numpy.ndarray, shape (N, N)
        Symmetric, unit diagonal, entries in [-1, 1]; 0 for a pair with no joint move.

    Raises
    ------
    ValueError
        ``a`` not 2-D or without rows, ``gerber_threshold`` outside [0, 1], a bad ``span``.
    """
    a = _panel(a)
    c = _checked_threshold(gerber_threshold)
    w = _observation_weights(a.shape[0], span)
    valid = np.isfinite(a)
    v = valid.astype(float)
    z = np.where(valid, a, 0.0)
    mass = w @ v  # weight of each column's own observations
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(mass > 0.0, (w @ z) / mass, 0.0)
        dev = (z - mean) * v
        var = np.where(mass > 0.0, (w @ dev**2) / mass, 0.0)
    threshold = c * np.sqrt(np.maximum(var, 0.0))
    up = valid & (z >= threshold)
    down = valid & (z <= -threshold)
    move = up.astype(float) - down.astype(float)  # 0 where missing: no vote in any pair
    still = (valid & ~up & ~down).astype(float)
    wcol = w[:, None]
    concordance = (move * wcol).T @ move
    observed = (v * wcol).T @ v  # weight of the rows where both legs are observed
    both_still = (still * wcol).T @ still
    denominator = observed - both_still
    with np.errstate(invalid="ignore", divide="ignore"):
        g = np.where(denominator > 0.0, concordance / denominator, 0.0)
    g = 0.5 * (g + g.T)  # exactly symmetric
    np.fill_diagonal(g, 1.0)
    return np.clip(g, -1.0, 1.0)


def _ewm_correlation_backfilled(a: np.ndarray, span, backfill: str) -> np.ndarray:
    """EWMA correlation where a pair with a missing value decays (``deflated_ffill``) or is
    reset to zero (``zero_fill``, ``nan_fill``) instead of keeping its last value."""
    if backfill == "ffill":
        return ewm_correlation(a, span)
    lam = ewm_lambda(span)
    covar = np.zeros((a.shape[1], a.shape[1]))
    for row in a:
        new = lam * covar + (1.0 - lam) * np.outer(row, row)
        fill = lam * covar if backfill == "deflated_ffill" else 0.0
        covar = np.where(np.isfinite(new), new, fill)
    return covariance_to_correlation(covar)


def _checked_backfill(nan_backfill) -> str:
    # factorlasso passes an int enum NanBackfill.FFILL/...: its member name is the choice.
    key = getattr(nan_backfill, "name", nan_backfill)
    if isinstance(key, str) and key.strip().lower() in _BACKFILLS:
        return key.strip().lower()
    raise ValueError(
        f"nan_backfill must be one of {', '.join(map(repr, _BACKFILLS))}, got {nan_backfill!r}"
    )


def compute_dependence_matrix(
    a,
    dependence_measure="pearson",
    span=None,
    gerber_threshold: float = 0.5,
    nan_backfill="ffill",
) -> np.ndarray:
    """Dependence matrix of a return panel under the chosen measure and weighting.

    Parameters
    ----------
    a : array-like, shape (T, N)
        Return panel; NaN marks a missing observation.
    dependence_measure : DependenceMeasure or str, default "pearson"
        ``"pearson"``, ``"spearman"`` or ``"gerber"``. With a span, ``"spearman"`` centres
        the ranks before the EWMA recursion (factorlasso 1.0.6 does not; see the module notes).
    span : float, optional
        EWMA span; None weights the rows equally (pairwise-complete correlation).
    gerber_threshold : float, default 0.5
        Threshold of ``"gerber"``, in [0, 1]; ignored by the other measures.
    nan_backfill : str or factorlasso ``NanBackfill``, default "ffill"
        With a span (Pearson, Spearman): what a pair with a missing value becomes at that row:
        its last value (``"ffill"``), that value decayed (``"deflated_ffill"``) or zero
        (``"zero_fill"``, ``"nan_fill"``).

    Returns
    -------
    numpy.ndarray, shape (N, N)
        Symmetric; NaN for a pair without two common observations (Pearson and Spearman
        without a span), which cluster discovery reads as 0.

    Raises
    ------
    ValueError
        An unknown measure or backfill, ``a`` not 2-D, a bad span or threshold.
    """
    measure = parse_choice(DependenceMeasure, dependence_measure, "dependence_measure")
    a = _panel(a)
    if measure is DependenceMeasure.GERBER:
        return compute_gerber_matrix(a, span=span, gerber_threshold=gerber_threshold)
    backfill = _checked_backfill(nan_backfill)
    if span is not None:
        ewm_lambda(span)  # a bad span is reported as such before any work
    if measure is DependenceMeasure.SPEARMAN:
        a = pd.DataFrame(a).rank().to_numpy(dtype=float)  # NaN stays NaN
        if span is not None:  # (pairwise-complete Pearson centres each pair itself)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", category=RuntimeWarning)  # all-NaN column
                a = a - np.nanmean(a, axis=0)
    if span is None:
        return pairwise_correlation(a)
    return _ewm_correlation_backfilled(a, span, backfill)
