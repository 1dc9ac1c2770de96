"""Fit-time and peak-memory benchmark: xl-factorlasso against factorlasso 1.0.6.

Every cell (one library, one configuration, one problem size) runs in a fresh child process
(``multiprocessing`` spawn) so that its peak resident set size (``VmHWM`` of the child) is
its own. Inside the child: build the panel, do a tiny warm-up fit (imports, solver start-up),
then time the real fit — the median of ``--repeats`` fits when a fit takes under 5 s, one fit
otherwise, each on a freshly constructed model.

Data: :func:`xl_factorlasso.core.datasets.make_factor_panel` (seed 0, business days, no NaNs).
``reg_lambda = 0.05 * lambda_max`` with ``lambda_max = max |(2/T) X̃'Ỹ|`` on the demeaned
data, ``warmup_period=None``, library defaults otherwise (CLARABEL, span=None, Ward, cutoff 0.5).

Accuracy columns compare the two coefficient matrices: ``max|dB|`` and the relative objective
gap ``(f(B_ours) - f(B_fl)) / |f(B_fl)|``, both objectives evaluated by the same formula
(``LassoModel.objective`` of an xl-factorlasso model fitted on the same data). A negative gap
means our solution has the lower objective.

Usage::

    python benchmarks/bench_fit.py                      # small + mid sizes, all configs
    python benchmarks/bench_fit.py --sizes large --out large.json
    python benchmarks/bench_fit.py --sizes small --configs hcgl,fcgl --skip-anchor

factorlasso at the large size takes 70-185 s and ~5.6 GB per cell; select it explicitly.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

# this checkout's package, not an editable install of another checkout (a git worktree)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

SIZES: dict[str, tuple[int, int, int]] = {
    "small": (500, 10, 50),
    "mid": (1000, 20, 200),
    "large": (2000, 30, 500),
}

# name -> (label, model-type member name, l1_weight, use signs+prior)
CONFIGS: dict[str, tuple[str, str, float, bool]] = {
    "lasso_sign_prior": ("LASSO+sign+prior", "LASSO", 0.0, True),
    "hcgl": ("HCGL", "HIERARCHICAL_CLUSTER_GROUP_LASSO", 0.0, False),
    "hcgl_l1_sign_prior": (
        "HCGL l1w=0.1+sign+prior",
        "HIERARCHICAL_CLUSTER_GROUP_LASSO",
        0.1,
        True,
    ),
    "fcgl": ("FCGL", "FACTOR_CLUSTER_GROUP_LASSO", 0.0, False),
    "hcgl_gerber": ("HCGL gerber", "HIERARCHICAL_CLUSTER_GROUP_LASSO", 0.0, False),
    "hcgl_auto_signs": (
        "HCGL l1w=0.1+auto signs",
        "HIERARCHICAL_CLUSTER_GROUP_LASSO",
        0.1,
        False,
    ),
    "hcgl_gerber_auto_ols": (
        "HCGL gerber l1w=0.1+auto signs+OLS prior",
        "HIERARCHICAL_CLUSTER_GROUP_LASSO",
        0.1,
        False,
    ),
    "hcgl_ols_floors": (
        "HCGL l1w=0.1+OLS prior+floors",
        "HIERARCHICAL_CLUSTER_GROUP_LASSO",
        0.1,
        False,
    ),
    "coop": ("cooperative (CCGL)", "COOPERATIVE_CLUSTER_GROUP_LASSO", 0.0, False),
    "coop_l1_weight_sum": (
        "CCGL l1w=0.1+weight_sum",
        "COOPERATIVE_CLUSTER_GROUP_LASSO",
        0.1,
        False,
    ),
    # stage two's lambda is in theta units: 0.05 * the LASSO lambda_max above is ~0.03 of
    # stage two's and leaves about a quarter of the loadings nonzero at every size (defaults:
    # leave-one-out, theta >= 0)
    "unilasso": ("UNILASSO", "UNILASSO", 0.0, False),
}
# Further constructor arguments of a config (the same for both libraries). Auto signs use the
# factorlasso defaults otherwise: t-gate 0.75, "independent" variance, no sign span.
CONFIG_OPTIONS: dict[str, dict[str, Any]] = {
    "hcgl_gerber": {"dependence_measure": "gerber"},
    "hcgl_auto_signs": {"auto_sign_constraints": True},
    "hcgl_gerber_auto_ols": {
        "dependence_measure": "gerber",
        "auto_sign_constraints": True,
        "apply_ols_prior": True,
    },
    "coop_l1_weight_sum": {"loss_normalization": "weight_sum"},
    # OLS prior with expert floors: |b| >= |OLS slope| - 1 HAC standard error (lag 2)
    "hcgl_ols_floors": {"apply_ols_prior": True, "expert_prior_bound_n_std": 1.0,
                        "expert_prior_hac_lags": 2},
}

LIBS = ("ours", "factorlasso")
LAMBDA_FRACTION = 0.05
REPEAT_BELOW_S = 5.0  # repeat fits shorter than this and report the median


@dataclass
class CellResult:
    """What one child process reports back."""

    lib: str
    config: str
    size: str
    fit_s: float
    fit_times: list[float]
    peak_mb: float
    baseline_mb: float
    reg_lambda: float
    n_clusters: int | None
    coef: list[list[float]] = field(repr=False)
    error: str | None = None


def lambda_max(x: np.ndarray, y: np.ndarray) -> float:
    """``max |(2/T) X̃'Ỹ|`` on column-demeaned data: the smallest all-zero LASSO penalty."""
    xc = x - x.mean(axis=0)
    yc = y - y.mean(axis=0)
    return float(np.abs(2.0 / x.shape[0] * xc.T @ yc).max())


def _import_lib(lib: str):
    if lib == "ours":
        from xl_factorlasso import LassoModel, LassoModelType
    else:
        from factorlasso import LassoModel, LassoModelType
    return LassoModel, LassoModelType


def model_kwargs(lib: str, config: str, panel, reg_lambda: float) -> dict[str, Any]:
    """Constructor arguments of ``config`` for ``lib`` (identical for both libraries)."""
    _, type_name, l1_weight, signed = CONFIGS[config]
    _, model_type = _import_lib(lib)
    kw: dict[str, Any] = dict(
        model_type=getattr(model_type, type_name),
        reg_lambda=reg_lambda,
        warmup_period=None,
    )
    if l1_weight:
        kw["l1_weight"] = l1_weight
    if signed:
        kw["factors_beta_loading_signs"] = panel.signs
        kw["factors_beta_prior"] = panel.prior
    kw.update(CONFIG_OPTIONS.get(config, {}))
    return kw


def _rss_mb() -> float:
    """Peak resident set size of this process, in MB.

    On Linux this is ``VmHWM``, the high-water mark of the process's own memory. ``ru_maxrss``
    is not used there: it survives ``exec``, so a spawned child would report its parent's peak
    whenever the parent had grown larger (the parent here fits models to score accuracy).
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return float(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    import resource

    # macOS reports ru_maxrss in bytes, other systems in KiB.
    scale = 1.0 if sys.platform == "darwin" else 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def timed_fits(factory, kwargs_for, shape: tuple[int, int, int], seed: int, repeats: int):
    """The timing protocol of every cell, shared with ``bench_engine.py``.

    A warm-up fit on a tiny panel (imports, solver start-up), then fits of fresh models on
    ``make_factor_panel(*shape)``: ``repeats`` of them, or one when the first takes
    ``REPEAT_BELOW_S`` or more.
    ``factory(**kwargs)`` builds a model and ``kwargs_for(panel, reg_lambda)`` its arguments.

    Returns
    -------
    (panel, reg_lambda, last fitted model, fit times, RSS in MB before the timed fits)
    """
    import warnings

    warnings.filterwarnings("ignore")
    from xl_factorlasso.core.datasets import make_factor_panel

    tiny = make_factor_panel(60, 3, 6, seed=seed + 1)
    lam_tiny = LAMBDA_FRACTION * lambda_max(tiny.x.to_numpy(), tiny.y.to_numpy())
    factory(**kwargs_for(tiny, lam_tiny)).fit(tiny.x, tiny.y)

    panel = make_factor_panel(*shape, seed=seed)
    reg_lambda = LAMBDA_FRACTION * lambda_max(panel.x.to_numpy(), panel.y.to_numpy())
    kwargs = kwargs_for(panel, reg_lambda)
    baseline = _rss_mb()
    times: list[float] = []
    while True:
        model = factory(**kwargs)  # fresh instance: nothing cached between timed fits
        t0 = time.perf_counter()
        model.fit(panel.x, panel.y)
        times.append(time.perf_counter() - t0)
        if len(times) >= repeats or times[0] >= REPEAT_BELOW_S:
            return panel, reg_lambda, model, times, baseline


def run_cell(lib: str, config: str, size: str, seed: int, repeats: int) -> CellResult:
    """Body of a child process: data, warm-up fit, timed fit(s), peak RSS."""
    LassoModel, _ = _import_lib(lib)
    panel, reg_lambda, model, times, baseline = timed_fits(
        LassoModel, lambda p, lam: model_kwargs(lib, config, p, lam), SIZES[size], seed, repeats
    )
    clusters = getattr(model, "clusters_", None)
    coef = model.coef_.loc[panel.y.columns, panel.x.columns].to_numpy()
    return CellResult(
        lib=lib,
        config=config,
        size=size,
        fit_s=statistics.median(times),
        fit_times=times,
        peak_mb=_rss_mb(),
        baseline_mb=baseline,
        reg_lambda=reg_lambda,
        n_clusters=None if clusters is None else int(clusters.nunique()),
        coef=coef.tolist(),
    )


def run_in_child(
    lib: str, config: str, size: str, seed: int, repeats: int, timeout: float | None,
    *, body=run_cell, result=CellResult, extra: tuple = (),
) -> CellResult:
    """Run ``body(lib, config, size, seed, repeats, *extra)`` in a fresh spawned process; a
    failure or timeout becomes a ``result`` error record."""
    ctx = mp.get_context("spawn")
    with ctx.Pool(1, maxtasksperchild=1) as pool:
        job = pool.apply_async(body, (lib, config, size, seed, repeats, *extra))
        try:
            return job.get(timeout=timeout)
        except Exception as exc:  # a timeout or a failed fit must not kill the whole run
            nan = float("nan")
            return result(lib, config, size, nan, [], nan, nan, nan, None, [], repr(exc))


def require_factorlasso() -> None:
    """Stop with an installation hint when the anchor is missing."""
    try:
        import factorlasso  # noqa: F401
    except ImportError:
        raise SystemExit("factorlasso is not installed: pip install -e '.[bench]'") from None


def objective_gap(config: str, size: str, seed: int, ours: CellResult, theirs: CellResult):
    """``max|dB|`` and ``(f(B_ours) - f(B_fl)) / |f(B_fl)|`` with our objective formula."""
    if ours.error or theirs.error:
        return float("nan"), float("nan")
    from xl_factorlasso import LassoModel
    from xl_factorlasso.core.datasets import make_factor_panel

    t, m, n = SIZES[size]
    panel = make_factor_panel(t, m, n, seed=seed)
    model = LassoModel(**model_kwargs("ours", config, panel, ours.reg_lambda))
    model.fit(panel.x, panel.y)
    idx, cols = panel.y.columns, panel.x.columns
    b_ours = pd.DataFrame(ours.coef, index=idx, columns=cols)
    b_fl = pd.DataFrame(theirs.coef, index=idx, columns=cols)
    f_ours, f_fl = model.objective(b_ours), model.objective(b_fl)
    max_db = float(np.abs(b_ours.to_numpy() - b_fl.to_numpy()).max())
    return max_db, (f_ours - f_fl) / abs(f_fl)


def _fmt(v: float | None, spec: str) -> str:
    if v is None or not np.isfinite(v):
        return "—"
    return format(v, spec)


def markdown_table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| config | T,M,N | time ours s | time factorlasso s | time ratio | peak MB ours "
        "| peak MB factorlasso | memory ratio | max abs dB | rel. objective diff |"
    )
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        lines.append(
            "| {label} | {tmn} | {to} | {tf} | {tr} | {mo} | {mf} | {mr} | {db} | {og} |".format(
                label=r["label"],
                tmn=",".join(map(str, SIZES[r["size"]])),
                to=_fmt(r["time_ours"], ".3f"),
                tf=_fmt(r["time_fl"], ".3f"),
                tr=_fmt(r["time_ratio"], ".1f") + ("x" if np.isfinite(r["time_ratio"]) else ""),
                mo=_fmt(r["peak_mb_ours"], ".0f"),
                mf=_fmt(r["peak_mb_fl"], ".0f"),
                mr=_fmt(r["mem_ratio"], ".1f") + ("x" if np.isfinite(r["mem_ratio"]) else ""),
                db=_fmt(r["max_db"], ".1e"),
                og=_fmt(r["obj_gap"], ".1e"),
            )
        )
    return "\n".join(lines)


def _parse_list(value: str, allowed: dict[str, Any], what: str) -> list[str]:
    items = list(allowed) if value == "all" else [v.strip() for v in value.split(",") if v]
    bad = [v for v in items if v not in allowed]
    if bad:
        raise SystemExit(f"unknown {what} {bad}; choose from {list(allowed)} or 'all'")
    return items


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", default="small,mid", help=f"comma list of {list(SIZES)} or 'all'"
    )
    parser.add_argument("--configs", default="all", help=f"comma list of {list(CONFIGS)} or 'all'")
    parser.add_argument(
        "--skip-anchor", action="store_true", help="time xl-factorlasso only (no factorlasso)"
    )
    parser.add_argument("--out", help="write all results (incl. per-fit times) as JSON here")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="fits per cell when a fit < 5 s")
    parser.add_argument(
        "--cell-timeout", type=float, default=None, help="seconds before a cell is abandoned"
    )
    args = parser.parse_args(argv)
    sizes = _parse_list(args.sizes, SIZES, "size")
    configs = _parse_list(args.configs, CONFIGS, "config")
    libs = ["ours"] if args.skip_anchor else list(LIBS)
    if not args.skip_anchor:
        require_factorlasso()

    rows: list[dict[str, Any]] = []
    for size in sizes:
        for config in configs:
            cells = {}
            for lib in libs:
                t0 = time.perf_counter()
                cells[lib] = run_in_child(
                    lib, config, size, args.seed, args.repeats, args.cell_timeout
                )
                c = cells[lib]
                status = f"error {c.error}" if c.error else f"fit {c.fit_s:.3f}s"
                print(
                    f"[{size:5s}] {CONFIGS[config][0]:24s} {lib:12s} {status}, "
                    f"peak {c.peak_mb:.0f} MB (cell {time.perf_counter() - t0:.1f}s)",
                    file=sys.stderr,
                    flush=True,
                )
            ours = cells["ours"]
            theirs = cells.get("factorlasso")
            max_db, gap = (
                objective_gap(config, size, args.seed, ours, theirs)
                if theirs is not None
                else (float("nan"), float("nan"))
            )
            nan = float("nan")
            t_fl = theirs.fit_s if theirs else nan
            m_fl = theirs.peak_mb if theirs else nan
            rows.append(
                dict(
                    label=CONFIGS[config][0],
                    config=config,
                    size=size,
                    time_ours=ours.fit_s,
                    time_fl=t_fl,
                    time_ratio=t_fl / ours.fit_s,
                    peak_mb_ours=ours.peak_mb,
                    peak_mb_fl=m_fl,
                    mem_ratio=m_fl / ours.peak_mb,
                    max_db=max_db,
                    obj_gap=gap,
                    n_clusters_ours=ours.n_clusters,
                    n_clusters_fl=theirs.n_clusters if theirs else None,
                    cells={
                        k: {kk: vv for kk, vv in asdict(v).items() if kk != "coef"}
                        for k, v in cells.items()
                    },
                )
            )

    print(markdown_table(rows))
    base = {
        (size, lib): statistics.median(
            [r["cells"][lib]["baseline_mb"] for r in rows if r["size"] == size]
        )
        for size in sizes
        for lib in libs
    }
    print(
        "\nPeak MB = VmHWM (peak RSS) of the cell's child process: it includes Python, the "
        "imports and "
        "the panel (RSS just before the timed fit, median over configs: "
        + ", ".join(f"{s} {lib} {v:.0f} MB" for (s, lib), v in base.items())
        + ").\nTimes are the median of up to "
        f"{args.repeats} fits (one if a fit takes >= {REPEAT_BELOW_S:g} s). "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}."
    )
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"args": vars(args), "rows": rows}, fh, indent=2, default=str)
    return 0 if all(not c["error"] for r in rows for c in r["cells"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
