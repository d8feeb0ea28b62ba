"""State machine task -> one time-budgeted segment of a job (jobcore.segment)."""

from __future__ import annotations

import functools
import os
import time
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from handlers.observability import logger, metrics, peak_memory_mb, per_function, tracer
from jobcore.adapters.aws_errors import translated
from jobcore.adapters.dynamodb import DynamoJobStore
from jobcore.adapters.s3 import S3ObjectStore
from jobcore.aws import call_timeouts, client
from jobcore.errors import ValidationError
from jobcore.finish import finish_job
from jobcore.lines import LineLimits
from jobcore.model import CodeVersion
from jobcore.plugins import load_bundled_user_code
from jobcore.segment import SegmentLimits, SegmentRequest, run_segment
from jobcore.settings import WorkerSettings
from pipeline_contract import utc_now

SETTINGS = WorkerSettings


# Cold start: the team's own transforms join the built-ins (before any request is checked against them).
USER_CODE = load_bundled_user_code()


@functools.cache
def _settings() -> WorkerSettings:
    return WorkerSettings.from_env(os.environ)


def to_request(event: dict[str, Any]) -> SegmentRequest:
    job_id = event.get("job_id")
    if not isinstance(job_id, str) or not job_id:
        raise ValidationError("job_id", "the worker payload needs a job_id")
    return SegmentRequest(
        job_id=job_id,
        attempt=int(event.get("attempt", 1)),
        execution=int(event.get("execution", 0)),
        segments_in_execution=int(event.get("segments_in_execution", 0)),
        retry_count=int(event.get("retry_count", 0)),
        execution_started_at=event.get("execution_started_at"),
        shard=int(event.get("shard", 0)),
    )


def _finish(event: dict[str, Any], context: Any, settings: WorkerSettings) -> dict[str, object]:
    """The state machine's FinishJob: the whole job's reject ratio, once every shard is done."""
    request = to_request(event)
    logger.append_keys(job_id=request.job_id, attempt=request.attempt, step="finish")
    timeouts = call_timeouts(context.get_remaining_time_in_millis())
    with translated():
        result = finish_job(
            request.job_id,
            request.attempt,
            jobs=DynamoJobStore(client("dynamodb", timeouts), settings.job_table_name),
            max_reject_ratio=settings.max_reject_ratio,
            remaining_ms=context.get_remaining_time_in_millis,
            attempt_ms=timeouts.attempt_ms,
        )
    logger.info("job finished", extra=result.as_payload())
    metrics.add_metric(name="JobsFinished", unit=MetricUnit.Count, value=1)
    return result.as_payload()


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: Any) -> dict[str, object]:
    settings = _settings()
    if event.get("finish") is True:
        return _finish(event, context, settings)
    request = to_request(event)
    keys = {
        "job_id": request.job_id,
        "attempt": request.attempt,
        "execution": request.execution,
        "segment": request.segments_in_execution + 1,
        "shard": request.shard,
        # The state machine's retries of this segment (transient errors, crashed environments).
        "retry": request.retry_count,
    }
    logger.append_keys(**keys)
    # Found by job in X-Ray (an annotation is indexed) and in the metrics' log lines (properties).
    tracer.put_annotation(key="job_id", value=request.job_id)
    per_function(context)
    for key, value in keys.items():
        metrics.add_metadata(key=key, value=value)
    timeouts = call_timeouts(context.get_remaining_time_in_millis())
    started = time.monotonic()
    with translated():
        result = run_segment(
            request,
            jobs=DynamoJobStore(client("dynamodb", timeouts), settings.job_table_name),
            objects=S3ObjectStore(client("s3", timeouts)),
            remaining_ms=context.get_remaining_time_in_millis,
            limits=SegmentLimits(
                safety_margin_ms=settings.safety_margin_ms,
                max_chunks=settings.max_chunks_per_segment,
                max_reject_ratio=settings.max_reject_ratio,
                lines=LineLimits(max_line_bytes=settings.max_line_bytes),
                handover_after_seconds=settings.handover_after_seconds,
                attempt_ms=timeouts.attempt_ms,
                memory_mb=int(context.memory_limit_in_mb),
                # Invoked by the job's pinned qualified ARN, Lambda runs (and names) that version.
                code=CodeVersion(worker=str(context.function_version), digest=settings.code_digest),
            ),
            now=utc_now,
        )
    elapsed_seconds = time.monotonic() - started
    for name, value in (
        ("RecordsIn", result.records_in),
        ("RecordsOut", result.records_out),
        ("RecordsRejected", result.records_rejected),
        ("Chunks", result.chunks),
    ):
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    # Bytes processed: the input this segment read (and transformed) from the job's cursor.
    metrics.add_metric(name="BytesIn", unit=MetricUnit.Bytes, value=result.bytes_in)
    if result.bytes_in and elapsed_seconds > 0:
        # This segment's own rate, reads, transform, writes and checkpoints included.
        metrics.add_metric(
            name="SegmentThroughput", unit=MetricUnit.BytesPerSecond, value=result.bytes_in / elapsed_seconds
        )
    metrics.add_metric(name="RemainingTimeAtExit", unit=MetricUnit.Milliseconds, value=result.remaining_ms)
    metrics.add_metric(name="PeakMemory", unit=MetricUnit.Megabytes, value=peak_memory_mb())
    logger.info(
        "segment finished",
        extra={"cursor": result.cursor, "done": result.done, "chunks": result.chunks, "stale": result.stale},
    )
    return result.as_payload()
