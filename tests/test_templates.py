"""The committed workbook templates: VBA, ribbon, names, tables, jobs, the Start sheet, drift.

Checked on the files users get (``xl_factorlasso/templates/factorlasso_template*.xls*``: one per
add-in -- desktop ``.xlsx``, desktop ``.xlsm`` with the ribbon, server ``_server.xlsx`` -- each
with the synthetic and the S&P 500 sample; shipped in the wheel and written by
``xl-factorlasso template``), built from the sources in ``workbook_template/``:

* the VBA project, read back by oletools (an independent reader of [MS-OVBA]/[MS-CFB]), holds
  ``src/FactorLassoRibbon.bas`` exactly, plus one document module per sheet and the workbook;
* the ribbon part is ``src/customUI14.xml``, linked from ``_rels/.rels`` with the extensibility
  relationship, and every ``onAction`` names a ``Sub X(control As IRibbonControl)`` of the .bas;
* every FL_* contract name resolves, every input is an Excel table its name refers to
  (``=tblReturns[#All]``), ``xl-factorlasso inspect`` finds no problem, and
  ``xl-factorlasso refit --cv --portfolio`` writes the outputs and keeps VBA and ribbon bytes;
* the Formulas sheet: each ``=FLASSO_*`` example is a dynamic-array formula on the FL_* names,
  written for its add-in (``FACTORLASSO.FLASSO_FIT`` in the server template), computes without
  error in Python and has room to spill, formatted beyond its answer on the template as the
  answer is (FLASSO_MAXDIV's weights as percentages, its statistics as FL_PORTFOLIO_STATS);
* the S&P 500 sample: the weekly returns of skfolio's prices, computed here independently, and
  the source and skfolio's licence text on the Start sheet;
* LibreOffice headless (when installed) opens both templates, the names resolve in the converted
  file and its Basic import of the module is our source;
* the Start sheet points only at what a pip user has: commands of this package, no repository
  paths, no ``pip install xl-factorlasso`` (not published);
* drift: ``python workbook_template/build.py`` rebuilds the same member contents.

What Excel itself does with the files (rendering the tab, compiling the VBA, RunPython) cannot be
run here; see workbook_template/README.md.
"""

from __future__ import annotations

import html
import importlib.util
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import olefile
import pandas as pd
import pytest
from lxml import etree
from oletools.olevba import VBA_Parser, decompress_stream
from openpyxl.utils.cell import range_boundaries

from xl_factorlasso import load_demo_panel
from xl_factorlasso.cli import main as cli_main
from xl_factorlasso.workbook import CONTRACT, OUTPUTS, Area, XlsxFileIO
from xl_factorlasso.workbook._backtest import BACKTEST_OUTPUTS
from xl_factorlasso.workbook._builder import LAYOUT, TABLES
from xl_factorlasso.workbook._xlsx import XlsxPackage

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE_DIR = ROOT / "workbook_template"  # the sources and build.py
SHIPPED = ROOT / "xl_factorlasso" / "templates"  # what build.py writes and the wheel ships
XLSX = SHIPPED / "factorlasso_template.xlsx"
XLSM = SHIPPED / "factorlasso_template.xlsm"
SERVER = SHIPPED / "factorlasso_template_server.xlsx"
SP500_XLSX = SHIPPED / "factorlasso_template_sp500.xlsx"
SP500_XLSM = SHIPPED / "factorlasso_template_sp500.xlsm"
SP500_SERVER = SHIPPED / "factorlasso_template_sp500_server.xlsx"
ALL_TEMPLATES = [XLSX, XLSM, SERVER, SP500_XLSX, SP500_XLSM, SP500_SERVER]
MACRO = (XLSM, SP500_XLSM)
SERVER_TEMPLATES = (SERVER, SP500_SERVER)
SP500_TEMPLATES = (SP500_XLSX, SP500_XLSM, SP500_SERVER)
BAS = TEMPLATE_DIR / "src" / "FactorLassoRibbon.bas"
CUSTOM_UI = TEMPLATE_DIR / "src" / "customUI14.xml"

CT = "http://schemas.openxmlformats.org/package/2006/content-types"
PR = "http://schemas.openxmlformats.org/package/2006/relationships"
MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
RT_UI = "http://schemas.microsoft.com/office/2007/relationships/ui/extensibility"
RT_VBA = "http://schemas.microsoft.com/office/2006/relationships/vbaProject"
CUSTOMUI_NS = "http://schemas.microsoft.com/office/2009/07/customui"
XLSM_MAIN = "application/vnd.ms-excel.sheet.macroEnabled.main+xml"
XLSX_MAIN = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"
RIBBON_PARTS = ("xl/vbaProject.bin", "customUI/customUI14.xml", "_rels/.rels")
BUTTONS = ["Refit", "Cross-validate", "Optimise portfolio", "Backtest", "Clear outputs",
           "Help"]
FORMULA_SHEETS = ["Formulas", "Formulas CV", "Formulas Portfolio", "Formulas History"]
SHEETS = ["Start", "Returns", "Factors", "Signs", "Prior", "Settings", "Results", "Portfolio",
          *FORMULA_SHEETS, "xlwings.conf"]
BOTH = pytest.mark.parametrize("template", [XLSX, XLSM], ids=["xlsx", "xlsm"])
ALL = pytest.mark.parametrize("template", ALL_TEMPLATES, ids=[p.stem.replace(
    "factorlasso_template", "t") + p.suffix for p in ALL_TEMPLATES])
EACH_MACRO = pytest.mark.parametrize("template", MACRO, ids=["xlsm", "sp500-xlsm"])


def _load_build():
    spec = importlib.util.spec_from_file_location("factorlasso_template_build",
                                                  TEMPLATE_DIR / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build = _load_build()
import vbaproject  # noqa: E402  (workbook_template/, put on sys.path by build.py)


def _members(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None
        return {n: zf.read(n) for n in zf.namelist()}


def _xml(data: bytes):
    return etree.fromstring(data)


def _rels(members, part) -> list[tuple[str, str]]:
    return [(r.get("Type"), r.get("Target")) for r in _xml(members[part])]


def _sheet_parts(members) -> dict[str, str]:
    """sheet name -> worksheet part name."""
    rels = {r.get("Id"): r.get("Target") for r in _xml(members["xl/_rels/workbook.xml.rels"])}
    out = {}
    for s in _xml(members["xl/workbook.xml"]).iter(f"{{{MAIN}}}sheet"):
        target = rels[s.get(f"{{{REL}}}id")]
        out[s.get("name")] = target.lstrip("/") if target.startswith("/") else "xl/" + target
    return out


def _bas_text() -> str:
    return BAS.read_text(encoding="ascii")


def _without_attributes(code: str) -> str:
    lines = code.replace("\r\n", "\n").split("\n")
    return "\n".join(line for line in lines if not line.startswith("Attribute VB_"))


def _module_name() -> str:
    return re.match(r'Attribute VB_Name = "(\w+)"', _bas_text()).group(1)


def _ribbon_subs() -> set[str]:
    return set(re.findall(r"^Public Sub (\w+)\(control As IRibbonControl\)$", _bas_text(), re.M))


@pytest.fixture(scope="module")
def committed():
    missing = [p.name for p in ALL_TEMPLATES if not p.exists()]
    if missing:
        pytest.fail(f"not built: {missing}; run python workbook_template/build.py")
    return {p: _members(p) for p in ALL_TEMPLATES}


# =============================================================================== the VBA project
@EACH_MACRO
def test_olevba_reads_back_the_bas_source_exactly(template, committed):
    parser = VBA_Parser(str(template))
    try:
        assert parser.detect_vba_macros()
        modules = {name: code for _f, _s, name, code in parser.extract_macros()}
    finally:
        parser.close()
    name = _module_name()
    code = modules[f"{name}.bas"]
    # stored text = the .bas with CRLF line ends (the Attribute header included, as VBA keeps it)
    assert code == _bas_text().replace("\n", "\r\n")
    assert _without_attributes(code) == _without_attributes(_bas_text())
    # the document modules of the workbook and of every sheet, and nothing else
    codenames = _code_names(committed[template])
    assert set(modules) == {f"{name}.bas"} | {f"{c}.cls" for c in codenames}
    for c in codenames:
        assert modules[f"{c}.cls"].startswith(f'Attribute VB_Name = "{c}"\r\n')


def test_xlsx_has_no_macros_and_no_ribbon(committed):
    for template in ALL_TEMPLATES:
        if template.suffix != ".xlsx":
            continue
        members = committed[template]
        assert not [n for n in members if n.endswith(".bin") or n.startswith("customUI")]
        assert RT_UI not in {t for t, _ in _rels(members, "_rels/.rels")}
        parser = VBA_Parser(str(template))
        try:
            assert not parser.detect_vba_macros(), template.name
        finally:
            parser.close()


def _code_names(members) -> list[str]:
    """The workbook's codeName, then each sheet's, in workbook order."""
    book = _xml(members["xl/workbook.xml"])
    names = [book.find(f"{{{MAIN}}}workbookPr").get("codeName")]
    for _sheet, part in _sheet_parts(members).items():
        pr = _xml(members[part]).find(f"{{{MAIN}}}sheetPr")
        names.append(pr.get("codeName") if pr is not None else None)
    return names


@EACH_MACRO
def test_vba_project_structure(template, committed):
    members = committed[template]
    ole = olefile.OleFileIO(members["xl/vbaProject.bin"], raise_defects=olefile.DEFECT_INCORRECT)
    try:
        codenames = _code_names(members)
        assert codenames[0] == "ThisWorkbook" and None not in codenames
        streams = {"/".join(e) for e in ole.listdir()}
        assert streams == {"PROJECT", "PROJECTwm", "VBA/_VBA_PROJECT", "VBA/dir",
                           *(f"VBA/{c}" for c in codenames), f"VBA/{_module_name()}"}
        # no p-code: version 0xFFFF tells Office to compile the source ([MS-OVBA] 2.3.4.1)
        assert ole.openstream("VBA/_VBA_PROJECT").read() == b"\xcc\x61\xff\xff\x00\x00\x00"
        project = ole.openstream("PROJECT").read().decode("cp1252")
        assert f"Module={_module_name()}\r\n" in project
        for c in codenames:
            assert f"Document={c}/&H00000000\r\n" in project
        fields = dict(re.findall(r'^(CMG|DPB|GC)="([0-9A-F]+)"', project, re.M))
        assert vbaproject.decrypt(fields["CMG"]) == bytes(4)  # not protected
        assert vbaproject.decrypt(fields["DPB"]) == b"\x00"  # no password
        assert vbaproject.decrypt(fields["GC"]) == b"\xff"  # visible
        directory = decompress_stream(bytearray(ole.openstream("VBA/dir").read()))
        # IRibbonControl comes from the Office object library
        assert b"{2DF8D04C-5BFA-101B-BDE5-00AA0044DE52}" in directory
        _check_red_black(ole)
    finally:
        ole.close()


RED, BLACK = 0, 1  # [MS-CFB] 2.6.1 Color Flag (olefile's comment has them the other way round)


def _check_red_black(ole) -> None:
    """Every storage's children form a red-black binary search tree ([MS-CFB] 2.6.4)."""
    entries = ole.direntries

    def walk(sid, lo_key, hi_key):
        if sid == olefile.NOSTREAM:
            return 1
        e = entries[sid]
        key = (len(e.name), e.name.upper())
        assert (lo_key is None or lo_key < key) and (hi_key is None or key < hi_key)
        if e.color == RED:
            for child in (e.sid_left, e.sid_right):
                assert child == olefile.NOSTREAM or entries[child].color == BLACK
        left, right = walk(e.sid_left, lo_key, key), walk(e.sid_right, key, hi_key)
        assert left == right
        return left + (e.color == BLACK)

    for e in entries:
        if e is not None and e.entry_type in (olefile.STGTY_ROOT, olefile.STGTY_STORAGE):
            if e.sid_child != olefile.NOSTREAM:
                assert entries[e.sid_child].color == BLACK
            walk(e.sid_child, None, None)


def test_compression_is_read_back_by_oletools():
    """[MS-OVBA] 2.4.1 compression against oletools' decompressor, with long repeats."""
    rng = random.Random(5)
    text = _bas_text().encode("ascii")
    cases = [b"a", b"abc" * 2000, text * 7, bytes(rng.randrange(256) for _ in range(5000)),
             b"".join(rng.choice([b"Sub ", b"End Sub\r\n", b" ", b"x" * 40]) for _ in range(3000))]
    for data in cases:
        back = bytes(decompress_stream(bytearray(vbaproject.compress(data))))
        # an incompressible final chunk is stored raw and padded to 4096 bytes (2.4.1.3.10)
        assert back[: len(data)] == data and not back[len(data):].strip(b"\x00")


def test_decryption_agrees_with_an_excel_written_project():
    """The CMG/DPB/GC of xlwings' quickstart.xlsm (saved by Excel) decode to the known values."""
    import xlwings

    path = Path(xlwings.__file__).parent / "quickstart.xlsm"
    if not path.exists():
        pytest.skip("xlwings' quickstart.xlsm is not installed")
    bin_ = zipfile.ZipFile(path).read("xl/vbaProject.bin")
    ole = olefile.OleFileIO(bin_)
    project = ole.openstream("PROJECT").read().decode("cp1252")
    ole.close()
    fields = dict(re.findall(r'^(CMG|DPB|GC)="([0-9A-F]+)"', project, re.M))
    assert vbaproject.decrypt(fields["CMG"]) == bytes(4)
    assert vbaproject.decrypt(fields["DPB"]) == b"\x00"
    assert vbaproject.decrypt(fields["GC"]) == b"\xff"
    project_id = re.search(r'^ID="(\{[0-9A-F-]+\})"', project, re.M).group(1)
    for seed in (0, 0x13, 0x26, 0xFF):
        ignored = bytes(range((seed & 6) // 2))
        hex_text = vbaproject.encrypt(project_id, b"\x00\xff", seed, ignored)
        assert vbaproject.decrypt(hex_text) == b"\x00\xff"


# =============================================================================== ribbon + parts
@EACH_MACRO
def test_custom_ui_is_linked_and_every_action_is_a_sub(template, committed):
    members = committed[template]
    assert members["customUI/customUI14.xml"] == CUSTOM_UI.read_bytes()
    assert (RT_UI, "customUI/customUI14.xml") in _rels(members, "_rels/.rels")
    root = _xml(members["customUI/customUI14.xml"])  # well-formed
    assert root.tag == f"{{{CUSTOMUI_NS}}}customUI"
    tabs = list(root.iter(f"{{{CUSTOMUI_NS}}}tab"))
    assert [t.get("label") for t in tabs] == ["Factor LASSO"]
    buttons = list(root.iter(f"{{{CUSTOMUI_NS}}}button"))
    assert [b.get("label") for b in buttons] == BUTTONS
    ids = [e.get("id") for e in root.iter() if e.get("id")]
    assert len(ids) == len(set(ids))
    module, subs = _module_name(), _ribbon_subs()
    actions = [e.get("onAction") for e in root.iter() if e.get("onAction")]
    assert len(actions) == len(BUTTONS)
    for action in actions:
        mod, _, sub = action.partition(".")
        assert mod == module and sub in subs, action
    # each ribbon Sub calls its ribbon.py entry point through the xlwings add-in's RunPython
    from xl_factorlasso import ribbon

    text = _bas_text()
    for entry in ("refit_caller", "refit_cv_caller", "optimise_portfolio_caller",
                  "backtest_caller", "clear_outputs_caller"):
        assert f'RunEntryPoint "{entry}"' in text and callable(getattr(ribbon, entry))
    assert "Application.Run RUN_PYTHON, \"import xl_factorlasso.ribbon as r; r.\"" in text


def _msgbox_prompts(bas: str) -> list[str]:
    """The constant text of each MsgBox prompt (string literals and vbCr, joined by & _)."""
    prompts = []
    for m in re.finditer(r"MsgBox[ (](.*?),\s*(?:_\s+)?vb\w+(?: \+ vb\w+)*, TITLE", bas, re.S):
        parts = re.findall(r'"((?:[^"]|"")*)"|\b(vbCr)\b', m.group(1))
        prompts.append("".join("\n" if cr else lit.replace('""', '"') for lit, cr in parts))
    return prompts


def test_vba_messages_fit_and_install_only_what_exists():
    prompts = _msgbox_prompts(_bas_text())
    assert len(prompts) == 3  # Clear outputs' question, Help, the add-in failure
    for text in prompts:
        assert len(text) < 1024 - 256, text  # MsgBox's limit, with room for Err.Description
    install = [t for t in prompts if "pip install" in t]
    assert len(install) == 2
    for text in install:
        # not published: no instruction may fetch xl-factorlasso by name from an index
        assert not re.search(r"pip install [\"']?xl[-_]factorlasso(?![-\w.])", text)
        assert "pip install xl_factorlasso-<version>-py3-none-any.whl" in text
        assert "not on PyPI" in text and "xlwings addin install" in text


def test_macro_enabled_package_parts(committed):
    for path in ALL_TEMPLATES:
        main_type = XLSM_MAIN if path in MACRO else XLSX_MAIN
        members = committed[path]
        types = _xml(members["[Content_Types].xml"])
        overrides = {o.get("PartName"): o.get("ContentType") for o in types.iter(f"{{{CT}}}Override")}
        defaults = {d.get("Extension"): d.get("ContentType") for d in types.iter(f"{{{CT}}}Default")}
        assert overrides["/xl/workbook.xml"] == main_type
        vba_rel = ("http://schemas.microsoft.com/office/2006/relationships/vbaProject",
                   "vbaProject.bin")
        has_vba = vba_rel in _rels(members, "xl/_rels/workbook.xml.rels")
        assert has_vba == (path in MACRO)
        if path in MACRO:
            assert defaults["bin"] == "application/vnd.ms-office.vbaProject"
            assert defaults["xml"] == "application/xml"  # covers customUI/customUI14.xml


# =============================================================================== contract
@ALL
def test_every_contract_name_resolves(template, committed):
    names = XlsxPackage.open(template).defined_names()
    sheets = XlsxPackage.open(template).sheet_names
    for s in CONTRACT:
        assert s.name in names, s.name
        assert names[s.name].sheet in sheets
    assert set(SHEETS) <= set(sheets)


@ALL
def test_every_input_is_an_excel_table_its_name_refers_to(template, committed):
    """Each input name is ``=<table>[#All]`` and resolves to the whole table on the file
    adapter; each table (read back by openpyxl) has the header row's cells as its column
    names, no filter buttons and no totals row. The outputs stay plain named ranges."""
    import openpyxl

    entries = {e.name: e for e in XlsxPackage.open(template).all_defined_names()}
    io = XlsxFileIO(template)
    names, followed = io.names(), io._name_tables()
    wb = openpyxl.load_workbook(template)
    tables = {t.name: (ws, t) for ws in wb.worksheets for t in ws.tables.values()}
    assert set(tables) == set(TABLES.values())
    for name, table in TABLES.items():
        assert entries[name].formula == f"{table}[#All]", name
        ws, t = tables[table]
        c1, r1, c2, r2 = range_boundaries(t.ref)
        whole = Area(ws.title, r1, c1, r2, c2)
        assert names[name] == whole and followed[name] == (table, whole), name
        assert (r1, c1) == LAYOUT[name][1:] and ws.title == LAYOUT[name][0], name
        header = [ws.cell(r1, c).value for c in range(c1, c2 + 1)]
        assert [col.name for col in t.tableColumns] == header, name
        assert all(isinstance(h, str) and h for h in header), name
        assert len({h.lower() for h in header}) == len(header), name
        assert t.autoFilter is None and not t.totalsRowCount and t.headerRowCount in (None, 1)
        assert t.tableStyleInfo.name == "TableStyleLight1" and not t.tableStyleInfo.showRowStripes
        assert r2 > r1, name  # at least one data row
    for name in OUTPUTS:
        assert name not in followed and "[" not in entries[name].formula, name
    # the panels are exactly their data; the key | value and list inputs keep blank rows
    # for typing inside their tables (beyond them Excel extends the table)
    n_dates = len(_read(io, "FL_FACTORS")) - 1
    assert names["FL_RETURNS"].shape[0] == names["FL_FACTORS"].shape[0] == n_dates + 1
    for name in ("FL_SETTINGS", "FL_PORTFOLIO_SETTINGS", "FL_CONSTRAINTS", "FL_PREV_WEIGHTS"):
        # 30 rows, or one per filled row once more than 29 are filled (the settings keys)
        filled = sum(1 for row in _read(io, name)[1:] if any(v is not None for v in row))
        assert names[name].shape[0] == max(30, 1 + filled), name


def _read(io, name):
    return io.read(io.names()[name])


@ALL
def test_inspect_reports_no_problem(template, capsys):
    assert cli_main(["inspect", str(template)]) == 0
    out = capsys.readouterr().out
    assert "no problems found" in out and "not defined" not in out
    assert "leaves out" not in out  # no data adjoins a table


@ALL
def test_refit_cv_portfolio_writes_outputs_and_keeps_the_ribbon(template, tmp_path, capsys):
    before = template.read_bytes()
    out = tmp_path / f"out{template.suffix}"
    assert cli_main(["refit", str(template), "--cv", "--portfolio", "--out", str(out)]) == 0
    assert template.read_bytes() == before
    io = XlsxFileIO(out)
    names = io.names()
    for name in OUTPUTS:
        if name in BACKTEST_OUTPUTS:  # written by Backtest, not by these steps
            continue
        values = io.read(names[name])
        assert values[0][0] not in (None, ""), name  # every output table has its header
    coef = io.read(names["FL_COEF"])
    assets = [str(a) for a in _read(XlsxFileIO(template), "FL_RETURNS")[0][1:]]
    assert [r[0] for r in coef[1:]] == assets
    assert any(isinstance(v, float) and v != 0 for r in coef[1:] for v in r[1:])
    weights = [r[1] for r in io.read(names["FL_WEIGHTS"])[1:]]
    assert sum(weights) == pytest.approx(1.0, abs=1e-6)
    old, new = _members(template), _members(out)
    for part in RIBBON_PARTS:
        if part != "_rels/.rels":
            assert (part in old) == (template in MACRO), part
        if part in old:
            assert new[part] == old[part], part
    # the input tables are the template's, byte for byte
    for part in (n for n in old if n.startswith("xl/tables/")):
        assert new[part] == old[part], part
    assert "done in" in capsys.readouterr().out


def test_sample_data_is_the_synthetic_demo_panel(committed):
    demo = load_demo_panel()
    for template in (XLSX, XLSM, SERVER):
        pkg = XlsxPackage.open(template)
        names = pkg.defined_names()
        returns = pkg.read_values("Returns", names["FL_RETURNS"].ref)
        assert returns[0][1:] == list(demo.y.columns)
        assert returns[1][1] == pytest.approx(demo.y.iloc[0, 0], rel=1e-15)
        assert len(returns) == len(demo.y) + 1
        text = _start_text(template)
        assert "SYNTHETIC" in text and "skfolio" not in text
        for word in BUTTONS + ["FLASSO_FIT", "xl-factorlasso refit"]:
            assert word in text, word
    assert "xlwings addin install" in _start_text(XLSX)
    assert "xl-factorlasso serve" in _start_text(SERVER)


def _weekly_returns_from_skfolio():
    """The S&P 500 sample computed here, not with build.py's code: daily prices of the 20
    stocks and 5 ETFs on the ETFs' dates, the last price of each Friday-ending week (with its
    own date), the final week only if it is complete, then p_t / p_prev - 1."""
    from skfolio.datasets import load_factors_dataset, load_sp500_dataset

    stocks, etfs = load_sp500_dataset(), load_factors_dataset()
    prices = pd.concat([stocks, etfs], axis=1, join="inner")
    rows = []
    for _week, block in prices.groupby(prices.index.to_period("W-FRI")):
        rows.append(block.iloc[-1])
    last_week_end = prices.index[-1].to_period("W-FRI").end_time.normalize()
    if prices.index[-1] < last_week_end:
        rows = rows[:-1]
    weekly = pd.DataFrame(rows)
    returns = (weekly / weekly.shift(1) - 1).iloc[1:]
    return returns[list(stocks.columns)], returns[list(etfs.columns)]


def test_sp500_sample_is_skfolios_prices_as_weekly_returns(committed):
    y, x = _weekly_returns_from_skfolio()
    assert (len(y), y.index[0].date().isoformat(), y.index[-1].date().isoformat()) == (
        468, "2014-01-10", "2022-12-23")
    for template in SP500_TEMPLATES:
        io = XlsxFileIO(template)
        for name, expected in (("FL_RETURNS", y), ("FL_FACTORS", x)):
            rows = _read(io, name)
            assert rows[0] == ["date", *expected.columns], name
            assert [r[0].date() for r in rows[1:]] == [d.date() for d in expected.index]
            got = np.array([r[1:] for r in rows[1:]], dtype=float)
            assert np.allclose(got, expected.to_numpy(), rtol=1e-13, atol=0), name
        # every loading >= 0; no prior; sectors as asset groups; the settings documented
        signs = _read(io, "FL_SIGNS")
        assert {v for r in signs[1:] for v in r[1:]} == {1}
        assert {v for r in _read(io, "FL_PRIOR")[1:] for v in r[1:]} == {None}
        sectors = dict((r[0], r[1]) for r in _read(io, "FL_ASSET_GROUPS")[1:])
        assert sectors == build.SP500_SECTORS
        settings = {r[0]: r[1] for r in _read(io, "FL_SETTINGS")[1:] if r[0]}
        assert (settings["model_type"], settings["span"], settings["n_clusters"],
                settings["annualization_factor"]) == ("HCGL", 104, 4, 52)
        constraints = [r[0] for r in _read(io, "FL_CONSTRAINTS")[1:] if r[0]]
        assert constraints == ["HEALTH <= 0.30", "ENERGY <= 0.20"]


def test_sp500_start_sheet_attributes_the_data_and_carries_skfolios_licence(committed):
    from importlib.metadata import distribution

    dist = distribution("skfolio")
    (licence,) = [f.read_text() for f in dist.files if f.name.upper().startswith("LICEN")]
    for template in SP500_TEMPLATES:
        pkg = XlsxPackage.open(template)
        rows = pkg.read_values("Start", "A1:C200")
        text = _start_text(template)
        assert "REAL market data" in text and "SYNTHETIC" not in text
        assert f"skfolio {dist.version} (skfolio.datasets): load_sp500_dataset" in text
        assert "load_factors_dataset" in text and "not for investment" in text
        assert "BSD-3-Clause" in text
        # the licence, line by line, in column C below its heading
        column_c = [r[2] for r in rows]
        first = column_c.index("BSD 3-Clause License")
        lines = licence.strip().splitlines()
        assert [v or "" for v in column_c[first:first + len(lines)]] == [
            line if line.strip() else "" for line in lines]
        assert "Copyright (c) 2023-2026 The skfolio developers." in lines  # this skfolio's
    for template in (XLSX, XLSM, SERVER):
        assert "BSD 3-Clause License" not in _start_text(template)


def _start_text(template) -> str:
    pkg = XlsxPackage.open(template)
    return "\n".join(v for row in pkg.read_values("Start", "A1:C200") for v in row
                     if isinstance(v, str))


@ALL
def test_start_sheet_points_only_at_what_a_pip_user_has(template, committed):
    """A user who installed the wheel has the package and its command, not the repository."""
    import argparse

    from xl_factorlasso.cli import build_parser

    text = _start_text(template)
    for repo_only in ("workbook_template", "docs/", "git clone", "README"):
        assert repo_only not in text, repo_only
    # xl-factorlasso is not published: no instruction may fetch it by name from an index
    assert not re.search(r"pip install [\"']?xl[-_]factorlasso(?![-\w.])", text)
    assert f"pip install {build.WHEEL}" in text and "not published on PyPI" in text
    assert build.WHEEL == "xl_factorlasso-<version>-py3-none-any.whl"
    # every command it quotes is one the installed command has, with options it has
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    quoted = re.findall(r"xl-factorlasso ((?:--)?[\w-]+)((?: --[\w-]+)*)", text)
    assert {c for c, _ in quoted} >= {"template", "refit", "inspect", "serve", "--help"}
    for command, options in quoted:
        if command == "--help":
            continue
        assert command in sub.choices, command
        known = {o for a in sub.choices[command]._actions for o in a.option_strings}
        assert set(options.split()) <= known, (command, options)
    assert "xl-factorlasso template --macro BOOK.xlsm" in text
    assert "xl-factorlasso template BOOK.xlsx" in text
    assert "xl-factorlasso template --server BOOK.xlsx" in text and "--data sp500" in text
    # the server template says which functions its Formulas sheet calls
    server = template in SERVER_TEMPLATES
    assert ("FACTORLASSO.FLASSO_FIT(FL_RETURNS,FL_FACTORS)" in text) == server
    assert text.startswith("xl-factorlasso template for the server add-in" if server else
                           "xl-factorlasso template\n")


def test_build_writes_into_the_package():
    import inspect

    assert build.OUT_DIR == SHIPPED
    assert inspect.signature(build.build_templates).parameters["out_dir"].default == SHIPPED


# =============================================================================== sheets
@pytest.fixture
def udfs():
    from xl_factorlasso import udfs

    udfs.cache_clear()
    yield udfs
    udfs.cache_clear()  # leave the shared function cache as the other tests expect it


def _formula_cells(members) -> dict[tuple[str, str], str]:
    """(sheet, anchor) -> formula of every formula cell of the Formulas sheets, each checked to
    be a dynamic array (an array formula on its own cell, with the dynamic-array metadata)."""
    parts = _sheet_parts(members)
    found = {}
    for sheet in [s for s in parts if s.startswith("Formulas")]:
        for c in _xml(members[parts[sheet]]).iter(f"{{{MAIN}}}c"):
            f = c.find(f"{{{MAIN}}}f")
            if f is None:
                continue
            assert f.get("t") == "array" and f.get("ref") == c.get("r") and c.get("cm") == "1"
            found[sheet, c.get("r")] = f.text
    return found


def _template_results(template, members, udfs):
    """(sheet, anchor) -> (function, its arguments, its answer on the template) of every
    example; the arguments checked to be FL_* names, blanks or ranges of its own sheet."""
    from xl_factorlasso.server import functions_namespace

    ns = functions_namespace() if template in SERVER_TEMPLATES else None
    assert "xl/metadata.xml" in members
    assert ("http://schemas.openxmlformats.org/officeDocument/2006/relationships/sheetMetadata",
            "metadata.xml") in _rels(members, "xl/_rels/workbook.xml.rels")
    pkg = XlsxPackage.open(template)
    values = {n: pkg.read_values(d.sheet, d.ref) for n, d in pkg.defined_names().items()}
    found = _formula_cells(members)
    fn_names = [build.split_formula(f)[0] for f in found.values()]
    if ns is not None:  # as Excel stores an Office.js custom function of the add-in
        assert all(n.startswith(f"_xldudf_{ns}_FLASSO_") for n in fn_names), fn_names
    names = [build.flasso_name(n, ns) for n in fn_names]
    assert sorted(names) == sorted(udfs.__all__)  # each function once
    out = {}
    for ((sheet, anchor), formula), name in zip(found.items(), names, strict=True):
        _name, args = build.split_formula(formula)
        for a in args:
            if re.fullmatch(r"[A-Z]+\d+:[A-Z]+\d+", a):
                values[a] = pkg.read_values(sheet, a)
            else:  # only FL_* names and blanks, or Excel's INDEX/MATCH picking a value
                # out of them (FLASSO_BETA_HISTORY's factor and FL_ROLLING_SETTINGS' keys)
                fl = re.findall(r"\bFL_\w+", a) if a.startswith("INDEX(") else [a]
                assert a == "" or (fl and all(n in values for n in fl)), (formula, a)
        result = build.evaluate_formula(formula, values, udfs, ns)
        result = result if isinstance(result, list) else [[result]]
        assert not str(result[0][0]).startswith("#"), (formula, result[0][0])
        out[sheet, anchor] = (name, args, result)
    return out, pkg


@ALL
def test_formulas_are_dynamic_arrays_that_compute_and_have_room(template, committed, udfs):
    results, pkg = _template_results(template, committed[template], udfs)
    for (sheet, anchor), (name, _args, result) in results.items():
        # the spill area is free, apart from the formula's own cell
        row, col = int(re.sub(r"\D", "", anchor)), re.sub(r"\d", "", anchor)
        width = max(len(r) for r in result)
        last = _col(_col_index(col) + width - 1)
        area = pkg.read_values(sheet, f"{col}{row}:{last}{row + len(result) - 1}")
        cells = [v for i, r in enumerate(area) for j, v in enumerate(r) if (i, j) != (0, 0)]
        assert all(v is None for v in cells), (sheet, name)


# The largest answer of each function, (rows, columns), from the sizes of the user's data: n
# assets (columns of returns), m factors (columns of factors), and counts that only the data or
# the settings bound (rebalancing dates, lambdas, folds, notes); ``panel`` is the (rows,
# columns) of the function's range argument on its own sheet (the scenario or price panel).
# None stands for "as many as the data make": the inputs are tables that grow, so up to the
# sheet's edge. Independent of build.py's GROWS; checked against the answers on the template.
MANY = None
EXCEL_ROWS, EXCEL_COLS = 1_048_576, 16_384
STATISTICS = 20  # at most the rows of FLASSO_MAXDIV's statistics (16 on the templates)


def _plus(k, extra):
    return None if k is None else k + extra


def _largest(name: str, n, m, panel) -> tuple:
    plus = _plus
    return {
        "FLASSO_VERSION": (1, 1),
        "FLASSO_BEST_LAMBDA": (1, 1),
        "FLASSO_FIT": (plus(n, 1), plus(m, 1)),  # header + assets; corner + factors
        "FLASSO_R2": (plus(n, 1), 2),
        "FLASSO_INTERCEPT": (plus(n, 1), 2),
        "FLASSO_CLUSTERS": (plus(n, 1), 2),
        "FLASSO_RESID_VOL": (plus(n, 1), 4),
        "FLASSO_COV": (plus(n, 1), plus(n, 1)),
        "FLASSO_NOTES": (MANY, 1),  # one row per note
        "FLASSO_PREDICT": (panel and panel[0], plus(n, 1)),  # the scenario rows
        "FLASSO_CV": (MANY, MANY),  # lambdas down, folds + mean + best across
        "FLASSO_MAXDIV": (plus(n, 3 + STATISTICS), 2),
        "FLASSO_RISK": (plus(m, 3), 4),  # header, factors, specific, total
        "FLASSO_RISK_ASSETS": (plus(n, 1), 6),  # weight ... specific under a factor model
        "FLASSO_RETURNS": panel,  # at most the price panel
        "FLASSO_BETA_HISTORY": (MANY, plus(n, 1)),  # a row per rebalancing date
    }[name]


def _panel_shape(args) -> tuple[int, int] | None:
    ranges = [a for a in args if re.fullmatch(r"[A-Z]+\d+:[A-Z]+\d+", a)]
    if not ranges:
        return None
    (a,) = ranges
    min_col, min_row, max_col, max_row = range_boundaries(a)
    return max_row - min_row + 1, max_col - min_col + 1


@ALL
def test_no_answer_can_spill_into_another_however_large_the_data(template, committed, udfs):
    """The answers grow with the user's data (a row per asset, a column per asset or factor,
    a row per rebalancing date...), and Excel shows #SPILL! where an answer would cover a
    non-empty cell or another answer. For each example the rectangle its largest answer may
    fill -- to the sheet's edge where the data set its size -- holds no other cell of the sheet
    and meets no other example's rectangle. (The layout of one column of examples under each
    other failed: FLASSO_FIT's loadings ran into the next title as soon as there were more
    assets than on the template.)"""
    import openpyxl

    results, pkg = _template_results(template, committed[template], udfs)
    wb = openpyxl.load_workbook(template, read_only=True)
    names = pkg.defined_names()
    # the assets and factors of the template: the headers of its tables, less the date column
    n, m = (len([v for v in pkg.read_values(names[k].sheet, names[k].ref)[0] if v]) - 1
            for k in ("FL_RETURNS", "FL_FACTORS"))
    rects = {}
    for (sheet, anchor), (name, args, result) in results.items():
        panel = _panel_shape(args)
        # the rule at the template's own sizes gives the answer's size there: it is the rule
        rows_t, cols_t = len(result), max(map(len, result))
        rule_rows, rule_cols = _largest(name, n, m, panel)
        assert rows_t <= (rule_rows or EXCEL_ROWS) and cols_t <= (rule_cols or EXCEL_COLS), \
            (name, (rows_t, cols_t), (rule_rows, rule_cols))
        big_rows, big_cols = _largest(name, MANY, MANY, panel)
        min_col, row, _c, _r = range_boundaries(anchor)
        last_row = EXCEL_ROWS if big_rows is None else row + big_rows - 1
        last_col = EXCEL_COLS if big_cols is None else min_col + big_cols - 1
        rects[sheet, anchor] = (name, row, min_col, last_row, last_col)
    for sheet in [s for s in wb.sheetnames if s.startswith("Formulas")]:
        ws = wb[sheet]
        filled = [(c.row, c.column) for r in ws.iter_rows() for c in r
                  if getattr(c, "value", None) is not None]
        mine = [(k[1], v) for k, v in rects.items() if k[0] == sheet]
        assert mine, sheet
        for anchor, (name, top, left, bottom, right) in mine:
            inside = [(r, c) for r, c in filled if top <= r <= bottom and left <= c <= right
                      and (r, c) != (top, left)]
            assert not inside, (sheet, name, anchor, [f"{_col(c)}{r}" for r, c in inside[:5]])
            for other, (name2, t2, l2, b2, r2) in mine:
                if other != anchor:
                    overlap = top <= b2 and t2 <= bottom and left <= r2 and l2 <= right
                    assert not overlap, (sheet, name, name2)


def _col_index(letters: str) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + ord(ch) - 64
    return n


def _col(n: int) -> str:
    s = ""
    while n:
        n, r = divmod(n - 1, 26)
        s = chr(65 + r) + s
    return s


# The number formats of the spill areas: an answer that grows with the data shows its new cells
# as it shows those of the template's answer. Read from the package's XML as Excel resolves a
# cell's format: its own style when the cell is stored, else its row's (customFormat), else its
# column's; a conditional format's number format on top.
def _styles(members) -> list[str]:
    """cellXfs index -> number format code."""
    from openpyxl.styles.numbers import BUILTIN_FORMATS

    root = _xml(members["xl/styles.xml"])
    custom = {int(n.get("numFmtId")): n.get("formatCode")
              for n in root.iter(f"{{{MAIN}}}numFmt") if n.getparent().tag == f"{{{MAIN}}}numFmts"}
    xfs = root.find(f"{{{MAIN}}}cellXfs")
    ids = [int(xf.get("numFmtId", 0)) for xf in xfs.iter(f"{{{MAIN}}}xf")]
    return [custom.get(i, BUILTIN_FORMATS.get(i, "General")) for i in ids]


def _shown_format(members, sheet):
    """(row, column) -> the number format the sheet gives that cell (no conditional format)."""
    codes = _styles(members)
    root = _xml(members[_sheet_parts(members)[sheet]])
    cells, rows, cols = {}, {}, []
    for row in root.iter(f"{{{MAIN}}}row"):
        r = int(row.get("r"))
        if row.get("customFormat") in ("1", "true"):
            rows[r] = codes[int(row.get("s", 0))]
        for c in row.iter(f"{{{MAIN}}}c"):
            min_col, row_, _c, _r = range_boundaries(c.get("r"))
            cells[row_, min_col] = codes[int(c.get("s", 0))]
    for col in root.iter(f"{{{MAIN}}}col"):
        cols.append((int(col.get("min")), int(col.get("max")), codes[int(col.get("style", 0))]))

    def shown(r: int, c: int) -> str:
        if (r, c) in cells:
            return cells[r, c]
        if r in rows:
            return rows[r]
        return next((code for lo, hi, code in cols if lo <= c <= hi), "General")

    return shown


@ALL
def test_a_grown_answer_has_its_answers_number_formats(template, committed, udfs):
    """Each example that grows with the data (a row per asset, a column per asset...) gives the
    cells beyond its answer on the template -- 50 rows below it, 10 columns to its right, as far
    as it may grow -- the format of the answer's cells of the same column (or row): no raw
    0.123456789 when the user adds assets or factors. Checked for the examples with a number
    format; those of a fixed size (one value, the price panel's returns) have no such cells."""
    members = committed[template]
    results, _pkg = _template_results(template, members, udfs)
    checked = set()
    for (sheet, anchor), (name, args, result) in results.items():
        big_rows, big_cols = _largest(name, MANY, MANY, _panel_shape(args))
        down, right = big_rows is None, big_cols is None
        if not (down or right):
            continue
        shown = _shown_format(members, sheet)
        left, top, _c, _r = range_boundaries(anchor)
        bottom, last = top + len(result) - 1, left + max(map(len, result)) - 1
        if all(shown(r, c) == "General" for r in range(top + 1, bottom + 1)
               for c in range(left, last + 1)):
            continue  # names, cluster numbers, notes: General throughout
        checked.add(name)
        beyond = []  # (cell beyond the answer, the answer's cell whose format it should have)
        if down:
            beyond += [((bottom + 50, c), (bottom, c)) for c in range(left, last + 1)]
        if right:
            beyond += [((r, last + 10), (r, last)) for r in range(top + 1, bottom + 1)]
        if down and right:
            beyond.append(((bottom + 50, last + 10), (bottom, last)))
        for (r, c), (r0, c0) in beyond:
            assert shown(r, c) == shown(r0, c0), (sheet, name, f"{_col(c)}{r}", shown(r, c),
                                                   f"{_col(c0)}{r0}", shown(r0, c0))
    assert {"FLASSO_FIT", "FLASSO_R2", "FLASSO_MAXDIV", "FLASSO_COV", "FLASSO_CV",
            "FLASSO_PREDICT", "FLASSO_BETA_HISTORY"} <= checked, checked


def _conditional_formats(members, sheet) -> list[tuple[str, str, str]]:
    """(sqref, formula, number format) of each conditional format rule of the sheet."""
    dxfs = _xml(members["xl/styles.xml"]).find(f"{{{MAIN}}}dxfs")
    dxf_codes = [None if (n := d.find(f"{{{MAIN}}}numFmt")) is None else n.get("formatCode")
                 for d in (dxfs if dxfs is not None else [])]
    root = _xml(members[_sheet_parts(members)[sheet]])
    return [(cf.get("sqref"), rule.findtext(f"{{{MAIN}}}formula"),
             dxf_codes[int(rule.get("dxfId"))])
            for cf in root.iter(f"{{{MAIN}}}conditionalFormatting")
            for rule in cf.iter(f"{{{MAIN}}}cfRule") if rule.get("dxfId") is not None]


@ALL
def test_maxdiv_weights_read_as_percentages_and_its_statistics_as_fl_portfolio_stats(
        template, committed, udfs):
    """FLASSO_MAXDIV answers the weights, then its statistics under them: the weights as
    percentages (as FL_WEIGHTS), each statistic as Optimise portfolio formats it in
    FL_PORTFOLIO_STATS -- by a conditional format on its label, since more assets push the
    statistics down into rows that held weights on the template."""
    from xl_factorlasso.workbook._output_formats import COLUMN_FORMATS, ROW_FORMATS

    members = committed[template]
    results, _pkg = _template_results(template, members, udfs)
    ((sheet, anchor), (_n, _a, result)), = [(k, v) for k, v in results.items()
                                            if v[0] == "FLASSO_MAXDIV"]
    shown = _shown_format(members, sheet)
    left, top, _c, _r = range_boundaries(anchor)
    blank = [r[0] for r in result].index(None)
    weights = range(top + 1, top + blank)
    assert len(weights) > 5 and all(isinstance(result[r - top][1], float) for r in weights)
    for r in [*weights, top + len(result) + 50]:  # and where more assets' weights land
        assert shown(r, left + 1) == COLUMN_FORMATS["FL_WEIGHTS"], (sheet, r, shown(r, left + 1))
    rules = _conditional_formats(members, sheet)
    label = _col(left)
    for statistic, value in result[blank + 2:]:
        if not isinstance(value, (int, float)):
            continue  # the covariance's name
        want = ROW_FORMATS["FL_PORTFOLIO_STATS"][statistic]
        got = [code for sqref, formula, code in rules
               if f'"{statistic}"' in formula and f"${label}{top + 1}" in formula
               and range_boundaries(sqref) == (left + 1, top + 1, left + 1, EXCEL_ROWS)]
        assert got == [want], (statistic, got)


def test_settings_dropdowns_and_styles(committed):
    import openpyxl

    wb = openpyxl.load_workbook(XLSM, keep_vba=True)
    lists = {}
    for sheet in ("Settings", "Portfolio"):
        ws = wb[sheet]
        keys = {f"B{r}": ws.cell(r, 1).value for r in range(1, ws.max_row + 1)}
        for dv in ws.data_validations.dataValidation:
            if dv.type == "list":
                for cell in str(dv.sqref).split():
                    lists[keys[cell]] = dv.formula1.strip('"').split(",")
    assert lists["model_type"] == ["LASSO", "UNILASSO", "GROUP_LASSO", "HCGL", "FCGL",
                                   "COOPERATIVE_GROUP_LASSO", "COOPERATIVE_CLUSTER_GROUP_LASSO"]
    assert set(lists["group_penalty"]) == {"normalized", "yuan_lin"}
    assert "ward" in lists["linkage_method"]
    assert lists["covariance"] == ["sample", "ewma", "factor"]
    settings = wb["Settings"]
    input_fill = settings["B2"].fill.fgColor.rgb
    output_fill = wb["Results"]["A1"].fill.fgColor.rgb
    assert input_fill != output_fill and "00000000" not in (input_fill, output_fill)


def test_xlwings_conf_sheet_is_the_one_xlwings_reads(committed):
    """Sheet name and key as the xlwings add-in's VBA looks them up (read from its source)."""
    import xlwings

    addin = Path(xlwings.__file__).parent / "addin"
    config_bas = (addin / "Config.bas").read_text(errors="replace")
    main_bas = (addin / "Main.bas").read_text(errors="replace")
    project = re.search(r'PROJECT_NAME As String = "(\w+)"', main_bas).group(1)
    assert 'Sheets(PROJECT_NAME & ".conf")' in config_bas and "UCase(cell.Value)" in config_bas
    assert 'GetConfig("UDF MODULES")' in main_bas
    pkg = XlsxPackage.open(XLSM)
    assert f"{project}.conf" in pkg.sheet_names
    rows = pkg.read_values(f"{project}.conf", "A1:B3")
    assert rows[0][0].upper() == "UDF MODULES" and rows[0][1] == "xl_factorlasso.udfs"
    assert rows[1][0] is None  # GetConfigFromSheet reads column A from A1 down to a gap
    module = importlib.import_module(rows[0][1])
    assert {f for f in dir(module) if f.startswith("FLASSO_")} == set(module.__all__)


# =============================================================================== LibreOffice
def _soffice(args: list[str], profile: Path, timeout: float = 180) -> None:
    """Run soffice headless in its own process group; kill that group (our PID) on timeout."""
    exe = shutil.which("soffice") or shutil.which("libreoffice")
    cmd = [exe, f"-env:UserInstallation=file://{profile}", "--headless", "--norestore", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"soffice did not finish in {timeout} s: {' '.join(args)}")
    assert proc.returncode == 0, out.decode(errors="replace")


@pytest.mark.skipif(not (shutil.which("soffice") or shutil.which("libreoffice")),
                    reason="LibreOffice (soffice) is not installed: apt-get install "
                           "libreoffice-calc-nogui")
def test_libreoffice_opens_every_template(tmp_path, committed):
    inputs = []
    for i, template in enumerate(ALL_TEMPLATES):
        copy = tmp_path / f"in_{i}_{template.suffix[1:]}{template.suffix}"
        shutil.copy(template, copy)
        inputs.append(copy)
    profile = tmp_path / "profile"
    _soffice(["--convert-to", "xlsx", "--outdir", str(tmp_path / "xlsx"), *map(str, inputs)],
             profile)
    _soffice(["--convert-to", "ods", "--outdir", str(tmp_path / "ods"), str(inputs[1])], profile)
    for template, copy in zip(ALL_TEMPLATES, inputs, strict=True):
        converted = XlsxPackage.open(tmp_path / "xlsx" / f"{copy.stem}.xlsx")
        # LibreOffice imports the input tables as tables and keeps the names on them
        assert {t.name for t in converted.table_spans().values()} == set(TABLES.values())
        original = XlsxPackage.open(template)
        got, want = converted.defined_names(), original.defined_names()
        for s in CONTRACT:
            assert s.name in got, s.name
            assert (got[s.name].sheet, got[s.name].ref) == (want[s.name].sheet, want[s.name].ref)
        ref = want["FL_FACTORS"].ref
        got_rows = converted.read_values("Factors", ref)
        want_rows = original.read_values("Factors", ref)
        assert [r[0] for r in got_rows] == [r[0] for r in want_rows]  # labels and dates
        assert got_rows[0] == want_rows[0]
        for g, w in zip(got_rows[1:], want_rows[1:], strict=True):  # LibreOffice keeps 15 digits
            assert g[1:] == pytest.approx(w[1:], rel=1e-13, abs=1e-16)
    # LibreOffice's own import of the VBA module (it decompresses the project itself)
    with zipfile.ZipFile(tmp_path / "ods" / f"{inputs[1].stem}.ods") as zf:
        xml = zf.read(f"Basic/VBAProject/{_module_name()}.xml").decode("utf-8")
    body = html.unescape(re.search(r"<script:module[^>]*>(.*)</script:module>", xml, re.S).group(1))
    lines = [ln for ln in body.replace("\r\n", "\n").split("\n")
             if ln not in ("Rem Attribute VBA_ModuleType=VBAModule", "Option VBASupport 1")]
    assert "\n".join(lines).strip() == _without_attributes(_bas_text()).strip()


# =============================================================================== drift
def test_rebuild_gives_the_committed_contents(tmp_path, committed):
    proc = subprocess.run([sys.executable, str(TEMPLATE_DIR / "build.py"), "--out-dir",
                           str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in ALL_TEMPLATES)
    for template in ALL_TEMPLATES:
        rebuilt = _members(tmp_path / template.name)
        old = committed[template]
        assert list(rebuilt) == list(old), template.name
        changed = [n for n in old if rebuilt[n] != old[n]]
        assert not changed, (f"{template.name} differs from a rebuild in {changed}: run "
                             "make templates (python workbook_template/build.py) and commit "
                             "xl_factorlasso/templates/")
