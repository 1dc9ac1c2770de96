"""Build the workbook templates from the sources kept in this folder.

    python workbook_template/build.py [--out-dir DIR]      (or: make templates)

writes into ``xl_factorlasso/templates/`` one template per add-in, each with two samples
(:data:`xl_factorlasso.templates.VARIANTS`):

* ``factorlasso_template.xlsx``: the desktop add-in's worksheet functions (``FLASSO_FIT``), the
  command line; no macros;
* ``factorlasso_template.xlsm``: the same workbook plus a "Factor LASSO" ribbon tab and its VBA
  callbacks, for desktop Excel with the xlwings add-in;
* ``factorlasso_template_server.xlsx``: the Formulas sheet written for the server add-in
  (``FACTORLASSO.FLASSO_FIT``, Office.js);
* ``factorlasso_template_sp500*.xls*``: the same three with real data, skfolio's S&P 500 stocks
  on factor ETFs (needs skfolio, the ``dev`` extra, at build time only).

The wheel ships them as package data, and ``xl-factorlasso template [--macro | --server]
[--data sp500] PATH`` writes a copy for the user.

Sources:

* the FL_* layout, the input tables and the data:
  :func:`xl_factorlasso.workbook._builder.build_workbook` fed with the synthetic demo panel of
  :func:`xl_factorlasso.core.datasets.load_demo_panel` or with :func:`sp500_weekly_returns`;
* this script: the Start, Formulas and ``xlwings.conf`` sheets, dropdowns and help on the
  settings, column widths;
* ``src/customUI14.xml``: the ribbon tab, stored as it is;
* ``src/FactorLassoRibbon.bas``: the ribbon callbacks, compiled into ``xl/vbaProject.bin`` by
  ``vbaproject.py`` (nothing binary comes from elsewhere).

The output is reproducible: fixed document properties and zip timestamps, a fixed member order,
no random identifiers. Rebuilding gives identical member contents (and identical bytes with the
same zlib); ``tests/test_templates.py`` checks the committed files against a rebuild.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import sys
import tempfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# vbaproject is a sibling; xl_factorlasso is the package of this checkout, even when another
# copy is installed
for _folder in (ROOT, HERE):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))

import openpyxl  # noqa: E402
import pandas as pd  # noqa: E402
from lxml import etree  # noqa: E402
from openpyxl.styles import Font, PatternFill  # noqa: E402
from openpyxl.worksheet.datavalidation import DataValidation  # noqa: E402
from openpyxl.worksheet.formula import ArrayFormula  # noqa: E402
from openpyxl.worksheet.hyperlink import Hyperlink  # noqa: E402
from vbaproject import build_vba_project  # noqa: E402

from xl_factorlasso.templates import (  # noqa: E402, F401 (the names: for readers and tests)
    DATASETS,
    SERVER_NAME,
    VARIANTS,
    XLSM_NAME,
    XLSX_NAME,
    template_name,
)
from xl_factorlasso.templates import FOLDER as OUT_DIR  # noqa: E402

SRC = HERE / "src"
CUSTOM_UI = SRC / "customUI14.xml"
BAS_FILES = (SRC / "FactorLassoRibbon.bas",)

# OPC names and types
CT = "http://schemas.openxmlformats.org/package/2006/content-types"
PR = "http://schemas.openxmlformats.org/package/2006/relationships"
MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
RT_UI = "http://schemas.microsoft.com/office/2007/relationships/ui/extensibility"
RT_VBA = "http://schemas.microsoft.com/office/2006/relationships/vbaProject"
RT_METADATA = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/sheetMetadata"
CT_XLSM_MAIN = "application/vnd.ms-excel.sheet.macroEnabled.main+xml"
CT_VBA = "application/vnd.ms-office.vbaProject"
CT_METADATA = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheetMetadata+xml"
CUSTOM_UI_PART = "customUI/customUI14.xml"
VBA_PART = "xl/vbaProject.bin"
METADATA_PART = "xl/metadata.xml"

FIXED_DATE = "2024-01-01T00:00:00Z"  # docProps/core.xml created/modified
ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry

INPUT_FILL = PatternFill("solid", fgColor="FFF2CC")  # same colours as _builder.py
OUTPUT_FILL = PatternFill("solid", fgColor="DDEBF7")
NOTE_FONT = Font(name="Calibri", italic=True, color="595959")
BOLD = Font(bold=True, name="Calibri")
HEADING = Font(name="Calibri", bold=True, size=12)

CLASS_TAGS = {"Equities": "EQ", "Govies": "GOV", "Credit": "CRD", "Commodities": "CMDTY"}

# FL_SETTINGS rows: key, value (None = blank = the default), help; a list makes a dropdown.
MODEL_SETTINGS = [
    ("model_type", "HCGL", "LASSO, UNILASSO (univariate-guided, no signs or prior), GROUP_LASSO "
     "(groups in FL_GROUPS, column E), HCGL (clusters found from the returns), FCGL (cluster x "
     "factor blocks), COOPERATIVE_GROUP_LASSO or COOPERATIVE_CLUSTER_GROUP_LASSO (FCGL blocks "
     "favouring one sign, on FL_GROUPS or clusters; no FL_SIGNS)",
     ["LASSO", "UNILASSO", "GROUP_LASSO", "HCGL", "FCGL", "COOPERATIVE_GROUP_LASSO",
      "COOPERATIVE_CLUSTER_GROUP_LASSO"]),
    ("reg_lambda", 1e-5, "penalty weight lambda >= 0 for Refit and the factor covariance; "
     "Cross-validate uses its own best lambda (FL_STATUS, FL_CV) and leaves this cell as it is",
     None),
    ("span", 52, "EWMA span of the loss weights, in rows (none = equal weights)", None),
    ("demean", None, "TRUE (default): fit an intercept per asset", ["TRUE", "FALSE"]),
    ("cutoff_fraction", None, "HCGL/FCGL: dendrogram cut as a fraction of its height "
     "(default 0.5; ignored when n_clusters is set)", None),
    ("n_clusters", 4, "HCGL/FCGL: number of clusters (none = cut at cutoff_fraction)", None),
    ("linkage_method", "ward", "HCGL/FCGL: hierarchical clustering linkage",
     ["ward", "single", "complete", "average", "weighted", "centroid", "median"]),
    ("dependence_measure", None, "HCGL/FCGL: how the returns' co-movement is measured for the "
     "clusters: pearson (default), spearman (ranks) or gerber (joint moves)",
     ["pearson", "spearman", "gerber"]),
    ("group_penalty", "normalized", "group weight: normalized (default) or yuan_lin "
     "(sqrt of group size)", ["normalized", "yuan_lin"]),
    ("l1_weight", 0.1, "share of the penalty on single loadings (sparse-group LASSO), 0 to 1",
     None),
    ("nonneg", None, "TRUE: every loading >= 0 (default FALSE)", ["TRUE", "FALSE"]),
    ("warmup_period", None, "assets with fewer observations get zero loadings (default 12)",
     None),
    ("solver", None, "CVXPY solver for the reference formulation (default CLARABEL)", None),
    ("auto_sign_constraints", None, "TRUE: derive each loading's sign from the data (slope "
     "and t-test per asset, group or cluster); FL_SIGNS cells win; the signs used are in "
     "FL_DERIVED_SIGNS (default FALSE)", ["TRUE", "FALSE"]),
    ("auto_sign_threshold_t", None, "derived signs: |t| below this sets the loading to 0 "
     "(default 0.75; none = no gate)", None),
    ("auto_sign_adaptive_weights", None, "TRUE: with derived signs, penalise each loading by "
     "1 / max(|slope|, 0.001): strong evidence is shrunk less (default FALSE)",
     ["TRUE", "FALSE"]),
    ("apply_ols_prior", None, "TRUE: shrink each asset towards the slope of its best single "
     "factor (highest R^2) instead of 0; filled FL_PRIOR cells win (default FALSE)",
     ["TRUE", "FALSE"]),
    ("loss_normalization", None, "sample (default): each asset's squared errors divided by the "
     "dates; weight_sum: by the asset's own weight mass (short histories weigh as much)",
     ["sample", "weight_sum"]),
    ("unilasso_loo", None, "UNILASSO: TRUE (default) regresses on leave-one-out univariate "
     "fits, FALSE on in-sample ones", ["TRUE", "FALSE"]),
    ("unilasso_non_negative", None, "UNILASSO: TRUE (default) keeps the sign of each "
     "loading's univariate slope", ["TRUE", "FALSE"]),
    ("max_named_factors", None, "most factors a named OLS prior may use: 1 or 2 (default 2)",
     ["1", "2"]),
    ("named_set_max_vif", None, "a named factor pair more collinear than this VIF keeps its "
     "first factor (default 2.5; none = no check)", None),
    ("expert_prior_bound_n_std", None, "with apply_ols_prior: each selected loading keeps at "
     "least |slope| - n_std x HAC standard error (default none = no floor)", None),
    ("expert_prior_hac_lags", None, "Bartlett lags of those standard errors (default 0)", None),
    ("expert_prior_bound_centre", None, "penalty centre of a floored loading: prior or floor "
     "(default prior)", ["prior", "floor"]),
    ("expert_prior_bound_scope", None, "floor all selected loadings or only named ones "
     "(default all)", ["all", "named"]),
    ("auto_sign_adaptive_gamma", None, "adaptive weights: the exponent gamma of "
     "1 / max(|slope|, floor)^gamma (default 1)", None),
    ("auto_sign_adaptive_floor", None, "adaptive weights: the floor of |slope| (default 0.001)",
     None),
    ("expert_prior_budget_rule", None, "n_std (default) or cluster_mean: floors from the "
     "cluster's mean loading in a first fit (GROUP_LASSO/HCGL/FCGL; not with Cross-validate)",
     ["n_std", "cluster_mean"]),
    ("prior_selection_type", None, "how the OLS prior picks its factor: highest_r2 (the only "
     "rule)", ["highest_r2"]),
    ("cv_splits", 5, "Cross-validate: number of expanding-window folds", None),
    ("cv_lambdas", "auto", "Cross-validate: auto, default or lambdas separated by commas",
     ["auto", "default"]),
    ("cv_n_lambdas", 15, "Cross-validate: size of the auto grid", None),
    ("cv_lambda_min_ratio", None, "Cross-validate: smallest lambda of the auto grid as a "
     "fraction of the largest", None),
    ("annualization_factor", 52, "periods per year of the returns (52 = weekly) for the "
     "reported volatilities", None),
]
PORTFOLIO_SETTINGS = [
    ("covariance", "factor", "sample, ewma (needs span) or factor (the factor model of "
     "FL_SETTINGS)", ["sample", "ewma", "factor"]),
    ("max_weights", 0.15, "largest weight of one asset", None),
    ("min_weights", None, "smallest weight of one asset (default 0: long only)", None),
    ("budget", None, "sum of the weights (default 1)", None),
    ("max_turnover", None, "largest |w - previous weight| of each asset (FL_PREV_WEIGHTS)",
     None),
    ("transaction_costs", None, "cost per unit of turnover", None),
    ("l2_coef", None, "L2 penalty on the weights", None),
    ("risk_free_rate", None, "for the reported Sharpe ratio", None),
    ("annualization_factor", 52, "periods per year for the reported mean, volatility and Sharpe",
     None),
]
CONSTRAINTS = ["EQ <= 0.40", "GOV >= 0.20"]
# FL_ROLLING_SETTINGS rows (the Backtest button): quarterly re-fits after two years of weekly
# data, every benchmark, 10 bps per unit traded.
ROLLING_SETTINGS = [
    ("rebalance", "QE", "when the model is re-fitted and the portfolio rebalanced: a pandas "
     "frequency, W-FRI (weekly), ME (month end), QE (quarter end), YE (year end)",
     ["W-FRI", "ME", "QE", "YE"]),
    ("window", None, "expanding (default: every row up to the date) or the number of rows "
     "each fit uses", None),
    ("min_history", 104, "fewest rows a fit needs (earlier dates are skipped: the warm-up)",
     None),
    ("on_failure", None, "previous (default: a failed date keeps the previous model and "
     "holdings), skip, or stop (the run stops and writes nothing)",
     ["previous", "skip", "stop"]),
    ("benchmarks", None, "compared with the factor strategy (default all): sample, ewma, "
     "equal_weight separated by commas, or none", None),
    ("ewma_span", None, "span of the ewma benchmark (default: the model's span)", None),
    ("transaction_cost_bps", 10, "cost in basis points per unit traded (10 = 0.1%), charged "
     "on every strategy's trades and in the optimiser; not with FL_PORTFOLIO_SETTINGS' "
     "transaction_costs", None),
    ("history_factor", None, "the factor whose loadings the BetaHistory picture draws "
     "(default the first)", None),
    ("scheduler", None, "a Dask scheduler address tcp://host:port to fit on a cluster "
     "(blank: this machine)", None),
    ("n_jobs", None, "processes the dates are split into (blank or 1: one; -1: every core)",
     None),
]

# The Formulas sheet: title, what it shows, the formula (stored without the leading '='), and
# the number format given to the numbers of its spill area (None: General; a list: one per
# column after the labels, the last one repeating, as the jobs format their outputs).
# {scenarios} is the address of the small factor panel written on the sheet for FLASSO_PREDICT,
# {prices} that of the price panel for FLASSO_RETURNS.
# Every function gets the inputs the ribbon's jobs read, so that each result equals theirs
# (tests/test_one_answer.py): the fit functions those of Refit, FLASSO_CV and FLASSO_BEST_LAMBDA
# those of Cross-validate, FLASSO_MAXDIV, FLASSO_RISK and FLASSO_RISK_ASSETS those of Optimise
# portfolio (its factor model is Refit's, with the factor_* keys of FL_PORTFOLIO_SETTINGS on top).
from xl_factorlasso.workbook._formats import display_text, fitted_width, stored_width  # noqa: E402
from xl_factorlasso.workbook._output_formats import (  # noqa: E402
    COLUMN_FORMATS,
    LABEL_FORMATS,
    ROW_FORMATS,
)

_FIT_ARGS = "FL_RETURNS,FL_FACTORS,,,FL_SIGNS,FL_PRIOR,FL_SETTINGS,FL_GROUPS"
_CV_ARGS = "FL_RETURNS,FL_FACTORS,,,FL_SETTINGS,FL_SIGNS,FL_PRIOR,FL_GROUPS"
_PORTFOLIO_ARGS = ("FL_RETURNS,FL_PORTFOLIO_SETTINGS,FL_CONSTRAINTS,FL_ASSET_GROUPS,FL_FACTORS,"
                   "FL_SIGNS,FL_PRIOR,FL_SETTINGS,FL_GROUPS,FL_PREV_WEIGHTS")
_NUM = "0.0000"
FORMULAS = [
    ("FLASSO_VERSION", "the version of xl-factorlasso computing the functions",
     "FLASSO_VERSION()", None),
    ("FLASSO_FIT", "sparse loadings, assets down and factors across (signs, prior, settings "
     "and groups of the workbook: the numbers Refit writes to FL_COEF)",
     f"FLASSO_FIT({_FIT_ARGS})", _NUM),
    ("FLASSO_R2", "in-sample R^2 per asset (the same fit, answered from the cache)",
     f"FLASSO_R2({_FIT_ARGS})", _NUM),
    ("FLASSO_INTERCEPT", "intercept (alpha) per asset", f"FLASSO_INTERCEPT({_FIT_ARGS})", _NUM),
    ("FLASSO_CLUSTERS", "cluster of each asset found by HCGL", f"FLASSO_CLUSTERS({_FIT_ARGS})",
     None),
    ("FLASSO_RESID_VOL", "total, systematic and residual volatility (annualised with "
     "annualization_factor)", f"FLASSO_RESID_VOL({_FIT_ARGS})", _NUM),
    ("FLASSO_PREDICT", "fitted returns alpha + B x for the factor values of the scenario panel "
     "above", "FLASSO_PREDICT(FL_RETURNS,FL_FACTORS,{scenarios},,,FL_SIGNS,FL_PRIOR,"
     "FL_SETTINGS,FL_GROUPS)", _NUM),
    ("FLASSO_CV", "cross-validation of reg_lambda: out-of-sample R^2 per lambda and fold "
     "(cv_* settings; the table Cross-validate writes to FL_CV)", f"FLASSO_CV({_CV_ARGS})",
     _NUM),
    ("FLASSO_BEST_LAMBDA", "the cross-validated reg_lambda (the best row of FLASSO_CV); give it "
     "to FLASSO_FIT as reg_lambda for Cross-validate's fit", f"FLASSO_BEST_LAMBDA({_CV_ARGS})",
     "0.000E+00"),
    ("FLASSO_MAXDIV", "maximum-diversification weights and statistics (portfolio settings, "
     "constraints, asset groups and previous weights; the factor model of the workbook: the "
     "numbers Optimise portfolio writes)",
     f"FLASSO_MAXDIV({_PORTFOLIO_ARGS})", COLUMN_FORMATS["FL_WEIGHTS"]),
    ("FLASSO_RISK", "risk attribution of that portfolio under the covariance it was optimised "
     "with: per factor the exposure B'w, its contribution to the volatility and its share, then "
     "the specific part and the total (annualised; the table Optimise portfolio writes to "
     "FL_RISK). A last argument weights attributes any portfolio you type instead",
     f"FLASSO_RISK({_PORTFOLIO_ARGS})", COLUMN_FORMATS["FL_RISK"]),
    ("FLASSO_RISK_ASSETS", "the same attribution per asset: weight, contribution, share, "
     "systematic and specific parts (FL_RISK_ASSETS)",
     f"FLASSO_RISK_ASSETS({_PORTFOLIO_ARGS})", COLUMN_FORMATS["FL_RISK_ASSETS"]),
    ("FLASSO_COV", "factor-model covariance of the assets, B S B' + D",
     f"FLASSO_COV({_FIT_ARGS})", "0.000000"),
    ("FLASSO_NOTES", "what the fit of FLASSO_FIT warned about, once each (factors that "
     "are combinations of others, a factor with one value...); ok when nothing: the notes "
     "Refit writes in FL_STATUS", f"FLASSO_NOTES({_FIT_ARGS})", None),
    ("FLASSO_RETURNS", "simple returns p_t / p_prev - 1 of the price panel above (add \"log\" "
     "for log returns): the last rows of FL_RETURNS again", "FLASSO_RETURNS({prices})",
     "0.00%"),
    ("FLASSO_BETA_HISTORY", "the first factor's loadings refitted at every rebalancing date of "
     "FL_ROLLING_SETTINGS on the data up to that date (the model of FL_SETTINGS): that "
     "factor's rows of FL_BETA_HISTORY, which Backtest writes, dates down",
     "FLASSO_BETA_HISTORY(FL_RETURNS,FL_FACTORS,INDEX(FL_FACTORS,1,2),"
     + ",".join(f'INDEX(FL_ROLLING_SETTINGS,MATCH("{key}",INDEX(FL_ROLLING_SETTINGS,,1),0),2)'
                for key in ("rebalance", "window", "min_history"))
     + ",,,FL_SIGNS,FL_PRIOR,FL_SETTINGS,FL_GROUPS)", _NUM),
]

# Formats the column codes above cannot give. The first column's, where it holds numbers rather
# than names: FLASSO_CV's penalties and FLASSO_BETA_HISTORY's dates, as FL_CV and
# FL_BETA_HISTORY show theirs. And formats chosen by the label in the first column, whichever
# row it is on: FLASSO_MAXDIV's statistics come under its weights, so more assets push them down
# into rows that held weights on the template; conditional formats on their labels show them as
# FL_PORTFOLIO_STATS does, the weights keeping the column's percentages.
FIRST_COLUMN_FORMATS = {"FLASSO_CV": LABEL_FORMATS["FL_CV"],
                        "FLASSO_BETA_HISTORY": LABEL_FORMATS["FL_BETA_HISTORY"]}
LABELLED_ROW_FORMATS = {"FLASSO_MAXDIV": ROW_FORMATS["FL_PORTFOLIO_STATS"]}


# How each example's answer grows with the user's data: "down" (a row per asset, factor or
# note; fixed columns), "right" (a column per asset; its rows set by a panel of its own sheet),
# "both", or None (its size set by its arguments: one value, or the price panel's rows and
# columns). An answer spills only into empty cells (Excel shows #SPILL! otherwise), and the
# inputs are tables that grow to any size, so every example keeps what it may fill to itself up
# to the sheet's edge: "down" ones side by side, each in columns of its widest answer
# (DOWN_WIDTH) with nothing below; "right" ones and fixed ones one under the other above them,
# nothing to their right; and one answer that grows both ways per sheet, at the right end of
# the row of "down" ones (its corner: nothing below it nor to its right).
GROWS = {
    "FLASSO_VERSION": None, "FLASSO_BEST_LAMBDA": None, "FLASSO_RETURNS": None,
    "FLASSO_PREDICT": "right",
    "FLASSO_R2": "down", "FLASSO_INTERCEPT": "down", "FLASSO_CLUSTERS": "down",
    "FLASSO_RESID_VOL": "down", "FLASSO_NOTES": "down", "FLASSO_MAXDIV": "down",
    "FLASSO_RISK": "down", "FLASSO_RISK_ASSETS": "down",
    "FLASSO_FIT": "both", "FLASSO_COV": "both", "FLASSO_CV": "both",
    "FLASSO_BETA_HISTORY": "both",
}
# the columns of a "down" answer at its widest (FLASSO_RISK_ASSETS: weight, contribution,
# share, systematic and specific under a factor model; fewer under a sample covariance)
DOWN_WIDTH = {"FLASSO_R2": 2, "FLASSO_INTERCEPT": 2, "FLASSO_CLUSTERS": 2,
              "FLASSO_RESID_VOL": 4, "FLASSO_NOTES": 1, "FLASSO_MAXDIV": 2, "FLASSO_RISK": 4,
              "FLASSO_RISK_ASSETS": 6}
# The sheets of the examples (one corner each for FLASSO_FIT, _CV, _COV and _BETA_HISTORY), in
# the order of their sheets: title, then the examples, in the order they are laid out
FORMULA_SHEETS = [
    ("Formulas", "Worksheet functions =FLASSO_* on the FL_* names of this workbook",
     ["FLASSO_VERSION", "FLASSO_PREDICT", "FLASSO_RETURNS", "FLASSO_R2", "FLASSO_INTERCEPT",
      "FLASSO_RESID_VOL", "FLASSO_CLUSTERS", "FLASSO_NOTES", "FLASSO_FIT"]),
    ("Formulas CV", "Worksheet functions: cross-validation of reg_lambda",
     ["FLASSO_BEST_LAMBDA", "FLASSO_CV"]),
    ("Formulas Portfolio", "Worksheet functions: the portfolio, its risk and the covariance",
     ["FLASSO_MAXDIV", "FLASSO_RISK", "FLASSO_RISK_ASSETS", "FLASSO_COV"]),
    ("Formulas History", "Worksheet functions: loadings refitted over time",
     ["FLASSO_BETA_HISTORY"]),
]
FORMULA_SHEET_NAMES = [name for name, _title, _examples in FORMULA_SHEETS]


def formulas_for(namespace: str | None = None) -> list[tuple[str, str, str, str | None]]:
    """The Formulas sheet's entries ``(function, what, formula, number format)`` for an add-in.

    Parameters
    ----------
    namespace : str, optional
        None: the desktop add-in (xlwings' VBA wrappers, ``FLASSO_FIT(...)``), i.e.
        :data:`FORMULAS`. The server add-in's namespace
        (:func:`xl_factorlasso.server.functions_namespace`, ``FACTORLASSO`` in prod): every
        call as that add-in names it, ``FACTORLASSO.FLASSO_FIT(...)``.
    """
    if namespace is None:
        return list(FORMULAS)
    from xl_factorlasso.server import namespaced_formula

    return [(name, what, namespaced_formula(formula, namespace), fmt)
            for name, what, formula, fmt in FORMULAS]


START_TEXT_WIDTH = 100  # characters of the Start sheet's text column (C); longer text wraps
HELP_WIDTH = 80  # the "what it does" column beside FL_SETTINGS

EXCEL_ROWS, EXCEL_COLUMNS = 1_048_576, 16_384  # the sheet's edge
SCENARIO_ROWS = 3  # the last weeks of the factor panel, for FLASSO_PREDICT

XLWINGS_CONF = [("UDF Modules", "xl_factorlasso.udfs")]
XLWINGS_ADDIN_DOCS = "https://docs.xlwings.org/en/latest/addin.html"
# what `make dist` builds; no version number, so that a release does not change the templates
WHEEL = "xl_factorlasso-<version>-py3-none-any.whl"


# =============================================================================== sample data
def _demo_inputs() -> dict:
    from xl_factorlasso.core.datasets import load_demo_panel

    demo = load_demo_panel()
    classes = demo.clusters.map(CLASS_TAGS)
    return {
        "returns": demo.y,
        "factors": demo.x,
        "signs": demo.signs,
        "prior": demo.prior,
        "groups": classes.rename("group"),
        "settings": {k: v for k, v, *_ in MODEL_SETTINGS},
        "portfolio_settings": {k: v for k, v, *_ in PORTFOLIO_SETTINGS},
        "constraints": CONSTRAINTS,
        "rolling_settings": {k: v for k, v, *_ in ROLLING_SETTINGS},
        "asset_groups": pd.DataFrame({"asset_class": classes}),
        "description": demo.description,
    }


# The real-data sample: skfolio's bundled S&P 500 stock prices and factor ETF prices (BSD-3).
# Sector of each stock (GICS sector at the end of the data, 2022), for FL_GROUPS (GROUP_LASSO)
# and FL_ASSET_GROUPS (sector limits in FL_CONSTRAINTS).
SP500_SECTORS = {
    "AAPL": "TECH", "AMD": "TECH", "MSFT": "TECH",
    "BAC": "FIN", "JPM": "FIN",
    "BBY": "DISCR", "HD": "DISCR",
    "CVX": "ENERGY", "RRC": "ENERGY", "XOM": "ENERGY",
    "GE": "INDU",
    "JNJ": "HEALTH", "LLY": "HEALTH", "MRK": "HEALTH", "PFE": "HEALTH", "UNH": "HEALTH",
    "KO": "STAPLES", "PEP": "STAPLES", "PG": "STAPLES", "WMT": "STAPLES",
}
SP500_SECTOR_NAMES = {
    "TECH": "information technology", "FIN": "financials", "DISCR": "consumer discretionary",
    "ENERGY": "energy", "INDU": "industrials", "HEALTH": "health care",
    "STAPLES": "consumer staples",
}
# Settings that differ from the synthetic template's (docs/workbook.md says why):
# weekly data as the synthetic sample (annualisation 52); a two-year EWMA span; HCGL with four
# clusters of stocks found from the returns; every loading >= 0 (FL_SIGNS) because the five
# ETFs are long-only equity portfolios; no prior (blank = 0).
SP500_SETTINGS = {"span": 104}
SP500_PORTFOLIO_SETTINGS: dict = {}
SP500_CONSTRAINTS = ["HEALTH <= 0.30", "ENERGY <= 0.20"]
SKFOLIO_DATASETS_URL = "https://skfolio.org/generated/skfolio.datasets.load_sp500_dataset.html"


def sp500_weekly_returns() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Weekly simple returns of skfolio's 20 S&P 500 stocks and its 5 factor ETFs.

    The prices (skfolio's ``load_sp500_dataset`` and ``load_factors_dataset``, daily adjusted
    closes, bundled in the skfolio package: nothing is downloaded) are taken on the ETFs' dates
    (2014-01-02 to 2022-12-28), sampled on the last trading day of each week (Friday, or the
    day before a Friday holiday, at its own date) and turned into returns by
    :func:`xl_factorlasso.core.preprocessing.prices_to_returns`. The data end on a Wednesday:
    that last, incomplete week is left out.

    Returns
    -------
    (returns, factors) : tuple of pandas.DataFrame
        468 weeks from 2014-01-10 to 2022-12-23; 20 stocks, and MTUM, QUAL, SIZE, USMV, VLUE.
    """
    from skfolio.datasets import load_factors_dataset, load_sp500_dataset

    from xl_factorlasso.core.preprocessing import prices_to_returns

    stocks, etfs = load_sp500_dataset(), load_factors_dataset()
    prices = stocks.join(etfs, how="inner")
    week = prices.index.to_period("W-FRI")
    weekly = prices.groupby(week).tail(1)
    if weekly.index[-1] < week[-1].end_time.normalize():  # the data stop within a week
        weekly = weekly.iloc[:-1]
    returns = prices_to_returns(weekly, "simple")
    returns.index = pd.DatetimeIndex(returns.index).as_unit("ns").rename("date")
    return returns[list(stocks.columns)], returns[list(etfs.columns)]


def skfolio_licence() -> tuple[str, str]:
    """skfolio's version and its licence text, as installed (the data are redistributed under
    it: BSD-3-Clause asks for the notice, the conditions and the disclaimer to go with them)."""
    from importlib.metadata import distribution

    dist = distribution("skfolio")
    files = [f for f in dist.files or () if "licen" in f.name.lower()]
    texts = [f.read_text() for f in files if f.read_text()]
    if not texts or "BSD 3-Clause License" not in texts[0]:
        raise RuntimeError("the installed skfolio has no BSD 3-Clause licence file: the S&P 500 "
                           "sample cannot be redistributed without it")
    return dist.version, texts[0].strip()


def _sp500_inputs() -> dict:
    returns, factors = sp500_weekly_returns()
    unknown = sorted(set(returns.columns) - set(SP500_SECTORS))
    if unknown:
        raise RuntimeError(f"no sector for {unknown}: add them to SP500_SECTORS")
    sectors = pd.Series([SP500_SECTORS[a] for a in returns.columns], index=returns.columns)
    version, licence = skfolio_licence()
    settings = {k: v for k, v, *_ in MODEL_SETTINGS} | SP500_SETTINGS
    first, last = (d.strftime("%Y-%m-%d") for d in returns.index[[0, -1]])
    return {
        "returns": returns,
        "factors": factors,
        # long-only equity ETFs: a stock's exposure to each is non-negative
        "signs": pd.DataFrame(1.0, index=returns.columns, columns=factors.columns),
        "prior": None,
        "groups": sectors.rename("group"),
        "settings": settings,
        "portfolio_settings": {k: v for k, v, *_ in PORTFOLIO_SETTINGS}
        | SP500_PORTFOLIO_SETTINGS,
        "constraints": SP500_CONSTRAINTS,
        "rolling_settings": {k: v for k, v, *_ in ROLLING_SETTINGS},
        "asset_groups": pd.DataFrame({"sector": sectors}),
        "description": (f"REAL market data: {len(returns)} weekly returns ({first} to {last}) "
                        f"of {returns.shape[1]} S&P 500 stocks on {factors.shape[1]} factor "
                        f"ETFs ({', '.join(factors.columns)}), from skfolio's bundled datasets "
                        "(BSD-3-Clause); stale example data, not for investment decisions"),
        "source": [
            ("data", f"skfolio {version} (skfolio.datasets): load_sp500_dataset (daily adjusted "
             "closes of 20 S&P 500 constituents) and load_factors_dataset (daily adjusted "
             "closes of the iShares MSCI USA factor ETFs MTUM momentum, QUAL quality, SIZE "
             "size, USMV minimum volatility, VLUE value)"),
            ("made by", "the template build of xl-factorlasso: the ETFs' dates; the last "
             "trading day of each week; simple returns p_t / p_prev - 1 (xl-factorlasso's "
             "prices_to_returns, FLASSO_RETURNS in a cell); the incomplete last week left out"),
            ("caution", "skfolio: the datasets are provided solely for testing and example "
             "purposes; stale, not current or accurate market prices; not for investment, "
             "trading or commercial use"),
            ("sectors", "AssetGroups and FL_GROUPS: the GICS sector of each stock ("
             + ", ".join(f"{k} {v}" for k, v in SP500_SECTOR_NAMES.items()) + ")"),
            ("licence", "the data are redistributed under skfolio's licence, reproduced below"),
        ],
        "licence": licence,
        "web": SKFOLIO_DATASETS_URL,
    }


#: Sample data -> the inputs of a template with it.
SAMPLE_INPUTS = {"synthetic": _demo_inputs, "sp500": _sp500_inputs}
# keys of a template's inputs that are not build_workbook's
_EXTRA_KEYS = ("source", "licence", "web")


# =============================================================================== the workbook
def build_openpyxl_workbook(inputs: dict | None = None,
                            namespace: str | None = None) -> openpyxl.Workbook:
    """The template as an openpyxl workbook: the FL_* layout of ``build_workbook`` + our sheets.

    ``inputs``: the sample data (:data:`SAMPLE_INPUTS`; by default the synthetic panel).
    ``namespace``: None writes the Formulas sheet for the desktop add-in; the server add-in's
    namespace (``FACTORLASSO``) writes it for that add-in (:func:`formulas_for`).
    """
    from xl_factorlasso.workbook._builder import build_workbook

    inputs = inputs or _demo_inputs()
    with tempfile.TemporaryDirectory() as tmp:
        # readable: formats, widths and frozen header rows of the inputs, as in the demo
        path = build_workbook(os.path.join(tmp, "base.xlsx"), readable=True,
                              **{k: v for k, v in inputs.items() if k not in _EXTRA_KEYS})
        wb = openpyxl.load_workbook(path)
    _start_sheet(wb, inputs, namespace)
    _settings_help(wb["Settings"], MODEL_SETTINGS, help_column=3)
    _settings_help(wb["Portfolio"], PORTFOLIO_SETTINGS, help_column=None)
    _settings_help(wb["Rolling"], ROLLING_SETTINGS, help_column=3)
    _formulas_sheets(wb, inputs, namespace)
    _xlwings_conf_sheet(wb)
    wb.active = 0
    for ws in wb.worksheets:
        ws.sheet_view.tabSelected = ws is wb.worksheets[0]
    wb.code_name = "ThisWorkbook"
    for i, ws in enumerate(wb.worksheets, start=1):
        ws.sheet_properties.codeName = f"Sheet{i}"
    for ws in wb.worksheets:  # text that starts with '=' would have become a formula
        for row in ws.iter_rows():
            for c in row:
                if c.data_type == "f" and not (ws.title in FORMULA_SHEET_NAMES
                                               and isinstance(c.value, ArrayFormula)):
                    raise RuntimeError(f"{ws.title}!{c.coordinate} is a formula: {c.value}")
    props = wb.properties
    props.creator = props.lastModifiedBy = "xl-factorlasso"
    props.title = "xl-factorlasso template"
    real = "licence" in inputs
    props.description = ("Generated by workbook_template/build.py; sample data: "
                         + ("skfolio's S&P 500 and factor ETF prices (BSD-3-Clause), see the "
                            "Start sheet." if real else "synthetic."))
    return wb


def _write_rows(ws, rows, start_row=1):
    """rows: list of (values, font or None); returns the next free row."""
    r = start_row
    for values, font in rows:
        for j, v in enumerate(values, start=1):
            c = ws.cell(row=r, column=j, value=v)
            if font is not None:
                c.font = font
        r += 1
    return r


def _link(cell, sheet: str | None = None, url: str | None = None) -> None:
    if sheet is not None:
        cell.hyperlink = Hyperlink(ref=cell.coordinate, location=f"'{sheet}'!A1")
    else:
        cell.hyperlink = url
    cell.font = Font(name="Calibri", color="0563C1", underline="single")


def _start_sheet(wb, inputs: dict, namespace: str | None = None) -> None:
    wb.remove(wb["Start"])
    ws = wb.create_sheet("Start", 0)
    ws.column_dimensions["A"].width = 20
    ws.column_dimensions["B"].width = 16
    ws.column_dimensions["C"].width = START_TEXT_WIDTH
    server = namespace is not None
    shown = f"{namespace}.FLASSO_FIT" if namespace else "FLASSO_FIT"
    title = ws.cell(row=1, column=1, value="xl-factorlasso template"
                    + (" for the server add-in" if server else ""))
    title.font = Font(name="Calibri", bold=True, size=16)
    ws.row_dimensions[1].height = 21  # the 16-point title
    r = _write_rows(ws, [
        (["Sparse, sign-constrained factor models (LASSO, UniLasso, group, HCGL, FCGL, "
          "cooperative) and maximum-diversification portfolios in Excel, computed by Python "
          "through xlwings."],
         None),
        ([f"Sample data: {inputs['description']}. Replace the yellow inputs with your own."],
         Font(name="Calibri", bold=True, color="C00000")),
    ], start_row=2)
    r += 1
    ws.cell(row=r, column=1, value="Set up once").font = HEADING
    setup = [
        (["Python", "", "Python 3.11 or newer on this computer (python.org)"], None),
        (["xl-factorlasso", "package", f"pip install {WHEEL}   (the wheel file you were given, "
          "built by make dist in the source repository; not published on PyPI)"], None),
    ]
    if server:
        setup.append((["server add-in", "Office.js", "xl-factorlasso serve   (on the computer "
                       "or server that computes; then load its add-in in Excel: "
                       "server.md of the user guide)"], None))
    else:
        setup.append((["xlwings add-in", "desktop", "xlwings addin install   (then restart "
                       "Excel: an xlwings tab appears; the ribbon buttons and the desktop "
                       "functions need it)"], None))
    setup += [
        (["Fresh copy", "", "xl-factorlasso template --macro BOOK.xlsm   (with the ribbon)   "
          "xl-factorlasso template BOOK.xlsx   (desktop functions, no macros)   "
          "xl-factorlasso template --server BOOK.xlsx   (server add-in)"], None),
        (["", "", "add --data sp500 for real S&P 500 sample data, or leave it out for the "
          "synthetic sample (xl-factorlasso template --help)"], None),
    ]
    r = _write_rows(ws, setup, start_row=r + 1)
    r += 1
    ws.cell(row=r, column=1, value="How to run").font = HEADING
    functions = (
        (["Functions", "server add-in", f"worksheet functions such as {shown}(FL_RETURNS,"
          "FL_FACTORS) of the add-in of xl-factorlasso serve: working examples on the "
          "Formulas sheet (#NAME? until the add-in is loaded)"], None) if server else
        (["Functions", "Excel 365", "worksheet functions such as FLASSO_FIT(FL_RETURNS,"
          "FL_FACTORS): working examples on the Formulas sheet. Desktop: the xlwings.conf "
          "sheet sets UDF Modules = xl_factorlasso.udfs; click Import Functions on the xlwings "
          "tab once."], None))
    run = [
        (["Ribbon", "desktop", "the .xlsm (xl-factorlasso template --macro): tab Factor LASSO "
          "(buttons below). Open it, enable macros; Help on the tab works without Python, the "
          "other buttons run it."], None),
        functions,
        (["Command line", "no Excel", "xl-factorlasso refit THIS_FILE --cv --portfolio   "
          "(xl-factorlasso inspect THIS_FILE lists the names and checks every input)"], None),
        (["Server add-in", "Office.js", "the add-in of xl-factorlasso serve: the same buttons "
          "in its own ribbon tab; its functions are FACTORLASSO.FLASSO_*, which only the "
          "server template's Formulas sheet calls (xl-factorlasso template --server)"], None),
    ]
    if server:
        run = [run[1], run[3], run[2]]
    r = _write_rows(ws, run, start_row=r + 1)
    r += 1
    ws.cell(row=r, column=1, value="Ribbon buttons").font = HEADING
    r = _write_rows(ws, [
        (["Refit", "", "fits the factor model on FL_RETURNS and FL_FACTORS with FL_SETTINGS, "
          "FL_SIGNS and FL_PRIOR; writes FL_COEF (+ heatmap), FL_DERIVED_SIGNS, "
          "FL_PRIOR_USED, FL_R2, FL_INTERCEPT, FL_CLUSTERS, FL_RESID_VOL and FL_STATUS"], None),
        (["Cross-validate", "", "chooses reg_lambda by expanding-window cross-validation "
          "(cv_* settings), refits with it and also writes FL_CV"], None),
        (["Optimise portfolio", "", "maximum-diversification weights under "
          "FL_PORTFOLIO_SETTINGS, FL_CONSTRAINTS and FL_ASSET_GROUPS; writes FL_WEIGHTS, "
          "FL_PORTFOLIO_STATS and the risk attribution FL_RISK, FL_RISK_ASSETS"], None),
        (["Backtest", "", "re-fits the model at every rebalancing date of FL_ROLLING_SETTINGS "
          "(on the data up to that date only) and backtests the portfolio on it against the "
          "benchmarks; writes FL_BETA_HISTORY, FL_R2_HISTORY, FL_RESID_VOL_HISTORY, "
          "FL_CLUSTER_HISTORY, FL_WEIGHT_HISTORY, FL_BACKTEST and FL_BACKTEST_STATS"], None),
        (["Clear outputs", "", "empties every FL_* output range (inputs are not touched)"],
         None),
        (["Help", "", "a summary of the above"], None),
    ], start_row=r + 1)
    r += 1
    ws.cell(row=r, column=1, value="Sheets").font = HEADING
    tags = ", ".join(dict.fromkeys(str(v) for v in inputs["asset_groups"].iloc[:, 0]))
    sheets = [
        ("Returns", "input", "FL_RETURNS (table tblReturns): dates down, assets across; a "
         "blank cell is a missing return"),
        ("Factors", "input", "FL_FACTORS (table tblFactors): factor returns on the same dates"),
        ("Signs", "input", "FL_SIGNS: blank = free, 0 = zero, 1 or + = non-negative, -1 or - "
         "= non-positive"),
        ("Prior", "input", "FL_PRIOR: loadings the penalty shrinks towards (blank = 0)"),
        ("Settings", "input", "FL_SETTINGS (model and cross-validation, with dropdowns and "
         "help), FL_GROUPS (asset groups for GROUP_LASSO), FL_PRIOR_FACTOR (the factor or "
         "two an asset's OLS prior is taken on) and FL_EXCLUDED (loadings pinned to 0)"),
        ("Results", "output", "FL_COEF: the fitted loadings and their heatmap"),
        ("DerivedSigns", "output", "FL_DERIVED_SIGNS: the sign the fit imposed on each loading "
         "(FL_SIGNS, with blanks filled by auto_sign_constraints)"),
        ("PriorUsed", "output", "FL_PRIOR_USED: the prior centre each loading was shrunk "
         "towards (the OLS prior with FL_PRIOR over it; blank without a prior)"),
        ("Diagnostics", "output", "FL_STATUS, FL_R2, FL_INTERCEPT, FL_CLUSTERS, FL_RESID_VOL"),
        ("CV", "output", "FL_CV: out-of-sample R^2 per lambda and fold, the best lambda"),
        ("Portfolio", "in + out", "FL_PORTFOLIO_SETTINGS, FL_CONSTRAINTS, FL_PREV_WEIGHTS in; "
         "FL_WEIGHTS, FL_PORTFOLIO_STATS out"),
        ("AssetGroups", "input", f"FL_ASSET_GROUPS: tags of each asset ({tags}) usable in "
         "FL_CONSTRAINTS"),
        ("Risk", "output", "FL_RISK, FL_RISK_ASSETS: the portfolio's risk by factor and by "
         "asset (Optimise portfolio)"),
        ("ExposureBudget", "input", "FL_EXPOSURE_BUDGET: exposure budgets of the OLS prior's "
         "floors (blank = none; needs apply_ols_prior)"),
        ("Rolling", "input", "FL_ROLLING_SETTINGS: when to re-fit and rebalance, the "
         "benchmarks and the trading cost of Backtest (with dropdowns and help)"),
        ("Backtest", "output", "FL_BACKTEST_STATS, and FL_BACKTEST under it: each strategy's "
         "net return, cumulative return and drawdown, with their chart"),
        ("WeightHistory", "output", "FL_WEIGHT_HISTORY: the factor strategy's weights at "
         "each rebalancing date"),
        ("BetaHistory", "output", "FL_BETA_HISTORY: every loading at every date (date, asset, "
         "factor, beta: ready for a PivotTable) and a picture of one factor's loadings"),
        ("R2History", "output", "FL_R2_HISTORY: each asset's R^2 at each date"),
        ("ResidVolHistory", "output", "FL_RESID_VOL_HISTORY: each asset's residual "
         "volatility at each date"),
        ("ClusterHistory", "output", "FL_CLUSTER_HISTORY: each asset's cluster at each date "
         "(cluster models)"),
        ("Formulas", "examples", "working =FLASSO_* formulas on the FL_* names"
         + (f", written for the server add-in ({shown})" if server else "")
         + ": the fit; each answer has room to spill however large the data"),
        ("Formulas CV", "examples", "FLASSO_CV and FLASSO_BEST_LAMBDA"),
        ("Formulas Portfolio", "examples", "FLASSO_MAXDIV, FLASSO_RISK, FLASSO_RISK_ASSETS "
         "and FLASSO_COV"),
        ("Formulas History", "examples", "FLASSO_BETA_HISTORY"),
        ("xlwings.conf", "settings", "read by the xlwings add-in: UDF Modules = "
         "xl_factorlasso.udfs (add Interpreter_Win / Interpreter_Mac rows to pick a Python)"),
    ]
    r += 1
    for name, role, what in sheets:
        _link(ws.cell(row=r, column=1, value=name), sheet=name)
        ws.cell(row=r, column=2, value=role)
        ws.cell(row=r, column=3, value=what)
        r += 1
    r += 1
    ws.cell(row=r, column=1, value="Colours and rules").font = HEADING
    r += 1
    ws.cell(row=r, column=1, value="input").fill = INPUT_FILL
    ws.cell(row=r, column=3, value="a value you set (settings, signs, prior, constraints, ...)")
    r += 1
    ws.cell(row=r, column=1, value="output").fill = OUTPUT_FILL
    ws.cell(row=r, column=3, value="the header row of an output range, written by a run")
    r = _write_rows(ws, [
        (["tables", "", "every input is an Excel table (tblReturns, tblSettings, ...; Table "
          "Design shows its name) and its name FL_* refers to the whole table: paste weeks "
          "under the returns or type an asset beside them and the table, and the name, grow"],
         None),
        (["names", "", "every range is a workbook name FL_* (Formulas > Name Manager): move "
          "an output by editing its name, an input by moving its table; the code follows the "
          "names"], None),
        (["runs", "", "a run reads every input first; a problem is reported with its range and "
          "cell and nothing is written; otherwise only the output names change"], None),
    ], start_row=r + 1)
    r += 1
    ws.cell(row=r, column=1, value="Documentation").font = HEADING
    r += 1
    ws.cell(row=r, column=1, value="user guide")
    ws.cell(row=r, column=2, value="installed")
    ws.cell(row=r, column=3, value="xl-factorlasso --help prints its folder: index.md (a "
            "five-minute tour), install.md (setup, troubleshooting), functions.md (every "
            "FLASSO_* function), workbook.md (the FL_* names)")
    r += 1
    ws.cell(row=r, column=1, value="xlwings add-in")
    _link(ws.cell(row=r, column=3, value=XLWINGS_ADDIN_DOCS), url=XLWINGS_ADDIN_DOCS)
    if "licence" in inputs:
        _data_source(ws, r + 2, inputs)
    # the two lines under the title run across A:C; every text of C wraps in its column
    for row in (2, 3):
        ws.merge_cells(start_row=row, start_column=1, end_row=row, end_column=3)
    _wrap_rows(ws, {1: 20 + 16 + START_TEXT_WIDTH}, rows=(2, 3))
    _wrap_rows(ws, {3: START_TEXT_WIDTH}, rows=range(4, ws.max_row + 1))


def _wrapped_lines(text: str, width: float, text_width) -> int:
    """The lines ``text`` takes in a wrapping cell ``width`` characters wide: words are
    placed greedily, as Excel does; ``text_width`` matches Calibri (Carlito) within about 2%,
    so a line holds 97% of the width."""
    room, lines, used = 0.97 * width, 1, 0.0
    for word in text.split(" "):
        w = text_width(word)
        if used and used + text_width(" ") + w > room:
            lines, used = lines + 1 + int(w // room), w % room
        else:
            used += (text_width(" ") if used else 0.0) + w
    return lines


def _wrap_rows(ws, widths: dict[int, float], rows) -> None:
    """Wrap the text of the given columns (column -> width in characters) in ``rows`` and make
    each row tall enough for its lines. Excel and LibreOffice both keep a stored row height, so
    the sheet looks the same in each (the lines are estimated from the text's width)."""
    from openpyxl.styles import Alignment

    from xl_factorlasso.workbook._formats import text_width

    for r in rows:
        lines = 1
        for col, width in widths.items():
            cell = ws.cell(row=r, column=col)
            if not isinstance(cell.value, str):
                continue
            lines = max(lines, _wrapped_lines(cell.value, width, text_width))
            cell.alignment = Alignment(wrap_text=True, vertical="top")
        if lines > 1:
            ws.row_dimensions[r].height = 15 * lines
        for cell in ws[r]:  # the other cells of the row at the top too, blank ones included:
            if not cell.alignment.wrap_text:  # a value typed later sits beside its key
                cell.alignment = Alignment(vertical="top")


def _data_source(ws, r: int, inputs: dict) -> None:
    """Where the sample data come from, and the licence they are redistributed under."""
    ws.cell(row=r, column=1, value="Sample data: source and licence").font = HEADING
    r += 1
    for label, text in inputs["source"]:
        ws.cell(row=r, column=1, value=label)
        ws.cell(row=r, column=3, value=text)
        r += 1
    ws.cell(row=r, column=1, value="skfolio datasets")
    _link(ws.cell(row=r, column=3, value=inputs["web"]), url=inputs["web"])
    r += 2
    for line in inputs["licence"].splitlines():
        if line.strip():  # the licence's paragraphs, each in one cell
            ws.cell(row=r, column=3, value=line).font = NOTE_FONT
        r += 1


def _settings_help(ws, rows, help_column: int | None) -> None:
    """Dropdowns and input messages on the value cells of a key | value input range."""
    ws.data_validations.dataValidation = []  # replaced by one validation per key below
    keys = {ws.cell(row=r, column=1).value: r for r in range(1, ws.max_row + 1)}
    for key, _value, text, choices in rows:
        r = keys[key]
        cell = ws.cell(row=r, column=2)
        if choices:
            dv = DataValidation(type="list", formula1='"' + ",".join(choices) + '"',
                                allow_blank=True)
            # cv_lambdas also takes numbers: suggest, do not refuse
            dv.showErrorMessage = key != "cv_lambdas"
            dv.error = f"{key}: choose one of {', '.join(choices)} (or leave it blank)"
            dv.errorTitle = "xl-factorlasso"
        else:
            dv = DataValidation(allow_blank=True)
        dv.showInputMessage = True
        dv.promptTitle = key[:32]
        dv.prompt = text[:255]
        dv.add(cell.coordinate)
        ws.add_data_validation(dv)
        if help_column is not None:
            ws.cell(row=r, column=help_column, value=text).font = NOTE_FONT
    # the longest key (auto_sign_adaptive_weights) shown whole: no cut label
    ws.column_dimensions["A"].width = stored_width(fitted_width(
        [key for key in keys if isinstance(key, str)], min_width=22))
    ws.column_dimensions["B"].width = 14
    if help_column is not None:
        ws.cell(row=1, column=help_column, value="what it does (blank value = default)").font = BOLD
        ws.column_dimensions[openpyxl.utils.get_column_letter(help_column)].width = HELP_WIDTH
        _wrap_rows(ws, {help_column: HELP_WIDTH}, rows=[keys[key] for key, *_ in rows])


def _formulas_sheets(wb, inputs: dict, namespace: str | None = None) -> None:
    """The Formulas sheets (:data:`FORMULA_SHEETS`), their formulas written for the desktop
    add-in (``namespace`` None) or for the server add-in with that namespace (see
    :func:`formulas_for`), laid out so that no answer can spill into another (:data:`GROWS`)."""
    if namespace is None:
        addin = ("These formulas are written for the desktop add-in: xlwings add-in, UDF "
                 "Modules = xl_factorlasso.udfs (sheet xlwings.conf), xlwings tab > Import "
                 "Functions once (it adds VBA wrappers to the workbook: use the .xlsm or save "
                 "as .xlsm).")
        other = ("The server add-in (xl-factorlasso serve) names the functions "
                 "FACTORLASSO.FLASSO_FIT(...): with it these cells show #NAME?; use the workbook "
                 "written for that add-in (xl-factorlasso template --server BOOK.xlsx).")
    else:
        shown = f"{namespace}.FLASSO_FIT" if namespace else "FLASSO_FIT"
        addin = (f"These formulas are written for the server add-in (xl-factorlasso serve), "
                 f"whose functions are {shown}(...) and the others of its namespace.")
        other = ("Until the add-in is loaded the cells show #NAME?. The desktop add-in (xlwings) "
                 f"names them FLASSO_FIT(...), not {shown}(...): use the desktop template there "
                 "(xl-factorlasso template --macro BOOK.xlsm).")
    others = ", ".join(name for name in FORMULA_SHEET_NAMES[1:])
    room = ("Each answer has the cells it can fill to itself, however many assets, factors or "
            "dates the inputs hold: nothing below an answer with a row per asset, nothing to "
            "the right of one with a column per asset. So the examples stand side by side, and "
            "each answer that grows both ways has its own sheet's corner: FLASSO_FIT here, the "
            f"others on the sheets {others}.")
    notes = {
        "Formulas": [
            "Each formula spills its result (Excel 365 / 2021). " + addin,
            other,
            "Formulas on the same inputs share one fit (the results are cached on the cell "
            "values). Each one equals what the ribbon's Refit, Cross-validate or Optimise "
            "portfolio writes for the same inputs. Reference: the user guide's functions page "
            "(xl-factorlasso --help shows where it is installed).",
            room,
        ],
    }
    by_name = {f[0]: f for f in formulas_for(namespace)}
    assert sorted(by_name) == sorted(GROWS)
    assert sorted(n for *_, names in FORMULA_SHEETS for n in names) == sorted(GROWS)
    values = _name_values(wb)  # the names -> 2-D lists, as the classic add-in passes them
    for title, heading, names in FORMULA_SHEETS:
        ws = wb.create_sheet(title)
        ws.column_dimensions["A"].width = 16
        ws["A1"] = heading
        ws["A1"].font = Font(name="Calibri", bold=True, size=14)
        texts = notes.get(title, [
            "Written as those of the Formulas sheet (its notes say for which add-in). Each "
            "answer has the cells below it and to its right to itself, so that it spills "
            "whatever the size of the data."])
        for i, text in enumerate(texts, start=2):
            ws.cell(row=i, column=1, value=text).font = NOTE_FONT
        _formulas_on(ws, len(texts) + 3, [by_name[n] for n in names], inputs, values,
                     namespace)


def _formulas_on(ws, r: int, entries, inputs: dict, values: dict,
                 namespace: str | None) -> None:
    """Lay ``entries`` out on ``ws`` from row ``r`` (see :data:`GROWS`): first the fixed and
    the "right" ones one under the other, each under its title and formula (FLASSO_PREDICT and
    FLASSO_RETURNS under their input panels); then, where there are "down" ones, a list of the
    rest (title, formula and cell) and a row of their answers side by side, the one that grows
    both ways last; without "down" ones that one is written as the others, last."""
    from xl_factorlasso import udfs

    shown: dict[int, list[str]] = {}  # column -> what its cells display, to size it
    labels: list[str] = []  # what answers show in column A (its titles may run over: not sized)
    written = []  # (name, anchor row, column, answer, number format) of each example

    def answer(name, formula):
        panel = None
        if "{scenarios}" in formula:  # the last weeks of the factor returns
            code = "0.0000"
            panel, rows, at = _input_panel(
                ws, r, "Scenario factor values for FLASSO_PREDICT (input)",
                inputs["factors"].iloc[-SCENARIO_ROWS:], code)
        elif "{prices}" in formula:  # prices that compound the last weeks of the returns
            code = "0.00"
            panel, rows, at = _input_panel(
                ws, r, "Prices for FLASSO_RETURNS (input: 100 compounded with the last "
                "weeks of FL_RETURNS)", price_panel(inputs["returns"]), code)
        if panel is None:
            at = r
        else:
            values[panel] = rows
            for i, row in enumerate(rows):  # its names and numbers readable too
                for j, v in enumerate(row[1:], start=2):
                    shown.setdefault(j, []).append(display_text(v, code if i else "General"))
        formula = formula.format(scenarios=panel, prices=panel)
        result = evaluate_formula(formula, values, udfs, namespace)
        if not isinstance(result, list):
            result = [[result]]
        if str(result[0][0]).startswith("#"):
            raise RuntimeError(f"{formula} does not work on the template: {result}")
        if GROWS[name] == "down" and max(map(len, result)) > DOWN_WIDTH[name]:
            raise RuntimeError(f"{name}: {max(map(len, result))} columns > DOWN_WIDTH")
        return formula, result, at

    def write(name, anchor_row, col, formula, result, number_format):
        anchor = f"{openpyxl.utils.get_column_letter(col)}{anchor_row}"
        stored = formula
        if namespace is not None:  # as Excel saves an Office.js custom function
            from xl_factorlasso.server import namespaced_formula

            stored = namespaced_formula(formula, namespace, stored=True)
        ws[anchor] = ArrayFormula(anchor, "=" + stored)
        if number_format:  # the spilled numbers take the format of the cells they land in
            codes = [number_format] if isinstance(number_format, str) else number_format
            body = [(0, 0)] if len(result) == 1 == len(result[0]) else [
                (i, j) for i in range(1, len(result)) for j in range(1, len(result[i]))]
            for i, j in body:
                code = codes[min(max(j - 1, 0), len(codes) - 1)]
                ws.cell(row=anchor_row + i, column=col + j).number_format = code
        if name in FIRST_COLUMN_FORMATS:
            for i in range(1, len(result)):
                ws.cell(row=anchor_row + i, column=col).number_format = FIRST_COLUMN_FORMATS[name]
        written.append((name, anchor_row, col, result, number_format))
        by_label = LABELLED_ROW_FORMATS.get(name, {})
        if by_label:
            _labelled_row_formats(ws, anchor_row + 1, col, len(result[0]), by_label)
        for i, row in enumerate(result):
            for j, v in enumerate(row):
                cell = ws.cell(row=anchor_row + i, column=col + j)
                if hasattr(v, "year"):  # a date spilled by FLASSO_PREDICT / FLASSO_RETURNS
                    cell.number_format = "yyyy-mm-dd"
                # a labelled row shows its conditional format's
                code = by_label.get(row[0], cell.number_format) if j else cell.number_format
                if col + j > 1:  # column A also holds the long titles: sized apart
                    shown.setdefault(col + j, []).append(display_text(v, code))
                else:
                    labels.append(display_text(v, code))
        return anchor

    down = [e for e in entries if GROWS[e[0]] == "down"]
    corner = [e for e in entries if GROWS[e[0]] == "both"]
    if len(corner) > 1 or (corner and entries[-1] is not corner[0]):
        raise RuntimeError(f"{ws.title}: one answer that grows both ways, last: {corner}")
    stacked = [e for e in entries if GROWS[e[0]] in (None, "right")]
    if not down:
        stacked += corner
    for name, what, formula, number_format in stacked:
        formula, result, r = answer(name, formula)
        ws.cell(row=r, column=1, value=f"{name}: {what}").font = BOLD
        ws.cell(row=r + 1, column=1, value=f"formula in A{r + 2}:  ={formula}").font = NOTE_FONT
        write(name, r + 2, 1, formula, result, number_format)
        r += 2 + len(result) + 1  # its answer, then a blank row
    if down:
        side = down + corner
        answers = [answer(name, formula)[:2] for name, _w, formula, _f in side]
        cols, col = [], 1
        for name, *_ in side:
            cols.append(col)
            col += DOWN_WIDTH.get(name, 0) + 1  # its widest answer, then an empty column
        ws.cell(row=r, column=1, value="Side by side below, each spilling down from its cell "
                "(the last also to the right):").font = BOLD
        r += 1
        top = r + 2 * len(side) + 1  # the row of the function names, their formulas under it
        for (name, what, *_), (formula, _result), c in zip(side, answers, cols, strict=True):
            at = f"{openpyxl.utils.get_column_letter(c)}{top + 1}"
            ws.cell(row=r, column=1, value=f"{name}: {what}").font = BOLD
            ws.cell(row=r + 1, column=1, value=f"formula in {at}:  ={formula}").font = NOTE_FONT
            r += 2
        for (name, _w, _f, number_format), (formula, result), c in zip(side, answers, cols,
                                                                       strict=True):
            ws.cell(row=top, column=c, value=name).font = BOLD
            write(name, top + 1, c, formula, result, number_format)
    for col, texts in shown.items():  # every spilled value readable: no ###, no cut label
        letter = openpyxl.utils.get_column_letter(col)
        ws.column_dimensions[letter].width = stored_width(fitted_width(texts, max_width=30.0))
    if labels:  # (FLASSO_MAXDIV's "effective_number_assets" was cut at 16)
        ws.column_dimensions["A"].width = max(ws.column_dimensions["A"].width,
                                              stored_width(fitted_width(labels, max_width=30.0)))
    for name, anchor_row, col, result, number_format in written:  # after the widths: they
        _spill_formats(ws, name, anchor_row, col, result, number_format)  # size new columns


def _spill_formats(ws, name: str, top: int, col: int, result: list, number_format) -> None:
    """Give the cells an answer may spill into beyond its size on the template the formats of
    its cells of the same kind, so that more assets, factors or dates read as the template's.

    Its room (:data:`GROWS`) is formatted, not cell by cell: a "down" answer's columns
    (:data:`DOWN_WIDTH`) and a corner answer's columns to the sheet's right edge get column
    styles, a "right" answer's rows row styles. Excel and LibreOffice show a cell that is not
    stored (as a spilled value's) in its row's style, else its column's; the cells stored above
    or beside the room (titles, the other examples) keep their own. New columns of a corner take
    the width of its widest column on the template.

    Parameters
    ----------
    ws : openpyxl.worksheet.worksheet.Worksheet
        A Formulas sheet, its column widths already set.
    name : str
        The function (a key of :data:`GROWS`).
    top, col : int
        The answer's anchor cell (1-based row and column).
    result : list of lists
        The answer on the template's data.
    number_format : str, list or None
        Its format, as in :data:`FORMULAS`.
    """
    grows, first = GROWS[name], FIRST_COLUMN_FORMATS.get(name)
    if grows is None or not (number_format or first):
        return
    codes = ([number_format] if isinstance(number_format, str) else list(number_format)
             if number_format else [])
    template_cols = max(map(len, result))
    if grows == "right":  # its rows, to the sheet's edge: nothing is to their right
        for i in range(1, len(result)):
            if codes:
                ws.row_dimensions[top + i].number_format = codes[-1]
            for j in range(template_cols, len(codes)):  # a list longer than the template's
                ws.cell(row=top + i, column=col + j).number_format = codes[j - 1]
        return
    letter = openpyxl.utils.get_column_letter
    widths = [ws.column_dimensions[letter(c)].width for c in range(col + 1, col + template_cols)
              if letter(c) in ws.column_dimensions]
    width = max(widths, default=None)
    if first:
        _column_style(ws, col, col, first, width)
    if codes:
        last = col + DOWN_WIDTH[name] - 1 if grows == "down" else EXCEL_COLUMNS
        # a code per column, the last one repeating to the answer's last column
        for j in range(1, min(len(codes), last - col + 1)):
            _column_style(ws, col + j, col + j, codes[j - 1], width)
        _column_style(ws, col + len(codes), last, codes[-1], width)


def _column_style(ws, first: int, last: int, code: str, width: float | None) -> None:
    """Number format ``code`` as the style of columns ``first`` to ``last``: on the columns that
    have a width already, one by one, and as ranges (``<col min max>``) between them, ``width``
    wide. openpyxl writes every column dimension it holds, so none is created that is not
    wanted; Excel wants the ranges apart, hence one dimension per gap."""
    letter = openpyxl.utils.get_column_letter
    index = openpyxl.utils.column_index_from_string
    held = []
    for key, dim in ws.column_dimensions.items():
        lo = dim.min or index(key)
        hi = dim.max or lo
        if not (hi < first or last < lo):
            if hi > lo:
                raise RuntimeError(f"{ws.title}: columns {lo}-{hi} are styled already")
            held.append(lo)
    held.sort()
    start = first
    for c in [*held, last + 1]:
        if start < c:  # the gap start .. c - 1
            dim = ws.column_dimensions[letter(start)]
            dim.min, dim.max = start, c - 1
            dim.number_format = code
            if width:
                dim.width = width
        if c <= last:
            ws.column_dimensions[letter(c)].number_format = code
        start = c + 1


def _labelled_row_formats(ws, top: int, col: int, width: int, formats: dict[str, str]) -> None:
    """Conditional number formats on the value columns of an answer anchored in column ``col``,
    from row ``top`` to the sheet's edge: a row whose label (column ``col``) is a key of
    ``formats`` shows that format, wherever the answer's size puts it. Labels that share a
    format share one rule."""
    from openpyxl.formatting.rule import Rule
    from openpyxl.styles.differential import DifferentialStyle
    from openpyxl.styles.numbers import (
        BUILTIN_FORMATS_MAX_SIZE,
        BUILTIN_FORMATS_REVERSE,
        NumberFormat,
    )

    letter = openpyxl.utils.get_column_letter
    area = f"{letter(col + 1)}{top}:{letter(col + width - 1)}{EXCEL_ROWS}"
    by_code: dict[str, list[str]] = {}
    for label, code in formats.items():
        by_code.setdefault(code, []).append(label)
    for code, labels in by_code.items():
        # the id the workbook's own table gives the code, so that Excel reads one meaning for it
        # (openpyxl numbers custom formats 164 + their index in wb._number_formats)
        fmt_id = BUILTIN_FORMATS_REVERSE.get(code)
        if fmt_id is None:
            fmt_id = BUILTIN_FORMATS_MAX_SIZE + ws.parent._number_formats.add(code)
        test = ",".join(f'${letter(col)}{top}="{label}"' for label in labels)
        formula = f"OR({test})" if len(labels) > 1 else test
        dxf = DifferentialStyle(numFmt=NumberFormat(numFmtId=fmt_id, formatCode=code))
        ws.conditional_formatting.add(area, Rule(type="expression", dxf=dxf, formula=[formula]))


PRICE_ROWS = 4  # returns of the last weeks given back by FLASSO_RETURNS on the Formulas sheet


def price_panel(returns: pd.DataFrame, n: int = PRICE_ROWS) -> pd.DataFrame:
    """Prices whose simple returns are the last ``n`` rows of ``returns``: 100 on the date before
    them, compounded. Assets with a missing return in those rows are left out (a price panel
    with a gap would not give the returns back)."""
    tail = returns.iloc[-n - 1:]
    tail = tail.loc[:, tail.iloc[1:].notna().all()]
    growth = (1.0 + tail.iloc[1:]).cumprod()
    base = pd.DataFrame(1.0, index=tail.index[:1], columns=tail.columns)
    return 100.0 * pd.concat([base, growth])


def _input_panel(ws, r: int, title: str, frame: pd.DataFrame, number_format: str | None):
    """Write a dates x names panel under a title at row ``r``; returns its address, its rows as
    the functions see them and the next free row."""
    ws.cell(row=r, column=1, value=title).font = BOLD
    top = r + 1
    rows = [["date", *map(str, frame.columns)]]
    rows += [[d.to_pydatetime(), *map(float, v)]
             for d, v in zip(frame.index, frame.to_numpy(), strict=True)]
    for i, values in enumerate(rows):
        for j, v in enumerate(values):
            c = ws.cell(row=top + i, column=1 + j, value=v)
            if i == 0 or j == 0:
                c.font = BOLD
            else:
                c.fill = INPUT_FILL
                if number_format:
                    c.number_format = number_format
            if j == 0 and i > 0:
                c.number_format = "yyyy-mm-dd"
    last_col = openpyxl.utils.get_column_letter(len(rows[0]))
    address = f"A{top}:{last_col}{top + len(rows) - 1}"
    return address, rows, top + len(rows) + 1


def _name_values(wb) -> dict[str, list[list]]:
    """Every defined name -> the rows of its cells; a name on a table (``=tblReturns[#All]``)
    is the whole table, as the add-ins pass it."""
    tables = {t.name.lower(): (ws.title, t.ref) for ws in wb.worksheets
              for t in ws.tables.values()}
    out = {}
    for name, dn in wb.defined_names.items():
        on_table = re.fullmatch(r"(\w+)\[#All\]", dn.attr_text.strip(), re.IGNORECASE)
        if on_table:
            sheet, ref = tables[on_table.group(1).lower()]
        else:
            ((sheet, ref),) = list(dn.destinations)
        ws = wb[sheet]
        out[name] = [[c.value for c in row] for row in ws[ref.replace("$", "")]]
    return out


# =============================================================================== formulas in Python
# A small evaluator of the formulas this project writes and documents (the Formulas sheet,
# docs/functions.md): function calls (nested), omitted arguments, names and ranges, numbers,
# "text", TRUE/FALSE and one comparison (=, <>), with the few Excel functions the documentation
# combines with FLASSO_*: INDEX, MATCH, XMATCH, ISTEXT, ISNUMBER, LEFT. Excel's error values
# are returned as their text ("#N/A"), as xlwings' err_to_str reads them.
_TOKEN = re.compile(r"""
    \s*(?:
      (?P<string>"(?:[^"]|"")*")
    | (?P<ref>(?:'(?:[^']|'')+'|[A-Za-z_][\w.]*)?!?\$?[A-Za-z]{1,3}\$?\d+:\$?[A-Za-z]{1,3}\$?\d+)
    | (?P<number>\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)
    | (?P<name>[A-Za-z_][\w.]*(?:!\$?[A-Za-z]{1,3}\$?\d+)?)
    | (?P<op><>|[-=(),])
    )""", re.VERBOSE)
_OMITTED = object()  # an argument left out: =F(a,,b)
NA, VALUE, NAME = "#N/A", "#VALUE!", "#NAME?"


def _tokens(formula: str) -> list[tuple[str, str]]:
    text, pos, out = formula.strip(), 0, []
    if text.startswith("="):
        pos = 1
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if m is None:
            raise ValueError(f"cannot read {text[pos:]!r} of the formula {formula!r}")
        kind = m.lastgroup
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def _split_top(tokens: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """The comma-separated parts of a token list, commas inside parentheses kept."""
    parts, depth, current = [], 0, []
    for kind, text in tokens:
        if kind == "op" and text == "," and depth == 0:
            parts.append(current)
            current = []
            continue
        if kind == "op" and text == "(":
            depth += 1
        elif kind == "op" and text == ")":
            depth -= 1
        current.append((kind, text))
    parts.append(current)
    return parts


def split_formula(formula: str) -> tuple[str, list[str]]:
    """``"F(a,,G(b,c))"`` -> ``("F", ["a", "", "G(b,c)"])``: the outer call and its arguments."""
    tokens = _tokens(formula)
    if (len(tokens) < 3 or tokens[0][0] != "name" or tokens[1] != ("op", "(")
            or tokens[-1] != ("op", ")")):
        raise ValueError(f"not a function call: {formula}")
    inner = tokens[2:-1]
    if not inner:
        return tokens[0][1], []
    return tokens[0][1], ["".join(text for _kind, text in part) for part in _split_top(inner)]


def flasso_name(name: str, namespace: str | None = None) -> str | None:
    """The FLASSO_* function a formula's function name calls, or None.

    Without ``namespace`` (the desktop add-in) the name is ``FLASSO_FIT``; with the server
    add-in's namespace ``NS`` it is ``NS.FLASSO_FIT`` as typed, or ``_xldudf_NS_FLASSO_FIT`` as
    an .xlsx file stores an Office.js custom function.
    """
    upper = name.upper()
    if namespace is None:
        prefixes = [""]
    else:
        ns = namespace.upper()
        prefixes = [f"{ns}." if ns else "", f"_XLDUDF_{ns}_" if ns else "_XLDUDF_"]
    for prefix in prefixes:
        rest = upper[len(prefix):] if upper.startswith(prefix) else None
        if rest is not None and re.fullmatch(r"FLASSO_[A-Z0-9_]+", rest):
            return rest
    return None


def _excel_value(v):
    """A cell value as Excel hands it to a function: every number a float."""
    if isinstance(v, int) and not isinstance(v, bool):
        return float(v)
    return v


def _rows_of(value) -> list[list]:
    return value if isinstance(value, list) else [[value]]


def _index(array, row=_OMITTED, col=_OMITTED):
    rows = _rows_of(array)
    r = 0 if row in (_OMITTED, None) else int(row)
    c = 0 if col in (_OMITTED, None) else int(col)
    if len(rows) == 1 and col is _OMITTED and r:  # INDEX(one row, n): the n-th value
        r, c = 1, r
    if r < 0 or c < 0 or r > len(rows) or c > max(len(x) for x in rows):
        return "#REF!"
    if r and c:
        return rows[r - 1][c - 1]
    if r:
        return [list(rows[r - 1])]
    if c:
        return [[x[c - 1]] for x in rows]
    return rows


def _same(a, b) -> bool:
    """Excel's = : text case-insensitively, numbers by value, a blank equal to "" or 0."""
    if isinstance(a, str) and isinstance(b, str):
        return a.lower() == b.lower()
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if a is None or b is None:
        return (a if b is None else b) in (None, "", 0)
    if isinstance(a, str) or isinstance(b, str):
        return False
    return float(a) == float(b)


def _vector(array) -> list:
    rows = _rows_of(array)
    if len(rows) == 1:
        return list(rows[0])
    if all(len(r) == 1 for r in rows):
        return [r[0] for r in rows]
    raise ValueError("MATCH needs one row or one column")


def _match(value, array, mode=1.0):
    if mode in (_OMITTED, None) or float(mode) != 0:
        raise ValueError("only MATCH(..., 0) (exact match) is supported")
    hits = [i for i, v in enumerate(_vector(array), start=1) if _same(v, value)]
    return float(hits[0]) if hits else NA


def _xmatch(value, array, mode=_OMITTED, search=_OMITTED):
    if mode not in (_OMITTED, None) and float(mode) != 0:
        raise ValueError("only exact XMATCH is supported")
    hits = [i for i, v in enumerate(_vector(array), start=1) if _same(v, value)]
    if not hits:
        return NA
    last = search not in (_OMITTED, None) and float(search) == -1
    return float(hits[-1] if last else hits[0])


_EXCEL = {
    "INDEX": _index,
    "MATCH": _match,
    "XMATCH": _xmatch,
    "ISTEXT": lambda v: isinstance(v, str),
    "ISNUMBER": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "LEFT": lambda text, n=1.0: text[: int(n)] if isinstance(text, str) else VALUE,
}


class _Evaluator:
    def __init__(self, values: dict, udfs, namespace: str | None):
        self.values = {k.upper(): v for k, v in values.items()}
        self.udfs, self.namespace = udfs, namespace

    def expression(self, tokens):
        for i, (kind, text) in enumerate(tokens):  # a comparison outside parentheses
            depth = sum(1 if t == "(" else -1 if t == ")" else 0
                        for k, t in tokens[:i] if k == "op")
            if kind == "op" and text in ("=", "<>") and depth == 0:
                same = _same(self.expression(tokens[:i]), self.expression(tokens[i + 1:]))
                return same if text == "=" else not same
        return self.operand(tokens)

    def operand(self, tokens):
        if not tokens:
            return _OMITTED
        kind, text = tokens[0]
        if kind == "op" and text == "-" and len(tokens) == 2 and tokens[1][0] == "number":
            return -float(tokens[1][1])
        if len(tokens) == 1:
            if kind == "number":
                return float(text)
            if kind == "string":
                return text[1:-1].replace('""', '"')
            if kind == "name" and text.upper() in ("TRUE", "FALSE"):
                return text.upper() == "TRUE"
            if kind in ("name", "ref"):
                return self.reference(text)
        if kind == "name" and tokens[1] == ("op", "(") and tokens[-1] == ("op", ")"):
            inner = tokens[2:-1]
            args = [self.expression(part) for part in _split_top(inner)] if inner else []
            return self.call(text, args)
        raise ValueError(f"cannot evaluate {''.join(t for _k, t in tokens)!r}")

    def reference(self, text: str):
        key = text.replace("$", "").upper()
        if key not in self.values:
            raise KeyError(f"{text} is not among the names and ranges given: "
                           f"{', '.join(sorted(self.values))}")
        return [[_excel_value(v) for v in row] for row in self.values[key]]

    def call(self, name: str, args: list):
        target = flasso_name(name, self.namespace)
        if target is not None:
            fn = getattr(self.udfs, target, None)
            if fn is None:
                return NAME
            call = [None if a is _OMITTED else a for a in args]
            while call and call[-1] is None:  # trailing omitted arguments: not passed
                call.pop()
            return fn(*call)
        if name.upper() in _EXCEL:
            return _EXCEL[name.upper()](*args)
        return NAME  # an unknown function, or FLASSO_* without the add-in's namespace


def evaluate_formula(formula: str, values: dict[str, list[list]], udfs,
                     namespace: str | None = None):
    """Evaluate ``formula`` as Excel would, calling the Python FLASSO_* functions in ``udfs``.

    Each FLASSO_* call gets the arguments Excel passes: a name or range as the 2-D list of
    its cells (``values``, numbers as floats), a number, a text, a nested call's result, and
    ``None`` for an omitted argument (trailing ones are left out).

    Parameters
    ----------
    formula : str
        With or without the leading ``=``.
    values : dict
        Name or range address (``FL_RETURNS``, ``A10:G13``) -> rows of cell values.
    udfs : module
        :mod:`xl_factorlasso.udfs`.
    namespace : str, optional
        The server add-in's namespace (``FACTORLASSO``): FLASSO_* functions are then found
        only under it (``FACTORLASSO.FLASSO_FIT``), as in Excel with that add-in; a bare
        ``FLASSO_FIT`` is ``#NAME?``.

    Returns
    -------
    list of lists or a single value
    """
    return _Evaluator(values, udfs, namespace).expression(_tokens(formula))


def _xlwings_conf_sheet(wb) -> None:
    ws = wb.create_sheet("xlwings.conf")
    for i, (key, value) in enumerate(XLWINGS_CONF, start=1):
        ws.cell(row=i, column=1, value=key).font = BOLD
        ws.cell(row=i, column=2, value=value).fill = INPUT_FILL
    notes = [
        "The xlwings add-in reads settings from the sheet named xlwings.conf of the active "
        "workbook: keys in column A from A1 down (no gaps), values in column B.",
        "A key here overrides the add-in's ribbon and ~/.xlwings/xlwings.conf, even when its "
        "value is blank: add only the keys you want to set for this workbook,",
        "e.g. Interpreter_Win  C:\\path\\to\\venv\\Scripts\\pythonw.exe  or  Interpreter_Mac  "
        "/path/to/venv/bin/python.",
        "UDF Modules: the Python modules whose functions Import Functions (xlwings tab) brings "
        "in; separate several with ';'.",
    ]
    for i, text in enumerate(notes, start=1):
        ws.cell(row=i, column=4, value=text).font = NOTE_FONT
    ws.column_dimensions["A"].width = 16
    ws.column_dimensions["B"].width = 24


# =============================================================================== the packages
def _xml(data: bytes):
    return etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True))


def _ser(root) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=True)


def _add_rel(members: dict, rels_part: str, rid: str, rel_type: str, target: str) -> None:
    root = _xml(members[rels_part])
    etree.SubElement(root, f"{{{PR}}}Relationship", Id=rid, Type=rel_type, Target=target)
    members[rels_part] = _ser(root)


def _content_types(members: dict, *, macro: bool) -> None:
    root = _xml(members["[Content_Types].xml"])
    if macro:
        for o in root.iterfind(f"{{{CT}}}Override"):
            if o.get("PartName") == "/xl/workbook.xml":
                o.set("ContentType", CT_XLSM_MAIN)
        # before the Overrides, as Excel writes it
        root.insert(0, etree.Element(f"{{{CT}}}Default", Extension="bin", ContentType=CT_VBA))
        exts = {d.get("Extension") for d in root.iterfind(f"{{{CT}}}Default")}
        if "xml" not in exts:
            etree.SubElement(root, f"{{{CT}}}Override", PartName="/" + CUSTOM_UI_PART,
                             ContentType="application/xml")
    etree.SubElement(root, f"{{{CT}}}Override", PartName="/" + METADATA_PART,
                     ContentType=CT_METADATA)
    members["[Content_Types].xml"] = _ser(root)


_DYNAMIC_ARRAY_METADATA = (
    f'<metadata xmlns="{MAIN}" '
    'xmlns:xda="http://schemas.microsoft.com/office/spreadsheetml/2017/dynamicarray">'
    '<metadataTypes count="1"><metadataType name="XLDAPR" minSupportedVersion="120000" copy="1" '
    'pasteAll="1" pasteValues="1" merge="1" splitFirst="1" rowColShift="1" clearFormats="1" '
    'clearComments="1" assign="1" coerce="1" cellMeta="1"/></metadataTypes>'
    '<futureMetadata name="XLDAPR" count="1"><bk><extLst>'
    '<ext uri="{bdbb8cdc-fa1e-496e-a857-3c3f30c029c3}">'
    '<xda:dynamicArrayProperties fDynamic="1" fCollapsed="0"/></ext></extLst></bk>'
    '</futureMetadata><cellMetadata count="1"><bk><rc t="1" v="0"/></bk></cellMetadata>'
    "</metadata>"
)


def _dynamic_arrays(members: dict) -> None:
    """Mark the array formulas as dynamic arrays (cm="1" + xl/metadata.xml), as Excel 365 does.

    Without this, Excel 365 opens ``{=FLASSO_FIT(...)}`` as a legacy one-cell array formula
    (shown with an implicit-intersection '@') instead of letting it spill.
    """
    for part in [p for p in members if p.startswith("xl/worksheets/sheet")]:
        if b't="array"' not in members[part]:
            continue
        root = _xml(members[part])
        for f in root.iter(f"{{{MAIN}}}f"):
            if f.get("t") == "array":
                c = f.getparent()
                c.set("cm", "1")
                for v in c.findall(f"{{{MAIN}}}v"):
                    if not (v.text or ""):
                        c.remove(v)
        members[part] = _ser(root)
    members[METADATA_PART] = _ser(_xml(_DYNAMIC_ARRAY_METADATA.encode()))
    _add_rel(members, "xl/_rels/workbook.xml.rels", "rIdMetadata", RT_METADATA, "metadata.xml")


def _doc_props(members: dict) -> None:
    root = _xml(members["docProps/core.xml"])
    for el in root.iter():
        if etree.QName(el).localname in ("created", "modified"):
            el.text = FIXED_DATE
    members["docProps/core.xml"] = _ser(root)
    members["docProps/app.xml"] = _ser(_xml(
        b'<Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/'
        b'extended-properties"><Application>xl-factorlasso workbook_template/build.py'
        b"</Application></Properties>"))


def vba_project_bytes(sheet_count: int) -> bytes:
    modules = []
    for path in BAS_FILES:
        source = path.read_text(encoding="ascii")
        modules.append((path.stem, source))
    return build_vba_project(modules, [f"Sheet{i}" for i in range(1, sheet_count + 1)])


def package_members(wb, *, macro: bool) -> list[tuple[str, bytes]]:
    """The zip members of the .xlsx (``macro=False``) or .xlsm, in a fixed order."""
    buf = io.BytesIO()
    wb.save(buf)
    with zipfile.ZipFile(buf) as zf:
        order = zf.namelist()
        members = {n: zf.read(n) for n in order}
    _doc_props(members)
    _content_types(members, macro=macro)
    _dynamic_arrays(members)
    if macro:
        members[VBA_PART] = vba_project_bytes(len(wb.worksheets))
        members[CUSTOM_UI_PART] = CUSTOM_UI.read_bytes()
        _add_rel(members, "xl/_rels/workbook.xml.rels", "rIdVBA", RT_VBA, "vbaProject.bin")
        _add_rel(members, "_rels/.rels", "rIdCustomUI", RT_UI, CUSTOM_UI_PART)
    first = ["[Content_Types].xml", "_rels/.rels"]
    rest = sorted(n for n in members if n not in first)
    return [(n, members[n]) for n in first + rest]


def write_zip(path: Path, members: list[tuple[str, bytes]]) -> None:
    """Fixed timestamps, attributes and order; written to a temporary file, then renamed."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 0
            info.external_attr = 0
            zf.writestr(info, data, compresslevel=6)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(buf.getvalue())
    os.replace(tmp, path)


def build_templates(out_dir: Path | str = OUT_DIR) -> list[Path]:
    """Build every shipped template into ``out_dir``; returns their paths.

    For each sample data set (:data:`xl_factorlasso.templates.DATASETS`): the desktop
    add-in's ``.xlsx`` and ``.xlsm`` (one workbook, with and without the ribbon) and the
    server add-in's ``.xlsx`` (its Formulas sheet in the add-in's production namespace), named
    by :func:`xl_factorlasso.templates.template_name`.
    """
    from xl_factorlasso.server import functions_namespace

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for data in DATASETS:
        inputs = SAMPLE_INPUTS[data]()
        books = {False: build_openpyxl_workbook(inputs),
                 True: build_openpyxl_workbook(inputs, namespace=functions_namespace())}
        for macro, server, variant_data in VARIANTS:
            if variant_data != data:
                continue
            path = out_dir / template_name(macro, server=server, data=data)
            write_zip(path, package_members(books[server], macro=macro))
            paths.append(path)
    return paths


def build_template_for(path: Path | str, namespace: str | None,
                       data: str = "synthetic") -> Path:
    """Write the .xlsx template with its Formulas sheet written for one add-in.

    ``namespace`` None: the desktop add-in (the same workbook as :data:`XLSX_NAME`); the
    server add-in's namespace (:func:`xl_factorlasso.server.functions_namespace`,
    ``FACTORLASSO`` in prod, as in :data:`SERVER_NAME`; another for a server in another
    environment): every formula calls that add-in's functions, stored as Excel stores
    Office.js custom functions (``_xldudf_FACTORLASSO_FLASSO_FIT(...)``). ``data``: the sample
    data (:data:`SAMPLE_INPUTS`).
    """
    path = Path(path)
    wb = build_openpyxl_workbook(SAMPLE_INPUTS[data](), namespace=namespace)
    write_zip(path, package_members(wb, macro=False))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", default=str(OUT_DIR),
                        help="default: xl_factorlasso/templates/, where the package ships them")
    args = parser.parse_args(argv)
    for path in build_templates(args.out_dir):
        print(f"wrote {path} ({path.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
