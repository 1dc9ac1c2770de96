"""The one solve path of :class:`LassoModel` and :class:`LassoModelCV`: every answer certified.

An answer is returned only when its relative duality gap, computed by
:meth:`FastEngine.relative_gap` from the statistics and the point alone (not from what the
solver that produced it believes), is at most ``tol``. In order:

1. ``lambda >= lambda_max``: the prior is the minimiser (it respects the signs, and the
   optimality conditions at ``B = B0`` are what ``lambda_max`` measures). No solve; the gap is
   still computed. ``solver_ = "closed form"``.
2. The fast engine (engines "fast" and "auto"): ``solver_ = "fast"``. Engine "fast" raises
   :class:`SolveError` when it cannot certify within its budget. Where its iterations are
   known to crawl (:func:`~._homotopy.iterations_crawl`: FCGL, and sparse-group rows beyond
   the row Newton finish started from the prior, on a wide panel at a small penalty) both
   engines first take the guesses below; then "auto" goes to 3, and "fast" to its iterations
   (a FCGL cross-validation with signs on a wide panel spent 45-50 s in 20,000-iteration
   solves, a few uncertified, that the guesses answer in 2 s). FCGL with single-response
   clusters is solved in parts (4, below; on "fast" a part's uncertified point is kept, and
   the whole's certificate judges the assembly, before the whole's iterations); FCGL from a
   warm start first tries Newton's point on the start's active blocks
   (:meth:`FastEngine.polish_start`; with a box or an L1 share, with cells held at a bound
   or at zero: :mod:`._boxed_blocks`), and FCGL with a box (signs,
   ``nonneg``) first gets ``_BOXED_BLOCKS_PROBE`` iterations and Newton's point on what they
   hold active and at a bound, then (where those guesses fail) the sets found by the duals
   of the responses' ridge problems (:mod:`._dual_blocks`). Row groups with a box or an L1
   share on a wide panel (engines "fast" and "auto") start from each response's held cells
   found by the dual of its box-constrained ridge problem and the row Newton step
   (:mod:`._box_ridge`), from a warm start after ``_WARM_PROBE`` iterations.
3. CVXPY (engine "cvxpy", or "auto" after an uncertified fast solve): each solver of the chain
   in turn; an "optimal" or "optimal_inaccurate" point is certified like any other, and the
   first one that passes is returned (``solver_ = "CLARABEL"``, or e.g.
   ``"CLARABEL (optimal_inaccurate, certified)"``). A chain that starts with CLARABEL at its
   defaults, whose point does not certify, ends with CLARABEL again at tight tolerances
   (``_TIGHT_CLARABEL``); Newton's guesses (FCGL blocks, sparse-group rows) are tried on a
   point before the next solve.
4. No CVXPY point passed: the best one is polished by the fast engine warm-started from it
   (``solver_ = "CLARABEL + fast polish"``); FCGL blocks and sparse-group rows start from
   Newton's point on what CVXPY's point holds active, where that point is near, or whatever
   its gap for FCGL with a box or an L1 share on a wide panel
   (:meth:`FastEngine.polish_start`). Where "auto" skipped the engine, a
   certified CVXPY point gets that Newton point too, for its exact zeros (the same label, no
   iteration).
   Where the iterations crawl, FCGL's single-response clusters are solved as LASSO responses
   and the other clusters on their own (:mod:`._cluster_split`,
   :meth:`CertifiedSolver._solve_parts`).
5. Otherwise :class:`SolveError` naming the best gap and every attempt; at once, with no
   further stage, where the gap's rounding floor puts ``tol`` out of reach of any point
   (FCGL and cooperative blocks, :mod:`._gap_floor`).

``solver_status_`` is therefore always "optimal": it means *certified*, never a solver's
unverified claim.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ..exceptions import SolveError
from ._block_newton import interpolant_start
from ._box_ridge import dual_start_applies, held_row_point, rows_probe
from ._cluster_split import single_clusters, split_problem
from ._coop_newton import coop_solve
from ._dual_blocks import dual_block_polish, dual_blocks_apply, overfull
from ._engine import DEFAULT_MAX_ITER, DEFAULT_TOL, FastEngine
from ._gap_floor import check_floor
from ._homotopy import iterations_crawl
from ._lambda_max import lambda_max_from_stats
from ._penalty import PenaltySpec
from ._preparation import SufficientStats

__all__ = ["CertifiedSolver", "Solution"]

# Snapping distances (scaled units) tried on an interior-point answer, finest first.
_SNAP = (1e-10, 1e-8, 1e-6)
# A CVXPY point this close (relative gap) gets Newton's guesses on its active set before the
# polishing iterations (FastEngine.polish_start); a farther one only the iterations.
_NEAR = 1e-4
# Clarabel again, at these tolerances, where its point at the defaults (the first of the chain,
# without the user's settings) does not certify, before the polishing iterations: its default
# points stop at relative gaps of ~1e-7 to 1e-6, and on wide panels at small penalties the
# iterations from there crawl (FCGL with an L1 share: 20,000 iterations, 2-25 s, then
# SolveError on 6 of 6 random fits; without one, a pair cluster on 164 rows and 500 factors hid
# its active blocks from every guess of Newton's polish), while at these Clarabel certified
# those fits as they were, or every guess from 3e-5 of the largest norm down passed. Not from
# the start: they cost 30-60% more interior-point time on the FCGL fits with one cluster that
# the first point serves.
# FCGL blocks with a box (signs, nonneg) where "auto" skips the engine (a wide panel at a small
# penalty): these iterations, then Newton's guesses from their point, before CVXPY. On random
# wide panels (22-119 rows, 60-347 factors, 1e-3 to 1e-7 of lambda_max) the iterations alone
# certified the sparse non-negative answers (one cluster at (119,291,10): 0.2-0.4 s against
# 82 s for Clarabel and its polish), and their point's guesses most others (one cluster with
# signs and a prior at (113,269,10): 0.5-3.6 s against 44-66 s); 1,000 iterations did no better
_BOXED_BLOCKS_PROBE = 300
# Row groups where the dual start applies (_box_ridge), from a warm start: these iterations
# first (Newton's step on the start's support is tried before any); from the prior,
# _box_ridge.rows_probe's
_WARM_PROBE = 30
# Cooperative blocks from the prior below this fraction of lambda_max: a continuation of
# _COOP_STAGES penalties from lambda_max / 2 down first (CertifiedSolver._iterate)
_COOP_CONTINUATION = 1e-2
_COOP_STAGES = 6
_COOP_STAGE_ITER = 600  # each stage's budget (three rounds, coop_solve)
_TIGHT_CLARABEL = {"tol_gap_abs": 1e-12, "tol_gap_rel": 1e-12, "tol_feas": 1e-12,
                   "tol_ktratio": 1e-10}


@dataclass(frozen=True)
class Solution:
    """A certified answer: coefficients (N x M), what produced them, the relative duality gap
    and the fast-engine iterations (None when CVXPY's point passed as it was)."""

    coef: np.ndarray
    solver: str
    gap: float
    n_iter: int | None
    status: str = "optimal"


def _crawl_note(tried: set[str]) -> str:
    """The label's note where "auto" left the fast engine's iterations for CVXPY
    (:func:`iterations_crawl`: singular Gram, small penalty): what of the engine ran before
    (``tried``: its short probe, Newton's guesses on the sets it or the duals hold) and did not
    certify, so that the label does not say the engine was skipped when only its full
    iterations were."""
    reason = "singular Gram, small penalty"
    if not tried:
        return f" (fast iterations skipped: {reason})"
    what = " and ".join(w for w, k in (("probe", "probe"), ("Newton guesses", "guesses"))
                        if k in tried)
    return f" (fast {what} not certified, full iterations skipped: {reason})"


class CertifiedSolver:
    """Solve one prepared problem at any ``lambda``; see the module docstring.

    Parameters
    ----------
    stats : SufficientStats
    spec : PenaltySpec
    lambda_max : float
        Smallest ``lambda`` at which the prior is the minimiser.
    engine : {"auto", "fast", "cvxpy"}
        ``"auto"`` with ``use_fast=False`` is an explicit CVXPY request.
    use_fast : bool
        Start with the fast engine.
    tol, max_iter : float, int
        Certification tolerance (relative duality gap) and the fast engine's budget.
    solver, solver_params, solver_fallbacks, verbose
        The CVXPY chain (see :class:`LassoModel`).
    """

    def __init__(
        self,
        stats: SufficientStats,
        spec: PenaltySpec,
        lambda_max: float,
        *,
        engine: str = "auto",
        use_fast: bool = True,
        tol: float = DEFAULT_TOL,
        max_iter: int = DEFAULT_MAX_ITER,
        solver: str = "CLARABEL",
        solver_params: dict | None = None,
        solver_fallbacks: list[str] | tuple[str, ...] | None = None,
        verbose: bool = False,
    ):
        self.stats, self.spec = stats, spec
        self.lambda_max = float(lambda_max)
        self.kind, self.use_fast = engine, bool(use_fast)
        self.tol, self.max_iter = float(tol), int(max_iter)
        self.chain = [(solver, solver_params or {})] + [
            (name, {}) for name in (solver_fallbacks or [])
        ]
        self.verbose = bool(verbose)
        self._options = dict(engine=engine, use_fast=use_fast, tol=tol, max_iter=max_iter,
                             solver=solver, solver_params=solver_params,
                             solver_fallbacks=solver_fallbacks, verbose=verbose)
        self._split: list[tuple[np.ndarray, CertifiedSolver]] | None = None
        # a part of engine "fast" (_parts): no retry from the prior (the whole's iterations
        # follow where a part fails), and its last point kept for the whole's certificate
        self._part = False
        self._whole = True  # not one of _parts (any engine): its clusters are the fit's
        self._unsettled: tuple[np.ndarray, int] | None = None
        # The engine is also the certificate of every answer: always built (cheap: one
        # eigendecomposition per response mask). The CVXPY programme only when needed.
        self.engine = FastEngine(stats, spec)
        self._problems: dict[bool, object] = {}

    def problem(self, reg_lambda: float):
        """The compiled CVXPY programme for ``reg_lambda`` (one with a penalty, one for
        ``lambda = 0`` whose factor scales are unlimited: see ``_formulation``)."""
        penalised = reg_lambda > 0.0
        if penalised not in self._problems:
            # Imported here: the fast path never needs CVXPY (~50 MB, ~0.5 s to import).
            from ._formulation import PENALTY_SCALE_RATIO, LassoProblem

            ratio = PENALTY_SCALE_RATIO if penalised else None
            self._problems[penalised] = LassoProblem(self.stats, self.spec, max_ratio=ratio)
        return self._problems[penalised]

    def _gap(self, coef: np.ndarray, lam: float,
             stationary: bool = False) -> tuple[float, bool]:
        """``(relative gap, certified)`` of ``coef``: within ``tol``, or within the gap's own
        rounding floor beyond it (:meth:`FastEngine.certificate`, ``stationary`` as there)."""
        return self.engine.certificate(coef, lam, self.tol, stationary)

    def _certify_point(self, coef: np.ndarray, lam: float) -> tuple[float, bool, np.ndarray]:
        """``(gap, certified, point)``: the best of CVXPY's point and its snapped versions
        (:meth:`LassoProblem.snapped`, from the finest tolerance up; the first that passes)."""
        best = (*self._gap(coef, lam), coef)
        for eps in _SNAP:
            if best[1]:
                break
            candidate = self.problem(lam).snapped(coef, eps)
            gap, ok = self._gap(candidate, lam)
            if ok or gap < best[0]:
                best = (gap, ok, candidate)
        return best

    def _newton_worth(self, gap: float) -> bool:
        """Whether Newton's guesses (:meth:`FastEngine.polish_start`) are tried on a CVXPY point
        of relative gap ``gap``: near the minimiser's faces (``_NEAR``), or whatever its gap
        with FCGL blocks holding cells at a bound or at zero on a wide panel, whose interior
        points are far from certified (0.8 and 4e-4 at Clarabel's default and tight tolerances,
        signs at 1e-7 of ``lambda_max``) while the cells their guesses hold are already near
        their bound."""
        return gap <= _NEAR or self.engine.polishes_held_blocks

    def _newton_point(self, coef: np.ndarray, lam: float, warm: bool = False,
                      every: bool = False):
        """``(point, its relative gap, certified)``: Newton's point on what ``coef`` holds
        active (:meth:`FastEngine.polish_start`, ``every`` passed on), certified like any
        other."""
        point = self.engine.polish_start(coef, lam, warm=warm, every=every)
        return (point, *self._gap(point, lam))

    def _guessed(self, probe: np.ndarray, coef_init, lam: float):
        """Newton's point on the sets guessed from the probe's point (:meth:`_newton_point`).
        The probe's point is far from certified, so the guesses are of use only where every
        cluster gets a point: they stop at the first cluster without one (wide found-cluster
        fits spent 10.2 s in 30 failed guesses against 0.6 s in 23 that certified, on
        bench_wide_random's mixed FCGL problems 1-120; after Clarabel, whose point is near
        the minimiser on every cluster, each cluster's point still counts)."""
        return self._newton_point(probe, lam, every=True)

    def _dual(self, probe: np.ndarray, coef_init, lam: float):
        """``(point, gap, certified)`` from the duals' sets (:mod:`._dual_blocks`), started
        from the prior or the warm start ``coef_init``; not certified where it does not apply
        or a cluster did not settle."""
        if not dual_blocks_apply(self.engine, self._one_cluster):
            return probe, np.inf, False
        point, found = dual_block_polish(self.engine, lam, np.ones(self.engine.n, dtype=bool),
                                         coef_init)
        if not found.all():
            return point, np.inf, False
        # (stationary to rounding by construction: its gap's rounding floor may excuse it)
        return (point, *self._gap(point, lam, stationary=True))

    def _dual_first(self, x: np.ndarray) -> bool:
        """FCGL blocks where the duals apply and some response of ``x`` has more free cells
        than rows (:func:`~._dual_blocks.overfull`)."""
        e = self.engine
        return dual_blocks_apply(e, self._one_cluster) and overfull(e, x)

    @property
    def _one_cluster(self) -> bool:
        """Every response of the fit in one cluster (``n_clusters=1``), not a part whose one
        cluster was found among others (:meth:`_parts`): the duals and, without a box, the
        probe are tried there whatever its size (found clusters' small problems: Clarabel)."""
        return self._whole and self.engine.n_units == 1

    def solve(self, reg_lambda: float, coef_init: np.ndarray | None = None) -> Solution:
        """A certified solution at ``reg_lambda`` (``coef_init`` warm-starts the fast engine).

        Raises
        ------
        SolveError
            No certified answer; ``attempts`` lists every try, ``gap`` the best gap reached.
        """
        lam, tol = float(reg_lambda), self.tol
        self._unsettled = None
        attempts: list[tuple[str, str]] = []
        best_gap = np.inf
        if lam >= self.lambda_max:
            prior = self.engine.prior.copy()
            gap, ok = self._gap(prior, lam)
            if ok:
                return Solution(prior, "closed form", gap, 0)
            attempts.append(("closed form", f"prior not certified: relative duality gap "
                                            f"{gap:.1e} > tol {tol:g}"))
            best_gap = min(best_gap, gap)
        note = ""
        tried = set()  # what of the fast engine ran before CVXPY: "probe", "guesses"
        if self.use_fast and dual_start_applies(self.engine, lam, self.lambda_max):
            # row groups with a box or an L1 share on a wide panel: the held cells from the
            # dual, then the row Newton step, before the iterations (they crawl there), after
            # a probe of them with many responses (rows_probe); from a neighbouring minimiser
            # (a CV grid's, a path's) a few iterations with Newton's step on its support
            # first, which usually settle it at once
            probe = rows_probe(self.engine) if coef_init is None else _WARM_PROBE
            spent = 0  # the probe's iterations, reported with the dual start's answer
            if probe:
                result = self.engine.solve(lam, coef_init=coef_init, tol=tol,
                                           max_iter=min(self.max_iter, probe), floor_stop=True)
                if result.certified:
                    return Solution(result.coef, "fast", result.gap, result.iterations)
                spent = result.iterations
                tried.add("probe")
            point, accepted = held_row_point(self.engine, lam, coef_init)
            tried.add("guesses")
            if accepted.all():
                gap, ok = self._gap(point, lam)
                if ok:
                    return Solution(point, "fast", gap, spent)
        # where the iterations crawl, "auto" skips them for CVXPY after Newton's guesses below;
        # "fast" takes the same guesses (each certified like any other point), then iterates
        crawl = self.use_fast and iterations_crawl(self.engine, lam, self.lambda_max)
        if crawl and self._parts():
            try:
                return self._solve_parts(lam, coef_init)
            except SolveError:
                if self.kind != "fast":
                    raise
                # (a part relative to its own objective is stricter than the whole)
                crawl = False
        if crawl and coef_init is None and self.engine.geometry == "block" and \
                self.engine.polishes_by_newton:
            # from the prior, one cluster: the active-set Newton from the minimum-norm
            # solution first (interpolant_start says where it applies)
            found = interpolant_start(self.engine, lam)
            if found is not None:
                tried.add("guesses")
            if found is not None and found[1].all():
                gap, ok = self._gap(found[0], lam)
                if ok:
                    return Solution(found[0], "fast", gap, 0)
        if crawl and coef_init is not None:
            # A neighbouring minimiser (a CV grid's, a path's or a rolling fit's previous one):
            # sparse-group rows' iterations settle from it (they crawl from the prior only);
            # FCGL's crawl from it too, so Newton on its active blocks is tried (with cells held
            # at a bound or at zero where it has a box or an L1 share), then CVXPY.
            crawl = self.engine.geometry == "block"
            # (without a box, an L1 share: Newton's point first, then CVXPY; the probe and the
            # duals below run from the prior only)
            if crawl and self.engine.polishes_by_newton and (
                    self.engine._unboxed or not self._dual_first(coef_init)):
                start, gap, ok = self._newton_point(coef_init, lam, warm=True)
                if ok:
                    return Solution(start, "fast", gap, 0)
                tried.add("guesses")
        unboxed_one = self._one_cluster and coef_init is None
        if crawl and self.engine.polishes_held_blocks and (not self.engine._unboxed
                                                           or unboxed_one):
            # the interior point's factorisation couples every member of a cluster on every
            # factor (dense in N M for one cluster: 20 s per solve at (113,269,10)), while the
            # iterations hold cells on their bounds exactly: a short probe of them, then
            # Newton's guesses on what their point holds active and at a bound. Without a box
            # (an L1 share) only for one cluster from the prior: found clusters' small wide
            # fits took 0.07-0.13 s through Clarabel and 0.25-0.65 s with the probe first,
            # and a one-cluster CV grid with its warm starts (Newton's point on the previous
            # answer first, above) 8.7 s instead of 7.6 (LassoModelCV down to 1e-6 of
            # lambda_max at (40,100,10)); one cluster of 190-2,300 cells from the prior took
            # 0.03-5.1 s through Clarabel and 0.04-0.26 s here (the duals), on a sweep of
            # wide fits
            result = self.engine.solve(lam, coef_init=coef_init, tol=tol,
                                       max_iter=min(self.max_iter, _BOXED_BLOCKS_PROBE),
                                       floor_stop=True)
            if result.certified:
                return Solution(result.coef, "fast", result.gap, result.iterations)
            check_floor(self.engine, result.coef, lam, tol, result.iterations, result.gap,
                        attempts)
            tried.update(("probe", "guesses"))
            # Newton's guesses on the probe's sets, and the sets from the responses' duals
            # (_dual_blocks, from the prior or the warm start): the duals first where a
            # response has more free cells than rows, where the guesses' corrections oscillate
            # (one cluster with signs and a prior at (250,500,5): 11 s of guesses, then 4 s
            # for the duals)
            tries = [self._guessed, self._dual]
            if self._dual_first(result.coef):
                tries.reverse()
            for attempt in tries:
                point, gap, ok = attempt(result.coef, coef_init, lam)
                if ok:
                    return Solution(point, "fast", gap, result.iterations)
        if crawl and self.kind == "auto":
            note = _crawl_note(tried)
        elif self.use_fast:
            crawl = False
            # "auto": the iterations give up once they show they will not certify in the
            # budget (FastEngine.solve), since CVXPY follows
            result = self._iterate(lam, coef_init, give_up=self.kind == "auto")
            if result.certified:
                return Solution(result.coef, "fast", result.gap, result.iterations)
            # (no start, nor CVXPY, can certify what the gap's rounding hides)
            check_floor(self.engine, result.coef, lam, tol, result.iterations, result.gap,
                        attempts)
            if coef_init is not None and not self._part:
                # A warm start the iterations did not certify from: from the prior, as a cold
                # fit. A rolling date warm-started from the previous date's loadings ended at
                # gap 2e-2 and went to Clarabel (gap 2e-9, loadings 3.3e-6 from the optimum
                # that the cold fit, and the parallel run's cold block start, certified to
                # 6e-17): serial and n_jobs=2 differed (random search).
                cold = self._iterate(lam, None, give_up=self.kind == "auto")
                if cold.certified:
                    return Solution(cold.coef, "fast", cold.gap,
                                    result.iterations + cold.iterations)
                if cold.gap < result.gap:
                    result = cold
            message = (
                f"fast engine not certified: relative duality gap {result.gap:.1e} > tol "
                f"{tol:g} after {result.iterations} iterations"
            )
            attempts.append(("fast", message))
            best_gap = min(best_gap, result.gap)
            if self.kind == "fast":
                self._unsettled = (result.coef, result.iterations)
                raise SolveError(message, attempts, gap=best_gap)
            note = f" (fast engine not certified: gap {result.gap:.0e})"

        best = None  # (gap, solver, coef) of the best uncertified CVXPY point
        chain = self.chain
        if str(chain[0][0]).upper() == "CLARABEL" and not chain[0][1]:
            chain = chain + [("CLARABEL", _TIGHT_CLARABEL)]
        first_point = False  # the chain's first solver returned a point (uncertified)
        for k, (name, params) in enumerate(chain):
            if k == len(self.chain) and not first_point:
                break  # (tighter tolerances for a point, not after an outright failure)
            with warnings.catch_warnings():
                # CVXPY's "Solution may be inaccurate": the certificate below decides.
                warnings.simplefilter("ignore", UserWarning)
                status, coef = self.problem(lam).solve(lam, name, params, self.verbose)
            if coef is None:
                attempts.append((name, status))
                continue
            first_point = first_point or k == 0
            gap, ok, coef = self._certify_point(coef, lam)
            attempts.append((name, f"{status}, relative duality gap {gap:.1e}"))
            if ok:
                if crawl and self.engine.polishes_by_newton:
                    # CVXPY answered in the engine's place: its interior point keeps every
                    # block or cell that belongs at zero small but nonzero, where the engine's
                    # answers have exact zeros; Newton's point on what it holds active has them
                    polished, polished_gap, polished_ok = self._newton_point(coef, lam)
                    if polished_ok:
                        return Solution(polished, f"{name} + fast polish{note}", polished_gap,
                                        0)
                label = name if status == "optimal" else f"{name} ({status}, certified)"
                return Solution(coef, label + note, gap, None)
            if k < len(chain) - 1 and self._newton_worth(gap) and self.engine.polishes_by_newton:
                # Newton's guesses before another solve (the last point's get them below)
                polished, polished_gap, polished_ok = self._newton_point(coef, lam)
                if polished_ok:
                    return Solution(polished, f"{name} + fast polish{note}", polished_gap, 0)
            if best is None or gap < best[0]:
                best = (gap, name, coef)
            best_gap = min(best_gap, gap)
        if best is not None:
            gap, name, coef = best
            if self._newton_worth(gap):
                coef = self.engine.polish_start(coef, lam)
            result = self._iterate(lam, coef)
            if result.certified:
                return Solution(result.coef, f"{name} + fast polish{note}", result.gap,
                                result.iterations)
            # FCGL blocks on a wide panel: the duals' sets from the polished point, near the
            # minimiser. From the prior or the probe their steps can cycle on rounding alone
            # (the fold of 40 rows of a (60,100,20) panel, nonneg at lambda 1e-6: settled on
            # one machine, not on another), and the polish stalls (3.1e-8); from its point
            # they certified it (6.7e-9).
            point, gap, ok = self._dual(result.coef, result.coef, lam)
            if ok:
                return Solution(point, f"{name} + fast polish{note}", gap, result.iterations)
            check_floor(self.engine, result.coef, lam, tol, result.iterations, result.gap,
                        attempts)
            attempts.append(("fast polish", (
                f"relative duality gap {result.gap:.1e} > tol {tol:g} after "
                f"{result.iterations} iterations from the {name} point"
            )))
            best_gap = min(best_gap, result.gap)
        detail = "; ".join(f"{n}: {s}" for n, s in attempts)
        raise SolveError(
            f"the LASSO problem could not be solved to a certified optimum (relative duality "
            f"gap <= {tol:g}; best reached {best_gap:.1e}): {detail}",
            attempts, gap=best_gap,
        )

    def _iterate(self, lam: float, coef_init: np.ndarray | None, give_up: bool = False):
        """The engine's iterations within the budget (:meth:`FastEngine.solve`); cooperative
        blocks alternate rounds of them with Newton's step on their iterate's face
        (:func:`~._coop_newton.coop_solve`), where the iterations alone crawl: from a warm
        start (a CV grid's previous value, a polish), or from the prior on engine "fast". From
        the prior on "auto" the iterations give up early and CVXPY follows, which answered in
        0.2-0.4 s where the continuation took 1.1-6.9 s (benchmarks/bench_coop_wide.py)."""
        if self.engine.coop and (coef_init is not None or self.kind == "fast"):
            spent = 0
            if coef_init is None and 0.0 < lam < _COOP_CONTINUATION * self.lambda_max:
                # from the prior a small penalty's iterates keep faces far from the
                # minimiser's; from a larger penalty's minimiser (as along a CV grid) Newton's
                # step settles each stage in a round or two. One round at lam first: it
                # raises where the gap's rounding makes lam uncertifiable (no stage then)
                probe = coop_solve(self.engine, lam, self.tol, _COOP_STAGE_ITER, None, give_up)
                if probe.certified:
                    return probe
                spent = probe.iterations
                for mid in np.geomspace(0.5 * self.lambda_max, lam, _COOP_STAGES + 1)[:-1]:
                    stage = coop_solve(self.engine, float(mid), self.tol, _COOP_STAGE_ITER,
                                       coef_init, give_up)
                    spent += stage.iterations
                    coef_init = stage.coef
            result = coop_solve(self.engine, lam, self.tol, max(self.max_iter - spent, 1),
                                coef_init, give_up)
            return result._replace(iterations=result.iterations + spent)
        return self.engine.solve(lam, coef_init=coef_init, tol=self.tol, max_iter=self.max_iter,
                                 give_up=give_up, floor_stop=True)

    def _parts(self) -> list[tuple[np.ndarray, CertifiedSolver]]:
        """FCGL with single-response clusters: ``[(rows, solver)]``, the single clusters as
        one LASSO problem and the others as one FCGL problem (:mod:`._cluster_split`), built
        on first use; empty for any other problem."""
        if self._split is None:
            alone = single_clusters(self.spec)
            self._split = []
            for rows in () if alone is None else (alone, ~alone):
                if rows.any():
                    stats, spec = split_problem(self.stats, self.spec, rows)
                    part = CertifiedSolver(stats, spec, lambda_max_from_stats(stats, spec),
                                           **self._options)
                    part._part = self.kind == "fast"
                    part._whole = False
                    self._split.append((rows, part))
        return self._split

    def _solve_parts(self, lam: float, coef_init: np.ndarray | None) -> Solution:
        """The answer assembled from the parts' certified answers (each within ``tol`` of its
        own objective, so of the sum), labelled by what answered each part (one label where
        they agree); the gap reported is the whole problem's. Engine "fast": a part's
        uncertified last point is kept, and the whole's certificate judges the assembly (a
        part's own relative gap is stricter than the whole's)."""
        coef = self.engine.prior.copy()
        answered = []  # (which part, its solution)
        failed = None  # engine "fast": the first part's error, where its point was kept
        for rows, part in self._split:
            init = None if coef_init is None else coef_init[rows]
            what = "single-response clusters" if part.spec.geometry == "cell" else \
                "clusters of several responses"
            try:
                solution = part.solve(lam, coef_init=init)
            except SolveError as err:
                error = SolveError(f"FCGL, {what}: {err}", err.attempts, gap=err.gap)
                if part._unsettled is None:
                    raise error from err
                point, spent = part._unsettled
                solution = Solution(point, "fast", err.gap, spent)
                failed = failed or error
            coef[rows] = solution.coef
            answered.append((what, solution))
        if failed is not None:
            gap, ok = self._gap(coef, lam)
            if not ok:
                raise failed
        solvers = {solution.solver for _, solution in answered}
        label = solvers.pop() if len(solvers) == 1 else "; ".join(
            f"{what}: {solution.solver}" for what, solution in answered)
        known = [solution.n_iter for _, solution in answered if solution.n_iter is not None]
        return Solution(coef, label, self.engine.relative_gap(coef, lam),
                        sum(known) if known else None)
