"""Security-relevant changes: IAM grants (widened / added / removed, wildcards, trust, managed policies),
TLS, public access, alarms, retention and removal policies."""

from __future__ import annotations

from typing import Any

from infra_diff import Finding, StackTemplate, compare
from infra_diff.security import grants
from tests.diff.conftest import compare_case


def by_category(findings: tuple[Finding, ...]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for f in findings:
        found.setdefault(f.category, []).append(f"{f.subject}: {f.message}")
    return found


def test_iam_widening_fixture() -> None:
    findings = by_category(compare_case("iam_widening").security)
    assert findings["IAM"] == [
        "Worker/Role: widened: + managed policy arn:${AWS::Partition}:iam::aws:policy/AdministratorAccess",
        "Worker/Role/DefaultPolicy: widened: + Allow dynamodb:DeleteItem on "
        "arn:${AWS::Partition}:dynamodb:us-east-1:${AWS::AccountId}:table/${Import:Demo-Stateful-JobTableName}"
        "; s3:* on * (wildcard)",
    ]
    assert findings["IAM trust policy"] == [
        "Worker/Role trust policy: widened: + Allow sts:AssumeRole for principal Service:states.amazonaws.com"
    ]
    assert findings["public access"] == [
        "DataBucket/Bucket/Policy: statement added: + Allow s3:GetObject on ${DataBucketBD860FE1.Arn}/* "
        "for principal AWS:*"
    ]
    (tls,) = findings["TLS"]
    assert tls.startswith("DataBucket/Bucket/Policy: enforcement removed: - Deny s3:*")
    assert all(f.weakens for f in compare_case("iam_widening").security)


def test_reshuffled_statements_with_the_same_grants_are_not_security_changes() -> None:
    report = compare_case("iam_reshuffle")
    assert report.changed
    assert report.security == ()


def test_modify_fixture_flags_alarm_actions_retention_and_deletion_protection() -> None:
    findings = compare_case("modify").security
    assert [(f.category, f.subject, f.weakens) for f in findings] == [
        ("alarms", "Alarms/DeadLetterQueueNotEmpty", True),
        ("retention", "JobTable/Table", True),
        ("retention", "Worker/Logs", None),
    ]
    assert findings[2].message == "RetentionInDays: 14 -> 7"


def test_removed_alarm_is_flagged() -> None:
    findings = by_category(compare_case("remove").security)
    assert findings["alarms"] == ["Alarms/WorkerErrors: alarm removed"]


def test_statement_added_and_removed_when_nothing_is_related() -> None:
    def policy(*statements: dict[str, Any]) -> dict[str, Any]:
        return {
            "Type": "AWS::IAM::Policy",
            "Properties": {"PolicyDocument": {"Statement": list(statements)}},
        }

    read = {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:bucket/*"}
    send = {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "arn:queue"}
    old = StackTemplate("S", {"Resources": {"P": policy(read)}})
    new = StackTemplate("S", {"Resources": {"P": policy(send)}})
    findings = compare({"dev": {"S": old}}, {"dev": {"S": new}}).security
    assert [(f.message, f.weakens) for f in findings] == [
        ("statement added: + Allow sqs:SendMessage on arn:queue", True),
        ("statement removed: - Allow s3:GetObject on arn:bucket/*", False),
    ]


def test_grants_expand_statements_into_single_permissions() -> None:
    document = {
        "Statement": {
            "Effect": "Allow",
            "Principal": {"Service": ["a.amazonaws.com", "b.amazonaws.com"]},
            "Action": ["x:One", "x:Two"],
            "Resource": "r",
        }
    }
    assert {(g.principal, g.action) for g in grants(document)} == {
        ("Service:a.amazonaws.com", "x:One"),
        ("Service:a.amazonaws.com", "x:Two"),
        ("Service:b.amazonaws.com", "x:One"),
        ("Service:b.amazonaws.com", "x:Two"),
    }


def test_lambda_permission_for_everyone_is_public_access() -> None:
    permission = {
        "Type": "AWS::Lambda::Permission",
        "Properties": {"Action": "lambda:InvokeFunction", "FunctionName": "f", "Principal": "*"},
    }
    new = StackTemplate("S", {"Resources": {"P": permission}})
    old = StackTemplate("S", {"Resources": {}})
    (finding,) = compare({"dev": {"S": old}}, {"dev": {"S": new}}).security
    assert finding.category == "public access"
    assert finding.message == "statement added: + Allow lambda:InvokeFunction on f for principal *"


def test_encryption_public_access_and_removal_policy_changes() -> None:
    bucket = {
        "Type": "AWS::S3::Bucket",
        "Properties": {
            "BucketEncryption": {"Rules": "AES256"},
            "PublicAccessBlockConfiguration": {"BlockPublicAcls": True},
        },
        "DeletionPolicy": "Retain",
    }
    weaker = {
        "Type": "AWS::S3::Bucket",
        "Properties": {"PublicAccessBlockConfiguration": {"BlockPublicAcls": False}},
    }
    old = StackTemplate("S", {"Resources": {"B": bucket}}, termination_protection=True)
    new = StackTemplate("S", {"Resources": {"B": weaker}}, termination_protection=False)
    findings = compare({"prod": {"S": old}}, {"prod": {"S": new}}).security
    assert sorted((f.category, f.message, f.weakens) for f in findings) == [
        ("encryption", 'BucketEncryption: - {"Rules": "AES256"}', True),
        ("public access", "PublicAccessBlockConfiguration: BlockPublicAcls: true -> false", True),
        ("removal policy", "DeletionPolicy: Retain -> Delete", True),
        ("retention", "termination protection turned off", True),
    ]


def test_findings_that_weaken_come_first() -> None:
    findings = compare_case("modify").security
    order = [f.weakens for f in findings]
    assert order == sorted(order, key=lambda w: {True: 0, None: 1, False: 2}[w])


def test_sqs_managed_sse_replaced_by_a_customer_managed_key_is_not_a_weakening() -> None:
    """The strict compliance profile moves every queue from SQS-managed SSE to the pipeline's key: the
    removed flag is not a weakening when a KMS key takes its place (and still is when nothing does)."""

    def queue(properties: dict[str, Any]) -> StackTemplate:
        return StackTemplate("S", {"Resources": {"Q": {"Type": "AWS::SQS::Queue", "Properties": properties}}})

    old = queue({"SqsManagedSseEnabled": True})
    to_kms = compare({"dev": {"S": old}}, {"dev": {"S": queue({"KmsMasterKeyId": "key-arn"})}}).security
    assert sorted((f.message, f.weakens) for f in to_kms) == [
        ('KmsMasterKeyId: + "key-arn"', False),
        ("SqsManagedSseEnabled: - true (SSE-KMS with KmsMasterKeyId takes its place)", None),
    ]
    (to_nothing,) = compare({"dev": {"S": old}}, {"dev": {"S": queue({})}}).security
    assert (to_nothing.message, to_nothing.weakens) == ("SqsManagedSseEnabled: - true", True)
