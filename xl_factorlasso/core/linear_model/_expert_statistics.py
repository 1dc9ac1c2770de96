"""The selected-factor OLS slopes and their HAC errors as a table (factorlasso 1.0.6's helper).

The numbers come from :func:`~._expert_bounds.wls_hac`, the same weighted regression with
Bartlett (Newey-West) standard errors that sizes the expert prior floors, so this table shows
exactly what a fit with ``expert_prior_bound_n_std`` uses.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import pandas as pd

from ._expert_bounds import wls_hac

__all__ = ["compute_expert_prior_statistics"]

STATISTICS_COLUMNS = ["reference_beta", "se_hac", "observations", "effective_n",
                      "calendar_gaps", "hac_lags", "status"]


def _whole(value, name) -> None:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Integral) or value < 0:
        raise ValueError(f"{name} must be a whole number >= 0, got {value!r}")


def compute_expert_prior_statistics(x, y, span=None, hac_lags=0, min_periods=3):
    """Weighted OLS slopes of one response on its selected factors, with HAC errors.

    The regression of ``y`` on ``[1, x]`` uses the rows where ``y`` and every column of ``x``
    are finite, with weights ``lambda^(T-1-t)``, ``lambda = 1 - 2/(span+1)`` (ones without a
    span); a missing row keeps its place on the grid, so weights and HAC lags count calendar
    rows. Standard errors are the Bartlett sandwich with the ``n/(n-p)`` correction
    (``p`` counts the intercept), see :func:`~._expert_bounds.wls_hac`.

    Parameters
    ----------
    x : pandas.DataFrame
        The selected factors (one column: the univariate slope; several: joint slopes).
    y : pandas.Series
        One response on exactly the same unique index as ``x`` (increasing, for dates).
    span : float, optional
        EWMA span (finite, >= 1); None weights every row equally.
    hac_lags : int, default 0
        Bartlett bandwidth in rows (0: heteroskedasticity-robust only).
    min_periods : int, default 3
        Fewest usable rows (at least 3 and more than the number of coefficients count too).

    Returns
    -------
    pandas.DataFrame
        Indexed by the columns of ``x``: ``reference_beta``, ``se_hac``, ``observations``,
        ``effective_n`` (``(sum w)^2 / sum w^2``, a diagnostic), ``calendar_gaps`` (missing
        rows inside the used span), ``hac_lags`` and ``status`` (``ok``,
        ``insufficient_observations`` or ``rank_deficient``; NaN numbers unless ``ok``).

    Raises
    ------
    ValueError
        A bad ``span``, ``hac_lags`` or ``min_periods``, misaligned or empty panels, or
        decreasing dates.
    """
    if span is not None and (isinstance(span, (bool, np.bool_)) or not isinstance(span, Real)
                             or not np.isfinite(span) or span < 1):
        raise ValueError(f"span must be a finite number >= 1 or None, got {span!r}")
    _whole(hac_lags, "hac_lags")
    _whole(min_periods, "min_periods")
    if not isinstance(x, pd.DataFrame) or not isinstance(y, pd.Series):
        raise ValueError("x must be a pandas DataFrame (the selected factors) and y a pandas "
                         f"Series (one response), got {type(x).__name__} and "
                         f"{type(y).__name__}")
    if x.empty or not x.index.equals(y.index) or not x.index.is_unique \
            or not x.columns.is_unique:
        raise ValueError("x and y must be nonempty, share exactly the same unique index, and "
                         "x's factor names must be unique")
    if isinstance(x.index, pd.DatetimeIndex) and not x.index.is_monotonic_increasing:
        raise ValueError("the observation dates of x and y must be increasing")
    rows = len(x)
    weights = (np.ones(rows) if span is None
               else (1.0 - 2.0 / (span + 1.0)) ** np.arange(rows - 1, -1, -1))
    fit = wls_hac(x.to_numpy(dtype=float), y.to_numpy(dtype=float), weights, hac_lags,
                  min_periods)
    return pd.DataFrame({"reference_beta": fit.coef[1:], "se_hac": fit.se[1:],
                         "observations": fit.observations, "effective_n": fit.effective_n,
                         "calendar_gaps": fit.calendar_gaps, "hac_lags": hac_lags,
                         "status": fit.status}, index=x.columns, columns=STATISTICS_COLUMNS)
