"""DynamoDB applies each write to an item atomically: its condition is checked and its update applied with no
other write to that item in between (`localcloud.services.dynamodb.dynamodb_items`). moto checks and
applies in steps, on the stored item itself, with nothing held: two checkpoints from the same cursor could
both pass, and concurrent ADDs could lose one another (seen: a 4-shard job's bytes_in one chunk short, its
record counts exact)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto.dynamodb.parsing.executors import UpdateExpressionExecutor

from localcloud.services.dynamodb import dynamodb_items
from tests.localcloud.support import client, moto_server

# How long the first writer waits, inside its update, for a second one to get there too.
MEET_SECONDS = 2.0


@contextmanager
def server(*, atomic: bool) -> Iterator[tuple[str, str]]:
    """A moto server (with the lock or without) and a fresh job item in a table of its own (moto's backends
    outlive a server in this process)."""
    undo = dynamodb_items.install() if atomic else (lambda: None)
    try:
        with moto_server() as url:
            dynamodb = client(url, "dynamodb")
            table = f"jobs-{uuid.uuid4().hex[:8]}"
            dynamodb.create_table(
                TableName=table,
                KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
            dynamodb.put_item(TableName=table, Item={"id": {"S": "job"}, "cursor": {"N": "0"}})
            yield url, table
    finally:
        undo()


@pytest.fixture
def writers_meet(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two writers that both get to the point of applying their update meet there before either applies
    it: the interleaving a busy server produces now and then, every time. Bounded: a writer alone goes on
    after MEET_SECONDS (as it must when the other cannot get in)."""
    barrier = threading.Barrier(2)
    execute = UpdateExpressionExecutor.execute

    def meeting(self: Any, node: Any = None) -> None:
        if node is None:  # the whole update, not each node of it (execute recurses)
            with suppress(threading.BrokenBarrierError):
                barrier.wait(timeout=MEET_SECONDS)
        execute(self, node)

    monkeypatch.setattr(UpdateExpressionExecutor, "execute", meeting)


def checkpoint(endpoint: str, table: str, new_cursor: int) -> bool:
    """Move the cursor from 0, adding to the counters, as the worker's checkpoint does."""
    try:
        client(endpoint, "dynamodb").update_item(
            TableName=table,
            Key={"id": {"S": "job"}},
            UpdateExpression="SET #cursor = :new ADD #bytes_in :bytes, #chunks :one",
            ConditionExpression="#cursor = :old",
            ExpressionAttributeNames={"#cursor": "cursor", "#bytes_in": "bytes_in", "#chunks": "chunks"},
            ExpressionAttributeValues={
                ":new": {"N": str(new_cursor)},
                ":old": {"N": "0"},
                ":bytes": {"N": str(new_cursor)},
                ":one": {"N": "1"},
            },
        )
    except ClientError as error:
        if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return False
        raise
    return True


def race_two_checkpoints(endpoint: str, table: str) -> tuple[list[bool], dict[str, Any]]:
    with ThreadPoolExecutor(2) as pool:
        applied = list(pool.map(lambda cursor: checkpoint(endpoint, table, cursor), [100, 200]))
    item = client(endpoint, "dynamodb").get_item(TableName=table, Key={"id": {"S": "job"}})["Item"]
    return applied, item


def test_of_two_checkpoints_from_the_same_cursor_exactly_one_applies(writers_meet: None) -> None:
    with server(atomic=True) as (endpoint, table):
        applied, item = race_two_checkpoints(endpoint, table)
    assert sorted(applied) == [False, True]
    winner = 100 if applied[0] else 200
    assert item["cursor"] == {"N": str(winner)}
    assert (item["bytes_in"], item["chunks"]) == ({"N": str(winner)}, {"N": "1"})


def test_control_moto_alone_lets_both_checkpoints_apply(writers_meet: None) -> None:
    """The race above is real: without the lock, both writers pass the condition and both add."""
    with server(atomic=False) as (endpoint, table):
        applied, item = race_two_checkpoints(endpoint, table)
    assert applied == [True, True]
    assert item["chunks"] == {"N": "2"}


def test_concurrent_adds_lose_nothing() -> None:
    with server(atomic=True) as (endpoint, table):
        dynamodb = client(endpoint, "dynamodb")

        def add(_: int) -> None:
            dynamodb.update_item(
                TableName=table,
                Key={"id": {"S": "job"}},
                UpdateExpression="ADD #n :one, #m :two",
                ExpressionAttributeNames={"#n": "n", "#m": "m"},
                ExpressionAttributeValues={":one": {"N": "1"}, ":two": {"N": "2"}},
            )

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(add, range(400)))
        item = dynamodb.get_item(TableName=table, Key={"id": {"S": "job"}})["Item"]
    assert (item["n"], item["m"]) == ({"N": "400"}, {"N": "800"})
