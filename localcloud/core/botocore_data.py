"""botocore's data files, parsed once per process instead of once per botocore session.

Every botocore session parses botocore's endpoints (a megabyte of JSON: 85 ms here) and each of its clients'
endpoint rules for itself. The local cloud's server makes a session for moto's import (three: its EC2 region
lists), for each poller and the alarm evaluator, and for each role a Lambda function or a state machine runs
as; a test process makes one per test (moto's `mock_aws` replaces boto3's default session at every start).
Within one session botocore shares what it parsed between all its clients; `share_parsed_files` shares it
between sessions.

Not the service models (`service-2` and their extras): botocore and moto edit those in place for their own
session (S3's request URIs lose the bucket, moto merges its extras into SQS's), and the local cloud reads
them unedited to identify requests (sharing them failed tests/localcloud/test_iam_actions.py and
test_chaos.py). Botocore also edits the endpoints it resolves in place (the hostname template expanded), as
it does within one session: the result is the same for every session.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import botocore.loaders


def share_parsed_files() -> None:
    """From now on, in this process, each data file but the service models is parsed once. Idempotent."""
    load_file = botocore.loaders.JSONFileLoader.load_file
    if getattr(load_file, "shared", False):
        return
    parsed: dict[str, Any] = {}
    lock = threading.Lock()

    def load_file_once(self: botocore.loaders.JSONFileLoader, file_path: str) -> Any:
        if os.path.basename(file_path).startswith("service-2"):
            return load_file(self, file_path)
        with lock:
            if file_path not in parsed:
                parsed[file_path] = load_file(self, file_path)
            return parsed[file_path]

    load_file_once.shared = True  # type: ignore[attr-defined]
    botocore.loaders.JSONFileLoader.load_file = load_file_once
