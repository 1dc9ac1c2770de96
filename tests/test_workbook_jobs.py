"""Workbook jobs on an in-memory workbook: outputs equal the core, nothing else is touched."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.workbook_helpers import demo_memory_book
from xl_factorlasso import LassoModel, LassoModelCV, assemble_factor_covariance
from xl_factorlasso.core.datasets import load_demo_panel
from xl_factorlasso.workbook import (
    Area,
    WorkbookInputError,
    clear_outputs,
    optimise_portfolio,
    refit,
    refit_cv,
)


def read_table(io, name) -> list[list]:
    return io.read(io.names()[name])


def test_refit_writes_labelled_outputs_equal_to_the_core():
    io = demo_memory_book()
    result = refit(io)
    d = load_demo_panel()
    ref = LassoModel(
        model_type="HCGL",
        reg_lambda=1e-5,
        span=52,
        n_clusters=4,
        factors_beta_loading_signs=d.signs,
        factors_beta_prior=d.prior,
    ).fit(d.x, d.y)
    coef = read_table(io, "FL_COEF")
    assert coef[0] == ["asset (HCGL, lambda 1e-05)", *d.x.columns]
    assert [r[0] for r in coef[1:]] == list(d.y.columns)
    np.testing.assert_allclose(
        np.array([r[1:] for r in coef[1:]], dtype=float), ref.coef_, atol=1e-9
    )
    r2 = read_table(io, "FL_R2")
    assert r2[0] == ["asset", "r2"]
    np.testing.assert_allclose([r[1] for r in r2[1:]], ref.r2_, atol=1e-9)
    np.testing.assert_allclose(
        [r[1] for r in read_table(io, "FL_INTERCEPT")[1:]], ref.alpha_const_, atol=1e-9
    )
    assert [r[1] for r in read_table(io, "FL_CLUSTERS")[1:]] == list(ref.clusters_)
    vol = assemble_factor_covariance(ref, d.x).volatility
    np.testing.assert_allclose(
        np.array([r[1:] for r in read_table(io, "FL_RESID_VOL")[1:]], dtype=float),
        vol.to_numpy(),
        atol=1e-9,
    )
    table = read_table(io, "FL_STATUS")
    assert table[0] == ["item", "refit"]
    status = dict(map(tuple, table))
    assert status["model"] == "HIERARCHICAL_CLUSTER_GROUP_LASSO"
    assert status["reg_lambda"] == 1e-5 and status["solver"] == "fast optimal"
    assert set(result.written) >= {"FL_COEF", "FL_R2", "FL_STATUS"}
    assert "FL_CV" not in result.written  # refit without CV leaves FL_CV alone
    assert {("Results", "FL_HEATMAP"), ("Results", "FL_DENDROGRAM")} <= set(io.pictures)
    assert io.saved == 1


def test_refit_never_touches_cells_outside_output_names():
    io = demo_memory_book()
    io.cells[("Results", 30, 1)] = "my note"  # below FL_COEF
    io.cells[("Diagnostics", 5, 3)] = 42.0  # the column between FL_R2 and FL_INTERCEPT
    before = dict(io.cells)
    output_names = (
        "FL_COEF",
        "FL_R2",
        "FL_INTERCEPT",
        "FL_CLUSTERS",
        "FL_RESID_VOL",
        "FL_STATUS",
        "FL_CV",
    )
    areas_before = [a for n, a in io.names().items() if n in output_names]
    refit(io)
    # an output's cells are those of its name before (cleared) or after (written) the refit
    outputs = areas_before + [a for n, a in io.names().items() if n in output_names]
    for key, value in before.items():
        sheet, r, c = key
        if not any(a.sheet == sheet and a.contains(r, c) for a in outputs):
            assert io.cells.get(key) == value, key
    for op in io.log:
        if op[0] in ("write", "clear"):
            assert any(
                op[1] == a
                or (
                    op[1].sheet == a.sheet
                    and a.contains(op[1].min_row, op[1].min_col)
                    and a.contains(op[1].max_row, op[1].max_col)
                )
                for a in outputs
            ), op


def test_refit_cv_writes_the_cv_table():
    io = demo_memory_book(
        settings={
            "model_type": "LASSO",
            "span": 52,
            "cv_lambdas": "auto",
            "cv_n_lambdas": 6,
            "cv_splits": 3,
        }
    )
    refit_cv(io)
    d = load_demo_panel()
    cv = LassoModelCV(
        lambdas="auto",
        n_lambdas=6,
        n_splits=3,
        base_model=LassoModel(
            span=52, factors_beta_loading_signs=d.signs, factors_beta_prior=d.prior
        ),
    ).fit(d.x, d.y)
    table = read_table(io, "FL_CV")
    assert table[0] == ["reg_lambda", "fold_0", "fold_1", "fold_2", "mean", "best"]
    np.testing.assert_allclose([r[0] for r in table[1:7]], cv.lambdas_)
    np.testing.assert_allclose(
        np.array([r[1:4] for r in table[1:7]], dtype=float), cv.cv_scores_.to_numpy(), atol=1e-6
    )
    best = [r[0] for r in table[1:7] if r[5] == "best"]
    assert best == [pytest.approx(cv.best_lambda_)]
    status = dict(map(tuple, read_table(io, "FL_STATUS")))
    assert status["reg_lambda"] == pytest.approx(cv.best_lambda_)


def test_table_growth_needs_empty_cells_and_repoints_the_name():
    io = demo_memory_book()
    io.defined["FL_R2"] = Area("Diagnostics", 1, 1, 5, 2)  # too small: 25 rows needed
    refit(io)
    assert io.names()["FL_R2"] == Area("Diagnostics", 1, 1, 25, 2)
    # now block the growth with a user value below the (smaller) area: nothing may be written
    io2 = demo_memory_book()
    io2.defined["FL_R2"] = Area("Diagnostics", 1, 1, 5, 2)
    io2.cells[("Diagnostics", 12, 2)] = "keep me"
    before = io2.snapshot()
    with pytest.raises(WorkbookInputError, match=r"Diagnostics!B12 next to it holds the value .keep me."):
        refit(io2)
    assert io2.snapshot() == before and io2.log == [] and io2.saved == 0


def test_missing_output_names_are_skipped_and_reported():
    io = demo_memory_book()
    del io.defined["FL_RESID_VOL"]
    result = refit(io)
    assert "FL_RESID_VOL" in result.skipped and "FL_COEF" in result.written


def test_clear_outputs_clears_contents_and_pictures():
    io = demo_memory_book()
    refit(io)
    clear_outputs(io)
    for name in ("FL_COEF", "FL_R2", "FL_STATUS"):
        assert all(v is None for row in read_table(io, name) for v in row)
    assert not io.pictures
    assert io.cells[("Returns", 2, 2)] is not None  # inputs untouched


@pytest.mark.parametrize(
    "mutate, message",
    [
        (
            lambda io: io.cells.__setitem__(("Returns", 5, 3), "abc"),
            "FL_RETURNS!C5: 'abc' is not a number",
        ),
        (
            lambda io: io.cells.__setitem__(("Returns", 7, 2), "#N/A"),
            "FL_RETURNS!B7: #N/A is an Excel error value",
        ),
        (
            lambda io: io.cells.__setitem__(("Returns", 1, 4), "SPX"),
            "FL_RETURNS!D1: duplicate asset name 'SPX' (also at B1)",
        ),
        (lambda io: io.cells.pop(("Returns", 1, 3)), "FL_RETURNS!C1: the asset name is blank"),
        (
            lambda io: io.cells.__setitem__(
                ("Factors", 10, 1), pd.Timestamp("2030-01-04").to_pydatetime()
            ),
            "dates must increase",
        ),
        (
            lambda io: io.cells.__setitem__(("Signs", 3, 2), "x"),
            "FL_SIGNS!B3: 'x' is not one of blank, 0, 1, -1, +, -",
        ),
        (
            lambda io: io.cells.__setitem__(("Prior", 2, 1), "MSFT"),
            "FL_PRIOR!A2: asset 'MSFT' is not in FL_RETURNS",
        ),
        (
            lambda io: io.cells.__setitem__(("Signs", 1, 3), "Momentum"),
            "FL_SIGNS!C1: factor 'Momentum' is not in FL_FACTORS",
        ),
        (
            lambda io: io.cells.__setitem__(("Settings", 6, 1), "alpha"),
            "FL_SETTINGS!A6: unknown setting 'alpha'",
        ),
        (lambda io: io.cells.__setitem__(("Settings", 3, 2), "lots"), "FL_SETTINGS!B3: reg_lambda"),
        (
            lambda io: io.cells.__setitem__(("Settings", 2, 2), "ridge"),
            "FL_SETTINGS!B2: model_type",
        ),
        (lambda io: io.defined.pop("FL_FACTORS"), "the workbook has no name FL_FACTORS"),
    ],
)
def test_bad_input_names_the_cell_and_writes_nothing(mutate, message):
    io = demo_memory_book()
    mutate(io)
    before = io.snapshot()
    with pytest.raises(WorkbookInputError) as info:
        refit(io)
    assert message in str(info.value)
    assert io.snapshot() == before and io.log == [] and io.saved == 0


def test_a_constant_return_column_is_named_on_fl_returns():
    """The optimiser refuses it (its volatility is 0): the job names FL_RETURNS, where it
    named FL_PORTFOLIO_SETTINGS for every optimiser ValueError, and writes nothing."""
    io = demo_memory_book()
    io.put("FL_PORTFOLIO_SETTINGS", "Portfolio", 1, 1,
           [["key", "value"], ["covariance", "sample"]], reserve=(10, 2))
    io.defined["FL_WEIGHTS"] = io.defined["FL_R2"].__class__("Portfolio", 1, 8, 25, 9)
    io.defined["FL_PORTFOLIO_STATS"] = io.defined["FL_R2"].__class__("Portfolio", 1, 11, 20, 12)
    asset = io.cells[("Returns", 1, 3)]
    for row in range(2, 2 + len(load_demo_panel().y)):  # (row 1: the asset names)
        io.cells[("Returns", row, 3)] = 0.001
    before = io.snapshot()
    with pytest.raises(WorkbookInputError) as info:
        optimise_portfolio(io)
    assert str(info.value).startswith("FL_RETURNS: the range has the same return (0.001) on "), \
        str(info.value)
    assert f"for asset {asset!r}: its volatility is 0" in str(info.value)
    assert io.snapshot() == before and io.log == [] and io.saved == 0


def test_prior_contradicting_a_sign_names_both_cells():
    io = demo_memory_book()
    # SPX (row 2) / Equity (column B) has sign +1 in the demo; a negative prior contradicts it
    io.cells[("Prior", 2, 2)] = -0.5
    with pytest.raises(WorkbookInputError) as info:
        refit(io)
    assert "FL_PRIOR!B2" in str(info.value) and "FL_SIGNS!B2" in str(info.value)


def test_a_note_repeated_by_the_folds_is_said_once():
    """A factor that is twice another warns in every fit of a cross-validation (each fold, the
    refit): FL_STATUS's message says it once."""
    from tests.workbook_helpers import frame_rows

    io = demo_memory_book(settings={"model_type": "LASSO", "cv_lambdas": "auto",
                                    "cv_n_lambdas": 4, "cv_splits": 3},
                          signs=False, prior=False)
    x = load_demo_panel().x.copy()
    x["double"] = 2.0 * x[x.columns[0]]
    io.put("FL_FACTORS", "Factors", 1, 1, frame_rows(x, "date"))
    refit_cv(io)
    message = dict(map(tuple, read_table(io, "FL_STATUS")))["message"]
    assert message.count(f"x: factors {x.columns[0]!r} and 'double' are proportional") == 1
