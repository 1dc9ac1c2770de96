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
the iterate's own ``||D_gj||``, converges in a few steps — where the proximal iterations approach
the same point linearly. With ``Q = R'R`` formed once per engine, ``D'D = K^-1 Q K^-1``: a step
costs ``|A|^3`` per cluster whatever its size, and clusters with as many active blocks take
their steps together. (The engine runs this finish where clusters are large: see
``_BLOCK_NEWTON_SIZE`` in ``_engine``.)

A cluster whose responses do not share one Gram (a ragged panel) sums the same terms over its
patterns. The engine accepts the candidate only if it stays in the box and the blocks left at
zero satisfy their optimality condition (:func:`block_kkt`); the duality gap certifies it as
any other point.

On a wide panel at a small penalty the iterations never settle the active blocks; there
:func:`block_polish` guesses them from CVXPY's point (or a warm start's) and runs the same
Newton with the accurate norms (``accurate=True``).
"""

from __future__ import annotations

import numpy as np

_MAX_STEPS = 30
# block_newton (the engine's finish): a cluster one of whose nu has grown this many times its
# start (the block's norm 1e-8 of the iterate's) has a block heading to zero, so its active set
# is not the minimiser's and Newton fails -- after 30 steps, or once the norm underflows (an
# early FCGL try at (500,10,50): 19 steps, 0.6 ms, for the same refusal). Looked at from
# _RUNAWAY_STEP on, past where the converging tries seen settle (4-6 steps, nu within 2x of
# its start). Not in the tries that read nu at a failure (interpolant_start's leaving blocks).
_RUNAWAY = 1e8
_RUNAWAY_STEP = 5
_RTOL = 1e-13  # |phi_j| relative to kappa_j: Newton's quadratic convergence gets there
_STALL = 1e-8  # ... or stops improving below this (round-off in an ill-conditioned K)
# A polish of an interior-point answer guesses a block (a cell, for rows) active above these
# fractions of its cluster's (row's) largest, coarse first
POLISH_GUESSES = (1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5, 1e-6)
_WARM_ROUNDS = 3  # block_polish from a warm start: zero blocks joined at most this often
# interpolant_start: tries per cluster, the growth of nu that marks a block heading to zero
# (the growths seen were 1e+69 to 1e+175 where a block had to leave), and the factors allowed
_ACTIVE_ROUNDS = 12
_DROP_GROWTH = 30.0
_INTERPOLANT_MAX_M = 1000


def block_activity(engine, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(active (n_units, M), norms (n_units, M))``: which blocks are nonzero, and their norms."""
    d = x - engine.prior
    norms = np.sqrt(np.bincount(engine.gid, weights=(d * d).ravel(),
                                minlength=engine.n_groups)).reshape(engine.n_units, engine.m)
    return norms > 0.0, norms


def block_newton(engine, x: np.ndarray, lam: float, rows: np.ndarray,
                 accurate: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Newton's point of every cluster whose members are all in ``rows``.

    Returns ``(candidate, solved)``: the candidate (``x`` elsewhere) and, per response, whether
    its cluster was solved (converged, finite, every active cell strictly inside the box; a
    cluster without an active block is its own candidate). Clusters with the same number of
    active blocks are solved together; a cluster spanning several Grams (a ragged panel) alone.

    ``accurate``: the norms from ``K^-1 W'`` by a solve, ``W`` a square root of ``Q`` (the
    residual rows, or their QR factor), instead of ``K^-1 Q K^-1``, which squares ``K``'s
    condition: needed where ``K`` is as ill-conditioned as a singular Gram at a small penalty
    makes it (there the cheap form stalls far from the root).
    """
    e = engine
    cand = x.copy()
    solved = np.zeros(e.n, dtype=bool)
    active, norms = block_activity(e, x)
    inside = (x > e.lo) & (x < e.hi)
    # a cluster qualifies when all its members are tried and its active cells are inside the box
    ok_rows = rows & (inside | ~active[e.unit]).all(axis=1)
    ok_unit = np.bincount(e.unit, weights=~ok_rows, minlength=e.n_units) == 0
    sizes = active.sum(axis=1)
    empty = ok_unit & (sizes == 0)
    solved[empty[e.unit]] = True
    if not (ok_unit & (sizes > 0)).any():
        return cand, solved
    parts = _parts(e)
    weights = e.group_w.reshape(e.n_units, e.m)
    multi = parts.count > 1
    any_multi = np.count_nonzero(multi) > 0  # (a complete panel: none)
    for k in np.unique(sizes[ok_unit & (sizes > 0)]):
        at_k = ok_unit & (sizes == k)
        units = np.flatnonzero(at_k & ~multi if any_multi else at_k)
        batches = [units] if len(units) else []
        if any_multi:
            batches += [np.array([u]) for u in np.flatnonzero(at_k & multi)]
        for batch in batches:
            cols = np.nonzero(active[batch])[1].reshape(len(batch), k)  # sorted per row
            ids = parts.ids[batch]  # (B, P): the clusters' parts
            sel = (ids[:, :, None, None], cols[:, None, :, None], cols[:, None, None, :])
            gram = e.gram[parts.pattern[ids][:, :, None, None], cols[:, None, :, None],
                          cols[:, None, None, :]]
            rows_k = batch[:, None]  # (the active blocks' weights and norms: plain indexing)
            kappa = 0.5 * e.t_rows * lam * (1.0 - e.a) * weights[rows_k, cols]
            nu0 = kappa / norms[rows_k, cols]
            roots = _roots(parts, ids, cols, k) if accurate else None
            nu, done = _solve_batch(gram, parts.q[sel], kappa, nu0, roots, runaway=True)
            for b in np.flatnonzero(done):
                members = np.flatnonzero(e.unit == batch[b])
                for j, part in enumerate(ids[b]):
                    if part < 0:
                        continue
                    cells = np.ix_(parts.members[part], cols[b])
                    # D by a solve, not by K^-1: where K is ill-conditioned (a singular Gram
                    # at a small penalty) R K^-1 loses the digits the certificate needs
                    d = _solve_rows(gram[b, j] + np.diag(nu[b]), parts.residual[cells])
                    cand[cells] = e.prior[cells] + d
                solved[members] = np.isfinite(cand[members]).all()
    return cand, solved


def block_polish(engine, x: np.ndarray, lam: float,
                 warm: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Newton's point from another point, where the iterations would crawl.

    An interior-point solver (CVXPY's) leaves every block nonzero, those that belong at zero
    some orders of magnitude below the cluster's largest. Per cluster, the active blocks are
    guessed as those above a fraction of its largest norm (``POLISH_GUESSES``, coarse first: a set
    too small fails the zero blocks' conditions, one too large sends a ``nu`` to infinity),
    and the first guess whose Newton point stays in the box and passes :func:`block_kkt` is
    taken. ``warm`` (the minimiser at a neighbouring lambda or date, with exact zeros): first
    its own active blocks, joined by the zero blocks whose conditions fail, up to
    ``_WARM_ROUNDS`` times. Returns ``(x with those clusters' points, per response: its cluster
    was taken)``; the certificate judges the result as any other point.
    """
    e = engine
    out = x.copy()
    todo = np.ones(e.n, dtype=bool)

    def take(cand, solved):
        ok = block_accepted(e, cand, solved & todo, lam)
        out[ok] = cand[ok]
        todo[ok] = False
        return solved & ~ok

    if warm:
        start = x
        for _ in range(_WARM_ROUNDS):
            cand, solved = block_newton(e, start, lam, todo, accurate=True)
            retry = take(cand, solved)  # solved but refused: some zero block must join
            if not retry.any():
                break
            start = np.where(retry[:, None], _joined(e, cand, lam), x)
        if not todo.any():
            return out, ~todo
    _, norms = block_activity(e, x)
    top = norms.max(axis=1, keepdims=True)
    for fraction in POLISH_GUESSES:
        start = np.where((norms > fraction * top)[e.unit], x, e.prior)
        take(*block_newton(e, start, lam, todo, accurate=True))
        if not todo.any():
            break
    return out, ~todo


def interpolant_start(engine, lam: float) -> tuple[np.ndarray, np.ndarray] | None:
    """FCGL from the prior where the iterations crawl (a wide panel at a small penalty): an
    active-set method on the blocks, from the minimum-norm solution of the loss alone.

    There the minimiser nearly interpolates and keeps most blocks, and the minimum-norm
    solution ``D0 = G^+ (C - B0 G)`` (every block nonzero) is close to it. Newton runs on the
    active blocks with ``nu`` from ``D0``'s norms; where it fails, the blocks whose ``nu`` grew
    more than ``_DROP_GROWTH``-fold (their norms heading to zero) leave the set (the
    fastest-growing one if none did), and where its point is refused, the zero blocks whose
    conditions fail join it (their norms from ``D0``), up to ``_ACTIVE_ROUNDS`` tries. On the
    (60,100,20) panel with one cluster at ``lambda = 1e-5`` one block leaves and the second try
    is the minimiser; at (250,500,5) 47 of 500 blocks are zero and it takes 8 tries.

    Only one cluster whose rows can carry a loading on every factor (``N (T' - 1) >= M``: then
    the minimiser keeps most blocks; a pair on 164 rows and 500 factors keeps half, and the
    tries cycled around the set's size until they ran out), on a complete panel (one Gram),
    without a box, and up to ``_INTERPOLANT_MAX_M`` factors (``G^+`` costs ``M^3``). Returns
    ``(x, taken per response)`` like :func:`block_polish`, or None where it does not apply;
    the certificate judges the result as any other point.
    """
    e = engine
    if e.n_units != 1 or e.n_patterns != 1 or not e._unboxed or e.a != 0.0 or e.coop or \
            e.m > _INTERPOLANT_MAX_M or e.n * (e.t_rows - 1.0) < e.m:
        return None
    gram = e.gram[0]
    d0 = np.linalg.lstsq(gram, e._prior_residual().T, rcond=None)[0].T
    parts = _parts(e)
    (part,) = parts.ids[0][parts.ids[0] >= 0]  # one cluster, one Gram: one part
    weights = e.group_w  # (block j of the cluster: j)
    out = e.prior.copy()
    norms0 = np.linalg.norm(d0, axis=0)
    active = norms0 > 0.0
    for _ in range(_ACTIVE_ROUNDS):
        cols = np.flatnonzero(active)
        k = len(cols)
        if k == 0:
            break
        sub = gram[np.ix_(cols, cols)]
        kappa = 0.5 * e.t_rows * lam * (1.0 - e.a) * weights[cols]
        nu0 = kappa / norms0[cols]
        roots = _roots(parts, np.array([[part]]), cols[None], k)
        nu, done = _solve_batch(sub[None, None], parts.q[part][np.ix_(cols, cols)][None, None],
                                kappa[None], nu0[None], roots)
        if not done[0]:
            drop = leaving_blocks(nu[0], nu0)
            if drop is None:
                break
            active[cols[drop]] = False
            continue
        cand = out.copy()
        cand[:, cols] += _solve_rows(sub + np.diag(nu[0]), parts.residual[:, cols])
        if not np.isfinite(cand).all():
            break
        _, _, size, radius = _block_pull(e, cand, lam)
        join = ~active & (size > radius * (1.0 + 1e-9))
        if not join.any():
            ok = bool(block_kkt(e, cand, lam).all())
            return (cand if ok else out), np.full(e.n, ok)
        active |= join
        norms0 = np.where(join, np.maximum(norms0, 1e-3 * norms0.max()), norms0)
    return out, np.zeros(e.n, dtype=bool)


def leaving_blocks(nu: np.ndarray, nu0: np.ndarray) -> np.ndarray | None:
    """Where Newton on ``nu`` failed from ``nu0``: the active blocks to drop, those whose
    ``nu`` grew more than ``_DROP_GROWTH``-fold (their norms heading to zero), else the
    fastest-growing one(s); None when no growth is defined (nothing to go by)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        growth = nu / nu0
    if not np.isfinite(growth).any():
        return None
    drop = growth > _DROP_GROWTH
    return drop if drop.any() else growth >= np.nanmax(growth)


def _joined(engine, x: np.ndarray, lam: float) -> np.ndarray:
    """``x`` with every zero block whose pull exceeds its radius moved off zero: each cell by
    the pull's excess over the radius, scaled by its factor's curvature (one block step), so
    that Newton starts with that block active and a norm to take ``nu`` from."""
    e = engine
    _, pull, size, radius = _block_pull(e, x, lam)
    active, _ = block_activity(e, x)
    with np.errstate(divide="ignore", invalid="ignore"):
        shrink = np.where(~active.ravel() & (size > radius), 1.0 - radius / size, 0.0)
    curvature = (2.0 / e.t_rows) * e._diag[e.pattern]  # (the engine's Gram diagonal)
    step = shrink[e.gid].reshape(x.shape) * pull / np.where(curvature > 0, curvature, np.inf)
    return np.clip(x + step, e.lo, e.hi)


def _block_pull(engine, x: np.ndarray, lam: float):
    """``(grad, pull (N, M), the pull's norm per block, the block's radius
    lambda (1-a) w_gj)``: the pull is ``-grad`` less the directions the box forbids."""
    e = engine
    grad = (2.0 / e.t_rows) * (e._gram_times(x) - e.xty)
    pull = -grad
    pull = np.where((pull > 0) & ~(x < e.hi), 0.0, pull)
    pull = np.where((pull < 0) & ~(x > e.lo), 0.0, pull)
    size = np.sqrt(np.bincount(e.gid, weights=(pull * pull).ravel(), minlength=e.n_groups))
    return grad, pull, size, lam * (1.0 - e.a) * e.group_w


class _Parts:
    """A cluster's pieces by Gram (one for a complete panel): their responses, ``R = C - B0 G``
    and its Gram ``Q = R'R`` per part (``D'D = K^-1 Q K^-1``: the iterations never touch the
    rows, unless :func:`block_newton` is asked to be accurate)."""

    def __init__(self, engine):
        e = engine
        self.residual = e._prior_residual()
        n_grams = len(e.gram)
        if n_grams == 1 and len(e._unit_first) == e.n_units:
            # one Gram and every code present: a part is a cluster (np.unique's answer)
            uniq, part_of = np.arange(e.n_units), e.unit
        else:
            uniq, part_of = np.unique(e.unit * n_grams + e.pattern, return_inverse=True)
        self.pattern = uniq % n_grams
        unit_of_part = uniq // n_grams
        self.count = np.bincount(unit_of_part, minlength=e.n_units)
        pmax = int(self.count.max())
        self.ids = np.full((e.n_units, pmax), -1)
        first = np.searchsorted(unit_of_part, np.arange(e.n_units))
        slot = np.arange(len(uniq)) - first[unit_of_part]
        self.ids[unit_of_part, slot] = np.arange(len(uniq))
        m = e.m
        self.q = np.zeros((len(uniq) + 1, m, m))  # + a zero part for the padding id -1
        order = np.argsort(part_of, kind="stable")
        bounds = np.concatenate(([0], np.cumsum(np.bincount(part_of, minlength=len(uniq)))))
        # each part's responses, in order
        self.members = [order[bounds[part]:bounds[part + 1]] for part in range(len(uniq))]
        for part, rows in enumerate(self.members):  # few parts: large clusters, or a polish
            r = self.residual[rows]
            self.q[part] = r.T @ r
        self.pattern = np.append(self.pattern, 0)


def _parts(engine) -> _Parts:
    """The engine's :class:`_Parts`, built once (they depend on neither lambda nor the point)."""
    if engine._block_parts is None:
        engine._block_parts = _Parts(engine)
    return engine._block_parts


def _solve_rows(k_matrix: np.ndarray, residual: np.ndarray) -> np.ndarray:
    """``residual K^-1`` (K symmetric positive definite) by a solve; NaN where K is singular
    (the candidate is then refused)."""
    try:
        return np.linalg.solve(k_matrix, residual.T).T
    except np.linalg.LinAlgError:
        return np.full_like(residual, np.nan)


def _roots(parts, ids, cols, k) -> np.ndarray:
    """(B, P, k, k): per cluster and part a ``W`` with ``W'W = Q_AA``, the part's residual rows
    on the active columns or, beyond ``k`` rows, their triangular QR factor."""
    roots = np.zeros((len(cols), ids.shape[1], k, k))
    for b, part_ids in enumerate(ids):
        for j, part in enumerate(part_ids):
            if part < 0:
                continue
            r = parts.residual[np.ix_(parts.members[part], cols[b])]
            w = np.linalg.qr(r, mode="r") if len(r) > k else r
            roots[b, j, :len(w)] = w
    return roots


def _solve_batch(gram, q, kappa, nu, roots=None, runaway: bool = False):
    """Newton on ``phi(nu) = nu ||D(nu)|| - kappa`` for a batch of clusters at once.

    ``gram``, ``q``: (B, P, k, k) per cluster and part, ``G_AA`` and ``Q_AA`` (a padding part
    has ``Q = 0``); ``kappa``, ``nu``: (B, k); ``roots``: optional (B, P, k, k) square roots of
    ``q`` (see :func:`block_newton`'s ``accurate``). ``runaway``: a cluster whose ``nu`` grows
    beyond ``_RUNAWAY`` times its start fails at once (a block heading to zero). Returns
    ``(nu, converged)``; the loadings at ``nu`` are for the caller to solve (by a solve with
    ``K``, not ``K^-1``).
    """
    with np.errstate(all="ignore"):  # a block heading to zero (nu -> inf) fails, no warning
        return _newton_nu(gram, q, kappa, np.array(nu, dtype=float), roots, runaway)


def _newton_nu(gram, q, kappa, nu, roots=None, runaway=False):
    n_batch, n_parts, k, _ = gram.shape
    limit = _RUNAWAY * nu if runaway else None
    eye = np.eye(k)
    done = np.zeros(n_batch, dtype=bool)
    failed = np.zeros(n_batch, dtype=bool)
    todo = np.arange(n_batch)
    last = np.full(n_batch, np.inf)  # each cluster's max |phi_j| / kappa_j at the last step
    # While every cluster is still going (one cluster: always) the arrays are read as they
    # are, not gathered by ``todo`` at every step: a step is ~25 calls on k x k arrays, whose
    # fixed costs are the step's (same operations, same bits).
    g, qt, kap = gram, q, kappa
    for step_index in range(_MAX_STEPS):
        if limit is not None and step_index >= _RUNAWAY_STEP:
            away = (nu[todo] > limit[todo]).any(axis=1)
            if np.count_nonzero(away):
                failed[todo[away]] = True
                todo = todo[~away]
                if not len(todo):
                    break
        if len(todo) < n_batch:
            g, qt, kap = gram[todo], q[todo], kappa[todo]
        v = nu[todo]
        try:
            inv = np.linalg.inv(g + v[:, None, :, None] * eye)
        except np.linalg.LinAlgError:
            failed[todo] = True
            break
        if roots is None:
            s_parts = inv @ qt @ inv
        else:  # D'D = (K^-1 W')(K^-1 W')', K^-1 W' by a solve
            kw = np.linalg.solve(g + v[:, None, :, None] * eye, np.swapaxes(roots[todo], 2, 3))
            s_parts = kw @ np.swapaxes(kw, 2, 3)
        # (one part: the sum over parts is the part itself)
        s = s_parts[:, 0] if n_parts == 1 else s_parts.sum(axis=1)
        norms = np.sqrt(np.diagonal(s, axis1=1, axis2=2))
        phi = v * norms - kap
        # a norm that is not finite and positive (NaN fails both comparisons)
        bad = ~((norms > 0.0) & (norms < np.inf)).all(axis=1)
        worst = (np.abs(phi) / kap).max(axis=1)
        # converged, or stalled at round-off: a K as ill-conditioned as a singular Gram makes
        # at a small penalty stops phi short of _RTOL, the smaller the penalty the farther
        # (the certificate judges the point)
        conv = ~bad & ((worst <= _RTOL) | ((worst <= _STALL) & (worst > 0.5 * last[todo])))
        last[todo] = worst
        failed[todo[bad]] = True
        done[todo[conv]] = True
        go = ~bad & ~conv
        n_go = np.count_nonzero(go)
        if not n_go:
            break
        if n_go < len(go):
            s_parts, inv, norms, v, phi = s_parts[go], inv[go], norms[go], v[go], phi[go]
        # J_jk = delta_jk ||D_j|| - (nu_j / ||D_j||) sum_parts (D'D)_jk (K^-1)_kj
        coupling = s_parts * inv
        coupling = coupling[:, 0] if n_parts == 1 else coupling.sum(axis=1)
        jac = eye * norms[:, :, None] - (v / norms)[:, :, None] * coupling
        try:
            step = np.linalg.solve(jac, phi[:, :, None])[:, :, 0]
        except np.linalg.LinAlgError:
            failed[todo[go]] = True
            break
        new = v - step
        # nu > 0 (a nonzero block has a finite norm at the minimiser): no step across zero
        todo = todo[go]
        nu[todo] = np.where(new > 0.0, new, 0.5 * v)
    return nu, done & ~failed


def block_accepted(engine, cand: np.ndarray, solved: np.ndarray, lam: float) -> np.ndarray:
    """Per response: its cluster's Newton point (``solved``, :func:`block_newton`) is the
    cluster's minimiser: every member solved and inside the box, and the zero blocks'
    conditions hold (:func:`block_kkt`)."""
    e = engine
    ok = solved & ((cand >= e.lo) & (cand <= e.hi)).all(axis=1)
    ok = np.bincount(e.unit, weights=~ok, minlength=e.n_units)[e.unit] == 0
    if ok.any():
        ok &= block_kkt(e, cand, lam)
    return ok


def block_kkt(engine, x: np.ndarray, lam: float) -> np.ndarray:
    """Per response: every zero block of its cluster satisfies its optimality condition at
    ``x`` — the pull ``-grad`` on the block, less the directions the box forbids, lies in the
    group's ball of radius ``lambda w_gj`` (to 1e-9, as the cell and row tests). The active
    blocks are Newton's stationary points by construction."""
    e = engine
    grad, _, size, radius = _block_pull(e, x, lam)
    scale = np.zeros(e.n_groups)
    np.maximum.at(scale, e.gid, np.abs(grad).ravel())
    active, _ = block_activity(e, x)
    ok_group = active.ravel() | (size <= radius * (1.0 + 1e-9) + 1e-9 * scale)
    ok_unit = np.bincount(e.group_unit, weights=~ok_group, minlength=e.n_units) == 0
    return ok_unit[e.unit]
