"""Factor-model covariance ``Sigma_y = B Sigma_x B' + D`` assembled from a fitted model."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .._notes import names_text

__all__ = ["FactorCovariance", "assemble_factor_covariance"]


@dataclass(frozen=True)
class FactorCovariance:
    """Pieces of a factor-model covariance, labelled.

    Attributes
    ----------
    loadings : pandas.DataFrame, shape (N, M)
        ``B``: assets down, factors across.
    factor_covariance : pandas.DataFrame, shape (M, M)
        ``Sigma_x``.
    residual_variance : pandas.Series, shape (N,)
        Diagonal of ``D``.
    factor_families : pandas.Series, sequence of str or None, default None
        Optional family label of each factor (a Series indexed by factor name, or one label per
        loadings column in order; a blank label means no family), e.g. ``"style"`` for
        momentum and value. In the optimiser's ``linear_constraints`` a family name stands for
        the sum of its factors' exposures (``"style <= -0.05"``), as in skfolio.
    """

    loadings: pd.DataFrame
    factor_covariance: pd.DataFrame
    residual_variance: pd.Series
    factor_families: pd.Series | None = None

    @property
    def assets(self) -> pd.Index:
        return self.loadings.index

    @property
    def factors(self) -> pd.Index:
        return self.loadings.columns

    @property
    def systematic_covariance(self) -> pd.DataFrame:
        """``B Sigma_x B'`` (N x N)."""
        b = self.loadings.to_numpy()
        cov = b @ self.factor_covariance.to_numpy() @ b.T
        return pd.DataFrame(cov, index=self.assets, columns=self.assets)

    @property
    def covariance(self) -> pd.DataFrame:
        """``B Sigma_x B' + diag(D)`` (N x N)."""
        cov = self.systematic_covariance.to_numpy().copy()
        cov[np.diag_indices_from(cov)] += self.residual_variance.to_numpy()
        return pd.DataFrame(cov, index=self.assets, columns=self.assets)

    @property
    def volatility(self) -> pd.DataFrame:
        """Total, systematic and residual volatility per asset (N x 3)."""
        b = self.loadings.to_numpy()
        systematic = np.einsum("ij,jk,ik->i", b, self.factor_covariance.to_numpy(), b)
        residual = self.residual_variance.to_numpy()
        return pd.DataFrame(
            {
                "total": np.sqrt(systematic + residual),
                "systematic": np.sqrt(np.maximum(systematic, 0.0)),
                "residual": np.sqrt(residual),
            },
            index=self.assets,
        )

    @classmethod
    def from_ols(cls, returns: pd.DataFrame, factors: pd.DataFrame) -> FactorCovariance:
        """Unpenalised time-series factor model (OLS with intercept per asset).

        ``Sigma_x`` is the sample covariance of the factors and ``D`` the residual variances,
        both with ``ddof=1``: skfolio's ``TimeSeriesFactorModel`` with a ``LinearRegression``.
        Inputs must be complete (no missing values).
        """
        design = np.column_stack([np.ones(len(factors)), factors.to_numpy(dtype=float)])
        coef, *_ = np.linalg.lstsq(design, returns.to_numpy(dtype=float), rcond=None)
        residual = returns.to_numpy(dtype=float) - design @ coef
        return cls(
            loadings=pd.DataFrame(coef[1:].T, index=returns.columns, columns=factors.columns),
            factor_covariance=factors.cov(),
            residual_variance=pd.Series(residual.var(axis=0, ddof=1), index=returns.columns),
        )

    def sqrt_components(self) -> tuple[np.ndarray, np.ndarray]:
        """Factors of ``Sigma_y = F F' + diag(d)**2`` with ``F = B chol(Sigma_x)`` (N x M).

        Returns ``(F, d)`` with ``d = sqrt(D)``, so ``||F' w||^2 + ||d * w||^2 = w' Sigma_y w``
        without ever forming an N x N factor. A rank-deficient ``Sigma_x`` is factored through
        its eigendecomposition instead of a Cholesky.
        """
        sigma = self.factor_covariance.to_numpy()
        try:
            root = np.linalg.cholesky(sigma)
        except np.linalg.LinAlgError:
            vals, vecs = np.linalg.eigh((sigma + sigma.T) / 2.0)
            root = vecs * np.sqrt(np.clip(vals, 0.0, None))
        return self.loadings.to_numpy() @ root, np.sqrt(self.residual_variance.to_numpy())


def fit_factor_covariance(x: pd.DataFrame, span, demean: bool) -> np.ndarray:
    """``Sigma_x = sum_t w_t x_t x_t'`` (M x M) of the factors prepared as a fit with ``span``
    and ``demean`` prepares them, ``w_t`` its loss weights normalised to sum to one (see
    :func:`assemble_factor_covariance`)."""
    from ..linear_model._preparation import coerce_panel, prepare_panel

    # Factors only: a dummy complete response leaves the factor preparation unchanged.
    xf, dummy = coerce_panel(x, np.zeros((len(x), 1)))
    panel = prepare_panel(xf, dummy, span=span, demean=demean)
    w = panel.row_weight * ~np.isnan(xf.to_numpy()).all(axis=1)[len(xf) - panel.n_rows:]
    if panel.n_rows < 2 or w.sum() <= 0:
        raise ValueError("x: too few rows to estimate the factor covariance")
    w = w / w.sum()
    return (panel.x * w[:, None]).T @ panel.x


def assemble_factor_covariance(model, x, *, annualization_factor: float = 1.0) -> FactorCovariance:
    """Factor-model covariance of a fitted :class:`~xl_factorlasso.LassoModel`.

    ``Sigma_y = B Sigma_x B' + D`` with ``B = model.coef_``, ``D = model.residual_variance_``
    and ``Sigma_x`` the factor covariance in the fit's own convention: the factors are prepared
    as in the fit (same ``span`` and ``demean``) and ``Sigma_x = sum_t w_t x_t x_t'`` with the
    loss weights ``w_t = lambda^(T'-1-t)`` normalised to sum to one. The residual variances use
    the same weights, so for an unpenalised fit without a span ``diag(Sigma_y)`` equals the
    responses' in-sample variance exactly.

    Parameters
    ----------
    model : LassoModel
        A fitted model.
    x : pandas.DataFrame, shape (T, M)
        Factor returns (usually those of the fit); must contain the model's factors.
    annualization_factor : float, default 1.0
        Multiplies ``Sigma_x`` and ``D`` (e.g. 52 for weekly returns).

    Returns
    -------
    FactorCovariance

    Raises
    ------
    ValueError
        Unfitted model, missing factors, too few rows, or responses without a residual
        variance (zeroed by ``warmup_period``), named in the message.
    """
    if not hasattr(model, "coef_"):
        raise ValueError("assemble_factor_covariance: the model is not fitted")
    if not np.isfinite(annualization_factor) or annualization_factor <= 0:
        raise ValueError(f"annualization_factor must be > 0, got {annualization_factor!r}")
    coef = model.coef_
    if not isinstance(x, pd.DataFrame):
        x = pd.DataFrame(np.asarray(x, dtype=float), columns=coef.columns)
    missing = [c for c in coef.columns if c not in x.columns]
    if missing:
        raise ValueError(f"x: factor {missing[0]!r} of the model is missing")
    resid = model.residual_variance_
    short = resid.index[~np.isfinite(resid.to_numpy())]
    if len(short):
        raise ValueError(
            f"no residual variance for {names_text(short)} (fewer than warmup_period "
            "observations); drop them or lower warmup_period"
        )
    sigma_x = fit_factor_covariance(x.loc[:, coef.columns], model.span, bool(model.demean))
    return FactorCovariance(
        loadings=coef.copy(),
        factor_covariance=pd.DataFrame(
            annualization_factor * sigma_x, index=coef.columns, columns=coef.columns
        ),
        residual_variance=(annualization_factor * resid).rename("residual_variance"),
    )
