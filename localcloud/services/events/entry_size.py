"""EventBridge's PutEvents size quota: the entries of one request must total less than 256 KB, counted as
EventBridge documents ("Calculating PutEvents event entry size"): 14 bytes for a Time, the UTF-8 bytes of
Source, DetailType, Detail and each of Resources. Over it, the whole request is refused with
ValidationException, as EventBridge answers it.

How it models AWS, and where it differs: docs/local-cloud-internals.md#localcloudserviceseventsentry_sizepy
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from moto.events.exceptions import ValidationException
from moto.events.responses import EventsHandler

MAX_REQUEST_ENTRY_BYTES = 256 * 1024
OVER_THE_LIMIT = "Total size of the entries in the request is over the limit."


def _bytes(value: Any) -> int:
    return len(str(value).encode("utf-8")) if value is not None else 0


def entry_size(entry: Mapping[str, Any]) -> int:
    size = 14 if entry.get("Time") is not None else 0
    size += _bytes(entry.get("Source")) + _bytes(entry.get("DetailType")) + _bytes(entry.get("Detail"))
    size += sum(_bytes(resource) for resource in entry.get("Resources") or [] if resource)
    return size


def request_size(entries: Iterable[Any]) -> int:
    return sum(entry_size(entry) for entry in entries if isinstance(entry, Mapping))


def install() -> Callable[[], None]:
    """Check the PutEvents API (not the events Step Functions emits in process). Returns the undo."""
    original = EventsHandler.put_events

    def put_events(self: EventsHandler) -> Any:
        if request_size(self._get_param("Entries") or []) > MAX_REQUEST_ENTRY_BYTES:
            raise ValidationException(OVER_THE_LIMIT)
        return original(self)

    EventsHandler.put_events = put_events  # type: ignore[method-assign]

    def undo() -> None:
        EventsHandler.put_events = original  # type: ignore[method-assign]

    return undo
