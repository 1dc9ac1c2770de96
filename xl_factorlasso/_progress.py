"""Progress of a long job as one line of text: the CLI's bar on stderr, Excel's status bar.

A job reports ``progress(done, total)`` as its dates complete (``RollingLassoModel.fit`` and the
backtest, interface of issue 11). :func:`progress_text` turns one report into the line a user
sees, ``dates 37/240 [##........] 12 s elapsed, ~66 s left``; :class:`ProgressBar` writes it to
a stream (updating one line on a terminal, plain lines otherwise) and
:class:`StatusBarProgress` puts it in Excel's status bar. Both take their clock as an argument
so that tests drive them with a fake one.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["BACKTEST_UNIT", "ProgressBar", "StatusBarProgress", "progress_text"]

#: What the backtest's progress counts: its ``total`` is the model fits at the rebalancing
#: dates plus the rebalancing dates' portfolios (``MaxDiversificationBacktest.fit``), so
#: "dates" would overstate the number of dates.
BACKTEST_UNIT = "steps"
BAR_WIDTH = 10
#: At most one update per this many seconds (the first and the last are always shown).
MIN_INTERVAL = 0.1


def _seconds(t: float) -> str:
    # tenths for short jobs, whole seconds once the tenth no longer tells the user anything
    return f"{t:.1f} s" if t < 10 else f"{t:.0f} s"


def progress_text(done: int, total: int, elapsed: float, label: str = "dates", *,
                  since: tuple[float, int] | None = None) -> str:
    """One progress line.

    Parameters
    ----------
    done, total : int
        Units of work completed and to do (``0 <= done <= total``).
    elapsed : float
        Seconds since the job started.
    label : str, default "dates"
        What is counted.
    since : (float, int), optional
        ``(elapsed, done)`` at the first report. Given, and with work done since, the time
        left is extrapolated from the pace since then, so that the job's set-up (reading the
        workbook, starting processes) does not count as time per unit.

    Returns
    -------
    str
        ``"dates 37/240 [#.........] 12 s elapsed, ~66 s left"``; no estimate before the first
        unit completes (nothing to extrapolate from), ``"done"`` once ``done == total``.
        The estimate is ``elapsed / done * (total - done)``, or with ``since = (e0, d0)``
        ``(elapsed - e0) / (done - d0) * (total - done)`` once ``done > d0``.
    """
    filled = BAR_WIDTH * done // total if total > 0 else BAR_WIDTH
    bar = "#" * filled + "." * (BAR_WIDTH - filled)
    text = f"{label} {done}/{total} [{bar}] {_seconds(elapsed)} elapsed"
    if total > 0 and done >= total:
        return text + ", done"
    if done <= 0:
        return text
    per_unit = elapsed / done
    if since is not None and done > since[1] and elapsed > since[0]:
        per_unit = (elapsed - since[0]) / (done - since[1])
    return text + f", ~{_seconds(per_unit * (total - done))} left"


class ProgressBar:
    """``progress(done, total)`` callable writing :func:`progress_text` lines to a stream.

    On a terminal one line is rewritten in place (carriage return) and ended by a newline at
    the last update; elsewhere (a log file, a pipe) every update is a line of its own. Updates
    closer than ``min_interval`` seconds to the previous one are dropped, except the first and
    the last (``done == total``), so a fast job does not flood its log. The time left is
    extrapolated from the pace since the first report (``since`` of :func:`progress_text`).

    Parameters
    ----------
    stream : file-like, optional
        Default ``sys.stderr`` (stdout keeps the job's results).
    label : str, default "dates"
    clock : callable, optional
        Seconds (default ``time.monotonic``); the job's start is the time of construction.
    min_interval : float, default 0.1
    tty : bool, optional
        Whether ``stream`` is a terminal (default: ``stream.isatty()``).
    """

    def __init__(self, stream: TextIO | None = None, *, label: str = "dates",
                 clock: Callable[[], float] | None = None,
                 min_interval: float = MIN_INTERVAL, tty: bool | None = None):
        self.stream = sys.stderr if stream is None else stream
        self.label = label
        self.clock = time.monotonic if clock is None else clock
        self.min_interval = min_interval
        if tty is None:
            isatty = getattr(self.stream, "isatty", None)
            tty = bool(isatty()) if callable(isatty) else False
        self.tty = tty
        self.start = self.clock()
        self._shown: float | None = None  # clock of the last line written
        self._first: tuple[float, int] | None = None  # (elapsed, done) at the first report
        self._width = 0  # length of the line on screen (terminal), to blank what is left
        self._open = False  # a terminal line without its newline yet

    def __call__(self, done: int, total: int) -> None:
        now = self.clock()
        if self._first is None and done > 0:
            self._first = (now - self.start, done)
        last = total > 0 and done >= total
        if (not last and self._shown is not None
                and now - self._shown < self.min_interval):
            return
        self._shown = now
        text = progress_text(done, total, now - self.start, self.label, since=self._first)
        if self.tty:
            pad = " " * max(0, self._width - len(text))
            self.stream.write("\r" + text + pad + ("\n" if last else ""))
            self._width = len(text)
            self._open = not last
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        """End a terminal line left open (a job stopped before its last update)."""
        if self._open:
            self.stream.write("\n")
            self.stream.flush()
            self._open = False


class StatusBarProgress:
    """``progress(done, total)`` callable showing :func:`progress_text` in Excel's status bar.

    ``app.status_bar = text`` is the classic xlwings property; :meth:`restore` hands the bar
    back to Excel (``False``), which a caller does when the job ends, also on an error. A
    status bar that cannot be set (an engine without one) never stops the job.

    Parameters
    ----------
    app : xlwings.App
    label, clock, min_interval
        As :class:`ProgressBar`.
    """

    def __init__(self, app, *, label: str = "dates",
                 clock: Callable[[], float] | None = None,
                 min_interval: float = MIN_INTERVAL):
        self.app = app
        self.label = label
        self.clock = time.monotonic if clock is None else clock
        self.min_interval = min_interval
        self.start = self.clock()
        self._shown: float | None = None
        self._first: tuple[float, int] | None = None

    def _set(self, value) -> None:
        try:
            self.app.status_bar = value
        except Exception:  # noqa: BLE001 - progress is a courtesy; the job goes on without it
            pass

    def __call__(self, done: int, total: int) -> None:
        now = self.clock()
        if self._first is None and done > 0:
            self._first = (now - self.start, done)
        last = total > 0 and done >= total
        if not last and self._shown is not None and now - self._shown < self.min_interval:
            return
        self._shown = now
        self._set(progress_text(done, total, now - self.start, self.label, since=self._first))

    def restore(self) -> None:
        """Give the status bar back to Excel."""
        self._set(False)
