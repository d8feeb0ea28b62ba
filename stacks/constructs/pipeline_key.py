"""The pipeline's customer-managed KMS key (compliance profile `strict`): the one owner of the key and of
who may use it. The other constructs receive the key and encrypt with it; none creates a key of its own."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

# What a role needs to read and write data encrypted under the key, through the services that hold it (S3
# SSE-KMS, SQS SSE, DynamoDB, Lambda environment variables): exact actions, no wildcard.
KEY_USE_ACTIONS = ("kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey")

# Managing the key without using it: an administrator can change the policy, rotate, disable, schedule
# deletion, but decrypts nothing unless another statement lets them. No kms:CreateGrant here: a grant is
# use by another name.
KEY_ADMIN_ACTIONS = (
    "kms:CancelKeyDeletion",
    "kms:CreateAlias",
    "kms:DeleteAlias",
    "kms:DescribeKey",
    "kms:DisableKey",
    "kms:DisableKeyRotation",
    "kms:EnableKey",
    "kms:EnableKeyRotation",
    "kms:GetKeyPolicy",
    "kms:GetKeyRotationStatus",
    "kms:ListAliases",
    "kms:ListGrants",
    "kms:ListKeyPolicies",
    "kms:ListKeyRotations",
    "kms:ListResourceTags",
    "kms:PutKeyPolicy",
    "kms:RevokeGrant",
    "kms:RotateKeyOnDemand",
    "kms:ScheduleKeyDeletion",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:UpdateAlias",
    "kms:UpdateKeyDescription",
)


def role_path(environment_name: str) -> str:
    """The IAM path of every role of the pipeline under `strict`: the key policy lets roles under it use the
    key. A path, not role names: the roles keep CloudFormation's generated names, and the key (created
    first, in the stateful stack) needs no reference to roles that do not exist yet."""
    return f"/resilient-pipeline/{environment_name}/"


def log_group_prefix(environment_name: str) -> str:
    """Every log group of the pipeline under `strict` is named under this prefix: the key policy lets
    CloudWatch Logs use the key for those log groups only (the `aws:logs:arn` encryption context)."""
    return f"/resilient-pipeline/{environment_name}/"


class PipelineKey(Construct):
    """Invariant: one symmetric key with yearly automatic rotation; its policy lets the account administer it
    but use it only (a) as a role under the pipeline's IAM path, (b) as a `key_users` principal through S3,
    SQS and DynamoDB, (c) through Lambda, DynamoDB and AWS Backup to create their grants, and through Lambda
    for the functions' environments, (d) as CloudWatch Logs for the pipeline's log groups, (e) as CloudWatch
    publishing alarms to the encrypted topics, and (f) as EventBridge delivering to the encrypted dead-letter
    queues of this account's rules. Nothing else in the account can decrypt the pipeline's data, whatever
    its IAM policies say."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        environment_name: str,
        key_users: tuple[str, ...],
        protect: bool,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        account, region, partition = stack.account, stack.region, stack.partition
        account_root = iam.AccountRootPrincipal()
        statements = [
            iam.PolicyStatement(
                sid="AdministerTheKey",
                principals=[account_root],
                actions=list(KEY_ADMIN_ACTIONS),
                resources=["*"],
            ),
            iam.PolicyStatement(
                sid="PipelineRolesUseTheKey",
                principals=[account_root],
                actions=list(KEY_USE_ACTIONS),
                resources=["*"],
                conditions={
                    "ArnLike": {
                        "aws:PrincipalArn": f"arn:{partition}:iam::{account}:role{role_path(environment_name)}*"
                    }
                },
            ),
            # Creating the functions (their environment's key), the table and the backup vault makes Lambda,
            # DynamoDB and AWS Backup create a grant on the key for themselves, on the caller's behalf
            # (CloudFormation's role): grants for AWS resources only, through those services only.
            iam.PolicyStatement(
                sid="ServicesCreateTheirGrants",
                principals=[account_root],
                actions=["kms:CreateGrant"],
                resources=["*"],
                conditions={
                    "StringEquals": {
                        "kms:CallerAccount": account,
                        "kms:ViaService": [
                            f"lambda.{region}.amazonaws.com",
                            f"dynamodb.{region}.amazonaws.com",
                            f"backup.{region}.amazonaws.com",
                        ],
                    },
                    "Bool": {"kms:GrantIsForAWSResource": "true"},
                },
            ),
            # Lambda encrypts a function's environment with the caller's permission when CloudFormation
            # creates or updates it, and decrypts it for whoever reads the configuration. The environments
            # hold names, URLs and limits, no job data.
            iam.PolicyStatement(
                sid="FunctionEnvironmentsThroughLambda",
                principals=[account_root],
                actions=["kms:Encrypt", "kms:Decrypt"],
                resources=["*"],
                conditions={
                    "StringEquals": {
                        "kms:CallerAccount": account,
                        "kms:ViaService": f"lambda.{region}.amazonaws.com",
                    }
                },
            ),
            iam.PolicyStatement(
                sid="CloudWatchLogsForThePipelineLogGroups",
                principals=[iam.ServicePrincipal(f"logs.{region}.amazonaws.com")],
                actions=[
                    "kms:Encrypt*",
                    "kms:Decrypt*",
                    "kms:ReEncrypt*",
                    "kms:GenerateDataKey*",
                    "kms:Describe*",
                ],
                resources=["*"],
                conditions={
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": (
                            f"arn:{partition}:logs:{region}:{account}:log-group:{log_group_prefix(environment_name)}*"
                        )
                    }
                },
            ),
            # The alarm topics are encrypted: CloudWatch's notification is encrypted by SNS on its behalf.
            # The topics' own policies already allow only this account's alarms to publish.
            iam.PolicyStatement(
                sid="CloudWatchAlarmsPublishToTheTopics",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
            ),
            # The watchdog rule's target dead-letter queue is encrypted: EventBridge sends to it.
            iam.PolicyStatement(
                sid="EventBridgeDeliversToTheDeadLetterQueues",
                principals=[iam.ServicePrincipal("events.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=["*"],
                conditions={
                    "StringEquals": {"aws:SourceAccount": account},
                    "ArnLike": {"aws:SourceArn": f"arn:{partition}:events:{region}:{account}:rule/*"},
                },
            ),
        ]
        if key_users:
            statements.append(
                iam.PolicyStatement(
                    sid="ProducersAndOperatorsUseTheKeyThroughTheData",
                    principals=[account_root],
                    actions=list(KEY_USE_ACTIONS),
                    resources=["*"],
                    conditions={
                        "ArnLike": {"aws:PrincipalArn": list(key_users)},
                        "StringEquals": {
                            "kms:ViaService": [
                                f"s3.{region}.amazonaws.com",
                                f"sqs.{region}.amazonaws.com",
                                f"dynamodb.{region}.amazonaws.com",
                            ]
                        },
                    },
                )
            )
        self._key = kms.Key(
            self,
            "Key",
            description=f"resilient-pipeline ({environment_name}): data, queues, topics, logs, environments",
            enable_key_rotation=True,
            policy=iam.PolicyDocument(statements=statements),
            # The policy above is the whole policy: CDK would otherwise add the account root with kms:*.
            admins=[],
            # Deleting the key makes every table item, object, message and log line under it unreadable.
            removal_policy=RemovalPolicy.RETAIN if protect else RemovalPolicy.DESTROY,
            pending_window=Duration.days(30 if protect else 7),
        )
        self._key.add_alias(f"alias/resilient-pipeline-{environment_name}")

    @property
    def key(self) -> kms.IKey:
        return self._key


def grant_key_use(key: kms.IKey, grantee: iam.IGrantable) -> None:
    """The exact actions a pipeline role needs on the key (the key policy lets roles under the pipeline's
    path use it; IAM must allow it too)."""
    key.grant(grantee, *KEY_USE_ACTIONS)
