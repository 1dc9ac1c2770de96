"""``key | value`` settings -> estimator parameters, validated with the cell of each value.

Every value is checked here against the rule of the estimator that will use it, so that a bad
setting is reported on its cell (``FL_SETTINGS!B4: span must be >= 2 ...``) and never rejected
later by the estimator, whose message could not say where it came from. Where the estimator
accepts a value that makes the result meaningless the rule here is stricter (``span`` must be
>= 2: a span of 1 puts every weight on one row and returns the prior). Rules that need the data
(``n_clusters`` against the assets, ``warmup_period`` and ``cv_splits`` against the dates) are
in :mod:`._inputs`.

A validator takes ``(value, key)`` -- a non-blank cell value and the key as the user wrote it --
and returns the parameter or raises ``ValueError`` with the whole message (``key ...``).
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from ..core import LassoModelType
from ..core.cluster import ClusterCorrelationTransform, DependenceMeasure, DistanceTransform
from ..core.cluster._hierarchical import _LINKAGE_METHODS  # the methods the fit accepts
from ._plausibility import MAX_ABS_RETURN
from ._tables import Block, cell_number, cell_problem, is_blank, parse_keyvalue, shown, text_number

__all__ = [
    "CV_KEYS",
    "FitSettings",
    "MODEL_KEYS",
    "PORTFOLIO_KEYS",
    "REPORT_KEYS",
    "SettingCell",
    "check_setting",
    "read_fit_settings",
]

_OFF = ("none", "off", "no")
_BLANK_MEANS = "the default"


# --------------------------------------------------------------------------- validators
def _number(v, key: str) -> float:
    try:
        return cell_number(v, "a number", blank_means=_BLANK_MEANS)
    except ValueError as err:
        raise ValueError(f"{key}: {err}") from None


def _is_off(v) -> bool:
    return isinstance(v, str) and v.strip().lower() in _OFF


def _ranged(
    rule: str,
    ok: Callable[[float], bool],
    *,
    whole: bool = False,
    optional: bool = False,
    hint: str = "",
) -> Callable:
    """A number validator: ``ok(x)`` must hold (``rule`` says it in words)."""

    def parse(v, key: str):
        if optional and _is_off(v):
            return None
        f = _number(v, key)
        if whole and not f.is_integer():
            raise ValueError(f"{key} must be a whole number {rule}, got {shown(f)}")
        if not ok(f):
            what = f"a whole number {rule}" if whole else rule
            off = " (or none)" if optional else ""
            raise ValueError(f"{key} must be {what}{off}, got {shown(f)}{hint}")
        return int(f) if whole else f

    parse.rule = rule  # for the documentation and the tests
    return parse


def _finite(*, optional: bool = False) -> Callable:
    return _ranged("a finite number", lambda f: True, optional=optional)


def _choice(options: tuple[str, ...], *, case: Callable[[str], str] = str.lower) -> Callable:
    def parse(v, key: str) -> str:
        t = case(v.strip()) if isinstance(v, str) else None
        if t not in options:
            raise ValueError(f"{key}: {shown(v)} is not one of {', '.join(options)}")
        return t

    return parse


def _bool(v, key: str) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, numbers.Real) and float(v) in (0.0, 1.0):
        return bool(v)
    t = v.strip().lower() if isinstance(v, str) else None
    if t in ("true", "yes", "y", "1", "on"):
        return True
    if t in ("false", "no", "n", "0", "off"):
        return False
    raise ValueError(f"{key}: {shown(v)} is not TRUE or FALSE")


def _model_type(v, key: str) -> str:
    try:
        return LassoModelType.parse(v.strip() if isinstance(v, str) else v).name
    except ValueError:
        names = ("LASSO, UNILASSO, GROUP_LASSO, HCGL, FCGL, COOPERATIVE_GROUP_LASSO, "
                 "COOPERATIVE_CLUSTER_GROUP_LASSO")
        raise ValueError(f"{key}: {shown(v)} is not one of {names}") from None


def _solver(v, key: str) -> str:
    """A CVXPY solver that is installed (CLARABEL, the default, always is)."""
    if not isinstance(v, str) or not v.strip():
        raise ValueError(f"{key}: {shown(v)} is not a solver name")
    name = v.strip().upper()
    if name == "CLARABEL":  # the default: no need to import CVXPY to know
        return name
    import cvxpy

    installed = cvxpy.installed_solvers()
    if name not in installed:
        raise ValueError(
            f"{key}: {shown(v)} is not an installed solver; installed: {', '.join(installed)}"
        )
    return name


_LIST_SEPARATORS = re.compile(r"[;,]")


def _lambdas(v, key: str):
    """``auto``, ``default``, one number or numbers separated by ``;`` or ``,`` (all >= 0).

    A comma between two digits with no decimal point anywhere (``0,1``) could be a decimal
    comma or a separator, so it is refused rather than read as two numbers.
    """
    if not isinstance(v, str):
        grid = [_number(v, key)]
    else:
        t = v.strip()
        if t.lower() == "auto":
            return "auto"
        if t.lower() == "default":
            return None
        if ";" in t:
            parts = t.split(";")
            if "," in t:
                raise ValueError(
                    f"{key}: {v!r} has commas between semicolons: decimal commas are not read; "
                    "write decimals with a point (0.5)"
                )
        else:
            if re.search(r"[0-9],[0-9]", t) and not re.search(r"[.eE]", t):
                raise ValueError(
                    f"{key}: {v!r} is ambiguous: a comma between digits could be a decimal "
                    "comma; write decimals with a point and separate values by '; ' or ', '"
                )
            parts = t.split(",")
        grid = []
        for part in parts:
            if not part.strip():
                raise ValueError(f"{key}: {v!r} has an empty value between separators")
            try:
                grid.append(text_number(part, "a number", blank_means=_BLANK_MEANS))
            except ValueError as err:
                raise ValueError(f"{key}: {err} (expected auto, default or numbers)") from None
    bad = [g for g in grid if g < 0]
    if bad:
        raise ValueError(f"{key} must be auto, default or numbers >= 0, got {shown(bad[0])}")
    twice = next((g for k, g in enumerate(grid) if g in grid[:k]), None)
    if twice is not None:  # one row per value in the scores: a repeat has no row of its own
        raise ValueError(f"{key}: {shown(twice)} is given twice; list each value once")
    return grid


def _sign_span(v, key: str):
    """``fit`` (the loss's span), none (equal weights) or a span >= 2."""
    if isinstance(v, str) and v.strip().lower() == "fit":
        return "fit"
    return _SIGN_SPAN(v, key)


_SIGN_SPAN = _ranged(">= 2", lambda f: f >= 2, optional=True,
                     hint=" (a span below 2 puts nearly all the weight on the last row)")
_sign_span.rule = ">= 2"


def _factor_names(v, key: str) -> list[str]:
    """Factor names separated by ``;`` or ``,`` (checked against the factors in ``_inputs``)."""
    if not isinstance(v, str):
        raise ValueError(f"{key}: {shown(v)} is not a list of factor names (separate names by "
                         "'; ' or ', ')")
    names = [part.strip() for part in _LIST_SEPARATORS.split(v)]
    if any(not name for name in names):
        raise ValueError(f"{key}: {v!r} has an empty name between separators")
    seen = {n for n in names if names.count(n) > 1}
    if seen:
        raise ValueError(f"{key}: {sorted(seen)[0]!r} is named twice")
    return names


def resolve_sign_span(params: dict) -> dict:
    """``auto_sign_ewma_span = fit`` as the estimator says it: ``auto_sign_use_fit_span``."""
    if params.get("auto_sign_ewma_span") == "fit":
        params["auto_sign_ewma_span"] = None
        params["auto_sign_use_fit_span"] = True
    return params


#: LassoModel parameters a sheet can set, with their validators.
MODEL_KEYS: dict[str, Callable] = {
    "model_type": _model_type,
    "reg_lambda": _ranged(">= 0", lambda f: f >= 0),
    "span": _ranged(
        ">= 2",
        lambda f: f >= 2,
        optional=True,
        hint=" (a span below 2 puts nearly all the weight on the last row)",
    ),
    "demean": _bool,
    "cutoff_fraction": _ranged("in (0, 1]", lambda f: 0 < f <= 1),
    "n_clusters": _ranged(">= 1", lambda f: f >= 1, whole=True, optional=True),
    "linkage_method": _choice(_LINKAGE_METHODS),
    "group_penalty": _choice(("normalized", "yuan_lin")),
    "l1_weight": _ranged("in [0, 1]", lambda f: 0 <= f <= 1),
    "nonneg": _bool,
    "warmup_period": _ranged(">= 0", lambda f: f >= 0, whole=True, optional=True),
    "solver": _solver,
    # cluster discovery of HCGL / FCGL (factorlasso 1.0.6's options)
    "dependence_measure": _choice(tuple(m.value for m in DependenceMeasure)),
    "gerber_threshold": _ranged("in [0, 1]", lambda f: 0 <= f <= 1),
    "distance_transform": _choice(tuple(m.value for m in DistanceTransform)),
    "cluster_correlation_transform": _choice(tuple(m.value for m in ClusterCorrelationTransform)),
    "cluster_correlation_span": _ranged(
        ">= 2",
        lambda f: f >= 2,
        optional=True,
        hint=" (a span below 2 puts nearly all the weight on the last row)",
    ),
    # data-driven signs (factorlasso's auto_sign_*); auto_sign_ewma_span "fit" is
    # auto_sign_use_fit_span (read_fit_settings)
    "auto_sign_constraints": _bool,
    "auto_sign_threshold_t": _ranged(">= 0", lambda f: f >= 0, optional=True),
    "auto_sign_variance": _choice(("independent", "date")),
    "auto_sign_ewma_span": _sign_span,
    "auto_sign_excluded_factors": _factor_names,
    "auto_sign_adaptive_weights": _bool,
    # empirical prior (factorlasso's apply_ols_prior): FL_PRIOR cells override it
    "apply_ols_prior": _bool,
    # factorlasso's loss_normalization: divide each asset's squared errors by the dates
    # (sample) or by its own weight mass (weight_sum)
    "loss_normalization": _choice(("sample", "weight_sum")),
    # model_type UNILASSO (factorlasso's unilasso_*): leave-one-out stage two, theta >= 0
    "unilasso_loo": _bool,
    "unilasso_non_negative": _bool,
    # expert prior settings (factorlasso 1.0.6): named sets and floors on the OLS centres
    "max_named_factors": _ranged("1 or 2", lambda f: f in (1, 2), whole=True),
    "named_set_max_vif": _ranged(">= 1", lambda f: 1 <= f < float("inf"), optional=True),
    "expert_prior_bound_n_std": _ranged(">= 0", lambda f: 0 <= f < float("inf"),
                                        optional=True),
    "expert_prior_hac_lags": _ranged(">= 0", lambda f: f >= 0, whole=True),
    "expert_prior_bound_centre": _choice(("prior", "floor")),
    "expert_prior_bound_scope": _choice(("all", "named")),
    # the last factorlasso options without a route (issue 15): the adaptive weights' exponent
    # and floor (the core's domain: finite and > 0), the budget rule of the floors, and the
    # prior selector (factorlasso has one: highest_r2)
    "auto_sign_adaptive_gamma": _ranged("> 0", lambda f: 0 < f < float("inf")),
    "auto_sign_adaptive_floor": _ranged("> 0", lambda f: 0 < f < float("inf")),
    "expert_prior_budget_rule": _choice(("n_std", "cluster_mean")),
    "prior_selection_type": _choice(("highest_r2",)),
}
#: Cross-validation settings (LassoModelCV).
CV_KEYS: dict[str, Callable] = {
    "cv_splits": _ranged(">= 2", lambda f: f >= 2, whole=True),
    "cv_lambdas": _lambdas,
    # a grid beyond a thousand values is a typo, and would cost a thousand fits per fold
    "cv_n_lambdas": _ranged("in [1, 1000]", lambda f: 1 <= f <= 1000, whole=True),
    "cv_lambda_min_ratio": _ranged("in (0, 1)", lambda f: 0 < f < 1),
}
#: Reporting and checking settings of the workbook layer (not estimator parameters).
REPORT_KEYS: dict[str, Callable] = {
    "annualization_factor": _ranged("> 0", lambda f: f > 0),
    "max_abs_return": _ranged("> 0", lambda f: f > 0, optional=True),
}


def check_setting(keys: dict[str, Callable], name: str, value, key: str | None = None):
    """Validate one non-blank value with the validator of ``name`` in ``keys``.

    ``key`` is the name shown in messages (``factor_span`` for ``span``); ``ValueError``
    carries the whole message. Used by the readers and by worksheet-function arguments that
    override a setting (``reg_lambda``, ``n_splits``).
    """
    key = key or name
    problem = cell_problem(value, f"; leave the cell blank for {_BLANK_MEANS}")
    if problem is not None:
        raise ValueError(f"{key}: {problem}")
    return keys[name](value, key)


@dataclass(frozen=True)
class SettingCell:
    """Where a setting's value is: its block, position and the key as written there."""

    block: Block
    i: int
    j: int
    key: str

    def error(self, message: str):
        """A :class:`WorkbookInputError` naming this cell (``message`` follows the key)."""
        return self.block.error(f"{self.key} {message}", self.i, self.j)


@dataclass
class FitSettings:
    """Parsed ``FL_SETTINGS``: model parameters, CV parameters, reporting and checks.

    Attributes
    ----------
    model : dict
        ``LassoModel`` parameters.
    cv : dict
        ``cv_splits``, ``cv_lambdas``, ``cv_n_lambdas``, ``cv_lambda_min_ratio`` when given.
    annualization_factor : float
    max_abs_return : float or None
        Bound of :func:`~._plausibility.check_plausible` (default 5; ``None`` = no bound).
    cells : dict
        Parameter -> :class:`SettingCell` of every value given, for messages that need the data.
    block : Block or None
    """

    model: dict
    cv: dict
    annualization_factor: float = 1.0
    max_abs_return: float | None = MAX_ABS_RETURN
    cells: dict = field(default_factory=dict)
    block: Block | None = None


def _parse(block: Block, keys: dict[str, Callable]) -> tuple[dict, dict]:
    out, cells = {}, {}
    for key, (value, _cell, (i, j)) in parse_keyvalue(block).items():
        if key not in keys:
            known = ", ".join(sorted(keys))
            raise block.error(f"unknown setting {key!r}; known settings: {known}", i, 0)
        if is_blank(value):
            continue
        try:
            out[key] = check_setting(keys, key, value)
        except ValueError as err:
            raise block.error(str(err), i, j) from None
        cells[key] = SettingCell(block, i, j, key)
    return out, cells


def read_fit_settings(block: Block | None) -> FitSettings:
    """Parse the factor-model settings (``FL_SETTINGS`` or a function's ``settings``)."""
    if block is None:
        return FitSettings({}, {})
    parsed, cells = _parse(block, {**MODEL_KEYS, **CV_KEYS, **REPORT_KEYS})
    model = {k: v for k, v in parsed.items() if k in MODEL_KEYS}
    resolve_sign_span(model)
    if model.get("expert_prior_budget_rule") == "cluster_mean" and not model.get(
            "apply_ols_prior"):
        raise cells["expert_prior_budget_rule"].error(
            "cluster_mean floors the OLS prior: it needs apply_ols_prior = TRUE (or n_std)")
    if model.get("expert_prior_bound_n_std") is not None and not model.get("apply_ols_prior"):
        raise cells["expert_prior_bound_n_std"].error(
            "floors the OLS prior: it needs apply_ols_prior = TRUE (or leave it blank)")
    kind = LassoModelType.parse(model.get("model_type", "LASSO"))
    if model.get("expert_prior_bound_n_std") is not None and kind.is_cooperative:
        # floors are hard constraints, which the cooperative penalty does not take
        raise cells["expert_prior_bound_n_std"].error(
            f"floors are hard constraints, which model_type {kind.name} does not take; use "
            "LASSO, GROUP_LASSO, HCGL or FCGL (or leave it blank)")
    cv = {k: v for k, v in parsed.items() if k in CV_KEYS}
    return FitSettings(
        model,
        cv,
        parsed.get("annualization_factor", 1.0),
        parsed.get("max_abs_return", MAX_ABS_RETURN),
        cells,
        block,
    )


#: MaximumDiversification parameters (and ``covariance``) a sheet can set.
PORTFOLIO_KEYS: dict[str, Callable] = {
    "covariance": _choice(("sample", "ewma", "factor")),
    "span": MODEL_KEYS["span"],
    "min_weights": _finite(optional=True),
    "max_weights": _finite(optional=True),
    "budget": _finite(optional=True),
    "min_budget": _finite(optional=True),
    "max_budget": _finite(optional=True),
    "max_short": _ranged("> 0", lambda f: f > 0, optional=True),
    "max_long": _ranged("> 0", lambda f: f > 0, optional=True),
    # a fraction of the amount traded: 10 typed for 10 bps (1000 %) or 1e300 reached the
    # solver, whose failure named no cell (random workbook sweep)
    "transaction_costs": _ranged(
        "between 0 and 1", lambda f: 0 <= f <= 1,
        hint="; it is a fraction of the amount traded (0.001 for 10 bps; "
             "transaction_cost_bps in FL_ROLLING_SETTINGS takes basis points)"),
    "management_fees": _finite(),
    "l1_coef": _ranged(">= 0", lambda f: f >= 0),
    "l2_coef": _ranged(">= 0", lambda f: f >= 0),
    "risk_free_rate": _finite(),
    "min_return": _finite(optional=True),
    "max_turnover": _ranged(">= 0", lambda f: f >= 0, optional=True),
    "solver": _solver,
}
