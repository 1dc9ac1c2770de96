"""Maximum-diversification benchmark: xl-factorlasso against skfolio in the same process.

Data (as the skfolio study): five latent daily factors plus idiosyncratic noise, seed
``20240611 + n``, ``T = 2000`` observations, ``n`` in {50, 200, 1000}.

Configurations:

* ``a`` — defaults (sample covariance, long-only, fully invested);
* ``b`` — the study's constrained case: two group levels, five linear constraints, per-asset
  ``max_turnover=0.05`` around ``previous_weights = 1/n``, ``l1_coef=1e-3``;
* ``factor`` (n = 1000) — the factor-model covariance. Ours receives a ``FactorCovariance``
  built by OLS on the true factors (timed separately and included in "end to end"); skfolio uses
  ``TimeSeriesFactorModel(LoadingMatrixRegression(LinearRegression()))``, the same OLS model,
  and its time includes that regression.

Times are wall-clock medians of ``--repeats`` warm fits (one untimed warm-up each), ours and
skfolio interleaved so that machine load hits both alike. ``|dD|`` is the absolute difference of
the objective each library maximises, evaluated by one formula on both weight vectors: the
diversification ratio ``sigma'w / sqrt(w' Sigma w)`` on the covariance the optimiser used (for
``b`` the l1-penalised ratio ``sigma'w / (sqrt(w' Sigma w) + l1 |w|_1)``). Positive means ours is
higher.

Usage::

    python benchmarks/bench_maxdiv.py                 # n = 50, 200, 1000; a, b, factor
    python benchmarks/bench_maxdiv.py --sizes 50 200 --repeats 5
    python benchmarks/bench_maxdiv.py --repeat        # first vs repeated fit (no skfolio)
    python benchmarks/bench_maxdiv.py --dense         # dense path rows, n = 1000, 2000
    python benchmarks/bench_maxdiv.py --scaling --T 4000 --repeats 5   # ours, n = 1000, 2000
    python benchmarks/bench_maxdiv.py --factor        # factor covariance, per constraint family

``--dense`` compares dense optima (``make_data(dense=True)``: ~85% of the assets held) and
sparse ones (the default data, ~12%), long-only (the dense path of ``_dense.py``), and at
n = 1000 other families (``path`` says which ran): long-short bounds -0.05..0.1,
``max_turnover=0.05`` and ``transaction_costs=0.001`` around ``previous_weights = 1/n``, a
binding cap ``max_weights=0.002``, and configuration ``b``'s two group levels and five linear
constraints alone ("5 group constraints", dense and sparse optima).
``T = max(--T, 2 n)``. "np.cov" is the time of the sample covariance alone, which both
libraries compute; "held" counts our nonzero weights. ``dD`` is on the net ratio with costs.
"outside" is each weight vector's largest step outside its bounds and, with groups, outside
the five constraints, evaluated from the groups' definition (``group_excess``): a ratio can be
higher for a point a little outside them.

``--repeat`` times rolling refits of one estimator: the window of ``T`` observations moves one
day per fit. "first" is the first fit of a new estimator (builds and compiles the CVXPY
program); "repeat" is the median of ``--repeats`` later fits of the same estimator on the moved
windows (only Parameter values change); "fresh" is a new estimator on those same windows, and
``max|dw|`` the largest weight difference between the repeated and the fresh fits. Factor rows
time the fit only (the ``FactorCovariance`` of each window is built beforehand).

``--factor`` (default sizes 200, 1000, 2000; ``k = 5`` factors, the default data) times, per
constraint family of ``FACTOR_CASES``, three fits of the factor-model covariance, interleaved:
ours as shipped (``path``: the active-set solver on the factor form where the family allows,
``"factor"``), ours with that solver switched off (the CVXPY cone on ``B chol(Sigma_f)`` and
``sqrt(D)``, the path every factor covariance took before, with today's closed-form
pre-check), both given the ``FactorCovariance``
(OLS on the true factors, built beforehand), and skfolio's ``MaximumDiversification`` with
``TimeSeriesFactorModel(LoadingMatrixRegression(LinearRegression()))`` (the same OLS model,
its time including that regression; "ours+OLS" adds ours the time of
``FactorCovariance.from_ols``). ``D`` is the net ratio of each weight vector on the assembled
``B Sigma_f B' + D`` matrix, by one formula (``ratio``) independent of every solver;
"outside" is each weight vector's largest step outside ``[min_weights, max_weights]`` and the
group constraints, as for ``--dense``. Turnover is not checked there.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import warnings

import numpy as np
import pandas as pd

# this checkout's package, not an editable install of another checkout (a git worktree)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from xl_factorlasso.core.covariance import FactorCovariance
from xl_factorlasso.core.optimization import MaximumDiversification


def make_data(n: int, T: int = 2000, k: int = 5, dense: bool = False, seed: int | None = None
              ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Returns and factors. ``dense=True`` centres the loadings on 0 (sd 0.35 instead of
    N(0.5, 0.5)): no common market factor, so the optimum holds most assets (~85%).
    ``seed``: default ``20240611 + n``."""
    rng = np.random.default_rng(20240611 + n if seed is None else seed)
    factors = rng.normal(0.0003, 0.01, (T, k))
    loadings = rng.normal(0.0, 0.35, (n, k)) if dense else rng.normal(0.5, 0.5, (n, k))
    noise = rng.normal(0.0, 1.0, (T, n)) * rng.uniform(0.005, 0.03, n)
    index = pd.bdate_range("2015-01-01", periods=T)
    X = pd.DataFrame(
        factors @ loadings.T + noise, index=index, columns=[f"A{i:04d}" for i in range(n)]
    )
    F = pd.DataFrame(factors, index=index, columns=[f"F{j}" for j in range(k)])
    return X, F


def group_params(n: int) -> dict:
    """Configuration ``b``'s two group levels and five linear constraints."""
    return dict(
        groups=[
            [f"Sector{i % 5}" for i in range(n)],
            [["US", "EU", "ASIA"][i % 3] for i in range(n)],
        ],
        linear_constraints=[
            "Sector0 <= 0.30",
            "US >= 0.40",
            "EU <= 0.35",
            "Sector1 >= 0.5 * Sector2",
            "Sector3 + Sector4 <= 0.45",
        ],
    )


def group_excess(w: np.ndarray) -> float:
    """The largest violation of :func:`group_params`' five constraints by ``w``, evaluated
    here from the groups' definition (no solver's code)."""
    i = np.arange(w.size)
    sector = [w[i % 5 == k].sum() for k in range(5)]
    region = [w[i % 3 == k].sum() for k in range(3)]  # US, EU, ASIA
    return max(0.0, sector[0] - 0.30, 0.40 - region[0], region[1] - 0.35,
               0.5 * sector[2] - sector[1], sector[3] + sector[4] - 0.45)


def case_params(template: dict, n: int) -> dict:
    """A case's parameters: ``"1/n"`` is ``1 / n``; ``"groups": True`` adds
    :func:`group_params`."""
    params = {k: (1.0 / n if v == "1/n" else v) for k, v in template.items() if k != "groups"}
    return {**params, **group_params(n)} if template.get("groups") else params


def outside(w: np.ndarray, params: dict) -> float:
    """``w``'s largest step outside ``[min_weights, max_weights]`` and, with groups, outside
    :func:`group_params`' constraints."""
    lower, upper = params.get("min_weights", 0.0), params.get("max_weights", 1.0)
    step = float(np.max(np.maximum(np.maximum(lower - w, w - upper), 0.0)))
    return max(step, group_excess(w)) if "groups" in params else step


def config_params(name: str, n: int) -> dict:
    if name == "b":
        return dict(group_params(n), max_turnover=0.05, previous_weights=1.0 / n, l1_coef=1e-3)
    return {}


def ratio(w: np.ndarray, cov: np.ndarray, l1: float = 0.0, costs: float = 0.0,
          previous: float = 0.0) -> float:
    sigma = np.sqrt(np.diag(cov))
    numerator = sigma @ w - costs * np.abs(w - previous).sum()
    return float(numerator / (np.sqrt(w @ cov @ w) + l1 * np.abs(w).sum()))


def timed(fn, repeats: int) -> tuple[float, object]:
    fn()  # warm-up: imports, solver start-up, caches
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def interleaved(ours, theirs, repeats: int, warm: bool = True):
    if warm:
        ours(), theirs()
    t_ours, t_theirs, a, b = [], [], None, None
    for _ in range(repeats):
        start = time.perf_counter()
        a = ours()
        t_ours.append(time.perf_counter() - start)
        start = time.perf_counter()
        b = theirs()
        t_theirs.append(time.perf_counter() - start)
    return statistics.median(t_ours), statistics.median(t_theirs), a, b


def repeat_rows(sizes: list[int], T: int, repeats: int) -> list[tuple]:
    """First vs repeated fits of one estimator on rolling windows (see the module docstring)."""
    rows = []
    cases = [("factor k=5", 5, {}), ("factor k=10", 10, {}), ("sample", 5, {}),
             ("sample, min_weights=-0.05", 5, {"min_weights": -0.05})]
    for n in sizes:
        for label, k, params in cases:
            X, F = make_data(n, T + repeats + 2, k)
            windows = [slice(i, i + T) for i in range(repeats + 2)]  # the last: warm-up
            if label.startswith("factor"):
                inputs = [(X.iloc[w], {"covariance": FactorCovariance.from_ols(X.iloc[w],
                                                                                F.iloc[w])})
                          for w in windows]
            else:
                inputs = [(X.iloc[w], {}) for w in windows]
            # Imports, solver start-up, first use of this covariance type.
            MaximumDiversification(**params, **inputs[-1][1]).fit(inputs[-1][0])

            def fit(model, i, params=params, inputs=inputs):
                data, extra = inputs[i]
                start = time.perf_counter()
                model.set_params(**extra).fit(data)
                return time.perf_counter() - start, model.weights_.to_numpy()

            model = MaximumDiversification(**params)
            t_first, _ = fit(model, 0)
            t_repeat, t_fresh, dw = [], [], 0.0
            for i in range(1, repeats + 1):
                t, w = fit(model, i)
                t_repeat.append(t)
                t, w_fresh = fit(MaximumDiversification(**params), i)
                t_fresh.append(t)
                dw = max(dw, float(np.max(np.abs(w - w_fresh))))
            rows.append((n, label, t_first, statistics.median(t_repeat),
                         statistics.median(t_fresh), dw))
    return rows


# The --dense rows: (data, label, parameters, sizes it runs at; None = every size).
DENSE_CASES = [
    ("dense", "long-only", {}, None),
    ("sparse", "long-only", {}, None),
    ("dense", "max_weights 0.002", {"max_weights": 0.002}, {1000}),
    ("dense", "long-short -0.05..0.1", {"min_weights": -0.05, "max_weights": 0.1}, {1000}),
    ("dense", "turnover 0.05", {"max_turnover": 0.05, "previous_weights": "1/n"}, {1000}),
    ("dense", "costs 0.001", {"transaction_costs": 0.001, "previous_weights": "1/n"}, {1000}),
    ("dense", "5 group constraints", {"groups": True}, {1000}),
    ("sparse", "5 group constraints", {"groups": True}, {1000}),
]


def dense_rows(sizes: list[int], T: int, repeats: int):
    """Ours against skfolio on the rows of ``DENSE_CASES`` (see ``--dense`` in the module
    docstring), one row at a time; ``T = max(T, 2 n)`` observations."""
    from skfolio.optimization import MaximumDiversification as SkMaxDiv

    for n in sizes:
        n_obs = max(T, 2 * n)
        for data, label, template, only in DENSE_CASES:
            if only is not None and n not in only:
                continue
            params = case_params(template, n)
            X, _ = make_data(n, n_obs, dense=data == "dense")
            values = X.to_numpy()
            t_cov, _ = timed(lambda values=values: np.cov(values, rowvar=False), repeats)
            t_ours, t_sk, ours, sk = interleaved(
                lambda p=params, X=X: MaximumDiversification(**p).fit(X),
                lambda p=params, X=X: SkMaxDiv(**p).fit(X),
                repeats, warm=n < 2000,  # at n = 2000 a skfolio fit takes a minute
            )
            cov = X.cov().to_numpy()
            extra = {"costs": params["transaction_costs"], "previous": 1.0 / n} if (
                "transaction_costs" in params) else {}
            w, w_sk = ours.weights_.to_numpy(), np.asarray(sk.weights_)
            d_ours, d_sk = ratio(w, cov, **extra), ratio(w_sk, cov, **extra)
            yield (n, n_obs, data, label, ours.solve_.path, int(np.count_nonzero(w)), t_cov,
                   t_ours, t_sk, d_ours, d_sk, outside(w, params), outside(w_sk, params))


# The --factor rows: (label, parameters; "1/n" = 1 / n).
FACTOR_CASES = [
    ("long-only", {}),
    ("max_weights 0.01", {"max_weights": 0.01}),
    ("long-short -0.05..0.1", {"min_weights": -0.05, "max_weights": 0.1}),
    ("turnover 0.05", {"max_turnover": 0.05, "previous_weights": "1/n"}),
    ("costs 0.001", {"transaction_costs": 0.001, "previous_weights": "1/n"}),
    ("5 group constraints", {"groups": True}),
]


def factor_rows(sizes: list[int], T: int, repeats: int):
    """Ours (as shipped, and on the CVXPY cone) and skfolio on a factor covariance, per row of
    ``FACTOR_CASES`` (see ``--factor`` in the module docstring)."""
    from skfolio.optimization import MaximumDiversification as SkMaxDiv
    from skfolio.prior import LoadingMatrixRegression, TimeSeriesFactorModel
    from sklearn.linear_model import LinearRegression

    from xl_factorlasso.core.optimization import _dense

    def cone(params, fc):
        eligible = _dense.dense_eligible
        _dense.dense_eligible = lambda spec, save_problem=False: False
        try:
            return MaximumDiversification(covariance=fc, **params).fit()
        finally:
            _dense.dense_eligible = eligible

    for n in sizes:
        X, F = make_data(n, T)
        t_ols, fc = timed(lambda X=X, F=F: FactorCovariance.from_ols(X, F), repeats)
        cov = fc.covariance.to_numpy()
        for label, template in FACTOR_CASES:
            params = case_params(template, n)
            fits = {
                "ours": lambda p=params, fc=fc: MaximumDiversification(covariance=fc, **p).fit(),
                "cone": lambda p=params, fc=fc: cone(p, fc),
                "skfolio": lambda p=params, X=X, F=F: SkMaxDiv(
                    prior_estimator=TimeSeriesFactorModel(
                        loading_matrix_estimator=LoadingMatrixRegression(LinearRegression())),
                    **p).fit(X, factors=F),
            }
            for fit in fits.values():  # warm-up: imports, solver start-up
                fit()
            times = {name: [] for name in fits}
            out = {}
            for _ in range(repeats):
                for name, fit in fits.items():
                    start = time.perf_counter()
                    out[name] = fit()
                    times[name].append(time.perf_counter() - start)
            extra = {"costs": params["transaction_costs"], "previous": 1.0 / n} if (
                "transaction_costs" in params) else {}
            weights = {"ours": out["ours"].weights_.to_numpy(),
                       "cone": out["cone"].weights_.to_numpy(),
                       "skfolio": np.asarray(out["skfolio"].weights_)}
            d = {name: ratio(w, cov, **extra) for name, w in weights.items()}
            medians = {name: statistics.median(t) for name, t in times.items()}
            yield (n, label, out["ours"].solve_.path, medians["ours"], medians["cone"],
                   medians["ours"] + t_ols, medians["skfolio"], d["ours"],
                   d["ours"] - d["cone"], d["ours"] - d["skfolio"],
                   float(np.max(np.abs(weights["ours"] - weights["cone"]))),
                   {name: outside(w, params) for name, w in weights.items()})


def scaling_rows(sizes: list[int], T: int, repeats: int):
    """Our fit alone (no skfolio) at each size on the same ``T``: wall and CPU medians, and
    the time of ``np.cov``, so that the solve's own growth can be read off."""
    for data in ("dense", "sparse"):
        for n in sizes:
            X, _ = make_data(n, T, dense=data == "dense")
            values = X.to_numpy()
            t_cov, _ = timed(lambda values=values: np.cov(values, rowvar=False), repeats)
            MaximumDiversification().fit(X)
            walls, cpus = [], []
            for _ in range(repeats):
                start, cpu = time.perf_counter(), time.process_time()
                model = MaximumDiversification().fit(X)
                walls.append(time.perf_counter() - start)
                cpus.append(time.process_time() - cpu)
            yield (n, data, model.solve_.path, int(np.count_nonzero(model.weights_)), t_cov,
                   statistics.median(walls), statistics.median(cpus))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 200, 1000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--T", type=int, default=2000)
    parser.add_argument("--repeat", action="store_true",
                        help="time first vs repeated fits of one estimator (no skfolio)")
    parser.add_argument("--dense", action="store_true",
                        help="dense vs sparse optima, long-only/long-short/turnover/costs, "
                             "against skfolio (default sizes 1000 2000)")
    parser.add_argument("--scaling", action="store_true",
                        help="our fit alone at --sizes on one T (default sizes 1000 2000)")
    parser.add_argument("--factor", action="store_true",
                        help="factor covariance per constraint family: ours, ours on the "
                             "CVXPY cone, skfolio (default sizes 200 1000 2000)")
    args = parser.parse_args()

    if args.factor:
        import skfolio

        warnings.filterwarnings("ignore", category=UserWarning)
        sizes = args.sizes if args.sizes != [50, 200, 1000] else [200, 1000, 2000]
        print(f"python {platform.python_version()}, skfolio {skfolio.__version__}, "
              f"{platform.machine()}, T={args.T}, k=5, median of {args.repeats} fits "
              "(interleaved, one warm-up each)\n")
        print("| n | constraints | path | ours (s) | cone (s) | cone / ours | ours+OLS (s) "
              "| skfolio (s) | skfolio / ours+OLS | D ours | D ours - cone | D ours - skfolio "
              "| max|w ours - w cone| | outside ours / cone / skfolio |")
        print("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for (n, label, path, t_ours, t_cone, t_ols, t_sk, d_ours, d_cone, d_sk,
             dw, outside) in factor_rows(sizes, args.T, args.repeats):
            bounds = " / ".join(f"{outside[k]:.0e}" for k in ("ours", "cone", "skfolio"))
            print(f"| {n} | {label} | {path} | {t_ours:.4f} | {t_cone:.4f} | "
                  f"{t_cone / t_ours:.1f}x | {t_ols:.4f} | {t_sk:.3f} | {t_sk / t_ols:.1f}x | "
                  f"{d_ours:.6f} | {d_cone:+.1e} | {d_sk:+.1e} | {dw:.1e} | {bounds} |",
                  flush=True)
        return

    if args.scaling:
        warnings.filterwarnings("ignore", category=UserWarning)
        sizes = args.sizes if args.sizes != [50, 200, 1000] else [1000, 2000]
        print(f"python {platform.python_version()}, {platform.machine()}, T={args.T}, median "
              f"of {args.repeats} warm fits\n")
        print("| n | optimum | path | held | np.cov (s) | fit wall (s) | fit CPU (s) |")
        print("|---:|---|---|---:|---:|---:|---:|")
        for n, data, path, held, t_cov, wall, cpu in scaling_rows(sizes, args.T, args.repeats):
            print(f"| {n} | {data} | {path} | {held} | {t_cov:.3f} | {wall:.3f} | {cpu:.3f} |",
                  flush=True)
        return

    if args.dense:
        import skfolio

        warnings.filterwarnings("ignore", category=UserWarning)
        sizes = args.sizes if args.sizes != [50, 200, 1000] else [1000, 2000]
        print(f"python {platform.python_version()}, skfolio {skfolio.__version__}, "
              f"{platform.machine()}, T=max({args.T}, 2n), median of {args.repeats} fits "
              "(interleaved; no warm-up fit at n >= 2000)\n")
        print("| n | T | optimum | constraints | path | held | np.cov (s) | ours (s) "
              "| skfolio (s) | speed-up | D ours | dD (ours - skfolio) "
              "| outside ours / skfolio |")
        print("|---:|---:|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
        for (n, n_obs, data, label, path, held, t_cov, t_ours, t_sk, d_ours,
             d_sk, out_ours, out_sk) in dense_rows(sizes, args.T, args.repeats):
            print(f"| {n} | {n_obs} | {data} | {label} | {path} | {held} | {t_cov:.3f} | "
                  f"{t_ours:.3f} | {t_sk:.3f} | {t_sk / t_ours:.1f}x | {d_ours:.6f} | "
                  f"{d_ours - d_sk:+.1e} | {out_ours:.0e} / {out_sk:.0e} |", flush=True)
        return

    if args.repeat:
        warnings.filterwarnings("ignore", category=UserWarning)
        sizes = [n for n in args.sizes if n >= 200] or args.sizes
        print(f"python {platform.python_version()}, {platform.machine()}, T={args.T}, "
              f"median of {args.repeats} repeated fits\n")
        print("| n | covariance | first fit (s) | repeated fit (s) | fresh fit (s) | speed-up "
              "| max|dw| |")
        print("|---:|---|---:|---:|---:|---:|---:|")
        for n, label, first, again, fresh, dw in repeat_rows(sizes, args.T, args.repeats):
            print(f"| {n} | {label} | {first:.4f} | {again:.4f} | {fresh:.4f} | "
                  f"{fresh / again:.1f}x | {dw:.1e} |")
        return

    import skfolio
    from skfolio.optimization import MaximumDiversification as SkMaxDiv
    from skfolio.prior import LoadingMatrixRegression, TimeSeriesFactorModel
    from sklearn.linear_model import LinearRegression

    warnings.filterwarnings("ignore", category=UserWarning)
    print(
        f"python {platform.python_version()}, skfolio {skfolio.__version__}, "
        f"{platform.machine()}, T={args.T}, median of {args.repeats} warm fits\n"
    )
    rows = []
    for n in args.sizes:
        X, F = make_data(n, args.T)
        cov = X.cov().to_numpy()
        for cfg in ("a", "b"):
            params = config_params(cfg, n)
            t_ours, t_sk, ours, sk = interleaved(
                lambda p=params, X=X: MaximumDiversification(**p).fit(X),
                lambda p=params, X=X: SkMaxDiv(**p).fit(X),
                args.repeats,
            )
            l1 = params.get("l1_coef", 0.0)
            d_ours, d_sk = ratio(ours.weights_.to_numpy(), cov, l1), ratio(sk.weights_, cov, l1)
            rows.append((n, cfg, "sample", t_ours, t_sk, d_ours, d_sk))
        if n == max(args.sizes):
            t_ols, fc = timed(lambda X=X, F=F: FactorCovariance.from_ols(X, F), args.repeats)
            prior = TimeSeriesFactorModel(
                loading_matrix_estimator=LoadingMatrixRegression(LinearRegression())
            )
            t_ours, t_sk, ours, sk = interleaved(
                lambda fc=fc, X=X: MaximumDiversification(covariance=fc).fit(X),
                lambda prior=prior, X=X, F=F: SkMaxDiv(prior_estimator=prior).fit(X, factors=F),
                args.repeats,
            )
            fcov = fc.covariance.to_numpy()
            d_ours, d_sk = ratio(ours.weights_.to_numpy(), fcov), ratio(sk.weights_, fcov)
            rows.append((n, "factor", "FactorCovariance", t_ours, t_sk, d_ours, d_sk))
            rows.append((n, "factor", "OLS + FactorCovariance", t_ours + t_ols, t_sk, d_ours, d_sk))

    print("| n | config | covariance | ours (s) | skfolio (s) | speed-up | D ours "
          "| dD (ours - skfolio) |")
    print("|---:|---|---|---:|---:|---:|---:|---:|")
    for n, cfg, kind, t_ours, t_sk, d_ours, d_sk in rows:
        print(
            f"| {n} | {cfg} | {kind} | {t_ours:.4f} | {t_sk:.4f} | {t_sk / t_ours:.1f}x | "
            f"{d_ours:.6f} | {d_ours - d_sk:+.1e} |"
        )


if __name__ == "__main__":
    main()
