"""``LassoModelCV``: time-series cross-validation of ``reg_lambda``."""

from __future__ import annotations

import numbers
import sys
import time

import numpy as np
import pandas as pd

from .._base import BaseEstimator
from .._threads import limit_blas_threads
from ..exceptions import SolveError
from ..linear_model import LassoModel, coerce_panel

__all__ = ["LassoModelCV", "expanding_window_splits", "default_lambda_grid"]


def default_lambda_grid() -> np.ndarray:
    """factorlasso's default grid: 20 log-spaced values on [1e-6, 1e-1] (absolute)."""
    return np.logspace(-6, -1, 20)


def expanding_window_splits(n_samples: int, n_splits: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Expanding-window train/test index pairs.

    ``test_size = n_samples // (n_splits + 1)``; fold ``i`` trains on
    ``[0, test_size * (i + 1))`` and tests on the next ``test_size`` rows. The last
    ``n_samples mod (n_splits + 1)`` rows are never used, as in factorlasso.
    """
    if isinstance(n_splits, bool) or not isinstance(n_splits, numbers.Integral) or n_splits < 1:
        raise ValueError(f"n_splits must be a whole number >= 1, got {n_splits!r}")
    test_size = n_samples // (n_splits + 1)
    if test_size < 1:
        raise ValueError(
            f"too few rows for cross-validation: {n_samples} rows cannot make {n_splits} "
            "expanding-window folds"
        )
    return [
        (np.arange(test_size * (i + 1)), np.arange(test_size * (i + 1), test_size * (i + 2)))
        for i in range(n_splits)
    ]


class LassoModelCV(BaseEstimator):
    """Choose ``reg_lambda`` of a :class:`LassoModel` by expanding-window cross-validation.

    Each training window is prepared once (demeaning, clustering, sufficient statistics). With
    the fast engine (the base model's ``engine``, see :class:`LassoModel`) the grid is then
    solved from the largest ``lambda`` down, each solve warm-started at the previous solution
    on the same Gram matrices; an uncertified solve falls back to CVXPY as in
    :meth:`LassoModel.fit`. With CVXPY the fold's problem is compiled once and the grid solved
    by changing a parameter. The score is :meth:`LassoModel.score` (mean R^2) on the following
    test window; the best ``lambda`` maximises the mean over folds (the first one in grid order
    on a tie). Every solve goes through the fit's certified path (``LassoModel``): grid values
    at or above a fold's ``lambda_max`` are the prior in closed form, and no uncertified
    solution is ever scored (a failed solve is recorded in ``fold_errors_``).

    Parameters
    ----------
    lambdas : array-like, "auto" or None, default None
        The grid. ``None``: factorlasso's default, 20 values on [1e-6, 1e-1]. ``"auto"``:
        ``n_lambdas`` log-spaced values from ``lambda_min_ratio * lambda_max`` to ``lambda_max``,
        the smallest penalty that sets the full-sample fit to the prior.
    n_splits : int, default 5
    base_model : LassoModel, optional
        Template whose parameters (except ``reg_lambda``) every fit uses.
    refit : bool, default True
        Refit on all data with the best ``lambda`` into ``best_model_``.
    n_lambdas : int, default 20
        Grid size for ``lambdas="auto"``.
    lambda_min_ratio : float, default 1e-3
        Smallest ``lambda`` of the ``"auto"`` grid relative to ``lambda_max``.
    verbose : bool, default False
        Report each fold's progress on standard error.
    n_jobs : int, optional
        Folds solved in parallel with joblib (``-1``: all cores). Worth it when folds are slow
        (the CVXPY engine, many responses); the fast engine's folds take milliseconds, where
        starting worker processes costs more than it saves.

    Attributes
    ----------
    lambdas_ : numpy.ndarray
    lambda_max_ : float
        ``lambda_max`` on the full sample (computed for every grid choice).
    cv_scores_ : pandas.DataFrame
        Test score per ``lambda`` (rows) and fold (columns); NaN where a fold failed.
    mean_scores_ : pandas.Series
    best_lambda_, best_score_ : float
    best_model_ : LassoModel or None
    splits_ : list of (train_index, test_index)
    fold_errors_ : dict
        ``(fold, lambda) -> message`` of every failed fit.
    """

    def __init__(
        self,
        lambdas=None,
        n_splits=5,
        base_model=None,
        refit=True,
        n_lambdas=20,
        lambda_min_ratio=1e-3,
        verbose=False,
        n_jobs=None,
    ):
        self.lambdas = lambdas
        self.n_splits = n_splits
        self.base_model = base_model
        self.refit = refit
        self.n_lambdas = n_lambdas
        self.lambda_min_ratio = lambda_min_ratio
        self.verbose = verbose
        self.n_jobs = n_jobs

    def _template(self) -> LassoModel:
        base = self.base_model if self.base_model is not None else LassoModel()
        if not isinstance(base, LassoModel):
            raise ValueError(f"base_model must be a LassoModel, got {type(base).__name__}")
        return LassoModel(**base.get_params(deep=False))

    def _grid(self, lam_max: float) -> np.ndarray:
        if self.lambdas is None:
            return default_lambda_grid()
        if isinstance(self.lambdas, str):
            if self.lambdas.strip().lower() != "auto":
                raise ValueError(f"lambdas must be 'auto', None or numbers, got {self.lambdas!r}")
            if not isinstance(self.n_lambdas, numbers.Integral) or self.n_lambdas < 1:
                raise ValueError(f"n_lambdas must be a whole number >= 1, got {self.n_lambdas!r}")
            if not 0 < self.lambda_min_ratio < 1:
                raise ValueError(
                    f"lambda_min_ratio must be in (0, 1), got {self.lambda_min_ratio!r}"
                )
            if lam_max <= 0:
                raise ValueError(
                    "lambdas='auto': lambda_max is 0 (the prior already fits the data "
                    "perfectly); give the grid explicitly"
                )
            return np.geomspace(lam_max * self.lambda_min_ratio, lam_max, int(self.n_lambdas))
        grid = np.asarray(self.lambdas, dtype=float).reshape(-1)
        if grid.size == 0 or not np.all(np.isfinite(grid)) or np.any(grid < 0):
            raise ValueError("lambdas must be a non-empty list of finite numbers >= 0")
        return grid

    @limit_blas_threads
    def fit(self, x, y) -> LassoModelCV:
        """Cross-validate the grid on ``(x, y)`` and (with ``refit``) fit the best model."""
        template = self._template()
        x, y = coerce_panel(x, y)
        # One preparation of the full sample (clustering included) serves lambda_max and the
        # refit: it does not depend on reg_lambda.
        full = template._setup(x, y)
        lam_max = full.lambda_max
        grid = self._grid(lam_max)
        splits = expanding_window_splits(len(x), self.n_splits)
        scores = np.full((len(grid), len(splits)), np.nan)
        errors: dict[tuple[int, float], str] = {}
        params = template.get_params(deep=False)
        started = time.perf_counter()
        n_jobs = 1 if self.n_jobs is None else self.n_jobs
        if n_jobs == 1:
            results = [
                self._fold(template, x, y, k, train, test, grid, started)
                for k, (train, test) in enumerate(splits)
            ]
        else:
            from joblib import Parallel, delayed

            results = Parallel(n_jobs=n_jobs)(
                delayed(self._fold)(template, x, y, k, train, test, grid, started)
                for k, (train, test) in enumerate(splits)
            )
        for k, (column, fold_errors) in enumerate(results):
            scores[:, k] = column
            errors.update(fold_errors)
        mean = np.full(len(grid), np.nan)
        has = np.isfinite(scores).any(axis=1)
        mean[has] = np.nanmean(scores[has], axis=1)
        if not has.any():
            first = next(iter(errors.values()), "no finite score")
            raise ValueError(f"cross-validation failed on every fold: {first}")
        best = int(np.nanargmax(mean))

        index = pd.Index(grid, name="reg_lambda")
        self.lambdas_ = grid
        self.lambda_max_ = float(lam_max)
        self.splits_ = splits
        self.cv_scores_ = pd.DataFrame(
            scores, index=index, columns=[f"fold_{k}" for k in range(len(splits))]
        )
        self.mean_scores_ = pd.Series(mean, index=index, name="mean_score")
        self.best_lambda_ = float(grid[best])
        self.best_score_ = float(mean[best])
        self.fold_errors_ = errors
        self.best_model_ = None
        if self.refit:
            best_model = LassoModel(**{**params, "reg_lambda": self.best_lambda_})
            self.best_model_ = best_model._fit_prepared(full)
        return self

    def _fold(self, template, x, y, k, train, test, grid, started):
        """Scores of the whole grid on fold ``k`` (one setup and one compiled problem) and the
        errors met, as ``(scores, {(fold, lambda): message})``."""
        column = np.full(len(grid), np.nan)
        errors: dict[tuple[int, float], str] = {}
        if self.verbose:
            print(
                f"[LassoModelCV] fold {k + 1}/{self.n_splits}: {len(train)} training rows, "
                f"{len(grid)} lambdas ({time.perf_counter() - started:.1f} s so far)",
                file=sys.stderr, flush=True,
            )
        x_tr, y_tr = x.iloc[train], y.iloc[train]
        # positional arrays: the same columns as the training frames, no label lookups
        x_te = x.iloc[test].to_numpy(dtype=float)
        y_te = y.iloc[test].to_numpy(dtype=float)
        try:
            setup = template._setup(x_tr, y_tr)
            # the fit's own certified solve path: closed form above the fold's lambda_max,
            # the fast engine and/or CVXPY (compiled once per fold), every answer certified
            solver = template._solver(setup)
        except (ValueError, SolveError, np.linalg.LinAlgError) as err:
            return column, {(k, float(lam)): str(err) for lam in grid}
        score, short = template._scorer(setup)
        warm = None
        # Largest lambda first: each solution is a close start for the next one.
        for j in np.argsort(-grid, kind="stable"):
            lam = float(grid[j])
            try:
                coef = solver.solve(lam, coef_init=warm).coef
                warm = coef
                column[j] = score(coef, x_te, y_te)
                if np.isnan(column[j]):
                    n_short = int(short.sum())
                    errors[(k, lam)] = "no response could be scored on the test window" + (
                        f" ({n_short} had fewer than warmup_period observations)"
                        if n_short else ""
                    )
            except (ValueError, SolveError, np.linalg.LinAlgError) as err:
                errors[(k, lam)] = str(err)
        return column, errors

    def _fitted_model(self) -> LassoModel:
        if getattr(self, "best_model_", None) is None:
            raise ValueError("LassoModelCV has no refitted model: fit with refit=True first")
        return self.best_model_

    def predict(self, x):
        """Predictions of ``best_model_``."""
        return self._fitted_model().predict(x)

    def score(self, x, y) -> float:
        """Mean R^2 of ``best_model_`` on ``(x, y)``."""
        return self._fitted_model().score(x, y)
