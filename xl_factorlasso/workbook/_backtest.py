"""The ``backtest`` job's computation: the factor model re-estimated through time and the
walk-forward maximum-diversification backtest, as output tables; nothing here writes.

Inputs: the factor model's (``FL_RETURNS``, ``FL_FACTORS``, ``FL_SETTINGS``, ...), the
portfolio's bounds and constraints (``FL_PORTFOLIO_SETTINGS``, ``FL_CONSTRAINTS``,
``FL_ASSET_GROUPS``) and ``FL_ROLLING_SETTINGS`` (:mod:`._rolling_settings`). Every input is
read and checked, and the size of every table known, before the first fit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..core import LassoModel, LassoModelType, SolveError
from ..core.backtest import MaxDiversificationBacktest
from ..core.backtest._backtest import benchmark_span
from ..core.rolling import RollingLassoModel, rebalance_positions
from ..core.rolling._dates import window_start
from ._compute import FIT_INPUTS, _core_error, asset_groups, workbook_fit_inputs
from ._errors import WorkbookInputError
from ._inputs import show_label
from ._job_pictures import backtest_pictures
from ._portfolio import read_portfolio_settings, with_annualization
from ._results import (
    JobResult,
    OutputTable,
    cell_value,
    now_text,
    status_message,
    status_table,
    user_notes,
)
from ._rolling_settings import ROLLING_KEYS, RollingSettings, read_rolling_settings
from ._settings import check_setting, read_fit_settings
from ._tables import Block, parse_list

__all__ = ["BACKTEST_INPUTS", "BACKTEST_OUTPUTS", "EXCEL_ROWS", "compute_backtest", "drawdown",
           "growth"]

BACKTEST_INPUTS = FIT_INPUTS + ("FL_PORTFOLIO_SETTINGS", "FL_CONSTRAINTS", "FL_ASSET_GROUPS",
                                "FL_ROLLING_SETTINGS")
#: The outputs only this job writes (with FL_STATUS, which every job writes).
BACKTEST_OUTPUTS = ("FL_BETA_HISTORY", "FL_R2_HISTORY", "FL_RESID_VOL_HISTORY",
                    "FL_CLUSTER_HISTORY", "FL_WEIGHT_HISTORY", "FL_BACKTEST", "FL_BACKTEST_STATS")
#: Rows of a worksheet: a table longer than this cannot be written (and is never cut).
EXCEL_ROWS = 1_048_576
#: The columns of FL_BACKTEST_STATS after the strategy and the returns (gross / net).
STATS_COLUMNS = ["annualized_mean", "annualized_volatility", "sharpe_ratio", "sortino_ratio",
                 "max_drawdown", "calmar_ratio", "average_turnover", "total_costs"]


def growth(returns: pd.DataFrame) -> pd.DataFrame:
    """Cumulative return of each column, compounded: ``prod(1 + r) - 1`` up to each date."""
    return (1.0 + returns).cumprod() - 1.0


def drawdown(returns: pd.DataFrame) -> pd.DataFrame:
    """Loss from the highest wealth reached so far (starting wealth 1 included): ``<= 0``."""
    wealth = (1.0 + returns).cumprod()
    peak = np.maximum(wealth.cummax(), 1.0)
    return wealth / peak - 1.0


def _date(d) -> object:
    return pd.Timestamp(d).to_pydatetime()


def _override(rs: RollingSettings, key: str, value) -> None:
    """An argument of the job (``scheduler``, ``n_jobs``) over the sheet's value."""
    if value is None:
        return
    if key == "scheduler" and not isinstance(value, str):  # a dask.distributed.Client
        rs.scheduler = value
        rs.cells.pop(key, None)
        rs.arguments.add(key)
        return
    try:
        setattr(rs, key, check_setting(ROLLING_KEYS, key, value))
    except ValueError as err:
        raise WorkbookInputError(f"the {key} argument: {err}") from None
    rs.cells.pop(key, None)  # messages about it now name the argument, not the sheet
    rs.arguments.add(key)


def _portfolio(blocks: dict[str, Block], assets: list[str], rs: RollingSettings):
    """MaximumDiversification parameters of the backtest's factor strategy (bounds,
    constraints, groups, the cost per unit traded) and the annualisation, checked on cells."""
    from ..core.optimization import EquationError, parse_equation

    ps = read_portfolio_settings(blocks.get("FL_PORTFOLIO_SETTINGS"))
    ps = with_annualization(ps, read_fit_settings(blocks.get("FL_SETTINGS")))
    params = dict(ps.params)
    params.pop("span", None)  # the EWMA span of covariance = ewma: the benchmarks have theirs
    notes = []
    if ps.model:  # the factor_* keys shape the snapshot portfolio's model, not the backtest's
        notes.append(f"FL_PORTFOLIO_SETTINGS {', '.join(c.key for c in ps.model_cells.values())}"
                     " not used: the backtest re-fits the model of FL_SETTINGS")
    # One source for the cost per unit traded: charged in the backtest and in the objective.
    if rs.transaction_cost_bps is not None and "transaction_costs" in ps.cells:
        c = ps.cells["transaction_costs"]
        raise rs.error("transaction_cost_bps", (
            f"and FL_PORTFOLIO_SETTINGS!{c.block.cell(c.i, c.j)} transaction_costs both set "
            "the cost per unit traded; keep one (transaction_cost_bps 10 = transaction_costs "
            "0.001)"))
    if rs.transaction_cost_bps is not None:
        params["transaction_costs"] = rs.transaction_cost_bps / 1e4
    groups = asset_groups(blocks, assets)
    if groups is not None:
        params["groups"] = groups
    groups = groups or {}
    known = set(assets) | {t for ts in groups.values() for t in ts}
    constraints = parse_list(blocks["FL_CONSTRAINTS"]) if "FL_CONSTRAINTS" in blocks else []
    for text, cell in constraints:
        try:
            parse_equation(text, known)
        except EquationError as err:
            raise WorkbookInputError(f"{err} (the backtest's constraints name assets and "
                                     "FL_ASSET_GROUPS tags)", "FL_CONSTRAINTS", cell) from None
    if constraints:
        params["linear_constraints"] = [t for t, _ in constraints]
    return params, ps.annualization_factor, notes


def _planned_dates(index: pd.DatetimeIndex, rs: RollingSettings) -> int:
    """How many rebalancing dates have ``min_history`` rows: the most that can have a result,
    known before any fit (the tables' sizes follow from it)."""
    window = rs.rolling["window"]
    low = rs.rolling["min_history"] or (1 if window == "expanding" else window)
    n = 0
    for target in rebalance_positions(index, rs.rolling["rebalance"]):
        if target.position is not None:
            rows = target.position - window_start(target.position, window) + 1
            n += rows >= low
    return n


def _check_sizes(rs: RollingSettings, n_dates: int, assets, factors, defined) -> None:
    """Refuse, before any fit, a table longer than a worksheet (never cut silently)."""
    if n_dates == 0:
        key = "min_history" if "min_history" in rs.cells else "rebalance"
        raise rs.error(key, (
            f"gives no rebalancing date with enough history (min_history "
            f"{rs.rolling['min_history'] or rs.rolling['window']} rows, window "
            f"{rs.rolling['window']}, rebalance {rs.rolling['rebalance']}): every window "
            "would be too short; lower min_history or give more dates"))
    if defined is not None and "FL_BETA_HISTORY" not in defined:
        return
    rows = 1 + n_dates * len(assets) * len(factors)
    if rows > EXCEL_ROWS:
        raise WorkbookInputError(
            f"the loadings' history would need {rows:,} rows ({n_dates} dates x "
            f"{len(assets)} assets x {len(factors)} factors, one row per loading) and a "
            f"worksheet has {EXCEL_ROWS:,}; rebalance less often or start later "
            f"({rs.where('rebalance')}), fit fewer assets or factors, or remove the name "
            "FL_BETA_HISTORY to skip that table", name="FL_BETA_HISTORY")


def _dated_table(corner: str, frame: pd.DataFrame, columns, *, labels: bool = False) -> list:
    """``corner | columns...`` then one row per date of ``frame`` (``labels``: whole numbers,
    as cluster labels are shown)."""
    body = frame.reindex(columns=list(columns)).to_numpy(dtype=float)

    def value(v):
        v = cell_value(v)
        return int(v) if labels and v is not None else v

    return [[corner, *columns],
            *[[_date(d), *(value(v) for v in row)]
              for d, row in zip(frame.index, body, strict=True)]]


def _beta_history(results) -> list[list]:
    long = results.to_long()
    return [["date", "asset", "factor", "beta"],
            *[[_date(d), a, f, cell_value(b)] for d, a, f, b in zip(
                long["date"], long["asset"], long["factor"], long["beta"].to_numpy(),
                strict=True)]]


def compute_backtest(blocks: dict[str, Block], *, pictures: bool = True, progress=None,
                     scheduler=None, n_jobs=None, defined=None,
                     check_only: bool = False) -> JobResult | bool:
    """Re-estimate the factor model through time and backtest the maximum-diversification
    portfolio built on it, walk-forward; return every output table (nothing is written).

    Parameters
    ----------
    blocks : dict of str -> Block
        The inputs (:data:`BACKTEST_INPUTS`).
    pictures : bool, default True
    progress : callable, optional
        ``progress(done, total)``, passed to the fit (an exception it raises stops the job).
    scheduler, n_jobs : optional
        Override ``FL_ROLLING_SETTINGS``' ``scheduler`` (an address or a
        ``dask.distributed.Client``) and ``n_jobs`` when not None.
    defined : collection of str, optional
        The output names the workbook defines (a table it does not define is not sized).
    check_only : bool, default False
        Stop after every check that precedes the fits and return True (``inspect``).

    Returns
    -------
    JobResult
        FL_BETA_HISTORY, FL_R2_HISTORY, FL_RESID_VOL_HISTORY, FL_CLUSTER_HISTORY (cluster
        models), FL_WEIGHT_HISTORY, FL_BACKTEST, FL_BACKTEST_STATS and FL_STATUS.
    """
    rs = read_rolling_settings(blocks.get("FL_ROLLING_SETTINGS"))
    _override(rs, "scheduler", scheduler)
    _override(rs, "n_jobs", n_jobs)
    inputs = workbook_fit_inputs(blocks)
    x, y = inputs.factors, inputs.returns
    assets, factors = list(y.columns), list(x.columns)
    if rs.history_factor is not None and rs.history_factor not in factors:
        raise rs.error("history_factor", f"{rs.history_factor!r} is not a factor of FL_FACTORS "
                                         f"({', '.join(factors)})")
    history_factor = rs.history_factor or factors[0]
    params, annualization, notes = _portfolio(blocks, assets, rs)
    n_dates = _planned_dates(x.index, rs)
    _check_sizes(rs, n_dates, assets, factors, defined)
    if "ewma" in rs.benchmarks:
        try:
            benchmark_span(rs.ewma_span, inputs.params.get("span"), annualization, len(assets))
        except ValueError as err:
            raise rs.error("ewma_span", str(err).removeprefix("ewma_span:").lstrip()) from None
    if check_only:
        return True

    rolling = RollingLassoModel(LassoModel(**inputs.params), **rs.rolling,
                                annualization_factor=inputs.annualization_factor,
                                n_jobs=rs.n_jobs, scheduler=rs.scheduler)
    from ..core.optimization import MaximumDiversification

    result = JobResult("backtest")
    try:
        with user_notes() as caught:
            # The portfolio keeps its holdings at a date it cannot rebalance unless the sheet
            # says stop; FL_BACKTEST's cumulative returns and drawdowns compound, so the
            # statistics' drawdowns do too (one answer in both tables).
            bt = MaxDiversificationBacktest(
                rolling=rolling, portfolio=MaximumDiversification(**params),
                benchmarks=rs.benchmarks, ewma_span=rs.ewma_span,
                on_failure="raise" if rs.rolling["on_failure"] == "raise" else "previous",
                annualization_factor=annualization, compounded=True)
            bt.fit(x, y, progress=progress)
            rolling = bt.rolling_
    except (ConnectionError, ImportError) as err:  # the Dask cluster: unreachable, not installed
        text = str(err)
        raise rs.error("scheduler", text.removeprefix("scheduler").lstrip(": ")) from None
    except (ValueError, SolveError) as err:
        text = str(err)
        if "rebalancing date" in text[:30]:  # on_failure = stop: the first failed date
            raise rs.error("on_failure", f"= stop: {text}; with previous or skip the other "
                                         "dates carry on") from None
        raise _core_error(err, inputs) from None
    notes += sorted(caught)
    results = rolling.results_
    if len(results) == 0:
        reasons = "; ".join(f"{show_label(r.date)}: {r.reason}"
                            for r in rolling.failures_.head(3).itertuples())
        raise WorkbookInputError(
            f"no rebalancing date could be fitted ({reasons}); check min_history and the "
            "returns", name="FL_ROLLING_SETTINGS")

    result.outputs.append(OutputTable("FL_BETA_HISTORY", _beta_history(results)))
    result.outputs.append(OutputTable("FL_R2_HISTORY",
                                      _dated_table("date", results.get_r2(), assets)))
    result.outputs.append(OutputTable(
        "FL_RESID_VOL_HISTORY", _dated_table("date", results.get_residual_vols(), assets)))
    clusters = results.get_clusters()
    if clusters.notna().to_numpy().any():
        result.outputs.append(OutputTable("FL_CLUSTER_HISTORY",
                                          _dated_table("date", clusters, assets,
                                                       labels=True)))
    else:
        notes.append(f"FL_CLUSTER_HISTORY not written: model_type "
                     f"{LassoModelType.parse(inputs.params.get('model_type', 'LASSO')).name} "
                     "has no clusters")
    backtest = _backtest_tables(result, bt, assets)
    failures = _failures(rolling, bt)
    if pictures:
        betas = results.get_beta(history_factor)
        backtest_pictures(result, betas, history_factor, backtest)
    result.notes = list(notes)
    model = LassoModelType.parse(inputs.params.get("model_type", "LASSO")).name
    result.status = {
        "time": now_text(),
        "model": model,
        "reg_lambda": float(rolling.estimator.reg_lambda),
        "rebalance": rs.rolling["rebalance"],
        "window": rs.rolling["window"],
        "dates fitted": f"{len(rolling.fit_info_)} of {len(rolling.dates_)}",
        "assets x factors x dates": f"{len(assets)} x {len(factors)} x {len(y)}",
    }
    result.status["strategies"] = ", ".join(bt.strategies_)
    result.status["cost per unit traded"] = float(params.get("transaction_costs", 0.0))
    result.status["failures"] = len(failures)
    for k, text in enumerate(failures, start=1):
        result.status[f"failure {k}"] = text
    result.status["message"] = status_message(result)
    result.outputs.append(status_table([result]))
    result.model = bt
    warm_up = int(rolling.failures_["reason"].str.startswith("too little history").sum())
    failed = len(failures) - (warm_up > 0)  # the warm-up is one line of FL_STATUS
    result.summary = (
        f"backtest: {model}, {len(rolling.fit_info_)} of {len(rolling.dates_)} rebalancing "
        f"dates fitted ({warm_up} before min_history: warm-up), {failed} "
        f"failure{'' if failed == 1 else 's'}; strategies {', '.join(bt.strategies_)}")
    return result


def _failures(rolling, bt) -> list[str]:
    """Every failure with its date, strategy (``model`` for the factor model's fit) and
    reason. The dates before ``min_history`` are the warm-up, expected: one line for all."""
    model = rolling.failures_.assign(strategy="model")
    rows = pd.concat([model, bt.failures_], ignore_index=True)
    early = rows["reason"].str.startswith("too little history")
    out = []
    if early.any():
        dates = pd.DatetimeIndex(rows.loc[early, "date"]).unique().sort_values()
        out.append(f"{len(dates)} dates with too little history (before min_history) skipped: "
                   f"{show_label(dates[0])} .. {show_label(dates[-1])}")
    # The factor strategy's failure at a date the model's fit failed says the same again.
    failed_fits = set(pd.DatetimeIndex(model["date"]))
    for row in rows.loc[~early].itertuples():
        if row.strategy == "factor" and pd.Timestamp(row.date) in failed_fits:
            continue
        out.append(f"{show_label(row.date)} {row.strategy}: {row.reason} ({row.action})")
    return out


def _backtest_tables(result: JobResult, bt, assets: list[str]):
    """FL_WEIGHT_HISTORY, FL_BACKTEST and FL_BACKTEST_STATS; returns (cumulative, drawdown)
    of the net returns for the picture."""
    weights = bt.weights_["factor"]
    result.outputs.append(OutputTable("FL_WEIGHT_HISTORY", _dated_table("date", weights,
                                                                        assets)))
    strategies = list(bt.strategies_)
    net = pd.DataFrame({s: bt.returns_[(s, "net")] for s in strategies})
    cumulative, down = growth(net), drawdown(net)
    # Measures side by side: a reader compares the strategies' returns, then their growth,
    # then their drawdowns.
    header = ["date", *(f"{s} return" for s in strategies),
              *(f"{s} cumulative" for s in strategies), *(f"{s} drawdown" for s in strategies)]
    values = np.hstack([net.to_numpy(float), cumulative.to_numpy(float), down.to_numpy(float)])
    result.outputs.append(OutputTable("FL_BACKTEST", [
        header, *[[_date(d), *(cell_value(v) for v in row)]
                  for d, row in zip(net.index, values, strict=True)]]))
    stats = bt.stats_
    table = [["strategy", "returns", *STATS_COLUMNS]]
    for strategy, kind in stats.index:
        table.append([strategy, kind, *(cell_value(v) for v in
                                        stats.loc[(strategy, kind), STATS_COLUMNS])])
    result.outputs.append(OutputTable("FL_BACKTEST_STATS", table))
    return cumulative, down
