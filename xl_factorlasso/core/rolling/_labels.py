"""Cluster labels that stay the same across dates, so "cluster 3" can be followed in time.

Each date's clustering labels its clusters arbitrarily. The clusters of a date are matched to
the previous date's by maximum overlap (number of assets in common): a Hungarian assignment
(``scipy.optimize.linear_sum_assignment``) on the contingency table. A matched cluster with a
positive overlap inherits the previous label; every other cluster gets a fresh label, larger
than any label used before, so a label never changes meaning.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["stable_cluster_labels"]


def stable_cluster_labels(
    current: pd.Series, previous: pd.Series | None, next_label: int = 1
) -> tuple[pd.Series, int]:
    """Relabel ``current`` to agree with ``previous`` by maximum overlap.

    Parameters
    ----------
    current : pandas.Series
        Asset -> cluster label of this date (any hashable labels).
    previous : pandas.Series or None
        Asset -> stable label of the previous date (None: the first date).
    next_label : int, default 1
        The first fresh label to hand out.

    Returns
    -------
    labels : pandas.Series of int
        Asset -> stable label, on ``current``'s index.
    next_label : int
        The next fresh label after this date.

    Notes
    -----
    Fresh labels go to unmatched clusters in the order of their first asset in ``current``,
    so the result does not depend on how the clustering happened to number its clusters.
    """
    # Imported here: scipy.optimize is heavy and a fit without clusters never needs it.
    from scipy.optimize import linear_sum_assignment

    codes, uniques = pd.factorize(current, sort=False)  # order of first appearance
    mapping = np.full(len(uniques), -1, dtype=np.int64)
    if previous is not None and len(previous):
        if current.index.equals(previous.index):  # (the usual case: no label lookups)
            prev_codes, prev_uniques = pd.factorize(previous, sort=False)
            mine = codes
        else:
            common = current.index.intersection(previous.index)
            prev_codes, prev_uniques = pd.factorize(previous.loc[common], sort=False)
            mine = codes[current.index.get_indexer(common)]
        table = np.zeros((len(uniques), len(prev_uniques)), dtype=np.int64)
        np.add.at(table, (mine, prev_codes), 1)
        rows, cols = linear_sum_assignment(table, maximize=True)
        for r, c in zip(rows, cols, strict=True):
            if table[r, c] > 0:
                mapping[r] = int(prev_uniques[c])
    for k in range(len(uniques)):
        if mapping[k] < 0:
            mapping[k] = next_label
            next_label += 1
    return pd.Series(mapping[codes], index=current.index, name="cluster"), next_label
