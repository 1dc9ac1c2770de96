"""Holdings of one strategy between rebalances: drift, turnover, costs and period returns.

Timing: weights set at the close of a rebalancing row ``d`` earn from row ``d + 1`` on. With
``drift`` they move with the returns, ``w_i (1 + r_i) / (1 + w'r)`` after each row (the cash
``1 - sum(w)`` earns nothing), until the next rebalance; without it they are reset to the
traded weights every row (skfolio's ``MultiPeriodPortfolio`` assumption). Trading from the
drifted holdings ``h`` to ``w`` has turnover ``sum |w - h|`` and costs ``sum c_i |w_i - h_i|``,
charged on the first return of the new period: ``net = gross - costs`` on that row only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["Book"]


class Book:
    """The account of one strategy over the rows of ``returns``.

    Parameters
    ----------
    name : str
        The strategy (for messages).
    returns : pandas.DataFrame, shape (T, N)
        Asset returns; a missing return is allowed only for an asset not held that row.
    costs : ndarray of shape (N,)
        Proportional transaction costs per unit traded.
    drift : bool
        Let the weights drift with the returns between rebalances.
    """

    def __init__(self, name: str, returns: pd.DataFrame, costs: np.ndarray, drift: bool):
        self.name = name
        self._dates = returns.index
        self._assets = returns.columns
        self._r = returns.to_numpy(dtype=float)
        self._costs = costs
        self._drift = drift
        n = self._r.shape[1]
        # Held at the close of row ``self.row`` (zeros: cash). Without drift they stay the
        # traded weights, i.e. they are reset every row.
        self.holdings = np.zeros(n)
        self.row = None  # the last row accounted for
        self._pending_cost = 0.0
        self.gross: dict[int, float] = {}
        self.net: dict[int, float] = {}

    def advance(self, to_row: int) -> None:
        """Earn the returns of the rows after ``self.row`` up to ``to_row`` (included)."""
        if self.row is None:  # the first rebalance: nothing was held before it
            self.row = to_row
            return
        w = self.holdings
        for t in range(self.row + 1, to_row + 1):
            r = self._r[t]
            held = w != 0
            missing = held & np.isnan(r)
            if missing.any():
                i = int(np.flatnonzero(missing)[0])
                raise ValueError(
                    f"y: asset {self._assets[i]!r} has no return on {self._dates[t].date()} "
                    f"while the {self.name!r} strategy holds it (weight {w[i]:.6g}); fill or "
                    "drop the gap")
            r = np.where(held, r, 0.0)
            gross = float(w @ r)
            self.gross[t] = gross
            self.net[t] = gross - self._pending_cost
            self._pending_cost = 0.0
            if self._drift:
                if 1.0 + gross <= 0.0:
                    raise ValueError(f"the {self.name!r} strategy lost all its value on "
                                     f"{self._dates[t].date()} (return {gross:.6g})")
                w = w * (1.0 + r) / (1.0 + gross)
        self.holdings = w
        self.row = to_row

    def trade(self, row: int, weights: np.ndarray) -> tuple[float, float]:
        """Trade to ``weights`` at the close of ``row`` (after :meth:`advance` to it).

        Returns ``(turnover, costs)``; the costs are charged on the next row's return.
        """
        self.advance(row)
        traded = np.abs(weights - self.holdings)
        turnover, cost = float(traded.sum()), float(self._costs @ traded)
        self.holdings = np.asarray(weights, dtype=float).copy()
        self._pending_cost = cost
        return turnover, cost

    def hold(self, row: int) -> None:
        """Keep what is held at the close of ``row`` (a failed or skipped rebalance)."""
        self.advance(row)
