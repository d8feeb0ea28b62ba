"""Which worker process runs each test under `make test` (pytest-xdist, `--dist loadgroup`): tests that share
a session-scoped fixture of this project run in one worker, every other test with the rest of its file.
tests/conftest.py says why."""

from __future__ import annotations

import pytest


def _shared_fixtures(item: pytest.Item) -> list[str]:
    """The session-scoped fixtures defined in this project's conftests and test modules that `item` uses
    (a plugin's or pytest's own, such as `tmp_path_factory`, have an empty base id: cheap, and per worker)."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return []
    shared = []
    for name in info.names_closure:
        definitions = info.name2fixturedefs.get(name)
        if not definitions:
            continue
        definition = definitions[-1]
        if definition.scope == "session" and definition.baseid:
            shared.append(name)
    return shared


def assign(items: list[pytest.Item]) -> None:
    # Union-find over the shared fixtures: a test using `pipeline` and one using `local_cloud` share the
    # cloud (`pipeline` depends on it), so both land in one group, named after its first fixture.
    parent: dict[str, str] = {}

    def find(name: str) -> str:
        while parent.setdefault(name, name) != name:
            name = parent[name]
        return name

    uses = {item.nodeid: _shared_fixtures(item) for item in items}
    for names in uses.values():
        for other in names[1:]:
            parent[find(other)] = find(names[0])
    for item in items:
        names = uses[item.nodeid]
        group = f"session:{find(names[0])}" if names else item.nodeid.split("::", maxsplit=1)[0]
        item.add_marker(pytest.mark.xdist_group(group))
