"""Shard benchmark: the wall time of the same job with 1, 2, 4 and 8 shards on the local cloud, with 300 ms
of latency injected into every S3 GetObject (the chaos API), as a slow object store would add on AWS.

One fresh local cloud (the `local` environment, deployed with the real CDK CLI); the jobs run one after
another, each timed from its request sent to its record SUCCEEDED. Every run must write the same parts
(names, sizes and ETags, read by listing: no GetObject, so the injected latency does not slow the check).
The ratios come from the same run (the machine is shared and noisy); the script exits non-zero when a target
is missed. It also prints what each job used (docs/cost.md takes its per-chunk times from here).

    make bench                       # runs it after the chunk-loop benchmark
    .venv/bin/python benchmarks/bench_shards.py [--chunks 96] [--latency-ms 300] [--shards 1 2 4 8]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lambda_src"))
sys.path.insert(0, str(ROOT))

from localcloud.core import cloud  # noqa: E402 - after the path is set
from pipeline_cli import local_deploy  # noqa: E402
from pipeline_cli.aws import Pipeline, connect_local  # noqa: E402
from pipeline_cli.chaos_api import ChaosRules  # noqa: E402
from pipeline_cli.cost import usage_of  # noqa: E402
from pipeline_cli.records import build_request, get_record, send_request, upload_input  # noqa: E402
from pipeline_contract import TERMINAL  # noqa: E402

CHUNK_BYTES = 64 * 1024  # the local environment's smallest chunk: many chunks from a small input
TARGETS = {4: 0.5, 8: 0.3}  # shards -> at most this fraction of the one-shard wall time


def say(message: str) -> None:
    print(message, flush=True)


def make_input(path: Path, chunks: int) -> None:
    line = 0
    with path.open("w") as out:
        while out.tell() < chunks * CHUNK_BYTES - 200:
            out.write(
                json.dumps({"id": line, "name": f" Item {line} ", "pad": "p" * (40 + line % 60)}) + "\n"
            )
            line += 1


def parts(pipeline: Pipeline, job_id: str) -> dict[str, tuple[int, str]]:
    bucket, prefix = pipeline.outputs.data_bucket_name, f"out/{job_id}/"
    return {
        o["Key"][len(prefix) :]: (o["Size"], o["ETag"])
        for page in pipeline.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for o in page.get("Contents", [])
    }


def run_job(pipeline: Pipeline, uri: str, shards: int, timeout: float) -> tuple[float, dict[str, Any]]:
    job_id = f"bench-s{shards}-{uuid.uuid4().hex[:6]}"
    started = time.monotonic()
    send_request(pipeline, build_request(job_id=job_id, input_uri=uri, transform="normalize", shards=shards))
    while time.monotonic() - started < timeout:
        record = get_record(pipeline, job_id)
        if record and record["status"] in TERMINAL:
            wall = time.monotonic() - started
            if record["status"] != "SUCCEEDED":
                raise SystemExit(f"{job_id} ended {record['status']}: {record.get('error')}")
            return wall, record
        time.sleep(0.2)
    raise SystemExit(f"{job_id} did not finish in {timeout:.0f} s")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=96, help="input size in 64 KiB chunks (default 96)")
    parser.add_argument("--latency-ms", type=int, default=300, help="added to every S3 GetObject")
    parser.add_argument("--shards", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--timeout", type=float, default=900.0, help="per job, seconds")
    args = parser.parse_args(argv)
    if args.shards[0] != 1:
        parser.error("--shards must start with 1: the ratios are against one shard")

    with cloud.scratch_home("bench-shards-", say=lambda m: say(f"    {m}")) as home:
        os.environ["LOCALCLOUD_HOME"] = str(home)
        say(f"==> a fresh local cloud in {home}")
        local_deploy.up(home=home, progress=lambda m: say(f"    {m}"))
        pipeline = connect_local()
        source = home / "input.jsonl"
        make_input(source, args.chunks)
        uri = upload_input(pipeline, source, "bench-shards")
        size = source.stat().st_size
        assert pipeline.endpoint_url
        ChaosRules(pipeline.endpoint_url).add(service="s3", operation="GetObject", latency_ms=args.latency_ms)
        say(
            f"==> {size:,} bytes ({args.chunks} chunks of 64 KiB, one a segment), {args.latency_ms} ms on every "
            "S3 GetObject"
        )
        results: dict[int, tuple[float, dict[str, Any]]] = {}
        reference: dict[str, tuple[int, str]] | None = None
        for shards in args.shards:
            wall, record = run_job(pipeline, uri, shards, args.timeout)
            written = parts(pipeline, str(record["job_id"]))
            if reference is None:
                reference = written
            elif written != reference:
                raise SystemExit(f"{shards} shards wrote other parts than 1 shard did")
            results[shards] = (wall, record)
            usage = usage_of(record)
            say(
                f"  {shards} shard(s)  {wall:6.1f} s   segments {int(record['segments']):>3}  executions "
                f"{int(record['executions'])}  worker {int(record['worker_ms']) / 1000:6.1f} s for "
                f"{int(record['chunks'])} chunks ({int(record['worker_ms']) / max(1, int(record['chunks'])):.0f} "
                f"ms a chunk)  ~{usage.state_transitions} transitions  ${usage.total():.5f}"
            )

    base = results[1][0]
    failed = False
    say("")
    for shards, (wall, _) in results.items():
        if shards == 1:
            continue
        ratio = wall / base
        target = TARGETS.get(shards)
        verdict = "" if target is None else ("  PASS" if ratio <= target else "  FAIL")
        failed |= target is not None and ratio > target
        limit = f" (target <= {target})" if target is not None else ""
        say(f"{verdict:>6}  wall time {shards} shards / 1 shard = {ratio:.2f}{limit}")
    say("  PASS  every shard count wrote the same parts (names, sizes, ETags)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
