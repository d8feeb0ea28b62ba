"""One cell of the fault matrix (`make chaos`) in `make test`: a crashing worker environment and a job of
known content on the session's local cloud, checked by the matrix's own checker."""

from __future__ import annotations

import pytest

from faultmatrix.cells import CELLS_BY_KEY, Cell, handful
from faultmatrix.run import Harness
from pipeline_cli.aws import Pipeline
from pipeline_cli.scenarios import ScenarioRun

pytestmark = pytest.mark.integration


def test_one_job_under_worker_crashes_meets_every_target(
    pipeline: Pipeline, demo_runs: dict[str, ScenarioRun]
) -> None:
    f6 = CELLS_BY_KEY["F6"]
    # One job, and crashes often enough that a few surely happen (F6 itself: 10% over three jobs).
    cell = Cell(
        key="F6-smoke",
        title=f6.title,
        rules=({**f6.rules[0], "rate": 0.3, "count": 3},),
        jobs=handful(count=1, size=6000),
    )
    report = Harness(pipeline, exclusive=False).run_cell(cell, seed=7)
    assert report.ok, report.problems()
    assert report.notes == ["3 fault(s) injected"]
