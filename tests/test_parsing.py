"""Reading cells: a number or a date is never guessed, every refusal names the cell.

Property tests of the number reader (plain-number text round-trips exactly, text with a comma,
percent, currency or a letter is refused with its cell, numeric cells pass through, nothing but
WorkbookInputError ever escapes), then the exact messages for each kind of bad cell, in memory
and in real .xlsx files (formulas saved without a value by openpyxl, date-formatted returns).
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import shutil

import numpy as np
import openpyxl
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.workbook_helpers import demo_memory_book, frame_rows
from xl_factorlasso.cli import build_demo_workbook
from xl_factorlasso.core.datasets import load_demo_panel
from xl_factorlasso.workbook import WorkbookInputError, XlsxFileIO, refit
from xl_factorlasso.workbook._inputs import tag_cell, text_cell
from xl_factorlasso.workbook._settings import read_fit_settings
from xl_factorlasso.workbook._tables import (
    Block,
    cell_date,
    panel_fast,
    parse_keyvalue,
    parse_list,
    parse_number,
    parse_panel,
    parse_sign,
)
from xl_factorlasso.workbook._xlsx_values import BadValue, ExcelError, FormulaNoValue

PROPS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
AT = "FL_RETURNS!C5: "


def one_cell(value) -> Block:
    """A block of one cell at C5 of FL_RETURNS."""
    return Block.of("FL_RETURNS", [[value]], 5, 3)


def read(value):
    return parse_number(one_cell(value), 0, 0, date_what="a return")


def refused(value) -> str:
    with pytest.raises(WorkbookInputError) as info:
        read(value)
    return str(info.value)


# --------------------------------------------------------------------------- properties
digits = st.text("0123456789", min_size=1, max_size=25)


@st.composite
def plain_numbers(draw) -> str:
    """``[+-]digits[.digits][e[+-]dd]`` (also ``.5`` and ``5.``), with surrounding spaces."""
    sign = draw(st.sampled_from(["", "+", "-"]))
    whole = draw(st.one_of(digits, st.just("")))
    frac = draw(st.one_of(st.none(), st.text("0123456789", max_size=25)))
    if not whole and not frac:
        whole = "0"
    body = whole + ("" if frac is None else "." + frac)
    exp = draw(st.one_of(st.none(), st.integers(-330, 330)))
    if exp is not None:
        body += draw(st.sampled_from(["e", "E"])) + draw(st.sampled_from(["", "+"])) * (
            exp >= 0) + str(exp)
    pad = st.text(" \t\u00a0", max_size=2)
    return draw(pad) + sign + body + draw(pad)


@PROPS
@given(plain_numbers())
def test_plain_number_text_round_trips_exactly(text):
    expected = float(decimal.Decimal(text.strip()))  # correctly rounded, independently
    if not np.isfinite(expected):
        assert refused(text) == f"{AT}{text!r} is not a finite number (too large)"
    else:
        got = read(text)
        assert got == expected and np.copysign(1, got) == np.copysign(1, expected)


FORBIDDEN = list(",%$€£¥₹") + [c for c in "abcdfghijklmnopqrstuvwxyzABCDFGHIJKLMNOPQRSTUVWXYZ"]


@PROPS
@given(st.text(max_size=12), st.sampled_from(FORBIDDEN), st.integers(0, 12))
def test_text_with_a_comma_percent_currency_or_letter_is_refused_with_the_cell(text, bad, at):
    text = text[:at] + bad + text[at:]
    assert refused(text).startswith(AT)


@PROPS
@given(st.one_of(st.floats(allow_nan=False, allow_infinity=False),
                 st.integers(-(2**63), 2**63), st.floats(width=32, allow_nan=False,
                                                          allow_infinity=False).map(np.float32)))
def test_numeric_cells_pass_through(value):
    assert read(value) == float(value)


anything = st.one_of(
    st.text(),
    st.floats(),
    st.integers(-(10**400), 10**400),
    st.booleans(),
    st.none(),
    st.datetimes(),
    st.dates(),
    st.times(),
    st.timedeltas(),
    st.decimals(),
    st.complex_numbers(),
    st.builds(FormulaNoValue, st.text()),
    st.builds(BadValue, st.text(), st.text()),
    st.sampled_from(["#N/A", "#DIV/0!", " #value! "]).map(ExcelError),
    st.lists(st.integers(), max_size=2),
)


@PROPS
@given(anything)
def test_no_cell_raises_anything_but_a_workbook_input_error(value):
    block = one_cell(value)
    for reader in (lambda: read(value), lambda: parse_sign(block, 0, 0),
                   lambda: tag_cell(block, 0, 0), lambda: text_cell(block, 0, 0)):
        try:
            reader()
        except WorkbookInputError as err:
            assert str(err).startswith(AT)
    try:
        cell_date(value)
    except ValueError as err:
        assert str(err)
    panel = Block.of("FL_RETURNS", [["date", "SPX"], [value, 0.01], [value, value]], 1, 1)
    try:
        parse_panel(panel)
    except WorkbookInputError as err:
        assert str(err).startswith("FL_RETURNS")


# --------------------------------------------------------------------------- numbers
COMMAS = ("commas are read neither as decimal commas nor as thousands separators; type it with "
          "a decimal point and no separators (e.g. 0.5, 1000)")


@pytest.mark.parametrize("text, message", [
    ("0,5", f"'0,5' is not a number: {COMMAS}"),
    ("1,5", f"'1,5' is not a number: {COMMAS}"),
    ("1.234,5", f"'1.234,5' is not a number: {COMMAS}"),
    ("1,000", f"'1,000' is not a number: {COMMAS}"),
    ("5%", "'5%' is not a number: a percent sign is not read; type a decimal (0.05 for 5 %)"),
    ("$3", "'$3' is not a number: currency signs are not read; type the number alone"),
    ("€3", "'€3' is not a number: currency signs are not read; type the number alone"),
    ("1 000", "'1 000' is not a number: separators inside a number are not read; type it "
              "without them"),
    ("nan", "'nan' is not a number; leave the cell blank for a missing value"),
    ("inf", "'inf' is not a finite number"),
    ("-Infinity", "'-Infinity' is not a finite number"),
    ("0x1F", "'0x1F' is not a number"),
    ("1_000", "'1_000' is not a number"),
    ("\u22120.5", "'\u22120.5' is not a number: type the minus sign as '-'"),
    ("١٢", "'١٢' is not a number"),  # Arabic-Indic digits, which float() would read
    ("1e999", "'1e999' is not a finite number (too large)"),
])
def test_text_that_is_not_a_plain_number_is_refused(text, message):
    assert refused(text) == AT + message


@pytest.mark.parametrize("text, value", [
    ("0.5", 0.5), (" -1.5e-3 ", -0.0015), ("+2", 2.0), (".5", 0.5), ("5.", 5.0), ("1E2", 100.0),
    ("\u00a00.25\t", 0.25),
])
def test_plain_number_text_is_read(text, value):
    assert read(text) == value


FORMULA = ("has no calculated value (the file was saved by a program that does not calculate, "
           "e.g. openpyxl); open and save it in Excel, or type the value")


@pytest.mark.parametrize("value, message", [
    (FormulaNoValue("B2*2"), f"=B2*2 {FORMULA}"),
    (FormulaNoValue(""), f"the formula {FORMULA}"),
    (BadValue("NaN", "the stored number 'NaN' is not finite"),
     "the stored number 'NaN' is not finite (the file holds no valid value for this cell); type "
     "the value again"),
    (ExcelError("#N/A"), "#N/A is an Excel error value; leave the cell blank for a missing value"),
    ("#DIV/0!", "#DIV/0! is an Excel error value; leave the cell blank for a missing value"),
    (dt.datetime(2020, 1, 1), "2020-01-01 is a date, not a return (the cell has a date format; "
                              "give it a number format)"),
    (dt.datetime(1899, 12, 31, 12), "1899-12-31T12:00:00 is a date, not a return (the cell has a "
                                    "date format; give it a number format)"),
    (True, "True is a TRUE/FALSE value, not a number"),
    (float("inf"), "inf is not a finite number"),
    (10**400, "1" + "0" * 56 + "... is not a finite number (too large)"),
], ids=["formula", "shared formula", "bad value", "ExcelError", "error text", "date", "time",
        "boolean", "infinity", "huge int"])
def test_markers_and_odd_cells_in_a_numeric_area(value, message):
    assert refused(value) == AT + message


def test_markers_are_named_wherever_a_cell_is_read():
    f = FormulaNoValue("A1&B1")
    text = f"=A1&B1 {FORMULA}"
    cases = [
        (lambda b: parse_panel(b), [["date", f], [dt.datetime(2020, 1, 3), 0.1]], "B1", text),
        (lambda b: parse_panel(b), [["date", "SPX"], [f, 0.1]], "A2", text),
        (lambda b: parse_sign(b, 0, 0), [[f]], "A1", text),
        (lambda b: tag_cell(b, 0, 0), [[f]], "A1", text),
        (lambda b: text_cell(b, 0, 0), [[f]], "A1", text),
        (lambda b: parse_keyvalue(b), [[f, 1]], "A1", f"the setting name: {text}"),
        (lambda b: read_fit_settings(b), [["span", f]], "B1", f"span: {text}"),
        (lambda b: read_fit_settings(b), [["model_type", ExcelError("#REF!")]], "B1",
         "model_type: #REF! is an Excel error value; leave the cell blank for the default"),
        (lambda b: parse_list(b), [["constraint"], [f]], "A2", text),
        (lambda b: parse_sign(b, 0, 0), [[ExcelError("#N/A")]], "A1",
         "#N/A is an Excel error value; leave the cell blank for a free loading"),
    ]
    for reader, values, cell, message in cases:
        with pytest.raises(WorkbookInputError) as info:
            reader(Block.of("FL_X", values, 1, 1))
        assert str(info.value) == f"FL_X!{cell}: {message}"


# --------------------------------------------------------------------------- dates
TYPE_IT = "type it as a date (or as ISO text such as 2020-01-31)"


@pytest.mark.parametrize("text, message", [
    ("today", f"'today' is not a date; {TYPE_IT}"),
    ("now", f"'now' is not a date; {TYPE_IT}"),
    ("yesterday", f"'yesterday' is not a date; {TYPE_IT}"),
    ("Q1", f"'Q1' is not a date; {TYPE_IT}"),
    ("01/02/2020", "'01/02/2020' is not a date: the day/month order of such text depends on the "
                   f"locale (01/02/2020: 1 February or 2 January?); {TYPE_IT}"),
    ("31.01.2020", "'31.01.2020' is not a date: the day/month order of such text depends on the "
                   f"locale (01/02/2020: 1 February or 2 January?); {TYPE_IT}"),
    ("2020-02-30", f"'2020-02-30' is not a valid date; {TYPE_IT}"),
    ("20200131", f"'20200131' is not a date; {TYPE_IT}"),
])
def test_text_dates_other_than_iso_are_refused_with_the_cell(text, message):
    rows = [["date", "SPX"], [dt.datetime(2020, 1, 3), 0.01], [text, 0.02]]
    with pytest.raises(WorkbookInputError) as info:
        parse_panel(Block.of("FL_RETURNS", rows, 1, 1))
    assert str(info.value) == f"FL_RETURNS!A3: {message}"


def test_today_is_no_longer_the_current_time():
    rows = [["date", "SPX"], ["2020-01-03", 0.01], ["today", 0.02]]
    with pytest.raises(WorkbookInputError, match=r"FL_RETURNS!A3: 'today' is not a date"):
        parse_panel(Block.of("FL_RETURNS", rows, 1, 1))


@pytest.mark.parametrize("value, expected", [
    ("2021-01-01T00:00:00.000Z", pd.Timestamp("2021-01-01")),  # the remote engine's dates
    ("2021-01-01T01:30:00+02:00", pd.Timestamp("2020-12-31 23:30")),  # to UTC
    ("2020-01-31", pd.Timestamp("2020-01-31")),
    (" 2020-1-5 ", pd.Timestamp("2020-01-05")),
    (dt.datetime(2020, 1, 31, tzinfo=dt.timezone(dt.timedelta(hours=5))),
     pd.Timestamp("2020-01-31")),  # an aware datetime: the date the cell shows
    (dt.date(2020, 1, 31), pd.Timestamp("2020-01-31")),
])
def test_real_and_iso_dates_are_read(value, expected):
    assert cell_date(value) == (expected, "date")


def test_numbers_in_the_date_column_are_periods():
    assert cell_date(43831) == (43831.0, "number")
    with pytest.raises(ValueError, match="^inf is not a finite number$"):
        cell_date(float("inf"))
    with pytest.raises(ValueError, match=r"^True is a TRUE/FALSE value, not a date$"):
        cell_date(True)


def test_iso_text_dates_give_the_same_panel_as_real_dates():
    d = load_demo_panel()
    rows = frame_rows(d.y, "date")
    iso = [rows[0]] + [[r[0].strftime("%Y-%m-%dT%H:%M:%S.000Z"), *r[1:]] for r in rows[1:]]
    expected = parse_panel(Block.of("FL_RETURNS", rows, 1, 1))
    got = parse_panel(Block.of("FL_RETURNS", iso, 1, 1))
    pd.testing.assert_frame_equal(got, expected, check_index_type=False)
    assert (got.index == d.y.index).all()


def _blank_row(rows):
    rows.insert(7, [None] * len(rows[0]))


def _missing_return(rows):
    rows[9][3] = None


def _iso_dates(rows):
    for row in rows[1:]:
        row[0] = row[0].strftime("%Y-%m-%d")


@pytest.mark.parametrize("mutate", [None, _blank_row, _missing_return, _iso_dates])
def test_checked_path_equals_the_fast_path(mutate):
    y = load_demo_panel().y
    rows = frame_rows(y, "date")
    if mutate is not None:
        mutate(rows)
    block = Block.of("FL_RETURNS", rows, 1, 1)
    expected = y.copy()
    if mutate is _missing_return:
        expected.iloc[8, 2] = np.nan
    for fast in (True, False):
        got = parse_panel(block, fast=fast)
        np.testing.assert_array_equal(got.to_numpy(), expected.to_numpy())
        assert list(got.columns) == list(y.columns) and (got.index == y.index).all()
    assert (panel_fast(block.trimmed()) is not None) == (mutate in (None, _missing_return))


# --------------------------------------------------------------------------- in a refit
@pytest.mark.parametrize("where, value, message", [
    (("Returns", 5, 3), "0,5", f"FL_RETURNS!C5: '0,5' is not a number: {COMMAS}"),
    (("Returns", 5, 3), FormulaNoValue("B5*2"), f"FL_RETURNS!C5: =B5*2 {FORMULA}"),
    (("Factors", 9, 4), BadValue("INF", "the stored number 'INF' is not finite"),
     "FL_FACTORS!D9: the stored number 'INF' is not finite (the file holds no valid value for "
     "this cell); type the value again"),
    (("Returns", 5, 3), dt.datetime(2020, 1, 1),
     "FL_RETURNS!C5: 2020-01-01 is a date, not a return (the cell has a date format; give it a "
     "number format)"),
    (("Returns", 6, 1), "today", f"FL_RETURNS!A6: 'today' is not a date; {TYPE_IT}"),
    (("Signs", 3, 2), FormulaNoValue("X1"), f"FL_SIGNS!B3: =X1 {FORMULA}"),
    (("Prior", 1, 3), BadValue("", "bad shared-string index"),
     "FL_PRIOR!C1: bad shared-string index (the file holds no valid value for this cell); type "
     "the value again"),
])
def test_refit_refuses_the_cell_and_writes_nothing(where, value, message):
    io = demo_memory_book()
    io.cells[where] = value
    before = io.snapshot()
    with pytest.raises(WorkbookInputError) as info:
        refit(io)
    assert str(info.value) == message
    assert io.snapshot() == before and io.log == [] and io.saved == 0


@pytest.fixture(scope="module")
def demo_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("parse") / "demo.xlsx"
    build_demo_workbook(str(path))
    return path


def _edited(demo_file, tmp_path, edit):
    path = tmp_path / "book.xlsx"
    shutil.copy(demo_file, path)
    wb = openpyxl.load_workbook(path)
    edit(wb)
    wb.save(path)
    return path


def _refit_refuses(path) -> str:
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(WorkbookInputError) as info:
        refit(XlsxFileIO(path))
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    return str(info.value)


def test_file_saved_by_openpyxl_with_a_formula_names_the_formula(demo_file, tmp_path):
    path = _edited(demo_file, tmp_path, lambda wb: wb["Returns"].__setitem__("C5", "=B5*2"))
    assert _refit_refuses(path) == f"FL_RETURNS!C5: =B5*2 {FORMULA}"


def test_file_with_a_date_formatted_return(demo_file, tmp_path):
    def edit(wb):
        cell = wb["Returns"]["D7"]
        cell.value = 0.25
        cell.number_format = "yyyy-mm-dd"

    path = _edited(demo_file, tmp_path, edit)
    assert _refit_refuses(path) == (
        "FL_RETURNS!D7: 1899-12-31T06:00:00 is a date, not a return (the cell has a date "
        "format; give it a number format)")


def test_file_with_a_decimal_comma_in_a_setting(demo_file, tmp_path):
    def edit(wb):
        ws = wb["Settings"]
        row = next(r for r in ws.iter_rows(min_row=2, max_col=2) if r[0].value == "l1_weight")
        row[1].value = "0,1"

    path = _edited(demo_file, tmp_path, edit)
    message = _refit_refuses(path)
    assert message.startswith("FL_SETTINGS!B") and message.endswith(f"l1_weight: '0,1' is not "
                                                                     f"a number: {COMMAS}")


def test_check_labels_finds_a_stranger_on_the_first_row_of_label_rows():
    """parse_series reads the first row as data when it is no header: a stranger there is
    named on its cell (it was named without one), with 'an asset' (not 'a asset')."""
    from xl_factorlasso.workbook._inputs import check_labels
    from xl_factorlasso.workbook._tables import parse_series

    block = Block.of("FL_GROUPS", [[7, "G1"], ["SPX", "G2"]], 3, 2)
    labels = parse_series(block, value=text_cell).index
    with pytest.raises(WorkbookInputError) as info:
        check_labels(block, labels, ["SPX"], axis=0, what="asset", source="FL_RETURNS")
    assert str(info.value) == (
        "FL_GROUPS!B3: asset '7' is not in FL_RETURNS (a number as an asset name: is the first "
        "column of asset names missing?)")


@pytest.mark.parametrize("first, message", [
    (43466.0, "row 2, column 1: 43466 is a number but the rows below hold dates; use one kind "
              "of date"),
    (dt.datetime(2019, 1, 4), "row 3, column 1: 43473 mixes numbers with the dates above"),
])
def test_a_first_date_of_another_kind_is_the_one_named(first, message):
    """Found by fuzzing: a number typed over the first date was reported on the second row
    ('2019-01-11 mixes dates with the numbers above'), a cell that is fine."""
    rows = [["date", "A"], [first, 0.1], [dt.datetime(2019, 1, 11), 0.2],
            [dt.datetime(2019, 1, 18), 0.3]]
    if isinstance(first, dt.datetime):
        rows[2][0] = 43473.0  # only the second row differs: it is the one named
    with pytest.raises(WorkbookInputError) as info:
        parse_panel(Block.of("returns", rows))
    assert str(info.value) == f"returns: {message}"
