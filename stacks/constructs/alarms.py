"""Alarms for the pipeline, in two severities.

Three separate concerns, as in cdk-monitoring-constructs: *what to measure* (`PipelineMetrics`),
*what to alarm on* (`alarm_specs`: severity, thresholds and the words a person reads at 3 a.m.), and *who to
tell* (`PipelineAlarms` wires each alarm to its severity's SNS topic, each with an optional e-mail).

- critical (pages): work is lost or stuck: a DLQ is not empty, executions failed, timed out or were
  aborted, the ingest backlog is old, Lambda dropped a recursive loop. Each fires on the first datapoint.
- warning (does not page): the pipeline is degraded but recovers on its own (retries): function error rates,
  throttles, durations near the timeout. Rates and throttles fire only when sustained (M of N periods): a
  transient error that the state machine retries is an error to Lambda, and must not wake anyone.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

GT = cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD
# A function that does not run to a time budget of its own: its p99 duration over this share of its timeout
# is near being killed.
DURATION_WARNING_SHARE = 0.8


class Severity(enum.Enum):
    CRITICAL = "critical"
    WARNING = "warning"


@dataclass(frozen=True, kw_only=True)
class WatchedFunction:
    """A function and what its durations mean. `safety_margin_ms`: the function stops its own work when
    less than this remains (the worker), so its healthy duration reaches timeout - margin."""

    function: lambda_.IFunction
    timeout_seconds: int
    safety_margin_ms: int | None = None

    @property
    def duration_warning_ms(self) -> int:
        """p99 over this is near the timeout: 80% of it, or for a time-budgeted function halfway into its
        safety margin (its healthy segments end at timeout - margin, above 80% of most timeouts)."""
        timeout_ms = self.timeout_seconds * 1000
        if self.safety_margin_ms is None:
            return int(timeout_ms * DURATION_WARNING_SHARE)
        return timeout_ms - self.safety_margin_ms // 2


def lambda_metric(
    function: lambda_.IFunction, name: str, *, period: Duration, statistic: str = "Sum"
) -> cloudwatch.Metric:
    return cloudwatch.Metric(
        namespace="AWS/Lambda",
        metric_name=name,
        dimensions_map={"FunctionName": function.function_name},
        statistic=statistic,
        period=period,
    )


@dataclass(frozen=True, kw_only=True)
class PipelineMetrics:
    """What to measure: the resources whose metrics the alarms and the dashboard read."""

    ingest_queue: sqs.IQueue
    dead_letter_queue: sqs.IQueue
    watchdog_dead_letter_queue: sqs.IQueue
    job_events_dead_letter_queue: sqs.IQueue
    functions: dict[str, WatchedFunction]  # label -> function
    state_machine: sfn.IStateMachine
    table: dynamodb.ITable
    period: Duration

    def lambda_metric(
        self, function: lambda_.IFunction, name: str, statistic: str = "Sum"
    ) -> cloudwatch.Metric:
        return lambda_metric(function, name, period=self.period, statistic=statistic)

    def error_rate(self, function: lambda_.IFunction, *, id_suffix: str = "") -> cloudwatch.MathExpression:
        """Errors per 100 invocations. Periods without invocations have no datapoint (not breaching).
        `id_suffix` keeps the metric ids apart where several rates share one graph."""
        errors, invocations = f"errors{id_suffix}", f"invocations{id_suffix}"
        return cloudwatch.MathExpression(
            expression=f"100 * FILL({errors}, 0) / {invocations}",
            using_metrics={
                errors: self.lambda_metric(function, "Errors"),
                invocations: self.lambda_metric(function, "Invocations"),
            },
            label="error rate (%)",
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
class Sustained:
    """A warning fires when `datapoints` of the last `periods` periods breach (M of N)."""

    datapoints: int
    periods: int


@dataclass(frozen=True, kw_only=True)
class AlarmSpec:
    """What to alarm on: one alarm, its severity, threshold and what a person should know and do."""

    id: str
    severity: Severity
    metric: cloudwatch.IMetric
    threshold: float
    description: str
    comparison: cloudwatch.ComparisonOperator = GT
    # None: the first breaching datapoint fires it.
    sustained: Sustained | None = None


def recursive_loop_spec(label: str, function: lambda_.IFunction, *, period: Duration) -> AlarmSpec:
    """The alarm for Lambda's recursive loop detection stopping `function` (any function that sends to
    what triggers it: examples/self-recursion/ deploys it for the anti-pattern)."""
    return AlarmSpec(
        id=f"{label}RecursiveInvocationsDropped",
        severity=Severity.CRITICAL,
        metric=lambda_metric(function, "RecursiveInvocationsDropped", period=period),
        threshold=0,
        description=(
            f"Lambda stopped a recursive loop through the {label.lower()} function (it re-enqueued work that "
            "triggers itself). The dropped event is in the DLQ. First: find the code path that sends "
            "to its own trigger; long work belongs in the state machine."
        ),
    )


def build_alarm(scope: Construct, spec: AlarmSpec) -> cloudwatch.Alarm:
    """The CloudWatch alarm of a spec: missing data is not a breach (an idle pipeline is healthy)."""
    return cloudwatch.Alarm(
        scope,
        spec.id,
        metric=spec.metric,
        threshold=spec.threshold,
        comparison_operator=spec.comparison,
        evaluation_periods=spec.sustained.periods if spec.sustained else 1,
        datapoints_to_alarm=spec.sustained.datapoints if spec.sustained else 1,
        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        alarm_description=f"[{spec.severity.value}] {spec.description}",
    )


def alarm_specs(
    metrics: PipelineMetrics,
    *,
    queue_age_threshold_seconds: int,
    error_rate_percent: float,
    events_delay_warning_minutes: int,
    sustained: Sustained,
) -> list[AlarmSpec]:
    """Every alarm a human must know about. Descriptions: what happened, then what to do first."""
    critical, warning = Severity.CRITICAL, Severity.WARNING
    m_of_n_words = f"in {sustained.datapoints} of the last {sustained.periods} periods"
    specs = [
        AlarmSpec(
            id="DeadLetterQueueNotEmpty",
            severity=critical,
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
            severity=critical,
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
            severity=critical,
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
            id="JobEventsDelayed",
            severity=warning,
            metric=metrics.lambda_metric(
                metrics.functions["Events"].function, "IteratorAge", statistic="Maximum"
            ),
            threshold=events_delay_warning_minutes * 60_000,
            description=(
                f"A job's status change waits over {events_delay_warning_minutes} min to be published as "
                "a job event: the events function keeps retrying a batch (a partial batch response is "
                "not a function error, so no error-rate warning shows it). Subscribers get the events "
                "late, in full, unless this lasts until the records reach the mapping's maximum age "
                "(then JobEventsDeadLettersNotEmpty). First: the events function's log group (why "
                "PutEvents fails: the bus, its policy, throttling)."
            ),
        ),
        AlarmSpec(
            id="IngestQueueBacklogAge",
            severity=critical,
            metric=metrics.ingest_queue.metric_approximate_age_of_oldest_message(
                period=metrics.period, statistic="Maximum"
            ),
            threshold=queue_age_threshold_seconds,
            description=(
                f"The oldest job request has waited over {queue_age_threshold_seconds}s in the ingest queue. "
                "First: check the ingest function's error-rate and throttles warnings and its logs; then "
                "whether its max concurrency is too low for the arrival rate."
            ),
        ),
    ]
    for label, watched in metrics.functions.items():
        function, name = watched.function, label.lower()
        specs += [
            recursive_loop_spec(label, function, period=metrics.period),
            AlarmSpec(
                id=f"{label}ErrorRate",
                severity=warning,
                metric=metrics.error_rate(function),
                threshold=error_rate_percent,
                description=(
                    f"Over {error_rate_percent:g}% of the {name} function's invocations raised errors "
                    f"{m_of_n_words}. Transient errors are retried (a job fails only when its retries run "
                    f"out, which pages as StateMachineExecutionsFailed), so this warns of a degraded "
                    "dependency or a bad deploy before that. First: its log group (errors are logged with "
                    "job_id and error type)."
                ),
                sustained=sustained,
            ),
            AlarmSpec(
                id=f"{label}Throttles",
                severity=warning,
                metric=metrics.lambda_metric(function, "Throttles"),
                threshold=0,
                description=(
                    f"The {name} function was throttled {m_of_n_words}. First: compare its reserved "
                    "concurrency and the account's concurrency quota with the load; throttled work is retried "
                    "but delayed."
                ),
                sustained=sustained,
            ),
            AlarmSpec(
                id=f"{label}DurationNearTimeout",
                severity=warning,
                metric=metrics.lambda_metric(function, "Duration", statistic="p99"),
                threshold=watched.duration_warning_ms,
                description=(
                    f"The {name} function's p99 duration is over {watched.duration_warning_ms} ms of its "
                    f"{watched.timeout_seconds}s timeout: invocations risk being killed mid-work. First: "
                    + (
                        "chunk size against the safety margin (a chunk must fit comfortably in the margin), "
                        "and S3/DynamoDB latency."
                        if watched.safety_margin_ms is not None
                        else "its log group for slow calls, and S3/DynamoDB/SQS latency."
                    )
                ),
            ),
        ]
    for metric_name, happened in (
        ("ExecutionsFailed", "failed: the job is FAILED and its request is in the DLQ"),
        ("ExecutionsTimedOut", "hit the execution timeout: the job may be stuck RUNNING"),
        ("ExecutionsAborted", "were stopped by someone or something other than `pipeline cancel`"),
    ):
        specs.append(
            AlarmSpec(
                id=f"StateMachine{metric_name}",
                severity=critical,
                metric=metrics.states_metric(metric_name),
                threshold=0,
                description=(
                    f"Segmented-job executions {happened}. First: the execution's history in the Step "
                    "Functions console (or its log group) and `pipeline status JOB_ID`."
                ),
            )
        )
    specs.append(
        AlarmSpec(
            id="StateMachineExecutionThrottled",
            severity=warning,
            metric=metrics.states_metric("ExecutionThrottled"),
            threshold=0,
            description=(
                f"Step Functions throttled state transitions {m_of_n_words}: progress is delayed. First: the "
                "account's Step Functions quotas against the number of shards running at once."
            ),
            sustained=sustained,
        )
    )
    for metric_name in ("ReadThrottleEvents", "WriteThrottleEvents"):
        specs.append(
            AlarmSpec(
                id=f"JobTable{metric_name}",
                severity=warning,
                metric=metrics.table_metric(metric_name),
                threshold=0,
                description=(
                    f"The job table reported {metric_name} {m_of_n_words}: checkpoints are being retried. "
                    "First: look for a hot job_id or a burst of submissions; on-demand tables adapt within "
                    "minutes."
                ),
                sustained=sustained,
            )
        )
    return specs


class PipelineAlarms(Construct):
    """Invariant: every alarm notifies its severity's topic on ALARM and on OK; missing data is not a breach
    (an idle pipeline is healthy); each topic takes only TLS and lets only this account's alarms publish;
    with `encryption_key`, both topics are encrypted with it (its policy lets CloudWatch use it)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        metrics: PipelineMetrics,
        queue_age_threshold_seconds: int,
        error_rate_percent: float,
        events_delay_warning_minutes: int,
        sustained: Sustained,
        emails: dict[Severity, str | None],
        environment_name: str,
        encryption_key: kms.IKey | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self._encryption_key = encryption_key
        # The critical topic keeps the construct id of the single topic it replaces ("Topic"): the same
        # resource, the same ARN, and its e-mail subscribers stay confirmed.
        self._topics = {
            severity: self._topic(
                "Topic" if severity is Severity.CRITICAL else "WarningTopic",
                display_name=f"resilient-pipeline {environment_name} {severity.value} alarms",
                email=emails.get(severity),
            )
            for severity in Severity
        }
        self._alarms: dict[str, cloudwatch.Alarm] = {}
        self._severities: dict[str, Severity] = {}
        for spec in alarm_specs(
            metrics,
            queue_age_threshold_seconds=queue_age_threshold_seconds,
            error_rate_percent=error_rate_percent,
            events_delay_warning_minutes=events_delay_warning_minutes,
            sustained=sustained,
        ):
            alarm = build_alarm(self, spec)
            action = cw_actions.SnsAction(self._topics[spec.severity])
            alarm.add_alarm_action(action)
            alarm.add_ok_action(action)
            self._alarms[spec.id] = alarm
            self._severities[spec.id] = spec.severity

    def _topic(self, construct_id: str, *, display_name: str, email: str | None) -> sns.Topic:
        topic = sns.Topic(
            self, construct_id, display_name=display_name, enforce_ssl=True, master_key=self._encryption_key
        )
        # A topic policy replaces SNS's default one, which would otherwise let CloudWatch publish: without
        # this statement beside the TLS Deny, every alarm action is refused and no alarm reaches anyone.
        stack = Stack.of(self)
        topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarmsOfThisAccount",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[topic.topic_arn],
                conditions={
                    "StringEquals": {"aws:SourceAccount": stack.account},
                    "ArnLike": {
                        "aws:SourceArn": f"arn:{stack.partition}:cloudwatch:{stack.region}:{stack.account}:alarm:*"
                    },
                },
            )
        )
        if email:
            topic.add_subscription(subscriptions.EmailSubscription(email))
        return topic

    def topic(self, severity: Severity) -> sns.ITopic:
        return self._topics[severity]

    @property
    def alarms(self) -> dict[str, cloudwatch.Alarm]:
        return dict(self._alarms)

    def alarms_of(self, severity: Severity) -> list[cloudwatch.Alarm]:
        return [alarm for id_, alarm in self._alarms.items() if self._severities[id_] is severity]
