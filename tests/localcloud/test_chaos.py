"""Fault injection (`localcloud.core.chaos`): request identification, AWS-shaped errors, rates, counts,
latency, the HTTP control API, and crash/timeout in the Lambda runner.

Everything except the runner tests goes through a real moto server with the middleware installed, called by
real boto3 clients (one attempt each, so that every injection is one ClientError).
"""

from __future__ import annotations

import io
import json
import logging
import os
import threading
import time
import urllib.error
import urllib.request
import uuid
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from localcloud.core import chaos, wire
from localcloud.core.state import DUMMY_CREDENTIALS, REGION
from localcloud.services.lambda_.runner import FunctionSpec, LambdaRunner
from tests.localcloud.support import moto_server

ONE_ATTEMPT = Config(retries={"total_max_attempts": 1})


def client(endpoint: str, service: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        config=ONE_ATTEMPT,
    )


def control(
    endpoint: str, method: str, path: str = "", body: Any = None, raw: bytes | None = None
) -> tuple[int, Any]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(
        f"{endpoint}{chaos.CONTROL_PATH}{path}",
        data=data,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, answer = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, answer = error.code, error.read()
    try:
        return status, json.loads(answer)
    except ValueError:  # not the chaos API (moto's own 404, say): the text says what answered
        return status, answer.decode("utf-8", errors="replace")


# -- identification of real boto3 requests (no server) --------------------------------------------------


class _Sent(Exception):
    pass


def request_environ(service: str, method: str, **params: Any) -> dict[str, Any]:
    """The WSGI environ of the request boto3 would send for `method` (captured before it is sent)."""
    captured: dict[str, Any] = {}

    def capture(request: Any, **_: Any) -> None:
        parts = urlsplit(request.url)
        body = request.body or b""
        body = body.encode() if isinstance(body, str) else body if isinstance(body, bytes) else body.read()
        environ: dict[str, Any] = {
            "REQUEST_METHOD": request.method,
            "PATH_INFO": unquote(parts.path),
            "QUERY_STRING": parts.query,
            "RAW_URI": parts.path + (f"?{parts.query}" if parts.query else ""),
            "wsgi.input": io.BytesIO(body),
            "CONTENT_LENGTH": str(len(body)),
            "HTTP_HOST": parts.netloc,
        }
        for name, value in request.headers.items():
            text = value.decode() if isinstance(value, bytes) else value
            key = name.upper().replace("-", "_")
            environ[key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{key}"] = text
        captured["environ"] = environ
        raise _Sent

    api = client("http://localhost:4566", service)
    api.meta.events.register("before-send.*.*", capture)
    with pytest.raises(_Sent):
        getattr(api, method)(**params)
    return captured["environ"]


WORKER_ARN = "arn:aws:lambda:us-east-1:123456789012:function:worker"
PIPELINE_CALLS = [
    ("s3", "get_object", {"Bucket": "data", "Key": "in/job 1/ü.jsonl", "Range": "bytes=0-99"}, "GetObject"),
    ("s3", "put_object", {"Bucket": "data", "Key": "out/j/part-0.jsonl", "Body": b"{}\n"}, "PutObject"),
    ("s3", "head_object", {"Bucket": "data", "Key": "in/j.jsonl"}, "HeadObject"),
    ("s3", "copy_object", {"Bucket": "data", "Key": "k", "CopySource": "data/j"}, "CopyObject"),
    ("s3", "list_objects_v2", {"Bucket": "data", "Prefix": "out/"}, "ListObjectsV2"),
    ("s3", "list_objects", {"Bucket": "data"}, "ListObjects"),
    (
        "s3",
        "upload_part",
        {"Bucket": "d", "Key": "k", "PartNumber": 1, "UploadId": "u", "Body": b"x"},
        "UploadPart",
    ),
    ("s3", "delete_object", {"Bucket": "data", "Key": "k"}, "DeleteObject"),
    ("s3", "create_bucket", {"Bucket": "data"}, "CreateBucket"),
    ("dynamodb", "get_item", {"TableName": "jobs", "Key": {"job_id": {"S": "j"}}}, "GetItem"),
    ("dynamodb", "put_item", {"TableName": "jobs", "Item": {"job_id": {"S": "j"}}}, "PutItem"),
    ("dynamodb", "update_item", {"TableName": "jobs", "Key": {"job_id": {"S": "j"}}}, "UpdateItem"),
    ("dynamodb", "query", {"TableName": "jobs", "KeyConditionExpression": "a = :a"}, "Query"),
    ("sqs", "send_message", {"QueueUrl": "http://localhost:4566/1/q", "MessageBody": "{}"}, "SendMessage"),
    ("sqs", "receive_message", {"QueueUrl": "http://localhost:4566/1/q"}, "ReceiveMessage"),
    (
        "sqs",
        "delete_message",
        {"QueueUrl": "http://localhost:4566/1/q", "ReceiptHandle": "r"},
        "DeleteMessage",
    ),
    (
        "stepfunctions",
        "start_execution",
        {"stateMachineArn": "arn:aws:states:us-east-1:1:stateMachine:m"},
        "StartExecution",
    ),
    (
        "stepfunctions",
        "describe_execution",
        {"executionArn": "arn:aws:states:us-east-1:1:execution:m:e"},
        "DescribeExecution",
    ),
    ("lambda", "invoke", {"FunctionName": "worker", "Payload": b"{}"}, "Invoke"),
    ("lambda", "get_function", {"FunctionName": "worker"}, "GetFunction"),
    ("sns", "publish", {"TopicArn": "arn:aws:sns:us-east-1:1:alarms", "Message": "m"}, "Publish"),
    ("events", "put_events", {"Entries": [{"Source": "s", "DetailType": "d", "Detail": "{}"}]}, "PutEvents"),
]


@pytest.mark.parametrize(("service", "method", "params", "operation"), PIPELINE_CALLS)
def test_service_and_operation_of_real_boto3_requests(
    service: str, method: str, params: dict[str, Any], operation: str
) -> None:
    call = wire.identify(request_environ(service, method, **params))

    assert call is not None
    assert (call.service, call.operation) == (service, operation)


def test_lambda_function_is_read_from_the_path_whatever_form_the_caller_uses() -> None:
    for given in ("worker", WORKER_ARN, "worker:live", f"{WORKER_ARN}:live", "123456789012:function:worker"):
        call = wire.identify(request_environ("lambda", "invoke", FunctionName=given, Payload=b"{}"))
        assert call is not None and call.function is not None
        assert wire.function_name(call.function) == "worker", given


def test_an_s3_call_names_its_object() -> None:
    call = wire.identify(
        request_environ("s3", "put_object", Bucket="data", Key="out/job 1/part-0.jsonl", Body=b"x")
    )
    assert call is not None and call.resource == "data/out/job 1/part-0.jsonl"
    listing = wire.identify(request_environ("s3", "list_objects_v2", Bucket="data", Prefix="out/"))
    assert listing is not None and listing.resource == "data/"


def test_s3_virtual_host_style_is_understood_too() -> None:
    environ = request_environ("s3", "get_object", Bucket="data", Key="in/a.jsonl")
    environ["HTTP_HOST"] = "data.localhost:4566"
    environ["RAW_URI"] = "/in/a.jsonl"

    call = wire.identify(environ)

    assert call is not None and call.operation == "GetObject"


def test_requests_that_are_not_service_calls_are_left_alone() -> None:
    unsigned = {"REQUEST_METHOD": "GET", "PATH_INFO": "/moto-api/", "RAW_URI": "/moto-api/"}
    cloudformation = request_environ("cloudformation", "describe_stacks")

    assert wire.identify(unsigned) is None
    assert wire.identify(cloudformation) is None


# -- against a moto server with the middleware ----------------------------------------------------------


@pytest.fixture(scope="module")
def store() -> Iterator[chaos.ChaosStore]:
    rules = chaos.ChaosStore()
    undo = chaos.install(rules)
    try:
        yield rules
    finally:
        undo()


@pytest.fixture(scope="module")
def endpoint(store: chaos.ChaosStore) -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture(autouse=True)
def no_rules_left(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "store" in request.fixturenames:
        request.getfixturevalue("store").clear()


@pytest.fixture(scope="module")
def resources(endpoint: str) -> dict[str, str]:
    suffix = uuid.uuid4().hex[:8]
    s3 = client(endpoint, "s3")
    bucket = f"chaos-{suffix}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="in.jsonl", Body=b'{"a": 1}\n')
    table = f"jobs-{suffix}"
    client(endpoint, "dynamodb").create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "job_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "job_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    queue = client(endpoint, "sqs").create_queue(QueueName=f"q-{suffix}")["QueueUrl"]
    topic = client(endpoint, "sns").create_topic(Name=f"t-{suffix}")["TopicArn"]
    return {"bucket": bucket, "table": table, "queue": queue, "topic": topic}


def api_call(endpoint: str, resources: dict[str, str], service: str, operation: str) -> Callable[[], Any]:
    """A call of `operation` with valid parameters (so that it succeeds when nothing is injected)."""
    api = client(endpoint, service)
    # Lambdas throughout: `api` has only the methods of `service`, so nothing may be looked up eagerly.
    key = {"job_id": {"S": "job-1"}}
    calls: dict[tuple[str, str], Callable[[], Any]] = {
        ("s3", "GetObject"): lambda: api.get_object(Bucket=resources["bucket"], Key="in.jsonl"),
        ("s3", "HeadObject"): lambda: api.head_object(Bucket=resources["bucket"], Key="in.jsonl"),
        ("s3", "PutObject"): lambda: api.put_object(
            Bucket=resources["bucket"], Key="out.jsonl", Body=b"x" * 300_000
        ),
        ("dynamodb", "GetItem"): lambda: api.get_item(TableName=resources["table"], Key=key),
        ("dynamodb", "UpdateItem"): lambda: api.update_item(
            TableName=resources["table"],
            Key=key,
            UpdateExpression="SET n = :n",
            ExpressionAttributeValues={":n": {"N": "1"}},
        ),
        ("dynamodb", "ListTables"): lambda: api.list_tables(),  # noqa: PLW0108
        ("sqs", "SendMessage"): lambda: api.send_message(QueueUrl=resources["queue"], MessageBody="{}"),
        ("sqs", "ReceiveMessage"): lambda: api.receive_message(QueueUrl=resources["queue"]),
        ("sqs", "DeleteMessage"): lambda: api.delete_message(QueueUrl=resources["queue"], ReceiptHandle="x"),
        ("stepfunctions", "StartExecution"): lambda: api.start_execution(
            stateMachineArn="arn:aws:states:us-east-1:123456789012:stateMachine:none"
        ),
        ("stepfunctions", "ListStateMachines"): lambda: api.list_state_machines(),  # noqa: PLW0108
        ("lambda", "Invoke"): lambda: api.invoke(FunctionName="worker", Payload=b"{}"),
        ("sns", "Publish"): lambda: api.publish(TopicArn=resources["topic"], Message="m"),
        ("events", "PutEvents"): lambda: api.put_events(
            Entries=[{"Source": "chaos.test", "DetailType": "t", "Detail": "{}"}]
        ),
    }
    return calls[(service, operation)]


# (service, operation, --error, Error.Code botocore reports, HTTP status, the modeled exception botocore maps)
ERROR_SHAPES = [
    ("s3", "GetObject", "SlowDown", "SlowDown", 503, None),
    ("s3", "GetObject", "InternalError", "InternalError", 500, None),
    ("s3", "PutObject", "AccessDenied", "AccessDenied", 403, None),
    # A HEAD answer has no body: botocore, as with AWS, names the error after the status.
    ("s3", "HeadObject", "SlowDown", "503", 503, None),
    (
        "dynamodb",
        "UpdateItem",
        "ProvisionedThroughputExceededException",
        "ProvisionedThroughputExceededException",
        400,
        "ProvisionedThroughputExceededException",
    ),
    ("dynamodb", "GetItem", "ThrottlingException", "ThrottlingException", 400, "ThrottlingException"),
    ("dynamodb", "GetItem", "InternalServerError", "InternalServerError", 500, "InternalServerError"),
    (
        "sqs",
        "SendMessage",
        "QueueDoesNotExist",
        "AWS.SimpleQueueService.NonExistentQueue",
        400,
        "QueueDoesNotExist",
    ),
    ("sqs", "ReceiveMessage", "RequestThrottled", "RequestThrottled", 400, "RequestThrottled"),
    ("sqs", "DeleteMessage", "ServiceUnavailable", "ServiceUnavailable", 503, None),
    (
        "stepfunctions",
        "StartExecution",
        "ExecutionLimitExceeded",
        "ExecutionLimitExceeded",
        400,
        "ExecutionLimitExceeded",
    ),
    ("stepfunctions", "StartExecution", "ThrottlingException", "ThrottlingException", 400, None),
    (
        "lambda",
        "Invoke",
        "TooManyRequestsException",
        "TooManyRequestsException",
        429,
        "TooManyRequestsException",
    ),
    ("lambda", "Invoke", "ServiceException", "ServiceException", 500, "ServiceException"),
    ("sns", "Publish", "ThrottledException", "Throttled", 429, "ThrottledException"),
    ("sns", "Publish", "InternalError", "InternalError", 500, "InternalErrorException"),
    ("events", "PutEvents", "ThrottlingException", "ThrottlingException", 400, None),
    ("events", "PutEvents", "InternalException", "InternalException", 500, "InternalException"),
    # Not in the table nor in the model: 400, the status of a client error.
    ("dynamodb", "GetItem", "MadeUpError", "MadeUpError", 400, None),
]


@pytest.mark.parametrize(("service", "operation", "error", "code", "status", "exception"), ERROR_SHAPES)
def test_errors_are_shaped_as_the_service_shapes_them(
    store: chaos.ChaosStore,
    endpoint: str,
    resources: dict[str, str],
    service: str,
    operation: str,
    error: str,
    code: str,
    status: int,
    exception: str | None,
) -> None:
    call = api_call(endpoint, resources, service, operation)
    store.add({"service": service, "operation": operation, "error": error})

    with pytest.raises(ClientError) as raised:
        call()

    response = raised.value.response
    assert (response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]) == (code, status)
    if exception is not None:
        # botocore maps it onto the modeled exception class, as it does for AWS's answer.
        assert type(raised.value).__name__ == exception
    if operation != "HeadObject":
        assert "localcloud chaos rule" in response["Error"]["Message"]


def test_only_the_named_operation_is_affected_and_the_others_still_work(
    store: chaos.ChaosStore, endpoint: str, resources: dict[str, str]
) -> None:
    store.add({"service": "s3", "operation": "GetObject", "error": "SlowDown"})
    store.add({"service": "dynamodb", "operation": "*", "error": "InternalServerError"})

    assert api_call(endpoint, resources, "s3", "HeadObject")()["ContentLength"] == 9
    assert api_call(endpoint, resources, "sqs", "SendMessage")()["MessageId"]
    with pytest.raises(ClientError, match="SlowDown"):
        api_call(endpoint, resources, "s3", "GetObject")()
    with pytest.raises(ClientError, match="InternalServerError"):
        api_call(endpoint, resources, "dynamodb", "ListTables")()


def injected_indexes(endpoint: str, resources: dict[str, str], rule: dict[str, Any], calls: int) -> list[int]:
    """Add `rule` (s3 HeadObject) over HTTP, make `calls` HeadObject calls (with GetObject calls, which the
    rule does not match, in between), and return the indexes of the calls that failed."""
    status, added = control(endpoint, "POST", body={"service": "s3", "operation": "HeadObject", **rule})
    assert status == 201, added
    head = api_call(endpoint, resources, "s3", "HeadObject")
    get = api_call(endpoint, resources, "s3", "GetObject")
    failed = []
    for index in range(calls):
        try:
            head()
        except ClientError as error:
            assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 503
            failed.append(index)
        if index % 3 == 0:
            get()
    status, listed = control(endpoint, "GET", "/" + added["rule"]["id"])
    assert (listed["rule"]["matched"], listed["rule"]["injected"]) == (calls, len(failed))
    control(endpoint, "DELETE", "/" + added["rule"]["id"])
    return failed


def test_rate_is_deterministic_per_seed(
    store: chaos.ChaosStore, endpoint: str, resources: dict[str, str]
) -> None:
    rule = {"error": "SlowDown", "rate": 0.5, "seed": 7}
    first = injected_indexes(endpoint, resources, rule, 40)
    again = injected_indexes(endpoint, resources, rule, 40)
    other_seed = injected_indexes(endpoint, resources, {**rule, "seed": 8}, 40)

    assert first == again
    assert 5 < len(first) < 35
    assert other_seed != first


def test_rate_zero_never_and_rate_one_always(
    store: chaos.ChaosStore, endpoint: str, resources: dict[str, str]
) -> None:
    assert injected_indexes(endpoint, resources, {"error": "SlowDown", "rate": 0}, 10) == []
    assert injected_indexes(endpoint, resources, {"error": "SlowDown", "rate": 1}, 10) == list(range(10))


def test_count_stops_after_n_injections(
    store: chaos.ChaosStore, endpoint: str, resources: dict[str, str]
) -> None:
    assert injected_indexes(endpoint, resources, {"error": "SlowDown", "count": 3}, 6) == [0, 1, 2]
    rule = store.add({"service": "s3", "operation": "HeadObject", "error": "SlowDown", "count": 1})
    with pytest.raises(ClientError):
        api_call(endpoint, resources, "s3", "HeadObject")()
    api_call(endpoint, resources, "s3", "HeadObject")()

    [listed] = store.rules()
    assert (listed["id"], listed["matched"], listed["injected"], listed["exhausted"]) == (rule.id, 2, 1, True)


def test_latency_delays_the_answer_alone_or_before_an_error(
    store: chaos.ChaosStore, endpoint: str, resources: dict[str, str]
) -> None:
    store.add({"service": "dynamodb", "operation": "GetItem", "latency_ms": 400})
    store.add({"service": "sqs", "operation": "SendMessage", "latency_ms": 300, "error": "RequestThrottled"})

    started = time.monotonic()
    api_call(endpoint, resources, "dynamodb", "GetItem")()
    assert time.monotonic() - started >= 0.4

    started = time.monotonic()
    with pytest.raises(ClientError, match="RequestThrottled"):
        api_call(endpoint, resources, "sqs", "SendMessage")()
    assert time.monotonic() - started >= 0.3


def test_latency_does_not_hold_up_other_requests(
    store: chaos.ChaosStore, endpoint: str, resources: dict[str, str]
) -> None:
    store.add({"service": "dynamodb", "operation": "GetItem", "latency_ms": 2000})
    slow_done = threading.Event()

    def slow() -> None:
        api_call(endpoint, resources, "dynamodb", "GetItem")()
        slow_done.set()

    started = time.monotonic()
    worker = threading.Thread(target=slow)
    worker.start()
    api_call(endpoint, resources, "dynamodb", "ListTables")()
    assert not slow_done.is_set(), "a call to another operation waited for the delayed one"
    worker.join(timeout=10)
    assert slow_done.is_set() and time.monotonic() - started >= 2.0


def test_rules_apply_in_order_latency_adds_up_and_an_error_ends_the_list(
    store: chaos.ChaosStore, endpoint: str, resources: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    slow = store.add({"service": "s3", "operation": "*", "latency_ms": 200})
    throttle = store.add({"service": "s3", "operation": "GetObject", "error": "SlowDown"})
    never = store.add({"service": "s3", "operation": "GetObject", "error": "InternalError"})
    caplog.set_level(logging.INFO, logger="localcloud.core.chaos")

    started = time.monotonic()
    with pytest.raises(ClientError, match="SlowDown"):
        api_call(endpoint, resources, "s3", "GetObject")()

    assert time.monotonic() - started >= 0.2
    counters = {rule["id"]: (rule["matched"], rule["injected"]) for rule in store.rules()}
    assert counters == {slow.id: (1, 1), throttle.id: (1, 1), never.id: (0, 0)}
    lines = [record.getMessage() for record in caplog.records if "chaos injected" in record.getMessage()]
    assert lines == [
        f"chaos injected rule={slow.id} service=s3 operation=GetObject latency_ms=200",
        f"chaos injected rule={throttle.id} service=s3 operation=GetObject error=SlowDown status=503",
    ]


def test_an_s3_rule_with_a_resource_spares_every_other_object(
    store: chaos.ChaosStore, endpoint: str, resources: dict[str, str]
) -> None:
    """One job's output, say: the mechanism that replaced the per-job `fault_injection` request field."""
    bucket = resources["bucket"]
    store.add(
        {"service": "s3", "operation": "PutObject", "error": "SlowDown", "resource": f"{bucket}/out/job-1/"}
    )
    s3 = client(endpoint, "s3")

    with pytest.raises(s3.exceptions.ClientError, match="SlowDown"):
        s3.put_object(Bucket=bucket, Key="out/job-1/part-000000000000000.jsonl", Body=b"{}")
    s3.put_object(Bucket=bucket, Key="out/job-2/part-000000000000000.jsonl", Body=b"{}")
    s3.put_object(Bucket=bucket, Key="out/job-10.jsonl", Body=b"{}")

    (rule,) = store.rules()
    assert (rule["matched"], rule["injected"], rule["resource"]) == (1, 1, f"{bucket}/out/job-1/")


def test_lambda_invoke_errors_honour_the_function_filter(
    store: chaos.ChaosStore, endpoint: str, resources: dict[str, str]
) -> None:
    store.add(
        {
            "service": "lambda",
            "operation": "Invoke",
            "error": "TooManyRequestsException",
            "function": WORKER_ARN,
        }
    )
    api = client(endpoint, "lambda")

    with pytest.raises(api.exceptions.TooManyRequestsException):
        api.invoke(FunctionName="worker", Payload=b"{}")
    # Another function reaches moto, which says it does not exist: the rule did not touch it.
    with pytest.raises(api.exceptions.ResourceNotFoundException):
        api.invoke(FunctionName="ingest", Payload=b"{}")


# -- the control API ------------------------------------------------------------------------------------


def test_control_api_add_list_get_delete_clear(store: chaos.ChaosStore, endpoint: str) -> None:
    status, added = control(
        endpoint,
        "POST",
        body={
            "service": "s3",
            "operation": "GetObject",
            "error": "SlowDown",
            "rate": 0.3,
            "seed": 1,
            "count": 5,
        },
    )
    assert status == 201
    rule = added["rule"]
    assert {key: rule[key] for key in ("service", "operation", "error", "rate", "seed", "count")} == {
        "service": "s3",
        "operation": "GetObject",
        "error": "SlowDown",
        "rate": 0.3,
        "seed": 1,
        "count": 5,
    }
    assert (rule["error_code"], rule["http_status"], rule["matched"], rule["injected"]) == (
        "SlowDown",
        503,
        0,
        0,
    )
    _, second = control(endpoint, "POST", body={"service": "sqs", "operation": "*", "latency_ms": 10})
    assert isinstance(second["rule"]["seed"], int)  # drawn, and shown, when none is given

    assert [r["id"] for r in control(endpoint, "GET")[1]["rules"]] == [rule["id"], second["rule"]["id"]]
    assert control(endpoint, "GET", "/" + rule["id"]) == (200, {"rule": rule})
    assert control(endpoint, "DELETE", "/" + rule["id"]) == (200, {"deleted": rule["id"]})
    assert control(endpoint, "GET", "/" + rule["id"])[0] == 404
    assert control(endpoint, "DELETE") == (200, {"cleared": 1})
    assert control(endpoint, "GET") == (200, {"rules": []})
    assert control(endpoint, "PUT")[0] == 405


MALFORMED = [
    ({"service": "s4", "operation": "GetObject", "error": "SlowDown"}, "unknown service 's4'"),
    ({"operation": "GetObject", "error": "SlowDown"}, "service is required"),
    (
        {"service": "s3", "operation": "GetObjekt", "error": "SlowDown"},
        "unknown operation 'GetObjekt' for s3; did you mean GetObject",
    ),
    ({"service": "s3", "error": "SlowDown"}, "operation is required"),
    (
        {"service": "s3", "operation": "GetObject", "error": "SlowDown", "rate": 1.5},
        "rate must be a number from 0 to 1",
    ),
    (
        {"service": "s3", "operation": "GetObject", "error": "SlowDown", "rate": -0.1},
        "rate must be a number from 0 to 1",
    ),
    (
        {"service": "s3", "operation": "GetObject", "error": "SlowDown", "rate": "half"},
        "rate must be a number",
    ),
    ({"service": "s3", "operation": "GetObject", "latency_ms": -1}, "latency_ms must not be negative"),
    ({"service": "s3", "operation": "GetObject", "latency_ms": 1.5}, "latency_ms must be an integer"),
    (
        {"service": "s3", "operation": "GetObject", "error": "SlowDown", "count": 0},
        "count must be at least 1",
    ),
    (
        {"service": "s3", "operation": "GetObject", "error": "crash"},
        "error crash applies to --service lambda only",
    ),
    (
        {"service": "dynamodb", "operation": "*", "error": "timeout"},
        "error timeout applies to --service lambda only",
    ),
    ({"service": "lambda", "operation": "GetFunction", "error": "crash"}, "applies to the Invoke operation"),
    (
        {"service": "s3", "operation": "*", "error": "SlowDown", "function": "worker"},
        "function applies to --service lambda only",
    ),
    (
        {"service": "lambda", "operation": "ListFunctions", "error": "ServiceException", "function": "w"},
        "names no function",
    ),
    (
        {"service": "lambda", "operation": "Invoke", "error": "crash", "function": "*"},
        'function must be a function name or ARN, not "*"',
    ),
    ({"service": "s3", "operation": "GetObject"}, "nothing to inject"),
    (
        {"service": "dynamodb", "operation": "*", "error": "InternalServerError", "resource": "jobs"},
        "resource applies to --service s3 (BUCKET/KEY) only, not dynamodb",
    ),
    (
        {"service": "s3", "operation": "*", "error": "SlowDown", "resource": ""},
        'resource must be a non-empty prefix, not ""',
    ),
    ({"service": "s3", "operation": "GetObject", "error": "Slow Down"}, "error must be an AWS error code"),
    (
        {"service": "s3", "operation": "GetObject", "error": "SlowDown", "probability": 1},
        "unknown field 'probability'",
    ),
    (["not", "an", "object"], "a rule is a JSON object"),
]


@pytest.mark.parametrize(("body", "message"), MALFORMED)
def test_malformed_rules_are_refused_with_one_line(
    store: chaos.ChaosStore, endpoint: str, body: Any, message: str
) -> None:
    status, answer = control(endpoint, "POST", body=body)

    assert status == 400
    assert message in answer["error"] and "\n" not in answer["error"]
    assert store.rules() == []


def test_a_body_that_is_not_json_is_refused(store: chaos.ChaosStore, endpoint: str) -> None:
    assert control(endpoint, "POST", raw=b"service=s3") == (
        400,
        {"error": "the body must be a JSON object (a chaos rule)"},
    )


def test_the_control_api_is_never_affected(
    store: chaos.ChaosStore, endpoint: str, resources: dict[str, str]
) -> None:
    for service in chaos.SERVICES:
        store.add({"service": service, "operation": "*", "error": "InternalError"})

    status, listed = control(endpoint, "GET")

    assert status == 200 and len(listed["rules"]) == len(chaos.SERVICES)
    assert all(rule["matched"] == 0 for rule in listed["rules"])


# -- crash and timeout in the Lambda runner -------------------------------------------------------------

APP = """
import os
import time


def ok(event, context):
    return {"pid": os.getpid()}


def slow(event, context):
    time.sleep(event.get("seconds", 0.2))
    return {"pid": os.getpid()}
"""


def code_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", APP)
    return buffer.getvalue()


CODE = code_zip()


def function(name: str, handler: str = "app.ok", timeout: float = 3.0) -> FunctionSpec:
    return FunctionSpec(
        name=name,
        arn=f"arn:aws:lambda:us-east-1:123456789012:function:{name}",
        handler=handler,
        runtime="python3.14",
        timeout_seconds=timeout,
        memory_mb=256,
        version="$LATEST",
        environment={},
        code_sha256="c" * 64,
    )


@pytest.fixture
def faults() -> chaos.ChaosStore:
    return chaos.ChaosStore()


@pytest.fixture
def runner(tmp_path: Path, faults: chaos.ChaosStore) -> Iterator[LambdaRunner]:
    lambda_runner = LambdaRunner(home=tmp_path, endpoint="http://localhost:1", faults=faults.lambda_fault)
    yield lambda_runner
    lambda_runner.shutdown()


def invoke(runner: LambdaRunner, spec: FunctionSpec, event: Any = None) -> Any:
    return runner.invoke(spec, json.dumps(event or {}).encode(), code=lambda: CODE)


def test_crash_kills_the_environment_and_the_next_invocation_gets_a_new_one(
    runner: LambdaRunner, faults: chaos.ChaosStore, caplog: pytest.LogCaptureFixture
) -> None:
    worker = function("worker")
    warm_pid = json.loads(invoke(runner, worker).payload)["pid"]
    rule = faults.add(
        {"service": "lambda", "operation": "Invoke", "error": "crash", "function": "worker", "count": 1}
    )
    caplog.set_level(logging.INFO, logger="localcloud.core.chaos")

    crashed = invoke(runner, worker)
    after = invoke(runner, worker)

    assert crashed.error_type == "Runtime.ExitError"
    document = json.loads(crashed.payload)
    assert document["errorType"] == "Runtime.ExitError"
    assert "Runtime exited with error: signal 9" in document["errorMessage"]
    assert after.error_type is None
    assert json.loads(after.payload)["pid"] != warm_pid
    with pytest.raises(ProcessLookupError):
        os.kill(warm_pid, 0)
    assert [(r["matched"], r["injected"]) for r in faults.rules()] == [(2, 1)]
    [line] = [r.getMessage() for r in caplog.records if "chaos injected" in r.getMessage()]
    assert line.startswith(
        f"chaos injected rule={rule.id} service=lambda operation=Invoke function=worker error=crash"
    )


def test_crash_strikes_during_a_long_invocation(runner: LambdaRunner, faults: chaos.ChaosStore) -> None:
    slow = function("slow", handler="app.slow", timeout=10.0)
    # Recent durations of ~1 s place the kill within the first second of a 5 s invocation.
    invoke(runner, slow, {"seconds": 1.0})
    faults.add({"service": "lambda", "operation": "*", "error": "crash", "seed": 3})

    started = time.monotonic()
    crashed = invoke(runner, slow, {"seconds": 5.0})

    assert crashed.error_type == "Runtime.ExitError"
    assert time.monotonic() - started < 4.0, "the environment was not killed during the invocation"


def test_function_filter_spares_other_functions(runner: LambdaRunner, faults: chaos.ChaosStore) -> None:
    faults.add(
        {
            "service": "lambda",
            "operation": "Invoke",
            "error": "crash",
            "function": "arn:aws:lambda:us-east-1:123456789012:function:worker",
        }
    )

    assert invoke(runner, function("ingest")).error_type is None
    assert invoke(runner, function("worker")).error_type == "Runtime.ExitError"
    assert [(r["matched"], r["injected"]) for r in faults.rules()] == [(1, 1)]


def test_timeout_holds_the_invocation_to_its_timeout(runner: LambdaRunner, faults: chaos.ChaosStore) -> None:
    quick = function("quick", timeout=1.0)
    warm_pid = json.loads(invoke(runner, quick).payload)["pid"]
    faults.add({"service": "lambda", "operation": "Invoke", "error": "timeout", "count": 1})

    started = time.monotonic()
    timed_out = invoke(runner, quick)

    assert time.monotonic() - started >= 1.0
    assert timed_out.error_type == "Sandbox.Timedout"
    assert "Task timed out after 1.00 seconds" in json.loads(timed_out.payload)["errorMessage"]
    assert json.loads(invoke(runner, quick).payload)["pid"] != warm_pid


def test_crash_points_are_reproducible_per_seed() -> None:
    def points(seed: int) -> list[float]:
        store = chaos.ChaosStore()
        store.add({"service": "lambda", "operation": "*", "error": "crash", "rate": 0.5, "seed": seed})
        return [fault.point if (fault := store.lambda_fault("worker")) else -1.0 for _ in range(20)]

    assert points(11) == points(11)
    assert points(11) != points(12)
