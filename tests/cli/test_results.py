"""`pipeline output` and `pipeline logs` on moto: a job's parts streamed in input order (or its rejects), to
stdout or replaced whole into a file; a job's structured log lines from its functions' log groups."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import boto3

from tests.cli.conftest import REGION, Deployed, Result

Run = Callable[..., Result]


def job_with_parts(deployed: Deployed, job_id: str = "job-o", status: str = "SUCCEEDED") -> list[bytes]:
    bucket = deployed.outputs["DataBucketName"]
    parts = {
        f"out/{job_id}/part-000000000131072.jsonl": b'{"i":3}\n',
        f"out/{job_id}/part-000000000000000.jsonl": b'{"i":1}\n',
        f"out/{job_id}/part-000000000065536.jsonl": b'{"i":2}\n',
        f"out/{job_id}/rejects/part-000000000065536.jsonl": b'{"offset":9,"line":"x","error":"not JSON"}\n',
        f"out/{job_id}x/part-000000000000000.jsonl": b'{"other job":1}\n',
    }
    for key, body in parts.items():
        deployed.s3.put_object(Bucket=bucket, Key=key, Body=body)
    deployed.put_job(job_id, status, output_prefix=f"s3://{bucket}/out/{job_id}/")
    return [b'{"i":1}\n', b'{"i":2}\n', b'{"i":3}\n']


def test_output_streams_the_parts_in_input_order_to_stdout(deployed: Deployed, run: Run) -> None:
    expected = job_with_parts(deployed)

    result = run("output", "job-o", "--env", "dev")

    assert result.code == 0, result.err
    assert result.out == b"".join(expected).decode()
    assert result.err == "output of job job-o: 3 part(s), 24 bytes\n"


def test_output_rejects_and_a_file_replaced_whole(deployed: Deployed, run: Run, tmp_path: Path) -> None:
    job_with_parts(deployed)
    target = tmp_path / "rejects.jsonl"
    target.write_text("old content\n")

    result = run("output", "job-o", "--rejects", "-o", str(target), "--env", "dev")

    assert result.code == 0, result.err
    assert result.out == ""
    assert [json.loads(line)["error"] for line in target.read_text().splitlines()] == ["not JSON"]
    assert [p.name for p in tmp_path.iterdir()] == ["rejects.jsonl"], "no temporary file left"


def test_gzip_parts_are_decompressed_and_access_points_left_out(deployed: Deployed, run: Run) -> None:
    """`output_compression: gzip` parts (one gzip member each) stream as their JSON Lines; a gzip input's
    access points beside them are not output."""
    import gzip

    bucket = deployed.outputs["DataBucketName"]
    big = b"".join(json.dumps({"i": i, "pad": "z" * 200}).encode() + b"\n" for i in range(20_000))
    parts = {
        "out/job-gz/part-000000000000000.jsonl.gz": gzip.compress(b'{"i":1}\n', mtime=0),
        "out/job-gz/part-000000000065536.jsonl.gz": gzip.compress(big, mtime=0),  # > 1 MiB of text
        "out/job-gz/_access/gzip-000000001048576.gzidx": b"GZIDX\x01 not output",
    }
    for key, body in parts.items():
        deployed.s3.put_object(Bucket=bucket, Key=key, Body=body)
    deployed.put_job("job-gz", "SUCCEEDED", output_prefix=f"s3://{bucket}/out/job-gz/")

    result = run("output", "job-gz", "--env", "dev")

    assert result.code == 0, result.err
    assert result.out.encode() == b'{"i":1}\n' + big
    assert result.err == f"output of job job-gz: 2 part(s), {8 + len(big):,} bytes\n"


def test_output_of_a_running_job_says_it_is_partial(deployed: Deployed, run: Run) -> None:
    job_with_parts(deployed, status="RUNNING")

    result = run("output", "job-o", "--env", "dev")

    assert result.code == 0
    assert result.err.startswith("job job-o is RUNNING: this is the output written so far (whole chunks)\n")


def test_output_of_an_unknown_job_exits_2(deployed: Deployed, run: Run) -> None:
    result = run("output", "nope", "--env", "dev")

    assert (result.code, result.err) == (2, "error: unknown job 'nope' in environment dev\n")


def test_logs_shows_the_jobs_structured_lines_oldest_first(deployed: Deployed, run: Run) -> None:
    deployed.put_job("job-l", "RUNNING")
    logs = boto3.client("logs", region_name=REGION)
    group = "/aws/lambda/resilient-pipeline-dev-worker"
    logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName="s")
    now = int(time.time() * 1000)
    lines = [
        {
            "timestamp": "2026-11-30 10:00:02,000+0000",
            "level": "INFO",
            "message": "checkpoint",
            "job_id": "job-l",
            "cursor": 90,
        },
        {
            "timestamp": "2026-11-30 10:00:01,000+0000",
            "level": "INFO",
            "message": "segment started",
            "job_id": "job-l",
        },
        {
            "timestamp": "2026-11-30 10:00:01,500+0000",
            "level": "INFO",
            "message": "checkpoint",
            "job_id": "job-other",
        },
        # The worker's metrics (EMF) carry the job's keys as properties: a metric blob, not a log line.
        {
            "_aws": {
                "Timestamp": now,
                "CloudWatchMetrics": [{"Namespace": "ResilientPipeline", "Metrics": []}],
            },
            "BytesIn": [4096.0],
            "job_id": "job-l",
        },
    ]
    events = [{"timestamp": now + i, "message": json.dumps(line)} for i, line in enumerate(lines)]
    events.append({"timestamp": now + 9, "message": "START RequestId: 1 Version: $LATEST"})
    logs.put_log_events(logGroupName=group, logStreamName="s", logEvents=events)

    result = run("logs", "job-l", "--env", "dev")

    assert result.code == 0, result.err
    assert result.out.splitlines() == [
        "2026-11-30 10:00:01,000+0000  resilient-pipeline-dev-worker  INFO    segment started",
        "2026-11-30 10:00:02,000+0000  resilient-pipeline-dev-worker  INFO    checkpoint  cursor=90",
    ]
    as_json = json.loads(run("logs", "job-l", "--env", "dev", "--json").out)
    assert [line["message"] for line in as_json] == ["segment started", "checkpoint"]
    assert as_json[0]["function"] == "resilient-pipeline-dev-worker"
