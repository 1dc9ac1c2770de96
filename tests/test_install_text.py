"""Every install instruction the project gives works from what the repository provides.

xl-factorlasso is not on PyPI, so no text a user reads may say ``pip install xl-factorlasso``
(with or without extras): it would fail, or fetch a stranger's package of that name. What it
may say instead: the wheel of ``make dist``, ``pip install .`` in a checkout.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BY_NAME = re.compile(r"pip3? install\s+(?:-\S+\s+)*[\"']?xl[-_]factorlasso(?![-\w.])", re.I)
WHEEL = "xl_factorlasso-<version>-py3-none-any.whl"

# what users read: the guide, the README, the VBA messages, the server's pages and messages
TEXTS = sorted(
    [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "workbook_template").rglob("*.md"),
     *(ROOT / "workbook_template" / "src").glob("*.bas"),
     *(ROOT / "xl_factorlasso").rglob("*.py"), *(ROOT / "xl_factorlasso").rglob("*.html"),
     *(ROOT / "xl_factorlasso").rglob("*.js"), *(ROOT / "xl_factorlasso").rglob("*.template")],
)


def test_the_pattern_catches_what_it_must():
    for bad in ("pip install xl-factorlasso", 'pip install "xl-factorlasso[server]"',
                "pip install -U xl_factorlasso", "pip3 install xl-factorlasso==0.1.0"):
        assert BY_NAME.search(bad), bad
    for good in (f"pip install {WHEEL}", f'pip install "path/to/{WHEEL}[server]"',
                 'pip install ".[server]"', "pip install .", "pip install xlwings"):
        assert not BY_NAME.search(good), good


def test_no_instruction_installs_the_package_by_name():
    assert len(TEXTS) > 50
    found = [f"{path.relative_to(ROOT)}: {m.group(0)}" for path in TEXTS
             for m in BY_NAME.finditer(path.read_text(encoding="utf-8", errors="replace"))]
    assert not found, "\n".join(found)


def test_the_install_page_gives_the_three_ways_that_work():
    text = (ROOT / "docs" / "install.md").read_text(encoding="utf-8")
    assert "make dist" in text and f"pip install path/to/{WHEEL}" in text
    assert "\npip install .\n" in text and "not published on PyPI" in text
    server = (ROOT / "docs" / "server.md").read_text(encoding="utf-8")
    assert f'pip install "path/to/{WHEEL}[server]"' in server
