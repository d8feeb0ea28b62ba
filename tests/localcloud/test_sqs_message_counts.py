"""A queue's message counts with one clock reading per count (localcloud.services.sqs.message_counts), on an
in-process moto server: the same counts and the same receives as moto's per-message properties, on a queue
holding visible, in-flight and delayed messages, and no per-message clock reading on a send."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sqs.models import Message, sqs_backends

from localcloud.core.state import REGION
from localcloud.services.sqs import message_counts
from tests.localcloud.support import client, moto_server

COUNTS = [
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
]


@pytest.fixture(scope="module")
def sqs() -> Iterator[Any]:
    with moto_server() as endpoint:
        yield client(endpoint, "sqs")


def counts(sqs: Any, url: str) -> dict[str, str]:
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=COUNTS)["Attributes"]


def test_counts_and_receives_are_moto_s_own(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="counts-mixed")["QueueUrl"]
    sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(n), "MessageBody": f"v{n}"} for n in range(6)])
    sqs.send_message(QueueUrl=url, MessageBody="delayed", DelaySeconds=600)
    in_flight = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=2, VisibilityTimeout=600)["Messages"]
    assert len(in_flight) == 2

    generic = counts(sqs, url)
    undo = message_counts.install()
    try:
        installed = counts(sqs, url)
        received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)["Messages"]
    finally:
        undo()
    assert (
        installed
        == generic
        == {
            "ApproximateNumberOfMessages": "4",
            "ApproximateNumberOfMessagesNotVisible": "2",
            "ApproximateNumberOfMessagesDelayed": "1",
        }
    )
    # Neither the delayed message nor the two in flight.
    assert sorted(m["Body"] for m in received) == sorted(
        {f"v{n}" for n in range(6)} - {m["Body"] for m in in_flight}
    )


def test_a_message_is_visible_again_once_its_timeout_passed(sqs: Any) -> None:
    url = sqs.create_queue(QueueName="counts-timeout")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="back")
    sqs.receive_message(QueueUrl=url, VisibilityTimeout=600)
    message = sqs_backends[DEFAULT_ACCOUNT_ID][REGION].get_queue("counts-timeout")._messages[0]
    message.visible_at -= 601_000  # its visibility timeout over

    undo = message_counts.install()
    try:
        assert counts(sqs, url)["ApproximateNumberOfMessages"] == "1"
        assert [m["Body"] for m in sqs.receive_message(QueueUrl=url)["Messages"]] == ["back"]
    finally:
        undo()


def test_a_send_reads_no_message_s_clock(sqs: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # moto's SendMessage reads the queue's attribute map, whose three counts read the clock once per message
    # of the queue: a burst of n sends cost O(n^2).
    url = sqs.create_queue(QueueName="counts-send")["QueueUrl"]
    sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(n), "MessageBody": str(n)} for n in range(10)])
    read: list[str] = []
    for name in ("visible", "delayed"):
        original = getattr(Message, name)

        def counted(message: Message, original: Any = original, name: str = name) -> Any:
            read.append(name)
            return original.fget(message)

        monkeypatch.setattr(Message, name, property(counted))

    sqs.send_message(QueueUrl=url, MessageBody="control")
    assert len(read) >= 30  # the control: three counts over the queue's messages
    read.clear()
    undo = message_counts.install()
    try:
        sqs.send_message(QueueUrl=url, MessageBody="counted once")
    finally:
        undo()
    assert read == []
