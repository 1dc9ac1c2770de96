"""Maximum-diversification inputs and reported statistics, shared by the jobs and the functions."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from ._errors import WorkbookInputError
from ._inputs import show_label
from ._plausibility import MAX_ABS_RETURN
from ._settings import MODEL_KEYS, PORTFOLIO_KEYS, REPORT_KEYS, SettingCell, check_setting
from ._tables import Block, is_blank, parse_keyvalue, shown

__all__ = [
    "MAXDIV_KEYS",
    "PortfolioSettings",
    "complete_rows",
    "covariance_rows",
    "portfolio_statistics",
    "read_portfolio_settings",
    "returns_problem",
    "statistics_table",
    "with_annualization",
]


@dataclass
class PortfolioSettings:
    """Parsed portfolio settings.

    Attributes
    ----------
    params : dict
        ``MaximumDiversification`` parameters.
    covariance : {"sample", "ewma", "factor"}
    model : dict
        ``LassoModel`` parameters for ``covariance = factor`` (the ``factor_*`` keys, and in a
        worksheet function the plain model keys too).
    annualization_factor : float
        Scales the reported mean (``a``), volatilities and Sharpe ratio (``sqrt(a)``).
    block : Block or None
    max_abs_return : float or None
        Bound of :func:`~._plausibility.check_plausible` for the returns (default 5).
    cells : dict
        ``MaximumDiversification`` parameter -> :class:`~._settings.SettingCell` of its value.
    model_cells : dict
        ``LassoModel`` parameter -> :class:`~._settings.SettingCell` (``factor_span`` ...).
    """

    params: dict
    covariance: str
    model: dict
    annualization_factor: float
    block: Block | None
    max_abs_return: float | None = MAX_ABS_RETURN
    cells: dict = field(default_factory=dict)
    model_cells: dict = field(default_factory=dict)

    def model_overrides(self) -> dict:
        """``{parameter: (value, input name, SettingCell)}``: the ``overrides`` of
        :func:`~._inputs.fit_inputs` for the factor model of ``covariance = factor``."""
        name = self.block.name if self.block is not None else "FL_PORTFOLIO_SETTINGS"
        return {k: (v, name, self.model_cells.get(k)) for k, v in self.model.items()}


_MODEL_PREFIX = "factor_"
#: FLASSO_MAXDIV's own keys: the optimiser's, ``covariance`` and the reporting ones.
MAXDIV_KEYS = {**PORTFOLIO_KEYS, **REPORT_KEYS}


def read_portfolio_settings(block: Block | None) -> PortfolioSettings:
    """``key | value`` portfolio settings (``FL_PORTFOLIO_SETTINGS`` or FLASSO_MAXDIV's).

    Keys are MaximumDiversification parameters, ``covariance``, ``annualization_factor`` and
    ``max_abs_return``; with ``covariance = factor`` the LassoModel parameters too
    (``model_type``, ``reg_lambda``, ...; ``factor_span`` and ``factor_solver`` for the two
    names both estimators use). Each value is checked with the optimiser's rule, and the
    bounds against each other, naming the cell.
    """
    if block is None:
        return PortfolioSettings({}, "sample", {}, 1.0, None)
    params: dict = {}
    model: dict = {}
    cells: dict[str, SettingCell] = {}
    model_cells: dict[str, SettingCell] = {}
    for key, (value, _where, (i, j)) in parse_keyvalue(block).items():
        if key in MAXDIV_KEYS:
            target, where, name, keys = params, cells, key, MAXDIV_KEYS
        elif key.startswith(_MODEL_PREFIX) and key[len(_MODEL_PREFIX) :] in MODEL_KEYS:
            target, where, name, keys = model, model_cells, key[len(_MODEL_PREFIX) :], MODEL_KEYS
        elif key in MODEL_KEYS:
            target, where, name, keys = model, model_cells, key, MODEL_KEYS
        else:
            known = ", ".join(sorted(MAXDIV_KEYS))
            raise block.error(
                f"unknown setting {key!r}; known settings: {known} (and the "
                "factor-model keys with covariance = factor)",
                i,
                0,
            )
        if name in where:
            raise block.error(
                f"{key} sets the factor model's {name}, as does {where[name].key} (at "
                f"{block.cell(where[name].i, 0)}); keep one",
                i,
                0,
            )
        if is_blank(value):
            continue
        try:
            target[name] = check_setting(keys, name, value, key)
        except ValueError as err:
            raise block.error(str(err), i, j) from None
        where[name] = SettingCell(block, i, j, key)
    cov = params.pop("covariance", "sample")
    if cov == "ewma" and params.get("span") is None:
        at = cells["covariance"]
        raise block.error("covariance ewma needs a span (e.g. span | 52)", at.i, at.j)
    if cov != "ewma" and params.get("span") is not None:
        raise block.error(
            f"span is the EWMA span of covariance ewma, but covariance is {cov}; "
            "for the factor model's span write factor_span",
            cells["span"].i,
            0,
        )
    if model and cov != "factor":
        first = model_cells[next(iter(model))]
        raise block.error(
            f"{first.key} is a factor-model setting, used only with covariance = factor",
            first.i,
            0,
        )
    _check_bounds(params, cells)
    af = params.pop("annualization_factor", 1.0)
    bound = params.pop("max_abs_return", MAX_ABS_RETURN)
    cells = {k: c for k, c in cells.items() if k in params}
    return PortfolioSettings(params, cov, model, af, block, bound, cells, model_cells)


def _check_bounds(params: dict, cells: dict[str, SettingCell]) -> None:
    """Bounds that contradict each other or the optimiser's defaults, named on their cells."""

    def at(key: str) -> str:
        c = cells.get(key)
        return "the default" if c is None else c.block.cell(c.i, c.j)

    lo, hi = params.get("min_weights", 0.0), params.get("max_weights", 1.0)
    if lo is not None and hi is not None and lo > hi:
        if "max_weights" in cells:
            raise cells["max_weights"].error(
                f"{shown(hi)} is below min_weights {shown(lo)} ({at('min_weights')}); no weight "
                "can satisfy both"
            )
        raise cells["min_weights"].error(
            f"{shown(lo)} is above max_weights {shown(hi)} (the default); set max_weights too"
        )
    for key in ("min_budget", "max_budget"):
        if params.get(key) is not None and params.get("budget", 1.0) is not None:
            raise cells[key].error(
                "needs budget | none: a budget (default 1) already fixes the sum of the weights"
            )
    lo, hi = params.get("min_budget"), params.get("max_budget")
    if lo is not None and hi is not None and lo > hi:
        raise cells["max_budget"].error(
            f"{shown(hi)} is below min_budget {shown(lo)} ({at('min_budget')})"
        )


def complete_rows(returns: pd.DataFrame, name: str, remedy: str) -> pd.DataFrame:
    """Returns without a gap, or an error naming the first missing one (a covariance of
    returns needs a value in every cell, and at least two dates)."""
    missing = returns.isna().to_numpy()
    if missing.any():
        i, j = np.argwhere(missing)[0]
        raise WorkbookInputError(
            f"{returns.columns[j]!r} has no return on {show_label(returns.index[i])}: the sample "
            f"and EWMA covariances need a value in every cell {remedy}",
            name=name,
        )
    if len(returns) < 2:
        raise WorkbookInputError(
            f"only {len(returns)} date: a covariance of the returns needs at least 2", name=name
        )
    return returns


def returns_problem(message: str) -> str | None:
    """The optimiser's ValueError ``message`` in the returns range's words when it is about
    them (the core's ``X``; a variance the returns gave, e.g. a column with the same return on
    every date), else None: the job and the worksheet functions name the returns for it, not
    the portfolio settings."""
    if message.startswith("X "):  # the optimiser's name for the returns
        return "the range " + message[2:]
    if message.startswith(("the sample covariance", "the EWMA covariance")):
        return message
    if message.startswith("FactorCovariance gives zero volatility"):  # (covariance = factor)
        # no loading and no residual: the asset's returns do not vary (it was blamed on
        # FL_PORTFOLIO_SETTINGS, by the core's class name)
        return ("the factor model " + message[len("FactorCovariance "):] + ": its returns "
                "do not vary on the rows of the fit (a suspended or stale price?)")
    return None


def covariance_rows(returns: pd.DataFrame, ps: PortfolioSettings, name: str,
                    remedy: str) -> pd.DataFrame:
    """:func:`complete_rows`, and with ``covariance = ewma`` a span whose weights count the
    rows as more equal rows than assets (their effective sample size, docs/maxdiv.md), else
    an error on the span's cell: checked here, before the solve, in the sheet's terms."""
    from ..core.optimization._risk import ewma_singular_reason

    x = complete_rows(returns, name, remedy)
    if ps.covariance == "ewma":
        n = x.shape[1]
        reason = ewma_singular_reason(
            len(x), n, float(ps.params["span"]),
            remedy=f"give a span above {n} (with more than {n} dates of returns) or use "
                   "covariance = factor")
        if reason is not None:
            raise ps.cells["span"].block.error(reason, ps.cells["span"].i, ps.cells["span"].j)
    return x


def _number(v):
    return None if v is None or not math.isfinite(v) else float(v)


def portfolio_statistics(estimator, portfolio, ps: PortfolioSettings) -> list[list]:
    """``[statistic, value]`` rows: the optimiser's ratio and risk, then the measures of the
    portfolio on the returns (``portfolio``, may be None), annualised by
    ``ps.annualization_factor``."""
    af = ps.annualization_factor
    values = estimator.problem_values_
    stats = [
        ["diversification_ratio", _number(values["diversification_ratio"])],
        ["volatility", _number(float(values["risk"]) * math.sqrt(af))],
    ]
    if portfolio is not None:
        s = portfolio.summary()
        stats += [
            ["mean", _number(s["mean"] * af)],
            ["standard_deviation", _number(s["standard_deviation"] * math.sqrt(af))],
            ["sharpe_ratio", _number(s["sharpe_ratio"] * math.sqrt(af))],
            ["diversification", _number(s["diversification"])],
            ["turnover", _number(s["turnover"])],
            ["total_cost", _number(s["total_cost"])],
            ["total_fee", _number(s["total_fee"])],
            ["effective_number_assets", _number(s["effective_number_assets"])],
            ["observations", len(portfolio.returns) if hasattr(portfolio, "returns") else None],
        ]
    return stats


#: A weight counts as invested above this (the optimiser's weights are polished to exact zeros).
INVESTED = 1e-6


def with_annualization(ps: PortfolioSettings, fit_settings) -> PortfolioSettings:
    """``ps`` with the annualisation its statistics use: the portfolio settings' own factor
    when they set one, else the factor model's settings' (``FL_SETTINGS``; a
    :class:`~._settings.FitSettings`), else 1. One portfolio gets one convention however the
    workbook splits its settings, in the job and in FLASSO_MAXDIV alike."""
    if ps.block is not None and "annualization_factor" in parse_keyvalue(ps.block):
        return ps
    factor = fit_settings.annualization_factor if fit_settings is not None else 1.0
    return replace(ps, annualization_factor=factor)


def statistics_table(estimator, portfolio, ps: PortfolioSettings, weights) -> list[list]:
    """The rows of FL_PORTFOLIO_STATS (and of FLASSO_MAXDIV's statistics): the covariance, the
    annualisation factor used, :func:`portfolio_statistics`, the number of assets invested."""
    n_invested = int((np.abs(np.asarray(weights, dtype=float)) > INVESTED).sum())
    return [["covariance", ps.covariance], ["annualization_factor", ps.annualization_factor],
            *portfolio_statistics(estimator, portfolio, ps), ["n_invested", n_invested]]
