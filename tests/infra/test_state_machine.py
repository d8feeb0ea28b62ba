"""Invariants of the segmented-job state machine, read from the synthesized ASL."""

from __future__ import annotations

from typing import Any

from stacks import rules
from tests.infra.conftest import Synthesized
from tests.infra.template_tools import all_states, only, render, state_machine_definition


def _states(synth: Synthesized) -> dict[str, Any]:
    return all_states(state_machine_definition(synth.pipeline))


def test_standard_with_timeout_logging_and_tracing(synth: Synthesized) -> None:
    machine = only(synth.pipeline, "AWS::StepFunctions::StateMachine")["Properties"]
    assert machine["StateMachineType"] == "STANDARD"
    assert machine["TracingConfiguration"] == {"Enabled": True}
    assert machine["LoggingConfiguration"]["Level"] == "ALL"
    (destination,) = machine["LoggingConfiguration"]["Destinations"]
    log_group_id = destination["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0]
    log_group = synth.pipeline["Resources"][log_group_id]["Properties"]
    assert log_group["RetentionInDays"] == synth.config.log_retention_days
    definition = state_machine_definition(synth.pipeline)
    assert definition["TimeoutSeconds"] == synth.config.state_machine.execution_timeout_minutes * 60


def test_flow_mark_running_then_rounds_of_shard_segments(synth: Synthesized) -> None:
    definition = state_machine_definition(synth.pipeline)
    states = all_states(definition)
    assert definition["StartAt"] == "MarkRunning"
    assert states["MarkRunning"]["Resource"].endswith(":states:::dynamodb:updateItem")
    assert states["MarkRunning"]["Next"] == "StartRounds"
    assert states["StartRounds"]["Next"] == "Round"
    round_ = definition["States"]["Round"]
    assert (
        round_["Type"] == "Map" and round_["ItemsPath"] == "$.shards" and round_["ResultPath"] == "$.shards"
    )
    assert round_["MaxConcurrency"] == synth.config.state_machine.max_concurrent_shards
    assert round_["ItemSelector"]["item.$"] == "$$.Map.Item.Value"
    processor = round_["ItemProcessor"]
    assert processor["ProcessorConfig"] == {"Mode": "INLINE"}
    # A shard already done is not invoked again; the others run one segment.
    assert processor["StartAt"] == "ShardDone?"
    assert processor["States"]["ShardDone?"]["Default"] == "ProcessSegment"
    segment = processor["States"]["ProcessSegment"]
    assert segment["Resource"].endswith(":states:::lambda:invoke")
    assert segment["Parameters"]["Payload"]["shard.$"] == "$.item.shard"
    assert segment["ResultSelector"] == {
        "shard.$": "$.Payload.shard",
        "done.$": "$.Payload.done",
        "hand_over.$": "$.Payload.hand_over",
    }
    assert (states["Round"]["Next"], states["Tally"]["Next"], states["Decide"]["Next"]) == (
        "Tally",
        "Decide",
        "JobDone?",
    )
    choice = states["JobDone?"]
    assert choice["Default"] == "Round"
    targets = {
        c["Next"]: c for c in choice["Choices"] if "BooleanEquals" not in c or c["Next"] == "MarkSucceeded"
    }
    assert targets["MarkSucceeded"] == {
        "Variable": "$.progress.pending",
        "BooleanEquals": False,
        "Next": "MarkSucceeded",
    }
    budget = next(c for c in choice["Choices"] if "NumericGreaterThanEquals" in c)
    assert (budget["Variable"], budget["NumericGreaterThanEquals"]) == (
        "$.progress.iterations",
        synth.config.state_machine.segment_budget,
    )
    # The next execution gets every shard's item: finished shards stay finished.
    assert states["ContinueAsNew"]["Parameters"]["Input"]["shards.$"] == "$.shards"


def test_transient_errors_retried_with_full_jitter(synth: Synthesized) -> None:
    config = synth.config.state_machine
    retriers = _states(synth)["ProcessSegment"]["Retry"]
    retry = next(r for r in retriers if "TransientError" in r["ErrorEquals"])
    assert {"Lambda.ServiceException", "Lambda.TooManyRequestsException"} <= set(retry["ErrorEquals"])
    # Permanent errors must never be retried: no catch-all in Retry.
    assert "States.ALL" not in retry["ErrorEquals"]
    assert not [e for r in retriers for e in r["ErrorEquals"] if "Permanent" in e or "Validation" in e]
    assert all("States.ALL" not in r["ErrorEquals"] for r in retriers)
    assert retry["JitterStrategy"] == "FULL"
    assert retry["MaxDelaySeconds"] == config.retry_max_delay_seconds
    assert retry["IntervalSeconds"] == config.retry_interval_seconds
    assert retry["MaxAttempts"] == config.retry_max_attempts


def test_every_task_is_caught_and_failures_end_in_the_dlq(synth: Synthesized) -> None:
    states = _states(synth)
    # Top-level tasks catch everything themselves; a task inside the Map is caught by the Map (its error
    # fails the whole round, once).
    top = state_machine_definition(synth.pipeline)["States"]
    for name, state in top.items():
        if state["Type"] in ("Task", "Map"):
            catches = state.get("Catch", [])
            assert any("States.ALL" in c["ErrorEquals"] for c in catches), f"{name} has no catch-all"
    assert "Catch" not in states["ProcessSegment"]
    round_catches = {c["ErrorEquals"][0]: c["Next"] for c in states["Round"]["Catch"]}
    assert round_catches == {"JobCancelledError": "Cancelled", "States.ALL": "RecordFailure"}
    for name in ("MarkRunning", "Round", "MarkSucceeded", "ContinueAsNew"):
        catch_all = next(c for c in states[name]["Catch"] if "States.ALL" in c["ErrorEquals"])
        assert catch_all["Next"] == "RecordFailure"
    assert states["RecordFailure"]["Resource"].endswith(":states:::lambda:invoke")
    assert states["RecordFailure"]["Next"] == "JobFailed"
    # Should the failures function itself fail: plain service integrations, raw error, still to the DLQ.
    fallback = next(c for c in states["RecordFailure"]["Catch"] if "States.ALL" in c["ErrorEquals"])
    assert fallback["Next"] == "MarkFailed"
    assert states["MarkFailed"]["Next"] == "SendToDLQ"
    send = states["SendToDLQ"]
    assert send["Resource"].endswith(":states:::sqs:sendMessage")
    assert send["Parameters"]["MessageBody.$"] == "$.request"
    assert set(send["Parameters"]["MessageAttributes"]) == {
        "error_type",
        "error_message",
        "source_message_id",
        "job_id",
    }
    assert send["Next"] == "JobFailedUnrecorded"
    (not_sent,) = send["Catch"]
    assert not_sent["Next"] == "DeadLetterNotSent"
    assert states["DeadLetterNotSent"] == {
        "Type": "Fail",
        "Error": "DeadLetterNotSent",
        "Cause": states["DeadLetterNotSent"]["Cause"],
    }
    assert states["JobFailed"]["Type"] == "Fail"
    assert (states["JobFailed"]["ErrorPath"], states["JobFailed"]["CausePath"]) == (
        "$.failure.type",
        "$.failure.message",
    )


def test_cancellation_is_not_a_failure(synth: Synthesized) -> None:
    states = _states(synth)
    assert states["Cancelled"]["Type"] == "Succeed"
    assert any(
        c["ErrorEquals"] == ["JobCancelledError"] and c["Next"] == "Cancelled"
        for c in states["Round"]["Catch"]
    )
    assert any(
        c["ErrorEquals"] == ["DynamoDB.ConditionalCheckFailedException"] and c["Next"] == "Cancelled"
        for c in states["MarkRunning"]["Catch"]
    )


def test_continue_as_new_starts_this_same_state_machine(synth: Synthesized) -> None:
    states = _states(synth)
    task = states["ContinueAsNew"]
    assert task["Resource"].endswith(":states:::states:startExecution")
    name = f"resilient-pipeline-{synth.env}-segmented-job"
    assert task["Parameters"]["StateMachineArn"].endswith(f":stateMachine:{name}")
    machine = only(synth.pipeline, "AWS::StepFunctions::StateMachine")["Properties"]
    assert machine["StateMachineName"] == name
    assert task["Parameters"]["Name.$"] == "States.Format('{}-a{}-e{}', $.job_id, $.attempt, $.next.number)"
    assert task["Parameters"]["Input"]["execution.$"] == "$.next.number"
    assert task["Next"] == "HandedOver"


def test_segment_budget_keeps_history_under_80_percent_of_quota(synth: Synthesized) -> None:
    config = synth.config.state_machine
    worst_case = rules.history_events_per_execution(
        segment_budget=config.segment_budget,
        retry_max_attempts=config.retry_max_attempts + config.crash_retry_max_attempts,
        max_shards=config.max_shards,
    )
    assert worst_case <= 0.8 * rules.HISTORY_EVENT_QUOTA


def test_state_machine_role_may_start_only_itself(synth: Synthesized) -> None:
    policies = [
        p["Properties"]["PolicyDocument"]["Statement"]
        for k, p in synth.pipeline["Resources"].items()
        if p["Type"] == "AWS::IAM::Policy" and k.startswith("SegmentedJobStateMachineRole")
    ]
    start = [s for statements in policies for s in statements if s["Action"] == "states:StartExecution"]
    assert start
    for statement in start:
        resources = (
            statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        )
        assert all(
            render(r).endswith(f":stateMachine:resilient-pipeline-{synth.env}-segmented-job")
            for r in resources
        )
