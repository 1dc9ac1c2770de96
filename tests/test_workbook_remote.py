"""The same contract on xlwings' remote engine: payload from an .xlsx, actions applied back.

A refit through ``xw.Book(json=payload)`` must leave the workbook exactly as the file adapter
does; bad input must produce one alert and no other action.
"""

from __future__ import annotations

import shutil

import openpyxl
import pytest

from tests.fake_office_client import apply_actions, book_payload
from xl_factorlasso.cli import build_demo_workbook
from xl_factorlasso.workbook import XlsxFileIO, XlwingsBookIO, optimise_portfolio, refit

xw = pytest.importorskip("xlwings")
if not xw.__pro__:  # pragma: no cover - depends on the machine's licence key
    pytest.skip("xlwings' remote engine needs XLWINGS_LICENSE_KEY", allow_module_level=True)

from xl_factorlasso.ribbon import run_book_job  # noqa: E402


@pytest.fixture(scope="module")
def demo_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("remote") / "demo.xlsx"
    build_demo_workbook(str(path))
    return path


def _values(path) -> dict:
    wb = openpyxl.load_workbook(path)
    return {(ws.title, c.coordinate): c.value for ws in wb.worksheets for row in ws.iter_rows()
            for c in row if c.value is not None}


def _remote(path):
    return xw.Book(json=book_payload(path, xw.__version__))


@pytest.mark.parametrize("job", ["refit", "optimise_portfolio"])
def test_remote_engine_writes_what_the_file_adapter_writes(demo_file, tmp_path, job):
    direct, remote = tmp_path / "direct.xlsx", tmp_path / "remote.xlsx"
    shutil.copy(demo_file, direct)
    shutil.copy(demo_file, remote)
    {"refit": refit, "optimise_portfolio": optimise_portfolio}[job](XlsxFileIO(direct))
    book = _remote(remote)
    message = run_book_job(book, job)
    actions = book.json()["actions"]
    assert {a["func"] for a in actions} <= {"setValues", "rangeClearContents", "namesAdd",
                                            "setNameRefersTo", "addPicture", "setPictureName",
                                            "setPictureWidth", "setPictureHeight", "alert",
                                            "deletePicture", "nameDelete", "setNumberFormat",
                                            "setAutofit", "setColumnWidth",
                                            "freezePaneAtRange"}
    alerts = apply_actions(remote, actions)
    assert alerts == [message] and job in message
    a, b = _values(direct), _values(remote)
    time_cells = {k for k, v in a.items() if v == "time"}
    for key in set(a) | set(b):
        if (key[0], key[1]) in time_cells:
            continue
        va, vb = a.get(key), b.get(key)
        if key[0] == "Diagnostics" and isinstance(va, str) and va[:2] == "20":
            continue  # the status time stamp
        if isinstance(va, float):
            assert vb == pytest.approx(va, rel=1e-12, abs=1e-15), key
        else:
            assert va == vb, key
    names_a, names_b = XlsxFileIO(direct).names(), XlsxFileIO(remote).names()
    assert names_a == names_b


def test_remote_bad_input_gives_one_alert_and_no_writes(demo_file, tmp_path):
    path = tmp_path / "bad.xlsx"
    shutil.copy(demo_file, path)
    wb = openpyxl.load_workbook(path)
    wb["Signs"]["B3"] = "x"
    wb.save(path)
    book = _remote(path)
    message = run_book_job(book, "refit")
    actions = book.json()["actions"]
    assert [a["func"] for a in actions] == ["alert"]
    assert "FL_SIGNS!B3: 'x' is not one of blank, 0, 1, -1, +, -" in message
    assert actions[0]["args"][0] == message


def test_desktop_caller_entry_point(demo_file, tmp_path, monkeypatch):
    """The RunPython callback uses xw.Book.caller(); here it is a remote Book."""
    from xl_factorlasso import ribbon

    path = tmp_path / "caller.xlsx"
    shutil.copy(demo_file, path)
    book = _remote(path)
    monkeypatch.setattr(xw.Book, "caller", staticmethod(lambda: book))
    assert "refit" in ribbon.refit_caller()
    funcs = [a["func"] for a in book.json()["actions"]]
    assert "setValues" in funcs and funcs[-1] == "alert"


def test_adapter_reads_names_of_the_payload(demo_file):
    io = XlwingsBookIO(_remote(demo_file))
    names = io.names()
    assert str(names["FL_RETURNS"]) == "Returns!A1:Y261"
    values = io.read(names["FL_SETTINGS"])
    assert values[0] == ["key", "value"] and values[1] == ["model_type", "HCGL"]
