"""Newton's finish for FCGL blocks: the exact minimiser once the active blocks are known.

A :class:`~xl_factorlasso.core.linear_model._engine.FastEngine` of the block geometry with no
L1 share (``l1_weight = 0``, not cooperative) penalises ``lambda sum_(g,j) w_gj ||D_gj||_2``,
``D_gj`` the loadings (less the prior) of cluster ``g``'s responses on factor ``j``. Let ``A``
be the factors whose block is nonzero in cluster ``g``, every cell of them strictly inside its
box. There the penalty is smooth and the optimality conditions of response ``i`` of ``g`` read

    (G b_i - c_i)_A + nu * d_iA = 0,    nu_j = kappa_j / ||D_gj||_2,   kappa_j = (T'/2) lambda w_gj,

(``b_i = b0_i + d_i``, ``d_i = 0`` off ``A``). For a given ``nu`` they are linear:
``d_iA = K(nu)^-1 r_iA`` with ``K = G_AA + diag(nu)`` and ``r_i = c_i - G b0_i``, one ``|A| x |A|``
matrix for the whole cluster. What is left is ``|A|`` scalar equations,

    phi_j(nu) = nu_j ||D_j(nu)||_2 - kappa_j = 0,

whose Jacobian follows from ``dD/dnu_k = -D e_k e_k' K^-1``:
``J_jk = delta_jk ||D_j|| - (nu_j / ||D_j||) (D'D)_jk (K^-1)_kj``. Newton's method on ``nu``, from
the iterate's own ``||D_gj||``, converges in a few steps, each costing about one gradient of the
cluster — where the proximal iterations approach the same point linearly.

A cluster whose responses do not share one Gram (a ragged panel) sums the same terms over its
patterns. The engine accepts the candidate only if it stays in the box and the blocks left at
zero satisfy their optimality condition (:func:`block_kkt`); the duality gap certifies it as
any other point.
"""

from __future__ import annotations

import numpy as np

_MAX_STEPS = 30
_RTOL = 1e-13  # |phi_j| relative to kappa_j: Newton's quadratic convergence gets there


def block_activity(engine, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(active (n_units, M), norms (n_units, M))``: which blocks are nonzero, and their norms."""
    d = x - engine.prior
    norms = np.sqrt(np.bincount(engine.gid, weights=(d * d).ravel(),
                                minlength=engine.n_groups)).reshape(engine.n_units, engine.m)
    return norms > 0.0, norms


def _unit_all(engine, per_response: np.ndarray) -> np.ndarray:
    """Per response: ``per_response`` holds for every member of its cluster."""
    bad = np.bincount(engine.unit, weights=~per_response, minlength=engine.n_units) > 0
    return ~bad[engine.unit]


def block_newton(engine, x: np.ndarray, lam: float,
                 rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Newton's point of every cluster whose members are all in ``rows``.

    Returns ``(candidate, solved)``: the candidate (``x`` elsewhere) and, per response, whether
    its cluster was solved (converged, finite, every active cell strictly inside the box; a
    cluster without an active block is its own candidate).
    """
    e = engine
    m = e.m
    cand = x.copy()
    solved = np.zeros(e.n, dtype=bool)
    inside = (x > e.lo) & (x < e.hi)
    active, norms = block_activity(e, x)
    whole = _unit_all(e, rows)
    residual = None  # c_i - G b0_i, computed at the first cluster that needs it
    weights = e.group_w.reshape(e.n_units, m)
    for u in np.unique(e.unit[whole]):
        members = np.flatnonzero(e.unit == u)
        cols = np.flatnonzero(active[u])
        if not len(cols):
            solved[members] = True
            continue
        if not inside[np.ix_(members, cols)].all():
            continue  # a cell at a bound: not the smooth piece this solves
        if residual is None:
            residual = e.xty - e._gram_times(e.prior)
        kappa = 0.5 * e.t_rows * lam * (1.0 - e.a) * weights[u, cols]
        pats = e.pattern[members]
        parts = [(e.gram[p][np.ix_(cols, cols)], residual[np.ix_(members[pats == p], cols)])
                 for p in np.unique(pats)]
        d_parts = _solve_cluster(parts, kappa, kappa / norms[u, cols])
        if d_parts is None:
            continue
        for (p, d) in zip(np.unique(pats), d_parts, strict=True):
            rows_p = members[pats == p]
            cand[np.ix_(rows_p, cols)] = e.prior[np.ix_(rows_p, cols)] + d
        solved[members] = np.isfinite(cand[members]).all()
    return cand, solved


def _solve_cluster(parts, kappa: np.ndarray, nu: np.ndarray) -> list[np.ndarray] | None:
    """Newton on ``phi(nu) = nu ||D(nu)|| - kappa`` for one cluster; ``parts`` are its patterns'
    ``(G_AA, R_A)``. Returns the ``D_A`` of each part, or None without convergence."""
    with np.errstate(all="ignore"):  # a block heading to zero (nu -> inf) fails, no warning
        return _newton_nu(parts, kappa, nu)


def _newton_nu(parts, kappa: np.ndarray, nu: np.ndarray) -> list[np.ndarray] | None:
    eye = np.eye(len(kappa))
    for _ in range(_MAX_STEPS):
        try:
            inverses = [np.linalg.inv(g + np.diag(nu)) for g, _ in parts]
        except np.linalg.LinAlgError:
            return None
        ds = [r @ inv for (_, r), inv in zip(parts, inverses, strict=True)]
        sq = sum(np.einsum("ij,ij->j", d, d) for d in ds)
        norms = np.sqrt(sq)
        if not np.all(np.isfinite(norms)) or np.any(norms <= 0.0):
            return None
        phi = nu * norms - kappa
        if np.all(np.abs(phi) <= _RTOL * kappa):
            return ds
        coupling = sum((d.T @ d) * inv for d, inv in zip(ds, inverses, strict=True))
        jac = eye * norms - (nu / norms)[:, None] * coupling
        try:
            step = np.linalg.solve(jac, phi)
        except np.linalg.LinAlgError:
            return None
        new = nu - step
        # nu > 0 (a block at the minimiser of a nonzero block has a finite norm): halve the
        # step where it would cross zero
        while np.any(new <= 0.0):
            step = 0.5 * step
            new = nu - step
            if np.all(np.abs(step) <= _RTOL * nu):
                return None
        nu = new
    return None


def block_kkt(engine, x: np.ndarray, lam: float) -> np.ndarray:
    """Per response: every zero block of its cluster satisfies its optimality condition at
    ``x`` — the pull ``-grad`` on the block, less the directions the box forbids, lies in the
    group's ball of radius ``lambda w_gj`` (to 1e-9, as the cell and row tests). The active
    blocks are Newton's stationary points by construction."""
    e = engine
    grad = (2.0 / e.t_rows) * (e._gram_times(x) - e.xty)
    pull = -grad
    pull = np.where((pull > 0) & ~(x < e.hi), 0.0, pull)
    pull = np.where((pull < 0) & ~(x > e.lo), 0.0, pull)
    size = np.sqrt(np.bincount(e.gid, weights=(pull * pull).ravel(), minlength=e.n_groups))
    scale = np.zeros(e.n_groups)
    np.maximum.at(scale, e.gid, np.abs(grad).ravel())
    radius = lam * (1.0 - e.a) * e.group_w
    active, _ = block_activity(e, x)
    ok_group = active.ravel() | (size <= radius * (1.0 + 1e-9) + 1e-9 * scale)
    ok_unit = np.bincount(e.group_unit, weights=~ok_group, minlength=e.n_units) == 0
    return ok_unit[e.unit]
