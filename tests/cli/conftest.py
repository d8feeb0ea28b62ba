"""Fixtures for the operator CLI.

Two honest ways in, matching how the CLI finds an environment:
- `deployed`: moto in-process (`mock_aws`) with the two stacks created through CloudFormation, so the CLI
  resolves `--env dev` through DescribeStacks exactly as on AWS (table with the by-status GSI, queues with
  a redrive policy, bucket, state machine).
- `local_cloud`: a moto server on loopback plus a local cloud state file, as `pipeline local up`
  leaves them, so `--env local` goes over HTTP with dummy credentials.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from localcloud.core.server import MotoServer
from localcloud.core.state import LocalCloudState, write_state
from pipeline_cli import aws, deadletters
from pipeline_cli.main import main

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
MAX_RECEIVE_COUNT = 3

STATEFUL_TEMPLATE = {
    "Resources": {
        "JobTable": {
            "Type": "AWS::DynamoDB::Table",
            "Properties": {
                "BillingMode": "PAY_PER_REQUEST",
                "KeySchema": [{"AttributeName": "job_id", "KeyType": "HASH"}],
                "AttributeDefinitions": [
                    {"AttributeName": "job_id", "AttributeType": "S"},
                    {"AttributeName": "status", "AttributeType": "S"},
                    {"AttributeName": "updated_at", "AttributeType": "S"},
                ],
                "GlobalSecondaryIndexes": [
                    {
                        "IndexName": "by-status",
                        "KeySchema": [
                            {"AttributeName": "status", "KeyType": "HASH"},
                            {"AttributeName": "updated_at", "KeyType": "RANGE"},
                        ],
                        "Projection": {"ProjectionType": "ALL"},
                    }
                ],
            },
        },
        "DataBucket": {"Type": "AWS::S3::Bucket"},
    },
    "Outputs": {
        "JobTableName": {"Value": {"Ref": "JobTable"}},
        "DataBucketName": {"Value": {"Ref": "DataBucket"}},
    },
}

PIPELINE_TEMPLATE = {
    "Resources": {
        "DeadLetterQueue": {"Type": "AWS::SQS::Queue"},
        "IngestQueue": {
            "Type": "AWS::SQS::Queue",
            "Properties": {
                "QueueName": "resilient-pipeline-dev-ingest",
                "RedrivePolicy": {
                    "deadLetterTargetArn": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]},
                    "maxReceiveCount": MAX_RECEIVE_COUNT,
                },
            },
        },
        "StateMachine": {
            "Type": "AWS::StepFunctions::StateMachine",
            "Properties": {
                "StateMachineName": "resilient-pipeline-dev-segmented-job",
                "RoleArn": "arn:aws:iam::123456789012:role/segmented-job",
                "DefinitionString": json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
            },
        },
        "AlarmTopic": {"Type": "AWS::SNS::Topic"},
        # A function of the stack, for `pipeline logs` (its log group is /aws/lambda/<name>).
        "WorkerRole": {
            "Type": "AWS::IAM::Role",
            "Properties": {"AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": []}},
        },
        "Worker": {
            "Type": "AWS::Lambda::Function",
            "Properties": {
                "FunctionName": "resilient-pipeline-dev-worker",
                "Runtime": "python3.12",
                "Handler": "index.handler",
                "Role": {"Fn::GetAtt": ["WorkerRole", "Arn"]},
                "Code": {"ZipFile": "def handler(event, context):\n    return None\n"},
            },
        },
    },
    "Outputs": {
        "IngestQueueUrl": {"Value": {"Ref": "IngestQueue"}},
        "DeadLetterQueueUrl": {"Value": {"Ref": "DeadLetterQueue"}},
        "StateMachineArn": {"Value": {"Ref": "StateMachine"}},
        "AlarmTopicArn": {"Value": {"Ref": "AlarmTopic"}},
        # As the app exports it: the built-in transforms (no user code deployed).
        "Transforms": {"Value": "compact,flatten,normalize,passthrough"},
    },
}


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No real AWS configuration, no real local cloud, and fast receives."""
    for name in (
        "PIPELINE_ENV",
        "AWS_PROFILE",
        "AWS_REGION",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("LOCALCLOUD_HOME", str(tmp_path / "localcloud"))
    # moto waits out a long poll on an empty queue for real; 0 keeps the empty rounds instant and changes
    # nothing else here (moto is one server, so short polling sees every message).
    monkeypatch.setattr(deadletters, "RECEIVE_WAIT_SECONDS", 0)


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    def invoke(*argv: str) -> Result:
        capsys.readouterr()
        code = main(list(argv))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return invoke


@dataclass
class Deployed:
    outputs: dict[str, str]
    dynamodb: Any
    sqs: Any
    s3: Any
    stepfunctions: Any

    @property
    def table(self) -> str:
        return self.outputs["JobTableName"]

    @property
    def ingest_url(self) -> str:
        return self.outputs["IngestQueueUrl"]

    @property
    def dlq_url(self) -> str:
        return self.outputs["DeadLetterQueueUrl"]

    def put_job(
        self, job_id: str, status: str, updated_at: str = "2026-11-23T10:00:00.000Z", **extra: Any
    ) -> None:
        put_job(self.dynamodb, self.table, job_id, status, updated_at, **extra)

    def set_fields(self, job_id: str, **fields: Any) -> None:
        set_fields(self.dynamodb, self.table, job_id, **fields)


def deploy_stacks(env: str) -> dict[str, str]:
    cloudformation = boto3.client("cloudformation", region_name=REGION)
    outputs: dict[str, str] = {}
    for suffix, template in (("Stateful", STATEFUL_TEMPLATE), ("Pipeline", PIPELINE_TEMPLATE)):
        name = f"ResilientPipeline-{env}-{suffix}"
        cloudformation.create_stack(StackName=name, TemplateBody=json.dumps(template))
        for output in cloudformation.describe_stacks(StackName=name)["Stacks"][0]["Outputs"]:
            outputs[output["OutputKey"]] = output["OutputValue"]
    return outputs


@pytest.fixture
def deployed() -> Iterator[Deployed]:
    with mock_aws():
        outputs = deploy_stacks("dev")
        yield Deployed(
            outputs=outputs,
            dynamodb=boto3.client("dynamodb", region_name=REGION),
            sqs=boto3.client("sqs", region_name=REGION),
            s3=boto3.client("s3", region_name=REGION),
            stepfunctions=boto3.client("stepfunctions", region_name=REGION),
        )


@pytest.fixture
def api_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """Every API call the CLI's clients make, as (operation, params), via a botocore event hook."""
    calls: list[tuple[str, dict[str, Any]]] = []
    original = aws.Pipeline.client

    def client(self: aws.Pipeline, service: str, *, max_attempts: int | None = None) -> Any:
        created = original(self, service, max_attempts=max_attempts)

        def record(params: dict[str, Any], model: Any, **_: Any) -> None:
            calls.append((model.name, dict(params)))

        created.meta.events.register("before-parameter-build.*.*", record)
        return created

    monkeypatch.setattr(aws.Pipeline, "client", client)
    return calls


def put_job(dynamodb: Any, table: str, job_id: str, status: str, updated_at: str, **extra: Any) -> None:
    item: dict[str, Any] = {
        "job_id": {"S": job_id},
        "status": {"S": status},
        "updated_at": {"S": updated_at},
        "created_at": {"S": "2026-11-23T09:59:00.000Z"},
        "attempt": {"N": "1"},
    }
    for key, value in extra.items():
        item[key] = to_attribute(value)
    dynamodb.put_item(TableName=table, Item=item)


def set_fields(dynamodb: Any, table: str, job_id: str, **fields: Any) -> None:
    names = {f"#f{index}": key for index, key in enumerate(fields)}
    values = {f":v{index}": to_attribute(value) for index, value in enumerate(fields.values())}
    dynamodb.update_item(
        TableName=table,
        Key={"job_id": {"S": job_id}},
        UpdateExpression="SET " + ", ".join(f"#f{index} = :v{index}" for index in range(len(fields))),
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=values,
    )


def to_attribute(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | float):
        return {"N": str(value)}
    if isinstance(value, dict):
        return {"M": {key: to_attribute(item) for key, item in value.items()}}
    if isinstance(value, list):
        return {"L": [to_attribute(item) for item in value]}
    return {"S": str(value)}


def dlq_attributes(job_id: str | None, error_type: str, error_message: str, source: str) -> dict[str, Any]:
    attributes = {
        "error_type": {"DataType": "String", "StringValue": error_type},
        "error_message": {"DataType": "String", "StringValue": error_message},
        "source_message_id": {"DataType": "String", "StringValue": source},
    }
    if job_id:
        attributes["job_id"] = {"DataType": "String", "StringValue": job_id}
    return attributes


def drain(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    """Receive (and delete) everything in a queue, with attributes."""
    messages: list[dict[str, Any]] = []
    while True:
        batch = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=30
        ).get("Messages", [])
        if not batch:
            return messages
        for message in batch:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        messages.extend(batch)


@dataclass
class LocalCloud:
    port: int
    outputs: dict[str, str]
    sqs: Any
    dynamodb: Any
    s3: Any


@pytest.fixture(scope="module")
def moto_server() -> Iterator[int]:
    server = MotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        yield server._server.server_port  # type: ignore[union-attr]
    finally:
        server.stop()


@pytest.fixture
def local_cloud(moto_server: int, tmp_path: Path) -> LocalCloud:
    """The resources of the `local` environment in a moto server, and the state file that points at it."""
    endpoint = f"http://localhost:{moto_server}"
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
    clients = {name: session.client(name, endpoint_url=endpoint) for name in ("sqs", "dynamodb", "s3")}
    suffix = tmp_path.name.replace("_", "-").lower()[-20:]
    sqs, dynamodb, s3 = clients["sqs"], clients["dynamodb"], clients["s3"]
    dlq_url = sqs.create_queue(QueueName=f"dlq-{suffix}")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    ingest_url = sqs.create_queue(
        QueueName=f"ingest-{suffix}",
        Attributes={"RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 3})},
    )["QueueUrl"]
    table = f"jobs-{suffix}"
    properties = STATEFUL_TEMPLATE["Resources"]["JobTable"]["Properties"]  # type: ignore[index]
    dynamodb.create_table(TableName=table, **properties)
    bucket = f"data-{suffix}"
    s3.create_bucket(Bucket=bucket)
    outputs = {
        "IngestQueueUrl": ingest_url,
        "DeadLetterQueueUrl": dlq_url,
        "JobTableName": table,
        "DataBucketName": bucket,
        "StateMachineArn": f"arn:aws:states:{REGION}:123456789012:stateMachine:segmented-job-{suffix}",
    }
    write_state(LocalCloudState(port=moto_server, pid=1, outputs=outputs))
    return LocalCloud(port=moto_server, outputs=outputs, sqs=sqs, dynamodb=dynamodb, s3=s3)
