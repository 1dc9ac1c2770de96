"""Hierarchical clustering of responses for HCGL / FCGL (groups discovered from the data)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ._ewm import ewm_correlation
from ._linkage import NN_CHAIN_METHODS, fcluster_distance, fcluster_maxclust, linkage

__all__ = [
    "ClusterResult",
    "cluster_from_correlation",
    "pairwise_correlation",
    "response_correlation",
]

_LINKAGE_METHODS = ("single", "complete", "average", "weighted", "centroid", "median", "ward")


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
    valid = np.isfinite(a)
    if valid.all():  # one Gram instead of four (most panels have no gaps)
        centred = a - a.mean(axis=0)
        gram = centred.T @ centred
        with np.errstate(invalid="ignore", divide="ignore"):
            sd = np.sqrt(np.diag(gram))
            corr = gram / np.outer(sd, sd)
        corr[~np.isfinite(corr)] = np.nan
        if len(a) < 2:
            corr[:] = np.nan
        return np.clip(corr, -1.0, 1.0)
    v = valid.astype(float)
    z = np.where(valid, a, 0.0)
    n = v.T @ v  # common rows per pair
    sx = z.T @ v  # sx[i, j] = sum of column i over rows common with j
    sxx = (z * z).T @ v
    sxy = z.T @ z
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = sxy - sx * sx.T / n
        var = sxx - sx**2 / n
        corr = cov / np.sqrt(var * var.T)
    corr[(n < 2) | ~np.isfinite(corr)] = np.nan
    return np.clip(corr, -1.0, 1.0)


def cluster_from_correlation(
    corr: pd.DataFrame,
    *,
    cutoff_fraction: float = 0.5,
    n_clusters: int | None = None,
    linkage_method: str = "ward",
) -> ClusterResult:
    """Cluster responses on the distance ``1 - rho``.

    The dendrogram (``linkage_method``, Ward by default) is cut at
    ``cutoff_fraction * max(pairwise distance)``, or into at most ``n_clusters`` clusters
    (clamped to the number of responses; ``cutoff`` is then the last accepted merge height).
    A missing correlation counts as 0.
    """
    if linkage_method not in _LINKAGE_METHODS:
        raise ValueError(
            f"linkage_method: {linkage_method!r} is not one of {', '.join(_LINKAGE_METHODS)}"
        )
    if not (0.0 < cutoff_fraction <= 1.0):
        raise ValueError(f"cutoff_fraction must be in (0, 1], got {cutoff_fraction!r}")
    names = corr.index
    n = len(names)
    if n == 1:
        return ClusterResult(pd.Series([1], index=names, name="cluster"), np.empty((0, 4)), 0.0)
    rho = np.clip(np.nan_to_num(corr.to_numpy(dtype=float), nan=0.0), -1.0, 1.0)
    distance = 1.0 - rho
    np.fill_diagonal(distance, 0.0)
    # scipy's condensed form: the upper triangle, row by row
    condensed = ((distance + distance.T) / 2.0)[np.triu_indices(n, k=1)]
    if linkage_method in NN_CHAIN_METHODS:
        link = linkage(condensed, n, linkage_method)  # scipy's result, without scipy.cluster
    else:
        from scipy.cluster import hierarchy  # only the rarer methods need scipy (~25 MB)

        link = hierarchy.linkage(condensed, method=linkage_method)
    if n_clusters is None:
        cutoff = float(cutoff_fraction * np.max(condensed))
        labels = fcluster_distance(link, n, cutoff)
    else:
        k = min(int(n_clusters), n)
        labels = fcluster_maxclust(link, n, k)
        merges = n - len(np.unique(labels))
        cutoff = float(link[merges - 1, 2]) if merges > 0 else 0.0
    return ClusterResult(pd.Series(labels, index=names, name="cluster"), link, cutoff)
