"""Fault injection in the local cloud's server process (`python -m localcloud.core.server`): rules set over
HTTP reach Step Functions' service integrations and the Lambda environments, injections are logged, and the
rules live and die with the server.
"""

from __future__ import annotations

import io
import json
import random
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localcloud.core import cloud
from localcloud.core.state import LocalCloudState
from tests.localcloud.support import client, grant, wait_until
from tests.localcloud.test_chaos import control

HANDLER = """
def handler(event, context):
    return {"job_id": event["job_id"], "done": True}
"""


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("chaos-server")
    yield path
    cloud.down(path)


@pytest.fixture(scope="module")
def server(home: Path) -> LocalCloudState:
    return cloud.up(home=home)


def retry(errors: list[str], attempts: int = 3) -> list[dict[str, Any]]:
    return [{"ErrorEquals": errors, "IntervalSeconds": 1, "MaxAttempts": attempts, "BackoffRate": 1.0}]


def definition(table: str, function_arn: str, queue_url: str, child_arn: str) -> dict[str, Any]:
    """The four service integrations of the segmented-job state machine, each with a Retry on its error."""
    return {
        "StartAt": "MarkRunning",
        "States": {
            "MarkRunning": {
                "Type": "Task",
                "Resource": "arn:aws:states:::dynamodb:updateItem",
                "Parameters": {
                    "TableName": table,
                    "Key": {"job_id": {"S.$": "$.job_id"}},
                    "UpdateExpression": "SET #s = :running",
                    "ExpressionAttributeNames": {"#s": "status"},
                    "ExpressionAttributeValues": {":running": {"S": "RUNNING"}},
                },
                "ResultPath": None,
                "Retry": retry(["DynamoDB.ProvisionedThroughputExceededException"]),
                "Next": "ProcessSegment",
            },
            "ProcessSegment": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": function_arn, "Payload": {"job_id.$": "$.job_id"}},
                "ResultSelector": {"done.$": "$.Payload.done"},
                "ResultPath": "$.work",
                "Retry": retry(["Lambda.TooManyRequestsException", "Runtime.ExitError"]),
                "Next": "Notify",
            },
            "Notify": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sqs:sendMessage",
                "Parameters": {"QueueUrl": queue_url, "MessageBody.$": "$.job_id"},
                "ResultPath": None,
                "Retry": retry(["SQS.SdkClientException"]),
                "Next": "ContinueAsNew",
            },
            "ContinueAsNew": {
                "Type": "Task",
                "Resource": "arn:aws:states:::states:startExecution",
                "Parameters": {"StateMachineArn": child_arn, "Input": {"job_id.$": "$.job_id"}},
                "ResultPath": None,
                "Retry": retry(["StepFunctions.ExecutionLimitExceededException"]),
                "End": True,
            },
        },
    }


def function_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.py", HANDLER)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def machine(server: LocalCloudState) -> dict[str, str]:
    endpoint = server.endpoint
    suffix = uuid.uuid4().hex[:8]
    role = client(endpoint, "iam").create_role(RoleName=f"chaos-{suffix}", AssumeRolePolicyDocument="{}")[
        "Role"
    ]["Arn"]
    function = client(endpoint, "lambda").create_function(
        FunctionName=f"worker-{suffix}",
        Runtime="python3.12",
        Role=role,
        Handler="index.handler",
        Code={"ZipFile": function_zip()},
        Timeout=5,
    )
    table = f"jobs-{suffix}"
    client(endpoint, "dynamodb").create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "job_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "job_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    queue_url = client(endpoint, "sqs").create_queue(QueueName=f"done-{suffix}")["QueueUrl"]
    sfn = client(endpoint, "stepfunctions")
    child_arn = sfn.create_state_machine(
        name=f"child-{suffix}",
        definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
        roleArn=role,
    )["stateMachineArn"]
    machine_arn = sfn.create_state_machine(
        name=f"job-{suffix}",
        definition=json.dumps(definition(table, function["FunctionArn"], queue_url, child_arn)),
        roleArn=role,
    )["stateMachineArn"]
    # The integrations run as the machine's role (the local cloud enforces IAM): exactly what they call.
    grant(
        endpoint,
        f"chaos-{suffix}",
        {"Action": "dynamodb:UpdateItem", "Resource": f"arn:aws:dynamodb:*:*:table/{table}"},
        {"Action": "lambda:InvokeFunction", "Resource": function["FunctionArn"]},
        {"Action": "sqs:SendMessage", "Resource": f"arn:aws:sqs:*:*:done-{suffix}"},
        {"Action": "states:StartExecution", "Resource": child_arn},
    )
    return {"arn": machine_arn, "function": function["FunctionName"], "queue": queue_url, "table": table}


def wait_for_execution(sfn: Any, arn: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        execution: dict[str, Any] = sfn.describe_execution(executionArn=arn)
        if execution["status"] != "RUNNING":
            return execution
        assert time.monotonic() < deadline, f"{arn} still RUNNING"
        time.sleep(0.2)


def seed_whose_draws_begin(pattern: list[bool], *, rate: float) -> int:
    """A seed for which a rule's first draws (`random.Random(seed).random() < rate`) follow `pattern`."""
    for seed in range(1000):
        draws = random.Random(seed)
        if [draws.random() < rate for _ in pattern] == pattern:
            return seed
    raise AssertionError(f"no seed below 1000 draws {pattern}")


def add(endpoint: str, **rule: Any) -> dict[str, Any]:
    status, answer = control(endpoint, "POST", body=rule)
    assert status == 201, answer
    added: dict[str, Any] = answer["rule"]
    return added


def test_state_machine_integrations_see_injected_errors_and_retry(
    server: LocalCloudState, machine: dict[str, str], home: Path
) -> None:
    endpoint = server.endpoint
    rules = [
        add(
            endpoint,
            service="dynamodb",
            operation="UpdateItem",
            error="ProvisionedThroughputExceededException",
            count=1,
        ),
        add(
            endpoint,
            service="lambda",
            operation="Invoke",
            error="TooManyRequestsException",
            function=machine["function"],
            count=1,
        ),
        add(
            endpoint,
            service="lambda",
            operation="Invoke",
            error="crash",
            function=machine["function"],
            count=1,
        ),
        add(endpoint, service="sqs", operation="SendMessage", error="ServiceUnavailable", count=1),
        # This test's own StartExecution below is a matching call too (a rule applies to every caller):
        # a seed whose draws go miss, hit spares it and fails the state machine's continue-as-new once.
        add(
            endpoint,
            service="stepfunctions",
            operation="StartExecution",
            error="ExecutionLimitExceeded",
            rate=0.5,
            seed=seed_whose_draws_begin([False, True], rate=0.5),
            count=1,
        ),
    ]
    sfn = client(endpoint, "stepfunctions")

    started = sfn.start_execution(stateMachineArn=machine["arn"], input=json.dumps({"job_id": "job-1"}))
    execution = wait_for_execution(sfn, started["executionArn"])

    try:
        assert execution["status"] == "SUCCEEDED", execution
        history = sfn.get_execution_history(executionArn=started["executionArn"], maxResults=1000)["events"]
        failures = [
            event["taskFailedEventDetails"]["error"] for event in history if event["type"] == "TaskFailed"
        ]
        assert failures == [
            "DynamoDB.ProvisionedThroughputExceededException",
            "Lambda.TooManyRequestsException",
            "Runtime.ExitError",  # the environment was SIGKILLed mid-invocation; the retry got a new one
            "SQS.SdkClientException",
            "StepFunctions.ExecutionLimitExceededException",
        ]
        listed = {rule["id"]: rule for rule in control(endpoint, "GET")[1]["rules"]}
        assert [listed[rule["id"]]["injected"] for rule in rules] == [1, 1, 1, 1, 1]
        # One log line per injection, naming the rule.
        log = (home / "server.log").read_text()
        for rule in rules:
            assert (
                f"chaos injected rule={rule['id']} service={rule['service']} operation={rule['operation']}"
                in log
            )
    finally:
        control(endpoint, "DELETE")


def test_rules_live_in_the_server_process_and_down_clears_them(tmp_path: Path) -> None:
    state = cloud.up(home=tmp_path)
    try:
        add(state.endpoint, service="s3", operation="*", latency_ms=5)
        assert len(control(state.endpoint, "GET")[1]["rules"]) == 1
        cloud.down(tmp_path)
        wait_until(lambda: not cloud.answers(state.endpoint, timeout=0.5), message="the server to stop")

        again = cloud.up(home=tmp_path)
        assert control(again.endpoint, "GET") == (200, {"rules": []})
    finally:
        cloud.down(tmp_path)
