"""Every malformed workbook of the corpus (``tests/bad_workbooks.py``) is a clear error.

Through the real command line: exit status 2, a message naming the input (and the cell when
one cell is at fault), the workbook byte-identical, no file left beside it, and ``inspect``
reporting the same problem.
"""

from __future__ import annotations

import os

import pytest

from tests.bad_workbooks import CASES, run_case


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from xl_factorlasso.cli import build_demo_workbook

    path = tmp_path_factory.mktemp("corpus") / "demo.xlsx"
    build_demo_workbook(str(path))
    return path


def test_the_corpus_is_large_and_its_cases_distinct():
    assert len(CASES) >= 80
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_malformed_workbook_is_a_clear_error(case, demo, tmp_path):
    if case.id == "read-only file" and os.name == "nt":  # pragma: no cover
        pytest.skip("chmod 0o444 is the read-only attribute on Windows: same check, other call")
    outcome = run_case(case, demo, tmp_path)
    assert outcome.kind == "clear error", (outcome.kind, outcome.message, outcome.details)
    assert outcome.status == 2
    assert "Traceback" not in outcome.message
    if case.inspect:
        assert outcome.inspect_found, f"inspect does not report: {case.expect}"
