"""Rolling fits on a Dask cluster: one worker vs two, vs serial in this process (issue 11).

Data and models: those of ``benchmarks/bench_rolling.py`` (its configurations, lambda and
dates; :func:`make_factor_panel` seed 0, weekly rows, one year of history before the first of
``--dates`` month-ends, expanding window, warm starts).

Two ``LocalCluster``\\ s on 127.0.0.1 are started once: one worker process, and two worker
processes, each with one thread (``RollingLassoModel(scheduler=client)``: one block of dates
per worker thread). For each configuration, after one untimed run on each (the workers import
the package), ``--repeats`` rounds of serial, 1 worker, 2 workers, interleaved so all three
see the same machine load. Printed: median seconds, the ratios 1 worker / 2 workers and
serial / 2 workers, and the largest loading difference from serial (1 worker fits one block,
so it is the serial computation; 2 workers start their second block cold, certified to the
same tolerance), and the median CPU seconds of each (this process plus the workers': the work
done whatever the machine's load; wall seconds on a shared machine depend on it).

Then the overhead on a small job: the same three on ``--small-dates`` dates (default 24, the
panel ``bench_rolling.py --dates 24`` builds), medians.

And what a fit ships: the pickled bytes of the per-block rows the Dask path scatters (each
block's rows once) against the whole panel sent to every worker.

No number here is asserted anywhere; the tests check correctness.

Usage::

    python benchmarks/bench_rolling_dask.py                    # N=500, M=30, 240 dates
    python benchmarks/bench_rolling_dask.py --n-assets 50 --n-factors 10 --dates 36 --repeats 1
"""

from __future__ import annotations

import argparse
import os
import pickle
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from bench_rolling import CONFIGS, LAMBDA_FRACTION, _dates, _kwargs  # noqa: E402

from xl_factorlasso import (  # noqa: E402
    LassoModel,
    LassoModelType,
    RollingLassoModel,
    make_factor_panel,
)
from xl_factorlasso.core.rolling._estimator import _blocks, _Job  # noqa: E402


def _panel(n_dates: int, n_factors: int, n_assets: int):
    """bench_rolling.py's panel and dates for ``--dates n_dates``."""
    n_rows = 52 * (n_dates // 12 + 1) + 5  # one year of history before the first date
    panel = make_factor_panel(n_rows, n_factors, n_assets, seed=0, freq="W-FRI",
                              start="2004-01-02")
    lam = LAMBDA_FRACTION * LassoModel().lambda_max(panel.x, panel.y)
    return panel, lam, _dates(panel.x.index, n_dates)


def _cpu(client) -> float:
    """CPU seconds used so far by this process and the cluster's worker processes."""
    workers = 0.0 if client is None else sum(client.run(time.process_time).values())
    return time.process_time() + workers


def _run(config, panel, lam, dates, client):
    """Wall seconds, CPU seconds (this process + the workers) and the fitted model."""
    model = LassoModel(**_kwargs(config, panel, lam, LassoModelType))
    roll = RollingLassoModel(model, rebalance=dates, scheduler=client)
    c0 = _cpu(client)
    t0 = time.perf_counter()
    roll.fit(panel.x, panel.y)
    wall = time.perf_counter() - t0
    return wall, _cpu(client) - c0, roll


def _max_diff(a, b) -> float:
    return max(np.abs(a.results_[d].y_betas.to_numpy() - b.results_[d].y_betas.to_numpy()).max()
               for d in a.results_.dates)


def _shipped(panel, dates, n_blocks: int) -> tuple[float, float]:
    """MB pickled: the blocks' rows (what is scattered) vs the panel once per worker."""
    index = panel.x.index
    jobs = [_Job(d, 0, index.get_loc(d)) for d in dates]  # expanding window
    blocks = sum(len(pickle.dumps((panel.x.iloc[:b[-1].stop + 1], panel.y.iloc[:b[-1].stop + 1])))
                 for b in _blocks(jobs, n_blocks))
    whole = n_blocks * len(pickle.dumps((panel.x, panel.y)))
    return blocks / 1e6, whole / 1e6


def _timed(configs, panel, lam, dates, clients, repeats: int, title: str) -> None:
    print(f"\n## {title}: T={len(panel.x)}, {len(dates)} dates, medians of {repeats} "
          "interleaved runs")
    print(f"{'config':18s} {'serial s':>8s} {'1 wkr s':>8s} {'2 wkr s':>8s} {'1w/2w':>6s} "
          f"{'ser/2w':>6s} {'ovh 1w s':>8s} {'cpu ser':>7s} {'cpu 1w':>7s} {'cpu 2w':>7s} "
          f"{'|dB| 1w':>8s} {'|dB| 2w':>8s}")
    for config in configs:
        label = CONFIGS[config][0]
        for client in clients.values():  # the workers import the package: untimed
            _run(config, panel, lam, dates[:2], client)
        times = {name: [] for name in ("serial", *clients)}
        cpus = {name: [] for name in times}
        fits = {}
        for r in range(repeats):
            for name in times:
                print(f"[{label}] {title} run {r + 1}/{repeats}, {name} ...", file=sys.stderr,
                      flush=True)
                seconds, cpu, fits[name] = _run(config, panel, lam, dates, clients.get(name))
                times[name].append(seconds)
                cpus[name].append(cpu)
        med = {name: float(np.median(t)) for name, t in times.items()}
        cpu = {name: float(np.median(t)) for name, t in cpus.items()}
        print(f"{label:18s} {med['serial']:8.2f} {med['1w']:8.2f} {med['2w']:8.2f} "
              f"{med['1w'] / med['2w']:6.2f} {med['serial'] / med['2w']:6.2f} "
              f"{med['1w'] - med['serial']:8.2f} "
              f"{cpu['serial']:7.2f} {cpu['1w']:7.2f} {cpu['2w']:7.2f} "
              f"{_max_diff(fits['serial'], fits['1w']):8.1e} "
              f"{_max_diff(fits['serial'], fits['2w']):8.1e}", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-assets", type=int, default=500)
    parser.add_argument("--n-factors", type=int, default=30)
    parser.add_argument("--dates", type=int, default=240, help="monthly rebalancing dates")
    parser.add_argument("--small-dates", type=int, default=24, help="the small job's dates")
    parser.add_argument("--configs", default="all", help=f"comma list of {list(CONFIGS)}")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    configs = list(CONFIGS) if args.configs == "all" else args.configs.split(",")

    from distributed import Client, LocalCluster

    print(f"# bench_rolling_dask: M={args.n_factors}, N={args.n_assets}; python "
          f"{platform.python_version()}, {os.cpu_count()} cores, load average at start "
          f"{os.getloadavg()[0]:.2f}")
    kw = dict(processes=True, threads_per_worker=1, host="127.0.0.1", dashboard_address=None)
    with LocalCluster(n_workers=1, **kw) as c1, LocalCluster(n_workers=2, **kw) as c2, \
            Client(c1, set_as_default=False) as one, Client(c2, set_as_default=False) as two:
        clients = {"1w": one, "2w": two}
        panel, lam, dates = _panel(args.dates, args.n_factors, args.n_assets)
        blocks_mb, whole_mb = _shipped(panel, dates, 2)
        print(f"shipped to 2 workers ({len(dates)} dates): the blocks' rows {blocks_mb:.2f} MB "
              f"(scattered), the whole panel to each worker {whole_mb:.2f} MB")
        _timed(configs, panel, lam, dates, clients, args.repeats, "full job")
        small = _panel(args.small_dates, args.n_factors, args.n_assets)
        _timed(configs, *small, clients, args.repeats, "small job")
    print(f"\nload average at end {os.getloadavg()[0]:.2f}; ovh 1w = 1 worker - serial (the "
          "distributed path's cost: scatter, scheduling, gathering); cpu = CPU seconds of this "
          "process + the workers")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
