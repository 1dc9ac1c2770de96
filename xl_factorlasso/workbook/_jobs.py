"""The jobs behind the ribbon buttons and the CLI: read the FL_* inputs, compute, write outputs.

Every job follows the same order, which is also what the remote engine requires:

1. check the workbook can be written at all (not open in Excel, not read-only);
2. read every input of every step (nothing has been written yet);
3. validate and compute every step; any problem raises :class:`WorkbookInputError` (or a core
   error) and the workbook is left untouched;
4. plan the writes (:func:`~._layout.plan_writes`): no output may touch an input or another
   output, and cells a table grows into must hold nothing; otherwise stop *before writing*;
5. clear each output's previous area, write the table, re-point the name when the shape
   changed, place the pictures, and save once (atomically, for a file).

Several steps (``refit --cv --portfolio``) are computed first and written in that one save.
"""

from __future__ import annotations

from ._backtest import BACKTEST_INPUTS, compute_backtest
from ._compute import (
    FIT_INPUTS,
    PORTFOLIO_INPUTS,
    compute_portfolio,
    compute_refit,
    read_blocks,
    workbook_fit_inputs,
)
from ._contract import OUTPUTS
from ._errors import WorkbookInputError
from ._growth import adjoining_inputs
from ._io import WorkbookIO
from ._job_pictures import PICTURES
from ._layout import layout_problems, name_problem, plan_writes
from ._output_formats import apply_formats
from ._results import JobResult, OutputTable, Picture, add_warning, merge_results

__all__ = [
    "FIT_INPUTS",
    "JobResult",
    "OutputTable",
    "PORTFOLIO_INPUTS",
    "Picture",
    "apply_result",
    "backtest",
    "clear_outputs",
    "compute_backtest",
    "compute_jobs",
    "compute_portfolio",
    "compute_refit",
    "optimise_portfolio",
    "read_blocks",
    "refit",
    "refit_cv",
    "run_job",
    "run_jobs",
    "workbook_fit_inputs",
]



def check_writable(io: WorkbookIO) -> None:
    """Refuse early (before any work) a workbook that cannot be saved."""
    reason = io.write_blocker()
    if reason is not None:
        raise WorkbookInputError(reason)


# --------------------------------------------------------------------------- writing
def apply_result(io: WorkbookIO, result: JobResult) -> JobResult:
    """Write a computed result: plan and check every table, then clear, write, re-point, save."""
    plan, skipped, _ = plan_writes(io, result.outputs)
    check_writable(io)
    for p in plan:
        width = p.target.shape[1]
        rows = [list(r) + [None] * (width - len(r)) for r in p.table.values]
        io.clear(p.area)
        io.write(p.target, rows)
        if p.target != p.area:
            io.define_name(p.table.name, p.target)
        result.written.append(p.table.name)
    result.skipped = skipped
    not_shown = apply_formats(io, [(p.table, p.target) for p in plan])
    if not_shown:  # an engine that cannot format (a read-only or minimal one): numbers stand
        result.warnings.append(f"formats not applied to {', '.join(not_shown)}")
    placed = {p.table.name: p.target for p in plan}
    for pic in result.pictures:
        target = placed.get(pic.beside)
        if target is None:
            continue
        row, col = ((target.max_row + 2 + pic.row_offset, target.min_col) if pic.below
                    else (target.min_row + pic.row_offset, target.max_col + 2))
        try:
            io.add_picture(target.sheet, row, col, pic.png, pic.name, pic.width, pic.height)
        except Exception as err:  # noqa: BLE001 - a picture is optional; the numbers are not
            result.warnings.append(f"picture {pic.name} not placed ({type(err).__name__}: {err})")
    io.save()
    return result


# --------------------------------------------------------------------------- jobs
_STEPS = {
    "refit": (FIT_INPUTS, ("FL_RETURNS", "FL_FACTORS")),
    "refit_cv": (FIT_INPUTS, ("FL_RETURNS", "FL_FACTORS")),
    "optimise_portfolio": (PORTFOLIO_INPUTS, ("FL_RETURNS",)),
}


def compute_jobs(io: WorkbookIO, jobs, *, pictures: bool = True,
                 verbose: bool = False) -> JobResult:
    """Read the inputs of every step once and compute each; write nothing.

    Parameters
    ----------
    io : WorkbookIO
    jobs : sequence of {"refit", "refit_cv", "optimise_portfolio"}
        The steps, in order; with several, their outputs are merged into one result (one
        FL_STATUS listing every step).
    """
    jobs = list(jobs)
    unknown = [j for j in jobs if j not in _STEPS]
    if unknown or not jobs:
        raise ValueError(f"unknown job {unknown[0] if unknown else None!r}; steps are "
                         f"{', '.join(_STEPS)}")
    wanted = tuple(dict.fromkeys(n for j in jobs for n in _STEPS[j][0]))
    required = tuple(dict.fromkeys(n for j in jobs for n in _STEPS[j][1]))
    blocks = read_blocks(io, wanted, required)
    # Data pasted next to a plain input range is left out of the fit: said, not refused (a
    # caption under a range is legitimate).
    growth = [a for a in adjoining_inputs(io) if a.name in wanted]
    parts = []
    for job in jobs:
        if job == "optimise_portfolio":
            fitted = next((p for p in reversed(parts) if p.job != job), None)
            parts.append(compute_portfolio(blocks, fitted=fitted, pictures=pictures))
        else:
            parts.append(compute_refit(blocks, cv=job == "refit_cv", pictures=pictures,
                                       verbose=verbose))
    for part in parts:
        for found in growth:
            if found.name in _STEPS[part.job][0]:
                add_warning(part, f"{found.name}: {found.message}")
    return parts[0] if len(parts) == 1 else merge_results(parts)


def run_jobs(io: WorkbookIO, jobs, *, pictures: bool = True, verbose: bool = False) -> JobResult:
    """Compute every step of ``jobs``, then write all their outputs in one save."""
    check_writable(io)
    return apply_result(io, compute_jobs(io, jobs, pictures=pictures, verbose=verbose))


def refit(io: WorkbookIO, *, pictures: bool = True) -> JobResult:
    """Refit the factor model from the FL_* inputs and write its outputs."""
    return run_jobs(io, ["refit"], pictures=pictures)


def refit_cv(io: WorkbookIO, *, pictures: bool = True, verbose: bool = False) -> JobResult:
    """Cross-validate reg_lambda, refit with the best one and write the outputs and FL_CV."""
    return run_jobs(io, ["refit_cv"], pictures=pictures, verbose=verbose)


def optimise_portfolio(io: WorkbookIO, *, pictures: bool = True) -> JobResult:
    """Maximum-diversification weights (optionally on the fitted factor covariance), their
    statistics and risk attribution."""
    return run_jobs(io, ["optimise_portfolio"], pictures=pictures)


def backtest(io: WorkbookIO, *, pictures: bool = True, progress=None, scheduler=None,
             n_jobs=None) -> JobResult:
    """Re-estimate the factor model at every rebalancing date and backtest the
    maximum-diversification portfolio on it, walk-forward; write the histories, the
    backtest, its statistics and FL_STATUS in one save.

    Parameters
    ----------
    io : WorkbookIO
    pictures : bool, default True
    progress : callable, optional
        ``progress(done, total)`` as dates are fitted; an exception it raises stops the job
        before anything is written (how a host cancels).
    scheduler : str or dask.distributed.Client, optional
        Overrides FL_ROLLING_SETTINGS' ``scheduler`` when not None.
    n_jobs : int, optional
        Overrides FL_ROLLING_SETTINGS' ``n_jobs`` when not None.
    """
    check_writable(io)
    blocks = read_blocks(io, BACKTEST_INPUTS, ("FL_RETURNS", "FL_FACTORS"))
    result = compute_backtest(blocks, pictures=pictures, progress=progress,
                              scheduler=scheduler, n_jobs=n_jobs, defined=set(io.names()))
    for found in adjoining_inputs(io):
        if found.name in BACKTEST_INPUTS:
            add_warning(result, f"{found.name}: {found.message}")
    return apply_result(io, result)


def clear_outputs(io: WorkbookIO) -> JobResult:
    """Clear the contents of every output name (formats stay) and remove our pictures.

    Refused, like any write, when an output overlaps an input or another output: clearing it
    would destroy the other's cells.
    """
    check_writable(io)
    result = JobResult("clear_outputs")
    names = io.names()
    issues = io.name_issues()
    for name in OUTPUTS:
        reason = name_problem(name, issues)
        if reason is not None:
            raise WorkbookInputError(reason, name=name)
    for name, message in layout_problems(names):
        raise WorkbookInputError(message, name=name)
    for name in OUTPUTS:
        area = names.get(name)
        if area is None:
            result.skipped.append(name)
            continue
        io.clear(area)
        result.written.append(name)
    for pic, output in PICTURES.items():
        if output in names:
            io.remove_picture(names[output].sheet, pic)
    io.save()
    result.summary = f"cleared {len(result.written)} output ranges"
    return result


JOB_FUNCTIONS = {
    "refit": refit,
    "refit_cv": refit_cv,
    "optimise_portfolio": optimise_portfolio,
    "backtest": backtest,
    "clear_outputs": clear_outputs,
}


def run_job(io: WorkbookIO, job: str, **kwargs) -> JobResult:
    """Run one of :data:`~._contract.JOBS` on a workbook adapter."""
    try:
        func = JOB_FUNCTIONS[job]
    except KeyError:
        raise ValueError(f"unknown job {job!r}; jobs are {', '.join(JOB_FUNCTIONS)}") from None
    return func(io, **kwargs)
