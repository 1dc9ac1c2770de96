"""A corpus of malformed workbooks, run end to end through the command line.

Each case starts from the demo workbook, damages it one way (a cell, a name, the layout, the
zip, the folder), runs ``xl-factorlasso refit`` and ``xl-factorlasso inspect`` in-process and
classifies what happened. The test (``tests/test_bad_workbooks.py``) requires every case to
be a *clear error*: exit status 2, the expected words in the message, the file byte-identical,
no file left behind, and ``inspect`` reporting the same problem. ``python -m tests.bad_workbooks``
prints the table of outcomes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import os
import re
import shutil
import sys
import tempfile
import zipfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import openpyxl
from openpyxl.comments import Comment
from openpyxl.workbook.defined_name import DefinedName
from openpyxl.worksheet.datavalidation import DataValidation

OUTCOMES = ("clear error", "unclear", "traceback", "accepted silently", "data changed")


@dataclass(frozen=True)
class Case:
    """One malformed workbook.

    ``mutate`` edits the workbook at the path it is given (and may put files beside it);
    ``expect`` is text the error message must contain; ``args`` are extra ``refit`` options;
    ``inspect`` says whether ``xl-factorlasso inspect`` must report the same message; ``job``
    ``"backtest"`` runs that job (``run_job``, as a host does) instead of ``refit``.
    """

    id: str
    mutate: Callable[[Path], None]
    expect: str
    args: tuple[str, ...] = ()
    inspect: bool = True
    job: str = "refit"


@dataclass
class Outcome:
    case: Case
    kind: str
    status: int | None
    message: str
    inspect_found: bool | None
    details: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- mutations
def _book(edit: Callable) -> Callable[[Path], None]:
    """A mutation through openpyxl (the result is the 'before' file: openpyxl's bytes)."""

    def mutate(path: Path) -> None:
        wb = openpyxl.load_workbook(path)
        edit(wb)
        wb.save(path)

    return mutate


def cells(sheet: str, **values) -> Callable[[Path], None]:
    """Set cells, e.g. ``cells("Returns", C5="abc")``."""
    return _book(lambda wb: [wb[sheet].__setitem__(k, v) for k, v in values.items()])


def setting(key: str, value, sheet: str = "Settings") -> Callable[[Path], None]:
    """Set (or add) a ``key | value`` row of a settings block in columns A:B."""

    def edit(wb):
        ws = wb[sheet]
        row = 2
        while ws.cell(row, 1).value not in (None, key):
            row += 1
        ws.cell(row, 1).value, ws.cell(row, 2).value = key, value

    return _book(edit)


def name(nm: str, ref: str | None, local_sheet: int | None = None) -> Callable[[Path], None]:
    """Re-point, delete (``ref=None``) or make sheet-scoped a defined name."""

    def edit(wb):
        if nm in wb.defined_names:
            del wb.defined_names[nm]
        if ref is None:
            return
        if local_sheet is None:
            wb.defined_names[nm] = DefinedName(nm, attr_text=ref)
        else:
            wb.worksheets[local_sheet].defined_names[nm] = DefinedName(nm, attr_text=ref)

    return _book(edit)


def rolling(key: str, value) -> Callable[[Path], None]:
    """Set (or add) a ``key | value`` row of FL_ROLLING_SETTINGS."""
    return setting(key, value, "Rolling")


def both(*mutations) -> Callable[[Path], None]:
    def mutate(path: Path) -> None:
        for m in mutations:
            m(path)

    return mutate


def _part_of(path: Path, sheet: str) -> str:
    wb = openpyxl.load_workbook(path, read_only=True)
    index = wb.sheetnames.index(sheet)
    wb.close()
    return f"xl/worksheets/sheet{index + 1}.xml"


def _rewrite(path: Path, part: str, edit: Callable[[bytes], bytes]) -> None:
    with zipfile.ZipFile(path) as zf:
        parts = [(i, zf.read(i)) for i in zf.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for info, data in parts:
            zf.writestr(info, edit(data) if info.filename == part else data)


def raw_cell(sheet: str, ref: str, xml: str) -> Callable[[Path], None]:
    """Replace cell ``ref`` of a sheet with raw SpreadsheetML (``<c r=...>...</c>``)."""

    def mutate(path: Path) -> None:
        def edit(data: bytes) -> bytes:
            text = data.decode()
            cell = re.search(rf'<c r="{ref}"[^>]*?(/>|>.*?</c>)', text)
            if cell:
                return (text[: cell.start()] + xml + text[cell.end():]).encode()
            row = re.search(rf'<row r="{re.sub(r"[A-Z]+", "", ref)}"[^>]*>', text)
            if row is None:  # a new row at the end of sheetData
                new = f'<row r="{re.sub(r"[A-Z]+", "", ref)}">{xml}</row></sheetData>'
                return text.replace("</sheetData>", new, 1).encode()
            end = text.index("</row>", row.end())
            return (text[:end] + xml + text[end:]).encode()

        _rewrite(path, _part_of(path, sheet), edit)

    return mutate


def zip_damage(how: str) -> Callable[[Path], None]:
    def mutate(path: Path) -> None:
        blob = bytearray(path.read_bytes())
        if how == "crc":  # flip a byte inside the Returns sheet's compressed data
            from tests.file_safety_helpers import local_data_offset

            blob[local_data_offset(bytes(blob), "xl/worksheets/sheet2.xml") + 200] ^= 0xFF
        elif how == "truncated":
            del blob[len(blob) // 2:]
        elif how == "empty":
            del blob[:]
        elif how == "text":
            blob[:] = b"date,SPX\n2020-01-03,0.01\n"
        path.write_bytes(bytes(blob))

    return mutate


def doctype_bomb(path: Path) -> None:
    bomb = ('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">'
            '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>')
    _rewrite(path, _part_of(path, "Start"),
             lambda data: bomb.encode() + (data.split(b"?>", 1)[1] if data.startswith(b"<?xml")
                                           else data))


def declared_size_bomb(path: Path) -> None:
    from tests.file_safety_helpers import patch_sizes

    patch_sizes(path, "xl/worksheets/sheet1.xml", uncompressed=3_900_000_000)


def ole2(streams: tuple[str, ...]) -> Callable[[Path], None]:
    def mutate(path: Path) -> None:
        from tests.file_safety_helpers import cfb

        path.write_bytes(cfb({s: b"\0" * 600 for s in streams}))

    return mutate


def excel_open(path: Path) -> None:
    from tests.file_safety_helpers import excel_owner_bytes

    (path.parent / f"~${path.name}").write_bytes(excel_owner_bytes("jdoe"))


def libreoffice_open(path: Path) -> None:
    """A lock of this host whose LibreOffice profile is in use (it holds its ``.lock``)."""
    import socket

    from tests.file_safety_helpers import libreoffice_lock_bytes

    profile = path.parent / "lo-profile"
    profile.mkdir()
    (profile / ".lock").write_text("running")
    when = dt.datetime.now().strftime("%d.%m.%Y %H:%M")
    lock = libreoffice_lock_bytes("Jane Doe", "jdoe", socket.gethostname(), when,
                                  profile.as_uri())
    (path.parent / f".~lock.{path.name}#").write_bytes(lock)


def read_only(path: Path) -> None:
    os.chmod(path, 0o444)


def grow_r2(blocker: Callable) -> Callable[[Path], None]:
    """FL_R2 shrunk to 5 rows (its table needs 25) and something put where it must grow."""
    return both(name("FL_R2", "'Diagnostics'!$D$1:$E$5"), blocker)


def comment_at(sheet: str, ref: str) -> Callable[[Path], None]:
    return _book(lambda wb: setattr(wb[sheet][ref], "comment", Comment("keep", "analyst")))


def merged(sheet: str, ref: str) -> Callable[[Path], None]:
    return _book(lambda wb: wb[sheet].merge_cells(ref))


def validation(sheet: str, ref: str) -> Callable[[Path], None]:
    def edit(wb):
        dv = DataValidation(type="list", formula1='"a,b"')
        dv.add(ref)
        wb[sheet].add_data_validation(dv)

    return _book(edit)


def long_history(path: Path) -> None:
    """Returns and factors cut to 4 dates (the fit needs 5 usable rows)."""
    name("FL_RETURNS", "'Returns'!$A$1:$Y$5")(path)
    name("FL_FACTORS", "'Factors'!$A$1:$G$5")(path)


def never_varies(wb) -> None:
    """NDX's returns all 0 and its prior row cleared: no loading, no residual, no volatility."""
    for r in range(2, 262):
        wb["Returns"].cell(r, 3).value = 0.0
    for c in range(2, 8):
        wb["Prior"].cell(3, c).value = None


def constraint(text: str) -> Callable[[Path], None]:
    return cells("Portfolio", D4=text)


P = ("--portfolio",)
CV = ("--cv",)

CASES: list[Case] = [
    # ---- numbers in the panels
    Case("text in a return", cells("Returns", C5="abc"), "FL_RETURNS!C5: 'abc'"),
    Case("decimal comma", cells("Returns", C5="0,5"), "FL_RETURNS!C5"),
    Case("thousands separator", cells("Returns", C6="1,000"), "FL_RETURNS!C6"),
    Case("percent text", cells("Returns", D7="5%"), "FL_RETURNS!D7"),
    Case("currency text", cells("Factors", B8="$3"), "FL_FACTORS!B8"),
    Case("nan text", cells("Returns", E9="nan"), "FL_RETURNS!E9"),
    Case("inf text", cells("Factors", C9="inf"), "FL_FACTORS!C9"),
    Case("overflowing text", cells("Returns", F10="1e999"), "FL_RETURNS!F10"),
    Case("#N/A error text", cells("Returns", B7="#N/A"), "FL_RETURNS!B7: #N/A is an Excel error"),
    Case("#N/A error cell", raw_cell("Returns", "B8", '<c r="B8" t="e"><v>#N/A</v></c>'),
         "FL_RETURNS!B8: #N/A is an Excel error"),
    Case("#DIV/0! in factors", raw_cell("Factors", "D9", '<c r="D9" t="e"><v>#DIV/0!</v></c>'),
         "FL_FACTORS!D9: #DIV/0!"),
    Case("TRUE in returns", cells("Returns", G11=True), "FL_RETURNS!G11"),
    Case("date-formatted return", cells("Returns", C12=dt.datetime(2020, 1, 1)), "FL_RETURNS!C12"),
    Case("date serial as return", cells("Returns", C13=43831), "FL_RETURNS!C13"),
    Case("price instead of return", cells("Returns", D14=101.5), "FL_RETURNS!D14"),
    Case("percent instead of decimal", cells("Returns", D15=-7.5), "FL_RETURNS!D15"),
    Case("huge factor", cells("Factors", B16=1e200), "FL_FACTORS!B16"),
    Case("formula without value", cells("Returns", C17="=C16*2"), "FL_RETURNS!C17"),
    Case("stored NaN", raw_cell("Returns", "C18", '<c r="C18"><v>NaN</v></c>'), "FL_RETURNS!C18"),
    Case("stored INF", raw_cell("Factors", "C18", '<c r="C18"><v>INF</v></c>'), "FL_FACTORS!C18"),
    Case("stored garbage number", raw_cell("Returns", "E18", '<c r="E18"><v>1.2.3</v></c>'),
         "FL_RETURNS!E18"),
    Case("bad shared-string index", raw_cell("Returns", "C19", '<c r="C19" t="s"><v>999</v></c>'),
         "FL_RETURNS!C19"),
    Case("bad boolean", raw_cell("Returns", "C20", '<c r="C20" t="b"><v>maybe</v></c>'),
         "FL_RETURNS!C20"),
    # ---- dates and labels
    Case("today as a date", cells("Returns", A5="today"), "FL_RETURNS!A5"),
    Case("ambiguous text date", cells("Factors", A6="01/02/2020"), "FL_FACTORS!A6"),
    Case("quarter as a date", cells("Returns", A7="Q1"), "FL_RETURNS!A7"),
    Case("blank date", cells("Returns", A5=None), "FL_RETURNS!A5: the date is blank"),
    Case("dates out of order", cells("Factors", A10=dt.datetime(2030, 1, 4)), "dates must increase"),
    Case("repeated date", _book(lambda wb: wb["Returns"].__setitem__("A11", wb["Returns"]["A10"].value)),
         "FL_RETURNS!A11"),
    Case("dates differ", cells("Factors", A261=dt.datetime(2030, 1, 4)), "has no row in"),
    Case("number among dates", cells("Returns", A12=7), "FL_RETURNS!A12"),
    Case("duplicate asset", cells("Returns", D1="SPX"), "duplicate asset name 'SPX' (also at B1)"),
    Case("blank asset name", cells("Returns", C1=None), "FL_RETURNS!C1: the asset name is blank"),
    Case("error as factor name", cells("Factors", C1="#REF!"), "FL_FACTORS!C1"),
    Case("duplicate factor", cells("Factors", C1="Equity"), "duplicate factor name 'Equity'"),
    # ---- signs, prior, groups
    Case("sign text", cells("Signs", B3="x"), "FL_SIGNS!B3: 'x' is not one of blank, 0, 1, -1, +, -"),
    Case("sign 2", cells("Signs", C4=2), "FL_SIGNS!C4: 2 is not one of"),
    Case("sign #N/A", cells("Signs", D5="#N/A"), "FL_SIGNS!D5"),
    Case("unknown asset in signs", cells("Signs", A2="MSFT"), "FL_SIGNS!A2: asset 'MSFT' is not in FL_RETURNS"),
    Case("unknown factor in prior", cells("Prior", C1="Momentum"), "FL_PRIOR!C1: factor 'Momentum' is not in FL_FACTORS"),
    Case("prior against sign", cells("Prior", B2=-0.5), "FL_PRIOR!B2: the prior -0.5"),
    Case("text in prior", cells("Prior", C3="abc"), "FL_PRIOR!C3"),
    Case("decimal comma in prior", cells("Prior", C4="0,3"), "FL_PRIOR!C4"),
    Case("group lasso without groups", setting("model_type", "GROUP_LASSO"), "needs a group for every asset"),
    Case("group for an unknown asset", both(setting("model_type", "GROUP_LASSO"),
                                            cells("Settings", E2="MSFT", F2="g1")),
         "FL_GROUPS!E2: asset 'MSFT' is not in FL_RETURNS"),
    # ---- exclusions and exposure budgets (FL_EXCLUDED at Settings!L:M, FL_EXPOSURE_BUDGET)
    Case("unknown asset in exclusions", cells("Settings", L2="MSFT", M2="Equity"),
         "FL_EXCLUDED!L2: 'MSFT' is not an asset of FL_RETURNS"),
    Case("exclusion against the prior", cells("Settings", L2="SPX", M2="Equity"),
         "FL_EXCLUDED!M2: (SPX, Equity) is excluded (pinned to 0) but its prior at FL_PRIOR!B2 "
         "is 1.02"),
    Case("excluded pair twice", cells("Settings", L2="NKY", M2="Rates", L3="NKY", M3="Rates"),
         "FL_EXCLUDED!M3: (NKY, Rates) is listed twice (first at L2)"),
    Case("negative exposure budget", both(setting("apply_ols_prior", True),
                                          cells("ExposureBudget", C3=-0.1)),
         "FL_EXPOSURE_BUDGET!C3: the exposure budget -0.1 for (NDX, Rates) is negative"),
    Case("text in exposure budget", cells("ExposureBudget", D4="abc"), "FL_EXPOSURE_BUDGET!D4"),
    Case("cluster_mean cross-validated", both(setting("apply_ols_prior", True),
                                              setting("expert_prior_budget_rule",
                                                      "cluster_mean")),
         "FL_SETTINGS!B12: expert_prior_budget_rule cluster_mean cannot be cross-validated", CV),
    # ---- settings
    Case("unknown setting", setting("alpha", 1), "unknown setting 'alpha'"),
    Case("repeated setting", _book(lambda wb: wb["Settings"].append(["span", 26])), "setting 'span' is given twice"),
    Case("reg_lambda text", setting("reg_lambda", "lots"), "FL_SETTINGS!B6"),
    Case("reg_lambda negative", setting("reg_lambda", -1), "FL_SETTINGS!B6"),
    Case("reg_lambda nan", setting("reg_lambda", "nan"), "FL_SETTINGS!B6"),
    Case("span 1", setting("span", 1), "FL_SETTINGS!B3"),
    Case("span 0", setting("span", 0), "FL_SETTINGS!B3"),
    Case("n_clusters 0", setting("n_clusters", 0), "FL_SETTINGS!B4"),
    Case("more clusters than assets", setting("n_clusters", 100), "FL_SETTINGS!B4"),
    Case("l1_weight 2", setting("l1_weight", 2), "FL_SETTINGS!B5"),
    Case("cutoff_fraction 0", setting("cutoff_fraction", 0), "FL_SETTINGS!B11"),
    Case("model_type ridge", setting("model_type", "ridge"), "FL_SETTINGS!B2"),
    Case("linkage unknown", setting("linkage_method", "bogus"), "FL_SETTINGS!B11"),
    Case("warmup negative", setting("warmup_period", -3), "FL_SETTINGS!B11"),
    Case("cv_splits 1", setting("cv_splits", 1), "FL_SETTINGS!B9", CV),
    Case("cv_splits beyond the rows", setting("cv_splits", 500), "FL_SETTINGS!B9", CV),
    Case("cv_lambdas text", setting("cv_lambdas", "abc"), "FL_SETTINGS!B7", CV),
    Case("cv_lambdas negative", setting("cv_lambdas", "0.1, -1"), "FL_SETTINGS!B7", CV),
    Case("cv_n_lambdas 0", setting("cv_n_lambdas", 0), "FL_SETTINGS!B8", CV),
    Case("annualization 0", setting("annualization_factor", 0), "FL_SETTINGS!B10"),
    Case("annualization nan", setting("annualization_factor", "nan"), "FL_SETTINGS!B10"),
    Case("too few dates", long_history, "FL_RETURNS"),
    # ---- names
    Case("missing factors", name("FL_FACTORS", None), "the workbook has no name FL_FACTORS"),
    Case("#REF! name", name("FL_RETURNS", "#REF!"), "FL_RETURNS: the name FL_RETURNS refers to #REF!"),
    Case("multi-area name", name("FL_SIGNS", "'Signs'!$A$1:$C$25,'Signs'!$E$1:$G$25"), "FL_SIGNS: the name FL_SIGNS is a multi-area reference"),
    Case("whole-column name", name("FL_FACTORS", "'Factors'!$A:$G"), "FL_FACTORS: the name FL_FACTORS refers to the whole columns A:G"),
    Case("sheet-scoped name", name("FL_PRIOR", "'Prior'!$A$1:$G$25", local_sheet=4), "FL_PRIOR: the name FL_PRIOR is local to sheet 'Prior'"),
    Case("unknown sheet", name("FL_RETURNS", "'Gone'!$A$1:$Y$261"),
         "FL_RETURNS: the name FL_RETURNS refers to sheet 'Gone', which is not in the workbook"),
    Case("only a header", name("FL_RETURNS", "'Returns'!$A$1:$Y$1"), "FL_RETURNS"),
    Case("broken output name", name("FL_R2", "#REF!"), "FL_R2: the name FL_R2 refers to #REF!"),
    # ---- layout
    Case("output over the returns", name("FL_COEF", "'Returns'!$B$2:$Z$8"),
         "FL_COEF: its area Returns!B2:Z8 overlaps the input FL_RETURNS"),
    Case("output inside an output", name("FL_R2", "'Results'!$B$3:$C$27"),
         "FL_COEF: its area Results!A1:G25 overlaps the output FL_R2 (Results!B3:C27)"),
    Case("status over the settings", name("FL_STATUS", "'Settings'!$A$1:$B$12"),
         "FL_STATUS: its area Settings!A1:B12 overlaps the input FL_SETTINGS"),
    Case("growth into a value", grow_r2(cells("Diagnostics", E12="mine")),
         "Diagnostics!E12 next to it holds the value 'mine'"),
    Case("growth into a blank formula",
         grow_r2(raw_cell("Diagnostics", "D14",
                          '<c r="D14" t="str"><f>IF(1,"","")</f><v></v></c>')),
         "Diagnostics!D14 next to it holds a formula"),
    Case("growth into a comment", grow_r2(comment_at("Diagnostics", "E16")),
         "Diagnostics!E16 next to it holds a comment"),
    Case("growth into a merged area", grow_r2(merged("Diagnostics", "D20:E21")),
         "Diagnostics!D20 next to it holds part of the merged range D20:E21"),
    Case("growth into a validation", grow_r2(validation("Diagnostics", "D22")),
         "Diagnostics!D22 next to it holds a data validation"),
    # ---- portfolio (refit --portfolio: nothing of the refit may be saved)
    Case("unknown name in a constraint", constraint("Bitcoin <= 0.1"), "FL_CONSTRAINTS!D4", P),
    Case("constraint typo", constraint("EQ <== 0.1"), "FL_CONSTRAINTS!D4", P),
    Case("infeasible constraints", constraint("EQ >= 0.9"), "no portfolio satisfies the constraints", P),
    Case("text in previous weights", cells("Portfolio", F2="SPX", G2="abc"), "FL_PREV_WEIGHTS!G2", P),
    Case("huge previous weight", cells("Portfolio", F2="SPX", G2=1e300),
         "FL_PREV_WEIGHTS!G2: the weight 1e+300 is too large to compute with", P),
    Case("unknown asset in previous weights", cells("Portfolio", F2="XYZ", G2=0.1),
         "FL_PREV_WEIGHTS!F2: asset 'XYZ' is not in FL_RETURNS", P),
    Case("an asset that never varies, factor covariance", _book(never_varies),
         "FL_RETURNS: the factor model gives zero volatility for asset 'NDX': its returns do "
         "not vary", P),
    Case("covariance magic", cells("Portfolio", B2="magic"), "covariance: 'magic' is not one of", P),
    Case("bounds below the budget", cells("Portfolio", B3=0.01),
         "no portfolio satisfies the constraints: Infeasible: no portfolio satisfies these "
         "constraints together: max_weights, 'GOV >= 0.20'. Dropping or relaxing any one of them "
         "makes the rest feasible. (FL_CONSTRAINTS cells D3; FL_PORTFOLIO_SETTINGS cells B3)", P),
    Case("budget beyond the bounds", setting("budget", 10, "Portfolio"),
         "FL_PORTFOLIO_SETTINGS!B3: no portfolio satisfies the portfolio settings: Infeasible: "
         "no portfolio satisfies these constraints together: max_weights, budget=10", P),
    Case("risk-free rate above every portfolio", setting("risk_free_rate", 5, "Portfolio"),
         "FL_PORTFOLIO_SETTINGS!B4: no portfolio satisfies the portfolio settings: Infeasible: "
         "risk_free_rate=5 is not below", P),
    Case("min above max weights", both(setting("min_weights", 0.5, "Portfolio")), "FL_PORTFOLIO_SETTINGS!B", P),
    Case("negative transaction costs", setting("transaction_costs", -0.01, "Portfolio"), "FL_PORTFOLIO_SETTINGS!B", P),
    Case("span with factor covariance", setting("span", 26, "Portfolio"), "FL_PORTFOLIO_SETTINGS!A4", P),
    Case("ewma span shorter than the assets", both(setting("covariance", "ewma", "Portfolio"),
                                                   setting("span", 12, "Portfolio")),
         "FL_PORTFOLIO_SETTINGS!B4: span=12 gives the", P),
    # ---- the file and its folder
    Case("open in Excel", excel_open, "open in Excel"),
    Case("open in LibreOffice", libreoffice_open, "LibreOffice"),
    Case("read-only file", read_only, "read-only"),
    Case("damaged member", zip_damage("crc"), "is damaged: part 'xl/worksheets/sheet2.xml'"),
    Case("truncated file", zip_damage("truncated"), "is damaged"),
    Case("empty file", zip_damage("empty"), "is empty"),
    Case("a CSV named .xlsx", zip_damage("text"), "not an .xlsx/.xlsm package"),
    Case("entity bomb", doctype_bomb, "declares a DOCTYPE"),
    Case("declared-size bomb", declared_size_bomb, "would decompress to"),
    Case("an .xls named .xlsx", ole2(("Workbook",)), "Excel 97-2003"),
    Case("encrypted workbook", ole2(("EncryptedPackage", "EncryptionInfo")), "password-protected"),
    # ---- FL_ROLLING_SETTINGS (the backtest job), one case per key family
    *[Case(f"rolling {case_id}", mutation, expect, job="backtest")
      for case_id, mutation, expect in [
          ("unknown key", rolling("rebalence", "QE"), "FL_ROLLING_SETTINGS!A2: unknown setting"),
          ("old frequency alias", rolling("rebalance", "M"),
           "FL_ROLLING_SETTINGS!B2: rebalance: 'M' is not a rebalancing frequency"),
          ("intraday frequency", rolling("rebalance", "5min"),
           "FL_ROLLING_SETTINGS!B2: rebalance: '5min' is shorter than a day"),
          ("window text", rolling("window", "rolling"),
           "FL_ROLLING_SETTINGS!B2: window: 'rolling' is neither expanding nor a number"),
          ("window of one row", rolling("window", 1),
           "FL_ROLLING_SETTINGS!B2: window must be a whole number >= 2, got 1"),
          ("min_history above the window", both(rolling("window", 52),
                                                rolling("min_history", 104)),
           "FL_ROLLING_SETTINGS!B3: min_history 104 is more than the window's 52 rows"),
          ("min_history beyond the data", rolling("min_history", 1000),
           "FL_ROLLING_SETTINGS!B2: min_history gives no rebalancing date with enough history"),
          ("on_failure ignore", rolling("on_failure", "ignore"),
           "FL_ROLLING_SETTINGS!B2: on_failure: 'ignore' is not one of previous, skip, stop"),
          ("unknown benchmark", rolling("benchmarks", "sample, magic"),
           "FL_ROLLING_SETTINGS!B2: benchmarks: 'magic' is not one of sample, ewma"),
          ("ewma_span of one", rolling("ewma_span", 1),
           "FL_ROLLING_SETTINGS!B2: ewma_span must be >= 2"),
          ("ewma_span not above the assets", rolling("ewma_span", 24),
           "FL_ROLLING_SETTINGS!B2: ewma_span 24 is not above the 24 assets"),
          ("negative cost", rolling("transaction_cost_bps", -5),
           "FL_ROLLING_SETTINGS!B2: transaction_cost_bps must be >= 0, got -5"),
          ("two cost sources", both(rolling("transaction_cost_bps", 10),
                                    setting("transaction_costs", 0.001, "Portfolio")),
           "FL_ROLLING_SETTINGS!B2: transaction_cost_bps and FL_PORTFOLIO_SETTINGS!B4 "
           "transaction_costs both set the cost per unit traded"),
          ("unknown history factor", rolling("history_factor", "Gold"),
           "FL_ROLLING_SETTINGS!B2: history_factor 'Gold' is not a factor of FL_FACTORS"),
          ("scheduler without a port", rolling("scheduler", "localhost"),
           "FL_ROLLING_SETTINGS!B2: scheduler: 'localhost' is not a Dask scheduler address"),
          ("n_jobs zero", rolling("n_jobs", 0),
           "FL_ROLLING_SETTINGS!B2: n_jobs must be a whole number >= 1 or -1"),
      ]],
]


# --------------------------------------------------------------------------- running
def _run_cli(args: list[str]) -> tuple[int | None, str, str]:
    from xl_factorlasso.cli import main

    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main(args)
    except BaseException as exc:  # noqa: BLE001 - an escaping exception is what we look for
        return None, out.getvalue(), err.getvalue() + f"\nTraceback: {type(exc).__name__}: {exc}"
    return status, out.getvalue(), err.getvalue()


def _run_job(job: str, path: Path) -> tuple[int | None, str, str]:
    """``run_job`` as a host calls it: a WorkbookInputError is the message (status 2)."""
    from xl_factorlasso.workbook import WorkbookInputError, XlsxFileIO, run_job

    try:
        run_job(XlsxFileIO(path), job, pictures=False)
    except WorkbookInputError as err:
        return 2, "", str(err)
    except BaseException as exc:  # noqa: BLE001 - an escaping exception is what we look for
        return None, "", f"Traceback: {type(exc).__name__}: {exc}"
    return 0, "", ""


def _digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def run_case(case: Case, demo: Path, folder: Path) -> Outcome:
    """Run ``case`` in the empty folder ``folder`` and classify it."""
    path = folder / "book.xlsx"
    shutil.copy(demo, path)
    case.mutate(path)
    before, listing = _digest(path), set(os.listdir(folder))
    if case.job == "refit":
        status, out, err = _run_cli(["refit", str(path), "--no-pictures", *case.args])
    else:
        status, out, err = _run_job(case.job, path)
    message = err.strip()
    details = []
    changed = _digest(path) != before
    left = set(os.listdir(folder)) - listing
    if left:
        details.append(f"left behind: {sorted(left)}")
    if "Traceback" in out + err or status not in (0, 1, 2):
        kind = "traceback"
    elif changed or left:
        kind = "data changed"
    elif status == 0:
        kind = "accepted silently"
    elif case.expect in message:
        kind = "clear error"
    else:
        kind = "unclear"
    inspect_found = None
    if case.inspect:
        i_status, i_out, i_err = _run_cli(["inspect", str(path)])
        inspect_found = i_status in (1, 2) and case.expect in i_out + i_err
        if _digest(path) != before:
            kind, details = "data changed", [*details, "inspect changed the file"]
    return Outcome(case, kind, status, message, inspect_found, details)


def run_all(cases=CASES) -> list[Outcome]:
    from xl_factorlasso.cli import build_demo_workbook

    with tempfile.TemporaryDirectory() as tmp:
        demo = Path(tmp) / "demo.xlsx"
        build_demo_workbook(str(demo))
        outcomes = []
        for k, case in enumerate(cases):
            folder = Path(tmp) / f"case{k}"
            folder.mkdir()
            outcomes.append(run_case(case, demo, folder))
            for root, dirs, files in os.walk(folder):  # undo chmod before cleanup
                for n in dirs + files:
                    os.chmod(os.path.join(root, n), 0o755)
        return outcomes


def main() -> int:
    outcomes = run_all()
    counts = Counter(o.kind for o in outcomes)
    print(f"{len(outcomes)} malformed workbooks, refit then inspect on each\n")
    print("| " + " | ".join(("cases", *OUTCOMES, "inspect agrees")) + " |")
    print("|" + "---|" * (len(OUTCOMES) + 2))
    agree = sum(1 for o in outcomes if o.inspect_found)
    asked = sum(1 for o in outcomes if o.inspect_found is not None)
    print("| " + " | ".join([str(len(outcomes)), *(str(counts[k]) for k in OUTCOMES),
                             f"{agree}/{asked}"]) + " |")
    for o in outcomes:
        if o.kind != "clear error" or o.inspect_found is False:
            print(f"\n[{o.kind}] {o.case.id} (exit {o.status}, inspect "
                  f"{'agrees' if o.inspect_found else 'misses it'}): {o.message[:300]}")
            for d in o.details:
                print(f"    {d}")
    return 0 if counts["clear error"] == len(outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
