"""The template's bucket and queue policies in moto's CloudFormation (in process, no server): moto 5.2.5 has no
model for AWS::S3::BucketPolicy or AWS::SQS::QueuePolicy and skipped both; with the local cloud's models
they are deployed, updated and removed with their stack. And the two moto behaviours that came to light
with them: its own bucket-policy check ignored conditions (CDK's TLS-only Deny refused every request), and
SetQueueAttributes without `Policy` cleared a queue's policy."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from localcloud.core.state import REGION
from localcloud.services.s3 import bucket_policy
from localcloud.services.sqs import queue_policy

BUCKET = "policy-fixture-data"
QUEUE = "policy-fixture-jobs"


def tls_only(resource: Any, action: str) -> dict[str, Any]:
    return {
        "Action": action,
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        "Effect": "Deny",
        "Principal": {"AWS": "*"},
        "Resource": resource,
    }


def template(*, with_policies: bool = True, sid: str = "v1") -> str:
    resources: dict[str, Any] = {
        "Bucket": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": BUCKET}},
        "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": QUEUE}},
    }
    if with_policies:
        resources["BucketPolicy"] = {
            "Type": "AWS::S3::BucketPolicy",
            "Properties": {
                "Bucket": {"Ref": "Bucket"},
                "PolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            **tls_only([f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"], "s3:*"),
                            "Sid": sid,
                        }
                    ],
                },
            },
        }
        resources["QueuePolicy"] = {
            "Type": "AWS::SQS::QueuePolicy",
            "Properties": {
                "Queues": [{"Ref": "Queue"}],
                "PolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [{**tls_only({"Fn::GetAtt": ["Queue", "Arn"]}, "sqs:*"), "Sid": sid}],
                },
            },
        }
    return json.dumps({"Resources": resources})


@pytest.fixture
def aws() -> Iterator[dict[str, Any]]:
    with mock_aws():
        undo = [bucket_policy.install(), queue_policy.install()]
        try:
            yield {
                service: boto3.client(
                    service, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
                )
                for service in ("cloudformation", "s3", "sqs")
            }
        finally:
            for step in reversed(undo):
                step()


def bucket_sids(s3: Any) -> list[str]:
    return [s["Sid"] for s in json.loads(s3.get_bucket_policy(Bucket=BUCKET)["Policy"])["Statement"]]


def queue_sids(sqs: Any) -> list[str]:
    url = sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"]
    policy = (
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"]).get("Attributes", {}).get("Policy")
    )
    return [s["Sid"] for s in json.loads(policy)["Statement"]] if policy else []


def test_the_policies_are_deployed_updated_and_removed_with_the_stack(aws: dict[str, Any]) -> None:
    cfn, s3, sqs = aws["cloudformation"], aws["s3"], aws["sqs"]
    cfn.create_stack(StackName="policies", TemplateBody=template())
    assert bucket_sids(s3) == ["v1"]
    assert queue_sids(sqs) == ["v1"]
    cfn.update_stack(StackName="policies", TemplateBody=template(sid="v2"))
    assert bucket_sids(s3) == ["v2"]
    assert queue_sids(sqs) == ["v2"]
    cfn.update_stack(StackName="policies", TemplateBody=template(with_policies=False))
    with pytest.raises(s3.exceptions.ClientError):
        s3.get_bucket_policy(Bucket=BUCKET)
    assert queue_sids(sqs) == []


def test_the_tls_only_deny_does_not_refuse_the_administrator(aws: dict[str, Any]) -> None:
    aws["cloudformation"].create_stack(StackName="policies", TemplateBody=template())
    # moto's own check ignored the condition: the Deny refused every object request (403).
    aws["s3"].put_object(Bucket=BUCKET, Key="in/a.jsonl", Body=b"{}\n")
    assert aws["s3"].get_object(Bucket=BUCKET, Key="in/a.jsonl")["Body"].read() == b"{}\n"


def test_setting_other_queue_attributes_keeps_the_policy(aws: dict[str, Any]) -> None:
    aws["cloudformation"].create_stack(StackName="policies", TemplateBody=template())
    sqs = aws["sqs"]
    url = sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"]
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "45"})
    assert queue_sids(sqs) == ["v1"]
    # Naming the policy still replaces it, and an empty one clears it.
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": ""})
    assert queue_sids(sqs) == []
