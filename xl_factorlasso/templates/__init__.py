"""The workbook templates shipped inside the package, and writing a copy of one.

One template per add-in, each with two sample data sets, live in this folder as package data:

============================================  =============================================
``factorlasso_template.xlsx``                 desktop Excel, worksheet functions (xlwings
                                              add-in, ``FLASSO_FIT``), the command line
``factorlasso_template.xlsm``                 the same plus the "Factor LASSO" ribbon tab
                                              and its VBA callbacks (xlwings add-in)
``factorlasso_template_server.xlsx``          the server add-in (``xl-factorlasso serve``,
                                              Office.js): its Formulas sheet calls
                                              ``FACTORLASSO.FLASSO_FIT``
``factorlasso_template_sp500[_server].xls*``  the same three with real data: skfolio's
                                              S&P 500 stocks on factor ETFs (BSD-3-Clause)
============================================  =============================================

They are generated from the sources in ``workbook_template/`` of the source repository by
``make templates`` (``python workbook_template/build.py``), which writes them here; never edit
them by hand.

``xl-factorlasso template [--macro | --server] [--data sp500] PATH`` calls
:func:`write_template`.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DATASETS", "FOLDER", "SERVER_NAME", "VARIANTS", "XLSM_NAME", "XLSX_NAME",
           "TemplateError", "template_name", "template_path", "write_template"]

XLSX_NAME = "factorlasso_template.xlsx"
XLSM_NAME = "factorlasso_template.xlsm"
SERVER_NAME = "factorlasso_template_server.xlsx"
FOLDER = Path(__file__).resolve().parent
#: Sample data a template can hold -> what it is (``--data``); the first is the default.
DATASETS = {
    "synthetic": "synthetic sample data",
    "sp500": "sample data: weekly returns of 20 S&P 500 stocks on 5 factor ETFs, 2014-2022 "
             "(skfolio's datasets, BSD-3-Clause)",
}
#: Every shipped template as ``(macro, server, data)``, the order of ``make templates``.
VARIANTS = tuple((macro, server, data) for data in DATASETS
                 for macro, server in ((False, False), (True, False), (False, True)))


class TemplateError(ValueError):
    """A template cannot be written to the path asked for; ``str()`` says why. Nothing was
    written."""


def template_name(macro: bool = False, *, server: bool = False, data: str = "synthetic") -> str:
    """The file name of a shipped template (see the module docstring).

    Parameters
    ----------
    macro : bool, default False
        The ``.xlsm`` with the ribbon (desktop add-in).
    server : bool, default False
        The ``.xlsx`` for the server add-in. Not with ``macro``.
    data : str, default "synthetic"
        A key of :data:`DATASETS`.

    Raises
    ------
    TemplateError
        For ``macro`` with ``server`` or an unknown ``data``.
    """
    if macro and server:
        raise TemplateError("--macro and --server exclude each other: the ribbon (VBA) is the "
                            "desktop add-in's; the server add-in brings its own")
    if data not in DATASETS:
        raise TemplateError(f"--data {data!r}: the sample data are one of "
                            f"{', '.join(DATASETS)}")
    tag = "" if data == "synthetic" else f"_{data}"
    if server:
        return f"factorlasso_template{tag}_server.xlsx"
    return f"factorlasso_template{tag}.{'xlsm' if macro else 'xlsx'}"


def template_path(macro: bool = False, *, server: bool = False,
                  data: str = "synthetic") -> Path:
    """The shipped template (:func:`template_name`) in :data:`FOLDER`."""
    return FOLDER / template_name(macro, server=server, data=data)


def _extension_problem(path: str, macro: bool, server: bool = False) -> str | None:
    stem, suffix = os.path.splitext(path)
    suffix = suffix.lower()
    if macro and suffix == ".xlsx":
        return (f"{path}: --macro writes the workbook with the ribbon (VBA), which Excel opens "
                f"only as .xlsm: name it {stem}.xlsm, or leave out --macro for the .xlsx "
                "template")
    if server and suffix == ".xlsm":
        return (f"{path}: the server add-in's template has no macros (Office.js add-ins run no "
                f"VBA): name it {stem}.xlsx")
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


def write_template(path: str | os.PathLike, *, macro: bool = False, server: bool = False,
                   data: str = "synthetic", force: bool = False) -> Path:
    """Write a copy of a shipped template to ``path``, byte for byte.

    Parameters
    ----------
    path : str or os.PathLike
        The workbook to write: ``.xlsx``, or ``.xlsm`` with ``macro=True`` (case-insensitive).
    macro : bool, default False
        The ``.xlsm`` with the "Factor LASSO" ribbon tab (desktop add-in) instead of the
        ``.xlsx``.
    server : bool, default False
        The ``.xlsx`` whose Formulas sheet calls the server add-in's functions
        (``FACTORLASSO.FLASSO_FIT``). Not with ``macro``.
    data : str, default "synthetic"
        The sample data, a key of :data:`DATASETS` (``"sp500"``: real data).
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
        If ``macro`` and ``server`` are both set, ``data`` is unknown, the extension does not
        match, the file exists and ``force`` is False, or it may not be replaced now. The
        message is phrased for the command line (``--macro``, ``--server``, ``--data``,
        ``--force``). Nothing is written.
    """
    from ..workbook._errors import WorkbookInputError
    from ..workbook._xlsx_guard import atomic_write, write_blocker

    shown = os.fspath(path)
    source = template_path(macro, server=server, data=data)  # checks the combination
    problem = _extension_problem(shown, macro, server)
    if problem:
        raise TemplateError(problem)
    if os.path.lexists(shown) and not os.path.isdir(shown) and not force:
        raise TemplateError(f"{shown} exists: add --force to replace it with a fresh template "
                            "(its data and results are then lost)")
    blocker = write_blocker(shown)
    if blocker is not None:
        raise TemplateError(_for_this_command(blocker))
    content = source.read_bytes()
    try:
        target = atomic_write(shown, lambda fh: fh.write(content))
    except WorkbookInputError as err:  # someone took a lock on the file since the check
        raise TemplateError(_for_this_command(str(err))) from None
    return Path(target)
