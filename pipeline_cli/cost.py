"""What a job costs on AWS, estimated from its own counters and public list prices (docs/cost.md).

The job record counts what the pipeline used: worker segments (Lambda invocations), executions, ranges read
and checkpointed (`chunks`: one S3 GET and one DynamoDB write each), part objects written (S3 PUTs), worker
time and memory (GB-seconds). State transitions are not counted by anyone but Step Functions' bill; they
follow from the definition: per execution MarkRunning, StartRounds and its end (NextExecution, ContinueAsNew
and HandedOver, or MarkSucceeded and Succeeded); per round the Map, Tally, Decide and the Choice; per shard
segment its Choice and its task. Retries, the ingest's own calls and log ingestion are left out (small beside
the rest, or priced per team): it is an estimate of the job's work, not a bill.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

# Public on-demand list prices, us-east-1: x86 Lambda, Step Functions Standard, S3 Standard, DynamoDB
# on-demand, as AWS published them in 2025. Prices change: check the pricing pages before quoting a figure.
PRICES_AS_OF = "AWS us-east-1 list prices as published in 2025"


@dataclass(frozen=True)
class Prices:
    lambda_gb_second: float = 0.0000166667
    lambda_request: float = 0.20 / 1_000_000
    state_transition: float = 0.025 / 1_000
    s3_get: float = 0.0004 / 1_000
    s3_put: float = 0.005 / 1_000
    dynamodb_write_unit: float = 0.625 / 1_000_000
    dynamodb_read_unit: float = 0.125 / 1_000_000


PRICES = Prices()
TRANSITIONS_PER_EXECUTION = 5
TRANSITIONS_PER_ROUND = 4
TRANSITIONS_PER_SEGMENT = 2


@dataclass(frozen=True)
class Usage:
    lambda_gb_seconds: float
    lambda_requests: int
    state_transitions: int
    s3_gets: int
    s3_puts: int
    dynamodb_write_units: int
    dynamodb_read_units: int

    def dollars(self, prices: Prices = PRICES) -> dict[str, float]:
        return {
            "lambda": self.lambda_gb_seconds * prices.lambda_gb_second
            + self.lambda_requests * prices.lambda_request,
            "step_functions": self.state_transitions * prices.state_transition,
            "s3": self.s3_gets * prices.s3_get + self.s3_puts * prices.s3_put,
            "dynamodb": self.dynamodb_write_units * prices.dynamodb_write_unit
            + self.dynamodb_read_units * prices.dynamodb_read_unit,
        }

    def total(self, prices: Prices = PRICES) -> float:
        return sum(self.dollars(prices).values())


def _int(record: Mapping[str, Any], key: str) -> int:
    value = record.get(key)
    return int(value) if value is not None else 0


def shard_count(record: Mapping[str, Any]) -> int:
    shards = record.get("shards")
    return len(shards) if isinstance(shards, Mapping) and shards else 1


def item_write_units(record: Mapping[str, Any]) -> int:
    """A checkpoint rewrites the job item: DynamoDB charges a write unit per KB of it."""
    size = len(json.dumps(record, default=str, separators=(",", ":")).encode())
    return max(1, math.ceil(size / 1024))


def usage_of(record: Mapping[str, Any]) -> Usage:
    segments, executions, chunks = (
        _int(record, "segments"),
        _int(record, "executions"),
        _int(record, "chunks"),
    )
    shards = shard_count(record)
    # A round runs each unfinished shard once: at least segments / shards of them.
    rounds = math.ceil(segments / shards) + executions
    return Usage(
        lambda_gb_seconds=_int(record, "worker_ms") / 1000 * _int(record, "worker_memory_mb") / 1024,
        lambda_requests=segments,
        state_transitions=TRANSITIONS_PER_EXECUTION * executions
        + TRANSITIONS_PER_ROUND * rounds
        + TRANSITIONS_PER_SEGMENT * segments,
        # One GET a range; each shard's first line is found with one more.
        s3_gets=chunks + shards,
        s3_puts=_int(record, "parts_written"),
        # Checkpoints, plus the ingest's put and each execution's MarkRunning, plus MarkSucceeded.
        dynamodb_write_units=(chunks + executions + 2) * item_write_units(record),
        # Each segment reads the job once (strongly consistent: a unit per 4 KB).
        dynamodb_read_units=segments * max(1, math.ceil(item_write_units(record) / 4)),
    )


def estimate(record: Mapping[str, Any]) -> dict[str, Any]:
    """The `estimated_cost` of `pipeline status --json`."""
    usage = usage_of(record)
    return {
        "usd": round(usage.total(), 6),
        "by_service_usd": {name: round(value, 6) for name, value in usage.dollars().items()},
        "usage": asdict(usage),
        "prices": PRICES_AS_OF,
    }


def cost_line(record: Mapping[str, Any]) -> str:
    usage = usage_of(record)
    return (
        f"${usage.total():.4f} at {PRICES_AS_OF} (Lambda {usage.lambda_gb_seconds:,.1f} GB-s in "
        f"{usage.lambda_requests:,} invocations, ~{usage.state_transitions:,} state transitions, S3 "
        f"{usage.s3_gets:,} GET / {usage.s3_puts:,} PUT, DynamoDB {usage.dynamodb_write_units:,} write units)"
    )
