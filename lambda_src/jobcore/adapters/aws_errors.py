"""AWS errors, translated into the project's taxonomy at the edge: the domain (jobcore) never sees a
botocore exception, only TransientError, PermanentError and its kinds.

What counts as transient is botocore's own judgement (its standard retry mode's checkers: throttling
codes, transient codes and 5xx statuses, connection errors), not a copy of its lists that would drift.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterator
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from botocore.retries.standard import RetryContext, ThrottledRetryableChecker, TransientRetryableChecker

from jobcore.errors import (
    AccessDeniedError,
    InputNotFoundError,
    PermanentError,
    PipelineError,
    TransientError,
)

NOT_FOUND_CODES = frozenset({"NoSuchKey", "NoSuchBucket", "404", "NotFound"})
ACCESS_DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException", "403", "Forbidden"})
_THROTTLED = ThrottledRetryableChecker()
_TRANSIENT = TransientRetryableChecker()


class _Status:
    """The one attribute of an HTTP response botocore's transient checker reads."""

    def __init__(self, status_code: int) -> None:
        self.status_code = status_code


def error_code(error: BaseException) -> str | None:
    """The AWS error code of a botocore ClientError, else None."""
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code", ""))
    return None


def _status(error: ClientError) -> int:
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def translate(error: BaseException) -> PipelineError | None:
    """The taxonomy's name for an exception from an AWS call; None for anything else (a bug stays a bug)."""
    if isinstance(error, PipelineError):
        return error
    if isinstance(error, ClientError):
        return _client_error(error)
    if isinstance(error, BotoCoreError):
        # Connection-level failures (timeouts, resets) are botocore's ConnectionError / HTTPClientError.
        if _TRANSIENT.is_retryable(RetryContext(attempt_number=1, caught_exception=error)):
            return TransientError(f"{type(error).__name__}: {error}")
        return None
    if isinstance(error, (TimeoutError, ConnectionError)):
        return TransientError(f"{type(error).__name__}: {error}")
    return None


def _client_error(error: ClientError) -> PipelineError:
    code, status = error_code(error) or "", _status(error)
    message = f"{code or status}: {error}"
    context: Any = RetryContext(
        attempt_number=1, parsed_response=error.response, http_response=_Status(status)
    )
    if _THROTTLED.is_retryable(context) or _TRANSIENT.is_retryable(context) or status == 429:
        return TransientError(message)
    if code in NOT_FOUND_CODES or status == 404:
        return InputNotFoundError(message)
    if code in ACCESS_DENIED_CODES or status == 403:
        return AccessDeniedError(message)
    return PermanentError(message)


@contextlib.contextmanager
def translated(*, answers: Collection[str] = ()) -> Iterator[None]:
    """Around AWS calls (in adapters) and around a handler's work: an AWS error leaves as the taxonomy
    names it. The state machine retries `TransientError` by name; botocore's own class names (DynamoDB's
    `InternalServerError`, ...) match no Retry and would fail the job. Error codes in `answers` are not
    errors to the caller (a failed condition is an answer) and leave as they are, as does anything else."""
    try:
        yield
    except Exception as raw:
        if error_code(raw) in answers:
            raise
        error = translate(raw)
        if error is None or error is raw:
            raise
        raise error from raw
