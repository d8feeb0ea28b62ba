"""`pipeline demo` (`make demo`): the whole pipeline, end to end, on the embedded local cloud.

Starts (or reuses) the local cloud, which deploys `env=local` with the real CDK CLI, then runs five jobs
through the deployed queue, handlers and state machine, shows their progress, prints a summary, the DLQ
and the alarm states, and checks every outcome: the exit status is non-zero if anything differs from
what the pipeline promises. With --console it then serves the operator console (`pipeline console`) on
127.0.0.1 until Ctrl-C, and prints its address. The integration tests run the same scenarios
(tests/integration).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from localcloud.core import cloud
from pipeline_cli import local_deploy
from pipeline_cli.aws import LOCAL_ENV, connect_local
from pipeline_cli.commands.console import default_actions_log, run_console
from pipeline_cli.commands.local import parse_context
from pipeline_cli.console.server import DEFAULT_PORT
from pipeline_cli.console.source import Source
from pipeline_cli.deadletters import peek_messages
from pipeline_cli.errors import CliError
from pipeline_cli.local_home import local_home
from pipeline_cli.scenarios import alarm_states, build_scenarios, check, iter_report, run_scenarios


def register(subparsers: Any) -> None:
    demo = subparsers.add_parser(
        "demo",
        help="run five real jobs on the local cloud and check every outcome",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument("--port", type=int, default=None, help="local cloud port (default: a free one)")
    demo.add_argument(
        "--timeout", type=float, default=240.0, help="seconds to wait for the jobs (default 240)"
    )
    demo.add_argument(
        "--context",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="CDK context for the deploy, as `pipeline local up --context` (e.g. compliance=strict)",
    )
    demo.add_argument(
        "--console",
        action="store_true",
        help="then serve the operator console on 127.0.0.1 until Ctrl-C (what `make demo` does)",
    )
    demo.add_argument(
        "--console-port",
        type=int,
        default=DEFAULT_PORT,
        metavar="N",
        help=f"the console's port (default {DEFAULT_PORT})",
    )
    demo.add_argument(
        "--allow-actions",
        action="store_true",
        help="let the console redrive from the DLQ page (as `pipeline console --allow-actions`)",
    )
    demo.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    out = sys.stdout
    started = time.monotonic()
    context = parse_context(args.context)
    print("==> starting the local cloud and deploying env=local with the CDK CLI", file=out, flush=True)
    try:
        state = local_deploy.up(port=args.port, home=local_home(), context=context)
    except cloud.LocalCloudError as error:
        raise CliError(str(error), exit_code=1) from error
    print(f"    endpoint {state.endpoint}  ({time.monotonic() - started:.0f}s)", file=out)
    pipeline = connect_local()
    # The date too: the local cloud keeps its jobs across `down` and `up`, so yesterday's ids are still taken.
    run_id = time.strftime("%Y%m%d-%H%M%S")
    print("==> running five jobs", file=out, flush=True)
    runs = run_scenarios(pipeline, build_scenarios(run_id), timeout=args.timeout, out=out)
    alarms = alarm_states(pipeline, wait_for_dlq_alarm=30)
    dlq = peek_messages(pipeline.sqs, pipeline.outputs.dead_letter_queue_url)
    for line in iter_report(runs, alarms, dlq):
        print(line, file=out)
    problems = check(runs, alarms)
    print("", file=out)
    for problem in problems:
        print(f"FAIL  {problem}", file=out)
    if not problems:
        print(f"OK  every outcome as expected, in {time.monotonic() - started:.0f}s.", file=out)
    print(
        f"    The local cloud keeps running at {state.endpoint}: try `pipeline jobs`, `pipeline dlq list`, "
        "`aws --endpoint-url ... sqs list-queues`; stop it with `pipeline local down`.",
        file=out,
    )
    if args.console:
        # Served even when an outcome differs: the console is where to look at why.
        print("==> the operator console: open the address below in a browser", file=out, flush=True)
        run_console(
            Source(env=LOCAL_ENV),
            port=args.console_port,
            allow_actions=args.allow_actions,
            actions_log=default_actions_log(),
            out=out,
            port_option="--console-port",
        )
    else:
        flag = " --allow-actions" if args.allow_actions else ""
        print(
            f"    See it all in the operator console: `pipeline console{flag}`, then open "
            f"http://127.0.0.1:{args.console_port}/ (`make demo` serves it for you).",
            file=out,
        )
    if problems:
        raise CliError(f"{len(problems)} outcome(s) differ from what the pipeline promises", exit_code=1)
    return 0
