"""No empty success: the reject-ratio limit is checked at the end of every job, whatever its size."""

from __future__ import annotations

import dataclasses

import pytest

from jobcore.errors import JobCancelledError, RejectRatioExceededError
from jobcore.finish import finish_job
from jobcore.segment import SegmentLimits, SegmentRequest, run_segment
from jobcore.shards import plan
from pipeline_contract import CANCELLED, SUCCEEDED
from tests.fakes import FakeClock, MemoryJobs, MemoryObjects, running_job

NOW = "2026-12-07T00:00:00.000Z"


def run(data: bytes, *, shards: int = 1, chunk_bytes: int = 64, **changes: object) -> MemoryJobs:
    jobs, objects = MemoryJobs(), MemoryObjects()
    objects.put("data", "in/job-1.jsonl", data)
    positions = plan(len(data), chunk_bytes, shards)
    jobs.create(running_job(chunk_bytes=chunk_bytes, shards=positions, **changes))  # type: ignore[arg-type]
    for shard in range(max(1, len(positions))):
        done = False
        while not done:
            clock = FakeClock()
            done = run_segment(
                SegmentRequest(job_id="job-1", attempt=1, shard=shard),
                jobs=jobs,
                objects=objects,
                remaining_ms=clock.remaining_ms,
                limits=SegmentLimits(safety_margin_ms=1, max_reject_ratio=0.5),
                now=lambda: NOW,
                clock=clock.monotonic,
            ).done
    return jobs


def finish(jobs: MemoryJobs, *, ratio: float = 0.5):  # type: ignore[no-untyped-def]
    return finish_job("job-1", 1, jobs=jobs, max_reject_ratio=ratio, remaining_ms=lambda: 60_000)


def test_a_small_all_rejects_job_fails_with_the_ratio_and_the_first_reasons() -> None:
    jobs = run(b"garbage line\n" * 40)
    with pytest.raises(RejectRatioExceededError) as raised:
        finish(jobs)
    message = str(raised.value)
    assert "40 of 40 records rejected (100.0%), over the allowed 50.0%" in message
    assert "the first: offset 0: not JSON" in message and "offset 13: not JSON" in message
    assert "rejects under s3://data/out/job-1/rejects/" in message


def test_an_empty_input_succeeds_with_zero_counts() -> None:
    for data in (b"", b"\n  \n\t\n"):
        result = finish(run(data))
        assert (result.records_in, result.records_out, result.records_rejected) == (0, 0, 0)


def test_a_job_within_its_limit_finishes_with_its_counters() -> None:
    data = b"bad\n" + b'{"a": 1}\n' * 9
    result = finish(run(data))
    assert (result.records_in, result.records_rejected) == (10, 1)
    assert result.as_payload() == {
        "job_id": "job-1",
        "records_in": 10,
        "records_out": 9,
        "records_rejected": 1,
    }


def test_the_jobs_own_lower_limit_applies() -> None:
    jobs = run(b"bad\n" + b'{"a": 1}\n' * 9, max_reject_ratio=0.05)
    with pytest.raises(
        RejectRatioExceededError, match=r"1 of 10 records rejected \(10.0%\), over the allowed 5.0%"
    ):
        finish(jobs)


def test_a_sharded_job_is_checked_on_the_whole_jobs_counters() -> None:
    """Shard 0 all rejects, shard 1 all good: each shard alone would say otherwise; the job is 40%."""
    data = b"bad line\n" * 20 + b'{"a": 1}\n' * 30
    jobs = run(data, shards=2, chunk_bytes=64)
    record = jobs.get("job-1")
    assert record is not None
    assert (record.records_in, record.records_rejected) == (50, 20)
    assert finish(jobs).records_in == 50
    with pytest.raises(RejectRatioExceededError, match=r"20 of 50"):
        finish(jobs, ratio=0.3)


def test_a_retried_finish_sees_the_same_counters_and_a_finished_job_is_no_error() -> None:
    jobs = run(b'{"a": 1}\n' * 5)
    assert finish(jobs) == finish(jobs)
    jobs.set_status("job-1", SUCCEEDED)
    assert finish(jobs).records_in == 5


def test_a_cancelled_or_superseded_job_ends_quietly() -> None:
    jobs = run(b'{"a": 1}\n' * 5)
    jobs.set_status("job-1", CANCELLED)
    with pytest.raises(JobCancelledError):
        finish(jobs)
    jobs = run(b'{"a": 1}\n' * 5)
    record = jobs.get("job-1")
    assert record is not None
    jobs.records["job-1"] = dataclasses.replace(record, attempt=2)
    with pytest.raises(JobCancelledError):
        finish(jobs)


def test_the_midjob_abort_names_the_first_reasons_too() -> None:
    data = b"not json\n" * 150
    with pytest.raises(RejectRatioExceededError) as raised:
        run(data, chunk_bytes=512)
    assert "the first: offset 0: not JSON" in str(raised.value)
