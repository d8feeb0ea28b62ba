"""The job contract: every name and rule that more than one part of the project must agree on.

Pure (no boto3, no CDK): the CDK app (`stacks/`), the Lambda code (`lambda_src/`), the CLI (`pipeline_cli/`,
which gets this package through pyproject) and the tests import it; nothing redefines what is here. It
travels in the Lambda asset because it lives in `lambda_src/`. docs/interfaces.md describes the same
contract for people.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass

# -- job statuses and who may move a job between them -------------------------------------------------------

PENDING = "PENDING"
RUNNING = "RUNNING"
SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"
REJECTED = "REJECTED"
CANCELLED = "CANCELLED"
STATUSES = (PENDING, RUNNING, SUCCEEDED, FAILED, REJECTED, CANCELLED)
ACTIVE = (PENDING, RUNNING)
UNSUCCESSFUL = (FAILED, REJECTED, CANCELLED)
TERMINAL = (SUCCEEDED, *UNSUCCESSFUL)

# The statuses a job record is created in (by the ingest): accepted, failed at once (its input is missing
# or forbidden), or rejected (the request breaks the contract).
CREATED_AS = frozenset({PENDING, FAILED, REJECTED})

# Every change of a job's status, and its one writer. A writer's condition is `status IN sources(target)`
# (plus the attempt where the writer knows it); tests check every conditional write against this table.
TRANSITIONS: Mapping[str, frozenset[str]] = {
    # MarkRunning (state machine) at the start of every execution; fail (failures function, ingest);
    # cancel (CLI).
    PENDING: frozenset({RUNNING, FAILED, CANCELLED}),
    # MarkRunning again in the next execution (continue-as-new); MarkSucceeded; fail; cancel.
    RUNNING: frozenset({RUNNING, SUCCEEDED, FAILED, CANCELLED}),
    # A redrive: resume from the checkpoint, or restart (ingest).
    FAILED: frozenset({PENDING}),
    SUCCEEDED: frozenset(),
    REJECTED: frozenset(),
    CANCELLED: frozenset(),
}


def sources(target: str) -> tuple[str, ...]:
    """The statuses from which a job may move to `target`, in STATUSES order."""
    return tuple(status for status in STATUSES if target in TRANSITIONS[status])


# -- job lifecycle events (EventBridge) ------------------------------------------------------------------------

# Every event the pipeline puts on its bus (config `events.bus_name`, the default bus unless it names
# another) has this source, and one of these detail types: the one for the status the job enters. A job
# entering PENDING emits none (it is announced when it starts, is rejected or fails at once), nor does a job
# whose status does not change (checkpoints; RUNNING -> RUNNING at a continue-as-new hand-over).
EVENT_SOURCE = "resilient-pipeline"
EVENT_DETAIL_TYPES: Mapping[str, str] = {
    RUNNING: "Job Started",
    SUCCEEDED: "Job Succeeded",
    FAILED: "Job Failed",
    REJECTED: "Job Rejected",
    CANCELLED: "Job Cancelled",
}
# The event's `detail`, in this order; `error` ({type, message}) comes after `code_version` on Job Failed
# and Job Rejected only.
EVENT_DETAIL_FIELDS = (
    "job_id",
    "status",
    "attempt",
    "environment",
    "records_in",
    "records_out",
    "records_rejected",
    "bytes_in",
    "output_prefix",
    "code_version",
    "created_at",
    "ended_at",
    "duration_s",
)
EVENT_ERROR_STATUSES = frozenset({FAILED, REJECTED})
DEFAULT_EVENT_BUS = "default"


def event_detail_type(old: str | None, new: str) -> str | None:
    """The event a job emits when its status goes from `old` (None: the record is created) to `new`: one
    per transition of TRANSITIONS (or creation in CREATED_AS) into a status that has one; None otherwise."""
    if old == new:
        return None
    allowed = CREATED_AS if old is None else TRANSITIONS.get(old, frozenset())
    return EVENT_DETAIL_TYPES.get(new) if new in allowed else None


def emitting_transitions() -> dict[str | None, tuple[str, ...]]:
    """Old status (None: created) -> the new statuses whose change emits an event, in STATUSES order: what
    the event source mapping's filter lets through, so no other change of the table invokes anything."""
    olds: tuple[str | None, ...] = (None, *STATUSES)
    found = {old: tuple(new for new in STATUSES if event_detail_type(old, new)) for old in olds}
    return {old: news for old, news in found.items() if news}


# -- the job request (the SQS message body) ----------------------------------------------------------------

JOB_ID_RULE = r"^[A-Za-z0-9_-]{1,64}$"
JOB_ID = re.compile(JOB_ID_RULE)
# S3's bucket naming rules (3-63 lower-case letters, digits, dots, hyphens); any non-empty key.
S3_URI = re.compile(r"^s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(\S.*)$")
MAX_BODY_BYTES = 256 * 1024
MIN_CHUNK_BYTES = 64 * 1024
MAX_CHUNK_BYTES = 64 * 1024 * 1024
REQUEST_FIELDS = (
    "job_id",
    "input",
    "transform",
    "transform_options",
    "chunk_bytes",
    "max_reject_ratio",
    "restart",
    "upgrade",
    "shards",
    "compression",
    "output_compression",
    "input_version",
    "input_etag",
)
# Byte ranges of one input processed in parallel (each environment sets its own maximum, at least this).
MIN_SHARDS = 1
DEFAULT_TRANSFORM = "normalize"

# -- executions ----------------------------------------------------------------------------------------------

# `{job_id}-a{attempt}-e{execution}`: one name per execution, so a duplicate start is refused by Step
# Functions itself. The state machine builds it with States.Format and this template.
EXECUTION_NAME_TEMPLATE = "{}-a{}-e{}"
_EXECUTION_NAME = re.compile(r"^(?P<job_id>.+)-a(?P<attempt>\d+)-e(?P<execution>\d+)$")


def execution_name(job_id: str, attempt: int, execution: int) -> str:
    return EXECUTION_NAME_TEMPLATE.format(job_id, attempt, execution)


@dataclass(frozen=True)
class ExecutionName:
    job_id: str
    attempt: int
    execution: int


def parse_execution_name(name: str) -> ExecutionName | None:
    """The parts of an execution name, read from the right (a job id may itself contain `-a1-e2`)."""
    match = _EXECUTION_NAME.match(name)
    if match is None:
        return None
    return ExecutionName(match.group("job_id"), int(match.group("attempt")), int(match.group("execution")))


# -- timestamps ------------------------------------------------------------------------------------------------


def timestamp(moment: dt.datetime) -> str:
    """ISO-8601 UTC with milliseconds and Z, as `$$.State.EnteredTime` writes it: the status index sorts on
    this string, so every writer must produce exactly this shape."""
    moment = moment.astimezone(dt.UTC) if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def utc_now() -> str:
    return timestamp(dt.datetime.now(dt.UTC))


# -- the job table and the outputs ------------------------------------------------------------------------------

STATUS_INDEX = "by-status"  # GSI (status, updated_at)
TTL_ATTRIBUTE = "expires_at"  # epoch seconds; DynamoDB deletes the record after it
OUTPUT_PREFIX = "out/"  # default output location in the data bucket (its lifecycle rule expires it)
REJECTS_DIR = "rejects/"
# A gzip input's access points (restart points of its decompressor), beside the job's outputs.
ACCESS_DIR = "_access/"


PART_SUFFIXES = {"none": ".jsonl", "gzip": ".jsonl.gz"}


def part_name(offset: int, compression: str = "none") -> str:
    """The part holding the lines whose newline falls in the range starting at `offset` (of the input's
    text: decompressed, for a compressed input): names sort in input order, and a retried chunk rewrites
    the same object. `compression` is the job's `output_compression` (gzip: `.jsonl.gz`)."""
    return f"part-{offset:015d}{PART_SUFFIXES.get(compression, '.jsonl')}"


def job_output_prefix(output_location: str, job_id: str, *, restart_attempt: int | None = None) -> str:
    """Where a job writes: `LOCATION/JOB_ID/`, or a fresh `LOCATION/JOB_ID.restart-N/` for a restart (a job
    id never holds a dot, so no prefix of one job is another's)."""
    suffix = f".restart-{restart_attempt}" if restart_attempt is not None else ""
    return f"{output_location}{job_id}{suffix}/"


# -- the DLQ message -----------------------------------------------------------------------------------------

DLQ_ERROR_TYPE = "error_type"
DLQ_ERROR_MESSAGE = "error_message"
DLQ_SOURCE_MESSAGE_ID = "source_message_id"
DLQ_JOB_ID = "job_id"
DLQ_ATTRIBUTES = (DLQ_ERROR_TYPE, DLQ_ERROR_MESSAGE, DLQ_SOURCE_MESSAGE_ID, DLQ_JOB_ID)

# -- error names the state machine matches (the Lambda errorType is the exception's class name) ---------------

TRANSIENT_ERROR = "TransientError"
JOB_CANCELLED_ERROR = "JobCancelledError"
# The function's environment died mid-invocation (timeout, out of memory, host failure, runtime crash).
CRASH_ERRORS = (
    "Sandbox.Timedout",
    "Runtime.ExitError",
    "Runtime.Unknown",
    "Runtime.OutOfMemory",
    "Lambda.Unknown",
)
# Lambda service-side failures (the invocation may not have run at all).
LAMBDA_SERVICE_ERRORS = (
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
)
# The Fail state after a recorded failure, and the one after even the fallback could not reach the DLQ
# (the watchdog resends on that one).
JOB_FAILED = "JobFailed"
DEAD_LETTER_NOT_SENT = "DeadLetterNotSent"
# What the watchdog calls an execution that ended outside the state machine's own Catch, by its status.
WATCHDOG_ERRORS = {
    "TIMED_OUT": "ExecutionTimedOut",
    "ABORTED": "ExecutionAborted",
    "FAILED": "ExecutionFailed",
}

# -- deployment names -------------------------------------------------------------------------------------------

# The environments the CDK app defines (stacks/config.py, one configuration each; an infra test checks the
# two agree): what `--env` may name.
ENVIRONMENTS = ("local", "dev", "staging", "prod")
STACK_PREFIX = "ResilientPipeline"
STACK_SUFFIXES = ("Stateful", "Pipeline")


def stack_name(env: str, suffix: str) -> str:
    return f"{STACK_PREFIX}-{env}-{suffix}"


# Stack outputs the CLI and the tests find resources through, by the stack (suffix) that exports them.
STACK_OUTPUTS: Mapping[str, str] = {
    "IngestQueueUrl": "Pipeline",
    "DeadLetterQueueUrl": "Pipeline",
    "StateMachineArn": "Pipeline",
    # What this deploy pins new jobs to: published versions (qualified ARNs) and the code's digest.
    "WorkerVersionArn": "Pipeline",
    "FailuresVersionArn": "Pipeline",
    "StateMachineVersionArn": "Pipeline",
    "CodeDigest": "Pipeline",
    "AlarmTopicArn": "Pipeline",  # the critical alarms' topic (it pages)
    "WarningAlarmTopicArn": "Pipeline",  # the warning alarms' topic
    "Transforms": "Pipeline",  # comma-separated: the transforms the deployed functions register
    "MaxShards": "Pipeline",  # the most shards a job may ask for in this environment
    "JobTableName": "Stateful",
    "JobTableStreamArn": "Stateful",  # what the job events function reads (the pipeline stack imports it)
    "DataBucketName": "Stateful",
}
# The local environment's account and region: the local cloud's (moto's) default account, in which the
# synthesized ARNs must match what it serves.
LOCAL_ACCOUNT = "123456789012"
LOCAL_REGION = "us-east-1"
METRICS_NAMESPACE = "ResilientPipeline"


# -- the functions' environment ---------------------------------------------------------------------------------


class Env:
    """Environment variable names the CDK app sets and the functions' settings read (one name each)."""

    JOB_TABLE_NAME = "JOB_TABLE_NAME"
    INPUT_LOCATIONS = "INPUT_LOCATIONS"
    OUTPUT_LOCATION = "OUTPUT_LOCATION"
    ENVIRONMENT = "ENVIRONMENT"
    DEFAULT_CHUNK_BYTES = "DEFAULT_CHUNK_BYTES"
    MAX_REJECT_RATIO = "MAX_REJECT_RATIO"
    JOB_TTL_DAYS = "JOB_TTL_DAYS"
    DLQ_URL = "DLQ_URL"
    WORKER_VERSION_ARN = "WORKER_VERSION_ARN"
    FAILURES_VERSION_ARN = "FAILURES_VERSION_ARN"
    STATE_MACHINE_VERSION_ARN = "STATE_MACHINE_VERSION_ARN"
    CODE_DIGEST = "CODE_DIGEST"
    SAFETY_MARGIN_MS = "SAFETY_MARGIN_MS"
    MAX_CHUNKS_PER_SEGMENT = "MAX_CHUNKS_PER_SEGMENT"
    MAX_LINE_BYTES = "MAX_LINE_BYTES"
    HANDOVER_AFTER_SECONDS = "HANDOVER_AFTER_SECONDS"
    EXECUTION_TIMEOUT_MINUTES = "EXECUTION_TIMEOUT_MINUTES"
    MAX_SHARDS = "MAX_SHARDS"
    DEFAULT_SHARDS = "DEFAULT_SHARDS"
    EVENT_BUS_NAME = "EVENT_BUS_NAME"
    ZSTD_SINGLE_FRAME_MAX_BYTES = "ZSTD_SINGLE_FRAME_MAX_BYTES"
    TRIGGERS = "TRIGGERS"


# Powertools reads these itself; the CDK app sets them on every function beside the settings above.
POWERTOOLS_VARIABLES = (
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_LOG_LEVEL",
    "POWERTOOLS_TRACE_DISABLED",
)
