"""Hooks for the whole test process: how `make test` spreads the suite over worker processes, and each
tier's time, printed at the end of every run.

Workers (`pytest -n N --dist loadgroup`, pytest-xdist): every test gets an `xdist_group`, so that what shares
a fixture runs in one process (tests/worker_groups.py). Tests that share a session-scoped fixture of this
project (the integration tier's deployed local cloud, the infra tier's synthesized templates) form one group,
found by following the fixtures they use, so each expensive fixture is built once; a module's tests stay
with their file's group when they share a module fixture (a local cloud server, a moto backend), even when
some of them also use a session one, so that fixture is built once too; every other test is grouped by its
file. Under workers the groups are handed out slow tiers first (tests/worker_groups.py: `order`), so the
workers end together; run without `-n`, the groups and the order change nothing.

A tier is a folder under tests/ (`make test-<tier>` runs one; `examples` is the example team code's own
tests). Its time is the sum of its tests' own times (setup and teardown included), printed with when it ran,
so a slow tier shows without a `--durations` run.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from localcloud.core import botocore_data
from tests import worker_groups

# tests/unit/test_worker_groups.py runs pytest on generated test files.
pytest_plugins = ("pytester",)


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(TierClock(), "tier-clock")
    # Each test makes botocore sessions of its own (moto's mock_aws, the handlers' per-test session).
    botocore_data.share_parsed_files()


# First: xdist's worker reads the `xdist_group` markers in its own pytest_collection_modifyitems, so they must
# be there before it runs (run after it, they were ignored and every test was scheduled on its own).
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    groups = worker_groups.assign(items)
    # In a worker, xdist sets `loadgroup` (and `dist` to "no"); the workers' collections are what it schedules.
    if getattr(config.option, "loadgroup", False):
        worker_groups.order(items, groups)


@dataclass
class _Span:
    start: float
    stop: float
    spent: float = 0.0
    tests: int = 0


class TierClock:
    def __init__(self) -> None:
        self.spans: dict[str, _Span] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not report.start:
            return
        span = self.spans.setdefault(worker_groups.tier_of(report.nodeid), _Span(report.start, report.stop))
        span.start = min(span.start, report.start)
        span.stop = max(span.stop, report.stop)
        span.spent += report.duration
        if report.when == "call" or (report.when == "setup" and report.skipped):
            span.tests += 1

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.spans:
            return
        # With workers, tiers run side by side: a tier's cost is its tests' own time; when it ran (seconds from
        # the first test's start) shows what overlapped.
        began = min(span.start for span in self.spans.values())
        terminalreporter.section("time per tier")
        for tier, span in sorted(self.spans.items(), key=lambda kv: -kv[1].spent):
            terminalreporter.write_line(
                f"{tier:<12} {span.tests:>5} tests  {span.spent:7.1f} s in their setup, call and teardown"
                f"  (ran from {span.start - began:.0f} s to {span.stop - began:.0f} s)"
            )
