"""cdk-nag: the AwsSolutions and Serverless packs run at every synth; under the `strict` compliance profile
the NIST 800-53 R5, HIPAA Security and PCI DSS 3.2.1 packs too. Each acknowledgment is scoped to one
construct and one rule (or one finding of it) and says why the finding does not apply here."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_cdk import Acknowledgment, CfnResource, Stack, Token, Validations
from cdk_nag import (
    AwsSolutionsChecks,
    HIPAASecurityChecks,
    NIST80053R5Checks,
    PCIDSS321Checks,
    ServerlessChecks,
)
from constructs import Construct, IConstruct

from pipeline_contract import ACCESS_DIR
from stacks.constructs.roles import policy_of

if TYPE_CHECKING:
    from aws_cdk import aws_sqs as sqs

    from stacks.constructs.access_log_bucket import AccessLogBucket
    from stacks.constructs.data_bucket import DataBucket
    from stacks.constructs.function_network import FunctionNetwork
    from stacks.constructs.ingest_queue import IngestQueue
    from stacks.constructs.job_events import JobEventStream
    from stacks.constructs.job_table_backup import JobTableBackup
    from stacks.constructs.pipeline_function import PipelineFunction
    from stacks.constructs.segmented_job import SegmentedJobStateMachine
    from stacks.pipeline_stack import _Locations

XRAY_REASON = (
    "X-Ray PutTraceSegments/PutTelemetryRecords support no resource-level permissions (resource must be *)"
)
# Under strict, a function role's `*` statement also holds these (FunctionPlacement.statements).
NETWORK_INTERFACE_REASON = (
    "; ec2:DescribeNetworkInterfaces and ec2:DescribeSubnets, which Lambda uses to attach the function to its "
    "VPC subnets, support no resource-level permissions"
)


# The packs a regulated account's security team runs first; their rule ids are `<PACK>::<PACK>-<Rule>`.
STRICT_PACKS = ("NIST.800.53.R5", "HIPAA.Security", "PCI.DSS.321")


def add_nag_packs(app: Construct, *, strict: bool = False) -> None:
    Validations.of(app).add_plugins(AwsSolutionsChecks(app), ServerlessChecks(app))
    if strict:
        Validations.of(app).add_plugins(
            NIST80053R5Checks(app), HIPAASecurityChecks(app), PCIDSS321Checks(app)
        )


def _ack(scope: IConstruct, rule: str, reason: str) -> None:
    Validations.of(scope).acknowledge(Acknowledgment(id=rule, reason=reason))


def _logical_id(construct: IConstruct) -> str:
    resource = construct.node.default_child
    assert isinstance(resource, CfnResource), f"{construct.node.path} has no CloudFormation resource"
    return Stack.of(construct).get_logical_id(resource)


def _default_policy(function: PipelineFunction) -> IConstruct:
    """The construct holding the function role's statements (inline default policy, or strict's managed one)."""
    return policy_of(function.role)


def _ack_packs(scope: IConstruct, rule: str, reason: str, *, packs: tuple[str, ...] = STRICT_PACKS) -> None:
    """The same rule of each strict pack (they share rule names), on one construct, for one reason."""
    for pack in packs:
        _ack(scope, f"{pack}::{pack}-{rule}", reason)


def acknowledge_stateful(*, data_bucket: DataBucket) -> None:
    _ack(
        data_bucket.bucket,
        "AwsSolutions::AwsSolutions-S1",
        "Only the pipeline's roles read and write this bucket; object-level auditing belongs to the account's "
        "CloudTrail S3 data events, and an access-log bucket would itself need an exemption",
    )


def acknowledge_pipeline(
    *,
    ingest: PipelineFunction,
    worker: PipelineFunction,
    failures: PipelineFunction,
    jobs: SegmentedJobStateMachine,
    queues: IngestQueue,
    watchdog_dead_letters: sqs.IQueue,
    locations: _Locations,
    in_vpc: bool = False,
) -> None:
    star_reason = XRAY_REASON + (NETWORK_INTERFACE_REASON if in_vpc else "")
    for function in (ingest, worker, failures):
        _ack(_default_policy(function), "AwsSolutions::AwsSolutions-IAM5[Resource::*]", star_reason)
    for function in (ingest, worker):
        _ack(
            function.function,
            "Serverless::Serverless-LambdaDLQ",
            "Invoked synchronously (by the SQS poller and by Step Functions), never asynchronously: failures "
            "go to the ingest queue's DLQ by redrive and by the state machine's failure path, not to a Lambda DLQ",
        )
    _ack(
        failures.function,
        "Serverless::Serverless-LambdaDLQ",
        "Invoked synchronously by Step Functions and asynchronously by the watchdog's EventBridge rule, whose "
        "target has its own retry policy and dead-letter queue (an event it cannot deliver lands there)",
    )
    for role in (ingest, worker):
        for location in locations.inputs:
            _ack(
                _default_policy(role),
                f"AwsSolutions::AwsSolutions-IAM5[Resource::{_rendered_objects_arn(location)}]",
                "Job inputs are any key under an allowed input location (config.locations.inputs); "
                "s3:GetObject and s3:GetObjectVersion only (the ingest's HEAD pins the version, the worker "
                "reads exactly it)",
            )
    _ack(
        _default_policy(worker),
        f"AwsSolutions::AwsSolutions-IAM5[Resource::{_rendered_objects_arn(locations.output)}]",
        "The worker writes output parts under the output location only (config.locations.output), with "
        "s3:PutObject only",
    )
    _ack(
        _default_policy(worker),
        f"AwsSolutions::AwsSolutions-IAM5[Resource::{_rendered_objects_arn(locations.output, suffix=f'*/{ACCESS_DIR}*')}]",
        "A gzip input's access points (its decompressor's restart points) are written beside each job's "
        "outputs, under any job id; s3:GetObject on those keys only, so a resumed segment reads its own back",
    )
    state_machine_policy = policy_of(jobs.role)
    _ack(
        state_machine_policy,
        "AwsSolutions::AwsSolutions-IAM5[Resource::*]",
        XRAY_REASON + "; CloudWatch Logs delivery actions (CreateLogDelivery etc.) also require *",
    )
    for function in (worker, failures):
        _ack(
            state_machine_policy,
            f"AwsSolutions::AwsSolutions-IAM5[Resource::<{_logical_id(function.function)}.Arn>:*]",
            "lambda:InvokeFunction on the function's qualified ARNs (versions/aliases), as CDK's grant writes it",
        )
    versions_finding = f"AwsSolutions::AwsSolutions-IAM5[Resource::{_rendered_versions_arn(jobs)}]"
    _ack(
        state_machine_policy,
        versions_finding,
        "states:StartExecution on the state machine's own published versions: continue-as-new starts the "
        "version the job is pinned to (a new one is published at every deploy)",
    )
    _ack(
        _default_policy(ingest),
        versions_finding,
        "states:StartExecution on the state machine's own published versions: each job starts on the "
        "version current when it is accepted, or its redrive on the deployed one",
    )
    for queue in (queues.dead_letter_queue, watchdog_dead_letters):
        _ack(
            queue,
            "Serverless::Serverless-SQSRedrivePolicy",
            "This queue is a dead-letter queue; a DLQ of the DLQ would hide failures instead of surfacing them",
        )
    _ack(
        watchdog_dead_letters,
        "AwsSolutions::AwsSolutions-SQS3",
        "This queue is the dead-letter queue of the watchdog rule's target (EventBridge), not of a queue",
    )
    _ack(
        ingest.function,
        "Serverless::Serverless-LambdaEventSourceMappingDestination",
        "For an SQS source the failure destination is the queue's own redrive policy (DLQ after "
        "maxReceiveCount); permanent errors are sent to the same DLQ by the function with their reason",
    )


def _rendered(stack: Stack, value: str, pseudo: str) -> str:
    return f"<AWS::{pseudo}>" if Token.is_unresolved(value) else value


def _rendered_arn(stack: Stack, service: str, resource: str) -> str:
    """How cdk-nag names an ARN of this stack's account and region in a finding id (pseudo parameters as
    `<AWS::...>`)."""
    partition = _rendered(stack, stack.partition, "Partition")
    region = _rendered(stack, stack.region, "Region")
    account = _rendered(stack, stack.account, "AccountId")
    return f"arn:{partition}:{service}:{region}:{account}:{resource}"


def _rendered_versions_arn(jobs: SegmentedJobStateMachine) -> str:
    """How cdk-nag names `stateMachine:NAME:*` in a finding id."""
    return _rendered_arn(Stack.of(jobs), "states", f"stateMachine:{jobs.state_machine_name}:*")


def _rendered_objects_arn(location: object, *, suffix: str = "*") -> str:
    """How cdk-nag names a location's objects ARN in a finding id: the data bucket's name is an import,
    rendered as its export name; a named bucket is literal."""
    from stacks.pipeline_stack import _ResolvedLocation  # noqa: PLC0415 - avoids an import cycle

    assert isinstance(location, _ResolvedLocation)
    stack = Stack.of(location.bucket)
    partition = stack.partition
    rendered_partition = "<AWS::Partition>" if Token.is_unresolved(partition) else partition
    name = stack.resolve(location.bucket.bucket_name)
    if isinstance(name, dict) and "Fn::ImportValue" in name:
        name = name["Fn::ImportValue"]
    return f"arn:{rendered_partition}:s3:::{name}/{location.prefix}{suffix}"


def acknowledge_alarm_subscriptions(topic: IConstruct) -> None:
    _ack(
        topic,
        "Serverless::Serverless-SNSRedrivePolicy",
        "E-mail is a courtesy copy of the alarm: the state itself stays in CloudWatch and on the dashboard, "
        "and SNS already retries e-mail delivery; a DLQ of undelivered e-mails would alert no one",
    )


def acknowledge_job_events(
    *, function: PipelineFunction, stream: JobEventStream, in_vpc: bool = False
) -> None:
    _ack(
        _default_policy(function),
        "AwsSolutions::AwsSolutions-IAM5[Resource::*]",
        XRAY_REASON
        + "; dynamodb:ListStreams (read by the stream event source mapping) takes no resource"
        + (NETWORK_INTERFACE_REASON if in_vpc else ""),
    )
    _ack(
        function.function,
        "Serverless::Serverless-LambdaDLQ",
        "Invoked synchronously by its DynamoDB stream event source mapping, never asynchronously: a batch it "
        "fails on goes to the mapping's OnFailure destination (the job events' dead-letter queue)",
    )
    _ack(
        stream.dead_letter_queue,
        "Serverless::Serverless-SQSRedrivePolicy",
        "This queue is a dead-letter queue; a DLQ of the DLQ would hide failures instead of surfacing them",
    )
    _ack(
        stream.dead_letter_queue,
        "AwsSolutions::AwsSolutions-SQS3",
        "This queue is the OnFailure destination of the job events' stream event source mapping, not a queue's DLQ",
    )


# -- the strict profile ----------------------------------------------------------------------------------

REPLICATION_REASON = (
    "Cross-region replication is a documented choice (docs/compliance.md), not a default: it needs a "
    "second bucket, key and stack in another region that this app does not deploy. Durability within the "
    "region is S3's (11 nines across zones); versioning and the retained bucket undo overwrites and deletes"
)


def acknowledge_strict_stateful(
    *, data_bucket: DataBucket, access_logs: AccessLogBucket, backups: JobTableBackup
) -> None:
    for bucket in (data_bucket.bucket, access_logs.bucket):
        _ack_packs(bucket, "S3BucketReplicationEnabled", REPLICATION_REASON)
    _ack_packs(
        access_logs.bucket,
        "S3DefaultEncryptionKMS",
        "S3 server access logging delivers only to a destination bucket encrypted with SSE-S3 (AES256); with "
        "SSE-KMS as its default encryption no log would be written. This bucket holds access logs only "
        "(no job data), is TLS-only, private and versioned",
    )
    _ack(
        backups.role,
        "AwsSolutions::AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
        "AWSBackupServiceRolePolicyForBackup]",
        "AWS Backup's own service-role policy for the role it runs backups as: AWS maintains the actions "
        "Backup needs per resource type (DynamoDB here); a copy of our own would drift. The role is assumable "
        "by backup.amazonaws.com only and selects the job table only",
    )


SYNCHRONOUS_ONLY = {
    "ingest": "Invoked synchronously only, by its SQS event source mapping: a failed message goes back to the "
    "queue and, after maxReceiveCount, to the ingest queue's dead-letter queue (redrive policy)",
    "worker": "Invoked synchronously only, by the state machine (its pinned version): a failed segment is "
    "retried and then caught by the state machine, which marks the job FAILED and sends its request to the "
    "dead-letter queue",
    "events": "Invoked synchronously only, by its DynamoDB stream event source mapping: a batch it fails on "
    "goes to the mapping's OnFailure destination (the job events' dead-letter queue)",
}


def acknowledge_strict_pipeline(
    *,
    functions: dict[str, PipelineFunction],
    network: FunctionNetwork | None,
    unreserved: dict[str, str],
) -> None:
    """`unreserved`: label -> why, for each function the account cannot afford a reservation for
    (config compliance.unreserved_reason; the config's check names the numbers)."""
    for label, reason in unreserved.items():
        _ack_packs(
            functions[label].function,
            "LambdaConcurrency",
            f"No reserved concurrency (compliance.unreserved_reason): {reason}",
            packs=("NIST.800.53.R5", "HIPAA.Security"),
        )
    for label, reason in SYNCHRONOUS_ONLY.items():
        # A dead-letter queue only ever receives failed asynchronous invocations: these functions have none.
        _ack_packs(functions[label].function, "LambdaDLQ", reason, packs=("NIST.800.53.R5", "HIPAA.Security"))
    for function in functions.values():
        stack = Stack.of(function)
        _ack(
            _default_policy(function),
            f"AwsSolutions::AwsSolutions-IAM5[Resource::{_rendered_arn(stack, 'ec2', 'network-interface/*')}]",
            "Lambda creates the function's network interfaces in its subnets with the execution role (ids "
            "unknown beforehand) and deletes them: any interface of this account and region. Creating one also "
            "names the function's subnets and security group exactly",
        )
    for label in ("failures", "events"):
        for action in ("kms:GenerateDataKey*", "kms:ReEncrypt*"):
            _ack(
                _default_policy(functions[label]),
                f"AwsSolutions::AwsSolutions-IAM5[Action::{action}]",
                "CDK's grant to send to a queue encrypted with a customer-managed key (the failures function's "
                "dead-letter queue and OnFailure destination; the job events' OnFailure destination): SQS "
                "needs a data key to encrypt each message; the statement names the pipeline's key only",
            )
    if network is not None and network.created_vpc is not None:
        _ack_packs(
            network.created_vpc,
            "VPCDefaultSecurityGroupClosed",
            "Nothing is placed in the default security group (the functions and the endpoints have groups of "
            "their own, HTTPS only), and the VPC has no internet gateway or NAT. CloudFormation cannot remove "
            "the default group's rules; CDK does it with a custom-resource Lambda, which this project does not "
            "deploy. docs/compliance.md gives the commands that empty it after the first deploy",
        )
