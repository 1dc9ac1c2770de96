"""Where a job may write: output areas against inputs, against each other, and room to grow.

A job writes each output table at its name's top-left cell. It first clears the name's current
area, then writes the table, which may be larger than that area. Both the current area and the
area the table will cover belong to the output; neither may touch an input or another output,
and the cells the table grows into must hold nothing a user would lose. Every check here runs
before anything is written, and ``xl-factorlasso inspect`` runs the same ones.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._contract import INPUTS, OUTPUTS, spec
from ._errors import WorkbookInputError, cell_address
from ._io import Area, WorkbookIO

__all__ = ["PlannedWrite", "layout_problems", "name_problem", "plan_writes"]


@dataclass(frozen=True)
class PlannedWrite:
    """One output table, the area it has now and the area it will cover."""

    table: object  # OutputTable (kept loose: _jobs imports this module)
    area: Area
    target: Area


def _overlap(a: Area, b: Area) -> Area | None:
    if a.sheet.lower() != b.sheet.lower():
        return None
    r1, c1 = max(a.min_row, b.min_row), max(a.min_col, b.min_col)
    r2, c2 = min(a.max_row, b.max_row), min(a.max_col, b.max_col)
    if r1 > r2 or c1 > c2:
        return None
    return Area(a.sheet, r1, c1, r2, c2)


def _where(area: Area) -> str:
    if area.shape == (1, 1):
        return f"{area.sheet}!{cell_address(area.min_row, area.min_col)}"
    return str(area)


def name_problem(name: str, issues: dict[str, str]) -> str | None:
    """Why a contract name that exists in the workbook cannot be used (None: it can).

    The adapters' reasons are phrases that follow the name and say what to do
    (``"refers to #REF!: the cells it pointed to were deleted; ..."``).
    """
    reason = issues.get(name.upper())
    return None if reason is None else f"the name {name} {reason}"


def layout_problems(names: dict[str, Area], outputs=OUTPUTS) -> list[tuple[str, str]]:
    """Every overlap of an output in ``outputs`` with an input or with another output.

    Returns ``(output name, message)`` pairs. Overlaps between inputs are fine (a settings
    block may share a sheet with the groups); an output that shares a cell with anything else
    of the contract would overwrite it.
    """
    problems = []
    written = [n for n in outputs if n in names]
    for i, out in enumerate(written):
        area = names[out]
        for inp in INPUTS:
            if inp in names and (cut := _overlap(area, names[inp])) is not None:
                problems.append((out, (
                    f"its area {area} overlaps the input {inp} ({names[inp]}) at {_where(cut)}: "
                    f"writing {out} would destroy input cells; point {out} to empty cells"
                )))
        for other in OUTPUTS:
            if other == out or other not in names:
                continue
            if other in written and written.index(other) < i:
                continue  # the pair was reported from the other side
            if (cut := _overlap(area, names[other])) is not None:
                problems.append((out, (
                    f"its area {area} overlaps the output {other} ({names[other]}) at "
                    f"{_where(cut)}: each would overwrite the other; give every output its "
                    "own cells"
                )))
    return problems


def _growth_problem(io: WorkbookIO, table, area: Area, target: Area) -> str | None:
    """The first cell the table would grow into that holds something, as a message."""
    if target.max_row <= area.max_row and target.max_col <= area.max_col:
        return None
    strips = []
    if target.max_row > area.max_row:  # below the current area
        strips.append(Area(area.sheet, area.max_row + 1, target.min_col,
                           target.max_row, target.max_col))
    if target.max_col > area.max_col:  # to its right (rows already covered above excluded)
        strips.append(Area(area.sheet, target.min_row, area.max_col + 1,
                           min(area.max_row, target.max_row), target.max_col))
    for strip in strips:
        if strip.min_row > strip.max_row or strip.min_col > strip.max_col:
            continue
        found = io.occupied(strip)
        if found:
            r, c, what = found[0]
            rows, cols = target.shape
            return (
                f"the new {rows} x {cols} table does not fit in {area}: cell "
                f"{area.sheet}!{cell_address(r, c)} next to it holds {what}; clear it or move "
                f"the name {table.name}"
            )
    return None


def plan_writes(io: WorkbookIO, tables: list, *, raise_first: bool = True):
    """Target area of every table, checked before anything is written.

    Returns ``(plan, skipped, problems)``: the :class:`PlannedWrite` s, the output names the
    workbook does not define, and every problem found (with ``raise_first`` the first one is
    raised as :class:`WorkbookInputError` instead, naming the output).
    """
    names = io.names()
    issues = io.name_issues()
    plan, skipped, problems = [], [], []

    def problem(message: str, name: str) -> None:
        if raise_first:
            raise WorkbookInputError(message, name=name)
        problems.append(f"{name}: {message}")

    for table in tables:
        area = names.get(table.name)
        if area is None:
            reason = name_problem(table.name, issues)
            if reason is not None:
                problem(reason, table.name)
            else:
                skipped.append(table.name)
            continue
        n_rows, n_cols = len(table.values), max(len(r) for r in table.values)
        plan.append(PlannedWrite(table, area, area.resized(n_rows, n_cols)))

    # Overlaps: the current areas of everything, and the targets of what is written now.
    current = {n: a for n, a in names.items() if n in INPUTS or n in OUTPUTS}
    for name, message in layout_problems(current, outputs=[p.table.name for p in plan]):
        problem(message, name)
    for i, p in enumerate(plan):
        if p.target == p.area:
            continue
        rows, cols = p.target.shape
        others = [(n, a, "input") for n, a in current.items() if spec(n).role == "input"]
        others += [(n, a, "output") for n, a in current.items()
                   if spec(n).role == "output" and n != p.table.name]
        others += [(q.table.name, q.target, "output") for j, q in enumerate(plan) if j != i]
        for other, other_area, role in others:
            if (cut := _overlap(p.target, other_area)) is not None:
                problem(
                    f"its new {rows} x {cols} table needs {p.target}, which overlaps the "
                    f"{role} {other} ({other_area}) at {_where(cut)}; move one of the names",
                    p.table.name,
                )
                break
        else:
            message = _growth_problem(io, p.table, p.area, p.target)
            if message is not None:
                problem(message, p.table.name)
    return plan, skipped, problems
