"""What fails on AWS fails on the local cloud: the rows of the parity table (docs/local-cloud.md), each
proven here against the server process `pipeline local up` runs (`python -m localcloud.core.server`),
through boto3, so that every error arrives in the service's own wire shape.

One stack, deployed through CloudFormation: inline functions (an echo with payloads of any size, and the
seed's anti-pattern, an SQS-triggered function that sends its continuation to its own queue), queues, a
table, and state machines that outgrow the state payload and the history quotas.
"""

from __future__ import annotations

import io
import json
import subprocess
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from localcloud.core import cloud
from localcloud.services.stepfunctions.history_limit import HISTORY_LIMIT_CAUSE, MAX_HISTORY_EVENTS
from tests.localcloud.support import client, wait_until

STACK = "parity"
MIB = 1024 * 1024
LAYER_BUCKET = "parity-layers"

ECHO = """
def handler(event, context):
    if "respond_bytes" in event:
        return "x" * event["respond_bytes"]
    return {"received": len(str(event))}
"""

LAYERED = """
import layered


def handler(event, context):
    return {"from": layered.WHERE, "file": layered.__file__}
"""

# The anti-pattern: each invocation does a slice of work and re-enqueues the rest to its own trigger.
LOOPER = """
import json, os
import boto3

sqs = boto3.client("sqs")


def handler(event, context):
    for record in event["Records"]:
        hop = json.loads(record["body"])["hop"]
        print(json.dumps({"hop": hop, "trace": os.environ.get("_X_AMZN_TRACE_ID")}))
        sqs.send_message(QueueUrl=os.environ["QUEUE_URL"], MessageBody=json.dumps({"hop": hop + 1}))
"""


def _role() -> dict[str, Any]:
    return {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "AssumeRolePolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": ["lambda.amazonaws.com", "states.amazonaws.com"]},
                        "Action": "sts:AssumeRole",
                    }
                ],
            },
            # What the looper does as this role (the local cloud enforces IAM): its mapping reads its queue,
            # and it sends to the same queue.
            "Policies": [
                {
                    "PolicyName": "Looper",
                    "PolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Action": [
                                    "sqs:ReceiveMessage",
                                    "sqs:DeleteMessage",
                                    "sqs:ChangeMessageVisibility",
                                    "sqs:GetQueueAttributes",
                                    "sqs:GetQueueUrl",
                                    "sqs:SendMessage",
                                ],
                                "Resource": {"Fn::GetAtt": ["LoopQueue", "Arn"]},
                            }
                        ],
                    },
                }
            ],
        },
    }


def _function(code: str, *, environment: dict[str, Any] | None = None) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "Code": {"ZipFile": code},
        "Handler": "index.handler",
        "Runtime": "python3.14",
        "Timeout": 10,
        "MemorySize": 256,
        "Role": {"Fn::GetAtt": ["Role", "Arn"]},
    }
    if environment:
        properties["Environment"] = {"Variables": environment}
    return {"Type": "AWS::Lambda::Function", "Properties": properties}


def _machine(name: str, definition: dict[str, Any]) -> dict[str, Any]:
    return {
        "Type": "AWS::StepFunctions::StateMachine",
        "Properties": {
            "StateMachineName": name,
            "RoleArn": {"Fn::GetAtt": ["Role", "Arn"]},
            "DefinitionString": json.dumps(definition),
        },
    }


def template() -> str:
    resources: dict[str, Any] = {
        "Role": _role(),
        "Echo": _function(ECHO),
        "LoopDeadLetters": {"Type": "AWS::SQS::Queue", "Properties": {"MessageRetentionPeriod": 3600}},
        "LoopQueue": {
            "Type": "AWS::SQS::Queue",
            "Properties": {
                # Short, so that the dropped message's receives (and its redrive) take seconds; longer than an
                # invocation, even on a loaded machine, or a hop is delivered twice (SQS is at-least-once).
                "VisibilityTimeout": 4,
                "RedrivePolicy": {
                    "deadLetterTargetArn": {"Fn::GetAtt": ["LoopDeadLetters", "Arn"]},
                    "maxReceiveCount": 2,
                },
            },
        },
        "Looper": _function(LOOPER, environment={"QUEUE_URL": {"Ref": "LoopQueue"}}),
        "LoopMapping": {
            "Type": "AWS::Lambda::EventSourceMapping",
            "Properties": {
                "EventSourceArn": {"Fn::GetAtt": ["LoopQueue", "Arn"]},
                "FunctionName": {"Ref": "Looper"},
                "BatchSize": 1,
            },
        },
        "Plain": {"Type": "AWS::SQS::Queue"},
        "Layer": {
            "Type": "AWS::Lambda::LayerVersion",
            "Properties": {
                "Content": {"S3Bucket": LAYER_BUCKET, "S3Key": "layer.zip"},
                "CompatibleRuntimes": ["python3.14"],
            },
        },
        "Layered": {
            **_function(LAYERED),
        },
        "Table": {
            "Type": "AWS::DynamoDB::Table",
            "Properties": {
                "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
                "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
                "BillingMode": "PAY_PER_REQUEST",
            },
        },
        # A state whose output is over the state payload quota (moto's interpreter enforces it).
        "BigOutput": _machine(
            "parity-big-output",
            {
                "StartAt": "Big",
                "States": {
                    "Big": {"Type": "Pass", "Result": {"blob": "x" * 300_000}, "End": True},
                },
            },
        ),
        # A loop with no exit: on AWS the history quota ends it.
        "Forever": _machine(
            "parity-forever",
            {"StartAt": "Spin", "States": {"Spin": {"Type": "Pass", "Next": "Spin"}}},
        ),
    }
    outputs = {
        "EchoName": {"Value": {"Ref": "Echo"}},
        "LayeredName": {"Value": {"Ref": "Layered"}},
        "LooperName": {"Value": {"Ref": "Looper"}},
        "LoopQueueUrl": {"Value": {"Ref": "LoopQueue"}},
        "LoopDeadLettersUrl": {"Value": {"Ref": "LoopDeadLetters"}},
        "PlainUrl": {"Value": {"Ref": "Plain"}},
        "TableName": {"Value": {"Ref": "Table"}},
        "BigOutputArn": {"Value": {"Ref": "BigOutput"}},
        "ForeverArn": {"Value": {"Ref": "Forever"}},
    }
    resources["Layered"]["Properties"]["Layers"] = [{"Ref": "Layer"}]
    return json.dumps({"Resources": resources, "Outputs": outputs})


@pytest.fixture(scope="module")
def server_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("parity")


@pytest.fixture(scope="module")
def endpoint(server_home: Path) -> Iterator[str]:
    port = cloud.free_port()
    process = cloud.start_server(port=port, home=server_home, log_path=server_home / "server.log")
    url = f"http://localhost:{port}"
    deadline = time.monotonic() + 60
    while not cloud.answers(url, timeout=1):
        assert process.poll() is None, (server_home / "server.log").read_text()
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.1)
    yield url
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def outputs(endpoint: str) -> dict[str, str]:
    s3 = client(endpoint, "s3")
    s3.create_bucket(Bucket=LAYER_BUCKET)
    layer = io.BytesIO()
    with zipfile.ZipFile(layer, "w") as archive:
        archive.writestr("python/layered.py", "WHERE = 'the layer'\n")
    s3.put_object(Bucket=LAYER_BUCKET, Key="layer.zip", Body=layer.getvalue())
    cfn = client(endpoint, "cloudformation")
    cfn.create_stack(StackName=STACK, TemplateBody=template())
    deadline = time.monotonic() + 60
    while True:
        stack = cfn.describe_stacks(StackName=STACK)["Stacks"][0]
        if stack["StackStatus"].endswith("_COMPLETE") or stack["StackStatus"].endswith("_FAILED"):
            assert stack["StackStatus"] == "CREATE_COMPLETE", stack
            break
        assert time.monotonic() < deadline
        time.sleep(0.2)
    return {output["OutputKey"]: output["OutputValue"] for output in stack["Outputs"]}


def _single_attempt(endpoint: str, service: str) -> Any:
    # One attempt: a refused request must be seen as refused, not retried (a 413 is not retryable anyway).
    import boto3

    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1}, read_timeout=60),
    )


def _error(raised: pytest.ExceptionInfo[ClientError]) -> tuple[str, str, int]:
    response = raised.value.response
    return (
        str(response["Error"]["Code"]),
        str(response["Error"].get("Message", "")),
        int(response["ResponseMetadata"]["HTTPStatusCode"]),
    )


# -- What a function sees -------------------------------------------------------------------------------


def test_a_function_finds_the_layers_its_template_declares(
    endpoint: str, outputs: dict[str, str], server_home: Path
) -> None:
    lam = client(endpoint, "lambda")
    answer = lam.invoke(FunctionName=outputs["LayeredName"], Payload=b"{}")
    assert "FunctionError" not in answer, answer["Payload"].read()
    body = json.loads(answer["Payload"].read())
    assert body["from"] == "the layer"
    assert body["file"].startswith(str(server_home / "layers"))


# -- Lambda payloads ------------------------------------------------------------------------------------


def test_synchronous_invoke_over_6_mb_is_refused_as_lambda_refuses_it(
    endpoint: str, outputs: dict[str, str]
) -> None:
    lam = _single_attempt(endpoint, "lambda")
    payload = json.dumps({"blob": "x" * (7 * 1000 * 1000)}).encode()
    with pytest.raises(ClientError) as raised:
        lam.invoke(FunctionName=outputs["EchoName"], Payload=payload)
    assert _error(raised) == (
        "RequestEntityTooLargeException",
        "Request must be smaller than 6291456 bytes for the InvokeFunction operation",
        413,
    )
    # Under the quota it runs.
    ok = lam.invoke(FunctionName=outputs["EchoName"], Payload=json.dumps({"blob": "x" * (5 * MIB)}))
    assert "FunctionError" not in ok


def test_asynchronous_invoke_over_1_mb_is_refused(endpoint: str, outputs: dict[str, str]) -> None:
    lam = _single_attempt(endpoint, "lambda")
    payload = json.dumps({"blob": "x" * (MIB + 1000)}).encode()
    with pytest.raises(ClientError) as raised:
        lam.invoke(FunctionName=outputs["EchoName"], InvocationType="Event", Payload=payload)
    assert _error(raised) == (
        "RequestEntityTooLargeException",
        f"{len(payload)} byte payload is too large for the Event invocation type (limit 1048576 bytes)",
        413,
    )


def test_a_response_over_6_mb_fails_the_invocation(endpoint: str, outputs: dict[str, str]) -> None:
    lam = _single_attempt(endpoint, "lambda")
    response = lam.invoke(FunctionName=outputs["EchoName"], Payload=json.dumps({"respond_bytes": 7 * MIB}))
    assert response["FunctionError"] == "Unhandled"
    assert json.loads(response["Payload"].read()) == {
        "errorType": "Function.ResponseSizeTooLarge",
        "errorMessage": "Response payload size exceeded maximum allowed payload size (6291556 bytes).",
    }


# -- SQS ---------------------------------------------------------------------------------------------------


def test_sqs_counts_bytes_and_message_attributes_against_1_mib(
    endpoint: str, outputs: dict[str, str]
) -> None:
    sqs = _single_attempt(endpoint, "sqs")
    url = outputs["PlainUrl"]
    reason = "x" * 4096
    # The body alone fits; with its attributes it does not.
    with pytest.raises(ClientError) as raised:
        sqs.send_message(
            QueueUrl=url,
            MessageBody="b" * (MIB - 100),
            MessageAttributes={"reason": {"DataType": "String", "StringValue": reason}},
        )
    code, message, status = _error(raised)
    assert (code, status) == ("InvalidParameterValue", 400)
    assert (
        message == "One or more parameters are invalid. Reason: Message must be shorter than 1048576 bytes."
    )
    # 600,000 characters of two bytes each: 1.2 MB, which SQS counts.
    with pytest.raises(ClientError) as raised:
        sqs.send_message(QueueUrl=url, MessageBody="é" * 600_000)
    assert _error(raised)[0] == "InvalidParameterValue"
    sqs.send_message(QueueUrl=url, MessageBody="b" * (MIB - 200), MessageAttributes={})


# -- DynamoDB -------------------------------------------------------------------------------------------


def test_dynamodb_refuses_an_item_over_400_kb(endpoint: str, outputs: dict[str, str]) -> None:
    ddb = _single_attempt(endpoint, "dynamodb")
    table = outputs["TableName"]
    with pytest.raises(ClientError) as raised:
        ddb.put_item(TableName=table, Item={"id": {"S": "big"}, "blob": {"S": "x" * 410_000}})
    assert _error(raised) == ("ValidationException", "Item size has exceeded the maximum allowed size", 400)
    ddb.put_item(TableName=table, Item={"id": {"S": "grows"}, "blob": {"S": "x" * 300_000}})
    with pytest.raises(ClientError) as raised:
        ddb.update_item(
            TableName=table,
            Key={"id": {"S": "grows"}},
            UpdateExpression="SET more = :more",
            ExpressionAttributeValues={":more": {"S": "y" * 200_000}},
        )
    assert _error(raised)[0] == "ValidationException"
    assert "Item size to update has exceeded the maximum allowed size" in _error(raised)[1]


# -- EventBridge ----------------------------------------------------------------------------------------


def test_put_events_over_256_kb_is_refused(endpoint: str) -> None:
    events = _single_attempt(endpoint, "events")
    detail = json.dumps({"blob": "x" * (256 * 1024)})
    with pytest.raises(ClientError) as raised:
        events.put_events(Entries=[{"Source": "parity", "DetailType": "big", "Detail": detail}])
    assert _error(raised) == (
        "ValidationException",
        "Total size of the entries in the request is over the limit.",
        400,
    )
    small = json.dumps({"blob": "x" * (200 * 1024)})
    answer = events.put_events(Entries=[{"Source": "parity", "DetailType": "ok", "Detail": small}])
    assert answer["FailedEntryCount"] == 0


# -- Step Functions -------------------------------------------------------------------------------------


def _finished(sfn: Any, arn: str, timeout: float) -> dict[str, Any]:
    result: dict[str, Any] = {}

    def done() -> bool:
        result.update(sfn.describe_execution(executionArn=arn))
        return result["status"] != "RUNNING"

    wait_until(done, timeout=timeout, message=f"{arn} to end")
    return result


def test_a_state_output_over_256_kib_fails_the_execution(endpoint: str, outputs: dict[str, str]) -> None:
    sfn = client(endpoint, "stepfunctions")
    arn = sfn.start_execution(stateMachineArn=outputs["BigOutputArn"])["executionArn"]
    execution = _finished(sfn, arn, timeout=30)
    assert execution["status"] == "FAILED"
    assert execution["error"] == "States.DataLimitExceeded"


def test_the_execution_history_quota_ends_an_endless_loop_as_aws_does(
    endpoint: str, outputs: dict[str, str]
) -> None:
    sfn = client(endpoint, "stepfunctions")
    arn = sfn.start_execution(stateMachineArn=outputs["ForeverArn"])["executionArn"]
    execution = _finished(sfn, arn, timeout=240)
    assert execution["status"] == "FAILED"
    assert (execution["error"], execution["cause"]) == ("States.Runtime", HISTORY_LIMIT_CAUSE)
    events = [
        event
        for page in sfn.get_paginator("get_execution_history").paginate(executionArn=arn)
        for event in page["events"]
    ]
    # Event 25,000 is the failure, right after the 24,999th the machine produced (moto's reverseOrder is
    # not honoured: the whole history is read).
    assert len(events) == MAX_HISTORY_EVENTS
    assert [event["id"] for event in events[-2:]] == [MAX_HISTORY_EVENTS - 1, MAX_HISTORY_EVENTS]
    assert events[-1]["type"] == "ExecutionFailed"
    assert events[-1]["executionFailedEventDetails"] == {
        "error": "States.Runtime",
        "cause": HISTORY_LIMIT_CAUSE,
    }


# -- Recursive loop detection ---------------------------------------------------------------------------


def _hops(server_home: Path, function: str) -> list[int]:
    log = server_home / "logs" / f"{function}.log"
    if not log.exists():
        return []
    return [json.loads(line)["hop"] for line in log.read_text().splitlines() if line.startswith('{"hop"')]


def test_a_function_that_re_sends_to_its_own_queue_is_stopped_after_16_invocations(
    endpoint: str, outputs: dict[str, str], server_home: Path
) -> None:
    sqs = client(endpoint, "sqs")
    looper = outputs["LooperName"]
    sqs.send_message(QueueUrl=outputs["LoopQueueUrl"], MessageBody=json.dumps({"hop": 0}))

    dead = outputs["LoopDeadLettersUrl"]
    moved: list[dict[str, Any]] = []

    def in_dead_letters() -> bool:
        moved.extend(
            sqs.receive_message(QueueUrl=dead, WaitTimeSeconds=1, MessageSystemAttributeNames=["All"]).get(
                "Messages", []
            )
        )
        return bool(moved)

    # The 17th message is not delivered: it stays in its queue until the redrive policy moves it.
    wait_until(in_dead_letters, timeout=60, message="the dropped message in the loop's DLQ")
    assert json.loads(moved[0]["Body"]) == {"hop": 16}
    assert moved[0]["Attributes"]["AWSTraceHeader"].count("Lineage=") == 1
    # Sixteen invocations, hops 0 to 15 (a hop delivered twice, as SQS may, counts once: its lineage is the
    # same), and none of hop 16.
    assert sorted(set(_hops(server_home, looper))) == list(range(16))

    cloudwatch = client(endpoint, "cloudwatch")
    stats = cloudwatch.get_metric_statistics(
        Namespace="AWS/Lambda",
        MetricName="RecursiveInvocationsDropped",
        Dimensions=[{"Name": "FunctionName", "Value": looper}],
        StartTime=time.time() - 600,
        EndTime=time.time() + 60,
        Period=60,
        Statistics=["Sum"],
    )
    assert sum(point["Sum"] for point in stats["Datapoints"]) >= 1


def test_a_new_request_starts_a_new_chain(endpoint: str, outputs: dict[str, str]) -> None:
    # A message sent from outside any function carries no lineage: it is delivered whatever came before.
    lam = client(endpoint, "lambda")
    answer = lam.invoke(FunctionName=outputs["EchoName"], Payload=json.dumps({"x": 1}))
    assert "FunctionError" not in answer
