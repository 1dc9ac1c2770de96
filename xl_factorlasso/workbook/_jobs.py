"""The jobs behind the ribbon buttons and the CLI: read the FL_* inputs, compute, write outputs.

Every job follows the same order, which is also what the remote engine requires:

1. read every input it needs (nothing has been written yet);
2. validate and compute; any problem raises :class:`WorkbookInputError` (or a core error)
   and the workbook is left untouched;
3. plan the writes: each output table goes to its name's top-left cell; if it needs more room
   than the name has, the extra cells must be empty, otherwise the job stops *before writing*;
4. clear each output's previous area, write the table, re-point the name when the shape changed.
"""

from __future__ import annotations

import datetime as dt
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..core import (
    LassoModel,
    LassoModelCV,
    LassoModelType,
    SolveError,
    assemble_factor_covariance,
)
from ._contract import OUTPUTS, spec
from ._errors import WorkbookInputError, cell_address
from ._inputs import FitInputs, check_labels, fit_inputs, tag_cell
from ._io import Area, WorkbookIO
from ._portfolio import complete_rows, portfolio_statistics, read_portfolio_settings
from ._tables import (
    Block,
    is_blank,
    parse_list,
    parse_matrix,
    parse_panel,
    parse_series,
)

__all__ = [
    "JobResult",
    "OutputTable",
    "Picture",
    "clear_outputs",
    "compute_refit",
    "optimise_portfolio",
    "read_blocks",
    "refit",
    "refit_cv",
    "run_job",
]

PICTURE_NAMES = ("FL_HEATMAP", "FL_DENDROGRAM")


@dataclass
class OutputTable:
    """A table for one output name (header row included)."""

    name: str
    values: list


@dataclass
class Picture:
    """A PNG to place beside an output name."""

    name: str
    png: bytes
    beside: str  # the output name it sits to the right of
    row_offset: int = 0
    width: int = 480
    height: int = 360


@dataclass
class JobResult:
    """What a job computed and wrote."""

    job: str
    outputs: list[OutputTable] = field(default_factory=list)
    pictures: list[Picture] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    summary: str = ""
    model: object = None


# --------------------------------------------------------------------------- reading
def read_blocks(io: WorkbookIO, wanted: tuple[str, ...], required: tuple[str, ...]):
    """Read the named inputs as :class:`Block` s; a missing required name is an error."""
    names = io.names()
    blocks: dict[str, Block] = {}
    for name in wanted:
        area = names.get(name)
        if area is None:
            if name in required:
                raise WorkbookInputError(
                    f"the workbook has no name {name} ({spec(name).description})", name=name
                )
            continue
        values = io.read(area)
        blocks[name] = Block.of(name, values, area.min_row, area.min_col)
    return blocks


def workbook_fit_inputs(blocks: dict[str, Block], overrides: dict | None = None) -> FitInputs:
    """The factor-model inputs of a workbook (``FL_*`` blocks), validated and aligned.

    ``overrides`` (parameter -> value) win over ``FL_SETTINGS``: the ``factor_*`` keys of
    ``FL_PORTFOLIO_SETTINGS`` for the portfolio's factor covariance.
    """
    return fit_inputs(
        parse_panel(blocks["FL_RETURNS"], "asset"),
        parse_panel(blocks["FL_FACTORS"], "factor"),
        signs=blocks.get("FL_SIGNS"),
        prior=blocks.get("FL_PRIOR"),
        groups=blocks.get("FL_GROUPS"),
        settings=blocks.get("FL_SETTINGS"),
        overrides={k: (v, "FL_PORTFOLIO_SETTINGS") for k, v in (overrides or {}).items()},
    )


# --------------------------------------------------------------------------- computing
def _core_error(err: Exception) -> WorkbookInputError:
    """A core ValueError/SolveError as a workbook message (the core names the parameter)."""
    if isinstance(err, SolveError):
        return WorkbookInputError(f"the solver failed: {err}", name="FL_SETTINGS")
    return WorkbookInputError(str(err), name="FL_SETTINGS")


def _rows(label: str, series_map: dict[str, pd.Series], assets) -> list:
    header = [label, *series_map]
    body = [[a, *(_cell(s.get(a)) for s in series_map.values())] for a in assets]
    return [header, *body]


def _cell(v):
    """A Python value a workbook accepts: NaN and None become blank."""
    if v is None:
        return None
    if isinstance(v, (np.floating, float)):
        return None if not np.isfinite(v) else float(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    return v


def compute_refit(
    blocks: dict[str, Block],
    *,
    cv: bool = False,
    pictures: bool = True,
    verbose: bool = False,
    overrides: dict | None = None,
):
    """Fit (or cross-validate and fit) the factor model of a workbook's inputs.

    Returns a :class:`JobResult` whose ``outputs`` hold FL_COEF, FL_INTERCEPT, FL_R2,
    FL_CLUSTERS, FL_RESID_VOL, FL_STATUS (and FL_CV with ``cv``).
    """
    inputs = workbook_fit_inputs(blocks, overrides)
    x, y = inputs.factors, inputs.returns
    job = "refit_cv" if cv else "refit"
    result = JobResult(job)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            base = LassoModel(**inputs.params)
            if cv:
                cvm = LassoModelCV(
                    lambdas=inputs.cv.get("cv_lambdas", "auto"),
                    n_splits=inputs.cv.get("cv_splits", 5),
                    n_lambdas=inputs.cv.get("cv_n_lambdas", 20),
                    lambda_min_ratio=inputs.cv.get("cv_lambda_min_ratio", 1e-3),
                    base_model=base,
                    verbose=verbose,
                ).fit(x, y)
                model = cvm.best_model_
            else:
                model = base.fit(x, y)
            cov = (
                assemble_factor_covariance(
                    model, x, annualization_factor=inputs.annualization_factor
                )
                if model.residual_variance_.notna().all()
                else None
            )
    except (ValueError, SolveError) as err:
        if isinstance(err, WorkbookInputError):
            raise
        raise _core_error(err) from None
    notes = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assets = list(y.columns)
    coef = model.coef_
    result.outputs.append(
        OutputTable(
            "FL_COEF",
            [
                ["asset", *coef.columns],
                *[[a, *(_cell(v) for v in coef.loc[a])] for a in assets],
            ],
        )
    )
    result.outputs.append(
        OutputTable("FL_INTERCEPT", _rows("asset", {"intercept": model.alpha_const_}, assets))
    )
    result.outputs.append(OutputTable("FL_R2", _rows("asset", {"r2": model.r2_}, assets)))
    clusters = model.clusters_ if model.clusters_ is not None else pd.Series(dtype=object)
    result.outputs.append(OutputTable("FL_CLUSTERS", _rows("asset", {"cluster": clusters}, assets)))
    if cov is not None:
        vol = cov.volatility
        result.outputs.append(
            OutputTable(
                "FL_RESID_VOL",
                _rows(
                    "asset",
                    {
                        "total_vol": vol["total"],
                        "systematic_vol": vol["systematic"],
                        "residual_vol": vol["residual"],
                    },
                    assets,
                ),
            )
        )
    else:
        notes.append("FL_RESID_VOL not written: some assets have no residual variance (warmup)")
    if cv:
        scores = cvm.cv_scores_
        table = [["reg_lambda", *scores.columns, "mean", "best"]]
        for lam, row in scores.iterrows():
            table.append(
                [
                    float(lam),
                    *(_cell(v) for v in row),
                    _cell(cvm.mean_scores_[lam]),
                    "best" if lam == cvm.best_lambda_ else None,
                ]
            )
        result.outputs.append(OutputTable("FL_CV", table))
    mt = LassoModelType.parse(model.model_type).name
    status = [
        ["item", "value"],
        ["time", dt.datetime.now().replace(microsecond=0).isoformat(sep=" ")],
        ["job", job],
        ["model", mt],
        ["reg_lambda", float(model.reg_lambda)],
        ["lambda_max", float(model.reg_lambda_max_)],
        ["objective", float(model.objective_value_)],
        ["solver_status", f"{model.solver_} {model.solver_status_}"],
        ["assets x factors x dates", f"{len(assets)} x {coef.shape[1]} x {len(y)}"],
        ["message", "; ".join(notes) if notes else "ok"],
    ]
    if cv:
        status.insert(5, ["cv_best_score", float(cvm.best_score_)])
    result.outputs.append(OutputTable("FL_STATUS", status))
    if pictures:
        from ._plots import coefficient_heatmap, dendrogram_png

        result.pictures.append(Picture("FL_HEATMAP", coefficient_heatmap(coef), "FL_COEF"))
        if model.linkage_ is not None and len(model.linkage_):
            result.pictures.append(
                Picture(
                    "FL_DENDROGRAM",
                    dendrogram_png(model.linkage_, assets),
                    "FL_COEF",
                    row_offset=20,
                )
            )
    result.model = model
    result.summary = (
        f"{job}: {mt}, lambda={model.reg_lambda:.4g}, {int((coef.to_numpy() != 0).sum())} "
        f"non-zero loadings of {coef.size}, mean R2 {np.nanmean(model.r2_):.3f}"
    )
    return result


# --------------------------------------------------------------------------- writing
def _plan_areas(io: WorkbookIO, tables: list[OutputTable]):
    """Target area per table; checks the room *before* anything is written."""
    names = io.names()
    plan, skipped = [], []
    for table in tables:
        area = names.get(table.name)
        if area is None:
            skipped.append(table.name)
            continue
        n_rows, n_cols = len(table.values), max(len(r) for r in table.values)
        target = area.resized(n_rows, n_cols)
        grow_rows = target.max_row > area.max_row
        grow_cols = target.max_col > area.max_col
        if grow_rows or grow_cols:
            outer = Area(
                area.sheet,
                area.min_row,
                area.min_col,
                max(area.max_row, target.max_row),
                max(area.max_col, target.max_col),
            )
            values = io.read(outer)
            for i, row in enumerate(values):
                for j, v in enumerate(row):
                    r, c = outer.min_row + i, outer.min_col + j
                    if target.contains(r, c) and not area.contains(r, c) and not is_blank(v):
                        raise WorkbookInputError(
                            f"the new {n_rows} x {n_cols} table does not fit in {area}: cell "
                            f"{area.sheet}!{cell_address(r, c)} next to it is not empty; clear it "
                            f"or move the name {table.name}",
                            name=table.name,
                        )
        plan.append((table, area, target))
    return plan, skipped


def apply_result(io: WorkbookIO, result: JobResult) -> JobResult:
    """Write a computed result: check room for every table, then clear, write, re-point."""
    plan, skipped = _plan_areas(io, result.outputs)
    for table, area, target in plan:
        width = target.shape[1]
        rows = [list(r) + [None] * (width - len(r)) for r in table.values]
        io.clear(area)
        io.write(target, rows)
        if target != area:
            io.define_name(table.name, target)
        result.written.append(table.name)
    result.skipped = skipped
    placed = {t.name: tgt for t, _a, tgt in plan}
    for pic in result.pictures:
        target = placed.get(pic.beside)
        if target is None:
            continue
        io.add_picture(
            target.sheet,
            target.min_row + pic.row_offset,
            target.max_col + 2,
            pic.png,
            pic.name,
            pic.width,
            pic.height,
        )
    io.save()
    return result


FIT_INPUTS = ("FL_RETURNS", "FL_FACTORS", "FL_SIGNS", "FL_PRIOR", "FL_GROUPS", "FL_SETTINGS")


def refit(io: WorkbookIO, *, pictures: bool = True) -> JobResult:
    """Refit the factor model from the FL_* inputs and write its outputs."""
    blocks = read_blocks(io, FIT_INPUTS, ("FL_RETURNS", "FL_FACTORS"))
    return apply_result(io, compute_refit(blocks, cv=False, pictures=pictures))


def refit_cv(io: WorkbookIO, *, pictures: bool = True, verbose: bool = False) -> JobResult:
    """Cross-validate reg_lambda, refit with the best one and write the outputs and FL_CV."""
    blocks = read_blocks(io, FIT_INPUTS, ("FL_RETURNS", "FL_FACTORS"))
    return apply_result(io, compute_refit(blocks, cv=True, pictures=pictures, verbose=verbose))


def clear_outputs(io: WorkbookIO) -> JobResult:
    """Clear the contents of every output name (formats stay) and remove our pictures."""
    result = JobResult("clear_outputs")
    names = io.names()
    for name in OUTPUTS:
        area = names.get(name)
        if area is None:
            result.skipped.append(name)
            continue
        io.clear(area)
        result.written.append(name)
    coef = names.get("FL_COEF")
    if coef is not None:
        for pic in PICTURE_NAMES:
            io.remove_picture(coef.sheet, pic)
    io.save()
    result.summary = f"cleared {len(result.written)} output ranges"
    return result


PORTFOLIO_INPUTS = FIT_INPUTS + (
    "FL_PORTFOLIO_SETTINGS",
    "FL_CONSTRAINTS",
    "FL_ASSET_GROUPS",
    "FL_PREV_WEIGHTS",
)


def compute_portfolio(blocks: dict[str, Block]) -> JobResult:
    """Maximum-diversification weights from the FL_* portfolio inputs."""
    from ..core.optimization import (
        EquationError,
        InfeasibleProblemError,
        MaximumDiversification,
        OptimizationError,
        parse_equation,
    )

    result = JobResult("optimise_portfolio")
    returns = parse_panel(blocks["FL_RETURNS"], "asset")
    assets = list(returns.columns)
    ps = read_portfolio_settings(blocks.get("FL_PORTFOLIO_SETTINGS"))
    params = dict(ps.params)
    notes = []

    groups = None
    tag_block = blocks.get("FL_ASSET_GROUPS")
    if tag_block is not None and not tag_block.is_empty():
        tags = parse_matrix(tag_block, cols_what="grouping", cell=tag_cell)
        check_labels(tag_block, tags.index, assets, axis=0, what="asset", source="FL_RETURNS")
        groups = {a: [t for t in tags.loc[a] if t] if a in tags.index else [] for a in assets}
        params["groups"] = groups
    group_labels = {t for ts in (groups or {}).values() for t in ts}

    cov = None
    if ps.covariance == "factor":
        if "FL_FACTORS" not in blocks:
            raise WorkbookInputError(
                "covariance = factor needs the factor returns FL_FACTORS", "FL_PORTFOLIO_SETTINGS"
            )
        model = compute_refit(blocks, pictures=False, overrides=ps.model).model
        try:
            cov = assemble_factor_covariance(model, parse_panel(blocks["FL_FACTORS"], "factor"))
        except ValueError as err:
            raise WorkbookInputError(str(err), "FL_RETURNS") from None
        params["covariance"] = cov
        x = None
        notes.append(
            f"factor covariance from {LassoModelType.parse(model.model_type).name}, "
            f"lambda={model.reg_lambda:g}"
        )
    else:
        x = complete_rows(returns, "FL_RETURNS", "(fill the gap or use covariance = factor)")

    constraints = parse_list(blocks["FL_CONSTRAINTS"]) if "FL_CONSTRAINTS" in blocks else []
    names = set(assets) | group_labels | (set(cov.factors) if cov is not None else set())
    for text, cell in constraints:
        try:
            parse_equation(text, names)
        except EquationError as err:
            raise WorkbookInputError(str(err), "FL_CONSTRAINTS", cell) from None
    if constraints:
        params["linear_constraints"] = [t for t, _ in constraints]
    prev_block = blocks.get("FL_PREV_WEIGHTS")
    if prev_block is not None and not prev_block.is_empty():
        prev = parse_series(prev_block)
        check_labels(prev_block, prev.index, assets, axis=0, what="asset", source="FL_RETURNS")
        params["previous_weights"] = prev.reindex(assets).fillna(0.0).to_numpy()

    try:
        opt = MaximumDiversification(**params).fit(x)
        complete = returns.dropna()
        portfolio = opt.predict(complete) if len(complete) >= 2 else None
    except InfeasibleProblemError as err:
        cells = {repr(t): c for t, c in constraints}
        named = [cells[c] for c in err.conflicts if c in cells]
        where = f" (FL_CONSTRAINTS cells {', '.join(named)})" if named else ""
        raise WorkbookInputError(
            f"no portfolio satisfies the constraints: {err}{where}", "FL_CONSTRAINTS"
        ) from None
    except OptimizationError as err:
        raise WorkbookInputError(f"the optimiser failed: {err}", "FL_PORTFOLIO_SETTINGS") from None
    except (ValueError, TypeError) as err:
        raise WorkbookInputError(str(err), "FL_PORTFOLIO_SETTINGS") from None
    weights = opt.weights_.reindex(assets)
    n_invested = int((np.abs(weights.to_numpy()) > 1e-6).sum())
    result.outputs.append(OutputTable("FL_WEIGHTS", _rows("asset", {"weight": weights}, assets)))
    stats = [["statistic", "value"], ["covariance", ps.covariance]]
    stats += portfolio_statistics(opt, portfolio, ps)
    stats.append(["n_invested", n_invested])
    result.outputs.append(OutputTable("FL_PORTFOLIO_STATS", stats))
    result.outputs.append(
        OutputTable(
            "FL_STATUS",
            [
                ["item", "value"],
                ["time", dt.datetime.now().replace(microsecond=0).isoformat(sep=" ")],
                ["job", "optimise_portfolio"],
                ["assets x dates", f"{len(assets)} x {len(returns)}"],
                ["message", "; ".join(notes) if notes else "ok"],
            ],
        )
    )
    result.model = opt
    result.summary = (
        f"optimise_portfolio: {n_invested} of {len(assets)} assets invested "
        f"({ps.covariance} covariance)"
    )
    return result


def optimise_portfolio(io: WorkbookIO) -> JobResult:
    """Maximum-diversification weights (optionally on the fitted factor covariance)."""
    blocks = read_blocks(io, PORTFOLIO_INPUTS, ("FL_RETURNS",))
    return apply_result(io, compute_portfolio(blocks))


JOB_FUNCTIONS = {
    "refit": refit,
    "refit_cv": refit_cv,
    "optimise_portfolio": optimise_portfolio,
    "clear_outputs": clear_outputs,
}


def run_job(io: WorkbookIO, job: str, **kwargs) -> JobResult:
    """Run one of :data:`~._contract.JOBS` on a workbook adapter."""
    try:
        func = JOB_FUNCTIONS[job]
    except KeyError:
        raise ValueError(f"unknown job {job!r}; jobs are {', '.join(JOB_FUNCTIONS)}") from None
    return func(io, **kwargs)
