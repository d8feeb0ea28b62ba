"""What the domain needs from the outside world. Adapters (jobcore.adapters) implement these with boto3;
tests and the benchmark implement them in memory or on local files."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from jobcore.model import Checkpoint, CodePin, InputPin, JobEvent, JobRecord, LineageEntry, ShardPosition


class ObjectStore(Protocol):
    def head(self, bucket: str, key: str, *, version_id: str | None = None) -> InputPin:
        """The object's current ETag, VersionId and size (of `version_id` when given); raises
        InputNotFoundError / AccessDeniedError."""
        ...

    def read_range(self, bucket: str, key: str, start: int, end: int, *, pin: InputPin | None) -> bytes:
        """Bytes [start, end) of the object, of exactly the pinned version when `pin` is given; raises
        InputChangedError when that version is gone."""
        ...

    def write(self, bucket: str, key: str, body: bytes, *, metadata: Mapping[str, str]) -> None:
        """Put the whole object, with `metadata` as its user metadata (who wrote it)."""


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

    def resume(
        self,
        job_id: str,
        *,
        failed_attempt: int,
        pin: InputPin | None,
        updated_at: str,
        shards: tuple[ShardPosition, ...] = (),
        code: CodePin | None = None,
        lineage: tuple[LineageEntry, ...] = (),
    ) -> bool:
        """FAILED in `failed_attempt` -> PENDING in attempt + 1, keeping the checkpoint (and recording
        `pin` and its `shards` when the job had none: its input was missing when it was accepted; and
        `code` with its `lineage` when it resumes on other code than it ran)."""
        ...

    def restart(
        self,
        job_id: str,
        *,
        failed_attempt: int,
        pin: InputPin,
        output_prefix: str,
        updated_at: str,
        code: CodePin,
        lineage: tuple[LineageEntry, ...],
        shards: tuple[ShardPosition, ...] = (),
    ) -> bool:
        """FAILED in `failed_attempt` -> PENDING in attempt + 1 from offset 0, counters reset, pinned to
        `pin` and `code` and cut into `shards` (none: one), writing under `output_prefix` (a fresh location:
        no output mixes two versions of its input or of the code)."""
        ...

    def fail(self, job_id: str, *, attempt: int, error: dict[str, str], updated_at: str) -> JobRecord | None:
        """PENDING/RUNNING in `attempt` -> FAILED with the error; the record after, or None when the job
        was not PENDING/RUNNING in that attempt (already failed, finished, cancelled or superseded)."""
        ...

    def refuse(self, job_id: str, *, attempt: int, error: dict[str, str], updated_at: str) -> bool:
        """A FAILED job (still in `attempt`) stays FAILED, its error replaced by why a redrive was refused."""
        ...


class ExecutionStarter(Protocol):
    def start(self, *, state_machine: str, name: str, payload: dict[str, Any]) -> bool:
        """Start an execution of `state_machine` (a published version's ARN: the job's pin); False when
        one with that name exists already (a duplicate: success)."""
        ...


class DeadLetters(Protocol):
    def send(self, *, body: str, attributes: dict[str, str]) -> None: ...


class EventBus(Protocol):
    def put(self, events: Sequence[JobEvent]) -> list[str | None]:
        """Put up to 10 events in one call; per event, None when it was accepted, else why not (EventBridge
        refuses entries one by one). Raises TransientError / PermanentError when the call itself fails."""
        ...
