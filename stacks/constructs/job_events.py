"""Job lifecycle events: the job table's stream, filtered to the status transitions that emit an event,
drives the events function (which puts them on EventBridge)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aws_cdk import Duration
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from pipeline_contract import emitting_transitions
from stacks.constructs.ingest_queue import queue_encryption


def transition_filters(transitions: Mapping[str | None, Sequence[str]]) -> list[dict[str, Any]]:
    """The event source mapping's filter patterns: one per old status (None: a record being created),
    matching a change from it to one of the new statuses. Lambda invokes the function for no other change
    of the table (checkpoints, continue-as-new hand-overs, redrives, TTL deletions)."""
    patterns: list[dict[str, Any]] = []
    for old, news in transitions.items():
        new_image = {"NewImage": {"status": {"S": list(news)}}}
        if old is None:
            patterns.append({"eventName": ["INSERT"], "dynamodb": new_image})
        else:
            patterns.append(
                {"eventName": ["MODIFY"], "dynamodb": {"OldImage": {"status": {"S": [old]}}, **new_image}}
            )
    return patterns


class JobEventStream(Construct):
    """Invariant: `function` receives, in order (one batch per stream shard at a time, from the oldest
    record kept), exactly the job table's changes the contract says emit an event: the filter is derived
    from `pipeline_contract.emitting_transitions()`. A batch is never dropped silently: the function names
    the records it could not publish (partial batch response), a failing batch is bisected and retried until
    its records are `max_record_age` old (or `retry_attempts` times, when given), and then its description
    (shard, sequence numbers) goes to `dead_letter_queue` (SSE, under `encryption_key` when given; TLS only,
    14 days), which has its own alarm."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        function: lambda_.IFunction,
        table: dynamodb.ITable,
        batch_size: int,
        retry_attempts: int | None,
        max_record_age: Duration,
        encryption_key: kms.IKey | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self._dead_letter_queue = sqs.Queue(
            self,
            "DeadLetters",
            encryption=queue_encryption(encryption_key),
            encryption_master_key=encryption_key,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        function.add_event_source(
            event_sources.DynamoEventSource(
                table,
                # TRIM_HORIZON: a change made before the mapping was ready is still published (LATEST
                # would skip it); a mapping created afresh may publish up to 24 h again: consumers dedupe.
                starting_position=lambda_.StartingPosition.TRIM_HORIZON,
                batch_size=batch_size,
                parallelization_factor=1,
                report_batch_item_failures=True,
                bisect_batch_on_error=True,
                retry_attempts=retry_attempts,
                max_record_age=max_record_age,
                on_failure=event_sources.SqsDlq(self._dead_letter_queue),
                filters=[
                    lambda_.FilterCriteria.filter(p) for p in transition_filters(emitting_transitions())
                ],
            )
        )

    @property
    def dead_letter_queue(self) -> sqs.IQueue:
        return self._dead_letter_queue
