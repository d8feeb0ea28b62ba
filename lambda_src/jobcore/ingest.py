"""The ingest: one SQS record in, one outcome out.

- A permanent problem (the request breaks the contract, or the job cannot be started for a reason that
  retrying will not fix) is answered at once: the original body goes to the DLQ with `error_type`,
  `error_message`, `source_message_id` (and `job_id` when known), the job is marked REJECTED (or FAILED if it
  had been accepted), and the record is acknowledged.
- A transient problem raises TransientError: the handler reports the record in `batchItemFailures`, SQS
  redelivers it, and after maxReceiveCount the queue's redrive moves it to the DLQ.
- Accepting pins the input: its ETag (and VersionId) and size as found now go into the job record, and
  every read of the job asks for exactly that version. A missing or forbidden input makes the job FAILED
  at once, with the reason.
- Accepting is idempotent: a conditional put of the PENDING record, then StartExecution named
  `{job_id}-a{attempt}-e0`; a duplicate delivery finds the record and the execution already there.
- Accepting pins the code too: the job runs, start to finish, on the published versions of the worker,
  the failures function and the state machine that this deploy made (`CodePin`, from the ingest's own
  settings), whatever is deployed while it runs. The execution is started on that state machine version
  and carries the pin in its input; the record keeps it with the job's lineage.
- A FAILED job that arrives again (a redrive from the DLQ) resumes from its checkpoint in attempt + 1 if its
  input is the pinned version and its code is the deployed code. If the input changed, resuming would mix
  two versions of the input in one output: the redrive is refused (InputChangedError) unless the request
  asks for `restart` (a new attempt from offset 0 on the input as it is now, into a fresh output location).
  If the code changed, resuming would mix two versions of the code: refused (CodeVersionChangedError)
  unless the request asks for `restart` or for `upgrade` (resume on the deployed code, the lineage
  recording per shard the offset from which it wrote).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from jobcore import formats, retry, shards
from jobcore.errors import (
    CodeVersionChangedError,
    InputChangedError,
    InputFormatError,
    PermanentError,
    TransientError,
    ValidationError,
    error_of,
)
from jobcore.model import CodePin, InputPin, JobRecord, LineageEntry, ShardPosition, split_s3_uri
from jobcore.notifications import Notification, notification_of, request_for, trigger_for
from jobcore.ports import DeadLetters, ExecutionStarter, JobStore, ObjectStore
from jobcore.request import JobRequest, job_id_of, parse_request
from jobcore.settings import IngestSettings
from pipeline_contract import (
    DLQ_ERROR_MESSAGE,
    DLQ_ERROR_TYPE,
    DLQ_JOB_ID,
    DLQ_SOURCE_MESSAGE_ID,
    FAILED,
    PENDING,
    REJECTED,
    execution_name,
    job_output_prefix,
    utc_now,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
# SQS caps the whole message (body + attributes); a reason longer than this is cut.
MAX_REASON_CHARS = 4096


class Outcome(StrEnum):
    STARTED = "started"
    DUPLICATE = "duplicate"
    RESUMED = "resumed"
    UPGRADED = "upgraded"
    RESTARTED = "restarted"
    REJECTED = "rejected"
    FAILED = "failed"
    REFUSED = "refused"
    IGNORED = "ignored"


@dataclass(frozen=True, kw_only=True)
class IngestMessage:
    message_id: str
    body: str
    # Set on messages that come back from the DLQ: keep the job they belonged to.
    job_id_attribute: str | None = None
    source_message_id_attribute: str | None = None

    @property
    def source_message_id(self) -> str:
        return self.source_message_id_attribute or self.message_id


class Ingest:
    def __init__(
        self,
        *,
        jobs: JobStore,
        objects: ObjectStore,
        executions: ExecutionStarter,
        dead_letters: DeadLetters,
        settings: IngestSettings,
        deadline: retry.Deadline,
        policy: retry.RetryPolicy | None = None,
        now: Callable[[], str] = utc_now,
        epoch: Callable[[], float] = time.time,
    ) -> None:
        self._jobs = jobs
        self._objects = objects
        self._executions = executions
        self._dead_letters = dead_letters
        self._settings = settings
        self._deadline = deadline
        self._policy = policy
        self._now = now
        self._epoch = epoch

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        return retry.call(fn, what=what, deadline=self._deadline, policy=self._policy)

    def handle_message(self, message: IngestMessage) -> list[Outcome]:
        """One SQS message: a job request (one outcome), or an object notification (one per record)."""
        notification = notification_of(message.body)
        if notification is None:
            return [self.handle(message)]
        return self._handle_notification(message, notification)

    def _handle_notification(self, message: IngestMessage, notification: Notification) -> list[Outcome]:
        """Each object created becomes the job its trigger says, under a job id derived from the object's
        version (jobcore.notifications): a duplicate delivery finds its job and changes nothing."""
        outcomes = [Outcome.IGNORED] * notification.ignored
        if notification.ignored:
            log.info("notification records ignored", extra={"ignored": notification.ignored})
        for created in notification.created:
            trigger = trigger_for(created, self._settings.triggers)
            one = IngestMessage(
                message_id=message.message_id,
                body=request_for(created, trigger),
                source_message_id_attribute=message.source_message_id,
            )
            if trigger is None:
                configured = ", ".join(str(t) for t in self._settings.triggers) or "none"
                error = ValidationError(
                    "input",
                    f"{created.uri} was announced by an object notification, but no trigger of this "
                    f"environment takes it (triggers: {configured}): add a trigger in config `triggers`, "
                    "or stop the notifications for it",
                )
                outcomes.append(self._reject(one, error, job_id=created.job_id))
                continue
            log.info("object notification", extra={"job_id": created.job_id, "input": created.uri})
            outcomes.append(self.handle(one))
        return outcomes

    def handle(self, message: IngestMessage) -> Outcome:
        try:
            request = parse_request(
                message.body,
                default_job_id=message.job_id_attribute or message.message_id,
                rules=self._settings.request_rules,
            )
        except ValidationError as error:
            job_id = job_id_of(message.body) or message.job_id_attribute
            return self._reject(message, error, job_id=job_id)
        try:
            return self._accept(message, request)
        except InputFormatError as error:
            # What the input is decides this job: it is REJECTED under its own id, naming the format.
            return self._reject(message, error, job_id=request.job_id)
        except ValidationError as error:
            # The job id belongs to another job: reject this request, leave that job alone.
            return self._reject(message, error, job_id=None, dlq_job_id=request.job_id)
        except PermanentError as error:
            # e.g. StartExecution refused for good: retrying the message cannot help.
            return self._fail(message, request.job_id, error)

    def _inspect(self, request: JobRequest) -> InputPin | PermanentError:
        """The input's current version (or the one the request names), or the permanent reason it cannot be
        read (transient errors raise)."""
        bucket, key = split_s3_uri(request.input)
        try:
            pin = self._call(
                "head input", lambda: self._objects.head(bucket, key, version_id=request.input_version)
            )
        except PermanentError as error:
            return error
        if request.input_etag and pin.etag.strip('"') != request.input_etag.strip('"'):
            return InputChangedError(
                f"input {request.input} is no longer the object the request names (ETag {request.input_etag} "
                f"then, {pin.etag} now): it was overwritten before the job was accepted; the new object is "
                "another job (its own notification starts it, where a trigger watches the prefix)"
            )
        return pin

    def _compression(self, request: JobRequest, pin: InputPin) -> str:
        """How the job reads its input, from its first bytes (one ranged GET of the pinned version); raises
        InputFormatError for an input it cannot read, and for what a compressed input cannot do."""
        bucket, key = split_s3_uri(request.input)
        head = self._call(
            "read input head",
            lambda: self._objects.read_range(bucket, key, 0, min(pin.size, formats.HEAD_BYTES), pin=pin),
        )
        try:
            compression = formats.decide(request.compression, head, input_uri=request.input)
        except ValidationError as error:
            raise InputFormatError(error.field, error.rule) from None
        if compression == formats.NONE:
            return compression
        if request.shards and request.shards > 1:
            raise InputFormatError(
                "shards",
                f"{request.shards} asked, but {request.input} is {compression}-compressed: a compressed input "
                "is decompressed in one pass from its start (no byte range of its text can be read on its "
                "own), so it runs as one shard. Leave `shards` out, or split the input into several objects "
                "(one job each)",
            )
        if compression == formats.ZSTD:
            self._check_zstd_frames(request.input, pin, head)
        return compression

    def _check_zstd_frames(self, uri: str, pin: InputPin, head: bytes) -> None:
        """A single-frame zstd input has no restart point inside it: every resumed segment decompresses it
        from the start. Accepted up to the environment's size; a larger one needs frames."""
        limit = self._settings.zstd_single_frame_max_bytes
        first_frame_end = formats.zstd_first_frame_end(head)
        if pin.size <= limit or (first_frame_end is not None and first_frame_end < pin.size):
            return
        bucket, key = split_s3_uri(uri)
        tail = self._call(
            "read input tail",
            lambda: self._objects.read_range(
                bucket, key, pin.size - formats.ZSTD_SEEKABLE_FOOTER_BYTES, pin.size, pin=pin
            ),
        )
        if formats.zstd_seekable(tail):
            return
        raise InputFormatError(
            "input",
            f"{uri} is one zstd frame of {pin.size} bytes (what `zstd` writes by default), over this "
            f"environment's {limit} bytes for a single frame: a frame has no restart point inside it, so "
            "every segment after the first would decompress it from the start to resume. Recompress it in "
            "frames: the seekable format (`zstd --seekable`, or `t2sz`), `pzstd`, or independent pieces "
            "concatenated (`split -l 1000000 --filter='zstd -q -c' in.jsonl > in.jsonl.zst`), or use gzip",
        )

    def _record(
        self,
        message: IngestMessage,
        request: JobRequest,
        found: InputPin | PermanentError,
        compression: str = formats.NONE,
    ) -> JobRecord:
        now = self._now()
        pin = found if isinstance(found, InputPin) else None
        chunk_bytes = request.chunk_bytes or self._settings.default_chunk_bytes
        shards = self._plan(pin, chunk_bytes, request) if pin and compression == formats.NONE else ()
        code = self._settings.deployed_code
        return JobRecord(
            job_id=request.job_id,
            status=FAILED if pin is None else PENDING,
            input=request.input,
            transform=request.transform,
            transform_options=request.transform_options,
            chunk_bytes=chunk_bytes,
            output_prefix=job_output_prefix(str(self._settings.output_location), request.job_id),
            shards=shards,
            code=code,
            lineage=(_first_lineage(code, attempt=1, shards=shards),),
            input_bytes=pin.size if pin else None,
            input_etag=pin.etag if pin else None,
            input_version=pin.version_id if pin else None,
            max_reject_ratio=request.max_reject_ratio,
            compression=compression,
            output_compression=request.output_compression,
            request=message.body,
            source_message_id=message.source_message_id,
            error=error_of(found) if isinstance(found, PermanentError) else None,
            created_at=now,
            updated_at=now,
            expires_at=int(self._epoch()) + self._settings.job_ttl_days * 86_400,
        )

    def _plan(self, pin: InputPin, chunk_bytes: int, request: JobRequest) -> tuple[ShardPosition, ...]:
        return shards.plan(pin.size, chunk_bytes, request.shards or self._settings.default_shards)

    def _accept(self, message: IngestMessage, request: JobRequest) -> Outcome:
        found = self._inspect(request)
        compression = self._compression(request, found) if isinstance(found, InputPin) else formats.NONE
        record = self._record(message, request, found, compression)
        if self._call("create job", lambda: self._jobs.create(record)):
            if isinstance(found, PermanentError):
                # Created FAILED with the reason: a redrive once the input exists resumes it like any other.
                log.error("job failed at once", extra={"job_id": record.job_id, "reason": str(found)})
                self._send_to_dlq(message, found, record.job_id)
                return Outcome.FAILED
            self._start(message, record, attempt=1)
            log.info(
                "job accepted",
                extra={
                    "job_id": record.job_id,
                    "input_etag": record.input_etag,
                    "shards": len(record.shards) or 1,
                },
            )
            return Outcome.STARTED
        existing = self._call_get(record.job_id)
        if not _same_request(existing, record):
            raise ValidationError(
                "job_id",
                f"'{record.job_id}' is already used by a different request (input {existing.input}, "
                f"transform {existing.transform}); choose another job_id",
            )
        if existing.status == PENDING:
            # Put done, start lost (a crash or timeout in between): starting again is safe, same name.
            started = self._start(message, existing, attempt=existing.attempt)
            return Outcome.STARTED if started else Outcome.DUPLICATE
        if existing.status == FAILED:
            return self._redrive(message, request, existing, found)
        log.info("duplicate request ignored", extra={"job_id": existing.job_id, "status": existing.status})
        return Outcome.DUPLICATE

    def _redrive(
        self,
        message: IngestMessage,
        request: JobRequest,
        existing: JobRecord,
        found: InputPin | PermanentError,
    ) -> Outcome:
        """A FAILED job arriving again: resume it, restart it, or say why neither can be done."""
        if isinstance(found, PermanentError):
            return self._refuse(message, existing, found)
        pinned = existing.pin
        changed = pinned is not None and (pinned.etag, pinned.version_id) != (found.etag, found.version_id)
        attempt = existing.attempt + 1
        # A compressed input runs as one shard (jobcore.compressed: read in one pass).
        planned = () if existing.compressed else self._plan(found, existing.chunk_bytes, request)
        deployed = self._settings.deployed_code
        if request.restart:
            output_prefix = job_output_prefix(
                str(self._settings.output_location), existing.job_id, restart_attempt=attempt
            )
            applied = self._call(
                "restart job",
                lambda: self._jobs.restart(
                    existing.job_id,
                    failed_attempt=existing.attempt,
                    pin=found,
                    output_prefix=output_prefix,
                    updated_at=self._now(),
                    code=deployed,
                    lineage=(_first_lineage(deployed, attempt=attempt, shards=planned),),
                    shards=planned,
                ),
            )
            outcome = Outcome.RESTARTED
        elif changed:
            assert pinned is not None
            return self._refuse(
                message,
                existing,
                InputChangedError(
                    f"input {existing.input} changed since attempt {existing.attempt} began (ETag {pinned.etag} "
                    f"then, {found.etag} now): resuming would mix two versions in one output. Redrive with a "
                    'restart (`pipeline dlq redrive --restart`, or "restart": true in the request) to start '
                    "over on the new version into a fresh output location"
                ),
            )
        elif _would_mix_code(existing, deployed) and not request.upgrade:
            return self._refuse(message, existing, _code_changed_error(existing, deployed))
        else:
            # A job whose input was missing when it arrived is cut into shards now.
            shards = planned if pinned is None else ()
            code, lineage = self._resumed_code(
                existing, deployed, attempt=attempt, size=found.size, shards=shards
            )
            applied = self._call(
                "resume job",
                lambda: self._jobs.resume(
                    existing.job_id,
                    failed_attempt=existing.attempt,
                    pin=found if pinned is None else None,
                    shards=shards,
                    updated_at=self._now(),
                    code=code,
                    lineage=lineage,
                ),
            )
            outcome = Outcome.UPGRADED if _would_mix_code(existing, deployed) else Outcome.RESUMED
        if not applied:
            raise TransientError(f"job {existing.job_id} changed while being redriven; will retry")
        self._start(message, self._call_get(existing.job_id), attempt=attempt)
        log.info(
            "failed job redriven",
            extra={
                "job_id": existing.job_id,
                "attempt": attempt,
                "how": outcome.value,
                "cursor": existing.cursor,
            },
        )
        return outcome

    @staticmethod
    def _resumed_code(
        existing: JobRecord,
        deployed: CodePin,
        *,
        attempt: int,
        size: int,
        shards: tuple[ShardPosition, ...],
    ) -> tuple[CodePin | None, tuple[LineageEntry, ...]]:
        """The code a resumed job runs on, and its lineage: unchanged when the pin is the deployed one;
        else the deployed code (the same code under new version numbers, or an upgrade), with an entry
        that says from which offset of each shard it writes."""
        if existing.code == deployed:
            return None, ()
        if not existing.chunks:
            # Nothing checkpointed yet: the deployed code writes all of it.
            return deployed, (_first_lineage(deployed, attempt=attempt, shards=shards or existing.shards),)
        entry = LineageEntry(
            attempt=attempt, code_version=deployed.code_version, offsets=existing.resume_offsets(size)
        )
        return deployed, (*existing.lineage, entry)

    def _refuse(self, message: IngestMessage, existing: JobRecord, error: PermanentError) -> Outcome:
        """The job stays FAILED, its error says why; the request goes back to the DLQ with that reason."""
        log.warning("redrive refused", extra={"job_id": existing.job_id, "reason": str(error)})
        self._call(
            "record refusal",
            lambda: self._jobs.refuse(
                existing.job_id, attempt=existing.attempt, error=error_of(error), updated_at=self._now()
            ),
        )
        self._send_to_dlq(message, error, existing.job_id)
        return Outcome.REFUSED

    def _fail(self, message: IngestMessage, job_id: str, error: PermanentError) -> Outcome:
        log.error("job could not be started", extra={"job_id": job_id, "reason": str(error)})
        existing = self._call("read job", lambda: self._jobs.get(job_id))
        if existing is not None:
            self._call(
                "mark job failed",
                lambda: self._jobs.fail(
                    job_id, attempt=existing.attempt, error=error_of(error), updated_at=self._now()
                ),
            )
        self._send_to_dlq(message, error, job_id)
        return Outcome.FAILED

    def _call_get(self, job_id: str) -> JobRecord:
        existing = self._call("read job", lambda: self._jobs.get(job_id))
        if existing is None:
            raise TransientError(f"job {job_id} vanished between put and read; will retry")
        return existing

    def _start(self, message: IngestMessage, record: JobRecord, *, attempt: int) -> bool:
        payload = {
            "job_id": record.job_id,
            "attempt": attempt,
            "execution": 0,
            "request": message.body,
            "source_message_id": message.source_message_id,
            # The Map's items: every shard, each resuming from its own checkpoint.
            "shards": shards.map_items(record.positions(record.input_bytes or 0)),
        }
        # A job accepted before jobs were pinned runs on the deployed code (it never had another record).
        code = record.code or self._settings.deployed_code
        payload["pin"] = code.as_input()
        name = execution_name(record.job_id, attempt, 0)
        return self._call(
            "start execution",
            lambda: self._executions.start(state_machine=code.state_machine, name=name, payload=payload),
        )

    def _send_to_dlq(self, message: IngestMessage, error: Exception, job_id: str | None) -> None:
        reason = error_of(error)
        attributes = {
            DLQ_ERROR_TYPE: reason["type"],
            DLQ_ERROR_MESSAGE: reason["message"][:MAX_REASON_CHARS],
            DLQ_SOURCE_MESSAGE_ID: message.source_message_id,
        }
        if job_id:
            attributes[DLQ_JOB_ID] = job_id

        self._call("send to DLQ", lambda: self._dead_letters.send(body=message.body, attributes=attributes))

    def _reject(
        self,
        message: IngestMessage,
        error: ValidationError,
        *,
        job_id: str | None,
        dlq_job_id: str | None = None,
    ) -> Outcome:
        """Mark the job REJECTED (when `job_id` is known and free) and send the request to the DLQ."""
        log.warning(
            "request rejected",
            extra={"job_id": job_id or dlq_job_id, "error_type": type(error).__name__, "reason": str(error)},
        )
        if job_id:
            # Marked first, then sent: if the send fails the retry finds the record and sends again.
            now = self._now()
            rejected = JobRecord(
                job_id=job_id,
                status=REJECTED,
                input=_string_field(message.body, "input"),
                transform=_string_field(message.body, "transform"),
                chunk_bytes=0,
                output_prefix="",
                # Cut: a DynamoDB item holds 400 KB, and the full body is in the DLQ message anyway.
                request=message.body[:MAX_REASON_CHARS],
                source_message_id=message.source_message_id,
                error=error_of(error),
                created_at=now,
                updated_at=now,
                expires_at=int(self._epoch()) + self._settings.job_ttl_days * 86_400,
            )
            self._call("mark job rejected", lambda: self._jobs.reject(rejected))
        self._send_to_dlq(message, error, job_id or dlq_job_id)
        return Outcome.REJECTED


def _first_lineage(code: CodePin, *, attempt: int, shards: tuple[ShardPosition, ...]) -> LineageEntry:
    return LineageEntry(
        attempt=attempt,
        code_version=code.code_version,
        offsets=tuple(shard.start for shard in shards) or (0,),
    )


def _would_mix_code(existing: JobRecord, deployed: CodePin) -> bool:
    """Resuming on the deployed code would put two codes' records in one output: the job has checkpointed
    output, and the code that handles records is not what wrote it (or is unknown, for a job from before
    pins). New version numbers over the same code (a configuration change) are not a change of code."""
    changed = existing.code is None or existing.code.digest != deployed.digest
    return changed and existing.chunks > 0


def _code_changed_error(existing: JobRecord, deployed: CodePin) -> CodeVersionChangedError:
    ran = (
        f"code version {existing.code_version}" if existing.code_version else "code from before code versions"
    )
    return CodeVersionChangedError(
        f"job {existing.job_id} ran {ran} until attempt {existing.attempt} failed; the deployed code is "
        f"version {deployed.code_version}: resuming would mix two code versions in one output. Redrive "
        'with an upgrade (`pipeline dlq redrive --upgrade`, or "upgrade": true in the request) to resume '
        "from the checkpoint on the deployed code, the job's lineage recording the offset where it took "
        'over, or with a restart (`pipeline dlq redrive --restart`, or "restart": true) to reprocess from '
        "the start on the deployed code into a fresh output location"
    )


def _same_request(existing: JobRecord, new: JobRecord) -> bool:
    def identity(record: JobRecord) -> tuple[object, ...]:
        return (
            record.input,
            record.transform,
            record.transform_options,
            record.chunk_bytes,
            record.max_reject_ratio,
            record.output_compression,
        )

    return identity(existing) == identity(new)


def _string_field(body: str, name: str) -> str:
    """A field of a rejected request, for the record: cut like the request itself, since a request is
    rejected precisely when its fields are out of bounds, and a DynamoDB item holds 400 KB at most."""
    try:
        value = json.loads(body).get(name)
    except (ValueError, AttributeError):
        return ""
    return value[:MAX_REASON_CHARS] if isinstance(value, str) else ""
