"""The ports implemented on this machine: a job store in memory and an object store on local files.

`pipeline try` runs the real chunk loop with them (no cloud), the benchmark measures it with them, and the
tests build their fakes on them: one implementation of the adapters' conditional semantics off AWS.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jobcore.errors import InputChangedError, InputNotFoundError
from jobcore.model import Checkpoint, CodePin, InputPin, JobRecord, LineageEntry, ShardPosition
from pipeline_contract import FAILED, PENDING, REJECTED, RUNNING, sources


def etag_of(body: bytes) -> str:
    """S3's ETag of a single-part object: the MD5 of its bytes, quoted."""
    return '"' + hashlib.md5(body).hexdigest() + '"'  # noqa: S324 - S3's checksum, not a secret


class FileObjectStore:
    """An ObjectStore over local directories: bucket `b`, key `k` is the file `ROOT/b/k`, or `DIR/k` for a
    bucket given its own directory in `buckets`."""

    def __init__(self, root: Path, *, buckets: Mapping[str, Path] | None = None) -> None:
        self.root = root
        self.buckets = dict(buckets or {})

    def _path(self, bucket: str, key: str) -> Path:
        return self.buckets.get(bucket, self.root / bucket) / key

    def head(self, bucket: str, key: str, *, version_id: str | None = None) -> InputPin:
        path = self._path(bucket, key)
        if not path.is_file():
            raise InputNotFoundError(f"input {path} does not exist")
        # The pin is the size and modification time: a file rewritten while it is read is caught.
        stat = path.stat()
        return InputPin(etag=f'"{stat.st_size}-{stat.st_mtime_ns}"', size=stat.st_size)

    def read_range(self, bucket: str, key: str, start: int, end: int, *, pin: InputPin | None) -> bytes:
        path = self._path(bucket, key)
        if pin is not None:
            current = self.head(bucket, key)
            if current.etag != pin.etag:
                raise InputChangedError(
                    f"input {path} changed while it was read ({pin.etag} then, {current.etag} now)"
                )
        with path.open("rb") as handle:
            handle.seek(start)
            return handle.read(end - start)

    def write(self, bucket: str, key: str, body: bytes, *, metadata: Mapping[str, str]) -> None:
        # A local file keeps no metadata: `pipeline try` runs the checkout's code, with no version to say.
        path = self._path(bucket, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)


class MemoryJobStore:
    """A JobStore in memory, with the DynamoDB adapter's conditions (statuses, attempts, cursors)."""

    def __init__(self) -> None:
        self.records: dict[str, JobRecord] = {}
        self.checkpoints: list[Checkpoint] = []

    def get(self, job_id: str) -> JobRecord | None:
        return self.records.get(job_id)

    def create(self, record: JobRecord) -> bool:
        if record.job_id in self.records:
            return False
        self.records[record.job_id] = record
        return True

    def reject(self, record: JobRecord) -> bool:
        assert record.status == REJECTED
        return self.create(record)

    def checkpoint(self, checkpoint: Checkpoint) -> bool:
        current = self.records[checkpoint.job_id]
        cursor: int | None
        if checkpoint.shard is None:
            cursor = current.cursor
            position: dict[str, Any] = {
                "cursor": checkpoint.new_cursor,
                "long_line_from": checkpoint.long_line_from,
            }
        else:
            shard = current.shards[checkpoint.shard]
            cursor = shard.cursor
            moved = dataclasses.replace(
                shard, cursor=checkpoint.new_cursor, long_line_from=checkpoint.long_line_from
            )
            shards = list(current.shards)
            shards[checkpoint.shard] = moved
            position = {"shards": tuple(shards)}
        if (cursor, current.status, current.attempt) != (checkpoint.old_cursor, RUNNING, checkpoint.attempt):
            return False
        self.checkpoints.append(checkpoint)
        self.records[checkpoint.job_id] = dataclasses.replace(
            current,
            **position,
            input_bytes=checkpoint.input_bytes,
            chunk_ms=checkpoint.chunk_ms,
            records_in=current.records_in + checkpoint.records_in,
            records_out=current.records_out + checkpoint.records_out,
            records_rejected=current.records_rejected + checkpoint.records_rejected,
            records_transformed=current.records_transformed + checkpoint.records_transformed,
            records_filtered=current.records_filtered + checkpoint.records_filtered,
            records_blank=current.records_blank + checkpoint.records_blank,
            bytes_in=current.bytes_in + checkpoint.bytes_in,
            segments=current.segments + checkpoint.segments,
            chunks=current.chunks + 1,
            parts_written=current.parts_written + checkpoint.parts_written,
            worker_ms=current.worker_ms + checkpoint.worker_ms,
            worker_memory_mb=checkpoint.worker_memory_mb,
            updated_at=checkpoint.updated_at,
            restart_point=checkpoint.restart_point or current.restart_point,
            text_bytes=checkpoint.text_bytes if checkpoint.text_bytes is not None else current.text_bytes,
            long_line_head=checkpoint.long_line_head if checkpoint.long_line_from is not None else None,
            first_rejects=current.first_rejects or checkpoint.first_rejects,
        )
        return True

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
        current = self.records[job_id]
        if (current.status, current.attempt) != (FAILED, failed_attempt):
            return False
        pinned: dict[str, Any] = _pinned(pin) if pin is not None else {}
        if shards:
            pinned["shards"] = shards
        if code is not None:
            pinned |= {"code": code, "lineage": lineage}
        self.records[job_id] = dataclasses.replace(
            current, status=PENDING, attempt=failed_attempt + 1, error=None, updated_at=updated_at, **pinned
        )
        return True

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
        current = self.records[job_id]
        if (current.status, current.attempt) != (FAILED, failed_attempt):
            return False
        self.records[job_id] = dataclasses.replace(
            current,
            status=PENDING,
            attempt=failed_attempt + 1,
            error=None,
            updated_at=updated_at,
            output_prefix=output_prefix,
            cursor=0,
            records_in=0,
            records_out=0,
            records_rejected=0,
            records_transformed=0,
            records_filtered=0,
            records_blank=0,
            bytes_in=0,
            segments=0,
            long_line_from=None,
            restart_point=None,
            text_bytes=None,
            long_line_head=None,
            first_rejects=(),
            shards=shards,
            code=code,
            lineage=lineage,
            **_pinned(pin),
        )
        return True

    def fail(self, job_id: str, *, attempt: int, error: dict[str, str], updated_at: str) -> JobRecord | None:
        current = self.records.get(job_id)
        if current is None or current.status not in sources(FAILED) or current.attempt != attempt:
            return None
        self.records[job_id] = dataclasses.replace(current, status=FAILED, error=error, updated_at=updated_at)
        return self.records[job_id]

    def refuse(self, job_id: str, *, attempt: int, error: dict[str, str], updated_at: str) -> bool:
        current = self.records.get(job_id)
        if current is None or (current.status, current.attempt) != (FAILED, attempt):
            return False
        self.records[job_id] = dataclasses.replace(current, error=error, updated_at=updated_at)
        return True


def _pinned(pin: InputPin) -> dict[str, Any]:
    return {"input_etag": pin.etag, "input_bytes": pin.size, "input_version": pin.version_id}
