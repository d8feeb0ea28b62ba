"""Step Functions' execution history quota: 25,000 events. When an execution has 24,999, only an
ExecutionSucceeded may be the 25,000th; anything else, and event 25,000 is ExecutionFailed with
`States.Runtime` and "The execution reached the maximum number of history events (25000).", and the
execution ends FAILED (no Catch sees it). moto 5.2.5's interpreter has no such quota: a loop ran on.

How it models AWS, and where it differs: docs/local-cloud-internals.md#localcloudservicesstepfunctionshistory_limitpy
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from moto.stepfunctions.parser.api import ExecutionFailedEventDetails, HistoryEventType
from moto.stepfunctions.parser.asl.eval.environment import Environment
from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
from moto.stepfunctions.parser.asl.eval.event.event_manager import EventManager

MAX_HISTORY_EVENTS = 25_000
HISTORY_LIMIT_ERROR = "States.Runtime"
HISTORY_LIMIT_CAUSE = f"The execution reached the maximum number of history events ({MAX_HISTORY_EVENTS})."

_REACHED = "_localcloud_history_limit_reached"
_OWNER = "_localcloud_environment"


def install(limit: int = MAX_HISTORY_EVENTS) -> Callable[[], None]:
    """Hold every execution's history to `limit` events; returns the undo."""
    original_add = EventManager.add_event
    original_init = Environment.__init__

    def init(self: Environment, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        # Frames (Map, Parallel branches) get their parent's event manager afterwards: the one set here
        # belongs to the execution's own environment.
        setattr(self.event_manager, _OWNER, self)

    def add_event(self: EventManager, context: Any, event_type: Any, *args: Any, **kwargs: Any) -> int:
        if getattr(self, _REACHED, False):
            # The execution is over; whatever its states still record is not in its history.
            return limit
        if self._event_id_gen._next_id < limit or event_type == HistoryEventType.ExecutionSucceeded:
            return int(original_add(self, context, event_type, *args, **kwargs))
        setattr(self, _REACHED, True)
        details = ExecutionFailedEventDetails(error=HISTORY_LIMIT_ERROR, cause=HISTORY_LIMIT_CAUSE)
        # moto declares EventDetails total, yet builds each with the one key it needs, as here.
        event_details = EventDetails(executionFailedEventDetails=details)  # type: ignore[typeddict-item]
        event_id = int(original_add(self, context, HistoryEventType.ExecutionFailed, event_details))
        environment = getattr(self, _OWNER, None)
        if environment is not None:
            # The loop stops at the current state's end: the execution is FAILED with this error.
            environment.set_error(details)
        return event_id

    Environment.__init__ = init  # type: ignore[method-assign]
    EventManager.add_event = add_event  # type: ignore[method-assign]

    def undo() -> None:
        Environment.__init__ = original_init  # type: ignore[method-assign]
        EventManager.add_event = original_add  # type: ignore[method-assign]

    return undo
