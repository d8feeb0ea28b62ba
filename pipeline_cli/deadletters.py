"""The dead-letter queue as the CLI reaches it: reading its messages without consuming them, and moving
them back to the ingest queue (SQS's StartMessageMoveTask, or receive -> send -> delete where an endpoint
lacks it). Shared by `pipeline dlq` and the demo.

The DLQ holds requests the ingest rejected and jobs that failed, with message attributes `error_type`,
`error_message`, `source_message_id` and `job_id` (pipeline_contract). The fallback moves nothing twice
within a run and loses nothing: a message leaves the DLQ only after its copy is on the ingest queue.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from pipeline_cli.aws import Pipeline, error_code, error_message
from pipeline_cli.errors import CliError
from pipeline_cli.output import clean_error, shorten
from pipeline_cli.records import get_record
from pipeline_contract import DLQ_ERROR_MESSAGE, DLQ_ERROR_TYPE, DLQ_JOB_ID, DLQ_SOURCE_MESSAGE_ID

# Attributes that describe the failure: they stay behind, so a redriven request is a clean request.
ERROR_ATTRIBUTES = frozenset({DLQ_ERROR_TYPE, DLQ_ERROR_MESSAGE})
# Error codes with which an endpoint says it does not implement StartMessageMoveTask at all.
UNSUPPORTED_CODES = frozenset(
    {
        "NotImplemented",
        "NotImplementedException",
        "UnknownOperation",
        "UnknownOperationException",
        "InvalidAction",
    }
)
RECEIVE_WAIT_SECONDS = 1  # long polling asks every SQS server, so an empty answer means empty (or all hidden)
LIST_VISIBILITY_SECONDS = 10
REDRIVE_VISIBILITY_SECONDS = 60
MAX_LIST_ROUNDS = 100  # x 10 messages per receive
MAX_REDRIVE_ROUNDS = 1000


@dataclass(frozen=True, kw_only=True)
class DlqMessage:
    message_id: str
    receipt_handle: str
    body: str
    attributes: Mapping[str, Mapping[str, Any]]  # message attributes as SQS returns them
    sent_at: str | None
    receive_count: int

    def attribute(self, name: str) -> str | None:
        value = self.attributes.get(name, {}).get("StringValue")
        return str(value) if value is not None else None

    @property
    def job_id(self) -> str | None:
        """The attribute when the state machine wrote it, else the body's own `job_id` if it has one."""
        from_attribute = self.attribute(DLQ_JOB_ID)
        if from_attribute:
            return from_attribute
        try:
            body = json.loads(self.body)
        except ValueError:
            return None
        value = body.get("job_id") if isinstance(body, dict) else None
        return value if isinstance(value, str) else None

    def forwarded_attributes(self) -> dict[str, dict[str, Any]]:
        forwarded: dict[str, dict[str, Any]] = {}
        for name, value in self.attributes.items():
            if name in ERROR_ATTRIBUTES:
                continue
            copy: dict[str, Any] = {"DataType": value["DataType"]}
            for key in ("StringValue", "BinaryValue"):
                if key in value:
                    copy[key] = value[key]
            forwarded[name] = copy
        return forwarded

    def summary(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "job_id": self.job_id,
            "error_type": self.attribute(DLQ_ERROR_TYPE),
            "error_message": self.attribute(DLQ_ERROR_MESSAGE),
            "error": clean_error(
                {"type": self.attribute(DLQ_ERROR_TYPE), "message": self.attribute(DLQ_ERROR_MESSAGE) or ""}
            )
            if self.attribute(DLQ_ERROR_TYPE)
            else None,
            "source_message_id": self.attribute(DLQ_SOURCE_MESSAGE_ID),
            "sent_at": self.sent_at,
            "receive_count": self.receive_count,
            "body": self.body,
        }


@dataclass
class MoveReport:
    moved: list[str] = field(default_factory=list)  # DLQ message ids now on the ingest queue
    skipped: int = 0  # not selected (another job's)
    held_back: int = 0  # the request was already moved in this run: it came back (rejected again)
    failed: list[str] = field(default_factory=list)  # send failed: still in the DLQ
    not_deleted: list[str] = field(default_factory=list)  # sent, but still in the DLQ too
    complete: bool = True  # False when the round bound stopped the loop


class MoveTaskUnsupportedError(Exception):
    """The endpoint has no StartMessageMoveTask (moto 5.2.5, hence the local cloud)."""


def approximate_count(sqs: Any, queue_url: str) -> int:
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])[
        "Attributes"
    ]
    return int(attributes.get("ApproximateNumberOfMessages", 0))


def queue_arn(sqs: Any, queue_url: str) -> str:
    return str(
        sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    )


def receive(sqs: Any, queue_url: str, *, visibility_timeout: int) -> list[DlqMessage]:
    response = sqs.receive_message(
        QueueUrl=queue_url,
        MaxNumberOfMessages=10,
        WaitTimeSeconds=RECEIVE_WAIT_SECONDS,
        VisibilityTimeout=visibility_timeout,
        MessageAttributeNames=["All"],
        MessageSystemAttributeNames=["SentTimestamp", "ApproximateReceiveCount"],
    )
    return [to_message(raw) for raw in response.get("Messages", [])]


def to_message(raw: Mapping[str, Any]) -> DlqMessage:
    system = raw.get("Attributes", {})
    sent = system.get("SentTimestamp")
    return DlqMessage(
        message_id=str(raw["MessageId"]),
        receipt_handle=str(raw["ReceiptHandle"]),
        body=str(raw.get("Body", "")),
        attributes=raw.get("MessageAttributes", {}),
        sent_at=epoch_ms_to_iso(sent) if sent else None,
        receive_count=int(system.get("ApproximateReceiveCount", 0)),
    )


def release(sqs: Any, queue_url: str, receipt_handles: Iterable[str]) -> None:
    """Make received messages visible again at once (visibility 0), ten per call."""
    handles = list(receipt_handles)
    for start in range(0, len(handles), 10):
        entries = [
            {"Id": str(index), "ReceiptHandle": handle, "VisibilityTimeout": 0}
            for index, handle in enumerate(handles[start : start + 10])
        ]
        # Best effort: a handle that expired meanwhile means the message is visible already.
        sqs.change_message_visibility_batch(QueueUrl=queue_url, Entries=entries)


def peek_messages(sqs: Any, queue_url: str, *, max_rounds: int = MAX_LIST_ROUNDS) -> list[DlqMessage]:
    """Every message in the queue, oldest first, left in the queue.

    SQS has no "peek": reading a message means receiving it, which hides it for the visibility timeout
    and raises its receive count. The trade-off taken: a short visibility timeout (if this process dies,
    the messages reappear within seconds), hidden while the listing runs so that each is read once, then
    released at once (visibility 0). A message that reappears anyway (a very long listing) is dropped by
    MessageId. The rounds are bounded, so a queue that keeps growing cannot keep us here. A redrive or
    consumer running at the same moment skips the messages for those few seconds; the DLQ has no redrive
    policy of its own, so the higher receive count moves nothing.
    """
    seen: dict[str, DlqMessage] = {}
    receipts: dict[str, str] = {}  # message id -> latest receipt handle (an older one may not release it)
    try:
        for _ in range(max_rounds):
            batch = receive(sqs, queue_url, visibility_timeout=LIST_VISIBILITY_SECONDS)
            receipts.update((message.message_id, message.receipt_handle) for message in batch)
            fresh = [message for message in batch if message.message_id not in seen]
            if not fresh:
                break
            seen.update((message.message_id, message) for message in fresh)
    finally:
        release(sqs, queue_url, receipts.values())
    return sorted(seen.values(), key=lambda message: (message.sent_at or "", message.message_id))


def start_move_task(pipeline: Pipeline) -> dict[str, Any]:
    """SQS's own redrive: server-side, throttled, resumable. Raises MoveTaskUnsupportedError where the
    endpoint lacks the action, so the caller can fall back."""
    source_arn = queue_arn(pipeline.sqs, pipeline.outputs.dead_letter_queue_url)
    destination_arn = queue_arn(pipeline.sqs, pipeline.outputs.ingest_queue_url)
    approximate = approximate_count(pipeline.sqs, pipeline.outputs.dead_letter_queue_url)
    # One attempt on the local cloud: moto answers an unknown action with HTTP 500, which botocore would
    # otherwise retry with backoff before we could fall back.
    sqs = pipeline.client("sqs", max_attempts=1) if pipeline.is_local else pipeline.sqs
    try:
        response = sqs.start_message_move_task(SourceArn=source_arn, DestinationArn=destination_arn)
    except NotImplementedError as error:
        # moto in-process (mock_aws) raises this from inside the client call.
        raise MoveTaskUnsupportedError(f"StartMessageMoveTask is not implemented here ({error})") from error
    except ClientError as error:
        if move_task_unsupported(error, local=pipeline.is_local):
            code = error_code(error)
            # A numeric code means an unparsed (HTML) body: the status says all there is to say.
            detail = f"HTTP {code}" if code.isdigit() else f"{code}: {shorten(error_message(error), 80)}"
            raise MoveTaskUnsupportedError(
                f"the endpoint does not support StartMessageMoveTask ({detail})"
            ) from error
        raise
    return {
        "method": "message-move-task",
        "task_handle": response["TaskHandle"],
        "source_arn": source_arn,
        "destination_arn": destination_arn,
        "approximate_messages": approximate,
    }


def move_task_unsupported(error: ClientError, *, local: bool) -> bool:
    code = error_code(error)
    if code in UNSUPPORTED_CODES:
        return True
    # moto's server mode raises NotImplementedError inside Flask: an HTML 500 whose code botocore cannot
    # parse (it reports the status, "500"). Only trusted on the local cloud: on AWS a 500 is transient.
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return local and status == 500 and code == "500"


def move_messages(
    sqs: Any,
    *,
    source_url: str,
    destination_url: str,
    select: Callable[[DlqMessage], bool],
    choice: str | None = None,
    max_rounds: int = MAX_REDRIVE_ROUNDS,
) -> MoveReport:
    """Receive -> SendMessage to the destination -> DeleteMessage, one message at a time.

    The delete comes only after the send succeeded, so a crash between the two leaves a copy in both
    queues (at least once), never in neither; the ingest is idempotent per job id. Messages seen once
    are not handled again in this run, even if they reappear.

    A request that fails again while the redrive runs (a permanent error: the ingest rejects it at once)
    comes back as a *new* DLQ message, with the `source_message_id` of the one we moved. Moving it again
    would loop until the round bound, flooding the ingest queue with the same failure; so a message whose
    source was already moved in this run is held back and reported. (Two old DLQ copies of one request
    are held back the same way; one copy moved is enough.)

    One send per message rather than SendMessageBatch: a batch has a total size limit that ten large
    requests can exceed, and per-message calls keep the failure accounting exact; this path serves
    hand-run redrives, not bulk traffic.
    """
    report = MoveReport()
    handled: set[str] = set()
    moved_sources: set[str] = set()
    # Received but still in the source queue (not selected, send failed, held back, or seen again):
    # message id -> latest receipt handle, released together at the end so this loop does not see them.
    held: dict[str, str] = {}
    try:
        for _ in range(max_rounds):
            batch = receive(sqs, source_url, visibility_timeout=REDRIVE_VISIBILITY_SECONDS)
            fresh = [message for message in batch if message.message_id not in handled]
            held.update((m.message_id, m.receipt_handle) for m in batch if m.message_id in handled)
            if not fresh:
                break
            for message in fresh:
                handled.add(message.message_id)
                source = message.attribute(DLQ_SOURCE_MESSAGE_ID)
                if not select(message):
                    report.skipped += 1
                elif source is not None and source in moved_sources:
                    report.held_back += 1
                else:
                    sent_id = move_one(
                        sqs,
                        message,
                        source_url=source_url,
                        destination_url=destination_url,
                        report=report,
                        choice=choice,
                    )
                    if sent_id is not None:
                        # The ingest keeps a forwarded source_message_id, else uses the new message's id.
                        moved_sources.add(source or sent_id)
                        continue
                held[message.message_id] = message.receipt_handle
        else:
            report.complete = False
    finally:
        release(sqs, source_url, held.values())
    return report


# How a redrive may ask the ingest to go on with a FAILED job that cannot simply resume (its input or its
# code changed): the request fields, one at most.
REDRIVE_CHOICES = ("restart", "upgrade")


def with_choice(body: str, choice: str | None) -> str:
    """The request with the redrive choice set as asked (`restart`, `upgrade`, or neither): the chosen field
    added and the other removed, so that a plain redrive of a request that once asked for one resumes
    instead of doing it again. Bodies that are not JSON objects go back unchanged (the ingest rejects them
    with their own reason)."""
    assert choice is None or choice in REDRIVE_CHOICES
    try:
        request = json.loads(body)
    except ValueError:
        return body
    if not isinstance(request, dict):
        return body
    wanted = {name: name == choice for name in REDRIVE_CHOICES}
    if all(request.get(name, False) is on for name, on in wanted.items()):
        return body  # already as asked: the bytes stay exactly as they were
    for name, on in wanted.items():
        if on:
            request[name] = True
        else:
            request.pop(name, None)
    return json.dumps(request, separators=(",", ":"))


def move_one(
    sqs: Any,
    message: DlqMessage,
    *,
    source_url: str,
    destination_url: str,
    report: MoveReport,
    choice: str | None = None,
) -> str | None:
    """The new message's id once sent (the DLQ copy then deleted, or reported); None if the send failed."""
    request: dict[str, Any] = {
        "QueueUrl": destination_url,
        "MessageBody": with_choice(message.body, choice),
    }
    attributes = message.forwarded_attributes()
    if attributes:
        request["MessageAttributes"] = attributes
    try:
        sent_id = str(sqs.send_message(**request)["MessageId"])
    except ClientError:
        report.failed.append(message.message_id)
        return None
    try:
        sqs.delete_message(QueueUrl=source_url, ReceiptHandle=message.receipt_handle)
    except ClientError:
        # Sent, and still in the DLQ: reported so a person can delete it; releasing it early would only
        # make this run see it again.
        report.not_deleted.append(message.message_id)
        return sent_id
    report.moved.append(message.message_id)
    return sent_id


@dataclass(frozen=True, kw_only=True)
class RedriveOutcome:
    """What `redrive` did: started SQS's move task (`task`), or moved messages itself (`report`, with the
    `reason` it had to); `record` is the job's, read when a redrive of one job moved nothing."""

    job_id: str | None
    task: dict[str, Any] | None = None
    report: MoveReport | None = None
    reason: str = ""
    nothing_moved: bool = False
    record: dict[str, Any] | None = None


def redrive(pipeline: Pipeline, *, job_id: str | None, choice: str | None) -> RedriveOutcome:
    """`pipeline dlq redrive` (and the console's redrive buttons): every message, or one job's, back to the
    ingest queue, asking for `choice` (restart, upgrade) or neither. Everything with neither goes by
    StartMessageMoveTask where the endpoint has it; selecting or rewriting needs receive/send/delete."""
    if job_id is None and choice is None:
        try:
            return RedriveOutcome(job_id=None, task=start_move_task(pipeline))
        except MoveTaskUnsupportedError as unsupported:
            reason = str(unsupported)
    else:
        reason = (
            f"--{choice} rewrites the requests, which only the fallback can do"
            if choice
            else "--job-id selects messages, which only the fallback can do"
        )
    select = (lambda message: message.job_id == job_id) if job_id else (lambda _message: True)
    report = move_messages(
        pipeline.sqs,
        source_url=pipeline.outputs.dead_letter_queue_url,
        destination_url=pipeline.outputs.ingest_queue_url,
        select=select,
        choice=choice,
    )
    # A redrive of one job that found none of its messages: is there such a job at all?
    nothing_moved = job_id is not None and not report.moved and not report.held_back
    record = get_record(pipeline, job_id) if nothing_moved and job_id is not None else None
    return RedriveOutcome(
        job_id=job_id, report=report, reason=reason, nothing_moved=nothing_moved, record=record
    )


def redrive_problem(outcome: RedriveOutcome, *, env: str) -> CliError | None:
    """The error a redrive ends with, or None when it did all it was asked."""
    report, job_id = outcome.report, outcome.job_id
    if report is None:
        return None
    if report.failed or report.not_deleted or not report.complete:
        return CliError(
            "the redrive is incomplete (see above); run it again once the cause is fixed", exit_code=1
        )
    if outcome.nothing_moved and outcome.record is None:
        left = f" ({report.skipped} other message(s) left there)" if report.skipped else ""
        return CliError(
            f"unknown job {job_id!r} in environment {env}: no job record and no message of it in "
            f"the DLQ{left}",
            exit_code=2,
        )
    if outcome.nothing_moved:
        assert outcome.record is not None
        return CliError(
            f"no message of job {job_id!r} in the DLQ to redrive (the job is "
            f"{outcome.record.get('status', '?')})",
            exit_code=1,
        )
    return None


def redrive_summary(report: MoveReport, *, reason: str, job_id: str | None) -> str:
    scope = f" of job {job_id}" if job_id else ""
    lines = [
        f"moved {len(report.moved)} message(s){scope} from the DLQ to the ingest queue by "
        f"receive/send/delete ({reason})"
    ]
    if report.skipped:
        lines.append(f"left {report.skipped} message(s) of other jobs in the DLQ")
    if report.held_back:
        lines.append(
            f"held back {report.held_back} message(s) whose request was already moved in this run (it "
            "failed again at once, or was a duplicate): see `pipeline dlq list`"
        )
    if report.failed:
        lines.append(f"could not send {len(report.failed)} message(s); they stay in the DLQ: {report.failed}")
    if report.not_deleted:
        lines.append(
            f"sent but could not delete {len(report.not_deleted)} message(s) from the DLQ (a later redrive "
            f"would send them again): {report.not_deleted}"
        )
    if not report.complete:
        lines.append("stopped at the round limit before the DLQ was drained: run the redrive again")
    return "\n".join(lines)


def epoch_ms_to_iso(value: str) -> str:
    moment = datetime.fromtimestamp(int(value) / 1000, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
