"""DynamoDB Streams -> Lambda event source mappings for the local cloud, with Lambda's stream semantics: the
mappings are polled through boto3 on the endpoint (the DynamoDB Streams API), in place of moto's push
inside PutItem/UpdateItem. Invariant: per shard, records reach the function in order, one batch at a time,
and the position moves past a record only once its batch succeeded or was sent to the OnFailure
destination.

How it models AWS, and where it differs: docs/local-cloud-internals.md#localcloudserviceslambda_event_source_mappingstream_pollerpy
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.config import Config
from moto.awslambda.models import lambda_backends
from moto.cloudwatch.models import cloudwatch_backends
from moto.dynamodb.models import table as dynamodb_table
from moto.dynamodbstreams.models import dynamodbstreams_backends

from localcloud.core.state import ACCOUNT_ID, REGION, dummy_session
from localcloud.core.stopping import Stopping
from localcloud.services.events.events import pattern_matches
from localcloud.services.iam.role_clients import RoleClients, SessionCredentials
from localcloud.services.lambda_.event_source_mapping.sqs_poller import (
    LAMBDA_MAX_TIMEOUT_SECONDS,
    MAX_BACKOFF_SECONDS,
    InvokeFn,
    InvokeResult,
    MappingSupervisor,
    access_denied,
    switch_off_push,
)

logger = logging.getLogger(__name__)

# Lambda's defaults for a DynamoDB stream mapping.
DEFAULT_BATCH_SIZE = 100
INFINITE = -1
# Lambda polls each shard about 4 times a second.
POLL_INTERVAL_SECONDS = 0.25
GET_RECORDS_LIMIT = 1000
# Lambda does not publish its backoff between retries of a failing batch: here 0.5 s doubling up to 10 s.
RETRY_BASE_SECONDS = 0.5
RETRY_CAP_SECONDS = 10.0

_PATCH_MARK = "_localcloud_dynamodb_push_disabled"


def disable_moto_dynamodb_push() -> None:
    """Stop moto from invoking Lambda functions inside the writes of a table with a stream (idempotent).

    moto keeps, on each `Table`, a dict `lambda_event_source_mappings` that CreateEventSourceMapping fills
    and every write walks: it invokes the function synchronously inside the caller's request, with no
    filter, no retry, and empties the stream shard after a successful invoke (so GetRecords loses them).
    A property that always reads as empty switches it off, for existing tables too (as for SQS in
    `localcloud.services.lambda_.event_source_mapping.sqs_poller`)."""
    if not switch_off_push(dynamodb_table.Table, _PATCH_MARK, poller="StreamPoller"):
        return
    logger.info("moto's DynamoDB stream push to Lambda is disabled; the local stream poller delivers instead")


def is_stream_mapping(esm: Mapping[str, Any]) -> bool:
    arn = str(esm.get("EventSourceArn", ""))
    return arn.startswith("arn:aws:dynamodb:") and "/stream/" in arn


@dataclass(frozen=True)
class StreamMapping:
    """The parts of a DynamoDB stream event source mapping the poller acts on."""

    uuid: str
    function_arn: str
    stream_arn: str
    batch_size: int
    batching_window_seconds: float
    starting_position: str
    # Raw filter patterns (EventBridge syntax); a record is delivered if any matches (or there are none).
    filters: tuple[str, ...]
    report_batch_item_failures: bool
    bisect_on_error: bool
    max_retry_attempts: int  # -1: until the record expires
    max_record_age_seconds: int  # -1: no limit
    on_failure_arn: str | None

    @property
    def region(self) -> str:
        return self.stream_arn.split(":")[3]

    @classmethod
    def from_api(cls, esm: Mapping[str, Any]) -> StreamMapping:
        filters = ((esm.get("FilterCriteria") or {}).get("Filters")) or []
        destination = ((esm.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
        return cls(
            uuid=str(esm["UUID"]),
            function_arn=str(esm["FunctionArn"]),
            stream_arn=str(esm["EventSourceArn"]),
            batch_size=max(1, int(esm.get("BatchSize") or DEFAULT_BATCH_SIZE)),
            batching_window_seconds=float(esm.get("MaximumBatchingWindowInSeconds") or 0),
            starting_position=str(esm.get("StartingPosition") or "TRIM_HORIZON"),
            filters=tuple(str(f["Pattern"]) for f in filters if f.get("Pattern")),
            report_batch_item_failures="ReportBatchItemFailures" in (esm.get("FunctionResponseTypes") or []),
            bisect_on_error=bool(esm.get("BisectBatchOnFunctionError")),
            max_retry_attempts=int(esm.get("MaximumRetryAttempts", INFINITE)),
            max_record_age_seconds=int(esm.get("MaximumRecordAgeInSeconds", INFINITE)),
            on_failure_arn=str(destination) if destination else None,
        )


# -- records as Lambda shows them -------------------------------------------------------------------------


def _encode_binary(value: Any) -> Any:
    """An attribute value as JSON: botocore decoded B/BS to bytes, Lambda's event carries base64."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, inner in value.items():
            if key == "B" and isinstance(inner, (bytes, bytearray)):
                out[key] = base64.b64encode(bytes(inner)).decode("ascii")
            elif key == "BS" and isinstance(inner, list):
                out[key] = [base64.b64encode(bytes(b)).decode("ascii") for b in inner]
            else:
                out[key] = _encode_binary(inner)
        return out
    if isinstance(value, list):
        return [_encode_binary(inner) for inner in value]
    return value


def to_lambda_record(record: Mapping[str, Any], *, stream_arn: str) -> dict[str, Any]:
    """One GetRecords record (as boto3 parses it) as Lambda's DynamoDB event shows it."""
    change = dict(record.get("dynamodb") or {})
    created = change.get("ApproximateCreationDateTime")
    if isinstance(created, dt.datetime):
        change["ApproximateCreationDateTime"] = int(created.timestamp())
    return {
        "eventID": record.get("eventID"),
        "eventName": record.get("eventName"),
        "eventVersion": record.get("eventVersion", "1.1"),
        "eventSource": "aws:dynamodb",
        "awsRegion": stream_arn.split(":")[3],
        "dynamodb": _encode_binary(change),
        "eventSourceARN": stream_arn,
    }


def matches_filters(filters: Sequence[str], record: Mapping[str, Any]) -> bool:
    """Lambda's event filtering: no filter lets everything through; otherwise any one pattern must match
    the record (EventBridge pattern syntax, over the record's JSON)."""
    return not filters or any(pattern_matches(pattern, dict(record)) for pattern in filters)


def first_failed(payload: Any, sequence_numbers: Sequence[str]) -> int | None:
    """The position of the lowest failed record a partial batch response names: len(...) when nothing
    failed, None when the response is invalid (the whole batch failed).

    As AWS documents for streams: null or empty response or batchItemFailures is a complete success; an
    itemIdentifier that is missing, empty or not a sequence number of the batch fails the whole batch."""
    if payload is None or payload in ("", {}):
        return len(sequence_numbers)
    if not isinstance(payload, dict):
        return None
    failures = payload.get("batchItemFailures")
    if failures is None or failures == []:
        return len(sequence_numbers)
    if not isinstance(failures, list):
        return None
    positions = {sequence: index for index, sequence in enumerate(sequence_numbers)}
    found: list[int] = []
    for entry in failures:
        identifier = entry.get("itemIdentifier") if isinstance(entry, dict) else None
        if not isinstance(identifier, str) or identifier not in positions:
            return None
        found.append(positions[identifier])
    return min(found)


def _iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{int(seconds * 1000) % 1000:03d}Z"
    )


def invocation_record(
    mapping: StreamMapping,
    shard_id: str,
    records: Sequence[Mapping[str, Any]],
    *,
    condition: str,
    invoke_count: int,
    function_error: str | None,
    now: float,
) -> dict[str, Any]:
    """What Lambda sends to a stream mapping's OnFailure destination for a discarded batch: metadata
    naming the records (shard, first and last sequence numbers), not the records themselves."""
    arrivals = [float(r["dynamodb"].get("ApproximateCreationDateTime") or now) for r in records]
    response: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
    if function_error:
        response["functionError"] = function_error
    return {
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "functionArn": mapping.function_arn,
            "condition": condition,
            "approximateInvokeCount": invoke_count,
        },
        "responseContext": response,
        "version": "1.0",
        "timestamp": _iso(now),
        "DDBStreamBatchInfo": {
            "shardId": shard_id,
            "startSequenceNumber": records[0]["dynamodb"]["SequenceNumber"],
            "endSequenceNumber": records[-1]["dynamodb"]["SequenceNumber"],
            "approximateArrivalOfFirstRecord": _iso(min(arrivals)),
            "approximateArrivalOfLastRecord": _iso(max(arrivals)),
            "batchSize": len(records),
            "streamArn": mapping.stream_arn,
        },
    }


@dataclass(frozen=True)
class BatchOutcome:
    """One batch read from a shard: the sequence numbers delivered, and those sent to the destination."""

    mapping_uuid: str
    delivered: tuple[str, ...]
    discarded: tuple[str, ...]


# -- Lambda's IteratorAge -----------------------------------------------------------------------------

# (function name, milliseconds): how old a batch's last record is when the mapping sends it.
IteratorAgeFn = Callable[[str, float], None]


def iterator_age_publisher(account_id: str = ACCOUNT_ID, region: str = REGION) -> IteratorAgeFn:
    """Lambda's `AWS/Lambda IteratorAge` (Maximum is what alarms read), put into moto's CloudWatch in
    process, per invocation, as the Lambda runner puts Invocations and Errors."""

    def publish(function_name: str, age_ms: float) -> None:
        datum = {
            "MetricName": "IteratorAge",
            "Value": max(0.0, age_ms),
            "Unit": "Milliseconds",
            "Dimensions": [{"Name": "FunctionName", "Value": function_name}],
        }
        cloudwatch_backends[account_id][region].put_metric_data("AWS/Lambda", [datum])

    return publish


# -- where each mapping is in each shard ---------------------------------------------------------------


class Positions:
    """Per mapping and shard, the sequence number of the last record done with; in memory."""

    def __init__(self) -> None:
        self._positions: dict[tuple[str, str], str] = {}

    def get(self, mapping: StreamMapping, shard_id: str) -> str | None:
        return self._positions.get((mapping.uuid, shard_id))

    def put(self, mapping: StreamMapping, shard_id: str, sequence_number: str) -> None:
        self._positions[(mapping.uuid, shard_id)] = sequence_number


class MotoPositions(Positions):
    """Positions kept on moto's own EventSourceMapping, for a poller in the server's process: the saved
    state (`localcloud.core.persistence` pickles the backends) then carries them across `down` and `up`, as
    Lambda keeps a mapping's position. Without it a restarted cloud read every stream from its oldest
    record again, and every job event was emitted twice."""

    ATTRIBUTE = "localcloud_stream_positions"

    def _kept(self, mapping: StreamMapping) -> dict[str, str] | None:
        _, _, _, region, account = mapping.function_arn.split(":")[:5]
        esm = lambda_backends[account][region]._event_source_mappings.get(mapping.uuid)
        if esm is None:  # deleted meanwhile: nothing to keep
            return None
        kept: dict[str, str] = esm.__dict__.setdefault(self.ATTRIBUTE, {})
        return kept

    def get(self, mapping: StreamMapping, shard_id: str) -> str | None:
        kept = self._kept(mapping)
        return kept.get(shard_id) if kept is not None else super().get(mapping, shard_id)

    def put(self, mapping: StreamMapping, shard_id: str, sequence_number: str) -> None:
        kept = self._kept(mapping)
        if kept is not None:
            kept[shard_id] = sequence_number
        super().put(mapping, shard_id, sequence_number)


# -- the poller ---------------------------------------------------------------------------------------------


class StreamPoller(MappingSupervisor):
    """Polls every enabled DynamoDB stream event source mapping and invokes its function.

    A supervisor thread re-lists the mappings every `refresh_interval_seconds`; each mapping has one worker
    thread that reads its stream's shards in turn (ParallelizationFactor 1: one batch per shard in flight)
    from its own position per mapping and shard (`positions`: in memory unless injected).
    """

    kind = "stream"

    def __init__(
        self,
        endpoint: str,
        region: str,
        *,
        invoke: InvokeFn | None = None,
        refresh_interval_seconds: float = 2.0,
        poll_interval_seconds: float = POLL_INTERVAL_SECONDS,
        retry_base_seconds: float = RETRY_BASE_SECONDS,
        retry_cap_seconds: float = RETRY_CAP_SECONDS,
        mapping_filter: Callable[[StreamMapping], bool] | None = None,
        clock: Callable[[], float] = time.time,
        positions: Positions | None = None,
        iterator_age: IteratorAgeFn | None = None,
        role_credentials: SessionCredentials | None = None,
    ) -> None:
        super().__init__(endpoint, refresh_interval_seconds)
        self._poll_interval = poll_interval_seconds
        self._retry_base = retry_base_seconds
        self._retry_cap = retry_cap_seconds
        self._mapping_filter = mapping_filter
        self._clock = clock
        session = dummy_session(region)
        retries = Config(max_pool_connections=32, retries={"mode": "standard", "max_attempts": 3})
        guarded = self.without_retries_when_stopping
        self._streams = guarded(session.client("dynamodbstreams", endpoint_url=endpoint, config=retries))
        self._sqs = guarded(session.client("sqs", endpoint_url=endpoint, config=retries))
        self._sns = guarded(session.client("sns", endpoint_url=endpoint, config=retries))
        # Lambda reads a stream, and sends to the mapping's on-failure destination, with the function's
        # execution role (the local cloud's server does this, so that IAM is enforced on those calls).
        self._role_clients = (
            RoleClients(endpoint, region, session, retries, role_credentials, prepare=guarded)
            if role_credentials
            else None
        )
        self._lambda_client = session.client(
            "lambda",
            endpoint_url=endpoint,
            # One attempt per invoke: the poller itself decides what a failure means (as Lambda does).
            config=Config(
                max_pool_connections=32,
                connect_timeout=10,
                read_timeout=LAMBDA_MAX_TIMEOUT_SECONDS + 60,
                retries={"total_max_attempts": 1},
            ),
        )
        self._invoke: InvokeFn = invoke or self._invoke_lambda
        self._mappings: dict[str, StreamMapping] = {}
        # mapping uuid -> its one worker
        self._workers: dict[str, threading.Thread] = {}
        self._positions = positions or Positions()
        self._iterator_age = iterator_age
        # stream ARN -> (when described, its shard ids)
        self._shards: dict[str, tuple[float, list[str]]] = {}

    # -- supervision -----------------------------------------------------------------------------------

    def list_stream_mappings(self) -> list[StreamMapping]:
        mappings = [StreamMapping.from_api(esm) for esm in self.enabled_mappings() if is_stream_mapping(esm)]
        return [m for m in mappings if self._mapping_filter is None or self._mapping_filter(m)]

    def refresh(self) -> None:
        """Reconcile worker threads with the current mappings (new, changed, disabled, deleted)."""
        current = {m.uuid: m for m in self.list_stream_mappings()}
        with self._lock:
            for mapping_uuid, mapping in current.items():
                if self._mappings.get(mapping_uuid) != mapping:
                    logger.info(
                        "stream mapping %s: %s -> %s, batch %d, %d filter(s), bisect %s, retries %d, on failure %s",
                        mapping_uuid,
                        mapping.stream_arn.split("/")[1],
                        mapping.function_arn.rsplit(":", 1)[1],
                        mapping.batch_size,
                        len(mapping.filters),
                        mapping.bisect_on_error,
                        mapping.max_retry_attempts,
                        mapping.on_failure_arn,
                    )
            self._mappings = current
            for key, thread in list(self._workers.items()):
                if not thread.is_alive():
                    del self._workers[key]
            if self._stop.is_set():
                return
            for mapping_uuid in current:
                if mapping_uuid not in self._workers:
                    thread = threading.Thread(
                        target=self._work,
                        args=(mapping_uuid,),
                        name=f"localcloud-stream-{mapping_uuid[:8]}",
                        daemon=True,
                    )
                    self._workers[mapping_uuid] = thread
                    thread.start()

    def _current(self, mapping_uuid: str) -> StreamMapping | None:
        with self._lock:
            return self._mappings.get(mapping_uuid)

    def _work(self, mapping_uuid: str) -> None:
        backoff = 0.0
        while not self._stop.is_set():
            mapping = self._current(mapping_uuid)
            if mapping is None:
                return
            try:
                outcomes = self.poll_once(mapping)
                backoff = 0.0
                if not outcomes:
                    self._stop.wait(self._poll_interval)
            except Stopping:
                return
            except Exception as error:
                backoff = min(MAX_BACKOFF_SECONDS, max(0.5, backoff * 2))
                if access_denied(error):
                    # The function's role lacks a grant: the enforcement logged which; no traceback.
                    logger.warning(
                        "stream mapping %s: the function's role may not read its stream (%s); retrying in %.1fs",
                        mapping_uuid,
                        error,
                        backoff,
                    )
                else:
                    logger.exception(
                        "stream mapping %s: polling failed; retrying in %.1fs", mapping_uuid, backoff
                    )
                self._stop.wait(backoff)

    def _client(self, mapping: StreamMapping, service: str) -> Any:
        if self._role_clients is None:
            return {"dynamodbstreams": self._streams, "sqs": self._sqs, "sns": self._sns}[service]
        return self._role_clients.client(mapping.function_arn, service)

    # -- reading a shard -------------------------------------------------------------------------------

    def shards(self, mapping: StreamMapping) -> list[str]:
        """The stream's shards, described again at most every refresh interval (not at every poll)."""
        described_at, shard_ids = self._shards.get(mapping.stream_arn, (0.0, []))
        if time.monotonic() - described_at >= self._refresh_interval or not shard_ids:
            streams = self._client(mapping, "dynamodbstreams")
            description = streams.describe_stream(StreamArn=mapping.stream_arn)["StreamDescription"]
            shard_ids = [str(shard["ShardId"]) for shard in description.get("Shards", [])]
            self._shards[mapping.stream_arn] = (time.monotonic(), shard_ids)
        return shard_ids

    def _iterator(self, mapping: StreamMapping, shard_id: str, after: str) -> str:
        """An iterator just after sequence number `after` ("" : the shard's oldest record)."""
        streams = self._client(mapping, "dynamodbstreams")
        if not after:
            response = streams.get_shard_iterator(
                StreamArn=mapping.stream_arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
            )
        else:
            response = streams.get_shard_iterator(
                StreamArn=mapping.stream_arn,
                ShardId=shard_id,
                ShardIteratorType="AFTER_SEQUENCE_NUMBER",
                SequenceNumber=after,
            )
        return str(response["ShardIterator"])

    def _start(self, mapping: StreamMapping, shard_id: str) -> str:
        """Where a mapping seen for the first time starts in a shard: before its oldest record
        (TRIM_HORIZON), or after its newest one now (LATEST, read to the end: moto's LATEST iterator
        itself never returns records)."""
        if mapping.starting_position != "LATEST":
            return ""
        last = ""
        while not self._stop.is_set():
            records, _ = self._get_records(mapping, self._iterator(mapping, shard_id, last))
            if not records:
                break
            last = records[-1]["dynamodb"]["SequenceNumber"]
        return last

    def _read(self, mapping: StreamMapping, shard_id: str, after: str) -> list[dict[str, Any]]:
        records, _ = self._get_records(mapping, self._iterator(mapping, shard_id, after))
        return records

    def _get_records(self, mapping: StreamMapping, iterator: str) -> tuple[list[dict[str, Any]], str | None]:
        streams = self._client(mapping, "dynamodbstreams")
        response = streams.get_records(ShardIterator=iterator, Limit=GET_RECORDS_LIMIT)
        _forget_iterators(mapping, (iterator, response.get("NextShardIterator")))
        records = [to_lambda_record(r, stream_arn=mapping.stream_arn) for r in response.get("Records", [])]
        return records, response.get("NextShardIterator")

    def poll_once(self, mapping: StreamMapping) -> list[BatchOutcome]:
        """Deliver at most one batch per shard of `mapping`; empty when there was nothing to deliver."""
        outcomes: list[BatchOutcome] = []
        for shard_id in self.shards(mapping):
            outcome = self._poll_shard(mapping, shard_id)
            if outcome is not None:
                outcomes.append(outcome)
        return outcomes

    def _poll_shard(self, mapping: StreamMapping, shard_id: str) -> BatchOutcome | None:
        position = self._positions.get(mapping, shard_id)
        if position is None:
            position = self._start(mapping, shard_id)
            self._positions.put(mapping, shard_id, position)
        window_ends = time.monotonic() + mapping.batching_window_seconds
        batch: list[dict[str, Any]] = []
        while True:
            records = self._read(mapping, shard_id, position)
            for record in records:
                # A record no filter matches is done with at once, as on AWS: nothing is invoked for it.
                if matches_filters(mapping.filters, record):
                    batch.append(record)
                position = record["dynamodb"]["SequenceNumber"]
                if len(batch) == mapping.batch_size:
                    break
            if len(batch) >= mapping.batch_size or not batch or self._stop.is_set():
                break
            if time.monotonic() >= window_ends:
                break
            if not records:
                self._stop.wait(min(self._poll_interval, max(0.0, window_ends - time.monotonic())))
        if batch:
            outcome = self._deliver(mapping, shard_id, batch)
            if outcome is None:
                return None  # stopped mid-batch: the position stays before it
        else:
            outcome = None
        # Only now is the position past the batch: it was delivered, or described in the destination.
        self._positions.put(mapping, shard_id, position)
        return outcome

    # -- one batch, with Lambda's stream error handling ------------------------------------------------

    def _deliver(
        self, mapping: StreamMapping, shard_id: str, batch: list[dict[str, Any]]
    ) -> BatchOutcome | None:
        """Invoke until every record of `batch` succeeded or was discarded to the OnFailure destination:
        a partial batch response retries from its lowest failed record; a function error bisects (without
        using a retry) while BisectBatchOnFunctionError allows, else retries; past MaximumRetryAttempts or
        MaximumRecordAgeInSeconds the batch is discarded."""
        delivered: list[str] = []
        discarded: list[str] = []
        # (records, retries used, invocations so far)
        pending: deque[tuple[list[dict[str, Any]], int, int]] = deque([(batch, 0, 0)])
        while pending:
            records, retries, invokes = pending.popleft()
            if self._too_old(mapping, records):
                self._discard(
                    mapping,
                    shard_id,
                    records,
                    condition="RecordAgeExceeded",
                    invokes=invokes,
                    function_error=None,
                )
                discarded += _sequences(records)
                continue
            self._report_age(mapping, records)
            try:
                result = self._invoke(mapping.function_arn, {"Records": records})
            except Exception as error:  # noqa: BLE001 - any failure of the call itself is retried
                # The function was not invoked (throttled, unreachable): retried without using a retry.
                logger.warning("stream mapping %s: invoke failed (%s); retrying", mapping.uuid, error)
                if self._stop.wait(self._backoff(retries)):
                    return None
                pending.appendleft((records, retries, invokes))
                continue
            invokes += 1
            sequences = _sequences(records)
            failed_at: int | None
            if result.function_error:
                failed_at = None
            elif mapping.report_batch_item_failures:
                failed_at = first_failed(result.payload, sequences)
            else:
                failed_at = len(records)
            if failed_at == len(records):
                delivered += sequences
                continue
            if failed_at is not None and failed_at > 0:
                delivered += sequences[:failed_at]
            remaining = records if failed_at is None else records[failed_at:]
            if result.function_error and mapping.bisect_on_error and len(remaining) > 1:
                half = len(remaining) // 2
                logger.info(
                    "stream mapping %s: function error, bisecting %d records", mapping.uuid, len(remaining)
                )
                pending.appendleft((remaining[half:], retries, invokes))
                pending.appendleft((remaining[:half], retries, invokes))
                continue
            if mapping.max_retry_attempts != INFINITE and retries >= mapping.max_retry_attempts:
                self._discard(
                    mapping,
                    shard_id,
                    remaining,
                    condition="RetryAttemptsExhausted",
                    invokes=invokes,
                    function_error=result.function_error,
                )
                discarded += _sequences(remaining)
                continue
            logger.info(
                "stream mapping %s: %d record(s) failed (%s); retry %d",
                mapping.uuid,
                len(remaining),
                "function error" if result.function_error else "partial batch response",
                retries + 1,
            )
            if self._stop.wait(self._backoff(retries)):
                return None
            pending.appendleft((remaining, retries + 1, invokes))
        logger.info(
            "stream mapping %s: batch of %d from %s -> %s: %d delivered, %d discarded",
            mapping.uuid,
            len(batch),
            shard_id,
            mapping.function_arn.rsplit(":", 1)[1],
            len(delivered),
            len(discarded),
        )
        return BatchOutcome(mapping.uuid, tuple(delivered), tuple(discarded))

    def _report_age(self, mapping: StreamMapping, records: Sequence[Mapping[str, Any]]) -> None:
        if self._iterator_age is not None:
            last = float(records[-1]["dynamodb"].get("ApproximateCreationDateTime") or self._clock())
            self._iterator_age(mapping.function_arn.split(":")[6], (self._clock() - last) * 1000)

    def _backoff(self, retries: int) -> float:
        return float(min(self._retry_cap, self._retry_base * 2**retries))

    def _too_old(self, mapping: StreamMapping, records: Sequence[Mapping[str, Any]]) -> bool:
        if mapping.max_record_age_seconds == INFINITE:
            return False
        oldest = min(float(r["dynamodb"].get("ApproximateCreationDateTime") or 0) for r in records)
        return self._clock() - oldest > mapping.max_record_age_seconds

    def _discard(
        self,
        mapping: StreamMapping,
        shard_id: str,
        records: list[dict[str, Any]],
        *,
        condition: str,
        invokes: int,
        function_error: str | None,
    ) -> None:
        record = invocation_record(
            mapping,
            shard_id,
            records,
            condition=condition,
            invoke_count=invokes,
            function_error=function_error,
            now=self._clock(),
        )
        first, last = (
            record["DDBStreamBatchInfo"]["startSequenceNumber"],
            record["DDBStreamBatchInfo"]["endSequenceNumber"],
        )
        if mapping.on_failure_arn is None:
            logger.warning(
                "stream mapping %s: records %s..%s discarded (%s); no OnFailure destination",
                mapping.uuid,
                first,
                last,
                condition,
            )
            return
        logger.warning(
            "stream mapping %s: records %s..%s discarded (%s); described in %s",
            mapping.uuid,
            first,
            last,
            condition,
            mapping.on_failure_arn,
        )
        body = json.dumps(record)
        service = mapping.on_failure_arn.split(":")[2]
        if service == "sqs":
            name, account = mapping.on_failure_arn.split(":")[5], mapping.on_failure_arn.split(":")[4]
            sqs = self._client(mapping, "sqs")
            url = sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
            sqs.send_message(QueueUrl=url, MessageBody=body)
        elif service == "sns":
            self._client(mapping, "sns").publish(TopicArn=mapping.on_failure_arn, Message=body)
        else:
            logger.warning(
                "stream mapping %s: destination %s not supported here", mapping.uuid, mapping.on_failure_arn
            )

    def _invoke_lambda(self, function_arn: str, event: dict[str, Any]) -> InvokeResult:
        response = self._lambda_client.invoke(
            FunctionName=function_arn, InvocationType="RequestResponse", Payload=json.dumps(event).encode()
        )
        raw = response["Payload"].read() if response.get("Payload") is not None else b""
        payload: Any
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = raw.decode("utf-8", "replace")
        return InvokeResult(payload=payload, function_error=response.get("FunctionError"))


def _sequences(records: Sequence[Mapping[str, Any]]) -> list[str]:
    return [str(r["dynamodb"]["SequenceNumber"]) for r in records]


def _forget_iterators(mapping: StreamMapping, iterators: Sequence[str | None]) -> None:
    """moto keeps every shard iterator it hands out, forever (AWS expires them after 15 minutes); a poller
    reading 4 times a second would grow that without bound. The poller asks for a fresh iterator at each
    read, so it drops the ones it was given (a peek into moto's in-process backend; a no-op elsewhere)."""
    account, region = mapping.stream_arn.split(":")[4], mapping.stream_arn.split(":")[3]
    try:
        known = dynamodbstreams_backends[account][region].shard_iterators
    except Exception:  # noqa: BLE001 - not in moto's process: nothing to free
        return
    for iterator in iterators:
        if iterator:
            known.pop(iterator, None)
