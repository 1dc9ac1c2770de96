"""What a job hands to the writer: output tables, pictures, and the run's status table."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["JobResult", "OutputTable", "Picture", "cell_value", "merge_results", "series_table"]


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
    summary : str
    model : object
        The fitted estimator (of the last step for a combined run).
    parts : list of JobResult
        The steps of a combined run (``refit --portfolio``), each with its own summary.
    """

    job: str
    outputs: list[OutputTable] = field(default_factory=list)
    pictures: list[Picture] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    summary: str = ""
    model: object = None
    parts: list[JobResult] = field(default_factory=list)

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


_STEP_NAMES = {"refit": "refit", "refit_cv": "cv", "optimise_portfolio": "portfolio"}


def merge_results(parts: list[JobResult]) -> JobResult:
    """One result for several steps computed on the same inputs, written in one save.

    Tables of later steps win for the same name, except FL_STATUS, which lists every step:
    the first step's rows, then each later step's rows as ``<step> <item>`` (``portfolio
    message``: short, so that the item column stays readable).
    """
    job = " + ".join(p.job for p in parts)
    merged = JobResult(job, parts=list(parts), model=parts[-1].model)
    by_name: dict[str, OutputTable] = {}
    status = [["item", "value"], ["time", now_text()], ["job", job]]
    for k, part in enumerate(parts):
        for table in part.outputs:
            if table.name != "FL_STATUS":
                by_name[table.name] = table
                continue
            for item, value in table.values[1:]:
                if item in ("time", "job"):
                    continue
                status.append([item if k == 0 else f"{_STEP_NAMES[part.job]} {item}", value])
        merged.pictures += part.pictures
        merged.warnings += part.warnings
    merged.outputs = [*by_name.values(), OutputTable("FL_STATUS", status)]
    merged.summary = "; ".join(p.summary for p in parts)
    return merged
