"""cdk-nag is wired into every synth (a violation fails it), and deployer context reaches the stacks."""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_iam as iam

from app import build_app
from tests.infra.conftest import cdk_json_context, synthesize
from tests.infra.template_tools import only


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


def test_alarm_email_context_adds_a_subscription(tmp_path: Path) -> None:
    synth = synthesize("dev", tmp_path, {"alarmEmail": "oncall@example.com"})
    subscription = only(synth.pipeline, "AWS::SNS::Subscription")["Properties"]
    assert subscription["Protocol"] == "email"
    assert subscription["Endpoint"] == "oncall@example.com"
