"""File-level safety of the .xlsx/.xlsm adapter: who else holds the file, what our saves leave
behind, hostile and damaged packages, invalid cell values, name reasons and occupied cells.

Every refusal is checked to leave the workbook byte-for-byte unchanged and no temporary file.
The workbooks are written by the tests themselves (openpyxl, or zips and OLE2 files made by
hand in :mod:`tests.file_safety_helpers`).
"""

from __future__ import annotations

import datetime as dt
import io
import os
import random
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
import zipfile
import zlib

import openpyxl
import pytest
from lxml import etree
from openpyxl.comments import Comment
from openpyxl.workbook.defined_name import DefinedName
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.table import Table

from tests.file_safety_helpers import (
    MAIN,
    FakeBook,
    FakeName,
    FakeSheet,
    FakeTable,
    cfb,
    digest,
    excel_owner_bytes,
    libreoffice_lock_bytes,
    local_data_offset,
    members,
    patch_sizes,
    small_book,
    write_zip,
)
from xl_factorlasso.workbook import (
    Area,
    WorkbookInputError,
    XlsxFileIO,
    XlwingsBookIO,
    _xlsx_archive,
    _xlsx_guard,
)
from xl_factorlasso.workbook._xlsx import XlsxPackage
from xl_factorlasso.workbook._xlsx_opc import parse_xml
from xl_factorlasso.workbook._xlsx_values import BadValue

HOST = socket.gethostname()
OUT = "or write to another file with --out"


@pytest.fixture
def book(tmp_path):
    return small_book(tmp_path / "book.xlsx")


def _temps(folder) -> list[str]:
    return sorted(n for n in os.listdir(folder) if n.endswith(".tmp"))


def _refused_save(path, message):
    """Open, edit and save: the save must raise ``message`` and change nothing on disk."""
    before = digest(path)
    io_ = XlsxFileIO(path)
    assert io_.read(Area("Data", 1, 1, 1, 2)) == [["r1", 1.5]]  # reading still works
    assert io_.write_blocker() == message
    io_.write(Area("Data", 1, 1, 1, 1), [["changed"]])
    with pytest.raises(WorkbookInputError) as info:
        io_.save()
    assert str(info.value) == message
    assert digest(path) == before
    assert _temps(os.path.dirname(path)) == []


# =============================================================================== lock files
def test_excel_owner_file_blocks_the_save_and_names_the_user(book):
    owner = book.parent / "~$book.xlsx"
    owner.write_bytes(excel_owner_bytes("Zoë Dupont"))
    _refused_save(book, f"book.xlsx is open in Excel (by Zoë Dupont; ~$book.xlsx beside it): "
                        f"close it in Excel first, {OUT}. If Excel is not running, ~$book.xlsx "
                        "was left behind by a crash: delete it")
    owner.write_bytes(b"")  # an owner file we cannot parse still means "open in Excel"
    assert XlsxFileIO(book).write_blocker().startswith(
        "book.xlsx is open in Excel (~$book.xlsx beside it): close it in Excel first")
    owner.unlink()
    io_ = XlsxFileIO(book)
    assert io_.write_blocker() is None
    io_.write(Area("Data", 1, 1, 1, 1), [["changed"]])
    io_.save()
    assert XlsxFileIO(book).read(Area("Data", 1, 1, 1, 1)) == [["changed"]]


def test_owner_file_user_name_formats():
    assert _xlsx_guard._owner_user(excel_owner_bytes("jdoe")) == "jdoe"
    assert _xlsx_guard._owner_user(excel_owner_bytes("Jane Doe", word=True)) == "Jane Doe"
    assert _xlsx_guard._owner_user(excel_owner_bytes("Ŝtefan Łukasz")) == "Ŝtefan Łukasz"
    # only the ANSI copy: what an old writer leaves
    assert _xlsx_guard._owner_user(bytes([4]) + b"jdoe" + b" " * 20) == "jdoe"
    assert _xlsx_guard._owner_user(b"\x00" * 165) is None
    assert _xlsx_guard._owner_user(b"") is None


def test_out_elsewhere_is_allowed_while_the_source_is_open_in_excel(book, tmp_path):
    (book.parent / "~$book.xlsx").write_bytes(excel_owner_bytes("jdoe"))
    before = digest(book)
    out = tmp_path / "copy.xlsx"
    io_ = XlsxFileIO(book, out)
    assert io_.write_blocker() is None
    io_.write(Area("Data", 1, 1, 1, 1), [["copy"]])
    io_.save()
    assert digest(book) == before
    assert XlsxFileIO(out).read(Area("Data", 1, 1, 1, 1)) == [["copy"]]
    # ... but not onto a file that is itself open in Excel
    (tmp_path / "~$copy.xlsx").write_bytes(excel_owner_bytes("ann"))
    assert XlsxFileIO(book, out).write_blocker().startswith(
        "copy.xlsx is open in Excel (by ann; ~$copy.xlsx beside it)")


def _libreoffice(book, tmp_path, host=HOST, profile_lock=True, user="Doe, Jane"):
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    if profile_lock:
        (profile / ".lock").write_text("[Lockdata]\nUser=jdoe\n")
    lock = book.parent / ".~lock.book.xlsx#"
    lock.write_bytes(libreoffice_lock_bytes(user, "jdoe", host, "11.06.2024 09:30",
                                            profile.as_uri()))
    return lock, profile


def test_libreoffice_lock_of_a_running_instance_blocks(book, tmp_path):
    _libreoffice(book, tmp_path)
    _refused_save(book, f"book.xlsx is open in LibreOffice (by Doe, Jane, on {HOST}, since "
                        f"11.06.2024 09:30; .~lock.book.xlsx# beside it): close it in "
                        f"LibreOffice first, {OUT}. If LibreOffice is not running on {HOST}, "
                        ".~lock.book.xlsx# was left behind by a crash: delete it")


def test_libreoffice_lock_whose_instance_is_gone_is_stale(book, tmp_path):
    # LibreOffice holds <profile>/.lock while it runs: without it, no LibreOffice is running
    lock, profile = _libreoffice(book, tmp_path, profile_lock=False)
    assert XlsxFileIO(book).write_blocker() is None
    XlsxFileIO(book).save()
    assert lock.exists()  # not ours: left alone
    # a profile that does not exist at all cannot have a running instance either
    lock.write_bytes(libreoffice_lock_bytes("", "jdoe", HOST, "t",
                                            (tmp_path / "gone").as_uri()))
    assert XlsxFileIO(book).write_blocker() is None


def test_libreoffice_lock_older_than_the_last_boot_is_stale(book, tmp_path):
    boot = _xlsx_guard._boot_time()
    if boot is None:
        pytest.skip("this platform does not say when it booted")
    lock, _ = _libreoffice(book, tmp_path, profile_lock=True)
    assert XlsxFileIO(book).write_blocker() is not None
    os.utime(lock, (boot - 3600, boot - 3600))
    assert XlsxFileIO(book).write_blocker() is None


def test_libreoffice_lock_of_another_host_always_blocks(book, tmp_path):
    lock, _ = _libreoffice(book, tmp_path, host="far-away.example.org", profile_lock=False,
                           user="")
    os.utime(lock, (0, 0))  # even a very old one: we cannot see that host's processes
    assert XlsxFileIO(book).write_blocker() == (
        "book.xlsx is open in LibreOffice (by jdoe, on far-away.example.org, since "
        "11.06.2024 09:30; .~lock.book.xlsx# beside it): close it in LibreOffice first, "
        f"{OUT}. If LibreOffice is not running on far-away.example.org, .~lock.book.xlsx# was "
        "left behind by a crash: delete it")


def test_an_unreadable_libreoffice_lock_blocks_to_be_safe(book):
    (book.parent / ".~lock.book.xlsx#").write_bytes(b"\x00\xff garbage without fields")
    assert XlsxFileIO(book).write_blocker() == (
        "book.xlsx is open in LibreOffice (.~lock.book.xlsx# beside it): close it in "
        f"LibreOffice first, {OUT}. If LibreOffice is not running, .~lock.book.xlsx# was left "
        "behind by a crash: delete it")


def test_lock_files_beside_a_symlink_target_count(tmp_path):
    real = small_book(tmp_path / "real.xlsx")
    link = tmp_path / "sub" / "link.xlsx"
    link.parent.mkdir()
    link.symlink_to(real)
    (tmp_path / "~$real.xlsx").write_bytes(excel_owner_bytes("jdoe"))
    assert XlsxFileIO(link).write_blocker().startswith(
        "link.xlsx is open in Excel (by jdoe; ~$real.xlsx beside it)")


# =============================================================================== OS locks
_LOCKER = textwrap.dedent("""
    import fcntl, os, sys
    fd = os.open(sys.argv[1], os.O_RDWR)
    getattr(fcntl, sys.argv[2])(fd, fcntl.LOCK_EX)
    print("locked", flush=True)
    sys.stdin.read()
""")


@pytest.fixture
def locked_by_child():
    pytest.importorskip("fcntl")
    children = []

    def lock(path, how):
        child = subprocess.Popen([sys.executable, "-c", _LOCKER, str(path), how],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        children.append(child)
        assert child.stdout.readline().strip() == "locked"
        return child

    yield lock
    for child in children:
        child.stdin.close()
        child.wait(timeout=10)


@pytest.mark.parametrize("how", ["lockf", "flock"])
def test_a_lock_held_by_another_process_blocks(book, locked_by_child, how):
    child = locked_by_child(book, how)
    message = ("book.xlsx is locked by another program (it holds a file lock on it): close it "
               f"there first, {OUT}")
    _refused_save(book, message)
    child.stdin.close()
    child.wait(timeout=10)
    assert XlsxFileIO(book).write_blocker() is None


def test_the_rename_happens_under_an_exclusive_lock(book, locked_by_child):
    # The last line of defence, between the check and the rename.
    locked_by_child(book, "lockf")
    with pytest.raises(WorkbookInputError, match="book.xlsx is locked by another program"):
        with _xlsx_guard.exclusive_for_replace(str(book)):
            raise AssertionError("must not get here")


def test_windows_sharing_violation_decision():
    def opener(winerror):
        def fake(path, mode):
            err = PermissionError(13, "The process cannot access the file")
            err.winerror = winerror
            raise err
        return fake

    assert _xlsx_guard._windows_in_use("x.xlsx", opener(32)) is True  # sharing violation
    assert _xlsx_guard._windows_in_use("x.xlsx", opener(33)) is True  # lock violation
    assert _xlsx_guard._windows_in_use("x.xlsx", opener(5)) is False  # access denied
    assert _xlsx_guard._windows_in_use("x.xlsx", lambda p, m: io.BytesIO()) is False


# =============================================================================== read-only
def test_read_only_file_is_refused_even_for_root(book):
    os.chmod(book, 0o444)  # no write bit for anyone: honoured by a superuser too
    try:
        _refused_save(book, f"book.xlsx is read-only: make it writable first, {OUT}")
    finally:
        os.chmod(book, 0o644)
    assert XlsxFileIO(book).write_blocker() is None


def test_read_only_folder_is_refused_even_for_root(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    path = small_book(folder / "book.xlsx")
    os.chmod(folder, 0o555)
    try:
        _refused_save(path, f"the folder {folder} is read-only, so book.xlsx cannot be written "
                            "there: write to another folder with --out")
    finally:
        os.chmod(folder, 0o755)


def test_no_write_access_by_the_os_is_read_only(book, monkeypatch):
    """What an immutable file or a read-only mount looks like: the bits allow writing, the
    system does not (as seen through ``os.access``, which is what root is subject to)."""
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if os.fspath(p) == str(book)
                        and mode & os.W_OK else real_access(p, mode, **kw))
    _refused_save(book, f"book.xlsx is read-only: make it writable first, {OUT}")
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if os.fspath(p) == str(
        book.parent) and mode & os.W_OK else real_access(p, mode, **kw))
    assert XlsxFileIO(book).write_blocker() == (
        f"the folder {book.parent} is read-only, so book.xlsx cannot be written there: write "
        "to another folder with --out")


@pytest.mark.skipif(os.name == "nt" or os.geteuid() == 0,
                    reason="permission bits do not bind root")
def test_read_only_file_as_an_ordinary_user(book):
    os.chmod(book, 0o444)
    try:
        with pytest.raises(WorkbookInputError, match="book.xlsx is read-only"):
            XlsxPackage.open(book).save()
    finally:
        os.chmod(book, 0o644)


def test_out_that_is_a_folder_or_in_a_missing_folder(book, tmp_path):
    assert XlsxFileIO(book, tmp_path).write_blocker() == f"{tmp_path} is a folder, not a workbook file"
    missing = tmp_path / "nope" / "x.xlsx"
    assert XlsxFileIO(book, missing).write_blocker() == f"the folder {missing.parent} does not exist"


def test_a_refit_into_a_workbook_open_in_excel_writes_nothing(tmp_path):
    from xl_factorlasso.cli import build_demo_workbook
    from xl_factorlasso.workbook import refit

    path = tmp_path / "demo.xlsx"
    build_demo_workbook(str(path))
    (tmp_path / "~$demo.xlsx").write_bytes(excel_owner_bytes("jdoe"))
    before = digest(path)
    with pytest.raises(WorkbookInputError, match=r"demo.xlsx is open in Excel \(by jdoe"):
        refit(XlsxFileIO(path), pictures=False)
    assert digest(path) == before and _temps(tmp_path) == []


# =============================================================================== temp files
def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_temp_files_are_named_so_they_can_be_attributed(book, monkeypatch):
    seen = []
    real_replace = os.replace

    def spy(src, dst):
        seen.append(os.path.basename(src))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    XlsxPackage.open(book).save()
    host = re.sub(r"[^A-Za-z0-9.-]", "_", HOST)
    assert re.fullmatch(rf"\.book\.xlsx\.~xlfl-{os.getpid()}@{re.escape(host)}-[a-z0-9_]{{8}}"
                        r"\.tmp", seen[0]), seen
    assert _temps(book.parent) == []


def test_stale_temp_files_are_removed_and_live_ones_kept(book, monkeypatch):
    folder, host = book.parent, _xlsx_guard._safe_host()
    dead, live = _dead_pid(), os.getpid()
    files = {
        "dead": f".book.xlsx.~xlfl-{dead}@{host}-abcd1234.tmp",
        "live": f".book.xlsx.~xlfl-{live}@{host}-abcd1234.tmp",
        "foreign_fresh": f".book.xlsx.~xlfl-{dead}@elsewhere.example-abcd1234.tmp",
        "foreign_old": f".book.xlsx.~xlfl-{dead}@elsewhere.example-zzzz9999.tmp",
        "legacy_fresh": ".book.xlsx.k3j2h1g0.tmp",
        "legacy_old": ".book.xlsx.a1b2c3d4.tmp",
        "other_book": f".other.xlsx.~xlfl-{dead}@{host}-abcd1234.tmp",
        "not_ours": ".book.xlsx.notes.tmp",
    }
    for name in files.values():
        (folder / name).write_bytes(b"PK partial")
    old = time.time() - _xlsx_guard.UNATTRIBUTED_TEMP_AGE - 60
    for key in ("foreign_old", "legacy_old", "not_ours"):
        os.utime(folder / files[key], (old, old))
    XlsxPackage.open(book)  # opening cleans up ...
    assert _temps(folder) == sorted(files[k] for k in ("live", "foreign_fresh", "legacy_fresh",
                                                       "other_book", "not_ours"))
    # ... and a live process's temp that predates the last boot is from a reused pid
    boot = _xlsx_guard._boot_time()
    if boot is not None:
        os.utime(folder / files["live"], (boot - 60, boot - 60))
        XlsxFileIO(book).save()  # so does saving
        assert files["live"] not in _temps(folder)


def test_no_temp_file_after_a_failed_write(book, monkeypatch):
    before = digest(book)
    pkg = XlsxPackage.open(book)
    pkg.write_values("Data", "A1", [["x"]])

    def broken(fileobj):
        fileobj.write(b"PK\x03\x04 half a zip")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pkg, "_write_zip", broken)
    with pytest.raises(OSError, match="No space left"):
        pkg.save()
    assert digest(book) == before and _temps(book.parent) == []


def test_pid_alive():
    assert _xlsx_guard.pid_alive(os.getpid())
    assert not _xlsx_guard.pid_alive(_dead_pid())
    assert not _xlsx_guard.pid_alive(0)
    if sys.platform.startswith("linux"):  # a zombie has exited: it writes nothing any more
        child = subprocess.Popen([sys.executable, "-c", "pass"])
        deadline = time.time() + 10
        while time.time() < deadline:
            with open(f"/proc/{child.pid}/stat", "rb") as fh:
                if fh.read().rsplit(b")", 1)[-1].split()[0] == b"Z":
                    break
            time.sleep(0.01)
        assert not _xlsx_guard.pid_alive(child.pid)
        child.wait()


# =============================================================================== kill -9
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_kill_during_save_leaves_the_old_or_the_new_file(tmp_path):
    """A child saves in a loop; it is killed at random moments (seeded). The workbook is
    always one complete version, and the next open removes what the killed save left."""
    path = tmp_path / "book.xlsx"
    wb = openpyxl.Workbook()
    rnd = random.Random(7)
    for _ in range(2000):  # ~0.5 MB: a save takes long enough to be interrupted mid-write
        wb.active.append([rnd.random() for _ in range(20)])
    wb.save(path)
    pkg = XlsxPackage.open(path)
    versions = {path.read_bytes()}
    for text in ("A", "B"):
        pkg.write_values("Sheet", "A1", [[text]])
        versions.add(pkg.to_bytes())
    assert len(versions) == 3

    rng = random.Random(20240611)
    interrupted = 0
    for _trial in range(20):
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: save A, B, A, B ... until killed
            try:
                os.close(read_end)
                child = XlsxPackage.open(path)
                i = 0
                while True:
                    child.write_values("Sheet", "A1", [["AB"[i % 2]]])
                    child.save()
                    os.write(write_end, b"s")
                    i += 1
            finally:
                os._exit(0)
        os.close(write_end)
        assert os.read(read_end, 1) == b"s"  # at least one save done
        time.sleep(rng.uniform(0.0, 0.2))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(read_end)
        blob = path.read_bytes()
        assert blob in versions
        with zipfile.ZipFile(path) as zf:
            assert zf.testzip() is None
        interrupted += bool(_temps(tmp_path))
        XlsxPackage.open(path)  # the next open removes the killed save's temp file
        assert _temps(tmp_path) == []
    assert interrupted > 0  # the kills did land inside saves


# =============================================================================== bounds
def _bomb(path, name="xl/bomb.xml", size=40 * 2**20):
    parts = members(small_book(path))
    parts[name] = b"<a>" + b"\0" * size + b"</a>"
    write_zip(path, parts)
    return path


def test_a_decompression_bomb_is_refused_by_its_declared_sizes(tmp_path, monkeypatch):
    path = _bomb(tmp_path / "bomb.xlsx")
    read = []
    monkeypatch.setattr(_xlsx_archive, "_read_member",
                        lambda *a: read.append(a[2].filename) or b"")
    before = digest(path)
    with pytest.raises(WorkbookInputError) as info:
        XlsxFileIO(path)
    packed = zipfile.ZipFile(path).getinfo("xl/bomb.xml").compress_size
    assert str(info.value) == (
        f"{path}: part 'xl/bomb.xml' would expand from {packed:,} bytes to 40.0 MiB "
        f"({(40 * 2**20 + 7) // packed:,}:1); real workbook parts compress at most about 20:1, "
        "so this is a decompression bomb and the workbook was refused")
    assert read == []  # refused before anything was decompressed
    assert digest(path) == before


def test_oversized_parts_and_packages_are_refused(book, monkeypatch):
    patch_sizes(book, "xl/worksheets/sheet1.xml", uncompressed=0xF0000000)
    with pytest.raises(WorkbookInputError, match=r"part 'xl/worksheets/sheet1.xml' would "
                       r"decompress to 3.8 GiB \(limit 3.0 GiB per part\)"):
        XlsxFileIO(book)
    patch_sizes(book, "xl/worksheets/sheet1.xml", uncompressed=len(
        members_raw(book)["xl/worksheets/sheet1.xml"]))
    XlsxFileIO(book)
    monkeypatch.setattr(_xlsx_archive, "MAX_TOTAL_BYTES", 4096)
    with pytest.raises(WorkbookInputError, match=r"its parts would decompress to [0-9,]+ bytes "
                       r"in all \(limit 4,096 bytes\)"):
        XlsxFileIO(book)
    monkeypatch.setattr(_xlsx_archive, "MAX_MEMBERS", 3)
    with pytest.raises(WorkbookInputError, match=r"the zip holds \d+ members \(limit 3\)"):
        XlsxFileIO(book)


def members_raw(path):
    with zipfile.ZipFile(path) as zf:
        return {i.filename: zf.open(i).read() for i in zf.infolist()}


def test_a_part_that_lies_about_its_size_is_stopped_while_decompressing(tmp_path):
    path = _bomb(tmp_path / "liar.xlsx")
    patch_sizes(path, "xl/bomb.xml", uncompressed=1000)  # now the declared ratio is harmless
    before = digest(path)
    with pytest.raises(WorkbookInputError) as info:
        XlsxFileIO(path)
    assert str(info.value) == (
        f"{path}: part 'xl/bomb.xml' decompresses to more than the 1,000 bytes its zip header "
        "declares (a damaged or crafted file); the workbook was refused")
    assert digest(path) == before


def test_a_ratio_bomb_below_the_declared_sizes_is_stopped_while_decompressing(tmp_path,
                                                                              monkeypatch):
    # Declared sizes can only be trusted so far: with the declared check out of the way the
    # streaming bound still stops the expansion.
    path = _bomb(tmp_path / "bomb.xlsx")
    monkeypatch.setattr(_xlsx_archive, "_check_declared", lambda *a: None)
    with pytest.raises(WorkbookInputError, match=r"part 'xl/bomb.xml' expands more than 200:1 "
                       r"from [0-9,]+ bytes; this is a decompression bomb"):
        XlsxFileIO(path)


def test_the_bounds_admit_a_million_row_fifty_column_sheet():
    """Measure real sheet XML and extrapolate: the documented sheet must fit the bounds."""
    rnd = random.Random(1)
    from xl_factorlasso.workbook._xlsx_refs import col_letters

    def rows(n, value):
        out = []
        for r in range(1_048_576 - n + 1, 1_048_577):  # the longest row numbers
            cells = "".join(f'<c r="{col_letters(c)}{r}" s="1"><v>{value()}</v></c>'
                            for c in range(1, 51))
            out.append(f'<row r="{r}" spans="1:50">{cells}</row>')
        return "".join(out).encode()

    for value in (lambda: repr(rnd.random() * 1e6), lambda: "0"):
        sample = rows(2000, value)
        full = len(sample) * 1_048_576 // 2000
        ratio = len(sample) / len(zlib.compress(sample, 6))
        assert full < _xlsx_archive.MAX_PART_BYTES
        assert full < _xlsx_archive.MAX_TOTAL_BYTES
        assert ratio < _xlsx_archive.MAX_RATIO / 5


# =============================================================================== damage
_REPAIR = ("Let Excel repair it (File > Open, select the file, then Open > Open and Repair) or "
           "restore a copy.")


def _stored_sheet(tmp_path) -> tuple:
    path = small_book(tmp_path / "book.xlsx")
    write_zip(path, members(path), stored=("xl/worksheets/sheet1.xml",))
    blob = bytearray(path.read_bytes())
    return path, blob, local_data_offset(bytes(blob), "xl/worksheets/sheet1.xml")


def _open_fails(path, message):
    before = digest(path)
    with pytest.raises(WorkbookInputError) as info:
        XlsxFileIO(path)
    assert str(info.value) == message
    assert digest(path) == before


def test_a_member_with_a_bad_crc_is_named(tmp_path):
    path, blob, at = _stored_sheet(tmp_path)
    blob[at + 100] ^= 0x01
    path.write_bytes(bytes(blob))
    _open_fails(path, f"{path} is damaged: part 'xl/worksheets/sheet1.xml' fails its CRC check "
                      f"(its bytes were altered). {_REPAIR}")


def test_a_member_with_bad_compressed_data_is_named(book):
    blob = bytearray(book.read_bytes())
    at = local_data_offset(bytes(blob), "xl/worksheets/sheet1.xml")
    blob[at] = 0xFF  # final block of the reserved type 3
    book.write_bytes(bytes(blob))
    _open_fails(book, f"{book} is damaged: part 'xl/worksheets/sheet1.xml' has corrupt "
                      f"compressed data (invalid block type). {_REPAIR}")


def test_a_truncated_member_is_named(book):
    info = zipfile.ZipFile(book).getinfo("xl/worksheets/sheet1.xml")
    patch_sizes(book, "xl/worksheets/sheet1.xml", compressed=info.compress_size // 2)
    _open_fails(book, f"{book} is damaged: part 'xl/worksheets/sheet1.xml' is truncated (its "
                      f"compressed data ends early). {_REPAIR}")


def test_a_member_with_an_overwritten_header_is_named(tmp_path):
    path, blob, _ = _stored_sheet(tmp_path)
    cd = blob.index(b"xl/worksheets/sheet1.xml", blob.index(b"PK\x01\x02")) - 46
    header = int.from_bytes(blob[cd + 42 : cd + 46], "little")
    blob[header : header + 4] = b"XXXX"
    path.write_bytes(bytes(blob))
    _open_fails(path, f"{path} is damaged: part 'xl/worksheets/sheet1.xml' has a damaged local "
                      f"header (the bytes where it starts were overwritten). {_REPAIR}")


def test_a_truncated_file_and_things_that_are_not_zips(book, tmp_path):
    blob = book.read_bytes()
    book.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(WorkbookInputError) as info:
        XlsxFileIO(book)
    assert str(info.value).startswith(
        f"{book} is damaged: it starts like a workbook but its zip directory is missing or "
        "broken (the file is truncated or was overwritten")
    assert str(info.value).endswith(_REPAIR)
    csv = tmp_path / "data.xlsx"
    csv.write_bytes(b"date,SPX\n2024-01-05,0.1\n")
    _open_fails(csv, f"{csv}: not an .xlsx/.xlsm package (neither a zip file nor an Excel "
                     "97-2003 or password-protected workbook; it starts with b'date,SPX')")
    empty = tmp_path / "empty.xlsx"
    empty.write_bytes(b"")
    _open_fails(empty, f"{empty} is empty (0 bytes): restore a copy of the workbook")


def test_ole2_files_are_told_apart(tmp_path):
    xls = tmp_path / "old.xlsx"
    xls.write_bytes(cfb({"Workbook": b"\x09\x08" + b"\0" * 100, "\x05SummaryInformation": b""}))
    _open_fails(xls, f"{xls} is an Excel 97-2003 workbook (.xls format), whatever its name says: "
                     "open it in Excel and save it as an Excel Workbook (.xlsx) or an Excel "
                     "Macro-Enabled Workbook (.xlsm)")
    enc = tmp_path / "secret.xlsx"
    enc.write_bytes(cfb({"EncryptionInfo": b"\x04\x00\x04\x00", "EncryptedPackage": b"x" * 64}))
    _open_fails(enc, f"{enc} is password-protected (an encrypted workbook), so it cannot be read "
                     "without Excel: open it in Excel, remove the password (File > Info > "
                     "Protect Workbook > Encrypt with Password, clear it), save, and try again")
    doc = tmp_path / "letter.xlsx"
    doc.write_bytes(cfb({"WordDocument": b"x", "1Table": b"y"}))
    _open_fails(doc, f"{doc} is an OLE2 compound file of another kind (it holds 1Table, Root "
                     "Entry, WordDocument), not an .xlsx/.xlsm workbook")
    junk = tmp_path / "junk.xlsx"
    junk.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100)
    with pytest.raises(WorkbookInputError, match=r"is an OLE2 compound file, not an .xlsx/.xlsm "
                       r"package \(an Excel 97-2003 .xls or a password-protected workbook\?\)"):
        XlsxFileIO(junk)


def test_our_ole2_builder_is_a_valid_compound_file(tmp_path):
    olefile = pytest.importorskip("olefile")
    path = tmp_path / "x.xls"
    path.write_bytes(cfb({"Workbook": b"abc", "EncryptionInfo": b"d"}))
    with olefile.OleFileIO(str(path)) as ole:
        assert sorted(ole.listdir()) == [["EncryptionInfo"], ["Workbook"]]
        assert ole.openstream("Workbook").read()[:3] == b"abc"


def test_a_really_encrypted_workbook(book, tmp_path):
    msoffcrypto = pytest.importorskip("msoffcrypto")
    from msoffcrypto.format.ooxml import OOXMLFile

    enc = tmp_path / "locked.xlsx"
    with open(book, "rb") as src, open(enc, "wb") as dst:
        OOXMLFile(src).encrypt("secret", dst)
    assert msoffcrypto  # the encrypted file is what Excel writes for "Encrypt with Password"
    with pytest.raises(WorkbookInputError, match=r"locked.xlsx is password-protected"):
        XlsxFileIO(enc)


# =============================================================================== DOCTYPE
_LAUGHS = (b'<?xml version="1.0"?>\n<!-- a comment first -->\n<!DOCTYPE sst [\n'
           b'<!ENTITY a "aaaaaaaaaa">' + b"".join(
               f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">'.encode()
               for i in range(8)) + b']>\n<sst xmlns="' + MAIN.encode() +
           b'" count="1" uniqueCount="1"><si><t>&i;</t></si></sst>')


def test_an_entity_bomb_is_refused_and_never_expanded(book):
    parts = members(book)
    parts["xl/sharedStrings.xml"] = _LAUGHS
    write_zip(book, parts)
    _open_fails(book, f"{book}: part 'xl/sharedStrings.xml' declares a DOCTYPE (a DTD or entity "
                      "declarations); Excel never writes one and it can be used to attack the "
                      "reader, so the workbook was refused. Re-save it from Excel, or restore "
                      "a copy.")


@pytest.mark.parametrize("doc", [
    b'<!DOCTYPE x SYSTEM "file:///etc/passwd"><x/>',
    b'\xef\xbb\xbf<?xml version="1.0"?><?pi x?>\r\n  <!DOCTYPE x [<!ENTITY e SYSTEM "http://127.0.0.1:9/">]><x>&e;</x>',
    '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x []><x/>'.encode("utf-16"),
])
def test_every_doctype_form_is_refused(doc):
    with pytest.raises(ValueError, match="part 'p.xml' declares a DOCTYPE"):
        parse_xml(doc, "p.xml")


def test_doctype_text_inside_a_cell_is_just_text(book):
    wb = openpyxl.load_workbook(book)
    wb["Data"]["A1"] = "<!DOCTYPE html> is not a problem in a cell"
    wb.save(book)
    assert XlsxFileIO(book).read(Area("Data", 1, 1, 1, 1)) == [
        ["<!DOCTYPE html> is not a problem in a cell"]]


# =============================================================================== cell values
def _with_cells(path, cells: list[tuple[str, str | None, str]]):
    """Replace sheet1's data with raw ``<c r=.. t=..><v>..</v></c>`` cells in row 1 and 2."""
    parts = members(path)
    root = etree.fromstring(parts["xl/worksheets/sheet1.xml"])
    data = root.find(f"{{{MAIN}}}sheetData")
    for row in list(data):
        data.remove(row)
    rows = {}
    for ref, t, v in cells:
        r = int(re.sub(r"[A-Z]", "", ref))
        row = rows.get(r)
        if row is None:
            row = rows[r] = etree.SubElement(data, f"{{{MAIN}}}row", r=str(r))
        c = etree.SubElement(row, f"{{{MAIN}}}c", r=ref)
        if t:
            c.set("t", t)
        etree.SubElement(c, f"{{{MAIN}}}v").text = v
    parts["xl/worksheets/sheet1.xml"] = etree.tostring(root, xml_declaration=True,
                                                       encoding="UTF-8", standalone=True)
    parts["xl/sharedStrings.xml"] = (
        b'<?xml version="1.0" encoding="UTF-8"?><sst xmlns="' + MAIN.encode()
        + b'" count="1" uniqueCount="1"><si><t>only</t></si></sst>')
    rels = etree.fromstring(parts["xl/_rels/workbook.xml.rels"])
    etree.SubElement(rels, "{http://schemas.openxmlformats.org/package/2006/relationships}"
                     "Relationship", Id="rId90", Target="sharedStrings.xml",
                     Type="http://schemas.openxmlformats.org/officeDocument/2006/"
                          "relationships/sharedStrings")
    parts["xl/_rels/workbook.xml.rels"] = etree.tostring(rels)
    write_zip(path, parts)
    return path


def test_invalid_stored_values_come_back_as_bad_value(book):
    _with_cells(book, [
        ("A1", None, "NaN"), ("B1", None, "INF"), ("C1", None, "-INF"), ("D1", None, "1e999"),
        ("E1", None, "abc"), ("F1", None, "1_000"), ("G1", "s", "7"), ("H1", "s", "x"),
        ("I1", "d", "2024-13-45"), ("J1", "b", "2"), ("K1", "e", "oops"), ("L1", "zz", "1"),
        ("A2", None, "2.5"), ("B2", "s", "0"), ("C2", "d", "2024-02-29T06:00:00"),
        ("D2", "b", "1"), ("E2", "e", "#N/A"), ("F2", None, "-1E-3"),
    ])
    rows = XlsxFileIO(book).read(Area("Data", 1, 1, 2, 12))
    assert rows[0] == [
        BadValue("NaN", "the stored number 'NaN' is not a finite number"),
        BadValue("INF", "the stored number 'INF' is not a finite number"),
        BadValue("-INF", "the stored number '-INF' is not a finite number"),
        BadValue("1e999", "the stored number '1e999' is not a finite number"),
        BadValue("abc", "the stored number 'abc' is not a number"),
        BadValue("1_000", "the stored number '1_000' is not a finite number"),
        BadValue("7", "shared-string index 7 is out of range (the workbook has 1 shared "
                      "strings)"),
        BadValue("x", "'x' is not a shared-string index"),
        BadValue("2024-13-45", "'2024-13-45' is not an ISO 8601 date"),
        BadValue("2", "'2' is not a logical value (0 or 1)"),
        BadValue("oops", "'oops' is not an Excel error value"),
        BadValue("1", "unknown cell type t='zz'"),
    ]
    assert rows[1][:6] == [2.5, "only", dt.datetime(2024, 2, 29, 6), True, "#N/A", -0.001]
    assert XlsxFileIO(book).occupied(Area("Data", 1, 1, 1, 1)) == [
        (1, 1, "the damaged value 'NaN'")]


# =============================================================================== names
def _names_book(path):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Data"
    ws.append([1, 2, 3])
    wb.create_sheet("My Sheet")
    chart = wb.create_chartsheet("Chart1")
    from openpyxl.chart import BarChart, Reference

    bar = BarChart()
    bar.add_data(Reference(ws, min_col=1, max_col=3, min_row=1))
    chart.add_chart(bar)
    for name, text in [
        ("FL_OK", "Data!$A$1:$C$1"), ("fl_lower", "'My Sheet'!$B$2:$C$3"),
        ("FL_REF", "#REF!"), ("FL_CUT", "Data!$A$1:#REF!"), ("FL_MULTI", "Data!$A$1,Data!$C$1"),
        ("FL_COL", "Data!$A:$A"), ("FL_ROWS", "Data!$2:$4"), ("FL_EXT", "[1]Rates!$A$1:$B$2"),
        ("FL_GONE", "Nowhere!$A$1"), ("FL_CONST", "0.5"), ("FL_TEXT", '"abc"'),
        ("FL_FORMULA", "OFFSET(Data!$A$1,0,0,5,1)"), ("FL_3D", "Data:'My Sheet'!$A$1"),
        ("FL_CHART", "Chart1!$A$1"),
    ]:
        wb.defined_names[name] = DefinedName(name, attr_text=text)
    ws.defined_names["FL_LOCAL"] = DefinedName("FL_LOCAL", attr_text="Data!$A$1")
    ws.defined_names["FL_OK"] = DefinedName("FL_OK", attr_text="Data!$B$1")  # shadowed
    wb.defined_names["_xlnm.Print_Area"] = DefinedName("_xlnm.Print_Area",
                                                       attr_text="Data!$A$1:$C$1",
                                                       localSheetId=0)
    wb.save(path)

    def edit(parts):
        # an external reference [1] -> other.xlsx, as Excel stores it
        link = "xl/externalLinks/externalLink1.xml"
        parts[link] = (b'<?xml version="1.0" encoding="UTF-8"?><externalLink xmlns="' + MAIN.encode()
                       + b'"><externalBook xmlns:r="http://schemas.openxmlformats.org/'
                       b'officeDocument/2006/relationships" r:id="rId1"/></externalLink>')
        parts["xl/externalLinks/_rels/externalLink1.xml.rels"] = (
            b'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.'
            b'openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="'
            b'http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
            b'externalLinkPath" Target="other.xlsx" TargetMode="External"/></Relationships>')
        rels = etree.fromstring(parts["xl/_rels/workbook.xml.rels"])
        etree.SubElement(rels, "{http://schemas.openxmlformats.org/package/2006/relationships}"
                         "Relationship", Id="rId99", Target="externalLinks/externalLink1.xml",
                         Type="http://schemas.openxmlformats.org/officeDocument/2006/"
                              "relationships/externalLink")
        parts["xl/_rels/workbook.xml.rels"] = etree.tostring(rels)
        root = etree.fromstring(parts["xl/workbook.xml"])
        refs = etree.Element(f"{{{MAIN}}}externalReferences")
        etree.SubElement(refs, f"{{{MAIN}}}externalReference").set(
            "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id", "rId99")
        root.find(f"{{{MAIN}}}definedNames").addprevious(refs)
        # a duplicate workbook-scope name (Excel refuses to create one; a file can hold it)
        dup = etree.SubElement(root.find(f"{{{MAIN}}}definedNames"), f"{{{MAIN}}}definedName",
                               name="FL_DUP")
        dup.text = "Data!$A$1"
        dup2 = etree.SubElement(root.find(f"{{{MAIN}}}definedNames"), f"{{{MAIN}}}definedName",
                                name="fl_dup")
        dup2.text = "Data!$B$1"
        parts["xl/workbook.xml"] = etree.tostring(root)

    parts = members(path)
    edit(parts)
    write_zip(path, parts)
    return path


_MANAGER = ("contract names must be workbook-scope: delete it and define it again with Scope "
            "'Workbook' in Excel's Name Manager")
_BOUNDED = "the contract needs a bounded range such as"


def test_name_issues_of_a_file_give_the_real_reason(tmp_path):
    io_ = XlsxFileIO(_names_book(tmp_path / "names.xlsx"))
    assert io_.names() == {"FL_OK": Area("Data", 1, 1, 1, 3),
                           "FL_LOWER": Area("My Sheet", 2, 2, 3, 3),
                           "FL_DUP": Area("Data", 1, 1, 1, 1)}
    assert io_.name_issues() == {
        "FL_REF": "refers to #REF!: the cells it pointed to were deleted; define it again on "
                  "the intended range",
        "FL_CUT": "refers to #REF! (Data!$A$1:#REF!): the cells it pointed to were deleted; "
                  "define it again on the intended range",
        "FL_MULTI": "is a multi-area reference (2 areas: Data!$A$1, Data!$C$1); the contract "
                    "needs one rectangular range",
        "FL_COL": f"refers to the whole column A of sheet 'Data' (Data!$A:$A); {_BOUNDED} "
                  "Data!$A$1:$A$100",
        "FL_ROWS": f"refers to the whole rows 2:4 of sheet 'Data' (Data!$2:$4); {_BOUNDED} "
                   "Data!$A$2:$J$4",
        "FL_EXT": "refers to another workbook (other.xlsx: [1]Rates!$A$1:$B$2); contract "
                  "ranges must be in this workbook",
        "FL_GONE": "refers to sheet 'Nowhere', which is not in the workbook (it has 'Data', "
                   "'My Sheet', 'Chart1')",
        "FL_CONST": "is a constant (0.5), not a range",
        "FL_TEXT": 'is a constant ("abc"), not a range',
        "FL_FORMULA": "is a formula (OFFSET(Data!$A$1,0,0,5,1)), not a fixed range; the "
                      "contract needs a plain range such as Sheet1!$B$2:$D$9",
        "FL_3D": "is a 3-D reference across several sheets (Data:'My Sheet'!$A$1); the "
                 "contract needs a range on one sheet",
        "FL_CHART": "refers to chart sheet 'Chart1', which has no cells",
        "FL_LOCAL": f"is local to sheet 'Data' (a sheet-scoped name); {_MANAGER}",
    }
    # the second spelling of FL_DUP is refused, but FL_DUP itself is usable: not an issue
    dup = [e for e in io_.package.all_defined_names() if e.name.upper() == "FL_DUP"]
    assert [e.reason for e in dup] == [None, "is defined twice at workbook scope; delete the "
                                             "duplicate in Excel's Name Manager"]


def test_name_issues_of_a_live_book_parse_what_excel_gives():
    book = FakeBook([FakeSheet("Data"), FakeSheet("My Sheet")], [
        FakeName("FL_OK", "=Data!$A$1:$C$9"),
        FakeName("fl_case", "='my sheet'!$B$2"),
        FakeName("FL_REF", "=#REF!"),
        FakeName("FL_COL", "=Data!$A:$A"),
        FakeName("FL_EXT", "='[other.xlsx]S'!$A$1"),
        FakeName("FL_EXT_PATH", "='C:\\work\\[other.xlsx]S'!$A$1"),
        FakeName("FL_MULTI", "=Data!$A$1:$B$2,Data!$D$1"),
        FakeName("FL_GONE", "=Nope!$A$1"),
        FakeName("FL_CONST", "=0.5"),
        FakeName("FL_NONE", None),
        FakeName("Data!FL_LOCAL", "=Data!$A$1"),
        FakeName("'My Sheet'!FL_OK", "='My Sheet'!$A$1"),  # shadowed by the workbook name
        FakeName("'My Sheet'!_xlnm.Print_Area", "='My Sheet'!$A$1:$B$2"),
    ])
    io_ = XlwingsBookIO(book)
    assert io_.names() == {"FL_OK": Area("Data", 1, 1, 9, 3),
                           "FL_CASE": Area("My Sheet", 2, 2, 2, 2)}
    assert io_.name_issues() == {
        "FL_REF": "refers to #REF!: the cells it pointed to were deleted; define it again on "
                  "the intended range",
        "FL_COL": f"refers to the whole column A of sheet 'Data' (Data!$A:$A); {_BOUNDED} "
                  "Data!$A$1:$A$100",
        "FL_EXT": "refers to another workbook (other.xlsx: '[other.xlsx]S'!$A$1); contract "
                  "ranges must be in this workbook",
        "FL_EXT_PATH": "refers to another workbook (C:\\work\\other.xlsx: "
                       "'C:\\work\\[other.xlsx]S'!$A$1); contract ranges must be in this "
                       "workbook",
        "FL_MULTI": "is a multi-area reference (2 areas: Data!$A$1:$B$2, Data!$D$1); the "
                    "contract needs one rectangular range",
        "FL_GONE": "refers to sheet 'Nope', which is not in the workbook",
        "FL_CONST": "is a constant (0.5), not a range",
        "FL_NONE": "is not a single range (the engine does not say what it refers to)",
        "FL_LOCAL": f"is local to sheet 'Data' (a sheet-scoped name); {_MANAGER}",
    }


# =============================================================================== occupied
_THREADED = ("http://schemas.microsoft.com/office/2017/10/relationships/threadedComment",
             "http://schemas.microsoft.com/office/spreadsheetml/2018/threadedcomments")


def _occupied_book(path):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Out"
    ws["B2"] = "mine"
    ws["C2"] = 12.5
    ws["D2"] = dt.datetime(2024, 1, 5)
    ws["D2"].number_format = "yyyy-mm-dd"
    ws["B3"] = '=IF(A1>0,"",1)'   # its cached result is made "" below
    ws["C3"] = "=A1*2"            # no cached result at all
    ws["D3"] = "=SUM(A1:A2)"      # the master of a shared formula, D4 its dependent
    ws["B4"].comment = Comment("legacy note", "jdoe")
    ws["C4"].font = openpyxl.styles.Font(bold=True)  # formatted but empty: not occupied
    ws.merge_cells("E8:F9")
    dv = DataValidation(type="list", formula1='"a,b"')
    ws.add_data_validation(dv)
    dv.add("B6:C6")
    tbl = wb.create_sheet("T")
    tbl.append(["k", "v"])
    tbl.append(["a", 1])
    tbl.add_table(Table(displayName="Tbl1", ref="A1:B2"))
    ws["G2"] = 1  # G2:G3 becomes an array formula below
    wb.save(path)

    parts = members(path)
    root = etree.fromstring(parts["xl/worksheets/sheet1.xml"])
    q = lambda tag: f"{{{MAIN}}}{tag}"  # noqa: E731

    def cell(ref):
        return root.find(f".//{q('c')}[@r='{ref}']")

    b3 = cell("B3")
    b3.set("t", "str")
    etree.SubElement(b3, q("v")).text = ""
    d3 = cell("D3")
    d3.find(q("f")).set("t", "shared")
    d3.find(q("f")).set("si", "0")
    d3.find(q("f")).set("ref", "D3:D4")
    row4 = root.find(f".//{q('row')}[@r='4']")
    d4 = etree.SubElement(row4, q("c"), r="D4")
    etree.SubElement(d4, q("f"), t="shared", si="0")
    etree.SubElement(d4, q("v")).text = "3"
    g2 = cell("G2")
    for child in list(g2):
        g2.remove(child)
    f = etree.SubElement(g2, q("f"), t="array", ref="G2:G3")
    f.text = "TRANSPOSE(B2:C2)"
    etree.SubElement(g2, q("v")).text = "1"
    row3 = root.find(f".//{q('row')}[@r='3']")
    g3 = etree.SubElement(row3, q("c"), r="G3")
    etree.SubElement(g3, q("v")).text = "2"
    # an Excel 2010 data validation (a list on another sheet) on H2
    ext = etree.SubElement(root, q("extLst"))
    x14, xm = ("http://schemas.microsoft.com/office/spreadsheetml/2009/9/main",
               "http://schemas.microsoft.com/office/excel/2006/main")
    dvs = etree.SubElement(etree.SubElement(ext, q("ext"), uri="{CCE6A557-97BC-4b89-ADB6-"
                                                            "D9C93CAAB3DF}"),
                           f"{{{x14}}}dataValidations", count="1")
    dv14 = etree.SubElement(dvs, f"{{{x14}}}dataValidation", type="list")
    etree.SubElement(dv14, f"{{{xm}}}sqref").text = "H2"
    parts["xl/worksheets/sheet1.xml"] = etree.tostring(root, xml_declaration=True,
                                                       encoding="UTF-8", standalone=True)
    # a threaded comment on C5
    parts["xl/threadedComments/threadedComment1.xml"] = (
        f'<?xml version="1.0"?><ThreadedComments xmlns="{_THREADED[1]}"><threadedComment '
        f'ref="C5" dT="2024-01-05T10:00:00" personId="{{1}}" id="{{2}}"><text>why?</text>'
        "</threadedComment></ThreadedComments>").encode()
    rels_name = "xl/worksheets/_rels/sheet1.xml.rels"
    rels = etree.fromstring(parts[rels_name])
    etree.SubElement(rels, "{http://schemas.openxmlformats.org/package/2006/relationships}"
                     "Relationship", Id="rId77", Type=_THREADED[0],
                     Target="../threadedComments/threadedComment1.xml")
    parts[rels_name] = etree.tostring(rels)
    write_zip(path, parts)
    return path


def test_occupied_reports_every_kind_of_content(tmp_path):
    io_ = XlsxFileIO(_occupied_book(tmp_path / "occ.xlsx"))
    assert io_.occupied(Area("Out", 1, 1, 10, 8)) == [
        (2, 2, "the value 'mine'"),
        (2, 3, "the value 12.5"),
        (2, 4, "the date 2024-01-05"),
        (2, 7, "a formula =TRANSPOSE(B2:C2)"),
        (2, 8, "a data validation"),
        (3, 2, 'a formula =IF(A1>0,"",1)'),
        (3, 3, "a formula =A1*2"),
        (3, 4, "a formula =SUM(A1:A2)"),
        (3, 7, "part of the array formula {=TRANSPOSE(B2:C2)} in G2:G3"),
        (4, 2, "a comment"),
        (4, 4, "a formula =SUM(A2:A3)"),
        (5, 3, "a comment"),
        (6, 2, "a data validation"),
        (6, 3, "a data validation"),
        (8, 5, "part of the merged range E8:F9"),
        (8, 6, "part of the merged range E8:F9"),
        (9, 5, "part of the merged range E8:F9"),
        (9, 6, "part of the merged range E8:F9"),
    ]
    # only the cells inside the area, and a table
    assert io_.occupied(Area("Out", 9, 6, 12, 9)) == [(9, 6, "part of the merged range E8:F9")]
    assert io_.occupied(Area("T", 2, 2, 3, 3)) == [(2, 2, "the value 1"),
                                                   (2, 2, "part of table 'Tbl1'")]
    assert io_.occupied(Area("Out", 20, 1, 30, 5)) == []


def test_occupied_on_a_live_desktop_book():
    sheet = FakeSheet("Out")
    sheet.values = {(2, 2): "mine", (2, 3): 12.5, (3, 2): "", (3, 3): 0.0}
    sheet.formulas = {(3, 2): '=IF(A1>0,"",1)', (3, 3): "=A1*0"}
    sheet.merges = [(8, 5, 9, 6)]
    sheet.note_cells = [(4, 2)]
    sheet.comment_cells = [(5, 3), (30, 30)]
    sheet.table_list = [FakeTable(sheet, "Tbl1", 6, 1, 7, 2)]
    io_ = XlwingsBookIO(FakeBook([sheet], []))
    assert io_.occupied(Area("Out", 1, 1, 9, 6)) == [
        (2, 2, "the value 'mine'"),
        (2, 3, "the value 12.5"),
        (3, 2, 'a formula =IF(A1>0,"",1)'),
        (3, 3, "a formula =A1*0"),
        (4, 2, "a comment"),
        (5, 3, "a comment"),
        (6, 1, "part of table 'Tbl1'"),
        (6, 2, "part of table 'Tbl1'"),
        (7, 1, "part of table 'Tbl1'"),
        (7, 2, "part of table 'Tbl1'"),
        (8, 5, "part of the merged range E8:F9"),
        (8, 6, "part of the merged range E8:F9"),
        (9, 5, "part of the merged range E8:F9"),
        (9, 6, "part of the merged range E8:F9"),
    ]
    assert io_.occupied(Area("Out", 2, 2, 2, 2)) == [(2, 2, "the value 'mine'")]
    assert io_.write_blocker() is None


def test_occupied_on_the_remote_engine_sees_what_the_payload_carries():
    sheet = FakeSheet("Out", remote=True)
    sheet.values = {(2, 2): "mine", (3, 2): ""}
    sheet.formulas = {(3, 2): '=IF(A1>0,"",1)'}  # not in the payload: invisible
    sheet.merges = [(8, 5, 9, 6)]                # likewise
    sheet.note_cells = [(4, 2)]
    sheet.table_list = [FakeTable(sheet, "Tbl1", 6, 1, 6, 2)]
    io_ = XlwingsBookIO(FakeBook([sheet], []))
    assert io_.occupied(Area("Out", 1, 1, 9, 6)) == [
        (2, 2, "the value 'mine'"),
        (4, 2, "a comment"),
        (6, 1, "part of table 'Tbl1'"),
        (6, 2, "part of table 'Tbl1'"),
    ]


# =============================================================================== surgical
def test_a_save_after_a_stale_temp_still_changes_only_what_was_edited(book):
    before = members(book)
    (book.parent / f".book.xlsx.~xlfl-{_dead_pid()}@{_xlsx_guard._safe_host()}-abcdefgh.tmp"
     ).write_bytes(b"junk")
    io_ = XlsxFileIO(book)
    io_.write(Area("Data", 2, 2, 2, 2), [[99.0]])
    io_.save()
    after = members(book)
    changed = {n for n in before if before[n] != after.get(n)}
    assert changed == {"xl/worksheets/sheet1.xml"}  # openpyxl set fullCalcOnLoad already
    assert _temps(book.parent) == []
