"""Which worker process runs each test under `make test` (pytest-xdist, `--dist loadgroup`): tests that share
a fixture of this project wider than a test run in one worker; every other test runs with the rest of its
file. tests/conftest.py says why."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

# The order groups are handed to workers in, by the tier of their first test: the slow tiers first, each of
# whose groups builds a local cloud or runs jobs on one, so that the last groups to start are short ones and
# the workers end together (xdist's own order, by number of tests, started the one-test integration modules of
# 35 s last, while the other worker sat idle).
TIER_ORDER = ("integration", "localcloud", "cli", "diff", "infra", "handlers", "examples", "unit", "console")

# Scopes whose fixture value outlives one test. A module- or class-scoped fixture ties its users to their file
# (a class is inside one); a session-scoped one ties every test that uses it, across files.
_FILE_SCOPES = frozenset({"module", "class", "package"})


def _shared_keys(item: pytest.Item) -> list[str]:
    """What `item` shares with other tests through this project's fixtures: `session:NAME` for each
    session-scoped fixture it uses, and its file when it uses a module-, class- or package-scoped one. A
    plugin's or pytest's own fixtures (such as `tmp_path_factory`) have an empty base id: cheap, and per
    worker, they tie nothing."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return []
    sessions, file_bound = [], False
    for name in info.names_closure:
        definitions = info.name2fixturedefs.get(name)
        if not definitions:
            continue
        definition = definitions[-1]
        if not definition.baseid:
            continue
        if definition.scope == "session":
            sessions.append(f"session:{name}")
        elif definition.scope in _FILE_SCOPES:
            file_bound = True
    return sessions + ([_file(item)] if file_bound else [])


def _file(item: pytest.Item) -> str:
    return item.nodeid.split("::", maxsplit=1)[0]


def assign(items: list[pytest.Item]) -> dict[str, str]:
    # Union-find over what tests share: a test using `pipeline` and one using `local_cloud` share the cloud
    # (`pipeline` depends on it); a module's tests share its module fixture, even when one of them also uses
    # the session's cloud.
    parent: dict[str, str] = {}

    def find(key: str) -> str:
        while parent.setdefault(key, key) != key:
            key = parent[key]
        return key

    keys = {item.nodeid: _shared_keys(item) for item in items}
    for shared in keys.values():
        for other in shared[1:]:
            parent[find(other)] = find(shared[0])
    # A group is named after the session fixture most of its tests use (the integration tier's is
    # `session:local_cloud`), else after its file.
    uses: dict[str, Counter[str]] = {}
    for shared in keys.values():
        for key in shared:
            uses.setdefault(find(key), Counter())[key] += 1
    names = {
        root: min(counted, key=lambda key: (not key.startswith("session:"), -counted[key], key))
        for root, counted in uses.items()
    }
    groups = {}
    for item in items:
        shared = keys[item.nodeid]
        group = groups[item.nodeid] = names[find(shared[0])] if shared else _file(item)
        item.add_marker(pytest.mark.xdist_group(group))
    return groups


def order(items: list[pytest.Item], groups: dict[str, str]) -> None:
    """Reorders `items` (in place) group by group: groups of slower tiers first (TIER_ORDER), within a tier
    the session-wide groups, then the larger ones; tests keep their order within a group. For
    `--dist loadgroup` with `--no-loadscope-reorder`, which hands groups out in this order."""
    first: dict[str, int] = {}
    size: dict[str, int] = {}
    for position, item in enumerate(items):
        group = groups[item.nodeid]
        first.setdefault(group, position)
        size[group] = size.get(group, 0) + 1

    def rank(group: str) -> tuple[int, bool, int, int]:
        tier = tier_of(items[first[group]].nodeid)
        return (
            TIER_ORDER.index(tier) if tier in TIER_ORDER else len(TIER_ORDER),
            not group.startswith("session:"),
            -size[group],
            first[group],
        )

    ranks = {group: rank(group) for group in first}
    # A stable sort: each group's tests stay in their collected order.
    items.sort(key=lambda item: ranks[groups[item.nodeid]])


def tier_of(nodeid: str) -> str:
    """A test's tier: its folder under tests/, or the top folder of a test outside tests/ (`examples`)."""
    parts = Path(nodeid.split("::", maxsplit=1)[0]).parts
    return parts[1] if len(parts) > 2 and parts[0] == "tests" else parts[0]
