"""One segment of a job: the worker's time-budgeted chunk loop.

Invariants:
- Byte ranges are aligned to multiples of `chunk_bytes`; the lines whose newline falls in range k form
  chunk k, written to one part named after k's offset. Where an invocation stops does not change what a
  part holds, so a retried or duplicated chunk rewrites the same object with the same bytes.
- A checkpoint advances the cursor only from the value this invocation read (JobStore.checkpoint); a part
  written but not checkpointed (a crash in between) is rewritten identically by the next attempt.
- Memory holds one range plus one partial line of at most `max_line_bytes`, whatever the input size: a
  longer line is skipped range by range (the cursor checkpointed inside it, `long_line_from` remembering
  where it began) and becomes one reject where its newline falls, the same reject it gives when seen whole.
- Every read asks for the input version pinned at ingest (ETag, VersionId): a changed input is a permanent
  InputChangedError, never an output mixing two versions.
- A chunk is started only when the remaining time minus the safety margin covers the expected chunk time
  (the largest seen, persisted in the record); the first chunk of an invocation always runs, so every
  segment makes progress.
- A sharded job runs one segment per shard (jobcore.shards): the same loop over the shard's chunks, with
  the shard's own cursor and checkpoint; it begins at the first line running into its range and leaves the
  line running past its end to the next shard, so every part is what a one-shard run writes.
- A segment runs only on the code its job is pinned to (the worker version and the code digest): invoked
  on any other, it writes nothing and fails the job (CodeVersionMismatchError). Every part it writes says
  which code wrote it (object metadata: `code-version`, `code-digest`, with the job and attempt).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from jobcore import retry
from jobcore.compressed import GzipText, PlainText, TextSettings, ZstdText, gzip_member, open_text
from jobcore.errors import (
    CodeVersionMismatchError,
    JobCancelledError,
    PermanentError,
    RejectRatioExceededError,
    ValidationError,
    in_shard,
)
from jobcore.formats import GZIP
from jobcore.lines import (
    BOM,
    REJECT_PREVIEW_BYTES,
    ChunkResult,
    LineLimits,
    join_lines,
    oversized_reject,
    process_lines,
    split_complete,
)
from jobcore.model import Checkpoint, CodeVersion, JobRecord, RejectSample, split_s3_uri
from jobcore.options import parse_options
from jobcore.ports import JobStore, ObjectStore
from jobcore.transforms import TRANSFORMS
from pipeline_contract import CANCELLED, REJECTS_DIR, RUNNING, SUCCEEDED, part_name

# The first rejects a job keeps for the reason it fails with (its record, then the error's message).
MAX_REJECT_SAMPLES = 3
REJECT_SAMPLE_CHARS = 200

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
    # `$$.Execution.StartTime` of the running execution (ISO-8601): the time-based hand-over reads it.
    execution_started_at: str | None = None
    # Which of the job's shards this segment works on (0 for a job of one shard).
    shard: int = 0


@dataclass(frozen=True, kw_only=True)
class SegmentLimits:
    safety_margin_ms: int
    max_chunks: int = 0  # 0 = bounded by time only
    max_reject_ratio: float = 1.0
    lines: LineLimits = field(default_factory=LineLimits)
    # Ask for a continue-as-new once the execution has run this long (None: by segment count only).
    handover_after_seconds: int | None = None
    # The longest one downstream call may take (jobcore.aws.CallTimeouts.attempt_ms).
    attempt_ms: int = 0
    # The function's memory (MB), recorded with the worker time for the job's cost.
    memory_mb: int = 0
    # The code this worker runs (its published version and the code's digest); None: unknown (not checked).
    code: CodeVersion | None = None
    # How a compressed input is read (GET size, gzip access point spacing); None: by the job's chunk size.
    text: TextSettings | None = None


@dataclass(frozen=True, kw_only=True)
class SegmentResult:
    job_id: str
    # The shard's range is done (for a job of one shard: the job's input).
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
    hand_over: bool = False
    shard: int = 0

    def as_payload(self) -> dict[str, object]:
        return {
            "job_id": self.job_id,
            "shard": self.shard,
            "done": self.done,
            "hand_over": self.hand_over,
            "cursor": self.cursor,
            "segments_in_execution": self.segments_in_execution,
            "chunks": self.chunks,
            "records_in": self.records_in,
            "records_out": self.records_out,
            "records_rejected": self.records_rejected,
            "remaining_ms": self.remaining_ms,
        }


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


def _check_code(record: JobRecord, running: CodeVersion | None) -> None:
    pinned = record.code_version
    if pinned is None or running is None or running == pinned:
        return
    raise CodeVersionMismatchError(
        f"worker version {running} was invoked for job {record.job_id}, which is pinned to version {pinned}: "
        "it writes nothing rather than mix code versions in one output (was an execution started by hand on "
        "another state machine version? jobs start through the ingest queue)"
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
        deadline: retry.Deadline,
    ) -> None:
        self.request = request
        self.record = record
        self.jobs = jobs
        self.objects = objects
        self.remaining_ms = remaining_ms
        self.limits = limits
        self.now = now
        self.clock = clock
        self.deadline = deadline
        # A chunk starts only if its calls can: the margin, or the reserve plus one whole attempt.
        self.guard_ms = max(limits.safety_margin_ms, self.deadline.reserve_ms + limits.attempt_ms)
        registered = TRANSFORMS.get(record.transform)
        if registered is None:
            raise ValidationError("transform", f"{record.transform!r} is not a registered transform")
        options = json.loads(record.transform_options) if record.transform_options else None
        self.transform = registered.bind(parse_options(registered, options))
        self.keeps_bytes = registered.keeps_bytes
        self.in_bucket, self.in_key = split_s3_uri(record.input)
        self.out_bucket, self.out_prefix = split_s3_uri(record.output_prefix)
        # Which code wrote each part (S3 user metadata; keys lower case, as S3 returns them).
        self.metadata = {"job-id": record.job_id, "attempt": str(request.attempt)}
        if limits.code is not None:
            self.metadata |= {"code-version": limits.code.worker, "code-digest": limits.code.digest}
        self.carry = b""
        self.chunk_ms = record.chunk_ms
        self.chunks = 0
        # Worker time is counted from the invocation's start to each checkpoint (cost, not the guard).
        self.last_commit_at = clock()
        self.totals = {
            "records_in": 0,
            "records_out": 0,
            "records_rejected": 0,
            "records_blank": 0,
            "bytes_in": 0,
        }
        self.counted_segment = False
        # A job accepted before inputs were pinned reads the version it finds now, for this invocation.
        pin = record.pin
        if pin is None:
            pin = retry.call(
                lambda: objects.head(self.in_bucket, self.in_key), what="head input", deadline=self.deadline
            )
        self.pin = pin
        self.size: int = pin.size
        self.text = self._open_text()
        self.long_line_head = record.long_line_head
        self.first_rejects = record.first_rejects
        positions = record.positions(self.size)
        if not 0 <= request.shard < len(positions):
            raise ValidationError(
                "shard", f"{request.shard} is not one of the job's {len(positions)} shard(s)"
            )
        self.shard = positions[request.shard]
        self.sharded = bool(record.shards)
        self.start, self.end = self.shard.start, self.shard.end
        # The checkpoint's condition: the cursor as stored (None until the shard has found its first line).
        self.persisted = self.shard.cursor
        self.long_line_from = self.shard.long_line_from
        if self.shard.cursor is None:
            self.cursor = self.read_pos = self.start
            self._locate()
        else:
            self.cursor = self.read_pos = self.shard.cursor
        self.max_reject_ratio = effective_reject_ratio(record, limits.max_reject_ratio)

    def _open_text(self) -> PlainText | GzipText | ZstdText:
        """The input's text: the object itself, or the stream its decompressor gives (jobcore.compressed)."""
        if self.record.compressed and self.record.shards:
            raise ValidationError("shards", "a compressed input is read in one pass: it has no shards")
        return open_text(
            self.record.compression,
            objects=self.objects,
            bucket=self.in_bucket,
            key=self.in_key,
            pin=self.pin,
            restart=self.record.restart_point,
            index_location=(self.out_bucket, self.out_prefix),
            settings=self.limits.text or TextSettings.for_chunks(self.record.chunk_bytes),
            deadline=self.deadline,
        )

    @property
    def done(self) -> bool:
        return self.cursor >= self.end or (self.text.size is not None and self.cursor >= self.text.size)

    def _locate(self) -> None:
        """Find the shard's first line: the one after the last newline before `start` (it runs into the
        shard, and its newline is the shard's). Reads backwards a line's maximum at a time; a line longer
        than that is skipped from `start` on, remembered from where it began, as the one-shard run does."""
        limit = self.limits.lines.max_line_bytes
        high, tail, begin = self.start, b"", 0
        while high > 0:
            low = max(0, high - (limit + 1))
            data = self._read(low, high)
            if high == self.start:
                tail = data
            newline = data.rfind(b"\n")
            if newline >= 0:
                begin = low + newline + 1
                break
            high = low
        if self.start - begin <= limit:
            self.cursor = begin
            self.carry = tail[len(tail) - (self.start - begin) :]
        else:
            self.long_line_from = begin

    def may_start_chunk(self) -> bool:
        if self.limits.max_chunks and self.chunks >= self.limits.max_chunks:
            return False
        # The first chunk needs only the margin: a job whose chunk cannot fit a whole invocation would
        # otherwise loop through empty segments forever (the config keeps the margin under half the timeout).
        expected = self.chunk_ms * CHUNK_TIME_FACTOR if self.chunks else 0
        return self.remaining_ms() - self.guard_ms > expected

    def run_chunk(self) -> bool:
        """Read the next range, process its complete lines, write the parts, checkpoint. False when the
        checkpoint lost to another writer (this invocation is stale and must stop)."""
        started = self.clock()
        b = self.record.chunk_bytes
        start = self.read_pos
        end = min((start // b + 1) * b, self.end)
        data = self._read(start, end)
        if self.text.size is not None:  # a compressed input's end is found by reading it
            end = min(end, self.text.size)
        at_end = self.text.size is not None and end >= self.text.size
        # The shard's last range: a line running past it is the next shard's (its newline is there).
        at_shard_end = end >= self.end and not at_end
        self.read_pos = end
        before = ChunkResult()
        if self.long_line_from is not None:
            newline = data.find(b"\n")
            if newline < 0 and not at_end:
                if at_shard_end:
                    self.long_line_from = None
                return self._commit(None, b"", end, started, offset=None)  # still inside the long line
            line_end = start + newline if newline >= 0 else end
            before.rejects.append(self._long_line_reject(line_end))
            self.long_line_from = None
            self.long_line_head = None
            data = data[newline + 1 :] if newline >= 0 else b""
            start = line_end + 1 if newline >= 0 else end
        data = self.carry + data
        line_start = start - len(self.carry)
        complete, self.carry = split_complete(data, at_end=at_end)
        if at_shard_end:
            self.carry = b""
        if not complete and not before.rejects:
            if at_shard_end:
                return self._commit(None, b"", end, started, offset=None)
            if len(self.carry) <= self.limits.lines.max_line_bytes:
                return True  # a line longer than the range: keep reading, nothing to commit yet
            # Too long to hold: skip the rest of it range by range, remembering where it began (and, for
            # an input that cannot be read backwards, its first bytes: its reject shows them).
            self.long_line_from = line_start
            if not self.text.random_access:
                self.long_line_head = self.carry[: REJECT_PREVIEW_BYTES + len(BOM)]
            self.carry = b""
            return self._commit(None, b"", end, started, offset=None)
        result = process_lines(
            complete,
            start_offset=line_start,
            transform=self.transform,
            keeps_bytes=self.keeps_bytes,
            limits=self.limits.lines,
        )
        result.prepend(before)
        new_cursor = end if at_shard_end else line_start + len(complete)
        return self._commit(result, complete, new_cursor, started, offset=(end - 1) // b * b)

    def _commit(
        self,
        result: ChunkResult | None,
        complete: bytes,
        new_cursor: int,
        started: float,
        *,
        offset: int | None,
    ) -> bool:
        """Write the chunk's parts (if it produced any), then checkpoint `new_cursor`."""
        if result is not None and offset is not None:
            self.chunks += 1
            name = part_name(offset, self.record.output_compression)
            if result.output:
                self._write(f"{self.out_prefix}{name}", join_lines(result.output))
            if result.rejects:
                self._write(f"{self.out_prefix}{REJECTS_DIR}{name}", join_lines(result.rejects))
        counts = result or ChunkResult()
        now = self.clock()
        elapsed_ms = int((now - started) * 1000)
        self.chunk_ms = max(self.chunk_ms, elapsed_ms)
        parts = 0 if result is None or offset is None else bool(result.output) + bool(result.rejects)
        # Written before the checkpoint that names it: a checkpoint never points at a missing access point.
        restart_point = None if self.text.random_access else self.text.restart_point(new_cursor)
        checkpoint = Checkpoint(
            job_id=self.record.job_id,
            attempt=self.request.attempt,
            shard=self.shard.index if self.sharded else None,
            old_cursor=self.persisted,
            new_cursor=new_cursor,
            input_bytes=self.size,
            records_in=counts.records_in,
            records_out=counts.records_out,
            records_rejected=counts.records_rejected,
            records_transformed=counts.records_transformed,
            records_filtered=counts.records_filtered,
            records_blank=counts.records_blank,
            # The shard counts its own range only (a first line that began before it is counted by the
            # shard before), so the shards' counts add up to the input's size.
            bytes_in=max(0, new_cursor - max(self.cursor, self.start)),
            segments=0 if self.counted_segment else 1,
            chunk_ms=self.chunk_ms,
            updated_at=self.now(),
            parts_written=parts,
            worker_ms=int((now - self.last_commit_at) * 1000),
            worker_memory_mb=self.limits.memory_mb,
            long_line_from=self.long_line_from,
            restart_point=restart_point,
            text_bytes=None if self.text.random_access else self.text.size,
            long_line_head=self.long_line_head if self.long_line_from is not None else None,
            first_rejects=_samples(result.rejects) if result is not None and not self.first_rejects else (),
        )
        applied = retry.call(
            lambda: self.jobs.checkpoint(checkpoint), what="checkpoint", deadline=self.deadline
        )
        if not applied:
            return False
        self.counted_segment = True
        self.first_rejects = self.first_rejects or checkpoint.first_rejects
        self.last_commit_at = now
        self.cursor = self.persisted = checkpoint.new_cursor
        self.totals["records_in"] += counts.records_in
        self.totals["records_out"] += counts.records_out
        self.totals["records_rejected"] += counts.records_rejected
        self.totals["records_blank"] += counts.records_blank
        self.totals["bytes_in"] += checkpoint.bytes_in
        log.info(
            "checkpoint",
            extra={
                "cursor": self.cursor,
                "chunk_offset": offset,
                "records": counts.records_in,
                "ms": elapsed_ms,
                "long_line_from": self.long_line_from,
            },
        )
        self._check_reject_ratio()
        return True

    def _long_line_reject(self, line_end: int) -> bytes:
        """The reject of the long line that began at `long_line_from` and ends at `line_end` (its newline,
        or the end of the input), identical to the one process_lines gives a long line it sees whole."""
        begin = self.long_line_from
        assert begin is not None
        if self.long_line_head is not None:
            head = self.long_line_head[: line_end - begin]
        else:
            head = self._read(begin, min(begin + REJECT_PREVIEW_BYTES + len(BOM), line_end))
        return oversized_reject(begin, head, line_end - begin, self.limits.lines)

    def _read(self, start: int, end: int) -> bytes:
        return self.text.read(start, end)

    def _write(self, key: str, body: bytes) -> None:
        if self.record.output_compression == GZIP:
            body = gzip_member(body)
        retry.call(
            lambda: self.objects.write(self.out_bucket, key, body, metadata=self.metadata),
            what="write part",
            deadline=self.deadline,
        )

    def _check_reject_ratio(self) -> None:
        """Mid-job early abort, once the count says something about the input (the end of the job checks
        every job, whatever its size: jobcore.finish)."""
        records_in = self.record.records_in + self.totals["records_in"]
        rejected = self.record.records_rejected + self.totals["records_rejected"]
        if records_in >= REJECT_RATIO_MIN_RECORDS:
            check_reject_ratio(
                self.record, records_in=records_in, rejected=rejected, limit=self.max_reject_ratio,
                samples=self.first_rejects,
            )  # fmt: skip

    def explain_lost_race(self) -> int:
        """Re-read the record after a failed checkpoint: cancelled/superseded raise; otherwise another
        invocation advanced the cursor, and this one stops without changing anything."""
        current = retry.call(lambda: _load(self.jobs, self.request), what="read job", deadline=self.deadline)
        actual = current.positions(self.size)[self.shard.index].cursor
        log.warning(
            "stale invocation: checkpoint not applied",
            extra={"expected_cursor": self.persisted, "actual_cursor": actual, "shard": self.shard.index},
        )
        return self.cursor if actual is None else actual


def effective_reject_ratio(record: JobRecord, environment_limit: float) -> float:
    """The job's own limit if it asked for one (never above the environment's), else the environment's."""
    job_ratio = record.max_reject_ratio
    return environment_limit if job_ratio is None else min(job_ratio, environment_limit)


def check_reject_ratio(
    record: JobRecord,
    *,
    records_in: int,
    rejected: int,
    limit: float,
    samples: tuple[RejectSample, ...],
) -> None:
    """Raise RejectRatioExceededError naming the ratio and the first reasons when rejected/in is over it."""
    if not records_in or rejected / records_in <= limit:
        return
    first = "; ".join(f"offset {sample.offset}: {sample.error}" for sample in samples)
    raise RejectRatioExceededError(
        f"{rejected} of {records_in} records rejected ({rejected / records_in:.1%}), over the allowed "
        f"{limit:.1%}"
        + (f"; the first: {first}" if first else "")
        + f"; see the rejects under {record.output_prefix}{REJECTS_DIR}"
    )


def _samples(rejects: list[bytes]) -> tuple[RejectSample, ...]:
    """The first rejects of a chunk as (offset, reason): what a failing job's message names."""
    samples = []
    for line in rejects[:MAX_REJECT_SAMPLES]:
        reject = json.loads(line)
        samples.append(
            RejectSample(offset=int(reject["offset"]), error=str(reject["error"])[:REJECT_SAMPLE_CHARS])
        )
    return tuple(samples)


def _elapsed_seconds(started_at: str | None, epoch: Callable[[], float]) -> float | None:
    if not started_at:
        return None
    try:
        moment = dt.datetime.fromisoformat(started_at.replace("Z", "+00:00"))
    except ValueError:
        log.warning("unreadable execution start time %r: no time-based hand-over", started_at)
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return epoch() - moment.timestamp()


def run_segment(
    request: SegmentRequest,
    *,
    jobs: JobStore,
    objects: ObjectStore,
    remaining_ms: Callable[[], int],
    limits: SegmentLimits,
    now: Callable[[], str],
    clock: Callable[[], float] = time.monotonic,
    epoch: Callable[[], float] = time.time,
) -> SegmentResult:
    # Like every call, the first read of the job is retried (a throttled GetItem is no reason to fail a job).
    deadline = retry.Deadline(
        remaining_ms=remaining_ms, reserve_ms=limits.safety_margin_ms // 2, attempt_ms=limits.attempt_ms
    )
    record = retry.call(lambda: _load(jobs, request), what="read job", deadline=deadline)
    _check_code(record, limits.code)
    segments = request.segments_in_execution + 1
    if record.status == SUCCEEDED:
        return SegmentResult(
            job_id=record.job_id, done=True, cursor=record.cursor, segments_in_execution=segments, chunks=0,
            records_in=0, records_out=0, records_rejected=0, bytes_in=0, remaining_ms=remaining_ms(),
            shard=request.shard,
        )  # fmt: skip
    stale = False
    try:
        segment = _Segment(
            request,
            record,
            jobs=jobs,
            objects=objects,
            remaining_ms=remaining_ms,
            limits=limits,
            now=now,
            clock=clock,
            deadline=deadline,
        )
        try:
            while not segment.done and segment.may_start_chunk():
                if not segment.run_chunk():
                    stale = True
                    segment.cursor = segment.explain_lost_race()
                    break
        finally:
            segment.text.close()
    except PermanentError as error:
        # The job fails with this reason: on a sharded job, say which shard met it.
        if record.shards and 0 <= request.shard < len(record.shards):
            raise in_shard(error, record.shards[request.shard].describe()) from None
        raise
    elapsed = _elapsed_seconds(request.execution_started_at, epoch)
    hand_over = (
        limits.handover_after_seconds is not None
        and elapsed is not None
        and elapsed >= limits.handover_after_seconds
    )
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
        hand_over=hand_over and not segment.done,
        shard=request.shard,
    )
