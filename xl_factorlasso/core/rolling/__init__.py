"""Rolling re-estimation of the factor model through time, and its history of snapshots."""

from ._containers import CurrentFactorCovarData, RollingFactorCovarData
from ._dates import rebalance_positions
from ._estimator import ON_FAILURE, RollingLassoModel
from ._labels import stable_cluster_labels

__all__ = [
    "ON_FAILURE",
    "CurrentFactorCovarData",
    "RollingFactorCovarData",
    "RollingLassoModel",
    "rebalance_positions",
    "stable_cluster_labels",
]
