"""FCGL blocks with a box or an L1 share on wide panels: the active blocks and held cells from
the duals of the responses' ridge problems, where the guesses of :mod:`._boxed_blocks` fail.

One cluster's problem (responses ``i``, blocks ``j``: factor ``j`` over the cluster's members),
in the units of :mod:`._boxed_blocks`: ``sum_i (1/2 d_i'G_i d_i - r_i'd_i + sum_j k1_ij |d_ij|)
+ sum_j kappa_j ||D_j||`` over the box. At the minimiser an active block's norm has the gradient
``nu_j D_j``, ``nu_j = kappa_j / ||D_j||``, so with ``nu`` fixed the problem separates into one
box-constrained ridge problem per response with the ridge ``nu_j`` on cell ``j`` (the cells of
zero blocks pinned at zero), each solved by its dual (:func:`~._box_ridge.box_ridge`), which
converges whatever the free cells, where :mod:`._boxed_blocks`' corrections oscillate once a
response has more free cells than rows (its systems ``G_FF + diag(nu_F)`` then nearly
singular: a non-negative cluster on the fold of 40 rows of a (60,100,20) cross-validation, 41-87
free cells per response).

What is left is the blocks' ``nu``, found in ``eta_j = kappa_j / nu_j``. By the variational
form ``kappa_j ||D_j|| = min_{eta_j >= 0} kappa_j (||D_j||^2 / eta_j + eta_j) / 2`` the
problem is the minimum over ``eta >= 0`` of ``h(eta)``, the minimum over ``D`` with the ridges
fixed, which is convex, with ``dh / deta_j = (kappa_j / 2)(1 - ||D_j||^2 / eta_j^2)``; a block
with ``eta_j = 0`` is pinned at zero, and its slope there is the limit with its pull
(soft-thresholded, kept in the box) for ``||D_j|| / eta_j``: negative iff zero fails its
condition. Its Hessian is ``(1 / (eta_j eta_k)) sum_i d_ij (P_i)_jk d_ik`` over response
``i``'s free cells, ``P_i = A_F'(I + A_F N^-1 A_F')^-1 A_F`` (Woodbury in the rows), plus
``nu_j d_ij^2 / eta_j^2`` for cells held off zero. The steps: from the Gram's largest eigenvalue
(cold) or a start's block norms, majorise-minimise steps ``eta_j = ||D_j||`` (which never raise
``h``) while some block's norm is ``e`` times its ``eta`` or more (there ``h`` is nearly linear
and Newton's model asks for too little); then projected Newton steps, a block whose step
crosses zero with a positive slope taken to zero at once (where the steps in ``log nu`` climbed
by ~15 % a step for decades), each other block at most a decade up or down. A step is kept
where ``h``'s slope along it, at its end, is not positive (by convexity ``h`` fell; slopes,
not values of ``h``, which at 1e-6 of ``lambda_max`` differ below the duals' rounding), else
halved; a block it took to zero whose slope there is negative goes a decade down instead. Once
the ``eta`` settle, the zero blocks whose pull exceeds ``kappa_j`` join by a step tested the
same way. The slopes take the smooth gradient from the duals' ``w`` (``A'w - r``): their ``d``
is only as accurate as ``(r - A'w) / nu``.

What this settles is which blocks are active and which cells are held at a bound or at zero;
:mod:`._boxed_blocks`' Newton on those sets (and its corrections, should one be off) gives the
point to rounding, and the certificate judges it.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import LinAlgError, cho_factor, cho_solve

from ._box_ridge import box_pull, box_ridge, pattern_roots
from ._boxed_blocks import _Cluster
from ._penalty import DENSE_CLUSTER_CELLS

__all__ = ["dual_block_polish", "dual_blocks_apply", "overfull"]

# evaluations of the responses' duals per cluster, a budget the projected steps have not
# approached: 8-89 on a sweep of 30 one-cluster fits (T 20-60, M 50-120, N 5-20, 1e-6 to 1e-3
# of lambda_max), 25-38 on tests/test_dual_blocks.py's cases, under three BLAS set-ups (the
# steps in log nu before them needed up to 200, and ran out on two of the sweep's fits)
_OUTER = 200
# (250,500,5) is 1.6e8: 4 s with one cluster, signs and a prior at the default penalty
_DUAL_MAX = 2e9
_RESUMES = 3  # a response's dual resumed this often at the same nu where a far start needs it
_TOL = 1e-10  # max |log(||D|| / eta)| (= log(nu ||D|| / kappa)) at which eta is taken
_SETTLED = 1e-3  # ... or this, with every response's free cells as at the previous evaluation
_SHORTEST_T = 1e-6  # the shortest fraction of a projected Newton step


def dual_blocks_apply(engine, one_cluster: bool = False) -> bool:
    """Where :func:`dual_block_polish` is tried: FCGL blocks on a wide panel with a box (signs,
    ``nonneg``) or, as one cluster, an L1 share (:attr:`FastEngine.polishes_held_blocks`: where
    the probe runs), with one cluster (``one_cluster``: every response of the fit in it, not a
    cluster found among others) or a cluster of at least
    :data:`~._penalty.DENSE_CLUSTER_CELLS` cells, within ``_DUAL_MAX`` (``N M min(M, T')^2``:
    the duals' systems are at most ``T'`` square, their Hessian terms ``|F|^2 T'`` per
    response). Found clusters below that size, or without a box, go to Clarabel: on a sweep of
    300 wide FCGL fits the duals settled 10 such boxed fits and spared 6.5 s, and ran out of
    evaluations on 9 others (join-and-leave cycles) and cost 7.3 s; sparse-group found clusters
    without a box cost up to 3.6 s more each. With one cluster they settled every such fit of
    the sweep: boxed, 1,000-1,500 cells (Clarabel 0.2-4.8 s, the duals 0.08-0.14 s); without a
    box, 190-2,300 cells (Clarabel 0.03-5.1 s, the duals 0.04-0.26 s)."""
    e = engine
    size = e.n * e.m * float(min(e.m, e.t_rows)) ** 2
    one = one_cluster and e.n_units == 1
    return (e.polishes_held_blocks and (one or not e._unboxed)
            and (one or e.spec.largest_cluster_cells() >= DENSE_CLUSTER_CELLS)
            and size <= _DUAL_MAX)


def overfull(engine, x: np.ndarray) -> bool:
    """Some response of ``x`` has more free cells (in a nonzero block, strictly inside the
    box, off zero where an L1 term puts a kink there) than rows."""
    from ._block_newton import block_activity

    e = engine
    active = block_activity(e, x)[0][e.unit]
    free = active & (x > e.lo) & (x < e.hi) & ((x != e.prior) | (e.omega == 0.0) | (e.a == 0.0))
    return bool((free.sum(axis=1) > e.t_rows).any())


def dual_block_polish(engine, lam: float, rows: np.ndarray,
                      start: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Newton's point of every cluster of ``rows`` (whole clusters) on the sets the duals find
    (see the module docstring), from the prior or from ``start`` (its active blocks and norms).

    Returns ``(x with those clusters' points, per response: a point was found)``; elsewhere
    ``x`` is ``start`` in the box (or the prior).
    """
    e = engine
    out = e.prior.copy() if start is None else np.clip(start, e.lo, e.hi)
    found = np.zeros(e.n, dtype=bool)
    half = 0.5 * e.t_rows * lam
    kappa = half * (1.0 - e.a) * e.group_w.reshape(e.n_units, e.m)
    k1 = half * e.a * e.omega
    resid = e._prior_residual()
    roots = pattern_roots(e, np.unique(e.pattern[rows]))
    for g in np.unique(e.unit[rows]):
        idx = np.flatnonzero(e.unit == g)
        near = None if start is None else out[idx] - e.prior[idx]
        sets = _sets([roots[int(p)] for p in e.pattern[idx]], resid[idx], e.dl[idx],
                     e.du[idx], kappa[g], k1[idx], near)
        if sets is None:
            continue
        problem = _Cluster([e.gram[p] for p in e.pattern[idx]], resid[idx], e.dl[idx],
                           e.du[idx], kappa[g], k1[idx])
        d = problem._corrected(*sets)
        if d is not None:
            out[idx] = e.prior[idx] + d
            found[idx] = True
    return out, found


def _pull_sizes(grad, dl, du, k1) -> np.ndarray:
    """Per block: the norm of its cells' :func:`~._box_ridge.box_pull` at ``-grad`` (a zero
    block's condition is ``size <= kappa``)."""
    pull = box_pull(-grad, dl, du, k1)
    return np.sqrt((pull * pull).sum(axis=0))


def _sets(roots, resid, dl, du, kappa, k1, near):
    """The sets :meth:`_Cluster._corrected` starts from: ``(active, at_lo, at_hi, at_zero,
    sign, norms)``, or None where the duals did not settle."""
    n, m = resid.shape
    top = max(t for _, t in roots)
    ws = [np.zeros(a.shape[0]) for a, _ in roots]
    if near is not None and np.any(near):
        eta = np.sqrt((near * near).sum(axis=0))  # (eta_j = ||D_j|| at the minimiser)
        ws = [a @ d for (a, _), d in zip(roots, near, strict=True)]
    else:
        # from nu = the Gram's largest eigenvalue, where the duals are well conditioned
        eta = np.where(_pull_sizes(-resid, dl, du, k1) > kappa, kappa / top, 0.0)
    last = None  # the free cells of the previous accepted evaluation
    base = None  # the line search: (eta, slope, step, t, ws, norms) where it started
    for _ in range(_OUTER):
        active = eta > 0.0
        if not active.any():
            return None
        nu = np.where(active, kappa / np.where(active, eta, 1.0), 1.0)
        trial_ws = [w.copy() for w in ws]
        solved = _duals(roots, resid, nu, np.where(active, dl, 0.0), np.where(active, du, 0.0),
                        k1, trial_ws)
        if solved is not None:
            d, free = solved
            norms = np.sqrt((d * d).sum(axis=0))
            grad = _gradient(roots, resid, trial_ws)
            slope = _eta_gradient(grad, norms, eta, dl, du, k1, kappa)
        if base is not None:
            # accepted where h's slope along the step, at its end, is not positive: by
            # convexity h(eta) <= h(start) + slope'(eta - start) <= h(start). Gradients, not
            # values of h: at 1e-6 of lambda_max the norms' terms are 1e-10 of h, below the
            # duals' rounding, while the slope is relative to kappa
            start, g0, step, t, ws0, norms0 = base
            bad = (start > 0.0) & (eta == 0.0) & (slope < 0.0)
            if solved is not None and bad.any():
                # a block the step took to zero whose pull there exceeds kappa (h falls as it
                # leaves zero: its minimiser is positive): a decade down instead
                step = np.where(bad, -0.9 * start / t, step)
                base = (start, g0, step, t, ws0, norms0)
                eta = np.maximum(start + t * step, 0.0)
                ws = [w.copy() for w in ws0]
                continue
            if solved is None or float(slope @ (eta - start)) > 0.0:
                ws = [w.copy() for w in ws0]
                if t <= _SHORTEST_T:
                    # (rounding in the slopes): the majorise-minimise step from the start
                    eta, base = _mm_step(start, norms0), None
                    continue
                t *= 0.5
                base = (start, g0, step, t, ws0, norms0)
                eta = np.maximum(start + t * step, 0.0)
                continue
        elif solved is None:
            return None
        ws = trial_ws
        vanished = active & (norms == 0.0)  # every cell held at zero
        if vanished.any():
            eta = np.where(vanished, 0.0, eta)
            last = base = None
            continue
        phi = np.where(active, np.log(np.where(active, norms, 1.0) / np.where(active, eta, 1.0)),
                       0.0)
        worst = float(np.abs(phi).max())
        settled = last is not None and bool((free == last).all())
        last = free
        if worst <= _TOL or (settled and worst <= _SETTLED):
            pull = _pull_sizes(grad, dl, du, k1)
            join = ~active & (pull > kappa * (1.0 + 1e-9) + 1e-9 * np.abs(grad).max(axis=0))
            if not join.any():
                at_lo = ~free & (d <= dl)
                at_hi = ~free & ~at_lo & (d >= du)
                at_zero = ~free & ~at_lo & ~at_hi
                return active, at_lo, at_hi, at_zero, np.sign(d), norms
            # the joining blocks from zero, where h falls along them (their slopes there
            # negative), by a step tested as Newton's: without it a block joined at too large
            # an eta, the others' steps took it back to zero, and it joined again (on an
            # overfull response the others absorb its part)
            curvature = np.maximum(_diagonals(roots).mean(axis=0), np.finfo(float).tiny)
            step = np.where(join, (pull - kappa) / curvature, 0.0)  # (its norm, for one cell)
            base = (eta.copy(), slope, step, 1.0, [w.copy() for w in ws], norms)
            eta = eta + step
            last = None
            continue
        if (phi > 1.0).any():
            # a block's norm far above its eta (h nearly linear along it, where Newton's
            # quadratic model asks for too little: from nu = the Gram's top): the
            # majorise-minimise step eta = ||D|| for all, which never raises h
            eta, base = _mm_step(eta, norms), None
            continue
        step = _projected_newton(roots, free, d, nu, eta, slope, active)
        if step is None:
            return None
        # each block at most a decade up per step: each nu's ws start the next one's duals
        # near their answer; the whole step scaled down instead where clipping would lose
        # half its descent (a block just joined, its eta far below its norm's: the clipped
        # step nearly orthogonal to the gradient, and no fraction of it passed the test)
        # and, unless it goes to zero (above), at most a decade down
        going = step == -eta
        clipped = np.where(going, step, np.clip(step, -0.9 * eta, 9.0 * eta))
        t = 1.0
        if float(slope @ clipped) <= 0.5 * float(slope @ step):
            step = clipped
        else:
            ratio = np.where(step > 0.0, 9.0 * eta, np.where(going, np.inf, 0.9 * eta))
            # by the blocks whose own slope the step descends; one it moves up its slope (the
            # coupling's doing) is clipped alone, which only adds descent: on (54,151,16) and
            # (60,162,10) such a block, its eta 1e-25 or 1e-9 and its Newton step -0.1, bounded
            # t to its decade, 1e-23 or 1e-8, and the duals ran out of evaluations
            bounds = (step != 0.0) & (slope * step < 0.0)
            t = min(1.0, float(np.min(ratio[bounds] / np.abs(step[bounds]), initial=1.0)))
            step = np.where(bounds, step, clipped)
        base = (eta.copy(), slope, step, t, [w.copy() for w in ws], norms)
        eta = np.maximum(eta + t * step, 0.0)
    return None


def _mm_step(eta, norms) -> np.ndarray:
    """The majorise-minimise step ``eta_j = ||D_j||`` (the minimiser in ``eta`` of the
    variational form at ``D``, so ``h`` does not rise), at most a decade up."""
    return np.where(eta > 0.0, np.minimum(norms, 10.0 * eta), 0.0)


def _eta_gradient(grad, norms, eta, dl, du, k1, kappa) -> np.ndarray:
    """``dh / deta_j = (kappa_j / 2)(1 - ||D_j||^2 / eta_j^2)``; at ``eta_j = 0`` (the block
    pinned at zero) its limit, with the block's pull (soft-thresholded, in the box) for
    ``||D_j|| / eta_j``."""
    active = eta > 0.0
    ratio = np.where(active, norms / np.where(active, eta, 1.0),
                     _pull_sizes(grad, dl, du, k1) / kappa)
    return 0.5 * kappa * (1.0 - ratio * ratio)


def _projected_newton(roots, free, d, nu, eta, slope, active):
    """The step of a projected Newton method on ``h`` over ``eta >= 0`` (zero outside the
    active blocks): blocks whose Newton step would cross zero with ``h`` rising from zero's
    side (positive slope) go to zero in one step (the step ``-eta_j``), the others take
    Newton's step on their own Hessian; None where that is singular."""
    cols = np.flatnonzero(active)
    hess = _eta_hessian(roots, free, d, nu, eta, cols)
    if hess is None:
        return None
    g = slope[cols]
    binding = np.zeros(len(cols), dtype=bool)
    step = np.zeros(len(cols))
    for _ in range(len(cols) + 1):
        rest = ~binding
        step[binding] = -eta[cols][binding]
        if rest.any():
            sub = hess[np.ix_(rest, rest)]
            # the binding blocks' steps are fixed: their coupling moves the others' rhs
            rhs = -g[rest] - hess[np.ix_(rest, binding)] @ step[binding]
            try:
                step[rest] = np.linalg.solve(sub, rhs)
            except np.linalg.LinAlgError:
                return None
        crossing = rest & (eta[cols] + step <= 0.0) & (g > 0.0)
        if not crossing.any():
            break
        binding |= crossing
    out = np.zeros(len(eta))
    out[cols] = step
    if not np.all(np.isfinite(out)) or float(slope @ out) >= 0.0:
        return None
    return out


def _eta_hessian(roots, free, d, nu, eta, cols):
    """``h``'s Hessian in ``eta`` on the blocks ``cols``: ``(1 / (eta_j eta_k)) sum_i
    d_ij (P_i)_jk d_ik`` over response ``i``'s free cells, ``P_i = A_F'(I + A_F N^-1
    A_F')^-1 A_F`` (``= N - N K_i^-1 N``, without its cancellation as ``nu`` grows), plus
    ``nu_j d_ij^2 / eta_j^2`` on the diagonal for cells held off zero; None where a system is
    singular."""
    m = len(eta)
    where = np.full(m, -1)
    where[cols] = np.arange(len(cols))
    hess = np.zeros((len(cols), len(cols)))
    held = np.zeros(m)
    for i, (a, _) in enumerate(roots):
        f = np.flatnonzero(free[i])
        held += np.where(free[i], 0.0, nu * d[i] * d[i])
        if not len(f):
            continue
        af = a[:, f]
        big = (af / nu[f]) @ af.T
        big[np.diag_indices(len(big))] += 1.0
        try:
            p = af.T @ cho_solve(cho_factor(big, check_finite=False), af, check_finite=False)
        except (LinAlgError, ValueError):
            return None
        pos = where[f]
        keep = pos >= 0
        pos, df = pos[keep], d[i, f][keep]
        hess[np.ix_(pos, pos)] += p[np.ix_(keep, keep)] * np.outer(df, df)
    hess[np.diag_indices(len(cols))] += held[cols]
    scale = 1.0 / eta[cols]
    return hess * np.outer(scale, scale)


def _gradient(roots, resid, ws) -> np.ndarray:
    """``A_i'w_i - r_i`` for every response: the smooth part's gradient ``G_i d_i - r_i`` at
    the duals' answer (``w_i = A_i d_i`` there), from their ``w``. Not from ``d``: with a tiny
    ``nu`` the duals' ``d`` is only as accurate as ``(r - A'w) / nu``, and on (20,50,8) at 1e-6
    of ``lambda_max`` ``G d - r`` showed a zero block's pull at 3.1 ``kappa`` where the duals'
    own limit (``||D_j|| / eta_j`` as ``eta_j`` goes to zero) was 0.79: it joined, and left,
    without end."""
    return np.stack([a.T @ w for (a, _), w in zip(roots, ws, strict=True)]) - resid


def _diagonals(roots) -> np.ndarray:
    """Every response's ``diag(G_i)``."""
    return np.stack([np.einsum("rm,rm->m", a, a) for a, _ in roots])


def _duals(roots, resid, nu, lo, hi, k1, ws):
    """Every response's dual at ``nu`` (``ws`` updated in place): ``(d, free)``, or None where
    one did not converge."""
    n, m = resid.shape
    d = np.zeros((n, m))
    free = np.zeros((n, m), dtype=bool)
    for i, (a, _) in enumerate(roots):
        for _attempt in range(_RESUMES + 1):
            d[i], ws[i], free[i], ok = box_ridge(a, resid[i], nu, lo[i], hi[i], k1[i], ws[i])
            if ok:
                break
        if not ok:
            return None
    return d, free
