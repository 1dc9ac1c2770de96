"""Ribbon entry points: one implementation per button, three hosts.

* desktop (classic xlwings, free): the template's VBA callbacks run
  ``RunPython "import xl_factorlasso.ribbon as r; r.refit_caller()"``;
* xlwings Server / Office.js (optional ``server`` extra): the ``@script`` functions below;
* the CLI calls the same jobs on a file.

Every entry point catches bad input and solver failures and shows one readable message (an
alert in Excel) instead of a traceback dialog; nothing is written in that case.

Backtest is the one long job: on the desktop its progress ("dates 37/240 [#.........] 12 s
elapsed, ~66 s left", the CLI's line) is shown in Excel's status bar, which is handed back to
Excel when the job ends, also on an error. Office.js has no status bar and a script's actions
reach Excel only when it returns, so the server script shows the summary alone.
"""

from __future__ import annotations

import xlwings as xw
from xlwings import script

from ._progress import BACKTEST_UNIT, StatusBarProgress
from .core import SolveError
from .workbook import WorkbookInputError, XlwingsBookIO, run_job

__all__ = [
    "backtest",
    "backtest_caller",
    "clear_outputs",
    "clear_outputs_caller",
    "job_message",
    "optimise_portfolio",
    "optimise_portfolio_caller",
    "refit",
    "refit_caller",
    "refit_cv",
    "refit_cv_caller",
    "run_book_backtest",
    "run_book_job",
]

TITLE = "xl-factorlasso"


def run_book_job(book, job: str, **options) -> str:
    """Run ``job`` on an xlwings ``Book`` and tell the user how it went.

    Returns the message shown (the job's summary, or the problem found). Expected problems
    (bad input, infeasible constraints, a failed solve) are reported in an alert; anything else
    is reported the same way with its type, so Excel never shows a Python traceback.
    ``options`` go to the job (``progress=`` for the backtest).
    """
    message = job_message(book, job, **options)
    _alert(book, message)
    return message


def job_message(book, job: str, **options) -> str:
    """Run ``job`` on ``book``: its summary with warnings and skipped names, or the problem
    found (bad input, failed solve, anything unexpected with its type); never raises."""
    try:
        result = run_job(XlwingsBookIO(book), job, **options)
        message = result.summary
        for warning in result.warnings:
            message += f"\nwarning: {warning}"
        if result.skipped:
            message += f" (not defined, not written: {', '.join(result.skipped)})"
    except (WorkbookInputError, SolveError) as err:
        message = str(err)
    except Exception as err:  # noqa: BLE001 - a dialog with a message beats a traceback
        message = f"unexpected error ({type(err).__name__}): {err}"
    return message


def _alert(book, message: str) -> None:
    try:
        book.app.alert(message, title=TITLE)
    except Exception:  # noqa: BLE001 - an engine without alerts: the message is still returned
        pass


def run_book_backtest(book) -> str:
    """The backtest job with its progress in Excel's status bar (desktop).

    The status bar is given back to Excel before the alert, whether the job succeeded or not.
    """
    status = StatusBarProgress(book.app, label=BACKTEST_UNIT)
    try:
        message = job_message(book, "backtest", progress=status)
    finally:
        status.restore()
    _alert(book, message)
    return message


# desktop: RunPython callbacks (xw.Book.caller() is the workbook that pressed the button)
def refit_caller() -> str:
    return run_book_job(xw.Book.caller(), "refit")


def refit_cv_caller() -> str:
    return run_book_job(xw.Book.caller(), "refit_cv")


def optimise_portfolio_caller() -> str:
    return run_book_job(xw.Book.caller(), "optimise_portfolio")


def clear_outputs_caller() -> str:
    return run_book_job(xw.Book.caller(), "clear_outputs")


def backtest_caller() -> str:
    return run_book_backtest(xw.Book.caller())


# xlwings Server / Office.js scripts (re-exported explicitly by the server project)
@script
def refit(book: xw.Book):
    """Refit the factor model from the FL_* inputs."""
    run_book_job(book, "refit")


@script
def refit_cv(book: xw.Book):
    """Cross-validate reg_lambda, then refit."""
    run_book_job(book, "refit_cv")


@script
def optimise_portfolio(book: xw.Book):
    """Maximum-diversification weights from the FL_* portfolio inputs."""
    run_book_job(book, "optimise_portfolio")


@script
def backtest(book: xw.Book):
    """Walk-forward backtest of the factor-model portfolio and its benchmarks."""
    run_book_job(book, "backtest")


@script
def clear_outputs(book: xw.Book):
    """Clear every FL_* output range."""
    run_book_job(book, "clear_outputs")
