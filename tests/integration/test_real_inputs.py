"""Real inputs end to end on the local cloud (issue 17): gzip and zstd jobs across continue-as-new with exact
output, a crashed worker resuming a gzip job mid-file from its access point, a small all-rejects job FAILED
with the reason, bzip2 and Parquet inputs REJECTED naming them, and an object put under the `local`
environment's trigger prefix (incoming/) becoming exactly one job, its notification delivered twice."""

from __future__ import annotations

import bz2
import gzip
import json
import uuid
from typing import Any

import pytest

from pipeline_cli.aws import Pipeline
from pipeline_cli.chaos_api import ChaosRules as Chaos
from pipeline_cli.records import build_request, get_record, send_request
from tests.integration.test_integrity import dlq_messages_of, function_name, wait_for
from tests.integration.test_scenarios import executions_of, output_lines, wait_terminal

try:
    from compression import zstd  # type: ignore[import-not-found]
except ImportError:
    from backports import zstd  # type: ignore[import-not-found,no-redef]

pytestmark = pytest.mark.integration


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def records(tag: str, count: int) -> bytes:
    return b"".join(
        json.dumps({"id": i, "v": tag, "pad": "y" * (i % 50)}).encode() + b"\n" for i in range(count)
    )


def put(pipeline: Pipeline, key: str, body: bytes) -> str:
    bucket = pipeline.outputs.data_bucket_name
    pipeline.s3.put_object(Bucket=bucket, Key=key, Body=body)
    return f"s3://{bucket}/{key}"


def submit(pipeline: Pipeline, job_id: str, key: str, body: bytes, **fields: Any) -> str:
    uri = put(pipeline, key, body)
    send_request(pipeline, {**build_request(job_id=job_id, input_uri=uri, transform="passthrough"), **fields})
    return uri


@pytest.mark.parametrize(
    ("suffix", "compress"), [(".jsonl.gz", gzip.compress), (".jsonl.zst", zstd.compress)]
)
def test_a_compressed_job_succeeds_with_exact_output_across_continue_as_new(
    pipeline: Pipeline, suffix: str, compress: Any
) -> None:
    job_id = unique("it-" + suffix.rsplit(".", 1)[1])
    # ~1.5 MB of text: 24 chunks of 64 KiB, one a segment, 20 segments an execution: two executions.
    text = records(job_id, 22_000)
    submit(pipeline, job_id, f"in/{job_id}/input{suffix}", compress(text))
    record = wait_terminal(pipeline, job_id, timeout=300)
    assert record["status"] == "SUCCEEDED", record.get("error")
    assert output_lines(pipeline, job_id) == text.splitlines(), "byte for byte the text's passthrough"
    assert int(record["records_in"]) == int(record["records_out"]) == 22_000
    assert int(record["text_bytes"]) == int(record["bytes_in"]) == len(text)
    assert len(executions_of(pipeline, job_id)) >= 2, "continued as new at least once"
    assert record["compression"] == suffix.rsplit(".", 1)[1].replace("gz", "gzip").replace("zst", "zstd")
    if suffix.endswith(".gz"):
        # Access points every 4 chunks (1 MiB of text at local's 64 KiB chunks), beside the outputs.
        assert int(record["restart_point"]["text"]) > 0 and record["restart_point"]["index"].endswith(
            ".gzidx"
        )


def test_a_crashed_worker_resumes_a_gzip_job_mid_file(pipeline: Pipeline, chaos: Chaos) -> None:
    job_id = unique("it-gzcrash")
    text = records(job_id, 30_000)  # ~2 MB of text: access points at 1 MiB (4 chunks of 64 KiB)
    submit(pipeline, job_id, f"in/{job_id}/input.jsonl.gz", gzip.compress(text))
    # Mid-file: once the job has checkpointed a restart point, its next worker environment dies.
    point = wait_for(
        lambda: (get_record(pipeline, job_id) or {}).get("restart_point"), timeout=180, what="a restart point"
    )
    chaos.add(
        service="lambda",
        operation="Invoke",
        function=function_name(pipeline, "Worker"),
        error="crash",
        count=1,
    )
    record = wait_terminal(pipeline, job_id, timeout=300)
    assert record["status"] == "SUCCEEDED", record.get("error")
    assert output_lines(pipeline, job_id) == text.splitlines(), "no record lost or duplicated"
    (rule,) = chaos.rules()
    assert rule["injected"] == 1
    assert int(point["text"]) > 0 and int(record["restart_point"]["text"]) >= int(point["text"])


def test_a_small_all_rejects_job_fails_with_the_ratio_and_the_first_reasons(pipeline: Pipeline) -> None:
    job_id = unique("it-garbage")
    submit(pipeline, job_id, f"in/{job_id}/garbage.jsonl", b"this is not json\n" * 40)
    record = wait_terminal(pipeline, job_id, timeout=120)
    assert record["status"] == "FAILED"
    assert record["error"]["type"] == "RejectRatioExceededError"
    message = record["error"]["message"]
    assert "40 of 40 records rejected (100.0%), over the allowed 50.0%" in message
    assert "the first: offset 0: not JSON" in message
    (dlq,) = wait_for(lambda: dlq_messages_of(pipeline, job_id), timeout=30, what="its DLQ message")
    assert dlq["error_type"] == "RejectRatioExceededError"


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (bz2.compress(b'{"a": 1}\n' * 3000), "is bzip2, not JSON Lines: decompress it"),
        (b"PAR1\x15\x04\x15\x10\x15\x14L\x15\x02" + b"\x00" * 200 + b"PAR1", "is Parquet, not JSON Lines"),
    ],
)
def test_an_input_that_is_not_json_lines_is_rejected_naming_it(
    pipeline: Pipeline, body: bytes, named: str
) -> None:
    job_id = unique("it-format")
    submit(pipeline, job_id, f"in/{job_id}/input", body)
    record = wait_terminal(pipeline, job_id, timeout=60)
    assert record["status"] == "REJECTED"
    assert record["error"]["type"] == "InputFormatError" and named in record["error"]["message"]
    (dlq,) = wait_for(lambda: dlq_messages_of(pipeline, job_id), timeout=30, what="its DLQ message")
    assert named in dlq["error_message"]


def _jobs_for(pipeline: Pipeline, uri: str) -> list[dict[str, Any]]:
    scanned = pipeline.dynamodb.scan(
        TableName=pipeline.outputs.job_table_name,
        FilterExpression="#i = :uri",
        ExpressionAttributeNames={"#i": "input"},
        ExpressionAttributeValues={":uri": {"S": uri}},
        ConsistentRead=True,
    )["Items"]
    return [record for item in scanned if (record := get_record(pipeline, item["job_id"]["S"]))]


def test_an_object_put_under_the_trigger_prefix_becomes_exactly_one_job(pipeline: Pipeline) -> None:
    """A second rule with the trigger's pattern and target makes EventBridge deliver every object event
    twice, as an at-least-once delivery may: still one job per object."""
    events = pipeline.client("events")
    (trigger,) = [
        rule
        for rule in events.list_rules()["Rules"]
        if "aws.s3" in rule.get("EventPattern", "") and "incoming/" in rule["EventPattern"]
    ]
    (target,) = events.list_targets_by_rule(Rule=trigger["Name"])["Targets"]
    events.put_rule(Name="it-duplicate-delivery", EventPattern=trigger["EventPattern"], State="ENABLED")
    events.put_targets(Rule="it-duplicate-delivery", Targets=[{"Id": "again", "Arn": target["Arn"]}])
    try:
        name = unique("arrival")
        text = records(name, 3_000)
        uri = put(pipeline, f"incoming/{name}.jsonl.gz", gzip.compress(text))
        job = wait_for(lambda: _jobs_for(pipeline, uri), timeout=60, what=f"a job for {uri}")
        (record,) = job
        assert record["job_id"].startswith("s3-") and record["transform"] == "passthrough"
        finished = wait_terminal(pipeline, record["job_id"], timeout=180)
        assert finished["status"] == "SUCCEEDED", finished.get("error")
        assert output_lines(pipeline, record["job_id"]) == text.splitlines()
        assert list(executions_of(pipeline, record["job_id"])) == [f"{record['job_id']}-a1-e0"]
        assert len(_jobs_for(pipeline, uri)) == 1, "the second delivery found the job and left it"
        # Another put of the key is another object: another job.
        put(pipeline, f"incoming/{name}.jsonl.gz", gzip.compress(records(name + "-2", 10)))
        wait_for(
            lambda: len(_jobs_for(pipeline, uri)) == 2, timeout=60, what="a second job for the new object"
        )
    finally:
        events.remove_targets(Rule="it-duplicate-delivery", Ids=["again"])
        events.delete_rule(Name="it-duplicate-delivery")
