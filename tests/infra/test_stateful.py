"""Invariants of the stateful stack: the job table and the data bucket, per environment."""

from __future__ import annotations

from typing import Any

from tests.infra.conftest import Synthesized
from tests.infra.template_tools import only, render, resources


def test_job_table_follows_the_contract(synth: Synthesized) -> None:
    table = only(synth.stateful, "AWS::DynamoDB::Table")["Properties"]
    assert table["KeySchema"] == [{"AttributeName": "job_id", "KeyType": "HASH"}]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    (index,) = table["GlobalSecondaryIndexes"]
    assert index["KeySchema"] == [
        {"AttributeName": "status", "KeyType": "HASH"},
        {"AttributeName": "updated_at", "KeyType": "RANGE"},
    ]


def _data_bucket(synth: Synthesized) -> dict[str, Any]:
    """The data bucket (under strict the stack also has its access-log bucket)."""
    (bucket,) = [
        b for k, b in resources(synth.stateful, "AWS::S3::Bucket").items() if k.startswith("DataBucket")
    ]
    return bucket


def test_stateful_resources_are_protected_only_in_staging_and_prod(synth: Synthesized) -> None:
    protected = synth.env in ("staging", "prod")
    table = only(synth.stateful, "AWS::DynamoDB::Table")
    bucket = _data_bucket(synth)
    expected_policy = "Retain" if protected else "Delete"
    assert table["DeletionPolicy"] == expected_policy
    assert table["UpdateReplacePolicy"] == expected_policy
    assert bucket["DeletionPolicy"] == expected_policy
    assert table["Properties"].get("DeletionProtectionEnabled", False) is protected
    assert synth.stateful_termination_protection is protected
    # Versioned where protected, and always under strict (NIST/HIPAA/PCI S3BucketVersioningEnabled).
    assert ("VersioningConfiguration" in bucket["Properties"]) is (protected or synth.strict)


def test_data_bucket_is_encrypted_private_and_tls_only(synth: Synthesized) -> None:
    bucket = _data_bucket(synth)["Properties"]
    (rule,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    if synth.strict:
        assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
        assert render(rule["ServerSideEncryptionByDefault"]["KMSMasterKeyID"]).startswith("<Key")
        assert rule["BucketKeyEnabled"] is True
    else:
        assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    for policy in resources(synth.stateful, "AWS::S3::BucketPolicy").values():
        assert any(
            s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            for s in policy["Properties"]["PolicyDocument"]["Statement"]
        )
    assert len(resources(synth.stateful, "AWS::S3::BucketPolicy")) == (2 if synth.strict else 1)


def test_outputs_expire_by_lifecycle(synth: Synthesized) -> None:
    rules = _data_bucket(synth)["Properties"]["LifecycleConfiguration"]["Rules"]
    expire = next(r for r in rules if r.get("Prefix") == "out/")
    assert expire["ExpirationInDays"] == synth.config.output_expiration_days
    assert any("AbortIncompleteMultipartUpload" in r for r in rules)


def test_no_custom_resource_providers(synth: Synthesized) -> None:
    # Custom resources deploy Node.js provider functions: slower deploys and nothing the local cloud runs.
    for template in (synth.stateful, synth.pipeline):
        assert not resources(template, "AWS::CloudFormation::CustomResource")
        assert not [t for t in template["Resources"].values() if t["Type"].startswith("Custom::")]


def test_table_and_bucket_names_are_exported_for_the_pipeline_stack(synth: Synthesized) -> None:
    outputs = synth.stateful["Outputs"]
    assert outputs["JobTableName"]["Export"]["Name"] == f"ResilientPipeline-{synth.env}-Stateful-JobTableName"
    assert (
        outputs["DataBucketName"]["Export"]["Name"]
        == f"ResilientPipeline-{synth.env}-Stateful-DataBucketName"
    )
