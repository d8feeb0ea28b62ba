"""Alarms and a dashboard for the pipeline.

Three separate concerns, as in cdk-monitoring-constructs: *what to measure* (`PipelineMetrics`),
*what to alarm on* (`alarm_specs`: thresholds and the words a person reads at 3 a.m.), and *who to tell*
(`PipelineAlarms` wires every alarm to one SNS topic, with an optional e-mail subscription).
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

GT = cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD


@dataclass(frozen=True, kw_only=True)
class PipelineMetrics:
    """What to measure: the resources whose metrics the alarms and the dashboard read."""

    ingest_queue: sqs.IQueue
    dead_letter_queue: sqs.IQueue
    watchdog_dead_letter_queue: sqs.IQueue
    job_events_dead_letter_queue: sqs.IQueue
    functions: dict[str, lambda_.IFunction]  # label -> function
    worker: lambda_.IFunction
    worker_timeout_seconds: int
    state_machine: sfn.IStateMachine
    table: dynamodb.ITable
    period: Duration

    def lambda_metric(
        self, function: lambda_.IFunction, name: str, statistic: str = "Sum"
    ) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace="AWS/Lambda",
            metric_name=name,
            dimensions_map={"FunctionName": function.function_name},
            statistic=statistic,
            period=self.period,
        )

    def states_metric(self, name: str) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace="AWS/States",
            metric_name=name,
            dimensions_map={"StateMachineArn": self.state_machine.state_machine_arn},
            statistic="Sum",
            period=self.period,
        )

    def table_metric(self, name: str) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace="AWS/DynamoDB",
            metric_name=name,
            dimensions_map={"TableName": self.table.table_name},
            statistic="Sum",
            period=self.period,
        )


@dataclass(frozen=True, kw_only=True)
class AlarmSpec:
    """What to alarm on: one alarm, its threshold and what a person should know and do."""

    id: str
    metric: cloudwatch.IMetric
    threshold: float
    description: str
    comparison: cloudwatch.ComparisonOperator = GT
    evaluation_periods: int = 1


def alarm_specs(metrics: PipelineMetrics, *, queue_age_threshold_seconds: int) -> list[AlarmSpec]:
    """Every alarm a human must know about. Descriptions: what happened, then what to do first."""
    specs = [
        AlarmSpec(
            id="DeadLetterQueueNotEmpty",
            metric=metrics.dead_letter_queue.metric_approximate_number_of_messages_visible(
                period=metrics.period, statistic="Maximum"
            ),
            threshold=0,
            description=(
                "Job requests are in the dead-letter queue: rejected requests or failed jobs. "
                "First: `pipeline dlq list` shows each message's error_type and error_message; fix the cause, "
                "then `pipeline dlq redrive`."
            ),
        ),
        AlarmSpec(
            id="WatchdogDeadLettersNotEmpty",
            metric=metrics.watchdog_dead_letter_queue.metric_approximate_number_of_messages_visible(
                period=metrics.period, statistic="Maximum"
            ),
            threshold=0,
            description=(
                "The execution watchdog could not take a Step Functions status-change event after its "
                "retries: a job whose execution timed out or was stopped may still say RUNNING. First: the "
                "failures function's log group; each message names the execution (detail.name is "
                "JOB_ID-aATTEMPT-eN); `pipeline status JOB_ID`, then `pipeline cancel` or a redrive."
            ),
        ),
        AlarmSpec(
            id="JobEventsDeadLettersNotEmpty",
            metric=metrics.job_events_dead_letter_queue.metric_approximate_number_of_messages_visible(
                period=metrics.period, statistic="Maximum"
            ),
            threshold=0,
            description=(
                "Job lifecycle events were not published after the stream mapping's retries: subscribers "
                "missed a Job Started/Succeeded/Failed/Rejected/Cancelled. First: the events function's log "
                "group (why PutEvents failed: the bus, its policy, throttling); each message names the stream "
                "shard and the sequence numbers (DDBStreamBatchInfo) of the batch; the jobs themselves are "
                "unaffected (`pipeline status JOB_ID`)."
            ),
        ),
        AlarmSpec(
            id="IngestQueueBacklogAge",
            metric=metrics.ingest_queue.metric_approximate_age_of_oldest_message(
                period=metrics.period, statistic="Maximum"
            ),
            threshold=queue_age_threshold_seconds,
            description=(
                f"The oldest job request has waited over {queue_age_threshold_seconds}s in the ingest queue. "
                "First: check the ingest function's Errors and Throttles alarms and its logs; then whether "
                "its max concurrency is too low for the arrival rate."
            ),
        ),
        AlarmSpec(
            id="WorkerDurationNearTimeout",
            metric=metrics.lambda_metric(metrics.worker, "Duration", statistic="p99"),
            threshold=int(metrics.worker_timeout_seconds * 1000 * 0.8),
            description=(
                f"Worker p99 duration is over 80% of its {metrics.worker_timeout_seconds}s timeout: segments "
                "risk being killed mid-chunk. First: check chunk size and the safety margin (a chunk must fit "
                "comfortably in the margin), and S3/DynamoDB latency."
            ),
        ),
    ]
    for label, function in metrics.functions.items():
        specs += [
            AlarmSpec(
                id=f"{label}Errors",
                metric=metrics.lambda_metric(function, "Errors"),
                threshold=0,
                description=(
                    f"The {label.lower()} function raised unhandled errors. First: its log group (errors are "
                    "logged with job_id); transient ones are retried, permanent ones end in the DLQ."
                ),
            ),
            AlarmSpec(
                id=f"{label}Throttles",
                metric=metrics.lambda_metric(function, "Throttles"),
                threshold=0,
                description=(
                    f"The {label.lower()} function was throttled. First: compare its reserved concurrency and "
                    "the account's concurrency quota with the load; throttled work is retried but delayed."
                ),
            ),
            AlarmSpec(
                id=f"{label}RecursiveInvocationsDropped",
                metric=metrics.lambda_metric(function, "RecursiveInvocationsDropped"),
                threshold=0,
                description=(
                    f"Lambda stopped a recursive loop through the {label.lower()} function (it re-enqueued "
                    "work that triggers itself). The dropped event is in the DLQ. First: find the code path "
                    "that sends to its own trigger; long work belongs in the state machine."
                ),
            ),
        ]
    for metric_name, happened in (
        ("ExecutionsFailed", "failed: the job is FAILED and its request is in the DLQ"),
        ("ExecutionsTimedOut", "hit the execution timeout: the job may be stuck RUNNING"),
        ("ExecutionsAborted", "were stopped by someone or something other than `pipeline cancel`"),
        ("ExecutionThrottled", "were throttled by Step Functions: progress is delayed"),
    ):
        specs.append(
            AlarmSpec(
                id=f"StateMachine{metric_name}",
                metric=metrics.states_metric(metric_name),
                threshold=0,
                description=(
                    f"Segmented-job executions {happened}. First: the execution's history in the Step "
                    "Functions console (or its log group) and `pipeline status JOB_ID`."
                ),
            )
        )
    for metric_name in ("ReadThrottleEvents", "WriteThrottleEvents"):
        specs.append(
            AlarmSpec(
                id=f"JobTable{metric_name}",
                metric=metrics.table_metric(metric_name),
                threshold=0,
                description=(
                    f"The job table reported {metric_name}: checkpoints are being retried. First: look for a "
                    "hot job_id or a burst of submissions; on-demand tables adapt within minutes."
                ),
            )
        )
    return specs


class PipelineAlarms(Construct):
    """Invariant: every alarm notifies the topic on ALARM and on OK; missing data is not a breach
    (an idle pipeline is healthy)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        metrics: PipelineMetrics,
        queue_age_threshold_seconds: int,
        email: str | None,
        environment_name: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self._topic = sns.Topic(
            self, "Topic", display_name=f"resilient-pipeline {environment_name} alarms", enforce_ssl=True
        )
        # A topic policy replaces SNS's default one, which would otherwise let CloudWatch publish: without
        # this statement beside the TLS Deny, every alarm action is refused and no alarm reaches anyone.
        stack = Stack.of(self)
        self._topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarmsOfThisAccount",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[self._topic.topic_arn],
                conditions={
                    "StringEquals": {"aws:SourceAccount": stack.account},
                    "ArnLike": {
                        "aws:SourceArn": f"arn:{stack.partition}:cloudwatch:{stack.region}:{stack.account}:alarm:*"
                    },
                },
            )
        )
        if email:
            self._topic.add_subscription(subscriptions.EmailSubscription(email))
        action = cw_actions.SnsAction(self._topic)
        self._alarms: dict[str, cloudwatch.Alarm] = {}
        for spec in alarm_specs(metrics, queue_age_threshold_seconds=queue_age_threshold_seconds):
            alarm = cloudwatch.Alarm(
                self,
                spec.id,
                metric=spec.metric,
                threshold=spec.threshold,
                comparison_operator=spec.comparison,
                evaluation_periods=spec.evaluation_periods,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                alarm_description=spec.description,
            )
            alarm.add_alarm_action(action)
            alarm.add_ok_action(action)
            self._alarms[spec.id] = alarm
        self._dashboard = self._build_dashboard(metrics)

    def _build_dashboard(self, metrics: PipelineMetrics) -> cloudwatch.Dashboard:
        dashboard = cloudwatch.Dashboard(self, "Dashboard")
        dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(title="Alarms", alarms=list(self._alarms.values()), width=24),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Queues",
                left=[
                    metrics.ingest_queue.metric_approximate_number_of_messages_visible(period=metrics.period),
                    metrics.dead_letter_queue.metric_approximate_number_of_messages_visible(
                        period=metrics.period
                    ),
                ],
                right=[metrics.ingest_queue.metric_approximate_age_of_oldest_message(period=metrics.period)],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Executions",
                left=[
                    metrics.states_metric(name)
                    for name in (
                        "ExecutionsStarted",
                        "ExecutionsSucceeded",
                        "ExecutionsFailed",
                        "ExecutionsTimedOut",
                    )
                ],
                width=12,
            ),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Lambda errors and throttles",
                left=[
                    metrics.lambda_metric(function, name)
                    for function in metrics.functions.values()
                    for name in ("Errors", "Throttles")
                ],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Worker duration (p50, p99)",
                left=[metrics.lambda_metric(metrics.worker, "Duration", statistic=s) for s in ("p50", "p99")],
                width=12,
            ),
        )
        return dashboard

    @property
    def topic(self) -> sns.ITopic:
        return self._topic

    @property
    def alarms(self) -> dict[str, cloudwatch.Alarm]:
        return dict(self._alarms)
