"""Real inputs through the real handlers on moto: compressed inputs recognised at ingest and read by the
worker, formats it cannot read REJECTED naming them, object notifications as jobs (once each), and the
end-of-job reject-ratio check."""

from __future__ import annotations

import bz2
import gzip
import json
import random
from typing import Any

import pytest

from handlers.ingest import handler as ingest_handler
from handlers.worker import handler as worker_handler
from jobcore.errors import RejectRatioExceededError
from tests.fakes import FakeContext
from tests.handlers.conftest import BUCKET, Aws

try:
    from compression import zstd  # type: ignore[import-not-found]
except ImportError:
    from backports import zstd  # type: ignore[import-not-found,no-redef]


def lines(n: int) -> bytes:
    return b"".join(json.dumps({"i": i, "pad": "x" * (i % 37)}).encode() + b"\n" for i in range(n))


def send(body: Any, message_id: str = "m-1") -> dict[str, Any]:
    record = {"messageId": message_id, "body": body if isinstance(body, str) else json.dumps(body)}
    result: dict[str, Any] = ingest_handler({"Records": [record]}, FakeContext())
    return result


def run_job(aws: Aws, job_id: str) -> dict[str, Any]:
    aws.ddb.update_item(
        TableName="jobs",
        Key={"job_id": {"S": job_id}},
        UpdateExpression="SET #s = :r",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":r": {"S": "RUNNING"}},
    )
    done, segments = False, 0
    while not done:
        done = worker_handler(
            {"job_id": job_id, "attempt": 1, "segments_in_execution": segments}, FakeContext()
        )["done"]
        segments += 1
    finished: dict[str, Any] = worker_handler({"job_id": job_id, "attempt": 1, "finish": True}, FakeContext())
    return finished


def parts(aws: Aws, job_id: str) -> bytes:
    listing = aws.s3.list_objects_v2(Bucket=BUCKET, Prefix=f"out/{job_id}/").get("Contents", [])
    keys = sorted(o["Key"] for o in listing if "/rejects/" not in o["Key"] and "/_access/" not in o["Key"])
    return b"".join(aws.s3.get_object(Bucket=BUCKET, Key=k)["Body"].read() for k in keys)


@pytest.mark.parametrize(
    ("key", "compress", "compression"),
    [("in/c.jsonl.gz", gzip.compress, "gzip"), ("in/c.jsonl.zst", zstd.compress, "zstd")],
)
def test_a_compressed_input_is_recognised_and_read_as_its_text(
    aws: Aws, key: str, compress: Any, compression: str
) -> None:
    data = lines(5000)
    aws.s3.put_object(Bucket=BUCKET, Key=key, Body=compress(data))
    assert send({"job_id": "c", "input": f"s3://{BUCKET}/{key}", "transform": "passthrough"}) == {
        "batchItemFailures": []
    }
    job = aws.job("c")
    assert job is not None and job["status"] == "PENDING" and job["compression"] == compression
    finished = run_job(aws, "c")
    assert finished["records_in"] == 5000 and finished["records_rejected"] == 0
    assert parts(aws, "c") == data
    job = aws.job("c")
    assert job is not None and int(job["text_bytes"]) == len(data) and int(job["bytes_in"]) == len(data)


def test_gzip_output_parts_decompress_to_the_text(aws: Aws) -> None:
    data = lines(3000)
    aws.s3.put_object(Bucket=BUCKET, Key="in/plain.jsonl", Body=data)
    send(
        {
            "job_id": "gz-out",
            "input": f"s3://{BUCKET}/in/plain.jsonl",
            "transform": "passthrough",
            "output_compression": "gzip",
        }
    )
    run_job(aws, "gz-out")
    listing = aws.s3.list_objects_v2(Bucket=BUCKET, Prefix="out/gz-out/")["Contents"]
    keys = sorted(o["Key"] for o in listing)
    assert keys and all(k.endswith(".jsonl.gz") for k in keys)
    head = aws.s3.head_object(Bucket=BUCKET, Key=keys[0])
    assert head["ContentType"] == "application/gzip"
    assert (
        b"".join(gzip.decompress(aws.s3.get_object(Bucket=BUCKET, Key=k)["Body"].read()) for k in keys)
        == data
    )


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (bz2.compress(b'{"a": 1}\n' * 3000), "is bzip2, not JSON Lines: decompress it"),
        (b"PAR1" + b"\x00" * 64, "is Parquet, not JSON Lines"),
        ('{"a": 1}\n'.encode("utf-16"), "UTF-16LE text"),
    ],
)
def test_an_input_that_is_not_json_lines_is_rejected_naming_it(aws: Aws, body: bytes, named: str) -> None:
    aws.s3.put_object(Bucket=BUCKET, Key="in/odd", Body=body)
    send({"job_id": "odd", "input": f"s3://{BUCKET}/in/odd"})
    job = aws.job("odd")
    assert job is not None and job["status"] == "REJECTED"
    assert job["error"]["type"] == "InputFormatError" and named in job["error"]["message"]
    [message] = aws.dlq_messages()
    assert named in message["MessageAttributes"]["error_message"]["StringValue"]


def test_shards_on_a_compressed_input_are_refused_with_the_reason(aws: Aws) -> None:
    aws.s3.put_object(Bucket=BUCKET, Key="in/s.gz", Body=gzip.compress(lines(100)))
    send({"job_id": "s", "input": f"s3://{BUCKET}/in/s.gz", "shards": 4})
    job = aws.job("s")
    assert job is not None and job["status"] == "REJECTED"
    assert job["error"]["message"].startswith(
        "shards: 4 asked, but s3://data-bucket/in/s.gz is gzip-compressed"
    )


def test_a_large_single_frame_zstd_is_refused_with_how_to_recompress(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    from handlers import ingest

    monkeypatch.setenv("ZSTD_SINGLE_FRAME_MAX_BYTES", "1000")
    ingest._settings.cache_clear()
    one_frame = zstd.compress(random.Random(1).randbytes(200_000))
    aws.s3.put_object(Bucket=BUCKET, Key="in/big.zst", Body=one_frame)
    send({"job_id": "big", "input": f"s3://{BUCKET}/in/big.zst", "compression": "zstd"})
    job = aws.job("big")
    assert job is not None and job["status"] == "REJECTED"
    assert "one zstd frame" in job["error"]["message"] and "--seekable" in job["error"]["message"]
    framed = zstd.compress(lines(200)) + zstd.compress(lines(200))
    aws.s3.put_object(Bucket=BUCKET, Key="in/framed.zst", Body=framed)
    send({"job_id": "framed", "input": f"s3://{BUCKET}/in/framed.zst"}, message_id="m-2")
    framed_job = aws.job("framed")
    assert framed_job is not None and framed_job["status"] == "PENDING"


def test_a_small_all_rejects_job_fails_at_its_end(aws: Aws) -> None:
    aws.s3.put_object(Bucket=BUCKET, Key="in/garbage.jsonl", Body=b"garbage\n" * 40)
    send({"job_id": "g", "input": f"s3://{BUCKET}/in/garbage.jsonl"})
    with pytest.raises(
        RejectRatioExceededError, match=r"40 of 40 records rejected \(100.0%\).*the first: offset 0: not JSON"
    ):
        run_job(aws, "g")


def test_an_empty_input_succeeds_with_zero_counts(aws: Aws) -> None:
    aws.s3.put_object(Bucket=BUCKET, Key="in/empty.jsonl", Body=b"")
    send({"job_id": "e", "input": f"s3://{BUCKET}/in/empty.jsonl"})
    assert run_job(aws, "e") == {"job_id": "e", "records_in": 0, "records_out": 0, "records_rejected": 0}


# -- object notifications -------------------------------------------------------------------------------


def s3_notification(key: str, etag: str, sequencer: str, version: str | None = None) -> dict[str, Any]:
    obj = {"key": key, "size": 1, "eTag": etag, "sequencer": sequencer}
    if version:
        obj["versionId"] = version
    return {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": BUCKET}, "object": obj},
            }
        ]
    }


def jobs_of(aws: Aws) -> list[dict[str, Any]]:
    items = aws.ddb.scan(TableName="jobs")["Items"]
    return [aws.job(item["job_id"]["S"]) for item in items]  # type: ignore[misc]


def test_an_object_notification_delivered_twice_starts_one_job(aws: Aws) -> None:
    put = aws.s3.put_object(Bucket=BUCKET, Key="incoming/a.jsonl.gz", Body=gzip.compress(lines(50)))
    event = s3_notification("incoming/a.jsonl.gz", put["ETag"].strip('"'), "0062A1")
    assert send(event, "m-1") == {"batchItemFailures": []}
    assert send(event, "m-2") == {"batchItemFailures": []}
    [job] = jobs_of(aws)
    assert job["job_id"].startswith("s3-") and job["status"] == "PENDING"
    assert job["transform"] == "passthrough" and job["compression"] == "gzip"
    assert len(aws.executions()) == 1
    # A second put of the key is another object: another job.
    put = aws.s3.put_object(Bucket=BUCKET, Key="incoming/a.jsonl.gz", Body=gzip.compress(lines(60)))
    send(s3_notification("incoming/a.jsonl.gz", put["ETag"].strip('"'), "0062A2"), "m-3")
    assert len(jobs_of(aws)) == 2


def test_an_eventbridge_object_created_event_starts_a_job(aws: Aws) -> None:
    put = aws.s3.put_object(Bucket=BUCKET, Key="incoming/b.jsonl", Body=lines(10))
    event = {
        "version": "0",
        "source": "aws.s3",
        "detail-type": "Object Created",
        "detail": {
            "bucket": {"name": BUCKET},
            "object": {
                "key": "incoming/b.jsonl",
                "size": 10,
                "etag": put["ETag"].strip('"'),
                "sequencer": "01",
            },
            "reason": "PutObject",
        },
    }
    send(event)
    [job] = jobs_of(aws)
    assert job["input"] == f"s3://{BUCKET}/incoming/b.jsonl" and job["status"] == "PENDING"


def test_a_test_event_is_ignored_and_an_object_no_trigger_takes_is_rejected(aws: Aws) -> None:
    send({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": BUCKET})
    assert jobs_of(aws) == [] and aws.dlq_messages() == []
    send(s3_notification("elsewhere/x.jsonl", "abc", "01"), "m-2")
    [job] = jobs_of(aws)
    assert (
        job["status"] == "REJECTED" and "no trigger of this environment takes it" in job["error"]["message"]
    )
    [message] = aws.dlq_messages()
    assert json.loads(message["Body"])["input"] == f"s3://{BUCKET}/elsewhere/x.jsonl"


def test_an_object_overwritten_before_its_job_is_accepted_is_not_read_in_its_place(aws: Aws) -> None:
    put = aws.s3.put_object(Bucket=BUCKET, Key="incoming/c.jsonl", Body=lines(10))
    aws.s3.put_object(Bucket=BUCKET, Key="incoming/c.jsonl", Body=lines(20))
    send(s3_notification("incoming/c.jsonl", put["ETag"].strip('"'), "01"))
    [job] = jobs_of(aws)
    assert job["status"] == "FAILED" and job["error"]["type"] == "InputChangedError"
    assert "overwritten before the job was accepted" in job["error"]["message"]


def test_a_versioned_notification_pins_its_version(aws: Aws) -> None:
    aws.s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    first = aws.s3.put_object(Bucket=BUCKET, Key="incoming/v.jsonl", Body=lines(10))
    aws.s3.put_object(Bucket=BUCKET, Key="incoming/v.jsonl", Body=lines(20))
    send(s3_notification("incoming/v.jsonl", first["ETag"].strip('"'), "01", version=first["VersionId"]))
    [job] = jobs_of(aws)
    assert job["status"] == "PENDING" and job["input_version"] == first["VersionId"]
    assert run_job(aws, job["job_id"])["records_in"] == 10


def test_a_compressed_jobs_checkpoint_extras_round_trip_through_dynamodb(aws: Aws) -> None:
    """The restart point, the text's size, the long line's first bytes (binary) and the first rejects, set
    by checkpoints on the real adapter: the head is removed with long_line_from, the first rejects kept
    from the first checkpoint that had any."""
    import boto3

    from jobcore.adapters.dynamodb import DynamoJobStore
    from jobcore.model import Checkpoint, JobRecord, RejectSample, RestartPoint

    store = DynamoJobStore(boto3.client("dynamodb", region_name="us-east-1"), "jobs")
    store.create(
        JobRecord(
            job_id="x", status="RUNNING", input="s3://b/k", transform="passthrough", chunk_bytes=65536,
            output_prefix="s3://b/out/x/", compression="gzip", updated_at="2026-12-07T00:00:00.000Z",
        )
    )  # fmt: skip
    base = {
        "job_id": "x", "attempt": 1, "input_bytes": 100, "records_in": 0, "records_out": 0,
        "records_rejected": 0, "records_transformed": 0, "records_filtered": 0, "records_blank": 0,
        "bytes_in": 0, "segments": 0, "chunk_ms": 1, "updated_at": "2026-12-07T00:00:00.000Z",
    }  # fmt: skip
    first = (RejectSample(offset=3, error="not JSON"),)
    assert store.checkpoint(
        Checkpoint(
            **base, old_cursor=0, new_cursor=10, long_line_from=10, long_line_head=b"\x00{head",
            restart_point=RestartPoint(text=8, at=4, index="out/x/_access/gzip-000000000000008.gzidx", index_bytes=99),
            first_rejects=first,
        )
    )  # fmt: skip
    record = store.get("x")
    assert record is not None
    assert (record.long_line_from, record.long_line_head) == (10, b"\x00{head")
    assert record.restart_point == RestartPoint(
        text=8, at=4, index="out/x/_access/gzip-000000000000008.gzidx", index_bytes=99
    )
    assert record.first_rejects == first
    assert store.checkpoint(
        Checkpoint(
            **base, old_cursor=10, new_cursor=20, text_bytes=20,
            first_rejects=(RejectSample(offset=15, error="later"),),
        )
    )  # fmt: skip
    record = store.get("x")
    assert record is not None
    assert (record.long_line_from, record.long_line_head, record.text_bytes) == (None, None, 20)
    assert record.first_rejects == first, "the first rejects stay the first"
    assert record.restart_point is not None and record.restart_point.text == 8, "kept until a newer one"
