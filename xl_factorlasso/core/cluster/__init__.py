"""EWMA statistics, dependence measures and hierarchical clustering of responses."""

from ._choices import ClusterCorrelationTransform, DependenceMeasure, DistanceTransform
from ._dependence import compute_dependence_matrix, compute_gerber_matrix
from ._ewm import covariance_to_correlation, ewm_correlation, ewm_covariance, ewm_lambda, ewm_mean
from ._hierarchical import (
    ClusterResult,
    cluster_from_correlation,
    compute_clusters_from_corr_matrix,
    correlation_distance,
    pairwise_correlation,
    response_correlation,
)
from ._transforms import (
    ClusterCorrelationTransformResult,
    apply_cluster_correlation_transform,
    remove_first_principal_component,
)

__all__ = [
    "ClusterCorrelationTransform",
    "ClusterCorrelationTransformResult",
    "ClusterResult",
    "DependenceMeasure",
    "DistanceTransform",
    "apply_cluster_correlation_transform",
    "cluster_from_correlation",
    "compute_clusters_from_corr_matrix",
    "compute_dependence_matrix",
    "compute_gerber_matrix",
    "correlation_distance",
    "covariance_to_correlation",
    "ewm_correlation",
    "ewm_covariance",
    "ewm_lambda",
    "ewm_mean",
    "pairwise_correlation",
    "remove_first_principal_component",
    "response_correlation",
]
