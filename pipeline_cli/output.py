"""How the CLI shows things: JSON for scripts, tables and lines for people, progress on stderr.

Every command formats through here, so that a record, an error or a table looks the same whoever prints it
(commands do not import each other for their output).
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TextIO

from pipeline_cli.cost import cost_line
from pipeline_contract import SUCCEEDED

# A non-TTY log gets a line when progress changes, and at least this often while nothing does.
HEARTBEAT_SECONDS = 30.0


def iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return str(value)


def jsonable(value: Any) -> Any:
    """DynamoDB numbers arrive as Decimal, sets as set: make them plain JSON, integers as integers."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, set | frozenset):
        return sorted(jsonable(item) for item in value)
    return iso(value) if isinstance(value, datetime) else value


def print_json(value: Any) -> None:
    print(json.dumps(jsonable(value), indent=2, sort_keys=True))


def note(message: str) -> None:
    print(message, file=sys.stderr)


def number(record: Mapping[str, Any], key: str) -> int:
    value = record.get(key)
    return int(value) if value is not None else 0


def percent(record: Mapping[str, Any]) -> float | None:
    if record.get("status") == SUCCEEDED:
        return 100.0
    size = record.get("input_bytes")
    if not size:
        return None  # set by the first segment
    if _compressed(record):
        # Text bytes do not add up to the object's size: the decompressor's restart point (behind the
        # cursor) says how far through the compressed object the job is.
        return min(100.0, 100.0 * _compressed_done(record) / int(size))
    # Bytes counted by every shard's checkpoints: they add up to the input's size, sharded or not.
    return min(100.0, 100.0 * number(record, "bytes_in") / int(size))


def _compressed(record: Mapping[str, Any]) -> bool:
    return str(record.get("compression") or "none") != "none"


def _compressed_done(record: Mapping[str, Any]) -> int:
    point = record.get("restart_point")
    return int(point.get("at", 0)) if isinstance(point, Mapping) else 0


def parse_time(text: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None


def eta_estimate(record: Mapping[str, Any]) -> tuple[float, float, datetime] | None:
    """While a job runs: (seconds left, bytes per second so far, as of): its throughput so far (bytes
    behind its checkpoints over the time since it was accepted, all shards together) and the time the rest
    would take at that pace, from its last checkpoint."""
    if record.get("status") != "RUNNING":
        return None
    size, done = number(record, "input_bytes"), number(record, "bytes_in")
    if _compressed(record):
        done = _compressed_done(record)
    created, updated = parse_time(record.get("created_at")), parse_time(record.get("updated_at"))
    if not size or not done or created is None or updated is None or updated <= created:
        return None
    rate = done / (updated - created).total_seconds()
    return (size - done) / rate, rate, updated


def duration_text(seconds: float) -> str:
    """`4s`, `3m07s`, `2h05m`: what a person reads at a glance."""
    minutes, seconds = divmod(round(max(seconds, 0)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def eta_text(record: Mapping[str, Any]) -> str | None:
    estimate = eta_estimate(record)
    if estimate is None:
        return None
    remaining, rate, updated = estimate
    return (
        f"~{duration_text(remaining)} after {updated.strftime('%H:%M:%S')} UTC, at {rate / 1e6:,.2f} MB/s "
        "so far"
    )


def shard_lines(record: Mapping[str, Any]) -> list[tuple[str, str]]:
    """One row per shard of a sharded job: how far it is through its own byte range."""
    shards = record.get("shards")
    if not isinstance(shards, Mapping) or not shards:
        return []
    rows = []
    finished = 0
    for index in sorted(shards, key=int):
        shard = shards[index]
        start, end = int(shard["start"]), int(shard["end"])
        cursor = shard.get("cursor")
        done = cursor is not None and int(cursor) >= end
        finished += done
        share = 0.0 if cursor is None else min(1.0, max(0, int(cursor) - start) / max(1, end - start))
        state = "done" if done else "not started" if cursor is None else "running"
        rows.append((f"  shard {index}", f"{100 * share:5.1f}%  bytes {start:,}-{end:,}  {state}"))
    return [("shards", f"{len(shards)} ({finished} done)"), *rows]


def percent_text(record: Mapping[str, Any]) -> str:
    value = percent(record)
    return "?%" if value is None else f"{value:.1f}%"


def progress_line(job_id: str, record: Mapping[str, Any] | None, *, bar_width: int) -> str:
    if record is None:
        return f"{job_id}: waiting for the job record (the request may still be queued)"
    value = percent(record)
    bar = ""
    if bar_width:
        filled = round(bar_width * (value or 0.0) / 100)
        bar = "[" + "#" * filled + "-" * (bar_width - filled) + "] "
    return (
        f"{job_id}: {record.get('status', '?'):<9} {bar}{percent_text(record):>6}  "
        f"segments {number(record, 'segments')}  executions {number(record, 'executions')}  "
        f"records {number(record, 'records_in'):,} in / {number(record, 'records_out'):,} out / "
        f"{number(record, 'records_rejected'):,} rejected"
    )


def outcome_line(record: Mapping[str, Any]) -> str:
    line = (
        f"job {record.get('job_id')} {record.get('status')}: {number(record, 'records_in'):,} records in, "
        f"{number(record, 'records_out'):,} out, {number(record, 'records_rejected'):,} rejected "
        f"in {number(record, 'segments')} segments"
    )
    if record.get("status") == SUCCEEDED and record.get("output_prefix"):
        line += f"; output {record['output_prefix']}"
    return line


def clean_error(error: Any) -> dict[str, str]:
    """A job's or a DLQ message's error as `{type, message}`: the shape the pipeline writes, also made
    from records written before it (`cause`, or a Lambda error document with a stack trace)."""
    if not isinstance(error, Mapping):
        return {"type": "Error", "message": unwrap_cause(error)}
    kind = str(error.get("type") or error.get("Error") or "Error")
    message = unwrap_cause(error.get("message") or error.get("cause") or error.get("Cause") or "")
    return {"type": kind, "message": message or kind}


def format_error(error: Any) -> str:
    """`{type, message}` as one line."""
    clean = clean_error(error)
    return clean["type"] if clean["message"] == clean["type"] else f"{clean['type']}: {clean['message']}"


def unwrap_cause(cause: Any) -> str:
    """A Lambda error's cause, as Step Functions passes it on, is JSON ({errorType, errorMessage, trace}):
    the message is what a person needs, never the trace."""
    text = str(cause)
    try:
        parsed = json.loads(text)
    except ValueError:
        return text
    if isinstance(parsed, Mapping) and "errorMessage" in parsed:
        return str(parsed["errorMessage"] or "")
    return text


def clean_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """The record for `--json`: its error as `{type, message}`."""
    cleaned = dict(record)
    if cleaned.get("error"):
        cleaned["error"] = clean_error(cleaned["error"])
    return cleaned


def code_text(record: Mapping[str, Any]) -> str:
    """The code a job runs on, `7 (3ca330d5dcbb83dd)`; `-` for a job from before code versions."""
    version = record.get("code_version")
    if not isinstance(version, Mapping):
        return "-"
    return f"{version.get('worker', '?')} ({version.get('digest', '?')})"


def lineage_lines(record: Mapping[str, Any]) -> list[tuple[str, str]]:
    """One row per code version that wrote part of the output, once a redrive upgraded the job: from
    which offset of each shard on."""
    lineage = record.get("lineage")
    if not isinstance(lineage, Sequence) or len(lineage) < 2:
        return []
    return [
        (
            "  written by",
            f"{code_text(entry)} from attempt {entry.get('attempt', '?')}, offset(s) "
            + ", ".join(f"{int(offset):,}" for offset in entry.get("offsets", [])),
        )
        for entry in lineage
        if isinstance(entry, Mapping)
    ]


def describe_record(record: Mapping[str, Any], execution: Mapping[str, Any] | None) -> str:
    size = record.get("input_bytes")
    done = number(record, "bytes_in")
    progress = (
        f"{percent_text(record)} ({done:,} of {int(size):,} bytes)"
        if size
        else f"{done:,} bytes (input size known after the first segment)"
    )
    if size and _compressed(record):
        progress = (
            f"{percent_text(record)} ({done:,} bytes of text read; about {_compressed_done(record):,} of "
            f"{int(size):,} {record.get('compression')} bytes)"
        )
    rows: list[tuple[str, str]] = [
        ("job", str(record.get("job_id"))),
        ("status", str(record.get("status", "?"))),
        ("progress", progress),
        (
            "records",
            f"{number(record, 'records_in'):,} in, {number(record, 'records_out'):,} out, "
            f"{number(record, 'records_rejected'):,} rejected",
        ),
        *([("eta", eta)] if (eta := eta_text(record)) else []),
        *shard_lines(record),
        ("segments", f"{number(record, 'segments')}"),
        ("executions", f"{number(record, 'executions')} (attempt {record.get('attempt', 1)})"),
        ("input", str(record.get("input", "-"))),
        ("transform", str(record.get("transform", "-"))),
        ("code", code_text(record)),
        *lineage_lines(record),
        ("output", str(record.get("output_prefix", "-"))),
    ]
    if record.get("error"):
        rows.append(("error", format_error(record["error"])))
    rows.append(("cost (est.)", cost_line(record)))
    rows += [("created", str(record.get("created_at", "-"))), ("updated", str(record.get("updated_at", "-")))]
    if execution:
        since = execution.get("stop_date") or execution.get("start_date") or "-"
        rows.append(("execution", f"{execution['name']} {execution.get('status')} ({since})"))
    else:
        rows.append(("execution", "-"))
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, right: Sequence[int] = ()) -> str:
    """Columns padded to their widest cell; the column indexes in `right` (numbers) align right."""
    widths = [max([len(header)] + [len(row[index]) for row in rows]) for index, header in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.rjust(widths[index]) if index in right else cell.ljust(widths[index])
            for index, cell in enumerate(cells)
        ]
        return "  ".join(parts).rstrip()

    return "\n".join([line(headers), *(line(row) for row in rows)])


def jobs_table(records: Sequence[Mapping[str, Any]]) -> str:
    headers = ("JOB", "STATUS", "CODE", "SEGMENTS", "EXECUTIONS", "IN", "OUT", "REJECTED", "UPDATED")
    rows = [
        (
            str(record.get("job_id")),
            str(record.get("status", "?")),
            code_text(record),
            f"{number(record, 'segments'):,}",
            f"{number(record, 'executions'):,}",
            f"{number(record, 'records_in'):,}",
            f"{number(record, 'records_out'):,}",
            f"{number(record, 'records_rejected'):,}",
            str(record.get("updated_at", "-")),
        )
        for record in records
    ]
    return render_table(headers, rows, right=(3, 4, 5, 6, 7))


class ProgressReporter:
    """One rewritten line on a TTY; on a log, a plain line when something changes (or a heartbeat)."""

    def __init__(self, job_id: str, *, stream: TextIO, tty: bool, clock: Callable[[], float]) -> None:
        self.job_id = job_id
        self.stream = stream
        self.tty = tty
        self.clock = clock
        self._last_line: str | None = None
        self._last_time = 0.0
        self._dirty = False

    def __call__(self, record: dict[str, Any] | None) -> None:
        if self.tty:
            width = max(shutil.get_terminal_size().columns - 1, 20)
            line = progress_line(self.job_id, record, bar_width=20)[:width]
            self.stream.write("\r" + line.ljust(width))
            self.stream.flush()
            self._dirty = True
            return
        line = progress_line(self.job_id, record, bar_width=0)
        now = self.clock()
        if line != self._last_line or now - self._last_time >= HEARTBEAT_SECONDS:
            print(line, file=self.stream, flush=True)
            self._last_line, self._last_time = line, now

    def finish(self) -> None:
        if self.tty and self._dirty:
            self.stream.write("\n")
            self.stream.flush()


def shorten(text: str | None, width: int) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."
