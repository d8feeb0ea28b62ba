"""`localcloud.core.cloud`: start, reuse and stop the local cloud, and run a caller's deploy step in it."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from localcloud.core import cloud
from localcloud.core.state import LocalCloudState, read_state, state_path
from tests.localcloud.support import client


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    # Never leave a server behind, whatever the test did.
    cloud.down(tmp_path)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_down_without_a_cloud_is_a_no_op(home: Path) -> None:
    assert cloud.down(home) is False


def test_up_without_deploy_starts_a_detached_server_and_down_stops_it(home: Path) -> None:
    messages: list[str] = []
    state = cloud.up(home=home, progress=messages.append)
    assert state.outputs == {}
    assert read_state(home) == state
    assert cloud.answers(state.endpoint)
    assert os.getsid(state.pid) == state.pid  # its own session: it outlives the terminal
    assert any("starting the local cloud" in message for message in messages)

    again = cloud.up(home=home)
    assert again.pid == state.pid

    with pytest.raises(cloud.LocalCloudError, match="already runs on port"):
        cloud.up(home=home, port=cloud.free_port())

    assert cloud.down(home) is True
    assert not pid_alive(state.pid)
    assert not state_path(home).exists()
    # The server exits without the interpreter's teardown (server.exit_now): its log is complete anyway.
    last_line = (home / "server.log").read_text().splitlines()[-1]
    assert last_line.endswith(f"local cloud on port {state.port} stopped")


def test_up_refuses_a_port_in_use(home: Path) -> None:
    state = cloud.up(home=home / "first")
    try:
        with pytest.raises(cloud.LocalCloudError, match="already in use"):
            cloud.up(home=home / "second", port=state.port)
    finally:
        cloud.down(home / "first")


def test_stale_state_is_replaced(home: Path) -> None:
    state_path(home).write_text(json.dumps({"port": 1, "pid": 999_999_999}))
    state = cloud.up(home=home)
    assert state.pid != 999_999_999
    assert cloud.answers(state.endpoint)


def test_a_deploy_step_runs_in_the_cloud_and_its_outputs_are_recorded(home: Path) -> None:
    calls: list[tuple[int, Path]] = []

    def deploy(state: LocalCloudState, deploy_home: Path, progress: cloud.Progress) -> dict[str, str]:
        # The cloud answers while its deploy step runs, and the step finds it through the state file.
        assert read_state(deploy_home) == state
        queue = client(state.endpoint, "sqs").create_queue(QueueName=f"q{len(calls)}")["QueueUrl"]
        calls.append((state.pid, deploy_home))
        progress("deployed one queue")
        return {"QueueUrl": queue}

    messages: list[str] = []
    state = cloud.up(home=home, deploy=deploy, progress=messages.append)
    assert state.outputs == {"QueueUrl": state.outputs["QueueUrl"]}
    assert state.outputs["QueueUrl"].endswith("/q0")
    assert read_state(home) == state
    assert "deployed one queue" in messages

    again = cloud.up(home=home, deploy=deploy)  # a running cloud: the step runs again
    assert again.pid == state.pid
    assert again.outputs["QueueUrl"].endswith("/q1")
    assert calls == [(state.pid, home.resolve()), (state.pid, home.resolve())]
    # Without a step, a running cloud keeps the outputs it recorded.
    assert cloud.up(home=home) == again


def test_a_failed_deploy_step_leaves_a_cloud_that_down_stops(home: Path) -> None:
    def deploy(state: LocalCloudState, deploy_home: Path, progress: cloud.Progress) -> dict[str, str]:
        raise cloud.LocalCloudError("the deploy failed")

    with pytest.raises(cloud.LocalCloudError, match="the deploy failed"):
        cloud.up(home=home, deploy=deploy)
    recorded = read_state(home)
    assert recorded is not None and recorded.outputs == {}
    assert cloud.answers(recorded.endpoint)
    assert cloud.down(home) is True
    assert not pid_alive(recorded.pid)


def test_a_scratch_home_is_deleted_with_its_stopped_cloud_when_the_run_finishes(tmp_path: Path) -> None:
    # `make bench` and `make chaos` made a home per run in /tmp and left it: 113 MB a job-rate run.
    heard: list[str] = []
    with cloud.scratch_home("run-", parent=tmp_path, say=heard.append) as home:
        state = cloud.up(home=home)
        (home / "input.jsonl").write_text("{}\n")
    assert not home.exists()
    assert not pid_alive(state.pid)
    assert heard == []


def test_a_scratch_home_is_kept_and_named_when_the_run_fails(tmp_path: Path) -> None:
    heard: list[str] = []
    with pytest.raises(SystemExit), cloud.scratch_home("run-", parent=tmp_path, say=heard.append) as home:
        (home / "input.jsonl").write_text("{}\n")
        raise SystemExit("job-7 ended FAILED")
    assert (home / "input.jsonl").is_file()
    assert heard == [f"the local cloud's home is kept for a look: {home}"]
