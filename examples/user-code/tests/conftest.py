"""Load this directory's transforms the way the deployed functions do (jobcore.plugins), for these tests
only: the registry is put back afterwards, so the rest of a test run sees the built-ins alone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from jobcore.testing import user_code

USER_CODE = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="module")
def acme_transforms() -> Iterator[list[str]]:
    with user_code(USER_CODE) as loaded:
        yield loaded
