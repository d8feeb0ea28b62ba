"""Records job failures (jobcore.failures): from the state machine's Catch, and, as the watchdog, from
Step Functions' "Execution Status Change" events for executions that ended outside that Catch."""

from __future__ import annotations

import functools
import os
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from handlers.observability import logger, metrics, per_function
from jobcore import failures
from jobcore.adapters.aws_errors import translated
from jobcore.adapters.dynamodb import DynamoJobStore
from jobcore.adapters.messaging import SqsDeadLetters
from jobcore.aws import call_timeouts, client
from jobcore.retry import Deadline
from jobcore.settings import FailureSettings
from pipeline_contract import utc_now

STATUS_CHANGE = "Step Functions Execution Status Change"
RESERVE_MS = 1_000


SETTINGS = FailureSettings


@functools.cache
def _settings() -> FailureSettings:
    return FailureSettings.from_env(os.environ)


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = _settings()
    per_function(context)
    if event.get("detail-type") == STATUS_CHANGE:
        detail = event.get("detail") or {}
        failure = failures.from_status_change(detail, timeout_minutes=settings.execution_timeout_minutes)
        resend = failures.needs_resend(detail)
        source = "watchdog"
    else:
        failure = failures.from_state_machine(event)
        resend = True  # the state machine retries this step: a retry must still deliver
        source = "state-machine"
    if failure is None:
        return {"outcome": failures.Outcome.IGNORED.value}
    logger.append_keys(job_id=failure.job_id, attempt=failure.attempt, source=source)
    with translated():
        outcome = record(failure, settings, context, resend=resend)
    metrics.add_metric(name=f"Failures{outcome.value.capitalize()}", unit=MetricUnit.Count, value=1)
    return {"outcome": outcome.value, "error": failure.error}


def record(
    failure: failures.Failure, settings: FailureSettings, context: Any, *, resend: bool
) -> failures.Outcome:
    timeouts = call_timeouts(context.get_remaining_time_in_millis() - RESERVE_MS)
    return failures.record_failure(
        failure,
        jobs=DynamoJobStore(client("dynamodb", timeouts), settings.job_table_name),
        dead_letters=SqsDeadLetters(client("sqs", timeouts), settings.dlq_url),
        now=utc_now,
        resend=resend,
        deadline=Deadline(
            remaining_ms=context.get_remaining_time_in_millis,
            reserve_ms=RESERVE_MS,
            attempt_ms=timeouts.attempt_ms,
        ),
    )
