"""The environment's CloudWatch dashboard: progress, backlog, outcomes, dead letters and the alarms."""

from __future__ import annotations

from aws_cdk import aws_cloudwatch as cloudwatch
from constructs import Construct

from pipeline_contract import METRICS_NAMESPACE
from stacks.constructs.alarms import PipelineAlarms, PipelineMetrics, Severity

# The worker's own metrics (handlers/worker.py): per segment, without a job_id dimension.
BYTES_IN = "BytesIn"
SEGMENT_THROUGHPUT = "SegmentThroughput"


class PipelineDashboard(Construct):
    """Invariant: one dashboard per environment, named after it; every alarm is on it, by severity."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        metrics: PipelineMetrics,
        alarms: PipelineAlarms,
        worker_label: str,
        environment_name: str,
    ) -> None:
        super().__init__(scope, construct_id)
        worker = metrics.functions[worker_label].function

        def worker_metric(name: str, statistic: str) -> cloudwatch.Metric:
            # Powertools' `service` dimension, and the function's name: environments sharing an account
            # (dev and staging, say) keep their own series.
            return cloudwatch.Metric(
                namespace=METRICS_NAMESPACE,
                metric_name=name,
                dimensions_map={"service": "worker", "FunctionName": worker.function_name},
                statistic=statistic,
                period=metrics.period,
            )

        # A physical name: people open the dashboard by environment in the console.
        self._dashboard = cloudwatch.Dashboard(
            self, "Dashboard", dashboard_name=f"resilient-pipeline-{environment_name}"
        )
        self._dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(
                title="Critical alarms (page)", alarms=alarms.alarms_of(Severity.CRITICAL), width=12
            ),
            cloudwatch.AlarmStatusWidget(
                title="Warning alarms", alarms=alarms.alarms_of(Severity.WARNING), width=12
            ),
        )
        bytes_in = worker_metric(BYTES_IN, "Sum")
        self._dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Throughput (bytes/s)",
                left=[
                    cloudwatch.MathExpression(
                        expression="bytes / PERIOD(bytes)",
                        using_metrics={"bytes": bytes_in},
                        label="all segments",
                        period=metrics.period,
                    )
                ],
                right=[
                    worker_metric(SEGMENT_THROUGHPUT, "p50").with_(label="per segment p50"),
                    worker_metric(SEGMENT_THROUGHPUT, "Minimum").with_(label="per segment min"),
                ],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Bytes processed",
                left=[bytes_in.with_(label="bytes read (Sum)")],
                width=12,
            ),
        )
        self._dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Ingest backlog",
                left=[
                    metrics.ingest_queue.metric_approximate_number_of_messages_visible(
                        period=metrics.period, statistic="Maximum", label="waiting"
                    ),
                    metrics.ingest_queue.metric_approximate_number_of_messages_not_visible(
                        period=metrics.period, statistic="Maximum", label="in flight"
                    ),
                ],
                right=[
                    metrics.ingest_queue.metric_approximate_age_of_oldest_message(
                        period=metrics.period, statistic="Maximum", label="oldest (s)"
                    )
                ],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Dead-letter queues",
                left=[
                    metrics.dead_letter_queue.metric_approximate_number_of_messages_visible(
                        period=metrics.period, statistic="Maximum", label="DLQ"
                    ),
                    metrics.watchdog_dead_letter_queue.metric_approximate_number_of_messages_visible(
                        period=metrics.period, statistic="Maximum", label="watchdog DLQ"
                    ),
                    metrics.job_events_dead_letter_queue.metric_approximate_number_of_messages_visible(
                        period=metrics.period, statistic="Maximum", label="job events DLQ"
                    ),
                ],
                width=12,
            ),
        )
        self._dashboard.add_widgets(
            cloudwatch.GraphWidget(
                # A continue-as-new hand-over ends its execution as succeeded too.
                title="Executions by outcome",
                left=[
                    metrics.states_metric(name)
                    for name in (
                        "ExecutionsStarted",
                        "ExecutionsSucceeded",
                        "ExecutionsFailed",
                        "ExecutionsTimedOut",
                        "ExecutionsAborted",
                    )
                ],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Function error rates (%)",
                left=[
                    metrics.error_rate(watched.function, id_suffix=label).with_(label=label)
                    for label, watched in metrics.functions.items()
                ],
                width=12,
            ),
        )
        self._dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Function throttles",
                left=[
                    metrics.lambda_metric(watched.function, "Throttles").with_(label=label)
                    for label, watched in metrics.functions.items()
                ],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Worker duration (p50, p99)",
                left=[metrics.lambda_metric(worker, "Duration", statistic=s) for s in ("p50", "p99")],
                width=12,
            ),
        )

    @property
    def dashboard(self) -> cloudwatch.Dashboard:
        return self._dashboard
