"""moto-backed AWS for the handler tests: the job table (with its GSI), the data bucket, the queues and a
state machine, shaped as the CDK app deploys them; the handlers' environment as the stacks set it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.core.config import default_user_config

from localcloud.services.stepfunctions import versions as sfn_versions

REGION = "us-east-1"
TABLE = "jobs"
BUCKET = "data-bucket"
INPUT_KEYS = ("in/a.jsonl", "in/other.jsonl")
# The worker's published version in these tests: tests.fakes.FakeContext's function_version.
WORKER_VERSION = "1"
CODE_DIGEST = "d1d2d3d4d5d6d7d8"


@dataclass
class Aws:
    ddb: Any
    s3: Any
    sqs: Any
    sfn: Any
    dlq_url: str
    queue_url: str
    state_machine_arn: str

    def dlq_messages(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        while True:
            batch = self.sqs.receive_message(
                QueueUrl=self.dlq_url,
                MaxNumberOfMessages=10,
                MessageAttributeNames=["All"],
                VisibilityTimeout=60,
            ).get("Messages", [])
            if not batch:
                return messages
            messages += batch

    def job(self, job_id: str) -> dict[str, Any] | None:
        from boto3.dynamodb.types import TypeDeserializer

        item = self.ddb.get_item(TableName=TABLE, Key={"job_id": {"S": job_id}}).get("Item")
        return {k: TypeDeserializer().deserialize(v) for k, v in item.items()} if item else None

    def executions(self) -> list[dict[str, Any]]:
        return list(self.sfn.list_executions(stateMachineArn=self.state_machine_arn)["executions"])


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "POWERTOOLS_METRICS_NAMESPACE": "ResilientPipelineTest",
        "POWERTOOLS_SERVICE_NAME": "test",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    from jobcore import aws as jobcore_aws

    jobcore_aws._client.cache_clear()
    jobcore_aws._session.cache_clear()
    # moto's executing Step Functions backend, with the local cloud's versions: the ingest starts a job on
    # the state machine version it pins (moto alone cannot).
    monkeypatch.setitem(default_user_config, "stepfunctions", {"execute_state_machine": True})
    undo_versions = sfn_versions.install()
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name=REGION)
        ddb.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "job_id", "KeyType": "HASH"}],
            AttributeDefinitions=[
                {"AttributeName": "job_id", "AttributeType": "S"},
                {"AttributeName": "status", "AttributeType": "S"},
                {"AttributeName": "updated_at", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
            GlobalSecondaryIndexes=[
                {
                    "IndexName": "by-status",
                    "KeySchema": [
                        {"AttributeName": "status", "KeyType": "HASH"},
                        {"AttributeName": "updated_at", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                }
            ],
        )
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        # The inputs the ingest tests name: the ingest pins an input (HEAD) before accepting its job.
        for key in INPUT_KEYS:
            s3.put_object(Bucket=BUCKET, Key=key, Body=b'{"a": 1}\n')
        sqs = boto3.client("sqs", region_name=REGION)
        dlq_url = sqs.create_queue(QueueName="dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        queue_url = sqs.create_queue(
            QueueName="ingest",
            Attributes={
                "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"})
            },
        )["QueueUrl"]
        sfn = boto3.client("stepfunctions", region_name=REGION)
        created = sfn.create_state_machine(
            name="segmented-job",
            definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
            roleArn="arn:aws:iam::123456789012:role/sfn",
            publish=True,
        )
        arn, version_arn = created["stateMachineArn"], created["stateMachineVersionArn"]
        for name, value in {
            "JOB_TABLE_NAME": TABLE,
            "INPUT_LOCATIONS": json.dumps([f"s3://{BUCKET}/"]),
            "OUTPUT_LOCATION": f"s3://{BUCKET}/out/",
            "EXECUTION_TIMEOUT_MINUTES": "30",
            "DLQ_URL": dlq_url,
            # What the ingest pins jobs to, as a deploy publishes it (the worker runs as WORKER_VERSION).
            "WORKER_VERSION_ARN": f"arn:aws:lambda:{REGION}:123456789012:function:worker:{WORKER_VERSION}",
            "FAILURES_VERSION_ARN": f"arn:aws:lambda:{REGION}:123456789012:function:failures:4",
            "STATE_MACHINE_VERSION_ARN": version_arn,
            "CODE_DIGEST": CODE_DIGEST,
            "ENVIRONMENT": "dev",
            "JOB_TTL_DAYS": "7",
            "DEFAULT_CHUNK_BYTES": str(64 * 1024),
            "SAFETY_MARGIN_MS": "1000",
            "MAX_CHUNKS_PER_SEGMENT": "0",
            "MAX_REJECT_RATIO": "0.5",
            "MAX_LINE_BYTES": str(1024 * 1024),
            "HANDOVER_AFTER_SECONDS": "3600",
            "MAX_SHARDS": "8",
            "DEFAULT_SHARDS": "1",
            "ZSTD_SINGLE_FRAME_MAX_BYTES": str(64 * 1024 * 1024),
            # The local environment's trigger: objects under incoming/ become passthrough jobs.
            "TRIGGERS": json.dumps(
                [{"bucket": BUCKET, "prefix": "incoming/", "transform": "passthrough", "compression": "auto"}]
            ),
        }.items():
            monkeypatch.setenv(name, value)
        from handlers import failures, ingest, worker

        for module in (ingest, worker, failures):
            module._settings.cache_clear()
        yield Aws(
            ddb=ddb, s3=s3, sqs=sqs, sfn=sfn, dlq_url=dlq_url, queue_url=queue_url, state_machine_arn=arn
        )
        ingest._settings.cache_clear()
        worker._settings.cache_clear()
    undo_versions()
    jobcore_aws._client.cache_clear()
    jobcore_aws._session.cache_clear()
