"""How often, how well and how fast the active-set solver answers maximum diversification
with linear constraints (groups), against the CVXPY program.

With linear constraints the pivoting of ``core/optimization/_dense.py`` exchanges rows (active
or not) with the assets; the problem is then no P-matrix one and the pivoting is not
guaranteed to end, so a problem it does not answer takes the CVXPY program. This script draws
random problems (``bench_maxdiv.make_data``, seeded per problem; n in {20, 60, 200, 500},
T = 2n + 200, sparse and dense optima, the sample covariance or a ``FactorCovariance`` by OLS
on the true factors) with 2-6 random groups and, on some of them, an upper or lower bound on
their weight (around the group's equal-weight share, so that most bind) and sometimes an
equality, plus random caps, short positions, turnover and transaction costs (30% of the
problems; the ratio is then net of them). Draws whose constraints admit no
portfolio are redrawn; the CPU seconds our fit took to raise InfeasibleProblemError on them are
printed too.

For each problem: ``MaximumDiversification(...).fit`` as shipped and with ``save_problem=True``
(the CVXPY program), CPU seconds of each; which path answered ours ("dense"/"factor", or the
CVXPY fallback with its note); whether the rows bind (the fit without them breaks one); the
relative difference of the diversification ratio (one formula on both weight vectors,
ours - CVXPY, positive when ours is higher); the largest violation of the group constraints and
bounds by each (evaluated here from the drawn groups, not by the library).

Usage::

    python benchmarks/bench_maxdiv_rows.py                  # 100 problems
    python benchmarks/bench_maxdiv_rows.py --problems 30
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(_HERE, ".."))
sys.path.insert(0, _HERE)

from bench_maxdiv import make_data  # noqa: E402

from xl_factorlasso.core.covariance import FactorCovariance  # noqa: E402
from xl_factorlasso.core.optimization import (  # noqa: E402
    InfeasibleProblemError,
    MaximumDiversification,
)


def draw(k: int, rng: np.random.Generator) -> dict:
    """Problem ``k``: data (seed ``k``), groups and their constraints, bounds, turnover."""
    n = int(rng.choice([20, 60, 200, 500]))
    X, F = make_data(n, 2 * n + 200, dense=bool(k % 2), seed=k)
    n_groups = int(rng.integers(2, 7))
    labels = rng.integers(0, n_groups, n)
    rules = []  # (group, sense, value)
    present = np.unique(labels)  # (a label no asset drew is no group)
    for g in rng.permutation(present)[:int(rng.integers(1, present.size + 1))]:
        share = np.mean(labels == g)
        sense = rng.choice(["<=", ">=", "=="], p=[0.45, 0.45, 0.1])
        scale = {"<=": rng.uniform(0.3, 0.9), ">=": rng.uniform(1.2, 2.0), "==": 1.0}[sense]
        rules.append((int(g), str(sense), round(float(min(share * scale, 0.9)), 4)))
    params = dict(groups=[[f"G{g}" for g in labels]],
                  linear_constraints=[f"G{g} {s} {v}" for g, s, v in rules])
    if rng.random() < 0.4:
        params["max_weights"] = float(rng.choice([3.0 / n, 0.2]))
    if rng.random() < 0.3:
        params["min_weights"] = -0.5 / n
        params.setdefault("max_weights", 0.2)
    if rng.random() < 0.2:
        params.update(previous_weights=1.0 / n, max_turnover=float(rng.choice([0.5 / n, 2 / n])))
    if rng.random() < 0.3:
        params.setdefault("previous_weights", rng.dirichlet(np.ones(n)))
        params["transaction_costs"] = float(rng.choice([1e-4, 5e-4, 1e-3]))
    if k % 4 >= 2:
        params["covariance"] = FactorCovariance.from_ols(X, F)
    return dict(n=n, X=X, labels=labels, rules=rules, params=params)


def _ratio(w: np.ndarray, cov: np.ndarray, params: dict) -> float:
    """The diversification ratio, net of transaction costs when the problem has them."""
    cost = params.get("transaction_costs", 0.0) * np.abs(w - params.get("previous_weights", 0.0))
    return float((np.sqrt(np.diag(cov)) @ w - cost.sum()) / np.sqrt(w @ cov @ w))


def _excess(w: np.ndarray, p: dict) -> float:
    """The largest violation of the drawn constraints (groups, bounds, turnover) by ``w``."""
    worst = abs(w.sum() - 1.0)
    for g, sense, value in p["rules"]:
        total = w[p["labels"] == g].sum()
        worst = max(worst, {"<=": total - value, ">=": value - total,
                            "==": abs(total - value)}[sense])
    params = p["params"]
    worst = max(worst, float(np.max(params.get("min_weights", 0.0) - w)))
    worst = max(worst, float(np.max(w - params.get("max_weights", 1.0))))
    if "max_turnover" in params:
        worst = max(worst, float(np.max(np.abs(w - params["previous_weights"])
                                        - params["max_turnover"])))
    return max(worst, 0.0)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=100)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    rng = np.random.default_rng(0)
    paths: dict[str, int] = {}
    notes: list[str] = []
    diffs, ours_cpu, cvxpy_cpu, excess_ours, excess_ref = [], [], [], [], []
    infeasible_cpu: list[float] = []  # ours, to the InfeasibleProblemError naming the conflict
    binding = redrawn = 0
    k = 0
    while len(diffs) < args.problems:
        p = draw(k, rng)
        k += 1
        X, params = p["X"], p["params"]
        try:
            t0 = time.process_time()
            ours = MaximumDiversification(**params).fit(X)
            t1 = time.process_time()
        except InfeasibleProblemError:
            redrawn += 1
            infeasible_cpu.append(time.process_time() - t0)
            continue
        ref = MaximumDiversification(save_problem=True, **params).fit(X)
        t2 = time.process_time()
        free = MaximumDiversification(**{key: v for key, v in params.items()
                                         if key not in ("groups", "linear_constraints")}).fit(X)
        cov = (params["covariance"].covariance.to_numpy() if "covariance" in params
               else X.cov().to_numpy())
        w, w_ref = ours.weights_.to_numpy(), ref.weights_.to_numpy()
        paths[ours.solve_.path] = paths.get(ours.solve_.path, 0) + 1
        if ours.solve_.note:
            notes.append(ours.solve_.note)
        binding += _excess(free.weights_.to_numpy(), p) > 1e-6
        diffs.append(_ratio(w, cov, params) / _ratio(w_ref, cov, params) - 1.0)
        excess_ours.append(_excess(w, p))
        excess_ref.append(_excess(w_ref, p))
        ours_cpu.append(t1 - t0)
        cvxpy_cpu.append(t2 - t1)
    print(f"{len(diffs)} problems ({redrawn} infeasible draws redrawn); the rows bind on "
          f"{binding}")
    print("answered by: " + ", ".join(f"{name} {count}" for name, count in sorted(paths.items())))
    for note in sorted(set(notes)):
        print(f"  fallback note ({notes.count(note)}x): {note}")
    print(f"ratio, ours / CVXPY - 1: min {min(diffs):+.1e}, "
          f"median {statistics.median(diffs):+.1e}, max {max(diffs):+.1e}")
    print(f"largest constraint violation: ours {max(excess_ours):.1e}, "
          f"CVXPY {max(excess_ref):.1e}")
    print(f"CPU seconds per fit, median: ours {statistics.median(ours_cpu):.4f}, "
          f"CVXPY {statistics.median(cvxpy_cpu):.4f}; total: ours {sum(ours_cpu):.2f}, "
          f"CVXPY {sum(cvxpy_cpu):.2f}")
    if infeasible_cpu:
        print(f"CPU seconds to the error on the {len(infeasible_cpu)} infeasible draws: median "
              f"{statistics.median(infeasible_cpu):.4f}, max {max(infeasible_cpu):.4f}, total "
              f"{sum(infeasible_cpu):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
