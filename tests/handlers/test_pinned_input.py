"""Pinned inputs on moto S3: the ingest records the version it accepted, every read asks for exactly that
version, a change fails the job with InputChangedError, and a redrive resumes, refuses or restarts."""

from __future__ import annotations

import json
from typing import Any

import pytest

from handlers.ingest import handler as ingest_handler
from handlers.worker import handler as worker_handler
from jobcore.errors import InputChangedError
from tests.fakes import FakeContext
from tests.handlers.conftest import BUCKET, Aws

KEY = "in/pinned.jsonl"
URI = f"s3://{BUCKET}/{KEY}"


def lines(n: int, tag: str) -> bytes:
    return b"".join(json.dumps({"i": i, "v": tag}).encode() + b"\n" for i in range(n))


def ingest(body: dict[str, Any], message_id: str = "m-1", **attributes: str) -> dict[str, Any]:
    record = {
        "messageId": message_id,
        "body": json.dumps(body),
        "messageAttributes": {k: {"stringValue": v, "dataType": "String"} for k, v in attributes.items()},
    }
    result: dict[str, Any] = ingest_handler({"Records": [record]}, FakeContext())
    return result


def mark_running(aws: Aws, job_id: str = "job-1") -> None:
    aws.ddb.update_item(
        TableName="jobs",
        Key={"job_id": {"S": job_id}},
        UpdateExpression="SET #s = :r",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":r": {"S": "RUNNING"}},
    )


def mark_failed(aws: Aws, job_id: str = "job-1") -> None:
    aws.ddb.update_item(
        TableName="jobs",
        Key={"job_id": {"S": job_id}},
        UpdateExpression="SET #s = :f, #e = :e",
        ExpressionAttributeNames={"#s": "status", "#e": "error"},
        ExpressionAttributeValues={
            ":f": {"S": "FAILED"},
            ":e": {"M": {"type": {"S": "InputChangedError"}, "message": {"S": "changed"}}},
        },
    )


def segment(aws: Aws, *, attempt: int = 1, segments: int = 0) -> dict[str, Any]:
    payload = {"job_id": "job-1", "attempt": attempt, "execution": 0, "segments_in_execution": segments}
    result: dict[str, Any] = worker_handler(payload, FakeContext())
    return result


def output(aws: Aws, prefix: str) -> list[dict[str, Any]]:
    listing = aws.s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    keys = sorted(o["Key"] for o in listing if "/rejects/" not in o["Key"])
    body = b"".join(aws.s3.get_object(Bucket=BUCKET, Key=k)["Body"].read() for k in keys)
    return [json.loads(line) for line in body.splitlines()]


@pytest.fixture
def one_chunk_per_segment(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> None:
    from handlers import worker

    monkeypatch.setenv("MAX_CHUNKS_PER_SEGMENT", "1")
    worker._settings.cache_clear()


def test_the_ingest_pins_etag_and_size(aws: Aws) -> None:
    body = lines(10, "old")
    aws.s3.put_object(Bucket=BUCKET, Key=KEY, Body=body)
    ingest({"job_id": "job-1", "input": URI})
    job = aws.job("job-1")
    head = aws.s3.head_object(Bucket=BUCKET, Key=KEY)
    assert job is not None and job["status"] == "PENDING"
    assert (job["input_etag"], job["input_bytes"]) == (head["ETag"], len(body))


@pytest.mark.usefixtures("one_chunk_per_segment")
@pytest.mark.parametrize("new_size", ["same", "longer", "shorter"])
def test_an_input_overwritten_mid_job_fails_it_naming_both_etags(aws: Aws, new_size: str) -> None:
    old = lines(3000, "old")
    aws.s3.put_object(Bucket=BUCKET, Key=KEY, Body=old)
    ingest({"job_id": "job-1", "input": URI, "chunk_bytes": 65536})
    mark_running(aws)
    first = segment(aws)
    assert not first["done"]
    old_etag = aws.s3.head_object(Bucket=BUCKET, Key=KEY)["ETag"]
    new = {"same": lines(3000, "new"), "longer": lines(6000, "new"), "shorter": lines(100, "new")}[new_size]
    aws.s3.put_object(Bucket=BUCKET, Key=KEY, Body=new)
    new_etag = aws.s3.head_object(Bucket=BUCKET, Key=KEY)["ETag"]
    with pytest.raises(InputChangedError) as raised:
        segment(aws, segments=1)
    assert old_etag in str(raised.value) and new_etag in str(raised.value)
    written = output(aws, "out/job-1/")
    assert written and {r["v"] for r in written} == {"old"}, (
        "parts already written stay, and hold one version"
    )


def test_a_redrive_after_the_input_changed_is_refused_with_the_reason(aws: Aws) -> None:
    aws.s3.put_object(Bucket=BUCKET, Key=KEY, Body=lines(10, "old"))
    ingest({"job_id": "job-1", "input": URI})
    mark_failed(aws)
    aws.s3.put_object(Bucket=BUCKET, Key=KEY, Body=lines(12, "new"))
    assert ingest({"job_id": "job-1", "input": URI}, message_id="m-2", job_id="job-1") == {
        "batchItemFailures": []
    }
    job = aws.job("job-1")
    assert job is not None and (job["status"], job["attempt"]) == ("FAILED", 1)
    assert job["error"]["type"] == "InputChangedError" and "--restart" in job["error"]["message"]
    (message,) = aws.dlq_messages()
    attributes = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
    assert attributes["error_type"] == "InputChangedError"
    assert "restart" in attributes["error_message"]
    assert [e["name"] for e in aws.executions()] == ["job-1-a1-e0"], "no new attempt started"


def test_a_redrive_of_an_unchanged_input_resumes_from_the_checkpoint(aws: Aws) -> None:
    aws.s3.put_object(Bucket=BUCKET, Key=KEY, Body=lines(10, "old"))
    ingest({"job_id": "job-1", "input": URI})
    mark_failed(aws)
    ingest({"job_id": "job-1", "input": URI}, message_id="m-2", job_id="job-1")
    job = aws.job("job-1")
    assert job is not None and (job["status"], job["attempt"]) == ("PENDING", 2)
    assert job["output_prefix"] == f"s3://{BUCKET}/out/job-1/"


@pytest.mark.usefixtures("one_chunk_per_segment")
def test_a_restart_runs_a_new_attempt_from_zero_on_the_new_version_into_a_fresh_location(aws: Aws) -> None:
    aws.s3.put_object(Bucket=BUCKET, Key=KEY, Body=lines(3000, "old"))
    ingest({"job_id": "job-1", "input": URI, "chunk_bytes": 65536})
    mark_running(aws)
    segment(aws)
    new = lines(2000, "new")
    aws.s3.put_object(Bucket=BUCKET, Key=KEY, Body=new)
    with pytest.raises(InputChangedError):
        segment(aws, segments=1)
    mark_failed(aws)
    ingest({"job_id": "job-1", "input": URI, "restart": True}, message_id="m-2", job_id="job-1")
    job = aws.job("job-1")
    assert job is not None
    assert (job["status"], job["attempt"], job["cursor"], job["records_in"]) == ("PENDING", 2, 0, 0)
    assert job["output_prefix"] == f"s3://{BUCKET}/out/job-1.restart-2/"
    assert job["input_bytes"] == len(new)
    mark_running(aws)
    results = [segment(aws, attempt=2)]
    while not results[-1]["done"]:
        results.append(segment(aws, attempt=2, segments=len(results)))
    assert output(aws, "out/job-1.restart-2/") == [{"i": i, "v": "new"} for i in range(2000)]
    assert {r["v"] for r in output(aws, "out/job-1/")} == {"old"}, "the first attempt's parts are untouched"


def test_a_missing_input_fails_the_job_at_once_and_a_redrive_after_the_upload_resumes(aws: Aws) -> None:
    ingest({"job_id": "job-1", "input": URI})
    job = aws.job("job-1")
    assert job is not None and (job["status"], job["error"]["type"]) == ("FAILED", "InputNotFoundError")
    (message,) = aws.dlq_messages()
    assert message["MessageAttributes"]["error_type"]["StringValue"] == "InputNotFoundError"
    assert aws.executions() == []
    aws.s3.put_object(Bucket=BUCKET, Key=KEY, Body=lines(5, "late"))
    ingest({"job_id": "job-1", "input": URI}, message_id="m-2", job_id="job-1")
    job = aws.job("job-1")
    assert job is not None and (job["status"], job["attempt"], job["input_bytes"]) == (
        "PENDING",
        2,
        len(lines(5, "late")),
    )
    assert [e["name"] for e in aws.executions()] == ["job-1-a2-e0"]


def test_an_input_outside_the_allowed_locations_is_rejected_naming_them(aws: Aws) -> None:
    aws.s3.create_bucket(Bucket="someone-elses-bucket")
    aws.s3.put_object(Bucket="someone-elses-bucket", Key="in/x.jsonl", Body=lines(3, "x"))
    ingest({"job_id": "job-1", "input": "s3://someone-elses-bucket/in/x.jsonl"})
    job = aws.job("job-1")
    assert job is not None and job["status"] == "REJECTED"
    (message,) = aws.dlq_messages()
    text = message["MessageAttributes"]["error_message"]["StringValue"]
    assert text.startswith("input: ") and f"s3://{BUCKET}/" in text and "allowed input locations" in text


def test_a_job_may_lower_the_reject_ratio_but_not_raise_it(aws: Aws) -> None:
    aws.s3.put_object(Bucket=BUCKET, Key=KEY, Body=lines(10, "x"))
    ingest({"job_id": "job-1", "input": URI, "max_reject_ratio": 0.9})  # the environment allows 0.5
    (message,) = aws.dlq_messages()
    assert message["MessageAttributes"]["error_message"]["StringValue"].startswith(
        "max_reject_ratio: 0.9 must be within 0..0.5"
    )
    ingest({"job_id": "job-2", "input": URI, "max_reject_ratio": 0.01}, message_id="m-2")
    job = aws.job("job-2")
    assert job is not None and float(job["max_reject_ratio"]) == 0.01
