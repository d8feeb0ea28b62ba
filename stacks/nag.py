"""cdk-nag: the AwsSolutions and Serverless packs run at every synth. Each acknowledgment is scoped to one
construct and one rule (or one finding of it) and says why the finding does not apply here."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_cdk import Acknowledgment, CfnResource, Stack, Token, Validations
from cdk_nag import AwsSolutionsChecks, ServerlessChecks
from constructs import Construct, IConstruct

from stacks.constructs.data_bucket import OUTPUT_PREFIX

if TYPE_CHECKING:
    from stacks.constructs.data_bucket import DataBucket
    from stacks.constructs.ingest_queue import IngestQueue
    from stacks.constructs.pipeline_function import PipelineFunction
    from stacks.constructs.segmented_job import SegmentedJobStateMachine

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
    jobs: SegmentedJobStateMachine,
    queues: IngestQueue,
    data_bucket_name_export: str,
) -> None:
    # cdk-nag renders an unresolved partition as <AWS::Partition>; a stack with a concrete account and
    # region gets a literal one.
    partition = Stack.of(worker).partition
    rendered_partition = "<AWS::Partition>" if Token.is_unresolved(partition) else partition
    bucket_arn = f"arn:{rendered_partition}:s3:::{data_bucket_name_export}"
    for function in (ingest, worker):
        _ack(_default_policy(function), "AwsSolutions::AwsSolutions-IAM5[Resource::*]", XRAY_REASON)
        _ack(
            function.function,
            "Serverless::Serverless-LambdaDLQ",
            "Invoked synchronously (by the SQS poller and by Step Functions), never asynchronously: failures "
            "go to the ingest queue's DLQ by redrive and by the state machine's SendToDLQ, not to a Lambda DLQ",
        )
    worker_policy = _default_policy(worker)
    _ack(
        worker_policy,
        f"AwsSolutions::AwsSolutions-IAM5[Resource::{bucket_arn}/*]",
        "The worker reads job inputs (any key the job names) from the data bucket with s3:GetObject only",
    )
    _ack(
        worker_policy,
        f"AwsSolutions::AwsSolutions-IAM5[Resource::{bucket_arn}/{OUTPUT_PREFIX}*]",
        "The worker writes output parts under out/ only, with s3:PutObject only",
    )
    state_machine_policy = jobs.state_machine.role.node.find_child("DefaultPolicy")  # type: ignore[attr-defined]
    _ack(
        state_machine_policy,
        "AwsSolutions::AwsSolutions-IAM5[Resource::*]",
        XRAY_REASON + "; CloudWatch Logs delivery actions (CreateLogDelivery etc.) also require *",
    )
    _ack(
        state_machine_policy,
        f"AwsSolutions::AwsSolutions-IAM5[Resource::<{_logical_id(worker.function)}.Arn>:*]",
        "lambda:InvokeFunction on the worker's qualified ARNs (versions/aliases), as CDK's grant writes it",
    )
    _ack(
        queues.dead_letter_queue,
        "Serverless::Serverless-SQSRedrivePolicy",
        "This queue is the dead-letter queue; a DLQ of the DLQ would hide failures instead of surfacing them",
    )
    _ack(
        ingest.function,
        "Serverless::Serverless-LambdaEventSourceMappingDestination",
        "For an SQS source the failure destination is the queue's own redrive policy (DLQ after "
        "maxReceiveCount); permanent errors are sent to the same DLQ by the function with their reason",
    )


def acknowledge_alarm_subscriptions(topic: IConstruct) -> None:
    _ack(
        topic,
        "Serverless::Serverless-SNSRedrivePolicy",
        "E-mail is a courtesy copy of the alarm: the state itself stays in CloudWatch and on the dashboard, "
        "and SNS already retries e-mail delivery; a DLQ of undelivered e-mails would alert no one",
    )
