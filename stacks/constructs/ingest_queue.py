"""The ingest queue and its dead-letter queue."""

from __future__ import annotations

from aws_cdk import Arn, ArnComponents, Duration, Stack
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks import rules


def queue_encryption(key: kms.IKey | None) -> sqs.QueueEncryption:
    """SSE under the pipeline's key when there is one (strict), else SQS-managed SSE."""
    return sqs.QueueEncryption.KMS if key is not None else sqs.QueueEncryption.SQS_MANAGED


class IngestQueue(Construct):
    """Invariant: SSE and TLS on both queues; a message received `max_receive_count` times moves to the
    DLQ, which keeps it 14 days and accepts redrives from the ingest queue only; the visibility timeout
    leaves room for 6 ingest attempts (checked here as well as in the config). SSE is SQS-managed, or
    under `encryption_key` when one is given (both queues)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        queue_name: str,
        visibility_timeout_seconds: int,
        consumer_timeout_seconds: int,
        batching_window_seconds: int,
        max_receive_count: int,
        retention_days: int,
        dlq_retention_days: int,
        encryption_key: kms.IKey | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        problems = rules.check_visibility_timeout(
            visibility_timeout_seconds=visibility_timeout_seconds,
            function_timeout_seconds=consumer_timeout_seconds,
            batching_window_seconds=batching_window_seconds,
        ) + rules.check_max_receive_count(max_receive_count)
        if problems:
            raise ValueError("; ".join(problems))

        # The DLQ's redrive-allow policy names the ingest queue, and the ingest queue's redrive policy names
        # the DLQ: a cycle of references. A physical name for the ingest queue breaks it (ARN by format).
        ingest_arn = Arn.format(ArnComponents(service="sqs", resource=queue_name), Stack.of(self))
        self._dead_letter_queue = sqs.Queue(
            self,
            "DeadLetterQueue",
            encryption=queue_encryption(encryption_key),
            encryption_master_key=encryption_key,
            enforce_ssl=True,
            retention_period=Duration.days(dlq_retention_days),
            redrive_allow_policy=sqs.RedriveAllowPolicy(
                redrive_permission=sqs.RedrivePermission.BY_QUEUE,
                source_queues=[sqs.Queue.from_queue_arn(self, "IngestQueueRef", ingest_arn)],
            ),
        )
        self._queue = sqs.Queue(
            self,
            "Queue",
            queue_name=queue_name,
            encryption=queue_encryption(encryption_key),
            encryption_master_key=encryption_key,
            enforce_ssl=True,
            visibility_timeout=Duration.seconds(visibility_timeout_seconds),
            retention_period=Duration.days(retention_days),
            # Long polling: fewer empty receives, lower cost, faster pickup.
            receive_message_wait_time=Duration.seconds(20),
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self._dead_letter_queue, max_receive_count=max_receive_count
            ),
        )

    @property
    def queue(self) -> sqs.IQueue:
        return self._queue

    @property
    def dead_letter_queue(self) -> sqs.IQueue:
        return self._dead_letter_queue
