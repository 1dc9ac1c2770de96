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
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import LinAlgError, qr_delete
from scipy.linalg.lapack import dpotrs, dtrtrs

__all__ = ["homotopy_rows", "homotopy_start"]

# Below this fraction of a response's own lambda_max, on a singular Gram, the path is taken: at
# 1e-2 the iterations still finish in about as long (0.1-0.2 s at (60,100,20) and (250,500,5)),
# below it they slow down by 10x per decade and then fail.
_RATIO = 1e-2
_MAX_EVENTS = 20  # per factor
_SINGULAR = 1e-10  # an entering cell whose column is within this of the free ones' span


def homotopy_rows(engine, lam: float) -> np.ndarray:
    """(N,) bool: the responses whose path is taken at ``lam`` (cell geometry): a singular
    Gram, a penalty below ``_RATIO`` of their own ``lambda_max``, positive finite weights."""
    if engine.geometry != "cell" or lam <= 0.0:
        return np.zeros(engine.n, dtype=bool)
    if engine.spectral:
        singular = ~engine._invertible[engine.pattern]
    else:
        singular = np.full(engine.n, engine.m >= engine.t_rows)
    if not singular.any():
        return singular
    weights_ok = ((engine.omega > 0.0) & np.isfinite(engine.omega)).all(axis=1)
    top = (2.0 / engine.t_rows) * _mu_max(engine)
    return singular & weights_ok & (lam < _RATIO * top)


def _mu_max(engine) -> np.ndarray:
    """Per response, the ``mu`` below which some cell leaves zero (``lambda_max`` times
    ``T'/2``)."""
    r0 = engine._prior_residual()
    up = np.where(engine.du > 0.0, r0, 0.0)
    down = np.where(engine.dl < 0.0, -r0, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        excess = np.maximum(up, down) / engine.omega
    return np.where(engine.fixed, 0.0, excess).max(axis=1, initial=0.0)


def homotopy_start(engine, x: np.ndarray, lam: float, rows: np.ndarray):
    """``(x', done)``: ``x`` with the path's point at ``lam`` on the responses ``rows`` where
    the path reached it (``done``, (N,) bool)."""
    out = x.copy()
    done = np.zeros(engine.n, dtype=bool)
    r0 = engine._prior_residual()
    mu = 0.5 * engine.t_rows * lam
    for i in np.flatnonzero(rows):
        d = _path(engine.gram[engine.pattern[i]], r0[i], engine.omega[i], engine.dl[i],
                  engine.du[i], engine.fixed[i], mu)
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


def _path(gram, r0, omega, dl, du, fixed, mu_target):
    """``D`` (M,) minimising one response's objective at ``mu_target`` by following the path
    from ``mu_max``; None when the path gives up (see the module docstring)."""
    m = len(r0)
    up_ok, down_ok = (du > 0.0) & ~fixed, (dl < 0.0) & ~fixed
    d = np.zeros(m)
    state = np.zeros(m, dtype=np.int8)  # 0 at zero, 1 free, 2 at a nonzero bound
    sign = np.zeros(m)
    base = r0.copy()  # r0 - G_:U D_U
    excess = np.maximum(np.where(up_ok, r0, -np.inf), np.where(down_ok, -r0, -np.inf)) / omega
    j = int(np.argmax(excess))
    mu = float(excess[j])
    if not mu > mu_target:
        return d  # the prior is the minimiser
    free = _Free(gram)
    free.add(j)
    state[j], sign[j] = 1, 1.0 if r0[j] > 0 else -1.0
    last = j
    try:
        for _ in range(_MAX_EVENTS * m):
            cells = np.array(free.cells)
            rhs = np.stack([base[cells], omega[cells] * sign[cells]], axis=1)
            a_f, b_f = free.solve(rhs).T  # D_F = a_f - mu b_f
            a, b = np.stack([a_f, b_f]) @ free.rows  # q = (base - a) + mu b
            a = base - a
            step, j, kind = _next_event(mu, mu_target, cells, a_f, b_f, a, b, d, state, sign,
                                        omega, dl, du, up_ok, down_ok, last)
            if kind is None:  # no event before the target: the segment reaches it
                d[cells] = a_f - mu_target * b_f
                return d
            mu = step
            d[cells] = a_f - mu * b_f
            if kind == "zero":  # a free cell reaches zero
                free.remove(j)
                state[j], d[j], sign[j] = 0, 0.0, 0.0
            elif kind == "bound":  # a free cell reaches a bound: held there
                free.remove(j)
                d[j] = du[j] if d[j] > 0 else dl[j]
                state[j], sign[j] = 2, 0.0
                base -= d[j] * gram[j]
            else:  # "enter" (from zero) or "leave" (a bound): free
                sign[j] = 1.0 if kind == "up" else -1.0
                if state[j] == 2:
                    base += d[j] * gram[j]
                if not free.add(j):
                    return None
                state[j] = 1
            last = j
    except (LinAlgError, ValueError):
        return None
    return None


def _next_event(mu, mu_target, cells, a_f, b_f, a, b, d, state, sign, omega, dl, du, up_ok,
                down_ok, last):
    """``(mu, cell, kind)`` of the next event below ``mu`` and above ``mu_target``;
    ``kind`` None when there is none. Kinds: "zero", "bound" (a free cell), "up", "down" (a
    cell becomes free with that sign, from zero or from a bound)."""
    best, cell, kind = mu_target, -1, None
    tiny = mu * 1e-12
    with np.errstate(divide="ignore", invalid="ignore"):
        # free cells: D_j(mu) = a_f - mu b_f moves by +b_f per unit decrease of mu
        s = sign[cells]
        toward_zero = s * b_f < 0.0
        hit = np.where(toward_zero, a_f / b_f,
                       np.where(b_f > 0.0, (a_f - du[cells]) / b_f, (a_f - dl[cells]) / b_f))
        hit = np.where(np.isfinite(hit) & (b_f != 0.0) & (hit < mu - tiny), hit, -np.inf)
        # the cell that just changed, leaving again at round-off
        hit[(cells == last) & (hit > mu * (1.0 - 1e-9))] = -np.inf
        k = int(np.argmax(hit))
        if hit[k] > best:
            best, cell = float(hit[k]), int(cells[k])
            kind = "zero" if toward_zero[k] else "bound"
        # zero cells reaching their thresholds, and bounds whose multiplier vanishes
        at_zero = state == 0
        up_den, down_den = omega - b, omega + b
        up = a / up_den
        down = -a / down_den
        at_bound = state == 2
        up = np.where((at_zero & up_ok & (up_den > 0.0)) | (at_bound & (d > 0) & (up_den < 0.0)),
                      up, -np.inf)
        down = np.where((at_zero & down_ok & (down_den > 0.0))
                        | (at_bound & (d < 0) & (down_den < 0.0)), down, -np.inf)
    # the cell that just changed, changing back at round-off
    if up[last] > mu * (1.0 - 1e-9):
        up[last] = -np.inf
    if down[last] > mu * (1.0 - 1e-9):
        down[last] = -np.inf
    up = np.where(up < mu - tiny, up, -np.inf)
    down = np.where(down < mu - tiny, down, -np.inf)
    ju, jd = int(np.argmax(up)), int(np.argmax(down))
    if up[ju] > best and up[ju] >= down[jd]:
        best, cell, kind = float(up[ju]), ju, "up"
    elif down[jd] > best:
        best, cell, kind = float(down[jd]), jd, "down"
    return best, cell, kind
