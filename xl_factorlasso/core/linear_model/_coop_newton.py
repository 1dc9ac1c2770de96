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

from ._engine import EngineResult
from ._gap_floor import check_floor

__all__ = ["coop_solve", "face_newton"]

# Newton is tried on faces of at most this many free cells (a dense system of that size per
# step); beyond, the iterations alone.
_MAX_FREE = 1500
_NEWTON_STEPS = 50
# The first round of iterations; each later one doubles, Newton's step between them.
_FIRST_ROUND = 200


def _objective(engine, x: np.ndarray, lam: float) -> float:
    return engine.stats.loss(x) + lam * float(engine.penalty_parts(x - engine.prior).sum())


def face_newton(engine, x: np.ndarray, lam: float) -> np.ndarray | None:
    """The minimiser, by damped Newton steps, of the cooperative objective on the face of
    ``x`` (its nonzero cells of ``D = B - B0`` and their signs), started at ``x``; cells that
    cross zero leave the face. None where the face is empty or beyond ``_MAX_FREE`` cells."""
    x = np.array(x, dtype=float)
    prior, t2 = engine.prior, 2.0 / engine.t_rows
    c_half = lam * (1.0 - engine.a) * np.repeat(engine.group_w, 2)  # per half key
    l1 = lam * engine.a * engine.omega
    value = _objective(engine, x, lam)
    for _ in range(_NEWTON_STEPS):
        d = x - prior
        free = d != 0.0
        k = int(free.sum())
        if k == 0 or k > _MAX_FREE:
            return None if k > _MAX_FREE else x
        rows, cols = np.nonzero(free)
        sign = np.sign(d[rows, cols])
        grad = (t2 * (engine._gram_times(x) - engine.xty))[rows, cols] + l1[rows, cols] * sign
        hess = np.zeros((k, k))
        for i in np.unique(rows):
            idx = np.flatnonzero(rows == i)
            gram = engine.gram[engine.pattern[i]]
            hess[np.ix_(idx, idx)] = t2 * gram[np.ix_(cols[idx], cols[idx])]
        keys = 2 * engine.gid.reshape(d.shape)[rows, cols] + (sign < 0)
        vals = d[rows, cols]
        for key in np.unique(keys):
            idx = np.flatnonzero(keys == key)
            norm = float(np.linalg.norm(vals[idx]))
            u = vals[idx] / norm
            grad[idx] += c_half[key] * u
            if len(idx) > 1:
                hess[np.ix_(idx, idx)] += (c_half[key] / norm) * (np.eye(len(idx))
                                                                  - np.outer(u, u))
        evals, evecs = np.linalg.eigh(hess)
        keep = evals > 1e-12 * max(float(evals[-1]), 1e-300)
        step = -evecs[:, keep] @ ((evecs[:, keep].T @ grad) / evals[keep])
        slope = float(grad @ step)
        if not slope < 0.0:
            break
        t, moved = 1.0, False
        for _ in range(30):
            new_d = vals + t * step
            new_d[np.sign(new_d) != sign] = 0.0  # crossed zero: off the face
            cand = x.copy()
            cand[rows, cols] = prior[rows, cols] + new_d
            new_value = _objective(engine, cand, lam)
            if new_value <= value + 1e-4 * t * slope:
                moved = True
                break
            t *= 0.5
        if not moved:
            break
        decrease = value - new_value
        x, value = cand, new_value
        if decrease <= 1e-15 * max(abs(value), 1e-300) and t == 1.0:
            break
    return x


def coop_solve(engine, lam: float, tol: float, max_iter: int, coef_init=None,
               give_up: bool = False) -> EngineResult:
    """:meth:`FastEngine.solve` for cooperative blocks: rounds of iterations (``_FIRST_ROUND``,
    doubling) within ``max_iter`` in all, each uncertified round followed by Newton's point on
    its iterate's face (:func:`face_newton`), taken when certified; the next round starts from
    the better of the two. ``give_up``: a round that gave up (:meth:`FastEngine.solve`) ends
    the solve."""
    x, spent, size = coef_init, 0, _FIRST_ROUND
    result = None
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
