"""Sharded jobs through the real handlers on moto: the ingest plans the shards and hands the state machine
one Map item each; the worker moves each shard's cursor by its path in the item; a redrive resumes every
shard where it stood; the output is the one-shard output."""

from __future__ import annotations

import json
from typing import Any

import pytest

from handlers.ingest import handler as ingest_handler
from handlers.worker import handler as worker_handler
from jobcore.errors import InputChangedError
from tests.fakes import FakeContext
from tests.handlers.conftest import BUCKET, Aws

LINES = b"".join(json.dumps({"i": i, "pad": "x" * 300}).encode() + b"\n" for i in range(1_000))


def ingest(aws: Aws, job_id: str, message_id: str = "m-1", **fields: Any) -> dict[str, Any]:
    body = {"job_id": job_id, "input": f"s3://{BUCKET}/in/a.jsonl", "chunk_bytes": 65_536, **fields}
    record = {"messageId": message_id, "body": json.dumps(body), "messageAttributes": {}}
    return ingest_handler({"Records": [record]}, FakeContext())


def mark_running(aws: Aws, job_id: str) -> None:
    aws.ddb.update_item(
        TableName="jobs",
        Key={"job_id": {"S": job_id}},
        UpdateExpression="SET #s = :r",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":r": {"S": "RUNNING"}},
    )


def execution_input(aws: Aws, job_id: str, attempt: int = 1) -> dict[str, Any]:
    for execution in aws.executions():
        if execution["name"] == f"{job_id}-a{attempt}-e0":
            return dict(
                json.loads(aws.sfn.describe_execution(executionArn=execution["executionArn"])["input"])
            )
    raise AssertionError(f"no execution {job_id}-a{attempt}-e0")


def run_shard(job_id: str, shard: int, *, attempt: int = 1, limit: int = 200) -> dict[str, Any]:
    for _ in range(limit):
        payload = {"job_id": job_id, "attempt": attempt, "execution": 0, "shard": shard}
        result = worker_handler(payload, FakeContext())
        if result["done"]:
            return dict(result)
    raise AssertionError(f"shard {shard} of {job_id} did not finish")


def outputs(aws: Aws, job_id: str) -> dict[str, bytes]:
    listed = aws.s3.list_objects_v2(Bucket=BUCKET, Prefix=f"out/{job_id}/").get("Contents", [])
    return {
        o["Key"].split("/", 2)[2]: aws.s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read()
        for o in listed
    }


def test_a_four_shard_job_writes_the_one_shard_output(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_CHUNKS_PER_SEGMENT", "1")
    aws.s3.put_object(Bucket=BUCKET, Key="in/a.jsonl", Body=LINES)
    assert ingest(aws, "one", "m-1") == {"batchItemFailures": []}
    assert ingest(aws, "four", "m-2", shards=4) == {"batchItemFailures": []}
    assert execution_input(aws, "four")["shards"] == [
        {"shard": i, "done": False, "hand_over": False} for i in range(4)
    ]
    four = aws.job("four")
    assert four is not None and sorted(four["shards"]) == ["0", "1", "2", "3"]
    assert four["shards"]["3"]["end"] == len(LINES) and "cursor" not in four["shards"]["3"]
    mark_running(aws, "one")
    mark_running(aws, "four")
    run_shard("one", 0)
    for shard in (2, 0, 3, 1):
        assert run_shard("four", shard)["shard"] == shard
    assert outputs(aws, "four") == outputs(aws, "one")
    one, four = aws.job("one"), aws.job("four")
    assert one is not None and four is not None
    counters = ("records_in", "records_out", "records_rejected", "records_blank", "bytes_in")
    assert {c: four[c] for c in counters} == {c: one[c] for c in counters}
    assert four["bytes_in"] == len(LINES)
    assert [four["shards"][str(i)]["cursor"] for i in range(4)] == [
        four["shards"][str(i)]["end"] for i in range(4)
    ]


def test_shards_over_the_maximum_are_rejected_naming_it(aws: Aws) -> None:
    aws.s3.put_object(Bucket=BUCKET, Key="in/a.jsonl", Body=LINES)
    ingest(aws, "greedy", shards=9)
    job = aws.job("greedy")
    assert job is not None and job["status"] == "REJECTED"
    assert job["error"] == {
        "type": "ValidationError",
        "message": "shards: 9 must be within 1..8 (this environment's maximum)",
    }


def test_a_small_input_gets_no_more_shards_than_chunks(aws: Aws) -> None:
    aws.s3.put_object(Bucket=BUCKET, Key="in/a.jsonl", Body=b'{"a":1}\n')
    ingest(aws, "tiny", shards=8)
    job = aws.job("tiny")
    assert job is not None and "shards" not in job, "one chunk: one shard, at the job's own cursor"
    assert execution_input(aws, "tiny")["shards"] == [{"shard": 0, "done": False, "hand_over": False}]


def test_a_redrive_resumes_every_shard_where_it_stood(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_CHUNKS_PER_SEGMENT", "1")
    aws.s3.put_object(Bucket=BUCKET, Key="in/a.jsonl", Body=LINES)
    ingest(aws, "job", shards=3)
    mark_running(aws, "job")
    run_shard("job", 1)  # shard 1 finishes; the others have not started
    worker_handler({"job_id": "job", "attempt": 1, "execution": 0, "shard": 2}, FakeContext())  # one chunk
    before = aws.job("job")
    assert before is not None
    # The job fails (say its execution timed out), and its request is redriven.
    aws.ddb.update_item(
        TableName="jobs",
        Key={"job_id": {"S": "job"}},
        UpdateExpression="SET #s = :f",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":f": {"S": "FAILED"}},
    )
    ingest(aws, "job", "m-redrive", shards=3)
    after = aws.job("job")
    assert after is not None and (after["status"], after["attempt"]) == ("PENDING", 2)
    assert after["shards"] == before["shards"], "every shard keeps its checkpoint"
    assert execution_input(aws, "job", attempt=2)["shards"] == [
        {"shard": 0, "done": False, "hand_over": False},
        {"shard": 1, "done": True, "hand_over": False},
        {"shard": 2, "done": False, "hand_over": False},
    ]


def test_a_changed_input_fails_the_shard_naming_it(aws: Aws) -> None:
    aws.s3.put_object(Bucket=BUCKET, Key="in/a.jsonl", Body=LINES)
    ingest(aws, "job", shards=2)
    mark_running(aws, "job")
    aws.s3.put_object(Bucket=BUCKET, Key="in/a.jsonl", Body=LINES + b'{"late":1}\n')
    with pytest.raises(InputChangedError, match=r"^shard 1 \(bytes \d+-\d+\): "):
        worker_handler({"job_id": "job", "attempt": 1, "execution": 0, "shard": 1}, FakeContext())


def test_a_restart_cuts_the_new_input_afresh(aws: Aws) -> None:
    aws.s3.put_object(Bucket=BUCKET, Key="in/a.jsonl", Body=LINES)
    ingest(aws, "job", shards=2)
    aws.ddb.update_item(
        TableName="jobs",
        Key={"job_id": {"S": "job"}},
        UpdateExpression="SET #s = :f",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":f": {"S": "FAILED"}},
    )
    bigger = LINES * 2
    aws.s3.put_object(Bucket=BUCKET, Key="in/a.jsonl", Body=bigger)
    ingest(aws, "job", "m-restart", shards=2, restart=True)
    job = aws.job("job")
    assert job is not None and (job["status"], job["attempt"]) == ("PENDING", 2)
    assert job["shards"]["1"]["end"] == len(bigger) and "cursor" not in job["shards"]["1"]
    assert job["shards"]["0"]["cursor"] == 0
