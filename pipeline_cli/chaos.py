"""`pipeline local chaos add|list|clear`: fault injection rules of the running local cloud.

The rules live in the server process (its HTTP API at /_localcloud/chaos, see `localcloud.core.chaos`); these
commands validate a rule here first, so that a malformed one is refused in one line even before the server
is asked, then call that API.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from typing import Any, TextIO

from localcloud.core import cloud
from localcloud.core.chaos import CONTROL_PATH, SERVICES, RuleError, parse_rule
from pipeline_cli.errors import CliError
from pipeline_cli.local_home import local_home

HTTP_TIMEOUT_SECONDS = 10.0


def register(local_commands: Any) -> None:
    """Add `chaos` under `pipeline local`."""
    parser = local_commands.add_parser(
        "chaos",
        help="inject faults (errors, latency, Lambda crashes) into the local cloud",
        description="Fault injection rules of the running local cloud. A rule applies to every caller "
        "(handlers, state machine, poller, CLI) until it is cleared or the cloud stops.",
    )
    commands = parser.add_subparsers(dest="chaos_command", metavar="ACTION", required=True)

    add = commands.add_parser(
        "add",
        help="add a rule",
        description="Add a fault injection rule. Examples:\n"
        "  pipeline local chaos add --service s3 --operation GetObject --error SlowDown --rate 0.3 --seed 1\n"
        "  pipeline local chaos add --service dynamodb --operation '*' --latency-ms 500\n"
        "  pipeline local chaos add --service lambda --operation Invoke --function NAME --error crash --rate 0.1",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add.add_argument("--service", required=True, help="boto3 service name: " + ", ".join(sorted(SERVICES)))
    add.add_argument(
        "--operation", required=True, help="API operation name (GetObject, UpdateItem, ...) or *"
    )
    add.add_argument(
        "--error",
        metavar="CODE",
        help="answer with this AWS error code (SlowDown, ThrottlingException, ...); for lambda also "
        "`crash` (kill the environment mid-invocation) or `timeout` (overrun the function timeout)",
    )
    add.add_argument("--latency-ms", type=int, metavar="N", help="delay the answer by N milliseconds")
    add.add_argument(
        "--rate", type=float, metavar="R", help="probability per matching call, 0..1 (default 1)"
    )
    add.add_argument("--seed", type=int, metavar="N", help="seed of the rule's draws (default: a random one)")
    add.add_argument(
        "--function", metavar="NAME", help="lambda only: restrict to this function (name or ARN)"
    )
    add.add_argument("--count", type=int, metavar="N", help="stop after N injections")
    add.add_argument("--json", action="store_true", help="print the rule as JSON")
    add.set_defaults(func=cmd_add)

    listing = commands.add_parser(
        "list", help="show the rules and their counters", description="Show the rules."
    )
    listing.add_argument("--json", action="store_true", help="print the rules as JSON")
    listing.set_defaults(func=cmd_list)

    clear = commands.add_parser("clear", help="remove every rule", description="Remove every rule.")
    clear.add_argument("--json", action="store_true", help="print the result as JSON")
    clear.set_defaults(func=cmd_clear)


def rule_document(args: argparse.Namespace) -> dict[str, Any]:
    fields = {
        "service": args.service,
        "operation": args.operation,
        "error": args.error,
        "latency_ms": args.latency_ms,
        "rate": args.rate,
        "seed": args.seed,
        "function": args.function,
        "count": args.count,
    }
    return {key: value for key, value in fields.items() if value is not None}


def cmd_add(args: argparse.Namespace) -> int:
    document = rule_document(args)
    try:
        parse_rule(document)
    except RuleError as error:
        raise CliError(_flags(str(error))) from None
    _, answer = _request("POST", document)
    rule = answer["rule"]
    if args.json:
        print(json.dumps(rule, indent=2, sort_keys=True))
    else:
        print_rules([rule], out=sys.stdout)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    _, answer = _request("GET")
    rules = answer["rules"]
    if args.json:
        print(json.dumps({"rules": rules}, indent=2, sort_keys=True))
    elif rules:
        print_rules(rules, out=sys.stdout)
    else:
        print("no chaos rules", file=sys.stderr)
    return 0


def cmd_clear(args: argparse.Namespace) -> int:
    _, answer = _request("DELETE")
    if args.json:
        print(json.dumps(answer, sort_keys=True))
    else:
        print(f"cleared {answer['cleared']} chaos rule(s)", file=sys.stderr)
    return 0


COLUMNS = ("ID", "SERVICE", "OPERATION", "FUNCTION", "FAULT", "RATE", "SEED", "COUNT", "MATCHED", "INJECTED")


def print_rules(rules: list[dict[str, Any]], *, out: TextIO) -> None:
    rows = [
        (
            rule["id"],
            rule["service"],
            rule["operation"],
            rule.get("function") or "-",
            rule["fault"],
            f"{rule['rate']:g}",
            str(rule["seed"]),
            "-"
            if rule.get("count") is None
            else str(rule["count"]) + (" (spent)" if rule.get("exhausted") else ""),
            str(rule["matched"]),
            str(rule["injected"]),
        )
        for rule in rules
    ]
    widths = [max(len(row[index]) for row in [COLUMNS, *rows]) for index in range(len(COLUMNS))]
    for row in [COLUMNS, *rows]:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip(), file=out
        )


def _flags(message: str) -> str:
    # The rule's field names as the command's flags.
    for field, flag in (("latency_ms", "--latency-ms"), ("rate", "--rate"), ("count", "--count")):
        if message.startswith(field + " "):
            return flag + message[len(field) :]
    for field in ("service", "operation", "error", "function"):
        if message.startswith(field + " "):
            return "--" + message
    return message


def _request(method: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    state = cloud.running(local_home())
    if state is None:
        raise CliError("the local cloud is not running: start it with `pipeline local up`", exit_code=1)
    request = urllib.request.Request(  # noqa: S310 - http://localhost only
        f"{state.endpoint}{CONTROL_PATH}",
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_SECONDS) as response:  # noqa: S310
            answer: dict[str, Any] = json.loads(response.read())
            return int(response.status), answer
    except urllib.error.HTTPError as error:
        message = _api_error(error)
        if message is None:
            # moto itself answered (404 or 500 HTML): a server from before the chaos API.
            raise CliError(
                f"the local cloud at {state.endpoint} has no chaos API (started by an older version?): "
                "restart it with `pipeline local down` and `pipeline local up`",
                exit_code=1,
            ) from None
        raise CliError(_flags(message), exit_code=2 if error.code == 400 else 1) from None
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise CliError(f"the local cloud at {state.endpoint} did not answer: {error}", exit_code=1) from None


def _api_error(error: urllib.error.HTTPError) -> str | None:
    """The chaos API's `{"error": ...}` message, or None when something else answered."""
    try:
        document = json.loads(error.read())
    except ValueError:
        return None
    if isinstance(document, dict) and isinstance(document.get("error"), str):
        return str(document["error"])
    return None
