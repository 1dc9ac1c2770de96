"""Result of ``predict``: a portfolio evaluated on a matrix of asset returns."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["Population", "Portfolio"]


class Portfolio:
    """Fixed weights evaluated on asset returns, with skfolio's return conventions.

    Period returns are ``X @ w - total_cost - total_fee`` where
    ``total_cost = sum(c_i * |w_i - w_prev_i|)`` and ``total_fee = sum(f_i * w_i)``; all measures
    are per period (not annualised) and use the sample standard deviation (``ddof=1``).

    Parameters
    ----------
    X : pandas.DataFrame or ndarray of shape (n_observations, n_assets)
        Asset returns.
    weights : pandas.Series or array-like of shape (n_assets,), or None
        ``None`` makes a failed portfolio: its returns and measures are NaN.
    name : str, default="Portfolio"
    risk_free_rate : float, default=0.0
        Per period, used by :attr:`sharpe_ratio`.
    transaction_costs, management_fees : float or array-like of shape (n_assets,), default=0.0
    previous_weights : float or array-like of shape (n_assets,), optional
        Defaults to zero.
    fallback_chain : list of (str, str), optional
        Copied from the estimator for traceability.
    optimization_error : str, optional
        Why the optimisation failed, for a failed portfolio.

    Attributes
    ----------
    weights : pandas.Series or None
    returns : pandas.Series
    mean, variance, standard_deviation, volatility, sharpe_ratio, diversification,
    turnover, total_cost, total_fee, effective_number_assets : float
    """

    def __init__(
        self,
        X,
        weights,
        *,
        name: str = "Portfolio",
        risk_free_rate: float = 0.0,
        transaction_costs=0.0,
        management_fees=0.0,
        previous_weights=None,
        fallback_chain: Sequence[tuple[str, str]] | None = None,
        optimization_error: str | None = None,
    ):
        frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(np.asarray(X, dtype=float))
        values = frame.to_numpy(dtype=float)
        if values.ndim != 2:
            raise ValueError(f"X must be 2-D (n_observations, n_assets), got shape {values.shape}")
        n = values.shape[1]
        self.name = name
        self.risk_free_rate = float(risk_free_rate)
        self.fallback_chain = None if fallback_chain is None else list(fallback_chain)
        self.optimization_error = optimization_error
        self.assets = frame.columns
        self._X = values
        if weights is None:
            self.weights = None
            self.previous_weights = None
            self.total_cost = np.nan
            self.total_fee = np.nan
            self.returns = pd.Series(np.nan, index=frame.index, name=name)
            return
        w = np.asarray(weights, dtype=float).reshape(-1)
        if w.shape != (n,):
            raise ValueError(f"weights must have shape ({n},) to match X, got {w.shape}")
        costs = np.broadcast_to(np.asarray(transaction_costs, dtype=float), (n,))
        fees = np.broadcast_to(np.asarray(management_fees, dtype=float), (n,))
        previous = (
            np.zeros(n)
            if previous_weights is None
            else np.broadcast_to(np.asarray(previous_weights, dtype=float), (n,))
        )
        self.weights = pd.Series(w, index=frame.columns, name=name)
        self.previous_weights = pd.Series(previous, index=frame.columns)
        self.total_cost = float(costs @ np.abs(w - previous))
        self.total_fee = float(fees @ w)
        self.returns = pd.Series(
            values @ w - self.total_cost - self.total_fee, index=frame.index, name=name
        )

    @property
    def failed(self) -> bool:
        """True when the optimisation failed and there are no weights."""
        return self.weights is None

    @property
    def mean(self) -> float:
        """Mean period return (net of costs and fees)."""
        return float(self.returns.mean())

    @property
    def variance(self) -> float:
        """Sample variance of the period returns (``ddof=1``)."""
        return float(self.returns.var(ddof=1))

    @property
    def standard_deviation(self) -> float:
        """Sample standard deviation of the period returns (``ddof=1``)."""
        return float(self.returns.std(ddof=1))

    volatility = standard_deviation

    @property
    def sharpe_ratio(self) -> float:
        """``(mean - risk_free_rate) / standard_deviation``, per period."""
        return (self.mean - self.risk_free_rate) / self.standard_deviation

    @property
    def diversification(self) -> float:
        """``w . std(X) / std(portfolio)``: weighted asset volatilities over portfolio volatility.

        Uses the sample standard deviations of ``X``, not the covariance the optimiser used.
        """
        if self.failed:
            return np.nan
        asset_std = self._X.std(axis=0, ddof=1)
        return float(self.weights.to_numpy() @ asset_std / self.standard_deviation)

    @property
    def turnover(self) -> float:
        """``sum(|w - previous_weights|)``."""
        if self.failed:
            return np.nan
        return float(np.abs(self.weights - self.previous_weights).sum())

    @property
    def effective_number_assets(self) -> float:
        """``1 / sum(w**2)`` (inverse Herfindahl index)."""
        if self.failed:
            return np.nan
        return float(1.0 / (self.weights.to_numpy() ** 2).sum())

    def summary(self) -> pd.Series:
        """The scalar measures as a labelled Series."""
        return pd.Series(
            {
                "mean": self.mean,
                "standard_deviation": self.standard_deviation,
                "sharpe_ratio": self.sharpe_ratio,
                "diversification": self.diversification,
                "turnover": self.turnover,
                "total_cost": self.total_cost,
                "total_fee": self.total_fee,
                "effective_number_assets": self.effective_number_assets,
            },
            name=self.name,
        )

    def __repr__(self) -> str:
        state = "failed" if self.failed else f"{len(self.weights)} assets"
        return f"<Portfolio {self.name!r}: {state}>"


class Population(list):
    """A list of :class:`Portfolio` (one per ``min_return`` value)."""

    def summary(self) -> pd.DataFrame:
        """One row of measures per portfolio."""
        return pd.DataFrame([p.summary() for p in self]).reset_index(drop=True)
