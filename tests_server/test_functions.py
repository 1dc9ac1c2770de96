"""Worksheet functions over HTTP: metadata, help texts, calls equal to the direct call, and the
namespace: the formulas of a template written for this add-in call its functions."""

from __future__ import annotations

import inspect
import math
import re
from pathlib import Path

import pandas as pd
import pytest

from xl_factorlasso.core.datasets import load_demo_panel
from xl_factorlasso.server import (
    FUNCTIONS,
    FUNCTIONS_NAMESPACE,
    PROJECT_DIR,
    functions_namespace,
    namespaced_formula,
)


@pytest.fixture(scope="module")
def udfs():
    import xl_factorlasso.udfs as m

    return m


@pytest.fixture(scope="module")
def meta(client):
    r = client.get("/xlwings/custom-functions-meta")
    assert r.status_code == 200, r.text
    return {f["id"]: f for f in r.json()["functions"]}


def test_metadata_lists_exactly_the_functions(meta, udfs):
    assert sorted(meta) == sorted(FUNCTIONS) == sorted(udfs.__all__)


def test_every_function_and_argument_has_its_help_text(meta, udfs):
    for name, f in meta.items():
        fn = getattr(udfs, name)
        assert f["description"] == inspect.getdoc(fn), name
        assert f["name"] == name  # the manifest supplies the namespace (FACTORLASSO[_DEV].)
        signature = inspect.signature(fn).parameters
        assert [p["name"] for p in f["parameters"]] == list(signature), name
        for p in f["parameters"]:
            assert p["description"] == udfs.argument_doc(name, p["name"]), (name, p)
            has_default = signature[p["name"]].default is not inspect.Parameter.empty
            assert p.get("optional", False) == has_default, (name, p["name"])
            assert p["dimensionality"] == "matrix"  # ranges and scalars both arrive as 2-D
        assert f["result"]["dimensionality"] == "matrix"  # results spill


def test_functions_code_associates_every_function(client):
    r = client.get("/xlwings/custom-functions-code.js")
    assert r.status_code == 200
    associated = {line.split('"')[1] for line in r.text.splitlines()
                  if line.startswith("CustomFunctions.associate(")}
    assert associated == set(FUNCTIONS)


# --------------------------------------------------------------------------- calls
def _serial(d) -> float:  # Office.js passes date cells as serial numbers
    return float((pd.Timestamp(d) - pd.Timestamp("1899-12-30")).days)


def _cells(frame: pd.DataFrame) -> list[list]:
    rows = [[_serial(d), *(None if math.isnan(v) else float(v) for v in r)]
            for d, r in zip(frame.index, frame.to_numpy(dtype=float), strict=True)]
    return [["date", *map(str, frame.columns)], *rows]


@pytest.fixture(scope="module")
def panel():
    demo = load_demo_panel()
    return _cells(demo.y.iloc[:, :8]), _cells(demo.x)


def _body(version: str, func_name: str, *args) -> dict:
    """What Office.js' custom-functions runtime posts (every argument a 2-D matrix)."""
    return {"client": "Office.js", "version": version, "runtime": "1.4",
            "func_name": func_name, "args": list(args),
            "caller_address": "[Book1.xlsx]Formulas!B2", "culture_info_name": "en-US",
            "date_format": "m/d/yyyy"}


def _as_written(table) -> list[list]:
    """A direct result as the server's Office.js writer sends it (None -> "")."""
    if isinstance(table, str):
        return [[table]]
    return [["" if v is None else v for v in row] for row in table]


def _assert_same(got, expected):
    assert len(got) == len(expected)
    for rg, re_ in zip(got, expected, strict=True):
        assert len(rg) == len(re_)
        for a, b in zip(rg, re_, strict=True):
            if isinstance(b, float):
                assert a == pytest.approx(b, rel=1e-12, abs=1e-15)
            else:
                assert a == b


@pytest.mark.parametrize("case", ["fit", "resid_vol", "maxdiv", "risk", "risk_weights",
                                  "returns", "version"])
def test_function_call_equals_the_direct_call(client, udfs, panel, xlwings_version, case):
    R, F = panel
    settings = [["span", 52], ["reg_lambda", 1e-4]]
    factor = [["covariance", "factor"], ["max_weights", 0.25], ["annualization_factor", 52]]
    weights = [["asset", "weight"], [R[0][1], 0.5], [R[0][3], 0.5]]
    prices = _cells(100 * (1 + load_demo_panel().y.iloc[:30, :4]).cumprod())
    http_args, direct = {
        "fit": (("FLASSO_FIT", R, F, [[1e-4]], [["LASSO"]]),
                lambda: udfs.FLASSO_FIT(R, F, 1e-4, "LASSO")),
        "resid_vol": (("FLASSO_RESID_VOL", R, F, None, [["HCGL"]], None, None, settings),
                      lambda: udfs.FLASSO_RESID_VOL(R, F, None, "HCGL", None, None, settings)),
        "maxdiv": (("FLASSO_MAXDIV", R, [["max_weights", 0.25]], [["SPX <= 0.1"]]),
                   lambda: udfs.FLASSO_MAXDIV(R, [["max_weights", 0.25]], [["SPX <= 0.1"]])),
        "risk": (("FLASSO_RISK", R, factor, None, None, F),
                 lambda: udfs.FLASSO_RISK(R, factor, None, None, F)),
        "risk_weights": (("FLASSO_RISK_ASSETS", R, factor, None, None, F, *[None] * 5, weights),
                         lambda: udfs.FLASSO_RISK_ASSETS(R, factor, None, None, F, *[None] * 5,
                                                         weights)),
        "returns": (("FLASSO_RETURNS", prices, [["log"]]),
                    lambda: udfs.FLASSO_RETURNS(prices, "log")),
        "version": (("FLASSO_VERSION",), lambda: udfs.FLASSO_VERSION()),
    }[case]
    udfs.cache_clear()
    r = client.post("/xlwings/custom-functions-call", json=_body(xlwings_version, *http_args))
    assert r.status_code == 200, r.text
    got = r.json()["result"]
    udfs.cache_clear()  # the direct call computes again instead of reusing the server's fit
    expected = _as_written(direct())
    assert not str(expected[0][0]).startswith("#FLASSO!"), expected
    _assert_same(got, expected)


def test_bad_input_is_a_flasso_cell_not_an_http_error(client, panel, xlwings_version):
    R, F = panel
    na = {"type": "Error", "basicValue": "#N/A", "errorType": "NotAvailable"}
    bad = [*R[:3], [R[3][0], na, *R[3][2:]], *R[4:]]
    r = client.post("/xlwings/custom-functions-call", json=_body(xlwings_version, "FLASSO_FIT",
                                                                  bad, F))
    assert r.status_code == 200
    (cell,), = r.json()["result"]
    assert cell.startswith("#FLASSO! returns:") and "#N/A" in cell


def test_request_without_runtime_is_refused(client, panel, xlwings_version):
    """Office.js always sends ``runtime``; the server needs it (reference §3.3)."""
    body = _body(xlwings_version, "FLASSO_VERSION")
    del body["runtime"]
    assert client.post("/xlwings/custom-functions-call", json=body).status_code >= 400


# --------------------------------------------------------------------------- the namespace
def _build():
    import importlib.util

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("factorlasso_template_build_server",
                                                  root / "workbook_template" / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def manifest_namespace(client):
    from lxml import etree

    r = client.get("/manifest")
    assert r.status_code == 200
    root = etree.fromstring(r.content)
    bt = "http://schemas.microsoft.com/office/officeappbasictypes/1.0"
    strings = {s.get("id"): s.get("DefaultValue") for s in root.iter(f"{{{bt}}}String")}
    ov = "http://schemas.microsoft.com/office/taskpaneappversionoverrides"
    (point,) = [e for e in root.iter(f"{{{ov}}}ExtensionPoint")
                if e.get("{http://www.w3.org/2001/XMLSchema-instance}type") == "CustomFunctions"]
    assert point.find(f"{{{ov}}}Namespace").get("resid") == "Functions.Namespace"
    return strings["Functions.Namespace"]


def test_the_namespace_rule_is_the_manifests(manifest_namespace, server_settings):
    assert server_settings.environment == "dev"  # tests_server/conftest.py
    assert manifest_namespace == "FACTORLASSO_DEV" == functions_namespace(
        server_settings.functions_namespace, server_settings.environment)
    assert functions_namespace() == FUNCTIONS_NAMESPACE == "FACTORLASSO"  # prod
    assert functions_namespace("factorlasso", "qa") == "FACTORLASSO_QA"
    toml = (PROJECT_DIR / "pyproject.toml").read_text(encoding="utf-8")
    assert f'functions_namespace = "{FUNCTIONS_NAMESPACE}"' in toml


def test_the_task_pane_names_every_function_in_the_namespace(client, manifest_namespace):
    html = client.get("/taskpane.html").text
    assert f"={manifest_namespace}.FLASSO_FIT(FL_RETURNS, FL_FACTORS)" in html
    listed = set(re.findall(r"\bFLASSO_[A-Z0-9_]+", html))
    assert listed == set(FUNCTIONS)


def test_namespaced_formula():
    f = '=INDEX(FLASSO_CV(R, F), XMATCH("best", INDEX(FLASSO_CV(R, F), , 8), 0, -1), 1)'
    assert namespaced_formula(f, "FACTORLASSO") == (
        '=INDEX(FACTORLASSO.FLASSO_CV(R, F), XMATCH("best", INDEX(FACTORLASSO.FLASSO_CV(R, F), '
        ', 8), 0, -1), 1)')
    stored = namespaced_formula(f, "FACTORLASSO", stored=True)
    assert stored.count("_xldudf_FACTORLASSO_FLASSO_CV(") == 2
    # already namespaced: typed -> stored only; quoted text and other names untouched
    assert namespaced_formula("=FACTORLASSO.FLASSO_FIT(R,F)", "FACTORLASSO") == (
        "=FACTORLASSO.FLASSO_FIT(R,F)")
    assert namespaced_formula("=FACTORLASSO.FLASSO_FIT(R,F)", "factorlasso", stored=True) == (
        "=_xldudf_FACTORLASSO_FLASSO_FIT(R,F)")
    assert namespaced_formula('=MYFLASSO_FIT(A1)&"FLASSO_FIT(x)"', "NS") == (
        '=MYFLASSO_FIT(A1)&"FLASSO_FIT(x)"')


def _serials(rows):
    """Cell values as Office.js sends them: dates as serial numbers, blanks as null."""
    import datetime as dt

    def cell(v):
        if isinstance(v, dt.datetime):
            return _serial(v)
        if isinstance(v, int) and not isinstance(v, bool):
            return float(v)
        return v

    return [[cell(v) for v in row] for row in rows]


class _OverHttp:
    """The functions as the server add-in runs them: each call is an Office.js request."""

    def __init__(self, client, version, names):
        self.client, self.version, self.names = client, version, set(names)

    def __getattr__(self, name):
        if name not in self.names:
            raise AttributeError(name)

        def call(*args):
            body = _body(self.version, name, *[None if a is None else
                                               a if isinstance(a, list) else [[a]]
                                               for a in args])
            r = self.client.post("/xlwings/custom-functions-call", json=body)
            assert r.status_code == 200, r.text
            result = r.json()["result"]
            return result[0][0] if len(result) == 1 == len(result[0]) else result

        return call


def test_the_server_template_formulas_call_the_registered_functions_and_compute(
        client, udfs, meta, manifest_namespace, xlwings_version, tmp_path):
    """The template written for this server's namespace (``build_template_for``): every
    formula of the file calls registered functions under the manifest's namespace, in the form
    an .xlsx stores them, and over HTTP gives the numbers of the desktop template's formula."""
    import zipfile

    import openpyxl
    from lxml import etree

    build = _build()
    ns = manifest_namespace
    path = build.build_template_for(tmp_path / "server.xlsx", ns)
    wb = openpyxl.load_workbook(path)
    ws = wb["Formulas"]  # (the scenario and price panels are on it)
    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    cells = []
    with zipfile.ZipFile(path) as zf:
        for title in build.FORMULA_SHEET_NAMES:
            index = wb.sheetnames.index(title) + 1
            sheet = etree.fromstring(zf.read(f"xl/worksheets/sheet{index}.xml"))
            cells += [f.getparent() for f in sheet.iter(f"{{{main}}}f")]
    assert cells and all(c.get("cm") == "1" for c in cells)  # dynamic arrays: they spill
    stored = [c.find(f"{{{main}}}f").text for c in cells]
    assert len(stored) == len(build.FORMULAS)
    called = set()
    for formula in stored:
        names = re.findall(r"([A-Za-z_][\w.]*)\(", formula)
        # Excel's own INDEX/MATCH pick FLASSO_BETA_HISTORY's arguments out of the settings
        ours = [n for n in names if n not in ("INDEX", "MATCH")]
        assert ours and all(n.startswith(f"_xldudf_{ns}_") for n in ours), formula
        called |= {n[len(f"_xldudf_{ns}_"):] for n in ours}
    assert called == set(meta) == set(FUNCTIONS)
    typed = {build.split_formula(f.format(scenarios="A1:G4", prices="A6:G10"))[0]
             for _n, _w, f, _fmt in build.formulas_for(ns)}
    assert typed == {f"{ns}.{m['name']}" for m in meta.values()}  # as Excel shows them
    # a desktop formula is #NAME? under this add-in, and the other way round
    assert build.evaluate_formula("=FLASSO_VERSION()", {}, udfs, ns) == "#NAME?"
    assert build.evaluate_formula(stored[0], {}, udfs) == "#NAME?"

    values = build._name_values(wb)
    # the scenario panel of FLASSO_PREDICT and the prices of FLASSO_RETURNS: ranges of the sheet
    panels = {}
    for formula in stored:
        name, args = build.split_formula(formula)
        panels.update({name[len(f"_xldudf_{ns}_"):]: a for a in args if ":" in a})
    assert sorted(panels) == ["FLASSO_PREDICT", "FLASSO_RETURNS"]
    for area in panels.values():
        values[area] = [[c.value for c in row] for row in ws[area]]
    scenarios, prices = panels["FLASSO_PREDICT"], panels["FLASSO_RETURNS"]
    over_http = _OverHttp(client, xlwings_version, meta)
    office = {k: _serials(v) for k, v in values.items()}
    udfs.cache_clear()
    desktop_of = {name: f for name, _what, f, _fmt in build.FORMULAS}
    for formula in stored:
        desktop = desktop_of[build.split_formula(formula)[0][len(f"_xldudf_{ns}_"):]]
        got = build.evaluate_formula(formula, office, over_http, ns)
        expected = build.evaluate_formula(desktop.format(scenarios=scenarios, prices=prices),
                                          values, udfs)
        if isinstance(expected, list):
            expected = _serials(expected)
            if expected[0][0] == "date":  # FLASSO_PREDICT, _RETURNS, _BETA_HISTORY: serial
                # dates are periods
                expected[0][0] = "period"
        _assert_same(got if isinstance(got, list) else [[got]], _as_written(
            expected if isinstance(expected, list) else [[expected]]))
