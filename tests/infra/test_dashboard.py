"""One dashboard per environment: throughput, ingest backlog, executions by outcome, DLQ depth, and every
alarm by severity."""

from __future__ import annotations

import json
from typing import Any

from tests.infra.conftest import Synthesized
from tests.infra.template_tools import only, render, resources


def _body(synth: Synthesized) -> dict[str, Any]:
    dashboard = only(synth.pipeline, "AWS::CloudWatch::Dashboard")["Properties"]
    assert dashboard["DashboardName"] == f"resilient-pipeline-{synth.env}"
    return dict(json.loads(render(dashboard["DashboardBody"])))


def _widgets(synth: Synthesized) -> dict[str, dict[str, Any]]:
    return {w["properties"]["title"]: w["properties"] for w in _body(synth)["widgets"]}


def _metrics(widget: dict[str, Any]) -> list[tuple[str, str, dict[str, str], dict[str, Any]]]:
    """(namespace, metric name, dimensions, options) of every metric row of a graph; expressions are
    ("", expression, {}, options)."""
    found = []
    for row in widget["metrics"]:
        options = row[-1] if isinstance(row[-1], dict) else {}
        if "expression" in options:
            found.append(("", options["expression"], {}, options))
            continue
        names = [part for part in row if isinstance(part, str)]
        found.append((names[0], names[1], dict(zip(names[2::2], names[3::2], strict=True)), options))
    return found


def test_the_alarm_widgets_show_every_alarm_by_severity(synth: Synthesized) -> None:
    widgets = _widgets(synth)
    critical = widgets["Critical alarms (page)"]["alarms"]
    warning = widgets["Warning alarms"]["alarms"]
    alarms = resources(synth.pipeline, "AWS::CloudWatch::Alarm")
    assert len(critical) + len(warning) == len(alarms)
    by_arn = {f"<{logical_id}.Arn>": a["Properties"]["AlarmDescription"] for logical_id, a in alarms.items()}
    assert all(by_arn[arn].startswith("[critical]") for arn in critical)
    assert all(by_arn[arn].startswith("[warning]") for arn in warning)


def test_throughput_and_bytes_processed_are_the_workers_per_function_not_per_job(synth: Synthesized) -> None:
    widgets = _widgets(synth)
    throughput = _metrics(widgets["Throughput (bytes/s)"])
    expressions = [m[1] for m in throughput if not m[0]]
    assert "bytes / PERIOD(bytes)" in expressions
    custom = [m for m in throughput + _metrics(widgets["Bytes processed"]) if m[0]]
    assert {(m[0], m[1]) for m in custom} == {
        ("ResilientPipeline", "SegmentThroughput"),
        ("ResilientPipeline", "BytesIn"),
    }
    for _, _, dimensions, _ in custom:
        assert set(dimensions) == {"service", "FunctionName"}
        assert dimensions["service"] == "worker"
        assert dimensions["FunctionName"].startswith("<WorkerFunction")


def test_ingest_backlog_depth_and_age(synth: Synthesized) -> None:
    backlog = _metrics(_widgets(synth)["Ingest backlog"])
    assert {m[1] for m in backlog} == {
        "ApproximateNumberOfMessagesVisible",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateAgeOfOldestMessage",
    }
    for _, _, dimensions, _ in backlog:
        assert (
            dimensions["QueueName"].startswith("<IngestQueue") and "DeadLetter" not in dimensions["QueueName"]
        )


def test_job_outcomes(synth: Synthesized) -> None:
    executions = _metrics(_widgets(synth)["Executions by outcome"])
    assert {(m[0], m[1]) for m in executions} == {
        ("AWS/States", name)
        for name in (
            "ExecutionsStarted",
            "ExecutionsSucceeded",
            "ExecutionsFailed",
            "ExecutionsTimedOut",
            "ExecutionsAborted",
        )
    }


def test_dead_letter_queue_depths(synth: Synthesized) -> None:
    dlqs = _metrics(_widgets(synth)["Dead-letter queues"])
    assert {m[1] for m in dlqs} == {"ApproximateNumberOfMessagesVisible"}
    queues = sorted(m[2]["QueueName"] for m in dlqs)
    assert len(queues) == 3, queues
    assert queues[1].startswith("<JobEventsDeadLetters") and queues[2].startswith("<WatchdogDeadLetters"), (
        queues
    )


def test_error_rates_and_throttles_per_function(synth: Synthesized) -> None:
    widgets = _widgets(synth)
    rates = [m for m in _metrics(widgets["Function error rates (%)"]) if not m[0]]
    assert sorted(m[3]["label"] for m in rates) == ["Events", "Failures", "Ingest", "Worker"]
    throttles = _metrics(widgets["Function throttles"])
    assert {m[1] for m in throttles} == {"Throttles"} and len(throttles) == 4
