"""Which worker process runs each test under `make test` (pytest-xdist, `--dist loadgroup`): tests that share
a fixture of this project wider than a test run in one worker; every other test runs with the rest of its
file. tests/conftest.py says why."""

from __future__ import annotations

from collections import Counter

import pytest

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


def assign(items: list[pytest.Item]) -> None:
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
    for item in items:
        shared = keys[item.nodeid]
        group = names[find(shared[0])] if shared else _file(item)
        item.add_marker(pytest.mark.xdist_group(group))
