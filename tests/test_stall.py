"""Engine "auto" gives stalled iterations up early: CVXPY follows anyway.

A random sweep of cooperative and FCGL fits on ragged panels found the proximal iterations on
plateaus, spending their 20,000 iterations before Clarabel answered (``bench_sweep.py``).
``FastEngine.solve(give_up=True)`` now stops once the gap's progress over the second half of
the iterations spent, carried on at the same rate, would not reach the tolerance within the
budget (``_stalled``). The panels below are two of the sweep's: late listings, holes, a missing
factor row, an EWMA span and an OLS prior (cooperative clusters, one cluster), and late
listings with ``loss_normalization="weight_sum"`` (cooperative groups, an L1 share), whose
iterations certify after ~12,500 iterations and must keep doing so.

The same sweep found Newton tries that stall: on a wide sparse-group panel the rows' supports
looked settled every few iterations without being so, and 364 tries finished nothing; after a
try that finishes nothing the next waits twice as long (``_NewtonFinish.step``)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from xl_factorlasso import LassoModel, LassoModelType, make_factor_panel
from xl_factorlasso.core.linear_model._engine import _STALL_START, FastEngine, _stalled

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_sweep import ragged_panel  # noqa: E402  (the sweep's panels)

pytestmark = [
    pytest.mark.filterwarnings("ignore:solver CLARABEL returned an inaccurate solution"),
    pytest.mark.filterwarnings("ignore:Solution may be inaccurate"),
]


def _plateau_case():
    """The sweep's problem 95: one cooperative cluster, span 44.7, OLS prior, (487,40,9) with
    late listings, holes and a missing factor row, at 2e-6 of ``lambda_max``: the iterations
    sat at a gap of 2.4e-5 from iteration 1000 to 2000 and ended at 1.8e-7."""
    _, x, y = ragged_panel(487, 40, 9, seed=95, ragged_seed=924385463, x_rows_missing=1)
    kw = dict(model_type=LassoModelType.COOPERATIVE_CLUSTER_GROUP_LASSO, span=44.7,
              apply_ols_prior=True, n_clusters=1)
    lam = 2.0110315353093488e-06 * LassoModel(**kw).lambda_max(x, y)
    return x, y, dict(kw, reg_lambda=lam)


def _slow_but_certifying_case():
    """The sweep's problem 376: cooperative groups with an L1 share of 0.5 and
    ``weight_sum``, (301,30,24) with late listings and holes, at 6e-6 of ``lambda_max``."""
    _, x, y = ragged_panel(301, 30, 24, seed=376, ragged_seed=778785594)
    labels = np.random.default_rng(376).permutation(np.arange(24) % 5)
    kw = dict(model_type=LassoModelType.COOPERATIVE_GROUP_LASSO, warmup_period=None,
              loss_normalization="weight_sum", l1_weight=0.5,
              group_data=pd.Series([f"g{v}" for v in labels], index=y.columns))
    lam = 6.284341416783936e-06 * LassoModel(**kw).lambda_max(x, y)
    return x, y, dict(kw, reg_lambda=lam)


def _trail(rate, start=1.0, until=4000, every=10):
    """Lowest gaps of iterations converging linearly: ``start * exp(-rate * it)``."""
    return [(k, start * np.exp(-rate * k)) for k in range(0, until + 1, every)]


def test_stalled_projects_the_second_half_rate_against_the_budget():
    # log(1e8) / rate iterations reach 1e-8 from 1: 4605 at rate 4e-3, 92,103 at rate 2e-4
    assert not _stalled(_trail(4e-3), 4000, 1e-8, 20_000)
    assert _stalled(_trail(2e-4), 4000, 1e-8, 20_000)
    assert not _stalled(_trail(2e-4), 4000, 1e-8, 100_000)  # a budget that covers it
    # a plateau over the second half, whatever came before
    plateau = [(k, 1e-3 if k < 1500 else 1e-5) for k in range(0, 4001, 10)]
    assert _stalled(plateau, 4000, 1e-8, 20_000)
    # no finite gap yet: given up; progress from an infinite gap: too early to judge
    assert _stalled([(k, np.inf) for k in range(0, 2001, 10)], 2000, 1e-8, 20_000)
    late = [(k, np.inf if k < 1500 else 1e-3) for k in range(0, 2001, 10)]
    assert not _stalled(late, 2000, 1e-8, 20_000)


def test_auto_hands_a_plateau_to_clarabel_early_with_the_same_answer():
    x, y, kw = _plateau_case()
    model = LassoModel(**kw)
    setup = model._setup(x, y)
    engine = model._solver(setup, kw["reg_lambda"]).engine
    lam = kw["reg_lambda"]
    kept_on = engine.solve(lam, max_iter=6000)
    gave_up = engine.solve(lam, max_iter=6000, give_up=True)
    assert not kept_on.certified and kept_on.iterations == 6000
    assert not gave_up.certified and _STALL_START <= gave_up.iterations < 6000
    assert not engine._give_up  # (the flag holds for one solve)

    auto = LassoModel(**kw).fit(x, y)
    reference = LassoModel(**kw, engine="cvxpy").fit(x, y)
    assert auto.solver_.startswith("CLARABEL") and "fast engine not certified" in auto.solver_
    assert auto.duality_gap_ <= 1e-8 * abs(auto.objective_value_)
    np.testing.assert_allclose(auto.objective_value_, reference.objective_value_, rtol=1e-9)


def test_iterations_that_certify_late_are_not_given_up():
    x, y, kw = _slow_but_certifying_case()
    model = LassoModel(**kw).fit(x, y)
    assert model.solver_ == "fast" and model.n_iter_ > 4 * _STALL_START
    assert model.duality_gap_ <= 1e-8 * abs(model.objective_value_)


def test_newton_tries_that_finish_nothing_back_off(monkeypatch):
    # the sweep's problem 493: GROUP_LASSO rows with an L1 share of 0.9 on (57,73,67), a span,
    # no demeaning, weight_sum, at 1.9e-5 of lambda_max: 1780 iterations with or without it
    panel = make_factor_panel(57, 73, 67, seed=493)
    labels = np.random.default_rng(493).permutation(np.arange(67) % 5)
    kw = dict(model_type=LassoModelType.GROUP_LASSO, span=64.1, demean=False,
              warmup_period=37, loss_normalization="weight_sum", l1_weight=0.9,
              group_data=pd.Series([f"g{v}" for v in labels], index=panel.y.columns))
    kw["reg_lambda"] = 1.8542189489413052e-05 * LassoModel(**kw).lambda_max(panel.x, panel.y)
    tries = []
    newton_row = FastEngine._newton_row

    def counted(self, *args, **kwargs):
        tries.append(1)
        return newton_row(self, *args, **kwargs)

    monkeypatch.setattr(FastEngine, "_newton_row", counted)
    model = LassoModel(**kw).fit(panel.x, panel.y)
    assert model.solver_ == "fast" and model.n_iter_ > 1000
    assert model.duality_gap_ <= 1e-8 * abs(model.objective_value_)
    assert len(tries) <= 30  # 364 before the back-off
