"""Settings readers: every value the sheet gives is checked on its cell with the core's rules.

Properties: whatever the readers accept, the estimators accept (their own parameter checks are
run on the parsed values), and an invalid value anywhere in the range is refused naming exactly
its cell. Then the exact message for each rule, in FL_SETTINGS, FL_PORTFOLIO_SETTINGS and a
worksheet function's ``settings`` argument, and the documented tables against the code.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.workbook_helpers import demo_memory_book, frame_rows
from xl_factorlasso import udfs
from xl_factorlasso.core import (
    LassoModel,
    LassoModelCV,
    LassoModelType,
    cluster_from_correlation,
    ewm_lambda,
)
from xl_factorlasso.core.cluster._hierarchical import _LINKAGE_METHODS
from xl_factorlasso.core.datasets import load_demo_panel
from xl_factorlasso.core.model_selection import expanding_window_splits
from xl_factorlasso.core.optimization import MaximumDiversification, ewma_effective_sample
from xl_factorlasso.workbook import WorkbookInputError, refit
from xl_factorlasso.workbook._portfolio import MAXDIV_KEYS, read_portfolio_settings
from xl_factorlasso.workbook._settings import (
    CV_KEYS,
    MODEL_KEYS,
    PORTFOLIO_KEYS,
    REPORT_KEYS,
    read_fit_settings,
)
from xl_factorlasso.workbook._xlsx_values import ExcelError, FormulaNoValue

PROPS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DOCS = Path(__file__).resolve().parent.parent / "docs"


def fit_block(pairs, name="FL_SETTINGS", header=True):
    rows = ([["key", "value"]] if header else []) + [list(p) for p in pairs]
    return read_fit_settings_block(rows, name)


def read_fit_settings_block(rows, name="FL_SETTINGS"):
    from xl_factorlasso.workbook._tables import Block

    return read_fit_settings(Block.of(name, rows, 1, 1))


def portfolio(pairs, name="FL_PORTFOLIO_SETTINGS"):
    from xl_factorlasso.workbook._tables import Block

    return read_portfolio_settings(Block.of(name, [list(p) for p in pairs], 1, 1))


# --------------------------------------------------------------------------- strategies
def number(lo, hi, **kw):
    """A number as a cell holds it: a float, or its text (typed into a text-formatted cell)."""
    values = st.floats(lo, hi, allow_nan=False, **kw)
    return st.one_of(values, values.map(repr))


def whole(lo, hi):
    return st.one_of(st.integers(lo, hi), st.integers(lo, hi).map(float),
                     st.integers(lo, hi).map(str))


NONE = st.sampled_from(["none", "None", " off ", "no"])
VALID_FIT = {
    "model_type": st.sampled_from(["LASSO", "lasso", "HCGL", "fcgl", "group lasso",
                                   "HIERARCHICAL_CLUSTER_GROUP_LASSO", 1, 4.0, 5,
                                   "COOPERATIVE_GROUP_LASSO", "ccgl", "Coop", 6, 7.0,
                                   "UNILASSO", " unilasso ", 2]),
    "reg_lambda": number(0, 1e6),
    "span": st.one_of(number(2, 1e4), NONE),
    "demean": st.sampled_from([True, False, 1, 0.0, "TRUE", "false", "yes", "N"]),
    "cutoff_fraction": number(0, 1, exclude_min=True),
    "n_clusters": st.one_of(whole(1, 8), NONE),
    "linkage_method": st.sampled_from([*_LINKAGE_METHODS, " Ward ", "AVERAGE"]),
    "group_penalty": st.sampled_from(["normalized", "yuan_lin", "Yuan_Lin"]),
    "l1_weight": number(0, 1),
    "nonneg": st.booleans(),
    "warmup_period": st.one_of(whole(0, 200), NONE),
    "solver": st.sampled_from(["CLARABEL", "clarabel", "SCS"]),
    "dependence_measure": st.sampled_from(["pearson", "Spearman", " GERBER "]),
    "gerber_threshold": number(0, 1),
    "distance_transform": st.sampled_from(["one_minus_rho", "Chord", "ARCCOS"]),
    "cluster_correlation_transform": st.sampled_from(["none", "remove_pc1", "REMOVE_PC1"]),
    "cluster_correlation_span": st.one_of(number(2, 1e4), NONE),
    "auto_sign_constraints": st.sampled_from([True, False, "TRUE", "no", 1]),
    "auto_sign_threshold_t": st.one_of(number(0, 10), NONE),
    "auto_sign_variance": st.sampled_from(["independent", "date", "Date", " INDEPENDENT "]),
    "auto_sign_ewma_span": st.one_of(number(2, 1e4), NONE, st.sampled_from(["fit", " FIT "])),
    "auto_sign_excluded_factors": st.sampled_from(["MKT", "MKT; SMB", "HML, MKT", " RMW "]),
    "auto_sign_adaptive_weights": st.sampled_from([True, False, "TRUE", "false", 0]),
    "apply_ols_prior": st.sampled_from([True, False, "TRUE", "No", 1]),
    "loss_normalization": st.sampled_from(["sample", "weight_sum", "Weight_Sum", " SAMPLE "]),
    "unilasso_loo": st.sampled_from([True, False, "TRUE", "false", 1, 0.0]),
    "unilasso_non_negative": st.sampled_from([True, False, "FALSE", "yes", 0]),
    "max_named_factors": st.sampled_from([1, 2, 1.0, "2"]),
    "named_set_max_vif": st.one_of(number(1, 1e3), NONE),
    "expert_prior_bound_n_std": st.one_of(number(0, 10), NONE),
    "expert_prior_hac_lags": whole(0, 20),
    "expert_prior_bound_centre": st.sampled_from(["prior", "floor", " Floor "]),
    "expert_prior_bound_scope": st.sampled_from(["all", "named", "NAMED"]),
    "auto_sign_adaptive_gamma": st.one_of(number(1e-6, 1e3), st.sampled_from([1, "2"])),
    "auto_sign_adaptive_floor": st.one_of(number(1e-12, 10), st.sampled_from([1, "1e-3"])),
    "expert_prior_budget_rule": st.sampled_from(["n_std", "cluster_mean", " N_STD ",
                                                 "Cluster_Mean"]),
    "prior_selection_type": st.sampled_from(["highest_r2", "HIGHEST_R2", " highest_r2 "]),
    "cv_splits": whole(2, 40),
    "cv_lambdas": st.one_of(
        st.sampled_from(["auto", "AUTO", "default"]), number(0, 10),
        # distinct values: a repeated one is refused (the scores have one row per value)
        st.lists(st.floats(0, 10), min_size=1, max_size=5, unique=True).flatmap(
            lambda g: st.sampled_from(["; ", ", ", ";"]).map(lambda sep: sep.join(map(repr, g))))),
    "cv_n_lambdas": whole(1, 1000),
    "cv_lambda_min_ratio": number(0, 1, exclude_min=True, exclude_max=True),
    "annualization_factor": number(1e-6, 1e6),
    "max_abs_return": st.one_of(number(1e-6, 1e6), NONE),
}
BAD_ANY = [FormulaNoValue("B1"), ExcelError("#N/A"), "abc", "0,5", "nan", "inf"]
INVALID_FIT = {
    "model_type": ["ridge", 9, True, *BAD_ANY],
    "reg_lambda": [-1, "-1e-9", float("-inf"), True, *BAD_ANY],
    "span": [1, 1.99, 0, -5, "1", *BAD_ANY],
    "demean": ["maybe", 2, 0.5, *BAD_ANY],
    "cutoff_fraction": [0, -0.1, 1.01, *BAD_ANY],
    "n_clusters": [0, -1, 2.5, *BAD_ANY],
    "linkage_method": ["foo", 1, *BAD_ANY],
    "group_penalty": ["l2", *BAD_ANY],
    "l1_weight": [2, -0.01, 1.0000001, *BAD_ANY],
    "nonneg": ["maybe", *BAD_ANY],
    "warmup_period": [-1, 1.5, *BAD_ANY],
    "solver": ["NOT_A_SOLVER", 3, *BAD_ANY],
    "dependence_measure": ["kendall", "none", 1, *BAD_ANY],
    "gerber_threshold": [-0.1, 1.5, "none", *BAD_ANY],
    "distance_transform": ["euclidean", "1-rho", *BAD_ANY],
    "cluster_correlation_transform": ["pc1", "off", 0, *BAD_ANY],
    "cluster_correlation_span": [1, 0, -3, *BAD_ANY],
    "auto_sign_constraints": ["maybe", 2, *BAD_ANY],
    "auto_sign_threshold_t": [-0.5, "-1", *BAD_ANY],
    "auto_sign_variance": ["hac", 1, *BAD_ANY],
    "auto_sign_ewma_span": [1, 0, "fitted", *BAD_ANY],
    "auto_sign_excluded_factors": [3, "MKT;; SMB", "MKT, MKT", "a;", FormulaNoValue("B1"),
                                   ExcelError("#N/A")],
    "auto_sign_adaptive_weights": ["adaptive", 2, 0.5, *BAD_ANY],
    "apply_ols_prior": ["ols", 3, -1, 0.5, *BAD_ANY],
    "loss_normalization": ["mean", "weight sum", "weights", 1, True, *BAD_ANY],
    "unilasso_loo": ["loo", 2, -1, *BAD_ANY],
    "unilasso_non_negative": ["positive", 0.5, *BAD_ANY],
    "max_named_factors": [0, 3, 1.5, "none", *BAD_ANY],
    "named_set_max_vif": [0.5, 0, -2, *BAD_ANY],
    "expert_prior_bound_n_std": [-0.1, -3, *BAD_ANY],
    "expert_prior_hac_lags": [-1, 2.5, "none", *BAD_ANY],
    "expert_prior_bound_centre": ["centre", 0, *BAD_ANY],
    "expert_prior_bound_scope": ["some", 1, *BAD_ANY],
    "auto_sign_adaptive_gamma": [0, -1, "0", "none", True, *BAD_ANY],
    "auto_sign_adaptive_floor": [0, -1e-3, "none", False, *BAD_ANY],
    "expert_prior_budget_rule": ["cluster", "mean", "nstd", 0, True, *BAD_ANY],
    "prior_selection_type": ["highest_t", "r2", "lowest_r2", 1, True, *BAD_ANY],
    "cv_splits": [1, 0, -3, 2.5, "none", *BAD_ANY],
    "cv_lambdas": ["-1", -0.5, "0.1; -2", "0,1", "0,1; 0,2", "1;;2", "abc", "nan", True, "1; 1",
                   FormulaNoValue("B1"), ExcelError("#N/A")],
    "cv_n_lambdas": [0, 1001, 2.5, *BAD_ANY],
    "cv_lambda_min_ratio": [0, 1, -0.5, 2, *BAD_ANY],
    "annualization_factor": [0, -1, "none", *BAD_ANY],
    "max_abs_return": [0, -5, *BAD_ANY],
}


def test_the_strategies_cover_every_key():
    keys = {*MODEL_KEYS, *CV_KEYS, *REPORT_KEYS}
    assert set(VALID_FIT) == keys and set(INVALID_FIT) == keys


def _core_accepts(fs) -> None:
    """Run the estimators' own checks on the parsed values."""
    model = dict(fs.model)
    if model.get("model_type") in ("GROUP_LASSO", "COOPERATIVE_GROUP_LASSO"):
        model["group_data"] = pd.Series(["g"] * 4, index=[f"a{i}" for i in range(4)])
    if model.get("model_type", "").startswith("COOPERATIVE") or model.get(
            "model_type") == "UNILASSO":
        # floors are hard constraints: refused with these types by fit_inputs on their cell
        # (tests/test_workbook_expert_routes.py)
        model.pop("expert_prior_bound_n_std", None)
        model.pop("expert_prior_budget_rule", None)
    if model.get("model_type", "").startswith("COOPERATIVE"):
        # nonneg with a cooperative type is a rule across two keys, refused by fit_inputs on
        # the nonneg cell (tests/test_cooperative.py)
        model.pop("nonneg", None)
    if model.get("model_type") == "UNILASSO":
        # valid alone; refused with UNILASSO against the other settings by fit_inputs, naming
        # the cell (tests/test_unilasso.py)
        for key in ("nonneg", "auto_sign_constraints", "apply_ols_prior", "loss_normalization",
                    "expert_prior_bound_n_std"):
            model.pop(key, None)
    m = LassoModel(**model)
    m._checked_params()
    m._checked_lambda()
    if m.span is not None:
        ewm_lambda(m.span)
    corr = pd.DataFrame(np.eye(4) * 0.5 + 0.5, index=list("abcd"), columns=list("abcd"))
    cluster_from_correlation(corr, cutoff_fraction=m.cutoff_fraction, n_clusters=m.n_clusters,
                             linkage_method=m.linkage_method)
    cv = LassoModelCV(lambdas=fs.cv.get("cv_lambdas", "auto"),
                      n_lambdas=fs.cv.get("cv_n_lambdas", 20),
                      lambda_min_ratio=fs.cv.get("cv_lambda_min_ratio", 1e-3))
    assert len(cv._grid(1.0)) >= 1
    expanding_window_splits(10_000, fs.cv.get("cv_splits", 5))
    assert fs.annualization_factor > 0
    assert fs.max_abs_return is None or fs.max_abs_return > 0


@PROPS
@given(st.lists(st.sampled_from(sorted(VALID_FIT)), unique=True, max_size=len(VALID_FIT))
       .flatmap(lambda keys: st.tuples(*[st.tuples(st.just(k), VALID_FIT[k]) for k in keys])))
def test_valid_settings_parse_to_what_the_core_accepts(pairs):
    keys = dict(pairs)
    n_std = keys.get("expert_prior_bound_n_std", "none")
    rule = MODEL_KEYS["expert_prior_budget_rule"](keys.get("expert_prior_budget_rule", "n_std"),
                                                  "rule")
    if MODEL_KEYS["expert_prior_bound_n_std"](n_std, "n_std") is not None or (
            rule == "cluster_mean"):
        if "apply_ols_prior" not in keys:
            pairs = (*pairs, ("apply_ols_prior", True))  # floors need the OLS prior
        assume(MODEL_KEYS["apply_ols_prior"](dict(pairs)["apply_ols_prior"], "apply_ols_prior"))
    if LassoModelType.parse(keys.get("model_type", "LASSO")).is_cooperative:
        # floors with a cooperative type: refused on the n_std cell (test below)
        pairs = tuple(p for p in pairs if p[0] != "expert_prior_bound_n_std")
    fs = fit_block(pairs)
    _core_accepts(fs)
    for key, value in pairs:
        parsed = {**fs.model, **fs.cv, "annualization_factor": fs.annualization_factor,
                  "max_abs_return": fs.max_abs_return}[key]
        if key == "cv_lambdas" and isinstance(value, float):
            assert parsed == [value]
        elif isinstance(value, float) and key not in ("demean", "model_type"):
            assert parsed == value  # numbers pass through exactly (3.0 == 3 for whole ones)


@PROPS
@given(st.sampled_from(sorted(INVALID_FIT)).flatmap(
    lambda k: st.tuples(st.just(k), st.sampled_from(INVALID_FIT[k]))),
    st.lists(st.sampled_from(sorted(VALID_FIT)), unique=True, max_size=6).flatmap(
    lambda keys: st.tuples(*[st.tuples(st.just(k), VALID_FIT[k]) for k in keys])),
    st.integers(0, 6))
def test_an_invalid_value_is_refused_naming_exactly_its_cell(bad, others, at):
    pairs = [p for p in others if p[0] != bad[0]]
    at = min(at, len(pairs))
    pairs.insert(at, bad)
    with pytest.raises(WorkbookInputError) as info:
        fit_block(pairs)
    assert str(info.value).startswith(f"FL_SETTINGS!B{at + 2}: {bad[0]}")


# --------------------------------------------------------------------------- exact messages
SPAN = "(a span below 2 puts nearly all the weight on the last row)"


@pytest.mark.parametrize("key, value, message", [
    ("span", 1, f"span must be >= 2 (or none), got 1 {SPAN}"),
    ("span", 0, f"span must be >= 2 (or none), got 0 {SPAN}"),
    ("reg_lambda", "nan", "reg_lambda: 'nan' is not a number; leave the cell blank for the default"),
    ("reg_lambda", "inf", "reg_lambda: 'inf' is not a finite number"),
    ("reg_lambda", -1, "reg_lambda must be >= 0, got -1"),
    ("n_clusters", 0, "n_clusters must be a whole number >= 1 (or none), got 0"),
    ("n_clusters", 2.5, "n_clusters must be a whole number >= 1, got 2.5"),
    ("l1_weight", 2, "l1_weight must be in [0, 1], got 2"),
    ("cutoff_fraction", 0, "cutoff_fraction must be in (0, 1], got 0"),
    ("warmup_period", -1, "warmup_period must be a whole number >= 0 (or none), got -1"),
    ("cv_splits", 1, "cv_splits must be a whole number >= 2, got 1"),
    ("cv_n_lambdas", 0, "cv_n_lambdas must be a whole number in [1, 1000], got 0"),
    ("cv_lambda_min_ratio", 1, "cv_lambda_min_ratio must be in (0, 1), got 1"),
    ("cv_lambdas", "0.1, -1", "cv_lambdas must be auto, default or numbers >= 0, got -1"),
    ("cv_lambdas", "nan", "cv_lambdas: 'nan' is not a number; leave the cell blank for the "
                          "default (expected auto, default or numbers)"),
    ("cv_lambdas", "fast", "cv_lambdas: 'fast' is not a number (expected auto, default or "
                           "numbers)"),
    ("cv_lambdas", "0,1", "cv_lambdas: '0,1' is ambiguous: a comma between digits could be a "
                          "decimal comma; write decimals with a point and separate values by "
                          "'; ' or ', '"),
    ("annualization_factor", "nan", "annualization_factor: 'nan' is not a number; leave the cell "
                                    "blank for the default"),
    ("annualization_factor", 0, "annualization_factor must be > 0, got 0"),
    ("annualization_factor", -1, "annualization_factor must be > 0, got -1"),
    ("linkage_method", "foo", "linkage_method: 'foo' is not one of single, complete, average, "
                              "weighted, centroid, median, ward"),
    ("group_penalty", "l2", "group_penalty: 'l2' is not one of normalized, yuan_lin"),
    ("model_type", "ridge", "model_type: 'ridge' is not one of LASSO, UNILASSO, GROUP_LASSO, HCGL, "
                            "FCGL, COOPERATIVE_GROUP_LASSO, COOPERATIVE_CLUSTER_GROUP_LASSO"),
    ("demean", "maybe", "demean: 'maybe' is not TRUE or FALSE"),
    ("max_abs_return", 0, "max_abs_return must be > 0 (or none), got 0"),
    ("max_named_factors", 3, "max_named_factors must be a whole number 1 or 2, got 3"),
    ("named_set_max_vif", 0.5, "named_set_max_vif must be >= 1 (or none), got 0.5"),
    ("expert_prior_bound_n_std", -1, "expert_prior_bound_n_std must be >= 0 (or none), got -1"),
    ("expert_prior_hac_lags", 1.5, "expert_prior_hac_lags must be a whole number >= 0, got 1.5"),
    ("expert_prior_bound_centre", "mid", "expert_prior_bound_centre: 'mid' is not one of "
                                         "prior, floor"),
    ("expert_prior_bound_scope", "x", "expert_prior_bound_scope: 'x' is not one of all, named"),
    ("auto_sign_adaptive_gamma", 0, "auto_sign_adaptive_gamma must be > 0, got 0"),
    ("auto_sign_adaptive_gamma", "inf", "auto_sign_adaptive_gamma: 'inf' is not a finite number"),
    ("auto_sign_adaptive_floor", -0.001, "auto_sign_adaptive_floor must be > 0, got -0.001"),
    ("expert_prior_budget_rule", "mean", "expert_prior_budget_rule: 'mean' is not one of n_std, "
                                         "cluster_mean"),
    ("prior_selection_type", "highest_t", "prior_selection_type: 'highest_t' is not one of "
                                          "highest_r2"),
])
def test_each_rule_names_its_cell(key, value, message):
    with pytest.raises(WorkbookInputError) as info:
        fit_block([("solver", "CLARABEL"), ("nonneg", False), (key, value)])
    assert str(info.value) == f"FL_SETTINGS!B4: {message}"


@pytest.mark.parametrize("key", [None, "", "   "])
def test_a_value_without_a_setting_name_is_refused_on_its_cell(key):
    """A name cleared by mistake would have left its setting at the default without a word;
    a row blank in both cells is still skipped."""
    with pytest.raises(WorkbookInputError) as info:
        fit_block([("span", 26), (None, None), (key, 0.3), ("nonneg", False)])
    assert str(info.value) == ("FL_SETTINGS!B4: 0.3 has no setting name beside it (in A4): "
                               "type the setting's name there, or clear the value")
    with pytest.raises(WorkbookInputError) as info:
        portfolio([("max_weights", 0.2), (key, "long")])
    assert str(info.value).startswith("FL_PORTFOLIO_SETTINGS!B2: 'long' has no setting name")
    assert fit_block([("span", 26), (key, None), ("nonneg", False)]).model["span"] == 26


def test_unknown_solver_lists_the_installed_ones():
    import cvxpy

    with pytest.raises(WorkbookInputError) as info:
        fit_block([("solver", "gurobi-ish")])
    assert str(info.value) == ("FL_SETTINGS!B2: solver: 'gurobi-ish' is not an installed solver; "
                               f"installed: {', '.join(cvxpy.installed_solvers())}")


@pytest.mark.parametrize("value, grid", [
    ("auto", "auto"), ("default", None), (0.01, [0.01]), ("0.1, 0.01", [0.1, 0.01]),
    ("1e-3;1e-2; 0.1", [1e-3, 1e-2, 0.1]), ("0.5,1", [0.5, 1.0]), (0, [0.0]),
])
def test_cv_lambdas(value, grid):
    assert fit_block([("cv_lambdas", value)]).cv["cv_lambdas"] == grid


def test_the_demo_settings_parse_to_the_same_values():
    fs = fit_block([("model_type", "HCGL"), ("span", 52), ("n_clusters", 4), ("l1_weight", 0.1),
                    ("reg_lambda", 1e-5), ("cv_lambdas", "auto"), ("cv_n_lambdas", 15),
                    ("cv_splits", 5), ("annualization_factor", 52)])
    assert fs.model == {"model_type": "HIERARCHICAL_CLUSTER_GROUP_LASSO", "span": 52.0,
                        "n_clusters": 4, "l1_weight": 0.1, "reg_lambda": 1e-5}
    assert fs.cv == {"cv_lambdas": "auto", "cv_n_lambdas": 15, "cv_splits": 5}
    assert fs.annualization_factor == 52.0 and fs.max_abs_return == 5.0


def test_span_of_one_no_longer_fits_silently():
    io = demo_memory_book(settings={"model_type": "LASSO", "span": 1})
    before = io.snapshot()
    with pytest.raises(WorkbookInputError) as info:
        refit(io)
    assert str(info.value) == f"FL_SETTINGS!B3: span must be >= 2 (or none), got 1 {SPAN}"
    assert io.snapshot() == before and io.log == [] and io.saved == 0


# --------------------------------------------------------------------------- portfolio
@pytest.mark.parametrize("pairs, message", [
    ([("min_weights", 0.5), ("max_weights", 0.2)],
     "B2: max_weights 0.2 is below min_weights 0.5 (B1); no weight can satisfy both"),
    ([("max_weights", -0.1)],
     "B1: max_weights -0.1 is below min_weights 0 (the default); no weight can satisfy both"),
    ([("min_weights", 1.5)],
     "B1: min_weights 1.5 is above max_weights 1 (the default); set max_weights too"),
    ([("budget", "nan")], "B1: budget: 'nan' is not a number; leave the cell blank for the "
                          "default"),
    ([("transaction_costs", -0.01)], "B1: transaction_costs must be between 0 and 1, got "
                                     "-0.01; it is a fraction of the amount traded (0.001 for "
                                     "10 bps; transaction_cost_bps in FL_ROLLING_SETTINGS takes "
                                     "basis points)"),
    ([("transaction_costs", 10)], "B1: transaction_costs must be between 0 and 1, got 10; it is "
                                  "a fraction of the amount traded (0.001 for 10 bps; "
                                  "transaction_cost_bps in FL_ROLLING_SETTINGS takes basis "
                                  "points)"),
    ([("max_turnover", -1)], "B1: max_turnover must be >= 0 (or none), got -1"),
    ([("l1_coef", -1)], "B1: l1_coef must be >= 0, got -1"),
    ([("l2_coef", "-1")], "B1: l2_coef must be >= 0, got -1"),
    ([("max_long", 0)], "B1: max_long must be > 0 (or none), got 0"),
    ([("min_budget", 0.5)], "B1: min_budget needs budget | none: a budget (default 1) already "
                            "fixes the sum of the weights"),
    ([("budget", "none"), ("min_budget", 0.9), ("max_budget", 0.5)],
     "B3: max_budget 0.5 is below min_budget 0.9 (B2)"),
    ([("covariance", "ewma"), ("span", 1)], f"B2: span must be >= 2 (or none), got 1 {SPAN}"),
    ([("covariance", "ewma")], "B1: covariance ewma needs a span (e.g. span | 52)"),
    ([("covariance", "factor"), ("factor_n_clusters", 0)],
     "B2: factor_n_clusters must be a whole number >= 1 (or none), got 0"),
    ([("covariance", "factor"), ("reg_lambda", 1e-3), ("factor_reg_lambda", 1e-2)],
     "A3: factor_reg_lambda sets the factor model's reg_lambda, as does reg_lambda (at A2); "
     "keep one"),
    ([("annualization_factor", 0)], "B1: annualization_factor must be > 0, got 0"),
    ([("risk_free_rate", "2%")], "B1: risk_free_rate: '2%' is not a number: a percent sign is "
                                 "not read; type a decimal (0.05 for 5 %)"),
])
def test_portfolio_rules_name_their_cell(pairs, message):
    with pytest.raises(WorkbookInputError) as info:
        portfolio(pairs)
    assert str(info.value) == f"FL_PORTFOLIO_SETTINGS!{message}"


VALID_PORTFOLIO = {
    "covariance": st.sampled_from(["sample", "ewma"]),
    "span": number(2, 500),
    "min_weights": st.one_of(number(-1, 0.2), NONE),
    "max_weights": st.one_of(number(0.2, 2), NONE),
    "budget": st.one_of(number(0.5, 1.5), NONE),
    "min_budget": number(-1, 1),
    "max_budget": number(0, 2),
    "max_short": st.one_of(number(0.01, 2), NONE),
    "max_long": st.one_of(number(0.01, 3), NONE),
    "transaction_costs": number(0, 0.01),
    "management_fees": number(-0.01, 0.01),
    "l1_coef": number(0, 1),
    "l2_coef": number(0, 1),
    "risk_free_rate": number(-0.01, 0.01),
    "min_return": st.one_of(number(-1, 1), NONE),
    "max_turnover": st.one_of(number(0, 1), NONE),
    "solver": st.sampled_from(["CLARABEL", "clarabel"]),
    "annualization_factor": number(1, 365),
    "max_abs_return": st.one_of(number(0.1, 100), NONE),
}


def test_the_portfolio_strategies_cover_every_key():
    assert set(VALID_PORTFOLIO) == set(MAXDIV_KEYS) == {*PORTFOLIO_KEYS, *REPORT_KEYS}


@st.composite
def portfolio_settings(draw) -> list[tuple]:
    """Keys drawn independently, with the ones that go together drawn together (a span with
    covariance ewma; min/max_budget with budget none), so that most draws are valid."""
    free = sorted(set(VALID_PORTFOLIO) - {"covariance", "span", "budget", "min_budget",
                                          "max_budget"})
    keys = draw(st.lists(st.sampled_from(free), unique=True, max_size=6))
    pairs = [(k, draw(VALID_PORTFOLIO[k])) for k in keys]
    cov = draw(st.sampled_from([None, "sample", "ewma"]))
    if cov is not None:
        pairs.append(("covariance", cov))
    if cov == "ewma":
        pairs.append(("span", draw(VALID_PORTFOLIO["span"])))
    budget = draw(st.sampled_from([None, "number", "none"]))
    if budget == "number":
        pairs.append(("budget", draw(number(0.5, 1.5))))
    elif budget == "none":
        pairs.append(("budget", "none"))
        lo, hi = sorted(draw(st.tuples(st.floats(-1, 2), st.floats(-1, 2))))
        pairs += draw(st.sampled_from([[], [("min_budget", lo)], [("max_budget", hi)],
                                       [("min_budget", lo), ("max_budget", hi)]]))
    return draw(st.permutations(pairs))


@PROPS
@given(portfolio_settings())
def test_what_the_portfolio_reader_accepts_the_optimiser_accepts(pairs):
    try:
        ps = portfolio(pairs)
    except WorkbookInputError as err:
        # only bounds that contradict each other are refused here, each on a cell
        assert re.match(r"FL_PORTFOLIO_SETTINGS!B\d+: (max|min)_weights ", str(err)), err
        return
    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.normal(0, 0.01, (40, 5)), columns=list("abcde"))
    span = ps.params.get("span")
    if span is not None and ewma_effective_sample(40, span) <= 5:
        # the one check on the data, not the settings: the span's weights must count the 40
        # rows as more equal rows than the 5 assets (the job names the span's cell for it)
        with pytest.raises(ValueError, match=f"^span={span:g} gives the 40 observations"):
            MaximumDiversification(**ps.params)._validate(x, None)
        return
    MaximumDiversification(**ps.params)._validate(x, None)  # the optimiser's own checks


# --------------------------------------------------------------------------- worksheet functions
@pytest.fixture(scope="module")
def panels():
    d = load_demo_panel()
    return frame_rows(d.y, "date"), frame_rows(d.x, "date")


@pytest.mark.parametrize("settings_rows, message", [
    ([["key", "value"], ["span", 1]], f"settings: row 2, column 2: span must be >= 2 (or none), "
                                      f"got 1 {SPAN}"),
    ([["reg_lambda", "1,5"]], "settings: row 1, column 2: reg_lambda: '1,5' is not a number: "
                              "commas are read neither as decimal commas nor as thousands "
                              "separators; type it with a decimal point and no separators "
                              "(e.g. 0.5, 1000)"),
    ([["n_clusters", 30], ["model_type", "HCGL"]],
     "settings: row 1, column 2: n_clusters 30 is more than the 24 assets of returns; use at "
     "most 24"),
    ([["annualization_factor", -1]], "settings: row 1, column 2: annualization_factor must be "
                                     "> 0, got -1"),
])
def test_worksheet_functions_name_the_settings_cell(panels, settings_rows, message):
    udfs.cache_clear()
    out = udfs.FLASSO_FIT(*panels, None, None, None, None, settings_rows)
    assert out == f"#FLASSO! {message}"


def test_worksheet_function_arguments_follow_the_setting_rules(panels):
    udfs.cache_clear()
    r, f = panels
    assert udfs.FLASSO_FIT(r, f, "nan") == ("#FLASSO! reg_lambda: 'nan' is not a number; leave "
                                            "the cell blank for the default")
    assert udfs.FLASSO_FIT(r, f, "0,001").startswith("#FLASSO! reg_lambda: '0,001' is not a "
                                                    "number: commas")
    assert udfs.FLASSO_CV(r, f, None, 1) == ("#FLASSO! n_splits: must be a whole number >= 2, "
                                             "got 1")
    assert udfs.FLASSO_CV(r, f, "0,1") == (
        "#FLASSO! lambdas: '0,1' is ambiguous: a comma between digits could be a decimal comma; "
        "write decimals with a point and separate values by '; ' or ', '")
    assert udfs.FLASSO_MAXDIV(r, [["min_weights", 0.5], ["max_weights", 0.2]]) == (
        "#FLASSO! settings: row 2, column 2: max_weights 0.2 is below min_weights 0.5 (row 1, "
        "column 2); no weight can satisfy both")


# --------------------------------------------------------------------------- documentation
def _doc_table(marker: str) -> dict[str, str]:
    doc = (DOCS / "workbook.md").read_text(encoding="utf-8")
    body = doc[doc.index(f"<!-- {marker}:start -->"):doc.index(f"<!-- {marker}:end -->")]
    return {m.group(1): m.group(2) for m in re.finditer(r"^\| `(\w+)` \| [^|]* \| (.*) \|$",
                                                         body, re.M)}


def test_the_documented_settings_tables_list_every_key_and_rule():
    fit = _doc_table("settings-table")
    assert list(fit) == [*MODEL_KEYS, *CV_KEYS, *REPORT_KEYS]
    port = _doc_table("portfolio-settings-table")
    assert list(port) == list(MAXDIV_KEYS)
    for table, keys in ((fit, {**MODEL_KEYS, **CV_KEYS, **REPORT_KEYS}), (port, MAXDIV_KEYS)):
        for key, parse in keys.items():
            rule = getattr(parse, "rule", None)
            if rule is not None and rule != "a finite number":
                assert rule in table[key], (key, rule, table[key])
    assert sorted(udfs.SETTINGS_KEYS["fit"]) == sorted(fit)


# --------------------------------------------------------------------------- FL_ROLLING_SETTINGS
VALID_ROLLING = {
    "rebalance": st.sampled_from(["ME", "me", "QE", " qe ", "W-FRI", "w-fri", "YE", "2ME",
                                  "BME", "D", "W"]),
    "window": st.one_of(st.sampled_from(["expanding", " Expanding "]), whole(104, 520)),
    "min_history": st.one_of(whole(2, 104), NONE),
    "on_failure": st.sampled_from(["previous", "skip", "stop", " Stop ", "PREVIOUS"]),
    "benchmarks": st.sampled_from(["sample", "sample, ewma", "equal_weight; ewma; sample",
                                   " EWMA ", "none", "off"]),
    "ewma_span": st.one_of(number(2, 1e4), NONE),
    "transaction_cost_bps": number(0, 1e4),
    "history_factor": st.sampled_from(["Equity", " Rates ", "USD"]),
    "scheduler": st.one_of(NONE, st.sampled_from(["tcp://10.0.0.5:8786",
                                                  " tls://scheduler.local:8786 "])),
    "n_jobs": st.one_of(whole(1, 64), st.sampled_from([-1, "-1"]), NONE),
}
INVALID_ROLLING = {
    "rebalance": ["M", "Q", "A", "monthly", "5min", "h", "0ME", "-1ME", 12, True, *BAD_ANY],
    "window": ["rolling", 1, 0, -5, 2.5, "1", True, *BAD_ANY],
    "min_history": [1, 0, -1, 2.5, True, *BAD_ANY],
    "on_failure": ["raise", "ignore", 1, *BAD_ANY],
    "benchmarks": ["magic", "sample, sample", "sample,,ewma", "sample;", 1, True,
                   FormulaNoValue("B1"), ExcelError("#N/A")],
    "ewma_span": [1, 0, -2, "1.5", *BAD_ANY],
    "transaction_cost_bps": [-1, "-0.5", "none", True, *BAD_ANY],
    "history_factor": [3, True, FormulaNoValue("B1"), ExcelError("#N/A")],
    "scheduler": ["localhost", "tcp://host", "http://h:8786", "tcp://h:port", 8786, True,
                  FormulaNoValue("B1"), ExcelError("#N/A")],
    "n_jobs": [0, -2, 2.5, "many", True, *BAD_ANY],
}


def rolling_block(pairs):
    from xl_factorlasso.workbook._rolling_settings import read_rolling_settings
    from xl_factorlasso.workbook._tables import Block

    return read_rolling_settings(Block.of("FL_ROLLING_SETTINGS",
                                          [["key", "value"], *[list(p) for p in pairs]], 1, 1))


def test_the_rolling_strategies_cover_every_key():
    from xl_factorlasso.workbook._rolling_settings import ROLLING_KEYS

    assert set(VALID_ROLLING) == set(ROLLING_KEYS) == set(INVALID_ROLLING)


@PROPS
@given(st.lists(st.sampled_from(sorted(VALID_ROLLING)), unique=True).flatmap(
    lambda keys: st.tuples(*[st.tuples(st.just(k), VALID_ROLLING[k]) for k in keys])))
def test_valid_rolling_settings_parse_to_what_the_core_accepts(pairs):
    from xl_factorlasso.core.rolling import RollingLassoModel, rebalance_positions

    rs = rolling_block(pairs)  # min_history <= 104 <= an integer window: never contradictory
    model = RollingLassoModel(**rs.rolling, n_jobs=rs.n_jobs)
    model._checked()  # the rolling model's own parameter checks
    index = pd.date_range("2020-01-03", periods=60, freq="W-FRI")
    assert rebalance_positions(index, rs.rolling["rebalance"])
    assert set(rs.benchmarks) <= {"sample", "ewma", "equal_weight"}
    assert rs.transaction_cost_bps is None or rs.transaction_cost_bps >= 0
    for key, value in pairs:
        if key == "history_factor":
            assert rs.history_factor == value.strip()
        if key == "on_failure":
            assert rs.rolling["on_failure"] == {"previous": "previous", "skip": "skip",
                                                "stop": "raise"}[value.strip().lower()]


@PROPS
@given(st.sampled_from(sorted(INVALID_ROLLING)).flatmap(
    lambda k: st.tuples(st.just(k), st.sampled_from(INVALID_ROLLING[k]))),
    st.lists(st.sampled_from(sorted(VALID_ROLLING)), unique=True, max_size=5).flatmap(
    lambda keys: st.tuples(*[st.tuples(st.just(k), VALID_ROLLING[k]) for k in keys])),
    st.integers(0, 5))
def test_an_invalid_rolling_value_is_refused_naming_exactly_its_cell(bad, others, at):
    pairs = [p for p in others if p[0] != bad[0]]
    at = min(at, len(pairs))
    pairs.insert(at, bad)
    with pytest.raises(WorkbookInputError) as info:
        rolling_block(pairs)
    assert str(info.value).startswith(f"FL_ROLLING_SETTINGS!B{at + 2}: {bad[0]}")


@pytest.mark.parametrize("key, value, message", [
    ("rebalance", "M", "rebalance: 'M' is not a rebalancing frequency; write a pandas frequency "
                       "such as W-FRI (weekly, Fridays), ME (month end), QE (quarter end) or YE "
                       "(year end)"),
    ("rebalance", "-1ME", "rebalance: '-1ME' does not move forward in time; write a pandas "
                          "frequency such as W-FRI (weekly, Fridays), ME (month end), QE "
                          "(quarter end) or YE (year end)"),
    ("window", 1, "window must be a whole number >= 2, got 1"),
    ("window", "rolling", "window: 'rolling' is neither expanding nor a number of rows"),
    ("min_history", 1, "min_history must be a whole number >= 2 (or none), got 1"),
    ("on_failure", "raise", "on_failure: 'raise' is not one of previous, skip, stop"),
    ("benchmarks", "sample, sample", "benchmarks: 'sample' is named twice"),
    ("benchmarks", "magic", "benchmarks: 'magic' is not one of sample, ewma, equal_weight "
                            "(or none)"),
    ("ewma_span", 1, f"ewma_span must be >= 2 (or none), got 1 {SPAN}"),
    ("transaction_cost_bps", -1, "transaction_cost_bps must be >= 0, got -1"),
    ("history_factor", 3, "history_factor: 3 is not a factor name"),
    ("scheduler", "localhost", "scheduler: 'localhost' is not a Dask scheduler address such as "
                               "tcp://10.0.0.5:8786 (or none)"),
    ("n_jobs", 0, "n_jobs must be a whole number >= 1 or -1 (or none), got 0"),
])
def test_each_rolling_rule_names_its_cell(key, value, message):
    with pytest.raises(WorkbookInputError) as info:
        rolling_block([("rebalance", "QE"), ("benchmarks", "none"), (key, value)]
                      if key not in ("rebalance", "benchmarks") else
                      [("window", "expanding"), ("on_failure", "skip"), (key, value)])
    assert str(info.value) == f"FL_ROLLING_SETTINGS!B4: {message}"


def test_min_history_beyond_an_integer_window_names_both_cells():
    with pytest.raises(WorkbookInputError) as info:
        rolling_block([("window", 52), ("min_history", 104)])
    assert str(info.value) == (
        "FL_ROLLING_SETTINGS!B3: min_history 104 is more than the window's 52 rows "
        "(FL_ROLLING_SETTINGS!B2): no date could be fitted; lower it or widen the window")


def test_the_documented_rolling_settings_table_lists_every_key_and_rule():
    from xl_factorlasso.workbook._rolling_settings import ROLLING_KEYS

    table = _doc_table("rolling-settings-table")
    assert list(table) == list(ROLLING_KEYS)
    for key, parse in ROLLING_KEYS.items():
        rule = getattr(parse, "rule", None)
        if rule is not None:
            assert rule in table[key], (key, rule, table[key])
