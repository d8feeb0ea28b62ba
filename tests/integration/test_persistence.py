"""A long job survives `pipeline local down` and `pipeline local up`: the deployed app, its data and its
resources come back with the same names, and the job that was RUNNING resumes from its checkpoint and
ends SUCCEEDED with exactly its input as output. Its own local cloud, so that the session's is untouched."""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Iterator
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from pipeline_cli.aws import Pipeline, connect_local
from pipeline_cli.main import main
from pipeline_cli.records import get_record, send_request, upload_input
from pipeline_contract import TERMINAL

pytestmark = pytest.mark.integration

JOB = "kept-long-job"
CHUNK = 64 * 1024  # the local environment's chunk: one per segment
LINES = 12_000


@pytest.fixture
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("kept-cloud")
    previous = os.environ.get("LOCALCLOUD_HOME")
    os.environ["LOCALCLOUD_HOME"] = str(home)
    try:
        yield home
    finally:
        main(["local", "down"])
        if previous is None:
            os.environ.pop("LOCALCLOUD_HOME", None)
        else:
            os.environ["LOCALCLOUD_HOME"] = previous


def local(*args: str) -> dict[str, Any]:
    """`pipeline local ARGS --json`, its JSON."""
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["local", *args, "--json"]) == 0
    return dict(json.loads(out.getvalue()))


def wait_for(pipeline: Pipeline, done: Any, *, timeout: float, what: str) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = get_record(pipeline, JOB)
        if record is not None and done(record):
            return record
        time.sleep(0.2)
    raise AssertionError(f"{what} not reached in {timeout}s: {get_record(pipeline, JOB)}")


def output_of(pipeline: Pipeline) -> bytes:
    bucket = pipeline.outputs.data_bucket_name
    keys = sorted(
        o["Key"]
        for o in pipeline.s3.list_objects_v2(Bucket=bucket, Prefix=f"out/{JOB}/part-").get("Contents", [])
    )
    return b"".join(pipeline.s3.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys)


def execution_statuses(pipeline: Pipeline) -> dict[str, str]:
    executions = pipeline.stepfunctions.list_executions(stateMachineArn=pipeline.outputs.state_machine_arn)
    return {e["name"]: e["status"] for e in executions["executions"] if e["name"].startswith(JOB)}


def test_a_running_job_resumes_after_down_and_up_with_exact_output(home: Path, tmp_path: Path) -> None:
    first = local("up")
    pipeline = connect_local()
    source = tmp_path / "input.jsonl"
    # passthrough writes every valid line byte for byte: the output must be the input, exactly.
    source.write_text("".join(json.dumps({"n": n, "pad": "x" * 200}) + "\n" for n in range(LINES)))
    size = source.stat().st_size
    # Two executions' worth of segments (20 each): the execution resumed after `up` starts its count again,
    # so with fewer a slow `down` (segments going on until the final save) let it finish the job alone.
    assert size > 38 * CHUNK
    send_request(
        pipeline, {"job_id": JOB, "input": upload_input(pipeline, source, JOB), "transform": "passthrough"}
    )

    running = wait_for(
        pipeline,
        lambda r: r["status"] == "RUNNING" and int(r.get("cursor", 0)) >= 2 * CHUNK,
        timeout=60,
        what="RUNNING",
    )
    assert main(["local", "down"]) == 0
    assert int(running["cursor"]) < size
    assert not (home / "state.json").exists()

    # As a user runs it: up deploys again, which changes nothing (same template), and keeps the data.
    second = local("up")
    assert second["pid"] != first["pid"]
    assert second["outputs"] == first["outputs"]
    assert second["endpoint"] == first["endpoint"]
    pipeline = connect_local()
    record = get_record(pipeline, JOB)
    assert record is not None and int(record["cursor"]) >= int(running["cursor"])  # its checkpoint, kept

    final = wait_for(pipeline, lambda r: r["status"] in TERMINAL, timeout=120, what="a terminal status")
    assert final["status"] == "SUCCEEDED", final
    assert (final["records_in"], final["records_out"], final["records_rejected"]) == (LINES, LINES, 0)
    assert output_of(pipeline) == source.read_bytes()
    # The execution that was running at `down` ran again under its own name, and handed over as usual.
    statuses = execution_statuses(pipeline)
    assert statuses[f"{JOB}-a1-e0"] == "SUCCEEDED"
    assert set(statuses.values()) == {"SUCCEEDED"}
    assert len(statuses) >= 2
    # Nothing went to the DLQ.
    dlq = pipeline.sqs.get_queue_attributes(
        QueueUrl=pipeline.outputs.dead_letter_queue_url, AttributeNames=["ApproximateNumberOfMessages"]
    )
    assert dlq["Attributes"]["ApproximateNumberOfMessages"] == "0"

    # The restored app takes new work through its whole path: queue, poller, ingest, state machine, worker.
    small = tmp_path / "small.jsonl"
    small.write_text('{"n": 1}\n{"n": 2}\n')
    send_request(
        pipeline, {"job_id": "after-restore", "input": upload_input(pipeline, small, "after-restore")}
    )
    deadline = time.monotonic() + 60
    while (after := get_record(pipeline, "after-restore")) is None or after["status"] not in TERMINAL:
        assert time.monotonic() < deadline, after
        time.sleep(0.2)
    assert (after["status"], after["records_out"]) == ("SUCCEEDED", 2)
