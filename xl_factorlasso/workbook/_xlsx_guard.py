"""May this workbook file be replaced now? And the temporary files our saves leave behind.

A save replaces the file by renaming a finished temporary file over it. That rename succeeds
even while Excel or LibreOffice has the workbook open -- and the user's next save in that
program would then silently undo ours, or ours theirs. So before writing, :func:`write_blocker`
looks for every sign that someone else holds the file:

* **Excel's owner file** ``~$book.xlsx`` beside it (Excel always prefixes the full name; only
  Word shortens long names). It holds the user name: one length byte and the name in the ANSI
  code page, then at byte 55 (54 for Word) a 2-byte length and the name in UTF-16. Excel keeps
  no process id in it, so a stale owner file (left by a crash) cannot be told from a live one:
  it always blocks, and the message says to delete it if Excel is not running.
* **LibreOffice's lock file** ``.~lock.book.xlsx#``: five comma-separated fields (full name,
  system user, host, time, profile URL) ending in ``;``. It carries no process id either, so
  staleness is decided from what the host can prove:

  - a lock written by **another host** always blocks (its processes cannot be seen from here);
  - a lock of **this host** is stale if it is older than the machine's last boot (no program
    survives a reboot), or if the LibreOffice profile it names has no ``.lock`` -- LibreOffice
    holds ``<profile>/.lock`` for as long as it runs, so its absence proves that no LibreOffice
    uses that profile. Anything else blocks.

  A stale lock is ignored, not deleted (it is not ours).
* **A lock on the file itself**: a POSIX ``fcntl``/``lockf`` or ``flock`` lock held by another
  process (LibreOffice takes one on Linux; other programs may), or a sharing violation on
  Windows, where Excel keeps the file open without write sharing.
* **A read-only file or folder**: no write permission, or (on POSIX) no write bit at all --
  honoured even for a superuser, who could otherwise overwrite a file its owner protected.

The check is repeated just before the rename, which happens while holding an exclusive POSIX
lock on the old file, so a cooperating program cannot take the file in between.

**Temporary files** are named ``.<name>.~xlfl-<pid>@<host>-<random>.tmp`` so that a later
open or save can attribute them: one of this host whose process is gone (or older than the
last boot) is removed; one of a live process is kept; one of another host, or from an older
version of this program (``.<name>.<random>.tmp``), is removed once untouched for an hour -- a
save writes continuously and takes seconds, never an hour.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import socket
import stat
import time
from urllib.parse import unquote, urlparse

from ._errors import WorkbookInputError

__all__ = [
    "UNATTRIBUTED_TEMP_AGE",
    "atomic_write",
    "excel_owner_file",
    "exclusive_for_replace",
    "libreoffice_lock_file",
    "pid_alive",
    "remove_stale_temps",
    "temp_prefix",
    "write_blocker",
]

UNATTRIBUTED_TEMP_AGE = 3600.0  # seconds a foreign or legacy temp file must sit untouched
_TEMP_TAG = "~xlfl"
_STEM_BYTES = 100  # keeps ".<stem>.~xlfl-<pid>@<host>-XXXXXXXX.tmp" under NAME_MAX (255)
_OUT_HINT = "or write to another file with --out"
_IS_WINDOWS = os.name == "nt"


# --------------------------------------------------------------------------- this machine
def _hostname() -> str:
    return socket.gethostname()


def _same_host(other: str) -> bool:
    mine = _hostname().lower()
    other = other.strip().lower()
    if not other:
        return False
    # One side may give a fully qualified name, the other the short one.
    return other == mine or other.split(".")[0] == mine.split(".")[0]


def _boot_time() -> float | None:
    """When this machine last booted (seconds since the epoch), if the platform says."""
    try:
        with open("/proc/stat", "rb") as fh:
            for line in fh:
                if line.startswith(b"btime "):
                    return float(line.split()[1])
    except OSError:
        pass
    if _IS_WINDOWS:  # pragma: no cover - exercised on Windows only
        import ctypes

        return time.time() - ctypes.windll.kernel32.GetTickCount64() / 1000.0
    return None


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this machine exists (a zombie counts as gone).

    Errs on the side of "alive" whenever the system will not say.
    """
    if pid <= 0:
        return False
    if _IS_WINDOWS:  # pragma: no cover - exercised on Windows only
        import ctypes

        kernel32 = ctypes.windll.kernel32
        handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return kernel32.GetLastError() != 87  # ERROR_INVALID_PARAMETER: no such process
        try:
            code = ctypes.c_ulong()
            if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
                return True
            return code.value == 259  # STILL_ACTIVE
        finally:
            kernel32.CloseHandle(handle)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    except OSError:
        return True
    try:  # a zombie has exited; only its parent has not collected it
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().rsplit(b")", 1)[-1].split()[0]
        return state not in (b"Z", b"X")
    except (OSError, IndexError):
        return True


# --------------------------------------------------------------------------- lock files
def excel_owner_file(path: str) -> str:
    """Where Excel puts the owner file of ``path`` while it has the workbook open."""
    folder, name = os.path.split(path)
    return os.path.join(folder, "~$" + name)


def libreoffice_lock_file(path: str) -> str:
    """Where LibreOffice puts its lock file for ``path``."""
    folder, name = os.path.split(path)
    return os.path.join(folder, ".~lock." + name + "#")


def _owner_user(data: bytes) -> str | None:
    """The user name in an Office owner file, or None if there is none to read."""
    if len(data) < 3 or not 0 < data[0] <= 52:
        return None
    for pos in (55, 54):  # Excel and PowerPoint, then Word
        if len(data) < pos + 2:
            continue
        n = int.from_bytes(data[pos : pos + 2], "little")
        if 0 < n <= 52 and len(data) >= pos + 2 + 2 * n:
            name = data[pos + 2 : pos + 2 + 2 * n].decode("utf-16-le", errors="replace")
            if name.strip() and name.isprintable():
                return name.strip()
    name = data[1 : 1 + data[0]].decode("cp1252", errors="replace").strip()
    return name if name and name.isprintable() else None


def _libreoffice_fields(data: bytes) -> list[str]:
    """Fields of a LibreOffice lock entry (``\\`` escapes ``,``, ``;`` and itself)."""
    fields, current, escape = [], [], False
    for ch in data.decode("utf-8", errors="replace"):
        if escape:
            current.append(ch)
            escape = False
        elif ch == "\\":
            escape = True
        elif ch in ",;":
            fields.append("".join(current))
            current = []
            if ch == ";":
                break
        else:
            current.append(ch)
    return fields


def _stat_missing(path: str) -> bool | None:
    """True if ``path`` does not exist, False if it does, None if we may not look."""
    try:
        os.stat(path)
    except FileNotFoundError:
        return True
    except OSError:
        return None
    return False


def _libreoffice_lock_is_stale(lock: str, fields: list[str]) -> bool:
    host = fields[2] if len(fields) > 2 else ""
    if not _same_host(host):
        return False
    boot = _boot_time()
    try:
        if boot is not None and os.stat(lock).st_mtime < boot:
            return True
    except OSError:
        return False
    profile_url = fields[4] if len(fields) > 4 else ""
    parsed = urlparse(profile_url)
    if parsed.scheme != "file" or not parsed.path:
        return False
    profile = unquote(parsed.path)
    if _IS_WINDOWS and re.match(r"^/[A-Za-z]:", profile):  # pragma: no cover
        profile = profile[1:]
    if _stat_missing(profile):
        return True  # LibreOffice creates its profile before it opens anything
    return _stat_missing(os.path.join(profile, ".lock")) is True


def _lock_head(lock: str, size: int) -> bytes | None:
    """The first ``size`` bytes of a lock file; None if there is none, ``b""`` if it exists
    but cannot be read (its owner may hold it exclusively: it exists, which is what matters)."""
    try:
        with open(lock, "rb") as fh:
            return fh.read(size)
    except FileNotFoundError:
        return None
    except OSError:
        return b""


def _excel_blocker(path: str, name: str) -> str | None:
    owner = excel_owner_file(path)
    data = _lock_head(owner, 512)
    if data is None:
        return None
    user = _owner_user(data)
    by = f"by {user}; " if user else ""
    owner_name = os.path.basename(owner)
    return (
        f"{name} is open in Excel ({by}{owner_name} beside it): close it in Excel first, "
        f"{_OUT_HINT}. If Excel is not running, {owner_name} was left behind by a crash: "
        "delete it"
    )


def _libreoffice_blocker(path: str, name: str) -> str | None:
    lock = libreoffice_lock_file(path)
    data = _lock_head(lock, 4096)
    if data is None:
        return None
    fields = _libreoffice_fields(data)
    if _libreoffice_lock_is_stale(lock, fields):
        return None
    user = (fields[0].strip() or fields[1].strip()) if len(fields) > 1 else ""
    host = fields[2].strip() if len(fields) > 2 else ""
    since = fields[3].strip() if len(fields) > 3 else ""
    who = ", ".join(p for p in (f"by {user}" if user else "", f"on {host}" if host else "",
                                f"since {since}" if since else "") if p)
    lock_name = os.path.basename(lock)
    where = f" on {host}" if host else ""
    return (
        f"{name} is open in LibreOffice ({who + '; ' if who else ''}{lock_name} beside it): "
        f"close it in LibreOffice first, {_OUT_HINT}. If LibreOffice is not running{where}, "
        f"{lock_name} was left behind by a crash: delete it"
    )


# --------------------------------------------------------------------------- OS locks
def _posix_lock_held(path: str) -> bool:
    """Whether another process holds an fcntl/lockf or flock lock on ``path``."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        return False
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        try:
            fd = os.open(path, os.O_RDONLY)  # flock needs no write access
        except OSError:
            return False
    try:
        for lock in (fcntl.lockf, fcntl.flock):
            try:
                lock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                if err.errno in (errno.EACCES, errno.EAGAIN):
                    return True
                continue  # e.g. EBADF (read-only descriptor) or ENOLCK: cannot tell
            lock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)  # also drops any fcntl lock of ours on the file


def _windows_in_use(path: str, opener=open) -> bool:
    """Whether opening ``path`` for writing fails with a sharing violation (Windows)."""
    try:
        with opener(path, "r+b"):
            return False
    except PermissionError as err:
        return getattr(err, "winerror", None) in (32, 33)  # sharing / lock violation
    except OSError:
        return False


def _read_only_file(path: str, st: os.stat_result) -> bool:
    return not os.access(path, os.W_OK) or not st.st_mode & 0o222


def _read_only_folder(folder: str) -> bool:
    if not os.access(folder, os.W_OK | os.X_OK):
        return True
    # Windows reports a read-only attribute on folders that are writable (e.g. Documents).
    return not _IS_WINDOWS and not os.stat(folder).st_mode & 0o222


def write_blocker(path) -> str | None:
    """Why the file at ``path`` cannot be replaced now, or None if it can.

    ``path`` is the file that will be written (it need not exist yet). See the module notes
    for the rules, including when a lock file is judged stale.
    """
    path = os.fspath(path)
    real = os.path.realpath(path)
    name = os.path.basename(path)
    if os.path.isdir(real):
        return f"{path} is a folder, not a workbook file"
    for where in dict.fromkeys([os.path.abspath(path), real]):  # beside a link and its target
        reason = _excel_blocker(where, name) or _libreoffice_blocker(where, name)
        if reason:
            return reason
    try:
        st = os.stat(real)
    except FileNotFoundError:
        st = None
    except OSError as err:
        return f"{name} cannot be checked before writing ({err.strerror})"
    if st is not None:
        if _IS_WINDOWS and _windows_in_use(real):  # pragma: no cover - Windows only
            return (f"{name} is open in another program (Windows reports a sharing "
                    f"violation): close it there first, {_OUT_HINT}")
        if _posix_lock_held(real):
            return (f"{name} is locked by another program (it holds a file lock on it): "
                    f"close it there first, {_OUT_HINT}")
        if _read_only_file(real, st):
            return f"{name} is read-only: make it writable first, {_OUT_HINT}"
    folder = os.path.dirname(real)
    if not os.path.isdir(folder):
        return f"the folder {folder} does not exist"
    if _read_only_folder(folder):
        return (f"the folder {folder} is read-only, so {name} cannot be written there: "
                "write to another folder with --out")
    return None


@contextlib.contextmanager
def exclusive_for_replace(path: str):
    """Hold an exclusive POSIX lock on the existing ``path`` while it is being replaced.

    A program that takes a lock on the file between our check and our rename then fails to
    get it, instead of losing its work to us; if someone holds a lock already, the rename is
    refused with :class:`WorkbookInputError`. A no-op where there is no such lock (Windows,
    where the rename itself fails on an open file) or nothing to replace.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        yield
        return
    try:
        for lock in (fcntl.lockf, fcntl.flock):
            try:
                lock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                if err.errno in (errno.EACCES, errno.EAGAIN):
                    raise WorkbookInputError(
                        f"{os.path.basename(path)} is locked by another program (it holds a "
                        f"file lock on it): close it there first, {_OUT_HINT}"
                    ) from None
        yield
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- temp files
def _stem(path: str) -> str:
    name = os.path.basename(path)
    raw = name.encode("utf-8")
    if len(raw) <= _STEM_BYTES:
        return name
    return raw[:_STEM_BYTES].decode("utf-8", errors="ignore")


def _safe_host() -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "_", _hostname())[:63] or "host"


def temp_prefix(path: str) -> str:
    """``mkstemp`` prefix for a temporary copy of ``path``: recognisable and attributable."""
    return f".{_stem(path)}.{_TEMP_TAG}-{os.getpid()}@{_safe_host()}-"


def _temp_patterns(path: str) -> tuple[re.Pattern, re.Pattern]:
    ours = re.compile(
        rf"^\.{re.escape(_stem(path))}\.{re.escape(_TEMP_TAG)}-(\d+)@(.+)-[a-z0-9_]{{8}}\.tmp$"
    )
    legacy = re.compile(rf"^\.{re.escape(os.path.basename(path))}\.[a-z0-9_]{{8}}\.tmp$")
    return ours, legacy


def _temp_is_stale(name: str, full: str, ours, legacy, now: float, boot: float | None) -> bool:
    try:
        st = os.lstat(full)
    except OSError:
        return False
    if not stat.S_ISREG(st.st_mode):
        return False
    idle = now - st.st_mtime
    m = ours.match(name)
    if m:
        pid, host = int(m.group(1)), m.group(2)
        if host == _safe_host():
            if boot is not None and st.st_mtime < boot:
                return True
            return not pid_alive(pid)
        return idle > UNATTRIBUTED_TEMP_AGE
    return legacy.match(name) is not None and idle > UNATTRIBUTED_TEMP_AGE


def remove_stale_temps(path) -> list[str]:
    """Delete the stale temporary files of saves of ``path``; return what was removed.

    Never raises: a folder we may not list or a file we may not delete is left as it is.
    """
    real = os.path.realpath(os.fspath(path))
    folder = os.path.dirname(real)
    ours, legacy = _temp_patterns(real)
    prefix = "." + _stem(real)
    now, boot = time.time(), _boot_time()
    removed = []
    try:
        entries = [e.name for e in os.scandir(folder)]
    except OSError:
        return removed
    for name in entries:
        if not (name.startswith(prefix) and name.endswith(".tmp")):
            continue
        full = os.path.join(folder, name)
        if _temp_is_stale(name, full, ours, legacy, now, boot):
            with contextlib.suppress(OSError):
                os.unlink(full)
                removed.append(full)
    return removed


# --------------------------------------------------------------------------- replacing a file
def atomic_write(path, write) -> str:
    """Replace the file at ``path`` in one step with what ``write(fileobj)`` writes.

    A temporary file of this program (:func:`temp_prefix`) in the same folder is written,
    fsynced and renamed over the target while holding :func:`exclusive_for_replace`; the
    rename is then made durable (the folder fsynced, where the platform allows). Through a
    symlink, the file it points to is replaced. An existing file keeps its permission bits.
    Stale temporary files of earlier saves are removed first; on any error the temporary file
    is removed and the target is untouched.

    Callers check :func:`write_blocker` first (their messages differ); a lock taken since is
    raised by :func:`exclusive_for_replace` as :class:`WorkbookInputError`.

    Returns
    -------
    str
        The real path written.
    """
    import tempfile

    target = os.path.realpath(os.fspath(path))
    folder = os.path.dirname(target)
    remove_stale_temps(target)
    try:
        mode = os.stat(target).st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(target), suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        with exclusive_for_replace(target):
            os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    try:  # make the rename itself durable; not possible on every platform
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass
    return target
