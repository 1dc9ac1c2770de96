"""Maximum-diversification inputs and reported statistics, shared by the jobs and the functions."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ._errors import WorkbookInputError
from ._inputs import show_label
from ._settings import MODEL_KEYS, PORTFOLIO_KEYS, REPORT_KEYS
from ._tables import Block, is_blank, is_error, parse_keyvalue

__all__ = [
    "MAXDIV_KEYS",
    "PortfolioSettings",
    "complete_rows",
    "portfolio_statistics",
    "read_portfolio_settings",
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
        ``LassoModel`` parameters for ``covariance = factor`` (worksheet functions only; a
        workbook takes them from ``FL_SETTINGS``).
    annualization_factor : float
        Scales the reported mean (``a``), volatilities and Sharpe ratio (``sqrt(a)``).
    block : Block or None
    """

    params: dict
    covariance: str
    model: dict
    annualization_factor: float
    block: Block | None


_MODEL_PREFIX = "factor_"
#: FLASSO_MAXDIV's own keys: the optimiser's, ``covariance`` and ``annualization_factor``.
MAXDIV_KEYS = {**PORTFOLIO_KEYS, **REPORT_KEYS}


def read_portfolio_settings(block: Block | None) -> PortfolioSettings:
    """``key | value`` portfolio settings (``FL_PORTFOLIO_SETTINGS`` or FLASSO_MAXDIV's).

    Keys are MaximumDiversification parameters and ``covariance``; with ``covariance = factor``
    the LassoModel parameters too (``model_type``, ``reg_lambda``, ...; ``factor_span`` and
    ``factor_solver`` for the two names both estimators use).
    """
    if block is None:
        return PortfolioSettings({}, "sample", {}, 1.0, None)
    params: dict = {}
    model: dict = {}
    for key, (value, _where, (i, j)) in parse_keyvalue(block).items():
        if key in MAXDIV_KEYS:
            target, name, parser = params, key, MAXDIV_KEYS[key]
        elif key.startswith(_MODEL_PREFIX) and key[len(_MODEL_PREFIX) :] in MODEL_KEYS:
            name = key[len(_MODEL_PREFIX) :]
            target, parser = model, MODEL_KEYS[name]
        elif key in MODEL_KEYS:
            target, name, parser = model, key, MODEL_KEYS[key]
        else:
            known = ", ".join(sorted(MAXDIV_KEYS))
            raise block.error(
                f"unknown setting {key!r}; known settings: {known} (and the "
                "factor-model keys with covariance = factor)",
                i,
                0,
            )
        if is_blank(value):
            continue
        if is_error(value):
            raise block.error(f"{key}: {value.strip()} is an Excel error value", i, j)
        try:
            target[name] = parser(value)
        except (ValueError, TypeError) as err:
            raise block.error(f"{key}: {err}", i, j) from None
    cov = params.pop("covariance", "sample")
    entries = parse_keyvalue(block)
    if cov not in ("sample", "ewma", "factor"):
        raise block.error(
            f"covariance: {cov!r} is not one of sample, ewma, factor", *entries["covariance"][2]
        )
    if cov == "ewma" and params.get("span") is None:
        raise block.error(
            "covariance ewma needs a span (e.g. span | 52)", *entries["covariance"][2]
        )
    if cov != "ewma" and params.get("span") is not None:
        raise block.error(
            f"span is the EWMA span of covariance ewma, but covariance is {cov}; "
            "for the factor model's span write factor_span",
            entries["span"][2][0],
            0,
        )
    if model and cov != "factor":
        first = next(iter(model))
        key = first if first in entries else _MODEL_PREFIX + first
        raise block.error(
            f"{key} is a factor-model setting, used only with covariance = factor",
            entries[key][2][0],
            0,
        )
    af = params.pop("annualization_factor", 1.0)
    if not math.isfinite(af) or af <= 0:
        raise block.error(
            f"annualization_factor must be > 0, got {af!r}", *entries["annualization_factor"][2]
        )
    return PortfolioSettings(params, cov, model, af, block)


def complete_rows(returns: pd.DataFrame, name: str, remedy: str) -> pd.DataFrame:
    """Returns without a gap, or an error naming the first missing one (a covariance of
    returns needs a value in every cell)."""
    missing = returns.isna().to_numpy()
    if missing.any():
        i, j = np.argwhere(missing)[0]
        raise WorkbookInputError(
            f"{returns.columns[j]!r} has no return on {show_label(returns.index[i])}: the sample "
            f"and EWMA covariances need a value in every cell {remedy}",
            name=name,
        )
    return returns


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
