"""Covariance inputs of the optimiser: sample, EWMA, a given matrix, or a factor model."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .._base import clone

__all__ = [
    "RiskModel",
    "dense_root",
    "ewma_covariance",
    "ewma_effective_sample",
    "is_factor_covariance",
    "resolve_risk_model",
]


@dataclass(frozen=True)
class RiskModel:
    """The covariance seen by the optimiser, in one of two shapes.

    Dense: ``covariance`` is the n x n matrix. Factor: ``Sigma = F F' + diag(d**2)`` with
    ``factor_root = F`` (n x k) and ``residual_sd = d`` (n,); the n x n matrix is never formed.

    Attributes
    ----------
    sigma : ndarray of shape (n,)
        Asset volatilities ``sqrt(diag(Sigma))``, the numerator of the diversification ratio.
    loadings : pandas.DataFrame or None
        Factor loadings, for factor-name constraints (factor model only).
    kind : {"sample", "ewma", "matrix", "estimator", "factor"}
    """

    sigma: np.ndarray
    kind: str
    covariance: np.ndarray | None = None
    factor_root: np.ndarray | None = None
    residual_sd: np.ndarray | None = None
    loadings: pd.DataFrame | None = None

    @property
    def is_factor(self) -> bool:
        return self.factor_root is not None

    def volatility(self, w: np.ndarray) -> float:
        """Portfolio volatility ``sqrt(w' Sigma w)``."""
        if self.is_factor:
            systematic = np.sum((self.factor_root.T @ w) ** 2)
            return float(np.sqrt(systematic + np.sum((self.residual_sd * w) ** 2)))
        return float(np.sqrt(max(w @ self.covariance @ w, 0.0)))



def dense_root(cov: np.ndarray) -> np.ndarray:
    """A matrix ``G`` with ``cov = G G'``: the lower Cholesky factor, or, for a singular
    positive semidefinite matrix, a root through the eigendecomposition."""
    try:
        return np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        values, vectors = np.linalg.eigh(cov)
        return vectors * np.sqrt(np.clip(values, 0.0, None))


def is_factor_covariance(obj: Any) -> bool:
    """Duck-typed test for :class:`~xl_factorlasso.core.covariance.FactorCovariance`."""
    return all(
        hasattr(obj, a)
        for a in ("loadings", "factor_covariance", "residual_variance", "sqrt_components")
    )


def ewma_covariance(X: np.ndarray, span: float) -> np.ndarray:
    """Exponentially weighted covariance, identical to pandas ``X.ewm(span=span).cov()`` at the
    last date (``adjust=True``, ``bias=False``).

    With ``lambda = 1 - 2 / (span + 1)`` observation ``t`` of ``T`` gets weight
    ``v_t = lambda**(T-1-t)`` (the newest weighs 1). The mean is the ``v``-weighted mean and the
    covariance ``sum v_t (x_t - m)(x_t - m)' / sum v_t``, multiplied by the reliability-weights
    correction ``V1**2 / (V1**2 - V2)`` with ``V1 = sum v_t``, ``V2 = sum v_t**2``.
    """
    lam = 1.0 - 2.0 / (span + 1.0)
    T = X.shape[0]
    v = lam ** np.arange(T - 1, -1, -1, dtype=float)
    v1, v2 = v.sum(), (v**2).sum()
    mean = v @ X / v1
    centred = X - mean
    cov = (centred * v[:, None]).T @ centred / v1
    return cov * (v1**2 / (v1**2 - v2))


def ewma_effective_sample(n_obs: int, span: float) -> float:
    """Kish's effective sample size ``V1**2 / V2`` of the EWMA weights of ``n_obs`` rows.

    The weights are :func:`ewma_covariance`'s ``v_t = lambda**(T-1-t)``; summing the two
    geometric series gives ``span * (1 - lambda**T) / (1 + lambda**T)``: equal weights on
    ``T`` rows give ``T``, a long window ``span``.
    """
    # lambda**T - 1 through log1p / expm1: exact to rounding also for very long spans
    tail_m1 = np.expm1(int(n_obs) * np.log1p(-2.0 / (float(span) + 1.0)))
    return float(span) * float(-tail_m1 / (2.0 + tail_m1))


def ewma_singular_reason(n_obs: int, n_assets: int, span: float,
                         remedy: str | None = None) -> str | None:
    """Why the EWMA covariance of ``n_obs`` rows with ``span`` cannot be optimised on for
    ``n_assets`` assets, or None when it can; ``remedy`` ends the message (default: what to
    pass to MaximumDiversification instead; a worksheet says it in its own terms).

    The rule is the sample covariance's (refused when ``T <= n``, singular) applied to the
    weights' effective sample: with no more effective rows than assets, the directions the
    recent rows leave out are measured only by rows weighted down toward ``lambda**T``, and
    the maximum-diversification portfolio loads on that noise. (Span 20 on 150 rows of 100
    assets: condition number 2e6, against 3e2 for the sample covariance. Spans 4-30 on
    130-276 assets with long windows: up to 1e19, where the ratios of three solvers
    disagreed by orders of magnitude.)
    """
    effective = ewma_effective_sample(n_obs, span)
    if effective > n_assets:
        return None
    if remedy is None:
        remedy = (f"give a span above {n_assets} (and more than {n_assets} observations), a "
                  "FactorCovariance, or a covariance matrix or estimator (covariance=...)")
    return (f"span={span:g} gives the {n_obs} observations the weight of {effective:.1f} "
            f"equal ones (the effective sample size), not more than the {n_assets} assets: "
            "the EWMA covariance is then as ill-determined as a sample covariance of that "
            "many rows, and the portfolio would follow the noise of its smallest eigenvalues; "
            f"{remedy}")


_TINY = float(np.finfo(float).tiny)


def _nearest_positive_definite(cov: np.ndarray) -> np.ndarray:
    """Clip eigenvalues to a small positive floor and restore the original variances."""
    values, vectors = np.linalg.eigh(cov)
    floor = max(values.max(), 0.0) * 1e-10
    clipped = (vectors * np.clip(values, floor, None)) @ vectors.T
    scale = np.sqrt(np.diag(cov) / np.diag(clipped))
    return clipped * np.outer(scale, scale)


def _check_dense(cov: np.ndarray, name: str, assets, gram: bool = False) -> np.ndarray:
    """Validate a covariance matrix; ``gram=True`` for an estimate that is a weighted Gram
    matrix of the returns, hence positive semidefinite by construction (no factorisation)."""
    n = cov.shape[0]
    if cov.ndim != 2 or cov.shape != (n, n):
        raise ValueError(f"{name} must be a square matrix, got shape {cov.shape}")
    if not np.all(np.isfinite(cov)):
        raise ValueError(f"{name} contains NaN or infinite values")
    label = (lambda i: repr(assets[i])) if assets is not None else (lambda i: f"#{i}")
    diag = np.diag(cov)
    if not gram and np.any(diag <= 0):
        i = int(np.argmin(diag))
        raise ValueError(f"{name} has a non-positive variance {diag[i]:g} for asset {label(i)}")
    if np.any(diag < _TINY):
        # Subnormal: the digits are lost to underflow. Returns of 1e-160 (variances ~1e-320)
        # moved the weights by 0.04 with nothing but NumPy's divide warnings. An estimate from
        # returns that vary (a constant column is refused before) is 0 only by underflow too.
        i = int(np.argmin(diag))
        raise ValueError(
            f"{name} has a variance of {diag[i]:.3g} for asset {label(i)}, below the smallest "
            f"normal double ({_TINY:.3g}): its digits are lost to underflow, and the weights "
            "would be noise; scale the returns up (e.g. to percent) or check their units")
    scale = np.max(np.abs(cov))
    if np.max(np.abs(cov - cov.T)) > 1e-10 * scale:
        raise ValueError(f"{name} is not symmetric")
    cov = (cov + cov.T) / 2.0
    if gram:
        return cov
    try:
        np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        low = np.linalg.eigvalsh(cov).min()
        warnings.warn(
            f"{name} is not positive definite (smallest eigenvalue {low:.3g}); its eigenvalues "
            "are clipped to a small positive floor, keeping the variances.",
            UserWarning,
            stacklevel=4,
        )
        cov = _nearest_positive_definite(cov)
    return cov


def _align(labels: pd.Index, assets: pd.Index | None, what: str) -> np.ndarray | None:
    """Positions of ``assets`` in ``labels`` (None when no reordering is needed)."""
    if assets is None or labels.equals(assets):
        return None
    missing = [a for a in assets if a not in labels]
    extra = [a for a in labels if a not in set(assets)]
    if missing or extra or len(labels) != len(assets):
        parts = []
        if missing:
            parts.append(f"missing assets {missing[:10]}")
        if extra:
            parts.append(f"unknown assets {extra[:10]}")
        raise ValueError(f"{what} labels do not match the columns of X: {'; '.join(parts)}")
    return labels.get_indexer(assets)


def resolve_risk_model(
    covariance: Any, span: float | None, X: np.ndarray | None, assets: pd.Index | None
) -> tuple[RiskModel, pd.Index | None, Any]:
    """Validate the ``covariance``/``span`` parameters and build the :class:`RiskModel`.

    Parameters
    ----------
    covariance : None, "sample", array-like, DataFrame, FactorCovariance or estimator
    span : float or None
    X : ndarray of shape (T, n) or None
    assets : Index or None
        Column labels of ``X`` (None when ``X`` is unlabelled or absent).

    Returns
    -------
    risk : RiskModel
    assets : Index or None
        Asset labels, taken from the covariance when ``X`` has none.
    fitted : object
        The covariance actually used: a labelled DataFrame, the FactorCovariance, or the fitted
        covariance estimator.
    """
    if span is not None:
        if covariance is not None and not (isinstance(covariance, str) and covariance == "sample"):
            raise ValueError("span applies only to the covariance estimated from X; "
                             "set covariance=None to use it")
        if isinstance(span, bool) or not np.isscalar(span) or not np.isfinite(span) or span <= 1:
            raise ValueError(f"span must be a number > 1, got {span!r}")

    def labelled(cov: np.ndarray):
        return pd.DataFrame(cov, index=assets, columns=assets) if assets is not None else cov

    if covariance is None or (isinstance(covariance, str) and covariance == "sample"):
        if X is None:
            raise ValueError("X is required to estimate the covariance (covariance=None)")
        T, n = X.shape
        if T <= n:
            raise ValueError(
                f"X has {T} observations for {n} assets: the sample covariance is singular and the "
                "diversification ratio is unbounded; pass a FactorCovariance, a shrinkage "
                "estimator (covariance=...) or more observations"
            )
        flat = constant_columns(X)
        if flat.size:
            # its variance is 0 up to the mean's rounding (0.1 on 50 rows: 1.8e-33), which the
            # positive-variance test below lets through, and its weight comes out arbitrary
            j = int(flat[0])
            asset = repr(assets[j]) if assets is not None else f"#{j}"
            raise ValueError(
                f"X has the same return ({X[0, j]:g}) on each of its {T} rows for asset "
                f"{asset}: its volatility is 0, so its maximum-diversification weight would be "
                "arbitrary; drop the column or check its data")
        if span is not None:
            reason = ewma_singular_reason(T, n, float(span))
            if reason is not None:
                raise ValueError(reason)
            cov = ewma_covariance(X, float(span))
        else:
            cov = np.atleast_2d(np.cov(X, rowvar=False, ddof=1))
        cov = _check_dense(cov, "the EWMA covariance" if span else "the sample covariance",
                           assets, gram=True)
        kind = "ewma" if span is not None else "sample"
        return RiskModel(np.sqrt(np.diag(cov)), kind, covariance=cov), assets, labelled(cov)

    if isinstance(covariance, str):
        raise ValueError(f"covariance must be None, 'sample', a matrix, a FactorCovariance or an "
                         f"estimator, got {covariance!r}")

    if is_factor_covariance(covariance):
        return _factor_model(covariance, X, assets)

    if hasattr(covariance, "fit") and not isinstance(covariance, (pd.DataFrame, np.ndarray)):
        if X is None:
            raise ValueError("X is required to fit the covariance estimator")
        estimator = clone(covariance)
        estimator.fit(X)
        cov = getattr(estimator, "covariance_", None)
        if cov is None:
            raise ValueError(f"covariance estimator {type(covariance).__name__} has no covariance_ "
                             "after fit")
        cov = np.asarray(cov, dtype=float)
        if cov.shape != (X.shape[1], X.shape[1]):
            raise ValueError(f"covariance_ of {type(covariance).__name__} has shape {cov.shape}, "
                             f"expected {(X.shape[1], X.shape[1])}")
        cov = _check_dense(cov, "covariance_ of the covariance estimator", assets)
        return RiskModel(np.sqrt(np.diag(cov)), "estimator", covariance=cov), assets, estimator

    if isinstance(covariance, pd.DataFrame):
        if not covariance.index.equals(covariance.columns):
            raise ValueError("covariance DataFrame must have the same labels on rows and columns")
        order = _align(covariance.columns, assets, "covariance")
        cov = covariance.to_numpy(dtype=float)
        if order is not None:
            cov = cov[np.ix_(order, order)]
        if assets is None:
            assets = covariance.columns
    else:
        try:
            cov = np.asarray(covariance, dtype=float)
        except (TypeError, ValueError) as err:
            raise ValueError(f"covariance could not be read as a matrix: {err}") from err
        if cov.ndim != 2:
            raise ValueError(f"covariance must be a 2-D matrix, got shape {cov.shape}")
    if X is not None and cov.shape != (X.shape[1], X.shape[1]):
        raise ValueError(f"covariance has shape {cov.shape} but X has {X.shape[1]} assets")
    cov = _check_dense(cov, "covariance", assets)
    return RiskModel(np.sqrt(np.diag(cov)), "matrix", covariance=cov), assets, labelled(cov)


def _factor_model(model: Any, X: np.ndarray | None, assets: pd.Index | None):
    loadings = model.loadings
    if not isinstance(loadings, pd.DataFrame):
        raise ValueError("FactorCovariance.loadings must be a DataFrame (assets x factors)")
    residual = model.residual_variance
    if isinstance(residual, pd.Series) and not residual.index.equals(loadings.index):
        residual = residual.reindex(loadings.index)
    residual = np.asarray(residual, dtype=float)
    factor_cov = np.asarray(model.factor_covariance, dtype=float)
    n, k = loadings.shape
    if factor_cov.shape != (k, k):
        raise ValueError(f"FactorCovariance.factor_covariance must be {k} x {k}, got "
                         f"{factor_cov.shape}")
    if residual.shape != (n,) or not np.all(np.isfinite(residual)):
        raise ValueError("FactorCovariance.residual_variance must be finite and labelled like "
                         "the loadings rows")
    if np.any(residual < 0):
        i = int(np.argmin(residual))
        raise ValueError(f"FactorCovariance.residual_variance is negative for asset "
                         f"{loadings.index[i]!r}")
    finite = np.all(np.isfinite(loadings.to_numpy(dtype=float))) and np.all(np.isfinite(factor_cov))
    if not finite:
        raise ValueError("FactorCovariance contains NaN or infinite values")
    if X is not None and n != X.shape[1]:
        raise ValueError(f"FactorCovariance has {n} assets but X has {X.shape[1]}")
    order = _align(loadings.index, assets, "FactorCovariance")
    F, d = model.sqrt_components()
    F = np.asarray(F, dtype=float)
    d = np.asarray(d, dtype=float)
    if order is not None:
        F, d, loadings = F[order], d[order], loadings.iloc[order]
    if assets is None:
        assets = loadings.index
    loadings = _with_families(loadings, getattr(model, "factor_families", None))
    sigma = component_volatilities(F, d)
    if np.any(sigma <= 0):
        i = int(np.argmin(sigma))
        raise ValueError(f"FactorCovariance gives zero volatility for asset {assets[i]!r}")
    risk = RiskModel(sigma, "factor", factor_root=F, residual_sd=d, loadings=loadings)
    return risk, assets, model


def constant_columns(X: np.ndarray) -> np.ndarray:
    """Indices of the columns of ``X`` with the same value on every row: their variance is 0
    but for the mean's rounding (0.1 on 50 rows: 1.8e-33), which a positive-variance test lets
    through, and the optimiser would weight them arbitrarily. The backtest asks the same of
    each window, so that a date fails exactly where the optimiser would refuse."""
    return np.flatnonzero(np.ptp(X, axis=0) == 0.0)


def component_volatilities(root, residual_sd) -> np.ndarray:
    """Each asset's volatility ``sqrt(sum_k F_ik^2 + d_i^2)`` from a factor model's
    ``sqrt_components()`` ``(F, d)``: what the optimiser prices, and refuses where it is zero.
    The backtest asks the same before it optimises, so that a date fails exactly where the
    optimiser would."""
    root = np.asarray(root, dtype=float)
    return np.sqrt(np.sum(root ** 2, axis=1) + np.asarray(residual_sd, dtype=float) ** 2)


def _with_families(loadings: pd.DataFrame, families: Any) -> pd.DataFrame:
    """The loadings, carrying the factor families (one label per column, None for a factor
    without family) in ``attrs["factor_families"]``, where
    :func:`~._validation.constraint_names` reads them."""
    if families is None:
        return loadings
    factors = loadings.columns
    if isinstance(families, pd.Series):
        unknown = [f for f in families.index if f not in factors]
        if unknown:
            raise ValueError(f"FactorCovariance.factor_families refers to unknown factors "
                             f"{unknown[:10]}")
        labels = [families.get(f) for f in factors]
    else:
        labels = list(np.asarray(families, dtype=object).reshape(-1))
        if len(labels) != len(factors):
            raise ValueError(f"FactorCovariance.factor_families must have one label per factor "
                             f"({len(factors)}), got {len(labels)}")
    labels = [None if _blank(label) else str(label) for label in labels]
    out = loadings.copy()
    out.attrs["factor_families"] = tuple(labels)
    return out


def _blank(label: Any) -> bool:
    return label is None or (isinstance(label, float) and np.isnan(label)) or (
        isinstance(label, str) and not label.strip())
