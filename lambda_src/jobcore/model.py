"""The job record and the values that travel between the functions, the table and the state machine."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def split_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/key` -> (bucket, key). The ingest has already validated the shape."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


@dataclass(frozen=True)
class S3Location:
    """`s3://bucket/prefix`: a place inputs may be read from or outputs written to (config decides which,
    for the ingest's validation and the functions' IAM grants alike)."""

    bucket: str
    prefix: str = ""

    @classmethod
    def parse(cls, uri: str) -> S3Location:
        bucket, key = split_s3_uri(uri)
        return cls(bucket, key)

    def contains(self, uri: str) -> bool:
        bucket, key = split_s3_uri(uri)
        return bucket == self.bucket and key.startswith(self.prefix)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


@dataclass(frozen=True, kw_only=True)
class InputPin:
    """The input object as the ingest found it: every read of the job asks for exactly this version."""

    etag: str
    size: int
    # Set where the bucket is versioned: reads then name the version itself.
    version_id: str | None = None


def qualifier(arn: str) -> str:
    """The version of a qualified ARN (`...:function:NAME:7` -> `7`, `...:stateMachine:NAME:3` -> `3`)."""
    return arn.rsplit(":", 1)[-1]


@dataclass(frozen=True, kw_only=True)
class CodeVersion:
    """Which code handles a job's records: the worker's published version and a digest of the function
    code (the built-in transforms and the team's user code). Shown to people; written on every output part."""

    worker: str
    digest: str

    def __str__(self) -> str:
        return f"{self.worker} ({self.digest})"


@dataclass(frozen=True, kw_only=True)
class CodePin:
    """The code a job runs on, fixed when the ingest accepts it: published versions (qualified ARNs) of the
    functions that touch its records or its state, and of the state machine, plus the code's digest. Every
    execution of the job (continue-as-new, shards, crash retries) invokes exactly these."""

    worker: str
    failures: str
    state_machine: str
    digest: str

    @property
    def code_version(self) -> CodeVersion:
        return CodeVersion(worker=qualifier(self.worker), digest=self.digest)

    def as_input(self) -> dict[str, str]:
        """What the state machine reads from its input: `FunctionName.$` and `StateMachineArn.$`."""
        return {"worker": self.worker, "failures": self.failures, "state_machine": self.state_machine}


@dataclass(frozen=True, kw_only=True)
class LineageEntry:
    """From `offsets` on (one per shard: the first byte of the first line it processed), the job's output
    was written by `code_version`, from `attempt` on. A job's lineage starts with the version it was
    accepted on; a redrive with an upgrade adds an entry, so every part's writer is known exactly."""

    attempt: int
    code_version: CodeVersion
    offsets: tuple[int, ...]


@dataclass(frozen=True, kw_only=True)
class RestartPoint:
    """Where a decompressor can start over inside a compressed input (jobcore.compressed): at text offset
    `text`, compressed offset `at`; for gzip, with the access point (its window) in the object `index`
    (`index_bytes` long) beside the job's outputs. A zstd frame boundary needs none."""

    text: int
    at: int
    index: str | None = None
    index_bytes: int = 0

    def as_map(self) -> dict[str, object]:
        return {
            "text": self.text,
            "at": self.at,
            **({"index": self.index, "index_bytes": self.index_bytes} if self.index else {}),
        }

    @classmethod
    def of(cls, value: object) -> RestartPoint | None:
        if not isinstance(value, dict):
            return None
        index = value.get("index")
        return cls(
            text=int(value["text"]),
            at=int(value["at"]),
            index=str(index) if index else None,
            index_bytes=int(value.get("index_bytes", 0)),
        )


@dataclass(frozen=True, kw_only=True)
class RejectSample:
    """One of the first rejects of a job, for the reason a job fails with (offset in the text, and why)."""

    offset: int
    error: str


# The end of a compressed input's text until the worker has found it (never reached by an offset).
UNKNOWN_TEXT_END = 2**62


@dataclass(frozen=True, kw_only=True)
class ShardPosition:
    """One byte range of a job's input, and how far its worker has got. A shard owns the lines whose
    newline falls in [start, end) (and, for the last shard, a final line without one): the same lines a
    one-shard run writes into the parts of those aligned chunks, so the output does not depend on the
    shard count."""

    index: int
    start: int
    end: int
    # Where the next read begins: a line start, or inside a too-long line being skipped. None until the
    # shard's worker has found its first line (the one running into `start` from before it).
    cursor: int | None
    # Set while the cursor is inside a line longer than the limit: where that line began.
    long_line_from: int | None = None

    @property
    def done(self) -> bool:
        return self.cursor is not None and self.cursor >= self.end

    def describe(self) -> str:
        return f"shard {self.index} (bytes {self.start}-{self.end})"


@dataclass(frozen=True, kw_only=True)
class JobRecord:
    job_id: str
    status: str
    input: str
    transform: str
    chunk_bytes: int
    output_prefix: str
    # The job's options for its transform, as a canonical JSON object ("" when it has none).
    transform_options: str = ""
    attempt: int = 1
    cursor: int = 0
    input_bytes: int | None = None
    # ETag (and VersionId) of the input pinned at ingest; None only for a job whose input was missing then.
    input_etag: str | None = None
    input_version: str | None = None
    # The job's own reject-ratio limit (never above the environment's); None: the environment's.
    max_reject_ratio: float | None = None
    # records_in = records_transformed + records_filtered + records_rejected, at every checkpoint.
    records_in: int = 0
    records_out: int = 0
    records_rejected: int = 0
    records_transformed: int = 0
    records_filtered: int = 0
    records_blank: int = 0
    bytes_in: int = 0
    segments: int = 0
    executions: int = 0
    # Set while the cursor is inside a line longer than the limit: where that line began.
    long_line_from: int | None = None
    # Learned duration of one chunk (ms), so a new invocation's time guard starts informed.
    chunk_ms: int = 0
    # What the job has used, for its cost: ranges read and checkpointed, part objects written, worker time
    # (ms, between an invocation's start and its last checkpoint), and the worker's memory (MB).
    chunks: int = 0
    parts_written: int = 0
    worker_ms: int = 0
    worker_memory_mb: int = 0
    # A sharded job's ranges (jobcore.shards.plan); empty for one shard, whose position is `cursor` and
    # `long_line_from` above.
    shards: tuple[ShardPosition, ...] = ()
    # How the input is read (none, gzip, zstd: jobcore.formats, decided at ingest) and how parts are written
    # (none, gzip). Offsets (cursor, parts, rejects) are in the text: the decompressed stream.
    compression: str = "none"
    output_compression: str = "none"
    # A compressed input's decompressor restart point behind the cursor, and its text's size once the
    # worker has reached the end (None before; a plain input's text is the object: `input_bytes`).
    restart_point: RestartPoint | None = None
    text_bytes: int | None = None
    # A compressed input cannot be read backwards cheaply: the first bytes of the long line being skipped.
    long_line_head: bytes | None = None
    # The first rejects of the job (at most MAX_REJECT_SAMPLES), for the reason it fails with.
    first_rejects: tuple[RejectSample, ...] = ()
    # The code the job runs on (None only for a job accepted before jobs were pinned to a code version), and
    # which version wrote which part of the output.
    code: CodePin | None = None
    lineage: tuple[LineageEntry, ...] = ()
    request: str = ""
    source_message_id: str = ""
    error: dict[str, str] | None = None
    created_at: str = ""
    updated_at: str = ""
    expires_at: int = 0

    @property
    def compressed(self) -> bool:
        return self.compression not in ("", "none")

    def text_end(self, size: int) -> int:
        """Where the job's text ends: the object's `size` for a plain input; for a compressed one, the
        decompressed size once the worker has found it (UNKNOWN_TEXT_END before)."""
        if not self.compressed:
            return size
        return self.text_bytes if self.text_bytes is not None else UNKNOWN_TEXT_END

    def positions(self, size: int) -> tuple[ShardPosition, ...]:
        """Every shard of the job over an input of `size` bytes (one, at the top-level cursor, unless it
        is sharded)."""
        if self.shards:
            return self.shards
        return (
            ShardPosition(
                index=0,
                start=0,
                end=self.text_end(size),
                cursor=self.cursor,
                long_line_from=self.long_line_from,
            ),
        )

    def resume_offsets(self, size: int) -> tuple[int, ...]:
        """Per shard, the first byte its next segment processes: where a redrive hands over."""
        return tuple(
            position.start
            if position.cursor is None
            else min(position.cursor, position.long_line_from or position.cursor)
            for position in self.positions(size)
        )

    @property
    def code_version(self) -> CodeVersion | None:
        return self.code.code_version if self.code else None

    @property
    def pin(self) -> InputPin | None:
        if self.input_etag is None or self.input_bytes is None:
            return None
        return InputPin(etag=self.input_etag, size=self.input_bytes, version_id=self.input_version)


@dataclass(frozen=True, kw_only=True)
class Checkpoint:
    """Advance a job (or one of its shards) from `old_cursor` to `new_cursor`, adding this chunk's counts to
    the job's. Applied only if the job is RUNNING in `attempt` and that cursor is still `old_cursor` (None:
    the shard has none yet): monotonic and idempotent."""

    job_id: str
    attempt: int
    old_cursor: int | None
    new_cursor: int
    input_bytes: int
    records_in: int
    records_out: int
    records_rejected: int
    records_transformed: int
    records_filtered: int
    records_blank: int
    bytes_in: int
    segments: int
    chunk_ms: int
    updated_at: str
    # Usage since the previous checkpoint (one range read; these parts; this worker time), and memory.
    parts_written: int = 0
    worker_ms: int = 0
    worker_memory_mb: int = 0
    # The new value (None: the cursor is at a line start).
    long_line_from: int | None = None
    # The shard whose cursor moves; None: the job's own (a job of one shard).
    shard: int | None = None
    # A compressed input's: a newer restart point, the text's size once found, the long line's first bytes.
    restart_point: RestartPoint | None = None
    text_bytes: int | None = None
    long_line_head: bytes | None = None
    # This chunk's first rejects: kept on the job only if it has none yet.
    first_rejects: tuple[RejectSample, ...] = ()


@dataclass(frozen=True, kw_only=True)
class JobEvent:
    """One job lifecycle event for the bus (jobcore.events builds it from a change of the job record)."""

    detail_type: str
    detail: dict[str, Any]
    # When the transition happened (the record's updated_at): the event's `time`.
    time: str

    @property
    def dedupe_key(self) -> tuple[str, int, str]:
        """What identifies the transition: a redelivered event repeats it (docs/job-events.md: delivery)."""
        return (str(self.detail["job_id"]), int(self.detail["attempt"]), self.detail_type)
