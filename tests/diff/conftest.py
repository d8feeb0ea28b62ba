"""Fixture template pairs (tests/diff/fixtures/CASE/{old,new}/STACK.template.json), loaded as the stacks of
one environment, and the comparison of each pair."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra_diff import Report, StackTemplate, compare

FIXTURES = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).resolve().parents[2]
CASES = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())


def load_side(case: str, side: str) -> dict[str, StackTemplate]:
    stacks = {}
    for path in sorted((FIXTURES / case / side).glob("*.template.json")):
        name = path.name.removesuffix(".template.json")
        stacks[name] = StackTemplate(name=name, template=json.loads(path.read_text()))
    return stacks


def compare_case(case: str, env: str = "dev") -> Report:
    return compare({env: load_side(case, "old")}, {env: load_side(case, "new")})


@pytest.fixture(params=CASES)
def case(request: pytest.FixtureRequest) -> str:
    return str(request.param)
