"""The workbook contract between sheets and the core (no host code here).

Works on any xlwings ``Book`` (desktop COM engine or remote engine) and on an .xlsx/.xlsm file.
"""

from ._contract import CONTRACT, INPUTS, JOBS, OUTPUTS, NameSpec, spec
from ._errors import WorkbookInputError, cell_address
from ._io import Area, WorkbookIO, XlsxFileIO, XlwingsBookIO, open_workbook
from ._jobs import (
    JobResult,
    OutputTable,
    apply_result,
    backtest,
    clear_outputs,
    compute_jobs,
    compute_refit,
    optimise_portfolio,
    read_blocks,
    refit,
    refit_cv,
    run_job,
    run_jobs,
)
from ._tables import Block

__all__ = [
    "CONTRACT",
    "INPUTS",
    "JOBS",
    "OUTPUTS",
    "Area",
    "Block",
    "JobResult",
    "NameSpec",
    "OutputTable",
    "WorkbookIO",
    "WorkbookInputError",
    "XlsxFileIO",
    "XlwingsBookIO",
    "apply_result",
    "backtest",
    "cell_address",
    "clear_outputs",
    "compute_jobs",
    "compute_refit",
    "open_workbook",
    "optimise_portfolio",
    "read_blocks",
    "refit",
    "refit_cv",
    "run_job",
    "run_jobs",
    "spec",
]
