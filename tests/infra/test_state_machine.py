"""Invariants of the segmented-job state machine, read from the synthesized ASL."""

from __future__ import annotations

from typing import Any

from stacks import rules
from tests.infra.conftest import Synthesized
from tests.infra.template_tools import (
    all_states,
    only,
    policies,
    policy_statements,
    render,
    state_machine_definition,
)


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
        c["Next"]: c for c in choice["Choices"] if "BooleanEquals" not in c or c["Next"] == "FinishJob"
    }
    assert targets["FinishJob"] == {
        "Variable": "$.progress.pending",
        "BooleanEquals": False,
        "Next": "FinishJob",
    }
    # The end of the job: the whole job's reject ratio (jobcore.finish), then SUCCEEDED on condition that
    # the counters are the ones it checked.
    finish = states["FinishJob"]
    assert finish["Parameters"]["Payload"] == {
        "job_id.$": "$.job_id",
        "attempt.$": "$.attempt",
        "finish": True,
    }
    assert finish["ResultPath"] == "$.finish" and finish["Next"] == "MarkSucceeded"
    condition = states["MarkSucceeded"]["Parameters"]["ConditionExpression"]
    assert condition.endswith("AND records_in = :records_in AND records_rejected = :records_rejected")
    finish_catches = {c["ErrorEquals"][0]: c["Next"] for c in finish["Catch"]}
    assert finish_catches == {"JobCancelledError": "Cancelled", "States.ALL": "RecordFailure"}
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
    for name in ("MarkRunning", "Round", "FinishJob", "MarkSucceeded", "ContinueAsNew"):
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


def test_continue_as_new_starts_the_version_the_job_is_pinned_to(synth: Synthesized) -> None:
    states = _states(synth)
    task = states["ContinueAsNew"]
    assert task["Resource"].endswith(":states:::states:startExecution")
    # Never the state machine's latest definition: the job's own version, carried on with the pin.
    assert task["Parameters"]["StateMachineArn.$"] == "$.pin.state_machine"
    assert "StateMachineArn" not in task["Parameters"]
    assert task["Parameters"]["Input"]["pin.$"] == "$.pin"
    assert task["Parameters"]["Name.$"] == "States.Format('{}-a{}-e{}', $.job_id, $.attempt, $.next.number)"
    assert task["Parameters"]["Input"]["execution.$"] == "$.next.number"
    assert task["Next"] == "HandedOver"


def test_every_task_that_invokes_a_function_invokes_the_pinned_version(synth: Synthesized) -> None:
    states = _states(synth)
    invokes = {
        name: state
        for name, state in states.items()
        if ":states:::lambda:invoke" in str(state.get("Resource"))
    }
    assert set(invokes) == {"ProcessSegment", "FinishJob", "RecordFailure"}
    assert invokes["ProcessSegment"]["Parameters"]["FunctionName.$"] == "$.pin.worker"
    assert invokes["FinishJob"]["Parameters"]["FunctionName.$"] == "$.pin.worker"
    assert invokes["RecordFailure"]["Parameters"]["FunctionName.$"] == "$.pin.failures"
    for state in invokes.values():
        assert "FunctionName" not in state["Parameters"], "an unqualified function runs whatever is deployed"
    # The Map hands the pin to every shard's iteration.
    assert states["Round"]["ItemSelector"]["pin.$"] == "$.pin"


def test_every_deploy_publishes_versions_that_outlive_it(synth: Synthesized) -> None:
    """What the ingest pins new jobs to is this deploy's published versions; CloudFormation keeps a version
    the next deploy replaces (Retain), so the jobs pinned to it run on."""
    resources = synth.pipeline["Resources"]
    ingest = next(
        r["Properties"]["Environment"]["Variables"]
        for r in resources.values()
        if r["Type"] == "AWS::Lambda::Function" and r["Properties"]["Handler"] == "handlers.ingest.handler"
    )
    for variable, handler in (("WORKER_VERSION_ARN", "worker"), ("FAILURES_VERSION_ARN", "failures")):
        version = resources[ingest[variable]["Ref"]]
        assert version["Type"] == "AWS::Lambda::Version"
        function = resources[version["Properties"]["FunctionName"]["Ref"]]
        assert function["Properties"]["Handler"] == f"handlers.{handler}.handler"
        assert (version["DeletionPolicy"], version["UpdateReplacePolicy"]) == ("Retain", "Retain")
    machine_version = resources[ingest["STATE_MACHINE_VERSION_ARN"]["Fn::GetAtt"][0]]
    assert machine_version["Type"] == "AWS::StepFunctions::StateMachineVersion"
    assert (machine_version["DeletionPolicy"], machine_version["UpdateReplacePolicy"]) == ("Retain", "Retain")
    # A new version whenever the definition changes (its revision), none when it does not.
    assert (
        machine_version["Properties"]["StateMachineRevisionId"]["Fn::GetAtt"][1] == "StateMachineRevisionId"
    )
    worker = next(
        r["Properties"]["Environment"]["Variables"]
        for r in resources.values()
        if r["Type"] == "AWS::Lambda::Function" and r["Properties"]["Handler"] == "handlers.worker.handler"
    )
    assert worker["CODE_DIGEST"] == ingest["CODE_DIGEST"]
    assert len(worker["CODE_DIGEST"]) == 16


def test_segment_budget_keeps_history_under_80_percent_of_quota(synth: Synthesized) -> None:
    config = synth.config.state_machine
    worst_case = rules.history_events_per_execution(
        segment_budget=config.segment_budget,
        retry_max_attempts=config.retry_max_attempts + config.crash_retry_max_attempts,
        max_shards=config.max_shards,
    )
    assert worst_case <= 0.8 * rules.HISTORY_EVENT_QUOTA


def test_state_machine_role_may_start_only_its_own_versions(synth: Synthesized) -> None:
    # The state machine's role: CDK's (SegmentedJobStateMachineRole...) or, under strict, the profile's.
    statements = policy_statements(synth.pipeline, "SegmentedJob")
    start = [s for s in statements if s["Action"] == "states:StartExecution"]
    assert start
    for statement in start:
        resources = (
            statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        )
        assert all(
            render(r).endswith(f":stateMachine:resilient-pipeline-{synth.env}-segmented-job:*")
            for r in resources
        )


def test_lambda_grants_name_the_pipelines_own_functions_and_their_versions(synth: Synthesized) -> None:
    """Invoke permissions are `function:NAME:*` for the pipeline's own functions: versions only (the
    unqualified function would run whatever is deployed), nothing wider."""
    functions = {k for k, r in synth.pipeline["Resources"].items() if r["Type"] == "AWS::Lambda::Function"}
    invoke = [
        statement
        for resource in policies(synth.pipeline).values()
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]
        if "lambda:InvokeFunction"
        in (statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]])
    ]
    assert invoke
    for statement in invoke:
        targets = (
            statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        )
        for target in targets:
            rendered = render(target)
            assert rendered.endswith(".Arn>:*"), rendered
            assert rendered.removeprefix("<").split(".")[0] in functions
