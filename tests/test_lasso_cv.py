"""LassoModelCV: splits, grids, lambda_max and scores equal to independent fits."""

from __future__ import annotations

import contextlib

import numpy as np
import pandas as pd
import pytest

from tests.conftest import TIGHT, make_panel
from xl_factorlasso import (
    LassoModel,
    LassoModelCV,
    default_lambda_grid,
    expanding_window_splits,
    make_factor_panel,
)
from xl_factorlasso.core.linear_model._certified import Solution


def test_expanding_window_splits_layout():
    splits = expanding_window_splits(23, 4)  # test size 23 // 5 = 4; rows 20..22 unused
    assert len(splits) == 4
    for i, (train, test) in enumerate(splits):
        np.testing.assert_array_equal(train, np.arange(4 * (i + 1)))
        np.testing.assert_array_equal(test, np.arange(4 * (i + 1), 4 * (i + 2)))
    with pytest.raises(ValueError, match="too few rows"):
        expanding_window_splits(3, 5)
    with pytest.raises(ValueError, match="n_splits"):
        expanding_window_splits(30, 0)


def test_default_grid_is_factorlasso_grid():
    grid = default_lambda_grid()
    assert len(grid) == 20 and grid[0] == pytest.approx(1e-6) and grid[-1] == pytest.approx(0.1)
    np.testing.assert_allclose(np.diff(np.log10(grid)), 5 / 19)


@pytest.mark.parametrize("model_type", ["LASSO", "HCGL"])
def test_cv_scores_equal_independent_fits(model_type):
    x, y, _ = make_panel(T=90, M=3, N=6, seed=3)
    lambdas = [0.005, 0.05, 0.5]
    base = LassoModel(model_type=model_type, span=40, solver_params=TIGHT)
    cv = LassoModelCV(lambdas=lambdas, n_splits=3, base_model=base).fit(x, y)
    for k, (tr, te) in enumerate(expanding_window_splits(len(x), 3)):
        for lam in lambdas:
            m = LassoModel(model_type=model_type, span=40, reg_lambda=lam, solver_params=TIGHT).fit(
                x.iloc[tr], y.iloc[tr]
            )
            assert cv.cv_scores_.loc[lam, f"fold_{k}"] == pytest.approx(
                m.score(x.iloc[te], y.iloc[te]), abs=1e-5
            )
    mean = cv.cv_scores_.mean(axis=1)
    assert cv.best_lambda_ == mean.idxmax() and cv.best_score_ == pytest.approx(mean.max())
    assert cv.best_model_.reg_lambda == cv.best_lambda_
    ref = LassoModel(
        model_type=model_type, span=40, reg_lambda=cv.best_lambda_, solver_params=TIGHT
    ).fit(x, y)
    np.testing.assert_allclose(cv.predict(x), ref.predict(x), atol=1e-9)
    assert cv.score(x, y) == pytest.approx(ref.score(x, y), abs=1e-9)


def test_auto_grid_is_below_lambda_max():
    x, y, _ = make_panel(T=100, M=4, N=5, seed=4)
    cv = LassoModelCV(lambdas="auto", n_lambdas=8, lambda_min_ratio=1e-2, n_splits=3).fit(x, y)
    lam_max = LassoModel().lambda_max(x, y)
    assert cv.lambda_max_ == pytest.approx(lam_max)
    np.testing.assert_allclose(cv.lambdas_, np.geomspace(lam_max * 1e-2, lam_max, 8))
    # closed form for LASSO without prior: max |(2/T) X'Y| on the demeaned data
    xd, yd = x - x.mean(), y - y.mean()
    assert lam_max == pytest.approx(np.abs(2 / len(x) * xd.T.to_numpy() @ yd.to_numpy()).max())
    # the top of the grid fits zero loadings: every fold scores at most ~0 there
    assert (cv.cv_scores_.iloc[-1] < 1e-8).all()
    assert cv.best_lambda_ < lam_max


def test_cv_accepts_numpy_and_reports_fold_failures():
    x, y, _ = make_panel(T=60, M=3, N=4, seed=5)
    cv = LassoModelCV(lambdas=[0.01, 0.1], n_splits=2).fit(x.to_numpy(), y.to_numpy())
    assert cv.cv_scores_.shape == (2, 2) and np.isfinite(cv.cv_scores_.to_numpy()).all()
    # a 5-row first training window is too short for an EWMA fit (4 usable rows < 5)
    cv2 = LassoModelCV(lambdas=[0.01], n_splits=11, base_model=LassoModel(span=10)).fit(x, y)
    assert np.isnan(cv2.cv_scores_.loc[0.01, "fold_0"])
    assert "too few rows" in cv2.fold_errors_[(0, 0.01)]
    assert np.isfinite(cv2.best_score_)
    # 6 training rows < warmup_period=12: every response is zeroed, nothing can be scored
    cv3 = LassoModelCV(lambdas=[0.01], n_splits=9).fit(x, y)
    assert np.isnan(cv3.cv_scores_.loc[0.01, "fold_0"])
    assert "warmup_period" in cv3.fold_errors_[(0, 0.01)]


def test_cv_bad_grid_messages():
    x, y, _ = make_panel(T=60, M=3, N=4)
    with pytest.raises(ValueError, match="lambdas must be"):
        LassoModelCV(lambdas=[0.1, -1]).fit(x, y)
    with pytest.raises(ValueError, match="'auto'"):
        LassoModelCV(lambdas="best").fit(x, y)
    with pytest.raises(ValueError, match="base_model must be a LassoModel"):
        LassoModelCV(base_model=object()).fit(x, y)


def test_parallel_folds_give_the_same_scores():
    x, y, _ = make_panel(T=80, M=3, N=5, seed=9)
    base = LassoModel(model_type="HCGL", engine="cvxpy")
    serial = LassoModelCV(lambdas=[0.01, 0.1], n_splits=3, base_model=base).fit(x, y)
    parallel = LassoModelCV(lambdas=[0.01, 0.1], n_splits=3, base_model=base, n_jobs=2).fit(x, y)
    np.testing.assert_allclose(parallel.cv_scores_, serial.cv_scores_, rtol=0, atol=1e-12)
    assert parallel.best_lambda_ == serial.best_lambda_


@pytest.mark.parametrize("demean, span, warmup", [(True, None, None), (True, 30, 50),
                                                  (False, 30, None), (False, None, 50)])
def test_fold_scorer_equals_the_installed_models_score(demean, span, warmup):
    """CV scores each lambda from the coefficients alone; that must be exactly the score of
    the model a full fit would install (zeroed short responses, intercept, NaN handling)."""
    x, y, _ = make_panel(T=120, M=3, N=6, seed=11)
    y = y.copy()
    y.iloc[:80, 1] = np.nan  # 40 observations: below warmup_period=50
    y.iloc[95:100, 4] = np.nan
    model = LassoModel(demean=demean, span=span, warmup_period=warmup, reg_lambda=0.01)
    x_tr, y_tr, x_te, y_te = x.iloc[:100], y.iloc[:100], x.iloc[100:], y.iloc[100:]
    with pytest.warns(UserWarning) if warmup else contextlib.nullcontext():
        model.fit(x_tr, y_tr)
    score, short = model._scorer(model._fit_setup_)
    assert short.sum() == (1 if warmup else 0)
    rng = np.random.default_rng(0)
    for coef in (model.coef_.to_numpy(), rng.standard_normal(model.coef_.shape)):
        ref = LassoModel(**model.get_params())
        with pytest.warns(UserWarning) if warmup else contextlib.nullcontext():
            ref._install(model._fit_setup_, Solution(coef, "test", 0.0, None), 0.01)
        assert score(coef, x_te.to_numpy(), y_te.to_numpy()) == pytest.approx(
            ref.score(x_te, y_te), rel=1e-12, abs=1e-14
        )


def _signed_wide_panel():
    """26 weekly rows, 18 factors, 6 responses; a random sign matrix (its zeros pin loadings)
    and the panel's prior made to respect it: FCGL's training windows of 5 and 10 rows are
    wide (the random search's seed 1590)."""
    panel = make_factor_panel(26, 18, 6, seed=134660, freq="W-FRI", start="2015-01-02")
    rng = np.random.default_rng(0)
    signs = rng.choice([-1.0, 0.0, 1.0, np.nan], size=(6, 18), p=[0.2, 0.2, 0.2, 0.4])
    prior = panel.prior.to_numpy().copy()
    prior[(signs == 0) | (signs * prior < 0)] = 0.0
    frame = lambda a: pd.DataFrame(a, index=panel.y.columns, columns=panel.x.columns)  # noqa: E731
    kw = dict(model_type="FACTOR_CLUSTER_GROUP_LASSO", warmup_period=2, n_clusters=5,
              factors_beta_loading_signs=frame(signs), factors_beta_prior=frame(prior))
    return panel.x, panel.y, kw


def test_fast_engine_cv_on_a_wide_signed_fcgl_panel_takes_newtons_points():
    """Engine "fast" takes the guesses "auto" takes where the iterations crawl (single
    clusters as LASSO, Newton on the warm start's active blocks and held cells), each certified
    like any other point: the grid's small values on the wide windows had run 20,000
    iterations each, a few ending uncertified, and the CV took ~50 s; now every grid value is
    scored, as on "auto", with at most the few iterations of the grid's top values."""
    x, y, kw = _signed_wide_panel()
    fast = LassoModelCV(base_model=LassoModel(**kw, engine="fast"), n_splits=4, refit=False)
    fast.fit(x, y)
    auto = LassoModelCV(base_model=LassoModel(**kw), n_splits=4, refit=False).fit(x, y)
    assert fast.fold_errors_ == {} == auto.fold_errors_
    np.testing.assert_allclose(fast.cv_scores_, auto.cv_scores_, rtol=1e-6, atol=1e-9)
    # the first window's path, warm-started along the grid as the CV does
    model = LassoModel(**kw, engine="fast")
    rows = expanding_window_splits(len(x), 4)[0][0]
    lam_max = model.lambda_max(x.iloc[rows], y.iloc[rows])
    fits = model.fit_reg_lambda_path(x.iloc[rows], y.iloc[rows],
                                     lam_max * np.geomspace(1e-2, 1e-7, 12))
    assert all(fit.solver_ == "fast" and fit.duality_gap_ <= 1e-8 for fit in fits)
    assert sum(fit.n_iter_ for fit in fits) < 5000
