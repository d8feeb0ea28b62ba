"""cdk-nag: the AwsSolutions and Serverless packs run at every synth. Each acknowledgment is scoped to one
construct and one rule (or one finding of it) and says why the finding does not apply here."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_cdk import Acknowledgment, CfnResource, Stack, Token, Validations
from cdk_nag import AwsSolutionsChecks, ServerlessChecks
from constructs import Construct, IConstruct

from pipeline_contract import ACCESS_DIR

if TYPE_CHECKING:
    from aws_cdk import aws_sqs as sqs

    from stacks.constructs.data_bucket import DataBucket
    from stacks.constructs.ingest_queue import IngestQueue
    from stacks.constructs.job_events import JobEventStream
    from stacks.constructs.pipeline_function import PipelineFunction
    from stacks.constructs.segmented_job import SegmentedJobStateMachine
    from stacks.pipeline_stack import _Locations

XRAY_REASON = (
    "X-Ray PutTraceSegments/PutTelemetryRecords support no resource-level permissions (resource must be *)"
)


def add_nag_packs(app: Construct) -> None:
    Validations.of(app).add_plugins(AwsSolutionsChecks(app), ServerlessChecks(app))


def _ack(scope: IConstruct, rule: str, reason: str) -> None:
    Validations.of(scope).acknowledge(Acknowledgment(id=rule, reason=reason))


def _logical_id(construct: IConstruct) -> str:
    resource = construct.node.default_child
    assert isinstance(resource, CfnResource), f"{construct.node.path} has no CloudFormation resource"
    return Stack.of(construct).get_logical_id(resource)


def _default_policy(function: PipelineFunction) -> IConstruct:
    return function.role.node.find_child("DefaultPolicy")


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
) -> None:
    for function in (ingest, worker, failures):
        _ack(_default_policy(function), "AwsSolutions::AwsSolutions-IAM5[Resource::*]", XRAY_REASON)
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
    state_machine_policy = jobs.state_machine.role.node.find_child("DefaultPolicy")  # type: ignore[attr-defined]
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


def _rendered_versions_arn(jobs: SegmentedJobStateMachine) -> str:
    """How cdk-nag names `stateMachine:NAME:*` in a finding id (pseudo parameters as `<AWS::...>`)."""
    stack = Stack.of(jobs)
    partition = _rendered(stack, stack.partition, "Partition")
    region = _rendered(stack, stack.region, "Region")
    account = _rendered(stack, stack.account, "AccountId")
    return f"arn:{partition}:states:{region}:{account}:stateMachine:{jobs.state_machine_name}:*"


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


def acknowledge_job_events(*, function: PipelineFunction, stream: JobEventStream) -> None:
    _ack(
        _default_policy(function),
        "AwsSolutions::AwsSolutions-IAM5[Resource::*]",
        XRAY_REASON + "; dynamodb:ListStreams (read by the stream event source mapping) takes no resource",
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
