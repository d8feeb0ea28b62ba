"""Which property changes make CloudFormation replace a resource, and which resource types hold state (the
destructive gate). The table is the CloudFormation specification's, shipped with the pinned CDK CLI, plus
documented additions; tests/diff/test_replacement_table.py checks it against that file. A type not in the
table is reported as "replacement unknown", never guessed. Sources and additions:
docs/infra-diff-design.md ("Replacement and stateful types")."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# Updates to these types can never replace them (no property forces replacement).
NEVER_REPLACED = frozenset(
    {
        "AWS::IAM::Policy",
        "AWS::SQS::QueuePolicy",
        "AWS::SNS::TopicPolicy",
        "AWS::KMS::Key",
        "AWS::Backup::BackupPlan",
        "AWS::CDK::Metadata",
    }
)

REPLACING_PROPERTIES: Mapping[str, frozenset[str]] = {
    "AWS::DynamoDB::Table": frozenset(
        {"KeySchema", "TableName", "ImportSourceSpecification", "LocalSecondaryIndexes"}
    ),
    "AWS::DynamoDB::GlobalTable": frozenset({"KeySchema", "TableName", "LocalSecondaryIndexes"}),
    "AWS::S3::Bucket": frozenset({"BucketName", "ObjectLockEnabled", "BucketNamePrefix", "BucketNamespace"}),
    "AWS::S3::BucketPolicy": frozenset({"Bucket"}),
    "AWS::SQS::Queue": frozenset({"QueueName", "FifoQueue"}),
    "AWS::SNS::Topic": frozenset({"TopicName", "FifoTopic"}),
    "AWS::SNS::Subscription": frozenset({"Endpoint", "Protocol", "TopicArn"}),
    "AWS::StepFunctions::StateMachine": frozenset({"StateMachineName", "StateMachineType"}),
    # Every property: a new revision of the definition is a new version (the old one is retained).
    "AWS::StepFunctions::StateMachineVersion": frozenset(
        {"Description", "StateMachineArn", "StateMachineRevisionId"}
    ),
    "AWS::Lambda::Function": frozenset({"FunctionName", "PackageType", "TenancyConfig"}),
    "AWS::Lambda::EventSourceMapping": frozenset(
        {
            "EventSourceArn",
            "StartingPosition",
            "StartingPositionTimestamp",
            "SelfManagedEventSource",
            "SelfManagedKafkaEventSourceConfig",
            "AmazonManagedKafkaEventSourceConfig",
        }
    ),
    "AWS::Lambda::Permission": frozenset(
        {
            "Action",
            "EventSourceToken",
            "FunctionName",
            "FunctionUrlAuthType",
            "InvokedViaFunctionUrl",
            "Principal",
            "PrincipalOrgID",
            "SourceAccount",
            "SourceArn",
        }
    ),
    "AWS::Lambda::Version": frozenset(
        {"CodeSha256", "Description", "FunctionName", "ProvisionedConcurrencyConfig", "RuntimePolicy"}
    ),
    "AWS::Lambda::Alias": frozenset({"FunctionName", "Name"}),
    # Immutable: every property of a layer version makes a new one (the local environment's Powertools
    # stand-in is the app's only layer).
    "AWS::Lambda::LayerVersion": frozenset(
        {
            "CompatibleArchitectures",
            "CompatibleRuntimes",
            "Content",
            "Description",
            "LayerName",
            "LicenseInfo",
        }
    ),
    "AWS::Logs::LogGroup": frozenset({"LogGroupName"}),
    "AWS::IAM::Role": frozenset({"RoleName", "Path"}),
    "AWS::CloudWatch::Alarm": frozenset({"AlarmName"}),
    "AWS::CloudWatch::Dashboard": frozenset({"DashboardName"}),
    "AWS::Events::Rule": frozenset({"EventBusName", "Name"}),
    "AWS::Lambda::EventInvokeConfig": frozenset({"FunctionName", "Qualifier"}),
    # The strict compliance profile's resources (docs/compliance.md).
    "AWS::KMS::Alias": frozenset({"AliasName"}),
    "AWS::IAM::ManagedPolicy": frozenset({"Description", "ManagedPolicyName", "Path"}),
    "AWS::Backup::BackupVault": frozenset({"BackupVaultName", "EncryptionKeyArn"}),
    "AWS::Backup::BackupSelection": frozenset({"BackupPlanId", "BackupSelection"}),
    "AWS::EC2::VPC": frozenset({"CidrBlock", "Ipv4IpamPoolId", "Ipv4NetmaskLength", "VpcEncryptionControl"}),
    "AWS::EC2::Subnet": frozenset(
        {
            "AvailabilityZone",
            "AvailabilityZoneId",
            "CidrBlock",
            "Ipv4IpamPoolId",
            "Ipv4NetmaskLength",
            "Ipv6IpamPoolId",
            "Ipv6Native",
            "Ipv6NetmaskLength",
            "OutpostArn",
            "VpcId",
        }
    ),
    "AWS::EC2::RouteTable": frozenset({"VpcId"}),
    "AWS::EC2::SubnetRouteTableAssociation": frozenset({"RouteTableId", "SubnetId"}),
    "AWS::EC2::SecurityGroup": frozenset({"GroupDescription", "GroupName", "VpcId"}),
    "AWS::EC2::SecurityGroupIngress": frozenset(
        {
            "CidrIp",
            "CidrIpv6",
            "FromPort",
            "GroupId",
            "GroupName",
            "IpProtocol",
            "SourcePrefixListId",
            "SourceSecurityGroupId",
            "SourceSecurityGroupName",
            "SourceSecurityGroupOwnerId",
            "ToPort",
        }
    ),
    "AWS::EC2::VPCEndpoint": frozenset(
        {
            "ResourceConfigurationArn",
            "ServiceName",
            "ServiceNetworkArn",
            "ServiceRegion",
            "VpcEndpointType",
            "VpcId",
        }
    ),
    "AWS::EC2::FlowLog": frozenset(
        {
            "DeliverCrossAccountRole",
            "DeliverLogsPermissionArn",
            "DestinationOptions",
            "LogDestination",
            "LogDestinationType",
            "LogFormat",
            "LogGroupName",
            "MaxAggregationInterval",
            "ResourceId",
            "ResourceType",
            "TagFieldSpecifications",
            "TrafficType",
        }
    ),
}

# Additions to the CloudFormation specification, each with its reason in docs/infra-diff-design.md.
SPEC_ADDITIONS: Mapping[str, frozenset[str]] = {
    "AWS::DynamoDB::Table": frozenset({"LocalSecondaryIndexes"}),
}


@dataclass(frozen=True)
class StatefulKind:
    """What is lost when a resource of this type is deleted or replaced."""

    noun: str
    loses: str


# The destructive-change gate: deleting or replacing one of these loses data. A queue counts because its
# messages (jobs waiting, or failed jobs waiting in the DLQ) go with it.
STATEFUL_TYPES: Mapping[str, StatefulKind] = {
    "AWS::DynamoDB::Table": StatefulKind("table", "every item in it (the job records)"),
    "AWS::DynamoDB::GlobalTable": StatefulKind("table", "every item in it, in every replica"),
    "AWS::S3::Bucket": StatefulKind("bucket", "every object in it (job inputs and outputs)"),
    "AWS::SQS::Queue": StatefulKind("queue", "every message waiting in it"),
    "AWS::KMS::Key": StatefulKind("key", "the ability to decrypt anything encrypted with it"),
    "AWS::Backup::BackupVault": StatefulKind("backup vault", "its recovery points (the job table's backups)"),
}


def replacement_known(resource_type: str) -> bool:
    return resource_type in REPLACING_PROPERTIES or resource_type in NEVER_REPLACED


def replacing_properties(resource_type: str, changed: frozenset[str]) -> list[str]:
    """The changed top-level properties that force replacement of a resource of this type."""
    return sorted(changed & REPLACING_PROPERTIES.get(resource_type, frozenset()))
