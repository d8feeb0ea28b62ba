"""IAM in the local cloud server process: every call a deployed function, a state machine's service
integration or an event source mapping makes runs as its role's session and is authorized against the
role's identity policies and the target's resource policy; everyone else (CloudFormation, the CLI, these
tests' own clients) keeps administrator rights.

A small stack is deployed through CloudFormation, as the CDK app's resources arrive: a function whose role
grants only `s3:GetObject` on `in/*` (plus what each test names), a bucket with CDK's TLS-only policy and
two statements of its own, a queue with CDK's TLS-only policy consumed by a function whose role lacks
`sqs:ReceiveMessage`, a table and a state machine whose role may only UpdateItem.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from localcloud.core import cloud
from localcloud.core.state import ACCOUNT_ID, REGION
from tests.localcloud.support import client, wait_until

STACK = "iam-fixture"
BUCKET = "iam-fixture-data"
TABLE = "iam-fixture-jobs"
QUEUE = "iam-fixture-requests"
CALLER = "iam-fixture-caller"
CONSUMER = "iam-fixture-consumer"
MACHINE = "iam-fixture-machine"
TOPIC = "iam-fixture-topic"
CALLER_ROLE = "iam-fixture-caller-role"
CONSUMER_ROLE = "iam-fixture-consumer-role"
MACHINE_ROLE = "iam-fixture-machine-role"
CALLER_SESSION = f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{CALLER_ROLE}/{CALLER}"
MACHINE_ROLE_ARN = f"arn:aws:iam::{ACCOUNT_ID}:role/{MACHINE_ROLE}"

# Makes the calls the event lists, each with the function's own credentials (whatever the runner gives
# the environment), and reports each outcome as the SDK saw it.
CALLER_CODE = """
import boto3
import botocore.exceptions


def handler(event, context):
    results = []
    for call in event["calls"]:
        client = boto3.client(call["service"])
        try:
            response = getattr(client, call["method"])(**call.get("params", {}))
        except botocore.exceptions.ClientError as error:
            results.append({
                "ok": False,
                "code": error.response["Error"]["Code"],
                "message": error.response["Error"].get("Message", ""),
                "status": error.response["ResponseMetadata"]["HTTPStatusCode"],
            })
        else:
            body = response.get("Body")
            results.append({"ok": True, "body": body.read().decode() if body is not None else None})
    return {"results": results, "caller": boto3.client("sts").get_caller_identity()["Arn"]}
"""

CONSUMER_CODE = """
def handler(event, context):
    return {"batchItemFailures": []}
"""


def _lambda_role(name: str, statements: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "RoleName": name,
            "AssumeRolePolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "lambda.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            },
            # CDK's shape: the grants in an AWS::IAM::Policy beside the role, not in the role itself.
        },
        "_statements": statements,
    }


def _function(name: str, role: str, code: str) -> dict[str, Any]:
    return {
        "Type": "AWS::Lambda::Function",
        "Properties": {
            "FunctionName": name,
            "Code": {"ZipFile": code},
            "Handler": "index.handler",
            "Runtime": "python3.12",
            "Timeout": 10,
            "Role": {"Fn::GetAtt": [role, "Arn"]},
        },
    }


def _tls_only(resource: Any, action: str) -> dict[str, Any]:
    """CDK's `enforce_ssl=True` statement, as synthesized for buckets and queues."""
    return {
        "Action": action,
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        "Effect": "Deny",
        "Principal": {"AWS": "*"},
        "Resource": resource,
    }


def template() -> str:
    bucket_arn = f"arn:aws:s3:::{BUCKET}"
    caller_role_arn = f"arn:aws:iam::{ACCOUNT_ID}:role/{CALLER_ROLE}"
    resources: dict[str, Any] = {
        "CallerRole": _lambda_role(
            CALLER_ROLE,
            [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"{bucket_arn}/in/*"}],
        ),
        "ConsumerRole": _lambda_role(
            CONSUMER_ROLE,
            # What SqsEventSource grants, less ReceiveMessage.
            [
                {
                    "Effect": "Allow",
                    "Action": [
                        "sqs:ChangeMessageVisibility",
                        "sqs:DeleteMessage",
                        "sqs:GetQueueAttributes",
                        "sqs:GetQueueUrl",
                    ],
                    "Resource": {"Fn::GetAtt": ["Queue", "Arn"]},
                }
            ],
        ),
        "MachineRole": {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "RoleName": MACHINE_ROLE,
                "AssumeRolePolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "states.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                },
            },
            "_statements": [
                {
                    "Effect": "Allow",
                    "Action": "dynamodb:UpdateItem",
                    "Resource": f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{TABLE}",
                }
            ],
        },
        "Caller": _function(CALLER, "CallerRole", CALLER_CODE),
        "Consumer": _function(CONSUMER, "ConsumerRole", CONSUMER_CODE),
        "Bucket": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": BUCKET}},
        "Topic": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": TOPIC}},
        "BucketPolicy": {
            "Type": "AWS::S3::BucketPolicy",
            "Properties": {
                "Bucket": {"Ref": "Bucket"},
                "PolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        _tls_only([bucket_arn, f"{bucket_arn}/*"], "s3:*"),
                        # A resource policy naming the role grants on its own, with no identity Allow.
                        {
                            "Sid": "CallerMayShare",
                            "Effect": "Allow",
                            "Principal": {"AWS": caller_role_arn},
                            "Action": "s3:PutObject",
                            "Resource": f"{bucket_arn}/shared/*",
                        },
                        # An explicit Deny wins over the identity Allow on in/*.
                        {
                            "Sid": "NoSecrets",
                            "Effect": "Deny",
                            "Principal": {"AWS": caller_role_arn},
                            "Action": "s3:GetObject",
                            "Resource": f"{bucket_arn}/in/secret*",
                        },
                    ],
                },
            },
        },
        "Queue": {
            "Type": "AWS::SQS::Queue",
            "Properties": {"QueueName": QUEUE, "VisibilityTimeout": 2},
        },
        "QueuePolicy": {
            "Type": "AWS::SQS::QueuePolicy",
            "Properties": {
                "Queues": [{"Ref": "Queue"}],
                "PolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [_tls_only({"Fn::GetAtt": ["Queue", "Arn"]}, "sqs:*")],
                },
            },
        },
        "Mapping": {
            "Type": "AWS::Lambda::EventSourceMapping",
            "Properties": {
                "FunctionName": {"Ref": "Consumer"},
                "EventSourceArn": {"Fn::GetAtt": ["Queue", "Arn"]},
                "BatchSize": 1,
                "FunctionResponseTypes": ["ReportBatchItemFailures"],
            },
        },
        "Table": {
            "Type": "AWS::DynamoDB::Table",
            "Properties": {
                "TableName": TABLE,
                "AttributeDefinitions": [{"AttributeName": "job_id", "AttributeType": "S"}],
                "KeySchema": [{"AttributeName": "job_id", "KeyType": "HASH"}],
                "BillingMode": "PAY_PER_REQUEST",
            },
        },
        "Machine": {
            "Type": "AWS::StepFunctions::StateMachine",
            "Properties": {
                "StateMachineName": MACHINE,
                "RoleArn": {"Fn::GetAtt": ["MachineRole", "Arn"]},
                "DefinitionString": json.dumps(MACHINE_DEFINITION),
            },
        },
    }
    for role_id in [key for key, value in resources.items() if "_statements" in value]:
        statements = resources[role_id].pop("_statements")
        resources[f"{role_id}DefaultPolicy"] = {
            "Type": "AWS::IAM::Policy",
            "Properties": {
                "PolicyName": f"{role_id}DefaultPolicy",
                "Roles": [{"Ref": role_id}],
                "PolicyDocument": {"Version": "2012-10-17", "Statement": statements},
            },
        }
    return json.dumps({"Resources": resources})


def _item_task(resource: str, next_state: str | None) -> dict[str, Any]:
    parameters: dict[str, Any] = {"TableName": TABLE}
    if resource.endswith("updateItem"):
        parameters |= {
            "Key": {"job_id": {"S.$": "$.job_id"}},
            "UpdateExpression": "SET #s = :s",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": {":s": {"S": "RUNNING"}},
        }
    else:
        parameters["Item"] = {"job_id": {"S.$": "$.job_id"}, "status": {"S": "PENDING"}}
    state: dict[str, Any] = {
        "Type": "Task",
        "Resource": resource,
        "Parameters": parameters,
        "ResultPath": None,
    }
    state |= {"Next": next_state} if next_state else {"End": True}
    return state


MACHINE_DEFINITION = {
    "StartAt": "Which",
    "States": {
        "Which": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.op", "StringEquals": "put", "Next": "Put"}],
            "Default": "Update",
        },
        "Update": _item_task("arn:aws:states:::dynamodb:updateItem", None),
        "Put": _item_task("arn:aws:states:::dynamodb:putItem", None),
    },
}


@pytest.fixture(scope="module")
def server_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("iam-server")


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
def deployed(endpoint: str) -> None:
    cfn = client(endpoint, "cloudformation")
    cfn.create_stack(StackName=STACK, TemplateBody=template())
    deadline = time.monotonic() + 30
    while True:
        status = cfn.describe_stacks(StackName=STACK)["Stacks"][0]["StackStatus"]
        if status.endswith("_COMPLETE") or status.endswith("_FAILED"):
            assert status == "CREATE_COMPLETE", cfn.describe_stack_events(StackName=STACK)["StackEvents"][:5]
            break
        assert time.monotonic() < deadline, status
        time.sleep(0.2)
    s3 = client(endpoint, "s3")
    for key in ("in/data.txt", "in/secret.txt"):
        s3.put_object(Bucket=BUCKET, Key=key, Body=f"contents of {key}".encode())


def call_as_function(endpoint: str, *calls: dict[str, Any]) -> dict[str, Any]:
    response = client(endpoint, "lambda").invoke(
        FunctionName=CALLER, Payload=json.dumps({"calls": list(calls)})
    )
    payload: dict[str, Any] = json.loads(response["Payload"].read())
    assert "FunctionError" not in response, payload
    return payload


def s3_call(method: str, key: str, **params: Any) -> dict[str, Any]:
    if method == "put_object":
        params.setdefault("Body", b"written by the function".decode())
    return {"service": "s3", "method": method, "params": {"Bucket": BUCKET, "Key": key, **params}}


def denied_message(action: str, resource: str) -> str:
    return (
        f"User: {CALLER_SESSION} is not authorized to perform: {action} on resource: {resource} "
        f"because no identity-based policy allows the {action} action"
    )


def test_a_function_calls_with_its_roles_session(endpoint: str, deployed: None) -> None:
    assert call_as_function(endpoint)["caller"] == CALLER_SESSION


def test_a_role_that_grants_only_get_object_cannot_put(endpoint: str, deployed: None) -> None:
    results = call_as_function(
        endpoint, s3_call("get_object", "in/data.txt"), s3_call("put_object", "out/result.txt")
    )["results"]
    assert results[0] == {"ok": True, "body": "contents of in/data.txt"}
    assert results[1] == {
        "ok": False,
        "code": "AccessDenied",
        "status": 403,
        "message": denied_message("s3:PutObject", f"arn:aws:s3:::{BUCKET}/out/result.txt"),
    }
    # Control: the denied object was not written, and an administrator's client may write it.
    s3 = client(endpoint, "s3")
    with pytest.raises(s3.exceptions.ClientError):
        s3.head_object(Bucket=BUCKET, Key="out/result.txt")
    s3.put_object(Bucket=BUCKET, Key="out/result.txt", Body=b"admin")


def test_the_grant_is_scoped_to_its_resource(endpoint: str, deployed: None) -> None:
    results = call_as_function(endpoint, s3_call("get_object", "elsewhere/data.txt"))["results"]
    assert results[0]["code"] == "AccessDenied"
    assert results[0]["message"] == denied_message(
        "s3:GetObject", f"arn:aws:s3:::{BUCKET}/elsewhere/data.txt"
    )


def test_a_version_is_read_with_get_object_version(endpoint: str, deployed: None) -> None:
    s3 = client(endpoint, "s3")
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    version = s3.put_object(Bucket=BUCKET, Key="in/versioned.txt", Body=b"v1")["VersionId"]
    results = call_as_function(
        endpoint,
        s3_call("get_object", "in/versioned.txt"),
        s3_call("get_object", "in/versioned.txt", VersionId=version),
        # HeadObject is s3:GetObject, s3:GetObjectVersion with a version (a HEAD answer has no body: 403).
        s3_call("head_object", "in/versioned.txt", VersionId=version),
    )["results"]
    assert results[0] == {"ok": True, "body": "v1"}
    resource = f"arn:aws:s3:::{BUCKET}/in/versioned.txt"
    assert results[1]["message"] == denied_message("s3:GetObjectVersion", resource)
    assert (results[2]["ok"], results[2]["status"]) == (False, 403)


def test_the_templates_bucket_and_queue_policies_are_deployed(endpoint: str, deployed: None) -> None:
    policy = json.loads(client(endpoint, "s3").get_bucket_policy(Bucket=BUCKET)["Policy"])
    assert [statement.get("Sid") for statement in policy["Statement"]] == [
        None,
        "CallerMayShare",
        "NoSecrets",
    ]
    sqs = client(endpoint, "sqs")
    url = sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"])["Attributes"]
    assert json.loads(attributes["Policy"])["Statement"][0]["Condition"] == {
        "Bool": {"aws:SecureTransport": "false"}
    }
    # moto 5.2.5 cleared a queue's policy on any SetQueueAttributes that did not name it.
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "2"})
    assert "Policy" in sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"])["Attributes"]


def test_the_bucket_policy_is_unioned_with_the_role_and_its_deny_wins(endpoint: str, deployed: None) -> None:
    results = call_as_function(
        endpoint,
        # Allowed by the bucket policy alone (it names the role), not by the role's own policy.
        s3_call("put_object", "shared/note.txt"),
        # Allowed by the role's policy (in/*), explicitly denied by the bucket policy.
        s3_call("get_object", "in/secret.txt"),
    )["results"]
    assert results[0] == {"ok": True, "body": None}
    resource = f"arn:aws:s3:::{BUCKET}/in/secret.txt"
    assert results[1]["message"] == (
        f"User: {CALLER_SESSION} is not authorized to perform: s3:GetObject on resource: {resource} "
        "with an explicit deny in a resource-based policy"
    )
    # The TLS-only Deny of the same policy did not apply: every call above came over loopback, which
    # stands in for AWS's TLS endpoints (aws:SecureTransport true).


@pytest.mark.parametrize(
    ("call", "code", "status", "action", "resource"),
    [
        (
            {
                "service": "dynamodb",
                "method": "get_item",
                "params": {"TableName": TABLE, "Key": {"job_id": {"S": "j"}}},
            },
            "AccessDeniedException",
            400,
            "dynamodb:GetItem",
            f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{TABLE}",
        ),
        (
            {
                "service": "sqs",
                "method": "send_message",
                "params": {"QueueUrl": f"http://localhost/{ACCOUNT_ID}/{QUEUE}", "MessageBody": "x"},
            },
            "AccessDenied",
            403,
            "sqs:SendMessage",
            f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{QUEUE}",
        ),
        (
            {
                "service": "stepfunctions",
                "method": "start_execution",
                "params": {"stateMachineArn": f"arn:aws:states:{REGION}:{ACCOUNT_ID}:stateMachine:{MACHINE}"},
            },
            "AccessDeniedException",
            400,
            "states:StartExecution",
            f"arn:aws:states:{REGION}:{ACCOUNT_ID}:stateMachine:{MACHINE}",
        ),
        (
            {
                "service": "lambda",
                "method": "invoke",
                "params": {"FunctionName": CONSUMER, "Qualifier": "$LATEST"},
            },
            "AccessDeniedException",
            403,
            "lambda:InvokeFunction",
            f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{CONSUMER}:$LATEST",
        ),
        (
            {
                "service": "events",
                "method": "put_events",
                "params": {"Entries": [{"Source": "jobs", "DetailType": "Job Done", "Detail": "{}"}]},
            },
            "AccessDeniedException",
            400,
            "events:PutEvents",
            f"arn:aws:events:{REGION}:{ACCOUNT_ID}:event-bus/default",
        ),
        (
            {
                "service": "sns",
                "method": "publish",
                "params": {"TopicArn": f"arn:aws:sns:{REGION}:{ACCOUNT_ID}:{TOPIC}", "Message": "x"},
            },
            "AuthorizationError",
            403,
            "sns:Publish",
            f"arn:aws:sns:{REGION}:{ACCOUNT_ID}:{TOPIC}",
        ),
    ],
    ids=["dynamodb", "sqs", "stepfunctions", "lambda", "events", "sns"],
)
def test_access_denied_in_each_services_wire_shape(
    endpoint: str, deployed: None, call: dict[str, Any], code: str, status: int, action: str, resource: str
) -> None:
    (result,) = call_as_function(endpoint, call)["results"]
    assert result == {
        "ok": False,
        "code": code,
        "status": status,
        "message": denied_message(action, resource),
    }


def test_an_operation_without_a_table_row_is_refused_and_named(
    endpoint: str, deployed: None, server_home: Path
) -> None:
    (result,) = call_as_function(
        endpoint, {"service": "s3", "method": "get_bucket_acl", "params": {"Bucket": BUCKET}}
    )["results"]
    assert (result["code"], result["status"]) == ("AccessDenied", 403)
    assert "no IAM action for this operation" in result["message"]
    log = (server_home / "server.log").read_text()
    assert f"IAM denied principal={CALLER_SESSION} action=s3:GetBucketAcl" in log
    assert "no row for this operation in the operation table" in log


def test_denials_are_logged_with_principal_action_and_resource(
    endpoint: str, deployed: None, server_home: Path
) -> None:
    call_as_function(endpoint, s3_call("put_object", "out/logged.txt"))
    line = (
        f"IAM denied principal={CALLER_SESSION} action=s3:PutObject resource=arn:aws:s3:::{BUCKET}/out/logged.txt "
        "operation=s3:PutObject: no identity-based policy allows the s3:PutObject action"
    )
    assert line in (server_home / "server.log").read_text()
    denials = iam_control(endpoint)["denials"]
    assert {"principal": CALLER_SESSION, "action": "s3:PutObject"}.items() <= denials[-1].items()


def test_a_state_machine_integration_runs_with_the_machines_role(endpoint: str, deployed: None) -> None:
    sfn = client(endpoint, "stepfunctions")
    machine = f"arn:aws:states:{REGION}:{ACCOUNT_ID}:stateMachine:{MACHINE}"
    update = sfn.start_execution(
        stateMachineArn=machine, name="update", input=json.dumps({"op": "update", "job_id": "a"})
    )
    put = sfn.start_execution(
        stateMachineArn=machine, name="put", input=json.dumps({"op": "put", "job_id": "b"})
    )
    assert wait_for_execution(sfn, update["executionArn"])["status"] == "SUCCEEDED"
    failed = wait_for_execution(sfn, put["executionArn"])
    assert failed["status"] == "FAILED"
    assert failed["error"] == "DynamoDB.AccessDeniedException"
    session = f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{MACHINE_ROLE}/StepFunctions"
    assert (
        f"User: {session} is not authorized to perform: dynamodb:PutItem on resource: "
        f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{TABLE} because no identity-based policy allows"
    ) in failed["cause"]


def test_an_event_source_mapping_reads_with_the_functions_role(
    endpoint: str, deployed: None, server_home: Path
) -> None:
    sqs = client(endpoint, "sqs")
    url = sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="job")
    session = f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{CONSUMER_ROLE}/{CONSUMER}"
    refused = f"IAM denied principal={session} action=sqs:ReceiveMessage resource=arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{QUEUE}"
    wait_until(
        lambda: refused in (server_home / "server.log").read_text(), timeout=20, message="the refused read"
    )
    assert _messages_in(sqs, url) == 1
    # Control: with the grant the mapping lacked, the same poller takes the message to the function.
    client(endpoint, "iam").put_role_policy(
        RoleName=CONSUMER_ROLE,
        PolicyName="receive",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "sqs:ReceiveMessage",
                        "Resource": f"arn:aws:sqs:*:*:{QUEUE}",
                    }
                ],
            }
        ),
    )
    wait_until(lambda: _messages_in(sqs, url) == 0, timeout=45, message="the message to be consumed")


def test_enforcement_can_be_switched_off_and_on(endpoint: str, deployed: None) -> None:
    assert iam_control(endpoint)["enforced"] is True
    try:
        assert iam_control(endpoint, enforced=False)["enforced"] is False
        (result,) = call_as_function(endpoint, s3_call("put_object", "out/debugging.txt"))["results"]
        assert result == {"ok": True, "body": None}
    finally:
        assert iam_control(endpoint, enforced=True)["enforced"] is True
    (result,) = call_as_function(endpoint, s3_call("put_object", "out/debugging.txt"))["results"]
    assert result["code"] == "AccessDenied"


def iam_control(endpoint: str, **body: Any) -> dict[str, Any]:
    data = json.dumps(body).encode() if body else None
    request = urllib.request.Request(
        f"{endpoint}/_localcloud/iam", data=data, method="POST" if body else "GET"
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        document: dict[str, Any] = json.loads(response.read())
    return document


def wait_for_execution(sfn: Any, arn: str, timeout: float = 30) -> dict[str, Any]:
    execution: dict[str, Any] = {}

    def finished() -> bool:
        execution.update(sfn.describe_execution(executionArn=arn))
        return execution["status"] != "RUNNING"

    wait_until(finished, timeout=timeout, message=f"{arn} to finish")
    return execution


def _messages_in(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def test_a_session_a_client_assumes_keeps_administrator_rights(endpoint: str, deployed: None) -> None:
    # The CDK CLI assumes its bootstrap roles for every deploy: deploys keep every right. Only the sessions
    # the local cloud issues (functions, state machines, mappings, deliveries) are enforced.
    credentials = client(endpoint, "sts").assume_role(
        RoleArn=f"arn:aws:iam::{ACCOUNT_ID}:role/{CALLER_ROLE}", RoleSessionName="deploy"
    )["Credentials"]
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )
    s3.put_object(Bucket=BUCKET, Key="out/deployed.txt", Body=b"x")
