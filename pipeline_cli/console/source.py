"""What the console reads, through the CLI's own `Pipeline` and helpers (records, deadletters, the redrive):
the same APIs with the same credentials as `pipeline status`, `jobs` and `dlq`. Every AWS failure becomes a
`CliError` with the CLI's message, which the page shows; the connection is made again on the next request
after one (a local cloud restarted on another port, expired credentials refreshed).
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from boto3.exceptions import Boto3Error
from botocore import exceptions as botocore_errors

from pipeline_cli.aws import (
    LOCAL_ENV,
    Pipeline,
    connect_aws,
    connect_local,
    error_code,
    resolve_env_name,
    translate_error,
)
from pipeline_cli.console import metrics
from pipeline_cli.console.views import Execution, Preview
from pipeline_cli.deadletters import (
    DlqMessage,
    RedriveOutcome,
    approximate_count,
    peek_messages,
    redrive,
)
from pipeline_cli.errors import CliError
from pipeline_cli.output_parts import split_s3_prefix
from pipeline_cli.records import execution_arn, get_record, list_jobs
from pipeline_contract import execution_name

# A job's timeline: at most this many executions described per page (the newest).
MAX_EXECUTIONS = 200
MAX_PROBED_INDEX = 1 << 20
FINISHED_CACHE = 5_000
PREVIEW_LINES = 10
PREVIEW_BYTES = 16 * 1024
MAX_DLQ_RECORDS = 50  # the job statuses looked up beside the DLQ's messages


@dataclass(frozen=True, kw_only=True)
class DlqView:
    approximate: int
    messages: list[DlqMessage]
    statuses: dict[str, str | None]


class Source:
    """One environment, read for the console. Thread-safe: the server handles requests in threads."""

    def __init__(self, *, env: str | None, region: str | None = None) -> None:
        self.env = resolve_env_name(env)
        self.region = region
        self._pipeline: Pipeline | None = None
        self._lock = threading.Lock()
        # Finished executions never change: described once. Name -> execution.
        self._finished: OrderedDict[str, Execution] = OrderedDict()

    @property
    def is_local(self) -> bool:
        return self.env == LOCAL_ENV

    def connect(self) -> Pipeline:
        with self.using() as pipeline:
            return pipeline

    @contextlib.contextmanager
    def using(self) -> Iterator[Pipeline]:
        """The environment's `Pipeline` (connected once, again after a failure); AWS errors raised in the
        block become the CLI's `CliError`."""
        try:
            with self._lock:
                if self._pipeline is None:
                    self._pipeline = connect_local() if self.is_local else connect_aws(self.env, self.region)
                pipeline = self._pipeline
            yield pipeline
        except (botocore_errors.BotoCoreError, botocore_errors.ClientError) as error:
            self._forget()
            raise translate_error(error, env=self.env, region=self.region) from error
        except Boto3Error as error:
            self._forget()
            raise CliError(f"request failed in environment {self.env}: {error}") from error
        except CliError:
            self._forget()
            raise

    def _forget(self) -> None:
        with self._lock:
            self._pipeline = None

    # -- jobs ---------------------------------------------------------------------------------------

    def jobs(self, *, status: str | None, limit: int) -> list[dict[str, Any]]:
        with self.using() as pipeline:
            return list_jobs(pipeline, status=status, limit=limit)

    def record(self, job_id: str) -> dict[str, Any] | None:
        with self.using() as pipeline:
            return get_record(pipeline, job_id)

    def executions(self, record: Mapping[str, Any]) -> tuple[list[Execution], bool]:
        """The job's executions, every attempt's, found by the naming contract (`{job_id}-a{attempt}-e{n}`:
        ListExecutions cannot filter by name, and a busy state machine lists thousands); (executions,
        complete). At most MAX_EXECUTIONS, the newest: each attempt's count is found by probing (doubling,
        then halving: a few calls for hundreds of executions), newest attempt first."""
        job_id = str(record["job_id"])
        found: list[Execution] = []
        budget = MAX_EXECUTIONS
        complete = True
        with self.using() as pipeline:
            for attempt in range(int(record.get("attempt") or 1), 0, -1):
                if budget <= 0:
                    complete = False
                    break
                count = self._count(pipeline, job_id, attempt)
                first = max(0, count - budget)
                complete = complete and first == 0
                for index in range(first, count):
                    execution = self._execution(pipeline, execution_name(job_id, attempt, index))
                    if execution is not None:
                        found.append(execution)
                budget -= count - first
        return sorted(found, key=lambda e: (e.attempt, e.index)), complete

    def _count(self, pipeline: Pipeline, job_id: str, attempt: int) -> int:
        """How many executions the attempt has: e0 .. e(n-1) exist, en does not (continue-as-new starts
        them one after the other)."""

        def exists(index: int) -> bool:
            return self._execution(pipeline, execution_name(job_id, attempt, index)) is not None

        if not exists(0):
            return 0
        low, high = 0, 1  # exists(low); high: probing
        while exists(high):
            low, high = high, high * 2
            if high > MAX_PROBED_INDEX:
                return low + 1
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (middle, high) if exists(middle) else (low, middle)
        return high

    def _execution(self, pipeline: Pipeline, name: str) -> Execution | None:
        with self._lock:
            cached = self._finished.get(name)
        if cached is not None:
            return cached
        arn = execution_arn(pipeline.outputs.state_machine_arn, name)
        try:
            response = pipeline.stepfunctions.describe_execution(executionArn=arn)
        except botocore_errors.ClientError as error:
            if error_code(error) in {"ExecutionDoesNotExist", "InvalidArn"}:
                return None
            raise
        execution = Execution(
            name=name,
            status=str(response.get("status")),
            start=_utc(response.get("startDate")),
            stop=_utc(response.get("stopDate")),
            version_arn=response.get("stateMachineVersionArn"),
        )
        if execution.status != "RUNNING":
            with self._lock:
                self._finished[name] = execution
                while len(self._finished) > FINISHED_CACHE:
                    self._finished.popitem(last=False)
        return execution

    def preview(self, record: Mapping[str, Any], *, rejects: bool) -> Preview | None:
        """The first lines of the job's output (or rejects): its first part objects, read with a byte
        range each, never whole."""
        prefix_uri = record.get("output_prefix")
        if not prefix_uri:
            return None
        bucket, prefix = split_s3_prefix(str(prefix_uri))
        parts_prefix = f"{prefix}rejects/part-" if rejects else f"{prefix}part-"
        with self.using() as pipeline:
            listing = pipeline.s3.list_objects_v2(Bucket=bucket, Prefix=parts_prefix, MaxKeys=20)
            keys = sorted(obj["Key"] for obj in listing.get("Contents", []))
            lines: list[str] = []
            more_parts = bool(listing.get("IsTruncated"))
            truncated = more_parts
            for key in keys:
                if len(lines) >= PREVIEW_LINES:
                    truncated = True
                    break
                body = pipeline.s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{PREVIEW_BYTES - 1}")
                data = body["Body"].read()
                text = data.decode("utf-8", errors="replace")
                chunk = text.splitlines()
                if len(data) >= PREVIEW_BYTES and chunk:
                    chunk, truncated = chunk[:-1], True  # the last line may be cut by the range
                lines.extend(chunk[: PREVIEW_LINES - len(lines)])
                truncated = truncated or len(chunk) > PREVIEW_LINES
        return Preview(lines=lines, parts=len(keys), more_parts=more_parts, truncated=truncated)

    # -- the DLQ ----------------------------------------------------------------------------------------

    def dlq_count(self) -> int:
        with self.using() as pipeline:
            return approximate_count(pipeline.sqs, pipeline.outputs.dead_letter_queue_url)

    def dlq(self) -> DlqView:
        """Every DLQ message (received once and released at once: SQS has no peek) and, for the jobs they
        name, the job's status now."""
        with self.using() as pipeline:
            queue_url = pipeline.outputs.dead_letter_queue_url
            approximate = approximate_count(pipeline.sqs, queue_url)
            messages = peek_messages(pipeline.sqs, queue_url)
            statuses: dict[str, str | None] = {}
            for job_id in list(dict.fromkeys(m.job_id for m in messages if m.job_id))[:MAX_DLQ_RECORDS]:
                record = get_record(pipeline, job_id)
                statuses[job_id] = str(record.get("status")) if record else None
        return DlqView(approximate=approximate, messages=messages, statuses=statuses)

    def redrive(self, *, job_id: str | None, choice: str | None) -> tuple[RedriveOutcome, Pipeline]:
        """`pipeline dlq redrive [--job-id ID] [--restart | --upgrade]`: the same function."""
        with self.using() as pipeline:
            return redrive(pipeline, job_id=job_id, choice=choice), pipeline

    # -- alarms and metrics ------------------------------------------------------------------------------

    def alarms(self) -> list[dict[str, Any]]:
        with self.using() as pipeline:
            cloudwatch = pipeline.client("cloudwatch")
            found: list[dict[str, Any]] = []
            for page in cloudwatch.get_paginator("describe_alarms").paginate():
                found += page.get("MetricAlarms", []) + page.get("CompositeAlarms", [])
        return found

    def graphs(self, *, hours: float, now: datetime) -> tuple[list[metrics.GraphData], str | None]:
        """The deployed dashboard's graphs over the last `hours`; (graphs, a note when there is none)."""
        start, end = metrics.time_range(now, hours)
        with self.using() as pipeline:
            cloudwatch = pipeline.client("cloudwatch")
            name = metrics.dashboard_name(self.env)
            try:
                body = cloudwatch.get_dashboard(DashboardName=name)["DashboardBody"]
            except botocore_errors.ClientError as error:
                if error_code(error) in {"ResourceNotFound", "ResourceNotFoundException"}:
                    return [], f"there is no dashboard {name} in this environment: redeploy it"
                raise
            try:
                graphs = metrics.parse_dashboard(body)
            except metrics.DashboardError as error:
                return [], f"the dashboard {name} cannot be read: {error}"
            found = []
            for graph in graphs:
                request = metrics.queries(graph, local=pipeline.is_local)
                fetched = (
                    metrics.get_metric_data(cloudwatch, request, start=start, end=end) if request else {}
                )
                found.append(
                    metrics.graph_data(graph, fetched, local=pipeline.is_local, start=start, end=end)
                )
        return found, None


def _utc(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
