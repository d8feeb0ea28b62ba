"""One local cloud per test session: `env=local` deployed with the real CDK CLI into the embedded
emulator, and the demo's five scenarios run through it once (the tests then assert on what happened); and
its fault injection API, for a test that needs a fault."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator

import pytest

from localcloud.core import cloud
from localcloud.core.state import LocalCloudState
from pipeline_cli import local_deploy
from pipeline_cli.aws import Pipeline, connect_local
from pipeline_cli.chaos_api import ChaosRules
from pipeline_cli.scenarios import ScenarioRun, build_scenarios, run_scenarios


@pytest.fixture(scope="session")
def local_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloudState]:
    home = tmp_path_factory.mktemp("localcloud")
    previous = os.environ.get("LOCALCLOUD_HOME")
    os.environ["LOCALCLOUD_HOME"] = str(home)
    try:
        state = local_deploy.up(home=home)
        yield state
    finally:
        cloud.down(home=home)
        if previous is None:
            os.environ.pop("LOCALCLOUD_HOME", None)
        else:
            os.environ["LOCALCLOUD_HOME"] = previous


@pytest.fixture(scope="session")
def pipeline(local_cloud: LocalCloudState) -> Pipeline:
    return connect_local()


@pytest.fixture(scope="session")
def demo_runs(pipeline: Pipeline) -> dict[str, ScenarioRun]:
    log = io.StringIO()
    runs = run_scenarios(pipeline, build_scenarios("it"), timeout=240, out=log)
    return {run.scenario.key: run for run in runs}


@pytest.fixture
def chaos(pipeline: Pipeline, demo_runs: dict[str, ScenarioRun]) -> Iterator[ChaosRules]:
    # After the demo scenarios (they must not see these faults); cleared whatever the test does.
    assert pipeline.endpoint_url
    faults = ChaosRules(pipeline.endpoint_url)
    faults.clear()
    try:
        yield faults
    finally:
        faults.clear()
