"""How often the dense path answers maximum diversification with transaction costs.

With costs every asset has a kink at its previous weight and the dense solver's pivoting
(``core/optimization/_dense.py``) is no longer guaranteed to end: it starts from the cost-free
optimum and, when it cycles, reaches the costs in steps. This script draws random problems
(``bench_maxdiv.make_data``, seeded per problem; n in {20, 40, 80, 200}, T = 3n + 100, sparse
and dense optima, caps, short positions, equal or
random previous weights, costs from 1e-4 to 3e-3) and counts, for each, whether the pivoting
from the cost-free start converged, whether the steps were needed, and whether the answer is
certified (``relative_gap <= 1e-9``); a problem it does not answer takes the CVXPY path in a
fit. With ``--compare`` it also fits each problem with ``MaximumDiversification`` on both paths
(the dense one switched off for the second) and prints the largest relative difference of the
net ratio and the CPU seconds of each (a problem the dense path did not answer is fitted by
CVXPY in both columns).

Usage::

    python benchmarks/bench_maxdiv_costs.py                 # 120 problems, counts
    python benchmarks/bench_maxdiv_costs.py --problems 30 --compare
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(_HERE, ".."))
sys.path.insert(0, _HERE)

from bench_maxdiv import make_data  # noqa: E402

from xl_factorlasso.core.optimization import MaximumDiversification, _dense  # noqa: E402


def draw(k: int, rng: np.random.Generator) -> dict:
    """Problem ``k``: bench_maxdiv's data (seed ``k``) and random bounds, costs, previous."""
    n = int(rng.choice([20, 40, 80, 200]))
    upper = float(rng.choice([np.inf, 3.0 / n, 0.1]))
    lower = float(rng.choice([0.0, 0.0, -0.5 / n]))
    previous = rng.dirichlet(np.ones(n)) if k % 3 else np.full(n, 1.0 / n)
    X = make_data(n, 3 * n + 100, dense=bool(k % 2), seed=k)[0]
    return dict(n=n, X=X, lower=lower, upper=upper,
                previous=previous, cost=float(rng.choice([1e-4, 5e-4, 1e-3, 3e-3])))


def _net_ratio(w, cov, cost, previous) -> float:
    sigma = np.sqrt(np.diag(cov))
    return float((sigma @ w - cost * np.abs(w - previous).sum()) / np.sqrt(w @ cov @ w))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=120)
    parser.add_argument("--compare", action="store_true")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    rng = np.random.default_rng(0)
    counts = {"at once": 0, "in steps": 0, "not answered": 0, "uncertified": 0}
    worst, dense_cpu, cvxpy_cpu = 0.0, 0.0, 0.0
    for k in range(args.problems):
        p = draw(k, rng)
        cov = p["X"].cov().to_numpy()
        a = np.sqrt(np.diag(cov))
        box = _dense._Box(np.full(p["n"], p["lower"]), np.full(p["n"], p["upper"]), 1.0)
        costs = _dense._Costs(np.full(p["n"], p["cost"]), p["previous"])
        steps = []

        def counted(*a_, _steps=steps, _run=_dense._pivoting_with_costs, **kw):
            _steps.append(1)
            return _run(*a_, **kw)

        original, _dense._pivoting_with_costs = _dense._pivoting_with_costs, counted
        try:
            solved = _dense._pivot_costs(cov, a, box, costs)
        finally:
            _dense._pivoting_with_costs = original
        if solved is None:
            counts["not answered"] += 1
        elif _dense.relative_gap(cov, a, solved[0], box, costs) > _dense.GAP_TOLERANCE:
            counts["uncertified"] += 1
        else:
            counts["at once" if len(steps) == 1 else "in steps"] += 1
        if args.compare:
            params = dict(transaction_costs=p["cost"], previous_weights=p["previous"],
                          min_weights=p["lower"],
                          max_weights=None if np.isinf(p["upper"]) else p["upper"])
            t0 = time.process_time()
            ours = MaximumDiversification(**params).fit(p["X"]).weights_.to_numpy()
            t1 = time.process_time()
            ref = MaximumDiversification(save_problem=True, **params).fit(p["X"])
            t2 = time.process_time()
            dense_cpu, cvxpy_cpu = dense_cpu + t1 - t0, cvxpy_cpu + t2 - t1
            r_ours = _net_ratio(ours, cov, p["cost"], p["previous"])
            r_ref = _net_ratio(ref.weights_.to_numpy(), cov, p["cost"], p["previous"])
            worst = max(worst, abs(r_ours - r_ref) / abs(r_ref))
    print(f"{args.problems} problems: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    if args.compare:
        print(f"largest relative difference of the net ratio (dense path vs CVXPY): {worst:.1e}")
        print(f"CPU seconds, all problems: dense path {dense_cpu:.2f}, CVXPY {cvxpy_cpu:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
