"""The job table: one item per job, keyed by `job_id`, with a GSI to list jobs by status."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from constructs import Construct

from pipeline_contract import STATUS_INDEX, TTL_ATTRIBUTE


class JobTable(Construct):
    """Invariant: on-demand, point-in-time recovery, TTL on `expires_at`, and a (status, updated_at) GSI
    so that "list FAILED jobs" is a Query, never a Scan; a stream of every change with the item before and
    after (the job lifecycle events are made from it). Protected from deletion when `protect` is set.
    Encrypted with `encryption_key` when one is given (its stream too), else with an AWS-owned key."""

    def __init__(
        self, scope: Construct, construct_id: str, *, protect: bool, encryption_key: kms.IKey | None = None
    ) -> None:
        super().__init__(scope, construct_id)
        self._table = dynamodb.Table(
            self,
            "Table",
            partition_key=dynamodb.Attribute(name="job_id", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            time_to_live_attribute=TTL_ATTRIBUTE,
            deletion_protection=protect,
            # Every writer changes status here: the one place that sees every transition.
            stream=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,
            removal_policy=RemovalPolicy.RETAIN if protect else RemovalPolicy.DESTROY,
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED if encryption_key else None,
            encryption_key=encryption_key,
        )
        self._table.add_global_secondary_index(
            index_name=STATUS_INDEX,
            partition_key=dynamodb.Attribute(name="status", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="updated_at", type=dynamodb.AttributeType.STRING),
            # ALL: `pipeline jobs --status S` shows counters and errors straight from the index.
            projection_type=dynamodb.ProjectionType.ALL,
        )

    @property
    def table(self) -> dynamodb.ITable:
        return self._table

    @property
    def stream_arn(self) -> str:
        arn = self._table.table_stream_arn
        assert arn is not None, "the table has a stream"
        return arn
