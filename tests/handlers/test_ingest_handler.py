"""The ingest handler on moto: permanent errors to the DLQ with their reason at once, transient ones
reported for redelivery, idempotent acceptance, and resumption of FAILED jobs."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from handlers import ingest as ingest_module
from handlers.ingest import handler
from jobcore.adapters.dynamodb import DynamoJobStore
from jobcore.errors import TransientError
from jobcore.retry import RetryPolicy
from tests.fakes import FakeContext
from tests.handlers.conftest import Aws


def no_sleep(_seconds: float) -> None:
    pass


VALID = {"job_id": "job-1", "input": "s3://data-bucket/in/a.jsonl"}


def sqs_record(body: str | dict[str, Any], message_id: str = "m-1", **attributes: str) -> dict[str, Any]:
    return {
        "messageId": message_id,
        "receiptHandle": "rh",
        "body": body if isinstance(body, str) else json.dumps(body),
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {k: {"stringValue": v, "dataType": "String"} for k, v in attributes.items()},
        "eventSource": "aws:sqs",
    }


def invoke(*records: dict[str, Any]) -> dict[str, Any]:
    return handler({"Records": list(records)}, FakeContext())


def test_accepted_job_is_pending_and_its_execution_started(aws: Aws) -> None:
    assert invoke(sqs_record(VALID)) == {"batchItemFailures": []}
    job = aws.job("job-1")
    assert job is not None
    assert (job["status"], job["attempt"], job["cursor"], job["transform"]) == ("PENDING", 1, 0, "normalize")
    assert job["output_prefix"] == "s3://data-bucket/out/job-1/"
    assert job["chunk_bytes"] == 64 * 1024
    assert job["created_at"].endswith("Z") and job["expires_at"] > 0
    (execution,) = aws.executions()
    assert execution["name"] == "job-1-a1-e0"
    described = aws.sfn.describe_execution(executionArn=execution["executionArn"])
    payload = json.loads(described["input"])
    assert payload == {
        "job_id": "job-1",
        "attempt": 1,
        "execution": 0,
        "request": json.dumps(VALID),
        "source_message_id": "m-1",
        "shards": [{"shard": 0, "done": False, "hand_over": False}],
        # Every execution of the job invokes exactly these (continue-as-new starts the same version).
        "pin": {
            "worker": os.environ["WORKER_VERSION_ARN"],
            "failures": os.environ["FAILURES_VERSION_ARN"],
            "state_machine": os.environ["STATE_MACHINE_VERSION_ARN"],
        },
    }
    # Started on the published version this deploy pinned, and recorded on the job.
    assert described["stateMachineVersionArn"] == os.environ["STATE_MACHINE_VERSION_ARN"]
    assert job["code_pin"] == payload["pin"]
    assert job["code_version"] == {"worker": "1", "digest": os.environ["CODE_DIGEST"]}
    assert job["lineage"] == [{"attempt": 1, "code_version": job["code_version"], "offsets": [0]}]
    assert aws.dlq_messages() == []


def test_job_id_is_derived_from_the_message_id_when_absent(aws: Aws) -> None:
    invoke(sqs_record({"input": "s3://data-bucket/in/a.jsonl"}, message_id="abc-123"))
    assert aws.job("abc-123") is not None


BAD_REQUESTS = [
    ("not json", "body", "not JSON", None),
    ("[1, 2]", "body", "must be a JSON object, not list", None),
    ({**VALID, "colour": "red"}, "colour", "unknown field", "job-1"),
    ({**VALID, "chunk_bytes": "big"}, "chunk_bytes", "must be an integer", "job-1"),
    ({**VALID, "chunk_bytes": True}, "chunk_bytes", "must be an integer", "job-1"),
    ({**VALID, "chunk_bytes": 1024}, "chunk_bytes", "must be within 65536..67108864", "job-1"),
    ({"job_id": "bad id!", "input": VALID["input"]}, "job_id", "must match", None),
    ({"job_id": 7, "input": VALID["input"]}, "job_id", "must be a string", None),
    ({"job_id": "job-1"}, "input", "required", "job-1"),
    ({**VALID, "input": "https://example.com/x"}, "input", "must be an s3://bucket/key URI", "job-1"),
    ({**VALID, "input": "s3://bucket-only"}, "input", "must be an s3://bucket/key URI", "job-1"),
    ({**VALID, "transform": "shout"}, "transform", "is not a registered transform", "job-1"),
    # Faults are injected by the local cloud's chaos API now, never by a request.
    (
        {**VALID, "fault_injection": {"transient_error_rate": 0.1}},
        "fault_injection",
        "unknown field",
        "job-1",
    ),
    (
        json.dumps({**VALID, "input": "s3://data-bucket/" + "k" * 300_000}),
        "body",
        "must be at most 262144",
        "job-1",
    ),
]


@pytest.mark.parametrize(
    ("body", "field", "rule", "job_id"), BAD_REQUESTS, ids=[f"{b[1]}:{b[2][:20]}" for b in BAD_REQUESTS]
)
def test_permanent_errors_go_to_the_dlq_at_once_with_their_reason(
    aws: Aws, body: str | dict[str, Any], field: str, rule: str, job_id: str | None
) -> None:
    record = sqs_record(body, message_id="m-bad")
    assert invoke(record) == {"batchItemFailures": []}, "acknowledged, never retried"
    (message,) = aws.dlq_messages()
    assert message["Body"] == record["body"], "the original body, unchanged"
    attributes = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
    assert attributes["error_type"] == "ValidationError"
    assert attributes["error_message"].startswith(f"{field}: ")
    assert rule in attributes["error_message"]
    assert attributes["source_message_id"] == "m-bad"
    assert aws.executions() == []
    if job_id:
        assert attributes["job_id"] == job_id
        job = aws.job(job_id)
        assert job is not None and job["status"] == "REJECTED"
        assert job["error"]["type"] == "ValidationError" and rule in job["error"]["message"]


def test_duplicate_delivery_starts_nothing_twice(aws: Aws) -> None:
    invoke(sqs_record(VALID, message_id="m-1"), sqs_record(VALID, message_id="m-2"))
    invoke(sqs_record(VALID, message_id="m-1"))
    assert [e["name"] for e in aws.executions()] == ["job-1-a1-e0"]
    assert aws.dlq_messages() == []


def test_crash_between_put_and_start_is_repaired_by_the_redelivery(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jobcore.adapters import messaging

    def boom(self: object, **_: object) -> bool:
        # What the adapter raises for StartExecution's 503 (it translates botocore's errors).
        raise TransientError("ServiceUnavailable: StartExecution answered 503")

    with monkeypatch.context() as patch:
        patch.setattr(messaging.StepFunctionsStarter, "start", boom)
        patch.setattr(ingest_module, "RETRY_POLICY", RetryPolicy(attempts=1, sleep=no_sleep))
        assert invoke(sqs_record(VALID)) == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
    job = aws.job("job-1")
    assert job is not None and job["status"] == "PENDING" and aws.executions() == []
    assert invoke(sqs_record(VALID)) == {"batchItemFailures": []}
    assert [e["name"] for e in aws.executions()] == ["job-1-a1-e0"]


def test_transient_errors_fail_only_their_record(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> None:
    original = DynamoJobStore.create

    def throttled(self: DynamoJobStore, record: Any) -> bool:
        if record.job_id == "job-2":
            raise TransientError("ProvisionedThroughputExceededException: PutItem throttled")
        return original(self, record)

    monkeypatch.setattr(DynamoJobStore, "create", throttled)
    sleeps: list[float] = []
    monkeypatch.setattr(ingest_module, "RETRY_POLICY", RetryPolicy(attempts=2, sleep=sleeps.append))
    response = invoke(
        sqs_record(VALID, message_id="m-1"),
        sqs_record({**VALID, "job_id": "job-2"}, message_id="m-2"),
        sqs_record({**VALID, "job_id": "job-3"}, message_id="m-3"),
    )
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-2"}]}
    assert len(sleeps) == 1, "one retry of job-2's put, with a backoff, before it was handed back"
    assert sorted(e["name"] for e in aws.executions()) == ["job-1-a1-e0", "job-3-a1-e0"]
    assert aws.dlq_messages() == []


def test_records_left_when_time_runs_out_are_handed_back(aws: Aws) -> None:
    context = FakeContext()
    context.clock.advance(context.clock.deadline_s - 1)  # 1 s left, under the reserve
    response = handler({"Records": [sqs_record(VALID)]}, context)
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
    assert aws.job("job-1") is None


def test_failed_job_arriving_again_resumes_from_its_checkpoint(aws: Aws) -> None:
    invoke(sqs_record(VALID))
    aws.ddb.update_item(
        TableName="jobs",
        Key={"job_id": {"S": "job-1"}},
        UpdateExpression="SET #s = :f, #c = :c, #e = :e",
        ExpressionAttributeNames={"#s": "status", "#c": "cursor", "#e": "error"},
        ExpressionAttributeValues={
            ":f": {"S": "FAILED"},
            ":c": {"N": "4096"},
            ":e": {"M": {"type": {"S": "InputNotFoundError"}}},
        },
    )
    # As the state machine's SendToDLQ and a redrive deliver it: same body, job id attribute.
    assert invoke(sqs_record(VALID, message_id="m-redriven", job_id="job-1")) == {"batchItemFailures": []}
    job = aws.job("job-1")
    assert job is not None
    assert (job["status"], job["attempt"], job["cursor"]) == ("PENDING", 2, 4096)
    assert "error" not in job
    assert sorted(e["name"] for e in aws.executions()) == ["job-1-a1-e0", "job-1-a2-e0"]


def test_redriven_request_without_job_id_keeps_its_job(aws: Aws) -> None:
    body = {"input": "s3://data-bucket/in/a.jsonl"}
    invoke(sqs_record(body, message_id="orig"))
    aws.ddb.update_item(
        TableName="jobs",
        Key={"job_id": {"S": "orig"}},
        UpdateExpression="SET #s = :f",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":f": {"S": "FAILED"}},
    )
    invoke(sqs_record(body, message_id="new-id", job_id="orig", source_message_id="orig"))
    assert aws.job("new-id") is None
    job = aws.job("orig")
    assert job is not None and job["attempt"] == 2


def test_a_job_id_reused_by_another_request_is_rejected_and_the_job_left_alone(aws: Aws) -> None:
    invoke(sqs_record(VALID))
    invoke(sqs_record({**VALID, "input": "s3://data-bucket/in/other.jsonl"}, message_id="m-2"))
    job = aws.job("job-1")
    assert job is not None and job["status"] == "PENDING" and job["input"] == VALID["input"]
    (message,) = aws.dlq_messages()
    assert (
        "already used by a different request" in message["MessageAttributes"]["error_message"]["StringValue"]
    )
    assert [e["name"] for e in aws.executions()] == ["job-1-a1-e0"]


@pytest.fixture
def sqs_message_quota() -> Any:
    """SQS's message size as SQS counts it (body and attributes), as the local cloud enforces it."""
    from localcloud.services.sqs import message_size

    undo = message_size.install()
    yield
    undo()


def test_a_request_near_the_sqs_limit_reaches_the_dlq_with_its_reason_cut_to_fit(
    aws: Aws, sqs_message_quota: None
) -> None:
    # The request filled its message: the same body plus the reason attributes would be over 1 MiB.
    head = '{"job_id": "job-big", "input": "s3://data-bucket/in/a.jsonl", "transform": "'
    body = head + "x" * (1024 * 1024 - len(head) - 300) + '"}'
    record = sqs_record(body, message_id="m-big")
    assert invoke(record) == {"batchItemFailures": []}, "acknowledged, never retried"
    (message,) = aws.dlq_messages()
    assert message["Body"] == body, "the original body, whole"
    attributes = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
    assert attributes["error_type"] == "ValidationError"
    assert attributes["source_message_id"] == "m-big"
    assert attributes["job_id"] == "job-big"
    size = len(body.encode()) + sum(len(k) + len("String") + len(v.encode()) for k, v in attributes.items())
    assert size <= 1024 * 1024
