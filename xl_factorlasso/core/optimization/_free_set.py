"""Solves with ``Sigma_FF`` for the active-set solver of :mod:`._dense`, one class per kind
of covariance: Cholesky factors of a dense matrix re-used through Schur complements while the
free set moves little (:class:`_FreeSetSolver`), Woodbury's formula for a factor covariance
(:class:`LowRankCovariance`, :class:`_LowRankSolver`, also the dense path's low-rank
surrogate), and conjugate gradients preconditioned with that surrogate (:class:`_IterativeSolver`,
the dense path's middle stage). Each gives ``solve(F, rhs)`` (``Sigma_FF^-1 rhs``, default
``rhs = a_F``; None when it fails) and ``product(y)`` (``Sigma y``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla

# Ridges (times the mean variance on F) for the factorisation of Sigma_FF. The first is always
# on: it moves the answer by ~1e-10 (relative) where Sigma_FF is well conditioned, and where it is
# singular (duplicate assets) it picks the least-norm optimum (duplicates share equally, as the
# interior-point path's analytic centre does) instead of a split made by round-off. Larger ones
# are tried when the factorisation still fails; the certificate is always on the true Sigma.
_RIDGES = (1e-10, 1e-8, 1e-6)
# Iterative-refinement steps at most (each: one product with Sigma and one solve).
_REFINEMENTS = 4
# ... stopped once the residual of Sigma_FF x = a_F is this small relative to a_F.
_RESIDUAL = 1e-14
# The conjugate-gradient solves (the dense path's middle stage, see _dense._ITERATIVE_FROM):
# this relative residual (enough for the signs), this many steps per solve.
_CG_TOLERANCE = 1e-6
_CG_STEPS = 300


def _factor(cov: np.ndarray, free: np.ndarray) -> tuple[tuple, float] | None:
    """A Cholesky factor of ``Sigma_FF + delta I`` and ``delta``, with the first ridge of
    ``_RIDGES`` (times the mean variance on ``F``) that makes it factorable, or None."""
    block = cov[np.ix_(free, free)]
    level = float(np.mean(np.diag(block))) if free.size else 0.0
    if not level > 0:
        return None
    diagonal = np.diag_indices(free.size)
    for ridge in _RIDGES:
        matrix = block.copy()
        matrix[diagonal] += ridge * level
        try:
            return sla.cho_factor(matrix, overwrite_a=True, check_finite=False), ridge * level
        except np.linalg.LinAlgError:
            continue
    return None


class _FreeSetSolver:
    """Solutions ``x`` of ``Sigma_FF x = a_F`` for a sequence of free sets ``F``.

    A Cholesky factor of ``Sigma_BB + delta I`` for a base set ``B`` is kept (``delta``: the
    ridge of :func:`_factor`); a nearby ``F`` (``A`` added, ``R`` removed) is solved by the
    Schur complement of the bordered system ``[[S_BB, S_BA, E_R], [S_AB, S_AA, 0], [E_R', 0,
    0]] [x_B; x_A; nu] = [r_B; r_A; 0]`` (``x_R = 0`` imposed by the multiplier ``nu``), which
    costs ``|B|^2 k`` for ``k = |A| + |R|`` instead of a new factorisation's ``|F|^3 / 3``;
    ``B`` is re-factored when that is cheaper. Iterative refinement against the unridged
    ``Sigma_FF`` then removes the ridge's bias (where ``Sigma_FF`` is singular, e.g. duplicate
    assets, it leaves the least-norm solution). ``factorisations`` counts the Cholesky
    factorisations."""

    def __init__(self, cov: np.ndarray, a: np.ndarray):
        self.cov, self.a = cov, a
        self.base = None
        self.factorisations = 0

    def _refactor(self, free: np.ndarray) -> bool:
        self.factorisations += 1
        factored = _factor(self.cov, free)
        if factored is None:
            self.base = None
            return False
        self.base, (self.chol, self.delta) = free, factored
        self.border = None
        return True

    def _prepare(self, free: np.ndarray) -> bool:
        """Set up :meth:`_apply` for ``F``; False when no ridge makes it factorable."""
        if self.base is None:
            return self._refactor(free)
        base = self.base
        removed = np.setdiff1d(base, free, assume_unique=True)
        added = np.setdiff1d(free, base, assume_unique=True)
        k = removed.size + added.size
        if k == 0:
            self.border = None
            return True
        if 2.0 * base.size**2 * k + k**3 / 3.0 >= free.size**3 / 3.0:
            return self._refactor(free)
        border = np.zeros((base.size, k))
        border[:, :added.size] = self.cov[np.ix_(base, added)]
        border[np.searchsorted(base, removed), added.size + np.arange(removed.size)] = 1.0
        z = sla.cho_solve(self.chol, border, check_finite=False)
        schur = -border.T @ z
        schur[:added.size, :added.size] += self.cov[np.ix_(added, added)]
        schur[np.arange(added.size), np.arange(added.size)] += self.delta
        try:
            lu = sla.lu_factor(schur, check_finite=False)
        except (np.linalg.LinAlgError, ValueError):
            return self._refactor(free)
        if not np.all(np.isfinite(lu[0])) or np.min(np.abs(np.diag(lu[0]))) == 0:
            return self._refactor(free)
        keep = np.isin(base, free, assume_unique=True)
        self.border = (border, z, lu, np.searchsorted(free, added), keep,
                       np.searchsorted(free, base[keep]))
        return True

    def _apply(self, free: np.ndarray, rhs: np.ndarray) -> np.ndarray:
        """``(Sigma_FF + delta I)^{-1} rhs`` for the prepared ``F`` (``rhs``: (|F|, m))."""
        if self.border is None:
            return sla.cho_solve(self.chol, rhs, check_finite=False)
        border, z, lu, at_added, keep, at_kept = self.border
        n_added = at_added.size
        rhs_base = np.zeros((self.base.size, rhs.shape[1]))
        rhs_base[keep] = rhs[at_kept]
        x_base = sla.cho_solve(self.chol, rhs_base, check_finite=False)
        small = -border.T @ x_base
        small[:n_added] += rhs[at_added]
        sol = sla.lu_solve(lu, small, check_finite=False)
        x_base -= z @ sol
        x = np.empty(rhs.shape)
        x[at_added] = sol[:n_added]
        x[at_kept] = x_base[keep]
        return x

    def solve(self, free: np.ndarray, rhs: np.ndarray | None = None) -> np.ndarray | None:
        """``Sigma_FF^{-1} rhs`` (default ``rhs = a_F``; shape (|F|,) or (|F|, m), aligned with
        the sorted ``free``), or None when ``Sigma_FF`` is not factorable even with a ridge."""
        if not self._prepare(free):
            return None
        rhs = self.a[free] if rhs is None else rhs
        matrix = rhs.reshape(free.size, -1)
        x = self._apply(free, matrix)
        full = np.zeros((self.a.size, matrix.shape[1]))
        best = np.inf
        for _ in range(_REFINEMENTS):
            full[free] = x
            residual = matrix - (self.cov @ full)[free]
            size = float(np.max(np.abs(residual)))
            if not size < best or size <= _RESIDUAL * np.max(np.abs(matrix)):
                break
            best = size
            x = x + self._apply(free, residual)
        return x.reshape(rhs.shape) if np.all(np.isfinite(x)) else None

    def product(self, y: np.ndarray) -> np.ndarray:
        return self.cov @ y


def _low_rank_times(root: np.ndarray, d2: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``(R R' + diag(d2)) y`` by two thin products (``d2`` broadcast against ``y``)."""
    return root @ (root.T @ y) + d2 * y


class _LowRankSolver:
    """``Sigma_FF x = a_F`` and ``Sigma y`` for ``Sigma = R R' + diag(d**2)``, by Woodbury:
    ``|F| r^2`` per solve, no factorisation of an ``|F| x |F|`` matrix.

    ``refine``: iterative refinement against ``Sigma_FF`` itself (products ``R_F (R_F' x)``),
    for the exact pivoting on a factor covariance; the surrogate's start needs none."""

    def __init__(self, root: np.ndarray, residual: np.ndarray, a: np.ndarray,
                 refine: bool = False):
        self.root, self.d2, self.a, self.refine = root, residual**2, a, refine

    def solve(self, free: np.ndarray, rhs: np.ndarray | None = None) -> np.ndarray | None:
        root, d2 = self.root[free], self.d2[free]
        rhs = self.a[free] if rhs is None else rhs
        scaled = root / d2[:, None]
        small = np.eye(root.shape[1]) + root.T @ scaled
        d = d2 if rhs.ndim == 1 else d2[:, None]

        def apply(b):
            return b / d - scaled @ np.linalg.solve(small, scaled.T @ b)

        try:
            x = apply(rhs)
        except np.linalg.LinAlgError:
            return None
        best = np.inf
        for _ in range(_REFINEMENTS if self.refine else 0):
            residual = rhs - _low_rank_times(root, d, x)
            size = float(np.max(np.abs(residual)))
            if not size < best or size <= _RESIDUAL * np.max(np.abs(rhs)):
                break
            best = size
            x = x + apply(residual)
        return x if np.all(np.isfinite(x)) else None

    def product(self, y: np.ndarray) -> np.ndarray:
        return _low_rank_times(self.root, self.d2, y)


@dataclass(frozen=True)
class LowRankCovariance:
    """A factor covariance ``Sigma = R R' + diag(d**2)`` (``R``: n x k, every ``d > 0``) as the
    dense path's covariance: products and solves by Woodbury, never the n x n matrix.

    The exact pivoting then costs ``|F| k^2`` per exchange (:class:`_LowRankSolver`, which is
    exact here, not a surrogate) and the certificate reads ``Sigma y`` and ``Sigma^-1 v``
    through the same two factors."""

    root: np.ndarray
    residual: np.ndarray

    def __matmul__(self, y: np.ndarray) -> np.ndarray:
        return _low_rank_times(self.root, self.residual**2, y)

    def inverse_times(self, v: np.ndarray) -> np.ndarray | None:
        """``Sigma^-1 v``, or None when it is not finite."""
        return _LowRankSolver(self.root, self.residual, v, refine=True).solve(
            np.arange(v.size))

    def system(self, a: np.ndarray) -> _LowRankSolver:
        return _LowRankSolver(self.root, self.residual, a, refine=True)


class _IterativeSolver:
    """``Sigma_FF^{-1} rhs`` by conjugate gradients preconditioned with the low-rank surrogate
    (``(R_F R_F' + D_F)^{-1}`` by Woodbury), to relative residual ``_CG_TOLERANCE``; None when
    it does not get there in ``_CG_STEPS``. A few dozen products with ``Sigma_FF`` instead of
    a factorisation: used to find the free set of a dense optimum before the one
    factorisation at its final size."""

    def __init__(self, cov: np.ndarray, a: np.ndarray, root: np.ndarray,
                 residual: np.ndarray):
        self.cov, self.a, self.root, self.d2 = cov, a, root, residual**2

    def solve(self, free: np.ndarray, rhs: np.ndarray | None = None) -> np.ndarray | None:
        rhs = self.a[free] if rhs is None else rhs
        root, d2 = self.root[free], self.d2[free]
        scaled = root / d2[:, None]
        try:
            small = sla.cho_factor(np.eye(root.shape[1]) + root.T @ scaled, check_finite=False)
        except np.linalg.LinAlgError:
            return None

        def precondition(v):
            return v / d2 - scaled @ sla.cho_solve(small, scaled.T @ v, check_finite=False)

        block = self.cov[np.ix_(free, free)]
        columns = rhs.reshape(free.size, -1)
        out = np.empty(columns.shape)
        for j in range(columns.shape[1]):
            b = columns[:, j]
            x, r = np.zeros(free.size), b.copy()
            z = precondition(r)
            p, rz, target = z.copy(), float(r @ z), _CG_TOLERANCE * float(np.linalg.norm(b))
            for _ in range(_CG_STEPS):
                q = block @ p
                alpha = rz / float(p @ q)
                x += alpha * p
                r -= alpha * q
                if np.linalg.norm(r) <= target:
                    break
                z = precondition(r)
                rz, previous = float(r @ z), rz
                p = z + (rz / previous) * p
            else:
                return None
            out[:, j] = x
        return out.reshape(rhs.shape)

    def product(self, y: np.ndarray) -> np.ndarray:
        return self.cov @ y


def _exact_system(cov: np.ndarray | LowRankCovariance, a: np.ndarray):
    """The pivoting's ``Sigma_FF`` solves on the exact covariance: Cholesky factors and Schur
    updates of a dense matrix, Woodbury for a :class:`LowRankCovariance`."""
    return cov.system(a) if isinstance(cov, LowRankCovariance) else _FreeSetSolver(cov, a)
