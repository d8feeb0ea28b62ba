"""The worker's chunk loop: exactly-once output under any cut, time guard, checkpoints, races, crashes."""

from __future__ import annotations

import json
import logging

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobcore.errors import InputNotFoundError, JobCancelledError, RejectRatioExceededError, TransientError
from jobcore.lines import join_lines, process_lines
from jobcore.segment import SegmentLimits, SegmentRequest, run_segment
from pipeline_contract import CANCELLED, part_name
from tests.fakes import FakeClock, MemoryJobs, MemoryObjects, registered, running_job

NOW = "2026-11-23T00:00:00.000Z"
UNLIMITED = SegmentLimits(safety_margin_ms=1_000, max_reject_ratio=1.0)


def setup(data: bytes, **record_changes: object) -> tuple[MemoryJobs, MemoryObjects]:
    jobs, objects = MemoryJobs(), MemoryObjects()
    objects.put("data", "in/job-1.jsonl", data)
    jobs.create(running_job(**record_changes))  # type: ignore[arg-type]
    return jobs, objects


def segment(
    jobs: MemoryJobs,
    objects: MemoryObjects,
    *,
    limits: SegmentLimits = UNLIMITED,
    clock: FakeClock | None = None,
    seg: int = 0,
    retry_count: int = 0,
):  # type: ignore[no-untyped-def]
    clock = clock or FakeClock()
    return run_segment(
        SegmentRequest(job_id="job-1", attempt=1, segments_in_execution=seg, retry_count=retry_count),
        jobs=jobs,
        objects=objects,
        remaining_ms=clock.remaining_ms,
        limits=limits,
        now=lambda: NOW,
        clock=clock.monotonic,
    )


def outputs(objects: MemoryObjects, prefix: str = "out/job-1/") -> tuple[bytes, bytes]:
    parts = objects.under("data", prefix)
    out = b"".join(v for k, v in parts.items() if "/rejects/" not in k)
    rejects = b"".join(v for k, v in parts.items() if "/rejects/" in k)
    return out, rejects


def reference(data: bytes, transform: str = "passthrough") -> tuple[bytes, bytes]:
    result = process_lines(data, start_offset=0, **registered(transform))
    return join_lines(result.output), join_lines(result.rejects)


def lines_input(n: int, width: int = 10) -> bytes:
    return b"".join(json.dumps({"i": i, "pad": "x" * width}).encode() + b"\n" for i in range(n))


def test_one_segment_processes_everything_when_time_allows() -> None:
    data = lines_input(50)
    jobs, objects = setup(data)
    result = segment(jobs, objects)
    assert result.done and result.cursor == len(data)
    assert result.records_in == result.records_out == 50
    assert outputs(objects) == reference(data)
    record = jobs.get("job-1")
    assert record is not None
    assert (record.records_in, record.records_out, record.records_rejected, record.segments) == (50, 50, 0, 1)
    assert record.input_bytes == len(data) and record.bytes_in == len(data)


def test_part_names_sort_in_input_order_and_follow_aligned_ranges() -> None:
    data = lines_input(30)
    jobs, objects = setup(data, chunk_bytes=100)
    segment(jobs, objects)
    names = [k for k in objects.under("data", "out/job-1/")]
    assert names == sorted(names)
    offsets = [int(k.rsplit("-", 1)[1].split(".")[0]) for k in names]
    assert all(offset % 100 == 0 for offset in offsets)
    # Every read after the first ends on an aligned boundary (or at the end of the input).
    assert all(end % 100 == 0 or end == len(data) for _, end in objects.reads)


def test_time_guard_returns_a_cursor_before_a_chunk_that_would_not_fit() -> None:
    data = lines_input(40)
    jobs, objects = setup(data, chunk_bytes=200)
    clock = FakeClock(timeout_ms=10_000)
    # Each chunk takes 2 s; margin 3 s: chunks start at 10, 8, 6 s remaining (6 - 3 > 2.5), not at 4 s.
    objects.on_read = lambda start, end: clock.advance(2.0)
    result = segment(jobs, objects, limits=SegmentLimits(safety_margin_ms=3_000), clock=clock)
    assert not result.done
    assert result.chunks == 3
    assert clock.remaining_ms() >= 3_000, "the platform would have killed it mid-chunk"
    record = jobs.get("job-1")
    assert record is not None and record.cursor == result.cursor > 0
    assert record.chunk_ms == 2_000, "the learned chunk time is persisted for the next invocation"


def test_learned_chunk_time_guards_the_next_invocation_from_its_start() -> None:
    data = lines_input(40)
    jobs, objects = setup(data, chunk_bytes=200, chunk_ms=4_000)
    clock = FakeClock(timeout_ms=10_000)
    objects.on_read = lambda start, end: clock.advance(4.0)
    result = segment(jobs, objects, limits=SegmentLimits(safety_margin_ms=1_000), clock=clock)
    # 10 s: first chunk (needs only the margin) -> 6 s left; 6 - 1 < 4 * 1.25: stop.
    assert result.chunks == 1


def test_max_chunks_caps_a_segment() -> None:
    data = lines_input(40)
    jobs, objects = setup(data, chunk_bytes=200)
    result = segment(jobs, objects, limits=SegmentLimits(safety_margin_ms=1_000, max_chunks=2))
    assert result.chunks == 2 and not result.done
    assert result.segments_in_execution == 1


def test_segments_continue_to_the_end_and_count_segments() -> None:
    data = lines_input(40)
    jobs, objects = setup(data, chunk_bytes=200)
    limits = SegmentLimits(safety_margin_ms=1_000, max_chunks=1)
    results = []
    while not results or not results[-1].done:
        results.append(segment(jobs, objects, limits=limits, seg=len(results)))
    record = jobs.get("job-1")
    assert record is not None and record.segments == len(results)
    assert [r.segments_in_execution for r in results] == list(range(1, len(results) + 1))
    assert outputs(objects) == reference(data)


def test_stale_invocation_changes_nothing_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    data = lines_input(20)
    jobs, objects = setup(data, chunk_bytes=200)

    # Another invocation checkpoints while this one is reading its first range.
    def race(start: int, end: int) -> None:
        if start == 0 and not jobs.checkpoints:
            objects.on_read = None
            segment(jobs, objects, limits=SegmentLimits(safety_margin_ms=1_000, max_chunks=1))

    objects.on_read = race
    # Listen on the module's logger itself: once the handlers wire jobcore to Powertools, it no longer
    # propagates to the root logger where caplog listens.
    module_logger = logging.getLogger("jobcore.segment")
    module_logger.addHandler(caplog.handler)
    try:
        result = segment(jobs, objects, limits=SegmentLimits(safety_margin_ms=1_000, max_chunks=1))
    finally:
        module_logger.removeHandler(caplog.handler)
    record = jobs.get("job-1")
    assert record is not None
    assert result.stale and result.records_in == 0
    assert result.cursor == record.cursor == jobs.checkpoints[0].new_cursor
    assert len(jobs.checkpoints) == 1, "the loser's checkpoint was not applied"
    assert any("stale invocation" in r.message for r in caplog.records)


def test_crash_between_part_and_checkpoint_rewrites_the_same_part() -> None:
    data = lines_input(30)
    jobs, objects = setup(data, chunk_bytes=200)
    jobs.crash_on_checkpoint = 1
    with pytest.raises(RuntimeError):
        segment(jobs, objects)
    written_before = dict(objects.under("data", "out/job-1/"))
    assert list(written_before) == [f"out/job-1/{part_name(0)}"]
    record = jobs.get("job-1")
    assert record is not None and record.cursor == 0, "nothing was checkpointed"
    segment(jobs, objects)  # the retry
    assert (
        objects.under("data", "out/job-1/")[f"out/job-1/{part_name(0)}"]
        == written_before[f"out/job-1/{part_name(0)}"]
    )
    assert outputs(objects) == reference(data)
    record = jobs.get("job-1")
    assert record is not None and record.records_in == 30, "counted once"


def test_cancelled_job_stops_the_worker() -> None:
    jobs, objects = setup(lines_input(5))
    jobs.set_status("job-1", CANCELLED)
    with pytest.raises(JobCancelledError):
        segment(jobs, objects)


def test_cancel_during_a_segment_is_seen_at_the_next_checkpoint() -> None:
    jobs, objects = setup(lines_input(40), chunk_bytes=200)
    objects.on_read = lambda start, end: jobs.set_status("job-1", CANCELLED) if start > 0 else None
    with pytest.raises(JobCancelledError):
        segment(jobs, objects)


def test_missing_input_is_a_permanent_error() -> None:
    jobs, objects = MemoryJobs(), MemoryObjects()
    jobs.create(running_job())
    with pytest.raises(InputNotFoundError):
        segment(jobs, objects)


def test_empty_input_is_done_at_once() -> None:
    jobs, objects = setup(b"")
    result = segment(jobs, objects)
    assert result.done and result.chunks == 0 and outputs(objects) == (b"", b"")


def test_reject_ratio_fails_the_job_with_the_numbers() -> None:
    data = b"not json\n" * 60 + lines_input(60)
    jobs, objects = setup(data, chunk_bytes=4096)
    with pytest.raises(RejectRatioExceededError, match=r"60 of 120 records rejected \(50.0%\)"):
        segment(jobs, objects, limits=SegmentLimits(safety_margin_ms=1_000, max_reject_ratio=0.2))


def test_bad_records_are_rejected_with_offset_and_reason_and_counted() -> None:
    data = b'{"a": 1}\nnot json\n[1, 2]\n\xff\xfe\n{"b": 2}\n'
    jobs, objects = setup(data)
    result = segment(jobs, objects)
    assert (result.records_in, result.records_out, result.records_rejected) == (5, 2, 3)
    rejects = [json.loads(line) for line in outputs(objects)[1].splitlines()]
    assert [r["offset"] for r in rejects] == [9, 18, 25]
    assert rejects[0]["error"].startswith("not JSON")
    assert rejects[1]["error"] == "not a JSON object: list"
    assert rejects[2]["error"].startswith("not valid UTF-8")


# --- exactly once, whatever the cuts -----------------------------------------------------------------

line_st = st.one_of(
    st.dictionaries(
        st.text(min_size=1, max_size=5), st.one_of(st.integers(), st.text(max_size=30)), max_size=4
    ).map(lambda d: json.dumps(d, ensure_ascii=False).encode()),
    st.just(b""),
    st.just(b"   "),
    st.binary(max_size=20),
    st.just(b"[1,2]"),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=st.lists(st.tuples(line_st, st.booleans()), max_size=40),
    trailing_newline=st.booleans(),
    bom=st.booleans(),
    chunk_bytes=st.integers(min_value=1, max_value=80),
    cuts=st.lists(st.integers(min_value=1, max_value=4), min_size=1, max_size=50),
    crashes=st.lists(st.booleans(), max_size=50),
)
def test_output_equals_one_shot_reference_for_any_cut(
    lines: list[tuple[bytes, bool]],
    trailing_newline: bool,
    bom: bool,
    chunk_bytes: int,
    cuts: list[int],
    crashes: list[bool],
) -> None:
    body = b"".join(
        line.replace(b"\n", b"").replace(b"\r", b"") + (b"\r\n" if crlf else b"\n") for line, crlf in lines
    )
    if body and not trailing_newline:
        body = body.rstrip(b"\n")
    data = (b"\xef\xbb\xbf" if bom else b"") + body
    jobs, objects = setup(data, chunk_bytes=chunk_bytes)
    invocations = 0
    done = False
    while not done:
        cut = cuts[invocations % len(cuts)]
        if invocations < len(crashes) and crashes[invocations]:
            jobs.crash_on_checkpoint = 1
        try:
            done = segment(jobs, objects, limits=SegmentLimits(safety_margin_ms=1, max_chunks=cut)).done
        except RuntimeError:
            jobs.crash_on_checkpoint = 0
        invocations += 1
        assert invocations < 10_000
    out, rejects = outputs(objects)
    assert (out, rejects) == reference(data)
    record = jobs.get("job-1")
    assert record is not None
    assert record.records_in == record.records_out + record.records_rejected
    assert record.records_out == len(out.splitlines()) and record.records_rejected == len(
        rejects.splitlines()
    )


# --- time-based hand-over ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("started_at", "hand_over"),
    [
        ("2026-11-23T00:00:00.000Z", True),  # 2 h before `now`: past the 1 h limit
        ("2026-11-23T01:30:00.000Z", False),
        ("2026-11-23T00:00:00.123456+00:00", True),  # moto's isoformat
        (None, False),
        ("not a time", False),
    ],
)
def test_a_segment_asks_for_a_hand_over_once_the_execution_has_run_long_enough(
    started_at: str | None, hand_over: bool
) -> None:
    jobs, objects = setup(lines_input(40), chunk_bytes=200)
    clock = FakeClock()
    result = run_segment(
        SegmentRequest(job_id="job-1", attempt=1, execution_started_at=started_at),
        jobs=jobs,
        objects=objects,
        remaining_ms=clock.remaining_ms,
        limits=SegmentLimits(safety_margin_ms=1_000, max_chunks=1, handover_after_seconds=3600),
        now=lambda: NOW,
        clock=clock.monotonic,
        epoch=lambda: 1_795_399_200.0,  # 2026-11-23T02:00:00Z
    )
    assert not result.done
    assert result.hand_over is hand_over
    assert result.as_payload()["hand_over"] is hand_over


def test_a_finished_job_never_asks_for_a_hand_over() -> None:
    jobs, objects = setup(lines_input(3))
    result = run_segment(
        SegmentRequest(job_id="job-1", attempt=1, execution_started_at="2020-01-01T00:00:00.000Z"),
        jobs=jobs,
        objects=objects,
        remaining_ms=FakeClock().remaining_ms,
        limits=SegmentLimits(safety_margin_ms=1_000, handover_after_seconds=60),
        now=lambda: NOW,
    )
    assert result.done and not result.hand_over


def test_a_throttled_first_read_of_the_job_is_retried_not_fatal() -> None:
    """Found by the fault matrix (F4): a GetItem answered 500 before the segment began was not retried
    (and escaped as botocore's `InternalServerError`, which no Retry matches): the job FAILED."""
    jobs, objects = setup(lines_input(10))
    real_get = jobs.get
    failures = {"left": 2}

    def flaky_get(job_id: str):  # type: ignore[no-untyped-def]
        if failures["left"]:
            failures["left"] -= 1
            raise TransientError("InternalServerError: 500 from GetItem")
        return real_get(job_id)

    jobs.get = flaky_get  # type: ignore[method-assign]
    assert segment(jobs, objects).done
    assert failures["left"] == 0
