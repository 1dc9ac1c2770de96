"""Factors that are linear combinations of one another on the rows of a fit.

Where a factor column is a combination of others (two equal columns, one proportional to
another, ``MKT = MKT-RF + RF``), moving the loadings along that combination leaves every
fitted value, hence the objective's loss, unchanged: the loadings are not unique, and two
certified solves (a warm and a cold start, a rolling fit in one block and in several) can
differ by any amount along it. The fit goes on (the objective is still minimised); the user is
told which factors to look at.

The test is a pivoted Cholesky factorisation (LAPACK ``dpstrf``) of the Jacobi-scaled Gram: it
stops where the largest remaining diagonal, the share of a column's variance that the columns
already chosen do not explain (``1 - R^2``), falls below ``DEPENDENT_TOL``. Exact dependences
leave round-off there (1e-16 to 1e-13); real factors, however correlated, leave far more.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import lapack

# 1 - R^2 below which a factor counts as a combination of the others (round-off is ~1e-14)
DEPENDENT_TOL = 1e-10
# Above this many factors the test is skipped: its M^3 / 3 would cost more than it tells
DEPENDENT_MAX_FACTORS = 600


def dependence_testable(n_columns: int, n_rows: int) -> bool:
    """Whether :func:`dependent_columns` applies to ``n_columns`` live factors on ``n_rows``
    rows: at most ``DEPENDENT_MAX_FACTORS`` of them, and fewer than the rows less one (a
    demeaned panel of ``T`` rows has rank ``T - 1`` at most: beyond, dependence is a matter of
    counting). Callers ask first, to skip forming a Gram the test would ignore."""
    return n_columns <= DEPENDENT_MAX_FACTORS and n_columns < n_rows - 1


def dependent_columns(gram: np.ndarray, n_rows: int) -> list[int] | None:
    """Indices of a set of columns that are linearly dependent, ``[]`` when there is none,
    None when the test does not apply.

    Parameters
    ----------
    gram : numpy.ndarray, shape (M, M)
        ``X'WX`` of the demeaned (or raw) factors on the fit's rows, positive weights.
    n_rows : int
        The rows it sums. None where :func:`dependence_testable` says no for the live columns
        (or more than ``DEPENDENT_MAX_FACTORS`` columns in all).

    Returns
    -------
    list of int or None
        Sorted indices: the first column the factorisation found dependent and the columns
        that matter in its combination (coefficients above 1e-3 of the largest). Columns
        that are zero (a constant factor, once demeaned) are never named: their loadings are
        pinned.
    """
    m = gram.shape[0]
    diag = np.diagonal(gram)
    live = np.flatnonzero(diag > 0.0)
    if m > DEPENDENT_MAX_FACTORS or not dependence_testable(len(live), n_rows):
        return None
    if len(live) < 2:
        return []
    if len(live) < m:
        gram, diag = gram[np.ix_(live, live)], diag[live]
    scale = 1.0 / np.sqrt(diag)
    a = scale[:, None] * gram * scale  # (symmetric: its C order is LAPACK's column order)
    _, piv, rank, info = lapack.dpstrf(a, lower=1, tol=DEPENDENT_TOL)
    if info == 0 or not 0 < rank < len(live):
        return []
    piv = piv - 1  # LAPACK's pivots count from 1
    basis, j = piv[:rank], piv[rank]
    coef = np.linalg.lstsq(a[np.ix_(basis, basis)], a[basis, j], rcond=None)[0]
    big = np.abs(coef) > 1e-3 * max(np.abs(coef).max(), np.finfo(float).tiny)
    return sorted(int(live[k]) for k in (j, *basis[big]))


def equal_columns(values: np.ndarray, sums: np.ndarray | None = None) -> list[int]:
    """Two columns of ``values`` (T x M) equal on every row, missing cells alike, and not
    constant; ``[]`` if none: the test where :func:`dependent_columns` does not apply (more
    factors than rows, where LASSO's answer is unique only for columns in general position).
    Equal columns have equal sums bit for bit: only those are compared. ``sums``:
    ``values.sum(axis=0)`` when the caller has them (the preparation's), not changed."""
    if values.shape[1] < 2:
        return []
    with np.errstate(over="ignore", invalid="ignore"):  # (huge values: preparation says)
        # (nansum copies the panel: only where a column has a gap)
        sums = values.sum(axis=0) if sums is None else np.array(sums, dtype=float)
        gaps = np.isnan(sums)
        if gaps.any():
            sums[gaps] = np.nansum(values[:, gaps], axis=0)
    order = np.argsort(sums, kind="stable")
    for k in np.flatnonzero(sums[order][1:] == sums[order][:-1]):
        i, j = sorted((int(order[k]), int(order[k + 1])))
        a = values[:, i]
        if np.array_equal(a, values[:, j], equal_nan=True) and np.nanmax(a) > np.nanmin(a):
            return [i, j]
    return []
