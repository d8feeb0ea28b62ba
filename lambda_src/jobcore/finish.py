"""The end of a job: the reject-ratio check over the whole job, once every shard is done.

Where this lives, and why: the state machine's FinishJob task invokes the job's pinned worker once the
round's Tally says no shard is pending, before MarkSucceeded. At that point the job's counters are final:
every checkpoint is conditional on its shard's cursor, the job's status (RUNNING) and attempt, and a done
shard's cursor is at its end, so no invocation (stale, duplicated, retried) can add to them any more. One
read sees the whole job's counters, sharded or not; MarkSucceeded then writes SUCCEEDED on condition that
the counters are still the ones checked (`records_in`, `records_rejected`), so the check and the success
are about the same numbers, exactly once. A retried FinishJob reads the same final counters again: the
check is idempotent. The alternatives were worse: a shard checking at its own end sees only its range (a
bad shard would fail a good job, many half-bad shards pass); the last shard to finish would need a read
after its final checkpoint, and a crash between the two would lose the check (its retry finds the shard
done and does nothing).

The 100-record minimum applies only to the early abort in the middle of a job (jobcore.segment); here any
job with records is held to its limit, so a small all-rejects job fails, with the ratio and the first
reasons. A job with no records at all (an empty input, or only blank lines) succeeds with zero counts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from jobcore import retry
from jobcore.errors import JobCancelledError, PermanentError
from jobcore.ports import JobStore
from jobcore.segment import check_reject_ratio, effective_reject_ratio
from pipeline_contract import RUNNING, SUCCEEDED


@dataclass(frozen=True, kw_only=True)
class FinishResult:
    job_id: str
    records_in: int
    records_out: int
    records_rejected: int

    def as_payload(self) -> dict[str, object]:
        # MarkSucceeded's condition reads the two counters the check saw.
        return {
            "job_id": self.job_id,
            "records_in": self.records_in,
            "records_out": self.records_out,
            "records_rejected": self.records_rejected,
        }


def finish_job(
    job_id: str,
    attempt: int,
    *,
    jobs: JobStore,
    max_reject_ratio: float,
    remaining_ms: Callable[[], int],
    attempt_ms: int = 0,
) -> FinishResult:
    """Check the finished job against its reject-ratio limit; raises RejectRatioExceededError (the job
    fails with it), JobCancelledError (cancelled or superseded meanwhile)."""
    deadline = retry.Deadline(remaining_ms=remaining_ms, reserve_ms=0, attempt_ms=attempt_ms)
    record = retry.call(lambda: jobs.get(job_id), what="read job", deadline=deadline)
    if record is None:
        raise PermanentError(f"job {job_id} has no record")
    if record.attempt != attempt:
        raise JobCancelledError(f"attempt {attempt} superseded by attempt {record.attempt}")
    if record.status not in (RUNNING, SUCCEEDED):
        raise JobCancelledError(f"job {job_id} is {record.status}: nothing to finish")
    undone = [p.describe() for p in record.positions(record.input_bytes or 0) if not p.done]
    if undone and record.status == RUNNING and not (record.compressed and record.text_bytes is None):
        raise PermanentError(f"job {job_id} was asked to finish with work left: {', '.join(undone)}")
    check_reject_ratio(
        record,
        records_in=record.records_in,
        rejected=record.records_rejected,
        limit=effective_reject_ratio(record, max_reject_ratio),
        samples=record.first_rejects,
    )
    return FinishResult(
        job_id=job_id,
        records_in=record.records_in,
        records_out=record.records_out,
        records_rejected=record.records_rejected,
    )
