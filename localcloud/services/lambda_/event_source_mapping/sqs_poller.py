"""SQS -> Lambda event source mappings for the local cloud, with Lambda's real delivery semantics: the
mappings are polled through boto3 on the endpoint, in place of moto's push inside SendMessage.
Invariant: a message is deleted only after an invocation that succeeded for it.

How it models AWS, and where it differs: docs/local-cloud-internals.md#localcloudserviceslambda_event_source_mappingsqs_pollerpy
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from botocore.config import Config
from moto.sqs import models as sqs_models

from localcloud.core.state import dummy_session
from localcloud.core.stopping import Stopping, without_retries_when
from localcloud.services.iam.role_clients import RoleClients, SessionCredentials
from localcloud.services.lambda_ import recursion

logger = logging.getLogger(__name__)

# Lambda's synchronous invocation payload limit; a batch stops growing before it (6 MB).
MAX_BATCH_PAYLOAD_BYTES = 6 * 1024 * 1024
# SQS returns at most 10 messages per ReceiveMessage call.
SQS_MAX_MESSAGES_PER_RECEIVE = 10
# AWS Lambda functions time out after 900 s at most: an invoke must be allowed to last that long.
LAMBDA_MAX_TIMEOUT_SECONDS = 900
MAX_BACKOFF_SECONDS = 30.0

_PATCH_MARK = "_localcloud_sqs_push_disabled"


def switch_off_push(model_cls: type, mark: str, *, poller: str) -> bool:
    """Make moto's `lambda_event_source_mappings` on `model_cls` always read as empty (writes dropped), which
    switches off moto's push to Lambda inside the sending call, for existing instances too. A data
    descriptor on the class takes precedence over the instance __dict__, so moto's __init__ assignment
    lands in the setter. False when it was switched off already."""
    if getattr(model_cls, mark, False):
        return False

    def _no_mappings(_model: Any) -> dict[str, Any]:
        return {}

    def _drop_mapping(_model: Any, _value: Any) -> None:
        return None

    setattr(  # noqa: B010
        model_cls,
        "lambda_event_source_mappings",
        property(_no_mappings, _drop_mapping, doc=f"Disabled by localcloud: the {poller} polls."),
    )
    setattr(model_cls, mark, True)
    return True


def disable_moto_sqs_push() -> None:
    """Stop moto from invoking Lambda functions inside SendMessage (idempotent; process-wide).

    moto keeps, on each SQS `Queue`, a dict `lambda_event_source_mappings` that CreateEventSourceMapping
    fills and `Queue.add_message` walks on every send. Replacing that attribute by a property that always
    reads as empty (and drops writes) switches the push off without copying any of moto's code, and also
    covers queues and mappings that already exist. Kinesis and DynamoDB streams are left as they are.
    """
    if not switch_off_push(sqs_models.Queue, _PATCH_MARK, poller="EventSourcePoller"):
        return
    logger.info("moto's SQS push to Lambda is disabled; the local event-source poller delivers instead")


@dataclass(frozen=True)
class InvokeResult:
    """What a synchronous Lambda invocation returned: the decoded JSON payload (or the raw text when it
    is not JSON) and Lambda's `FunctionError` ("Unhandled") when the function raised."""

    payload: Any = None
    function_error: str | None = None


# (function ARN, event) -> result. Tests inject their own; the default calls Lambda Invoke on the endpoint.
InvokeFn = Callable[[str, dict[str, Any]], InvokeResult]


@dataclass(frozen=True)
class MappingConfig:
    """The parts of an SQS event source mapping the poller acts on."""

    uuid: str
    function_arn: str
    queue_arn: str
    batch_size: int
    batching_window_seconds: float
    report_batch_item_failures: bool
    max_concurrency: int

    @property
    def queue_name(self) -> str:
        return self.queue_arn.rsplit(":", 1)[1]

    @property
    def queue_account(self) -> str:
        return self.queue_arn.split(":")[4]

    @classmethod
    def from_api(cls, esm: Mapping[str, Any], *, default_max_concurrency: int) -> MappingConfig:
        scaling = esm.get("ScalingConfig") or {}
        return cls(
            uuid=str(esm["UUID"]),
            function_arn=str(esm["FunctionArn"]),
            queue_arn=str(esm["EventSourceArn"]),
            batch_size=max(1, int(esm.get("BatchSize") or 10)),
            batching_window_seconds=float(esm.get("MaximumBatchingWindowInSeconds") or 0),
            report_batch_item_failures="ReportBatchItemFailures" in (esm.get("FunctionResponseTypes") or []),
            max_concurrency=max(1, int(scaling.get("MaximumConcurrency") or default_max_concurrency)),
        )


@dataclass(frozen=True)
class BatchOutcome:
    """One delivered batch: the message ids sent, those left in the queue, and why."""

    mapping_uuid: str
    message_ids: tuple[str, ...]
    failed_ids: tuple[str, ...]
    outcome: str  # "success", "partial", "function_error", "invalid_response", "recursive"


def is_sqs_mapping(esm: Mapping[str, Any]) -> bool:
    return str(esm.get("EventSourceArn", "")).startswith("arn:aws:sqs:")


def to_lambda_record(message: Mapping[str, Any], *, queue_arn: str) -> dict[str, Any]:
    """One SQS message as Lambda's SQS event shows it (lower-camel keys, base64 binary attributes)."""
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": dict(message.get("Attributes") or {}),
        "messageAttributes": {
            name: _lambda_message_attribute(value)
            for name, value in (message.get("MessageAttributes") or {}).items()
        },
        "md5OfBody": message.get("MD5OfBody"),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": queue_arn.split(":")[3],
    }
    if message.get("MD5OfMessageAttributes"):
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def _b64(value: bytes | str) -> str:
    raw = value.encode() if isinstance(value, str) else value
    return base64.b64encode(raw).decode("ascii")


def _lambda_message_attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    converted: dict[str, Any] = {}
    if "StringValue" in value:
        converted["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        converted["binaryValue"] = _b64(value["BinaryValue"])
    converted["stringListValues"] = list(value.get("StringListValues") or [])
    converted["binaryListValues"] = [_b64(v) for v in value.get("BinaryListValues") or []]
    converted["dataType"] = value.get("DataType", "String")
    return converted


def failed_message_ids(payload: Any, message_ids: list[str]) -> list[str] | None:
    """The ids a partial batch response reports as failed, or None when the response is invalid.

    As documented by AWS: a null or empty response, or a null or empty `batchItemFailures`, is a complete
    success; a response that is not an object, or an entry whose `itemIdentifier` is missing, empty or not
    a message of this batch, makes the whole batch a failure.
    """
    if payload is None:
        return []
    if not isinstance(payload, dict):
        return None
    failures = payload.get("batchItemFailures")
    if failures is None:
        return []
    if not isinstance(failures, list):
        return None
    known = set(message_ids)
    failed: list[str] = []
    for entry in failures:
        identifier = entry.get("itemIdentifier") if isinstance(entry, dict) else None
        if not isinstance(identifier, str) or identifier not in known:
            return None
        if identifier not in failed:
            failed.append(identifier)
    return failed


def access_denied(error: BaseException) -> bool:
    """Whether an SDK error is IAM's refusal (AccessDenied in any service's spelling)."""
    response = getattr(error, "response", None)
    code = str((response or {}).get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""
    return code in ("AccessDenied", "AccessDeniedException", "AuthorizationError", "403")


def _payload_size(message: Mapping[str, Any]) -> int:
    # Body plus a generous allowance for the record's envelope and attributes.
    return len(str(message.get("Body", "")).encode()) + 1024


class MappingSupervisor:
    """What the event-source pollers share (SQS here, DynamoDB streams in `stream_poller` beside it): a
    supervisor thread calls `refresh()` every `refresh_interval_seconds` (backing off while listing fails),
    and `stop()` joins it and the worker threads `refresh()` keeps in `_workers`. Subclasses set
    `_lambda_client` (for `enabled_mappings`) and implement `refresh()`."""

    # Named in the threads and the log.
    kind = "event source"

    def __init__(self, endpoint: str, refresh_interval_seconds: float) -> None:
        self._endpoint = endpoint
        self._refresh_interval = refresh_interval_seconds
        self._lambda_client: Any = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._workers: dict[Any, threading.Thread] = {}
        self._supervisor: threading.Thread | None = None

    def refresh(self) -> None:
        """Reconcile the worker threads with the mappings as the Lambda API reports them now."""
        raise NotImplementedError

    def start(self) -> None:
        if self._supervisor is not None and self._supervisor.is_alive():
            return
        self._stop.clear()
        name = f"localcloud-{self.kind.replace(' ', '-')}-supervisor"
        self._supervisor = threading.Thread(target=self._supervise, name=name, daemon=True)
        self._supervisor.start()
        logger.info("%s poller started on %s", self.kind, self._endpoint)

    def stopping(self) -> None:
        """Start no further poll; `stop` waits for the threads."""
        self._stop.set()

    def without_retries_when_stopping(self, client: Any) -> Any:
        """`client`, whose failed calls are not retried once the poller is stopping (core.stopping)."""
        return without_retries_when(self._stop, client)

    def stop(self, timeout_seconds: float = 10.0) -> None:
        self._stop.set()
        deadline = time.monotonic() + timeout_seconds
        threads = [self._supervisor] if self._supervisor else []
        with self._lock:
            threads += list(self._workers.values())
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                # Daemon threads: a worker stuck in a long invocation does not keep the process alive.
                logger.warning("%s still busy after stop(); left to finish on its own", thread.name)
        self._supervisor = None
        logger.info("%s poller stopped", self.kind)

    def _supervise(self) -> None:
        backoff = 0.0
        while not self._stop.is_set():
            try:
                self.refresh()
                backoff = 0.0
                self._stop.wait(self._refresh_interval)
            except Exception:
                if self._stop.is_set():
                    # Stopping: the listing met the closed gate (its Lambda client makes one attempt, so
                    # it is not one of the clients that raise Stopping). Nothing went wrong.
                    return
                backoff = min(MAX_BACKOFF_SECONDS, max(1.0, backoff * 2))
                logger.exception("listing event source mappings failed; retrying in %.1fs", backoff)
                self._stop.wait(backoff)

    def enabled_mappings(self) -> Iterator[dict[str, Any]]:
        """Every enabled event source mapping, as ListEventSourceMappings pages them."""
        kwargs: dict[str, Any] = {}
        while True:
            page = self._lambda_client.list_event_source_mappings(**kwargs)
            for esm in page.get("EventSourceMappings", []):
                if esm.get("State", "Enabled") == "Enabled":
                    yield esm
            marker = page.get("NextMarker")
            if not marker:
                return
            kwargs = {"Marker": marker}


class EventSourcePoller(MappingSupervisor):
    """Polls every enabled SQS event source mapping of the emulator and invokes its function.

    A supervisor thread re-lists the mappings every `refresh_interval_seconds` and keeps, per mapping,
    `MaximumConcurrency` worker threads (the default when the mapping has no ScalingConfig is
    `default_max_concurrency`); each worker receives one batch at a time, invokes and settles it.
    """

    def __init__(
        self,
        endpoint: str,
        region: str,
        *,
        invoke: InvokeFn | None = None,
        refresh_interval_seconds: float = 2.0,
        wait_time_seconds: int = 1,
        default_max_concurrency: int = 2,
        mapping_filter: Callable[[MappingConfig], bool] | None = None,
        role_credentials: SessionCredentials | None = None,
    ) -> None:
        super().__init__(endpoint, refresh_interval_seconds)
        # Lets a caller (tests sharing one in-process moto) poll only the mappings it owns.
        self._mapping_filter = mapping_filter
        self._region = region
        # Short long-polls: a worker notices stop() within about this long.
        self._wait_time = max(0, min(20, int(wait_time_seconds)))
        self._default_max_concurrency = max(1, default_max_concurrency)
        session = dummy_session(region)
        # Clients are created once, here: boto3 clients are thread-safe, session.client() is not.
        sqs_config = Config(
            max_pool_connections=64,
            read_timeout=self._wait_time + 30,
            retries={"mode": "standard", "max_attempts": 3},
        )
        self._sqs = self.without_retries_when_stopping(
            session.client("sqs", endpoint_url=endpoint, config=sqs_config)
        )
        # Lambda reads a mapping's queue with the function's execution role (the local cloud's server does
        # this, so that IAM is enforced on the reads); without it, with the poller's own credentials.
        self._role_clients = (
            RoleClients(
                endpoint,
                region,
                session,
                sqs_config,
                role_credentials,
                prepare=self.without_retries_when_stopping,
            )
            if role_credentials
            else None
        )
        self._lambda_client = session.client(
            "lambda",
            endpoint_url=endpoint,
            # One attempt: a retried Invoke could run the handler twice for one receive. A failed call
            # leaves the batch in the queue, which redelivers it after the visibility timeout.
            config=Config(
                max_pool_connections=64,
                connect_timeout=10,
                read_timeout=LAMBDA_MAX_TIMEOUT_SECONDS + 60,
                retries={"total_max_attempts": 1},
            ),
        )
        self._cloudwatch = session.client("cloudwatch", endpoint_url=endpoint)
        # The trace header of the batch a worker thread is invoking with (sent as X-Amzn-Trace-Id).
        self._trace = threading.local()
        self._lambda_client.meta.events.register("before-call.lambda.Invoke", self._add_trace_header)
        self._invoke: InvokeFn = invoke or self._invoke_lambda
        self._mappings: dict[str, MappingConfig] = {}
        # (mapping uuid, worker number) -> its thread
        self._workers: dict[tuple[str, int], threading.Thread] = {}
        self._queue_urls: dict[str, str] = {}

    # -- supervision -----------------------------------------------------------------------------------

    def list_sqs_mappings(self) -> list[MappingConfig]:
        """Enabled SQS mappings, as the Lambda API reports them now."""
        mappings = [
            MappingConfig.from_api(esm, default_max_concurrency=self._default_max_concurrency)
            for esm in self.enabled_mappings()
            if is_sqs_mapping(esm)
        ]
        return [m for m in mappings if self._mapping_filter is None or self._mapping_filter(m)]

    def refresh(self) -> None:
        """Reconcile worker threads with the current mappings (new, changed, disabled, deleted)."""
        current = {m.uuid: m for m in self.list_sqs_mappings()}
        with self._lock:
            for uuid in set(self._mappings) - set(current):
                logger.info("mapping %s is gone or disabled; its workers stop after their batch", uuid)
            for uuid, mapping in current.items():
                if self._mappings.get(uuid) != mapping:
                    logger.info(
                        "mapping %s: %s -> %s, batch %d, window %.0fs, concurrency %d, partial batch %s",
                        uuid,
                        mapping.queue_name,
                        mapping.function_arn.rsplit(":", 1)[1],
                        mapping.batch_size,
                        mapping.batching_window_seconds,
                        mapping.max_concurrency,
                        mapping.report_batch_item_failures,
                    )
            # Workers read their mapping from here on each loop and exit when it is gone or shrunk.
            self._mappings = current
            for key, thread in list(self._workers.items()):
                if not thread.is_alive():
                    del self._workers[key]
            if self._stop.is_set():
                return
            for uuid, mapping in current.items():
                for slot in range(mapping.max_concurrency):
                    if (uuid, slot) not in self._workers:
                        thread = threading.Thread(
                            target=self._work,
                            args=(uuid, slot),
                            name=f"localcloud-esm-{uuid[:8]}-{slot}",
                            daemon=True,
                        )
                        self._workers[(uuid, slot)] = thread
                        thread.start()

    def _current(self, uuid: str, slot: int) -> MappingConfig | None:
        with self._lock:
            mapping = self._mappings.get(uuid)
        if mapping is None or slot >= mapping.max_concurrency:
            return None
        return mapping

    def _work(self, uuid: str, slot: int) -> None:
        backoff = 0.0
        while not self._stop.is_set():
            mapping = self._current(uuid, slot)
            if mapping is None:
                return
            try:
                self.poll_once(mapping)
                backoff = 0.0
            except Stopping:
                return
            except Exception as error:
                # Never let one bad batch or a missing queue kill the mapping's delivery for good.
                backoff = min(MAX_BACKOFF_SECONDS, max(0.5, backoff * 2))
                if access_denied(error):
                    # The function's role lacks a grant: the enforcement logged which; no traceback.
                    logger.warning(
                        "mapping %s: the function's role may not read %s (%s); retrying in %.1fs",
                        uuid,
                        mapping.queue_name,
                        error,
                        backoff,
                    )
                else:
                    logger.exception("mapping %s: polling failed; retrying in %.1fs", uuid, backoff)
                self._stop.wait(backoff)

    # -- one batch -------------------------------------------------------------------------------------

    def _sqs_for(self, mapping: MappingConfig) -> Any:
        if self._role_clients is None:
            return self._sqs
        return self._role_clients.client(mapping.function_arn, "sqs")

    def poll_once(self, mapping: MappingConfig) -> BatchOutcome | None:
        """Receive one batch for `mapping`, invoke its function and settle the batch. None when idle."""
        sqs = self._sqs_for(mapping)
        queue_url = self._queue_url(mapping, sqs)
        messages = self._receive_batch(mapping, queue_url, sqs)
        if not messages:
            return None
        messages = self._drop_recursive(mapping, messages)
        if not messages:
            return BatchOutcome(mapping_uuid=mapping.uuid, message_ids=(), failed_ids=(), outcome="recursive")
        records = [to_lambda_record(m, queue_arn=mapping.queue_arn) for m in messages]
        ids = [r["messageId"] for r in records]
        # The invocation carries the lineage on (the batch's furthest along): what it sends is one hop more.
        self._trace.header = recursion.deepest(
            (m.get("Attributes", {}).get(recursion.SQS_TRACE_ATTRIBUTE) for m in messages),
            mapping.function_arn,
        )
        try:
            result = self._invoke(mapping.function_arn, {"Records": records})
        except Exception:
            # The invoke call itself failed (runner down, connection refused): same as a function error.
            logger.exception("mapping %s: invoking %s failed", mapping.uuid, mapping.function_arn)
            result = InvokeResult(function_error="InvokeFailed")

        if result.function_error:
            failed, outcome = ids, "function_error"
        elif not mapping.report_batch_item_failures:
            failed, outcome = [], "success"
        else:
            reported = failed_message_ids(result.payload, ids)
            if reported is None:
                failed, outcome = ids, "invalid_response"
            else:
                failed, outcome = reported, ("partial" if reported else "success")

        failed_set = set(failed)
        self._delete(sqs, queue_url, [m for m in messages if m["MessageId"] not in failed_set])
        log = logger.warning if outcome in ("function_error", "invalid_response") else logger.info
        log(
            "mapping %s: batch of %d from %s -> %s: %s, %d failed%s",
            mapping.uuid,
            len(records),
            mapping.queue_name,
            mapping.function_arn.rsplit(":", 1)[1],
            outcome,
            len(failed),
            f" {sorted(failed)}" if failed and len(failed) <= 10 else "",
        )
        return BatchOutcome(
            mapping_uuid=mapping.uuid, message_ids=tuple(ids), failed_ids=tuple(failed), outcome=outcome
        )

    def _drop_recursive(self, mapping: MappingConfig, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Lambda's recursive loop detection: a message whose lineage has already invoked this function 16
        times is not delivered. It is not deleted either: it becomes visible again after the queue's
        visibility timeout, each receive counts, and the queue's redrive policy moves it to the DLQ, as
        on AWS. Each one counts in AWS/Lambda RecursiveInvocationsDropped."""
        kept = []
        dropped = 0
        for message in messages:
            header = message.get("Attributes", {}).get(recursion.SQS_TRACE_ATTRIBUTE)
            if recursion.is_recursive_loop(mapping.function_arn, header):
                dropped += 1
            else:
                kept.append(message)
        if dropped:
            function_name = mapping.function_arn.split(":")[6]
            logger.warning(
                "mapping %s: recursive loop detected, %d message(s) from %s not delivered to %s",
                mapping.uuid,
                dropped,
                mapping.queue_name,
                function_name,
            )
            self._cloudwatch.put_metric_data(
                Namespace="AWS/Lambda",
                MetricData=[
                    {
                        "MetricName": "RecursiveInvocationsDropped",
                        "Dimensions": [{"Name": "FunctionName", "Value": function_name}],
                        "Value": float(dropped),
                        "Unit": "Count",
                    }
                ],
            )
        return kept

    def _queue_url(self, mapping: MappingConfig, sqs: Any) -> str:
        url = self._queue_urls.get(mapping.queue_arn)
        if url is None:
            url = str(
                sqs.get_queue_url(QueueName=mapping.queue_name, QueueOwnerAWSAccountId=mapping.queue_account)[
                    "QueueUrl"
                ]
            )
            self._queue_urls[mapping.queue_arn] = url
        return url

    def _receive(self, sqs: Any, queue_url: str, count: int, wait_seconds: int) -> list[dict[str, Any]]:
        response = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=max(1, min(SQS_MAX_MESSAGES_PER_RECEIVE, count)),
            WaitTimeSeconds=wait_seconds,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
            # No VisibilityTimeout: the queue's own setting applies, as with Lambda's pollers.
        )
        return list(response.get("Messages", []))

    def _receive_batch(self, mapping: MappingConfig, queue_url: str, sqs: Any) -> list[dict[str, Any]]:
        """Up to BatchSize messages: the first receive long-polls briefly; then, like Lambda, keep
        gathering until the batch is full, the batching window has passed, or the payload limit is near."""
        try:
            messages = self._receive(sqs, queue_url, mapping.batch_size, self._wait_time)
        except sqs.exceptions.QueueDoesNotExist:
            self._queue_urls.pop(mapping.queue_arn, None)
            raise
        if not messages:
            return []
        window = mapping.batching_window_seconds
        if window <= 0 and mapping.batch_size <= SQS_MAX_MESSAGES_PER_RECEIVE:
            return messages
        deadline = time.monotonic() + window
        size = sum(_payload_size(m) for m in messages)
        while len(messages) < mapping.batch_size and size < MAX_BATCH_PAYLOAD_BYTES:
            if self._stop.is_set():
                break
            remaining = deadline - time.monotonic()
            if window > 0 and remaining <= 0:
                break
            wait = int(min(remaining, self._wait_time)) if window > 0 else 0
            more = self._receive(sqs, queue_url, mapping.batch_size - len(messages), wait)
            if not more:
                if window <= 0:
                    break  # no window: deliver what is there now
                if wait == 0:
                    self._stop.wait(min(0.1, max(0.0, remaining)))
                continue
            messages += more
            size += sum(_payload_size(m) for m in more)
        # A message whose visibility ran out during a long window can come back twice: keep the newest.
        unique: dict[str, dict[str, Any]] = {}
        for message in messages:
            unique[message["MessageId"]] = message
        return list(unique.values())

    def _delete(self, sqs: Any, queue_url: str, messages: list[dict[str, Any]]) -> None:
        for start in range(0, len(messages), SQS_MAX_MESSAGES_PER_RECEIVE):
            chunk = messages[start : start + SQS_MAX_MESSAGES_PER_RECEIVE]
            response = sqs.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )
            for failure in response.get("Failed", []):
                # Typically a receipt handle that expired: the message will simply be delivered again.
                logger.warning("could not delete a processed message from %s: %s", queue_url, failure)

    def _add_trace_header(self, params: dict[str, Any], **_kwargs: Any) -> None:
        header = getattr(self._trace, "header", None)
        if header:
            params["headers"][recursion.TRACE_HEADER] = header

    def _invoke_lambda(self, function_arn: str, event: dict[str, Any]) -> InvokeResult:
        response = self._lambda_client.invoke(
            FunctionName=function_arn,
            InvocationType="RequestResponse",
            Payload=json.dumps(event).encode(),
        )
        raw = response["Payload"].read() if response.get("Payload") is not None else b""
        payload: Any
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = raw.decode("utf-8", "replace")
        return InvokeResult(payload=payload, function_error=response.get("FunctionError"))
