"""The data bucket: job inputs (JSON Lines) and outputs (`out/JOB_ID/part-*.jsonl`)."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from pipeline_contract import OUTPUT_PREFIX


class DataBucket(Construct):
    """Invariant: encrypted, TLS-only, never public; outputs expire after `output_expiration_days`.
    Retained when `protect` is set; versioned when `protect` or `versioned` is, so an overwrite or a
    delete can be undone. With `encryption_key`, SSE-KMS under it with an S3 Bucket Key (one KMS request
    per bucket key period instead of one per object); with `access_logs`, every request is logged there.
    With `event_bridge`, S3 sends its object events to EventBridge (what config `triggers` rules match)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        protect: bool,
        output_expiration_days: int,
        versioned: bool = False,
        encryption_key: kms.IKey | None = None,
        access_logs: s3.IBucket | None = None,
        event_bridge: bool = False,
    ) -> None:
        super().__init__(scope, construct_id)
        versioned = versioned or protect
        lifecycle = [
            s3.LifecycleRule(
                id="expire-outputs", prefix=OUTPUT_PREFIX, expiration=Duration.days(output_expiration_days)
            ),
            s3.LifecycleRule(
                id="abort-incomplete-uploads", abort_incomplete_multipart_upload_after=Duration.days(1)
            ),
        ]
        if versioned:
            lifecycle.append(
                s3.LifecycleRule(id="expire-old-versions", noncurrent_version_expiration=Duration.days(30))
            )
        self._bucket = s3.Bucket(
            self,
            "Bucket",
            encryption=s3.BucketEncryption.KMS if encryption_key else s3.BucketEncryption.S3_MANAGED,
            encryption_key=encryption_key,
            bucket_key_enabled=True if encryption_key else None,
            server_access_logs_bucket=access_logs,
            server_access_logs_prefix="data/" if access_logs else None,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=versioned,
            lifecycle_rules=lifecycle,
            # No auto_delete_objects: it deploys a custom-resource Lambda; an emptied bucket deletes cleanly.
            removal_policy=RemovalPolicy.RETAIN if protect else RemovalPolicy.DESTROY,
        )
        if event_bridge:
            # On the bucket resource itself: `Bucket(event_bridge_enabled=True)` deploys CDK's
            # bucket-notifications custom resource (a Lambda), which the local cloud cannot complete and
            # which would own the bucket's whole notification configuration.
            cfn_bucket = self._bucket.node.default_child
            assert isinstance(cfn_bucket, s3.CfnBucket)
            cfn_bucket.notification_configuration = s3.CfnBucket.NotificationConfigurationProperty(
                event_bridge_configuration=s3.CfnBucket.EventBridgeConfigurationProperty(
                    event_bridge_enabled=True
                )
            )

    @property
    def bucket(self) -> s3.IBucket:
        return self._bucket
