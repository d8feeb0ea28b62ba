"""SQS event source -> jobcore.ingest, with partial batch responses (ReportBatchItemFailures)."""

from __future__ import annotations

import functools
import os
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from handlers.observability import logger, metrics, per_function, tracer
from jobcore.adapters.dynamodb import DynamoJobStore
from jobcore.adapters.messaging import SqsDeadLetters, StepFunctionsStarter
from jobcore.adapters.s3 import S3ObjectStore
from jobcore.aws import call_timeouts, client
from jobcore.errors import TransientError
from jobcore.ingest import Ingest, IngestMessage
from jobcore.plugins import load_bundled_user_code
from jobcore.retry import Deadline, RetryPolicy
from jobcore.settings import IngestSettings

# Records not yet started when less than this remains are handed back to SQS instead of risking a
# timeout that would redeliver the whole batch.
RESERVE_MS = 2_000


SETTINGS = IngestSettings
# The in-function retry layer for every downstream call (tests inject one that does not sleep).
RETRY_POLICY = RetryPolicy()


# Cold start: the team's own transforms join the built-ins (before any request is checked against them).
USER_CODE = load_bundled_user_code()


@functools.cache
def _settings() -> IngestSettings:
    return IngestSettings.from_env(os.environ)


def _attribute(record: dict[str, Any], name: str) -> str | None:
    value = record.get("messageAttributes", {}).get(name, {}).get("stringValue")
    return str(value) if value else None


def to_message(record: dict[str, Any]) -> IngestMessage:
    return IngestMessage(
        message_id=record["messageId"],
        body=record.get("body", ""),
        job_id_attribute=_attribute(record, "job_id"),
        source_message_id_attribute=_attribute(record, "source_message_id"),
    )


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: Any) -> dict[str, list[dict[str, str]]]:
    settings = _settings()
    per_function(context)
    timeouts = call_timeouts(context.get_remaining_time_in_millis() - RESERVE_MS)
    ingest = Ingest(
        jobs=DynamoJobStore(client("dynamodb", timeouts), settings.job_table_name),
        objects=S3ObjectStore(client("s3", timeouts)),
        executions=StepFunctionsStarter(client("stepfunctions", timeouts)),
        dead_letters=SqsDeadLetters(client("sqs", timeouts), settings.dlq_url),
        settings=settings,
        policy=RETRY_POLICY,
        deadline=Deadline(
            remaining_ms=context.get_remaining_time_in_millis,
            reserve_ms=RESERVE_MS,
            attempt_ms=timeouts.attempt_ms,
        ),
    )
    failures: list[dict[str, str]] = []
    for record in event.get("Records", []):
        message_id = record["messageId"]
        if context.get_remaining_time_in_millis() < RESERVE_MS:
            failures.append({"itemIdentifier": message_id})
            metrics.add_metric(name="RequestsHandedBack", unit=MetricUnit.Count, value=1)
            continue
        try:
            outcomes = ingest.handle_message(to_message(record))
        except TransientError as error:
            logger.warning(
                "transient error; SQS will redeliver", extra={"message_id": message_id, "reason": str(error)}
            )
            failures.append({"itemIdentifier": message_id})
            metrics.add_metric(name="RequestsRetried", unit=MetricUnit.Count, value=1)
            continue
        except Exception:  # noqa: BLE001 - one bad record must not fail its batch; redrive bounds the retries
            logger.exception("unexpected error; SQS will redeliver", extra={"message_id": message_id})
            failures.append({"itemIdentifier": message_id})
            metrics.add_metric(name="RequestsRetried", unit=MetricUnit.Count, value=1)
            continue
        for outcome in outcomes:
            metrics.add_metric(name=f"Requests{outcome.value.capitalize()}", unit=MetricUnit.Count, value=1)
    return {"batchItemFailures": failures}
