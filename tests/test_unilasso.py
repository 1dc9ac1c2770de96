"""``model_type=UNILASSO`` against factorlasso 1.0.6 live, closed forms, brute-force refits, the
CVXPY reference and the workbook.

factorlasso solves one CVXPY problem per response; here stage two runs on the fast engine from
per-response Grams. The coefficients must agree to solver tolerance and our objective must be
no worse than factorlasso's answer evaluated in the same objective.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from xl_factorlasso import LassoModel
from xl_factorlasso.core import LassoModelType
from xl_factorlasso.core.linear_model._preparation import prepare_panel
from xl_factorlasso.core.linear_model._unilasso import (
    leave_one_out_slopes,
    unilasso_design,
    univariate_slopes,
)
from xl_factorlasso.core.model_selection import LassoModelCV

fl = pytest.importorskip("factorlasso")


def panel(seed=0, T=120, M=5, N=8, gaps=True, scales=None):
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2019-01-06", periods=T, freq="W")
    scale = np.ones(M) if scales is None else np.asarray(scales, dtype=float)
    x = rng.standard_normal((T, M)) * scale
    b = rng.standard_normal((N, M)) * (rng.random((N, M)) < 0.5) / scale  # loadings in units
    y = x @ b.T + rng.standard_normal((T, N))
    x = pd.DataFrame(x, index=idx, columns=[f"f{j}" for j in range(M)])
    y = pd.DataFrame(y, index=idx, columns=[f"y{i}" for i in range(N)])
    if gaps:
        y.iloc[: T // 4, 1] = np.nan  # late start
        y.iloc[T // 2: T // 2 + 7, 3] = np.nan  # a gap
        x.iloc[11, :] = np.nan  # an entirely missing factor row
        x.iloc[20, 2] = np.nan  # a partly missing one
    return x, y


def fit_factorlasso(x, y, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fl.LassoModel(model_type=fl.LassoModelType.UNILASSO, **kw).fit(x, y)


DATASETS = [
    dict(seed=0, T=120, M=5, N=8, reg_lambda=0.05, span=None),
    dict(seed=1, T=200, M=6, N=6, reg_lambda=0.01, span=52),
    dict(seed=2, T=90, M=4, N=10, reg_lambda=0.2, span=None, gaps=False),
    dict(seed=3, T=150, M=7, N=5, reg_lambda=1e-3, span=26, scales=[1, 10, 0.1, 1, 3, 1, 0.5]),
]


@pytest.mark.parametrize("loo", [True, False])
@pytest.mark.parametrize("non_negative", [True, False])
@pytest.mark.parametrize("case", range(len(DATASETS)))
def test_coefficients_match_factorlasso(case, loo, non_negative):
    data = dict(DATASETS[case])
    lam, span = data.pop("reg_lambda"), data.pop("span")
    x, y = panel(**data)
    kw = dict(reg_lambda=lam, span=span, unilasso_loo=loo, unilasso_non_negative=non_negative)
    ref = fit_factorlasso(x, y, **kw)
    ours = LassoModel(model_type="UNILASSO", **kw).fit(x, y)
    assert ours.solver_ == "fast" and ours.duality_gap_ <= 1e-8
    theirs = ref.coef_.loc[y.columns, x.columns].to_numpy()
    # loadings compared in units of the response (times the factor's volatility): an
    # interior-point solver leaves ~1e-5 on a loading of a factor of volatility 0.1
    vol = x.std().to_numpy()
    scale = np.abs(theirs * vol).max()
    np.testing.assert_allclose(ours.coef_.to_numpy() * vol, theirs * vol, atol=2e-6 * scale)
    # our objective is no worse than factorlasso's answer in the same objective
    assert ours.objective_value_ <= ours.objective(theirs) + 1e-9 * abs(ours.objective_value_)
    if non_negative:  # theta >= 0: every loading has its univariate slope's sign (or is 0)
        assert np.all(ours.coef_.to_numpy() * ours._fit_setup_.unilasso.slopes >= 0)
    # the diagnostics are factorlasso's (EWMA norm of the original problem)
    np.testing.assert_allclose(ours.r2_.to_numpy(), ref.estimation_result_.r2, atol=1e-6)


def test_degenerate_responses_and_factors_match_factorlasso():
    x, y = panel(seed=5, T=80, M=4, N=5, gaps=False)
    x["f2"] = 0.7  # constant: zero after demeaning
    y.iloc[:77, 1] = np.nan  # 3 observations: too few for stage one
    y["y3"] = np.nan  # never observed
    for warmup in (None, 0, 12):
        kw = dict(reg_lambda=0.01, warmup_period=warmup)
        ref = fit_factorlasso(x, y, **kw)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ours = LassoModel(model_type="UNILASSO", **kw).fit(x, y)
        coef = ours.coef_.to_numpy()
        np.testing.assert_allclose(coef, ref.coef_.to_numpy(), atol=1e-7)
        assert np.all(coef[[1, 3]] == 0.0) and np.all(coef[:, 2] == 0.0)  # exact zeros
        assert np.count_nonzero(coef) >= 3


def test_fast_engine_matches_the_cvxpy_reference():
    x, y = panel(seed=7, T=160, M=6, N=7, scales=[1, 100, 0.01, 1, 1, 1])
    for loo in (True, False):
        for lam in (0.0, 1e-3, 0.1):
            kw = dict(model_type="UNILASSO", reg_lambda=lam, unilasso_loo=loo,
                      unilasso_non_negative=False)
            fast = LassoModel(**kw).fit(x, y)
            ref = LassoModel(engine="cvxpy", **kw).fit(x, y)
            assert fast.solver_ == "fast" and ref.solver_.startswith("CLARABEL")
            f_fast, f_ref = fast.objective_value_, ref.objective_value_
            assert f_fast <= f_ref * (1 + 1e-8) and f_ref <= f_fast * (1 + 1e-8)
            # each loading relative to its factor's scale
            scale = np.abs(fast.coef_.to_numpy()) + 1.0 / x.std().to_numpy()
            assert np.all(np.abs(fast.coef_.to_numpy() - ref.coef_.to_numpy()) <= 1e-3 * scale)


def test_leave_one_out_slopes_equal_brute_force_refits():
    rng = np.random.default_rng(11)
    T, M, N = 9, 3, 2
    x = rng.standard_normal((T, M))
    y = rng.standard_normal((T, N))
    mask = np.ones((T, N), dtype=bool)
    mask[[2, 5], 1] = False
    y[~mask] = 0.0
    x[4, 2] = 0.0  # a zero row value: its leave-one-out slope is the full one
    s_xx, s_xy, b = univariate_slopes(x, y, mask)
    loo = leave_one_out_slopes(x, y, s_xx, s_xy)
    for k in range(N):
        rows = np.flatnonzero(mask[:, k])
        np.testing.assert_allclose(b[k], [np.linalg.lstsq(x[rows, [j]][:, None], y[rows, k],
                                                          rcond=None)[0][0] for j in range(M)],
                                   rtol=1e-12)
        for t in rows:
            others = rows[rows != t]
            for j in range(M):
                refit = (x[others, j] @ y[others, k]) / (x[others, j] @ x[others, j])
                assert loo[t, k, j] == pytest.approx(refit, rel=1e-10)


@pytest.mark.parametrize("shared_min", [1, 2, 10**9])
def test_stage_two_grams_equal_the_explicit_design(monkeypatch, shared_min):
    # 1: every response through the shared-pattern products (even alone); 10**9: every
    # response through its explicit design; 2: the default mix (y0 and y2 share a pattern)
    from xl_factorlasso.core.linear_model import _unilasso

    monkeypatch.setattr(_unilasso, "_SHARED_PATTERN_MIN", shared_min)
    x, y = panel(seed=4, T=40, M=3, N=4)
    p = prepare_panel(x, y)
    for loo in (True, False):
        design = unilasso_design(p, loo)
        for k in range(y.shape[1]):
            rows = np.flatnonzero(p.mask[:, k])
            xk, yk = p.x[rows], p.y[rows, k]
            if loo:  # one refit per row, by hand
                eta = np.array([[xk[t, j] * (np.delete(xk[:, j], t) @ np.delete(yk, t))
                                 / (np.delete(xk[:, j], t) @ np.delete(xk[:, j], t))
                                 for j in range(3)] for t in range(len(rows))])
            else:
                eta = xk * ((xk * yk[:, None]).sum(0) / (xk * xk).sum(0))
            c = p.n_rows / len(rows)
            np.testing.assert_allclose(design.stats.gram[k], c * eta.T @ eta, rtol=1e-10)
            np.testing.assert_allclose(design.stats.xty[k], c * eta.T @ yk, rtol=1e-10)
            assert design.stats.yty[k] == pytest.approx(c * yk @ yk, rel=1e-12)
            assert design.n_valid[k] == len(rows)


@pytest.mark.parametrize("non_negative", [True, False])
@pytest.mark.parametrize("loo", [True, False])
def test_one_factor_closed_form(loo, non_negative):
    # one factor: theta is a soft threshold (at 0 from below when non-negative)
    rng = np.random.default_rng(2)
    T = 60
    xv = rng.standard_normal(T)
    x = pd.DataFrame({"f": xv})
    y = pd.DataFrame({"up": 0.8 * xv + rng.standard_normal(T),
                      "down": -0.1 * xv + rng.standard_normal(T)})
    lam = 0.05
    model = LassoModel(model_type="UNILASSO", reg_lambda=lam, unilasso_loo=loo,
                       unilasso_non_negative=non_negative).fit(x, y)
    xd = xv - xv.mean()
    for name in y.columns:
        yd = y[name].to_numpy() - y[name].mean()
        b = xd @ yd / (xd @ xd)
        if loo:
            eta = xd * (xd @ yd - xd * yd) / (xd @ xd - xd * xd)
        else:
            eta = xd * b
        z = 2 * eta @ yd / T
        curvature = 2 * eta @ eta / T
        theta = np.sign(z) * max(abs(z) - lam, 0.0) / curvature
        if non_negative:
            theta = max(theta, 0.0)
        assert model.coef_.loc[name, "f"] == pytest.approx(theta * b, rel=1e-9, abs=1e-14)


def test_in_sample_without_penalty_is_least_squares():
    # loo=False, lambda=0, theta free: eta = X diag(b) spans X, so B is the OLS fit
    x, y = panel(seed=9, T=100, M=4, N=3, gaps=False)
    model = LassoModel(model_type="UNILASSO", reg_lambda=0.0, unilasso_loo=False,
                       unilasso_non_negative=False).fit(x, y)
    xd, yd = (x - x.mean()).to_numpy(), (y - y.mean()).to_numpy()
    ols = np.linalg.lstsq(xd, yd, rcond=None)[0].T
    np.testing.assert_allclose(model.coef_.to_numpy(), ols, rtol=1e-7, atol=1e-10)


def test_at_lambda_max_every_loading_is_zero_and_just_below_not():
    x, y = panel(seed=6)
    model = LassoModel(model_type="UNILASSO").fit(x, y)
    lam_max = model.reg_lambda_max_
    assert lam_max == pytest.approx(LassoModel(model_type="UNILASSO").lambda_max(x, y))
    at = LassoModel(model_type="UNILASSO", reg_lambda=lam_max).fit(x, y)
    assert np.all(at.coef_.to_numpy() == 0.0) and at.solver_ == "closed form"
    below = LassoModel(model_type="UNILASSO", reg_lambda=0.99 * lam_max).fit(x, y)
    assert np.count_nonzero(below.coef_.to_numpy()) >= 1


def test_model_type_parsing_and_properties():
    for value in ("UNILASSO", "unilasso", " UniLasso ", 2, 2.0, LassoModelType.UNILASSO,
                  "LassoModelType.UNILASSO"):
        assert LassoModelType.parse(value) is LassoModelType.UNILASSO
    kind = LassoModelType.UNILASSO
    assert kind.value == fl.LassoModelType.UNILASSO.value == 2
    assert kind.name == fl.LassoModelType.UNILASSO.name
    assert (kind.geometry, kind.is_group, kind.discovers_clusters) == ("cell", False, False)
    with pytest.raises(ValueError) as err:
        LassoModelType.parse("ridge")
    assert str(err.value) == ("model_type: 'ridge' is not one of LASSO, UNILASSO, GROUP_LASSO, "
                              "HCGL, FCGL, COOPERATIVE_GROUP_LASSO, "
                              "COOPERATIVE_CLUSTER_GROUP_LASSO")


def test_fitted_attributes():
    x, y = panel(seed=8)
    model = LassoModel(model_type="UNILASSO", reg_lambda=0.02).fit(x, y)
    assert model.clusters_ is None and model.linkage_ is None and model.cutoff_ is None
    assert model.derived_signs_ is None and model.sign_penalty_weights_ is None
    assert model.ols_beta_prior_ is None and model.detected_signs_ is None
    assert model.objective(model.coef_) == pytest.approx(model.objective_value_, rel=1e-12)
    # the objective is stage two's: theta = B / b
    design = model._fit_setup_.unilasso
    theta = design.theta(model.coef_.to_numpy())
    assert model.objective_value_ == pytest.approx(
        design.stats.loss(theta) + 0.02 * np.abs(theta).sum(), rel=1e-12)
    pred = model.predict(x.fillna(0.0))
    assert pred.shape == y.shape and np.isfinite(pred.to_numpy()).all()
    factorlasso_defaults = fl.LassoModel()
    assert LassoModel().unilasso_loo is factorlasso_defaults.unilasso_loo is True
    assert LassoModel().unilasso_non_negative is factorlasso_defaults.unilasso_non_negative


@pytest.mark.parametrize("kw, message", [
    (dict(factors_beta_loading_signs="signs"),
     "factors_beta_loading_signs is not supported: UNILASSO takes no sign constraint "
     "(unilasso_non_negative keeps each loading's univariate sign)"),
    (dict(nonneg=True), "nonneg=True is not supported: UNILASSO takes no sign constraint "
                        "(unilasso_non_negative keeps each loading's univariate sign)"),
    (dict(auto_sign_constraints=True),
     "auto_sign_constraints=True is not supported: UNILASSO takes no sign constraint "
     "(unilasso_non_negative keeps each loading's univariate sign)"),
    (dict(factors_beta_prior="prior"),
     "factors_beta_prior is not supported: UNILASSO takes no beta prior"),
    (dict(apply_ols_prior=True), "apply_ols_prior=True is not supported: UNILASSO takes no "
                                 "beta prior"),
    (dict(loss_normalization="weight_sum"),
     "loss_normalization='weight_sum' is not supported: UNILASSO divides each response's loss "
     "by its own rows"),
    (dict(unilasso_loo="yes"), "unilasso_loo must be True or False, got 'yes'"),
    (dict(unilasso_non_negative=1), "unilasso_non_negative must be True or False, got 1"),
])
def test_refused_inputs_name_the_parameter_and_change_nothing(kw, message):
    x, y = panel(seed=1, T=60, M=3, N=3, gaps=False)
    frame = pd.DataFrame(1.0, index=y.columns, columns=x.columns)
    kw = {k: frame if isinstance(v, str) and v in ("signs", "prior") else v
          for k, v in kw.items()}
    model = LassoModel(model_type="UNILASSO", **kw)
    with pytest.raises(ValueError) as err:
        model.fit(x, y)
    assert str(err.value) == message
    assert not hasattr(model, "coef_")
    # factorlasso refuses the same inputs (same exception family); auto signs it ignores
    if "unilasso" not in next(iter(kw)) and "auto_sign_constraints" not in kw:
        with pytest.raises(ValueError):
            fit_factorlasso(x, y, **kw)


def test_flags_are_checked_for_every_model_type():
    x, y = panel(seed=1, T=60, M=3, N=3, gaps=False)
    with pytest.raises(ValueError, match="unilasso_loo must be True or False"):
        LassoModel(unilasso_loo=None).fit(x, y)
    # and ignored (not an error) by the other models when valid
    a = LassoModel(reg_lambda=0.01, unilasso_loo=False).fit(x, y)
    b = LassoModel(reg_lambda=0.01).fit(x, y)
    np.testing.assert_array_equal(a.coef_.to_numpy(), b.coef_.to_numpy())


def test_cross_validation_refits_the_direct_fit():
    x, y = panel(seed=12, T=180, M=5, N=6)
    cv = LassoModelCV(base_model=LassoModel(model_type="UNILASSO"), n_splits=3,
                      lambdas=[1e-3, 1e-2, 0.1, 0.5]).fit(x, y)
    assert not cv.fold_errors_ and np.isfinite(cv.mean_scores_.to_numpy()).all()
    direct = LassoModel(model_type="UNILASSO", reg_lambda=cv.best_lambda_).fit(x, y)
    np.testing.assert_array_equal(cv.best_model_.coef_.to_numpy(), direct.coef_.to_numpy())


def test_skfolio_loading_matrix_forwards_the_flags():
    pytest.importorskip("skfolio")
    from xl_factorlasso.skfolio import LassoLoadingMatrix

    x, y = panel(seed=13, T=100, M=4, N=5, gaps=False)
    kw = dict(model_type="UNILASSO", reg_lambda=0.01, unilasso_loo=False,
              unilasso_non_negative=False)
    est = LassoLoadingMatrix(**kw).fit(y, x)
    direct = LassoModel(**kw).fit(x, y)
    np.testing.assert_array_equal(est.loading_matrix_, direct.coef_.to_numpy())


# --------------------------------------------------------------------------- the workbook
def _demo_book(tmp_path, settings: dict, clear=("Signs", "Prior")) -> Path:
    import openpyxl

    from xl_factorlasso.cli import build_demo_workbook

    book = Path(build_demo_workbook(tmp_path / "demo.xlsx"))
    wb = openpyxl.load_workbook(book)
    for sheet in clear:  # keep the labels, blank every value
        for row in wb[sheet].iter_rows(min_row=2, min_col=2):
            for cell in row:
                cell.value = None
    ws = wb["Settings"]
    rows = {ws[f"A{r}"].value: r for r in range(2, ws.max_row + 1) if ws[f"A{r}"].value}
    end = max(rows.values()) + 1
    for key, value in settings.items():
        r = rows.get(key)
        if r is None:
            r, end = end, end + 1
        ws[f"A{r}"], ws[f"B{r}"] = key, value
    wb.save(book)
    return book


def test_workbook_refit_equals_the_core_fit(tmp_path):
    import openpyxl

    from xl_factorlasso.core.datasets import load_demo_panel
    from xl_factorlasso.workbook import XlsxFileIO, refit

    book = _demo_book(tmp_path, {"model_type": "UNILASSO", "reg_lambda": 1e-4,
                                 "unilasso_loo": "FALSE"})
    refit(XlsxFileIO(book))
    d = load_demo_panel()
    ref = LassoModel(model_type="UNILASSO", span=52, n_clusters=4, l1_weight=0.1,
                     reg_lambda=1e-4, unilasso_loo=False).fit(d.x, d.y)
    wb = openpyxl.load_workbook(book)
    coef = np.array([[c.value or 0.0 for c in r[1:]]
                     for r in wb["Results"].iter_rows(min_row=2, max_row=25, max_col=7)])
    np.testing.assert_allclose(coef, ref.coef_.to_numpy(), atol=1e-12)
    assert np.count_nonzero(coef) > 0
    assert np.abs(coef - LassoModel(model_type="UNILASSO", span=52, reg_lambda=1e-4).fit(
        d.x, d.y).coef_.to_numpy()).max() > 1e-6  # unilasso_loo was read


@pytest.mark.parametrize("settings, clear, message", [
    ({"model_type": "UNILASSO"}, ("Prior",),
     "FL_SIGNS!{cell}: model_type UNILASSO takes no sign constraints, but the cell for "
     "({asset}, {factor}) is filled; clear the cells of FL_SIGNS or choose another model_type"),
    ({"model_type": "UNILASSO"}, ("Signs",),
     "FL_PRIOR!{cell}: model_type UNILASSO takes no prior, but the cell for ({asset}, {factor}) "
     "is filled; clear the cells of FL_PRIOR or choose another model_type"),
    ({"model_type": "UNILASSO", "nonneg": "TRUE"}, ("Signs", "Prior"),
     "FL_SETTINGS!B{row}: nonneg TRUE is not supported with model_type UNILASSO, which takes "
     "no sign constraint (unilasso_non_negative keeps each loading's univariate sign)"),
    ({"model_type": "UNILASSO", "apply_ols_prior": True}, ("Signs", "Prior"),
     "FL_SETTINGS!B{row}: apply_ols_prior TRUE is not supported with model_type UNILASSO, "
     "which takes no prior"),
    ({"model_type": "UNILASSO", "loss_normalization": "weight_sum"}, ("Signs", "Prior"),
     "FL_SETTINGS!B{row}: loss_normalization weight_sum is not supported with model_type "
     "UNILASSO, which divides each asset's loss by its own dates"),
    ({"model_type": "UNILASSO", "unilasso_non_negative": "maybe"}, ("Signs", "Prior"),
     "FL_SETTINGS!B{row}: unilasso_non_negative: 'maybe' is not TRUE or FALSE"),
])
def test_workbook_refuses_naming_the_cell_and_writes_nothing(tmp_path, settings, clear,
                                                            message):
    import openpyxl

    from xl_factorlasso.workbook import WorkbookInputError, XlsxFileIO, refit

    book = _demo_book(tmp_path, settings, clear)
    wb = openpyxl.load_workbook(book)
    row = max(r for r in range(2, wb["Settings"].max_row + 1) if wb["Settings"][f"A{r}"].value)
    sheet = "Signs" if "FL_SIGNS" in message else "Prior"
    first = next(((c.coordinate, wb[sheet].cell(c.row, 1).value, wb[sheet].cell(1, c.column).value)
                  for r in wb[sheet].iter_rows(min_row=2, min_col=2) for c in r
                  if c.value is not None), (None, None, None))
    before = book.read_bytes()
    with pytest.raises(WorkbookInputError) as err:
        refit(XlsxFileIO(book))
    assert str(err.value) == message.format(row=row, cell=first[0], asset=first[1],
                                            factor=first[2])
    assert book.read_bytes() == before


# --------------------------------------------------------------------------- worksheet functions
def test_worksheet_function_fits_unilasso_and_names_a_filled_signs_cell():
    from tests.test_udfs import cells, matrix_cells
    from xl_factorlasso import udfs
    from xl_factorlasso.core.datasets import load_demo_panel

    d = load_demo_panel()
    R, F = cells(d.y), cells(d.x)
    settings = [["key", "value"], ["unilasso_loo", "FALSE"], ["span", 52]]
    out = udfs.FLASSO_FIT(R, F, 1e-4, "unilasso", None, None, settings)
    ref = LassoModel(model_type="UNILASSO", reg_lambda=1e-4, span=52, unilasso_loo=False).fit(
        d.x, d.y)
    got = np.array([[np.nan if v is None else v for v in r[1:]] for r in out[1:]], dtype=float)
    np.testing.assert_allclose(got, ref.coef_.to_numpy(), rtol=1e-10, atol=1e-14)
    signs = d.signs.iloc[:3]
    first = next((a, f) for a in signs.index for f in signs.columns if pd.notna(signs.at[a, f]))
    row = list(signs.index).index(first[0]) + 2
    col = list(signs.columns).index(first[1]) + 2
    out = udfs.FLASSO_FIT(R, F, 1e-4, "UNILASSO", matrix_cells(signs))
    assert out == (f"#FLASSO! signs: row {row}, column {col}: model_type UNILASSO takes no sign "
                   f"constraints, but the cell for ({first[0]}, {first[1]}) is filled; clear "
                   "the cells of signs or choose another model_type")
