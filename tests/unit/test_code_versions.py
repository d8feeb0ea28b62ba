"""One job, one code version: the ingest pins the code deployed when a job is accepted (worker, failures
function and state machine versions, and the code's digest), a redrive after a deploy resumes only on the
same code unless asked to upgrade (lineage recorded) or restart, and the worker refuses to run a job on any
other code and names its own on every part it writes."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from jobcore.errors import CodeVersionMismatchError
from jobcore.ingest import Ingest, IngestMessage, Outcome
from jobcore.model import CodePin, CodeVersion, JobRecord, LineageEntry, S3Location, ShardPosition
from jobcore.retry import Deadline
from jobcore.segment import SegmentLimits, SegmentRequest, run_segment
from jobcore.settings import IngestSettings
from pipeline_contract import FAILED, PENDING
from tests.fakes import FakeClock, MemoryJobs, MemoryObjects, running_job

ACCOUNT = "arn:aws:lambda:us-east-1:123456789012:function"
MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:jobs"


def pin(worker: int, *, digest: str, machine: int = 1, failures: int | None = None) -> CodePin:
    return CodePin(
        worker=f"{ACCOUNT}:worker:{worker}",
        failures=f"{ACCOUNT}:failures:{failures or worker}",
        state_machine=f"{MACHINE}:{machine}",
        digest=digest,
    )


V1 = pin(1, digest="aaaaaaaaaaaaaaaa")
V2 = pin(2, digest="bbbbbbbbbbbbbbbb", machine=2)


class Executions:
    def __init__(self) -> None:
        self.started: list[dict[str, Any]] = []

    def start(self, *, state_machine: str, name: str, payload: dict[str, Any]) -> bool:
        if any(started["name"] == name for started in self.started):
            return False
        self.started.append({"state_machine": state_machine, "name": name, "payload": payload})
        return True


class DeadLetters:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send(self, *, body: str, attributes: dict[str, str]) -> None:
        self.sent.append({"body": body, "attributes": attributes})


class Pipeline:
    """The ingest over in-memory stores, deployed with `code`; `deploy` changes what it pins."""

    def __init__(self, code: CodePin = V1) -> None:
        self.jobs, self.objects = MemoryJobs(), MemoryObjects()
        self.executions, self.dead_letters = Executions(), DeadLetters()
        self.objects.put("data", "in/a.jsonl", b"".join(b'{"i": %d}\n' % i for i in range(1000)))
        self.deploy(code)

    def deploy(self, code: CodePin) -> None:
        self.settings = IngestSettings(
            job_table_name="jobs",
            input_locations=(S3Location("data", "in/"),),
            output_location=S3Location("data", "out/"),
            environment="dev",
            default_chunk_bytes=64 * 1024,
            max_reject_ratio=0.5,
            job_ttl_days=1,
            dlq_url="dlq",
            worker_version_arn=code.worker,
            failures_version_arn=code.failures,
            state_machine_version_arn=code.state_machine,
            code_digest=code.digest,
            max_shards=8,
            default_shards=1,
            zstd_single_frame_max_bytes=64 * 1024 * 1024,
            triggers=(),
        )

    def send(self, message_id: str = "m-1", **fields: Any) -> Outcome:
        body = json.dumps({"job_id": "job-1", "input": "s3://data/in/a.jsonl", **fields})
        ingest = Ingest(
            jobs=self.jobs,
            objects=self.objects,
            executions=self.executions,
            dead_letters=self.dead_letters,
            settings=self.settings,
            deadline=Deadline.unlimited(),
            now=lambda: "2026-12-07T00:00:00.000Z",
        )
        return ingest.handle(IngestMessage(message_id=message_id, body=body, job_id_attribute="job-1"))

    @property
    def job(self) -> JobRecord:
        return self.jobs.records["job-1"]

    def fail_after(self, **progress: Any) -> None:
        """The job ran (its checkpoint at `progress`), then failed."""
        self.jobs.records["job-1"] = dataclasses.replace(self.job, status=FAILED, **progress)


def test_a_job_is_pinned_to_the_code_deployed_when_it_is_accepted() -> None:
    pipeline = Pipeline()
    assert pipeline.send() == Outcome.STARTED
    assert pipeline.job.code == V1
    assert pipeline.job.code_version == CodeVersion(worker="1", digest="aaaaaaaaaaaaaaaa")
    assert pipeline.job.lineage == (LineageEntry(attempt=1, code_version=V1.code_version, offsets=(0,)),)
    (started,) = pipeline.executions.started
    assert started["state_machine"] == f"{MACHINE}:1", "started on the published version, not the latest"
    assert started["payload"]["pin"] == {
        "worker": f"{ACCOUNT}:worker:1",
        "failures": f"{ACCOUNT}:failures:1",
        "state_machine": f"{MACHINE}:1",
    }


def test_a_sharded_jobs_lineage_starts_at_each_shard() -> None:
    pipeline = Pipeline()
    pipeline.objects.put("data", "in/a.jsonl", b'{"i": 1}\n' * 30_000)
    pipeline.send(shards=3)
    starts = tuple(shard.start for shard in pipeline.job.shards)
    assert len(starts) == 3
    assert pipeline.job.lineage[0].offsets == starts


def test_a_deploy_changes_nothing_for_a_job_already_accepted() -> None:
    pipeline = Pipeline()
    pipeline.send()
    pipeline.deploy(V2)
    assert pipeline.send(message_id="m-2") == Outcome.DUPLICATE
    assert pipeline.job.code == V1
    pipeline.send(message_id="m-3", job_id="job-2")
    assert pipeline.jobs.records["job-2"].code == V2, "a job accepted after the deploy runs the new code"


def test_a_redrive_on_unchanged_code_resumes_as_before() -> None:
    pipeline = Pipeline()
    pipeline.send()
    pipeline.fail_after(cursor=4096, chunks=2)
    assert pipeline.send(message_id="m-2") == Outcome.RESUMED
    assert (pipeline.job.status, pipeline.job.attempt, pipeline.job.code) == (PENDING, 2, V1)
    assert len(pipeline.job.lineage) == 1
    assert pipeline.executions.started[-1]["state_machine"] == f"{MACHINE}:1"


def test_a_redrive_after_a_code_change_is_refused_naming_both_choices() -> None:
    pipeline = Pipeline()
    pipeline.send()
    pipeline.fail_after(cursor=4096, chunks=2)
    pipeline.deploy(V2)
    assert pipeline.send(message_id="m-2") == Outcome.REFUSED
    assert (pipeline.job.status, pipeline.job.attempt, pipeline.job.code) == (FAILED, 1, V1)
    error = pipeline.job.error
    assert error is not None and error["type"] == "CodeVersionChangedError"
    for text in ("1 (aaaaaaaaaaaaaaaa)", "2 (bbbbbbbbbbbbbbbb)", "--upgrade", '"upgrade": true', "--restart"):
        assert text in error["message"]
    (dead,) = pipeline.dead_letters.sent
    assert dead["attributes"]["error_type"] == "CodeVersionChangedError"
    assert len(pipeline.executions.started) == 1, "nothing started on the new code"


def test_an_upgrade_resumes_on_the_deployed_code_and_records_where_it_took_over() -> None:
    pipeline = Pipeline()
    pipeline.send()
    pipeline.fail_after(cursor=4096, chunks=2)
    pipeline.deploy(V2)
    assert pipeline.send(message_id="m-2", upgrade=True) == Outcome.UPGRADED
    job = pipeline.job
    assert (job.status, job.attempt, job.cursor, job.code) == (PENDING, 2, 4096, V2)
    assert job.lineage == (
        LineageEntry(attempt=1, code_version=V1.code_version, offsets=(0,)),
        LineageEntry(attempt=2, code_version=V2.code_version, offsets=(4096,)),
    )
    started = pipeline.executions.started[-1]
    assert (started["state_machine"], started["payload"]["pin"]["worker"]) == (
        f"{MACHINE}:2",
        f"{ACCOUNT}:worker:2",
    )


def test_an_upgraded_sharded_job_records_each_shards_offset() -> None:
    pipeline = Pipeline()
    pipeline.send()
    shards = (
        ShardPosition(index=0, start=0, end=100, cursor=100),  # done
        ShardPosition(index=1, start=100, end=200, cursor=150),
        ShardPosition(index=2, start=200, end=300, cursor=None),  # not begun
        ShardPosition(index=3, start=300, end=400, cursor=350, long_line_from=320),  # inside a long line
    )
    pipeline.fail_after(shards=shards, chunks=3)
    pipeline.deploy(V2)
    assert pipeline.send(message_id="m-2", upgrade=True) == Outcome.UPGRADED
    assert pipeline.job.lineage[-1].offsets == (100, 150, 200, 320)


def test_a_restart_after_a_code_change_reprocesses_on_the_deployed_code() -> None:
    pipeline = Pipeline()
    pipeline.send()
    pipeline.fail_after(cursor=4096, chunks=2)
    pipeline.deploy(V2)
    assert pipeline.send(message_id="m-2", restart=True) == Outcome.RESTARTED
    job = pipeline.job
    assert (job.cursor, job.code, job.output_prefix) == (0, V2, "s3://data/out/job-1.restart-2/")
    assert job.lineage == (LineageEntry(attempt=2, code_version=V2.code_version, offsets=(0,)),)


def test_new_version_numbers_over_the_same_code_resume_and_say_so() -> None:
    """A configuration change publishes new versions of the same code: nothing to choose, but the lineage
    still names the version that writes from the checkpoint on."""
    pipeline = Pipeline()
    pipeline.send()
    pipeline.fail_after(cursor=4096, chunks=2)
    same_code = pin(5, digest=V1.digest, machine=3)
    pipeline.deploy(same_code)
    assert pipeline.send(message_id="m-2") == Outcome.RESUMED
    assert pipeline.job.code == same_code
    assert pipeline.job.lineage[-1] == LineageEntry(
        attempt=2, code_version=same_code.code_version, offsets=(4096,)
    )


def test_a_job_that_wrote_nothing_runs_on_the_deployed_code_without_asking() -> None:
    pipeline = Pipeline()
    pipeline.send()
    pipeline.fail_after(cursor=0, chunks=0)
    pipeline.deploy(V2)
    assert pipeline.send(message_id="m-2") == Outcome.RESUMED
    assert pipeline.job.code == V2
    assert pipeline.job.lineage == (LineageEntry(attempt=2, code_version=V2.code_version, offsets=(0,)),)


def test_a_job_from_before_code_versions_needs_a_choice() -> None:
    pipeline = Pipeline()
    pipeline.send()
    pipeline.fail_after(cursor=4096, chunks=2, code=None, lineage=())
    assert pipeline.send(message_id="m-2") == Outcome.REFUSED
    assert "code from before code versions" in (pipeline.job.error or {})["message"]
    assert pipeline.send(message_id="m-3", upgrade=True) == Outcome.UPGRADED
    assert pipeline.job.lineage == (LineageEntry(attempt=2, code_version=V1.code_version, offsets=(4096,)),)


# -- the worker -------------------------------------------------------------------------------------------


def run(jobs: MemoryJobs, objects: MemoryObjects, code: CodeVersion | None) -> Any:
    clock = FakeClock()
    return run_segment(
        SegmentRequest(job_id="job-1", attempt=1),
        jobs=jobs,
        objects=objects,
        remaining_ms=clock.remaining_ms,
        limits=SegmentLimits(safety_margin_ms=1_000, code=code),
        now=lambda: "2026-12-07T00:00:00.000Z",
        clock=clock.monotonic,
    )


def pinned_job(jobs: MemoryJobs, objects: MemoryObjects) -> None:
    objects.put("data", "in/job-1.jsonl", b'{"a": 1}\n{"b": 2}\nnot json\n')
    jobs.create(running_job(chunk_bytes=65536, code=V1))


def test_the_worker_names_its_code_on_every_part_it_writes() -> None:
    jobs, objects = MemoryJobs(), MemoryObjects()
    pinned_job(jobs, objects)
    assert run(jobs, objects, V1.code_version).done
    written = objects.metadata
    assert set(written) == {
        ("data", "out/job-1/part-000000000000000.jsonl"),
        ("data", "out/job-1/rejects/part-000000000000000.jsonl"),
    }
    for metadata in written.values():
        assert metadata == {
            "job-id": "job-1",
            "attempt": "1",
            "code-version": "1",
            "code-digest": "aaaaaaaaaaaaaaaa",
        }


@pytest.mark.parametrize(
    "running",
    [CodeVersion(worker="2", digest=V1.digest), CodeVersion(worker="1", digest="cccccccccccccccc")],
    ids=["other version", "other digest"],
)
def test_the_worker_refuses_a_job_pinned_to_other_code_and_writes_nothing(running: CodeVersion) -> None:
    jobs, objects = MemoryJobs(), MemoryObjects()
    pinned_job(jobs, objects)
    with pytest.raises(CodeVersionMismatchError, match=r"worker version .* pinned to version 1 \(aaaa"):
        run(jobs, objects, running)
    assert objects.writes == [] and jobs.checkpoints == []
