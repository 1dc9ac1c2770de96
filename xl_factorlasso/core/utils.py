"""factorlasso 1.0.6's utility functions under its names and signatures.

``compute_ewm``, ``compute_ewm_covar``, ``get_x_y_np`` and ``set_group_loadings`` are thin
adapters over the recursions and the panel preparation the fit itself uses
(:mod:`~xl_factorlasso.core.cluster._ewm`, :mod:`~xl_factorlasso.core.linear_model._preparation`),
so they return what a fit here sees. Options of factorlasso's EWMA that no fit uses (missing
values other than carried forward) are refused with a ValueError, never approximated.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from .cluster._ewm import (
    covariance_to_correlation,
    ewm_cross_moment,
    ewm_lambda,
    ewm_mean_decay,
)
from .linear_model._preparation import coerce_panel, prepare_panel

__all__ = ["compute_ewm", "compute_ewm_covar", "get_x_y_np", "set_group_loadings"]

_INIT_TYPES = ("X0", "ZERO", "MEAN", "VAR")


def _decay(span, lam, name: str = "ewm_lambda") -> float:
    """``1 - 2/(span+1)`` when a span is given, else ``lam`` checked to lie in [0, 1)."""
    if span is not None:
        return ewm_lambda(span)
    if isinstance(lam, bool) or not np.isfinite(lam) or not 0.0 <= lam < 1.0:
        raise ValueError(f"{name} must be a finite number in [0, 1), got {lam!r}")
    return float(lam)


def _choice_name(value, allowed: tuple[str, ...], name: str) -> str:
    """The name of an enum member (factorlasso's ``InitType``/``NanBackfill``) or a string."""
    text = getattr(value, "name", value)
    text = text.strip().upper() if isinstance(text, str) else text
    if text not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return text


def _check_ffill(nan_backfill) -> None:
    _choice_name(nan_backfill, ("FFILL",), "nan_backfill (only FFILL, the fit's rule, is "
                 "supported)")


def compute_ewm(data, span=None, ewm_lambda=0.94, init_value=None, init_type="X0",
                nan_backfill="FFILL"):
    """EWMA mean ``m_t = lambda m_{t-1} + (1 - lambda) z_t`` (factorlasso's ``compute_ewm``).

    Parameters
    ----------
    data : pandas.DataFrame, pandas.Series or numpy.ndarray, shape (T,) or (T, N)
        NaN or infinite values are missing: a column starts at its first observation and a
        missing value carries the last mean forward.
    span : float, optional
        Span ``>= 1``; ``lambda = 1 - 2/(span+1)``. Overrides ``ewm_lambda``.
    ewm_lambda : float, default 0.94
        Decay in [0, 1), used without a span.
    init_value : float or array, optional
        State a column starts from; by default given by ``init_type``.
    init_type : {"X0", "ZERO", "MEAN", "VAR"} or factorlasso's ``InitType``, default "X0"
        The first row (0 where missing), 0, the column mean or the column variance (NaN
        ignored).
    nan_backfill : "FFILL" or factorlasso's ``NanBackfill.FFILL``
        Only carrying forward (what every fit uses) is supported.

    Returns
    -------
    Same type and shape as ``data``; NaN before a column's first observation.
    """
    _check_ffill(nan_backfill)
    lam = _decay(span, ewm_lambda)
    if init_value is None:
        kind = _choice_name(init_type, _INIT_TYPES, "init_type")
        if kind != "X0":  # X0 is the recursion's own default
            a = np.asarray(data, dtype=float)
            a = np.where(np.isfinite(a), a, np.nan)
            with warnings.catch_warnings():  # an all-missing column: NaN, no warning
                warnings.simplefilter("ignore", RuntimeWarning)
                stat = {"ZERO": np.zeros(a.shape[1:]),
                        "MEAN": np.nanmean(a, axis=0),
                        "VAR": np.nanvar(a, axis=0)}[kind]
            init_value = stat if kind == "VAR" else np.where(np.isfinite(stat), stat, 0.0)
    return ewm_mean_decay(data, lam, init_value)


def compute_ewm_covar(a, b=None, span=None, ewm_lambda=0.94, covar0=None, is_corr=False,
                      nan_backfill="FFILL") -> np.ndarray:
    """EWMA covariance ``S_t = lambda S_{t-1} + (1 - lambda) a_t b_t'`` at the last row.

    factorlasso's ``compute_ewm_covar``: ``a`` (and ``b``) are taken as already centred; a
    product with a missing value keeps its last value.

    Parameters
    ----------
    a : array-like, shape (T, N), or (N,) for one observation
    b : array-like, optional
        Same shape as ``a``; defaults to ``a``.
    span : float, optional
        Span ``>= 1``; overrides ``ewm_lambda``.
    ewm_lambda : float, default 0.94
        Decay in [0, 1), used without a span.
    covar0 : array-like, shape (N, N), optional
        Starting matrix (default zeros; non-finite entries count as 0).
    is_corr : bool, default False
        Return the correlation matrix; a column without variance gets a zero row and a unit
        diagonal (zero relative to the largest variance).
    nan_backfill : "FFILL" or factorlasso's ``NanBackfill.FFILL``
        Only carrying forward is supported.

    Returns
    -------
    numpy.ndarray, shape (N, N)
    """
    _check_ffill(nan_backfill)
    lam = _decay(span, ewm_lambda)
    a = np.asarray(a, dtype=float)
    one_row = a.ndim == 1
    if b is not None:
        b = np.asarray(b, dtype=float)
        if b.shape != a.shape:
            raise ValueError(f"b must have the shape of a {a.shape}, got {b.shape}")
    if one_row:  # one observation vector, as in factorlasso
        a = a[None, :]
        b = None if b is None else b[None, :]
    covar = ewm_cross_moment(a, b, lam, covar0)
    if is_corr and not one_row:  # factorlasso normalises only a time series
        covar = covariance_to_correlation(covar)
    return covar


def get_x_y_np(x, y, span=None, demean=True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The solver's arrays of a panel (factorlasso's ``get_x_y_np``).

    Parameters
    ----------
    x, y : pandas.DataFrame or pandas.Series, shape (T, M) and (T, N)
        Factors and responses on the same dates; NaN marks a missing value.
    span : float, optional
        EWMA span of the demeaning (the first, identically zero, row is then dropped);
        None demeans by the column mean.
    demean : bool, default True

    Returns
    -------
    x_np : numpy.ndarray, shape (T', M)
    y_np : numpy.ndarray, shape (T', N)
        Demeaned, missing values set to 0.
    valid_mask : numpy.ndarray of float, shape (T', N)
        1 where the response is observed and the factor row is not entirely missing.
    """
    xf, yf = coerce_panel(x, y)
    panel = prepare_panel(xf, yf, span=span, demean=bool(demean))
    return panel.x, panel.y, panel.mask.astype(float)


def set_group_loadings(group_data: pd.Series, group_order=None) -> pd.DataFrame:
    """0/1 membership matrix of a grouping (factorlasso's ``set_group_loadings``).

    Parameters
    ----------
    group_data : pandas.Series
        Item -> group label.
    group_order : list, optional
        Columns, in order; by default the groups in order of first appearance.

    Returns
    -------
    pandas.DataFrame, shape (items, groups)
        1.0 where the item belongs to the column's group, else 0.0.
    """
    if not isinstance(group_data, pd.Series):
        raise ValueError(f"group_data must be a pandas Series, got {type(group_data).__name__}")
    order = list(group_data.unique()) if group_order is None else list(group_order)
    values = group_data.to_numpy()
    return pd.DataFrame(
        {g: (values == g).astype(float) for g in order}, index=group_data.index
    ).reindex(columns=order)
