"""The functions' configuration, read once per container from the environment the CDK app sets."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


class ConfigurationError(RuntimeError):
    """The function was deployed without a variable it needs (a deployment bug, not a job error)."""


def _require(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "")
    if not value:
        raise ConfigurationError(f"environment variable {name} is not set")
    return value


@dataclass(frozen=True, kw_only=True)
class Settings:
    job_table_name: str
    data_bucket_name: str
    environment: str = "dev"
    fault_injection_allowed: bool = False
    default_chunk_bytes: int = 8 * 1024 * 1024
    job_ttl_days: int = 7
    # Worker only.
    safety_margin_ms: int = 20_000
    max_chunks_per_segment: int = 0
    max_reject_ratio: float = 0.05
    # Ingest only.
    dlq_url: str = ""
    state_machine_arn: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        return cls(
            job_table_name=_require(env, "JOB_TABLE_NAME"),
            data_bucket_name=_require(env, "DATA_BUCKET_NAME"),
            environment=env.get("ENVIRONMENT", "dev"),
            fault_injection_allowed=env.get("FAULT_INJECTION_ALLOWED", "false").lower() == "true",
            default_chunk_bytes=int(env.get("DEFAULT_CHUNK_BYTES", 8 * 1024 * 1024)),
            job_ttl_days=int(env.get("JOB_TTL_DAYS", 7)),
            safety_margin_ms=int(env.get("SAFETY_MARGIN_MS", 20_000)),
            max_chunks_per_segment=int(env.get("MAX_CHUNKS_PER_SEGMENT", 0)),
            max_reject_ratio=float(env.get("MAX_REJECT_RATIO", 0.05)),
            dlq_url=env.get("DLQ_URL", ""),
            state_machine_arn=env.get("STATE_MACHINE_ARN", ""),
        )

    def require_ingest(self) -> Settings:
        if not self.dlq_url or not self.state_machine_arn:
            raise ConfigurationError("the ingest function needs DLQ_URL and STATE_MACHINE_ARN")
        return self
