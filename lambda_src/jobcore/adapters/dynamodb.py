"""DynamoDB as the JobStore. Every write is conditional; a failed condition is an answer (False), not an
error, because duplicates and races are normal in an at-least-once pipeline."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from jobcore.errors import error_code
from jobcore.model import FAILED, PENDING, REJECTED, RUNNING, Checkpoint, FaultInjection, JobRecord

CONDITION_FAILED = "ConditionalCheckFailedException"
_INT_FIELDS = (
    "attempt",
    "cursor",
    "records_in",
    "records_out",
    "records_rejected",
    "bytes_in",
    "segments",
    "executions",
    "chunk_ms",
    "chunk_bytes",
    "expires_at",
)


def _serializer() -> Any:
    from boto3.dynamodb.types import TypeSerializer  # noqa: PLC0415 - lazy, with boto3

    return TypeSerializer()


def _deserializer() -> Any:
    from boto3.dynamodb.types import TypeDeserializer  # noqa: PLC0415

    return TypeDeserializer()


def to_item(record: JobRecord) -> dict[str, Any]:
    plain: dict[str, Any] = {
        "job_id": record.job_id,
        "status": record.status,
        "input": record.input,
        "transform": record.transform,
        "chunk_bytes": record.chunk_bytes,
        "output_prefix": record.output_prefix,
        "attempt": record.attempt,
        "cursor": record.cursor,
        "records_in": record.records_in,
        "records_out": record.records_out,
        "records_rejected": record.records_rejected,
        "bytes_in": record.bytes_in,
        "segments": record.segments,
        "executions": record.executions,
        "chunk_ms": record.chunk_ms,
        "request": record.request,
        "source_message_id": record.source_message_id,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "expires_at": record.expires_at,
    }
    if record.input_bytes is not None:
        plain["input_bytes"] = record.input_bytes
    if record.fault_injection is not None:
        plain["fault_injection"] = {
            "transient_error_rate": Decimal(str(record.fault_injection.transient_error_rate)),
            "seed": record.fault_injection.seed,
        }
    if record.error is not None:
        plain["error"] = dict(record.error)
    serializer = _serializer()
    return {key: serializer.serialize(value) for key, value in plain.items()}


def from_item(item: dict[str, Any]) -> JobRecord:
    deserializer = _deserializer()
    plain = {key: deserializer.deserialize(value) for key, value in item.items()}
    numbers = {name: int(plain.get(name, 0)) for name in _INT_FIELDS}
    fault = plain.get("fault_injection")
    return JobRecord(
        job_id=str(plain["job_id"]),
        status=str(plain["status"]),
        input=str(plain.get("input", "")),
        transform=str(plain.get("transform", "")),
        output_prefix=str(plain.get("output_prefix", "")),
        input_bytes=int(plain["input_bytes"]) if "input_bytes" in plain else None,
        fault_injection=FaultInjection(
            transient_error_rate=float(fault["transient_error_rate"]), seed=int(fault["seed"])
        )
        if isinstance(fault, dict)
        else None,
        request=str(plain.get("request", "")),
        source_message_id=str(plain.get("source_message_id", "")),
        error={str(k): str(v) for k, v in plain["error"].items()}
        if isinstance(plain.get("error"), dict)
        else None,
        created_at=str(plain.get("created_at", "")),
        updated_at=str(plain.get("updated_at", "")),
        **numbers,
    )


class DynamoJobStore:
    def __init__(self, client: Any, table_name: str) -> None:
        self._ddb = client
        self._table = table_name

    def _update(self, **kwargs: Any) -> bool:
        try:
            self._ddb.update_item(TableName=self._table, **kwargs)
        except Exception as error:
            if error_code(error) == CONDITION_FAILED:
                return False
            raise
        return True

    def _put_new(self, record: JobRecord) -> bool:
        try:
            self._ddb.put_item(
                TableName=self._table,
                Item=to_item(record),
                ConditionExpression="attribute_not_exists(job_id)",
            )
        except Exception as error:
            if error_code(error) == CONDITION_FAILED:
                return False
            raise
        return True

    def get(self, job_id: str) -> JobRecord | None:
        response = self._ddb.get_item(
            TableName=self._table, Key={"job_id": {"S": job_id}}, ConsistentRead=True
        )
        item = response.get("Item")
        return from_item(item) if item else None

    def create(self, record: JobRecord) -> bool:
        return self._put_new(record)

    def reject(self, record: JobRecord) -> bool:
        assert record.status == REJECTED
        return self._put_new(record)

    def checkpoint(self, checkpoint: Checkpoint) -> bool:
        c = checkpoint
        return self._update(
            Key={"job_id": {"S": c.job_id}},
            # Every attribute by name: DynamoDB reserves words such as CURSOR and SEGMENTS.
            UpdateExpression=(
                "SET #cursor = :new, #input_bytes = :size, #chunk_ms = :chunk_ms, #updated_at = :now "
                "ADD #records_in :in, #records_out :out, #records_rejected :rejected, #bytes_in :bytes, "
                "#segments :seg"
            ),
            ConditionExpression="#cursor = :old AND #status = :running AND #attempt = :attempt",
            ExpressionAttributeNames={
                f"#{name}": name
                for name in (
                    "cursor",
                    "status",
                    "attempt",
                    "input_bytes",
                    "chunk_ms",
                    "updated_at",
                    "records_in",
                    "records_out",
                    "records_rejected",
                    "bytes_in",
                    "segments",
                )
            },
            ExpressionAttributeValues={
                ":new": {"N": str(c.new_cursor)},
                ":old": {"N": str(c.old_cursor)},
                ":size": {"N": str(c.input_bytes)},
                ":chunk_ms": {"N": str(c.chunk_ms)},
                ":now": {"S": c.updated_at},
                ":in": {"N": str(c.records_in)},
                ":out": {"N": str(c.records_out)},
                ":rejected": {"N": str(c.records_rejected)},
                ":bytes": {"N": str(c.bytes_in)},
                ":seg": {"N": str(c.segments)},
                ":running": {"S": RUNNING},
                ":attempt": {"N": str(c.attempt)},
            },
        )

    def resume(self, job_id: str, *, failed_attempt: int, updated_at: str) -> bool:
        return self._update(
            Key={"job_id": {"S": job_id}},
            UpdateExpression="SET #status = :pending, #attempt = :next, updated_at = :now REMOVE #error",
            ConditionExpression="#status = :failed AND #attempt = :attempt",
            ExpressionAttributeNames={"#status": "status", "#attempt": "attempt", "#error": "error"},
            ExpressionAttributeValues={
                ":pending": {"S": PENDING},
                ":failed": {"S": FAILED},
                ":attempt": {"N": str(failed_attempt)},
                ":next": {"N": str(failed_attempt + 1)},
                ":now": {"S": updated_at},
            },
        )

    def fail(self, job_id: str, *, error: dict[str, str], updated_at: str) -> bool:
        return self._update(
            Key={"job_id": {"S": job_id}},
            UpdateExpression="SET #status = :failed, #error = :error, updated_at = :now",
            ConditionExpression="#status IN (:pending, :running)",
            ExpressionAttributeNames={"#status": "status", "#error": "error"},
            ExpressionAttributeValues={
                ":failed": {"S": FAILED},
                ":pending": {"S": PENDING},
                ":running": {"S": RUNNING},
                ":error": {"M": {k: {"S": v} for k, v in error.items()}},
                ":now": {"S": updated_at},
            },
        )
