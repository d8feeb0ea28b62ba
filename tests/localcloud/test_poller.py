"""The SQS event-source poller against a real moto server: Lambda's delivery semantics, end to end.

The function is a stand-in (an injected `invoke`) so each test decides, per record, what the "handler"
does; everything else (receive, visibility timeout, receive counts, redrive, delete) is moto's SQS.
"""

from __future__ import annotations

import io
import json
import logging
import threading
import time
import urllib.request
import uuid
import zipfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from localcloud.services.lambda_.event_source_mapping.sqs_poller import (
    EventSourcePoller,
    InvokeResult,
    MappingConfig,
    disable_moto_sqs_push,
    failed_message_ids,
)
from tests.localcloud.support import client, moto_server, wait_until

REGION = "us-east-1"
Respond = Callable[[list[dict[str, Any]]], InvokeResult]


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    # As the server process does: before any mapping exists.
    disable_moto_sqs_push()
    with moto_server() as url:
        yield url


class FakeLambda:
    """Stands in for Lambda Invoke: records every event and answers with `respond`."""

    def __init__(self, respond: Respond) -> None:
        self.respond = respond
        self.batches: list[list[dict[str, Any]]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()

    def __call__(self, function_arn: str, event: dict[str, Any]) -> InvokeResult:
        with self._lock:
            self.batches.append(event["Records"])
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return self.respond(event["Records"])
        finally:
            with self._lock:
                self.in_flight -= 1

    def receive_counts(self, body: str) -> list[int]:
        with self._lock:
            return [
                int(r["attributes"]["ApproximateReceiveCount"])
                for batch in self.batches
                for r in batch
                if r["body"] == body
            ]


def succeed(_records: list[dict[str, Any]]) -> InvokeResult:
    return InvokeResult(payload=None)


def fail_bodies_starting_with(prefix: str) -> Respond:
    def respond(records: list[dict[str, Any]]) -> InvokeResult:
        failures = [{"itemIdentifier": r["messageId"]} for r in records if r["body"].startswith(prefix)]
        return InvokeResult(payload={"batchItemFailures": failures})

    return respond


class Cell:
    """One queue + DLQ + function + mapping, with unique names (moto's backends are process-wide)."""

    def __init__(
        self,
        endpoint: str,
        *,
        visibility_timeout: int = 1,
        max_receive_count: int = 3,
        batch_size: int = 10,
        window: int | None = None,
        report_failures: bool = True,
        max_concurrency: int | None = None,
    ) -> None:
        self.sqs = client(endpoint, "sqs")
        self.lambda_ = client(endpoint, "lambda")
        suffix = uuid.uuid4().hex[:10]
        self.dlq_url = self.sqs.create_queue(QueueName=f"dlq-{suffix}")["QueueUrl"]
        dlq_arn = self.queue_arn(self.dlq_url)
        self.url = self.sqs.create_queue(
            QueueName=f"ingest-{suffix}",
            Attributes={
                "VisibilityTimeout": str(visibility_timeout),
                "RedrivePolicy": json.dumps(
                    {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count}
                ),
            },
        )["QueueUrl"]
        self.arn = self.queue_arn(self.url)
        role = client(endpoint, "iam").create_role(RoleName=f"role-{suffix}", AssumeRolePolicyDocument="{}")[
            "Role"
        ]["Arn"]
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as archive:
            archive.writestr("handler.py", "def handler(event, context):\n    return None\n")
        self.function_arn = self.lambda_.create_function(
            FunctionName=f"fn-{suffix}",
            Runtime="python3.11",
            Role=role,
            Handler="handler.handler",
            Code={"ZipFile": code.getvalue()},
        )["FunctionArn"]
        spec: dict[str, Any] = {
            "EventSourceArn": self.arn,
            "FunctionName": self.function_arn,
            "BatchSize": batch_size,
        }
        if window is not None:
            spec["MaximumBatchingWindowInSeconds"] = window
        if report_failures:
            spec["FunctionResponseTypes"] = ["ReportBatchItemFailures"]
        if max_concurrency is not None:
            spec["ScalingConfig"] = {"MaximumConcurrency": max_concurrency}
        self.mapping_uuid = self.lambda_.create_event_source_mapping(**spec)["UUID"]

    def queue_arn(self, url: str) -> str:
        return str(
            self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        )

    def mapping(self, poller: EventSourcePoller) -> MappingConfig:
        return next(m for m in poller.list_sqs_mappings() if m.uuid == self.mapping_uuid)

    def poller(self, endpoint: str, fake: FakeLambda, **kwargs: Any) -> EventSourcePoller:
        return EventSourcePoller(
            endpoint,
            REGION,
            invoke=fake,
            refresh_interval_seconds=0.2,
            mapping_filter=lambda m: m.uuid == self.mapping_uuid,
            **kwargs,
        )

    def send(self, *bodies: str, **kwargs: Any) -> None:
        for body in bodies:
            self.sqs.send_message(QueueUrl=self.url, MessageBody=body, **kwargs)

    def counts(self, url: str | None = None) -> tuple[int, int]:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=url or self.url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return (
            int(attributes["ApproximateNumberOfMessages"]),
            int(attributes["ApproximateNumberOfMessagesNotVisible"]),
        )

    def total(self, url: str | None = None) -> int:
        return sum(self.counts(url))

    def close(self) -> None:
        self.lambda_.delete_event_source_mapping(UUID=self.mapping_uuid)


def poll_until_batch(poller: EventSourcePoller, mapping: MappingConfig, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        outcome = poller.poll_once(mapping)
        if outcome is not None:
            return outcome
    raise AssertionError(f"no batch within {timeout}s")


# -- moto's own push is off ------------------------------------------------------------------------------


def test_moto_push_on_send_is_disabled(endpoint: str) -> None:
    from moto.sqs.models import sqs_backends

    disable_moto_sqs_push()  # idempotent
    cell = Cell(endpoint)
    try:
        cell.send("hello")
        # moto's push would have received (and deleted or re-shown) the message inside SendMessage.
        assert cell.counts() == (1, 0)
        queue = sqs_backends["123456789012"][REGION].get_queue(cell.url.rsplit("/", 1)[1])
        assert queue.lambda_event_source_mappings == {}
        first = cell.sqs.receive_message(
            QueueUrl=cell.url, MessageSystemAttributeNames=["All"], WaitTimeSeconds=0
        )["Messages"][0]
        assert first["Attributes"]["ApproximateReceiveCount"] == "1"
    finally:
        cell.close()


# -- partial batch responses -----------------------------------------------------------------------------


def test_partial_batch_deletes_successes_and_redelivers_only_failures(endpoint: str) -> None:
    cell = Cell(endpoint, max_receive_count=5)
    fake = FakeLambda(fail_bodies_starting_with("bad"))
    poller = cell.poller(endpoint, fake)
    try:
        cell.send("good-1", "bad-1", "good-2", "bad-2")
        mapping = cell.mapping(poller)
        first = poll_until_batch(poller, mapping)
        assert first.outcome == "partial"
        assert len(first.message_ids) == 4 and len(first.failed_ids) == 2
        assert cell.counts() == (0, 2)  # successes deleted, failures still in flight

        second = poll_until_batch(poller, mapping)  # after the 1 s visibility timeout
        assert sorted(r["body"] for r in fake.batches[1]) == ["bad-1", "bad-2"]
        assert set(second.message_ids) == set(first.failed_ids)
        assert fake.receive_counts("bad-1") == [1, 2]
        assert fake.receive_counts("good-1") == [1]
    finally:
        cell.close()


def test_function_error_keeps_the_whole_batch(endpoint: str) -> None:
    cell = Cell(endpoint, max_receive_count=5)
    fake = FakeLambda(lambda _r: InvokeResult(payload={"errorType": "Boom"}, function_error="Unhandled"))
    poller = cell.poller(endpoint, fake)
    try:
        cell.send("a", "b", "c")
        mapping = cell.mapping(poller)
        outcome = poll_until_batch(poller, mapping)
        assert outcome.outcome == "function_error"
        assert cell.total() == 3
        poll_until_batch(poller, mapping)
        assert sorted(r["body"] for r in fake.batches[1]) == ["a", "b", "c"]
        assert {r["attributes"]["ApproximateReceiveCount"] for r in fake.batches[1]} == {"2"}
    finally:
        cell.close()


def test_unknown_item_identifier_fails_the_whole_batch(endpoint: str) -> None:
    cell = Cell(endpoint)
    fake = FakeLambda(lambda _r: InvokeResult(payload={"batchItemFailures": [{"itemIdentifier": "nope"}]}))
    poller = cell.poller(endpoint, fake)
    try:
        cell.send("a", "b")
        outcome = poll_until_batch(poller, cell.mapping(poller))
        assert outcome.outcome == "invalid_response"
        assert cell.total() == 2
    finally:
        cell.close()


def test_without_report_batch_item_failures_success_deletes_everything(endpoint: str) -> None:
    cell = Cell(endpoint, report_failures=False)
    fake = FakeLambda(fail_bodies_starting_with("bad"))  # the response is ignored without the setting
    poller = cell.poller(endpoint, fake)
    try:
        cell.send("bad-1", "good-1")
        outcome = poll_until_batch(poller, cell.mapping(poller))
        assert outcome.outcome == "success" and outcome.failed_ids == ()
        assert cell.total() == 0
    finally:
        cell.close()


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (None, []),
        ({}, []),
        ({"batchItemFailures": None}, []),
        ({"batchItemFailures": []}, []),
        ({"batchItemFailures": [{"itemIdentifier": "m1"}]}, ["m1"]),
        ({"batchItemFailures": [{"itemIdentifier": "m1"}, {"itemIdentifier": "m1"}]}, ["m1"]),
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, None),
        ({"batchItemFailures": [{"itemIdentifier": None}]}, None),
        ({"batchItemFailures": [{"id": "m1"}]}, None),
        ({"batchItemFailures": [{"itemIdentifier": "other"}]}, None),
        ({"batchItemFailures": "m1"}, None),
        ("not an object", None),
    ],
)
def test_partial_batch_response_rules(payload: Any, expected: list[str] | None) -> None:
    assert failed_message_ids(payload, ["m1", "m2"]) == expected


# -- redrive, receive counts -----------------------------------------------------------------------------


def test_redrive_to_dlq_after_max_receive_count(endpoint: str) -> None:
    cell = Cell(endpoint, max_receive_count=3)
    fake = FakeLambda(fail_bodies_starting_with("poison"))
    poller = cell.poller(endpoint, fake)
    cell.send("poison-1")
    poller.start()
    try:
        wait_until(lambda: cell.total(cell.dlq_url) == 1, timeout=20, message="the message in the DLQ")
    finally:
        poller.stop()
        cell.close()
    # moto moves the message on the receive after the 3rd: the handler saw exactly receives 1, 2 and 3.
    assert fake.receive_counts("poison-1") == [1, 2, 3]
    assert cell.total() == 0
    moved = cell.sqs.receive_message(QueueUrl=cell.dlq_url, WaitTimeSeconds=0)["Messages"][0]
    assert moved["Body"] == "poison-1"


# -- batching --------------------------------------------------------------------------------------------


def test_batch_size_is_honoured(endpoint: str) -> None:
    cell = Cell(endpoint, batch_size=3)
    fake = FakeLambda(succeed)
    poller = cell.poller(endpoint, fake)
    try:
        cell.send(*[f"m{i}" for i in range(7)])
        mapping = cell.mapping(poller)
        sizes = [len(poll_until_batch(poller, mapping).message_ids) for _ in range(3)]
        assert sizes == [3, 3, 1]
        assert cell.total() == 0
    finally:
        cell.close()


def test_batch_above_ten_is_gathered_within_the_window(endpoint: str) -> None:
    cell = Cell(endpoint, batch_size=15, window=2)
    fake = FakeLambda(succeed)
    poller = cell.poller(endpoint, fake)
    try:
        for start in range(0, 15, 5):
            cell.sqs.send_message_batch(
                QueueUrl=cell.url,
                Entries=[{"Id": str(i), "MessageBody": f"m{i}"} for i in range(start, start + 5)],
            )
        started = time.monotonic()
        outcome = poll_until_batch(poller, cell.mapping(poller))
        assert len(outcome.message_ids) == 15
        assert time.monotonic() - started < 5  # a full batch does not wait out the window
    finally:
        cell.close()


def test_record_has_lambda_sqs_event_shape(endpoint: str) -> None:
    cell = Cell(endpoint)
    fake = FakeLambda(succeed)
    poller = cell.poller(endpoint, fake)
    try:
        cell.send(
            '{"job_id": "j1"}',
            MessageAttributes={
                "error_type": {"DataType": "String", "StringValue": "ValidationError"},
                "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
            },
        )
        poll_until_batch(poller, cell.mapping(poller))
    finally:
        cell.close()
    record = fake.batches[0][0]
    assert record["body"] == '{"job_id": "j1"}'
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == cell.arn
    assert record["awsRegion"] == REGION
    assert record["md5OfBody"] and record["receiptHandle"] and record["messageId"]
    assert {
        "ApproximateReceiveCount",
        "SentTimestamp",
        "SenderId",
        "ApproximateFirstReceiveTimestamp",
    } <= set(record["attributes"])
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert record["messageAttributes"]["error_type"] == {
        "stringValue": "ValidationError",
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "String",
    }
    assert record["messageAttributes"]["blob"]["binaryValue"] == "AAE="
    assert record["messageAttributes"]["blob"]["dataType"] == "Binary"


# -- concurrency, the running threads, the default invoke -----------------------------------------------


def test_maximum_concurrency_bounds_batches_in_flight(endpoint: str) -> None:
    cell = Cell(endpoint, batch_size=1, max_concurrency=2, visibility_timeout=30)

    def slow(_records: list[dict[str, Any]]) -> InvokeResult:
        time.sleep(0.3)
        return InvokeResult(payload=None)

    fake = FakeLambda(slow)
    poller = cell.poller(endpoint, fake, default_max_concurrency=5)
    cell.send(*[f"m{i}" for i in range(8)])
    poller.start()
    try:
        wait_until(lambda: cell.total() == 0, timeout=20, message="all messages processed")
    finally:
        poller.stop()
        cell.close()
    assert len(fake.batches) == 8
    assert fake.max_in_flight == 2


def test_stop_is_prompt_and_a_missing_queue_does_not_kill_the_poller(
    endpoint: str, caplog: pytest.LogCaptureFixture
) -> None:
    cell = Cell(endpoint)
    fake = FakeLambda(succeed)
    poller = cell.poller(endpoint, fake)
    cell.sqs.delete_queue(QueueUrl=cell.url)  # the mapping now points at nothing
    caplog.set_level(logging.ERROR, logger="localcloud.services.lambda_.event_source_mapping.sqs_poller")

    def failures() -> int:
        return sum("polling failed" in r.getMessage() for r in caplog.records)

    poller.start()
    try:
        # Failing twice: the worker survived the first failure and polled again after its backoff.
        wait_until(lambda: failures() >= 2, timeout=20, message="two failed polls of the missing queue")
    finally:
        started = time.monotonic()
        poller.stop()
        cell.close()
    assert time.monotonic() - started < 5
    assert fake.batches == []


def test_default_invoke_goes_through_the_lambda_api(endpoint: str) -> None:
    # Without the project's runner, moto's non-Docker Lambda echoes the event back: a response without
    # batchItemFailures, so a complete success. This exercises the real Invoke path of the poller.
    def set_config(config: dict[str, Any]) -> None:
        request = urllib.request.Request(
            f"{endpoint}/moto-api/config", data=json.dumps(config).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    # moto serves Lambda from a separate backend when Docker is off: create the function after the switch.
    set_config({"lambda": {"use_docker": False}})
    try:
        cell = Cell(endpoint)
        poller = EventSourcePoller(endpoint, REGION, mapping_filter=lambda m: m.uuid == cell.mapping_uuid)
        try:
            cell.send("x", "y")
            outcome = poll_until_batch(poller, cell.mapping(poller))
            assert outcome.outcome == "success" and len(outcome.message_ids) == 2
            assert cell.total() == 0
        finally:
            cell.close()
    finally:
        set_config({"lambda": {"use_docker": True}})
