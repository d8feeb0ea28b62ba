"""AWS::KMS::Key as the strict compliance profile deploys it (localcloud.services.kms.keys): a tagged key
through moto's CloudFormation, and a state holding keys saved and restored by the local cloud."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.parsers import ResponseParserError
from moto import mock_aws

from localcloud.core import persistence
from localcloud.core.state import DUMMY_CREDENTIALS, REGION
from localcloud.services.kms import keys
from tests.localcloud.support import client, moto_server

# As the app tags every resource (cdk.Tags.of(app)), in CloudFormation's shape.
TAGS = [{"Key": "project", "Value": "resilient-pipeline"}, {"Key": "environment", "Value": "local"}]


def template() -> dict[str, Any]:
    return {
        "Resources": {
            "Key": {
                "Type": "AWS::KMS::Key",
                "Properties": {
                    "EnableKeyRotation": True,
                    "KeyPolicy": {"Version": "2012-10-17", "Statement": []},
                    "PendingWindowInDays": 7,
                    "Tags": TAGS,
                },
            },
            "Alias": {
                "Type": "AWS::KMS::Alias",
                "Properties": {
                    "AliasName": f"alias/test-{uuid.uuid4().hex[:8]}",
                    "TargetKeyId": {"Ref": "Key"},
                },
            },
            "Queue": {
                "Type": "AWS::SQS::Queue",
                "Properties": {"KmsMasterKeyId": {"Fn::GetAtt": ["Key", "Arn"]}},
            },
        },
        "Outputs": {"KeyArn": {"Value": {"Fn::GetAtt": ["Key", "Arn"]}}},
    }


@pytest.fixture
def installed() -> Iterator[None]:
    undo = keys.install()
    try:
        yield
    finally:
        undo()


def _deploy(endpoint: str) -> dict[str, Any]:
    cfn = client(endpoint, "cloudformation")
    name = f"keys-{uuid.uuid4().hex[:8]}"
    cfn.create_stack(StackName=name, TemplateBody=json.dumps(template()))
    stack: dict[str, Any] = cfn.describe_stacks(StackName=name)["Stacks"][0]
    return stack


def test_a_tagged_key_fails_moto_without_the_model() -> None:
    """Control: moto's own model hands CloudFormation's Key/Value tags to a tagger wanting TagKey."""
    with moto_server() as endpoint, pytest.raises((ClientError, ResponseParserError)):
        # moto answers 500 (KeyError: 'TagKey'); the CDK CLI reported "Fn::GetAtt references undefined
        # resource" for the resources that name the key.
        _deploy(endpoint)


def test_a_tagged_key_deploys_with_its_tags_and_rotation(installed: None) -> None:
    with moto_server() as endpoint:
        stack = _deploy(endpoint)
        assert stack["StackStatus"] == "CREATE_COMPLETE"
        (output,) = stack["Outputs"]
        kms = client(endpoint, "kms")
        key_id = output["OutputValue"].rsplit("/", 1)[-1]
        tags = kms.list_resource_tags(KeyId=key_id)["Tags"]
        assert {t["TagKey"]: t["TagValue"] for t in tags} == {
            "project": "resilient-pipeline",
            "environment": "local",
        }
        assert kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is True
        # The data under it still round-trips (moto does not enforce the key on SQS).
        ciphertext = kms.encrypt(KeyId=key_id, Plaintext=b"job")["CiphertextBlob"]
        assert kms.decrypt(CiphertextBlob=ciphertext)["Plaintext"] == b"job"


def _with_a_key(body: Callable[[Any, str], None]) -> None:
    with mock_aws():
        kms = boto3.client("kms", region_name=REGION, **_credentials())
        key_id = kms.create_key(Description="saved")["KeyMetadata"]["KeyId"]
        body(kms, key_id)


def _credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    }


def test_a_state_holding_a_key_cannot_be_saved_without_the_reducer() -> None:
    def save(_kms: Any, _key_id: str) -> None:
        with pytest.raises(TypeError, match="cannot pickle"):
            persistence.dump_state(io.BytesIO())  # type: ignore[arg-type]

    _with_a_key(save)


def test_a_state_holding_a_key_is_saved_and_restored(installed: None) -> None:
    def save_and_restore(kms: Any, key_id: str) -> None:
        ciphertext = kms.encrypt(KeyId=key_id, Plaintext=b"job")["CiphertextBlob"]
        signed_before = kms.get_public_key(KeyId=key_id)
        saved = io.BytesIO()
        persistence.dump_state(saved)  # type: ignore[arg-type]
        kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
        saved.seek(0)
        persistence.load_state(saved)
        restored = boto3.client("kms", region_name=REGION, **_credentials())
        assert restored.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"
        assert restored.decrypt(CiphertextBlob=ciphertext)["Plaintext"] == b"job"
        assert restored.get_public_key(KeyId=key_id)["PublicKey"] == signed_before["PublicKey"]

    _with_a_key(save_and_restore)
