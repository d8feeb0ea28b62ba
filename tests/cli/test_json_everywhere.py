"""Every command takes --json, except the few docs/cli.md names with the reason (their output is data
already, or a walkthrough for people)."""

from __future__ import annotations

import argparse

from pipeline_cli.main import build_parser

# docs/cli.md: `output` streams JSON Lines itself; `demo` is a narrated walkthrough; `console` serves
# web pages to people.
WITHOUT_JSON = {"output", "demo", "console"}


def commands(parser: argparse.ArgumentParser, prefix: str = "") -> dict[str, argparse.ArgumentParser]:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return {prefix.strip(): parser}
    found: dict[str, argparse.ArgumentParser] = {}
    for name, sub in subs[0].choices.items():
        found.update(commands(sub, f"{prefix} {name}"))
    return found


def test_every_command_takes_json_but_the_named_few() -> None:
    every = commands(build_parser())
    without = {name for name, parser in every.items() if "--json" not in parser._option_string_actions}
    assert without == WITHOUT_JSON
    assert {"output", "logs", "status", "submit", "diff", "try", "local up", "dlq list"} <= set(every)
