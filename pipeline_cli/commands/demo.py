"""`pipeline demo` (`make demo`): the whole pipeline, end to end, on the embedded local cloud.

Starts (or reuses) the local cloud, which deploys `env=local` with the real CDK CLI, then runs five jobs
through the deployed queue, handlers and state machine, shows their progress, prints a summary, the DLQ
and the alarm states, and checks every outcome: the exit status is non-zero if anything differs from
what the pipeline promises. The integration tests run the same scenarios (tests/integration).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from localcloud.core import cloud
from pipeline_cli import local_deploy
from pipeline_cli.aws import connect_local
from pipeline_cli.commands.local import parse_context
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
    if problems:
        for problem in problems:
            print(f"FAIL  {problem}", file=out)
        raise CliError(f"{len(problems)} outcome(s) differ from what the pipeline promises", exit_code=1)
    print(f"OK  every outcome as expected, in {time.monotonic() - started:.0f}s.", file=out)
    print(
        f"    The local cloud keeps running at {state.endpoint}: try `pipeline jobs`, `pipeline dlq list`, "
        "`aws --endpoint-url ... sqs list-queues`; stop it with `pipeline local down`.",
        file=out,
    )
    return 0
