"""Resilience rules as code: checked at synth, each failure a sentence with the numbers in it.

These rules come from AWS documentation and from production incidents, not taste:
- SQS visibility timeout >= 6x the consuming function's timeout (+ batching window), or messages
  still being processed become visible again and are handled twice, burning receives towards the DLQ.
- A Standard execution holds at most 25,000 history events; a loop that can outgrow it fails the job.
"""

from __future__ import annotations

# AWS quota: events in one Standard workflow execution's history.
HISTORY_EVENT_QUOTA = 25_000
# Keep a fifth of the quota as headroom for events this estimate does not model.
HISTORY_BUDGET_FRACTION = 0.8
# One pass of the loop: Lambda task (Entered, Scheduled, Started, Succeeded, Exited) + Choice (Entered, Exited).
EVENTS_PER_PASS = 7
# Each retry of the task adds Failed, Scheduled, Started.
EVENTS_PER_RETRY = 3
# Start, MarkRunning (5), ContinueAsNew or MarkSucceeded (5), terminal state (2), with margin.
FIXED_EVENTS_PER_EXECUTION = 20
VISIBILITY_TIMEOUT_FACTOR = 6
MAX_RECEIVE_COUNT_CEILING = 10
# Retention values (days) CloudWatch Logs accepts, among those this project offers.
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 180, 365)


def minimum_visibility_timeout(*, function_timeout_seconds: int, batching_window_seconds: int) -> int:
    return VISIBILITY_TIMEOUT_FACTOR * function_timeout_seconds + batching_window_seconds


def check_visibility_timeout(
    *, visibility_timeout_seconds: int, function_timeout_seconds: int, batching_window_seconds: int
) -> list[str]:
    minimum = minimum_visibility_timeout(
        function_timeout_seconds=function_timeout_seconds, batching_window_seconds=batching_window_seconds
    )
    if visibility_timeout_seconds < minimum:
        return [
            f"ingest queue visibility timeout is {visibility_timeout_seconds}s but must be at least "
            f"{minimum}s ({VISIBILITY_TIMEOUT_FACTOR} x ingest function timeout {function_timeout_seconds}s "
            f"+ batching window {batching_window_seconds}s); otherwise messages reappear while still "
            "being processed"
        ]
    return []


def history_events_per_execution(*, segment_budget: int, retry_max_attempts: int) -> int:
    """Worst case: every pass of the loop exhausts its retries."""
    per_pass = EVENTS_PER_PASS + EVENTS_PER_RETRY * retry_max_attempts
    return FIXED_EVENTS_PER_EXECUTION + per_pass * segment_budget


def check_segment_budget(segment_budget: int, *, retry_max_attempts: int = 0) -> list[str]:
    if segment_budget < 1:
        return [f"state_machine.segment_budget is {segment_budget}: must be at least 1"]
    events = history_events_per_execution(
        segment_budget=segment_budget, retry_max_attempts=retry_max_attempts
    )
    limit = int(HISTORY_EVENT_QUOTA * HISTORY_BUDGET_FRACTION)
    if events > limit:
        per_pass = EVENTS_PER_PASS + EVENTS_PER_RETRY * retry_max_attempts
        largest = (limit - FIXED_EVENTS_PER_EXECUTION) // per_pass
        return [
            f"state_machine.segment_budget is {segment_budget}: {per_pass} history events per pass "
            f"(with up to {retry_max_attempts} retries) x {segment_budget} + {FIXED_EVENTS_PER_EXECUTION} = "
            f"{events} events, over {limit} (80% of the {HISTORY_EVENT_QUOTA}-event quota); "
            f"use at most {largest}"
        ]
    return []


def check_max_receive_count(max_receive_count: int) -> list[str]:
    if not 1 <= max_receive_count <= MAX_RECEIVE_COUNT_CEILING:
        return [
            f"ingest.max_receive_count is {max_receive_count}: must be within 1..{MAX_RECEIVE_COUNT_CEILING} "
            "(more receives only delay a poison message on its way to the DLQ)"
        ]
    return []


def check_worker_margin(*, safety_margin_ms: int, timeout_seconds: int) -> list[str]:
    timeout_ms = timeout_seconds * 1000
    if not 0 < safety_margin_ms < timeout_ms // 2:
        return [
            f"worker.safety_margin_ms is {safety_margin_ms}: must be above 0 and below half the worker "
            f"timeout ({timeout_ms // 2} ms of {timeout_ms} ms), or segments have no time left to work"
        ]
    return []


def check_range(name: str, value: int, low: int, high: int) -> list[str]:
    if not low <= value <= high:
        return [f"{name} is {value}: must be within {low}..{high}"]
    return []


def check_log_retention(days: int) -> list[str]:
    if days not in LOG_RETENTION_DAYS:
        return [f"log_retention_days is {days}: must be one of {', '.join(map(str, LOG_RETENTION_DAYS))}"]
    return []
