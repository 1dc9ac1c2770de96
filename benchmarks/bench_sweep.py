"""Random fits with the options users meet, against the CVXPY reference: time and answers.

``bench_wide_random.py`` judges its fits by ``_gap.py``, which covers the plain objective only.
This draws problems with what real panels and users bring, and judges each fit by the package's
own CVXPY formulation (``engine="cvxpy"``, the same arguments): the objective of our answer
(engine "auto") may not exceed CVXPY's by more than 1e-7 relative. Problem ``k`` draws from
``numpy.random.default_rng((k, 777))``:

* a panel from :func:`~xl_factorlasso.core.datasets.make_factor_panel` (seed ``k``): ``T``
  log-uniform in 40-600 rows and ``M`` in 2-40 factors, or with probability 0.2 a wide one
  (``T`` in 40-60, ``M`` in ``T + 1`` to ``T + 40``); ``N`` log-uniform in 2-120 responses;
* ragged data with probability 0.6 (:func:`ragged_panel`): late listings, holes, missing factor
  rows or cells;
* a model among LASSO, GROUP_LASSO, HCGL, FCGL, the two cooperative ones and UNILASSO, and
  options each with some probability: an EWMA ``span``, ``demean=False``, ``warmup_period``,
  ``loss_normalization="weight_sum"``, the panel's signs and prior, ``nonneg``, an L1 share,
  ``group_penalty="yuan_lin"``, data-driven signs (with adaptive weights), the OLS prior, the
  number of clusters or the cut-off, UniLasso's options;
* ``reg_lambda`` a fraction ``10^U(-6, 0)`` of ``lambda_max``.

Printed: how many fits raised, how many ended above CVXPY's objective, our CPU seconds (median,
90th percentile, max, total, over ``--slow``) and CVXPY's beside them; with ``--list`` every
problem over ``--slow`` seconds. A problem whose arguments are refused for both engines (the
prior against ``nonneg``) is counted apart. The same command with ``PYTHONPATH`` on a checkout
of older code times that code on the same problems. No number here is asserted anywhere; the
tests check correctness.

Usage::

    python benchmarks/bench_sweep.py --count 250 --seed 1          # about 4 minutes
    python benchmarks/bench_sweep.py --numbers 95,245,493 --list   # a few problems
    python benchmarks/bench_sweep.py --count 500 --no-reference    # ours only
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import warnings

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_peers import _cpu, context, installed_peers  # noqa: E402
from bench_wide_random import spread  # noqa: E402

MODELS = ("LASSO", "GROUP_LASSO", "HIERARCHICAL_CLUSTER_GROUP_LASSO",
          "FACTOR_CLUSTER_GROUP_LASSO", "COOPERATIVE_GROUP_LASSO",
          "COOPERATIVE_CLUSTER_GROUP_LASSO", "UNILASSO")
MODEL_P = (0.16, 0.15, 0.15, 0.15, 0.12, 0.12, 0.15)
SHORT = dict(zip(MODELS, ("lasso", "group", "hcgl", "fcgl", "coop", "ccgl", "unilasso"),
                 strict=True))
USER_GROUPS = {"GROUP_LASSO", "COOPERATIVE_GROUP_LASSO"}
FOUND = {"HIERARCHICAL_CLUSTER_GROUP_LASSO", "FACTOR_CLUSTER_GROUP_LASSO",
         "COOPERATIVE_CLUSTER_GROUP_LASSO"}
COOPERATIVE = {"COOPERATIVE_GROUP_LASSO", "COOPERATIVE_CLUSTER_GROUP_LASSO"}
EXCESS = 1e-7  # relative objective above CVXPY's that counts as worse


def ragged_panel(t: int, m: int, n: int, seed: int, ragged_seed: int, holes: bool = True,
                 x_rows_missing: int = 0, x_cells_missing: int = 0):
    """``(panel, x, y)``: ``make_factor_panel(t, m, n, seed=seed)`` with, drawn from
    ``ragged_seed``: late listings (leading NaN in a share of the responses, at least 24 rows
    kept), up to 3 holes per response (``holes``), whole factor rows and single factor cells
    missing."""
    from xl_factorlasso import make_factor_panel

    panel = make_factor_panel(t, m, n, seed=seed)
    rng = np.random.default_rng(ragged_seed)
    ya = panel.y.to_numpy().copy()
    late = rng.random(n) < rng.uniform(0.1, 0.6)
    for i in np.flatnonzero(late):
        top = t - 24
        if top > 0:
            start = int(rng.integers(0, top + 1)) if rng.random() < 0.7 else \
                max(0, top - int(rng.integers(0, 15)))
            ya[:start, i] = np.nan
    if holes:
        for i in range(n):
            valid = np.flatnonzero(~np.isnan(ya[:, i]))
            k = int(rng.integers(0, 4))
            if k and len(valid) > 24:
                ya[rng.choice(valid, size=k, replace=False), i] = np.nan
    xa = panel.x.to_numpy().copy()
    if x_rows_missing:
        xa[rng.choice(t, size=x_rows_missing, replace=False), :] = np.nan
    if x_cells_missing:
        rows = rng.choice(t, size=x_cells_missing, replace=False)
        xa[rows, rng.integers(0, m, size=x_cells_missing)] = np.nan
    return (panel, pd.DataFrame(xa, index=panel.x.index, columns=panel.x.columns),
            pd.DataFrame(ya, index=panel.y.index, columns=panel.y.columns))


def draw(number: int) -> dict:
    """Problem ``number``'s parameters (no data)."""
    rng = np.random.default_rng((number, 777))
    if rng.random() < 0.2:  # wide: more factors than rows
        t = int(rng.integers(40, 61))
        m = int(rng.integers(t + 1, t + 41))
    else:
        t = int(round(math.exp(rng.uniform(math.log(40), math.log(600)))))
        m = int(rng.integers(2, min(40, t - 1) + 1))
    n = int(round(math.exp(rng.uniform(math.log(2), math.log(120)))))
    model = MODELS[int(rng.choice(len(MODELS), p=MODEL_P))]
    p = dict(number=number, shape=(t, m, n), model=model, ragged=bool(rng.random() < 0.6),
             ragged_seed=int(rng.integers(2**31)), holes=bool(rng.random() < 0.5))
    p["x_rows_missing"] = int(rng.integers(1, 4)) if rng.random() < 0.2 else 0
    p["x_cells_missing"] = int(rng.integers(1, 4)) if rng.random() < 0.2 else 0
    opts: dict = {}
    if rng.random() < 0.35:
        opts["span"] = float(round(rng.uniform(26, 260), 1))
    if rng.random() < 0.15:
        opts["demean"] = False
    u = rng.random()
    if u < 0.35:
        opts["warmup_period"] = int(rng.integers(10, 41))
    elif u < 0.45:
        opts["warmup_period"] = None
    hard = model not in COOPERATIVE and model != "UNILASSO"  # (cooperative: no hard signs)
    if model != "UNILASSO" and rng.random() < 0.25:
        opts["loss_normalization"] = "weight_sum"
    p["signs"] = bool(hard and rng.random() < 0.3)
    p["prior"] = bool(model != "UNILASSO" and rng.random() < 0.25)
    if hard and not p["signs"] and rng.random() < 0.15:
        opts["nonneg"] = True
    if model not in ("LASSO", "UNILASSO"):
        if rng.random() < 0.35:
            opts["l1_weight"] = (0.1, 0.3, 0.5, 0.9, 1.0)[int(rng.integers(5))]
        if rng.random() < 0.3:
            opts["group_penalty"] = "yuan_lin"
    if model != "UNILASSO" and rng.random() < 0.2:
        opts["auto_sign_constraints"] = True
        opts["auto_sign_threshold_t"] = (0.75, None, 2.0)[int(rng.integers(3))]
        if rng.random() < 0.5:
            opts["auto_sign_adaptive_weights"] = True
            opts["auto_sign_adaptive_gamma"] = (0.5, 1.0, 2.0)[int(rng.integers(3))]
        if rng.random() < 0.3:
            opts["auto_sign_use_fit_span"] = True
    if model != "UNILASSO" and rng.random() < 0.1:
        opts["apply_ols_prior"] = True
    if model in FOUND:
        u = rng.random()
        if u < 0.3:
            opts["n_clusters"] = (1, 2, 3, 5, 10)[int(rng.integers(5))]
        elif u < 0.5:
            opts["cutoff_fraction"] = float(round(rng.uniform(0.2, 1.0), 3))
    if model == "UNILASSO":
        if rng.random() < 0.3:
            opts["unilasso_loo"] = False
        if rng.random() < 0.3:
            opts["unilasso_non_negative"] = False
    p["groups"] = (1, 2, 3, 5, 0)[int(rng.integers(5))]  # 0: a group per response
    p["options"] = opts
    p["fraction"] = float(10 ** rng.uniform(-6, 0))
    return p


def build(p: dict):
    """``(x, y, LassoModel arguments)`` of problem parameters ``p``."""
    from xl_factorlasso import LassoModel

    t, m, n = p["shape"]
    if p["ragged"]:
        panel, x, y = ragged_panel(t, m, n, p["number"], p["ragged_seed"], p["holes"],
                                   p["x_rows_missing"], p["x_cells_missing"])
    else:
        from xl_factorlasso import make_factor_panel

        panel = make_factor_panel(t, m, n, seed=p["number"])
        x, y = panel.x, panel.y
    kw = dict(model_type=p["model"], **p["options"])
    if p["signs"]:
        kw["factors_beta_loading_signs"] = panel.signs
    if p["prior"]:
        kw["factors_beta_prior"] = panel.prior
    if p["model"] in USER_GROUPS:
        groups = p["groups"] or n
        labels = np.random.default_rng(p["number"]).permutation(np.arange(n) % groups)
        kw["group_data"] = pd.Series([f"g{v}" for v in labels], index=y.columns)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kw["reg_lambda"] = p["fraction"] * LassoModel(**kw).lambda_max(x, y)
    return x, y, kw


def describe(p: dict) -> str:
    bits = [SHORT[p["model"]]] + [name for name in ("signs", "prior") if p[name]]
    bits += [f"{key}={value}" for key, value in p["options"].items()]
    if p["ragged"]:
        bits.append("ragged")
    return " ".join(bits)


def _fit(kw: dict, x, y, engine: str):
    from xl_factorlasso import LassoModel

    model = LassoModel(**kw, engine=engine)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            seconds, _ = _cpu(lambda: model.fit(x, y))
    except Exception as exc:  # a fit that raises is a result here
        return None, f"{type(exc).__name__}: {exc}"[:120]
    return model, seconds


def run(number: int, reference: bool) -> dict:
    p = draw(number)
    row = dict(number=number, shape=p["shape"], what=describe(p), fraction=p["fraction"])
    try:
        x, y, kw = build(p)
    except ValueError as exc:  # arguments refused whatever the engine
        return dict(row, refused=f"{exc}"[:120])
    ours, seconds = _fit(kw, x, y, "auto")
    if ours is None:
        return dict(row, failed=seconds)
    row.update(seconds=seconds, solver=str(ours.solver_), gap=float(ours.duality_gap_))
    if reference:
        ref, ref_seconds = _fit(kw, x, y, "cvxpy")
        if ref is not None:
            scale = max(abs(ref.objective_value_), np.finfo(float).tiny)
            row.update(ref_seconds=ref_seconds,
                       excess=(ours.objective_value_ - ref.objective_value_) / scale)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=250)
    parser.add_argument("--seed", type=int, default=1, help="the first problem's number")
    parser.add_argument("--numbers", default=None, help="comma list of problems instead")
    parser.add_argument("--no-reference", action="store_true", help="no CVXPY fit")
    parser.add_argument("--slow", type=float, default=2.0, help="CPU seconds that count as slow")
    parser.add_argument("--list", action="store_true", help="print the slow problems' rows")
    args = parser.parse_args(argv)
    numbers = ([int(k) for k in args.numbers.split(",")] if args.numbers
               else list(range(args.seed, args.seed + args.count)))
    from threadpoolctl import threadpool_limits

    rows = []
    with threadpool_limits(limits=1):
        machine = context(installed_peers())
        for number in numbers:
            rows.append(run(number, not args.no_reference))
            print(f"[{number}] done", file=sys.stderr, flush=True)
    fitted = [r for r in rows if "seconds" in r]
    failed = [r for r in rows if "failed" in r]
    refused = sum("refused" in r for r in rows)
    judged = [r for r in fitted if "excess" in r]
    above = [r for r in judged if r["excess"] > EXCESS]
    if args.list:
        print("| problem | (T,M,N) | model and options | lambda / lambda_max | CPU s | CVXPY s "
              "| answered by | (ours - CVXPY) / CVXPY |")
        print("|---:|---|---|---:|---:|---:|---|---:|")
        for r in rows:
            if r.get("seconds", 0.0) > args.slow or r in failed or r in above:
                print(f"| {r['number']} | {r['shape']} | {r['what']} | {r['fraction']:.1e} | "
                      f"{r.get('seconds', float('nan')):.2f} | "
                      f"{r.get('ref_seconds', float('nan')):.2f} | "
                      f"{r.get('solver', r.get('failed'))} | {r.get('excess', float('nan')):.0e} |")
        print()
    print("| problems | refused (both engines) | failed | above CVXPY | median s | 90th "
          "percentile s | max s | total s | over --slow |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    if fitted:
        print(f"| {len(rows)} | {refused} | {len(failed)} | {len(above)} of {len(judged)} | "
              f"{spread([r['seconds'] for r in fitted])} | "
              f"{sum(r['seconds'] > args.slow for r in fitted)} |")
    if judged:
        ref = [r["ref_seconds"] for r in judged]
        print(f"| CVXPY reference | | | | {spread(ref)} | "
              f"{sum(s > args.slow for s in ref)} |")
    worst = max((r["excess"] for r in judged), default=float("nan"))
    which = args.numbers if args.numbers else f"{numbers[0]}..{numbers[-1]}"
    print(f"\nproblems {which} ({len(numbers)}); CPU seconds of one fit "
          f"each (ours: engine 'auto'); above CVXPY: objective more than {EXCESS:g} above the "
          f"reference's, relative (largest {worst:.1e}); --slow {args.slow:g} s.\n{machine}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
