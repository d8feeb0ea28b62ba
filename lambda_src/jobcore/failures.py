"""Recording a job's failure: the job FAILED with a clean `{type, message}`, its request in the DLQ.

One owner for both ways a job can fail after it started:
- the state machine's Catch hands every error here (`from_state_machine`): the job is marked FAILED in the
  execution's attempt and its request goes to the DLQ. A retry of that step (the send failed, or the
  function died after marking) finds the job FAILED in the same attempt and sends again: at least once.
- the watchdog (`from_status_change`): an EventBridge rule delivers Step Functions' "Execution Status
  Change" events for executions that ended FAILED, TIMED_OUT or ABORTED. Those that ended outside the
  state machine's own Catch (the execution timeout, a StopExecution from outside, a States.Runtime error)
  leave their job PENDING or RUNNING; the watchdog marks it FAILED (`ExecutionTimedOut`,
  `ExecutionAborted`, `ExecutionFailed`) and sends its request to the DLQ. An execution whose failure the
  state machine recorded already finds the job FAILED and changes nothing (no second DLQ message), as do
  executions of a cancelled, finished or superseded attempt.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from jobcore import retry
from jobcore.errors import MAX_MESSAGE_CHARS, job_error
from jobcore.model import JobRecord
from jobcore.ports import DeadLetters, JobStore
from pipeline_contract import (
    DEAD_LETTER_NOT_SENT,
    DLQ_ERROR_MESSAGE,
    DLQ_ERROR_TYPE,
    DLQ_JOB_ID,
    DLQ_SOURCE_MESSAGE_ID,
    FAILED,
    WATCHDOG_ERRORS,
    parse_execution_name,
)

log = logging.getLogger(__name__)


class Outcome(StrEnum):
    RECORDED = "recorded"  # marked FAILED now, request sent
    RESENT = "resent"  # already FAILED in this attempt (a retry): request sent again
    IGNORED = "ignored"  # nothing to do: finished, cancelled, superseded, or recorded already


@dataclass(frozen=True, kw_only=True)
class Failure:
    job_id: str
    attempt: int
    error: dict[str, str]


def from_state_machine(event: Mapping[str, Any]) -> Failure:
    """The state machine's RecordFailure payload: `{job_id, attempt, error: {Error, Cause}}`."""
    raw = event.get("error") or {}
    return Failure(
        job_id=str(event["job_id"]),
        attempt=int(event["attempt"]),
        error=job_error(str(raw.get("Error") or "Error"), raw.get("Cause")),
    )


def from_status_change(detail: Mapping[str, Any], *, timeout_minutes: int | None = None) -> Failure | None:
    """The failure an execution status change means for its job, or None when it means nothing."""
    status = str(detail.get("status", ""))
    name = str(detail.get("name", ""))
    parsed = parse_execution_name(name)
    if status not in WATCHDOG_ERRORS or parsed is None:
        return None
    if status == "TIMED_OUT":
        limit = f" ({timeout_minutes}-minute limit)" if timeout_minutes else ""
        message = f"execution {name} hit its execution timeout{limit} before it finished or handed over"
    elif status == "ABORTED":
        message = f"execution {name} was stopped from outside the pipeline (StopExecution)"
    else:
        inner = job_error(str(detail.get("error") or "Error"), detail.get("cause"))
        message = f"execution {name} failed outside the state machine's error handling: {inner['type']}: {inner['message']}"
    return Failure(
        job_id=parsed.job_id,
        attempt=parsed.attempt,
        error={"type": WATCHDOG_ERRORS[status], "message": message[:MAX_MESSAGE_CHARS]},
    )


def needs_resend(detail: Mapping[str, Any]) -> bool:
    # The state machine's own Fail state after its DLQ send failed even on the fallback path: the job is
    # FAILED but its request may be missing from the DLQ, so the watchdog sends it.
    return str(detail.get("status")) == "FAILED" and str(detail.get("error")) == DEAD_LETTER_NOT_SENT


def record_failure(
    failure: Failure,
    *,
    jobs: JobStore,
    dead_letters: DeadLetters,
    now: Callable[[], str],
    resend: bool,
    deadline: retry.Deadline,
) -> Outcome:
    """Mark the job FAILED in `failure.attempt` and send its request to the DLQ. With `resend`, a job
    already FAILED in that attempt has its request sent again (the caller is retrying its own step).
    Transient errors that outlast the retries here raise: the caller's own retries take over."""
    record = retry.call(
        lambda: jobs.fail(failure.job_id, attempt=failure.attempt, error=failure.error, updated_at=now()),
        what="mark job failed",
        deadline=deadline,
    )
    outcome = Outcome.RECORDED
    if record is None:
        current = retry.call(lambda: jobs.get(failure.job_id), what="read job", deadline=deadline)
        if not (
            resend and current is not None and (current.status, current.attempt) == (FAILED, failure.attempt)
        ):
            log.info(
                "failure not recorded: the job is elsewhere",
                extra={
                    "job_id": failure.job_id,
                    "attempt": failure.attempt,
                    "status": current.status if current else None,
                    "current_attempt": current.attempt if current else None,
                },
            )
            return Outcome.IGNORED
        record = current
        outcome = Outcome.RESENT
    sent = record
    retry.call(lambda: _send(sent, failure.error, dead_letters), what="send to DLQ", deadline=deadline)
    log.error(
        "job failed",
        extra={"job_id": record.job_id, "attempt": failure.attempt, "error_type": failure.error["type"]},
    )
    return outcome


def _send(record: JobRecord, error: dict[str, str], dead_letters: DeadLetters) -> None:
    dead_letters.send(
        body=record.request,
        attributes={
            DLQ_ERROR_TYPE: error["type"],
            DLQ_ERROR_MESSAGE: error["message"],
            DLQ_SOURCE_MESSAGE_ID: record.source_message_id,
            DLQ_JOB_ID: record.job_id,
        },
    )
