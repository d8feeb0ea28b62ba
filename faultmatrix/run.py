"""Runs fault-matrix cells against a running local cloud: inject the cell's faults, send its jobs, wait for
them to settle, then collect what a user could observe and hand it to the checker."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from botocore.config import Config

from faultmatrix.cells import WORKER, Cell, Job
from faultmatrix.checker import TERMINAL, CellReport, DlqMessage, Observed, check
from pipeline_cli.aws import Pipeline
from pipeline_cli.chaos_api import ChaosRules

POLL_SECONDS = 0.5
SETTLE_SECONDS = 60.0


@dataclass
class Sent:
    job: Job
    message_ids: list[str]


class Harness:
    """One local cloud, cells run one after the other (chaos rules are global to the cloud)."""

    def __init__(
        self, pipeline: Pipeline, *, exclusive: bool = True, say: Callable[[str], None] = lambda _m: None
    ) -> None:
        """`exclusive`: the cloud is the matrix's alone, so every DLQ message belongs to some cell and one
        that belongs to none is reported. Otherwise (a shared cloud, as in `make test`) only the cell's own
        messages are read and removed, and the others are left as they were."""
        assert pipeline.endpoint_url, "the fault matrix runs on the local cloud only"
        self.pipeline = pipeline
        self.exclusive = exclusive
        self.say = say
        self.chaos = ChaosRules(pipeline.endpoint_url)
        # The harness's own calls meet the injected faults too: let botocore ride them out.
        config = Config(retries={"mode": "standard", "total_max_attempts": 12}, read_timeout=30)
        session, endpoint = pipeline.session, pipeline.endpoint_url
        self.s3 = session.client("s3", endpoint_url=endpoint, config=config)
        self.sqs = session.client("sqs", endpoint_url=endpoint, config=config)
        self.ddb = session.client("dynamodb", endpoint_url=endpoint, config=config)
        self.sfn = session.client("stepfunctions", endpoint_url=endpoint, config=config)
        self.outputs = pipeline.outputs
        self.worker = self._function_name("Worker")

    def _function_name(self, label: str) -> str:
        client = self.pipeline.session.client("lambda", endpoint_url=self.pipeline.endpoint_url)
        names = [
            f["FunctionName"]
            for page in client.get_paginator("list_functions").paginate()
            for f in page["Functions"]
            if label in f["FunctionName"] and "-Pipeline-" in f["FunctionName"]
        ]
        (name,) = names
        return str(name)

    # -- one cell --------------------------------------------------------------------------------------

    def run_cell(self, cell: Cell, seed: int) -> CellReport:
        self.chaos.clear()
        self._settle(prefix=None)
        if self.exclusive:
            self._dlq_messages([], delete=True)  # what earlier cells left: theirs was counted already
        prefix = f"{cell.key.lower()}-s{seed}-{uuid.uuid4().hex[:4]}"
        bucket = self.outputs.data_bucket_name
        jobs = cell.jobs(prefix, seed, lambda key: f"s3://{bucket}/{key}")
        for job in jobs:
            if job.input_key is not None:
                self.s3.put_object(Bucket=bucket, Key=job.input_key, Body=job.input_bytes)
        for index, rule in enumerate(cell.rules):
            self.chaos.add(**{**rule, "seed": seed * 1000 + index, **self._function(rule)})
        started = time.monotonic()
        sent = [self._send(job) for job in jobs]
        self._wait(sent, timeout=cell.timeout_seconds)
        wall = time.monotonic() - started
        injected = sum(int(rule.get("injected", 0)) for rule in self.chaos.rules())
        self.chaos.clear()
        self._settle(prefix=prefix)
        observed = self._observe(sent)
        if not self.exclusive:
            known = {s.job.request.job_id for s in sent}
            observed = Observed(
                statuses=observed.statuses,
                outputs=observed.outputs,
                dlq=[m for m in observed.dlq if m.job_id in known],
                executions=observed.executions,
            )
        report = check(cell.key, seed, [s.job.request for s in sent], observed, wall_seconds=wall)
        report.notes.append(f"{injected} fault(s) injected")
        return report

    def _function(self, rule: dict[str, Any]) -> dict[str, Any]:
        return {"function": self.worker} if rule.get("function") == WORKER else {}

    def _send(self, job: Job) -> Sent:
        body = job.body if isinstance(job.body, str) else json.dumps(job.body)
        copies = job.request.copies
        ids: list[str] = []
        if copies == 1:
            ids.append(
                self.sqs.send_message(QueueUrl=self.outputs.ingest_queue_url, MessageBody=body)["MessageId"]
            )
            return Sent(job, ids)
        # All copies at once: batches of ten (SQS's limit), so they land together, as a burst of duplicates.
        for start in range(0, copies, 10):
            entries = [{"Id": str(i), "MessageBody": body} for i in range(start, min(start + 10, copies))]
            response = self.sqs.send_message_batch(QueueUrl=self.outputs.ingest_queue_url, Entries=entries)
            assert not response.get("Failed"), response["Failed"]
            ids += [entry["MessageId"] for entry in response["Successful"]]
        return Sent(job, ids)

    def _wait(self, sent: list[Sent], *, timeout: float) -> None:
        """Until every request has ended (a terminal job, and a DLQ message for each that did not succeed,
        or a DLQ message for a request without a readable job) or the cell's time is up."""
        deadline = time.monotonic() + timeout
        pending = {s.job.request.job_id for s in sent}
        while pending and time.monotonic() < deadline:
            in_dlq = {message.job_id for message in self._dlq_messages(sent, delete=False)}
            for s in sent:
                job_id = s.job.request.job_id
                if job_id not in pending:
                    continue
                status = self._status(job_id)
                if (status == "SUCCEEDED") or (job_id in in_dlq and status not in ("PENDING", "RUNNING")):
                    pending.discard(job_id)
            if pending:
                time.sleep(POLL_SECONDS)
        if pending:
            self.say(f"  still unfinished after {timeout:.0f}s: {sorted(pending)}")

    def _settle(self, *, prefix: str | None) -> None:
        """No message waiting or in flight on the ingest queue, no execution of this cell still running:
        whatever arrives in the DLQ after this would be late, not missed."""
        deadline = time.monotonic() + SETTLE_SECONDS
        while time.monotonic() < deadline:
            busy = self._queue_depth(self.outputs.ingest_queue_url)
            running = prefix is not None and any(
                status == "RUNNING" for status in self._executions(prefix).values()
            )
            if not busy and not running:
                return
            time.sleep(POLL_SECONDS)

    # -- observing -------------------------------------------------------------------------------------

    def _status(self, job_id: str) -> str | None:
        item = self.ddb.get_item(
            TableName=self.outputs.job_table_name, Key={"job_id": {"S": job_id}}, ConsistentRead=True
        ).get("Item")
        return str(item["status"]["S"]) if item else None

    def _record(self, job_id: str) -> dict[str, Any] | None:
        item = self.ddb.get_item(
            TableName=self.outputs.job_table_name, Key={"job_id": {"S": job_id}}, ConsistentRead=True
        ).get("Item")
        if not item:
            return None
        return {key: next(iter(value.values())) for key, value in item.items()}

    def _executions(self, prefix: str) -> dict[str, str]:
        found: dict[str, str] = {}
        for page in self.sfn.get_paginator("list_executions").paginate(
            stateMachineArn=self.outputs.state_machine_arn
        ):
            for execution in page["executions"]:
                if execution["name"].startswith(prefix):
                    found[execution["name"]] = execution["status"]
        return found

    def _output_lines(self, output_prefix: str) -> list[bytes]:
        bucket, _, prefix = output_prefix.removeprefix("s3://").partition("/")
        keys = sorted(
            obj["Key"]
            for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for obj in page.get("Contents", [])
            if "/rejects/" not in obj["Key"]
        )
        return [
            line
            for key in keys
            for line in self.s3.get_object(Bucket=bucket, Key=key)["Body"].read().splitlines()
        ]

    def _observe(self, sent: list[Sent]) -> Observed:
        statuses: dict[str, str | None] = {}
        outputs: dict[str, list[bytes]] = {}
        executions: dict[str, int] = {}
        names = self._executions("") if sent else {}
        for s in sent:
            job_id = s.job.request.job_id
            record = self._record(job_id)
            statuses[job_id] = str(record["status"]) if record else None
            if record and record["status"] == "SUCCEEDED":
                outputs[job_id] = self._output_lines(str(record["output_prefix"]))
            executions[job_id] = sum(1 for name in names if name.startswith(f"{job_id}-a1-e"))
        return Observed(
            statuses=statuses,
            outputs=outputs,
            dlq=self._dlq_messages(sent, delete=True),
            executions=executions,
        )

    def _dlq_messages(self, sent: Iterable[Sent], *, delete: bool) -> list[DlqMessage]:
        """Every DLQ message, each attributed to the request it carries: by its `job_id` attribute, else by
        the SQS message it came from (`source_message_id`), else by its body's job id. What is read stays
        hidden until the whole queue has been read (so that every receive shows new messages), then is
        released at once; with `delete`, the cell's own messages (every message, on an exclusive cloud)
        are deleted instead."""
        by_message = {message_id: s.job.request.job_id for s in sent for message_id in s.message_ids}
        mine = set(by_message.values())
        url = self.outputs.dead_letter_queue_url
        found: dict[str, DlqMessage] = {}
        held: dict[str, str] = {}
        deadline = time.monotonic() + SETTLE_SECONDS
        try:
            while time.monotonic() < deadline:
                batch = self.sqs.receive_message(
                    QueueUrl=url,
                    MaxNumberOfMessages=10,
                    VisibilityTimeout=60,
                    WaitTimeSeconds=1 if delete else 0,
                    MessageAttributeNames=["All"],
                ).get("Messages", [])
                if not batch:
                    break
                for message in batch:
                    attributes = {
                        k: v.get("StringValue") for k, v in message.get("MessageAttributes", {}).items()
                    }
                    job_id = attributes.get("job_id") or by_message.get(
                        attributes.get("source_message_id") or ""
                    )
                    dlq_message = DlqMessage(
                        job_id=job_id or _body_job_id(message["Body"]),
                        error_type=attributes.get("error_type"),
                        body=message["Body"],
                    )
                    found[message["MessageId"]] = dlq_message
                    if delete and (self.exclusive or dlq_message.job_id in mine):
                        self.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                        held.pop(message["MessageId"], None)
                    else:
                        held[message["MessageId"]] = message["ReceiptHandle"]
        finally:
            for handle in held.values():
                self.sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=handle, VisibilityTimeout=0)
        return list(found.values())

    def _queue_depth(self, url: str, *, hidden_only: bool = False) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        hidden = int(attributes["ApproximateNumberOfMessagesNotVisible"])
        return hidden if hidden_only else hidden + int(attributes["ApproximateNumberOfMessages"])


def _body_job_id(body: str) -> str | None:
    try:
        document = json.loads(body)
    except ValueError:
        return None
    value = document.get("job_id") if isinstance(document, dict) else None
    return value if isinstance(value, str) else None


__all__ = ["TERMINAL", "Harness"]
