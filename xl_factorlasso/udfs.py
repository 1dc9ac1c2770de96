"""Worksheet functions ``=FLASSO_*(...)``: the factor model and the portfolio from a formula.

This module is the host layer and stays thin: cells are turned into pandas objects by
:mod:`xl_factorlasso.workbook._tables` (the same readers as the workbook refit, so the same
messages), the numbers come from :mod:`xl_factorlasso.core`, and each function returns a
labelled 2-D list that Excel spills (asset names down, factor names across, a corner label).

One decorator set serves every runtime: ``from xlwings import func, arg`` resolves at import
time to the classic COM decorators (Windows with pywin32), to the Office.js ones of xlwings
Server / Lite (``XLWINGS_ON_SERVER=true``), or to pass-through no-ops (plain Linux/macOS), where
the functions are ordinary Python callables taking the 2-D lists Excel would pass.

Contract of every function
--------------------------
* Range arguments are read with ``ndim=2`` (always a list of rows) and ``err_to_str=True``
  (``#N/A`` arrives as the text ``"#N/A"`` and is reported, instead of silently becoming a
  blank). Omitted optional arguments and blank cells arrive as ``None``.
* Dates: the classic add-in passes ``datetime``; Office.js passes Excel serial numbers (its
  custom-function arguments carry no date type); ISO strings are accepted too. Returns and
  factors must use the same kind of dates (they do when they come from the same workbook).
* A problem never raises: the result is one cell ``#FLASSO! <argument>: <message>``.
* NaN results are blank cells (``None``).
* Results are cached on the *content* of the arguments (:mod:`._udf_cache`): every formula
  with the same inputs shares one fit. :func:`cache_info` / :func:`cache_clear` inspect it.
  Every argument is part of the key.
* One answer everywhere: each function takes the model inputs of the job it mirrors (returns,
  factors, signs, prior, settings, groups; the portfolio's settings, constraints, asset groups,
  previous weights and, for ``covariance = factor``, the refit's model inputs) and computes
  them with the job's readers and core calls, so that the template's Formulas sheet equals
  what the ribbon writes (``tests/test_one_answer.py``). New arguments go at the end.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from xlwings import arg, func

from ._udf_cache import CacheInfo, ContentCache, content_key
from .core import (
    FactorCovariance,
    LassoModel,
    LassoModelCV,
    LassoModelType,
    RiskAttribution,
    RollingLassoModel,
    SolveError,
    assemble_factor_covariance,
    covariance_risk_attribution,
    risk_attribution,
)
from .core.optimization import (
    EquationError,
    InfeasibleProblemError,
    MaximumDiversification,
    OptimizationError,
)

# the optimiser's own covariance estimate and the job's own FL_RISK tables: FLASSO_RISK gives
# the job's answer by construction (both are private to their modules; no public twin exists)
from .core.optimization._risk import resolve_risk_model
from .workbook._compute import _risk_tables as risk_tables
from .workbook._errors import WorkbookInputError
from .workbook._inputs import (
    FitInputs,
    check_cv,
    check_labels,
    fit_inputs,
    tag_cell,
)
from .workbook._plausibility import OVERFLOW_LIMIT, check_plausible
from .workbook._portfolio import (
    MAXDIV_KEYS,
    PortfolioSettings,
    covariance_rows,
    read_portfolio_settings,
    returns_problem,
    statistics_table,
    with_annualization,
)
from .workbook._prices import read_method, returns_from_prices
from .workbook._results import user_notes
from .workbook._rolling_settings import ROLLING_KEYS
from .workbook._settings import (
    CV_KEYS,
    MODEL_KEYS,
    REPORT_KEYS,
    check_setting,
    read_fit_settings,
)
from .workbook._settings import _bool as setting_bool
from .workbook._tables import (
    Block,
    cell_date,
    cell_problem,
    frame_cell,
    is_blank,
    panel_fast,
    parse_keyvalue,
    parse_list,
    parse_matrix,
    parse_number,
    parse_panel,
    parse_series,
    text_number,
)

__all__ = [
    "FLASSO_BEST_LAMBDA",
    "FLASSO_BETA_HISTORY",
    "FLASSO_CLUSTERS",
    "FLASSO_COV",
    "FLASSO_CV",
    "FLASSO_FIT",
    "FLASSO_INTERCEPT",
    "FLASSO_MAXDIV",
    "FLASSO_NOTES",
    "FLASSO_PREDICT",
    "FLASSO_R2",
    "FLASSO_RESID_VOL",
    "FLASSO_RETURNS",
    "FLASSO_RISK",
    "FLASSO_RISK_ASSETS",
    "FLASSO_VERSION",
]

ERROR_PREFIX = "#FLASSO!"
CATEGORY = "xl-factorlasso"
CACHE_SIZE = 64
_MAX_MESSAGE = 1000

# --------------------------------------------------------------------------- help texts
# Excel's function wizard shows a function's docstring and each argument's ``doc``; the classic
# add-in truncates both to 255 characters, so they are kept short. docs/functions.md has more.
DOCS = {
    "returns": "Asset returns: a header row of asset names, the first column dates, returns "
               "below. A blank cell is a missing return.",
    "factors": "Factor returns on the same dates: a header row of factor names, the first "
               "column dates.",
    "reg_lambda": "Optional penalty weight lambda >= 0 (default 1e-5). Overrides reg_lambda "
                  "in settings.",
    "model_type": "Optional LASSO, UNILASSO (univariate-guided, no signs or prior), "
                  "GROUP_LASSO, HCGL (clusters of assets), FCGL (cluster x factor blocks), "
                  "COOPERATIVE_GROUP_LASSO or COOPERATIVE_CLUSTER_GROUP_LASSO; default LASSO. "
                  "Overrides model_type in settings.",
    "signs": "Optional sign constraints: assets down, factors across; blank = free, 0 = zero, "
             "1 or + = non-negative, -1 or - = non-positive. May list a subset of assets.",
    "prior": "Optional prior loadings (assets down, factors across) the penalty shrinks "
             "towards; blank = 0. Must agree with signs.",
    "settings": "Optional two-column range of key | value rows: span, l1_weight, n_clusters, "
                "cutoff_fraction, warmup_period, annualization_factor, ...",
    "new_factors": "Factor values to predict on: a header row of factor names, the first "
                   "column dates.",
    "lambdas": "Optional grid of reg_lambda values (a range of numbers) or \"auto\" (default: "
               "20 values up to the lambda that zeroes the fit). Overrides cv_lambdas.",
    "n_splits": "Optional number of expanding-window folds (default 5). Overrides cv_splits.",
    "portfolio_settings": "Optional key | value rows: covariance (sample, ewma, factor), "
                          "min_weights, max_weights, budget, span, l1_coef, risk_free_rate, "
                          "annualization_factor, ...",
    "constraints": "Optional linear constraints, one per cell, e.g. 'Equities <= 0.6' or "
                   "'SPX >= 2*UST10'; names are assets, group tags or (factor covariance) "
                   "factors.",
    "groups": "Optional asset | group rows (e.g. FL_GROUPS): the group of each asset, which "
              "model_type GROUP_LASSO and COOPERATIVE_GROUP_LASSO need.",
    "asset_groups": "Optional asset x grouping table: a header row of grouping names (e.g. "
                    "Sector), the first column assets, each cell a tag usable in constraints.",
    "maxdiv_factors": "Optional factor returns (same layout and dates as returns); needed by "
                      "covariance = factor in settings.",
    "maxdiv_signs": "Optional sign constraints of the factor model of covariance = factor "
                    "(e.g. FL_SIGNS): assets down, factors across.",
    "maxdiv_prior": "Optional prior loadings of the factor model of covariance = factor (e.g. "
                    "FL_PRIOR).",
    "model_settings": "Optional key | value rows of the factor model of covariance = factor "
                      "(e.g. FL_SETTINGS); the factor_* keys of settings win over them.",
    "model_groups": "Optional asset | group rows of the factor model of covariance = factor "
                    "(e.g. FL_GROUPS), for model_type GROUP_LASSO.",
    "previous_weights": "Optional asset | weight rows (e.g. FL_PREV_WEIGHTS): the current "
                        "portfolio, for max_turnover, transaction_costs and the turnover.",
    "weights": "Optional weights to attribute instead of the optimiser's: asset | weight rows "
               "(e.g. FL_WEIGHTS; an asset not listed weighs 0) or one number per asset in "
               "the order of returns.",
    "prices": "Prices: a header row of asset names, the first column dates (increasing), "
              "prices > 0 below. A blank cell is a missing price.",
    "method": "Optional simple (default: p_t / p_prev - 1) or log (log of p_t / p_prev).",
    "factor": "The factor whose loadings to show: a header of factors (e.g. \"Equity\").",
    "rebalance": "Optional rebalancing dates: a pandas frequency in one cell (ME month-end, "
                 "the default; W-FRI, QE) or a range of dates. Each date is refitted on the "
                 "data up to it only.",
    "window": "Optional expanding (default: every row up to the date) or a number of rows "
              ">= 2 (the last rows only).",
    "min_history": "Optional fewest rows (>= 2) a date's window must have (default: window, "
                   "or 1 when expanding); earlier dates are left out.",
    "span_gaps": "Optional TRUE: the first price after a missing one gives the return since "
                 "the last price; FALSE (default): its return is missing too.",
}

#: The help text (a key of DOCS) of each argument whose text is not DOCS[argument name].
_PORTFOLIO_DOCS = {"settings": "portfolio_settings", "groups": "asset_groups",
                   "factors": "maxdiv_factors", "signs": "maxdiv_signs", "prior": "maxdiv_prior"}
ARGUMENT_DOCS = {"FLASSO_MAXDIV": _PORTFOLIO_DOCS, "FLASSO_RISK": _PORTFOLIO_DOCS,
                 "FLASSO_RISK_ASSETS": _PORTFOLIO_DOCS}


def argument_doc(function: str, argument: str) -> str:
    """The function-wizard help text of one argument of a FLASSO function."""
    return DOCS[ARGUMENT_DOCS.get(function, {}).get(argument, argument)]

#: True when ``xlwings.func`` is the Office.js decorator (xlwings Server or Lite).
OFFICE_JS = getattr(func, "__module__", "").startswith("xlwings.pro")

# How range arguments are read. Classic add-in: xlwings' value conversion (a list of rows; error
# cells as "#N/A" text instead of blanks). Office.js: the JSON matrix as it comes ("raw"), cleaned
# here (_clean_cells): xlwings 0.37.8's Office.js reader tries ``from pyodide.ffi import JsNull``
# once per cell outside Pyodide (~50 us per cell, 1.3 s for a 500 x 60 panel), whereas the
# arguments are already a list of rows there and only error objects need translating.
_RANGE = {"convert": "raw"} if OFFICE_JS else {"ndim": 2, "err_to_str": True}
_SCALAR = {"err_to_str": True}
_OFFICE_JS_ERRORS = {
    "Div0": "#DIV/0!", "NotAvailable": "#N/A", "Name": "#NAME?", "Null": "#NULL!",
    "Num": "#NUM!", "Ref": "#REF!", "Value": "#VALUE!", "Spill": "#SPILL!", "Calc": "#CALC!",
    "Busy": "#BUSY!", "Blocked": "#BLOCKED!", "Connect": "#CONNECT!", "Field": "#FIELD!",
    "GettingData": "#GETTING_DATA",
}


# --------------------------------------------------------------------------- the cache
_CACHE = ContentCache(CACHE_SIZE, cache_errors=(WorkbookInputError,))


def cache_info() -> CacheInfo:
    """Hits, misses, bound, size and number of computations of the shared result cache."""
    return _CACHE.info()


def cache_clear() -> None:
    """Empty the shared result cache (e.g. after upgrading the package in a live process)."""
    _CACHE.clear()


def cache_resize(maxsize: int) -> None:
    """Change how many distinct inputs are remembered (default 64)."""
    _CACHE.resize(maxsize)


def _content_key(*parts) -> bytes | None:
    """The cache key of some arguments; values pickle cannot take (Pyodide's ``JsNull`` for an
    empty cell in xlwings Lite) are cleaned first, so those calls are cached too."""
    key = content_key(*parts)
    return key if key is not None else content_key(*_clean_nested(list(parts)))


# --------------------------------------------------------------------------- error handling
def _message(text: str) -> str:
    text = " ".join(str(text).split())  # one line: a cell is not a log
    if len(text) > _MAX_MESSAGE:
        text = text[: _MAX_MESSAGE - 3] + "..."
    return f"{ERROR_PREFIX} {text}"


def _guard(compute: Callable[[], list]) -> list | str:
    """Run one worksheet function: its table, or a single ``#FLASSO!`` cell, never a raise."""
    try:
        return compute()
    except WorkbookInputError as err:
        return _message(str(err))
    except Exception as err:  # noqa: BLE001 - nothing may escape to Excel as a traceback
        return _message(f"internal error ({type(err).__name__}: {err}); please report it")


def _arg_error(name: str, message: str) -> WorkbookInputError:
    """``name: message`` (without repeating the name when the message already starts with it)."""
    message = str(message)
    if _starts_with_name(message, name):
        message = message[len(name):].lstrip(" :=")  # "lambdas='auto': ..." too
    return WorkbookInputError(message, name=name)


def _starts_with_name(message: str, name: str) -> bool:
    return re.match(rf"{re.escape(name)}(?![A-Za-z0-9_])", message) is not None


def _core_error(err: Exception, sources: dict[str, str], default: str,
                hints: tuple[tuple[str, str], ...] = ()) -> WorkbookInputError:
    """A core ``ValueError`` as a message naming the worksheet argument it came from.

    The core names its parameter first (``l1_weight must be in [0, 1]``); ``sources`` maps
    parameter names to the argument that supplied them (``settings``, ``reg_lambda``, ...);
    ``hints`` maps other message beginnings (``x:``, ``too few rows``) to an argument.
    """
    msg = str(err)
    for param, source in sorted(sources.items(), key=lambda kv: -len(kv[0])):
        if _starts_with_name(msg, param):
            return _arg_error(source, msg)
    for start, source in hints:
        if msg.startswith(start):
            return _arg_error(source, msg)
    return _arg_error(default, msg)


# --------------------------------------------------------------------------- cell helpers
def _clean_value(v):
    """One Office.js cell value as the classic conversion delivers it.

    Error cells arrive as ``{"type": "Error", "basicValue": "#N/A", ...}`` (-> ``"#N/A"``), other
    data types as ``{"type": ..., "basicValue": v}`` (-> ``v``; without one, ``"#VALUE!"``) and,
    in Pyodide, empty cells as ``JsNull`` (-> ``None``).
    """
    if isinstance(v, dict):
        if v.get("type") == "Error":
            return v.get("basicValue") or _OFFICE_JS_ERRORS.get(v.get("errorType"), "#VALUE!")
        # a linked data type (Entity, ...) without a basic value: what Range.values shows for
        # it, never a blank (it would pass for a missing return)
        return v.get("basicValue", "#VALUE!")
    if type(v).__name__ == "JsNull":
        return None
    return v


def _clean_cells(value):
    """A range argument as rows of cleaned values (see :func:`_rows`, :func:`_clean_value`)."""
    return _clean_nested(_rows(value))


def _clean_nested(value):
    if isinstance(value, (list, tuple)):
        return [_clean_nested(v) for v in value]
    return _clean_value(value)


def _rows(value):
    """A range argument as a list of rows.

    Office.js sends every argument as a matrix, but xlwings' ``to_scalar`` flattens a single
    row to a flat list before a "raw" argument reaches us; make it a row again (what ``ndim=2``
    does on the desktop). Elsewhere a flat list keeps :meth:`Block.of`'s meaning (a column).
    """
    if (OFFICE_JS and isinstance(value, (list, tuple)) and value
            and not any(isinstance(v, (list, tuple)) for v in value)):
        return [list(value)]
    return value


def _omitted(value) -> bool:
    """An omitted optional argument: None, a blank cell, or a range of blank cells."""
    if value is None:
        return True
    if isinstance(value, (list, tuple)):
        return all(_omitted(v) for v in value)
    if isinstance(value, np.ndarray):
        return all(_omitted(v) for v in value.tolist())
    return is_blank(_clean_value(value))


def _norm_scalar(value):
    """Unwrap ``[[x]]`` / ``[x]`` to ``x`` so that a cell and a literal hash alike."""
    while isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]
    return None if _omitted(value) else value


def _norm_range(value):
    return None if _omitted(value) else value


def _scalar(name: str, value):
    """One cell's value; a range of several non-blank cells is an error."""
    value = _clean_cells(_norm_scalar(value))
    if isinstance(value, (list, tuple, np.ndarray)):
        cells = _flatten(value)
        filled = [v for v in cells if not is_blank(v)]
        if len(filled) != 1:
            raise _arg_error(name, f"expected a single value, got a range of {len(cells)} cells")
        value = filled[0]
    problem = cell_problem(value)
    if problem is not None:
        raise _arg_error(name, problem)
    return value


def _flatten(value) -> list:
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [v for item in value for v in _flatten(item)]
    return [value]


def _setting_argument(name: str, value, keys: dict, key: str):
    """An argument that stands for a setting (``reg_lambda``, ``n_splits``): the setting's
    parser and rule, the message naming the argument."""
    try:
        return check_setting(keys, key, _scalar(name, value), name)
    except ValueError as err:
        raise _arg_error(name, str(err)) from None


def _optional_block(name: str, values) -> Block | None:
    return None if _omitted(values) else Block.of(name, _clean_cells(values))


def _cell(v):
    """A Python value Excel accepts; NaN, infinities and None become a blank cell."""
    if v is None:
        return None
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(v) else None
    if isinstance(v, pd.Timestamp):
        return None if pd.isna(v) else v.to_pydatetime()
    return v


def _row_label(v):
    if isinstance(v, pd.Timestamp):
        return v.to_pydatetime()
    return _cell(v)


# --------------------------------------------------------------------------- panels
def _panel_block(name: str, values, what: str) -> tuple[pd.DataFrame, Block]:
    """``parse_panel`` of an argument and the block it read (to name a cell later);
    Office.js cell objects are cleaned only when needed."""
    if _omitted(values):
        raise _arg_error(name, f"the range is empty; expected a header row of {what} names, "
                               "a first column of dates and numbers below")
    block = Block.of(name, _rows(values)).trimmed()
    frame = panel_fast(block)
    if frame is not None:
        return frame, block  # the fast path read plain values: the block is the cells
    block = Block.of(name, _clean_cells(values))
    return parse_panel(block, what), block


def _panel(name: str, values, what: str) -> pd.DataFrame:
    return _panel_block(name, values, what)[0]


# --------------------------------------------------------------------------- fit inputs
def _model_type_value(name: str, value) -> str:
    """The model_type setting's parser (its message shows a date or TRUE as a cell does)."""
    return _setting_argument(name, value, MODEL_KEYS, "model_type")


def _settings_cell(block: Block | None, key: str) -> str | None:
    if block is None:
        return None
    entry = parse_keyvalue(block).get(key)
    return None if entry is None else block.cell(*entry[2])


def _fit_inputs(returns, factors, reg_lambda=None, model_type=None, signs=None, prior=None,
                settings=None, groups=None) -> FitInputs:
    """Parse and cross-check the arguments of the FLASSO fit functions (no solve)."""
    y, y_block = _panel_block("returns", returns, "asset")
    x, x_block = _panel_block("factors", factors, "factor")
    overrides = {}
    if not _omitted(reg_lambda):
        overrides["reg_lambda"] = (
            _setting_argument("reg_lambda", reg_lambda, MODEL_KEYS, "reg_lambda"), "reg_lambda")
    if not _omitted(model_type):
        overrides["model_type"] = (_model_type_value("model_type", model_type), "model_type")
    gblock = _optional_block("groups", groups)
    inputs = fit_inputs(
        y, x, names=("returns", "factors"),
        signs=_optional_block("signs", signs), prior=_optional_block("prior", prior),
        groups=gblock, settings=_optional_block("settings", settings), overrides=overrides,
        require_groups=False, blocks=(y_block, x_block),
    )
    _check_groups(inputs, gblock)
    return inputs


def _check_groups(inputs: FitInputs, groups: Block | None, argument: str = "groups") -> None:
    """GROUP_LASSO and COOPERATIVE_GROUP_LASSO need a group for every asset (the message
    names the function argument, ``argument``; :func:`fit_inputs` would name FL_GROUPS)."""
    kind = LassoModelType.parse(inputs.params.get("model_type", "LASSO"))
    if not kind.uses_group_data:
        return
    known = inputs.params.get("group_data")
    missing = [a for a in inputs.returns.columns if known is None or a not in known.index]
    if not missing:
        return
    if groups is None or groups.is_empty():
        raise _arg_error(
            inputs.sources["model_type"],
            f"{kind.name} needs a group for every asset: give them in the {argument} argument "
            "(asset | group rows, e.g. FL_GROUPS), or use HCGL or FCGL (groups found from the "
            "data)")
    raise _arg_error(argument, f"model_type {kind.name} needs a group for every asset; "
                               f"{missing[0]!r} has none")


_FIT_HINTS = (
    ("x:", "factors"), ("x ", "factors"), ("y:", "returns"), ("y ", "returns"),
    ("too few rows", "returns"), ("no residual variance", "returns"),
    ("cross-validation failed", "returns"),
    ("factors_beta_loading_signs", "signs"), ("factors_beta_prior", "prior"),
)


def _fit_sources(inputs: FitInputs) -> dict[str, str]:
    """Every LassoModel parameter name -> the argument a problem with it should name."""
    sources = dict.fromkeys(MODEL_KEYS, "settings")
    sources.update(inputs.sources)
    sources["annualization_factor"] = "settings"
    return sources


def _settings_located(err: WorkbookInputError, inputs: FitInputs) -> WorkbookInputError:
    """Point a ``settings: key ...`` message at the cell of that key's value."""
    if err.name != "settings" or inputs.settings is None:
        return err
    key = next((k for k in inputs.params if _starts_with_name(err.detail, k)), None)
    if key is None and _starts_with_name(err.detail, "annualization_factor"):
        key = "annualization_factor"
    cell = _settings_cell(inputs.settings, key) if key else None
    if cell is None:
        return err
    return WorkbookInputError(f"{cell}: {err.detail}", name="settings")


def _solve_error(err: SolveError) -> WorkbookInputError:
    return WorkbookInputError(
        f"the solver failed ({err}); try another solver (key solver) or reg_lambda",
        name="settings")


@dataclass
class _Fitted:
    """A fitted model and its inputs, shared by every function with the same arguments."""

    inputs: FitInputs
    model: LassoModel
    notes: tuple[str, ...] = ()  # the fit's warnings, once each (FLASSO_NOTES)
    _cov: tuple | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def covariance(self):
        """The factor-model covariance (computed once, on first use)."""
        with self._lock:
            if self._cov is None:
                try:
                    self._cov = (True, assemble_factor_covariance(
                        self.model, self.inputs.factors,
                        annualization_factor=self.inputs.annualization_factor))
                except ValueError as err:
                    self._cov = (False, _settings_located(
                        _core_error(err, _fit_sources(self.inputs), "returns", _FIT_HINTS),
                        self.inputs))
            ok, value = self._cov
        if ok:
            return value
        raise value.with_traceback(None)


def _fitted(returns, factors, reg_lambda, model_type, signs, prior, settings,
            groups) -> _Fitted:
    # every argument is part of the key: a changed sign, prior or group cell is a new fit
    key = _content_key("fit", returns, factors, _norm_scalar(reg_lambda),
                      _norm_scalar(model_type), _norm_range(signs), _norm_range(prior),
                      _norm_range(settings), _norm_range(groups))

    def compute() -> _Fitted:
        inputs = _fit_inputs(returns, factors, reg_lambda, model_type, signs, prior, settings,
                             groups)
        try:
            # a spilled table has no room for them: FLASSO_NOTES shows them (as FL_STATUS
            # does for the ribbon's fit)
            with user_notes() as notes:
                model = LassoModel(**inputs.params).fit(inputs.factors, inputs.returns)
        except SolveError as err:
            raise _solve_error(err) from None
        except ValueError as err:
            raise _settings_located(
                _core_error(err, _fit_sources(inputs), "returns", _FIT_HINTS), inputs
            ) from None
        return _Fitted(inputs, model, tuple(notes))

    return _CACHE.get_or_compute(key, compute)


# --------------------------------------------------------------------------- tables
def _column_table(corner: str, columns: dict[str, pd.Series], rows) -> list:
    header = [corner, *columns]
    lookups = [s.to_dict() for s in columns.values()]
    body = [[r, *(_cell(d.get(r)) for d in lookups)] for r in rows]
    return [header, *body]


def _frame_table(corner: str, frame: pd.DataFrame) -> list:
    values = frame.to_numpy(dtype=float)
    body = [[_row_label(label), *(v if math.isfinite(v) else None for v in row)]
            for label, row in zip(frame.index, values.tolist(), strict=True)]
    return [[corner, *map(str, frame.columns)], *body]


# --------------------------------------------------------------------------- the factor model
_FIT_ARGS = ("returns", "factors", "reg_lambda", "model_type", "signs", "prior", "settings",
             "groups")


def _fit_decorators(fn):
    """The arguments and help texts shared by FLASSO_FIT, _R2, _INTERCEPT, _CLUSTERS, ..."""
    for name in reversed(_FIT_ARGS):
        options = _SCALAR if name in ("reg_lambda", "model_type") else _RANGE
        fn = arg(name, doc=DOCS[name], **options)(fn)
    return func(category=CATEGORY, call_in_wizard=False)(fn)


@_fit_decorators
def FLASSO_FIT(returns, factors, reg_lambda=None, model_type=None, signs=None, prior=None,
               settings=None, groups=None):
    """Sparse factor loadings (assets x factors) of a LASSO/group-LASSO factor model."""
    def compute():
        model = _fitted(returns, factors, reg_lambda, model_type, signs, prior, settings,
                        groups).model
        return _frame_table("asset", model.coef_)

    return _guard(compute)


@_fit_decorators
def FLASSO_R2(returns, factors, reg_lambda=None, model_type=None, signs=None, prior=None,
              settings=None, groups=None):
    """In-sample R-squared of each asset under the fitted factor model."""
    def compute():
        model = _fitted(returns, factors, reg_lambda, model_type, signs, prior, settings,
                        groups).model
        return _column_table("asset", {"r2": model.r2_}, model.coef_.index)

    return _guard(compute)


@_fit_decorators
def FLASSO_INTERCEPT(returns, factors, reg_lambda=None, model_type=None, signs=None,
                     prior=None, settings=None, groups=None):
    """Intercept (alpha) of each asset: mean return not explained by the factors."""
    def compute():
        model = _fitted(returns, factors, reg_lambda, model_type, signs, prior, settings,
                        groups).model
        return _column_table("asset", {"intercept": model.alpha_const_}, model.coef_.index)

    return _guard(compute)


@_fit_decorators
def FLASSO_CLUSTERS(returns, factors, reg_lambda=None, model_type=None, signs=None,
                    prior=None, settings=None, groups=None):
    """Cluster of each asset found by an HCGL, FCGL or cooperative-cluster factor model."""
    def compute():
        fitted = _fitted(returns, factors, reg_lambda, model_type, signs, prior, settings,
                         groups)
        model = fitted.model
        if model.clusters_ is None:
            source = fitted.inputs.sources.get("model_type", "model_type")
            kind = LassoModelType.parse(model.model_type).name
            if model.coef_.shape[0] == 1:
                raise _arg_error("returns", "one asset: there is nothing to cluster")
            raise _arg_error(source, f"{kind} does not group the assets; set model_type to "
                                     "HCGL, FCGL or COOPERATIVE_CLUSTER_GROUP_LASSO to find "
                                     "clusters")
        return _column_table("asset", {"cluster": model.clusters_}, model.coef_.index)

    return _guard(compute)


@_fit_decorators
def FLASSO_RESID_VOL(returns, factors, reg_lambda=None, model_type=None, signs=None,
                     prior=None, settings=None, groups=None):
    """Total, systematic and residual volatility of each asset under the factor model."""
    def compute():
        fitted = _fitted(returns, factors, reg_lambda, model_type, signs, prior, settings,
                         groups)
        vol = fitted.covariance().volatility
        return _column_table("asset", {
            "total_vol": vol["total"], "systematic_vol": vol["systematic"],
            "residual_vol": vol["residual"]}, vol.index)

    return _guard(compute)


@_fit_decorators
def FLASSO_COV(returns, factors, reg_lambda=None, model_type=None, signs=None, prior=None,
               settings=None, groups=None):
    """Factor-model covariance of the assets, B Sigma_f B' + D (assets x assets)."""
    def compute():
        fitted = _fitted(returns, factors, reg_lambda, model_type, signs, prior, settings,
                         groups)
        return _frame_table("asset", fitted.covariance().covariance)

    return _guard(compute)


@_fit_decorators
def FLASSO_NOTES(returns, factors, reg_lambda=None, model_type=None, signs=None, prior=None,
                 settings=None, groups=None):
    """What the fit of FLASSO_FIT on the same arguments warned about (dependent factors...)."""
    def compute():
        notes = _fitted(returns, factors, reg_lambda, model_type, signs, prior, settings,
                        groups).notes
        return [["notes"], *([note] for note in notes or ("ok",))]

    return _guard(compute)


@func(category=CATEGORY, call_in_wizard=False)
@arg("returns", doc=DOCS["returns"], **_RANGE)
@arg("factors", doc=DOCS["factors"], **_RANGE)
@arg("new_factors", doc=DOCS["new_factors"], **_RANGE)
@arg("reg_lambda", doc=DOCS["reg_lambda"], **_SCALAR)
@arg("model_type", doc=DOCS["model_type"], **_SCALAR)
@arg("signs", doc=DOCS["signs"], **_RANGE)
@arg("prior", doc=DOCS["prior"], **_RANGE)
@arg("settings", doc=DOCS["settings"], **_RANGE)
@arg("groups", doc=DOCS["groups"], **_RANGE)
def FLASSO_PREDICT(returns, factors, new_factors, reg_lambda=None, model_type=None, signs=None,
                   prior=None, settings=None, groups=None):
    """Fitted asset returns (dates x assets) for new factor values, alpha + B x."""
    def compute():
        fitted = _fitted(returns, factors, reg_lambda, model_type, signs, prior, settings,
                         groups)
        new, new_block = _panel_block("new_factors", new_factors, "factor")
        check_plausible(new, new_block, bound=fitted.inputs.max_abs_return,
                        what="factor return", source="settings")
        block = Block.of("new_factors", _clean_cells(new_factors))
        used = list(fitted.model.coef_.columns)
        for label in new.columns:
            if label not in set(used):
                check_labels(block, [label], [], axis=1, what="factor", source="factors")
        missing = [c for c in used if c not in set(new.columns)]
        if missing:
            raise _arg_error("new_factors", f"factor {missing[0]!r} of factors has no column")
        pred = fitted.model.predict(new.loc[:, used])
        return _frame_table(new.index.name or "date", pred)

    return _guard(compute)


# --------------------------------------------------------------------------- cross-validation
def _lambdas_value(values):
    """A range of numbers, ``auto``, ``default`` or a ``0.1; 0.01`` text -> the CV grid
    (the text read as the ``cv_lambdas`` setting is)."""
    block = Block.of("lambdas", _clean_cells(values)).trimmed()
    cells = [(i, j, v) for i, row in enumerate(block.values) for j, v in enumerate(row)
             if not is_blank(v)]
    if len(cells) == 1 and isinstance(cells[0][2], str):
        try:
            return check_setting(CV_KEYS, "cv_lambdas", cells[0][2], "lambdas")
        except ValueError as err:
            raise _arg_error("lambdas", str(err)) from None
    grid = [parse_number(block, i, j, what="a number or 'auto'") for i, j, _v in cells]
    bad = [(i, j, g) for (i, j, _v), g in zip(cells, grid, strict=True) if g < 0]
    if bad:
        i, j, g = bad[0]
        raise block.error(f"{g:g} is not a number >= 0", i, j)
    seen = {}
    for (i, j, _v), g in zip(cells, grid, strict=True):
        if g in seen:  # the scores have one row per value: a repeat would have none
            raise block.error(f"{g:g} is given twice (also at {seen[g]}); list each value once",
                              i, j)
        seen[g] = block.cell(i, j)
    return grid


_CV_SOURCES = {"n_lambdas": "settings", "lambda_min_ratio": "settings"}
_CV_ARGS = ("returns", "factors", "lambdas", "n_splits", "settings", "signs", "prior", "groups")


def _cv_decorators(fn):
    """The arguments and help texts of FLASSO_CV and FLASSO_BEST_LAMBDA."""
    for name in reversed(_CV_ARGS):
        options = _SCALAR if name == "n_splits" else _RANGE
        fn = arg(name, doc=DOCS[name], **options)(fn)
    return func(category=CATEGORY, call_in_wizard=False)(fn)


def _cv_model(returns, factors, lambdas, n_splits, settings, signs, prior,
              groups) -> LassoModelCV:
    """The cross-validation of these arguments, shared by FLASSO_CV and FLASSO_BEST_LAMBDA."""
    key = _content_key("cv", returns, factors, _norm_range(lambdas), _norm_scalar(n_splits),
                      _norm_range(settings), _norm_range(signs), _norm_range(prior),
                      _norm_range(groups))
    return _CACHE.get_or_compute(key, lambda: _cross_validate(
        returns, factors, lambdas, n_splits, settings, signs, prior, groups))


@_cv_decorators
def FLASSO_CV(returns, factors, lambdas=None, n_splits=None, settings=None, signs=None,
              prior=None, groups=None):
    """Cross-validated R-squared per reg_lambda and fold, their mean and the best lambda."""
    def compute():
        cvm = _cv_model(returns, factors, lambdas, n_splits, settings, signs, prior, groups)
        scores = cvm.cv_scores_
        table = [["reg_lambda", *scores.columns, "mean", "best"]]
        for lam, row in scores.iterrows():
            table.append([float(lam), *(_cell(v) for v in row), _cell(cvm.mean_scores_[lam]),
                          "best" if lam == cvm.best_lambda_ else None])
        return table

    return _guard(compute)


@_cv_decorators
def FLASSO_BEST_LAMBDA(returns, factors, lambdas=None, n_splits=None, settings=None,
                       signs=None, prior=None, groups=None):
    """The reg_lambda with the best cross-validated R-squared (the best row of FLASSO_CV)."""
    def compute():
        cvm = _cv_model(returns, factors, lambdas, n_splits, settings, signs, prior, groups)
        # a value of the grid, so finite: LassoModelCV refuses a run where no lambda scores
        return float(cvm.best_lambda_)

    return _guard(compute)


def _cross_validate(returns, factors, lambdas, n_splits, settings, signs, prior,
                    groups) -> LassoModelCV:
    inputs = _fit_inputs(returns, factors, signs=signs, prior=prior, settings=settings,
                         groups=groups)
    sources = {**_fit_sources(inputs), **_CV_SOURCES,
               "lambdas": "settings", "n_splits": "settings"}
    grid = inputs.cv.get("cv_lambdas", "auto")
    if not _omitted(lambdas):
        grid = _lambdas_value(lambdas)
        sources["lambdas"] = "lambdas"
    if _omitted(n_splits):
        splits = check_cv(inputs)
    else:
        given = _setting_argument("n_splits", n_splits, CV_KEYS, "cv_splits")
        splits = check_cv(inputs, n_splits=given)
        sources["n_splits"] = "n_splits"
    # the grid and the base model of the refit_cv job (workbook._compute._fit); the best model
    # is not refitted here: FLASSO_FIT at FLASSO_BEST_LAMBDA fits it (and caches it)
    cv = LassoModelCV(
        lambdas=grid,
        n_splits=splits,
        base_model=LassoModel(**inputs.params),
        refit=False,
        n_lambdas=inputs.cv.get("cv_n_lambdas", 20),
        lambda_min_ratio=inputs.cv.get("cv_lambda_min_ratio", 1e-3),
    )
    try:
        return cv.fit(inputs.factors, inputs.returns)
    except SolveError as err:
        raise _solve_error(err) from None
    except ValueError as err:
        raise _core_error(err, sources, "returns", _FIT_HINTS) from None


# --------------------------------------------------------------------------- the portfolio
def _constraint_cell(constraints: list[tuple[str, str]], text: str) -> str | None:
    return next((cell for t, cell in constraints if t == text), None)


def _maxdiv_error(err: Exception, ps: PortfolioSettings,
                  constraints: list[tuple[str, str]]) -> WorkbookInputError:
    msg = str(err)
    if isinstance(err, EquationError):
        quoted = re.match(r"linear constraint (['\"])(.*?)\1:", msg)
        cell = _constraint_cell(constraints, quoted.group(2)) if quoted else None
        return WorkbookInputError(f"{cell}: {msg}" if cell else msg, name="constraints")
    if isinstance(err, InfeasibleProblemError):
        texts = {f"{t!r}": cell for t, cell in constraints}
        cells = [texts[c] for c in err.conflicts if c in texts]
        if cells:
            return WorkbookInputError(f"{msg} (cells {', '.join(cells)})", name="constraints")
        return WorkbookInputError(msg, name="settings")
    if isinstance(err, OptimizationError):
        return WorkbookInputError(f"the optimisation failed: {msg}", name="settings")
    about_returns = returns_problem(msg)
    if about_returns is not None:
        return _arg_error("returns", about_returns)
    sources = dict.fromkeys(MAXDIV_KEYS, "settings")
    sources.update({"groups": "groups", "linear_constraints": "constraints"})
    located = _core_error(err, sources, "settings", (("'", "groups"),))
    if located.name == "settings" and ps.block is not None:
        key = next((k for k in MAXDIV_KEYS if _starts_with_name(located.detail, k)), None)
        cell = _settings_cell(ps.block, key) if key else None
        if cell:
            return WorkbookInputError(f"{cell}: {located.detail}", name="settings")
    return located


@dataclass
class _PortfolioResult:
    """The optimiser's weights and statistics, and the covariance and annualisation the risk
    attribution of FLASSO_RISK uses (those of the optimise_portfolio job)."""

    weights: pd.Series
    stats: list
    covariance: object  # the optimiser's covariance_: a FactorCovariance or a DataFrame
    annualization_factor: float


_MAXDIV_ARGS = ("returns", "settings", "constraints", "groups", "factors", "signs", "prior",
                "model_settings", "model_groups", "previous_weights")
# A weight above this counts as invested (the n_invested row of the optimise_portfolio job).


def _asset_groups(groups, assets: list[str]) -> dict | None:
    """The asset tags of the ``groups`` argument, for every asset (as the job reads
    FL_ASSET_GROUPS: an asset without a row has no tag)."""
    gblock = _optional_block("groups", groups)
    if gblock is None:
        return None
    tags = parse_matrix(gblock, rows_what="asset", cols_what="grouping", cell=tag_cell)
    check_labels(gblock, tags.index, assets, axis=0, what="asset", source="returns")
    return {a: [t for t in tags.loc[a] if t] if a in tags.index else [] for a in assets}


def _previous_weights(values, assets: list[str]):
    """The current weights (asset | weight rows), 0 for an asset not listed, as the job reads
    FL_PREV_WEIGHTS."""
    block = _optional_block("previous_weights", values)
    if block is None:
        return None
    prev = parse_series(block)
    check_labels(block, prev.index, assets, axis=0, what="asset", source="returns")
    return prev.reindex(assets).fillna(0.0).to_numpy()


def _factor_covariance(y, y_block, factors, ps: PortfolioSettings, signs, prior,
                       model_settings, model_groups):
    """The factor covariance of ``covariance = factor``: the model the refit job would fit from
    the same inputs (signs, prior, model settings and groups), with the ``factor_*`` keys of
    the portfolio settings on top, and its covariance not annualised (the statistics are)."""
    x, x_block = _panel_block("factors", factors, "factor")
    mblock = _optional_block("model_settings", model_settings)
    gblock = _optional_block("model_groups", model_groups)
    # the plausibility bound of the fit: that of the model settings when given (as the job
    # checks FL_RETURNS and FL_FACTORS with FL_SETTINGS), else that of the portfolio settings
    bound = {} if mblock is not None else {"max_abs_return": ps.max_abs_return}
    inputs = fit_inputs(y, x, names=("returns", "factors"),
                        signs=_optional_block("signs", signs),
                        prior=_optional_block("prior", prior), groups=gblock, settings=mblock,
                        overrides=ps.model_overrides(), require_groups=False,
                        blocks=(y_block, x_block), **bound)
    _check_groups(inputs, gblock, "model_groups")
    try:
        model = LassoModel(**inputs.params).fit(x, y)
        return assemble_factor_covariance(model, x)
    except SolveError as err:
        raise _solve_error(err) from None
    except ValueError as err:
        raise _settings_located(
            _core_error(err, _fit_sources(inputs), "returns", _FIT_HINTS), inputs) from None


def _optimise(returns, settings, constraints, groups, factors, signs, prior, model_settings,
              model_groups, previous_weights) -> _PortfolioResult:
    y, y_block = _panel_block("returns", returns, "asset")
    ps = read_portfolio_settings(_optional_block("settings", settings))
    check_plausible(y, y_block, bound=ps.max_abs_return, what="return", source="settings")
    assets = list(y.columns)
    constraint_list = []
    cblock = _optional_block("constraints", constraints)
    if cblock is not None:
        constraint_list = parse_list(cblock)
    params = dict(ps.params)
    if constraint_list:
        params["linear_constraints"] = [t for t, _c in constraint_list]
    group_map = _asset_groups(groups, assets)
    if group_map is not None:
        params["groups"] = group_map
    prev = _previous_weights(previous_weights, assets)
    if prev is not None:
        params["previous_weights"] = prev
    if ps.covariance == "factor":
        if _omitted(factors):
            raise _arg_error("factors", "covariance = factor (settings) needs the factor "
                                        "returns in the factors argument")
        params["covariance"] = _factor_covariance(y, y_block, factors, ps, signs, prior,
                                                  model_settings, model_groups)
        fit_x = None
    else:  # the factor model's inputs are not used, as in the job (the stats say which)
        fit_x = covariance_rows(y, ps, "returns", "(trim the range or use covariance = "
                                                  "factor in settings)")
    estimator = MaximumDiversification(**params)
    try:
        estimator.fit(fit_x)
        complete = y.dropna()
        portfolio = estimator.predict(complete) if len(complete) >= 2 else None
    except (ValueError, OptimizationError) as err:
        raise _maxdiv_error(err, ps, constraint_list) from None
    weights = estimator.weights_.reindex(assets)
    if not np.isfinite(weights.to_numpy(dtype=float)).all():
        raise _arg_error("settings", "the optimiser returned non-finite weights")
    # the rows, order and annualisation of the optimise_portfolio job's FL_PORTFOLIO_STATS
    ps = with_annualization(ps, read_fit_settings(_optional_block("model_settings",
                                                                  model_settings)))
    stats = statistics_table(estimator, portfolio, ps, weights)
    return _PortfolioResult(weights, stats, estimator.covariance_, ps.annualization_factor)


def _maxdiv_decorators(fn):
    for name in reversed(_MAXDIV_ARGS):
        fn = arg(name, doc=argument_doc("FLASSO_MAXDIV", name), **_RANGE)(fn)
    return func(category=CATEGORY, call_in_wizard=False)(fn)


def _portfolio(*args) -> _PortfolioResult:
    """The optimisation of FLASSO_MAXDIV's arguments (in :data:`_MAXDIV_ARGS` order), shared by
    FLASSO_MAXDIV, FLASSO_RISK and FLASSO_RISK_ASSETS on the same arguments."""
    key = _content_key("maxdiv", args[0], *(_norm_range(a) for a in args[1:]))
    return _CACHE.get_or_compute(key, lambda: _optimise(*args))


@_maxdiv_decorators
def FLASSO_MAXDIV(returns, settings=None, constraints=None, groups=None, factors=None,
                  signs=None, prior=None, model_settings=None, model_groups=None,
                  previous_weights=None):
    """Maximum-diversification weights per asset, then the portfolio's statistics."""
    def compute():
        result = _portfolio(returns, settings, constraints, groups, factors, signs, prior,
                            model_settings, model_groups, previous_weights)
        table = [["asset", "weight"]]
        table += [[a, _cell(w)] for a, w in result.weights.items()]
        table += [[None, None], ["statistic", "value"]]
        table += [list(row) for row in result.stats]
        return table

    return _guard(compute)


# --------------------------------------------------------------------------- risk attribution
@dataclass
class _RiskModel:
    """The covariance FLASSO_MAXDIV optimises with on some inputs, without the optimisation."""

    covariance: object  # a FactorCovariance or a labelled DataFrame
    annualization_factor: float
    assets: list


def _risk_model(returns, settings, factors, signs, prior, model_settings,
                model_groups) -> _RiskModel:
    """The covariance of the portfolio settings (``sample``, ``ewma`` or ``factor``) estimated
    as :func:`_optimise` has the optimiser estimate it, and the annualisation of its
    statistics: what the attribution of given weights needs (nothing is optimised)."""
    y, y_block = _panel_block("returns", returns, "asset")
    ps = read_portfolio_settings(_optional_block("settings", settings))
    check_plausible(y, y_block, bound=ps.max_abs_return, what="return", source="settings")
    if ps.covariance == "factor":
        if _omitted(factors):
            raise _arg_error("factors", "covariance = factor (settings) needs the factor "
                                        "returns in the factors argument")
        cov = _factor_covariance(y, y_block, factors, ps, signs, prior, model_settings,
                                 model_groups)
    else:
        x = covariance_rows(y, ps, "returns", "(trim the range or use covariance = factor "
                                              "in settings)")
        try:  # the optimiser's own estimate (MaximumDiversification._validate)
            _risk, _assets, cov = resolve_risk_model(None, ps.params.get("span"),
                                                     x.to_numpy(dtype=float), x.columns)
        except ValueError as err:
            raise _maxdiv_error(err, ps, []) from None
    ps = with_annualization(ps, read_fit_settings(_optional_block("model_settings",
                                                                  model_settings)))
    return _RiskModel(cov, ps.annualization_factor, list(y.columns))


def _is_label(v) -> bool:
    """A cell that names an asset: text that is not a plain number."""
    if not isinstance(v, str) or is_blank(v):
        return False
    try:
        text_number(v)
    except ValueError:
        return True
    return False


def _weight_cell(block: Block, i: int, j: int) -> float:
    w = parse_number(block, i, j, what="a weight")
    if math.isnan(w):
        raise block.error("the weight is blank; type 0 for an asset without a holding", i, j)
    if abs(w) > OVERFLOW_LIMIT:  # the variance w' S w would overflow to inf or NaN
        raise block.error(f"{w:g} is too large to compute with: the portfolio's variance "
                          "overflows", i, j)
    return w


def _given_weights(values, assets: list) -> pd.Series:
    """The ``weights`` argument: ``asset | weight`` rows (an optional header row; an asset not
    listed weighs 0), or one row or column with one number per asset in the order of the
    returns' columns."""
    block = Block.of("weights", _clean_cells(values)).trimmed()
    n_rows, n_cols = block.shape
    if n_cols == 2 and any(_is_label(r[0]) for r in block.values):
        # the names first: a stranger (FLASSO_MAXDIV's 'statistic' rows, say) is named as such
        names = parse_series(block, value=lambda _b, _i, _j: 0.0).index
        if names.empty:
            raise _arg_error("weights", "no asset | weight rows below the header")
        check_labels(block, names, assets, axis=0, what="asset", source="returns")
        return parse_series(block, value=_weight_cell).reindex(assets).fillna(0.0)
    if n_rows == 1 or n_cols == 1:
        cells = ([(0, j) for j in range(n_cols)] if n_rows == 1
                 else [(i, 0) for i in range(n_rows)])
        what = (f"{len(cells)} weights for the {len(assets)} assets of returns: give one per "
                "asset, in the order of the returns' columns, or asset | weight rows")
        if len(cells) > len(assets):
            raise block.error(what, *cells[len(assets)])
        if len(cells) < len(assets):
            raise _arg_error("weights", f"{what} (no weight for {assets[len(cells)]!r})")
        return pd.Series([_weight_cell(block, i, j) for i, j in cells], index=assets)
    raise _arg_error("weights", "expected asset | weight rows (two columns) or one row or "
                                f"column of numbers, one per asset; got {n_rows} rows x "
                                f"{n_cols} columns")


def _attribution(covariance, weights: pd.Series, annualization_factor: float,
                 source: str) -> RiskAttribution:
    """The Euler split of the optimise_portfolio job (``workbook._compute._attribution``):
    per factor and per asset under a factor model, per asset under a covariance matrix."""
    try:
        if isinstance(covariance, FactorCovariance):
            return risk_attribution(covariance, weights,
                                    annualization_factor=annualization_factor)
        return covariance_risk_attribution(covariance, weights,
                                           annualization_factor=annualization_factor)
    except ValueError as err:  # e.g. a portfolio of zero variance
        raise _arg_error(source, str(err)) from None


_RISK_ARGS = (*_MAXDIV_ARGS, "weights")


def _risk(returns, settings, constraints, groups, factors, signs, prior, model_settings,
          model_groups, previous_weights, weights) -> tuple[RiskAttribution, list]:
    """The attribution of FLASSO_RISK's arguments and the assets in the returns' order."""
    if _omitted(weights):  # the optimiser's portfolio: FLASSO_MAXDIV's, from the cache
        result = _portfolio(returns, settings, constraints, groups, factors, signs, prior,
                            model_settings, model_groups, previous_weights)
        ra = _attribution(result.covariance, result.weights, result.annualization_factor,
                          "settings")
        return ra, list(result.weights.index)
    # given weights: only the covariance is needed (constraints, asset groups and previous
    # weights constrain an optimisation, and there is none)
    parts = (settings, factors, signs, prior, model_settings, model_groups)
    key = _content_key("risk_model", returns, *(_norm_range(a) for a in parts))
    model = _CACHE.get_or_compute(key, lambda: _risk_model(returns, *parts))
    w = _given_weights(weights, model.assets)
    return _attribution(model.covariance, w, model.annualization_factor, "weights"), model.assets


def _risk_decorators(fn):
    for name in reversed(_RISK_ARGS):
        fn = arg(name, doc=argument_doc(fn.__name__, name), **_RANGE)(fn)
    return func(category=CATEGORY, call_in_wizard=False)(fn)


@_risk_decorators
def FLASSO_RISK(returns, settings=None, constraints=None, groups=None, factors=None,
                signs=None, prior=None, model_settings=None, model_groups=None,
                previous_weights=None, weights=None):
    """Risk attribution per factor (exposure B'w, contribution, share), specific and total."""
    def compute():
        ra, assets = _risk(returns, settings, constraints, groups, factors, signs, prior,
                           model_settings, model_groups, previous_weights, weights)
        return risk_tables(ra, assets)[0].values

    return _guard(compute)


@_risk_decorators
def FLASSO_RISK_ASSETS(returns, settings=None, constraints=None, groups=None, factors=None,
                       signs=None, prior=None, model_settings=None, model_groups=None,
                       previous_weights=None, weights=None):
    """Risk attribution per asset: weight, contribution, share, systematic and specific."""
    def compute():
        ra, assets = _risk(returns, settings, constraints, groups, factors, signs, prior,
                           model_settings, model_groups, previous_weights, weights)
        return risk_tables(ra, assets)[1].values

    return _guard(compute)


# --------------------------------------------------------------------------- loading history
# Office.js passes dates as Excel serial numbers (days since 1899-12-30, the 1900 system from
# 1 March 1900 on): a panel read with numbers for dates is put on those calendar dates for the
# rolling fit (which needs dates to find months and quarters) and answered with its own numbers.
_EXCEL_EPOCH = pd.Timestamp("1899-12-30")
# The serial numbers of 0001-01-01 and 9999-12-31: a number outside is no calendar date (and
# pandas cannot put 1e9 days after the epoch)
_SERIAL_BOUNDS = (-693593.0, 2958465.0)


def _calendar(index: pd.Index) -> pd.DatetimeIndex:
    if isinstance(index, pd.DatetimeIndex):
        return index
    return pd.DatetimeIndex(_EXCEL_EPOCH + pd.to_timedelta(np.asarray(index, float), unit="D"),
                            name="date")


def _serial_problem(v: float) -> str | None:
    """Why a number cannot stand for a calendar date, or None."""
    if _SERIAL_BOUNDS[0] <= v <= _SERIAL_BOUNDS[1]:
        return None
    return (f"{v:g} is not an Excel date serial number (days since 1899-12-30, at most "
            f"{_SERIAL_BOUNDS[1]:.0f} for 9999-12-31): the rolling fit needs calendar dates")


def _check_serials(name: str, values, index: pd.Index) -> None:
    """A panel dated by numbers: each must be a serial number of a calendar date (the rolling
    fit puts them on the calendar); the first that is not is named on its cell of ``name``."""
    if isinstance(index, pd.DatetimeIndex):
        return
    serials = np.asarray(index, dtype=float)
    bad = np.flatnonzero(~((serials >= _SERIAL_BOUNDS[0]) & (serials <= _SERIAL_BOUNDS[1])))
    if bad.size:
        block = Block.of(name, _clean_cells(values)).trimmed()
        i, _j = frame_cell(block, int(bad[0]), -1)
        raise block.error(_serial_problem(float(serials[bad[0]])), i, 0)


def _rebalance_value(values):
    """A pandas frequency in one cell (``ME``, ``W-FRI``, ``QE``; default ``ME``) or a range
    of dates (datetime cells, ISO text or Excel serial numbers)."""
    if _omitted(values):
        return "ME"
    block = Block.of("rebalance", _clean_cells(_rows(values))).trimmed()
    cells = [(i, j, v) for i, row in enumerate(block.values) for j, v in enumerate(row)
             if not is_blank(v)]
    if len(cells) == 1 and isinstance(cells[0][2], str):
        text = cells[0][2].strip()
        try:
            label, _kind = cell_date(text)
        except ValueError:  # a frequency, by FL_ROLLING_SETTINGS' rule for rebalance
            return _setting_argument("rebalance", text, ROLLING_KEYS, "rebalance")
        return [label]
    dates = []
    for i, j, v in cells:
        try:
            label, kind = cell_date(v)
        except ValueError as err:
            raise block.error(f"{err}; expected a pandas frequency (ME, W-FRI, QE) in one "
                              "cell or a range of rebalancing dates", i, j) from None
        if kind != "date" and _serial_problem(label) is not None:
            raise block.error(_serial_problem(label), i, j)
        dates.append(label if kind == "date" else _calendar(pd.Index([label]))[0])
    return dates


def _rolling_argument(name: str, value, default):
    """``window`` / ``min_history``: FL_ROLLING_SETTINGS' rule for that key (one answer with
    the Backtest job), the message naming the argument."""
    if _omitted(value):
        return default
    value = _setting_argument(name, value, ROLLING_KEYS, name)
    return value if value is None or isinstance(value, str) else int(value)


def _history_failure(rolling, window, min_history) -> WorkbookInputError:
    """No rebalancing date has a fit: the first reason, naming the argument to change."""
    first = rolling.failures_.iloc[0] if len(rolling.failures_) else None
    if first is None:
        return _arg_error("rebalance", "no rebalancing date falls within the dates of returns")
    # the core records "ValueError: y: ..."; the sheet needs the reason, not the class
    reason = re.sub(r"^[A-Za-z]*Error: ", "", str(first["reason"]))
    reason = f"{pd.Timestamp(first['date']).date()}: {reason}"
    name = "returns"
    if str(first["reason"]).startswith("too little history"):
        name = "min_history" if not _omitted(min_history) else (
            "window" if not _omitted(window) else "returns")
    elif str(first["reason"]).startswith("no data"):
        name = "rebalance"
    return _arg_error(name, f"no rebalancing date could be fitted (first: {reason})")


@dataclass
class _History:
    """A rolling fit shared by every FLASSO_BETA_HISTORY formula with the same inputs (any
    factor), and the row labels to answer with (the panel's own dates or serial numbers)."""

    rolling: object
    labels: dict
    corner: str  # "date", or "period" for serial numbers (as FLASSO_PREDICT answers them)


def _beta_history(returns, factors, rebalance, window, min_history, reg_lambda, model_type,
                  signs, prior, settings, groups) -> _History:
    inputs = _fit_inputs(returns, factors, reg_lambda, model_type, signs, prior, settings,
                         groups)
    y, x = inputs.returns, inputs.factors
    _check_serials("returns", returns, y.index)  # the same dates as factors (fit_inputs)
    corner = x.index.name or "date"
    dates = _calendar(x.index)
    labels = dict(zip(dates, x.index, strict=True))
    x, y = x.set_axis(dates, axis=0), y.set_axis(dates, axis=0)
    rows = _rolling_argument("window", window, "expanding")
    low = _rolling_argument("min_history", min_history, None)
    if low is not None and rows != "expanding" and low > rows:  # FL_ROLLING_SETTINGS' rule
        raise _arg_error("min_history", f"{low} is more than the window's {rows} rows: no date "
                                        "could be fitted; lower it or widen the window")
    rolling = RollingLassoModel(
        LassoModel(**inputs.params), rebalance=_rebalance_value(rebalance), window=rows,
        min_history=low, annualization_factor=inputs.annualization_factor)
    sources = {**_fit_sources(inputs), "rebalance": "rebalance", "window": "window",
               "min_history": "min_history"}
    try:
        rolling.fit(x, y)
    except SolveError as err:
        raise _solve_error(err) from None
    except ValueError as err:
        raise _settings_located(_core_error(err, sources, "returns", _FIT_HINTS),
                                inputs) from None
    if len(rolling.results_) == 0:
        raise _history_failure(rolling, window, min_history)
    return _History(rolling, labels, corner)


@func(category=CATEGORY, call_in_wizard=False)
@arg("returns", doc=DOCS["returns"], **_RANGE)
@arg("factors", doc=DOCS["factors"], **_RANGE)
@arg("factor", doc=DOCS["factor"], **_SCALAR)
@arg("rebalance", doc=DOCS["rebalance"], **_RANGE)
@arg("window", doc=DOCS["window"], **_SCALAR)
@arg("min_history", doc=DOCS["min_history"], **_SCALAR)
@arg("reg_lambda", doc=DOCS["reg_lambda"], **_SCALAR)
@arg("model_type", doc=DOCS["model_type"], **_SCALAR)
@arg("signs", doc=DOCS["signs"], **_RANGE)
@arg("prior", doc=DOCS["prior"], **_RANGE)
@arg("settings", doc=DOCS["settings"], **_RANGE)
@arg("groups", doc=DOCS["groups"], **_RANGE)
def FLASSO_BETA_HISTORY(returns, factors, factor, rebalance=None, window=None,
                        min_history=None, reg_lambda=None, model_type=None, signs=None,
                        prior=None, settings=None, groups=None):
    """One factor's loadings (dates x assets), refitted at each rebalancing date on past data."""
    def compute():
        name = _scalar("factor", factor)
        if is_blank(name):
            raise _arg_error("factor", "give the name of a factor (a header of factors)")
        name = str(name).strip()
        known = [str(c) for c in _panel("factors", factors, "factor").columns]
        if name not in known:  # before the fit: a typo costs no refits
            raise _arg_error("factor", f"{name!r} is not a factor of factors; the factors are "
                                       f"{', '.join(known)}")
        # the factor is not part of the key: every factor's formula shares one rolling fit
        key = _content_key("beta_history", returns, factors, _norm_scalar(rebalance),
                          _norm_scalar(window), _norm_scalar(min_history),
                          _norm_scalar(reg_lambda), _norm_scalar(model_type),
                          _norm_range(signs), _norm_range(prior), _norm_range(settings),
                          _norm_range(groups))
        history = _CACHE.get_or_compute(key, lambda: _beta_history(
            returns, factors, rebalance, window, min_history, reg_lambda, model_type, signs,
            prior, settings, groups))
        frame = history.rolling.results_.get_beta(name)
        frame.index = [history.labels[d] for d in frame.index]
        return _frame_table(history.corner, frame)

    return _guard(compute)


# --------------------------------------------------------------------------- prices
def _span_gaps_value(value) -> bool:
    if _omitted(value):
        return False
    try:
        return setting_bool(_scalar("span_gaps", value), "span_gaps")
    except ValueError as err:
        raise _arg_error("span_gaps", str(err)) from None


def _price_returns(prices, method, span_gaps) -> pd.DataFrame:
    try:
        kind = read_method(_scalar("method", method))
    except ValueError as err:
        raise _arg_error("method", str(err)) from None
    gaps = _span_gaps_value(span_gaps)
    if _omitted(prices):
        raise _arg_error("prices", "the range is empty; expected a header row of asset names, "
                                   "a first column of dates and prices below")
    block = Block.of("prices", _rows(prices)).trimmed()
    if panel_fast(block) is None:  # Office.js cell objects are cleaned only when needed
        block = Block.of("prices", _clean_cells(prices))
    return returns_from_prices(block, kind, span_gaps=gaps)


@func(category=CATEGORY, call_in_wizard=False)
@arg("prices", doc=DOCS["prices"], **_RANGE)
@arg("method", doc=DOCS["method"], **_SCALAR)
@arg("span_gaps", doc=DOCS["span_gaps"], **_SCALAR)
def FLASSO_RETURNS(prices, method=None, span_gaps=None):
    """Returns (dates x assets) of a price panel: simple p_t/p_prev - 1 (default) or log."""
    def compute():
        key = _content_key("returns", prices, _norm_scalar(method), _norm_scalar(span_gaps))
        frame = _CACHE.get_or_compute(key, lambda: _price_returns(prices, method, span_gaps))
        return _frame_table(frame.index.name or "date", frame)

    return _guard(compute)


# --------------------------------------------------------------------------- version
@func(category=CATEGORY)
def FLASSO_VERSION():
    """Version of the xl-factorlasso package that computes the FLASSO functions."""
    from . import __version__

    return __version__


# MODEL_KEYS / CV_KEYS are re-exported for docs/functions.md and the tests.
SETTINGS_KEYS = {"fit": sorted({*MODEL_KEYS, *CV_KEYS, *REPORT_KEYS}),
                 "portfolio": sorted(MAXDIV_KEYS)}
