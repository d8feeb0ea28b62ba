"""The integrity rules in the synthesized templates: crashed workers are retried, executions hand over
before their timeout, the watchdog sees executions that end outside the Catch, alarms may reach their
topic, and what the ingest accepts is exactly what the worker may read."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from stacks import rules
from stacks.config import ConfigError, Location, LocationsConfig, load_config
from tests.infra.conftest import Synthesized, synthesize
from tests.infra.template_tools import (
    all_states,
    only,
    policy_statements,
    render,
    resources,
    state_machine_definition,
)


def _states(synth: Synthesized) -> dict[str, Any]:
    return all_states(state_machine_definition(synth.pipeline))


def _function(template: dict[str, Any], handler: str) -> dict[str, Any]:
    return next(
        f["Properties"]
        for f in resources(template, "AWS::Lambda::Function").values()
        if f["Properties"]["Handler"] == handler
    )


# --- crashed environments are retried --------------------------------------------------------------


@pytest.mark.parametrize("state", ["ProcessSegment", "RecordFailure"])
def test_crashed_environments_are_retried_from_the_checkpoint_with_full_jitter(
    synth: Synthesized, state: str
) -> None:
    config = synth.config.state_machine
    retriers = _states(synth)[state]["Retry"]
    crash = next(r for r in retriers if "Runtime.ExitError" in r["ErrorEquals"])
    assert {"Runtime.ExitError", "Runtime.Unknown", "Runtime.OutOfMemory", "Sandbox.Timedout"} <= set(
        crash["ErrorEquals"]
    )
    assert crash["MaxAttempts"] == config.crash_retry_max_attempts > 0
    assert crash["JitterStrategy"] == "FULL"
    assert crash["MaxDelaySeconds"] == config.retry_max_delay_seconds
    transient = next(r for r in retriers if "TransientError" in r["ErrorEquals"])
    assert not set(crash["ErrorEquals"]) & set(transient["ErrorEquals"]), "each error counts in one retrier"


# --- no job stuck RUNNING ---------------------------------------------------------------------------


def test_executions_hand_over_on_time_as_well_as_on_segment_count(synth: Synthesized) -> None:
    states = _states(synth)
    payload = states["ProcessSegment"]["Parameters"]["Payload"]
    assert payload["execution_started_at.$"] == "$$.Execution.StartTime"
    choices = states["JobDone?"]["Choices"]
    assert {"Variable": "$.progress.hand_over", "BooleanEquals": True, "Next": "NextExecution"} in [
        {k: v for k, v in c.items() if k != "Comment"} for c in choices
    ]
    worker = _function(synth.pipeline, "handlers.worker.handler")["Environment"]["Variables"]
    assert worker["HANDOVER_AFTER_SECONDS"] == str(synth.config.state_machine.handover_after_minutes * 60)


def test_the_longest_execution_ends_before_its_timeout(synth: Synthesized) -> None:
    definition = state_machine_definition(synth.pipeline)
    worker = _function(synth.pipeline, "handlers.worker.handler")
    recorder = _function(synth.pipeline, "handlers.failures.handler")
    states = all_states(definition)
    retriers = states["ProcessSegment"]["Retry"]
    attempts = sum(r["MaxAttempts"] for r in retriers)
    delays = sum(
        min(r["IntervalSeconds"] * r["BackoffRate"] ** k, r["MaxDelaySeconds"])
        for r in retriers
        for k in range(r["MaxAttempts"])
    )
    record = states["RecordFailure"]["Retry"]
    recorder_worst = recorder["Timeout"] * (1 + record[0]["MaxAttempts"]) + sum(
        min(record[0]["IntervalSeconds"] * record[0]["BackoffRate"] ** k, record[0]["MaxDelaySeconds"])
        for k in range(record[0]["MaxAttempts"])
    )
    handover = int(worker["Environment"]["Variables"]["HANDOVER_AFTER_SECONDS"])
    # A round runs every shard's segment, at most MaxConcurrency at once: waves of whole passes.
    ingest = _function(synth.pipeline, "handlers.ingest.handler")
    max_shards = int(ingest["Environment"]["Variables"]["MAX_SHARDS"])
    waves = math.ceil(max_shards / states["Round"]["MaxConcurrency"])
    longest = handover + waves * (worker["Timeout"] * (1 + attempts) + delays) + recorder_worst
    assert longest <= definition["TimeoutSeconds"], (
        f"{synth.env}: {longest:.0f} s of work in an execution of {definition['TimeoutSeconds']} s"
    )


def test_the_timeout_rule_names_the_numbers_of_last_rounds_prod() -> None:
    prod = load_config("prod")
    # Round one's prod: no time-based hand-over, 500 segments of up to 900 s in a 24 h execution.
    message = rules.check_execution_timeout(
        execution_timeout_minutes=24 * 60,
        handover_after_minutes=500 * 900 // 60,
        pass_seconds=prod.longest_pass_seconds,
    )
    (text,) = message
    assert "state_machine.execution_timeout_minutes is 1440 (86400 s)" in text
    # 64 shards, 32 at a time: a round is two waves of worst-case passes.
    assert "2 waves of shards x (worker timeout 900 s x 10 invocations with retries = 9000 s" in text
    assert "raise the timeout to at least" in text and "lower handover_after_minutes to at most 1129" in text
    with pytest.raises(ConfigError, match="execution_timeout_minutes is 1440"):
        replace(prod, state_machine=replace(prod.state_machine, handover_after_minutes=1400)).validate()


def _watchdog_rule(synth: Synthesized) -> tuple[str, dict[str, Any]]:
    """The watchdog's rule (beside it, a config trigger's rules match S3's events)."""
    rules = resources(synth.pipeline, "AWS::Events::Rule")
    (found,) = [
        (k, r) for k, r in rules.items() if r["Properties"]["EventPattern"]["source"] == ["aws.states"]
    ]
    return found


def test_the_watchdog_routes_executions_that_end_outside_the_catch(synth: Synthesized) -> None:
    watchdog_id, watchdog = _watchdog_rule(synth)
    rule = watchdog["Properties"]
    pattern = rule["EventPattern"]
    assert pattern["source"] == ["aws.states"]
    assert pattern["detail-type"] == ["Step Functions Execution Status Change"]
    assert sorted(pattern["detail"]["status"]) == ["ABORTED", "FAILED", "TIMED_OUT"]
    # Jobs run on published versions: the state machine's own ARN and any version's.
    arn, versions = pattern["detail"]["stateMachineArn"]
    assert render(arn).endswith(f":stateMachine:resilient-pipeline-{synth.env}-segmented-job")
    assert render(versions["prefix"]) == render(arn) + ":"
    (target,) = rule["Targets"]
    functions = resources(synth.pipeline, "AWS::Lambda::Function")
    failures = next(
        k for k, f in functions.items() if f["Properties"]["Handler"] == "handlers.failures.handler"
    )
    assert target["Arn"] == {"Fn::GetAtt": [failures, "Arn"]}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] > 0
    assert "DeadLetterConfig" in target
    permission = only(synth.pipeline, "AWS::Lambda::Permission")["Properties"]
    assert permission["Principal"] == "events.amazonaws.com"
    assert permission["SourceArn"] == {"Fn::GetAtt": [watchdog_id, "Arn"]}


def test_an_event_the_watchdog_function_fails_on_still_lands_in_its_dead_letter_queue(
    synth: Synthesized,
) -> None:
    config = only(synth.pipeline, "AWS::Lambda::EventInvokeConfig")["Properties"]
    functions = resources(synth.pipeline, "AWS::Lambda::Function")
    failures = next(
        k for k, f in functions.items() if f["Properties"]["Handler"] == "handlers.failures.handler"
    )
    assert config["FunctionName"] == {"Ref": failures}
    assert config["MaximumRetryAttempts"] == 2
    queue = render(config["DestinationConfig"]["OnFailure"]["Destination"])
    assert queue.startswith("<WatchdogDeadLetters"), queue
    rule_target = _watchdog_rule(synth)[1]["Properties"]["Targets"][0]
    assert render(rule_target["DeadLetterConfig"]["Arn"]) == queue


def test_mark_running_and_mark_failed_act_only_on_their_own_attempt(synth: Synthesized) -> None:
    states = _states(synth)
    for name in ("MarkRunning", "MarkFailed"):
        assert "#attempt = :attempt" in states[name]["Parameters"]["ConditionExpression"]


# --- alarms reach people ----------------------------------------------------------------------------


def test_each_alarm_topic_policy_lets_cloudwatch_publish_and_keeps_the_tls_deny(synth: Synthesized) -> None:
    topics = resources(synth.pipeline, "AWS::SNS::Topic")
    assert len(topics) == 2, "one topic per severity"
    policies = [p["Properties"] for p in resources(synth.pipeline, "AWS::SNS::TopicPolicy").values()]
    assert sorted(ref["Ref"] for policy in policies for ref in policy["Topics"]) == sorted(topics)
    for policy in policies:
        (topic,) = policy["Topics"]
        statements = policy["PolicyDocument"]["Statement"]
        deny = next(s for s in statements if s["Effect"] == "Deny")
        assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        allow = next(s for s in statements if s["Effect"] == "Allow")
        assert allow["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
        assert allow["Action"] == "sns:Publish"
        assert allow["Resource"] == topic
        account = synth.config.account or "<AWS::AccountId>"
        assert render(allow["Condition"]["StringEquals"]["aws:SourceAccount"]) == account
        source_arn = render(allow["Condition"]["ArnLike"]["aws:SourceArn"])
        assert source_arn.endswith(f":{account}:alarm:*") and ":cloudwatch:" in source_arn


# --- allowed locations: one source for validation and grants ----------------------------------------


def _grants(template: dict[str, Any], role_prefix: str, action: str) -> list[str]:
    found: list[str] = []
    for statement in policy_statements(template, role_prefix):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        if action in actions:
            targets = (
                statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            )
            found += [render(t) for t in targets]
    return sorted(found)


def test_by_default_jobs_read_and_write_the_data_bucket_only(synth: Synthesized) -> None:
    bucket = f"<import:ResilientPipeline-{synth.env}-Stateful-DataBucketName>"
    variables = _function(synth.pipeline, "handlers.ingest.handler")["Environment"]["Variables"]
    assert json.loads(render(variables["INPUT_LOCATIONS"])) == [f"s3://{bucket}/"]
    assert render(variables["OUTPUT_LOCATION"]) == f"s3://{bucket}/out/"
    assert _grants(synth.pipeline, "IngestRole", "s3:GetObject") == [f"arn:aws:s3:::{bucket}/*"]
    # A pinned version (versioned buckets, object notifications) is read by VersionId: GetObjectVersion.
    for role in ("IngestRole", "WorkerRole"):
        assert _grants(synth.pipeline, role, "s3:GetObjectVersion") == [f"arn:aws:s3:::{bucket}/*"]
    # The worker reads back the gzip access points it writes beside a job's outputs, and no other output.
    assert _grants(synth.pipeline, "WorkerRole", "s3:GetObject") == [
        f"arn:aws:s3:::{bucket}/*",
        f"arn:aws:s3:::{bucket}/out/*/_access/*",
    ]
    assert _grants(synth.pipeline, "WorkerRole", "s3:PutObject") == [f"arn:aws:s3:::{bucket}/out/*"]
    assert _grants(synth.pipeline, "IngestRole", "s3:PutObject") == []


def test_configured_locations_drive_the_validation_and_the_grants(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import stacks.config as config_module

    dev = load_config("dev")
    extra = replace(
        dev,
        locations=LocationsConfig(
            inputs=(Location(None, "in/"), Location("partner-drop", "exports/")),
            output=Location("results-bucket", "jobs/"),
        ),
    )
    monkeypatch.setitem(config_module._CONFIGS, "dev", extra)
    synth = synthesize("dev", tmp_path)
    variables = _function(synth.pipeline, "handlers.ingest.handler")["Environment"]["Variables"]
    data = "<import:ResilientPipeline-dev-Stateful-DataBucketName>"
    assert json.loads(render(variables["INPUT_LOCATIONS"])) == [
        f"s3://{data}/in/",
        "s3://partner-drop/exports/",
    ]
    assert render(variables["OUTPUT_LOCATION"]) == "s3://results-bucket/jobs/"
    assert _grants(synth.pipeline, "WorkerRole", "s3:GetObject") == sorted(
        [
            f"arn:aws:s3:::{data}/in/*",
            "arn:aws:s3:::partner-drop/exports/*",
            "arn:aws:s3:::results-bucket/jobs/*/_access/*",
        ]
    )
    assert _grants(synth.pipeline, "WorkerRole", "s3:PutObject") == ["arn:aws:s3:::results-bucket/jobs/*"]


def test_a_bad_location_fails_synth_naming_it() -> None:
    dev = load_config("dev")
    bad = replace(dev, locations=LocationsConfig(output=Location("Bad_Bucket", "out")))
    with pytest.raises(ConfigError) as raised:
        bad.validate()
    assert "locations.output.bucket 'Bad_Bucket' is not an S3 bucket name" in str(raised.value)
    assert "locations.output.prefix 'out' must end with '/'" in str(raised.value)
