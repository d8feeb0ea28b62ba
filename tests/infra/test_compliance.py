"""The `strict` compliance profile (docs/compliance.md), per environment: every control in the
synthesized templates, the three packs wired into synth (and failing when a control is taken away), and the
default profile left as it was."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns

import stacks.nag
from app import build_app
from stacks import rules
from stacks.config import (
    ComplianceConfig,
    ConfigError,
    FunctionReservations,
    GivenVpc,
    load_config,
    with_overrides,
)
from stacks.constructs.function_network import INTERFACE_ENDPOINTS
from stacks.constructs.pipeline_key import KEY_ADMIN_ACTIONS, KEY_USE_ACTIONS
from tests.infra.conftest import Synthesized, cdk_json_context, synthesize
from tests.infra.template_tools import key_import, only, render, resources

STRICT = {"compliance": "strict"}


def _key_ref(value: Any, synth: Synthesized, *, stack: str) -> bool:
    """`value` names the pipeline key: the import in the pipeline stack, the key itself in the stateful one."""
    if stack == "pipeline":
        return render(value) == key_import(synth.env)
    (key_id,) = resources(synth.stateful, "AWS::KMS::Key")
    return render(value) in (f"<{key_id}>", f"<{key_id}.Arn>")


def _functions(synth: Synthesized) -> dict[str, dict[str, Any]]:
    return {k: f["Properties"] for k, f in resources(synth.pipeline, "AWS::Lambda::Function").items()}


# --- the key and what it encrypts -------------------------------------------------------------------


def test_one_customer_managed_key_with_rotation(strict_synth: Synthesized) -> None:
    key = only(strict_synth.stateful, "AWS::KMS::Key")
    assert key["Properties"]["EnableKeyRotation"] is True
    assert key["DeletionPolicy"] == ("Retain" if strict_synth.config.protect_stateful else "Delete")
    assert not resources(strict_synth.pipeline, "AWS::KMS::Key"), "one owner: the stateful stack"
    export = strict_synth.stateful["Outputs"]["KeyArn"]["Export"]["Name"]
    assert export == f"ResilientPipeline-{strict_synth.env}-Stateful-KeyArn"


def _statements(synth: Synthesized) -> dict[str, dict[str, Any]]:
    policy = only(synth.stateful, "AWS::KMS::Key")["Properties"]["KeyPolicy"]
    return {s["Sid"]: s for s in policy["Statement"]}


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_key_policy_lets_the_account_administer_but_not_use_the_key(strict_synth: Synthesized) -> None:
    statements = _statements(strict_synth)
    for statement in statements.values():
        assert statement["Effect"] == "Allow"
        assert "kms:*" not in _listed(statement["Action"])
        account_wide = render(statement["Principal"].get("AWS", "")).endswith(":root")
        if account_wide and statement["Sid"] != "AdministerTheKey":
            assert statement.get("Condition"), f"{statement['Sid']}: account-wide use needs a condition"
    admin = statements["AdministerTheKey"]
    assert set(_listed(admin["Action"])) == set(KEY_ADMIN_ACTIONS)
    assert not set(KEY_USE_ACTIONS) - {"kms:DescribeKey"} & set(_listed(admin["Action"]))


def test_key_policy_scopes_use_to_the_pipeline_roles_and_services(strict_synth: Synthesized) -> None:
    env = strict_synth.env
    statements = _statements(strict_synth)
    roles = statements["PipelineRolesUseTheKey"]
    assert set(_listed(roles["Action"])) == set(KEY_USE_ACTIONS)
    assert render(roles["Condition"]["ArnLike"]["aws:PrincipalArn"]).endswith(
        f":role/resilient-pipeline/{env}/*"
    )
    logs_statement = statements["CloudWatchLogsForThePipelineLogGroups"]
    context = logs_statement["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]
    assert render(context).endswith(f":log-group:/resilient-pipeline/{env}/*")
    assert statements["CloudWatchAlarmsPublishToTheTopics"]["Principal"] == {
        "Service": "cloudwatch.amazonaws.com"
    }
    events = statements["EventBridgeDeliversToTheDeadLetterQueues"]
    assert events["Principal"] == {"Service": "events.amazonaws.com"}
    assert "aws:SourceAccount" in events["Condition"]["StringEquals"]
    grants = statements["ServicesCreateTheirGrants"]
    assert _listed(grants["Action"]) == ["kms:CreateGrant"]
    assert grants["Condition"]["Bool"] == {"kms:GrantIsForAWSResource": "true"}
    assert {render(s).split(".")[0] for s in grants["Condition"]["StringEquals"]["kms:ViaService"]} == {
        "lambda",
        "dynamodb",
        "backup",
    }
    environments = statements["FunctionEnvironmentsThroughLambda"]
    assert set(_listed(environments["Action"])) == {"kms:Encrypt", "kms:Decrypt"}
    assert render(environments["Condition"]["StringEquals"]["kms:ViaService"]).startswith("lambda.")
    # Account-wide use of the data (GenerateDataKey: writing; Decrypt outside Lambda) only by path or key_users.
    for sid, statement in statements.items():
        if "kms:GenerateDataKey" in _listed(statement["Action"]) and "AWS" in statement["Principal"]:
            assert "aws:PrincipalArn" in statement["Condition"]["ArnLike"], sid
    # No key_users in the shipped configs: only the pipeline's roles and the services use the key.
    assert "ProducersAndOperatorsUseTheKeyThroughTheData" not in statements


def test_table_and_data_bucket_are_encrypted_with_the_key(strict_synth: Synthesized) -> None:
    table = only(strict_synth.stateful, "AWS::DynamoDB::Table")["Properties"]["SSESpecification"]
    assert table["SSEEnabled"] is True
    assert table["SSEType"] == "KMS"
    assert _key_ref(table["KMSMasterKeyId"], strict_synth, stack="stateful")
    (bucket,) = [
        b["Properties"]
        for k, b in resources(strict_synth.stateful, "AWS::S3::Bucket").items()
        if k.startswith("DataBucket")
    ]
    (rule,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert _key_ref(rule["ServerSideEncryptionByDefault"]["KMSMasterKeyID"], strict_synth, stack="stateful")


def test_every_queue_topic_and_log_group_is_encrypted_with_the_key(strict_synth: Synthesized) -> None:
    queues = resources(strict_synth.pipeline, "AWS::SQS::Queue")
    topics = resources(strict_synth.pipeline, "AWS::SNS::Topic")
    log_groups = resources(strict_synth.pipeline, "AWS::Logs::LogGroup")
    assert (len(queues), len(topics), len(log_groups)) == (4, 2, 6)
    for logical_id, queue in queues.items():
        assert _key_ref(queue["Properties"]["KmsMasterKeyId"], strict_synth, stack="pipeline"), logical_id
    for logical_id, topic in topics.items():
        assert _key_ref(topic["Properties"]["KmsMasterKeyId"], strict_synth, stack="pipeline"), logical_id
    for logical_id, group in log_groups.items():
        assert _key_ref(group["Properties"]["KmsKeyId"], strict_synth, stack="pipeline"), logical_id
        # The name the key policy's encryption-context condition allows.
        assert group["Properties"]["LogGroupName"].startswith(f"/resilient-pipeline/{strict_synth.env}/")
    assert not resources(strict_synth.stateful, "AWS::Logs::LogGroup")
    assert not resources(strict_synth.stateful, "AWS::SQS::Queue")
    assert not resources(strict_synth.stateful, "AWS::SNS::Topic")


def test_function_environments_are_encrypted_with_the_key(strict_synth: Synthesized) -> None:
    for logical_id, function in _functions(strict_synth).items():
        assert _key_ref(function["KmsKeyArn"], strict_synth, stack="pipeline"), logical_id


# --- functions: network, concurrency, dead-letter queues --------------------------------------------


def test_every_function_runs_in_the_vpc_subnets_with_its_security_group(strict_synth: Synthesized) -> None:
    subnets = {f"<{k}>" for k in resources(strict_synth.pipeline, "AWS::EC2::Subnet")}
    (group,) = [
        k
        for k in resources(strict_synth.pipeline, "AWS::EC2::SecurityGroup")
        if k.startswith("NetworkFunctions")
    ]
    assert len(subnets) == 2
    for logical_id, function in _functions(strict_synth).items():
        config = function["VpcConfig"]
        assert {render(s) for s in config["SubnetIds"]} == subnets, logical_id
        assert [render(g) for g in config["SecurityGroupIds"]] == [f"<{group}.GroupId>"], logical_id


def test_network_interface_writes_name_their_resources(strict_synth: Synthesized) -> None:
    """Only EC2's Describe actions are on `*` (they take no resource); creating an interface names the
    functions' subnets and security group, and the others are limited to interfaces (checkov CKV_AWS_111)."""
    subnets = {f"<{k}>" for k in resources(strict_synth.pipeline, "AWS::EC2::Subnet")}
    for logical_id, policy in resources(strict_synth.pipeline, "AWS::IAM::ManagedPolicy").items():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = _listed(statement["Action"])
            targets = [render(r) for r in _listed(statement["Resource"])]
            ec2_writes = [a for a in actions if a.startswith("ec2:") and not a.startswith("ec2:Describe")]
            if not ec2_writes:
                continue
            assert "*" not in targets, logical_id
            assert all(
                ":network-interface/*" in t or ":subnet/" in t or ":security-group/" in t for t in targets
            )
            if "ec2:CreateNetworkInterface" in actions:
                assert {t.rsplit("/", 1)[-1] for t in targets if ":subnet/" in t} == subnets, logical_id


def test_the_vpc_reaches_aws_without_nat_or_internet(strict_synth: Synthesized) -> None:
    template = strict_synth.pipeline
    for forbidden in ("AWS::EC2::InternetGateway", "AWS::EC2::NatGateway", "AWS::EC2::EIP"):
        assert not resources(template, forbidden), forbidden
    for route in resources(template, "AWS::EC2::Route").values():
        assert "GatewayId" not in route["Properties"] and "NatGatewayId" not in route["Properties"]
    for subnet in resources(template, "AWS::EC2::Subnet").values():
        assert subnet["Properties"]["MapPublicIpOnLaunch"] is False
        # Zones chosen at deploy, never looked up at synth (offline, no credentials).
        assert "Fn::GetAZs" in str(subnet["Properties"]["AvailabilityZone"])
    endpoints = [e["Properties"] for e in resources(template, "AWS::EC2::VPCEndpoint").values()]
    gateways = {render(e["ServiceName"]).rsplit(".", 1)[-1] for e in endpoints if "RouteTableIds" in e}
    interfaces = {render(e["ServiceName"]).rsplit(".", 1)[-1] for e in endpoints if "SubnetIds" in e}
    assert gateways == {"s3", "dynamodb"}
    assert interfaces == {"sqs", "states", "events", "logs", "monitoring", "xray", "kms"}
    assert len(interfaces) == len(INTERFACE_ENDPOINTS)
    assert all(e.get("PrivateDnsEnabled") is True for e in endpoints if "SubnetIds" in e)


def test_security_groups_allow_https_only(strict_synth: Synthesized) -> None:
    groups = resources(strict_synth.pipeline, "AWS::EC2::SecurityGroup")
    functions = next(g["Properties"] for k, g in groups.items() if k.startswith("NetworkFunctions"))
    assert [(r["IpProtocol"], r["FromPort"], r["ToPort"]) for r in functions["SecurityGroupEgress"]] == [
        ("tcp", 443, 443)
    ]
    assert "SecurityGroupIngress" not in functions
    (ingress,) = resources(strict_synth.pipeline, "AWS::EC2::SecurityGroupIngress").values()
    assert (ingress["Properties"]["FromPort"], ingress["Properties"]["ToPort"]) == (443, 443)
    assert render(ingress["Properties"]["SourceSecurityGroupId"]).startswith("<NetworkFunctions")


def test_vpc_flow_logs_go_to_an_encrypted_log_group(strict_synth: Synthesized) -> None:
    flow_log = only(strict_synth.pipeline, "AWS::EC2::FlowLog")["Properties"]
    assert flow_log["TrafficType"] == "ALL"
    assert flow_log["ResourceType"] == "VPC"
    group = strict_synth.pipeline["Resources"][flow_log["LogGroupName"]["Ref"]]["Properties"]
    assert group["LogGroupName"] == f"/resilient-pipeline/{strict_synth.env}/vpc-flow-logs"


def test_every_function_reserves_concurrency_within_the_account(strict_synth: Synthesized) -> None:
    reserved = [f["ReservedConcurrentExecutions"] for f in _functions(strict_synth).values()]
    assert len(reserved) == 4
    assert all(r >= 1 for r in reserved)
    available = strict_synth.config.compliance.account_concurrency
    assert sum(reserved) + rules.UNRESERVED_CONCURRENCY_MINIMUM <= available


def test_the_failures_function_has_a_dead_letter_queue_for_its_async_invocations(
    strict_synth: Synthesized,
) -> None:
    """The only function invoked asynchronously (by the watchdog rule): a DLQ as well as its OnFailure
    destination. The others are invoked synchronously only (acknowledged in stacks/nag.py)."""
    functions = {f["Handler"]: f for f in _functions(strict_synth).values()}
    (queue,) = [
        k for k in resources(strict_synth.pipeline, "AWS::SQS::Queue") if k.startswith("WatchdogDeadLetters")
    ]
    target = functions["handlers.failures.handler"]["DeadLetterConfig"]["TargetArn"]
    assert render(target) == f"<{queue}.Arn>"
    for handler in ("handlers.ingest.handler", "handlers.worker.handler", "handlers.events.handler"):
        assert "DeadLetterConfig" not in functions[handler]
    (invoke_config,) = resources(strict_synth.pipeline, "AWS::Lambda::EventInvokeConfig").values()
    destination = invoke_config["Properties"]["DestinationConfig"]["OnFailure"]["Destination"]
    assert render(destination) == f"<{queue}.Arn>"


def test_service_roles_keep_their_confused_deputy_conditions(strict_synth: Synthesized) -> None:
    """The state machine's role is the profile's under strict: it keeps the conditions CDK puts on its own."""
    trusts = {
        statement["Principal"]["Service"]: statement.get("Condition", {})
        for role in resources(strict_synth.pipeline, "AWS::IAM::Role").values()
        for statement in role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    }
    for service in ("states.amazonaws.com", "vpc-flow-logs.amazonaws.com"):
        assert set(trusts[service]) == {"StringEquals", "ArnLike"}, service
        assert "aws:SourceAccount" in trusts[service]["StringEquals"]


# --- stateful: access logs and backups -------------------------------------------------------------


def test_data_bucket_access_logs_go_to_their_own_sse_s3_bucket(strict_synth: Synthesized) -> None:
    buckets = resources(strict_synth.stateful, "AWS::S3::Bucket")
    data = next(b["Properties"] for k, b in buckets.items() if k.startswith("DataBucket"))
    (log_id,) = [k for k in buckets if k.startswith("AccessLogs")]
    assert data["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": log_id}
    log_bucket = buckets[log_id]["Properties"]
    (rule,) = log_bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    assert log_bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert log_bucket["PublicAccessBlockConfiguration"]["BlockPublicPolicy"] is True
    expiry = log_bucket["LifecycleConfiguration"]["Rules"][0]["ExpirationInDays"]
    assert expiry == strict_synth.config.compliance.access_log_retention_days
    # S3's logging service may write it, for the data bucket of this account only.
    policy = next(
        p["Properties"]["PolicyDocument"]
        for p in resources(strict_synth.stateful, "AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": log_id}
    )
    (allow,) = [s for s in policy["Statement"] if s["Effect"] == "Allow"]
    assert allow["Principal"] == {"Service": "logging.s3.amazonaws.com"}
    assert set(allow["Condition"]) == {"ArnLike", "StringEquals"}


def test_the_job_table_is_in_a_backup_plan(strict_synth: Synthesized) -> None:
    template = strict_synth.stateful
    vault = only(template, "AWS::Backup::BackupVault")["Properties"]
    assert _key_ref(vault["EncryptionKeyArn"], strict_synth, stack="stateful")
    plan = only(template, "AWS::Backup::BackupPlan")["Properties"]["BackupPlan"]
    (rule,) = plan["BackupPlanRule"]
    assert rule["Lifecycle"]["DeleteAfterDays"] == strict_synth.config.compliance.backup_retention_days
    assert rule["ScheduleExpression"] == "cron(0 5 * * ? *)"
    selection = only(template, "AWS::Backup::BackupSelection")["Properties"]["BackupSelection"]
    (table_id,) = resources(template, "AWS::DynamoDB::Table")
    assert [render(r) for r in selection["Resources"]] == [f"<{table_id}.Arn>"]
    role = template["Resources"][selection["IamRoleArn"]["Fn::GetAtt"][0]]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "backup.amazonaws.com"
    }


# --- the default profile stays what it was ---------------------------------------------------------


def test_the_default_profile_has_none_of_it(default_synth: Synthesized) -> None:
    for template in (default_synth.stateful, default_synth.pipeline):
        for kind in (
            "AWS::KMS::Key",
            "AWS::EC2::VPC",
            "AWS::EC2::VPCEndpoint",
            "AWS::Backup::BackupPlan",
            "AWS::IAM::ManagedPolicy",
        ):
            assert not resources(template, kind), kind
    for function in _functions(default_synth).values():
        assert "VpcConfig" not in function
        assert "KmsKeyArn" not in function


def test_strict_changes_no_alarm(synthesized: dict[str, Synthesized]) -> None:
    """The alarms (and so their evaluated behaviour, tests/infra/test_alarm_behaviour.py) are the same."""
    for env in ("local", "prod"):
        default = resources(synthesized[env].pipeline, "AWS::CloudWatch::Alarm")
        strict = resources(synthesized[f"{env}-strict"].pipeline, "AWS::CloudWatch::Alarm")
        assert strict == default


# --- the packs at synth ------------------------------------------------------------------------------


def _app(tmp_path: Path, env: str = "dev", **context: str) -> cdk.App:
    app = cdk.App(outdir=str(tmp_path), context={**cdk_json_context(), "env": env, **context})
    build_app(app)
    return app


def _stack(app: cdk.App, suffix: str) -> cdk.Stack:
    return next(s for s in app.node.children if isinstance(s, cdk.Stack) and s.stack_name.endswith(suffix))


def test_an_unencrypted_log_group_or_topic_fails_a_strict_synth(tmp_path: Path) -> None:
    app = _app(tmp_path, **STRICT)
    pipeline = _stack(app, "Pipeline")
    logs.LogGroup(pipeline, "Careless", retention=logs.RetentionDays.ONE_WEEK)
    sns.Topic(pipeline, "CarelessTopic", enforce_ssl=True)
    with pytest.raises(RuntimeError) as failed:
        app.synth()
    for rule in (
        "NIST.800.53.R5-CloudWatchLogGroupEncrypted",
        "HIPAA.Security-CloudWatchLogGroupEncrypted",
        "PCI.DSS.321-CloudWatchLogGroupEncrypted",
        "NIST.800.53.R5-SNSEncryptedKMS",
        "PCI.DSS.321-SNSEncryptedKMS",
    ):
        assert rule in str(failed.value)


def test_the_same_unencrypted_log_group_passes_the_default_profile(tmp_path: Path) -> None:
    """The default profile runs AwsSolutions and Serverless only, which accept CloudWatch's own encryption."""
    app = _app(tmp_path)
    logs.LogGroup(_stack(app, "Pipeline"), "Careless", retention=logs.RetentionDays.ONE_WEEK)
    app.synth()


def test_removing_the_acknowledgments_fails_a_strict_synth(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Control case: the strict packs do run, and the acknowledgments are what lets them pass."""
    monkeypatch.setattr(stacks.nag, "acknowledge_strict_pipeline", lambda **_: None)
    monkeypatch.setattr("stacks.pipeline_stack.acknowledge_strict_pipeline", lambda **_: None)
    with pytest.raises(RuntimeError) as failed:
        _app(tmp_path, **STRICT).synth()
    message = str(failed.value)
    assert "NIST.800.53.R5-LambdaDLQ" in message
    assert "HIPAA.Security-LambdaDLQ" in message
    assert "NIST.800.53.R5-VPCDefaultSecurityGroupClosed" in message
    assert "AwsSolutions-IAM5[Action::kms:ReEncrypt*]" in message


def test_removing_the_access_log_acknowledgment_fails_a_strict_synth(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("stacks.stateful_stack.acknowledge_strict_stateful", lambda **_: None)
    with pytest.raises(RuntimeError) as failed:
        _app(tmp_path, **STRICT).synth()
    message = str(failed.value)
    for pack in ("NIST.800.53.R5", "HIPAA.Security", "PCI.DSS.321"):
        assert f"{pack}-S3DefaultEncryptionKMS" in message
        assert f"{pack}-S3BucketReplicationEnabled" in message


# --- configuration -----------------------------------------------------------------------------------


def test_compliance_context_selects_the_profile() -> None:
    assert not load_config("prod").compliance.strict
    assert with_overrides(load_config("prod"), compliance="strict").compliance.strict
    with pytest.raises(ConfigError, match=r"compliance.profile is 'lenient': must be one of default, strict"):
        with_overrides(load_config("prod"), compliance="lenient")


def test_a_strict_environment_cannot_be_relaxed_by_a_deploy() -> None:
    strict = replace(load_config("staging"), compliance=ComplianceConfig(profile="strict"))
    with pytest.raises(ConfigError, match="strict in its configuration, and a deploy cannot relax it"):
        with_overrides(strict, compliance="default")


def test_strict_reserves_concurrency_for_every_function() -> None:
    prod = with_overrides(load_config("prod"), compliance="strict")
    # Prod's own reservations stand; strict gives the others the profile's.
    assert {label: f.reserved_concurrency for label, f in prod.functions.items()} == {
        "ingest": 20,
        "worker": 100,
        "failures": 5,
        "events": 4,
    }
    assert all(f.reserved_concurrency is None for f in load_config("dev").functions.values())


def test_reservations_must_leave_the_unreserved_minimum() -> None:
    small = replace(
        load_config("prod"), compliance=ComplianceConfig(profile="strict", account_concurrency=200)
    )
    with pytest.raises(ConfigError) as failed:
        small.resolved().validate()
    assert (
        "reserved concurrency ingest 20 + worker 100 + failures 5 + events 4 = 129 leaves 71 of the account's "
        "200 (compliance.account_concurrency) unreserved; Lambda keeps at least 100 unreserved, so at most "
        "100 may be reserved"
    ) in str(failed.value)


def test_an_account_that_cannot_afford_reservations_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reason = "a new account with a concurrency quota of 10; raise it (Service Quotas) before production"
    dev = replace(
        load_config("dev"),
        compliance=ComplianceConfig(profile="strict", account_concurrency=10, unreserved_reason=reason),
    ).resolved()
    assert all(f.reserved_concurrency is None for f in dev.resolved().validate().functions.values())
    with pytest.raises(ConfigError, match="must say why"):
        replace(dev, compliance=replace(dev.compliance, unreserved_reason="no")).validate()
    without = replace(
        dev, compliance=replace(dev.compliance, unreserved_reason=None, account_concurrency=1000)
    )
    with pytest.raises(
        ConfigError, match=r"strict but ingest, worker, failures, events reserve no concurrency"
    ):
        without.validate()
    # Synthesized, the choice is acknowledged per function with the reason, and the packs pass.
    monkeypatch.setattr("app.load_config", lambda _name: dev)
    synth = synthesize("dev", tmp_path, STRICT)
    assert all("ReservedConcurrentExecutions" not in f for f in _functions(synth).values())


def test_a_given_vpc_is_used_by_id_without_a_lookup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    given = GivenVpc(
        vpc_id="vpc-0123456789abcdef0",
        availability_zones=("us-east-1a", "us-east-1b"),
        subnet_ids=("subnet-0aaaaaaaaaaaaaaa1", "subnet-0bbbbbbbbbbbbbbb2"),
    )
    prod = (
        replace(load_config("prod"), compliance=ComplianceConfig(profile="strict", vpc=given))
        .resolved()
        .validate()
    )
    monkeypatch.setattr("app.load_config", lambda _name: prod)
    synth = synthesize("prod", tmp_path)
    assert not resources(synth.pipeline, "AWS::EC2::VPC")
    assert not resources(synth.pipeline, "AWS::EC2::VPCEndpoint")
    for function in _functions(synth).values():
        assert function["VpcConfig"]["SubnetIds"] == list(given.subnet_ids)
    (group,) = resources(synth.pipeline, "AWS::EC2::SecurityGroup").values()
    assert group["Properties"]["VpcId"] == given.vpc_id


@pytest.mark.parametrize(
    ("vpc", "message"),
    [
        (
            GivenVpc(vpc_id="my-vpc", availability_zones=("us-east-1a",), subnet_ids=("subnet-0aaaaaaaa",)),
            "not a VPC id",
        ),
        (
            GivenVpc(
                vpc_id="vpc-0123abcd",
                availability_zones=("us-east-1a", "us-east-1b"),
                subnet_ids=("subnet-0aaaaaaaa",),
            ),
            "1 subnets for 2 zones",
        ),
        (
            GivenVpc(
                vpc_id="vpc-0123abcd", availability_zones=("eu-west-1a",), subnet_ids=("subnet-0aaaaaaaa",)
            ),
            "are not zones of us-east-1",
        ),
    ],
)
def test_a_given_vpc_is_checked(vpc: GivenVpc, message: str) -> None:
    bad = replace(load_config("prod"), compliance=ComplianceConfig(profile="strict", vpc=vpc))
    with pytest.raises(ConfigError, match=message):
        bad.resolved().validate()


def test_key_users_must_be_principal_arns() -> None:
    bad = replace(load_config("prod"), compliance=ComplianceConfig(profile="strict", key_users=("ops-team",)))
    with pytest.raises(ConfigError, match="must be an IAM role or user ARN"):
        bad.resolved().validate()
    users = ("arn:aws:iam::111122223333:role/producers",)
    assert replace(bad, compliance=replace(bad.compliance, key_users=users)).resolved().validate()


def test_reservations_are_config() -> None:
    custom = ComplianceConfig(
        profile="strict", reservations=FunctionReservations(ingest=5, worker=40, failures=3, events=2)
    )
    dev = replace(load_config("dev"), compliance=custom).resolved().validate()
    assert dev.worker.function.reserved_concurrency == 40
