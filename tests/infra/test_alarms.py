"""Every alarm a human must know about exists, says what to do, and notifies the topic."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.conftest import Synthesized
from tests.infra.template_tools import only, render, resources


def _alarms(synth: Synthesized) -> list[dict[str, Any]]:
    return [a["Properties"] for a in resources(synth.pipeline, "AWS::CloudWatch::Alarm").values()]


def _by_metric(synth: Synthesized, namespace: str, metric: str) -> list[dict[str, Any]]:
    return [a for a in _alarms(synth) if a.get("Namespace") == namespace and a.get("MetricName") == metric]


@pytest.mark.parametrize(
    ("namespace", "metric", "count"),
    [
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible", 3),
        ("AWS/SQS", "ApproximateAgeOfOldestMessage", 1),
        ("AWS/Lambda", "Errors", 4),
        ("AWS/Lambda", "Throttles", 4),
        ("AWS/Lambda", "RecursiveInvocationsDropped", 4),
        ("AWS/Lambda", "Duration", 1),
        ("AWS/States", "ExecutionsFailed", 1),
        ("AWS/States", "ExecutionsTimedOut", 1),
        ("AWS/States", "ExecutionsAborted", 1),
        ("AWS/States", "ExecutionThrottled", 1),
        ("AWS/DynamoDB", "ReadThrottleEvents", 1),
        ("AWS/DynamoDB", "WriteThrottleEvents", 1),
    ],
)
def test_alarm_exists(synth: Synthesized, namespace: str, metric: str, count: int) -> None:
    assert len(_by_metric(synth, namespace, metric)) == count


def test_dlq_alarms_fire_on_the_first_message(synth: Synthesized) -> None:
    alarms = _by_metric(synth, "AWS/SQS", "ApproximateNumberOfMessagesVisible")
    queues = sorted(render(alarm["Dimensions"][0]["Value"]) for alarm in alarms)
    assert len(queues) == 3, queues
    assert queues[1].startswith("<JobEventsDeadLetters") and queues[2].startswith("<WatchdogDeadLetters"), (
        queues
    )
    for alarm in alarms:
        assert alarm["Threshold"] == 0
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
        assert alarm["EvaluationPeriods"] == 1


def test_queue_age_threshold_from_config(synth: Synthesized) -> None:
    (alarm,) = _by_metric(synth, "AWS/SQS", "ApproximateAgeOfOldestMessage")
    assert alarm["Threshold"] == synth.config.alarms.queue_age_threshold_seconds


def test_worker_p99_duration_alarm_at_80_percent_of_timeout(synth: Synthesized) -> None:
    (alarm,) = _by_metric(synth, "AWS/Lambda", "Duration")
    assert alarm["ExtendedStatistic"] == "p99"
    assert alarm["Threshold"] == synth.config.worker.function.timeout_seconds * 1000 * 0.8


def test_every_alarm_says_what_happened_and_what_to_do_and_notifies(synth: Synthesized) -> None:
    topic_id = next(iter(resources(synth.pipeline, "AWS::SNS::Topic")))
    for alarm in _alarms(synth):
        assert "First:" in alarm["AlarmDescription"], alarm["AlarmDescription"]
        assert alarm["AlarmActions"] == [{"Ref": topic_id}]
        assert alarm["OKActions"] == [{"Ref": topic_id}]
        assert alarm["TreatMissingData"] == "notBreaching"


def test_email_subscription_only_when_configured(synthesized: dict[str, Synthesized]) -> None:
    for synth in synthesized.values():
        assert synth.config.alarms.email is None
        assert not resources(synth.pipeline, "AWS::SNS::Subscription")


def test_dashboard_exists(synth: Synthesized) -> None:
    assert only(synth.pipeline, "AWS::CloudWatch::Dashboard")
