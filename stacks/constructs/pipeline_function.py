"""A pipeline Lambda function with the project's resilient defaults in one place."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from pipeline_contract import METRICS_NAMESPACE
from stacks import rules
from stacks.constructs.pipeline_key import grant_key_use
from stacks.constructs.roles import DEFAULT_ROLES, RoleStyle

RUNTIME = lambda_.Runtime.PYTHON_3_14
ARCHITECTURE = lambda_.Architecture.ARM_64

POWERTOOLS_ACCOUNT = "017000801446"


def powertools_layer_arn(*, region: str, version: int) -> str:
    """The public Powertools for AWS Lambda (Python) v3 layer for this runtime and architecture."""
    runtime_tag = RUNTIME.name.replace(".", "")  # python3.14 -> python314
    return f"arn:aws:lambda:{region}:{POWERTOOLS_ACCOUNT}:layer:AWSLambdaPowertoolsPythonV3-{runtime_tag}-arm64:{version}"


_RETENTION = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
}
assert set(_RETENTION) == set(rules.LOG_RETENTION_DAYS)


def log_retention(days: int) -> logs.RetentionDays:
    """The CloudWatch Logs retention for `days` (the config has already checked it is one CloudWatch accepts)."""
    return _RETENTION[days]


# What Lambda does with the execution role to attach a function to its subnets (the actions of AWS's
# AWSLambdaVPCAccessExecutionRole, which CDK adds only to roles it creates itself).
NETWORK_INTERFACE_ACTIONS = (
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
)


@dataclass(frozen=True, kw_only=True)
class FunctionPlacement:
    """Where a function runs when not in Lambda's own network (compliance profile `strict`)."""

    vpc: ec2.IVpc
    subnets: ec2.SubnetSelection
    security_group: ec2.ISecurityGroup

    def statements(self, scope: Construct) -> list[iam.PolicyStatement]:
        """NETWORK_INTERFACE_ACTIONS as narrowly as EC2 allows, rather than AWS's managed policy's `*`: the
        Describe actions take no resource; creating an interface names its subnets and security group; the
        interfaces themselves (Lambda creates them, their ids unknown) are any of this account and region."""
        stack = Stack.of(scope)
        interfaces = stack.format_arn(service="ec2", resource="network-interface", resource_name="*")
        subnets = [
            stack.format_arn(service="ec2", resource="subnet", resource_name=subnet_id)
            for subnet_id in self.vpc.select_subnets(subnet_type=self.subnets.subnet_type).subnet_ids
        ]
        group = stack.format_arn(
            service="ec2", resource="security-group", resource_name=self.security_group.security_group_id
        )
        return [
            iam.PolicyStatement(
                actions=["ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"], resources=["*"]
            ),
            iam.PolicyStatement(
                actions=["ec2:CreateNetworkInterface"], resources=[interfaces, *subnets, group]
            ),
            iam.PolicyStatement(
                actions=[
                    "ec2:DeleteNetworkInterface",
                    "ec2:AssignPrivateIpAddresses",
                    "ec2:UnassignPrivateIpAddresses",
                ],
                resources=[interfaces],
            ),
        ]


class PipelineFunction(Construct):
    """Invariant: arm64, current Python runtime, explicit memory and timeout, X-Ray active, its own log
    group with retention, a role that may write only to that log group (no AWS managed policies), recursive
    loops terminated by Lambda. Callers grant data access with exact actions.

    With `encryption_key` (strict): the log group (named `log_group_name`) and the environment variables are
    encrypted with it and the role may use it; with `placement`, the function runs in those subnets; with
    `dead_letter_queue`, a failed asynchronous invocation's event is sent there; `roles` makes the role."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        handler: str,
        code: lambda_.Code,
        description: str,
        memory_mb: int,
        timeout_seconds: int,
        reserved_concurrency: int | None,
        service_name: str,
        environment: dict[str, str],
        log_retention_days: int,
        powertools_layer_version: int | None,
        powertools_tracer: bool,
        powertools_standin: lambda_.ILayerVersion | None = None,
        removal_policy: RemovalPolicy,
        encryption_key: kms.IKey | None = None,
        log_group_name: str | None = None,
        placement: FunctionPlacement | None = None,
        dead_letter_queue: sqs.IQueue | None = None,
        roles: RoleStyle = DEFAULT_ROLES,
    ) -> None:
        super().__init__(scope, construct_id)
        self._log_group = logs.LogGroup(
            self,
            "Logs",
            log_group_name=log_group_name,
            encryption_key=encryption_key,
            retention=log_retention(log_retention_days),
            removal_policy=removal_policy,
        )
        self._role = roles.role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"{description} (execution role)",
        )
        if placement is not None:
            for statement in placement.statements(self):
                self._role.add_to_policy(statement)
        self._role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[self._log_group.log_group_arn],
            )
        )
        layers = []
        if powertools_layer_version is not None:
            layers.append(
                lambda_.LayerVersion.from_layer_version_arn(
                    self,
                    "Powertools",
                    powertools_layer_arn(region=Stack.of(self).region, version=powertools_layer_version),
                )
            )
        elif powertools_standin is not None:
            layers.append(powertools_standin)
        self._function = lambda_.Function(
            self,
            "Function",
            description=description,
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler=handler,
            code=code,
            memory_size=memory_mb,
            timeout=Duration.seconds(timeout_seconds),
            reserved_concurrent_executions=reserved_concurrency,
            # The function's settings, then Powertools' own (its logs and metrics name the service).
            environment={
                **environment,
                "POWERTOOLS_SERVICE_NAME": service_name,
                "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
                "POWERTOOLS_LOG_LEVEL": "INFO",
                "POWERTOOLS_TRACE_DISABLED": "false" if powertools_tracer else "true",
            },
            layers=layers,
            role=self._role,
            environment_encryption=encryption_key,
            vpc=placement.vpc if placement else None,
            vpc_subnets=placement.subnets if placement else None,
            security_groups=[placement.security_group] if placement else None,
            dead_letter_queue=dead_letter_queue,
            log_group=self._log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            tracing=lambda_.Tracing.ACTIVE,
            recursive_loop=lambda_.RecursiveLoop.TERMINATE,
            # A version replaced by the next deploy stays: jobs pinned to it run on until they end
            # (`pipeline versions prune` deletes the ones no active job uses).
            current_version_options=lambda_.VersionOptions(removal_policy=RemovalPolicy.RETAIN),
        )
        if encryption_key is not None:
            grant_key_use(encryption_key, self._role)

    @property
    def function(self) -> lambda_.IFunction:
        return self._function

    @property
    def published_version(self) -> lambda_.IVersion:
        """The version of this deploy's code and configuration (a new one whenever either changes): what a
        job pins when it must run on one code from start to finish."""
        return self._function.current_version

    @property
    def role(self) -> iam.IRole:
        return self._role

    @property
    def log_group(self) -> logs.ILogGroup:
        return self._log_group
