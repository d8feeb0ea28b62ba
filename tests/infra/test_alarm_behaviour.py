"""The synthesized error alarms, evaluated with numbers: every alarm of the template that reads a function's
AWS/Lambda Errors is put into a moto CloudWatch as it was synthesized (its references resolved to one
function name) and evaluated by the local cloud's alarm evaluator
(`localcloud.services.cloudwatch.alarm_evaluator`, metric math included) over five minutes of Invocations
and Errors.

A retried transient error is an "error" to Lambda: the state machine retries it and the job succeeds.
Patterns of those must not alarm; a sustained failure must.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from localcloud.core.state import dummy_session
from localcloud.services.cloudwatch.alarm_evaluator import ALARM, OK, AlarmEvaluator
from stacks.config import ENVIRONMENT_NAMES
from tests.infra.conftest import Synthesized
from tests.infra.template_tools import resources
from tests.localcloud.support import moto_server

REGION = "us-east-1"
PERIOD = 60

# Per minute, most recent first: (invocations, errors).
Minutes = list[tuple[int, int]]
# Throttling or a 5xx burst of a dependency: two bad minutes, retried, in otherwise quiet traffic.
HICCUP: Minutes = [(50, 1), (20, 20), (30, 15), (50, 1), (50, 0)]
# A steady trickle of transient errors that the in-code and state-machine retries absorb.
TRICKLE: Minutes = [(100, 4)] * 5
# What the local cloud's chaos rules do in the fault matrix (`make chaos`): 30% of the worker's invocations
# crash or raise TransientError, then are retried.
FAULT_INJECTION: Minutes = [(20, 6)] * 5
# A bad deploy or a dependency that is down: every invocation fails, minute after minute.
SUSTAINED_FAILURE: Minutes = [(10, 10), (12, 12), (9, 9), (50, 1), (50, 0)]


def _transient_patterns(synth: Synthesized) -> dict[str, Minutes]:
    patterns = {"hiccup": HICCUP, "trickle": TRICKLE}
    if synth.env == "local":
        patterns["fault injection"] = FAULT_INJECTION
    return patterns


@pytest.fixture(params=ENVIRONMENT_NAMES)
def synth(request: pytest.FixtureRequest, synthesized: dict[str, Synthesized]) -> Synthesized:
    """The default profile only: the strict profile's alarms are the same ones (tests/infra/test_compliance.py
    checks that), and each evaluation here takes seconds."""
    return synthesized[request.param]


@dataclass(frozen=True)
class Moto:
    endpoint: str
    # One session for the module's evaluators and clients: each new one parses botocore's data files again
    # (0.3 s an evaluation, most of this file's time, before it was shared).
    session: Any
    cloudwatch: Any


@pytest.fixture(scope="module")
def moto() -> Iterator[Moto]:
    with moto_server() as url:
        session = dummy_session(REGION)
        yield Moto(url, session, session.client("cloudwatch", endpoint_url=url))


def _resolve(value: Any, function_name: str) -> Any:
    """The template's references (the function's name) replaced by `function_name`."""
    if isinstance(value, dict):
        if set(value) & {"Ref", "Fn::GetAtt", "Fn::Join", "Fn::ImportValue"}:
            return function_name
        return {k: _resolve(v, function_name) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, function_name) for v in value]
    return value


def _reads_lambda_errors(properties: dict[str, Any]) -> bool:
    stats = [properties] + [
        q["MetricStat"]["Metric"] for q in properties.get("Metrics", []) if "MetricStat" in q
    ]
    return any(s.get("Namespace") == "AWS/Lambda" and s.get("MetricName") == "Errors" for s in stats)


def error_alarms(synth: Synthesized) -> dict[str, dict[str, Any]]:
    return {
        logical_id: alarm["Properties"]
        for logical_id, alarm in resources(synth.pipeline, "AWS::CloudWatch::Alarm").items()
        if _reads_lambda_errors(alarm["Properties"])
    }


def _put_alarm(moto: Moto, name: str, properties: dict[str, Any], function_name: str) -> None:
    resolved = _resolve(properties, function_name)
    kwargs: dict[str, Any] = {
        "AlarmName": name,
        "ComparisonOperator": resolved["ComparisonOperator"],
        "EvaluationPeriods": resolved["EvaluationPeriods"],
        "Threshold": resolved["Threshold"],
        "TreatMissingData": resolved.get("TreatMissingData", "missing"),
    }
    if "DatapointsToAlarm" in resolved:
        kwargs["DatapointsToAlarm"] = resolved["DatapointsToAlarm"]
    if "Metrics" in resolved:
        kwargs["Metrics"] = resolved["Metrics"]
    else:
        for key in ("Namespace", "MetricName", "Dimensions", "Period", "Statistic", "ExtendedStatistic"):
            if key in resolved:
                kwargs[key] = resolved[key]
    moto.cloudwatch.put_metric_alarm(**kwargs)


def _put_minutes(moto: Moto, function_name: str, minutes: Minutes, now: datetime) -> None:
    data = []
    for age, (invocations, errors) in enumerate(minutes):
        # In the middle of the evaluator's window `age` (windows end at `now`, one period each).
        timestamp = now - timedelta(seconds=PERIOD * age + PERIOD // 2)
        dimensions = [{"Name": "FunctionName", "Value": function_name}]
        data += [
            {
                "MetricName": "Invocations",
                "Dimensions": dimensions,
                "Timestamp": timestamp,
                "Value": invocations,
            },
            {"MetricName": "Errors", "Dimensions": dimensions, "Timestamp": timestamp, "Value": errors},
        ]
    moto.cloudwatch.put_metric_data(Namespace="AWS/Lambda", MetricData=data)


def evaluate(moto: Moto, properties: dict[str, Any], minutes: Minutes) -> str:
    """The state the alarm defined by `properties` takes after `minutes` of one function's traffic."""
    prefix = f"behaviour-{uuid.uuid4().hex[:8]}-"
    function_name = f"fn-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    _put_minutes(moto, function_name, minutes, now)
    _put_alarm(moto, f"{prefix}alarm", properties, function_name)
    evaluator = AlarmEvaluator(
        moto.endpoint, REGION, alarm_name_prefix=prefix, clock=lambda: now, session=moto.session
    )
    (state,) = evaluator.evaluate().values()
    return state


def test_every_function_has_an_error_alarm(synth: Synthesized) -> None:
    assert len(error_alarms(synth)) == 4


def test_retried_transient_errors_do_not_alarm(moto: Moto, synth: Synthesized) -> None:
    for logical_id, properties in error_alarms(synth).items():
        for pattern, minutes in _transient_patterns(synth).items():
            assert evaluate(moto, properties, minutes) == OK, f"{synth.env} {logical_id}: {pattern}"


def test_a_sustained_failure_alarms(moto: Moto, synth: Synthesized) -> None:
    for logical_id, properties in error_alarms(synth).items():
        assert evaluate(moto, properties, SUSTAINED_FAILURE) == ALARM, f"{synth.env} {logical_id}"


def test_a_sustained_error_rate_over_the_environments_threshold_alarms(
    moto: Moto, synth: Synthesized
) -> None:
    """Three minutes just over the configured rate alarm; the same minutes just under it do not."""
    percent = synth.config.alarms.error_rate_percent
    over: Minutes = [(1000, int(percent * 10) + 1)] * 3 + [(1000, 0)] * 2
    under: Minutes = [(1000, int(percent * 10))] * 5
    for logical_id, properties in error_alarms(synth).items():
        assert evaluate(moto, properties, over) == ALARM, f"{synth.env} {logical_id}: over"
        assert evaluate(moto, properties, under) == OK, f"{synth.env} {logical_id}: under"
