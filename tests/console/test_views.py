"""What the console's pages compute from job records, executions, DLQ messages and alarms (pure: no AWS)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from pipeline_cli.console import views
from pipeline_cli.console.views import Execution, Preview
from pipeline_cli.deadletters import DlqMessage

NOW = datetime(2026, 11, 22, 15, 10, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return datetime(2026, 11, 22, 15, 0, 0, tzinfo=UTC) + timedelta(seconds=seconds)


def record(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "job_id": "orders",
        "status": "RUNNING",
        "attempt": Decimal(1),
        "created_at": "2026-11-22T15:00:00.000Z",
        "updated_at": "2026-11-22T15:01:40.000Z",
    }
    return {**base, **fields}


def sharded(*cursors: int | None, size: int = 400) -> dict[str, Any]:
    width = size // len(cursors)
    shards = {}
    for index, cursor in enumerate(cursors):
        shard: dict[str, Any] = {"start": Decimal(index * width), "end": Decimal((index + 1) * width)}
        if cursor is not None:
            shard["cursor"] = Decimal(cursor)
        shards[str(index)] = shard
    return shards


# -- the jobs list -------------------------------------------------------------------------------------------


def test_a_running_rows_progress_counters_age_and_eta() -> None:
    row = views.job_row(
        record(
            input_bytes=Decimal(1_000_000),
            bytes_in=Decimal(250_000),
            records_in=Decimal(1200),
            records_out=Decimal(1190),
            records_rejected=Decimal(10),
            code_version={"worker": "7", "digest": "3ca330d5dcbb83dd"},
        ),
        NOW,
    )
    assert (row.status, row.percent, row.progress_text) == ("RUNNING", 25.0, "25.0%")
    assert (row.records_in, row.records_out, row.records_rejected) == (1200, 1190, 10)
    assert row.age == "10m00s"
    # 250 kB in the 100 s between acceptance and the last checkpoint: 2.5 kB/s, 300 s for the rest.
    assert row.eta == "~5m00s at 0.00 MB/s"
    assert row.code == "7 (3ca330d5dcbb83dd)"
    assert (row.shards, row.shards_done) == (1, 0)
    assert row.updated_text == "2026-11-22 15:01:40"


def test_eta_only_while_running_and_once_something_is_done() -> None:
    done = record(status="SUCCEEDED", input_bytes=Decimal(100), bytes_in=Decimal(100))
    assert views.job_row(done, NOW).eta is None
    assert views.job_row(done, NOW).percent == 100.0
    assert views.job_row(record(input_bytes=Decimal(100), bytes_in=Decimal(0)), NOW).eta is None
    assert views.job_row(record(), NOW).percent is None, "the size is known after the first segment"


def test_age_reads_in_days_past_two() -> None:
    assert views.age_text("2026-11-19T15:10:00.000Z", NOW) == "3d"
    assert views.age_text("2026-11-22T13:05:00.000Z", NOW) == "2h05m"
    assert views.age_text(None, NOW) == "-"
    assert views.age_text("not a time", NOW) == "-"


def test_a_failed_rows_error_is_one_line_without_the_trace() -> None:
    error = {"type": "InputNotFoundError", "message": '{"errorMessage": "no such key", "trace": ["x"]}'}
    row = views.job_row(record(status="FAILED", error=error), NOW)
    assert row.error == "InputNotFoundError: no such key"


def test_shards_done_count_a_sharded_job_by_its_cursors() -> None:
    row = views.job_row(record(shards=sharded(100, 150, None, 400)), NOW)
    assert (row.shards, row.shards_done) == (4, 2)


# -- a job's shards -----------------------------------------------------------------------------------------


def test_a_bar_per_shard_through_its_own_range() -> None:
    bars = views.shard_bars(record(shards=sharded(50, 200, None, 400)))
    assert [(b.index, b.start, b.end, b.state) for b in bars] == [
        (0, 0, 100, "running"),
        (1, 100, 200, "done"),
        (2, 200, 300, "not started"),
        (3, 300, 400, "done"),
    ]
    assert [b.share for b in bars] == [0.5, 1.0, 0.0, 1.0]


def test_a_job_of_one_shard_has_one_bar_over_its_input() -> None:
    (bar,) = views.shard_bars(record(input_bytes=Decimal(1000), bytes_in=Decimal(400)))
    assert (bar.start, bar.end, bar.share, bar.state) == (0, 1000, 0.4, "running")
    assert views.shard_bars(record()) == [], "no size yet, no bar"
    (finished,) = views.shard_bars(record(status="SUCCEEDED", input_bytes=Decimal(10), bytes_in=Decimal(0)))
    assert finished.state == "done"


# -- executions ---------------------------------------------------------------------------------------------


def execution(attempt: int, index: int, status: str, start: float, stop: float | None) -> Execution:
    return Execution(
        name=f"orders-a{attempt}-e{index}",
        status=status,
        start=at(start),
        stop=at(stop) if stop is not None else None,
    )


def test_the_timeline_shows_hand_overs_attempts_and_the_running_execution() -> None:
    executions = [
        execution(1, 0, "SUCCEEDED", 0, 100),
        execution(1, 1, "FAILED", 100, 150),
        execution(2, 0, "SUCCEEDED", 200, 300),
        execution(2, 1, "RUNNING", 300, None),
    ]
    timeline = views.timeline(executions, now=at(400))
    assert [(s.execution.name, s.outcome, s.lane) for s in timeline.spans] == [
        ("orders-a1-e0", "continue-as-new", 0),
        ("orders-a1-e1", "failed", 0),
        ("orders-a2-e0", "continue-as-new", 1),
        ("orders-a2-e1", "running", 1),
    ]
    assert (timeline.attempts, timeline.hand_overs, timeline.total) == (2, 2, "6m40s")
    # Positions on a 400 s axis.
    assert [(s.left, s.width) for s in timeline.spans] == [
        (0.0, 0.25),
        (0.25, 0.125),
        (0.5, 0.25),
        (0.75, 0.25),
    ]
    assert timeline.spans[3].duration == "running"


def test_the_last_execution_that_succeeded_ended_the_job() -> None:
    timeline = views.timeline([execution(1, 0, "SUCCEEDED", 0, 10)], now=at(20))
    assert [s.outcome for s in timeline.spans] == ["ended"]
    assert views.timeline([], now=at(0)).spans == []


# -- derived job events --------------------------------------------------------------------------------------


def test_events_of_a_redriven_job_that_succeeded() -> None:
    job = record(
        status="SUCCEEDED",
        attempt=Decimal(2),
        updated_at="2026-11-22T15:05:00.000Z",
        records_in=Decimal(10),
        records_out=Decimal(9),
        records_rejected=Decimal(1),
    )
    executions = [
        execution(1, 0, "SUCCEEDED", 0, 60),
        execution(1, 1, "FAILED", 60, 90),
        execution(2, 0, "SUCCEEDED", 120, 300),
    ]
    events = views.derived_events(job, executions)
    assert [(e.time, e.detail_type, e.attempt) for e in events] == [
        ("2026-11-22T15:00:00.000Z", "Job Started", 1),
        ("2026-11-22T15:01:30.000Z", "Job Failed", 1),
        ("2026-11-22T15:02:00.000Z", "Job Started", 2),
        ("2026-11-22T15:05:00.000Z", "Job Succeeded", 2),
    ]
    assert events[-1].detail == "records 10 in, 9 out, 1 rejected"


def test_a_job_created_failed_has_one_event_at_its_creation_with_its_error() -> None:
    job = record(
        status="FAILED",
        created_at="2026-11-22T15:00:00.000Z",
        updated_at="2026-11-22T15:00:00.500Z",
        error={"type": "InputNotFoundError", "message": "no such key"},
    )
    (event,) = views.derived_events(job, [])
    assert (event.time, event.detail_type) == ("2026-11-22T15:00:00.000Z", "Job Failed")
    assert event.detail.startswith("created FAILED: ")
    assert event.detail.endswith("InputNotFoundError: no such key")


def test_a_running_job_has_only_its_start() -> None:
    events = views.derived_events(record(), [execution(1, 0, "RUNNING", 0, None)])
    assert [e.detail_type for e in events] == ["Job Started"]
    # Control: a pending job without executions has none (it is announced when it starts).
    assert views.derived_events(record(status="PENDING"), []) == []


# -- the job page ------------------------------------------------------------------------------------------------


def test_the_job_page_puts_the_pin_the_code_and_the_lineage_together() -> None:
    job = record(
        status="FAILED",
        input="s3://data/in/orders.jsonl",
        input_bytes=Decimal(2048),
        input_etag='"abc"',
        input_version="v3",
        transform="normalize",
        output_prefix="s3://data/out/orders/",
        code_version={"worker": "8", "digest": "bbbb"},
        code_pin={
            "worker": "arn:aws:lambda:us-east-1:1:function:w:8",
            "failures": "arn:aws:lambda:us-east-1:1:function:f:3",
            "state_machine": "arn:aws:states:us-east-1:1:stateMachine:sm:2",
        },
        lineage=[
            {
                "attempt": Decimal(1),
                "code_version": {"worker": "7", "digest": "aaaa"},
                "offsets": [Decimal(0)],
            },
            {
                "attempt": Decimal(2),
                "code_version": {"worker": "8", "digest": "bbbb"},
                "offsets": [Decimal(1024)],
            },
        ],
        error={"type": "RejectRatioExceededError", "message": "shard 2 (bytes 0-10): too many"},
    )
    page = views.job_page(job, [], NOW)
    assert dict(page.input_rows)["ETag"] == '"abc"'
    assert dict(page.input_rows)["version"] == "v3"
    assert ("pinned state machine", "arn:aws:states:us-east-1:1:stateMachine:sm:2") in page.code_rows
    assert [value for label, value in page.code_rows if label == "written by"] == [
        "7 (aaaa) from attempt 1, offset(s) 0",
        "8 (bbbb) from attempt 2, offset(s) 1,024",
    ]
    assert page.error == {"type": "RejectRatioExceededError", "message": "shard 2 (bytes 0-10): too many"}
    assert page.active is False
    assert page.cost["usd"] >= 0 and "prices" in page.cost


def test_a_job_whose_input_was_missing_says_it_has_no_pin() -> None:
    rows = dict(views.input_rows(record(input="s3://data/in/absent.jsonl")))
    assert rows["pin"] == "none: the input was missing when the job arrived"


def test_rejects_are_shown_by_offset_and_reason() -> None:
    preview = Preview(
        lines=['{"offset": 4096, "line": "{broken", "error": "Expecting value"}', "not json"],
        parts=1,
        more_parts=False,
        truncated=False,
    )
    assert [(r.offset, r.error, r.line) for r in views.reject_lines(preview)] == [
        ("4,096", "Expecting value", "{broken"),
        ("-", "", "not json"),
    ]


# -- the DLQ ------------------------------------------------------------------------------------------------------


def message(job_id: str | None, error_type: str, error_message: str, *, body: str = "{}") -> DlqMessage:
    attributes = {
        "error_type": {"DataType": "String", "StringValue": error_type},
        "error_message": {"DataType": "String", "StringValue": error_message},
    }
    if job_id:
        attributes["job_id"] = {"DataType": "String", "StringValue": job_id}
    return DlqMessage(
        message_id=f"m-{job_id}",
        receipt_handle="r",
        body=body,
        attributes=attributes,
        sent_at="2026-11-22T15:00:00.000Z",
        receive_count=2,
    )


def test_each_dlq_message_with_its_reason_and_its_jobs_status_now() -> None:
    lambda_cause = '{"errorType": "InputNotFoundError", "errorMessage": "no such key", "trace": ["..."]}'
    rows = views.dlq_rows(
        [
            message("a", "InputNotFoundError", lambda_cause),
            message(None, "ValidationError", "not JSON", body="garbage"),
            message("gone", "TransientError", "x"),
        ],
        {"a": "FAILED", "gone": None},
    )
    assert [(r.job_id, r.job_status, r.error_type, r.reason) for r in rows] == [
        ("a", "FAILED", "InputNotFoundError", "no such key"),
        (None, None, "ValidationError", "not JSON"),
        ("gone", None, "TransientError", "x"),
    ]
    assert [r.can_redrive_job for r in rows] == [True, False, True]


def test_a_body_with_a_job_id_names_its_job_without_the_attribute() -> None:
    (row,) = views.dlq_rows([message(None, "ValidationError", "x", body='{"job_id": "b"}')], {})
    assert row.job_id == "b"


# -- alarms --------------------------------------------------------------------------------------------------------


def alarm(name: str, state: str, description: str) -> dict[str, Any]:
    return {
        "AlarmName": f"ResilientPipeline-local-Pipeline-Alarms{name}F84C0B0A-ZQV6IHO6M4JG",
        "StateValue": state,
        "AlarmDescription": description,
        "StateReason": "Threshold Crossed",
        "StateUpdatedTimestamp": at(5),
    }


def test_alarms_by_severity_those_firing_first() -> None:
    groups = views.alarm_groups(
        [
            alarm("WorkerThrottles", "OK", "[warning] throttled"),
            alarm("IngestQueueBacklogAge", "OK", "[critical] old"),
            alarm("DeadLetterQueueNotEmpty", "ALARM", "[critical] Job requests are in the DLQ. First: look."),
            alarm("WorkerErrorRate", "INSUFFICIENT_DATA", "[warning] errors"),
            {"AlarmName": "someone-elses", "StateValue": "ALARM"},
        ]
    )
    assert list(groups) == ["critical", "warning", "other"]
    assert [(r.short_name, r.state) for r in groups["critical"]] == [
        ("DeadLetterQueueNotEmpty", "ALARM"),
        ("IngestQueueBacklogAge", "OK"),
    ]
    assert [r.short_name for r in groups["warning"]] == ["WorkerErrorRate", "WorkerThrottles"]
    assert groups["critical"][0].description == "Job requests are in the DLQ. First: look."
    assert groups["critical"][0].updated == "2026-11-22T15:00:05.000Z"
    assert [r.name for r in groups["other"]] == ["someone-elses"]
    assert views.firing(groups) == {"critical": 1, "warning": 0, "other": 1}


def test_no_alarm_still_shows_both_severities() -> None:
    assert views.alarm_groups([]) == {"critical": [], "warning": []}
