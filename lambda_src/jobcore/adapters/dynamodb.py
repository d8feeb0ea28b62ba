"""DynamoDB as the JobStore. Every write is conditional; a failed condition is an answer (False or None),
not an error, because duplicates and races are normal in an at-least-once pipeline."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from jobcore.adapters.aws_errors import translated
from jobcore.events import StreamChange
from jobcore.model import (
    Checkpoint,
    CodePin,
    CodeVersion,
    InputPin,
    JobRecord,
    LineageEntry,
    RejectSample,
    RestartPoint,
    ShardPosition,
)
from pipeline_contract import FAILED, PENDING, REJECTED, RUNNING, sources

CONDITION_FAILED = "ConditionalCheckFailedException"
# The checkpoint's attribute names used in every update (DynamoDB refuses a name the expression does not use).
_ALWAYS_NAMED = frozenset(
    {
        "cursor",
        "status",
        "attempt",
        "input_bytes",
        "chunk_ms",
        "updated_at",
        "records_in",
        "records_out",
        "records_rejected",
        "records_transformed",
        "records_filtered",
        "records_blank",
        "bytes_in",
        "segments",
        "long_line_from",
        "chunks",
        "parts_written",
        "worker_ms",
        "worker_memory_mb",
    }
)
# Named only when this checkpoint writes them (a compressed input's restart point and text size, a long
# line's head, the first rejects).
_SOMETIMES_NAMED = ("restart_point", "text_bytes", "long_line_head", "first_rejects")
_INT_FIELDS = (
    "attempt",
    "cursor",
    "records_in",
    "records_out",
    "records_rejected",
    "records_transformed",
    "records_filtered",
    "records_blank",
    "bytes_in",
    "segments",
    "executions",
    "chunk_ms",
    "chunk_bytes",
    "expires_at",
    "chunks",
    "parts_written",
    "worker_ms",
    "worker_memory_mb",
)
# Attributes set only when they have a value (DynamoDB has no "null" we want to read back as one).
_OPTIONAL_INT_FIELDS = ("input_bytes", "long_line_from", "text_bytes")
_OPTIONAL_STR_FIELDS = ("input_etag", "input_version")


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
        "transform_options": record.transform_options,
        "output_prefix": record.output_prefix,
        "request": record.request,
        "source_message_id": record.source_message_id,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    }
    plain.update({name: getattr(record, name) for name in _INT_FIELDS})
    for name in (*_OPTIONAL_INT_FIELDS, *_OPTIONAL_STR_FIELDS):
        if getattr(record, name) is not None:
            plain[name] = getattr(record, name)
    if record.max_reject_ratio is not None:
        plain["max_reject_ratio"] = Decimal(str(record.max_reject_ratio))
    if record.error is not None:
        plain["error"] = dict(record.error)
    if record.shards:
        plain["shards"] = shards_map(record.shards)
    if record.code is not None:
        plain.update(code_attributes(record.code, record.lineage))
    if record.compressed:
        plain["compression"] = record.compression
    if record.output_compression not in ("", "none"):
        plain["output_compression"] = record.output_compression
    if record.restart_point is not None:
        plain["restart_point"] = record.restart_point.as_map()
    if record.long_line_head is not None:
        plain["long_line_head"] = record.long_line_head
    if record.first_rejects:
        plain["first_rejects"] = samples_list(record.first_rejects)
    serializer = _serializer()
    return {key: serializer.serialize(value) for key, value in plain.items()}


def shards_map(shards: tuple[ShardPosition, ...]) -> dict[str, dict[str, int]]:
    """A sharded job's positions as the item holds them: `shards.<index>.{start, end, cursor,
    long_line_from}`, the last two only when set (a checkpoint moves one shard's by its path)."""
    return {
        str(shard.index): {
            "start": shard.start,
            "end": shard.end,
            **({"cursor": shard.cursor} if shard.cursor is not None else {}),
            **({"long_line_from": shard.long_line_from} if shard.long_line_from is not None else {}),
        }
        for shard in shards
    }


def samples_list(samples: tuple[RejectSample, ...]) -> list[dict[str, Any]]:
    return [{"offset": sample.offset, "error": sample.error} for sample in samples]


def _samples_of(value: Any) -> tuple[RejectSample, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(RejectSample(offset=int(entry["offset"]), error=str(entry["error"])) for entry in value)


def _version_map(version: CodeVersion) -> dict[str, str]:
    return {"worker": version.worker, "digest": version.digest}


def lineage_list(lineage: tuple[LineageEntry, ...]) -> list[dict[str, Any]]:
    return [
        {
            "attempt": entry.attempt,
            "code_version": _version_map(entry.code_version),
            "offsets": list(entry.offsets),
        }
        for entry in lineage
    ]


def code_attributes(code: CodePin, lineage: tuple[LineageEntry, ...]) -> dict[str, Any]:
    """The job's code as the item holds it: `code_version` (what people and events read), `code_pin` (the
    qualified ARNs its executions invoke) and `lineage`."""
    return {
        "code_version": _version_map(code.code_version),
        "code_pin": {"worker": code.worker, "failures": code.failures, "state_machine": code.state_machine},
        "lineage": lineage_list(lineage),
    }


def _code_of(plain: dict[str, Any]) -> CodePin | None:
    pin, version = plain.get("code_pin"), plain.get("code_version")
    if not isinstance(pin, dict) or not isinstance(version, dict):
        return None
    return CodePin(
        worker=str(pin["worker"]),
        failures=str(pin["failures"]),
        state_machine=str(pin["state_machine"]),
        digest=str(version["digest"]),
    )


def _lineage_of(value: Any) -> tuple[LineageEntry, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(
        LineageEntry(
            attempt=int(entry["attempt"]),
            code_version=CodeVersion(
                worker=str(entry["code_version"]["worker"]), digest=str(entry["code_version"]["digest"])
            ),
            offsets=tuple(int(offset) for offset in entry["offsets"]),
        )
        for entry in value
    )


def _shards_of(value: Any) -> tuple[ShardPosition, ...]:
    if not isinstance(value, dict):
        return ()
    return tuple(
        ShardPosition(
            index=int(key),
            start=int(entry["start"]),
            end=int(entry["end"]),
            cursor=int(entry["cursor"]) if "cursor" in entry else None,
            long_line_from=int(entry["long_line_from"]) if "long_line_from" in entry else None,
        )
        for key, entry in sorted(value.items(), key=lambda item: int(item[0]))
    )


def from_item(item: dict[str, Any]) -> JobRecord:
    deserializer = _deserializer()
    plain = {key: deserializer.deserialize(value) for key, value in item.items()}
    fields: dict[str, Any] = {name: int(plain.get(name, 0)) for name in _INT_FIELDS}
    fields.update({name: int(plain[name]) if name in plain else None for name in _OPTIONAL_INT_FIELDS})
    fields.update({name: str(plain[name]) if name in plain else None for name in _OPTIONAL_STR_FIELDS})
    return JobRecord(
        job_id=str(plain["job_id"]),
        status=str(plain["status"]),
        input=str(plain.get("input", "")),
        transform=str(plain.get("transform", "")),
        transform_options=str(plain.get("transform_options", "")),
        output_prefix=str(plain.get("output_prefix", "")),
        max_reject_ratio=float(plain["max_reject_ratio"]) if "max_reject_ratio" in plain else None,
        request=str(plain.get("request", "")),
        source_message_id=str(plain.get("source_message_id", "")),
        error={str(k): str(v) for k, v in plain["error"].items()}
        if isinstance(plain.get("error"), dict)
        else None,
        created_at=str(plain.get("created_at", "")),
        updated_at=str(plain.get("updated_at", "")),
        shards=_shards_of(plain.get("shards")),
        code=_code_of(plain),
        lineage=_lineage_of(plain.get("lineage")),
        compression=str(plain.get("compression") or "none"),
        output_compression=str(plain.get("output_compression") or "none"),
        restart_point=RestartPoint.of(plain.get("restart_point")),
        long_line_head=bytes(plain["long_line_head"]) if "long_line_head" in plain else None,
        first_rejects=_samples_of(plain.get("first_rejects")),
        **fields,
    )


def stream_change(record: dict[str, Any]) -> StreamChange:
    """One record of the table's stream, as Lambda delivers it (NEW_AND_OLD_IMAGES), deserialized."""
    change = record.get("dynamodb") or {}
    deserializer = _deserializer()

    def image(name: str) -> dict[str, Any] | None:
        item = change.get(name)
        return {key: deserializer.deserialize(value) for key, value in item.items()} if item else None

    return StreamChange(
        sequence_number=str(change.get("SequenceNumber", "")), old=image("OldImage"), new=image("NewImage")
    )


def _may_become(target: str) -> tuple[str, dict[str, Any]]:
    """`#status IN (...)` over the statuses the contract lets a job leave for `target`, and their values."""
    values = {f":from_{status.lower()}": {"S": status} for status in sources(target)}
    return f"#status IN ({', '.join(values)})", values


def _error_map(error: dict[str, str]) -> dict[str, Any]:
    return {"M": {key: {"S": value} for key, value in error.items()}}


def _pin_values(pin: InputPin) -> tuple[str, dict[str, Any]]:
    """SET clauses and values that record `pin` (VersionId removed where the bucket has none)."""
    values: dict[str, Any] = {":etag": {"S": pin.etag}, ":size": {"N": str(pin.size)}}
    clauses = "input_etag = :etag, input_bytes = :size"
    if pin.version_id:
        values[":version"] = {"S": pin.version_id}
        clauses += ", input_version = :version"
    return clauses, values


def _code_values(code: CodePin, lineage: tuple[LineageEntry, ...]) -> tuple[str, dict[str, Any]]:
    """SET clauses and values that record the job's code (code_attributes)."""
    serializer = _serializer()
    attributes = code_attributes(code, lineage)
    clauses = ", ".join(f"{name} = :{name}" for name in attributes)
    return clauses, {f":{name}": serializer.serialize(value) for name, value in attributes.items()}


class DynamoJobStore:
    def __init__(self, client: Any, table_name: str) -> None:
        self._ddb = client
        self._table = table_name

    def _update(self, job_id: str, *, returns: str = "NONE", **kwargs: Any) -> dict[str, Any] | None:
        """The item after the update (with `returns="ALL_NEW"`; else empty), or None when the condition
        failed."""
        try:
            with translated(answers={CONDITION_FAILED}):
                response = self._ddb.update_item(
                    TableName=self._table, Key={"job_id": {"S": job_id}}, ReturnValues=returns, **kwargs
                )
        except ClientError:  # only the failed condition gets here
            return None
        attributes: dict[str, Any] = response.get("Attributes", {})
        return attributes

    def _put_new(self, record: JobRecord) -> bool:
        try:
            with translated(answers={CONDITION_FAILED}):
                self._ddb.put_item(
                    TableName=self._table,
                    Item=to_item(record),
                    ConditionExpression="attribute_not_exists(job_id)",
                )
        except ClientError:  # only the failed condition gets here
            return False
        return True

    def get(self, job_id: str) -> JobRecord | None:
        with translated():
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
        values: dict[str, Any] = {
            ":new": {"N": str(c.new_cursor)},
            ":old": {"N": str(c.old_cursor)},
            ":size": {"N": str(c.input_bytes)},
            ":chunk_ms": {"N": str(c.chunk_ms)},
            ":now": {"S": c.updated_at},
            ":in": {"N": str(c.records_in)},
            ":out": {"N": str(c.records_out)},
            ":rejected": {"N": str(c.records_rejected)},
            ":transformed": {"N": str(c.records_transformed)},
            ":filtered": {"N": str(c.records_filtered)},
            ":blank": {"N": str(c.records_blank)},
            ":bytes": {"N": str(c.bytes_in)},
            ":seg": {"N": str(c.segments)},
            ":one": {"N": "1"},
            ":parts": {"N": str(c.parts_written)},
            ":worker_ms": {"N": str(c.worker_ms)},
            ":memory": {"N": str(c.worker_memory_mb)},
            ":running": {"S": RUNNING},
            ":attempt": {"N": str(c.attempt)},
        }
        # The job's own position, or one shard's inside the `shards` map (by its index, as a name).
        where = "#shards.#shard." if c.shard is not None else ""
        long_line = f"REMOVE {where}#long_line_from"
        if c.long_line_from is not None:
            long_line = ""
            values[":long_line_from"] = {"N": str(c.long_line_from)}
        if c.old_cursor is None:
            values.pop(":old")
            moved_from = f"attribute_not_exists({where}#cursor)"
        else:
            moved_from = f"{where}#cursor = :old"
        shard_names = {"#shards": "shards", "#shard": str(c.shard)} if c.shard is not None else {}
        # A compressed input's extras (a job of one shard): a newer restart point, the text's size once
        # found, the long line's first bytes (removed with long_line_from), the job's first rejects.
        extra = ""
        serializer = _serializer()
        if c.restart_point is not None:
            extra += ", #restart_point = :restart_point"
            values[":restart_point"] = serializer.serialize(c.restart_point.as_map())
        if c.text_bytes is not None:
            extra += ", #text_bytes = :text_bytes"
            values[":text_bytes"] = {"N": str(c.text_bytes)}
        if c.long_line_head is not None:
            extra += ", #long_line_head = :long_line_head"
            values[":long_line_head"] = {"B": c.long_line_head}
        elif c.long_line_from is None and c.shard is None:
            long_line += ", #long_line_head"
        if c.first_rejects:
            extra += ", #first_rejects = if_not_exists(#first_rejects, :first_rejects)"
            values[":first_rejects"] = serializer.serialize(samples_list(c.first_rejects))
        return (
            self._update(
                c.job_id,
                # Every attribute by name: DynamoDB reserves words such as CURSOR and SEGMENTS.
                UpdateExpression=(
                    f"SET {where}#cursor = :new, #input_bytes = :size, #chunk_ms = :chunk_ms, #updated_at = :now, "
                    "#worker_memory_mb = :memory"
                    + (f", {where}#long_line_from = :long_line_from" if c.long_line_from is not None else "")
                    + extra
                    + " ADD #records_in :in, #records_out :out, #records_rejected :rejected, "
                    "#records_transformed :transformed, #records_filtered :filtered, "
                    "#records_blank :blank, #bytes_in :bytes, #segments :seg, #chunks :one, "
                    "#parts_written :parts, #worker_ms :worker_ms " + long_line
                ),
                ConditionExpression=f"{moved_from} AND #status = :running AND #attempt = :attempt",
                ExpressionAttributeNames=shard_names
                | {f"#{name}": name for name in _ALWAYS_NAMED}
                | {
                    f"#{name}": name
                    for name in _SOMETIMES_NAMED
                    if f"#{name}" in "".join((extra, long_line, moved_from))
                },
                ExpressionAttributeValues=values,
            )
            is not None
        )

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
        pin_clause, values = _pin_values(pin) if pin is not None else ("", {})
        if shards:
            pin_clause += (", " if pin_clause else "") + "shards = :shards"
            values[":shards"] = _serializer().serialize(shards_map(shards))
        if code is not None:
            code_clause, code_values = _code_values(code, lineage)
            pin_clause += (", " if pin_clause else "") + code_clause
            values.update(code_values)
        allowed, sources_values = _may_become(PENDING)
        return (
            self._update(
                job_id,
                UpdateExpression="SET #status = :to, #attempt = :next, updated_at = :now"
                + (f", {pin_clause}" if pin_clause else "")
                + " REMOVE #error",
                ConditionExpression=f"{allowed} AND #attempt = :attempt",
                ExpressionAttributeNames={"#status": "status", "#attempt": "attempt", "#error": "error"},
                ExpressionAttributeValues={
                    **values,
                    **sources_values,
                    ":to": {"S": PENDING},
                    ":attempt": {"N": str(failed_attempt)},
                    ":next": {"N": str(failed_attempt + 1)},
                    ":now": {"S": updated_at},
                },
            )
            is not None
        )

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
        pin_clause, values = _pin_values(pin)
        code_clause, code_values = _code_values(code, lineage)
        pin_clause += f", {code_clause}"
        values.update(code_values)
        # A restart reads the input from its start again: no restart point, text size or rejects kept.
        removed = [
            "#error",
            "long_line_from",
            "restart_point",
            "text_bytes",
            "long_line_head",
            "first_rejects",
        ]
        removed += [] if pin.version_id else ["input_version"]
        if shards:
            pin_clause += ", shards = :shards"
            values[":shards"] = _serializer().serialize(shards_map(shards))
        else:
            removed.append("shards")
        allowed, sources_values = _may_become(PENDING)
        zero = {"N": "0"}
        return (
            self._update(
                job_id,
                UpdateExpression=(
                    "SET #status = :to, #attempt = :next, updated_at = :now, output_prefix = :out, "
                    "#cursor = :zero, records_in = :zero, records_out = :zero, records_rejected = :zero, "
                    "records_transformed = :zero, records_filtered = :zero, "
                    f"records_blank = :zero, bytes_in = :zero, #segments = :zero, {pin_clause} "
                    f"REMOVE {', '.join(removed)}"
                ),
                ConditionExpression=f"{allowed} AND #attempt = :attempt",
                ExpressionAttributeNames={
                    "#status": "status",
                    "#attempt": "attempt",
                    "#error": "error",
                    "#cursor": "cursor",
                    "#segments": "segments",
                },
                ExpressionAttributeValues={
                    **values,
                    **sources_values,
                    ":to": {"S": PENDING},
                    ":attempt": {"N": str(failed_attempt)},
                    ":next": {"N": str(failed_attempt + 1)},
                    ":now": {"S": updated_at},
                    ":out": {"S": output_prefix},
                    ":zero": zero,
                },
            )
            is not None
        )

    def fail(self, job_id: str, *, attempt: int, error: dict[str, str], updated_at: str) -> JobRecord | None:
        allowed, sources_values = _may_become(FAILED)
        item = self._update(
            job_id,
            returns="ALL_NEW",
            UpdateExpression="SET #status = :to, #error = :error, updated_at = :now",
            ConditionExpression=f"{allowed} AND #attempt = :attempt",
            ExpressionAttributeNames={"#status": "status", "#error": "error", "#attempt": "attempt"},
            ExpressionAttributeValues={
                ":to": {"S": FAILED},
                **sources_values,
                ":attempt": {"N": str(attempt)},
                ":error": _error_map(error),
                ":now": {"S": updated_at},
            },
        )
        return from_item(item) if item is not None else None

    def refuse(self, job_id: str, *, attempt: int, error: dict[str, str], updated_at: str) -> bool:
        return (
            self._update(
                job_id,
                UpdateExpression="SET #error = :error, updated_at = :now",
                ConditionExpression="#status = :failed AND #attempt = :attempt",
                ExpressionAttributeNames={"#status": "status", "#error": "error", "#attempt": "attempt"},
                ExpressionAttributeValues={
                    ":failed": {"S": FAILED},
                    ":attempt": {"N": str(attempt)},
                    ":error": _error_map(error),
                    ":now": {"S": updated_at},
                },
            )
            is not None
        )
