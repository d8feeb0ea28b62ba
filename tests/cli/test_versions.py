"""What `pipeline versions` (and prune) reads of the job table: the versions active jobs are pinned to."""

from __future__ import annotations

from typing import Any

from pipeline_cli import aws, versions

from .conftest import REGION, Deployed

PIN = {
    "worker": f"arn:aws:lambda:{REGION}:123456789012:function:worker:3",
    "failures": f"arn:aws:lambda:{REGION}:123456789012:function:failures:2",
    "state_machine": f"arn:aws:states:{REGION}:123456789012:stateMachine:jobs:1",
}


def test_each_active_job_is_named_once_under_each_version_it_is_pinned_to(deployed: Deployed) -> None:
    deployed.put_job("pending", "PENDING", code_pin=PIN)
    deployed.put_job("running", "RUNNING", code_pin=PIN)
    deployed.put_job("done", "SUCCEEDED", code_pin=PIN)
    deployed.put_job("unpinned", "RUNNING")

    pins = versions.active_pins(aws.connect_aws("dev", REGION))

    assert {arn: sorted(jobs) for arn, jobs in pins.items()} == {
        arn: ["pending", "running"] for arn in PIN.values()
    }


def test_a_job_started_between_the_status_queries_is_named_once(deployed: Deployed) -> None:
    # The jobs list had this race (a job in both the PENDING and the RUNNING answer, listed twice); the
    # versions' pins read the same two queries.
    deployed.put_job("moving", "PENDING", "2026-11-23T10:00:00.000Z", code_pin=PIN)
    pipeline = aws.connect_aws("dev", REGION)

    def start_the_job_after_the_pending_query(parsed: dict[str, Any], **_: Any) -> None:
        if any(
            item["job_id"]["S"] == "moving" and item["status"]["S"] == "PENDING" for item in parsed["Items"]
        ):
            deployed.put_job("moving", "RUNNING", "2026-11-23T10:00:01.000Z", code_pin=PIN)

    pipeline.dynamodb.meta.events.register("after-call.dynamodb.Query", start_the_job_after_the_pending_query)

    assert versions.active_pins(pipeline) == {arn: ["moving"] for arn in PIN.values()}
