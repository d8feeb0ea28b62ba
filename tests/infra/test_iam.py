"""Least privilege: exact actions per role, no wildcard actions, no AWS managed policies on function roles
(under strict, each role's statements are in one customer-managed policy of its own)."""

from __future__ import annotations

from stacks.constructs.pipeline_function import NETWORK_INTERFACE_ACTIONS
from stacks.constructs.pipeline_key import KEY_USE_ACTIONS
from tests.infra.conftest import Synthesized
from tests.infra.template_tools import actions_of, policies, policy_statements, resources

# Under strict every function may use the key and attach itself to its subnets.
STRICT_FUNCTION_ACTIONS = {*KEY_USE_ACTIONS, *NETWORK_INTERFACE_ACTIONS}
# CDK's grant to send to a queue encrypted with a customer-managed key (acknowledged in stacks/nag.py).
KMS_QUEUE_SEND_ACTIONS = {"kms:ReEncrypt*", "kms:GenerateDataKey*"}

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


def _expected(synth: Synthesized, actions: set[str], *, sends_to_encrypted_queue: bool = False) -> set[str]:
    if not synth.strict:
        return actions
    return actions | STRICT_FUNCTION_ACTIONS | (KMS_QUEUE_SEND_ACTIONS if sends_to_encrypted_queue else set())


def test_events_role_has_exactly_its_actions(synth: Synthesized) -> None:
    assert actions_of(policy_statements(synth.pipeline, "EventsRole")) == _expected(
        synth, EVENTS_ACTIONS, sends_to_encrypted_queue=True
    )


def test_failures_role_has_exactly_its_actions(synth: Synthesized) -> None:
    assert actions_of(policy_statements(synth.pipeline, "FailuresRole")) == _expected(
        synth, FAILURES_ACTIONS, sends_to_encrypted_queue=True
    )


def test_ingest_role_has_exactly_its_actions(synth: Synthesized) -> None:
    assert actions_of(policy_statements(synth.pipeline, "IngestRole")) == _expected(synth, INGEST_ACTIONS)


def test_worker_role_has_exactly_its_actions(synth: Synthesized) -> None:
    assert actions_of(policy_statements(synth.pipeline, "WorkerRole")) == _expected(synth, WORKER_ACTIONS)


def test_ec2_and_kms_actions_only_under_strict(synth: Synthesized) -> None:
    found = actions_of(
        [s for p in policies(synth.pipeline).values() for s in p["Properties"]["PolicyDocument"]["Statement"]]
    )
    assert bool({a for a in found if a.startswith(("ec2:", "kms:"))}) is synth.strict


def test_worker_writes_only_under_the_output_prefix(synth: Synthesized) -> None:
    for statement in policy_statements(synth.pipeline, "WorkerRole"):
        if statement["Action"] == "s3:PutObject":
            assert statement["Resource"]["Fn::Join"][1][-1] == "/out/*"


def test_no_wildcard_actions_anywhere(synth: Synthesized) -> None:
    for template in (synth.stateful, synth.pipeline):
        for policy in policies(template).values():
            actions = actions_of(policy["Properties"]["PolicyDocument"]["Statement"])
            assert not [a for a in actions if a == "*" or a.endswith(":*")], actions


def test_no_destructive_or_scanning_data_actions(synth: Synthesized) -> None:
    forbidden = {"dynamodb:Scan", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem", "s3:DeleteObject"}
    for template in (synth.stateful, synth.pipeline):
        for policy in policies(template).values():
            assert not forbidden & actions_of(policy["Properties"]["PolicyDocument"]["Statement"])


def test_function_roles_use_no_managed_policies(synth: Synthesized) -> None:
    for logical_id, role in resources(synth.pipeline, "AWS::IAM::Role").items():
        assert "ManagedPolicyArns" not in role["Properties"], logical_id


def test_strict_roles_have_no_inline_policy_and_live_under_the_pipeline_path(synth: Synthesized) -> None:
    """NIST/HIPAA/PCI IAMNoInlinePolicy, and the path the key policy names."""
    for template in (synth.stateful, synth.pipeline):
        roles = resources(template, "AWS::IAM::Role")
        if not synth.strict:
            assert not resources(template, "AWS::IAM::ManagedPolicy")
            assert all("Path" not in role["Properties"] for role in roles.values())
            continue
        assert not resources(template, "AWS::IAM::Policy")
        for logical_id, role in roles.items():
            assert "Policies" not in role["Properties"], logical_id
            assert role["Properties"]["Path"] == f"/resilient-pipeline/{synth.env}/", logical_id
        attached = {
            ref["Ref"]
            for policy in resources(template, "AWS::IAM::ManagedPolicy").values()
            for ref in policy["Properties"]["Roles"]
        }
        assert attached == set(roles)
