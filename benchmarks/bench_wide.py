"""Wide panels (more factors than rows) at the default penalty: our fit as a user calls it, and
scikit-learn's ``LassoLars``, the exact path, where it expresses the objective.

A short history on many candidate factors (60 monthly rows on 100 factors) makes the Gram
singular, and the default ``reg_lambda = 1e-5`` is about 1e-6 of ``lambda_max`` on returns: the
answer is nearly an interpolating fit. For each size (T, M, N) and model:

* ours: ``LassoModel(model_type=..., warmup_period=None).fit(x, y)`` with the default engine
  (``"auto"``: the fast engine, CVXPY where it does not certify) and the default ``reg_lambda``,
  DataFrames in; printed with the solver that answered, or the error it raised;
* the peer (LASSO and LASSO nonneg only): ``LassoLars`` per response on the centred design
  (``benchmarks/bench_peers.py``'s ``sklearn lars`` variant), the same objective.

Timed interleaved (ours, peer, ours, ...), medians of ``--repeats`` CPU times, BLAS at one
thread. Every answer's relative duality gap is computed by ``benchmarks/_gap.py``, independent
of the engine's certificate; the peer counts only where that gap is <= 1e-8.

Usage::

    python benchmarks/bench_wide.py                                   # three sizes, every model
    python benchmarks/bench_wide.py --sizes 1000,2000,1 --configs lasso --repeats 1
    python benchmarks/bench_wide.py --sizes 60,100,20 --configs fcgl --repeats 1 --cv

``--cv`` also times ``LassoModelCV`` (default grid of 20 lambdas on [1e-6, 1e-1], 5 splits, no
refit) once per size and config, and counts the (lambda, fold) scores left missing by a fit
that raised.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _gap import relative_gap  # noqa: E402
from bench_peers import (  # noqa: E402
    CONFIGS,
    TARGET_GAP,
    Variant,
    _cpu,
    _parse_sizes,
    _sklearn_lars,
    calibrate,
    complete_case,
    context,
    installed_peers,
    make_case,
)

DEFAULT_SIZES = ["60,100,20", "120,200,10", "250,500,5"]
DEFAULT_CONFIGS = ["lasso", "lasso_nonneg", "lasso_sign_prior", "group_rows_l1",
                   "hcgl_l1_sign_prior", "fcgl", "fcgl_l1", "fcgl_one", "fcgl_one_nonneg",
                   "fcgl_one_sign_prior"]
DEFAULT_LAMBDA = 1e-5  # LassoModel's default reg_lambda


def run_case(config: str, shape, seed: int, repeats: int) -> dict:
    from xl_factorlasso import LassoModel

    case = make_case(config, shape, seed, 1.0)  # reg_lambda = lambda_max, replaced below
    top = case.reg_lambda
    case.reg_lambda = case.kwargs["reg_lambda"] = DEFAULT_LAMBDA
    case.kwargs["engine"] = "auto"  # what a user gets
    row = dict(config=config, shape=shape, ratio=case.reg_lambda / top, error="")
    try:
        model = LassoModel(**case.kwargs).fit(case.x, case.y)  # warm-up, and the clusters
    except Exception as exc:  # a fit that fails is a result here
        row["error"] = f"{type(exc).__name__}: {exc}"[:160]
        return row
    complete_case(case, model)
    x, y = case.x.to_numpy(), case.y.to_numpy()
    peer = None
    if CONFIGS[config][5] == "cell" and not CONFIGS[config][3]:
        peer = Variant("sklearn", "lars", _sklearn_lars(), tunes_tol=False)
        calibrate(case, peer, x, y)
    ours = []
    for _ in range(repeats):
        fitted = LassoModel(**case.kwargs)
        dt, _ = _cpu(lambda f=fitted: f.fit(case.x, case.y))
        ours.append(dt)
        model = fitted
        if peer is not None and not peer.error:
            peer.times.append(_cpu(lambda: peer.run(case, x, y, peer.tol))[0])
    coef = model.coef_.loc[case.y.columns, case.x.columns].to_numpy()
    row.update(engine=statistics.median(ours), solver=str(model.solver_),
               gap=relative_gap(case.problem, coef), nnz=int((coef != 0).sum()))
    if peer is not None:
        row.update(peer_time=statistics.median(peer.times) if peer.times else float("nan"),
                   peer_gap=peer.gap, peer_error=peer.error,
                   max_db=float(np.abs(peer.coef - coef).max()) if peer.coef is not None
                   else float("nan"))
    return row


def run_cv(config: str, shape, seed: int) -> dict:
    """``LassoModelCV`` as a user calls it (default grid, 5 splits, no refit) on the case's
    panel: CPU seconds once, and how many (lambda, fold) scores are missing (a fit that
    raised)."""
    from xl_factorlasso import LassoModel, LassoModelCV

    case = make_case(config, shape, seed, 1.0)
    kwargs = {k: v for k, v in case.kwargs.items() if k != "reg_lambda"}
    kwargs["engine"] = "auto"
    cv = LassoModelCV(base_model=LassoModel(**kwargs), refit=False)
    seconds, _ = _cpu(lambda: cv.fit(case.x, case.y))
    scores = cv.cv_scores_
    return dict(config=config, shape=shape, seconds=seconds, missing=int(scores.isna().sum().sum()),
                cells=int(scores.size), best=float(cv.best_lambda_))


def table(rows: list[dict]) -> str:
    out = ["| model (T,M,N) | lambda / LASSO's lambda_max | ours s | answered by | our gap | "
           "loadings | LassoLars s | its gap | LassoLars / ours | max abs dB |",
           "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        head = f"| {CONFIGS[r['config']][0]} {r['shape']} | {r['ratio']:.1e} |"
        if r["error"]:
            out.append(head + f" — | {r['error']} | | | | | | |")
            continue
        peer = "| — | — | — | — |"
        if "peer_time" in r:
            ok = r["peer_gap"] <= TARGET_GAP
            ratio = f"{r['peer_time'] / r['engine']:.2f}x" if ok else "—"
            peer = (f"| {r['peer_time']:.4f}{'' if ok else '*'} | {r['peer_gap']:.0e} | "
                    f"{ratio} | {r['max_db']:.0e} |")
        out.append(head + f" {r['engine']:.4f} | {r['solver']} | {r['gap']:.0e} | {r['nnz']} "
                   + peer)
    return "\n".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=DEFAULT_SIZES, help="T,M,N triples")
    parser.add_argument("--configs", default=",".join(DEFAULT_CONFIGS),
                        help=f"comma list of {list(CONFIGS)}")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cv", action="store_true",
                        help="also LassoModelCV (default grid) per size and config, once")
    args = parser.parse_args(argv)
    configs = args.configs.split(",")
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        raise SystemExit(f"unknown config(s) {unknown}; choose from {list(CONFIGS)}")
    from threadpoolctl import threadpool_limits

    warnings.filterwarnings("ignore")
    rows, cv_rows = [], []
    with threadpool_limits(limits=1):
        ctx = context(installed_peers())
        for shape in _parse_sizes(args.sizes):
            for config in configs:
                rows.append(run_case(config, shape, args.seed, args.repeats))
                if args.cv:
                    cv_rows.append(run_cv(config, shape, args.seed))
                print(f"[{shape}] {config} done", file=sys.stderr, flush=True)
    print(table(rows))
    if cv_rows:
        print("\n| LassoModelCV, model (T,M,N) | CPU s (once) | missing scores | best lambda |")
        print("|---|---:|---:|---:|")
        for r in cv_rows:
            print(f"| {CONFIGS[r['config']][0]} {r['shape']} | {r['seconds']:.1f} | "
                  f"{r['missing']} of {r['cells']} | {r['best']:.2e} |")
    print(f"\nreg_lambda = {DEFAULT_LAMBDA:g} (LassoModel's default). CPU seconds, median of "
          f"{args.repeats} interleaved round(s) after a warm-up; ours = LassoModel(...).fit on "
          "DataFrames with the default engine, everything included; LassoLars per response on "
          f"the centred design. Gaps: benchmarks/_gap.py (* = above {TARGET_GAP:g}: not "
          "counted).\n" + ctx)
    return 0


if __name__ == "__main__":
    sys.exit(main())
