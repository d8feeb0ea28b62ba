"""Job commands: `submit`, `status`, `wait`, `jobs`, `cancel`.

Thin: parse the arguments, call `validation` (checks), `records` (AWS) and `output` (printing). Human output
goes to stdout, progress and notes to stderr, so that `JOB=$(pipeline submit ...)` and
`pipeline status X --json | jq` work in scripts.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

from pipeline_cli.aws import Pipeline, add_common_options, open_pipeline
from pipeline_cli.cost import estimate
from pipeline_cli.errors import CliError
from pipeline_cli.output import (
    ProgressReporter,
    clean_record,
    describe_record,
    format_error,
    jobs_table,
    note,
    outcome_line,
    percent_text,
    print_json,
)
from pipeline_cli.records import (
    build_request,
    cancel_job,
    get_record,
    latest_execution,
    list_jobs,
    require_record,
    send_request,
    upload_input,
    wait_for_job,
)
from pipeline_cli.validation import (
    check_shards,
    check_transform,
    existing_file,
    new_job_id,
    parse_s3_uri,
    transform_options,
    validate_chunk_bytes,
    validate_job_id,
    validate_wait_options,
)
from pipeline_contract import JOB_ID_RULE, STATUSES, UNSUCCESSFUL

EXIT_FAILED = 1
EXIT_TIMEOUT = 3

# Seams for tests: `wait` reads time and sleeps only through these.
_clock: Callable[[], float] = time.monotonic
_sleep: Callable[[float], None] = time.sleep


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
    submit.add_argument(
        "--options", metavar="JSON", help="the transform's options (transform_options), a JSON object"
    )
    submit.add_argument("--chunk-bytes", type=int, metavar="N", help="bytes per chunk, 64 KiB .. 64 MiB")
    submit.add_argument(
        "--shards",
        type=int,
        metavar="N",
        help="byte ranges processed in parallel, 1 .. the environment's maximum (default: its default)",
    )
    submit.add_argument(
        "--compression",
        choices=("auto", "none", "gzip", "zstd"),
        help="how the input is read (default auto: gzip and zstd are recognised by their first bytes)",
    )
    submit.add_argument(
        "--output-compression",
        choices=("none", "gzip"),
        help="write the parts (and rejects) as .jsonl.gz (`pipeline output` decompresses them)",
    )
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


def cmd_submit(args: argparse.Namespace) -> int:
    job_id = args.job_id if args.job_id is not None else new_job_id()
    validate_job_id(job_id)
    local_file = None if args.input.startswith("s3:") else existing_file(args.input)
    if local_file is None:
        parse_s3_uri(args.input)
    validate_chunk_bytes(args.chunk_bytes)
    if args.wait:
        validate_wait_options(args.timeout, args.interval)
    options = transform_options(args.options)
    with open_pipeline(args) as pipeline:
        check_transform(pipeline, args.transform)
        check_shards(pipeline, args.shards)
        if local_file is not None:
            input_uri = upload_input(pipeline, local_file, job_id)
            note(f"uploaded {local_file} ({local_file.stat().st_size:,} bytes) to {input_uri}")
        else:
            input_uri = args.input
        request = build_request(
            job_id=job_id,
            input_uri=input_uri,
            transform=args.transform,
            transform_options=options,
            chunk_bytes=args.chunk_bytes,
            shards=args.shards,
            compression=args.compression,
            output_compression=args.output_compression,
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
        print_json(
            {**clean_record(record), "latest_execution": execution, "estimated_cost": estimate(record)}
        )
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
    if status in UNSUCCESSFUL:
        if record.get("error"):
            print(f"error: {format_error(record['error'])}", file=sys.stderr)
        return EXIT_FAILED
    return 0
