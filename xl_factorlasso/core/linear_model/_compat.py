"""factorlasso 1.0.6's conveniences on :class:`LassoModel`: aliases, ``copy``, ``summary``, plots.

A user switching from factorlasso by changing the import meets these at once. They add no
numbers of their own: every value is read from the fitted attributes. The aliases are read-only
(factorlasso lets them be assigned, which installs coefficients no fit produced).
"""

from __future__ import annotations

import contextlib

import numpy as np
import pandas as pd

from ._model_type import LassoModelType

__all__ = ["FactorlassoCompatMixin", "ACTIVE_COEF_TOL"]

# factorlasso's summary counts a loading as active above this magnitude.
ACTIVE_COEF_TOL = 1e-8


class FactorlassoCompatMixin:
    """factorlasso's aliases, ``copy``, ``summary`` and ``plot_signs`` (for :class:`LassoModel`).

    Before a fit the aliases are None, as in factorlasso.
    """

    @property
    def estimated_betas(self) -> pd.DataFrame | None:
        """Alias of ``coef_`` (factorlasso)."""
        return getattr(self, "coef_", None)

    @property
    def clusters(self) -> pd.Series | None:
        """Alias of ``clusters_`` (factorlasso)."""
        return getattr(self, "clusters_", None)

    @property
    def linkage(self) -> np.ndarray | None:
        """Alias of ``linkage_`` (factorlasso)."""
        return getattr(self, "linkage_", None)

    @property
    def cutoff(self) -> float | None:
        """Alias of ``cutoff_`` (factorlasso)."""
        return getattr(self, "cutoff_", None)

    @property
    def x(self) -> pd.DataFrame | None:
        """Factors of the last fit, as float columns (factorlasso's ``x_``)."""
        setup = getattr(self, "_fit_setup_", None)
        return None if setup is None else setup.x

    @property
    def y(self) -> pd.DataFrame | None:
        """Responses of the last fit, as float columns (factorlasso's ``y_``)."""
        setup = getattr(self, "_fit_setup_", None)
        return None if setup is None else setup.y

    def copy(self, kwargs: dict | None = None):
        """A new unfitted model with the same parameters, ``kwargs`` overriding some.

        As factorlasso's ``copy``: no fitted state is carried over, and parameter values are
        shared, not copied (use :func:`sklearn.base.clone` for deep copies).

        Parameters
        ----------
        kwargs : dict, optional
            Parameters to change in the copy; an unknown name is a ``TypeError``.

        Returns
        -------
        LassoModel
        """
        params = self.get_params(deep=False)
        params.update(kwargs or {})
        return type(self)(**params)

    def summary(self) -> pd.Series:
        """factorlasso's summary of the fit, as numbers.

        Returns
        -------
        pandas.Series (object dtype), named "summary"
            ``model_type`` (name), ``n_responses``, ``n_factors``, ``reg_lambda``,
            ``l1_weight``, ``active_coefs`` (loadings above 1e-8 in magnitude), ``n_coefs``,
            ``active_share`` (in [0, 1]), ``n_clusters`` (only when the fit has a partition),
            ``sign_gated_cells`` (only with ``auto_sign_constraints``: cells the sign matrix
            holds at 0) and ``mean_r2`` (mean in-sample R^2 over responses with one).
            factorlasso returns the same content as text; ``print`` shows it either way.

        Raises
        ------
        ModelNotFittedError
            Before ``fit`` (a ``RuntimeError``, as in factorlasso).
        """
        self._check_fitted()
        coef = self.coef_
        n, m = coef.shape
        active = int((coef.abs() > ACTIVE_COEF_TOL).to_numpy().sum())
        rows = {
            "model_type": LassoModelType.parse(self.model_type).name,
            "n_responses": n,
            "n_factors": m,
            "reg_lambda": float(self.reg_lambda),
            "l1_weight": float(self.l1_weight),
            "active_coefs": active,
            "n_coefs": n * m,
            "active_share": active / (n * m),
        }
        if self.clusters_ is not None:
            rows["n_clusters"] = int(self.clusters_.nunique())
        if self.auto_sign_constraints and self.derived_signs_ is not None:
            rows["sign_gated_cells"] = int((self.derived_signs_ == 0).to_numpy().sum())
        r2 = np.asarray(self.estimation_result_.r2, dtype=float)
        rows["mean_r2"] = float(np.nanmean(r2)) if np.isfinite(r2).any() else float("nan")
        return pd.Series(rows, dtype=object, name="summary")

    def plot_signs(self, ax=None):
        """Heatmap of the sign matrix the fit used (``derived_signs_``), via matplotlib.

        +1 is blue, -1 red, 0 white, a free cell (NaN) is left blank.

        Parameters
        ----------
        ax : matplotlib.axes.Axes, optional
            Where to draw; a new figure when omitted.

        Returns
        -------
        matplotlib.axes.Axes
            As factorlasso.

        Raises
        ------
        ModelNotFittedError
            Before ``fit``.
        RuntimeError
            The fit had no sign matrix (neither ``auto_sign_constraints`` nor
            ``factors_beta_loading_signs``), as in factorlasso.
        """
        self._check_fitted()
        signs = self.derived_signs_
        if signs is None:
            raise RuntimeError(
                "plot_signs: this fit used no sign matrix (derived_signs_ is None); fit with "
                "auto_sign_constraints=True or factors_beta_loading_signs")
        import matplotlib.pyplot as plt  # only here: the core does not need matplotlib

        values = signs.to_numpy(dtype=float)
        if ax is None:
            _, ax = plt.subplots(figsize=(max(4.0, 0.6 * values.shape[1]),
                                          max(3.0, 0.15 * values.shape[0])))
        ax.imshow(np.ma.masked_invalid(values), aspect="auto", cmap="RdBu", vmin=-1, vmax=1,
                  interpolation="nearest")
        ax.set_xticks(range(values.shape[1]))
        ax.set_xticklabels([str(c) for c in signs.columns], rotation=45, ha="right")
        if values.shape[0] <= 40:  # more labels than that overlap
            ax.set_yticks(range(values.shape[0]))
            ax.set_yticklabels([str(r) for r in signs.index])
        ax.set_ylabel("responses")
        ax.set_title("Sign constraints (+1 blue, -1 red, 0 white, blank free)")
        return ax


@contextlib.contextmanager
def overridden(model, **values):
    """Set the non-None ``values`` as ``model``'s parameters for one call, then restore them.

    factorlasso's ``fit(x, y, verbose, span, cluster_correlation_span=...)`` overrides those
    hyperparameters for that fit only; routing them through the parameters makes every step
    of the fit (preparation, clustering, signs, intercept, ``effective_span_``) see them.
    """
    given = {name: value for name, value in values.items() if value is not None}
    saved = {name: getattr(model, name) for name in given}
    try:
        for name, value in given.items():
            setattr(model, name, value)
        yield
    finally:
        for name, value in saved.items():
            setattr(model, name, value)
