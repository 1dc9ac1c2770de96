"""The console script runs end to end and reports numbers, never a traceback."""

from __future__ import annotations

import re
import subprocess
import sys

import openpyxl

from xl_factorlasso.cli import main


def test_demo_writes_a_workbook_and_prints_a_summary(tmp_path, capsys):
    out = tmp_path / "demo.xlsx"
    assert main(["demo", "--out", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "SYNTHETIC" in text and "Estimated loadings" in text
    tpr = float(re.search(r"true-positive rate ([0-9.]+)", text).group(1))
    signs = float(re.search(r"sign agreement on the true support ([0-9.]+)", text).group(1))
    assert tpr >= 0.9 and signs >= 0.95
    assert "Maximum-diversification portfolio" in text and str(out) in text
    wb = openpyxl.load_workbook(out)
    assert {"FL_COEF", "FL_CV", "FL_WEIGHTS", "FL_STATUS"} <= set(wb.defined_names)
    weights = [r[1].value for r in wb["Portfolio"].iter_rows(min_row=2, max_row=25, min_col=9,
                                                             max_col=10)]
    assert abs(sum(w or 0.0 for w in weights) - 1.0) < 1e-6


def test_console_script_entry_point_and_errors(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "xl_factorlasso", "--help"], capture_output=True, text=True
    )
    assert run.returncode == 0 and "demo" in run.stdout and "inspect" in run.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "xl_factorlasso", "frobnicate"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "xl_factorlasso", "refit", str(tmp_path / "nope.xlsx")],
        capture_output=True, text=True,
    )
    assert missing.returncode == 2 and "no such workbook" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_the_fits_notes_are_printed_one_per_line(tmp_path, capsys):
    """A factor with one value on its first 200 rows: refit says nothing of it (the whole panel
    varies), the backtest names the dates whose 104-row windows lie inside them; each note is
    a line of its own, as FL_STATUS's message holds it."""
    from xl_factorlasso.core.datasets import load_demo_panel
    from xl_factorlasso.workbook._builder import build_workbook

    d = load_demo_panel()
    x = d.x.copy()
    x.iloc[:200, 0] = 0.001
    x["copy"] = 2.0 * x.iloc[:, 1]  # proportional to another factor: refit's note
    path = tmp_path / "book.xlsx"
    build_workbook(path, returns=d.y, factors=x,
                   settings={"reg_lambda": 1e-5, "annualization_factor": 52},
                   rolling_settings={"rebalance": "QE", "min_history": 104, "window": 104},
                   readable=True)
    assert main(["refit", str(path)]) == 0
    out = capsys.readouterr().out
    wb = openpyxl.load_workbook(path)
    status = {r[0]: r[1] for r in wb["Diagnostics"].iter_rows(values_only=True) if r[0]}
    notes = [line.removeprefix("note: ") for line in out.splitlines()
             if line.startswith("note: ")]
    assert notes == [status["message"]]
    assert notes[0].startswith(f"x: factors {x.columns[1]!r} and 'copy' are proportional")
    assert "; drop one of them" in notes[0]  # (why the message cannot be split on "; ")
    assert main(["backtest", str(path)]) == 0
    out = capsys.readouterr().out
    notes = [line.removeprefix("note: ") for line in out.splitlines()
             if line.startswith("note: ")]
    flat = [n for n in notes if f"factor {x.columns[0]!r} is constant" in n]
    assert len(flat) == 1 and re.match(r"\d+ of \d+ rebalancing dates, from ", flat[0])
    status = {r[0]: r[1] for r in openpyxl.load_workbook(path)["Diagnostics"].iter_rows(
        values_only=True) if r[0]}
    assert "; ".join(notes) == status["message"]
