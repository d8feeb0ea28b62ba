"""Step Functions (starting executions) and SQS (the dead-letter queue) for the ingest."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from jobcore.adapters.aws_errors import translated
from pipeline_contract import DLQ_ERROR_MESSAGE, DLQ_ERROR_TYPE, DLQ_JOB_ID, DLQ_SOURCE_MESSAGE_ID

EXECUTION_ALREADY_EXISTS = "ExecutionAlreadyExists"
# SQS counts the body and every attribute (name, data type, value) against the queue's MaximumMessageSize:
# 1 MiB, the default and the most a queue allows (the DLQ keeps the default).
SQS_MAX_MESSAGE_BYTES = 1024 * 1024
_DATA_TYPE = "String"


class StepFunctionsStarter:
    def __init__(self, client: Any) -> None:
        self._sfn = client

    def start(self, *, state_machine: str, name: str, payload: dict[str, Any]) -> bool:
        try:
            with translated(answers={EXECUTION_ALREADY_EXISTS}):
                self._sfn.start_execution(stateMachineArn=state_machine, name=name, input=json.dumps(payload))
        except ClientError:  # only ExecutionAlreadyExists gets here
            # Same name: a duplicate delivery or a retried batch already started it.
            return False
        return True


class SqsDeadLetters:
    def __init__(self, client: Any, queue_url: str) -> None:
        self._sqs = client
        self._url = queue_url

    def send(self, *, body: str, attributes: dict[str, str]) -> None:
        with translated():
            self._send(body=body, attributes=attributes)

    def _send(self, *, body: str, attributes: dict[str, str]) -> None:
        # SQS refuses empty attribute values; the reason is what matters, so keep it non-empty.
        values = fit_attributes(body, {name: value or "-" for name, value in attributes.items()})
        self._sqs.send_message(
            QueueUrl=self._url,
            MessageBody=body,
            MessageAttributes={
                name: {"DataType": _DATA_TYPE, "StringValue": value} for name, value in values.items()
            },
        )


def _message_bytes(body: str, attributes: dict[str, str]) -> int:
    return len(body.encode()) + sum(
        len(name.encode()) + len(_DATA_TYPE) + len(value.encode()) for name, value in attributes.items()
    )


def fit_attributes(body: str, attributes: dict[str, str]) -> dict[str, str]:
    """The attributes, cut so that the message stays within SQS's size: the request's body is kept whole
    (it is what a redrive sends again; it fitted its own queue), the reason's message is cut first, and if
    even that is not enough (a body at the very limit), attributes are left out, the least telling first.
    The job record keeps the whole reason either way."""
    fitted = dict(attributes)
    over = _message_bytes(body, fitted) - SQS_MAX_MESSAGE_BYTES
    if over > 0 and DLQ_ERROR_MESSAGE in fitted:
        message = fitted[DLQ_ERROR_MESSAGE].encode()
        keep = len(message) - over - 3
        if keep > 0:
            fitted[DLQ_ERROR_MESSAGE] = message[:keep].decode(errors="ignore") + "..."
        else:
            del fitted[DLQ_ERROR_MESSAGE]
    # Least telling first: what the reason said, where the request came from, which job, what kind of error.
    for name in (DLQ_ERROR_MESSAGE, DLQ_SOURCE_MESSAGE_ID, DLQ_JOB_ID, DLQ_ERROR_TYPE):
        if _message_bytes(body, fitted) <= SQS_MAX_MESSAGE_BYTES:
            break
        fitted.pop(name, None)
    return fitted
