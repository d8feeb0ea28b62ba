"""`pipeline diff`: what a branch changes in the deployed infrastructure, per environment, offline.

    pipeline diff [--base REF] [--env NAME ...] [--context KEY=VALUE ...] [--format text|markdown|json]
                  [--allow-destructive]

The command around the `infra_diff` package: its arguments, the output format, and the exit status (0; 1
when a stateful resource would be deleted, orphaned or replaced, unless --allow-destructive; 2 when it
cannot compare). The report goes to stdout and progress to stderr. How and why:
docs/reviewing-infrastructure-changes.md and docs/infra-diff-design.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from infra_diff import Labels, compare, exit_status, render_json, render_markdown, render_text
from infra_diff.sources import SourceError, repository_root, resolve_base, synthesize_sides
from pipeline_cli.errors import CliError

# Every format reports the same comparison and exits with the same status.
RENDERERS = {"text": render_text, "markdown": render_markdown, "json": render_json}


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "diff",
        help="compare the infrastructure of the working tree with a base ref, per environment",
        description=(
            "Synthesize the base ref and the working tree (offline, no AWS credentials) and compare every "
            "stack's template: resources added, removed, modified, replaced; security-relevant changes; "
            "and a non-zero exit status when a stateful resource would be deleted or replaced."
        ),
    )
    parser.add_argument(
        "--base",
        metavar="REF",
        help="commit, branch or tag to compare against (default: the merge base of HEAD with main)",
    )
    parser.add_argument(
        "--env",
        action="append",
        dest="envs",
        metavar="NAME",
        help="environment to compare (repeatable; default: every environment of the app)",
    )
    parser.add_argument(
        "--context",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=(
            "CDK context for both sides' synth (repeatable), e.g. compliance=strict to review the strict "
            "compliance profile; a base that does not know the key synthesizes as it would without it"
        ),
    )
    parser.add_argument(
        "--format",
        choices=tuple(RENDERERS),
        default="text",
        help=(
            "plain text for a terminal (default), GitHub Markdown for a pull-request comment, or one JSON "
            "document for programs (docs/reviewing-infrastructure-changes.md)"
        ),
    )
    parser.add_argument(
        "--json",
        action="store_const",
        const="json",
        dest="format",
        help="the same as --format json (every command takes --json)",
    )
    parser.add_argument(
        "--allow-destructive",
        action="store_true",
        help="exit 0 even when a stateful resource would be deleted or replaced (still reported)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    envs: list[str] = list(dict.fromkeys(args.envs or []))
    context = parse_context(args.context)
    try:
        root = repository_root(Path.cwd())
        base_sha, base_label = resolve_base(root, args.base)
        base_stacks, head_stacks = synthesize_sides(
            root, base_sha, base_label, envs, progress=progress, context=context
        )
    except SourceError as error:
        raise CliError(str(error)) from error
    report = compare(base_stacks, head_stacks)
    labels = Labels(base=base_label, base_commit=base_sha)
    print(RENDERERS[args.format](report, labels, allow_destructive=args.allow_destructive), end="")
    return exit_status(report, allow_destructive=args.allow_destructive)


def parse_context(pairs: list[str]) -> dict[str, str]:
    context: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CliError(f"--context {pair!r} must be KEY=VALUE, e.g. compliance=strict")
        if key == "env":
            raise CliError("--context env=... is not allowed: choose environments with --env NAME")
        context[key] = value
    return context


def progress(message: str) -> None:
    print(f"pipeline diff: {message}", file=sys.stderr)
