"""CloudWatch metric-math expressions, evaluated one period at a time: the part of the language that alarms
and the project's dashboard use (an error rate, a sum of two metrics, a guarded ratio, a rate per second with
PERIOD). `evaluate_series` runs the expressions of a GetMetricData request over its metrics' datapoints, as
CloudWatch does for the request's expression queries.

How it models AWS, and where it differs: docs/local-cloud-internals.md#localcloudservicescloudwatchmetric_mathpy
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import TypeVar

Value = float | None
Moment = TypeVar("Moment", bound=Hashable)


class MathError(ValueError):
    """An expression this module cannot evaluate: a syntax error, or a function it does not model."""


@dataclass(frozen=True)
class Number:
    value: float


@dataclass(frozen=True)
class Ref:
    """Another query of the alarm (a metric or an expression), by its Id."""

    id: str


@dataclass(frozen=True)
class Unary:
    op: str
    operand: Node


@dataclass(frozen=True)
class Binary:
    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Call:
    function: str
    args: tuple[Node, ...]


Node = Number | Ref | Unary | Binary | Call

# Lowest precedence first, as CloudWatch documents its operators.
_LOGICAL = {"OR": "OR", "||": "OR", "AND": "AND", "&&": "AND"}
_COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
}
_ARITHMETIC: dict[str, Callable[[float, float], float]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
}
FUNCTIONS = frozenset({"FILL", "IF", "ABS", "PERIOD"})
_TOKEN = re.compile(
    r"\s*(?:(?P<number>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>&&|\|\||==|!=|<=|>=|[-+*/^()<>,]))"
)
# CloudWatch query ids: a lowercase letter, then letters, digits and underscores.
ID = re.compile(r"^[a-z][A-Za-z0-9_]*$")


def _tokens(expression: str) -> list[str]:
    tokens: list[str] = []
    position = 0
    stripped = expression.rstrip()
    while position < len(stripped):
        match = _TOKEN.match(stripped, position)
        if match is None or match.end() == position:
            raise MathError(f"cannot read {stripped[position:]!r} in {expression!r}")
        tokens.append(match.group(match.lastgroup or "op"))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, expression: str) -> None:
        self.expression = expression
        self.tokens = _tokens(expression)
        self.position = 0

    def peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise MathError(
                f"expected {expected or 'more'} in {self.expression!r}, found {token or 'the end'}"
            )
        self.position += 1
        return token

    def parse(self) -> Node:
        node = self.logical()
        if self.peek() is not None:
            raise MathError(f"unexpected {self.peek()!r} in {self.expression!r}")
        return node

    def logical(self) -> Node:
        node = self.comparison()
        while (token := self.peek()) is not None and token.upper() in _LOGICAL:
            self.take()
            node = Binary(_LOGICAL[token.upper()], node, self.comparison())
        return node

    def comparison(self) -> Node:
        node = self.additive()
        if (token := self.peek()) in _COMPARISONS:
            self.take()
            node = Binary(str(token), node, self.additive())
        return node

    def additive(self) -> Node:
        node = self.multiplicative()
        while (token := self.peek()) in ("+", "-"):
            self.take()
            node = Binary(str(token), node, self.multiplicative())
        return node

    def multiplicative(self) -> Node:
        node = self.unary()
        while (token := self.peek()) in ("*", "/"):
            self.take()
            node = Binary(str(token), node, self.unary())
        return node

    def unary(self) -> Node:
        if self.peek() in ("-", "+"):
            op = self.take()
            return Unary(op, self.unary())
        return self.power()

    def power(self) -> Node:
        node = self.atom()
        if self.peek() == "^":
            self.take()
            node = Binary("^", node, self.unary())
        return node

    def atom(self) -> Node:
        text = self.take()
        if text == "(":
            node = self.logical()
            self.take(")")
            return node
        if text[0].isdigit() or text[0] == ".":
            return Number(float(text))
        if self.peek() == "(":
            return self.call(text)
        if text in ("REPEAT", "LINEAR"):
            raise MathError("FILL is supported locally with a number only (not REPEAT or LINEAR)")
        if not ID.match(text):
            raise MathError(f"{text!r} in {self.expression!r} is not a query id (they start in lowercase)")
        return Ref(text)

    def call(self, name: str) -> Node:
        if name not in FUNCTIONS:
            raise MathError(
                f"function {name} is not supported locally (supported: {', '.join(sorted(FUNCTIONS))})"
            )
        self.take("(")
        args: list[Node] = []
        if self.peek() != ")":
            args.append(self.logical())
            while self.peek() == ",":
                self.take()
                args.append(self.logical())
        self.take(")")
        arity = {"FILL": (2,), "IF": (2, 3), "ABS": (1,), "PERIOD": (1,)}[name]
        if len(args) not in arity:
            raise MathError(f"{name} takes {' or '.join(map(str, arity))} arguments, not {len(args)}")
        if name == "FILL" and not _is_constant(args[1]):
            raise MathError("FILL is supported locally with a number only (not REPEAT, LINEAR or a metric)")
        if name == "PERIOD" and not isinstance(args[0], Ref):
            # CloudWatch: "valid input is metrics, not the results of other expressions"; a query id here.
            raise MathError("PERIOD takes a query id (PERIOD(m1)), not an expression")
        return Call(name, tuple(args))


def _is_constant(node: Node) -> bool:
    if isinstance(node, Number):
        return True
    return isinstance(node, Unary) and _is_constant(node.operand)


def parse(expression: str) -> Node:
    """The expression's syntax tree; MathError for anything this module does not evaluate."""
    return _Parser(expression).parse()


def references(node: Node) -> set[str]:
    """The query ids an expression reads."""
    if isinstance(node, Ref):
        return {node.id}
    if isinstance(node, Unary):
        return references(node.operand)
    if isinstance(node, Binary):
        return references(node.left) | references(node.right)
    if isinstance(node, Call):
        return set().union(*(references(arg) for arg in node.args))
    return set()


def evaluate(node: Node, values: Mapping[str, Value], *, periods: Mapping[str, float] | None = None) -> Value:
    """The expression's value for one period, `values` holding each referenced query's value in it (None:
    no datapoint). No datapoint in, no datapoint out (FILL turns one into a number); a division by zero, or
    a result that is not a finite number, is no datapoint either; a comparison or logical operator gives 1
    or 0; IF(c, a[, b]) is a when c is neither 0 nor missing, else b (no datapoint without b). PERIOD(m) is
    m's period in seconds, from `periods` (query id -> seconds), whether or not m has a datapoint."""
    if isinstance(node, Number):
        return node.value
    if isinstance(node, Ref):
        if node.id not in values:
            raise MathError(f"the expression reads {node.id!r}, which is no query of the alarm")
        return values[node.id]
    if isinstance(node, Unary):
        operand = evaluate(node.operand, values, periods=periods)
        return None if operand is None else (-operand if node.op == "-" else operand)
    if isinstance(node, Call):
        return _call(node, values, periods)
    return _binary(
        node.op, evaluate(node.left, values, periods=periods), evaluate(node.right, values, periods=periods)
    )


def _binary(op: str, left: Value, right: Value) -> Value:
    if left is None or right is None:
        return None
    if op in _COMPARISONS:
        return 1.0 if _COMPARISONS[op](left, right) else 0.0
    if op in ("AND", "OR"):
        return 1.0 if (left and right if op == "AND" else left or right) else 0.0
    try:
        if op == "/":
            result = left / right
        elif op == "^":
            result = float(left**right)
        else:
            result = _ARITHMETIC[op](left, right)
    except (ZeroDivisionError, OverflowError, ValueError, TypeError):
        return None
    return result if isinstance(result, float | int) and math.isfinite(result) else None


def _call(node: Call, values: Mapping[str, Value], periods: Mapping[str, float] | None) -> Value:
    def arg(index: int) -> Value:
        return evaluate(node.args[index], values, periods=periods)

    if node.function == "PERIOD":
        query = node.args[0]
        assert isinstance(query, Ref)  # parse() allows nothing else
        if periods is None or query.id not in periods:
            raise MathError(f"PERIOD({query.id}) needs the period of query {query.id!r}, which was not given")
        return float(periods[query.id])
    if node.function == "FILL":
        value = arg(0)
        return value if value is not None else arg(1)
    if node.function == "ABS":
        value = arg(0)
        return None if value is None else abs(value)
    condition = arg(0)
    if condition is None:
        return None
    if condition:
        return arg(1)
    return arg(2) if len(node.args) == 3 else None


def evaluate_series(
    expressions: Mapping[str, Node],
    series: Mapping[str, Mapping[Moment, float]],
    periods: Mapping[str, float],
) -> dict[str, dict[Moment, float]]:
    """The expression queries of one GetMetricData request, from its metric queries' datapoints: `series`
    maps each metric query's id to its {timestamp: value}, `periods` each metric query's period (seconds).

    An expression is evaluated at every timestamp at which a metric it reads (directly or through another
    expression) has a datapoint, the others' values there being missing (so `FILL(errors, 0)` is 0 where
    only invocations were counted); it has a datapoint wherever the result is a number. An expression may
    read another expression, not itself (MathError names the cycle), nor an id that is no query."""
    results: dict[str, dict[Moment, float]] = {}

    def metric_ids(query_id: str, visiting: tuple[str, ...]) -> set[str]:
        if query_id in series:
            return {query_id}
        if query_id not in expressions:
            raise MathError(f"the expression reads {query_id!r}, which is no query of the request")
        if query_id in visiting:
            raise MathError(f"query {query_id} depends on itself ({' -> '.join((*visiting, query_id))})")
        found: set[str] = set()
        for ref in sorted(references(expressions[query_id])):
            found |= metric_ids(ref, (*visiting, query_id))
        return found

    def resolve(query_id: str) -> Mapping[Moment, float]:
        if query_id in series:
            return series[query_id]
        if query_id not in results:
            reads = metric_ids(query_id, ())
            inputs = {ref: resolve(ref) for ref in references(expressions[query_id])}
            moments = {moment for metric in reads for moment in series[metric]}
            computed: dict[Moment, float] = {}
            for moment in sorted(moments, key=_sort_key):
                value = evaluate(
                    expressions[query_id],
                    {ref: points.get(moment) for ref, points in inputs.items()},
                    periods=periods,
                )
                if value is not None:
                    computed[moment] = value
            results[query_id] = computed
        return results[query_id]

    for query_id in expressions:
        resolve(query_id)
    return results


def _sort_key(moment: Hashable) -> tuple[str, Hashable]:
    # Timestamps of one kind sort among themselves; the type name keeps a mixed set from failing to sort.
    return (type(moment).__name__, moment)
