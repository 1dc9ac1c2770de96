"""Fast engine benchmark: ``engine="fast"`` against ``engine="cvxpy"`` and factorlasso 1.0.6.

Fits: the configurations and sizes of ``bench_fit.py`` (same data, ``reg_lambda = 0.05 *
lambda_max``, ``warmup_period=None``), one fresh child process per cell for its peak RSS,
median of ``--repeats`` fits under 5 s (``bench_fit.py`` explains the protocol; its helpers are
imported, not copied). Accuracy: every coefficient matrix is evaluated with our exact objective
(``LassoModel.objective``); the table shows ``max|dB|`` and the relative objective difference
of the fast engine against the CVXPY formulation and against factorlasso (negative: the fast
engine's objective is lower), and the certified relative duality gap.

scikit-learn anchors (configurations ``lasso_plain`` and ``fcgl_one``, part of ``all``): where
our objective is exactly twice a scikit-learn estimator's, that estimator is a fourth library.
Plain LASSO (no signs, no prior, span=None) against ``Lasso(alpha=lambda / 2)`` fitted on the
multi-output panel at once (scikit-learn's multi-output ``Lasso`` is separable over the
responses with one alpha: ``(1/(2T))||Y - XB'||^2 + alpha sum|B|``, ours is
``(1/T)||Y - XB'||^2 + lambda sum|B|``); FCGL with ``n_clusters=1`` (group weight ``sqrt(N)``)
against ``MultiTaskLasso(alpha=lambda sqrt(N) / 2)``. Both with ``fit_intercept=True`` and
scikit-learn's default ``tol`` / ``max_iter`` (``--sklearn-tol`` changes the tolerance).

Size ``xl`` (T, M, N) = (2500, 50, 5000) is issue 6's large-universe case; select it explicitly,
with ``--libs fast`` (CVXPY and factorlasso need many GB there).

Cross-validation (``--cv``): ``LassoModelCV`` with 20 lambdas x 5 folds at (500, 10, 50), LASSO,
for the fast engine, the CVXPY path, factorlasso's ``LassoModelCV`` and scikit-learn's
warm-started ``Lasso`` path over the same expanding-window splits (``alpha = lambda / 2`` on
the fold-demeaned data, same scores).

Usage::

    python benchmarks/bench_engine.py                       # small + mid, all configs, + CV
    python benchmarks/bench_engine.py --sizes all --out engine.json
    python benchmarks/bench_engine.py --sizes large --skip-anchor --no-cv
    python benchmarks/bench_engine.py --configs lasso_plain,fcgl_one --sizes all --no-cv
    python benchmarks/bench_engine.py --sizes xl --configs lasso_sign_prior --libs fast --no-cv
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_fit import (  # noqa: E402
    CONFIGS,
    REPEAT_BELOW_S,
    SIZES,
    CellResult,
    _fmt,
    _parse_list,
    _rss_mb,
    model_kwargs,
    require_factorlasso,
    run_in_child,
    timed_fits,
)

LIBS = ("fast", "cvxpy", "factorlasso", "sklearn")

# Configurations with a scikit-learn estimator of the same objective (label, model type, l1, signs).
SK_CONFIGS: dict[str, tuple[str, str, float, bool]] = {
    "lasso_plain": ("LASSO (plain)", "LASSO", 0.0, False),
    "fcgl_one": ("FCGL n_clusters=1", "FACTOR_CLUSTER_GROUP_LASSO", 0.0, False),
}
ALL_CONFIGS = {**CONFIGS, **SK_CONFIGS}
# issue 6's large universe: N = 5000 responses, T = 2500, M = 50 (not in "all").
SIZES = {**SIZES, "xl": (2500, 50, 5000)}
SIZES_ALL = ("small", "mid", "large")


@dataclass
class EngineCell(CellResult):
    """A ``bench_fit`` cell plus what the fitted model says about its solve."""

    solver: str = ""
    gap: float = float("nan")


def _kwargs(lib: str, config: str, panel, reg_lambda: float) -> dict[str, Any]:
    if config in SK_CONFIGS:
        if lib == "factorlasso":
            from factorlasso import LassoModelType
        else:
            from xl_factorlasso import LassoModelType
        kw: dict[str, Any] = dict(
            model_type=getattr(LassoModelType, SK_CONFIGS[config][1]),
            reg_lambda=reg_lambda,
            warmup_period=None,
        )
        if config == "fcgl_one":
            kw["n_clusters"] = 1
    elif lib == "factorlasso":
        return model_kwargs("factorlasso", config, panel, reg_lambda)
    else:
        kw = model_kwargs("ours", config, panel, reg_lambda)
    return kw if lib == "factorlasso" else {**kw, "engine": lib}


def _sklearn_model(config: str, n_responses: int, reg_lambda: float, tol: float | None):
    """The scikit-learn estimator whose objective is half of ours (see the module docstring)."""
    from sklearn.linear_model import Lasso, MultiTaskLasso

    extra = {} if tol is None else {"tol": tol}
    if config == "lasso_plain":
        return Lasso(alpha=reg_lambda / 2, fit_intercept=True, **extra)
    if config == "fcgl_one":
        return MultiTaskLasso(alpha=reg_lambda * np.sqrt(n_responses) / 2, fit_intercept=True,
                              **extra)
    raise ValueError(f"no scikit-learn estimator for {config!r}")


def run_engine_cell(
    lib: str, config: str, size: str, seed: int, repeats: int, sklearn_tol: float | None = None
) -> EngineCell:
    """Child-process body: ``bench_fit.timed_fits`` for one library, then what the fit says."""
    if lib == "sklearn":
        def factory(**kw):
            return _sklearn_model(config, kw["n_responses"], kw["reg_lambda"], sklearn_tol)

        def kwargs_for(panel, reg_lambda):
            return {"n_responses": panel.y.shape[1], "reg_lambda": reg_lambda}
    else:
        if lib == "factorlasso":
            from factorlasso import LassoModel as factory
        else:
            from xl_factorlasso import LassoModel as factory

        def kwargs_for(panel, reg_lambda):
            return _kwargs(lib, config, panel, reg_lambda)

    panel, reg_lambda, model, times, baseline = timed_fits(
        factory, kwargs_for, SIZES[size], seed, repeats
    )
    common = dict(
        lib=lib, config=config, size=size, fit_s=statistics.median(times), fit_times=times,
        peak_mb=_rss_mb(), baseline_mb=baseline, reg_lambda=reg_lambda,
    )
    if lib == "sklearn":
        n_iter = np.atleast_1d(model.n_iter_)
        return EngineCell(
            **common, n_clusters=None,
            coef=np.asarray(model.coef_).reshape(panel.y.shape[1], -1).tolist(),
            solver=f"{type(model).__name__}, max n_iter {int(n_iter.max())}",
        )
    clusters = getattr(model, "clusters_", None)
    return EngineCell(
        **common,
        n_clusters=None if clusters is None else int(clusters.nunique()),
        coef=model.coef_.loc[panel.y.columns, panel.x.columns].to_numpy().tolist(),
        solver=str(getattr(model, "solver_", "")),
        gap=float(getattr(model, "duality_gap_", float("nan"))),
    )


def _accuracy(config: str, size: str, seed: int, cells: dict[str, EngineCell]) -> dict:
    """``max|dB|`` and relative objective differences of the fast engine to the others."""
    from xl_factorlasso import LassoModel
    from xl_factorlasso.core.datasets import make_factor_panel

    fast = cells.get("fast")
    out: dict[str, float] = {}
    if fast is None or fast.error:
        return out
    panel = make_factor_panel(*SIZES[size], seed=seed)
    model = LassoModel(**_kwargs("fast", config, panel, fast.reg_lambda)).fit(panel.x, panel.y)
    idx, cols = panel.y.columns, panel.x.columns
    b_fast = np.asarray(fast.coef)
    f_fast = model.objective(pd.DataFrame(b_fast, index=idx, columns=cols))
    for lib in ("cvxpy", "factorlasso", "sklearn"):
        other = cells.get(lib)
        if other is None or other.error:
            continue
        b = np.asarray(other.coef)
        f = model.objective(pd.DataFrame(b, index=idx, columns=cols))
        out[f"max_db_{lib}"] = float(np.abs(b_fast - b).max())
        out[f"obj_{lib}"] = (f_fast - f) / abs(f)
    return out


def fit_table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| config | T,M,N | fast s | cvxpy s | factorlasso s | cvxpy/fast | factorlasso/fast "
        "| peak MB fast | peak MB factorlasso | max abs dB vs cvxpy | rel. obj. vs cvxpy "
        "| max abs dB vs factorlasso | rel. obj. vs factorlasso | certified gap |"
    )
    lines = [head, "|" + "---|" * 14]
    for r in rows:
        t = {lib: r["cells"].get(lib, {}).get("fit_s", float("nan")) for lib in LIBS}
        mem = {lib: r["cells"].get(lib, {}).get("peak_mb", float("nan")) for lib in LIBS}
        ratio = {lib: t[lib] / t["fast"] for lib in ("cvxpy", "factorlasso")}
        lines.append(
            "| " + " | ".join([
                ALL_CONFIGS[r["config"]][0],
                ",".join(map(str, SIZES[r["size"]])),
                _fmt(t["fast"], ".4f"),
                _fmt(t["cvxpy"], ".3f"),
                _fmt(t["factorlasso"], ".2f"),
                _fmt(ratio["cvxpy"], ".0f") + ("x" if np.isfinite(ratio["cvxpy"]) else ""),
                _fmt(ratio["factorlasso"], ".0f")
                + ("x" if np.isfinite(ratio["factorlasso"]) else ""),
                _fmt(mem["fast"], ".0f"),
                _fmt(mem["factorlasso"], ".0f"),
                _fmt(r.get("max_db_cvxpy"), ".1e"),
                _fmt(r.get("obj_cvxpy"), ".1e"),
                _fmt(r.get("max_db_factorlasso"), ".1e"),
                _fmt(r.get("obj_factorlasso"), ".1e"),
                _fmt(r["cells"].get("fast", {}).get("gap"), ".0e"),
            ]) + " |"
        )
    return "\n".join(lines)


def sklearn_table(rows: list[dict[str, Any]]) -> str:
    """The scikit-learn anchor rows: same objective (x 1/2), fast engine against scikit-learn."""
    head = (
        "| config | scikit-learn estimator | T,M,N | fast s | sklearn s | sklearn/fast "
        "| peak MB fast | peak MB sklearn | max abs dB | rel. obj. vs sklearn | sklearn n_iter |"
    )
    lines = [head, "|" + "---|" * 11]
    for r in rows:
        sk = r["cells"].get("sklearn")
        if sk is None:
            continue
        fast = r["cells"].get("fast", {})
        t_fast, t_sk = fast.get("fit_s", float("nan")), sk.get("fit_s", float("nan"))
        est = ("Lasso(alpha=lambda/2)" if r["config"] == "lasso_plain"
               else "MultiTaskLasso(alpha=lambda sqrt(N)/2)")
        lines.append(
            "| " + " | ".join([
                ALL_CONFIGS[r["config"]][0],
                est,
                ",".join(map(str, SIZES[r["size"]])),
                _fmt(t_fast, ".4f"),
                _fmt(t_sk, ".4f"),
                _fmt(t_sk / t_fast, ".1f") + ("x" if np.isfinite(t_sk / t_fast) else ""),
                _fmt(fast.get("peak_mb"), ".0f"),
                _fmt(sk.get("peak_mb"), ".0f"),
                _fmt(r.get("max_db_sklearn"), ".1e"),
                _fmt(r.get("obj_sklearn"), ".1e"),
                (sk.get("solver") or "").rsplit(" ", 1)[-1] if not sk.get("error") else "error",
            ]) + " |"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------- cross-validation
def sklearn_cv_path(x: np.ndarray, y: np.ndarray, grid: np.ndarray, n_splits: int):
    """scikit-learn's warm-started ``Lasso`` path over the same splits and scores."""
    from sklearn.linear_model import Lasso

    from xl_factorlasso import expanding_window_splits

    scores = np.full((len(grid), n_splits), np.nan)
    for k, (tr, te) in enumerate(expanding_window_splits(len(x), n_splits)):
        xm, ym = x[tr].mean(axis=0), y[tr].mean(axis=0)
        model = Lasso(alpha=float(grid.max()) / 2, warm_start=True, fit_intercept=False)
        for j in np.argsort(-grid):
            model.set_params(alpha=float(grid[j]) / 2)
            model.fit(x[tr] - xm, y[tr] - ym)
            pred = x[te] @ model.coef_.T + (ym - model.coef_ @ xm)
            yt = y[te]
            r2 = 1 - ((yt - pred) ** 2).sum(axis=0) / ((yt - yt.mean(axis=0)) ** 2).sum(axis=0)
            scores[j, k] = r2.mean()
    return scores


def run_cv(seed: int, repeats: int, with_anchor: bool) -> list[dict[str, Any]]:
    import warnings

    warnings.filterwarnings("ignore")
    from xl_factorlasso import LassoModel, LassoModelCV
    from xl_factorlasso.core.datasets import make_factor_panel

    panel = make_factor_panel(*SIZES["small"], seed=seed)
    rows = []
    for grid_name in ("default", "auto"):
        lambdas = None if grid_name == "default" else "auto"
        res: dict[str, Any] = {"grid": grid_name}
        for lib in ("fast", "cvxpy"):
            base = LassoModel(warmup_period=None, engine=lib)
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                cv = LassoModelCV(lambdas=lambdas, n_splits=5, base_model=base).fit(
                    panel.x, panel.y
                )
                times.append(time.perf_counter() - t0)
            res[lib] = statistics.median(times)
            res[f"scores_{lib}"] = cv.cv_scores_.to_numpy()
            res[f"best_{lib}"] = cv.best_lambda_
        grid = cv.lambdas_
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            sk = sklearn_cv_path(panel.x.to_numpy(), panel.y.to_numpy(), grid, 5)
            times.append(time.perf_counter() - t0)
        res["sklearn"] = statistics.median(times)
        res["score_diff_sklearn"] = float(np.abs(sk - res["scores_fast"]).max())
        res["score_diff_cvxpy"] = float(np.abs(res["scores_cvxpy"] - res["scores_fast"]).max())
        if with_anchor:
            import factorlasso as fl

            fl_base = fl.LassoModel(warmup_period=None)
            t0 = time.perf_counter()
            fl_cv = fl.LassoModelCV(lambdas=list(grid), n_splits=5, base_model=fl_base).fit(
                panel.x, panel.y
            )
            res["factorlasso"] = time.perf_counter() - t0
            res["best_factorlasso"] = float(fl_cv.best_lambda_)
        rows.append(res)
        print(f"[cv] {grid_name} grid done", file=sys.stderr, flush=True)
    return rows


def run_demo_cv(repeats: int) -> dict[str, Any]:
    """The demo workbook's cross-validation (``xl-factorlasso demo``): HCGL with
    ``l1_weight=0.1``, signs, prior and EWMA on 24 assets, 15 lambdas x 5 folds. A small
    sparse-group problem with a sign box, where a generic interior-point solver does well."""
    import warnings

    warnings.filterwarnings("ignore")
    from xl_factorlasso import LassoModel, LassoModelCV, LassoModelType, load_demo_panel

    demo = load_demo_panel()
    params = dict(
        model_type=LassoModelType.HIERARCHICAL_CLUSTER_GROUP_LASSO, span=52, n_clusters=4,
        l1_weight=0.1, factors_beta_loading_signs=demo.signs, factors_beta_prior=demo.prior,
    )
    res: dict[str, Any] = {"shape": (len(demo.x), demo.x.shape[1], demo.y.shape[1])}
    for lib in ("fast", "cvxpy"):
        cv = LassoModelCV(base_model=LassoModel(engine=lib, **params), lambdas="auto",
                          n_lambdas=15, n_splits=5)
        cv.fit(demo.x, demo.y)  # warm-up: imports, first compilation
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            cv.fit(demo.x, demo.y)
            times.append(time.perf_counter() - t0)
        res[lib] = statistics.median(times)
        res[f"scores_{lib}"] = cv.cv_scores_.to_numpy()
        res[f"best_{lib}"] = cv.best_lambda_
    res["score_diff"] = float(np.nanmax(np.abs(res["scores_fast"] - res["scores_cvxpy"])))
    return res


def demo_cv_table(r: dict[str, Any]) -> str:
    t, m, n = r["shape"]
    return "\n".join([
        "| demo CV (HCGL l1w=0.1+sign+prior, span 52, 15 x 5 folds) | T,M,N | fast s | cvxpy s "
        "| cvxpy/fast | max score diff | best lambda fast / cvxpy |",
        "|" + "---|" * 7,
        f"| xl-factorlasso demo | {t},{m},{n} | {r['fast']:.3f} | {r['cvxpy']:.3f} | "
        f"{r['cvxpy'] / r['fast']:.2f}x | {r['score_diff']:.1e} | "
        f"{r['best_fast']:.4g} / {r['best_cvxpy']:.4g} |",
    ])


def cv_table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| grid (20 x 5 folds, 500,10,50, LASSO) | fast s | cvxpy s | factorlasso s "
        "| sklearn path s | factorlasso/fast | sklearn/fast | max score diff vs cvxpy "
        "| vs sklearn | best lambda fast / factorlasso |"
    )
    lines = [head, "|" + "---|" * 10]
    nan = float("nan")
    for r in rows:
        fl_s = r.get("factorlasso", nan)
        lines.append(
            "| " + " | ".join([
                r["grid"],
                _fmt(r["fast"], ".3f"),
                _fmt(r["cvxpy"], ".3f"),
                _fmt(fl_s, ".2f"),
                _fmt(r["sklearn"], ".3f"),
                _fmt(fl_s / r["fast"], ".0f") + ("x" if np.isfinite(fl_s) else ""),
                _fmt(r["sklearn"] / r["fast"], ".2f") + "x",
                _fmt(r["score_diff_cvxpy"], ".1e"),
                _fmt(r["score_diff_sklearn"], ".1e"),
                f"{r['best_fast']:.4g} / "
                + (f"{r['best_factorlasso']:.4g}" if "best_factorlasso" in r else "—"),
            ]) + " |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="small,mid",
                        help=f"comma list of {list(SIZES)} or all (= {', '.join(SIZES_ALL)})")
    parser.add_argument("--configs", default="all",
                        help=f"comma list of {list(ALL_CONFIGS)} or all")
    parser.add_argument("--libs", default="all", help=f"comma list of {list(LIBS)} or all "
                        "(sklearn runs only for the configs it anchors)")
    parser.add_argument("--skip-anchor", action="store_true", help="no factorlasso cells")
    parser.add_argument("--sklearn-tol", type=float, default=None,
                        help="tol of the scikit-learn estimators (default: scikit-learn's)")
    parser.add_argument("--no-cv", action="store_true", help="skip the cross-validation part")
    parser.add_argument("--out", help="write all results as JSON here")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=5, help="fits per cell when a fit < 5 s")
    parser.add_argument("--cell-timeout", type=float, default=None)
    args = parser.parse_args(argv)
    sizes = (list(SIZES_ALL) if args.sizes == "all"
             else _parse_list(args.sizes, SIZES, "size"))
    configs = _parse_list(args.configs, ALL_CONFIGS, "config")
    libs = _parse_list(args.libs, dict.fromkeys(LIBS), "lib")
    libs = [lib for lib in libs if not (args.skip_anchor and lib == "factorlasso")]
    if "fast" not in libs:
        raise SystemExit("--libs must include fast (every comparison is against it)")
    if "factorlasso" in libs:
        require_factorlasso()

    rows: list[dict[str, Any]] = []
    for size in sizes:
        for config in configs:
            cells = {}
            for lib in libs:
                if lib == "sklearn" and config not in SK_CONFIGS:
                    continue
                cells[lib] = run_in_child(
                    lib, config, size, args.seed, args.repeats, args.cell_timeout,
                    body=run_engine_cell, result=EngineCell, extra=(args.sklearn_tol,),
                )
                c = cells[lib]
                status = f"error {c.error}" if c.error else f"fit {c.fit_s:.4f}s ({c.solver})"
                print(f"[{size:5s}] {ALL_CONFIGS[config][0]:24s} {lib:12s} {status}, "
                      f"peak {c.peak_mb:.0f} MB", file=sys.stderr, flush=True)
            row = {"config": config, "size": size}
            row.update(_accuracy(config, size, args.seed, cells))
            row["cells"] = {
                k: {kk: vv for kk, vv in asdict(v).items() if kk != "coef"}
                for k, v in cells.items()
            }
            rows.append(row)
    print(fit_table(rows))
    print(
        "\nTimes: median of up to "
        f"{args.repeats} fits (one if >= {REPEAT_BELOW_S:g} s), each cell in a fresh process; "
        "peak MB = its peak RSS, VmHWM (Python, imports and data included). rel. obj. = "
        "(f(B_fast) - f(B_other)) / |f(B_other)| with our exact objective (negative: the fast "
        "engine is lower). certified gap: relative duality gap of the fast solve. "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}."
    )
    if any("sklearn" in r["cells"] for r in rows):
        import sklearn

        print()
        print(sklearn_table(rows))
        print(
            f"\nscikit-learn {sklearn.__version__}, fit_intercept=True, tol "
            f"{args.sklearn_tol if args.sklearn_tol is not None else 'default (1e-4)'}; its "
            "objective is half of ours, so max abs dB and rel. obj. (our formula, negative: the "
            "fast engine is lower) compare the same problem."
        )
    cv_rows: list[dict[str, Any]] = []
    if not args.no_cv:
        cv_rows = run_cv(args.seed, 3, "factorlasso" in libs)
        print()
        print(cv_table(cv_rows))
        print(
            "\nLassoModelCV times include the refit on the full sample (factorlasso's too); the "
            "scikit-learn path has none. Median of 3 runs (factorlasso: 1)."
        )
        demo = run_demo_cv(3)
        cv_rows.append({"grid": "demo", **demo})
        print()
        print(demo_cv_table(demo))
        print("\nMedian of 3 refits after a warm-up fit; both include the final refit.")
    if args.out:
        for r in cv_rows:
            for key in [k for k in r if k.startswith("scores_")]:
                r[key] = np.asarray(r[key]).tolist()
        with open(args.out, "w") as fh:
            json.dump({"args": vars(args), "fits": rows, "cv": cv_rows}, fh, indent=2,
                      default=str)
    return 0 if all(not c["error"] for r in rows for c in r["cells"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
