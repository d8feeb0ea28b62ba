"""AWS Backup of the job table (compliance profile `strict`)."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_backup as backup
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from stacks.constructs.pipeline_key import grant_key_use
from stacks.constructs.roles import RoleStyle


class JobTableBackup(Construct):
    """Invariant: the job table is in a backup plan: a daily backup at 05:00 UTC kept `retention_days`, in a
    vault of its own encrypted with the pipeline's key. AWS Backup runs as a role made like the pipeline's
    others (`roles`), with AWS's managed backup policy and the key. Point-in-time recovery (the table's own,
    35 days) covers recent mistakes; these backups outlive it and the table."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        table: dynamodb.ITable,
        encryption_key: kms.IKey,
        retention_days: int,
        roles: RoleStyle,
        protect: bool,
    ) -> None:
        super().__init__(scope, construct_id)
        self._vault = backup.BackupVault(
            self,
            "Vault",
            encryption_key=encryption_key,
            # A vault that holds recovery points cannot be deleted: retained where the table is.
            removal_policy=RemovalPolicy.RETAIN if protect else RemovalPolicy.DESTROY,
        )
        self._plan = backup.BackupPlan(self, "Plan", backup_vault=self._vault)
        self._plan.add_rule(
            backup.BackupPlanRule(
                rule_name="daily",
                schedule_expression=events.Schedule.cron(minute="0", hour="5"),
                delete_after=Duration.days(retention_days),
            )
        )
        self._role = roles.role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("backup.amazonaws.com"),
            description="AWS Backup of the job table",
        )
        grant_key_use(encryption_key, self._role)
        self._plan.add_selection(
            "JobTable",
            resources=[backup.BackupResource.from_dynamo_db_table(table)],
            role=self._role,
        )

    @property
    def role(self) -> iam.IRole:
        return self._role

    @property
    def plan(self) -> backup.IBackupPlan:
        return self._plan
