"""cdk-nag is wired into every synth (a violation fails it), and deployer context reaches the stacks."""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_iam as iam

from app import build_app
from tests.infra.conftest import Synthesized, cdk_json_context, synthesize
from tests.infra.template_tools import resources


def test_a_nag_violation_fails_synth(tmp_path: Path) -> None:
    app = cdk.App(outdir=str(tmp_path), context={**cdk_json_context(), "env": "dev"})
    build_app(app)
    pipeline = next(
        s for s in app.node.children if isinstance(s, cdk.Stack) and s.stack_name.endswith("Pipeline")
    )
    role = iam.Role(pipeline, "Careless", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    role.add_to_policy(iam.PolicyStatement(actions=["s3:*"], resources=["*"]))
    with pytest.raises(RuntimeError, match=r"(?s)ValidationFailed.*AwsSolutions-IAM5\[Action::s3:\*\]"):
        app.synth()


def _subscriptions(synth: Synthesized) -> dict[str, str]:
    """Topic severity (from its display name) -> the e-mail subscribed to it."""
    topics = {
        logical_id: topic["Properties"]["DisplayName"].split()[2]
        for logical_id, topic in resources(synth.pipeline, "AWS::SNS::Topic").items()
    }
    found = {}
    for subscription in resources(synth.pipeline, "AWS::SNS::Subscription").values():
        properties = subscription["Properties"]
        assert properties["Protocol"] == "email"
        found[topics[properties["TopicArn"]["Ref"]]] = properties["Endpoint"]
    return found


def test_alarm_email_context_subscribes_both_severities(tmp_path: Path) -> None:
    synth = synthesize("dev", tmp_path, {"alarmEmail": "oncall@example.com"})
    assert _subscriptions(synth) == {"critical": "oncall@example.com", "warning": "oncall@example.com"}


def test_an_email_per_severity(tmp_path: Path) -> None:
    synth = synthesize(
        "prod", tmp_path, {"criticalEmail": "pager@example.com", "warningEmail": "team@example.com"}
    )
    assert _subscriptions(synth) == {"critical": "pager@example.com", "warning": "team@example.com"}
