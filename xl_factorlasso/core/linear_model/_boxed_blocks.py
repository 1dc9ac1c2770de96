"""Newton's point for FCGL blocks that hold cells at a bound (signs, ``nonneg``) or at zero
(an L1 share, ``l1_weight``), on wide panels.

:func:`~._block_newton.block_newton` solves a cluster whose active cells are all strictly
inside the box, with one matrix ``G_AA + diag(nu)`` for the whole cluster and no L1 share.
With a sign matrix (its zeros pin cells at the prior) or a one-sided box, an active block
usually holds cells at a bound; with an L1 share, cells at zero (its kink). Each response then
has its own free cells ``F_i`` (in the active blocks ``A``, off their bounds and off zero),
whose optimality conditions are those of :mod:`._block_newton` plus the L1 term,
``(G d_i - r_i)_j + k1_ij s_ij + nu_j d_ij = 0`` with ``nu_j = kappa_j / ||D_j||``,
``kappa_j = (T'/2) lambda (1 - a) w_j``, ``k1_ij = (T'/2) lambda a omega_ij`` and ``s_ij`` the
cell's sign. For a given ``nu`` every response is one linear system,

    (G_FF + diag(nu_F)) d_iF = r_iF - (G d~_i)_F - k1_iF s_iF,

``d~_i`` the held cells (``D`` = their bound less the prior, or zero), and what is left is
``|A|`` scalar equations ``phi_j(nu) = nu_j ||D_j(nu)|| - kappa_j = 0``, whose Jacobian
``J_jk = delta_jk ||D_j|| - (nu_j / ||D_j||) sum_i d_ij (K_i^-1)_jk d_ik`` sums the responses'
terms (``dd_iF / dnu_k = -K_i^-1 e_k d_ik``). A few Newton steps on ``nu`` give the point.

Which blocks are active and which cells are held is guessed from another point (an
interior-point answer, whose cells that belong at a bound or at zero are near it, not on it;
or the iterations', which hold them exactly), per cluster, at the fractions of
:data:`~._block_newton.POLISH_GUESSES` of the cluster's largest block norm, coarse first (a
cell within that distance of a bound or of zero is held there); then corrected up to
``_ROUNDS`` times: a free cell that crosses its bound is held there, one whose sign flips is
held at zero, a held cell whose condition fails (moving it lowers the objective) is freed, a
zero block whose condition fails joins, and a block whose ``nu`` grows more than
``_DROP_GROWTH``-fold (its norm heading to zero) leaves; at most ``_BUDGET`` Newton solves
per cluster in all. The certificate judges the result as any other point.

Only on wide panels (every Gram singular, :attr:`FastEngine.polishes_held_blocks`), where the
iterations crawl at small penalties; the loops are per response, which the few responses of
such panels afford.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy.linalg import lapack

from ._block_newton import _MAX_STEPS, _RTOL, _STALL, POLISH_GUESSES, leaving_blocks
from ._box_ridge import box_pull

__all__ = ["boxed_block_polish"]

_ROUNDS = 8  # corrections of one guess's sets
# Newton solves per cluster over all its guesses: where a guess succeeded on random wide panels
# (1e-5 to 1e-7 of lambda_max), its cluster had used 2-12; a point none succeeds from used 64
_BUDGET = 16


def boxed_block_polish(engine, x: np.ndarray, lam: float, rows: np.ndarray,
                       every: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Newton's point of every cluster of ``rows`` (whole clusters) from ``x``.

    Returns ``(x with those clusters' points, per response: a point was found)``. ``every``:
    only a point for every cluster is of use (a start that must certify as a whole), so the
    clusters after one without a point are not tried.
    """
    e = engine
    out = np.clip(x, e.lo, e.hi)
    found = np.zeros(e.n, dtype=bool)
    d_all = out - e.prior
    resid = e._prior_residual()
    half = 0.5 * e.t_rows * lam
    kappa = half * (1.0 - e.a) * e.group_w.reshape(e.n_units, e.m)
    k1 = half * e.a * e.omega
    for g in np.unique(e.unit[rows]):
        idx = np.flatnonzero(e.unit == g)
        problem = _Cluster([e.gram[p] for p in e.pattern[idx]], resid[idx], e.dl[idx],
                           e.du[idx], kappa[g], k1[idx])
        d = problem.solve(d_all[idx])
        if d is not None:
            out[idx] = e.prior[idx] + d
            found[idx] = True
        elif every:
            break
    return out, found


class _Cluster:
    """One cluster's problem: its responses' Grams, ``r = c - G b0``, the box of ``D``, the
    blocks' ``kappa`` and the cells' ``k1``."""

    def __init__(self, grams, resid, dl, du, kappa, k1):
        self.grams, self.resid, self.dl, self.du = grams, resid, dl, du
        self.kappa, self.k1 = kappa, k1
        self.pinned = dl == du
        self.kink = k1 > 0.0  # cells with an L1 term: zero is a kink
        self.budget = _BUDGET

    def solve(self, d: np.ndarray) -> np.ndarray | None:
        """``D`` at Newton's point from the guesses on ``d`` (module docstring), or None."""
        norms = np.sqrt((d * d).sum(axis=0))
        top = norms.max()
        if not top > 0.0:
            return None
        for fraction in POLISH_GUESSES:
            if self.budget <= 0:
                break
            near = fraction * top
            at_lo = self.pinned | (d - self.dl <= near)
            at_hi = ~at_lo & (self.du - d <= near)
            at_zero = self.kink & ~at_lo & ~at_hi & (np.abs(d) <= near)
            found = self._corrected(norms > near, at_lo, at_hi, at_zero, np.sign(d),
                                    np.where(norms > near, norms, 0.0))
            if found is not None:
                return found
        return None

    def _corrected(self, active, at_lo, at_hi, at_zero, sign, norms):
        """Newton on the guessed sets, corrected until its point keeps them."""
        dl, du, k1 = self.dl, self.du, self.k1
        for _ in range(_ROUNDS):
            if self.budget <= 0:
                return None
            self.budget -= 1
            held = active[None, :] & (at_lo | at_hi | at_zero)
            fixed_d = np.where(held & at_lo, dl, 0.0) + np.where(held & at_hi, du, 0.0)
            free = active[None, :] & ~held
            # a block with nothing free and nothing held off zero has no norm to solve for
            active = active & (free.any(axis=0) | (fixed_d != 0.0).any(axis=0))
            free &= active[None, :]
            cols = np.flatnonzero(active)
            if not len(cols):
                return None
            nu0 = self.kappa[cols] / np.where(norms[cols] > 0.0, norms[cols], 1e-300)
            d, nu, ok = self._newton(fixed_d, free, np.where(free, k1 * sign, 0.0), nu0, cols)
            if not ok:
                drop = leaving_blocks(nu, nu0)
                if drop is None:
                    return None
                active[cols[drop]] = False
                continue
            # the conditions of the held cells and of the zero blocks at this point
            grad = np.stack([g @ di for g, di in zip(self.grams, d, strict=True)]) - self.resid
            nu_all = np.zeros(len(self.kappa))
            nu_all[cols] = nu
            smooth = grad + nu_all[None, :] * d
            up = smooth + np.where(d >= 0.0, k1, -k1)  # derivative moving up, from a held cell
            down = -smooth + np.where(d <= 0.0, k1, -k1)  # ... moving down
            lo_cross = free & (d < dl)
            hi_cross = free & (d > du)
            flip = free & self.kink & (d * sign < 0.0) & ~lo_cross & ~hi_cross
            free_lo = held & at_lo & ~self.pinned & (up < 0.0)
            free_hi = held & at_hi & ~self.pinned & (down < 0.0)
            free_zero = held & at_zero & ((up < 0.0) | (down < 0.0))
            pull = box_pull(-grad, dl, du, k1)  # (the L1 term's share and the box taken off)
            size = np.sqrt((pull * pull).sum(axis=0))
            scale = np.abs(grad).max(axis=0)
            join = ~active & (size > self.kappa * (1.0 + 1e-9) + 1e-9 * scale)
            moves = lo_cross | hi_cross | flip | free_lo | free_hi | free_zero
            if not (moves.any() or join.any()):
                return np.where(active[None, :], d, 0.0)
            # the freed cells' signs: the direction they move in
            sign = np.where(free, np.sign(d), sign)
            sign = np.where(free_lo, 1.0, np.where(free_hi, -1.0, sign))
            sign = np.where(free_zero, np.where(up < 0.0, 1.0, -1.0), sign)
            sign = np.where(free_lo & (dl < 0.0), -1.0, np.where(free_hi & (du > 0.0), 1.0,
                                                                 sign))
            at_lo = (at_lo & ~free_lo) | lo_cross
            at_hi = (at_hi & ~free_hi) | hi_cross
            at_zero = (at_zero & ~free_zero) | flip
            norms = np.where(active, np.sqrt((d * d).sum(axis=0)), 0.0)
            # a joining block starts with the norm its pull would give it, its cells free
            # where the pull moves them (in the pull's direction) and held elsewhere
            norms = np.where(join, np.maximum(size - self.kappa, 1e-3 * norms.max()), norms)
            moving = join[None, :] & (pull != 0.0)
            at_lo &= ~moving
            at_hi &= ~moving
            at_zero = (at_zero & ~moving) | (join[None, :] & ~moving & self.kink)
            sign = np.where(moving, np.sign(pull), sign)
            active = active | join
        return None

    def _newton(self, fixed_d, free, shift, nu, cols):
        """Newton on ``phi(nu)`` for the active blocks ``cols``: ``(D, nu, converged)``."""
        grams = self.grams
        n, k = len(grams), len(cols)
        nu = np.array(nu, dtype=float)
        pos = [np.flatnonzero(free[i, cols]) for i in range(n)]
        # each response's system but for nu, gathered once for all the steps
        parts = []
        for i, f in enumerate(pos):
            if len(f):
                cells = cols[f]
                base = self.resid[i] - grams[i] @ fixed_d[i] - shift[i]
                parts.append((i, f, cells, grams[i][np.ix_(cells, cells)], base[cells],
                              np.ix_(f, f), np.arange(len(f))))
        last = np.inf
        with np.errstate(all="ignore"):
            for _ in range(_MAX_STEPS):
                d = fixed_d.copy()
                coupling = np.zeros((k, k))
                for i, f, cells, sub, rhs, where, diagonal in parts:
                    system = sub.copy()
                    system[diagonal, diagonal] += nu[f]
                    solved = _spd_solve_inverse(system, rhs)
                    if solved is None:
                        return d, nu, False
                    sol, inv = solved
                    d[i, cells] = sol
                    coupling[where] += np.outer(sol, sol) * inv
                norms = np.sqrt((d[:, cols] ** 2).sum(axis=0))
                if not (np.isfinite(norms).all() and (norms > 0.0).all()):
                    return d, nu, False
                phi = nu * norms - self.kappa[cols]
                worst = float((np.abs(phi) / self.kappa[cols]).max())
                if worst <= _RTOL or (worst <= _STALL and worst > 0.5 * last):
                    return d, nu, True
                last = worst
                jac = np.diag(norms) - (nu / norms)[:, None] * coupling
                try:
                    step = np.linalg.solve(jac, phi)
                except np.linalg.LinAlgError:
                    return d, nu, False
                new = nu - step
                nu = np.where(new > 0.0, new, 0.5 * nu)
        return d, nu, False


def _spd_solve_inverse(system: np.ndarray, rhs: np.ndarray):
    """``(system^-1 rhs, system^-1)`` of ``G_FF + diag(nu)`` (positive definite for ``nu > 0``)
    from one Cholesky factor: a third of the work of an LU inverse and an LU solve, which were
    half of the boxed Newton's time on wide found-cluster fits (100-130 free cells a
    response). Where the factor fails (a tiny ``nu`` against a singular ``G_FF``), the LU
    path's answer, or None where that is singular too."""
    factor, info = lapack.dpotrf(system, lower=False, clean=False)
    if info == 0:
        sol, info = lapack.dpotrs(factor, rhs)
        inv, info_inv = lapack.dpotri(factor)
        if info == 0 and info_inv == 0:  # (dpotri writes the upper triangle only)
            return sol, np.where(_upper(len(inv)), inv, inv.T)
    try:
        return np.linalg.solve(system, rhs), np.linalg.inv(system)
    except np.linalg.LinAlgError:
        return None


@functools.lru_cache(maxsize=64)
def _upper(size: int) -> np.ndarray:
    """The upper triangle's mask (diagonal included) of a ``size`` square, made once."""
    mask = np.triu(np.ones((size, size), dtype=bool))
    mask.setflags(write=False)  # (shared by every call of that size)
    return mask
