"""Price files in, return files out: what ``xl-factorlasso returns`` reads and writes.

Reading gives the cells of a CSV file or of a workbook range as a :class:`~._tables.Block`
whose messages name the place a user finds the cell at: ``prices.csv: row 5, column 3`` (the
line and field of the file, the header being row 1) or ``Prices!C5``. The numbers are read by
the same no-guess rules as every panel (:func:`~._prices.returns_from_prices`).

Writing goes to a temporary file beside the target and is renamed over it in one step, after
the checks of :func:`~._xlsx_guard.write_blocker` (not open in Excel or LibreOffice, not locked,
not read-only); an existing file is replaced only when asked to.
"""

from __future__ import annotations

import csv
import io
import math
import os
import tempfile

import pandas as pd

from ._errors import WorkbookInputError
from ._tables import Block, is_blank, text_number

__all__ = ["OUTPUT_SUFFIXES", "check_output", "read_price_block", "write_file",
           "write_returns"]

OUTPUT_SUFFIXES = (".csv", ".xlsx")
_WORKBOOK_SUFFIXES = (".xlsx", ".xlsm")
RETURNS_SHEET = "Returns"
RETURN_FORMAT = "0.00%"
DATE_FORMAT = "yyyy-mm-dd"


# --------------------------------------------------------------------------- reading
def _suffix(path) -> str:
    return os.path.splitext(os.fspath(path))[1].lower()


def _csv_cell(text: str):
    """A CSV field as a cell: empty -> blank, a plain number -> float (the rule of a text cell,
    :func:`text_number`), anything else stays text for the panel reader to judge."""
    if is_blank(text):
        return None
    try:
        return text_number(text)
    except ValueError:
        return text


def _read_csv(path: str) -> Block:
    name = os.path.basename(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh))
    except UnicodeDecodeError:
        raise WorkbookInputError("the file is not UTF-8 text; save it as CSV UTF-8 (comma "
                                 "delimited)", name=name) from None
    except csv.Error as err:
        raise WorkbookInputError(f"not a readable CSV file ({err})", name=name) from None
    if rows and all(len(r) <= 1 for r in rows) and any(";" in r[0] or "\t" in r[0]
                                                       for r in rows if r):
        raise WorkbookInputError(
            "the rows hold ';' or tabs but no commas: the fields must be separated by commas "
            "(save it as CSV UTF-8 (comma delimited), with a decimal point)", name=name)
    return Block.of(name, [[_csv_cell(v) for v in r] for r in rows] or [[None]])


def _used_area(package, sheet: str) -> tuple[int, int, int, int] | None:
    """``(min_row, min_col, max_row, max_col)`` of the cells of ``sheet`` stored with a value
    or a formula (formatted empty cells do not count), or None for an empty sheet."""
    _info, ws = package._worksheet(sheet)  # the stored cells; XlsxPackage has no used range
    cells = [rc for rc, c in ws.cell_map().items() if len(c)]
    if not cells:
        return None
    rows, cols = [r for r, _c in cells], [c for _r, c in cells]
    return min(rows), min(cols), max(rows), max(cols)


def _without_blank_edges(values: list[list], row: int, col: int):
    """Leading and trailing blank rows and columns removed (a used area starts at a stored
    empty-string cell, say); returns the values and their new top-left cell."""
    def blank_row(r):
        return all(is_blank(v) for v in r)

    while values and blank_row(values[0]):
        values, row = values[1:], row + 1
    while values and blank_row(values[-1]):
        values = values[:-1]
    while values and values[0] and all(is_blank(r[0]) for r in values):
        values, col = [r[1:] for r in values], col + 1
    while values and values[0] and all(is_blank(r[-1]) for r in values):
        values = [r[:-1] for r in values]
    return values, row, col


def _read_workbook(path: str, sheet: str | None, ref: str | None) -> Block:
    from ._io import XlsxFileIO
    from ._xlsx_refs import format_range, parse_range, quote_sheet

    book = XlsxFileIO(path)
    package = book.package
    name = os.path.basename(path)
    names = book.names()
    if ref is not None and "!" not in ref and ref.strip().upper() in names:
        area = names[ref.strip().upper()]
        if sheet is not None and area.sheet.lower() != sheet.lower():
            raise WorkbookInputError(f"the name {ref.strip()} refers to sheet {area.sheet!r}, "
                                     f"not to --sheet {sheet!r}", name=name)
        sheet, bounds = area.sheet, (area.min_row, area.min_col, area.max_row, area.max_col)
    else:
        if ref is not None and "!" in ref:
            if sheet is not None:
                raise WorkbookInputError(f"--range {ref} names its sheet: leave out --sheet",
                                         name=name)
            sheet, ref = ref.rsplit("!", 1)
            sheet = sheet[1:-1].replace("''", "'") if sheet.startswith("'") else sheet
        sheets = package.sheet_names
        if sheet is None:
            if len(sheets) != 1:
                listed = ", ".join(repr(s) for s in sheets)
                raise WorkbookInputError(f"the workbook has the sheets {listed}: say which holds "
                                         "the prices with --sheet NAME", name=name)
            sheet = sheets[0]
        try:
            if ref is not None:
                bounds = parse_range(ref.replace("$", ""), sheet)
            else:
                bounds = _used_area(package, sheet)
        except ValueError as err:  # an unknown sheet, a chart sheet, a malformed range
            raise WorkbookInputError(str(err), name=name) from None
        if bounds is None:
            raise WorkbookInputError(f"sheet {sheet!r} is empty", name=name)
    sheet = package._sheet(sheet).name  # as the workbook spells it
    try:
        values = package.read_values(sheet, format_range(*bounds))
    except ValueError as err:
        raise WorkbookInputError(str(err), name=name) from None
    values, row, col = _without_blank_edges(values, bounds[0], bounds[1])
    if not values:
        raise WorkbookInputError(f"{format_range(*bounds)} is empty", name=quote_sheet(sheet))
    return Block(quote_sheet(sheet), values, row, col)


def read_price_block(path, sheet: str | None = None, ref: str | None = None) -> Block:
    """The cells of a price table in a file.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.csv`` file (UTF-8, comma-separated, a header row first) or an ``.xlsx``/``.xlsm``
        workbook.
    sheet : str, optional
        The workbook's sheet (needed when it has several); not for a CSV file.
    ref : str, optional
        A range of the sheet (``A1:F300``, ``Prices!A1:F300``) or a defined name of the
        workbook; default the sheet's used area. Not for a CSV file.

    Returns
    -------
    Block
        Named so that its messages say where the cell is: ``prices.csv`` with positions
        counted in the file, or the sheet with cell addresses.

    Raises
    ------
    WorkbookInputError
        A missing or unreadable file, another kind of file, an unknown sheet, range or name.
    """
    path = os.fspath(path)
    suffix = _suffix(path)
    if suffix not in (".csv", *_WORKBOOK_SUFFIXES):
        raise WorkbookInputError(f"{path}: the prices must be a .csv file or an .xlsx/.xlsm "
                                 "workbook")
    if not os.path.isfile(path):
        raise WorkbookInputError(f"no such file: {path}")
    if suffix == ".csv":
        if sheet is not None or ref is not None:
            raise WorkbookInputError(f"{path}: --sheet and --range choose a part of a workbook; "
                                     "a CSV file is read whole")
        return _read_csv(path)
    return _read_workbook(path, sheet, ref)


# --------------------------------------------------------------------------- writing
def _date_text(label) -> str:
    if isinstance(label, pd.Timestamp):
        return label.date().isoformat() if label == label.normalize() else label.isoformat()
    return repr(float(label))


def _csv_bytes(frame: pd.DataFrame) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([frame.index.name or "date", *map(str, frame.columns)])
    for label, row in zip(frame.index, frame.to_numpy(dtype=float).tolist(), strict=True):
        # repr: the shortest text that reads back as the same float
        writer.writerow([_date_text(label), *("" if math.isnan(v) else repr(v) for v in row)])
    return out.getvalue().encode("utf-8")


def _widths(frame: pd.DataFrame, header: list[str]) -> list[float]:
    """Column widths (characters) that show every header and every return in its percent
    format: the widest is the smallest or the largest return of the column (measured from the
    numbers, not cell by cell: a panel can have a million of them)."""
    first = 10 if isinstance(frame.index, pd.DatetimeIndex) else max(
        (len(f"{v:g}") for v in frame.index), default=6)
    widths = [max(first, len(header[0])) + 2.0]
    for j, name in enumerate(header[1:]):
        column = frame.iloc[:, j].dropna()
        texts = [f"{v:.2%}" for v in (column.min(), column.max())] if len(column) else []
        widths.append(max([len(name), *map(len, texts), 6]) + 2.0)
    return widths


def _write_xlsx(frame: pd.DataFrame, out: str) -> str:
    """The returns in a new workbook (sheet ``Returns``: the header row frozen, dates as dates,
    returns as numbers in a percent format, a missing return a blank cell), saved to ``out``
    by the workbook layer's writer: every float kept to the last digit (openpyxl would round
    to 16 significant digits), the file-safety checks, one atomic rename."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    from ._io import Area, XlsxFileIO

    header = [frame.index.name or "date", *map(str, frame.columns)]
    labels = (frame.index.to_pydatetime() if isinstance(frame.index, pd.DatetimeIndex)
              else frame.index.to_numpy(dtype=float).tolist())
    body = [[label, *(None if math.isnan(v) else v for v in row)]
            for label, row in zip(labels, frame.to_numpy(dtype=float).tolist(), strict=True)]
    with tempfile.TemporaryDirectory() as folder:
        skeleton = os.path.join(folder, "returns.xlsx")
        wb = Workbook()
        ws = wb.active
        ws.title = RETURNS_SHEET
        for j, name in enumerate(header, start=1):
            ws.cell(row=1, column=j, value=name).font = Font(name="Calibri", bold=True)
        wb.save(skeleton)
        book = XlsxFileIO(skeleton, out)
        n_rows, n_cols = len(body), len(header)
        book.write(Area(RETURNS_SHEET, 2, 1, n_rows + 1, n_cols), body)
        if isinstance(frame.index, pd.DatetimeIndex):
            book.set_number_format(Area(RETURNS_SHEET, 2, 1, n_rows + 1, 1), DATE_FORMAT)
        book.set_number_format(Area(RETURNS_SHEET, 2, 2, n_rows + 1, n_cols), RETURN_FORMAT)
        for j, width in enumerate(_widths(frame, header), start=1):
            book.set_column_width(RETURNS_SHEET, j, width)
        book.freeze_panes(RETURNS_SHEET, 2, 2)  # the header row and the dates
        book.save()
    return os.path.realpath(out)


def _for_out(reason: str) -> str:
    """The file-safety messages suggest ``--out``; here the way out is another OUT."""
    return (reason.replace("write to another folder with --out", "give an OUT in another folder")
            .replace("or write to another file with --out", "or give another OUT"))


def check_output(out, *, force: bool = False, source=None) -> None:
    """Refuse, before any work, an output that will not be written.

    Raises
    ------
    WorkbookInputError
        ``out`` is not ``.csv``/``.xlsx``, is the ``source`` file itself, exists and ``force``
        is False, or may not be replaced now (open in Excel or LibreOffice, locked,
        read-only, a missing or read-only folder).
    """
    from ._xlsx_guard import write_blocker

    out = os.fspath(out)
    if _suffix(out) not in OUTPUT_SUFFIXES:
        raise WorkbookInputError(f"{out}: the returns are written to a .csv or an .xlsx file")
    if source is not None and os.path.exists(out) and os.path.samefile(out, source):
        raise WorkbookInputError(f"{out} is the prices file itself: write the returns to "
                                 "another file")
    if os.path.lexists(out) and not os.path.isdir(out) and not force:
        raise WorkbookInputError(f"{out} exists: add --force to replace it")
    blocker = write_blocker(out)
    if blocker is not None:
        raise WorkbookInputError(_for_out(blocker))


def write_returns(frame: pd.DataFrame, out, *, force: bool = False) -> str:
    """Write returns to ``out`` after :func:`check_output`: a ``.csv`` (dates ISO, every float
    as its shortest exact text, a missing return empty) or an ``.xlsx`` (see
    :func:`_write_xlsx`). Returns the absolute path written.

    Raises
    ------
    WorkbookInputError
        If ``out`` may not be written (see :func:`check_output`); nothing is written then.
    """
    out = os.fspath(out)
    check_output(out, force=force)
    if _suffix(out) == ".csv":
        return write_file(out, _csv_bytes(frame), force=force)
    try:
        return _write_xlsx(frame, out)
    except WorkbookInputError as err:  # taken since the check (open, locked)
        raise WorkbookInputError(_for_out(str(err))) from None


def write_file(out, data: bytes, *, force: bool = False) -> str:
    """Write ``data`` to ``out`` in one step (temporary file, fsync, rename), after
    :func:`check_output`; an existing file keeps its permission bits. Returns the absolute
    path written."""
    from ._xlsx_guard import atomic_write

    check_output(out, force=force)
    try:
        target = atomic_write(out, lambda fh: fh.write(data))
    except WorkbookInputError as err:  # someone took a lock on the file since the check
        raise WorkbookInputError(_for_out(str(err))) from None
    return target
