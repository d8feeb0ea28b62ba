"""The stateful stack: what must outlive any deploy of the pipeline (the job table, the data bucket)."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from stacks.config import EnvironmentConfig
from stacks.constructs.data_bucket import DataBucket
from stacks.constructs.job_table import JobTable
from stacks.nag import acknowledge_stateful


class StatefulStack(Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: EnvironmentConfig, **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, termination_protection=config.protect_stateful, **kwargs)
        self.job_table = JobTable(self, "JobTable", protect=config.protect_stateful)
        self.data_bucket = DataBucket(
            self,
            "DataBucket",
            protect=config.protect_stateful,
            output_expiration_days=config.output_expiration_days,
            event_bridge=any(trigger.bucket is None for trigger in config.triggers),
        )
        # Explicit export names are the contract with the pipeline stack: readable in diffs and in
        # cdk-nag finding ids, and stable when logical ids change (CDK's generated ones are not).
        self.job_table_name_export = f"{self.stack_name}-JobTableName"
        self.data_bucket_name_export = f"{self.stack_name}-DataBucketName"
        self.job_table_stream_arn_export = f"{self.stack_name}-JobTableStreamArn"
        CfnOutput(
            self,
            "JobTableName",
            value=self.job_table.table.table_name,
            export_name=self.job_table_name_export,
        )
        CfnOutput(
            self,
            "JobTableStreamArn",
            value=self.job_table.stream_arn,
            export_name=self.job_table_stream_arn_export,
        )
        CfnOutput(
            self,
            "DataBucketName",
            value=self.data_bucket.bucket.bucket_name,
            export_name=self.data_bucket_name_export,
        )
        acknowledge_stateful(data_bucket=self.data_bucket)
