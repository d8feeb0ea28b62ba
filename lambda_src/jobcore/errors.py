"""One error taxonomy for the code and the state machine.

The Lambda `errorType` of an unhandled exception is its class name, and the state machine's Retry/Catch
match on that name (pipeline_contract holds the names it matches): `TransientError` is retried with full
jitter, every `PermanentError` goes straight to the failure path, `JobCancelledError` ends the execution
quietly. The domain raises and sees only these: adapters translate provider errors into them
(jobcore.adapters.aws_errors).
"""

from __future__ import annotations

import json
import re
from typing import Any


class PipelineError(Exception):
    """Base of every error the pipeline raises on purpose."""


class TransientError(PipelineError):
    """Worth retrying: throttling, 5xx, timeouts, connection errors, injected faults."""


class PermanentError(PipelineError):
    """Retrying cannot help: the job fails and its request goes to the DLQ with this reason."""


class ValidationError(PermanentError):
    """A request or record breaks the contract. The message names the field and the rule."""

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule


class InputFormatError(ValidationError):
    """The input is not something the pipeline reads (bzip2, zip, Parquet, UTF-16, binary), or is compressed
    in a way the job cannot run on (shards, one huge zstd frame): the job is REJECTED naming what the input
    looks like and what to do."""


class InputNotFoundError(PermanentError):
    """The job's input object (or its bucket) does not exist."""


class InputChangedError(PermanentError):
    """The input object is no longer the version the job was accepted with: reading on would mix two
    versions in one output. The message names both ETags."""


class CodeVersionChangedError(PermanentError):
    """A FAILED job's code is no longer the deployed code: resuming would mix two code versions in one
    output. The message names both versions and the two ways on (upgrade, restart)."""


class CodeVersionMismatchError(PermanentError):
    """The worker was invoked on another version than the one its job is pinned to (an execution started
    by hand on the unqualified state machine, say): it writes nothing rather than mix code versions."""


class AccessDeniedError(PermanentError):
    """The function's role may not do what the job needs."""


class RejectRatioExceededError(PermanentError):
    """Too many bad records: the input is probably not what the job expects."""


def in_shard(error: PermanentError, where: str) -> PermanentError:
    """The same error (same type, so the same name for the state machine and the DLQ), its message
    prefixed with where it happened: `shard 2 (bytes 2097152-3145728): ...`."""
    error.args = (f"{where}: {error}",)
    if isinstance(error, ValidationError):
        error.rule = f"{where}: {error.rule}"
    return error


class JobCancelledError(PipelineError):
    """The job was cancelled (or superseded by a newer attempt): stop without failing."""


# -- errors as people read them: {type, message}, no stack trace, no host paths ---------------------------

# An absolute file path (two or more components), not the `//bucket/key` of an s3:// URI.
_PATH = re.compile(r"(?<![\w:/.])/(?:[\w.@+-]+/)+([\w.@+-]+)")
# Lambda prefixes runtime failures with the request they ended.
_REQUEST_PREFIX = re.compile(r"^RequestId: [0-9a-fA-F-]+ Error: ")
MAX_MESSAGE_CHARS = 4096


def clean_message(text: str) -> str:
    """One readable line: Lambda's request prefix and host paths (to their file name) removed, cut."""
    message = _REQUEST_PREFIX.sub("", " ".join(str(text).split()))
    return _PATH.sub(r"\1", message)[:MAX_MESSAGE_CHARS]


def job_error(error_type: str, cause: Any) -> dict[str, str]:
    """The `{type, message}` a job record, a DLQ message and the CLI carry, from an error name and its
    cause as Step Functions passes it on: for a Lambda failure the cause is the function's error document
    (`{errorType, errorMessage, stackTrace}`), whose message is what a person needs."""
    message = str(cause or "")
    try:
        document = json.loads(message)
    except ValueError:
        document = None
    if isinstance(document, dict) and "errorMessage" in document:
        message = str(document.get("errorMessage") or "")
        error_type = str(document.get("errorType") or error_type)
    return {"type": error_type or "Error", "message": clean_message(message) or error_type or "Error"}


def error_of(error: BaseException) -> dict[str, str]:
    return job_error(type(error).__name__, str(error))
