"""`make test`'s worker groups (tests/worker_groups.py): tests sharing a session fixture of the project land in
one group, found through the fixtures they depend on; every other test is grouped by its file. Checked on a
generated project, so the control cases are in it: a test whose only session fixture is pytest's own, and
a session fixture used by one file only."""

from __future__ import annotations

import pytest

from tests import worker_groups

CONFTEST = """
import pytest

@pytest.fixture(scope="session")
def cloud():
    return "cloud"

@pytest.fixture(scope="session")
def deployed(cloud):
    return cloud + " deployed"

@pytest.fixture(scope="session")
def templates():
    return "templates"
"""


def groups(pytester: pytest.Pytester) -> dict[str, str]:
    pytester.mkpydir("suite")
    (pytester.path / "suite" / "conftest.py").write_text(CONFTEST)
    (pytester.path / "suite" / "test_a.py").write_text(
        "def test_uses_the_cloud(cloud): pass\ndef test_plain(): pass\n"
    )
    (pytester.path / "suite" / "test_b.py").write_text(
        "def test_uses_what_depends_on_the_cloud(deployed): pass\n"
        "def test_uses_pytests_own_session_fixture(tmp_path_factory): pass\n"
    )
    (pytester.path / "suite" / "test_c.py").write_text(
        "def test_templates(templates): pass\ndef test_templates_again(templates): pass\n"
    )
    items, _ = pytester.inline_genitems("suite")
    worker_groups.assign(items)
    found = {}
    for item in items:
        marker = item.get_closest_marker("xdist_group")
        assert marker is not None, item.nodeid
        found[item.nodeid.split("::")[-1]] = marker.args[0]
    return found


def test_tests_sharing_a_session_fixture_through_any_dependency_share_a_group(
    pytester: pytest.Pytester,
) -> None:
    found = groups(pytester)
    assert found["test_uses_the_cloud"] == found["test_uses_what_depends_on_the_cloud"]
    assert found["test_uses_the_cloud"].startswith("session:")
    assert found["test_templates"] == found["test_templates_again"] != found["test_uses_the_cloud"]


def test_other_tests_are_grouped_by_their_file(pytester: pytest.Pytester) -> None:
    found = groups(pytester)
    assert found["test_plain"] == "suite/test_a.py"
    # tmp_path_factory is session-scoped but pytest's own: it does not tie its test to anything.
    assert found["test_uses_pytests_own_session_fixture"] == "suite/test_b.py"
