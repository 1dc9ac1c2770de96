"""skfolio ``ReturnDistribution`` -> the core optimiser's covariance input."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..core.covariance import FactorCovariance

__all__ = ["core_covariance"]


def core_covariance(distribution, assets: np.ndarray | None):
    """The covariance of ``distribution`` (already restricted to the investable assets) in the
    form the core's ``MaximumDiversification(covariance=...)`` takes.

    With a factor model (``distribution.factor_model``) and a diagonal idiosyncratic
    covariance: a :class:`FactorCovariance` (loadings with the factor names as columns, the
    factor covariance, the idiosyncratic variances and the factor families), so the cone is
    ``B chol(Sigma_f)`` stacked with ``sqrt(D)`` and never n x n, and factor names and families
    are usable in ``linear_constraints``. Otherwise the dense covariance matrix (a DataFrame
    labelled by ``assets`` when the assets have names).
    """
    index = pd.Index(assets) if assets is not None else None
    model = distribution.factor_model
    if model is not None:
        idio = np.asarray(model.idio_covariance, dtype=float)
        if idio.ndim == 2 and not np.count_nonzero(idio - np.diag(np.diagonal(idio))):
            idio = np.diagonal(idio).copy()
        if idio.ndim == 1:
            loadings = np.asarray(model.loading_matrix, dtype=float)
            rows = index if index is not None else pd.RangeIndex(loadings.shape[0])
            factors = pd.Index([str(f) for f in model.factor_names])
            families = None
            if model.factor_families is not None:
                families = pd.Series([str(f) for f in model.factor_families], index=factors)
            return FactorCovariance(
                loadings=pd.DataFrame(loadings, index=rows, columns=factors),
                factor_covariance=pd.DataFrame(
                    np.asarray(model.factor_covariance, dtype=float), index=factors,
                    columns=factors),
                residual_variance=pd.Series(idio, index=rows),
                factor_families=families,
            )
    covariance = np.asarray(distribution.covariance, dtype=float)
    if index is None:
        return covariance
    return pd.DataFrame(covariance, index=index, columns=index)
