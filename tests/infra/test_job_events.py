"""Job lifecycle events, per environment: the job table's stream, the event source mapping that lets only the
contract's emitting transitions through to the events function (nothing silently lost: partial batch
responses, bisect, bounded retries, a dead-letter queue), and the function's exact grants."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import pipeline_contract as contract
from localcloud.services.events.events import pattern_matches
from stacks.config import ConfigError, EventsConfig, load_config
from tests.infra.conftest import Synthesized
from tests.infra.template_tools import only, policy_statements, queue_is_encrypted, render, resources

EVENTS_HANDLER = "handlers.events.handler"


def _events_function(synth: Synthesized) -> tuple[str, dict[str, Any]]:
    (found,) = [
        (logical_id, function["Properties"])
        for logical_id, function in resources(synth.pipeline, "AWS::Lambda::Function").items()
        if function["Properties"]["Handler"] == EVENTS_HANDLER
    ]
    return found


def _stream_mapping(synth: Synthesized) -> dict[str, Any]:
    (mapping,) = [
        m["Properties"]
        for m in resources(synth.pipeline, "AWS::Lambda::EventSourceMapping").values()
        if "StartingPosition" in m["Properties"]
    ]
    return mapping


def expected_patterns() -> list[dict[str, Any]]:
    """The filter, derived here from the contract's transitions on its own: one pattern per old status."""
    patterns: list[dict[str, Any]] = []
    for old, news in contract.emitting_transitions().items():
        new_image = {"NewImage": {"status": {"S": list(news)}}}
        if old is None:
            patterns.append({"eventName": ["INSERT"], "dynamodb": new_image})
        else:
            patterns.append(
                {"eventName": ["MODIFY"], "dynamodb": {"OldImage": {"status": {"S": [old]}}, **new_image}}
            )
    return patterns


def test_the_job_table_streams_both_images_and_exports_the_stream(synth: Synthesized) -> None:
    table = only(synth.stateful, "AWS::DynamoDB::Table")["Properties"]
    assert table["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    output = synth.stateful["Outputs"]["JobTableStreamArn"]
    assert output["Export"]["Name"] == f"ResilientPipeline-{synth.env}-Stateful-JobTableStreamArn"
    assert render(output["Value"]).endswith(".StreamArn>")


def test_the_mapping_filters_exactly_the_contracts_emitting_transitions(synth: Synthesized) -> None:
    mapping = _stream_mapping(synth)
    patterns = [json.loads(f["Pattern"]) for f in mapping["FilterCriteria"]["Filters"]]
    assert patterns == expected_patterns()
    # A checkpoint (RUNNING stays RUNNING), a continue-as-new hand-over and a redrive (FAILED -> PENDING)
    # match no pattern: they never invoke the function.
    running = next(p for p in patterns if p["dynamodb"].get("OldImage") == {"status": {"S": ["RUNNING"]}})
    assert "RUNNING" not in running["dynamodb"]["NewImage"]["status"]["S"]
    assert not [p for p in patterns if p["dynamodb"].get("OldImage") == {"status": {"S": ["FAILED"]}}]
    assert len(patterns) <= 5, "Lambda's default quota of filters per event source mapping"


def stream_record(old: str | None, new: str | None) -> dict[str, Any]:
    """A DynamoDB stream record of a job item going from status `old` to `new` (None: absent), as Lambda
    matches it against a filter."""
    images: dict[str, Any] = {"Keys": {"job_id": {"S": "j"}}, "SequenceNumber": "1"}
    if old is not None:
        images["OldImage"] = {"job_id": {"S": "j"}, "status": {"S": old}, "attempt": {"N": "1"}}
    if new is not None:
        images["NewImage"] = {"job_id": {"S": "j"}, "status": {"S": new}, "attempt": {"N": "1"}}
    name = "INSERT" if old is None else "REMOVE" if new is None else "MODIFY"
    return {"eventName": name, "eventSource": "aws:dynamodb", "dynamodb": images}


def test_the_synthesized_filter_lets_through_exactly_the_changes_that_emit(synth: Synthesized) -> None:
    """Every change of a job item (created, any status to any status, deleted by TTL), as a stream record,
    against the synthesized patterns (EventBridge's matching, which Lambda's filters use): it reaches the
    function exactly when the contract says it emits an event."""
    patterns = [f["Pattern"] for f in _stream_mapping(synth)["FilterCriteria"]["Filters"]]
    statuses: list[str | None] = [None, *contract.STATUSES]
    wrong = []
    for old in statuses:
        for new in statuses:
            if old is None and new is None:
                continue
            delivered = any(pattern_matches(p, stream_record(old, new)) for p in patterns)
            emits = new is not None and contract.event_detail_type(old, new) is not None
            if delivered != emits:
                wrong.append((old, new, delivered))
    assert wrong == []


def test_the_mapping_never_loses_a_batch_silently(synth: Synthesized) -> None:
    mapping = _stream_mapping(synth)
    logical_id, _ = _events_function(synth)
    assert mapping["FunctionName"] == {"Ref": logical_id}
    assert render(mapping["EventSourceArn"]) == (
        f"<import:ResilientPipeline-{synth.env}-Stateful-JobTableStreamArn>"
    )
    assert mapping["StartingPosition"] == "TRIM_HORIZON"
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BisectBatchOnFunctionError"] is True
    # An EventBridge outage delays the events rather than losing them: retried until the record is
    # max_record_age_hours old (no attempt count: each partial batch response uses one), then described
    # in the DLQ. The stream keeps records 24 h.
    assert "MaximumRetryAttempts" not in mapping, "unlimited (-1) until the record age"
    assert synth.config.events.retry_attempts is None
    assert mapping["MaximumRecordAgeInSeconds"] == synth.config.events.max_record_age_hours * 3600
    assert 3600 <= mapping["MaximumRecordAgeInSeconds"] <= 24 * 3600
    assert mapping["BatchSize"] == synth.config.events.batch_size
    assert mapping.get("ParallelizationFactor", 1) == 1, "one batch per shard at a time: events in order"
    destination = mapping["DestinationConfig"]["OnFailure"]["Destination"]
    (queue_id,) = [
        logical_id
        for logical_id in resources(synth.pipeline, "AWS::SQS::Queue")
        if logical_id.startswith("JobEventsDeadLetters")
    ]
    assert destination == {"Fn::GetAtt": [queue_id, "Arn"]}
    queue = synth.pipeline["Resources"][queue_id]["Properties"]
    assert queue_is_encrypted(queue, env=synth.env, strict=synth.strict)
    assert queue["MessageRetentionPeriod"] == 14 * 24 * 3600


def test_a_delay_in_publishing_warns_long_before_events_are_given_up(synth: Synthesized) -> None:
    """Partial batch responses are not function errors: only the stream's iterator age shows that the
    events function keeps retrying (the bus refuses, or throttles)."""
    logical_id, _ = _events_function(synth)
    (alarm,) = [
        a["Properties"]
        for a in resources(synth.pipeline, "AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("MetricName") == "IteratorAge"
    ]
    assert (alarm["Namespace"], alarm["Statistic"]) == ("AWS/Lambda", "Maximum")
    assert alarm["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": logical_id}}]
    config = synth.config.events
    assert alarm["Threshold"] == config.delay_warning_minutes * 60_000
    assert config.delay_warning_minutes * 60 < config.max_record_age_hours * 3600
    assert alarm["AlarmDescription"].startswith("[warning] ")


def test_the_function_gets_the_bus_and_the_environment(synth: Synthesized) -> None:
    _, function = _events_function(synth)
    variables = function["Environment"]["Variables"]
    assert variables[contract.Env.EVENT_BUS_NAME] == contract.DEFAULT_EVENT_BUS
    assert variables[contract.Env.ENVIRONMENT] == synth.env
    assert function["Timeout"] == synth.config.events.function.timeout_seconds
    assert function["MemorySize"] == synth.config.events.function.memory_mb
    assert function["Architectures"] == ["arm64"]
    assert function["TracingConfig"] == {"Mode": "Active"}


def test_the_function_may_put_events_on_its_bus_only(synth: Synthesized) -> None:
    statements = policy_statements(synth.pipeline, "EventsRole")
    puts = [s for s in statements if s["Action"] == "events:PutEvents"]
    assert len(puts) == 1
    assert render(puts[0]["Resource"]).endswith(":event-bus/default")
    assert [s for s in statements if "events:" in json.dumps(s["Action"])] == puts
    reads = [s for s in statements if "dynamodb:GetRecords" in s["Action"]]
    assert [render(s["Resource"]) for s in reads] == [
        f"<import:ResilientPipeline-{synth.env}-Stateful-JobTableStreamArn>"
    ]


def test_a_named_bus_is_the_functions_bus_and_grant(tmp_path: Path) -> None:
    from tests.infra.conftest import synthesize

    synth = synthesize("dev", tmp_path, {"eventBus": "team-bus"})
    _, function = _events_function(synth)
    assert function["Environment"]["Variables"][contract.Env.EVENT_BUS_NAME] == "team-bus"
    (put,) = [s for s in policy_statements(synth.pipeline, "EventsRole") if s["Action"] == "events:PutEvents"]
    assert render(put["Resource"]).endswith(":event-bus/team-bus")


@pytest.mark.parametrize(
    ("events", "problem"),
    [
        (EventsConfig(bus_name="has space"), "events.bus_name"),
        (EventsConfig(bus_name="arn:aws:events:us-east-1:1:event-bus/x"), "events.bus_name"),
        (EventsConfig(batch_size=0), "events.batch_size"),
        (EventsConfig(retry_attempts=10_001), "events.retry_attempts"),
        (EventsConfig(max_record_age_hours=25), "events.max_record_age_hours"),
        (EventsConfig(delay_warning_minutes=0), "events.delay_warning_minutes"),
        (EventsConfig(max_record_age_hours=1, delay_warning_minutes=60), "events.delay_warning_minutes"),
    ],
)
def test_bad_events_config_is_refused_naming_the_knob(events: EventsConfig, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        replace(load_config("dev"), events=events).validate()
