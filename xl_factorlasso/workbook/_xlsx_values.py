"""Cell value types and conversions between Python values and SpreadsheetML cell content."""

from __future__ import annotations

import datetime as _dt
import decimal
import math
import numbers
import re
import sys
from dataclasses import dataclass

__all__ = [
    "ERROR_CODES",
    "BadValue",
    "ExcelError",
    "FormulaNoValue",
    "describe_value",
    "encode_value",
    "from_serial",
    "to_serial",
    "unescape_text",
]

# Error values Excel can store in a cell (ST_CellValue of t="e"); newer ones come from the calc
# engine of Excel 365 and can appear as cached results, so reading accepts any '#...' text.
ERROR_CODES = ("#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#N/A", "#GETTING_DATA")
MAX_TEXT = 32_767  # Excel's limit on characters in one cell

_EPOCH_1900 = _dt.datetime(1899, 12, 30)
_EPOCH_1904 = _dt.datetime(1904, 1, 1)
_ESCAPED = re.compile(r"_x([0-9A-Fa-f]{4})_")
_ILLEGAL_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


class ExcelError(str):
    """An Excel error value such as ``#N/A`` or ``#DIV/0!`` read from a cell.

    A ``str`` subclass so that it prints naturally, yet distinguishable from a text cell that
    merely contains the same characters (``isinstance(v, ExcelError)``). Writing an instance
    writes a real error cell.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"ExcelError({str.__repr__(self)})"


@dataclass(frozen=True)
class FormulaNoValue:
    """Marker for a formula cell that has no cached result (never calculated, e.g. by openpyxl).

    Attributes
    ----------
    formula : str
        The formula text without the leading ``=`` (empty for the dependent cells of a shared
        formula, which store no text of their own).
    """

    formula: str = ""


@dataclass(frozen=True)
class BadValue:
    """Marker for a cell whose stored content is not a valid Excel value.

    Excel never writes such a cell (``<v>NaN</v>``, ``<v>INF</v>``, an unparsable number, a
    shared-string index out of range, a malformed ISO date); a damaged or hand-made file can.
    Readers return this marker instead of raising, so that the workbook layer can name the cell
    in the user's terms (``FL_RETURNS!C5``) rather than the sheet's.

    Attributes
    ----------
    text : str
        The stored content, as found.
    reason : str
        What is wrong with it, as a phrase (``"the stored number 'NaN' is not finite"``).
    """

    text: str
    reason: str


def describe_value(value) -> str:
    """A cell value as a message names it: ``the value 'mine'``, ``the value 12.5``,
    ``the date 2024-01-05``, ``the error value #N/A``, ``the damaged value 'NaN'``."""
    if isinstance(value, BadValue):
        return f"the damaged value {value.text!r}"
    if isinstance(value, ExcelError):
        return f"the error value {value}"
    if isinstance(value, bool):
        return f"the value {'TRUE' if value else 'FALSE'}"
    if isinstance(value, float):
        shown = str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
        return f"the value {shown}"
    if isinstance(value, _dt.datetime):
        shown = value.date().isoformat() if value.time() == _dt.time() else str(value)
        return f"the date {shown}"
    return f"the value {value!r}"


def to_serial(value, date1904: bool = False) -> float:
    """Python date/datetime/time/timedelta -> Excel serial number.

    The 1900 system reproduces Excel's fictitious 29 Feb 1900, so serials before 1 Mar 1900 are
    one less than a plain day count.

    Raises
    ------
    ValueError
        For time-zone aware datetimes and dates before the workbook's epoch.
    """
    if isinstance(value, _dt.timedelta):
        return value.total_seconds() / 86400.0
    if isinstance(value, _dt.time):
        if value.tzinfo is not None:
            raise ValueError("time-zone aware times cannot be stored in Excel")
        return (value.hour * 3600 + value.minute * 60 + value.second
                + value.microsecond / 1e6) / 86400.0
    if not isinstance(value, _dt.datetime):
        value = _dt.datetime(value.year, value.month, value.day)
    if value.tzinfo is not None:
        raise ValueError("time-zone aware datetimes cannot be stored in Excel; convert to naive")
    epoch = _EPOCH_1904 if date1904 else _EPOCH_1900
    delta = value - epoch
    serial = delta.days + delta.seconds / 86400.0 + delta.microseconds / 86400e6
    if not date1904:
        if serial < 2:  # before 1900-01-01
            raise ValueError(f"{value.isoformat()} is before Excel's 1900 date system")
        if serial < 61:
            serial -= 1
    elif serial < 0:
        raise ValueError(f"{value.isoformat()} is before Excel's 1904 date system")
    return serial


def from_serial(serial: float, date1904: bool = False) -> _dt.datetime | float:
    """Excel serial number -> datetime (millisecond precision, like Excel).

    Negative serials are not dates in Excel and come back unchanged as floats.
    """
    if serial < 0 or not math.isfinite(serial):
        return serial
    if date1904:
        epoch = _EPOCH_1904
    else:
        # Serials 1..60 count from 1899-12-31 because of the fictitious 1900-02-29 (serial 60).
        epoch = _EPOCH_1900 if serial >= 61 else _EPOCH_1900 + _dt.timedelta(days=1)
    try:
        return epoch + _dt.timedelta(milliseconds=round(serial * 86_400_000))
    except OverflowError:
        return serial


def unescape_text(text: str) -> str:
    """Decode SpreadsheetML's ``_xHHHH_`` escapes (used for control characters)."""
    if "_x" not in text:
        return text
    return _ESCAPED.sub(lambda m: chr(int(m.group(1), 16)), text)


def _escape_text(text: str) -> str:
    # A literal '_x0041_' must survive a round trip, so its underscore is escaped first.
    text = _ESCAPED.sub(lambda m: "_x005F_" + m.group(0)[1:], text)
    return _ILLEGAL_XML.sub(lambda m: f"_x{ord(m.group(0)):04X}_", text)


def _is_missing(value) -> bool:
    if value is None:
        return True
    pandas = sys.modules.get("pandas")
    if pandas is not None and value is getattr(pandas, "NA", object()):
        return True
    try:
        # NaN and pandas.NaT are the only values not equal to themselves.
        return bool(value != value)
    except (TypeError, ValueError):
        return False


def encode_value(value, cell: str, date1904: bool = False) -> tuple[str, str] | None:
    """Python value -> ``(kind, text)`` for one cell, or ``None`` for "clear the value".

    ``kind`` is ``"n"`` (number, ``text`` is the lexical double), ``"s"`` (text, written as an
    inline string), ``"b"`` (``"1"``/``"0"``) or ``"e"`` (error code). NaN, ``pandas.NA`` and
    ``NaT`` clear the cell, as xlwings does.

    Raises
    ------
    ValueError
        Naming ``cell`` for infinities, unsupported types, over-long or unencodable text.
    """
    # Fast paths for the types a refit writes by the hundred thousand.
    kind = type(value)
    if kind is float:
        if math.isfinite(value):
            return "n", repr(value)
        if value != value:
            return None
        raise ValueError(f"{cell}: {value} cannot be stored in an Excel cell")
    if kind is str and len(value) <= MAX_TEXT and "_x" not in value and (
        not _ILLEGAL_XML.search(value)
    ):
        try:
            value.encode("utf-8")
            return "s", value
        except UnicodeEncodeError:
            pass  # the slow path below names the problem
    if _is_missing(value):
        return None
    if isinstance(value, ExcelError):
        if value not in ERROR_CODES:
            raise ValueError(f"{cell}: {str(value)!r} is not an Excel error value {ERROR_CODES}")
        return "e", str(value)
    if isinstance(value, bool) or getattr(getattr(value, "dtype", None), "kind", "") == "b":
        return "b", "1" if bool(value) else "0"
    if isinstance(value, str):
        if len(value) > MAX_TEXT:
            raise ValueError(f"{cell}: text of {len(value)} characters exceeds Excel's {MAX_TEXT}")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(f"{cell}: text is not valid Unicode ({exc.reason})") from None
        return "s", _escape_text(value)
    if getattr(getattr(value, "dtype", None), "kind", "") == "M":  # numpy.datetime64
        value = value.astype("datetime64[us]").item()
        if value is None:  # NaT
            return None
    if isinstance(value, (_dt.date, _dt.time, _dt.timedelta)):
        if hasattr(value, "to_pydatetime"):  # pandas.Timestamp keeps nanoseconds otherwise
            value = value.to_pydatetime()
        try:
            return "n", repr(to_serial(value, date1904))
        except ValueError as exc:
            raise ValueError(f"{cell}: {exc}") from None
    if isinstance(value, numbers.Integral):
        value = int(value)
        return "n", str(value) if abs(value) < 10**15 else repr(float(value))
    if isinstance(value, (numbers.Real, decimal.Decimal)):
        x = float(value)
        if not math.isfinite(x):
            raise ValueError(f"{cell}: {x} cannot be stored in an Excel cell")
        return "n", repr(x)
    raise ValueError(f"{cell}: cannot write a value of type {type(value).__name__}")
