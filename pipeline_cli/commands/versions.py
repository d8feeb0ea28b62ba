"""`pipeline versions` (the published versions an environment keeps, and the active jobs pinned to each) and
`pipeline versions prune` (delete the ones nothing needs)."""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Sequence
from typing import Any

from pipeline_cli.aws import add_common_options, open_pipeline
from pipeline_cli.errors import CliError
from pipeline_cli.output import print_json, render_table, shorten
from pipeline_cli.versions import DEFAULT_GRACE_MINUTES, PublishedVersion, deployed_versions, prune

JOBS_WIDTH = 48


def register(subparsers: Any) -> None:
    versions = subparsers.add_parser(
        "versions",
        help="the published code versions and the active jobs pinned to each",
        description="List the published versions of the worker, the failures function and the state "
        "machine, which is current (what new jobs are pinned to) and which PENDING or RUNNING jobs run on "
        "each. `prune` deletes the versions nothing needs.",
    )
    add_common_options(versions)
    versions.set_defaults(func=cmd_list)
    commands = versions.add_subparsers(dest="versions_command", metavar="VERSIONS_COMMAND")
    pruning = commands.add_parser(
        "prune",
        help="delete the versions no active job uses (the current ones always stay)",
        description="Delete every published version that is not current, is not pinned by a PENDING or "
        "RUNNING job, and was not replaced in the last --grace-minutes (during a deploy, the ingest being "
        "replaced may still pin new jobs to the version it knows).",
    )
    pruning.add_argument("--dry-run", action="store_true", help="say what would be deleted, delete nothing")
    pruning.add_argument(
        "--grace-minutes",
        type=int,
        default=DEFAULT_GRACE_MINUTES,
        metavar="N",
        help=f"keep versions replaced less than N minutes ago (default {DEFAULT_GRACE_MINUTES})",
    )
    add_common_options(pruning)
    pruning.set_defaults(func=cmd_prune)


def cmd_list(args: argparse.Namespace) -> int:
    with open_pipeline(args) as pipeline:
        versions = deployed_versions(pipeline)
    if args.json:
        print_json([version.as_json() for version in versions])
        return 0
    print(versions_table(versions))
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    if args.grace_minutes < 0:
        raise CliError(f"--grace-minutes must be 0 or more, got {args.grace_minutes}")
    with open_pipeline(args) as pipeline:
        versions = deployed_versions(pipeline)
        result = prune(
            pipeline,
            versions,
            now=dt.datetime.now(dt.UTC),
            grace=dt.timedelta(minutes=args.grace_minutes),
            dry_run=args.dry_run,
        )
    if args.json:
        print_json(
            {
                "dry_run": args.dry_run,
                "deleted": [version.as_json() for version in result.deleted],
                "kept": [{**version.as_json(), "reason": reason} for version, reason in result.kept],
            }
        )
        return 0
    verb = "would delete" if args.dry_run else "deleted"
    for version in result.deleted:
        print(f"{verb} {version.kind} version {version.version} ({version.arn})")
    for version, reason in result.kept:
        print(f"kept {version.kind} version {version.version}: {reason}")
    print(f"{verb} {len(result.deleted)} version(s), kept {len(result.kept)}")
    return 0


def versions_table(versions: Sequence[PublishedVersion]) -> str:
    headers = ("KIND", "VERSION", "PUBLISHED", "CURRENT", "ACTIVE JOBS")
    rows = [
        (
            version.kind,
            version.version,
            version.created.strftime("%Y-%m-%d %H:%M:%S"),
            "yes" if version.current else "",
            shorten(f"{len(version.jobs)}: {', '.join(version.jobs)}", JOBS_WIDTH) if version.jobs else "0",
        )
        for version in versions
    ]
    return render_table(headers, rows, right=(1,))
