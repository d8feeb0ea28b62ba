"""`pipeline console`: the operator console, a web page on 127.0.0.1 (pipeline_cli/console/).

It reads the environment the CLI reads, with the CLI's credentials (the local cloud by default, a deployed
environment with --env), and serves until Ctrl-C. Read-only unless started with --allow-actions.
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
from pathlib import Path
from typing import Any, TextIO

from pipeline_cli.aws import add_common_options
from pipeline_cli.console.server import DEFAULT_PORT, ActionLog, Console, quiet_request_log, serve
from pipeline_cli.console.source import Source
from pipeline_cli.errors import CliError

ACTIONS_LOG = "console-actions.log"


def register(subparsers: Any) -> None:
    console = subparsers.add_parser(
        "console",
        help="serve the operator console (jobs, shards, DLQ, alarms, graphs) on 127.0.0.1",
        description="Serve a web page on 127.0.0.1 showing the environment's jobs (progress, shards, executions, "
        "events, cost), its dead-letter queue with reasons, its alarms by severity and its dashboard's graphs. "
        "Read-only unless --allow-actions; Ctrl-C stops it.",
    )
    console.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        metavar="N",
        help=f"port on 127.0.0.1 (default {DEFAULT_PORT})",
    )
    console.add_argument(
        "--allow-actions",
        action="store_true",
        help="show the DLQ's redrive, restart and upgrade buttons (each asks for confirmation and is logged)",
    )
    console.add_argument(
        "--actions-log",
        metavar="FILE",
        type=Path,
        default=None,
        help=f"where actions are recorded, a JSON object a line (default: {ACTIONS_LOG} in the state "
        "directory, ~/.local/state/resilient-pipeline)",
    )
    # The console is for people: no --json.
    add_common_options(console, json_flag=False)
    console.set_defaults(func=cmd_console)


def default_actions_log() -> Path:
    """`$XDG_STATE_HOME/resilient-pipeline/console-actions.log` (`~/.local/state/...`): beside the local
    cloud's home, not in it (`pipeline local reset` deletes what is there), and for AWS environments too."""
    state = os.environ.get("XDG_STATE_HOME")
    # The XDG spec: a relative path is invalid and must be ignored.
    base = Path(state) if state and Path(state).is_absolute() else Path.home() / ".local" / "state"
    return base / "resilient-pipeline" / ACTIONS_LOG


def cmd_console(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        raise CliError(f"--port must be from 0 to 65535, not {args.port}")
    source = Source(env=args.env, region=args.region)
    source.connect()  # an environment that cannot be read fails here, with the CLI's message
    return run_console(
        source,
        port=args.port,
        allow_actions=args.allow_actions,
        actions_log=args.actions_log or default_actions_log(),
        out=sys.stdout,
    )


def run_console(
    source: Source,
    *,
    port: int,
    allow_actions: bool,
    actions_log: Path,
    out: TextIO,
    port_option: str = "--port",
) -> int:
    """Serve until Ctrl-C; the address is printed first (the demo calls this too, whose option for the
    console's port is `port_option`)."""
    console = Console(
        source, port=port, allow_actions=allow_actions, actions_log=ActionLog(actions_log, sys.stderr)
    )
    try:
        server = serve(console, port=port)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise CliError(
                f"port {port} on 127.0.0.1 is in use: pick another with {port_option} N"
            ) from error
        raise CliError(f"cannot listen on 127.0.0.1:{port}: {error.strerror or error}") from error
    quiet_request_log()
    mode = (
        f"actions allowed, logged to {actions_log}"
        if allow_actions
        else "read-only (--allow-actions to redrive)"
    )
    print(
        f"console for environment {source.env} at {console.address}  ({mode}); Ctrl-C stops it",
        file=out,
        flush=True,
    )
    # Ctrl-C, and `kill` (SIGTERM), stop it the same way, also where it was started as a background job,
    # which inherits SIGINT ignored (Python then raises no KeyboardInterrupt of its own).
    previous = {stop: signal.signal(stop, _interrupt) for stop in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.serve_forever()  # Werkzeug's returns on KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        for stop, handler in previous.items():
            signal.signal(stop, handler)
    print("console stopped", file=out, flush=True)
    return 0


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt
