"""The proximal operators of the fast engine's penalties, exact, and the group tables they use.

In ``D = B - B0`` the box becomes ``[l, u] = [lo - B0, hi - B0]``, which contains 0 (the prior
respects the signs). With ``alpha_j = step * lambda * a * omega_j`` (``omega`` the adaptive L1
weights, 1 without them) and ``beta_g = step * lambda * (1-a) w_g`` (``w_g`` the group's whole
weight, adaptive row or block weight included) the prox of a group ``g`` at ``v`` is

    argmin_{l <= d <= u}  1/2 ||d - v||^2 + sum_j alpha_j |d_j| + beta_g ||d||_2.

Everything below holds with a threshold per coordinate (``soft(v, alpha)`` is elementwise).

*Cell geometry* (and ``a = 1``): separable, ``d = clip(soft(v, alpha), l, u)`` (a convex
function of one variable is minimised over an interval by clipping its free minimiser).

*Groups with a box* (:func:`prox_sparse_group`). Let ``w = soft(v, alpha)`` with the directions
the box forbids removed (``w_j := 0`` where ``w_j < 0 = l_j`` or ``w_j > 0 = u_j``).

1. ``d = 0`` iff ``0`` is a subgradient there: ``v in alpha [-1,1] + beta B_2 + N_box(0)``, i.e.
   ``||w||_2 <= beta``.
2. Otherwise ``d != 0`` and the group term is differentiable at ``d``; with the multiplier
   ``mu = beta / ||d||`` every coordinate solves the one-variable problem
   ``min_{l_j <= d_j <= u_j} (1+mu)/2 d_j^2 - v_j d_j + alpha |d_j|``, so
   ``d(mu) = clip(w / (1 + mu), l, u)`` and ``mu`` is the root of ``mu ||d(mu)||_2 = beta``.
   In ``t = 1/(1+mu)`` in (0, 1) the condition reads

       psi(t) = (1-t)/t * ||clip(t w, l, u)||_2 = beta.

   Each coordinate of ``(1-t)/t clip(t w_j)`` is ``(1-t) w_j`` while unclipped and
   ``(1-t)/t b_j`` once clipped at its bound ``b_j``: both shrink as ``t`` grows, so ``psi``
   decreases from ``||w||_2`` (t -> 0) to 0 (t = 1) and the root is unique. Coordinate ``j``
   is clipped for ``t > t_j = b_j / |w_j|``; between consecutive breakpoints (sorted, with
   ``A`` = sum of the unclipped ``w_j^2`` and ``C`` = sum of the clipped ``b_j^2``)

       psi(t) = (1-t) sqrt(A + C / t^2),

   a product of two positive, decreasing, convex functions, hence convex. The piece holding the
   root is found by evaluating ``psi`` at the breakpoints; Newton's method started at the
   piece's left end then increases monotonically to the root (a convex decreasing function's
   tangent lies below it), to machine precision in a few steps. When no coordinate is clipped
   at the root this is the closed form ``d = w (1 - beta / ||w||)``, used directly for every
   group whose closed form lies in the box; only the others go through the root-find.

*Cooperative blocks* (:func:`prox_cooperative`). The block term is
``beta_g (||d+||_2 + ||d-||_2)``. Its prox keeps every coordinate's sign: if ``d_j v_j < 0``,
setting ``d_j = 0`` (in the box, which contains 0) brings ``d_j`` closer to ``v_j``, lowers
``alpha_j |d_j|`` and removes ``d_j`` from one of the two norms, so it lowers the objective
strictly. With the signs of ``v`` fixed, the coordinates where ``v_j > 0`` enter only ``||d+||``
and those where ``v_j < 0`` only ``||d-||``: the problem splits into two sparse-group proxes, one
on each sign half of the block, and each keeps the signs of its ``v`` (so the restriction
``d_j v_j >= 0`` is not active). Each is the sparse-group prox above: soft-threshold first (the
L1 prox, which keeps ``sign(v)`` or gives 0), then block soft-thresholding. So the cooperative
prox is :func:`prox_sparse_group` with the groups ``(block, sign of soft(v, alpha))``.

The tables (:func:`_row_member_table`, :func:`_block_member_table`, :func:`_member_table`)
list each group's coordinates in the flattened (N, M) array, so the per-group sums and the
root-finds above run as a few vectorised passes whatever the number of groups.
"""

from __future__ import annotations

import numpy as np

__all__ = ["prox_cooperative", "prox_l1_box", "prox_sparse_group", "sparse_group_roots"]

_EPS = np.finfo(float).eps


def _soft(v, threshold):
    return np.sign(v) * np.maximum(np.abs(v) - threshold, 0.0)


def prox_l1_box(v, threshold, lower, upper) -> np.ndarray:
    """``argmin_{lower <= d <= upper} 1/2 ||d - v||^2 + sum threshold_j |d_j|`` (elementwise).

    Parameters
    ----------
    v, threshold, lower, upper : array_like, broadcastable
        ``threshold >= 0``; ``lower <= upper`` (infinite bounds allowed).

    Returns
    -------
    numpy.ndarray
        ``clip(soft(v, threshold), lower, upper)``.
    """
    return np.clip(_soft(np.asarray(v, dtype=float), threshold), lower, upper)


def _group_root(w, bound, beta) -> np.ndarray:
    """``t`` in (0, 1) with ``(1-t)/t ||clip(t w, -b, b)||_2 = beta`` per row (see module doc).

    ``w`` (K x k) holds the blocked-direction-free soft-thresholded values, ``bound`` (K x k)
    the bound's magnitude in the direction of ``w`` (> 0 or inf), ``beta`` (K,) with
    ``||w_row|| > beta``. Padding entries have ``w = 0``.
    """
    aw = np.abs(w)
    with np.errstate(divide="ignore", invalid="ignore"):
        tj = np.where((aw > 0) & np.isfinite(bound), bound / aw, 1.0)
    tj = np.minimum(tj, 1.0)
    order = np.argsort(tj, axis=1, kind="stable")
    ts = np.take_along_axis(tj, order, axis=1)
    w2 = np.take_along_axis(aw * aw, order, axis=1)
    b2 = np.take_along_axis(np.where(tj < 1.0, np.where(np.isfinite(bound), bound, 0.0), 0.0)
                            ** 2, order, axis=1)
    total = w2.sum(axis=1)
    cw = np.cumsum(w2, axis=1)
    cb = np.cumsum(b2, axis=1)
    zeros = np.zeros((w.shape[0], 1))
    cw_ex = np.hstack([zeros, cw[:, :-1]])  # clipped set at t_k: the k entries before it
    cb_ex = np.hstack([zeros, cb[:, :-1]])
    with np.errstate(divide="ignore", invalid="ignore"):
        a_k = np.maximum(total[:, None] - cw_ex, 0.0)
        h_k = (1.0 - ts) * np.sqrt(a_k + cb_ex / ts**2) - beta[:, None]
    h_k = np.where(ts < 1.0, h_k, -1.0)
    # psi decreases in t: the root lies after the last breakpoint with psi >= beta.
    n_ok = (h_k >= 0.0).sum(axis=1)
    rows = np.arange(w.shape[0])
    k = np.maximum(n_ok - 1, 0)
    has = n_ok > 0
    t = np.where(has, ts[rows, k], 0.0)
    a_piece = np.where(has, np.maximum(total - cw[rows, k], 0.0), total)
    c_piece = np.where(has, cb[rows, k], 0.0)
    # No clipped coordinate before the root: the closed form.
    t_free = 1.0 - beta / np.sqrt(np.maximum(total, 1e-300))
    t = np.where(has, t, t_free)
    nxt = np.where(has, ts[rows, np.minimum(k + 1, ts.shape[1] - 1)], 1.0)
    nxt = np.where(has & (k + 1 < ts.shape[1]), nxt, 1.0)
    todo = has.copy()
    for _ in range(60):
        if not todo.any():
            break
        tt = t[todo]
        a, c, b = a_piece[todo], c_piece[todo], beta[todo]
        root = np.sqrt(a + c / tt**2)
        h = (1.0 - tt) * root - b
        dh = -root - (1.0 - tt) * c / (tt**3 * root)
        step = -h / dh
        new = np.clip(tt + step, tt, nxt[todo])
        done = np.abs(new - tt) <= 4 * _EPS * new
        t[todo] = new
        idx = np.flatnonzero(todo)
        todo[idx[done]] = False
    return t


def prox_sparse_group(v, alpha, beta, groups, lower, upper) -> np.ndarray:
    """Exact prox of the sparse-group penalty with a box, for any partition of the cells.

    Solves, for every group ``g`` of cells,
    ``argmin_{lower <= d <= upper} 1/2 ||d - v||^2 + sum_j alpha_j |d_j| + beta_g ||d_g||_2``
    (closed form or one scalar root per group, see the module docstring).

    Parameters
    ----------
    v, alpha, lower, upper : array_like of the same shape (or broadcastable to ``v``)
        ``alpha >= 0``; the box must contain 0: ``lower <= 0 <= upper``.
    beta : array_like, shape (n_groups,)
        Group thresholds ``>= 0``.
    groups : array_like of int, shape of ``v``
        Group code ``0 .. n_groups-1`` of every cell.

    Returns
    -------
    numpy.ndarray, shape of ``v``
    """
    v = np.asarray(v, dtype=float)
    shape = v.shape
    lower = np.broadcast_to(np.asarray(lower, dtype=float), shape).ravel()
    upper = np.broadcast_to(np.asarray(upper, dtype=float), shape).ravel()
    if np.any(lower > 0) or np.any(upper < 0):
        raise ValueError("prox_sparse_group: the box must contain 0 (lower <= 0 <= upper)")
    gid = np.asarray(groups).ravel()
    beta = np.asarray(beta, dtype=float).ravel()
    alpha = np.broadcast_to(np.asarray(alpha, dtype=float), shape).ravel()
    table = _member_table(gid, len(beta))
    w = _soft(v.ravel(), alpha)
    return _prox_groups(w, beta, gid, lower, upper, table).reshape(shape)


def prox_cooperative(v, alpha, beta, groups, lower, upper) -> np.ndarray:
    """Exact prox of the sparse cooperative penalty with a box, for any partition of the cells.

    Solves, for every group ``g`` of cells,
    ``argmin_{lower <= d <= upper} 1/2 ||d - v||^2 + sum_j alpha_j |d_j|
    + beta_g (||(d_g)+||_2 + ||(d_g)-||_2)``: the sparse-group prox on each sign half of every
    group (see the module docstring for the proof). Parameters and result as
    :func:`prox_sparse_group`'s.
    """
    v = np.asarray(v, dtype=float)
    shape = v.shape
    alpha = np.broadcast_to(np.asarray(alpha, dtype=float), shape).ravel()
    w = _soft(v.ravel(), alpha)
    halves = 2 * np.asarray(groups).ravel() + (w < 0)
    beta = np.repeat(np.asarray(beta, dtype=float).ravel(), 2)  # half 2g + s of group g
    return prox_sparse_group(v, alpha.reshape(shape), beta, halves.reshape(shape), lower, upper)


def _row_member_table(n: int, m: int) -> np.ndarray:
    """:func:`_member_table` of row groups (group ``i``: the cells of row ``i``)."""
    return np.arange(n * m).reshape(n, m)


def _block_member_table(unit: np.ndarray, n_units: int, m: int) -> np.ndarray:
    """:func:`_member_table` of FCGL blocks (group ``g M + j``: column ``j`` of cluster ``g``'s
    rows), from a sort of the N rows instead of the N M cells."""
    n = unit.size
    order = np.argsort(unit, kind="stable")
    counts = np.bincount(unit, minlength=n_units)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pos = np.empty(n, dtype=np.intp)
    pos[order] = np.arange(n) - np.repeat(starts, counts)
    table = np.full((n_units * m, int(counts.max(initial=1))), n * m, dtype=np.intp)
    cols = np.arange(m)
    table[(unit[:, None] * m + cols).ravel(), np.repeat(pos, m)] = \
        (np.arange(n)[:, None] * m + cols).ravel()
    return table


def sparse_group_roots(vals, om, c, a, weighted: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the ``rho >= 0`` with ``||soft(vals, rho a om)||_2 = rho c`` (``vals >= 0``,
    ``0 < a < 1``): the sparse-group gauge of the dual norm (:meth:`FastEngine._group_dual`)
    and each group's root of ``lambda_max`` (:mod:`._lambda_max`).

    Sorted by ``vals / om`` (descending), on the piece where the ``k`` first cells exceed
    their thresholds ``rho a om_j`` the condition is ``(a^2 K2 - c^2) rho^2 - 2 a S1 rho + S2
    = 0`` with the partial sums ``K2 = sum om_j^2``, ``S1 = sum om_j vals_j``, ``S2 = sum
    vals_j^2`` (``om = 1``, ``weighted=False``: ``K2 = k``); its smaller root, in the form
    without cancellation. Returns ``(rho, found)``: ``rho`` 0 and ``found`` False where
    round-off hides the piece (ties), or for an all-zero row.
    """
    if not weighted:
        srt = -np.sort(-vals, axis=1)
        s1 = np.cumsum(srt, axis=1)
        s2 = np.cumsum(srt * srt, axis=1)
        k2 = np.arange(1, srt.shape[1] + 1)[None, :]
    else:
        by = np.argsort(-(vals / om), axis=1, kind="stable")
        rs = np.take_along_axis(vals, by, axis=1)
        os = np.take_along_axis(om, by, axis=1)
        srt = rs / os  # the ratios, descending: where each cell's threshold bites
        s1 = np.cumsum(rs * os, axis=1)
        s2 = np.cumsum(rs * rs, axis=1)
        k2 = np.cumsum(os * os, axis=1)
    qa = k2 * a * a - (c * c)[:, None]
    qb = a * s1
    disc = np.sqrt(np.maximum(qb * qb - qa * s2, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        cand = np.where(s2 > 0, s2 / (qb + disc), 0.0)
    # the piece is valid when srt[k] > cand*a >= srt[k+1]
    nxt = np.hstack([srt[:, 1:], np.zeros((srt.shape[0], 1))])
    ok = (srt * (1 + 1e-12) >= cand * a) & (cand * a >= nxt * (1 - 1e-12))
    ok &= srt > 0
    return np.where(ok, cand, 0.0).max(axis=1), ok.any(axis=1)


def _member_table(gid: np.ndarray, n_groups: int) -> np.ndarray:
    """(n_groups, kmax) flat cell indices of every group, padded with ``gid.size``."""
    order = np.argsort(gid, kind="stable")
    counts = np.bincount(gid, minlength=n_groups)
    kmax = int(counts.max(initial=1))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pos = np.arange(gid.size) - np.repeat(starts, counts)
    table = np.full((n_groups, kmax), gid.size, dtype=np.intp)
    table[gid[order], pos] = order
    return table


def _prox_groups(w, beta, gid, lower, upper, table, row_norms=None,
                 boxed: bool = True) -> np.ndarray:
    """Group step of the sparse-group prox on soft-thresholded ``w`` (flat), see module doc.

    ``table`` (:func:`_member_table` of ``gid``) is only needed when a bound bites; None builds
    it then. ``boxed=False`` says every bound is infinite: the box's two passes are skipped."""
    if boxed:
        # A direction the box forbids (bound exactly 0) can never be taken: drop it first.
        w = np.where(((w < 0) & (lower >= 0)) | ((w > 0) & (upper <= 0)), 0.0, w)
    if row_norms is not None:  # row geometry: groups are rows of length row_norms
        rows = w.reshape(-1, row_norms)
        norm = np.sqrt(np.einsum("ij,ij->i", rows, rows))
    else:
        norm = np.sqrt(np.bincount(gid, weights=w * w, minlength=len(beta)))
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(norm > beta, 1.0 - beta / norm, 0.0)
    d = (rows * factor[:, None]).ravel() if row_norms is not None else w * factor[gid]
    if not boxed:
        return d
    bad = (d < lower) | (d > upper)
    if not bad.any():
        return d
    flagged = np.unique(gid[bad])
    if table is None:
        table = _member_table(gid, len(beta))
    cells = table[flagged]  # (K, kmax), padded with w.size
    w_ext = np.append(w, 0.0)
    lo_ext = np.append(lower, -np.inf)
    up_ext = np.append(upper, np.inf)
    wf = w_ext[cells]
    bound = np.where(wf > 0, up_ext[cells], -lo_ext[cells])
    t = _group_root(wf, bound, beta[flagged])
    df = np.clip(t[:, None] * wf, lo_ext[cells], up_ext[cells])
    real = cells < w.size
    d[cells[real]] = df[real]
    return d


# ---------------------------------------------------------------------- the engine
