"""CloudWatch metric-math expressions, evaluated one period at a time: the part of the language that alarms
commonly use (an error rate, a sum of two metrics, a guarded ratio).

How it models AWS, and where it differs: docs/local-cloud-internals.md#localcloudservicescloudwatchmetric_mathpy
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

Value = float | None


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
FUNCTIONS = frozenset({"FILL", "IF", "ABS"})
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
        arity = {"FILL": (2,), "IF": (2, 3), "ABS": (1,)}[name]
        if len(args) not in arity:
            raise MathError(f"{name} takes {' or '.join(map(str, arity))} arguments, not {len(args)}")
        if name == "FILL" and not _is_constant(args[1]):
            raise MathError("FILL is supported locally with a number only (not REPEAT, LINEAR or a metric)")
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


def evaluate(node: Node, values: Mapping[str, Value]) -> Value:
    """The expression's value for one period, `values` holding each referenced query's value in it (None:
    no datapoint). No datapoint in, no datapoint out (FILL turns one into a number); a division by zero, or
    a result that is not a finite number, is no datapoint either; a comparison or logical operator gives 1
    or 0; IF(c, a[, b]) is a when c is neither 0 nor missing, else b (no datapoint without b)."""
    if isinstance(node, Number):
        return node.value
    if isinstance(node, Ref):
        if node.id not in values:
            raise MathError(f"the expression reads {node.id!r}, which is no query of the alarm")
        return values[node.id]
    if isinstance(node, Unary):
        operand = evaluate(node.operand, values)
        return None if operand is None else (-operand if node.op == "-" else operand)
    if isinstance(node, Call):
        return _call(node, values)
    return _binary(node.op, evaluate(node.left, values), evaluate(node.right, values))


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


def _call(node: Call, values: Mapping[str, Value]) -> Value:
    if node.function == "FILL":
        value = evaluate(node.args[0], values)
        return value if value is not None else evaluate(node.args[1], values)
    if node.function == "ABS":
        value = evaluate(node.args[0], values)
        return None if value is None else abs(value)
    condition = evaluate(node.args[0], values)
    if condition is None:
        return None
    if condition:
        return evaluate(node.args[1], values)
    return evaluate(node.args[2], values) if len(node.args) == 3 else None
