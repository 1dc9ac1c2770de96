"""The wheel users install, end to end: built by ``make dist`` from a copy of this checkout,
checked for what it must carry, installed into a fresh virtual environment (pip resolves the
dependencies from the configured index), and the installed ``xl-factorlasso`` writes both
templates and refits one.

Needs ``make``, the package index (or pip's cache) and about a minute; each step's time is
printed (``pytest -s``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

import xl_factorlasso
from xl_factorlasso.server import PROJECT_DIR
from xl_factorlasso.workbook import XlsxFileIO

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
WHEEL = f"xl_factorlasso-{xl_factorlasso.__version__}-py3-none-any.whl"
# what a build must not see: environments, earlier builds, caches
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__",
                                    ".pytest_cache", ".hypothesis", ".ruff_cache", "*.pyc")

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def _run(cmd: list[str], *, cwd: Path, timeout: float, env: dict | None = None) -> str:
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    took = time.perf_counter() - started
    print(f"{took:6.1f} s  {' '.join(map(str, cmd[:4]))}")
    assert proc.returncode == 0, f"{cmd} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def guide_files() -> list[str]:
    """The user guide as setup.py ships it, relative to docs/."""
    return sorted(p.relative_to(DOCS).as_posix()
                  for pattern in ("*.md", "img/*.png") for p in DOCS.glob(pattern))


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, str]:
    """``make dist`` in a clean copy of the checkout: (the wheel, the build's output)."""
    src = tmp_path_factory.mktemp("checkout") / "xl-factorlasso"
    shutil.copytree(ROOT, src, ignore=NOT_SOURCE)
    env = {**os.environ, "PIP_VERBOSE": "1"}  # -v: the build backend's warnings are shown
    output = _run(["make", "-C", str(src), "dist", f"PYTHON={sys.executable}"], cwd=src,
                  timeout=600, env=env)
    wheels = sorted(p.name for p in (src / "dist").glob("*.whl"))
    assert wheels == [WHEEL]
    return src / "dist" / WHEEL, output


def test_the_build_has_no_deprecation_warning(built):
    _wheel, output = built
    assert "Building wheel for xl-factorlasso" in output  # the backend's output is here
    assert not re.search(r"deprecat", output, re.I), output


def test_the_wheel_carries_templates_guide_and_server_files(built):
    wheel, _ = built
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        read = zf.read
        for name in ("factorlasso_template.xlsx", "factorlasso_template.xlsm"):
            shipped = ROOT / "xl_factorlasso" / "templates" / name
            assert read(f"xl_factorlasso/templates/{name}") == shipped.read_bytes(), name
        guide = guide_files()
        assert {"index.md", "install.md", "cli.md", "functions.md", "img/start.png"} <= set(guide)
        for rel in guide:
            assert read(f"xl_factorlasso/docs/{rel}") == (DOCS / rel).read_bytes(), rel
        server = [p for p in PROJECT_DIR.rglob("*")
                  if p.is_file() and p.suffix not in (".py", ".pyc") and p.name != ".gitignore"
                  and "__pycache__" not in p.parts and "certs" not in p.parts
                  and p.name != ".env"]
        assert len(server) >= 6
        for p in server:
            rel = p.relative_to(ROOT).as_posix()
            assert read(rel) == p.read_bytes(), rel
        dist_info = f"xl_factorlasso-{xl_factorlasso.__version__}.dist-info"
        assert {n.split("/")[0] for n in names} == {"xl_factorlasso", dist_info}
        assert read(f"{dist_info}/licenses/LICENSE") == (ROOT / "LICENSE").read_bytes()
        metadata = read(f"{dist_info}/METADATA").decode()
    assert "\nLicense-Expression: MIT\n" in metadata and "\nLicense: " not in metadata
    assert f"\nVersion: {xl_factorlasso.__version__}\n" in metadata


def test_installed_wheel_writes_both_templates_and_refits(built, tmp_path):
    wheel, _ = built
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path, timeout=120)
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = bin_dir / "python"
    # the installed copy only: nothing of this checkout on the path
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["MPLBACKEND"] = "Agg"
    _run([str(python), "-m", "pip", "install", "--quiet", str(wheel)], cwd=tmp_path,
         timeout=900, env=env)
    work = tmp_path / "work"
    work.mkdir()
    where = _run([str(python), "-c", "import xl_factorlasso; print(xl_factorlasso.__file__)"],
                 cwd=work, timeout=60, env=env).strip()
    assert Path(where).resolve().is_relative_to(venv.resolve()), where

    command = str(bin_dir / "xl-factorlasso")
    out = _run([command, "template", "--macro", "X.xlsm"], cwd=work, timeout=120, env=env)
    assert out.startswith(f"wrote {work / 'X.xlsm'}: the template with the Factor LASSO ribbon")
    out = _run([command, "template", "Y.xlsx"], cwd=work, timeout=120, env=env)
    assert out.startswith(f"wrote {work / 'Y.xlsx'}: the template without macros")
    shipped = ROOT / "xl_factorlasso" / "templates"
    assert (work / "X.xlsm").read_bytes() == (shipped / "factorlasso_template.xlsm").read_bytes()
    assert (work / "Y.xlsx").read_bytes() == (shipped / "factorlasso_template.xlsx").read_bytes()

    out = _run([command, "refit", "Y.xlsx"], cwd=work, timeout=300, env=env)
    assert re.search(r"^refit: HIERARCHICAL_CLUSTER_GROUP_LASSO, lambda=1e-05, ", out, re.M), out
    assert f"-> {work / 'Y.xlsx'}" in out
    io = XlsxFileIO(work / "Y.xlsx")
    names = io.names()
    coef = io.read(names["FL_COEF"])
    assert len(coef) == 25 and len(coef[0]) == 7  # 24 assets x 6 factors with their labels
    assert sum(isinstance(v, float) and v != 0.0 for row in coef[1:] for v in row[1:]) > 24
    status = [str(v) for row in io.read(names["FL_STATUS"]) for v in row if v is not None]
    assert any("HIERARCHICAL_CLUSTER_GROUP_LASSO" in v for v in status), status

    # --help names the guide and the templates inside the installed package
    help_text = _run([command, "--help"], cwd=work, timeout=60, env=env)
    guide = Path(re.search(r"^User guide \(Markdown\): (.+)$", help_text, re.M).group(1))
    assert guide.is_file() and guide.resolve().is_relative_to(venv.resolve())
    assert guide.read_bytes() == (DOCS / "index.md").read_bytes()
    help_text = _run([command, "template", "--help"], cwd=work, timeout=60, env=env)
    for name in ("factorlasso_template.xlsx", "factorlasso_template.xlsm"):
        listed = Path(re.search(rf"^  (.+{re.escape(name)})$", help_text, re.M).group(1))
        assert listed.is_file() and listed.resolve().is_relative_to(venv.resolve())
