"""How each output table is shown: number formats per column or per row, label widths, and
frozen header rows. The jobs apply this after writing; an engine that cannot format skips it.

Returns, volatilities, weights and R² read as percentages; loadings with three decimals;
penalties and objectives in scientific notation. The values in the cells stay full precision:
a format only changes what is displayed.
"""

from __future__ import annotations

from ._io import Area, WorkbookIO

__all__ = ["COLUMN_FORMATS", "ROW_FORMATS", "apply_formats"]

PERCENT1, PERCENT2, PERCENT3 = "0.0%", "0.00%", "0.000%"
SCIENTIFIC = "0.000E+00"
DATE = "yyyy-mm-dd"

#: Output -> format of its data columns: one code for every column after the labels, or a list
#: with one code per column after the labels (the last one repeats).
COLUMN_FORMATS: dict[str, str | list[str | None]] = {
    "FL_COEF": "0.000",
    "FL_DERIVED_SIGNS": "0",
    "FL_PRIOR_USED": "0.000",
    "FL_INTERCEPT": PERCENT3,
    "FL_R2": PERCENT1,
    "FL_CLUSTERS": "0",
    "FL_RESID_VOL": PERCENT2,
    "FL_CV": [PERCENT1],  # the lambda column (the labels) is formatted below
    "FL_WEIGHTS": PERCENT2,
    "FL_RISK": ["0.000", PERCENT2, PERCENT1],
    "FL_RISK_ASSETS": [PERCENT2, PERCENT2, PERCENT1, PERCENT2],
    # the histories: dates down (formatted below); FL_BETA_HISTORY's asset and factor are text
    "FL_BETA_HISTORY": [None, None, "0.000"],
    "FL_R2_HISTORY": PERCENT1,
    "FL_RESID_VOL_HISTORY": PERCENT2,
    "FL_CLUSTER_HISTORY": "0",
    "FL_WEIGHT_HISTORY": PERCENT2,
    "FL_BACKTEST": PERCENT2,
    # strategy | gross/net | mean, vol, Sharpe, Sortino, max drawdown, Calmar, turnover, costs
    "FL_BACKTEST_STATS": [None, PERCENT2, PERCENT2, "0.00", "0.00", PERCENT2, "0.00", PERCENT1,
                          PERCENT3],
}
#: Item tables (``item | value ...``): format of the values of each item's row.
ROW_FORMATS: dict[str, dict[str, str]] = {
    "FL_PORTFOLIO_STATS": {
        "annualization_factor": "0",
        "diversification_ratio": "0.000",
        "volatility": PERCENT2,
        "mean": PERCENT2,
        "standard_deviation": PERCENT2,
        "sharpe_ratio": "0.00",
        "diversification": "0.000",
        "turnover": PERCENT2,
        "total_cost": PERCENT3,
        "total_fee": PERCENT3,
        "effective_number_assets": "0.0",
        "observations": "0",
        "n_invested": "0",
    },
    "FL_STATUS": {
        "reg_lambda": SCIENTIFIC,
        "lambda_max": SCIENTIFIC,
        "objective": SCIENTIFIC,
        "cv_best_score": PERCENT1,
        "cost per unit traded": PERCENT3,  # the backtest's: 0.001 reads 0.100%
    },
}
#: Label columns formatted apart from the data (FL_CV's first column is the penalty; the
#: histories' and the backtest's are dates).
LABEL_FORMATS = {"FL_CV": SCIENTIFIC, "FL_BETA_HISTORY": DATE, "FL_R2_HISTORY": DATE,
                 "FL_RESID_VOL_HISTORY": DATE, "FL_CLUSTER_HISTORY": DATE,
                 "FL_WEIGHT_HISTORY": DATE, "FL_BACKTEST": DATE}
MAX_WIDTH = 40.0  # characters: a long label is cut in the cell rather than pushing tables away


def _column_codes(name: str, n_cols: int) -> list[str | None]:
    spec = COLUMN_FORMATS.get(name)
    if spec is None:
        return [None] * (n_cols - 1)
    codes = [spec] if isinstance(spec, str) else list(spec)
    return [codes[min(j, len(codes) - 1)] for j in range(n_cols - 1)]


def apply_formats(io: WorkbookIO, placed: list[tuple[object, Area]]) -> list[str]:
    """Format every written table (``(OutputTable, target area)``): number formats, the widths
    of its columns, and a frozen header row on sheets whose outputs start in row 1.

    Returns what could not be applied (an engine without formats), for a note; never raises
    for a format the engine cannot show.
    """
    skipped: set[str] = set()
    frozen: dict[str, tuple[int, int]] = {}
    for table, area in placed:
        rows, cols = area.shape
        sheet = area.sheet
        ok = True
        if rows > 1:
            label = LABEL_FORMATS.get(table.name)
            if label is not None:
                ok &= io.set_number_format(
                    Area(sheet, area.min_row + 1, area.min_col, area.max_row, area.min_col), label)
            for j, code in enumerate(_column_codes(table.name, cols), start=1):
                if code is not None:
                    col = area.min_col + j
                    ok &= io.set_number_format(
                        Area(sheet, area.min_row + 1, col, area.max_row, col), code)
            for i, row in enumerate(table.values[1:], start=1):
                code = ROW_FORMATS.get(table.name, {}).get(row[0] if row else None)
                if code is not None and cols > 1:
                    r = area.min_row + i
                    ok &= io.set_number_format(Area(sheet, r, area.min_col + 1, r, area.max_col),
                                               code)
        if area.min_row == 1:
            # Row 1 headers stay in view; FL_COEF's asset column too (a wide factor table).
            col = 2 if table.name == "FL_COEF" and area.min_col == 1 else 1
            frozen[sheet] = max(frozen.get(sheet, (2, 1)), (2, col))
        if not ok:
            skipped.add(table.name)
    for fit, names in _fit_areas(placed):
        if not io.fit_columns(fit, max_width=MAX_WIDTH):
            skipped.update(names)
    for sheet, (row, col) in frozen.items():
        if not io.freeze_panes(sheet, row, col):
            skipped.add(f"frozen header of {sheet}")
    return sorted(skipped)


def _fit_areas(placed: list[tuple[object, Area]]) -> list[tuple[Area, list[str]]]:
    """The areas whose columns are fitted, with the tables in each: a table alone, or the
    box around tables of one sheet that share columns (fitted one after the other, the last
    table's AutoFit would narrow a column to its own text and cut the other's, e.g. the
    backtest's header under its statistics)."""
    groups: list[tuple[Area, list[str]]] = []
    for table, area in placed:
        box, names = area, [table.name]
        merged = True
        while merged:  # a grown box may now share columns with another group
            merged = False
            for i, (other, other_names) in enumerate(groups):
                if other.sheet == box.sheet and other.min_col <= box.max_col and \
                        box.min_col <= other.max_col:
                    box = Area(box.sheet, min(box.min_row, other.min_row),
                               min(box.min_col, other.min_col), max(box.max_row, other.max_row),
                               max(box.max_col, other.max_col))
                    names = other_names + names
                    del groups[i]
                    merged = True
                    break
        groups.append((box, names))
    return groups
