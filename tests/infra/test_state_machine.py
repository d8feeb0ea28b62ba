"""Invariants of the segmented-job state machine, read from the synthesized ASL."""

from __future__ import annotations

from typing import Any

from stacks import rules
from tests.infra.conftest import Synthesized
from tests.infra.template_tools import only, render, state_machine_definition


def _states(synth: Synthesized) -> dict[str, Any]:
    return dict(state_machine_definition(synth.pipeline)["States"])


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


def test_flow_mark_running_then_segment_loop(synth: Synthesized) -> None:
    definition = state_machine_definition(synth.pipeline)
    states = definition["States"]
    assert definition["StartAt"] == "MarkRunning"
    assert states["MarkRunning"]["Resource"].endswith(":states:::dynamodb:updateItem")
    assert states["ProcessSegment"]["Resource"].endswith(":states:::lambda:invoke")
    choice = states["SegmentDone?"]
    assert choice["Default"] == "ProcessSegment"
    targets = {c["Next"]: c for c in choice["Choices"]}
    assert targets["MarkSucceeded"] == {
        "Variable": "$.segment.done",
        "BooleanEquals": True,
        "Next": "MarkSucceeded",
    }
    assert targets["NextExecution"]["NumericGreaterThanEquals"] == synth.config.state_machine.segment_budget


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
    tasks = [name for name, state in states.items() if state["Type"] == "Task"]
    for name in tasks:
        catches = states[name].get("Catch", [])
        assert any("States.ALL" in c["ErrorEquals"] for c in catches), f"{name} has no catch-all"
    for name in ("MarkRunning", "ProcessSegment", "MarkSucceeded", "ContinueAsNew"):
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
        for c in states["ProcessSegment"]["Catch"]
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
