"""When and where the fast engine tries Newton's method, and which responses it finished.

:class:`~xl_factorlasso.core.linear_model._engine.FastEngine` iterates; this module decides
after each iteration whether the settled responses (cell and row geometries) or clusters (FCGL
blocks) get a Newton try, takes a candidate only at a unit's minimiser, and for LASSO corrects a
refused candidate's support (active-set steps). The Newton systems themselves are the engine's
(``_newton_cell``, ``_newton_row``) and :mod:`._block_newton`'s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ._block_newton import block_accepted, block_activity

if TYPE_CHECKING:
    from ._engine import FastEngine

_NEWTON_AFTER = 3  # iterations with an unchanged support before a Newton finish
_SUPPORT_ROUNDS = 3  # LASSO: corrected supports tried after a refused Newton point
# LASSO, before any iteration: supports tried from a cold start's guess
# (_NewtonFinish.cold_start) or a warm start's support. From the prior a support gains and
# loses more cells than between neighbouring lambdas: 4-6 tries settled it at (500,10,50) to
# (5000,50,2000).
_START_ROUNDS = 6
# LASSO warm starts with more factors than rows: a response's violated cells join its first
# try only while its support stays within this share of the rows (_NewtonFinish.warm_start)
_WARM_ROOM = 0.9


def _any(flags: np.ndarray) -> bool:
    """``flags.any()`` of a boolean array without ndarray.any's Python wrapper: 0.8 us
    instead of 2.4 (the Newton start's bookkeeping asks ~30 times a fit)."""
    return np.count_nonzero(flags) > 0


def _all(flags: np.ndarray) -> bool:
    """``flags.all()`` of a boolean array (as :func:`_any`)."""
    return np.count_nonzero(flags) == flags.size


def newton_accepted(engine: FastEngine, cand: np.ndarray, support: np.ndarray,
                    rows: np.ndarray, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """Cell and row geometries: ``(responses of rows where cand is the minimiser, cells
    kept)``: a response's Newton point on ``support`` is its minimiser when it keeps the
    support's signs and the box and the conditions off the support hold."""
    e = engine
    # (without a box, lo = -inf and hi = inf everywhere: within them is finite, one pass)
    if _all(rows):
        inside = np.isfinite(cand) if e._unboxed else \
            (cand >= e.lo) & (cand <= e.hi) & np.isfinite(cand)
        kept = ((np.sign(cand - e.prior) == support) | (support == 0)) & inside
    else:  # only the rows tried (a correction's few): True elsewhere
        idx = np.flatnonzero(rows)
        c, s = cand[idx], support[idx]
        kept = np.ones(cand.shape, dtype=bool)
        inside = np.isfinite(c) if e._unboxed else \
            (c >= e.lo[idx]) & (c <= e.hi[idx]) & np.isfinite(c)
        kept[idx] = ((np.sign(c - e.prior[idx]) == s) | (s == 0)) & inside
    accepted = rows & kept.all(axis=1)
    if _any(accepted):
        accepted = e._kkt_holds(cand, lam, support, rows=accepted)
    return accepted, kept


class _NewtonFinish:
    """When and where :class:`FastEngine` tries Newton's method (cell and row geometries, where
    a unit is a response), and which responses are known to be at their minimisers.

    A response whose support and signs have not changed for ``_NEWTON_AFTER`` iterations, and
    have not been tried yet, is *eligible*. A try solves the smooth piece of the eligible
    responses at once; it runs when at least half of the responses still waiting are eligible
    (so a few late movers do not trigger a try each), at most every ``_NEWTON_AFTER``
    iterations, and after a try that finished no response only once twice the wait has passed
    (at most a quarter of the iterations spent): supports that look settled but are not (a
    wide sparse-group panel's rows, problem 493 of a random sweep) had a try every five
    iterations, 364 tries that finished nothing in 1,780 iterations, 3.8 of the fit's 5.6 s.
    A response takes its candidate only when it is the response's minimiser: the
    candidate keeps the support's signs and the box (its support cells are then stationary)
    and the optimality conditions hold off the support (:meth:`FastEngine._kkt_holds`).
    Responses are independent, so one response's bad candidate never costs another its good
    one.
    """

    def __init__(self, engine: FastEngine, newton, lam: float):
        self.engine, self.newton, self.lam = engine, newton, lam
        self.last = None
        self.stable = np.zeros(engine.n, dtype=int)
        self.tried = np.zeros(engine.n, dtype=bool)
        self.exact = np.zeros(engine.n, dtype=bool)  # at the minimiser, support unchanged since
        self.unavailable = False  # the systems were too costly: polish by iterations only
        self.idle = False  # no system will ever be tried: skip the per-iteration bookkeeping
        self.early = False  # FCGL, cold: try every cluster after the first iteration
        self.last_try = -_NEWTON_AFTER
        self.wait = _NEWTON_AFTER  # iterations between tries (step)

    @property
    def pending(self) -> bool:
        """Some response is not known to be at its minimiser.

        A small total gap does not end the solve then: a loading entering or leaving by a hair
        leaves its response 1e-6 from the minimiser with a relative gap of 5e-13 (and a
        relative gap at round-off still allows 1e-8 along a flat direction), while Newton, once
        the support settles, lands on the minimiser.
        """
        return not self.unavailable and not self.exact.all()

    def support(self, x: np.ndarray) -> np.ndarray:
        e = self.engine
        # (no box: strictly inside (-inf, inf) is finite, one pass)
        inside = np.isfinite(x) if e._unboxed else (x > e.lo) & (x < e.hi)
        if e.geometry == "block":
            # a nonzero block is smooth whatever its cells' signs: only activity and the box
            # define its piece (a cell crossing zero inside it changes nothing)
            return (block_activity(e, x)[0][e.unit] & inside).astype(float)
        return np.sign(x - e.prior) * inside

    def step(self, x: np.ndarray, it: int):
        """After iteration ``it``: ``(x', accepted rows)`` if a try moved some responses, else
        ``None``."""
        if self.idle:
            return None
        support = self.support(x)
        if self.last is not None:
            same = (support == self.last).all(axis=1)
            self.stable = np.where(same, self.stable + 1, 0)
            self.tried &= same
            self.exact &= same
        self.last = support
        if self.early and it == 1:
            return self._early(x, support)
        eligible = (self.stable >= _NEWTON_AFTER) & ~self.tried
        n_eligible = int(eligible.sum())
        if n_eligible == 0 or it - self.last_try < self.wait:
            return None
        if 2 * n_eligible < int((~self.tried).sum()):
            return None
        self.last_try = it
        before = self.exact.copy()
        out = self.accept(x, support, eligible)
        accepted = self.exact & ~before
        self.wait = _NEWTON_AFTER if accepted.any() else \
            min(2 * self.wait, max(_NEWTON_AFTER, it // 4))
        return (out, accepted) if accepted.any() else None

    def cold_start(self, x: np.ndarray, slopes=None) -> np.ndarray:
        """LASSO from the prior ``x``: an active-set method before any iteration. Newton's
        point on a guessed support (:meth:`FastEngine._support_guess`), corrected up to
        ``_START_ROUNDS`` times; the responses it does not finish iterate from ``x``.

        It replaces the proximal iterations that would settle the support (10-20 from the
        prior) by a few systems on the supports: solves with signs or boxes ended with no
        iteration at (2000,30,500) and (5000,50,2000). ``slopes``: the engine's
        ``_descents(x, lam)[:3]`` for every response, when the caller has them.
        """
        rows = ~self.exact
        if not _any(rows):
            return x
        support = self.last.copy()
        if slopes is not None:
            slopes = tuple(part[rows] for part in slopes)
        support[rows] = self.engine._support_guess(x, self.lam, np.flatnonzero(rows), slopes)
        out = self.accept(x, support, rows, start=True)
        self.last = self.support(out)
        return out

    def warm_start(self, x: np.ndarray) -> np.ndarray:
        """From a warm start ``x`` (the previous lambda or date), before any iteration: it
        usually sits on the new solution's support, and one Newton step there is exact. LASSO
        tries the support with the cells whose conditions fail at ``x``, which a try on the
        bare support would refuse for them (a working set's new columns, the cells a smaller
        lambda frees): bench_path's 50-lambda path at (2000,30,500) took 14% less. With more
        factors than rows (a singular Gram) only while the support stays within
        ``_WARM_ROOM`` of the rows' count: beyond, the added cells overfill it and its system
        is refused (a nonneg LassoModelCV at (60,100,20) took 2.4x as long with every
        response's cells added)."""
        e = self.engine
        support = self.last
        if e.geometry == "cell":
            up_bad, down_bad = e._descents(x, self.lam)[:2]
            d = x - e.prior
            sign = np.where(d != 0, np.sign(d), np.where(up_bad, 1.0, -1.0))
            new = (support == 0) & (up_bad | down_bad)
            if e.m > e.t_rows:
                size = (support != 0).sum(axis=1) + new.sum(axis=1)
                new &= (size <= _WARM_ROOM * e.t_rows)[:, None]
            support = np.where(new, sign, support)
        out = self.accept(x, support, np.ones(e.n, dtype=bool), start=True)
        self.last = self.support(out)  # (an accepted row's support is its own now)
        return out

    def _early(self, x, support):
        """FCGL from the prior, after one proximal iteration: its active blocks are those
        whose pull exceeds their threshold, usually the answer's, so a try then usually ends
        the solve (at (2000,30,500) and (5000,50,2000) with one cluster: 1 iteration instead
        of 4). A cluster it does not solve keeps the usual schedule."""
        self.last_try = 1
        before, unavailable = self.exact.copy(), self.unavailable
        out = self.accept(x, support, np.ones(self.engine.n, dtype=bool))
        self.unavailable = unavailable  # a guess that failed says nothing of later tries
        self.tried[:] = self.exact
        accepted = self.exact & ~before
        return (out, accepted) if accepted.any() else None

    def accept(self, x, support, rows, start: bool = False) -> np.ndarray:
        """``x`` with Newton's point on the responses ``rows`` where it is their minimiser
        (marked in :attr:`exact`); for LASSO a refused point's support is corrected up to
        ``_SUPPORT_ROUNDS`` times, ``_START_ROUNDS`` before any iteration (``start``)."""
        e = self.engine
        self.tried |= rows
        if e.geometry == "block":
            return self._accept_blocks(x, rows)
        free = support != 0
        empty = rows & ~free.any(axis=1)
        if _any(empty):  # nothing to solve: at D = 0 the conditions decide
            self.exact |= e._kkt_holds(x, self.lam, support, rows=empty)
        rows = rows & ~empty
        out = x.copy()
        rounds = 0 if e.geometry != "cell" else _START_ROUNDS if start else _SUPPORT_ROUNDS
        # corrections drop and add in one step until a try finishes no row; with more factors
        # than rows (a singular Gram) never: added cells overfill supports near the rows' count
        # and their systems are refused (wide nonneg LassoModelCV fits took 10-20% longer)
        both = e.m <= e.t_rows
        for attempt in range(rounds + 1):
            if not _any(rows):
                break
            cand = self.newton(x, self.lam, support, rows)
            if cand is None:
                self.unavailable = True
                break
            if e.geometry == "row" and not np.isfinite(cand[rows]).all():
                # rows beyond the closed form whose dense systems are too costly: as None
                # for them (the solve may end on a small gap without them being exact)
                self.unavailable = True
            accepted, kept = self.take(out, cand, support, rows)
            if attempt and self.last is not None:  # a corrected support: the rows' own now
                self.last[accepted] = self.support(cand)[accepted]
            both = both and (not attempt or _any(accepted[rows]))
            rows = rows & ~accepted
            if attempt < rounds and _any(rows):
                x, support, rows = self._corrected(x, cand, support, rows, kept, both)
        return out

    def take(self, out, cand, support, rows):
        """Put ``cand`` into ``out`` (in place) on the responses ``rows`` where it is their
        minimiser (marked in :attr:`exact`): it keeps the support's signs and the box, and the
        conditions off the support hold. Returns ``(accepted rows, cells kept)``."""
        accepted, kept = newton_accepted(self.engine, cand, support, rows, self.lam)
        self.exact |= accepted
        out[accepted] = cand[accepted]
        return accepted, kept

    def _corrected(self, x, cand, support, rows, kept, both=True):
        """LASSO: the support of the next try where Newton's point was refused (an active-set
        step). A free cell that crossed zero leaves the support at the prior, one beyond its
        box at that bound; at the point so corrected (the candidate elsewhere) the row adds
        the cells whose conditions fail there, in the same step (a dropped cell only with the
        other sign), instead of adding only at the next try, which left many cold starts at
        small penalties to the iterations. That point is not stationary, though: on strongly
        correlated factors (five factor ETFs) the supports so corrected can wander without
        settling, so once a try finishes none of its rows (``both`` False) a row that drops
        cells only drops them, and adds at the next candidate, which is stationary. Between
        month-ends of a rolling fit or neighbouring lambdas a support typically gains or loses
        one or two cells: a few tries find it, where the proximal iterations would spend tens
        of iterations. Returns ``(x, support, rows still to try)``.
        """
        e = self.engine
        x, support = x.copy(), support.copy()
        # (on the rows tried only: the others keep x and their support)
        idx = np.flatnonzero(rows)
        sup, c, prior = support[idx], cand[idx], e.prior[idx]
        crossed = (sup != 0) & ~kept[idx]
        flip = np.sign(c - prior) != sup
        xr = np.where(crossed & flip, prior, x[idx])
        xr = np.where(crossed & ~flip & (c > e.hi[idx]), e.hi[idx], xr)
        xr = np.where(crossed & ~flip & (c < e.lo[idx]), e.lo[idx], xr)
        old = sup.copy()
        sup[crossed] = 0.0
        dropped = crossed.any(axis=1)
        xr = np.where(crossed, xr, c)
        x[idx] = xr
        up_bad, down_bad = e._descents(x, self.lam, idx)[:2]
        d = xr - prior  # (a cell at a bound away from the prior keeps D's sign)
        sign = np.where(d != 0, np.sign(d), np.where(up_bad, 1.0, -1.0))
        new = (sup == 0) & (up_bad | down_bad) & (sign != old)
        if not both:
            new &= ~dropped[:, None]
        support[idx] = np.where(new, sign, sup)
        retry = np.zeros(len(rows), dtype=bool)
        retry[idx] = dropped | new.any(axis=1)
        return x, support, retry

    def _accept_blocks(self, x, rows) -> np.ndarray:
        """FCGL blocks: Newton's point of every cluster of ``rows`` (:func:`block_newton`),
        taken where it stays in the box and the zero blocks' conditions hold."""
        e = self.engine
        cand, solved = self.newton(x, self.lam, rows)
        if not solved[rows].all():
            # a cluster with a bound in its active cells, or not converged: the solve may end
            # on a small gap without it (as without the finish)
            self.unavailable = True
        ok = block_accepted(e, cand, solved, self.lam)
        self.exact |= ok
        out = x.copy()
        out[ok] = cand[ok]
        return out
