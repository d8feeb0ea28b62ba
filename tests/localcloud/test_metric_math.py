"""Metric-math expressions, one period at a time: arithmetic, missing data, FILL, IF, PERIOD, and what is
refused; and a GetMetricData request's expressions over its metrics' series (what the console asks the local
cloud's CloudWatch for, as the CDK dashboard does)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from localcloud.services.cloudwatch.metric_math import (
    MathError,
    evaluate,
    evaluate_series,
    parse,
    references,
)


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
        ("RATE(m1)", "function RATE is not supported locally"),
        ("PERIOD(m1 * 2)", "PERIOD takes a query id"),
        ("PERIOD(m1, m2)", "PERIOD takes 1 arguments, not 2"),
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


# -- PERIOD ------------------------------------------------------------------------------------------------


def test_period_is_the_querys_period_in_seconds() -> None:
    # The dashboard's throughput: a Sum per period over the period's length is a rate per second.
    node = parse("bytes / PERIOD(bytes)")
    assert references(node) == {"bytes"}
    assert evaluate(node, {"bytes": 6_000.0}, periods={"bytes": 60}) == 100.0
    assert evaluate(node, {"bytes": 6_000.0}, periods={"bytes": 300}) == 20.0
    # PERIOD itself has a value without a datapoint; the ratio has none.
    assert evaluate(parse("PERIOD(bytes)"), {"bytes": None}, periods={"bytes": 60}) == 60.0
    assert evaluate(node, {"bytes": None}, periods={"bytes": 60}) is None


def test_period_without_the_periods_says_what_is_missing() -> None:
    with pytest.raises(MathError, match=r"PERIOD\(bytes\) needs the period of query 'bytes'"):
        evaluate(parse("bytes / PERIOD(bytes)"), {"bytes": 1.0})
    # Control: the same call without PERIOD needs no periods.
    assert evaluate(parse("bytes / 60"), {"bytes": 60.0}) == 1.0


# -- a GetMetricData request's expressions -----------------------------------------------------------------

T0 = datetime(2026, 11, 22, 15, 0, tzinfo=UTC)


def at(minute: int) -> datetime:
    return T0 + timedelta(minutes=minute)


def test_series_are_evaluated_at_every_timestamp_of_the_metrics_they_read() -> None:
    expressions = {
        "rate": parse("100 * FILL(errors, 0) / invocations"),
        "throughput": parse("bytes / PERIOD(bytes)"),
    }
    series = {
        "errors": {at(1): 3.0},
        "invocations": {at(0): 10.0, at(1): 12.0},
        "bytes": {at(0): 120.0, at(2): 60.0},
    }
    periods = {"errors": 60, "invocations": 60, "bytes": 60}
    result = evaluate_series(expressions, series, periods)
    # Minute 0 has invocations and no errors: FILL makes that 0%, as CloudWatch does.
    assert result["rate"] == {at(0): 0.0, at(1): 25.0}
    assert result["throughput"] == {at(0): 2.0, at(2): 1.0}


def test_no_datapoint_where_the_result_is_not_a_number() -> None:
    series = {"errors": {at(0): 1.0}, "invocations": {at(1): 4.0}}
    result = evaluate_series({"e": parse("errors / invocations")}, series, {"errors": 60, "invocations": 60})
    assert result["e"] == {}, "each timestamp lacks one of the two: no datapoint at either"


def test_an_expression_may_read_another() -> None:
    expressions = {"total": parse("a + b"), "share": parse("100 * a / total")}
    series = {"a": {at(0): 1.0, at(1): 3.0}, "b": {at(0): 3.0, at(1): 1.0}}
    result = evaluate_series(expressions, series, {"a": 60, "b": 60})
    assert result["share"] == {at(0): 25.0, at(1): 75.0}
    assert result["total"] == {at(0): 4.0, at(1): 4.0}


@pytest.mark.parametrize(
    ("expressions", "message"),
    [
        ({"e1": "e2 + 1", "e2": "e1 * 2"}, "query e1 depends on itself \\(e1 -> e2 -> e1\\)"),
        ({"e1": "m1 + m9"}, "'m9', which is no query of the request"),
    ],
)
def test_a_request_cloudwatch_would_refuse_says_why(expressions: dict[str, str], message: str) -> None:
    parsed = {query_id: parse(text) for query_id, text in expressions.items()}
    with pytest.raises(MathError, match=message):
        evaluate_series(parsed, {"m1": {at(0): 1.0}}, {"m1": 60})
