"""The workbook contract: which workbook-scope names hold inputs and outputs, and their layout.

This module is the single place that lists the ``FL_*`` names. Everything else (readers,
validation, the refit jobs, the templates, ``xl-factorlasso inspect`` and the documentation in
``docs/workbook.md``) is driven from :data:`CONTRACT`.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CONTRACT", "INPUTS", "OUTPUTS", "NameSpec", "JOBS", "spec"]

#: The jobs a ribbon button or the CLI can run.
JOBS = ("refit", "refit_cv", "optimise_portfolio", "backtest", "clear_outputs")


@dataclass(frozen=True)
class NameSpec:
    """One named range of the contract.

    Attributes
    ----------
    name : str
        The workbook-scope defined name.
    role : {"input", "output"}
    layout : str
        ``"panel"`` (header row of labels, first column dates, numbers below), ``"matrix"``
        (assets down, labels across), ``"keyvalue"`` (two columns), ``"list"`` (one column),
        ``"series"`` (asset, value) or ``"table"`` (an output table with a header row).
    required_by : tuple of str
        Jobs that cannot run without it (inputs only).
    description : str
    """

    name: str
    role: str
    layout: str
    required_by: tuple[str, ...]
    description: str


CONTRACT: tuple[NameSpec, ...] = (
    # ---- inputs
    NameSpec(
        "FL_RETURNS",
        "input",
        "panel",
        ("refit", "refit_cv", "optimise_portfolio", "backtest"),
        "Asset returns: header row of asset names, first column dates, returns below; "
        "a blank cell is a missing return.",
    ),
    NameSpec(
        "FL_FACTORS",
        "input",
        "panel",
        ("refit", "refit_cv", "backtest"),
        "Factor returns on the same dates: header row of factor names, first column dates.",
    ),
    NameSpec(
        "FL_SIGNS",
        "input",
        "matrix",
        (),
        "Sign constraints, assets x factors: blank = free, 0 = zero, 1 or + = non-negative, "
        "-1 or - = non-positive.",
    ),
    NameSpec(
        "FL_PRIOR",
        "input",
        "matrix",
        (),
        "Prior loadings (assets x factors) the penalty shrinks towards; blank = 0.",
    ),
    NameSpec(
        "FL_GROUPS", "input", "series", (),
        "Asset -> group label, for model_type GROUP_LASSO and COOPERATIVE_GROUP_LASSO.",
    ),
    NameSpec(
        "FL_SETTINGS",
        "input",
        "keyvalue",
        (),
        "LassoModel / LassoModelCV parameters, one 'key | value' per row (model_type, "
        "reg_lambda, span, cutoff_fraction, l1_weight, n_clusters, cv_splits, cv_lambdas, ...).",
    ),
    NameSpec(
        "FL_PRIOR_FACTOR",
        "input",
        "series",
        (),
        "The factor(s) each asset's OLS prior is taken on (apply_ols_prior), one 'asset | "
        "factor | optional second factor' per row; assets not listed take their best single "
        "factor.",
    ),
    NameSpec(
        "FL_EXCLUDED",
        "input",
        "series",
        (),
        "Loadings pinned to 0 (excluded_factors), one 'asset | factor' per row; list an asset "
        "on several rows to exclude several factors.",
    ),
    NameSpec(
        "FL_EXPOSURE_BUDGET",
        "input",
        "matrix",
        (),
        "Exposure budgets of the OLS prior's floors (expert_prior_exposure_budget), assets x "
        "factors like FL_PRIOR: numbers >= 0, blank = none; needs apply_ols_prior.",
    ),
    NameSpec(
        "FL_PORTFOLIO_SETTINGS",
        "input",
        "keyvalue",
        (),
        "MaximumDiversification parameters, one 'key | value' per row, plus covariance = "
        "sample | ewma | factor.",
    ),
    NameSpec(
        "FL_CONSTRAINTS",
        "input",
        "list",
        (),
        "Linear portfolio constraints, one per row, e.g. 'Equity <= 0.6' or 'SPX >= 2*UST10'.",
    ),
    NameSpec(
        "FL_ASSET_GROUPS",
        "input",
        "matrix",
        (),
        "Asset x grouping tags for constraints: header row of grouping names (e.g. Sector, "
        "Region), first column assets, each cell a tag.",
    ),
    NameSpec(
        "FL_PREV_WEIGHTS",
        "input",
        "series",
        (),
        "Current portfolio weights (asset, weight) for turnover and transaction costs.",
    ),
    NameSpec(
        "FL_ROLLING_SETTINGS",
        "input",
        "keyvalue",
        (),
        "Walk-forward backtest settings, one 'key | value' per row: rebalance, window, "
        "min_history, on_failure, benchmarks, ewma_span, transaction_cost_bps, "
        "history_factor, scheduler, n_jobs.",
    ),
    # ---- outputs
    NameSpec("FL_COEF", "output", "table", (), "Fitted loadings, assets x factors."),
    NameSpec(
        "FL_DERIVED_SIGNS",
        "output",
        "table",
        (),
        "The sign of every loading the fit imposed, assets x factors, as in FL_SIGNS (1, -1, "
        "0, blank = free): FL_SIGNS over the signs derived from the data "
        "(auto_sign_constraints).",
    ),
    NameSpec(
        "FL_PRIOR_USED",
        "output",
        "table",
        (),
        "The prior centre the fit shrank each loading towards, assets x factors: the OLS "
        "prior (apply_ols_prior) with the filled FL_PRIOR cells over it, after the signs; "
        "blank when no prior is in force.",
    ),
    NameSpec("FL_INTERCEPT", "output", "table", (), "Intercept (alpha_const_) per asset."),
    NameSpec("FL_R2", "output", "table", (), "In-sample R^2 per asset."),
    NameSpec("FL_CLUSTERS", "output", "table", (), "Cluster or group label per asset."),
    NameSpec(
        "FL_RESID_VOL",
        "output",
        "table",
        (),
        "Total, systematic and residual volatility per asset (factor-model covariance).",
    ),
    NameSpec(
        "FL_CV",
        "output",
        "table",
        (),
        "Cross-validation: lambda x fold out-of-sample R^2, their mean, the best lambda.",
    ),
    NameSpec("FL_WEIGHTS", "output", "table", (), "Maximum-diversification weights per asset."),
    NameSpec(
        "FL_PORTFOLIO_STATS",
        "output",
        "table",
        (),
        "Portfolio statistics: diversification ratio, volatility, return, Sharpe, ...",
    ),
    NameSpec(
        "FL_RISK",
        "output",
        "table",
        (),
        "Risk attribution of the portfolio: per factor its exposure (B'w), contribution to "
        "volatility and share, then the specific part and the total (factor covariance).",
    ),
    NameSpec(
        "FL_RISK_ASSETS",
        "output",
        "table",
        (),
        "Each asset's weight, contribution to the portfolio's volatility (Euler) and share; "
        "with the factor covariance also its systematic and specific parts.",
    ),
    NameSpec(
        "FL_BETA_HISTORY",
        "output",
        "table",
        (),
        "Every loading at every rebalancing date, one row each: date | asset | factor | beta "
        "(zeros included, so a PivotTable of it is complete).",
    ),
    NameSpec("FL_R2_HISTORY", "output", "table", (),
             "In-sample R^2 of each asset (across) at each rebalancing date (down)."),
    NameSpec("FL_RESID_VOL_HISTORY", "output", "table", (),
             "Residual volatility of each asset (across, annualised as FL_RESID_VOL) at each "
             "rebalancing date (down)."),
    NameSpec("FL_CLUSTER_HISTORY", "output", "table", (),
             "Cluster label of each asset at each rebalancing date (cluster and group models; "
             "labels kept stable from date to date)."),
    NameSpec("FL_WEIGHT_HISTORY", "output", "table", (),
             "Weights of the factor strategy held after trading at each rebalancing date "
             "(assets across)."),
    NameSpec(
        "FL_BACKTEST",
        "output",
        "table",
        (),
        "Walk-forward backtest, one row per date after the first rebalancing: each "
        "strategy's return net of costs, its cumulative return and its drawdown.",
    ),
    NameSpec(
        "FL_BACKTEST_STATS",
        "output",
        "table",
        (),
        "Per strategy, gross and net of costs: annualised mean, volatility, Sharpe, Sortino, "
        "max drawdown, Calmar, average turnover, total costs.",
    ),
    NameSpec(
        "FL_STATUS",
        "output",
        "table",
        (),
        "Last run: one column per step (refit, refit_cv, optimise_portfolio, backtest) with "
        "its time, model, lambda, scores, solver, inputs digest, failures and message.",
    ),
)

INPUTS = tuple(s.name for s in CONTRACT if s.role == "input")
OUTPUTS = tuple(s.name for s in CONTRACT if s.role == "output")
_BY_NAME = {s.name: s for s in CONTRACT}


def spec(name: str) -> NameSpec:
    """The contract entry of ``name`` (case-insensitive, as Excel names are)."""
    try:
        return _BY_NAME[name.upper()]
    except KeyError:
        raise KeyError(f"{name!r} is not a name of the workbook contract") from None


def contract_markdown() -> str:
    """The contract as the markdown table of ``docs/workbook.md`` (kept in sync by a test)."""
    lines = ["| name | role | layout | needed by | what it holds |", "|---|---|---|---|---|"]
    for s in CONTRACT:
        needed = ", ".join(s.required_by) or "optional"
        lines.append(f"| `{s.name}` | {s.role} | {s.layout} | {needed} | {s.description} |")
    return "\n".join(lines)
