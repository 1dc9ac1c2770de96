"""A1 references, sheet-name quoting and defined-name targets for the package editor.

Everything here is pure string work so that it can be tested without a workbook. Rows and columns
are 1-based throughout, like Excel's own A1 notation. A name on an Excel table (a structured
reference such as ``tblReturns[#All]``) is resolved against the tables an engine reports
(:class:`TableSpan`), so every engine makes the same decision with the same words.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = [
    "MAX_COL",
    "MAX_ROW",
    "StructuredRef",
    "TableSpan",
    "cell_col",
    "col_letters",
    "col_number",
    "format_range",
    "is_valid_name",
    "parse_cell",
    "parse_name_target",
    "parse_range",
    "parse_structured_ref",
    "quote_sheet",
    "resolve_table_ref",
]

MAX_ROW = 1_048_576
MAX_COL = 16_384  # XFD

_CELL_RE = re.compile(r"^\$?([A-Za-z]{1,3})\$?([0-9]{1,7})$")
_R1C1_LIKE = re.compile(r"^[RrCc]$|^[Rr][0-9]*[Cc][0-9]*$|^[Rr][0-9]+$|^[Cc][0-9]+$")
_PLAIN_SHEET = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
# One area of a defined name: Sheet!$A$1 or Sheet!$A$1:$B$2, sheet quoted or not.
_AREA_RE = re.compile(
    r"""^(?:'(?P<quoted>(?:[^']|'')+)'|(?P<plain>[^'!:,()\s\[\]]+))!
        (?P<ref>\$?[A-Za-z]{1,3}\$?[0-9]{1,7}(?::\$?[A-Za-z]{1,3}\$?[0-9]{1,7})?)$""",
    re.X,
)
_SHEET = r"(?:'(?P<quoted>(?:[^']|'')+)'|(?P<plain>[^'!:,()\s\[\]]+))"
_WHOLE_RE = re.compile(
    _SHEET + r"""!(?:\$?(?P<c1>[A-Za-z]{1,3}):\$?(?P<c2>[A-Za-z]{1,3})
                   |\$?(?P<r1>[0-9]{1,7}):\$?(?P<r2>[0-9]{1,7}))$""",
    re.X,
)
# Another workbook: [1]Data!A1 (an index into externalReferences), [other.xlsx]Data!A1,
# 'C:\dir\[other.xlsx]My Data'!A1, or a name in it: [1]!Rates.
_EXTERNAL_RE = re.compile(r"^'?(?P<dir>[^'!\[]*)\[(?P<book>[^\]]+)\]")
# Sheet1:Sheet3!A1 -- one range on several sheets.
_3D_RE = re.compile(r"^(?:'(?:[^']|'')+'|[^'!,()\s]+):(?:'(?:[^']|'')+'|[^'!,()\s]+)!")
_CONSTANT_RE = re.compile(
    r"""^(?:[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?%?  # a number
          |"(?:[^"]|"")*"                                             # a string
          |TRUE|FALSE|\#[A-Z/0!?]+[!?A]?                              # a logical, an error
          |\{[^{}]*\})$                                               # an array constant""",
    re.X | re.I,
)


@functools.lru_cache(maxsize=MAX_COL)
def col_letters(col: int) -> str:
    """Column number (1-based) to letters: 1 -> ``A``, 28 -> ``AB``."""
    letters = ""
    while col > 0:
        col, rem = divmod(col - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


@functools.lru_cache(maxsize=4 * MAX_COL)
def col_number(letters: str) -> int:
    """Column letters to number (1-based): ``A`` -> 1, ``ab`` -> 28."""
    n = 0
    for ch in letters.upper():
        n = n * 26 + ord(ch) - 64
    return n


def cell_col(ref: str) -> int:
    """Column of a cell's own ``r`` attribute (``"AB12"`` -> 28), the hot path of sheet scans.

    Only for references the file itself wrote; user input goes through :func:`parse_cell`.
    """
    return col_number(ref.rstrip("0123456789"))


def parse_cell(ref: str, where: str = "") -> tuple[int, int]:
    """Parse ``B2`` or ``$B$2`` into ``(row, col)``.

    Parameters
    ----------
    ref : str
        An A1 cell reference, absolute markers allowed.
    where : str
        Context for the error message (e.g. the sheet name).

    Raises
    ------
    ValueError
        If ``ref`` is not a cell inside Excel's grid.
    """
    m = _CELL_RE.match(ref.strip()) if isinstance(ref, str) else None
    if m:
        row, col = int(m.group(2)), col_number(m.group(1))
        if 1 <= row <= MAX_ROW and 1 <= col <= MAX_COL:
            return row, col
    ctx = f" on sheet {where!r}" if where else ""
    raise ValueError(f"bad cell reference {ref!r}{ctx}: expected A1 notation like 'B2'")


def parse_range(ref: str, where: str = "") -> tuple[int, int, int, int]:
    """Parse ``B2:D9`` (or a single cell) into ``(min_row, min_col, max_row, max_col)``.

    Corners may be given in any order; ``$`` markers are ignored.

    Raises
    ------
    ValueError
        If ``ref`` is not a rectangular A1 range inside Excel's grid.
    """
    if not isinstance(ref, str) or not ref.strip():
        ctx = f" on sheet {where!r}" if where else ""
        raise ValueError(f"bad range reference {ref!r}{ctx}: expected A1 notation like 'B2:D9'")
    parts = ref.strip().split(":")
    if len(parts) > 2:
        ctx = f" on sheet {where!r}" if where else ""
        raise ValueError(f"bad range reference {ref!r}{ctx}: expected A1 notation like 'B2:D9'")
    try:
        r1, c1 = parse_cell(parts[0], where)
        r2, c2 = parse_cell(parts[-1], where)
    except ValueError:
        ctx = f" on sheet {where!r}" if where else ""
        raise ValueError(
            f"bad range reference {ref!r}{ctx}: expected A1 notation like 'B2:D9'"
        ) from None
    return min(r1, r2), min(c1, c2), max(r1, r2), max(c1, c2)


def format_range(r1: int, c1: int, r2: int, c2: int, absolute: bool = False) -> str:
    """``(2, 2, 9, 4)`` -> ``B2:D9`` (``$B$2:$D$9`` if ``absolute``); one cell -> ``B2``."""
    d = "$" if absolute else ""
    a = f"{d}{col_letters(c1)}{d}{r1}"
    if (r1, c1) == (r2, c2):
        return a
    return f"{a}:{d}{col_letters(c2)}{d}{r2}"


def _looks_like_cell(text: str) -> bool:
    m = _CELL_RE.match(text)
    return bool(m) and col_number(m.group(1)) <= MAX_COL and int(m.group(2)) <= MAX_ROW


def quote_sheet(name: str) -> str:
    """Sheet name as it must appear in a formula: ``'My Sheet'!`` needs quotes, ``Data`` not.

    Quoting is always legal in Excel, so anything that is not a plain identifier (or that could
    be read as a cell or R1C1 reference) is quoted, with embedded quotes doubled.
    """
    if _PLAIN_SHEET.match(name) and not _looks_like_cell(name) and not _R1C1_LIKE.match(name):
        return name
    return "'" + name.replace("'", "''") + "'"


def is_valid_name(name: str) -> bool:
    """Whether ``name`` is a legal Excel defined name (not a cell or R1C1 reference)."""
    if not isinstance(name, str) or not 1 <= len(name) <= 255:
        return False
    first, rest = name[0], name[1:]
    if not (first.isalpha() or first in "_\\"):
        return False
    if not all(ch.isalnum() or ch in "_.\\?" for ch in rest):
        return False
    return not (_looks_like_cell(name) or _R1C1_LIKE.match(name))


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are outside quotes and parentheses (Excel's union operator)."""
    parts, depth, quoted, start = [], 0, False, 0
    for i, ch in enumerate(text):
        if ch == "'":
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
        elif not quoted and depth == 0 and ch == ",":
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _whole_reason(m: re.Match, body: str) -> str:
    sheet = m.group("quoted").replace("''", "'") if m.group("quoted") else m.group("plain")
    q = quote_sheet(sheet)
    if m.group("c1"):
        c1, c2 = sorted((m.group("c1").upper(), m.group("c2").upper()), key=col_number)
        what = f"the whole column {c1}" if c1 == c2 else f"the whole columns {c1}:{c2}"
        example = f"{q}!${c1}$1:${c2}$100"
    else:
        r1, r2 = sorted((int(m.group("r1")), int(m.group("r2"))))
        what = f"the whole row {r1}" if r1 == r2 else f"the whole rows {r1}:{r2}"
        example = f"{q}!$A${r1}:$J${r2}"
    return (f"refers to {what} of sheet {sheet!r} ({body}); the contract needs a bounded "
            f"range such as {example}")


# --------------------------------------------------------------------------- structured references
# [Sheet!]Table[spec]: the sheet prefix is optional (Excel may write one); a table name starts with
# a letter, "_" or "\\" like any defined name.
_STRUCTURED_RE = re.compile(
    r"""^(?:(?:'(?P<quoted>(?:[^']|'')+)'|(?P<plain>[^'!:,()\s\[\]]+))!)?
        (?P<table>(?:[^\W\d]|[_\\])[\w.\\]*)(?P<spec>\[.*\])?$""",
    re.X | re.S,
)
_SPECIALS = {
    "#all": frozenset({"headers", "data", "totals"}),
    "#data": frozenset({"data"}),
    "#headers": frozenset({"headers"}),
    "#totals": frozenset({"totals"}),
}
_THIS_ROW = ("#this row", "@")


@dataclass(frozen=True)
class StructuredRef:
    """A reference to an Excel table as a defined name holds it (``tblReturns[#All]``).

    Attributes
    ----------
    text : str
        The reference as written (without ``=``), for messages.
    sheet : str or None
        The sheet prefix if one was written (``'Returns'!tblReturns[#All]``).
    table : str
        The table name as written.
    parts : frozenset of {"headers", "data", "totals"}
        The rows it covers: ``[#All]`` is all three; a bare table name, ``[]`` and a column
        reference are ``{"data"}``, as in Excel.
    columns : tuple of str
        Columns named in it (``("SPX",)``, ``("SPX:UST",)`` for a column range); empty for
        every column.
    this_row : bool
        ``[#This Row]`` or ``[@...]``: one row, relative to the cell of the formula.
    bracketed : bool
        Whether the reference has a ``[...]`` part (a bare identifier may be a table name or
        anything else).
    """

    text: str
    sheet: str | None
    table: str
    parts: frozenset
    columns: tuple[str, ...]
    this_row: bool
    bracketed: bool


@dataclass(frozen=True)
class TableSpan:
    """Where an Excel table is now, as an engine reports it.

    Attributes
    ----------
    name : str
        The table's name (``displayName`` in the file).
    sheet : str
        The worksheet it is on.
    bounds : tuple of int
        ``(min_row, min_col, max_row, max_col)`` of the whole table: header row, data rows
        and totals row.
    header_rows, totals_rows : int
        0 or 1: whether the header row and the totals row are shown.
    damage : str or None
        Why the table's definition cannot be read (then ``bounds`` means nothing).
    """

    name: str
    sheet: str
    bounds: tuple[int, int, int, int]
    header_rows: int = 1
    totals_rows: int = 0
    damage: str | None = None


def _bracket_items(inner: str) -> list[tuple[str, str]] | None:
    """``[#Headers],[#Data]`` -> ``[("#Headers", ","), ("#Data", "")]`` (item, joiner after).

    ``'`` escapes the next character inside an item, as in Excel's column names. None if the
    text is not a sequence of bracketed items.
    """
    items, i, n = [], 0, len(inner)
    while i < n:
        while i < n and inner[i] == " ":
            i += 1
        if i >= n or inner[i] != "[":
            return None
        i += 1
        item = []
        while i < n and inner[i] != "]":
            if inner[i] == "'" and i + 1 < n:
                i += 1
            elif inner[i] == "[":
                return None
            item.append(inner[i])
            i += 1
        if i >= n:
            return None
        i += 1
        while i < n and inner[i] == " ":
            i += 1
        joiner = inner[i] if i < n else ""
        if joiner not in (",", ":", ""):
            return None
        items.append(("".join(item), joiner))
        i += 1
    return items


def parse_structured_ref(text: str) -> StructuredRef | None:
    """Parse a structured reference to a table: ``tblReturns[#All]``, ``tblReturns``,
    ``tblReturns[[#Headers],[#Data]]``, ``'Returns'!tblReturns[#All]``, ``tblReturns[SPX]``,
    ``tblReturns[[SPX]:[UST]]``, ``tblReturns[@SPX]`` ...

    Returns
    -------
    StructuredRef or None
        None if ``text`` is not of that form (a cell reference such as ``Data!A1`` parses as a
        bare identifier; only a table of that name makes it a table reference).
    """
    body = (text or "").strip()
    if body.startswith("="):
        body = body[1:].strip()
    m = _STRUCTURED_RE.match(body)
    if not m or "[" in (m.group("quoted") or ""):  # '[other.xlsx]Sheet'!... is another workbook
        return None
    sheet = m.group("quoted").replace("''", "'") if m.group("quoted") else m.group("plain")
    spec = m.group("spec")
    specials: list[str] = []
    columns: list[str] = []
    if spec is not None:
        inner = spec[1:-1].strip()
        if inner.startswith("@["):  # Table[@[Col Name]]: a column of this row
            inner = "@" + inner[2:-1] if inner.endswith("]") else inner
            spec = f"[{inner}]"
        # Table[[#Headers],[#Data]] holds several items; Table[#All] and Table[SPX] are one.
        items = _bracket_items(inner if inner.startswith("[") else spec)
        if items is None:
            return None
        pending = None
        for item, joiner in items:
            item = item.strip()
            key = item.lower()
            special = key in _SPECIALS or key in _THIS_ROW
            if special and (joiner == ":" or pending is not None):
                return None  # [#All]:[#Data] is not a reference
            if special:
                specials.append(key)
            elif key.startswith("@"):  # [@SPX]: one column of this row
                specials.append("@")
                columns.append(item[1:].strip())
            elif pending is not None:
                columns.append(f"{pending}:{item}")
                pending = None
            elif joiner == ":":
                pending = item
            elif item:
                columns.append(item)
    this_row = any(k in _THIS_ROW for k in specials)
    parts: frozenset = frozenset()
    for k in specials:
        parts |= _SPECIALS.get(k, frozenset())
    if not parts and not this_row:
        parts = _SPECIALS["#data"]
    return StructuredRef(body, sheet, m.group("table"), parts, tuple(columns), this_row,
                         spec is not None)


_ROWS = (("headers", "the header row"), ("data", "the data rows"), ("totals", "the totals row"))


def _rows_named(parts: frozenset) -> str:
    return " and ".join(text for key, text in _ROWS if key in parts)


def resolve_table_ref(
    ref: StructuredRef, tables: Mapping[str, TableSpan]
) -> tuple[str, tuple[int, int, int, int]] | str:
    """The range a contract name on a table covers now, or why it cannot be used.

    The contract reads every input with its header row, so a name must cover the header row
    and the data rows of the whole table: ``Table[#All]`` (when the table shows no totals
    row) or ``Table[[#Headers],[#Data]]``. Anything else gets a reason that says what to
    write instead: a bare ``Table`` or ``Table[#Data]`` (the data rows only, which would make
    the first data row the header), single columns, the header or totals row alone,
    ``[#This Row]``, ``[#All]`` of a table with a totals row (the totals would be read as a
    date), a table whose header row is switched off, or a table that does not exist.

    Parameters
    ----------
    ref : StructuredRef
    tables : mapping
        ``{lower-case table name: TableSpan}`` of every table in the workbook.

    Returns
    -------
    tuple or str
        ``(sheet, (min_row, min_col, max_row, max_col))``, or a phrase that follows the name.
    """
    table = tables.get(ref.table.lower())
    if table is None:
        known = ", ".join(sorted((t.name for t in tables.values()), key=str.lower)[:10])
        has = f"its tables are {known}" if known else "it has no tables"
        return (f"refers to table {ref.table!r} ({_short(ref.text)}), which is not in the "
                f"workbook ({has})")
    q = repr(table.name)
    if table.damage is not None:
        return f"refers to table {q} ({_short(ref.text)}), which cannot be read: {table.damage}"
    fix = f"define it as ={table.name}[#All]"
    if ref.sheet is not None and ref.sheet.lower() != table.sheet.lower():
        return (f"refers to table {q} on sheet {ref.sheet!r} ({_short(ref.text)}), but that "
                f"table is on sheet {table.sheet!r}; {fix}")
    if ref.this_row:
        return (f"refers to one row of table {q}, the row of the formula that uses it "
                f"({_short(ref.text)}), not a fixed range; {fix}")
    if ref.columns:
        cols = ", ".join(repr(c) if ":" not in c else "{!r} to {!r}".format(*c.split(":", 1))
                         for c in ref.columns)
        what = "column" if len(ref.columns) == 1 and ":" not in ref.columns[0] else "columns"
        return (f"refers to {what} {cols} of table {q} only ({_short(ref.text)}); the "
                f"contract reads the whole table with its header row: {fix}")
    if "headers" not in ref.parts or "data" not in ref.parts:
        if len(ref.parts) == 1 and "data" not in ref.parts:
            which = "only"
        else:
            which = "without its header row" if "headers" not in ref.parts else (
                "without its data rows")
        shown = (f"{table.name} alone means {table.name}[#Data] in Excel" if not ref.bracketed
                 else _short(ref.text))
        return (f"refers to {_rows_named(ref.parts)} of table {q} {which} ({shown}); the "
                f"contract reads the header row and the data rows: {fix}")
    if table.header_rows < 1:
        return (f"refers to table {q}, whose header row is switched off ({_short(ref.text)}); "
                "the contract reads the names in the header row: turn on Header Row in "
                "Table Design")
    r1, c1, r2, c2 = table.bounds
    if "totals" in ref.parts and table.totals_rows > 0:
        totals = format_range(r2 - table.totals_rows + 1, c1, r2, c2)
        where = f"{quote_sheet(table.sheet)}!{totals}"
        return (f"covers the totals row of table {q} ({_short(ref.text)}: {where}), which "
                "would be read as data; define it as "
                f"={table.name}[[#Headers],[#Data]] or turn off Total Row in Table Design")
    return table.sheet, (r1, c1, r2 - table.totals_rows, c2)


def parse_name_target(
    text: str,
    external_books=(),
    tables: Mapping[str, TableSpan] | Callable[[], Mapping[str, TableSpan]] = (),
) -> tuple[str, tuple[int, int, int, int]] | str:
    """Parse a defined name's formula text.

    Parameters
    ----------
    text : str
        The definition, with or without the leading ``=``.
    external_books : sequence of str, optional
        The workbook's external references in order, so that ``[1]Data!A1`` can name the book.
    tables : mapping or callable, optional
        ``{lower-case table name: TableSpan}`` of the workbook's tables, or a function that
        returns it (called only for a definition that looks like a table reference), so that
        ``tblReturns[#All]`` resolves to the table's current range (see
        :func:`resolve_table_ref`).

    Returns
    -------
    tuple or str
        ``(sheet, (min_row, min_col, max_row, max_col))`` when ``text`` is one contiguous range
        on one sheet; otherwise why it is not, as a phrase that follows the name
        (``"refers to #REF! ..."``, ``"is a multi-area reference (2 areas: ...)"``,
        ``"refers to the whole column A of sheet 'Data' ..."``, ``"refers to another workbook
        ..."``, ``"is a 3-D reference ..."``, ``"is a constant ..."``, ``"is a formula ..."``,
        the reasons of :func:`resolve_table_ref`).
    """
    body = (text or "").strip()
    if body.startswith("="):
        body = body[1:].strip()
    if not body:
        return "has an empty definition"
    if "#REF!" in body.upper():
        shown = "" if body.upper() == "#REF!" else f" ({_short(body)})"
        return (f"refers to #REF!{shown}: the cells it pointed to were deleted; define it "
                "again on the intended range")
    structured = parse_structured_ref(body)
    if structured is not None:
        known = tables() if callable(tables) else (tables or {})
        # A bare identifier is a table only if the workbook has that table (else it is a
        # cell, a constant or another name, judged below).
        if structured.bracketed or structured.table.lower() in known:
            return resolve_table_ref(structured, known)
    elif (m := _STRUCTURED_RE.match(body)) and m.group("spec") and "[" not in (
            m.group("quoted") or ""):
        return _formula_reason(body)  # Table[...] that is no reference Excel would write
    m = _EXTERNAL_RE.match(body)
    if m:
        book = m.group("book")
        if book.isdigit() and 1 <= int(book) <= len(external_books):
            book = external_books[int(book) - 1]
        else:
            book = m.group("dir") + book
        return (f"refers to another workbook ({book}: {_short(body)}); contract ranges must "
                "be in this workbook")
    m = _AREA_RE.match(body)
    if _3D_RE.match(body) or (m and ":" in (m.group("quoted") or "")):  # ':' is no sheet name
        return (f"is a 3-D reference across several sheets ({_short(body)}); the contract "
                "needs a range on one sheet")
    if m:
        sheet = m.group("quoted").replace("''", "'") if m.group("quoted") else m.group("plain")
        return sheet, parse_range(m.group("ref"))
    m = _WHOLE_RE.match(body)
    if m:
        return _whole_reason(m, body)
    inner = body
    while inner.startswith("(") and inner.endswith(")"):
        inner = inner[1:-1].strip()
    areas = [a.strip() for a in _split_top_level(inner)]
    if len(areas) > 1 and all(_AREA_RE.match(a) or _WHOLE_RE.match(a) for a in areas):
        return (f"is a multi-area reference ({len(areas)} areas: {_short(', '.join(areas))}); "
                "the contract needs one rectangular range")
    if _CONSTANT_RE.match(body):
        return f"is a constant ({_short(body)}), not a range"
    return _formula_reason(body)


def _formula_reason(body: str) -> str:
    return (f"is a formula ({_short(body)}), not a fixed range; the contract needs a plain "
            "range such as Sheet1!$B$2:$D$9")
