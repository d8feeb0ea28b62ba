"""Helpers to read synthesized templates: resources by type, and the state machine definition as data."""

from __future__ import annotations

import json
import re
from typing import Any

HASH = re.compile(r"[0-9a-f]{64}")
# A function's published version is a resource whose logical id carries a hash of the function's code and
# configuration (a new version whenever either changes).
VERSION_ID = re.compile(r"CurrentVersion[0-9A-F]{8}[0-9a-f]{32}")
# The digest of the functions' code (stacks.user_code.code_digest): it changes with every code edit.
CODE_DIGEST_KEYS = frozenset({"CODE_DIGEST", "CodeDigest"})


def resources(template: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == type_}


def only(template: dict[str, Any], type_: str) -> dict[str, Any]:
    found = list(resources(template, type_).values())
    assert len(found) == 1, f"expected one {type_}, found {len(found)}"
    return found[0]


def render(value: Any) -> str:
    """Flatten an Fn::Join of strings and references into one string, references as <...>."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(render(part) for part in parts)
    if isinstance(value, dict) and "Ref" in value:
        return f"<{value['Ref']}>"
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return f"<{'.'.join(value['Fn::GetAtt'])}>"
    if isinstance(value, dict) and "Fn::ImportValue" in value:
        return f"<import:{value['Fn::ImportValue']}>"
    return "<token>"


def state_machine_definition(template: dict[str, Any]) -> dict[str, Any]:
    machine = only(template, "AWS::StepFunctions::StateMachine")
    return dict(json.loads(render(machine["Properties"]["DefinitionString"])))


def all_states(definition: dict[str, Any]) -> dict[str, Any]:
    """Every state of a definition by name, those inside a Map's ItemProcessor (or a Parallel's branches)
    included: ASL state names are unique across the whole definition."""
    found: dict[str, Any] = {}
    for name, state in definition["States"].items():
        found[name] = state
        for inner in [state.get("ItemProcessor"), state.get("Iterator"), *state.get("Branches", [])]:
            if inner:
                found.update(all_states(inner))
    return found


POLICY_TYPES = ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy")


def policies(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every identity policy: inline (the default profile) and customer-managed (strict)."""
    return {k: v for k, v in template["Resources"].items() if v["Type"] in POLICY_TYPES}


def policy_statements(template: dict[str, Any], logical_id_prefix: str) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = []
    for logical_id, policy in policies(template).items():
        if logical_id.startswith(logical_id_prefix):
            statements += policy["Properties"]["PolicyDocument"]["Statement"]
    return statements


def actions_of(statements: list[dict[str, Any]]) -> set[str]:
    found: set[str] = set()
    for statement in statements:
        action = statement["Action"]
        found.update([action] if isinstance(action, str) else action)
    return found


def mask_volatile(value: Any) -> Any:
    """Asset hashes and CDK version analytics change on every code edit or upgrade: mask them so a
    snapshot diff shows infrastructure changes only."""
    if isinstance(value, dict):
        return {
            mask_volatile(k): "<CODE-DIGEST>" if k in CODE_DIGEST_KEYS else mask_volatile(v)
            for k, v in value.items()
            if not (isinstance(v, dict) and v.get("Type") == "AWS::CDK::Metadata")
        }
    if isinstance(value, list):
        return [mask_volatile(v) for v in value]
    if isinstance(value, str):
        return VERSION_ID.sub("CurrentVersion<CODE-HASH>", HASH.sub("<ASSET-HASH>", value))
    return value


def key_import(env: str) -> str:
    """How a reference to the pipeline key renders in the pipeline stack (strict): the stateful stack's export."""
    return f"<import:ResilientPipeline-{env}-Stateful-KeyArn>"


def queue_is_encrypted(properties: dict[str, Any], *, env: str, strict: bool) -> bool:
    """SSE under the pipeline's key (strict), else SQS-managed SSE, and never both."""
    if strict:
        return (
            render(properties.get("KmsMasterKeyId")) == key_import(env)
            and "SqsManagedSseEnabled" not in properties
        )
    return properties.get("SqsManagedSseEnabled") is True and "KmsMasterKeyId" not in properties
