"""Metric-math expressions, one period at a time: arithmetic, missing data, FILL, IF, and what is refused."""

from __future__ import annotations

import pytest

from localcloud.services.cloudwatch.metric_math import MathError, evaluate, parse, references


def value(expression: str, **values: float | None) -> float | None:
    return evaluate(parse(expression), values)


def test_an_error_rate() -> None:
    assert value("100 * FILL(errors, 0) / invocations", errors=3.0, invocations=12.0) == 25.0
    # No Errors datapoint (FILL makes it 0), no Invocations datapoint (no result: not breaching).
    assert value("100 * FILL(errors, 0) / invocations", errors=None, invocations=4.0) == 0.0
    assert value("100 * FILL(errors, 0) / invocations", errors=None, invocations=None) is None


def test_precedence_and_associativity() -> None:
    assert value("1 + 2 * 3 - 4 / 2") == 5.0
    assert value("(1 + 2) * 3") == 9.0
    assert value("-2 ^ 2") == -4.0
    assert value("2 ^ 3 ^ 2") == 512.0
    assert value("10 - 4 - 3") == 3.0
    assert value("1.5e2 + .5") == 150.5


def test_missing_and_impossible_values_give_no_datapoint() -> None:
    assert value("m1 + 1", m1=None) is None
    assert value("m1 / m2", m1=1.0, m2=0.0) is None
    assert value("m1 ^ 0.5", m1=-1.0) is None


def test_comparisons_logic_and_if() -> None:
    assert value("m1 > 2", m1=3.0) == 1.0
    assert value("m1 <= 2 || m1 == 3", m1=3.0) == 1.0
    assert value("m1 > 2 AND m1 != 3", m1=3.0) == 0.0
    assert value("IF(invocations > 0, errors / invocations, 0)", errors=1.0, invocations=0.0) == 0.0
    assert value("IF(m1 > 5, m1)", m1=3.0) is None
    assert value("IF(m1, 1, 2)", m1=None) is None
    assert value("ABS(m1 - 10)", m1=3.0) == 7.0


def test_references() -> None:
    assert references(parse("100 * FILL(errors, 0) / invocations + e1")) == {"errors", "invocations", "e1"}


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("METRICS()", "function METRICS is not supported locally"),
        ("SUM([m1, m2])", "cannot read"),
        ("FILL(m1, REPEAT)", "FILL is supported locally with a number only"),
        ("FILL(m1)", "FILL takes 2 arguments, not 1"),
        ("Errors / 2", "'Errors' in 'Errors / 2' is not a query id"),
        ("m1 +", "expected more"),
        ("(m1", "expected )"),
        ("m1 m2", "unexpected 'm2'"),
    ],
)
def test_what_is_not_evaluated_says_why(expression: str, message: str) -> None:
    with pytest.raises(MathError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        parse(expression)


def test_an_unknown_reference_at_evaluation() -> None:
    with pytest.raises(MathError, match="'m2', which is no query"):
        value("m1 + m2", m1=1.0)
