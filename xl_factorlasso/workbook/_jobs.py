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
from ._io import Area, WorkbookIO
from ._settings import read_fit_settings
from ._tables import (
    Block,
    is_blank,
    parse_list,
    parse_matrix,
    parse_panel,
    parse_series,
    parse_sign,
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


def _cell_of(block: Block, row_label: str, col_label: str) -> str:
    """Address of the cell at (row label, column label) in a labelled matrix block."""
    b = block.trimmed()
    header = [str(v).strip() if not is_blank(v) else "" for v in b.values[0]]
    first = [str(r[0]).strip() if not is_blank(r[0]) else "" for r in b.values]
    j = header.index(col_label) if col_label in header else 0
    i = first.index(row_label) if row_label in first else 0
    return b.cell(i, j)


def _label_cells(block: Block, labels, allowed, what: str, source: str, axis: int):
    """Every label of a matrix/series must be known; name the first stranger and its cell."""
    for label in labels:
        if label not in allowed:
            b = block.trimmed()
            if axis == 0:
                cells = [
                    i
                    for i, r in enumerate(b.values)
                    if not is_blank(r[0]) and str(r[0]).strip() == label
                ]
                cell = b.cell(cells[0], 0) if cells else None
            else:
                cols = [
                    j
                    for j, v in enumerate(b.values[0])
                    if not is_blank(v) and str(v).strip() == label
                ]
                cell = b.cell(0, cols[0]) if cols else None
            raise WorkbookInputError(f"{what} {label!r} is not in {source}", block.name, cell)


@dataclass
class FitInputs:
    """The factor-model inputs of a workbook, validated and aligned."""

    returns: pd.DataFrame
    factors: pd.DataFrame
    params: dict
    cv: dict
    annualization_factor: float
    blocks: dict


def fit_inputs(blocks: dict[str, Block]) -> FitInputs:
    """Validate the factor-model inputs against each other and build LassoModel parameters."""
    returns = parse_panel(blocks["FL_RETURNS"], what="asset")
    factors = parse_panel(blocks["FL_FACTORS"], what="factor")
    if not returns.index.equals(factors.index):
        only_r = returns.index.difference(factors.index)
        only_f = factors.index.difference(returns.index)
        if len(only_r):
            first = only_r[0]
            where, name = "FL_FACTORS", "FL_RETURNS"
        else:
            first = only_f[0]
            where, name = "FL_RETURNS", "FL_FACTORS"
        shown = first.date() if isinstance(first, pd.Timestamp) else first
        raise WorkbookInputError(
            f"date {shown} has no row in {where}: FL_RETURNS and FL_FACTORS must have the same "
            f"dates ({len(returns)} vs {len(factors)} rows)",
            name=name,
        )
    settings = read_fit_settings(blocks.get("FL_SETTINGS"))
    params = dict(settings.model)
    assets, facs = list(returns.columns), list(factors.columns)
    if "FL_SIGNS" in blocks and not _empty(blocks["FL_SIGNS"]):
        signs = parse_matrix(blocks["FL_SIGNS"], cell=parse_sign)
        _label_cells(blocks["FL_SIGNS"], signs.index, assets, "asset", "FL_RETURNS", 0)
        _label_cells(blocks["FL_SIGNS"], signs.columns, facs, "factor", "FL_FACTORS", 1)
        params["factors_beta_loading_signs"] = signs.reindex(index=assets, columns=facs)
    if "FL_PRIOR" in blocks and not _empty(blocks["FL_PRIOR"]):
        prior = parse_matrix(blocks["FL_PRIOR"])
        _label_cells(blocks["FL_PRIOR"], prior.index, assets, "asset", "FL_RETURNS", 0)
        _label_cells(blocks["FL_PRIOR"], prior.columns, facs, "factor", "FL_FACTORS", 1)
        prior = prior.reindex(index=assets, columns=facs)
        signs = params.get("factors_beta_loading_signs")
        if signs is not None:
            s, p = signs.to_numpy(), np.nan_to_num(prior.to_numpy())
            bad = ((s == 0) & (p != 0)) | ((s == 1) & (p < 0)) | ((s == -1) & (p > 0))
            if bad.any():
                i, j = np.argwhere(bad)[0]
                a, f = assets[i], facs[j]
                raise WorkbookInputError(
                    f"the prior {p[i, j]:g} for ({a}, {f}) contradicts the sign {int(s[i, j])} "
                    f"at FL_SIGNS!{_cell_of(blocks['FL_SIGNS'], a, f)}",
                    "FL_PRIOR",
                    _cell_of(blocks["FL_PRIOR"], a, f),
                )
        params["factors_beta_prior"] = prior
    if "FL_GROUPS" in blocks and not _empty(blocks["FL_GROUPS"]):
        groups = parse_series(blocks["FL_GROUPS"], value=_text_cell)
        _label_cells(blocks["FL_GROUPS"], groups.index, assets, "asset", "FL_RETURNS", 0)
        params["group_data"] = groups
    model_type = LassoModelType.parse(params.get("model_type", "LASSO"))
    if model_type is LassoModelType.GROUP_LASSO:
        gd = params.get("group_data")
        missing = [a for a in assets if gd is None or a not in gd.index]
        if missing:
            raise WorkbookInputError(
                f"model_type GROUP_LASSO needs a group for every asset; {missing[0]!r} has none",
                "FL_GROUPS",
            )
    return FitInputs(returns, factors, params, settings.cv, settings.annualization_factor, blocks)


def _text_cell(block: Block, i: int, j: int) -> str:
    v = block.values[i][j]
    if is_blank(v):
        raise block.error("the group is blank", i, j)
    return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v).strip()


def _empty(block: Block) -> bool:
    return all(is_blank(v) for row in block.values for v in row)


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
    blocks: dict[str, Block], *, cv: bool = False, pictures: bool = True, verbose: bool = False
):
    """Fit (or cross-validate and fit) the factor model of a workbook's inputs.

    Returns a :class:`JobResult` whose ``outputs`` hold FL_COEF, FL_INTERCEPT, FL_R2,
    FL_CLUSTERS, FL_RESID_VOL, FL_STATUS (and FL_CV with ``cv``).
    """
    inputs = fit_inputs(blocks)
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


def _complete_rows(returns: pd.DataFrame, block: Block, why: str) -> pd.DataFrame:
    missing = returns.isna()
    if missing.to_numpy().any():
        i, j = np.argwhere(missing.to_numpy())[0]
        b = block.trimmed()
        rows = [k for k in range(1, b.shape[0]) if not all(is_blank(v) for v in b.values[k])]
        raise WorkbookInputError(
            f"a missing return ({returns.columns[j]}, row {i + 1}): {why} needs complete rows; "
            "fill the gap or use covariance = factor, which handles ragged histories",
            "FL_RETURNS",
            b.cell(rows[i], j + 1),
        )
    return returns


def compute_portfolio(blocks: dict[str, Block]) -> JobResult:
    """Maximum-diversification weights from the FL_* portfolio inputs."""
    from ..core.optimization import (
        EquationError,
        InfeasibleProblemError,
        MaximumDiversification,
        OptimizationError,
        parse_equation,
    )
    from ._settings import read_portfolio_settings

    result = JobResult("optimise_portfolio")
    returns = parse_panel(blocks["FL_RETURNS"], what="asset")
    assets = list(returns.columns)
    settings = read_portfolio_settings(blocks.get("FL_PORTFOLIO_SETTINGS"))
    params = dict(settings.params)
    notes = []

    groups = None
    if "FL_ASSET_GROUPS" in blocks and not _empty(blocks["FL_ASSET_GROUPS"]):
        tags = parse_matrix(blocks["FL_ASSET_GROUPS"], cols_what="grouping", cell=_tag_cell)
        _label_cells(blocks["FL_ASSET_GROUPS"], tags.index, assets, "asset", "FL_RETURNS", 0)
        groups = {a: [t for t in tags.loc[a] if t] if a in tags.index else [] for a in assets}
        params["groups"] = groups
    group_labels = {t for ts in (groups or {}).values() for t in ts}

    cov = None
    if settings.covariance == "factor":
        if "FL_FACTORS" not in blocks:
            raise WorkbookInputError(
                "covariance = factor needs the factor returns FL_FACTORS", "FL_PORTFOLIO_SETTINGS"
            )
        model = compute_refit(blocks, pictures=False).model
        try:
            cov = assemble_factor_covariance(model, parse_panel(blocks["FL_FACTORS"], "factor"))
        except ValueError as err:
            raise WorkbookInputError(str(err), "FL_RETURNS") from None
        params["covariance"] = cov
        x = returns.dropna()
        notes.append(
            f"factor covariance from {LassoModelType.parse(model.model_type).name}, "
            f"lambda={model.reg_lambda:g}"
        )
    else:
        x = _complete_rows(returns, blocks["FL_RETURNS"], f"the {settings.covariance} covariance")
        if settings.covariance == "ewma" and params.get("span") is None:
            raise WorkbookInputError(
                "covariance = ewma needs a span setting", "FL_PORTFOLIO_SETTINGS"
            )

    if "FL_CONSTRAINTS" in blocks:
        constraints = parse_list(blocks["FL_CONSTRAINTS"])
        names = set(assets) | group_labels | (set(cov.factors) if cov is not None else set())
        for text, cell in constraints:
            try:
                parse_equation(text, names)
            except EquationError as err:
                raise WorkbookInputError(str(err), "FL_CONSTRAINTS", cell) from None
        if constraints:
            params["linear_constraints"] = [t for t, _ in constraints]
    if "FL_PREV_WEIGHTS" in blocks and not _empty(blocks["FL_PREV_WEIGHTS"]):
        prev = parse_series(blocks["FL_PREV_WEIGHTS"])
        _label_cells(blocks["FL_PREV_WEIGHTS"], prev.index, assets, "asset", "FL_RETURNS", 0)
        params["previous_weights"] = prev.reindex(assets).fillna(0.0).to_numpy()

    try:
        opt = MaximumDiversification(**params).fit(x if len(x) else None)
    except InfeasibleProblemError as err:
        raise WorkbookInputError(
            f"no portfolio satisfies the constraints: {err}", "FL_CONSTRAINTS"
        ) from None
    except OptimizationError as err:
        raise WorkbookInputError(f"the optimiser failed: {err}", "FL_PORTFOLIO_SETTINGS") from None
    except (ValueError, TypeError) as err:
        raise WorkbookInputError(str(err), "FL_PORTFOLIO_SETTINGS") from None
    weights = opt.weights_.reindex(assets)
    result.outputs.append(OutputTable("FL_WEIGHTS", _rows("asset", {"weight": weights}, assets)))
    stats = [["statistic", "value"], ["covariance", settings.covariance]]
    if len(x) >= 2:
        summary = opt.predict(x).summary()
        stats += [[k, _cell(v)] for k, v in summary.items()]
    stats.append(["n_invested", int((np.abs(weights.to_numpy()) > 1e-6).sum())])
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
        f"optimise_portfolio: {int((np.abs(weights.to_numpy()) > 1e-6).sum())} of {len(assets)} "
        f"assets invested ({settings.covariance} covariance)"
    )
    return result


def _tag_cell(block: Block, i: int, j: int) -> str:
    v = block.values[i][j]
    if is_blank(v):
        return ""
    return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v).strip()


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
