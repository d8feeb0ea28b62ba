"""Job lifecycle events (jobcore.events): every change of a job's status the table can show becomes the one
event the contract names (or none), with exactly the contract's fields; a batch of stream changes is put in
order, failed entries retried, and what could not be put is reported from the first failure on."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pytest

import pipeline_contract as contract
from jobcore import events
from jobcore.errors import MAX_MESSAGE_CHARS, AccessDeniedError, TransientError
from jobcore.events import JobEvent, StreamChange
from jobcore.retry import Deadline, RetryPolicy
from pipeline_contract import CANCELLED, FAILED, PENDING, REJECTED, RUNNING, SUCCEEDED

# Written out by hand, not derived: the event every allowed transition emits (None: none).
EXPECTED_TRANSITION_EVENTS: dict[tuple[str, str], str | None] = {
    (PENDING, RUNNING): "Job Started",
    (PENDING, FAILED): "Job Failed",
    (PENDING, CANCELLED): "Job Cancelled",
    (RUNNING, RUNNING): None,  # continue-as-new: MarkRunning of the next execution
    (RUNNING, SUCCEEDED): "Job Succeeded",
    (RUNNING, FAILED): "Job Failed",
    (RUNNING, CANCELLED): "Job Cancelled",
    (FAILED, PENDING): None,  # a redrive: announced by its Job Started
}
EXPECTED_CREATE_EVENTS: dict[str, str | None] = {
    PENDING: None,  # accepted: announced when it starts
    FAILED: "Job Failed",  # its input was missing or forbidden
    REJECTED: "Job Rejected",
}

CREATED = "2026-11-22T15:04:05.123Z"
ENDED = "2026-11-22T15:05:07.623Z"


def image(status: str, **fields: Any) -> dict[str, Any]:
    """A job item as the stream's deserialized image shows it (numbers are Decimals)."""
    item: dict[str, Any] = {
        "job_id": "job-1",
        "status": status,
        "attempt": Decimal(1),
        "input": "s3://bucket/in/a.jsonl",
        "output_prefix": "s3://bucket/out/job-1/",
        "records_in": Decimal(1000),
        "records_out": Decimal(990),
        "records_rejected": Decimal(10),
        "records_blank": Decimal(2),
        "bytes_in": Decimal(65536),
        "cursor": Decimal(65536),
        "code_version": {"worker": "7", "digest": "3ca330d5dcbb83dd"},
        "code_pin": {
            "worker": "arn:aws:lambda:us-east-1:123456789012:function:worker:7",
            "failures": "arn:aws:lambda:us-east-1:123456789012:function:failures:4",
            "state_machine": "arn:aws:states:us-east-1:123456789012:stateMachine:jobs:3",
        },
        "created_at": CREATED,
        "updated_at": ENDED,
    }
    item.update(fields)
    return item


def test_the_table_covers_every_transition_and_every_create_status_of_the_contract() -> None:
    allowed = {(old, new) for old, targets in contract.TRANSITIONS.items() for new in targets}
    assert set(EXPECTED_TRANSITION_EVENTS) == allowed
    assert set(EXPECTED_CREATE_EVENTS) == set(contract.CREATED_AS)


@pytest.mark.parametrize(("old", "new"), sorted(EXPECTED_TRANSITION_EVENTS))
def test_each_transition_emits_its_event_or_none(old: str, new: str) -> None:
    event = events.job_event(image(old), image(new), environment="dev")
    expected = EXPECTED_TRANSITION_EVENTS[(old, new)]
    assert (event.detail_type if event else None) == expected
    assert contract.event_detail_type(old, new) == expected


@pytest.mark.parametrize("status", sorted(EXPECTED_CREATE_EVENTS))
def test_each_create_status_emits_its_event_or_none(status: str) -> None:
    error = {"type": "ValidationError", "message": "input: must be s3://"}
    event = events.job_event(None, image(status, error=error), environment="dev")
    assert (event.detail_type if event else None) == EXPECTED_CREATE_EVENTS[status]
    assert contract.event_detail_type(None, status) == EXPECTED_CREATE_EVENTS[status]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (image(RUNNING, cursor=Decimal(0)), image(RUNNING)),  # a checkpoint
        (
            image(FAILED),
            image(FAILED, error={"type": "InputChangedError", "message": "m"}),
        ),  # refused redrive
        (image(SUCCEEDED), image(RUNNING)),  # not a transition of the contract
        (image(PENDING), image(SUCCEEDED)),  # nor this
        (image(SUCCEEDED), None),  # TTL deletion
        (None, None),
    ],
)
def test_no_event_without_a_transition_of_the_contract(
    old: dict[str, Any] | None, new: dict[str, Any] | None
) -> None:
    assert events.job_event(old, new, environment="dev") is None


def test_the_emitting_transitions_are_what_the_filter_is_built_from() -> None:
    expected: dict[str | None, set[str]] = {}
    for (old, new), detail_type in EXPECTED_TRANSITION_EVENTS.items():
        if detail_type:
            expected.setdefault(old, set()).add(new)
    for status, detail_type in EXPECTED_CREATE_EVENTS.items():
        if detail_type:
            expected.setdefault(None, set()).add(status)
    assert {old: set(new) for old, new in contract.emitting_transitions().items()} == expected
    assert set(contract.EVENT_DETAIL_TYPES.values()) == {
        "Job Started",
        "Job Succeeded",
        "Job Failed",
        "Job Rejected",
        "Job Cancelled",
    }
    assert contract.EVENT_SOURCE == "resilient-pipeline"


def test_a_succeeded_job_has_exactly_the_contract_fields() -> None:
    event = events.job_event(image(RUNNING), image(SUCCEEDED), environment="prod")
    assert event is not None
    assert event.detail_type == "Job Succeeded"
    assert event.detail == {
        "job_id": "job-1",
        "status": "SUCCEEDED",
        "attempt": 1,
        "environment": "prod",
        "records_in": 1000,
        "records_out": 990,
        "records_rejected": 10,
        "bytes_in": 65536,
        "output_prefix": "s3://bucket/out/job-1/",
        "code_version": {"worker": "7", "digest": "3ca330d5dcbb83dd"},
        "created_at": CREATED,
        "ended_at": ENDED,
        "duration_s": 62.5,
    }
    assert list(event.detail) == list(contract.EVENT_DETAIL_FIELDS)
    assert all(isinstance(event.detail[name], int) for name in ("attempt", "records_in", "bytes_in"))
    assert event.time == ENDED
    assert event.dedupe_key == ("job-1", 1, "Job Succeeded")


def test_records_written_by_any_live_version_make_events() -> None:
    """The events function is started by the table's stream, not by a job: it cannot be pinned to a job's
    code, so it reads records of every version still running (older ones have no code fields; newer ones
    may carry fields it does not know) and says what it knows."""
    legacy = image(SUCCEEDED)
    del legacy["code_version"], legacy["code_pin"]
    event = events.job_event(image(RUNNING), legacy, environment="dev")
    assert event is not None
    assert event.detail["code_version"] is None
    newer = image(SUCCEEDED, lineage=[{"attempt": 1}], some_future_field={"x": 1})
    event = events.job_event(image(RUNNING), newer, environment="dev")
    assert event is not None
    assert event.detail["code_version"] == {"worker": "7", "digest": "3ca330d5dcbb83dd"}
    assert list(event.detail) == list(contract.EVENT_DETAIL_FIELDS)


def test_a_started_job_has_not_ended() -> None:
    event = events.job_event(image(PENDING), image(RUNNING, attempt=Decimal(2)), environment="dev")
    assert event is not None
    assert (event.detail["status"], event.detail["attempt"]) == ("RUNNING", 2)
    assert (event.detail["ended_at"], event.detail["duration_s"]) == (None, None)
    assert "error" not in event.detail
    assert event.time == ENDED  # when it started: the transition's updated_at


def test_a_failed_job_carries_its_error() -> None:
    error = {"type": "InputChangedError", "message": "input changed: ETag a is now b"}
    event = events.job_event(image(RUNNING), image(FAILED, error=error), environment="dev")
    assert event is not None
    assert event.detail["error"] == error
    assert list(event.detail) == [
        *contract.EVENT_DETAIL_FIELDS[:10],
        "error",
        *contract.EVENT_DETAIL_FIELDS[10:],
    ]


def test_an_error_of_any_length_fits_one_put_events_entry() -> None:
    """The state machine's MarkFailed stores a crash's cause uncut (up to Step Functions' 256 KB): an entry
    over EventBridge's limit would be refused for good, and every later event of the batch with it."""
    cause = "Traceback: é" * 40_000  # about 480 KB as JSON (the é escaped)
    error = {"type": "Runtime.ExitError", "message": cause}
    event = events.job_event(image(RUNNING), image(FAILED, error=error), environment="dev")
    assert event is not None
    assert event.detail["error"]["message"] == cause[:MAX_MESSAGE_CHARS]
    assert events.entry_bytes(event) < events.MAX_BYTES_PER_CALL


def test_a_rejected_request_carries_its_error_and_no_output() -> None:
    rejected = {
        "job_id": "bad-1",
        "status": REJECTED,
        "attempt": Decimal(1),
        "output_prefix": "",
        "records_in": Decimal(0),
        "records_out": Decimal(0),
        "records_rejected": Decimal(0),
        "bytes_in": Decimal(0),
        "error": {"type": "ValidationError", "message": "input: must be s3://BUCKET/KEY"},
        "created_at": CREATED,
        "updated_at": CREATED,
    }
    event = events.job_event(None, rejected, environment="local")
    assert event is not None
    assert event.detail_type == "Job Rejected"
    assert event.detail["error"] == {"type": "ValidationError", "message": "input: must be s3://BUCKET/KEY"}
    assert event.detail["output_prefix"] is None
    assert (event.detail["ended_at"], event.detail["duration_s"]) == (CREATED, 0.0)


def test_missing_counters_read_as_zero_and_a_cancelled_job_has_no_error() -> None:
    bare = {
        "job_id": "j",
        "status": CANCELLED,
        "attempt": Decimal(3),
        "created_at": CREATED,
        "updated_at": ENDED,
    }
    event = events.job_event({**bare, "status": PENDING}, bare, environment="dev")
    assert event is not None
    assert event.detail_type == "Job Cancelled"
    assert [event.detail[n] for n in ("records_in", "records_out", "records_rejected", "bytes_in")] == [0] * 4
    assert "error" not in event.detail
    assert event.detail["duration_s"] == 62.5


@pytest.mark.parametrize(
    ("created", "ended", "seconds"),
    [
        ("2026-11-22T15:04:05.123Z", "2026-11-22T15:04:05.123Z", 0.0),
        ("2026-11-22T23:59:59.999Z", "2026-11-23T00:00:01.000Z", 1.001),
        ("2026-11-22T15:04:05.123Z", "2026-11-24T15:04:05.123Z", 172800.0),
        ("", ENDED, None),  # an unreadable timestamp: no duration rather than a wrong one
    ],
)
def test_duration_is_ended_minus_created_in_seconds(created: str, ended: str, seconds: float | None) -> None:
    event = events.job_event(
        image(RUNNING, created_at=created),
        image(SUCCEEDED, created_at=created, updated_at=ended),
        environment="d",
    )
    assert event is not None
    assert event.detail["duration_s"] == seconds


# -- publishing a batch of stream changes -----------------------------------------------------------------


class FakeBus:
    """An EventBus whose answers per entry the test scripts: `fail(event, attempt)` returns an error or None."""

    def __init__(self, fail: Any = None, raise_on_call: list[Exception] | None = None) -> None:
        self.calls: list[list[JobEvent]] = []
        self.fail = fail or (lambda _event, _attempt: None)
        self.raise_on_call = list(raise_on_call or [])
        self.attempts: dict[tuple[str, int, str], int] = {}

    def put(self, batch: Sequence[JobEvent]) -> list[str | None]:
        self.calls.append(list(batch))
        if self.raise_on_call:
            raise self.raise_on_call.pop(0)
        answers: list[str | None] = []
        for event in batch:
            attempt = self.attempts.get(event.dedupe_key, 0) + 1
            self.attempts[event.dedupe_key] = attempt
            answers.append(self.fail(event, attempt))
        return answers


def changes(count: int) -> list[StreamChange]:
    """`count` jobs that each succeed: one change per job, sequence numbers 100, 101, ..."""
    return [
        StreamChange(
            sequence_number=str(100 + n),
            old=image(RUNNING, job_id=f"job-{n}"),
            new=image(SUCCEEDED, job_id=f"job-{n}"),
        )
        for n in range(count)
    ]


NO_SLEEP = RetryPolicy(attempts=4, sleep=lambda _s: None, random=lambda: 0.5)


def publish(batch: list[StreamChange], bus: FakeBus, deadline: Deadline | None = None) -> list[str]:
    published = events.publish(
        batch, bus=bus, environment="dev", deadline=deadline or Deadline.unlimited(), policy=NO_SLEEP
    )
    return list(published.failed)


def test_a_batch_is_put_in_order_ten_entries_a_call() -> None:
    bus = FakeBus()
    assert publish(changes(23), bus) == []
    assert [len(call) for call in bus.calls] == [10, 10, 3]
    assert [e.detail["job_id"] for call in bus.calls for e in call] == [f"job-{n}" for n in range(23)]


def test_changes_without_an_event_are_skipped_and_never_reported() -> None:
    batch = [
        StreamChange(sequence_number="1", old=image(RUNNING, cursor=Decimal(0)), new=image(RUNNING)),
        StreamChange(sequence_number="2", old=None, new=image(PENDING)),
        *changes(1),
    ]
    bus = FakeBus()
    assert publish(batch, bus) == []
    assert [[e.detail_type for e in call] for call in bus.calls] == [["Job Succeeded"]]


def test_no_event_no_call() -> None:
    bus = FakeBus()
    assert publish([StreamChange(sequence_number="1", old=image(RUNNING), new=image(RUNNING))], bus) == []
    assert bus.calls == []


def test_failed_entries_are_retried_alone_until_accepted() -> None:
    # job-3 and job-7 are refused twice (FailedEntryCount 2), then accepted.
    bus = FakeBus(
        fail=lambda e, n: (
            "ThrottlingException: slow down" if e.detail["job_id"] in ("job-3", "job-7") and n <= 2 else None
        )
    )
    assert publish(changes(10), bus) == []
    assert [len(call) for call in bus.calls] == [10, 2, 2]
    assert [e.detail["job_id"] for e in bus.calls[1]] == ["job-3", "job-7"]


def test_entries_still_failing_are_reported_from_the_first_failure_on() -> None:
    # job-12 is never accepted: the batch stops there; its change and every later one are reported, so that
    # Lambda retries from its sequence number (no call after the failing one's is made).
    bus = FakeBus(fail=lambda e, _n: "InternalFailure: x" if e.detail["job_id"] == "job-12" else None)
    failed = publish(changes(25), bus)
    assert failed == [str(100 + n) for n in range(12, 25)]
    assert [len(call) for call in bus.calls] == [10, 10, 1, 1, 1]  # 4 attempts for the second chunk's entry
    assert all(e.detail["job_id"] != "job-20" for call in bus.calls[2:] for e in call)


def test_a_transient_error_of_the_whole_call_is_retried() -> None:
    bus = FakeBus(raise_on_call=[TransientError("ThrottlingException"), TransientError("503")])
    assert publish(changes(3), bus) == []
    assert [len(call) for call in bus.calls] == [3, 3, 3]


def test_a_permanent_error_reports_the_batch_without_retrying() -> None:
    bus = FakeBus(raise_on_call=[AccessDeniedError("AccessDeniedException: events:PutEvents")])
    assert publish(changes(3), bus) == ["100", "101", "102"]
    assert len(bus.calls) == 1


def test_out_of_time_reports_what_is_left() -> None:
    remaining = itertools.chain([60_000], itertools.repeat(100))
    deadline = Deadline(remaining_ms=lambda: next(remaining), reserve_ms=1_000, attempt_ms=2_000)
    bus = FakeBus()
    assert publish(changes(15), bus, deadline) == [str(100 + n) for n in range(10, 15)]
    assert [len(call) for call in bus.calls] == [10]


def test_entries_are_cut_before_the_put_events_size_limit() -> None:
    # The largest events there are: a cut message of characters JSON escapes as 12 bytes each (about
    # 49 KB an entry), so that ten would not fit one call.
    big = "\U0001f600" * (MAX_MESSAGE_CHARS + 10)
    batch = [
        StreamChange(
            sequence_number=str(n),
            old=image(RUNNING, job_id=f"j{n}"),
            new=image(FAILED, job_id=f"j{n}", error={"type": "PermanentError", "message": big}),
        )
        for n in range(7)
    ]
    bus = FakeBus()
    assert publish(batch, bus) == []
    assert [len(call) for call in bus.calls] == [5, 2]
    assert all(sum(map(events.entry_bytes, call)) <= events.MAX_BYTES_PER_CALL for call in bus.calls)
    assert [e.detail["job_id"] for call in bus.calls for e in call] == [f"j{n}" for n in range(7)]
