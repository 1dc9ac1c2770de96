"""Bad input gives a ValueError that names the argument and the label; nothing is fitted."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.conftest import make_panel
from xl_factorlasso import LassoModel, LassoModelType, SolveError


def fit_error(model, x, y) -> str:
    with pytest.raises(ValueError) as info:
        model.fit(x, y)
    assert not hasattr(model, "coef_")
    return str(info.value)


@pytest.fixture
def xy():
    x, y, _ = make_panel(T=40, M=3, N=4)
    return x, y


def test_text_in_numbers_names_column_and_row(xy):
    x, y = xy
    y = y.astype(object)
    y.iloc[5, 2] = "n/a?"
    msg = fit_error(LassoModel(), x, y)
    assert "'a2'" in msg and str(y.index[5].date()) in msg and "not a number" in msg


def test_infinite_value_is_rejected(xy):
    x, y = xy
    x = x.copy()
    x.iloc[3, 1] = np.inf
    msg = fit_error(LassoModel(), x, y)
    assert "'f1'" in msg and "infinite" in msg


def test_misaligned_indexes(xy):
    x, y = xy
    y = y.copy()
    y.index = y.index + pd.Timedelta(days=1)
    assert "different row labels" in fit_error(LassoModel(), x, y)


def test_different_lengths(xy):
    x, y = xy
    assert "rows" in fit_error(LassoModel(), x.iloc[:-1], y)


def test_duplicate_labels(xy):
    x, y = xy
    y = y.rename(columns={"a1": "a0"})
    assert "duplicate column" in fit_error(LassoModel(), x, y)


def test_too_few_rows():
    x, y, _ = make_panel(T=5, M=2, N=2)
    msg = fit_error(LassoModel(span=10), x, y)  # EWMA drops the first row: 4 < 5
    assert "too few rows" in msg


@pytest.mark.parametrize("gap", [False, True], ids=["complete", "a missing return"])
def test_one_row_with_a_span_is_too_few_rows(gap):
    """A span drops the first row: one row leaves none. With a missing return on it the mask's
    patterns were computed from no rows at all and NumPy's broadcast error escaped
    (random search, through a rolling backtest's first date)."""
    x, y, _ = make_panel(T=5, M=2, N=3)
    if gap:
        y = y.copy()
        y.iloc[0, 1] = np.nan
    msg = fit_error(LassoModel(span=10), x.iloc[:1], y.iloc[:1])
    assert msg == "too few rows: 0 usable row(s) after preparation, at least 5 are needed"


def _dependence_warnings(recwarn):
    return [w for w in recwarn if "leaves the objective unchanged" in str(w.message)]


def test_identical_factor_columns_are_warned_about_once_named(recwarn):
    """Two factors with the same values on every row leave their loadings' split free (random
    search: serial and n_jobs=2 rolling loadings 3e2 apart, both certified): named, once per
    fit, from the fit and from the rolling fit, pointing at the caller; constant columns (all
    zero, say) and merely correlated ones are not."""
    from xl_factorlasso import RollingLassoModel

    x, y, _ = make_panel(T=60, M=4, N=3)
    x = x.copy()
    x[x.columns[3]] = x[x.columns[1]]
    expected = (f"x: factors {x.columns[1]!r} and {x.columns[3]!r} are proportional on the "
                "rows of the fit, once demeaned: their loadings are not unique (moving them "
                "along that combination leaves the objective unchanged) and fits can split "
                "them differently; drop one of them")
    for fit in (lambda: LassoModel().fit(x, y),
                lambda: RollingLassoModel(LassoModel(), rebalance=[x.index[40],
                                                                   x.index[59]]).fit(x, y)):
        recwarn.clear()
        fit()
        caught = _dependence_warnings(recwarn)
        assert [str(w.message) for w in caught] == [expected]
        assert caught[0].filename == __file__  # points at the caller
    rng = np.random.default_rng(3)
    x[x.columns[3]] = x[x.columns[1]] + 1e-3 * x[x.columns[1]].std() * rng.standard_normal(60)
    x[x.columns[0]] = 0.0
    x[x.columns[2]] = 0.0  # two constant columns
    recwarn.clear()
    LassoModel().fit(x, y)  # 1 - R^2 of 1e-6: correlated, not dependent
    assert not _dependence_warnings(recwarn)


def test_values_too_small_to_square_are_not_called_constant(xy):
    """Returns or factors of 1e-200 vary, but their squares underflow to 0: the fit said "no
    response varies (every column is constant)"; now it says why, and 1e-140 still fits."""
    x, y = xy
    top = float(np.abs(y.to_numpy()).max() * 1e-200)
    assert fit_error(LassoModel(), x, y * 1e-200) == (
        f"y: every value is at most {top:.3g} in magnitude: their squares lose their digits to "
        "underflow, so nothing varies for the fit; scale them up (returns are decimals: 0.05 "
        "for 5 %)")
    assert fit_error(LassoModel(), x * 1e-200, y).startswith("x: every value is at most ")
    small = LassoModel(reg_lambda=1e-4 * 1e-140).fit(x, y * 1e-140)  # B and lambda scale
    np.testing.assert_allclose(small.coef_ * 1e140, LassoModel(reg_lambda=1e-4).fit(x, y).coef_,
                               rtol=1e-6, atol=1e-12)


def test_factors_with_one_value_are_named_and_all_of_them_refused(xy, recwarn):
    """A factor with the same value on every row explains nothing (0 once demeaned): its
    loadings stay at the prior, said in a warning; with every factor so, the fit returned the
    prior in silence and a cross-validation chose the smallest lambda of equal scores."""
    from xl_factorlasso import LassoModelCV

    x, y = xy
    flat = x.copy()
    flat[:] = 0.01
    for model in (LassoModel(), LassoModelCV(base_model=LassoModel())):
        assert fit_error(model, flat, y) == ("x: every factor is constant on the rows of the "
                                             "fit: there is nothing to fit")
    zero = x * 0.0
    assert fit_error(LassoModel(demean=False), zero, y).startswith("x: every factor is 0 on ")
    one = x.copy()
    one[x.columns[1]] = 0.02
    recwarn.clear()
    prior = pd.DataFrame(0.5, index=y.columns, columns=x.columns)
    model = LassoModel(reg_lambda=1e-4, factors_beta_prior=prior).fit(one, y)
    caught = [w for w in recwarn if "every row of the fit" in str(w.message)]
    assert [str(w.message) for w in caught] == [
        f"x: factor {x.columns[1]!r} is constant on every row of the fit: its loadings stay at "
        "the prior (0 without one)"]
    assert caught[0].filename == __file__  # points at the caller
    np.testing.assert_array_equal(model.coef_[x.columns[1]].to_numpy(), 0.5)
    recwarn.clear()
    LassoModel(demean=False).fit(one, y)  # not demeaned: a constant is a factor like any
    assert not [w for w in recwarn if "every row of the fit" in str(w.message)]
    gone = x.copy()
    gone[x.columns[0]] = np.nan
    with pytest.warns(UserWarning, match=f"x: factor {x.columns[0]!r} is missing on every row of "
                                         r"the fit: its loadings stay at the prior \(0 without"):
        LassoModel(reg_lambda=1e-4).fit(gone, y)


@pytest.mark.parametrize("missing", [False, True])
def test_dependent_factor_columns_are_named(recwarn, missing):
    """A factor that is a combination of others (``MKT = MKT-RF + RF``, a level shift, a
    scale: all one once demeaned) is named with the factors of its combination, and only
    those; on a ragged panel (a late-starting response: several mask patterns) too."""
    x, y, _ = make_panel(T=80, M=5, N=4)
    x = x.copy()
    x["combo"] = 2.0 * x[x.columns[0]] - 0.5 * x[x.columns[3]] + 0.01
    if missing:
        y = y.copy()
        y.iloc[:20, 1] = np.nan
    recwarn.clear()
    fit = LassoModel(warmup_period=None).fit(x, y)
    if missing:
        assert len(fit._fit_setup_.stats.xw) > 1
    caught = _dependence_warnings(recwarn)
    assert len(caught) == 1
    names = [x.columns[0], x.columns[3], "combo"]  # in the columns' order
    message = str(caught[0].message)
    assert message.startswith(f"x: factors {names[0]!r}, {names[1]!r} and {names[2]!r} are "
                              "linearly dependent (one is a combination of the others)")
    for other in (x.columns[1], x.columns[2], x.columns[4]):
        assert repr(other) not in message
    # the loadings along the combination are free: the objective is the same after a move
    coef = fit.coef_.to_numpy().copy()
    move = np.zeros(x.shape[1])
    move[[0, 3, x.columns.get_loc("combo")]] = [2.0, -0.5, -1.0]
    moved = coef + 0.1 * move
    loss = fit._fit_setup_.stats.loss_terms
    np.testing.assert_allclose(loss(moved), loss(coef), rtol=1e-9)


def test_wide_panels_are_not_warned_about_dependence(recwarn):
    """More factors than rows are dependent by count, not by a user's mistake: no warning;
    nor for a lone response observed on fewer rows than there are factors (its one mask
    pattern's Gram is singular, the factors on every row are not)."""
    x, y, _ = make_panel(T=20, M=30, N=2)
    recwarn.clear()
    LassoModel(warmup_period=None).fit(x, y)
    assert not _dependence_warnings(recwarn)
    x, y, _ = make_panel(T=33, M=10, N=1)
    y = y.copy()
    y.iloc[:26, 0] = np.nan
    recwarn.clear()
    fit = LassoModel(warmup_period=None).fit(x, y)
    assert len(fit._fit_setup_.stats.xw) == 1
    assert not _dependence_warnings(recwarn)


def test_all_missing_responses(xy):
    x, y = xy
    assert "no valid observation" in fit_error(LassoModel(), x, y * np.nan)


@pytest.mark.parametrize(
    "params, needle",
    [
        ({"l1_weight": 1.5}, "l1_weight must be in [0, 1]"),
        ({"l1_weight": -0.1}, "l1_weight"),
        ({"cutoff_fraction": 0.0}, "cutoff_fraction must be in (0, 1]"),
        ({"cutoff_fraction": 1.2}, "cutoff_fraction"),
        ({"reg_lambda": -1.0}, "reg_lambda must be >= 0"),
        ({"reg_lambda": float("nan")}, "reg_lambda"),
        ({"span": 0.5}, "span must be a finite number >= 1"),
        ({"n_clusters": 0}, "n_clusters"),
        ({"group_penalty": "l2"}, "group_penalty"),
        ({"model_type": "ridge"}, "model_type: 'ridge' is not one of"),
        ({"model_type": LassoModelType.GROUP_LASSO}, "needs group_data"),
        ({"linkage_method": "nope", "model_type": "hcgl"}, "linkage_method"),
        ({"warmup_period": -3}, "warmup_period"),
    ],
)
def test_bad_parameters(xy, params, needle):
    x, y = xy
    assert needle in fit_error(LassoModel(**params), x, y)


def test_sign_value_outside_set(xy):
    x, y = xy
    signs = pd.DataFrame(np.nan, index=y.columns, columns=x.columns)
    signs.loc["a3", "f2"] = 2
    msg = fit_error(LassoModel(factors_beta_loading_signs=signs), x, y)
    assert "factors_beta_loading_signs['a3', 'f2']" in msg and "not one of 0, 1, -1" in msg


def test_sign_text_is_rejected(xy):
    x, y = xy
    signs = pd.DataFrame(np.nan, index=y.columns, columns=x.columns).astype(object)
    signs.loc["a1", "f0"] = "x"
    msg = fit_error(LassoModel(factors_beta_loading_signs=signs), x, y)
    assert "['a1', 'f0']" in msg and "'x' is not a number" in msg


@pytest.mark.parametrize("which", ["factors_beta_loading_signs", "factors_beta_prior"])
def test_matrix_labels_must_match(xy, which):
    x, y = xy
    base = pd.DataFrame(0.0, index=y.columns, columns=x.columns)
    msg = fit_error(LassoModel(**{which: base.drop(index="a2")}), x, y)
    assert f"{which}: response 'a2' of y has no row" in msg
    msg = fit_error(LassoModel(**{which: base.rename(index={"a2": "MSFT"})}), x, y)
    assert "'a2'" in msg or "'MSFT'" in msg
    extra = base.copy()
    extra["f9"] = 0.0
    assert "'f9' is not a factor" in fit_error(LassoModel(**{which: extra}), x, y)
    assert "expected shape (4, 3)" in fit_error(LassoModel(**{which: np.zeros((3, 3))}), x, y)


@pytest.mark.parametrize("sign, value", [(0, 0.2), (1, -0.1), (-1, 0.3)])
def test_prior_contradicting_sign(xy, sign, value):
    x, y = xy
    signs = pd.DataFrame(np.nan, index=y.columns, columns=x.columns)
    prior = pd.DataFrame(0.0, index=y.columns, columns=x.columns)
    signs.loc["a0", "f1"] = sign
    prior.loc["a0", "f1"] = value
    msg = fit_error(
        LassoModel(factors_beta_loading_signs=signs, factors_beta_prior=prior), x, y
    )
    assert "factors_beta_prior['a0', 'f1']" in msg and "contradicts its sign constraint" in msg


def test_group_data_must_cover_responses(xy):
    x, y = xy
    groups = pd.Series(["g1", "g1", "g2"], index=["a0", "a1", "a2"])
    msg = fit_error(LassoModel(model_type="GROUP_LASSO", group_data=groups), x, y)
    assert "group_data: response 'a3' has no group" in msg


def test_failed_solve_raises_and_keeps_previous_fit(xy, iterations_only):
    x, y = xy
    model = LassoModel(reg_lambda=0.1).fit(x, y)
    before = model.coef_.copy()
    # Clarabel stopped after one iteration, and a one-iteration polish: nothing certifiable.
    # (At reg_lambda=0.01 the minimiser has no zero, so Newton on the interior point's full
    # support lands on it before any iteration and certifies it; at 0.3 it has 8 zeros, which
    # the LASSO support corrections find from that support: they are switched off here.)
    model.set_params(reg_lambda=0.3, solver="CLARABEL", solver_params={"max_iter": 1},
                     engine_params={"max_iter": 1})
    with pytest.raises(SolveError) as info:
        model.fit(x, y)
    assert "CLARABEL" in str(info.value) and info.value.attempts[0][0] == "CLARABEL"
    pd.testing.assert_frame_equal(model.coef_, before)  # the previous fit is intact


def test_fallback_solver_is_used_after_failure(xy):
    x, y = xy
    model = LassoModel(reg_lambda=0.01, solver="NOT_A_SOLVER", solver_fallbacks=["CLARABEL"])
    model.fit(x, y)
    assert model.solver_ == "CLARABEL" and model.solver_status_ == "optimal"
    ref = LassoModel(reg_lambda=0.01, engine="cvxpy").fit(x, y)
    np.testing.assert_allclose(model.coef_, ref.coef_, atol=1e-9)


def test_equal_columns_are_named_on_wide_panels_too(recwarn):
    """With more factors than rows, dependence is a matter of counting and is not reported,
    but two equal columns still are: LASSO's answer is unique only for columns in general
    position, and equal ones leave the split of their loading free."""
    x, y, _ = make_panel(T=20, M=30, N=2)
    x = x.copy()
    x[x.columns[7]] = x[x.columns[2]]
    recwarn.clear()
    LassoModel(warmup_period=None).fit(x, y)
    caught = _dependence_warnings(recwarn)
    assert len(caught) == 1
    assert str(caught[0].message).startswith(
        f"x: factors {x.columns[2]!r} and {x.columns[7]!r} are proportional")


def test_dependent_columns_whatever_the_factors_scales():
    """The test runs on the Jacobi-scaled Gram: a dependence between a factor in units of 1e8
    and one in units of 1e-8 is found, and a factor of 1e-8 beside factors of 1e8 is not
    mistaken for one; a near-dependence (1 - R^2 = 1e-8) is not one."""
    from xl_factorlasso.core.linear_model._collinearity import dependent_columns

    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 6))
    x -= x.mean(axis=0)
    x[:, 0] *= 1e8
    x[:, 1] *= 1e-8
    assert dependent_columns(x.T @ x, 200) == []
    tied = x.copy()
    tied[:, 4] = 1e-8 * tied[:, 0] - 2e8 * tied[:, 1]  # two terms of order one
    assert dependent_columns(tied.T @ tied, 200) == [0, 1, 4]
    near = x.copy()
    near[:, 5] = x[:, 2] + 1e-4 * rng.standard_normal(200)
    near -= near.mean(axis=0)
    assert dependent_columns(near.T @ near, 200) == []
    assert dependent_columns(x[:6].T @ x[:6], 6) is None  # as many factors as rows
