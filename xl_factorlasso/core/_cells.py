"""Cells that should hold numbers: the one test the data paths share (factor and return
panels, a backtest's returns, prices), each caller naming the cell in its own words."""

from __future__ import annotations

import numpy as np
import pandas as pd


def numbers_in(column: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """``(numbers, bad)``: ``column`` as numbers, NaN where a cell is missing or is not a
    number, and a boolean array marking the cells that hold something (text, a date) that is
    not a number, which a caller must refuse rather than read as missing."""
    numbers = pd.to_numeric(column, errors="coerce")
    return numbers, numbers.isna().to_numpy() & column.notna().to_numpy()
