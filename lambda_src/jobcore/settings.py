"""Each function's configuration, read once per container from the environment the CDK app sets.

One settings class per function, every field required: a variable the stack forgot fails the cold start
naming it, instead of falling back silently to some environment's value. Each class says which variable
fills which field (`VARIABLES`, names from the contract); the infrastructure tests check that every
function's environment holds exactly those variables.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

from jobcore.model import CodePin, S3Location
from jobcore.notifications import Trigger, parse_triggers
from jobcore.request import RequestRules
from pipeline_contract import Env

S = TypeVar("S", bound="_Settings")


class ConfigurationError(RuntimeError):
    """The function was deployed without a variable it needs, or with one it cannot read (a deployment
    bug, not a job error)."""


def _locations(text: str) -> tuple[S3Location, ...]:
    uris = json.loads(text)
    if not isinstance(uris, list) or not uris or not all(isinstance(u, str) for u in uris):
        raise ValueError("must be a JSON list of s3:// URIs")
    return tuple(S3Location.parse(uri) for uri in uris)


_PARSERS: Mapping[str, Callable[[str], Any]] = {
    "str": str,
    "int": int,
    "float": float,
    "S3Location": S3Location.parse,
    "tuple[S3Location, ...]": _locations,
    "tuple[Trigger, ...]": parse_triggers,
}


class _Settings:
    VARIABLES: ClassVar[Mapping[str, str]]  # field -> environment variable

    @classmethod
    def from_env(cls: type[S], env: Mapping[str, str]) -> S:
        values: dict[str, Any] = {}
        annotations = {f.name: f.type for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        for name, variable in cls.VARIABLES.items():
            text = env.get(variable)
            if text is None or text == "":
                raise ConfigurationError(
                    f"environment variable {variable} is not set ({cls.__name__}.{name})"
                )
            try:
                values[name] = _PARSERS[str(annotations[name])](text)
            except ValueError as error:
                raise ConfigurationError(f"environment variable {variable}={text[:80]!r}: {error}") from None
        return cls(**values)


@dataclasses.dataclass(frozen=True, kw_only=True)
class IngestSettings(_Settings):
    job_table_name: str
    # Where inputs may be read from (config `locations`; the IAM grants agree), where outputs go.
    input_locations: tuple[S3Location, ...]
    output_location: S3Location
    environment: str
    default_chunk_bytes: int
    # The environment's reject-ratio limit: a job may only lower it.
    max_reject_ratio: float
    job_ttl_days: int
    dlq_url: str
    # The code this deploy published, which every job accepted now is pinned to (jobcore.model.CodePin).
    worker_version_arn: str
    failures_version_arn: str
    state_machine_version_arn: str
    code_digest: str
    # Shards a job may ask for, and what it gets when it does not ask.
    max_shards: int
    default_shards: int
    # The largest zstd input of one frame accepted (no restart point inside: docs/jobs.md, "Compressed
    # inputs").
    zstd_single_frame_max_bytes: int
    # Objects that become jobs when they arrive (config `triggers`; jobcore.notifications).
    triggers: tuple[Trigger, ...]

    VARIABLES: ClassVar[Mapping[str, str]] = {
        "job_table_name": Env.JOB_TABLE_NAME,
        "input_locations": Env.INPUT_LOCATIONS,
        "output_location": Env.OUTPUT_LOCATION,
        "environment": Env.ENVIRONMENT,
        "default_chunk_bytes": Env.DEFAULT_CHUNK_BYTES,
        "max_reject_ratio": Env.MAX_REJECT_RATIO,
        "job_ttl_days": Env.JOB_TTL_DAYS,
        "dlq_url": Env.DLQ_URL,
        "worker_version_arn": Env.WORKER_VERSION_ARN,
        "failures_version_arn": Env.FAILURES_VERSION_ARN,
        "state_machine_version_arn": Env.STATE_MACHINE_VERSION_ARN,
        "code_digest": Env.CODE_DIGEST,
        "max_shards": Env.MAX_SHARDS,
        "default_shards": Env.DEFAULT_SHARDS,
        "zstd_single_frame_max_bytes": Env.ZSTD_SINGLE_FRAME_MAX_BYTES,
        "triggers": Env.TRIGGERS,
    }

    @property
    def deployed_code(self) -> CodePin:
        return CodePin(
            worker=self.worker_version_arn,
            failures=self.failures_version_arn,
            state_machine=self.state_machine_version_arn,
            digest=self.code_digest,
        )

    @property
    def request_rules(self) -> RequestRules:
        return RequestRules(
            environment=self.environment,
            input_locations=self.input_locations,
            max_reject_ratio=self.max_reject_ratio,
            max_shards=self.max_shards,
        )


@dataclasses.dataclass(frozen=True, kw_only=True)
class WorkerSettings(_Settings):
    job_table_name: str
    safety_margin_ms: int
    # 0 = segments bounded by time only.
    max_chunks_per_segment: int
    max_reject_ratio: float
    max_line_bytes: int
    handover_after_seconds: int
    # The digest of the code this worker runs (the job's pin must name it; every part it writes says it).
    code_digest: str

    VARIABLES: ClassVar[Mapping[str, str]] = {
        "job_table_name": Env.JOB_TABLE_NAME,
        "safety_margin_ms": Env.SAFETY_MARGIN_MS,
        "max_chunks_per_segment": Env.MAX_CHUNKS_PER_SEGMENT,
        "max_reject_ratio": Env.MAX_REJECT_RATIO,
        "max_line_bytes": Env.MAX_LINE_BYTES,
        "handover_after_seconds": Env.HANDOVER_AFTER_SECONDS,
        "code_digest": Env.CODE_DIGEST,
    }


@dataclasses.dataclass(frozen=True, kw_only=True)
class FailureSettings(_Settings):
    """The failure recorder's (and watchdog's) configuration."""

    job_table_name: str
    dlq_url: str
    execution_timeout_minutes: int

    VARIABLES: ClassVar[Mapping[str, str]] = {
        "job_table_name": Env.JOB_TABLE_NAME,
        "dlq_url": Env.DLQ_URL,
        "execution_timeout_minutes": Env.EXECUTION_TIMEOUT_MINUTES,
    }


@dataclasses.dataclass(frozen=True, kw_only=True)
class EventsSettings(_Settings):
    """The job events publisher's configuration."""

    environment: str
    # The bus the events go to (`default`, or the one config `events.bus_name` names).
    event_bus_name: str

    VARIABLES: ClassVar[Mapping[str, str]] = {
        "environment": Env.ENVIRONMENT,
        "event_bus_name": Env.EVENT_BUS_NAME,
    }
