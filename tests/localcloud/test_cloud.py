"""`localcloud.cloud` and `localcloud.deploy`: start, reuse and stop the local cloud; deploy with the CDK CLI."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from localcloud import cloud, deploy
from localcloud.state import DUMMY_CREDENTIALS, read_state, state_path
from tests.localcloud.support import client

PROJECT_DIR = Path(__file__).resolve().parents[2]
OUTPUT_KEYS = {
    "IngestQueueUrl",
    "DeadLetterQueueUrl",
    "JobTableName",
    "DataBucketName",
    "StateMachineArn",
    "AlarmTopicArn",
}


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
    state = cloud.up(home=home, deploy=False, progress=messages.append)
    assert state.outputs == {}
    assert read_state(home) == state
    assert cloud.answers(state.endpoint)
    assert os.getsid(state.pid) == state.pid  # its own session: it outlives the terminal
    assert any("starting the local cloud" in message for message in messages)

    again = cloud.up(home=home, deploy=False)
    assert again.pid == state.pid

    with pytest.raises(cloud.LocalCloudError, match="already runs on port"):
        cloud.up(home=home, port=cloud.free_port(), deploy=False)

    assert cloud.down(home) is True
    assert not pid_alive(state.pid)
    assert not state_path(home).exists()


def test_up_refuses_a_port_in_use(home: Path) -> None:
    state = cloud.up(home=home / "first", deploy=False)
    try:
        with pytest.raises(cloud.LocalCloudError, match="already in use"):
            cloud.up(home=home / "second", port=state.port, deploy=False)
    finally:
        cloud.down(home / "first")


def test_stale_state_is_replaced(home: Path) -> None:
    state_path(home).write_text(json.dumps({"port": 1, "pid": 999_999_999}))
    state = cloud.up(home=home, deploy=False)
    assert state.pid != 999_999_999
    assert cloud.answers(state.endpoint)


def test_cli_environment_keeps_host_credentials_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_PROFILE", "production")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "real-token")
    monkeypatch.setenv("CDK_DEFAULT_ACCOUNT", "999999999999")
    env = deploy.cli_environment("http://localhost:4566")
    assert "AWS_PROFILE" not in env
    assert "AWS_SESSION_TOKEN" not in env
    assert "CDK_DEFAULT_ACCOUNT" not in env
    assert env["AWS_ENDPOINT_URL"] == "http://localhost:4566"
    assert env["AWS_ACCESS_KEY_ID"] == DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"]
    assert env["PATH"].split(os.pathsep)[0].endswith("bin")


def test_a_failed_cli_step_is_reported_with_its_output_tail(tmp_path: Path) -> None:
    fake_project = tmp_path / "project"
    cdk = fake_project / "node_modules" / ".bin" / "cdk"
    cdk.parent.mkdir(parents=True)
    cdk.write_text(
        "#!/bin/sh\necho 'Synthesis failed'\necho '❌  Stack X failed: ValidationError: boom'\nexit 1\n"
    )
    cdk.chmod(0o755)
    with pytest.raises(deploy.DeployError) as raised:
        deploy.run_cdk(
            ["deploy"], env=dict(os.environ), project_dir=fake_project, log_path=tmp_path / "deploy.log"
        )
    message = str(raised.value)
    assert "`cdk deploy` failed (exit 1)" in message
    assert "ValidationError: boom" in message
    assert "Synthesis failed" in (tmp_path / "deploy.log").read_text()


def test_a_missing_cli_says_how_to_install_it(tmp_path: Path) -> None:
    with pytest.raises(deploy.DeployError, match="make install"):
        deploy.run_cdk(["deploy"], env={}, project_dir=tmp_path, log_path=tmp_path / "deploy.log")


@pytest.mark.integration
def test_up_deploys_the_cdk_app_and_runs_its_code(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCALCLOUD_HOME", str(home))
    started = time.monotonic()
    state = cloud.up()
    cold_seconds = time.monotonic() - started

    assert set(state.outputs) == OUTPUT_KEYS
    assert read_state(home) == state
    assert state.outputs["StateMachineArn"].endswith(":stateMachine:resilient-pipeline-local-segmented-job")
    sfn = client(state.endpoint, "stepfunctions")
    assert sfn.describe_state_machine(stateMachineArn=state.outputs["StateMachineArn"])["status"] == "ACTIVE"
    client(state.endpoint, "dynamodb").describe_table(TableName=state.outputs["JobTableName"])
    client(state.endpoint, "sqs").get_queue_attributes(
        QueueUrl=state.outputs["IngestQueueUrl"], AttributeNames=["RedrivePolicy"]
    )

    lam = client(state.endpoint, "lambda")
    worker = next(f for f in lam.list_functions()["Functions"] if f["Handler"] == "handlers.worker.handler")
    response = lam.invoke(
        FunctionName=worker["FunctionName"],
        Payload=json.dumps(
            {
                "job_id": "no-such-job",
                "attempt": 1,
                "execution": 0,
                "segments_in_execution": 0,
                "retry_count": 0,
            }
        ),
    )
    payload = json.loads(response["Payload"].read())
    if (PROJECT_DIR / "lambda_src" / "handlers" / "worker.py").exists():
        # The deployed zip ran (its frames are under the cloud's functions/ directory) and raised one of
        # the project's own exception classes for a job that has no record.
        assert response.get("FunctionError") == "Unhandled", payload
        assert not payload["errorType"].startswith("Runtime."), payload
        assert any(str(home / "functions") in frame for frame in payload["stackTrace"]), payload

    # `up` again: the same process, deployed again (direct method), same outputs.
    started = time.monotonic()
    again = cloud.up()
    warm_seconds = time.monotonic() - started
    assert again.pid == state.pid
    assert again.outputs == state.outputs
    print(f"cold up {cold_seconds:.1f}s, redeploy {warm_seconds:.1f}s")

    assert cloud.down() is True
    assert not pid_alive(state.pid)
