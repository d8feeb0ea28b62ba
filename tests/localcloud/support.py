"""What the local cloud's tests share: a moto server on a free loopback port, clients for it, and a
bounded wait."""

from __future__ import annotations

import functools
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import boto3

from localcloud.core.persistence import RequestGate, gate_server
from localcloud.core.server import MotoServer
from localcloud.core.state import DUMMY_CREDENTIALS, REGION


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def moto_server(gate: RequestGate | None = None) -> Iterator[str]:
    """The local cloud's moto server (MotoServer) on a free port, behind `gate` as in the local cloud; yields
    its endpoint (`localhost`, as the local cloud uses)."""
    port = free_port()
    server = MotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    if gate is not None:
        gate_server(gate, server)
    try:
        yield f"http://localhost:{port}"
    finally:
        server.stop()


def client(endpoint: str, service: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


def grant(endpoint: str, role_name: str, *statements: dict[str, Any], name: str = "grants") -> None:
    """An inline policy of `role_name` allowing `statements` (`Action`/`Resource` pairs): what a role needs
    for the local cloud's IAM enforcement to let its function or state machine make its calls."""
    client(endpoint, "iam").put_role_policy(
        RoleName=role_name,
        PolicyName=name,
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", **s} for s in statements]}
        ),
    )


def allow_eventbridge(endpoint: str, queue_url: str) -> str:
    """Give the queue the policy CDK's SqsQueue target adds (EventBridge may send for this account's rules),
    without which EventBridge cannot deliver to it; returns the queue's ARN."""
    sqs = client(endpoint, "sqs")
    arn = str(
        sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    )
    statement = {
        "Effect": "Allow",
        "Principal": {"Service": "events.amazonaws.com"},
        "Action": "sqs:SendMessage",
        "Resource": arn,
        "Condition": {"ArnLike": {"aws:SourceArn": f"arn:aws:events:*:{arn.split(':')[4]}:rule/*"}},
    }
    sqs.set_queue_attributes(
        QueueUrl=queue_url,
        Attributes={"Policy": json.dumps({"Version": "2012-10-17", "Statement": [statement]})},
    )
    return arn


def wait_until(condition: Callable[[], bool], timeout: float = 15.0, message: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


@functools.cache
def cdk_topic_policy(*, allow_cloudwatch: bool) -> dict[str, Any]:
    """The PolicyDocument CDK synthesizes for `sns.Topic(..., enforce_ssl=True)`, with the topic's Ref
    rewritten to `{"Ref": "Topic"}`; with `allow_cloudwatch`, plus the Allow the stack fix adds
    (cloudwatch.amazonaws.com, scoped by aws:SourceAccount and aws:SourceArn)."""
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
    import aws_cdk as cdk
    from aws_cdk import aws_iam as iam
    from aws_cdk import aws_sns as sns
    from aws_cdk.assertions import Template

    stack = cdk.Stack(cdk.App(), "TopicPolicyFixture")
    topic = sns.Topic(stack, "Topic", enforce_ssl=True)
    if allow_cloudwatch:
        topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarms",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[topic.topic_arn],
                conditions={
                    "StringEquals": {"aws:SourceAccount": stack.account},
                    "ArnLike": {
                        "aws:SourceArn": stack.format_arn(
                            service="cloudwatch",
                            resource="alarm",
                            resource_name="*",
                            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
                        )
                    },
                },
            )
        )
    resources = Template.from_stack(stack).to_json()["Resources"]
    (topic_id,) = (k for k, r in resources.items() if r["Type"] == "AWS::SNS::Topic")
    (policy,) = (r for r in resources.values() if r["Type"] == "AWS::SNS::TopicPolicy")
    text = json.dumps(policy["Properties"]["PolicyDocument"])
    return dict(json.loads(text.replace(json.dumps({"Ref": topic_id}), json.dumps({"Ref": "Topic"}))))


def role_and_function(handler_code: str, *grants: dict[str, Any]) -> dict[str, Any]:
    """Template resources `Role` (assumable by Lambda and Step Functions) and `Function` (an inline Python
    handler `index.handler` running under it): what the server-tier stacks are built around. `grants`
    (`Action`/`Resource` statements) go into the role's policy `RolePolicy`: the local cloud enforces IAM,
    so a state machine or function under the role may make exactly those calls."""
    resources = {
        "Role": {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "AssumeRolePolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": ["lambda.amazonaws.com", "states.amazonaws.com"]},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                }
            },
        },
        "Function": {
            "Type": "AWS::Lambda::Function",
            "Properties": {
                "Code": {"ZipFile": handler_code},
                "Handler": "index.handler",
                "Runtime": "python3.12",
                "Timeout": 5,
                "Role": {"Fn::GetAtt": ["Role", "Arn"]},
            },
        },
    }
    if grants:
        resources["RolePolicy"] = {
            "Type": "AWS::IAM::Policy",
            "Properties": {
                "PolicyName": "RolePolicy",
                "Roles": [{"Ref": "Role"}],
                "PolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", **grant} for grant in grants],
                },
            },
        }
    return resources
