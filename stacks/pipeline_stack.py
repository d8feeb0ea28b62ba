"""The pipeline stack: ingest queue, functions, state machine and alarms over the stateful stack."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aws_cdk import CfnOutput, Duration, Fn, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as lambda_destinations
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from pipeline_contract import ACCESS_DIR, DEFAULT_EVENT_BUS, Env
from stacks import lambda_deps
from stacks.config import EnvironmentConfig, Location
from stacks.constructs.alarms import PipelineAlarms, PipelineMetrics, Severity, Sustained, WatchedFunction
from stacks.constructs.dashboard import PipelineDashboard
from stacks.constructs.function_network import FunctionNetwork
from stacks.constructs.ingest_queue import IngestQueue, queue_encryption
from stacks.constructs.job_events import JobEventStream
from stacks.constructs.object_triggers import ObjectTriggers, TriggerSource
from stacks.constructs.pipeline_function import RUNTIME, FunctionPlacement, PipelineFunction
from stacks.constructs.pipeline_key import log_group_prefix, role_path
from stacks.constructs.roles import DEFAULT_ROLES, RoleStyle
from stacks.constructs.segmented_job import RetryPolicy, SegmentedJobStateMachine
from stacks.constructs.watchdog import ExecutionWatchdog
from stacks.nag import (
    acknowledge_alarm_subscriptions,
    acknowledge_job_events,
    acknowledge_pipeline,
    acknowledge_strict_pipeline,
)
from stacks.user_code import UserCode, code_digest, function_code, powertools_standin_code


class PipelineStack(Stack):
    """Composes the constructs, grants exact actions between them, and exports the outputs the CLI reads.
    Under the `strict` compliance profile the same constructs get the stateful stack's key, the functions a
    VPC, and every role one customer-managed policy under the pipeline's IAM path."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: EnvironmentConfig,
        job_table_name_export: str,
        data_bucket_name_export: str,
        job_table_stream_arn_export: str,
        user_code: UserCode,
        key_arn_export: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        table = dynamodb.Table.from_table_attributes(
            self,
            "JobTable",
            table_name=Fn.import_value(job_table_name_export),
            table_stream_arn=Fn.import_value(job_table_stream_arn_export),
        )
        bucket = s3.Bucket.from_bucket_name(self, "DataBucket", Fn.import_value(data_bucket_name_export))
        prefix = f"resilient-pipeline-{config.name}"
        removal = RemovalPolicy.RETAIN if config.protect_stateful else RemovalPolicy.DESTROY
        controls = _Controls.of(self, config, key_arn_export=key_arn_export, removal=removal)

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
            encryption_key=controls.key,
        )
        # Executions that end outside the definition's Catch (timeout, StopExecution) fail their job here,
        # and (strict) the failures function's own dead-letter queue.
        watchdog_dead_letters = sqs.Queue(
            self,
            "WatchdogDeadLetters",
            encryption=queue_encryption(controls.key),
            encryption_master_key=controls.key,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        locations = _Locations(self, config, data_bucket=bucket)
        target = lambda_deps.host_target() if config.functions_run_locally else lambda_deps.ARM64
        code = function_code(user_code, target)
        digest = code_digest(user_code)
        standin = (
            lambda_.LayerVersion(
                self,
                "PowertoolsStandIn",
                code=powertools_standin_code(target),
                compatible_runtimes=[RUNTIME],
                description="Powertools for AWS Lambda from requirements-lambda.lock: the public layer's stand-in",
            )
            if config.powertools_layer_version is None
            else None
        )
        worker = PipelineFunction(
            self,
            "Worker",
            handler="handlers.worker.handler",
            code=code,
            description=f"{prefix}: processes one time-budgeted segment of a job",
            memory_mb=config.worker.function.memory_mb,
            timeout_seconds=config.worker.function.timeout_seconds,
            reserved_concurrency=config.worker.function.reserved_concurrency,
            service_name="worker",
            # Exactly the variables of jobcore.settings.WorkerSettings (an infra test checks it).
            environment={
                Env.JOB_TABLE_NAME: table.table_name,
                Env.SAFETY_MARGIN_MS: str(config.worker.safety_margin_ms),
                Env.MAX_CHUNKS_PER_SEGMENT: str(config.worker.max_chunks_per_segment),
                Env.MAX_REJECT_RATIO: str(config.worker.max_reject_ratio),
                Env.MAX_LINE_BYTES: str(config.worker.max_line_bytes),
                Env.HANDOVER_AFTER_SECONDS: str(config.state_machine.handover_after_minutes * 60),
                Env.CODE_DIGEST: digest,
            },
            log_retention_days=config.log_retention_days,
            powertools_layer_version=config.powertools_layer_version,
            powertools_standin=standin,
            powertools_tracer=config.powertools_tracer,
            removal_policy=removal,
            log_group_name=_log_group_name(config, "worker"),
            encryption_key=controls.key,
            placement=controls.placement,
            roles=controls.roles,
        )
        failures = PipelineFunction(
            self,
            "Failures",
            handler="handlers.failures.handler",
            code=code,
            description=f"{prefix}: records job failures (state machine Catch, execution watchdog)",
            # Its asynchronous invocations (the watchdog rule) have an OnFailure destination below; strict
            # also gives it a dead-letter queue, the same queue: on AWS a lost event arrives there twice
            # (the event with Lambda's error attributes, and the invocation record).
            dead_letter_queue=watchdog_dead_letters if config.compliance.strict else None,
            memory_mb=config.failures.memory_mb,
            timeout_seconds=config.failures.timeout_seconds,
            reserved_concurrency=config.failures.reserved_concurrency,
            service_name="failures",
            # Exactly the variables of jobcore.settings.FailureSettings.
            environment={
                Env.JOB_TABLE_NAME: table.table_name,
                Env.DLQ_URL: queues.dead_letter_queue.queue_url,
                Env.EXECUTION_TIMEOUT_MINUTES: str(config.state_machine.execution_timeout_minutes),
            },
            log_retention_days=config.log_retention_days,
            powertools_layer_version=config.powertools_layer_version,
            powertools_standin=standin,
            powertools_tracer=config.powertools_tracer,
            removal_policy=removal,
            log_group_name=_log_group_name(config, "failures"),
            encryption_key=controls.key,
            placement=controls.placement,
            roles=controls.roles,
        )
        jobs = SegmentedJobStateMachine(
            self,
            "SegmentedJob",
            state_machine_name=f"{prefix}-segmented-job",
            worker=worker.function,
            failures=failures.function,
            table=table,
            dead_letter_queue=queues.dead_letter_queue,
            segment_budget=config.state_machine.segment_budget,
            max_shards=config.state_machine.max_shards,
            max_concurrent_shards=config.state_machine.max_concurrent_shards,
            retry=RetryPolicy(
                interval_seconds=config.state_machine.retry_interval_seconds,
                max_attempts=config.state_machine.retry_max_attempts,
                backoff_rate=config.state_machine.retry_backoff_rate,
                max_delay_seconds=config.state_machine.retry_max_delay_seconds,
                crash_max_attempts=config.state_machine.crash_retry_max_attempts,
            ),
            execution_timeout=Duration.minutes(config.state_machine.execution_timeout_minutes),
            log_retention_days=config.log_retention_days,
            removal_policy=removal,
            encryption_key=controls.key,
            log_group_name=_log_group_name(config, "state-machine"),
            roles=controls.roles,
        )
        ingest = PipelineFunction(
            self,
            "Ingest",
            handler="handlers.ingest.handler",
            code=code,
            description=f"{prefix}: validates job requests and starts their executions",
            memory_mb=config.ingest.function.memory_mb,
            timeout_seconds=config.ingest.function.timeout_seconds,
            reserved_concurrency=config.ingest.function.reserved_concurrency,
            service_name="ingest",
            # Exactly the variables of jobcore.settings.IngestSettings.
            environment={
                Env.JOB_TABLE_NAME: table.table_name,
                Env.INPUT_LOCATIONS: json.dumps([location.uri for location in locations.inputs]),
                Env.OUTPUT_LOCATION: locations.output.uri,
                Env.ENVIRONMENT: config.name,
                Env.DEFAULT_CHUNK_BYTES: str(config.worker.default_chunk_bytes),
                Env.MAX_REJECT_RATIO: str(config.worker.max_reject_ratio),
                Env.JOB_TTL_DAYS: str(config.job_ttl_days),
                Env.DLQ_URL: queues.dead_letter_queue.queue_url,
                # What a job accepted now is pinned to: this deploy's versions and code.
                Env.WORKER_VERSION_ARN: worker.published_version.function_arn,
                Env.FAILURES_VERSION_ARN: failures.published_version.function_arn,
                Env.STATE_MACHINE_VERSION_ARN: jobs.version_arn,
                Env.CODE_DIGEST: digest,
                Env.MAX_SHARDS: str(config.state_machine.max_shards),
                Env.DEFAULT_SHARDS: str(config.state_machine.default_shards),
                Env.ZSTD_SINGLE_FRAME_MAX_BYTES: str(config.ingest.zstd_single_frame_max_bytes),
                Env.TRIGGERS: json.dumps(locations.triggers_setting(config)),
            },
            log_retention_days=config.log_retention_days,
            powertools_layer_version=config.powertools_layer_version,
            powertools_standin=standin,
            powertools_tracer=config.powertools_tracer,
            removal_policy=removal,
            log_group_name=_log_group_name(config, "ingest"),
            encryption_key=controls.key,
            placement=controls.placement,
            roles=controls.roles,
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

        # New objects become jobs: S3's Object Created events, matched per trigger, onto the ingest queue.
        self._object_triggers(config, user_code, locations, queues)

        ExecutionWatchdog(
            self,
            "Watchdog",
            state_machine_arn=jobs.state_machine_arn,
            handler=failures.function,
            dead_letter_queue=watchdog_dead_letters,
        )
        # EventBridge invokes asynchronously: an event the function fails on (after Lambda's own retries)
        # goes to the same queue, not nowhere.
        failures.function.configure_async_invoke(
            on_failure=lambda_destinations.SqsDestination(watchdog_dead_letters),
            retry_attempts=2,
            max_event_age=Duration.hours(6),
        )

        # Job lifecycle events: the table's status transitions, put on the bus (one publisher for every
        # writer of the table).
        bus = events.EventBus.from_event_bus_name(
            self, "JobEventBus", config.events.bus_name or DEFAULT_EVENT_BUS
        )
        job_events = PipelineFunction(
            self,
            "Events",
            handler="handlers.events.handler",
            code=code,
            description=f"{prefix}: publishes job lifecycle events from the job table's stream",
            memory_mb=config.events.function.memory_mb,
            timeout_seconds=config.events.function.timeout_seconds,
            reserved_concurrency=config.events.function.reserved_concurrency,
            service_name="events",
            # Exactly the variables of jobcore.settings.EventsSettings.
            environment={Env.ENVIRONMENT: config.name, Env.EVENT_BUS_NAME: bus.event_bus_name},
            log_retention_days=config.log_retention_days,
            powertools_layer_version=config.powertools_layer_version,
            powertools_standin=standin,
            powertools_tracer=config.powertools_tracer,
            removal_policy=removal,
            log_group_name=_log_group_name(config, "events"),
            encryption_key=controls.key,
            placement=controls.placement,
            roles=controls.roles,
        )
        job_event_stream = JobEventStream(
            self,
            "JobEvents",
            function=job_events.function,
            table=table,
            batch_size=config.events.batch_size,
            retry_attempts=config.events.retry_attempts,
            max_record_age=Duration.hours(config.events.max_record_age_hours),
            encryption_key=controls.key,
        )
        job_events.role.add_to_principal_policy(
            iam.PolicyStatement(actions=["events:PutEvents"], resources=[bus.event_bus_arn])
        )

        # Exact actions only: the ingest pins inputs, writes job records and starts executions; the worker
        # reads its input, writes its outputs and checkpoints; the failures function marks jobs FAILED and
        # dead-letters their requests. None may Scan, Query, or delete anything.
        ingest.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"],
                resources=[table.table_arn],
            )
        )
        # Jobs start on a published version of the definition only (their pin), never the unqualified one.
        ingest.role.add_to_principal_policy(
            iam.PolicyStatement(actions=["states:StartExecution"], resources=[jobs.versions_arn])
        )
        ingest.role.add_to_principal_policy(
            iam.PolicyStatement(actions=["sqs:SendMessage"], resources=[queues.dead_letter_queue.queue_arn])
        )
        worker.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["dynamodb:GetItem", "dynamodb:UpdateItem"], resources=[table.table_arn]
            )
        )
        for role in (ingest.role, worker.role):
            locations.grant_read_inputs(role)
        locations.grant_write_outputs(worker.role)
        locations.grant_read_access_points(worker.role)
        failures.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["dynamodb:GetItem", "dynamodb:UpdateItem"], resources=[table.table_arn]
            )
        )
        failures.role.add_to_principal_policy(
            iam.PolicyStatement(actions=["sqs:SendMessage"], resources=[queues.dead_letter_queue.queue_arn])
        )

        metrics = PipelineMetrics(
            ingest_queue=queues.queue,
            dead_letter_queue=queues.dead_letter_queue,
            watchdog_dead_letter_queue=watchdog_dead_letters,
            job_events_dead_letter_queue=job_event_stream.dead_letter_queue,
            functions={
                "Ingest": WatchedFunction(
                    function=ingest.function, timeout_seconds=config.ingest.function.timeout_seconds
                ),
                "Worker": WatchedFunction(
                    function=worker.function,
                    timeout_seconds=config.worker.function.timeout_seconds,
                    safety_margin_ms=config.worker.safety_margin_ms,
                ),
                "Failures": WatchedFunction(
                    function=failures.function, timeout_seconds=config.failures.timeout_seconds
                ),
                "Events": WatchedFunction(
                    function=job_events.function, timeout_seconds=config.events.function.timeout_seconds
                ),
            },
            state_machine=jobs.state_machine,
            table=table,
            period=Duration.seconds(config.alarms.evaluation_period_seconds),
        )
        alarms = PipelineAlarms(
            self,
            "Alarms",
            metrics=metrics,
            queue_age_threshold_seconds=config.alarms.queue_age_threshold_seconds,
            error_rate_percent=config.alarms.error_rate_percent,
            events_delay_warning_minutes=config.events.delay_warning_minutes,
            sustained=Sustained(
                datapoints=config.alarms.sustained_datapoints, periods=config.alarms.sustained_periods
            ),
            emails={
                Severity.CRITICAL: config.alarms.critical_email,
                Severity.WARNING: config.alarms.warning_email,
            },
            environment_name=config.name,
            encryption_key=controls.key,
        )
        PipelineDashboard(
            self,
            "Dashboard",
            metrics=metrics,
            alarms=alarms,
            worker_label="Worker",
            environment_name=config.name,
        )

        acknowledge_pipeline(
            ingest=ingest,
            worker=worker,
            failures=failures,
            jobs=jobs,
            queues=queues,
            watchdog_dead_letters=watchdog_dead_letters,
            locations=locations,
            in_vpc=controls.placement is not None,
        )

        acknowledge_job_events(
            function=job_events, stream=job_event_stream, in_vpc=controls.placement is not None
        )
        if config.compliance.strict:
            acknowledge_strict_pipeline(
                functions={"ingest": ingest, "worker": worker, "failures": failures, "events": job_events},
                network=controls.network,
                unreserved={
                    label: config.compliance.unreserved_reason or ""
                    for label, function in config.functions.items()
                    if function.reserved_concurrency is None
                },
            )

        for severity, email in (
            (Severity.CRITICAL, config.alarms.critical_email),
            (Severity.WARNING, config.alarms.warning_email),
        ):
            if email:
                acknowledge_alarm_subscriptions(alarms.topic(severity))

        self._outputs(
            config=config,
            user_code=user_code,
            queues=queues,
            jobs=jobs,
            pinned={"WorkerVersionArn": worker, "FailuresVersionArn": failures},
            digest=digest,
            alarms=alarms,
        )

    def _outputs(
        self,
        *,
        config: EnvironmentConfig,
        user_code: UserCode,
        queues: IngestQueue,
        jobs: SegmentedJobStateMachine,
        pinned: dict[str, PipelineFunction],
        digest: str,
        alarms: PipelineAlarms,
    ) -> None:
        """What the CLI and the tests find the deployed pipeline through (pipeline_contract.STACK_OUTPUTS)."""
        CfnOutput(self, "IngestQueueUrl", value=queues.queue.queue_url)
        CfnOutput(self, "DeadLetterQueueUrl", value=queues.dead_letter_queue.queue_url)
        CfnOutput(self, "StateMachineArn", value=jobs.state_machine.state_machine_arn)
        # What this deploy pins new jobs to (`pipeline versions` keeps these; prune deletes older unused ones).
        for name, function in pinned.items():
            CfnOutput(self, name, value=function.published_version.function_arn)
        CfnOutput(self, "StateMachineVersionArn", value=jobs.version_arn)
        CfnOutput(self, "CodeDigest", value=digest)
        # AlarmTopicArn is the critical (paging) topic: the name it had when there was one topic.
        CfnOutput(self, "AlarmTopicArn", value=alarms.topic(Severity.CRITICAL).topic_arn)
        CfnOutput(self, "WarningAlarmTopicArn", value=alarms.topic(Severity.WARNING).topic_arn)
        # The transforms the functions register (built-ins and user code): the CLI checks names against it.
        CfnOutput(self, "Transforms", value=",".join(user_code.transforms))
        # The request's `shards` ceiling here: the CLI refuses more before uploading anything.
        CfnOutput(self, "MaxShards", value=str(config.state_machine.max_shards))

    def _object_triggers(
        self, config: EnvironmentConfig, user_code: UserCode, locations: _Locations, queues: IngestQueue
    ) -> None:
        unknown = [t.transform for t in config.triggers if t.transform not in user_code.transforms]
        if unknown:
            raise ValueError(
                f"config triggers name transforms that are not registered: {', '.join(sorted(set(unknown)))} "
                f"(registered: {', '.join(user_code.transforms)})"
            )
        ObjectTriggers(
            self,
            "ObjectTriggers",
            sources=[
                TriggerSource(bucket_name=locations.bucket_name(t.bucket), prefix=t.prefix, suffix=t.suffix)
                for t in config.triggers
            ],
            queue=queues.queue,
            dead_letter_queue=queues.dead_letter_queue,
        )

    @property
    def availability_zones(self) -> list[str]:
        """The created VPC's zones: the region's first two, chosen by CloudFormation at deploy
        (Fn::GetAZs). CDK would look them up at synth for a stack with an account (the local one), which
        needs credentials; synth stays offline."""
        return [Fn.select(index, Fn.get_azs()) for index in range(2)]


@dataclass(frozen=True, kw_only=True)
class _Controls:
    """What the compliance profile gives the constructs: under `strict` the stateful stack's key, roles with
    managed policies under the pipeline's path, and a network for the functions; otherwise nothing."""

    key: kms.IKey | None = None
    roles: RoleStyle = DEFAULT_ROLES
    placement: FunctionPlacement | None = None
    network: FunctionNetwork | None = None

    @staticmethod
    def of(
        stack: Stack, config: EnvironmentConfig, *, key_arn_export: str | None, removal: RemovalPolicy
    ) -> _Controls:
        if not config.compliance.strict:
            return _Controls()
        if key_arn_export is None:
            raise ValueError("the strict profile needs the stateful stack's key (key_arn_export)")
        key = kms.Key.from_key_arn(stack, "Key", Fn.import_value(key_arn_export))
        roles = RoleStyle(managed_policies=True, path=role_path(config.name))
        given = config.compliance.vpc
        network = FunctionNetwork(
            stack,
            "Network",
            vpc_id=given.vpc_id if given else None,
            availability_zones=given.availability_zones if given else (),
            subnet_ids=given.subnet_ids if given else (),
            cidr=config.compliance.vpc_cidr,
            encryption_key=key,
            flow_log_group_name=f"{log_group_prefix(config.name)}vpc-flow-logs",
            log_retention_days=config.log_retention_days,
            roles=roles,
            removal_policy=removal,
        )
        placement = FunctionPlacement(
            vpc=network.vpc, subnets=network.subnets, security_group=network.security_group
        )
        return _Controls(key=key, roles=roles, placement=placement, network=network)


def _log_group_name(config: EnvironmentConfig, component: str) -> str | None:
    """Named under strict only (the key policy lets CloudWatch Logs use the key for these names); the
    default profile keeps CloudFormation's generated names."""
    if not config.compliance.strict:
        return None
    return f"{log_group_prefix(config.name)}{component}"


class _ResolvedLocation:
    """A config Location with its bucket resolved (the data bucket's name is a deploy-time token)."""

    def __init__(self, location: Location, bucket: s3.IBucket) -> None:
        self.bucket = bucket
        self.prefix = location.prefix
        self.is_data_bucket = location.bucket is None

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket.bucket_name}/{self.prefix}"

    @property
    def objects_arn(self) -> str:
        return self.bucket.arn_for_objects(f"{self.prefix}*")


class _Locations:
    """config.locations made concrete: the URIs the functions validate against and the IAM grants, from
    the same values, so what the ingest accepts is exactly what the worker may read."""

    def __init__(self, scope: Construct, config: EnvironmentConfig, *, data_bucket: s3.IBucket) -> None:
        buckets: dict[str, s3.IBucket] = {}

        def bucket_of(location: Location) -> s3.IBucket:
            if location.bucket is None:
                return data_bucket
            if location.bucket not in buckets:
                buckets[location.bucket] = s3.Bucket.from_bucket_name(
                    scope, f"Location-{location.bucket}", location.bucket
                )
            return buckets[location.bucket]

        self.inputs = [_ResolvedLocation(loc, bucket_of(loc)) for loc in config.locations.inputs]
        self.output = _ResolvedLocation(config.locations.output, bucket_of(config.locations.output))
        self._bucket_of = bucket_of

    def bucket_name(self, bucket: str | None) -> str:
        """A config bucket's name (None: the data bucket's, a deploy-time token)."""
        return self._bucket_of(Location(bucket)).bucket_name

    def triggers_setting(self, config: EnvironmentConfig) -> list[dict[str, object]]:
        """The ingest's TRIGGERS: config triggers with their buckets resolved (jobcore.notifications)."""
        return [
            {
                "bucket": self.bucket_name(t.bucket),
                "prefix": t.prefix,
                "suffix": t.suffix,
                "transform": t.transform,
                "transform_options": dict(t.transform_options),
                "compression": t.compression,
                **({"shards": t.shards} if t.shards is not None else {}),
            }
            for t in config.triggers
        ]

    def grant_read_inputs(self, role: iam.IRole) -> None:
        """GetObject and GetObjectVersion (reads, and the ingest's HEAD that pins an input, of exactly the
        pinned version where the bucket is versioned) on the input locations only, and
        ListBucket on their buckets so that a missing input is NoSuchKey (clear, permanent), not 403."""
        role.add_to_principal_policy(
            iam.PolicyStatement(
                # GetObjectVersion: a read naming a VersionId (a pin on a versioned bucket, the version an
                # object notification names) needs it on AWS besides GetObject.
                actions=["s3:GetObject", "s3:GetObjectVersion"],
                resources=[loc.objects_arn for loc in self.inputs],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=list({loc.bucket.bucket_arn: None for loc in self.inputs}),
            )
        )

    def grant_read_access_points(self, role: iam.IRole) -> None:
        """GetObject on the gzip access points a worker writes beside a job's outputs (and reads back when
        it resumes: jobcore.compressed), and on nothing else it writes."""
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"],
                resources=[self.output.bucket.arn_for_objects(f"{self.output.prefix}*/{ACCESS_DIR}*")],
            )
        )

    def grant_write_outputs(self, role: iam.IRole) -> None:
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=["s3:PutObject"], resources=[self.output.objects_arn])
        )
