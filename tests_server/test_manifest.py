"""The add-in manifest, its ribbon tab, the ribbon JavaScript and the task pane."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from lxml import etree

from xl_factorlasso.server import PROJECT_DIR, RIBBON, SCRIPTS

NS = {
    "o": "http://schemas.microsoft.com/office/appforoffice/1.1",
    "ov": "http://schemas.microsoft.com/office/taskpaneappversionoverrides",
    "bt": "http://schemas.microsoft.com/office/officeappbasictypes/1.0",
    "xsi": "http://www.w3.org/2001/XMLSchema-instance",
}
XSI_TYPE = f"{{{NS['xsi']}}}type"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def manifest(client):
    r = client.get("/manifest")
    assert r.status_code == 200
    return etree.fromstring(r.content)


def _strings(manifest) -> dict[str, str]:
    return {s.get("id"): s.get("DefaultValue")
            for s in manifest.iterfind(".//bt:String", NS)}


def _groups(strings: dict, tab) -> list[tuple[str, list]]:
    return [(strings[g.find("ov:Label", NS).get("resid")], g.findall("ov:Control", NS))
            for g in tab.findall("ov:Group", NS)]


def test_ribbon_tab_has_the_desktop_buttons(manifest):
    (tab,) = manifest.iterfind(".//ov:CustomTab", NS)
    strings = _strings(manifest)
    assert tab.get("id") == "FactorLassoTab"
    assert strings[tab.find("ov:Label", NS).get("resid")] == "Factor LASSO [dev]"
    groups = _groups(strings, tab)
    assert [(label, [c.get("id") for c in controls]) for label, controls in groups] == [
        ("Factor model", ["FactorLassoRefit", "FactorLassoCrossValidate"]),
        ("Portfolio", ["FactorLassoOptimise", "FactorLassoBacktest"]),
        ("Workbook", ["FactorLassoClear", "FactorLassoHelp"]),
    ]
    controls = [(label, c) for label, cs in groups for c in cs]
    assert len(controls) == len(RIBBON)
    for (group, control), button in zip(controls, RIBBON, strict=True):
        assert (group, control.get("id")) == (button.group, button.control_id)
        assert strings[control.find("ov:Label", NS).get("resid")] == button.label
        tooltip = strings[control.find("ov:Supertip/ov:Description", NS).get("resid")]
        assert 0 < len(tooltip) <= 250  # LongString limit
        action = control.find("ov:Action", NS)
        if button.action is None:  # Help: the task pane
            assert action.get(XSI_TYPE) == "ShowTaskpane"
            assert action.find("ov:SourceLocation", NS).get("resid") == "Taskpane.Url"
        else:
            assert action.get(XSI_TYPE) == "ExecuteFunction"
            assert action.find("ov:FunctionName", NS).text == button.action
    assert [b.label for b in RIBBON] == ["Refit", "Cross-validate", "Optimise portfolio",
                                         "Backtest", "Clear outputs", "Help"]
    assert {b.script for b in RIBBON if b.script} == set(SCRIPTS)


def test_every_resource_id_is_defined_and_short_strings_fit(manifest):
    defined = {e.get("id") for e in manifest.iterfind(".//ov:Resources//*[@id]", NS)}
    used = {e.get("resid") for e in manifest.iter() if e.get("resid")}
    assert used <= defined, used - defined
    assert max(len(i) for i in defined) <= 32  # Office's limit for resource ids
    for s in manifest.iterfind(".//bt:ShortStrings/bt:String", NS):
        assert len(s.get("DefaultValue")) <= 125, s.get("id")
    ids = [e.get("id") for e in manifest.iterfind(".//ov:Control", NS)]
    assert len(ids) == len(set(ids))


def test_manifest_identity_urls_and_namespace(manifest, client):
    text = (PROJECT_DIR / "pyproject.toml").read_text()
    ids = dict(re.findall(r'^manifest_id_(\w+) = "([0-9a-f-]{36})"$', text, flags=re.M))
    assert sorted(ids) == ["dev", "prod", "qa", "staging", "uat"]
    assert len(set(ids.values())) == 5
    assert manifest.find("o:Id", NS).text == ids["dev"]
    assert manifest.find("o:DisplayName", NS).get("DefaultValue") == "xl-factorlasso [dev]"
    strings = _strings(manifest)
    assert strings["Functions.Namespace"] == "FACTORLASSO_DEV"
    urls = {u.get("id"): u.get("DefaultValue") for u in manifest.iterfind(".//bt:Url", NS)}
    assert urls == {
        "Taskpane.Url": "http://testserver/taskpane.html",
        "Functions.Script.Url": "http://testserver/xlwings/custom-functions-code.js",
        "Functions.Metadata.Url": "http://testserver/xlwings/custom-functions-meta.json",
    }
    # behind a TLS proxy the URLs are https (Office.js loads add-ins over HTTPS only)
    r = client.get("/manifest", headers={"X-Forwarded-Proto": "https"})
    assert "https://testserver/taskpane.html" in r.text and "http://testserver" not in r.text
    r = client.get("/manifest/download")
    assert r.headers["content-disposition"] == "attachment; filename=xl-factorlasso-dev.xml"


def test_ribbon_js_runs_the_script_of_each_button(client):
    r = client.get("/static/js/ribbon.js")
    assert r.status_code == 200
    js = r.text
    assert js == (PROJECT_DIR / "static" / "js" / "ribbon.js").read_text()  # ours, not the stock
    block = js[js.index("const FLASSO_RIBBON = {"): js.index("};")]
    mapping = dict(re.findall(r'"([\w-]+)":\s*"(\w+)"', block))
    assert mapping == {b.action: b.script for b in RIBBON if b.action}
    assert "Office.actions.associate(action, flassoRibbonHandler(scriptName))" in js
    assert "xlwings.runPython(" in js and "event.completed()" in js


def test_task_pane_is_the_help_page_with_the_ribbon_buttons(client):
    r = client.get("/taskpane.html")
    assert r.status_code == 200
    html = r.text
    assert sorted(re.findall(r'xw-click="(\w+)"', html)) == sorted(SCRIPTS)
    assert "FACTORLASSO_DEV.FLASSO_FIT(FL_RETURNS, FL_FACTORS)" in html
    assert "/static/js/flasso-taskpane.js" in html and "/static/js/ribbon.js" in html
    for path in ("/static/js/flasso-taskpane.js", "/static/js/auth.js"):
        served = client.get(path)
        assert served.status_code == 200
        assert served.text == (PROJECT_DIR / path.lstrip("/")).read_text()


def _desktop_ribbon_sources() -> list[Path]:
    return [p for p in (ROOT / "workbook_template").rglob("*.xml")
            if b"schemas.microsoft.com/office/2009/07/customui" in p.read_bytes()
            or b"schemas.microsoft.com/office/2006/01/customui" in p.read_bytes()]


def test_same_buttons_as_the_desktop_template_ribbon():
    """The desktop template's customUI source: same groups, buttons, labels and ids."""
    sources = _desktop_ribbon_sources()
    if not sources:
        pytest.skip("no desktop customUI source in workbook_template/ yet")
    for source in sources:
        root = etree.parse(str(source)).getroot()
        buttons = [(g.get("label"), b.get("id"), b.get("label"))
                   for g in root.iter() if etree.QName(g).localname == "group"
                   for b in g if etree.QName(b).localname == "button"]
        assert buttons == [(b.group, b.control_id, b.label) for b in RIBBON], source
