"""Every workbook a job writes passes Microsoft's Open XML SDK validator.

The validator (``../shared/tools/ooxml-validate``) is built on first use from package registries;
where it cannot run here these checks skip. The one report allowed is openpyxl's order of
``<font>`` children in ``/xl/styles.xml`` (the demo and the templates are written by openpyxl;
Excel opens such files).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from xl_factorlasso.cli import build_demo_workbook
from xl_factorlasso.workbook import XlsxFileIO, clear_outputs, run_jobs

ROOT = Path(__file__).resolve().parents[1]
VALIDATOR = ROOT.parent / "shared" / "tools" / "ooxml-validate" / "ooxml-validate"
BENIGN = ("Sch_UnexpectedElementContentExpectingComplex", "/xl/styles.xml", "/x:fonts[1]/x:font[")


def _validate(paths: list[Path]) -> list[str]:
    """The validator's error lines that are not the benign font-order report."""
    if not VALIDATOR.exists():
        pytest.skip(f"no validator at {VALIDATOR}")
    try:
        run = subprocess.run([str(VALIDATOR), *map(str, paths)], capture_output=True, text=True,
                             timeout=900)
    except (OSError, subprocess.TimeoutExpired) as err:
        pytest.skip(f"the validator cannot run here: {err}")
    if "== FILE" not in run.stdout:
        pytest.skip(f"the validator could not be built: {run.stderr.strip()[-300:]}")
    assert run.stdout.count("== FILE") == len(paths), run.stdout
    return [line for line in run.stdout.splitlines()
            if line.startswith("ERR") and not all(b in line for b in BENIGN)]


def test_every_job_writes_a_valid_package(tmp_path):
    demo = tmp_path / "demo.xlsx"
    build_demo_workbook(str(demo))
    written = []
    for steps in (["refit"], ["refit_cv"], ["optimise_portfolio"],
                  ["refit_cv", "optimise_portfolio"]):
        path = tmp_path / f"{'+'.join(steps)}.xlsx"
        shutil.copy(demo, path)
        run_jobs(XlsxFileIO(path), steps)
        written.append(path)
    cleared = tmp_path / "cleared.xlsx"
    shutil.copy(written[-1], cleared)
    clear_outputs(XlsxFileIO(cleared))
    template = tmp_path / "template.xlsm"
    shutil.copy(ROOT / "xl_factorlasso" / "templates" / "factorlasso_template.xlsm", template)
    run_jobs(XlsxFileIO(template), ["refit_cv", "optimise_portfolio"])
    assert _validate([*written, cleared, template]) == []
