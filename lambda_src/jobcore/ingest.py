"""The ingest: one SQS record in, one outcome out.

- A permanent problem (the request breaks the contract, or the job cannot be started for a reason that
  retrying will not fix) is answered at once: the original body goes to the DLQ with `error_type`,
  `error_message`, `source_message_id` (and `job_id` when known), the job is marked REJECTED (or FAILED if it
  had been accepted), and the record is acknowledged.
- A transient problem raises TransientError: the handler reports the record in `batchItemFailures`, SQS
  redelivers it, and after maxReceiveCount the queue's redrive moves it to the DLQ.
- Accepting is idempotent: a conditional put of the PENDING record, then StartExecution named
  `{job_id}-a{attempt}-e0`; a duplicate delivery finds the record and the execution already there.
- A FAILED job that arrives again (a redrive from the DLQ) resumes from its checkpoint in attempt + 1.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from jobcore import retry
from jobcore.errors import PermanentError, TransientError, ValidationError
from jobcore.model import FAILED, PENDING, REJECTED, JobRecord, execution_name, utc_now
from jobcore.ports import DeadLetters, ExecutionStarter, JobStore
from jobcore.request import JobRequest, job_id_of, parse_request
from jobcore.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")
# SQS caps the whole message (body + attributes); a reason longer than this is cut.
MAX_REASON_CHARS = 4096


class Outcome(StrEnum):
    STARTED = "started"
    DUPLICATE = "duplicate"
    RESUMED = "resumed"
    REJECTED = "rejected"
    FAILED = "failed"


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
        executions: ExecutionStarter,
        dead_letters: DeadLetters,
        settings: Settings,
        deadline: retry.Deadline,
        now: Callable[[], str] = utc_now,
        epoch: Callable[[], float] = time.time,
    ) -> None:
        self._jobs = jobs
        self._executions = executions
        self._dead_letters = dead_letters
        self._settings = settings
        self._deadline = deadline
        self._now = now
        self._epoch = epoch

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        return retry.call(fn, what=what, deadline=self._deadline)

    def handle(self, message: IngestMessage) -> Outcome:
        try:
            request = parse_request(
                message.body,
                default_job_id=message.job_id_attribute or message.message_id,
                fault_injection_allowed=self._settings.fault_injection_allowed,
                environment=self._settings.environment,
            )
        except ValidationError as error:
            job_id = job_id_of(message.body) or message.job_id_attribute
            return self._reject(message, error, job_id=job_id)
        try:
            return self._accept(message, request)
        except ValidationError as error:
            # The job id belongs to another job: reject this request, leave that job alone.
            return self._reject(message, error, job_id=None, dlq_job_id=request.job_id)
        except PermanentError as error:
            return self._fail(message, request.job_id, error)

    def _record(self, message: IngestMessage, request: JobRequest) -> JobRecord:
        now = self._now()
        return JobRecord(
            job_id=request.job_id,
            status=PENDING,
            input=request.input,
            transform=request.transform,
            chunk_bytes=request.chunk_bytes or self._settings.default_chunk_bytes,
            output_prefix=f"s3://{self._settings.data_bucket_name}/out/{request.job_id}/",
            fault_injection=request.fault_injection,
            request=message.body,
            source_message_id=message.source_message_id,
            created_at=now,
            updated_at=now,
            expires_at=int(self._epoch()) + self._settings.job_ttl_days * 86_400,
        )

    def _accept(self, message: IngestMessage, request: JobRequest) -> Outcome:
        record = self._record(message, request)
        if self._call("create job", lambda: self._jobs.create(record)):
            self._start(message, record.job_id, attempt=1)
            log.info("job accepted", extra={"job_id": record.job_id})
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
            started = self._start(message, existing.job_id, attempt=existing.attempt)
            return Outcome.STARTED if started else Outcome.DUPLICATE
        if existing.status == FAILED:
            resumed = self._call(
                "resume job",
                lambda: self._jobs.resume(
                    existing.job_id, failed_attempt=existing.attempt, updated_at=self._now()
                ),
            )
            if not resumed:
                raise TransientError(f"job {existing.job_id} changed while resuming; will retry")
            self._start(message, existing.job_id, attempt=existing.attempt + 1)
            log.info(
                "failed job resumed from its checkpoint",
                extra={"job_id": existing.job_id, "attempt": existing.attempt + 1, "cursor": existing.cursor},
            )
            return Outcome.RESUMED
        log.info("duplicate request ignored", extra={"job_id": existing.job_id, "status": existing.status})
        return Outcome.DUPLICATE

    def _call_get(self, job_id: str) -> JobRecord:
        existing = self._call("read job", lambda: self._jobs.get(job_id))
        if existing is None:
            raise TransientError(f"job {job_id} vanished between put and read; will retry")
        return existing

    def _start(self, message: IngestMessage, job_id: str, *, attempt: int) -> bool:
        payload = {
            "job_id": job_id,
            "attempt": attempt,
            "execution": 0,
            "request": message.body,
            "source_message_id": message.source_message_id,
        }
        name = execution_name(job_id, attempt, 0)
        return self._call("start execution", lambda: self._executions.start(name=name, payload=payload))

    def _send_to_dlq(self, message: IngestMessage, error: Exception, job_id: str | None) -> None:
        attributes = {
            "error_type": type(error).__name__,
            "error_message": str(error)[:MAX_REASON_CHARS],
            "source_message_id": message.source_message_id,
        }
        if job_id:
            attributes["job_id"] = job_id

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
                error={"type": type(error).__name__, "cause": str(error)[:MAX_REASON_CHARS]},
                created_at=now,
                updated_at=now,
                expires_at=int(self._epoch()) + self._settings.job_ttl_days * 86_400,
            )
            self._call("mark job rejected", lambda: self._jobs.reject(rejected))
        self._send_to_dlq(message, error, job_id or dlq_job_id)
        return Outcome.REJECTED

    def _fail(self, message: IngestMessage, job_id: str, error: PermanentError) -> Outcome:
        log.error("job could not be started", extra={"job_id": job_id, "reason": str(error)})
        failure = {"type": type(error).__name__, "cause": str(error)[:MAX_REASON_CHARS]}
        self._call("mark job failed", lambda: self._jobs.fail(job_id, error=failure, updated_at=self._now()))
        self._send_to_dlq(message, error, job_id)
        return Outcome.FAILED


def _same_request(existing: JobRecord, new: JobRecord) -> bool:
    return (existing.input, existing.transform, existing.chunk_bytes, existing.fault_injection) == (
        new.input,
        new.transform,
        new.chunk_bytes,
        new.fault_injection,
    )


def _string_field(body: str, name: str) -> str:
    try:
        value = json.loads(body).get(name)
    except (ValueError, AttributeError):
        return ""
    return value if isinstance(value, str) else ""
