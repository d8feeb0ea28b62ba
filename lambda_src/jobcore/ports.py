"""What the domain needs from the outside world. Adapters (jobcore.adapters) implement these with boto3;
tests and the benchmark implement them in memory or on local files."""

from __future__ import annotations

from typing import Any, Protocol

from jobcore.model import Checkpoint, JobRecord


class ObjectStore(Protocol):
    def size(self, bucket: str, key: str) -> int:
        """Object size in bytes; raises InputNotFoundError / AccessDeniedError."""
        ...

    def read_range(self, bucket: str, key: str, start: int, end: int) -> bytes:
        """Bytes [start, end) of the object."""
        ...

    def write(self, bucket: str, key: str, body: bytes) -> None: ...


class JobStore(Protocol):
    def get(self, job_id: str) -> JobRecord | None: ...

    def checkpoint(self, checkpoint: Checkpoint) -> bool:
        """Apply the checkpoint; False when its condition failed (stale, raced, cancelled)."""
        ...

    def create(self, record: JobRecord) -> bool:
        """Put a new record; False when a job with that id exists already."""
        ...

    def reject(self, record: JobRecord) -> bool:
        """Put a REJECTED record unless a job with that id exists already (it is never overwritten)."""
        ...

    def resume(self, job_id: str, *, failed_attempt: int, updated_at: str) -> bool:
        """FAILED in `failed_attempt` -> PENDING in attempt + 1, keeping the checkpoint."""
        ...

    def fail(self, job_id: str, *, error: dict[str, str], updated_at: str) -> bool:
        """PENDING/RUNNING -> FAILED with the error."""
        ...


class ExecutionStarter(Protocol):
    def start(self, *, name: str, payload: dict[str, Any]) -> bool:
        """Start an execution; False when one with that name exists already (a duplicate: success)."""
        ...


class DeadLetters(Protocol):
    def send(self, *, body: str, attributes: dict[str, str]) -> None: ...
