"""The last LassoModel options reach the workbook (issue 15): the FL_SETTINGS keys
``auto_sign_adaptive_gamma``, ``auto_sign_adaptive_floor``, ``expert_prior_budget_rule``,
``prior_selection_type`` and the optional inputs ``FL_EXCLUDED`` (``excluded_factors``) and
``FL_EXPOSURE_BUDGET`` (``expert_prior_exposure_budget``).

Round trips go through real .xlsx files (the demo workbook, edited with openpyxl) and must equal
the core fit with the same parameters; every refusal names its cell and leaves the file
byte-identical.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest

from xl_factorlasso import LassoModel, load_demo_panel, udfs
from xl_factorlasso.workbook import WorkbookInputError, XlsxFileIO, refit, refit_cv
from xl_factorlasso.workbook._inspect import inspect_workbook

ROOT = Path(__file__).resolve().parents[1]
# beside the checkout, or beside its worktree folder
VALIDATOR = next((up / "shared" / "tools" / "ooxml-validate" / "ooxml-validate"
                  for up in (ROOT.parent, ROOT.parent.parent)
                  if (up / "shared" / "tools" / "ooxml-validate").is_dir()), Path("/nonexistent"))

D = load_demo_panel()
ASSETS, FACTORS = list(D.y.columns), list(D.x.columns)


@pytest.fixture(scope="module")
def demo_file(tmp_path_factory):
    from xl_factorlasso.cli import build_demo_workbook

    path = tmp_path_factory.mktemp("routes") / "demo.xlsx"
    build_demo_workbook(str(path))
    return path


def _cell(sheet_col: int, i: int) -> str:
    return f"{openpyxl.utils.get_column_letter(sheet_col)}{i}"


def _book(demo_file, tmp_path, settings: dict, *, excluded=(), budget=None, prior_factor=(),
          clear_prior=True, name="book.xlsx") -> Path:
    """The demo workbook with ``settings`` as FL_SETTINGS, ``excluded`` pairs in FL_EXCLUDED
    (Settings!L:M), ``budget`` {(asset, factor): value} in FL_EXPOSURE_BUDGET, rows of
    FL_PRIOR_FACTOR (Settings!H:J) and, with ``clear_prior``, FL_PRIOR blank (so that the OLS
    prior is in force)."""
    path = tmp_path / name
    shutil.copy(demo_file, path)
    wb = openpyxl.load_workbook(path)
    ws = wb["Settings"]
    for r in range(2, 31):
        ws.cell(r, 1).value = ws.cell(r, 2).value = None
    for r, (k, v) in enumerate(settings.items(), start=2):
        ws.cell(r, 1).value, ws.cell(r, 2).value = k, v
    for r, (a, f) in enumerate(excluded, start=2):
        ws.cell(r, 12).value, ws.cell(r, 13).value = a, f
    for r, row in enumerate(prior_factor, start=2):
        for j, v in enumerate(row):
            ws.cell(r, 8 + j).value = v
    if clear_prior:
        for r in range(2, len(ASSETS) + 2):
            for c in range(2, len(FACTORS) + 2):
                wb["Prior"].cell(r, c).value = None
    eb = wb["ExposureBudget"]
    for (a, f), v in (budget or {}).items():
        eb.cell(ASSETS.index(a) + 2, FACTORS.index(f) + 2).value = v
    wb.save(path)
    return path


def _coef(path) -> np.ndarray:
    io = XlsxFileIO(path)
    rows = io.read(io.names()["FL_COEF"])
    assert [str(r[0]) for r in rows[1:]] == ASSETS and [str(c) for c in rows[0][1:]] == FACTORS
    return np.array([r[1:] for r in rows[1:]], dtype=float)


def _digest(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# --------------------------------------------------------------------------- round trips
def test_the_template_layout_offers_both_inputs_empty(demo_file):
    io = XlsxFileIO(demo_file)
    names = io.names()
    ex, eb = names["FL_EXCLUDED"], names["FL_EXPOSURE_BUDGET"]
    assert (ex.sheet, ex.min_row, ex.min_col, ex.max_col) == ("Settings", 1, 12, 13)
    assert (eb.sheet, eb.min_row, eb.min_col) == ("ExposureBudget", 1, 1)
    rows = io.read(eb)
    assert [str(a) for a in rows[0][1:]] == FACTORS and [r[0] for r in rows[1:]] == ASSETS
    assert all(v is None for r in rows[1:] for v in r[1:])
    assert io.read(ex)[0] == ["asset", "factor"]
    # no collision with the other inputs of the sheet (FL_SETTINGS A:B, FL_GROUPS E:F,
    # FL_PRIOR_FACTOR H:J)
    for other in ("FL_SETTINGS", "FL_GROUPS", "FL_PRIOR_FACTOR"):
        assert names[other].max_col < ex.min_col
    report = inspect_workbook(io)
    assert report.ok, report.problems


def test_adaptive_exponent_floor_and_prior_selector_round_trip(demo_file, tmp_path):
    settings = {"model_type": "LASSO", "reg_lambda": 5e-5, "span": 52,
                "auto_sign_constraints": "TRUE", "auto_sign_adaptive_weights": "TRUE",
                "auto_sign_adaptive_gamma": 2, "auto_sign_adaptive_floor": "0.05",
                "prior_selection_type": "Highest_R2"}
    path = _book(demo_file, tmp_path, settings)
    refit(XlsxFileIO(path))
    kw = dict(reg_lambda=5e-5, span=52.0, auto_sign_constraints=True,
              auto_sign_adaptive_weights=True, factors_beta_loading_signs=D.signs)
    ref = LassoModel(auto_sign_adaptive_gamma=2.0, auto_sign_adaptive_floor=0.05,
                     prior_selection_type="highest_r2", **kw).fit(D.x, D.y)
    np.testing.assert_allclose(_coef(path), ref.coef_.to_numpy(), rtol=0, atol=1e-12)
    default = LassoModel(**kw).fit(D.x, D.y)  # the keys change the fit: they are not ignored
    assert np.abs(default.coef_.to_numpy() - ref.coef_.to_numpy()).max() > 1e-4


def test_exclusions_and_exposure_budgets_round_trip(demo_file, tmp_path):
    settings = {"model_type": "LASSO", "reg_lambda": 1e-4, "span": 52,
                "apply_ols_prior": "TRUE", "expert_prior_bound_n_std": 1}
    excluded = [("SPX", "Equity"), ("SPX", "Commodities"), ("NKY", "USD")]
    budget = {("NDX", "Rates"): 0.05, ("NDX", "Credit"): 0.0, ("UKX", "USD"): 0.2}
    path = _book(demo_file, tmp_path, settings, excluded=excluded, budget=budget)
    assert inspect_workbook(XlsxFileIO(path)).ok
    refit(XlsxFileIO(path))
    declared = pd.DataFrame(np.nan, index=ASSETS, columns=FACTORS)
    for (a, f), v in budget.items():
        declared.loc[a, f] = v
    kw = dict(reg_lambda=1e-4, span=52.0, apply_ols_prior=True, expert_prior_bound_n_std=1.0,
              factors_beta_loading_signs=D.signs)
    ref = LassoModel(excluded_factors={"SPX": ["Equity", "Commodities"], "NKY": "USD"},
                     expert_prior_exposure_budget=declared, **kw).fit(D.x, D.y)
    coef = _coef(path)
    np.testing.assert_allclose(coef, ref.coef_.to_numpy(), rtol=0, atol=1e-12)
    for a, f in excluded:
        assert coef[ASSETS.index(a), FACTORS.index(f)] == 0.0
    free = LassoModel(**kw).fit(D.x, D.y)  # without the two inputs: another fit
    assert free.coef_.loc["SPX", "Equity"] > 0.5
    # the declared budgets reached the fit: NDX's row as typed (its blank cells 0), UKX's USD
    assert ref.resolved_budgets_.loc["NDX", "Rates"] == 0.05
    assert ref.resolved_budgets_.loc["UKX", "USD"] == 0.2
    assert ref.budget_sources_.loc["NDX", "Rates"] == "declared"
    assert ref.budget_sources_.loc["NDX", "Credit"] == "declared_zero"
    assert ref.budget_sources_.loc["NDX", "Equity"] == "undeclared_zero"
    assert free.budget_sources_ is None or (free.budget_sources_ == "n_std").all().all()
    if not VALIDATOR.exists():
        pytest.skip(f"no validator at {VALIDATOR}")
    run = subprocess.run([str(VALIDATOR), str(path)], capture_output=True, text=True,
                         timeout=900)
    if "== FILE" not in run.stdout:
        pytest.skip(f"the validator could not run: {run.stderr[-300:]}")
    errors = [line for line in run.stdout.splitlines() if line.startswith("ERR")
              and not ("/xl/styles.xml" in line and "x:font[" in line)]
    assert errors == [], run.stdout


def test_cluster_mean_budgets_round_trip_on_a_refit(demo_file, tmp_path):
    settings = {"model_type": "HCGL", "reg_lambda": 1e-4, "span": 52, "n_clusters": 4,
                "l1_weight": 0.1, "apply_ols_prior": "TRUE",
                "expert_prior_budget_rule": "cluster_mean"}
    path = _book(demo_file, tmp_path, settings)
    refit(XlsxFileIO(path))
    ref = LassoModel(model_type="HCGL", reg_lambda=1e-4, span=52.0, n_clusters=4,
                     l1_weight=0.1, apply_ols_prior=True, expert_prior_budget_rule="cluster_mean",
                     factors_beta_loading_signs=D.signs).fit(D.x, D.y)
    np.testing.assert_allclose(_coef(path), ref.coef_.to_numpy(), rtol=0, atol=1e-12)
    assert (ref.budget_rule_status_ == "cluster_mean").any().any()


# --------------------------------------------------------------------------- refusals
NKY_PRIOR_FACTOR = [("NKY", "Equity")]


@pytest.mark.parametrize("job, settings, excluded, budget, prior_factor, clear_prior, message", [
    ("refit", {}, [("MSFT", "Equity")], None, (), True,
     "FL_EXCLUDED!L2: 'MSFT' is not an asset of FL_RETURNS"),
    ("refit", {}, [("SPX", "Momentum")], None, (), True,
     "FL_EXCLUDED!M2: 'Momentum' is not a factor of FL_FACTORS"),
    ("refit", {}, [("SPX", "Rates"), ("NKY", "USD"), ("SPX", "Rates")], None, (), True,
     "FL_EXCLUDED!M4: (SPX, Rates) is listed twice (first at L2)"),
    ("refit", {}, [("SPX", None)], None, (), True,
     "FL_EXCLUDED!M2: no factor given for 'SPX' (each row: asset | factor)"),
    ("refit", {}, [(None, "Rates")], None, (), True,
     "FL_EXCLUDED!L2: the asset is blank (each row: asset | factor)"),
    ("refit", {}, [("SPX", "Equity")], None, (), False,
     "FL_EXCLUDED!M2: (SPX, Equity) is excluded (pinned to 0) but its prior at FL_PRIOR!B2 is "
     "1.02; clear one of them"),
    ("refit", {"apply_ols_prior": "TRUE"}, [("NKY", "Equity")], None, NKY_PRIOR_FACTOR, True,
     "FL_EXCLUDED!M2: (NKY, Equity) is excluded but 'Equity' is also the factor of 'NKY''s "
     "OLS prior at FL_PRIOR_FACTOR!H2; an excluded loading cannot be its prior"),
    ("refit", {"model_type": "COOPERATIVE_GROUP_LASSO"}, [("SPX", "Rates")], None, (), True,
     "FL_EXCLUDED!L2: model_type COOPERATIVE_GROUP_LASSO takes no hard constraint, so no "
     "loading can be excluded: clear FL_EXCLUDED or use LASSO, GROUP_LASSO, HCGL or FCGL"),
    ("refit", {"apply_ols_prior": "TRUE"}, (), {("NDX", "Rates"): -0.1}, (), True,
     "FL_EXPOSURE_BUDGET!C3: the exposure budget -0.1 for (NDX, Rates) is negative: a budget "
     "is a number >= 0, or blank"),
    ("refit", {"apply_ols_prior": "TRUE"}, (), {("NDX", "Rates"): "abc"}, (), True,
     "FL_EXPOSURE_BUDGET!C3: 'abc' is not a number"),
    ("refit", {"apply_ols_prior": "TRUE"}, (), {("NDX", "Rates"): "#N/A"}, (), True,
     "FL_EXPOSURE_BUDGET!C3: #N/A is an Excel error value; leave the cell blank for a missing "
     "value"),
    ("refit", {}, (), {("UKX", "USD"): 0.2}, (), True,
     "FL_EXPOSURE_BUDGET!E5: budgets the floors of the OLS prior, which is off: set "
     "apply_ols_prior = TRUE in the settings, or clear FL_EXPOSURE_BUDGET"),
    ("refit", {"apply_ols_prior": "TRUE", "model_type": "COOPERATIVE_CLUSTER_GROUP_LASSO"}, (),
     {("UKX", "USD"): 0.2}, (), True,
     "FL_EXPOSURE_BUDGET!E5: model_type COOPERATIVE_CLUSTER_GROUP_LASSO takes no hard "
     "constraint, so no exposure budget: clear FL_EXPOSURE_BUDGET or use LASSO, GROUP_LASSO, "
     "HCGL or FCGL"),
    ("refit", {"expert_prior_budget_rule": "cluster_mean"}, (), None, (), True,
     "FL_SETTINGS!B6: expert_prior_budget_rule cluster_mean floors the OLS prior: it needs "
     "apply_ols_prior = TRUE (or n_std)"),
    ("refit", {"model_type": "LASSO", "apply_ols_prior": "TRUE",
               "expert_prior_budget_rule": "cluster_mean"}, (), None, (), True,
     "FL_SETTINGS!B7: expert_prior_budget_rule cluster_mean needs clusters or groups: it is not "
     "supported with model_type LASSO; use GROUP_LASSO, HCGL or FCGL, or n_std"),
    ("refit", {"model_type": "COOPERATIVE_CLUSTER_GROUP_LASSO", "apply_ols_prior": "TRUE",
               "expert_prior_budget_rule": "cluster_mean"}, (), None, (), True,
     "FL_SETTINGS!B7: expert_prior_budget_rule cluster_mean is not supported with model_type "
     "COOPERATIVE_CLUSTER_GROUP_LASSO, which takes no hard constraint (floors); use LASSO, "
     "GROUP_LASSO, HCGL or FCGL"),
    ("refit_cv", {"apply_ols_prior": "TRUE", "expert_prior_budget_rule": "cluster_mean"}, (),
     None, (), True,
     "FL_SETTINGS!B7: expert_prior_budget_rule cluster_mean cannot be cross-validated: its "
     "budgets come from a first fit at one reg_lambda; to cross-validate use n_std (with "
     "expert_prior_bound_n_std or declared exposure budgets), or fit without "
     "cross-validation"),
    ("refit", {"auto_sign_adaptive_floor": 0}, (), None, (), True,
     "FL_SETTINGS!B6: auto_sign_adaptive_floor must be > 0, got 0"),
    ("refit", {"prior_selection_type": "highest_t"}, (), None, (), True,
     "FL_SETTINGS!B6: prior_selection_type: 'highest_t' is not one of highest_r2"),
])
def test_a_bad_cell_is_named_and_the_file_left_unchanged(demo_file, tmp_path, job, settings,
                                                          excluded, budget, prior_factor,
                                                          clear_prior, message):
    base = {"model_type": "HCGL", "reg_lambda": 1e-4, "span": 52, "n_clusters": 4}
    path = _book(demo_file, tmp_path, {**base, **settings}, excluded=excluded, budget=budget,
                 prior_factor=prior_factor, clear_prior=clear_prior)
    before = _digest(path)
    with pytest.raises(WorkbookInputError) as info:
        {"refit": refit, "refit_cv": refit_cv}[job](XlsxFileIO(path))
    assert str(info.value) == message
    assert _digest(path) == before
    # inspect runs the same checks (refit_cv's through FL_CV) and reports the same words
    report = inspect_workbook(XlsxFileIO(path))
    assert any(message in p for p in report.problems), report.problems
    assert _digest(path) == before


def test_an_unknown_label_of_the_budget_matrix_is_named(demo_file, tmp_path):
    path = _book(demo_file, tmp_path, {"apply_ols_prior": "TRUE"})
    wb = openpyxl.load_workbook(path)
    wb["ExposureBudget"]["A3"] = "MSFT"
    wb["ExposureBudget"]["C1"] = "Momentum"
    wb.save(path)
    before = _digest(path)
    with pytest.raises(WorkbookInputError) as info:
        refit(XlsxFileIO(path))
    assert str(info.value) == "FL_EXPOSURE_BUDGET!A3: asset 'MSFT' is not in FL_RETURNS"
    assert _digest(path) == before


def test_a_workbook_without_the_new_names_still_fits(demo_file, tmp_path):
    """Both inputs are optional: a workbook made before them (no such names) keeps working."""
    path = tmp_path / "old.xlsx"
    shutil.copy(demo_file, path)
    wb = openpyxl.load_workbook(path)
    for nm in ("FL_EXCLUDED", "FL_EXPOSURE_BUDGET"):
        del wb.defined_names[nm]
    wb.save(path)
    refit(XlsxFileIO(path))
    ref = LassoModel(model_type="HCGL", span=52.0, n_clusters=4, l1_weight=0.1, reg_lambda=1e-5,
                     factors_beta_loading_signs=D.signs, factors_beta_prior=D.prior).fit(D.x, D.y)
    np.testing.assert_allclose(_coef(path), ref.coef_.to_numpy(), rtol=0, atol=1e-12)


# --------------------------------------------------------------------------- worksheet functions
def test_worksheet_functions_take_the_new_keys():
    from tests.workbook_helpers import frame_rows

    udfs.cache_clear()
    r, f = frame_rows(D.y, "date"), frame_rows(D.x, "date")
    settings = [["auto_sign_constraints", "TRUE"], ["auto_sign_adaptive_weights", "TRUE"],
                ["auto_sign_adaptive_gamma", 0.5], ["auto_sign_adaptive_floor", 0.02],
                ["prior_selection_type", "highest_r2"], ["apply_ols_prior", "TRUE"],
                ["expert_prior_budget_rule", "n_std"]]
    out = udfs.FLASSO_FIT(r, f, 1e-3, "LASSO", None, None, settings)
    ref = LassoModel(reg_lambda=1e-3, auto_sign_constraints=True,
                     auto_sign_adaptive_weights=True, auto_sign_adaptive_gamma=0.5,
                     auto_sign_adaptive_floor=0.02, apply_ols_prior=True).fit(D.x, D.y)
    np.testing.assert_allclose(np.array([row[1:] for row in out[1:]], dtype=float),
                               ref.coef_.to_numpy(), rtol=0, atol=1e-12)
    bad = udfs.FLASSO_FIT(r, f, 1e-3, "LASSO", None, None,
                          [["apply_ols_prior", "TRUE"],
                           ["expert_prior_budget_rule", "cluster_mean"]])
    assert bad == ("#FLASSO! settings: row 2, column 2: expert_prior_budget_rule cluster_mean "
                   "needs clusters or groups: it is not supported with model_type LASSO; use "
                   "GROUP_LASSO, HCGL or FCGL, or n_std")
    cv = udfs.FLASSO_CV(r, f, None, None, [["model_type", "HCGL"], ["apply_ols_prior", "TRUE"],
                                           ["expert_prior_budget_rule", "cluster_mean"]])
    assert cv.startswith("#FLASSO! settings: row 3, column 2: expert_prior_budget_rule "
                         "cluster_mean cannot be cross-validated"), cv
