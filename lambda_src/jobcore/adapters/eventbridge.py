"""EventBridge as the EventBus: job lifecycle events put on the configured bus (jobcore.events)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from jobcore.adapters.aws_errors import translated
from jobcore.model import JobEvent
from pipeline_contract import EVENT_SOURCE


class EventBridgeBus:
    def __init__(self, client: Any, bus_name: str) -> None:
        self._events = client
        self._bus = bus_name

    def put(self, events: Sequence[JobEvent]) -> list[str | None]:
        with translated():
            response = self._events.put_events(Entries=[self._entry(event) for event in events])
        entries = list(response.get("Entries") or [])
        # One result per entry, in order; an entry without an answer was not accepted.
        entries += [{"ErrorCode": "Missing", "ErrorMessage": "no result for this entry"}] * (
            len(events) - len(entries)
        )
        return [
            f"{entry['ErrorCode']}: {entry.get('ErrorMessage', '')}" if entry.get("ErrorCode") else None
            for entry in entries[: len(events)]
        ]

    def _entry(self, event: JobEvent) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "Source": EVENT_SOURCE,
            "DetailType": event.detail_type,
            "Detail": json.dumps(event.detail, separators=(",", ":")),
            "EventBusName": self._bus,
        }
        # The event's `time` is when the job changed, not when it was published.
        with contextlib.suppress(ValueError):
            entry["Time"] = dt.datetime.fromisoformat(event.time)
        return entry
