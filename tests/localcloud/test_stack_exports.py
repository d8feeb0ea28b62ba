"""Stack exports after UpdateStack (localcloud.services.cloudformation.stack_exports) against a real moto
server: an export added by an update can be imported by another stack, a changed one is read with its new
value, a removed one is gone."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from localcloud.services.cloudformation import stack_exports
from tests.localcloud.support import client, moto_server


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    undo = stack_exports.install()
    try:
        with moto_server() as url:
            yield url
    finally:
        undo()


def template(outputs: dict[str, str]) -> str:
    return json.dumps(
        {
            "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
            "Outputs": {
                key: {"Value": value, "Export": {"Name": {"Fn::Sub": f"${{AWS::StackName}}-{key}"}}}
                for key, value in outputs.items()
            },
        }
    )


def exports(cfn: Any) -> dict[str, str]:
    return {e["Name"]: e["Value"] for e in cfn.list_exports()["Exports"]}


def test_exports_follow_the_stack_through_updates(endpoint: str) -> None:
    cfn = client(endpoint, "cloudformation")
    name = f"exporter-{uuid.uuid4().hex[:8]}"
    cfn.create_stack(StackName=name, TemplateBody=template({"First": "one", "Gone": "soon"}))
    assert {k: v for k, v in exports(cfn).items() if k.startswith(name)} == {
        f"{name}-First": "one",
        f"{name}-Gone": "soon",
    }

    cfn.update_stack(StackName=name, TemplateBody=template({"First": "uno", "Added": "two"}))
    assert {k: v for k, v in exports(cfn).items() if k.startswith(name)} == {
        f"{name}-First": "uno",
        f"{name}-Added": "two",
    }
    importer = f"importer-{uuid.uuid4().hex[:8]}"
    cfn.create_stack(
        StackName=importer,
        TemplateBody=json.dumps(
            {
                "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
                "Outputs": {"Read": {"Value": {"Fn::ImportValue": f"{name}-Added"}}},
            }
        ),
    )
    (output,) = cfn.describe_stacks(StackName=importer)["Stacks"][0]["Outputs"]
    assert output["OutputValue"] == "two"
