"""Where jobs may write, and that they write once: overlaps, room, name reasons, blockers,
combined runs, optional pictures, and ``inspect`` finding every problem a job refuses."""

from __future__ import annotations

import numpy as np
import pytest

from tests.workbook_helpers import demo_memory_book
from xl_factorlasso.workbook import (
    Area,
    WorkbookInputError,
    clear_outputs,
    optimise_portfolio,
    refit,
    refit_cv,
    run_jobs,
)
from xl_factorlasso.workbook._inspect import inspect_workbook
from xl_factorlasso.workbook._layout import layout_problems
from xl_factorlasso.workbook._plots import coefficient_heatmap, short_label


def _with_portfolio(io, prev=None):
    """Portfolio inputs and outputs on a 'Portfolio' sheet of a demo MemoryIO."""
    assets = [io.cells[("Returns", 1, c)] for c in range(2, 26)]
    io.put("FL_PORTFOLIO_SETTINGS", "Portfolio", 1, 1,
           [["key", "value"], ["covariance", "sample"], ["max_weights", 0.2]])
    io.put("FL_PREV_WEIGHTS", "Portfolio", 1, 4,
           [["asset", "weight"], *(prev or [[a, 1 / len(assets)] for a in assets])])
    io.defined["FL_WEIGHTS"] = Area("Portfolio", 1, 8, 25, 9)
    io.defined["FL_PORTFOLIO_STATS"] = Area("Portfolio", 1, 11, 16, 12)
    return io


def _refuses(job, io, *message_parts):
    before = io.snapshot()
    with pytest.raises(WorkbookInputError) as info:
        job(io)
    for part in message_parts:
        assert part in str(info.value), str(info.value)
    assert io.snapshot() == before and io.log == [] and io.saved == 0
    return str(info.value)


# --------------------------------------------------------------------------- overlaps
def test_an_output_pointing_into_the_inputs_is_refused_naming_both():
    io = demo_memory_book()
    io.defined["FL_COEF"] = Area("Returns", 2, 2, 8, 26)  # 175 input cells
    _refuses(refit, io, "FL_COEF: its area Returns!B2:Z8 overlaps the input FL_RETURNS "
                        "(Returns!A1:Y261) at Returns!B2:Y8")


def test_outputs_overlapping_each_other_are_refused_naming_both():
    io = demo_memory_book()
    io.defined["FL_R2"] = Area("Results", 3, 2, 27, 3)  # inside FL_COEF's A1:G25
    message = _refuses(refit, io, "FL_COEF", "FL_R2", "each would overwrite the other")
    assert "at Results!B3:C25" in message


def test_a_growing_table_may_not_grow_into_another_output():
    io = demo_memory_book()
    io.defined["FL_R2"] = Area("Diagnostics", 1, 1, 5, 2)  # grows to A1:B25
    io.defined["FL_INTERCEPT"] = Area("Diagnostics", 20, 1, 44, 2)  # below it
    _refuses(refit, io, "FL_R2: its new 25 x 2 table needs Diagnostics!A1:B25, which overlaps "
                        "the output FL_INTERCEPT (Diagnostics!A20:B44) at Diagnostics!A20:B25")


def test_clearing_outputs_is_refused_when_one_overlaps_an_input():
    io = demo_memory_book()
    io.defined["FL_STATUS"] = Area("Settings", 1, 1, 12, 2)  # on top of FL_SETTINGS
    _refuses(clear_outputs, io, "FL_STATUS: its area Settings!A1:B12 overlaps the input "
                                "FL_SETTINGS")


def test_layout_problems_ignore_inputs_sharing_a_sheet():
    names = {"FL_SETTINGS": Area("S", 1, 1, 20, 2), "FL_GROUPS": Area("S", 1, 2, 5, 3),
             "FL_COEF": Area("S", 1, 5, 10, 8)}
    assert layout_problems(names) == []


# --------------------------------------------------------------------------- names, blockers
def test_a_broken_name_says_why_instead_of_not_defined():
    io = demo_memory_book()
    del io.defined["FL_FACTORS"]
    io.issues["FL_FACTORS"] = "refers to #REF!: the cells it pointed to were deleted"
    _refuses(refit, io, "FL_FACTORS: the name FL_FACTORS refers to #REF!: the cells it pointed "
                        "to were deleted")


def test_a_broken_optional_input_is_an_error_not_a_fit_without_it():
    io = demo_memory_book()
    del io.defined["FL_SIGNS"]
    io.issues["FL_SIGNS"] = "is local to sheet 'Signs' (a sheet-scoped name)"
    _refuses(refit, io, "FL_SIGNS: the name FL_SIGNS is local to sheet 'Signs'")


def test_a_broken_output_name_is_an_error_not_a_skip():
    io = demo_memory_book()
    del io.defined["FL_R2"]
    io.issues["FL_R2"] = "is a multi-area reference (2 areas)"
    _refuses(refit, io, "FL_R2: the name FL_R2 is a multi-area reference")


def test_a_workbook_that_cannot_be_written_is_refused_before_any_work(monkeypatch):
    io = demo_memory_book()
    io.blocker = "book.xlsx is open in Excel: close it in Excel first"
    import xl_factorlasso.workbook._compute as compute

    def never(*args, **kwargs):  # the fit must not even start
        raise AssertionError("computed although the workbook cannot be written")

    monkeypatch.setattr(compute, "compute_refit", never)
    for job in (refit, refit_cv, optimise_portfolio, clear_outputs):
        _refuses(job, io, "close it in Excel first")


# --------------------------------------------------------------------------- combined runs
def test_refit_and_portfolio_validate_everything_before_writing_anything():
    io = _with_portfolio(demo_memory_book(), prev=[["SPX", "abc"]])
    _refuses(lambda b: run_jobs(b, ["refit", "optimise_portfolio"]), io,
             "FL_PREV_WEIGHTS!E2: 'abc' is not a number")
    io2 = _with_portfolio(demo_memory_book())
    io2.put("FL_CONSTRAINTS", "Portfolio", 1, 7, [["constraint"], ["Bitcoin <= 0.1"]])
    _refuses(lambda b: run_jobs(b, ["refit_cv", "optimise_portfolio"]), io2,
             "FL_CONSTRAINTS!G2")


def test_refit_and_portfolio_write_once_with_one_status():
    io = _with_portfolio(demo_memory_book())
    result = run_jobs(io, ["refit", "optimise_portfolio"])
    assert io.saved == 1
    assert [p.job for p in result.parts] == ["refit", "optimise_portfolio"]
    assert {"FL_COEF", "FL_WEIGHTS", "FL_PORTFOLIO_STATS", "FL_STATUS"} <= set(result.written)
    table = io.read(io.names()["FL_STATUS"])
    assert table[0] == ["item", "refit", "optimise_portfolio"]
    status = {r[0]: r[1:] for r in table[1:]}
    assert status["model"][0] == "HIERARCHICAL_CLUSTER_GROUP_LASSO"
    assert status["assets x dates"] == [None, "24 x 260"]
    assert status["covariance"] == [None, "sample"]
    # the same numbers as the two jobs run one after the other
    io2 = _with_portfolio(demo_memory_book())
    refit(io2)
    optimise_portfolio(io2)
    for name in ("FL_COEF", "FL_R2", "FL_WEIGHTS"):
        a = np.array([r[1:] for r in io.read(io.names()[name])[1:]], dtype=float)
        b = np.array([r[1:] for r in io2.read(io2.names()[name])[1:]], dtype=float)
        np.testing.assert_allclose(a, b, rtol=0, atol=0)


# --------------------------------------------------------------------------- pictures
def test_a_picture_that_cannot_be_drawn_is_a_warning_and_results_are_written(monkeypatch):
    import xl_factorlasso.workbook._plots as plots

    def fail(*args, **kwargs):
        raise MemoryError("no room for this picture")

    monkeypatch.setattr(plots, "coefficient_heatmap", fail)
    io = demo_memory_book()
    result = refit(io)
    assert "FL_COEF" in result.written and ("Results", "FL_DENDROGRAM") in io.pictures
    assert ("Results", "FL_HEATMAP") not in io.pictures
    assert result.warnings == ["picture FL_HEATMAP not drawn (MemoryError: no room for this "
                               "picture)"]
    status = dict(map(tuple, io.read(io.names()["FL_STATUS"])))
    assert "picture FL_HEATMAP not drawn" in status["message"]


def test_a_picture_that_cannot_be_placed_is_a_warning(monkeypatch):
    io = demo_memory_book()

    def broken(*args, **kwargs):
        raise ValueError("sheet 'Results': its <drawing> relationship is broken")

    monkeypatch.setattr(io, "add_picture", broken)
    result = refit(io)
    assert io.saved == 1 and "FL_COEF" in result.written
    assert result.warnings[0].startswith("picture FL_HEATMAP not placed (ValueError")


def test_long_labels_are_shortened_in_pictures_only():
    assert short_label("SPX") == "SPX"
    assert short_label("x" * 32_767) == "x" * 23 + "\u2026"
    assert short_label("two\nlines") == "two lines"
    import pandas as pd

    coef = pd.DataFrame(np.eye(3), index=["A" * 32_767, "B", "C"], columns=["f1", "f2", "F" * 500])
    png = coefficient_heatmap(coef)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) < 200_000


# --------------------------------------------------------------------------- inspect
_REFUSED = [
    ("output into input", lambda io: io.defined.__setitem__("FL_COEF", Area("Returns", 2, 2, 8, 26))),
    ("outputs overlap", lambda io: io.defined.__setitem__("FL_R2", Area("Results", 3, 2, 27, 3))),
    ("no room", lambda io: (io.defined.__setitem__("FL_R2", Area("Diagnostics", 1, 1, 5, 2)),
                            io.cells.__setitem__(("Diagnostics", 12, 2), "keep me"))),
    ("grows into output", lambda io: (io.defined.__setitem__("FL_R2", Area("Diagnostics", 1, 1, 5, 2)),
                                      io.defined.__setitem__("FL_INTERCEPT", Area("Diagnostics", 20, 1, 44, 2)))),
    ("broken name", lambda io: (io.defined.pop("FL_SIGNS"), io.issues.__setitem__("FL_SIGNS", "refers to #REF!: the cells it pointed to were deleted"))),
    ("blocked", lambda io: setattr(io, "blocker", "book.xlsx is read-only")),
    ("text in returns", lambda io: io.cells.__setitem__(("Returns", 5, 3), "abc")),
    ("prior contradicts sign", lambda io: io.cells.__setitem__(("Prior", 2, 2), -0.5)),
    ("bad previous weight", lambda io: io.cells.__setitem__(("Portfolio", 2, 5), "abc")),
    ("unknown constraint name", lambda io: io.put("FL_CONSTRAINTS", "Portfolio", 1, 7,
                                                  [["constraint"], ["Bitcoin <= 0.1"]])),
    ("infeasible constraints", lambda io: io.put("FL_CONSTRAINTS", "Portfolio", 1, 7,
                                                 [["constraint"], ["SPX >= 0.5"], ["SPX <= 0.4"]])),
]


@pytest.mark.parametrize("case, mutate", _REFUSED, ids=[c[0] for c in _REFUSED])
def test_inspect_reports_what_the_jobs_refuse(case, mutate):
    io = _with_portfolio(demo_memory_book())
    mutate(io)
    messages = []
    for job in (lambda b: run_jobs(b, ["refit", "optimise_portfolio"]),):
        with pytest.raises(WorkbookInputError) as info:
            job(io)
        messages.append(str(info.value))
    report = inspect_workbook(io)
    assert io.log == [] and io.saved == 0
    for message in messages:
        assert message in report.problems, (message, report.problems)


def test_inspect_lists_every_problem_not_only_the_first():
    io = _with_portfolio(demo_memory_book())
    io.defined["FL_COEF"] = Area("Returns", 2, 2, 8, 26)
    io.cells[("Signs", 3, 2)] = "x"
    io.cells[("Portfolio", 2, 5)] = "abc"
    io.blocker = "book.xlsx is read-only"
    report = inspect_workbook(io)
    joined = "\n".join(report.problems)
    for part in ("read-only", "FL_COEF: its area Returns!B2:Z8 overlaps", "FL_SIGNS!B3",
                 "FL_PREV_WEIGHTS!E2"):
        assert part in joined, (part, report.problems)


def test_inspect_of_a_sound_workbook_finds_nothing_and_writes_nothing():
    io = _with_portfolio(demo_memory_book())
    report = inspect_workbook(io)
    assert report.problems == [] and io.log == [] and io.saved == 0
    assert any("refit computed" in n for n in report.notes)


def test_a_refit_with_a_32767_character_asset_label_writes_results_and_pictures():
    io = demo_memory_book()
    label = "S" * 32_767  # Excel's longest cell text
    for key, value in list(io.cells.items()):
        if value == "SPX":
            io.cells[key] = label
    result = refit(io)
    assert result.warnings == []
    assert {("Results", "FL_HEATMAP"), ("Results", "FL_DENDROGRAM")} <= set(io.pictures)
    coef = io.read(io.names()["FL_COEF"])
    assert coef[1][0] == label  # the cell keeps the whole label; only the picture shortens it


def test_data_pasted_below_the_returns_is_a_warning_in_the_run_and_a_problem_in_inspect():
    io = demo_memory_book()
    for c in range(1, 26):  # one more week under FL_RETURNS (A1:Y261)
        io.cells[("Returns", 262, c)] = 0.01 if c > 1 else "2030-01-04"
    report = inspect_workbook(io)
    expected = "FL_RETURNS: 1 row below FL_RETURNS (Returns!A262:Y262)"
    assert any(p.startswith(expected) for p in report.problems), report.problems
    result = refit(io)
    assert io.saved == 1 and any(w.startswith(expected) for w in result.warnings)
    status = dict(map(tuple, io.read(io.names()["FL_STATUS"])))
    assert expected in status["message"]
