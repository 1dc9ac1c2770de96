"""``xl-factorlasso template [--macro | --server] [--data sp500] [--force] PATH``: a
byte-for-byte copy of a shipped template (one per add-in, each with synthetic or real sample
data), and every refusal (options that exclude each other, extension, existing file, a file
open, locked or read-only, a missing or read-only folder) with its message and nothing
written."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from file_safety_helpers import excel_owner_bytes

from xl_factorlasso import templates
from xl_factorlasso.cli import main, user_guide

ROOT = Path(__file__).resolve().parents[1]
XLSX_BYTES = templates.template_path(macro=False).read_bytes()
XLSM_BYTES = templates.template_path(macro=True).read_bytes()
MINE = b"the user's own workbook"


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["template", *args])
    out, err = capsys.readouterr()
    return code, out, err


def _refused(capsys, args, message: str) -> None:
    code, out, err = _cli(capsys, *args)
    assert (code, out, err) == (2, "", f"xl-factorlasso: error: {message}\n")


def test_the_shipped_templates_are_the_ones_in_the_package_folder():
    assert templates.FOLDER == ROOT / "xl_factorlasso" / "templates"
    assert templates.template_path() == templates.FOLDER / "factorlasso_template.xlsx"
    assert templates.template_path(macro=True) == templates.FOLDER / "factorlasso_template.xlsm"
    assert XLSX_BYTES[:2] == XLSM_BYTES[:2] == b"PK" and XLSX_BYTES != XLSM_BYTES
    names = {(m, sv, d): templates.template_name(m, server=sv, data=d)
             for m, sv, d in templates.VARIANTS}
    assert names == {
        (False, False, "synthetic"): "factorlasso_template.xlsx",
        (True, False, "synthetic"): "factorlasso_template.xlsm",
        (False, True, "synthetic"): "factorlasso_template_server.xlsx",
        (False, False, "sp500"): "factorlasso_template_sp500.xlsx",
        (True, False, "sp500"): "factorlasso_template_sp500.xlsm",
        (False, True, "sp500"): "factorlasso_template_sp500_server.xlsx",
    }
    assert templates.SERVER_NAME == names[(False, True, "synthetic")]
    # every shipped file is one of them, and each of them is shipped, different from the rest
    shipped = sorted(p.name for p in templates.FOLDER.glob("*.xls*"))
    assert shipped == sorted(names.values())
    assert len({(templates.FOLDER / n).read_bytes() for n in shipped}) == len(shipped)


def test_writes_each_template_byte_for_byte(tmp_path, capsys):
    code, out, err = _cli(capsys, str(tmp_path / "Y.xlsx"))
    assert (code, err) == (0, "")
    assert (tmp_path / "Y.xlsx").read_bytes() == XLSX_BYTES
    assert out.splitlines() == [
        f"wrote {tmp_path / 'Y.xlsx'}: the template without macros, for the desktop add-in "
        "(synthetic sample data)",
        "next: open it in Excel; its Formulas sheet calls the desktop add-in's =FLASSO_* "
        "functions (for the server add-in: --server)",
        f"without Excel: xl-factorlasso refit {tmp_path / 'Y.xlsx'} --cv --portfolio",
    ]
    code, out, err = _cli(capsys, "--macro", str(tmp_path / "X.xlsm"))
    assert (code, err) == (0, "")
    assert (tmp_path / "X.xlsm").read_bytes() == XLSM_BYTES
    assert out.splitlines()[0] == (f"wrote {tmp_path / 'X.xlsm'}: the template with the Factor "
                                   "LASSO ribbon tab (synthetic sample data)")
    assert "xlwings addin install" in out.splitlines()[1]
    # the extension is compared without regard to case, as Windows and Excel do
    assert _cli(capsys, "--macro", str(tmp_path / "BOOK.XLSM"))[0] == 0
    assert (tmp_path / "BOOK.XLSM").read_bytes() == XLSM_BYTES
    assert sorted(p.name for p in tmp_path.iterdir()) == ["BOOK.XLSM", "X.xlsm", "Y.xlsx"]


def test_the_server_template_and_the_real_data(tmp_path, capsys):
    sp500 = ("sample data: weekly returns of 20 S&P 500 stocks on 5 factor ETFs, 2014-2022 "
             "(skfolio's datasets, BSD-3-Clause)")
    cases = [
        (["--server"], "S.xlsx", "factorlasso_template_server.xlsx",
         "the template for the server add-in (synthetic sample data)"),
        (["--data", "sp500"], "R.xlsx", "factorlasso_template_sp500.xlsx",
         f"the template without macros, for the desktop add-in ({sp500})"),
        (["--macro", "--data", "sp500"], "R.xlsm", "factorlasso_template_sp500.xlsm",
         f"the template with the Factor LASSO ribbon tab ({sp500})"),
        (["--data", "sp500", "--server"], "RS.xlsx", "factorlasso_template_sp500_server.xlsx",
         f"the template for the server add-in ({sp500})"),
        (["--data", "synthetic"], "Y.xlsx", "factorlasso_template.xlsx",
         "the template without macros, for the desktop add-in (synthetic sample data)"),
    ]
    for options, name, shipped, what in cases:
        code, out, err = _cli(capsys, *options, str(tmp_path / name))
        assert (code, err) == (0, ""), options
        assert (tmp_path / name).read_bytes() == (templates.FOLDER / shipped).read_bytes()
        assert out.splitlines()[0] == f"wrote {tmp_path / name}: {what}"
    code, out, _ = _cli(capsys, "--server", str(tmp_path / "S2.xlsx"))
    assert out.splitlines()[1] == (
        "next: open it in Excel with the add-in of xl-factorlasso serve loaded: its Formulas "
        "sheet calls FACTORLASSO.FLASSO_*, its ribbon tab runs the jobs")


def test_macro_and_server_exclude_each_other(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["template", "--macro", "--server", str(tmp_path / "a.xlsm")])
    assert stop.value.code == 2
    assert capsys.readouterr().err.endswith(
        "xl-factorlasso template: error: argument --server: not allowed with argument --macro\n")
    with pytest.raises(SystemExit):
        main(["template", "--data", "ftse", str(tmp_path / "a.xlsx")])
    assert "argument --data: invalid choice: 'ftse' (choose from" in capsys.readouterr().err
    # the library function says the same, for callers that are not the command line
    with pytest.raises(templates.TemplateError, match="--macro and --server exclude each other"):
        templates.write_template(tmp_path / "a.xlsm", macro=True, server=True)
    with pytest.raises(templates.TemplateError,
                       match=r"^--data 'ftse': the sample data are one of synthetic, sp500$"):
        templates.write_template(tmp_path / "a.xlsx", data="ftse")
    assert list(tmp_path.iterdir()) == []


def test_a_relative_path_with_a_space_is_quoted_in_the_next_step(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, _ = _cli(capsys, "my book.xlsx")
    assert code == 0 and (tmp_path / "my book.xlsx").read_bytes() == XLSX_BYTES
    assert out.splitlines()[-1] == 'without Excel: xl-factorlasso refit "my book.xlsx" --cv --portfolio'


@pytest.mark.parametrize("args, message", [
    (["--macro", "{d}/a.xlsx"], "{d}/a.xlsx: --macro writes the workbook with the ribbon (VBA), "
     "which Excel opens only as .xlsm: name it {d}/a.xlsm, or leave out --macro for the .xlsx "
     "template"),
    (["{d}/a.xlsm"], "{d}/a.xlsm: an .xlsm is the workbook with the ribbon: add --macro, or name "
     "it {d}/a.xlsx for the template without macros"),
    (["{d}/a.xls"], "{d}/a.xls: the file name must end in .xlsx (or .xlsm with --macro); other "
     "formats are not written"),
    (["--macro", "{d}/a.xlsb"], "{d}/a.xlsb: the file name must end in .xlsx (or .xlsm with "
     "--macro); other formats are not written"),
    (["{d}/a"], "{d}/a: the file name must end in .xlsx (or .xlsm with --macro); other formats "
     "are not written"),
    (["--server", "{d}/a.xlsm"], "{d}/a.xlsm: the server add-in's template has no macros "
     "(Office.js add-ins run no VBA): name it {d}/a.xlsx"),
    (["--server", "--data", "sp500", "{d}/a.csv"], "{d}/a.csv: the file name must end in .xlsx "
     "(or .xlsm with --macro); other formats are not written"),
], ids=["macro-as-xlsx", "xlsm-without-macro", "xls", "xlsb", "no-extension", "server-as-xlsm",
        "server-csv"])
def test_a_mismatched_extension_is_refused(tmp_path, capsys, args, message):
    d = str(tmp_path)
    _refused(capsys, [a.format(d=d) for a in args], message.format(d=d))
    assert list(tmp_path.iterdir()) == []


def test_an_existing_file_is_replaced_only_with_force(tmp_path, capsys):
    book = tmp_path / "BOOK.xlsx"
    book.write_bytes(MINE)
    _refused(capsys, [str(book)], f"{book} exists: add --force to replace it with a fresh "
             "template (its data and results are then lost)")
    assert book.read_bytes() == MINE
    os.chmod(book, 0o640)
    assert _cli(capsys, "--force", str(book))[0] == 0
    assert book.read_bytes() == XLSX_BYTES
    assert os.stat(book).st_mode & 0o777 == 0o640  # a replaced file keeps its permission bits
    assert sorted(p.name for p in tmp_path.iterdir()) == ["BOOK.xlsx"]  # no temporary file left


def test_force_does_not_replace_a_workbook_open_in_excel(tmp_path, capsys):
    book = tmp_path / "BOOK.xlsx"
    book.write_bytes(MINE)
    (tmp_path / "~$BOOK.xlsx").write_bytes(excel_owner_bytes("jdoe"))
    _refused(capsys, ["--force", str(book)],
             "BOOK.xlsx is open in Excel (by jdoe; ~$BOOK.xlsx beside it): close it in Excel "
             "first, or give another PATH. If Excel is not running, ~$BOOK.xlsx was left behind "
             "by a crash: delete it")
    assert book.read_bytes() == MINE


def test_force_does_not_replace_a_read_only_file(tmp_path, capsys):
    book = tmp_path / "BOOK.xlsm"
    book.write_bytes(MINE)
    os.chmod(book, 0o444)
    _refused(capsys, ["--macro", "--force", str(book)],
             "BOOK.xlsm is read-only: make it writable first, or give another PATH")
    assert book.read_bytes() == MINE


_LOCKER = textwrap.dedent("""
    import fcntl, os, sys
    fd = os.open(sys.argv[1], os.O_RDWR)
    fcntl.lockf(fd, fcntl.LOCK_EX)
    print("locked", flush=True)
    sys.stdin.read()
""")


@pytest.fixture
def locked(tmp_path):
    """BOOK.xlsx holding the user's bytes, with an fcntl lock held by another process."""
    pytest.importorskip("fcntl")
    book = tmp_path / "BOOK.xlsx"
    book.write_bytes(MINE)
    child = subprocess.Popen([sys.executable, "-c", _LOCKER, str(book)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "locked"
        yield book
    finally:
        child.stdin.close()
        child.wait(timeout=10)


LOCKED = ("BOOK.xlsx is locked by another program (it holds a file lock on it): close it there "
          "first, or give another PATH")


def test_force_does_not_replace_a_file_another_process_has_locked(locked, capsys):
    _refused(capsys, ["--force", str(locked)], LOCKED)
    assert locked.read_bytes() == MINE


def test_a_lock_taken_after_the_check_still_stops_the_rename(locked, capsys, monkeypatch):
    """The rename happens under an exclusive lock: the last line of defence after the check."""
    from xl_factorlasso.workbook import _xlsx_guard

    monkeypatch.setattr(_xlsx_guard, "write_blocker", lambda path: None)
    _refused(capsys, ["--force", str(locked)], LOCKED)
    assert locked.read_bytes() == MINE
    assert sorted(p.name for p in locked.parent.iterdir()) == ["BOOK.xlsx"]  # temp removed


def test_folders_missing_read_only_or_in_the_way(tmp_path, capsys):
    missing = tmp_path / "nope" / "BOOK.xlsx"
    _refused(capsys, [str(missing)], f"the folder {os.path.realpath(missing.parent)} does not "
             "exist")
    folder_named_like_a_book = tmp_path / "D.xlsx"
    folder_named_like_a_book.mkdir()
    for args in ([str(folder_named_like_a_book)], ["--force", str(folder_named_like_a_book)]):
        _refused(capsys, args, f"{folder_named_like_a_book} is a folder, not a workbook file")
    read_only = tmp_path / "ro"
    read_only.mkdir()
    os.chmod(read_only, 0o555)
    try:
        _refused(capsys, [str(read_only / "BOOK.xlsx")],
                 f"the folder {os.path.realpath(read_only)} is read-only, so BOOK.xlsx cannot "
                 "be written there: give a PATH in another folder")
        assert list(read_only.iterdir()) == []
    finally:
        os.chmod(read_only, 0o755)


def test_through_a_symlink_the_file_it_points_to_is_replaced(tmp_path, capsys):
    real = tmp_path / "real.xlsx"
    real.write_bytes(MINE)
    link = tmp_path / "link.xlsx"
    link.symlink_to(real)
    _refused(capsys, [str(link)], f"{link} exists: add --force to replace it with a fresh "
             "template (its data and results are then lost)")
    assert _cli(capsys, "--force", str(link))[0] == 0
    assert link.is_symlink() and real.read_bytes() == XLSX_BYTES


def test_template_help_says_which_template_is_for_which_add_in_and_where_they_come_from(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["template", "--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    shipped = [templates.template_path(m, server=sv, data=d) for m, sv, d in templates.VARIANTS]
    assert all(p.is_file() for p in shipped) and len(shipped) == 6
    assert ("The templates come from inside the installed package:\n"
            + "".join(f"  {p}\n" for p in shipped)
            + "They are built from workbook_template/ of the source repository by "
            "`make templates`\nand shipped in the wheel as package data.") in out
    assert ("usage: xl-factorlasso template [-h] [--macro | --server]\n"
            "                               [--data {synthetic,sp500}] [--force]\n"
            "                               PATH") in out
    assert ("  (default)  .xlsx, the desktop add-in's functions FLASSO_FIT(...)\n"
            "             (xlwings add-in, Import Functions), and the command line\n"
            "  --macro    .xlsm, the same plus the Factor LASSO ribbon tab (VBA)\n"
            "  --server   .xlsx, the server add-in's functions\n"
            "             FACTORLASSO.FLASSO_FIT(...) (xl-factorlasso serve; Office.js)\n") in out
    assert "BSD-3-Clause; source and licence on the Start sheet" in out


def test_main_help_points_at_the_user_guide(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    # in a source checkout the guide is docs/; an installed wheel has it in the package
    # (tests/test_install.py checks that one)
    assert user_guide() == ROOT / "docs"
    assert (f"User guide (Markdown): {ROOT / 'docs' / 'index.md'}\n"
            "A workbook to start from: xl-factorlasso template --help") in out
