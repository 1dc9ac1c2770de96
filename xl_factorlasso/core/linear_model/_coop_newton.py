"""Cooperative blocks: Newton's method on the face of an iterate, between rounds of iterations.

On a wide panel (more factors than rows: every Gram singular) at a small penalty the proximal
iterations on cooperative blocks crawl along the Grams' flat directions: a COOPERATIVE_GROUP_LASSO
cross-validation on 6-10 training rows, 21 factors and 3 responses needed 10,000-20,000
iterations per grid value from 2e-4 of ``lambda_max`` down, and 20,000 did not certify below
~1e-5 (relative gaps 1e-8 to 5e-6; CLARABEL certified most of those in 10 ms). The engine has no
Newton finish for them (:mod:`._block_newton` handles FCGL blocks without the sign halves).

On a *face* (which cells are nonzero, and their signs) the cooperative objective is smooth: the
block term ``w_g (||D_g+||_2 + ||D_g-||_2)`` is a sum of norms of fixed sign halves (each nonzero
on the face), the L1 share is linear. :func:`face_newton` minimises it there by damped Newton
steps on the free cells (a cell that crosses zero leaves the face, which is how the face sheds
the cells an iterate kept too many), and :func:`coop_solve` alternates rounds of iterations,
doubling in length, with that step; a point is returned only when the independent certificate
(:meth:`FastEngine.certificate`) passes. The cooperative penalty takes no box (signs and
``nonneg`` are refused), so every point is feasible.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla

from ._engine import EngineResult
from ._gap_floor import check_floor

__all__ = ["coop_solve", "face_newton"]

# Newton is tried on faces of at most this many free cells (a dense system of that size per
# step); beyond, the iterations alone.
_MAX_FREE = 1500
_NEWTON_STEPS = 50
# The first round of iterations; each later one doubles, Newton's step between them.
_FIRST_ROUND = 200

# LAPACK's Cholesky factor and solve without scipy's checks: the face's blocks are small and
# many, so those checks cost as much as the factors.
_potrf, _potrs = sla.get_lapack_funcs(("potrf", "potrs"), (np.empty(1),))


def _objective(engine, x: np.ndarray, lam: float) -> float:
    return engine.stats.loss(x) + lam * float(engine.penalty_parts(x - engine.prior).sum())


def face_newton(engine, x: np.ndarray, lam: float) -> np.ndarray | None:
    """The minimiser, by damped Newton steps, of the cooperative objective on the face of
    ``x`` (its nonzero cells of ``D = B - B0`` and their signs), started at ``x``; cells that
    cross zero leave the face. None where the face is empty or beyond ``_MAX_FREE`` cells.

    Each step is the minimum-norm Newton step (eigenvalues of the Hessian at or below
    ``1e-12`` of its largest count as zero: on a wide panel the Grams are singular), solved
    cluster by cluster (:func:`_face_system`, :func:`_newton_step`), then halved until the
    Armijo rule holds."""
    x = np.array(x, dtype=float)
    prior, t2 = engine.prior, 2.0 / engine.t_rows
    c_half = lam * (1.0 - engine.a) * np.repeat(engine.group_w, 2)  # per half key
    l1 = lam * engine.a * engine.omega
    gid = engine.gid.reshape(x.shape)
    value = _objective(engine, x, lam)
    for _ in range(_NEWTON_STEPS):
        d = x - prior
        free = d != 0.0
        k = int(free.sum())
        if k == 0 or k > _MAX_FREE:
            return None if k > _MAX_FREE else x
        rows, cols = np.nonzero(free)
        vals = d[rows, cols]
        sign = np.sign(vals)
        loss_grad = (t2 * (engine._gram_times(x) - engine.xty))[rows, cols]
        grad = loss_grad + l1[rows, cols] * sign
        keys = 2 * gid[rows, cols] + (sign < 0)
        half_grad, parts, loss_blocks, blocks = _face_system(
            engine, rows, cols, vals, keys, c_half, t2)
        grad += half_grad
        step = _newton_step(parts, blocks, grad)
        slope = float(grad @ step)
        if not slope < 0.0:
            break
        # The objective moves only on the face's cells: the loss by its (exact) quadratic
        # expansion in the change, the penalty by its terms there; both far below the
        # cost of the whole objective, and free of its cancellation against the loss's size.
        halves, half = np.unique(keys, return_inverse=True)
        weights = (c_half[halves], l1[rows, cols])
        penalty = _face_penalty(vals, half, *weights)
        t, moved = 1.0, False
        for _ in range(30):
            new_d = vals + t * step
            new_d[np.sign(new_d) != sign] = 0.0  # crossed zero: off the face
            change = new_d - vals
            quad = sum(float(change[idx] @ (block @ change[idx]))
                       for idx, block in zip(parts, loss_blocks, strict=True))
            delta = (float(loss_grad @ change) + 0.5 * quad
                     + (_face_penalty(new_d, half, *weights) - penalty))
            if delta <= 1e-4 * t * slope:
                moved = True
                break
            t *= 0.5
        if not moved:
            break
        x[rows, cols] = prior[rows, cols] + new_d  # (x is this function's copy)
        value += delta
        if -delta <= 1e-15 * max(abs(value), 1e-300) and t == 1.0:
            break
    return x


def _face_penalty(vals: np.ndarray, half: np.ndarray, c: np.ndarray,
                  l1_cells: np.ndarray) -> float:
    """``lambda P`` of the face's cells at values ``vals`` (``half``: their sign halves,
    numbered ``0..``, of weights ``c``; ``l1_cells`` the cells' L1 weights, all with
    ``lambda``); a value at zero (a cell that left the face) adds nothing."""
    sums = np.bincount(half, weights=vals * vals, minlength=len(c))
    return float(c @ np.sqrt(sums) + l1_cells @ np.abs(vals))


def _half_terms(vals: np.ndarray, keys: np.ndarray, c_half: np.ndarray):
    """The sign halves' terms ``c_h ||v_h||_2`` on the face's cells (values ``vals``, half
    ``keys``): their gradient ``c_h u_h`` (``u_h = v_h / ||v_h||``) per cell, and their Hessians
    ``(c_h / ||v_h||)(I - u_h u_h')`` as entries ``(a, b, value)`` over the halves of two cells
    or more (one cell's half is linear on the face)."""
    order = np.argsort(keys, kind="stable")
    sorted_keys, v = keys[order], vals[order]
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    sizes = np.diff(np.r_[starts, len(v)])
    run = np.repeat(np.arange(len(starts)), sizes)  # the half of each sorted cell
    norms = np.sqrt(np.add.reduceat(v * v, starts))
    c = c_half[sorted_keys[starts]]
    u = v / norms[run]
    grad = np.empty_like(vals)
    grad[order] = c[run] * u
    # every ordered pair (a, b) of cells in one half: a repeated once per member of its half
    pos = np.flatnonzero(sizes[run] > 1)
    reps = sizes[run[pos]]
    a = np.repeat(pos, reps)
    b = starts[run[a]] + (np.arange(len(a)) - np.repeat(np.cumsum(reps) - reps, reps))
    h = (c / norms)[run[a]] * ((a == b) - u[a] * u[b])
    return grad, order[a], order[b], h


def _face_system(engine, rows, cols, vals, keys, c_half, t2):
    """The penalty's gradient on the face's cells ``(rows, cols)`` and the Hessian of the
    objective there, split into its coupled parts: the loss couples the cells of one response,
    a sign half the cells of its block (several responses of a cluster), and nothing else.

    Returns ``(half_grad, parts, loss_blocks, blocks)``: ``parts`` the cells (ascending) of
    each cluster's part, ``blocks`` its Hessian (the entries of the whole k x k one, which is
    zero between parts), ``loss_blocks`` the loss's share of it."""
    half_grad, a, b, h = _half_terms(vals, keys, c_half)
    # a block (g, j) holds cells of cluster g's responses only, so the clusters with free
    # cells are the parts (a cluster's Hessian may split further; solving it whole is exact)
    part_of = np.unique(engine.unit[rows], return_inverse=True)[1].ravel()
    order = np.argsort(part_of, kind="stable")
    sizes = np.bincount(part_of)
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    local = np.empty(len(rows), dtype=np.intp)
    local[order] = np.arange(len(rows)) - np.repeat(starts, sizes)
    # the halves' entries of every block at once, in one flat buffer of the blocks
    offsets = np.r_[0, np.cumsum(sizes * sizes)[:-1]]
    flat = offsets[part_of[a]] + local[a] * sizes[part_of[a]] + local[b]
    halves = np.bincount(flat, weights=h, minlength=int((sizes * sizes).sum()))
    gram, pattern = engine.gram, engine.pattern
    parts, loss_blocks, blocks = [], [], []
    for p, (start, size) in enumerate(zip(starts, sizes, strict=True)):
        idx = order[start:start + size]  # ascending, so by response
        r, c = rows[idx], cols[idx]
        loss = t2 * gram[pattern[r][:, None], c[:, None], c[None, :]]
        loss[r[:, None] != r[None, :]] = 0.0  # different responses
        loss_blocks.append(loss)
        blocks.append(loss + halves[offsets[p]:offsets[p] + size * size].reshape(size, size))
        parts.append(idx)
    return half_grad, parts, loss_blocks, blocks


def _newton_step(parts, blocks, grad: np.ndarray) -> np.ndarray:
    """``-H^+ grad`` for the block-diagonal Hessian ``H`` (``blocks`` on the cells ``parts``),
    eigenvalues at or below ``1e-12`` of ``H``'s largest dropped: what a pseudo-inverse of the
    whole ``H`` gives, block by block.

    A block whose Cholesky factor exists after a shift of ``1e-10`` of a bound on ``H``'s
    largest eigenvalue (its largest absolute row sum) has every eigenvalue above the cut-off:
    its step is solved from the factor of the block itself. The others (singular or nearly)
    take the eigendecomposition, with the cut-off from ``H``'s largest eigenvalue."""
    step = np.empty_like(grad)
    bounds = [float(np.abs(block).sum(axis=1).max()) for block in blocks]
    shift = 1e-10 * max(bounds)
    spectral, factored = [], []
    for i, (idx, block) in enumerate(zip(parts, blocks, strict=True)):
        if shift > 0.0 and _potrf(block - shift * np.eye(len(idx)))[1] == 0:
            factor, info = _potrf(block)
            if info == 0:  # (it is: the shifted one is)
                step[idx] = -_potrs(factor, grad[idx])[0]
                factored.append(i)
                continue
        evals, evecs = np.linalg.eigh(block)
        spectral.append((idx, evals, evecs))
    if not spectral:
        return step
    top = max(float(evals[-1]) for _, evals, _ in spectral)
    for i in factored:  # the largest eigenvalue may lie in a factored block
        if bounds[i] > top:
            size = len(blocks[i])
            top = max(top, float(sla.eigh(blocks[i], eigvals_only=True, check_finite=False,
                                          subset_by_index=[size - 1, size - 1])[0]))
    cut = 1e-12 * max(top, 1e-300)
    for idx, evals, evecs in spectral:
        keep = evals > cut
        step[idx] = -evecs[:, keep] @ ((evecs[:, keep].T @ grad[idx]) / evals[keep])
    return step


def coop_solve(engine, lam: float, tol: float, max_iter: int, coef_init=None,
               give_up: bool = False) -> EngineResult:
    """:meth:`FastEngine.solve` for cooperative blocks: rounds of iterations (``_FIRST_ROUND``,
    doubling) within ``max_iter`` in all, each uncertified round followed by Newton's point on
    its iterate's face (:func:`face_newton`), taken when certified; the next round starts from
    the better of the two. ``give_up``: a round that gave up (:meth:`FastEngine.solve`) ends
    the solve.

    A warm start (a neighbouring minimiser: the previous value of a CV grid, a path's) first
    takes Newton's step on its own face: between neighbouring penalties the face usually holds,
    and the step is then the answer with no iteration, where the first round's iterates (with
    momentum, along the flat directions of a wide panel) wander off it (seed 2025's CV, 5 folds
    of up to 25 rows and 29 factors: 200-1,400 iterations per grid value before)."""
    x, spent, size = coef_init, 0, _FIRST_ROUND
    result = None
    if x is not None:
        point = face_newton(engine, x, lam)
        if point is not None:
            gap, ok = engine.certificate(point, lam, tol)
            if ok:
                return EngineResult(point, True, gap, 0)
            if _objective(engine, point, lam) < _objective(engine, x, lam):
                x = point
    while spent < max_iter:
        budget = min(size, max_iter - spent)
        result = engine.solve(lam, tol=tol, max_iter=budget, coef_init=x, give_up=give_up)
        spent += result.iterations
        if result.certified or not result.iterations:
            return result._replace(iterations=spent)
        x = result.coef
        check_floor(engine, x, lam, tol, spent, result.gap)
        point = face_newton(engine, x, lam)
        if point is not None:
            gap, ok = engine.certificate(point, lam, tol)
            if ok:
                return EngineResult(point, True, gap, spent)
            if _objective(engine, point, lam) < _objective(engine, x, lam):
                x = point
        if give_up and result.iterations < budget:
            break
        size *= 2
    return result._replace(iterations=spent)
