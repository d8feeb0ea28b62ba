"""Every writer of a job's status follows the contract's transitions: the DynamoDB adapter's conditional
writes, checked on the requests it makes (the state machine's are checked on the synthesized ASL, the
CLI's cancel in tests/cli)."""

from __future__ import annotations

import re
from typing import Any

import pytest

import pipeline_contract as contract
from jobcore.adapters.dynamodb import DynamoJobStore
from jobcore.model import CodePin, InputPin, LineageEntry


class RecordingClient:
    def __init__(self) -> None:
        self.updates: list[dict[str, Any]] = []

    def update_item(self, **request: Any) -> dict[str, Any]:
        self.updates.append(request)
        return {"Attributes": {"job_id": {"S": "j"}, "status": {"S": "FAILED"}}}


def status_write(request: dict[str, Any]) -> tuple[str, set[str]]:
    """(status written, statuses it may leave) of one conditional UpdateItem request."""
    names, values = request["ExpressionAttributeNames"], request["ExpressionAttributeValues"]
    ref = next(ref for ref, attribute in names.items() if attribute == "status")
    written = re.search(rf"SET {ref} = (:\w+)", request["UpdateExpression"])
    allowed = re.search(rf"{ref} IN \(([^)]*)\)", request["ConditionExpression"])
    assert written and allowed, request
    return values[written.group(1)]["S"], {values[r.strip()]["S"] for r in allowed.group(1).split(",")}


PIN = InputPin(etag='"e"', size=10)
CODE = CodePin(worker="arn:fn:w:2", failures="arn:fn:f:2", state_machine="arn:sm:2", digest="d")
LINEAGE = LineageEntry(attempt=2, code_version=CODE.code_version, offsets=(0,))


@pytest.mark.parametrize(
    ("write", "target"),
    [
        (
            lambda s: s.fail("j", attempt=1, error={"type": "X", "message": "m"}, updated_at="t"),
            contract.FAILED,
        ),
        (lambda s: s.resume("j", failed_attempt=1, pin=None, updated_at="t"), contract.PENDING),
        (lambda s: s.resume("j", failed_attempt=1, pin=PIN, updated_at="t"), contract.PENDING),
        (
            lambda s: s.restart(
                "j",
                failed_attempt=1,
                pin=PIN,
                output_prefix="s3://b/out/j.restart-2/",
                updated_at="t",
                code=CODE,
                lineage=(LINEAGE,),
            ),
            contract.PENDING,
        ),
        (
            lambda s: s.resume(
                "j", failed_attempt=1, pin=None, updated_at="t", code=CODE, lineage=(LINEAGE, LINEAGE)
            ),
            contract.PENDING,
        ),
    ],
    ids=["fail", "resume", "resume-pinning", "restart", "resume-upgrading"],
)
def test_the_adapters_status_writes_follow_the_contract(write: Any, target: str) -> None:
    client = RecordingClient()
    write(DynamoJobStore(client, "jobs"))
    (request,) = client.updates
    assert status_write(request) == (target, set(contract.sources(target)))
