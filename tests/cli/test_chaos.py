"""`pipeline local chaos add|list|clear` against a moto server with the chaos middleware."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from localcloud.core import chaos
from localcloud.core.state import LocalCloudState, write_state
from pipeline_cli.commands import chaos as chaos_cli

from .conftest import LocalCloud, Result

Run = Callable[..., Result]


@pytest.fixture
def store(moto_server: int) -> Iterator[chaos.ChaosStore]:
    """The middleware in front of the module's moto server, and a state file that points at it."""
    rules = chaos.ChaosStore()
    undo = chaos.install(rules)
    write_state(LocalCloudState(port=moto_server, pid=1))
    try:
        yield rules
    finally:
        undo()


def test_add_list_clear(store: chaos.ChaosStore, run: Run) -> None:
    added = run(
        "local", "chaos", "add", "--service", "s3", "--operation", "GetObject", "--error", "SlowDown",
        "--rate", "0.3", "--seed", "42", "--count", "5",
    )  # fmt: skip
    assert added.code == 0, added.err
    header, row = added.out.splitlines()
    assert header.split() == [
        "ID",
        "SERVICE",
        "OPERATION",
        "TARGET",
        "FAULT",
        "RATE",
        "SEED",
        "COUNT",
        "MATCHED",
        "INJECTED",
    ]
    assert row.split() == ["r1", "s3", "GetObject", "-", "SlowDown", "503", "0.3", "42", "5", "0", "0"]

    crash = run(
        "local", "chaos", "add", "--service", "lambda", "--operation", "Invoke", "--function", "worker",
        "--error", "crash", "--json",
    )  # fmt: skip
    assert crash.code == 0, crash.err
    assert json.loads(crash.out)["function"] == "worker"

    listed = run("local", "chaos", "list", "--json")
    assert listed.code == 0
    rules = json.loads(listed.out)["rules"]
    assert [(rule["id"], rule["service"], rule["fault"]) for rule in rules] == [
        ("r1", "s3", "SlowDown 503"),
        ("r2", "lambda", "crash"),
    ]
    assert rules == store.rules()

    table = run("local", "chaos", "list")
    assert [line.split()[0] for line in table.out.splitlines()] == ["ID", "r1", "r2"]

    cleared = run("local", "chaos", "clear")
    assert (cleared.code, cleared.err) == (0, "cleared 2 chaos rule(s)\n")
    empty = run("local", "chaos", "list")
    assert (empty.code, empty.out, empty.err) == (0, "", "no chaos rules\n")


def test_a_rule_applies_to_the_cli_itself(store: chaos.ChaosStore, local_cloud: LocalCloud, run: Run) -> None:
    assert run("jobs").code == 0
    added = run(
        "local", "chaos", "add", "--service", "dynamodb", "--operation", "Query",
        "--error", "ProvisionedThroughputExceededException",
    )  # fmt: skip
    assert added.code == 0, added.err

    result = run("jobs")

    assert result.code != 0
    assert "ProvisionedThroughputExceededException" in result.err and "Traceback" not in result.err
    [rule] = json.loads(run("local", "chaos", "list", "--json").out)["rules"]
    assert rule["injected"] >= 1 and rule["injected"] == rule["matched"]


INVALID = [
    (
        ["--service", "s4", "--operation", "GetObject", "--error", "SlowDown"],
        "error: unknown service 's4' (one of: dynamodb, events, lambda, s3, sns, sqs, stepfunctions)",
    ),
    (
        ["--service", "s3", "--operation", "GetObjekt", "--error", "SlowDown"],
        "error: unknown operation 'GetObjekt' for s3; did you mean GetObject or GetObjectAcl or PutObject?",
    ),
    (
        ["--service", "s3", "--operation", "GetObject", "--error", "SlowDown", "--rate", "1.5"],
        "error: --rate must be a number from 0 to 1, not 1.5",
    ),
    (
        ["--service", "s3", "--operation", "GetObject", "--latency-ms", "-5"],
        "error: --latency-ms must not be negative (got -5)",
    ),
    (
        ["--service", "s3", "--operation", "GetObject", "--error", "SlowDown", "--count", "0"],
        "error: --count must be at least 1 (got 0)",
    ),
    (
        ["--service", "s3", "--operation", "GetObject", "--error", "crash"],
        "error: --error crash applies to --service lambda only (it acts on a function's environment)",
    ),
    (
        ["--service", "s3", "--operation", "*", "--error", "SlowDown", "--function", "worker"],
        "error: --function applies to --service lambda only, not s3",
    ),
    (
        ["--service", "lambda", "--operation", "Invoke", "--error", "crash", "--function", "*"],
        'error: --function must be a function name or ARN, not "*"',
    ),
    (
        ["--service", "s3", "--operation", "GetObject"],
        "error: nothing to inject: give an error, a latency, or both",
    ),
]


@pytest.mark.parametrize(("flags", "message"), INVALID)
def test_malformed_rules_are_one_line_errors_even_without_a_cloud(
    run: Run, flags: list[str], message: str
) -> None:
    result = run("local", "chaos", "add", *flags)

    assert (result.code, result.out, result.err) == (2, "", message + "\n")


def test_the_server_refusal_is_shown_the_same_way(
    store: chaos.ChaosStore, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A CLI that validated nothing: the server's 400 is still one line, with the CLI's flag names.
    monkeypatch.setattr(chaos_cli, "parse_rule", lambda document: None)

    result = run("local", "chaos", "add", "--service", "s3", "--operation", "GetObject", "--latency-ms", "-1")

    assert (result.code, result.err) == (2, "error: --latency-ms must not be negative (got -1)\n")
    assert store.rules() == []


def test_without_a_cloud_each_command_says_so(run: Run, tmp_path: Path) -> None:
    for argv in (
        ["add", "--service", "s3", "--operation", "GetObject", "--error", "SlowDown"],
        ["list"],
        ["clear"],
    ):
        result = run("local", "chaos", *argv)
        assert (result.code, result.err) == (
            1,
            "error: the local cloud is not running: start it with `pipeline local up`\n",
        )


def test_a_cloud_without_the_chaos_api_says_how_to_get_it(moto_server: int, run: Run) -> None:
    write_state(LocalCloudState(port=moto_server, pid=1))

    for argv in (["list"], ["add", "--service", "s3", "--operation", "*", "--latency-ms", "1"], ["clear"]):
        result = run("local", "chaos", *argv)
        assert result.code == 1, argv
        assert "has no chaos API" in result.err and "pipeline local down" in result.err
        assert len(result.err.splitlines()) == 1
