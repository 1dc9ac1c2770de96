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
