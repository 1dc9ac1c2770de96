"""COOPERATIVE_GROUP_LASSO (6) and COOPERATIVE_CLUSTER_GROUP_LASSO (7): factorlasso 1.0.6's
cooperative LASSO on cluster x factor blocks, on the fast engine and the CVXPY reference.

The penalty of a block is ``w_g (||D+||_2 + ||D-||_2)`` (plus the L1 mix): the prox, the dual
norm of the certificate and ``lambda_max`` are each checked against an independent
formulation (CVXPY on the norms as written, or a closed form), the fits against the CVXPY
reference and against factorlasso live.
"""

from __future__ import annotations

import warnings

import cvxpy as cp
import numpy as np
import pandas as pd
import pytest

from tests.test_engine import PROX_TIGHT, TIGHT, _random_box, assert_same_minimiser
from tests.test_lasso_reference_cvxpy import GROUPS, make_ragged_panel
from tests.test_parity_factorlasso import panel
from xl_factorlasso import LassoModel, LassoModelType
from xl_factorlasso.core.linear_model import FastEngine
from xl_factorlasso.core.linear_model._prox import prox_cooperative, prox_sparse_group

pytestmark = [
    pytest.mark.filterwarnings("ignore:solver CLARABEL returned an inaccurate solution"),
    pytest.mark.filterwarnings("ignore:Solution may be inaccurate"),
]

COOP = ["COOPERATIVE_GROUP_LASSO", "COOPERATIVE_CLUSTER_GROUP_LASSO"]


def _kw(model_type, y, **extra):
    kw = dict(model_type=model_type, warmup_period=None, **extra)
    if model_type == "COOPERATIVE_GROUP_LASSO" and "group_data" not in kw:
        kw["group_data"] = GROUPS if y.shape[1] == len(GROUPS) else pd.Series(
            [i % 3 for i in range(y.shape[1])], index=y.columns)
    return kw


# ---------------------------------------------------------------- names
def test_names_values_and_short_names():
    assert LassoModelType.COOPERATIVE_GROUP_LASSO.value == 6
    assert LassoModelType.COOPERATIVE_CLUSTER_GROUP_LASSO.value == 7
    for text, member in [("coop", "COOPERATIVE_GROUP_LASSO"), ("CCGL", "COOPERATIVE_CLUSTER_"
                         "GROUP_LASSO"), (6, "COOPERATIVE_GROUP_LASSO"),
                         ("cooperative group lasso", "COOPERATIVE_GROUP_LASSO")]:
        assert LassoModelType.parse(text).name == member
    t6, t7 = (LassoModelType.parse(v) for v in (6, 7))
    assert (t6.geometry, t7.geometry) == ("block", "block")
    assert t6.is_cooperative and t7.is_cooperative
    assert not t6.discovers_clusters and t7.discovers_clusters
    assert t6.uses_group_data and not t7.uses_group_data
    assert not LassoModelType.FACTOR_CLUSTER_GROUP_LASSO.is_cooperative


# ---------------------------------------------------------------- the prox
def _cvxpy_coop_prox(v, alpha, beta, groups, lower, upper):
    d = cp.Variable(v.size)
    objective = 0.5 * cp.sum_squares(d - v) + cp.sum(cp.multiply(alpha, cp.abs(d)))
    for g in range(len(beta)):
        members = np.flatnonzero(groups == g)
        if members.size:
            objective = objective + beta[g] * (cp.norm(cp.pos(d[members]), 2)
                                               + cp.norm(cp.neg(d[members]), 2))
    cons = []
    lo, up = np.flatnonzero(np.isfinite(lower)), np.flatnonzero(np.isfinite(upper))
    if lo.size:
        cons.append(d[lo] >= lower[lo])
    if up.size:
        cons.append(d[up] <= upper[up])
    cp.Problem(cp.Minimize(objective), cons).solve(solver="CLARABEL", **PROX_TIGHT)
    return np.clip(d.value, lower, upper)


def _coop_prox_objective(d, v, alpha, beta, groups):
    halves = sum(beta[g] * (np.linalg.norm(np.maximum(d[groups == g], 0))
                            + np.linalg.norm(np.minimum(d[groups == g], 0)))
                 for g in range(len(beta)))
    return 0.5 * np.sum((d - v) ** 2) + np.sum(alpha * np.abs(d)) + halves


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("boxed", [False, True])
def test_prox_cooperative_equals_a_brute_force_prox(seed, boxed):
    """Against CVXPY on the penalty as written (strong convexity: a better objective means the
    distance to the true prox is at most sqrt(2 * excess))."""
    rng = np.random.default_rng(seed)
    size, n_groups = 24, 4
    v = rng.standard_normal(size) * rng.choice([0.1, 1.0, 3.0], size)
    alpha = rng.uniform(0, 0.4, size) * (seed % 2)  # pure cooperative for even seeds
    beta = rng.uniform(0.1, 2.0, n_groups)
    groups = rng.integers(0, n_groups, size)
    lower, upper = _random_box(rng, size) if boxed else (np.full(size, -np.inf),
                                                         np.full(size, np.inf))
    got = prox_cooperative(v, alpha, beta, groups, lower, upper)
    assert np.all((got >= lower) & (got <= upper))
    assert np.all(got * v >= 0)  # the proof's first step: every coordinate keeps its sign
    ref = _cvxpy_coop_prox(v, alpha, beta, groups, lower, upper)
    ours = _coop_prox_objective(got, v, alpha, beta, groups)
    theirs = _coop_prox_objective(ref, v, alpha, beta, groups)
    assert ours <= theirs + 1e-12
    assert np.linalg.norm(got - ref) <= np.sqrt(2 * max(theirs - ours, 0.0)) + 1e-7
    # some half-blocks are exactly zero while their other half is not (so the test has teeth)
    if seed == 0:
        assert np.any(got == 0.0) and np.any(got != 0.0)


def test_prox_cooperative_on_a_sign_coherent_block_is_the_sparse_group_prox():
    rng = np.random.default_rng(3)
    v = np.abs(rng.standard_normal(10)) + 0.1
    groups = np.repeat([0, 1], 5)
    beta, alpha = np.array([0.7, 3.0]), np.full(10, 0.05)
    free = (np.full(10, -np.inf), np.full(10, np.inf))
    for sign in (1.0, -1.0):
        np.testing.assert_allclose(prox_cooperative(sign * v, alpha, beta, groups, *free),
                                   prox_sparse_group(sign * v, alpha, beta, groups, *free),
                                   rtol=0, atol=1e-15)
    # a mixed block is shrunk more than the group prox would: each half meets beta on its own
    mixed = v * np.where(np.arange(10) % 2, 1.0, -1.0)
    coop = prox_cooperative(mixed, 0.0, beta, groups, *free)
    group = prox_sparse_group(mixed, 0.0, beta, groups, *free)
    assert np.all(np.abs(coop) <= np.abs(group) + 1e-15)
    assert np.linalg.norm(coop) < np.linalg.norm(group)


# ---------------------------------------------------------------- the dual norm
def _cvxpy_dual_norm(z, a, w):
    """``max <z, d>`` over ``a ||d||_1 + (1-a) w (||d+||_2 + ||d-||_2) <= 1``."""
    d = cp.Variable(z.size)
    omega = a * cp.norm(d, 1) + (1 - a) * w * (cp.norm(cp.pos(d), 2) + cp.norm(cp.neg(d), 2))
    prob = cp.Problem(cp.Maximize(z @ d), [omega <= 1])
    prob.solve(solver="CLARABEL", **PROX_TIGHT)
    return prob.value


@pytest.mark.parametrize("l1_weight", [0.0, 0.3, 0.8])
def test_dual_norm_of_the_certificate_equals_a_cvxpy_maximisation(l1_weight):
    x, y = make_ragged_panel(seed=2)
    kw = _kw("COOPERATIVE_GROUP_LASSO", y, l1_weight=l1_weight,
             group_data=pd.Series("g", index=y.columns))  # one cluster: one unit
    setup = LassoModel(**kw)._setup(x, y)
    engine = FastEngine(setup.stats, setup.spec)
    assert engine.coop and engine.n_units == 1
    rng = np.random.default_rng(int(10 * l1_weight))
    for _ in range(5):
        r = rng.standard_normal((y.shape[1], x.shape[1]))
        r[rng.random(r.shape) < 0.3] *= -3.0
        expected = max(_cvxpy_dual_norm(r[:, j], l1_weight, engine.group_w[j])
                       for j in range(x.shape[1]))
        got = engine._dual_norms(r)[0]
        assert got >= expected * (1 - 1e-7) and got == pytest.approx(expected, rel=1e-6)
    # the pure cooperative part in closed form: max(||z+||, ||z-||) / w
    if l1_weight == 0.0:
        closed = max(max(np.linalg.norm(np.maximum(r[:, j], 0)),
                         np.linalg.norm(np.minimum(r[:, j], 0))) / engine.group_w[j]
                     for j in range(x.shape[1]))
        assert engine._dual_norms(r)[0] == pytest.approx(closed, rel=1e-14)


@pytest.mark.parametrize("model_type", COOP)
@pytest.mark.parametrize("reg_lambda", [0.01, 0.3])
def test_duality_gap_bounds_the_suboptimality_and_vanishes_at_the_optimum(model_type,
                                                                          reg_lambda):
    x, y = make_ragged_panel(seed=5)
    prior = pd.DataFrame(np.random.default_rng(1).normal(0, 0.3, (y.shape[1], x.shape[1])),
                         index=y.columns, columns=x.columns)
    kw = _kw(model_type, y, span=30, l1_weight=0.2, factors_beta_prior=prior)
    setup = LassoModel(**kw)._setup(x, y)
    engine = FastEngine(setup.stats, setup.spec)
    best = engine.solve(reg_lambda, tol=1e-13)
    assert best.certified
    gap, f_star = engine.duality_gap(best.coef, reg_lambda)
    assert gap <= 1e-13 * f_star
    rng = np.random.default_rng(0)
    for k in range(40):
        coef = best.coef + rng.standard_normal(best.coef.shape) * 10.0 ** rng.uniform(-7, 0)
        if k % 2:
            coef = np.where(rng.random(coef.shape) < 0.3, -coef, coef)  # mixed-sign blocks
        gap, objective = engine.duality_gap(coef, reg_lambda)
        assert objective == pytest.approx(engine.objective(coef, reg_lambda), rel=1e-12)
        assert gap >= (objective - f_star) - 1e-12 * objective


# ---------------------------------------------------------------- fits
@pytest.mark.parametrize("model_type", COOP)
@pytest.mark.parametrize("span", [None, 30])
@pytest.mark.parametrize("l1_weight", [0.0, 0.25])
@pytest.mark.parametrize("with_prior", [False, True])
def test_fast_engine_equals_cvxpy_reference(model_type, span, l1_weight, with_prior):
    x, y = make_ragged_panel(seed=3)
    kw = _kw(model_type, y, span=span, l1_weight=l1_weight, reg_lambda=0.15)
    if with_prior:
        kw["factors_beta_prior"] = pd.DataFrame(
            np.random.default_rng(4).normal(0, 0.4, (y.shape[1], x.shape[1])),
            index=y.columns, columns=x.columns)
    fast = LassoModel(engine="fast", **kw).fit(x, y)
    ref = LassoModel(engine="cvxpy", solver_params=TIGHT, **kw).fit(x, y)
    assert fast.solver_ == "fast" and ref.solver_.startswith("CLARABEL")
    assert_same_minimiser(fast, ref)
    pd.testing.assert_series_equal(fast.clusters_, ref.clusters_)
    # exact zeros: cells at the prior, from whole sign halves of blocks (at this lambda the
    # random prior leaves none)
    d = fast.coef_.to_numpy() - fast._fit_setup_.spec.prior
    assert (d != 0.0).any() and ((d == 0.0).any() or with_prior)


def test_exact_zero_halves_and_soft_sign_coherence():
    """A large enough lambda removes the minority sign of a block and keeps the majority, so the
    cooperative fit has fewer mixed-sign blocks than FCGL at the same penalty level."""
    x, y = make_ragged_panel(seed=11, n=9)
    groups = pd.Series([i % 3 for i in range(9)], index=y.columns)
    coop = LassoModel(model_type="COOPERATIVE_GROUP_LASSO", group_data=groups,
                      reg_lambda=0.15, warmup_period=None).fit(x, y)
    coef = coop.coef_.to_numpy()
    codes = groups.to_numpy()
    mixed = sum(bool((coef[codes == g, j] > 0).any() and (coef[codes == g, j] < 0).any())
                for g in range(3) for j in range(x.shape[1]))
    halves = sum(bool(((coef[codes == g, j] > 0).any()) != ((coef[codes == g, j] < 0).any()))
                 for g in range(3) for j in range(x.shape[1]))
    assert halves >= 1  # a block kept one sign half and lost the other exactly
    raw = LassoModel(reg_lambda=0.0, warmup_period=None).fit(x, y).coef_.to_numpy()
    mixed_ols = sum(bool((raw[codes == g, j] > 0).any() and (raw[codes == g, j] < 0).any())
                    for g in range(3) for j in range(x.shape[1]))
    assert mixed < mixed_ols


def test_lambda_max_in_closed_form_and_the_prior_at_it():
    """One cluster, a = 0, no prior, no gaps: lambda_max = (2/T) max_j max(||c_j+||, ||c_j-||)
    / sqrt(N), with c = X'Y on the demeaned panel (computed here from pandas)."""
    x, y, _, _ = panel(seed=4)
    x, y = x.dropna(), y.loc[x.dropna().index].dropna(axis=1)
    t, n = len(y), y.shape[1]
    xc, yc = x - x.mean(), y - y.mean()
    c = xc.to_numpy().T @ yc.to_numpy()  # (M, N)
    closed = (2 / t) * max(max(np.linalg.norm(np.maximum(row, 0)),
                               np.linalg.norm(np.minimum(row, 0))) for row in c) / np.sqrt(n)
    kw = dict(model_type="COOPERATIVE_GROUP_LASSO", group_data=pd.Series(1, index=y.columns))
    model = LassoModel(reg_lambda=closed, **kw).fit(x, y)
    assert model.reg_lambda_max_ == pytest.approx(closed, rel=1e-12)
    # the prior (in closed form or by the engine, as the sums' last bits fall: on an AMD EPYC
    # this pandas value lay just below reg_lambda_max_); at reg_lambda_max_ itself, no solve
    assert (model.coef_.to_numpy() == 0).all()
    at_max = LassoModel(reg_lambda=model.reg_lambda_max_, **kw).fit(x, y)
    assert (at_max.coef_.to_numpy() == 0).all() and at_max.solver_ == "closed form"
    below = LassoModel(reg_lambda=0.98 * closed, **kw).fit(x, y)
    assert (below.coef_.to_numpy() != 0).any()
    # with the L1 mix and clusters: the fit at lambda_max is the prior, just below it is not
    prior = pd.DataFrame(0.1, index=y.columns, columns=x.columns)
    for l1 in (0.0, 0.4):
        kw7 = dict(model_type="COOPERATIVE_CLUSTER_GROUP_LASSO", l1_weight=l1, n_clusters=3,
                   factors_beta_prior=prior)
        lam = LassoModel(**kw7).lambda_max(x, y)
        at = LassoModel(reg_lambda=lam, engine="cvxpy", solver_params=TIGHT, **kw7).fit(x, y)
        assert np.abs(at.coef_.to_numpy() - 0.1).max() <= 1e-7
        near = LassoModel(reg_lambda=0.98 * lam, **kw7).fit(x, y)
        assert np.abs(near.coef_.to_numpy() - 0.1).max() > 1e-6


def test_one_response_is_lasso():
    x, y = make_ragged_panel(seed=1)
    one = y.iloc[:, [0]]
    for model_type in COOP:
        kw = _kw(model_type, one, reg_lambda=0.05, l1_weight=0.3)
        kw.pop("group_data", None)
        coop = LassoModel(group_data=pd.Series("g", index=one.columns), **kw).fit(x, one)
        lasso = LassoModel(reg_lambda=0.05).fit(x, one)
        np.testing.assert_allclose(coop.coef_, lasso.coef_, atol=1e-10)


# ---------------------------------------------------------------- as factorlasso
def _factorlasso():
    return pytest.importorskip("factorlasso")


def _comembership(labels: pd.Series) -> np.ndarray:
    v = labels.to_numpy()
    return v[:, None] == v[None, :]


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("model_type", COOP)
@pytest.mark.parametrize("span, l1_weight", [(None, 0.0), (30, 0.0), (None, 0.3), (30, 0.3)])
def test_parity_with_factorlasso(seed, model_type, span, l1_weight):
    fl = _factorlasso()
    x, y, _, prior = panel(seed=seed)
    kw = dict(reg_lambda=0.05, span=span, l1_weight=l1_weight, factors_beta_prior=prior)
    if model_type == "COOPERATIVE_GROUP_LASSO":
        kw["group_data"] = pd.Series([i % 3 for i in range(y.shape[1])], index=y.columns)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = fl.LassoModel(model_type=getattr(fl.LassoModelType, model_type), **kw).fit(
            x=x, y=y)
    ours = LassoModel(model_type=model_type, **kw).fit(x, y)
    assert ours.objective_value_ <= ours.objective(theirs.coef_) * (1 + 1e-9)
    np.testing.assert_allclose(ours.coef_, theirs.coef_.loc[y.columns, x.columns], atol=2e-4)
    np.testing.assert_allclose(ours.r2_, theirs.estimation_result_.r2, atol=1e-4)
    if model_type == "COOPERATIVE_CLUSTER_GROUP_LASSO":
        shared = theirs.clusters_.index
        assert list(ours.clusters_.index) == list(shared)
        assert (_comembership(ours.clusters_) == _comembership(theirs.clusters_)).all()
        np.testing.assert_allclose(ours.linkage_, theirs.linkage_, atol=1e-12)


def test_cluster_options_apply_as_for_hcgl():
    fl = _factorlasso()
    x, y, _, _ = panel(seed=2)
    opts = dict(dependence_measure="spearman", distance_transform="chord", n_clusters=3,
                linkage_method="average")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = fl.LassoModel(model_type=fl.LassoModelType.COOPERATIVE_CLUSTER_GROUP_LASSO,
                               reg_lambda=0.05, **opts).fit(x=x, y=y)
    ours = LassoModel(model_type="CCGL", reg_lambda=0.05, **opts).fit(x, y)
    hcgl = LassoModel(model_type="HCGL", reg_lambda=0.05, **opts).fit(x, y)
    pd.testing.assert_series_equal(ours.clusters_, hcgl.clusters_)
    assert (_comembership(ours.clusters_) == _comembership(theirs.clusters_)).all()
    assert ours.objective_value_ <= ours.objective(theirs.coef_) * (1 + 1e-9)


def test_auto_signs_are_derived_but_not_enforced_as_in_factorlasso():
    fl = _factorlasso()
    x, y, _, _ = panel(seed=3)
    kw = dict(model_type="COOPERATIVE_CLUSTER_GROUP_LASSO", reg_lambda=0.05, n_clusters=3)
    plain = LassoModel(**kw).fit(x, y)
    auto = LassoModel(auto_sign_constraints=True, auto_sign_adaptive_weights=True, **kw).fit(
        x, y)
    np.testing.assert_array_equal(auto.coef_, plain.coef_)
    assert auto.derived_signs_ is None and auto.sign_penalty_weights_ is None
    assert auto.detected_signs_ is not None and (auto.detected_signs_ != 0).any().any()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = fl.LassoModel(model_type=fl.LassoModelType.COOPERATIVE_CLUSTER_GROUP_LASSO,
                               auto_sign_constraints=True, auto_sign_adaptive_weights=True,
                               reg_lambda=0.05, n_clusters=3).fit(x=x, y=y)
    assert theirs.derived_signs_ is None
    np.testing.assert_allclose(auto.coef_, theirs.coef_.loc[y.columns, x.columns], atol=2e-4)


@pytest.mark.parametrize("model_type", COOP)
def test_hard_signs_and_nonneg_are_refused_like_factorlasso(model_type):
    fl = _factorlasso()
    x, y, signs, _ = panel(seed=1)
    kw = _kw(model_type, y)
    name = model_type
    with pytest.raises(ValueError) as err:
        LassoModel(factors_beta_loading_signs=signs, **kw).fit(x, y)
    assert str(err.value) == (f"factors_beta_loading_signs is not supported by {name}, which "
                              "takes no sign constraint (its penalty favours sign-coherent "
                              "blocks)")
    with pytest.raises(ValueError) as err:
        LassoModel(nonneg=True, **kw).fit(x, y)
    assert str(err.value) == (f"nonneg=True is not supported by {name}, which takes no sign "
                              "constraint (its penalty favours sign-coherent blocks)")
    with pytest.raises(ValueError):  # factorlasso refuses both too
        fl.LassoModel(model_type=getattr(fl.LassoModelType, model_type), nonneg=True,
                      group_data=kw.get("group_data")).fit(x=x, y=y)


def test_cooperative_group_lasso_needs_group_data():
    x, y, _, _ = panel(seed=1)
    with pytest.raises(ValueError) as err:
        LassoModel(model_type="COOPERATIVE_GROUP_LASSO").fit(x, y)
    assert str(err.value) == ("model_type COOPERATIVE_GROUP_LASSO needs group_data "
                              "(response -> group)")


# ---------------------------------------------------------------- the workbook
def _read_name(io, name):
    return io.read(io.names()[name])


def test_workbook_round_trip_from_an_xlsx(tmp_path):
    from xl_factorlasso import load_demo_panel
    from xl_factorlasso.workbook import XlsxFileIO, refit
    from xl_factorlasso.workbook._builder import build_workbook

    d = load_demo_panel()
    for model_type, extra in [("COOPERATIVE_GROUP_LASSO", {}),
                              ("COOPERATIVE_CLUSTER_GROUP_LASSO", {"n_clusters": 4})]:
        path = tmp_path / f"{model_type}.xlsx"
        settings = {"model_type": model_type, "reg_lambda": 2e-4, "span": 52, "l1_weight": 0.1,
                    **extra}
        build_workbook(path, returns=d.y, factors=d.x, prior=d.prior, groups=d.clusters,
                       settings=settings)
        refit(XlsxFileIO(path))
        io = XlsxFileIO(path)
        coef = np.array([r[1:] for r in _read_name(io, "FL_COEF")[1:]], dtype=float)
        kw = dict(model_type=model_type, reg_lambda=2e-4, span=52, l1_weight=0.1,
                  factors_beta_prior=d.prior, **extra)
        if model_type == "COOPERATIVE_GROUP_LASSO":
            kw["group_data"] = d.clusters.astype(str)
        ref = LassoModel(**kw).fit(d.x, d.y)
        np.testing.assert_allclose(coef, ref.coef_.to_numpy(), atol=1e-9)
        assert (coef == 0).any()
        corner = _read_name(io, "FL_COEF")[0][0]
        label = "COOP" if model_type == "COOPERATIVE_GROUP_LASSO" else "CCGL"
        assert corner == f"asset ({label}, lambda 0.0002)"
        clusters = {r[0]: r[1] for r in _read_name(io, "FL_CLUSTERS")[1:] if r[0] is not None}
        if model_type == "COOPERATIVE_GROUP_LASSO":
            assert clusters == ref.clusters_.to_dict()  # the FL_GROUPS labels
        else:
            assert clusters == {a: float(v) for a, v in ref.clusters_.items()}


def test_workbook_refuses_filled_signs_and_nonneg_naming_the_cell():
    from tests.workbook_helpers import demo_memory_book
    from xl_factorlasso.workbook import refit

    io = demo_memory_book(settings={"model_type": "CCGL", "n_clusters": 4})
    before = {name: io.read(area) for name, area in io.names().items()}
    with pytest.raises(ValueError) as err:
        refit(io)
    signs = before["FL_SIGNS"]
    first = next((i, j) for i, row in enumerate(signs[1:], 1) for j, v in enumerate(row[1:], 1)
                 if v is not None)
    cell = f"{'ABCDEFGH'[first[1]]}{first[0] + 1}"
    asset, factor = signs[first[0]][0], signs[0][first[1]]
    assert str(err.value) == (
        f"FL_SIGNS!{cell}: the sign of ({asset}, {factor}) is set, but model_type "
        "COOPERATIVE_CLUSTER_GROUP_LASSO takes no sign constraint (its penalty favours "
        "loadings of one sign within a group softly); clear FL_SIGNS or use FCGL")
    assert {name: io.read(area) for name, area in io.names().items()} == before

    io = demo_memory_book(settings={"model_type": "CCGL", "nonneg": "TRUE"}, signs=False)
    before = {name: io.read(area) for name, area in io.names().items()}
    with pytest.raises(ValueError) as err:
        refit(io)
    assert str(err.value) == (
        "FL_SETTINGS!B3: nonneg TRUE is not allowed: model_type "
        "COOPERATIVE_CLUSTER_GROUP_LASSO takes no sign constraint (its penalty favours loadings "
        "of one sign within a group softly)")
    assert {name: io.read(area) for name, area in io.names().items()} == before


def test_workbook_group_type_without_groups_names_fl_groups():
    from tests.workbook_helpers import demo_memory_book
    from xl_factorlasso.workbook import refit

    io = demo_memory_book(settings={"model_type": "coop"}, signs=False)
    with pytest.raises(ValueError) as err:
        refit(io)
    assert str(err.value).startswith(
        "FL_GROUPS: model_type COOPERATIVE_GROUP_LASSO needs a group for every asset;")


def test_worksheet_function_accepts_the_cooperative_types():
    from tests.workbook_helpers import frame_rows
    from xl_factorlasso import load_demo_panel, udfs

    d = load_demo_panel()
    r, f = frame_rows(d.y, "date"), frame_rows(d.x, "date")
    settings = [["span", 52], ["n_clusters", 4], ["loss_normalization", "weight_sum"]]
    out = udfs.FLASSO_CLUSTERS(r, f, 1e-4, "COOPERATIVE_CLUSTER_GROUP_LASSO", None, None,
                               settings)
    ref = LassoModel(model_type="CCGL", reg_lambda=1e-4, span=52, n_clusters=4,
                     loss_normalization="weight_sum").fit(d.x, d.y)
    assert {row[0]: row[1] for row in out[1:]} == {a: int(v) for a, v in ref.clusters_.items()}
    coef = udfs.FLASSO_FIT(r, f, 1e-4, "CCGL", None, None, settings)
    np.testing.assert_allclose(np.array([row[1:] for row in coef[1:]], dtype=float),
                               ref.coef_.to_numpy(), atol=1e-9)


@pytest.mark.parametrize("model_type", COOP)
def test_ols_prior_with_auto_signs_as_in_factorlasso(model_type):
    """The empirical prior centres the cooperative penalty; derived signs stay unenforced."""
    fl = _factorlasso()
    x, y, _, _ = panel(seed=2)
    kw = dict(reg_lambda=0.05, span=30, l1_weight=0.2, apply_ols_prior=True,
              auto_sign_constraints=True)
    if model_type == "COOPERATIVE_GROUP_LASSO":
        kw["group_data"] = pd.Series([i % 3 for i in range(y.shape[1])], index=y.columns)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = fl.LassoModel(model_type=getattr(fl.LassoModelType, model_type), **kw).fit(
            x=x, y=y)
    ours = LassoModel(model_type=model_type, **kw).fit(x, y)
    np.testing.assert_allclose(ours.effective_beta_prior_,
                               theirs.effective_beta_prior_.loc[y.columns, x.columns], atol=1e-12)
    assert (ours.effective_beta_prior_ != 0).any().any()
    assert ours.derived_signs_ is None and theirs.derived_signs_ is None
    assert ours.objective_value_ <= ours.objective(theirs.coef_) * (1 + 1e-9)
    np.testing.assert_allclose(ours.coef_, theirs.coef_.loc[y.columns, x.columns], atol=2e-4)
