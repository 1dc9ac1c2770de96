"""Newton's point for FCGL blocks that hold cells at a bound (signs, ``nonneg``).

:func:`~._block_newton.block_newton` solves a cluster whose active cells are all strictly
inside the box, with one matrix ``G_AA + diag(nu)`` for the whole cluster. With a sign matrix
(its zeros pin cells at the prior) or a one-sided box, an active block usually holds cells at
a bound, and each response then has its own free cells ``F_i`` (in the active blocks ``A``,
off their bounds). The optimality conditions of a free cell are those of
:mod:`._block_newton` (``(G d_i - r_i)_j + nu_j d_ij = 0``, ``nu_j = kappa_j / ||D_j||``), so for
a given ``nu`` every response is one linear system,

    (G_FF + diag(nu_F)) d_iF = r_iF - (G d~_i)_F,

``d~_i`` the cells held at their bound (their ``D`` is ``bound - prior``), and what is left is
``|A|`` scalar equations ``phi_j(nu) = nu_j ||D_j(nu)|| - kappa_j = 0``, whose Jacobian
``J_jk = delta_jk ||D_j|| - (nu_j / ||D_j||) sum_i d_ij (K_i^-1)_jk d_ik`` sums the responses'
terms (``dd_iF / dnu_k = -K_i^-1 e_k d_ik``). A few Newton steps on ``nu`` give the point.

Which blocks are active and which cells sit at a bound is guessed from another point (an
interior-point answer, whose cells that belong at a bound are near it, not on it), per
cluster, at the fractions of :data:`~._block_newton.POLISH_GUESSES` of the cluster's largest
block norm, coarse first; then corrected up to ``_ROUNDS`` times: a free cell that crosses its
bound is held there, a held cell whose condition fails (moving it inwards lowers the
objective) is freed, a zero block whose condition fails joins, and a block whose ``nu`` grows
more than ``_DROP_GROWTH``-fold (its norm heading to zero) leaves. The certificate judges the
result as any other point.

Only where the iterations would crawl (a wide panel at a small penalty: the engine runs this
from :meth:`FastEngine.polish_start` on CVXPY's point), so the per-response loops are over the
few responses of such panels.
"""

from __future__ import annotations

import numpy as np

from ._block_newton import _DROP_GROWTH, _MAX_STEPS, _RTOL, _STALL, POLISH_GUESSES

__all__ = ["boxed_block_polish"]

_ROUNDS = 8  # corrections of one guess's sets


def boxed_block_polish(engine, x: np.ndarray, lam: float,
                       rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Newton's point of every cluster of ``rows`` (whole clusters) from ``x``.

    Returns ``(x with those clusters' points, per response: a point was found)``; FCGL
    blocks without an L1 share, not cooperative (the caller's :attr:`polishes_by_newton`).
    """
    e = engine
    out = np.clip(x, e.lo, e.hi)
    found = np.zeros(e.n, dtype=bool)
    d_all = out - e.prior
    resid = e._prior_residual()
    kappa = 0.5 * e.t_rows * lam * e.group_w.reshape(e.n_units, e.m)
    for g in np.unique(e.unit[rows]):
        idx = np.flatnonzero(e.unit == g)
        d = _cluster(e, idx, d_all[idx], resid[idx], kappa[g])
        if d is not None:
            out[idx] = e.prior[idx] + d
            found[idx] = True
    return out, found


def _cluster(e, idx, d, resid, kappa):
    """One cluster's ``D`` at Newton's point from the guesses, or None."""
    norms = np.sqrt((d * d).sum(axis=0))
    top = norms.max()
    if not top > 0.0:
        return None
    dl, du = e.dl[idx], e.du[idx]
    grams = [e.gram[p] for p in e.pattern[idx]]
    for fraction in POLISH_GUESSES:
        near = fraction * top
        active = norms > near
        at_lo = (dl == du) | (d - dl <= near)
        at_hi = ~at_lo & (du - d <= near)
        found = _corrected(grams, resid, dl, du, kappa, active, at_lo, at_hi,
                           np.where(active, norms, 0.0))
        if found is not None:
            return found
    return None


def _corrected(grams, resid, dl, du, kappa, active, at_lo, at_hi, norms):
    """Newton on the guessed sets, corrected (module docstring) until its point keeps them."""
    pinned = dl == du
    for _ in range(_ROUNDS):
        held = active[None, :] & (at_lo | at_hi)
        fixed_d = np.where(held & at_lo, dl, 0.0) + np.where(held & at_hi, du, 0.0)
        free = active[None, :] & ~held
        cols = np.flatnonzero(active)
        if not len(cols):
            return None
        nu0 = kappa[cols] / np.where(norms[cols] > 0.0, norms[cols], 1e-300)
        d, nu, ok = _newton(grams, resid, fixed_d, free, kappa[cols], nu0, cols)
        if not ok:
            with np.errstate(divide="ignore", invalid="ignore"):
                growth = nu / nu0
            if not np.isfinite(growth).any():
                return None
            drop = growth > _DROP_GROWTH
            if not drop.any():
                drop = growth >= np.nanmax(growth)
            active[cols[drop]] = False
            continue
        # the conditions of the held cells and of the zero blocks, at this point
        grad = np.stack([g @ di for g, di in zip(grams, d, strict=True)]) - resid
        nu_all = np.zeros(len(kappa))
        nu_all[cols] = nu
        station = grad + nu_all[None, :] * d
        lo_cross = free & (d < dl)
        hi_cross = free & (d > du)
        release = held & ~pinned & ((at_lo & (station < 0.0)) | (at_hi & (station > 0.0)))
        pull = -grad
        pull = np.where(((pull > 0.0) & (du <= 0.0)) | ((pull < 0.0) & (dl >= 0.0)), 0.0, pull)
        size = np.sqrt((pull * pull).sum(axis=0))
        scale = np.abs(grad).max(axis=0)
        join = ~active & (size > kappa * (1.0 + 1e-9) + 1e-9 * scale)
        if not (lo_cross.any() or hi_cross.any() or release.any() or join.any()):
            return np.where(active[None, :], d, 0.0)
        at_lo = (at_lo & ~release) | lo_cross
        at_hi = (at_hi & ~release & ~lo_cross) | hi_cross
        at_lo &= ~hi_cross
        norms = np.where(active, np.sqrt((d * d).sum(axis=0)), 0.0)
        # a joining block starts with the norm its pull would give it
        norms = np.where(join, np.maximum(size - kappa, 1e-3 * norms.max()), norms)
        active = active | join
    return None


def _newton(grams, resid, fixed_d, free, kappa, nu, cols):
    """Newton on ``phi(nu)`` for one cluster's active blocks ``cols``: ``(D, nu, converged)``."""
    n, k = len(grams), len(cols)
    nu = np.array(nu, dtype=float)
    pos = [np.flatnonzero(free[i, cols]) for i in range(n)]
    base = [resid[i] - grams[i] @ fixed_d[i] for i in range(n)]
    last = np.inf
    with np.errstate(all="ignore"):
        for _ in range(_MAX_STEPS):
            d = fixed_d.copy()
            coupling = np.zeros((k, k))
            for i in range(n):
                f = pos[i]
                if not len(f):
                    continue
                cells = cols[f]
                system = grams[i][np.ix_(cells, cells)] + np.diag(nu[f])
                try:
                    inv = np.linalg.inv(system)
                    sol = np.linalg.solve(system, base[i][cells])
                except np.linalg.LinAlgError:
                    return d, nu, False
                d[i, cells] = sol
                coupling[np.ix_(f, f)] += np.outer(sol, sol) * inv
            norms = np.sqrt((d[:, cols] ** 2).sum(axis=0))
            if not (np.isfinite(norms).all() and (norms > 0.0).all()):
                return d, nu, False
            phi = nu * norms - kappa
            worst = float((np.abs(phi) / kappa).max())
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
