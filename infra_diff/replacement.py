"""Which property changes make CloudFormation replace a resource, and which resources hold state.

The table covers the resource types this app deploys (and their close neighbours). It is the
CloudFormation resource specification's `causesReplacement: yes` list for those types, as shipped with the
pinned CDK CLI (node_modules/aws-cdk/db.json.gz, the same data `cdk diff` uses);
tests/diff/test_replacement_table.py checks it against that file whenever it is present, both ways: every
entry here is a replacement there, and no replacing property of a listed type is missing here.

One deliberate addition: DynamoDB `LocalSecondaryIndexes`. A local secondary index "can only be created when
its parent table is created" (CloudFormation reference), so adding, removing or changing one recreates the
table; the spec does not flag it, so `cdk diff` would call that an update.

A type that is not in the table is reported with "replacement unknown" rather than guessed: extend the table
when the app starts using a new type.
"""

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
    "AWS::Logs::LogGroup": frozenset({"LogGroupName"}),
    "AWS::IAM::Role": frozenset({"RoleName", "Path"}),
    "AWS::CloudWatch::Alarm": frozenset({"AlarmName"}),
    "AWS::CloudWatch::Dashboard": frozenset({"DashboardName"}),
    "AWS::Events::Rule": frozenset({"EventBusName", "Name"}),
    "AWS::Lambda::EventInvokeConfig": frozenset({"FunctionName", "Qualifier"}),
}

# Documented additions to the CloudFormation specification (see the module docstring).
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
}


def is_stateful(resource_type: str) -> bool:
    return resource_type in STATEFUL_TYPES


def replacement_known(resource_type: str) -> bool:
    return resource_type in REPLACING_PROPERTIES or resource_type in NEVER_REPLACED


def replacing_properties(resource_type: str, changed: frozenset[str]) -> list[str]:
    """The changed top-level properties that force replacement of a resource of this type."""
    return sorted(changed & REPLACING_PROPERTIES.get(resource_type, frozenset()))
