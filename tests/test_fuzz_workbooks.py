"""A fixed-seed sample of the random sweep of damaged workbooks (``tests/fuzz_workbooks.py``).

Each case draws 1-3 damages and runs ``refit``, ``refit --cv --portfolio``, ``inspect`` and on
some cases the backtest; every run must be a success that changed no input and wrote no
``nan``/repr, or a refusal (exit 2) that names the input, left the file byte-identical and
nothing beside it; a damage the jobs must refuse is never accepted; ``inspect`` reports what
``refit`` refused. ``python -m tests.fuzz_workbooks --seed S --count K`` runs more.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fuzz_workbooks import _finding, bases, draw_case, run_case

SEED = 2026
CASES = 24


@pytest.fixture(scope="module")
def base_paths(tmp_path_factory):
    return bases(tmp_path_factory.mktemp("fuzz-bases"))


@pytest.mark.parametrize("index", range(CASES))
def test_damaged_workbook_keeps_the_promise(index, base_paths, tmp_path):
    from xl_factorlasso.workbook._contract import OUTPUTS

    case = draw_case(SEED, index, base_paths)
    results = run_case(case, base_paths, Path(tmp_path), backtest=index % 6 == 0,
                       validate=index % 8 == 0, outputs=set(OUTPUTS))
    bad = [_finding(r) for r in results if r.kind not in ("ok", "refused")]
    assert not bad, "\n".join(bad)
