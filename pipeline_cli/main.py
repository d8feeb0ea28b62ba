"""Entry point of the `pipeline` command: it only wires the sub-commands and handles errors.

Commands live in `pipeline_cli/commands/`, one module per group, each exposing `register(subparsers)`.
Helpers (AWS access, records, output, validation, the local deploy...) live in `pipeline_cli/` itself.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pipeline_cli.commands import console, demo, diff, dlq, jobs, local, results, try_transform, versions
from pipeline_cli.errors import CliError

# The modules that add sub-commands, in the order `pipeline --help` lists them.
COMMANDS = (local, jobs, results, dlq, versions, console, demo, diff, try_transform)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pipeline",
        description="Operate resilient-pipeline jobs on AWS or on the local cloud, and review infra diffs.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS:
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except CliError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
