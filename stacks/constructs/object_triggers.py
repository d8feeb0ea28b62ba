"""Object triggers: S3 "Object Created" events on EventBridge, matched per config trigger, put on the
ingest queue, where the ingest turns each into one job (jobcore.notifications)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sqs as sqs
from constructs import Construct

# EventBridge retries a failed delivery to the queue for a day before it gives up (then the DLQ).
MAX_EVENT_AGE_SECONDS = 86_400
MAX_RETRY_ATTEMPTS = 185


@dataclass(frozen=True, kw_only=True)
class TriggerSource:
    """Where a trigger's objects arrive: the bucket's name (a token for the data bucket) and the key's
    prefix and suffix."""

    bucket_name: str
    prefix: str
    suffix: str


def _escape_wildcard(text: str) -> str:
    return text.replace("\\", "\\\\").replace("*", "\\*")


def key_filter(prefix: str, suffix: str) -> list[object]:
    """The rule's filter on `detail.object.key`: a prefix, a suffix, or both as one wildcard."""
    if prefix and suffix:
        return [{"wildcard": f"{_escape_wildcard(prefix)}*{_escape_wildcard(suffix)}"}]
    if suffix:
        return [{"suffix": suffix}]
    return [{"prefix": prefix}]


class ObjectTriggers(Construct):
    """Invariant: one EventBridge rule per trigger on the default bus (where S3 sends), matching only
    "Object Created" in its bucket under its prefix and suffix, with the ingest queue as its only target;
    a delivery that keeps failing goes to the dead-letter queue, never nowhere. The queues accept messages
    from exactly these rules: `sqs:SendMessage` for events.amazonaws.com on condition of `aws:SourceArn`
    (these rules) and `aws:SourceAccount` (this account)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        sources: Sequence[TriggerSource],
        queue: sqs.IQueue,
        dead_letter_queue: sqs.IQueue,
    ) -> None:
        super().__init__(scope, construct_id)
        self._rules: list[events.CfnRule] = []
        for index, source in enumerate(sources):
            # L1: the L2 SqsQueue target grants GetQueueAttributes and GetQueueUrl too, and no SourceAccount.
            rule = events.CfnRule(
                self,
                f"Trigger{index}",
                description=f"Objects created under {source.prefix or '(any key)'}{source.suffix} become jobs",
                event_pattern={
                    "source": ["aws.s3"],
                    "detail-type": ["Object Created"],
                    "detail": {
                        "bucket": {"name": [source.bucket_name]},
                        "object": {"key": key_filter(source.prefix, source.suffix)},
                    },
                },
                state="ENABLED",
                targets=[
                    events.CfnRule.TargetProperty(
                        id="IngestQueue",
                        arn=queue.queue_arn,
                        retry_policy=events.CfnRule.RetryPolicyProperty(
                            maximum_event_age_in_seconds=MAX_EVENT_AGE_SECONDS,
                            maximum_retry_attempts=MAX_RETRY_ATTEMPTS,
                        ),
                        dead_letter_config=events.CfnRule.DeadLetterConfigProperty(
                            arn=dead_letter_queue.queue_arn
                        ),
                    )
                ],
            )
            self._rules.append(rule)
        if not self._rules:
            return
        for target in (queue, dead_letter_queue):
            target.add_to_resource_policy(
                iam.PolicyStatement(
                    sid="ObjectTriggersSend",
                    principals=[iam.ServicePrincipal("events.amazonaws.com")],
                    actions=["sqs:SendMessage"],
                    resources=[target.queue_arn],
                    conditions={
                        "ArnEquals": {"aws:SourceArn": [rule.attr_arn for rule in self._rules]},
                        "StringEquals": {"aws:SourceAccount": Stack.of(self).account},
                    },
                )
            )

    @property
    def rules(self) -> tuple[events.CfnRule, ...]:
        return tuple(self._rules)
