"""Test helpers for the workbook layer: an in-memory workbook and demo-panel builders."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd

from xl_factorlasso.workbook import Area
from xl_factorlasso.workbook._formats import (
    DEFAULT_WIDTH,
    check_cell,
    check_columns,
    check_format_code,
    check_width_bounds,
    display_text,
    fitted_width,
)


class MemoryIO:
    """A dict-backed workbook implementing the WorkbookIO surface, recording every write.

    Formats are kept like values: ``formats[(sheet, row, col)]`` is a cell's number format
    code, ``widths[(sheet, col)]`` a column's width in characters (``fit_columns`` estimates it
    from the displayed text, as the file adapter does) and ``frozen[sheet]`` the first
    scrolling cell ``(row, col)`` of a sheet with frozen panes. ``can_format = False`` makes it
    an engine that cannot format (every format method returns False, nothing changes).
    """

    def __init__(self):
        self.cells: dict[tuple[str, int, int], object] = {}
        self.defined: dict[str, Area] = {}
        self.pictures: dict[tuple[str, str], tuple[int, int, int]] = {}
        self.formats: dict[tuple[str, int, int], str] = {}
        self.widths: dict[tuple[str, int], float] = {}
        self.frozen: dict[str, tuple[int, int]] = {}
        self.can_format = True
        self.log: list[tuple] = []
        self.saved = 0
        self.issues: dict[str, str] = {}
        self.blocker: str | None = None

    # building
    def put(self, name: str, sheet: str, row: int, col: int, values, reserve=None):
        rows = values
        for i, r in enumerate(rows):
            for j, v in enumerate(r):
                if v is not None:
                    self.cells[(sheet, row + i, col + j)] = v
        n_rows = max(len(rows), reserve[0] if reserve else 0)
        n_cols = max(max(len(r) for r in rows), reserve[1] if reserve else 0)
        self.defined[name.upper()] = Area(sheet, row, col, row + n_rows - 1, col + n_cols - 1)

    def snapshot(self):
        return copy.deepcopy((self.cells, self.defined, self.pictures, self.formats,
                              self.widths, self.frozen))

    def number_format(self, sheet: str, row: int, col: int) -> str:
        """A cell's number format code (``"General"`` when none was set)."""
        return self.formats.get((sheet, row, col), "General")

    # WorkbookIO
    def names(self):
        return dict(self.defined)

    def read(self, area):
        return [
            [self.cells.get((area.sheet, r, c)) for c in range(area.min_col, area.max_col + 1)]
            for r in range(area.min_row, area.max_row + 1)
        ]

    def write(self, area, values):
        self.log.append(("write", area))
        for i, r in enumerate(values):
            for j, v in enumerate(r):
                key = (area.sheet, area.min_row + i, area.min_col + j)
                if v is None:
                    self.cells.pop(key, None)
                else:
                    self.cells[key] = v

    def clear(self, area):
        self.log.append(("clear", area))
        for r in range(area.min_row, area.max_row + 1):
            for c in range(area.min_col, area.max_col + 1):
                self.cells.pop((area.sheet, r, c), None)

    def define_name(self, name, area):
        self.log.append(("name", name, area))
        self.defined[name.upper()] = area

    def add_picture(self, sheet, row, col, png, name, width, height):
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        self.log.append(("picture", name))
        self.pictures[(sheet, name)] = (row, col, len(png))

    def remove_picture(self, sheet, name):
        self.pictures.pop((sheet, name), None)

    def name_issues(self):
        return dict(self.issues)

    def occupied(self, area):
        return [
            (r, c, f"the value {self.cells[(area.sheet, r, c)]!r}")
            for r in range(area.min_row, area.max_row + 1)
            for c in range(area.min_col, area.max_col + 1)
            if (area.sheet, r, c) in self.cells
        ]

    def write_blocker(self):
        return self.blocker

    def save(self):
        self.saved += 1

    # formats (checked like the real adapters: bad arguments raise ValueError)
    def set_number_format(self, area, code):
        check_format_code(code, str(area))
        if not self.can_format:
            return False
        self.log.append(("number_format", area, code))
        for r in range(area.min_row, area.max_row + 1):
            for c in range(area.min_col, area.max_col + 1):
                self.formats[(area.sheet, r, c)] = code
        return True

    def set_column_width(self, sheet, first_col, width, last_col=None):
        last = first_col if last_col is None else last_col
        check_columns(sheet, first_col, last, width)
        if not self.can_format:
            return False
        self.log.append(("column_width", sheet, first_col, last, width))
        for c in range(first_col, last + 1):
            self.widths[(sheet, c)] = float(width)
        return True

    def fit_columns(self, area, min_width=DEFAULT_WIDTH, max_width=60.0):
        check_width_bounds(min_width, max_width)
        if not self.can_format:
            return False
        self.log.append(("fit_columns", area))
        for c in range(area.min_col, area.max_col + 1):
            texts = [display_text(self.cells[(area.sheet, r, c)],
                                  self.number_format(area.sheet, r, c))
                     for r in range(area.min_row, area.max_row + 1)
                     if (area.sheet, r, c) in self.cells]
            self.widths[(area.sheet, c)] = fitted_width(texts, min_width, max_width)
        return True

    def freeze_panes(self, sheet, row, col):
        check_cell(sheet, row, col)
        if not self.can_format:
            return False
        self.log.append(("freeze_panes", sheet, row, col))
        if (row, col) == (1, 1):
            self.frozen.pop(sheet, None)
        else:
            self.frozen[sheet] = (row, col)
        return True


def frame_rows(frame: pd.DataFrame, corner: str) -> list[list]:
    out = [[corner, *frame.columns]]
    for label, row in zip(frame.index, frame.to_numpy(dtype=object), strict=True):
        label = label.to_pydatetime() if isinstance(label, pd.Timestamp) else label
        out.append([label, *[None if isinstance(v, float) and np.isnan(v) else v for v in row]])
    return out


def demo_memory_book(settings=None, signs=True, prior=True, outputs=True) -> MemoryIO:
    """The demo panel laid out in a MemoryIO with every FL_* name."""
    from xl_factorlasso.core.datasets import load_demo_panel

    d = load_demo_panel()
    io = MemoryIO()
    io.put("FL_RETURNS", "Returns", 1, 1, frame_rows(d.y, "date"))
    io.put("FL_FACTORS", "Factors", 1, 1, frame_rows(d.x, "date"))
    if signs:
        io.put("FL_SIGNS", "Signs", 1, 1, frame_rows(d.signs, "asset"))
    if prior:
        io.put("FL_PRIOR", "Prior", 1, 1, frame_rows(d.prior, "asset"))
    settings = (
        settings
        if settings is not None
        else {"model_type": "HCGL", "reg_lambda": 1e-5, "span": 52, "n_clusters": 4}
    )
    io.put(
        "FL_SETTINGS",
        "Settings",
        1,
        1,
        [["key", "value"], *[[k, v] for k, v in settings.items()]],
        reserve=(20, 2),
    )
    if outputs:
        n, m = d.y.shape[1], d.x.shape[1]
        for name, sheet, row, col, shape in [
            ("FL_COEF", "Results", 1, 1, (n + 1, m + 1)),
            ("FL_R2", "Diagnostics", 1, 1, (n + 1, 2)),
            ("FL_INTERCEPT", "Diagnostics", 1, 4, (n + 1, 2)),
            ("FL_CLUSTERS", "Diagnostics", 1, 7, (n + 1, 2)),
            ("FL_RESID_VOL", "Diagnostics", 1, 10, (n + 1, 4)),
            ("FL_STATUS", "Diagnostics", 1, 15, (12, 2)),
            ("FL_CV", "CV", 1, 1, (21, 9)),
        ]:
            io.defined[name] = Area(sheet, row, col, row + shape[0] - 1, col + shape[1] - 1)
    return io
