"""EWMA statistics and hierarchical clustering of responses."""

from ._ewm import covariance_to_correlation, ewm_correlation, ewm_covariance, ewm_lambda, ewm_mean
from ._hierarchical import (
    ClusterResult,
    cluster_from_correlation,
    pairwise_correlation,
    response_correlation,
)

__all__ = [
    "ClusterResult",
    "cluster_from_correlation",
    "covariance_to_correlation",
    "ewm_correlation",
    "ewm_covariance",
    "ewm_lambda",
    "ewm_mean",
    "pairwise_correlation",
    "response_correlation",
]
