"""What formats mean independently of the engine: the checks every adapter makes on its
arguments, Excel's column-width units, and the text a value displays in a number format (to size
columns where no engine measures them: the file adapter and the tests' MemoryIO).

Column widths are in Excel's *displayed* character units (what Excel's Column Width dialog and
COM's ``ColumnWidth`` show, 8.43 for a default column). A file stores Excel's padded value
(:func:`stored_width`) and Office.js takes points (:func:`column_points`); both conversions use
the default fonts' maximum digit width of 7 pixels (Calibri 11, Aptos Narrow 11). Widths that
fit a column to its content are estimated from the text each cell displays
(:func:`display_text`, :func:`text_width`): there is no font renderer here, so the estimate is
generous rather than exact.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from decimal import ROUND_HALF_UP, Context, Decimal

from ._xlsx_refs import MAX_COL, MAX_ROW

__all__ = [
    "DEFAULT_WIDTH",
    "MAX_WIDTH",
    "check_cell",
    "check_columns",
    "check_format_code",
    "check_width_bounds",
    "column_points",
    "display_text",
    "displayed_width",
    "fitted_width",
    "stored_width",
    "text_width",
]

DEFAULT_WIDTH = 8.43  # Excel's default column width in displayed characters
MAX_WIDTH = 255.0  # Excel's largest column width
_DIGIT_PX = 7  # maximum digit width of Calibri 11 / Aptos Narrow 11 at 96 dpi
_PAD_PX = 5  # Excel's cell padding


# =================================================================== arguments
def check_format_code(code, where: str) -> str:
    """``code`` if it can be a number format, else a ValueError naming ``where``."""
    if not isinstance(code, str) or not code.strip():
        raise ValueError(f"{where}: number format {code!r} is not a format code")
    if len(code) > 255:
        raise ValueError(f"{where}: number format of {len(code)} characters is longer than "
                         "Excel's 255")
    return code


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check_columns(sheet: str, first_col, last_col, width) -> None:
    """A ValueError naming the sheet unless ``first_col <= last_col`` are column numbers and
    ``width`` is a width Excel takes (0..255 characters)."""
    for col in (first_col, last_col):
        if not _is_int(col) or not 1 <= col <= MAX_COL:
            raise ValueError(f"sheet {sheet!r}: column {col!r} is not a column number "
                             f"1..{MAX_COL}")
    if last_col < first_col:
        raise ValueError(f"sheet {sheet!r}: columns {first_col}..{last_col} are in the wrong "
                         "order")
    if not _is_number(width) or not 0 <= width <= MAX_WIDTH:
        raise ValueError(f"sheet {sheet!r}: column width {width!r} is not a number of "
                         f"characters 0..{MAX_WIDTH:g}")


def check_width_bounds(min_width, max_width) -> None:
    """A ValueError unless ``0 <= min_width <= max_width <= 255``."""
    if not (_is_number(min_width) and _is_number(max_width)
            and 0 <= min_width <= max_width <= MAX_WIDTH):
        raise ValueError(f"column width bounds {min_width!r}..{max_width!r} are not "
                         f"0 <= min <= max <= {MAX_WIDTH:g} characters")


def check_cell(sheet: str, row, col) -> None:
    """A ValueError naming the sheet unless (row, col) is a cell of the grid."""
    for what, v, top in (("row", row, MAX_ROW), ("column", col, MAX_COL)):
        if not _is_int(v) or not 1 <= v <= top:
            raise ValueError(f"sheet {sheet!r}: {what} {v!r} is not a {what} number 1..{top}")


# =================================================================== widths
def stored_width(chars: float) -> float:
    """The ``<col width>`` Excel stores for a column that displays ``chars`` characters.

    ``width = trunc((chars * 7 + 5) / 7 * 256) / 256`` (ECMA-376 Part 1, 18.3.1.13, with the
    default fonts' 7-pixel maximum digit width and 5 pixels of padding); 0 stays 0 (hidden).
    """
    if chars <= 0:
        return 0.0
    return math.trunc((chars * _DIGIT_PX + _PAD_PX) / _DIGIT_PX * 256) / 256


def displayed_width(stored: float) -> float:
    """Inverse of :func:`stored_width`, rounded to Excel's two decimals."""
    if stored <= 0:
        return 0.0
    px = math.trunc((256 * stored + math.trunc(128 / _DIGIT_PX)) / 256 * _DIGIT_PX)
    return max(0.0, round((px - _PAD_PX) / _DIGIT_PX, 2))


def column_points(chars: float) -> float:
    """Column width in points (what Office.js takes) for ``chars`` displayed characters:
    ``(7 * chars + 5)`` pixels at 0.75 points each (8.43 -> 48 points, Excel's default)."""
    return 0.0 if chars <= 0 else (round(chars * _DIGIT_PX) + _PAD_PX) * 0.75


# Relative widths of Calibri's glyphs against its digits (the unit of a column width).
_NARROW = frozenset("fijlrtI.,:;'!|` ")
_SLIM = frozenset("()[]{}-\"/\\sJ")
_WIDE = frozenset("mwMW@%&")


def text_width(text: str) -> float:
    """Approximate width of ``text`` in digit widths (the unit of a column width)."""
    total = 0.0
    for ch in text:
        if ch in _NARROW:
            total += 0.5
        elif ch in _SLIM:
            total += 0.7
        elif ch in _WIDE:
            total += 1.5
        elif ch.isupper():
            total += 1.2
        else:
            total += 1.0
    return total


def fitted_width(texts, min_width: float = DEFAULT_WIDTH, max_width: float = 60.0) -> float:
    """A column width (displayed characters) that shows every text of ``texts``.

    The widest text's :func:`text_width` plus 10% (bold headers) and one character, clamped to
    ``[min_width, max_width]`` and rounded up to a whole pixel -- the widths Excel can show, so
    that the width reads back unchanged (``11.43`` is 80 pixels, ``8.43`` Excel's default).
    """
    widest = max((text_width(t) for t in texts), default=0.0)
    chars = widest * 1.1 + 1.0 if widest else 0.0
    chars = min(max(chars, min_width), max_width)
    # Widths are given to two decimals: 8.43 means 59 pixels, not 59.01 rounded up to 60.
    return round(math.ceil(chars * _DIGIT_PX - 0.05) / _DIGIT_PX, 2)


# =================================================================== display text
# One token of a number-format section: a quoted literal, an escaped character, a [colour] or
# [condition], a _x space, a *x fill, an exponent, a placeholder or any other character.
_TOKEN = re.compile(r'"[^"]*"|\\.|\[[^\]]*\]|_.|\*.|[Ee][+-]|.', re.S)


def _sections(code: str) -> list[str]:
    """Sections of a format code split on ``;`` outside quotes and escapes."""
    out, buf = [], ""
    for token in _TOKEN.findall(code):
        if token == ";":
            out.append(buf)
            buf = ""
        else:
            buf += token
    return [*out, buf]


def _literal(token: str) -> str:
    """The text a non-placeholder token shows."""
    if token.startswith('"'):
        return token[1:-1]
    if token.startswith("\\"):
        return token[1:]
    if token.startswith("_"):
        return " "  # a space as wide as the character that follows
    if token.startswith(("*", "[")):
        return ""  # a fill (no width of its own), a colour or condition
    return token


def _is_date_code(code: str) -> bool:
    return any(t[0] in "dmyhsDMYHS" for t in _TOKEN.findall(_sections(code)[0])
               if len(t) == 1) and code.lower() != "general"


def _date_text(code: str) -> str:
    """A stand-in of the longest text ``code`` shows for a date (for widths, not display)."""
    out = []
    tokens = _TOKEN.findall(_sections(code)[0])
    i = 0
    while i < len(tokens):
        t = tokens[i]
        if len(t) == 1 and t.lower() in "dmyhs":
            run = t
            while i + 1 < len(tokens) and tokens[i + 1].lower() == t.lower():
                i += 1
                run += tokens[i]
            n, kind = len(run), t.lower()
            if kind == "m" and n >= 4 or kind == "d" and n >= 4:
                out.append("September" if kind == "m" else "Wednesday")
            elif kind in "md" and n == 3:
                out.append("Sep")
            else:
                out.append("0" * max(n, 2 if kind != "y" else n))
        elif "".join(tokens[i:i + 5]).lower() == "am/pm":
            out.append("AM")
            i += 4
        else:
            out.append(_literal(t))
        i += 1
    return "".join(out)


def _general(v: float) -> str:
    """Excel's General format: at most 11 characters, scientific when a number needs more."""
    if v == 0:
        return "0"
    for digits in range(10, 0, -1):
        fixed = f"{v:.{digits}g}"
        if "e" not in fixed and len(fixed) <= 11:
            return fixed
        mant, exp = f"{v:.{digits - 1}E}".split("E")
        if "." in mant:
            mant = mant.rstrip("0").rstrip(".")
        sci = f"{mant}E{exp[0]}{exp[1:].zfill(2)}"
        if len(sci) <= 11:
            return sci
    return f"{v:.0E}"


#: Digits before the point of the largest float (1.8e308).
_FLOAT_DIGITS = 310


def _number_text(v: float, section: str, sign: str) -> str:
    tokens = _TOKEN.findall(section)
    digits = [i for i, t in enumerate(tokens) if t in ("0", "#", "?")]
    if not digits:  # a section of text only: shows that text
        return "".join(_literal(t) for t in tokens)
    first, last = digits[0], digits[-1]
    core = tokens[first:last + 1]
    v = abs(v) * 100 ** tokens.count("%")
    exp = next((k for k, t in enumerate(core) if t[0] in "Ee" and len(t) == 2), None)
    mantissa = core[:exp] if exp is not None else core
    decimals = (sum(t in ("0", "#", "?") for t in mantissa[mantissa.index(".") + 1:])
                if "." in mantissa else 0)
    if exp is not None:
        mant, power = f"{v:.{decimals}E}".split("E")
        width = sum(t in ("0", "#", "?") for t in core[exp + 1:]) or 1
        number = f"{mant}{core[exp][0]}{power[0]}{power[1:].lstrip('0').zfill(width)}"
    else:
        thousands = "," in mantissa[: mantissa.index(".")] if "." in mantissa else (
            "," in mantissa)
        # Excel rounds halves away from zero (Python's format rounds them to even); the
        # precision holds every digit of the largest float (the default 28 digits raised
        # InvalidOperation on 1e30 and stopped the job after its outputs were computed)
        rounded = Decimal(repr(v)).quantize(Decimal(1).scaleb(-decimals), ROUND_HALF_UP,
                                            Context(prec=_FLOAT_DIGITS + decimals))
        number = f"{rounded:{',' if thousands else ''}.{decimals}f}"
    prefix = "".join(_literal(t) for t in tokens[:first])
    suffix = "".join(_literal(t) for t in tokens[last + 1:])
    return prefix + sign + number + suffix


def display_text(value, code: str = "General") -> str:
    """Approximately what Excel shows for ``value`` in a cell with number format ``code``.

    Used to size columns: exact for the codes the jobs write (``General``, ``0.000``,
    ``#,##0.00``, ``0.0%``, ``0.00E+00``, ``yyyy-mm-dd``) and for literal prefixes and
    suffixes, a same-length stand-in for other date codes (month names as ``September``).
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, str):
        return value
    if isinstance(value, (_dt.date, _dt.datetime)):
        return _date_text(code) if _is_date_code(code) else value.isoformat()
    if not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        return str(value)
    v = float(value)
    if not code or code.lower() == "general" or code == "@":
        return _general(v)
    if _is_date_code(code):
        return _date_text(code)
    sections = _sections(code)
    if v < 0 and len(sections) > 1:
        return _number_text(v, sections[1], "")
    if v == 0 and len(sections) > 2:
        return _number_text(v, sections[2], "")
    return _number_text(v, sections[0], "-" if v < 0 else "")
