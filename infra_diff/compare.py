"""Compare two sets of synthesized stacks (base ref and working tree), environment by environment, into a
`Report`: per-resource changes with `cdk diff`'s impacts (replacement propagated to resources that refer to
a replaced one), the destructive changes that gate a merge, the security-relevant changes, and notes about
deploy-time traps. Pure: no synthesis, no AWS, no files. Conventions: docs/infra-diff-design.md."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from infra_diff import replacement
from infra_diff.model import (
    DESTRUCTIVE_IMPACTS,
    Finding,
    Impact,
    PropertyChange,
    Report,
    ResourceChange,
    StackDiff,
    StackStatus,
    StackTemplate,
)
from infra_diff.security import security_findings
from infra_diff.values import (
    ValueChange,
    asset_hashes,
    diff_values,
    mask_assets,
    references,
    simplify,
)

CDK_PARAMETERS = frozenset({"BootstrapVersion"})
CDK_RULES = frozenset({"CheckBootstrapVersion"})
CDK_CONDITIONS = frozenset({"CDKMetadataAvailable"})
CDK_METADATA_PREFIXES = ("aws:cdk:", "aws:asset:")
RESOURCE_ATTRIBUTES = ("DeletionPolicy", "UpdateReplacePolicy", "DependsOn", "Condition", "UpdatePolicy")
TEMPLATE_SECTIONS = ("Parameters", "Conditions", "Mappings", "Rules", "Outputs")
RETAINING_POLICIES = frozenset({"Retain", "RetainExceptOnCreate"})
# A physical name that stays the same across a replacement makes CloudFormation fail the update: it must
# create the new resource before deleting the old one, and the name is taken.
NAME_PROPERTIES = {
    "AWS::DynamoDB::Table": "TableName",
    "AWS::DynamoDB::GlobalTable": "TableName",
    "AWS::S3::Bucket": "BucketName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::StepFunctions::StateMachine": "StateMachineName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::IAM::Role": "RoleName",
}


def compare(
    base: Mapping[str, Mapping[str, StackTemplate] | None],
    head: Mapping[str, Mapping[str, StackTemplate]],
) -> Report:
    """Compare every environment of `head` with the same environment of `base`.

    `base[env]` is None when the environment did not exist (or did not synthesize) on the base ref.
    An environment only in `base` is reported as a note: removing it from the app deletes nothing.
    """
    envs = tuple(head) + tuple(env for env in base if env not in head)
    stacks: list[StackDiff] = []
    destructive: list[Finding] = []
    security: list[Finding] = []
    notes: list[Finding] = []
    for env in envs:
        if env not in head:
            notes.append(
                Finding(
                    env,
                    "",
                    env,
                    "environment",
                    f"environment {env} is no longer in the app; its deployed stacks are left as they are",
                )
            )
            continue
        old_stacks = base.get(env) or {}
        if base.get(env) is None:
            notes.append(
                Finding(env, "", env, "environment", f"environment {env} is new: every stack is added")
            )
        new_stacks = head[env]
        for name in list(new_stacks) + [n for n in old_stacks if n not in new_stacks]:
            old, new = old_stacks.get(name), new_stacks.get(name)
            diff = compare_stack(env, name, old, new)
            stacks.append(diff)
            if old is not None and new is not None:
                destructive += destructive_findings(diff)
            elif new is None:
                notes.append(
                    Finding(
                        env,
                        name,
                        name,
                        "stack",
                        "stack is no longer in the app: `cdk deploy` leaves the deployed stack (and its "
                        "resources) in place; `cdk destroy` would delete it",
                    )
                )
            security += security_findings(env, diff, old, new)
        notes += export_notes(env, stacks_in_env(stacks, env), old_stacks, new_stacks)
    # What weakens a protection first, then what is to judge, then what strengthens one.
    rank = {True: 0, None: 1, False: 2}
    security.sort(key=lambda f: rank[f.weakens])
    return Report(
        envs=envs,
        stacks=tuple(stacks),
        destructive=tuple(destructive),
        security=tuple(security),
        notes=tuple(notes),
    )


def stacks_in_env(stacks: list[StackDiff], env: str) -> list[StackDiff]:
    return [s for s in stacks if s.env == env]


def clean_template(template: Mapping[str, Any]) -> dict[str, Any]:
    """The template without CDK bookkeeping that never changes what is deployed."""
    cleaned = dict(template)
    resources = {}
    for logical_id, resource in (template.get("Resources") or {}).items():
        if resource.get("Type") == "AWS::CDK::Metadata":
            continue
        kept = dict(resource)
        metadata = {
            k: v
            for k, v in (resource.get("Metadata") or {}).items()
            if not k.startswith(CDK_METADATA_PREFIXES)
        }
        if metadata:
            kept["Metadata"] = metadata
        else:
            kept.pop("Metadata", None)
        resources[logical_id] = kept
    cleaned["Resources"] = resources
    for section, ignored in (
        ("Parameters", CDK_PARAMETERS),
        ("Rules", CDK_RULES),
        ("Conditions", CDK_CONDITIONS),
    ):
        kept = {k: v for k, v in (template.get(section) or {}).items() if k not in ignored}
        if kept:
            cleaned[section] = kept
        else:
            cleaned.pop(section, None)
    return cleaned


def construct_path(stack: str, resource: Mapping[str, Any]) -> str | None:
    """The construct path relative to the stack, as `cdk diff` shows it (`JobTable/Table`)."""
    path = (resource.get("Metadata") or {}).get("aws:cdk:path")
    if not isinstance(path, str):
        return None
    parts = path.split("/")
    if parts and parts[0] == stack:
        parts = parts[1:]
    if len(parts) > 1 and parts[-1] in ("Resource", "Default"):
        parts = parts[:-1]
    return "/".join(parts) or None


def compare_stack(env: str, name: str, old: StackTemplate | None, new: StackTemplate | None) -> StackDiff:
    old_template = clean_template(old.template) if old else {}
    new_template = clean_template(new.template) if new else {}
    old_resources: Mapping[str, Any] = old_template.get("Resources", {})
    new_resources: Mapping[str, Any] = new_template.get("Resources", {})
    paths = {
        lid: construct_path(name, r)
        for template in ((old.template if old else {}), (new.template if new else {}))
        for lid, r in (template.get("Resources") or {}).items()
    }
    changes: dict[str, ResourceChange] = {}
    for logical_id in list(new_resources) + [lid for lid in old_resources if lid not in new_resources]:
        change = compare_resource(
            logical_id, old_resources.get(logical_id), new_resources.get(logical_id), paths.get(logical_id)
        )
        if change is not None:
            changes[logical_id] = change
    propagate_replacements(changes, new_resources, paths)
    sections = compare_sections(old_template, new_template, old, new)
    # New template order first (how the app declares them), then what only the old template had.
    order = dict.fromkeys([*new_resources, *old_resources])
    ordered = tuple(changes[lid] for lid in order if lid in changes)
    status: StackStatus
    if old is None:
        status = "added"
    elif new is None:
        status = "removed"
    elif ordered or sections:
        status = "modified"
    else:
        status = "unchanged"
    return StackDiff(env=env, stack=name, status=status, resources=ordered, sections=sections)


def _view(resource: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The resource as compared and shown: asset hashes masked, intrinsics rendered."""
    return None if resource is None else dict(simplify(mask_assets(resource)))


def compare_resource(
    logical_id: str,
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any] | None,
    path: str | None,
) -> ResourceChange | None:
    if old is None and new is None:
        return None
    if old is None:
        assert new is not None
        return ResourceChange(logical_id, new["Type"], path, Impact.ADDED, new=_view(new))
    if new is None:
        policy = old.get("DeletionPolicy")
        impact = Impact.ORPHANED if policy in RETAINING_POLICIES else Impact.REMOVED
        return ResourceChange(logical_id, old["Type"], path, impact, old=_view(old))

    properties: list[PropertyChange] = []
    old_props: Mapping[str, Any] = old.get("Properties") or {}
    new_props: Mapping[str, Any] = new.get("Properties") or {}
    resource_type = new["Type"]
    replacing = set(
        replacement.replacing_properties(resource_type, frozenset(old_props) | frozenset(new_props))
    )
    for prop in sorted(set(old_props) | set(new_props)):
        before, after = old_props.get(prop), new_props.get(prop)
        if before == after:
            continue
        value_changes = diff_present(old_props, new_props, prop)
        note = _asset_note(resource_type, prop, before, after)
        if not value_changes and note is None:
            continue
        properties.append(PropertyChange(prop, tuple(value_changes), replaces=prop in replacing, note=note))
    for attribute in (*RESOURCE_ATTRIBUTES, "Metadata"):
        before, after = _attribute(old, attribute), _attribute(new, attribute)
        if before != after:
            present = {k: v for k, v in ((attribute, before),) if v is not None}
            present_after = {k: v for k, v in ((attribute, after),) if v is not None}
            properties.append(
                PropertyChange(
                    attribute, tuple(diff_present(present, present_after, attribute)), attribute=True
                )
            )

    reasons = [f"{p.name} requires replacement" for p in properties if p.replaces]
    if old["Type"] != new["Type"]:
        reasons.insert(0, f"type changes from {old['Type']} to {new['Type']}")
    if not properties and not reasons:
        return None
    impact = Impact.REPLACED if reasons else Impact.UPDATED
    unknown = (
        impact is Impact.UPDATED
        and any(not p.attribute for p in properties)
        and not replacement.replacement_known(resource_type)
    )
    return ResourceChange(
        logical_id,
        resource_type,
        path,
        impact,
        properties=tuple(properties),
        reasons=tuple(reasons),
        old=_view(old),
        new=_view(new),
        replacement_unknown=unknown,
    )


def diff_present(before: Mapping[str, Any], after: Mapping[str, Any], key: str) -> list[ValueChange]:
    """The change of `key` between two mappings: added or removed as a whole when only one side has it."""
    if key not in before:
        return [ValueChange("", "added", new=simplify(mask_assets(after[key])))]
    if key not in after:
        return [ValueChange("", "removed", old=simplify(mask_assets(before[key])))]
    return diff_values(simplify(mask_assets(before[key])), simplify(mask_assets(after[key])))


def _attribute(resource: Mapping[str, Any], name: str) -> Any:
    value = resource.get(name)
    if name == "DependsOn":
        # Order carries no meaning and CDK reorders it freely.
        items = [value] if isinstance(value, str) else list(value or [])
        return sorted(items) or None
    return value


def _asset_note(resource_type: str, prop: str, before: Any, after: Any) -> str | None:
    old_hashes, new_hashes = asset_hashes(before), asset_hashes(after)
    if old_hashes == new_hashes:
        return None
    what = "Lambda code changed" if resource_type == "AWS::Lambda::Function" else "asset changed"
    return f"{what} (asset {_short(old_hashes)} -> {_short(new_hashes)})"


def _short(hashes: frozenset[str]) -> str:
    return ", ".join(sorted(h[:8] for h in hashes)) or "none"


def propagate_replacements(
    changes: dict[str, ResourceChange],
    new_resources: Mapping[str, Any],
    paths: Mapping[str, str | None],
) -> None:
    """Mark resources that refer to a replaced resource in a property that forces replacement: the
    reference resolves to a new value at deploy time, so they are replaced too."""
    while True:
        replaced = {lid for lid, c in changes.items() if c.impact is Impact.REPLACED}
        added = False
        for logical_id, resource in new_resources.items():
            current = changes.get(logical_id)
            if current is not None and current.impact not in (Impact.UPDATED,):
                continue
            props: Mapping[str, Any] = resource.get("Properties") or {}
            for prop in replacement.REPLACING_PROPERTIES.get(resource["Type"], frozenset()):
                hits = sorted(references(props.get(prop)) & replaced)
                if not hits:
                    continue
                target = changes[hits[0]]
                reason = f"{prop} refers to {target.label}, which is {_impact_phrase(target.impact)}"
                if current is None:
                    view = _view(resource)
                    changes[logical_id] = ResourceChange(
                        logical_id,
                        resource["Type"],
                        paths.get(logical_id),
                        Impact.REPLACED,
                        reasons=(reason,),
                        old=view,
                        new=view,
                    )
                else:
                    changes[logical_id] = ResourceChange(
                        current.logical_id,
                        current.type,
                        current.path,
                        Impact.REPLACED,
                        properties=current.properties,
                        reasons=(*current.reasons, reason),
                        old=current.old,
                        new=current.new,
                    )
                added = True
                break
        if not added:
            return


def _impact_phrase(impact: Impact) -> str:
    return {
        Impact.REPLACED: "replaced",
        Impact.REMOVED: "deleted",
        Impact.ORPHANED: "removed from the stack",
    }.get(impact, str(impact))


def compare_sections(
    old_template: Mapping[str, Any],
    new_template: Mapping[str, Any],
    old: StackTemplate | None,
    new: StackTemplate | None,
) -> tuple[PropertyChange, ...]:
    if old is None or new is None:
        return ()
    changes: list[PropertyChange] = []
    for key in ("Description", "Transform", "AWSTemplateFormatVersion", "Metadata"):
        if old_template.get(key) != new_template.get(key):
            changes.append(PropertyChange(key, tuple(diff_present(old_template, new_template, key))))
    for section in TEMPLATE_SECTIONS:
        before_section: Mapping[str, Any] = old_template.get(section) or {}
        after_section: Mapping[str, Any] = new_template.get(section) or {}
        for name in sorted(set(before_section) | set(after_section)):
            if before_section.get(name) != after_section.get(name):
                changes.append(
                    PropertyChange(
                        f"{section}.{name}", tuple(diff_present(before_section, after_section, name))
                    )
                )
    if old.termination_protection != new.termination_protection:
        changes.append(
            PropertyChange(
                "TerminationProtection",
                (diff_values(old.termination_protection, new.termination_protection)[0],),
            )
        )
    if dict(old.tags) != dict(new.tags):
        changes.append(PropertyChange("Tags", tuple(diff_values(dict(old.tags), dict(new.tags)))))
    return tuple(changes)


def destructive_findings(diff: StackDiff) -> list[Finding]:
    """Stateful resources that would be deleted, orphaned or replaced: the merge gate."""
    findings: list[Finding] = []
    added_types = {r.type: r for r in diff.resources if r.impact is Impact.ADDED}
    for change in diff.resources:
        kind = replacement.STATEFUL_TYPES.get(change.type)
        if kind is None or change.impact not in DESTRUCTIVE_IMPACTS:
            continue
        subject = f"{change.label} ({change.type})"
        if change.impact is Impact.REPLACED:
            verb = "replaced"
            policy = (change.new or {}).get("UpdateReplacePolicy") or "Delete"
            if policy in RETAINING_POLICIES:
                fate = (
                    f"CloudFormation creates a new, empty {kind.noun} and keeps the old one outside the stack "
                    f"(UpdateReplacePolicy: {policy}): the pipeline switches to the empty one"
                )
            else:
                fate = (
                    f"CloudFormation creates a new, empty {kind.noun} and deletes the old one "
                    f"(UpdateReplacePolicy: {policy}) with {kind.loses}"
                )
            message = f"{verb}: {'; '.join(change.reasons)}. {fate}."
            name_prop = NAME_PROPERTIES.get(change.type)
            old_name = ((change.old or {}).get("Properties") or {}).get(name_prop) if name_prop else None
            new_name = ((change.new or {}).get("Properties") or {}).get(name_prop) if name_prop else None
            if old_name is not None and old_name == new_name:
                message += (
                    f" It keeps the fixed name {name_prop}={old_name!s}, so the replacement cannot be created "
                    "and the update fails."
                )
        elif change.impact is Impact.ORPHANED:
            policy = (change.old or {}).get("DeletionPolicy")
            message = (
                f"removed from the stack: DeletionPolicy {policy} keeps the {kind.noun} and its data, but "
                "CloudFormation stops managing it (and re-adding it under the same name fails)."
            )
        else:
            policy = (change.old or {}).get("DeletionPolicy") or "Delete"
            message = f"deleted (DeletionPolicy: {policy}) with {kind.loses}."
        if change.impact in (Impact.REMOVED, Impact.ORPHANED) and change.type in added_types:
            other = added_types[change.type]
            message += (
                f" {other.label} ({other.logical_id}) of the same type is added: if a construct was renamed or "
                "moved, its logical id changed, which CloudFormation treats as delete + create."
            )
        findings.append(Finding(diff.env, diff.stack, subject, change.impact.value, message, weakens=True))
    return findings


def export_notes(
    env: str,
    diffs: list[StackDiff],
    old_stacks: Mapping[str, StackTemplate],
    new_stacks: Mapping[str, StackTemplate],
) -> list[Finding]:
    """Exports whose value changes or that disappear while another stack imports them: CloudFormation
    refuses to update or delete an export that is in use, so the deploy would fail."""
    importers: dict[str, set[str]] = {}
    for stacks in (old_stacks, new_stacks):
        for name, stack in stacks.items():
            for imported in _imports(stack.template):
                importers.setdefault(imported, set()).add(name)
    notes: list[Finding] = []
    by_stack = {d.stack: d for d in diffs}
    for name, old in old_stacks.items():
        new = new_stacks.get(name)
        diff = by_stack.get(name)
        moved = {
            c.logical_id: c
            for c in (diff.resources if diff else ())
            if c.impact in (Impact.REPLACED, Impact.REMOVED, Impact.ORPHANED)
        }
        old_outputs: Mapping[str, Any] = old.template.get("Outputs") or {}
        new_outputs: Mapping[str, Any] = (new.template.get("Outputs") or {}) if new else {}
        new_exports = {_export_name(o): o for o in new_outputs.values() if _export_name(o)}
        for output in old_outputs.values():
            export = _export_name(output)
            users = sorted(importers.get(export or "", set()) - {name})
            if not export or not users:
                continue
            exported = new_exports.get(export)
            if exported is None:
                why = "is removed"
            elif mask_assets(exported.get("Value")) != mask_assets(output.get("Value")):
                why = "changes value"
            else:
                hit = sorted(references(output.get("Value")) & set(moved))
                if not hit:
                    continue
                why = f"changes value ({moved[hit[0]].label} is {_impact_phrase(moved[hit[0]].impact)})"
            notes.append(
                Finding(
                    env,
                    name,
                    export,
                    "export",
                    f"export {export} {why} while {', '.join(users)} imports it: CloudFormation refuses to "
                    "change or delete an export in use, so this deploy fails until the importing stack "
                    "stops using it (deploy it first without the import, then this one).",
                    weakens=None,
                )
            )
    return notes


def _export_name(output: Mapping[str, Any]) -> str | None:
    name = (output.get("Export") or {}).get("Name")
    rendered = simplify(name)
    return rendered if isinstance(rendered, str) else None


def _imports(value: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(value, Mapping):
        if set(value) == {"Fn::ImportValue"}:
            name = simplify(value["Fn::ImportValue"])
            if isinstance(name, str):
                found.add(name)
        for v in value.values():
            found |= _imports(v)
    elif isinstance(value, list):
        for v in value:
            found |= _imports(v)
    return found
