"""What a user sees after ``xl-factorlasso refit BOOK --cv --portfolio`` on each template and on
the demo workbook.

Read back with openpyxl (a reader independent of the writer):

* number formats: weights, R², volatilities and risk contributions as percentages, loadings and
  exposures with three decimals, penalties in scientific notation -- every number of every
  output in the format stated here, none left in General;
* every output cell fits its column in its format (the text the format displays, estimated with
  ``_formats.text_width``, bold headers 10% wider, within the column's displayed width): no
  ``###``, no cut label;
* the header row of each output sheet is frozen;
* every picture is placed at its PNG's own pixel size (not stretched) and covers no FL_* range;
* the input tables are still the tables they were;
* LibreOffice (when installed) renders each book to PDF without a ``###`` anywhere (its own
  fonts and widths: Carlito is metric-compatible with Calibri);
* Microsoft's Open XML SDK validator (when available) accepts every template and every refit
  book, apart from openpyxl's benign order of ``<font>`` children in ``styles.xml``.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
from pathlib import Path

import openpyxl
import pytest
from PIL import Image

from xl_factorlasso.cli import build_demo_workbook
from xl_factorlasso.cli import main as cli_main
from xl_factorlasso.workbook import CONTRACT, OUTPUTS, Area, XlsxFileIO
from xl_factorlasso.workbook._builder import TABLES
from xl_factorlasso.workbook._formats import (
    DEFAULT_WIDTH,
    display_text,
    displayed_width,
    text_width,
)

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "xl_factorlasso" / "templates"
BOOKS = {
    "synthetic": SHIPPED / "factorlasso_template.xlsx",
    "sp500": SHIPPED / "factorlasso_template_sp500.xlsm",
    "demo": None,  # written by build_demo_workbook
}
EMU_PER_PX = 9525

# The format of each output's numbers: one code for every data column, or a dict per column
# header (FL_CV: the lambda column, then the scores), or per row label (the item tables).
PCT1, PCT2, PCT3, SCI = "0.0%", "0.00%", "0.000%", "0.000E+00"
COLUMNS = {
    "FL_COEF": "0.000",
    "FL_DERIVED_SIGNS": "0",
    "FL_PRIOR_USED": "0.000",
    "FL_R2": PCT1,
    "FL_INTERCEPT": PCT3,
    "FL_CLUSTERS": "0",
    "FL_RESID_VOL": PCT2,
    "FL_WEIGHTS": PCT2,
    "FL_CV": {"reg_lambda": SCI, None: PCT1},
    "FL_RISK": {"exposure": "0.000", "contribution": PCT2, "share": PCT1},
    "FL_RISK_ASSETS": {"weight": PCT2, "contribution": PCT2, "share": PCT1,
                       "systematic": PCT2, "specific": PCT2},
}
ROWS = {
    "FL_STATUS": {"reg_lambda": SCI, "lambda_max": SCI, "objective": SCI,
                  "cv_best_score": PCT1},
    "FL_PORTFOLIO_STATS": {
        "annualization_factor": "0", "diversification_ratio": "0.000", "volatility": PCT2,
        "mean": PCT2, "standard_deviation": PCT2, "sharpe_ratio": "0.00",
        "diversification": "0.000", "turnover": PCT2, "total_cost": PCT3, "total_fee": PCT3,
        "effective_number_assets": "0.0", "observations": "0", "n_invested": "0"},
}


@pytest.fixture(scope="module")
def books(tmp_path_factory):
    """Each book after ``xl-factorlasso refit BOOK --cv --portfolio`` (pictures included)."""
    folder = tmp_path_factory.mktemp("rendered")
    out = {}
    for name, template in BOOKS.items():
        path = folder / (f"{name}{template.suffix}" if template else f"{name}.xlsx")
        if template is None:
            build_demo_workbook(str(path))
        else:
            shutil.copy(template, path)
        assert cli_main(["refit", str(path), "--cv", "--portfolio"]) == 0
        out[name] = path
    return out


EACH = pytest.mark.parametrize("book", list(BOOKS))


def _width(ws, col: int) -> float:
    """The displayed width of a column (openpyxl groups equal columns in one dimension)."""
    for dim in ws.column_dimensions.values():
        if dim.min and dim.max and dim.min <= col <= dim.max and dim.width:
            return displayed_width(dim.width)
    return DEFAULT_WIDTH


def _cells(path):
    """name -> (worksheet, area, rows of openpyxl cells) for every output."""
    names = XlsxFileIO(path).names()
    wb = openpyxl.load_workbook(path)
    out = {}
    for name in OUTPUTS:
        a = names[name]
        ws = wb[a.sheet]
        out[name] = (ws, a, [[ws.cell(r, c) for c in range(a.min_col, a.max_col + 1)]
                             for r in range(a.min_row, a.max_row + 1)])
    return out


def _expected(name: str, header: str, label) -> str | None:
    if name in ROWS:
        return ROWS[name].get(label)
    spec = COLUMNS[name]
    if isinstance(spec, str):
        return spec
    return spec.get(header, spec.get(None))


@EACH
def test_every_number_of_every_output_has_its_format(books, book):
    checked = 0
    for name, (_ws, _area, rows) in _cells(books[book]).items():
        header = [c.value for c in rows[0]]
        for row in rows[1:]:
            for j, cell in enumerate(row):
                if j == 0 and name != "FL_CV":
                    continue  # the labels
                if isinstance(cell.value, bool) or not isinstance(cell.value, (int, float)):
                    continue
                want = _expected(name, header[j], row[0].value)
                where = f"{name} {cell.coordinate} ({row[0].value} / {header[j]})"
                assert want is not None, f"{where}: a number this test does not know"
                assert cell.number_format == want, where
                checked += 1
    assert checked > 300


@EACH
def test_every_output_cell_fits_its_column(books, book):
    too_wide = []
    for name, (ws, _area, rows) in _cells(books[book]).items():
        for row in rows:
            for cell in row:
                if cell.value is None:
                    continue
                shown = display_text(cell.value, cell.number_format)
                need = text_width(shown) * (1.1 if cell.font.b else 1.0)
                width = _width(ws, cell.column)
                if need > width:
                    too_wide.append(f"{name} {ws.title}!{cell.coordinate} {shown!r} needs "
                                    f"{need:.1f} of {width:.2f} characters")
    assert too_wide == []


@EACH
def test_output_sheets_keep_their_header_row_in_view(books, book):
    wb = openpyxl.load_workbook(books[book])
    names = XlsxFileIO(books[book]).names()
    sheets = {names[n].sheet for n in OUTPUTS if names[n].min_row == 1}
    assert sheets >= {"Results", "Diagnostics", "CV", "Portfolio", "Risk"}
    for sheet in sheets:
        assert wb[sheet].freeze_panes == ("B2" if sheet == "Results" else "A2"), sheet


def _pixels(ws, col: int, row: int, n_cols: int = 0, n_rows: int = 0):
    """Left/top pixel of a 1-based cell as Excel lays a sheet out (a column of displayed width
    w is 7w + 5 pixels, a row of h points 4h/3 pixels, 15 points by default)."""
    x = sum(round(_width(ws, c) * 7 + 5) for c in range(1, col))
    y = sum(round((ws.row_dimensions[r].height or 15) * 4 / 3) for r in range(1, row))
    return x, y


def _pictures(path):
    """(sheet, picture name, (x0, y0, x1, y1) in pixels, PNG size, placed size) of each."""
    from lxml import etree

    wb = openpyxl.load_workbook(path)
    out = []
    for ws in wb.worksheets:
        for img in ws._images:
            anchor = img.anchor
            x, y = _pixels(ws, anchor._from.col + 1, anchor._from.row + 1)
            x += anchor._from.colOff // EMU_PER_PX
            y += anchor._from.rowOff // EMU_PER_PX
            w, h = anchor.ext.width // EMU_PER_PX, anchor.ext.height // EMU_PER_PX
            png = Image.open(io.BytesIO(img._data())).size
            out.append((ws, img, (x, y, x + w, y + h), png, (w, h)))
    # openpyxl does not keep a picture's name: read it from the drawing parts, in order
    names = []
    with __import__("zipfile").ZipFile(path) as zf:
        for part in sorted(n for n in zf.namelist() if n.startswith("xl/drawings/drawing")
                           and n.endswith(".xml")):
            root = etree.fromstring(zf.read(part))
            names += [(part, e.get("name")) for e in root.iter()
                      if etree.QName(e).localname == "cNvPr"]
    assert len(names) == len(out)
    return out, [n for _part, n in names]


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


@EACH
def test_pictures_are_placed_at_their_own_size(books, book):
    pictures, names = _pictures(books[book])
    assert {"FL_HEATMAP", "FL_DENDROGRAM", "FL_CV_CURVE", "FL_RISK_SPLIT",
            "FL_WEIGHTS_CHART", "FL_RISK_CHART"} <= set(names)
    for (ws, _img, _box, png, placed), name in zip(pictures, names, strict=True):
        assert placed == png, f"{name} on {ws.title}: {png} pixels placed at {placed}"


@EACH
@pytest.mark.parametrize("picture", ["FL_HEATMAP", "FL_DENDROGRAM", "FL_CV_CURVE",
                                     "FL_RISK_SPLIT", "FL_WEIGHTS_CHART", "FL_RISK_CHART"])
def test_a_picture_covers_no_table(books, book, picture):
    io_ = XlsxFileIO(books[book])
    names = io_.names()
    pictures, pic_names = _pictures(books[book])
    (ws, _img, box, _png, _placed), = [p for p, n in zip(pictures, pic_names, strict=True)
                                      if n == picture]
    covered = []
    for s in CONTRACT:
        a = names.get(s.name)
        if a is None or a.sheet != ws.title:
            continue
        x0, y0 = _pixels(ws, a.min_col, a.min_row)
        x1, y1 = _pixels(ws, a.max_col + 1, a.max_row + 1)
        used = io_.read(a)  # only the cells that hold something count
        if any(v not in (None, "") for r in used for v in r) and _overlap(box, (x0, y0, x1,
                                                                               y1)):
            covered.append(f"{s.name} {a}")
    assert covered == [], f"{picture} on {ws.title} at {box} covers {covered}"


@EACH
def test_the_input_tables_are_still_there_after_the_run(books, book):
    io_ = XlsxFileIO(books[book])
    followed = io_._name_tables()
    assert {n: t for n, (t, _a) in followed.items()} == TABLES
    names = io_.names()
    for name, (_table, whole) in followed.items():
        assert names[name] == whole and isinstance(whole, Area), name


# =============================================================================== LibreOffice
def _run_bounded(cmd, timeout=300):
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"{cmd[0]} did not finish in {timeout} s")
    assert proc.returncode == 0, out.decode(errors="replace")


@pytest.mark.skipif(not ((shutil.which("soffice") or shutil.which("libreoffice"))
                         and shutil.which("pdftotext")),
                    reason="needs LibreOffice (soffice) and pdftotext (poppler-utils)")
def test_libreoffice_renders_every_book_without_hashes(books, tmp_path):
    """LibreOffice lays the sheets out with its own fonts and shows ``###`` for a number wider
    than its column: no page of any book has one. The Formulas sheet is left out: LibreOffice
    does not know the =FLASSO_* functions (its cells are #NAME? there)."""
    copies = []
    for name, path in books.items():
        wb = openpyxl.load_workbook(path, keep_vba=path.suffix == ".xlsm")
        if "Formulas" in wb.sheetnames:
            wb.remove(wb["Formulas"])
        copy = tmp_path / f"{name}{path.suffix}"
        wb.save(copy)
        copies.append(copy)
    exe = shutil.which("soffice") or shutil.which("libreoffice")
    _run_bounded([exe, f"-env:UserInstallation=file://{tmp_path / 'profile'}", "--headless",
                  "--norestore", "--convert-to", "pdf", "--outdir", str(tmp_path / "pdf"),
                  *map(str, copies)])
    for copy in copies:
        pdf = tmp_path / "pdf" / f"{copy.stem}.pdf"
        text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True,
                              text=True, timeout=120, check=True).stdout
        assert "Diversification" in text or "diversification" in text  # the pages are there
        hashes = [line.strip() for line in text.splitlines() if "###" in line]
        assert hashes == [], f"{copy.name}: {hashes[:5]}"


# =============================================================================== OOXML validator
BENIGN = ("Sch_UnexpectedElementContentExpectingComplex", "/xl/styles.xml", "/x:fonts[1]/x:font[")


def _validator() -> Path | None:
    """``shared/tools/ooxml-validate`` beside the checkout (or beside its worktree folder)."""
    for up in (ROOT.parent, ROOT.parent.parent):
        path = up / "shared" / "tools" / "ooxml-validate" / "ooxml-validate"
        if path.exists():
            return path
    return None


def test_every_template_and_every_refit_book_is_valid_ooxml(books):
    validator = _validator()
    if validator is None:
        pytest.skip("no Open XML SDK validator (shared/tools/ooxml-validate)")
    paths = sorted(SHIPPED.glob("factorlasso_template*.xls*")) + list(books.values())
    try:
        run = subprocess.run([str(validator), *map(str, paths)], capture_output=True, text=True,
                             timeout=900)
    except (OSError, subprocess.TimeoutExpired) as err:
        pytest.skip(f"the validator cannot run here: {err}")
    if "== FILE" not in run.stdout:
        pytest.skip(f"the validator could not be built: {run.stderr.strip()[-300:]}")
    assert run.stdout.count("== FILE") == len(paths) == 9, run.stdout
    errors = [line for line in run.stdout.splitlines()
              if line.startswith("ERR") and not all(b in line for b in BENIGN)]
    assert errors == []
