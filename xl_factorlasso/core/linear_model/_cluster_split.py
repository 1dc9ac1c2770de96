"""FCGL's single-response clusters as the LASSO responses they are.

The FCGL objective is a sum over clusters, each with its own responses and blocks: the clusters
are independent problems. A cluster of one response ``i`` has blocks of one cell, and
``W_gj ||D_ij||_2 = W_gj |D_ij|``: it is a LASSO response with the L1 weights
``a omega_ij + (1 - a) W_g(i),j`` (``W`` the whole weight of each block, with its adaptive
factor; ``a`` the L1 share, ``omega`` its adaptive weights). Where the block iterations crawl
(a wide panel at a small penalty, :func:`~._homotopy.iterations_crawl`) those responses have
the LASSO's exact start and path on a singular Gram (:mod:`._homotopy`) and its certificate,
and the other clusters a CVXPY problem of their own size. On the (250, 500, 5) panel with
found clusters, the folds of ``LassoModelCV`` whose clusters were all single lost 5 of 20
scores, each after Clarabel's point (relative gap ~1e-6) and 20,000 polishing iterations.

:class:`~._certified.CertifiedSolver` splits a problem here only where it would otherwise skip
the fast engine for every cluster; each part is certified by its own solver and the answer's
``gap`` is the whole problem's.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ._engine import _row_subset
from ._penalty import PenaltySpec
from ._preparation import SufficientStats

__all__ = ["single_clusters", "split_problem"]


def single_clusters(spec: PenaltySpec) -> np.ndarray | None:
    """(N,) bool: the responses alone in their cluster, for a FCGL penalty (block geometry);
    None for any other penalty or when no cluster is single."""
    if spec.geometry != "block":
        return None
    groups = np.asarray(spec.groups)
    alone = np.bincount(groups)[groups] == 1
    return alone if alone.any() else None


def split_problem(stats: SufficientStats, spec: PenaltySpec,
                  rows: np.ndarray) -> tuple[SufficientStats, PenaltySpec]:
    """The statistics and penalty of the responses ``rows`` (a mask that takes whole
    clusters): a LASSO (cell geometry, L1 weights ``a omega + (1 - a) W``) when every cluster
    of ``rows`` is single, else FCGL on those clusters, renumbered, with their weights."""
    idx = np.flatnonzero(rows)
    sub_stats, sub = _row_subset(stats, spec, idx)  # (the rows' cells, groups and statistics)
    groups = sub.groups
    if (np.bincount(groups)[groups] == 1).all():
        # a cell's penalty: lambda (a omega_ij + (1 - a) W_gj) |D_ij| (a cooperative block's
        # two halves of one cell are |D_ij| too)
        a = float(spec.l1_weight)
        weight = a * spec.l1_weights()[idx] + (1.0 - a) * spec.block_weights()[groups]
        sub = replace(sub, geometry="cell", groups=None, group_weight=None, l1_weight=1.0,
                      cell_weight=weight, block_weight=None, cooperative=False)
    else:
        kept, codes = np.unique(groups, return_inverse=True)
        block_weight = None if spec.block_weight is None else \
            np.asarray(spec.block_weight)[kept]
        sub = replace(sub, groups=codes,
                      group_weight=np.asarray(spec.group_weight, dtype=float)[kept],
                      block_weight=block_weight)
    return sub_stats, sub
