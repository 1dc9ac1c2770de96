"""The fast exact engine: accelerated proximal gradient on the sufficient statistics.

It minimises the objective of :mod:`xl_factorlasso.core.linear_model._formulation`,

    F(B) = f(B) + h(B),   f(B) = (1/T') sum_i (yty_i - 2 b_i'c_i + b_i'G_i b_i),
                          h(B) = lambda * P(B - B0) + indicator(lo <= B <= hi),

with ``G_i = gram[p(i)]`` and ``c_i = xty[i]`` (:class:`SufficientStats`), so an iteration costs
O(N M^2) whatever T, and certifies every answer with a duality gap.

Algorithm
---------
FISTA with the gradient adaptive restart of O'Donoghue and Candes (2015). The loss is separable
over responses, the penalty over *units* (a response for the cell and row geometries, a cluster
for FCGL blocks), so each unit has its own steps, momentum and restart: the iteration is N (or
G) independent FISTA runs, vectorised. The steps are a diagonal metric in which ``f`` is
1-smooth: for row groups one step per response, ``1 / L_i``, ``L_i = (2/T') lambda_max(G_i)``;
for cells and FCGL blocks (each group inside one factor column) one step per factor column,
``1 / ((2/T') lambda_max(J G J) G_jj)`` with ``J = diag(G)^(-1/2)`` (Jacobi preconditioning:
factors 1e8 apart in scale converge together). At ``lambda = 0`` the geometry is irrelevant
and every model is solved as cells.

For the cell and row geometries (a unit is a response) Newton's method finishes the solve
(when and where it is tried, and what is taken: :mod:`._newton_finish`). Once
a response's support and signs have not changed for a few iterations, Newton solves its smooth
piece (on that face the cell objective is quadratic: one step on the ``|F| x |F|`` system of
the free cells, batched by support size; the row objective adds ``lambda (1-a) w ||D_i||_2``,
smooth while the row is nonzero: a few steps, tried only while ``N M^2 <= 2e5``, beyond which
its dense systems cost what they save). A response takes Newton's point only when it is the
response's minimiser: it keeps the support's signs and box (the support's cells are then
stationary) and the optimality conditions hold off the support, to 1e-9 of the threshold. A
point that is merely better is refused, because on a support with a loading about to enter or
leave it has a relative gap of 5e-13 while 1e-6 away, and the solve would stop there; for the
same reason (and because a gap at round-off still allows 1e-8 along a flat direction) a small
total gap ends the solve only when every response is known to be at its minimiser
(or after the polishing iterations). Once at least half of the responses are at their
minimisers, the others are solved apart, as a problem of their own on the same Gram (responses
are independent): their iterations no longer pay for the finished rows. A warm start (the
previous lambda of a path, or the previous date of a rolling fit) tries Newton on its own
support before any iteration: where the support held, that one step is the answer.

For LASSO a refused Newton point corrects the support (a cell that crossed zero or its box
leaves it, cells whose conditions fail join it) and tries again, up to three times: between
neighbouring lambdas or rolling dates a support usually gains or loses a cell or two. Before any
iteration (up to six tries) the same steps start from a warm start's support or, cold, from a
guess (:meth:`FastEngine._support_guess`): an active-set method that usually leaves no
iteration to do. Row groups
without an L1 share have, on a row whose every cell is free, a minimiser in closed form up to
one scalar (a secular equation in the eigenbasis of ``G``, :meth:`FastEngine._newton_row_secular`):
it is tried at a cold start before any iteration, and in every later try.

With many factors (no spectra, beyond ``_SPECTRAL_MAX``) a LASSO is first solved on working sets
of factor columns (:mod:`._working_set`): the same engine on the Gram's block of a few hundred
columns, grown by the columns whose cells break the optimality conditions, so that the cost of
a sparse answer follows its support rather than ``M^2``. With more factors than rows the Gram
itself is deferred (:class:`SufficientStats`): the engine's products go through the design's
root, its Newton systems take their blocks from it (:meth:`FastEngine._gram_blocks`), and the
M x M Gram is formed only for what needs it whole.

On a singular Gram (more factors than rows) at a penalty below 1% of a response's
``lambda_max``, a LASSO response starts from the exact path in lambda (:mod:`._homotopy`),
where the iterations would crawl along the Gram's flat directions; sparse-group rows there
start from a continuation in lambda (:func:`._homotopy.continuation_start`).

FCGL blocks without an L1 share get the same finish per cluster: once the active blocks
settle, Newton's method on one multiplier per active block gives the exact minimiser
(:mod:`._block_newton`; clusters with as many active blocks are solved together; it runs where
clusters are large, see ``_BLOCK_NEWTON_SIZE``).

Proximal operators
------------------
Exact, per geometry (cells, groups with a box, cooperative blocks): :mod:`._prox`.

Certificate: a duality gap
--------------------------
For any ``U``, ``F(B) >= D(U) = -f*(U) - h*(-U)`` (Fenchel). Each unit gets its own dual
point (``f*`` is separable over responses, ``h*`` over groups). With ``V = -grad f(B)``, split
``V = v3 + r``: ``v3`` is the part the box absorbs (``V`` on zero cells; on a cell at a finite
bound, the part of ``V`` beyond the penalty's gradient there, with the sign the bound allows; 0
elsewhere) and ``r`` is left for the penalty, whose dual ball is ``lambda C`` (``C`` =
``{z : ||soft(z, a omega)||_2 <= (1-a) w_g}`` per group, ``[-omega, omega]`` per cell; its
gauge, the dual norm, is found piecewise in the order of ``|z_j| / omega_j``; for a cooperative
block, whose penalty is the sparse-group norm of ``D+`` plus that of ``D-``, the dual ball is
``{z : z+ in C and z- in C}``, so its gauge is ``max(||z+||_C*, ||z-||_C*)``). Two dual points,
the smaller gap kept per unit:

* *scaling*: ``U = s grad f(B)`` with ``s = min(1, lambda / ||r||_C*)``;
  ``f*(s grad f(B))`` is exact even for a singular Gram (``s grad f`` stays in its range):

      gap_s = -s <V, D> + lambda P(D) + s sigma(v3) + (1-s)^2/T' ||R b - z||^2;

* *translation* (units whose Grams are invertible): ``r' = `` a point of ``lambda C`` next to
  ``r`` (clip plus radial shrink), ``t = r - r'``, ``U = grad f(B) + t``:

      gap_t = -<V - t, D> + lambda P(D) + sigma(v3) + (T'/4) t' G^-1 t,

where ``sigma(v3) = sum max(v3 l, v3 u)`` is the box's support function in ``D``. Both are
upper bounds of ``F(B) - F*`` and vanish at the optimum (where ``V`` is an exact subgradient
decomposition); the first suits large ``lambda``, the second ``lambda -> 0``. The solve is
*certified* when ``gap <= tol * F(B)`` (default ``tol = 1e-8``): the objective is then within
that relative distance of the true minimum, whichever solver one compares with.
:meth:`FastEngine.relative_gap` is that certificate for any feasible point, whoever computed
it (CVXPY's answers and the closed form at ``lambda >= lambda_max`` pass through it too).

``G^+`` and ``G^-1`` are taken from the eigendecomposition of the Jacobi-scaled Gram
``J G J`` (unit diagonal), ``G^+ = J (J G J)^+ J``: with the raw Gram, a factor 1e6 times
smaller than another falls below the eigenvalue cut-off, ``c'G^+c`` loses its share of the
explained variance, and the certificate passed a point 83% above the minimum (two factors
1e6 apart in scale, ``lambda = 0``).
"""

from __future__ import annotations

import copy
import functools
from dataclasses import replace
from typing import NamedTuple

import numpy as np
from scipy.linalg import LinAlgError, cho_factor, cho_solve, lapack

from ._block_newton import (
    POLISH_GUESSES,
    block_activity,
    block_kkt,
    block_newton,
    block_polish,
)
from ._boxed_blocks import boxed_block_polish
from ._gap_floor import FLOOR_CAP, FLOOR_EVERY, floor_applies, floor_share, within_floor
from ._homotopy import _singular, continuation_start, homotopy_rows, homotopy_start, probe_signed
from ._newton_finish import _all, _any, _NewtonFinish, newton_accepted
from ._penalty import PenaltySpec, penalty_value
from ._preparation import GramBlocks, SufficientStats, sub_block
from ._prox import _block_member_table, _prox_groups, _row_member_table, _soft, sparse_group_roots

__all__ = ["EngineResult", "FastEngine", "solve_fast"]

DEFAULT_TOL = 1e-8
DEFAULT_MAX_ITER = 20_000
_CHECK_EVERY = 10
_NEWTON_STEPS = 12  # row groups: Newton steps at most (quadratic convergence: ~3-5)
# Row-group Newton builds a dense M x M system per response tried, per step: several times an
# iteration's cost; it runs on engines (or sub-problems) with N M^2 below the cap.
# Measured: 2x faster solves at N M^2 ~ 1e3-1e4 (demo, small panels), even at 8e4, slower at
# 4.5e5 (N=500, M=30), where FISTA's own iterations are the cheaper way to the last digits.
_ROW_NEWTON_MAX = 200_000
# ... and on a wide panel (more factors than rows), where the iterations crawl along the
# singular Gram's flat directions (thousands per lambda), up to this N M^3 (about a Newton
# step's dense systems): a sparse-group HCGL LassoModelCV at (120,200,10) (N M^3 = 8e7) spent
# 89 s in up to 20,000 iterations per lambda, 30 s with the finish; at (250,500,5) (6e8)
# its 500 x 500 systems made the plain sparse-group rows' one 42% slower (bench_wide.py).
_ROW_NEWTON_WIDE_MAX = 1e8
_SECULAR_PATTERNS = 8  # row groups: the closed-form finish needs an M x M eigh per pattern
_POLISH = 1e-4  # after certification, aim for this fraction of tol (see FastEngine._done)
_SPLIT_MIN = 16  # below this many responses a sub-problem saves nothing
# Giving up where CVXPY follows (engine "auto", FastEngine.solve's give_up): from this many
# iterations on, every _STALL_EVERY, the iterations stop when the gap's progress over the second
# half of them, carried on at the same rate, would not reach tol within the budget. A random
# sweep of cooperative and FCGL fits on ordinary and wide panels spent its 20,000 iterations
# on plateaus (gaps of 2e-8 to 2e-2 at the end) before Clarabel answered in 0.06-12 s.
_STALL_START = 2000
_STALL_EVERY = 500
# FCGL block Newton: a cluster's iteration costs k^3 (k active blocks), a proximal iteration
# N M^2 for all clusters, and the finish pays only once every cluster is done. It runs where
# clusters average at least M responses: one cluster at (2000,30,500) went from 40
# iterations to 4; 133 clusters of ~4 responses there took 2-4x longer with it, and so did
# ten clusters of ~5 responses at (500,10,50) (solve 7.4 ms against 2.6 ms), where each
# cluster's few Newton steps are tens of small NumPy calls.
_BLOCK_NEWTON_SIZE = 1
# Beyond this many factors no M x M eigendecomposition (FastEngine.__init__): at M = 600 it
# costs ~0.1 s, at M = 2000 1.2 s, more than the solve it serves.
_SPECTRAL_MAX = 600
_LANCZOS_TOL = 1e-3  # many factors: the steps' eigenvalue (_top_eigenvalue)
_LANCZOS_STEPS = 120  # its own Lanczos steps at most (_lanczos_top), then ARPACK's
# LASSO Newton systems: below this many padded entries (responses x M x M) one batched solve of
# M x M systems; above, the support-sized systems batched by size (fewer flops).
_PADDED_MAX = 20_000
_EPS = np.finfo(float).eps


class EngineResult(NamedTuple):
    """Outcome of :meth:`FastEngine.solve`.

    Attributes
    ----------
    coef : numpy.ndarray, shape (N, M)
        The last iterate (feasible: inside the sign box, exact zeros where the prox gives them).
    certified : bool
        ``gap <= tol``, or (LASSO) every response within ``tol`` or within its gap's
        rounding floor and stationary to rounding (:meth:`FastEngine._within_rounding`).
    gap : float
        Relative duality gap ``(F(B) - D) / F(B)``, an upper bound of ``(F(B) - F*) / F(B)``.
    iterations : int
        Proximal-gradient iterations taken (0: the start was already certified).
    """

    coef: np.ndarray
    certified: bool
    gap: float
    iterations: int


class FastEngine:
    """Accelerated proximal gradient solver of one data set and penalty, with certificates.

    Everything that does not depend on ``reg_lambda`` (spectra, steps, group tables) is
    computed once, so a lambda path or a CV grid reuses it (warm-start with ``coef_init``).

    Parameters
    ----------
    stats : SufficientStats
    spec : PenaltySpec
    spectral : bool, optional
        Whether to eigendecompose the (Jacobi-scaled) Grams, which gives the translated dual
        point and the exact steps. Default: up to ``_SPECTRAL_MAX`` factors.
    symmetric : bool, default False
        The Grams are exactly symmetric (the working set's blocks of a deferred Gram): used
        as they are, not averaged with their transposes into a copy (which changes no entry
        of a symmetric matrix).
    """

    def __init__(self, stats: SufficientStats, spec: PenaltySpec, *,
                 spectral: bool | None = None, symmetric: bool = False):
        self.stats = stats
        self.spec = spec
        n, m = spec.prior.shape
        self.n, self.m = n, m
        self.t_rows = float(stats.n_rows)
        self.n_patterns = len(stats.xw)
        # A deferred Gram (many factors on fewer rows, SufficientStats): products go through
        # its root, Newton systems take blocks of it (_gram_blocks), and the Gram itself (the
        # `gram` property) is formed only for what needs it whole.
        self._root = stats.root if stats.deferred else None
        self._blocks = None  # its blocks, grown on demand (_gram_blocks)
        self._last_product = None  # (b, G b) of its last product (_gram_times)
        if self._root is None:
            gram = stats.gram if symmetric else \
                0.5 * (stats.gram + np.transpose(stats.gram, (0, 2, 1)))
            self.gram = gram
            diag = np.diagonal(gram, axis1=1, axis2=2)
        else:
            diag = stats.gram_diagonal()
        self.pattern = np.asarray(stats.pattern)
        self.xty = stats.xty
        # Jacobi scaling J = diag(G)^(-1/2): the spectral pieces of the certificate are taken
        # from J G J (unit diagonal), so factors of very different scales (1e8 next to 1e-8,
        # a near-constant factor) do not push real directions below the eigenvalue cut-off.
        # A zero factor (zero diagonal) gets J = 0: it is outside the Gram's range.
        nonzero = diag > 0.0
        jac = np.where(nonzero, 1.0 / np.sqrt(np.where(nonzero, diag, 1.0)), 0.0)
        self._jac = jac
        self._patterns = [np.flatnonzero(self.pattern == p) for p in range(self.n_patterns)]
        # Many patterns (ragged panels): one batched product beats a Python loop, memory allowing.
        stack = self.n_patterns > 8 and n * m * m * 8 <= 256 * 2**20
        self._stacked = self.gram[self.pattern] if stack else None
        # (spectral=False: the working set's restricted problems, which Newton usually
        # finishes before any iteration, need neither the spectra nor the steps)
        self.spectral = m <= _SPECTRAL_MAX if spectral is None else bool(spectral)
        if self.spectral:
            gram = self.gram
            vals, vecs = np.linalg.eigh(gram * jac[:, :, None] * jac[:, None, :])
            self._vecs = vecs
            top_hat = np.maximum(vals[:, -1], 0.0)
            keep = vals > 1e-12 * np.maximum(top_hat, 1e-300)[:, None]
            inv_vals = np.where(keep, 1.0 / np.where(keep, vals, 1.0), 0.0)
            self._inv_vals = inv_vals
            # Translation certificate only where G^-1 is accurate on the non-zero factors (the
            # zero ones are pinned at the prior, where the translation vanishes).
            n_zero = (~nonzero).sum(axis=1)
            # (plain indexing: take_along_axis cost 15 us of a 3 ms fit)
            smallest = vals[np.arange(len(vals)), np.minimum(n_zero, m - 1)]
            self._invertible = (n_zero < m) & (smallest > 1e-10 * np.maximum(top_hat, 1e-300))
            # smallest over largest eigenvalue of J G J (past the zero factors), per pattern,
            # about 0 where singular and 0 where every factor is zero: the
            # iterations' rate is set by it (_box_ridge.dual_start_applies)
            self._conditioning = np.where(
                n_zero < m, np.maximum(smallest, 0.0) / np.maximum(top_hat, 1e-300), 0.0)
            # the largest support a Newton system can hold (_newton_cell): a response observed
            # on fewer rows than the panel has a Gram of that lower rank
            self._rank = keep.sum(axis=1)
            self._stacked_vecs = vecs[self.pattern] if stack else None
            proj = self._eig_coordinates(self.xty)
            self._czz = np.einsum("nk,nk->n", proj * inv_vals[self.pattern], proj)  # c'G^+c
        else:
            # Many factors: an M x M eigendecomposition costs more than the solve (1.2 s at
            # M = 2000). The steps take the largest eigenvalue from Lanczos iterations (on
            # first use, see step); the scaling certificate bounds c'G^+c (the explained part
            # of y'Wy) by y'Wy itself, which keeps it an upper bound and costs nothing as
            # s -> 1 at the optimum; the translation point, which needs G^-1, is not used.
            top_hat = None
            self._vecs = self._inv_vals = self._stacked_vecs = None
            self._invertible = np.zeros(self.n_patterns, dtype=bool)
            self._conditioning = np.zeros(self.n_patterns)
            self._rank = np.full(self.n_patterns, min(m, int(stats.n_rows)))
            self._czz = np.array(stats.yty, dtype=float)

        self.prior = np.asarray(spec.prior, dtype=float)
        # the box of B and of D = B - B0 (contains 0), and the certificate's box term's pieces
        # (_box_part: cells that can sit at a bound, the box of D with its infinite sides at
        # 0): once per spec, not at every gap (nor at every engine of the same spec)
        box = spec.box()
        self.lo, self.hi = box["lo"], box["hi"]
        self.fixed, self._unboxed = box["fixed"], box["unboxed"]
        self.dl, self.du = box["dl"], box["du"]
        self._lo_side, self._hi_side = box["lo_side"], box["hi_side"]
        self._dl0, self._du0 = box["dl0"], box["du0"]

        geometry = spec.geometry
        # Adaptive L1 weights omega (N x M, ones without them); row / block weights are folded
        # into group_w below, the whole weight of each group's norm.
        self.omega = spec.l1_weights()
        self.a = 1.0 if geometry == "cell" else float(spec.l1_weight)
        if geometry != "cell" and self.a >= 1.0:
            geometry = "cell"  # the group term vanishes
        self.geometry = geometry
        # Cooperative blocks: each block's positive and negative parts are two groups whose
        # members change with the signs (see _prox.prox_cooperative).
        self.coop = bool(spec.cooperative) and geometry == "block"
        if geometry == "block":
            groups = np.asarray(spec.groups)
            self.unit = groups  # a cluster is a unit: its blocks couple its responses
            self.n_units = int(groups.max()) + 1
            self.gid = (groups[:, None] * m + np.arange(m)[None, :]).ravel()
            self.group_w = spec.block_weights().ravel()  # group g * M + j: block (g, j)
            self.group_unit = np.repeat(np.arange(self.n_units), m)
        else:
            self.unit = np.arange(n)
            self.n_units = n
            self.gid = np.repeat(np.arange(n), m)
            self.group_unit = np.arange(n)
            if geometry == "row":
                self.group_w = spec.row_weights()
            else:
                self.group_w = np.ones(n)
        self.n_groups = len(self.group_w)
        if geometry == "block" and len(spec.group_weight) == self.n_units:
            self._table = spec.block_table()  # (the spec's, which lambda_max formed)
        else:
            self._table = (None if geometry == "cell" else _row_member_table(n, m)
                           if geometry == "row" else _block_member_table(self.unit, self.n_units,
                                                                         m))

        self._diag, self._top_hat = diag, top_hat  # the steps' pieces (step)
        self._twin = None  # the cell engine that solves lambda = 0 (see solve)
        # Formed on first use by the Newton finishes: C - B0 G (_prior_residual), the plain
        # Grams' eigendecompositions (_newton_row_secular), FCGL's parts (_block_newton).
        self._r0 = self._plain_eig = self._block_parts = None
        self._give_up = False  # stop stalled iterations (solve's give_up; views inherit it)
        # the lambda whose iterations stop where the gap's rounding floor puts tol out of
        # reach (solve's floor_stop); not in views, whose objective is a part of the whole's
        self._floor_lam = None
        # (lambda, alpha, -alpha, beta): the prox's thresholds at the engine's own steps
        self._thresholds = None
        if geometry == "block":
            # first member of every cluster (codes 0..G-1 all occur): the first cell of its
            # first block in the member table (members in order), not a sort of the responses
            first = self._table[::m, 0] // m
            self._unit_first = (first if _all(first < n) else
                                np.unique(self.unit, return_index=True)[1])

    @functools.cached_property
    def gram(self) -> np.ndarray:
        """(P, M, M): the Grams; a deferred one (``_root``) formed on first use (assigned at
        construction otherwise)."""
        return self.stats.gram

    @functools.cached_property
    def step(self) -> np.ndarray:
        """The steps (:meth:`_steps`), formed on first use: a solve that Newton finishes before
        any iteration never needs them, nor the Lanczos iterations they take with many
        factors."""
        return self._steps(self._diag, self._top_hat)

    def _steps(self, diag: np.ndarray, top_hat: np.ndarray | None) -> np.ndarray:
        """Step sizes ``(N, M)``: a diagonal metric in which ``f`` is 1-smooth per unit.

        Row groups couple a response's factors in one norm, so their step is one number per
        response, ``1 / L_i`` with ``L_i = (2/T') eig_max(G_i)``. Cells and FCGL blocks (a block
        lies in one factor column) allow a step per factor column: with ``d`` the Gram diagonal
        and ``G = D^(1/2) G^ D^(1/2)``, ``(2/T') G <= (2/T') eig_max(G^) D``, so
        ``step_ij = 1 / ((2/T') eig_max(G^) d_j)`` (Jacobi preconditioning: a factor 1e8 times
        smaller than the others converges as fast as they do). For a FCGL cluster ``d`` and
        ``eig_max(G^)`` are the maxima over its responses, which keeps the bound.
        """
        two_t = 2.0 / self.t_rows
        if self.geometry == "row":
            if self.spectral:
                top = np.maximum(np.linalg.eigvalsh(self.gram)[:, -1], 0.0)
            else:
                top = np.array([_top_eigenvalue(g) for g in self.gram])
            lip = two_t * np.broadcast_to(top[self.pattern][:, None], (self.n, self.m))
        else:
            if top_hat is None:  # many factors: Lanczos on the Jacobi-scaled Grams
                grams = [self._root_operator()] if self._root is not None else self.gram
                top_hat = np.array([_top_eigenvalue(g, scale=j)
                                    for g, j in zip(grams, self._jac, strict=True)])
            d, curv = diag[self.pattern], top_hat[self.pattern]
            if self.geometry == "block" and self.n_patterns > 1:
                # (one Gram: every response's d and curvature are its cluster's maxima)
                d_unit = np.zeros((self.n_units, self.m))
                np.maximum.at(d_unit, self.unit, d)
                curv_unit = np.zeros(self.n_units)
                np.maximum.at(curv_unit, self.unit, curv)
                d, curv = d_unit[self.unit], curv_unit[self.unit]
            lip = two_t * curv[:, None] * d
        # A zero factor (or a response without observations) has no curvature: its cells are
        # pinned or have a zero gradient, any finite step works.
        return 1.0 / np.where(lip > 0.0, lip, max(float(lip.max(initial=0.0)), 1e-300))

    # ------------------------------------------------------------------ pieces
    def _root_operator(self):
        """A deferred Gram as a linear operator: ``v -> R'(R v)``, ``2 T' M`` per product."""
        from scipy.sparse.linalg import LinearOperator

        root = self._root
        return LinearOperator((self.m, self.m), matvec=lambda v: root.T @ (root @ np.ravel(v)),
                              dtype=float)

    def _gram_blocks(self, cols: np.ndarray) -> np.ndarray | None:
        """``G[cols][:, cols]`` of a deferred Gram (``cols`` of shape (k,) or (n, k): blocks
        (k, k) or (n, k, k)) without forming it: from :class:`GramBlocks` within its limits
        (half the factors, half a SYRK of products), else (and when not deferred) None, and
        the caller reads ``gram``, formed once."""
        if self._root is None:
            return None
        if not self.stats.deferred:  # formed meanwhile (a whole system asked for it)
            return sub_block(self.stats.gram[0], np.asarray(cols))
        if self._blocks is None:
            self._blocks = GramBlocks(self._root, self.m // 2)
        return self._blocks(np.asarray(cols))

    def _gram_columns(self, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """For a working set's distinct columns ``cols``: ``(cols', G[cols'][:, cols'])`` of a
        deferred Gram, ``cols'`` the same columns in the order of the kept block, which is
        then handed over as it is (:meth:`GramBlocks.own_order`); None as
        :meth:`_gram_blocks`."""
        if self._root is None:
            return None
        if not self.stats.deferred:
            return cols, sub_block(self.stats.gram[0], np.asarray(cols))
        if self._blocks is None:
            self._blocks = GramBlocks(self._root, self.m // 2)
        return self._blocks.own_order(np.asarray(cols))

    def _gram_times(self, coef: np.ndarray, idx: np.ndarray | None = None) -> np.ndarray:
        """Rows ``G_p(i) b_i`` (``coef`` holds the responses ``idx``, default all)."""
        if self._root is not None:  # one pattern, deferred: through the root
            # Each product is two passes over the design; the solve often asks twice at the
            # same point (the working set's last violations, then the whole gap there), so
            # the last one is kept. One Gram for every response: any view's rows equal to
            # the kept ones have the same product.
            last = self._last_product
            if last is not None and last[0].shape == coef.shape and \
                    np.array_equal(last[0], coef):
                return last[1].copy()
            out = self.stats.gram_times(coef)
            self._last_product = (np.array(coef, dtype=float), out.copy())
            return out
        if self.n_patterns == 1:
            return coef @ self.gram[0]
        if self._stacked is not None:
            stacked = self._stacked if idx is None else self._stacked[idx]
            return np.matmul(stacked, coef[:, :, None])[:, :, 0]
        patterns = self._patterns if idx is None else [
            np.flatnonzero(self.pattern[idx] == p) for p in range(self.n_patterns)]
        out = np.empty_like(coef)
        for p, rows in enumerate(patterns):
            out[rows] = coef[rows] @ self.gram[p]
        return out

    def _eig_coordinates(self, rows: np.ndarray) -> np.ndarray:
        """Rows ``Q_p(i)' J_p r_i`` in the eigenbasis of each response's scaled Gram ``J G J``,
        so that ``r' G^+ r = sum_k coord_k^2 / eig_k`` (for ``r`` in the range of ``G``)."""
        rows = rows * self._jac[self.pattern]
        if self.n_patterns == 1:
            return rows @ self._vecs[0]
        if self._stacked_vecs is not None:
            return np.einsum("nmk,nm->nk", self._stacked_vecs, rows)
        out = np.empty_like(rows)
        for p, idx in enumerate(self._patterns):
            out[idx] = rows[idx] @ self._vecs[p]
        return out

    def _unit_sum(self, per_response: np.ndarray) -> np.ndarray:
        if self.geometry != "block":
            return per_response
        return np.bincount(self.unit, weights=per_response, minlength=self.n_units)

    def prox(self, z: np.ndarray, reg_lambda: float, step: np.ndarray | None = None) -> np.ndarray:
        """``argmin_B 1/2 ||B - z||^2_(1/step) + lambda P(B - B0)`` over the sign box.

        ``step`` (broadcastable to N x M; default the engine's own steps) must be constant
        over every group: over a row for the row geometry, over a FCGL cluster's responses
        in each factor column for blocks.
        """
        own = step is None
        if own and self._thresholds is not None and self._thresholds[0] == reg_lambda:
            alpha, neg_alpha, beta = self._thresholds[1:]  # an iteration of the same solve
        else:
            step = self.step if own else np.broadcast_to(
                np.asarray(step, dtype=float), self.prior.shape)
            beta = None
            if self.geometry == "cell":
                alpha = step * reg_lambda * self.omega
            else:
                alpha = step * reg_lambda * self.a * self.omega
                if self.geometry == "row":
                    beta = step[:, 0] * reg_lambda * (1.0 - self.a) * self.group_w
                else:  # group u * M + j is cluster u's block in factor column j
                    beta = step[self._unit_first].ravel() * reg_lambda * (1.0 - self.a) * \
                        self.group_w
            neg_alpha = -alpha
            if own:
                self._thresholds = (reg_lambda, alpha, neg_alpha, beta)
        v = z - self.prior
        if own and self.a == 0.0 and self.geometry != "cell":
            # no L1 share: the engine's own thresholds are 0 and v - clip(v, -0, 0) is v
            w = v
        else:
            # soft thresholding as v - clip(v, -alpha, alpha): the same numbers in three passes
            w = v - np.minimum(np.maximum(v, neg_alpha), alpha)
        if self.geometry == "cell":
            d = w if self._unboxed else np.clip(w, self.dl, self.du)
        else:
            w = w.ravel()
            if self.coop:  # the sign halves of the blocks, groups 2 * gid + (w < 0)
                d = _prox_groups(
                    w, np.repeat(beta, 2), 2 * self.gid + (w < 0), self.dl.ravel(),
                    self.du.ravel(), None,
                ).reshape(v.shape)
            else:
                d = _prox_groups(
                    w, beta, self.gid, self.dl.ravel(), self.du.ravel(), self._table,
                    row_norms=self.m if self.geometry == "row" else None,
                    boxed=not self._unboxed,
                ).reshape(v.shape)
        return self.prior + d

    def penalty_parts(self, d: np.ndarray) -> np.ndarray:
        """``P(D)`` per unit (without ``lambda``)."""
        l1 = (self.omega * np.abs(d)).sum(axis=1)
        if self.geometry == "cell":
            return self._unit_sum(l1)
        if self.geometry == "row":
            group = self.group_w * np.linalg.norm(d, axis=1)
            return (1.0 - self.a) * group + self.a * l1
        if self.coop:
            norms = self._half_norms(d)
            group = np.bincount(np.repeat(self.group_unit, 2),
                                weights=np.repeat(self.group_w, 2) * norms,
                                minlength=self.n_units)
        else:
            norms = np.sqrt(np.bincount(self.gid, weights=(d * d).ravel(),
                                        minlength=self.n_groups))
            group = np.bincount(self.group_unit, weights=self.group_w * norms,
                                minlength=self.n_units)
        return (1.0 - self.a) * group + self.a * self._unit_sum(l1)

    def _half_keys(self, d: np.ndarray) -> np.ndarray:
        """Cooperative blocks: sign half ``2 g + (d < 0)`` of every cell (flat)."""
        return 2 * self.gid + (d.ravel() < 0)

    def _half_norms(self, d: np.ndarray) -> np.ndarray:
        """Cooperative blocks: ``||(D_g)+||_2`` and ``||(D_g)-||_2`` at ``2g`` and ``2g + 1``."""
        return np.sqrt(np.bincount(self._half_keys(d), weights=(d * d).ravel(),
                                   minlength=2 * self.n_groups))

    def objective(self, coef: np.ndarray, reg_lambda: float) -> float:
        """``F(B)``, the exact objective (loss with its constant plus penalty)."""
        return self.stats.loss(coef) + penalty_value(coef, self.spec, reg_lambda)

    def _group_norms(self, d: np.ndarray) -> np.ndarray:
        """``||D_g||_2`` per cell's group, shape (N, M)."""
        if self.geometry == "row":
            return np.broadcast_to(np.linalg.norm(d, axis=1)[:, None], d.shape)
        if self.coop:  # the norm of the cell's own sign half
            return self._half_norms(d)[self._half_keys(d)].reshape(d.shape)
        norms = np.sqrt(np.bincount(self.gid, weights=(d * d).ravel(), minlength=self.n_groups))
        return norms[self.gid].reshape(d.shape)

    def _dual_norms(self, r: np.ndarray) -> np.ndarray:
        """Per unit, ``max_g ||r_g||_C*``: the smallest rho with ``r_g in rho C_g`` for all g."""
        if self.geometry == "cell":
            return self._unit_max((np.abs(r) / self.omega).max(axis=1))
        if self.coop:  # the dual ball constrains each sign half (module docstring)
            rho = np.maximum(self._group_dual(np.maximum(r, 0.0)),
                             self._group_dual(np.maximum(-r, 0.0)))
        else:
            rho = self._group_dual(np.abs(r))
        rho = rho * (1.0 + 8 * _EPS)  # round up: feasibility of the scaled dual point
        return self._unit_max_groups(rho)

    def _group_dual(self, ar: np.ndarray) -> np.ndarray:
        """Per group, the sparse-group gauge ``||ar_g||_C*`` of magnitudes ``ar >= 0``."""
        a, c = self.a, (1.0 - self.a) * self.group_w
        if self.geometry == "row":
            vals, om = ar, self.omega
        else:
            vals = np.append(ar.ravel(), 0.0)[self._table]
            om = np.append(self.omega.ravel(), 1.0)[self._table]
        if a <= 0.0:
            return np.linalg.norm(vals, axis=1) / c
        weighted = self.spec.cell_weight is not None
        rho, found = sparse_group_roots(vals, om, c, a, weighted)
        ratios = vals / om if weighted else vals
        # No piece recognised (ties at round-off): a bound that is never too small.
        upper = np.minimum(np.linalg.norm(vals, axis=1) / c, ratios.max(axis=1) / a)
        rho = np.where(found, rho, upper)
        rho = np.where(ratios.max(axis=1) > 0, rho, 0.0)
        return rho

    def _unit_max(self, per_response: np.ndarray) -> np.ndarray:
        if self.geometry != "block":
            return per_response
        out = np.zeros(self.n_units)
        np.maximum.at(out, self.unit, per_response)
        return out

    def _unit_max_groups(self, per_group: np.ndarray) -> np.ndarray:
        if self.geometry != "block":
            return per_group
        out = np.zeros(self.n_units)
        np.maximum.at(out, self.group_unit, per_group)
        return out

    def _project_dual_ball(self, r: np.ndarray, reg_lambda: float) -> np.ndarray:
        """A point of ``lambda C`` next to ``r``: clip to ``lambda a``, then shrink the rest."""
        if self.geometry == "cell":
            return np.clip(r, -reg_lambda * self.omega, reg_lambda * self.omega)
        inner = np.clip(r, -reg_lambda * self.a * self.omega, reg_lambda * self.a * self.omega)
        outer = r - inner
        radius = reg_lambda * (1.0 - self.a) * self.group_w
        if self.coop:  # shrink each sign half of a block on its own (outer has r's signs)
            keys = self._half_keys(outer)
            norm = np.sqrt(np.bincount(keys, weights=(outer * outer).ravel(),
                                       minlength=2 * self.n_groups))
            radius = np.repeat(radius, 2)
            scale = np.where(norm > radius, radius / np.where(norm > 0, norm, 1.0), 1.0)
            return inner + outer * scale[keys].reshape(r.shape)
        if self.geometry == "row":
            norm = np.linalg.norm(outer, axis=1)
            scale = np.where(norm > radius, radius / np.where(norm > 0, norm, 1.0), 1.0)
            return inner + outer * scale[:, None]
        norm = np.sqrt(np.bincount(self.gid, weights=(outer * outer).ravel(),
                                   minlength=self.n_groups))
        scale = np.where(norm > radius, radius / np.where(norm > 0, norm, 1.0), 1.0)
        return inner + outer * scale[self.gid].reshape(r.shape)

    def duality_gap(self, coef: np.ndarray, reg_lambda: float) -> tuple[float, float]:
        """``(gap, F(B))``: an upper bound of ``F(B) - F*`` and the objective, at a feasible B.

        See the module docstring for the two dual points; the better one is kept per unit.
        """
        gap, objective = self.unit_gaps(coef, reg_lambda)
        return float(gap.sum()), float(objective.sum())

    def unit_gaps(self, coef: np.ndarray, reg_lambda: float) -> tuple[np.ndarray, np.ndarray]:
        """Per unit (response, or FCGL cluster), the duality gap and the objective's share.

        Units are independent problems (the loss is separable over responses, the penalty
        and the dual points over units), so rows of two feasible points may be mixed unit by
        unit, and the mixture's gap is the sum of the chosen units' gaps.
        """
        lam = float(reg_lambda)
        gb = self._gram_times(coef)
        c = self.xty
        grad = (2.0 / self.t_rows) * (gb - c)
        v = -grad
        d = coef - self.prior
        pen = self.penalty_parts(d)  # per unit
        bgb = np.einsum("nm,nm->n", coef, gb)
        bc = np.einsum("nm,nm->n", coef, c)
        loss_terms = self.stats.yty - 2.0 * bc + bgb
        objective = self._unit_sum(loss_terms) / self.t_rows + lam * pen

        # v3: what the box absorbs (nothing without one).
        if self._unboxed:
            r, sigma = v, 0.0
        else:
            r, sigma = self._box_part(coef, d, v, lam)
        vd = self._unit_sum(np.einsum("nm,nm->n", v, d))

        # scaling
        rho = self._dual_norms(r)
        with np.errstate(divide="ignore", invalid="ignore"):
            s = np.where(rho > lam, lam / np.where(rho > 0, rho, 1.0), 1.0)
        res2 = self._unit_sum(np.maximum(bgb - 2.0 * bc + self._czz, 0.0))
        gap_s = -s * vd + lam * pen + s * sigma + (1.0 - s) ** 2 / self.t_rows * res2

        # translation
        inv_ok = self._invertible[self.pattern]
        if self.geometry == "block":
            inv_unit = np.bincount(self.unit, weights=~inv_ok, minlength=self.n_units) == 0
        else:
            inv_unit = inv_ok
        gap = gap_s
        if inv_unit.any():
            t = r - self._project_dual_ball(r, lam)
            proj = self._eig_coordinates(t)
            quad = np.einsum("nk,nk->n", proj * self._inv_vals[self.pattern], proj)
            vtd = self._unit_sum(np.einsum("nm,nm->n", v - t, d))
            gap_t = -vtd + lam * pen + sigma + (self.t_rows / 4.0) * self._unit_sum(quad)
            gap = np.where(inv_unit, np.minimum(gap_s, gap_t), gap_s)
        return gap, objective

    def _box_part(self, coef, d, v, lam):
        """:meth:`unit_gaps`' box term: ``(r, sigma)`` with ``r = v - v3``, ``v3`` the part of
        ``v`` that the active bounds (and fixed cells) absorb, ``sigma`` its support function
        per unit."""
        if self.geometry == "cell":
            # (unit weights: lam * 1.0 is lam, no pass over the cells for it)
            gpen = (lam if self.spec.cell_weight is None else lam * self.omega) * np.sign(d)
        else:
            norms = self._group_norms(d)
            with np.errstate(divide="ignore", invalid="ignore"):
                radial = np.where(norms > 0, d / np.where(norms > 0, norms, 1.0), 0.0)
            gw = self.group_w[self.gid].reshape(d.shape) if self.geometry == "block" else \
                self.group_w[:, None]
            gpen = lam * (self.a * self.omega * np.sign(d) + (1.0 - self.a) * gw * radial)
        at_lo = self._lo_side & (coef <= self.lo)
        at_hi = self._hi_side & (coef >= self.hi)
        pull = v - gpen
        v3 = np.where(at_lo, np.minimum(pull, 0.0), 0.0)
        v3 = np.where(at_hi, np.maximum(pull, 0.0), v3)
        v3 = np.where(self.fixed, v, v3)
        sigma_cells = np.where(v3 < 0, v3 * self._dl0, v3 * self._du0)
        return v - v3, self._unit_sum(sigma_cells.sum(axis=1))

    def polish_start(self, coef: np.ndarray, reg_lambda: float, warm: bool = False,
                     every: bool = False) -> np.ndarray:
        """Where a polish of another solver's point (CVXPY's) starts: Newton's point on what
        that point holds active, unit by unit where it is found (FCGL blocks without an L1
        share: :func:`~._block_newton.block_polish`, then, for the clusters it leaves, with cells
        held at a bound or at zero: :func:`~._boxed_blocks.boxed_block_polish`; sparse-group
        rows: :meth:`_row_polish`);
        else the point itself, in the box. ``warm``: ``coef`` is a neighbouring minimiser
        (FCGL: its own active blocks are tried first). ``every``: only a point found for every
        unit is of use (FCGL's held blocks stop at the first cluster without one)."""
        x, lam = np.clip(coef, self.lo, self.hi), float(reg_lambda)
        if self.geometry == "block":
            taken = np.zeros(self.n, dtype=bool)
            if self.a == 0.0 and not self.coop:
                x, taken = block_polish(self, x, lam, warm=warm)
            if self.polishes_held_blocks and not taken.all():
                x = boxed_block_polish(self, x, lam, ~taken, every=every)[0]
        elif self.polishes_by_newton:
            x = self._row_polish(x, lam)
        return x

    @property
    def polishes_by_newton(self) -> bool:
        """Whether :meth:`polish_start` guesses Newton's point (FCGL blocks without an L1
        share, not cooperative; FCGL blocks holding cells at a bound or at zero on a wide
        panel, :attr:`polishes_held_blocks`; sparse-group rows) rather than returning the point
        itself."""
        if self.geometry == "block":
            return (self.a == 0.0 and not self.coop) or self.polishes_held_blocks
        return self.geometry == "row" and self.a > 0.0

    @property
    def polishes_held_blocks(self) -> bool:
        """Whether :meth:`polish_start` also tries Newton with cells held at a bound or at
        zero (:mod:`._boxed_blocks`): FCGL blocks, not cooperative, with a box (signs,
        ``nonneg``) or an L1 share, on a wide panel (every Gram singular), where the
        iterations crawl at small penalties; its loops are per response, which the few
        responses of such panels afford."""
        return (self.geometry == "block" and not self.coop
                and (not self._unboxed or self.a > 0.0) and bool(_singular(self).all()))

    def _row_polish(self, x: np.ndarray, lam: float) -> np.ndarray:
        """Sparse-group rows from an interior-point answer: per response, the free cells are
        guessed as those above a fraction of the row's largest ``|D|`` (``POLISH_GUESSES``,
        coarse first), the others put at the prior (cells at a bound stay there), and the row
        Newton step on that support (:meth:`_newton_row`, whatever the size) is taken where it
        keeps the signs and the box and the cells off the support meet their conditions."""
        out, todo = x.copy(), np.ones(self.n, dtype=bool)
        d = x - self.prior
        top = np.abs(d).max(axis=1, keepdims=True)
        inside = (x > self.lo) & (x < self.hi)
        for fraction in POLISH_GUESSES:
            small = np.abs(d) <= fraction * top
            support = np.sign(d) * (~small & inside)
            start = np.where(small, np.clip(self.prior, self.lo, self.hi), x)
            cand = self._newton_row(start, lam, support, todo & (support != 0).any(axis=1),
                                    force=True)
            if cand is None:
                break
            ok, _ = newton_accepted(self, cand, support, todo, lam)
            out[ok] = cand[ok]
            todo &= ~ok
            if not todo.any():
                break
        return out

    def relative_gap(self, coef: np.ndarray, reg_lambda: float) -> float:
        """The certificate of a feasible ``coef``, whoever computed it: the duality gap over
        the objective, an upper bound of ``(F(B) - F*) / F(B)``.
        """
        gap, objective = self.duality_gap(np.clip(coef, self.lo, self.hi), reg_lambda)
        return _relative(gap, objective)

    def certificate(self, coef: np.ndarray, reg_lambda: float, tol: float = DEFAULT_TOL,
                    stationary: bool = False) -> tuple[float, bool]:
        """``(relative gap, certified)`` of a feasible ``coef``, whoever computed it: the
        duality gap over the objective, and whether it is at most ``tol`` (or, LASSO, each
        response's within ``tol`` plus its rounding floor, stationary to rounding:
        :meth:`_within_rounding`).

        ``stationary``: ``coef`` is stationary to rounding by construction, so a whole gap
        beyond ``tol`` of the objective only by its rounding floor (:meth:`gap_floors`), and
        below the cap, certifies it too (:func:`~._gap_floor.within_floor`): the duals' Newton
        point (``CertifiedSolver._dual``), whose active blocks' equations Newton solved and
        whose held cells and zero blocks met their conditions
        (``_boxed_blocks._Cluster._corrected``). On the fold of 40 rows of a non-negative
        (60,100,20) cross-validation at lambda 1e-6 the floor is 2.2e-7 of the objective, and
        the same sets' Newton point showed 8.2e-9 to 1.3e-8 by the BLAS and its threads: with
        two threads a SolveError (3.1e-8 after Clarabel's polish).

        Every answer of :class:`~xl_factorlasso.LassoModel` passes through this one function
        (the fast engine's iterates, CVXPY's solutions, the prior at ``lambda >= lambda_max``).
        """
        coef = np.clip(coef, self.lo, self.hi)
        gaps, objs = self.unit_gaps(coef, reg_lambda)
        gap, obj = float(gaps.sum()), float(objs.sum())
        ok = self._meets(coef, float(reg_lambda), gaps, objs, tol)
        if not ok and stationary:
            ok = bool(obj > 0.0 and within_floor(gap, obj, float(self.gap_floors(coef).sum()),
                                                 tol))
        return _relative(gap, obj), ok

    def gap_floors(self, coef: np.ndarray, rounding: np.ndarray | None = None) -> np.ndarray:
        """(N,): per response, the rounding floor of the duality gap at ``coef`` (LASSO): about what
        rounding leaves in it at a double-precision point, the minimiser's included.

        The gap's support term ``sum_j d_j (lambda omega_j s_j - v_j)`` vanishes at the
        minimiser, where the gradient ``v = (2/T') (c - G b)`` balances the penalty. Its
        entries are dot products of ``M + 1`` terms, rounded to about ``e_j`` (:meth:`_rounding`),
        so the term to about ``sum_j |d_j| e_j``. That matters only where the penalty is tiny
        against the gradient's parts: a nonneg LASSO at lambda 1e-6 on 40 rows and 100 factors
        interpolates with 39 cells per response, its loadings reach ~100 in L1 norm while the
        objective is ~1e-4, and no double-precision point need show a relative gap of 1e-8
        (Newton's point: 2.2e-8, each response's gap a tenth of its floor;
        tests/test_gap_floor.py). Elsewhere it is ~1e-15 of the objective. ``rounding``: the
        :meth:`_rounding` of ``coef`` when already at hand.
        """
        e = self._rounding(coef) if rounding is None else rounding
        return np.einsum("nm,nm->n", np.abs(coef - self.prior), e)

    def _rounding(self, coef: np.ndarray) -> np.ndarray:
        """(N, M): the rounding of the gradient's entries at ``coef``,
        ``e_j = sqrt(M + 1) eps (2/T') (sum_k |G_jk| |b_k| + |c_j|)``: the probabilistic bound
        ``sqrt(n) u sum |x_k y_k|`` of a sum of ``n`` products (Higham and Mary, 2019; the worst
        case has ``n u``). A product with ``|G|`` (``|R|'|R|`` for a deferred Gram)."""
        size = np.abs(np.asarray(coef, dtype=float))
        if self._root is not None:  # |G| <= |R|'|R| entrywise
            root = np.abs(self._root)
            size = (size @ root.T) @ root
        else:
            out = np.empty_like(size)
            for p, rows in enumerate(self._patterns):
                out[rows] = size[rows] @ np.abs(self.gram[p]).T
            size = out
        return np.sqrt(self.m + 1.0) * _EPS * (2.0 / self.t_rows) * (size + np.abs(self.xty))

    def _within_rounding(self, coef: np.ndarray, lam: float, gaps: np.ndarray,
                         objs: np.ndarray, tol: float) -> np.ndarray:
        """(N,) bool, LASSO: the responses whose gap is beyond ``tol`` of their objective only
        by its rounding floor (:meth:`gap_floors`) and where no move of a cell lowers the
        objective by more than its gradient's rounding: stationary to rounding, cell by cell
        (an interior point that approaches its faces is not, however small its gap)."""
        if self.geometry != "cell":
            return np.zeros(len(gaps), dtype=bool)
        e = self._rounding(coef)
        floor = self.gap_floors(coef, e)
        _, _, grad, thr, _, up, down = self._descents(coef, lam)
        slack = 1e-9 * (thr + np.abs(grad)) + e  # (_descents' own tolerance, plus rounding)
        moves = ((coef < self.hi) & (up < -slack)) | ((coef > self.lo) & (down < -slack))
        return within_floor(gaps, objs, floor, tol) & ~moves.any(axis=1)

    def _meets(self, coef: np.ndarray, lam: float, gaps: np.ndarray, objs: np.ndarray,
               tol: float) -> bool:
        """Whether the unit ``gaps`` and ``objs`` at ``coef`` certify it: a relative gap within
        ``tol``; or, LASSO, every response certified (:meth:`_certified_units`, evaluated only
        then)."""
        rel = _relative(gaps.sum(), objs.sum())
        if rel <= tol:
            return True
        if self.geometry != "cell" or not np.isfinite(rel):
            return False
        return bool(self._certified_units(coef, lam, gaps, objs, tol).all())

    def _certified_units(self, coef: np.ndarray, lam: float, gaps: np.ndarray,
                         objs: np.ndarray, tol: float) -> np.ndarray:
        """(N,) bool, LASSO: the responses whose gap is within ``tol`` of their objective, or
        within their rounding (:meth:`_within_rounding`)."""
        return (gaps <= tol * objs) | self._within_rounding(coef, lam, gaps, objs, tol)

    # ------------------------------------------------------------------ solve
    def solve(
        self,
        reg_lambda: float,
        *,
        tol: float = DEFAULT_TOL,
        max_iter: int = DEFAULT_MAX_ITER,
        coef_init: np.ndarray | None = None,
        give_up: bool = False,
        floor_stop: bool = False,
    ) -> EngineResult:
        """Minimise the objective at ``reg_lambda``.

        Parameters
        ----------
        reg_lambda : float
        tol : float, default 1e-8
            Certify when the duality gap is at most ``tol`` times the objective.
        max_iter : int, default 20000
            Iteration budget; the gap is checked every 10 iterations and at the end. Once
            certified, the solve goes on until the gap is ``1e-4 * tol`` or it has spent as
            many iterations again (coefficients gain digits that the objective hides).
        coef_init : numpy.ndarray, shape (N, M), optional
            Warm start (projected onto the sign box); default the prior.
        give_up : bool, default False
            Stop the iterations, uncertified, once their progress shows that the budget will
            not reach ``tol`` (where another solver follows: engine "auto"; ``_STALL_START``).
        floor_stop : bool, default False
            Stop the iterations, uncertified, once the gap's rounding floor at the iterate
            puts ``tol`` out of reach (:func:`~._gap_floor.floor_share`, checked every
            ``FLOOR_EVERY``); the caller says so (:func:`~._gap_floor.check_floor`).

        Returns
        -------
        EngineResult
            ``(coef, certified, relative gap, iterations)``.
        """
        self._give_up = bool(give_up)
        stop = floor_stop and reg_lambda > 0 and floor_applies(self)
        self._floor_lam = float(reg_lambda) if stop else None
        try:
            return self._solve(float(reg_lambda), tol, max_iter, coef_init)
        finally:
            self._give_up = False
            self._floor_lam = None

    def _solve(self, lam: float, tol: float, max_iter: int, coef_init) -> EngineResult:
        if lam == 0.0 and self.geometry != "cell":
            # Without a penalty the geometry is irrelevant (and so is the certificate's, which
            # is the same at lambda = 0): the cell engine's per-factor steps and Newton finish
            # solve the box-constrained least squares however the factors are scaled.
            if self._twin is None:
                self._twin = FastEngine(self.stats, replace(self.spec, geometry="cell"))
            return self._twin.solve(0.0, tol=tol, max_iter=max_iter, coef_init=coef_init)
        x = self.prior.copy() if coef_init is None else np.clip(coef_init, self.lo, self.hi)
        max_iter = max(int(max_iter), 1)
        warm, spent = coef_init is not None, 0
        path = homotopy_rows(self, lam)
        probed = np.zeros(self.n, dtype=bool)  # responses the iterations certified first
        if _any(path) and not warm:
            # every cell signed: the iterations first, which usually finish (_homotopy)
            x, probed, probe_parts, spent = probe_signed(self, x, lam, tol, path)
            path &= ~probed
        if _any(path):
            # a singular Gram at a small penalty: the exact path gives the start (_homotopy),
            # unless a warm start's own support gives Newton's point at the minimiser
            if warm:
                finish = _NewtonFinish(self, self._newton_cell, lam)
                finish.last = finish.support(x)
                x = finish.accept(x, finish.last, path, start=True)
                path &= ~finish.exact
            x, path = homotopy_start(self, x, lam, path)
        elif not warm:
            start, used = continuation_start(self, lam, tol, max_iter)
            spent += used
            if start is not None:
                x, warm = start, True
        max_iter = max(max_iter - spent, 1)
        if _all(path):
            coef, gaps, objs, it = self._solve_units(x, lam, tol, max_iter, warm=True)
        elif not (_any(path) or _any(probed)):
            coef, gaps, objs, it = self._solve_all(x, lam, tol, max_iter, warm)
        else:
            # responses are independent: the parts' unit gaps add up to the whole's
            coef, gaps, objs, it = x.copy(), np.empty(self.n), np.empty(self.n), 0
            if _any(probed):
                gaps[probed], objs[probed] = probe_parts
            if _any(path):
                coef[path], gaps[path], objs[path], it = self._rows_view(path)._solve_units(
                    x[path], lam, tol, max_iter, warm=True)
            rest = ~(path | probed)
            if _any(rest):
                coef[rest], gaps[rest], objs[rest], it_rest = self._rows_view(
                    rest)._solve_all(x[rest], lam, tol, max_iter, warm)
                it += it_rest
        rel = _relative(gaps.sum(), objs.sum())
        return EngineResult(coef, self._meets(coef, lam, gaps, objs, tol), rel, it + spent)

    def _solve_all(self, x, lam, tol, max_iter, warm):
        """The solve from a feasible ``x``, on working sets of columns first where they run:
        ``(coef, unit gaps, unit objectives, iterations)``."""
        if self.geometry == "cell" and not self.spectral and lam > 0.0:
            from ._working_set import solve_working_set  # (it builds engines: no cycle)

            start = x
            x, done, spent = solve_working_set(self, x, lam, tol, max_iter, warm)
            if done is not None:
                return done
            warm = warm or x is not start
            coef, gaps, objs, it = self._solve_units(x, lam, tol, max(max_iter - spent, 1),
                                                     warm=warm)
            return coef, gaps, objs, it + spent
        return self._solve_units(x, lam, tol, max_iter, warm=warm)

    def _solve_units(self, x, lam, tol, max_iter, *, warm, seeded=False):
        """The solve from a feasible ``x``: ``(coef, unit gaps, unit objectives, iterations)``.

        ``warm``: try Newton on ``x``'s support first. ``seeded``: a cold start whose
        active-set start already ran (a sub-problem of :meth:`_split`): not again.
        """
        newton = {"cell": self._newton_cell, "row": self._newton_row}.get(self.geometry)
        if (self.geometry == "block" and self.a == 0.0 and not self.coop
                and self.n_units * self.m <= _BLOCK_NEWTON_SIZE * self.n):
            newton = functools.partial(block_newton, self)  # (x, lam, rows): per cluster
        finish = _NewtonFinish(self, newton, lam) if newton is not None else None
        if finish is not None and self.geometry == "row" and not (
                self._row_secular_runs() or self._row_newton_sized()):
            # the finish only marks the rows that sit at zero (below); no try will run, so
            # tracking supports every iteration cost ~15% of the solves at (500 x 30)
            finish.idle = finish.unavailable = True
        if finish is not None:
            finish.last = finish.support(x)
            if warm and not finish.idle:
                x = finish.warm_start(x)
            elif self.geometry == "block":  # a cluster at zero: its conditions decide
                empty = ~block_activity(self, x)[0].any(axis=1)[self.unit]
                finish.exact |= empty & block_kkt(self, x, lam)
                finish.early = True
            else:
                empty = ~(finish.last != 0).any(axis=1)
                cold = self.geometry == "cell" and self.m <= _SPECTRAL_MAX and not seeded
                if cold and _all(empty):
                    # every response at zero (the prior): one pass of the slopes gives the
                    # conditions (no cell may move) and the cold start's guess
                    slopes = self._descents(x, lam)[:3]
                    finish.exact |= ~(slopes[0] | slopes[1]).any(axis=1)
                    x = finish.cold_start(x, slopes)
                else:
                    finish.exact |= self._kkt_holds(x, lam, finish.last, rows=empty)
                    if cold:
                        x = finish.cold_start(x)
                if self.geometry == "row" and self._row_secular_runs():
                    # Row groups without an L1 share: a row whose group is active has every
                    # cell free unless its box binds, and its minimiser is then closed-form
                    # (_newton_row_secular): tried before any iteration.
                    guess, solved = self._newton_row_secular(x, lam, np.ones_like(x),
                                                             ~finish.exact)
                    inside = solved & ((guess > self.lo) & (guess < self.hi)).all(axis=1)
                    if inside.any():
                        x = np.where(inside[:, None], guess, x)
                        finish.last = finish.support(x)
                        finish.tried |= inside
                        finish.take(x, guess, finish.last, inside)
            done = self._split(x, finish.exact, lam, tol, max_iter, 0)
            if done is not None:
                return done
        if finish is not None and not warm and np.array_equal(x, self.prior):
            # the prior, where the conditions did not hold for every unit (above), is not the
            # minimiser: its gap (a whole evaluation) would only say so
            gaps = objs = None
            rel = np.inf
        else:
            gaps, objs = self.unit_gaps(x, lam)
            rel = _relative(gaps.sum(), objs.sum())
        y = x.copy()
        momentum = np.ones(self.n_units)
        scale = (2.0 / self.t_rows) * self.step
        metric = 1.0 / self.step
        first = 0 if rel <= tol else None  # iteration at which the gap first met tol
        # The accelerated iterates' gap is not monotone: the lowest certified one is kept, in
        # case the polish ends above tol (a sparse-group HCGL fold of 164 rows and 500 factors
        # met 1e-8 at iteration 630, reached 1e-9, and stood at 1.1e-8 at iteration 1280,
        # where the polish ended uncertified and the fit failed; tests/test_engine.py)
        best = (x.copy(), gaps, objs, rel) if rel <= tol else None
        trail = [(0, rel)]  # (iteration, lowest gap so far) at every evaluation
        it = 0
        while it < max_iter and not self._done(
                rel, tol, it, first, finish is not None and finish.pending):
            if (self._give_up and first is None and it >= _STALL_START
                    and it % _STALL_EVERY == 0 and _stalled(trail, it, tol, max_iter)):
                break
            if (self._floor_lam == lam and first is None and it and it % FLOOR_EVERY == 0
                    and floor_share(self, x, lam)[0] > FLOOR_CAP * tol):
                break
            it += 1
            z = y - scale * (self._gram_times(y) - self.xty)
            x_new = self.prox(z, lam)
            diff = x_new - x
            # Gradient restart per unit: momentum that points uphill (in the step's metric,
            # (y - x_new) / step is the gradient mapping) is dropped.
            crit = self._unit_sum(np.einsum("nm,nm->n", (y - x_new) * metric, diff))
            nxt = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * momentum * momentum))
            beta = (momentum - 1.0) / nxt
            restart = crit > 0
            beta[restart] = 0.0
            nxt[restart] = 1.0
            momentum = nxt
            y = x_new + beta[self.unit][:, None] * diff
            x = x_new
            moved = None if finish is None else finish.step(x, it)
            if moved is not None:
                x, accepted = moved
                done = self._split(x, finish.exact, lam, tol, max_iter - it, it)
                if done is not None:
                    return done
                y[accepted] = x[accepted]
                momentum[self.unit[accepted]] = 1.0
            if moved is not None or it % _CHECK_EVERY == 0 or it == max_iter:
                gaps, objs = self.unit_gaps(x, lam)
                rel = _relative(gaps.sum(), objs.sum())
                trail.append((it, min(rel, trail[-1][1])))
                if rel <= tol and first is None:
                    first = it
                if rel <= tol and (best is None or rel < best[3]):
                    best = (x.copy(), gaps, objs, rel)
        if rel > tol and best is not None:
            x, gaps, objs = best[:3]
        return x, gaps, objs, it

    def _split(self, x, exact, lam, tol, max_iter, it):
        """Once most responses are at their minimisers (``exact``), solve the others alone:
        responses are independent problems, and a solve on 20 of 500 rows costs a 25th of an
        iteration on all of them. ``None``: not worth it (yet).

        The parts' unit gaps add up to the whole's (the same dual points, unit by unit), so the
        answer's certificate is exact without evaluating the whole again.
        """
        rest = ~exact
        n_rest = int(rest.sum())
        if n_rest and (2 * n_rest > self.n or self.n < _SPLIT_MIN or self.geometry == "block"):
            return None  # (a FCGL cluster couples its responses: no view of some rows)
        if not n_rest:
            return (x, *self.unit_gaps(x, lam), it)
        gaps, objs = np.empty(self.n), np.empty(self.n)
        gaps[exact], objs[exact] = self._rows_view(exact).unit_gaps(x[exact], lam)
        # the sub-problem's certificate is relative to its own, smaller, objective: stricter
        coef, gaps[rest], objs[rest], sub_it = self._rows_view(rest)._solve_units(
            x[rest], lam, tol, max(max_iter, 1), warm=False, seeded=True)
        x = x.copy()
        x[rest] = coef
        return x, gaps, objs, it + sub_it

    def _kkt_holds(self, x: np.ndarray, lam: float, support: np.ndarray,
                   rows: np.ndarray | None = None) -> np.ndarray:
        """Per response (cell and row geometries), whether the cells off ``support`` (zero
        ``D``, or at a bound) satisfy the optimality conditions at ``x``: no feasible direction
        lowers the objective. With the support's cells stationary (a Newton point), that is
        the response's minimiser. Tolerance: 1e-9 of the threshold, far above round-off, far
        below any loading that matters (a violation ``v`` moves a loading by about ``v / G_jj``).
        Only the responses ``rows`` are tested when given (False elsewhere).
        """
        if rows is not None and not _all(rows):
            idx = np.flatnonzero(rows)
            out = np.zeros(self.n, dtype=bool)
            out[idx] = self._kkt_rows(x, lam, support, idx)
            return out
        return self._kkt_rows(x, lam, support, None)

    def _kkt_rows(self, x, lam, support, idx):
        sub = slice(None) if idx is None else idx
        up_bad, down_bad, grad, thr, zero_row = self._descents(x, lam, idx)[:5]
        ok = (~(up_bad | down_bad) | (support[sub] != 0)).all(axis=1)
        x = x[sub]
        can_up = x < self.hi[sub]
        can_down = x > self.lo[sub]
        if _any(zero_row):
            # A zero row's group term has the whole ball as subgradient: the row stays at 0 iff
            # the soft-thresholded pull, without the directions the box forbids, is inside it
            # (the prox's zero test, module docstring).
            pull = _soft(-grad[zero_row], thr[zero_row])
            pull = np.where((pull > 0) & ~can_up[zero_row], 0.0, pull)
            pull = np.where((pull < 0) & ~can_down[zero_row], 0.0, pull)
            radius = lam * (1.0 - self.a) * self.group_w[sub][zero_row]
            ok[zero_row] = np.linalg.norm(pull, axis=1) <= radius * (1 + 1e-9) + 1e-9 * \
                np.abs(grad[zero_row]).max(axis=1)
        return ok

    def _descents(self, x: np.ndarray, lam: float, idx: np.ndarray | None = None):
        """Cells where moving up / down lowers the objective at ``x`` (beyond 1e-9 of the
        threshold), with the pieces :meth:`_kkt_holds` and the working set reuse:
        ``(up_bad, down_bad, grad, thr, zero_row, up, down)``, ``up`` and ``down`` the
        objective's slopes upwards and downwards, for the responses ``idx`` (default all)."""
        sub = slice(None) if idx is None else idx
        x = x[sub]
        d = x - self.prior[sub]
        grad = (2.0 / self.t_rows) * (self._gram_times(x, idx) - self.xty[sub])
        omega = self.omega[sub]
        thr = lam * self.a * omega if self.geometry == "row" else lam * omega
        zero_row = np.zeros(len(x), dtype=bool)
        if self.geometry == "row":
            norm = np.linalg.norm(d, axis=1, keepdims=True)
            with np.errstate(divide="ignore", invalid="ignore"):
                radial = np.where(norm > 0, d / np.where(norm > 0, norm, 1.0), 0.0)
            grad = grad + lam * (1.0 - self.a) * self.group_w[sub][:, None] * radial
            zero_row = norm[:, 0] == 0.0
        slack = 1e-9 * (thr + np.abs(grad))
        # the objective's slope upwards and downwards at x (penalty: |D| grows or shrinks)
        # (-thr once, and t - g for -g + t: the same bits, two passes fewer)
        neg_thr = -thr
        up = grad + np.where(d < 0, neg_thr, thr)
        down = np.where(d > 0, neg_thr, thr) - grad
        return ((x < self.hi[sub]) & (up < -slack), (x > self.lo[sub]) & (down < -slack), grad,
                thr, zero_row, up, down)

    def _support_guess(self, x: np.ndarray, lam: float, idx: np.ndarray,
                       slopes=None) -> np.ndarray:
        """LASSO, cold start: signs of a first guess of the support of the responses ``idx``
        (``x`` is the prior). The cells where moving lowers the objective, each with the sign
        of that move; with one Gram, only those whose sign survives the solve with every cell
        free (one M x M Cholesky for all responses, the box ignored): the cells that cross
        zero there are mostly the weak ones, and leaving them out halves the first Newton
        systems at (2000,30,500); with signs or a box too (on a nonneg test panel the first
        try then finishes most responses, where the plain guess finished 6 of 56). A response
        left with no cell keeps the plain guess (an empty support is not tried).
        ``slopes``: ``_descents(x, lam, idx)[:3]``, when the caller has them."""
        up_bad, down_bad, grad = self._descents(x, lam, idx)[:3] if slopes is None else slopes
        guess = np.where(up_bad, 1.0, np.where(down_bad, -1.0, 0.0))
        if self.n_patterns > 1:
            return guess
        pull = -np.sign(grad)
        rhs = self.xty[idx] - 0.5 * self.t_rows * lam * self.omega[idx] * pull
        every = _cho_solve_lower(self.gram[0], rhs.T)
        if every is None:  # a singular Gram: the plain guess
            return guess
        every = every.T
        refined = np.where(np.sign(every - self.prior[idx]) == pull, guess, 0.0)
        lost = ~refined.any(axis=1)  # (an empty guess would not be tried: the plain one)
        refined[lost] = guess[lost]
        return refined

    def _prior_residual(self) -> np.ndarray:
        """Rows ``c_i - G_p(i) b0_i``: the right-hand side of the Newton finishes, which solve
        in ``D = B - B0`` (the row groups' closed form, FCGL's blocks); formed once."""
        if self._r0 is None:
            self._r0 = self.xty - self._gram_times(self.prior)
        return self._r0

    def _rows_view(self, rows: np.ndarray) -> FastEngine:
        """The engine of the responses ``rows`` alone (cell and row geometries), sharing the
        per-pattern pieces (Grams, spectra) instead of computing them again."""
        idx = np.flatnonzero(rows)
        sub = copy.copy(self)
        sub.stats, sub.spec = _row_subset(self.stats, self.spec, idx)
        k = len(idx)
        sub.n, sub.n_units, sub.n_groups = k, k, k
        for name in ("pattern", "xty", "_czz", "prior", "lo", "hi", "fixed", "dl", "du",
                     "_lo_side", "_hi_side", "_dl0", "_du0", "omega", "group_w", "step"):
            setattr(sub, name, getattr(self, name)[idx])
        sub.unit = sub.group_unit = np.arange(k)
        sub.gid = np.repeat(np.arange(k), self.m)
        sub._table = _row_member_table(k, self.m) if self.geometry != "cell" else None
        sub._patterns = [np.flatnonzero(sub.pattern == p) for p in range(self.n_patterns)]
        if self._stacked is not None:
            sub._stacked = self._stacked[idx]
        if self._stacked_vecs is not None:
            sub._stacked_vecs = self._stacked_vecs[idx]
        sub._twin = None
        sub._r0 = None if self._r0 is None else self._r0[idx]
        sub._thresholds = None
        sub._floor_lam = None
        return sub

    def _newton_cell(self, x: np.ndarray, lam: float, support: np.ndarray,
                     rows: np.ndarray) -> np.ndarray:
        """LASSO on a settled support: the exact minimiser of the smooth piece, per response.

        With the free cells ``F`` (nonzero ``D``, strictly inside the box) and their signs
        ``s`` fixed, the objective is quadratic in ``b_F``:
        ``G_FF b_F = c_F - G_F,~F b_~F - (T'/2) lambda s``. Only the ``|F| x |F|`` systems
        are formed, batched by size (supports are sparse: ~5 of 30 factors in a typical
        fit). Returns the candidate rows for ``rows`` (others are ``x``); responses whose
        system is singular get NaN on their free cells (refused), as do those with more free
        cells than their Gram's rank (at most their rows), whose system is singular and is not
        formed (nor a deferred Gram for it: the iterations' supports pass through such sizes
        on a wide panel). The rank, not the panel's rows: a response observed on 7 of 33 rows
        with 9 free cells had a system singular but for round-off, whose solution of norm
        1e16 was stationary to round-off and taken (random search, stop 37).
        """
        nonzero = support != 0  # (once: the rows' sizes, their free cells)
        many = rows & (nonzero.sum(axis=1) > self._rank[self.pattern])
        if _any(many):
            x = np.where(many[:, None] & nonzero, np.nan, x)
            rows = rows & ~many
        idx = np.flatnonzero(rows)
        if not len(idx):
            return x.copy()
        free = nonzero[idx]
        fixed_part = self._gram_times(np.where(free, 0.0, x[idx]), idx)
        rhs = self.xty[idx] - fixed_part - 0.5 * self.t_rows * lam * self.omega[idx] * \
            support[idx]
        cand = x.copy()
        if len(idx) * self.m * self.m <= _PADDED_MAX:
            # few small systems: one batched solve of the padded M x M systems (identity off
            # the support) costs less than a call per support size; one Gram is broadcast,
            # not gathered per row
            mask = free[:, :, None] & free[:, None, :]
            grams = self.gram[0] if self.n_patterns == 1 else self.gram[self.pattern[idx]]
            a = np.ascontiguousarray(np.where(mask, grams, 0.0))
            # the diagonals as a strided view of the C-ordered stack (a reshape is a view
            # then): the same sums as a fancy-indexed add, without its gather and scatter
            a.reshape(len(idx), -1)[:, ::self.m + 1] += ~free
            b = np.where(free, rhs, x[idx])
            try:
                cand[idx] = np.linalg.solve(a, b[:, :, None])[:, :, 0]
                return cand
            except np.linalg.LinAlgError:
                pass  # a singular system: by support size below, row by row where singular
        sizes = free.sum(axis=1)
        # rows by support size (stable: each size's rows in order), cut where the size changes,
        # and every row's free columns in that order at once: one sort and one scan instead of
        # a scan of every row per size
        by_size = np.argsort(sizes, kind="stable")
        sorted_sizes = sizes[by_size]
        cuts = np.flatnonzero(np.diff(sorted_sizes)) + 1
        free_cols = np.nonzero(free[by_size])[1]
        ends = np.cumsum(sorted_sizes)  # free_cols[ends[r] - k: ends[r]]: row by_size[r]'s
        for first, sel in zip(np.concatenate(([0], cuts)), np.split(by_size, cuts),
                              strict=True):
            k = int(sorted_sizes[first])
            if k == 0:
                continue
            idx_rows = idx[sel]
            start = ends[first] - k
            cols = free_cols[start:start + k * len(sel)].reshape(len(sel), k)
            pat = self.pattern[idx_rows]
            a = self._gram_blocks(cols)
            if a is None and (self.n_patterns == 1 or len(sel) == 1):
                a = sub_block(self.gram[pat[0]], cols)
            elif a is None:
                a = self.gram[pat[:, None, None], cols[:, :, None], cols[:, None, :]]
            b = rhs[sel[:, None], cols]
            try:
                sol = _solve_spd(a, b)
            except np.linalg.LinAlgError:
                sol = np.full_like(b, np.nan)  # a singular system: those rows keep x
                for r in range(len(idx_rows)):
                    try:
                        sol[r] = np.linalg.solve(a[r], b[r])
                    except np.linalg.LinAlgError:
                        pass
            cand[idx_rows[:, None], cols] = sol
        return cand

    def _row_secular_runs(self) -> bool:
        """Row groups: the closed-form finish applies (no L1 share, few Gram patterns)."""
        return self.a == 0.0 and self.n_patterns <= _SECULAR_PATTERNS

    def _row_newton_runs(self) -> bool:
        """Row groups: the Newton finish runs on any panel (the closed form, or
        ``N M^2 <= _ROW_NEWTON_MAX``). The starts and the crawl rule of :mod:`._homotopy` go by
        this; the finish itself also runs on wide panels (:meth:`_row_newton_sized`)."""
        return self._row_secular_runs() or self.n * self.m * self.m <= _ROW_NEWTON_MAX

    def _row_newton_sized(self) -> bool:
        """Row groups: the dense Newton systems cost less than the iterations they save:
        ``N M^2 <= _ROW_NEWTON_MAX``, or more factors than rows and ``N M^3`` within
        ``_ROW_NEWTON_WIDE_MAX``, where the iterations crawl. Only the finish itself widens
        its reach so: above the crawl rule's penalty (:func:`._homotopy.iterations_crawl`),
        which still sends a cold fit below it to CVXPY first (at the default penalty on
        (120,200,10) and (250,500,5) the continuation with the finish took 2-45 s per fit
        against 0.5-6 s for CVXPY and the polish)."""
        n, m = self.n, self.m
        return n * m * m <= _ROW_NEWTON_MAX or (
            m >= self.t_rows and n * float(m) ** 3 <= _ROW_NEWTON_WIDE_MAX)

    def _newton_row(self, x: np.ndarray, lam: float, support: np.ndarray,
                    rows: np.ndarray, force: bool = False) -> np.ndarray | None:
        """Row groups on a settled support: Newton's method on the smooth piece, per response.

        With the free cells ``F`` (nonzero ``D``, strictly inside the box), their signs ``s`` and
        the other cells of the row fixed, the optimality condition on ``b_F`` is

            (2/T') (G b - c)_F + lambda a s_F + kappa D_F / ||D_i||_2 = 0,
            kappa = lambda (1-a) w_i,

        smooth while the row is nonzero, with the positive definite Jacobian
        ``(2/T') G_FF + kappa (I - u u') / ||D_i||`` (``u = D_F / ||D_i||``). Returns the
        candidate rows for ``rows`` (others are ``x``), or ``None`` when the dense systems
        would cost more than the iterations they save (:meth:`_row_newton_sized`), unless
        ``force`` (a polish, where the iterations would crawl).
        """
        n, m = x.shape
        base = None
        if self._row_secular_runs():
            base, done = self._newton_row_secular(x, lam, support, rows)
            rows = rows & ~done
            if not rows.any():
                return base
        free = (support != 0) & rows[:, None]
        idx = np.flatnonzero(free.any(axis=1))
        # the engine's size, not the rows tried: a few tries on a large panel cost more than
        # the iterations they save (measured at N = 500, M = 30: 30-39 ms against 21-26 ms)
        if (not self._row_newton_sized() and not force) or len(idx) == 0:
            if base is None:
                return None
            base[rows] = np.nan  # no candidate for these rows (refused by accept)
            return base
        free, x_r = free[idx], x[idx]
        prior, omega, support = self.prior[idx], self.omega[idx], support[idx]
        scale = 2.0 / self.t_rows
        grams = self.gram[self.pattern[idx]]
        mask = free[:, :, None] & free[:, None, :]
        h_data = np.where(mask, scale * grams, 0.0)
        diag = np.arange(m)
        h_data[:, diag, diag] += ~free
        kappa = lam * (1.0 - self.a) * self.group_w[idx]
        d_fixed = np.where(free, 0.0, x_r - prior)
        fixed_sq = np.einsum("nm,nm->n", d_fixed, d_fixed)
        # Everything in the residual that does not move: the fixed cells' data term and the L1.
        fixed_b = np.where(free, 0.0, x_r)
        const = scale * (np.einsum("nij,nj->ni", grams, fixed_b) - self.xty[idx])
        const = const + lam * self.a * omega * support
        b = x_r.copy()
        for _ in range(_NEWTON_STEPS):
            b_free = np.where(free, b, 0.0)
            d = np.where(free, b - prior, 0.0)
            norm = np.sqrt(np.einsum("nm,nm->n", d, d) + fixed_sq)
            if np.any(norm <= 0.0):
                return None
            inv = 1.0 / norm
            u = d * inv[:, None]
            resid = const + np.einsum("nij,nj->ni", h_data, b_free) + (kappa * inv)[:, None] * d
            resid = np.where(free, resid, 0.0)
            jac = h_data + (kappa * inv)[:, None, None] * (
                mask * np.eye(m) - u[:, :, None] * u[:, None, :]
            )
            try:
                step = np.linalg.solve(jac, resid[:, :, None])[:, :, 0]
            except np.linalg.LinAlgError:
                return None
            b = b - step
            if not np.all(np.isfinite(b)):
                return None
            # Quadratic convergence: after a step this small (relative to each row, whatever
            # the units) the next one is below round-off.
            if np.all(np.abs(step).max(axis=1) <= 1e-9 * np.abs(b).max(axis=1)):
                break
        cand = x.copy() if base is None else base
        cand[idx] = np.where(free, b, x_r)
        return cand

    def _newton_row_secular(self, x: np.ndarray, lam: float, support: np.ndarray,
                            rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Row groups without an L1 share, on rows whose every cell is free: the minimiser in
        closed form up to one scalar per response.

        The optimality condition ``(2/T') (G b - c) + lambda w D / ||D|| = 0`` reads
        ``(G + nu I) d = r`` with ``r = c - G b0``, ``nu = k / ||d||``, ``k = (T'/2) lambda w``.
        In the eigenbasis of ``G = V diag(l) V'`` (``q = V'r``), ``d = V (q / (l + nu))`` and
        ``nu`` solves ``1 / ||d(nu)|| = nu / k``, whose left side is concave in ``nu`` (as in
        trust-region subproblems): Newton's method from the iterate's own ``||D||``, vectorised
        over the responses, O(M) per response and step after one projection. Returns
        ``(candidate, solved rows)``.
        """
        cand = x.copy()
        done = np.zeros(self.n, dtype=bool)
        full = rows & (support != 0).all(axis=1)
        if not full.any():
            return cand, done
        if self._plain_eig is None:
            self._plain_eig = [np.linalg.eigh(g) for g in self.gram]
        idx = np.flatnonzero(full)
        resid = self._prior_residual()[idx]
        norm0 = np.linalg.norm(x[idx] - self.prior[idx], axis=1)
        kappa = 0.5 * self.t_rows * lam * self.group_w[idx]
        for p in np.unique(self.pattern[idx]):
            sel = self.pattern[idx] == p
            vals, vecs = self._plain_eig[p]
            vals = np.maximum(vals, 0.0)
            q = resid[sel] @ vecs
            q2 = q * q
            k = kappa[sel]
            # from the iterate's own norm; from the prior (norm 0), from nu's upper bound
            # l_max k / (||r|| - k) (||d(nu)|| >= ||r|| / (l_max + nu)): both converge
            rnorm = np.sqrt(q2.sum(axis=1))
            with np.errstate(divide="ignore", invalid="ignore"):
                nu = np.where(norm0[sel] > 0, k / norm0[sel],
                              max(vals[-1], 1e-300) * k / (rnorm - k))
            # a row whose group belongs at zero (||r|| <= k) has no root: it fails alone
            valid = np.isfinite(nu) & (nu > 0)
            nu = np.where(valid, nu, 1.0)
            ok = np.zeros(len(nu), dtype=bool)
            with np.errstate(all="ignore"):
                for _ in range(_NEWTON_STEPS * 3):
                    den = vals[None, :] + nu[:, None]
                    size = np.sqrt(np.einsum("nk,nk->n", q2, 1.0 / den**2))
                    slope = np.einsum("nk,nk->n", q2, 1.0 / den**3) / size**3 - 1.0 / k
                    step = (1.0 / size - nu / k) / slope
                    new = nu - step
                    valid &= np.isfinite(new)
                    nu = np.where(valid, np.where(new > 0.0, new, 0.5 * nu), 1.0)
                    ok = valid & (np.abs(step) <= 1e-14 * nu)
                    if ok[valid].all():
                        break
            d = (q / (vals[None, :] + nu[:, None])) @ vecs.T
            rows_p = idx[sel]
            cand[rows_p] = self.prior[rows_p] + d
            done[rows_p] = ok & np.isfinite(d).all(axis=1)
        return cand, done

    @staticmethod
    def _done(rel: float, tol: float, it: int, first: int | None, pending: bool = False) -> bool:
        """Certified, then polished: a gap of ``_POLISH * tol`` (with every response known to
        be at its minimiser, see ``_NewtonFinish.pending``) or as many iterations again.

        A relative gap of 1e-8 bounds the objective, but coefficients only to about
        ``sqrt(1e-8)``; linear convergence makes the extra digits cheap.
        """
        if first is None:
            return False
        return (rel <= _POLISH * tol and not pending) or it >= 2 * first + 2 * _CHECK_EVERY


def _stalled(trail: list[tuple[int, float]], it: int, tol: float, max_iter: int) -> bool:
    """Whether iterations whose lowest gaps are ``trail`` (``(iteration, gap)``, in order)
    will not reach ``tol`` within ``max_iter``: at the rate (in log gap per iteration) of
    the second half of the ``it`` spent, the rest would take beyond the budget, or that half
    made no progress. Linear convergence makes the log gap fall linearly; a plateau, or a
    slow rate, is what the sweep's stalled fits showed long before their budget ran out."""
    now = trail[-1][1]
    half = next(gap for k, gap in reversed(trail) if k <= it // 2)
    if not np.isfinite(now):
        return True  # no finite gap after thousands of iterations
    if not np.isfinite(half):
        return False  # (no gap to compare with yet)
    if now >= half:
        return True
    rate = np.log(half / now) / (it - it // 2)
    return it + np.log(now / tol) / rate > max_iter


def _cho_solve_lower(a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    """``cho_solve(cho_factor(a, lower=True), b)`` (finite inputs checked, as they check)
    through LAPACK's ``potrf`` and ``potrs`` themselves, the same calls and bits without
    SciPy's wrappers (25 us of a 3 ms fit at (500,10,50)); None where those raise (a
    non-finite input, or ``a`` not positive definite)."""
    if a.dtype != np.float64 or b.dtype != np.float64 or not a.size or not b.size:
        try:  # (the wrappers' own dtypes and empty cases)
            return cho_solve(cho_factor(a, lower=True), b)
        except (LinAlgError, ValueError):
            return None
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return None
    factor, info = lapack.dpotrf(a, lower=1, clean=0)
    if info != 0:
        return None
    out, info = lapack.dpotrs(factor, b, lower=1)
    return out if info == 0 else None


def _solve_spd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solutions (n, k) of the systems ``a`` (n, k, k), Grams' blocks, at right-hand sides
    ``b`` (n, k). One system alone (a single response, many factors: k in the hundreds) by
    Cholesky, half the work of LU; a batch by NumPy's batched LU (no batched triangular solve).
    LinAlgError where a system is singular (or, alone, not positive definite)."""
    if len(a) == 1:
        try:
            factor = cho_factor(a[0], lower=True, check_finite=False)
            return cho_solve(factor, b[0], check_finite=False)[None]
        except LinAlgError:
            pass  # (round-off on a nearly singular block: LU decides)
    return np.linalg.solve(a, b[:, :, None])[:, :, 0]


def _top_eigenvalue(matrix, scale: np.ndarray | None = None) -> float:
    """The largest eigenvalue of a symmetric PSD matrix (of ``S A S``, ``S = diag(scale)``,
    applied as products: no second M x M array) by Lanczos iterations, rounded up so that
    ``1 / value`` is a safe step. ``matrix``: an array, or a linear operator (a deferred
    Gram, :meth:`FastEngine._root_operator`).

    The Ritz value converges from below; the iterations stop once its residual is within
    ``_LANCZOS_TOL`` of the value, so an eigenvalue lies within that fraction of it, and the
    value is rounded up by ten times that. A step 1% short costs about 1% more iterations,
    where a tolerance near round-off takes about twice the products. :func:`_lanczos_top`
    tests the residual at every step; where it gives up, ARPACK's restarted iterations."""
    from scipy.sparse.linalg import LinearOperator, eigsh

    dense = isinstance(matrix, np.ndarray)
    if (dense and not np.any(matrix)) or (scale is not None and not np.any(scale)):
        return 0.0
    n = matrix.shape[0]
    op = matrix if scale is None else LinearOperator(
        (n, n), matvec=lambda v: scale * (matrix @ (scale * np.ravel(v))), dtype=float)
    value = _lanczos_top(op, n)
    if value is None:
        # (not the ones start that failed: a fixed pseudo-random one, deterministic)
        v0 = np.random.default_rng(0).standard_normal(n)
        value = eigsh(op, k=1, which="LA", tol=_LANCZOS_TOL, v0=v0,
                      return_eigenvectors=False)[0]
    return float(max(value, 0.0) * (1.0 + 10.0 * _LANCZOS_TOL))


def _lanczos_top(op, n: int) -> float | None:
    """The largest Ritz value of Lanczos iterations from the ones vector (full
    reorthogonalisation), once its residual ``beta_k |s_k|`` is within ``_LANCZOS_TOL`` of it:
    ARPACK's own test, which ARPACK (``ncv = 20``) makes only at the end of each restart
    cycle. At (1000, 2000) its 41 products (each two passes over the design, 1 ms) became 32.
    None when the Krylov space turns invariant first (a start in a null space: its Ritz values
    need not hold the top) or after ``min(n, _LANCZOS_STEPS)`` steps."""
    from scipy.linalg import eigh_tridiagonal

    steps = min(n, _LANCZOS_STEPS)
    basis = np.empty((steps, n))
    alphas, betas = np.empty(steps), np.empty(steps)
    q = np.full(n, 1.0 / np.sqrt(n))
    for k in range(steps):
        basis[k] = q
        w = np.asarray(op @ q, dtype=float).reshape(-1)
        alphas[k] = q @ w
        # against every earlier vector, twice (the three-term recurrence alone loses them)
        for _ in range(2):
            w -= basis[:k + 1].T @ (basis[:k + 1] @ w)
        beta = float(np.linalg.norm(w))
        vals, vecs = eigh_tridiagonal(alphas[:k + 1], betas[:k], select="i",
                                      select_range=(k, k))
        theta = float(vals[0])
        if theta > 0.0 and beta * abs(vecs[-1, 0]) <= _LANCZOS_TOL * theta:
            return theta
        if beta <= 1e-12 * max(theta, float(np.abs(alphas[:k + 1]).max())):
            return None  # invariant (or zero) Krylov space, top not seen
        betas[k] = beta
        q = w / beta
    return None


def _row_subset(stats: SufficientStats, spec: PenaltySpec, rows: np.ndarray):
    """The statistics and penalty of the responses ``rows`` (cell and row geometries: the
    responses are independent problems; whole FCGL clusters: :mod:`._cluster_split`); the
    per-pattern Grams are shared."""

    def pick(a):
        return None if a is None else np.asarray(a)[rows]

    sub_stats = stats.responses(rows)
    sub_spec = replace(spec, prior=spec.prior[rows], signs=pick(spec.signs),
                       pinned=pick(spec.pinned), cell_weight=pick(spec.cell_weight),
                       row_weight=pick(spec.row_weight), lower_bound=pick(spec.lower_bound),
                       upper_bound=pick(spec.upper_bound), groups=pick(spec.groups))
    return sub_stats, sub_spec


def _relative(gap: float, objective: float) -> float:
    if not (np.isfinite(gap) and np.isfinite(objective)):
        return np.inf  # an overflowing objective certifies nothing
    return max(gap, 0.0) / max(abs(objective), np.finfo(float).tiny)


def solve_fast(
    stats: SufficientStats,
    spec: PenaltySpec,
    reg_lambda: float,
    *,
    tol: float = DEFAULT_TOL,
    max_iter: int = DEFAULT_MAX_ITER,
    coef_init: np.ndarray | None = None,
) -> EngineResult:
    """One certified solve: ``FastEngine(stats, spec).solve(reg_lambda, ...)``."""
    return FastEngine(stats, spec).solve(
        reg_lambda, tol=tol, max_iter=max_iter, coef_init=coef_init
    )
