"""Lambda's recursive loop detection for the local cloud: the trace lineage AWS carries from a function
through SQS, SNS and S3 back to a function, counted per function, and the invocation dropped once a chain
has invoked the same function 16 times.

How it models AWS, and where it differs: docs/local-cloud-internals.md#localcloudserviceslambda_recursionpy
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from moto.sqs.models import SQSBackend

# Lambda lets a chain of requests invoke a function about 16 times and drops the next invocation (the
# AWS/Lambda RecursiveInvocationsDropped metric's documentation). Counting from 0 as the header does, the
# invocation whose count would be 16 is the one dropped.
MAX_RECURSIVE_INVOCATIONS = 16
# The lineage entry's format version, as Lambda writes it: `Lineage=1:<hash>:<count>`.
LINEAGE_VERSION = "1"
TRACE_HEADER = "X-Amzn-Trace-Id"
SQS_TRACE_ATTRIBUTE = "AWSTraceHeader"
RECURSIVE_INVOCATION_MESSAGE = (
    "Lambda has detected your function being invoked in a recursive loop with other AWS resources and "
    "stopped your function's invocation."
)

# The X-Amzn-Trace-Id of the request this thread is serving, when it came from a Lambda function: moto's
# SNS and S3 deliver to SQS and Lambda inside the publishing request, in its thread.
_current = threading.local()


def function_hash(function_arn: str) -> str:
    """The function's key in a lineage: its unqualified ARN, hashed (Lambda's is opaque too)."""
    parts = function_arn.split(":")
    unqualified = ":".join(parts[:7]) if len(parts) > 7 else function_arn
    return hashlib.sha256(unqualified.encode()).hexdigest()[:8]


def _fields(header: str) -> list[tuple[str, str]]:
    fields = []
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key:
            fields.append((key, value))
    return fields


def lineage(header: str | None) -> dict[str, int]:
    """The invocation counts a trace header carries, per function hash (`Lineage=1:h1:3|1:h2:0`; the older
    form without the version, `h1:3`, too)."""
    counts: dict[str, int] = {}
    if not header:
        return counts
    for key, value in _fields(header):
        if key != "Lineage":
            continue
        for entry in value.split("|"):
            pieces = entry.split(":")
            if len(pieces) in (2, 3) and pieces[-1].isdigit():
                counts[pieces[-2]] = int(pieces[-1])
    return counts


def next_count(function_arn: str, incoming: str | None) -> int:
    """How many times this chain has invoked the function before this invocation (0: never)."""
    previous = lineage(incoming).get(function_hash(function_arn))
    return 0 if previous is None else previous + 1


def is_recursive_loop(function_arn: str, incoming: str | None) -> bool:
    """Whether Lambda would drop this invocation of the function (its RecursiveLoop being Terminate)."""
    return next_count(function_arn, incoming) >= MAX_RECURSIVE_INVOCATIONS


def invocation_trace(function_arn: str, incoming: str | None) -> str:
    """The trace header an invocation runs with (its `_X_AMZN_TRACE_ID`): the incoming request's Root, a
    new Parent, and the lineage with this function's count. botocore sends it on every call the function
    makes, so what the function sends on carries the lineage."""
    root = next((value for key, value in _fields(incoming or "") if key == "Root"), None)
    if root is None:
        root = f"1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}"
    counts = lineage(incoming)
    counts[function_hash(function_arn)] = next_count(function_arn, incoming)
    entries = "|".join(f"{LINEAGE_VERSION}:{key}:{count}" for key, count in sorted(counts.items()))
    return f"Root={root};Parent={uuid.uuid4().hex[:16]};Sampled=0;Lineage={entries}"


def current_trace() -> str | None:
    """The trace header of the request this thread serves, if any."""
    return getattr(_current, "header", None)


def install() -> Callable[[], None]:
    """Carry the lineage where moto drops it: every request's X-Amzn-Trace-Id is remembered for its thread,
    and every message moto's SQS stores in that thread (SendMessage, SendMessageBatch, and what SNS and S3
    deliver to a queue inside a Publish or PutObject) keeps it as the AWSTraceHeader system attribute, as
    SQS does. Returns the undo."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication  # noqa: PLC0415 - server only

    original_call = DomainDispatcherApplication.__call__
    original_send = SQSBackend.send_message

    def call(self: Any, environ: dict[str, Any], start_response: Any) -> Any:
        _current.header = environ.get("HTTP_X_AMZN_TRACE_ID") or None
        try:
            result = original_call(self, environ, start_response)
            # moto answers with a list: the request is done by the time it returns.
            return result
        finally:
            _current.header = None

    def send_message(self: Any, *args: Any, **kwargs: Any) -> Any:
        header = current_trace()
        system_attributes = dict(kwargs.get("system_attributes") or {})
        if header and SQS_TRACE_ATTRIBUTE not in system_attributes:
            system_attributes[SQS_TRACE_ATTRIBUTE] = {"StringValue": header, "DataType": "String"}
            kwargs["system_attributes"] = system_attributes
        return original_send(self, *args, **kwargs)

    DomainDispatcherApplication.__call__ = call  # type: ignore[method-assign]
    SQSBackend.send_message = send_message  # type: ignore[method-assign]

    def undo() -> None:
        DomainDispatcherApplication.__call__ = original_call  # type: ignore[method-assign]
        SQSBackend.send_message = original_send  # type: ignore[method-assign]

    return undo


def deepest(headers: Iterable[str | None], function_arn: str) -> str | None:
    """Of several records' trace headers (one batch), the one furthest along its chain for this function:
    the invocation carries it on."""
    best: tuple[int, str] | None = None
    for header in headers:
        if header and (best is None or next_count(function_arn, header) > best[0]):
            best = (next_count(function_arn, header), header)
    return best[1] if best else None
