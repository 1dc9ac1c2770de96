"""Walk-forward backtest benchmark at issue 11's size: the factor strategy, the benchmarks, and
skfolio's WalkForward as a peer.

Data: :func:`xl_factorlasso.core.datasets.make_factor_panel` (seed 0, weekly Fridays, no NaNs)
as in ``bench_rolling.py``: ``M`` factors, ``N`` assets, 21 years of weekly rows, divided by 100
(the panel is in percent; the holdings compound returns). The factor model is bench_rolling's
``lasso_sign_prior`` (LASSO with the panel's true signs and prior, ``reg_lambda = 0.05 *
lambda_max``, ``warmup_period=None``); the rebalancing dates are the last ``--dates`` month-ends
(default 240 = 20 years).

Parts, all in this process and serial (BLAS at one thread, as every fit):

1. ``factor``: :class:`MaxDiversificationBacktest` with no benchmarks, expanding window, over
   all dates (issue 11's target: <= 20 s); with ``--constraints groups`` the portfolio has
   ``bench_maxdiv.py``'s two group levels and five linear constraints, a 5% cap and
   transaction costs of 5 bp (the default: long-only, fully invested). ``--repeats`` runs,
   medians: total, the rolling fits, the optimisations (``timings_``) and the rest (holdings,
   diversification, statistics).
2. ``benchmarks``: the backtest with the sample, EWMA and equal-weight benchmarks and a fixed
   window of ``--window`` rows (more rows than assets, else the sample covariance is singular)
   and an EWMA span of ``--ewma-span`` (default ``10 N``: the EWMA weights must count as more
   rows than assets, their effective sample size, or every EWMA date is refused; with 520
   rows and N = 500 that takes a span of about 5000, close to equal weights)
   on the last ``--bench-dates`` month-ends: seconds per date of each strategy
   (``timings_``), multiplied by ``--dates`` — an extrapolation, printed as such.
3. ``peer``: skfolio's ``WalkForward(test_size, train_size=window)`` + ``cross_val_predict``
   with its ``MaximumDiversification`` on ``--peer-folds`` folds, against the backtest's
   ``"sample"`` strategy on the same windows (explicit dates every ``test_size`` rows, window
   ``--window``, ``drift=False``), ``--repeats`` times each, interleaved (ours, skfolio, ours,
   ...), medians and the ratio; the time per fold times ``--dates`` is printed as an
   extrapolation. Answers are checked by code independent of both optimisers: each fold's
   diversification ratio ``w'sigma / sqrt(w' S w)`` of both weight vectors under the window's
   ``numpy.cov``; printed are the largest relative DR difference (positive: ours higher) and
   the largest weight difference.

No number here is asserted anywhere; the tests check correctness.

Usage::

    python benchmarks/bench_backtest.py                      # N=500, M=30, 240 dates
    python benchmarks/bench_backtest.py --n-assets 50 --n-factors 10 --dates 24 --window 104
    python benchmarks/bench_backtest.py --parts factor --repeats 3
    python benchmarks/bench_backtest.py --parts factor --constraints groups --repeats 3
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import warnings

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench_maxdiv

from xl_factorlasso import (  # noqa: E402
    LassoModel,
    MaxDiversificationBacktest,
    RollingLassoModel,
    make_factor_panel,
)

PARTS = ("factor", "benchmarks", "peer")


def _panel(n_assets: int, n_factors: int, n_dates: int):
    n_rows = 52 * (n_dates // 12 + 1) + 5  # one year of history before the first date
    panel = make_factor_panel(n_rows, n_factors, n_assets, seed=0, freq="W-FRI",
                              start="2004-01-02")
    x, y = panel.x / 100.0, panel.y / 100.0
    lam = 0.05 * LassoModel().lambda_max(x, y)
    model = LassoModel(reg_lambda=lam, warmup_period=None,
                       factors_beta_loading_signs=panel.signs, factors_beta_prior=panel.prior)
    ends = pd.Series(x.index, index=x.index).resample("ME").last().dropna()
    return x, y, model, list(ends.iloc[-n_dates:])


def _dr(w: np.ndarray, cov: np.ndarray) -> float:
    return float(w @ np.sqrt(np.diag(cov)) / np.sqrt(w @ cov @ w))


def _portfolio(constraints: str, n: int):
    """The factor strategy's optimiser: the default one, or (``"groups"``) bench_maxdiv's two
    group levels and five linear constraints with a 5% cap and transaction costs of 5 bp."""
    if constraints == "none":
        return None
    from bench_maxdiv import group_params

    from xl_factorlasso import MaximumDiversification

    return MaximumDiversification(max_weights=0.05, transaction_costs=5e-4, **group_params(n))


def _factor(x, y, model, dates, repeats: int, constraints: str = "none") -> None:
    portfolio = _portfolio(constraints, y.shape[1])
    make = lambda: MaxDiversificationBacktest(  # noqa: E731
        RollingLassoModel(model, rebalance=dates), portfolio=portfolio, benchmarks=())
    make().fit(x.iloc[:300], y.iloc[:300])  # imports, caches: not timed
    runs = []
    for r in range(repeats):
        print(f"[factor] run {r + 1}/{repeats} ...", file=sys.stderr, flush=True)
        bt = make()
        t0 = time.perf_counter()
        bt.fit(x, y)
        total = time.perf_counter() - t0
        fits, opt = bt.timings_["rolling fits"], bt.timings_["factor"]
        runs.append((total, fits, opt, total - fits - opt))
    med = np.median(np.array(runs), axis=0)
    print(f"{'factor strategy':24s} {'total s':>8s} {'fits s':>8s} {'optim s':>8s} "
          f"{'rest s':>7s} {'ms/date':>8s} {'runs':>4s} {'failures':>8s}")
    label = "MaxDiv on B Sf B^T + D" if constraints == "none" else "MaxDiv, groups + costs"
    print(f"{label:24s} {med[0]:8.2f} {med[1]:8.2f} {med[2]:8.2f} "
          f"{med[3]:7.2f} {1e3 * med[2] / len(dates):8.1f} {repeats:4d} "
          f"{len(bt.failures_):8d}")
    ex = bt.diversification_["factor"]
    print(f"  ex-ante DR median {ex['ex_ante'].median():.3f}, realised DR median "
          f"{ex['realised'].median():.3f}, average turnover "
          f"{bt.stats_.loc[('factor', 'net'), 'average_turnover']:.3f}")


def _benchmarks(x, y, model, dates, window: int, n_bench: int, n_dates: int,
                span: float) -> None:
    from xl_factorlasso.core.optimization import ewma_effective_sample

    picks = dates[-n_bench:]
    bt = MaxDiversificationBacktest(RollingLassoModel(model, rebalance=picks, window=window),
                                    ewma_span=span)
    print(f"[benchmarks] {len(picks)} dates, window {window} ...", file=sys.stderr, flush=True)
    bt.fit(x, y)
    print(f"ewma_span {span:g}: the window's {window} rows weigh like "
          f"{ewma_effective_sample(window, span):.1f} equal ones, for {y.shape[1]} assets")
    print(f"{'strategy':14s} {'s/date':>8s} {'x dates*':>9s}  failures")
    for s in bt.strategies_:
        per = bt.timings_[s] / len(picks)
        n_fail = int((bt.failures_.strategy == s).sum())
        print(f"{s:14s} {per:8.3f} {per * n_dates:9.1f}  {n_fail}")
    print(f"* seconds per date on the last {len(picks)} month-ends, times {n_dates} dates (an "
          "extrapolation, not a run); factor row: its optimisation only (window "
          f"{window}); rolling fits {bt.timings_['rolling fits']:.2f} s for {len(picks)} dates")


def _peer(x, y, model, window: int, test: int, folds: int, repeats: int,
          n_dates: int) -> None:
    from skfolio.model_selection import WalkForward, cross_val_predict
    from skfolio.optimization import MaximumDiversification as SkMaxDiv

    rows = slice(len(y) - window - folds * test, len(y))
    xs, ys = x.iloc[rows], y.iloc[rows]
    dates = [ys.index[window - 1 + k * test] for k in range(folds)]
    ours = lambda: MaxDiversificationBacktest(  # noqa: E731
        RollingLassoModel(model, rebalance=dates, window=window), benchmarks=("sample",),
        drift=False).fit(xs, ys)

    def theirs():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            out = cross_val_predict(SkMaxDiv(), ys,
                                    cv=WalkForward(test_size=test, train_size=window))
            return out, time.perf_counter() - t0

    times = {"ours": [], "skfolio": []}
    for r in range(repeats):
        print(f"[peer] run {r + 1}/{repeats} ...", file=sys.stderr, flush=True)
        bt = ours()
        times["ours"].append(bt.timings_["sample"])
        mpp, seconds = theirs()
        times["skfolio"].append(seconds)
    t_o, t_s = float(np.median(times["ours"])), float(np.median(times["skfolio"]))
    assert len(mpp.portfolios) == folds
    dr_diff, w_diff = 0.0, 0.0
    for k, p in enumerate(mpp.portfolios):
        cov = np.cov(ys.iloc[k * test:window + k * test].to_numpy(), rowvar=False, ddof=1)
        w_o, w_s = bt.weights_["sample"].iloc[k].to_numpy(), np.asarray(p.weights)
        d_o, d_s = _dr(w_o, cov), _dr(w_s, cov)
        dr_diff = max(dr_diff, (d_o - d_s) / d_s, key=abs)
        w_diff = max(w_diff, float(np.abs(w_o - w_s).max()))
    print(f"{'sample MaxDiv, window':22s} {'ours s':>7s} {'skfolio s':>9s} {'sk/ours':>7s} "
          f"{'folds':>5s} {'runs':>4s} {'ours x dates*':>13s} {'sk x dates*':>11s} "
          f"{'max dDR/DR':>10s} {'max|dw|':>8s}")
    print(f"{f'N={ys.shape[1]}, T={window}':22s} {t_o:7.2f} {t_s:9.2f} {t_s / t_o:7.2f} "
          f"{folds:5d} {repeats:4d} {t_o / folds * n_dates:13.1f} "
          f"{t_s / folds * n_dates:11.1f} {dr_diff:10.1e} {w_diff:8.1e}")
    print(f"* per fold times {n_dates} dates (an extrapolation); DR of both under the window's "
          "numpy.cov (positive: ours higher)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-assets", type=int, default=500)
    parser.add_argument("--n-factors", type=int, default=30)
    parser.add_argument("--dates", type=int, default=240, help="monthly rebalancing dates")
    parser.add_argument("--window", type=int, default=520,
                        help="rows of the benchmarks' and the peer's fixed window")
    parser.add_argument("--ewma-span", type=float, default=None,
                        help="span of the EWMA benchmark (default: 10 x the assets)")
    parser.add_argument("--bench-dates", type=int, default=12,
                        help="month-ends the benchmarks are timed on (extrapolated)")
    parser.add_argument("--peer-folds", type=int, default=8)
    parser.add_argument("--test-size", type=int, default=4, help="rows per peer fold")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--parts", default="all", help=f"comma list of {list(PARTS)}")
    parser.add_argument("--constraints", choices=("none", "groups"), default="none",
                        help="the factor strategy's portfolio constraints")
    args = parser.parse_args(argv)
    parts = list(PARTS) if args.parts == "all" else args.parts.split(",")
    x, y, model, dates = _panel(args.n_assets, args.n_factors, args.dates)
    print(f"# bench_backtest: T={len(y)} weekly rows, M={args.n_factors}, N={args.n_assets}, "
          f"{len(dates)} monthly dates ({dates[0].date()} .. {dates[-1].date()}); python "
          f"{platform.python_version()}, {os.cpu_count()} cores")
    if "factor" in parts:
        _factor(x, y, model, dates, args.repeats, args.constraints)
    if "benchmarks" in parts:
        span = args.ewma_span if args.ewma_span is not None else 10.0 * args.n_assets
        _benchmarks(x, y, model, dates, args.window, args.bench_dates, args.dates, span)
    if "peer" in parts:
        _peer(x, y, model, args.window, args.test_size, args.peer_folds, args.repeats,
              args.dates)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
