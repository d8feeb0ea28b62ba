"""Where the functions run under the `strict` compliance profile: a VPC the stack creates, or one given."""

from __future__ import annotations

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks.constructs.pipeline_function import log_retention
from stacks.constructs.roles import RoleStyle

HTTPS = ec2.Port.tcp(443)

# Every AWS API the functions call, reached without a NAT or an internet gateway. S3 and DynamoDB by gateway
# endpoints (free, routes in the subnets' route tables); the others by interface endpoints with private DNS,
# so the SDK's default endpoints resolve to them.
GATEWAY_ENDPOINTS = {
    "S3": ec2.GatewayVpcEndpointAwsService.S3,
    "DynamoDB": ec2.GatewayVpcEndpointAwsService.DYNAMODB,
}
INTERFACE_ENDPOINTS = {
    # The ingest sends to the DLQ, the failures function too; the SQS poller itself is Lambda's, outside.
    "Sqs": ec2.InterfaceVpcEndpointAwsService.SQS,
    # The ingest starts executions.
    "StepFunctions": ec2.InterfaceVpcEndpointAwsService.STEP_FUNCTIONS,
    # The events function puts job events on the bus.
    "EventBridge": ec2.InterfaceVpcEndpointAwsService.EVENTBRIDGE,
    # Lambda delivers the functions' logs, EMF metrics and traces outside the VPC today; these three keep
    # a handler that calls CloudWatch Logs, PutMetricData or X-Ray directly working, without a NAT.
    "Logs": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
    "Monitoring": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_MONITORING,
    "XRay": ec2.InterfaceVpcEndpointAwsService.XRAY,
    # S3, SQS and DynamoDB call KMS themselves; this one is for a handler that calls KMS (none does yet).
    "Kms": ec2.InterfaceVpcEndpointAwsService.KMS,
}


class FunctionNetwork(Construct):
    """Invariant: the functions get subnets with no route to the internet and a security group whose only
    egress is HTTPS. A created VPC (`vpc_id` None) has an isolated subnet in each of two zones, no internet
    gateway and no NAT, gateway endpoints for S3 and DynamoDB, interface endpoints (one security group,
    HTTPS from the functions only) for every other service the functions call, and flow logs of all its
    traffic in a log group encrypted with `encryption_key`. A given VPC (`vpc_id`, `subnet_ids`) is used as
    it is: its owner provides its endpoints or NAT, and its flow logs."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc_id: str | None,
        availability_zones: tuple[str, ...],
        subnet_ids: tuple[str, ...],
        cidr: str,
        encryption_key: kms.IKey,
        flow_log_group_name: str,
        log_retention_days: int,
        roles: RoleStyle,
        removal_policy: RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self._created: ec2.Vpc | None = None
        if vpc_id is not None:
            self._vpc: ec2.IVpc = ec2.Vpc.from_vpc_attributes(
                self,
                "Vpc",
                vpc_id=vpc_id,
                availability_zones=list(availability_zones),
                private_subnet_ids=list(subnet_ids),
            )
            self._subnets = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)
            self._security_group = self._functions_security_group()
            return

        self._flow_logs = logs.LogGroup(
            self,
            "FlowLogs",
            log_group_name=flow_log_group_name,
            encryption_key=encryption_key,
            retention=log_retention(log_retention_days),
            removal_policy=removal_policy,
        )
        flow_log_role = roles.role(
            self,
            "FlowLogRole",
            # Confused-deputy conditions (VPC user guide, "IAM role for publishing flow logs").
            assumed_by=iam.ServicePrincipal(
                "vpc-flow-logs.amazonaws.com",
                conditions={
                    "StringEquals": {"aws:SourceAccount": Stack.of(self).account},
                    "ArnLike": {
                        "aws:SourceArn": Stack.of(self).format_arn(
                            service="ec2", resource="vpc-flow-log", resource_name="*"
                        )
                    },
                },
            ),
            description="VPC flow logs of the pipeline's functions",
        )
        vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(cidr),
            # The stack's zones are Fn::GetAZs at deploy (PipelineStack.availability_zones): no lookup.
            max_azs=2,
            nat_gateways=0,
            subnet_configuration=[
                ec2.SubnetConfiguration(
                    name="functions", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=24
                )
            ],
            # CDK would empty the default security group with a custom-resource Lambda (the project deploys
            # none); nothing here uses the default group (the functions and endpoints have their own).
            restrict_default_security_group=False,
            gateway_endpoints={
                name: ec2.GatewayVpcEndpointOptions(service=service)
                for name, service in GATEWAY_ENDPOINTS.items()
            },
            flow_logs={
                "All": ec2.FlowLogOptions(
                    destination=ec2.FlowLogDestination.to_cloud_watch_logs(self._flow_logs, flow_log_role),
                    traffic_type=ec2.FlowLogTrafficType.ALL,
                )
            },
        )
        self._vpc = self._created = vpc
        self._subnets = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)
        self._security_group = self._functions_security_group()
        endpoints = ec2.SecurityGroup(
            self,
            "EndpointsSecurityGroup",
            vpc=vpc,
            description="Interface endpoints: HTTPS from the pipeline functions only",
            allow_all_outbound=False,
        )
        endpoints.add_ingress_rule(self._security_group, HTTPS, "HTTPS from the pipeline functions")
        for name, service in INTERFACE_ENDPOINTS.items():
            vpc.add_interface_endpoint(
                name,
                service=service,
                subnets=self._subnets,
                security_groups=[endpoints],
                private_dns_enabled=True,
                open=False,
            )

    def _functions_security_group(self) -> ec2.SecurityGroup:
        group = ec2.SecurityGroup(
            self,
            "FunctionsSecurityGroup",
            vpc=self._vpc,
            description="Pipeline functions: HTTPS out only, to AWS APIs through the endpoints",
            allow_all_outbound=False,
        )
        # To any address: the gateway endpoints' S3 and DynamoDB ranges are public addresses (their prefix
        # lists are only known at deploy); with no NAT and no internet gateway nothing else is reachable.
        group.add_egress_rule(ec2.Peer.any_ipv4(), HTTPS, "HTTPS to AWS APIs (endpoints)")
        return group

    @property
    def vpc(self) -> ec2.IVpc:
        return self._vpc

    @property
    def created_vpc(self) -> ec2.Vpc | None:
        """The VPC this construct created (None for a given one)."""
        return self._created

    @property
    def subnets(self) -> ec2.SubnetSelection:
        return self._subnets

    @property
    def security_group(self) -> ec2.ISecurityGroup:
        return self._security_group
