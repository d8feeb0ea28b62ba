"""The pipeline stack: ingest queue, functions, state machine and alarms over the stateful stack."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Duration, Fn, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.config import EnvironmentConfig
from stacks.constructs.alarms import PipelineAlarms, PipelineMetrics
from stacks.constructs.data_bucket import OUTPUT_PREFIX
from stacks.constructs.ingest_queue import IngestQueue
from stacks.constructs.pipeline_function import PipelineFunction
from stacks.constructs.segmented_job import RetryPolicy, SegmentedJobStateMachine
from stacks.nag import acknowledge_alarm_subscriptions, acknowledge_pipeline


class PipelineStack(Stack):
    """Composes the constructs, grants exact actions between them, and exports the outputs the CLI reads."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        job_table_name_export: str,
        data_bucket_name_export: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        table = dynamodb.Table.from_table_name(self, "JobTable", Fn.import_value(job_table_name_export))
        bucket = s3.Bucket.from_bucket_name(self, "DataBucket", Fn.import_value(data_bucket_name_export))
        prefix = f"resilient-pipeline-{config.name}"
        removal = RemovalPolicy.RETAIN if config.protect_stateful else RemovalPolicy.DESTROY

        queues = IngestQueue(
            self,
            "IngestQueue",
            queue_name=f"{prefix}-ingest",
            visibility_timeout_seconds=config.ingest_visibility_timeout_seconds,
            consumer_timeout_seconds=config.ingest.function.timeout_seconds,
            batching_window_seconds=config.ingest.max_batching_window_seconds,
            max_receive_count=config.ingest.max_receive_count,
            retention_days=config.ingest.queue_retention_days,
            dlq_retention_days=config.dlq_retention_days,
        )
        common_env = {
            "JOB_TABLE_NAME": table.table_name,
            "DATA_BUCKET_NAME": bucket.bucket_name,
            "ENVIRONMENT": config.name,
            "FAULT_INJECTION_ALLOWED": "true" if config.fault_injection_allowed else "false",
            "DEFAULT_CHUNK_BYTES": str(config.worker.default_chunk_bytes),
            "POWERTOOLS_METRICS_NAMESPACE": "ResilientPipeline",
            "POWERTOOLS_LOG_LEVEL": "INFO",
        }
        worker = PipelineFunction(
            self,
            "Worker",
            handler="handlers.worker.handler",
            description=f"{prefix}: processes one time-budgeted segment of a job",
            memory_mb=config.worker.function.memory_mb,
            timeout_seconds=config.worker.function.timeout_seconds,
            reserved_concurrency=config.worker.function.reserved_concurrency,
            environment={
                **common_env,
                "POWERTOOLS_SERVICE_NAME": "worker",
                "SAFETY_MARGIN_MS": str(config.worker.safety_margin_ms),
                "MAX_CHUNKS_PER_SEGMENT": str(config.worker.max_chunks_per_segment),
                "MAX_REJECT_RATIO": str(config.worker.max_reject_ratio),
            },
            log_retention_days=config.log_retention_days,
            powertools_layer_version=config.powertools_layer_version,
            removal_policy=removal,
        )
        jobs = SegmentedJobStateMachine(
            self,
            "SegmentedJob",
            state_machine_name=f"{prefix}-segmented-job",
            worker=worker.function,
            table=table,
            dead_letter_queue=queues.dead_letter_queue,
            segment_budget=config.state_machine.segment_budget,
            retry=RetryPolicy(
                interval_seconds=config.state_machine.retry_interval_seconds,
                max_attempts=config.state_machine.retry_max_attempts,
                backoff_rate=config.state_machine.retry_backoff_rate,
                max_delay_seconds=config.state_machine.retry_max_delay_seconds,
            ),
            execution_timeout=Duration.minutes(config.state_machine.execution_timeout_minutes),
            log_retention_days=config.log_retention_days,
            removal_policy=removal,
        )
        ingest = PipelineFunction(
            self,
            "Ingest",
            handler="handlers.ingest.handler",
            description=f"{prefix}: validates job requests and starts their executions",
            memory_mb=config.ingest.function.memory_mb,
            timeout_seconds=config.ingest.function.timeout_seconds,
            reserved_concurrency=config.ingest.function.reserved_concurrency,
            environment={
                **common_env,
                "POWERTOOLS_SERVICE_NAME": "ingest",
                "DLQ_URL": queues.dead_letter_queue.queue_url,
                "STATE_MACHINE_ARN": jobs.state_machine_arn,
                "JOB_TTL_DAYS": str(config.job_ttl_days),
            },
            log_retention_days=config.log_retention_days,
            powertools_layer_version=config.powertools_layer_version,
            removal_policy=removal,
        )
        ingest.function.add_event_source(
            event_sources.SqsEventSource(
                queues.queue,
                batch_size=config.ingest.batch_size,
                max_batching_window=Duration.seconds(config.ingest.max_batching_window_seconds)
                if config.ingest.max_batching_window_seconds
                else None,
                max_concurrency=config.ingest.max_concurrency,
                report_batch_item_failures=True,
            )
        )

        # Exact actions only: the ingest writes job records and starts executions; the worker reads its
        # input, writes its outputs and checkpoints. Neither may Scan, Query, or delete anything.
        ingest.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"],
                resources=[table.table_arn],
            )
        )
        ingest.role.add_to_principal_policy(
            iam.PolicyStatement(actions=["states:StartExecution"], resources=[jobs.state_machine_arn])
        )
        ingest.role.add_to_principal_policy(
            iam.PolicyStatement(actions=["sqs:SendMessage"], resources=[queues.dead_letter_queue.queue_arn])
        )
        worker.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["dynamodb:GetItem", "dynamodb:UpdateItem"], resources=[table.table_arn]
            )
        )
        worker.role.add_to_principal_policy(
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[bucket.arn_for_objects("*")])
        )
        worker.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject"], resources=[bucket.arn_for_objects(f"{OUTPUT_PREFIX}*")]
            )
        )
        # ListBucket turns a missing input into NoSuchKey (a clear permanent error) instead of AccessDenied.
        worker.role.add_to_principal_policy(
            iam.PolicyStatement(actions=["s3:ListBucket"], resources=[bucket.bucket_arn])
        )

        alarms = PipelineAlarms(
            self,
            "Alarms",
            metrics=PipelineMetrics(
                ingest_queue=queues.queue,
                dead_letter_queue=queues.dead_letter_queue,
                functions={"Ingest": ingest.function, "Worker": worker.function},
                worker=worker.function,
                worker_timeout_seconds=config.worker.function.timeout_seconds,
                state_machine=jobs.state_machine,
                table=table,
                period=Duration.seconds(config.alarms.evaluation_period_seconds),
            ),
            queue_age_threshold_seconds=config.alarms.queue_age_threshold_seconds,
            email=config.alarms.email,
            environment_name=config.name,
        )

        acknowledge_pipeline(
            ingest=ingest,
            worker=worker,
            jobs=jobs,
            queues=queues,
            data_bucket_name_export=data_bucket_name_export,
        )

        if config.alarms.email:
            acknowledge_alarm_subscriptions(alarms.topic)

        CfnOutput(self, "IngestQueueUrl", value=queues.queue.queue_url)
        CfnOutput(self, "DeadLetterQueueUrl", value=queues.dead_letter_queue.queue_url)
        CfnOutput(self, "StateMachineArn", value=jobs.state_machine.state_machine_arn)
        CfnOutput(self, "AlarmTopicArn", value=alarms.topic.topic_arn)
