"""The DynamoDB stream poller against a real moto server: Lambda's stream semantics, end to end.

The function is a stand-in (an injected `invoke`) so each test decides what the "handler" answers; the
table, its stream (GetRecords), the event source mapping and the OnFailure queue are moto's.
"""

from __future__ import annotations

import io
import json
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from localcloud.services.dynamodb import dynamodb_table
from localcloud.services.lambda_.event_source_mapping.sqs_poller import InvokeResult
from localcloud.services.lambda_.event_source_mapping.stream_poller import (
    StreamMapping,
    StreamPoller,
    disable_moto_dynamodb_push,
    first_failed,
    iterator_age_publisher,
    matches_filters,
    to_lambda_record,
)
from tests.localcloud.support import client, moto_server, wait_until

REGION = "us-east-1"
Respond = Callable[[list[dict[str, Any]]], InvokeResult]

# The job events' filter shape: created FAILED/REJECTED, or PENDING -> RUNNING.
FILTERS = [
    {"eventName": ["INSERT"], "dynamodb": {"NewImage": {"status": {"S": ["FAILED", "REJECTED"]}}}},
    {
        "eventName": ["MODIFY"],
        "dynamodb": {"OldImage": {"status": {"S": ["PENDING"]}}, "NewImage": {"status": {"S": ["RUNNING"]}}},
    },
]


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    # As the server process does: before any mapping exists, and table updates in place.
    disable_moto_dynamodb_push()
    undo = dynamodb_table.install()
    try:
        with moto_server() as url:
            yield url
    finally:
        undo()


class FakeLambda:
    def __init__(self, respond: Respond | None = None) -> None:
        self.respond = respond or (lambda _records: InvokeResult(payload=None))
        self.batches: list[list[dict[str, Any]]] = []

    def __call__(self, function_arn: str, event: dict[str, Any]) -> InvokeResult:
        self.batches.append(event["Records"])
        return self.respond(event["Records"])

    def ids(self) -> list[list[str]]:
        return [[r["dynamodb"]["Keys"]["id"]["S"] + ":" + status(r) for r in batch] for batch in self.batches]


def status(record: dict[str, Any]) -> str:
    return str(record["dynamodb"].get("NewImage", {}).get("status", {}).get("S", "-"))


class Cell:
    """A table with a stream, a function, a mapping (and an OnFailure queue), with unique names."""

    def __init__(
        self,
        endpoint: str,
        *,
        filters: list[dict[str, Any]] | None = None,
        batch_size: int = 10,
        bisect: bool = False,
        retries: int | None = None,
        report_failures: bool = True,
        starting_position: str = "TRIM_HORIZON",
        writes_before_mapping: int = 0,
    ) -> None:
        self.endpoint = endpoint
        suffix = uuid.uuid4().hex[:10]
        self.ddb = client(endpoint, "dynamodb")
        self.sqs = client(endpoint, "sqs")
        self.table = f"jobs-{suffix}"
        self.ddb.create_table(
            TableName=self.table,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
        self.stream_arn = self.ddb.describe_table(TableName=self.table)["Table"]["LatestStreamArn"]
        for n in range(writes_before_mapping):
            self.put(f"old-{n}", "FAILED")
        self.dlq_url = self.sqs.create_queue(QueueName=f"events-dlq-{suffix}")["QueueUrl"]
        dlq_arn = self.sqs.get_queue_attributes(QueueUrl=self.dlq_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        lambda_ = client(endpoint, "lambda")
        role = client(endpoint, "iam").create_role(RoleName=f"role-{suffix}", AssumeRolePolicyDocument="{}")[
            "Role"
        ]["Arn"]
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as archive:
            archive.writestr("handler.py", "def handler(event, context):\n    return None\n")
        self.function_name = f"fn-{suffix}"
        function_arn = lambda_.create_function(
            FunctionName=self.function_name,
            Runtime="python3.11",
            Role=role,
            Handler="handler.handler",
            Code={"ZipFile": code.getvalue()},
        )["FunctionArn"]
        spec: dict[str, Any] = {
            "EventSourceArn": self.stream_arn,
            "FunctionName": function_arn,
            "BatchSize": batch_size,
            "StartingPosition": starting_position,
            "BisectBatchOnFunctionError": bisect,
            "DestinationConfig": {"OnFailure": {"Destination": dlq_arn}},
        }
        if filters is not None:
            spec["FilterCriteria"] = {"Filters": [{"Pattern": json.dumps(f)} for f in filters]}
        if retries is not None:
            spec["MaximumRetryAttempts"] = retries
        if report_failures:
            spec["FunctionResponseTypes"] = ["ReportBatchItemFailures"]
        self.mapping_uuid = lambda_.create_event_source_mapping(**spec)["UUID"]

    def put(self, item_id: str, new_status: str) -> None:
        self.ddb.put_item(TableName=self.table, Item={"id": {"S": item_id}, "status": {"S": new_status}})

    def set(self, item_id: str, new_status: str) -> None:
        self.ddb.update_item(
            TableName=self.table,
            Key={"id": {"S": item_id}},
            UpdateExpression="SET #s = :s",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":s": {"S": new_status}},
        )

    def poller(self, fake: FakeLambda, **kwargs: Any) -> StreamPoller:
        return StreamPoller(
            self.endpoint,
            REGION,
            invoke=fake,
            refresh_interval_seconds=0.2,
            poll_interval_seconds=0.05,
            retry_base_seconds=0.01,
            retry_cap_seconds=0.02,
            mapping_filter=lambda m: m.uuid == self.mapping_uuid,
            **kwargs,
        )

    def mapping(self, poller: StreamPoller) -> StreamMapping:
        return next(m for m in poller.list_stream_mappings() if m.uuid == self.mapping_uuid)

    def drain(self, poller: StreamPoller) -> None:
        mapping = self.mapping(poller)
        while poller.poll_once(mapping):
            pass

    def dead_letters(self) -> list[dict[str, Any]]:
        messages = self.sqs.receive_message(QueueUrl=self.dlq_url, MaxNumberOfMessages=10).get("Messages", [])
        return [json.loads(m["Body"]) for m in messages]


def sequence(record: dict[str, Any]) -> str:
    return str(record["dynamodb"]["SequenceNumber"])


def test_moto_no_longer_invokes_inside_the_write_and_keeps_the_records(endpoint: str) -> None:
    cell = Cell(endpoint)
    cell.put("a", "PENDING")
    cell.set("a", "RUNNING")
    streams = client(endpoint, "dynamodbstreams")
    shard = streams.describe_stream(StreamArn=cell.stream_arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(
        StreamArn=cell.stream_arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    assert [r["eventName"] for r in streams.get_records(ShardIterator=iterator)["Records"]] == [
        "INSERT",
        "MODIFY",
    ]


def test_only_records_a_filter_matches_are_delivered_in_order_once(endpoint: str) -> None:
    cell = Cell(endpoint, filters=FILTERS)
    cell.put("ok", "PENDING")  # INSERT PENDING: no match
    cell.set("ok", "RUNNING")  # PENDING -> RUNNING: match
    cell.set("ok", "RUNNING")  # RUNNING -> RUNNING (a checkpoint): no match
    cell.put("bad", "REJECTED")  # INSERT REJECTED: match
    fake = FakeLambda()
    poller = cell.poller(fake)
    cell.drain(poller)
    assert fake.ids() == [["ok:RUNNING", "bad:REJECTED"]]
    cell.drain(poller)
    assert len(fake.batches) == 1, "the position moved past every record, matched or not"
    record = fake.batches[0][0]
    assert record["eventSource"] == "aws:dynamodb"
    assert record["eventSourceARN"] == cell.stream_arn
    assert isinstance(record["dynamodb"]["ApproximateCreationDateTime"], int)
    assert record["dynamodb"]["OldImage"] == {"id": {"S": "ok"}, "status": {"S": "PENDING"}}


def test_batches_hold_at_most_batch_size_records(endpoint: str) -> None:
    cell = Cell(endpoint, batch_size=3)
    for n in range(7):
        cell.put(f"r{n}", "FAILED")
    fake = FakeLambda()
    cell.drain(cell.poller(fake))
    assert [len(batch) for batch in fake.batches] == [3, 3, 1]
    assert [r for batch in fake.ids() for r in batch] == [f"r{n}:FAILED" for n in range(7)]


def test_a_partial_batch_response_retries_from_the_lowest_failed_record(endpoint: str) -> None:
    cell = Cell(endpoint)
    for n in range(5):
        cell.put(f"r{n}", "FAILED")
    answers = iter(["r3", "r2", None])

    def respond(records: list[dict[str, Any]]) -> InvokeResult:
        fail_from = next(answers)
        failed = [sequence(r) for r in records if fail_from and r["dynamodb"]["Keys"]["id"]["S"] >= fail_from]
        return InvokeResult(payload={"batchItemFailures": [{"itemIdentifier": s} for s in failed]})

    fake = FakeLambda(respond)
    cell.drain(cell.poller(fake))
    assert [[i.split(":")[0] for i in batch] for batch in fake.ids()] == [
        ["r0", "r1", "r2", "r3", "r4"],
        ["r3", "r4"],  # r0..r2 succeeded: never sent again
        ["r3", "r4"],  # both failed again: retried from r3 again
    ]
    assert cell.dead_letters() == []


def test_a_function_error_bisects_down_to_the_poison_record_which_goes_to_the_destination(
    endpoint: str,
) -> None:
    cell = Cell(endpoint, bisect=True, retries=1)
    for n in range(4):
        cell.put(f"r{n}", "POISON" if n == 2 else "FAILED")

    def respond(records: list[dict[str, Any]]) -> InvokeResult:
        if any(status(r) == "POISON" for r in records):
            return InvokeResult(payload={"errorType": "ValueError"}, function_error="Unhandled")
        return InvokeResult(payload=None)

    fake = FakeLambda(respond)
    poller = cell.poller(fake)
    cell.drain(poller)
    assert [[i.split(":")[0] for i in batch] for batch in fake.ids()] == [
        ["r0", "r1", "r2", "r3"],
        ["r0", "r1"],
        ["r2", "r3"],
        ["r2"],
        ["r2"],  # its one retry (bisecting used none)
        ["r3"],
    ]
    (described,) = cell.dead_letters()
    poison_sequence = sequence(fake.batches[3][0])
    assert described["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert described["requestContext"]["approximateInvokeCount"] == 4  # every invoke its records were in
    assert described["responseContext"]["functionError"] == "Unhandled"
    info = described["DDBStreamBatchInfo"]
    assert (info["startSequenceNumber"], info["endSequenceNumber"], info["batchSize"]) == (
        poison_sequence,
        poison_sequence,
        1,
    )
    assert info["streamArn"] == cell.stream_arn
    # The shard is not stuck: what comes next is delivered.
    cell.put("later", "FAILED")
    cell.drain(poller)
    assert fake.ids()[-1] == ["later:FAILED"]


def test_without_bisect_a_batch_that_keeps_failing_is_described_whole_after_its_retries(
    endpoint: str,
) -> None:
    cell = Cell(endpoint, retries=2, report_failures=False)
    for n in range(3):
        cell.put(f"r{n}", "FAILED")
    fake = FakeLambda(lambda _records: InvokeResult(payload={"errorType": "X"}, function_error="Unhandled"))
    cell.drain(cell.poller(fake))
    assert [len(batch) for batch in fake.batches] == [3, 3, 3]
    (described,) = cell.dead_letters()
    assert described["DDBStreamBatchInfo"]["batchSize"] == 3
    assert described["requestContext"]["approximateInvokeCount"] == 3


def test_latest_starts_after_the_records_already_there(endpoint: str) -> None:
    cell = Cell(endpoint, starting_position="LATEST", writes_before_mapping=3)
    fake = FakeLambda()
    poller = cell.poller(fake)
    cell.drain(poller)
    cell.put("new", "FAILED")
    cell.drain(poller)
    assert fake.ids() == [["new:FAILED"]]


def test_the_running_poller_delivers_in_the_background(endpoint: str) -> None:
    cell = Cell(endpoint, filters=FILTERS)
    fake = FakeLambda()
    poller = cell.poller(fake)
    poller.start()
    try:
        cell.put("a", "REJECTED")
        wait_until(lambda: fake.ids() == [["a:REJECTED"]], message="the record to be delivered")
    finally:
        poller.stop()


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (None, 3),
        ({}, 3),
        ("", 3),
        ({"batchItemFailures": []}, 3),
        ({"batchItemFailures": None}, 3),
        ({"batchItemFailures": [{"itemIdentifier": "12"}, {"itemIdentifier": "11"}]}, 1),
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, None),
        ({"batchItemFailures": [{"itemIdentifier": None}]}, None),
        ({"batchItemFailures": [{"id": "11"}]}, None),
        ({"batchItemFailures": [{"itemIdentifier": "99"}]}, None),
        (["not", "an", "object"], None),
    ],
)
def test_partial_batch_responses_as_aws_reads_them(payload: Any, expected: int | None) -> None:
    assert first_failed(payload, ["10", "11", "12"]) == expected


def test_filters_use_the_event_pattern_syntax_on_the_record() -> None:
    record = {
        "eventName": "MODIFY",
        "dynamodb": {"OldImage": {"status": {"S": "PENDING"}}, "NewImage": {"status": {"S": "RUNNING"}}},
    }
    assert matches_filters([], record)
    assert matches_filters([json.dumps(f) for f in FILTERS], record)
    assert not matches_filters([json.dumps(FILTERS[0])], record)
    prefix = {"dynamodb": {"NewImage": {"status": {"S": [{"prefix": "RUN"}]}}}}
    assert matches_filters([json.dumps(prefix)], record)


def test_binary_attributes_are_base64_in_the_lambda_record() -> None:
    record = {
        "eventID": "e",
        "eventName": "INSERT",
        "dynamodb": {
            "SequenceNumber": "1",
            "NewImage": {"b": {"B": b"\x00\x01"}, "l": {"L": [{"B": b"\xff"}]}},
        },
    }
    shaped = to_lambda_record(record, stream_arn="arn:aws:dynamodb:us-east-1:1:table/t/stream/x")
    assert shaped["dynamodb"]["NewImage"] == {"b": {"B": "AAE="}, "l": {"L": [{"B": "/w=="}]}}
    assert shaped["awsRegion"] == "us-east-1"


def test_a_stack_update_that_adds_a_stream_enables_it_in_place(endpoint: str) -> None:
    cfn = client(endpoint, "cloudformation")
    ddb = client(endpoint, "dynamodb")
    name = f"stack-{uuid.uuid4().hex[:8]}"
    table: dict[str, Any] = {
        "Type": "AWS::DynamoDB::Table",
        "Properties": {
            "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
            "BillingMode": "PAY_PER_REQUEST",
        },
    }
    template: dict[str, Any] = {
        "Resources": {"Table": table},
        "Outputs": {"Name": {"Value": {"Ref": "Table"}}},
    }
    cfn.create_stack(StackName=name, TemplateBody=json.dumps(template))
    table_name = cfn.describe_stacks(StackName=name)["Stacks"][0]["Outputs"][0]["OutputValue"]
    ddb.put_item(TableName=table_name, Item={"id": {"S": "kept"}})

    table["Properties"]["StreamSpecification"] = {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    template["Outputs"]["Stream"] = {"Value": {"Fn::GetAtt": ["Table", "StreamArn"]}}
    cfn.update_stack(StackName=name, TemplateBody=json.dumps(template))

    stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    described = ddb.describe_table(TableName=table_name)["Table"]
    assert outputs == {"Name": table_name, "Stream": described["LatestStreamArn"]}
    assert described["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert ddb.get_item(TableName=table_name, Key={"id": {"S": "kept"}}).get("Item"), (
        "the same table, in place"
    )


def test_each_invocation_reports_the_iterator_age_of_its_last_record(endpoint: str) -> None:
    """Lambda's IteratorAge (ms, per invocation): how old the batch's last record is when the mapping
    sends it. A retried batch grows older at each retry: the JobEventsDelayed warning reads that."""
    cell = Cell(endpoint, filters=FILTERS)
    cell.put("a", "REJECTED")
    now = {"t": time.time()}
    ages: list[tuple[str, float]] = []
    attempts = {"n": 0}

    def respond(records: list[dict[str, Any]]) -> InvokeResult:
        attempts["n"] += 1
        now["t"] += 60  # a minute passes between the two attempts
        failed = [{"itemIdentifier": sequence(records[0])}] if attempts["n"] == 1 else []
        return InvokeResult(payload={"batchItemFailures": failed})

    poller = cell.poller(
        FakeLambda(respond), clock=lambda: now["t"], iterator_age=lambda name, ms: ages.append((name, ms))
    )
    cell.drain(poller)
    assert [name for name, _ in ages] == [cell.function_name, cell.function_name]
    first, second = (ms for _, ms in ages)
    assert 0 <= first < 5_000
    assert 60_000 <= second < 65_000


def test_the_iterator_age_is_an_aws_lambda_metric_of_the_function(endpoint: str) -> None:
    publish = iterator_age_publisher()
    publish("fn-aged", 1234.0)
    cloudwatch = client(endpoint, "cloudwatch")
    stats = cloudwatch.get_metric_statistics(
        Namespace="AWS/Lambda",
        MetricName="IteratorAge",
        Dimensions=[{"Name": "FunctionName", "Value": "fn-aged"}],
        StartTime=datetime.now(UTC) - timedelta(minutes=5),
        EndTime=datetime.now(UTC) + timedelta(minutes=1),
        Period=60,
        Statistics=["Maximum"],
    )["Datapoints"]
    assert [d["Maximum"] for d in stats] == [1234.0]
