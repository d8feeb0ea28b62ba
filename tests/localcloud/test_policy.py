"""The resource-policy evaluator (no server): AWS's decision rules, one at a time, then the topic policies
this project deploys (CDK's enforce_ssl Deny, with and without the Allow for CloudWatch) and SNS's
default topic policy as moto stores it."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from localcloud.services.iam import policy
from localcloud.services.iam.policy import Decision, Outcome, PolicyError, Principal, Request, evaluate
from tests.localcloud.support import cdk_topic_policy

REGION = "us-east-1"
ACCOUNT = "123456789012"
OTHER_ACCOUNT = "210987654321"
TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}:alarms"
ALARM = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:dlq-not-empty"
CLOUDWATCH = Principal.service("cloudwatch.amazonaws.com")


def cloudwatch_publish(**context: Any) -> Request:
    """CloudWatch publishing an alarm notification, as the alarm evaluator asks (overridable context)."""
    base: dict[str, Any] = {
        "aws:SourceAccount": ACCOUNT,
        "aws:SourceOwner": ACCOUNT,
        "aws:SourceArn": ALARM,
        "aws:SecureTransport": "true",
    }
    base.update(context)
    return Request(CLOUDWATCH, "sns:Publish", TOPIC, {k: v for k, v in base.items() if v is not None})


def statement(**fields: Any) -> dict[str, Any]:
    fields.setdefault("Effect", "Allow")
    fields.setdefault("Principal", "*")
    fields.setdefault("Action", "sns:Publish")
    fields.setdefault("Resource", TOPIC)
    return fields


def decide(*statements: dict[str, Any], request: Request | None = None) -> Decision:
    return evaluate({"Version": "2012-10-17", "Statement": list(statements)}, request or cloudwatch_publish())


def allowed(*statements: dict[str, Any], request: Request | None = None) -> bool:
    return decide(*statements, request=request).allowed


def resolve(value: Any) -> Any:
    """The CloudFormation intrinsics CDK leaves in a policy document, resolved for this account/region."""
    refs = {"Topic": TOPIC, "AWS::AccountId": ACCOUNT, "AWS::Region": REGION, "AWS::Partition": "aws"}
    if isinstance(value, list):
        return [resolve(v) for v in value]
    if isinstance(value, dict):
        if set(value) == {"Ref"}:
            return refs[value["Ref"]]
        if set(value) == {"Fn::Join"}:
            separator, parts = value["Fn::Join"]
            return separator.join(resolve(p) for p in parts)
        return {k: resolve(v) for k, v in value.items()}
    return value


# -- the policies this project deploys -------------------------------------------------------------------


def test_cdk_enforce_ssl_policy_denies_plain_http_and_allows_nothing() -> None:
    document = resolve(cdk_topic_policy(allow_cloudwatch=False))
    over_http = evaluate(document, cloudwatch_publish(**{"aws:SecureTransport": "false"}))
    assert over_http.outcome is Outcome.EXPLICIT_DENY
    assert over_http.statements == ("AllowPublishThroughSSLOnly",)
    assert over_http.reason == "explicitly denied by statement AllowPublishThroughSSLOnly"
    # Over TLS the Deny does not apply, and nothing allows: a TopicPolicy replaces the default policy.
    over_tls = evaluate(document, cloudwatch_publish())
    assert over_tls.outcome is Outcome.IMPLICIT_DENY
    assert over_tls.reason == "no statement allows it (implicit deny)"
    # Not even the topic's own account gets through.
    owner = Request(
        Principal.aws(f"arn:aws:iam::{ACCOUNT}:role/ops"),
        "sns:Publish",
        TOPIC,
        {"aws:SecureTransport": "true"},
    )
    assert evaluate(document, owner).outcome is Outcome.IMPLICIT_DENY


def test_cdk_policy_with_the_cloudwatch_allow() -> None:
    document = resolve(cdk_topic_policy(allow_cloudwatch=True))
    decision = evaluate(document, cloudwatch_publish())
    assert decision.allowed
    assert decision.statements == ("AllowCloudWatchAlarms",)
    # The Deny still wins over plain HTTP.
    assert evaluate(document, cloudwatch_publish(**{"aws:SecureTransport": "false"})).outcome is (
        Outcome.EXPLICIT_DENY
    )
    # An alarm of another account, or something that is not an alarm, is not allowed.
    other = f"arn:aws:cloudwatch:{REGION}:{OTHER_ACCOUNT}:alarm:theirs"
    assert not evaluate(
        document, cloudwatch_publish(**{"aws:SourceAccount": OTHER_ACCOUNT, "aws:SourceArn": other})
    ).allowed
    assert not evaluate(
        document, cloudwatch_publish(**{"aws:SourceArn": f"arn:aws:events:{REGION}:{ACCOUNT}:rule/r"})
    ).allowed
    assert not evaluate(document, cloudwatch_publish(**{"aws:SourceArn": None})).allowed
    # Another service, same account: no.
    events = Request(
        Principal.service("events.amazonaws.com"), "sns:Publish", TOPIC, cloudwatch_publish().context
    )
    assert not evaluate(document, events).allowed


def moto_default_topic_policy(account: str = ACCOUNT) -> dict[str, Any]:
    """What moto 5.2.5 stores on a new topic (moto/sns/models.py, Topic._create_default_topic_policy)."""
    from moto.sns.models import Topic, sns_backends

    topic = Topic("alarms", sns_backends[account][REGION])
    return dict(json.loads(topic.policy))


def test_sns_default_policy_lets_same_account_alarms_publish() -> None:
    document = moto_default_topic_policy()
    assert document["Statement"][0]["Condition"] == {"StringEquals": {"AWS:SourceOwner": ACCOUNT}}
    assert evaluate(document, cloudwatch_publish()).allowed
    assert evaluate(json.dumps(document), cloudwatch_publish()).allowed  # as GetTopicAttributes gives it
    # An alarm of another account publishes on its own account's behalf: not allowed by the default.
    assert not evaluate(
        document, cloudwatch_publish(**{"aws:SourceOwner": OTHER_ACCOUNT, "aws:SourceAccount": OTHER_ACCOUNT})
    ).allowed


# -- effect -----------------------------------------------------------------------------------------------


def test_no_statement_is_an_implicit_deny_and_deny_beats_allow() -> None:
    assert decide().outcome is Outcome.IMPLICIT_DENY
    assert allowed(statement(Sid="A"))
    both = decide(statement(Sid="A"), statement(Sid="D", Effect="Deny"))
    assert (both.outcome, both.statements) == (Outcome.EXPLICIT_DENY, ("D",))
    unnamed = decide(statement(), statement(Effect="Deny"))
    assert unnamed.reason == "explicitly denied by statement #1"


def test_a_single_statement_object_is_a_statement_list() -> None:
    assert evaluate({"Statement": statement()}, cloudwatch_publish()).allowed


@pytest.mark.parametrize(
    "document",
    ["not json", "{}", {"Statement": [statement(Effect="allow")]}, {"Statement": [{"Effect": "Allow"}]}],
)
def test_malformed_policies_are_errors(document: Any) -> None:
    with pytest.raises(PolicyError):
        evaluate(document, cloudwatch_publish())


# -- principal --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("principal", "expected"),
    [
        ("*", True),
        ({"AWS": "*"}, True),
        ({"Service": "cloudwatch.amazonaws.com"}, True),
        ({"Service": ["events.amazonaws.com", "cloudwatch.amazonaws.com"]}, True),
        ({"Service": "events.amazonaws.com"}, False),
        ({"AWS": ACCOUNT}, False),
        ({"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, False),
    ],
)
def test_principal_of_a_service_request(principal: Any, expected: bool) -> None:
    assert allowed(statement(Principal=principal)) is expected


@pytest.mark.parametrize(
    ("principal", "expected"),
    [
        ({"AWS": ACCOUNT}, True),
        ({"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, True),
        ({"AWS": [f"arn:aws:iam::{OTHER_ACCOUNT}:root", f"arn:aws:iam::{ACCOUNT}:role/ops"]}, True),
        ({"AWS": f"arn:aws:iam::{ACCOUNT}:role/other"}, False),
        ({"AWS": OTHER_ACCOUNT}, False),
        ({"Service": "cloudwatch.amazonaws.com"}, False),
    ],
)
def test_principal_of_an_iam_request(principal: Any, expected: bool) -> None:
    request = Request(Principal.aws(f"arn:aws:iam::{ACCOUNT}:role/ops"), "sns:Publish", TOPIC)
    assert allowed(statement(Principal=principal), request=request) is expected


def test_not_principal() -> None:
    others = statement(Effect="Deny", NotPrincipal={"Service": "cloudwatch.amazonaws.com"})
    del others["Principal"]
    assert allowed(statement(), others)
    events = Request(Principal.service("events.amazonaws.com"), "sns:Publish", TOPIC)
    assert decide(statement(), others, request=events).outcome is Outcome.EXPLICIT_DENY


# -- action and resource ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ("sns:Publish", True),
        ("SNS:Publish", True),
        ("sns:publish", True),
        (["sns:Subscribe", "SNS:Publish"], True),
        ("sns:*", True),
        ("*", True),
        ("sns:Pub*", True),
        ("sns:Publis?", True),
        ("sns:Publish?", False),
        ("sns:Subscribe", False),
        ("sqs:Publish", False),
    ],
)
def test_action_wildcards_are_case_insensitive(action: Any, expected: bool) -> None:
    assert allowed(statement(Action=action)) is expected


def test_not_action() -> None:
    rule = statement(NotAction=["sns:Subscribe", "sns:Delete*"])
    del rule["Action"]
    assert allowed(rule)
    rule["NotAction"] = "SNS:Pub*"
    assert not allowed(rule)


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        (TOPIC, True),
        ("*", True),
        (f"arn:aws:sns:*:{ACCOUNT}:*", True),
        (f"arn:aws:sns:{REGION}:{ACCOUNT}:alarm?", True),
        (f"arn:aws:sns:{REGION}:{ACCOUNT}:ALARMS", False),
        (f"arn:aws:sns:{REGION}:{ACCOUNT}:other", False),
        ([f"arn:aws:sns:{REGION}:{ACCOUNT}:other", TOPIC], True),
    ],
)
def test_resource_wildcards_are_case_sensitive(resource: Any, expected: bool) -> None:
    assert allowed(statement(Resource=resource)) is expected


def test_not_resource_and_no_resource() -> None:
    rule = statement(NotResource=f"arn:aws:sns:{REGION}:{ACCOUNT}:other")
    del rule["Resource"]
    assert allowed(rule)
    rule["NotResource"] = "arn:aws:sns:*"
    assert not allowed(rule)
    del rule["NotResource"]
    assert allowed(rule)  # the resource the policy is attached to


# -- conditions ------------------------------------------------------------------------------------------


def when(condition: dict[str, Any], effect: str = "Allow", **context: Any) -> bool:
    """Whether a statement with this condition applies to CloudWatch's request (with `context` changes)."""
    decision = decide(statement(Effect=effect, Condition=condition), request=cloudwatch_publish(**context))
    return decision.outcome is (Outcome.ALLOWED if effect == "Allow" else Outcome.EXPLICIT_DENY)


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"StringEquals": {"aws:SourceAccount": ACCOUNT}}, True),
        ({"StringEquals": {"AWS:SOURCEACCOUNT": ACCOUNT}}, True),  # keys are case-insensitive
        ({"StringEquals": {"aws:SourceAccount": [OTHER_ACCOUNT, ACCOUNT]}}, True),  # values: OR
        ({"StringEquals": {"aws:SourceAccount": OTHER_ACCOUNT}}, False),
        ({"StringNotEquals": {"aws:SourceAccount": OTHER_ACCOUNT}}, True),
        ({"StringNotEquals": {"aws:SourceAccount": [OTHER_ACCOUNT, ACCOUNT]}}, False),  # negated: NOR
        ({"StringEquals": {"aws:SourceArn": ALARM.upper()}}, False),
        ({"StringEqualsIgnoreCase": {"aws:SourceArn": ALARM.upper()}}, True),
        ({"StringNotEqualsIgnoreCase": {"aws:SourceArn": ALARM.upper()}}, False),
        ({"StringLike": {"aws:SourceArn": "arn:aws:cloudwatch:*:alarm:dlq-*"}}, True),
        ({"StringLike": {"aws:SourceArn": "arn:aws:cloudwatch:*:alarm:DLQ-*"}}, False),
        ({"StringNotLike": {"aws:SourceArn": "*:alarm:other-*"}}, True),
        ({"StringNotLike": {"aws:SourceArn": ["*:alarm:other-*", "*:alarm:dlq-*"]}}, False),
        ({"ArnLike": {"aws:SourceArn": f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:*"}}, True),
        ({"ArnLike": {"aws:SourceArn": f"arn:aws:cloudwatch:{REGION}:{OTHER_ACCOUNT}:alarm:*"}}, False),
        ({"ArnLike": {"aws:SourceArn": "arn:aws:cloudwatch:*:*:alarm:*"}}, True),
        # ARN components are matched separately: a wildcard does not run across a colon.
        ({"ArnLike": {"aws:SourceArn": f"arn:aws:*:{ACCOUNT}:alarm:*"}}, False),
        ({"StringLike": {"aws:SourceArn": f"arn:aws:*:{ACCOUNT}:alarm:*"}}, True),
        ({"ArnEquals": {"aws:SourceArn": ALARM}}, True),
        ({"ArnNotEquals": {"aws:SourceArn": ALARM}}, False),
        ({"ArnNotLike": {"aws:SourceArn": "arn:aws:events:*:*:*"}}, True),
        ({"Bool": {"aws:SecureTransport": "true"}}, True),
        ({"Bool": {"aws:SecureTransport": True}}, True),  # a JSON boolean reads as "true"
        ({"Bool": {"aws:SecureTransport": "False"}}, False),
        # Several keys under one operator, and several operators: AND.
        ({"StringEquals": {"aws:SourceAccount": ACCOUNT, "aws:SourceOwner": OTHER_ACCOUNT}}, False),
        (
            {
                "StringEquals": {"aws:SourceAccount": ACCOUNT},
                "ArnLike": {"aws:SourceArn": f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:*"},
            },
            True,
        ),
        (
            {
                "StringEquals": {"aws:SourceAccount": ACCOUNT},
                "ArnLike": {"aws:SourceArn": f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:x*"},
            },
            False,
        ),
    ],
)
def test_condition_operators(condition: dict[str, Any], expected: bool) -> None:
    assert when(condition) is expected


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"StringEquals": {"aws:PrincipalOrgID": "o-1"}}, False),
        ({"StringNotEquals": {"aws:PrincipalOrgID": "o-1"}}, True),  # negated: a missing key is true
        ({"ArnNotLike": {"aws:SourceVpce": "*"}}, True),
        ({"StringEqualsIfExists": {"aws:PrincipalOrgID": "o-1"}}, True),
        ({"StringEqualsIfExists": {"aws:SourceAccount": OTHER_ACCOUNT}}, False),  # present: checked
        ({"BoolIfExists": {"aws:MultiFactorAuthPresent": "true"}}, True),
        ({"Null": {"aws:PrincipalOrgID": "true"}}, True),
        ({"Null": {"aws:PrincipalOrgID": "false"}}, False),
        ({"Null": {"aws:SourceArn": "false"}}, True),
        ({"Null": {"aws:SourceArn": True}}, False),
    ],
)
def test_missing_keys(condition: dict[str, Any], expected: bool) -> None:
    assert when(condition) is expected


def test_the_tls_deny_ignores_requests_without_the_key() -> None:
    deny = {"Bool": {"aws:SecureTransport": "false"}}
    assert when(deny, effect="Deny", **{"aws:SecureTransport": "false"})
    assert not when(deny, effect="Deny")
    assert not when(deny, effect="Deny", **{"aws:SecureTransport": None})


@pytest.mark.parametrize(
    ("condition", "value", "expected"),
    [
        ({"NumericEquals": {"k": "10"}}, "10", True),
        ({"NumericEquals": {"k": 10}}, "10.0", True),
        ({"NumericNotEquals": {"k": "10"}}, "11", True),
        ({"NumericLessThan": {"k": "10"}}, "9", True),
        ({"NumericLessThan": {"k": "10"}}, "10", False),
        ({"NumericLessThanEquals": {"k": "10"}}, "10", True),
        ({"NumericGreaterThan": {"k": "10"}}, "11", True),
        ({"NumericGreaterThanEquals": {"k": "10"}}, "9", False),
        ({"NumericEquals": {"k": "10"}}, "ten", False),
        ({"DateLessThan": {"k": "2030-01-01T00:00:00Z"}}, "2026-11-22T15:04:05Z", True),
        ({"DateGreaterThan": {"k": "2030-01-01T00:00:00Z"}}, "2026-11-22T15:04:05Z", False),
        ({"DateEquals": {"k": "1700000000"}}, "2023-11-14T22:13:20Z", True),
        ({"IpAddress": {"k": "10.0.0.0/8"}}, "10.1.2.3", True),
        ({"NotIpAddress": {"k": "10.0.0.0/8"}}, "10.1.2.3", False),
        ({"IpAddress": {"k": "10.0.0.0/8"}}, "192.168.0.1", False),
        ({"BinaryEquals": {"k": "QmluYXJ5"}}, "QmluYXJ5", True),
    ],
)
def test_numeric_date_ip_and_binary_operators(condition: dict[str, Any], value: str, expected: bool) -> None:
    assert when(condition, k=value) is expected


@pytest.mark.parametrize(
    ("condition", "tags", "expected"),
    [
        ({"ForAnyValue:StringEquals": {"aws:TagKeys": ["team", "cost"]}}, ["env", "team"], True),
        ({"ForAnyValue:StringEquals": {"aws:TagKeys": ["team", "cost"]}}, ["env"], False),
        ({"ForAnyValue:StringEquals": {"aws:TagKeys": ["team"]}}, None, False),
        ({"ForAllValues:StringEquals": {"aws:TagKeys": ["team", "cost"]}}, ["team", "cost"], True),
        ({"ForAllValues:StringEquals": {"aws:TagKeys": ["team", "cost"]}}, ["team", "env"], False),
        ({"ForAllValues:StringEquals": {"aws:TagKeys": ["team"]}}, None, True),  # no values: true
        ({"ForAllValues:StringLike": {"aws:TagKeys": ["t*"]}}, ["team", "tier"], True),
        ({"ForAnyValue:StringNotEquals": {"aws:TagKeys": ["team"]}}, ["team", "env"], True),
        ({"StringEquals": {"aws:TagKeys": "env"}}, ["team", "env"], True),  # plain: any value
    ],
)
def test_set_operators_on_multi_valued_keys(condition: dict[str, Any], tags: Any, expected: bool) -> None:
    assert when(condition, **{"aws:TagKeys": tags}) is expected


def test_an_unknown_operator_never_allows_and_always_denies(caplog: pytest.LogCaptureFixture) -> None:
    policy._reported_operators.discard("StringMatchesRegex")
    unknown = {"StringMatchesRegex": {"aws:SourceAccount": ".*"}}
    with caplog.at_level(logging.WARNING, logger="localcloud.services.iam.policy"):
        decision = decide(statement(Sid="Odd", Condition=unknown))
        assert decision.outcome is Outcome.IMPLICIT_DENY
        assert decision.unsupported == ("Odd",)
        assert "unsupported condition operators in Odd" in decision.reason
        denied = decide(statement(Sid="A"), statement(Sid="OddDeny", Effect="Deny", Condition=unknown))
        assert denied.outcome is Outcome.EXPLICIT_DENY
    warnings = [r for r in caplog.records if "StringMatchesRegex" in r.getMessage()]
    assert len(warnings) == 1  # logged once
    # A condition that is definitely false still decides, unknown operator or not.
    both = {**unknown, "StringEquals": {"aws:SourceAccount": OTHER_ACCOUNT}}
    assert decide(statement(Sid="A"), statement(Effect="Deny", Condition=both)).allowed


def test_a_role_session_is_named_by_its_session_arn_or_its_roles_arn() -> None:
    session = Principal.session(
        f"arn:aws:sts::{ACCOUNT}:assumed-role/worker/fn", f"arn:aws:iam::{ACCOUNT}:role/worker"
    )
    request = Request(session, "sns:Publish", TOPIC)
    assert allowed(statement(Principal={"AWS": f"arn:aws:iam::{ACCOUNT}:role/worker"}), request=request)
    assert allowed(
        statement(Principal={"AWS": f"arn:aws:sts::{ACCOUNT}:assumed-role/worker/fn"}), request=request
    )
    assert not allowed(statement(Principal={"AWS": f"arn:aws:iam::{ACCOUNT}:role/other"}), request=request)
    # Through its account it matches too, but such an Allow only delegates to the account's IAM policies.
    through_account = decide(statement(Sid="Account", Principal={"AWS": ACCOUNT}), request=request)
    assert through_account.allowed and not through_account.grants_alone
    assert through_account.through_account == ("Account",)
    assert decide(
        statement(Principal={"AWS": f"arn:aws:iam::{ACCOUNT}:role/worker"}), request=request
    ).grants_alone
    assert decide(statement(Principal="*"), request=request).grants_alone
