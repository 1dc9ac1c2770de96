"""``MaxDiversificationBacktest``: a walk-forward maximum-diversification backtest.

At each rebalancing date of a :class:`~xl_factorlasso.RollingLassoModel` the factor model's
covariance ``B Sigma_f B' + D`` (and, as benchmarks, the sample and EWMA covariances of the
same window) feed a :class:`~xl_factorlasso.MaximumDiversification` whose previous weights
are the holdings actually held; an equal-weight portfolio rebalanced on the same dates is the
naive benchmark. Holdings, costs and statistics are in :mod:`._holdings` and
:mod:`._measures`; the conventions are in ``docs/backtest.md``.
"""

from __future__ import annotations

import inspect
import numbers
import time
import warnings

import numpy as np
import pandas as pd

from .._base import BaseEstimator, clone
from .._cells import numbers_in
from .._notes import dated_notes, names_text, user_warnings
from ..rolling import RollingLassoModel
from ..rolling._dates import check_index, rebalance_positions, window_start
from ._holdings import Book
from ._measures import (
    STATS_COLUMNS,
    diversification_ratio,
    infer_annualization_factor,
    return_statistics,
)

__all__ = ["MaxDiversificationBacktest", "BENCHMARKS", "ON_FAILURE"]

#: The benchmark strategies, in the order they may be listed.
BENCHMARKS = ("sample", "ewma", "equal_weight")
#: The failure policies (parameter ``on_failure``).
ON_FAILURE = ("previous", "raise")

_FACTOR = "factor"


class MaxDiversificationBacktest(BaseEstimator):
    """Walk-forward backtest of the maximum-diversification portfolio on the factor model.

    At each rebalancing date ``d`` (the rows of ``rolling``'s dates) and for each covariance
    strategy, a clone of ``portfolio`` is optimised with ``previous_weights`` = the holdings
    drifted to the close of ``d``; the new weights are traded at the close of ``d`` and earn
    from the next row on, drifting with the returns until the next rebalance. Nothing after
    ``d`` is read to set the weights at ``d``.

    Strategies (``strategies_``):

    * ``"factor"``: the date's factor covariance ``B Sigma_f B' + D`` from the rolling fit
      (passed as a :class:`~xl_factorlasso.FactorCovariance`: the cone uses ``B chol(Sigma_f)``
      and ``sqrt(D)``, never an n x n matrix);
    * ``"sample"``: the sample covariance (``ddof=1``) of the asset returns in the rolling
      model's window at ``d`` (the same rows the factor model is fitted on);
    * ``"ewma"``: the EWMA covariance of the same rows with span ``ewma_span``;
    * ``"equal_weight"``: ``1 / n`` in each of the ``n`` assets with a complete window (no
      missing return in it), traded back at the same dates with the same cost accounting.

    The sample and EWMA benchmarks refuse a date whose window has a missing return (the reason
    names the assets) or has no more rows than assets (a singular covariance); the EWMA
    benchmark also one whose weights' effective sample size (about ``ewma_span`` rows on a
    long window) is not above the number of assets. A held asset
    must have a return on every row it is held (else a ValueError names it and the date).

    Parameters
    ----------
    rolling : RollingLassoModel, optional
        The factor model re-fitted at each date (default ``RollingLassoModel()``); it is cloned
        and fitted on ``(x, y)``. Its dates are the rebalancing dates, its ``window`` and
        ``min_history`` also those of the sample/EWMA benchmarks, its ``n_jobs`` (and
        ``scheduler`` where available) parallelise the fits.
    portfolio : MaximumDiversification, optional
        The optimiser (default ``MaximumDiversification()``): its constraints (bounds, budget,
        groups, linear constraints, ``max_turnover``, ``transaction_costs``, ...) apply to every
        covariance strategy; its ``covariance``, ``span`` and ``previous_weights`` are set by
        the backtest. ``transaction_costs`` are also the costs charged on every strategy's
        trades and ``management_fees`` the fees taken from every net return, the equal-weight
        strategy included. ``min_return`` must be one number and ``max_tracking_error`` None.
    benchmarks : sequence of {"sample", "ewma", "equal_weight"}, default all three
        The strategies run next to ``"factor"``, in this order (may be empty).
    ewma_span : float, optional
        Span (> 1) of the ``"ewma"`` benchmark. Default: the factor model's ``span`` when it
        has one (the same weighting of the window), else ``annualization_factor`` (about a
        year of data). It must exceed the number of assets, else ``fit`` raises before any
        fit: the weights would count as fewer equal rows than assets on every window (their
        effective sample size, below the span). A date whose window is too short for the
        span to count as more rows than assets is a failure saying so.
    on_failure : {"previous", "raise"}, default "previous"
        What a strategy gets at a date it cannot rebalance (an infeasible or failed
        optimisation, a failed factor-model fit, a window with missing returns):

        * ``"previous"``: it keeps its holdings (drifting); before its first successful date it
          holds nothing (cash, return 0). The row of ``failures_`` says which;
        * ``"raise"``: a ValueError naming the date, the strategy and the reason.

        Every failure is a row of ``failures_``; none is silent. The dates before the first
        one with ``min_history`` rows (the warm-up, also dates before the data) are not
        rebalances of any strategy: the backtest starts at that first date. They are rows of
        ``failures_`` (action "not a rebalance (warm-up)") and never raise.
    annualization_factor : float, optional
        Periods per year for the statistics. Default: the rolling model's
        ``annualization_factor`` when > 1, else inferred from the dates' spacing (252 daily,
        52 weekly, 12 monthly, 4 quarterly, 1 annual).
    drift : bool, default True
        Let the weights drift with the returns between rebalances. ``False`` resets them to the
        traded weights every row, as skfolio's ``MultiPeriodPortfolio`` assumes.
    compounded : bool, default False
        Drawdowns (and the Calmar ratio) on compounded wealth rather than on the cumulative sum
        of returns (skfolio's default, ``False``).

    Attributes
    ----------
    strategies_ : list of str
        ``"factor"`` then the benchmarks in the order given.
    rebalance_dates_ : pandas.DatetimeIndex
        The rolling model's dates from the first one with ``min_history`` rows of data on.
    weights_ : dict of str -> pandas.DataFrame
        Per strategy, the weights held after trading at each rebalancing date (rebalance date x
        asset); at a failed date the kept holdings (zeros: cash).
    returns_ : pandas.DataFrame
        Every row after the first rebalancing date; columns ``(strategy, "gross"|"net")``.
        ``net`` is ``gross`` less the costs of a rebalance, on the first row after it, and
        less the portfolio's ``management_fees`` ``f'w`` on every row.
    turnover_, costs_ : pandas.DataFrame
        Rebalance date x strategy: ``sum |w - h|`` against the drifted holdings ``h`` (from
        cash at the first date) and ``sum c_i |w_i - h_i|`` (0 at a failed date).
    diversification_ : pandas.DataFrame
        Rebalance date x ``(strategy, "ex_ante"|"realised")``. Ex ante: ``w'sigma / sqrt(w'
        Sigma w)`` of the held weights under the strategy's covariance at the date (the sample
        covariance of the window for equal weight; NaN without a covariance: a failed factor fit,
        too little history, missing returns, or nothing held). Realised: the held weights'
        sample volatilities of the asset returns over the holding period (the rows after the
        date up to the next one, ddof=1) over the sample volatility of the strategy's gross
        returns there; NaN when the period has fewer than 2 rows or a zero portfolio volatility.
    stats_ : pandas.DataFrame
        Index ``(strategy, "gross"|"net")``, columns ``annualized_mean``,
        ``annualized_volatility``, ``sharpe_ratio``, ``sortino_ratio``, ``max_drawdown``,
        ``calmar_ratio`` (see :func:`._measures.return_statistics`; skfolio's definitions with
        the portfolio's ``risk_free_rate``), ``average_turnover`` (mean over the rebalancing
        dates) and ``total_costs`` (their sum); the last two are the same on both rows.
    failures_ : pandas.DataFrame
        Columns ``date``, ``strategy``, ``reason``, ``action``.
    rolling_ : RollingLassoModel
        The fitted rolling model (``results_``, ``failures_``, ``fit_info_``, ``notes_``:
        what its fits warned about).
    notes_ : pandas.DataFrame
        What the optimisations warned about (a covariance made positive definite, a rescued
        or failed fit...): columns ``date``, ``strategy``, ``note``. ``fit`` also warns each
        distinct note once, prefixed with its dates and strategy.
    annualization_factor_ : float
        The factor used.
    ewma_span_ : float or None
        The EWMA span used (None without the ``"ewma"`` benchmark).
    timings_ : pandas.Series
        Seconds spent: ``"rolling fits"``, then per strategy its weights at every date (the
        optimisations, covariance checks included), in this process.
    """

    _estimator_type = None

    def __init__(self, rolling=None, portfolio=None, benchmarks=BENCHMARKS, ewma_span=None,
                 on_failure="previous", annualization_factor=None, drift=True,
                 compounded=False):
        self.rolling = rolling
        self.portfolio = portfolio
        self.benchmarks = benchmarks
        self.ewma_span = ewma_span
        self.on_failure = on_failure
        self.annualization_factor = annualization_factor
        self.drift = drift
        self.compounded = compounded

    # ------------------------------------------------------------------ validation
    def _checked(self):
        from ..optimization import MaximumDiversification

        rolling = RollingLassoModel() if self.rolling is None else self.rolling
        if not isinstance(rolling, RollingLassoModel):
            raise ValueError(f"rolling must be a RollingLassoModel, got "
                             f"{type(rolling).__name__}")
        portfolio = MaximumDiversification() if self.portfolio is None else self.portfolio
        if not isinstance(portfolio, MaximumDiversification):
            raise ValueError(f"portfolio must be a MaximumDiversification, got "
                             f"{type(portfolio).__name__}")
        if portfolio.min_return is not None and np.ndim(portfolio.min_return) > 0:
            raise ValueError("portfolio.min_return: the backtest holds one portfolio per date; "
                             "give one number (or None), not a list")
        if portfolio.max_tracking_error is not None:
            raise ValueError("portfolio.max_tracking_error: the backtest has no benchmark "
                             "returns to track; leave it None")
        b = self.benchmarks
        if isinstance(b, str) or not isinstance(b, (list, tuple)):
            raise ValueError(f"benchmarks must be a list of {list(BENCHMARKS)}, got {b!r}")
        unknown = [s for s in b if s not in BENCHMARKS]
        if unknown:
            raise ValueError(f"benchmarks: unknown strategy {unknown[0]!r}; choose from "
                             f"{list(BENCHMARKS)}")
        if len(set(b)) != len(b):
            raise ValueError(f"benchmarks: a strategy is listed twice in {list(b)}")
        if self.on_failure not in ON_FAILURE:
            raise ValueError(f"on_failure must be one of {list(ON_FAILURE)}, "
                             f"got {self.on_failure!r}")
        for name in ("drift", "compounded"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        for name in ("annualization_factor", "ewma_span"):
            v = getattr(self, name)
            low = 0.0 if name == "annualization_factor" else 1.0
            if v is not None and (isinstance(v, bool) or not isinstance(v, numbers.Real)
                                  or not np.isfinite(v) or v <= low):
                raise ValueError(f"{name} must be a number > {low:g}, got {v!r}")
        return clone(rolling), portfolio, list(b)

    def _annualization(self, rolling, index) -> float:
        if self.annualization_factor is not None:
            return float(self.annualization_factor)
        a = rolling.annualization_factor
        if isinstance(a, numbers.Real) and not isinstance(a, bool) and a > 1:
            return float(a)
        return infer_annualization_factor(index)

    # ------------------------------------------------------------------ fitting
    def fit(self, x, y, *, progress=None) -> MaxDiversificationBacktest:
        """Run the backtest.

        Parameters
        ----------
        x : pandas.DataFrame, shape (T, M)
            Factor returns, indexed by strictly increasing dates.
        y : pandas.DataFrame, shape (T, N)
            Simple asset returns on the same dates: finite numbers >= -1, NaN for a missing
            one (a held asset must have a return).
        progress : callable, optional
            ``progress(done, total)``, called in this process as the work completes: the
            rolling fits (as the rolling model reports them, else once when they are done),
            then after each rebalancing date's optimisations. ``total`` = twice the dates
            with ``min_history`` rows (each is fitted, then rebalanced). An exception it
            raises propagates (that is how a host cancels).

        Returns
        -------
        self

        Raises
        ------
        ValueError
            Bad parameters or data, a held asset without a return, or with
            ``on_failure="raise"`` the first failed date (named with its strategy and reason).
        """
        rolling, portfolio, benchmarks = self._checked()
        rolling._checked()  # its parameters, named, before the dates are planned with them
        if not isinstance(y, pd.DataFrame):
            raise ValueError(f"y must be a pandas DataFrame indexed by date, "
                             f"got {type(y).__name__}")
        index = check_index(y.index, "y")
        _check_returns(y)
        annualization = self._annualization(rolling, index)
        span = (benchmark_span(self.ewma_span, getattr(rolling.estimator, "span", None),
                               annualization, y.shape[1])
                if "ewma" in benchmarks else None)
        window, min_history = self._window(rolling)

        # total = the rolling model's fits + the rebalancing rows, known before any work.
        targets = [t for t in rebalance_positions(index, rolling.rebalance)]
        rows = [t.position for t in targets if t.position is not None]
        n_fits = sum(p - window_start(p, window) + 1 >= min_history for p in rows)
        total = 2 * n_fits  # the warm-up dates are neither fitted nor rebalanced
        clock = time.perf_counter()
        self._fit_rolling(rolling, x, y, progress, n_fits, total)
        self._seconds = {"rolling fits": time.perf_counter() - clock}

        self.strategies_ = [_FACTOR, *benchmarks]
        self.rolling_ = rolling
        self.annualization_factor_ = annualization
        self.ewma_span_ = span
        noted = self._run(rolling, portfolio, y, index, window, min_history, span, progress,
                          n_fits, total)
        self._statistics(portfolio)
        self.timings_ = pd.Series(self._seconds, name="seconds")
        del self._seconds
        for category, text in noted:  # each once, with its dates
            warnings.warn(text, category, stacklevel=2)
        return self

    @staticmethod
    def _window(rolling) -> tuple:
        window = rolling.window
        m = rolling.min_history
        if m is None:
            m = 1 if window == "expanding" else int(window)
        return window, int(m)

    @staticmethod
    def _fit_rolling(rolling, x, y, progress, n_fits: int, total: int) -> None:
        """Fit the rolling model, reporting its progress as part of the backtest's."""
        if progress is not None and "progress" in inspect.signature(rolling.fit).parameters:
            # The rolling model counts the same fits; clamped so the count never goes back.
            rolling.fit(x, y, progress=lambda done, _total: progress(min(done, n_fits), total))
        else:
            rolling.fit(x, y)
        if progress is not None:
            progress(n_fits, total)

    def _fail(self, failures, date, strategy, reason, action):
        if self.on_failure == "raise":
            raise ValueError(f"backtest: rebalancing date {pd.Timestamp(date).date()}, "
                             f"strategy {strategy!r}: {reason}")
        failures.append({"date": date, "strategy": strategy, "reason": reason,
                         "action": action})

    def _run(self, rolling, portfolio, y, index, window, min_history, span, progress,
             done: int, total: int) -> list[tuple[type[Warning], str]]:
        assets = y.columns
        n = len(assets)
        from ..optimization._validation import asset_vector

        costs = asset_vector(portfolio.transaction_costs, "portfolio.transaction_costs", n,
                             assets, 0.0)
        fees = asset_vector(portfolio.management_fees, "portfolio.management_fees", n,
                            assets, 0.0)
        books = {s: Book(s, y, costs, fees, bool(self.drift)) for s in self.strategies_}
        # One optimiser per covariance strategy, kept across dates: a factor covariance's
        # compiled program is then re-used from the second date on (only its data change),
        # and a dense one starts from the previous date's weights (warm_start: 6-18 pivoting
        # exchanges a date instead of 44-200 on an EWMA covariance at N = 500).
        optimisers = {s: _warm(clone(portfolio)) for s in self.strategies_
                      if s != "equal_weight"}
        rolling_failed = {pd.Timestamp(d): r for d, r in
                          zip(rolling.failures_["date"], rolling.failures_["reason"],
                              strict=True)}
        failures: list[dict] = []
        noted: list[tuple] = []  # (date, strategy, category, message)
        dates, weights, turnover, cost, ex_ante = [], [], [], [], []
        for date in rolling.dates_:
            warm_up = None
            if date not in index:
                warm_up = rolling_failed.get(date, "no data")
            else:
                row = int(index.get_loc(date))
                start = window_start(row, window)
                block = y.iloc[start:row + 1]
                if len(block) < min_history:
                    warm_up = (f"too little history: {len(block)} rows < "
                               f"min_history={min_history}")
            if warm_up is not None:
                # Before the first date with min_history rows nothing can be estimated, for
                # any strategy: the backtest starts later. Said, never a failure to act on
                # (a "raise" policy would otherwise stop at every warm-up).
                if not dates:
                    failures.extend({"date": date, "strategy": s, "reason": warm_up,
                                     "action": "not a rebalance (warm-up)"}
                                    for s in self.strategies_)
                    continue
                for s in self.strategies_:
                    self._fail(failures, date, s, warm_up, "no rebalance")
                continue
            dates.append(date)
            w_row, t_row, c_row, dr_row = {}, {}, {}, {}
            for s in self.strategies_:
                book = books[s]
                book.advance(row)
                held = book.holdings.copy()
                clock = time.perf_counter()
                with user_warnings() as caught:
                    target, reason, cov = self._target(
                        s, date, rolling, rolling_failed, optimisers.get(s), block, held,
                        span, min_history, assets)
                self._seconds[s] = self._seconds.get(s, 0.0) + time.perf_counter() - clock
                noted.extend((date, s, category, message) for category, message in caught)
                if target is None:
                    self._fail(failures, date, s, reason,
                               "kept previous holdings" if held.any()
                               else "held cash (nothing held yet)")
                    book.hold(row)
                    t_row[s] = c_row[s] = 0.0
                    w = held
                else:
                    t_row[s], c_row[s] = book.trade(row, target)
                    w = target
                w_row[s] = w
                dr_row[s] = _ex_ante(w, cov)
            weights.append(w_row)
            turnover.append(t_row)
            cost.append(c_row)
            ex_ante.append(dr_row)
            done += 1
            if progress is not None:
                progress(done, total)
        if not dates:
            raise ValueError(f"backtest: no rebalancing date has min_history={min_history} "
                             "rows of data up to it; give more data, an earlier "
                             "min_history or later dates")
        for book in books.values():
            book.advance(len(index) - 1)
        self._collect(index, assets, dates, weights, turnover, cost, ex_ante, books,
                      failures, y)
        self.notes_ = pd.DataFrame([(d, s, m) for d, s, _, m in noted],
                                   columns=["date", "strategy", "note"])
        return dated_notes([(d, c, f"strategy {s!r}: {m}") for d, s, c, m in noted],
                           len(dates))

    def _target(self, strategy, date, rolling, rolling_failed, optimiser, block, held, span,
                min_history, assets):
        """The weights to trade to at ``date`` and the covariance used, or ``(None, reason,
        covariance or None)``."""
        if strategy == "equal_weight":
            # 1/n over the assets with a complete window: a gap means the asset was not
            # investable then (not listed yet), and holding it would need a return we lack.
            full = ~block.isna().any().to_numpy()
            if not full.any():
                return None, "every asset has a missing return in the window", None
            w = np.where(full, 1.0 / full.sum(), 0.0)
            return w, None, _sample_cov(block.loc[:, full], full)
        if strategy == _FACTOR:
            if date in rolling_failed:
                return None, f"factor model: {rolling_failed[date]}", None
            snapshot = rolling.results_[date]
            if not snapshot.y_betas.index.equals(assets):  # y's order, for w and the DR
                snapshot = snapshot.filter_on_tickers(assets)
            fc = snapshot.to_factor_covariance()
            bad = _nonfinite_assets(fc)
            if bad:
                return None, (f"factor model: no finite loadings or residual variance for "
                              f"{names_text(bad)}"), None
            flat = _zero_volatility_assets(fc)
            if flat:
                return None, (f"factor model: zero volatility for {names_text(flat)} (no variation "
                              "in the window: a suspended or stale price?)"), None
            optimiser.set_params(covariance=fc, span=None)
            data = None
        else:
            missing = block.columns[block.isna().any().to_numpy()]
            if len(missing):
                return None, (f"missing returns in the window for {names_text(missing)} "
                              f"(first row {block.index[0].date()})"), None
            if len(block) <= len(assets):
                return None, (f"the window has {len(block)} rows for {len(assets)} assets: "
                              f"the {strategy} covariance is singular"), None
            from ..optimization._risk import constant_columns, ewma_singular_reason  # (no CVXPY)

            flat = block.columns[constant_columns(block.to_numpy(dtype=float))]
            if len(flat):
                return None, (f"no variation in the window for {names_text(flat)} (a suspended "
                              f"or stale price?): the {strategy} covariance has a zero "
                              "variance"), None
            if strategy == "ewma":
                reason = ewma_singular_reason(
                    len(block), len(assets), span,
                    remedy="the window is too short for the span here: a longer window or a "
                           "later min_history leaves such dates out")
                if reason is not None:
                    return None, f"ewma_span: {reason}", None
            optimiser.set_params(covariance="sample",
                                 span=span if strategy == "ewma" else None)
            data = block
        optimiser.set_params(previous_weights=pd.Series(held, index=assets))
        from ..optimization import OptimizationError

        try:
            optimiser.fit(data)
        except OptimizationError as err:
            cov = optimiser.covariance_ if hasattr(optimiser, "covariance_") else None
            return None, f"{type(err).__name__}: {err}", cov
        except ValueError as err:
            raise ValueError(f"backtest: rebalancing date {date.date()}, strategy "
                             f"{strategy!r}: {err}") from err
        if optimiser.weights_ is None:  # raise_on_failure=False
            return None, f"optimisation failed: {optimiser.error_}", optimiser.covariance_
        w = optimiser.weights_.reindex(assets).to_numpy(dtype=float)
        return w, None, optimiser.covariance_

    def _collect(self, index, assets, dates, weights, turnover, cost, ex_ante, books,
                 failures, y) -> None:
        strategies = self.strategies_
        rebalance = pd.DatetimeIndex(dates, name="date")
        self.rebalance_dates_ = rebalance
        self.weights_ = {s: pd.DataFrame([w[s] for w in weights], index=rebalance,
                                         columns=assets) for s in strategies}
        self.turnover_ = pd.DataFrame(turnover, index=rebalance, columns=strategies)
        self.costs_ = pd.DataFrame(cost, index=rebalance, columns=strategies)
        first = int(index.get_loc(rebalance[0]))
        rows = np.arange(first + 1, len(index))
        columns = pd.MultiIndex.from_product([strategies, ["gross", "net"]],
                                             names=["strategy", "returns"])
        data = np.column_stack([
            np.array([getattr(books[s], kind)[t] for t in rows], dtype=float)
            for s in strategies for kind in ("gross", "net")]) if len(rows) else (
            np.empty((0, len(columns))))
        self.returns_ = pd.DataFrame(data, index=index[rows], columns=columns)
        # Realised diversification over each holding period (rows after the date to the next).
        positions = [int(index.get_loc(d)) for d in rebalance] + [len(index) - 1]
        values = y.to_numpy(dtype=float)
        realised = []
        for k in range(len(rebalance)):
            a, b = positions[k] + 1, positions[k + 1]
            period = values[a:b + 1]
            row = {}
            for s in strategies:
                w = self.weights_[s].iloc[k].to_numpy()
                gross = self.returns_[(s, "gross")].to_numpy()[a - first - 1:b - first]
                row[s] = _realised(w, period, gross)
            realised.append(row)
        realised = pd.DataFrame(realised, index=rebalance, columns=strategies)
        ex_ante = pd.DataFrame(ex_ante, index=rebalance, columns=strategies)
        self.diversification_ = pd.concat(
            {s: pd.DataFrame({"ex_ante": ex_ante[s], "realised": realised[s]})
             for s in strategies}, axis=1, names=["strategy", "diversification"])
        self.failures_ = pd.DataFrame(failures, columns=["date", "strategy", "reason",
                                                         "action"])

    def _statistics(self, portfolio) -> None:
        rf = float(portfolio.risk_free_rate)
        rows, labels = [], []
        for s in self.strategies_:
            for kind in ("gross", "net"):
                stats = return_statistics(self.returns_[(s, kind)].to_numpy(),
                                          self.annualization_factor_, rf,
                                          bool(self.compounded))
                stats["average_turnover"] = float(self.turnover_[s].mean())
                stats["total_costs"] = float(self.costs_[s].sum())
                rows.append(stats)
                labels.append((s, kind))
        self.stats_ = pd.DataFrame(rows, index=pd.MultiIndex.from_tuples(
            labels, names=["strategy", "returns"]), columns=STATS_COLUMNS)


def _check_returns(y: pd.DataFrame) -> None:
    """Refuse, before any fit, asset returns the holdings cannot compound: a cell that is not
    a number, an infinite one, or one below -1 (more than everything held lost: not a simple
    return). Without this an infinite return passed the rolling model (its windows are
    failures) and the books drifted through it: returns, turnover, costs and statistics
    became inf or NaN with no error (found by random search)."""
    try:
        values = y.to_numpy(dtype=float)
    except (TypeError, ValueError):
        for column in y.columns:
            bad = numbers_in(y[column])[1]
            if bad.any():
                date = y.index[int(np.argmax(bad))]
                raise ValueError(f"y: the return of {column!r} on {pd.Timestamp(date).date()} "
                                 f"is not a number: {y.at[date, column]!r}") from None
        raise
    for bad, what in ((np.isinf(values), "infinite: the holdings cannot compound it"),
                      (values < -1.0, "below -1: more than everything held would be lost; "
                                      "give simple returns, not percentages or log returns")):
        if bad.any():
            i, j = np.argwhere(bad)[0]
            shown = "" if np.isinf(values[i, j]) else f"{values[i, j]:g}, "
            raise ValueError(f"y: the return of {y.columns[j]!r} on {y.index[i].date()} is "
                             f"{shown}{what}")


def benchmark_span(ewma_span, model_span, annualization: float, n_assets: int) -> float:
    """The ``"ewma"`` benchmark's span: ``ewma_span``, else the factor model's span when > 1,
    else ``annualization``; checked against the number of assets.

    Raises
    ------
    ValueError
        Starting ``"ewma_span: "``: the default is not > 1, or the span is not above
        ``n_assets``. The weights' effective sample size is below the span on any window
        (:func:`~xl_factorlasso.core.optimization.ewma_effective_sample`), so every date's
        EWMA covariance would be refused (``ewma_singular_reason``): said once, before any fit.
    """
    if ewma_span is not None:
        span, source = float(ewma_span), ""
    elif model_span is not None and model_span > 1:
        span, source = float(model_span), " (the default: the factor model's span)"
    elif annualization > 1:
        span, source = float(annualization), " (the default: annualization_factor)"
    else:
        raise ValueError("ewma_span: the default (annualization_factor, here "
                         f"{annualization:g}) is not > 1; give ewma_span")
    if span <= n_assets:
        raise ValueError(
            f"ewma_span: {span:g}{source} is not above the {n_assets} assets: the EWMA weights "
            "count as fewer equal rows than the span (their effective sample size), so every "
            "window's EWMA covariance would be as ill-determined as a sample covariance of "
            f"fewer rows than assets; give ewma_span above {n_assets} or leave 'ewma' out of "
            "benchmarks")
    return span


def _warm(optimiser):
    """``optimiser`` set to start each fit from its previous weights, where it can
    (``warm_start``: the answers are the same, certified; only the time changes)."""
    if "warm_start" in optimiser.get_params(deep=False):
        optimiser.set_params(warm_start=True)
    return optimiser


def _nonfinite_assets(fc) -> list:
    b = np.isfinite(fc.loadings.to_numpy()).all(axis=1)
    d = np.isfinite(fc.residual_variance.to_numpy()) & (fc.residual_variance.to_numpy() >= 0)
    return list(fc.assets[~(b & d)])


def _zero_volatility_assets(fc) -> list:
    """The assets whose factor-model volatility ``sqrt(b Sigma_f b' + d)`` is zero (loadings
    and residual variance all zero: an asset with no variation in the window), which the
    optimiser refuses as bad data. Before this a suspended asset stopped the whole backtest
    with that ValueError whatever ``on_failure`` said (found by random search)."""
    from ..optimization._risk import component_volatilities  # (no CVXPY at import)

    return list(fc.assets[~(component_volatilities(*fc.sqrt_components()) > 0)])


def _sample_cov(block: pd.DataFrame, columns: np.ndarray):
    """The sample covariance (ddof=1) of the complete ``block``, as an N x N matrix with
    zeros outside ``columns`` (assets not held), or None for a window of < 2 rows."""
    if len(block) < 2:
        return None
    cov = np.zeros((len(columns), len(columns)))
    cov[np.ix_(columns, columns)] = np.cov(block.to_numpy(dtype=float), rowvar=False, ddof=1)
    return cov


def _ex_ante(w: np.ndarray, cov) -> float:
    """``w'sigma / sqrt(w' Sigma w)`` under a dense matrix or a FactorCovariance."""
    if cov is None or not w.any():
        return np.nan
    if hasattr(cov, "sqrt_components"):
        from ..optimization._risk import component_volatilities

        f, d = cov.sqrt_components()
        sigma = component_volatilities(f, d)
        risk = np.sqrt(float(np.sum((f.T @ w) ** 2) + np.sum((d * w) ** 2)))
    else:
        c = np.asarray(cov, dtype=float)
        sigma = np.sqrt(np.diag(c))
        risk = np.sqrt(max(float(w @ c @ w), 0.0))
    return diversification_ratio(w, sigma, risk)


def _realised(w: np.ndarray, period: np.ndarray, gross: np.ndarray) -> float:
    if len(period) < 2 or not w.any():
        return np.nan
    held = w != 0
    sigma = np.std(period[:, held], axis=0, ddof=1)
    return diversification_ratio(w[held], sigma, float(np.std(gross, ddof=1)))
