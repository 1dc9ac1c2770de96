"""Render the template's sheets to PNG for the user guide (``docs/img/*.png``).

    python docs/render_screenshots.py [--out-dir docs/img] [--keep DIR] [--dpi 100]

Needs LibreOffice (``soffice``; Debian: ``apt-get install libreoffice-calc-nogui``), ``pdftoppm``
(Debian: ``apt-get install poppler-utils``) and, for Excel's column widths, the Calibri-compatible
font Carlito (Debian: ``apt-get install fonts-crosextra-carlito``). No Excel is involved: the
pictures are LibreOffice's print rendering of the workbook cells, not screenshots of Excel.

What it does, in a temporary folder:

1. copies ``xl_factorlasso/templates/factorlasso_template.xlsx`` three times: as shipped, after
   ``xl-factorlasso refit BOOK --cv`` and after ``xl-factorlasso refit BOOK --cv --portfolio``
   (the same command a user runs, so Results, Diagnostics, CV and Portfolio hold real outputs);
2. for each picture, writes a one-sheet copy of the right book with openpyxl (the other sheets
   and the names removed, a print area, one landscape A3 page, grid lines and row/column
   headings printed). Only the look is touched: a few column widths where a label would be
   clipped, one long note wrapped, a font name where the template's has none (see ``Shot``);
   the cell values are those of the workbook. On the Formulas sheet the ``=FLASSO_*`` formulas
   are replaced by the values the same Python functions return (``workbook_template/build.py``
   evaluates them the way the add-in passes the named ranges): LibreOffice does not know the
   functions and would show ``#NAME?``;
3. converts every copy to PDF with one ``soffice --headless --convert-to pdf`` run, started in
   its own process group and killed by its PID after ``--timeout`` seconds;
4. ``pdftoppm`` renders page 1 of each PDF; the white border is cropped and the picture stored
   as a palette PNG (a few tens of KB each);
5. draws ``ribbon_tab.png``, a diagram of the "Factor LASSO" tab made from
   ``workbook_template/src/customUI14.xml`` (labels and groups only; Excel's own rendering with
   its icons cannot be produced here).
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
TEMPLATE = ROOT / "xl_factorlasso" / "templates" / "factorlasso_template.xlsx"
CUSTOM_UI = ROOT / "workbook_template" / "src" / "customUI14.xml"
BUILD_PY = ROOT / "workbook_template" / "build.py"


@dataclass(frozen=True)
class Shot:
    png: str  # file name under docs/img
    book: str  # "template" (as shipped), "refit" (after --cv) or "portfolio" (--cv --portfolio)
    sheet: str
    area: str  # print area: what the picture shows
    # For the picture only (the workbook's cells are not changed):
    # column -> width, where the template's width clips a label or LibreOffice's print does not
    # let long text run on into the empty cells to its right as Excel's window does;
    widths: tuple[tuple[str, float], ...] = ()
    # (range, lines): a note too long for the print area, merged across it and wrapped.
    wrap: tuple[tuple[str, int], ...] = ()


SHOTS = [
    Shot("start.png", "template", "Start", "A1:C46", widths=(("C", 185),)),
    Shot("returns.png", "template", "Returns", "A1:N24"),
    Shot("signs.png", "template", "Signs", "A1:G25"),
    Shot("settings.png", "template", "Settings", "A1:F25"),
    Shot("results.png", "refit", "Results", "A1:P40"),
    Shot("diagnostics.png", "refit", "Diagnostics", "A1:P25",
         widths=(("A", 22), ("B", 34), ("O", 14), ("P", 12))),
    Shot("cv.png", "refit", "CV", "A1:I16", widths=(("A", 11),)),
    Shot("portfolio.png", "portfolio", "Portfolio", "A1:M25", widths=(("L", 23),)),
    Shot("formulas.png", "template", "Formulas", "A1:N43", wrap=(("A2:N2", 2),)),
    Shot("xlwings_conf.png", "template", "xlwings.conf", "A1:O5"),
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


def formula_values(book: Path) -> dict[str, list[list]]:
    """Anchor cell -> the value table its ``=FLASSO_*`` formula returns (computed in Python)."""
    import openpyxl
    from openpyxl.worksheet.formula import ArrayFormula

    from xl_factorlasso import udfs

    build = _load_build_module()
    wb = openpyxl.load_workbook(book)
    values = build._name_values(wb)
    ws = wb["Formulas"]
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
    """A copy of ``book`` holding only ``shot.sheet``, set up to print ``shot.area`` on 1 page."""
    import openpyxl
    from openpyxl.styles import Alignment
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
    for col, width in shot.widths:
        ws.column_dimensions[col].width = width
    for ref, lines in shot.wrap:
        first = ws[ref.split(":")[0]]
        first.alignment = Alignment(wrap_text=True, vertical="top")
        ws.merge_cells(ref)
        ws.row_dimensions[first.row].height = 15 * lines
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
def crop_and_store(png_in: Path, png_out: Path, margin: int = 8, colours: int = 96) -> int:
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
    im.quantize(colors=colours, method=Image.Quantize.MEDIANCUT).save(png_out, optimize=True)
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
def render(out_dir: Path, work: Path, dpi: int, timeout: float) -> list[Path]:
    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    pdftoppm = shutil.which("pdftoppm")
    if not soffice:
        raise SystemExit("soffice not found: apt-get install libreoffice-calc-nogui")
    if not pdftoppm:
        raise SystemExit("pdftoppm not found: apt-get install poppler-utils")
    out_dir.mkdir(parents=True, exist_ok=True)
    books = {
        "template": TEMPLATE,
        "refit": refit_copy(TEMPLATE, work / "after_refit_cv.xlsx", "--cv", timeout=timeout),
        "portfolio": refit_copy(TEMPLATE, work / "after_portfolio.xlsx", "--cv", "--portfolio",
                                timeout=timeout),
    }
    sheets_dir = work / "sheets"
    sheets_dir.mkdir()
    copies = []
    for shot in SHOTS:
        formulas = formula_values(books[shot.book]) if shot.sheet == "Formulas" else None
        stem = Path(shot.png).stem
        copies.append(one_sheet_copy(books[shot.book], shot, sheets_dir / f"{stem}.xlsx",
                                     formulas))
    pdf_dir = work / "pdf"
    profile = work / "lo-profile"
    run_bounded([soffice, f"-env:UserInstallation=file://{profile}", "--headless",
                 "--norestore", "--nolockcheck", "--convert-to", "pdf", "--outdir", str(pdf_dir),
                 *map(str, copies)], timeout, "soffice --convert-to pdf")
    written = []
    for shot, copy in zip(SHOTS, copies, strict=True):
        pdf = pdf_dir / f"{copy.stem}.pdf"
        if not pdf.exists():
            raise RuntimeError(f"soffice wrote no {pdf.name}")
        raw = work / f"{copy.stem}-raw"
        run_bounded([pdftoppm, "-png", "-r", str(dpi), "-f", "1", "-l", "1", "-singlefile",
                     str(pdf), str(raw)], timeout, "pdftoppm")
        size = crop_and_store(raw.with_suffix(".png"), out_dir / shot.png)
        written.append(out_dir / shot.png)
        print(f"wrote {out_dir / shot.png} ({size / 1024:.0f} KB): {shot.sheet}!{shot.area}"
              f" ({shot.book})")
    size = draw_ribbon(out_dir / "ribbon_tab.png")
    written.append(out_dir / "ribbon_tab.png")
    print(f"wrote {out_dir / 'ribbon_tab.png'} ({size / 1024:.0f} KB): diagram of customUI14.xml")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", default=str(DOCS / "img"), help="default: docs/img")
    parser.add_argument("--keep", metavar="DIR",
                        help="work in DIR and keep the intermediate files (default: a temp dir)")
    parser.add_argument("--dpi", type=int, default=100, help="resolution of the PNGs (100)")
    parser.add_argument("--timeout", type=float, default=300,
                        help="seconds allowed to each external step (soffice, refit, pdftoppm)")
    args = parser.parse_args(argv)
    if args.keep:
        work = Path(args.keep)
        work.mkdir(parents=True, exist_ok=False)
        render(Path(args.out_dir), work, args.dpi, args.timeout)
    else:
        with tempfile.TemporaryDirectory(prefix="fl-shots-") as tmp:
            render(Path(args.out_dir), Path(tmp), args.dpi, args.timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
