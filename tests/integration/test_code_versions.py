"""One job, one code version, end to end: a team's transform deployed as v1 (`pipeline local up --context
userCode=DIR`), jobs running while v2 is deployed over it the way CI deploys, and what each job's output says
about the code that wrote it. Its own local cloud (two deploys), so the session's stays as it was.

- a long, sharded job that continues as new after the deploy ends SUCCEEDED with every record from v1;
- a job accepted after the deploy runs v2;
- a job that FAILED on v1 is not resumed on v2 by a plain redrive (refused, naming both choices); redriven
  with `--upgrade` it resumes on v2 from its checkpoint, and its lineage says from which offset v2 wrote;
- redriven with `--restart` it reprocesses everything on v2 into a fresh output location.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pipeline_cli.aws import Pipeline, connect_local
from pipeline_cli.main import main
from pipeline_cli.records import get_record, send_request, upload_input
from pipeline_contract import TERMINAL, part_name

pytestmark = pytest.mark.integration

# One 64 KiB chunk per segment in the local environment: about 600 of these lines per chunk.
LINE = {"pad": "x" * 90}
CHUNK = 65_536
LONG_LINES = 100_000


def stamp_module(tag: str) -> str:
    return (
        "from jobcore.transforms import transform\n\n\n"
        '@transform("stamp")\n'
        "def stamp(record: dict) -> dict:\n"
        f"    return {{**record, 'code': {tag!r}}}\n"
    )


def user_code(root: Path, tag: str) -> Path:
    directory = root / tag
    directory.mkdir()
    (directory / "stamp.py").write_text(stamp_module(tag))
    return directory


@dataclass
class Cloud:
    pipeline: Pipeline
    code: dict[str, Path]
    inputs: Path

    def deploy(self, tag: str) -> None:
        assert main(["local", "up", "--context", f"userCode={self.code[tag]}"]) == 0
        self.pipeline = connect_local()  # the outputs name the versions this deploy published

    def submit(self, job_id: str, lines: int, **fields: Any) -> None:
        source = self.inputs / f"{job_id}.jsonl"
        source.write_text("".join(json.dumps({"i": i, **LINE}) + "\n" for i in range(lines)))
        request = {"job_id": job_id, "transform": "stamp", "chunk_bytes": CHUNK, **fields}
        send_request(self.pipeline, {**request, "input": upload_input(self.pipeline, source, job_id)})

    def record(self, job_id: str) -> dict[str, Any]:
        record = get_record(self.pipeline, job_id)
        assert record is not None, job_id
        return record

    def wait(
        self, job_id: str, until: Callable[[dict[str, Any]], bool], what: str, timeout: float = 240
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            record = get_record(self.pipeline, job_id)
            if record is not None and until(record):
                return record
            assert time.monotonic() < deadline, f"{job_id}: {what} within {timeout}s; now {record}"
            time.sleep(0.25)

    def finished(self, job_id: str) -> dict[str, Any]:
        return self.wait(job_id, lambda r: r["status"] in TERMINAL, "a terminal status")

    def chaos(self, *args: str) -> None:
        assert main(["local", "chaos", *args]) == 0

    def parts(self, prefix: str) -> list[tuple[str, dict[str, str], list[dict[str, Any]]]]:
        """(key, metadata, records) of every output part under `prefix`, in input order."""
        bucket = self.pipeline.outputs.data_bucket_name
        listing = self.pipeline.s3.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}part-")
        found = []
        for key in sorted(o["Key"] for o in listing.get("Contents", [])):
            obj = self.pipeline.s3.get_object(Bucket=bucket, Key=key)
            records = [json.loads(line) for line in obj["Body"].read().splitlines()]
            found.append((key, obj["Metadata"], records))
        return found


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    home = tmp_path_factory.mktemp("versions-cloud")
    root = tmp_path_factory.mktemp("versions-code")
    previous = os.environ.get("LOCALCLOUD_HOME")
    os.environ["LOCALCLOUD_HOME"] = str(home)
    try:
        code = {tag: user_code(root, tag) for tag in ("v1", "v2")}
        assert main(["local", "up", "--context", f"userCode={code['v1']}"]) == 0
        yield Cloud(connect_local(), code, tmp_path_factory.mktemp("versions-inputs"))
    finally:
        main(["local", "down"])
        if previous is None:
            os.environ.pop("LOCALCLOUD_HOME", None)
        else:
            os.environ["LOCALCLOUD_HOME"] = previous


def fail_mid_job(cloud: Cloud, job_id: str) -> dict[str, Any]:
    """A job that FAILED on v1 with part of its output written: a permanent S3 error on a part write."""
    cloud.submit(job_id, 20_000)
    cloud.wait(job_id, lambda r: int(r.get("records_out", 0)) > 0, "output written")
    cloud.chaos(
        "add", "--service", "s3", "--operation", "PutObject", "--error", "AccessDenied", "--count", "1"
    )
    record = cloud.finished(job_id)
    cloud.chaos("clear")
    assert record["status"] == "FAILED" and record["error"]["type"] == "AccessDeniedError", record
    return record


@pytest.fixture(scope="module")
def run(cloud: Cloud) -> dict[str, Any]:
    """Everything that happens around the deploy of v2, in order; the tests then check what it left."""
    versions: dict[str, Any] = {"v1": cloud.pipeline.outputs.worker_version_arn}
    failed = {job: fail_mid_job(cloud, job) for job in ("ver-upgrade", "ver-restart")}
    # Slow every read of the input while v2 is deployed, so that the long job is still running when it lands
    # (0.7 s more a chunk, ~170 chunks over 2 shards: a minute or more; under the worker's 1 s read timeout),
    # then let it finish at full speed.
    cloud.chaos("add", "--service", "s3", "--operation", "GetObject", "--latency-ms", "700")
    cloud.submit("ver-long", LONG_LINES, shards=2)
    cloud.wait("ver-long", lambda r: int(r.get("records_out", 0)) > 0, "output written before the deploy")
    cloud.deploy("v2")
    versions["v2"] = cloud.pipeline.outputs.worker_version_arn
    during = cloud.record("ver-long")
    listed = cli_json("versions", "--json")
    pruning = cli_json("versions", "prune", "--dry-run", "--grace-minutes", "0", "--json")
    cloud.chaos("clear")
    cloud.submit("ver-after", 2_000)
    return {
        "versions": versions,
        "failed": failed,
        "long_at_deploy_end": during,
        "listed_at_deploy_end": listed,
        "prune_at_deploy_end": pruning,
    }


def cli_json(*args: str) -> Any:
    with contextlib.redirect_stdout(io.StringIO()) as out:
        assert main(list(args)) == 0
    return json.loads(out.getvalue())


def test_the_deploy_published_a_new_worker_version(run: dict[str, Any]) -> None:
    v1, v2 = run["versions"]["v1"], run["versions"]["v2"]
    assert v1 and v2 and v1 != v2
    assert v1.rsplit(":", 1)[0] == v2.rsplit(":", 1)[0], "two versions of one function"


def test_a_job_running_through_a_deploy_ends_with_every_record_from_its_own_code(
    cloud: Cloud, run: dict[str, Any]
) -> None:
    during = run["long_at_deploy_end"]
    assert during["status"] == "RUNNING", "the deploy must land mid-job for this test to mean anything"
    assert int(during["bytes_in"]) < int(during["input_bytes"])
    record = cloud.finished("ver-long")
    assert record["status"] == "SUCCEEDED", record.get("error")
    parts = cloud.parts("out/ver-long/")
    codes = {r["code"] for _, _, records in parts for r in records}
    assert codes == {"v1"}
    assert sorted(r["i"] for _, _, records in parts for r in records) == list(range(LONG_LINES))
    v1 = run["versions"]["v1"].rsplit(":", 1)[1]
    assert {metadata["code-version"] for _, metadata, _ in parts} == {v1}
    assert record["code_version"]["worker"] == v1
    # Sharded, and continued as new after the deploy: every execution ran the pinned definition.
    assert len(record["shards"]) == 2 and int(record["executions"]) >= 2
    sfn = cloud.pipeline.stepfunctions
    names = [
        e["executionArn"]
        for e in sfn.list_executions(stateMachineArn=cloud.pipeline.outputs.state_machine_arn)["executions"]
        if e["name"].startswith("ver-long-")
    ]
    assert len(names) == int(record["executions"])
    for arn in names:
        assert (
            sfn.describe_execution(executionArn=arn)["stateMachineVersionArn"]
            == record["code_pin"]["state_machine"]
        )


def test_a_job_accepted_after_the_deploy_runs_the_new_code(cloud: Cloud, run: dict[str, Any]) -> None:
    record = cloud.finished("ver-after")
    assert record["status"] == "SUCCEEDED", record.get("error")
    assert {r["code"] for _, _, records in cloud.parts("out/ver-after/") for r in records} == {"v2"}
    assert record["code_pin"]["worker"] == run["versions"]["v2"]


def test_a_redrive_after_the_deploy_is_refused_then_upgraded_with_its_lineage(
    cloud: Cloud, run: dict[str, Any]
) -> None:
    job = "ver-upgrade"
    assert main(["dlq", "redrive", "--job-id", job]) == 0
    refused = cloud.wait(job, lambda r: r["error"]["type"] == "CodeVersionChangedError", "the refusal")
    assert (refused["status"], int(refused["attempt"])) == ("FAILED", 1)
    for choice in ("--upgrade", "--restart", '"upgrade": true'):
        assert choice in refused["error"]["message"]

    assert main(["dlq", "redrive", "--job-id", job, "--upgrade"]) == 0
    record = cloud.wait(job, lambda r: int(r["attempt"]) == 2 and r["status"] in TERMINAL, "attempt 2's end")
    assert record["status"] == "SUCCEEDED", record.get("error")
    v1, v2 = (run["versions"][tag].rsplit(":", 1)[1] for tag in ("v1", "v2"))
    first, second = record["lineage"]
    assert (first["code_version"]["worker"], [int(o) for o in first["offsets"]], int(first["attempt"])) == (
        v1,
        [0],
        1,
    )
    assert (second["code_version"]["worker"], int(second["attempt"])) == (v2, 2)
    (took_over,) = (int(offset) for offset in second["offsets"])
    assert took_over == int(run["failed"][job]["cursor"]), "from the checkpoint it failed at"
    # Every part before the take-over was written by v1, every part from it by v2; each record once.
    parts = cloud.parts(f"out/{job}/")
    for key, metadata, records in parts:
        writer = "v1" if key < f"out/{job}/{part_name(took_over)}" else "v2"
        assert metadata["code-version"] == {"v1": v1, "v2": v2}[writer], key
        assert {r["code"] for r in records} == {writer}, key
    assert sorted(r["i"] for _, _, records in parts for r in records) == list(range(20_000))


def test_a_restart_after_the_deploy_reprocesses_everything_on_the_new_code(
    cloud: Cloud, run: dict[str, Any]
) -> None:
    job = "ver-restart"
    assert main(["dlq", "redrive", "--job-id", job, "--restart"]) == 0
    record = cloud.wait(job, lambda r: int(r["attempt"]) == 2 and r["status"] in TERMINAL, "attempt 2's end")
    assert record["status"] == "SUCCEEDED", record.get("error")
    assert record["output_prefix"].endswith(f"/out/{job}.restart-2/")
    parts = cloud.parts(f"out/{job}.restart-2/")
    assert {r["code"] for _, _, records in parts for r in records} == {"v2"}
    assert sorted(r["i"] for _, _, records in parts for r in records) == list(range(20_000))
    assert [entry["code_version"]["worker"] for entry in record["lineage"]] == [
        run["versions"]["v2"].rsplit(":", 1)[1]
    ]


def test_versions_lists_what_each_active_job_runs_on_and_prune_keeps_what_is_needed(
    cloud: Cloud, run: dict[str, Any]
) -> None:
    v1, v2 = (run["versions"][tag].rsplit(":", 1)[1] for tag in ("v1", "v2"))
    # While the long job ran on v1 after the deploy: v1 is pinned by it, v2 is current.
    workers = {v["version"]: v for v in run["listed_at_deploy_end"] if v["kind"] == "worker"}
    assert workers[v2]["current"] and workers[v2]["active_jobs"] == []
    assert not workers[v1]["current"] and workers[v1]["active_jobs"] == ["ver-long"]
    kept = {(v["kind"], v["version"]): v["reason"] for v in run["prune_at_deploy_end"]["kept"]}
    assert kept[("worker", v1)] == "pinned by 1 active job(s)" and kept[("worker", v2)] == "current"
    assert ("worker", v1) not in {(v["kind"], v["version"]) for v in run["prune_at_deploy_end"]["deleted"]}
    # Every job has ended: with no grace, prune deletes the old versions and keeps the current ones.
    cloud.finished("ver-long")
    pruned = cli_json("versions", "prune", "--grace-minutes", "0", "--json")
    assert {(v["kind"], v["version"]) for v in pruned["deleted"]} >= {("worker", v1)}
    assert all(v["current"] for v in pruned["kept"])
    remaining = cloud.pipeline.lambda_.list_versions_by_function(
        FunctionName=run["versions"]["v2"].rsplit(":", 1)[0]
    )
    assert [v["Version"] for v in remaining["Versions"]] == ["$LATEST", v2]
