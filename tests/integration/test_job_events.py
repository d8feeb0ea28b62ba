"""Job lifecycle events on the local cloud: a subscriber's rule on the default bus, with an SQS target
created here as a user would create it, receives one event per transition, with the contract's detail,
whoever wrote the transition (the ingest, the state machine, the failures function, the CLI's cancel)."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline_cli.aws import Pipeline
from pipeline_cli.main import main
from pipeline_cli.records import get_record, send_request
from tests.integration.test_integrity import unique, wait_for
from tests.integration.test_scenarios import executions_of, wait_terminal
from tests.integration.test_shards import submit

pytestmark = pytest.mark.integration

# docs/job-events.md's example pattern, widened: every job event of this pipeline.
PATTERN = {"source": ["resilient-pipeline"]}


class Subscriber:
    """A queue subscribed to the pipeline's events through a rule on the default bus; keeps every event."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.sqs = pipeline.sqs
        self.events = pipeline.client("events")
        name = f"it-job-events-{uuid.uuid4().hex[:6]}"
        self.queue_url = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        self.rule = name
        rule_arn = self.events.put_rule(Name=name, EventPattern=json.dumps(PATTERN), State="ENABLED")[
            "RuleArn"
        ]
        # As docs/job-events.md says: EventBridge may send to the queue for this rule (the local cloud, like
        # AWS, delivers nothing to a queue whose policy does not let it).
        statement = {
            "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": queue_arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
        }
        self.sqs.set_queue_attributes(
            QueueUrl=self.queue_url,
            Attributes={"Policy": json.dumps({"Version": "2012-10-17", "Statement": [statement]})},
        )
        self.events.put_targets(Rule=name, Targets=[{"Id": "queue", "Arn": queue_arn}])
        self.received: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def close(self) -> None:
        self.events.remove_targets(Rule=self.rule, Ids=["queue"])
        self.events.delete_rule(Name=self.rule)
        self.sqs.delete_queue(QueueUrl=self.queue_url)

    def _drain(self) -> None:
        with self._lock:
            while True:
                messages = self.sqs.receive_message(
                    QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
                ).get("Messages", [])
                if not messages:
                    return
                for message in messages:
                    self.received.append(json.loads(message["Body"]))
                    self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def of(self, job_id: str) -> list[dict[str, Any]]:
        self._drain()
        return [event for event in self.received if event["detail"]["job_id"] == job_id]

    def wait(self, job_id: str, detail_type: str, *, timeout: float = 120) -> list[dict[str, Any]]:
        """The job's events once one of `detail_type` has arrived (and a moment for any duplicate)."""
        wait_for(
            lambda: any(e["detail-type"] == detail_type for e in self.of(job_id)),
            timeout=timeout,
            what=f"{detail_type} for {job_id}",
        )
        time.sleep(1.5)
        return self.of(job_id)


@pytest.fixture(scope="module")
def subscriber(pipeline: Pipeline) -> Iterator[Subscriber]:
    sub = Subscriber(pipeline)
    yield sub
    sub.close()


def body(lines: int, *, bad: bool = False) -> bytes:
    if bad:
        return b"nope\n" * lines
    return b"".join(json.dumps({"id": i, "pad": "p" * 60}).encode() + b"\n" for i in range(lines))


def expected_detail(record: dict[str, Any], *, status: str, ended: bool) -> dict[str, Any]:
    created, updated = record["created_at"], record["updated_at"]
    duration = (dt.datetime.fromisoformat(updated) - dt.datetime.fromisoformat(created)).total_seconds()
    detail = {
        "job_id": record["job_id"],
        "status": status,
        "attempt": int(record["attempt"]),
        "environment": "local",
        "records_in": int(record.get("records_in", 0)),
        "records_out": int(record.get("records_out", 0)),
        "records_rejected": int(record.get("records_rejected", 0)),
        "bytes_in": int(record.get("bytes_in", 0)),
        "output_prefix": record.get("output_prefix") or None,
        # The code the job runs on (none for a rejected request): the deployed worker's version.
        "code_version": dict(record["code_version"]) if "code_version" in record else None,
        "created_at": created,
        "ended_at": updated if ended else None,
        "duration_s": round(duration, 3) if ended else None,
    }
    if status in ("FAILED", "REJECTED"):
        detail["error"] = {"type": record["error"]["type"], "message": record["error"]["message"]}
    return detail


def types(events: list[dict[str, Any]]) -> list[str]:
    return [event["detail-type"] for event in events]


def test_a_job_that_succeeds_emits_started_then_succeeded(
    pipeline: Pipeline, subscriber: Subscriber, tmp_path: Path
) -> None:
    job_id = unique("it-ev-ok")
    submit(pipeline, tmp_path, job_id, body(4_000))  # ~290 KB: 5 segments of 64 KiB
    record = wait_terminal(pipeline, job_id)
    assert record["status"] == "SUCCEEDED"
    events = subscriber.wait(job_id, "Job Succeeded")
    assert types(events) == ["Job Started", "Job Succeeded"]
    started, succeeded = events
    for event in events:
        assert event["source"] == "resilient-pipeline"
        assert event["account"] == "123456789012"
    assert succeeded["detail"] == expected_detail(record, status="SUCCEEDED", ended=True)
    assert list(succeeded["detail"]) == [
        "job_id",
        "status",
        "attempt",
        "environment",
        "records_in",
        "records_out",
        "records_rejected",
        "bytes_in",
        "output_prefix",
        "code_version",
        "created_at",
        "ended_at",
        "duration_s",
    ]
    assert succeeded["detail"]["records_in"] == 4_000
    assert started["detail"] == {
        **expected_detail(record, status="RUNNING", ended=False),
        # At the start nothing was read yet.
        "records_in": 0,
        "records_out": 0,
        "records_rejected": 0,
        "bytes_in": 0,
    }


def test_a_rejected_request_emits_job_rejected_with_its_error(
    pipeline: Pipeline, subscriber: Subscriber
) -> None:
    job_id = unique("it-ev-rejected")
    send_request(pipeline, {"job_id": job_id, "input": "ftp://not-s3/data.jsonl"})
    record = wait_terminal(pipeline, job_id)
    assert record["status"] == "REJECTED"
    events = subscriber.wait(job_id, "Job Rejected")
    assert types(events) == ["Job Rejected"]
    detail = events[0]["detail"]
    assert detail == expected_detail(record, status="REJECTED", ended=True)
    assert detail["error"]["type"] == "ValidationError"
    assert detail["error"]["message"].startswith("input: ")
    assert detail["output_prefix"] is None


def test_a_failing_job_emits_started_then_failed_with_its_error(
    pipeline: Pipeline, subscriber: Subscriber, tmp_path: Path
) -> None:
    job_id = unique("it-ev-failed")
    submit(pipeline, tmp_path, job_id, body(300, bad=True))  # every record a reject: over the ratio
    record = wait_terminal(pipeline, job_id)
    assert record["status"] == "FAILED"
    events = subscriber.wait(job_id, "Job Failed")
    assert types(events) == ["Job Started", "Job Failed"]
    detail = events[1]["detail"]
    assert detail == expected_detail(record, status="FAILED", ended=True)
    assert detail["error"]["type"] == "RejectRatioExceededError"


def test_a_cancelled_job_emits_job_cancelled(
    pipeline: Pipeline, subscriber: Subscriber, tmp_path: Path
) -> None:
    job_id = unique("it-ev-cancel")
    submit(pipeline, tmp_path, job_id, body(30_000))  # ~2 MB: dozens of segments, time to cancel
    wait_for(
        lambda: (get_record(pipeline, job_id) or {}).get("records_in", 0) > 0,
        timeout=120,
        what="the job under way",
    )
    assert main(["cancel", job_id, "--env", "local"]) == 0
    record = wait_terminal(pipeline, job_id)
    assert record["status"] == "CANCELLED"
    events = subscriber.wait(job_id, "Job Cancelled")
    assert types(events) == ["Job Started", "Job Cancelled"]
    cancelled = events[1]["detail"]
    assert "error" not in cancelled
    assert (cancelled["status"], cancelled["ended_at"]) == ("CANCELLED", record["updated_at"])
    assert 0 < cancelled["records_in"] < 30_000


def test_a_sharded_job_across_executions_emits_one_started_and_one_succeeded(
    pipeline: Pipeline, subscriber: Subscriber, tmp_path: Path
) -> None:
    job_id = unique("it-ev-shards")
    # ~1.9 MB: 29 chunks of 64 KiB in 4 shards; 20 segments an execution, so at least one hand-over.
    submit(pipeline, tmp_path, job_id, body(27_000), shards=4)
    record = wait_terminal(pipeline, job_id, timeout=300)
    assert record["status"] == "SUCCEEDED"
    assert len(executions_of(pipeline, job_id)) >= 2, "continue-as-new: MarkRunning ran in every execution"
    assert int(record["executions"]) >= 2
    events = subscriber.wait(job_id, "Job Succeeded")
    assert types(events) == ["Job Started", "Job Succeeded"]
    assert events[1]["detail"] == expected_detail(record, status="SUCCEEDED", ended=True)


def test_a_job_failed_at_once_then_redriven_emits_failed_then_started_and_succeeded_in_attempt_2(
    pipeline: Pipeline, subscriber: Subscriber, tmp_path: Path
) -> None:
    job_id = unique("it-ev-redrive")
    key = f"in/{job_id}/late.jsonl"
    bucket = pipeline.outputs.data_bucket_name
    send_request(pipeline, {"job_id": job_id, "input": f"s3://{bucket}/{key}"})  # not uploaded yet
    failed = wait_terminal(pipeline, job_id)
    assert failed["status"] == "FAILED"
    events = subscriber.wait(job_id, "Job Failed")
    assert types(events) == ["Job Failed"], "created FAILED by the ingest: never started"
    assert events[0]["detail"] == expected_detail(failed, status="FAILED", ended=True)
    assert events[0]["detail"]["error"]["type"] == "InputNotFoundError"

    path = tmp_path / "late.jsonl"
    path.write_bytes(body(500))
    pipeline.s3.upload_file(str(path), bucket, key)
    assert main(["dlq", "redrive", "--job-id", job_id, "--env", "local"]) == 0
    record = wait_terminal(pipeline, job_id, attempt=2)
    assert (record["status"], int(record["attempt"])) == ("SUCCEEDED", 2)
    wait_for(
        lambda: "Job Succeeded" in types(subscriber.of(job_id)),
        timeout=120,
        what="Job Succeeded in attempt 2",
    )
    time.sleep(1.5)
    events = subscriber.of(job_id)
    assert [(e["detail-type"], e["detail"]["attempt"]) for e in events] == [
        ("Job Failed", 1),
        ("Job Started", 2),  # the redrive itself (FAILED -> PENDING) emits nothing
        ("Job Succeeded", 2),
    ]
    keys = {(e["detail"]["job_id"], e["detail"]["attempt"], e["detail-type"]) for e in events}
    assert len(keys) == 3, "job_id + attempt + detail-type names each transition once"
