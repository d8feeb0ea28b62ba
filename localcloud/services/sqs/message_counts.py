"""A queue's visible, in-flight and delayed messages counted with one clock reading per count.

moto 5.2.5 asks each message whether it is visible or delayed through properties that read the clock
(`unix_time_millis`, a datetime subtraction) once per message, and SendMessage builds the queue's whole
attribute map, whose three Approximate counts walk every message that way: a burst of n sends to one queue
cost O(n^2) clock readings. In a 300-job burst, SendMessage's attribute map and ReceiveMessage's visible
list held 6% of the server's GIL. Each walk here reads the clock once and compares the messages' own
timestamps as moto's properties do (`now > visible_at`, `now < delayed_until`): the same messages counted
and returned, as of one instant instead of a few microseconds apart.
"""

from __future__ import annotations

from collections.abc import Callable

from moto.core.utils import unix_time_millis
from moto.sqs.models import Message, Queue

Undo = Callable[[], None]


def _messages(queue: Queue) -> list[Message]:
    now = unix_time_millis()
    return [m for m in queue._messages if now > m.visible_at and not now < m.delayed_until]


def _delayed(queue: Queue) -> int:
    now = unix_time_millis()
    return sum(1 for m in queue._messages if now < m.delayed_until)


def _not_visible(queue: Queue) -> int:
    now = unix_time_millis()
    return sum(1 for m in queue._messages if not now > m.visible_at)


def _visible(queue: Queue) -> int:
    return len(_messages(queue))


REPLACED = {
    "messages": _messages,
    "approximate_number_of_messages_delayed": _delayed,
    "approximate_number_of_messages_not_visible": _not_visible,
    "approximate_number_of_messages": _visible,
}


def install() -> Undo:
    """The counts with one clock reading each; returns the undo."""
    originals = {name: Queue.__dict__[name] for name in REPLACED}
    for name, count in REPLACED.items():
        setattr(Queue, name, property(count))

    def undo() -> None:
        for name, original in originals.items():
            setattr(Queue, name, original)

    return undo
