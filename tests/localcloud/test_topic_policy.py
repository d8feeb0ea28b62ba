"""AWS::SNS::TopicPolicy deployed through moto's CloudFormation (localcloud.services.sns.topic_policy), and
the alarm evaluator publishing only what the topic's policy lets CloudWatch publish.

The policies are CDK's own: `sns.Topic(..., enforce_ssl=True)` synthesizes a TopicPolicy with nothing but
a Deny for plain HTTP, which replaces SNS's default policy, so on AWS no alarm notification gets through;
the fix adds an Allow for cloudwatch.amazonaws.com scoped by aws:SourceAccount and aws:SourceArn.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from localcloud.services.cloudwatch import cloudwatch_alarm
from localcloud.services.cloudwatch.alarm_evaluator import ALARM, AlarmEvaluator
from localcloud.services.sns import topic_policy
from tests.localcloud.support import cdk_topic_policy, client, moto_server

REGION = "us-east-1"
ACCOUNT = "123456789012"
DENY_ONLY = "deny-only"
WITH_ALLOW = "with-allow"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    # As in the server process: CloudFormation creates the alarms and the topic policies.
    undo = [cloudwatch_alarm.install(), topic_policy.install()]
    try:
        with moto_server() as url:
            yield url
    finally:
        for step in reversed(undo):
            step()


def document(kind: str | None) -> dict[str, Any] | None:
    if kind is None:
        return None
    if kind == DENY_ONLY:
        return cdk_topic_policy(allow_cloudwatch=False)
    if kind == WITH_ALLOW:
        return cdk_topic_policy(allow_cloudwatch=True)
    raise ValueError(kind)


def template(policy: dict[str, Any] | None, *, display_name: str = "alarms") -> dict[str, Any]:
    """A topic (an SQS inbox subscribed), an optional TopicPolicy on it, and an alarm that notifies it."""
    resources: dict[str, Any] = {
        "Inbox": {"Type": "AWS::SQS::Queue"},
        "Watched": {"Type": "AWS::SQS::Queue"},
        "Topic": {
            "Type": "AWS::SNS::Topic",
            "Properties": {
                "DisplayName": display_name,
                "Subscription": [{"Protocol": "sqs", "Endpoint": {"Fn::GetAtt": ["Inbox", "Arn"]}}],
            },
        },
        "WatchedNotEmpty": {
            "Type": "AWS::CloudWatch::Alarm",
            "Properties": {
                "AlarmActions": [{"Ref": "Topic"}],
                "ComparisonOperator": "GreaterThanThreshold",
                "Dimensions": [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["Watched", "QueueName"]}}],
                "EvaluationPeriods": 1,
                "MetricName": "ApproximateNumberOfMessagesVisible",
                "Namespace": "AWS/SQS",
                "Period": 60,
                "Statistic": "Maximum",
                "Threshold": 0,
                "TreatMissingData": "notBreaching",
            },
        },
    }
    if policy is not None:
        resources["TopicPolicy"] = {
            "Type": "AWS::SNS::TopicPolicy",
            "Properties": {"PolicyDocument": policy, "Topics": [{"Ref": "Topic"}]},
        }
    return {
        "Resources": resources,
        "Outputs": {
            "TopicArn": {"Value": {"Ref": "Topic"}},
            "InboxName": {"Value": {"Fn::GetAtt": ["Inbox", "QueueName"]}},
            "WatchedName": {"Value": {"Fn::GetAtt": ["Watched", "QueueName"]}},
        },
    }


class Deployed:
    """The template above as one stack, with an alarm evaluator of this stack's alarms only."""

    def __init__(self, endpoint: str, policy_kind: str | None) -> None:
        self.cfn = client(endpoint, "cloudformation")
        self.sns = client(endpoint, "sns")
        self.sqs = client(endpoint, "sqs")
        self.cw = client(endpoint, "cloudwatch")
        self.name = f"TopicPolicy-{uuid.uuid4().hex[:8]}"
        self.cfn.create_stack(StackName=self.name, TemplateBody=json.dumps(template(document(policy_kind))))
        self.evaluator = AlarmEvaluator(
            endpoint,
            REGION,
            interval_seconds=0.2,
            publish_interval_seconds=0,
            alarm_name_prefix=f"{self.name}-",
        )

    def update(self, policy_kind: str | None, *, display_name: str = "alarms") -> None:
        body = json.dumps(template(document(policy_kind), display_name=display_name))
        self.cfn.update_stack(StackName=self.name, TemplateBody=body)

    def outputs(self) -> dict[str, str]:
        stack = self.cfn.describe_stacks(StackName=self.name)["Stacks"][0]
        return {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}

    @property
    def topic_arn(self) -> str:
        return self.outputs()["TopicArn"]

    def topic_policy(self) -> dict[str, Any]:
        attributes = self.sns.get_topic_attributes(TopicArn=self.topic_arn)["Attributes"]
        return dict(json.loads(attributes["Policy"]))

    def queue_url(self, output: str) -> str:
        return str(self.sqs.get_queue_url(QueueName=self.outputs()[output])["QueueUrl"])

    @property
    def alarm_name(self) -> str:
        """The alarm's name as CloudFormation records it (its physical id)."""
        resources = self.cfn.describe_stack_resources(StackName=self.name)["StackResources"]
        (alarm,) = [r for r in resources if r["LogicalResourceId"] == "WatchedNotEmpty"]
        return str(alarm["PhysicalResourceId"])

    @property
    def alarm_arn(self) -> str:
        return f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{self.alarm_name}"

    def raise_alarm(self) -> None:
        """Make the alarm go to ALARM in one synchronous evaluation (which runs its actions)."""
        self.sqs.send_message(QueueUrl=self.queue_url("WatchedName"), MessageBody="stuck")
        self.evaluator.evaluate()
        alarm = self.cw.describe_alarms(AlarmNames=[self.alarm_name])["MetricAlarms"][0]
        assert alarm["StateValue"] == ALARM

    def clear_alarm(self) -> None:
        url = self.queue_url("WatchedName")  # PurgeQueue: once a minute only
        for message in self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            self.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        self.evaluator.evaluate()
        alarm = self.cw.describe_alarms(AlarmNames=[self.alarm_name])["MetricAlarms"][0]
        assert alarm["StateValue"] == "OK"

    def inbox(self) -> list[dict[str, Any]]:
        """Notifications delivered so far (SNS -> SQS delivery is synchronous in moto's Publish)."""
        url = self.queue_url("InboxName")
        received = []
        while messages := self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
            for message in messages:
                received.append(json.loads(json.loads(message["Body"])["Message"]))
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return received


@pytest.fixture
def deploy(endpoint: str) -> Iterator[Any]:
    stacks: list[Deployed] = []

    def make(policy_kind: str | None) -> Deployed:
        stacks.append(Deployed(endpoint, policy_kind))
        return stacks[-1]

    yield make
    for stack in stacks:
        stack.evaluator.stop()
        stack.cfn.delete_stack(StackName=stack.name)


def default_policy(sns: Any, topic_arn: str) -> dict[str, Any]:
    """SNS's default policy for `topic_arn`, as moto gives a brand-new topic."""
    fresh = sns.create_topic(Name=f"fresh-{uuid.uuid4().hex[:8]}")["TopicArn"]
    try:
        text = sns.get_topic_attributes(TopicArn=fresh)["Attributes"]["Policy"]
    finally:
        sns.delete_topic(TopicArn=fresh)
    return dict(json.loads(text.replace(fresh, topic_arn)))


# -- the alarm notification path -------------------------------------------------------------------------


def test_deny_only_topic_policy_silences_the_alarm_and_says_why(
    deploy: Any, caplog: pytest.LogCaptureFixture
) -> None:
    stack = deploy(DENY_ONLY)
    with caplog.at_level(logging.WARNING, logger="localcloud.services.cloudwatch.alarm_evaluator"):
        stack.raise_alarm()

    assert stack.inbox() == []
    (item,) = stack.evaluator.action_history(stack.alarm_name)
    assert not item.succeeded
    assert (item.action, item.state) == (stack.topic_arn, ALARM)
    assert item.summary == (
        f'Failed to execute action {stack.topic_arn}. Received error: "Resource: {stack.alarm_arn} is not '
        f'authorized to perform: SNS:Publish on resource: {stack.topic_arn}"'
    )
    assert item.detail == "topic policy: no statement allows it (implicit deny)"
    history = item.as_alarm_history_item()
    assert (history["HistoryItemType"], json.loads(history["HistoryData"])["actionState"]) == (
        "Action",
        "Failed",
    )
    (warning,) = [r.getMessage() for r in caplog.records if "NOT published" in r.getMessage()]
    assert stack.alarm_name in warning
    assert stack.topic_arn in warning
    assert "no statement allows it (implicit deny)" in warning


def test_the_cloudwatch_allow_lets_the_notification_through(deploy: Any) -> None:
    stack = deploy(WITH_ALLOW)
    stack.raise_alarm()

    (notification,) = stack.inbox()
    assert (notification["AlarmName"], notification["NewStateValue"]) == (stack.alarm_name, ALARM)
    (item,) = stack.evaluator.action_history(stack.alarm_name)
    assert item.succeeded
    assert item.summary == f"Successfully executed action {stack.topic_arn}"


def test_a_topic_without_topic_policy_keeps_the_default_policy_and_delivers(deploy: Any) -> None:
    stack = deploy(None)
    assert stack.topic_policy() == default_policy(stack.sns, stack.topic_arn)
    stack.raise_alarm()

    assert [n["NewStateValue"] for n in stack.inbox()] == [ALARM]
    assert [i.succeeded for i in stack.evaluator.action_history(stack.alarm_name)] == [True]


def test_an_explicit_deny_is_named_by_its_sid(deploy: Any) -> None:
    stack = deploy(WITH_ALLOW)
    policy = stack.topic_policy()
    policy["Statement"].append(
        {
            "Sid": "NoAlarmsHere",
            "Effect": "Deny",
            "Principal": {"Service": "cloudwatch.amazonaws.com"},
            "Action": "sns:Publish",
            "Resource": stack.topic_arn,
        }
    )
    stack.sns.set_topic_attributes(
        TopicArn=stack.topic_arn, AttributeName="Policy", AttributeValue=json.dumps(policy)
    )
    stack.raise_alarm()

    assert stack.inbox() == []
    (item,) = stack.evaluator.action_history(stack.alarm_name)
    assert item.detail == "topic policy: explicitly denied by statement NoAlarmsHere"


# -- the CloudFormation model ----------------------------------------------------------------------------


def test_the_template_policy_replaces_the_default_policy(deploy: Any) -> None:
    stack = deploy(DENY_ONLY)
    (deny,) = stack.topic_policy()["Statement"]
    assert deny == {
        "Action": "sns:Publish",
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        "Effect": "Deny",
        "Principal": "*",
        "Resource": stack.topic_arn,
        "Sid": "AllowPublishThroughSSLOnly",
    }
    resource = stack.cfn.describe_stack_resource(StackName=stack.name, LogicalResourceId="TopicPolicy")
    assert resource["StackResourceDetail"]["ResourceType"] == "AWS::SNS::TopicPolicy"


def test_stack_updates_keep_the_topic_policy_right(deploy: Any) -> None:
    stack = deploy(None)
    sent = []

    def notified() -> bool:
        stack.raise_alarm()
        delivered = bool(stack.inbox())
        stack.clear_alarm()
        stack.inbox()  # the OK notification, if any
        sent.append(delivered)
        return delivered

    assert notified()

    stack.update(DENY_ONLY)  # TopicPolicy added
    assert [s["Sid"] for s in stack.topic_policy()["Statement"]] == ["AllowPublishThroughSSLOnly"]
    assert not notified()

    stack.update(WITH_ALLOW)  # PolicyDocument changed
    assert [s["Sid"] for s in stack.topic_policy()["Statement"]] == [
        "AllowPublishThroughSSLOnly",
        "AllowCloudWatchAlarms",
    ]
    assert notified()

    # A change to the topic makes moto delete it and create a new one (new ARN, default policy) while
    # the TopicPolicy resource itself is unchanged: the policy must follow the new topic.
    old_topic = stack.topic_arn
    stack.update(WITH_ALLOW, display_name="alarms, renamed")
    assert stack.topic_arn != old_topic
    assert [s["Sid"] for s in stack.topic_policy()["Statement"]] == [
        "AllowPublishThroughSSLOnly",
        "AllowCloudWatchAlarms",
    ]
    stack.update(DENY_ONLY, display_name="alarms, renamed again")
    assert [s["Sid"] for s in stack.topic_policy()["Statement"]] == ["AllowPublishThroughSSLOnly"]
    assert not notified()

    stack.update(None, display_name="alarms, renamed again")  # TopicPolicy removed
    assert stack.topic_policy() == default_policy(stack.sns, stack.topic_arn)
    assert notified()
    assert sent == [True, False, True, False, True]


def test_a_topic_dropped_from_topics_gets_the_default_policy_back(endpoint: str) -> None:
    cfn, sns = client(endpoint, "cloudformation"), client(endpoint, "sns")
    name = f"TopicPolicy-{uuid.uuid4().hex[:8]}"

    def body(*topics: str) -> str:
        policy = json.loads(json.dumps(cdk_topic_policy(allow_cloudwatch=False)).replace('"Topic"', '"A"'))
        return json.dumps(
            {
                "Resources": {
                    "A": {"Type": "AWS::SNS::Topic"},
                    "B": {"Type": "AWS::SNS::Topic"},
                    "TopicPolicy": {
                        "Type": "AWS::SNS::TopicPolicy",
                        "Properties": {"PolicyDocument": policy, "Topics": [{"Ref": t} for t in topics]},
                    },
                },
                "Outputs": {"A": {"Value": {"Ref": "A"}}, "B": {"Value": {"Ref": "B"}}},
            }
        )

    def sids() -> dict[str, list[str]]:
        outputs = cfn.describe_stacks(StackName=name)["Stacks"][0]["Outputs"]
        return {
            o["OutputKey"]: [
                s["Sid"]
                for s in json.loads(
                    sns.get_topic_attributes(TopicArn=o["OutputValue"])["Attributes"]["Policy"]
                )["Statement"]
            ]
            for o in outputs
        }

    cfn.create_stack(StackName=name, TemplateBody=body("A", "B"))
    try:
        assert sids() == {"A": ["AllowPublishThroughSSLOnly"], "B": ["AllowPublishThroughSSLOnly"]}
        cfn.update_stack(StackName=name, TemplateBody=body("A"))
        assert sids() == {"A": ["AllowPublishThroughSSLOnly"], "B": ["__default_statement_ID"]}
    finally:
        cfn.delete_stack(StackName=name)
