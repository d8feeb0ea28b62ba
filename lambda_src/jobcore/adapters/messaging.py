"""Step Functions (starting executions) and SQS (the dead-letter queue) for the ingest."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from jobcore.adapters.aws_errors import translated

EXECUTION_ALREADY_EXISTS = "ExecutionAlreadyExists"


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
        self._sqs.send_message(
            QueueUrl=self._url,
            MessageBody=body,
            MessageAttributes={
                # SQS refuses empty attribute values; the reason is what matters, so keep it non-empty.
                name: {"DataType": "String", "StringValue": value or "-"}
                for name, value in attributes.items()
            },
        )
