"""The grants, decided for the calls the functions make: each role's synthesized policies, evaluated by the
local cloud's IAM evaluator (the one it enforces with) for the S3 and DynamoDB calls its handler makes, in
every environment. Where the data bucket is versioned (staging, prod), the ingest pins the input's VersionId
and the worker reads exactly that version: GetObject with a VersionId, which AWS authorizes as
s3:GetObjectVersion. The local cloud cannot show that one end to end (moto's CloudFormation ignores the
bucket's versioning), so it is checked here."""

from __future__ import annotations

from typing import Any

import pytest

from localcloud.services.iam.authorization import Caller, Check, NamedPolicy, Reason, authorize
from localcloud.services.iam.policy import Principal
from tests.infra.conftest import Synthesized
from tests.infra.template_tools import policy_statements, render

CONTEXT = {"aws:SecureTransport": "true"}


def _rendered(value: Any) -> Any:
    if isinstance(value, list):
        return [_rendered(v) for v in value]
    return render(value)


def _caller(template: dict[str, Any], role: str) -> Caller:
    statements = [
        {**statement, "Resource": _rendered(statement["Resource"])}
        # The role's policies: its inline default policy, or (strict) its customer-managed one.
        for statement in policy_statements(template, role)
    ]
    document = {"Version": "2012-10-17", "Statement": statements}
    principal = Principal.session(
        f"arn:aws:sts::123456789012:assumed-role/{role}/fn", f"arn:aws:iam::123456789012:role/{role}"
    )
    return Caller(principal, (NamedPolicy(f"{role}Policy", document),))


def _versioned(synth: Synthesized) -> bool:
    # The data bucket (strict adds the access-log bucket beside it).
    (bucket,) = [
        resource["Properties"]
        for logical_id, resource in synth.stateful["Resources"].items()
        if resource["Type"] == "AWS::S3::Bucket" and logical_id.startswith("DataBucket")
    ]
    return bool((bucket.get("VersioningConfiguration") or {}).get("Status") == "Enabled")


def _calls(synth: Synthesized, role: str) -> list[Check]:
    bucket = f"arn:aws:s3:::<import:ResilientPipeline-{synth.env}-Stateful-DataBucketName>"
    # An environment without a fixed account names it by reference (rendered `<AWS::AccountId>`).
    account = synth.config.account or "<AWS::AccountId>"
    table = f"arn:aws:dynamodb:{synth.config.region}:{account}:table/<import:ResilientPipeline-{synth.env}-Stateful-JobTableName>"
    input_object = f"{bucket}/in/job-1/input.jsonl"
    if role == "IngestRole":
        # HeadObject pins the input (s3:GetObject); ListBucket turns a missing input into NoSuchKey.
        return [
            Check("s3:GetObject", input_object),
            Check("s3:ListBucket", bucket),
            Check("dynamodb:GetItem", table),
            Check("dynamodb:PutItem", table),
            Check("dynamodb:UpdateItem", table),
        ]
    reads = [Check("s3:GetObject", input_object)]
    if _versioned(synth):
        reads.append(Check("s3:GetObjectVersion", input_object))
    return [
        *reads,
        Check("s3:PutObject", f"{bucket}/out/job-1/part-00000.jsonl"),
        # A gzip input's restart point: written beside the outputs, read back by the next segment.
        Check("s3:PutObject", f"{bucket}/out/job-1/_access/gzip-1048576.gzidx"),
        Check("s3:GetObject", f"{bucket}/out/job-1/_access/gzip-1048576.gzidx"),
        Check("dynamodb:GetItem", table),
        Check("dynamodb:UpdateItem", table),
    ]


@pytest.mark.parametrize("role", ["IngestRole", "WorkerRole"])
def test_every_call_of_the_function_is_allowed_by_its_synthesized_grants(
    synth: Synthesized, role: str
) -> None:
    caller = _caller(synth.pipeline, role)
    refused = {
        (check.action, check.resource): verdict.reason.name
        for check in _calls(synth, role)
        if not (verdict := authorize(caller, check, None, context=CONTEXT)).allowed
    }
    assert refused == {}


def test_control_the_worker_may_not_write_its_input(synth: Synthesized) -> None:
    bucket = f"arn:aws:s3:::<import:ResilientPipeline-{synth.env}-Stateful-DataBucketName>"
    verdict = authorize(
        _caller(synth.pipeline, "WorkerRole"),
        Check("s3:PutObject", f"{bucket}/in/job-1/input.jsonl"),
        None,
        context=CONTEXT,
    )
    assert verdict.reason is Reason.NO_IDENTITY_ALLOW
