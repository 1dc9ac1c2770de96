"""One answer everywhere: the template's Formulas sheets equal what the ribbon's jobs write.

The committed template (``xl_factorlasso/templates/factorlasso_template.xlsx``) is copied; on each copy
one job runs as the ribbon button would (:func:`xl_factorlasso.workbook.run_jobs` through
:class:`XlsxFileIO`) and its outputs are read back from the saved file. Every ``=FLASSO_*``
formula of the Formulas sheets is then evaluated in Python on the same workbook's cells, as Excel
would call the function (``build.evaluate_formula``: names as 2-D lists of the cell values,
numbers as floats, omitted arguments as ``None``), and compared with those outputs:

* FLASSO_FIT, _R2, _INTERCEPT, _CLUSTERS, _RESID_VOL       = Refit's FL_COEF, FL_R2, ...
* FLASSO_CV, FLASSO_BEST_LAMBDA                            = Cross-validate's FL_CV, FL_STATUS
* FLASSO_FIT/_R2 at FLASSO_BEST_LAMBDA (a nested formula)  = Cross-validate's FL_COEF, FL_R2
* FLASSO_MAXDIV                                            = Optimise portfolio's FL_WEIGHTS,
                                                             FL_PORTFOLIO_STATS
* FLASSO_RISK, FLASSO_RISK_ASSETS (also given FL_WEIGHTS)   = Optimise portfolio's FL_RISK,
                                                             FL_RISK_ASSETS
* FLASSO_RETURNS of the sheet's price panel  = the last rows of FL_RETURNS (numpy, 1e-12)
* FLASSO_PREDICT  = alpha + B x from Refit's FL_INTERCEPT and FL_COEF (computed here in numpy)
* FLASSO_COV      = its diagonal is FL_RESID_VOL's total_vol squared

The same code computes both sides, so tables are compared exactly (the file keeps ``repr`` of
every float); the numpy formulations to 1e-12. A second workbook changes the template's inputs so
that every input path is used: GROUP_LASSO with FL_GROUPS, a factor_* override of the portfolio
settings, previous weights with a turnover limit and transaction costs.
"""

from __future__ import annotations

import importlib.util
import math
import shutil
from pathlib import Path

import numpy as np
import openpyxl
import pytest
from openpyxl.utils import range_boundaries
from openpyxl.worksheet.formula import ArrayFormula

from xl_factorlasso import __version__, udfs
from xl_factorlasso.workbook import XlsxFileIO, run_jobs
from xl_factorlasso.workbook._io import Area

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "xl_factorlasso" / "templates" / "factorlasso_template.xlsx"
JOBS = ("refit", "refit_cv", "optimise_portfolio")


def _load_build():
    spec = importlib.util.spec_from_file_location("factorlasso_template_build_one_answer",
                                                  ROOT / "workbook_template" / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build = _load_build()


# --------------------------------------------------------------------------- workbooks
def _key_values(io: XlsxFileIO, name: str, changes: dict) -> None:
    """Set ``key | value`` rows of a settings name (existing keys in place, new ones below)."""
    area = io.names()[name]
    rows = [list(r) for r in io.read(area)]
    for key, value in changes.items():
        at = next((i for i, r in enumerate(rows) if r[0] == key), None)
        if at is None:
            at = next(i for i, r in enumerate(rows) if r[0] is None)
            rows[at][0] = key
        rows[at][1] = value
    io.write(area, rows)


def _variant(path: Path) -> None:
    """The template with every optional input path in use."""
    io = XlsxFileIO(path)
    _key_values(io, "FL_SETTINGS", {"model_type": "GROUP_LASSO", "reg_lambda": 2e-5,
                                    "cv_splits": 3.0, "cv_n_lambdas": 6.0})
    _key_values(io, "FL_PORTFOLIO_SETTINGS", {"factor_reg_lambda": 1e-4, "max_turnover": 0.05,
                                              "transaction_costs": 0.001})
    assets = io.read(io.names()["FL_RETURNS"])[0][1:]
    area = io.names()["FL_PREV_WEIGHTS"]
    prev = [["asset", "weight"], *[[a, 1 / 12] for a in assets[::2]]]
    io.write(area, prev + [[None, None]] * (area.shape[0] - len(prev)))
    io.save()


def _names(io: XlsxFileIO) -> dict[str, list[list]]:
    return {name: io.read(area) for name, area in io.names().items()}


def _formulas(path: Path) -> tuple[list[str], dict[str, list[list]]]:
    """The Formulas sheets' formulas (without '=') and the values of the ranges they use."""
    wb = openpyxl.load_workbook(path)
    found = [(ws.title, c.value.text.lstrip("=")) for ws in wb.worksheets
             if ws.title in build.FORMULA_SHEET_NAMES for row in ws.iter_rows() for c in row
             if isinstance(c.value, ArrayFormula)]
    ranges = {}
    io = XlsxFileIO(path)
    for sheet, formula in found:
        for a in build.split_formula(formula)[1]:
            if ":" in a:
                min_col, min_row, max_col, max_row = range_boundaries(a)
                assert a not in ranges, a  # (one panel per address)
                ranges[a] = io.read(Area(sheet, min_row, min_col, max_row, max_col))
    return [formula for _sheet, formula in found], ranges


class Case:
    def __init__(self, tmp: Path, variant: bool):
        self.variant = variant
        base = tmp / "inputs.xlsx"
        shutil.copy(TEMPLATE, base)
        if variant:
            _variant(base)
        self.formulas, ranges = _formulas(base)
        self.values = {**_names(XlsxFileIO(base)), **ranges}
        self.outputs, self.models = {}, {}
        for job in JOBS:  # each button on its own copy, as a user clicks it
            path = tmp / f"{job}.xlsx"
            shutil.copy(base, path)
            result = run_jobs(XlsxFileIO(path), [job], pictures=False)
            written = _names(XlsxFileIO(path))
            self.outputs[job] = {name: written[name] for name in result.written}
            self.models[job] = result.model

    def evaluate(self, formula: str):
        return build.evaluate_formula(formula, self.values, udfs)

    def table(self, job: str, name: str) -> list[list]:
        """An output as written, without the blank rows and columns of its named range."""
        rows = [r for r in self.outputs[job][name] if any(v is not None for v in r)]
        width = max(j + 1 for r in rows for j, v in enumerate(r) if v is not None)
        return [list(r[:width]) for r in rows]


@pytest.fixture(scope="module", params=["template", "variant"])
def case(request, tmp_path_factory):
    udfs.cache_clear()
    yield Case(tmp_path_factory.mktemp(request.param), request.param == "variant")
    udfs.cache_clear()


def _by_function(case: Case) -> dict[str, str]:
    out = {}
    for formula in case.formulas:
        name = build.split_formula(formula)[0]
        assert name not in out, f"two formulas of {name} on the Formulas sheet"
        out[name] = formula
    return out


def _matrix(table) -> np.ndarray:
    return np.array([[np.nan if v is None else v for v in r[1:]] for r in table[1:]], float)


# --------------------------------------------------------------------------- the comparisons
def test_every_function_is_on_the_formulas_sheet(case):
    assert sorted(_by_function(case)) == sorted(udfs.__all__)


def _without_model_note(table: list[list]) -> list[list]:
    """FL_COEF's corner also names the model and lambda (``asset (HCGL, lambda 1e-05)``); the
    function's is ``asset``: the numbers and labels are what must be equal."""
    if table and table[0] and isinstance(table[0][0], str) and table[0][0].startswith("asset ("):
        return [["asset", *table[0][1:]], *table[1:]]
    return table


@pytest.mark.parametrize("function, output", [
    ("FLASSO_FIT", "FL_COEF"), ("FLASSO_R2", "FL_R2"), ("FLASSO_INTERCEPT", "FL_INTERCEPT"),
    ("FLASSO_RESID_VOL", "FL_RESID_VOL")])
def test_fit_functions_equal_refit(case, function, output):
    got = case.evaluate(_by_function(case)[function])
    assert got == _without_model_note(case.table("refit", output))


def test_clusters_equal_refit(case):
    got = case.evaluate(_by_function(case)["FLASSO_CLUSTERS"])
    assert got == case.table("refit", "FL_CLUSTERS")
    if case.variant:  # GROUP_LASSO: the groups of FL_GROUPS
        assert got[1:] == [r for r in case.values["FL_GROUPS"][1:] if r[0]]
    else:  # HCGL with n_clusters 4
        assert {r[1] for r in got[1:]} == {1, 2, 3, 4}


def test_cv_and_best_lambda_equal_cross_validate(case):
    functions = _by_function(case)
    table = case.evaluate(functions["FLASSO_CV"])
    assert table == case.table("refit_cv", "FL_CV")
    best = case.evaluate(functions["FLASSO_BEST_LAMBDA"])
    status = dict(case.table("refit_cv", "FL_STATUS")[1:])
    assert best == status["reg_lambda"] == next(r[0] for r in table[1:] if r[-1] == "best")
    settings = dict(r for r in case.values["FL_SETTINGS"] if r[0])
    assert len(table) - 1 == settings["cv_n_lambdas"]  # the cv_* keys of FL_SETTINGS drive it
    assert table[0][1:-2] == [f"fold_{k}" for k in range(int(settings["cv_splits"]))]


@pytest.mark.parametrize("function, output", [("FLASSO_FIT", "FL_COEF"), ("FLASSO_R2", "FL_R2"),
                                              ("FLASSO_INTERCEPT", "FL_INTERCEPT")])
def test_fit_at_the_best_lambda_equals_cross_validate(case, function, output):
    functions = _by_function(case)
    _name, fit_args = build.split_formula(functions[function])
    assert fit_args[2] == ""  # reg_lambda from FL_SETTINGS on the sheet: give it the CV's
    fit_args[2] = functions["FLASSO_BEST_LAMBDA"]
    got = case.evaluate(f"{function}({','.join(fit_args)})")
    assert got == _without_model_note(case.table("refit_cv", output))
    assert got != _without_model_note(case.table("refit", output))  # not FL_SETTINGS' lambda


def test_maxdiv_equals_optimise_portfolio(case):
    got = case.evaluate(_by_function(case)["FLASSO_MAXDIV"])
    weights = case.table("optimise_portfolio", "FL_WEIGHTS")
    stats = case.table("optimise_portfolio", "FL_PORTFOLIO_STATS")
    assert got == [*weights, [None, None], *stats]
    values = dict(stats[1:])
    assert values["covariance"] == "factor"
    assert values["volatility"] > 0.01  # annualised (x sqrt(52)) as the settings say
    prev = {r[0]: r[1] for r in case.values["FL_PREV_WEIGHTS"][1:] if r[0]}
    if prev:  # the variant: each weight within max_turnover 0.05 of the previous one
        moves = [abs(w - prev.get(a, 0.0)) for a, w in weights[1:]]
        assert max(moves) <= 0.05 + 1e-7
        assert max(moves) == pytest.approx(0.05, abs=1e-7)  # and the limit binds


def test_risk_equals_optimise_portfolio(case):
    functions = _by_function(case)
    risk = case.evaluate(functions["FLASSO_RISK"])
    per_asset = case.evaluate(functions["FLASSO_RISK_ASSETS"])
    assert risk == case.table("optimise_portfolio", "FL_RISK")
    assert per_asset == case.table("optimise_portfolio", "FL_RISK_ASSETS")
    # the factor split of the factor covariance (the template's), summing to the total
    factors = case.values["FL_FACTORS"][0][1:]
    assert [r[0] for r in risk[1:]] == [*factors, "specific", "total"]
    total = risk[-1][2]
    assert math.fsum(r[2] for r in risk[1:-1]) == pytest.approx(total, rel=1e-12, abs=0)
    assert math.fsum(r[2] for r in per_asset[1:]) == pytest.approx(total, rel=1e-12, abs=0)
    # the volatility of FL_PORTFOLIO_STATS (the optimiser's, annualised the same way)
    stats = dict(case.table("optimise_portfolio", "FL_PORTFOLIO_STATS")[1:])
    assert total == pytest.approx(stats["volatility"], rel=1e-8)
    # the job's weights, given back as the weights argument: the same attribution
    assert [r[:2] for r in per_asset[1:]] == case.table("optimise_portfolio", "FL_WEIGHTS")[1:]
    with_weights = {**case.values, "FL_WEIGHTS": case.outputs["optimise_portfolio"]["FL_WEIGHTS"]}
    for name, table in (("FLASSO_RISK", risk), ("FLASSO_RISK_ASSETS", per_asset)):
        formula = functions[name].replace(")", ",FL_WEIGHTS)")
        got = build.evaluate_formula(formula, with_weights, udfs)
        np.testing.assert_allclose(_matrix(got), _matrix(table), rtol=1e-12, atol=1e-15)
        assert [r[0] for r in got] == [r[0] for r in table]


def test_returns_of_the_price_panel_are_the_last_rows_of_the_returns(case):
    formula = _by_function(case)["FLASSO_RETURNS"]
    got = case.evaluate(formula)
    prices = case.values[build.split_formula(formula)[1][0]]
    assert got[0] == ["date", *prices[0][1:]]
    assert [r[0] for r in got[1:]] == [r[0] for r in prices[2:]]
    p = _matrix(prices)
    np.testing.assert_array_equal(_matrix(got), p[1:] / p[:-1] - 1.0)  # the same floats
    returns = [r for r in case.values["FL_RETURNS"] if r[0] is not None]
    tail = {r[0]: r for r in returns[-(len(got) - 1):]}
    columns = [returns[0].index(a) for a in got[0][1:]]
    expected = np.array([[tail[r[0]][j] for j in columns] for r in got[1:]])
    np.testing.assert_allclose(_matrix(got), expected, rtol=0, atol=1e-15)


def test_predict_is_alpha_plus_b_x_of_refit(case):
    formula = _by_function(case)["FLASSO_PREDICT"]
    got = case.evaluate(formula)
    scenarios = case.values[build.split_formula(formula)[1][2]]
    coef, alpha = case.table("refit", "FL_COEF"), case.table("refit", "FL_INTERCEPT")
    factors = coef[0][1:]
    assert [r[0] for r in got[1:]] == [r[0] for r in scenarios[1:]]
    assert got[0][1:] == [r[0] for r in coef[1:]]
    x = np.array([[row[scenarios[0].index(f)] for f in factors] for row in scenarios[1:]])
    expected = np.array([r[1] for r in alpha[1:]]) + x @ _matrix(coef).T
    np.testing.assert_allclose(_matrix(got), expected, rtol=1e-12, atol=1e-15)


def test_cov_diagonal_is_the_total_volatility_of_refit(case):
    got = case.evaluate(_by_function(case)["FLASSO_COV"])
    vol = case.table("refit", "FL_RESID_VOL")
    assert got[0][1:] == [r[0] for r in got[1:]] == [r[0] for r in vol[1:]]
    cov = _matrix(got)
    np.testing.assert_allclose(cov, cov.T, rtol=1e-13, atol=0)
    np.testing.assert_allclose(np.sqrt(np.diag(cov)), [r[1] for r in vol[1:]], rtol=1e-12)


def test_version(case):
    assert case.evaluate(_by_function(case)["FLASSO_VERSION"]) == __version__


def test_the_variant_uses_every_input(tmp_path):
    """The variant workbook differs from the template where it should: otherwise the second
    case would test nothing new."""
    plain, variant = tmp_path / "plain.xlsx", tmp_path / "variant.xlsx"
    shutil.copy(TEMPLATE, plain)
    shutil.copy(TEMPLATE, variant)
    _variant(variant)
    a, b = _names(XlsxFileIO(plain)), _names(XlsxFileIO(variant))
    changed = sorted(n for n in a if a[n] != b[n])
    assert changed == ["FL_PORTFOLIO_SETTINGS", "FL_PREV_WEIGHTS", "FL_SETTINGS"]
    settings = dict(r for r in b["FL_PORTFOLIO_SETTINGS"] if r[0])
    assert settings["factor_reg_lambda"] == 1e-4 and settings["max_turnover"] == 0.05
    assert math.isclose(sum(r[1] for r in b["FL_PREV_WEIGHTS"][1:] if r[0]), 1.0)
