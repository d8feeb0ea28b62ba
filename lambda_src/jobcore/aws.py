"""boto3 clients, created lazily and cached per container (the import alone costs ~170 ms of cold start).

One retry layer inside Lambda: botocore makes a single attempt per call (`total_max_attempts: 1`) and
`jobcore.retry` retries with full jitter, bounded by attempts and by the invocation's remaining time;
outside Lambda, the state machine (worker, failure recorder) or SQS redelivery (ingest) retries whole
invocations. Stacking botocore's own retries under ours multiplied every failing call (3 x 5 x 7 before).

Connect and read timeouts come from the invocation's time budget (`call_timeouts`), and `retry.call` starts
no attempt that could outlast the usable time, so no downstream call can outlive the invocation: a stuck
connection surfaces as a TransientError with time left to return. docs/retries.md counts the worst case.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

# Read timeouts to choose from: a few steps, so that the cached clients stay few.
READ_TIMEOUT_STEPS_SECONDS = (1, 2, 3, 5, 10)
MAX_CONNECT_TIMEOUT_SECONDS = 2
# One attempt may take at most this share of the invocation's time at its start.
BUDGET_SHARE = 4


@dataclass(frozen=True)
class CallTimeouts:
    connect_s: int
    read_s: int

    @property
    def attempt_ms(self) -> int:
        """The longest one attempt can take before botocore gives up on it."""
        return (self.connect_s + self.read_s) * 1000


def call_timeouts(budget_ms: int) -> CallTimeouts:
    """Timeouts for the calls of an invocation that has `budget_ms` to spend: the largest step whose
    connect + read fits a quarter of it (never below one second each)."""
    share_s = budget_ms / BUDGET_SHARE / 1000
    read_s = READ_TIMEOUT_STEPS_SECONDS[0]
    for step in READ_TIMEOUT_STEPS_SECONDS:
        if min(step, MAX_CONNECT_TIMEOUT_SECONDS) + step <= share_s:
            read_s = step
    return CallTimeouts(connect_s=min(read_s, MAX_CONNECT_TIMEOUT_SECONDS), read_s=read_s)


def client(service: str, timeouts: CallTimeouts) -> Any:
    return _client(service, timeouts.connect_s, timeouts.read_s)


@functools.cache
def _session() -> Any:
    """One boto3 session per container for every client: a session reads botocore's endpoints, partitions
    and defaults once (a session per client read them again for each, ~25 ms of CPU a client on a cold
    start). Clients are created by the invoking thread only, as a session requires."""
    import boto3  # noqa: PLC0415 - deliberately lazy

    return boto3.session.Session()


@functools.cache
def _client(service: str, connect_s: int, read_s: int) -> Any:
    from botocore.config import Config  # noqa: PLC0415 - deliberately lazy

    config = Config(
        retries={"mode": "standard", "total_max_attempts": 1},
        connect_timeout=connect_s,
        read_timeout=read_s,
        tcp_keepalive=True,
    )
    return _session().client(service, config=config)
