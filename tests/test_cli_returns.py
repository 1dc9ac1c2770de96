"""``xl-factorlasso returns``: prices from a CSV file or a workbook range -> returns in a CSV or an
.xlsx file, through :func:`xl_factorlasso.cli.main` (and once through the console entry point).

The numbers are compared with pandas computed on the same prices (exactly: a CSV keeps every
float's shortest repr); the files are read back; a bad price is reported with its row and
column (or cell) and nothing is written; an existing OUT is replaced only with --force, never
while it is open in Excel.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import openpyxl
import pandas as pd
import pytest

from xl_factorlasso.cli import main

DATES = pd.date_range("2024-01-05", periods=8, freq="W-FRI")


@pytest.fixture
def prices() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    values = 100 * np.cumprod(1 + rng.normal(0.002, 0.02, size=(8, 3)), axis=0)
    frame = pd.DataFrame(values, index=DATES, columns=["SPX", "UST10", "GOLD"])
    frame.index.name = "Date"
    return frame


def _csv(path, frame: pd.DataFrame, blanks=()) -> None:
    rows = [",".join(["Date", *frame.columns])]
    for i, (d, row) in enumerate(zip(frame.index, frame.to_numpy(), strict=True)):
        rows.append(",".join([d.date().isoformat(),
                              *("" if (i, j) in blanks else repr(float(v))
                                for j, v in enumerate(row))]))
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


def _read_csv(path) -> pd.DataFrame:
    # (round_trip: pandas 2's default parser can land one unit in the last place off)
    return pd.read_csv(path, index_col=0, parse_dates=True, float_precision="round_trip")


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = main(["returns", *map(str, argv)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_csv_to_csv_equals_pandas(tmp_path, prices, capsys):
    src, out = tmp_path / "prices.csv", tmp_path / "returns.csv"
    _csv(src, prices)
    code, stdout, err = _run(capsys, src, out)
    assert code == 0 and err == ""
    assert stdout == (f"wrote {out}: simple returns of 3 assets on 7 dates (2024-01-12 to "
                      "2024-02-23); 0 missing\n")
    got = _read_csv(out)
    assert out.read_text().splitlines()[0] == "date,SPX,UST10,GOLD"
    assert list(got.index) == list(DATES[1:])
    expected = (prices / prices.shift(1) - 1).iloc[1:]
    np.testing.assert_array_equal(got.to_numpy(), expected.to_numpy())  # the same floats


def test_log_returns_and_gaps(tmp_path, prices, capsys):
    src = tmp_path / "prices.csv"
    _csv(src, prices, blanks={(3, 1)})  # UST10 has no price on the 4th date
    assert _run(capsys, src, tmp_path / "one.csv", "--method", "log")[0] == 0
    one = _read_csv(tmp_path / "one.csv")
    p = prices.copy()
    p.iloc[3, 1] = np.nan
    expected = np.log(p / p.shift(1)).iloc[1:]
    np.testing.assert_array_equal(one.to_numpy(), expected.to_numpy())
    assert one["UST10"].isna().sum() == 2  # the return into the gap and the one out of it
    assert "empty" not in (tmp_path / "one.csv").read_text() and ",," not in (
        tmp_path / "one.csv").read_text().splitlines()[1]
    code, stdout, _err = _run(capsys, src, tmp_path / "span.csv", "--span-gaps")
    assert code == 0 and stdout.endswith("; 1 missing\n")
    span = _read_csv(tmp_path / "span.csv")
    assert span["UST10"].iloc[3] == p.iloc[4, 1] / p.iloc[2, 1] - 1  # over the gap


def _workbook(path, prices: pd.DataFrame, at=(3, 2)) -> pd.DataFrame:
    """Prices on sheet 'Prices' from cell ``at`` (blank rows and columns before), a second
    sheet, and a defined name on the prices; returns the prices as the file stores them
    (openpyxl writes 15 to 17 significant digits)."""
    from openpyxl.workbook.defined_name import DefinedName

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Prices"
    r0, c0 = at
    ws.cell(row=r0, column=c0, value="Date")
    for j, name in enumerate(prices.columns, start=1):
        ws.cell(row=r0, column=c0 + j, value=name)
    for i, (d, row) in enumerate(zip(prices.index, prices.to_numpy(), strict=True), start=1):
        ws.cell(row=r0 + i, column=c0, value=d.to_pydatetime()).number_format = "yyyy-mm-dd"
        for j, v in enumerate(row, start=1):
            ws.cell(row=r0 + i, column=c0 + j, value=float(v))
    ws.cell(row=40, column=10).number_format = "0.00"  # formatted but empty: not data
    wb.create_sheet("Notes")["A1"] = "prices from a test"
    last = openpyxl.utils.get_column_letter(c0 + prices.shape[1])
    first = openpyxl.utils.get_column_letter(c0)
    wb.defined_names["MY_PRICES"] = DefinedName(
        "MY_PRICES", attr_text=f"Prices!${first}${r0}:${last}${r0 + len(prices)}")
    wb.save(path)
    stored = openpyxl.load_workbook(path)["Prices"]
    return pd.DataFrame([[stored.cell(row=r0 + 1 + i, column=c0 + 1 + j).value
                          for j in range(prices.shape[1])] for i in range(len(prices))],
                        index=prices.index, columns=prices.columns)


def test_workbook_sheet_to_xlsx(tmp_path, prices, capsys):
    src, out = tmp_path / "book.xlsx", tmp_path / "returns.xlsx"
    prices = _workbook(src, prices)
    code, _out, err = _run(capsys, src, out)
    assert code == 2 and not out.exists()
    assert err == ("xl-factorlasso: error: book.xlsx: the workbook has the sheets 'Prices', "
                   "'Notes': say which holds the prices with --sheet NAME\n")
    assert _run(capsys, src, out, "--sheet", "prices")[0] == 0  # any case
    wb = openpyxl.load_workbook(out)
    assert wb.sheetnames == ["Returns"]
    ws = wb["Returns"]
    assert ws.freeze_panes == "B2"
    assert [c.value for c in ws[1]] == ["date", "SPX", "UST10", "GOLD"]
    body = list(ws.iter_rows(min_row=2, values_only=True))
    assert [r[0] for r in body] == [d.to_pydatetime() for d in DATES[1:]]
    assert ws["A2"].number_format == "yyyy-mm-dd" and ws["B2"].number_format == "0.00%"
    expected = (prices / prices.shift(1) - 1).iloc[1:].to_numpy()
    np.testing.assert_array_equal(np.array([r[1:] for r in body], dtype=float), expected)
    # every column shows its header and its returns (as "-1.23%") without ###
    widths = {c: d.width for d in ws.column_dimensions.values() if d.min
              for c in range(d.min, d.max + 1)}
    assert widths[1] >= len("2024-01-12")
    for j, name in enumerate(["SPX", "UST10", "GOLD"], start=2):
        texts = [name, *(f"{v:.2%}" for v in expected[:, j - 2])]
        assert widths[j] >= max(map(len, texts)) + 1, (name, widths[j])


@pytest.mark.parametrize("ref", ["MY_PRICES", "Prices!B3:E11", "'Prices'!$B$3:$E$11"])
def test_a_range_or_a_name_of_the_workbook(tmp_path, prices, capsys, ref):
    src, out = tmp_path / "book.xlsx", tmp_path / "returns.csv"
    prices = _workbook(src, prices)
    assert _run(capsys, src, out, "--range", ref)[0] == 0
    np.testing.assert_array_equal(_read_csv(out).to_numpy(),
                                  (prices / prices.shift(1) - 1).iloc[1:].to_numpy())
    part = tmp_path / "part.csv"  # a part of the table: two assets, five dates
    assert _run(capsys, src, part, "--sheet", "Prices", "--range", "B3:D8")[0] == 0
    assert _read_csv(part).shape == (4, 2)


def bad_inputs(tmp_path, prices):
    """(label, files to write, argv, the message)."""
    _csv(tmp_path / "ok.csv", prices)
    text = (tmp_path / "ok.csv").read_text().splitlines()
    bad_row = text[3].split(",")
    bad_row[2] = '"1,5"'
    zero = text[5].split(",")
    zero[3] = "0"
    book = tmp_path / "book.xlsx"
    _workbook(book, prices)
    wb = openpyxl.load_workbook(book)
    wb["Prices"]["D6"] = "n/a"
    wb.save(tmp_path / "bad.xlsx")
    return [
        ("decimal comma", {"bad.csv": [*text[:3], ",".join(bad_row), *text[4:]]},
         ["bad.csv", "x.csv"],
         "bad.csv: row 4, column 3: '1,5' is not a price: commas are read neither as decimal "
         "commas nor as thousands separators; type it with a decimal point and no separators "
         "(e.g. 0.5, 1000)"),
        ("zero price", {"zero.csv": [*text[:5], ",".join(zero), *text[6:]]},
         ["zero.csv", "x.csv"],
         "zero.csv: row 6, column 4: column 'GOLD' has the price 0 on 2024-02-02; prices must "
         "be > 0"),
        ("locale date", {"date.csv": [text[0], "01/05/2024" + text[1][10:], *text[2:]]},
         ["date.csv", "x.csv"],
         "date.csv: row 2, column 1: '01/05/2024' is not a date: the day/month order of such "
         "text depends on the locale (01/02/2020: 1 February or 2 January?); type it as a date "
         "(or as ISO text such as 2020-01-31)"),
        ("semicolons", {"semi.csv": [t.replace(",", ";") for t in text]}, ["semi.csv", "x.csv"],
         "semi.csv: the rows hold ';' or tabs but no commas: the fields must be separated by "
         "commas (save it as CSV UTF-8 (comma delimited), with a decimal point)"),
        ("text in a workbook", {}, ["bad.xlsx", "x.csv", "--sheet", "Prices"],
         "Prices!D6: 'n/a' is not a price"),
        ("unknown sheet", {}, ["book.xlsx", "x.csv", "--sheet", "Px"],
         "book.xlsx: unknown sheet 'Px'; the workbook has ['Prices', 'Notes']"),
        ("sheet of a csv", {}, ["ok.csv", "x.csv", "--sheet", "Prices"],
         "ok.csv: --sheet and --range choose a part of a workbook; a CSV file is read whole"),
        ("no such file", {}, ["nope.csv", "x.csv"], "no such file: nope.csv"),
        ("other input", {"p.txt": ["x"]}, ["p.txt", "x.csv"],
         "p.txt: the prices must be a .csv file or an .xlsx/.xlsm workbook"),
        ("other output", {}, ["ok.csv", "x.xlsm"],
         "x.xlsm: the returns are written to a .csv or an .xlsx file"),
        ("the prices themselves", {}, ["ok.csv", "ok.csv", "--force"],
         "ok.csv is the prices file itself: write the returns to another file"),
    ]


def test_bad_inputs_are_named_and_nothing_is_written(tmp_path, prices, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for label, files, argv, message in bad_inputs(tmp_path, prices):
        for name, lines in files.items():
            (tmp_path / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
        before = sorted(os.listdir(tmp_path))
        code, stdout, err = _run(capsys, *argv)
        assert (code, stdout) == (2, ""), label
        assert err == f"xl-factorlasso: error: {message}\n", label
        assert sorted(os.listdir(tmp_path)) == before, label  # no OUT, no temporary file


def test_out_is_replaced_only_with_force_and_never_while_open(tmp_path, prices, capsys):
    src, out = tmp_path / "prices.csv", tmp_path / "returns.xlsx"
    _csv(src, prices)
    out.write_bytes(b"the user's own file")
    code, _o, err = _run(capsys, src, out)
    assert code == 2 and f"{out} exists: add --force to replace it" in err
    assert out.read_bytes() == b"the user's own file"
    owner = tmp_path / "~$returns.xlsx"  # Excel has it open
    owner.write_bytes(bytes([5]) + b"alice" + bytes(200))
    code, _o, err = _run(capsys, src, out, "--force")
    assert code == 2 and "returns.xlsx is open in Excel" in err and "give another OUT" in err
    assert out.read_bytes() == b"the user's own file"
    owner.unlink()
    assert _run(capsys, src, out, "--force")[0] == 0
    assert openpyxl.load_workbook(out).sheetnames == ["Returns"]
    assert sorted(os.listdir(tmp_path)) == ["prices.csv", "returns.xlsx"]


def test_console_entry_point(tmp_path, prices):
    src = tmp_path / "prices.csv"
    _csv(src, prices)
    env = {**os.environ, "PYTHONPATH": str(os.path.dirname(os.path.dirname(__file__)))}
    helped = subprocess.run([sys.executable, "-m", "xl_factorlasso", "returns", "--help"],
                            capture_output=True, text=True, env=env)
    assert helped.returncode == 0
    assert "--method {simple,log}" in helped.stdout and "--span-gaps" in helped.stdout
    run = subprocess.run([sys.executable, "-m", "xl_factorlasso", "returns", str(src),
                          str(tmp_path / "r.csv"), "--method", "log"],
                         capture_output=True, text=True, env=env)
    assert run.returncode == 0 and run.stderr == "" and "log returns of 3 assets" in run.stdout
