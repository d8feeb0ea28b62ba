"""Dead-letter queue commands: `dlq list` (what failed and why) and `dlq redrive` (send it back)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from pipeline_cli.aws import add_common_options, open_pipeline
from pipeline_cli.deadletters import (
    DlqMessage,
    MoveReport,
    MoveTaskUnsupportedError,
    approximate_count,
    move_messages,
    peek_messages,
    start_move_task,
)
from pipeline_cli.errors import CliError
from pipeline_cli.output import note, print_json, render_table, shorten, unwrap_cause
from pipeline_cli.records import get_record
from pipeline_cli.validation import validate_job_id
from pipeline_contract import DLQ_ERROR_MESSAGE, DLQ_ERROR_TYPE, DLQ_SOURCE_MESSAGE_ID

BODY_WIDTH = 40
MESSAGE_WIDTH = 60


def register(subparsers: Any) -> None:
    dlq = subparsers.add_parser(
        "dlq", help="inspect or redrive the dead-letter queue", description="Dead-letter queue commands."
    )
    commands = dlq.add_subparsers(dest="dlq_command", metavar="DLQ_COMMAND", required=True)
    listing = commands.add_parser(
        "list", help="show every message with its reason", description="Show DLQ messages and why."
    )
    add_common_options(listing)
    listing.set_defaults(func=cmd_list)
    redrive = commands.add_parser(
        "redrive",
        help="send DLQ messages back to the ingest queue",
        description="Move DLQ messages back to the ingest queue (all of them, or one job's).",
    )
    redrive.add_argument("--job-id", metavar="ID", help="move only this job's messages")
    choice = redrive.add_mutually_exclusive_group()
    choice.add_argument(
        "--restart",
        action="store_const",
        const="restart",
        dest="choice",
        help="ask for a restart: a FAILED job whose input or code changed runs again from offset 0 on the "
        "input as it is now and the deployed code, into a fresh output location (without it or --upgrade, "
        "such a redrive is refused)",
    )
    choice.add_argument(
        "--upgrade",
        action="store_const",
        const="upgrade",
        dest="choice",
        help="ask for an upgrade: a FAILED job whose code changed since it began resumes from its checkpoint "
        "on the deployed code, its lineage recording the offset where the new code took over",
    )
    add_common_options(redrive)
    redrive.set_defaults(func=cmd_redrive)


def cmd_list(args: argparse.Namespace) -> int:
    with open_pipeline(args) as pipeline:
        queue_url = pipeline.outputs.dead_letter_queue_url
        approximate = approximate_count(pipeline.sqs, queue_url)
        messages = peek_messages(pipeline.sqs, queue_url)
    if messages:
        # SQS has no peek: say what reading did, so nobody is surprised by the counts.
        note(
            "listing received each message once (hidden for a few seconds, then released): its "
            "ApproximateReceiveCount rose by one; the DLQ has no redrive policy, so that moves nothing"
        )
    if args.json:
        print_json([message.summary() for message in messages])
        return 0
    if not messages:
        print(f"the dead-letter queue of environment {pipeline.env} is empty")
        return 0
    print(messages_table(messages))
    print(f"\n{len(messages)} message(s) in the dead-letter queue of environment {pipeline.env}")
    if approximate > len(messages):
        print(f"(SQS counts about {approximate}: the others are in flight elsewhere; list again to see them)")
    return 0


def cmd_redrive(args: argparse.Namespace) -> int:
    if args.job_id is not None:
        validate_job_id(args.job_id)
    with open_pipeline(args) as pipeline:
        if args.job_id is None and args.choice is None:
            try:
                result = start_move_task(pipeline)
            except MoveTaskUnsupportedError as reason:
                fallback_reason = str(reason)
            else:
                if args.json:
                    print_json(result)
                else:
                    print(
                        f"started a message move task ({result['approximate_messages']} message(s) approx.) "
                        f"from the DLQ to the ingest queue: {result['task_handle']}\n"
                        f"follow it with: aws sqs list-message-move-tasks --source-arn {result['source_arn']}"
                    )
                return 0
        else:
            fallback_reason = (
                f"--{args.choice} rewrites the requests, which only the fallback can do"
                if args.choice
                else "--job-id selects messages, which only the fallback can do"
            )
        select = (lambda message: message.job_id == args.job_id) if args.job_id else (lambda _message: True)
        report = move_messages(
            pipeline.sqs,
            source_url=pipeline.outputs.dead_letter_queue_url,
            destination_url=pipeline.outputs.ingest_queue_url,
            select=select,
            choice=args.choice,
        )
        # A redrive of one job that found none of its messages: is there such a job at all?
        nothing_moved = args.job_id is not None and not report.moved and not report.held_back
        record = get_record(pipeline, args.job_id) if nothing_moved else None
    if args.json:
        print_json(
            {
                "method": "receive-send-delete",
                "reason": fallback_reason,
                "moved": len(report.moved),
                "moved_message_ids": report.moved,
                "skipped": report.skipped,
                "held_back": report.held_back,
                "failed_message_ids": report.failed,
                "not_deleted_message_ids": report.not_deleted,
                "complete": report.complete,
            }
        )
    else:
        print(redrive_summary(report, reason=fallback_reason, job_id=args.job_id))
    if report.failed or report.not_deleted or not report.complete:
        raise CliError(
            "the redrive is incomplete (see above); run it again once the cause is fixed", exit_code=1
        )
    if nothing_moved and record is None:
        left = f" ({report.skipped} other message(s) left there)" if report.skipped else ""
        raise CliError(
            f"unknown job {args.job_id!r} in environment {pipeline.env}: no job record and no message of it in "
            f"the DLQ{left}",
            exit_code=2,
        )
    if nothing_moved:
        assert record is not None
        raise CliError(
            f"no message of job {args.job_id!r} in the DLQ to redrive (the job is {record.get('status', '?')})",
            exit_code=1,
        )
    return 0


def messages_table(messages: Sequence[DlqMessage]) -> str:
    headers = ("SENT", "JOB", "ERROR TYPE", "ERROR MESSAGE", "SOURCE MESSAGE", "BODY")
    rows = [
        (
            message.sent_at or "-",
            message.job_id or "-",
            message.attribute(DLQ_ERROR_TYPE) or "-",
            shorten(unwrap_cause(message.attribute(DLQ_ERROR_MESSAGE) or ""), MESSAGE_WIDTH) or "-",
            message.attribute(DLQ_SOURCE_MESSAGE_ID) or "-",
            shorten(message.body, BODY_WIDTH),
        )
        for message in messages
    ]
    return render_table(headers, rows)


def redrive_summary(report: MoveReport, *, reason: str, job_id: str | None) -> str:
    scope = f" of job {job_id}" if job_id else ""
    lines = [
        f"moved {len(report.moved)} message(s){scope} from the DLQ to the ingest queue by "
        f"receive/send/delete ({reason})"
    ]
    if report.skipped:
        lines.append(f"left {report.skipped} message(s) of other jobs in the DLQ")
    if report.held_back:
        lines.append(
            f"held back {report.held_back} message(s) whose request was already moved in this run (it "
            "failed again at once, or was a duplicate): see `pipeline dlq list`"
        )
    if report.failed:
        lines.append(f"could not send {len(report.failed)} message(s); they stay in the DLQ: {report.failed}")
    if report.not_deleted:
        lines.append(
            f"sent but could not delete {len(report.not_deleted)} message(s) from the DLQ (a later redrive "
            f"would send them again): {report.not_deleted}"
        )
    if not report.complete:
        lines.append("stopped at the round limit before the DLQ was drained: run the redrive again")
    return "\n".join(lines)
