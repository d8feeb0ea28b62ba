"""The worker handler on moto S3 and DynamoDB: segments until done, the state machine's payload and
result shapes, and the permanent errors it raises by class name."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest

from handlers.ingest import handler as ingest_handler
from handlers.worker import handler
from jobcore.errors import CodeVersionMismatchError, InputNotFoundError, JobCancelledError, ValidationError
from jobcore.settings import ConfigurationError, WorkerSettings
from tests.fakes import FakeContext
from tests.handlers.conftest import BUCKET, CODE_DIGEST, WORKER_VERSION, Aws


def submit(aws: Aws, body: bytes, **request: Any) -> None:
    aws.s3.put_object(Bucket=BUCKET, Key="in/job-1.jsonl", Body=body)
    message = {"job_id": "job-1", "input": f"s3://{BUCKET}/in/job-1.jsonl", **request}
    record = {"messageId": "m-1", "body": json.dumps(message), "messageAttributes": {}}
    assert ingest_handler({"Records": [record]}, FakeContext()) == {"batchItemFailures": []}
    # MarkRunning, as the state machine does it.
    aws.ddb.update_item(
        TableName="jobs",
        Key={"job_id": {"S": "job-1"}},
        UpdateExpression="SET #s = :r",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":r": {"S": "RUNNING"}},
    )


def payload(segments: int = 0) -> dict[str, Any]:
    return {
        "job_id": "job-1",
        "attempt": 1,
        "execution": 0,
        "segments_in_execution": segments,
        "retry_count": 0,
    }


def test_domain_logs_are_structured_json_with_the_job_keys(aws: Aws) -> None:
    # The Powertools handler holds the stream it found at import; point it at a buffer for this test.
    handlers = logging.getLogger("jobcore").handlers
    assert handlers, "jobcore's loggers are wired to the Powertools handler"
    buffer = io.StringIO()
    previous = [h.setStream(buffer) for h in handlers if isinstance(h, logging.StreamHandler)]
    try:
        submit(aws, b'{"a": 1}\n' * 10)
        handler(payload(), FakeContext())
    finally:
        for h, stream in zip(handlers, previous, strict=True):
            h.setStream(stream)  # type: ignore[attr-defined]
    lines = [json.loads(line) for line in buffer.getvalue().splitlines()]
    checkpoint = next(line for line in lines if line.get("message") == "checkpoint")
    assert checkpoint["location"].startswith("_commit:"), "logged by jobcore.segment"
    assert (checkpoint["job_id"], checkpoint["attempt"], checkpoint["segment"]) == ("job-1", 1, 1)
    assert checkpoint["cursor"] == 90 and checkpoint["level"] == "INFO"


def test_segments_run_the_job_to_the_end(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_CHUNKS_PER_SEGMENT", "1")
    lines = [json.dumps({"Name": f" n{i} ", "pad": "x" * 200}) for i in range(1200)]
    submit(aws, ("\n".join(lines) + "\n").encode(), chunk_bytes=65536)
    results = []
    while not results or not results[-1]["done"]:
        results.append(handler(payload(len(results)), FakeContext()))
        assert len(results) < 50
    assert len(results) >= 4, "the input spans several 64 KiB chunks, one per segment"
    assert set(results[-1]) >= {"job_id", "done", "cursor", "segments_in_execution"}
    job = aws.job("job-1")
    assert job is not None
    assert (job["records_in"], job["records_out"], job["records_rejected"]) == (1200, 1200, 0)
    assert job["segments"] == len(results) and job["cursor"] == job["input_bytes"]
    keys = [o["Key"] for o in aws.s3.list_objects_v2(Bucket=BUCKET, Prefix="out/job-1/")["Contents"]]
    assert keys == sorted(keys) and all(k.startswith("out/job-1/part-") for k in keys)
    out = b"".join(aws.s3.get_object(Bucket=BUCKET, Key=k)["Body"].read() for k in keys)
    records = [json.loads(line) for line in out.splitlines()]
    assert records == [{"name": f"n{i}", "pad": "x" * 200} for i in range(1200)]


def test_every_part_says_which_code_wrote_it(aws: Aws) -> None:
    submit(aws, b'{"a": 1}\nnot json\n')
    assert handler(payload(), FakeContext())["done"]
    keys = [o["Key"] for o in aws.s3.list_objects_v2(Bucket=BUCKET, Prefix="out/job-1/")["Contents"]]
    assert len(keys) == 2, "an output part and a rejects part"
    for key in keys:
        metadata = aws.s3.head_object(Bucket=BUCKET, Key=key)["Metadata"]
        assert metadata == {
            "job-id": "job-1",
            "attempt": "1",
            "code-version": WORKER_VERSION,
            "code-digest": CODE_DIGEST,
        }


def test_a_worker_of_another_version_than_the_jobs_writes_nothing(aws: Aws) -> None:
    submit(aws, b'{"a": 1}\n')
    with pytest.raises(CodeVersionMismatchError, match=r"worker version 2 .* pinned to version 1"):
        handler(payload(), FakeContext(function_version="2"))
    assert "Contents" not in aws.s3.list_objects_v2(Bucket=BUCKET, Prefix="out/job-1/")


def test_missing_input_raises_input_not_found(aws: Aws) -> None:
    submit(aws, b'{"a": 1}\n')
    aws.s3.delete_object(Bucket=BUCKET, Key="in/job-1.jsonl")
    with pytest.raises(InputNotFoundError, match="does not exist"):
        handler(payload(), FakeContext())


def test_cancelled_job_raises_job_cancelled(aws: Aws) -> None:
    submit(aws, b'{"a":1}\n')
    aws.ddb.update_item(
        TableName="jobs",
        Key={"job_id": {"S": "job-1"}},
        UpdateExpression="SET #s = :c",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":c": {"S": "CANCELLED"}},
    )
    with pytest.raises(JobCancelledError):
        handler(payload(), FakeContext())


def test_payload_without_job_id_is_a_validation_error(aws: Aws) -> None:
    with pytest.raises(ValidationError, match="job_id"):
        handler({"attempt": 1}, FakeContext())


def test_error_class_names_match_the_state_machine() -> None:
    from jobcore import errors
    from stacks.constructs.segmented_job import CANCELLED_ERRORS, TRANSIENT_ERRORS

    for name in TRANSIENT_ERRORS + CANCELLED_ERRORS:
        assert isinstance(getattr(errors, name), type)


@pytest.mark.parametrize("variable", sorted(WorkerSettings.VARIABLES.values()))
def test_a_missing_variable_fails_the_cold_start_naming_it(
    aws: Aws, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    from handlers import worker

    monkeypatch.delenv(variable)
    worker._settings.cache_clear()
    with pytest.raises(ConfigurationError, match=f"environment variable {variable} is not set"):
        handler(payload(), FakeContext())


def test_an_unreadable_variable_fails_the_cold_start_naming_it(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    from handlers import worker

    monkeypatch.setenv("MAX_LINE_BYTES", "1 MiB")
    worker._settings.cache_clear()
    with pytest.raises(ConfigurationError, match="MAX_LINE_BYTES='1 MiB': invalid literal for int"):
        handler(payload(), FakeContext())


def _metric_blobs(output: str) -> list[dict[str, Any]]:
    """The CloudWatch embedded-metric-format documents Powertools printed."""
    blobs = []
    for line in output.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            blobs.append(json.loads(line))
    return blobs


def test_segment_progress_metrics_carry_the_job_as_a_property_not_a_dimension(
    aws: Aws, capsys: pytest.CaptureFixture[str]
) -> None:
    submit(aws, b'{"a": 1}\n' * 1000)
    capsys.readouterr()
    handler(payload(), FakeContext(function_name="pipeline-dev-worker"))
    (blob,) = _metric_blobs(capsys.readouterr().out)
    (directive,) = blob["_aws"]["CloudWatchMetrics"]
    metrics = {m["Name"]: m["Unit"] for m in directive["Metrics"]}
    assert metrics["BytesIn"] == "Bytes" and metrics["SegmentThroughput"] == "Bytes/Second"
    # Powertools writes each value as a list of the values added.
    assert blob["BytesIn"] == [9000]
    (throughput,) = blob["SegmentThroughput"]
    assert throughput > 0
    # Per function (environments sharing an account stay apart), never per job: the cardinality is bounded.
    # (On AWS Powertools adds `service` from POWERTOOLS_SERVICE_NAME, which these tests do not set.)
    (dimensions,) = directive["Dimensions"]
    assert "FunctionName" in dimensions and "job_id" not in dimensions
    assert blob["FunctionName"] == "pipeline-dev-worker"
    # The job's keys are properties of the document, so that a Logs Insights query finds its segments.
    assert (blob["job_id"], blob["attempt"], blob["shard"]) == ("job-1", 1, 0)
