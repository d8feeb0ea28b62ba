"""Retries for downstream calls: exponential backoff with full jitter, bounded by attempts *and* by the
invocation's remaining time, so a retry never sleeps past the deadline and the function is never killed
while waiting. It is the only retry layer inside Lambda: botocore makes one attempt per call (jobcore.aws)."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from jobcore.errors import PipelineError, TransientError

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Deadline:
    """Remaining time of the invocation; `reserve_ms` is kept for checkpointing and returning."""

    remaining_ms: Callable[[], int]
    reserve_ms: int = 0
    # The longest one attempt can take (the clients' connect + read timeouts): no attempt starts unless
    # that much usable time is left, so no call outlives the invocation.
    attempt_ms: int = 0

    def usable_ms(self) -> int:
        return self.remaining_ms() - self.reserve_ms

    def fits_attempt(self, after_ms: float = 0) -> bool:
        return self.usable_ms() - after_ms >= self.attempt_ms

    @staticmethod
    def unlimited() -> Deadline:
        return Deadline(remaining_ms=lambda: 2**31)


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    attempts: int = 5
    base_delay_s: float = 0.1
    max_delay_s: float = 5.0
    sleep: Callable[[float], None] = field(default=time.sleep)
    random: Callable[[], float] = field(default=random.random)

    def delay(self, attempt: int) -> float:
        """Full jitter (AWS Architecture Blog): uniform in [0, min(cap, base * 2^attempt))."""
        return self.random() * min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1))


def call(fn: Callable[[], T], *, what: str, deadline: Deadline, policy: RetryPolicy | None = None) -> T:
    """Run `fn`; retry its TransientErrors; when out of attempts or time, raise the last one. Anything
    else (a permanent error, a bug) propagates at once, unchanged."""
    policy = policy or RetryPolicy()
    if not deadline.fits_attempt():
        raise TransientError(f"{what}: too little time left in this invocation for another attempt")
    for attempt in range(1, policy.attempts + 1):
        try:
            return fn()
        except PipelineError as error:
            delay = policy.delay(attempt)
            retry = isinstance(error, TransientError) and attempt < policy.attempts
            if retry and (
                deadline.usable_ms() - delay * 1000 <= 0 or not deadline.fits_attempt(delay * 1000)
            ):
                log.warning("%s: out of time after %d attempts: %s", what, attempt, error)
                retry = False
            if not retry:
                raise
            log.info("%s: attempt %d failed (%s); retrying in %.3fs", what, attempt, error, delay)
            policy.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover
