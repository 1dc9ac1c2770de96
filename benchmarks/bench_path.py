"""Regularisation path benchmark: ``LassoModel.fit_reg_lambda_path`` against the field's paths.

Grid: ``--n-lambdas`` (50) values geometric from ``lambda_max`` down to ``1e-3 lambda_max``.
Data: :func:`~xl_factorlasso.core.datasets.make_factor_panel` (the generator of
``bench_fit.py`` / ``bench_engine.py``), no missing values, ``span=None``, ``warmup_period=None``.
Sizes ``large`` (2000, 30, 500) and ``xlarge`` (5000, 50, 2000) (T, M, N).

Methods, each timed from the data (numpy or pandas) to the coefficients of every lambda:

* ``path``: ``LassoModel(...).fit_reg_lambda_path(x, y, lambdas)`` (preparation, one solver,
  warm starts, 50 fully installed models);
* ``fits``: one independent ``LassoModel(reg_lambda=lam).fit(x, y)`` (what the public API
  offered before the path);
* scikit-learn, on centred data (our intercept == centring). Plain LASSO: our objective
  ``(1/T)||Y - XB'||^2 + lambda |B|_1`` is twice scikit-learn's at ``alpha = lambda / 2``,
  separable over responses, so ``lasso_path(Xc, yc_k, alphas, precompute=Gram, Xy=Xc'yc_k)``
  per response (``sklearn Gram``: the Gram formed once). FCGL with one cluster (group weight
  ``sqrt(N)``) is twice ``MultiTaskLasso`` at ``alpha = lambda sqrt(N) / 2``: a warm-started
  ``MultiTaskLasso(warm_start=True)`` loop, on the data (``sklearn``, size ``large`` only:
  it is minutes at ``xlarge``) and on the Cholesky-reduced design (``sklearn red``);
* celer (if installed): ``celer_path(..., "lasso")`` per response and celer's multi-task path
  (``celer.homotopy.mtl_path``, what its ``MultiTaskLasso`` runs), both on the reduced design
  (``celer red``).

"Reduced design" (``red``): with ``R`` the Cholesky factor of ``Xc'Xc`` (``R'R = Xc'Xc``, M x M)
and ``Yr = R'^-1 Xc'Yc``, ``||Yc - Xc B'||^2 = ||Yr - R B'||^2 + const``: the same minimiser on
M rows. A solver on M rows divides its loss by M instead of T, so its alpha is multiplied by
``T / M``. The reduction (centring, Gram, Cholesky, triangular solve) is part of its time.

Timing: the methods run interleaved (path, fits, peer, ..., path, fits, peer, ...), ``--repeats``
rounds; the table shows medians of CPU time (``time.process_time``, all threads of this
process, so BLAS threads count; less sensitive than wall time to other jobs on a shared
machine) and of wall time, and the ratio ``method CPU / path CPU``.

Certificates: every answer of every method is checked with OUR certificate,
:meth:`~xl_factorlasso.core.linear_model._engine.FastEngine.relative_gap` on the statistics of
``LassoModel._setup`` (the same function certifies our fits; an independent checker is
``benchmarks/bench_peers.py``'s). The ``max gap`` column is the largest relative duality gap over
the grid (<= 1e-8 means the answer is certified as ours are). The peers' tolerances
(``PEER_TOLS``, or ``--peer-tol``) are the loosest that reach that level; the column shows
whether they did.

Usage::

    python benchmarks/bench_path.py                          # both sizes, both models
    python benchmarks/bench_path.py --sizes large --repeats 5
    python benchmarks/bench_path.py --configs lasso --methods path,fits,sklearn_gram
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
from scipy.linalg import cho_factor, solve_triangular

# this checkout's package, not an installed one
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from xl_factorlasso import LassoModel  # noqa: E402
from xl_factorlasso.core.datasets import make_factor_panel  # noqa: E402
from xl_factorlasso.core.linear_model._engine import FastEngine  # noqa: E402

SIZES = {"large": (2000, 30, 500), "xlarge": (5000, 50, 2000)}
CONFIGS = {
    "lasso": ("LASSO (plain)", dict(model_type="LASSO")),
    "fcgl_one": ("FCGL n_clusters=1 = MultiTaskLasso",
                 dict(model_type="FACTOR_CLUSTER_GROUP_LASSO", n_clusters=1)),
}
METHODS = ("path", "fits", "sklearn_gram", "sklearn", "sklearn_red", "celer_red")
# The peers' tolerances: per (method, config), the loosest power of ten at which every answer
# of the 50-lambda grid had a relative gap <= 1e-8 at size "large" (measured: sklearn Gram
# 7e-9 at 1e-7 but 7e-8 at 1e-6; celer lasso 2e-9 at 1e-7; the multi-task solvers 2e-7 at
# 1e-7, 3e-10 / 4e-9 at 1e-8). The "max gap" column shows whether they hold at every size.
PEER_TOLS = {("sklearn_gram", "lasso"): 1e-7, ("celer_red", "lasso"): 1e-7,
             ("sklearn", "fcgl_one"): 1e-8, ("sklearn_red", "fcgl_one"): 1e-8,
             ("celer_red", "fcgl_one"): 1e-8}


def _centred(x: np.ndarray, y: np.ndarray):
    return x - x.mean(axis=0), y - y.mean(axis=0)


def _reduced(x: np.ndarray, y: np.ndarray):
    """``(R, Yr)`` with ``R'R = Xc'Xc`` and ``R'Yr = Xc'Yc`` (see the module docstring)."""
    xc, yc = _centred(x, y)
    r = cho_factor(xc.T @ xc, lower=False)[0]
    r = np.triu(r)
    return r, solve_triangular(r, xc.T @ yc, trans="T", lower=False)


# ---------------------------------------------------------------------- the methods
# Each takes (x_df, y_df, x, y, kw, lambdas, tol) and returns the coefficients (L, N, M).
def run_path(xdf, ydf, x, y, kw, lambdas, tol):
    models = LassoModel(warmup_period=None, **kw).fit_reg_lambda_path(xdf, ydf, lambdas)
    return np.stack([m.coef_.to_numpy() for m in models])


def run_fits(xdf, ydf, x, y, kw, lambdas, tol):
    return np.stack([LassoModel(warmup_period=None, reg_lambda=lam, **kw).fit(xdf, ydf)
                     .coef_.to_numpy() for lam in lambdas])


def _sk_multitask(x, y, alphas, tol, fit_intercept):
    from sklearn.linear_model import MultiTaskLasso

    model = MultiTaskLasso(warm_start=True, fit_intercept=fit_intercept, tol=tol,
                           max_iter=100_000)
    out = []
    for alpha in alphas:
        model.set_params(alpha=alpha).fit(x, y)
        out.append(model.coef_.copy())
    return np.stack(out)


def run_sklearn_gram(xdf, ydf, x, y, kw, lambdas, tol):
    from sklearn.linear_model import lasso_path

    xc, yc = _centred(x, y)
    gram = xc.T @ xc
    xy = np.ascontiguousarray((xc.T @ yc).T)  # row k: X'y_k
    xc, yct = np.asfortranarray(xc), np.ascontiguousarray(yc.T)
    out = np.empty((len(lambdas), y.shape[1], x.shape[1]))
    alphas = np.asarray(lambdas) / 2
    for k in range(y.shape[1]):
        # check_input=False: scikit-learn's own Lasso.fit calls its path so per response
        _, coefs, _ = lasso_path(xc, yct[k], alphas=alphas, precompute=gram, Xy=xy[k],
                                 tol=tol, max_iter=100_000, check_input=False)
        out[:, k, :] = coefs.T
    return out


def run_sklearn(xdf, ydf, x, y, kw, lambdas, tol):
    alphas = np.asarray(lambdas) * np.sqrt(y.shape[1]) / 2
    return _sk_multitask(x, y, alphas, tol, fit_intercept=True)


def run_sklearn_red(xdf, ydf, x, y, kw, lambdas, tol):
    r, yr = _reduced(x, y)
    t_rows, m = x.shape
    alphas = np.asarray(lambdas) * np.sqrt(y.shape[1]) / 2 * t_rows / m
    return _sk_multitask(r, yr, alphas, tol, fit_intercept=False)


def run_celer_red(xdf, ydf, x, y, kw, lambdas, tol):
    import celer

    r, yr = _reduced(x, y)
    t_rows, m = x.shape
    if kw["model_type"] == "LASSO":
        alphas = np.asarray(lambdas) / 2 * t_rows / m
        out = np.empty((len(lambdas), y.shape[1], m))
        for k in range(y.shape[1]):
            _, coefs, _ = celer.celer_path(r, yr[:, k], "lasso", alphas=alphas, tol=tol)
            out[:, k, :] = coefs.T
        return out
    # celer's MultiTaskLasso estimator fails on scikit-learn >= 1.6 (no _validate_data);
    # its path function is what the estimator calls
    from celer.homotopy import mtl_path

    alphas = np.asarray(lambdas) * np.sqrt(y.shape[1]) / 2 * t_rows / m  # descending
    _, coefs, _ = mtl_path(r, yr, alphas=alphas, tol=tol)  # (N, M, L)
    return np.moveaxis(coefs, 2, 0)


RUNNERS = {"path": run_path, "fits": run_fits, "sklearn_gram": run_sklearn_gram,
           "sklearn": run_sklearn, "sklearn_red": run_sklearn_red, "celer_red": run_celer_red}
LABELS = {"path": "ours: fit_reg_lambda_path", "fits": "ours: one fit per lambda",
          "sklearn_gram": "sklearn lasso_path, Gram", "sklearn": "sklearn MultiTaskLasso loop",
          "sklearn_red": "sklearn MultiTaskLasso loop, red", "celer_red": "celer, red"}


def applicable(method: str, config: str, size: str) -> str | None:
    """None when ``method`` runs on ``(config, size)``, "" when it does not apply to the
    model, else why it is skipped."""
    if method == "sklearn_gram" and config != "lasso":
        return ""
    if method in ("sklearn", "sklearn_red") and config != "fcgl_one":
        return ""  # plain LASSO: the Gram path is scikit-learn's best
    if method == "sklearn" and size != "large":
        return "minutes at this size (the reduced design is its fast variant)"
    if method == "celer_red":
        try:
            import celer  # noqa: F401
        except ImportError:
            return "celer not installed"
    return None


def bench(size: str, config: str, methods, repeats: int, n_lambdas: int, tols: dict):
    t_rows, m, n = SIZES[size]
    label, kw = CONFIGS[config]
    panel = make_factor_panel(t_rows, m, n, seed=0)
    xdf, ydf = panel.x, panel.y
    x, y = xdf.to_numpy(dtype=float), ydf.to_numpy(dtype=float)
    template = LassoModel(warmup_period=None, **kw)
    setup = template._setup(xdf, ydf)
    engine = FastEngine(setup.stats, setup.spec)
    lambdas = list(np.geomspace(setup.lambda_max, 1e-3 * setup.lambda_max, n_lambdas))
    runnable, skipped = [], {}
    for method in methods:
        why = applicable(method, config, size)
        if why is None:
            runnable.append(method)
        elif why:
            skipped[method] = why
    cpu = {k: [] for k in runnable}
    wall = {k: [] for k in runnable}
    answers = {}
    for _ in range(repeats):
        for method in runnable:  # interleaved: every method once per round
            run = RUNNERS[method]
            t0, c0 = time.perf_counter(), time.process_time()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # peers' convergence warnings: the gap decides
                coefs = run(xdf, ydf, x, y, kw, lambdas, tols.get((method, config)))
            cpu[method].append(time.process_time() - c0)
            wall[method].append(time.perf_counter() - t0)
            answers[method] = coefs
    rows = []
    base = statistics.median(cpu["path"]) if "path" in cpu else float("nan")
    for method in runnable:
        coefs = answers[method]
        gaps = [engine.relative_gap(coefs[j].reshape(n, m), lam)
                for j, lam in enumerate(lambdas)]
        c, w = statistics.median(cpu[method]), statistics.median(wall[method])
        rows.append((label, size, method, c, w, c / base, max(gaps), tols.get((method, config))))
    for method, why in skipped.items():
        rows.append((label, size, method, None, None, None, None, why))
    return rows


def table(rows) -> str:
    lines = ["| model (T,M,N) | method | CPU s | wall s | CPU / path | max gap | tol / note |",
             "|---|---|---:|---:|---:|---:|---|"]
    for label, size, method, c, w, ratio, gap, note in rows:
        where = f"{label} {SIZES[size]}"
        if c is None:
            lines.append(f"| {where} | {LABELS[method]} | - | - | - | - | skipped: {note} |")
            continue
        lines.append(f"| {where} | {LABELS[method]} | {c:.3f} | {w:.3f} | {ratio:.2f}x | "
                     f"{gap:.1e} | {'' if note is None else f'tol {note:g}'} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="large,xlarge")
    parser.add_argument("--configs", default="lasso,fcgl_one")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n-lambdas", type=int, default=50)
    parser.add_argument("--peer-tol", type=float, default=None,
                        help="one tolerance for every peer (default: PEER_TOLS)")
    args = parser.parse_args(argv)
    tols = dict(PEER_TOLS) if args.peer_tol is None else {
        key: args.peer_tol for key in PEER_TOLS}
    print(f"# bench_path: {args.n_lambdas} lambdas, lambda_max .. 1e-3 lambda_max, "
          f"{args.repeats} interleaved rounds, medians; {platform.machine()}, "
          f"python {platform.python_version()}, {os.cpu_count()} cpus")
    rows = []
    for size in args.sizes.split(","):
        for config in args.configs.split(","):
            done = len(rows)
            rows += bench(size, config, args.methods.split(","), args.repeats, args.n_lambdas,
                          tols)
            print(table(rows[done:]), flush=True)
    print("\n" + table(rows))


if __name__ == "__main__":
    main()
