"""The integrity promise on the local cloud, under real faults: a changed input, hostile lines, a killed
worker environment, an execution stopped from outside, alarm delivery, and inputs outside the allowed
locations. Each test drives the deployed pipeline (template, handlers, state machine) end to end."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pipeline_cli.aws import Pipeline
from pipeline_cli.chaos_api import ChaosRules as Chaos
from pipeline_cli.deadletters import peek_messages
from pipeline_cli.main import main
from pipeline_cli.records import build_request, get_record, send_request, upload_input
from pipeline_cli.scenarios import ScenarioRun
from tests.integration.test_scenarios import executions_of, output_lines, wait_terminal

pytestmark = pytest.mark.integration


def wait_for(condition: Callable[[], Any], *, timeout: float, what: str) -> Any:
    """Poll `condition` until it returns something truthy, for at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def function_name(pipeline: Pipeline, label: str) -> str:
    names = [
        f["FunctionName"]
        for page in pipeline.client("lambda").get_paginator("list_functions").paginate()
        for f in page["Functions"]
        if label in f["FunctionName"] and "-Pipeline-" in f["FunctionName"]
    ]
    (name,) = names
    return str(name)


def records(tag: str, count: int, width: int = 60) -> bytes:
    return b"".join(
        json.dumps({"id": i, "v": tag, "pad": "x" * width}).encode() + b"\n" for i in range(count)
    )


def submit(pipeline: Pipeline, tmp_path: Path, job_id: str, body: bytes, **fields: Any) -> str:
    path = tmp_path / f"{job_id}.jsonl"
    path.write_bytes(body)
    uri = upload_input(pipeline, path, job_id)
    send_request(pipeline, {**build_request(job_id=job_id, input_uri=uri, transform="passthrough"), **fields})
    return uri


def dlq_messages_of(pipeline: Pipeline, job_id: str) -> list[dict[str, str]]:
    """The job's DLQ messages as attribute dicts, left in the queue for others.

    Read the way `pipeline dlq list` reads (hidden while listed, then released): a scan with visibility 0
    sees the same first ten messages on every receive, so once earlier tests left more than ten in the
    session's DLQ a job's message was never found (CI run of b652f34).
    """
    messages = peek_messages(pipeline.sqs, pipeline.outputs.dead_letter_queue_url)
    found = []
    for message in messages:
        attributes = {k: v["StringValue"] for k, v in message.attributes.items()}
        if attributes.get("job_id") == job_id:
            found.append({**attributes, "body": message.body})
    return found


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def test_an_input_overwritten_mid_job_fails_it_and_only_a_restart_runs_the_new_version(
    pipeline: Pipeline, chaos: Chaos, tmp_path: Path
) -> None:
    job_id = unique("it-changed")
    old = records("old", 20_000)
    # Slow reads, so the job is surely mid-way when the input changes.
    chaos.add(service="s3", operation="GetObject", latency_ms=150)
    uri = submit(pipeline, tmp_path, job_id, old)
    wait_for(
        lambda: (get_record(pipeline, job_id) or {}).get("cursor", 0) > 0,
        timeout=60,
        what=f"{job_id} to make progress",
    )
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    old_etag = pipeline.s3.head_object(Bucket=bucket, Key=key)["ETag"]
    new = records("new", 20_000)  # same size, new values: the silent mix of round one
    assert len(new) == len(old)
    pipeline.s3.put_object(Bucket=bucket, Key=key, Body=new)
    new_etag = pipeline.s3.head_object(Bucket=bucket, Key=key)["ETag"]
    chaos.clear()

    record = wait_terminal(pipeline, job_id, timeout=120)
    assert (record["status"], record["error"]["type"]) == ("FAILED", "InputChangedError")
    assert old_etag in record["error"]["message"] and new_etag in record["error"]["message"]
    assert {json.loads(line)["v"] for line in output_lines(pipeline, job_id)} == {"old"}
    (failed,) = wait_for(lambda: dlq_messages_of(pipeline, job_id), timeout=30, what="the DLQ message")
    assert failed["error_type"] == "InputChangedError"

    # A plain redrive would mix versions: refused, with the way out in the reason.
    assert main(["dlq", "redrive", "--job-id", job_id, "--env", "local"]) == 0
    refused = wait_for(
        lambda: [m for m in dlq_messages_of(pipeline, job_id) if "--restart" in m["error_message"]],
        timeout=60,
        what="the refused redrive back in the DLQ",
    )
    assert refused[0]["error_type"] == "InputChangedError"
    current = get_record(pipeline, job_id)
    assert current is not None and (current["status"], current["attempt"]) == ("FAILED", 1)

    assert main(["dlq", "redrive", "--job-id", job_id, "--restart", "--env", "local"]) == 0
    record = wait_terminal(pipeline, job_id, attempt=2, timeout=180)
    assert (record["status"], record["attempt"], record["records_out"]) == ("SUCCEEDED", 2, 20_000)
    assert record["output_prefix"].endswith(f"/out/{job_id}.restart-2/")
    s3, data = pipeline.s3, pipeline.outputs.data_bucket_name
    keys = sorted(
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=data, Prefix=f"out/{job_id}.restart-2/part-"
        )
        for o in page.get("Contents", [])
    )
    body = b"".join(s3.get_object(Bucket=data, Key=k)["Body"].read() for k in keys)
    assert body == new, "passthrough is byte-exact: the restart's output is the new input, byte for byte"
    assert {json.loads(line)["v"] for line in output_lines(pipeline, job_id)} == {"old"}, (
        "attempt 1 untouched"
    )


def test_hostile_lines_are_rejects_with_reasons_and_the_job_succeeds(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    job_id = unique("it-hostile")
    good = records("ok", 300)
    hostile = [
        b"[" * 100_000,
        b'{"v":"\\uDFAA"}',
        b'{"v":1e400}',
        b"\x0b",
        b'{"v":"a\x00a"}',
        b'{"v":"' + b"z" * 2_000_000 + b'"}',  # over the 1 MiB line limit
    ]
    blanks = [b"", b"   ", b"\t\r"]
    halves = good.splitlines(keepends=True)
    body = b"".join(halves[:150]) + b"\n".join(hostile + blanks) + b"\n" + b"".join(halves[150:])
    # compact parses and re-writes every record, so a lone surrogate or 1e400 (valid JSON text that no
    # parsed value can be written back as) is a reject too; passthrough would keep those lines' bytes.
    submit(pipeline, tmp_path, job_id, body, transform="compact")
    record = wait_terminal(pipeline, job_id, timeout=180)
    assert record["status"] == "SUCCEEDED", record.get("error")
    assert (record["records_out"], record["records_rejected"], record["records_blank"]) == (300, 6, 3)
    assert record["records_in"] + record["records_blank"] == body.count(b"\n")
    assert [json.loads(line) for line in output_lines(pipeline, job_id)] == [
        json.loads(line) for line in good.splitlines()
    ]
    reasons = [json.loads(line)["error"] for line in output_lines(pipeline, job_id, rejects=True)]
    assert any(r == "nested deeper than 128 levels" for r in reasons)
    assert any("lone surrogate U+DFAA" in r for r in reasons)
    assert any(r.startswith("line is 2000008 bytes, over the maximum of 1048576") for r in reasons)


def test_a_killed_worker_environment_resumes_from_its_checkpoint(
    pipeline: Pipeline, chaos: Chaos, tmp_path: Path
) -> None:
    job_id = unique("it-crash")
    body = records("c", 6_000)
    chaos.add(
        service="lambda",
        operation="Invoke",
        function=function_name(pipeline, "Worker"),
        error="crash",
        count=2,
    )
    submit(pipeline, tmp_path, job_id, body)
    record = wait_terminal(pipeline, job_id, timeout=180)
    assert record["status"] == "SUCCEEDED", record.get("error")
    assert [json.loads(line)["id"] for line in output_lines(pipeline, job_id)] == list(range(6_000)), (
        "no record lost or duplicated"
    )
    (rule,) = chaos.rules()
    assert rule["injected"] == 2
    history = [
        event
        for name in executions_of(pipeline, job_id)
        for event in pipeline.stepfunctions.get_execution_history(
            executionArn=pipeline.outputs.state_machine_arn.replace(":stateMachine:", ":execution:")
            + f":{name}",
            maxResults=1000,
        )["events"]
    ]
    failures = [e["taskFailedEventDetails"]["error"] for e in history if e["type"] == "TaskFailed"]
    assert failures.count("Runtime.ExitError") == 2, failures


def test_an_execution_stopped_from_outside_fails_its_job_within_30_seconds(
    pipeline: Pipeline, chaos: Chaos, tmp_path: Path
) -> None:
    job_id = unique("it-stopped")
    chaos.add(service="s3", operation="GetObject", latency_ms=150)
    submit(pipeline, tmp_path, job_id, records("s", 20_000))
    wait_for(
        lambda: (get_record(pipeline, job_id) or {}).get("status") == "RUNNING",
        timeout=60,
        what=f"{job_id} to run",
    )
    running = wait_for(
        lambda: [n for n, status in executions_of(pipeline, job_id).items() if status == "RUNNING"],
        timeout=30,
        what="its running execution",
    )
    arn = pipeline.outputs.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{running[0]}"
    pipeline.stepfunctions.stop_execution(executionArn=arn, error="Operator", cause="stopped by hand")
    stopped = time.monotonic()
    record = wait_terminal(pipeline, job_id, timeout=30)
    assert time.monotonic() - stopped <= 30
    assert (record["status"], record["error"]["type"]) == ("FAILED", "ExecutionAborted")
    assert running[0] in record["error"]["message"]
    (message,) = wait_for(lambda: dlq_messages_of(pipeline, job_id), timeout=30, what="the DLQ message")
    assert message["error_type"] == "ExecutionAborted"
    assert json.loads(message["body"])["job_id"] == job_id


def test_alarm_notifications_reach_the_topic_subscribers(
    pipeline: Pipeline, demo_runs: dict[str, ScenarioRun]
) -> None:
    """The demo left requests in the DLQ: its alarm goes to ALARM and the topic (policy evaluated as on
    AWS) must deliver CloudWatch's notification to a subscriber."""
    topic = pipeline.outputs.alarm_topic_arn
    assert topic
    queue_url = pipeline.sqs.create_queue(QueueName=unique("alarm-inbox"))["QueueUrl"]
    queue_arn = pipeline.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    pipeline.client("sns").subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    cloudwatch = pipeline.client("cloudwatch")
    alarm = next(
        a["AlarmName"]
        for a in cloudwatch.describe_alarms()["MetricAlarms"]
        if "DeadLetterQueueNotEmpty" in a["AlarmName"] and "Watchdog" not in a["AlarmName"]
    )
    # Force a transition so that a notification is due now, whatever the alarm's state was.
    cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="OK", StateReason="integration test: reset")

    def notified() -> list[dict[str, Any]]:
        messages = pipeline.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get(
            "Messages", []
        )
        found = [json.loads(json.loads(m["Body"])["Message"]) for m in messages]
        return [n for n in found if n.get("AlarmName") == alarm and n.get("NewStateValue") == "ALARM"]

    (notification,) = wait_for(notified, timeout=60, what=f"an ALARM notification of {alarm}")
    assert notification["NewStateValue"] == "ALARM"


def test_an_input_outside_the_allowed_locations_is_rejected_naming_them(pipeline: Pipeline) -> None:
    job_id = unique("it-elsewhere")
    pipeline.s3.create_bucket(Bucket="it-someone-elses-bucket")
    pipeline.s3.put_object(Bucket="it-someone-elses-bucket", Key="x.jsonl", Body=records("x", 3))
    send_request(pipeline, build_request(job_id=job_id, input_uri="s3://it-someone-elses-bucket/x.jsonl"))
    record = wait_terminal(pipeline, job_id, timeout=60)
    assert (record["status"], record["error"]["type"]) == ("REJECTED", "ValidationError")
    message = record["error"]["message"]
    assert message.startswith("input: ") and "allowed input locations" in message
    assert f"s3://{pipeline.outputs.data_bucket_name}/" in message
