"""Set-up cost and memory of one fit against the floor (issue 14).

For each configuration (LASSO; FCGL with ``n_clusters=1``; FCGL with found clusters) and size
(T, M, N), one fresh child process (``multiprocessing`` spawn) builds
:func:`~xl_factorlasso.core.datasets.make_factor_panel` (seed 0), fits once on a tiny panel
(imports) and once on the real one (warm-up), then measures, as medians of ``--repeats``:

* **floor** — the products every fit must form once, on float64 arrays centred *before* the
  clock starts: ``xw = X * w[:, None]; X'WX = xw.T @ X; X'WY = xw.T @ Y`` (``w`` the loss weights,
  ones here). Nothing else: no conversion, no validation, no missing-value mask, no ``Y'WY``;
  ``floor+wY`` adds the (T, N) product ``w[:, None] * Y`` of the literal ``X.T @ (w*Y)`` form;
* **set-up** — ``LassoModel._setup``: everything before the solve (coercion and checks of the
  frames, preparation, sufficient statistics, clustering, penalty, ``lambda_max``);
* **solve** — ``CertifiedSolver.solve`` (certified, duality gap <= 1e-8);
* **install** — ``LassoModel._install`` (fitted attributes, diagnostics, intercept);
* **fit** — ``LassoModel.fit`` as a user calls it.

Each phase is timed in wall time (``perf_counter``) and CPU time (``process_time``, less
sensitive to other processes on a shared machine), with one BLAS thread as ``fit`` runs.

Memory, after the timed runs, of one more ``fit`` on a fresh model: ``tracemalloc`` peak (every
allocation numpy and pandas make during the fit, over what was held before it) and the
resident-set growth (``VmHWM`` after the fit, reset through ``/proc/self/clear_refs``, minus
``VmRSS`` before it); ``held`` is what the fitted model still holds afterwards (tracemalloc's
current). All three are given as multiples of ``Y``'s bytes (``8 T N``); the tracemalloc peak
also in MB beside the data's own (``X`` and ``Y``: with many factors and one response ``Y`` is
a few kB, and what a fit adds is better read against the design).

``--compare-ref REV`` runs the same cells on the code of git revision ``REV`` (a temporary
``git worktree``), interleaved with the current code, and prints both. ``--profile`` prints a
cProfile of one fit per cell (top functions by own time).

Usage::

    python benchmarks/bench_setup.py                              # sizes large, issue
    python benchmarks/bench_setup.py --compare-ref main --repeats 7
    python benchmarks/bench_setup.py --sizes huge --configs lasso,fcgl_one --repeats 1
    python benchmarks/bench_setup.py --sizes issue --configs lasso --profile --no-memory
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from bench_fit import LAMBDA_FRACTION, lambda_max  # noqa: E402

SIZES: dict[str, tuple[int, int, int]] = {
    "large": (2000, 30, 500),
    "issue": (5000, 50, 2000),
    "huge": (10000, 100, 10000),  # Y = 763 MB: select explicitly
}
# name -> (label, model type, extra constructor arguments)
CONFIGS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "lasso": ("LASSO", "LASSO", {}),
    "fcgl_one": ("FCGL n_clusters=1", "FACTOR_CLUSTER_GROUP_LASSO", {"n_clusters": 1}),
    "fcgl": ("FCGL found clusters", "FACTOR_CLUSTER_GROUP_LASSO", {}),
}
PHASES = ("floor", "floor+wY", "setup", "solve", "install", "fit")


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return float(line.split()[1]) / 1024.0
    return float("nan")


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def _timed(fn, *args) -> tuple[float, float, Any]:
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, time.process_time() - c0, out


def run_cell(root: str, config: str, shape: tuple[int, int, int], repeats: int,
             memory: bool, profile: bool, nan_fraction: float, span) -> dict[str, Any]:
    """Body of a child process: the code under ``root``, one configuration and size."""
    sys.path.insert(0, root)
    import gc
    import tracemalloc
    import warnings

    warnings.filterwarnings("ignore")
    import xl_factorlasso
    from xl_factorlasso import LassoModel
    from xl_factorlasso.core._threads import blas_threads
    from xl_factorlasso.core.datasets import make_factor_panel

    assert os.path.realpath(xl_factorlasso.__file__).startswith(os.path.realpath(root)), (
        xl_factorlasso.__file__)

    _, model_type, extra = CONFIGS[config]
    tiny = make_factor_panel(60, 3, 6, seed=1)
    kw_tiny = dict(model_type=model_type, reg_lambda=1e-3, warmup_period=None, **extra)
    LassoModel(**kw_tiny).fit(tiny.x, tiny.y)

    t_rows, m, n = shape
    panel = make_factor_panel(t_rows, m, n, seed=0, nan_fraction=nan_fraction)
    x, y = panel.x, panel.y
    lam = LAMBDA_FRACTION * lambda_max(np.nan_to_num(x.to_numpy()), np.nan_to_num(y.to_numpy()))
    kw = dict(model_type=model_type, reg_lambda=lam, warmup_period=None, span=span, **extra)
    LassoModel(**kw).fit(x, y)  # warm-up at size

    xc = np.nan_to_num(x.to_numpy() - np.nanmean(x.to_numpy(), axis=0))
    yc = np.nan_to_num(y.to_numpy() - np.nanmean(y.to_numpy(), axis=0))
    w = np.ones(t_rows)

    def floor():
        xw = xc * w[:, None]
        return xw.T @ xc, xw.T @ yc

    def floor_wy():
        return xc.T @ (w[:, None] * xc), xc.T @ (w[:, None] * yc)

    times: dict[str, list[tuple[float, float]]] = {p: [] for p in PHASES}
    info: dict[str, Any] = {}
    for _ in range(repeats):
        with blas_threads():
            wall, cpu, _ = _timed(floor)
            times["floor"].append((wall, cpu))
            wall, cpu, _ = _timed(floor_wy)
            times["floor+wY"].append((wall, cpu))
            model = LassoModel(**kw)
            wall, cpu, setup = _timed(model._setup, x, y)
            times["setup"].append((wall, cpu))
            wall, cpu, sol = _timed(model._solver(setup, lam).solve, lam)
            times["solve"].append((wall, cpu))
            wall, cpu, _ = _timed(model._install, setup, sol, lam)
            times["install"].append((wall, cpu))
        del model, setup, sol
        gc.collect()
        model = LassoModel(**kw)
        wall, cpu, _ = _timed(model.fit, x, y)
        times["fit"].append((wall, cpu))
        info["gap"] = float(model.duality_gap_)
        info["clusters"] = (None if model.clusters_ is None
                            else int(model.clusters_.nunique()))
        del model
        gc.collect()
    out = {p: (statistics.median(v[0] for v in vals), statistics.median(v[1] for v in vals))
           for p, vals in times.items()}
    out.update(info, y_mb=y.to_numpy().nbytes / 2**20, x_mb=x.to_numpy().nbytes / 2**20)
    if memory:
        gc.collect()
        model = LassoModel(**kw)
        tracemalloc.start()
        model.fit(x, y)
        held, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        del model
        gc.collect()
        model = LassoModel(**kw)
        before = _status_mb("VmRSS")
        ok = _reset_peak_rss()
        model.fit(x, y)
        rss = _status_mb("VmHWM") - before if ok else float("nan")
        out.update(trace_mb=peak / 2**20, held_mb=held / 2**20, rss_mb=rss)
    if profile:
        import cProfile
        import io
        import pstats

        prof = cProfile.Profile()
        model = LassoModel(**kw)
        prof.enable()
        model.fit(x, y)
        prof.disable()
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(18)
        out["profile"] = buf.getvalue()
    return out


def run_in_child(*args) -> dict[str, Any]:
    with mp.get_context("spawn").Pool(1, maxtasksperchild=1) as pool:
        try:
            return pool.apply(run_cell, args)
        except Exception as exc:  # one failed cell must not end the run
            return {"error": repr(exc)}


def _checkout(rev: str) -> str:
    path = tempfile.mkdtemp(prefix="bench_setup_ref_")
    subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", path, rev], check=True,
                   capture_output=True)
    return path


def _row(label: str, size: str, code: str, r: dict[str, Any]) -> str:
    if "error" in r:
        return f"| {label} | {size} | {code} | error: {r['error']} |" + " |" * 11
    floor = r["floor"][1]
    mem = ""
    if "trace_mb" in r:
        mem = (f"{r['trace_mb'] / r['y_mb']:.2f} | {r['rss_mb'] / r['y_mb']:.2f} | "
               f"{r['held_mb'] / r['y_mb']:.2f} | {r['trace_mb']:.1f} | "
               f"{r['x_mb'] + r['y_mb']:.1f}")
    else:
        mem = " | | | | "
    ms = {p: 1e3 * r[p][1] for p in PHASES}
    return (f"| {label} | {size} | {code} | {ms['floor']:.1f} | {ms['setup']:.1f} | "
            f"{r['setup'][1] / floor:.1f} | {ms['solve']:.1f} | {ms['install']:.1f} | "
            f"{ms['fit']:.1f} ({1e3 * r['fit'][0]:.0f}) | {mem} | {r.get('clusters')} |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="large,issue",
                    help=f"comma list of {', '.join(SIZES)} or TxMxN")
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--compare-ref", default=None, help="git revision to run as well")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--nan-fraction", type=float, default=0.0)
    ap.add_argument("--span", type=float, default=None)
    args = ap.parse_args(argv)

    sizes = {}
    for s in args.sizes.split(","):
        sizes[s] = SIZES[s] if s in SIZES else tuple(int(v) for v in s.split("x"))
    codes = {"this": ROOT}
    ref_path = None
    if args.compare_ref:
        ref_path = _checkout(args.compare_ref)
        codes = {args.compare_ref: ref_path, "this": ROOT}
    try:
        print(f"# bench_setup: repeats={args.repeats}, nan_fraction={args.nan_fraction}, "
              f"span={args.span}; times are CPU ms (process_time), medians; fit also wall")
        print("| config | size (T,M,N) | code | floor | set-up | set-up/floor | solve | install "
              "| fit CPU (wall) | peak/Y tracemalloc | peak/Y RSS | held/Y | peak MB "
              "tracemalloc | X+Y MB | clusters |")
        print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for config in args.configs.split(","):
            for shape in sizes.values():
                for code, root in codes.items():
                    r = run_in_child(root, config, shape, args.repeats, not args.no_memory,
                                     args.profile, args.nan_fraction, args.span)
                    print(_row(CONFIGS[config][0], str(shape), code, r), flush=True)
                    if "profile" in r:
                        print(r["profile"])
    finally:
        if ref_path:
            subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", ref_path],
                           capture_output=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
