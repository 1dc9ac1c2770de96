"""What a job hands to the writer: output tables, pictures, and the run's status table."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..core._notes import user_warnings

__all__ = [
    "JobResult",
    "OutputTable",
    "add_warning",
    "Picture",
    "cell_value",
    "merge_results",
    "series_table",
    "status_message",
    "status_table",
    "user_notes",
]


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
    beside: str  # the output name it is placed with: to its right, or below it
    row_offset: int = 0
    width: int = 480  # displayed size in pixels: the PNG's own, so nothing is stretched
    height: int = 360
    below: bool = False


@dataclass
class JobResult:
    """What a job computed and wrote.

    Attributes
    ----------
    job : str
    outputs : list of OutputTable
    pictures : list of Picture
    written, skipped : list of str
        Output names written, and names the workbook does not define (not written).
    warnings : list of str
        What went wrong without stopping the job (a picture that could not be drawn).
    notes : list of str
        What the step says about its inputs and results (the fit's warnings, dependent or
        constant factors, a rolling fit's dated notes...): FL_STATUS's message without the
        warnings, one item each (the message joins them with "; ", which they can contain).
    summary : str
    model : object
        The fitted estimator (of the last step for a combined run).
    parts : list of JobResult
        The steps of a combined run (``refit --portfolio``), each with its own summary.
    status : dict
        ``item -> value`` of this step's column of FL_STATUS (time, model, reg_lambda, ...).
    """

    job: str
    outputs: list[OutputTable] = field(default_factory=list)
    pictures: list[Picture] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    summary: str = ""
    model: object = None
    parts: list[JobResult] = field(default_factory=list)
    status: dict = field(default_factory=dict)

    def output(self, name: str) -> OutputTable | None:
        return next((t for t in self.outputs if t.name == name), None)


def cell_value(v):
    """A Python value a workbook accepts: NaN and None become blank."""
    if v is None:
        return None
    if isinstance(v, (np.floating, float)):
        return None if not math.isfinite(v) else float(v)
    if isinstance(v, np.integer):
        return int(v)
    return v


def series_table(label: str, series_map: dict[str, pd.Series], rows) -> list:
    """``label | name1 | name2 ...`` with one row per entry of ``rows``."""
    header = [label, *series_map]
    body = [[r, *(cell_value(s.get(r)) for s in series_map.values())] for r in rows]
    return [header, *body]


def now_text() -> str:
    return dt.datetime.now().replace(microsecond=0).isoformat(sep=" ")


@contextmanager
def user_notes() -> Iterator[list[str]]:
    """The messages of :func:`~xl_factorlasso.core._notes.user_warnings` (each UserWarning
    once, other warnings dropped) in the list it yields, filled when the block ends: the notes a
    job shows in FL_STATUS and FLASSO_NOTES in its cells (neither has a console)."""
    notes: list[str] = []
    try:
        with user_warnings(others="drop") as caught:
            yield notes
    finally:
        notes.extend(message for _, message in caught)


def status_message(result: JobResult) -> str:
    """FL_STATUS's message for a step: its notes, then its warnings, joined by "; " ("ok"
    when it has neither)."""
    return "; ".join([*result.notes, *result.warnings]) or "ok"


def add_warning(result: JobResult, text: str) -> None:
    """A problem that does not stop the step: in its warnings, its FL_STATUS message and its
    FL_STATUS table (rebuilt)."""
    result.warnings.append(text)
    result.status["message"] = status_message(result)
    result.outputs = [t for t in result.outputs if t.name != "FL_STATUS"]
    result.outputs.append(status_table([result]))


def status_table(parts: list[JobResult]) -> OutputTable:
    """FL_STATUS: one column per step of the run, one row per item (the union of the steps'
    items, in order of first appearance; blank where a step has no such item).

    Items run down the first column so that the table stays two columns wide for one step and
    reads in the narrow columns users give it; each step keeps its model, lambda, scores,
    solver, time and message.
    """
    items: list[str] = []
    for part in parts:
        items += [k for k in part.status if k not in items]
    rows = [["item", *(p.job for p in parts)]]
    rows += [[item, *(cell_value(p.status.get(item)) for p in parts)] for item in items]
    return OutputTable("FL_STATUS", rows)


def merge_results(parts: list[JobResult]) -> JobResult:
    """One result for several steps computed on the same inputs, written in one save.

    Tables of later steps win for the same name, except FL_STATUS, which has one column per
    step (:func:`status_table`).
    """
    job = " + ".join(p.job for p in parts)
    merged = JobResult(job, parts=list(parts), model=parts[-1].model)
    by_name: dict[str, OutputTable] = {}
    for part in parts:
        for table in part.outputs:
            if table.name != "FL_STATUS":
                by_name[table.name] = table
        merged.pictures += part.pictures
        merged.warnings += part.warnings
    merged.outputs = [*by_name.values(), status_table(parts)]
    merged.summary = "; ".join(p.summary for p in parts)
    return merged
