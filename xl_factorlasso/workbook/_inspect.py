"""``inspect``: which contract names a workbook has, their shapes, and every problem a job meets.

It runs the checks of every job and reports all of them, never stopping at the first: names
that exist but are unusable, missing required names, whether the file can be written, outputs
overlapping inputs or each other, each input on its own, the inputs against each other, the
refit and the portfolio computed exactly as the jobs compute them (so a failed solve or
infeasible constraints show here too), the backtest's checks up to its fits, and the room every
output table needs. Nothing is
written.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ._backtest import BACKTEST_INPUTS, compute_backtest
from ._compute import (
    FIT_INPUTS,
    PORTFOLIO_INPUTS,
    compute_portfolio,
    compute_refit,
    missing_name,
    workbook_fit_inputs,
)
from ._contract import CONTRACT
from ._errors import WorkbookInputError
from ._growth import adjoining_inputs
from ._io import Area, WorkbookIO
from ._layout import layout_problems, name_problem, plan_writes
from ._portfolio import read_portfolio_settings
from ._rolling_settings import read_rolling_settings
from ._settings import read_fit_settings
from ._tables import Block, parse_list, parse_matrix, parse_panel, parse_series, parse_sign

__all__ = ["InspectReport", "inspect_workbook"]


@dataclass
class InspectReport:
    """Result of :func:`inspect_workbook`."""

    found: dict[str, Area] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, problem: str) -> None:
        if problem not in self.problems:  # the same overlap can be found from two checks
            self.problems.append(problem)

    def lines(self) -> list[str]:
        out = []
        for s in CONTRACT:
            area = self.found.get(s.name)
            if area is None:
                out.append(f"  {s.name:<22} {s.role:<6} -- not defined")
            else:
                rows, cols = area.shape
                out.append(f"  {s.name:<22} {s.role:<6} {str(area):<28} {rows} x {cols}")
        return out


def _parsers():
    from ._inputs import parse_excluded, parse_prior_factors, tag_cell, text_cell

    return {
        "FL_RETURNS": lambda b: parse_panel(b, "asset"),
        "FL_FACTORS": lambda b: parse_panel(b, "factor"),
        "FL_SIGNS": lambda b: parse_matrix(b, cell=parse_sign),
        "FL_PRIOR": parse_matrix,
        "FL_GROUPS": lambda b: parse_series(b, value=text_cell),
        "FL_SETTINGS": read_fit_settings,
        "FL_PORTFOLIO_SETTINGS": read_portfolio_settings,
        "FL_CONSTRAINTS": parse_list,
        "FL_ASSET_GROUPS": lambda b: parse_matrix(b, cols_what="grouping", cell=tag_cell),
        "FL_PREV_WEIGHTS": parse_series,
        "FL_PRIOR_FACTOR": parse_prior_factors,
        "FL_EXCLUDED": parse_excluded,
        "FL_EXPOSURE_BUDGET": parse_matrix,
        "FL_ROLLING_SETTINGS": read_rolling_settings,
    }


def _run(report: InspectReport, compute, *args, **kwargs):
    try:
        return compute(*args, **kwargs)
    except WorkbookInputError as err:
        report.add(str(err))
        return None


def inspect_workbook(io: WorkbookIO) -> InspectReport:
    """Run every check any job runs on ``io`` and report every problem found."""
    report = InspectReport()
    names, issues = io.names(), io.name_issues()
    blocker = io.write_blocker()
    if blocker is not None:
        report.add(blocker)
    blocks: dict[str, Block] = {}
    broken: set[str] = set()
    parsers = _parsers()
    for s in CONTRACT:
        area = names.get(s.name)
        if area is None:
            report.missing.append(s.name)
            reason = name_problem(s.name, issues)
            if reason is not None:
                report.add(f"{s.name}: {reason}")
                broken.add(s.name)
            elif s.required_by:
                report.add(f"{s.name}: {missing_name(s.name)}; {', '.join(s.required_by)} "
                           "cannot run without it")
            continue
        report.found[s.name] = area
        if s.role != "input":
            continue
        block = Block.of(s.name, io.read(area), area.min_row, area.min_col)
        blocks[s.name] = block
        if block.is_empty():
            report.notes.append(f"{s.name}: empty")
            continue
        try:
            parsers[s.name](block)
        except WorkbookInputError as err:
            report.add(str(err))
            broken.add(s.name)
    for name, message in layout_problems(report.found):
        report.add(f"{name}: {message}")
    # Data pasted next to an input is what a job would silently leave out: a problem here.
    for found in adjoining_inputs(io, names):
        report.add(f"{found.name}: {found.message}")

    # The jobs themselves, on inputs that parse: what they compute is what they would write.
    tables = []
    fit_ready = {"FL_RETURNS", "FL_FACTORS"} <= set(blocks) and not broken & set(FIT_INPUTS)
    if fit_ready:
        result = _run(report, compute_refit, blocks, pictures=False)
        if result is not None:
            tables += result.outputs
            report.notes.append(
                "refit computed as the job does (cross-validation itself not run; its "
                "settings and folds were checked)"
            )
        if "FL_CV" in report.found:  # the folds against the dates, as refit_cv checks them
            _run(report, workbook_fit_inputs, blocks, cv=True)
    wants_portfolio = any(n in report.found for n in ("FL_WEIGHTS", "FL_PORTFOLIO_SETTINGS"))
    if wants_portfolio and "FL_RETURNS" in blocks and not broken & set(PORTFOLIO_INPUTS):
        result = _run(report, compute_portfolio, blocks)
        if result is not None:
            tables += [t for t in result.outputs if t.name != "FL_STATUS"]
            report.notes.append("portfolio optimised as the job does")
    wants_backtest = "FL_ROLLING_SETTINGS" in report.found or any(
        n in report.found for n in ("FL_BACKTEST", "FL_BETA_HISTORY"))
    if wants_backtest and fit_ready and not broken & set(BACKTEST_INPUTS):
        # Every check before the fits (settings, inputs, table sizes); the fits are not run.
        if _run(report, compute_backtest, blocks, check_only=True,
                defined=set(report.found)):
            report.notes.append("backtest inputs checked as the job checks them (its fits "
                                "not run)")
    if tables:
        _plan, _skipped, problems = plan_writes(io, tables, raise_first=False)
        for problem in problems:
            report.add(problem)
    return report
