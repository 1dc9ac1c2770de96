"""The progress line of long jobs (xl_factorlasso._progress): exact text, terminal and log
forms, throttling, and Excel's status bar; a fake clock and a StringIO, no waiting."""

from __future__ import annotations

import io

import pytest

from xl_factorlasso._progress import ProgressBar, StatusBarProgress, progress_text


class Clock:
    def __init__(self, t: float = 100.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.mark.parametrize(("done", "total", "elapsed", "text"), [
    (0, 240, 0.0, "dates 0/240 [..........] 0.0 s elapsed"),
    (37, 240, 12.0, "dates 37/240 [#.........] 12 s elapsed, ~66 s left"),
    (120, 240, 30.0, "dates 120/240 [#####.....] 30 s elapsed, ~30 s left"),
    (1, 4, 2.5, "dates 1/4 [##........] 2.5 s elapsed, ~7.5 s left"),
    (239, 240, 95.6, "dates 239/240 [#########.] 96 s elapsed, ~0.4 s left"),
    (240, 240, 96.0, "dates 240/240 [##########] 96 s elapsed, done"),
    (0, 0, 0.2, "dates 0/0 [##########] 0.2 s elapsed"),
])
def test_progress_text(done, total, elapsed, text):
    assert progress_text(done, total, elapsed) == text


@pytest.mark.parametrize(("done", "elapsed", "since", "text"), [
    # only the first report so far: elapsed / done
    (1, 20.0, (20.0, 1), "dates 1/5 [##........] 20 s elapsed, ~80 s left"),
    # 4 s for 2 units since the first report (20 s of it was set-up): 2 s a unit, 2 to go
    (3, 24.0, (20.0, 1), "dates 3/5 [######....] 24 s elapsed, ~4.0 s left"),
    (3, 24.0, None, "dates 3/5 [######....] 24 s elapsed, ~16 s left"),
])
def test_estimate_from_the_pace_since_the_first_report(done, elapsed, since, text):
    assert progress_text(done, 5, elapsed, since=since) == text


def test_progress_text_label():
    assert progress_text(3, 6, 1.0, "steps") == "steps 3/6 [#####.....] 1.0 s elapsed, ~1.0 s left"


def test_log_form_is_plain_lines_throttled():
    clock, out = Clock(), io.StringIO()
    bar = ProgressBar(out, clock=clock, tty=False)
    clock.t += 1.0
    bar(1, 4)  # the first update is always shown
    clock.t += 0.05
    bar(2, 4)  # 0.05 s after the previous line: dropped
    clock.t += 0.06
    bar(3, 4)  # 0.11 s: shown
    clock.t += 0.01
    bar(4, 4)  # the last update is always shown
    bar.close()  # nothing left open in the log form
    assert out.getvalue() == (
        "dates 1/4 [##........] 1.0 s elapsed, ~3.0 s left\n"
        "dates 3/4 [#######...] 1.1 s elapsed, ~0.1 s left\n"  # 0.11 s for 2 dates since 1/4
        "dates 4/4 [##########] 1.1 s elapsed, done\n"
    )
    assert "\r" not in out.getvalue()


def test_terminal_form_rewrites_one_line():
    clock, out = Clock(), io.StringIO()
    bar = ProgressBar(out, clock=clock, tty=True)
    clock.t += 12.0
    bar(1, 3)
    clock.t += 1.0
    bar(2, 3)
    clock.t += 1.0
    bar(3, 3)
    first = "dates 1/3 [###.......] 12 s elapsed, ~24 s left"
    # the first date took 12 s with the set-up, the second 1 s: the estimate follows the pace
    second = "dates 2/3 [######....] 13 s elapsed, ~1.0 s left"
    last = "dates 3/3 [##########] 14 s elapsed, done"
    pad = " " * (len(second) - len(last))  # the end of the longer line is blanked
    assert out.getvalue() == f"\r{first}\r{second}\r{last}{pad}\n"


def test_terminal_line_closed_when_the_job_stops_early():
    clock, out = Clock(), io.StringIO()
    bar = ProgressBar(out, clock=clock, tty=True)
    bar(1, 5)
    bar.close()
    bar.close()  # once
    assert out.getvalue() == "\rdates 1/5 [##........] 0.0 s elapsed, ~0.0 s left\n"


def test_tty_detected_from_the_stream():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    assert ProgressBar(Terminal()).tty is True
    assert ProgressBar(io.StringIO()).tty is False


class FakeApp:
    def __init__(self, broken=False):
        self.values = []
        self.broken = broken

    @property
    def status_bar(self):
        return self.values[-1] if self.values else False

    @status_bar.setter
    def status_bar(self, value):
        if self.broken:
            raise RuntimeError("no status bar here")
        self.values.append(value)


def test_status_bar_shows_the_same_text_and_is_restored():
    clock, app = Clock(), FakeApp()
    status = StatusBarProgress(app, clock=clock)
    clock.t += 2.0
    status(1, 2)
    clock.t += 0.01
    status(1, 2)  # throttled
    clock.t += 2.0
    status(2, 2)
    status.restore()
    assert app.values == [progress_text(1, 2, 2.0), progress_text(2, 2, 4.01), False]
    assert app.values[0] == "dates 1/2 [#####.....] 2.0 s elapsed, ~2.0 s left"


def test_status_bar_that_cannot_be_set_does_not_stop_the_job():
    status = StatusBarProgress(FakeApp(broken=True))
    status(1, 2)
    status.restore()
