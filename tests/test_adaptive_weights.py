"""Adaptive penalty weights (``auto_sign_adaptive_weights``): factorlasso 1.0.6 live, a closed
form, CVXPY and the certificate.

The weights must equal factorlasso's to 1e-12, the coefficients to solver tolerance with an
objective no worse (both evaluated by one function written here from the weights); the fast
engine and the CVXPY reference must agree on weighted problems, each certified.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.linalg import hadamard

from xl_factorlasso import LassoModel
from xl_factorlasso.core.linear_model._adaptive import adaptive_weights
from xl_factorlasso.core.linear_model._engine import FastEngine
from xl_factorlasso.core.linear_model._lambda_max import lambda_max_from_stats
from xl_factorlasso.core.linear_model._penalty import PenaltySpec
from xl_factorlasso.core.linear_model._preparation import SufficientStats, prepare_panel

fl = pytest.importorskip("factorlasso")

MODEL_TYPES = ["LASSO", "GROUP_LASSO", "HIERARCHICAL_CLUSTER_GROUP_LASSO",
               "FACTOR_CLUSTER_GROUP_LASSO"]
ADAPTIVE = dict(auto_sign_constraints=True, auto_sign_adaptive_weights=True)


def panel(seed=3, T=160, M=6, N=12, gaps=True, scale=0.4):
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2021-01-01", periods=T, freq="W")
    x = pd.DataFrame(rng.standard_normal((T, M)), index=idx,
                     columns=[f"f{j}" for j in range(M)])
    b = rng.standard_normal((N, M)) * (rng.random((N, M)) < 0.5) * scale
    y = pd.DataFrame(x.to_numpy() @ b.T + rng.standard_normal((T, N)), index=idx,
                     columns=[f"y{i}" for i in range(N)])
    if gaps:
        y.iloc[: T // 4, 0] = np.nan
        y.iloc[T // 2: T // 2 + 5, min(3, N - 1)] = np.nan
        x.iloc[7, 1] = np.nan
    return x, y


def with_groups(model_type, y, kw):
    kw = dict(kw)
    if model_type == "GROUP_LASSO":
        kw["group_data"] = pd.Series([i % 3 for i in range(y.shape[1])], index=y.columns)
    return kw


def fit_both(x, y, model_type, **kw):
    kw = with_groups(model_type, y, kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = fl.LassoModel(model_type=getattr(fl.LassoModelType, model_type), **kw).fit(
            x=x, y=y)
        ours = LassoModel(model_type=model_type, **kw).fit(x, y)
    return ours, theirs


def rms(values, active):
    """Root mean square of ``values`` over ``active`` (1 without any), by explicit sums."""
    chosen = [float(v) ** 2 for v, a in zip(values, active, strict=True) if a]
    return float(np.sqrt(sum(chosen) / len(chosen))) if chosen else 1.0


def independent_objective(model, coef, cell_w, model_type, l1_weight, lam):
    """The objective written from its definition with explicit loops: the data term from the
    fit's sufficient statistics, the penalty from the weights ``cell_w`` (rows and blocks
    aggregated here), the point first projected onto the sign constraints (an interior-point
    answer sits up to ~1e-8 outside them)."""
    setup = model._fit_setup_
    lower, upper = setup.spec.lower_upper()
    b = np.clip(np.asarray(coef, dtype=float), lower, upper)
    d = b - setup.spec.prior
    signs = model.detected_signs_.to_numpy()
    n, m = d.shape
    l1 = sum(cell_w[i, j] * abs(d[i, j]) for i in range(n) for j in range(m))
    if model_type == "LASSO":
        return setup.stats.loss(b) + lam * l1
    labels = model.clusters_.to_numpy()
    names = sorted(set(labels))
    size = {g: int((labels == g).sum()) for g in names}
    wg = {g: np.sqrt(size[g] / len(names)) for g in names}  # "normalized"
    group = 0.0
    if model_type == "FACTOR_CLUSTER_GROUP_LASSO":
        for g in names:
            rows = np.flatnonzero(labels == g)
            for j in range(m):
                kappa = rms(cell_w[rows, j], signs[rows, j] != 0)
                group += wg[g] * kappa * np.sqrt(sum(d[i, j] ** 2 for i in rows))
    else:
        for i in range(n):
            rho = rms(cell_w[i], signs[i] != 0)
            group += wg[labels[i]] * rho * np.sqrt(sum(d[i, j] ** 2 for j in range(m)))
    return setup.stats.loss(b) + lam * ((1 - l1_weight) * group + l1_weight * l1)


# ------------------------------------------------------------------ factorlasso live
@pytest.mark.parametrize("model_type", MODEL_TYPES)
@pytest.mark.parametrize("data", [dict(seed=3), dict(seed=11, N=9, M=5, gaps=False),
                                  dict(seed=5, scale=0.05)])
@pytest.mark.parametrize("options", [dict(l1_weight=0.0), dict(l1_weight=0.3),
                                     dict(l1_weight=0.6, auto_sign_adaptive_gamma=2.0,
                                          auto_sign_adaptive_floor=0.05, span=52)])
def test_weights_and_fit_match_factorlasso(model_type, data, options):
    x, y = panel(**data)
    kw = dict(ADAPTIVE, reg_lambda=2e-3, **options)
    ours, theirs = fit_both(x, y, model_type, **kw)
    np.testing.assert_allclose(ours.sign_penalty_weights_, theirs.sign_penalty_weights_,
                               rtol=1e-12, atol=0)
    pd.testing.assert_index_equal(ours.sign_penalty_weights_.index, y.columns)
    if model_type == "FACTOR_CLUSTER_GROUP_LASSO":
        assert ours.sign_block_weights_.shape == theirs.sign_block_weights_.shape
        np.testing.assert_allclose(ours.sign_block_weights_, theirs.sign_block_weights_,
                                   rtol=1e-12, atol=0)
    else:
        assert ours.sign_block_weights_ is None and theirs.sign_block_weights_ is None
    assert ours.duality_gap_ <= 1e-8
    # the weights changed the problem: not the unweighted fit
    plain = LassoModel(model_type=model_type, **with_groups(
        model_type, y, dict(kw, auto_sign_adaptive_weights=False))).fit(x, y)
    assert np.abs(plain.coef_.to_numpy() - ours.coef_.to_numpy()).max() > 1e-4
    # one independent objective for both answers
    cell_w = theirs.sign_penalty_weights_.to_numpy()
    l1w = kw["l1_weight"]
    mine = independent_objective(ours, ours.coef_, cell_w, model_type, l1w, 2e-3)
    other = independent_objective(ours, theirs.coef_, cell_w, model_type, l1w, 2e-3)
    assert mine <= other * (1 + 1e-12)
    assert mine == pytest.approx(ours.objective_value_, rel=1e-12)
    np.testing.assert_allclose(ours.coef_, theirs.coef_, atol=3e-4)
    gated = (ours.derived_signs_ == 0).to_numpy()
    assert (ours.coef_.to_numpy()[gated] == 0.0).all()


def test_single_response_uses_cell_weights_only():
    x, y = panel(seed=4, N=1)
    for model_type in ("GROUP_LASSO", "FACTOR_CLUSTER_GROUP_LASSO"):
        ours, theirs = fit_both(x, y, model_type, **ADAPTIVE, reg_lambda=5e-3, l1_weight=0.0)
        np.testing.assert_allclose(ours.sign_penalty_weights_, theirs.sign_penalty_weights_,
                                   rtol=1e-12, atol=0)
        assert ours.sign_block_weights_ is None and theirs.sign_block_weights_ is None
        np.testing.assert_allclose(ours.coef_, theirs.coef_, atol=3e-4)


# ------------------------------------------------------------------ the two engines
@pytest.mark.parametrize("model_type", MODEL_TYPES)
@pytest.mark.parametrize("l1_weight", [0.0, 0.4])
@pytest.mark.parametrize("lam_fraction", [0.02, 0.3])
def test_fast_engine_equals_cvxpy_reference(model_type, l1_weight, lam_fraction):
    x, y = panel(seed=8)
    kw = with_groups(model_type, y, dict(ADAPTIVE, l1_weight=l1_weight,
                                         auto_sign_adaptive_gamma=1.5))
    lam = lam_fraction * LassoModel(model_type=model_type, **kw).lambda_max(x, y)
    fast = LassoModel(model_type=model_type, reg_lambda=lam, engine="fast", **kw).fit(x, y)
    ref = LassoModel(model_type=model_type, reg_lambda=lam, engine="cvxpy", **kw).fit(x, y)
    assert fast.solver_ == "fast" and ref.solver_.startswith("CLARABEL")
    assert fast.duality_gap_ <= 1e-8 and ref.duality_gap_ <= 1e-8
    assert fast.objective_value_ == pytest.approx(ref.objective_value_, rel=2e-8)
    np.testing.assert_allclose(fast.coef_, ref.coef_, atol=1e-4)
    # exact zeros: the fast engine's prox lands on them
    assert (fast.coef_.to_numpy() == 0.0).sum() > 0


@pytest.mark.parametrize("model_type", MODEL_TYPES)
@pytest.mark.parametrize("l1_weight", [0.0, 0.5])
def test_lambda_max_is_the_weighted_threshold(model_type, l1_weight):
    x, y = panel(seed=9)
    kw = with_groups(model_type, y, dict(ADAPTIVE, l1_weight=l1_weight))
    lam_max = LassoModel(model_type=model_type, **kw).lambda_max(x, y)
    plain = LassoModel(model_type=model_type, **dict(kw, auto_sign_adaptive_weights=False))
    assert lam_max != pytest.approx(plain.lambda_max(x, y), rel=1e-3)
    above = LassoModel(model_type=model_type, reg_lambda=lam_max * 1.001, engine="cvxpy",
                       **kw).fit(x, y)
    below = LassoModel(model_type=model_type, reg_lambda=lam_max * 0.99, engine="fast",
                       **kw).fit(x, y)
    assert np.abs(above.coef_.to_numpy()).max() < 1e-7  # CVXPY agrees: the prior (0)
    assert np.abs(below.coef_.to_numpy()).max() > 0  # one step below: a loading enters


# ------------------------------------------------------------------ closed form
def orthogonal_panel(M=4, reps=2):
    """Zero-mean, mutually orthogonal factors (Hadamard columns), one response."""
    h = hadamard(16)[:, 1:M + 1].astype(float)
    xv = np.vstack([h] * reps) * np.array([1.0, 0.5, 2.0, 0.25])[:M]
    T = len(xv)
    rng = np.random.default_rng(0)
    beta = np.array([0.8, -0.6, 0.05, 1.2])[:M]
    yv = xv @ beta + 0.3 * rng.standard_normal(T)
    idx = pd.date_range("2020-01-01", periods=T, freq="D")
    return (pd.DataFrame(xv, index=idx, columns=[f"f{j}" for j in range(M)]),
            pd.DataFrame({"y": yv}, index=idx))


@pytest.mark.parametrize("gamma,floor,lam", [(1.0, 1e-3, 0.05), (2.0, 0.2, 0.05),
                                             (0.5, 1.0, 0.5)])
def test_one_response_orthogonal_design_is_weighted_soft_threshold(gamma, floor, lam):
    x, y = orthogonal_panel()
    model = LassoModel(reg_lambda=lam, auto_sign_constraints=True, auto_sign_threshold_t=None,
                       auto_sign_adaptive_weights=True, auto_sign_adaptive_gamma=gamma,
                       auto_sign_adaptive_floor=floor, demean=False).fit(x, y)
    xv, yv = x.to_numpy(), y.to_numpy()[:, 0]
    T = len(xv)
    g = (xv * xv).sum(axis=0)  # X'X is diagonal
    slope = xv.T @ yv / g  # univariate slope = OLS on an orthogonal design
    omega = 1.0 / np.maximum(np.abs(slope), floor) ** gamma
    # (1/T)||y - Xb||^2 + lam sum omega_j |b_j| is separable: b_j = soft(s_j, lam T omega_j
    # / (2 g_j))
    expected = np.sign(slope) * np.maximum(np.abs(slope) - lam * T * omega / (2 * g), 0.0)
    np.testing.assert_allclose(model.sign_penalty_weights_.to_numpy()[0], omega, rtol=1e-13)
    np.testing.assert_allclose(model.coef_.to_numpy()[0], expected, atol=1e-12)
    assert (expected == 0).any() and (expected != 0).any()
    assert (model.coef_.to_numpy()[0][expected == 0] == 0).all()


# ------------------------------------------------------------------ certificate pieces
def _spec_and_stats(seed, geometry, a, weighted=True):
    x, y = panel(seed=seed, N=8, M=5)
    stats = SufficientStats.from_panel(prepare_panel(x, y))
    rng = np.random.default_rng(seed)
    n, m = 8, 5
    groups = np.array([0, 1, 0, 2, 1, 2, 0, 1])
    spec = PenaltySpec(
        geometry=geometry, groups=None if geometry == "cell" else groups,
        group_weight=None if geometry == "cell" else np.sqrt(np.bincount(groups) / 3),
        l1_weight=a, prior=np.zeros((n, m)), signs=None, nonneg=False,
        cell_weight=np.exp(rng.normal(size=(n, m))) if weighted else None,
        row_weight=np.exp(rng.normal(size=n)) if weighted and geometry == "row" else None,
        block_weight=(np.exp(rng.normal(size=(3, m))) if weighted and geometry == "block"
                      else None),
    )
    return stats, spec


def _dual_norm_by_bisection(r, omega, c, a):
    """Smallest rho with ||soft(r, rho a omega)||_2 <= rho c (a > 0), by bisection."""
    lo, hi = 0.0, float(np.max(np.abs(r) / omega) / a) + 1.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        ok = np.linalg.norm(np.maximum(np.abs(r) - mid * a * omega, 0.0)) <= mid * c
        lo, hi = (lo, mid) if ok else (mid, hi)
    return hi


@pytest.mark.parametrize("geometry", ["row", "block"])
@pytest.mark.parametrize("a", [0.2, 0.7])
def test_weighted_dual_norm_equals_its_definition(geometry, a):
    stats, spec = _spec_and_stats(21, geometry, a)
    engine = FastEngine(stats, spec)
    r = np.random.default_rng(2).normal(size=spec.prior.shape)
    got = engine._dual_norms(r)
    omega = spec.cell_weight
    if geometry == "row":
        weights = spec.row_weights()
        want = [_dual_norm_by_bisection(r[i], omega[i], (1 - a) * weights[i], a)
                for i in range(len(r))]
    else:  # a unit is a cluster: the largest over its blocks
        blocks = spec.block_weights()
        want = [max(_dual_norm_by_bisection(r[spec.groups == g, j], omega[spec.groups == g, j],
                                            (1 - a) * blocks[g, j], a)
                    for j in range(r.shape[1])) for g in range(3)]
    np.testing.assert_allclose(got, want, rtol=1e-10)


@pytest.mark.parametrize("geometry", ["cell", "row", "block"])
@pytest.mark.parametrize("a", [0.0, 0.4])
def test_engine_certifies_weighted_problem_against_cvxpy(geometry, a):
    from xl_factorlasso.core.linear_model._formulation import LassoProblem

    stats, spec = _spec_and_stats(13, geometry, a)
    lam = 0.2 * lambda_max_from_stats(stats, spec)
    engine = FastEngine(stats, spec)
    fast = engine.solve(lam)
    assert fast.certified and fast.gap <= 1e-8
    status, ref = LassoProblem(stats, spec).solve(lam)
    assert status == "optimal"
    f_fast, f_ref = engine.objective(fast.coef, lam), engine.objective(ref, lam)
    assert f_fast <= f_ref * (1 + 1e-9)
    assert f_ref <= f_fast * (1 + 1e-6)  # Clarabel to its own tolerance
    np.testing.assert_allclose(fast.coef, ref, atol=1e-4)
    # the prior is certified exactly at lambda_max, not below
    lam_max = lambda_max_from_stats(stats, spec)
    assert engine.relative_gap(spec.prior, lam_max) <= 1e-12
    assert engine.relative_gap(spec.prior, 0.98 * lam_max) > 1e-8


def test_unit_weights_are_the_unweighted_problem():
    for geometry in ("cell", "row", "block"):
        stats, plain = _spec_and_stats(17, geometry, 0.3, weighted=False)
        n, m = plain.prior.shape
        ones = PenaltySpec(**{**plain.__dict__, "cell_weight": np.ones((n, m)),
                              "row_weight": np.ones(n) if geometry == "row" else None,
                              "block_weight": np.ones((3, m)) if geometry == "block" else None})
        lam = 0.1 * lambda_max_from_stats(stats, plain)
        assert lambda_max_from_stats(stats, ones) == lambda_max_from_stats(stats, plain)
        a, b = FastEngine(stats, plain).solve(lam), FastEngine(stats, ones).solve(lam)
        np.testing.assert_allclose(a.coef, b.coef, rtol=0, atol=1e-12)


# ------------------------------------------------------------------ weights, parameters
def test_adaptive_weights_by_definition():
    slopes = np.array([[0.5, -2e-4, 3.0], [0.0, -1.0, 0.25]])
    signs = np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    found = adaptive_weights(slopes, signs, "row", None, 1.0, 1e-3)
    np.testing.assert_array_equal(found.cell, [[2.0, 1.0, 1 / 3.0], [1.0, 1.0, 4.0]])
    np.testing.assert_allclose(found.row, [np.sqrt((4 + 1 / 9) / 2), 4.0], rtol=1e-15)
    assert found.block is None
    blocks = adaptive_weights(slopes, signs, "block", np.array([0, 0]), 2.0, 1e-3)
    np.testing.assert_allclose(blocks.block, [[4.0, 1.0, np.sqrt((1 / 81 + 256) / 2)]],
                               rtol=1e-15)
    assert blocks.row is None


def test_default_is_unweighted_and_flag_needs_auto_signs():
    x, y = panel(seed=3)
    base = LassoModel(reg_lambda=2e-3, auto_sign_constraints=True).fit(x, y)
    assert base.sign_penalty_weights_ is None and base.sign_block_weights_ is None
    assert base._fit_setup_.spec.weighted is False
    alone = LassoModel(reg_lambda=2e-3, auto_sign_adaptive_weights=True).fit(x, y)
    plain = LassoModel(reg_lambda=2e-3).fit(x, y)
    assert alone.sign_penalty_weights_ is None
    np.testing.assert_array_equal(alone.coef_, plain.coef_)


def test_floor_above_every_slope_gives_the_unweighted_fit():
    x, y = panel(seed=5, scale=0.05)
    kw = dict(reg_lambda=2e-3, auto_sign_constraints=True, model_type="FACTOR_CLUSTER_GROUP_LASSO",
              l1_weight=0.3)
    assert np.abs(LassoModel(**kw).fit(x, y).sign_slopes_.to_numpy()).max() < 10.0
    weighted = LassoModel(auto_sign_adaptive_weights=True, auto_sign_adaptive_floor=10.0,
                          auto_sign_adaptive_gamma=1e-300, **kw).fit(x, y)
    plain = LassoModel(**kw).fit(x, y)
    np.testing.assert_array_equal(weighted.sign_penalty_weights_, 1.0)
    np.testing.assert_allclose(weighted.coef_, plain.coef_, atol=1e-9)


def test_overflowing_weights_are_refused():
    x, y = panel(seed=3)
    with pytest.raises(ValueError) as err:
        LassoModel(reg_lambda=2e-3, auto_sign_constraints=True, auto_sign_adaptive_weights=True,
                   auto_sign_adaptive_gamma=400.0).fit(x, y)
    assert str(err.value) == (
        "auto_sign_adaptive_gamma / auto_sign_adaptive_floor: the adaptive weights "
        "1 / max(|slope|, floor)^gamma overflow (a weight is 0 or infinite) with gamma=400.0, "
        "floor=0.001; use a smaller gamma or a larger floor")


@pytest.mark.parametrize("name", ["auto_sign_adaptive_gamma", "auto_sign_adaptive_floor"])
@pytest.mark.parametrize("value", [0.0, -1.0, np.inf, np.nan, "1", True])
def test_bad_gamma_or_floor_is_refused_in_fit(name, value):
    x, y = panel(seed=3)
    model = LassoModel(reg_lambda=2e-3, **ADAPTIVE, **{name: value})  # accepted here
    with pytest.raises(ValueError) as err:
        model.fit(x, y)
    assert str(err.value) == f"{name} must be a number > 0, got {value!r}"


def test_cross_validation_keeps_the_weights():
    from xl_factorlasso import LassoModelCV

    x, y = panel(seed=3)
    kw = dict(ADAPTIVE, model_type="HIERARCHICAL_CLUSTER_GROUP_LASSO", l1_weight=0.2)
    cv = LassoModelCV(base_model=LassoModel(**kw), n_splits=3).fit(x, y)
    best = cv.best_model_
    direct = LassoModel(reg_lambda=best.reg_lambda, **kw).fit(x, y)
    pd.testing.assert_frame_equal(best.sign_penalty_weights_, direct.sign_penalty_weights_)
    np.testing.assert_allclose(best.coef_, direct.coef_, atol=1e-7)
    assert best.duality_gap_ <= 1e-8


def test_workbook_refit_applies_the_setting():
    from tests.workbook_helpers import demo_memory_book
    from xl_factorlasso.core.datasets import load_demo_panel
    from xl_factorlasso.workbook import refit

    d = load_demo_panel()
    settings = {"model_type": "FCGL", "reg_lambda": 1e-4, "n_clusters": 3, "l1_weight": 0.2,
                "auto_sign_constraints": "TRUE", "auto_sign_adaptive_weights": "TRUE"}
    io = demo_memory_book(settings=settings)
    refit(io)
    coef = np.array([r[1:] for r in io.read(io.names()["FL_COEF"])[1:]], dtype=float)
    kw = dict(model_type="FCGL", reg_lambda=1e-4, n_clusters=3, l1_weight=0.2,
              factors_beta_loading_signs=d.signs, factors_beta_prior=d.prior,
              auto_sign_constraints=True)
    ref = LassoModel(auto_sign_adaptive_weights=True, **kw).fit(d.x, d.y)
    plain = LassoModel(**kw).fit(d.x, d.y)
    np.testing.assert_allclose(coef, ref.coef_, atol=1e-9)
    assert np.abs(coef - plain.coef_.to_numpy()).max() > 1e-4


def test_workbook_names_the_cell_of_a_bad_flag():
    from tests.workbook_helpers import demo_memory_book
    from xl_factorlasso.workbook import refit

    io = demo_memory_book(settings={"auto_sign_adaptive_weights": "maybe"})
    before = {name: io.read(area) for name, area in io.names().items()}
    with pytest.raises(ValueError) as err:
        refit(io)
    assert str(err.value) == ("FL_SETTINGS!B2: auto_sign_adaptive_weights: 'maybe' is not "
                              "TRUE or FALSE")
    assert {name: io.read(area) for name, area in io.names().items()} == before
