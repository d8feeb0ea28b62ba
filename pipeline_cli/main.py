"""Entry point of the `pipeline` command. Each sub-command lives in its own module, which exposes
`register(subparsers)` and sets `func` on its parser; this module only wires them and handles errors."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from pipeline_cli.errors import CliError

# Modules that add sub-commands. A module missing here is simply not offered.
COMMAND_MODULES = (
    "pipeline_cli.local",
    "pipeline_cli.jobs",
    "pipeline_cli.dlq",
    "pipeline_cli.demo",
    "pipeline_cli.diff",
    "pipeline_cli.try_transform",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pipeline",
        description="Operate resilient-pipeline jobs on AWS or on the local cloud, and review infra diffs.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name != name:
                raise
            continue
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
