"""``inspect``: which contract names a workbook has, their shapes, and every validation problem."""

from __future__ import annotations

from dataclasses import dataclass, field

from ._contract import CONTRACT
from ._errors import WorkbookInputError
from ._io import Area, WorkbookIO
from ._portfolio import read_portfolio_settings
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
    from ._inputs import tag_cell, text_cell

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
    }


def inspect_workbook(io: WorkbookIO) -> InspectReport:
    """Check every input name on its own, then the factor-model inputs against each other."""
    from ._jobs import FIT_INPUTS, workbook_fit_inputs

    report = InspectReport()
    names = io.names()
    blocks: dict[str, Block] = {}
    parsers = _parsers()
    for s in CONTRACT:
        area = names.get(s.name)
        if area is None:
            report.missing.append(s.name)
            if s.required_by:
                report.problems.append(
                    f"{s.name}: not defined; {', '.join(s.required_by)} cannot run without it"
                )
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
            report.problems.append(str(err))
    if "FL_RETURNS" in blocks and "FL_FACTORS" in blocks and not report.problems:
        try:
            workbook_fit_inputs({k: v for k, v in blocks.items() if k in FIT_INPUTS})
        except (WorkbookInputError, ValueError) as err:
            report.problems.append(str(err))
    if "FL_CONSTRAINTS" in blocks and "FL_RETURNS" in blocks and not report.problems:
        from ..core.optimization import EquationError, parse_equation

        names_ok = set(parse_panel(blocks["FL_RETURNS"], "asset").columns)
        if "FL_ASSET_GROUPS" in blocks and not blocks["FL_ASSET_GROUPS"].is_empty():
            tags = parsers["FL_ASSET_GROUPS"](blocks["FL_ASSET_GROUPS"])
            names_ok |= {t for t in tags.to_numpy().ravel() if t}
        if "FL_FACTORS" in blocks:
            names_ok |= set(parse_panel(blocks["FL_FACTORS"], "factor").columns)
        for text, cell in parse_list(blocks["FL_CONSTRAINTS"]):
            try:
                parse_equation(text, names_ok)
            except EquationError as err:
                report.problems.append(str(WorkbookInputError(str(err), "FL_CONSTRAINTS", cell)))
    return report
