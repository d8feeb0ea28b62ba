"""The job events publisher on moto: the job table's real stream records (from the real ingest and failures
handlers, and the state machine's and the CLI's writes as they make them) go through the handler, and an
EventBridge rule with an SQS target receives one event per transition with the contract's detail."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from handlers import events as events_handler
from handlers.failures import handler as failures_handler
from handlers.ingest import handler as ingest_handler
from pipeline_contract import utc_now
from tests.fakes import FakeContext
from tests.handlers.conftest import BUCKET, CODE_DIGEST, REGION, TABLE, WORKER_VERSION, Aws

EVENT_PATTERN = {"source": ["resilient-pipeline"]}


@dataclass
class Stream:
    """The job table's stream read as Lambda's poller reads it, and the events a rule delivered to a queue."""

    aws: Aws
    streams: Any
    arn: str
    shard_id: str
    sink_url: str
    position: str | None = None

    def lambda_event(self) -> dict[str, Any]:
        """The records written since the last call, in Lambda's DynamoDB event shape."""
        if self.position is None:
            iterator = self.streams.get_shard_iterator(
                StreamArn=self.arn, ShardId=self.shard_id, ShardIteratorType="TRIM_HORIZON"
            )
        else:
            iterator = self.streams.get_shard_iterator(
                StreamArn=self.arn,
                ShardId=self.shard_id,
                ShardIteratorType="AFTER_SEQUENCE_NUMBER",
                SequenceNumber=self.position,
            )
        records = self.streams.get_records(ShardIterator=iterator["ShardIterator"])["Records"]
        if records:
            self.position = records[-1]["dynamodb"]["SequenceNumber"]
        for record in records:
            created = record["dynamodb"]["ApproximateCreationDateTime"]
            record["dynamodb"]["ApproximateCreationDateTime"] = created.timestamp()
            record["eventSourceARN"] = self.arn
        return {"Records": json.loads(json.dumps(records))}

    def deliver(self) -> dict[str, Any]:
        return dict(events_handler.handler(self.lambda_event(), FakeContext()))

    def received(self) -> list[dict[str, Any]]:
        messages = self.aws.sqs.receive_message(QueueUrl=self.sink_url, MaxNumberOfMessages=10).get(
            "Messages", []
        )
        for message in messages:
            self.aws.sqs.delete_message(QueueUrl=self.sink_url, ReceiptHandle=message["ReceiptHandle"])
        return [json.loads(message["Body"]) for message in messages]


@pytest.fixture
def stream(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stream]:
    aws.ddb.update_table(
        TableName=TABLE, StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    )
    arn = aws.ddb.describe_table(TableName=TABLE)["Table"]["LatestStreamArn"]
    streams = boto3.client("dynamodbstreams", region_name=REGION)
    shard_id = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    sink_url = aws.sqs.create_queue(QueueName="job-events")["QueueUrl"]
    sink_arn = aws.sqs.get_queue_attributes(QueueUrl=sink_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    bridge = boto3.client("events", region_name=REGION)
    bridge.put_rule(Name="job-events", EventPattern=json.dumps(EVENT_PATTERN))
    bridge.put_targets(Rule="job-events", Targets=[{"Id": "sink", "Arn": sink_arn}])
    monkeypatch.setenv("EVENT_BUS_NAME", "default")
    events_handler._settings.cache_clear()
    yield Stream(aws=aws, streams=streams, arn=arn, shard_id=shard_id, sink_url=sink_url)
    events_handler._settings.cache_clear()


def submit(body: dict[str, Any]) -> None:
    record = {"messageId": f"m-{body.get('job_id')}", "body": json.dumps(body), "messageAttributes": {}}
    assert ingest_handler({"Records": [record]}, FakeContext()) == {"batchItemFailures": []}


def set_status(aws: Aws, job_id: str, status: str, **numbers: int) -> None:
    """An UpdateItem as the state machine's Mark* tasks and the CLI's cancel write it."""
    names = {"#s": "status"}
    values: dict[str, Any] = {":s": {"S": status}, ":now": {"S": utc_now()}}
    expression = "SET #s = :s, updated_at = :now"
    for index, (name, value) in enumerate(numbers.items()):
        names[f"#n{index}"] = name
        values[f":n{index}"] = {"N": str(value)}
        expression += f", #n{index} = :n{index}"
    aws.ddb.update_item(
        TableName=TABLE,
        Key={"job_id": {"S": job_id}},
        UpdateExpression=expression,
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=values,
    )


def checkpoint(aws: Aws, job_id: str, records: int) -> None:
    aws.ddb.update_item(
        TableName=TABLE,
        Key={"job_id": {"S": job_id}},
        UpdateExpression="SET records_in = :r, records_out = :r, bytes_in = :b, updated_at = :now",
        ExpressionAttributeValues={":r": {"N": str(records)}, ":b": {"N": "9"}, ":now": {"S": utc_now()}},
    )


def test_a_job_that_succeeds_emits_started_then_succeeded_with_the_contract_detail(stream: Stream) -> None:
    submit({"job_id": "job-1", "input": f"s3://{BUCKET}/in/a.jsonl"})
    assert stream.deliver() == {"batchItemFailures": []}
    assert stream.received() == [], "an accepted (PENDING) job is announced when it starts"

    set_status(stream.aws, "job-1", "RUNNING")
    checkpoint(stream.aws, "job-1", 3)
    set_status(stream.aws, "job-1", "RUNNING")  # continue-as-new: MarkRunning of the next execution
    assert stream.deliver() == {"batchItemFailures": []}
    (started,) = stream.received()

    set_status(stream.aws, "job-1", "SUCCEEDED")
    assert stream.deliver() == {"batchItemFailures": []}
    (succeeded,) = stream.received()

    job = stream.aws.job("job-1")
    assert job is not None
    assert {event["source"] for event in (started, succeeded)} == {"resilient-pipeline"}
    assert started["detail-type"] == "Job Started"
    assert started["detail"] == {
        "job_id": "job-1",
        "status": "RUNNING",
        "attempt": 1,
        "environment": "dev",
        "records_in": 0,
        "records_out": 0,
        "records_rejected": 0,
        "bytes_in": 0,
        "output_prefix": f"s3://{BUCKET}/out/job-1/",
        # The code the job is pinned to: the deployed worker version and the code's digest.
        "code_version": {"worker": WORKER_VERSION, "digest": CODE_DIGEST},
        "created_at": job["created_at"],
        "ended_at": None,
        "duration_s": None,
    }
    assert succeeded["detail-type"] == "Job Succeeded"
    ended = job["updated_at"]
    expected_duration = round(
        (dt.datetime.fromisoformat(ended) - dt.datetime.fromisoformat(job["created_at"])).total_seconds(), 3
    )
    assert succeeded["detail"] == {
        **started["detail"],
        "status": "SUCCEEDED",
        "records_in": 3,
        "records_out": 3,
        "bytes_in": 9,
        "ended_at": ended,
        "duration_s": expected_duration,
    }


def test_a_rejected_request_emits_job_rejected_with_its_error(stream: Stream) -> None:
    submit({"job_id": "bad-1", "input": "ftp://not-s3/x.jsonl"})
    assert stream.deliver() == {"batchItemFailures": []}
    (event,) = stream.received()
    assert event["detail-type"] == "Job Rejected"
    detail = event["detail"]
    assert (detail["job_id"], detail["status"], detail["output_prefix"]) == ("bad-1", "REJECTED", None)
    assert detail["code_version"] is None, "a rejected request never ran any code"
    assert detail["error"]["type"] == "ValidationError"
    assert detail["error"]["message"].startswith("input: ")
    assert detail["duration_s"] == 0.0


def test_a_job_failed_by_the_failures_function_emits_job_failed_with_its_error(stream: Stream) -> None:
    submit({"job_id": "job-2", "input": f"s3://{BUCKET}/in/a.jsonl"})
    set_status(stream.aws, "job-2", "RUNNING")
    failures_handler(
        {
            "job_id": "job-2",
            "attempt": 1,
            "error": {"Error": "InputChangedError", "Cause": "ETag a is now b"},
        },
        FakeContext(),
    )
    assert stream.deliver() == {"batchItemFailures": []}
    started, failed = stream.received()
    assert (started["detail-type"], failed["detail-type"]) == ("Job Started", "Job Failed")
    assert failed["detail"]["error"] == {"type": "InputChangedError", "message": "ETag a is now b"}
    assert failed["detail"]["status"] == "FAILED"


def test_a_cancelled_job_emits_job_cancelled(stream: Stream) -> None:
    submit({"job_id": "job-3", "input": f"s3://{BUCKET}/in/a.jsonl"})
    set_status(stream.aws, "job-3", "CANCELLED")
    assert stream.deliver() == {"batchItemFailures": []}
    (event,) = stream.received()
    assert event["detail-type"] == "Job Cancelled"
    assert "error" not in event["detail"]


def test_events_that_cannot_be_put_are_reported_so_that_lambda_retries_them(
    stream: Stream, monkeypatch: pytest.MonkeyPatch
) -> None:
    submit({"job_id": "job-4", "input": f"s3://{BUCKET}/in/a.jsonl"})
    set_status(stream.aws, "job-4", "RUNNING")
    set_status(stream.aws, "job-4", "SUCCEEDED")
    event = stream.lambda_event()
    sequence_numbers = [record["dynamodb"]["SequenceNumber"] for record in event["Records"]]
    monkeypatch.setenv("EVENT_BUS_NAME", "no-such-bus")
    events_handler._settings.cache_clear()
    response = events_handler.handler(event, FakeContext())
    # Nothing reached the rule; the first record with an event (MarkRunning's) and every later one are named.
    assert stream.received() == []
    assert [failure["itemIdentifier"] for failure in response["batchItemFailures"]] == sequence_numbers[1:]
