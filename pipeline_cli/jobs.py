"""Job commands: `submit`, `status`, `wait`, `jobs`, `cancel`.

Each command is a thin function over small helpers that take a `Pipeline` (or plain values), so the
helpers are testable on their own. Human output goes to stdout, progress and notes to stderr, so that
`JOB=$(pipeline submit ...)` and `pipeline status X --json | jq` work in scripts.
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import shutil
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import ClientError

from pipeline_cli.aws import Pipeline, add_common_options, error_code, open_pipeline
from pipeline_cli.errors import CliError

STATUSES = ("PENDING", "RUNNING", "SUCCEEDED", "FAILED", "REJECTED", "CANCELLED")
ACTIVE_STATUSES = ("PENDING", "RUNNING")
UNSUCCESSFUL_STATUSES = ("FAILED", "REJECTED", "CANCELLED")
TERMINAL_STATUSES = ("SUCCEEDED", *UNSUCCESSFUL_STATUSES)
STATUS_INDEX_NAME = "by-status"  # stacks/constructs/job_table.py (the CLI does not import CDK code)

JOB_ID_RULE = "^[A-Za-z0-9_-]{1,64}$"
JOB_ID_PATTERN = re.compile(JOB_ID_RULE)
S3_URI_PATTERN = re.compile(r"s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(\S.*)")
MIN_CHUNK_BYTES = 64 * 1024
MAX_CHUNK_BYTES = 64 * 1024 * 1024
MAX_FAULT_RATE = 0.9

MAX_EXECUTION_PROBES = 8
EXIT_FAILED = 1
EXIT_TIMEOUT = 3
# A non-TTY log gets a line when progress changes, and at least this often while nothing does.
HEARTBEAT_SECONDS = 30.0

_deserializer = TypeDeserializer()

# Seams for tests: `wait` reads time and sleeps only through these.
_clock: Callable[[], float] = time.monotonic
_sleep: Callable[[float], None] = time.sleep


# ---------------------------------------------------------------------------------------------- parsers


def register(subparsers: Any) -> None:
    submit = subparsers.add_parser(
        "submit",
        help="submit a job (uploads a local input file first)",
        description="Send a job request to the ingest queue and print its job id.",
    )
    submit.add_argument(
        "--input",
        required=True,
        metavar="SOURCE",
        help="s3://BUCKET/KEY, or a local JSON Lines file to upload",
    )
    submit.add_argument("--job-id", metavar="ID", help=f"job id ({JOB_ID_RULE}); generated when absent")
    submit.add_argument("--transform", metavar="NAME", help="registered transform (default: normalize)")
    submit.add_argument("--chunk-bytes", type=int, metavar="N", help="bytes per chunk, 64 KiB .. 64 MiB")
    submit.add_argument(
        "--fault-rate", type=float, metavar="R", help="transient error rate 0..0.9 (local, dev)"
    )
    submit.add_argument("--fault-seed", type=int, metavar="N", help="seed of the fault injection draws")
    submit.add_argument("--wait", action="store_true", help="then wait for the job like `pipeline wait`")
    add_wait_options(submit)
    add_common_options(submit)
    submit.set_defaults(func=cmd_submit)

    status = subparsers.add_parser("status", help="show one job", description="Show a job record.")
    status.add_argument("job_id", metavar="JOB_ID")
    add_common_options(status)
    status.set_defaults(func=cmd_status)

    wait = subparsers.add_parser(
        "wait",
        help="wait for a job to finish",
        description="Poll a job until it finishes. Exit 0 SUCCEEDED, 1 FAILED/REJECTED/CANCELLED, 3 timeout.",
    )
    wait.add_argument("job_id", metavar="JOB_ID")
    add_wait_options(wait)
    add_common_options(wait)
    wait.set_defaults(func=cmd_wait)

    jobs = subparsers.add_parser(
        "jobs", help="list recent jobs", description="List jobs, newest first (by-status index)."
    )
    jobs.add_argument("--status", type=str.upper, choices=STATUSES, help="only jobs in this status")
    jobs.add_argument("--limit", type=int, default=20, metavar="N", help="at most N jobs (default 20)")
    add_common_options(jobs)
    jobs.set_defaults(func=cmd_jobs)

    cancel = subparsers.add_parser(
        "cancel",
        help="cancel a pending or running job",
        description="Mark a job CANCELLED; its worker stops at the next checkpoint.",
    )
    cancel.add_argument("job_id", metavar="JOB_ID")
    add_common_options(cancel)
    cancel.set_defaults(func=cmd_cancel)


def add_wait_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timeout", type=float, default=900.0, metavar="SECONDS", help="give up after (default 900)"
    )
    parser.add_argument(
        "--interval", type=float, default=2.0, metavar="S", help="seconds between polls (default 2)"
    )


# --------------------------------------------------------------------------------------------- commands


def cmd_submit(args: argparse.Namespace) -> int:
    job_id = args.job_id if args.job_id is not None else new_job_id()
    validate_job_id(job_id)
    local_file = None if args.input.startswith("s3:") else existing_file(args.input)
    if local_file is None:
        parse_s3_uri(args.input)
    fault = fault_injection(args.fault_rate, args.fault_seed)
    validate_chunk_bytes(args.chunk_bytes)
    if args.wait:
        validate_wait_options(args.timeout, args.interval)
    with open_pipeline(args) as pipeline:
        if local_file is not None:
            input_uri = upload_input(pipeline, local_file, job_id)
            note(f"uploaded {local_file} ({local_file.stat().st_size:,} bytes) to {input_uri}")
        else:
            input_uri = args.input
        request = build_request(
            job_id=job_id,
            input_uri=input_uri,
            transform=args.transform,
            chunk_bytes=args.chunk_bytes,
            fault=fault,
        )
        message_id = send_request(pipeline, request)
        note(f"submitted job {job_id} to environment {pipeline.env} (message {message_id})")
        if not args.json:
            print(job_id, flush=True)
        if args.wait:
            # With --json, stdout then holds one document: the final record (it carries the request).
            return wait_command(pipeline, job_id, args)
        if args.json:
            print_json({"env": pipeline.env, "job_id": job_id, "message_id": message_id, "request": request})
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    with open_pipeline(args) as pipeline:
        record = require_record(pipeline, args.job_id)
        execution = latest_execution(pipeline, record)
    if args.json:
        print_json({**clean_record(record), "latest_execution": execution})
    else:
        print(describe_record(record, execution))
    return 0


def cmd_wait(args: argparse.Namespace) -> int:
    validate_job_id(args.job_id, field="JOB_ID")
    validate_wait_options(args.timeout, args.interval)
    with open_pipeline(args) as pipeline:
        return wait_command(pipeline, args.job_id, args)


def cmd_jobs(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise CliError(f"--limit must be at least 1, got {args.limit}")
    with open_pipeline(args) as pipeline:
        records = list_jobs(pipeline, status=args.status, limit=args.limit)
    if args.json:
        print_json([clean_record(record) for record in records])
    elif not records:
        which = f"{args.status} jobs" if args.status else "jobs"
        print(f"no {which} in environment {pipeline.env}")
    else:
        print(jobs_table(records))
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    with open_pipeline(args) as pipeline:
        before, after = cancel_job(pipeline, args.job_id)
    if args.json:
        print_json(clean_record(after))
    else:
        print(f"cancelled job {args.job_id} (was {before}); its worker stops at the next checkpoint")
    return 0


# ------------------------------------------------------------------------------------------- validation


def new_job_id(now: datetime | None = None) -> str:
    """A sortable, readable id made on the client, so that the caller can wait on it at once."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    return f"job-{stamp}-{secrets.token_hex(2)}"


def validate_job_id(job_id: str, *, field: str = "--job-id") -> None:
    if not JOB_ID_PATTERN.match(job_id):
        raise CliError(
            f"{field} {job_id!r} is invalid: a job id must match {JOB_ID_RULE} "
            "(1 to 64 letters, digits, '_' or '-')"
        )


def validate_chunk_bytes(chunk_bytes: int | None) -> None:
    if chunk_bytes is not None and not MIN_CHUNK_BYTES <= chunk_bytes <= MAX_CHUNK_BYTES:
        raise CliError(
            f"--chunk-bytes {chunk_bytes} is out of range: chunk_bytes must be between "
            f"{MIN_CHUNK_BYTES} (64 KiB) and {MAX_CHUNK_BYTES} (64 MiB)"
        )


def validate_wait_options(timeout: float, interval: float) -> None:
    if timeout < 0:
        raise CliError(f"--timeout must be 0 or more seconds, got {timeout}")
    if interval <= 0:
        raise CliError(f"--interval must be more than 0 seconds, got {interval}")


def fault_injection(rate: float | None, seed: int | None) -> dict[str, Any] | None:
    if rate is None:
        if seed is not None:
            raise CliError(
                "--fault-seed needs --fault-rate: fault_injection.transient_error_rate is required"
            )
        return None
    if not 0.0 <= rate <= MAX_FAULT_RATE:
        raise CliError(
            f"--fault-rate {rate} is out of range: fault_injection.transient_error_rate must be within "
            f"0..{MAX_FAULT_RATE}"
        )
    fault: dict[str, Any] = {"transient_error_rate": rate}
    if seed is not None:  # the ingest's default is 0
        fault["seed"] = seed
    return fault


def parse_s3_uri(uri: str) -> tuple[str, str]:
    # The ingest's own rule (lambda_src/jobcore/request.py): an S3 bucket name and a non-empty key.
    match = S3_URI_PATTERN.fullmatch(uri)
    if not match:
        raise CliError(
            f"--input {uri!r} is not an s3://BUCKET/KEY URI (bucket: 3-63 lower-case letters, digits, "
            "'.' or '-'; key: not empty) nor a local file"
        )
    return match.group(1), match.group(2)


def existing_file(path_text: str) -> Path:
    path = Path(path_text).expanduser()
    if not path.is_file():
        reason = "is a directory" if path.is_dir() else "does not exist"
        raise CliError(f"--input {path_text}: the file {reason} (give a JSON Lines file or s3://BUCKET/KEY)")
    return path


def build_request(
    *,
    job_id: str,
    input_uri: str,
    transform: str | None = None,
    chunk_bytes: int | None = None,
    fault: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The job message of the contract, with only the fields the user set (the ingest owns defaults)."""
    request: dict[str, Any] = {"job_id": job_id, "input": input_uri}
    if transform is not None:
        if not transform:
            raise CliError("--transform must not be empty: name a registered transform")
        request["transform"] = transform
    if chunk_bytes is not None:
        request["chunk_bytes"] = chunk_bytes
    if fault is not None:
        request["fault_injection"] = dict(fault)
    return request


# ------------------------------------------------------------------------------------------ AWS helpers


def upload_input(pipeline: Pipeline, path: Path, job_id: str) -> str:
    bucket = pipeline.outputs.data_bucket_name
    key = f"in/{job_id}/{path.name}"
    # upload_file streams the file (multipart above 8 MiB): memory stays flat for any input size.
    pipeline.s3.upload_file(str(path), bucket, key)
    return f"s3://{bucket}/{key}"


def send_request(pipeline: Pipeline, request: Mapping[str, Any]) -> str:
    body = json.dumps(request, separators=(",", ":"))
    response = pipeline.sqs.send_message(QueueUrl=pipeline.outputs.ingest_queue_url, MessageBody=body)
    return str(response["MessageId"])


def record_from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _deserializer.deserialize(value) for key, value in item.items()}


def get_record(pipeline: Pipeline, job_id: str) -> dict[str, Any] | None:
    response = pipeline.dynamodb.get_item(
        TableName=pipeline.outputs.job_table_name, Key={"job_id": {"S": job_id}}, ConsistentRead=True
    )
    item = response.get("Item")
    return record_from_item(item) if item else None


def require_record(pipeline: Pipeline, job_id: str) -> dict[str, Any]:
    record = get_record(pipeline, job_id)
    if record is None:
        raise CliError(f"unknown job {job_id!r} in environment {pipeline.env}")
    return record


def execution_name(job_id: str, *, attempt: int, execution: int) -> str:
    return f"{job_id}-a{attempt}-e{execution}"


def execution_arn(state_machine_arn: str, name: str) -> str:
    # arn:aws:states:REGION:ACCOUNT:stateMachine:SM -> arn:aws:states:REGION:ACCOUNT:execution:SM:NAME
    prefix, _, machine = state_machine_arn.rpartition(":stateMachine:")
    return f"{prefix}:execution:{machine}:{name}"


def latest_execution(pipeline: Pipeline, record: Mapping[str, Any]) -> dict[str, Any] | None:
    """The job's newest execution, or None when there is none (yet) or it cannot be read.

    ListExecutions cannot filter by name, so the ARN is built from the naming contract
    `{job_id}-a{attempt}-e{n}` with n = executions - 1 (before the first MarkRunning the ingest may already
    have started e0). `executions` counts every attempt's executions (a redrive keeps it), so after a
    redrive that name may not exist yet: walk down to e0, a few DescribeExecution calls at most."""
    attempt = int(record.get("attempt") or 1)
    newest = max(int(record.get("executions") or 0) - 1, 0)
    for index in range(newest, max(newest - MAX_EXECUTION_PROBES, -1), -1):
        found = describe_execution(
            pipeline, execution_name(str(record["job_id"]), attempt=attempt, execution=index)
        )
        if found is not None:
            return found
    return None


def describe_execution(pipeline: Pipeline, name: str) -> dict[str, Any] | None:
    arn = execution_arn(pipeline.outputs.state_machine_arn, name)
    try:
        response = pipeline.stepfunctions.describe_execution(executionArn=arn)
    except ClientError as error:
        if error_code(error) in {"ExecutionDoesNotExist", "InvalidArn", "AccessDeniedException"}:
            return None
        raise
    return {
        "name": name,
        "arn": arn,
        "status": response.get("status"),
        "start_date": iso(response.get("startDate")),
        "stop_date": iso(response.get("stopDate")),
    }


def list_jobs(pipeline: Pipeline, *, status: str | None, limit: int) -> list[dict[str, Any]]:
    """Newest first. Without a status, one Query per status on the index, merged: never a Scan (a Scan
    reads, and bills, the whole table to show 20 rows)."""
    statuses = (status,) if status else STATUSES
    records: list[dict[str, Any]] = []
    for each in statuses:
        records.extend(query_status(pipeline, each, limit=limit))
    records.sort(key=lambda record: (str(record.get("updated_at", "")), str(record["job_id"])), reverse=True)
    return records[:limit]


def query_status(pipeline: Pipeline, status: str, *, limit: int) -> list[dict[str, Any]]:
    request: dict[str, Any] = {
        "TableName": pipeline.outputs.job_table_name,
        "IndexName": STATUS_INDEX_NAME,
        "KeyConditionExpression": "#s = :s",
        "ExpressionAttributeNames": {"#s": "status"},
        "ExpressionAttributeValues": {":s": {"S": status}},
        "ScanIndexForward": False,
    }
    records: list[dict[str, Any]] = []
    while len(records) < limit:
        response = pipeline.dynamodb.query(**request, Limit=limit - len(records))
        records.extend(record_from_item(item) for item in response.get("Items", []))
        if "LastEvaluatedKey" not in response:
            break
        request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
    return records


def cancel_job(pipeline: Pipeline, job_id: str, *, now: str | None = None) -> tuple[str, dict[str, Any]]:
    """Returns (status before, record after). Only the record changes: the worker notices at its next
    checkpoint and the next MarkRunning's condition fails, so nothing calls StopExecution."""
    updated_at = now or utc_now()
    try:
        response = pipeline.dynamodb.update_item(
            TableName=pipeline.outputs.job_table_name,
            Key={"job_id": {"S": job_id}},
            UpdateExpression="SET #s = :cancelled, updated_at = :now",
            ConditionExpression="#s IN (:pending, :running)",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={
                ":cancelled": {"S": "CANCELLED"},
                ":now": {"S": updated_at},
                ":pending": {"S": "PENDING"},
                ":running": {"S": "RUNNING"},
            },
            # The old image names the status we replaced; the new one is the old plus our two fields.
            ReturnValues="ALL_OLD",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    except ClientError as error:
        if error_code(error) != "ConditionalCheckFailedException":
            raise
        old = error.response.get("Item")
        if not old:
            raise CliError(f"unknown job {job_id!r} in environment {pipeline.env}") from error
        current = record_from_item(old).get("status", "?")
        raise CliError(
            f"job {job_id} is {current}, not PENDING or RUNNING: only an unfinished job can be cancelled"
        ) from error
    before = record_from_item(response["Attributes"])
    return str(before.get("status")), {**before, "status": "CANCELLED", "updated_at": updated_at}


# ------------------------------------------------------------------------------------------------- wait


@dataclass(frozen=True)
class WaitResult:
    record: dict[str, Any] | None
    timed_out: bool


def wait_for_job(
    fetch: Callable[[], dict[str, Any] | None],
    *,
    timeout: float,
    interval: float,
    on_poll: Callable[[dict[str, Any] | None], None],
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> WaitResult:
    """Poll until the record is terminal or `timeout` passes. A missing record is waited for too: the
    request may still be queued, or waiting for an ingest retry."""
    deadline = clock() + timeout
    while True:
        record = fetch()
        on_poll(record)
        if record is not None and record.get("status") in TERMINAL_STATUSES:
            return WaitResult(record, timed_out=False)
        remaining = deadline - clock()
        if remaining <= 0:
            return WaitResult(record, timed_out=True)
        sleep(min(interval, remaining))


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


def wait_command(pipeline: Pipeline, job_id: str, args: argparse.Namespace) -> int:
    reporter = ProgressReporter(job_id, stream=sys.stderr, tty=sys.stderr.isatty(), clock=_clock)
    try:
        result = wait_for_job(
            lambda: get_record(pipeline, job_id),
            timeout=args.timeout,
            interval=args.interval,
            on_poll=reporter,
            clock=_clock,
            sleep=_sleep,
        )
    finally:
        reporter.finish()
    record = result.record
    if args.json and record is not None:
        print_json(clean_record(record))
    if result.timed_out:
        if record is None:
            raise CliError(
                f"job {job_id} did not appear in environment {pipeline.env} within {args.timeout:g}s: "
                "the request may still be queued, or was rejected (see `pipeline dlq list`)",
                exit_code=EXIT_TIMEOUT,
            )
        raise CliError(
            f"timed out after {args.timeout:g}s waiting for job {job_id} "
            f"({record.get('status')}, {percent_text(record)})",
            exit_code=EXIT_TIMEOUT,
        )
    assert record is not None  # a finished wait always has the terminal record
    status = str(record.get("status"))
    if not args.json:
        print(outcome_line(record))
    if status in UNSUCCESSFUL_STATUSES:
        if record.get("error"):
            print(f"error: {format_error(record['error'])}", file=sys.stderr)
        return EXIT_FAILED
    return 0


# ----------------------------------------------------------------------------------------------- output


def utc_now() -> str:
    """ISO-8601 UTC with milliseconds, the format of `$$.State.EnteredTime` (the GSI sorts on it)."""
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


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
    if record.get("status") == "SUCCEEDED":
        return 100.0
    size = record.get("input_bytes")
    if not size:
        return None  # set by the first segment
    return min(100.0, 100.0 * number(record, "cursor") / int(size))


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
    if record.get("status") == "SUCCEEDED" and record.get("output_prefix"):
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


def describe_record(record: Mapping[str, Any], execution: Mapping[str, Any] | None) -> str:
    size = record.get("input_bytes")
    cursor = number(record, "cursor")
    progress = (
        f"{percent_text(record)} (cursor {cursor:,} of {int(size):,} bytes)"
        if size
        else f"cursor {cursor:,} (input size known after the first segment)"
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
        ("segments", f"{number(record, 'segments')}"),
        ("executions", f"{number(record, 'executions')} (attempt {record.get('attempt', 1)})"),
        ("input", str(record.get("input", "-"))),
        ("transform", str(record.get("transform", "-"))),
        ("output", str(record.get("output_prefix", "-"))),
    ]
    if record.get("error"):
        rows.append(("error", format_error(record["error"])))
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
    headers = ("JOB", "STATUS", "SEGMENTS", "EXECUTIONS", "IN", "OUT", "REJECTED", "UPDATED")
    rows = [
        (
            str(record.get("job_id")),
            str(record.get("status", "?")),
            f"{number(record, 'segments'):,}",
            f"{number(record, 'executions'):,}",
            f"{number(record, 'records_in'):,}",
            f"{number(record, 'records_out'):,}",
            f"{number(record, 'records_rejected'):,}",
            str(record.get("updated_at", "-")),
        )
        for record in records
    ]
    return render_table(headers, rows, right=(2, 3, 4, 5, 6))
