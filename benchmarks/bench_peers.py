"""The fast engine against scikit-learn, celer and skglm on equal objectives (issue 14).

For each model and size (T, M, N): our ``LassoModel(engine="fast").fit(x, y)`` as a user calls
it (DataFrames in, everything included) and every peer that can express the same objective, on
the same data, timed interleaved (every contestant once a round, in a new random order each
round, drawn from ``--seed``), medians of ``--repeats`` CPU times (``time.process_time``; BLAS
at one thread for everyone via threadpoolctl, and the peers are single-threaded, so CPU time is
the work done, and it is less disturbed by other jobs on a shared machine than wall time).

Why the order is drawn. Until stop 44 each round ran the engine, then the peers' variants in a
fixed order, so every variant after the first of its library ran with that library's code and
buffers in the caches, and the engine always ran after skglm. At (500,10,50), LASSO, timed each
after all the others had run: ours 2.54 ms, scikit-learn's reduced variant 1.94 ms; each run
twice in a row: 1.57 and 1.43 ms (a scratch measurement, stop 44). A drawn order gives every
contestant the same chance of a warm or a cold start.

Equal objectives. Ours, with ``span=None``, is ``(1/T)||Y - X B' - 1 a'||^2 + lambda P(B - B0)``
and its intercept is the same as centring (docs/formulation.md). Every peer gets the centred
data (centring is inside its timed call) in one or more *variants*, each timed, the fastest
reported as that peer's time:

* ``raw``: the centred T x M design;
* ``gram`` (scikit-learn ``Lasso``): ``precompute=X'X``;
* ``red``: the Cholesky-reduced design ``X~ = L'`` (``L L' = X'X``, M x M) and ``y~ = L^-1 X'y``,
  the same objective up to a constant (only when M < T).

The peers' losses are ``(1/(2n))||y - X w||^2`` on their n design rows, so their penalty weight
is ``alpha = lambda w T / (2 n)``. Models and how each peer expresses them:

* LASSO: scikit-learn ``Lasso`` (multi-output at once), celer and skglm ``Lasso`` per response.
* LASSO nonneg: the special case of sign constraints a peer supports (``positive=True``).
* LASSO on a wide design (M >= T, a singular Gram): also scikit-learn ``LassoLars`` per
  response on the raw design (kind ``lars``), the exact path in lambda, which our engine
  follows there at small penalties (docs/formulation.md); it has no tolerance to tune.
* FCGL (one cluster: ``MultiTaskLasso`` at ``alpha = lambda sqrt(N) T/(2n)``; found clusters: one
  ``MultiTaskLasso`` per cluster g with its weight ``sqrt(|g|/G)``), every peer.
* GROUP_LASSO rows / HCGL: a row norm is one group of all M loadings of a response, so each
  response is a group lasso with one group: celer and skglm ``GroupLasso`` per response
  (scikit-learn has none). Sparse-group (``l1_weight``): skglm's ``WeightedL1GroupL2``.
* HCGL nonneg: the special case of signs for groups, skglm ``GroupLasso(positive=True)``.
* Signs with both signs and a prior centre (LASSO+sign+prior, HCGL l1w=0.1+sign+prior, FCGL
  one cluster+sign+prior), FCGL with one non-negative cluster (``MultiTaskLasso`` has no
  ``positive``), and sparse-group FCGL (``fcgl_l1``, found clusters, ``l1_weight=0.1``): no
  peer expresses them; the CVXPY reference (``engine="cvxpy"``) is the comparison, and the
  LASSO nonneg row the peers' special case.

Clusters (FCGL, HCGL) are those our fit finds (Ward, cutoff 0.5); the peers are given them, so
their times exclude the clustering that ours includes. The last column puts both on an equal
footing: the CPU seconds of our fit spent in cluster discovery (``LassoModel._discover_clusters``,
timed inside the same fits), our time without them, and the best peer's time over that.

Accuracy. Every answer, ours included, is judged by ``benchmarks/_gap.py``: a relative duality
gap written from the formulation, independent of the engine's certificate. Each peer variant's
tolerance is tightened (1e-5, 1e-6, ... 1e-14) until that gap is <= 1e-8, then timed at that
tolerance; a variant that never gets there is marked ``*``. ``max|dB|`` compares each peer with
ours. Set-up: the floor (``X'X`` and ``X'Y`` of the centred data, once, with NumPy) against the
time our fit spends before the solve (``LassoModel._setup``).

celer 0.7.4's estimator classes call ``_validate_data``, which scikit-learn 1.6 removed: celer is
called through ``celer_path`` / ``mtl_path``, the functions its estimators call.

Usage::

    python benchmarks/bench_peers.py                          # small and mid sizes, every model
    python benchmarks/bench_peers.py --sizes 2000,30,500 --repeats 3
    python benchmarks/bench_peers.py --sizes large --kinds gram,red,ref
    python benchmarks/bench_peers.py --sizes hd1 hd20 --configs lasso,lasso_nonneg
    python benchmarks/bench_peers.py --sizes 60,100,20 250,500,5 --configs lasso,lasso_nonneg \
        --kinds lars --lambda-fraction 1e-6              # wide designs, the default's scale
    python benchmarks/bench_peers.py --quick                  # tiny sizes, one repeat (tests)
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.linalg import cho_factor, solve_triangular

# this checkout's package, not an editable install of another checkout (a git worktree)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _gap import GapProblem, bounds_from_signs, relative_gap  # noqa: E402
from bench_fit import LAMBDA_FRACTION, lambda_max  # noqa: E402

SIZES: dict[str, tuple[int, int, int]] = {
    "small": (500, 10, 50),
    "mid": (2000, 30, 500),
    "large": (5000, 50, 2000),
    "hd1": (1000, 2000, 1),
    "hd20": (1000, 2000, 20),
}
QUICK_SIZES = [(120, 5, 8)]
DEFAULT_SIZES = ["small", "mid"]
TARGET_GAP = 1e-8
TOLS = tuple(10.0 ** -k for k in range(5, 15))
KINDS = ("raw", "gram", "red", "ref", "lars")
N_USER_GROUPS = 5  # GROUP_LASSO: contiguous blocks of responses

# name -> (label, our model type, l1_weight, signs+prior, nonneg, peer family)
CONFIGS: dict[str, tuple[str, str, float, bool, bool, str]] = {
    "lasso": ("LASSO", "LASSO", 0.0, False, False, "cell"),
    "lasso_nonneg": ("LASSO nonneg (peers: positive=True)", "LASSO", 0.0, False, True, "cell"),
    "lasso_sign_prior": ("LASSO+sign+prior (ref: CVXPY)", "LASSO", 0.0, True, False, "cvxpy"),
    "fcgl_one": ("FCGL one cluster = MultiTaskLasso", "FACTOR_CLUSTER_GROUP_LASSO", 0.0, False,
                 False, "mtl"),
    "fcgl": ("FCGL found clusters", "FACTOR_CLUSTER_GROUP_LASSO", 0.0, False, False, "mtl"),
    "fcgl_one_nonneg": ("FCGL one cluster nonneg (ref: CVXPY)", "FACTOR_CLUSTER_GROUP_LASSO",
                        0.0, False, True, "cvxpy"),
    "fcgl_one_sign_prior": ("FCGL one cluster+sign+prior (ref: CVXPY)",
                            "FACTOR_CLUSTER_GROUP_LASSO", 0.0, True, False, "cvxpy"),
    "fcgl_l1": ("FCGL found clusters l1w=0.1 (ref: CVXPY)", "FACTOR_CLUSTER_GROUP_LASSO", 0.1,
                False, False, "cvxpy"),
    "group_rows": ("GROUP_LASSO rows", "GROUP_LASSO", 0.0, False, False, "rows"),
    "group_rows_l1": ("sparse-group rows l1w=0.1", "GROUP_LASSO", 0.1, False, False, "rows"),
    "hcgl": ("HCGL", "HIERARCHICAL_CLUSTER_GROUP_LASSO", 0.0, False, False, "rows"),
    "hcgl_nonneg": ("HCGL nonneg (peers: positive=True)", "HIERARCHICAL_CLUSTER_GROUP_LASSO",
                    0.0, False, True, "rows"),
    "hcgl_l1_sign_prior": ("HCGL l1w=0.1+sign+prior (ref: CVXPY)",
                           "HIERARCHICAL_CLUSTER_GROUP_LASSO", 0.1, True, False, "cvxpy"),
}


# ------------------------------------------------------------------------ the problem
@dataclass
class Case:
    """One model at one size: the data, our model's arguments and the independent problem."""

    config: str
    shape: tuple[int, int, int]
    x: pd.DataFrame
    y: pd.DataFrame
    kwargs: dict
    problem: GapProblem | None = None
    groups: np.ndarray | None = None  # code per response (row/block geometries)
    group_weight: np.ndarray | None = None
    our_coef: np.ndarray | None = None
    reg_lambda: float = 0.0

    @property
    def nonneg(self) -> bool:
        return CONFIGS[self.config][4]


def make_case(config: str, shape: tuple[int, int, int], seed: int,
              fraction: float = LAMBDA_FRACTION) -> Case:
    """The panel, ``reg_lambda = fraction * lambda_max`` (default 0.05, bench_fit's rule) and
    our arguments."""
    from xl_factorlasso import LassoModelType
    from xl_factorlasso.core.datasets import make_factor_panel

    _, type_name, l1_weight, signed, nonneg, _ = CONFIGS[config]
    panel = make_factor_panel(*shape, seed=seed)
    lam = fraction * lambda_max(panel.x.to_numpy(), panel.y.to_numpy())
    kw: dict = dict(model_type=getattr(LassoModelType, type_name), reg_lambda=lam,
                    warmup_period=None, engine="fast")
    if l1_weight:
        kw["l1_weight"] = l1_weight
    if signed:
        kw["factors_beta_loading_signs"] = panel.signs
        kw["factors_beta_prior"] = panel.prior
    if nonneg:
        kw["nonneg"] = True
    if config.startswith("fcgl_one"):
        kw["n_clusters"] = 1
    if type_name == "GROUP_LASSO":
        n = panel.y.shape[1]
        labels = [f"g{i * min(N_USER_GROUPS, n) // n}" for i in range(n)]
        kw["group_data"] = pd.Series(labels, index=panel.y.columns)
    return Case(config, shape, panel.x, panel.y, kw, reg_lambda=lam)


def complete_case(case: Case, model) -> None:
    """The independent problem of ``case``, with the clusters our (warm-up) fit found."""
    _, type_name, l1_weight, signed, nonneg, _ = CONFIGS[case.config]
    x = case.x.to_numpy()
    y = case.y.to_numpy()
    xc, yc = x - x.mean(axis=0), y - y.mean(axis=0)
    n, m = y.shape[1], x.shape[1]
    geometry = "cell"
    if n > 1 and type_name != "LASSO":  # one response: every model is the LASSO
        geometry = "block" if type_name == "FACTOR_CLUSTER_GROUP_LASSO" else "row"
        labels = model.clusters_.loc[case.y.columns].to_numpy()
        codes, uniques = pd.factorize(labels)
        sizes = np.bincount(codes).astype(float)
        case.groups = codes
        case.group_weight = np.sqrt(sizes / len(uniques))  # group_penalty="normalized"
    prior = lower = upper = None
    if signed:
        signs = case.kwargs["factors_beta_loading_signs"].loc[case.y.columns, case.x.columns]
        prior = case.kwargs["factors_beta_prior"].loc[case.y.columns, case.x.columns]
        prior = np.nan_to_num(prior.to_numpy(dtype=float))
        lower, upper = bounds_from_signs(signs.to_numpy(dtype=float), (n, m))
    elif nonneg:
        lower, upper = bounds_from_signs(None, (n, m), nonneg=True)
    case.problem = GapProblem(xc, yc, case.reg_lambda, geometry, case.groups, case.group_weight,
                              l1_weight if geometry != "cell" else 0.0, prior, lower, upper)


# ------------------------------------------------------------------------ peers
def _centred(x: np.ndarray, y: np.ndarray):
    return x - x.mean(axis=0), y - y.mean(axis=0)


def _design(x: np.ndarray, y: np.ndarray, kind: str):
    """``(X, Y, n rows)``: the centred design (``raw``) or its Cholesky reduction (``red``)."""
    xc, yc = _centred(x, y)
    if kind == "raw":
        return xc, yc, xc.shape[0]
    chol, lower = cho_factor(xc.T @ xc, lower=True)
    ell = np.tril(chol) if lower else np.triu(chol).T
    return np.ascontiguousarray(ell.T), solve_triangular(ell, xc.T @ yc, lower=True), ell.shape[0]


def _alpha(case: Case, n_rows: int, weight: float = 1.0) -> float:
    """The peers' ``alpha`` of ``lambda * weight`` on a design of ``n_rows`` rows."""
    t = case.shape[0]
    return case.reg_lambda * weight * t / (2.0 * n_rows)


def _sklearn_lasso(kind: str):
    def run(case: Case, x, y, tol):
        from sklearn.linear_model import Lasso

        if kind == "gram":
            xc, yc = _centred(x, y)
            model = Lasso(alpha=_alpha(case, xc.shape[0]), fit_intercept=False,
                          precompute=xc.T @ xc, tol=tol, max_iter=200_000, positive=case.nonneg)
            model.fit(xc, yc)
        else:
            xd, yd, rows = _design(x, y, kind)
            model = Lasso(alpha=_alpha(case, rows), fit_intercept=False, tol=tol,
                          max_iter=200_000, positive=case.nonneg)
            model.fit(xd, yd)
        return np.asarray(model.coef_).reshape(y.shape[1], x.shape[1])
    return run


def _sklearn_lars():
    """scikit-learn's ``LassoLars`` on the raw design: the exact path in lambda (LARS with the
    LASSO modification), no tolerance to tune; a peer where the design is wide (M >= T)."""
    def run(case: Case, x, y, tol):
        from sklearn.linear_model import LassoLars

        xd, yd, rows = _design(x, y, "raw")
        out = np.empty((y.shape[1], x.shape[1]))
        for i in range(y.shape[1]):
            model = LassoLars(alpha=_alpha(case, rows), fit_intercept=False,
                              max_iter=20 * x.shape[1], positive=case.nonneg)
            out[i] = model.fit(xd, yd[:, i]).coef_
        return out
    return run


def _celer_lasso(kind: str):
    def run(case: Case, x, y, tol):
        from celer import celer_path

        xd, yd, rows = _design(x, y, kind)
        xd = np.asfortranarray(xd)
        alpha = _alpha(case, rows)
        out = np.empty((y.shape[1], x.shape[1]))
        for i in range(y.shape[1]):
            _, coefs, _ = celer_path(xd, np.ascontiguousarray(yd[:, i]), "lasso",
                                     alphas=[alpha], tol=tol, prune=True, max_iter=500,
                                     max_epochs=500_000, positive=case.nonneg)
            out[i] = coefs[:, 0]
        return out
    return run


def _skglm_lasso(kind: str):
    def run(case: Case, x, y, tol):
        from skglm import Lasso

        xd, yd, rows = _design(x, y, kind)
        out = np.empty((y.shape[1], x.shape[1]))
        for i in range(y.shape[1]):
            model = Lasso(alpha=_alpha(case, rows), fit_intercept=False, tol=tol, max_iter=500,
                          max_epochs=500_000, positive=case.nonneg)
            out[i] = model.fit(xd, yd[:, i]).coef_
        return out
    return run


def _per_cluster(case: Case, n: int):
    """``(response indices, group weight)`` of every block-geometry cluster (one without)."""
    if case.groups is None:
        return [(np.arange(n), 1.0)]
    return [(np.flatnonzero(case.groups == g), float(w)) for g, w in enumerate(case.group_weight)]


def _mtl(lib: str, kind: str):
    def run(case: Case, x, y, tol):
        xd, yd, rows = _design(x, y, kind)
        out = np.empty((y.shape[1], x.shape[1]))
        for idx, w in _per_cluster(case, y.shape[1]):
            alpha = _alpha(case, rows, w)
            target = np.asfortranarray(yd[:, idx])
            if lib == "sklearn":
                from sklearn.linear_model import MultiTaskLasso

                coef = MultiTaskLasso(alpha=alpha, fit_intercept=False, tol=tol,
                                      max_iter=200_000).fit(xd, target).coef_
            elif lib == "celer":
                from celer.homotopy import mtl_path

                coef = mtl_path(np.asfortranarray(xd), target, alphas=[alpha], tol=tol,
                                max_iter=500, max_epochs=500_000)[1][..., 0]
            else:
                from skglm import MultiTaskLasso

                coef = MultiTaskLasso(alpha=alpha, fit_intercept=False, tol=tol, max_iter=500,
                                      max_epochs=500_000).fit(xd, target).coef_
            out[idx] = np.asarray(coef).reshape(len(idx), x.shape[1])
        return out
    return run


def _row_weights(case: Case, n: int) -> np.ndarray:
    return np.ones(n) if case.groups is None else case.group_weight[case.groups]


def _group_rows(lib: str, kind: str):
    """Each response a group lasso with one group (its M loadings), weight ``w_g(i)``."""
    def run(case: Case, x, y, tol):
        xd, yd, rows = _design(x, y, kind)
        n, m = y.shape[1], x.shape[1]
        out = np.empty((n, m))
        weights = _row_weights(case, n)
        if lib == "celer":
            from celer import celer_path

            xf = np.asfortranarray(xd)
            for i in range(n):
                out[i] = celer_path(xf, np.ascontiguousarray(yd[:, i]), "grouplasso",
                                    alphas=[_alpha(case, rows, weights[i])], groups=m, tol=tol,
                                    prune=True, max_iter=500, max_epochs=500_000)[1][:, 0]
        else:
            from skglm import GroupLasso

            for i in range(n):
                out[i] = GroupLasso(groups=m, alpha=_alpha(case, rows, weights[i]),
                                    fit_intercept=False, tol=tol, max_iter=500,
                                    max_epochs=500_000, positive=case.nonneg,
                                    ).fit(xd, yd[:, i]).coef_
        return out
    return run


def _skglm_sparse_group(kind: str):
    """skglm's sparse-group penalty ``alpha (w1 ||w|| + sum w2_j |w_j|)``, one group."""
    def run(case: Case, x, y, tol):
        from skglm import GeneralizedLinearEstimator
        from skglm.datafits import QuadraticGroup
        from skglm.penalties import WeightedL1GroupL2
        from skglm.solvers import GroupBCD
        from skglm.utils.data import grp_converter

        xd, yd, rows = _design(x, y, kind)
        n, m = y.shape[1], x.shape[1]
        a = case.problem.l1_weight
        indices, ptr = grp_converter(m, m)
        weights = _row_weights(case, n)
        out = np.empty((n, m))
        for i in range(n):
            penalty = WeightedL1GroupL2(_alpha(case, rows), np.array([(1 - a) * weights[i]]),
                                        np.full(m, a), ptr, indices)
            # its penalty has no subdiff_distance: the fixed-point working-set rule
            solver = GroupBCD(max_iter=500, max_epochs=500_000, tol=tol, fit_intercept=False,
                              ws_strategy="fixpoint")
            model = GeneralizedLinearEstimator(QuadraticGroup(ptr, indices), penalty, solver)
            out[i] = model.fit(xd, yd[:, i]).coef_
        return out
    return run


def _cvxpy_reference():
    def run(case: Case, x, y, tol):
        from xl_factorlasso import LassoModel

        model = LassoModel(**{**case.kwargs, "engine": "cvxpy"}).fit(case.x, case.y)
        return model.coef_.to_numpy()
    return run


@dataclass
class Variant:
    peer: str  # "sklearn", "celer", "skglm", "cvxpy"
    kind: str  # "raw", "gram", "red", "ref"
    run: Callable
    tunes_tol: bool = True
    tol: float = float("nan")
    gap: float = float("nan")
    coef: np.ndarray | None = None
    times: list[float] = field(default_factory=list)
    error: str = ""

    @property
    def name(self) -> str:
        return f"{self.peer} {self.kind}"


def installed_peers() -> dict[str, bool]:
    found = {}
    for name in ("sklearn", "celer", "skglm"):
        try:
            __import__(name)
            found[name] = True
        except ImportError:
            found[name] = False
    return found


def variants(case: Case, available: dict[str, bool],
             kinds_wanted: tuple[str, ...] = KINDS) -> list[Variant]:
    """Every peer variant that solves ``case``'s objective (see the module docstring), of the
    kinds wanted."""
    family = CONFIGS[case.config][5]
    t, m, n = case.shape
    if family in ("mtl", "rows") and case.problem.geometry == "cell":
        family = "cell"  # one response
    kinds = ["raw", "red"] if m < t else ["raw"]
    out: list[Variant] = []
    if family == "cvxpy":
        return [Variant("cvxpy", "ref", _cvxpy_reference(), tunes_tol=False)]
    if family == "cell":
        out += [Variant("sklearn", k, _sklearn_lasso(k)) for k in ["gram", *kinds]]
        out += [Variant("celer", k, _celer_lasso(k)) for k in kinds]
        out += [Variant("skglm", k, _skglm_lasso(k)) for k in kinds]
        if m >= t:  # a wide design: the exact path is the method for it (ours too)
            out.append(Variant("sklearn", "lars", _sklearn_lars(), tunes_tol=False))
    elif family == "mtl":
        out += [Variant(lib, k, _mtl(lib, k)) for lib in ("sklearn", "celer", "skglm")
                for k in kinds]
    elif case.problem.l1_weight > 0:
        out += [Variant("skglm", k, _skglm_sparse_group(k)) for k in kinds]
    else:
        libs = ("skglm",) if case.nonneg else ("celer", "skglm")  # celer: no positive groups
        out += [Variant(lib, k, _group_rows(lib, k)) for lib in libs for k in kinds]
    return [v for v in out if available.get(v.peer, True) and v.kind in kinds_wanted]


# ------------------------------------------------------------------------ timing
def _cpu(fn) -> tuple[float, object]:
    t0 = time.process_time()
    out = fn()
    return time.process_time() - t0, out


@contextmanager
def _cluster_clock(spent: list[float]):
    """Add to ``spent`` the CPU seconds of every ``LassoModel._discover_clusters`` call made
    inside the block (reporting only: the method itself is called unchanged)."""
    from xl_factorlasso import LassoModel

    inner = LassoModel._discover_clusters

    def timed(self, *args, **kwargs):
        t0 = time.process_time()
        try:
            return inner(self, *args, **kwargs)
        finally:
            spent.append(time.process_time() - t0)

    LassoModel._discover_clusters = timed
    try:
        yield
    finally:
        LassoModel._discover_clusters = inner


def calibrate(case: Case, v: Variant, x: np.ndarray, y: np.ndarray) -> None:
    """Tighten ``v``'s tolerance until the independent gap is <= TARGET_GAP (or none is
    left); keep its answer."""
    for tol in (TOLS if v.tunes_tol else (float("nan"),)):
        try:
            coef = v.run(case, x, y, tol)
        except Exception as exc:  # a peer that fails must not stop the benchmark
            v.error = f"{type(exc).__name__}: {exc}"[:120]
            return
        v.tol, v.coef = tol, coef
        v.gap = relative_gap(case.problem, coef)
        if v.gap <= TARGET_GAP:
            return


def run_case(config: str, shape, seed: int, repeats: int, available,
             kinds: tuple[str, ...] = KINDS, fraction: float = LAMBDA_FRACTION) -> dict:
    """Warm-up, calibration, then ``repeats`` interleaved rounds of every timed piece."""
    from xl_factorlasso import LassoModel

    case = make_case(config, shape, seed, fraction)
    model = LassoModel(**case.kwargs).fit(case.x, case.y)  # warm-up, and the clusters
    complete_case(case, model)
    x, y = case.x.to_numpy(), case.y.to_numpy()
    vs = variants(case, available, kinds)
    for v in vs:
        calibrate(case, v, x, y)
    engine_times, setup_times, floor_times, cluster_times = [], [], [], []
    model = None

    def engine_round():
        nonlocal model
        fitted = LassoModel(**case.kwargs)
        spent: list[float] = []
        with _cluster_clock(spent):
            dt, _ = _cpu(lambda: fitted.fit(case.x, case.y))
        engine_times.append(dt)
        cluster_times.append(sum(spent))
        model = fitted

    contestants = [engine_round] + [
        (lambda v=v: v.times.append(_cpu(lambda: v.run(case, x, y, v.tol))[0]))
        for v in vs if not v.error]
    # A new order each round: in a fixed one every peer variant ran right after a sibling of
    # its own library (its code and data still in the caches) and the engine after another
    # library's run, which cost it up to 1 ms more at the small size (see the module's note).
    order = np.random.default_rng(seed)
    for _ in range(repeats):
        for k in order.permutation(len(contestants)):
            contestants[k]()
        setup_times.append(_cpu(lambda: LassoModel(**case.kwargs)._setup(case.x, case.y))[0])
        floor_times.append(_cpu(lambda: _floor(x, y))[0])
    ours = model.coef_.loc[case.y.columns, case.x.columns].to_numpy()
    return dict(
        config=config, shape=shape, engine=statistics.median(engine_times),
        cluster=statistics.median(cluster_times),
        unclustered=statistics.median(e - c for e, c in zip(engine_times, cluster_times,
                                                             strict=True)),
        engine_gap=relative_gap(case.problem, ours), solver=str(model.solver_),
        setup=statistics.median(setup_times), floor=statistics.median(floor_times),
        variants=[dict(name=v.name, tol=v.tol, gap=v.gap, error=v.error,
                       time=statistics.median(v.times) if v.times else float("nan"),
                       max_db=float(np.abs(v.coef - ours).max()) if v.coef is not None
                       else float("nan"))
                  for v in vs],
    )


def _floor(x: np.ndarray, y: np.ndarray):
    """X'X and X'Y of the centred data, once: the least any solver on the statistics pays."""
    t = x.shape[0]
    mx, my = x.mean(axis=0), y.mean(axis=0)
    return x.T @ x - t * np.outer(mx, mx), x.T @ y - t * np.outer(mx, my)


# ------------------------------------------------------------------------ printing
def _f(v: float, spec: str = ".3g") -> str:
    return "—" if v is None or not np.isfinite(v) else format(v, spec)


def _best(row: dict) -> dict | None:
    """The fastest peer variant whose answer is certified (gap <= TARGET_GAP)."""
    ok = [v for v in row["variants"] if not v["error"] and v["gap"] <= TARGET_GAP]
    return min(ok, key=lambda v: v["time"]) if ok else None


def _without_clustering(row: dict, best: dict | None) -> str:
    """Our clustering seconds, our time without them and the best peer's ratio to that (the
    peers were given our clusters); "—" for a fit that found no clusters."""
    if not row["cluster"] > 0.0:
        return "—"
    ratio = "—" if best is None else f"{best['time'] / row['unclustered']:.2f}x"
    return f"{row['cluster']:.4f}; {row['unclustered']:.4f} ({ratio})"


def table(rows: list[dict]) -> str:
    head = ("| model (T,M,N) | engine s | best peer s (which) | peer/engine | every peer's s "
            "| gaps (engine; peers) | max abs dB | set-up: floor s / ours s "
            "| clustering s; engine without s (peer/that) |")
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        best = _best(r)
        each = ", ".join(f"{v['name']} {_f(v['time'])}" + ("*" if v["gap"] > TARGET_GAP else "")
                         if not v["error"] else f"{v['name']} error" for v in r["variants"])
        gaps = "; ".join([_f(r["engine_gap"], ".0e")]
                         + [f"{v['name']} {_f(v['gap'], '.0e')} (tol {_f(v['tol'], '.0e')})"
                            for v in r["variants"] if not v["error"]])
        dbs = ", ".join(f"{v['name']} {_f(v['max_db'], '.0e')}" for v in r["variants"]
                        if not v["error"])
        t, m, n = r["shape"]
        lines.append("| " + " | ".join([
            f"{CONFIGS[r['config']][0]} ({t},{m},{n})",
            _f(r["engine"], ".4f"),
            "—" if best is None else f"{best['time']:.4f} ({best['name']})",
            "—" if best is None else f"{best['time'] / r['engine']:.2f}x",
            each or "—",
            gaps,
            dbs or "—",
            f"{_f(r['floor'], '.4f')} / {_f(r['setup'], '.4f')}",
            _without_clustering(r, best),
        ]) + " |")
    return "\n".join(lines)


def context(available: dict[str, bool]) -> str:
    import numpy
    import scipy
    import threadpoolctl

    versions = [f"Python {platform.python_version()}", f"NumPy {numpy.__version__}",
                f"SciPy {scipy.__version__}"]
    for name in ("sklearn", "celer", "skglm", "cvxpy", "numba"):
        try:
            versions.append(f"{name} {__import__(name).__version__}")
        except ImportError:
            versions.append(f"{name} not installed")
    blas = threadpoolctl.threadpool_info()
    libs = ", ".join(f"{b.get('internal_api')} {b.get('num_threads')} thread(s)" for b in blas)
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
            + ", ".join(versions) + f". BLAS limited with threadpoolctl: {libs or 'none'}; "
            f"NUMBA_NUM_THREADS={os.environ.get('NUMBA_NUM_THREADS', 'default')}.")


def _parse_sizes(items: list[str]) -> list[tuple[int, int, int]]:
    out = []
    for item in items:
        for token in item.replace(";", " ").split():
            if token in SIZES:
                out.append(SIZES[token])
                continue
            try:
                t, m, n = (int(v) for v in token.split(","))
            except ValueError:
                raise SystemExit(f"--sizes: {token!r} is neither T,M,N nor one of "
                                 f"{list(SIZES)}") from None
            out.append((t, m, n))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=DEFAULT_SIZES,
                        help=f"T,M,N triples or names {list(SIZES)} (default: small mid)")
    parser.add_argument("--configs", default="all", help=f"comma list of {list(CONFIGS)} or all")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (odd: a median)")
    parser.add_argument("--kinds", default=",".join(KINDS),
                        help="comma list of peer variants to time: raw, gram, red (a peer's "
                        "design), ref (the CVXPY reference) and lars (scikit-learn's LassoLars, "
                        "wide designs); e.g. gram,red,ref at large sizes, where the raw design "
                        "is never the fastest")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lambda-fraction", type=float, default=LAMBDA_FRACTION,
                        help="reg_lambda as a fraction of lambda_max (default %(default)s); "
                        "larger: sparser answers")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repeat (tests)")
    args = parser.parse_args(argv)
    sizes = QUICK_SIZES if args.quick else _parse_sizes(args.sizes)
    repeats = 1 if args.quick else args.repeats
    configs = list(CONFIGS) if args.configs == "all" else args.configs.split(",")
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        raise SystemExit(f"unknown config(s) {unknown}; choose from {list(CONFIGS)} or all")
    kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
    if not set(kinds) <= set(KINDS):
        raise SystemExit(f"--kinds: choose from {list(KINDS)}")
    available = installed_peers()
    for name, ok in available.items():
        if not ok:
            print(f"note: {name} is not installed; its rows are skipped "
                  "(pip install -e '.[bench]')", flush=True)
    from threadpoolctl import threadpool_limits

    warnings.filterwarnings("ignore")
    rows = []
    with threadpool_limits(limits=1):
        ctx = context(available)
        for shape in sizes:
            for config in configs:
                t0 = time.perf_counter()
                row = run_case(config, shape, args.seed, repeats, available, kinds,
                               args.lambda_fraction)
                rows.append(row)
                best = _best(row)
                print(f"[{shape}] {CONFIGS[config][0]}: engine {row['engine']:.4f}s, best peer "
                      + ("—" if best is None else f"{best['time']:.4f}s ({best['name']})")
                      + f" (case {time.perf_counter() - t0:.0f}s wall)",
                      file=sys.stderr, flush=True)
    print(table(rows))
    print(
        f"\nreg_lambda = {args.lambda_fraction:g} lambda_max. "
        f"CPU seconds (time.process_time), median of {repeats} round(s) (each in a new random "
        "order of the contestants) after a "
        "warm-up and the tolerance calibration; engine = LassoModel(engine='fast').fit on "
        "DataFrames, everything included; peers from NumPy arrays, centring and their Gram or "
        "reduction included. best peer = fastest variant with an independent relative gap "
        f"<= {TARGET_GAP:g} (* = a variant that did not reach it at tol 1e-14). gaps: "
        "benchmarks/_gap.py. floor = X'X and X'Y of the centred data with NumPy; ours = "
        "LassoModel._setup. clustering = CPU seconds of those fits inside "
        "LassoModel._discover_clusters (medians; peers are given the clusters found).\n" + ctx
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
