"""Data-driven sign constraints (factorlasso 1.0.6's ``auto_sign_*``).

For every pool of responses ``K`` (one response for LASSO, a ``group_data`` group for
GROUP_LASSO, a discovered cluster for HCGL/FCGL) and factor ``j``, on the prepared arrays with
their missing cells (``v^x_tj``, ``v^y_tk``) and date weights ``w_t`` (``lambda^(T-1-t)`` of
``auto_sign_ewma_span``, ones without a span)::

    n_tK = sum_k v^y_tk,   s_tK = sum_k y_tk
    b_Kj = sum_t w_t x_tj s_tK / sum_t w_t x_tj^2 n_tK                 (slope through 0)

and its screening statistic ``t_Kj = b_Kj / se_Kj`` with one of two variances:

* ``"independent"`` (default), no span: pooled homoskedastic,
  ``se^2 = max(sum_t v^x_tj sum_k y_tk^2 - b^2 D, 0) / (max(n_obs - q, 1) D)`` with
  ``D`` the slope's denominator, ``n_obs = sum_t v^x_tj n_tK`` and ``q`` the number of pool
  members observed with the factor; with a span, the sum of squared *cell* scores
  ``sum_t w_t^2 x_tj^2 sum_k (y_tk - b x_tj)^2 / D^2`` times ``E / (E - q)``, ``E`` the Kish
  size ``(sum w n)^2 / sum w^2 n`` of the cells;
* ``"date"``: scores summed by date, ``u_tj = w_t x_tj (s_tK - b x_tj n_tK)``,
  ``se^2 = sum_t u_tj^2 / D^2`` times ``E / (E - 1)``, ``E`` the Kish size of the dates
  where the factor and some member are observed (``effective_n``).

A cell with ``effective_n <= 1`` or ``D = 0`` has no evidence (``t = 0``); an exact signal
(``se = 0``, ``b != 0``) has ``t = +-inf``. The detected sign is ``sign(b)``, set to 0 where
``|t| < auto_sign_threshold_t`` (``None`` or 0: no gate, ``inf``: every cell 0). This is a
screening rule, not a significance test. Every member of a pool shares its pool's numbers.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .._notes import note
from ..cluster import ewm_lambda

__all__ = ["derive_sign_constraints", "validate_cluster_signs"]

VARIANCES = ("independent", "date")
_TINY = 1e-12  # factorlasso's margin on the Kish sizes


def date_weights(n_rows: int, span) -> np.ndarray:
    """``lambda^(T-1-t)`` of ``span`` on ``n_rows`` rows (ones for ``None``); latest row 1."""
    if span is None:
        return np.ones(n_rows)
    return ewm_lambda(span) ** np.arange(n_rows - 1, -1, -1, dtype=float)


def _ratio(num, den, where, fill):
    out = np.full(np.broadcast(num, den).shape, fill, dtype=float)
    np.divide(num, den, out=out, where=where)
    return out


def pooled_statistics(x, y, pools, weights, variance="independent", weighted=None):
    """Slopes and screening statistics per pool and factor, shape (P, M) each.

    Parameters
    ----------
    x : numpy.ndarray, shape (T, M)
        Factors, NaN where missing.
    y : numpy.ndarray, shape (T, N)
        Responses, NaN where missing.
    pools : numpy.ndarray of int, shape (N,), or None
        Pool code ``0..P-1`` per response; ``None``: every response is its own pool.
    weights : numpy.ndarray, shape (T,)
        Date weights.
    variance : {"independent", "date"}
    weighted : bool, optional
        Whether the weights come from a span (selects the ``"independent"`` formula);
        default: any weight differs from 1.

    Returns
    -------
    dict
        ``slopes``, ``t_stats``, ``standard_errors``, ``effective_n``, ``n_obs``.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    w = np.asarray(weights, dtype=float)
    if weighted is None:
        weighted = bool(np.any(w != 1.0))
    vx = ~np.isnan(x)
    vy = ~np.isnan(y)
    x0 = np.where(vx, x, 0.0)
    y0 = np.where(vy, y, 0.0)
    fx = vx.astype(float)
    if pools is None:
        count, ysum, ysq = vy.astype(float), y0, y0 * y0
        members = None
    else:
        members = np.zeros((y.shape[1], int(pools.max()) + 1))
        members[np.arange(y.shape[1]), pools] = 1.0
        count, ysum, ysq = vy.astype(float) @ members, y0 @ members, (y0 * y0) @ members
    x2 = x0 * x0
    w2 = w * w
    den = (x2.T @ (w[:, None] * count)).T  # (P, M)
    slopes = _ratio((x0.T @ (w[:, None] * ysum)).T, den, den > 0, 0.0)
    seen = (count > 0).astype(float)
    mass = (fx.T @ (w[:, None] * seen)).T
    mass2 = (fx.T @ (w2[:, None] * seen)).T
    eff_n = _ratio(mass * mass, mass2, mass2 > 0, 0.0)
    n_obs = (fx.T @ count).T
    x3 = x2 * x0
    x4 = x2 * x2
    if variance == "date":
        meat = ((x2.T @ (w2[:, None] * ysum * ysum)).T
                - 2.0 * slopes * (x3.T @ (w2[:, None] * ysum * count)).T
                + slopes * slopes * (x4.T @ (w2[:, None] * count * count)).T)
        correction = _ratio(eff_n, eff_n - 1.0, eff_n > 1.0 + _TINY, 1.0)
        var = _ratio(np.maximum(meat, 0.0) * correction, den * den, den > 0, np.inf)
    else:
        overlap = ((fx.T @ vy.astype(float)) > 0).astype(float).T  # (N, M)
        q = overlap if members is None else members.T @ overlap
        if not weighted:
            y_ss = (fx.T @ ysq).T
            ssr = np.maximum(y_ss - slopes * slopes * den, 0.0)
            var = _ratio(ssr, np.maximum(n_obs - q, 1.0) * den, den > 0, np.inf)
        else:
            meat = ((x2.T @ (w2[:, None] * ysq)).T
                    - 2.0 * slopes * (x3.T @ (w2[:, None] * ysum)).T
                    + slopes * slopes * (x4.T @ (w2[:, None] * count)).T)
            sw = (fx.T @ (w[:, None] * count)).T
            sw2 = (fx.T @ (w2[:, None] * count)).T
            cells = _ratio(sw * sw, sw2, sw2 > 0, 0.0)
            correction = _ratio(cells, cells - q, cells > q + _TINY, 1.0)
            var = _ratio(np.maximum(meat, 0.0) * correction, den * den, den > 0, np.inf)
    enough = (eff_n > 1.0 + _TINY) & (den > 0)
    var = np.where(enough, var, np.inf)
    se = np.sqrt(np.maximum(var, 0.0))
    t_stats = _ratio(slopes, se, se > 0, 0.0)
    exact = enough & (se == 0) & (slopes != 0)
    t_stats[exact] = np.sign(slopes[exact]) * np.inf
    return {"slopes": slopes, "t_stats": t_stats, "standard_errors": se,
            "effective_n": eff_n, "n_obs": n_obs}


def gate(slopes: np.ndarray, t_stats: np.ndarray, threshold) -> np.ndarray:
    """``sign(b)``, 0 where ``|t| < threshold`` (no gate for None or 0; all 0 for +inf)."""
    signs = np.sign(slopes).astype(float)
    if threshold is not None and threshold > 0:
        if np.isposinf(threshold):
            signs[:] = 0.0
        else:
            signs[np.abs(t_stats) < threshold] = 0.0
    return signs


@dataclass(frozen=True)
class DetectedSigns:
    """Per-response (N, M) arrays of one detection (pool values broadcast to members)."""

    signs: np.ndarray
    slopes: np.ndarray
    t_stats: np.ndarray
    effective_n: np.ndarray
    valid_counts: np.ndarray


def detect_signs(x, y, pools, span, threshold, variance) -> DetectedSigns:
    """Detected signs of responses ``y`` (T, N) on factors ``x`` (T, M), NaN = missing."""
    stats = pooled_statistics(x, y, pools, date_weights(len(x), span), variance,
                              weighted=span is not None)
    index = np.arange(y.shape[1]) if pools is None else pools
    slopes, t_stats = stats["slopes"][index], stats["t_stats"][index]
    return DetectedSigns(
        signs=gate(slopes, t_stats, threshold), slopes=slopes, t_stats=t_stats,
        effective_n=stats["effective_n"][index], valid_counts=stats["n_obs"][index],
    )


def resolve_signs(detected, explicit, prior, excluded):
    """The sign matrix the solver receives (factorlasso's precedence).

    The automatic layer is the detection with ``excluded`` columns (bool, (M,)) set free;
    a nonzero prior whose direction conflicts with an automatic cell replaces it (so the
    prior stays feasible); any non-NaN ``explicit`` cell wins over both.
    """
    layer = detected.copy()
    layer[:, excluded] = np.nan
    direction = np.sign(prior)
    override = (prior != 0) & np.isfinite(layer) & (direction != layer)
    layer[override] = direction[override]
    if explicit is None:
        return layer
    return np.where(np.isnan(explicit), layer, explicit)


# ---------------------------------------------------------------------------------- public
def check_threshold(value, name="auto_sign_threshold_t") -> float | None:
    """``None`` or a number >= 0 (``inf`` allowed), else ValueError naming ``name``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or np.isnan(value) \
            or value < 0:
        raise ValueError(f"{name} must be a number >= 0 or None, got {value!r}")
    return float(value)


def check_variance(value, name="auto_sign_variance") -> str:
    if value not in VARIANCES:
        raise ValueError(f"{name} must be 'independent' or 'date', got {value!r}")
    return value


def _as_2d(data, name):
    arr = np.asarray(data.to_numpy(dtype=float) if isinstance(data, (pd.DataFrame, pd.Series))
                     else data, dtype=float)
    if arr.ndim == 1 and name == "y":
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {arr.shape}")
    if np.isinf(arr).any():
        raise ValueError(f"{name}: sign analytics need finite values or NaN (found inf)")
    return arr


def _factor_signs(x, y, clusters, master_constraints, names, threshold, span, variance):
    """(M,) signs and slopes of the pooled responses ``y`` (factor clusters averaged)."""
    t_rows, m = x.shape
    if span is not None:
        ewm_lambda(span)  # raises with the message users need
    inverse = None
    if clusters is not None:
        labels = np.asarray(clusters)
        if labels.ndim != 1 or len(labels) != m:
            raise ValueError(f"clusters: expected one label per factor ({m}), got "
                             f"{labels.shape}")
        ids, inverse = np.unique(labels, return_inverse=True)
        x = np.column_stack([x[:, labels == c].mean(axis=1) for c in ids])
    stats = pooled_statistics(x, y, np.zeros(y.shape[1], dtype=int),
                              date_weights(t_rows, span), variance, weighted=span is not None)
    slopes, t_stats = stats["slopes"][0], stats["t_stats"][0]
    if inverse is not None:
        slopes, t_stats = slopes[inverse], t_stats[inverse]
    signs = gate(slopes, t_stats, threshold)
    for key, value in (master_constraints or {}).items():
        if value is None or (isinstance(value, float) and np.isnan(value)):
            value = np.nan
        elif value in (-1, 0, 1):
            value = float(value)
        else:
            raise ValueError(f"master_constraints[{key!r}] = {value!r}: must be -1, 0, 1, NaN "
                             "or None")
        if isinstance(key, str):
            if names is None:
                raise ValueError(f"master_constraints names {key!r} but x has no column names")
            if key not in names:
                raise KeyError(f"master_constraints: {key!r} is not a column of x")
            j = names.index(key)
        else:
            j = int(key)
            if not 0 <= j < m:
                raise IndexError(f"master_constraints: index {j} is out of range for {m} "
                                 "factors")
        signs[j] = value
    return signs, slopes


def derive_sign_constraints(x, y, clusters=None, master_constraints=None,
                            auto_sign_threshold_t=0.75, return_slopes=False, ewma_span=None,
                            variance_estimator="independent"):
    """Pooled univariate sign constraints of factors ``x`` for responses ``y``.

    The slope of every factor through the origin on all responses pooled (no demeaning: centre
    the data first if needed), gated by its screening t-statistic (module docstring), as in
    factorlasso 1.0.6.

    Parameters
    ----------
    x : pandas.DataFrame or array-like, shape (T, M)
        Factors; NaN marks a missing value.
    y : pandas.DataFrame, pandas.Series or array-like, shape (T, N) or (T,)
        Responses, pooled; NaN marks a missing value.
    clusters : array-like, shape (M,), optional
        Factor cluster labels: each cluster's sign is that of its members' mean, broadcast.
    master_constraints : dict, optional
        Factor name (or position) -> -1, 0, 1 or NaN/None (free), overriding the detection.
    auto_sign_threshold_t : float or None, default 0.75
        Cells with ``|t|`` below it get 0; ``None`` or 0 disables the gate.
    return_slopes : bool, default False
        Also return the pooled slopes.
    ewma_span : float, optional
        EWMA span of the date weights (``None``: equal weights).
    variance_estimator : {"independent", "date"}, default "independent"

    Returns
    -------
    signs : pandas.DataFrame (N x M) when ``x`` is a DataFrame and ``y`` is pandas (every row
        the same), else numpy.ndarray (M,)
    slopes : same type and shape, only with ``return_slopes``
    """
    names = list(x.columns) if isinstance(x, pd.DataFrame) else None
    xa = _as_2d(x, "x")
    ya = _as_2d(y, "y")
    if len(ya) != len(xa):
        raise ValueError(f"x has {len(xa)} rows but y has {len(ya)} rows")
    threshold = check_threshold(auto_sign_threshold_t)
    variance = check_variance(variance_estimator, "variance_estimator")
    signs, slopes = _factor_signs(xa, ya, clusters, master_constraints, names, threshold,
                                  ewma_span, variance)
    if isinstance(x, pd.DataFrame) and isinstance(y, (pd.DataFrame, pd.Series)):
        rows = list(y.columns) if isinstance(y, pd.DataFrame) else pd.RangeIndex(1)
        signs_df = pd.DataFrame(np.tile(signs, (len(rows), 1)), index=rows, columns=names)
        if not return_slopes:
            return signs_df
        return signs_df, pd.DataFrame(np.tile(slopes, (len(rows), 1)), index=rows,
                                      columns=names)
    return (signs, slopes) if return_slopes else signs


def validate_cluster_signs(x, y, clusters, warn=True, ewma_span=None) -> np.ndarray:
    """Factors whose own slope sign disagrees with their cluster's (both non-zero).

    Parameters
    ----------
    x, y, clusters, ewma_span
        As in :func:`derive_sign_constraints`.
    warn : bool, default True
        Emit a ``UserWarning`` naming the disagreeing factors.

    Returns
    -------
    numpy.ndarray of int
        Positions of the disagreeing factors (empty when the clustering is coherent).
    """
    _, own = derive_sign_constraints(x, y, return_slopes=True, ewma_span=ewma_span)
    _, pooled = derive_sign_constraints(x, y, clusters=clusters, return_slopes=True,
                                        ewma_span=ewma_span)
    own = np.sign(np.asarray(own, dtype=float).reshape(-1, np.shape(own)[-1])[0])
    pooled = np.sign(np.asarray(pooled, dtype=float).reshape(-1, np.shape(pooled)[-1])[0])
    found = np.flatnonzero((own != pooled) & (own != 0) & (pooled != 0))
    if warn and found.size:
        if isinstance(x, pd.DataFrame):
            where = f"factors {[x.columns[j] for j in found]} (positions {found.tolist()})"
        else:
            where = f"positions {found.tolist()}"
        note(f"{found.size} factor(s) have a univariate sign opposite to their "
             f"cluster's pooled sign (possible cluster misspecification): {where}",
             UserWarning, stacklevel=2)
    return found
