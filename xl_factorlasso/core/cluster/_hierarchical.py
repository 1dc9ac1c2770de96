"""Hierarchical clustering of responses for HCGL / FCGL (groups discovered from the data)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.linalg.blas import dsyrk

from ._choices import DistanceTransform, parse_choice
from ._ewm import ewm_correlation
from ._linkage import (
    NN_CHAIN_METHODS,
    fcluster_distance,
    fcluster_maxclust,
    linkage_square,
    mirror_upper,
)

__all__ = [
    "ClusterResult",
    "cluster_from_correlation",
    "compute_clusters_from_corr_matrix",
    "correlation_from_gram",
    "correlation_distance",
    "compiled_linkage",
    "pairwise_correlation",
    "response_correlation",
]

# Rows of the panel centred at a time for the Gram: a few MB, so the centred copy never
# approaches the size of the panel (one block's SYRK still runs at full speed).
_CENTRING_BLOCK_BYTES = 8 * 2**20
_LINKAGE_METHODS = ("single", "complete", "average", "weighted", "centroid", "median", "ward")

# Whether SciPy's compiled linkage replaces the numpy one (per thread: a Dask worker may run
# blocks in several threads).
_COMPILED = threading.local()


@contextmanager
def compiled_linkage() -> Iterator[None]:
    """Use ``scipy.cluster.hierarchy.linkage`` for every method inside the ``with`` block.

    The numpy nearest-neighbour chain of :mod:`._linkage` gives SciPy's matrix bit for bit
    without importing ``scipy.cluster`` (~25 MB, ~0.2 s), the right trade for one fit; a job
    clustering at many dates (rolling fits) pays that import once and saves the Python loop
    (ward at 500 responses: ~18 ms vs ~2 ms per clustering).
    """
    previous = getattr(_COMPILED, "on", False)
    _COMPILED.on = True
    try:
        yield
    finally:
        _COMPILED.on = previous


@dataclass(frozen=True)
class ClusterResult:
    """A partition of the responses.

    Attributes
    ----------
    labels : pandas.Series
        1-based cluster label per response.
    linkage : numpy.ndarray
        SciPy linkage matrix, shape (N - 1, 4); empty for a single response.
    cutoff : float
        Dendrogram height of the cut.
    """

    labels: pd.Series
    linkage: np.ndarray
    cutoff: float


def response_correlation(y: pd.DataFrame | np.ndarray, span: float | None = None) -> pd.DataFrame:
    """Correlation of (centred) responses; NaN marks a missing observation.

    ``span=None`` gives the pairwise-complete sample correlation (pandas ``corr``), a span the
    EWMA correlation of :func:`~xl_factorlasso.core.cluster.ewm_correlation`.
    """
    frame = y if isinstance(y, pd.DataFrame) else pd.DataFrame(np.asarray(y, dtype=float))
    a = frame.to_numpy(dtype=float)
    corr = pairwise_correlation(a) if span is None else ewm_correlation(a, span)
    return pd.DataFrame(corr, index=frame.columns, columns=frame.columns)


def pairwise_correlation(a: np.ndarray) -> np.ndarray:
    """Pearson correlation of every pair of columns over the rows where both are observed.

    Equal to pandas ``DataFrame.corr()`` (NaN for a pair with fewer than two common rows or no
    variance), computed with a few matrix products instead of a loop over pairs.
    """
    a = np.asarray(a, dtype=float)
    if len(a) < 2 or a.shape[1] == 0:  # no pair has two rows
        return np.full((a.shape[1], a.shape[1]), np.nan)
    sums = a.sum(axis=0)  # finite only if every value is (inf and NaN propagate)
    if np.isfinite(sums).all():  # one Gram instead of four
        corr = _normalise(_centred_gram(a, sums / len(a)), len(a))  # the mean, as a.mean
        return mirror_upper(corr).T  # symmetric: its transpose is the C-ordered same matrix
    valid = np.isfinite(a)
    v = valid.astype(float)
    z = np.where(valid, a, 0.0)
    del valid
    # numpy's matmul forms a product of an array with its own transpose by SYRK
    n = v.T @ v  # common rows per pair
    sx = z.T @ v  # sx[i, j] = sum of column i over rows common with j
    sxy = z.T @ z
    z *= z  # in place: no third T x N temporary
    sxx = z.T @ v
    del z, v
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = sxy - sx * sx.T / n
        var = sxx - sx**2 / n
        corr = cov / np.sqrt(var * var.T)
    corr[(n < 2) | ~np.isfinite(corr)] = np.nan
    return np.clip(corr, -1.0, 1.0)


def _centred_gram(a: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Upper triangle of ``C'C`` for ``C = a - mean`` (the lower triangle is not set).

    SYRK (half a general product's flops) on blocks of rows centred one at a time, so the only
    T x N-sized temporary is a block; each block is C-contiguous, i.e. its transpose is the
    Fortran-ordered N x rows matrix that BLAS reads without a copy.
    """
    rows = max(1, _CENTRING_BLOCK_BYTES // (8 * max(a.shape[1], 1)))
    gram = None
    for start in range(0, len(a), rows):
        block = np.subtract(a[start : start + rows], mean, order="C")
        if gram is None:
            gram = dsyrk(1.0, block.T)
        else:
            gram = dsyrk(1.0, block.T, beta=1.0, c=gram, overwrite_c=True)
    return gram


def _normalise(gram: np.ndarray, n_rows: int, tile: int = 256) -> np.ndarray:
    """:func:`correlation_from_gram` in place on the upper triangle of ``gram``.

    One pass over row blocks: ``g_ij / (sd_i sd_j)`` (the product formed as ``np.outer``
    forms it), non-finite to NaN, clipped to [-1, 1]; the block's own temporaries only.
    """
    n = len(gram)
    if n_rows < 2 or n == 0:
        gram[:] = np.nan
        return gram
    with np.errstate(invalid="ignore"):  # a carried Gram's diagonal may cancel below 0
        sd = np.sqrt(np.diag(gram))
    # No product sd_i sd_j is 0 when the smallest square is not, and |g_ij| <= (g_ii + g_jj)/2
    # is finite: no ratio can be infinite, so the search for one is skipped.
    lowest = float(sd.min())
    exact = bool(np.isfinite(sd).all()) and lowest * lowest > 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        for i in range(0, n, tile):
            block = gram[i : i + tile, i:]
            block /= np.outer(sd[i : i + tile], sd[i:])
            if not exact:
                block[np.isinf(block)] = np.nan
            np.clip(block, -1.0, 1.0, out=block)
    return gram


def correlation_from_gram(gram: np.ndarray, n_rows: int) -> np.ndarray:
    """:func:`pairwise_correlation` of a complete panel from its centred Gram ``C'C`` (N x N)
    and its number of rows, so a Gram kept up to date row by row (the rolling fit) gives
    the same matrix as the panel. ``gram`` is not modified; a new symmetric array is
    returned (computed from its upper triangle)."""
    return mirror_upper(_normalise(np.array(gram, dtype=float), n_rows))


def correlation_distance(rho: np.ndarray, distance_transform="one_minus_rho") -> np.ndarray:
    """Square distance matrix of a correlation matrix, zero diagonal.

    ``rho`` is clipped to [-1, 1] (a missing entry must already be replaced), then mapped by
    ``"one_minus_rho"`` (``1 - rho``), ``"chord"`` (``sqrt(2 (1 - rho))``) or ``"arccos"``.
    """
    transform = parse_choice(DistanceTransform, distance_transform, "distance_transform")
    d = np.clip(rho, -1.0, 1.0)
    _to_distance(d, transform)
    np.fill_diagonal(d, 0.0)
    return d


def _to_distance(d: np.ndarray, transform: DistanceTransform) -> None:
    """The distance of clipped correlations ``d``, in place (the operations of
    :func:`correlation_distance`, in its order)."""
    if transform is DistanceTransform.ONE_MINUS_RHO:
        np.subtract(1.0, d, out=d)
    elif transform is DistanceTransform.CHORD:
        np.subtract(1.0, d, out=d)
        d *= 2.0
        np.maximum(d, 0.0, out=d)
        np.sqrt(d, out=d)
    else:
        np.arccos(d, out=d)


def _square_distance(rho: np.ndarray, transform: DistanceTransform,
                     tile: int = 256) -> np.ndarray:
    """Symmetric distance matrix from the upper triangle of the correlations ``rho`` (which
    is not modified): NaN as 0, clipped, transformed, zero diagonal; one pass over ``rho``."""
    n = len(rho)
    d = np.empty((n, n))
    for i in range(0, n, tile):
        block = d[i : i + tile, i:]
        np.clip(rho[i : i + tile, i:], -1.0, 1.0, out=block)  # +-inf to +-1, NaN kept
        block[np.isnan(block)] = 0.0
        _to_distance(block, transform)
    np.fill_diagonal(d, 0.0)
    return mirror_upper(d)


def cluster_from_correlation(
    corr: pd.DataFrame,
    *,
    cutoff_fraction: float = 0.5,
    n_clusters: int | None = None,
    linkage_method: str = "ward",
    distance_transform="one_minus_rho",
) -> ClusterResult:
    """Cluster responses on a distance of their correlation.

    The distance is :func:`correlation_distance` (``1 - rho`` by default; only the upper
    triangle is read, as SciPy's ``squareform``). The dendrogram (``linkage_method``, Ward by
    default) is cut at ``cutoff_fraction * max(pairwise distance)``, or into at most
    ``n_clusters`` clusters (clamped to the number of responses; ``cutoff`` is then the last
    accepted merge height). A missing correlation counts as 0.
    """
    if linkage_method not in _LINKAGE_METHODS:
        raise ValueError(
            f"linkage_method: {linkage_method!r} is not one of {', '.join(_LINKAGE_METHODS)}"
        )
    if not (0.0 < cutoff_fraction <= 1.0):
        raise ValueError(f"cutoff_fraction must be in (0, 1], got {cutoff_fraction!r}")
    transform = parse_choice(DistanceTransform, distance_transform, "distance_transform")
    names = corr.index
    n = len(names)
    if n == 1:
        return ClusterResult(pd.Series([1], index=names, name="cluster"), np.empty((0, 4)), 0.0)
    # the upper triangle only, as scipy's squareform reads it (mirrored onto the lower one)
    distance = _square_distance(corr.to_numpy(dtype=float), transform)
    largest = float(distance.max())  # the diagonal's 0 is no larger: distances are >= 0
    if linkage_method in NN_CHAIN_METHODS and not getattr(_COMPILED, "on", False):
        # scipy's result, without scipy.cluster; works in the square matrix it is given
        link = linkage_square(distance, linkage_method)
    else:
        from scipy.cluster import hierarchy  # only the rarer methods need scipy (~25 MB)

        # scipy's condensed form: the upper triangle, row by row
        condensed = np.concatenate([distance[i, i + 1 :] for i in range(n - 1)])
        del distance
        link = hierarchy.linkage(condensed, method=linkage_method)
    if n_clusters is None:
        cutoff = float(cutoff_fraction * largest)
        labels = fcluster_distance(link, n, cutoff)
    else:
        k = min(int(n_clusters), n)
        labels = fcluster_maxclust(link, n, k)
        merges = n - len(np.unique(labels))
        cutoff = float(link[merges - 1, 2]) if merges > 0 else 0.0
    return ClusterResult(pd.Series(labels, index=names, name="cluster"), link, cutoff)


def compute_clusters_from_corr_matrix(
    corr_matrix: pd.DataFrame,
    cutoff_fraction: float = 0.5,
    linkage_method: str = "ward",
    distance_transform="one_minus_rho",
    n_clusters: int | None = None,
) -> tuple[pd.Series, np.ndarray, float]:
    """Hierarchical clustering from a correlation matrix, as factorlasso's function of this name.

    Parameters
    ----------
    corr_matrix : pandas.DataFrame, shape (N, N)
        Correlation (or other signed dependence) matrix labelled by response; NaN counts as 0.
    cutoff_fraction : float, default 0.5
        Cut at this fraction of the largest pairwise distance, in (0, 1].
    linkage_method : str, default "ward"
        ``single``, ``complete``, ``average``, ``weighted``, ``centroid``, ``median`` or
        ``ward``.
    distance_transform : DistanceTransform or str, default "one_minus_rho"
        ``"one_minus_rho"``, ``"chord"`` or ``"arccos"`` (see :func:`correlation_distance`).
        A ``cutoff_fraction`` tuned for one transform does not carry over to another.
    n_clusters : int, optional
        Cut into at most this many clusters instead (clamped to N).

    Returns
    -------
    clusters : pandas.Series
        1-based label per response (SciPy's ``fcluster`` numbering).
    linkage : numpy.ndarray, shape (N - 1, 4)
        SciPy linkage matrix.
    cutoff : float
        Height of the cut.
    """
    if n_clusters is not None:
        if isinstance(n_clusters, bool) or not isinstance(n_clusters, (int, np.integer)):
            raise ValueError(f"n_clusters must be an integer or None, got {n_clusters!r}")
        if n_clusters < 1:
            raise ValueError(f"n_clusters must be at least 1, got {n_clusters!r}")
    if not isinstance(corr_matrix, pd.DataFrame):
        corr_matrix = pd.DataFrame(np.asarray(corr_matrix, dtype=float))
    found = cluster_from_correlation(
        corr_matrix.set_axis(corr_matrix.columns, axis=0),
        cutoff_fraction=cutoff_fraction,
        n_clusters=n_clusters,
        linkage_method=linkage_method,
        distance_transform=distance_transform,
    )
    return found.labels.rename(None), found.linkage, found.cutoff
