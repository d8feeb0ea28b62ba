"""Hooks for the whole test process: how `make test` spreads the suite over worker processes, each tier's
time, and one botocore data loader.

Workers (`pytest -n N --dist loadgroup`, pytest-xdist): every test gets an `xdist_group`, so that what shares
a fixture runs in one process. Tests that share a session-scoped fixture of this project (the integration
tier's deployed local cloud, the infra tier's synthesized templates) form one group, found by following the
fixtures they use (two tests sharing any of them are in the same group), so each expensive fixture is built
once; every other test is grouped by its file, so a module's fixture (a local cloud server, a moto backend)
is built once too. Run without `-n`, the groups change nothing.

Tier times: a tier is a folder under tests/ (`make test-<tier>` runs one). With workers its tests interleave
with other tiers', so each is reported as its wall-clock span (first test's start to last test's end) and
the sum of its tests' own times.

One botocore data loader for every boto3 session made in this process: each new session builds its own
loader, which parses every service model, paginator and endpoint rule set again (about 15 ms a file, a dozen
files a client). The handler tests make a session per test (each test sets its own environment), so parsing
the same read-only files was about half of their time. The loader holds only what it read from botocore's own
data files, keyed by the search path: sharing it changes no answer. Subprocesses (the local cloud, its Lambda
environments) are untouched: their cold starts stay what they are.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import botocore.loaders
import botocore.session
import pytest

from tests import worker_groups

ROOT = Path(__file__).resolve().parents[1]

# tests/unit/test_worker_groups.py runs pytest on generated test files.
pytest_plugins = ("pytester",)


def pytest_configure(config: pytest.Config) -> None:
    botocore.session.create_loader = functools.cache(botocore.loaders.create_loader)
    config.pluginmanager.register(TierClock(), "tier-clock")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    worker_groups.assign(items)


@dataclass
class _Span:
    start: float
    stop: float
    spent: float
    tests: int


class TierClock:
    def __init__(self) -> None:
        self.spans: dict[str, _Span] = {}

    @staticmethod
    def tier_of(nodeid: str) -> str:
        parts = Path(nodeid.split("::", maxsplit=1)[0]).parts
        return parts[1] if len(parts) > 2 and parts[0] == "tests" else parts[0]

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not report.start:
            return
        tier = self.tier_of(report.nodeid)
        span = self.spans.get(tier)
        if span is None:
            self.spans[tier] = _Span(report.start, report.stop, report.duration, 0)
            span = self.spans[tier]
        else:
            span.start = min(span.start, report.start)
            span.stop = max(span.stop, report.stop)
            span.spent += report.duration
        if report.when == "call" or (report.when == "setup" and report.skipped):
            span.tests += 1

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.spans:
            return
        terminalreporter.section("time per tier")
        for tier, span in sorted(self.spans.items(), key=lambda kv: kv[1].start):
            terminalreporter.write_line(
                f"{tier:<12} {span.tests:>5} tests  {span.stop - span.start:7.1f} s from first start to last end"
                f"  {span.spent:7.1f} s in its tests"
            )
