"""`pipeline_cli.local_deploy`: the CDK app's `local` environment deployed into the local cloud with the
real CDK CLI (what `pipeline local up`, `make demo` and the integration tests start from)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localcloud.core import cloud
from localcloud.core.state import DUMMY_CREDENTIALS, read_state
from pipeline_cli import local_deploy
from pipeline_contract import STACK_OUTPUTS
from tests.localcloud.support import client, wait_until

PROJECT_DIR = Path(__file__).resolve().parents[2]
PIPELINE_STACK = "ResilientPipeline-local-Pipeline"
# Every output the contract promises, read back from the local deploy.
OUTPUT_KEYS = set(STACK_OUTPUTS)


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


def test_cli_environment_keeps_host_credentials_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_PROFILE", "production")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "real-token")
    monkeypatch.setenv("CDK_DEFAULT_ACCOUNT", "999999999999")
    env = local_deploy.cli_environment("http://localhost:4566")
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
    with pytest.raises(local_deploy.DeployError) as raised:
        local_deploy.run_cdk(
            ["deploy"], env=dict(os.environ), project_dir=fake_project, log_path=tmp_path / "deploy.log"
        )
    message = str(raised.value)
    assert "`cdk deploy` failed (exit 1)" in message
    assert "ValidationError: boom" in message
    assert "Synthesis failed" in (tmp_path / "deploy.log").read_text()


def test_a_missing_cli_says_how_to_install_it(tmp_path: Path) -> None:
    with pytest.raises(local_deploy.DeployError, match="make install"):
        local_deploy.run_cdk(["deploy"], env={}, project_dir=tmp_path, log_path=tmp_path / "deploy.log")


@pytest.mark.integration
def test_up_deploys_the_cdk_app_and_runs_its_code(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCALCLOUD_HOME", str(home))
    started = time.monotonic()
    state = local_deploy.up()
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

    assert_every_alarm_of_the_template_is_in_cloudwatch(state.endpoint, state.outputs)

    # `up` again: the same process, deployed again (direct method), same outputs.
    started = time.monotonic()
    again = local_deploy.up()
    warm_seconds = time.monotonic() - started
    assert again.pid == state.pid
    assert again.outputs == state.outputs
    print(f"cold up {cold_seconds:.1f}s, redeploy {warm_seconds:.1f}s")

    assert cloud.down() is True
    assert not pid_alive(state.pid)


def assert_every_alarm_of_the_template_is_in_cloudwatch(endpoint: str, outputs: dict[str, str]) -> None:
    """CloudFormation created every alarm of the template, with its references resolved, and the server's
    evaluator takes each out of INSUFFICIENT_DATA."""
    cfn, cw = client(endpoint, "cloudformation"), client(endpoint, "cloudwatch")
    names = {
        r["LogicalResourceId"]: r["PhysicalResourceId"]
        for r in cfn.describe_stack_resources(StackName=PIPELINE_STACK)["StackResources"]
        # .get: moto lists a resource it skipped (the queue policies) without a type or logical id.
        if r.get("ResourceType") == "AWS::CloudWatch::Alarm"
    }
    assert len(names) >= 10
    alarms: dict[str, dict[str, Any]] = {}
    for logical_id, name in names.items():
        assert name.startswith(f"{PIPELINE_STACK}-{logical_id}-")
        (alarms[logical_id],) = cw.describe_alarms(AlarmNames=[name])["MetricAlarms"]
    for logical_id, alarm in alarms.items():
        # Each severity has its topic: AlarmTopicArn pages (critical), WarningAlarmTopicArn does not.
        topic = outputs[
            "AlarmTopicArn" if "[critical]" in alarm["AlarmDescription"] else "WarningAlarmTopicArn"
        ]
        assert alarm["AlarmActions"] == alarm["OKActions"] == [topic], logical_id
        assert alarm["TreatMissingData"] == "notBreaching"
    assert outputs["AlarmTopicArn"] != outputs["WarningAlarmTopicArn"]

    def dimensions(prefix: str) -> dict[str, str]:
        (alarm,) = [a for logical_id, a in alarms.items() if logical_id.startswith(prefix)]
        return {d["Name"]: d["Value"] for d in alarm["Dimensions"]}

    assert dimensions("AlarmsDeadLetterQueueNotEmpty") == {
        "QueueName": outputs["DeadLetterQueueUrl"].rsplit("/", 1)[1]
    }
    assert dimensions("AlarmsJobTableReadThrottleEvents") == {"TableName": outputs["JobTableName"]}
    assert dimensions("AlarmsStateMachineExecutionsFailed") == {"StateMachineArn": outputs["StateMachineArn"]}
    (duration,) = [
        a for logical_id, a in alarms.items() if logical_id.startswith("AlarmsWorkerDurationNearTimeout")
    ]
    assert (duration["ExtendedStatistic"], duration.get("Statistic")) == ("p99", None)
    (error_rate,) = [a for logical_id, a in alarms.items() if logical_id.startswith("AlarmsWorkerErrorRate")]
    assert error_rate["AlarmActions"] == [outputs["WarningAlarmTopicArn"]]
    stats = [q["MetricStat"]["Metric"] for q in error_rate["Metrics"] if "MetricStat" in q]
    assert {s["MetricName"] for s in stats} == {"Errors", "Invocations"}

    def evaluated() -> bool:
        states = [
            a["StateValue"] for a in cw.describe_alarms(AlarmNames=list(names.values()))["MetricAlarms"]
        ]
        return len(states) == len(names) and "INSUFFICIENT_DATA" not in states

    wait_until(evaluated, timeout=30, message="every alarm evaluated")
