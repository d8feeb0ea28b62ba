"""What each console page shows, computed from what the CLI reads: job records, executions, DLQ messages,
alarms and metric series. Pure functions over plain data (no AWS, no HTML), so each number on a page is
tested here; `pages` only lays them out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pipeline_cli.cost import estimate
from pipeline_cli.deadletters import DlqMessage
from pipeline_cli.output import (
    code_text,
    duration_text,
    eta_estimate,
    format_error,
    number,
    parse_time,
    percent,
    unwrap_cause,
)
from pipeline_cli.scenarios import short_alarm_name
from pipeline_contract import (
    ACTIVE,
    CANCELLED,
    DLQ_ERROR_MESSAGE,
    DLQ_ERROR_TYPE,
    DLQ_SOURCE_MESSAGE_ID,
    EVENT_DETAIL_TYPES,
    FAILED,
    REJECTED,
    RUNNING,
    SUCCEEDED,
    parse_execution_name,
)

# -- the jobs list -----------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class JobRow:
    job_id: str
    status: str
    percent: float | None  # None: the input's size is not known yet
    records_in: int
    records_out: int
    records_rejected: int
    age: str  # since the job was accepted
    eta: str | None  # while it runs
    shards: int  # 1 for a job of one shard
    shards_done: int
    code: str
    error: str | None
    updated_at: str

    @property
    def progress_text(self) -> str:
        return "?" if self.percent is None else f"{self.percent:.1f}%"

    @property
    def updated_text(self) -> str:
        return short_time(self.updated_at)


def short_time(text: str) -> str:
    """`2026-11-22 15:04:05` (UTC) from the record's ISO-8601 time; as it is when it is not one."""
    moment = parse_time(text)
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else text


def age_text(since: Any, now: datetime) -> str:
    moment = parse_time(since) if since else None
    if moment is None:
        return "-"
    seconds = (now - moment).total_seconds()
    if seconds >= 2 * 86_400:
        return f"{int(seconds // 86_400)}d"
    return duration_text(seconds)


def eta_short(record: Mapping[str, Any]) -> str | None:
    """`~3m07s at 1.20 MB/s`: the estimate of `pipeline status`, for a table cell."""
    estimate_ = eta_estimate(record)
    if estimate_ is None:
        return None
    remaining, rate, _ = estimate_
    return f"~{duration_text(remaining)} at {rate / 1e6:,.2f} MB/s"


def shard_counts(record: Mapping[str, Any]) -> tuple[int, int]:
    """(shards, shards done); a job of one shard is one shard, done when the job is."""
    shards = record.get("shards")
    if not isinstance(shards, Mapping) or not shards:
        return 1, 1 if record.get("status") == SUCCEEDED else 0
    done = sum(
        1
        for shard in shards.values()
        if shard.get("cursor") is not None and int(shard["cursor"]) >= int(shard["end"])
    )
    return len(shards), done


def job_row(record: Mapping[str, Any], now: datetime) -> JobRow:
    shards, done = shard_counts(record)
    return JobRow(
        job_id=str(record.get("job_id")),
        status=str(record.get("status", "?")),
        percent=percent(record),
        records_in=number(record, "records_in"),
        records_out=number(record, "records_out"),
        records_rejected=number(record, "records_rejected"),
        age=age_text(record.get("created_at"), now),
        eta=eta_short(record),
        shards=shards,
        shards_done=done,
        code=code_text(record),
        error=format_error(record["error"]) if record.get("error") else None,
        updated_at=str(record.get("updated_at", "-")),
    )


# -- a job: shards ------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ShardBar:
    index: int
    start: int
    end: int
    done_bytes: int
    state: str  # not started, running, done

    @property
    def share(self) -> float:
        return 0.0 if self.end <= self.start else min(1.0, self.done_bytes / (self.end - self.start))


def shard_bars(record: Mapping[str, Any]) -> list[ShardBar]:
    """One bar per shard, through its own byte range; a job of one shard gets one bar over the input."""
    shards = record.get("shards")
    if isinstance(shards, Mapping) and shards:
        bars = []
        for index in sorted(shards, key=int):
            shard = shards[index]
            start, end = int(shard["start"]), int(shard["end"])
            cursor = shard.get("cursor")
            done = 0 if cursor is None else max(0, min(int(cursor), end) - start)
            state = "not started" if cursor is None else "done" if int(cursor) >= end else "running"
            bars.append(ShardBar(index=int(index), start=start, end=end, done_bytes=done, state=state))
        return bars
    size = record.get("input_bytes")
    if not size:
        return []
    done = int(size) if record.get("status") == SUCCEEDED else min(number(record, "bytes_in"), int(size))
    state = "done" if done >= int(size) else "not started" if done == 0 else "running"
    return [ShardBar(index=0, start=0, end=int(size), done_bytes=done, state=state)]


# -- a job: executions ----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Execution:
    """One execution as DescribeExecution returns it (the fields the console reads)."""

    name: str
    status: str
    start: datetime | None
    stop: datetime | None
    version_arn: str | None = None  # the state machine version it ran (a pinned job's)

    @property
    def attempt(self) -> int:
        parsed = parse_execution_name(self.name)
        return parsed.attempt if parsed else 0

    @property
    def index(self) -> int:
        parsed = parse_execution_name(self.name)
        return parsed.execution if parsed else 0


@dataclass(frozen=True, kw_only=True)
class Span:
    """An execution on the timeline, with how it ended for the job."""

    execution: Execution
    outcome: str  # "continue-as-new", "running", "succeeded", "failed", ...
    left: float  # 0..1 of the timeline's width
    width: float
    lane: int  # one lane per attempt, first attempt on top

    @property
    def duration(self) -> str:
        if self.execution.start is None:
            return "-"
        if self.execution.stop is None:
            return "running"
        return duration_text((self.execution.stop - self.execution.start).total_seconds())


@dataclass(frozen=True, kw_only=True)
class Timeline:
    spans: list[Span]
    start: datetime | None
    end: datetime | None
    attempts: int
    hand_overs: int

    @property
    def total(self) -> str:
        if self.start is None or self.end is None:
            return "-"
        return duration_text((self.end - self.start).total_seconds())


def outcome_of(execution: Execution, following: Execution | None) -> str:
    """How an execution ended for its job: a SUCCEEDED execution followed by the next in its attempt
    handed over (continue-as-new); the last one SUCCEEDED finished the job (or saw it cancelled)."""
    if execution.status == "RUNNING":
        return "running"
    if execution.status == "SUCCEEDED":
        return "continue-as-new" if following is not None else "ended"
    return execution.status.lower().replace("_", " ")


def timeline(executions: Sequence[Execution], now: datetime) -> Timeline:
    ordered = sorted(executions, key=lambda e: (e.attempt, e.index))
    starts = [e.start for e in ordered if e.start is not None]
    if not starts:
        return Timeline(spans=[], start=None, end=None, attempts=0, hand_overs=0)
    begin = min(starts)
    end = max([e.stop or now for e in ordered] + [begin])
    width = max((end - begin).total_seconds(), 1e-3)
    attempts = sorted({e.attempt for e in ordered})
    spans = []
    for position, execution in enumerate(ordered):
        following = ordered[position + 1] if position + 1 < len(ordered) else None
        if following is not None and following.attempt != execution.attempt:
            following = None
        start = execution.start or begin
        stop = execution.stop or now
        spans.append(
            Span(
                execution=execution,
                outcome=outcome_of(execution, following),
                left=(start - begin).total_seconds() / width,
                width=max((stop - start).total_seconds() / width, 0.0),
                lane=attempts.index(execution.attempt),
            )
        )
    return Timeline(
        spans=spans,
        start=begin,
        end=end,
        attempts=len(attempts),
        hand_overs=sum(1 for span in spans if span.outcome == "continue-as-new"),
    )


# -- a job: events ---------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class JobEvent:
    time: str
    detail_type: str
    attempt: int
    detail: str


def derived_events(record: Mapping[str, Any], executions: Sequence[Execution]) -> list[JobEvent]:
    """The job events EventBridge was sent for this job, as far as the record and its executions show
    them (the pipeline keeps no archive of the bus): per attempt, `Job Started` when its first execution
    began (MarkRunning is its first state); an attempt before the current one ended `Job Failed` (only a
    FAILED job is redriven) when its last execution stopped; the current attempt's terminal status at the
    record's `updated_at`, with its counters and error; a job created FAILED or REJECTED at `created_at`."""
    status = str(record.get("status", ""))
    current = int(record.get("attempt") or 1)
    by_attempt: dict[int, list[Execution]] = {}
    for execution in executions:
        by_attempt.setdefault(execution.attempt, []).append(execution)
    events: list[JobEvent] = []
    for attempt in sorted(by_attempt):
        runs = sorted(by_attempt[attempt], key=lambda e: e.index)
        first = runs[0]
        if first.start is not None:
            events.append(
                JobEvent(
                    time=iso(first.start),
                    detail_type=EVENT_DETAIL_TYPES[RUNNING],
                    attempt=attempt,
                    detail=f"execution {first.name}",
                )
            )
        if attempt < current:
            last = runs[-1]
            events.append(
                JobEvent(
                    time=iso(last.stop) if last.stop else "-",
                    detail_type=EVENT_DETAIL_TYPES[FAILED],
                    attempt=attempt,
                    detail="the attempt failed and was redriven (its error was replaced by the next attempt's)",
                )
            )
    if status in (SUCCEEDED, FAILED, REJECTED, CANCELLED):
        created_terminal = not executions and status in (FAILED, REJECTED)
        detail = (
            f"records {number(record, 'records_in'):,} in, {number(record, 'records_out'):,} out, "
            f"{number(record, 'records_rejected'):,} rejected"
        )
        if record.get("error"):
            detail += f"; {format_error(record['error'])}"
        events.append(
            JobEvent(
                time=str(record.get("created_at") if created_terminal else record.get("updated_at") or "-"),
                detail_type=EVENT_DETAIL_TYPES[status],
                attempt=current,
                detail=("created " + status + ": " if created_terminal else "") + detail,
            )
        )
    return sorted(events, key=lambda event: event.time)


def iso(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- a job: the page ---------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Preview:
    """The first lines of a job's output or rejects (from its first part objects)."""

    lines: list[str]
    parts: int  # part objects listed
    more_parts: bool  # and there are more than that
    truncated: bool  # more lines follow those shown

    @property
    def parts_text(self) -> str:
        return f"{self.parts}+" if self.more_parts else str(self.parts)


@dataclass(frozen=True, kw_only=True)
class RejectLine:
    offset: str
    error: str
    line: str


def reject_lines(preview: Preview) -> list[RejectLine]:
    """Rejects are `{"offset", "line", "error"}` lines; anything else is shown as it is."""
    rows = []
    for text in preview.lines:
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            rows.append(
                RejectLine(
                    offset=f"{int(parsed['offset']):,}" if isinstance(parsed.get("offset"), int) else "-",
                    error=str(parsed.get("error", "")),
                    line=str(parsed.get("line", "")),
                )
            )
        else:
            rows.append(RejectLine(offset="-", error="", line=text))
    return rows


@dataclass(frozen=True, kw_only=True)
class JobPage:
    row: JobRow
    record: Mapping[str, Any]
    counters: list[tuple[str, str]]
    input_rows: list[tuple[str, str]]
    code_rows: list[tuple[str, str]]
    bars: list[ShardBar]
    timeline: Timeline
    events: list[JobEvent]
    cost: dict[str, Any]
    error: dict[str, str] | None
    eta: str | None
    active: bool
    output: Preview | None = None
    rejects: Preview | None = None
    notes: list[str] = field(default_factory=list)


def counter_rows(record: Mapping[str, Any]) -> list[tuple[str, str]]:
    size = record.get("input_bytes")
    done = number(record, "bytes_in")
    rows = [
        (
            "bytes",
            f"{done:,} of {int(size):,}" if size else f"{done:,} (input size known after the first segment)",
        ),
        ("records in", f"{number(record, 'records_in'):,}"),
        ("records out", f"{number(record, 'records_out'):,}"),
        ("rejected", f"{number(record, 'records_rejected'):,}"),
    ]
    for key, label in (
        ("records_transformed", "transformed"),
        ("records_filtered", "filtered"),
        ("records_blank", "blank lines"),
    ):
        if record.get(key) is not None:
            rows.append((label, f"{number(record, key):,}"))
    rows += [
        ("segments", f"{number(record, 'segments'):,}"),
        ("executions", f"{number(record, 'executions'):,}"),
        ("attempt", str(record.get("attempt", 1))),
        ("chunks", f"{number(record, 'chunks'):,}"),
        ("parts written", f"{number(record, 'parts_written'):,}"),
    ]
    return rows


def input_rows(record: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The input as the ingest pinned it (size, ETag, version), and how the job reads it."""
    rows = [("input", str(record.get("input", "-")))]
    if record.get("input_bytes") is not None:
        rows.append(("size", f"{number(record, 'input_bytes'):,} bytes"))
    for key, label in (("input_etag", "ETag"), ("input_version", "version")):
        if record.get(key):
            rows.append((label, str(record[key])))
    if not record.get("input_etag") and record.get("input"):
        rows.append(("pin", "none: the input was missing when the job arrived"))
    rows.append(("transform", str(record.get("transform", "-"))))
    if record.get("transform_options"):
        rows.append(("options", str(record["transform_options"])))
    if record.get("chunk_bytes"):
        rows.append(("chunk", f"{number(record, 'chunk_bytes'):,} bytes"))
    rows.append(("output", str(record.get("output_prefix") or "-")))
    return rows


def code_rows(record: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The code the job runs on, its pinned versions and, once a redrive changed the code, its lineage."""
    rows = [("code", code_text(record))]
    pin = record.get("code_pin")
    if isinstance(pin, Mapping):
        for key in ("worker", "failures", "state_machine"):
            if pin.get(key):
                rows.append((f"pinned {key.replace('_', ' ')}", str(pin[key])))
    lineage = record.get("lineage")
    if isinstance(lineage, Sequence) and len(lineage) > 1:
        for entry in lineage:
            if isinstance(entry, Mapping):
                offsets = ", ".join(f"{int(o):,}" for o in entry.get("offsets", []))
                rows.append(
                    (
                        "written by",
                        f"{code_text(entry)} from attempt {entry.get('attempt', '?')}, offset(s) {offsets}",
                    )
                )
    return rows


def job_page(
    record: Mapping[str, Any],
    executions: Sequence[Execution],
    now: datetime,
    *,
    output: Preview | None = None,
    rejects: Preview | None = None,
    notes: Sequence[str] = (),
) -> JobPage:
    row = job_row(record, now)
    return JobPage(
        row=row,
        record=record,
        counters=counter_rows(record),
        input_rows=input_rows(record),
        code_rows=code_rows(record),
        bars=shard_bars(record),
        timeline=timeline(executions, now),
        events=derived_events(record, executions),
        cost=estimate(record),
        error=clean(record.get("error")),
        eta=row.eta,
        active=row.status in ACTIVE,
        output=output,
        rejects=rejects,
        notes=list(notes),
    )


def clean(error: Any) -> dict[str, str] | None:
    if not error:
        return None
    text = format_error(error)
    kind, _, message = text.partition(": ")
    return {"type": kind, "message": message or kind}


# -- the DLQ -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class DlqRow:
    message_id: str
    job_id: str | None
    job_status: str | None  # the job's status now (None: no record)
    error_type: str
    reason: str
    sent_at: str
    receive_count: int
    source_message_id: str | None
    body: str

    @property
    def can_redrive_job(self) -> bool:
        """A message of a known job can be redriven alone (`--job-id`); others only with all of them."""
        return self.job_id is not None


def dlq_rows(messages: Sequence[DlqMessage], statuses: Mapping[str, str | None]) -> list[DlqRow]:
    return [
        DlqRow(
            message_id=message.message_id,
            job_id=message.job_id,
            job_status=statuses.get(message.job_id) if message.job_id else None,
            error_type=message.attribute(DLQ_ERROR_TYPE) or "-",
            reason=unwrap_cause(message.attribute(DLQ_ERROR_MESSAGE) or "") or "-",
            sent_at=message.sent_at or "-",
            receive_count=message.receive_count,
            source_message_id=message.attribute(DLQ_SOURCE_MESSAGE_ID),
            body=message.body,
        )
        for message in messages
    ]


# -- alarms ---------------------------------------------------------------------------------------------

SEVERITIES = ("critical", "warning")
_SEVERITY = re.compile(r"^\[(?P<severity>[a-z]+)\]\s*")
_STATE_ORDER = {"ALARM": 0, "INSUFFICIENT_DATA": 1, "OK": 2}


@dataclass(frozen=True, kw_only=True)
class AlarmRow:
    name: str
    short_name: str
    severity: str  # critical, warning, or other (an alarm this app did not define)
    state: str
    reason: str
    updated: str
    description: str


def alarm_row(alarm: Mapping[str, Any]) -> AlarmRow:
    description = str(alarm.get("AlarmDescription") or "")
    match = _SEVERITY.match(description)
    severity = match.group("severity") if match and match.group("severity") in SEVERITIES else "other"
    updated = alarm.get("StateUpdatedTimestamp")
    return AlarmRow(
        name=str(alarm.get("AlarmName")),
        short_name=short_alarm_name(str(alarm.get("AlarmName"))),
        severity=severity,
        state=str(alarm.get("StateValue", "?")),
        reason=str(alarm.get("StateReason") or ""),
        updated=iso(updated) if isinstance(updated, datetime) else str(updated or "-"),
        description=description[match.end() :] if match else description,
    )


def alarm_groups(alarms: Sequence[Mapping[str, Any]]) -> dict[str, list[AlarmRow]]:
    """Severity -> its alarms, those in ALARM first, then by name; critical, warning, then any other."""
    groups: dict[str, list[AlarmRow]] = {severity: [] for severity in (*SEVERITIES, "other")}
    for alarm in alarms:
        row = alarm_row(alarm)
        groups[row.severity].append(row)
    for rows in groups.values():
        rows.sort(key=lambda row: (_STATE_ORDER.get(row.state, 3), row.short_name))
    return {severity: rows for severity, rows in groups.items() if rows or severity in SEVERITIES}


def firing(groups: Mapping[str, Sequence[AlarmRow]]) -> dict[str, int]:
    return {severity: sum(1 for row in rows if row.state == "ALARM") for severity, rows in groups.items()}
