#!/usr/bin/env python3
"""`make demo-recursion`: the same long job through the seed's anti-pattern and through the pipeline, side by
side on the local cloud. The anti-pattern is stopped after 16 chunks by Lambda's recursive loop detection
(its continuation lands in its DLQ and its RecursiveInvocationsDropped alarm fires); the pipeline, whose
segments are driven by a state machine, finishes the job.

    python examples/self-recursion/demo.py [--port N]

Exit status 0 when both ended as promised, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from localcloud.core.state import LocalCloudState  # noqa: E402 - after the repository root is on the path
from pipeline_cli import local_deploy  # noqa: E402
from pipeline_cli.aws import Pipeline, connect_local  # noqa: E402
from pipeline_cli.local_home import local_home  # noqa: E402
from pipeline_cli.records import build_request, get_record, send_request, upload_input  # noqa: E402
from pipeline_cli.scenarios import LOCAL_CHUNK_BYTES, LONG_CHUNKS, write_records  # noqa: E402

APP = Path(__file__).resolve().parent / "app.py"
STACK = "SelfRecursionExample"
# Lambda lets a chain invoke a function about 16 times, then drops the next invocation.
EXPECTED_HOPS = 16
TIMEOUT_SECONDS = 120.0


@dataclass
class Outcome:
    job_id: str
    pipeline_status: str = "-"
    segments: int = 0
    executions: int = 0
    chunks_done: list[int] = field(default_factory=list)
    dead_letter: dict[str, Any] | None = None
    alarm: str = "-"
    seconds: float = 0.0

    def problems(self) -> list[str]:
        found = []
        if self.pipeline_status != "SUCCEEDED":
            found.append(f"the pipeline's job is {self.pipeline_status}, expected SUCCEEDED")
        if self.chunks_done != list(range(EXPECTED_HOPS)):
            found.append(
                f"the anti-pattern processed chunks {self.chunks_done}, expected 0-{EXPECTED_HOPS - 1}"
            )
        if not self.dead_letter or self.dead_letter.get("chunk") != EXPECTED_HOPS:
            found.append(
                f"its DLQ holds {self.dead_letter}, expected the continuation of chunk {EXPECTED_HOPS}"
            )
        if self.alarm != "ALARM":
            found.append(f"its RecursiveInvocationsDropped alarm is {self.alarm}, expected ALARM")
        return found


def deploy_example(state: LocalCloudState, home: Path, data_bucket: str, out: TextIO) -> dict[str, str]:
    """The example's own app into the running cloud, with the pinned CDK CLI."""
    print(f"==> cdk deploy --app 'python {APP.relative_to(ROOT)}' (the anti-pattern)", file=out)
    local_deploy.run_cdk(
        [
            "deploy",
            "--app",
            f"{sys.executable} {APP}",
            "--all",
            "--method=direct",
            "--require-approval",
            "never",
            "-c",
            f"dataBucket={data_bucket}",
            "-o",
            str(home / "cdk.out.self-recursion"),
        ],
        env=local_deploy.cli_environment(state.endpoint, region=state.region),
        project_dir=local_deploy.PROJECT_DIR,
        log_path=home / "logs" / "deploy.log",
        progress=lambda line: print(f"    {line}", file=out),
    )
    return local_deploy.stack_outputs(state.endpoint, region=state.region, stacks=(STACK,))


def _chunks_done(log: Path, job_id: str) -> list[int]:
    if not log.exists():
        return []
    done = []
    for line in log.read_text().splitlines():
        if line.startswith('{"job_id"'):
            record = json.loads(line)
            if record["job_id"] == job_id:
                done.append(int(record["chunk"]))
    return sorted(done)


def _alarm_state(pipeline: Pipeline, function_name: str) -> str:
    cloudwatch = pipeline.client("cloudwatch")
    for page in cloudwatch.get_paginator("describe_alarms").paginate(AlarmNamePrefix=STACK):
        for alarm in page["MetricAlarms"]:
            dimensions = {d["Name"]: d["Value"] for d in alarm.get("Dimensions", [])}
            if (
                alarm.get("MetricName") == "RecursiveInvocationsDropped"
                and dimensions.get("FunctionName") == function_name
            ):
                return str(alarm["StateValue"])
    return "missing"


def run(pipeline: Pipeline, state: LocalCloudState, home: Path, run_id: str, *, out: TextIO) -> Outcome:
    """Deploy the anti-pattern, start the same long job through both, wait (bounded) until each has ended."""
    example = deploy_example(state, home, pipeline.outputs.data_bucket_name, out)
    job_id = f"recursion-{run_id}"
    outcome = Outcome(job_id=job_id)
    with tempfile.TemporaryDirectory(prefix="demo-recursion-") as tmp:
        path = Path(tmp) / f"{job_id}.jsonl"
        write_records(path, target_bytes=LONG_CHUNKS * LOCAL_CHUNK_BYTES - 1000)
        uri = upload_input(pipeline, path, job_id)
        size = path.stat().st_size
    started = time.monotonic()
    print(
        f"==> the same {size:,}-byte job ({LONG_CHUNKS} chunks of {LOCAL_CHUNK_BYTES // 1024} KiB) to both",
        file=out,
    )
    send_request(pipeline, build_request(job_id=job_id, input_uri=uri))
    first = {"job_id": job_id, "input": uri, "chunk": 0, "chunk_bytes": LOCAL_CHUNK_BYTES, "size": size}
    pipeline.sqs.send_message(QueueUrl=example["QueueUrl"], MessageBody=json.dumps(first))

    log = home / "logs" / f"{example['FunctionName']}.log"
    deadline = started + TIMEOUT_SECONDS
    shown = ""
    while time.monotonic() < deadline:
        record = get_record(pipeline, job_id) or {}
        outcome.pipeline_status = str(record.get("status", "-"))
        outcome.segments = int(record.get("segments", 0) or 0)
        outcome.executions = int(record.get("executions", 0) or 0)
        outcome.chunks_done = _chunks_done(log, job_id)
        if outcome.dead_letter is None:
            messages = pipeline.sqs.receive_message(
                QueueUrl=example["DeadLettersUrl"], WaitTimeSeconds=0
            ).get("Messages", [])
            if messages:
                outcome.dead_letter = json.loads(messages[0]["Body"])
        outcome.alarm = _alarm_state(pipeline, example["FunctionName"])
        line = (
            f"  pipeline {outcome.pipeline_status:<9} segments {outcome.segments:>2}/{LONG_CHUNKS}"
            f"   |   anti-pattern chunks {len(outcome.chunks_done):>2}/{LONG_CHUNKS}"
            f"  DLQ {'chunk ' + str(outcome.dead_letter['chunk']) if outcome.dead_letter else '-'}"
            f"  alarm {outcome.alarm}"
        )
        if line != shown:
            print(f"{time.monotonic() - started:5.1f}s {line}", file=out)
            shown = line
        if not outcome.problems():
            break
        time.sleep(0.5)
    outcome.seconds = time.monotonic() - started
    return outcome


def report(outcome: Outcome, out: TextIO) -> int:
    print("", file=out)
    print(f"  {'':<22}{'pipeline (state machine)':<34}anti-pattern (queue feeding itself)", file=out)
    print(
        f"  {'job':<22}{outcome.pipeline_status + f', {outcome.segments} segments':<34}"
        f"stopped after {len(outcome.chunks_done)} of {LONG_CHUNKS} chunks",
        file=out,
    )
    print(
        f"  {'how':<22}{f'{outcome.executions} executions (continue-as-new)':<34}"
        f"Lambda dropped invocation {EXPECTED_HOPS + 1}: recursive loop",
        file=out,
    )
    dead = f"continuation of chunk {outcome.dead_letter['chunk']}" if outcome.dead_letter else "-"
    print(f"  {'dead letters':<22}{'-':<34}{dead}", file=out)
    print(f"  {'alarm':<22}{'-':<34}RecursiveInvocationsDropped {outcome.alarm}", file=out)
    print(f"  in {outcome.seconds:.1f}s", file=out)
    problems = outcome.problems()
    for problem in problems:
        print(f"error: {problem}", file=out)
    if not problems:
        print("==> as on AWS: the loop is stopped mid-job and pages; the segmented job finishes.", file=out)
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=None, help="the local cloud's port")
    args = parser.parse_args(argv)
    out = sys.stdout
    print("==> pipeline local up", file=out)
    home = local_home()
    state = local_deploy.up(port=args.port, home=home, progress=lambda line: print(f"    {line}", file=out))
    outcome = run(connect_local(), state, home, time.strftime("%H%M%S"), out=out)
    return report(outcome, out)


if __name__ == "__main__":
    sys.exit(main())
