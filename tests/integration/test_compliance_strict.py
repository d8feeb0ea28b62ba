"""The strict compliance profile on the local cloud: `pipeline local up --context compliance=strict` deploys
it (KMS key, VPC with endpoints, managed policies, encrypted queues and topics; AWS Backup is skipped by
moto), the demo's five jobs end as they do in the default profile, and a state holding the key survives
`down` and `up`. A cloud of its own, in a home of its own, torn down at the end."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from localcloud.core import cloud
from localcloud.core.state import LocalCloudState
from pipeline_cli import local_deploy
from pipeline_cli.aws import Pipeline, connect_local
from pipeline_cli.scenarios import alarm_states, build_scenarios, check, run_scenarios

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def strict_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("localcloud-strict")
    previous = os.environ.get("LOCALCLOUD_HOME")
    os.environ["LOCALCLOUD_HOME"] = str(home)
    try:
        yield home
    finally:
        cloud.down(home=home)
        if previous is None:
            os.environ.pop("LOCALCLOUD_HOME", None)
        else:
            os.environ["LOCALCLOUD_HOME"] = previous


@pytest.fixture(scope="module")
def strict_cloud(strict_home: Path) -> LocalCloudState:
    return local_deploy.up(home=strict_home, context={"compliance": "strict"})


@pytest.fixture(scope="module")
def strict_pipeline(strict_cloud: LocalCloudState) -> Pipeline:
    return connect_local()


def test_strict_deploys_its_controls_into_the_local_cloud(
    strict_cloud: LocalCloudState, strict_pipeline: Pipeline
) -> None:
    key_arn = strict_cloud.outputs["KeyArn"]
    assert key_arn.startswith("arn:aws:kms:")
    ec2 = strict_pipeline.client("ec2")
    endpoints = {e["ServiceName"].rsplit(".", 1)[-1] for e in ec2.describe_vpc_endpoints()["VpcEndpoints"]}
    assert endpoints == {"s3", "dynamodb", "sqs", "states", "events", "logs", "monitoring", "xray", "kms"}
    assert not ec2.describe_internet_gateways()["InternetGateways"]
    functions = strict_pipeline.client("lambda").list_functions()["Functions"]
    assert len(functions) == 4
    assert all(f["VpcConfig"]["SubnetIds"] for f in functions)
    sqs = strict_pipeline.client("sqs")
    for url in (strict_pipeline.outputs.ingest_queue_url, strict_pipeline.outputs.dead_letter_queue_url):
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["KmsMasterKeyId"])["Attributes"]
        assert attributes["KmsMasterKeyId"] == key_arn


def test_the_demo_jobs_end_as_promised_under_strict(strict_pipeline: Pipeline) -> None:
    runs = run_scenarios(strict_pipeline, build_scenarios("strict"), timeout=240, out=io.StringIO())
    alarms = alarm_states(strict_pipeline, wait_for_dlq_alarm=30)
    assert check(runs, alarms) == []


def test_the_key_survives_down_and_up(strict_home: Path, strict_pipeline: Pipeline) -> None:
    kms = strict_pipeline.client("kms")
    ciphertext = kms.encrypt(KeyId="alias/resilient-pipeline-local", Plaintext=b"job")["CiphertextBlob"]
    cloud.down(home=strict_home)
    local_deploy.up(home=strict_home, context={"compliance": "strict"})
    restored = connect_local().client("kms")
    assert restored.decrypt(CiphertextBlob=ciphertext)["Plaintext"] == b"job"
