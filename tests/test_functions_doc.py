"""Every formula in docs/functions.md is evaluated, and every result table shown is its result.

A formula is any inline code span or code-block line that starts with ``=``. Each is evaluated
by ``build.evaluate_formula`` (workbook_template/build.py: nested calls, INDEX, MATCH, XMATCH,
ISTEXT, LEFT, comparisons) on the example ranges the page describes (:data:`EXAMPLES` holds the
same contents) and must give a result, not an error value. A formula written for the server
add-in (``=FACTORLASSO.FLASSO_FIT(...)``) is evaluated with that namespace.

A markdown table that follows a formula (before the next formula) shows its result: header
cells exactly, then each shown row (found by its label; ``...`` rows and columns are elided)
with every number equal to the result at the digits shown.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import math
import re
from pathlib import Path

import numpy as np
import pytest

from xl_factorlasso import udfs
from xl_factorlasso.core import load_demo_panel
from xl_factorlasso.workbook import XlsxFileIO

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "functions.md"
TEMPLATE = ROOT / "xl_factorlasso" / "templates" / "factorlasso_template.xlsx"


def _load_build():
    spec = importlib.util.spec_from_file_location("factorlasso_template_build_doc",
                                                  ROOT / "workbook_template" / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build = _load_build()


# --------------------------------------------------------------------------- the example ranges
def _panel(frame) -> list[list]:
    rows = [[d.to_pydatetime(), *(None if np.isnan(v) else float(v) for v in r)]
            for d, r in zip(frame.index, frame.to_numpy(dtype=float), strict=True)]
    return [["date", *map(str, frame.columns)], *rows]


def _examples() -> dict[str, list[list]]:
    """The ranges of the page's "Examples" table, as Excel passes them."""
    demo = load_demo_panel()
    signs = demo.signs.iloc[:7, :3]
    examples = {
        "R": _panel(demo.y),
        "F": _panel(demo.x),
        "H2:I4": [["span", 52.0], ["l1_weight", 0.3], ["n_clusters", 4.0]],
        "H6:I6": [["n_clusters", 4.0]],
        "H8:I8": [["annualization_factor", 52.0]],
        "H10:I10": [["cv_n_lambdas", 6.0]],
        "K1:N8": [["asset", *signs.columns],
                  *[[a, *(None if np.isnan(v) else float(v) for v in row)]
                    for a, row in zip(signs.index, signs.to_numpy(), strict=True)]],
        "Scenarios!A1:G4": _panel(demo.x.iloc[-3:]),
        "P2:Q3": [["max_weights", 0.2], ["annualization_factor", 52.0]],
        "P5:P6": [["Govies <= 0.5"], ["GOLD >= 0.05"]],
        "M1:N25": [["asset", "block"], *[[a, b] for a, b in demo.clusters.items()]],
        "P8:Q10": [["covariance", "factor"], ["max_weights", 0.2],
                   ["annualization_factor", 52.0]],
        "S1:T4": [["asset", "weight"], ["SPX", 0.5], ["BUND10", 0.3], ["GOLD", 0.2]],
        "Prices!A1:C5": [["date", "SPX", "UST10"],
                         [dt.datetime(2024, 1, 5), 100.0, 50.0],
                         [dt.datetime(2024, 1, 12), 102.0, 50.5],
                         [dt.datetime(2024, 1, 19), 99.96, None],
                         [dt.datetime(2024, 1, 26), 101.9592, 51.005]],
    }
    io = XlsxFileIO(TEMPLATE)  # the FL_* names: the template workbook's
    examples.update({name: io.read(area) for name, area in io.names().items()})
    return examples


# --------------------------------------------------------------------------- reading the page
_INLINE = re.compile(r"`(=[^`]+)`")


def doc_items(text: str) -> list[tuple[str, object]]:
    """``("formula", (line, text))`` and ``("table", (line, rows, intro))`` in page order.

    Inline code may run over a line break (it renders as a space); the intro of a table is the
    paragraph before it.
    """
    items, table, in_fence, para, intro = [], None, False, [], ""

    def flush():
        nonlocal para, intro
        if para:
            joined = " ".join(t for _n, t in para)
            for m in _INLINE.finditer(joined):
                items.append(("formula", (para[0][0], m.group(1))))
            intro, para = joined, []

    for n, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("```"):
            flush()
            in_fence = not in_fence
            continue
        if in_fence or (line.startswith("    ") and not para):  # a code block line
            if stripped.startswith("="):
                items.append(("formula", (n, stripped)))
            continue
        if stripped.startswith("|"):
            flush()
            for m in _INLINE.finditer(stripped):  # a formula in a table cell
                items.append(("formula", (n, m.group(1))))
            cells = [c.strip() for c in stripped.strip("|").split("|")]
            if table is None:
                table = (n, [], intro)
                items.append(("table", table))
            if not all(re.fullmatch(r":?-+:?", c) for c in cells):
                table[1].append(cells)
            continue
        table = None
        if stripped:
            para.append((n, stripped))
        else:
            flush()
    flush()
    return items


def result_tables(items) -> list[tuple[str, list[list[str]]]]:
    """``(formula, rows)`` of each table introduced by a line that ends with ':' and holds the
    formula (``=FLASSO_R2(R, F, 0.0001)`:``)."""
    out = []
    for kind, item in items:
        if kind == "table" and item[2].endswith(":"):
            formulas = _INLINE.findall(item[2])
            if formulas:
                out.append((formulas[-1], item[1]))
    return out


def _namespace(formula: str) -> str | None:
    m = re.search(r"([A-Z][A-Z0-9_]*)\.FLASSO_", formula)
    return m.group(1) if m else None


def _formulas(items) -> list[str]:
    return [item[1] for kind, item in items if kind == "formula"]


@pytest.fixture(scope="module")
def page():
    return doc_items(DOC.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def results(page):
    udfs.cache_clear()
    examples = _examples()
    out = {}
    for formula in _formulas(page):
        if formula not in out:
            out[formula] = build.evaluate_formula(formula, examples, udfs, _namespace(formula))
    yield out
    udfs.cache_clear()


def _is_error(v) -> bool:
    return isinstance(v, str) and v.startswith("#")


# --------------------------------------------------------------------------- the tests
def test_the_page_has_formulas_for_every_function(page):
    formulas = _formulas(page)
    called = {m for f in formulas for m in re.findall(r"(FLASSO_[A-Z0-9_]+)\(", f)}
    assert called == set(udfs.__all__)
    assert len(formulas) >= 20


def test_every_formula_evaluates(results):
    for formula, result in results.items():
        cells = [v for row in result for v in row] if isinstance(result, list) else [result]
        bad = [v for v in cells if _is_error(v)]
        assert not bad, f"{formula} gives {bad[0]}"


def test_the_best_lambda_recipes_give_the_best_row(results):
    best = results["=FLASSO_BEST_LAMBDA(R, F)"]
    table = build.evaluate_formula("=FLASSO_CV(R, F)", _examples(), udfs)
    assert isinstance(best, float) and best == next(r[0] for r in table[1:] if r[-1] == "best")
    lookups = [f for f in results if f.startswith("=INDEX(FLASSO_CV(R, F)")]
    assert lookups, "the page shows no table lookup of the best lambda"
    for formula in lookups:
        assert results[formula] == best, formula
    # the numbers the page states for the recipes
    text = " ".join(DOC.read_text(encoding="utf-8").split())
    stated = re.search(r"`=FLASSO_BEST_LAMBDA\(R, F\)` gives ([0-9.e+-]+);", text).group(1)
    assert _close(stated, best)
    template = re.search(r"is the λ that Cross-validate writes to `FL_STATUS` \(([0-9.e+-]+)\)",
                         text).group(1)
    on_template = [f for f in results if f.startswith("=FLASSO_BEST_LAMBDA(FL_RETURNS")]
    assert len(on_template) == 1 and _close(template, results[on_template[0]])
    # the recipe the page used to give returns the header text, not the best lambda
    old = '=INDEX(FLASSO_CV(R, F), MATCH("best", INDEX(FLASSO_CV(R, F), , 8), 0), 1)'
    assert old not in results
    assert build.evaluate_formula(old, _examples(), udfs) == "reg_lambda"


def _number(text: str):
    try:
        return float(text)
    except ValueError:
        return None


def _close(shown: str, value) -> bool:
    """``value`` equals the number ``shown`` at the digits shown."""
    x = _number(shown)
    if x is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    mantissa, _, exponent = shown.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    step = 10.0 ** (int(exponent or 0) - decimals)
    return abs(value - x) <= 0.5 * step * (1 + 1e-9) + 1e-15


def _label(v) -> str:
    if isinstance(v, dt.datetime):
        return v.date().isoformat()
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return "" if v is None else str(v)


def _check_table(formula: str, result, shown: list[list[str]]) -> None:
    rows = result if isinstance(result, list) else [[result]]
    header, *body = shown
    width = len(header) if "..." not in header else header.index("...")
    assert header[:width] == [_label(v) for v in rows[0][:width]], (formula, header)
    numeric_labels = all(_number(r[0]) is not None for r in body if r[0] not in ("", "..."))
    by_label = {_label(r[0]): r for r in rows[1:]}
    for i, cells in enumerate(body):
        if cells[0] == "..." or (cells[0] == "" and all(c == "" for c in cells)):
            continue
        row = rows[1 + i] if numeric_labels else by_label.get(cells[0])
        assert row is not None, (formula, f"no row {cells[0]!r}")
        for j, text in enumerate(cells[:width]):
            value = row[j] if j < len(row) else None
            if text == "":
                assert value is None or value == "", (formula, cells[0], j, value)
            elif _number(text) is not None:
                assert _close(text, value), (formula, cells[0], header[j], text, value)
            else:
                assert text == _label(value), (formula, cells[0], j, text, value)


def test_every_table_shown_is_the_result_of_its_formula(page, results):
    tables = result_tables(page)
    for formula, rows in tables:
        _check_table(formula, results[formula], rows)
    shown = {build.split_formula(f.lstrip("="))[0] for f, _rows in tables}
    assert shown >= set(udfs.__all__) - {"FLASSO_VERSION", "FLASSO_BEST_LAMBDA"}


def test_reading_the_page():
    text = "\n".join([
        "`=A(1)` then a table", "", "| a | b |", "|---|---|", "| 1 | 2 |", "",
        "```", "=B(R)", "```", "    =C(F)", "not `code` nor `x=1`"])
    items = doc_items(text)
    assert items == [("formula", (1, "=A(1)")),
                     ("table", (3, [["a", "b"], ["1", "2"]], "`=A(1)` then a table")),
                     ("formula", (8, "=B(R)")), ("formula", (10, "=C(F)"))]
    assert result_tables(items) == []  # its intro does not end with ':'
    assert result_tables(doc_items("`=A(1)`:\n\n| a |\n|---|\n| 1 |")) == [("=A(1)", [["a"], ["1"]])]
    assert _close("0.9001", 0.90014) and not _close("0.9001", 0.90016)
    assert _close("2.127e-06", 2.1274e-06) and not _close("2.127e-06", 2.128e-06)
    assert math.isclose(float("1E-4"), 1e-4)


def test_the_price_example_is_the_range_the_page_shows(page):
    """The prices shown under "`Prices!A1:C5` holds" are EXAMPLES' (the result tables of
    FLASSO_RETURNS are checked against them above), and the error the page quotes is the one
    a price of 0 there gives."""
    (rows,) = [item[1] for kind, item in page
               if kind == "table" and item[2].startswith("`Prices!A1:C5` holds")]
    prices = _examples()["Prices!A1:C5"]
    assert rows[0] == prices[0]
    assert [[_label(v) for v in r] for r in prices[1:]] == [
        [c if not c or _number(c) is None else _label(float(c)) for c in r] for r in rows[1:]]
    zero = [list(r) for r in prices]
    zero[2][1] = 0.0
    message = udfs.FLASSO_RETURNS(zero)
    text = " ".join(DOC.read_text(encoding="utf-8").split())
    assert f"`{message}`" in text
