"""Time-series cross-validation of ``reg_lambda`` with ``LassoModelCV`` (expanding windows).

Data: a SYNTHETIC weekly panel from ``make_factor_panel`` (5 years, 8 factors, 20 assets,
population R² 0.5). The last year is held out; cross-validation only sees the first four.

``LassoModelCV`` splits the training sample into expanding windows: with ``n_splits=5`` the
sample is cut into 6 equal blocks, fold ``i`` trains on blocks ``0..i`` and scores (mean R²
across assets) on block ``i+1`` — never on the past. Two grids are compared:

* the default grid — 20 absolute values from 1e-6 to 1e-1 (factorlasso's grid, independent of
  the scale of the data);
* ``lambdas="auto"`` — a log grid below ``lambda_max``, the smallest penalty that zeroes every
  loading, so the grid always brackets the interesting range.

Run: ``python examples/cv_lambda_selection.py``
"""

from __future__ import annotations

import numpy as np

from xl_factorlasso import LassoModel, LassoModelCV, LassoModelType
from xl_factorlasso.core.datasets import make_factor_panel
from xl_factorlasso.core.linear_model import lambda_max

TOL = 1e-4


def describe(name: str, cv: LassoModelCV, x_test, y_test, truth) -> None:
    """Print the CV curve and the held-out performance of the refitted best model."""
    mean = cv.cv_scores_.mean(axis=1)
    grid = np.asarray(cv.lambdas_, dtype=float)
    print(
        f"\n{name}: {len(grid)} lambdas in [{grid.min():.3g}, {grid.max():.3g}], "
        f"{cv.cv_scores_.shape[1]} folds"
    )
    print("  lambda        mean CV R2")
    for lam, score in mean.items():
        mark = "  <- best" if np.isclose(lam, cv.best_lambda_) else ""
        print(f"  {lam:10.4g}   {score:9.4f}{mark}")
    coef = cv.best_model_.coef_
    active = int((coef.abs() > TOL).to_numpy().sum())
    edge = np.isclose(cv.best_lambda_, grid.max()) or np.isclose(cv.best_lambda_, grid.min())
    print(
        f"result {name}: best_lambda={cv.best_lambda_:.4g} best_cv_r2={cv.best_score_:.4f} "
        f"test_r2={cv.score(x_test, y_test):.4f} active={active}/{coef.size} "
        f"(true {int((truth != 0).to_numpy().sum())}){' [at grid edge]' if edge else ''}"
    )


def main() -> None:
    panel = make_factor_panel(260, 8, 20, seed=4, freq="W-FRI", start="2019-01-04")
    x, y = panel.x, panel.y
    split = 208  # four years to train/validate, one year held out
    x_tr, y_tr, x_te, y_te = x.iloc[:split], y.iloc[:split], x.iloc[split:], y.iloc[split:]
    print(panel.description)
    lam_max = lambda_max(x_tr, y_tr)
    print(
        f"train {x_tr.index[0]:%Y-%m-%d}..{x_tr.index[-1]:%Y-%m-%d} ({split} weeks), "
        f"test {len(x_te)} weeks; lambda_max on the training sample = {lam_max:.4g}"
    )

    base = LassoModel(model_type=LassoModelType.LASSO, warmup_period=None)
    default = LassoModelCV(n_splits=5, base_model=base).fit(x_tr, y_tr)
    describe("default grid", default, x_te, y_te, panel.coef)

    auto = LassoModelCV(lambdas="auto", n_splits=5, base_model=base).fit(x_tr, y_tr)
    describe("lambdas='auto'", auto, x_te, y_te, panel.coef)
    print(f"auto best lambda = {auto.best_lambda_ / lam_max:.3f} x lambda_max")

    oracle = LassoModel(model_type=LassoModelType.LASSO, reg_lambda=0.0, warmup_period=None)
    print(
        f"\nreference: unpenalised fit test R2 = {oracle.fit(x_tr, y_tr).score(x_te, y_te):.4f}; "
        f"true population R2 = {panel.population_r2.mean():.2f}"
    )


if __name__ == "__main__":
    main()
