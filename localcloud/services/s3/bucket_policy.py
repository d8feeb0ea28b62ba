"""`AWS::S3::BucketPolicy` for moto's CloudFormation, which has no model for it (moto 5.2.5): a bucket's
policy is what the template says, so that IAM enforcement (`localcloud.services.iam.enforcement`) evaluates
what AWS would. And moto's own bucket-policy check, which ignores conditions (a TLS-only Deny refused every
request), gives way to that evaluation.

How it models AWS, and where it differs: docs/local-cloud-internals.md#localcloudservicess3bucket_policypy
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable
from typing import Any

from moto.cloudformation import parsing as cfn_parsing
from moto.core.common_models import CloudFormationModel
from moto.s3.exceptions import MissingBucket
from moto.s3.models import FakeBucket, s3_backends

from localcloud.services.iam import policy

LOG = logging.getLogger(__name__)

TYPE = "AWS::S3::BucketPolicy"
Undo = Callable[[], None]


def _document(properties: dict[str, Any]) -> dict[str, Any]:
    document = properties.get("PolicyDocument")
    if isinstance(document, str):  # CloudFormation accepts the document as a JSON string too
        document = json.loads(document)
    if not isinstance(document, dict):
        raise ValueError(f"{TYPE} needs a PolicyDocument object")
    return document


def _bucket_name(properties: dict[str, Any]) -> str:
    bucket = properties.get("Bucket")
    if not isinstance(bucket, str) or not bucket:
        raise ValueError(f"{TYPE} needs a Bucket name")
    return bucket


class S3BucketPolicyResource(CloudFormationModel):
    """One deployed BucketPolicy: the bucket it governs and the document it put on it."""

    # Set by moto's CloudFormation on every model it creates (declared for the type checker).
    cf_resource_type: str = TYPE
    logical_resource_id: str = ""

    def __init__(self, physical_id: str, account_id: str, bucket: str, document: dict[str, Any]) -> None:
        self.physical_id = physical_id
        self.account_id = account_id
        self.bucket = bucket
        self.document = document

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""  # no name property: CloudFormation generates the id

    @staticmethod
    def cloudformation_type() -> str:
        return TYPE

    @property
    def physical_resource_id(self) -> str:
        return self.physical_id

    def apply(self) -> None:
        # MissingBucket fails the stack operation, as on AWS. A bucket's policy is a single document: putting
        # it replaces whatever was there.
        s3_backends[self.account_id]["aws"].put_bucket_policy(self.bucket, json.dumps(self.document).encode())
        LOG.info("bucket policy %s applied to %s", self.physical_id, self.bucket)

    def remove(self) -> None:
        try:
            s3_backends[self.account_id]["aws"].delete_bucket_policy(self.bucket)
        except MissingBucket:
            return  # deleted with its bucket (CloudFormation deletes the policy first; moto may not)
        LOG.info("bucket policy %s removed from %s", self.physical_id, self.bucket)

    @classmethod
    def create_from_cloudformation_json(
        cls,
        resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> S3BucketPolicyResource:
        properties = cloudformation_json.get("Properties") or {}
        resource = cls(resource_name, account_id, _bucket_name(properties), _document(properties))
        resource.apply()
        return resource

    @classmethod
    def update_from_cloudformation_json(
        cls,
        original_resource: Any,
        new_resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
    ) -> S3BucketPolicyResource:
        properties = cloudformation_json.get("Properties") or {}
        resource = cls(
            original_resource.physical_id, account_id, _bucket_name(properties), _document(properties)
        )
        if resource.bucket != original_resource.bucket:
            # Another bucket replaces the resource on AWS: the old bucket loses its policy.
            original_resource.remove()
        resource.apply()
        return resource

    def delete(self, account_id: str, region_name: str) -> None:
        self.remove()


def _reapply_after_update(resource_map: Any) -> None:
    # moto may replace a bucket on an update (a new name) without touching an unchanged BucketPolicy: the
    # policy follows its bucket as CloudFormation updates a dependent of a replaced resource.
    for logical_id, resource_json in resource_map._resource_json_map.items():
        current = resource_map._parsed_resources.get(logical_id)
        if resource_json.get("Type") != TYPE or not isinstance(current, S3BucketPolicyResource):
            continue
        resolved = cfn_parsing.clean_json(copy.deepcopy(resource_json), resource_map)
        refreshed = S3BucketPolicyResource.update_from_cloudformation_json(
            current, current.physical_id, resolved, resource_map._account_id, resource_map._region_name
        )
        refreshed.cf_resource_type = TYPE
        refreshed.logical_resource_id = logical_id
        resource_map._parsed_resources[logical_id] = refreshed


def _permission(bucket: FakeBucket, action: str, resource: str) -> Any:
    """moto's per-request bucket-policy check (`FakeBucket.get_permission`), with conditions evaluated.

    moto runs it on every object request, signed or not, and its evaluator ignores conditions: CDK's
    `enforce_ssl` Deny (`aws:SecureTransport` false) then refused every request, the administrator's
    included. Here the policy is evaluated for an anonymous caller over TLS (the local cloud stands in for
    AWS's TLS endpoints): an Allow still opens a public bucket to unsigned requests, and nothing is denied
    here. Whom a bucket policy denies is decided for role sessions by the IAM enforcement, which knows who
    signed; the local cloud's administrator keeps every right.
    """
    from moto.iam.access_control import PermissionResult  # noqa: PLC0415 - moto's own enum

    if bucket.policy is None:
        return PermissionResult.NEUTRAL
    request = policy.Request(policy.Principal("Anonymous"), action, resource, {"aws:SecureTransport": "true"})
    try:
        allowed = policy.evaluate(bucket.policy.decode(), request).allowed
    except policy.PolicyError:
        return PermissionResult.NEUTRAL
    return PermissionResult.PERMITTED if allowed else PermissionResult.NEUTRAL


def install() -> Undo:
    """Make moto's CloudFormation use the model, re-apply bucket policies after each stack update, and let
    moto's own bucket-policy check evaluate conditions."""
    for cached in (cfn_parsing.get_model_list, cfn_parsing.get_model_map, cfn_parsing.get_name_type_map):
        cached.cache_clear()
    if cfn_parsing.get_model_map().get(TYPE) is not S3BucketPolicyResource:
        raise RuntimeError(f"moto did not pick up the {TYPE} model")

    original = cfn_parsing.ResourceMap.update

    def update(self: Any, template: dict[str, Any], parameters: dict[str, Any] | None = None) -> None:
        original(self, template, parameters)
        _reapply_after_update(self)

    original_permission = FakeBucket.get_permission
    cfn_parsing.ResourceMap.update = update  # type: ignore[method-assign]
    FakeBucket.get_permission = _permission  # type: ignore[method-assign,assignment]

    def undo() -> None:
        cfn_parsing.ResourceMap.update = original  # type: ignore[method-assign]
        FakeBucket.get_permission = original_permission  # type: ignore[method-assign]

    return undo
