"""ReceiveMessage's retention check on the queue's own period (localcloud.services.sqs.retention), on an
in-process moto server: the same messages returned, a message past its retention not returned, and the
queue's attribute map not built per message."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sqs.models import Queue, sqs_backends

from localcloud.core.state import REGION
from localcloud.services.sqs import retention
from tests.localcloud.support import client, moto_server


@pytest.fixture(scope="module")
def sqs() -> Iterator[Any]:
    with moto_server() as endpoint:
        yield client(endpoint, "sqs")


def test_receives_are_the_same_and_a_message_past_its_retention_is_not_returned(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="retention-kept", Attributes={"MessageRetentionPeriod": "60"})[
        "QueueUrl"
    ]
    for n in range(5):
        sqs.send_message(QueueUrl=url, MessageBody=f"m{n}")
    queue = sqs_backends[DEFAULT_ACCOUNT_ID][REGION].get_queue("retention-kept")
    # The last message is made 61 s old: past the queue's 60 s.
    last = max(queue._messages, key=lambda m: m.body)
    last.sent_timestamp -= 61_000

    undo = retention.install()
    try:
        received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get(
            "Messages", []
        )
    finally:
        undo()
    # moto's receive stops at a message past its retention; the ones before it are returned.
    generic = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get(
        "Messages", []
    )
    assert (
        sorted(m["Body"] for m in received) == sorted(m["Body"] for m in generic) == ["m0", "m1", "m2", "m3"]
    )


def test_the_attribute_map_is_not_built_per_message(sqs: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    url = sqs.create_queue(QueueName="retention-count")["QueueUrl"]
    sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(n), "MessageBody": str(n)} for n in range(10)])
    built: list[str] = []
    attributes = Queue.attributes

    def counted(queue: Queue) -> Any:
        built.append(queue.name)
        return attributes.fget(queue)  # type: ignore[attr-defined]

    monkeypatch.setattr(Queue, "attributes", property(counted))
    undo = retention.install()
    try:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)["Messages"]
    finally:
        undo()
    assert len(got) == 10
    assert built.count("retention-count") == 0  # 30 without the install: three per message
