"""Random maximum-diversification problems with what users bring: answers against skfolio and a
reference written on the correlation matrix.

Problem ``k`` draws from ``numpy.random.default_rng((k, 36))``:

* returns of ``n`` in {8, 30, 80, 200} assets on 1-5 factors, ``T = 2n + 60`` or ``4n + 60``
  rows, volatilities log-uniform over 0.5, 2, 4 or 6 decades below 0.045 (a stale price series
  or a cash-like fund next to equities), and with probability 0.2 a duplicated asset;
* one constraint family: long-only (``long``), caps (``caps``), a long-short box (``ls``), a
  budget range with ``budget=None`` (``range``), caps on the long and short sums (``ls_caps``),
  ``max_turnover`` or ``transaction_costs`` around random previous weights, ``l1_coef``
  (long-short), ``l2_coef``, group rows (``groups``) or ``max_tracking_error`` against the
  equal-weight portfolio (``te``).

Each problem is fitted by ours (the default route, or with ``--cvxpy`` the CVXPY program:
``save_problem=True`` keeps it off the dense path) and by skfolio's ``MaximumDiversification``
with the same parameters (not for ``l2``, whose skfolio term is another one). Each answer's
net ratio is computed here from the sample covariance. For the box-and-budget families the
reference is the Charnes–Cooper program written on the correlation matrix ``C`` in ``x = sigma
w t`` (``min x'Cx``, ``1'x = 1``, the weight rows in ``x / sigma``), where the volatilities
cancel, solved by Clarabel at 1e-11.

Printed per family: problems, our failures, ours below the reference and below skfolio by more
than 1e-7 (relative), skfolio below ours, skfolio's failures, the worst of each, and CPU
seconds. With ``PYTHONPATH`` on a checkout of older code the same command judges that code on
the same problems. No number here is asserted anywhere; the tests check correctness.

Usage::

    python benchmarks/bench_maxdiv_random.py --count 300            # about 2 minutes
    python benchmarks/bench_maxdiv_random.py --count 300 --cvxpy --list
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_peers import context  # noqa: E402

FAMILIES = ("long", "caps", "ls", "range", "ls_caps", "turnover", "costs", "l1", "l2",
            "groups", "te")
BOX_FAMILIES = {"long", "caps", "ls", "range"}
EXCESS = 1e-7  # a relative shortfall in ratio that counts


def problem(k: int) -> tuple[np.ndarray, str, dict]:
    """Returns ``X``, the family and the estimator's parameters of problem ``k``."""
    rng = np.random.default_rng((k, 36))
    n = int(rng.choice([8, 30, 80, 200]))
    T = int(rng.choice([2, 4])) * n + 60
    k_f = int(rng.integers(1, 6))
    X = rng.standard_normal((T, k_f)) @ rng.standard_normal((k_f, n)) * 0.01
    X += rng.standard_normal((T, n)) * 0.01
    decades = float(rng.choice([0.5, 2, 4, 6]))
    X = X / X.std(0) * 10 ** rng.uniform(np.log10(0.045) - decades, np.log10(0.045), n)
    if rng.random() < 0.2:
        X[:, 1] = X[:, 0]
    family = str(rng.choice(FAMILIES))
    params: dict = {}
    if family == "caps":
        params["max_weights"] = float(rng.uniform(1.2, 4) / n)
    if family in ("ls", "range", "ls_caps", "te"):
        params["min_weights"] = -float(rng.uniform(0.05, 0.3))
        params["max_weights"] = float(rng.uniform(0.15, 0.5))
    if family == "range":
        low = float(rng.uniform(0.3, 0.9))
        params.update(budget=None, min_budget=low, max_budget=low + float(rng.uniform(0, 0.6)))
    if family == "ls_caps":
        params["max_short"] = float(rng.uniform(0.1, 0.5))
        params["max_long"] = 1 + params["max_short"] * float(rng.uniform(0.5, 1))
    if family in ("turnover", "costs"):
        params["previous_weights"] = rng.dirichlet(np.ones(n))
        if family == "turnover":
            params["max_turnover"] = float(rng.uniform(0.01, 0.1))
        else:
            params["transaction_costs"] = float(rng.uniform(1e-4, 3e-3))
    if family == "l1":
        params.update(l1_coef=float(rng.uniform(1e-4, 1e-2)), min_weights=-0.1)
    if family == "l2":
        params["l2_coef"] = float(rng.uniform(1e-3, 1e-1))
    if family == "groups":
        labels = rng.integers(0, 3, n)
        params["groups"] = [[f"g{i}" for i in labels]]
        params["linear_constraints"] = [f"g0 <= {rng.uniform(0.2, 0.5):.3f}",
                                        f"g1 >= {rng.uniform(0.1, 0.3):.3f}"]
        if not np.any(labels == 0) or not np.any(labels == 1):
            params["linear_constraints"] = []
    if family == "te":
        params["max_tracking_error"] = float(rng.uniform(0.002, 0.01))
    return X, family, params


def net_ratio(X: np.ndarray, w: np.ndarray, params: dict) -> float:
    """The ratio our estimator maximises, from the sample covariance."""
    cov = np.cov(X, rowvar=False)
    numerator = np.sqrt(np.diag(cov)) @ w
    if "transaction_costs" in params:
        numerator -= params["transaction_costs"] * np.abs(w - params["previous_weights"]).sum()
    denominator = (np.sqrt(max(w @ cov @ w, 0.0)) + params.get("l1_coef", 0.0) * np.abs(w).sum()
                   + params.get("l2_coef", 0.0) * w @ w)
    return float(numerator / denominator)


def reference(X: np.ndarray, params: dict) -> float:
    """The box-and-budget optimum from the program on the correlation matrix."""
    import cvxpy as cp

    cov = np.cov(X, rowvar=False)
    sd = np.sqrt(np.diag(cov))
    x, t = cp.Variable(sd.size), cp.Variable(nonneg=True)
    wt = x / sd  # w * t
    rows = [cp.sum(x) == 1, wt >= params.get("min_weights", 0.0) * t,
            wt <= params.get("max_weights", 1.0) * t]
    if "min_budget" in params:
        rows += [cp.sum(wt) >= params["min_budget"] * t, cp.sum(wt) <= params["max_budget"] * t]
    else:
        rows.append(cp.sum(wt) == t)
    # Clarabel's gap tolerances act absolutely on objectives below 1: x'Cx (about 1 / D^2) is
    # scaled by n, and by 1 / (its value) once more when that is still below 0.01
    corr = cov / np.outer(sd, sd)
    scale = float(sd.size)
    for _ in range(2):
        program = cp.Problem(cp.Minimize(cp.quad_form(x, cp.psd_wrap(scale * corr))), rows)
        try:
            program.solve(solver="CLARABEL", tol_gap_abs=1e-11, tol_gap_rel=1e-11,
                          tol_feas=1e-11)
        except cp.error.SolverError:
            return float("nan")
        if program.status != cp.OPTIMAL:
            return float("nan")
        if program.value >= 1e-2:
            break
        scale /= program.value
    return float(np.sqrt(scale / program.value))


def fit(estimator, X, y) -> tuple[np.ndarray | None, float, str]:
    start = time.process_time()
    try:
        estimator.fit(X, y)
        w = np.asarray(estimator.weights_, dtype=float)
        note = getattr(getattr(estimator, "solve_", None), "path", "")
    except Exception as err:  # noqa: BLE001 - a failure is a result here
        w, note = None, f"{type(err).__name__}: {str(err)[:90]}"
    return w, time.process_time() - start, note


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0, help="the first problem's number")
    parser.add_argument("--cvxpy", action="store_true", help="our CVXPY program, not the route")
    parser.add_argument("--no-skfolio", action="store_true")
    parser.add_argument("--list", action="store_true", help="one line per problem")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    from xl_factorlasso.core.optimization import MaximumDiversification
    skfolio_md = None
    if not args.no_skfolio:
        from skfolio.optimization import MaximumDiversification as skfolio_md

    import skfolio
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):  # one core each: two runs can go side by side
        run(args, MaximumDiversification, skfolio_md, f"skfolio {skfolio.__version__}.")
    return 0


def run(args, MaximumDiversification, skfolio_md, versions: str) -> None:
    print(context({}), versions)
    stats = {f: {"n": 0, "fail": 0, "below_ref": [], "below_sk": [], "sk_below": [],
                 "sk_fail": 0, "no_ref": 0, "cpu": 0.0, "sk_cpu": 0.0} for f in FAMILIES}
    for k in range(args.seed, args.seed + args.count):
        X, family, params = problem(k)
        y = X.mean(axis=1) if family == "te" else None
        row = stats[family]
        row["n"] += 1
        w, cpu, note = fit(MaximumDiversification(**params, save_problem=args.cvxpy), X, y)
        row["cpu"] += cpu
        ours = None if w is None else net_ratio(X, w, params)
        row["fail"] += w is None
        line = f"{k:5d} {family:9s} n={X.shape[1]:3d} ours={ours} ({note}, {cpu:.2f} s)"
        if ours is not None and family in BOX_FAMILIES:
            best = reference(X, params)
            line += f" reference={best:.9g}"
            if np.isfinite(best):
                row["below_ref"].append((best - ours) / best)
            else:
                row["no_ref"] += 1
        if skfolio_md is not None and family != "l2":
            w_sk, cpu_sk, note_sk = fit(skfolio_md(**params), X, y)
            row["sk_cpu"] += cpu_sk
            if w_sk is None:
                row["sk_fail"] += 1
                line += f" skfolio failed ({note_sk})"
            else:
                theirs = net_ratio(X, w_sk, params)
                line += f" skfolio={theirs:.9g}"
                if ours is not None:
                    row["below_sk"].append((theirs - ours) / theirs)
                    row["sk_below"].append((ours - theirs) / ours)
        if args.list:
            print(line, flush=True)

    def count(values):
        over = [v for v in values if v > EXCESS]
        return f"{len(over)} ({max(over):.1e})" if over else "0"

    print("\n| family | problems | ours failed | ours below reference | ours below skfolio "
          "| skfolio below ours | skfolio failed | CPU ours s | CPU skfolio s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for family, row in stats.items():
        if row["n"]:
            judged = count(row["below_ref"]) if family in BOX_FAMILIES else "n/a"
            if row["no_ref"]:
                judged += f" ({row['no_ref']} without a reference)"
            print(f"| {family} | {row['n']} | {row['fail']} | {judged} | "
                  f"{count(row['below_sk'])} | {count(row['sk_below'])} | {row['sk_fail']} | "
                  f"{row['cpu']:.1f} | {row['sk_cpu']:.1f} |")


if __name__ == "__main__":
    sys.exit(main())
