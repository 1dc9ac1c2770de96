"""Many factors: the LASSO solved on a working set of factor columns.

Beyond ``_SPECTRAL_MAX`` factors every product with the Gram costs ``N M^2``, and a proximal
iteration or a gradient spends it on every column, while a LASSO with thousands of factors
keeps a few hundred loadings. The working set solves the problem restricted to a set ``W`` of
columns, the cells outside held at the prior (``D = 0``): the same engine on the Gram's
``W x W`` block, whose products cost ``N |W|^2``. One product with the whole Gram then gives the
gradient of every cell outside ``W``; the columns where a cell breaks the optimality conditions
(moving it off the prior lowers the objective) join ``W``, the most violated first and at most
doubling it (when they are few, as many columns close to breaking them join too: ``_NEAR``), and
the restricted problem is solved again from its answer. When no cell outside
``W`` breaks them, the restricted minimiser is the whole problem's minimiser, and the whole
engine's certificate (the same duality gap as any answer's) decides.

Columns rank by their largest violation over the responses in Jacobi units: the violation over
the column's norm ``sqrt(G_jj)``, whose square is proportional to what moving that cell alone
would gain. The first set holds the columns where the start is away from the prior, those with a
non-zero prior anywhere (a prior outside ``W`` would enter the restricted loss), and the most
violated others, ``_START`` at least.

The restriction saves little once ``W`` would hold more than ``_SHARE`` of the columns, or
``_ROWS_SHARE`` of the rows' count (a restricted LASSO with about as many columns as rows is
nearly singular, and its Newton tries stop landing). The whole problem is then solved from the
start it was given, as it is when a round fails to certify or after ``_ROUNDS`` rounds. After
the first round, ``W`` and the columns that break the conditions together predict that size:
with several responses, or a dense answer, they cover most columns at once, and the working set
stops there rather than after the rounds that would fill it.

Only the cell geometry (LASSO; one response is always a LASSO): a row group or a FCGL block
couples the columns of a response or a cluster in one norm, so a column's conditions are not
its own.

On a deferred Gram (more factors than rows, :class:`~._preparation.SufficientStats`) the
whole problem's products go through the design's root, and the ``W x W`` blocks are formed from
it as ``W`` grows, each round adding only the products of its new columns
(:meth:`FastEngine._gram_blocks`): while the working set certifies, no M x M array is formed,
and the cost follows ``|W|``.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

__all__ = ["solve_working_set"]

_START = 64  # columns of the first working set beyond the ones it must hold
_ROUNDS = 12
_SHARE = 0.5  # of the columns
_ROWS_SHARE = 0.9  # of the rows
_NEAR = 0.1  # of the threshold


def solve_working_set(engine, x: np.ndarray, lam: float, tol: float, max_iter: int,
                      warm: bool):
    """Solve ``engine``'s problem from the feasible ``x`` on working sets of columns.

    Returns
    -------
    (x, done, iterations)
        ``done`` is ``(coef, unit gaps, unit objectives, iterations)`` when the whole problem's
        certificate holds at the answer; else None, and ``x`` (feasible, at least as good a
        start as the given one) is where the whole problem's solve should start.
    """
    start = x
    must = (engine.prior != 0.0).any(axis=0) | (x != engine.prior).any(axis=0)
    inside = must.copy()
    most = min(_SHARE * engine.m, _ROWS_SHARE * engine.t_rows)
    spent = 0
    scores, near = _violations(engine, x, lam)
    for round_ in range(_ROUNDS):
        new = (scores > 0.0) & ~inside
        n_new = int(new.sum())
        if (round_ and not n_new) or not (n_new or inside.any()):
            # W's minimiser (or the start) breaks no condition outside W: it is the whole
            # problem's minimiser, which the whole certificate confirms
            gaps, objs = engine.unit_gaps(x, lam)
            certified = engine._meets(x, lam, gaps, objs, tol)
            return x, (x, gaps, objs, spent) if certified else None, spent
        if round_ and inside.sum() + n_new > most:
            # the columns that break the conditions at W's minimiser would fill the set: they
            # are spread over most columns (several responses, or a dense answer)
            return start, None, spent
        if n_new:
            cap = max(_START, int(inside.sum())) if round_ == 0 else int(inside.sum())
            order = np.argsort(-np.where(new, scores, -np.inf), kind="stable")
            inside[order[:min(n_new, cap)]] = True
            if round_ and 8 * n_new <= cap:
                # few violators: as many columns close to breaking their conditions join too
                inside |= near & (np.cumsum(near & ~inside) <= n_new)
        if inside.sum() > most:
            return start, None, spent
        restricted, cols = _columns_engine(engine, np.flatnonzero(inside))
        coef, gaps, objs, it = restricted._solve_units(
            x[:, cols], lam, tol, max(max_iter - spent, 1), warm=warm or round_ > 0)
        spent += it
        x = engine.prior.copy()
        x[:, cols] = coef
        if not restricted._meets(coef, lam, gaps, objs, tol) or spent >= max_iter:
            return x, None, spent
        scores, near = _violations(engine, x, lam)
    return x, None, spent


def _violations(engine, x: np.ndarray, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """``(scores, near)``, per column (M,): the largest violation of the optimality
    conditions over the responses, in Jacobi units (0 where every cell of the column satisfies
    them), and whether some cell that can move is within ``_NEAR`` of its threshold."""
    up_bad, down_bad, _, thr, _, up, down = engine._descents(x, lam)
    excess = np.maximum(np.where(up_bad, -up, 0.0), np.where(down_bad, -down, 0.0))
    margin = _NEAR * thr
    near = (((x < engine.hi) & (up < margin)) | ((x > engine.lo) & (down < margin))).any(axis=0)
    return (excess * engine._jac[engine.pattern]).max(axis=0), near


def _columns_engine(engine, cols: np.ndarray):
    """``(engine, cols')``: the engine of the problem restricted to the factor columns
    ``cols``, in the order ``cols'``, the other cells held at the prior, which is zero there
    (``solve_working_set`` keeps every column with a non-zero prior inside), so the restricted
    loss is the whole one on those cells. Its Gram is formed (``|W| x |W|``), from the
    engine's blocks when the whole one is deferred: their own block, in its own column order
    (the order a restricted problem is posed in changes nothing), without a copy."""
    stats, spec = engine.stats, engine.spec
    held = engine._gram_columns(cols)  # (a deferred Gram's)
    if held is None:
        gram, symmetric = stats.gram[:, cols][:, :, cols], False
    else:
        (cols, gram), symmetric = held, True
        gram = gram[None]

    def pick(a):
        return None if a is None else np.asarray(a)[:, cols]

    sub_stats = replace(stats, gram=gram, xty=stats.xty[:, cols], xw=stats.xw[:, cols],
                        root=None)
    sub_spec = replace(spec, prior=spec.prior[:, cols], signs=pick(spec.signs),
                       pinned=pick(spec.pinned), cell_weight=pick(spec.cell_weight),
                       lower_bound=pick(spec.lower_bound), upper_bound=pick(spec.upper_bound))
    return type(engine)(sub_stats, sub_spec, spectral=False, symmetric=symmetric), cols
