"""Least privilege: exact actions per role, no wildcard actions, no managed policies on function roles."""

from __future__ import annotations

from tests.infra.conftest import Synthesized
from tests.infra.template_tools import actions_of, policy_statements, resources

INGEST_ACTIONS = {
    # HEAD of the input, to pin its version (s3:GetObject; of a version: s3:GetObjectVersion), and NoSuchKey
    # rather than 403 (ListBucket).
    "s3:GetObject",
    "s3:GetObjectVersion",
    "s3:ListBucket",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "states:StartExecution",
    "sqs:SendMessage",
    "logs:CreateLogStream",
    "logs:PutLogEvents",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    # From the SQS event source mapping (CDK's grantConsumeMessages).
    "sqs:ReceiveMessage",
    "sqs:ChangeMessageVisibility",
    "sqs:GetQueueUrl",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
}
WORKER_ACTIONS = {
    "dynamodb:GetItem",
    "dynamodb:UpdateItem",
    "s3:GetObject",
    "s3:GetObjectVersion",
    "s3:PutObject",
    "s3:ListBucket",
    "logs:CreateLogStream",
    "logs:PutLogEvents",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
}


FAILURES_ACTIONS = {
    "dynamodb:GetItem",
    "dynamodb:UpdateItem",
    "sqs:SendMessage",
    # From the asynchronous-invocation OnFailure destination (CDK's grantSendMessages).
    "sqs:GetQueueAttributes",
    "sqs:GetQueueUrl",
    "logs:CreateLogStream",
    "logs:PutLogEvents",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
}


EVENTS_ACTIONS = {
    "events:PutEvents",
    # From the stream event source mapping (CDK's grantStreamRead; ListStreams takes no resource).
    "dynamodb:ListStreams",
    "dynamodb:DescribeStream",
    "dynamodb:GetRecords",
    "dynamodb:GetShardIterator",
    # From its OnFailure destination (CDK's grantSendMessages).
    "sqs:SendMessage",
    "sqs:GetQueueAttributes",
    "sqs:GetQueueUrl",
    "logs:CreateLogStream",
    "logs:PutLogEvents",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
}


def test_events_role_has_exactly_its_actions(synth: Synthesized) -> None:
    assert actions_of(policy_statements(synth.pipeline, "EventsRole")) == EVENTS_ACTIONS


def test_failures_role_has_exactly_its_actions(synth: Synthesized) -> None:
    assert actions_of(policy_statements(synth.pipeline, "FailuresRole")) == FAILURES_ACTIONS


def test_ingest_role_has_exactly_its_actions(synth: Synthesized) -> None:
    assert actions_of(policy_statements(synth.pipeline, "IngestRole")) == INGEST_ACTIONS


def test_worker_role_has_exactly_its_actions(synth: Synthesized) -> None:
    assert actions_of(policy_statements(synth.pipeline, "WorkerRole")) == WORKER_ACTIONS


def test_worker_writes_only_under_the_output_prefix(synth: Synthesized) -> None:
    for statement in policy_statements(synth.pipeline, "WorkerRole"):
        if statement["Action"] == "s3:PutObject":
            assert statement["Resource"]["Fn::Join"][1][-1] == "/out/*"


def test_no_wildcard_actions_anywhere(synth: Synthesized) -> None:
    for template in (synth.stateful, synth.pipeline):
        for policy in resources(template, "AWS::IAM::Policy").values():
            actions = actions_of(policy["Properties"]["PolicyDocument"]["Statement"])
            assert not [a for a in actions if a == "*" or a.endswith(":*")], actions


def test_no_destructive_or_scanning_data_actions(synth: Synthesized) -> None:
    forbidden = {"dynamodb:Scan", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem", "s3:DeleteObject"}
    for template in (synth.stateful, synth.pipeline):
        for policy in resources(template, "AWS::IAM::Policy").values():
            assert not forbidden & actions_of(policy["Properties"]["PolicyDocument"]["Statement"])


def test_function_roles_use_no_managed_policies(synth: Synthesized) -> None:
    for logical_id, role in resources(synth.pipeline, "AWS::IAM::Role").items():
        assert "ManagedPolicyArns" not in role["Properties"], logical_id
