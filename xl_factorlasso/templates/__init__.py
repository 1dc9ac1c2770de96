"""The workbook templates shipped inside the package, and writing a copy of one.

``factorlasso_template.xlsx`` (no macros: worksheet functions, the server add-in, the command
line) and ``factorlasso_template.xlsm`` (the same workbook plus the "Factor LASSO" ribbon tab and
its VBA callbacks) live in this folder as package data. They are generated from the sources in
``workbook_template/`` of the source repository by ``make templates``
(``python workbook_template/build.py``), which writes them here; never edit them by hand.

``xl-factorlasso template [--macro] PATH`` calls :func:`write_template`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["FOLDER", "XLSM_NAME", "XLSX_NAME", "TemplateError", "template_path",
           "write_template"]

XLSX_NAME = "factorlasso_template.xlsx"
XLSM_NAME = "factorlasso_template.xlsm"
FOLDER = Path(__file__).resolve().parent


class TemplateError(ValueError):
    """A template cannot be written to the path asked for; ``str()`` says why. Nothing was
    written."""


def template_path(macro: bool = False) -> Path:
    """The shipped template: the ``.xlsm`` with the ribbon if ``macro``, else the ``.xlsx``."""
    return FOLDER / (XLSM_NAME if macro else XLSX_NAME)


def _extension_problem(path: str, macro: bool) -> str | None:
    stem, suffix = os.path.splitext(path)
    suffix = suffix.lower()
    if macro and suffix == ".xlsx":
        return (f"{path}: --macro writes the workbook with the ribbon (VBA), which Excel opens "
                f"only as .xlsm: name it {stem}.xlsm, or leave out --macro for the .xlsx "
                "template")
    if not macro and suffix == ".xlsm":
        return (f"{path}: an .xlsm is the workbook with the ribbon: add --macro, or name it "
                f"{stem}.xlsx for the template without macros")
    if suffix not in (".xlsx", ".xlsm"):
        return (f"{path}: the file name must end in .xlsx (or .xlsm with --macro); other "
                "formats are not written")
    return None


def _for_this_command(reason: str) -> str:
    """The file-safety messages suggest ``--out``; here the way out is another PATH."""
    return (reason.replace("write to another folder with --out", "give a PATH in another folder")
            .replace("or write to another file with --out", "or give another PATH"))


def write_template(path: str | os.PathLike, *, macro: bool = False,
                   force: bool = False) -> Path:
    """Write a copy of a shipped template to ``path``, byte for byte.

    Parameters
    ----------
    path : str or os.PathLike
        The workbook to write: ``.xlsx``, or ``.xlsm`` with ``macro=True`` (case-insensitive).
    macro : bool, default False
        The ``.xlsm`` with the "Factor LASSO" ribbon tab instead of the ``.xlsx``.
    force : bool, default False
        Replace an existing file. Even then the file is not replaced while it is open in Excel
        or LibreOffice, locked or read-only (``workbook._xlsx_guard.write_blocker``).

    Returns
    -------
    pathlib.Path
        The absolute path written.

    Raises
    ------
    TemplateError
        If the extension does not match ``macro``, the file exists and ``force`` is False, or
        it may not be replaced now. The message is phrased for the command line (``--macro``,
        ``--force``). Nothing is written.
    """
    from ..workbook._errors import WorkbookInputError
    from ..workbook._xlsx_guard import (
        exclusive_for_replace,
        remove_stale_temps,
        temp_prefix,
        write_blocker,
    )

    shown = os.fspath(path)
    problem = _extension_problem(shown, macro)
    if problem:
        raise TemplateError(problem)
    if os.path.lexists(shown) and not os.path.isdir(shown) and not force:
        raise TemplateError(f"{shown} exists: add --force to replace it with a fresh template "
                            "(its data and results are then lost)")
    blocker = write_blocker(shown)
    if blocker is not None:
        raise TemplateError(_for_this_command(blocker))
    data = template_path(macro).read_bytes()
    target = os.path.realpath(shown)  # through a symlink, replace the file it points to
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
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        with exclusive_for_replace(target):
            os.replace(tmp, target)
    except WorkbookInputError as err:  # someone took a lock on the file since the check
        os.unlink(tmp)
        raise TemplateError(_for_this_command(str(err))) from None
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return Path(target)
