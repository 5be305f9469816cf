"""Derived-metric formulas: validation on write, injection attempts, evaluation semantics.

A Python reference implementation of the grammar (docs/processing.md) is checked against the
PL/pgSQL compiler with hypothesis: same accept/reject decision, same values.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal, localcontext

import psycopg
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from psycopg.types.json import Jsonb

from tests.processing_support import (
    WORKED_EXAMPLE_AT,
    add_asset,
    add_asset_type,
    add_batch,
    add_device,
    add_link,
    add_readings,
    asset_rows,
    process_batch,
)

T = WORKED_EXAMPLE_AT
VARIABLES: dict[str, float | None] = {"a": 12.3, "b": -2.5, "c": 0.0, "missing": None}
FUNCTIONS = ("abs", "sqrt", "round", "least", "greatest")
HYPOTHESIS = settings(max_examples=150, deadline=None,
                      suppress_health_check=[HealthCheck.function_scoped_fixture])


# --- Python reference implementation -------------------------------------------------------

class Invalid(Exception):
    """The formula is outside the grammar."""


class OutOfRange(Exception):
    """Double precision overflow or underflow: the formula gives no value."""


TOKEN = re.compile(
    r"([ \t\n\r\v\f]*)(?:([0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?|\.[0-9]+(?:[eE][-+]?[0-9]+)?)"
    r"|([A-Za-z_][A-Za-z0-9_]*)|([-+*/(),]))"
)
SPACE = " \t\n\r\v\f"


@dataclass
class Token:
    kind: str
    text: str


def tokenize(formula: str) -> list[Token]:
    if formula.strip(SPACE) == "" or len(formula) > 2000:
        raise Invalid("empty or too long")
    tokens, pos = [], 0
    while pos < len(formula):
        m = TOKEN.match(formula, pos)
        if m is None:
            if formula[pos:].strip(SPACE) == "":
                break
            raise Invalid(f"unexpected character at {pos}")
        if m.group(2) is not None:
            tokens.append(Token("number", m.group(2)))
        elif m.group(3) is not None:
            tokens.append(Token("name", m.group(3)))
        else:
            tokens.append(Token(m.group(4), m.group(4)))
        pos = m.end()
    return tokens


def checked(value: float, *operands: float) -> float:
    if math.isinf(value) and not any(math.isinf(o) for o in operands):
        raise OutOfRange("overflow")
    if value == 0.0 and operands and all(o != 0.0 for o in operands):
        raise OutOfRange("underflow")
    return value


def pg_round(value: float, digits: int) -> float:
    with localcontext() as ctx:
        ctx.prec = 400
        # PostgreSQL casts float8 to numeric with 15 significant digits, then rounds half away
        # from zero.
        exact = Decimal(f"{value:.15g}").quantize(Decimal(1).scaleb(-digits), ROUND_HALF_UP)
    return float(exact)


class Reference:
    def __init__(self, formula: str, variables: dict[str, float | None]) -> None:
        self.tokens = tokenize(formula)
        self.variables = variables
        self.i = 0

    def evaluate(self) -> float | None:
        value = self.expr()
        if self.i != len(self.tokens):
            raise Invalid("trailing tokens")
        return value

    def peek(self) -> Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def expr(self) -> float | None:
        left = self.term()
        while (tok := self.peek()) is not None and tok.kind in "+-":
            self.i += 1
            right = self.term()
            if left is None or right is None:
                left = None
            else:
                left = checked(left + right if tok.kind == "+" else left - right)
        return left

    def term(self) -> float | None:
        left = self.unary()
        while (tok := self.peek()) is not None and tok.kind in ("*", "/"):
            self.i += 1
            right = self.unary()
            if left is None or right is None or (tok.kind == "/" and right == 0):
                left = None
            elif tok.kind == "*":
                left = checked(left * right, left, right)
            else:
                left = checked(left / right, left)
        return left

    def unary(self) -> float | None:
        tok = self.peek()
        if tok is not None and tok.kind == "-":
            self.i += 1
            value = self.unary()
            return None if value is None else -value
        return self.primary()

    def primary(self) -> float | None:
        tok = self.peek()
        if tok is None:
            raise Invalid("unexpected end")
        self.i += 1
        if tok.kind == "number":
            value = float(tok.text)
            mantissa = re.split("[eE]", tok.text)[0]
            if math.isinf(value) or (value == 0 and mantissa.strip("0.") != ""):
                raise Invalid("number out of range")
            return value
        if tok.kind == "(":
            value = self.expr()
            self.expect(")")
            return value
        if tok.kind != "name":
            raise Invalid(f"unexpected {tok.text}")
        nxt = self.peek()
        if nxt is not None and nxt.kind == "(":
            return self.call(tok.text.lower())
        if tok.text.lower() in FUNCTIONS or tok.text not in self.variables:
            raise Invalid(f"unknown name {tok.text}")
        return self.variables[tok.text]

    def expect(self, kind: str) -> None:
        tok = self.peek()
        if tok is None or tok.kind != kind:
            raise Invalid(f"expected {kind}")
        self.i += 1

    def call(self, name: str) -> float | None:
        if name not in FUNCTIONS:
            raise Invalid(f"unknown function {name}")
        self.i += 1
        args: list[float | None] = []
        digits: int | None = None
        while True:
            tok = self.peek()
            if name == "round" and len(args) == 1:
                if (tok is None or tok.kind != "number" or not re.fullmatch("[0-9]{1,2}", tok.text)
                        or int(tok.text) > 15):
                    raise Invalid("round digits")
                digits = int(tok.text)
                self.i += 1
                args.append(0.0)
            else:
                args.append(self.expr())
            tok = self.peek()
            if tok is None or tok.kind != ",":
                break
            self.i += 1
        self.expect(")")
        arity_ok = {"abs": len(args) == 1, "sqrt": len(args) == 1,
                    "round": len(args) in (1, 2)}.get(name, len(args) >= 2)
        if not arity_ok:
            raise Invalid("arity")
        x = args[0]
        if name in ("least", "greatest"):
            if any(a is None for a in args):
                return None
            return min(args) if name == "least" else max(args)  # type: ignore[type-var]
        if x is None:
            return None
        if name == "abs":
            return abs(x)
        if name == "sqrt":
            return math.sqrt(x) if x >= 0 else None
        return pg_round(x, digits or 0)


def reference(formula: str) -> float | None:
    try:
        return Reference(formula, VARIABLES).evaluate()
    except OutOfRange:
        return None


# --- helpers -------------------------------------------------------------------------------

def evaluate(conn: psycopg.Connection, formula: str) -> float | None:
    row = conn.execute("select telemetry.evaluate_formula(%s, %s)",
                       [formula, Jsonb(VARIABLES)]).fetchone()
    assert row is not None
    return row[0]


def same(expected: float | None, actual: float | None) -> bool:
    if expected is None or actual is None:
        return expected is actual
    return math.isclose(expected, actual, rel_tol=1e-12, abs_tol=1e-300)


def meter_type(formula: str, **extra: object) -> dict[str, object]:
    return {"metrics": ["a", "b"],
            "derived_metrics": [{"name": "d", "formula": formula, "unit": None, **extra}]}


# --- validation on write -------------------------------------------------------------------

@pytest.mark.parametrize(("formula", "offending"), [
    ("1; drop table x", '";"'),
    ("pg_sleep(1)", '"pg_sleep"'),
    ("a' || 'b", "\"'\""),
    ('"a"', '"""'),
    ("a /* comment */", '"*"'),
    ("a -- comment", '"comment"'),
    ("x", '"x"'),
    ("select", '"select"'),
    ("a::text", '":"'),
    ("version()", '"version"'),
    ("$1", '"$"'),
    ("a)", '")"'),
])
def test_asset_type_with_injection_attempt_is_rejected_naming_the_token(
    conn: psycopg.Connection, formula: str, offending: str
) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue) as info:
        add_asset_type(conn, "meter", meter_type(formula))
    message = str(info.value)
    assert 'asset type meter: derived metric "d"' in message
    assert offending in message
    assert conn.execute("select count(*) from telemetry.asset_types"
                        " where asset_type_key = 'meter'").fetchone() == (0,)


def test_update_to_an_invalid_formula_is_rejected(conn: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue, match='unknown function "exp"'):
        conn.execute(
            "update telemetry.asset_types set telemetry_schema = jsonb_set(telemetry_schema,"
            " '{derived_metrics,0,formula}', '\"exp(power_input)\"') where asset_type_key = 'pump'"
        )


def test_seeded_pump_type_passes_validation(conn: psycopg.Connection) -> None:
    conn.execute("update telemetry.asset_types set telemetry_schema = telemetry_schema"
                 " where asset_type_key = 'pump'")
    row = conn.execute("select telemetry_schema from telemetry.asset_types"
                       " where asset_type_key = 'pump'").fetchone()
    assert row is not None
    assert row[0]["derived_metrics"] == [
        {"name": "power_consumption", "formula": "power_input * power_current", "unit": "W"}]


@pytest.mark.parametrize(("schema", "message"), [
    ({"derived_metrics": {"name": "d"}}, "must be an array"),
    ({"derived_metrics": [{"name": "d"}]}, "must be an object"),
    ({"derived_metrics": [{"name": "d", "formula": "1", "sql": "x"}]}, "must be an object"),
    ({"derived_metrics": [{"name": "sqrt", "formula": "1"}]}, 'name "sqrt" is not allowed'),
    ({"derived_metrics": [{"name": "d x", "formula": "1"}]}, 'name "d x" is not allowed'),
    ({"metrics": ["a"], "derived_metrics": [{"name": "a", "formula": "1"}]}, "shadows"),
    ({"metrics": "a"}, "metrics must be an array"),
])
def test_malformed_telemetry_schema_is_rejected(
    conn: psycopg.Connection, schema: dict[str, object], message: str
) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=message):
        add_asset_type(conn, "meter", schema)


def test_derived_metric_may_use_earlier_but_not_later_derived_metrics(
    conn: psycopg.Connection,
) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue, match='unknown metric "d2"'):
        add_asset_type(conn, "bad", {"metrics": ["a"], "derived_metrics": [
            {"name": "d1", "formula": "d2 + 1"}, {"name": "d2", "formula": "a"}]})
    add_asset_type(conn, "meter", {"metrics": ["a", "b"], "derived_metrics": [
        {"name": "double_a", "formula": "a * 2"},
        {"name": "total", "formula": "double_a + b", "unit": "W"}]})
    device = add_device(conn, "meter-dev")
    add_link(conn, device, add_asset(conn, "meter-1", asset_type="meter"))
    batch = add_batch(conn)
    add_readings(conn, batch, device, T, {"a": 1.5, "b": 10.0})
    process_batch(conn, batch)
    assert {(r[2], r[4]) for r in asset_rows(conn)} == {
        ("a", 1.5), ("b", 10.0), ("double_a", 3.0), ("total", 13.0)}


def test_missing_input_division_by_zero_or_overflow_yields_no_derived_value(
    conn: psycopg.Connection,
) -> None:
    add_asset_type(conn, "meter", meter_type("a / b + sqrt(b - 20)"))
    device = add_device(conn, "meter-dev")
    add_link(conn, device, add_asset(conn, "meter-1", asset_type="meter"))
    batch = add_batch(conn)
    add_readings(conn, batch, device, T, {"a": 1.0, "b": 0.0})                  # a / 0
    add_readings(conn, batch, device, T + timedelta(seconds=1), {"a": 1.0})     # b missing
    add_readings(conn, batch, device, T + timedelta(seconds=2), {"a": 1.0, "b": 4.0})  # sqrt(-16)
    add_readings(conn, batch, device, T + timedelta(seconds=3), {"a": 8.0, "b": 24.0})
    add_readings(conn, batch, device, T + timedelta(seconds=4), {"a": 1e300, "b": 1e-300})
    process_batch(conn, batch)
    derived = {(r[0], r[4]) for r in asset_rows(conn) if r[2] == "d"}
    assert derived == {(T + timedelta(seconds=3), 8.0 / 24.0 + 2.0)}


# --- evaluation semantics ------------------------------------------------------------------

@pytest.mark.parametrize(("formula", "expected"), [
    ("a * 2 + -b", 12.3 * 2 + 2.5),
    ("a / c", None),
    ("sqrt(b)", None),
    ("least(a, missing)", None),
    ("greatest(a, b, 100)", 100.0),
    ("round(2.675, 2)", 2.68),
    ("round(-2.5)", -3.0),
    ("abs(b) * (1 + 1) / 4", 1.25),
    ("1.5e2 - .5", 149.5),
    ("1e200 * 1e200 + a", None),      # overflow: no value, no error
    ("1e-200 * 1e-200", None),        # underflow
    ("a - a", 0.0),
])
def test_formula_semantics(conn: psycopg.Connection, formula: str,
                           expected: float | None) -> None:
    assert same(expected, evaluate(conn, formula))
    assert same(expected, reference(formula))


# --- property-based: PL/pgSQL compiler vs the Python reference ------------------------------

NUMBERS = st.one_of(
    st.integers(0, 1000).map(str),
    st.decimals(min_value=0, max_value=1000, places=3).map(lambda d: format(d, "f")),
    st.sampled_from([".5", "1e3", "2.5E-2", "0", "7.", "1e200", "3e-200"]),
)
LEAVES = st.one_of(st.sampled_from(sorted(VARIABLES)), NUMBERS)


def _extend(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(children, st.sampled_from(["+", "-", "*", "/"]), children).map(
            lambda t: f"{t[0]} {t[1]} {t[2]}"),
        st.tuples(children, st.sampled_from(["+", "-", "*", "/"]), children).map(
            lambda t: f"({t[0]}){t[1]}({t[2]})"),
        children.map(lambda c: f"-{c}"),
        st.tuples(st.sampled_from(["abs", "sqrt", "ABS", "Sqrt"]), children).map(
            lambda t: f"{t[0]}({t[1]})"),
        st.tuples(children, st.integers(0, 15)).map(lambda t: f"round({t[0]}, {t[1]})"),
        children.map(lambda c: f"round( {c} )"),
        st.tuples(st.sampled_from(["least", "greatest"]),
                  st.lists(children, min_size=2, max_size=3)).map(
            lambda t: f"{t[0]}({', '.join(t[1])})"),
    )


VALID_FORMULAS = st.recursive(LEAVES, _extend, max_leaves=8)

FRAGMENTS = st.sampled_from([
    "a", "b", "c", "missing", "x", "1", "2.5", "0", ".", "e", "e5", "(", ")", ",", "+", "-", "*",
    "/", " ", "\t", "abs", "sqrt", "round", "least", "greatest", "pg_sleep", "select", ";",
    "'", "--", "::", "1e", "_", "$",
])
RANDOM_STRINGS = st.lists(FRAGMENTS, max_size=12).map("".join)
FORBIDDEN = ";'\"$:\\[]{}#@!%^&|<>=?`~"
# Text PostgreSQL can receive: no NUL, no lone surrogates (not encodable as UTF-8).
SENDABLE_CHARACTERS = st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",))


@HYPOTHESIS
@given(formula=VALID_FORMULAS)
def test_valid_formulas_evaluate_like_the_reference(
    conn: psycopg.Connection, formula: str
) -> None:
    assert same(reference(formula), evaluate(conn, formula)), formula


@HYPOTHESIS
@given(formula=RANDOM_STRINGS)
def test_random_strings_are_accepted_exactly_when_the_grammar_accepts_them(
    conn: psycopg.Connection, formula: str
) -> None:
    try:
        expected = reference(formula)
    except Invalid:
        event("rejected")
        with pytest.raises(psycopg.errors.InvalidParameterValue):
            evaluate(conn, formula)
        return
    event("accepted")
    assert same(expected, evaluate(conn, formula)), formula


@HYPOTHESIS
@given(prefix=st.text(alphabet="ab+-*/() 12", max_size=8),
       bad=st.sampled_from(FORBIDDEN),
       suffix=st.text(SENDABLE_CHARACTERS, max_size=8))
def test_strings_with_a_character_outside_the_grammar_are_rejected(
    conn: psycopg.Connection, prefix: str, bad: str, suffix: str
) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        evaluate(conn, prefix + bad + suffix)


# --- size: linear SQL, bounded formulas ------------------------------------------------------

SHORT_REFS = {name: name for name in VARIABLES}


def compiled(conn: psycopg.Connection, formula: str) -> str:
    row = conn.execute("select _tsfleet.compile_formula(%s, %s)",
                       [formula, Jsonb(SHORT_REFS)]).fetchone()
    assert row is not None
    return row[0]


WRAPPERS = ["sqrt({})", "abs({})", "round({}, 2)", "least({}, 1)", "greatest(a, {}, 2)",
            "-({})", "({}) / 2", "1 + ({})"]


@HYPOTHESIS
@given(formula=VALID_FORMULAS, wrapper=st.sampled_from(WRAPPERS))
def test_compiled_sql_grows_linearly_with_the_formula(
    conn: psycopg.Connection, formula: str, wrapper: str
) -> None:
    """Wrapping any formula in a function or operator adds the same SQL, however large the
    formula is: no argument is copied (a copied argument doubles per nesting level)."""
    inner = compiled(conn, formula)
    overhead = len(compiled(conn, wrapper.format("a"))) - len(compiled(conn, "a"))
    assert len(compiled(conn, wrapper.format(formula))) - len(inner) == overhead, formula
    assert len(inner) <= 40 * len(formula)


@pytest.mark.parametrize("function", ["sqrt", "abs", "least", "greatest"])
def test_twenty_nested_calls_compile_to_small_sql_and_evaluate(
    conn: psycopg.Connection, function: str
) -> None:
    formula = "a"
    for _ in range(20):
        formula = f"{function}({formula}, 7)" if function in ("least", "greatest") else (
            f"{function}({formula})")
    assert len(formula) < 300
    assert len(compiled(conn, formula)) < 40 * len(formula)
    assert same(reference(formula), evaluate(conn, formula)), formula


@pytest.mark.parametrize(("formula", "message"), [
    ("(" * 101 + "a" + ")" * 101, "nested more than 100 levels deep"),
    ("sqrt(" * 101 + "a" + ")" * 101, "nested more than 100 levels deep"),
    ("-" * 101 + "a", "nested more than 100 levels deep"),
    ("a" + " + a" * 600, "longer than 2000 characters"),
])
def test_formulas_beyond_the_size_and_depth_bounds_are_rejected_clearly(
    conn: psycopg.Connection, formula: str, message: str
) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=message):
        evaluate(conn, formula)


def test_a_hundred_levels_deep_is_still_allowed(conn: psycopg.Connection) -> None:
    assert evaluate(conn, "(" * 99 + "sqrt(a)" + ")" * 99) == pytest.approx(math.sqrt(12.3))


def test_more_than_a_hundred_derived_metrics_are_rejected(conn: psycopg.Connection) -> None:
    schema = {"metrics": ["a"], "derived_metrics": [
        {"name": f"d{n}", "formula": "a"} for n in range(101)]}
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="at most 100"):
        add_asset_type(conn, "meter", schema)


def chain_type(length: int) -> dict[str, object]:
    """d1 = a + a, d2 = d1 + d1, ...: every step uses the previous one twice."""
    derived = [{"name": "d1", "formula": "a + a", "unit": None}]
    derived += [{"name": f"d{n}", "formula": f"d{n - 1} + d{n - 1}", "unit": None}
                for n in range(2, length + 1)]
    return {"metrics": ["a"], "derived_metrics": derived}


def test_a_chain_of_twenty_derived_metrics_computes_each_step_once(
    conn: psycopg.Connection,
) -> None:
    lengths = {}
    for length in (10, 20):
        type_id = add_asset_type(conn, f"chain{length}", chain_type(length))
        row = conn.execute("select length(_tsfleet.derived_steps_sql(%s, %s))",
                           [type_id, Jsonb({"a": "s.m1"})]).fetchone()
        assert row is not None
        lengths[length] = row[0]
    # Twice the steps, about twice the SQL (inlined, each step doubled it: 2 ** 10 times).
    assert lengths[20] <= 2.2 * lengths[10]
    assert lengths[20] < 3000
    add_asset_type(conn, "chain", chain_type(20))
    device = add_device(conn, "chain-dev")
    add_link(conn, device, add_asset(conn, "chain-1", asset_type="chain"))
    batch = add_batch(conn)
    add_readings(conn, batch, device, T, {"a": 1.5})
    process_batch(conn, batch)
    values = {r[2]: r[4] for r in asset_rows(conn)}
    assert values["d20"] == 1.5 * 2 ** 20
    assert values["d7"] == 1.5 * 2 ** 7
    assert len(values) == 21


def test_health_score_reads_a_derived_chain_once_per_step(conn: psycopg.Connection) -> None:
    type_id = add_asset_type(conn, "chain", chain_type(20))
    conn.execute("insert into telemetry.health_rules (asset_type_id, rule_group, tier,"
                 " metric_name, comparison, threshold, penalty)"
                 " values (%s, 'size', 1, 'd20', '>', 1000, 30)", [type_id])
    score = conn.execute("select telemetry.health_score('chain', %s)",
                         [Jsonb({"a": 1.0})]).fetchone()
    assert score == (70.0,)  # d20 = 2 ** 20 > 1000
    score = conn.execute("select telemetry.health_score('chain', %s)",
                         [Jsonb({"a": 0.0001})]).fetchone()
    assert score == (100.0,)
