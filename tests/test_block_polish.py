"""FCGL on a wide panel (more factors than rows) at the default penalty: CVXPY's point turned
into Newton's on the blocks it holds active (``block_polish``), the accurate norms that needs
(``block_newton(..., accurate=True)``), and where engine "auto" skips the fast engine
(``blocks_crawl``)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.test_engine import TIGHT
from xl_factorlasso import LassoModel, LassoModelType, make_factor_panel
from xl_factorlasso.core.exceptions import SolveError
from xl_factorlasso.core.linear_model import FastEngine
from xl_factorlasso.core.linear_model._block_newton import (
    block_activity,
    block_kkt,
    block_newton,
    block_polish,
)
from xl_factorlasso.core.linear_model._homotopy import blocks_crawl

FCGL = LassoModelType.FACTOR_CLUSTER_GROUP_LASSO

pytestmark = [
    pytest.mark.filterwarnings("ignore:solver CLARABEL returned an inaccurate solution"),
    pytest.mark.filterwarnings("ignore:Solution may be inaccurate"),
]


def _wide(seed=1):
    """40 rows, 60 factors, 10 assets: every Gram singular; the default reg_lambda is about
    1e-6 of lambda_max."""
    return make_factor_panel(40, 60, 10, seed=seed)


def _engine_and_clarabel(panel, params=None):
    """The problem's engine, reg_lambda, and Clarabel's own point (before any certificate or
    polish), at its default tolerances (those of the fit) or ``params``."""
    model = LassoModel(model_type=FCGL, warmup_period=None, engine="cvxpy")
    setup = model._setup(panel.x, panel.y)
    solver = model._solver(setup, model.reg_lambda)
    _, coef = solver.problem(model.reg_lambda).solve(model.reg_lambda, "CLARABEL",
                                                    params or {}, False)
    return solver.engine, model.reg_lambda, setup, coef


@pytest.mark.parametrize("seed", [1, 2])
def test_default_penalty_on_a_wide_panel_is_certified(seed):
    """The fit used to raise SolveError (neither the fast engine nor Clarabel at its default
    tolerances reached a gap of 1e-8); it now returns Clarabel's point polished, certified, at
    an objective no higher than Clarabel's at tight tolerances and with the same fitted
    values."""
    panel = _wide(seed)
    fit = LassoModel(model_type=FCGL, warmup_period=None).fit(panel.x, panel.y)
    assert fit.solver_ == "CLARABEL + fast polish (fast engine skipped: singular Gram, " \
                          "small penalty)"
    assert fit.duality_gap_ <= 1e-8
    engine, lam, setup, default = _engine_and_clarabel(panel)
    assert lam < 1e-5 * setup.lambda_max
    assert engine.relative_gap(default, lam) > 1e-8  # what the fit had to polish
    clarabel = _engine_and_clarabel(panel, TIGHT)[3]
    ours = fit.coef_.to_numpy()
    # within our certified gap of Clarabel's best (its own gap is 1e-9 here)
    assert engine.objective(ours, lam) <= engine.objective(clarabel, lam) * (1 + 1e-9)
    x = panel.x.to_numpy() - panel.x.to_numpy().mean(axis=0)
    np.testing.assert_allclose(x @ ours.T, x @ clarabel.T, atol=1e-5)
    # the blocks we leave at zero are the ones Clarabel drives towards zero
    _, ours_norms = block_activity(engine, ours)
    _, ref_norms = block_activity(engine, clarabel)
    zero = ours_norms == 0.0
    assert zero.any() and (~zero).sum() > engine.n_units * 20  # most blocks active
    assert (ref_norms[zero] < 1e-4 * ref_norms.max()).all()


def test_the_fast_engine_alone_still_runs_out_of_iterations():
    """What the skip avoids: engine "fast" is the user's explicit choice and still iterates,
    and does not certify this problem within its budget."""
    panel = _wide()
    with pytest.raises(SolveError, match="fast engine not certified"):
        LassoModel(model_type=FCGL, warmup_period=None, engine="fast",
                   engine_params={"max_iter": 2000}).fit(panel.x, panel.y)


def test_polish_finds_the_active_blocks_of_an_interior_point():
    """From Clarabel's point (every block nonzero, the inactive ones some orders below the
    largest), every cluster gets Newton's point on its active blocks: zero blocks meet their
    conditions and the gap is at round-off, far below Clarabel's own."""
    engine, lam, _, clarabel = _engine_and_clarabel(_wide())
    assert block_activity(engine, clarabel)[0].all()
    out, taken = block_polish(engine, clarabel, lam)
    assert taken.all()
    assert block_kkt(engine, out, lam).all()
    assert engine.relative_gap(out, lam) <= 1e-9 < engine.relative_gap(clarabel, lam)


def test_accurate_norms_are_what_lets_newton_land():
    """On the same active blocks, Newton with the norms from ``K^-1 Q K^-1`` stalls (K is as
    ill-conditioned as the singular Gram makes it) while the accurate norms converge."""
    engine, lam, _, clarabel = _engine_and_clarabel(_wide())
    polished, _ = block_polish(engine, clarabel, lam)
    rows = np.ones(engine.n, dtype=bool)
    cheap, cheap_solved = block_newton(engine, polished, lam, rows)
    accurate, accurate_solved = block_newton(engine, polished, lam, rows, accurate=True)
    assert accurate_solved.all() and not cheap_solved.all()
    assert engine.relative_gap(accurate, lam) <= 1e-9


def test_where_auto_skips_the_fast_engine():
    """Only FCGL without an L1 share, every Gram singular, below 1% of lambda_max."""
    def engine_of(x, y, **kw):
        setup = LassoModel(model_type=FCGL, warmup_period=None, **kw)._setup(x, y)
        return FastEngine(setup.stats, setup.spec), setup.lambda_max

    wide = _wide()
    engine, top = engine_of(wide.x, wide.y)
    assert blocks_crawl(engine, 1e-3 * top, top)
    assert not blocks_crawl(engine, 2e-2 * top, top)
    assert not blocks_crawl(engine, 0.0, top)
    sparse_group, top = engine_of(wide.x, wide.y, l1_weight=0.1)
    assert not blocks_crawl(sparse_group, 1e-3 * top, top)
    tall = make_factor_panel(200, 10, 10, seed=0)
    engine, top = engine_of(tall.x, tall.y)
    assert not blocks_crawl(engine, 1e-3 * top, top)
    # a ragged panel where only a short history's Gram is singular (3 rows, 5 factors)
    panel = make_factor_panel(100, 5, 6, seed=0)
    y = panel.y.copy()
    y.iloc[:97, 0] = np.nan
    engine, top = engine_of(panel.x, y)
    assert not bool(engine._invertible.all())
    assert not blocks_crawl(engine, 1e-3 * top, top)
