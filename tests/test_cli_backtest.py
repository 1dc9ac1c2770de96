"""``xl-factorlasso backtest``: a real workbook file end to end in a subprocess (exit code,
stdout, stderr, the outputs in the file), the options' messages, the progress lines, Ctrl-C
and the statistics table."""

from __future__ import annotations

import hashlib
import io
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest

from xl_factorlasso import cli
from xl_factorlasso.core import LassoModel, RollingLassoModel, load_demo_panel
from xl_factorlasso.workbook import XlsxFileIO
from xl_factorlasso.workbook._builder import build_workbook
from xl_factorlasso.workbook._results import JobResult

ROOT = Path(__file__).resolve().parents[1]
ROLLING = {"rebalance": "QE", "window": 104, "min_history": 104}


def _env() -> dict:
    # the subprocess imports this worktree's package, draws with Agg and has no terminal
    return {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}


def _run(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xl_factorlasso", *args], capture_output=True,
                          text=True, env=_env(), timeout=600, **kwargs)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _classes(demo) -> pd.DataFrame:
    # FL_ASSET_GROUPS filled (the builder's header-only table is refused by the portfolio
    # readers), with the demo's tags: a tag may not also be a factor name ("Credit")
    return pd.DataFrame({"asset_class": demo.clusters.map(cli._CLASS_TAGS)})


@pytest.fixture(scope="module")
def demo():
    return load_demo_panel()


@pytest.fixture(scope="module")
def book(tmp_path_factory, demo) -> Path:
    """A workbook with the demo panel, a LASSO model and quarterly refits on 104 weeks."""
    path = tmp_path_factory.mktemp("backtest") / "book.xlsx"
    build_workbook(path, returns=demo.y, factors=demo.x,
                   settings={"model_type": "LASSO", "reg_lambda": 1e-4, "span": 52},
                   asset_groups=_classes(demo), rolling_settings=ROLLING)
    return path


def _history(path: Path) -> pd.DataFrame:
    io_ = XlsxFileIO(str(path))
    rows = io_.read(io_.names()["FL_BETA_HISTORY"])
    header, *body = [r for r in rows if any(v is not None for v in r)]
    return pd.DataFrame(body, columns=header)


PROGRESS = re.compile(r"steps (\d+)/(\d+) \[([#.]{10})\] [0-9.]+ s elapsed"
                      r"(?:, ~[0-9.]+ s left|, done)?")


def test_backtest_writes_the_file_and_prints_the_summary(book, tmp_path, demo):
    out = tmp_path / "result.xlsx"
    before = _digest(book)
    run = _run("backtest", str(book), "--out", str(out), "--no-pictures")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith("backtest: LASSO, ")
    assert lines[0].endswith("; strategies factor, sample, ewma, equal_weight")
    assert lines[1:3] == ["", "Strategy statistics (annualised; net = after transaction costs)"]
    assert lines[3].split() == ["annualized_mean", "annualized_volatility", "sharpe_ratio",
                                "sortino_ratio", "max_drawdown", "calmar_ratio",
                                "average_turnover", "total_costs"]
    assert [" ".join(r.split()[:2]) for r in lines[4:12]] == [
        f"{s} {k}" for s in ("factor", "sample", "ewma", "equal_weight")
        for k in ("gross", "net")]
    assert lines[-1].startswith("done in ") and lines[-1].endswith(f" s -> {out}")
    assert _digest(book) == before  # --out leaves BOOK as it was
    # the file holds the rolling model's loadings, the same as a direct run
    rolling = RollingLassoModel(LassoModel(reg_lambda=1e-4, span=52), **ROLLING).fit(
        demo.x, demo.y)
    expected = rolling.to_long()
    got = _history(out)
    assert list(got.columns) == ["date", "asset", "factor", "beta"]
    assert len(got) == len(expected) == len(rolling.results_) * 24 * 6
    assert f"{len(rolling.fit_info_)} of {len(rolling.dates_)} rebalancing dates fitted" \
        in lines[0]
    np.testing.assert_allclose(got["beta"].to_numpy(float), expected["beta"].to_numpy(),
                               rtol=0, atol=1e-12)
    assert list(got["asset"]) == list(expected["asset"])
    # progress on stderr, not a terminal: plain lines, one total (the model's fits at the
    # dates + the rebalancing dates' portfolios), counts rising to the total, then "done"
    assert "\r" not in run.stderr and "Traceback" not in run.stderr
    progress = [PROGRESS.fullmatch(line) for line in run.stderr.splitlines()]
    assert progress and all(progress), run.stderr
    done = [int(m.group(1)) for m in progress]
    totals = {int(m.group(2)) for m in progress}
    assert totals == {2 * len(rolling.fit_info_)}  # each fitted date, then its portfolio
    assert done == sorted(done) and done[-1] == totals.pop()
    assert run.stderr.splitlines()[-1].endswith(", done")
    assert progress[-1].group(3) == "#" * 10


def test_bad_scheduler_address_is_refused_before_reading(book):
    before = _digest(book)
    run = _run("backtest", str(book), "--scheduler", "localhost:8786")
    assert run.returncode == 2
    assert run.stderr.splitlines()[-1] == (
        "xl-factorlasso backtest: error: argument --scheduler: 'localhost:8786' is not a Dask "
        "scheduler address such as tcp://10.0.0.5:8786 (or none)")
    assert "Traceback" not in run.stderr and run.stdout == ""
    run = _run("backtest", str(book), "--n-jobs", "0")
    assert run.returncode == 2
    assert run.stderr.splitlines()[-1] == (
        "xl-factorlasso backtest: error: argument --n-jobs: must be a whole number >= 1 or -1 "
        "(or none), got 0")
    assert _digest(book) == before


def test_bad_input_names_the_cell_and_writes_nothing(tmp_path, demo):
    path = tmp_path / "bad.xlsx"
    build_workbook(path, returns=demo.y, factors=demo.x, asset_groups=_classes(demo),
                   rolling_settings={"rebalance": "monthly"})
    before = _digest(path)
    run = _run("backtest", str(path), "--quiet")
    assert run.returncode == 2
    assert run.stderr == ("xl-factorlasso: error: FL_ROLLING_SETTINGS!B2: rebalance: 'monthly' "
                          "is not a rebalancing frequency; write a pandas frequency such as "
                          "W-FRI (weekly, Fridays), ME (month end), QE (quarter end) or YE "
                          "(year end)\n")
    assert run.stdout == "" and _digest(path) == before


def test_missing_book():
    run = _run("backtest", "no-such-book.xlsx")
    assert run.returncode == 2
    assert run.stderr == "xl-factorlasso: error: no such workbook: no-such-book.xlsx\n"


# --------------------------------------------------------------------------- in process
class FakeClock:
    def __init__(self):
        self.t = 1000.0

    def monotonic(self) -> float:
        self.t += 1.5
        return self.t


def _fake_job(monkeypatch, outcome, steps):
    """Replace the workbook job: it reports ``steps`` through progress, then returns or
    raises ``outcome``; records its arguments."""
    import xl_factorlasso._progress as progress_module
    import xl_factorlasso.workbook as workbook

    seen = []

    def run_job(io_, job, **options):
        seen.append((job, {k: v for k, v in options.items() if k != "progress"},
                     options["progress"] is not None))
        for done, total in steps:
            if options["progress"] is not None:
                options["progress"](done, total)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    monkeypatch.setattr(workbook, "run_job", run_job)
    monkeypatch.setattr(progress_module, "time", FakeClock())
    return seen


def _stats() -> pd.DataFrame:
    index = pd.MultiIndex.from_product([["factor", "equal_weight"], ["gross", "net"]])
    columns = ["annualized_mean", "annualized_volatility", "sharpe_ratio", "sortino_ratio",
               "max_drawdown", "calmar_ratio", "average_turnover", "total_costs"]
    values = np.arange(32, dtype=float).reshape(4, 8) / 8
    values[0, 7] = np.nan
    return pd.DataFrame(values, index=index, columns=columns)


def test_progress_lines_summary_and_statistics(book, monkeypatch, capsys):
    class Fitted:
        stats_ = _stats()

    result = JobResult("backtest", summary="backtest: LASSO, 3 of 3 rebalancing dates fitted",
                       warnings=["picture not drawn"], skipped=["FL_WEIGHT_HISTORY"])
    result.model = Fitted()
    seen = _fake_job(monkeypatch, result, [(1, 3), (2, 3), (3, 3)])
    code = cli.main(["backtest", str(book), "--scheduler", "tcp://127.0.0.1:8786",
                     "--n-jobs", "2", "--no-pictures"])
    out, err = capsys.readouterr()
    assert code == 0
    assert seen == [("backtest", {"pictures": False, "scheduler": "tcp://127.0.0.1:8786",
                                  "n_jobs": 2}, True)]
    # not a terminal: one plain line per update; the clock moves 1.5 s at every reading
    assert err == ("steps 1/3 [###.......] 1.5 s elapsed, ~3.0 s left\n"
                   "steps 2/3 [######....] 3.0 s elapsed, ~1.5 s left\n"
                   "steps 3/3 [##########] 4.5 s elapsed, done\n")
    assert out.splitlines()[:9] == [
        "backtest: LASSO, 3 of 3 rebalancing dates fitted",
        "",
        "Strategy statistics (annualised; net = after transaction costs)",
        "                    annualized_mean  annualized_volatility  sharpe_ratio  "
        "sortino_ratio  max_drawdown  calmar_ratio  average_turnover  total_costs",
        "factor gross                 0.0000                 0.1250        0.2500  "
        "       0.3750        0.5000        0.6250            0.7500          n/a",
        "factor net                   1.0000                 1.1250        1.2500  "
        "       1.3750        1.5000        1.6250            1.7500       1.8750",
        "equal_weight gross           2.0000                 2.1250        2.2500  "
        "       2.3750        2.5000        2.6250            2.7500       2.8750",
        "equal_weight net             3.0000                 3.1250        3.2500  "
        "       3.3750        3.5000        3.6250            3.7500       3.8750",
        "warning: picture not drawn",
    ]
    assert out.splitlines()[9] == "not written (name not defined): FL_WEIGHT_HISTORY"
    assert out.splitlines()[10].startswith("done in ")


def test_quiet_passes_no_progress(book, monkeypatch, capsys):
    seen = _fake_job(monkeypatch, JobResult("backtest", summary="backtest: ok"), [(1, 1)])
    assert cli.main(["backtest", str(book), "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert seen == [("backtest", {"pictures": True, "scheduler": None, "n_jobs": None}, False)]
    assert err == "" and out.startswith("backtest: ok\ndone in ")


def test_ctrl_c_writes_nothing_and_exits_130(book, monkeypatch, capsys):
    before = _digest(book)
    _fake_job(monkeypatch, KeyboardInterrupt(), [(1, 4)])
    assert cli.main(["backtest", str(book)]) == 130
    out, err = capsys.readouterr()
    assert out == ""
    assert err == ("steps 1/4 [##........] 1.5 s elapsed, ~4.5 s left\n"
                   "xl-factorlasso backtest: interrupted; nothing was written\n")
    assert _digest(book) == before


def test_terminal_line_is_ended_before_an_error(book, monkeypatch, capsys):
    """On a terminal the bar's line is closed before the error message follows it."""
    from xl_factorlasso.workbook import WorkbookInputError

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    monkeypatch.setattr(sys, "stderr", stream)
    _fake_job(monkeypatch, WorkbookInputError("FL_ROLLING_SETTINGS!B3: window bad"), [(1, 2)])
    assert cli.main(["backtest", str(book)]) == 2
    assert stream.getvalue() == ("\rsteps 1/2 [#####.....] 1.5 s elapsed, ~1.5 s left\n"
                                 "xl-factorlasso: error: FL_ROLLING_SETTINGS!B3: window bad\n")


def test_demo_includes_the_backtest(tmp_path, capsys):
    out = tmp_path / "demo.xlsx"
    started = time.perf_counter()
    assert cli.main(["demo", "--out", str(out), "--quiet"]) == 0
    elapsed = time.perf_counter() - started
    text = capsys.readouterr().out
    assert ("Walk-forward backtest (rebalance ME, window expanding, min_history 104, "
            "transaction_cost_bps 10, history_factor Equity)") in text
    assert "backtest: HIERARCHICAL_CLUSTER_GROUP_LASSO, " in text
    names = set(openpyxl.load_workbook(out, read_only=True).defined_names)
    assert {"FL_COEF", "FL_WEIGHTS", "FL_BETA_HISTORY", "FL_ROLLING_SETTINGS"} <= names
    assert len(_history(out)) > 0
    print(f"demo with backtest: {elapsed:.1f} s")  # reported, not asserted


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigint_in_a_real_run_leaves_the_file_unchanged(tmp_path, demo):
    """A real Ctrl-C (SIGINT) while the dates are being fitted: exit 130, the message, and
    the workbook byte for byte as it was."""
    path = tmp_path / "interrupted.xlsx"
    # HCGL at every Friday of an expanding window: seconds of fits to interrupt. (At every
    # month end the fits took 1.2 s on a fast machine, and the signal, 3 s after the start,
    # once arrived as the interpreter was shutting down after the save: killed, -2.)
    build_workbook(path, returns=demo.y, factors=demo.x,
                   settings={"model_type": "HCGL", "n_clusters": 4, "span": 52},
                   asset_groups=_classes(demo), rolling_settings={"rebalance": "W-FRI"})
    before = _digest(path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "xl_factorlasso", "backtest", str(path), "--no-pictures"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
        # a shell running tests in the background ignores SIGINT; Python must see it
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        time.sleep(3.0)  # inside the job: imports and the workbook read take about a second
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    if proc.returncode == 0 or (proc.returncode == -signal.SIGINT and "done" in err):
        # pragma: no cover - the job finished before the signal (or as the process exited)
        pytest.skip("the job ended before the signal arrived")
    assert proc.returncode == 130, err
    assert err.splitlines()[-1] == "xl-factorlasso backtest: interrupted; nothing was written"
    assert "Traceback" not in err and out == ""
    assert _digest(path) == before
