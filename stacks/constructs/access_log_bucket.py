"""The server access-log bucket of the data bucket (compliance profile `strict`)."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_s3 as s3
from constructs import Construct


class AccessLogBucket(Construct):
    """Invariant: receives the data bucket's S3 server access logs and nothing else; SSE-S3 (S3 server access
    logging delivers only to a destination with SSE-S3, never SSE-KMS), TLS only, never public, versioned,
    each log object kept `retention_days`. The logging service writes by bucket policy (CDK adds the
    statement for `logging.s3.amazonaws.com`, scoped to the data bucket), so object ownership stays
    enforced."""

    def __init__(self, scope: Construct, construct_id: str, *, retention_days: int, protect: bool) -> None:
        super().__init__(scope, construct_id)
        self._bucket = s3.Bucket(
            self,
            "Bucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=True,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-access-logs",
                    expiration=Duration.days(retention_days),
                    noncurrent_version_expiration=Duration.days(1),
                ),
            ],
            removal_policy=RemovalPolicy.RETAIN if protect else RemovalPolicy.DESTROY,
        )

    @property
    def bucket(self) -> s3.IBucket:
        return self._bucket
