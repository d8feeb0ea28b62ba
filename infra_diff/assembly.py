"""Read the stacks of a synthesized cloud assembly (`cdk.out/...`): templates and the deployment settings
the manifest carries (termination protection, stack tags). Nested assemblies (CDK stages) are followed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from infra_diff.model import StackTemplate

STACK_ARTIFACT = "aws:cloudformation:stack"
NESTED_ASSEMBLY = "cdk:cloud-assembly"


class AssemblyError(ValueError):
    """The directory is not a readable cloud assembly."""


def read_assembly(directory: Path) -> dict[str, StackTemplate]:
    """Stacks by stack name, in manifest order."""
    manifest_path = directory / "manifest.json"
    try:
        manifest: dict[str, Any] = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as error:
        raise AssemblyError(f"cannot read cloud assembly manifest {manifest_path}: {error}") from error
    stacks: dict[str, StackTemplate] = {}
    for artifact_id, artifact in (manifest.get("artifacts") or {}).items():
        properties = artifact.get("properties") or {}
        if artifact.get("type") == NESTED_ASSEMBLY:
            stacks.update(read_assembly(directory / properties["directoryName"]))
        elif artifact.get("type") == STACK_ARTIFACT:
            name = properties.get("stackName") or artifact.get("displayName") or artifact_id
            template_path = directory / properties["templateFile"]
            try:
                template = json.loads(template_path.read_text())
            except (OSError, ValueError) as error:
                raise AssemblyError(f"cannot read template {template_path}: {error}") from error
            stacks[name] = StackTemplate(
                name=name,
                template=template,
                termination_protection=bool(properties.get("terminationProtection", False)),
                tags=dict(properties.get("tags") or {}),
            )
    return stacks
