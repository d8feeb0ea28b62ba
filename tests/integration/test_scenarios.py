"""End to end on the local cloud: the real template, the real handlers, the real state machine."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from pipeline_cli.aws import Pipeline
from pipeline_cli.main import main
from pipeline_cli.records import build_request, get_record, send_request, upload_input
from pipeline_cli.scenarios import DLQ_ALARM, ScenarioRun, alarm_states, count_failed_tries
from pipeline_contract import TERMINAL

pytestmark = pytest.mark.integration


def wait_terminal(
    pipeline: Pipeline, job_id: str, *, attempt: int = 1, timeout: float = 120
) -> dict[str, Any]:
    """The job's record once `attempt` (or a later one) has ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = get_record(pipeline, job_id)
        if record and int(record["attempt"]) >= attempt and record["status"] in TERMINAL:
            return record
        time.sleep(0.5)
    raise AssertionError(
        f"{job_id} attempt {attempt} not finished after {timeout}s: {get_record(pipeline, job_id)}"
    )


def wait_for_ingest_queue_to_drain(pipeline: Pipeline, timeout: float = 30) -> None:
    """Until nothing waits on the ingest queue and nothing is in flight: every request sent so far has been
    handled by the ingest."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        attributes = pipeline.sqs.get_queue_attributes(
            QueueUrl=pipeline.outputs.ingest_queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        if (
            int(attributes["ApproximateNumberOfMessages"])
            + int(attributes["ApproximateNumberOfMessagesNotVisible"])
            == 0
        ):
            return
        time.sleep(0.2)
    raise AssertionError(f"the ingest queue still holds messages after {timeout}s")


def executions_of(pipeline: Pipeline, job_id: str) -> dict[str, str]:
    sfn = pipeline.stepfunctions
    names: dict[str, str] = {}
    for page in sfn.get_paginator("list_executions").paginate(
        stateMachineArn=pipeline.outputs.state_machine_arn
    ):
        for execution in page["executions"]:
            if execution["name"].startswith(f"{job_id}-a"):
                names[execution["name"]] = execution["status"]
    return names


def output_lines(pipeline: Pipeline, job_id: str, *, rejects: bool = False) -> list[bytes]:
    s3 = pipeline.s3
    bucket = pipeline.outputs.data_bucket_name
    prefix = f"out/{job_id}/rejects/" if rejects else f"out/{job_id}/part-"
    keys = [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for o in page.get("Contents", [])
    ]
    assert keys == sorted(keys)
    return [
        line for key in keys for line in s3.get_object(Bucket=bucket, Key=key)["Body"].read().splitlines()
    ]


def test_every_demo_scenario_ends_as_promised(demo_runs: dict[str, ScenarioRun]) -> None:
    problems = {key: run.problems() for key, run in demo_runs.items()}
    assert problems == {key: [] for key in demo_runs}


def test_long_job_outlives_the_recursion_limit_through_continue_as_new(
    pipeline: Pipeline, demo_runs: dict[str, ScenarioRun]
) -> None:
    run = demo_runs["long"]
    assert run.status == "SUCCEEDED"
    assert run.number("segments") >= 40
    job_id = run.scenario.job_id
    executions = executions_of(pipeline, job_id)
    assert {f"{job_id}-a1-e0", f"{job_id}-a1-e1", f"{job_id}-a1-e2"} <= set(executions)
    assert set(executions.values()) == {"SUCCEEDED"}
    lines = output_lines(pipeline, job_id)
    assert len(lines) == run.number("records_out") == run.number("records_in")
    ids = [json.loads(line)["id"] for line in lines]
    assert ids == list(range(len(ids))), "every record once, in input order"
    assert json.loads(lines[0]) == {"id": 0, "first_name": "user 0", "e_mail": "u0@example.com", "score": 0}


def test_output_and_logs_of_a_finished_job_through_the_cli(
    pipeline: Pipeline, demo_runs: dict[str, ScenarioRun], capsys: pytest.CaptureFixture[str]
) -> None:
    job_id = demo_runs["long"].scenario.job_id
    capsys.readouterr()
    assert main(["output", job_id, "--env", "local"]) == 0
    streamed = capsys.readouterr().out.encode().splitlines()
    assert streamed == output_lines(pipeline, job_id), "the parts, in input order"
    assert main(["logs", job_id, "--env", "local", "--json"]) == 0
    lines = json.loads(capsys.readouterr().out)
    messages = {(line["function"].split("-")[3], line["message"]) for line in lines}
    assert any(message == "checkpoint" for _, message in messages), messages
    assert any(message == "job accepted" for _, message in messages), messages
    assert all(line["job_id"] == job_id for line in lines)
    assert [line["timestamp"] for line in lines] == sorted(line["timestamp"] for line in lines)


def test_injected_transient_faults_are_retried_to_success(demo_runs: dict[str, ScenarioRun]) -> None:
    run = demo_runs["faults"]
    assert run.status == "SUCCEEDED"
    assert run.retries >= 2


def test_malformed_request_is_rejected_with_its_reason_in_the_dlq(demo_runs: dict[str, ScenarioRun]) -> None:
    run = demo_runs["malformed"]
    assert run.status == "REJECTED"
    (message,) = run.dlq
    assert message.attribute("error_type") == "ValidationError"
    assert (message.attribute("error_message") or "").startswith("input: ")
    assert json.loads(message.body)["input"] == "ftp://not-s3/data.jsonl"


def test_missing_input_fails_the_job_and_sends_its_request_to_the_dlq(
    demo_runs: dict[str, ScenarioRun],
) -> None:
    run = demo_runs["missing"]
    assert run.status == "FAILED"
    assert run.record is not None and run.record["error"]["type"] == "InputNotFoundError"
    (message,) = run.dlq
    assert message.attribute("error_type") == "InputNotFoundError"
    assert message.attribute("job_id") == run.scenario.job_id


def test_bad_records_are_rejected_counted_and_written_with_reasons(
    pipeline: Pipeline, demo_runs: dict[str, ScenarioRun]
) -> None:
    run = demo_runs["bad-records"]
    assert run.status == "SUCCEEDED"
    assert run.number("records_rejected") > 0
    rejects = [json.loads(line) for line in output_lines(pipeline, run.scenario.job_id, rejects=True)]
    assert len(rejects) == run.number("records_rejected")
    assert all(r["error"].startswith("not JSON") and isinstance(r["offset"], int) for r in rejects)


def test_dlq_alarm_goes_to_alarm(pipeline: Pipeline, demo_runs: dict[str, ScenarioRun]) -> None:
    alarms = alarm_states(pipeline, wait_for_dlq_alarm=30)
    assert [state for name, state in alarms.items() if DLQ_ALARM in name] == ["ALARM"]


def test_duplicate_delivery_runs_one_execution_with_one_set_of_outputs(
    pipeline: Pipeline, tmp_path: Any, demo_runs: dict[str, ScenarioRun]
) -> None:
    path = tmp_path / "dup.jsonl"
    path.write_text("".join(json.dumps({"n": i}) + "\n" for i in range(500)))
    uri = upload_input(pipeline, path, "it-duplicate")
    request = build_request(job_id="it-duplicate", input_uri=uri, transform="passthrough")
    send_request(pipeline, request)
    send_request(pipeline, request)
    record = wait_terminal(pipeline, "it-duplicate")
    send_request(pipeline, request)  # a late duplicate, after the job finished
    wait_for_ingest_queue_to_drain(pipeline)
    assert record["status"] == "SUCCEEDED"
    assert executions_of(pipeline, "it-duplicate") == {"it-duplicate-a1-e0": "SUCCEEDED"}
    final = get_record(pipeline, "it-duplicate")
    assert final is not None and (final["records_out"], final["executions"], final["attempt"]) == (500, 1, 1)
    assert [json.loads(line)["n"] for line in output_lines(pipeline, "it-duplicate")] == list(range(500))


def test_failed_job_redriven_after_its_input_is_fixed_resumes_and_succeeds(
    pipeline: Pipeline, tmp_path: Any, demo_runs: dict[str, ScenarioRun], capsys: pytest.CaptureFixture[str]
) -> None:
    job_id = demo_runs["missing"].scenario.job_id
    path = tmp_path / "absent.jsonl"
    path.write_text("".join(json.dumps({"k": i}) + "\n" for i in range(300)))
    pipeline.s3.upload_file(str(path), pipeline.outputs.data_bucket_name, f"in/{job_id}/absent.jsonl")
    assert main(["dlq", "redrive", "--job-id", job_id, "--env", "local"]) == 0
    record = wait_terminal(pipeline, job_id, attempt=2)
    assert (record["status"], record["attempt"], record["records_out"]) == ("SUCCEEDED", 2, 300)
    assert "error" not in record
    assert executions_of(pipeline, job_id)[f"{job_id}-a2-e0"] == "SUCCEEDED"
    assert count_failed_tries(pipeline, record) == 0
