"""The worksheet functions through xlwings' own decorators and conversion layer.

xlwings picks its UDF decorators when it is imported (``XLWINGS_ON_SERVER``, pywin32, or
no-ops), so each runtime is checked in a fresh Python process; nothing here changes the
interpreter that runs the other tests.

(a) Classic desktop (Windows COM add-in), emulated on Linux: ``pythoncom``, ``pywintypes`` and
    ``win32com`` are stubbed so that the real ``xlwings._xlwindows`` engine and the real
    ``xlwings.udfs`` import. Its ``xlfunc/xlarg/xlret`` decorate our module (as ``import
    xlwings`` does on Windows), and we check the ``__xlfunc__`` metadata, the VBA that "Import
    Functions" would inject (``generate_vba_wrapper``) and calls through the real
    ``xlwings.udfs.call_udf`` with COM-shaped arguments (tuples, ``pywintypes`` dates, error
    codes, the "missing" marker), i.e. xlwings' real read/write conversion for Windows.
(b) xlwings Server / Office.js: with ``XLWINGS_ON_SERVER=true`` and the ``noncommercial`` key set
    before xlwings is imported, the module carries the Office.js metadata
    (``custom_functions_meta``) and a call through ``xlwings.server.custom_functions_call`` with
    an Office.js-shaped body returns what the direct call returns. Skipped when the key does
    not unlock the PRO engine.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS = ["FLASSO_BEST_LAMBDA", "FLASSO_BETA_HISTORY", "FLASSO_CLUSTERS", "FLASSO_COV", "FLASSO_CV", "FLASSO_FIT", "FLASSO_INTERCEPT",
             "FLASSO_MAXDIV", "FLASSO_NOTES", "FLASSO_PREDICT", "FLASSO_R2", "FLASSO_RESID_VOL",
             "FLASSO_RETURNS", "FLASSO_RISK", "FLASSO_RISK_ASSETS", "FLASSO_VERSION"]

# Shared by both child processes: the demo panel as 2-D lists.
PANEL = '''
import datetime as dt
import numpy as np
import pandas as pd
from xl_factorlasso.core import load_demo_panel

def cells(df, date):
    rows = [[date(d), *(None if np.isnan(v) else float(v) for v in r)]
            for d, r in zip(df.index, df.to_numpy(dtype=float))]
    return [["date", *map(str, df.columns)], *rows]

demo = load_demo_panel()
'''

CLASSIC = PANEL + '''
import ctypes, io, json, sys, types
from unittest import mock


class _Stub(types.ModuleType):
    """A module whose every attribute is a MagicMock (pywin32 is not installable on Linux)."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        value = mock.MagicMock(name=f"{self.__name__}.{name}")
        setattr(self, name, value)
        return value


def stub(name, **attrs):
    module = _Stub(name)
    module.__file__ = f"/nonexistent/{name}.pyd"
    for key, value in attrs.items():
        setattr(module, key, value)
    sys.modules[name] = module
    return module


class TimeType(dt.datetime):  # pywintypes.TimeType is a datetime subclass
    pass


class com_error(Exception):
    pass


stub("pywintypes", TimeType=TimeType, com_error=com_error)
stub("pythoncom")
for name in ("win32api", "win32con", "win32gui", "win32process", "win32timezone", "win32event",
             "win32com", "win32com.client", "win32com.client.dynamic", "win32com.client.gencache",
             "win32com.server", "win32com.server.dispatcher", "win32com.server.policy",
             "win32com.server.util"):
    stub(name)
sys.modules["win32com"].client = sys.modules["win32com.client"]
sys.modules["win32com"].server = sys.modules["win32com.server"]
ctypes.windll = mock.MagicMock(name="windll")
ctypes.oledll = mock.MagicMock(name="oledll")
real_pydll, ctypes.PyDLL = ctypes.PyDLL, mock.MagicMock(name="PyDLL")

import xlwings
from xlwings import _xlwindows  # the real Windows engine: its value cleaning on read/write

ctypes.PyDLL = real_pydll
xlwings.engines.add(xlwings.main.Engine(impl=_xlwindows.engine))
from xlwings import udfs as classic

# What `import xlwings` does on Windows with pywin32: the classic decorators.
xlwings.func, xlwings.arg, xlwings.ret = classic.xlfunc, classic.xlarg, classic.xlret
import xl_factorlasso.udfs as m

out = {"functions": {}}
for name in m.__all__:
    f = getattr(m, name).__xlfunc__
    out["functions"][name] = {
        "name": f["name"], "doc": f["ret"]["doc"], "category": f["category"],
        "call_in_wizard": f["call_in_wizard"], "volatile": f["volatile"], "sub": f["sub"],
        "args": [{"name": a["name"], "doc": a["doc"], "options": a["options"],
                  "optional": "optional" in a, "default": a.get("optional")}
                 for a in f["args"]],
    }

book = mock.MagicMock()
book.Name = "Factors.xlsm"
buf = io.StringIO()
classic.generate_vba_wrapper("xl_factorlasso.udfs", m, buf, book)
out["vba"] = buf.getvalue()

# COM delivers a range as a tuple of row tuples: dates as pywintypes times, empty cells as
# None, error cells as integer codes; an omitted argument as the "missing" marker.
MISSING = -2147352572
NA = -2146826246
com_date = lambda d: TimeType(d.year, d.month, d.day)
py_date = lambda d: d.to_pydatetime()
to_com = lambda table: tuple(tuple(r) for r in table)
R, F = cells(demo.y, com_date), cells(demo.x, com_date)
Rp, Fp = cells(demo.y, py_date), cells(demo.x, py_date)


def call(name, *args):
    return classic.call_udf("xl_factorlasso.udfs", name, args)


def blank(table):  # the classic writer turns None into ""
    return table if isinstance(table, str) else [["" if v is None else v for v in r]
                                                  for r in table]


signs = (("asset", "Equity"), ("SPX", "+"), ("UST10", 0.0))
out["calls"] = {
    "fit": [call("FLASSO_FIT", to_com(R), to_com(F), 1e-4, MISSING, signs, MISSING, MISSING),
            blank(m.FLASSO_FIT(Rp, Fp, 1e-4, None, [list(r) for r in signs]))],
    "r2": [call("FLASSO_R2", to_com(R), to_com(F)), blank(m.FLASSO_R2(Rp, Fp))],
    "maxdiv": [call("FLASSO_MAXDIV", to_com(R), (("max_weights", 0.25),), MISSING, MISSING,
                    MISSING),
               blank(m.FLASSO_MAXDIV(Rp, [["max_weights", 0.25]]))],
    "version": [call("FLASSO_VERSION"), m.FLASSO_VERSION()],
    "error_value": [call("FLASSO_FIT", to_com([*R[:3], [R[3][0], NA, *R[3][2:]], *R[4:]]),
                         to_com(F)), None],
    "one_cell_lambda": [call("FLASSO_FIT", to_com(R), to_com(F), ((1e-4,),)),
                        blank(m.FLASSO_FIT(Rp, Fp, 1e-4))],
}
print(json.dumps(out, default=repr))
'''

SERVER = PANEL + '''
import asyncio, json, math
import xlwings

if not xlwings.__pro__:
    print(json.dumps({"skip": "XLWINGS_LICENSE_KEY does not unlock the xlwings PRO engine"}))
    raise SystemExit(0)
from xlwings import server
import xl_factorlasso.udfs as m

out = {"has_xlfunc": {n: hasattr(getattr(m, n), "__xlfunc__") for n in m.__all__},
       "meta": server.custom_functions_meta(m)}

# Office.js custom functions get every argument as a 2-D matrix; date cells arrive as Excel
# serial numbers (no date type), empty cells as null, error cells as error objects.
serial = lambda d: float((d - pd.Timestamp("1899-12-30")).days)
R, F = cells(demo.y, serial), cells(demo.x, serial)


def body(func_name, *args):
    return {"func_name": func_name, "args": list(args), "caller_address": "[Book1.xlsx]Sheet1!B2",
            "culture_info_name": "en-US", "date_format": "m/d/yyyy",
            "version": xlwings.__version__, "client": "Office.js", "runtime": "1.4"}


def call(func_name, *args):
    return asyncio.run(server.custom_functions_call(body(func_name, *args), m))


def as_server(table):  # what the Office.js writer makes of a direct result
    if isinstance(table, str):
        return [[table]]
    return [["" if v is None else v for v in r] for r in table]


NA = {"type": "Error", "basicValue": "#N/A", "errorType": "NotAvailable"}
settings = [["span", 52], ["reg_lambda", 1e-4]]
out["calls"] = {
    "fit": [call("FLASSO_FIT", R, F, [[1e-4]], None, None, None, None),
            as_server(m.FLASSO_FIT(R, F, 1e-4))],
    "resid_vol": [call("FLASSO_RESID_VOL", R, F, None, [["HCGL"]], None, None, settings),
                  as_server(m.FLASSO_RESID_VOL(R, F, None, "HCGL", None, None, settings))],
    "predict": [call("FLASSO_PREDICT", R, F, F[:4]), as_server(m.FLASSO_PREDICT(R, F, F[:4]))],
    "cv": [call("FLASSO_CV", R, F, [[1e-4, 1e-3]], [[2]]),
           as_server(m.FLASSO_CV(R, F, [[1e-4, 1e-3]], 2))],
    "maxdiv": [call("FLASSO_MAXDIV", R, [["max_weights", 0.25]], [["GOLD <= 0.1"]]),
               as_server(m.FLASSO_MAXDIV(R, [["max_weights", 0.25]], [["GOLD <= 0.1"]]))],
    "version": [call("FLASSO_VERSION"), [[m.FLASSO_VERSION()]]],
    "error_value": [call("FLASSO_FIT", [*R[:3], [R[3][0], NA, *R[3][2:]], *R[4:]], F), None],
    "empty_cells": [call("FLASSO_FIT", [*R[:3], [R[3][0], None, *R[3][2:]], *R[4:]], F),
                    as_server(m.FLASSO_FIT([*R[:3], [R[3][0], None, *R[3][2:]], *R[4:]], F))],
    "error_lambda": [call("FLASSO_FIT", R, F, [[NA]]), None],
    "error_setting": [call("FLASSO_FIT", R, F, None, None, None, None, [["span", NA]]), None],
}
import time

call("FLASSO_FIT", R, F)
start = time.perf_counter()
call("FLASSO_FIT", R, F)
out["repeated_call_seconds"] = time.perf_counter() - start
out["range_options"] = m.FLASSO_FIT.__xlfunc__["args"][0]["options"]
print(json.dumps(out))
'''


def run_child(code: str, env_updates: dict[str, str | None]) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("XLWINGS_ON_SERVER", "XLWINGS_LICENSE_KEY")}
    env.update({k: v for k, v in env_updates.items() if v is not None})
    env.setdefault("MPLBACKEND", "Agg")
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def assert_same_table(got, expected, rel=1e-12):
    assert len(got) == len(expected)
    for row_got, row_exp in zip(got, expected, strict=True):
        assert len(row_got) == len(row_exp)
        for a, b in zip(row_got, row_exp, strict=True):
            if isinstance(b, float) and isinstance(a, (int, float)):
                assert a == pytest.approx(b, rel=rel, abs=1e-15)
            else:
                assert a == b


# --------------------------------------------------------------------------- (a) classic
@pytest.fixture(scope="module")
def classic():
    return run_child(CLASSIC, {})


def test_classic_metadata(classic):
    functions = classic["functions"]
    assert sorted(functions) == FUNCTIONS
    from xl_factorlasso import udfs

    for name, info in functions.items():
        assert info["name"] == name and not info["sub"] and not info["volatile"]
        assert info["category"] == "xl-factorlasso"
        assert info["doc"] == getattr(udfs, name).__doc__  # the wizard's description
        assert info["call_in_wizard"] is (name == "FLASSO_VERSION")  # no fits while typing
        for a in info["args"]:
            assert a["doc"] == udfs.argument_doc(name, a["name"])  # every argument has help
            assert a["options"]["err_to_str"] is True
            if a["name"] not in ("reg_lambda", "model_type", "n_splits", "method",
                                 "span_gaps", "factor", "window", "min_history"):
                assert a["options"]["ndim"] == 2
    fit = functions["FLASSO_FIT"]["args"]
    assert [(a["name"], a["optional"]) for a in fit] == [
        ("returns", False), ("factors", False), ("reg_lambda", True), ("model_type", True),
        ("signs", True), ("prior", True), ("settings", True), ("groups", True)]
    assert all(a["default"] is None for a in fit if a["optional"])


def test_classic_vba_wrappers(classic):
    vba = classic["vba"]
    from xl_factorlasso import udfs

    for name in FUNCTIONS:
        params = list(inspect.signature(getattr(udfs, name)).parameters.values())
        sig = ", ".join(("Optional " if p.default is None else "") + p.name for p in params)
        assert f"Function {name}({sig})" in vba
        call = (f'{name} = XLPy.CallUDF("xl_factorlasso.udfs", "{name}", '
                f"Array({', '.join(p.name for p in params)}), ThisWorkbook, Application.Caller)")
        assert call in vba
    assert vba.count("End Function") == len(FUNCTIONS)
    assert "Sub " not in vba


def test_classic_calls_through_call_udf(classic):
    calls = classic["calls"]
    for key in ("fit", "r2", "maxdiv", "one_cell_lambda"):
        got, expected = calls[key]
        assert isinstance(got, list) and got[0][0] == "asset", (key, got)
        assert_same_table(got, expected)
    assert calls["version"][0] == [[calls["version"][1]]]  # a scalar is written as one cell
    # An #N/A cell reaches us as text thanks to err_to_str=True, and is reported in one cell.
    assert calls["error_value"][0] == [[
        "#FLASSO! returns: row 4, column 2: #N/A is an Excel error value; leave the cell blank "
        "for a missing value"]]


# --------------------------------------------------------------------------- (b) server
@pytest.fixture(scope="module")
def server():
    result = run_child(SERVER, {"XLWINGS_ON_SERVER": "true",
                                "XLWINGS_LICENSE_KEY": "noncommercial"})
    if "skip" in result:
        pytest.skip(result["skip"])
    return result


def test_server_metadata(server):
    assert server["has_xlfunc"] == dict.fromkeys(FUNCTIONS, True)
    from xl_factorlasso import udfs

    meta = {f["id"]: f for f in server["meta"]["functions"]}
    assert sorted(meta) == FUNCTIONS
    for name, f in meta.items():
        assert f["name"].endswith(name)
        assert f["description"] == getattr(udfs, name).__doc__
        assert f["result"] == {"dimensionality": "matrix", "type": "any"}
        for p in f["parameters"]:
            assert p["description"] == udfs.argument_doc(name, p["name"])
            assert p["dimensionality"] == "matrix" and p["type"] == "any"
    params = meta["FLASSO_MAXDIV"]["parameters"]
    assert [(p["name"], p.get("optional", False)) for p in params] == [
        ("returns", False), ("settings", True), ("constraints", True), ("groups", True),
        ("factors", True), ("signs", True), ("prior", True), ("model_settings", True),
        ("model_groups", True), ("previous_weights", True)]


def test_server_calls_equal_direct_calls(server):
    calls = server["calls"]
    for key in ("fit", "resid_vol", "predict", "cv", "maxdiv", "empty_cells", "version"):
        got, expected = calls[key]
        assert isinstance(got, list) and not str(got[0][0]).startswith("#FLASSO!"), (key, got)
        assert_same_table(got, expected)
    assert calls["predict"][0][1][0] == 43469.0  # Office.js dates are serial numbers
    # An error cell arrives as an error object, reported like on the desktop.
    assert calls["error_value"][0] == [[
        "#FLASSO! returns: row 4, column 2: #N/A is an Excel error value; leave the cell blank "
        "for a missing value"]]
    assert calls["error_lambda"][0] == [["#FLASSO! reg_lambda: #N/A is an Excel error value"]]
    assert calls["error_setting"][0][0][0].startswith("#FLASSO! settings: row 1, column 2:")


def test_server_reads_ranges_without_the_per_cell_conversion(server):
    """Ranges are read "raw" on Office.js (see udfs._RANGE): a recalculation of a cached fit on
    the demo panel takes milliseconds (xlwings' Office.js reader needs ~0.4 s for it)."""
    assert server["range_options"] == {"convert": "raw"}
    assert server["repeated_call_seconds"] < 0.2
