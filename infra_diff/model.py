"""The data a comparison produces: per stack, per resource, per property; and the findings drawn from it
(destructive changes, security-relevant changes, notes). Immutable values, so renderers and tests can
treat them as plain data."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from infra_diff.values import ValueChange


class Impact(StrEnum):
    """What CloudFormation does to a resource. Names follow `cdk diff`'s (replace, destroy, orphan)."""

    ADDED = "add"
    REMOVED = "destroy"
    # Removed from the template with DeletionPolicy Retain: CloudFormation forgets it, the resource stays.
    ORPHANED = "orphan"
    UPDATED = "update"
    REPLACED = "replace"


DESTRUCTIVE_IMPACTS = frozenset({Impact.REMOVED, Impact.ORPHANED, Impact.REPLACED})

# The exit status of a comparison that ran (a run that could not compare exits 2, from the CLI).
EXIT_OK = 0
EXIT_DESTRUCTIVE = 1


@dataclass(frozen=True)
class StackTemplate:
    """One synthesized stack: its template and the deployment settings the cloud assembly carries."""

    name: str
    template: Mapping[str, Any]
    termination_protection: bool = False
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PropertyChange:
    """A changed property (or resource attribute such as DeletionPolicy, or template section entry)."""

    name: str
    changes: tuple[ValueChange, ...] = ()
    replaces: bool = False
    attribute: bool = False
    # A one-line summary that stands in for value changes, e.g. "Lambda code changed".
    note: str | None = None


@dataclass(frozen=True)
class ResourceChange:
    logical_id: str
    type: str
    path: str | None
    impact: Impact
    properties: tuple[PropertyChange, ...] = ()
    # Why the resource is (or may be) replaced: the replacing properties, a type change, a dependency.
    reasons: tuple[str, ...] = ()
    # The resource definitions (asset hashes masked, intrinsics rendered) before and after.
    old: Mapping[str, Any] | None = None
    new: Mapping[str, Any] | None = None
    # The type is not in the replacement table: an update might replace it without this tool knowing.
    replacement_unknown: bool = False

    @property
    def label(self) -> str:
        return self.path or self.logical_id


StackStatus = Literal["added", "removed", "modified", "unchanged"]


@dataclass(frozen=True)
class StackDiff:
    env: str
    stack: str
    status: StackStatus
    resources: tuple[ResourceChange, ...] = ()
    # Template-level changes outside Resources: outputs, parameters, description, termination protection.
    sections: tuple[PropertyChange, ...] = ()

    def count(self, *impacts: Impact) -> int:
        return sum(1 for r in self.resources if r.impact in impacts)


@dataclass(frozen=True)
class Finding:
    """A line a reviewer must see: a destructive change, a security-relevant change, or a note."""

    env: str
    stack: str
    subject: str
    category: str
    message: str
    # True when the change weakens a protection (permission widened, alarm removed, retention dropped);
    # False when it strengthens one; None when it is a change to judge, not a direction.
    weakens: bool | None = None


@dataclass(frozen=True)
class Report:
    envs: tuple[str, ...]
    stacks: tuple[StackDiff, ...]
    destructive: tuple[Finding, ...] = ()
    security: tuple[Finding, ...] = ()
    notes: tuple[Finding, ...] = ()

    @property
    def changed(self) -> bool:
        return any(s.status != "unchanged" for s in self.stacks) or bool(self.notes)

    def stacks_of(self, env: str) -> tuple[StackDiff, ...]:
        return tuple(s for s in self.stacks if s.env == env)

    def env_changed(self, env: str) -> bool:
        return any(s.status != "unchanged" for s in self.stacks_of(env)) or any(
            n.env == env for n in self.notes
        )


def exit_status(report: Report, *, allow_destructive: bool = False) -> int:
    """1 when a stateful resource would be deleted, orphaned or replaced and that is not allowed; else 0."""
    return EXIT_DESTRUCTIVE if report.destructive and not allow_destructive else EXIT_OK
