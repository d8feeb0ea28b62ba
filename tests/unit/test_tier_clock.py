"""The per-tier times `make test` prints (tests/conftest.py): which tier a test belongs to
(tests/worker_groups.py), and each tier's span and total from the reports pytest hands over."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from tests.conftest import TierClock
from tests.worker_groups import tier_of


def report(nodeid: str, when: str, start: float, stop: float, *, skipped: bool = False) -> Any:
    return SimpleNamespace(
        nodeid=nodeid, when=when, start=start, stop=stop, duration=stop - start, skipped=skipped
    )


def test_a_test_belongs_to_the_folder_under_tests() -> None:
    assert tier_of("tests/integration/test_iam.py::test_x[a/b]") == "integration"
    # As xdist names a test of a group in the controller's reports.
    assert tier_of("tests/integration/test_iam.py::test_x@session:local_cloud") == "integration"
    assert tier_of("examples/user-code/tests/test_masking.py::test_y") == "examples"


def test_each_tier_spans_its_first_start_to_its_last_end_and_counts_its_tests() -> None:
    clock = TierClock()
    for item in (
        report("tests/unit/test_a.py::t1", "setup", 10.0, 10.5),
        report("tests/unit/test_a.py::t1", "call", 10.5, 12.0),
        report("tests/unit/test_a.py::t1", "teardown", 12.0, 12.5),
        report("tests/infra/test_b.py::t2", "setup", 12.5, 13.0, skipped=True),
        report("tests/unit/test_a.py::t3", "call", 20.0, 21.0),
    ):
        clock.pytest_runtest_logreport(item)
    unit, infra = clock.spans["unit"], clock.spans["infra"]
    assert (unit.stop - unit.start, unit.spent, unit.tests) == (11.0, 3.5, 2)
    assert (infra.tests, infra.spent) == (1, 0.5)
