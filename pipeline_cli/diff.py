"""`pipeline diff`: what a branch changes in the deployed infrastructure, per environment, offline.

    pipeline diff [--base REF] [--env NAME ...] [--format text|markdown] [--allow-destructive]

The base ref (default: the merge base of HEAD with `main`, or `origin/main` in a CI checkout) is checked out
into a temporary `git worktree` (sharing the project's .venv and node_modules through symlinks) and the
working tree is used as it is, uncommitted changes included. Both are synthesized, all environments in one
process per side and the two sides in parallel, with no AWS credentials. Then every stack's template is
compared (see the infra_diff package). The report goes to stdout and progress to stderr, so
`pipeline diff --format markdown > diff.md` is a PR comment.

Exit status: 0 when no stateful resource (table, bucket, queue, key) would be deleted, orphaned or
replaced; 1 when one would, unless --allow-destructive; 2 for a usage error or a tree that does not
synthesize.

Why not `cdk diff`: it does work offline against a local template. `cdk diff --app <assembly dir>
--template <old template> STACK --fail-on destructive` needs no credentials and took about 1 s per stack
here. It is not the engine for four reasons:
  1. its destructive gate fires on any replacement or deletion, stateless or not (a renamed function, a
     replaced event source mapping), whereas this gate is about losing data, and it says what is lost;
  2. asset hashes show up as S3Key changes on every edit to lambda_src; here they are masked (as
     tests/infra/template_tools.mask_volatile does) and reported once, as "Lambda code changed";
  3. its output is terminal text meant for people, not a stable interface to build Markdown, a security
     section (it covers IAM statements only, not encryption, TLS, public access, alarms or retention) or
     an exit status from;
  4. it runs once per stack: 8 Node start-ups for 4 environments, on top of synthesis.
Using `@aws-cdk/cloudformation-diff` from Node would fix (3) and (4) but not (1) or (2), and it would add
a JavaScript glue layer to a Python project. So the comparison is our own, and it keeps to `cdk diff`'s
conventions: the same markers and impacts ([+] [-] [~], replace, destroy, orphan, "requires
replacement", replacement propagated to resources that refer to a replaced one), the same replacement data (the CloudFormation spec shipped with the pinned CLI;
tests/diff checks the table against it), and the same CDK bookkeeping left out. tests/diff also runs the
real `cdk diff --template` on a fixture pair, when the CLI is installed, to check that both agree on what
is replaced.
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
        "--format",
        choices=tuple(RENDERERS),
        default="text",
        help=(
            "plain text for a terminal (default), GitHub Markdown for a pull-request comment, or one JSON "
            "document for programs (docs/reviewing-infrastructure-changes.md)"
        ),
    )
    parser.add_argument(
        "--allow-destructive",
        action="store_true",
        help="exit 0 even when a stateful resource would be deleted or replaced (still reported)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    envs: list[str] = list(dict.fromkeys(args.envs or []))
    try:
        root = repository_root(Path.cwd())
        base_sha, base_label = resolve_base(root, args.base)
        base_stacks, head_stacks = synthesize_sides(root, base_sha, base_label, envs, progress=progress)
    except SourceError as error:
        raise CliError(str(error)) from error
    report = compare(base_stacks, head_stacks)
    labels = Labels(base=base_label, base_commit=base_sha)
    print(RENDERERS[args.format](report, labels, allow_destructive=args.allow_destructive), end="")
    return exit_status(report, allow_destructive=args.allow_destructive)


def progress(message: str) -> None:
    print(f"pipeline diff: {message}", file=sys.stderr)
