"""Render the templates' sheets to PNG for the user guide (``docs/img/*.png``).

    python docs/render_screenshots.py [--out-dir docs/img] [--keep DIR] [--dpi 100]
    python docs/render_screenshots.py --review DIR    (every sheet of every book, to look at)

Needs LibreOffice (``soffice``; Debian: ``apt-get install libreoffice-calc-nogui``), ``pdftoppm``
(Debian: ``apt-get install poppler-utils``) and, for Excel's column widths, the Calibri-compatible
font Carlito (Debian: ``apt-get install fonts-crosextra-carlito``). No Excel is involved: the
pictures are LibreOffice's print rendering of the workbook cells, not screenshots of Excel.

What it does, in a temporary folder:

1. copies the shipped templates (``xl_factorlasso/templates/``): as shipped, and after
   ``xl-factorlasso refit BOOK --cv`` or ``xl-factorlasso refit BOOK --cv --portfolio`` (the
   same command a user runs, so Results, Diagnostics, CV, Portfolio and Risk hold real outputs,
   formatted and sized by the jobs);
2. for each picture, writes a one-sheet copy of the right book with openpyxl (the other sheets
   and the names removed, a print area, one landscape A3 page, grid lines and row/column
   headings printed, a font name where a cell's font has none: LibreOffice would draw it in a
   serif fallback). Nothing else is touched: the column widths, number formats and pictures
   are the workbook's, so the picture shows what a user sees. On the Formulas sheets the
   ``=FLASSO_*`` formulas are replaced by the values the same Python functions return
   (``workbook_template/build.py`` evaluates them the way the add-in passes the named ranges):
   LibreOffice does not know the functions and would show ``#NAME?``;
3. converts every copy to PDF with one ``soffice --headless --convert-to pdf`` run, started in
   its own process group and killed by its PID after ``--timeout`` seconds;
4. ``pdftoppm`` renders page 1 of each PDF; the white border is cropped and the picture stored
   as a palette PNG (a few tens of KB each);
5. draws ``ribbon_tab.png``, a diagram of the "Factor LASSO" tab made from
   ``workbook_template/src/customUI14.xml`` (labels and groups only; Excel's own rendering with
   its icons cannot be produced here).

``--review DIR`` renders instead every sheet of the synthetic template, the S&P 500 template and
the demo workbook after ``refit --cv --portfolio``, each on one page (``DIR/<book>-<sheet>.png``,
the PDFs beside them), to check by eye that no number shows ``###``, no label is cut and no
picture is stretched or covers a table.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
TEMPLATES = ROOT / "xl_factorlasso" / "templates"
TEMPLATE = TEMPLATES / "factorlasso_template.xlsx"
SP500 = TEMPLATES / "factorlasso_template_sp500.xlsx"
CUSTOM_UI = ROOT / "workbook_template" / "src" / "customUI14.xml"
BUILD_PY = ROOT / "workbook_template" / "build.py"


REVIEW_ROWS = 60  # rows of a long sheet that --review shows


@dataclass(frozen=True)
class Shot:
    png: str  # file name under docs/img
    book: str  # a key of BOOKS
    sheet: str
    area: str  # print area: what the picture shows


#: Book -> (the shipped template it starts from, the ``refit`` options run on a copy; None: the
#: template as shipped).
BOOKS = {
    "template": (TEMPLATE, None),
    "refit": (TEMPLATE, ("--cv",)),
    "portfolio": (TEMPLATE, ("--cv", "--portfolio")),
    "sp500": (SP500, ("--cv", "--portfolio")),
}

SHOTS = [
    Shot("start.png", "template", "Start", "A1:C49"),
    Shot("returns.png", "template", "Returns", "A1:N24"),
    Shot("signs.png", "template", "Signs", "A1:G25"),
    Shot("settings.png", "template", "Settings", "A1:F25"),
    Shot("results.png", "refit", "Results", "A1:R48"),
    Shot("diagnostics.png", "refit", "Diagnostics", "A1:P25"),
    Shot("cv.png", "refit", "CV", "A1:S24"),
    Shot("portfolio.png", "portfolio", "Portfolio", "A1:N44"),
    Shot("risk.png", "portfolio", "Risk", "A1:L26"),
    Shot("formulas.png", "template", "Formulas", "A1:W64"),
    Shot("xlwings_conf.png", "template", "xlwings.conf", "A1:O5"),
    Shot("sp500_results.png", "sp500", "Results", "A1:R44"),
]


# =============================================================================== processes
def run_bounded(cmd: list[str], timeout: float, what: str) -> str:
    """Run ``cmd`` in its own process group; on timeout kill that group (by our child's PID)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
        raise RuntimeError(f"{what} did not finish in {timeout:.0f} s and was stopped") from None
    text = out.decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {proc.returncode}):\n{text}")
    return text


def refit_copy(src: Path, dst: Path, *extra: str, timeout: float) -> Path:
    """``xl-factorlasso refit DST [extra]`` on a copy of ``src`` (the CLI a user runs)."""
    shutil.copy(src, dst)
    cmd = [sys.executable, "-m", "xl_factorlasso", "refit", str(dst), *extra]
    print(run_bounded(cmd, timeout, "xl-factorlasso refit").strip().splitlines()[-1])
    return dst


# =============================================================================== sheets
def _load_build_module():
    spec = importlib.util.spec_from_file_location("_fl_template_build", BUILD_PY)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def formula_values(book: Path, sheet: str = "Formulas") -> dict[str, list[list]]:
    """Anchor cell of ``sheet`` -> the value table its ``=FLASSO_*`` formula returns (computed
    in Python)."""
    import openpyxl
    from openpyxl.worksheet.formula import ArrayFormula

    from xl_factorlasso import udfs

    build = _load_build_module()
    wb = openpyxl.load_workbook(book)
    values = build._name_values(wb)
    ws = wb[sheet]
    out = {}
    for row in ws.iter_rows():
        for c in row:
            if not isinstance(c.value, ArrayFormula):
                continue
            formula = c.value.text.lstrip("=")
            name, args = build.split_formula(formula)
            for a in args:  # the scenario panel is a plain range of this sheet
                a = a.strip()
                if ":" in a and a not in values:
                    values[a] = [[x.value for x in r] for r in ws[a]]
            result = build.evaluate_formula(formula, values, udfs)
            out[c.coordinate] = result if isinstance(result, list) else [[result]]
    return out


def _name_fonts(ws) -> None:
    """Give a font name to cells whose font has none (``Font(bold=True)``).

    LibreOffice renders a nameless font in its serif fallback; the picture should show the
    workbook's default font (Calibri, drawn with its metric twin Carlito when installed).
    """
    from copy import copy

    for row in ws.iter_rows():
        for c in row:
            if c.has_style and c.font is not None and not c.font.name:
                font = copy(c.font)
                font.name = "Calibri"
                c.font = font


def one_sheet_copy(book: Path, shot: Shot, dst: Path, formulas: dict | None) -> Path:
    """A copy of ``book`` holding only ``shot.sheet``, set up to print ``shot.area`` (None:
    everything on the sheet) on 1 page."""
    import openpyxl
    from openpyxl.utils.cell import column_index_from_string, coordinate_from_string
    from openpyxl.worksheet.page import PageMargins

    wb = openpyxl.load_workbook(book)
    for ws in list(wb.worksheets):
        if ws.title != shot.sheet:
            wb.remove(ws)
    for name in list(wb.defined_names):
        del wb.defined_names[name]
    ws = wb[shot.sheet]
    _name_fonts(ws)
    ws.sheet_view.tabSelected = True
    wb.active = 0
    if formulas:
        for anchor, table in formulas.items():
            col, row = coordinate_from_string(anchor)
            c0 = column_index_from_string(col)
            for i, values in enumerate(table):
                for j, v in enumerate(values):
                    ws.cell(row=row + i, column=c0 + j, value=v)
    if shot.area is not None:
        ws.print_area = shot.area
    ws.print_title_rows = None
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = ws.PAPERSIZE_A3
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 1
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.print_options.gridLines = True
    ws.print_options.headings = True
    ws.page_margins = PageMargins(left=0.2, right=0.2, top=0.2, bottom=0.2, header=0, footer=0)
    ws.oddHeader.center.text = ws.oddFooter.center.text = None
    wb.save(dst)
    return dst


# =============================================================================== images
def crop_and_store(png_in: Path, png_out: Path, margin: int = 8, colours: int = 256) -> int:
    """Crop the white page around the content; store as an optimised palette PNG."""
    from PIL import Image, ImageChops

    im = Image.open(png_in).convert("RGB")
    bg = Image.new("RGB", im.size, (255, 255, 255))
    bbox = ImageChops.difference(im, bg).point(lambda p: 255 if p > 8 else 0).getbbox()
    if bbox is None:
        raise RuntimeError(f"{png_in.name} is blank")
    left, top, right, bottom = bbox
    im = im.crop((max(left - margin, 0), max(top - margin, 0),
                  min(right + margin, im.width), min(bottom + margin, im.height)))
    # octree keeps the small areas of colour (a legend swatch, a cluster's leaves) that median
    # cut merges into the greys of the text
    im.quantize(colors=colours, method=Image.Quantize.FASTOCTREE).save(png_out, optimize=True)
    return png_out.stat().st_size


def draw_ribbon(png_out: Path) -> int:
    """A diagram of the ribbon tab: groups and button labels read from customUI14.xml."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from lxml import etree
    from matplotlib.patches import FancyBboxPatch, Rectangle

    ns = {"ui": "http://schemas.microsoft.com/office/2009/07/customui"}
    root = etree.parse(str(CUSTOM_UI), etree.XMLParser(resolve_entities=False)).getroot()
    tab = root.find(".//ui:tab", ns)
    groups = [(g.get("label"), [b.get("label") for b in g.findall("ui:button", ns)])
              for g in tab.findall("ui:group", ns)]
    button_w, gap, pad = 1.55, 0.12, 0.15
    widths = [len(b) * (button_w + gap) - gap + 2 * pad for _, b in groups]
    total = sum(widths) + 0.1 * (len(groups) + 1)
    fig = plt.figure(figsize=(total * 0.95, 1.85), dpi=110)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, total)
    ax.set_ylim(0, 2.0)
    ax.axis("off")
    ax.add_patch(Rectangle((0, 0), total, 1.55, facecolor="#F3F3F3", edgecolor="#C8C8C8"))
    ax.add_patch(Rectangle((0.1, 1.55), 1.6, 0.4, facecolor="#F3F3F3", edgecolor="#C8C8C8"))
    ax.text(0.9, 1.74, tab.get("label"), ha="center", va="center", fontsize=10,
            color="#217346", weight="bold")
    x = 0.1
    for (label, buttons), w in zip(groups, widths, strict=True):
        bx = x + pad
        for b in buttons:
            ax.add_patch(FancyBboxPatch((bx, 0.42), button_w, 0.95,
                                        boxstyle="round,pad=0.0,rounding_size=0.06",
                                        facecolor="white", edgecolor="#A6A6A6"))
            ax.text(bx + button_w / 2, 0.9, b.replace(" ", "\n", 1) if len(b) > 12 else b,
                    ha="center", va="center", fontsize=9)
            bx += button_w + gap
        ax.text(x + w / 2, 0.18, label, ha="center", va="center", fontsize=8, color="#595959")
        x += w + 0.1
        if x < total - 0.2:
            ax.plot([x - 0.05, x - 0.05], [0.08, 1.47], color="#C8C8C8", lw=1)
    fig.savefig(png_out, dpi=110)
    plt.close(fig)
    from PIL import Image

    im = Image.open(png_out).convert("RGB")
    im.quantize(colors=64, method=Image.Quantize.MEDIANCUT).save(png_out, optimize=True)
    return png_out.stat().st_size


# =============================================================================== main
def _tools() -> tuple[str, str]:
    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    pdftoppm = shutil.which("pdftoppm")
    if not soffice:
        raise SystemExit("soffice not found: apt-get install libreoffice-calc-nogui")
    if not pdftoppm:
        raise SystemExit("pdftoppm not found: apt-get install poppler-utils")
    return soffice, pdftoppm


def make_books(names, work: Path, timeout: float) -> dict[str, Path]:
    """The books of :data:`BOOKS` named in ``names``: a shipped template, or a refit copy."""
    books = {}
    for name in dict.fromkeys(names):
        template, options = BOOKS[name]
        books[name] = template if options is None else refit_copy(
            template, work / f"{name}.xlsx", *options, timeout=timeout)
    return books


def to_pdf(copies: list[Path], pdf_dir: Path, work: Path, timeout: float) -> None:
    """One ``soffice --convert-to pdf`` run for every copy (a private profile in ``work``)."""
    soffice, _ = _tools()
    profile = work / "lo-profile"
    run_bounded([soffice, f"-env:UserInstallation=file://{profile}", "--headless",
                 "--norestore", "--nolockcheck", "--convert-to", "pdf", "--outdir", str(pdf_dir),
                 *map(str, copies)], timeout, "soffice --convert-to pdf")
    missing = [c.stem for c in copies if not (pdf_dir / f"{c.stem}.pdf").exists()]
    if missing:
        raise RuntimeError(f"soffice wrote no PDF for {missing}")


def first_page_png(pdf: Path, png_out: Path, dpi: int, timeout: float) -> int:
    """Page 1 of ``pdf`` as a cropped palette PNG; returns its size in bytes."""
    _, pdftoppm = _tools()
    raw = pdf.with_name(f"{pdf.stem}-raw")
    run_bounded([pdftoppm, "-png", "-r", str(dpi), "-f", "1", "-l", "1", "-singlefile",
                 str(pdf), str(raw)], timeout, "pdftoppm")
    return crop_and_store(raw.with_suffix(".png"), png_out)


def render(out_dir: Path, work: Path, dpi: int, timeout: float) -> list[Path]:
    _tools()
    out_dir.mkdir(parents=True, exist_ok=True)
    books = make_books([shot.book for shot in SHOTS], work, timeout)
    sheets_dir = work / "sheets"
    sheets_dir.mkdir()
    copies = []
    for shot in SHOTS:
        formulas = (formula_values(books[shot.book], shot.sheet)
                    if shot.sheet.startswith("Formulas") else None)
        stem = Path(shot.png).stem
        copies.append(one_sheet_copy(books[shot.book], shot, sheets_dir / f"{stem}.xlsx",
                                     formulas))
    pdf_dir = work / "pdf"
    to_pdf(copies, pdf_dir, work, timeout)
    written = []
    for shot, copy in zip(SHOTS, copies, strict=True):
        size = first_page_png(pdf_dir / f"{copy.stem}.pdf", out_dir / shot.png, dpi, timeout)
        written.append(out_dir / shot.png)
        print(f"wrote {out_dir / shot.png} ({size / 1024:.0f} KB): {shot.sheet}!{shot.area}"
              f" ({shot.book})")
    size = draw_ribbon(out_dir / "ribbon_tab.png")
    written.append(out_dir / "ribbon_tab.png")
    print(f"wrote {out_dir / 'ribbon_tab.png'} ({size / 1024:.0f} KB): diagram of customUI14.xml")
    return written


def review(out_dir: Path, dpi: int, timeout: float) -> list[Path]:
    """Every sheet of the two templates and the demo after ``refit --cv --portfolio``, each on
    one page, as ``out_dir/<book>-<sheet>.png`` (with its PDF)."""
    import openpyxl
    from openpyxl.utils import get_column_letter

    _tools()
    out_dir.mkdir(parents=True, exist_ok=False)
    work = out_dir / "work"
    work.mkdir()
    demo = work / "demo.xlsx"
    run_bounded([sys.executable, "-m", "xl_factorlasso", "demo", "--quiet", "--out", str(demo)],
                timeout, "xl-factorlasso demo")
    books = {"template": refit_copy(TEMPLATE, work / "template.xlsx", "--cv", "--portfolio",
                                    timeout=timeout),
             "sp500": refit_copy(SP500, work / "sp500.xlsx", "--cv", "--portfolio",
                                 timeout=timeout),
             "demo": demo}
    copies = []
    for book, path in books.items():
        wb = openpyxl.load_workbook(path, read_only=True)
        for ws in wb.worksheets:
            stem = f"{book}-{ws.title}".replace(" ", "_").replace(".", "_")
            # a long panel (the returns): its first rows; otherwise all of the sheet, pictures
            # included (LibreOffice prints the used area)
            area = (f"A1:{get_column_letter(ws.max_column)}{REVIEW_ROWS}"
                    if ws.max_row > 2 * REVIEW_ROWS else None)
            shot = Shot(f"{stem}.png", book, ws.title, area)
            sheet = ws.title
            formulas = formula_values(path, sheet) if sheet.startswith("Formulas") else None
            copies.append(one_sheet_copy(path, shot, work / f"{stem}.xlsx", formulas))
    to_pdf(copies, out_dir, work, timeout)
    written = []
    for copy in copies:
        size = first_page_png(out_dir / f"{copy.stem}.pdf", out_dir / f"{copy.stem}.png", dpi,
                              timeout)
        (out_dir / f"{copy.stem}-raw.png").unlink()
        written.append(out_dir / f"{copy.stem}.png")
        print(f"wrote {written[-1]} ({size / 1024:.0f} KB)")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", default=str(DOCS / "img"), help="default: docs/img")
    parser.add_argument("--keep", metavar="DIR",
                        help="work in DIR and keep the intermediate files (default: a temp dir)")
    parser.add_argument("--review", metavar="DIR",
                        help="render every sheet of both templates and the demo after refit "
                             "--cv --portfolio into DIR instead (a new folder)")
    parser.add_argument("--dpi", type=int, default=100, help="resolution of the PNGs (100)")
    parser.add_argument("--timeout", type=float, default=300,
                        help="seconds allowed to each external step (soffice, refit, pdftoppm)")
    args = parser.parse_args(argv)
    if args.review:
        review(Path(args.review), args.dpi, args.timeout)
    elif args.keep:
        work = Path(args.keep)
        work.mkdir(parents=True, exist_ok=False)
        render(Path(args.out_dir), work, args.dpi, args.timeout)
    else:
        with tempfile.TemporaryDirectory(prefix="fl-shots-") as tmp:
            render(Path(args.out_dir), Path(tmp), args.dpi, args.timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
