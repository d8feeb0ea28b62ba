"""The operation table (no server): real SDK requests, as botocore puts them on the wire, read back from a
WSGI environ, and the IAM action, resource ARN and condition keys each is authorized on. Then: every call the
pipeline's handlers, its state machine and the local cloud's pollers make has a row, and the interpreter
modules that sign integration calls are all patched."""

from __future__ import annotations

import ast
import importlib
import io
import json
import pkgutil
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.config import Config

from localcloud.services.iam import actions, requests
from localcloud.services.iam.authorization import Check
from localcloud.services.stepfunctions import execution_role

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
ACCOUNT = "123456789012"
SCOPE = actions.Scope(account=ACCOUNT, region=REGION)
ENDPOINT = "http://localhost:4566"
TABLE = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/jobs"
QUEUE_URL = f"{ENDPOINT}/{ACCOUNT}/jobs-dlq"
QUEUE = f"arn:aws:sqs:{REGION}:{ACCOUNT}:jobs-dlq"
FUNCTION = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:worker"
MACHINE = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:jobs"


class _Sent(Exception):
    pass


def environ_of(service: str, method: str, *, addressing: str = "path", **params: Any) -> dict[str, Any]:
    """The WSGI environ of the request botocore sends for `method(**params)` (never sent)."""
    client = boto3.client(
        service,
        endpoint_url=ENDPOINT,
        region_name=REGION,
        aws_access_key_id="ASIAEXAMPLEEXAMPLE12",
        aws_secret_access_key="secret",
        aws_session_token="token",
        config=Config(s3={"addressing_style": addressing}),
    )
    sent: dict[str, Any] = {}

    def capture(request: Any, **_: Any) -> None:
        sent["request"] = request
        raise _Sent

    client.meta.events.register("before-send", capture)
    with pytest.raises(_Sent):
        getattr(client, method)(**params)
    request = sent["request"]
    url = urlsplit(request.url)
    body = request.body or b""
    if isinstance(body, str):
        body = body.encode()
    elif not isinstance(body, bytes):
        body = body.read()
    environ: dict[str, Any] = {
        "REQUEST_METHOD": request.method,
        "PATH_INFO": url.path,
        "RAW_URI": url.path + (f"?{url.query}" if url.query else ""),
        "QUERY_STRING": url.query,
        "wsgi.input": io.BytesIO(body),
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_HOST": url.netloc,
    }
    for name, value in request.headers.items():
        text = value.decode() if isinstance(value, bytes) else str(value)
        key = name.upper().replace("-", "_")
        environ[key if key == "CONTENT_TYPE" else f"HTTP_{key}"] = text
    return environ


def checks_of(service: str, method: str, **params: Any) -> list[tuple[str, str]] | None:
    found = full_checks_of(service, method, **params)
    return None if found is None else [(check.action, check.resource) for check in found]


def full_checks_of(service: str, method: str, addressing: str = "path", **params: Any) -> list[Check] | None:
    environ = environ_of(service, method, addressing=addressing, **params)
    request = requests.parse(environ)
    assert request is not None
    # The body is still there for moto to read.
    assert environ["wsgi.input"].read() == request.body or not request.body
    return actions.checks(request, SCOPE)


# -- S3 ---------------------------------------------------------------------------------------------------


def test_get_object_and_head_object_are_s3_get_object() -> None:
    assert checks_of("s3", "get_object", Bucket="data", Key="in/a b.jsonl") == [
        ("s3:GetObject", "arn:aws:s3:::data/in/a b.jsonl")
    ]
    assert checks_of("s3", "head_object", Bucket="data", Key="in/a.jsonl") == [
        ("s3:GetObject", "arn:aws:s3:::data/in/a.jsonl")
    ]


def test_naming_a_version_is_the_version_action() -> None:
    for method in ("get_object", "head_object"):
        assert checks_of("s3", method, Bucket="data", Key="in/a.jsonl", VersionId="v1") == [
            ("s3:GetObjectVersion", "arn:aws:s3:::data/in/a.jsonl")
        ]
    assert checks_of("s3", "delete_object", Bucket="data", Key="k", VersionId="v1") == [
        ("s3:DeleteObjectVersion", "arn:aws:s3:::data/k")
    ]


def test_virtual_host_addressing_names_the_same_object() -> None:
    assert full_checks_of("s3", "get_object", addressing="virtual", Bucket="data", Key="in/a.jsonl") == [
        Check("s3:GetObject", "arn:aws:s3:::data/in/a.jsonl")
    ]


def test_put_object_carries_its_encryption_header_as_a_condition_key() -> None:
    (check,) = full_checks_of(  # type: ignore[misc]
        "s3", "put_object", Bucket="data", Key="out/j/part-0.jsonl", Body=b"x", ServerSideEncryption="AES256"
    )
    assert (check.action, check.resource) == ("s3:PutObject", "arn:aws:s3:::data/out/j/part-0.jsonl")
    assert check.context == {"s3:x-amz-server-side-encryption": "AES256"}


def test_listing_is_s3_list_bucket_on_the_bucket_with_its_prefix() -> None:
    (check,) = full_checks_of("s3", "list_objects_v2", Bucket="data", Prefix="out/j/")  # type: ignore[misc]
    assert (check.action, check.resource) == ("s3:ListBucket", "arn:aws:s3:::data")
    assert check.context == {"s3:prefix": "out/j/"}
    assert checks_of("s3", "head_bucket", Bucket="data") == [("s3:ListBucket", "arn:aws:s3:::data")]


def test_copy_reads_the_source_and_writes_the_target() -> None:
    assert checks_of(
        "s3",
        "copy_object",
        Bucket="data",
        Key="out/b",
        CopySource={"Bucket": "inputs", "Key": "in/a", "VersionId": "v1"},
    ) == [("s3:GetObjectVersion", "arn:aws:s3:::inputs/in/a"), ("s3:PutObject", "arn:aws:s3:::data/out/b")]


def test_delete_objects_is_authorized_per_key() -> None:
    assert checks_of(
        "s3",
        "delete_objects",
        Bucket="data",
        Delete={"Objects": [{"Key": "out/a"}, {"Key": "out/b", "VersionId": "v2"}]},
    ) == [
        ("s3:DeleteObject", "arn:aws:s3:::data/out/a"),
        ("s3:DeleteObjectVersion", "arn:aws:s3:::data/out/b"),
    ]


# -- DynamoDB ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["get_item", "put_item", "update_item", "delete_item"])
def test_item_operations_are_on_the_table(method: str) -> None:
    params: dict[str, Any] = {"TableName": "jobs"}
    params |= {"Item": {"job_id": {"S": "j"}}} if method == "put_item" else {"Key": {"job_id": {"S": "j"}}}
    action = "dynamodb:" + "".join(part.title() for part in method.split("_"))
    assert checks_of("dynamodb", method, **params) == [(action, TABLE)]
    # The table's ARN works as its name too.
    assert checks_of("dynamodb", method, **{**params, "TableName": TABLE}) == [(action, TABLE)]


def test_query_on_an_index_is_on_the_index() -> None:
    assert checks_of(
        "dynamodb",
        "query",
        TableName="jobs",
        IndexName="by-status",
        KeyConditionExpression="#s = :s",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": {"S": "RUNNING"}},
    ) == [("dynamodb:Query", f"{TABLE}/index/by-status")]
    assert checks_of("dynamodb", "scan", TableName="jobs") == [("dynamodb:Scan", TABLE)]


def test_a_transaction_needs_each_items_action() -> None:
    assert checks_of(
        "dynamodb",
        "transact_write_items",
        TransactItems=[
            {"Put": {"TableName": "jobs", "Item": {"job_id": {"S": "a"}}}},
            {
                "ConditionCheck": {
                    "TableName": "locks",
                    "Key": {"id": {"S": "a"}},
                    "ConditionExpression": "attribute_exists(id)",
                }
            },
        ],
    ) == [
        ("dynamodb:PutItem", TABLE),
        ("dynamodb:ConditionCheckItem", f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/locks"),
    ]


def test_stream_reads_are_on_the_stream() -> None:
    stream = f"{TABLE}/stream/2026-12-07T00:00:00.000"
    assert checks_of("dynamodbstreams", "describe_stream", StreamArn=stream) == [
        ("dynamodb:DescribeStream", stream)
    ]
    assert checks_of("dynamodbstreams", "get_records", ShardIterator=f"{stream}|1|AAAA") == [
        ("dynamodb:GetRecords", stream)
    ]
    assert checks_of("dynamodbstreams", "list_streams") == [("dynamodb:ListStreams", "*")]


# -- SQS, SNS, Lambda, Step Functions, EventBridge, the rest ----------------------------------------------


def test_queue_operations_are_on_the_queue() -> None:
    assert checks_of("sqs", "send_message", QueueUrl=QUEUE_URL, MessageBody="x") == [
        ("sqs:SendMessage", QUEUE)
    ]
    assert checks_of(
        "sqs", "delete_message_batch", QueueUrl=QUEUE_URL, Entries=[{"Id": "0", "ReceiptHandle": "r"}]
    ) == [("sqs:DeleteMessage", QUEUE)]
    assert checks_of("sqs", "get_queue_url", QueueName="jobs-dlq") == [("sqs:GetQueueUrl", QUEUE)]


def test_publish_is_on_the_topic() -> None:
    topic = f"arn:aws:sns:{REGION}:{ACCOUNT}:alarms"
    assert checks_of("sns", "publish", TopicArn=topic, Message="m") == [("sns:Publish", topic)]


@pytest.mark.parametrize(
    ("params", "resource"),
    [
        ({"FunctionName": "worker"}, FUNCTION),
        ({"FunctionName": "worker:7"}, f"{FUNCTION}:7"),
        ({"FunctionName": f"{FUNCTION}:7"}, f"{FUNCTION}:7"),
        ({"FunctionName": "worker", "Qualifier": "live"}, f"{FUNCTION}:live"),
        ({"FunctionName": f"{ACCOUNT}:function:worker"}, FUNCTION),
    ],
)
def test_invoke_is_on_the_function_or_its_qualified_arn(params: dict[str, Any], resource: str) -> None:
    assert checks_of("lambda", "invoke", **params) == [("lambda:InvokeFunction", resource)]


def test_start_execution_is_on_the_arn_given_a_version_included() -> None:
    assert checks_of("stepfunctions", "start_execution", stateMachineArn=f"{MACHINE}:3") == [
        ("states:StartExecution", f"{MACHINE}:3")
    ]
    execution = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:jobs:e1"
    assert checks_of("stepfunctions", "describe_execution", executionArn=execution) == [
        ("states:DescribeExecution", execution)
    ]


def test_put_events_is_per_entry_on_its_bus_with_source_and_detail_type() -> None:
    found = full_checks_of(
        "events",
        "put_events",
        Entries=[
            {"Source": "pipeline", "DetailType": "Job Succeeded", "Detail": "{}"},
            {"Source": "pipeline", "DetailType": "Job Failed", "Detail": "{}", "EventBusName": "jobs"},
        ],
    )
    assert found == [
        Check(
            "events:PutEvents",
            f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/default",
            {"events:source": "pipeline", "events:detail-type": "Job Succeeded"},
        ),
        Check(
            "events:PutEvents",
            f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/jobs",
            {"events:source": "pipeline", "events:detail-type": "Job Failed"},
        ),
    ]


def test_metrics_logs_and_identity() -> None:
    (metric,) = full_checks_of(  # type: ignore[misc]
        "cloudwatch", "put_metric_data", Namespace="Pipeline", MetricData=[{"MetricName": "m", "Value": 1.0}]
    )
    assert (metric.action, metric.resource, dict(metric.context)) == (
        "cloudwatch:PutMetricData",
        "*",
        {"cloudwatch:namespace": "Pipeline"},
    )
    assert checks_of(
        "logs",
        "put_log_events",
        logGroupName="/aws/lambda/w",
        logStreamName="s",
        logEvents=[{"timestamp": 0, "message": "m"}],
    ) == [("logs:PutLogEvents", f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/w:log-stream:s")]
    # GetCallerIdentity needs no permission.
    assert checks_of("sts", "get_caller_identity") == []


def test_an_operation_without_a_row_is_none() -> None:
    assert checks_of("s3", "get_bucket_acl", Bucket="data") is None
    assert checks_of("dynamodb", "delete_table", TableName="jobs") is None


def test_an_unsigned_request_is_not_an_api_request() -> None:
    assert requests.parse({"REQUEST_METHOD": "GET", "PATH_INFO": "/moto-api/"}) is None


# -- coverage of what the pipeline calls ------------------------------------------------------------------

# Every AWS call of the deployed pipeline made with a role's credentials: the handlers (lambda_src), the
# segmented-job state machine's integrations (its role), and the event source mappings' reads (the
# functions' roles). A new call without a row fails here instead of being refused at run time.
PIPELINE_CALLS = {
    ("s3", "HeadObject"),
    ("s3", "GetObject"),
    ("s3", "PutObject"),
    ("dynamodb", "GetItem"),
    ("dynamodb", "PutItem"),
    ("dynamodb", "UpdateItem"),
    ("stepfunctions", "StartExecution"),
    ("sqs", "SendMessage"),
    ("events", "PutEvents"),
    ("lambda", "Invoke"),
    # SQS event source mapping: the ingest's role
    ("sqs", "GetQueueUrl"),
    ("sqs", "ReceiveMessage"),
    ("sqs", "DeleteMessageBatch"),
    # DynamoDB stream mapping: the events function's role, and its on-failure destination
    ("dynamodbstreams", "DescribeStream"),
    ("dynamodbstreams", "GetShardIterator"),
    ("dynamodbstreams", "GetRecords"),
    ("sts", "GetCallerIdentity"),
}


def test_every_call_the_pipeline_makes_has_a_row() -> None:
    assert sorted(PIPELINE_CALLS - set(actions.rows())) == []


def _adapter_calls() -> set[str]:
    """The boto3 methods lambda_src calls on its injected clients (`self._x.method(...)`)."""
    found: set[str] = set()
    for path in (ROOT / "lambda_src").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Attribute)
                and isinstance(node.func.value.value, ast.Name)
                and node.func.value.value.id == "self"
                and node.func.value.attr in ("_ddb", "_s3", "_sfn", "_sqs", "_events")
            ):
                found.add(node.func.attr)
    return found


def test_the_handlers_call_nothing_missing_from_the_list() -> None:
    python_names = {
        "".join("_" + c.lower() if c.isupper() else c for c in operation).lstrip("_")
        for _, operation in PIPELINE_CALLS
    }
    assert _adapter_calls()
    assert sorted(_adapter_calls() - python_names) == []


def test_every_interpreter_module_that_signs_calls_is_patched() -> None:
    package = importlib.import_module("moto.stepfunctions.parser.asl")
    found = set()
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        try:
            imported = importlib.import_module(module.name)
        except ImportError:
            continue  # LocalStack-only modules moto ships but never imports
        if hasattr(imported, "boto_client_for"):
            found.add(module.name)
    assert found == set(execution_role.CLIENT_MODULES)


def test_rows_are_listed_for_the_documentation() -> None:
    listed = actions.rows()
    assert listed == sorted(listed)
    assert ("s3", "GetObject") in listed
    assert json.dumps(listed)
