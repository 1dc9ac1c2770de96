"""Linear constraints written as strings, e.g. ``"Equity <= 0.5 * Bond"``.

Grammar (whitespace is ignored between tokens)::

    equation   := side comparison side          exactly one comparison
    comparison := "<=" | ">=" | "==" | "="       ("=" means "==")
    side       := [sign] term (sign term)*
    sign       := "+" | "-"
    term       := number | name | number "*" name | name "*" number
    number     := 12 | 1.5 | .5 | 1e-3 | 2.5E+2   (no sign, no "%")

A *name* is an asset, group or factor label, matched **longest first** and case-sensitively, so a
label may contain spaces or operator characters (``"S&P 500"``, ``"a-b"``): ``"a-b"`` is that
label if it exists, ``"a - b"`` is a subtraction. A label match must end at the end of the string,
at whitespace or at an operator character. Labels win over numbers, so an asset named ``"1"``
cannot be used as the number one.

Unlike skfolio, an unknown name is an error that names it (skfolio warns and drops the
constraint).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from ._exceptions import EquationError

__all__ = [
    "Equation",
    "EquationError",
    "LinearConstraints",
    "equations_to_matrix",
    "format_equation",
    "parse_equation",
]

_NUMBER = re.compile(r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_OPERATOR_CHARS = frozenset("+-*<>=!")
_COMPARISONS = ("<=", ">=", "==")


@dataclass(frozen=True)
class Equation:
    """One parsed constraint, ``sum(coefficients[name] * name) <comparison> constant``.

    ``>=`` is stored as ``<=`` with every sign flipped, ``=`` as ``==``; names whose
    coefficients cancel are dropped.

    Attributes
    ----------
    coefficients : dict of str to float
        Non-zero coefficient of each name, in order of first appearance.
    comparison : {"<=", "=="}
    constant : float
    text : str
        The string that was parsed (empty when built directly).
    """

    coefficients: dict[str, float]
    comparison: str
    constant: float
    text: str = field(default="", compare=False)


@dataclass(frozen=True)
class LinearConstraints:
    """Matrix form of parsed equations: ``A_eq @ w == b_eq`` and ``A_ineq @ w <= b_ineq``.

    ``equality_labels`` / ``inequality_labels`` give the source string of each row.
    """

    A_eq: np.ndarray
    b_eq: np.ndarray
    A_ineq: np.ndarray
    b_ineq: np.ndarray
    equality_labels: tuple[str, ...]
    inequality_labels: tuple[str, ...]


class _Token(NamedTuple):
    kind: str  # "name", "number", "op" (+ - *), "cmp"
    value: str
    start: int


def _is_boundary(text: str, i: int) -> bool:
    return i >= len(text) or text[i].isspace() or text[i] in _OPERATOR_CHARS


class _NameMatcher:
    """Longest-first lookup of known labels at a position of a string."""

    def __init__(self, names: Iterable[str]):
        self.names = [str(name) for name in names]
        by_first: dict[str, list[str]] = {}
        for name in set(self.names):
            if name and not name[0].isspace():
                by_first.setdefault(name[0], []).append(name)
        for candidates in by_first.values():
            candidates.sort(key=len, reverse=True)
        self._by_first = by_first

    def match(self, text: str, i: int) -> str | None:
        for name in self._by_first.get(text[i], ()):
            if text.startswith(name, i) and _is_boundary(text, i + len(name)):
                return name
        return None

    def suggest(self, word: str) -> str:
        same_case = [n for n in self.names if n.lower() == word.lower()]
        close = same_case or difflib.get_close_matches(word, self.names, n=3, cutoff=0.6)
        return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def _error(text: str, detail: str) -> EquationError:
    return EquationError(f"linear constraint {text!r}: {detail}")


def _read_word(text: str, i: int) -> str:
    j = i
    while j < len(text) and not text[j].isspace() and text[j] not in _OPERATOR_CHARS:
        j += 1
    return text[i : max(j, i + 1)]


def _tokenize(text: str, matcher: _NameMatcher) -> list[_Token]:
    tokens: list[_Token] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        name = matcher.match(text, i)
        if name is not None:
            tokens.append(_Token("name", name, i))
            i += len(name)
            continue
        if ch in "<>=!":
            two = text[i : i + 2]
            if two in _COMPARISONS:
                tokens.append(_Token("cmp", two, i))
                i += 2
            elif two in ("=<", "=>"):
                raise _error(text, f"{two!r} is not a comparison operator; write {two[::-1]!r}")
            elif ch == "=":
                tokens.append(_Token("cmp", "==", i))
                i += 1
            else:
                op = two if two == "!=" else ch
                raise _error(
                    text, f"{op!r} is not a valid comparison operator; use '<=', '>=' or '=='"
                )
            continue
        if ch in "+-*":
            tokens.append(_Token("op", ch, i))
            i += 1
            continue
        number = _NUMBER.match(text, i)
        if number is not None and _is_boundary(text, number.end()):
            tokens.append(_Token("number", number.group(), i))
            i = number.end()
            continue
        word = _read_word(text, i)
        if "%" in word:
            raise _error(text, f"'%' is not supported ({word!r}); write percentages as decimals")
        if ch in "()[]{}":
            raise _error(text, "parentheses are not supported; expand the expression")
        if number is not None:
            rest = matcher.match(text, number.end())
            if rest is not None:
                raise _error(
                    text, f"missing '*' between {number.group()!r} and {rest!r}"
                )
        raise _error(text, f"unknown asset, group or factor name {word!r}{matcher.suggest(word)}")
    return tokens


def _parse_side(text: str, tokens: list[_Token], side: str) -> tuple[dict[str, float], float]:
    if not tokens:
        raise _error(text, f"the {side}-hand side is empty")
    coefficients: dict[str, float] = {}
    constant = 0.0
    i = 0
    while i < len(tokens):
        sign = 1.0
        if tokens[i].kind == "op" and tokens[i].value in "+-":
            sign = -1.0 if tokens[i].value == "-" else 1.0
            i += 1
        elif i > 0:
            raise _error(
                text, f"missing '+' or '-' between {tokens[i - 1].value!r} and {tokens[i].value!r}"
            )
        if i == len(tokens):
            raise _error(text, f"the {side}-hand side ends with {tokens[i - 1].value!r}")
        first = tokens[i]
        if first.kind not in ("name", "number"):
            raise _error(text, f"expected a number or a name, found {first.value!r}")
        i += 1
        if i < len(tokens) and tokens[i].value == "*":
            i += 1
            if i == len(tokens):
                raise _error(text, f"the {side}-hand side ends with '*'")
            second = tokens[i]
            if second.kind not in ("name", "number"):
                raise _error(text, f"expected a number or a name after '*', found {second.value!r}")
            if second.kind == first.kind:
                what = "two numbers" if first.kind == "number" else "two names (not linear)"
                raise _error(
                    text, f"{first.value!r} * {second.value!r} multiplies {what}; "
                    "a term is a number, a name, or number*name"
                )
            i += 1
            if i < len(tokens) and tokens[i].value == "*":
                raise _error(text, "a term has at most one '*' (number*name)")
            name, number = (first, second) if first.kind == "name" else (second, first)
            value = _to_float(text, number.value)
            coefficients[name.value] = coefficients.get(name.value, 0.0) + sign * value
        elif first.kind == "name":
            coefficients[first.value] = coefficients.get(first.value, 0.0) + sign
        else:
            constant += sign * _to_float(text, first.value)
    return coefficients, constant


def _to_float(text: str, number: str) -> float:
    value = float(number)
    if not np.isfinite(value):
        raise _error(text, f"number {number!r} is not finite")
    return value


def parse_equation(equation: str, names: Iterable[str]) -> Equation:
    """Parse one linear constraint string.

    Parameters
    ----------
    equation : str
        For example ``"Equity <= 0.5 * Bond"``, ``"2*SPX + 3*Europe == Bond + 0.05"``.
    names : iterable of str
        Every label that may appear (assets, groups, factors).

    Returns
    -------
    Equation
        Normalised to ``a . w <= b`` or ``a . w == b``.

    Raises
    ------
    EquationError
        A ``ValueError`` quoting the string and saying what is wrong (unknown name, missing or
        repeated comparison, ``<``/``>``, ``%``, product of two names, ...).
    """
    if not isinstance(equation, str):
        raise EquationError(f"linear constraint must be a string, got {type(equation).__name__}")
    matcher = names if isinstance(names, _NameMatcher) else _NameMatcher(names)
    tokens = _tokenize(equation, matcher)
    positions = [k for k, token in enumerate(tokens) if token.kind == "cmp"]
    if not positions:
        raise _error(equation, "no comparison operator; use '<=', '>=' or '=='")
    if len(positions) > 1:
        raise _error(
            equation,
            f"{len(positions)} comparison operators found; exactly one is allowed",
        )
    k = positions[0]
    left, left_constant = _parse_side(equation, tokens[:k], "left")
    right, right_constant = _parse_side(equation, tokens[k + 1 :], "right")
    coefficients = dict(left)
    for name, value in right.items():
        coefficients[name] = coefficients.get(name, 0.0) - value
    constant = right_constant - left_constant
    comparison = tokens[k].value
    if comparison == ">=":
        coefficients = {name: -value for name, value in coefficients.items()}
        constant, comparison = -constant, "<="
    coefficients = {name: value for name, value in coefficients.items() if value != 0.0}
    if not coefficients:
        raise _error(equation, "no asset, group or factor term is left (all terms cancel)")
    return Equation(coefficients, comparison, constant + 0.0, equation)


def _format_number(value: float) -> str:
    return repr(float(value))


def format_equation(equation: Equation) -> str:
    """Write an :class:`Equation` back as a string that :func:`parse_equation` reads.

    Numbers are written with ``repr`` so that parsing the result gives back exactly the same
    coefficients.
    """
    parts = []
    for name, value in equation.coefficients.items():
        magnitude = abs(float(value))
        term = name if magnitude == 1.0 else f"{_format_number(magnitude)}*{name}"
        parts.append(("-" if value < 0 else "+", term))
    if not parts:
        raise ValueError("an equation needs at least one name")
    lhs = ("-" if parts[0][0] == "-" else "") + parts[0][1]
    lhs += "".join(f" {sign} {term}" for sign, term in parts[1:])
    # + 0.0 turns -0.0 into 0.0: the parser reads "-0.0" back as 0.0
    return f"{lhs} {equation.comparison} {_format_number(equation.constant + 0.0)}"


def equations_to_matrix(
    equations: Iterable[str], names: Mapping[str, np.ndarray], n_assets: int
) -> LinearConstraints:
    """Parse constraint strings into ``A_eq, b_eq, A_ineq, b_ineq``.

    Parameters
    ----------
    equations : iterable of str
        Constraint strings. ``None`` entries and blank strings are skipped (empty spreadsheet
        cells).
    names : mapping of str to ndarray of shape (n_assets,)
        The vector each label stands for: an asset is a unit vector, a group its 0/1 indicator,
        a factor its loadings column (an exposure constraint).
    n_assets : int

    Returns
    -------
    LinearConstraints
    """
    matcher = _NameMatcher(names.keys())
    rows: dict[str, list] = {"==": [], "<=": []}
    for text in equations:
        if text is None or (isinstance(text, str) and not text.strip()):
            continue
        equation = parse_equation(text, matcher)
        row = np.zeros(n_assets)
        for name, value in equation.coefficients.items():
            row += value * np.asarray(names[name], dtype=float)
        rows[equation.comparison].append((row, equation.constant, text))

    def stack(items):
        if not items:
            return np.zeros((0, n_assets)), np.zeros(0), ()
        a, b, labels = zip(*items, strict=True)
        return np.vstack(a), np.array(b, dtype=float), tuple(labels)

    A_eq, b_eq, eq_labels = stack(rows["=="])
    A_ineq, b_ineq, ineq_labels = stack(rows["<="])
    return LinearConstraints(A_eq, b_eq, A_ineq, b_ineq, eq_labels, ineq_labels)
