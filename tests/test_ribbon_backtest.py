"""The ribbon's Backtest button on the desktop: the job gets a progress callback that writes
the CLI's progress line to Excel's status bar, and the bar is handed back to Excel (False)
before the alert, whether the job succeeded, failed on bad input or crashed."""

from __future__ import annotations

from functools import partial

import pytest

from xl_factorlasso import ribbon
from xl_factorlasso._progress import StatusBarProgress, progress_text
from xl_factorlasso.workbook import WorkbookInputError
from xl_factorlasso.workbook._results import JobResult

xw = pytest.importorskip("xlwings")


class FakeApp:
    """What the classic engine's ``App`` offers the caller: status_bar and alert, recorded in
    the order they happen."""

    def __init__(self):
        self.events: list[tuple] = []

    @property
    def status_bar(self):
        bars = [v for kind, v in self.events if kind == "status_bar"]
        return bars[-1] if bars else False

    @status_bar.setter
    def status_bar(self, value):
        self.events.append(("status_bar", value))

    def alert(self, prompt, title=None, **kwargs):
        self.events.append(("alert", prompt, title))


class FakeBook:
    def __init__(self):
        self.app = FakeApp()


@pytest.fixture
def book(monkeypatch):
    book = FakeBook()
    monkeypatch.setattr(xw.Book, "caller", staticmethod(lambda: book))
    return book


def _fake_job(monkeypatch, outcome, steps=((1, 3), (2, 3), (3, 3))):
    """Replace the workbook job: it reports ``steps`` through progress, then returns or
    raises ``outcome``; records what it was called with."""
    calls = []

    def run_job(io, job, **options):
        calls.append((job, sorted(options)))
        for done, total in steps:
            options["progress"](done, total)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    monkeypatch.setattr(ribbon, "run_job", run_job)
    monkeypatch.setattr(ribbon, "XlwingsBookIO", lambda book: book)
    # a clock one second further at each reading: no update is throttled away
    clock = iter(float(t) for t in range(100, 200))
    monkeypatch.setattr(ribbon, "StatusBarProgress",
                        partial(StatusBarProgress, clock=lambda: next(clock)))
    return calls


def _bars(book) -> list:
    return [e[1] for e in book.app.events if e[0] == "status_bar"]


def test_backtest_caller_shows_progress_then_restores_the_bar(book, monkeypatch):
    result = JobResult("backtest", summary="backtest: 24 rebalances, 4 strategies",
                       warnings=["picture FL_BACKTEST_CHART not drawn"])
    calls = _fake_job(monkeypatch, result)
    message = ribbon.backtest_caller()
    assert calls == [("backtest", ["progress"])]
    assert message == ("backtest: 24 rebalances, 4 strategies\n"
                       "warning: picture FL_BACKTEST_CHART not drawn")
    # start 100 s; steps at 101, 102, 103 s
    assert _bars(book) == [progress_text(1, 3, 1.0, "steps"),
                           progress_text(2, 3, 2.0, "steps", since=(1.0, 1)),
                           progress_text(3, 3, 3.0, "steps"), False]
    # the CLI's line: the backtest counts steps (model fits, then portfolios, per date)
    assert _bars(book)[:3] == ["steps 1/3 [###.......] 1.0 s elapsed, ~2.0 s left",
                               "steps 2/3 [######....] 2.0 s elapsed, ~1.0 s left",
                               "steps 3/3 [##########] 3.0 s elapsed, done"]
    assert book.app.events[-2:] == [("status_bar", False), ("alert", message, "xl-factorlasso")]


def test_bad_input_restores_the_bar_and_alerts_the_cell(book, monkeypatch):
    error = WorkbookInputError("FL_ROLLING_SETTINGS!B2: 'monthly' is not a pandas frequency")
    _fake_job(monkeypatch, error, steps=((1, 5),))
    message = ribbon.backtest_caller()
    assert message == str(error)
    assert "FL_ROLLING_SETTINGS!B2" in message
    assert book.app.events == [("status_bar", "steps 1/5 [##........] 1.0 s elapsed, ~4.0 s left"),
                               ("status_bar", False),
                               ("alert", message, "xl-factorlasso")]


def test_crash_restores_the_bar_and_alerts_without_traceback(book, monkeypatch):
    _fake_job(monkeypatch, ZeroDivisionError("division by zero"), steps=())
    message = ribbon.backtest_caller()
    assert message == "unexpected error (ZeroDivisionError): division by zero"
    assert book.app.events == [("status_bar", False), ("alert", message, "xl-factorlasso")]


def test_interrupt_still_restores_the_bar(book, monkeypatch):
    """Not an error of the job (Excel or the user stopping Python): the bar is given back
    and the interrupt propagates."""
    _fake_job(monkeypatch, KeyboardInterrupt(), steps=((1, 2),))
    with pytest.raises(KeyboardInterrupt):
        ribbon.backtest_caller()
    assert _bars(book)[-1] is False
    assert not [e for e in book.app.events if e[0] == "alert"]


def test_other_buttons_do_not_touch_the_status_bar(book, monkeypatch):
    seen = []
    monkeypatch.setattr(ribbon, "run_job",
                        lambda io, job, **o: seen.append((job, o)) or JobResult(job, summary=job))
    monkeypatch.setattr(ribbon, "XlwingsBookIO", lambda book: book)
    assert ribbon.refit_caller() == "refit"
    assert seen == [("refit", {})]
    assert book.app.events == [("alert", "refit", "xl-factorlasso")]


def test_server_script_runs_the_job_without_progress(monkeypatch):
    seen = []
    monkeypatch.setattr(ribbon, "run_book_job", lambda book, job, **o: seen.append((job, o)))
    ribbon.backtest(FakeBook())
    assert seen == [("backtest", {})]


def test_backtest_caller_on_the_remote_engine(tmp_path, monkeypatch):
    """The real job through xlwings' remote engine (a workbook payload, actions back): the
    backtest's outputs are written, one alert ends the actions, whatever the engine does with
    the status bar."""
    if not xw.__pro__:  # pragma: no cover - depends on the machine's licence key
        pytest.skip("xlwings' remote engine needs XLWINGS_LICENSE_KEY")
    from tests.fake_office_client import apply_actions, book_payload
    from xl_factorlasso.cli import DEMO_ROLLING, build_demo_workbook
    from xl_factorlasso.workbook import XlsxFileIO

    path = tmp_path / "remote.xlsx"
    build_demo_workbook(str(path), rolling_settings=DEMO_ROLLING)
    book = xw.Book(json=book_payload(path, xw.__version__))
    monkeypatch.setattr(xw.Book, "caller", staticmethod(lambda: book))
    message = ribbon.backtest_caller()
    assert message.startswith("backtest: HIERARCHICAL_CLUSTER_GROUP_LASSO, 37 of 60 "
                              "rebalancing dates fitted")
    actions = book.json()["actions"]
    assert actions[-1] == {**actions[-1], "func": "alert"} and actions[-1]["args"][0] == message
    assert apply_actions(path, actions) == [message]
    io_ = XlsxFileIO(str(path))
    history = [r for r in io_.read(io_.names()["FL_BACKTEST_STATS"]) if r[0] is not None]
    assert history[0][:2] == ["strategy", "returns"] and len(history) == 9
