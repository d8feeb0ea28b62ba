"""`AWS::Lambda::EventInvokeConfig` from a template reaches moto's Lambda backend, where the runner's
asynchronous path reads its retries and OnFailure destination (moto's CloudFormation skips the type)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from moto.awslambda.models import lambda_backends
from moto.cloudformation import parsing as cfn_parsing

from localcloud.core.state import ACCOUNT_ID, REGION
from localcloud.services.lambda_ import event_invoke_config
from localcloud.services.lambda_.runner import async_config_from_moto
from tests.localcloud.support import client, moto_server, wait_until


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    for cached in (cfn_parsing.get_model_list, cfn_parsing.get_model_map, cfn_parsing.get_name_type_map):
        cached.cache_clear()
    assert (
        cfn_parsing.get_model_map()[event_invoke_config.TYPE]
        is event_invoke_config.LambdaEventInvokeConfigResource
    )
    with moto_server() as url:
        yield url


def template(retries: int) -> str:
    role = {
        "Type": "AWS::IAM::Role",
        "Properties": {"AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": []}},
    }
    return json.dumps(
        {
            "Resources": {
                "Role": role,
                "OnFailure": {"Type": "AWS::SQS::Queue"},
                "Fn": {
                    "Type": "AWS::Lambda::Function",
                    "Properties": {
                        "Code": {"ZipFile": "def handler(event, context):\n    raise RuntimeError('no')\n"},
                        "Handler": "index.handler",
                        "Runtime": "python3.12",
                        "Role": {"Fn::GetAtt": ["Role", "Arn"]},
                    },
                },
                "Async": {
                    "Type": "AWS::Lambda::EventInvokeConfig",
                    "Properties": {
                        "FunctionName": {"Ref": "Fn"},
                        "Qualifier": "$LATEST",
                        "MaximumRetryAttempts": retries,
                        "MaximumEventAgeInSeconds": 21600,
                        "DestinationConfig": {
                            "OnFailure": {"Destination": {"Fn::GetAtt": ["OnFailure", "Arn"]}}
                        },
                    },
                },
            },
            "Outputs": {
                "Function": {"Value": {"Ref": "Fn"}},
                "Queue": {"Value": {"Fn::GetAtt": ["OnFailure", "Arn"]}},
            },
        }
    )


def deploy(cfn: Any, name: str, body: str, *, update: bool = False) -> dict[str, str]:
    (cfn.update_stack if update else cfn.create_stack)(StackName=name, TemplateBody=body)
    wait_until(
        lambda: cfn.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"].endswith("_COMPLETE"),
        message="the stack",
    )
    stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def test_the_templates_async_settings_are_what_the_runner_reads(endpoint: str) -> None:
    cfn = client(endpoint, "cloudformation")
    name = f"async-{uuid.uuid4().hex[:8]}"
    outputs = deploy(cfn, name, template(retries=1))
    config = client(endpoint, "lambda").get_function_event_invoke_config(FunctionName=outputs["Function"])
    assert config["MaximumRetryAttempts"] == 1
    assert config["DestinationConfig"]["OnFailure"]["Destination"] == outputs["Queue"]
    function = lambda_backends[ACCOUNT_ID][REGION].get_function(outputs["Function"])
    settings = async_config_from_moto(function)
    assert (settings.maximum_retry_attempts, settings.on_failure) == (1, outputs["Queue"])

    deploy(cfn, name, template(retries=0), update=True)
    settings = async_config_from_moto(lambda_backends[ACCOUNT_ID][REGION].get_function(outputs["Function"]))
    assert settings.maximum_retry_attempts == 0, "an update replaces the config, it does not add one"
