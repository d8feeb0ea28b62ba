"""One error taxonomy for the code and the state machine.

The Lambda `errorType` of an unhandled exception is its class name, and the state machine's Retry/Catch
match on that name: `TransientError` is retried with full jitter, every `PermanentError` goes straight to
MarkFailed -> SendToDLQ, `JobCancelledError` ends the execution quietly. Renaming a class here is an
infrastructure change (stacks/constructs/segmented_job.py names them).
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from typing import Any

# botocore error codes that mean "try again later": throttling, capacity and server-side hiccups.
THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "InternalServerErrorException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
    }
)
NOT_FOUND_CODES = frozenset({"NoSuchKey", "NoSuchBucket", "404", "NotFound"})
ACCESS_DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException", "403", "Forbidden"})
CONNECTION_ERRORS = frozenset(
    {
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "EndpointConnectionError",
        "ConnectionClosedError",
        "ProxyConnectionError",
        "HTTPClientError",
        "ResponseStreamingError",
        "IncompleteReadError",
    }
)


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


class InputNotFoundError(PermanentError):
    """The job's input object (or its bucket) does not exist."""


class InputChangedError(PermanentError):
    """The input object is no longer the version the job was accepted with: reading on would mix two
    versions in one output. The message names both ETags."""


class AccessDeniedError(PermanentError):
    """The function's role may not do what the job needs."""


class RejectRatioExceededError(PermanentError):
    """Too many bad records: the input is probably not what the job expects."""


class JobCancelledError(PipelineError):
    """The job was cancelled (or superseded by a newer attempt): stop without failing."""


def _client_error_parts(error: BaseException) -> tuple[str, int] | None:
    response: Any = getattr(error, "response", None)
    if not isinstance(response, dict):
        return None
    code = str(response.get("Error", {}).get("Code", ""))
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return code, status


def classify(error: BaseException) -> PipelineError | None:
    """Map an exception from an AWS call to the taxonomy; None when it is not an AWS error we know
    (a programming error stays what it is, and fails the job through the state machine's Catch)."""
    if isinstance(error, PipelineError):
        return error
    parts = _client_error_parts(error)
    if parts is not None:
        return _classify_client_error(error, *parts)
    # botocore's connection-level failures, matched by name so this module needs no botocore import.
    names = {cls.__name__ for cls in type(error).__mro__}
    if names & CONNECTION_ERRORS or isinstance(error, (TimeoutError, ConnectionError)):
        return TransientError(f"{type(error).__name__}: {error}")
    return None


def _classify_client_error(error: BaseException, code: str, status: int) -> PipelineError:
    message = f"{code or status}: {error}"
    if code in THROTTLING_CODES or status >= 500 or status == 429:
        return TransientError(message)
    if code in NOT_FOUND_CODES or status == 404:
        return InputNotFoundError(message)
    if code in ACCESS_DENIED_CODES or status == 403:
        return AccessDeniedError(message)
    return PermanentError(message)


@contextlib.contextmanager
def classified_errors() -> Iterator[None]:
    """Around a handler's work: an AWS error escapes as the taxonomy names it. The state machine retries
    `TransientError` by name; botocore's own class names (DynamoDB's `InternalServerError`, ...) match no
    Retry and would fail the job. Anything else (a bug) escapes unchanged."""
    try:
        yield
    except Exception as raw:
        error = classify(raw)
        if error is None or error is raw:
            raise
        raise error from raw


def error_code(error: BaseException) -> str | None:
    """The AWS error code of a botocore ClientError, else None."""
    parts = _client_error_parts(error)
    return parts[0] if parts else None


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
