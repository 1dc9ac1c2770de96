"""A seeded random sweep of damaged workbooks, checked against the promise of the jobs.

``tests/bad_workbooks.py`` damages the demo workbook one hand-picked way per case. This module
draws 1-3 damages at random per case (a cell of an input the jobs read set to text, a decimal
comma, an Excel error, a date, 1e300, ...; a label duplicated or blanked; a row or column
deleted; a name's range shrunk, grown or moved; a setting made invalid; portfolio bounds made
infeasible; a column made constant or blank; very few rows), runs the jobs a user runs
in-process (``refit``, ``refit --cv --portfolio``, ``inspect`` and, on a sample, the backtest
as a host runs it) and checks the invariants:

* exit status 0 or 2 (``inspect``: 0 or 1), never a traceback or an "unexpected error";
* status 2: the message names the input (an ``FL_*`` name or a ``sheet!cell``), the file is
  byte-identical and nothing is left beside it;
* status 0: every cell of every input name is unchanged, the outputs hold no ``nan``/``inf``
  text nor a Python repr, and a damage that must be refused (text in a number the job reads)
  was not accepted;
* ``inspect`` never changes the file and reports a problem when ``refit`` refused.

``python -m tests.fuzz_workbooks --seed S --count K`` prints the table of outcomes and every
finding with what reproduces it; ``tests/test_fuzz_workbooks.py`` runs a small fixed sample.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import openpyxl
from openpyxl.utils import get_column_letter, range_boundaries
from openpyxl.workbook.defined_name import DefinedName

from tests.bad_workbooks import _digest, _run_cli, _run_job

OUTCOMES = ("ok", "refused", "traceback", "unclear", "data changed", "accepted silently",
            "bad output", "inspect misses", "invalid xml")
#: The jobs of a case: how they are run and which inputs each reads (the contract's tuples).
JOBS = ("refit", "refit --cv --portfolio", "backtest", "inspect")
VALIDATOR = Path("/work/shared/tools/ooxml-validate/ooxml-validate")
TEMPLATES = Path(__file__).resolve().parent.parent / "xl_factorlasso" / "templates"


def _reads() -> dict[str, tuple[str, ...]]:
    from xl_factorlasso.workbook._backtest import BACKTEST_INPUTS
    from xl_factorlasso.workbook._compute import FIT_INPUTS, PORTFOLIO_INPUTS

    return {"refit": FIT_INPUTS, "refit --cv --portfolio": PORTFOLIO_INPUTS,
            "backtest": BACKTEST_INPUTS}


# --------------------------------------------------------------------------- the layout
@dataclass(frozen=True)
class Area:
    sheet: str
    min_col: int
    min_row: int
    max_col: int
    max_row: int

    def ref(self) -> str:
        return (f"'{self.sheet}'!${get_column_letter(self.min_col)}${self.min_row}:"
                f"${get_column_letter(self.max_col)}${self.max_row}")

    def cells(self):
        for r in range(self.min_row, self.max_row + 1):
            for c in range(self.min_col, self.max_col + 1):
                yield r, c


def name_areas(wb) -> dict[str, Area]:
    """Every workbook-scope name that is one rectangle (a table's ``[#All]`` resolved)."""
    tables = {t.name: (ws.title, t.ref) for ws in wb.worksheets for t in ws.tables.values()}
    areas = {}
    for nm, dn in wb.defined_names.items():
        text = dn.attr_text or ""
        m = re.fullmatch(r"(\w+)\[#All\]", text)
        if m and m.group(1) in tables:
            sheet, ref = tables[m.group(1)]
        else:
            m = re.fullmatch(r"'?(.+?)'?!(\$?[A-Z]+\$?\d+(?::\$?[A-Z]+\$?\d+)?)", text)
            if not m or m.group(1) not in wb.sheetnames:
                continue
            sheet, ref = m.group(1), m.group(2).replace("$", "")
        c0, r0, c1, r1 = range_boundaries(ref)
        areas[nm] = Area(sheet, c0, r0, c1, r1)
    return areas


def _used(ws, area: Area) -> Area:
    """The area cut to its last filled row (the key | value tables keep blank rows)."""
    last = area.min_row
    for r in range(area.min_row, area.max_row + 1):
        if any(ws.cell(r, c).value not in (None, "")
               for c in range(area.min_col, area.max_col + 1)):
            last = r
    return Area(area.sheet, area.min_col, area.min_row, area.max_col, last)


def _next_row(ws, area: Area) -> int:
    """The first row below the filled ones, inside the area (a full table: its last row; a row
    below a table is data it leaves out, which the jobs point out without reading it)."""
    return min(_used(ws, area).max_row + 1, area.max_row)


# --------------------------------------------------------------------------- damages
@dataclass
class Damage:
    """One edit of a case. ``refuse``: the names whose reading job must refuse the case."""

    text: str
    edit: Callable  # edit(wb, areas)
    refuse: tuple[str, ...] = ()
    kind: str = ""
    only: tuple[str, ...] = ()  # the jobs that must refuse, when not every job reading it
    moves: tuple[str, ...] = ()  # names whose area or cells this damage moves


#: (label, value, refused in a number cell of a panel or a matrix of numbers)
VALUES = [
    ("text", "abc", True),
    ("decimal comma", "0,0123", True),
    ("percent text", "1.2%", True),
    ("#N/A", "#N/A", True),
    ("#DIV/0!", "#DIV/0!", True),
    ("#VALUE!", "#VALUE!", True),
    ("blank", None, False),
    ("whitespace", "   ", False),
    ("TRUE", True, True),
    ("a date", dt.datetime(2021, 3, 5), True),
    ("1e300", 1e300, True),
    ("-1e300", -1e300, True),
    ("1e-300", 1e-300, True),
    ("formula", "=1+1", True),
    ("nan text", "nan", True),
]

#: Refused by the portfolio job; the backtest records it as a failed date instead (on_failure,
#: docs/backtest.md: "before its first successful date it holds nothing (cash, return 0)").
INFEASIBLE = "infeasible"
# (key, bad value, refused): settings values that contradict a documented rule
BAD_SETTINGS = [
    ("reg_lambda", -1, True), ("reg_lambda", "lots", True), ("reg_lambda", "1,5", True),
    ("model_type", "RIDGE", True), ("model_type", 3, None), ("n_clusters", 0, True),
    ("n_clusters", 2.5, True), ("n_clusters", 1000, True), ("l1_weight", 2, True),
    ("l1_weight", -0.1, True), ("span", 1, True), ("span", "#N/A", True),
    ("span", 10**9, None), ("cutoff_fraction", 0, True), ("warmup_period", 10**6, True),
    ("cv_splits", 1, True), ("cv_splits", 10**6, True), ("cv_lambdas", "0.1; abc", True),
    ("cv_n_lambdas", 0, True), ("annualization_factor", -52, True),
    ("max_abs_return", 0, True), ("max_abs_return", 1e-9, None),
    ("demean", "maybe", True), ("linkage_method", "bogus", True),
    ("apply_ols_prior", 2, True), ("auto_sign_constraints", True, None),
    ("apply_ols_prior", True, None), ("model_type", "LASSO", None),
    ("model_type", "GROUP_LASSO", None), ("model_type", "UNILASSO", None),
    ("model_type", "FCGL", None), ("nonneg", True, None), ("n_clusters", 1, None),
    ("reg_lambda", 1e6, None), ("reg_lambda", 0, None), ("span", 2, None),
    ("annualization_factor", 1e300, None), ("reg_lambda", 1e300, None),
]
BAD_PORTFOLIO = [
    ("covariance", "magic", True), ("covariance", "sample", None), ("covariance", "ewma", None),
    ("min_weights", 0.5, INFEASIBLE), ("max_weights", 0.01, INFEASIBLE), ("max_weights", -1, True),
    ("budget", 10, INFEASIBLE), ("budget", 0, None), ("min_budget", 2, None),
    ("transaction_costs", -1, True), ("max_turnover", 0, None), ("min_return", 10, INFEASIBLE),
    ("max_weights", "15%", True), ("max_weights", "0,15", True), ("l2_coef", 1e300, None),
    ("risk_free_rate", "#N/A", True), ("max_short", 0, True),
]
BAD_ROLLING = [
    ("window", 10**6, None), ("window", 3, None), ("window", "expanding", None),
    ("min_history", 10**6, True), ("min_history", 0, True), ("rebalance", "Q", None),
    ("rebalance", "W", None), ("rebalance", "daily", True), ("ewma_span", 10**6, None),
    ("on_failure", "stop", None), ("transaction_cost_bps", "10bp", True),
    ("history_factor", "Equity", None), ("benchmarks", "", None),
]
BAD_CONSTRAINTS = [("EQ >= 0.9", INFEASIBLE), ("EQ <= 0.4; GOV <= 0.1", True), ("SPX + 1", True),
                   ("SPX >= 0.5", INFEASIBLE), ("=A1", True), ("EQ <= 1.5", None),
                   ("GOV >= 2*EQ", None), ("#N/A", True)]


def _put(sheet: str, row: int, col: int, value):
    def edit(wb, areas):
        wb[sheet].cell(row, col).value = value
    return edit


def _key_row(wb, area: Area, key: str) -> int:
    """The row of ``key`` in a key | value table, else its first blank row."""
    ws = wb[area.sheet]
    for r in range(area.min_row + 1, area.max_row + 1):
        if str(ws.cell(r, area.min_col).value or "").strip().lower() == key:
            return r
    for r in range(area.min_row + 1, area.max_row + 1):
        if ws.cell(r, area.min_col).value in (None, ""):
            return r
    return area.max_row


def _setting(name: str, key: str, value):
    def edit(wb, areas):
        area = areas[name]
        r = _key_row(wb, area, key)
        ws = wb[area.sheet]
        ws.cell(r, area.min_col).value = key
        ws.cell(r, area.min_col + 1).value = value
    return edit


def _rename(name: str, area: Area):
    def edit(wb, areas):
        if name in wb.defined_names:
            del wb.defined_names[name]
        wb.defined_names[name] = DefinedName(name, attr_text=area.ref())
    return edit


def _column(sheet: str, col: int, rows: range, value):
    def edit(wb, areas):
        for r in rows:
            wb[sheet].cell(r, col).value = value
    return edit


def _delete(sheet: str, *, row: int | None = None, col: int | None = None):
    def edit(wb, areas):
        if row is not None:
            wb[sheet].delete_rows(row)
        else:
            wb[sheet].delete_cols(col)
    return edit


def _cell_ref(area: Area, r: int, c: int) -> str:
    return f"{area.sheet}!{get_column_letter(c)}{r}"


def draw_damage(rng: random.Random, wb, areas: dict[str, Area]) -> Damage:
    """One damage, drawn from the menu among the inputs this workbook has."""
    kind, damage = _draw(rng, wb, areas)
    damage.kind = damage.kind or kind
    return damage


def _draw(rng: random.Random, wb, areas: dict[str, Area]):
    panels = [n for n in ("FL_RETURNS", "FL_FACTORS") if n in areas]
    matrices = [n for n in ("FL_SIGNS", "FL_PRIOR", "FL_EXPOSURE_BUDGET") if n in areas]
    kind = rng.choices(
        ["panel value", "matrix value", "label", "settings", "portfolio", "constraint",
         "prev weights", "rolling", "structure", "name area", "column", "few rows",
         "settings cell", "valid form", "output area", "label form", "series"],
        weights=[16, 8, 8, 10, 6, 3, 3, 3, 5, 5, 5, 3, 4, 8, 5, 5, 10])[0]
    if kind == "panel value":
        nm = rng.choice(panels)
        a = areas[nm]
        r, c = rng.randint(a.min_row + 1, a.max_row), rng.randint(a.min_col + 1, a.max_col)
        label, value, refused = rng.choice(VALUES)
        return kind, Damage(f"{nm} {_cell_ref(a, r, c)} = {label} ({value!r})",
                      _put(a.sheet, r, c, value), (nm,) if refused else ())
    if kind == "matrix value":
        nm = rng.choice(matrices)
        a = areas[nm]
        r, c = rng.randint(a.min_row + 1, a.max_row), rng.randint(a.min_col + 1, a.max_col)
        label, value, refused = rng.choice(VALUES)
        if nm == "FL_SIGNS" and value is not None and not isinstance(value, str):
            refused = True  # a sign is blank, 0, 1, -1, + or -
        if nm == "FL_PRIOR" and label == "1e-300":
            refused = False  # a tiny prior centre is a number the fit can use
        # an exposure budget is read only with apply_ols_prior (otherwise its filled cells are
        # refused as a budget without a prior: refused either way for a bad value)
        return kind, Damage(f"{nm} {_cell_ref(a, r, c)} = {label} ({value!r})",
                      _put(a.sheet, r, c, value), (nm,) if refused else ())
    if kind == "label":
        nm = rng.choice(panels + matrices)
        a = areas[nm]
        header = rng.random() < 0.5
        if header:
            r, c = a.min_row, rng.randint(a.min_col + 1, a.max_col)
            other = (a.min_row, rng.choice([x for x in range(a.min_col + 1, a.max_col + 1)
                                            if x != c] or [c]))
        else:
            r, c = rng.randint(a.min_row + 1, a.max_row), a.min_col
            other = (rng.choice([x for x in range(a.min_row + 1, a.max_row + 1) if x != r]
                                or [r]), a.min_col)
        how = rng.choice(["duplicate", "blank", "numeric", "date", "text"])
        where = _cell_ref(a, r, c)

        def edit(wb, areas, r=r, c=c, other=other, how=how, sheet=a.sheet):
            ws = wb[sheet]
            ws.cell(r, c).value = {"duplicate": ws.cell(*other).value, "blank": None,
                                   "numeric": 7, "date": dt.datetime(2020, 1, 3),
                                   "text": "ZZZ"}[how]
        # a duplicated or blank label is refused (a label of a panel: its values orphaned);
        # an unknown asset or factor in a matrix is refused; the fit reads every label
        filled = any(wb[a.sheet].cell(*((r, x) if not header else (x, c))).value
                     not in (None, "") for x in (range(a.min_col + 1, a.max_col + 1)
                                                 if not header else
                                                 range(a.min_row + 1, a.max_row + 1)))
        # a blank label of an empty row or column is an empty row or column
        refused = (nm,) if how == "duplicate" or (how == "blank" and filled) or (
            nm in ("FL_RETURNS", "FL_FACTORS") and not header and how != "date") else ()
        return kind, Damage(f"{nm} label {where} {how}", edit, refused)
    if kind in ("settings", "portfolio", "rolling"):
        nm, menu = {"settings": ("FL_SETTINGS", BAD_SETTINGS),
                    "portfolio": ("FL_PORTFOLIO_SETTINGS", BAD_PORTFOLIO),
                    "rolling": ("FL_ROLLING_SETTINGS", BAD_ROLLING)}[kind]
        key, value, refused = rng.choice(menu)
        # the cross-validation's keys are checked by the job that cross-validates
        only = ("refit --cv --portfolio",) if key.startswith("cv_") or refused == INFEASIBLE \
            else ()
        return kind, Damage(f"{nm} {key} = {value!r}", _setting(nm, key, value),
                            (nm,) if refused else (), only=only)
    if kind == "settings cell":  # a value of an existing setting set to a random bad value
        nm = rng.choice(["FL_SETTINGS", "FL_PORTFOLIO_SETTINGS"])
        a = _used(wb[areas[nm].sheet], areas[nm])
        if a.max_row <= a.min_row:
            return _draw(rng, wb, areas)
        r = rng.randint(a.min_row + 1, a.max_row)
        label, value, refused = rng.choice(VALUES)
        if label in ("1e-300", "1e300", "TRUE"):
            refused = False  # a flag, or a positive number: the key's rule decides
        return kind, Damage(f"{nm} value {_cell_ref(a, r, a.min_col + 1)} "
                      f"({wb[a.sheet].cell(r, a.min_col).value}) = {label}",
                      _put(a.sheet, r, a.min_col + 1, value), (nm,) if refused else ())
    if kind == "constraint":
        a = areas["FL_CONSTRAINTS"]
        text, refused = rng.choice(BAD_CONSTRAINTS)

        def edit(wb, areas, a=a, text=text):  # below the rows filled so far
            wb[a.sheet].cell(_next_row(wb[a.sheet], a), a.min_col).value = text
        return kind, Damage(f"FL_CONSTRAINTS new row = {text!r}", edit,
                            ("FL_CONSTRAINTS",) if refused else (),
                            only=("refit --cv --portfolio",) if refused == INFEASIBLE else ())
    if kind == "prev weights":
        a = areas["FL_PREV_WEIGHTS"]
        ra = areas["FL_RETURNS"]
        asset = wb[ra.sheet].cell(ra.min_row, rng.randint(ra.min_col + 1, ra.max_col)).value
        label, value, refused = rng.choice(VALUES + [("weight", 0.1, False)])

        def edit(wb, areas, asset=asset, value=value, a=a):
            r = _next_row(wb[a.sheet], a)
            wb[a.sheet].cell(r, a.min_col).value = asset
            wb[a.sheet].cell(r, a.min_col + 1).value = value
        refused = refused and label != "1e-300"
        return kind, Damage(f"FL_PREV_WEIGHTS new row: {asset} = {label} ({value!r})",
                      edit, ("FL_PREV_WEIGHTS",) if refused else ())
    if kind == "structure":  # a row or a column of a panel's sheet deleted (the table stays)
        nm = rng.choice(panels)
        a = areas[nm]
        if rng.random() < 0.5:
            r = rng.randint(a.min_row + 1, a.max_row)
            return kind, Damage(f"{nm} row {r} deleted ({a.sheet})", _delete(a.sheet, row=r),
                                (nm,), moves=(nm,))
        c = rng.randint(a.min_col + 1, a.max_col)
        refused = (nm,) if nm == "FL_FACTORS" or c < a.max_col else ()
        return kind, Damage(f"{nm} column {get_column_letter(c)} deleted ({a.sheet})",
                            _delete(a.sheet, col=c), refused, moves=(nm,))
    if kind == "name area":
        nm = rng.choice(panels + matrices + ["FL_SETTINGS"])
        a = areas[nm]
        how = rng.choice(["shrink rows", "shrink cols", "grow rows", "grow cols", "move"])
        if how == "shrink rows":
            b = Area(a.sheet, a.min_col, a.min_row, a.max_col,
                     rng.randint(a.min_row + 1, a.max_row - 1))
        elif how == "shrink cols":
            b = Area(a.sheet, a.min_col, a.min_row, max(a.min_col + 1, a.max_col - 1), a.max_row)
        elif how == "grow rows":
            b = Area(a.sheet, a.min_col, a.min_row, a.max_col, a.max_row + rng.randint(1, 5))
        elif how == "grow cols":
            b = Area(a.sheet, a.min_col, a.min_row, a.max_col + rng.randint(1, 3), a.max_row)
        else:
            other = rng.choice([s for s in wb.sheetnames if s != a.sheet])
            b = Area(other, a.min_col, a.min_row, a.max_col, a.max_row)
        refused = (nm,) if how == "move" and nm in ("FL_RETURNS", "FL_FACTORS") else ()
        return kind, Damage(f"{nm} {how}: {b.ref()}", _rename(nm, b), refused, moves=(nm,))
    if kind == "column":
        nm = rng.choice(panels)
        a = areas[nm]
        c = rng.randint(a.min_col + 1, a.max_col)
        how = rng.choice(["constant", "blank", "zero"])
        value = {"constant": 0.01, "blank": None, "zero": 0.0}[how]
        # not refused: an asset without returns is a ragged history taken to its end (its
        # loadings are zeroed with a note); a factor without values or constant keeps its
        # loadings at the prior, with a note (docs/formulation.md, "Factors with one value")
        refused = ()
        return kind, Damage(f"{nm} column {get_column_letter(c)} all {how}",
                      _column(a.sheet, c, range(a.min_row + 1, a.max_row + 1), value), refused)
    if kind == "series":  # a row of FL_GROUPS / FL_EXCLUDED / FL_PRIOR_FACTOR, or a tag
        nm = rng.choice([n for n in ("FL_GROUPS", "FL_EXCLUDED", "FL_PRIOR_FACTOR",
                                     "FL_ASSET_GROUPS") if n in areas])
        a = areas[nm]
        ra, fa = areas["FL_RETURNS"], areas["FL_FACTORS"]
        asset = wb[ra.sheet].cell(ra.min_row, rng.randint(ra.min_col + 1, ra.max_col)).value
        factor = wb[fa.sheet].cell(fa.min_row, rng.randint(fa.min_col + 1, fa.max_col)).value
        bad = rng.choice([("an unknown name", "Bitcoin", True), ("#N/A", "#N/A", True),
                          ("a number", 7, None), ("a date", dt.datetime(2020, 1, 3), True),
                          ("blank", None, None), ("a valid name", None, None),
                          ("TRUE", True, True)])
        what, value, refused = bad
        col = rng.randint(0, a.max_col - a.min_col)
        row = [asset, {"FL_GROUPS": "g1", "FL_ASSET_GROUPS": "X"}.get(nm, factor)]
        if nm == "FL_PRIOR_FACTOR":
            row.append(None)
        col = min(col, len(row) - 1)
        if what != "a valid name":
            row[col] = value
        if nm == "FL_GROUPS" and col == 1 and what != "#N/A" or nm == "FL_ASSET_GROUPS" and (
                what not in ("#N/A",)):
            refused = None  # a group label or a tag is any text (a date, TRUE, a new name)
        if nm == "FL_ASSET_GROUPS":  # a tag cell of an asset's row
            r = rng.randint(a.min_row + 1, a.max_row)
            c = rng.randint(a.min_col + 1, a.max_col)
            return kind, Damage(f"FL_ASSET_GROUPS {_cell_ref(a, r, c)} = {what} ({value!r})",
                                _put(a.sheet, r, c, value), (nm,) if refused else ())

        def edit(wb, areas, a=a, row=row):  # below the rows filled so far
            r = _next_row(wb[a.sheet], a)
            for k, v in enumerate(row):
                wb[a.sheet].cell(r, a.min_col + k).value = v
        # a blank first column with a value beside it, or a listed asset without its factor,
        # is refused too; a number as a group label may be a label: not judged
        return kind, Damage(f"{nm} new row {row!r} ({what})", edit,
                            (nm,) if refused else ())
    if kind == "valid form":  # a number in a form the contract reads (or an edge it allows)
        nm = rng.choice(panels + ["FL_PRIOR"] * ("FL_PRIOR" in areas))
        a = areas[nm]
        r, c = rng.randint(a.min_row + 1, a.max_row), rng.randint(a.min_col + 1, a.max_col)
        value = rng.choice(["0.01", " -0.02 ", "1.5e-3", 0, 4.9, -0.99, 1e-140, -1e-149,
                            "+0.003", ".5", "0.0"])
        return kind, Damage(f"{nm} {_cell_ref(a, r, c)} = {value!r}", _put(a.sheet, r, c, value))
    if kind == "label form":  # a label written another way: stripped, or not the same label
        nm = rng.choice(panels + matrices)
        a = areas[nm]
        if rng.random() < 0.5:
            r, c = a.min_row, rng.randint(a.min_col + 1, a.max_col)
        else:
            r, c = rng.randint(a.min_row + 1, a.max_row), a.min_col
        old = wb[a.sheet].cell(r, c).value
        if isinstance(old, dt.datetime):
            how = rng.choice(["iso text", "with a time", "a day later"])
            new = {"iso text": old.date().isoformat(),
                   "with a time": old + dt.timedelta(hours=12),
                   "a day later": old + dt.timedelta(days=1)}[how]
            refused = (nm,) if how != "iso text" and nm in panels else ()
        elif isinstance(old, str) and old.strip():
            how = rng.choice(["padded", "lower case", "a suffix"])
            new = {"padded": f" {old} ", "lower case": old.lower(), "a suffix": old + "_x"}[how]
            refused = () if how == "padded" or new == old else (nm,)
            if nm in panels and refused and a.min_col != c and nm == "FL_RETURNS":
                refused = ()  # an asset renamed: the matrices may not list it (a subset)
        else:
            return _draw(rng, wb, areas)
        return kind, Damage(f"{nm} label {_cell_ref(a, r, c)} {how}: {new!r}",
                            _put(a.sheet, r, c, new), refused)
    if kind == "output area":  # an output re-pointed: shrunk, moved, or over another range
        from xl_factorlasso.workbook._contract import OUTPUTS

        outs = [n for n in OUTPUTS if n in areas]
        nm = rng.choice(outs)
        a = areas[nm]
        how = rng.choice(["one cell", "another sheet", "over an input", "over an output",
                          "far away"])
        if how == "one cell":
            b = Area(a.sheet, a.min_col, a.min_row, a.min_col, a.min_row)
        elif how == "another sheet":
            b = Area(rng.choice(["Start", "CV", "Risk"]), 20, 40, 20 + a.max_col - a.min_col,
                     40 + a.max_row - a.min_row)
        elif how == "far away":
            b = Area(a.sheet, a.min_col + 200, a.min_row + 5000, a.max_col + 200,
                     a.max_row + 5000)
        else:
            pool = (["FL_RETURNS", "FL_SETTINGS", "FL_SIGNS"] if how == "over an input"
                    else [n for n in outs if n != nm])
            t = areas[rng.choice([n for n in pool if n in areas])]
            b = Area(t.sheet, t.min_col + 1, t.min_row + 1, t.min_col + 1 + a.max_col - a.min_col,
                     t.min_row + 1 + a.max_row - a.min_row)
        return kind, Damage(f"{nm} {how}: {b.ref()}", _rename(nm, b))
    # few rows: both panels cut to the same handful of dates
    n = rng.randint(1, 12)
    edits = [_rename(nm, Area(areas[nm].sheet, areas[nm].min_col, areas[nm].min_row,
                              areas[nm].max_col, areas[nm].min_row + n)) for nm in panels]
    return kind, Damage(f"FL_RETURNS and FL_FACTORS cut to {n} dates",
                        lambda wb, areas: [e(wb, areas) for e in edits],
                        tuple(panels) if n < 5 else (), moves=tuple(panels))


# --------------------------------------------------------------------------- cases
@dataclass
class Case:
    seed: int
    index: int
    base: str
    damages: list[Damage]

    @property
    def id(self) -> str:
        return f"seed {self.seed} case {self.index}"

    def describe(self) -> str:
        return f"[{self.base}] " + "; ".join(d.text for d in self.damages)


@dataclass
class Result:
    case: Case
    job: str
    status: int | None
    kind: str
    message: str
    seconds: float
    details: list[str] = field(default_factory=list)


def bases(folder: Path, names=("demo", "template", "sp500")) -> dict[str, Path]:
    """The workbooks cases start from: the demo and the shipped (macro-free) templates."""
    from xl_factorlasso.cli import build_demo_workbook

    out = {}
    if "demo" in names:
        out["demo"] = Path(build_demo_workbook(str(folder / "demo.xlsx")))
    for key, file in (("template", "factorlasso_template.xlsx"),
                      ("sp500", "factorlasso_template_sp500.xlsx")):
        if key in names:
            out[key] = folder / file
            shutil.copy(TEMPLATES / file, out[key])
    return out


def draw_case(seed: int, index: int, base_names) -> Case:
    rng = random.Random(f"{seed}:{index}")
    base = rng.choice(sorted(base_names))
    return Case(seed, index, base, [])


def build_case(case: Case, base: Path, out: Path) -> None:
    """Draw the damages of ``case`` (seeded by its id) and write the damaged workbook."""
    rng = random.Random(f"{case.seed}:{case.index}:damages")
    wb = openpyxl.load_workbook(base)
    areas = name_areas(wb)
    case.damages = [draw_damage(rng, wb, areas) for _ in range(rng.choice([1, 1, 1, 2, 3]))]
    moved = {n for d in case.damages for n in d.moves}
    for d in case.damages:
        if not d.moves:  # a cell of a name another damage moved may be outside it now
            d.refuse = tuple(n for n in d.refuse if n not in moved)
        d.edit(wb, areas)
    wb.save(out)


# --------------------------------------------------------------------------- checks
_NAMES_INPUT = re.compile(r"FL_[A-Z_]+|\b[A-Za-z][\w .]*!\$?[A-Z]{1,3}\$?\d+")
_REPR = re.compile(r"(?i:\b(nan|inf|infinity)\b)|np\.\w+\(|array\(|Timestamp\(|dtype|"
                   r"<[a-z_.]+ object|Traceback|[\[{(]'\w|\bNone\b(?! =)")
_LIST_REPR = re.compile(r"[\[{]'\w")  # ['NDX'] in a message
_PY_ERRORS = re.compile(r"\b(ValueError|TypeError|KeyError|IndexError|AttributeError|"
                        r"ZeroDivisionError|LinAlgError|unexpected error)\b")


def _values(path: Path) -> dict[str, dict]:
    """Every cell of every name (values as stored), keyed by name."""
    wb = openpyxl.load_workbook(path)
    out = {}
    for nm, a in name_areas(wb).items():
        ws = wb[a.sheet]
        out[nm] = {(r, c): ws.cell(r, c).value for r, c in a.cells()}
    wb.close()
    return out


def _output_problems(path: Path, outputs, before: dict | None = None) -> list[str]:
    """NaN, infinities, ``nan``/``inf`` text or a Python repr in an output the job wrote (one
    whose cells differ from ``before``)."""
    wb = openpyxl.load_workbook(path)
    found = []
    for nm, a in name_areas(wb).items():
        if nm not in outputs:
            continue
        if before is not None and before.get(nm) == {
                (r, c): wb[a.sheet].cell(r, c).value for r, c in a.cells()}:
            continue
        ws = wb[a.sheet]
        for r, c in a.cells():
            v = ws.cell(r, c).value
            if isinstance(v, float) and v != v or isinstance(v, float) and abs(v) == float("inf"):
                found.append(f"{nm} {a.sheet}!{get_column_letter(c)}{r} holds {v!r}")
            elif isinstance(v, str) and _REPR.search(v):
                found.append(f"{nm} {a.sheet}!{get_column_letter(c)}{r} holds {v[:120]!r}")
    wb.close()
    return found


def validate_xml(path: Path) -> list[str]:
    """The validator's reports other than the benign font-order ones in styles.xml."""
    if not VALIDATOR.exists():
        return []
    run = subprocess.run([str(VALIDATOR), str(path)], capture_output=True, text=True,
                         timeout=300)
    bad = []
    for line in run.stdout.splitlines():
        if line.startswith("ERR") and not ("/xl/styles.xml" in line and "x:font" in line):
            bad.append(line[:300])
    return bad


def run_job_on(case: Case, job: str, damaged: Path, folder: Path, before: dict, outputs,
               *, validate: bool = False) -> Result:
    """Run ``job`` on a fresh copy of the damaged workbook and classify it."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    path = folder / "book.xlsx"
    shutil.copy(damaged, path)
    digest, listing = _digest(path), set(os.listdir(folder))
    start = time.perf_counter()
    if job == "backtest":
        status, out, err = _run_job("backtest", path)
    elif job == "inspect":
        status, out, err = _run_cli(["inspect", str(path)])
    else:
        status, out, err = _run_cli([*job.split()[:1], str(path), "--no-pictures",
                                     *job.split()[1:]])
    seconds = time.perf_counter() - start
    if job == "inspect":
        message = (out + err).strip()
    else:  # the error line, not the progress lines of the cross-validation before it
        lines = [x for x in err.strip().splitlines() if not x.startswith("[")]
        message = "\n".join(lines).strip()
    details = []
    left = set(os.listdir(folder)) - listing
    changed = _digest(path) != digest
    reads = _reads().get(job, ())
    must = sorted({n for d in case.damages for n in d.refuse
                   if n in reads and (not d.only or job in d.only)})
    ok_status = (0, 1) if job == "inspect" else (0, 2)
    if "Traceback" in out + err or status not in ok_status or _PY_ERRORS.search(message):
        kind = "traceback"
    elif job == "inspect":
        kind = "data changed" if changed or left else ("refused" if status == 1 else "ok")
        problems = [x for x in message.splitlines() if x.startswith("  - ")]
        if kind == "refused" and any(_LIST_REPR.search(x) for x in problems):
            kind = "unclear"
    elif status == 2:
        if changed or left:
            kind = "data changed"
            details.append(f"left behind: {sorted(left)}" if left else "the file changed")
        elif not _NAMES_INPUT.search(message) or _LIST_REPR.search(message):
            kind = "unclear"
        else:
            kind = "refused"
    else:
        kind = "ok"
        if left:
            kind, details = "data changed", [f"left behind: {sorted(left)}"]
        after = _values(path)
        for nm, cells in before.items():
            if nm in outputs:
                continue
            if after.get(nm) != cells:
                diff = [k for k in cells if after.get(nm, {}).get(k) != cells[k]][:3]
                kind = "data changed"
                details.append(f"input {nm} changed at {diff}")
        if kind == "ok":
            bad = _output_problems(path, outputs, before)
            if bad:
                kind, details = "bad output", bad[:5]
            elif must:
                kind = "accepted silently"
                details.append(f"should have refused: {', '.join(must)}")
            elif validate:
                bad = validate_xml(path)
                if bad:
                    kind, details = "invalid xml", bad[:5]
    return Result(case, job, status, kind, message, seconds, details)


def run_case(case: Case, base_paths: dict[str, Path], work: Path, *, backtest: bool,
             validate: bool, outputs) -> list[Result]:
    work.mkdir(parents=True, exist_ok=True)
    damaged = work / "damaged.xlsx"
    build_case(case, base_paths[case.base], damaged)
    before = _values(damaged)
    results = []
    for job in JOBS:
        if job == "backtest" and not backtest:
            continue
        results.append(run_job_on(case, job, damaged, work / "run", before, outputs,
                                  validate=validate and job != "inspect"))
    refit = results[0]
    insp = results[-1]
    if refit.status == 2 and insp.kind == "ok":
        insp.kind = "inspect misses"
        insp.details.append(f"refit said: {refit.message[:200]}")
    return results


def sweep(seed: int, count: int, *, backtest_every: int = 4, validate_every: int = 10,
          base_names=("demo", "template", "sp500"), start: int = 0,
          log: Callable[[str], None] | None = None) -> list[Result]:
    """Run cases ``start .. start+count-1`` of ``seed``; the backtest on every
    ``backtest_every``-th case, the OOXML validator on every ``validate_every``-th."""
    from xl_factorlasso.workbook._contract import OUTPUTS

    results = []
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        paths = bases(Path(tmp), base_names)
        for k in range(start, start + count):
            case = draw_case(seed, k, paths)
            rs = run_case(case, paths, Path(tmp) / f"case{k}",
                          backtest=backtest_every > 0 and k % backtest_every == 0,
                          validate=validate_every > 0 and k % validate_every == 0,
                          outputs=set(OUTPUTS))
            shutil.rmtree(Path(tmp) / f"case{k}", ignore_errors=True)
            results.extend(rs)
            if log:
                for r in rs:
                    if r.kind not in ("ok", "refused"):
                        log(_finding(r))
    return results


def _finding(r: Result) -> str:
    return (f"[{r.kind}] {r.case.id} {r.job} (exit {r.status}): {r.case.describe()}\n"
            f"    message: {r.message[:400]!r}" + "".join(f"\n    {d}" for d in r.details))


def table(results: list[Result]) -> str:
    lines = ["| job | runs | " + " | ".join(OUTCOMES) + " | mean s |",
             "|---|---|" + "---|" * len(OUTCOMES) + "---|"]
    for job in JOBS:
        rs = [r for r in results if r.job == job]
        if not rs:
            continue
        counts = Counter(r.kind for r in rs)
        mean = sum(r.seconds for r in rs) / len(rs)
        lines.append(f"| {job} | {len(rs)} | " + " | ".join(str(counts[k]) for k in OUTCOMES)
                     + f" | {mean:.2f} |")
    return "\n".join(lines)


def _worst(rs: list[Result]) -> str:
    kinds = [r.kind for r in rs if r.kind not in ("ok", "refused")]
    return kinds[0] if kinds else ("refused" if any(r.kind == "refused" for r in rs) else "ok")


def table_by_kind(results: list[Result]) -> str:
    """Per kind of damage, the cases by their worst outcome over the jobs (a case with two
    kinds of damage counts under each)."""
    cases: dict[str, list[Result]] = {}
    for r in results:
        cases.setdefault(r.case.id, []).append(r)
    counts: dict[str, Counter] = {}
    for rs in cases.values():
        for kind in dict.fromkeys(d.kind for d in rs[0].case.damages):
            counts.setdefault(kind, Counter())[_worst(rs)] += 1
    lines = ["| damage | cases | " + " | ".join(OUTCOMES) + " |",
             "|---|---|" + "---|" * len(OUTCOMES)]
    for kind, c in sorted(counts.items()):
        lines.append(f"| {kind} | {sum(c.values())} | " + " | ".join(str(c[k]) for k in OUTCOMES)
                     + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--backtest-every", type=int, default=4)
    parser.add_argument("--validate-every", type=int, default=10)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    results = sweep(args.seed, args.count, start=args.start, backtest_every=args.backtest_every,
                    validate_every=args.validate_every, log=lambda s: print(s, flush=True))
    print(f"\n{args.count} cases of seed {args.seed} in {time.perf_counter() - started:.0f} s\n")
    print(table(results))
    print()
    print(table_by_kind(results))
    return 0 if all(r.kind in ("ok", "refused") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
