"""Risk attribution of a portfolio: where its volatility comes from (Euler decomposition).

With weights ``w`` and a covariance ``Sigma``, the portfolio volatility
``sigma_p = sqrt(w' Sigma w)`` is 1-homogeneous in ``w``, so Euler's theorem splits it exactly
into per-asset parts ``w_i (Sigma w)_i / sigma_p``. Under a factor model
``Sigma = B Sigma_f B' + D`` the same argument in the exposures ``x = B'w`` splits it into one
part per factor, ``x_k (Sigma_f x)_k / sigma_p``, plus the specific part ``w'Dw / sigma_p``:

    sigma_p = sum_k x_k (Sigma_f x)_k / sigma_p  +  sum_i w_i^2 D_i / sigma_p
            = sum_i w_i (Sigma w)_i / sigma_p

(the same split skfolio's ``predicted_factor_attribution`` reports). Nothing here forms the
n x n matrix of a factor model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ._factor_covariance import FactorCovariance

__all__ = ["RiskAttribution", "covariance_risk_attribution", "risk_attribution"]


@dataclass(frozen=True)
class RiskAttribution:
    """A portfolio's volatility and its Euler split, per factor and per asset.

    Volatilities and contributions are in the units of the covariance times
    ``sqrt(annualization_factor)``; variances times ``annualization_factor``. A *contribution*
    is a part of the total volatility (the parts sum to ``total_volatility``); a *share* is a
    contribution divided by ``total_volatility`` (the shares sum to 1; equal to the part of the
    variance). ``systematic_volatility = sqrt(systematic_variance)`` is the volatility of the
    factor part alone; it is not its contribution (``systematic_variance / total_volatility``).

    Attributes
    ----------
    total_variance, total_volatility : float
        ``w' Sigma w`` and its square root.
    systematic_variance, systematic_volatility : float or None
        ``x' Sigma_f x`` (``x = B'w``) and its square root; None without a factor model.
    specific_variance, specific_volatility : float or None
        ``w' D w`` and its square root; None without a factor model.
    exposures : pandas.Series or None
        ``x = B'w``, by factor; None without a factor model.
    factors : pandas.DataFrame or None
        One row per factor: ``exposure`` (``x_k``), ``volatility`` (``sqrt(Sigma_f[k, k])``),
        ``correlation`` (of the factor with the portfolio, ``(Sigma_f x)_k / (vol_k sigma_p)``;
        NaN for a factor of zero variance), ``contribution`` (``x_k (Sigma_f x)_k / sigma_p``),
        ``share``. None without a factor model.
    assets : pandas.DataFrame
        One row per asset: ``weight``, ``volatility`` (``sqrt(Sigma[i, i])``), ``contribution``
        (``w_i (Sigma w)_i / sigma_p``), ``share``; with a factor model also ``systematic``
        (``w_i (B Sigma_f x)_i / sigma_p``) and ``specific`` (``w_i^2 D_i / sigma_p``), which sum
        to ``contribution``.
    annualization_factor : float
    """

    total_variance: float
    total_volatility: float
    systematic_variance: float | None
    systematic_volatility: float | None
    specific_variance: float | None
    specific_volatility: float | None
    exposures: pd.Series | None
    factors: pd.DataFrame | None
    assets: pd.DataFrame
    annualization_factor: float

    def summary(self) -> pd.DataFrame:
        """The split by component.

        Returns
        -------
        pandas.DataFrame
            Rows ``systematic``, ``specific``, ``total`` (only ``total`` without a factor model),
            columns ``variance``, ``volatility``, ``contribution``, ``share``. The systematic and
            specific contributions sum to the total volatility.
        """
        total = self.total_volatility
        rows = {}
        if self.systematic_variance is not None:
            for name in ("systematic", "specific"):
                variance = getattr(self, f"{name}_variance")
                rows[name] = (variance, getattr(self, f"{name}_volatility"), variance / total,
                              variance / self.total_variance)
        rows["total"] = (self.total_variance, total, total, 1.0)
        return pd.DataFrame.from_dict(
            rows, orient="index", columns=["variance", "volatility", "contribution", "share"])


def _factor(annualization_factor) -> float:
    try:
        value = float(annualization_factor)
    except (TypeError, ValueError):
        value = np.nan
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"annualization_factor must be a number > 0, got {annualization_factor!r}")
    return value


def _weights(weights, assets: pd.Index) -> np.ndarray:
    """The weights as a vector in the order of ``assets``, aligned by label for a Series."""
    if isinstance(weights, pd.DataFrame):
        if weights.shape[1] != 1:
            raise ValueError(f"weights must be one column or a Series, got {weights.shape[1]} "
                             "columns")
        weights = weights.iloc[:, 0]
    if isinstance(weights, pd.Series):
        unknown = [a for a in weights.index if a not in assets]
        if unknown:
            raise ValueError(f"weights: asset {unknown[0]!r} is not in the covariance")
        if weights.index.has_duplicates:
            dup = weights.index[weights.index.duplicated()][0]
            raise ValueError(f"weights: asset {dup!r} appears twice")
        missing = [a for a in assets if a not in weights.index]
        if missing:
            raise ValueError(f"weights: no weight for asset {missing[0]!r}")
        weights = weights.reindex(assets)
    try:
        w = np.asarray(weights, dtype=float)
    except (TypeError, ValueError) as err:
        raise ValueError(f"weights must be numbers ({err})") from None
    if w.ndim != 1 or w.shape[0] != len(assets):
        raise ValueError(f"weights must have one value per asset ({len(assets)}), got shape "
                         f"{w.shape}")
    bad = np.flatnonzero(~np.isfinite(w))
    if bad.size:
        raise ValueError(f"weights: asset {assets[bad[0]]!r} has a non-finite weight "
                         f"{float(w[bad[0]])}")
    return w


def _total(variance: float) -> float:
    if not variance > 0:
        raise ValueError(f"the portfolio's variance is {variance:.3g}: its volatility is 0 (or the "
                         "covariance is not positive semidefinite), so risk contributions are "
                         "undefined")
    return float(np.sqrt(variance))


def _finite(values: np.ndarray, what: str, labels) -> None:
    bad = np.argwhere(~np.isfinite(values))
    if bad.size:
        where = ", ".join(repr(labels[i][j]) for i, j in enumerate(bad[0]))
        raise ValueError(f"{what} has a non-finite value at {where}")


def risk_attribution(cov: FactorCovariance, weights, *,
                     annualization_factor: float = 1.0) -> RiskAttribution:
    """Euler risk attribution of a portfolio under a fitted factor model.

    Parameters
    ----------
    cov : FactorCovariance
        ``Sigma = B Sigma_f B' + diag(D)`` (e.g. from :func:`assemble_factor_covariance`).
    weights : pandas.Series or array-like of shape (n_assets,)
        A Series is aligned to ``cov.assets`` by label (every asset needs a weight, and every
        label must be an asset); an array is taken in the order of ``cov.assets``.
    annualization_factor : float, default 1.0
        Multiplies the variances (volatilities and contributions by its square root), e.g. 52
        for a covariance of weekly returns. Leave it at 1 for an already annualised ``cov``.

    Returns
    -------
    RiskAttribution
        With the factor table, the systematic/specific split and per-asset parts.

    Raises
    ------
    ValueError
        Misaligned or non-finite weights, non-finite model pieces, a negative residual
        variance, a bad ``annualization_factor``, or a portfolio of zero variance (its
        contributions are undefined); each named in the message.
    """
    if not isinstance(cov, FactorCovariance):
        raise ValueError(f"cov must be a FactorCovariance, got {type(cov).__name__}; for a "
                         "covariance matrix use covariance_risk_attribution")
    scale = _factor(annualization_factor)
    assets, factors = cov.assets, cov.factors
    if not (cov.factor_covariance.index.equals(factors)
            and cov.factor_covariance.columns.equals(factors)):
        raise ValueError("cov.factor_covariance must have the factors of cov.loadings, in the "
                         "same order, as rows and columns")
    if not cov.residual_variance.index.equals(assets):
        raise ValueError("cov.residual_variance must have the assets of cov.loadings, in the "
                         "same order")
    w = _weights(weights, assets)
    B = cov.loadings.to_numpy(dtype=float)
    sigma_f = cov.factor_covariance.to_numpy(dtype=float) * scale
    D = cov.residual_variance.to_numpy(dtype=float) * scale
    _finite(B, "cov.loadings", (assets, factors))
    _finite(sigma_f, "cov.factor_covariance", (factors, factors))
    _finite(D[:, None], "cov.residual_variance", (assets, ["residual_variance"]))
    if np.any(D < 0):
        i = int(np.argmin(D))
        raise ValueError(f"cov.residual_variance is negative ({D[i] / scale:g}) for asset "
                         f"{assets[i]!r}")

    x = B.T @ w  # exposures
    sigma_f_x = sigma_f @ x
    systematic_variance = float(x @ sigma_f_x)
    specific_parts = w * w * D
    specific_variance = float(specific_parts.sum())
    total_variance = systematic_variance + specific_variance
    total = _total(total_variance)

    factor_vol = np.sqrt(np.clip(np.diag(sigma_f), 0.0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        correlation = np.where(factor_vol > 0, sigma_f_x / (factor_vol * total), np.nan)
    factor_parts = x * sigma_f_x / total
    factor_table = pd.DataFrame({
        "exposure": x,
        "volatility": factor_vol,
        "correlation": correlation,
        "contribution": factor_parts,
        "share": factor_parts / total,
    }, index=factors)

    systematic_parts = w * (B @ sigma_f_x) / total
    specific_contrib = specific_parts / total
    asset_vol = np.sqrt(np.einsum("ij,jk,ik->i", B, sigma_f, B) + D)
    contribution = systematic_parts + specific_contrib
    asset_table = pd.DataFrame({
        "weight": w,
        "volatility": asset_vol,
        "contribution": contribution,
        "systematic": systematic_parts,
        "specific": specific_contrib,
        "share": contribution / total,
    }, index=assets)
    return RiskAttribution(
        total_variance=total_variance,
        total_volatility=total,
        systematic_variance=systematic_variance,
        systematic_volatility=float(np.sqrt(max(systematic_variance, 0.0))),
        specific_variance=specific_variance,
        specific_volatility=float(np.sqrt(specific_variance)),
        exposures=pd.Series(x, index=factors, name="exposure"),
        factors=factor_table,
        assets=asset_table,
        annualization_factor=scale,
    )


def covariance_risk_attribution(covariance, weights, *,
                                annualization_factor: float = 1.0) -> RiskAttribution:
    """Euler risk attribution of a portfolio under a covariance matrix (per asset only).

    Parameters
    ----------
    covariance : pandas.DataFrame or array-like of shape (n_assets, n_assets)
        Symmetric. A DataFrame's index gives the asset labels (its columns must be the same
        labels); an array's assets are numbered 0..n-1.
    weights : pandas.Series or array-like of shape (n_assets,)
        Aligned by label for a Series (as in :func:`risk_attribution`).
    annualization_factor : float, default 1.0
        Multiplies the covariance.

    Returns
    -------
    RiskAttribution
        ``factors``, ``exposures`` and the systematic/specific fields are None; ``assets`` has
        ``weight``, ``volatility``, ``contribution``, ``share``.

    Raises
    ------
    ValueError
        A covariance that is not square, symmetric (to 1e-10 relative) and finite, labels
        that differ between index and columns, a negative variance, misaligned or non-finite
        weights, or a portfolio of zero variance.
    """
    if isinstance(covariance, FactorCovariance):
        raise ValueError("covariance is a FactorCovariance: use risk_attribution for the factor "
                         "split, or pass covariance.covariance for the asset split only")
    scale = _factor(annualization_factor)
    if isinstance(covariance, pd.DataFrame):
        if not covariance.index.equals(covariance.columns):
            raise ValueError("covariance: its columns must be the same assets, in the same "
                             "order, as its rows")
        assets = covariance.index
        matrix = covariance.to_numpy(dtype=float)
    else:
        matrix = np.asarray(covariance, dtype=float)
        assets = pd.RangeIndex(matrix.shape[0]) if matrix.ndim == 2 else None
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"covariance must be a square matrix, got shape {matrix.shape}")
    _finite(matrix, "covariance", (assets, assets))
    if np.max(np.abs(matrix - matrix.T), initial=0.0) > 1e-10 * np.max(np.abs(matrix),
                                                                     initial=0.0):
        raise ValueError("covariance is not symmetric")
    variances = np.diag(matrix)
    if np.any(variances < 0):
        i = int(np.argmin(variances))
        raise ValueError(f"covariance has a negative variance {variances[i]:g} for asset "
                         f"{assets[i]!r}")
    w = _weights(weights, assets)
    matrix = matrix * scale
    sigma_w = matrix @ w
    total_variance = float(w @ sigma_w)
    total = _total(total_variance)
    contribution = w * sigma_w / total
    asset_table = pd.DataFrame({
        "weight": w,
        "volatility": np.sqrt(variances * scale),
        "contribution": contribution,
        "share": contribution / total,
    }, index=assets)
    return RiskAttribution(
        total_variance=total_variance, total_volatility=total,
        systematic_variance=None, systematic_volatility=None,
        specific_variance=None, specific_volatility=None,
        exposures=None, factors=None, assets=asset_table, annualization_factor=scale,
    )
