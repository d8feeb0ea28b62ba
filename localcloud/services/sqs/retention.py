"""ReceiveMessage's retention check reads the queue's retention period, not all of the queue's attributes.

moto 5.2.5 checks each message it is about to return against the queue's MessageRetentionPeriod by calling
`get_queue_attributes`, which builds the whole attribute map (ApproximateNumberOfMessages and its siblings
walk every message) two times per name: a receive from a queue of n messages cost O(n^2). A burst of 300 jobs
on the ingest queue spent 6.7% of the server's time there. The period is the queue's own integer
(`_set_attributes` converts it), so the same check reads it directly; what is returned and when a message is
too old are unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

from moto.core.utils import unix_time
from moto.sqs.models import Message, SQSBackend

Undo = Callable[[], None]


def install() -> Undo:
    """The retention check on the queue's own period; returns the undo."""
    original = SQSBackend.is_message_valid_based_on_retention_period

    def is_message_valid_based_on_retention_period(
        self: SQSBackend, queue_name: str, message: Message
    ) -> bool:
        retention_period = self.get_queue(queue_name).message_retention_period  # type: ignore[attr-defined]
        return bool(retention_period + message.sent_timestamp / 1000 > unix_time())  # type: ignore[operator]

    SQSBackend.is_message_valid_based_on_retention_period = is_message_valid_based_on_retention_period  # type: ignore[method-assign]

    def undo() -> None:
        SQSBackend.is_message_valid_based_on_retention_period = original  # type: ignore[method-assign]

    return undo
