"""Cooperative penalties on short, wide panels: ``LassoModelCV`` and single fits as a user runs
them, where the proximal iterations crawl (not a test).

A random search found cross-validations of COOPERATIVE_GROUP_LASSO and
COOPERATIVE_CLUSTER_GROUP_LASSO on panels of 15-40 rows and more factors than training rows
spending 40-140 s, most grid values running 20,000 iterations uncertified. Cases, each a
``make_factor_panel`` draw:

* ``seed344``: 15 weekly rows, 21 factors, 3 responses, one group, a prior, ``demean=False``
  (COOPERATIVE_GROUP_LASSO, engine ``fast``);
* ``scaled``: 22 rows, 20 factors, 10 responses, factors x 1e4 (the default grid then lies at
  1e-17 to 1e-10 of ``lambda_max``, below the gap's rounding), a prior, ``l1_weight`` 0.3, span
  26, ``weight_sum`` (COOPERATIVE_CLUSTER_GROUP_LASSO, engine ``auto``);
* ``random``: ``--count`` draws of 12-40 rows, ``T + 3`` to ``2 T`` factors, 2-8 responses, either
  cooperative model, a prior with probability 1/2 (engine ``auto``).

For each case: ``LassoModelCV`` with the default grid and 5 splits (2 for ``scaled``), no refit:
CPU seconds, the scores it left missing and why; then single fits at ``1e-3`` and ``1e-6`` of
``lambda_max`` (CPU seconds, the solver, or the error) whose objectives are compared with the
CVXPY reference's (``engine="cvxpy"``, Clarabel at its tightest, certified by the gap): the
relative difference printed must be at most ~1e-8. Nothing is asserted.

Usage::

    python benchmarks/bench_coop_wide.py                 # seed344, scaled, 6 random draws
    python benchmarks/bench_coop_wide.py --count 20 --cases random
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np
import pandas as pd

# this checkout's package, not an editable install of another checkout (a git worktree)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def _cases(names: list[str], count: int, seed: int):
    from xl_factorlasso import LassoModelType, make_factor_panel

    if "seed344" in names:
        p = make_factor_panel(15, 21, 3, seed=410204, freq="W-FRI", start="2015-01-02")
        yield "seed344", p.x, p.y, 5, dict(
            model_type=LassoModelType.COOPERATIVE_GROUP_LASSO,
            group_data=pd.Series("g0", index=p.y.columns), l1_weight=0.0,
            factors_beta_prior=p.prior, demean=False, engine="fast")
    if "scaled" in names:
        p = make_factor_panel(22, 20, 10, seed=1139)
        yield "scaled", p.x * 1e4, p.y, 2, dict(
            model_type=LassoModelType.COOPERATIVE_CLUSTER_GROUP_LASSO, l1_weight=0.3,
            span=26.0, loss_normalization="weight_sum", factors_beta_prior=p.prior)
    if "random" in names:
        rng = np.random.default_rng(seed)
        for k in range(count):
            t = int(rng.integers(12, 41))
            m, n = int(rng.integers(t + 3, 2 * t + 1)), int(rng.integers(2, 9))
            p = make_factor_panel(t, m, n, seed=int(rng.integers(1_000_000)))
            kw: dict = {"l1_weight": float(rng.choice([0.0, 0.3]))}
            if rng.random() < 0.5:
                kw["model_type"] = LassoModelType.COOPERATIVE_GROUP_LASSO
                kw["group_data"] = pd.Series([f"g{i % 2}" for i in range(n)], index=p.y.columns)
            else:
                kw["model_type"] = LassoModelType.COOPERATIVE_CLUSTER_GROUP_LASSO
            if rng.random() < 0.5:
                kw["factors_beta_prior"] = p.prior
            yield f"random{k} ({t},{m},{n})", p.x, p.y, 5, kw


def _cpu(fn):
    t0 = time.process_time()
    try:
        return fn(), time.process_time() - t0
    except Exception as exc:  # a fit that fails is a result here
        return exc, time.process_time() - t0


def _versus(fit, params: dict, x, y) -> str:
    """``solver | relative objective difference to the CVXPY reference``, or the error."""
    from xl_factorlasso import LassoModel

    if isinstance(fit, Exception):
        return f"{type(fit).__name__}: {str(fit)[:50]} | "
    ref = _cpu(lambda: LassoModel(**{**params, "engine": "cvxpy"}).fit(x, y))[0]
    if isinstance(ref, Exception):
        return f"{fit.solver_} | reference failed"
    rel = (fit.objective_value_ - ref.objective_value_) / abs(ref.objective_value_)
    return f"{fit.solver_} | {rel:+.1e}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default="seed344,scaled,random")
    parser.add_argument("--count", type=int, default=6, help="random draws")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from xl_factorlasso import LassoModel, LassoModelCV

    warnings.simplefilter("ignore")
    print("| case | model | CV s | scores missing (why) | fraction | fit s | solver or error "
          "| objective vs CVXPY |")
    print("|---|---|---:|---|---:|---:|---|---:|")
    totals = [0.0, 0.0]
    for name, x, y, splits, kw in _cases(args.cases.split(","), args.count, args.seed):
        model = {"COOPERATIVE_GROUP_LASSO": "CGL"}.get(kw["model_type"].name, "CCGL")
        cv, dt = _cpu(lambda x=x, y=y, kw=kw, splits=splits: LassoModelCV(
            base_model=LassoModel(warmup_period=None, **kw), n_splits=splits,
            refit=False).fit(x, y))
        totals[0] += dt
        if isinstance(cv, Exception):
            missing = f"all ({type(cv).__name__}: {str(cv)[:60]})"
        else:
            scores = cv.cv_scores_.filter(like="fold_")
            reasons = sorted({("too few rows" if "too few rows" in str(e) else
                               "cannot be certified" if "cannot be certified" in str(e) else
                               str(e)[:40]) for e in cv.fold_errors_.values()})
            missing = f"{int(scores.isna().sum().sum())} of {scores.size} ({'; '.join(reasons)})"
        lam_max = LassoModel(warmup_period=None, **kw).lambda_max(x, y)
        for fraction in (1e-3, 1e-6):
            params = dict(warmup_period=None, **kw, reg_lambda=fraction * lam_max)
            fit, ft = _cpu(lambda p=params, x=x, y=y: LassoModel(**p).fit(x, y))
            totals[1] += ft
            print(f"| {name} | {model} | {dt:.2f} | {missing} | {fraction:g} | {ft:.2f} | "
                  f"{_versus(fit, params, x, y)} |", flush=True)
            dt, missing, name, model = 0.0, "", "", ""
    print(f"\ntotal CPU s: cross-validations {totals[0]:.1f}, single fits {totals[1]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
