"""Burst benchmark: the local cloud's job rate. 300 small jobs (1,000 lines each) sent to the real ingest
queue in SendMessageBatch batches of 10, all at once, as a team's burst arrives.

One fresh local cloud (the `local` environment, deployed with the real CDK CLI, IAM enforced as by default).
Each job has its own input (uploaded before the clock starts); the rate is counted from the first send to
the last job seen SUCCEEDED. Every job must end SUCCEEDED with every line in and out, and its output must be
exactly the input normalized, in order (read back after the clock stops). Beside the rate it prints the CPU
seconds per job of the server's process tree (the server and its Lambda environments, from /proc: utime +
stime of the live processes, plus what their reaped children used), since on a shared machine the rate moves
with the load and the CPU per job does not. The script exits non-zero when the target is missed.

    make bench                       # runs it after the shard benchmark
    .venv/bin/python benchmarks/bench_burst.py [--jobs 300] [--lines 1000] [--no-iam]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lambda_src"))
sys.path.insert(0, str(ROOT))

from localcloud.core import cloud  # noqa: E402 - after the path is set
from pipeline_cli import local_deploy  # noqa: E402
from pipeline_cli.aws import Pipeline, connect_local  # noqa: E402
from pipeline_cli.records import build_request, record_from_item, upload_input  # noqa: E402
from pipeline_contract import TERMINAL  # noqa: E402

TARGET_JOBS_PER_SECOND = 5.8  # 3x the 1.93 jobs/s measured before issue 19 (300 jobs in 155 s)
BATCH = 10  # SendMessageBatch's limit
BATCH_GET = 100  # BatchGetItem's limit
POLL_SECONDS = 1.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def say(message: str) -> None:
    print(message, flush=True)


def record_line(job: int, line: int) -> dict[str, Any]:
    return {"id": line, "firstName": f" user {line} ", "Job Number": job, "tags": [" a ", "b"]}


def expected_line(job: int, line: int) -> dict[str, Any]:
    # What `normalize` (the ingest's default transform) makes of record_line.
    return {"id": line, "first_name": f"user {line}", "job_number": job, "tags": ["a", "b"]}


def make_inputs(pipeline: Pipeline, directory: Path, jobs: int, lines: int) -> list[str]:
    uris = []
    for job in range(jobs):
        path = directory / f"input-{job:04d}.jsonl"
        path.write_text("".join(json.dumps(record_line(job, n)) + "\n" for n in range(lines)))
        uris.append(upload_input(pipeline, path, f"bench-burst-{job:04d}"))
    return uris


def tree_cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` and every live descendant, plus cutime + cstime (the reaped children's)."""
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # it ended while we looked
        stats[int(entry)] = fields
        children.setdefault(int(fields[1]), []).append(int(entry))
    ticks, pending = 0, [pid]
    while pending:
        each = pending.pop()
        found = stats.get(each)
        if found is None:
            continue
        # After ")": state, ppid, ... utime is field 14 of the whole line, so index 11 here (then stime,
        # cutime, cstime).
        ticks += sum(int(value) for value in found[11:15])
        pending.extend(children.get(each, []))
    return ticks / CLOCK_TICKS


def send_burst(pipeline: Pipeline, job_ids: list[str], uris: list[str]) -> None:
    for start in range(0, len(job_ids), BATCH):
        entries = [
            {"Id": str(index), "MessageBody": json.dumps(build_request(job_id=job_id, input_uri=uri))}
            for index, (job_id, uri) in enumerate(
                zip(job_ids[start : start + BATCH], uris[start : start + BATCH], strict=True)
            )
        ]
        response = pipeline.sqs.send_message_batch(
            QueueUrl=pipeline.outputs.ingest_queue_url, Entries=entries
        )
        if response.get("Failed"):
            raise SystemExit(f"SendMessageBatch refused {response['Failed']}")


def batch_get(
    pipeline: Pipeline, job_ids: list[str], projection: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """The jobs' records (consistent reads), BATCH_GET keys a request."""
    table = pipeline.outputs.job_table_name
    records = []
    for start in range(0, len(job_ids), BATCH_GET):
        keys = [{"job_id": {"S": job_id}} for job_id in job_ids[start : start + BATCH_GET]]
        request: dict[str, Any] = {table: {"Keys": keys, "ConsistentRead": True, **(projection or {})}}
        while request:
            response = pipeline.dynamodb.batch_get_item(RequestItems=request)
            records += [record_from_item(item) for item in response["Responses"].get(table, [])]
            request = response.get("UnprocessedKeys") or {}
    return records


def wait_for_all(pipeline: Pipeline, job_ids: list[str], timeout: float) -> float:
    """Polls the unfinished jobs' statuses until every one is terminal; returns when the last was seen
    terminal (time.monotonic). Only the two attributes it needs, once a second: the poll is a load on the
    server being measured, so it is kept small."""
    status_only = {"ProjectionExpression": "job_id, #s", "ExpressionAttributeNames": {"#s": "status"}}
    pending = set(job_ids)
    deadline = time.monotonic() + timeout
    last_seen = time.monotonic()
    while pending:
        if time.monotonic() > deadline:
            raise SystemExit(f"{len(pending)} job(s) not finished after {timeout:.0f} s, e.g. {min(pending)}")
        for record in batch_get(pipeline, sorted(pending), status_only):
            if record["status"] in TERMINAL:
                pending.discard(record["job_id"])
                last_seen = time.monotonic()
        if pending:
            time.sleep(POLL_SECONDS)
    return last_seen


def check_job(pipeline: Pipeline, job: int, record: dict[str, Any], lines: int) -> None:
    job_id = str(record["job_id"])
    if record["status"] != "SUCCEEDED":
        raise SystemExit(f"{job_id} ended {record['status']}: {record.get('error')}")
    counts = (int(record["records_in"]), int(record["records_out"]), int(record.get("records_rejected") or 0))
    if counts != (lines, lines, 0):
        raise SystemExit(f"{job_id}: records in/out/rejected {counts}, expected ({lines}, {lines}, 0)")
    bucket, prefix = pipeline.outputs.data_bucket_name, f"out/{job_id}/part-"
    keys = [
        o["Key"]
        for page in pipeline.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for o in page.get("Contents", [])
    ]
    written = [
        json.loads(line)
        for key in sorted(keys)
        for line in pipeline.s3.get_object(Bucket=bucket, Key=key)["Body"].read().splitlines()
    ]
    if len(written) != lines:
        raise SystemExit(f"{job_id}: {len(written)} output lines, expected {lines}")
    for n, line in enumerate(written):
        if line != expected_line(job, n):
            raise SystemExit(f"{job_id}: output line {n} is {line!r}, expected {expected_line(job, n)!r}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=300, help="jobs in the burst (default 300)")
    parser.add_argument("--lines", type=int, default=1000, help="lines per job's input (default 1000)")
    parser.add_argument("--timeout", type=float, default=900.0, help="for the whole burst, seconds")
    parser.add_argument(
        "--iam", action=argparse.BooleanOptionalAction, default=True, help="IAM enforcement (default on)"
    )
    args = parser.parse_args(argv)

    with cloud.scratch_home("bench-burst-", say=lambda m: say(f"    {m}")) as home:
        os.environ["LOCALCLOUD_HOME"] = str(home)
        say(f"==> a fresh local cloud in {home}")
        state = local_deploy.up(home=home, progress=lambda m: say(f"    {m}"), iam=args.iam)
        pipeline = connect_local()
        uris = make_inputs(pipeline, home, args.jobs, args.lines)
        run = time.strftime("%H%M%S")
        job_ids = [f"burst-{run}-{job:04d}" for job in range(args.jobs)]
        say(
            f"==> {args.jobs} jobs of {args.lines:,} lines, sent in batches of {BATCH} to the ingest queue "
            f"(IAM {'on' if args.iam else 'off'}; server pid {state.pid})"
        )
        cpu_before = tree_cpu_seconds(state.pid)
        started = time.monotonic()
        send_burst(pipeline, job_ids, uris)
        sent = time.monotonic() - started
        finished = wait_for_all(pipeline, job_ids, args.timeout)
        cpu = tree_cpu_seconds(state.pid) - cpu_before
        wall = finished - started
        records = {str(record["job_id"]): record for record in batch_get(pipeline, job_ids)}
        for job, job_id in enumerate(job_ids):
            check_job(pipeline, job, records[job_id], args.lines)

    rate = args.jobs / wall
    say(f"  sent in {sent:.1f} s; last SUCCEEDED after {wall:.1f} s")
    say(f"  {rate:.2f} jobs/s   server process tree {cpu:.1f} CPU s ({cpu / args.jobs:.3f} CPU s per job)")
    say(f"  PASS  every job SUCCEEDED with {args.lines:,} lines in and out, its output exactly as expected")
    verdict = "PASS" if rate >= TARGET_JOBS_PER_SECOND else "FAIL"
    say(f"  {verdict}  {rate:.2f} jobs/s (target >= {TARGET_JOBS_PER_SECOND})")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
