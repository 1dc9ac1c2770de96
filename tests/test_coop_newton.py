"""Cooperative blocks on wide panels at small penalties: Newton's step on the iterates' face,
and a quick SolveError where the gap's rounding makes any certificate impossible.

A random search found ``LassoModelCV`` with the cooperative penalties on tiny panels (more
factors than training rows) spending 40-140 s: every grid value below ~1e-5 ran the engine's
20,000 iterations, uncertified, then again from the prior (engine "fast"), or 2,000 iterations,
two CLARABEL solves and a 20,000-iteration polish (engine "auto") before its SolveError.
:mod:`xl_factorlasso.core.linear_model._coop_newton` alternates rounds of iterations with
Newton's step on the face of their iterate (the cooperative objective is smooth there), and
stops at once where the duality gap's rounding floor exceeds what ``tol`` allows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from xl_factorlasso import LassoModel, LassoModelCV, LassoModelType, make_factor_panel
from xl_factorlasso.core.exceptions import SolveError
from xl_factorlasso.core.linear_model._coop_newton import _FIRST_ROUND

pytestmark = [
    pytest.mark.filterwarnings("ignore:solver CLARABEL returned an inaccurate solution"),
    pytest.mark.filterwarnings("ignore:Solution may be inaccurate"),
]


def _wide_panel():
    """The random search's seed 344: 15 weekly rows, 21 factors, 3 responses, one group."""
    panel = make_factor_panel(15, 21, 3, seed=410204, freq="W-FRI", start="2015-01-02")
    kw = dict(model_type=LassoModelType.COOPERATIVE_GROUP_LASSO,
              group_data=pd.Series("g0", index=panel.y.columns), l1_weight=0.0,
              factors_beta_prior=panel.prior, demean=False, warmup_period=None)
    return panel.x, panel.y, kw


@pytest.mark.parametrize("reg_lambda", [1e-5, 1e-6])
def test_wide_cooperative_fit_at_a_small_penalty_is_certified_by_the_fast_engine(reg_lambda):
    # 6 rows, 21 factors, from the prior: the iterations alone took 16,880 iterations at 1e-5
    # and ended uncertified after 20,000 at 1e-6 (SolveError); a continuation from
    # lambda_max / 2 with Newton's step certifies both in under 3,000
    x, y, kw = _wide_panel()
    x, y = x.iloc[:6], y.iloc[:6]
    fast = LassoModel(**kw, engine="fast", reg_lambda=reg_lambda).fit(x, y)
    assert fast.solver_ == "fast" and fast.n_iter_ <= 4000
    # the independent certificate, recomputed from the installed loadings
    engine = fast._solver(fast._fit_setup_).engine
    gap = engine.relative_gap(fast.coef_.to_numpy(), reg_lambda)
    assert gap <= 1e-8 and fast.duality_gap_ <= 1e-8
    reference = LassoModel(**kw, engine="cvxpy", reg_lambda=reg_lambda).fit(x, y)
    assert fast.objective_value_ <= reference.objective_value_ * (1 + 1e-12)
    np.testing.assert_allclose(fast.objective_value_, reference.objective_value_, rtol=1e-8)


def test_wide_cooperative_cv_scores_every_fold_that_has_enough_rows():
    # default grid, 5 folds of 2-10 training rows: 14 grid values of the three folds with
    # 6, 8 and 10 rows failed (40,000 iterations each), the CV took ~100 s
    x, y, kw = _wide_panel()
    cv = LassoModelCV(base_model=LassoModel(**kw, engine="fast"), n_splits=5,
                      refit=False).fit(x, y)
    scores = cv.cv_scores_
    assert scores[["fold_0", "fold_1"]].isna().all().all()  # 2 and 4 rows: too few
    assert np.isfinite(scores[["fold_2", "fold_3", "fold_4"]].to_numpy()).all()
    assert {k for k, _ in cv.fold_errors_} == {0, 1}
    assert all("too few rows" in message for message in cv.fold_errors_.values())


def _badly_scaled_panel():
    """Factors in units 1e4 times too small (Gram entries ~1e9) and a prior, on a few rows:
    at absolute penalties of 1e-1 and below (~1e-10 of ``lambda_max``) the objective lies
    below the rounding of the gap's terms."""
    panel = make_factor_panel(22, 20, 10, seed=1139)
    kw = dict(model_type=LassoModelType.COOPERATIVE_CLUSTER_GROUP_LASSO, l1_weight=0.3,
              span=26.0, loss_normalization="weight_sum", factors_beta_prior=panel.prior,
              warmup_period=None)
    return panel.x * 1e4, panel.y, kw


def test_an_uncertifiable_gap_is_said_after_one_round():
    # engine "fast": no CVXPY solve, no polish; "auto" tries CVXPY from the prior, and its
    # polish stops after one round
    x, y, kw = _badly_scaled_panel()
    for engine, attempts in (("fast", 1), ("auto", None)):
        model = LassoModel(**kw, engine=engine, reg_lambda=0.1)
        with pytest.raises(SolveError, match="cannot be certified") as caught:
            model.fit(x.iloc[:7], y.iloc[:7])
        assert f"after {_FIRST_ROUND} iterations" in str(caught.value)
        if attempts is not None:
            assert len(caught.value.attempts) == attempts
        assert not hasattr(model, "coef_")


def test_uncertifiable_cv_grid_values_are_fold_errors():
    x, y, kw = _badly_scaled_panel()
    cv = LassoModelCV(base_model=LassoModel(**kw), n_splits=2, lambdas=[0.1, 1e-3],
                      refit=False)
    with pytest.raises(ValueError, match="failed on every fold.*cannot be certified"):
        cv.fit(x, y)
