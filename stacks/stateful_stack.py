"""The stateful stack: what must outlive any deploy of the pipeline (the job table, the data bucket) and,
under the `strict` compliance profile, the key they are encrypted with, the data bucket's access logs and
the table's backups."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from stacks.config import EnvironmentConfig
from stacks.constructs.access_log_bucket import AccessLogBucket
from stacks.constructs.data_bucket import DataBucket
from stacks.constructs.job_table import JobTable
from stacks.constructs.job_table_backup import JobTableBackup
from stacks.constructs.pipeline_key import PipelineKey, role_path
from stacks.constructs.roles import RoleStyle
from stacks.nag import acknowledge_stateful, acknowledge_strict_stateful


class StatefulStack(Stack):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: EnvironmentConfig, **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, termination_protection=config.protect_stateful, **kwargs)
        strict = config.compliance.strict
        # Explicit export names are the contract with the pipeline stack: readable in diffs and in
        # cdk-nag finding ids, and stable when logical ids change (CDK's generated ones are not).
        self.job_table_name_export = f"{self.stack_name}-JobTableName"
        self.data_bucket_name_export = f"{self.stack_name}-DataBucketName"
        self.job_table_stream_arn_export = f"{self.stack_name}-JobTableStreamArn"
        self.key_arn_export: str | None = None
        key = access_logs = None
        if strict:
            # The key lives with the data it protects: created before, and retained with, the table and
            # the bucket; the pipeline stack imports it.
            key = PipelineKey(
                self,
                "Key",
                environment_name=config.name,
                key_users=config.compliance.key_users,
                protect=config.protect_stateful,
            )
            access_logs = AccessLogBucket(
                self,
                "AccessLogs",
                retention_days=config.compliance.access_log_retention_days,
                protect=config.protect_stateful,
            )
        self.job_table = JobTable(
            self, "JobTable", protect=config.protect_stateful, encryption_key=key.key if key else None
        )
        self.data_bucket = DataBucket(
            self,
            "DataBucket",
            protect=config.protect_stateful,
            output_expiration_days=config.output_expiration_days,
            versioned=strict,
            encryption_key=key.key if key else None,
            access_logs=access_logs.bucket if access_logs else None,
            event_bridge=any(trigger.bucket is None for trigger in config.triggers),
        )
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
        if key is None or access_logs is None:
            acknowledge_stateful(data_bucket=self.data_bucket)
            return
        backups = JobTableBackup(
            self,
            "JobTableBackup",
            table=self.job_table.table,
            encryption_key=key.key,
            retention_days=config.compliance.backup_retention_days,
            roles=RoleStyle(managed_policies=True, path=role_path(config.name)),
            protect=config.protect_stateful,
        )
        self.key_arn_export = f"{self.stack_name}-KeyArn"
        CfnOutput(self, "KeyArn", value=key.key.key_arn, export_name=self.key_arn_export)
        acknowledge_strict_stateful(data_bucket=self.data_bucket, access_logs=access_logs, backups=backups)
