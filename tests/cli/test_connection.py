"""How the CLI finds an environment, and the clean errors when it cannot."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError
from moto import mock_aws

from localcloud.core.state import LocalCloudState, state_path, write_state
from pipeline_cli import aws

from .conftest import LocalCloud, Result, dlq_attributes, drain

Run = Callable[..., Result]
NOT_RUNNING = "error: the local cloud is not running: start it with `pipeline local up` (or `make demo`)"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# ------------------------------------------------------------------------------------------ local cloud


def test_local_is_the_default_and_says_when_it_is_not_running(run: Run) -> None:
    result = run("jobs")

    assert result.code == 2
    assert result.err == NOT_RUNNING + "\n"


def test_a_stale_state_file_is_not_running_either(run: Run) -> None:
    write_state(LocalCloudState(port=free_port(), pid=999999, outputs={"IngestQueueUrl": "x"}))

    result = run("status", "job-1", "--env", "local")

    assert (result.code, result.err) == (2, NOT_RUNNING + "\n")


def test_an_unreadable_state_file_is_a_clean_error(run: Run) -> None:
    path = state_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{not json")

    result = run("dlq", "list")

    assert result.code == 2
    assert "is unreadable" in result.err and "Traceback" not in result.err


def test_pipeline_env_variable_selects_the_environment(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIPELINE_ENV", "staging")
    with mock_aws():
        result = run("jobs")

    assert "stack ResilientPipeline-staging-Stateful is not deployed in us-east-1" in result.err


def test_local_cloud_end_to_end_over_http(local_cloud: LocalCloud, run: Run, tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text('{"x": 1}\n')

    submitted = run("submit", "--input", str(source), "--job-id", "job-local")
    assert submitted.code == 0, submitted.err
    bucket = local_cloud.outputs["DataBucketName"]
    assert (
        local_cloud.s3.get_object(Bucket=bucket, Key="in/job-local/in.jsonl")["Body"].read() == b'{"x": 1}\n'
    )
    [message] = drain(local_cloud.sqs, local_cloud.outputs["IngestQueueUrl"])
    assert json.loads(message["Body"]) == {
        "job_id": "job-local",
        "input": f"s3://{bucket}/in/job-local/in.jsonl",
    }

    local_cloud.dynamodb.put_item(
        TableName=local_cloud.outputs["JobTableName"],
        Item={
            "job_id": {"S": "job-local"},
            "status": {"S": "PENDING"},
            "updated_at": {"S": "2026-11-23T10:00:00Z"},
        },
    )
    status = run("status", "job-local", "--json")
    assert status.code == 0, status.err
    assert json.loads(status.out)["status"] == "PENDING"
    listed = run("jobs", "--status", "PENDING")
    assert "job-local" in listed.out


def test_local_redrive_falls_back_when_moto_answers_500(local_cloud: LocalCloud, run: Run) -> None:
    """moto's server answers StartMessageMoveTask with an HTML 500; the CLI falls back at once."""
    dlq_url = local_cloud.outputs["DeadLetterQueueUrl"]
    for index in range(12):
        local_cloud.sqs.send_message(
            QueueUrl=dlq_url,
            MessageBody=json.dumps({"job_id": f"job-{index}", "input": "s3://b/k"}),
            MessageAttributes=dlq_attributes(f"job-{index}", "PermanentError", "bad", f"src-{index}"),
        )

    listed = run("dlq", "list")
    result = run("dlq", "redrive", "--json")

    assert listed.code == 0 and "12 message(s)" in listed.out
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["method"] == "receive-send-delete" and report["moved"] == 12
    assert report["reason"] == "the endpoint does not support StartMessageMoveTask (HTTP 500)"
    assert len(drain(local_cloud.sqs, local_cloud.outputs["IngestQueueUrl"])) == 12
    assert drain(local_cloud.sqs, dlq_url) == []


def test_local_state_without_outputs_asks_cloudformation(local_cloud: LocalCloud, run: Run) -> None:
    write_state(LocalCloudState(port=local_cloud.port, pid=1, outputs={}))

    result = run("jobs")

    assert result.code == 2
    assert result.err == (
        "error: stack ResilientPipeline-local-Stateful is not deployed in the local cloud: "
        "restart it with `pipeline local up`\n"
    )


# ---------------------------------------------------------------------------------------------- on AWS


def test_stack_not_deployed_is_a_clean_error(run: Run) -> None:
    with mock_aws():
        result = run("jobs", "--env", "dev")

    assert result.code == 2
    assert result.err == (
        "error: stack ResilientPipeline-dev-Stateful is not deployed in us-east-1: run `make deploy ENV=dev`\n"
    )


def test_region_flag_overrides_the_configuration(run: Run) -> None:
    with mock_aws():
        result = run("jobs", "--env", "dev", "--region", "eu-west-1")

    assert "not deployed in eu-west-1" in result.err


def test_no_credentials_is_a_clean_error(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")

    result = run("status", "job-1", "--env", "prod")

    assert result.code == 2
    assert result.err.startswith("error: no AWS credentials for environment prod: configure them")
    assert "Traceback" not in result.err


def test_no_region_is_a_clean_error(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")

    result = run("jobs", "--env", "dev")

    assert result.err == "error: no AWS region for environment dev: pass --region or set AWS_REGION\n"


def test_expired_credentials_during_a_command_are_a_clean_error(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    def expired(*_: Any, **__: Any) -> None:
        raise ClientError(
            {
                "Error": {
                    "Code": "ExpiredToken",
                    "Message": "The security token included in the request is expired",
                }
            },
            "DescribeStacks",
        )

    monkeypatch.setattr(aws, "describe_outputs", expired)

    result = run("jobs", "--env", "dev")

    assert result.code == 2
    assert result.err.startswith("error: the AWS credentials for environment dev have expired (ExpiredToken)")


@pytest.mark.parametrize(
    ("error", "env", "expected"),
    [
        (NoCredentialsError(), "dev", "no AWS credentials for environment dev"),
        (EndpointConnectionError(endpoint_url="https://sqs.x"), "dev", "cannot reach AWS in eu-west-1"),
        (
            EndpointConnectionError(endpoint_url="http://localhost:1"),
            "local",
            "the local cloud is not running",
        ),
        (
            ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "Query"),
            "dev",
            "access denied to Query",
        ),
        (
            ClientError({"Error": {"Code": "InvalidClientTokenId", "Message": "bad"}}, "Query"),
            "dev",
            "rejected",
        ),
        (ClientError({"Error": {"Code": "Throttling", "Message": "slow"}}, "Query"), "dev", "Query failed"),
    ],
)
def test_translate_error(error: Exception, env: str, expected: str) -> None:
    assert expected in str(aws.translate_error(error, env=env, region="eu-west-1"))  # type: ignore[arg-type]
