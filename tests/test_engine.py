"""The fast engine against the CVXPY reference, its proximal operators and its certificate.

* every model type x span x l1_weight x signs+prior on a ragged panel: ``engine="fast"`` equals
  ``engine="cvxpy"`` with tight Clarabel tolerances (coefficients, objective no worse);
* the proximal operators against a CVXPY prox written here (random points, random boxes);
* the duality gap is an upper bound of the suboptimality at arbitrary feasible points;
* exact zeros, singular Grams, warm starts, the uncertified path and its fallback;
* property tests: signs always hold, lambda >= lambda_max gives exactly the prior.
"""

from __future__ import annotations

import warnings

import cvxpy as cp
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import make_panel
from tests.test_lasso_properties import problems
from tests.test_lasso_reference_cvxpy import GROUPS, make_ragged_panel, make_signs_prior
from xl_factorlasso import LassoModel, LassoModelCV, expanding_window_splits, make_factor_panel
from xl_factorlasso.core.exceptions import SolveError
from xl_factorlasso.core.linear_model import FastEngine
from xl_factorlasso.core.linear_model._formulation import LassoProblem
from xl_factorlasso.core.linear_model._prox import prox_l1_box, prox_sparse_group

# At 1e-12 Clarabel's last KKT solves are ill-conditioned; a smaller static regularisation and
# more iterative refinement let it get there (measured on 256 reference problems: coefficients
# within 3e-6 of the certified minimiser instead of 2e-5).
TIGHT = {"tol_gap_abs": 1e-12, "tol_gap_rel": 1e-12, "tol_feas": 1e-12, "tol_ktratio": 1e-12,
         "static_regularization_constant": 1e-12, "iterative_refinement_reltol": 1e-16,
         "iterative_refinement_abstol": 1e-16, "iterative_refinement_max_iter": 50}
PROX_TIGHT = {"tol_gap_abs": 1e-12, "tol_gap_rel": 1e-12, "tol_feas": 1e-12, "tol_ktratio": 1e-12}
COEF_TOL = 1e-6  # Clarabel at 1e-12 stops about this far from the kinks
MODEL_TYPES = ["LASSO", "GROUP_LASSO", "HCGL", "FCGL"]

pytestmark = [
    pytest.mark.filterwarnings("ignore:solver CLARABEL returned an inaccurate solution"),
    pytest.mark.filterwarnings("ignore:Solution may be inaccurate"),
]


def _kwargs(model_type, span, l1_weight, signed, x, y, reg_lambda=0.05):
    kw = dict(
        model_type=model_type, span=span, l1_weight=l1_weight, reg_lambda=reg_lambda,
        warmup_period=None,
    )
    if model_type == "GROUP_LASSO":
        kw["group_data"] = GROUPS
    if signed:
        signs, prior = make_signs_prior(x, y)
        kw.update(factors_beta_loading_signs=signs, factors_beta_prior=prior)
    return kw


def _fit_pair(kw, x, y):
    fast = LassoModel(engine="fast", **kw).fit(x, y)
    ref = LassoModel(engine="cvxpy", solver_params=TIGHT, **kw).fit(x, y)
    return fast, ref


def assert_same_minimiser(fast, ref):
    """Objective no worse than the reference; coefficients equal to COEF_TOL, or else the
    difference is what the reference's own excess objective allows.

    Where the loss curvature is small (EWMA weights), Clarabel at 1e-12 can stop ~1e-5 away in
    the coefficients while its objective is ~1e-11 higher. With ``mu`` the strong convexity
    modulus of the objective, ``F(B) - F* >= mu/2 ||B - B*||^2`` bounds both distances to the
    minimiser: by the reference's excess over our certified objective, and by our gap.
    """
    assert fast.objective_value_ <= ref.objective_value_ * (1 + 1e-12)
    diff = np.abs(fast.coef_.to_numpy() - ref.coef_.to_numpy())
    if diff.max() <= COEF_TOL:
        return
    stats = fast._fit_setup_.stats
    mu = 2.0 / stats.n_rows * np.linalg.eigvalsh(stats.gram)[:, 0].min()
    gap = fast.duality_gap_ * fast.objective_value_
    excess = ref.objective_value_ - fast.objective_value_ + gap
    bound = np.sqrt(2 * excess / mu) + np.sqrt(2 * gap / mu)
    # the bound itself must be small (a loose one would pass anything): on an AMD EPYC
    # Clarabel's points lay 1.1e-5 (GROUP_LASSO, span 30) and 4.2e-5 (HCGL on a ragged panel)
    # away in one cell, within bounds of 4e-5 and 2.3e-4
    assert np.linalg.norm(diff) <= bound <= 1000 * COEF_TOL, (diff.max(), bound)


# ---------------------------------------------------------------- engine == CVXPY reference
@pytest.mark.parametrize("model_type", MODEL_TYPES)
@pytest.mark.parametrize("span", [None, 30])
@pytest.mark.parametrize("l1_weight", [0.0, 0.2])
@pytest.mark.parametrize("signed", [False, True])
def test_fast_engine_equals_cvxpy_reference(model_type, span, l1_weight, signed):
    x, y = make_ragged_panel()
    kw = _kwargs(model_type, span, l1_weight, signed, x, y)
    fast, ref = _fit_pair(kw, x, y)
    assert fast.solver_ == "fast" and fast.solver_status_ == "optimal"
    assert fast.duality_gap_ <= 1e-8 and fast.n_iter_ >= 0
    # engine="cvxpy": CVXPY's answer, certified by the shared duality gap (polished by the
    # engine only in the rare case where Clarabel stops short of 1e-8)
    assert ref.solver_ in ("CLARABEL", "CLARABEL (optimal_inaccurate, certified)",
                           "CLARABEL + fast polish")
    assert ref.solver_status_ == "optimal" and ref.duality_gap_ <= 1e-8
    assert (ref.n_iter_ is None) == (ref.solver_ != "CLARABEL + fast polish")
    # Independently of any certificate: the raw interior-point answer of the programme is
    # feasible and no better than the fast engine's
    setup = fast._fit_setup_
    status, raw = LassoProblem(setup.stats, setup.spec).solve(0.05, "CLARABEL", TIGHT)
    assert status in ("optimal", "optimal_inaccurate")
    assert np.all((raw >= setup.spec.lower_upper()[0]) & (raw <= setup.spec.lower_upper()[1]))
    assert fast.objective_value_ <= fast.objective(raw) * (1 + 1e-12)
    # the objective is never worse than the interior point's (both evaluated exactly)
    assert_same_minimiser(fast, ref)
    # the certificate bounds the distance to the reference's objective too
    assert ref.objective_value_ >= fast.objective_value_ * (1 - fast.duality_gap_) - 1e-15
    # cells the reference finds at zero (with a zero prior) are exact zeros here
    prior = (
        np.zeros(fast.coef_.shape) if not signed
        else kw["factors_beta_prior"].loc[y.columns, x.columns].fillna(0.0).to_numpy()
    )
    near = (np.abs(ref.coef_.to_numpy()) < 1e-8) & (prior == 0.0)
    assert np.all(fast.coef_.to_numpy()[near] == 0.0)


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_fast_engine_equals_cvxpy_across_lambdas(model_type):
    x, y = make_ragged_panel(seed=3)
    kw = _kwargs(model_type, 20, 0.2, True, x, y)
    lam_max = LassoModel(**kw).lambda_max(x, y)
    for fraction in (0.0, 1e-3, 0.1, 0.6):
        kw["reg_lambda"] = fraction * lam_max
        fast, ref = _fit_pair(kw, x, y)
        assert_same_minimiser(fast, ref)


@pytest.mark.filterwarnings("ignore:x. factor .* is constant on every row")
def test_singular_gram_short_history_and_constant_factor():
    """Fewer observations than factors and a constant factor: Grams are singular."""
    x, y = make_ragged_panel(seed=4)
    x["f3"] = 1.0  # constant: zero after demeaning
    y.iloc[:97, 2] = np.nan  # three observations for four factors
    for model_type in ("LASSO", "FCGL"):
        kw = _kwargs(model_type, None, 0.2, True, x, y, reg_lambda=0.02)
        fast, ref = _fit_pair(kw, x, y)
        assert_same_minimiser(fast, ref)


def test_default_engine_is_fast_and_explicit_cvxpy_requests_are_honoured():
    x, y, _ = make_panel()
    assert LassoModel().fit(x, y).solver_ == "fast"
    assert LassoModel(solver_params={"tol_gap_rel": 1e-9}).fit(x, y).solver_ == "CLARABEL"
    assert LassoModel(engine="cvxpy").fit(x, y).solver_ == "CLARABEL"
    assert LassoModel().get_params()["engine"] == "auto"


# ---------------------------------------------------------------- uncertified path
def test_uncertified_solve_falls_back_to_cvxpy_and_says_so():
    x, y, _ = make_panel(seed=2)
    model = LassoModel(model_type="FCGL", reg_lambda=0.01, engine_params={"max_iter": 1})
    model.fit(x, y)
    assert model.solver_.startswith("CLARABEL (fast engine not certified: gap ")
    assert model.solver_status_ == "optimal" and model.duality_gap_ <= 1e-8
    ref = LassoModel(model_type="FCGL", reg_lambda=0.01, engine="cvxpy").fit(x, y)
    np.testing.assert_allclose(model.coef_, ref.coef_, atol=1e-12)


def test_fast_engine_raises_when_uncertified_and_keeps_previous_fit(iterations_only):
    # (one iteration: without the active-set steps, which solve this panel without any)
    x, y, _ = make_panel(seed=2)
    model = LassoModel(reg_lambda=0.01, engine="fast").fit(x, y)
    before = model.coef_.copy()
    model.set_params(engine_params={"max_iter": 1, "tol": 1e-15})
    with pytest.raises(SolveError, match="fast engine not certified") as info:
        model.fit(x, y)
    assert info.value.attempts[0][0] == "fast"
    pd.testing.assert_frame_equal(model.coef_, before)


def test_failed_fallback_reports_both_attempts(monkeypatch, iterations_only):
    from xl_factorlasso.core.linear_model import _formulation

    def broken(self, *args, **kwargs):
        return "infeasible", None

    monkeypatch.setattr(_formulation.LassoProblem, "solve", broken)
    x, y, _ = make_panel(seed=2)
    with pytest.raises(SolveError, match=r"could not be solved to a certified optimum .*"
                       r"fast: fast engine not certified.*; CLARABEL: infeasible$") as info:
        LassoModel(reg_lambda=0.01, engine_params={"max_iter": 1}).fit(x, y)
    assert [a[0] for a in info.value.attempts] == ["fast", "CLARABEL"]
    assert info.value.gap > 1e-8  # the best gap any attempt reached: the fast engine's


@pytest.mark.parametrize(
    "params, message",
    [
        ({"engine": "gpu"}, "engine must be 'auto', 'fast' or 'cvxpy'"),
        ({"engine_params": {"iters": 3}}, "engine_params: unknown key 'iters'"),
        ({"engine_params": {"tol": 0}}, r"engine_params\['tol'\] must be a number > 0"),
        ({"engine_params": {"max_iter": 0}}, r"engine_params\['max_iter'\] must be a whole"),
        ({"engine_params": [1]}, "engine_params must be a dict"),
    ],
)
def test_engine_parameters_are_validated(params, message):
    x, y, _ = make_panel()
    with pytest.raises(ValueError, match=message):
        LassoModel(**params).fit(x, y)


# ---------------------------------------------------------------- the certificate
@pytest.mark.parametrize("model_type", MODEL_TYPES)
@pytest.mark.parametrize("reg_lambda", [0.0, 0.01, 0.3])
def test_duality_gap_bounds_the_suboptimality_anywhere(model_type, reg_lambda):
    x, y = make_ragged_panel(seed=5)
    kw = _kwargs(model_type, 30, 0.2, True, x, y, reg_lambda=reg_lambda)
    setup = LassoModel(**kw)._setup(x, y)
    engine = FastEngine(setup.stats, setup.spec)
    best = engine.solve(reg_lambda, tol=1e-13)
    assert best.certified
    f_star = engine.objective(best.coef, reg_lambda)
    rng = np.random.default_rng(0)
    for k in range(40):
        coef = best.coef + rng.standard_normal(best.coef.shape) * 10.0 ** rng.uniform(-7, 0)
        if k % 2:
            coef[rng.random(coef.shape) < 0.3] = 0.0  # points on the sign bounds
        coef = np.clip(coef, engine.lo, engine.hi)
        gap, objective = engine.duality_gap(coef, reg_lambda)
        assert objective == pytest.approx(engine.objective(coef, reg_lambda), rel=1e-12)
        assert gap >= (objective - f_star) - 1e-12 * objective


def test_warm_start_reaches_the_same_solution_faster():
    x, y = make_ragged_panel(seed=6)
    kw = _kwargs("HCGL", None, 0.2, True, x, y)
    setup = LassoModel(**kw)._setup(x, y)
    engine = FastEngine(setup.stats, setup.spec)
    cold = engine.solve(0.05)
    warm = engine.solve(0.05, coef_init=cold.coef)
    assert cold.certified and warm.certified and warm.iterations <= cold.iterations
    np.testing.assert_allclose(warm.coef, cold.coef, atol=1e-7)


def _lasso_kwargs(true_coef, signed, reg_lambda):
    """LASSO; signed: the true coefficients' signs on half the cells and a prior inside them."""
    kw = {"reg_lambda": reg_lambda, "warmup_period": None}
    if signed:
        mask = np.random.default_rng(0).random(true_coef.shape) < 0.5
        kw["factors_beta_loading_signs"] = np.sign(true_coef).where(mask)
        kw["factors_beta_prior"] = (0.3 * true_coef).where(mask, 0.0)
    return kw


def _lasso_engine(seed=3, n_assets=60, reg_lambda=0.05, signed=True):
    """A LASSO engine with many responses of different support sizes, and its minimiser."""
    x, y, coef = make_panel(T=300, M=8, N=n_assets, seed=seed)
    setup = LassoModel(**_lasso_kwargs(coef, signed, reg_lambda))._setup(x, y)
    engine = FastEngine(setup.stats, setup.spec)
    return engine, engine.solve(reg_lambda)


@pytest.mark.parametrize("model_type, l1_weight", [("LASSO", 0.0), ("HCGL", 0.3),
                                                   ("FCGL", 0.0), ("GROUP_LASSO", 0.5)])
def test_many_factors_skip_the_eigendecomposition_and_keep_the_certificate(
        monkeypatch, model_type, l1_weight):
    """Beyond _SPECTRAL_MAX factors the engine takes its steps from Lanczos and bounds c'G^+c
    by y'Wy: the same minimiser, a certified gap that is never below the spectral one, and
    still an upper bound of the suboptimality at arbitrary points."""
    from xl_factorlasso.core.linear_model import _engine

    x, y = make_ragged_panel(seed=4)
    kw = _kwargs(model_type, None, l1_weight, True, x, y, reg_lambda=0.03)
    setup = LassoModel(**kw)._setup(x, y)
    spectral = FastEngine(setup.stats, setup.spec)
    monkeypatch.setattr(_engine, "_SPECTRAL_MAX", 2)
    lanczos = FastEngine(setup.stats, setup.spec)
    assert spectral.spectral and not lanczos.spectral and lanczos._vecs is None
    # never a longer step, and at most 1% shorter (Lanczos to 1e-3, rounded up by 1e-2)
    assert (lanczos.step <= spectral.step * (1 + 1e-12)).all()
    assert (lanczos.step >= spectral.step / 1.0101).all()
    best = spectral.solve(0.03)
    fast = lanczos.solve(0.03)
    assert fast.certified and best.certified
    np.testing.assert_allclose(fast.coef, best.coef, atol=1e-8)
    f_star = spectral.objective(best.coef, 0.03)
    rng = np.random.default_rng(0)
    for scale in (1e-3, 1e-1):
        point = np.clip(best.coef + scale * rng.standard_normal(best.coef.shape),
                        spectral.lo, spectral.hi)
        gap_l, objective = lanczos.duality_gap(point, 0.03)
        gap_s, _ = spectral.duality_gap(point, 0.03)
        assert gap_l >= gap_s * (1 - 1e-9)
        assert gap_l >= (objective - f_star) - 1e-12 * objective


def test_top_eigenvalue_by_lanczos_bounds_the_spectrum_from_above():
    from xl_factorlasso.core.linear_model._engine import _top_eigenvalue

    rng = np.random.default_rng(2)
    a = rng.standard_normal((300, 40))
    g = a.T @ a
    exact = np.linalg.eigvalsh(g)[-1]
    assert exact <= _top_eigenvalue(g) <= exact * 1.0101
    assert _top_eigenvalue(np.zeros((5, 5))) == 0.0
    scale = np.random.default_rng(1).uniform(0.1, 3.0, len(g))
    exact = np.linalg.eigvalsh(g * np.outer(scale, scale))[-1]
    assert exact <= _top_eigenvalue(g, scale=scale) <= exact * 1.0101
    # many factors, more than rows: a Marchenko-Pastur bulk with no gap at its top edge, where
    # Lanczos converges slowest; and the same with every row demeaned, which puts the ones
    # start in the null space
    wide = rng.standard_normal((400, 900))
    for mat in (wide.T @ wide, (wide - wide.mean(axis=1, keepdims=True)).T
                @ (wide - wide.mean(axis=1, keepdims=True))):
        exact = np.linalg.eigvalsh(mat)[-1]
        assert exact <= _top_eigenvalue(mat) <= exact * 1.0101


def test_cell_newton_solves_every_support_size_exactly():
    """From a perturbed point on the minimiser's support, the cell Newton step (systems
    gathered by support size) returns the minimiser: gap at round-off on every response."""
    engine, best = _lasso_engine()
    lam = 0.05
    free = (best.coef != engine.prior) & (best.coef > engine.lo) & (best.coef < engine.hi)
    support = np.sign(best.coef - engine.prior) * free
    assert len(np.unique(free.sum(axis=1))) >= 3  # several system sizes, so the test has teeth
    rng = np.random.default_rng(0)
    start = np.where(free, best.coef * (1 + 1e-2 * rng.standard_normal(best.coef.shape)),
                     best.coef)
    rows = np.ones(engine.n, dtype=bool)
    out = engine._newton_cell(start, lam, support, rows)
    gaps, objs = engine.unit_gaps(out, lam)
    assert (gaps <= 1e-14 * np.abs(objs)).all()
    np.testing.assert_allclose(out, best.coef, atol=1e-12)
    # at the minimiser the optimality conditions hold off the support on every response
    # (signs: cells at a bound of 0 on one side, fixed cells, free cells)
    assert engine._kkt_holds(best.coef, lam, support).all()
    # a loading held at its prior (D = 0) where the minimiser has it nonzero fails them, also
    # where its sign constraint leaves only one direction open
    one_sided = free & (np.isfinite(engine.lo) ^ np.isfinite(engine.hi))
    i, j = np.argwhere(one_sided)[0]
    cut = best.coef.copy()
    cut[i, j] = engine.prior[i, j]
    cut_support = support.copy()
    cut_support[i, j] = 0
    held = engine._kkt_holds(cut, lam, cut_support)
    assert not held[i] and held[np.arange(engine.n) != i].all()
    # rows left out keep the start exactly
    rows[::2] = False
    part = engine._newton_cell(start, lam, support, rows)
    np.testing.assert_array_equal(part[~rows], start[~rows])
    np.testing.assert_allclose(part[rows], best.coef[rows], atol=1e-12)


@pytest.mark.parametrize("l1_weight", [0.0, 0.3])
def test_row_groups_optimality_conditions_on_zero_rows(l1_weight):
    """Row groups: at the minimiser the conditions hold on every response, zero rows included
    (their test is the group ball, not each cell); a row held at zero where the minimiser has
    it nonzero fails them."""
    x, y = make_ragged_panel(seed=8)
    lam = 0.3 * LassoModel(**_kwargs("HCGL", None, l1_weight, True, x, y)).lambda_max(x, y)
    setup = LassoModel(**_kwargs("HCGL", None, l1_weight, True, x, y, reg_lambda=lam))._setup(
        x, y)
    engine = FastEngine(setup.stats, setup.spec)
    assert engine.geometry == "row"
    best = engine.solve(lam).coef
    d = best - engine.prior
    support = np.sign(d) * ((best > engine.lo) & (best < engine.hi))
    zero = ~d.any(axis=1)
    assert zero.any() and (~zero).any()  # both kinds of rows, so the test has teeth
    assert engine._kkt_holds(best, lam, support).all()
    i = np.flatnonzero(~zero)[0]
    cut = best.copy()
    cut[i] = engine.prior[i]
    cut_support = np.where(np.arange(engine.n)[:, None] == i, 0, support)
    held = engine._kkt_holds(cut, lam, cut_support)
    assert not held[i]


def test_unit_gaps_add_up_and_a_rows_view_is_the_engine_of_those_rows():
    engine, best = _lasso_engine()
    lam = 0.05
    rng = np.random.default_rng(1)
    point = np.clip(best.coef + 0.01 * rng.standard_normal(best.coef.shape), engine.lo,
                    engine.hi)
    gaps, objs = engine.unit_gaps(point, lam)
    gap, objective = engine.duality_gap(point, lam)
    assert gap == pytest.approx(gaps.sum(), rel=1e-12)
    assert objective == pytest.approx(engine.objective(point, lam), rel=1e-12)
    rows = rng.random(engine.n) < 0.3
    view = engine._rows_view(rows)
    sub_gaps, sub_objs = view.unit_gaps(point[rows], lam)
    np.testing.assert_allclose(sub_gaps, gaps[rows], rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(sub_objs, objs[rows], rtol=1e-12)
    # and it solves the sub-problem to the whole problem's minimiser on those rows
    np.testing.assert_allclose(view.solve(lam).coef, best.coef[rows], atol=1e-10)


@pytest.mark.parametrize("signed", [True, False])
def test_warm_start_from_a_neighbouring_problem_lands_on_the_cold_minimiser(signed):
    """Warm from the previous window's minimiser (a third of the supports change): Newton
    takes the responses whose support held, the others are solved apart; the answer equals
    the cold solve, and the reported gap is the whole point's certificate."""
    x, y, coef = make_panel(T=400, M=8, N=80, seed=5)
    kw = _lasso_kwargs(coef, signed, 0.03)
    before = LassoModel(**kw)._setup(x.iloc[:385], y.iloc[:385])
    after = LassoModel(**kw)._setup(x, y)
    previous = FastEngine(before.stats, before.spec).solve(0.03).coef
    engine = FastEngine(after.stats, after.spec)
    cold = engine.solve(0.03)
    moved = (np.sign(previous - engine.prior) != np.sign(cold.coef - engine.prior)).any(axis=1)
    assert 0 < moved.sum() < engine.n / 2  # some supports change, most hold
    warm = engine.solve(0.03, coef_init=previous)
    assert warm.certified and cold.certified
    np.testing.assert_allclose(warm.coef, cold.coef, atol=1e-12)
    assert warm.gap == pytest.approx(engine.relative_gap(warm.coef, 0.03), rel=1e-6, abs=1e-17)


def test_a_loading_entering_by_a_hair_is_not_missed():
    """Warm from the minimiser just above the lambda where a loading enters, solved just below
    it: the start's gap is already 5e-13 (below the polish target) and Newton on its support
    gives a valid point with a gap near that, 1.2e-6 from the minimiser. Neither may end the
    solve: the answer is the minimiser, with the new loading."""
    x, y, _ = make_panel(T=300, M=6, N=4, seed=11)
    setup = LassoModel(reg_lambda=0.1, warmup_period=None)._setup(x, y)
    engine = FastEngine(setup.stats, setup.spec)
    lams = LassoModel().lambda_max(x, y) * np.geomspace(0.9, 0.01, 40)
    prev = engine.solve(lams[0]).coef
    k = 1
    while not ((engine.solve(lams[k]).coef != 0) & (prev == 0)).any():  # a loading enters
        prev = engine.solve(lams[k]).coef
        k += 1
    hi, lo = lams[k - 1], lams[k]
    for _ in range(60):  # bisect to the lambda where it enters
        mid = 0.5 * (hi + lo)
        if ((engine.solve(mid).coef != 0) & (prev == 0)).any():
            lo = mid
        else:
            hi = mid
    start = engine.solve(hi * (1 + 1e-6)).coef
    lam = hi * (1 - 1e-6)
    best = engine.solve(lam)
    new = (best.coef != 0) & (start == 0)
    assert new.sum() == 1 and 1e-7 < np.abs(best.coef[new]).max() < 1e-5
    assert engine.relative_gap(start, lam) < 1e-12  # the trap: already "polished"
    # the optimality conditions off the support see it: only that response fails them
    support = np.sign(start - engine.prior)
    np.testing.assert_array_equal(engine._kkt_holds(start, lam, support), ~new.any(axis=1))
    warm = engine.solve(lam, coef_init=start)
    np.testing.assert_allclose(warm.coef, best.coef, atol=1e-12)
    assert (warm.coef[new] != 0).all()


@pytest.mark.parametrize("model_type, l1_weight", [("HCGL", 0.0), ("HCGL", 0.2),
                                                   ("GROUP_LASSO", 0.5)])
def test_row_newton_finish_lands_on_the_minimiser(model_type, l1_weight):
    """From a perturbed point on the minimiser's support, the row Newton finish returns the
    minimiser itself: equal to tight CVXPY and with a duality gap at round-off."""
    x, y = make_ragged_panel(seed=8)
    kw = _kwargs(model_type, 26, l1_weight, True, x, y, reg_lambda=0.02)
    fast, ref = _fit_pair(kw, x, y)
    assert_same_minimiser(fast, ref)
    setup = fast._fit_setup_
    engine = FastEngine(setup.stats, setup.spec)
    best = fast.coef_.to_numpy()
    free = (best != engine.prior) & (best > engine.lo) & (best < engine.hi)
    support = np.sign(best - engine.prior) * free
    assert free.any(axis=1).sum() >= 3  # several active rows, so the test has teeth
    rng = np.random.default_rng(0)
    start = np.where(free, best * (1 + 1e-3 * rng.standard_normal(best.shape)), best)
    start_gap, _ = engine.duality_gap(start, 0.02)
    out = engine._newton_row(start, 0.02, support, np.ones(len(start), dtype=bool))
    assert out is not None
    gap, objective = engine.duality_gap(out, 0.02)
    assert gap / objective <= 1e-13 < start_gap / objective
    np.testing.assert_allclose(out, best, atol=1e-9)
    # Clarabel stops at "optimal_inaccurate" here: within assert_same_minimiser's allowance
    np.testing.assert_allclose(out, ref.coef_.to_numpy(), atol=10 * COEF_TOL)


# ---------------------------------------------------------------- proximal operators
def _cvxpy_prox(v, alpha, beta, groups, lower, upper):
    d = cp.Variable(v.size)
    objective = 0.5 * cp.sum_squares(d - v) + cp.sum(cp.multiply(alpha, cp.abs(d)))
    for g in range(len(beta)):
        members = np.flatnonzero(groups == g)
        if members.size and beta[g] > 0:
            objective = objective + beta[g] * cp.norm(d[members], 2)
    cons = []
    lo_idx, up_idx = np.flatnonzero(np.isfinite(lower)), np.flatnonzero(np.isfinite(upper))
    if lo_idx.size:
        cons.append(d[lo_idx] >= lower[lo_idx])
    if up_idx.size:
        cons.append(d[up_idx] <= upper[up_idx])
    cp.Problem(cp.Minimize(objective), cons).solve(solver="CLARABEL", **PROX_TIGHT)
    return d.value


def _prox_objective(d, v, alpha, beta, groups):
    group = sum(beta[g] * np.linalg.norm(d[groups == g]) for g in range(len(beta)))
    return 0.5 * np.sum((d - v) ** 2) + np.sum(alpha * np.abs(d)) + group


def assert_prox_optimal(got, v, alpha, beta, groups, lower, upper):
    """Against CVXPY, and through the optimality conditions derived in the engine's docstring.

    The prox objective is 1-strongly convex: ``||d - d*||^2 <= 2 (P(d) - P(d*))``, so an
    interior-point answer ~1e-6 off (Clarabel near a kink) must cost it that much objective.
    """
    alpha = np.broadcast_to(alpha, v.shape)
    assert np.all((got >= lower) & (got <= upper))
    expected = np.clip(_cvxpy_prox(v, alpha, beta, groups, lower, upper), lower, upper)
    ours = _prox_objective(got, v, alpha, beta, groups)
    theirs = _prox_objective(expected, v, alpha, beta, groups)
    assert ours <= theirs + 1e-12
    dist = np.linalg.norm(got - expected)
    assert dist <= np.sqrt(2 * max(theirs - ours, 0.0)) + 1e-7 and dist <= 1e-4
    # optimality conditions: a zero group iff the blocked soft-threshold fits in beta's ball;
    # otherwise d = clip(w / (1 + mu), l, u) with mu = beta / ||d||
    w = np.sign(v) * np.maximum(np.abs(v) - alpha, 0.0)
    w = np.where(((w < 0) & (lower >= 0)) | ((w > 0) & (upper <= 0)), 0.0, w)
    for g in range(len(beta)):
        cells = groups == g
        if not cells.any():
            continue
        norm = np.linalg.norm(got[cells])
        if norm == 0.0:
            assert np.linalg.norm(w[cells]) <= beta[g] * (1 + 1e-12)
        else:
            mu = beta[g] / norm
            np.testing.assert_allclose(
                got[cells], np.clip(w[cells] / (1 + mu), lower[cells], upper[cells]),
                atol=1e-12,
            )


def _random_box(rng, size):
    """Boxes containing 0 with every kind of side: free, at 0, finite (often active)."""
    kind_lo = rng.choice(["free", "zero", "finite"], size=size, p=[0.4, 0.3, 0.3])
    kind_up = rng.choice(["free", "zero", "finite"], size=size, p=[0.4, 0.3, 0.3])
    lower = np.where(kind_lo == "free", -np.inf, np.where(kind_lo == "zero", 0.0,
                                                             -rng.uniform(0.0, 0.8, size)))
    upper = np.where(kind_up == "free", np.inf, np.where(kind_up == "zero", 0.0,
                                                            rng.uniform(0.0, 0.8, size)))
    return lower, upper


def test_prox_l1_box_equals_cvxpy():
    rng = np.random.default_rng(0)
    for _ in range(10):
        v = rng.normal(0, 1.5, 12)
        alpha = rng.uniform(0, 1, 12)
        lower, upper = _random_box(rng, 12)
        got = prox_l1_box(v, alpha, lower, upper)
        assert_prox_optimal(got, v, alpha, np.zeros(0), np.full(12, -1), lower, upper)


@pytest.mark.parametrize("seed", range(12))
def test_prox_sparse_group_equals_cvxpy(seed):
    rng = np.random.default_rng(seed)
    size = int(rng.integers(4, 25))
    n_groups = int(rng.integers(1, 5))
    groups = rng.integers(0, n_groups, size)
    v = rng.normal(0, 1.5, size)
    alpha = rng.uniform(0, 0.5, size) * (seed % 3 != 0)  # pure group prox every third case
    beta = rng.uniform(0, 2.0, n_groups)
    lower, upper = _random_box(rng, size)
    got = prox_sparse_group(v, alpha, beta, groups, lower, upper)
    assert_prox_optimal(got, v, alpha, beta, groups, lower, upper)
    # groups CVXPY leaves at ~0 are exact zeros
    expected = _cvxpy_prox(v, alpha, beta, groups, lower, upper)
    for g in range(n_groups):
        if np.all(np.abs(expected[groups == g]) < 1e-9):
            assert np.all(got[groups == g] == 0.0)


def test_prox_sparse_group_root_find_path_is_exercised():
    """Groups whose closed form leaves the box need the multiplier root; check it exactly."""
    rng = np.random.default_rng(42)
    clipped = 0
    for _ in range(30):
        v = rng.normal(0, 2.0, 6)
        lower, upper = -rng.uniform(0.05, 0.5, 6), rng.uniform(0.05, 0.5, 6)
        beta = np.array([rng.uniform(0.1, 1.0)])
        w = v * max(0.0, 1 - beta[0] / np.linalg.norm(v))
        clipped += bool(np.any((w < lower) | (w > upper)))
        got = prox_sparse_group(v, 0.0, beta, np.zeros(6, int), lower, upper)
        assert_prox_optimal(got, v, np.zeros(6), beta, np.zeros(6, int), lower, upper)
    assert clipped >= 10


def test_prox_sparse_group_rejects_a_box_without_zero():
    with pytest.raises(ValueError, match="must contain 0"):
        prox_sparse_group(np.ones(2), 0.0, [1.0], [0, 0], [0.1, -1.0], [1.0, 1.0])


def test_engine_prox_matches_cvxpy_on_fcgl_blocks():
    """The engine's own prox on a coefficient matrix (blocks = cluster x factor)."""
    x, y = make_ragged_panel(seed=7)
    kw = _kwargs("FCGL", None, 0.3, True, x, y)
    setup = LassoModel(**kw)._setup(x, y)
    engine = FastEngine(setup.stats, setup.spec)
    rng = np.random.default_rng(1)
    z = engine.prior + rng.normal(0, 0.8, engine.prior.shape)
    lam = 0.4
    got = engine.prox(z, lam)
    # step is constant per cluster and factor column (block g = cluster g // M, column g % M):
    # alpha, beta in the cell's terms
    step = engine.step
    assert step.shape == z.shape
    alpha = (step * lam * engine.a).ravel()
    beta = np.empty(engine.n_groups)
    for g in range(engine.n_groups):
        block = step[engine.unit == g // engine.m, g % engine.m]
        assert np.all(block == block[0])
        beta[g] = block[0] * lam * (1 - engine.a) * engine.group_w[g]
    assert_prox_optimal(
        (got - engine.prior).ravel(), (z - engine.prior).ravel(), alpha, beta, engine.gid,
        engine.dl.ravel(), engine.du.ravel(),
    )


# ---------------------------------------------------------------- cross-validation path
@pytest.mark.parametrize("model_type", ["LASSO", "FCGL"])
# (a1 starts late: the first training folds have none of its rows, and each fold's fit says so)
@pytest.mark.filterwarnings("ignore:1 of 6 responses have no observation")
def test_cv_warm_path_equals_independent_fits_and_the_cvxpy_path(model_type):
    x, y, _ = make_panel(T=90, M=3, N=6, seed=3, ragged=True)
    lambdas = [0.5, 0.005, 0.05]  # not sorted: the path order is internal
    base = LassoModel(model_type=model_type, span=40, warmup_period=None)
    cv = LassoModelCV(lambdas=lambdas, n_splits=3, base_model=base, refit=False).fit(x, y)
    slow = LassoModelCV(
        lambdas=lambdas, n_splits=3, refit=False,
        base_model=base.set_params(engine="cvxpy", solver_params=TIGHT),
    ).fit(x, y)
    np.testing.assert_allclose(cv.cv_scores_, slow.cv_scores_, atol=1e-6)
    for k, (tr, te) in enumerate(expanding_window_splits(len(x), 3)):
        for lam in lambdas:
            m = LassoModel(
                model_type=model_type, span=40, warmup_period=None, reg_lambda=lam
            ).fit(x.iloc[tr], y.iloc[tr])
            assert m.solver_ == "fast"
            assert cv.cv_scores_.loc[lam, f"fold_{k}"] == pytest.approx(
                m.score(x.iloc[te], y.iloc[te]), abs=1e-8
            )
    assert cv.best_lambda_ == slow.best_lambda_


# ---------------------------------------------------------------- properties
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems("fast"), st.floats(0.0, 1.0))
def test_signs_always_hold_exactly(problem, reg_lambda):
    x, y, params = problem
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        coef = LassoModel(reg_lambda=reg_lambda, **params).fit(x, y).coef_.to_numpy()
    s = params["factors_beta_loading_signs"].to_numpy()
    assert np.all(coef[s == 0] == 0.0)
    assert np.all(coef[s == 1] >= 0.0)
    assert np.all(coef[s == -1] <= 0.0)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems("fast"), st.floats(1.0, 3.0))
def test_lambda_at_or_above_lambda_max_gives_exactly_the_prior(problem, factor):
    x, y, params = problem
    model = LassoModel(**params)
    lam_max = model.lambda_max(x, y)
    coef = model.set_params(reg_lambda=factor * lam_max * (1 + 1e-9) + 1e-12).fit(x, y).coef_
    prior = params["factors_beta_prior"]
    expected = np.zeros(coef.shape) if prior is None else prior.to_numpy()
    np.testing.assert_array_equal(coef.to_numpy(), expected)
    assert model.n_iter_ == 0  # certified at the prior itself


@pytest.mark.parametrize("n, m, clusters", [(7, 3, 3), (50, 4, 1), (200, 10, 17), (1, 5, 1)])
def test_member_tables_of_rows_and_blocks_equal_the_generic_one(n, m, clusters):
    """The engine's group tables built from the rows' layout (no sort of the N M cells) are the
    generic table of the same groups."""
    from xl_factorlasso.core.linear_model._prox import (
        _block_member_table,
        _member_table,
        _row_member_table,
    )

    rng = np.random.default_rng(n)
    unit = rng.integers(0, clusters, n)
    unit[:clusters] = np.arange(min(clusters, n))
    n_units = int(unit.max()) + 1
    gid = (unit[:, None] * m + np.arange(m)).ravel()
    np.testing.assert_array_equal(_block_member_table(unit, n_units, m),
                                  _member_table(gid, n_units * m))
    np.testing.assert_array_equal(_row_member_table(n, m),
                                  _member_table(np.repeat(np.arange(n), m), n))


def test_polish_keeps_the_lowest_certified_iterate():
    """The accelerated iterates' gap is not monotone. On a sparse-group HCGL fold (164 rows,
    500 factors, 5 responses, signs and prior; the fourth training window of a (250,500,5)
    panel), warm-started down ``LassoModelCV``'s grid, the solve at 1.6e-2 met 1e-8 at iteration
    630 and stood at 1.1e-8 when the polish ended at 1280: the fit failed, and so did
    Clarabel and the polish after it. Now the lowest certified iterate is returned."""
    panel = make_factor_panel(250, 500, 5, seed=0)
    x, y = panel.x.iloc[:164], panel.y.iloc[:164]
    model = LassoModel(model_type="HIERARCHICAL_CLUSTER_GROUP_LASSO", l1_weight=0.1,
                       warmup_period=None, factors_beta_loading_signs=panel.signs,
                       factors_beta_prior=panel.prior)
    setup = model._setup(x, y)
    solver = model._solver(setup)
    grid = np.sort(LassoModelCV(base_model=model)._grid(setup.lambda_max))[::-1]
    warm = None
    for lam in grid[:4]:
        solution = solver.solve(float(lam), coef_init=warm)
        assert solution.solver == "fast" and solution.gap <= 1e-8
        warm = solution.coef
    assert grid[3] == pytest.approx(1.62e-2, rel=1e-2)
    assert solver.engine.relative_gap(warm, grid[3]) <= 1e-8


def test_lanczos_tests_its_residual_at_every_step():
    """``_lanczos_top``: the top Ritz value, from below, within the residual test of the top
    eigenvalue, in fewer products than ARPACK's restarted iterations (which test only at the
    end of each cycle of ncv = 20 steps) on a Marchenko-Pastur bulk of many factors; a start
    whose Krylov space is invariant (the ones vector in the null space, exactly) gives None,
    and ``_top_eigenvalue`` then ARPACK's safe bound."""
    from scipy.sparse.linalg import LinearOperator, eigsh

    from xl_factorlasso.core.linear_model._engine import (
        _LANCZOS_TOL,
        _lanczos_top,
        _top_eigenvalue,
    )

    a = np.random.default_rng(3).standard_normal((300, 600))
    a -= a.mean(axis=0)
    g = a.T @ a
    exact = np.linalg.eigvalsh(g)[-1]
    counts = []

    def counted():
        counts.append(0)

        def matvec(v):
            counts[-1] += 1
            return g @ np.ravel(v)
        return LinearOperator(g.shape, matvec=matvec, dtype=float)

    theta = _lanczos_top(counted(), 600)
    eigsh(counted(), k=1, which="LA", tol=_LANCZOS_TOL, v0=np.ones(600),
          return_eigenvectors=False)
    assert exact * (1 - _LANCZOS_TOL) <= theta <= exact * (1 + 1e-12)
    assert counts[0] < counts[1]
    null = np.kron(np.eye(5), [[1.0, -1.0], [-1.0, 1.0]])  # null @ ones == 0 exactly
    assert _lanczos_top(null, 10) is None
    assert 2.0 <= _top_eigenvalue(null) <= 2.0 * 1.0101
