"""LASSO on a singular Gram at a small penalty: the exact path in lambda, response by response.

With more factors than rows (or collinear factors) the Gram is singular, and at a penalty far
below ``lambda_max`` (the default ``reg_lambda = 1e-5`` is about 1e-6 of it on returns) the
minimiser is nearly an interpolating fit on at most ``rank(G)`` loadings. The proximal iterations
then crawl along the Gram's flat directions (20,000 iterations left a relative gap of 5e-2 at
(T, M, N) = (60, 100, 20)), and the active-set start cannot guess the support: every cell's
correlation exceeds so small a threshold, and the Newton system on all of them is singular.

The minimiser is piecewise linear in ``mu = (T'/2) lambda`` (a quadratic programme whose linear
term moves with ``mu``), so it can be followed exactly from ``lambda_max`` down, one event at a
time: the homotopy of Osborne, Presnell and Turlach (2000), LARS with the LASSO modification,
here with the engine's sign box, prior and L1 weights. In ``D = B - B0`` and per response, with
``q = r0 - G D`` (``r0 = c - G b0``; the loss gradient is ``-(2/T') q``) the optimality
conditions are

* a free cell (``D_j`` nonzero, strictly inside its box): ``q_j = mu omega_j sign(D_j)``;
* a cell at zero: ``-mu omega_j <= q_j <= mu omega_j``, a side dropped where the box forbids
  that direction;
* a cell at a nonzero bound: ``q_j >= mu omega_j`` at its upper bound, ``<= -mu omega_j`` at its
  lower one.

On a segment the free cells ``F`` and the cells at bounds ``U`` are fixed, and
``G_FF D_F = r0_F - G_FU D_U - mu omega_F s_F``, so ``D_F = A - mu B`` and ``q = a + mu b``. The
next event is the largest ``mu`` below the current one at which a free cell reaches zero or a
bound, a zero cell's correlation reaches its threshold, or a bound's multiplier vanishes; the
sets change there and the next segment starts. ``G_FF`` is kept as a Cholesky factor, a row added
per entering cell (its inverse is what makes the singular Gram harmless: the free cells never
outnumber its rank on a generic panel; a leaving cell's column is removed by Givens
rotations). At the target ``mu`` the engine takes the point as a warm
start: its Newton step on the point's support and its certificate decide, as for any answer.

A path that meets a singular ``G_FF`` (ties: duplicate factors) or runs past ``_MAX_EVENTS``
events per factor gives up, and that response is solved as before.

Sparse-group rows have no such path (a row norm is not piecewise linear in lambda); they get a
continuation instead (:func:`continuation_start`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.linalg import LinAlgError, qr_delete
from scipy.linalg.lapack import dpotrs, dtrtrs

from ._penalty import excess_at_zero

__all__ = ["continuation_start", "homotopy_rows", "homotopy_start", "iterations_crawl",
           "probe_signed"]

# Below this fraction of a response's own lambda_max, on a singular Gram, the path is taken:
# above it the iterations finish about as fast as the path; below it they slow down by about
# 10x per decade, then run out of iterations (measured on wide panels of 60-250 rows).
_RATIO = 1e-2
# iterations_crawl, sparse-group rows without the continuation: below this fraction of
# lambda_max on a wide panel their iterations are slower than CVXPY, then stop certifying;
# above it they are as fast or faster (FCGL's are slower than CVXPY below _RATIO already)
_ROWS_CRAWL_RATIO = 1e-4
# iterations_crawl, FCGL blocks with an L1 share: on a LassoModelCV fold (120,200,10, 96 rows)
# their iterations took 0.8-2.2 s (6,000-20,000 of them) from 1e-3 of lambda_max down, from
# the prior or a warm start, against 0.45-0.5 s for CVXPY; above it 0.3-0.8 s
_SPARSE_BLOCKS_CRAWL_RATIO = 1e-3
_MAX_EVENTS = 20  # per factor
_STAGES_PER_DECADE = 2  # continuation (row groups): penalties per decade of lambda
_PROBE = 300  # continuation, signed cold starts: iterations of the direct solve tried first
_SINGULAR = 1e-10  # an entering cell whose column is within this of the free ones' span


def homotopy_rows(engine, lam: float) -> np.ndarray:
    """(N,) bool: the responses whose path is taken at ``lam`` (cell geometry): a singular
    Gram, a penalty below ``_RATIO`` of their own ``lambda_max`` and positive finite weights
    (a cold start tries the iterations first where every cell has a sign: :func:`probe_signed`).
    """
    if engine.geometry != "cell" or lam <= 0.0:
        return np.zeros(engine.n, dtype=bool)
    singular = _singular(engine)
    if not singular.any():
        return singular
    weights_ok = ((engine.omega > 0.0) & np.isfinite(engine.omega)).all(axis=1)
    top = (2.0 / engine.t_rows) * _mu_max(engine)
    return singular & weights_ok & (lam < _RATIO * top)


def probe_signed(engine, x: np.ndarray, lam: float, tol: float, rows: np.ndarray):
    """A cold start of the path's responses ``rows``: those whose every cell has a sign
    (``nonneg``, a full sign matrix) are first given ``_PROBE`` iterations from ``x``.

    A one-sided box keeps at most ``rank(G)`` loadings, as non-negative least squares does, and
    from the prior the iterations usually finish in tens of steps, faster than the path
    (`bench_wide.py`, nonneg at the default penalty on 60-250 rows: 17-66 ms against 61-177
    ms with every signed response on the path); but where the answer fills the rank, they
    crawl like the two-sided ones (nonneg at lambda 1e-6 on 40 rows, 100 factors, 20
    responses: 39 loadings per response, a relative gap of 7e-2 after 20,000 iterations).

    Returns ``(x', certified, (gaps, objectives), iterations)``: the probe's point on the
    signed responses, the (N,) mask of those it certified (unit by unit, within rounding
    included: :meth:`~._engine.FastEngine._certified_units`) and their unit gaps and
    objectives.
    """
    certified = np.zeros(engine.n, dtype=bool)
    signed = rows & ~((engine.dl < 0.0) & (engine.du > 0.0)).any(axis=1)
    if not signed.any():
        return x, certified, (np.empty(0), np.empty(0)), 0
    sub = engine._rows_view(signed)
    coef, gaps, objs, spent = sub._solve_all(x[signed], lam, tol, _PROBE, warm=False)
    x = x.copy()
    x[signed] = coef
    ok = sub._certified_units(coef, lam, gaps, objs, tol)
    certified[np.flatnonzero(signed)[ok]] = True
    return x, certified, (gaps[ok], objs[ok]), spent


def iterations_crawl(engine, lam: float, lambda_max: float) -> bool:
    """Where, on a wide panel (every response's Gram singular) at a small penalty, the
    proximal iterations are known to crawl along the Gram's flat directions and no start of
    this module applies:

    * FCGL blocks (not cooperative) below ``_RATIO`` of ``lambda_max``,
      ``_SPARSE_BLOCKS_CRAWL_RATIO`` with an L1 share: most blocks are active, and the block
      norms are not piecewise linear in lambda (no exact path); with an L1 share, 20,000
      iterations did not certify at 1e-5 of ``lambda_max`` and below on the wide panels of
      24-142 rows tried, and crawled from a warm start too;
    * row groups with an L1 share beyond the row Newton finish's size, where
      :func:`continuation_start` does not run, below ``_ROWS_CRAWL_RATIO``.

    :class:`~._certified.CertifiedSolver` then starts from CVXPY's point (engine "auto"; a
    warm start of sparse-group rows keeps the iterations, which settle from a neighbouring
    minimiser). A ragged panel where only some responses' Grams are singular (short
    histories) is left to the iterations."""
    if engine.geometry == "block":
        kind = not engine.coop
        ratio = _RATIO if engine.a == 0.0 else _SPARSE_BLOCKS_CRAWL_RATIO
    else:
        kind = engine.geometry == "row" and engine.a > 0.0 and not engine._row_newton_runs()
        ratio = _ROWS_CRAWL_RATIO
    return kind and 0.0 < lam < ratio * lambda_max and bool(_singular(engine).all())


def _singular(engine) -> np.ndarray:
    """(N,) bool: the responses whose Gram is singular (beyond the spectral limit: more
    factors than rows)."""
    if engine.spectral:
        return ~engine._invertible[engine.pattern]
    return np.full(engine.n, engine.m >= engine.t_rows)


def continuation_start(engine, lam: float, tol: float, max_iter: int):
    """Sparse-group rows (GROUP_LASSO, HCGL with ``l1_weight``) on a singular Gram below
    ``_RATIO`` of ``lambda_max``:
    ``(x, iterations)``, the minimiser at the last of a few penalties from ``lambda_max / 2``
    down to ``lam``, each solve warm-started at the previous one (or the answer itself, when
    ``_PROBE`` iterations from the prior reach it); ``x`` None where the continuation does not
    apply.

    The row penalty is not piecewise linear in lambda, so there is no exact path to follow;
    but from a neighbouring minimiser the iterations and the row Newton finish settle in a few
    steps, where from the prior the proximal iterations crawl along the Gram's flat directions
    (HCGL with ``l1_weight`` at the default penalty on 60 rows and 100 factors: 20,000
    iterations, then CVXPY). Rows without an L1 share have the closed-form start instead
    (``FastEngine._newton_row_secular``), which needs no continuation. It runs only where the
    row Newton finish does (``FastEngine._row_newton_runs``): without it each stage crawls too
    (HCGL with ``l1_weight``, signs and a prior at (120, 200, 10): the stages took 60, 180, ...,
    4580 iterations and ran out of the budget before the target).
    """
    from ._lambda_max import lambda_max_from_stats  # (it imports the engine: no cycle)

    if (engine.geometry != "row" or engine.a == 0.0 or lam <= 0.0
            or not engine._row_newton_runs() or not _singular(engine).any()):
        return None, 0
    top = lambda_max_from_stats(engine.stats, engine.spec)
    if not lam < _RATIO * top:
        return None, 0
    # most of these solves still finish from the prior in a few hundred iterations: only those
    # that do not pay for the stages
    x, gaps, objs, spent = engine._solve_all(engine.prior.copy(), lam, tol, _PROBE, warm=False)
    if gaps.sum() <= tol * objs.sum():
        return x, spent
    n_stages = int(np.ceil(_STAGES_PER_DECADE * np.log10(0.5 * top / lam)))
    x = engine.prior.copy()
    for stage in np.geomspace(0.5 * top, lam, n_stages + 1)[:-1]:
        x, gaps, objs, it = engine._solve_all(x, float(stage), tol, max(max_iter - spent, 1),
                                              warm=stage < 0.5 * top)
        spent += it
        if gaps.sum() > tol * objs.sum() or spent >= max_iter:
            break  # a stage left unfinished: the target's solve goes on from there
    return x, spent


def _mu_max(engine) -> np.ndarray:
    """Per response, the ``mu`` below which some cell leaves zero (``lambda_max`` times
    ``T'/2``): the rule of :func:`._lambda_max.lambda_max_from_stats`, with the gradient
    ``-(2/T') r0`` scaled by ``T'/2``."""
    excess = excess_at_zero(-engine._prior_residual(), engine.dl, engine.du)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (excess / engine.omega).max(axis=1, initial=0.0)


def homotopy_start(engine, x: np.ndarray, lam: float, rows: np.ndarray):
    """``(x', done)``: ``x`` with the path's point at ``lam`` on the responses ``rows`` where
    the path reached it (``done``, (N,) bool)."""
    out = x.copy()
    done = np.zeros(engine.n, dtype=bool)
    r0 = engine._prior_residual()
    mu = 0.5 * engine.t_rows * lam
    for i in np.flatnonzero(rows):
        d = _path(engine.gram[engine.pattern[i]], r0[i], engine.omega[i], engine.dl[i],
                  engine.du[i], mu)
        if d is not None:
            out[i] = np.clip(engine.prior[i] + d, engine.lo[i], engine.hi[i])
            done[i] = True
    return out, done


class _Free:
    """The free cells, in the order they entered, with the Cholesky factor ``L`` of ``G_FF``
    (``L L' = G_FF``; stored in C order, so ``L'`` is the Fortran-ordered upper factor LAPACK
    takes without a copy) and the Gram's rows ``G_F,:`` (in a buffer that doubles when full)."""

    def __init__(self, gram: np.ndarray):
        self.gram = gram
        self.cells: list[int] = []
        self.lower = np.zeros((0, 0))
        self._rows = np.empty((min(64, len(gram)), len(gram)))

    @property
    def rows(self) -> np.ndarray:
        return self._rows[:len(self.cells)]

    def add(self, j: int) -> bool:
        """Append ``j``; False (nothing changed) when its column is in the free ones' span."""
        g = self.gram
        k = len(self.cells)
        if k:
            w, info = dtrtrs(self.lower.T, g[self.cells, j], lower=0, trans=1)
            if info:
                return False
            pivot = g[j, j] - w @ w
        else:
            w, pivot = np.zeros(0), g[j, j]
        if not pivot > _SINGULAR * g[j, j]:
            return False
        lower = np.zeros((k + 1, k + 1))
        lower[:k, :k] = self.lower
        lower[k, :k] = w
        lower[k, k] = np.sqrt(pivot)
        self.lower = lower
        if k == len(self._rows):
            self._rows = np.concatenate([self._rows, np.empty_like(self._rows)])
        self._rows[k] = g[j]
        self.cells.append(j)
        return True

    def remove(self, j: int) -> None:
        """Drop ``j``: its column leaves the upper factor, Givens rotations restore the
        triangle."""
        k = len(self.cells)
        pos = self.cells.index(j)
        del self.cells[pos]
        self._rows[pos:k - 1] = self._rows[pos + 1:k]
        if k > 1:
            upper = qr_delete(np.eye(k), self.lower.T, pos, which="col", check_finite=False)[1]
            self.lower = np.ascontiguousarray(upper[:k - 1].T)
        else:
            self.lower = np.zeros((0, 0))

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        """``G_FF^-1 rhs`` (``rhs`` of shape (k, r))."""
        out, info = dpotrs(self.lower.T, rhs, lower=0)
        if info:
            raise LinAlgError("the free cells' system")
        return out


def _path(gram, r0, omega, dl, du, mu_target):
    """``D`` (M,) minimising one response's objective at ``mu_target`` by following the path
    from ``mu_max``; None when the path gives up (see the module docstring)."""
    m = len(r0)
    up_ok, down_ok = du > 0.0, dl < 0.0  # (a fixed cell has dl = du = 0)
    d = np.zeros(m)
    sign = np.zeros(m)  # of the free cells
    # the cells that may become free, by the side they would move to: at zero, or at a bound
    # (whose multiplier vanishes); kept as the sets change
    may = _Moves(up_ok.copy(), down_ok.copy(), np.zeros(m, dtype=bool),
                 np.zeros(m, dtype=bool))
    base = r0.copy()  # r0 - G_:U D_U
    excess = excess_at_zero(-r0, dl, du) / omega
    j = int(np.argmax(excess))
    mu = float(excess[j])
    if not mu > mu_target:
        return d  # the prior is the minimiser
    free = _Free(gram)
    free.add(j)
    sign[j] = 1.0 if r0[j] > 0 else -1.0
    may.zero_up[j] = may.zero_down[j] = False
    last = j
    rhs = np.empty((m, 2))
    try:
        for _ in range(_MAX_EVENTS * m):
            # (int: a free set emptied by its last cell reaching zero or a bound indexes too)
            cells = np.array(free.cells, dtype=int)
            k = len(cells)
            rhs[:k, 0] = base[cells]
            rhs[:k, 1] = omega[cells] * sign[cells]
            a_f, b_f = free.solve(rhs[:k]).T if k else (np.zeros(0), np.zeros(0))
            # q = base - G_:F D_F = a + mu b, both products in one pass over the rows
            a, b = np.stack([a_f, b_f]) @ free.rows
            a = base - a
            step, j, kind = _next_event(mu, mu_target, cells, a_f, b_f, a, b, sign, omega, dl,
                                        du, may, last)
            if kind is None:  # no event before the target: the segment reaches it
                d[cells] = a_f - mu_target * b_f
                return d
            mu = step
            d[cells] = a_f - mu * b_f
            if kind == "zero":  # a free cell reaches zero
                free.remove(j)
                d[j], sign[j] = 0.0, 0.0
                may.zero_up[j], may.zero_down[j] = up_ok[j], down_ok[j]
            elif kind == "bound":  # a free cell reaches a bound: held there
                free.remove(j)
                d[j] = du[j] if d[j] > 0 else dl[j]
                sign[j] = 0.0
                may.bound_hi[j], may.bound_lo[j] = d[j] > 0, d[j] < 0
                base -= d[j] * gram[j]
            else:  # "up" or "down": free with that sign, from zero or from a bound
                sign[j] = 1.0 if kind == "up" else -1.0
                if may.bound_hi[j] or may.bound_lo[j]:
                    base += d[j] * gram[j]
                if not free.add(j):
                    return None
                may.zero_up[j] = may.zero_down[j] = may.bound_hi[j] = may.bound_lo[j] = False
            last = j
    except (LinAlgError, ValueError):
        return None
    return None


class _Moves(NamedTuple):
    zero_up: np.ndarray  # at zero, may move up
    zero_down: np.ndarray
    bound_hi: np.ndarray  # at its upper bound (above zero), may move down into the box
    bound_lo: np.ndarray


def _next_event(mu, mu_target, cells, a_f, b_f, a, b, sign, omega, dl, du, may, last):
    """``(mu, cell, kind)`` of the next event below ``mu`` and above ``mu_target``;
    ``kind`` None when there is none. Kinds: "zero", "bound" (a free cell), "up", "down" (a
    cell becomes free with that sign, from zero or from a bound)."""
    best, cell, kind = mu_target, -1, None
    below = mu * (1.0 - 1e-12)
    again = mu * (1.0 - 1e-9)  # the cell that just changed, changing back at round-off
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        # free cells: D_j(mu) = a_f - mu b_f moves by b_f per unit decrease of mu, towards
        # zero or towards a bound (an infinite bound gives -inf: no event)
        toward_zero = sign[cells] * b_f < 0.0
        edge = np.where(toward_zero, 0.0, np.where(b_f > 0.0, du[cells], dl[cells]))
        hit = (a_f - edge) / b_f
        hit[~(hit < below) | ((cells == last) & (hit > again))] = -np.inf
        # the others: q_j(mu) = a_j + mu b_j reaches +-mu omega_j; from zero the threshold
        # closes in (den > 0), at a bound the multiplier vanishes (den < 0)
        den_up, den_down = omega - b, omega + b
        up, down = a / den_up, -a / den_down
    up[~np.where(den_up > 0.0, may.zero_up, may.bound_hi) | ~(up < below)] = -np.inf
    down[~np.where(den_down > 0.0, may.zero_down, may.bound_lo) | ~(down < below)] = -np.inf
    if up[last] > again:
        up[last] = -np.inf
    if down[last] > again:
        down[last] = -np.inf
    k = int(np.argmax(hit)) if cells.size else -1
    if k >= 0 and hit[k] > best:
        best, cell, kind = float(hit[k]), int(cells[k]), "zero" if toward_zero[k] else "bound"
    ju, jd = int(np.argmax(up)), int(np.argmax(down))
    if up[ju] > best and up[ju] >= down[jd]:
        best, cell, kind = float(up[ju]), ju, "up"
    elif down[jd] > best:
        best, cell, kind = float(down[jd]), jd, "down"
    return best, cell, kind
