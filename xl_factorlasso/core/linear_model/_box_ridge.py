"""Row groups with a box or an L1 share on wide panels: each response's held cells from the
dual of its box-constrained ridge problem (whose solver, :func:`box_ridge`, also serves FCGL's
blocks: :mod:`._dual_blocks`).

A row group (GROUP_LASSO, HCGL) is one problem per response ``i``: in ``d = b - b0``,

    minimise  1/2 d'G d - r'd + sum_j k1_j |d_j| + kappa ||d||   over  dl <= d <= du,

with ``r = c - G b0``, ``kappa = (T'/2) lambda (1 - a) w_i`` and ``k1_j = (T'/2) lambda a
omega_ij`` (the engine's units, as :mod:`._boxed_blocks`). At a nonzero minimiser the row norm's
gradient is ``nu d`` with ``nu = kappa / ||d||``, so the minimiser is that of the box-constrained
ridge problem with the ridge ``1/2 nu ||d||^2`` in place of the norm, for the ``nu`` that solves
``psi(nu) = nu ||d(nu)|| - kappa = 0`` (``psi`` increases with ``nu``).

On a wide panel (more factors than rows, ``G`` singular) at a small penalty ``nu`` is tiny and
the ridge problem nearly a bounded least-squares one: the proximal iterations crawl along the
Gram's flat directions (4-15 s, 20,000 iterations and then CVXPY, on random panels of 20-123
rows and 31-321 factors at 5e-8 to 1.4e-6 of ``lambda_max``), and so does an active-set Newton
on ``d``: its systems ``G_FF + nu I`` are nearly singular, the cells that cross their bounds
are hundreds at once, and correcting them oscillates. The dual does not. With ``G = A'A``
(``A``: ``r x M``, ``r`` at most the rows) the ridge problem's dual is a smooth concave function
of ``w`` in ``R^r``,

    theta(w) = -1/2 ||w||^2 + sum_j min_{dl_j <= d_j <= du_j} (1/2 nu d_j^2 - s_j d_j + k1_j |d_j|),

``s = r - A'w``, maximised where ``w = A d(w)``, ``d_j(w) = clip(soft(s_j, k1_j) / nu, dl_j,
du_j)``. Its generalised Hessian ``-(I + A_F A_F' / nu)`` (``F``: the cells strictly inside
their box and off zero) is negative definite whatever ``F``: semismooth Newton steps with a
line search on ``theta`` converge from any start, and take one or two steps once ``F`` is
right. Newton's method in ``log nu`` on ``psi`` (its slope from the same ``F``:
``d'(nu) = -(G_FF + nu I)^-1 d_F``), safeguarded by bisection, gives ``nu``.

The dual's ``d`` is only as accurate as ``(r - A'w) / nu`` allows, which loses digits as ``nu``
shrinks; what it settles exactly is which cells are held at a bound or at zero. The row Newton
step on the free cells (:meth:`FastEngine._newton_row`) then gives the minimiser to rounding,
and the certificate judges it as any other point.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import LinAlgError, cho_factor, cho_solve

from ._homotopy import _singular
from ._prox import _soft

__all__ = ["box_pull", "dual_start_applies", "held_row_point", "row_dual_start", "rows_probe"]

_STEPS = 40  # semismooth Newton steps per ridge problem (one or two once F is right)
_RESUMES = 3  # ... resumed this often where a far start needs more
_DECADE = float(np.log(10.0))  # the largest step of log nu
_SHORTEST_LOG = 1e-3  # ... and the shortest, halved back from an unconverged dual
_NU_STEPS = 60  # evaluations of psi per response
_PSI_TOL = 1e-10  # |psi| / kappa at which nu is taken
# |psi| / kappa accepted once two evaluations in a row have the same free cells: what the
# dual settles is which cells are free, and the row Newton step the rest. Its own rounding (the
# ridge term a difference of near-equal numbers over a tiny nu, theta compared to rounding)
# left psi at 1e-5 to 2e-5 of kappa on random wide panels, where bisecting it out took 20
# more evaluations per response
_PSI_SETTLED = 1e-3
_ARMIJO = 1e-4
# where the start runs: N M min(M, T')^2 at most this (one response's dual systems are
# min(r, |F|) square, r <= T'); (250,500,5) is 1.6e8, (1000,2000,20) 4e10
_DUAL_START_MAX = 2e9
_FLAT = 1e-8  # a Gram conditioned beyond 1e8 counts as singular here (_flat)
_DUAL_EVALS = 40  # rows_probe: the duals' evaluations (solves) per response, about
_PROBE_MIN, _PROBE_MAX = 30, 2000
_FEW_ROWS = 32  # rows_probe: up to this many responses, no probe
_CHUNK_CELLS = 4_000_000  # the row Newton step's (k, M, M) arrays: 32 MB at a time


def dual_start_applies(engine, lam: float, lambda_max: float) -> bool:
    """Row groups on a wide panel (every Gram singular, or conditioned as badly:
    :func:`_flat`) whose rows are not all solved in closed form: a box (signs, ``nonneg``) or
    an L1 share; below ``lambda_max`` and within ``_DUAL_START_MAX``."""
    e = engine
    if e.geometry != "row" or not 0.0 < lam < lambda_max:
        return False
    if e._unboxed and e.a == 0.0:  # every cell free: the closed form (_newton_row_secular)
        return False
    size = e.n * e.m * float(min(e.m, e.t_rows)) ** 2
    return size <= _DUAL_START_MAX and bool(_flat(e).all())


def _flat(engine) -> np.ndarray:
    """(N,) bool: the responses whose Gram is singular or has a direction flatter than
    ``_FLAT`` of its steepest (Jacobi-scaled eigenvalues), along which the proximal iterations
    crawl as on a singular one. A short exponential ``span`` does that to a narrow panel: at
    span 3 the oldest of 30 rows weighs 2e-9 of the newest, and a GROUP_LASSO fold with signs
    and an L1 share (30 rows, 28 factors, condition 2e9) took 1,000-18,000 iterations per
    grid value (20 s per fold) where the dual start certifies each in 30 (0.5 s per fold)."""
    flat = _singular(engine)
    if engine.spectral:
        flat = flat | (engine._conditioning[engine.pattern] < _FLAT)
    return flat


def rows_probe(engine) -> int:
    """Iterations from the prior before the dual start: none for up to ``_FEW_ROWS`` responses
    (the duals cost tens of ms each: on random panels of 2-11 responses a probe of a few
    hundred iterations, which crawl there, doubled the median fit); for more, about the duals'
    own work, ``_DUAL_EVALS`` evaluations of ``min(M, T')^2 M`` per response, over an
    iteration's ``M^2`` per response (at most ``_PROBE_MAX``): they certify most fits of many
    responses at moderate penalties, where the duals' per-response loops cost more (HCGL
    ``nonneg`` on (60,100,300): 140-670 iterations, 0.2-0.9 s, against 1.3-2.9 s for the
    duals)."""
    e = engine
    if e.n <= _FEW_ROWS:
        return 0
    work = _DUAL_EVALS * float(min(e.m, e.t_rows)) ** 2 / e.m
    return int(min(_PROBE_MAX, max(_PROBE_MIN, work)))


def range_root(gram: np.ndarray, root: np.ndarray | None = None) -> np.ndarray:
    """``A`` (``r x M``) with ``A'A = gram``: the deferred Gram's own root, or from the
    eigendecomposition (eigenvalues above ``M eps`` of the largest; the rest is rounding)."""
    if root is not None:
        return np.asarray(root, dtype=float)
    vals, vecs = np.linalg.eigh(gram)
    keep = vals > vals[-1] * len(vals) * np.finfo(float).eps
    return np.sqrt(vals[keep])[:, None] * vecs[:, keep].T


def pattern_roots(engine, patterns) -> dict[int, tuple[np.ndarray, float]]:
    """Per Gram pattern ``p``: ``(A, top)``, its :func:`range_root` and ``top = ||A||_2^2``, the
    Gram's largest eigenvalue, where the duals' ``nu`` starts."""
    out = {}
    for p in patterns:
        root = range_root(engine.gram[p] if engine._root is None else None, engine._root)
        out[int(p)] = (root, max(float(np.linalg.norm(root, 2)) ** 2, np.finfo(float).tiny))
    return out


def box_pull(pull: np.ndarray, dl, du, k1) -> np.ndarray:
    """``pull`` (``-gradient`` at zero) soft-thresholded by the L1 weights ``k1``, without the
    directions the box ``[dl, du]`` forbids at zero: a zero row or block stays at zero iff its
    norm is within ``kappa``."""
    shrunk = _soft(pull, k1)
    return np.where(((shrunk > 0.0) & (du <= 0.0)) | ((shrunk < 0.0) & (dl >= 0.0)), 0.0,
                    shrunk)


def _cell_minimiser(s, nu, dl, du, k1):
    """``d(w)`` from ``s = r - A'w``: each cell's minimiser of ``1/2 nu d^2 - s d + k1 |d|`` in
    its box, and the free cells (strictly inside it and, with an L1 share, off zero)."""
    raw = _soft(s, k1) / nu
    free = (raw > dl) & (raw < du) & ((np.abs(s) > k1) | (k1 == 0.0))
    return np.clip(raw, dl, du), free


def _theta(w, s, d, nu, k1) -> float:
    return float(-0.5 * w @ w + np.sum(0.5 * nu * d * d - s * d + k1 * np.abs(d)))


def _newton_system(a, free, nu, rhs):
    """``(I + A_F N^-1 A_F')^-1 rhs``, ``N = diag(nu_F)`` (``nu`` a number or one per cell), in
    whichever of ``r`` and ``|F|`` is smaller (Woodbury: ``I - A_F (N + A_F'A_F)^-1 A_F'``)."""
    af = a[:, free]
    r, k = af.shape
    nu_f = np.broadcast_to(nu, free.shape)[free]
    if k <= r:
        small = af.T @ af
        small[np.diag_indices(k)] += nu_f
        return rhs - af @ cho_solve(cho_factor(small, check_finite=False), af.T @ rhs,
                                    check_finite=False)
    big = (af / nu_f) @ af.T
    big[np.diag_indices(r)] += 1.0
    return cho_solve(cho_factor(big, check_finite=False), rhs, check_finite=False)


def box_ridge(a, r, nu, dl, du, k1, w):
    """The dual maximiser of one response's box-constrained ridge problem at ``nu`` (a number,
    or one per cell: FCGL's blocks), from ``w``: ``(d, w, free cells, converged)``; converged
    also where ``theta`` stops rising with the free cells unchanged (its rounding)."""
    s = r - a.T @ w
    d, free = _cell_minimiser(s, nu, dl, du, k1)
    value = _theta(w, s, d, nu, k1)
    previous = None
    for step in range(_STEPS):
        grad = a @ d - w
        scale = max(np.abs(w).max(), np.abs(a @ d).max(), np.finfo(float).tiny)
        same = previous is not None and bool((free == previous).all())
        if np.abs(grad).max() <= 1e-12 * scale:
            return d, w, free, True
        previous = free
        try:
            direction = _newton_system(a, free, nu, grad)
        except (LinAlgError, ValueError):
            return d, w, free, False
        slope, t = float(grad @ direction), 1.0
        while True:
            w_new = w + t * direction
            s_new = r - a.T @ w_new
            d_new, free_new = _cell_minimiser(s_new, nu, dl, du, k1)
            new = _theta(w_new, s_new, d_new, nu, k1)
            if new >= value + _ARMIJO * t * slope or t < 1e-12:
                break
            t *= 0.5
        if new <= value:  # no rise: at the maximiser to rounding, or stuck
            return d, w, free, same or step == 0
        w, s, d, free, value = w_new, s_new, d_new, free_new, new
    return d, w, free, False


def _log_slope(a, free, nu, d) -> float:
    """``d log(nu ||d||) / d log nu = 1 + nu d_F'd'_F / ||d||^2`` on the free cells ``F``, with
    ``d'_F = -(G_FF + nu I)^-1 d_F``; in ``(0, 1]``."""
    norm2 = float(d @ d)
    if norm2 == 0.0 or not free.any():
        return np.nan
    v = d[free]
    # (G_FF + nu I)^-1 v = (v - A_F'(I + A_F A_F'/nu)^-1 A_F v / nu) / nu
    inner = _newton_system(a, free, nu, a[:, free] @ v)
    solved = (v - a[:, free].T @ inner / nu) / nu
    return 1.0 - nu * float(v @ solved) / norm2


def _row(a, r, kappa, dl, du, k1, top, near=None):
    """One active response: ``(d, free cells, found)`` at the ``nu`` of ``psi(nu) = 0``, by
    Newton's method on ``log(nu ||d(nu)||) = log kappa`` in ``log nu`` (from a far start its
    step is about the fixed point's, ``nu <- kappa / ||d(nu)||``), kept inside the bracket the
    signs of ``psi`` have shown (bisection there, decades outside)."""
    # from the Gram's largest eigenvalue down, at most a decade per step: the dual is well
    # conditioned there (I + A_F A_F'/nu within 2 of I) and each nu's w starts the next one's
    # steps near their answer (from nu = kappa, the steps did not converge in 160 on a
    # sparse-group row at 3.9e-8 of lambda_max, (126,219,6)); or from a neighbouring
    # minimiser's ``d`` (``near``): its nu and w
    w, log_nu = np.zeros(a.shape[0]), float(np.log(top))
    if near is not None and np.any(near):
        w, log_nu = a @ near, float(np.log(kappa / np.linalg.norm(near)))
    low, high = -np.inf, np.inf
    last = good = None  # good: (log nu, w) of the last converged dual
    for _ in range(_NU_STEPS):
        nu = float(np.exp(log_nu))
        d, w, free, ok = box_ridge(a, r, nu, dl, du, k1, w)
        for _ in range(_RESUMES):  # far from the start: more steps at the same nu
            if ok:
                break
            d, w, free, ok = box_ridge(a, r, nu, dl, du, k1, w)
        if not ok:
            # no bracket from an unconverged d: half the step from the last converged nu and
            # its w (a step of nu by 6x left a sparse-group row with signs on (120,200,10)
            # 160 dual steps short)
            if good is None or abs(log_nu - good[0]) < _SHORTEST_LOG:
                return d, free, False
            log_nu, w = 0.5 * (log_nu + good[0]), good[1].copy()
            continue
        good = (log_nu, w.copy())
        size = nu * float(np.linalg.norm(d))
        psi = size - kappa
        settled = last is not None and bool((free == last).all())
        if abs(psi) <= _PSI_TOL * kappa or (settled and abs(psi) <= _PSI_SETTLED * kappa):
            return d, free, True
        last = free
        if psi > 0:
            high = min(high, log_nu)
        else:
            low = max(low, log_nu)
        if settled and high - low < 1e-10:  # nu known to rounding
            return d, free, True
        try:
            slope = _log_slope(a, free, nu, d)
        except (LinAlgError, ValueError):
            slope = np.nan
        step = np.nan
        if size > 0.0 and slope > 0.0:
            step = log_nu - (np.log(size) - np.log(kappa)) / slope
        if not np.isfinite(step) or step <= low or step >= high:
            if np.isfinite(low) and np.isfinite(high):
                step = 0.5 * (low + high)
            else:
                step = log_nu + (_DECADE if np.isfinite(low) else -_DECADE)
        log_nu = float(np.clip(step, log_nu - _DECADE, log_nu + _DECADE))
    return d, free, False


def row_dual_start(engine, lam: float, start: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every response's point from the dual (see the module docstring): ``(x, support,
    found)``, ``support`` the signs of the free cells (never 0 there: without an L1 share a
    free cell may sit at the prior), ``found`` where the outer solve settled; a response whose
    row belongs at the prior (its pull, soft-thresholded and kept in the box, within
    ``kappa``) stays there with an empty support."""
    e = engine
    half = 0.5 * e.t_rows * lam
    kappa = half * (1.0 - e.a) * e.group_w
    k1 = half * e.a * e.omega
    resid = e._prior_residual()
    x, support = e.prior.copy(), np.zeros_like(e.prior)
    found = np.zeros(e.n, dtype=bool)
    roots: dict[int, tuple[np.ndarray, float]] = {}  # (only the active rows' patterns)
    for i in range(e.n):
        s = resid[i]
        if np.linalg.norm(box_pull(s, e.dl[i], e.du[i], k1[i])) <= kappa[i]:
            # the zero row's condition: it stays
            found[i] = True
            continue
        p = int(e.pattern[i])
        if p not in roots:
            roots.update(pattern_roots(e, [p]))
        root, top = roots[p]
        near = None if start is None else np.clip(start[i], e.lo[i], e.hi[i]) - e.prior[i]
        d, free, ok = _row(root, s, kappa[i], e.dl[i], e.du[i], k1[i], top, near)
        if not ok and near is not None and np.any(near):  # the start misled it: from the top
            d, free, ok = _row(root, s, kappa[i], e.dl[i], e.du[i], k1[i], top)
        x[i] = e.prior[i] + d
        support[i] = np.where(free, np.where(d < 0.0, -1.0, 1.0), 0.0)
        found[i] = ok
    return x, support, found


def held_row_point(engine, lam: float, start: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """``(x, accepted)``: the row Newton step (:meth:`FastEngine._newton_row`) on the free cells
    that :func:`row_dual_start` found, taken per response where it is the minimiser (it keeps
    the box, and the signs with an L1 share, and the conditions off the free cells hold:
    :func:`~._newton_finish.newton_accepted`); the others keep the prior."""
    from ._newton_finish import newton_accepted

    e = engine
    point, support, found = row_dual_start(e, lam, start)
    out = e.prior.copy()
    accepted = np.zeros(e.n, dtype=bool)
    empty = found & ~(support != 0).any(axis=1)
    if empty.any():  # rows at the prior: their conditions decide
        accepted |= e._kkt_holds(out, lam, support, rows=empty)
    todo = np.flatnonzero(found & ~empty)
    # the Newton systems are dense M x M per response: a few responses at a time
    chunk = max(1, int(_CHUNK_CELLS // (e.m * e.m)))
    for lo in range(0, len(todo), chunk):
        rows = np.zeros(e.n, dtype=bool)
        rows[todo[lo:lo + chunk]] = True
        cand = e._newton_row(point, lam, support, rows, force=True)
        if cand is None:
            continue
        kept_support = support
        if e.a == 0.0:  # no kink at zero: a free cell may change sign
            diff = cand - e.prior
            kept_support = np.where(support != 0, np.where(diff < 0.0, -1.0, 1.0), 0.0)
        ok, _ = newton_accepted(e, cand, kept_support, rows, lam)
        out[ok] = cand[ok]
        accepted |= ok
    return out, accepted
