"""Numerical honesty of the fit: badly scaled data, certificates, closed form, overflow.

The grid: every model type (LASSO, GROUP_LASSO, HCGL, FCGL) with signs, a prior, an EWMA span
and an L1 mix, on the ragged reference panel transformed six ways (as is; factors x 1e8 and
x 1e-8; responses x 1e8 and x 1e-8; one factor replaced by one of variance 1e-15), at five
penalties (0, 0.05, 0.999 and 1.001 times lambda_max, and 1e10), for engines "fast", "cvxpy"
and "auto": 360 fits.

Nothing here trusts the package's own certificate. Every fit is checked against an
independent high-precision optimum: the deliberately naive CVXPY formulation of
tests/test_lasso_reference_cvxpy.py (its own preparation, the T x N residual matrix, one
constraint per signed cell) at 1e-12 tolerances, refined by Newton's method on its support.
It is solved on the well-scaled problem that each transformed one is equivalent to: with
``x -> s x``, ``y -> c y``, the objective at ``lambda c s`` and prior ``B0 c / s`` is ``c^2``
times the original one at ``B c / s``. Each fit's objective is evaluated with the naive
formula on the transformed data itself.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pandas as pd
import pytest

from tests.conftest import make_panel
from tests.test_lasso_reference_cvxpy import (
    FCGL,
    GROUP,
    GROUPS,
    HCGL,
    LASSO,
    make_ragged_panel,
    make_signs_prior,
    ref_objective_np,
    ref_polish,
    ref_prepare,
    ref_solve,
)
from xl_factorlasso import LassoModel, LassoModelCV, SolveError

SPAN = 30.0
L1 = 0.2
TOL = 1e-8  # the default certification tolerance
REF_RTOL = 1e-11  # the reference optimum's own accuracy (Newton-polished)
ENGINES = ("fast", "cvxpy", "auto")
MODEL_TYPES = {"LASSO": LASSO, "GROUP_LASSO": GROUP, "HCGL": HCGL, "FCGL": FCGL}
# (factor scale s, response scale c)
SCALINGS = {"plain": (1.0, 1.0), "x*1e8": (1e8, 1.0), "x*1e-8": (1e-8, 1.0),
            "y*1e8": (1.0, 1e8), "y*1e-8": (1.0, 1e-8)}
TRANSFORMS = [*SCALINGS, "tiny-variance factor"]
PENALTIES = ("0", "0.05 max", "0.999 max", "1.001 max", "1e10")

pytestmark = pytest.mark.filterwarnings("ignore:Solution may be inaccurate")


# ---------------------------------------------------------------- the grid's data
def base_panel():
    x, y = make_ragged_panel()
    signs, prior = make_signs_prior(x, y)
    return x, y, signs.loc[y.columns, x.columns], prior.loc[y.columns, x.columns].fillna(0.0)


def tiny_variance_panel():
    """Factor f1 replaced by white noise of variance 1e-15 (its prior cells stay as given)."""
    x, y, signs, prior = base_panel()
    x = x.copy()
    x["f1"] = np.random.default_rng(9).standard_normal(len(x)) * np.sqrt(1e-15)
    return x, y, signs, prior


def model_kwargs(model_type, signs, prior):
    kw = dict(model_type=model_type, span=SPAN, l1_weight=L1, warmup_period=None,
              factors_beta_loading_signs=signs, factors_beta_prior=prior)
    if model_type == "GROUP_LASSO":
        kw["group_data"] = GROUPS
    return kw


def transformed(transform):
    """``(x, y, signs, prior, s, c)``: the data of a transform and its scales (1 for the
    tiny-variance factor, which is no rescaling of the plain panel)."""
    if transform == "tiny-variance factor":
        return (*tiny_variance_panel(), 1.0, 1.0)
    s, c = SCALINGS[transform]
    x, y, signs, prior = base_panel()
    return x * s, y * c, signs, prior * c / s, s, c


# ---------------------------------------------------------------- independent optimum
_REFERENCE: dict = {}


def naive(model_type, x, y, prior, reg_lambda, labels):
    """The naive objective of tests/test_lasso_reference_cvxpy.py on these data."""
    xd, yd, W = ref_prepare(x, y, SPAN)

    def objective(coef):
        return ref_objective_np(np.asarray(coef), xd, yd, W, prior.to_numpy(), reg_lambda,
                                MODEL_TYPES[model_type], labels, L1)

    return objective


def reference_optimum(model_type, base, reg_lambda, labels, lam_max):
    """Independent optimum ``(B, F)`` of a well-scaled panel: naive CVXPY at 1e-12, then
    Newton on its support (cached per problem).

    Above ``1.001 lambda_max`` (``lambda = 1e10`` is beyond any interior-point solver) the
    reference is the solve at ``1.001 lambda_max``, which must be the prior: a point that is
    optimal at some lambda and has no penalty (the prior) stays optimal at any larger one.
    """
    if reg_lambda > 1.001 * lam_max * (1 + 1e-12):
        coef, _ = reference_optimum(model_type, base, 1.001 * lam_max, labels, lam_max)
        x, y, _, prior = base_panel() if base == "plain" else tiny_variance_panel()
        np.testing.assert_array_equal(coef, prior.to_numpy())
        return coef, naive(model_type, x, y, prior, reg_lambda, labels)(coef)
    key = (model_type, base, float(reg_lambda))
    if key not in _REFERENCE:
        x, y, signs, prior = base_panel() if base == "plain" else tiny_variance_panel()
        if base == "tiny, lambda 0":
            # Without a penalty, rescaling a factor is an exact equivalence (its loading
            # scales back); with unit variance the naive programme is well conditioned.
            x = x.copy()
            x["f1"] = x["f1"] / np.sqrt(1e-15)
        xd, yd, W = ref_prepare(x, y, SPAN)
        args = (xd, yd, W, prior.to_numpy(), signs.to_numpy(), reg_lambda,
                MODEL_TYPES[model_type], labels, L1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            coef = ref_solve(*args)
        coef, _ = ref_polish(coef, *args)
        if base == "tiny, lambda 0":
            coef = coef.copy()
            coef[:, 1] /= np.sqrt(1e-15)
            x, y, signs, prior = tiny_variance_panel()
        _REFERENCE[key] = (coef, naive(model_type, x, y, prior, reg_lambda, labels)(coef))
    return _REFERENCE[key]


@functools.cache
def labels_of(model_type):
    """Group labels the models use (clusters depend on the responses only: every transform
    finds the same ones, which the tests check)."""
    x, y, signs, prior = base_panel()
    model = LassoModel(**model_kwargs(model_type, signs, prior), reg_lambda=1.0).fit(x, y)
    if model_type == "LASSO":
        return None, model
    return model.clusters_.to_numpy(), model


@functools.cache
def plain_fit(model_type, reg_lambda):
    """The plain panel's fast fit (the equivariance checks scale it)."""
    x, y, signs, prior = base_panel()
    return LassoModel(engine="fast", reg_lambda=reg_lambda,
                      **model_kwargs(model_type, signs, prior)).fit(x, y).coef_.to_numpy()


# ---------------------------------------------------------------- the grid
@pytest.mark.parametrize("transform", TRANSFORMS)
@pytest.mark.parametrize("model_type", list(MODEL_TYPES))
def test_badly_scaled_grid_is_certified_equivariant_and_agrees(model_type, transform):
    labels, plain_model = labels_of(model_type)
    lam_max_plain = plain_model.reg_lambda_max_
    x, y, signs, prior, s, c = transformed(transform)
    kw = model_kwargs(model_type, signs, prior)
    lam_max = LassoModel(**kw).lambda_max(x, y)
    if transform != "tiny-variance factor":
        assert lam_max == pytest.approx(lam_max_plain * c * s, rel=1e-9)  # equivariant
    for penalty in PENALTIES:
        reg_lambda = {"0": 0.0, "1e10": 1e10}.get(penalty)
        if reg_lambda is None:
            reg_lambda = float(penalty.split()[0]) * lam_max
        objective = naive(model_type, x, y, prior, reg_lambda, labels)
        # the independent optimum, mapped to this problem's units
        if transform == "tiny-variance factor":
            base = "tiny, lambda 0" if reg_lambda == 0.0 else "tiny"
            ref_coef, ref_value = reference_optimum(model_type, base, reg_lambda, labels,
                                                    lam_max)
        else:
            ref_coef, ref_value = reference_optimum(model_type, "plain", reg_lambda / (c * s),
                                                    labels, lam_max_plain)
            ref_coef, ref_value = ref_coef * c / s, ref_value * c * c
        assert objective(ref_coef) == pytest.approx(ref_value, rel=1e-9)
        fits = {}
        for engine in ENGINES:
            model = LassoModel(engine=engine, reg_lambda=reg_lambda, **kw).fit(x, y)
            if labels is not None:
                np.testing.assert_array_equal(model.clusters_.to_numpy(), labels)
            where = f"{model_type}, {transform}, lambda {penalty}, engine {engine}"
            assert model.solver_status_ == "optimal" and model.duality_gap_ <= TOL, where
            value = objective(model.coef_.to_numpy())
            assert model.objective_value_ == pytest.approx(value, rel=1e-9), where
            # independent check of the certificate: no better point exists beyond the gap
            # the model reports, and it is within tol of the best one known
            slack = REF_RTOL * abs(ref_value)
            assert ref_value >= value * (1.0 - model.duality_gap_) - slack, where
            assert value <= ref_value + TOL * abs(value) + slack, where
            if reg_lambda >= lam_max:
                # closed form: the prior itself, no solve, for every engine
                assert model.solver_ == "closed form" and model.n_iter_ == 0, where
                np.testing.assert_array_equal(model.coef_.to_numpy(), prior.to_numpy())
            else:
                assert model.solver_ != "closed form", where
                if engine == "cvxpy":
                    assert model.solver_.startswith("CLARABEL"), where
            fits[engine] = (model, value)
        values = [v for _, v in fits.values()]
        assert max(values) - min(values) <= 1e-8 * abs(min(values)), (transform, penalty)
        if transform != "tiny-variance factor":
            # equivariance: this fit is the plain panel's fit, scaled back
            scaled_back = plain_fit(model_type, reg_lambda / (c * s)) * c / s
            for engine, (model, _) in fits.items():
                np.testing.assert_allclose(
                    model.coef_.to_numpy(), scaled_back, rtol=0,
                    atol=(1e-7 if engine != "cvxpy" else 1e-5) * c / s,
                    err_msg=f"{model_type}, {transform}, lambda {penalty}, engine {engine}",
                )


def test_near_zero_variance_factor_is_held_by_the_penalty():
    """A factor of variance 1e-15 barely moves the loss: under any positive penalty above its
    tiny gradient its loadings stay at the prior, and the other loadings are the ones fitted
    without that factor's information (the same as with the factor removed from the loss)."""
    x, y, signs, prior = tiny_variance_panel()
    kw = model_kwargs("HCGL", signs, prior)
    lam = 0.05 * LassoModel(**kw).lambda_max(x, y)
    model = LassoModel(reg_lambda=lam, **kw).fit(x, y)
    np.testing.assert_array_equal(model.coef_["f1"].to_numpy(), prior["f1"].to_numpy())
    # the same fit with f1 exactly constant (pinned at its prior: it leaves the loss)
    flat = x.copy()
    flat["f1"] = 0.3
    with pytest.warns(UserWarning, match="factor 'f1' is constant on every row of the fit"):
        pinned = LassoModel(reg_lambda=lam, **kw).fit(flat, y)
    np.testing.assert_array_equal(pinned.coef_["f1"].to_numpy(), prior["f1"].to_numpy())
    np.testing.assert_allclose(model.coef_, pinned.coef_, atol=1e-6)


@pytest.mark.parametrize("engine", ENGINES)
def test_constant_factor_is_pinned_at_the_prior_even_without_penalty(engine):
    """A constant factor (or one that is constant plus demeaning round-off) is identically
    zero in the loss: its loadings are not determined by the data, and the fit holds them at
    the prior, also at lambda = 0 where the penalty does not decide either."""
    x, y, signs, prior = base_panel()
    for values in (np.full(len(x), 0.7), 0.7 + 1e-15 * np.arange(len(x)) % 3):
        x2 = x.copy()
        x2["f3"] = values
        with pytest.warns(UserWarning, match="factor 'f3' is constant on every row of the fit"):
            model = LassoModel(engine=engine, reg_lambda=0.0,
                               **model_kwargs("LASSO", signs, prior)).fit(x2, y)
        np.testing.assert_array_equal(model.coef_["f3"].to_numpy(), prior["f3"].to_numpy())
        assert model.solver_status_ == "optimal" and model.duality_gap_ <= TOL


# ---------------------------------------------------------------- a prior in other units
PRIOR_UNITS = {"LASSO": True, "GROUP_LASSO": False, "FACTOR_CLUSTER_GROUP_LASSO": True}


def prior_units_case(model_type):
    """``(x, y, kwargs)``: a synthetic panel whose prior is of order one (non-negative with
    ``nonneg``) and whose responses are of order one, before any scaling."""
    from xl_factorlasso.core.datasets import make_factor_panel

    panel = make_factor_panel(40, 6, 4, seed=0)
    nonneg = PRIOR_UNITS[model_type]
    kw = dict(model_type=model_type, nonneg=nonneg, warmup_period=None,
              factors_beta_prior=panel.prior.clip(lower=0.0) if nonneg else panel.prior)
    if model_type == "GROUP_LASSO":
        kw["group_data"] = pd.Series(["a", "a", "b", "b"], index=panel.y.columns)
    return panel.x, panel.y, kw


@pytest.mark.parametrize("rel", [0.1, 1e-3])
@pytest.mark.parametrize("model_type", list(PRIOR_UNITS))
def test_prior_dwarfing_the_responses_is_solved_by_cvxpy(model_type, rel):
    """Responses x 1e-8 with a prior of order one (LASSO: ``nonneg`` and a non-negative
    prior, random search seed 90). The CVXPY programme's response scale came from y alone:
    the scaled prior was ~5e7 and Clarabel called the programme, feasible (the prior is),
    "infeasible". Now certified, equal to the fast engine's answer, and equivariant: with
    ``y -> k y``, ``B0 -> k B0``, ``lambda -> k lambda`` the minimiser is ``k B``, so the fit on
    y itself with the prior and lambda x 1e8 is this fit x 1e8."""
    x, y, kw = prior_units_case(model_type)
    small = y * 1e-8
    reg_lambda = rel * LassoModel(**kw).lambda_max(x, small)
    fits = {engine: LassoModel(engine=engine, reg_lambda=reg_lambda, **kw).fit(x, small)
            for engine in ("cvxpy", "fast")}
    model = fits["cvxpy"]
    assert model.solver_.startswith("CLARABEL") and model.solver_status_ == "optimal"
    assert model.duality_gap_ <= TOL
    coef = model.coef_.to_numpy()
    assert (coef >= 0.0).all() or not kw["nonneg"]
    # not the prior (the penalty does not hold it there) and not zero
    prior = kw["factors_beta_prior"].to_numpy()
    assert np.abs(coef - prior).max() > 0.5 and np.abs(coef).max() > 1e-3
    fast = fits["fast"]
    assert model.objective_value_ == pytest.approx(fast.objective_value_, rel=2 * TOL)
    # the coefficients: 4.7e-8 apart for LASSO, 1.2e-5 for GROUP_LASSO (a flatter optimum)
    np.testing.assert_allclose(coef, fast.coef_.to_numpy(), rtol=0,
                               atol=1e-6 if model_type == "LASSO" else 1e-4)
    unscaled = LassoModel(engine="cvxpy", reg_lambda=reg_lambda * 1e8,
                          **{**kw, "factors_beta_prior": kw["factors_beta_prior"] * 1e8}
                          ).fit(x, y)
    assert unscaled.solver_.startswith("CLARABEL") and unscaled.duality_gap_ <= TOL
    assert unscaled.objective_value_ == pytest.approx(model.objective_value_ * 1e16,
                                                      rel=2 * TOL)
    np.testing.assert_allclose(unscaled.coef_.to_numpy() / 1e8, coef, rtol=0,
                               atol=1e-6 if model_type == "LASSO" else 1e-4)


def test_response_scale_covers_the_prior_fitted_values():
    """``problem_scales``' response scale ``c`` is the responses' root mean square or, when
    larger, that of their residuals at the prior over ``PRIOR_SCALE_RATIO`` (up to its
    rounding to a power of two), so the prior's fitted values are at most ``10001 sqrt(2) c``; a
    zero prior leaves ``c`` at the responses' own scale."""
    from xl_factorlasso.core.linear_model._formulation import (
        PRIOR_SCALE_RATIO,
        LassoProblem,
        problem_scales,
    )

    x, y, kw = prior_units_case("LASSO")
    setup = LassoModel(**kw)._setup(x, y * 1e-8)
    stats, spec = setup.stats, setup.spec
    cells = stats.n_rows * len(stats.yty)
    s, c_alone = problem_scales(stats)
    assert problem_scales(stats, prior=np.zeros_like(spec.prior))[1] == c_alone
    rms_y = np.sqrt(np.sum(stats.yty) / cells)
    assert rms_y / np.sqrt(2) <= c_alone <= rms_y * np.sqrt(2)  # ~1.5e-8: y's units
    _, c = problem_scales(stats, prior=spec.prior)
    rms_residual = np.sqrt(np.sum(stats.loss_terms(spec.prior)) / cells)
    assert rms_residual > 1e7 * rms_y  # the prior's fitted values dwarf y
    target = rms_residual / PRIOR_SCALE_RATIO
    assert target / np.sqrt(2) <= c <= target * np.sqrt(2)
    # in the programme's units: the prior's fitted values ~1e4 (PRIOR_SCALE_RATIO), not ~1e8
    problem = LassoProblem(stats, spec)
    assert problem.response_scale == c
    scaled_prior = spec.prior * s / c
    fitted = np.einsum("nm,nm->n", scaled_prior,
                       stats.rescaled(s, c).gram_times(scaled_prior))  # |X~ B0~|^2 each
    rms_fitted = np.sqrt(np.sum(fitted) / cells)
    assert 1e3 <= rms_fitted <= (PRIOR_SCALE_RATIO + 1.0) * np.sqrt(2)
    assert rms_fitted * c / c_alone > 1e7  # (with c from y alone)
    # a prior whose residuals are within PRIOR_SCALE_RATIO of y's: c as from y alone
    assert problem_scales(stats, prior=spec.prior * 1e-5)[1] == c_alone


# ---------------------------------------------------------------- uncertifiable solves
def test_fast_engine_that_cannot_certify_raises_with_its_gap(iterations_only):
    x, y, _ = make_panel(seed=2)
    with pytest.raises(SolveError) as info:
        LassoModel(reg_lambda=0.01, engine="fast", engine_params={"max_iter": 1}).fit(x, y)
    assert info.value.gap > TOL
    assert f"relative duality gap {info.value.gap:.1e} > tol 1e-08" in str(info.value)
    assert [a[0] for a in info.value.attempts] == ["fast"]


@pytest.mark.parametrize("engine", ["cvxpy", "auto"])
def test_uncertified_cvxpy_answer_is_never_optimal(engine, iterations_only):
    """Clarabel stopped after 2 iterations hands back a point; the certificate rejects it, the
    polish (1 iteration, without the LASSO support corrections, which repair this point)
    cannot repair it: SolveError naming the gap and every attempt."""
    x, y, _ = make_panel(seed=2)
    model = LassoModel(reg_lambda=0.01, engine=engine, solver_params={"max_iter": 2},
                       engine_params={"max_iter": 1})
    with pytest.raises(SolveError) as info:
        model.fit(x, y)
    names = [a[0] for a in info.value.attempts]
    assert names == ["CLARABEL", "fast polish"]  # an explicit solver_params asks for CVXPY
    message = str(info.value)
    assert message.startswith("the LASSO problem could not be solved to a certified optimum "
                              "(relative duality gap <= 1e-08; best reached ")
    assert "CLARABEL: " in message and "relative duality gap" in info.value.attempts[0][1]
    assert info.value.gap > TOL
    assert not hasattr(model, "coef_")


def test_uncertified_cvxpy_answer_is_polished_into_a_certified_one():
    x, y, _ = make_panel(seed=2)
    model = LassoModel(reg_lambda=0.01, engine="cvxpy", solver_params={"max_iter": 2})
    model.fit(x, y)
    # the polish ran (its Newton step, support corrections included, may need no iteration)
    assert model.solver_ == "CLARABEL + fast polish" and model.solver_status_ == "optimal"
    assert model.duality_gap_ <= TOL
    ref = LassoModel(reg_lambda=0.01, engine="fast").fit(x, y)
    assert model.objective_value_ == pytest.approx(ref.objective_value_, rel=1e-8)


def test_every_solver_failing_without_a_point_raises(monkeypatch):
    from xl_factorlasso.core.linear_model import _formulation

    monkeypatch.setattr(_formulation.LassoProblem, "solve",
                        lambda self, *a, **k: ("infeasible", None))
    x, y, _ = make_panel(seed=2)
    with pytest.raises(SolveError) as info:
        LassoModel(reg_lambda=0.01, engine="cvxpy", solver_fallbacks=["SCS"]).fit(x, y)
    assert info.value.attempts == [("CLARABEL", "infeasible"), ("SCS", "infeasible")]
    assert info.value.gap == np.inf


# ---------------------------------------------------------------- overflow and degeneracy
@pytest.mark.parametrize("side, value, message", [
    ("x", 1e200, "x: column 'f1' has values up to 1e+200 in magnitude, which overflow in the "
                 "weighted sum of squares X'WX; rescale the column (e.g. returns as decimals)"),
    ("x", 1e308, "x: column 'f1' has values up to 1e+308 in magnitude, which overflow when "
                 "demeaned; rescale the column (e.g. returns as decimals)"),
    ("y", 1e200, "y: column 'a2' has values up to 1e+200 in magnitude, which overflow in the "
                 "weighted sum of squares y'Wy; rescale the column (e.g. returns as decimals)"),
])
@pytest.mark.parametrize("engine", ENGINES)
def test_overflowing_data_raise_naming_the_column(side, value, message, engine):
    x, y, _ = make_panel()
    data = (x if side == "x" else y).copy()
    col = 1 if side == "x" else 2
    data.iloc[5, col] = value
    data.iloc[6, col] = value
    x, y = (data, y) if side == "x" else (x, data)
    with pytest.raises(ValueError) as info:
        LassoModel(engine=engine).fit(x, y)
    assert str(info.value) == message


def test_no_varying_response_is_an_error():
    x, y, _ = make_panel()
    with pytest.raises(ValueError, match=r"^y: no response varies \(every column is constant\)"):
        LassoModel().fit(x, y * 0.0 + 3.0)
    # one constant response among others: fitted, its R^2 undefined (NaN), the rest finite
    y1 = y.copy()
    y1["a0"] = 3.0
    model = LassoModel().fit(x, y1)
    assert np.isnan(model.r2_["a0"]) and np.isfinite(model.r2_.drop("a0")).all()


def test_every_response_below_warmup_is_an_error():
    x, y, _ = make_panel(T=40)
    y = y.copy()
    y.iloc[:32] = np.nan  # 8 observations each < warmup_period = 12
    with pytest.raises(ValueError, match=r"^y: every response has fewer than warmup_period=12 "
                                         r"observations \(at most 8\)"):
        LassoModel().fit(x, y)


def test_every_response_below_warmup_is_refused_before_any_solve(monkeypatch):
    """The count is known from the preparation: a rolling fit of 5-row FCGL windows under
    warmup_period=12 solved each window first (60-90 s for 204 dates, random search)."""
    from xl_factorlasso.core.linear_model import _certified

    solves = []
    original = _certified.CertifiedSolver.solve
    monkeypatch.setattr(_certified.CertifiedSolver, "solve",
                        lambda *a, **k: solves.append(1) or original(*a, **k))
    x, y, _ = make_panel(T=40)
    y = y.copy()
    y.iloc[:32] = np.nan
    for model in (LassoModel(), LassoModel(model_type="FACTOR_CLUSTER_GROUP_LASSO")):
        with pytest.raises(ValueError, match=r"^y: every response has fewer than "
                                             r"warmup_period=12 observations \(at most 8\)"):
            model.fit(x, y)
        with pytest.raises(ValueError, match=r"^y: every response has fewer than"):
            model.fit_reg_lambda_path(x, y, [1e-3, 1e-4])
    assert solves == []
    LassoModel(warmup_period=8).fit(x, y)  # at the limit: fitted
    assert solves == [1]


def test_a_response_with_no_observation_is_said_without_a_warmup_period():
    """warmup_period=None fits every response; one with no observation gets the prior and NaN
    diagnostics, which passed silently (random search). Now said, as the warmup's are."""
    x, y, _ = make_panel(T=40)
    y = y.copy()
    y[y.columns[1]] = np.nan
    with pytest.warns(UserWarning, match=rf"^1 of {y.shape[1]} responses have no observation; "
                                         r"their loadings are the prior and their intercept, "
                                         rf"R\^2 and residual variance are NaN: {y.columns[1]}$"):
        model = LassoModel(warmup_period=None).fit(x, y)
    assert (model.coef_.iloc[1] == 0).all() and np.isnan(model.intercept_.iloc[1])
    assert np.isnan(model.r2_.iloc[1]) and model.n_obs_.iloc[1] == 0
    assert np.isfinite(model.r2_.drop(y.columns[1])).all()


def test_score_never_returns_an_infinite_r2():
    x, y, _ = make_panel()
    y = 10.0 * y  # loadings well above 1
    model = LassoModel(reg_lambda=0.01).fit(x, y)
    x_bad = x.copy()
    x_bad.iloc[0, 0] = 1e308  # its prediction overflows (the loading is above 1)
    coef = model.coef_.to_numpy()
    worst = int(np.flatnonzero(np.abs(coef[:, 0]) > 1.0)[0])
    with pytest.raises(ValueError) as info:
        model.score(x_bad, y)
    assert str(info.value) == (
        f"x: the prediction of response {y.columns[worst]!r} overflows (factor values too large "
        "for its loadings)"
    )
    # R^2 of responses in very small units is computed exactly (no underflow to NaN)
    assert model.score(x, y) == pytest.approx(
        LassoModel(reg_lambda=0.01 * 1e-150).fit(x, y * 1e-150).score(x, y * 1e-150), rel=1e-9)


def test_r2_uses_scaled_sums():
    """R^2 from sums of squares of deviations divided by their largest value: exact in any
    units (1e-170 squares to 0 in floating point, 1e170 to infinity)."""
    from xl_factorlasso.core.linear_model._lasso_model import _r2_columns

    rng = np.random.default_rng(0)
    y = rng.standard_normal((50, 3))
    pred = y + 0.3 * rng.standard_normal((50, 3))
    expected = 1 - ((y - pred) ** 2).sum(0) / ((y - y.mean(0)) ** 2).sum(0)
    for unit in (1e-170, 1.0, 1e170):
        np.testing.assert_allclose(_r2_columns(y * unit, pred * unit), expected, rtol=1e-12)


# ---------------------------------------------------------------- cross-validation
@pytest.mark.parametrize("engine", ["fast", "cvxpy"])
def test_cv_scores_above_lambda_max_are_the_priors(engine):
    """Grid values at or above a fold's lambda_max are answered in closed form (1e10 is beyond
    any interior-point solver): the fold's score is the prior's."""
    x, y, signs, prior = base_panel()
    kw = model_kwargs("FCGL", signs, prior)
    lam_max = LassoModel(**kw).lambda_max(x, y)
    grid = [1e10, 2.0 * lam_max, 0.3 * lam_max]
    cv = LassoModelCV(lambdas=grid, n_splits=3, refit=True,
                      base_model=LassoModel(engine=engine, **kw)).fit(x, y)
    above = 0
    for k, (train, test) in enumerate(cv.splits_):
        fold = LassoModel(engine="fast", reg_lambda=1e10, **kw).fit(x.iloc[train],
                                                                    y.iloc[train])
        assert fold.solver_ == "closed form"
        np.testing.assert_array_equal(fold.coef_.to_numpy(), prior.to_numpy())
        prior_score = fold.score(x.iloc[test], y.iloc[test])
        assert cv.cv_scores_.loc[1e10, f"fold_{k}"] == pytest.approx(prior_score, rel=1e-12)
        if 2.0 * lam_max >= fold.reg_lambda_max_:
            above += 1
            assert cv.cv_scores_.loc[2.0 * lam_max, f"fold_{k}"] == pytest.approx(
                prior_score, rel=1e-12)
        assert cv.cv_scores_.loc[0.3 * lam_max, f"fold_{k}"] != pytest.approx(prior_score)
    assert above >= 1
    assert cv.fold_errors_ == {}
    assert cv.best_model_.solver_status_ == "optimal"
    assert cv.best_model_.duality_gap_ <= TOL


def test_cv_with_cvxpy_is_certified_like_the_fit(monkeypatch, iterations_only):
    """The CV grid goes through the fit's certified path: a point the certificate rejects
    is never scored (here every CVXPY point is corrupted and the polish has 1 iteration and no
    LASSO support corrections, which would repair it)."""
    from xl_factorlasso.core.linear_model import _formulation

    real = _formulation.LassoProblem.solve

    def corrupted(self, *args, **kwargs):
        status, coef = real(self, *args, **kwargs)
        return status, None if coef is None else coef + 0.5

    monkeypatch.setattr(_formulation.LassoProblem, "solve", corrupted)
    x, y, _ = make_panel(T=90, M=3, N=6, seed=3)
    base = LassoModel(engine="cvxpy", warmup_period=None, engine_params={"max_iter": 1})
    lam_max = base.lambda_max(x, y)
    with pytest.raises(ValueError, match="cross-validation failed on every fold"):
        LassoModelCV(lambdas=[0.1 * lam_max, 0.01 * lam_max], n_splits=2, refit=False,
                     base_model=base).fit(x, y)
    cv = LassoModelCV(lambdas=[1e6 * lam_max, 0.1 * lam_max], n_splits=2, refit=False,
                      base_model=base).fit(x, y)
    assert np.isfinite(cv.cv_scores_.loc[1e6 * lam_max]).all()  # closed form: no CVXPY
    assert np.isnan(cv.cv_scores_.loc[0.1 * lam_max]).all()
    assert all("could not be solved to a certified optimum" in m
               for m in cv.fold_errors_.values())


def test_pinned_cells_are_exposed_in_the_penalty_spec():
    """A factor missing on every observation of a response leaves that response's loss: the
    cell is pinned at its prior (documented in docs/formulation.md)."""
    x, y, _ = make_panel(T=60, M=3, N=4, seed=1)
    x = x.copy()
    y = y.copy()
    y.iloc[:30, 0] = np.nan  # a0 observed on the last 30 rows only
    x.iloc[30:, 2] = np.nan  # f2 missing exactly there (imputed at its mean: zero)
    prior = pd.DataFrame(0.0, index=y.columns, columns=x.columns)
    prior.loc["a0", "f2"] = 0.25
    model = LassoModel(reg_lambda=0.0, factors_beta_prior=prior, warmup_period=None).fit(x, y)
    pinned = model._fit_setup_.spec.pinned
    assert pinned[0, 2] and pinned.sum() == 1
    assert model.coef_.loc["a0", "f2"] == 0.25


def test_a_prior_that_explains_less_than_the_mean_is_said():
    """Under a prior centre the penalty can hold a response's loadings where they explain less
    than none would: an in-sample R^2 below 0 (the template's JGB10, -0.71), shown without a
    reason until now. The note names such responses; R^2 is that of the loadings, computed
    here from the residuals; without a prior (or demeaning) no note."""
    x, y, coef = make_panel(T=120, M=4, N=6)
    prior = coef.copy()
    prior.iloc[2] = [-3.0, 3.0, -3.0, 3.0]  # far from a2's loadings, and of the wrong signs
    lam = 50.0 * LassoModel().lambda_max(x, y)  # enough to hold a2 at its prior
    with pytest.warns(UserWarning, match=r"^1 of 6 responses have an in-sample R\^2 below 0: "
                                         r"the penalty holds their loadings near a prior centre "
                                         r"that explains less of their returns than no loadings "
                                         r"would \(a smaller reg_lambda lets the data move them, "
                                         r"or revise their prior\): a2$"):
        model = LassoModel(reg_lambda=lam, factors_beta_prior=prior).fit(x, y)
    xc, yc = x - x.mean(), y - y.mean()  # (the economic intercept: alpha_const_)
    resid = yc.to_numpy() - xc.to_numpy() @ model.coef_.to_numpy().T
    r2 = 1.0 - (resid**2).sum(axis=0) / (yc.to_numpy() ** 2).sum(axis=0)
    np.testing.assert_allclose(model.r2_.to_numpy(), r2, rtol=1e-10, atol=1e-12)
    assert r2[2] < -10.0 and (np.delete(r2, 2) > -1e-9).all()
    np.testing.assert_array_equal(model.coef_.iloc[2], prior.iloc[2])  # held at the centre
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no note: zero loadings, R^2 0
        LassoModel(reg_lambda=lam).fit(x, y)
        LassoModel(reg_lambda=lam, factors_beta_prior=prior, demean=False).fit(x, y)
