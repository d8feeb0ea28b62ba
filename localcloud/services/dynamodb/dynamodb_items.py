"""Atomic item writes for moto's DynamoDB, as DynamoDB's own: a write's condition is checked and its update
applied with no other write in between, and a read sees an item before or after a write, never halfway.

moto 5.2.5 has no lock: UpdateItem reads the stored item, checks the condition, then applies each action
to that same object, while the threaded server runs other requests. Two checkpoints from the same cursor
could both pass `cursor = :old` (the monotonic checkpoint the pipeline rests on would not hold here while
it holds on AWS), and two ADDs to one attribute could lose one (seen: a 4-shard job whose shards
checkpoint the one job item at once ended with bytes_in one chunk short, its record counts exact).

One re-entrant lock is held around every DynamoDB request the server answers (the answer's serialisation
included) and around the backend's item operations (for in-process callers such as Step Functions' direct
DynamoDB integration). It serialises the tables' items as a whole, not per item: the local cloud's load is
small, and per-item throughput is not what it models.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.responses import DynamoHandler

Undo = Callable[[], None]

_LOCK = threading.RLock()
_MARK = "_localcloud_atomic"
# The backend's operations that read or write items (a batch or a transaction is atomic as a whole too).
_ITEM_OPERATIONS = (
    "put_item",
    "update_item",
    "delete_item",
    "get_item",
    "query",
    "scan",
    "batch_get_item",
    "transact_get_items",
    "transact_write_items",
    "execute_statement",
    "execute_transaction",
    "batch_execute_statement",
)


def _held(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with _LOCK:
            return method(*args, **kwargs)

    setattr(locked, _MARK, True)
    return locked


def items_lock() -> threading.RLock:
    """The lock: held by whoever must see every item between writes (a save of the state reads them all).
    No holder makes an HTTP call to the server (a request holds it inside moto's handler, an in-process
    caller around one backend operation, and moto's push of stream records to Lambda, which would run a
    handler, is switched off by `stream_poller.disable_moto_dynamodb_push`), so a save holding requests and
    waiting for it cannot deadlock."""
    return _LOCK


def install() -> Undo:
    """Hold the lock around DynamoDB's requests and item operations (idempotent); returns the undo."""
    originals: list[tuple[type, str, Any]] = []
    targets: list[tuple[type, str]] = [(DynamoHandler, "call_action")]
    targets += [(DynamoDBBackend, name) for name in _ITEM_OPERATIONS if hasattr(DynamoDBBackend, name)]
    for owner, name in targets:
        method = owner.__dict__.get(name) or getattr(owner, name)
        if getattr(method, _MARK, False):
            continue
        originals.append((owner, name, owner.__dict__.get(name)))
        setattr(owner, name, _held(method))

    def undo() -> None:
        for owner, name, original in reversed(originals):
            if original is None:
                delattr(owner, name)
            else:
                setattr(owner, name, original)

    return undo
