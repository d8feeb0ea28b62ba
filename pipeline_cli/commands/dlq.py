"""Dead-letter queue commands: `dlq list` (what failed and why) and `dlq redrive` (send it back)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from pipeline_cli.aws import add_common_options, open_pipeline
from pipeline_cli.deadletters import (
    DlqMessage,
    approximate_count,
    peek_messages,
    redrive,
    redrive_problem,
    redrive_summary,
)
from pipeline_cli.output import note, print_json, render_table, shorten, unwrap_cause
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
        outcome = redrive(pipeline, job_id=args.job_id, choice=args.choice)
    if outcome.task is not None:
        task = outcome.task
        if args.json:
            print_json(task)
        else:
            print(
                f"started a message move task ({task['approximate_messages']} message(s) approx.) "
                f"from the DLQ to the ingest queue: {task['task_handle']}\n"
                f"follow it with: aws sqs list-message-move-tasks --source-arn {task['source_arn']}"
            )
        return 0
    report = outcome.report
    assert report is not None
    if args.json:
        print_json(
            {
                "method": "receive-send-delete",
                "reason": outcome.reason,
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
        print(redrive_summary(report, reason=outcome.reason, job_id=args.job_id))
    problem = redrive_problem(outcome, env=pipeline.env)
    if problem is not None:
        raise problem
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
