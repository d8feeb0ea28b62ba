"""Resilience rules as code: checked at synth, each failure a sentence with the numbers in it.

These rules come from AWS documentation and from production incidents, not taste:
- SQS visibility timeout >= 6x the consuming function's timeout (+ batching window), or messages
  still being processed become visible again and are handled twice, burning receives towards the DLQ.
- A Standard execution holds at most 25,000 history events; a loop that can outgrow it fails the job.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

# AWS quota: events in one Standard workflow execution's history.
HISTORY_EVENT_QUOTA = 25_000
# Keep a fifth of the quota as headroom for events this estimate does not model.
HISTORY_BUDGET_FRACTION = 0.8
# The loop runs in rounds: a Map over the job's shards (one worker segment each), then the Tally and Decide
# passes and the Choice. One iteration of the Map: MapIterationStarted and Succeeded, the shard's Choice
# (Entered, Exited) and its worker task (Entered, Scheduled, Started, Succeeded, Exited).
EVENTS_PER_ITERATION = 9
# One round around the Map: the Map (Entered, Started, Succeeded, Exited), Tally, Decide and the Choice
# (Entered, Exited each).
EVENTS_PER_ROUND = 10
# Each retry of the task adds Failed, Scheduled, Started.
EVENTS_PER_RETRY = 3
# Start, MarkRunning (5), StartRounds (2), ContinueAsNew (5) or FinishJob and MarkSucceeded (10), terminal
# state (2), margin.
FIXED_EVENTS_PER_EXECUTION = 26
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


def events_per_iteration(retry_max_attempts: int) -> int:
    """Worst case for one shard's segment: its task exhausts its retries, and its round holds no other
    iteration (a round's own events are counted against each of its iterations)."""
    return EVENTS_PER_ITERATION + EVENTS_PER_ROUND + EVENTS_PER_RETRY * retry_max_attempts


def history_events_per_execution(*, segment_budget: int, retry_max_attempts: int, max_shards: int = 1) -> int:
    """Worst case. The Choice hands over once `segment_budget` iterations have run, checked after each
    round: the last round may start at `segment_budget - 1` and run one iteration per shard."""
    iterations = segment_budget - 1 + max_shards
    return FIXED_EVENTS_PER_EXECUTION + events_per_iteration(retry_max_attempts) * iterations


def check_segment_budget(
    segment_budget: int, *, retry_max_attempts: int = 0, max_shards: int = 1
) -> list[str]:
    if segment_budget < 1:
        return [f"state_machine.segment_budget is {segment_budget}: must be at least 1"]
    events = history_events_per_execution(
        segment_budget=segment_budget, retry_max_attempts=retry_max_attempts, max_shards=max_shards
    )
    limit = int(HISTORY_EVENT_QUOTA * HISTORY_BUDGET_FRACTION)
    if events > limit:
        per_iteration = events_per_iteration(retry_max_attempts)
        largest = (limit - FIXED_EVENTS_PER_EXECUTION) // per_iteration - max_shards + 1
        return [
            f"state_machine.segment_budget is {segment_budget}: {per_iteration} history events per shard "
            f"segment (with up to {retry_max_attempts} retries and its round's share) x ({segment_budget} - 1 + "
            f"{max_shards} shards in the last round) + {FIXED_EVENTS_PER_EXECUTION} = {events} events, over "
            f"{limit} (80% of the {HISTORY_EVENT_QUOTA}-event quota); use at most {largest}"
            + ("" if largest >= 1 else " (none fits: lower state_machine.max_shards or the retries)")
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


# -- the execution timeout -------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RetryShape:
    interval_seconds: float
    backoff_rate: float
    max_delay_seconds: float

    def delays_seconds(self, attempts: int) -> float:
        """The longest total wait of `attempts` retries (FULL jitter waits at most these)."""
        return sum(
            min(self.interval_seconds * self.backoff_rate**k, self.max_delay_seconds) for k in range(attempts)
        )


@dataclass(frozen=True, kw_only=True)
class PassTime:
    """The worst case of one pass of the segment loop, with its parts for the message."""

    worker_seconds: float
    worker_invocations: int
    worker_timeout_seconds: int
    delays_seconds: float
    recorder_seconds: float
    # A round runs the shards in waves of at most the Map's MaxConcurrency: each wave one whole pass.
    waves: int = 1

    @property
    def total_seconds(self) -> float:
        return self.waves * (self.worker_seconds + self.delays_seconds) + self.recorder_seconds


def longest_pass(
    *,
    worker_timeout_seconds: int,
    recorder_timeout_seconds: int,
    retry: RetryShape,
    transient_attempts: int,
    crash_attempts: int,
    max_shards: int = 1,
    max_concurrent_shards: int = 1,
) -> PassTime:
    """Every worker invocation of the pass runs to its timeout and is retried as often as allowed (the
    transient and the crash retriers count separately), then the failure is recorded with retries too. A
    round of `max_shards` shards runs in waves of `max_concurrent_shards`."""
    invocations = 1 + transient_attempts + crash_attempts
    return PassTime(
        waves=math.ceil(max_shards / max_concurrent_shards),
        worker_seconds=worker_timeout_seconds * invocations,
        worker_invocations=invocations,
        worker_timeout_seconds=worker_timeout_seconds,
        delays_seconds=retry.delays_seconds(transient_attempts) + retry.delays_seconds(crash_attempts),
        recorder_seconds=recorder_timeout_seconds * (1 + transient_attempts)
        + retry.delays_seconds(transient_attempts),
    )


def check_execution_timeout(
    *, execution_timeout_minutes: int, handover_after_minutes: int, pass_seconds: PassTime
) -> list[str]:
    """An execution hands over (continue-as-new) at its first round boundary after `handover_after`; the
    round running then may take `pass_seconds` more. All of it must end before the execution timeout: a
    timed-out execution skips every Catch, and only the watchdog would notice."""
    timeout_s = execution_timeout_minutes * 60
    handover_s = handover_after_minutes * 60
    needed = handover_s + pass_seconds.total_seconds
    if needed <= timeout_s:
        return []
    p = pass_seconds
    largest_handover = max(int((timeout_s - p.total_seconds) // 60), 0)
    work = (
        f"worker timeout {p.worker_timeout_seconds} s x {p.worker_invocations} invocations with retries = "
        f"{p.worker_seconds:.0f} s, {p.delays_seconds:.0f} s of retry delays"
    )
    if p.waves > 1:
        work = f"{p.waves} waves of shards x ({work})"
    return [
        f"state_machine.execution_timeout_minutes is {execution_timeout_minutes} ({timeout_s} s), but an "
        f"execution may run {handover_s} s (handover_after_minutes {handover_after_minutes}) plus one "
        f"worst-case round of {p.total_seconds:.0f} s ({work}, {p.recorder_seconds:.0f} s to record a "
        f"failure) = {needed:.0f} s; raise the timeout to at least {math.ceil(needed / 60)} minutes or lower "
        "handover_after_minutes to at most "
        f"{largest_handover}"
    ]


# -- locations -------------------------------------------------------------------------------------------

# S3's bucket naming rules (3-63 lower-case letters, digits, dots, hyphens).
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def check_locations(*, inputs: list[tuple[str | None, str]], output: tuple[str | None, str]) -> list[str]:
    problems: list[str] = []
    if not inputs:
        problems.append("locations.inputs is empty: no job could read its input")
    for index, (bucket, _prefix) in enumerate(inputs):
        if bucket is not None and not _BUCKET_NAME.match(bucket):
            problems.append(f"locations.inputs[{index}].bucket {bucket!r} is not an S3 bucket name")
    bucket, prefix = output
    if bucket is not None and not _BUCKET_NAME.match(bucket):
        problems.append(f"locations.output.bucket {bucket!r} is not an S3 bucket name")
    if not prefix.endswith("/"):
        problems.append(
            f"locations.output.prefix {prefix!r} must end with '/': each job writes under PREFIX<job_id>/"
        )
    return problems


# EventBridge's rule for a bus name (a name, not an ARN: the stack writes the ARN in this account).
_EVENT_BUS_NAME = re.compile(r"^[/\.\-_A-Za-z0-9]{1,256}$")


def check_event_bus_name(name: str | None) -> list[str]:
    if name is not None and (not _EVENT_BUS_NAME.match(name) or name.startswith("aws.")):
        return [
            f"events.bus_name {name!r} is not an EventBridge bus name (1-256 of A-Z a-z 0-9 . _ - /; "
            "a name in this account, not an ARN)"
        ]
    return []


# -- the compliance profile ------------------------------------------------------------------------------

# Lambda refuses a reservation that would leave fewer than 100 unreserved concurrent executions in the
# account's regional pool (Lambda developer guide, "Configuring reserved concurrency").
UNRESERVED_CONCURRENCY_MINIMUM = 100


def check_account_concurrency(reservations: dict[str, int], *, account_concurrency: int) -> list[str]:
    """The functions' reservations must leave Lambda's unreserved minimum of the account's concurrency, or
    the deploy fails (PutFunctionConcurrency is refused) and every other function in the account would
    share what is left."""
    reserved = sum(reservations.values())
    if not reservations or reserved + UNRESERVED_CONCURRENCY_MINIMUM <= account_concurrency:
        return []
    parts = " + ".join(f"{label} {value}" for label, value in reservations.items())
    return [
        f"reserved concurrency {parts} = {reserved} leaves {account_concurrency - reserved} of the account's "
        f"{account_concurrency} (compliance.account_concurrency) unreserved; Lambda keeps at least "
        f"{UNRESERVED_CONCURRENCY_MINIMUM} unreserved, so at most {account_concurrency - UNRESERVED_CONCURRENCY_MINIMUM} "
        "may be reserved: lower the reservations, raise the account's quota, or (strict) give "
        "compliance.unreserved_reason for the functions left unreserved"
    ]


_CIDR = re.compile(r"^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})/(\d{1,2})$")
# The created VPC gets a /24 of isolated subnet per zone: /22 holds up to four zones; AWS allows /16 at most.
_VPC_PREFIX_RANGE = (16, 22)


def check_vpc_cidr(cidr: str) -> list[str]:
    match = _CIDR.match(cidr)
    low, high = _VPC_PREFIX_RANGE
    if not match or any(int(octet) > 255 for octet in match.groups()[:4]) or not low <= int(match[5]) <= high:
        return [f"compliance.vpc_cidr {cidr!r} must be an IPv4 CIDR block from /{low} to /{high}"]
    return []


def check_availability_zones(name: str, zones: tuple[str, ...], *, region: str) -> list[str]:
    if len(set(zones)) != len(zones) or not zones:
        return [f"{name} {list(zones)}: one or more zones, each once"]
    foreign = [zone for zone in zones if not re.fullmatch(rf"{re.escape(region)}[a-z]", zone)]
    if foreign:
        return [f"{name} {foreign} are not zones of {region}"]
    return []


_VPC_ID = re.compile(r"^vpc-[0-9a-f]{8,17}$")
_SUBNET_ID = re.compile(r"^subnet-[0-9a-f]{8,17}$")


def check_given_vpc(
    *, vpc_id: str, availability_zones: tuple[str, ...], subnet_ids: tuple[str, ...], region: str
) -> list[str]:
    problems = []
    if not _VPC_ID.match(vpc_id):
        problems.append(f"compliance.vpc.vpc_id {vpc_id!r} is not a VPC id (vpc-...)")
    bad = [subnet for subnet in subnet_ids if not _SUBNET_ID.match(subnet)]
    if bad or not subnet_ids:
        problems.append(f"compliance.vpc.subnet_ids {list(subnet_ids)}: one or more subnet ids (subnet-...)")
    if len(subnet_ids) != len(availability_zones):
        problems.append(
            f"compliance.vpc has {len(subnet_ids)} subnets for {len(availability_zones)} zones: one subnet "
            "per zone, in the same order"
        )
    problems += check_availability_zones(
        "compliance.vpc.availability_zones", availability_zones, region=region
    )
    return problems


_PRINCIPAL_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:(role|user)/[\w+=,.@/-]+$")


def check_principal_arns(name: str, arns: tuple[str, ...]) -> list[str]:
    bad = [arn for arn in arns if not _PRINCIPAL_ARN.match(arn)]
    if bad:
        return [f"{name} {bad}: each must be an IAM role or user ARN (arn:aws:iam::ACCOUNT:role/NAME)"]
    return []
