"""Walk-forward backtests of maximum-diversification portfolios on rolling factor models."""

from ._backtest import BENCHMARKS, ON_FAILURE, MaxDiversificationBacktest
from ._measures import infer_annualization_factor, return_statistics

__all__ = ["BENCHMARKS", "MaxDiversificationBacktest", "ON_FAILURE",
           "infer_annualization_factor", "return_statistics"]
