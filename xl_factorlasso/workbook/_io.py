"""Adapters between the contract and a real workbook: an xlwings ``Book`` or an .xlsx/.xlsm file.

Both expose the same small surface, so the jobs in :mod:`._jobs` are written once:
read everything first, compute, then write (the remote engine's reads never see its writes).
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from typing import Protocol

from ._errors import WorkbookInputError, cell_address

__all__ = ["Area", "WorkbookIO", "XlsxFileIO", "XlwingsBookIO", "open_workbook"]


@dataclass(frozen=True)
class Area:
    """A rectangular range of one sheet, 1-based and inclusive."""

    sheet: str
    min_row: int
    min_col: int
    max_row: int
    max_col: int

    @property
    def shape(self) -> tuple[int, int]:
        return self.max_row - self.min_row + 1, self.max_col - self.min_col + 1

    @property
    def ref(self) -> str:
        return (
            f"{cell_address(self.min_row, self.min_col)}:{cell_address(self.max_row, self.max_col)}"
        )

    def __str__(self) -> str:
        sheet = f"'{self.sheet}'" if re.search(r"[^A-Za-z0-9_]", self.sheet) else self.sheet
        return f"{sheet}!{self.ref}"

    def resized(self, n_rows: int, n_cols: int) -> Area:
        return Area(
            self.sheet,
            self.min_row,
            self.min_col,
            self.min_row + n_rows - 1,
            self.min_col + n_cols - 1,
        )

    def contains(self, row: int, col: int) -> bool:
        return self.min_row <= row <= self.max_row and self.min_col <= col <= self.max_col


class WorkbookIO(Protocol):
    """What the jobs need from a workbook."""

    def names(self) -> dict[str, Area]:
        """Workbook-scope names that refer to one range, keyed by upper-case name."""

    def read(self, area: Area) -> list[list]:
        """Cell values of ``area`` as rows."""

    def write(self, area: Area, values: list[list]) -> None:
        """Write ``values`` (the shape of ``area``) into ``area``."""

    def clear(self, area: Area) -> None:
        """Clear the contents (not the formats) of ``area``."""

    def define_name(self, name: str, area: Area) -> None:
        """Create or re-point a workbook-scope name."""

    def add_picture(
        self, sheet: str, row: int, col: int, png: bytes, name: str, width: int, height: int
    ) -> None:
        """Put a PNG at cell (row, col), replacing a picture of the same name."""

    def remove_picture(self, sheet: str, name: str) -> None:
        """Delete our picture ``name`` from ``sheet`` if it is there."""

    def name_issues(self) -> dict[str, str]:
        """Defined names that exist but cannot be used as one range, keyed by upper-case name,
        with the reason (``"refers to #REF!"``, ``"multi-area reference (2 areas)"``, ...).

        A name in :meth:`names` never appears here."""

    def occupied(self, area: Area) -> list[tuple[int, int, str]]:
        """Cells of ``area`` that hold anything a write would destroy or break, row-major, as
        ``(row, col, what)``: a value, a formula (even one whose cached value is ``""``), a
        comment, a merged area, a data validation, a table part."""

    def write_blocker(self) -> str | None:
        """Why the workbook cannot be written now (open in Excel, locked, read-only), or None."""

    def save(self) -> None:
        """Persist the changes (a file adapter saves atomically; a live Book needs nothing)."""


# --------------------------------------------------------------------------- file adapter
class XlsxFileIO:
    """An .xlsx/.xlsm file edited in place, part by part (VBA, ribbon, charts stay intact).

    Parameters
    ----------
    path : str or path-like
        The workbook to read and, on :meth:`save`, to write.
    out : str or path-like, optional
        Save to this path instead of ``path``.
    """

    def __init__(self, path, out=None):
        from ._xlsx import XlsxPackage

        self.path = os.fspath(path)
        self.out = os.fspath(out) if out is not None else self.path
        if not os.path.exists(self.path):
            raise WorkbookInputError(f"no such workbook: {self.path}")
        try:
            self.package = XlsxPackage.open(self.path)
        except ValueError:
            raise
        except Exception as err:  # a zip error, a missing part: say so plainly
            raise WorkbookInputError(
                f"{self.path} is not a readable .xlsx/.xlsm file ({err})"
            ) from None

    def names(self) -> dict[str, Area]:
        out = {}
        for dn in self.package.defined_names().values():
            out[dn.name.upper()] = Area(dn.sheet, dn.min_row, dn.min_col, dn.max_row, dn.max_col)
        return out

    def read(self, area: Area) -> list[list]:
        return self.package.read_values(area.sheet, area.ref)

    def write(self, area: Area, values: list[list]) -> None:
        self.package.write_values(area.sheet, cell_address(area.min_row, area.min_col), values)

    def clear(self, area: Area) -> None:
        self.package.clear_range(area.sheet, area.ref)

    def define_name(self, name: str, area: Area) -> None:
        self.package.set_defined_name(name, area.sheet, area.ref)

    def add_picture(self, sheet, row, col, png, name, width, height) -> None:
        self.package.add_picture(sheet, cell_address(row, col), png, name, width, height)

    def remove_picture(self, sheet, name) -> None:
        self.package.remove_picture(sheet, name)

    def save(self) -> None:
        self.package.save(self.out)


# --------------------------------------------------------------------------- xlwings adapter
_REF = re.compile(r"^=?(?:'((?:[^']|'')+)'|([^!]+))!\$?([A-Z]+)\$?(\d+)(?::\$?([A-Z]+)\$?(\d+))?$")


def _col_number(letters: str) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + ord(ch) - 64
    return n


def _parse_refers_to(text: str) -> Area | None:
    m = _REF.match(text.strip())
    if not m:
        return None
    sheet = (m.group(1) or m.group(2)).replace("''", "'")
    c1, r1 = _col_number(m.group(3)), int(m.group(4))
    c2, r2 = (_col_number(m.group(5)), int(m.group(6))) if m.group(5) else (c1, r1)
    return Area(sheet, min(r1, r2), min(c1, c2), max(r1, r2), max(c1, c2))


class XlwingsBookIO:
    """Any xlwings ``Book``: the desktop COM/AppleScript engine or the remote engine."""

    def __init__(self, book):
        self.book = book

    def names(self) -> dict[str, Area]:
        out = {}
        for name in self.book.names:
            if "!" in name.name:  # sheet-scope name: not part of the contract
                continue
            area = _parse_refers_to(str(name.refers_to))
            if area is not None:
                out[name.name.upper()] = area
        return out

    def _range(self, area: Area):
        sheet = self.book.sheets[area.sheet]
        return sheet.range((area.min_row, area.min_col), (area.max_row, area.max_col))

    def read(self, area: Area) -> list[list]:
        return self._range(area).options(ndim=2).value

    def write(self, area: Area, values: list[list]) -> None:
        self._range(area).value = values

    def clear(self, area: Area) -> None:
        self._range(area).clear_contents()

    def define_name(self, name: str, area: Area) -> None:
        target = "='" + area.sheet.replace("'", "''") + "'!" + _absolute(area.ref)
        existing = {n.name.upper(): n for n in self.book.names}
        if name.upper() in existing:
            try:
                existing[name.upper()].refers_to = target
                return
            except Exception:  # an engine without the setter: delete and add again
                existing[name.upper()].delete()
        self.book.names.add(name, target)

    def add_picture(self, sheet, row, col, png, name, width, height) -> None:
        sh = self.book.sheets[sheet]
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, f"{name}.png")
            with open(path, "wb") as fh:
                fh.write(png)
            anchor = sh.range((row, col))
            if name in [p.name for p in sh.pictures]:
                sh.pictures[name].delete()
            sh.pictures.add(path, name=name, anchor=anchor, width=width, height=height)

    def remove_picture(self, sheet, name) -> None:
        sh = self.book.sheets[sheet]
        if name in [p.name for p in sh.pictures]:
            sh.pictures[name].delete()

    def save(self) -> None:
        return None


def _absolute(ref: str) -> str:
    parts = []
    for cell in ref.split(":"):
        m = re.match(r"([A-Z]+)(\d+)", cell)
        parts.append(f"${m.group(1)}${m.group(2)}")
    return ":".join(parts)


def open_workbook(target, out=None) -> WorkbookIO:
    """An adapter for a path (file) or an xlwings ``Book``."""
    if isinstance(target, (str, os.PathLike)):
        return XlsxFileIO(target, out)
    if hasattr(target, "sheets") and hasattr(target, "names"):
        return XlwingsBookIO(target)
    raise TypeError(f"cannot open {type(target).__name__} as a workbook")
