"""The console script runs end to end and reports numbers, never a traceback."""

from __future__ import annotations

import re
import subprocess
import sys

from xl_factorlasso.cli import main


def test_demo_prints_a_readable_summary(capsys):
    assert main(["demo", "--n-lambdas", "6"]) == 0
    out = capsys.readouterr().out
    assert "SYNTHETIC" in out and "Estimated loadings" in out
    tpr = float(re.search(r"true-positive rate ([0-9.]+)", out).group(1))
    signs = float(re.search(r"sign agreement on the true support ([0-9.]+)", out).group(1))
    assert tpr >= 0.9 and signs >= 0.95
    assert "SPX" in out and "Commodities" in out and "resid vol" in out


def test_console_script_entry_point_and_errors():
    run = subprocess.run(
        [sys.executable, "-m", "xl_factorlasso", "--help"], capture_output=True, text=True
    )
    assert run.returncode == 0 and "demo" in run.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "xl_factorlasso", "frobnicate"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
