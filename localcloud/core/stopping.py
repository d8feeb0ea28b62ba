"""No retries once a background service of the cloud is stopping.

From the cloud's final save until its server stops, every request is answered 503 (the RequestGate), which
botocore's standard retries meet with backoff: a poll, an alarm evaluation or a metric publication in flight
when `down` began retried against the gate for seconds, each service in turn, before its stop could return.
A service's clients go through `without_retries_when`: while the service runs they retry as configured; once
it is stopping, a failed call raises `Stopping` instead of being retried.
"""

from __future__ import annotations

import threading
from typing import Any


class Stopping(Exception):
    """Raised in place of retrying a failed call once the service is stopping."""


def without_retries_when(stopping: threading.Event, client: Any) -> Any:
    """`client` (a boto3 client), whose failed calls are not retried once `stopping` is set."""

    def refuse_retry(response: Any = None, caught_exception: Any = None, **_: Any) -> None:
        # botocore asks this after every attempt; a successful one goes on as usual.
        if not stopping.is_set():
            return
        if caught_exception is not None or (response is not None and response[0].status_code >= 500):
            raise Stopping("stopping: the failed call is not retried")

    client.meta.events.register_first("needs-retry", refuse_retry)
    return client
