"""The job request (the SQS message body): parsed and validated against the contract in one place.

Every rule that fails raises ValidationError naming the field and the rule, so the DLQ message says
exactly what to fix.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from jobcore.errors import ValidationError
from jobcore.formats import AUTO, COMPRESSIONS, NONE, OUTPUT_COMPRESSIONS
from jobcore.model import S3Location
from jobcore.options import parse_options
from jobcore.transforms import TRANSFORMS
from pipeline_contract import (
    DEFAULT_TRANSFORM,
    JOB_ID,
    MAX_BODY_BYTES,
    MAX_CHUNK_BYTES,
    MIN_CHUNK_BYTES,
    MIN_SHARDS,
    REQUEST_FIELDS,
    S3_URI,
)


@dataclass(frozen=True, kw_only=True)
class RequestRules:
    """What the environment allows: where inputs may come from, the reject-ratio ceiling, the shards."""

    environment: str
    input_locations: tuple[S3Location, ...]
    max_reject_ratio: float
    # The most shards a job may ask for here.
    max_shards: int = 1


@dataclass(frozen=True, kw_only=True)
class JobRequest:
    job_id: str
    input: str
    transform: str
    chunk_bytes: int | None
    max_reject_ratio: float | None = None
    # Redrive of a FAILED job: start over (offset 0, the input as it is now and the deployed code, a fresh
    # output location).
    restart: bool = False
    # Redrive of a FAILED job whose code is no longer the deployed code: resume from the checkpoint on the
    # deployed code, recording in the job's lineage where it took over.
    upgrade: bool = False
    # The transform's options, checked against its options dataclass, as canonical JSON ("" for none).
    transform_options: str = ""
    # Byte ranges to process in parallel; None: the environment's default.
    shards: int | None = None
    # How the input is read (auto: by its first bytes; none, gzip, zstd) and how the parts are written.
    compression: str = AUTO
    output_compression: str = NONE
    # Pin exactly this version of the input (VersionId), or accept it only while its ETag is this one: what
    # an object notification names, so a job processes the object that was put, not a later overwrite.
    input_version: str | None = None
    input_etag: str | None = None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def job_id_of(body: str) -> str | None:
    """The request's job id if it has a valid one, even when the rest is invalid (to mark it REJECTED)."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    job_id = data.get("job_id") if isinstance(data, dict) else None
    return job_id if isinstance(job_id, str) and JOB_ID.match(job_id) else None


def _job_id(data: dict[str, Any], default: str) -> str:
    job_id = data.get("job_id", default)
    if not isinstance(job_id, str):
        raise ValidationError("job_id", "must be a string")
    if not JOB_ID.match(job_id):
        raise ValidationError("job_id", f"{job_id[:80]!r} must match {JOB_ID.pattern}")
    return job_id


def _input(data: dict[str, Any], locations: tuple[S3Location, ...]) -> str:
    if "input" not in data:
        raise ValidationError("input", "required")
    uri = data["input"]
    if not isinstance(uri, str):
        raise ValidationError("input", "must be a string")
    if not S3_URI.match(uri):
        raise ValidationError("input", f"{uri[:200]!r} must be an s3://bucket/key URI")
    if not any(location.contains(uri) for location in locations):
        allowed = ", ".join(str(location) for location in locations)
        raise ValidationError(
            "input",
            f"{uri[:200]!r} is outside the allowed input locations ({allowed}): the worker may read only there",
        )
    return uri


def _transform_options(data: dict[str, Any], transform: str) -> str:
    raw = data.get("transform_options")
    if raw is None:
        raw = {}
    parse_options(TRANSFORMS[transform], raw)  # raises naming the option and the rule
    return json.dumps(raw, sort_keys=True, separators=(",", ":")) if raw else ""


def _transform(data: dict[str, Any]) -> str:
    transform = data.get("transform", DEFAULT_TRANSFORM)
    if not isinstance(transform, str):
        raise ValidationError("transform", "must be a string")
    if transform not in TRANSFORMS:
        raise ValidationError(
            "transform", f"{transform[:80]!r} is not a registered transform ({', '.join(sorted(TRANSFORMS))})"
        )
    return transform


def _chunk_bytes(data: dict[str, Any]) -> int | None:
    chunk_bytes = data.get("chunk_bytes")
    if chunk_bytes is None:
        return None
    if not _is_int(chunk_bytes):
        raise ValidationError("chunk_bytes", "must be an integer")
    if not MIN_CHUNK_BYTES <= chunk_bytes <= MAX_CHUNK_BYTES:
        raise ValidationError(
            "chunk_bytes", f"{chunk_bytes} must be within {MIN_CHUNK_BYTES}..{MAX_CHUNK_BYTES}"
        )
    return int(chunk_bytes)


def _max_reject_ratio(data: dict[str, Any], ceiling: float) -> float | None:
    if "max_reject_ratio" not in data:
        return None
    ratio = data["max_reject_ratio"]
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not math.isfinite(ratio):
        raise ValidationError("max_reject_ratio", "must be a number")
    if not 0 <= ratio <= ceiling:
        raise ValidationError(
            "max_reject_ratio",
            f"{ratio} must be within 0..{ceiling} (this environment's limit; a job may only lower it)",
        )
    return float(ratio)


def _shards(data: dict[str, Any], maximum: int) -> int | None:
    shards = data.get("shards")
    if shards is None:
        return None
    if not _is_int(shards):
        raise ValidationError("shards", "must be an integer")
    if not MIN_SHARDS <= shards <= maximum:
        raise ValidationError(
            "shards", f"{shards} must be within {MIN_SHARDS}..{maximum} (this environment's maximum)"
        )
    return int(shards)


def _choice(data: dict[str, Any], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = data.get(name, default)
    if not isinstance(value, str) or value not in allowed:
        shown = repr(value)[:80]
        raise ValidationError(name, f"{shown} must be one of {', '.join(allowed)}")
    return value


def _optional_text(data: dict[str, Any], name: str, max_chars: int = 1024) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > max_chars:
        raise ValidationError(name, f"must be a non-empty string of at most {max_chars} characters")
    return value


def _flag(data: dict[str, Any], name: str) -> bool:
    value = data.get(name, False)
    if not isinstance(value, bool):
        raise ValidationError(name, "must be true or false")
    return value


def _redrive_choice(data: dict[str, Any]) -> tuple[bool, bool]:
    restart, upgrade = _flag(data, "restart"), _flag(data, "upgrade")
    if restart and upgrade:
        raise ValidationError(
            "upgrade",
            "cannot be combined with restart: a restart reprocesses from the start (on the deployed code "
            "already), an upgrade resumes from the checkpoint; choose one",
        )
    return restart, upgrade


def parse_request(body: str, *, default_job_id: str, rules: RequestRules) -> JobRequest:
    size = len(body.encode("utf-8"))
    if size > MAX_BODY_BYTES:
        raise ValidationError("body", f"is {size} bytes: must be at most {MAX_BODY_BYTES}")
    try:
        data = json.loads(body)
    except ValueError as error:
        raise ValidationError("body", f"not JSON ({error})") from None
    if not isinstance(data, dict):
        raise ValidationError("body", f"must be a JSON object, not {type(data).__name__}")
    unknown = sorted(set(data) - set(REQUEST_FIELDS))
    if unknown:
        raise ValidationError(unknown[0], f"unknown field (allowed: {', '.join(REQUEST_FIELDS)})")
    transform = _transform(data)
    restart, upgrade = _redrive_choice(data)
    return JobRequest(
        job_id=_job_id(data, default_job_id),
        input=_input(data, rules.input_locations),
        transform=transform,
        transform_options=_transform_options(data, transform),
        chunk_bytes=_chunk_bytes(data),
        max_reject_ratio=_max_reject_ratio(data, rules.max_reject_ratio),
        restart=restart,
        upgrade=upgrade,
        shards=_shards(data, rules.max_shards),
        compression=_choice(data, "compression", COMPRESSIONS, AUTO),
        output_compression=_choice(data, "output_compression", OUTPUT_COMPRESSIONS, NONE),
        input_version=_optional_text(data, "input_version"),
        input_etag=_optional_text(data, "input_etag"),
    )
