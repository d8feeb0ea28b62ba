"""S3 object notifications on the real local cloud server (`python -m localcloud.core.server`): a bucket
deployed through CloudFormation with EventBridge enabled (as the stateful stack does it) and an events rule
to a queue (as a config trigger does it), and a queue notification configuration; what arrives is what S3
sends: a growing sequencer per put, `etag`, the version only where there is one, the default bus only."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localcloud.core import cloud
from tests.localcloud.support import client, wait_until

STACK = "s3-notifications"


def template() -> str:
    queue_policy = {
        "Type": "AWS::SQS::QueuePolicy",
        "Properties": {
            "Queues": [{"Ref": "Queue"}],
            "PolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "events.amazonaws.com"},
                        "Action": "sqs:SendMessage",
                        "Resource": {"Fn::GetAtt": ["Queue", "Arn"]},
                    }
                ],
            },
        },
    }
    return json.dumps(
        {
            "Resources": {
                "Queue": {"Type": "AWS::SQS::Queue"},
                "Direct": {"Type": "AWS::SQS::Queue"},
                "QueuePolicy": queue_policy,
                "Bucket": {
                    "Type": "AWS::S3::Bucket",
                    "Properties": {
                        "NotificationConfiguration": {
                            "EventBridgeConfiguration": {"EventBridgeEnabled": True}
                        }
                    },
                },
                "Other": {
                    "Type": "AWS::S3::Bucket",
                    "Properties": {
                        "NotificationConfiguration": {
                            "QueueConfigurations": [
                                {
                                    "Event": "s3:ObjectCreated:*",
                                    "Queue": {"Fn::GetAtt": ["Direct", "Arn"]},
                                    "Filter": {
                                        "S3Key": {"Rules": [{"Name": "prefix", "Value": "incoming/"}]}
                                    },
                                }
                            ]
                        }
                    },
                },
                "Rule": {
                    "Type": "AWS::Events::Rule",
                    "Properties": {
                        "EventPattern": {
                            "source": ["aws.s3"],
                            "detail-type": ["Object Created"],
                            "detail": {
                                "bucket": {"name": [{"Ref": "Bucket"}]},
                                "object": {"key": [{"prefix": "incoming/"}]},
                            },
                        },
                        "State": "ENABLED",
                        "Targets": [{"Id": "Queue", "Arn": {"Fn::GetAtt": ["Queue", "Arn"]}}],
                    },
                },
            },
            "Outputs": {
                "QueueUrl": {"Value": {"Ref": "Queue"}},
                "DirectUrl": {"Value": {"Ref": "Direct"}},
                "Bucket": {"Value": {"Ref": "Bucket"}},
                "Other": {"Value": {"Ref": "Other"}},
            },
        }
    )


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home: Path = tmp_path_factory.mktemp("s3-server")
    port = cloud.free_port()
    process = cloud.start_server(port=port, home=home, log_path=home / "server.log")
    url = f"http://localhost:{port}"
    deadline = time.monotonic() + 60
    while not cloud.answers(url, timeout=1):
        assert process.poll() is None, (home / "server.log").read_text()
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.1)
    yield url
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def outputs(endpoint: str) -> dict[str, str]:
    cfn = client(endpoint, "cloudformation")
    cfn.create_stack(StackName=STACK, TemplateBody=template())
    stack: dict[str, Any] = {}

    def complete() -> bool:
        stack.update(cfn.describe_stacks(StackName=STACK)["Stacks"][0])
        return str(stack["StackStatus"]).endswith("_COMPLETE") or str(stack["StackStatus"]).endswith(
            "_FAILED"
        )

    wait_until(complete, timeout=60, message="the stack")
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack
    return {output["OutputKey"]: output["OutputValue"] for output in stack["Outputs"]}


def receive(sqs: Any, url: str, count: int) -> list[dict[str, Any]]:
    bodies: list[dict[str, Any]] = []

    def enough() -> bool:
        for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return len(bodies) >= count

    wait_until(enough, timeout=30, message=f"{count} message(s) on {url}")
    return bodies


def test_eventbridge_object_created_events_carry_a_growing_sequencer(
    endpoint: str, outputs: dict[str, str]
) -> None:
    s3, sqs = client(endpoint, "s3"), client(endpoint, "sqs")
    bucket = outputs["Bucket"]
    first = s3.put_object(Bucket=bucket, Key="incoming/a.jsonl", Body=b'{"a": 1}\n')
    s3.put_object(Bucket=bucket, Key="elsewhere/b.jsonl", Body=b"{}\n")  # the rule does not match it
    second = s3.put_object(Bucket=bucket, Key="incoming/a.jsonl", Body=b'{"a": 2}\n')
    events = receive(sqs, outputs["QueueUrl"], 2)
    assert [e["detail"]["object"]["key"] for e in events] == ["incoming/a.jsonl", "incoming/a.jsonl"]
    objects = [e["detail"]["object"] for e in events]
    assert [o["etag"] for o in objects] == [first["ETag"].strip('"'), second["ETag"].strip('"')]
    assert all("version-id" not in o and "eTag" not in o for o in objects), "unversioned: no version-id"
    # Two puts of one key: two sequencers, the later greater (S3 compares them as hex of equal length).
    assert objects[0]["sequencer"] != objects[1]["sequencer"]
    assert int(objects[1]["sequencer"], 16) > int(objects[0]["sequencer"], 16)
    assert {e["detail-type"] for e in events} == {"Object Created"}
    assert {e["detail"]["reason"] for e in events} == {"PutObject"}
    assert all(e["source"] == "aws.s3" and e["resources"] == [f"arn:aws:s3:::{bucket}"] for e in events)
    # Nothing else arrives (the non-matching key, or a second delivery of a matched one).
    assert sqs.receive_message(QueueUrl=outputs["QueueUrl"], WaitTimeSeconds=1).get("Messages", []) == []


def test_a_versioned_bucket_names_the_version(endpoint: str, outputs: dict[str, str]) -> None:
    s3, sqs = client(endpoint, "s3"), client(endpoint, "sqs")
    bucket = outputs["Bucket"]
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    put = s3.put_object(Bucket=bucket, Key="incoming/v.jsonl", Body=b"{}\n")
    (event,) = receive(sqs, outputs["QueueUrl"], 1)
    assert event["detail"]["object"]["version-id"] == put["VersionId"]


def test_queue_notifications_from_cloudformation_carry_sequencer(
    endpoint: str, outputs: dict[str, str]
) -> None:
    s3, sqs = client(endpoint, "s3"), client(endpoint, "sqs")
    # Saving the configuration sent S3's test event first, as S3 does.
    (test_event,) = receive(sqs, outputs["DirectUrl"], 1)
    assert test_event["Event"] == "s3:TestEvent"
    s3.put_object(Bucket=outputs["Other"], Key="incoming/x y.jsonl", Body=b"{}\n")
    s3.put_object(Bucket=outputs["Other"], Key="incoming/x y.jsonl", Body=b"{}\n")
    records = [body["Records"][0] for body in receive(sqs, outputs["DirectUrl"], 2)]
    assert [r["s3"]["object"]["key"] for r in records] == ["incoming/x+y.jsonl"] * 2
    sequencers = [r["s3"]["object"]["sequencer"] for r in records]
    assert int(sequencers[1], 16) > int(sequencers[0], 16)
    assert all("versionId" not in r["s3"]["object"] for r in records)
