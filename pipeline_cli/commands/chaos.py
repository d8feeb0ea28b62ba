"""`pipeline local chaos add|list|clear`: fault injection rules of the running local cloud.

The rules live in the server process (its HTTP API at /_localcloud/chaos, see `localcloud.core.chaos`); these
commands validate a rule here first, so that a malformed one is refused in one line even before the server
is asked, then call that API (`pipeline_cli.chaos_api`).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from localcloud.core.chaos import SERVICES, RuleError, parse_rule
from pipeline_cli.chaos_api import as_flags, call
from pipeline_cli.errors import CliError


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
    add.add_argument(
        "--resource",
        metavar="PREFIX",
        help="s3 only: restrict to objects whose BUCKET/KEY starts with PREFIX (one job's output, say)",
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
        "resource": args.resource,
        "count": args.count,
    }
    return {key: value for key, value in fields.items() if value is not None}


def cmd_add(args: argparse.Namespace) -> int:
    document = rule_document(args)
    try:
        parse_rule(document)
    except RuleError as error:
        raise CliError(as_flags(str(error))) from None
    _, answer = call("POST", document)
    rule = answer["rule"]
    if args.json:
        print(json.dumps(rule, indent=2, sort_keys=True))
    else:
        print_rules([rule], out=sys.stdout)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    _, answer = call("GET")
    rules = answer["rules"]
    if args.json:
        print(json.dumps({"rules": rules}, indent=2, sort_keys=True))
    elif rules:
        print_rules(rules, out=sys.stdout)
    else:
        print("no chaos rules", file=sys.stderr)
    return 0


def cmd_clear(args: argparse.Namespace) -> int:
    _, answer = call("DELETE")
    if args.json:
        print(json.dumps(answer, sort_keys=True))
    else:
        print(f"cleared {answer['cleared']} chaos rule(s)", file=sys.stderr)
    return 0


COLUMNS = ("ID", "SERVICE", "OPERATION", "TARGET", "FAULT", "RATE", "SEED", "COUNT", "MATCHED", "INJECTED")


def print_rules(rules: list[dict[str, Any]], *, out: TextIO) -> None:
    rows = [
        (
            rule["id"],
            rule["service"],
            rule["operation"],
            rule.get("function") or rule.get("resource") or "-",
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
