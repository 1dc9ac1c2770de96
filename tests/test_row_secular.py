"""Row groups without an L1 share: the closed-form finish up to one scalar per response
(``FastEngine._newton_row_secular``) and the cold start that tries it before any iteration."""

from __future__ import annotations

import numpy as np
import pytest

from tests.test_engine import _fit_pair, _kwargs, assert_same_minimiser
from tests.test_lasso_reference_cvxpy import make_ragged_panel
from xl_factorlasso import LassoModel, make_factor_panel
from xl_factorlasso.core.linear_model import FastEngine, _engine

pytestmark = [
    pytest.mark.filterwarnings("ignore:solver CLARABEL returned an inaccurate solution"),
    pytest.mark.filterwarnings("ignore:Solution may be inaccurate"),
]


def _row_stationarity(engine, coef, lam):
    """Largest |(2/T')(G b - c) + lambda w D_i / ||D_i|| | over the nonzero rows, relative to
    the largest gradient: the optimality condition written out here."""
    d = coef - engine.prior
    grad = (2.0 / engine.t_rows) * (engine._gram_times(coef) - engine.xty)
    norm = np.linalg.norm(d, axis=1, keepdims=True)
    on = norm[:, 0] > 0
    res = grad[on] + lam * engine.group_w[on, None] * d[on] / norm[on]
    return np.abs(res).max() / np.abs(grad).max()


# lambdas at which 3-4 of the 7 rows are active and Clarabel at 1e-12 is within the allowance
@pytest.mark.parametrize("model_type, lam", [("HCGL", 0.3), ("GROUP_LASSO", 0.3)])
def test_secular_finish_from_the_prior_and_from_a_perturbed_point(model_type, lam):
    """On a ragged panel (several Grams) with a span: from the prior (the upper-bound start) and
    from a point 1e-3 off, the candidate of every active row is the minimiser — stationarity at
    round-off, equal to tight CVXPY."""
    x, y = make_ragged_panel(seed=8)
    kw = _kwargs(model_type, 26, 0.0, False, x, y, reg_lambda=lam)
    fast, ref = _fit_pair(kw, x, y)
    assert_same_minimiser(fast, ref)
    setup = fast._fit_setup_
    engine = FastEngine(setup.stats, setup.spec)
    assert len(engine.gram) > 1
    best = fast.coef_.to_numpy()
    active = np.abs(best - engine.prior).sum(axis=1) > 0
    assert 2 <= active.sum() < engine.n  # active rows and zero rows: the test has teeth
    rng = np.random.default_rng(0)
    for start in (engine.prior.copy(),
                  best * (1 + 1e-3 * rng.standard_normal(best.shape))):
        # every row tried: the zero rows (no root) fail alone, the others are solved
        cand, done = engine._newton_row_secular(start, lam, np.ones_like(best),
                                                np.ones(engine.n, dtype=bool))
        assert done[active].all() and not done[~active].any()
        out = np.where(active[:, None], cand, best)
        np.testing.assert_allclose(out, best, atol=1e-9)
        assert _row_stationarity(engine, out, lam) <= 1e-12
        gap, objective = engine.duality_gap(out, lam)
        assert gap / objective <= 1e-13


@pytest.mark.parametrize("signed", [False, True])
def test_cold_start_with_and_without_the_secular_finish_agree(monkeypatch, signed):
    """HCGL on a complete panel: the same minimiser with the closed-form finish and without it
    (proximal iterations and the dense row Newton); without signs it needs no iteration. With
    signs (binding bounds) the rows it cannot take go through the iterations."""
    p = make_factor_panel(400, 6, 40, seed=4)
    kw = dict(model_type="HCGL", warmup_period=None)
    if signed:
        signs = np.where(np.random.default_rng(3).random((40, 6)) < 0.3, 1.0, np.nan)
        kw["factors_beta_loading_signs"] = signs
    lam = 0.05 * LassoModel(**kw).lambda_max(p.x, p.y)
    setup = LassoModel(reg_lambda=lam, **kw)._setup(p.x, p.y)
    with_finish = FastEngine(setup.stats, setup.spec).solve(lam)
    monkeypatch.setattr(_engine, "_SECULAR_PATTERNS", 0)
    without = FastEngine(setup.stats, setup.spec).solve(lam)
    assert with_finish.certified and without.certified
    np.testing.assert_allclose(with_finish.coef, without.coef, atol=1e-8)
    if signed:
        assert (with_finish.coef == 0.0).any()  # some bound binds
    else:
        assert with_finish.iterations == 0 < without.iterations
        engine = FastEngine(setup.stats, setup.spec)
        assert _row_stationarity(engine, with_finish.coef, lam) <= 1e-12


def test_sparse_group_rows_on_a_wide_panel_get_the_newton_finish(monkeypatch):
    """More factors than rows (N M^2 beyond the narrow cap, N M^3 within the wide one): the row
    Newton finish runs, and a warm-started descent of a sparse-group grid needs a fraction of
    the iterations the finish-less engine spends, to the same minimisers."""
    panel = make_factor_panel(100, 200, 10, seed=4)
    model = LassoModel(model_type="HIERARCHICAL_CLUSTER_GROUP_LASSO", l1_weight=0.1,
                       warmup_period=None, factors_beta_loading_signs=panel.signs,
                       factors_beta_prior=panel.prior)
    setup = model._setup(panel.x, panel.y)
    lams = setup.lambda_max * np.array([0.3, 0.1, 0.03, 0.01])

    def descent():
        engine = FastEngine(setup.stats, setup.spec)
        coef, out, spent = None, [], 0
        for lam in lams:
            result = engine.solve(float(lam), coef_init=coef)
            assert result.certified
            coef, spent = result.coef, spent + result.iterations
            out.append(coef)
        return engine, out, spent

    engine, with_finish, fewer = descent()
    assert engine.geometry == "row" and engine.n * engine.m ** 2 > _engine._ROW_NEWTON_MAX
    assert engine._row_newton_sized() and not engine._row_newton_runs()
    monkeypatch.setattr(_engine, "_ROW_NEWTON_WIDE_MAX", 0.0)
    engine, without, more = descent()
    assert not engine._row_newton_sized()
    assert fewer < 0.5 * more
    for a, b in zip(with_finish, without, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
