"""The empirical (OLS) prior centre ``B0``, as factorlasso 1.0.6's ``apply_ols_prior``.

For response ``i`` and factor ``j`` the univariate weighted regression with intercept runs on
the ORIGINAL observations (no demeaning, no zero-filling) over the rows where both ``x_j`` and
``y_i`` are finite, with the loss's date weights ``w_t = lambda^(T-1-t)`` (ones without a
span; a row keeps its calendar age when others are missing):

    beta_ij = cov_w(x_j, y_i) / var_w(x_j),   R2_ij = cov_w^2 / (var_w(x_j) var_w(y_i)).

A pair with fewer than ``max(3, warmup_period)`` such rows, or with a (numerically) constant
side, has no statistic (NaN). Selection ``"highest_r2"``: each response's prior is the full
slope of its highest-R2 factor (first in factor order on ties), every other automatic centre is
0. ``factor_for_prior`` overrides the choice per response: one factor takes its univariate
slope, an ordered list takes the slopes of one joint weighted regression with intercept on the
complete rows (zeros when that is unidentified). A two-factor list whose weighted VIF exceeds
``named_set_max_vif`` (default 2.5; None: no check) keeps only its first factor (with a
warning), as factorlasso. Factors of ``excluded_factors`` never win the automatic selection.
"""

from __future__ import annotations

from collections.abc import Mapping
from numbers import Real

import numpy as np
import pandas as pd

from .._notes import note
from ..cluster import ewm_lambda

__all__ = ["MAX_NAMED_FACTORS", "NAMED_SET_MAX_VIF", "PRIOR_SELECTION_TYPES", "OlsPrior",
           "check_named_set_params", "check_ols_prior_params", "ols_prior", "zero_incompatible"]

PRIOR_SELECTION_TYPES = ("highest_r2",)
MAX_NAMED_FACTORS = 2  # factorlasso's default max_named_factors
NAMED_SET_MAX_VIF = 2.5  # factorlasso's default named_set_max_vif
# A variance below this fraction of the raw second moment is round-off: the side is constant.
_RELATIVE_TOL = 64.0 * np.finfo(float).eps


def _selection(response, value, max_named: int = MAX_NAMED_FACTORS) -> tuple:
    """One response's ``factor_for_prior`` entry as an ordered tuple (empty: automatic)."""
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return ()
    if pd.api.types.is_scalar(value):
        return (value,)
    if not isinstance(value, (list, tuple)) or not value or any(
            not pd.api.types.is_scalar(v) or pd.isna(v) for v in value):
        raise ValueError(f"factor_for_prior[{response!r}] must be a factor name or a nonempty "
                         f"list of factor names, got {value!r}")
    if len(set(value)) != len(value):
        raise ValueError(f"factor_for_prior[{response!r}] names a factor twice: {value!r}")
    if len(value) > max_named:
        raise ValueError(f"factor_for_prior[{response!r}] has {len(value)} factors; at most "
                         f"max_named_factors={max_named} are allowed")
    return tuple(value)


def check_named_set_params(max_named_factors, named_set_max_vif) -> None:
    """``max_named_factors`` must be 1 or 2, ``named_set_max_vif`` a number >= 1 or None."""
    m = max_named_factors
    if isinstance(m, (bool, np.bool_)) or not isinstance(m, (int, np.integer)) or m not in (1, 2):
        raise ValueError(f"max_named_factors must be 1 or 2, got {m!r}")
    v = named_set_max_vif
    if v is not None and (isinstance(v, (bool, np.bool_)) or not isinstance(v, Real)
                          or not np.isfinite(v) or v < 1):
        raise ValueError(f"named_set_max_vif must be a finite number >= 1 or None, got {v!r}")


def check_ols_prior_params(apply_ols_prior, prior_selection_type, factor_for_prior,
                           max_named_factors=MAX_NAMED_FACTORS) -> dict:
    """Validate the parameters (as ``fit`` does) and return the selections.

    Returns
    -------
    dict
        Response label -> ordered tuple of selected factors (only nonempty selections).
    """
    if not isinstance(apply_ols_prior, (bool, np.bool_)):
        raise ValueError(f"apply_ols_prior must be True or False, got {apply_ols_prior!r}")
    if (not isinstance(prior_selection_type, str)
            or prior_selection_type not in PRIOR_SELECTION_TYPES):
        raise ValueError(f"prior_selection_type must be one of {PRIOR_SELECTION_TYPES!r}, got "
                         f"{prior_selection_type!r}")
    if factor_for_prior is None:
        return {}
    if not apply_ols_prior:
        raise ValueError("factor_for_prior requires apply_ols_prior=True")
    if not isinstance(factor_for_prior, (Mapping, pd.Series)):
        raise ValueError("factor_for_prior must be a mapping or a pandas Series "
                         f"(response -> factor), got {type(factor_for_prior).__name__}")
    if isinstance(factor_for_prior, pd.Series) and factor_for_prior.index.has_duplicates:
        raise ValueError("factor_for_prior: a response is named twice")
    chosen = {r: _selection(r, v, max_named_factors) for r, v in factor_for_prior.items()}
    return {r: v for r, v in chosen.items() if v}


def _date_weights(n: int, span) -> np.ndarray:
    if span is None:
        return np.ones(n)
    # lambda = 0 (span 1) leaves only the last row, 0**0 = 1
    return ewm_lambda(span) ** np.arange(n - 1, -1, -1, dtype=float)


class OlsPrior:
    """The univariate statistics and the selected centres (responses x factors arrays).

    Attributes
    ----------
    betas, r2 : numpy.ndarray, shape (N, M)
        Univariate weighted slopes and R2, NaN where undefined.
    prior : numpy.ndarray, shape (N, M)
        Selected centres before explicit overrides and sign filtering.
    named : dict
        Response -> the factors it is centred on by ``factor_for_prior`` after the VIF check
        (factorlasso's ``effective_factor_for_prior_``; responses of ``y`` only).
    named_diagnostics : pandas.DataFrame
        factorlasso's ``named_set_diagnostics_``: per response of ``y``, ``requested_set``,
        ``named_set``, ``named_set_status`` (``automatic``, ``named``, ``named_set_accepted``,
        ``named_set_demoted``, ``conditioning_disabled``) and ``largest_vif``.
    """

    def __init__(self, betas, r2, prior, named=None, named_diagnostics=None):
        self.betas, self.r2, self.prior = betas, r2, prior
        self.named = {} if named is None else named
        self.named_diagnostics = named_diagnostics


def _univariate(x: np.ndarray, y: np.ndarray, w: np.ndarray, min_rows: int):
    """Pairwise-complete weighted slopes and R2 of every (response, factor) pair."""
    fx, fy = np.isfinite(x), np.isfinite(y)
    # shift each column by its last finite value: central moments without cancellation
    def shifted(a, finite):
        last = np.where(finite.any(axis=0), a.shape[0] - 1 - np.argmax(finite[::-1], axis=0), 0)
        origin = np.where(finite.any(axis=0), a[last, np.arange(a.shape[1])], 0.0)
        return np.where(finite, a - origin, 0.0)
    xs, ys = shifted(x, fx), shifted(y, fy)
    mx, my = fx * w[:, None], fy.astype(float)  # weights folded into the factor mask
    n = my.T @ fx.astype(float)  # (N, M) number of pair rows
    s0 = my.T @ mx
    sx, sy = my.T @ (mx * xs), (ys * fy).T @ mx
    sxx, syy = my.T @ (mx * xs * xs), (ys * ys).T @ mx
    sxy = ys.T @ (mx * xs)
    safe = np.where(s0 > 0, s0, 1.0)
    vx, vy, cxy = sxx - sx * sx / safe, syy - sy * sy / safe, sxy - sx * sy / safe
    ok = ((n >= min_rows) & (s0 > 0) & (vx > _RELATIVE_TOL * sxx) & (vy > _RELATIVE_TOL * syy))
    betas = np.divide(cxy, vx, out=np.full(cxy.shape, np.nan), where=ok)
    r2 = np.clip(np.divide(cxy * cxy, vx * vy, out=np.full(cxy.shape, np.nan), where=ok),
                 0.0, 1.0)
    return betas, r2


def _complete_rows(x: np.ndarray, y: np.ndarray, w: np.ndarray, min_rows: int):
    """Centred, weight-normalised complete rows of a joint regression, or None if too few."""
    ok = np.isfinite(x).all(axis=1) & np.isfinite(y) & (w > 0)
    if ok.sum() < max(min_rows, x.shape[1] + 1):
        return None
    xx, yy, ww = x[ok] - x[ok][-1], y[ok] - y[ok][-1], w[ok] / w[ok].sum()
    return xx - ww @ xx, yy - ww @ yy, ww


def _joint(x: np.ndarray, y: np.ndarray, w: np.ndarray, min_rows: int) -> np.ndarray:
    """Joint weighted slopes with intercept; zeros when not identified (rank deficient)."""
    rows = _complete_rows(x, y, w, min_rows)
    if rows is None:
        return np.zeros(x.shape[1])
    xx, yy, ww = rows
    root = np.sqrt(ww)[:, None]
    design = xx * root
    scale = np.linalg.norm(design, axis=0)
    if np.any(scale == 0):
        return np.zeros(x.shape[1])
    coef, _, rank, _ = np.linalg.lstsq(design / scale, yy * root[:, 0], rcond=None)
    coef = coef / scale
    return coef if rank == x.shape[1] and np.isfinite(coef).all() else np.zeros(x.shape[1])


def _max_vif(x: np.ndarray, y: np.ndarray, w: np.ndarray, min_rows: int) -> float:
    """Largest weighted VIF of the factors on the joint regression's rows (inf: unidentified)."""
    rows = _complete_rows(x, y, w, min_rows)
    if rows is None:
        return np.inf
    xx, _, ww = rows
    cov = xx.T @ (ww[:, None] * xx)
    sd = np.sqrt(np.diag(cov))
    if np.any(sd <= 0):
        return np.inf
    corr = cov / np.outer(sd, sd)
    if np.linalg.eigvalsh(corr).min() <= np.finfo(float).eps * len(sd):
        return np.inf
    return float(np.diag(np.linalg.inv(corr)).max())


def ols_prior(x: pd.DataFrame, y: pd.DataFrame, span, warmup_period,
              selections: dict, max_vif=NAMED_SET_MAX_VIF, excluded=None) -> OlsPrior:
    """The OLS prior of the original panels (see the module docstring).

    Parameters
    ----------
    x, y : pandas.DataFrame
        Aligned factors (T x M) and responses (T x N), NaN for missing.
    span : float or None
        The fit's span (date weights), ``None`` for equal weights.
    warmup_period : int or None
        Minimum rows of a pair is ``max(3, warmup_period)``.
    selections : dict
        ``check_ols_prior_params``'s response -> factors; responses not in ``y`` are ignored.
    max_vif : float or None
        ``named_set_max_vif``: a named pair above it keeps its first factor; None: no check.
    excluded : numpy.ndarray of bool, shape (N, M), optional
        Cells that cannot win the automatic selection (``excluded_factors``).

    Raises
    ------
    ValueError
        A selection names a factor that is not in ``x``.
    """
    xa, ya = x.to_numpy(dtype=float), y.to_numpy(dtype=float)
    w = _date_weights(len(x), span)
    min_rows = max(3, int(warmup_period or 0))
    betas, r2 = _univariate(xa, ya, w, min_rows)
    prior = np.zeros_like(betas)
    eligible = np.isfinite(r2) if excluded is None else np.isfinite(r2) & ~excluded
    rows = np.flatnonzero(eligible.any(axis=1))
    winners = np.argmax(np.where(eligible, r2, -np.inf), axis=1)[rows]  # first on ties
    prior[rows, winners] = betas[rows, winners]
    demoted, named, records = [], {}, {}
    for response, factors in selections.items():
        unknown = [f for f in factors if f not in x.columns]
        if unknown:
            raise ValueError(f"factor_for_prior[{response!r}]: {unknown[0]!r} is not a factor "
                             "in x")
        if response not in y.columns:
            continue  # a superset map serves several panels
        i = y.columns.get_loc(response)
        cols = x.columns.get_indexer(list(factors))
        vif, status = 1.0, "named"
        if len(cols) == 2:
            vif = _max_vif(xa[:, cols], ya[:, i], w, min_rows)
            status = "conditioning_disabled" if max_vif is None else "named_set_accepted"
            if max_vif is not None and vif > max_vif:
                cols, status = cols[:1], "named_set_demoted"
                demoted.append(response)
        named[response] = tuple(x.columns[cols])
        records[response] = (tuple(factors), named[response], status, vif)
        prior[i] = 0.0
        if len(cols) == 1:
            b = betas[i, cols[0]]
            prior[i, cols[0]] = b if np.isfinite(b) else 0.0
        else:
            prior[i, cols] = _joint(xa[:, cols], ya[:, i], w, min_rows)
    if demoted:
        note(f"factor_for_prior: the two factors of {demoted!r} are collinear "
             f"(weighted VIF > named_set_max_vif={max_vif}); only the first factor's "
             "slope is used", UserWarning, stacklevel=3)
    rows = [records.get(r, ((), (), "automatic", 1.0)) for r in y.columns]
    diagnostics = pd.DataFrame(
        rows, index=pd.Index(y.columns, name="response"),
        columns=["requested_set", "named_set", "named_set_status", "largest_vif"])
    return OlsPrior(betas, r2, prior, named, diagnostics)



def zero_incompatible(prior: np.ndarray, signs, nonneg: bool) -> np.ndarray:
    """The centres with every cell its final sign forbids set to 0 (never re-selected).

    Without a sign matrix, ``nonneg`` forbids negative centres.
    """
    if signs is None:
        return np.maximum(prior, 0.0) if nonneg else prior.copy()
    blocked = (signs == 0) | ((signs == 1) & (prior < 0)) | ((signs == -1) & (prior > 0))
    return np.where(blocked, 0.0, prior)
