"""The replacement table against the CloudFormation resource specification the pinned CDK CLI ships
(node_modules/aws-cdk/db.json.gz, the data `cdk diff` itself uses), both ways. Skipped when the CLI is not
installed; its file layout is internal to the CLI, so a layout change skips rather than fails."""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest

from infra_diff import replacement
from tests.diff.conftest import ROOT

SPEC = ROOT / "node_modules" / "aws-cdk" / "db.json.gz"


@pytest.fixture(scope="module")
def spec() -> dict[str, dict[str, Any]]:
    if not SPEC.exists():
        pytest.skip("the pinned CDK CLI is not installed (npm ci)")
    try:
        entities = json.loads(gzip.decompress(SPEC.read_bytes()))["schema"]["resource"]["entities"]
        return {e["cloudFormationType"]: e["properties"] for e in entities}
    except (KeyError, TypeError, ValueError) as error:
        pytest.skip(f"db.json.gz has a layout this test does not know: {error}")


def spec_replacing(properties: dict[str, Any]) -> set[str]:
    return {name for name, p in properties.items() if p.get("causesReplacement") == "yes"}


def test_every_listed_property_forces_replacement_in_the_spec(spec: dict[str, dict[str, Any]]) -> None:
    for resource_type, properties in replacement.REPLACING_PROPERTIES.items():
        additions = replacement.SPEC_ADDITIONS.get(resource_type, frozenset())
        assert resource_type in spec, resource_type
        unexpected = set(properties) - spec_replacing(spec[resource_type]) - additions
        assert not unexpected, f"{resource_type}: {sorted(unexpected)} do not force replacement in the spec"


def test_no_replacing_property_of_a_listed_type_is_missing(spec: dict[str, dict[str, Any]]) -> None:
    for resource_type, properties in replacement.REPLACING_PROPERTIES.items():
        missing = spec_replacing(spec[resource_type]) - set(properties)
        assert not missing, f"{resource_type}: add {sorted(missing)} to REPLACING_PROPERTIES"


def test_never_replaced_types_have_no_replacing_property(spec: dict[str, dict[str, Any]]) -> None:
    for resource_type in replacement.NEVER_REPLACED - {"AWS::CDK::Metadata"}:
        assert not spec_replacing(spec[resource_type]), resource_type


def test_every_type_the_app_deploys_is_in_the_table() -> None:
    snapshots = ROOT / "tests" / "infra" / "__snapshots__"
    types = {
        resource["Type"]
        for path in snapshots.rglob("*.json")
        for resource in json.loads(path.read_text()).get("Resources", {}).values()
    }
    if not types:
        pytest.skip("no template snapshots to read the app's resource types from")
    assert {t for t in types if not replacement.replacement_known(t)} == set()
