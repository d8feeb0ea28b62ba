"""Jobs as the CLI reaches them: building and sending requests, reading records and executions, listing
by status, cancelling, waiting. Plain functions over a `Pipeline`, shared by the commands and the demo."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import ClientError

from pipeline_cli.aws import Pipeline, error_code
from pipeline_cli.errors import CliError
from pipeline_cli.output import iso
from pipeline_contract import CANCELLED, STATUS_INDEX, STATUSES, TERMINAL, execution_name, sources, utc_now

MAX_EXECUTION_PROBES = 8

_deserializer = TypeDeserializer()


def build_request(
    *,
    job_id: str,
    input_uri: str,
    transform: str | None = None,
    transform_options: Mapping[str, Any] | None = None,
    chunk_bytes: int | None = None,
    shards: int | None = None,
    compression: str | None = None,
    output_compression: str | None = None,
) -> dict[str, Any]:
    """The job message of the contract, with only the fields the user set (the ingest owns defaults)."""
    request: dict[str, Any] = {"job_id": job_id, "input": input_uri}
    if transform is not None:
        if not transform:
            raise CliError("--transform must not be empty: name a registered transform")
        request["transform"] = transform
    if transform_options:
        request["transform_options"] = dict(transform_options)
    if chunk_bytes is not None:
        request["chunk_bytes"] = chunk_bytes
    if shards is not None:
        request["shards"] = shards
    if compression is not None:
        request["compression"] = compression
    if output_compression is not None:
        request["output_compression"] = output_compression
    return request


def upload_input(pipeline: Pipeline, path: Path, job_id: str) -> str:
    bucket = pipeline.outputs.data_bucket_name
    key = f"in/{job_id}/{path.name}"
    # upload_file streams the file (multipart above 8 MiB): memory stays flat for any input size.
    pipeline.s3.upload_file(str(path), bucket, key)
    return f"s3://{bucket}/{key}"


def send_request(pipeline: Pipeline, request: Mapping[str, Any]) -> str:
    body = json.dumps(request, separators=(",", ":"))
    response = pipeline.sqs.send_message(QueueUrl=pipeline.outputs.ingest_queue_url, MessageBody=body)
    return str(response["MessageId"])


def record_from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    return {key: _deserializer.deserialize(value) for key, value in item.items()}


def get_record(pipeline: Pipeline, job_id: str) -> dict[str, Any] | None:
    response = pipeline.dynamodb.get_item(
        TableName=pipeline.outputs.job_table_name, Key={"job_id": {"S": job_id}}, ConsistentRead=True
    )
    item = response.get("Item")
    return record_from_item(item) if item else None


def require_record(pipeline: Pipeline, job_id: str) -> dict[str, Any]:
    record = get_record(pipeline, job_id)
    if record is None:
        raise CliError(f"unknown job {job_id!r} in environment {pipeline.env}")
    return record


def execution_arn(state_machine_arn: str, name: str) -> str:
    # arn:aws:states:REGION:ACCOUNT:stateMachine:SM -> arn:aws:states:REGION:ACCOUNT:execution:SM:NAME
    prefix, _, machine = state_machine_arn.rpartition(":stateMachine:")
    return f"{prefix}:execution:{machine}:{name}"


def latest_execution(pipeline: Pipeline, record: Mapping[str, Any]) -> dict[str, Any] | None:
    """The job's newest execution, or None when there is none (yet) or it cannot be read.

    ListExecutions cannot filter by name, so the ARN is built from the naming contract
    `{job_id}-a{attempt}-e{n}` with n = executions - 1 (before the first MarkRunning the ingest may already
    have started e0). `executions` counts every attempt's executions (a redrive keeps it), so after a
    redrive that name may not exist yet: walk down to e0, a few DescribeExecution calls at most."""
    attempt = int(record.get("attempt") or 1)
    newest = max(int(record.get("executions") or 0) - 1, 0)
    for index in range(newest, max(newest - MAX_EXECUTION_PROBES, -1), -1):
        found = describe_execution(pipeline, execution_name(str(record["job_id"]), attempt, index))
        if found is not None:
            return found
    return None


def describe_execution(pipeline: Pipeline, name: str) -> dict[str, Any] | None:
    arn = execution_arn(pipeline.outputs.state_machine_arn, name)
    try:
        response = pipeline.stepfunctions.describe_execution(executionArn=arn)
    except ClientError as error:
        if error_code(error) in {"ExecutionDoesNotExist", "InvalidArn", "AccessDeniedException"}:
            return None
        raise
    return {
        "name": name,
        "arn": arn,
        "status": response.get("status"),
        "start_date": iso(response.get("startDate")),
        "stop_date": iso(response.get("stopDate")),
    }


def list_jobs(pipeline: Pipeline, *, status: str | None, limit: int) -> list[dict[str, Any]]:
    """Newest first. Without a status, one Query per status on the index, merged: never a Scan (a Scan
    reads, and bills, the whole table to show 20 rows)."""
    statuses = (status,) if status else STATUSES
    latest: dict[str, dict[str, Any]] = {}
    for each in statuses:
        for record in query_status(pipeline, each, limit=limit):
            # A job whose status changed between two of the queries is in both answers (a PENDING job
            # started after the PENDING query is RUNNING in the next one): it is listed once, as it was
            # last updated.
            seen = latest.get(record["job_id"])
            if seen is None or _updated(record) >= _updated(seen):
                latest[record["job_id"]] = record
    records = sorted(
        latest.values(), key=lambda record: (_updated(record), str(record["job_id"])), reverse=True
    )
    return records[:limit]


def _updated(record: dict[str, Any]) -> str:
    return str(record.get("updated_at", ""))


def query_status(pipeline: Pipeline, status: str, *, limit: int) -> list[dict[str, Any]]:
    request: dict[str, Any] = {
        "TableName": pipeline.outputs.job_table_name,
        "IndexName": STATUS_INDEX,
        "KeyConditionExpression": "#s = :s",
        "ExpressionAttributeNames": {"#s": "status"},
        "ExpressionAttributeValues": {":s": {"S": status}},
        "ScanIndexForward": False,
    }
    records: list[dict[str, Any]] = []
    while len(records) < limit:
        response = pipeline.dynamodb.query(**request, Limit=limit - len(records))
        records.extend(record_from_item(item) for item in response.get("Items", []))
        if "LastEvaluatedKey" not in response:
            break
        request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
    return records


def cancel_job(pipeline: Pipeline, job_id: str, *, now: str | None = None) -> tuple[str, dict[str, Any]]:
    """Returns (status before, record after). Only the record changes: the worker notices at its next
    checkpoint and the next MarkRunning's condition fails, so nothing calls StopExecution."""
    updated_at = now or utc_now()
    # The statuses the contract lets a job leave for CANCELLED.
    allowed = {f":from_{status.lower()}": {"S": status} for status in sources(CANCELLED)}
    try:
        response = pipeline.dynamodb.update_item(
            TableName=pipeline.outputs.job_table_name,
            Key={"job_id": {"S": job_id}},
            UpdateExpression="SET #s = :to, updated_at = :now",
            ConditionExpression=f"#s IN ({', '.join(allowed)})",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":to": {"S": CANCELLED}, ":now": {"S": updated_at}, **allowed},
            # The old image names the status we replaced; the new one is the old plus our two fields.
            ReturnValues="ALL_OLD",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    except ClientError as error:
        if error_code(error) != "ConditionalCheckFailedException":
            raise
        old = error.response.get("Item")
        if not old:
            raise CliError(f"unknown job {job_id!r} in environment {pipeline.env}") from error
        current = record_from_item(old).get("status", "?")
        raise CliError(
            f"job {job_id} is {current}, not {' or '.join(sources(CANCELLED))}: only an unfinished job can be "
            "cancelled"
        ) from error
    before = record_from_item(response["Attributes"])
    return str(before.get("status")), {**before, "status": "CANCELLED", "updated_at": updated_at}


@dataclass(frozen=True)
class WaitResult:
    record: dict[str, Any] | None
    timed_out: bool


def wait_for_job(
    fetch: Callable[[], dict[str, Any] | None],
    *,
    timeout: float,
    interval: float,
    on_poll: Callable[[dict[str, Any] | None], None],
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> WaitResult:
    """Poll until the record is terminal or `timeout` passes. A missing record is waited for too: the
    request may still be queued, or waiting for an ingest retry."""
    deadline = clock() + timeout
    while True:
        record = fetch()
        on_poll(record)
        if record is not None and record.get("status") in TERMINAL:
            return WaitResult(record, timed_out=False)
        remaining = deadline - clock()
        if remaining <= 0:
            return WaitResult(record, timed_out=True)
        sleep(min(interval, remaining))
