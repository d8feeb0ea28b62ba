"""The functions' configuration, read once per container from the environment the CDK app sets."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from jobcore.lines import DEFAULT_MAX_LINE_BYTES
from jobcore.model import S3Location
from jobcore.request import RequestRules


class ConfigurationError(RuntimeError):
    """The function was deployed without a variable it needs (a deployment bug, not a job error)."""


def _require(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "")
    if not value:
        raise ConfigurationError(f"environment variable {name} is not set")
    return value


def _locations(env: Mapping[str, str], name: str) -> tuple[S3Location, ...]:
    text = _require(env, name)
    try:
        uris = json.loads(text)
    except ValueError as error:
        raise ConfigurationError(f"environment variable {name} is not a JSON list: {error}") from None
    if not isinstance(uris, list) or not uris or not all(isinstance(u, str) for u in uris):
        raise ConfigurationError(f"environment variable {name} must be a JSON list of s3:// URIs")
    return tuple(S3Location.parse(uri) for uri in uris)


@dataclass(frozen=True, kw_only=True)
class Settings:
    job_table_name: str
    # Where inputs may be read from, and where outputs go (config: `locations`; the IAM grants agree).
    input_locations: tuple[S3Location, ...]
    output_location: S3Location
    environment: str = "dev"
    fault_injection_allowed: bool = False
    default_chunk_bytes: int = 8 * 1024 * 1024
    job_ttl_days: int = 7
    # The environment's reject-ratio limit: the worker enforces it, the ingest lets a job only lower it.
    max_reject_ratio: float = 0.05
    # Worker only.
    safety_margin_ms: int = 20_000
    max_chunks_per_segment: int = 0
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    handover_after_seconds: int | None = None
    # Ingest only.
    dlq_url: str = ""
    state_machine_arn: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        handover = env.get("HANDOVER_AFTER_SECONDS")
        return cls(
            job_table_name=_require(env, "JOB_TABLE_NAME"),
            input_locations=_locations(env, "INPUT_LOCATIONS"),
            output_location=S3Location.parse(_require(env, "OUTPUT_LOCATION")),
            environment=env.get("ENVIRONMENT", "dev"),
            fault_injection_allowed=env.get("FAULT_INJECTION_ALLOWED", "false").lower() == "true",
            default_chunk_bytes=int(env.get("DEFAULT_CHUNK_BYTES", 8 * 1024 * 1024)),
            job_ttl_days=int(env.get("JOB_TTL_DAYS", 7)),
            max_reject_ratio=float(env.get("MAX_REJECT_RATIO", 0.05)),
            safety_margin_ms=int(env.get("SAFETY_MARGIN_MS", 20_000)),
            max_chunks_per_segment=int(env.get("MAX_CHUNKS_PER_SEGMENT", 0)),
            max_line_bytes=int(env.get("MAX_LINE_BYTES", DEFAULT_MAX_LINE_BYTES)),
            handover_after_seconds=int(handover) if handover else None,
            dlq_url=env.get("DLQ_URL", ""),
            state_machine_arn=env.get("STATE_MACHINE_ARN", ""),
        )

    def require_ingest(self) -> Settings:
        if not self.dlq_url or not self.state_machine_arn:
            raise ConfigurationError("the ingest function needs DLQ_URL and STATE_MACHINE_ARN")
        return self

    @property
    def request_rules(self) -> RequestRules:
        return RequestRules(
            environment=self.environment,
            input_locations=self.input_locations,
            max_reject_ratio=self.max_reject_ratio,
            fault_injection_allowed=self.fault_injection_allowed,
        )


@dataclass(frozen=True, kw_only=True)
class FailureSettings:
    """The failure recorder's (and watchdog's) configuration: no defaults, every variable named if missing."""

    job_table_name: str
    dlq_url: str
    execution_timeout_minutes: int

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> FailureSettings:
        return cls(
            job_table_name=_require(env, "JOB_TABLE_NAME"),
            dlq_url=_require(env, "DLQ_URL"),
            execution_timeout_minutes=int(_require(env, "EXECUTION_TIMEOUT_MINUTES")),
        )
