"""Job lifecycle events: a change of a job record's status, as the job table's stream shows it, becomes one
EventBridge event (`Job Started`, `Job Succeeded`, `Job Failed`, `Job Rejected`, `Job Cancelled`), or none.

The table is the one source of truth and has several writers (the ingest, the state machine's DynamoDB
tasks, the failures function, the CLI's cancel); its stream is the one place that sees every change, so the
events are made here, from the record before and after, and from nowhere else. Which change emits which
event is the contract's (`pipeline_contract.event_detail_type`); the event source mapping's filter lets
only those changes through, and this module decides again (a filter is configuration, not a guarantee).

Delivery is at least once: a batch is put in calls in stream order, an entry EventBridge refuses is retried
on its own (so it may land after later entries of its call: events are not ordered, as EventBridge's never
are), and what still fails is reported from the first failure on, so that Lambda retries the batch from
there (which may put an event that was already accepted once more: consumers dedupe on job_id + attempt +
detail-type, `JobEvent.dedupe_key`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jobcore import retry
from jobcore.errors import MAX_MESSAGE_CHARS, PipelineError, TransientError
from jobcore.model import JobEvent
from jobcore.ports import EventBus
from pipeline_contract import (
    EVENT_ERROR_STATUSES,
    EVENT_SOURCE,
    TERMINAL,
    event_detail_type,
)

log = logging.getLogger(__name__)

# PutEvents takes at most 10 entries and 256 KiB per call (EventBridge counts each entry's Source,
# DetailType, Detail, Resources and 14 bytes of Time); a little is kept back for the bus name.
MAX_ENTRIES_PER_CALL = 10
MAX_BYTES_PER_CALL = 256 * 1024 - 1024
COUNTERS = ("records_in", "records_out", "records_rejected", "bytes_in")

__all__ = ["JobEvent", "Published", "StreamChange", "job_event", "publish"]


@dataclass(frozen=True, kw_only=True)
class StreamChange:
    """One record of the job table's stream: its sequence number (what a partial batch response names)
    and the item before and after (None: created / deleted), deserialized."""

    sequence_number: str
    old: Mapping[str, Any] | None
    new: Mapping[str, Any] | None


@dataclass(frozen=True)
class Published:
    events: int
    # Sequence numbers of the changes not published, from the first failure on (empty: all were).
    failed: tuple[str, ...]


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _moment(text: Any) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(str(text))
    except ValueError:
        return None


def _duration_s(created_at: Any, ended_at: Any) -> float | None:
    start, end = _moment(created_at), _moment(ended_at)
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 3)


def _error(value: Any) -> dict[str, str]:
    # Cut as every other writer of an error cuts it: the state machine's MarkFailed stores a crash's cause
    # whole, and an entry over PutEvents' limit would be refused for good, with the rest of its batch.
    error = value if isinstance(value, Mapping) else {}
    message = str(error.get("message") or "")[:MAX_MESSAGE_CHARS]
    return {"type": str(error.get("type") or "UnknownError"), "message": message}


def _code_version(value: Any) -> dict[str, str] | None:
    if not isinstance(value, Mapping):
        return None
    return {"worker": str(value.get("worker", "")), "digest": str(value.get("digest", ""))}


def job_event(
    old: Mapping[str, Any] | None, new: Mapping[str, Any] | None, *, environment: str
) -> JobEvent | None:
    """The event for a change of a job record (None before: created; None after: deleted), or None."""
    if new is None:
        return None
    status = str(new.get("status", ""))
    detail_type = event_detail_type(str(old.get("status", "")) if old is not None else None, status)
    if detail_type is None:
        return None
    ended = status in TERMINAL
    updated_at = str(new.get("updated_at", ""))
    detail: dict[str, Any] = {
        "job_id": str(new.get("job_id", "")),
        "status": status,
        "attempt": _int(new.get("attempt", 1)),
        "environment": environment,
        **{name: _int(new.get(name, 0)) for name in COUNTERS},
        "output_prefix": str(new.get("output_prefix") or "") or None,
        # The code the job runs on; None for a request rejected before it had any, or a record written
        # before jobs were pinned (this function reads records of every live version).
        "code_version": _code_version(new.get("code_version")),
    }
    if status in EVENT_ERROR_STATUSES:
        detail["error"] = _error(new.get("error"))
    detail["created_at"] = str(new.get("created_at", "")) or None
    detail["ended_at"] = updated_at if ended else None
    detail["duration_s"] = _duration_s(new.get("created_at"), updated_at) if ended else None
    return JobEvent(detail_type=detail_type, detail=detail, time=updated_at)


def entry_bytes(event: JobEvent) -> int:
    """The size EventBridge counts for the event's PutEvents entry."""
    detail = json.dumps(event.detail, separators=(",", ":"))
    return len(EVENT_SOURCE.encode()) + len(event.detail_type.encode()) + len(detail.encode()) + 14


def _calls(items: list[tuple[int, JobEvent]]) -> Iterator[list[tuple[int, JobEvent]]]:
    """Consecutive runs of at most 10 entries and MAX_BYTES_PER_CALL."""
    run: list[tuple[int, JobEvent]] = []
    size = 0
    for item in items:
        item_size = entry_bytes(item[1])
        if run and (len(run) == MAX_ENTRIES_PER_CALL or size + item_size > MAX_BYTES_PER_CALL):
            yield run
            run, size = [], 0
        run.append(item)
        size += item_size
    if run:
        yield run


def _put(
    run: list[tuple[int, JobEvent]], bus: EventBus, deadline: retry.Deadline, policy: retry.RetryPolicy | None
) -> int | None:
    """Put one call's entries, retrying the refused ones; the position of the first that could not be put."""
    left = list(run)

    def attempt() -> None:
        nonlocal left
        answers = bus.put([event for _, event in left])
        refused = [(item, answer) for item, answer in zip(left, answers, strict=True) if answer is not None]
        if refused:
            left = [item for item, _ in refused]
            raise TransientError(
                f"PutEvents refused {len(refused)} of {len(answers)} entries: {refused[0][1]}"
            )

    try:
        retry.call(attempt, what="PutEvents", deadline=deadline, policy=policy)
    except PipelineError as error:
        first = min(position for position, _ in left)
        log.warning("%d job event(s) not put: %s", len(left), error)
        return first
    return None


def publish(
    changes: Sequence[StreamChange],
    *,
    bus: EventBus,
    environment: str,
    deadline: retry.Deadline,
    policy: retry.RetryPolicy | None = None,
) -> Published:
    """Put the events of `changes` (in stream order) on `bus`. Changes that emit no event are skipped."""
    items = [
        (position, event)
        for position, change in enumerate(changes)
        if (event := job_event(change.old, change.new, environment=environment)) is not None
    ]
    published = 0
    for run in _calls(items):
        failed_at = _put(run, bus, deadline, policy)
        if failed_at is not None:
            published += sum(1 for position, _ in run if position < failed_at)
            return Published(published, tuple(change.sequence_number for change in changes[failed_at:]))
        published += len(run)
    return Published(published, ())
