"""In-memory implementations of jobcore.ports with the same conditional semantics as the adapters, plus a
Lambda context whose remaining time the test controls."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jobcore.errors import InputChangedError, InputNotFoundError, TransientError
from jobcore.local import MemoryJobStore, etag_of
from jobcore.model import Checkpoint, InputPin, JobRecord
from pipeline_contract import RUNNING


class FakeClock:
    """Monotonic time the test advances; also serves as a Lambda context's remaining time."""

    def __init__(self, *, timeout_ms: int = 60_000) -> None:
        self.now_s = 0.0
        self.deadline_s = timeout_ms / 1000

    def monotonic(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds

    def remaining_ms(self) -> int:
        return int((self.deadline_s - self.now_s) * 1000)


@dataclass
class FakeContext:
    clock: FakeClock = field(default_factory=FakeClock)
    function_name: str = "worker"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:worker"
    aws_request_id: str = "req-1"
    # The published version Lambda runs (tests.handlers' jobs are pinned to it).
    function_version: str = "1"

    def get_remaining_time_in_millis(self) -> int:
        return self.clock.remaining_ms()


class MemoryObjects:
    """An ObjectStore in memory. `on_read` lets a test spend time or fail on a read."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}
        self.reads: list[tuple[int, int]] = []
        self.writes: list[str] = []
        self.on_read: Any = None
        self.fail_writes = 0
        self.metadata: dict[tuple[str, str], dict[str, str]] = {}

    def put(self, uri_bucket: str, key: str, body: bytes) -> None:
        self.objects[(uri_bucket, key)] = body

    def head(self, bucket: str, key: str, *, version_id: str | None = None) -> InputPin:
        if (bucket, key) not in self.objects:
            raise InputNotFoundError(f"input s3://{bucket}/{key} does not exist")
        body = self.objects[(bucket, key)]
        return InputPin(etag=etag_of(body), size=len(body))

    def read_range(self, bucket: str, key: str, start: int, end: int, *, pin: InputPin | None) -> bytes:
        self.reads.append((start, end))
        if self.on_read is not None:
            self.on_read(start, end)
        body = self.objects[(bucket, key)]
        if pin is not None and etag_of(body) != pin.etag:
            raise InputChangedError(
                f"input s3://{bucket}/{key} changed: ETag {pin.etag} then, {etag_of(body)} now"
            )
        return body[start:end]

    def write(self, bucket: str, key: str, body: bytes, *, metadata: Mapping[str, str]) -> None:
        if self.fail_writes:
            self.fail_writes -= 1
            raise TransientError("injected write failure")
        self.writes.append(key)
        self.objects[(bucket, key)] = body
        self.metadata[(bucket, key)] = dict(metadata)

    def under(self, bucket: str, prefix: str) -> dict[str, bytes]:
        return {k: v for (b, k), v in sorted(self.objects.items()) if b == bucket and k.startswith(prefix)}


class MemoryJobs(MemoryJobStore):
    """The in-memory job store, plus `crash_on_checkpoint`: raises once *before* applying, like a
    function killed between writing a part and checkpointing; and `set_status` for a test's hand."""

    def __init__(self) -> None:
        super().__init__()
        self.crash_on_checkpoint = 0

    def checkpoint(self, checkpoint: Checkpoint) -> bool:
        if self.crash_on_checkpoint:
            self.crash_on_checkpoint -= 1
            raise RuntimeError("killed before the checkpoint")
        return super().checkpoint(checkpoint)

    def set_status(self, job_id: str, status: str) -> None:
        self.records[job_id] = dataclasses.replace(self.records[job_id], status=status)


def running_job(
    job_id: str = "job-1",
    *,
    input_uri: str = "s3://data/in/job-1.jsonl",
    chunk_bytes: int = 64,
    transform: str = "passthrough",
    **changes: Any,
) -> JobRecord:
    return JobRecord(
        job_id=job_id,
        status=RUNNING,
        input=input_uri,
        transform=transform,
        chunk_bytes=chunk_bytes,
        output_prefix=f"s3://data/out/{job_id}/",
        **changes,
    )


def registered(name: str, options: Any = None) -> dict[str, Any]:
    """process_lines' transform arguments for a registered transform (bound to `options`)."""
    from jobcore.transforms import TRANSFORMS

    entry = TRANSFORMS[name]
    return {"transform": entry.bind(options), "keeps_bytes": entry.keeps_bytes}
