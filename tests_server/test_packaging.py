"""The extra stays optional, and the project directory ships in the wheel."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from xl_factorlasso.server import PROJECT_DIR

ROOT = Path(__file__).resolve().parents[1]


def test_nothing_outside_the_server_folder_imports_xlwings_server():
    pattern = re.compile(r"^\s*(import|from)\s+xlwings_server\b", re.M)
    offenders = []
    for folder in ("xl_factorlasso", "tests", "benchmarks", "examples", "workbook_template"):
        for path in (ROOT / folder).rglob("*.py"):
            if PROJECT_DIR in path.parents:
                continue
            if pattern.search(path.read_text(encoding="utf-8")):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_core_cli_and_server_module_import_without_xlwings():
    """``import xl_factorlasso.server`` (what ``serve`` does first) imports neither package."""
    code = ("import sys, xl_factorlasso, xl_factorlasso.cli, xl_factorlasso.server; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('xlwings', 'xlwings_server', 'fastapi', 'uvicorn')))")
    env = {k: v for k, v in os.environ.items() if not k.startswith("XLWINGS_")}
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_package_data_covers_every_project_file():
    """Every non-Python file of the project directory is matched by the wheel's package-data."""
    import tomllib  # Python 3.11+, as xlwings-server itself

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extra = pyproject["project"]["optional-dependencies"].get("server", [])
    patterns = pyproject["tool"].get("setuptools", {}).get("package-data", {}).get(
        "xl_factorlasso.server")
    if not extra or patterns is None:
        pytest.fail("pyproject.toml needs [project.optional-dependencies] server = "
                    '["xlwings-server>=1.20"] and [tool.setuptools.package-data] '
                    '"xl_factorlasso.server" = [...] (see docs/server.md)')
    assert any(req.replace(" ", "").startswith("xlwings-server>=1.20") for req in extra)
    shipped = {p for pattern in patterns for p in PROJECT_DIR.glob(pattern) if p.is_file()}
    needed = {p for p in PROJECT_DIR.rglob("*")
              if p.is_file() and p.suffix not in (".py", ".pyc") and p.name != ".gitignore"
              and "__pycache__" not in p.parts and "certs" not in p.parts and p.name != ".env"}
    assert needed - shipped == set()
    for name in (".env.template", "pyproject.toml", "templates/manifest.xml",
                 "templates/taskpane.html", "static/js/ribbon.js", "static/js/auth.js"):
        assert PROJECT_DIR / name in needed, name
