"""One segment of a job: the worker's time-budgeted chunk loop.

Invariants:
- Byte ranges are aligned to multiples of `chunk_bytes`; the lines whose newline falls in range k form
  chunk k, written to one part named after k's offset. Where an invocation stops does not change what a
  part holds, so a retried or duplicated chunk rewrites the same object with the same bytes.
- A checkpoint advances the cursor only from the value this invocation read (JobStore.checkpoint); a part
  written but not checkpointed (a crash in between) is rewritten identically by the next attempt.
- Memory holds one range plus one partial line, whatever the input size.
- A chunk is started only when the remaining time minus the safety margin covers the expected chunk time
  (the largest seen, persisted in the record); the first chunk of an invocation always runs, so every
  segment makes progress.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from jobcore import retry
from jobcore.errors import (
    JobCancelledError,
    PermanentError,
    RejectRatioExceededError,
    TransientError,
    ValidationError,
)
from jobcore.lines import join_lines, process_lines, split_complete
from jobcore.model import CANCELLED, RUNNING, SUCCEEDED, Checkpoint, JobRecord, split_s3_uri
from jobcore.ports import JobStore, ObjectStore
from jobcore.transforms import TRANSFORMS

log = logging.getLogger(__name__)

# Below this many records the reject ratio says little about the input.
REJECT_RATIO_MIN_RECORDS = 100
# Head-room on the learned chunk time: chunks vary (S3 latency, record mix).
CHUNK_TIME_FACTOR = 1.25


@dataclass(frozen=True, kw_only=True)
class SegmentRequest:
    job_id: str
    attempt: int
    execution: int = 0
    segments_in_execution: int = 0
    retry_count: int = 0


@dataclass(frozen=True, kw_only=True)
class SegmentLimits:
    safety_margin_ms: int
    max_chunks: int = 0  # 0 = bounded by time only
    max_reject_ratio: float = 1.0
    fault_injection_allowed: bool = False


@dataclass(frozen=True, kw_only=True)
class SegmentResult:
    job_id: str
    done: bool
    cursor: int
    segments_in_execution: int
    chunks: int
    records_in: int
    records_out: int
    records_rejected: int
    bytes_in: int
    remaining_ms: int
    stale: bool = False

    def as_payload(self) -> dict[str, object]:
        return {
            "job_id": self.job_id,
            "done": self.done,
            "cursor": self.cursor,
            "segments_in_execution": self.segments_in_execution,
            "chunks": self.chunks,
            "records_in": self.records_in,
            "records_out": self.records_out,
            "records_rejected": self.records_rejected,
            "remaining_ms": self.remaining_ms,
        }


def part_name(offset: int) -> str:
    return f"part-{offset:015d}.jsonl"


def _load(jobs: JobStore, request: SegmentRequest) -> JobRecord:
    record = jobs.get(request.job_id)
    if record is None:
        raise PermanentError(f"job {request.job_id} has no record")
    if record.attempt != request.attempt:
        raise JobCancelledError(
            f"execution of attempt {request.attempt} superseded by attempt {record.attempt}"
        )
    if record.status == CANCELLED:
        raise JobCancelledError(f"job {request.job_id} was cancelled")
    if record.status not in (RUNNING, SUCCEEDED):
        raise JobCancelledError(f"job {request.job_id} is {record.status}: nothing to do")
    return record


def _inject_fault(record: JobRecord, request: SegmentRequest, offset: int, allowed: bool) -> None:
    fault = record.fault_injection
    if fault is None or not allowed:
        return
    draw = random.Random(  # noqa: S311 - reproducible fault injection, not cryptography
        f"{fault.seed}:{record.job_id}:{offset}:{request.attempt}:{request.retry_count}"
    ).random()
    if draw < fault.transient_error_rate:
        raise TransientError(
            f"injected fault at chunk offset {offset} (rate {fault.transient_error_rate}, "
            f"retry {request.retry_count})"
        )


class _Segment:
    """The state of one invocation's loop. Kept in an object so each step stays small."""

    def __init__(
        self,
        request: SegmentRequest,
        record: JobRecord,
        *,
        jobs: JobStore,
        objects: ObjectStore,
        remaining_ms: Callable[[], int],
        limits: SegmentLimits,
        now: Callable[[], str],
        clock: Callable[[], float],
    ) -> None:
        self.request = request
        self.record = record
        self.jobs = jobs
        self.objects = objects
        self.remaining_ms = remaining_ms
        self.limits = limits
        self.now = now
        self.clock = clock
        self.deadline = retry.Deadline(remaining_ms=remaining_ms, reserve_ms=limits.safety_margin_ms // 2)
        transform = TRANSFORMS.get(record.transform)
        if transform is None:
            raise ValidationError("transform", f"{record.transform!r} is not a registered transform")
        self.transform = transform
        self.in_bucket, self.in_key = split_s3_uri(record.input)
        self.out_bucket, self.out_prefix = split_s3_uri(record.output_prefix)
        self.cursor = record.cursor
        self.read_pos = record.cursor
        self.carry = b""
        self.chunk_ms = record.chunk_ms
        self.chunks = 0
        self.totals = {"records_in": 0, "records_out": 0, "records_rejected": 0, "bytes_in": 0}
        self.counted_segment = False
        size = record.input_bytes
        if size is None:
            size = retry.call(
                lambda: objects.size(self.in_bucket, self.in_key), what="head input", deadline=self.deadline
            )
        self.size: int = size

    @property
    def done(self) -> bool:
        return self.cursor >= self.size

    def may_start_chunk(self) -> bool:
        if self.limits.max_chunks and self.chunks >= self.limits.max_chunks:
            return False
        # The first chunk needs only the margin: a job whose chunk cannot fit a whole invocation would
        # otherwise loop through empty segments forever (the config keeps the margin under half the timeout).
        expected = self.chunk_ms * CHUNK_TIME_FACTOR if self.chunks else 0
        return self.remaining_ms() - self.limits.safety_margin_ms > expected

    def run_chunk(self) -> bool:
        """Read the next range, process its complete lines, write the parts, checkpoint. False when the
        checkpoint lost to another writer (this invocation is stale and must stop)."""
        started = self.clock()
        b = self.record.chunk_bytes
        end = min((self.read_pos // b + 1) * b, self.size)
        data = self.carry + self._read(self.read_pos, end)
        at_end = end >= self.size
        complete, self.carry = split_complete(data, at_end=at_end)
        self.read_pos = end
        if not complete:
            return True  # a line longer than the range: keep reading, nothing to commit yet
        self.chunks += 1
        offset = (end - 1) // b * b
        _inject_fault(self.record, self.request, offset, self.limits.fault_injection_allowed)
        result = process_lines(complete, start_offset=self.cursor, transform=self.transform)
        if result.output:
            self._write(f"{self.out_prefix}{part_name(offset)}", join_lines(result.output))
        if result.rejects:
            self._write(f"{self.out_prefix}rejects/{part_name(offset)}", join_lines(result.rejects))
        elapsed_ms = int((self.clock() - started) * 1000)
        self.chunk_ms = max(self.chunk_ms, elapsed_ms)
        checkpoint = Checkpoint(
            job_id=self.record.job_id,
            attempt=self.request.attempt,
            old_cursor=self.cursor,
            new_cursor=self.cursor + len(complete),
            input_bytes=self.size,
            records_in=result.records_in,
            records_out=result.records_out,
            records_rejected=result.records_rejected,
            bytes_in=len(complete),
            segments=0 if self.counted_segment else 1,
            chunk_ms=self.chunk_ms,
            updated_at=self.now(),
        )
        applied = retry.call(
            lambda: self.jobs.checkpoint(checkpoint), what="checkpoint", deadline=self.deadline
        )
        if not applied:
            return False
        self.counted_segment = True
        self.cursor = checkpoint.new_cursor
        self.totals["records_in"] += result.records_in
        self.totals["records_out"] += result.records_out
        self.totals["records_rejected"] += result.records_rejected
        self.totals["bytes_in"] += len(complete)
        log.info(
            "checkpoint",
            extra={
                "cursor": self.cursor,
                "chunk_offset": offset,
                "records": result.records_in,
                "ms": elapsed_ms,
            },
        )
        self._check_reject_ratio()
        return True

    def _read(self, start: int, end: int) -> bytes:
        return retry.call(
            lambda: self.objects.read_range(self.in_bucket, self.in_key, start, end),
            what="read input range",
            deadline=self.deadline,
        )

    def _write(self, key: str, body: bytes) -> None:
        retry.call(
            lambda: self.objects.write(self.out_bucket, key, body), what="write part", deadline=self.deadline
        )

    def _check_reject_ratio(self) -> None:
        records_in = self.record.records_in + self.totals["records_in"]
        rejected = self.record.records_rejected + self.totals["records_rejected"]
        if records_in >= REJECT_RATIO_MIN_RECORDS and rejected / records_in > self.limits.max_reject_ratio:
            raise RejectRatioExceededError(
                f"{rejected} of {records_in} records rejected ({rejected / records_in:.1%}), over the "
                f"allowed {self.limits.max_reject_ratio:.1%}; see the rejects under {self.record.output_prefix}rejects/"
            )

    def explain_lost_race(self) -> int:
        """Re-read the record after a failed checkpoint: cancelled/superseded raise; otherwise another
        invocation advanced the cursor, and this one stops without changing anything."""
        current = _load(self.jobs, self.request)
        log.warning(
            "stale invocation: checkpoint not applied",
            extra={"expected_cursor": self.cursor, "actual_cursor": current.cursor},
        )
        return current.cursor


def run_segment(
    request: SegmentRequest,
    *,
    jobs: JobStore,
    objects: ObjectStore,
    remaining_ms: Callable[[], int],
    limits: SegmentLimits,
    now: Callable[[], str],
    clock: Callable[[], float] = time.monotonic,
) -> SegmentResult:
    record = _load(jobs, request)
    segments = request.segments_in_execution + 1
    if record.status == SUCCEEDED:
        return SegmentResult(
            job_id=record.job_id, done=True, cursor=record.cursor, segments_in_execution=segments, chunks=0,
            records_in=0, records_out=0, records_rejected=0, bytes_in=0, remaining_ms=remaining_ms(),
        )  # fmt: skip
    segment = _Segment(
        request,
        record,
        jobs=jobs,
        objects=objects,
        remaining_ms=remaining_ms,
        limits=limits,
        now=now,
        clock=clock,
    )
    stale = False
    while not segment.done and segment.may_start_chunk():
        if not segment.run_chunk():
            stale = True
            segment.cursor = segment.explain_lost_race()
            break
    return SegmentResult(
        job_id=record.job_id,
        done=segment.done,
        cursor=segment.cursor,
        segments_in_execution=segments,
        chunks=segment.chunks,
        records_in=segment.totals["records_in"],
        records_out=segment.totals["records_out"],
        records_rejected=segment.totals["records_rejected"],
        bytes_in=segment.totals["bytes_in"],
        remaining_ms=remaining_ms(),
        stale=stale,
    )
