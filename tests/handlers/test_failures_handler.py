"""The failure recorder on moto: the state machine's Catch path and the watchdog's status-change events
both end a job FAILED with a clean {type, message} and its request in the DLQ, exactly once per failure."""

from __future__ import annotations

import json
from typing import Any

import pytest

from handlers.failures import handler
from handlers.ingest import handler as ingest_handler
from tests.fakes import FakeContext
from tests.handlers.conftest import BUCKET, Aws

REQUEST = {"job_id": "job-1", "input": f"s3://{BUCKET}/in/a.jsonl"}
LAMBDA_CAUSE = json.dumps(
    {
        "errorMessage": "RequestId: 0f1e2d3c-aaaa-bbbb-cccc-000011112222 Error: Runtime exited with error: signal: killed",
        "errorType": "Runtime.ExitError",
    }
)
TRACEBACK_CAUSE = json.dumps(
    {
        "errorMessage": "[Errno 2] No such file or directory: '/var/task/jobcore/templates/x.json'",
        "errorType": "FileNotFoundError",
        "requestId": "r-1",
        "stackTrace": [
            '  File "/var/task/handlers/worker.py", line 61, in handler\n    result = run_segment(\n'
        ],
    }
)


def accept(aws: Aws, status: str = "RUNNING") -> None:
    record = {"messageId": "m-1", "body": json.dumps(REQUEST), "messageAttributes": {}}
    assert ingest_handler({"Records": [record]}, FakeContext()) == {"batchItemFailures": []}
    aws.ddb.update_item(
        TableName="jobs",
        Key={"job_id": {"S": "job-1"}},
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": {"S": status}},
    )


def status_change(status: str, name: str = "job-1-a1-e0", **detail: Any) -> dict[str, Any]:
    return {
        "version": "0",
        "detail-type": "Step Functions Execution Status Change",
        "source": "aws.states",
        "detail": {
            "executionArn": f"arn:aws:states:us-east-1:123456789012:execution:segmented-job:{name}",
            "name": name,
            "status": status,
            **detail,
        },
    }


def dlq(aws: Aws) -> list[dict[str, str]]:
    return [
        {k: v["StringValue"] for k, v in m["MessageAttributes"].items()} | {"body": m["Body"]}
        for m in aws.dlq_messages()
    ]


def test_a_lambda_failure_from_the_state_machine_is_recorded_clean(aws: Aws) -> None:
    accept(aws)
    result = handler(
        {"job_id": "job-1", "attempt": 1, "error": {"Error": "FileNotFoundError", "Cause": TRACEBACK_CAUSE}},
        FakeContext(),
    )
    assert result["outcome"] == "recorded"
    job = aws.job("job-1")
    assert job is not None and job["status"] == "FAILED"
    assert job["error"] == {
        "type": "FileNotFoundError",
        "message": "[Errno 2] No such file or directory: 'x.json'",
    }
    (message,) = dlq(aws)
    assert message == {
        "error_type": "FileNotFoundError",
        "error_message": "[Errno 2] No such file or directory: 'x.json'",
        "source_message_id": "m-1",
        "job_id": "job-1",
        "body": json.dumps(REQUEST),
    }
    assert "stackTrace" not in json.dumps(job, default=str) and "/var/task" not in json.dumps(
        job, default=str
    )


def test_a_retried_recording_sends_again_but_marks_once(aws: Aws) -> None:
    accept(aws)
    event = {"job_id": "job-1", "attempt": 1, "error": {"Error": "Runtime.ExitError", "Cause": LAMBDA_CAUSE}}
    assert handler(event, FakeContext())["outcome"] == "recorded"
    assert handler(event, FakeContext())["outcome"] == "resent"
    assert [m["error_message"] for m in dlq(aws)] == ["Runtime exited with error: signal: killed"] * 2


@pytest.mark.parametrize(
    ("status", "error_type", "words"),
    [
        ("TIMED_OUT", "ExecutionTimedOut", "hit its execution timeout (30-minute limit)"),
        ("ABORTED", "ExecutionAborted", "stopped from outside the pipeline"),
        ("FAILED", "ExecutionFailed", "States.Runtime: An error occurred"),
    ],
)
def test_the_watchdog_fails_a_job_whose_execution_ended_outside_the_catch(
    aws: Aws, status: str, error_type: str, words: str
) -> None:
    accept(aws)
    event = status_change(status, error="States.Runtime", cause="An error occurred while executing the state")
    assert handler(event, FakeContext())["outcome"] == "recorded"
    job = aws.job("job-1")
    assert job is not None and job["status"] == "FAILED" and job["error"]["type"] == error_type
    assert words in job["error"]["message"] and "job-1-a1-e0" in job["error"]["message"]
    (message,) = dlq(aws)
    assert (message["error_type"], message["job_id"]) == (error_type, "job-1")


def test_the_watchdog_leaves_alone_a_failure_the_state_machine_recorded(aws: Aws) -> None:
    accept(aws)
    handler(
        {"job_id": "job-1", "attempt": 1, "error": {"Error": "InputChangedError", "Cause": "x"}},
        FakeContext(),
    )
    assert handler(status_change("FAILED", error="JobFailed"), FakeContext())["outcome"] == "ignored"
    assert len(dlq(aws)) == 1, "one failure, one DLQ message"


@pytest.mark.parametrize("status", ["CANCELLED", "SUCCEEDED"])
def test_the_watchdog_leaves_alone_a_cancelled_or_finished_job(aws: Aws, status: str) -> None:
    accept(aws, status=status)
    assert handler(status_change("ABORTED"), FakeContext())["outcome"] == "ignored"
    job = aws.job("job-1")
    assert job is not None and job["status"] == status
    assert dlq(aws) == []


def test_the_watchdog_leaves_alone_an_execution_of_a_superseded_attempt(aws: Aws) -> None:
    accept(aws)
    assert handler(status_change("ABORTED", name="job-1-a0-e3"), FakeContext())["outcome"] == "ignored"
    job = aws.job("job-1")
    assert job is not None and job["status"] == "RUNNING"


def test_the_watchdog_resends_when_the_state_machine_could_not_reach_the_dlq(aws: Aws) -> None:
    accept(aws)
    aws.ddb.update_item(
        TableName="jobs",
        Key={"job_id": {"S": "job-1"}},
        UpdateExpression="SET #s = :f",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":f": {"S": "FAILED"}},
    )
    assert handler(status_change("FAILED", error="DeadLetterNotSent"), FakeContext())["outcome"] == "resent"
    assert len(dlq(aws)) == 1


def test_job_ids_that_look_like_execution_names_are_parsed_from_the_right(aws: Aws) -> None:
    assert handler(status_change("SUCCEEDED", name="x-a1-e2-a3-e4"), FakeContext())["outcome"] == "ignored"
    from jobcore.failures import from_status_change

    failure = from_status_change({"name": "x-a1-e2-a3-e4", "status": "ABORTED"})
    assert failure is not None and (failure.job_id, failure.attempt) == ("x-a1-e2", 3)
