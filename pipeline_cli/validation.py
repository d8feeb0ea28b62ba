"""Checks of the CLI's arguments against the job contract and against what the environment deployed,
before anything is sent: one line per problem, naming the flag and the rule."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline_cli.aws import Pipeline
from pipeline_cli.errors import CliError
from pipeline_contract import (
    JOB_ID,
    JOB_ID_RULE,
    MAX_CHUNK_BYTES,
    MIN_CHUNK_BYTES,
    MIN_SHARDS,
    S3_URI,
)


def new_job_id(now: datetime | None = None) -> str:
    """A sortable, readable id made on the client, so that the caller can wait on it at once."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    return f"job-{stamp}-{secrets.token_hex(2)}"


def validate_job_id(job_id: str, *, field: str = "--job-id") -> None:
    if not JOB_ID.match(job_id):
        raise CliError(
            f"{field} {job_id!r} is invalid: a job id must match {JOB_ID_RULE} "
            "(1 to 64 letters, digits, '_' or '-')"
        )


def validate_chunk_bytes(chunk_bytes: int | None) -> None:
    if chunk_bytes is not None and not MIN_CHUNK_BYTES <= chunk_bytes <= MAX_CHUNK_BYTES:
        raise CliError(
            f"--chunk-bytes {chunk_bytes} is out of range: chunk_bytes must be between "
            f"{MIN_CHUNK_BYTES} (64 KiB) and {MAX_CHUNK_BYTES} (64 MiB)"
        )


def validate_wait_options(timeout: float, interval: float) -> None:
    if timeout < 0:
        raise CliError(f"--timeout must be 0 or more seconds, got {timeout}")
    if interval <= 0:
        raise CliError(f"--interval must be more than 0 seconds, got {interval}")


def parse_s3_uri(uri: str) -> tuple[str, str]:
    # The ingest's own rule (lambda_src/jobcore/request.py): an S3 bucket name and a non-empty key.
    match = S3_URI.fullmatch(uri)
    if not match:
        raise CliError(
            f"--input {uri!r} is not an s3://BUCKET/KEY URI (bucket: 3-63 lower-case letters, digits, "
            "'.' or '-'; key: not empty) nor a local file"
        )
    return match.group(1), match.group(2)


def existing_file(path_text: str) -> Path:
    path = Path(path_text).expanduser()
    if not path.is_file():
        reason = "is a directory" if path.is_dir() else "does not exist"
        raise CliError(f"--input {path_text}: the file {reason} (give a JSON Lines file or s3://BUCKET/KEY)")
    return path


def transform_options(text: str | None) -> dict[str, Any] | None:
    """`--options JSON`: a JSON object (the ingest checks it against the transform's options)."""
    if text is None:
        return None
    try:
        options = json.loads(text)
    except ValueError as error:
        raise CliError(f"--options is not JSON: {error}") from None
    if not isinstance(options, dict):
        raise CliError("--options must be a JSON object: transform_options is an object")
    return options


def check_transform(pipeline: Pipeline, name: str | None) -> None:
    """Refuse, before uploading anything, a transform the deployed functions do not register (the stack's
    Transforms output; an environment deployed before that output is not checked here, the ingest is)."""
    deployed = pipeline.outputs.transforms
    if name is not None and deployed is not None and name not in deployed:
        raise CliError(
            f"--transform {name!r} is not deployed in environment {pipeline.env}: it registers "
            f"{', '.join(deployed)} (your own transforms deploy with -c userCode=DIR)"
        )


def check_shards(pipeline: Pipeline, shards: int | None) -> None:
    """Refuse, before uploading anything, a shard count the environment does not allow (its MaxShards
    output; the ingest rejects it anyway, naming the same maximum)."""
    if shards is None:
        return
    maximum = pipeline.outputs.max_shards
    if shards < MIN_SHARDS or (maximum is not None and shards > maximum):
        allowed = f"{MIN_SHARDS}..{maximum}" if maximum is not None else f"at least {MIN_SHARDS}"
        raise CliError(f"--shards {shards} is out of range: environment {pipeline.env} allows {allowed}")
