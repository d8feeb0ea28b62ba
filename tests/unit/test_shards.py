"""Sharded jobs: the plan covers the input in aligned runs of chunks, and whatever the shard count, chunk
size, segment cuts and the order the shards' segments run in, the parts, the rejects and the counters are
exactly those of a one-shard run."""

from __future__ import annotations

import itertools
import json
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobcore import shards
from jobcore.errors import InputChangedError, RejectRatioExceededError
from jobcore.lines import LineLimits
from jobcore.model import JobRecord
from jobcore.segment import SegmentLimits, SegmentRequest, run_segment
from tests.fakes import FakeClock, MemoryJobs, MemoryObjects, running_job

NOW = "2026-11-30T00:00:00.000Z"
COUNTERS = (
    "records_in",
    "records_out",
    "records_rejected",
    "records_transformed",
    "records_filtered",
    "records_blank",
    "bytes_in",
)


# -- the plan --------------------------------------------------------------------------------------------------


@given(size=st.integers(0, 5_000), chunk=st.integers(1, 700), requested=st.integers(1, 40))
def test_the_plan_covers_the_input_in_aligned_runs_of_chunks(size: int, chunk: int, requested: int) -> None:
    plan = shards.plan(size, chunk, requested)
    chunks = shards.chunk_count(size, chunk)
    if min(requested, chunks) == 1:
        assert plan == ()
        return
    assert len(plan) == min(requested, chunks)
    assert [s.index for s in plan] == list(range(len(plan)))
    assert plan[0].start == 0 and plan[-1].end == size
    for before, after in itertools.pairwise(plan):
        assert before.end == after.start, "contiguous"
    for shard in plan:
        assert shard.start % chunk == 0 and shard.end > shard.start, "aligned, at least one chunk"
    # Balanced: shard sizes differ by at most one chunk (the last may be short).
    counts = [-(-(s.end - s.start) // chunk) for s in plan]
    assert max(counts) - min(counts) <= 1
    assert [s.cursor for s in plan] == [0] + [None] * (len(plan) - 1)


# -- same output as one shard -------------------------------------------------------------------------------------


def run_job(
    data: bytes,
    *,
    shard_count: int,
    chunk_bytes: int,
    max_line_bytes: int,
    max_chunks: int,
    order: random.Random,
    transform: str = "passthrough",
) -> tuple[dict[str, bytes], JobRecord]:
    """Run a job to the end, one segment at a time, each shard's segments interleaved in a random order."""
    jobs, objects = MemoryJobs(), MemoryObjects()
    objects.put("data", "in/job-1.jsonl", data)
    pin = objects.head("data", "in/job-1.jsonl")
    record = running_job(
        chunk_bytes=chunk_bytes,
        transform=transform,
        input_bytes=pin.size,
        input_etag=pin.etag,
        shards=shards.plan(len(data), chunk_bytes, shard_count),
    )
    jobs.create(record)
    limits = SegmentLimits(
        safety_margin_ms=1_000,
        max_chunks=max_chunks,
        max_reject_ratio=1.0,
        lines=LineLimits(max_line_bytes=max_line_bytes),
    )
    pending = set(range(max(1, len(record.shards))))
    for _ in range(10_000):
        if not pending:
            break
        shard = order.choice(sorted(pending))
        clock = FakeClock()
        result = run_segment(
            SegmentRequest(job_id="job-1", attempt=1, shard=shard),
            jobs=jobs,
            objects=objects,
            remaining_ms=clock.remaining_ms,
            limits=limits,
            now=lambda: NOW,
            clock=clock.monotonic,
        )
        assert result.shard == shard
        if result.done:
            pending.discard(shard)
    assert not pending, "every shard finishes"
    final = jobs.get("job-1")
    assert final is not None
    return objects.under("data", "out/job-1/"), final


# Lines of every kind: records, blanks, rejects (not JSON, not an object), lines over the limit, a final line
# with or without its newline.
LINE = st.one_of(
    st.builds(
        lambda i, pad: json.dumps({"i": i, "pad": "x" * pad}).encode(),
        st.integers(0, 999),
        st.integers(0, 30),
    ),
    st.sampled_from([b"", b"   ", b"not json", b"[1,2]", b'{"a":', b"\xff\xfe"]),
    st.integers(60, 400).map(lambda n: b'{"long":"' + b"y" * n + b'"}'),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=st.lists(LINE, min_size=0, max_size=60),
    trailing_newline=st.booleans(),
    chunk_bytes=st.integers(16, 300),
    shard_count=st.integers(2, 9),
    max_chunks=st.integers(1, 4),
    seed=st.integers(0, 2**32 - 1),
)
def test_any_shard_count_writes_what_one_shard_writes(
    lines: list[bytes],
    trailing_newline: bool,
    chunk_bytes: int,
    shard_count: int,
    max_chunks: int,
    seed: int,
) -> None:
    data = b"\n".join(lines) + (b"\n" if trailing_newline and lines else b"")
    common = {"chunk_bytes": chunk_bytes, "max_line_bytes": 100}
    one_parts, one = run_job(data, shard_count=1, max_chunks=1_000, order=random.Random(0), **common)
    many_parts, many = run_job(
        data, shard_count=shard_count, max_chunks=max_chunks, order=random.Random(seed), **common
    )
    assert many_parts == one_parts
    assert {c: getattr(many, c) for c in COUNTERS} == {c: getattr(one, c) for c in COUNTERS}
    assert many.bytes_in == len(data)
    assert all(shard.done for shard in many.shards)


def test_a_line_longer_than_a_shard_is_one_reject_in_the_part_where_its_newline_falls() -> None:
    long_line = b'{"v":"' + b"z" * 900 + b'"}'
    data = b'{"a":1}\n' + long_line + b'\n{"b":2}\n'
    one_parts, _ = run_job(
        data, shard_count=1, chunk_bytes=64, max_line_bytes=200, max_chunks=1, order=random.Random(0)
    )
    many_parts, many = run_job(
        data, shard_count=8, chunk_bytes=64, max_line_bytes=200, max_chunks=1, order=random.Random(1)
    )
    assert many_parts == one_parts
    rejects = [json.loads(line) for k, v in many_parts.items() if "/rejects/" in k for line in v.splitlines()]
    assert [(r["offset"], r["error"].split(";")[0]) for r in rejects] == [
        (8, f"line is {len(long_line)} bytes, over the maximum of 200")
    ]
    assert (many.records_in, many.records_out, many.records_rejected) == (3, 2, 1)


def test_a_shard_whose_range_holds_no_newline_writes_nothing_and_is_done() -> None:
    # Shards 1..3 lie inside one long line: they find no newline of their own.
    data = b'{"a":1}\n{"v":"' + b"q" * 300 + b'"}\n'
    parts, record = run_job(
        data, shard_count=4, chunk_bytes=64, max_line_bytes=1_000, max_chunks=1, order=random.Random(2)
    )
    assert len(record.shards) == 4 and all(s.done for s in record.shards)
    assert sorted(parts) == ["out/job-1/part-000000000000000.jsonl", "out/job-1/part-000000000000256.jsonl"]
    assert record.records_out == 2


# -- failure and cancel, per shard ------------------------------------------------------------------------------


def sharded_job(data: bytes, **changes: object) -> tuple[MemoryJobs, MemoryObjects]:
    jobs, objects = MemoryJobs(), MemoryObjects()
    objects.put("data", "in/job-1.jsonl", data)
    pin = objects.head("data", "in/job-1.jsonl")
    jobs.create(
        running_job(
            chunk_bytes=64,
            input_bytes=pin.size,
            input_etag=pin.etag,
            shards=shards.plan(len(data), 64, 4),
            **changes,  # type: ignore[arg-type]
        )
    )
    return jobs, objects


def one_segment(jobs: MemoryJobs, objects: MemoryObjects, shard: int, **limits: object):  # type: ignore[no-untyped-def]
    clock = FakeClock()
    return run_segment(
        SegmentRequest(job_id="job-1", attempt=1, shard=shard),
        jobs=jobs,
        objects=objects,
        remaining_ms=clock.remaining_ms,
        limits=SegmentLimits(safety_margin_ms=1_000, **limits),  # type: ignore[arg-type]
        now=lambda: NOW,
        clock=clock.monotonic,
    )


def test_a_permanent_error_names_the_shard_it_happened_in() -> None:
    data = b"".join(json.dumps({"i": i}).encode() + b"\n" for i in range(60))
    jobs, objects = sharded_job(data)
    objects.put("data", "in/job-1.jsonl", data + b"changed\n")
    with pytest.raises(InputChangedError) as raised:
        one_segment(jobs, objects, 2)
    record = jobs.get("job-1")
    assert record is not None
    start, end = record.shards[2].start, record.shards[2].end
    assert str(raised.value).startswith(f"shard 2 (bytes {start}-{end}): ")


def test_the_reject_ratio_fails_a_sharded_job_naming_the_shard() -> None:
    data = b"bad\n" * 800  # 200 records a shard: over the 100 the ratio needs
    jobs, objects = sharded_job(data)
    with pytest.raises(
        RejectRatioExceededError, match=r"^shard 1 \(bytes \d+-\d+\): \d+ of \d+ records rejected"
    ):
        one_segment(jobs, objects, 1, max_reject_ratio=0.1)


def test_checkpoints_move_only_their_own_shard_and_refuse_a_stale_cursor() -> None:
    data = b"".join(json.dumps({"i": i, "pad": "p" * 20}).encode() + b"\n" for i in range(40))
    jobs, objects = sharded_job(data)
    one_segment(jobs, objects, 1, max_chunks=1)
    record = jobs.get("job-1")
    assert record is not None
    assert record.shards[1].cursor is not None and record.shards[1].cursor > record.shards[1].start
    assert [s.cursor for s in record.shards] == [0, record.shards[1].cursor, None, None]
    # The same checkpoint again (a duplicate invocation that read the shard before it) is refused.
    assert jobs.checkpoint(jobs.checkpoints[-1]) is False
    assert jobs.get("job-1") == record
