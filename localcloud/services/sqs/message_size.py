"""SQS's message size quota as SQS counts it: the body and every message attribute (name, data type and
value), in UTF-8 bytes, against the queue's MaximumMessageSize (1 MiB by default, 1 MiB at most).

How it models AWS, and where it differs: docs/local-cloud-internals.md#localcloudservicessqsmessage_sizepy
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from typing import Any

from moto.sqs.exceptions import BatchRequestTooLong, InvalidParameterValue
from moto.sqs.models import MAXIMUM_MESSAGE_LENGTH
from moto.sqs.responses import SQSResponse


def _value_bytes(value: Any) -> int:
    if isinstance(value, bytes):
        return len(value)
    text = str(value)
    return len(text.encode("utf-8"))


def _binary_bytes(value: Any) -> int:
    # The JSON protocol carries binary values in base64; SQS counts the decoded bytes.
    if isinstance(value, bytes):
        return len(value)
    try:
        return len(base64.b64decode(str(value), validate=True))
    except (binascii.Error, ValueError):
        return _value_bytes(value)


def message_size(body: str | None, attributes: Mapping[str, Any] | None) -> int:
    """What SQS counts against MaximumMessageSize. System attributes (AWSTraceHeader) do not count."""
    size = _value_bytes(body or "")
    for name, attribute in (attributes or {}).items():
        size += _value_bytes(name)
        if not isinstance(attribute, Mapping):
            size += _value_bytes(attribute)
            continue
        size += _value_bytes(attribute.get("DataType", ""))
        if "StringValue" in attribute:
            size += _value_bytes(attribute["StringValue"])
        if "BinaryValue" in attribute:
            size += _binary_bytes(attribute["BinaryValue"])
    return size


def _limit(response: SQSResponse) -> int:
    queue = response.sqs_backend.get_queue(response._get_queue_name())
    return int(getattr(queue, "maximum_message_size", None) or MAXIMUM_MESSAGE_LENGTH)


def install() -> Callable[[], None]:
    """Check SendMessage and SendMessageBatch, as the API does, before moto stores anything (moto counted
    the body's characters only: a message with attributes, or multi-byte text, passed that SQS refuses).
    Only the API is checked: what the local cloud's own services send in process is not a client's
    request. Returns the undo."""
    original_send = SQSResponse.send_message
    original_batch = SQSResponse.send_message_batch

    def send_message(self: SQSResponse) -> Any:
        size = message_size(self._get_param("MessageBody"), self._get_param("MessageAttributes"))
        limit = _limit(self)
        if size > limit:
            raise InvalidParameterValue(
                f"One or more parameters are invalid. Reason: Message must be shorter than {limit} bytes."
            )
        return original_send(self)

    def send_message_batch(self: SQSResponse) -> Any:
        entries = self._get_param("Entries", []) or []
        total = sum(
            message_size(entry.get("MessageBody"), entry.get("MessageAttributes"))
            for entry in entries
            if isinstance(entry, Mapping)
        )
        if total > MAXIMUM_MESSAGE_LENGTH:
            raise BatchRequestTooLong(total)
        return original_batch(self)

    SQSResponse.send_message = send_message  # type: ignore[method-assign]
    SQSResponse.send_message_batch = send_message_batch  # type: ignore[method-assign]

    def undo() -> None:
        SQSResponse.send_message = original_send  # type: ignore[method-assign]
        SQSResponse.send_message_batch = original_batch  # type: ignore[method-assign]

    return undo
