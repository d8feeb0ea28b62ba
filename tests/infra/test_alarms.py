"""Every alarm a human must know about exists, says what to do, and notifies the topic of its severity:
critical ones page on the first datapoint, warnings only when sustained."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.conftest import Synthesized
from tests.infra.template_tools import only, render, resources

CRITICAL = {
    "DeadLetterQueueNotEmpty",
    "WatchdogDeadLettersNotEmpty",
    "JobEventsDeadLettersNotEmpty",
    "IngestQueueBacklogAge",
    "StateMachineExecutionsFailed",
    "StateMachineExecutionsTimedOut",
    "StateMachineExecutionsAborted",
    "IngestRecursiveInvocationsDropped",
    "WorkerRecursiveInvocationsDropped",
    "FailuresRecursiveInvocationsDropped",
    "EventsRecursiveInvocationsDropped",
}
WARNING = {
    *(
        f"{label}{what}"
        for label in ("Ingest", "Worker", "Failures", "Events")
        for what in ("ErrorRate", "Throttles")
    ),
    *(f"{label}DurationNearTimeout" for label in ("Ingest", "Worker", "Failures", "Events")),
    "StateMachineExecutionThrottled",
    "JobEventsDelayed",
    "JobTableReadThrottleEvents",
    "JobTableWriteThrottleEvents",
}


def _alarms(synth: Synthesized) -> list[dict[str, Any]]:
    return [a["Properties"] for a in resources(synth.pipeline, "AWS::CloudWatch::Alarm").values()]


def _by_id(synth: Synthesized) -> dict[str, dict[str, Any]]:
    """Alarm properties by the construct id (`Alarms<ID><hash>`)."""
    found = {}
    for logical_id, alarm in resources(synth.pipeline, "AWS::CloudWatch::Alarm").items():
        assert logical_id.startswith("Alarms"), logical_id
        found[logical_id[len("Alarms") : -8]] = alarm["Properties"]
    return found


def _by_metric(synth: Synthesized, namespace: str, metric: str) -> list[dict[str, Any]]:
    return [a for a in _alarms(synth) if a.get("Namespace") == namespace and a.get("MetricName") == metric]


def _topics(synth: Synthesized) -> dict[str, str]:
    """Severity -> the logical id of its topic (from the topics' display names)."""
    found = {}
    for logical_id, topic in resources(synth.pipeline, "AWS::SNS::Topic").items():
        name = topic["Properties"]["DisplayName"]
        assert name.startswith(f"resilient-pipeline {synth.env} "), name
        found[name.split()[2]] = logical_id
    return found


@pytest.mark.parametrize(
    ("namespace", "metric", "count"),
    [
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible", 3),
        ("AWS/SQS", "ApproximateAgeOfOldestMessage", 1),
        ("AWS/Lambda", "Throttles", 4),
        ("AWS/Lambda", "RecursiveInvocationsDropped", 4),
        ("AWS/Lambda", "Duration", 4),
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


def test_two_topics_one_per_severity(synth: Synthesized) -> None:
    assert set(_topics(synth)) == {"critical", "warning"}


def test_each_alarm_notifies_the_topic_of_its_severity(synth: Synthesized) -> None:
    topics = _topics(synth)
    alarms = _by_id(synth)
    assert set(alarms) == CRITICAL | WARNING
    for alarm_id, alarm in alarms.items():
        severity = "critical" if alarm_id in CRITICAL else "warning"
        topic = {"Ref": topics[severity]}
        assert alarm["AlarmActions"] == [topic], alarm_id
        assert alarm["OKActions"] == [topic], alarm_id
        assert alarm["AlarmDescription"].startswith(f"[{severity}] "), alarm_id


def test_critical_alarms_fire_on_the_first_datapoint(synth: Synthesized) -> None:
    alarms = _by_id(synth)
    for alarm_id in CRITICAL:
        assert (alarms[alarm_id]["EvaluationPeriods"], alarms[alarm_id]["DatapointsToAlarm"]) == (1, 1), (
            alarm_id
        )


def test_rate_and_throttle_warnings_fire_only_when_sustained(synth: Synthesized) -> None:
    config = synth.config.alarms
    alarms = _by_id(synth)
    sustained = [a for a in WARNING if "Throttle" in a or a.endswith("ErrorRate")]
    assert len(sustained) == 11
    for alarm_id in sustained:
        alarm = alarms[alarm_id]
        assert (alarm["DatapointsToAlarm"], alarm["EvaluationPeriods"]) == (
            config.sustained_datapoints,
            config.sustained_periods,
        ), alarm_id
        assert config.sustained_datapoints > 1


def test_error_alarms_are_rates_not_counts(synth: Synthesized) -> None:
    assert not _by_metric(synth, "AWS/Lambda", "Errors")
    alarms = _by_id(synth)
    for label in ("Ingest", "Worker", "Failures", "Events"):
        alarm = alarms[f"{label}ErrorRate"]
        assert alarm["Threshold"] == synth.config.alarms.error_rate_percent
        queries = {query["Id"]: query for query in alarm["Metrics"]}
        (expression,) = [q for q in queries.values() if "Expression" in q]
        assert expression["ReturnData"] is True
        assert expression["Expression"] == "100 * FILL(errors, 0) / invocations"
        for metric_id, name in (("errors", "Errors"), ("invocations", "Invocations")):
            stat = queries[metric_id]["MetricStat"]
            assert (stat["Metric"]["Namespace"], stat["Metric"]["MetricName"], stat["Stat"]) == (
                "AWS/Lambda",
                name,
                "Sum",
            )
            (dimension,) = stat["Metric"]["Dimensions"]
            assert render(dimension["Value"]).startswith(f"<{label}Function"), dimension


def test_error_rate_threshold_per_environment(synth: Synthesized) -> None:
    # Where failures are tried on purpose (local's chaos rules, dev), a warning needs most invocations failing.
    expected = {"local": 50.0, "dev": 50.0, "staging": 10.0, "prod": 10.0}[synth.env]
    assert synth.config.alarms.error_rate_percent == expected


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
    expected = {"local": 60, "dev": 600, "staging": 300, "prod": 300}[synth.env]
    assert alarm["Threshold"] == expected


def test_duration_warnings_near_each_functions_timeout(synth: Synthesized) -> None:
    alarms = _by_id(synth)
    config = synth.config
    for label, timeout in (
        ("Ingest", config.ingest.function.timeout_seconds),
        ("Failures", config.failures.timeout_seconds),
        ("Events", config.events.function.timeout_seconds),
    ):
        alarm = alarms[f"{label}DurationNearTimeout"]
        assert alarm["ExtendedStatistic"] == "p99"
        assert alarm["Threshold"] == timeout * 1000 * 0.8, label


def test_worker_duration_warning_is_above_its_longest_healthy_segment(synth: Synthesized) -> None:
    """The worker runs chunks until less than its safety margin remains, by design: a healthy segment
    lasts up to timeout - margin (dev: 280 s of 300 s, over 80%). It warns once a segment ate half its
    margin, before the timeout kills it."""
    worker = synth.config.worker
    timeout_ms = worker.function.timeout_seconds * 1000
    alarm = _by_id(synth)["WorkerDurationNearTimeout"]
    assert alarm["ExtendedStatistic"] == "p99"
    assert timeout_ms - worker.safety_margin_ms < alarm["Threshold"] < timeout_ms
    assert alarm["Threshold"] == timeout_ms - worker.safety_margin_ms // 2


def test_every_alarm_says_what_happened_and_what_to_do(synth: Synthesized) -> None:
    for alarm in _alarms(synth):
        assert "First:" in alarm["AlarmDescription"], alarm["AlarmDescription"]
        assert alarm["TreatMissingData"] == "notBreaching"


def test_email_subscription_only_when_configured(synthesized: dict[str, Synthesized]) -> None:
    for synth in synthesized.values():
        assert synth.config.alarms.critical_email is None
        assert synth.config.alarms.warning_email is None
        assert not resources(synth.pipeline, "AWS::SNS::Subscription")


def test_both_topic_arns_are_outputs(synth: Synthesized) -> None:
    topics = _topics(synth)
    outputs = synth.pipeline["Outputs"]
    assert outputs["AlarmTopicArn"]["Value"] == {"Ref": topics["critical"]}
    assert outputs["WarningAlarmTopicArn"]["Value"] == {"Ref": topics["warning"]}


def test_dashboard_exists(synth: Synthesized) -> None:
    assert only(synth.pipeline, "AWS::CloudWatch::Dashboard")
