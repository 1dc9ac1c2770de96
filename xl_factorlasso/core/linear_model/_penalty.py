"""The penalty ``lambda * P(B - B0)`` and its constraints, without CVXPY.

:mod:`~xl_factorlasso.core.linear_model._formulation` states the whole objective and builds it
in CVXPY; this module holds the part that both engines share, so that the fast engine (the
default) can run without importing CVXPY, which costs about 50 MB and half a second.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._prox import _block_member_table

__all__ = ["DENSE_CLUSTER_CELLS", "PenaltySpec", "penalty_value"]

# An FCGL cluster of at least this many cells (members times factors) on a wide panel couples
# every member on every factor in Clarabel's KKT system (_formulation._kkt_method: faer's
# dense kernels there), and is where the duals of _dual_blocks are tried
DENSE_CLUSTER_CELLS = 1500


@dataclass(frozen=True)
class PenaltySpec:
    """Geometry and constraints of the penalty (everything except ``lambda``).

    Attributes
    ----------
    geometry : {"cell", "row", "block"}
    groups : numpy.ndarray of int, shape (N,), or None
        Group code ``0..G-1`` per response (row and block geometries).
    group_weight : numpy.ndarray, shape (G,), or None
    l1_weight : float
        ``a`` in the docstring of this module; ignored by the cell geometry.
    prior : numpy.ndarray, shape (N, M)
    signs : numpy.ndarray, shape (N, M), or None
        ``NaN`` free, ``0`` zero, ``+1`` non-negative, ``-1`` non-positive.
    nonneg : bool
    pinned : numpy.ndarray of bool, shape (N, M), or None
        Cells the loss does not see (the factor is identically zero on the response's
        observations): held at the prior, the penalty's unique minimiser in that cell.
    cell_weight : numpy.ndarray, shape (N, M), or None
        Adaptive L1 weight ``omega_ij > 0`` of every cell (Zou 2006); None: all 1.
    row_weight : numpy.ndarray, shape (N,), or None
        Row geometry: adaptive weight ``rho_i > 0`` of response ``i``'s L2 norm (Wang and
        Leng 2008); None: all 1.
    block_weight : numpy.ndarray, shape (G, M), or None
        Block geometry: adaptive weight ``kappa_gj > 0`` of block ``(g, j)``'s L2 norm;
        None: all 1.
    cooperative : bool, default False
        Block geometry: each block pays ``||(D_gj)+||_2 + ||(D_gj)-||_2`` (its positive and
        negative parts, cooperative LASSO) instead of ``||D_gj||_2``.
    lower_bound, upper_bound : numpy.ndarray, shape (N, M), or None
        Extra per-cell bounds on ``B`` (the expert prior floors; NaN: none), intersected with
        the signs' box. They never exclude the prior.
    """

    geometry: str
    groups: np.ndarray | None
    group_weight: np.ndarray | None
    l1_weight: float
    prior: np.ndarray
    signs: np.ndarray | None
    nonneg: bool
    pinned: np.ndarray | None = None
    cell_weight: np.ndarray | None = None
    row_weight: np.ndarray | None = None
    block_weight: np.ndarray | None = None
    cooperative: bool = False
    lower_bound: np.ndarray | None = None
    upper_bound: np.ndarray | None = None

    @property
    def weighted(self) -> bool:
        """Whether any adaptive weight is set (None everywhere: the unweighted penalty)."""
        return not (self.cell_weight is None and self.row_weight is None
                    and self.block_weight is None)

    def l1_weights(self) -> np.ndarray:
        """``omega`` (N, M): the L1 weight of every cell (ones without adaptive weights; formed
        once per spec, read-only)."""
        if self.cell_weight is None:
            ones = self.__dict__.get("_ones")
            if ones is None:
                ones = np.ones(self.prior.shape)
                ones.flags.writeable = False
                self.__dict__["_ones"] = ones
            return ones
        return np.asarray(self.cell_weight, dtype=float)

    def box(self) -> dict[str, np.ndarray | bool]:
        """The box as the fast engine and ``lambda_max`` read it, formed once per spec (a
        rolling fit's dates share one spec where nothing of it changes: 15 passes over N x M
        cells saved a date), arrays read-only: ``lo``, ``hi`` (:meth:`lower_upper`), ``fixed``
        (``lo == hi``), ``unboxed`` (no finite bound anywhere), ``dl``, ``du`` (the box of
        ``D = B - B0``, which contains 0), ``lo_side``, ``hi_side`` (cells that can sit at a
        finite bound, not fixed), ``dl0``, ``du0`` (``dl``, ``du`` with their infinite sides
        at 0), ``excess_sides`` (:func:`excess_sides` of ``dl``, ``du``)."""
        held = self.__dict__.get("_box")
        if held is None:
            lo, hi = self.lower_upper()
            prior = np.asarray(self.prior, dtype=float)
            fixed = lo == hi
            dl, du = lo - prior, hi - prior
            held = {"lo": lo, "hi": hi, "fixed": fixed,
                    "unboxed": bool(np.isinf(lo).all() and np.isinf(hi).all()),
                    "dl": dl, "du": du,
                    "lo_side": np.isfinite(lo) & ~fixed, "hi_side": np.isfinite(hi) & ~fixed,
                    "dl0": np.where(np.isfinite(dl), dl, 0.0),
                    "du0": np.where(np.isfinite(du), du, 0.0),
                    "excess_sides": excess_sides(dl, du)}
            for value in (*held.values(), *held["excess_sides"]):
                if isinstance(value, np.ndarray):
                    value.flags.writeable = False
            self.__dict__["_box"] = held
        return held

    def row_weights(self) -> np.ndarray:
        """Row geometry: ``w_g(i) rho_i`` (N,), the whole weight of response ``i``'s norm."""
        w = np.asarray(self.group_weight, dtype=float)[self.groups]
        return w if self.row_weight is None else w * self.row_weight

    def block_weights(self) -> np.ndarray:
        """Block geometry: ``w_g kappa_gj`` (G, M), the whole weight of block ``(g, j)``."""
        w = np.repeat(np.asarray(self.group_weight, dtype=float)[:, None],
                      self.prior.shape[1], axis=1)
        return w if self.block_weight is None else w * self.block_weight

    def block_table(self) -> np.ndarray:
        """Block geometry: the member table of the (cluster, factor) blocks
        (:func:`~._prox._block_member_table`), formed once per spec and read-only:
        ``lambda_max`` and the engine both read it."""
        held = self.__dict__.get("_block_table")  # (a frozen dataclass: cached beside its fields)
        if held is None:
            held = _block_member_table(np.asarray(self.groups), len(self.group_weight),
                                       self.prior.shape[1])
            held.flags.writeable = False
            self.__dict__["_block_table"] = held
        return held

    def largest_cluster_cells(self) -> int:
        """Members times factors of the largest group (0 without groups): where an FCGL
        cluster's interior-point factorisation turns dense (:data:`DENSE_CLUSTER_CELLS`)."""
        if self.groups is None or not len(self.groups):
            return 0
        return int(np.bincount(self.groups).max()) * self.prior.shape[1]

    def order(self) -> np.ndarray:
        """A response order that makes every group contiguous (stable)."""
        if self.groups is None:
            return np.arange(self.prior.shape[0])
        return np.argsort(self.groups, kind="stable")

    def lower_upper(self) -> tuple[np.ndarray, np.ndarray]:
        """Elementwise bounds implied by the signs (or ``nonneg``); a pinned cell is fixed at
        its prior (which respects the signs). Formed once per spec (``lambda_max`` and the
        engine both read them: 0.15 ms each at (500, 30), at every date of a rolling fit) and
        returned read-only, as they are shared."""
        held = self.__dict__.get("_bounds")  # (a frozen dataclass: cached beside its fields)
        if held is None:
            held = self._lower_upper()
            for bound in held:
                bound.flags.writeable = False
            self.__dict__["_bounds"] = held
        return held

    def _lower_upper(self) -> tuple[np.ndarray, np.ndarray]:
        n, m = self.prior.shape
        if self.signs is not None:
            # (np.where: a boolean-mask assignment costs 5x as much on a 500 x 30 matrix)
            s = self.signs
            lower = np.where((s == 0) | (s == 1), 0.0, -np.inf)
            upper = np.where((s == 0) | (s == -1), 0.0, np.inf)
        else:
            lower = np.full((n, m), 0.0 if self.nonneg else -np.inf)
            upper = np.full((n, m), np.inf)
        if self.lower_bound is not None:
            lower = np.where(np.isnan(self.lower_bound), lower,
                             np.fmax(lower, self.lower_bound))
        if self.upper_bound is not None:
            upper = np.where(np.isnan(self.upper_bound), upper,
                             np.fmin(upper, self.upper_bound))
        if self.pinned is not None and self.pinned.any():
            lower = np.where(self.pinned, self.prior, lower)
            upper = np.where(self.pinned, self.prior, upper)
        return lower, upper


def excess_at_zero(g: np.ndarray, d_lower: np.ndarray, d_upper: np.ndarray) -> np.ndarray:
    """Per cell at ``D = B - B0 = 0``, the part of the loss gradient ``g`` that a zero
    subgradient of the L1 term cannot absorb, in the box ``[d_lower, d_upper]`` of ``D`` (which
    contains 0): ``|g|`` where the cell may move both ways, the part pushing it into the box
    where it sits at a bound (``max(-g, 0)`` at its lower one, ``max(g, 0)`` at its upper one),
    0 for a fixed cell. A cell leaves zero once ``lambda`` times its L1 weight is below it
    (``lambda_max``, and the start of the exact path)."""
    return excess_on_sides(g, *excess_sides(d_lower, d_upper))


def excess_sides(d_lower: np.ndarray, d_upper: np.ndarray) -> tuple[np.ndarray, ...]:
    """The cells of :func:`excess_at_zero` at their lower bound only, at their upper bound
    only, and fixed (a box's: :meth:`PenaltySpec.box` keeps them)."""
    at_lower = d_lower >= 0.0
    at_upper = d_upper <= 0.0
    return at_lower & ~at_upper, at_upper & ~at_lower, at_lower & at_upper


def excess_on_sides(g: np.ndarray, lower_only, upper_only, fixed) -> np.ndarray:
    """:func:`excess_at_zero` on the sides :func:`excess_sides` gave (a spec's box keeps
    them: ``lambda_max`` at every date of a rolling fit reuses them)."""
    r = np.abs(g)
    r = np.where(lower_only, np.maximum(-g, 0.0), r)
    r = np.where(upper_only, np.maximum(g, 0.0), r)
    return np.where(fixed, 0.0, r)


def penalty_value(coef: np.ndarray, spec: PenaltySpec, reg_lambda: float) -> float:
    """``lambda * P(B - B0)`` in NumPy: the same penalty as the CVXPY model."""
    d = np.asarray(coef, dtype=float) - spec.prior
    ad = np.abs(d) if spec.cell_weight is None else spec.cell_weight * np.abs(d)
    l1 = ad.sum()
    if spec.geometry == "cell":
        return float(reg_lambda * l1)
    a = spec.l1_weight
    w = spec.group_weight
    if spec.geometry == "row":
        rows = w[spec.groups] if spec.row_weight is None else spec.row_weights()
        group = np.sum(rows * np.linalg.norm(d, axis=1))
    elif spec.cooperative:  # each block's positive and negative parts
        blocks = spec.block_weights()
        group = sum(float(blocks[g] @ np.linalg.norm(half[spec.groups == g], axis=0))
                    for half in (np.maximum(d, 0.0), np.minimum(d, 0.0))
                    for g in range(len(w)))
    elif spec.block_weight is None:
        group = _weighted_block_norms(d, np.asarray(spec.groups), np.asarray(w, dtype=float))
    else:
        blocks = spec.block_weights()
        group = sum(float(blocks[g] @ np.linalg.norm(d[spec.groups == g], axis=0))
                    for g in range(len(w)))
    return float(reg_lambda * ((1.0 - a) * group + a * l1))


def _weighted_block_norms(d: np.ndarray, groups: np.ndarray, w: np.ndarray) -> float:
    """``sum_g w_g sum_j ||D_gj||_2`` (FCGL blocks), the same floats as the loop over the
    clusters ``group += w_g * norm(D[groups == g], axis=0).sum()``: the squares summed in row
    order (as NumPy reduces a cluster's rows along axis 0), each cluster's norms summed as
    one row, the clusters accumulated in order. One pass instead of a loop over the clusters:
    45 us of a small fit with 10 clusters, 0.7 ms at (2000, 30, 500) with 133. With one factor
    NumPy reduces a cluster's column pairwise, which the row-order sum is not: the loop."""
    n_groups, m = len(w), d.shape[1]
    if m < 2:
        group = 0.0
        for g, weight in enumerate(w):
            group += weight * np.linalg.norm(d[groups == g], axis=0).sum()
        return float(group)
    gid = (groups[:, None] * m + np.arange(m)).ravel()
    norms = np.sqrt(np.bincount(gid, weights=(d * d).ravel(), minlength=n_groups * m))
    return float(np.cumsum(w * norms.reshape(n_groups, m).sum(axis=1))[-1])
