"""Errors of the workbook layer: they name the range and the cell."""

from __future__ import annotations

__all__ = ["WorkbookInputError", "cell_address", "column_letter"]


def column_letter(col: int) -> str:
    """1-based column number -> Excel letters (1 -> A, 27 -> AA)."""
    if col < 1:
        raise ValueError(f"column {col} < 1")
    letters = ""
    while col:
        col, rem = divmod(col - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def cell_address(row: int, col: int) -> str:
    """1-based (row, column) -> ``C7``."""
    return f"{column_letter(col)}{row}"


class WorkbookInputError(ValueError):
    """Bad input in a workbook; ``str()`` is the message to show the user.

    Attributes
    ----------
    name : str or None
        The contract name (``FL_SIGNS``) or worksheet-function argument concerned.
    cell : str or None
        The cell (``C7``) when one cell is at fault.
    """

    def __init__(self, message: str, name: str | None = None, cell: str | None = None):
        where = ""
        if name and cell:
            where = f"{name}!{cell}: "
        elif name:
            where = f"{name}: "
        super().__init__(where + message)
        self.name = name
        self.cell = cell
        self.detail = message
