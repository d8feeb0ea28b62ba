"""A `Report` as one JSON document, for programs: every environment, stack, resource and property change,
the destructive, security and note findings, and the verdict with the exit status it implies. The shape is
versioned (`version`) and documented in docs/reviewing-infrastructure-changes.md ("JSON output"); a
field is only ever added within a version. Values are complete (no line cut as in the text output)."""

from __future__ import annotations

import json
from typing import Any

from infra_diff.model import Finding, Impact, PropertyChange, Report, ResourceChange, StackDiff, exit_status
from infra_diff.render import Labels, no_change_line, stack_summary, verdict_line

KIND = "infra-diff"
VERSION = 1
EFFECTS = {True: "weakens", False: "strengthens", None: "judge"}
COUNTED_IMPACTS = (Impact.ADDED, Impact.UPDATED, Impact.REPLACED, Impact.REMOVED, Impact.ORPHANED)


def render_json(report: Report, labels: Labels, *, allow_destructive: bool = False) -> str:
    document = to_document(report, labels, allow_destructive=allow_destructive)
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def to_document(report: Report, labels: Labels, *, allow_destructive: bool = False) -> dict[str, Any]:
    if report.changed:
        message = verdict_line(report, allow_destructive).removeprefix("Result: ")
    else:
        message = no_change_line(report, labels)
    return {
        "kind": KIND,
        "version": VERSION,
        "base": {"label": labels.base, "commit": labels.base_commit},
        "head": {"label": labels.head, "commit": None},
        "changed": report.changed,
        "environments": [
            {
                "name": env,
                "changed": report.env_changed(env),
                "stacks": [_stack(diff) for diff in report.stacks_of(env)],
            }
            for env in report.envs
        ],
        "destructive": [_finding(f) for f in report.destructive],
        "security": [_finding(f) for f in report.security],
        "notes": [_finding(f) for f in report.notes],
        "result": {
            "destructive_changes": len(report.destructive),
            "allow_destructive": allow_destructive,
            "exit_status": exit_status(report, allow_destructive=allow_destructive),
            "message": message,
        },
    }


def _stack(diff: StackDiff) -> dict[str, Any]:
    counts = {impact.value: diff.count(impact) for impact in COUNTED_IMPACTS}
    return {
        "name": diff.stack,
        "status": diff.status,
        "summary": stack_summary(diff),
        "counts": {**counts, "other": len(diff.sections)},
        "resources": [_resource(change) for change in diff.resources],
        "other_changes": [_property(section) for section in diff.sections],
    }


def _resource(change: ResourceChange) -> dict[str, Any]:
    return {
        "logical_id": change.logical_id,
        "type": change.type,
        "path": change.path,
        "impact": change.impact.value,
        "replacement_reasons": list(change.reasons),
        "replacement_unknown": change.replacement_unknown,
        "properties": [_property(prop) for prop in change.properties],
    }


def _property(prop: PropertyChange) -> dict[str, Any]:
    return {
        "name": prop.name,
        "resource_attribute": prop.attribute,
        "requires_replacement": prop.replaces,
        "note": prop.note,
        "changes": [
            {"path": change.path, "kind": change.kind, "old": change.old, "new": change.new}
            for change in prop.changes
        ],
    }


def _finding(finding: Finding) -> dict[str, Any]:
    return {
        "env": finding.env,
        "stack": finding.stack or None,
        "subject": finding.subject,
        "category": finding.category,
        "message": finding.message,
        "effect": EFFECTS[finding.weakens],
    }
