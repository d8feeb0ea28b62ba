"""boto3 clients, created lazily and once per container (the import alone costs ~170 ms of cold start).

botocore's `standard` retry mode is the first, quick layer of retries (a few attempts, its own backoff);
jobcore.retry adds the time-bounded, full-jitter layer on top. Timeouts are short so that a stuck
connection becomes a TransientError long before the function's own timeout.
"""

from __future__ import annotations

import functools
from typing import Any


@functools.cache
def client(service: str) -> Any:
    import boto3  # noqa: PLC0415 - deliberately lazy
    from botocore.config import Config  # noqa: PLC0415

    config = Config(
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=5,
        read_timeout=30,
        tcp_keepalive=True,
    )
    return boto3.session.Session().client(service, config=config)
