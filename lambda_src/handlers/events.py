"""Publishes job lifecycle events (jobcore.events) from the job table's stream: an event source mapping
whose filter lets only status transitions through invokes it with a batch of stream records; it answers with
a partial batch response naming the records whose events could not be put."""

from __future__ import annotations

import functools
import os
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from handlers.observability import logger, metrics
from jobcore import events
from jobcore.adapters.dynamodb import stream_change
from jobcore.adapters.eventbridge import EventBridgeBus
from jobcore.aws import call_timeouts, client
from jobcore.retry import Deadline
from jobcore.settings import EventsSettings

RESERVE_MS = 1_000

SETTINGS = EventsSettings


@functools.cache
def _settings() -> EventsSettings:
    return EventsSettings.from_env(os.environ)


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = _settings()
    changes = [stream_change(record) for record in event.get("Records") or []]
    timeouts = call_timeouts(context.get_remaining_time_in_millis() - RESERVE_MS)
    published = events.publish(
        changes,
        bus=EventBridgeBus(client("events", timeouts), settings.event_bus_name),
        environment=settings.environment,
        deadline=Deadline(
            remaining_ms=context.get_remaining_time_in_millis,
            reserve_ms=RESERVE_MS,
            attempt_ms=timeouts.attempt_ms,
        ),
    )
    metrics.add_metric(name="JobEventsPublished", unit=MetricUnit.Count, value=published.events)
    if published.failed:
        metrics.add_metric(name="JobEventsNotPublished", unit=MetricUnit.Count, value=len(published.failed))
        logger.warning(
            "job events not published: the batch is retried from the first failed record",
            extra={"records": len(changes), "failed": len(published.failed), "from": published.failed[0]},
        )
    return {"batchItemFailures": [{"itemIdentifier": sequence} for sequence in published.failed]}
