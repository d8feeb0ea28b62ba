"""`pipeline local up|down|status|reset|chaos`: the embedded local cloud that runs the `local` environment.

`up` starts (or reuses) the cloud, deploys the CDK app into it with the real CDK CLI
(`pipeline_cli.local_deploy`) and prints the endpoint and the stack outputs; progress goes to stderr, the
result to stdout (`--json` for scripts). The cloud keeps running in the background until
`pipeline local down`, which keeps its state for the next `up`; `reset` deletes that state. Every command
finds the cloud in `pipeline_cli.local_home`, whatever the current directory.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

# cloud imports neither moto nor the CDK: the CLI stays usable where only boto3 is installed.
from localcloud.core import cloud
from localcloud.core.state import DUMMY_CREDENTIALS, LocalCloudState, snapshot_path
from pipeline_cli import local_deploy
from pipeline_cli.commands import chaos
from pipeline_cli.errors import CliError
from pipeline_cli.local_home import local_home
from pipeline_cli.output import print_json


def register(subparsers: Any) -> None:
    local = subparsers.add_parser(
        "local",
        help="start, stop or inspect the embedded local cloud",
        description="The embedded local cloud: moto on loopback running the deployed `local` environment.",
    )
    commands = local.add_subparsers(dest="local_command", metavar="ACTION", required=True)

    up = commands.add_parser(
        "up",
        help="start the local cloud (or reuse it) and deploy env=local into it",
        description="Start the local cloud in the background, or reuse the running one, and deploy the "
        "CDK app's `local` environment into it with the CDK CLI. Prints the endpoint and stack outputs.",
    )
    up.add_argument("--port", type=int, default=None, help="TCP port on 127.0.0.1 (default: a free one)")
    up.add_argument("--json", action="store_true", help="print the result as JSON")
    up.add_argument(
        "--no-deploy", dest="deploy", action="store_false", help="only start the emulator, deploy nothing"
    )
    up.add_argument(
        "--iam",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="authorize what the deployed functions, state machines and event source mappings do against "
        "their IAM roles, as AWS does (the default); --no-iam turns it off (for debugging: every caller is "
        "then an administrator), in a running cloud too",
    )
    up.add_argument(
        "--context",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="CDK context for the deploy (repeatable), e.g. userCode=DIR (a relative DIR is taken from here)",
    )
    up.set_defaults(func=cmd_up)

    down = commands.add_parser(
        "down",
        help="stop the local cloud (its state is kept for the next `up`)",
        description="Stop the local cloud. It saves its state first: the next `pipeline local up` brings back "
        "its resources, data, queued messages and running jobs.",
    )
    down.add_argument("--json", action="store_true", help="print the result as JSON")
    down.set_defaults(func=cmd_down)

    reset = commands.add_parser(
        "reset",
        help="stop the local cloud and delete its saved state (the next `up` starts empty)",
        description="Stop the local cloud if it runs and delete its saved state: buckets, tables, queues, "
        "jobs, stacks. The next `pipeline local up` starts empty and deploys afresh.",
    )
    reset.add_argument("--json", action="store_true", help="print the result as JSON")
    reset.set_defaults(func=cmd_reset)

    status = commands.add_parser(
        "status",
        help="show whether the local cloud runs, and its outputs",
        description="Show the local cloud.",
    )
    status.add_argument("--json", action="store_true", help="print the result as JSON")
    status.set_defaults(func=cmd_status)

    chaos.register(commands)


def _progress(message: str) -> None:
    print(f"==> {message}", file=sys.stderr, flush=True)


def cmd_up(args: argparse.Namespace) -> int:
    if args.port is not None and not 1 <= args.port <= 65535:
        raise CliError(f"--port {args.port} is not a TCP port (1..65535)")
    context = parse_context(args.context)
    if context and not args.deploy:
        raise CliError("--context is for the deploy: it cannot go with --no-deploy")
    started = time.monotonic()
    try:
        if args.deploy:
            state = local_deploy.up(
                port=args.port, home=local_home(), progress=_progress, context=context, iam=args.iam
            )
        else:
            state = cloud.up(port=args.port, home=local_home(), progress=_progress, iam=args.iam)
    except cloud.LocalCloudError as error:
        message = str(error)
        if "the saved state" in message and "delete it to start empty" in message:
            message += "\n`pipeline local reset` deletes the saved state; the next `up` then starts empty."
        raise CliError(message, exit_code=1) from error
    _progress(f"local cloud ready in {time.monotonic() - started:.1f}s")
    print_state(state, as_json=args.json, out=sys.stdout)
    return 0


def parse_context(pairs: list[str]) -> dict[str, str]:
    """`KEY=VALUE` pairs for `cdk deploy -c`. The environment is always `local` here; `userCode` is a
    directory, taken relative to where the command runs (the CDK app runs in the project directory)."""
    context: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key or not value:
            raise CliError(f"--context {pair!r} must be KEY=VALUE, e.g. userCode=my-transforms")
        if key == "env":
            raise CliError(
                "--context env=... is not allowed: `pipeline local up` deploys the local environment"
            )
        if key == "userCode":
            directory = Path(value).expanduser().resolve()
            if not directory.is_dir():
                raise CliError(f"--context userCode={value}: {directory} is not a directory")
            value = str(directory)
        context[key] = value
    return context


def cmd_down(args: argparse.Namespace) -> int:
    home = local_home()
    stopped = cloud.down(home, progress=_progress)
    if args.json:
        saved = snapshot_path(home)
        print_json({"stopped": stopped, "saved_state": str(saved) if saved.exists() else None})
    elif stopped:
        print("local cloud stopped; `pipeline local up` brings it back as it was", file=sys.stderr)
    else:
        print("no local cloud was running", file=sys.stderr)
    return 0


def cmd_reset(args: argparse.Namespace) -> int:
    home = local_home()
    result = cloud.reset(home)
    if args.json:
        deleted = str(result.deleted) if result.deleted is not None else None
        print_json({"stopped": result.stopped, "deleted": deleted, "deleted_bytes": result.deleted_bytes})
        return 0
    stopped = "stopped the local cloud and " if result.stopped else ""
    if result.deleted is None:
        print(
            f"{stopped}no saved state in {home}: the next `pipeline local up` starts empty", file=sys.stderr
        )
    else:
        print(
            f"{stopped}deleted the local cloud's saved state ({_size(result.deleted_bytes)}: every bucket, table, "
            f"queue, job and stack) in {result.deleted}: the next `pipeline local up` starts empty",
            file=sys.stderr,
        )
    return 0


def _size(count: int) -> str:
    if count < 1024:
        return f"{count} bytes"
    if count < 1024 * 1024:
        return f"{count / 1024:.0f} KiB"
    return f"{count / (1024 * 1024):.1f} MiB"


def cmd_status(args: argparse.Namespace) -> int:
    home = local_home()
    state = cloud.running(home)
    if state is None:
        kept = " (its saved state brings back what it held)" if snapshot_path(home).exists() else ""
        raise CliError(
            f"the local cloud is not running: start it with `pipeline local up`{kept}", exit_code=1
        )
    print_state(state, as_json=args.json, out=sys.stdout)
    return 0


def _iam_enforced(state: LocalCloudState) -> bool | None:
    """Whether the running cloud enforces IAM (None: it does not say)."""
    try:
        return bool(cloud.iam_status(state.endpoint)["enforced"])
    except (OSError, ValueError, KeyError):
        return None


def print_state(state: LocalCloudState, *, as_json: bool, out: TextIO) -> None:
    enforced = _iam_enforced(state)
    if as_json:
        document = {
            "endpoint": state.endpoint,
            "port": state.port,
            "pid": state.pid,
            "region": state.region,
            "account": state.account,
            "outputs": state.outputs,
            "iam_enforced": enforced,
        }
        print(json.dumps(document, indent=2, sort_keys=True), file=out)
        return
    print(f"endpoint  {state.endpoint}  (pid {state.pid}, {state.account}/{state.region})", file=out)
    if enforced is not None:
        print(
            "IAM       enforced (functions, state machines and mappings call as their roles)"
            if enforced
            else "IAM       NOT enforced (--no-iam): every caller is an administrator",
            file=out,
        )
    width = max((len(key) for key in state.outputs), default=0)
    for key, value in sorted(state.outputs.items()):
        print(f"  {key:<{width}}  {value}", file=out)
    print("", file=out)
    print("Use it from another terminal or the AWS CLI:", file=out)
    # AWS_DEFAULT_REGION too: AWS CLI v1 and older SDKs read only that one.
    print(
        f"  export AWS_ENDPOINT_URL={state.endpoint} AWS_REGION={state.region} "
        f"AWS_DEFAULT_REGION={state.region}",
        file=out,
    )
    print(
        "  export " + " ".join(f"{key}={value}" for key, value in DUMMY_CREDENTIALS.items()),
        file=out,
    )
    print(f"  aws --endpoint-url {state.endpoint} sqs list-queues", file=out)
