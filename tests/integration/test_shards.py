"""Sharded jobs on the local cloud: the deployed state machine's Map runs the shards, and a 4-shard job ends
with the 1-shard job's output, byte for byte; a shard's permanent failure fails the job once, naming the
shard; a cancel stops every shard."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipeline_cli.aws import Pipeline
from pipeline_cli.chaos_api import ChaosRules as Chaos
from pipeline_cli.main import main
from pipeline_cli.records import build_request, get_record, send_request, upload_input
from tests.integration.test_integrity import dlq_messages_of, unique, wait_for
from tests.integration.test_scenarios import executions_of, wait_terminal

pytestmark = pytest.mark.integration

CHUNK = 64 * 1024


def submit(pipeline: Pipeline, tmp_path: Path, job_id: str, body: bytes, **fields: Any) -> None:
    path = tmp_path / f"{job_id}.jsonl"
    path.write_bytes(body)
    uri = upload_input(pipeline, path, job_id)
    send_request(pipeline, {**build_request(job_id=job_id, input_uri=uri, chunk_bytes=CHUNK), **fields})


def objects(pipeline: Pipeline, job_id: str) -> dict[str, bytes]:
    s3, bucket = pipeline.s3, pipeline.outputs.data_bucket_name
    prefix = f"out/{job_id}/"
    keys = [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for o in page.get("Contents", [])
    ]
    return {key[len(prefix) :]: s3.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys}


def body_of(lines: int) -> bytes:
    rows = []
    for i in range(lines):
        # Every 97th line a reject, every 89th blank: rejects and counters must match too.
        if i % 97 == 0:
            rows.append(b"{not json")
        elif i % 89 == 0:
            rows.append(b"   ")
        else:
            rows.append(json.dumps({"id": i, "pad": "s" * (40 + i % 50)}).encode())
    return b"\n".join(rows) + b"\n"


def test_four_shards_write_exactly_what_one_shard_writes(pipeline: Pipeline, tmp_path: Path) -> None:
    body = body_of(30_000)  # about 2.5 MB: 40 chunks of 64 KiB, one a segment in the local environment
    one, four = unique("it-shard1"), unique("it-shard4")
    submit(pipeline, tmp_path, one, body, transform="compact")
    submit(pipeline, tmp_path, four, body, transform="compact", shards=4)
    first, sharded = wait_terminal(pipeline, one, timeout=300), wait_terminal(pipeline, four, timeout=300)
    assert (first["status"], sharded["status"]) == ("SUCCEEDED", "SUCCEEDED"), (first, sharded)
    assert len(sharded["shards"]) == 4
    assert all(shard["cursor"] == shard["end"] for shard in sharded["shards"].values())
    counters = ("records_in", "records_out", "records_rejected", "records_blank", "bytes_in")
    assert {c: sharded[c] for c in counters} == {c: first[c] for c in counters}
    assert sharded["bytes_in"] == len(body)
    one_parts, four_parts = objects(pipeline, one), objects(pipeline, four)
    assert four_parts == one_parts, "same part names, same bytes, rejects included"
    assert any(name.startswith("rejects/") for name in four_parts)
    # 10 segments a shard, 20 segments an execution (5 rounds of 4): the rounds crossed continue-as-new
    # hand-overs, and each execution carried the shards' items on.
    assert len(executions_of(pipeline, four)) >= 2
    assert set(executions_of(pipeline, four).values()) == {"SUCCEEDED"}


def test_a_failing_shard_fails_the_job_once_naming_the_shard(pipeline: Pipeline, tmp_path: Path) -> None:
    good = b"".join(json.dumps({"id": i, "pad": "g" * 60}).encode() + b"\n" for i in range(3_000))
    bad = b"nope\n" * 20_000  # the last shard is all rejects: its ratio exceeds the job's limit
    job_id = unique("it-shardfail")
    submit(pipeline, tmp_path, job_id, good + bad, shards=4, max_reject_ratio=0.1)
    record = wait_terminal(pipeline, job_id, timeout=300)
    assert record["status"] == "FAILED"
    assert record["error"]["type"] == "RejectRatioExceededError"
    assert record["error"]["message"].startswith("shard "), record["error"]
    messages = wait_for(lambda: dlq_messages_of(pipeline, job_id), timeout=60, what="the job's DLQ message")
    assert len(messages) == 1 and messages[0]["error_type"] == "RejectRatioExceededError"
    assert messages[0]["error_message"] == record["error"]["message"]


def test_cancel_stops_every_shard(pipeline: Pipeline, chaos: Chaos, tmp_path: Path) -> None:
    body = body_of(30_000)
    job_id = unique("it-shardcancel")
    # Every read of the input held 0.5 s (10 chunks a shard: 5 s or more), so that the cancel lands mid-job
    # however fast the local cloud runs: the job at full speed ended before the cancel reached it.
    chaos.add(service="s3", operation="GetObject", latency_ms=500)
    submit(pipeline, tmp_path, job_id, body, shards=4)
    wait_for(
        lambda: (get_record(pipeline, job_id) or {}).get("records_in", 0) > 0,
        timeout=120,
        what="the job under way",
    )
    assert main(["cancel", job_id, "--env", "local"]) == 0
    wait_for(
        lambda: executions_of(pipeline, job_id) and "RUNNING" not in executions_of(pipeline, job_id).values(),
        timeout=120,
        what="every execution of the job ended",
    )
    record = get_record(pipeline, job_id)
    assert record is not None and record["status"] == "CANCELLED"
    assert any(shard.get("cursor") != shard["end"] for shard in record["shards"].values()), "stopped early"
    assert dlq_messages_of(pipeline, job_id) == []
