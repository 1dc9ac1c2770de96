"""Random panels: how long our fits take and whether they answer.

Wide panels at small penalties (the default, ``--panels wide``): ``LassoModelCV``'s default grid
reaches 1e-6 of ``lambda_max`` and below, and on a panel with more factors than rows that is
where the proximal iterations crawl. ``bench_wide.py`` measures three fixed panels at the
default penalty; this draws ``--count`` random problems from ``--seed`` on, each:

* a panel from :func:`~xl_factorlasso.core.datasets.make_factor_panel` with ``T`` rows (20 to
  129), ``M`` factors (``T + 5`` to ``3 T + 39``: every Gram singular) and ``N`` responses (2 to
  11), seeded by the problem's number;
* one of ``--models`` (GROUP_LASSO gets two user groups of responses, alternating;
  ``fcgl_one`` is FCGL with ``n_clusters=1``, MultiTaskLasso's geometry with a box);
* one box: the panel's sign matrix, the sign matrix and its prior, ``nonneg``, or none (each a
  quarter); ``l1_weight = 0.1`` with probability 0.4;
* ``reg_lambda`` a fraction ``10^U(-7.5, -4)`` of the model's ``lambda_max``.

Ordinary panels (``--panels ordinary``, more rows than factors, every penalty): ``T``
log-uniform in 30 to 800 rows, ``M`` from 2 to ``min(60, T - 5)``, ``N`` from 1 to 80 (one
response is a LASSO whatever the model); models LASSO, GROUP_LASSO (2 to 4 user groups,
alternating), HCGL and FCGL (one cluster with probability 0.25); the same four boxes;
``l1_weight`` 0.1 or 0.5 with probability 0.3 for the group models; ``reg_lambda`` a fraction
``10^U(-7, 0)`` of ``lambda_max``.

Panels around the square (``--panels mixed``, a sweep of stop 43): ``T`` 20 to 79 rows, ``M``
from ``T / 2`` to ``3 T`` (wide or not), ``N`` 3 to 25 responses; models FCGL (found clusters
or one), HCGL; the wide panels' boxes and L1 share; ``reg_lambda`` a fraction
``10^U(-6.5, -2)`` of ``lambda_max``.

Each is fitted once as a user calls it (``LassoModel(...).fit`` on DataFrames, engine "auto"),
timed in CPU seconds with BLAS at one thread, and its answer judged by ``benchmarks/_gap.py``
(a relative duality gap written from the formulation, independent of the engine's
certificate); a fit that raises is counted as failed. The same command with ``PYTHONPATH`` on
a checkout of older code times that code on the same problems. No number here is asserted
anywhere; the tests check correctness.

Usage::

    python benchmarks/bench_wide_random.py                        # 40 HCGL / GROUP_LASSO fits
    python benchmarks/bench_wide_random.py --count 20 --seed 7000 --models hcgl --list
    python benchmarks/bench_wide_random.py --panels ordinary --count 400 --seed 1
    python benchmarks/bench_wide_random.py --panels mixed --count 300 --seed 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import warnings

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _gap import GapProblem, bounds_from_signs, relative_gap  # noqa: E402
from bench_peers import _cpu, context, installed_peers  # noqa: E402

MODELS = {"hcgl": "HIERARCHICAL_CLUSTER_GROUP_LASSO", "group_rows": "GROUP_LASSO",
          "fcgl": "FACTOR_CLUSTER_GROUP_LASSO", "fcgl_one": "FACTOR_CLUSTER_GROUP_LASSO",
          "lasso": "LASSO"}
DEFAULT_MODELS = {"wide": "hcgl,group_rows", "ordinary": "lasso,group_rows,hcgl,fcgl",
                  "mixed": "fcgl,fcgl_one,hcgl"}
BOXES = ("signs", "signs+prior", "nonneg", "none")
TARGET_GAP = 1e-8
# reg_lambda's fraction of lambda_max: 10^U(lo, hi)
FRACTIONS = {"wide": (-7.5, -4), "ordinary": (-7, 0), "mixed": (-6.5, -2)}


def draw(number: int, models: list[str], panels: str = "wide"):
    """Problem ``number``: ``(panel, LassoModel arguments, description)``."""
    from xl_factorlasso import LassoModel, LassoModelType, make_factor_panel

    rng = np.random.default_rng(number)
    wide = panels in ("wide", "mixed")  # (mixed: the wide panels' boxes, shares and clusters)
    if panels == "wide":
        t = int(rng.integers(20, 130))
        m = int(rng.integers(t + 5, 3 * t + 40))
        n = int(rng.integers(2, 12))
    elif panels == "mixed":
        t = int(rng.integers(20, 80))
        m = int(rng.integers(t // 2, 3 * t))
        n = int(rng.integers(3, 26))
    else:
        t = int(round(np.exp(rng.uniform(np.log(30), np.log(800)))))
        m = int(rng.integers(2, min(60, t - 5) + 1))
        n = int(rng.integers(1, 81))
    panel = make_factor_panel(t, m, n, seed=number)
    model = models[int(rng.integers(len(models)))]
    kw: dict = dict(model_type=getattr(LassoModelType, MODELS[model]), engine="auto")
    box = BOXES[int(rng.integers(len(BOXES)))]
    if box.startswith("signs"):
        kw["factors_beta_loading_signs"] = panel.signs
    if box == "signs+prior":
        kw["factors_beta_prior"] = panel.prior
    if box == "nonneg":
        kw["nonneg"] = True
    if wide and rng.random() < 0.4:
        kw["l1_weight"] = 0.1
    elif not wide and model != "lasso" and rng.random() < 0.3:
        kw["l1_weight"] = (0.1, 0.5)[int(rng.integers(2))]
    if (model == "fcgl" and not wide and rng.random() < 0.25) or model == "fcgl_one":
        kw["n_clusters"] = 1
    if model == "group_rows":
        groups = 2 if wide else int(rng.integers(2, 5))
        kw["group_data"] = pd.Series([f"g{k % groups}" for k in range(n)],
                                     index=panel.y.columns)
    fraction = float(10 ** rng.uniform(*FRACTIONS[panels]))
    kw["reg_lambda"] = fraction * LassoModel(**kw).lambda_max(panel.x, panel.y)
    share = f" l1w={kw['l1_weight']:g}" if "l1_weight" in kw else ""
    what = f"{model}{' one cluster' if 'n_clusters' in kw else ''} {box}{share}"
    return panel, kw, dict(number=number, shape=(t, m, n), what=what, fraction=fraction)


def gap_problem(panel, kw, model) -> GapProblem:
    """The independent problem of a fitted ``model`` (its clusters, the rows' weights
    ``sqrt(|g| / G)``, group_penalty "normalized"; a LASSO, or one response: cells)."""
    x, y = panel.x.to_numpy(), panel.y.to_numpy()
    xc, yc = x - x.mean(axis=0), y - y.mean(axis=0)
    n, m = y.shape[1], x.shape[1]
    name = kw["model_type"].name
    geometry = "cell" if name == "LASSO" or n == 1 else \
        "block" if "FACTOR" in name else "row"
    codes = weight = None
    if geometry != "cell":
        labels = model.clusters_.loc[panel.y.columns].to_numpy()
        codes, uniques = pd.factorize(labels)
        weight = np.sqrt(np.bincount(codes).astype(float) / len(uniques))
    prior = lower = upper = None
    if "factors_beta_loading_signs" in kw:
        signs = kw["factors_beta_loading_signs"].loc[panel.y.columns, panel.x.columns]
        lower, upper = bounds_from_signs(signs.to_numpy(dtype=float), (n, m))
    elif kw.get("nonneg"):
        lower, upper = bounds_from_signs(None, (n, m), nonneg=True)
    if "factors_beta_prior" in kw:
        prior = kw["factors_beta_prior"].loc[panel.y.columns, panel.x.columns]
        prior = np.nan_to_num(prior.to_numpy(dtype=float))
    return GapProblem(xc, yc, kw["reg_lambda"], geometry, codes, weight,
                      kw.get("l1_weight", 0.0) if geometry != "cell" else 0.0,
                      prior, lower, upper)


def run(number: int, models: list[str], panels: str = "wide") -> dict:
    from xl_factorlasso import LassoModel

    panel, kw, row = draw(number, models, panels)
    fitted = LassoModel(**kw)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            seconds, _ = _cpu(lambda: fitted.fit(panel.x, panel.y))
    except Exception as exc:  # a fit that fails is a result here
        row.update(seconds=float("nan"), solver=f"{type(exc).__name__}: {exc}"[:100],
                   gap=float("nan"), failed=True)
        return row
    coef = fitted.coef_.loc[panel.y.columns, panel.x.columns].to_numpy()
    row.update(seconds=seconds, solver=str(fitted.solver_), failed=False,
               gap=relative_gap(gap_problem(panel, kw, fitted), coef))
    return row


def spread(times: list[float]) -> str:
    """``median | 90th percentile | max | total`` of CPU seconds, as the summary rows print
    them (also ``bench_sweep.py``'s)."""
    times = sorted(times)
    p90 = times[min(len(times) - 1, int(round(0.9 * (len(times) - 1))))]
    return (f"{statistics.median(times):.3f} | {p90:.3f} | {times[-1]:.3f} | "
            f"{sum(times):.1f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=40)
    parser.add_argument("--seed", type=int, default=5000, help="the first problem's number")
    parser.add_argument("--panels", choices=("wide", "ordinary", "mixed"), default="wide")
    parser.add_argument("--models", default=None,
                        help=f"comma list of {list(MODELS)} (default: {DEFAULT_MODELS})")
    parser.add_argument("--list", action="store_true", help="print every problem's row")
    args = parser.parse_args(argv)
    models = (args.models or DEFAULT_MODELS[args.panels]).split(",")
    from threadpoolctl import threadpool_limits

    rows = []
    with threadpool_limits(limits=1):
        machine = context(installed_peers())
        for number in range(args.seed, args.seed + args.count):
            rows.append(run(number, models, args.panels))
            print(f"[{number}] done", file=sys.stderr, flush=True)
    if args.list:
        print("| problem | (T,M,N) | model | lambda / lambda_max | CPU s | answered by | gap |")
        print("|---:|---|---|---:|---:|---|---:|")
        for r in rows:
            print(f"| {r['number']} | {r['shape']} | {r['what']} | {r['fraction']:.1e} | "
                  f"{r['seconds']:.3f} | {r['solver']} | {r['gap']:.0e} |")
        print()
    ok = [r for r in rows if not r["failed"]]
    times = [r["seconds"] for r in ok]
    above = sum(r["gap"] > TARGET_GAP for r in ok)
    print("| problems | failed | gap > 1e-8 | median s | 90th percentile s | max s | total s "
          "| over 1 s |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    if times:
        print(f"| {len(rows)} | {len(rows) - len(ok)} | {above} | {spread(times)} | "
              f"{sum(t > 1.0 for t in times)} |")
    print(f"\nproblems {args.seed}..{args.seed + args.count - 1}, {args.panels} panels, models "
          f"{models}; CPU seconds "
          f"of one fit each (engine 'auto'); gap: benchmarks/_gap.py.\n{machine}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
