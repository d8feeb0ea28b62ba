"""How the local cloud combines the policies that apply to one request (no server): a role session's identity
policies (inline and managed) unioned with the target's resource policy, an explicit Deny anywhere winning,
permissions boundaries and session policies narrowing, service principals let in by resource policies only;
then the grants the project's CDK app synthesizes, decided for the calls its functions make."""

from __future__ import annotations

import json
from typing import Any

import pytest

from localcloud.services.iam.authorization import Caller, Check, NamedPolicy, Reason, authorize
from localcloud.services.iam.policy import Principal

ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/worker"
SESSION = f"arn:aws:sts::{ACCOUNT}:assumed-role/worker/pipeline-worker"
BUCKET = "arn:aws:s3:::data"
TLS = {"aws:SecureTransport": "true", "aws:PrincipalArn": ROLE, "aws:PrincipalAccount": ACCOUNT}
WORKER = Principal.session(SESSION, ROLE)


def document(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action: Any, resource: Any, **more: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **more}


def deny(action: Any, resource: Any, **more: Any) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **more}


def caller(*identity: dict[str, Any], **kwargs: Any) -> Caller:
    policies = tuple(NamedPolicy(f"policy {i}", document(s)) for i, s in enumerate(identity))
    return Caller(WORKER, policies, **kwargs)


def decide(
    who: Caller, action: str, resource: str, resource_policy: dict[str, Any] | None = None, **context: str
) -> Reason:
    named = NamedPolicy("bucket policy of data", resource_policy) if resource_policy else None
    return authorize(who, Check(action, resource), named, context={**TLS, **context}).reason


# -- identity policies ------------------------------------------------------------------------------------


def test_control_nothing_granted_is_denied_and_named_after_aws() -> None:
    # The evaluator can deny: a role with no policy may do nothing.
    verdict = authorize(caller(), Check("s3:PutObject", f"{BUCKET}/out/a"), None, context=TLS)
    assert verdict.reason is Reason.NO_IDENTITY_ALLOW
    assert verdict.message(WORKER) == (
        f"User: {SESSION} is not authorized to perform: s3:PutObject on resource: {BUCKET}/out/a "
        "because no identity-based policy allows the s3:PutObject action"
    )


def test_an_identity_allow_grants_exactly_its_action_and_resource() -> None:
    who = caller(allow("s3:GetObject", f"{BUCKET}/in/*"))
    assert decide(who, "s3:GetObject", f"{BUCKET}/in/a.jsonl") is Reason.ALLOWED
    assert decide(who, "s3:PutObject", f"{BUCKET}/in/a.jsonl") is Reason.NO_IDENTITY_ALLOW
    assert decide(who, "s3:GetObject", f"{BUCKET}/out/a.jsonl") is Reason.NO_IDENTITY_ALLOW
    # The action of a versioned read is another one.
    assert decide(who, "s3:GetObjectVersion", f"{BUCKET}/in/a.jsonl") is Reason.NO_IDENTITY_ALLOW


@pytest.mark.parametrize(
    ("pattern", "action", "expected"),
    [
        ("s3:*", "s3:PutObject", True),
        ("s3:Get*", "s3:GetObjectVersion", True),
        ("s3:get*", "s3:GetObject", True),  # actions are case-insensitive
        ("s3:Get?bject", "s3:GetObject", True),
        ("s3:Get*", "s3:PutObject", False),
        ("*", "dynamodb:UpdateItem", True),
    ],
)
def test_action_wildcards(pattern: str, action: str, expected: bool) -> None:
    assert (decide(caller(allow(pattern, "*")), action, f"{BUCKET}/k") is Reason.ALLOWED) is expected


@pytest.mark.parametrize(
    ("pattern", "resource", "expected"),
    [
        (
            "arn:aws:lambda:us-east-1:123456789012:function:worker:*",
            "arn:aws:lambda:us-east-1:123456789012:function:worker:7",
            True,
        ),
        # A grant on function:NAME:* does not cover the unqualified function, nor the other way round.
        (
            "arn:aws:lambda:us-east-1:123456789012:function:worker:*",
            "arn:aws:lambda:us-east-1:123456789012:function:worker",
            False,
        ),
        (
            "arn:aws:lambda:us-east-1:123456789012:function:worker",
            "arn:aws:lambda:us-east-1:123456789012:function:worker:7",
            False,
        ),
        (
            "arn:aws:dynamodb:*:*:table/jobs",
            "arn:aws:dynamodb:us-east-1:123456789012:table/jobs/index/by-status",
            False,
        ),
        (
            "arn:aws:dynamodb:*:*:table/jobs/index/*",
            "arn:aws:dynamodb:us-east-1:123456789012:table/jobs/index/by-status",
            True,
        ),
        ("arn:aws:s3:::Data/*", "arn:aws:s3:::data/k", False),  # resources are case-sensitive
    ],
)
def test_resource_arns_and_wildcards(pattern: str, resource: str, expected: bool) -> None:
    assert (decide(caller(allow("*", pattern)), "x:Y", resource) is Reason.ALLOWED) is expected


def test_not_action_and_not_resource() -> None:
    who = caller(
        {"Effect": "Allow", "NotAction": "s3:Delete*", "Resource": f"{BUCKET}/*"},
        {"Effect": "Allow", "Action": "sqs:SendMessage", "NotResource": "arn:aws:sqs:*:*:private-*"},
    )
    assert decide(who, "s3:PutObject", f"{BUCKET}/k") is Reason.ALLOWED
    assert decide(who, "s3:DeleteObject", f"{BUCKET}/k") is Reason.NO_IDENTITY_ALLOW
    assert decide(who, "sqs:SendMessage", f"arn:aws:sqs:us-east-1:{ACCOUNT}:jobs") is Reason.ALLOWED
    assert (
        decide(who, "sqs:SendMessage", f"arn:aws:sqs:us-east-1:{ACCOUNT}:private-jobs")
        is Reason.NO_IDENTITY_ALLOW
    )


def test_an_explicit_deny_in_any_identity_policy_wins() -> None:
    who = caller(allow("s3:*", "*"), deny("s3:PutObject", f"{BUCKET}/in/*"))
    verdict = authorize(who, Check("s3:PutObject", f"{BUCKET}/in/a"), None, context=TLS)
    assert verdict.reason is Reason.DENIED_BY_IDENTITY_POLICY
    assert verdict.decided_by == ("policy 1: statement #0",)
    assert verdict.message(WORKER).endswith("with an explicit deny in an identity-based policy")
    assert decide(who, "s3:PutObject", f"{BUCKET}/out/a") is Reason.ALLOWED


def test_conditions_this_projects_policies_use() -> None:
    # aws:SourceArn / aws:SourceAccount (service principals), aws:SecureTransport (TLS-only Denies).
    who = caller(
        allow(
            "sqs:SendMessage",
            "*",
            Condition={
                "StringEquals": {"aws:PrincipalAccount": ACCOUNT},
                "Bool": {"aws:SecureTransport": "true"},
            },
        )
    )
    assert decide(who, "sqs:SendMessage", "arn:aws:sqs:us-east-1:123456789012:q") is Reason.ALLOWED
    assert decide(
        who, "sqs:SendMessage", "arn:aws:sqs:us-east-1:123456789012:q", **{"aws:SecureTransport": "false"}
    ) is (Reason.NO_IDENTITY_ALLOW)


# -- the union with the resource policy -------------------------------------------------------------------

TLS_ONLY = {
    "Effect": "Deny",
    "Principal": {"AWS": "*"},
    "Action": "s3:*",
    "Resource": [BUCKET, f"{BUCKET}/*"],
    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
}


def test_cdks_tls_only_deny_is_satisfied_over_the_local_loopback() -> None:
    who = caller(allow("s3:PutObject", f"{BUCKET}/out/*"))
    bucket_policy = document(TLS_ONLY)
    assert decide(who, "s3:PutObject", f"{BUCKET}/out/a", bucket_policy) is Reason.ALLOWED
    # Control: the same request over plain HTTP is denied by the bucket policy.
    assert decide(
        who, "s3:PutObject", f"{BUCKET}/out/a", bucket_policy, **{"aws:SecureTransport": "false"}
    ) is (Reason.DENIED_BY_RESOURCE_POLICY)


@pytest.mark.parametrize(
    ("principal", "expected"),
    [
        ({"AWS": ROLE}, Reason.ALLOWED),  # the role: grants on its own, no identity Allow needed
        ({"AWS": SESSION}, Reason.ALLOWED),  # the session itself
        ("*", Reason.ALLOWED),  # everyone
        # The account only delegates to its IAM policies: without an identity Allow, nothing.
        ({"AWS": ACCOUNT}, Reason.NO_IDENTITY_ALLOW),
        ({"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, Reason.NO_IDENTITY_ALLOW),
        ({"AWS": f"arn:aws:iam::{ACCOUNT}:role/other"}, Reason.NO_IDENTITY_ALLOW),
    ],
)
def test_a_resource_policy_allow_is_unioned_with_the_identity_policies(
    principal: Any, expected: Reason
) -> None:
    bucket_policy = document(
        {"Effect": "Allow", "Principal": principal, "Action": "s3:PutObject", "Resource": f"{BUCKET}/*"}
    )
    assert decide(caller(), "s3:PutObject", f"{BUCKET}/shared/a", bucket_policy) is expected


def test_a_resource_policy_deny_wins_over_an_identity_allow() -> None:
    who = caller(allow("s3:GetObject", f"{BUCKET}/*"))
    bucket_policy = document(
        {
            "Sid": "NoSecrets",
            "Effect": "Deny",
            "Principal": {"AWS": ROLE},
            "Action": "s3:GetObject",
            "Resource": f"{BUCKET}/secret*",
        }
    )
    verdict = authorize(
        who,
        Check("s3:GetObject", f"{BUCKET}/secret.txt"),
        NamedPolicy("bucket policy of data", bucket_policy),
        context=TLS,
    )
    assert verdict.reason is Reason.DENIED_BY_RESOURCE_POLICY
    assert verdict.decided_by == ("bucket policy of data: statement NoSecrets",)
    assert decide(who, "s3:GetObject", f"{BUCKET}/public.txt", bucket_policy) is Reason.ALLOWED


# -- boundaries, session policies, service principals -----------------------------------------------------


def test_a_permissions_boundary_and_a_session_policy_narrow_the_role() -> None:
    boundary = NamedPolicy("boundary", document(allow("s3:*", f"{BUCKET}/*")))
    who = caller(allow("*", "*"), permissions_boundary=boundary)
    assert decide(who, "s3:GetObject", f"{BUCKET}/a") is Reason.ALLOWED
    assert decide(who, "sqs:SendMessage", "arn:aws:sqs:us-east-1:123456789012:q") is Reason.NO_BOUNDARY_ALLOW
    session = NamedPolicy("session policy", json.dumps(document(allow("s3:GetObject", "*"))))
    narrowed = caller(allow("*", "*"), session_policy=session)
    assert decide(narrowed, "s3:GetObject", f"{BUCKET}/a") is Reason.ALLOWED
    assert decide(narrowed, "s3:PutObject", f"{BUCKET}/a") is Reason.NO_SESSION_ALLOW


def test_a_service_principal_needs_the_resource_policy() -> None:
    events = Caller(Principal.service("events.amazonaws.com"))
    rule = f"arn:aws:events:us-east-1:{ACCOUNT}:rule/watchdog"
    queue_policy = document(
        TLS_ONLY | {"Action": "sqs:*", "Resource": "*"},
        {
            "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": "*",
            "Condition": {"ArnEquals": {"aws:SourceArn": rule}},
        },
    )
    named = NamedPolicy("queue policy of dlq", queue_policy)
    check = Check("sqs:SendMessage", f"arn:aws:sqs:us-east-1:{ACCOUNT}:dlq")
    context = {"aws:SecureTransport": "true", "aws:SourceArn": rule, "aws:SourceAccount": ACCOUNT}
    assert authorize(events, check, named, context=context).allowed
    other_rule = {**context, "aws:SourceArn": f"{rule}-2"}
    assert authorize(events, check, named, context=other_rule).reason is Reason.NO_RESOURCE_ALLOW
    assert authorize(events, check, None, context=context).reason is Reason.NO_RESOURCE_ALLOW
