"""Build a fresh workbook that follows the contract, filled with a panel's data.

Used by ``xl-factorlasso demo`` and by the tests; the template build (``workbook_template/``)
adds the ribbon, VBA and documentation sheets on top of the same layout.

Every input is an Excel table (a ListObject, :data:`TABLES`) and its FL_* name refers to the
whole table (``=tblReturns[#All]``): Excel extends a table when a user pastes rows under it or
types a column beside it, and the name follows. The outputs are plain named ranges that the
jobs resize.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from ._contract import spec
from ._errors import column_letter

__all__ = ["LAYOUT", "TABLES", "build_workbook"]

# name -> (sheet, top-left row, top-left column); sizes come from the data.
LAYOUT: dict[str, tuple[str, int, int]] = {
    "FL_RETURNS": ("Returns", 1, 1),
    "FL_FACTORS": ("Factors", 1, 1),
    "FL_SIGNS": ("Signs", 1, 1),
    "FL_PRIOR": ("Prior", 1, 1),
    "FL_SETTINGS": ("Settings", 1, 1),
    "FL_GROUPS": ("Settings", 1, 5),
    "FL_PRIOR_FACTOR": ("Settings", 1, 8),
    "FL_EXCLUDED": ("Settings", 1, 12),
    "FL_COEF": ("Results", 1, 1),
    # its own sheet: beside FL_COEF it would stop FL_COEF and its heatmap from growing
    "FL_DERIVED_SIGNS": ("DerivedSigns", 1, 1),
    "FL_PRIOR_USED": ("PriorUsed", 1, 1),
    "FL_STATUS": ("Diagnostics", 1, 1),
    "FL_R2": ("Diagnostics", 1, 4),
    "FL_INTERCEPT": ("Diagnostics", 1, 7),
    "FL_CLUSTERS": ("Diagnostics", 1, 10),
    "FL_RESID_VOL": ("Diagnostics", 1, 13),
    "FL_CV": ("CV", 1, 1),
    "FL_PORTFOLIO_SETTINGS": ("Portfolio", 1, 1),
    "FL_CONSTRAINTS": ("Portfolio", 1, 4),
    "FL_PREV_WEIGHTS": ("Portfolio", 1, 6),
    "FL_WEIGHTS": ("Portfolio", 1, 9),
    "FL_PORTFOLIO_STATS": ("Portfolio", 1, 12),
    "FL_ASSET_GROUPS": ("AssetGroups", 1, 1),
    "FL_RISK": ("Risk", 1, 1),
    "FL_RISK_ASSETS": ("Risk", 1, 10),  # right of the attribution chart under FL_RISK
    # its own sheet, as FL_PRIOR (an assets x factors table grows down and across); the last
    # sheet, so that the sheets before it keep their places
    "FL_EXPOSURE_BUDGET": ("ExposureBudget", 1, 1),
    # the walk-forward backtest (after the sheets above, which keep their places): its
    # settings, then one sheet per history (each grows down with the dates and across with
    # the assets); FL_BACKTEST under its statistics, its chart beside it
    "FL_ROLLING_SETTINGS": ("Rolling", 1, 1),
    "FL_BACKTEST_STATS": ("Backtest", 1, 1),
    "FL_BACKTEST": ("Backtest", 12, 1),
    "FL_WEIGHT_HISTORY": ("WeightHistory", 1, 1),
    "FL_BETA_HISTORY": ("BetaHistory", 1, 1),
    "FL_R2_HISTORY": ("R2History", 1, 1),
    "FL_RESID_VOL_HISTORY": ("ResidVolHistory", 1, 1),
    "FL_CLUSTER_HISTORY": ("ClusterHistory", 1, 1),
}

#: Input name -> the Excel table holding it; the name is defined as ``=<table>[#All]``.
TABLES: dict[str, str] = {
    "FL_RETURNS": "tblReturns",
    "FL_FACTORS": "tblFactors",
    "FL_SIGNS": "tblSigns",
    "FL_PRIOR": "tblPrior",
    "FL_SETTINGS": "tblSettings",
    "FL_GROUPS": "tblGroups",
    "FL_PRIOR_FACTOR": "tblPriorFactor",
    "FL_EXCLUDED": "tblExcluded",
    "FL_EXPOSURE_BUDGET": "tblExposureBudget",
    "FL_PORTFOLIO_SETTINGS": "tblPortfolioSettings",
    "FL_CONSTRAINTS": "tblConstraints",
    "FL_PREV_WEIGHTS": "tblPrevWeights",
    "FL_ASSET_GROUPS": "tblAssetGroups",
    "FL_ROLLING_SETTINGS": "tblRollingSettings",
}
# Light lines, no banding: the yellow input fills stay readable.
_TABLE_STYLE = "TableStyleLight1"

_INPUT_FILL = "FFF2CC"
_OUTPUT_FILL = "DDEBF7"
_MODEL_TYPES = "LASSO,GROUP_LASSO,HCGL,FCGL,COOPERATIVE_GROUP_LASSO,COOPERATIVE_CLUSTER_GROUP_LASSO"


def _frame_rows(frame: pd.DataFrame, corner: str) -> list[list]:
    rows = [[corner, *[str(c) for c in frame.columns]]]
    for label, values in zip(frame.index, frame.to_numpy(dtype=object), strict=True):
        label = label.to_pydatetime() if isinstance(label, pd.Timestamp) else label
        rows.append(
            [label, *[None if (isinstance(v, float) and np.isnan(v)) else v for v in values]]
        )
    return rows


def build_workbook(
    path,
    *,
    returns: pd.DataFrame,
    factors: pd.DataFrame,
    signs: pd.DataFrame | None = None,
    prior: pd.DataFrame | None = None,
    groups: pd.Series | None = None,
    settings: dict | None = None,
    portfolio_settings: dict | None = None,
    constraints: list[str] | None = None,
    asset_groups: pd.DataFrame | None = None,
    rolling_settings: dict | None = None,
    description: str = "",
    readable: bool = False,
    tables: bool = True,
) -> str:
    """Write a new .xlsx with every FL_* name defined and the inputs filled in.

    Output names get areas of the size their tables will have, so a first refit needs no room
    beyond them. With ``readable``, the inputs get number formats (returns ``0.0000``, prior
    loadings ``0.00``, dates ``yyyy-mm-dd``), columns as wide as their content and every sheet
    of the layout its header row frozen (and its label column, where rows have labels).

    With ``tables`` (the default) every input is an Excel table (:data:`TABLES`), without
    filter buttons, and its name is ``=<table>[#All]``; without, a plain named range. Either
    way a name covers the same cells: the header row and the data, and for the key | value,
    list and series inputs blank rows below them to type more (30 rows in all; ``FL_GROUPS``
    one per asset). An empty input gets one blank data row (a table has at least one).

    Returns the path written.

    Raises
    ------
    ValueError
        With ``tables``, if an input's header row repeats a name (an Excel table needs unique
        column names): the input and the repeated name are named.
    """
    from openpyxl import Workbook
    from openpyxl.styles import Font, PatternFill
    from openpyxl.workbook.defined_name import DefinedName
    from openpyxl.worksheet.datavalidation import DataValidation

    n_assets, n_factors = returns.shape[1], factors.shape[1]
    cells: dict[str, list[list]] = {
        "FL_RETURNS": _frame_rows(returns, "date"),
        "FL_FACTORS": _frame_rows(factors, "date"),
        "FL_SETTINGS": [["key", "value"], *[[k, v] for k, v in (settings or {}).items()]],
        "FL_PORTFOLIO_SETTINGS": [
            ["key", "value"],
            *[[k, v] for k, v in (portfolio_settings or {}).items()],
        ],
        "FL_ROLLING_SETTINGS": [
            ["key", "value"],
            *[[k, v] for k, v in (rolling_settings or {}).items()],
        ],
        "FL_CONSTRAINTS": [["constraint"], *[[c] for c in (constraints or [])]],
        "FL_PREV_WEIGHTS": [["asset", "weight"]],
        "FL_PRIOR_FACTOR": [["asset", "factor", "factor 2"]],
        "FL_EXCLUDED": [["asset", "factor"]],
    }
    empty_matrix = pd.DataFrame(np.nan, index=returns.columns, columns=factors.columns)
    cells["FL_SIGNS"] = _frame_rows(signs if signs is not None else empty_matrix, "asset")
    cells["FL_PRIOR"] = _frame_rows(prior if prior is not None else empty_matrix, "asset")
    cells["FL_EXPOSURE_BUDGET"] = _frame_rows(empty_matrix, "asset")
    cells["FL_GROUPS"] = [
        ["asset", "group"],
        *([[a, g] for a, g in groups.items()] if groups is not None else []),
    ]
    if asset_groups is not None:
        cells["FL_ASSET_GROUPS"] = _frame_rows(asset_groups, "asset")
    # output areas sized for their tables
    sizes = {
        "FL_COEF": (n_assets + 1, n_factors + 1),
        "FL_DERIVED_SIGNS": (n_assets + 1, n_factors + 1),
        "FL_PRIOR_USED": (n_assets + 1, n_factors + 1),
        "FL_R2": (n_assets + 1, 2),
        "FL_INTERCEPT": (n_assets + 1, 2),
        "FL_CLUSTERS": (n_assets + 1, 2),
        "FL_RESID_VOL": (n_assets + 1, 4),
        "FL_STATUS": (14, 3),  # refit_cv + optimise_portfolio: a column each
        "FL_CV": (21, 9),
        "FL_WEIGHTS": (n_assets + 1, 2),
        "FL_PORTFOLIO_STATS": (16, 2),
        "FL_RISK": (n_factors + 3, 4),
        "FL_RISK_ASSETS": (n_assets + 1, 6),
        # the backtest's tables grow down with the rebalancing dates (into blank cells)
        "FL_BACKTEST_STATS": (9, 10),
        "FL_BACKTEST": (2, 13),
        "FL_WEIGHT_HISTORY": (2, n_assets + 1),
        "FL_BETA_HISTORY": (2, 4),
        "FL_R2_HISTORY": (2, n_assets + 1),
        "FL_RESID_VOL_HISTORY": (2, n_assets + 1),
        "FL_CLUSTER_HISTORY": (2, n_assets + 1),
    }

    wb = Workbook()
    start = wb.active
    start.title = "Start"
    lines = [
        "xl-factorlasso workbook",
        description,
        "Inputs (yellow): Returns, Factors, Signs, Prior, Settings, Portfolio, AssetGroups, "
        "ExposureBudget, Rolling.",
        "Outputs (blue): Results, DerivedSigns, Diagnostics, CV, Risk, the right half of "
        "Portfolio, Backtest and the *History sheets.",
        "Run: the Factor LASSO ribbon tab, =FLASSO_* worksheet functions, or the command line:",
        "    xl-factorlasso refit THIS_FILE.xlsx [--cv] [--portfolio]",
        "Every range is a workbook name FL_*; `xl-factorlasso inspect THIS_FILE.xlsx` lists them "
        "and checks them.",
    ]
    for i, line in enumerate(lines, start=1):
        start.cell(row=i, column=1, value=line)
    start["A1"].font = Font(name="Calibri", bold=True, size=14)

    def sheet(name):
        return wb[name] if name in wb.sheetnames else wb.create_sheet(name)

    for name, (sheet_name, row, col) in LAYOUT.items():
        ws = sheet(sheet_name)
        role = spec(name).role
        if role == "input":
            rows = cells.get(
                name, [["asset"]] if name == "FL_ASSET_GROUPS" else [["key", "value"]]
            )
            n_rows, n_cols = len(rows), max(len(r) for r in rows)
            for i, values in enumerate(rows):
                for j, v in enumerate(values):
                    c = ws.cell(row=row + i, column=col + j, value=v)
                    if i == 0 or (j == 0 and name not in ("FL_CONSTRAINTS",)):
                        c.font = Font(name="Calibri", bold=True)
                    elif name not in ("FL_RETURNS", "FL_FACTORS"):
                        c.fill = PatternFill("solid", fgColor=_INPUT_FILL)
                    if isinstance(v, (pd.Timestamp,)) or hasattr(v, "year"):
                        c.number_format = "yyyy-mm-dd"
            # leave room to type more settings / constraints without moving the name (in a
            # table too: typing in a blank row needs no table to grow, and beyond the last
            # row Excel extends the table)
            if name in (
                "FL_SETTINGS",
                "FL_PORTFOLIO_SETTINGS",
                "FL_ROLLING_SETTINGS",
                "FL_CONSTRAINTS",
                "FL_GROUPS",
                "FL_PREV_WEIGHTS",
                "FL_PRIOR_FACTOR",
                "FL_EXCLUDED",
            ):
                n_rows = max(n_rows, 30 if name != "FL_GROUPS" else n_assets + 1)
            if tables:
                # a table has at least one data row; an empty input's is blank, coloured as
                # an input
                if n_rows == 1:
                    n_rows = 2
                    for j in range(n_cols):
                        ws.cell(row=row + 1, column=col + j).fill = PatternFill(
                            "solid", fgColor=_INPUT_FILL)
                ws.add_table(_input_table(name, rows[0], row, col, n_rows))
                wb.defined_names[name] = DefinedName(name, attr_text=f"{TABLES[name]}[#All]")
                continue
        else:
            n_rows, n_cols = sizes[name]
            ws.cell(row=row, column=col, value=None)
            for j in range(n_cols):
                ws.cell(row=row, column=col + j).fill = PatternFill("solid", fgColor=_OUTPUT_FILL)
        last_row, last_col = row + n_rows - 1, col + n_cols - 1
        ref = f"${column_letter(col)}${row}:${column_letter(last_col)}${last_row}"
        wb.defined_names[name] = DefinedName(name, attr_text=f"'{sheet_name}'!{ref}")

    settings_ws = wb["Settings"]
    # the model_type dropdown, only where there is a model_type row: a validation without
    # cells is written as an empty <dataValidations>, which the Open XML schema refuses
    rows = [i for i, row in enumerate(cells["FL_SETTINGS"]) if row[0] == "model_type"]
    if rows:
        dv = DataValidation(type="list", formula1=f'"{_MODEL_TYPES}"', allow_blank=True)
        settings_ws.add_data_validation(dv)
        for i in rows:
            dv.add(settings_ws.cell(row=1 + i, column=2))
    if readable:
        _make_readable(wb, cells)
    path = os.fspath(path)
    wb.save(path)
    return path


def _input_table(name: str, header: list, row: int, col: int, n_rows: int):
    """The Excel table of input ``name``: its header row at (``row``, ``col``), ``n_rows`` rows
    in all. No filter buttons: sorting a returns table by one column would scramble its dates,
    and the buttons would hide the end of the column names."""
    from openpyxl.worksheet.table import Table, TableColumn, TableStyleInfo

    names = [str(h) for h in header]
    seen: set[str] = set()
    for h in names:  # Excel compares table column names without regard to case
        if h.lower() in seen:
            raise ValueError(f"{name}: the column name {h!r} appears twice in the header row; "
                             "an Excel table needs unique column names")
        seen.add(h.lower())
    last_col = col + len(names) - 1
    table = Table(
        displayName=TABLES[name],
        name=TABLES[name],
        ref=f"{column_letter(col)}{row}:{column_letter(last_col)}{row + n_rows - 1}",
        tableStyleInfo=TableStyleInfo(name=_TABLE_STYLE, showFirstColumn=False,
                                      showLastColumn=False, showRowStripes=False,
                                      showColumnStripes=False),
    )
    table.tableColumns = [TableColumn(id=i, name=h) for i, h in enumerate(names, start=1)]
    return table


# Number formats of the inputs' numbers (dates are yyyy-mm-dd wherever they are).
_INPUT_FORMATS = {"FL_RETURNS": "0.0000", "FL_FACTORS": "0.0000", "FL_PRIOR": "0.00",
                  "FL_EXPOSURE_BUDGET": "0.00"}
# Outputs with one row per asset.
_ASSET_ROWS = ("FL_COEF", "FL_DERIVED_SIGNS", "FL_PRIOR_USED", "FL_R2", "FL_INTERCEPT",
               "FL_CLUSTERS", "FL_RESID_VOL", "FL_WEIGHTS", "FL_RISK_ASSETS")
# Sheets whose rows have labels in column A: freeze it with the header row.
_LABELLED = ("Returns", "Factors", "Signs", "Prior", "ExposureBudget", "AssetGroups", "Results",
             "DerivedSigns", "PriorUsed")


def _make_readable(wb, tables: dict[str, list[list]]) -> None:
    """Formats, widths and frozen header rows of a built workbook (see ``readable``)."""
    from openpyxl.utils import get_column_letter

    from ._formats import display_text, fitted_width, stored_width

    texts: dict[tuple[str, int], list[str]] = {}
    assets = [str(a) for a in tables["FL_RETURNS"][0][1:]]
    for name in _ASSET_ROWS:  # outputs: their label column will hold the asset names
        sheet_name, _, col = LAYOUT[name]
        texts.setdefault((sheet_name, col), []).extend(["asset", *assets])
    for name, (sheet_name, row, col) in LAYOUT.items():
        ws = wb[sheet_name]
        code = _INPUT_FORMATS.get(name)
        for i, values in enumerate(tables.get(name, [])):
            for j, v in enumerate(values):
                cell = ws.cell(row=row + i, column=col + j)
                if code and i > 0 and j > 0 and isinstance(v, (int, float)):
                    cell.number_format = code
                texts.setdefault((sheet_name, col + j), []).append(
                    display_text(v, cell.number_format))
    for (sheet_name, col), column_texts in texts.items():
        # openpyxl stores the width as given: store what Excel stores for these characters
        width = fitted_width(column_texts, max_width=40.0)
        wb[sheet_name].column_dimensions[get_column_letter(col)].width = stored_width(width)
    for sheet_name in dict.fromkeys(sheet for sheet, _, _ in LAYOUT.values()):
        wb[sheet_name].freeze_panes = "B2" if sheet_name in _LABELLED else "A2"
