"""Worksheet functions over HTTP: metadata, help texts and calls equal to the direct call."""

from __future__ import annotations

import inspect
import math

import pandas as pd
import pytest

from xl_factorlasso.core.datasets import load_demo_panel
from xl_factorlasso.server import FUNCTIONS


@pytest.fixture(scope="module")
def udfs():
    import xl_factorlasso.udfs as m

    return m


@pytest.fixture(scope="module")
def meta(client):
    r = client.get("/xlwings/custom-functions-meta")
    assert r.status_code == 200, r.text
    return {f["id"]: f for f in r.json()["functions"]}


def _param_doc_key(func_name: str, param: str) -> str:
    if func_name == "FLASSO_MAXDIV":
        return {"settings": "portfolio_settings", "factors": "maxdiv_factors"}.get(param, param)
    return param


def test_metadata_lists_exactly_the_ten_functions(meta, udfs):
    assert sorted(meta) == sorted(FUNCTIONS) == sorted(udfs.__all__)


def test_every_function_and_argument_has_its_help_text(meta, udfs):
    for name, f in meta.items():
        fn = getattr(udfs, name)
        assert f["description"] == inspect.getdoc(fn), name
        assert f["name"] == name  # the manifest supplies the namespace (FACTORLASSO[_DEV].)
        signature = inspect.signature(fn).parameters
        assert [p["name"] for p in f["parameters"]] == list(signature), name
        for p in f["parameters"]:
            assert p["description"] == udfs.DOCS[_param_doc_key(name, p["name"])], (name, p)
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


@pytest.mark.parametrize("case", ["fit", "resid_vol", "maxdiv", "version"])
def test_function_call_equals_the_direct_call(client, udfs, panel, xlwings_version, case):
    R, F = panel
    settings = [["span", 52], ["reg_lambda", 1e-4]]
    http_args, direct = {
        "fit": (("FLASSO_FIT", R, F, [[1e-4]], [["LASSO"]]),
                lambda: udfs.FLASSO_FIT(R, F, 1e-4, "LASSO")),
        "resid_vol": (("FLASSO_RESID_VOL", R, F, None, [["HCGL"]], None, None, settings),
                      lambda: udfs.FLASSO_RESID_VOL(R, F, None, "HCGL", None, None, settings)),
        "maxdiv": (("FLASSO_MAXDIV", R, [["max_weights", 0.25]], [["SPX <= 0.1"]]),
                   lambda: udfs.FLASSO_MAXDIV(R, [["max_weights", 0.25]], [["SPX <= 0.1"]])),
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
