"""Performance statistics of a return series, with skfolio's definitions.

Each statistic is the one of ``skfolio.measures`` / ``skfolio.portfolio.Portfolio`` of the same
name on the same series (sample moments with ``ddof=1``; the semi-deviation below the mean with
Bessel's correction; drawdowns from a running peak that starts at the initial wealth), so a
backtest's numbers can be checked against skfolio's ``MultiPeriodPortfolio``. Ratios are
annualised as skfolio's ``annualized_sharpe_ratio`` (``x sqrt(a)``); the Calmar ratio is the
annualised excess mean over the maximum drawdown (skfolio's per-period ``calmar_ratio`` times
``a``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["STATS_COLUMNS", "infer_annualization_factor", "return_statistics",
           "diversification_ratio"]

#: The columns of ``MaxDiversificationBacktest.stats_``, in order.
STATS_COLUMNS = ["annualized_mean", "annualized_volatility", "sharpe_ratio", "sortino_ratio",
                 "max_drawdown", "calmar_ratio", "average_turnover", "total_costs"]

# Median spacing of the dates (days) -> periods per year: the upper edge of each class.
_FREQUENCIES = ((4.0, 252.0, "daily"), (10.0, 52.0, "weekly"), (45.0, 12.0, "monthly"),
                (120.0, 4.0, "quarterly"), (400.0, 1.0, "annual"))


def infer_annualization_factor(index: pd.DatetimeIndex) -> float:
    """Periods per year from the median spacing of ``index``: 252 (daily, at most 4 days
    apart, so weekends and holidays count as daily), 52 (weekly, <= 10 days), 12 (monthly,
    <= 45 days), 4 (quarterly, <= 120 days) or 1 (annual, <= 400 days).

    Raises
    ------
    ValueError
        Fewer than two dates, or a spacing of more than 400 days.
    """
    if len(index) < 2:
        raise ValueError("annualization_factor: cannot infer the data's frequency from fewer "
                         "than two dates; give annualization_factor")
    days = float(np.median((index[1:] - index[:-1]) / pd.Timedelta(days=1)))
    for edge, factor, _ in _FREQUENCIES:
        if days <= edge:
            return factor
    raise ValueError(f"annualization_factor: the dates are {days:.0f} days apart (median); "
                     "give annualization_factor")


def _drawdowns(returns: np.ndarray, compounded: bool) -> np.ndarray:
    """Drawdowns (<= 0) of the cumulative returns from a running peak that starts at the
    initial wealth (0 added, or 1 compounded), as ``skfolio.measures.get_drawdowns``."""
    if compounded:
        wealth = np.cumprod(1.0 + returns)
        peak = np.maximum(np.maximum.accumulate(wealth), 1.0)
        return wealth / peak - 1.0
    wealth = np.cumsum(returns)
    return wealth - np.maximum(np.maximum.accumulate(wealth), 0.0)


def _ratio(numerator: float, denominator: float) -> float:
    # A zero risk (e.g. a strategy that only ever held cash) has no ratio: NaN, not inf.
    return float(numerator / denominator) if denominator > 0 else np.nan


def return_statistics(returns, annualization_factor: float, risk_free_rate: float = 0.0,
                      compounded: bool = False) -> dict[str, float]:
    """Annualised mean and volatility, Sharpe, Sortino, maximum drawdown and Calmar ratio.

    Parameters
    ----------
    returns : array-like of shape (n_observations,)
        Period returns (finite).
    annualization_factor : float
        Periods per year ``a``.
    risk_free_rate : float, default 0.0
        Per period, subtracted from the mean in the three ratios.
    compounded : bool, default False
        Drawdowns of the compounded wealth ``prod(1 + r)`` instead of the cumulative sum
        (skfolio's ``compounded``).

    Returns
    -------
    dict
        ``annualized_mean`` (``a mean``), ``annualized_volatility`` (``sqrt(a) std``, ddof=1),
        ``sharpe_ratio`` (``sqrt(a) (mean - rf) / std``), ``sortino_ratio`` (``sqrt(a)
        (mean - rf) / semi_deviation``, the semi-deviation below the mean with ``n / (n - 1)``),
        ``max_drawdown`` (>= 0), ``calmar_ratio`` (``a (mean - rf) / max_drawdown``). A ratio
        whose risk is zero is NaN; fewer than two returns give NaN moments.
    """
    r = np.asarray(returns, dtype=float).reshape(-1)
    a = float(annualization_factor)
    n = r.size
    if n == 0:
        return {k: np.nan for k in STATS_COLUMNS[:6]}
    mean = float(r.mean())
    std = float(r.std(ddof=1)) if n > 1 else np.nan
    semi = (float(np.sqrt(np.mean(np.maximum(mean - r, 0.0) ** 2) * n / (n - 1)))
            if n > 1 else np.nan)
    max_dd = float(-_drawdowns(r, compounded).min())
    excess = mean - float(risk_free_rate)
    return {
        "annualized_mean": a * mean,
        "annualized_volatility": np.sqrt(a) * std,
        "sharpe_ratio": np.sqrt(a) * _ratio(excess, std),
        "sortino_ratio": np.sqrt(a) * _ratio(excess, semi),
        "max_drawdown": max_dd,
        "calmar_ratio": a * _ratio(excess, max_dd),
    }


def diversification_ratio(weights: np.ndarray, volatilities: np.ndarray,
                          portfolio_volatility: float) -> float:
    """``w' sigma / sigma_p``: the weighted asset volatilities over the portfolio's (NaN when
    the portfolio's volatility is zero, e.g. cash)."""
    return _ratio(float(np.asarray(weights) @ np.asarray(volatilities)), portfolio_volatility)
