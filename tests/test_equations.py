"""Linear-constraint string parser: examples, round trip, semantics and rejection (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from xl_factorlasso.core.optimization import (
    Equation,
    EquationError,
    equations_to_matrix,
    format_equation,
    parse_equation,
)

# Labels chosen to stress the tokenizer: operators and spaces inside names, prefixes of one
# another, a leading digit.
NAMES = ["Equity", "Bond", "US", "Europe", "a", "b", "a-b", "S&P 500", "S&P", "x_1", "Fund.A",
         "3M", "x*y", "Japan"]
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def parsed(text):
    e = parse_equation(text, NAMES)
    return e.coefficients, e.comparison, e.constant


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Equity <= 0.3", ({"Equity": 1.0}, "<=", 0.3)),
        ("0.3 >= Equity", ({"Equity": 1.0}, "<=", 0.3)),
        ("Equity*2 <= 0.3", ({"Equity": 2.0}, "<=", 0.3)),
        ("-Equity >= -0.3", ({"Equity": 1.0}, "<=", 0.3)),
        ("Equity = 0.4", ({"Equity": 1.0}, "==", 0.4)),
        ("Bond >= 2 * Equity", ({"Bond": -1.0, "Equity": 2.0}, "<=", 0.0)),
        ("3*a + 5*b == 2*S&P 500 + 3", ({"a": 3.0, "b": 5.0, "S&P 500": -2.0}, "==", 3.0)),
        ("a <= 1e-3", ({"a": 1.0}, "<=", 0.001)),
        ("Equity <= .3", ({"Equity": 1.0}, "<=", 0.3)),
        ("a-b <= 1", ({"a-b": 1.0}, "<=", 1.0)),  # the label, longest match
        ("a - b <= 1", ({"a": 1.0, "b": -1.0}, "<=", 1.0)),  # a subtraction
        ("S&P<=2", ({"S&P": 1.0}, "<=", 2.0)),
        ("2*x*y <= 1", ({"x*y": 2.0}, "<=", 1.0)),
        ("3M >= 0.1", ({"3M": -1.0}, "<=", -0.1)),
        ("Equity + Equity <= 1 + Bond - Bond*0.5", ({"Equity": 2.0, "Bond": -0.5}, "<=", 1.0)),
        ("US == Europe", ({"US": 1.0, "Europe": -1.0}, "==", 0.0)),
    ],
)
def test_examples(text, expected):
    coefficients, comparison, constant = parsed(text)
    assert coefficients == pytest.approx(expected[0])
    assert set(coefficients) == set(expected[0])
    assert comparison == expected[1]
    assert constant == pytest.approx(expected[2])


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("Equity > 0.3", "'>' is not a valid comparison operator"),
        ("Equity < 0.3", "'<' is not a valid comparison operator"),
        ("Equity != 0.3", "'!=' is not a valid comparison operator"),
        ("Equity =< 0.3", "write '<='"),
        ("Equity 0.3", "no comparison operator"),
        ("Equity <= 0.3 <= 0.5", "2 comparison operators"),
        ("Equity ==", "right-hand side is empty"),
        ("<= 1", "left-hand side is empty"),
        ("Equity <= 2*Foo", "unknown asset, group or factor name 'Foo'"),
        ("Foo <= 0.3", "unknown asset, group or factor name 'Foo'"),
        ("equity <= 0.3", "did you mean 'Equity'"),
        ("Equity <= 2*Bond*US", "at most one '*'"),
        ("2 * 3 <= Equity", "multiplies two numbers"),
        ("Equity*Bond <= 1", "multiplies two names"),
        ("Equity <= 30%", "'%' is not supported"),
        ("2Equity <= 1", "missing '*' between '2' and 'Equity'"),
        ("Equity Bond <= 1", "missing '+' or '-' between 'Equity' and 'Bond'"),
        ("Equity + - Bond <= 1", "expected a number or a name, found '-'"),
        ("Equity + <= 1", "left-hand side ends with '+'"),
        ("(Equity) <= 1", "parentheses are not supported"),
        ("Equity - Equity <= 1", "all terms cancel"),
        ("Equity <= 1e999", "not finite"),
    ],
)
def test_rejections_name_the_problem(text, fragment):
    with pytest.raises(EquationError) as info:
        parse_equation(text, NAMES)
    message = str(info.value)
    assert fragment in message
    assert repr(text) in message  # the message quotes the whole constraint
    assert isinstance(info.value, ValueError)


def test_non_string_rejected():
    with pytest.raises(EquationError, match="must be a string"):
        parse_equation(3.0, NAMES)


# ---------------------------------------------------------------- hypothesis: round trip

coefficient = st.floats(min_value=1e-6, max_value=1e6, allow_nan=False).flatmap(
    lambda v: st.sampled_from([v, -v, 1.0, -1.0])
)
constant = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_subnormal=False)
equations = st.builds(
    Equation,
    coefficients=st.dictionaries(st.sampled_from(NAMES), coefficient, min_size=1, max_size=5),
    comparison=st.sampled_from(["<=", "=="]),
    constant=constant,
)


@SETTINGS
@given(equations)
@example(Equation(coefficients={"Equity": 1.0}, comparison="<=", constant=-0.0))
def test_round_trip_format_then_parse(equation):
    text = format_equation(equation)
    again = parse_equation(text, NAMES)
    assert again == equation  # exact: numbers are written with repr
    assert format_equation(again) == text


# ------------------------------------------------- hypothesis: semantics of random strings


@st.composite
def rendered_side(draw):
    """Terms [(coef, name or None)] and one way of writing them."""
    n_terms = draw(st.integers(1, 4))
    terms, parts = [], []
    for k in range(n_terms):
        name = draw(st.one_of(st.none(), st.sampled_from(NAMES)))
        value = draw(st.sampled_from([1.0, 2.0, 0.5, 3.25, 1e-3, 1.5e2, 7.0]))
        negative = draw(st.booleans())
        style = draw(st.sampled_from(["plain", "left", "right", "int"]))
        number = {"plain": repr(value), "left": repr(value), "right": repr(value),
                  "int": repr(value)}[style]
        if style == "int" and value == int(value):
            number = str(int(value))
        if name is None:
            body = number
        elif value == 1.0 and style == "plain":
            body = name
        elif style == "right":
            body = f"{name}{draw(st.sampled_from(['*', ' * ']))}{number}"
        else:
            body = f"{number}{draw(st.sampled_from(['*', ' * ', '* ']))}{name}"
        space = draw(st.sampled_from(["", " ", "  "]))
        if k == 0:
            sign = "-" if negative else draw(st.sampled_from(["", "+"]))
        else:
            sign = "-" if negative else "+"
        parts.append(f"{space}{sign}{space}{body}" if k else f"{sign}{space}{body}")
        terms.append((-value if negative else value, name))
    return terms, " ".join(parts)


def evaluate(terms, w):
    return sum(c * (w[name] if name else 1.0) for c, name in terms)


@SETTINGS
@given(rendered_side(), rendered_side(), st.sampled_from(["<=", ">=", "==", "="]),
       st.integers(0, 2**31 - 1))
def test_parse_matches_direct_evaluation(left, right, op, seed):
    (lterms, ltext), (rterms, rtext) = left, right
    text = f"{ltext} {op} {rtext}"
    totals = {}
    for c, name in lterms:
        if name:
            totals[name] = totals.get(name, 0.0) + c
    for c, name in rterms:
        if name:
            totals[name] = totals.get(name, 0.0) - c
    if all(abs(v) < 1e-12 for v in totals.values()):
        with pytest.raises(EquationError, match="cancel|no asset"):
            parse_equation(text, NAMES)
        return
    eq = parse_equation(text, NAMES)
    rng = np.random.default_rng(seed)
    for _ in range(3):
        w = dict(zip(NAMES, rng.normal(size=len(NAMES)), strict=True))
        got = sum(c * w[name] for name, c in eq.coefficients.items()) - eq.constant
        want = evaluate(lterms, w) - evaluate(rterms, w)
        if op == ">=":
            want = -want
        scale = 1.0 + sum(abs(c) * (abs(w[n]) if n else 1.0) for c, n in lterms + rterms)
        assert got == pytest.approx(want, abs=1e-9 * scale)
    assert eq.comparison == ("==" if op in ("==", "=") else "<=")


# ------------------------------------------------------- hypothesis: malformed strings

MUTATIONS = {
    "drop_comparison": (lambda s, op: s.replace(op, " + ", 1), "no comparison operator"),
    "double_comparison": (lambda s, op: f"{s} {op} 1", "comparison operators found"),
    "strict_comparison": (lambda s, op: s.replace(op, op[0] if op[0] in "<>" else "<", 1),
                          "is not a valid comparison operator"),
    "unknown_name": (lambda s, op: s.replace(op, f"+ Zqx {op}", 1), "'Zqx'"),
    "trailing_plus": (lambda s, op: s + " +", "ends with '+'"),
    "percent": (lambda s, op: s + " + 5%", "'%' is not supported"),
    "name_product": (lambda s, op: s.replace(op, f"+ Bond*US {op}", 1), "multiplies two names"),
}


@SETTINGS
@given(rendered_side(), rendered_side(), st.sampled_from(["<=", ">=", "=="]),
       st.sampled_from(sorted(MUTATIONS)))
def test_malformed_strings_rejected_with_message(left, right, op, mutation):
    text = f"{left[1]} {op} {right[1]}"
    mutate, fragment = MUTATIONS[mutation]
    bad = mutate(text, op)
    with pytest.raises(EquationError) as info:
        parse_equation(bad, NAMES)
    assert fragment in str(info.value)
    assert repr(bad) in str(info.value)


@SETTINGS
@given(st.text(alphabet="EquityBondUS 0123456789.+-*<>=%()eab&", max_size=30))
def test_arbitrary_text_parses_or_raises_equation_error(text):
    try:
        eq = parse_equation(text, NAMES)
    except EquationError as err:
        assert repr(text) in str(err) or "must be a string" in str(err)
        return
    assume(eq.coefficients)
    assert eq.comparison in ("<=", "==")
    assert all(name in NAMES for name in eq.coefficients)
    assert np.isfinite(eq.constant)


# ------------------------------------------------------------------ matrix assembly


def test_equations_to_matrix_rows_and_labels():
    names = {
        "A": np.array([1.0, 0, 0]),
        "B": np.array([0, 1.0, 0]),
        "C": np.array([0, 0, 1.0]),
        "Equity": np.array([1.0, 1.0, 0]),
        "Mkt": np.array([0.9, 1.1, 0.2]),  # a factor: loadings column
    }
    equations = ["Equity <= 0.6", None, "  ", "C >= 0.5 * A", "Mkt == 1", "A + B = C"]
    out = equations_to_matrix(equations, names, 3)
    np.testing.assert_allclose(out.A_ineq, [[1, 1, 0], [0.5, 0, -1]])
    np.testing.assert_allclose(out.b_ineq, [0.6, 0.0])
    np.testing.assert_allclose(out.A_eq, [[0.9, 1.1, 0.2], [1, 1, -1]])
    np.testing.assert_allclose(out.b_eq, [1.0, 0.0])
    assert out.inequality_labels == ("Equity <= 0.6", "C >= 0.5 * A")
    assert out.equality_labels == ("Mkt == 1", "A + B = C")


def test_equations_to_matrix_empty():
    out = equations_to_matrix([], {"A": np.ones(2)}, 2)
    assert out.A_eq.shape == (0, 2) and out.A_ineq.shape == (0, 2)
