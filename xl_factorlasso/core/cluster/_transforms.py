"""Optional transform of the dependence matrix before clustering: removal of the common mode.

``remove_pc1`` (factorlasso 1.0.6's ``ClusterCorrelationTransform.REMOVE_PC1``): for the
dependence matrix ``R`` with largest eigenpair ``(l1, v1)``, ``Q = R - l1 v1 v1'`` rescaled to
unit diagonal. A response whose residual variance ``Q_ii`` is at most ``1e-12`` is kept as an
isolated series (zero row, unit diagonal). A missing pair counts as 0 before the deflation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ._choices import ClusterCorrelationTransform, parse_choice

__all__ = [
    "ClusterCorrelationTransformResult",
    "apply_cluster_correlation_transform",
    "remove_first_principal_component",
]

# A correlation may exceed 1 by round-off, not by more; a residual variance below the floor
# is zero (the response is spanned by the common mode).
_TOLERANCE = 1e-10
_VARIANCE_FLOOR = 1e-12


@dataclass(frozen=True)
class ClusterCorrelationTransformResult:
    """Residual correlation after removing the common mode, and what was removed.

    Attributes
    ----------
    correlation : pandas.DataFrame
        Residual dependence restandardised to unit diagonal.
    removed_eigenvalue : float
        Largest eigenvalue of the input (the mode removed).
    removed_variance_share : float
        That eigenvalue over the trace of the input.
    minimum_residual_variance : float
        Smallest residual variance before restandardisation.
    eigengap : float
        Largest minus second-largest eigenvalue (NaN for one response).
    dominant_component_unique : bool
        Whether the eigengap exceeds ``1e-10 * max(1, |removed_eigenvalue|)``.
    missing_offdiagonal_pairs : int
        Pairs missing in the input (read as 0).
    isolated_assets : tuple
        Labels whose residual variance is at the floor.
    """

    correlation: pd.DataFrame
    removed_eigenvalue: float
    removed_variance_share: float
    minimum_residual_variance: float
    eigengap: float
    dominant_component_unique: bool
    missing_offdiagonal_pairs: int
    isolated_assets: tuple


def _checked_matrix(corr_matrix) -> tuple[np.ndarray, int]:
    """The matrix as a symmetric array with unit diagonal, missing pairs at 0, and their count."""
    if not isinstance(corr_matrix, pd.DataFrame):
        raise TypeError("corr_matrix must be a pandas DataFrame (labelled by response)")
    rows, cols = corr_matrix.shape
    if rows != cols:
        raise ValueError(f"corr_matrix must be square, got shape {corr_matrix.shape!r}")
    if rows == 0:
        raise ValueError("corr_matrix must contain at least one asset")
    if not corr_matrix.index.equals(corr_matrix.columns):
        raise ValueError("corr_matrix index and column labels must match in the same order")
    if not corr_matrix.index.is_unique:
        raise ValueError("corr_matrix labels must be unique")
    try:
        values = corr_matrix.to_numpy(dtype=float, copy=True)
    except (TypeError, ValueError) as err:
        raise ValueError("corr_matrix values must be numeric") from err
    if not np.isfinite(np.diag(values)).all():
        raise ValueError("corr_matrix diagonal must be finite")
    off = ~np.eye(rows, dtype=bool)
    if np.isinf(values[off]).any():
        raise ValueError("corr_matrix off-diagonal values must be finite or NaN")
    missing = np.isnan(values)
    missing = missing | missing.T
    n_missing = int(np.count_nonzero(np.triu(missing, k=1)))
    values[missing] = 0.0
    values = 0.5 * (values + values.T)
    np.fill_diagonal(values, 1.0)
    largest = float(np.max(np.abs(values)))
    if largest > 1.0 + _TOLERANCE:
        raise ValueError(
            "corr_matrix contains a correlation materially outside [-1, 1]: "
            f"maximum absolute value {largest:.16g}"
        )
    return np.clip(values, -1.0, 1.0), n_missing


def remove_first_principal_component(
    corr_matrix: pd.DataFrame,
) -> ClusterCorrelationTransformResult:
    """Remove the dominant eigencomponent of a dependence matrix and restandardise.

    Parameters
    ----------
    corr_matrix : pandas.DataFrame, shape (N, N)
        Signed dependence matrix labelled by response (index equal to columns).

    Returns
    -------
    ClusterCorrelationTransformResult

    Raises
    ------
    TypeError
        ``corr_matrix`` is not a DataFrame.
    ValueError
        Not square, empty, labels not matching or not unique, not numeric, a non-finite
        diagonal, an infinite entry, a correlation beyond 1 by more than round-off, or a
        residual variance materially negative (the input is not a correlation matrix).
    """
    values, n_missing = _checked_matrix(corr_matrix)
    labels = corr_matrix.index
    n = len(values)
    if n == 1:
        return ClusterCorrelationTransformResult(
            pd.DataFrame(np.identity(1), index=labels, columns=corr_matrix.columns),
            0.0, 0.0, 1.0, float("nan"), True, n_missing, (),
        )
    eigenvalues, eigenvectors = np.linalg.eigh(values)  # ascending
    top = float(eigenvalues[-1])
    v1 = eigenvectors[:, -1]
    residual = values - top * np.outer(v1, v1)
    residual = 0.5 * (residual + residual.T)
    variance = np.diag(residual).copy()
    lowest = float(np.min(variance))
    if lowest < -_TOLERANCE:
        raise ValueError(
            "PC1 removal produced a materially negative residual variance: "
            f"minimum {lowest:.16g} (the input is not a correlation matrix)"
        )
    variance = np.maximum(variance, 0.0)
    live = variance > _VARIANCE_FLOOR
    out = np.zeros_like(residual)
    scale = np.sqrt(variance[live])
    out[np.ix_(live, live)] = residual[np.ix_(live, live)] / np.outer(scale, scale)
    out = 0.5 * (out + out.T)
    np.fill_diagonal(out, 1.0)
    largest = float(np.max(np.abs(out)))
    if largest > 1.0 + _TOLERANCE:
        raise ValueError(
            "PC1 removal produced a correlation materially outside [-1, 1]: "
            f"maximum absolute value {largest:.16g}"
        )
    out = np.clip(out, -1.0, 1.0)
    np.fill_diagonal(out, 1.0)
    gap = float(eigenvalues[-1] - eigenvalues[-2])
    return ClusterCorrelationTransformResult(
        correlation=pd.DataFrame(out, index=labels, columns=corr_matrix.columns),
        removed_eigenvalue=top,
        removed_variance_share=top / float(np.trace(values)),
        minimum_residual_variance=lowest,
        eigengap=gap,
        dominant_component_unique=gap > _TOLERANCE * max(1.0, abs(top)),
        missing_offdiagonal_pairs=n_missing,
        isolated_assets=tuple(labels[~live].tolist()),
    )


def apply_cluster_correlation_transform(corr_matrix: pd.DataFrame, transform="none"):
    """The dependence matrix that cluster discovery reads.

    Parameters
    ----------
    corr_matrix : pandas.DataFrame
        Dependence matrix labelled by response.
    transform : ClusterCorrelationTransform or str, default "none"
        ``"none"`` returns ``corr_matrix`` itself (no copy, no check); ``"remove_pc1"`` the
        residual correlation of :func:`remove_first_principal_component`.

    Returns
    -------
    pandas.DataFrame
    """
    choice = parse_choice(ClusterCorrelationTransform, transform, "cluster_correlation_transform")
    if choice is ClusterCorrelationTransform.NONE:
        return corr_matrix
    return remove_first_principal_component(corr_matrix).correlation
