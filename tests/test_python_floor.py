"""The package runs on the oldest Python that ``requires-python`` admits.

Only one Python runs here and in CI, so the modules are checked statically: vermin reads every
module of the package and names the oldest Python 3 that has each feature and standard-library
name it uses. (requires-python once said 3.10 while a module imported ``typing.Self``, 3.11's,
and the xlwings floor needed 3.11.)
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _admitted() -> tuple[int, int]:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    found = re.search(r'^requires-python\s*=\s*">=\s*(\d+)\.(\d+)"', text, re.MULTILINE)
    assert found, "pyproject.toml: requires-python is not of the form '>=3.X'"
    return int(found.group(1)), int(found.group(2))


def _needs(source: str) -> tuple[int, int] | None:
    import vermin

    config = vermin.Config()
    return vermin.detect(source, config)[1]


def test_every_module_runs_on_the_admitted_python():
    pytest.importorskip("vermin")
    floor = _admitted()
    over = {}
    for path in sorted((ROOT / "xl_factorlasso").rglob("*.py")):
        needed = _needs(path.read_text(encoding="utf-8"))
        if needed is not None and needed > floor:
            over[str(path.relative_to(ROOT))] = needed
    assert not over, f"modules that need a Python newer than {floor}: {over}"


def test_the_check_sees_a_newer_name():
    pytest.importorskip("vermin")
    assert _needs("from typing import override\n") == (3, 12)
    assert _needs("from itertools import batched\n") == (3, 12)
    assert _needs("from typing import Self\n") == (3, 11)
    assert _needs("from typing import Any\n") <= (3, 10)
