"""Every benchmark times the package of the checkout it is in.

A benchmark run from a git worktree (an older commit, for a before/after table) imported the
package through the environment's editable install instead, that is the main checkout's code,
unless the script put its own checkout first on ``sys.path``: both columns of the comparison
then timed the same code. Each script here is run from a copy of the repository outside it
(``--help``: its imports, no work), and the package it then imports must be the copy's.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(path.name for path in (ROOT / "benchmarks").glob("*.py")
                 if "xl_factorlasso" in path.read_text(encoding="utf-8"))

_PROBE = """
import runpy, sys
sys.argv = [sys.argv[1], "--help"]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit:
    pass
import xl_factorlasso
print(xl_factorlasso.__file__)
"""


@pytest.fixture(scope="module")
def copy(tmp_path_factory):
    target = tmp_path_factory.mktemp("checkout")
    shutil.copytree(ROOT / "xl_factorlasso", target / "xl_factorlasso",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "benchmarks", target / "benchmarks",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return target


def test_every_benchmark_that_imports_the_package_is_checked():
    assert {"bench_peers.py", "bench_fit.py", "bench_rolling.py", "bench_udf.py"} <= set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_benchmark_imports_its_own_checkout(copy, script):
    run = subprocess.run(
        [sys.executable, "-c", _PROBE, str(copy / "benchmarks" / script)],
        cwd=copy.parent, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    imported = Path(run.stdout.strip().splitlines()[-1]).resolve()
    assert imported == (copy / "xl_factorlasso" / "__init__.py").resolve(), imported
