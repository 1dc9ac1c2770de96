"""Factor-covariance snapshots and their history, named as factorlasso 1.0.6's containers.

:class:`CurrentFactorCovarData` is one date's ``Sigma_y = B Sigma_x B' + D`` and
:class:`RollingFactorCovarData` a date -> snapshot mapping with panel accessors. Names and
meanings follow factorlasso's classes of the same names (``x_covar``, ``y_betas``,
``y_variances`` with the columns ``ewma_var``, ``residual_var``, ``insample_alpha``, ``r2``,
``cluster``; ``get_y_covar``, ``get_y_betas``, ``get_r2``, ...). Only the orthogonal residual
(``D`` diagonal) is assembled here; factorlasso's empirical / cluster residual structures and
its Excel ``save``/``load`` are not provided.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from ..covariance import FactorCovariance
from ..covariance._factor_covariance import fit_factor_covariance

__all__ = ["CurrentFactorCovarData", "RollingFactorCovarData"]

# factorlasso's VarianceColumns values
EWMA_VAR, RESIDUAL_VAR, INSAMPLE_ALPHA, R2, CLUSTER = (
    "ewma_var", "residual_var", "insample_alpha", "r2", "cluster")
_VARIANCE_COLUMNS = (EWMA_VAR, RESIDUAL_VAR, INSAMPLE_ALPHA, R2)


def _check_residual_type(residual_type) -> None:
    if str(getattr(residual_type, "value", residual_type)) != "orthogonal":
        raise ValueError(f"residual_type={residual_type!r}: only 'orthogonal' (diagonal D) "
                         "is assembled by xl-factorlasso")


@dataclass(frozen=True)
class CurrentFactorCovarData:
    """One date's factor-model covariance ``Sigma_y = B Sigma_x B' + D``.

    Parameters
    ----------
    x_covar : pandas.DataFrame, shape (M, M)
        Factor covariance ``Sigma_x``.
    y_betas : pandas.DataFrame, shape (N, M)
        Loadings ``B`` (assets down, factors across).
    y_variances : pandas.DataFrame, shape (N, K)
        Per-asset diagnostics: ``residual_var`` (diagonal of ``D``; required), and from a fit
        ``ewma_var`` (weighted variance of the response), ``insample_alpha`` (economic
        intercept), ``r2`` and ``cluster``.
    estimation_date : pandas.Timestamp, optional
        Last row of the data the snapshot was estimated on.
    residuals : pandas.DataFrame, optional
        Not filled by :class:`RollingLassoModel` (memory); kept for factorlasso's layout.
    clusters : pandas.Series, optional
        Asset -> cluster label; mirrored into ``y_variances['cluster']``.
    linkages, cutoffs : optional
        factorlasso's dendrogram fields; not filled here.
    derived_signs : pandas.DataFrame, optional
        The sign matrix the fit used (``LassoModel.derived_signs_``).
    """

    x_covar: pd.DataFrame
    y_betas: pd.DataFrame
    y_variances: pd.DataFrame
    estimation_date: pd.Timestamp | None = None
    residuals: pd.DataFrame | None = None
    clusters: pd.Series | None = None
    linkages: pd.DataFrame | None = None
    cutoffs: pd.Series | None = None
    derived_signs: pd.DataFrame | None = None

    def __post_init__(self):
        if isinstance(self.clusters, pd.Series) and CLUSTER not in self.y_variances.columns:
            y_var = self.y_variances.copy()
            y_var[CLUSTER] = self.clusters.reindex(y_var.index)
            object.__setattr__(self, "y_variances", y_var)

    @classmethod
    def from_model(cls, model, x, *, estimation_date=None, clusters=None,
                   annualization_factor: float = 1.0,
                   x_covar: np.ndarray | None = None) -> CurrentFactorCovarData:
        """The snapshot of a fitted :class:`~xl_factorlasso.LassoModel`.

        ``x_covar`` is estimated on ``x`` (the fit's rows) in the fit's own convention, the
        one of :func:`~xl_factorlasso.assemble_factor_covariance`: the factors prepared as in
        the fit (same ``span`` and ``demean``) and weighted by the loss weights, i.e. the EWMA
        covariance with the model's span (equal weights without one) — factorlasso's
        ``compute_ewm_covar`` on the demeaned factors. ``residual_var`` and ``ewma_var`` use
        the same weights; all three and ``insample_alpha`` are multiplied by
        ``annualization_factor``.

        Parameters
        ----------
        model : LassoModel
            A fitted model.
        x : pandas.DataFrame
            The factor returns of the fit.
        estimation_date : pandas.Timestamp, optional
        clusters : pandas.Series, optional
            Labels to record (default the model's ``clusters_``).
        annualization_factor : float, default 1.0
        x_covar : numpy.ndarray, optional
            ``Sigma_x`` (M x M, not annualised) when already known, e.g. from the rolling
            fit's carried statistics of ``x``; estimated on ``x`` otherwise.
        """
        a = float(annualization_factor)
        coef = model.coef_
        # Not assemble_factor_covariance: a response shorter than warmup_period (NaN residual
        # variance) is kept here as a row of NaN diagnostics, as a rolling history needs.
        if x_covar is None:
            x_covar = fit_factor_covariance(x.loc[:, coef.columns], model.span,
                                            bool(model.demean))
        sigma_x = a * x_covar
        # one float block built from the arrays (a frame of four scaled Series cost 0.3 ms,
        # at every date of a rolling fit); the same numbers, index and columns
        responses = model.total_variance_.index
        columns = np.stack([a * model.total_variance_.to_numpy(),
                            a * model.residual_variance_.to_numpy(),
                            a * model.alpha_const_.to_numpy(), model.r2_.to_numpy()])
        y_variances = pd.DataFrame(columns.T, index=responses, columns=list(_VARIANCE_COLUMNS))
        return cls(
            x_covar=pd.DataFrame(sigma_x, index=coef.columns, columns=coef.columns),
            y_betas=coef.copy(),
            y_variances=y_variances,
            estimation_date=estimation_date,
            clusters=model.clusters_ if clusters is None else clusters,
            derived_signs=model.derived_signs_,
        )

    # ------------------------------------------------------------------ assembly
    def get_residual_covar(self, residual_var_weight: float = 1.0, assets=None, *,
                           residual_type="orthogonal") -> pd.DataFrame:
        """``w D`` (N x N, diagonal)."""
        _check_residual_type(residual_type)
        var = self.y_variances[RESIDUAL_VAR]
        if assets is not None:
            var = var.loc[assets]
        return pd.DataFrame(np.diag(residual_var_weight * var.to_numpy(dtype=float)),
                            index=var.index, columns=var.index)

    def get_y_covar(self, residual_var_weight: float = 1.0, assets=None, *,
                    residual_type="orthogonal") -> pd.DataFrame:
        """``B Sigma_x B' + w D`` (N x N), optionally on a subset of ``assets``."""
        residual = self.get_residual_covar(residual_var_weight, assets,
                                           residual_type=residual_type)
        betas = self.y_betas if assets is None else self.y_betas.loc[assets]
        b = betas.to_numpy()
        cov = b @ self.x_covar.to_numpy() @ b.T + residual.to_numpy()
        return pd.DataFrame(cov, index=betas.index, columns=betas.index)

    @property
    def y_covar(self) -> pd.DataFrame:
        """``get_y_covar()``."""
        return self.get_y_covar()

    def get_model_vols(self, assets=None) -> pd.DataFrame:
        """Total, systematic and residual volatility per asset (``total_vol``, ``sys_vol``,
        ``resid_vol``)."""
        assets = self.y_betas.index if assets is None else pd.Index(assets)
        b = self.y_betas.loc[assets].to_numpy()
        sys_var = np.einsum("ij,jk,ik->i", b, self.x_covar.to_numpy(), b)
        res_var = self.y_variances.loc[assets, RESIDUAL_VAR].to_numpy(dtype=float)
        return pd.DataFrame({"total_vol": np.sqrt(sys_var + res_var),
                             "sys_vol": np.sqrt(np.maximum(sys_var, 0.0)),
                             "resid_vol": np.sqrt(res_var)}, index=assets)

    def to_factor_covariance(self) -> FactorCovariance:
        """The same pieces as a :class:`~xl_factorlasso.FactorCovariance` (for the optimiser)."""
        return FactorCovariance(
            loadings=self.y_betas, factor_covariance=self.x_covar,
            residual_variance=self.y_variances[RESIDUAL_VAR].rename("residual_variance"))

    def filter_on_tickers(self, assets) -> CurrentFactorCovarData:
        """The snapshot restricted to ``assets`` (factors unchanged)."""
        # (named as the loadings' index: pandas 2 names a selection after its key)
        assets = pd.Index(assets, name=self.y_betas.index.name)
        return replace(
            self, y_betas=self.y_betas.loc[assets], y_variances=self.y_variances.loc[assets],
            clusters=None if self.clusters is None else self.clusters.reindex(assets),
            derived_signs=(None if self.derived_signs is None
                           else self.derived_signs.loc[assets]))


class RollingFactorCovarData:
    """Snapshots by estimation date, with factorlasso's panel accessors and tidy exports.

    Parameters
    ----------
    data : dict of pandas.Timestamp -> CurrentFactorCovarData, optional
    """

    def __init__(self, data: dict | None = None):
        self.data = dict(data or {})

    # ------------------------------------------------------------------ container
    @property
    def dates(self) -> pd.DatetimeIndex:
        """Estimation dates, sorted."""
        return pd.DatetimeIndex(sorted(self.data))

    @property
    def n_observations(self) -> int:
        return len(self.data)

    def __getitem__(self, date) -> CurrentFactorCovarData:
        return self.data[pd.Timestamp(date)]

    def __len__(self) -> int:
        return len(self.data)

    def __iter__(self):
        return iter(sorted(self.data))

    def __repr__(self) -> str:
        if not self.data:
            return "RollingFactorCovarData(empty)"
        d = self.dates
        return f"RollingFactorCovarData({len(d)} dates, {d[0].date()} .. {d[-1].date()})"

    def add(self, date, estimation: CurrentFactorCovarData) -> None:
        self.data[pd.Timestamp(date)] = estimation

    def get_latest(self) -> CurrentFactorCovarData:
        """The snapshot of the last date."""
        return self.data[max(self.data)]

    def _items(self):
        return sorted(self.data.items())

    def _snapshots_asof(self, dates=None):
        """``(query date, snapshot)``: each query date gets the last snapshot estimated at or
        before it (never a later one)."""
        available = self.dates
        requested = available if dates is None else (
            pd.DatetimeIndex(dates).unique().sort_values())
        for date in requested:
            pos = available.searchsorted(date, side="right") - 1
            if pos < 0:
                raise ValueError(f"no snapshot was estimated at or before {date.date()}")
            yield date, self.data[available[pos]]

    # ------------------------------------------------------------------ matrices by date
    def get_x_covars(self) -> dict:
        """Factor covariance by date."""
        return {d: e.x_covar for d, e in self._items()}

    def get_y_betas(self) -> dict:
        """Loadings (N x M) by date."""
        return {d: e.y_betas for d, e in self._items()}

    def get_y_covars(self, residual_var_weight: float = 1.0, assets=None, *,
                     residual_type="orthogonal", dates=None) -> dict:
        """``B Sigma_x B' + w D`` by date; with ``dates``, as of each of them (the last
        snapshot at or before the date)."""
        _check_residual_type(residual_type)
        return {d: e.get_y_covar(residual_var_weight, assets)
                for d, e in self._snapshots_asof(dates)}

    def get_residual_covars(self, residual_var_weight: float = 1.0, assets=None, *,
                            residual_type="orthogonal", dates=None) -> dict:
        """``w D`` by date (as of ``dates`` when given)."""
        _check_residual_type(residual_type)
        return {d: e.get_residual_covar(residual_var_weight, assets)
                for d, e in self._snapshots_asof(dates)}

    # ------------------------------------------------------------------ panels (date x asset)
    def _panel(self, column: str) -> pd.DataFrame:
        frame = pd.DataFrame({d: e.y_variances[column] for d, e in self._items()}).T
        frame.index = pd.DatetimeIndex(frame.index, name="date")
        return frame

    def get_residual_vars(self) -> pd.DataFrame:
        """Residual variances, dates x assets."""
        return self._panel(RESIDUAL_VAR)

    def get_ewma_vars(self) -> pd.DataFrame:
        """Weighted response variances, dates x assets."""
        return self._panel(EWMA_VAR)

    def get_r2(self) -> pd.DataFrame:
        """In-sample R², dates x assets."""
        return self._panel(R2)

    def get_alphas(self) -> pd.DataFrame:
        """In-sample (economic) intercepts, dates x assets (no residuals are stored, so this is
        factorlasso's fallback of ``get_alphas``)."""
        return self._panel(INSAMPLE_ALPHA)

    def get_clusters(self) -> pd.DataFrame:
        """Stable cluster labels, dates x assets (NaN: no cluster that date, e.g. a LASSO
        fit)."""
        frame = pd.DataFrame({
            d: e.y_variances[CLUSTER] if CLUSTER in e.y_variances.columns
            else pd.Series(np.nan, index=e.y_variances.index) for d, e in self._items()}).T
        frame.index = pd.DatetimeIndex(frame.index, name="date")
        return frame

    def get_systematic_vars(self) -> pd.DataFrame:
        """``diag(B Sigma_x B')``, dates x assets."""
        frame = pd.DataFrame({d: e.get_model_vols()["sys_vol"] ** 2 for d, e in self._items()}).T
        frame.index = pd.DatetimeIndex(frame.index, name="date")
        return frame

    def get_total_vols(self) -> pd.DataFrame:
        return np.sqrt(self.get_systematic_vars() + self.get_residual_vars())

    def get_residual_vols(self) -> pd.DataFrame:
        """Residual volatility ``sqrt(D)``, dates x assets."""
        return np.sqrt(self.get_residual_vars())

    def get_factor_var(self, factor: str) -> pd.Series:
        """Variance of one factor by date."""
        return pd.Series({d: e.x_covar.loc[factor, factor] for d, e in self._items()},
                         name=factor, dtype=float)

    def get_beta(self, factor: str) -> pd.DataFrame:
        """One factor's loadings, dates x assets."""
        frame = pd.DataFrame({d: e.y_betas[factor] for d, e in self._items()}).T
        frame.index = pd.DatetimeIndex(frame.index, name="date")
        return frame

    def filter_on_tickers(self, tickers) -> RollingFactorCovarData:
        return RollingFactorCovarData({d: e.filter_on_tickers(tickers) for d, e in self._items()})

    # ------------------------------------------------------------------ tidy export
    def to_long(self) -> pd.DataFrame:
        """Every loading as one row: columns ``date``, ``asset``, ``factor``, ``beta`` (in date,
        asset, factor order) — ready for a PivotTable."""
        parts = []
        for d, e in self._items():
            b = e.y_betas
            parts.append(pd.DataFrame({
                "date": d,
                "asset": np.repeat(b.index.to_numpy(dtype=object), b.shape[1]),
                "factor": np.tile(b.columns.to_numpy(dtype=object), b.shape[0]),
                "beta": b.to_numpy(dtype=float).ravel(),
            }))
        if not parts:
            return pd.DataFrame({"date": pd.DatetimeIndex([]), "asset": [], "factor": [],
                                 "beta": np.array([], dtype=float)})
        return pd.concat(parts, ignore_index=True)
