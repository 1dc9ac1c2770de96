"""Ribbon scripts over HTTP: each writes the FL_* outputs; nothing else is callable."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import openpyxl
import pytest

from tests.fake_office_client import apply_actions, book_payload
from xl_factorlasso.server import PROJECT_DIR, SCRIPTS
from xl_factorlasso.workbook import XlsxFileIO

FITTED = {"FL_COEF", "FL_INTERCEPT", "FL_R2", "FL_CLUSTERS", "FL_RESID_VOL", "FL_STATUS"}
WRITES = {
    "refit": FITTED,
    "refit_cv": FITTED | {"FL_CV"},
    "optimise_portfolio": {"FL_WEIGHTS", "FL_PORTFOLIO_STATS", "FL_STATUS"},
}
OUTPUTS = {"FL_COEF", "FL_INTERCEPT", "FL_R2", "FL_CLUSTERS", "FL_RESID_VOL", "FL_CV",
           "FL_WEIGHTS", "FL_PORTFOLIO_STATS", "FL_STATUS"}


def call_script(client, path, name: str, version: str, **kwargs):
    return client.post(f"/xlwings/custom-scripts-call/{name}", json=book_payload(path, version),
                       **kwargs)


def _areas(path: Path) -> dict:
    return XlsxFileIO(str(path)).names()


def _filled(path: Path, area) -> bool:
    return any(v is not None for row in XlsxFileIO(str(path)).read(area) for v in row)


def _written_names(actions: list[dict], areas: dict, titles: list[str]) -> set[str]:
    """The FL_* names whose areas the setValues actions write into (and check nothing else)."""
    hit = set()
    for a in actions:
        if a["func"] != "setValues":
            continue
        sheet = titles[a["sheet_position"]]
        r0, c0 = a["start_row"] + 1, a["start_column"] + 1
        r1, c1 = r0 + a["row_count"] - 1, c0 + a["column_count"] - 1
        inside = [n for n, ar in areas.items()
                  if ar.sheet == sheet and ar.min_row <= r0 and r1 <= ar.max_row
                  and ar.min_col <= c0 and c1 <= ar.max_col]
        assert inside, f"setValues outside every FL_* name: {sheet}!R{r0}C{c0}:R{r1}C{c1}"
        hit.update(inside)
    return hit


@pytest.mark.parametrize("script", ["refit", "refit_cv", "optimise_portfolio"])
def test_script_writes_its_fl_outputs(client, demo_xlsx, tmp_path, xlwings_version, script):
    path = tmp_path / "book.xlsx"
    shutil.copy(demo_xlsx, path)
    r = call_script(client, path, script, xlwings_version)
    assert r.status_code == 200, r.text
    actions = r.json()["actions"]
    assert actions[-1]["func"] == "alert" and actions[-1]["args"][0].startswith(f"{script}:")
    alerts = apply_actions(path, actions)
    assert alerts == [actions[-1]["args"][0]]
    after = _areas(path)  # a table that grew also moved its name (namesAdd/setNameRefersTo)
    titles = openpyxl.load_workbook(path, read_only=True).sheetnames
    assert _written_names(actions, after, titles) & OUTPUTS == WRITES[script]
    for name in WRITES[script]:
        assert _filled(path, after[name]), name


def test_clear_outputs_empties_every_output(client, demo_xlsx, tmp_path, xlwings_version):
    path = tmp_path / "book.xlsx"
    shutil.copy(demo_xlsx, path)
    for script in ("refit", "optimise_portfolio"):
        apply_actions(path, call_script(client, path, script, xlwings_version).json()["actions"])
    assert _filled(path, _areas(path)["FL_COEF"])
    r = call_script(client, path, "clear_outputs", xlwings_version)
    assert r.status_code == 200, r.text
    actions = r.json()["actions"]
    assert {a["func"] for a in actions} <= {"rangeClearContents", "deletePicture", "alert",
                                            "setValues"}
    apply_actions(path, actions)
    areas = _areas(path)
    for name in OUTPUTS - {"FL_STATUS"}:
        if name in areas:
            assert not _filled(path, areas[name]), name


def test_bad_input_gives_one_alert_naming_the_cell(client, demo_xlsx, tmp_path, xlwings_version):
    path = tmp_path / "bad.xlsx"
    shutil.copy(demo_xlsx, path)
    wb = openpyxl.load_workbook(path)
    wb["Signs"]["B3"] = "x"
    wb.save(path)
    r = call_script(client, path, "refit", xlwings_version)
    assert r.status_code == 200
    (action,) = r.json()["actions"]
    assert action["func"] == "alert"
    assert "FL_SIGNS!B3: 'x' is not one of" in action["args"][0]


# --------------------------------------------------------------------------- what is callable
def test_scripts_meta_lists_exactly_the_ribbon_scripts(client):
    r = client.get("/xlwings/custom-scripts-meta")
    assert r.status_code == 200
    assert sorted(m["function_name"] for m in r.json()) == sorted(SCRIPTS)


def test_custom_scripts_namespace_holds_only_decorated_scripts(app):
    """xlwings-server calls ``getattr(custom_scripts, name)`` without checking ``@script``."""
    from xlwings_server.routers.xlwings import custom_scripts  # the module the router uses

    assert Path(custom_scripts.__file__).parent.parent == Path(PROJECT_DIR)

    public = {n for n in vars(custom_scripts) if not n.startswith("_")}
    assert public == set(SCRIPTS)
    for name in public:
        assert hasattr(getattr(custom_scripts, name), "__xlscript__"), name


@pytest.mark.parametrize("name", ["run_book_job", "refit_caller", "xw", "script", "run_job",
                                  "XlwingsBookIO", "os", "__class__", "__init__", "ribbon"])
def test_undecorated_helpers_are_not_callable(client, demo_xlsx, xlwings_version, monkeypatch,
                                              name):
    """The request guard answers before xlwings-server looks the name up (dev included)."""
    from xl_factorlasso import ribbon

    called = []
    monkeypatch.setattr(ribbon, "run_book_job", lambda *a, **k: called.append(a))
    r = call_script(client, demo_xlsx, name, xlwings_version)
    assert r.status_code == 404
    assert r.json() == {"detail": f"no script named {name!r}; the scripts are backtest, "
                                  "clear_outputs, optimise_portfolio, refit, refit_cv"}
    assert called == []


def test_every_action_the_scripts_emit_exists_in_the_office_js_client():
    """Our jobs' action names are in the real client's dispatch table (custom-scripts JS)."""
    import xlwings_server

    js = (Path(xlwings_server.__file__).parent / "static" / "js" / "custom-scripts"
          / "index.js").read_text()
    table = js[js.index("let funcs = {"):]
    table = table[: table.index("};")]
    client_actions = set(re.findall(r"^\s*(\w+):", table, flags=re.M))
    ours = {"setValues", "rangeClearContents", "namesAdd", "setNameRefersTo", "nameDelete",
            "addPicture", "setPictureName", "setPictureWidth", "setPictureHeight",
            "deletePicture", "alert"}  # everything tests/fake_office_client.py replays
    assert ours <= client_actions, ours - client_actions
