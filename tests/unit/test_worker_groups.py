"""`make test`'s worker groups (tests/worker_groups.py): tests sharing a session fixture of the project land in
one group, found through the fixtures they depend on; every other test is grouped by its file. Checked on a
generated project, so the control cases are in it: a test whose only session fixture is pytest's own, and
a session fixture used by one file only."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import worker_groups

PROJECT_DIR = Path(__file__).resolve().parents[2]

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


def groups(pytester: pytest.Pytester, **extra: str) -> dict[str, str]:
    """Each generated test's group; `extra`: more test files of the suite, by name."""
    pytester.mkpydir("suite")
    for name, text in extra.items():
        (pytester.path / "suite" / f"{name}.py").write_text(text)
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
    # Named after the session fixture most of its tests use (`deployed` depends on `cloud`).
    assert found["test_uses_the_cloud"] == "session:cloud"
    assert found["test_templates"] == found["test_templates_again"] != found["test_uses_the_cloud"]


def test_other_tests_are_grouped_by_their_file(pytester: pytest.Pytester) -> None:
    found = groups(pytester)
    assert found["test_plain"] == "suite/test_a.py"
    # tmp_path_factory is session-scoped but pytest's own: it does not tie its test to anything.
    assert found["test_uses_pytests_own_session_fixture"] == "suite/test_b.py"


MODULE_FIXTURE_FILE = """
import pytest

@pytest.fixture(scope="module")
def server():
    return "server"

def test_server_and_the_cloud(server, cloud): pass
def test_server_only(server): pass
def test_nothing_shared(): pass
"""


def test_a_modules_tests_sharing_its_module_fixture_stay_together_even_when_one_uses_the_session(
    pytester: pytest.Pytester,
) -> None:
    found = groups(pytester, test_d=MODULE_FIXTURE_FILE)
    # The server is built once: its two tests are in one group, the session's (test_a's cloud test is in it).
    assert found["test_server_only"] == found["test_server_and_the_cloud"] == found["test_uses_the_cloud"]
    assert found["test_server_only"].startswith("session:")
    # A test of that file that shares nothing keeps the file's own group.
    assert found["test_nothing_shared"] == "suite/test_d.py"


XDIST_CONFTEST = """
import os
import pytest

# The project's own hook, as tests/conftest.py registers it.
from tests.conftest import pytest_collection_modifyitems  # noqa: F401

@pytest.fixture(scope="module")
def server(request):
    with open(os.environ["BUILT_LOG"], "a") as log:
        log.write(request.module.__name__ + "\\n")
    return "server"
"""


def test_under_xdist_a_module_fixture_is_built_once_per_run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real two-worker run: each module's fixture is built once, where grouping that came too late (after
    xdist read the markers) let the workers take a module's tests one by one and each build it."""
    built = pytester.path / "built.log"
    monkeypatch.setenv("BUILT_LOG", str(built))
    monkeypatch.setenv("PYTHONPATH", str(PROJECT_DIR))
    pytester.makeconftest(XDIST_CONFTEST)
    for module in ("one", "two"):
        pytester.makepyfile(
            **{f"test_{module}": "\n".join(f"def test_{n}(server): pass" for n in range(20)) + "\n"}
        )
    result = pytester.runpytest_subprocess("-n", "2", "--dist", "loadgroup", "-p", "xdist", "-q")
    result.assert_outcomes(passed=40)
    assert sorted(built.read_text().split()) == ["test_one", "test_two"]


def test_groups_are_handed_out_slow_tiers_first_each_group_whole(pytester: pytest.Pytester) -> None:
    """`order`: integration before the local cloud's tier before unit tests; within a tier the session-wide
    group first, then the larger groups; each group's tests together and in their own order."""
    for tier in ("unit", "localcloud", "integration"):
        (pytester.path / "tests" / tier).mkdir(parents=True)
    (pytester.path / "tests" / "conftest.py").write_text(CONFTEST)
    files = {
        "unit/test_u.py": "def test_u1(): pass\ndef test_u2(): pass\n",
        "localcloud/test_small.py": "def test_s1(): pass\n",
        "localcloud/test_large.py": "def test_l1(): pass\ndef test_l2(): pass\ndef test_l3(): pass\n",
        "integration/test_alone.py": "def test_a1(): pass\n",
        "integration/test_cloud.py": "def test_c1(cloud): pass\ndef test_c2(deployed): pass\n",
    }
    for name, text in files.items():
        (pytester.path / "tests" / name).write_text(text)
    items, _ = pytester.inline_genitems("tests")
    worker_groups.order(items, worker_groups.assign(items))
    assert [item.name for item in items] == [
        "test_c1",
        "test_c2",
        "test_a1",
        "test_l1",
        "test_l2",
        "test_l3",
        "test_s1",
        "test_u1",
        "test_u2",
    ]
