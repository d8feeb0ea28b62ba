"""Security-relevant changes, called out apart from the full diff: IAM permissions compared grant by grant
(effect, principal, condition, action, resource), so a statement merged or split by CDK is not a change;
encryption and TLS; public access; alarms; retention and removal policies; logging. Why grant by grant:
docs/infra-diff-design.md ("Security-relevant changes")."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from infra_diff.model import Finding, Impact, PropertyChange, ResourceChange, StackDiff
from infra_diff.values import ValueChange, format_value

# (resource type, property) -> category, for changes a security review must see.
SECURITY_PROPERTIES: Mapping[tuple[str, str], str] = {
    ("AWS::S3::Bucket", "BucketEncryption"): "encryption",
    ("AWS::DynamoDB::Table", "SSESpecification"): "encryption",
    ("AWS::SQS::Queue", "SqsManagedSseEnabled"): "encryption",
    ("AWS::SQS::Queue", "KmsMasterKeyId"): "encryption",
    ("AWS::SNS::Topic", "KmsMasterKeyId"): "encryption",
    ("AWS::Logs::LogGroup", "KmsKeyId"): "encryption",
    ("AWS::StepFunctions::StateMachine", "EncryptionConfiguration"): "encryption",
    ("AWS::Lambda::Function", "KmsKeyArn"): "encryption",
    ("AWS::KMS::Key", "EnableKeyRotation"): "encryption",
    ("AWS::S3::Bucket", "PublicAccessBlockConfiguration"): "public access",
    ("AWS::S3::Bucket", "AccessControl"): "public access",
    ("AWS::S3::Bucket", "OwnershipControls"): "public access",
    ("AWS::S3::Bucket", "WebsiteConfiguration"): "public access",
    ("AWS::Lambda::Url", "AuthType"): "public access",
    ("AWS::DynamoDB::Table", "DeletionProtectionEnabled"): "retention",
    ("AWS::DynamoDB::Table", "PointInTimeRecoverySpecification"): "retention",
    ("AWS::DynamoDB::Table", "TimeToLiveSpecification"): "retention",
    ("AWS::S3::Bucket", "VersioningConfiguration"): "retention",
    ("AWS::S3::Bucket", "LifecycleConfiguration"): "retention",
    ("AWS::S3::Bucket", "ObjectLockConfiguration"): "retention",
    ("AWS::SQS::Queue", "MessageRetentionPeriod"): "retention",
    ("AWS::Logs::LogGroup", "RetentionInDays"): "retention",
    ("AWS::CloudWatch::Alarm", "AlarmActions"): "alarms",
    ("AWS::CloudWatch::Alarm", "ActionsEnabled"): "alarms",
    ("AWS::StepFunctions::StateMachine", "LoggingConfiguration"): "logging",
    ("AWS::StepFunctions::StateMachine", "TracingConfiguration"): "logging",
    ("AWS::Lambda::Function", "TracingConfig"): "logging",
    ("AWS::Lambda::Function", "LoggingConfig"): "logging",
    # The strict compliance profile's access logs and backups.
    ("AWS::S3::Bucket", "LoggingConfiguration"): "logging",
    ("AWS::Backup::BackupPlan", "BackupPlan"): "retention",
}

# A boolean protection switched off weakens the stack; switched on strengthens it.
PROTECTIVE_FLAGS = frozenset(
    {
        "DeletionProtectionEnabled",
        "PointInTimeRecoveryEnabled",
        "SqsManagedSseEnabled",
        "EnableKeyRotation",
        "BlockPublicAcls",
        "BlockPublicPolicy",
        "IgnorePublicAcls",
        "RestrictPublicBuckets",
        "ActionsEnabled",
        "Enabled",
    }
)
# A resource of these types going away removes a signal or its delivery.
ALARM_TYPES = frozenset(
    {"AWS::CloudWatch::Alarm", "AWS::CloudWatch::CompositeAlarm", "AWS::SNS::Subscription"}
)
RETAIN = frozenset({"Retain", "RetainExceptOnCreate", "Snapshot"})


@dataclass(frozen=True, order=True)
class Grant:
    """One (effect, condition, principal, action, resource) permission; statements are sets of these."""

    effect: str
    condition: str
    negation: str
    principal: str
    action: str
    resource: str

    @property
    def scope(self) -> tuple[str, str, str]:
        return (self.effect, self.condition, self.negation)


def security_findings(env: str, diff: StackDiff, old: object, new: object) -> list[Finding]:
    """Security-relevant changes in one stack. A stack that left the app changes nothing deployed."""
    if diff.status in ("unchanged", "removed"):
        return []
    findings: list[Finding] = []
    for change in diff.resources:
        findings += iam_findings(env, diff.stack, change)
        findings += property_findings(env, diff.stack, change)
        findings += lifecycle_findings(env, diff.stack, change)
    for section in diff.sections:
        if section.name == "TerminationProtection" and section.changes:
            off = section.changes[0].new is False
            findings.append(
                Finding(
                    env,
                    diff.stack,
                    diff.stack,
                    "retention",
                    f"termination protection turned {'off' if off else 'on'}",
                    weakens=off,
                )
            )
    return findings


# --- IAM ---------------------------------------------------------------------------------------------


def policy_documents(resource: Mapping[str, Any] | None) -> dict[str, Any]:
    """The policy documents a resource carries, by a label a reviewer understands."""
    if not resource:
        return {}
    kind = resource.get("Type")
    props: Mapping[str, Any] = resource.get("Properties") or {}
    docs: dict[str, Any] = {}
    if kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        docs["policy"] = props.get("PolicyDocument")
    elif kind == "AWS::IAM::Role":
        docs["trust policy"] = props.get("AssumeRolePolicyDocument")
        for policy in props.get("Policies") or []:
            if isinstance(policy, Mapping):
                docs[f"inline policy {policy.get('PolicyName')}"] = policy.get("PolicyDocument")
    elif kind in ("AWS::S3::BucketPolicy", "AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy"):
        docs["resource policy"] = props.get("PolicyDocument")
    elif kind == "AWS::KMS::Key":
        docs["key policy"] = props.get("KeyPolicy")
    elif kind == "AWS::Lambda::Permission":
        condition = {
            k: props[k] for k in ("SourceArn", "SourceAccount", "PrincipalOrgID") if props.get(k) is not None
        }
        statement: dict[str, Any] = {
            "Effect": "Allow",
            "Principal": props.get("Principal"),
            "Action": props.get("Action"),
            "Resource": props.get("FunctionName"),
        }
        if condition:
            statement["Condition"] = condition
        docs["invoke permission"] = {"Statement": [statement]}
    return {label: doc for label, doc in docs.items() if doc is not None}


def grants(document: Any) -> set[Grant]:
    statements = document.get("Statement", []) if isinstance(document, Mapping) else []
    if isinstance(statements, Mapping):
        statements = [statements]
    found: set[Grant] = set()
    for statement in statements:
        if not isinstance(statement, Mapping):
            continue
        negation = ",".join(k for k in ("NotAction", "NotResource", "NotPrincipal") if k in statement)
        actions = _as_list(statement.get("Action", statement.get("NotAction"))) or [""]
        resources = _as_list(statement.get("Resource", statement.get("NotResource"))) or [""]
        principals = _principals(statement.get("Principal", statement.get("NotPrincipal")))
        for principal in principals:
            for action in actions:
                for resource in resources:
                    found.add(
                        Grant(
                            effect=str(statement.get("Effect", "Allow")),
                            condition=_text(statement.get("Condition")),
                            negation=negation,
                            principal=principal,
                            action=action,
                            resource=resource,
                        )
                    )
    return found


def _principals(value: Any) -> list[str]:
    """`{"Service": ["a", "b"]}` -> `["Service:a", "Service:b"]`; `"*"` stays `"*"`; none -> `[""]`."""
    if value is None:
        return [""]
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [f"{kind}:{item}" for kind, items in value.items() for item in _as_list(items)] or [""]
    return [_text(value)]


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [item if isinstance(item, str) else _text(item) for item in items]


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def iam_findings(env: str, stack: str, change: ResourceChange) -> list[Finding]:
    before, after = policy_documents(change.old), policy_documents(change.new)
    findings: list[Finding] = []
    for label in list(after) + [label for label in before if label not in after]:
        old_grants, new_grants = grants(before.get(label)), grants(after.get(label))
        subject = f"{change.label} {label}" if label not in ("policy", "resource policy") else change.label
        for gained, changed, other in (
            (True, new_grants - old_grants, old_grants),
            (False, old_grants - new_grants, new_grants),
        ):
            for scope, scope_grants in _by_scope(changed):
                # "widened"/"narrowed" when the other side already had a grant in the same scope on the same
                # action or resource (a statement grew or shrank); otherwise a statement came or went whole.
                related = [g for g in scope_grants if _related(g, other)]
                unrelated = [g for g in scope_grants if not _related(g, other)]
                for group, is_related in ((related, True), (unrelated, False)):
                    if group:
                        findings.append(
                            _grant_finding(
                                env,
                                stack,
                                subject,
                                scope=scope,
                                changed=group,
                                gained=gained,
                                related=is_related,
                                trust=label == "trust policy",
                            )
                        )
    if change.type == "AWS::IAM::Role":
        findings += _managed_policy_findings(env, stack, change)
    return findings


def _related(grant: Grant, other_side: set[Grant]) -> bool:
    return any(
        g.scope == grant.scope
        and (g.resource == grant.resource or g.action == grant.action)
        and (g.principal == grant.principal or g.action == grant.action)
        for g in other_side
    )


def _by_scope(items: Iterable[Grant]) -> list[tuple[tuple[str, str, str], list[Grant]]]:
    groups: dict[tuple[str, str, str], list[Grant]] = {}
    for grant in sorted(items):
        groups.setdefault(grant.scope, []).append(grant)
    return list(groups.items())


def _grant_finding(
    env: str,
    stack: str,
    subject: str,
    *,
    scope: tuple[str, str, str],
    changed: list[Grant],
    gained: bool,
    related: bool,
    trust: bool,
) -> Finding:
    effect, condition, negation = scope
    sign = "+" if gained else "-"
    text = f"{sign} {effect} {_render_grants(changed)}"
    if negation:
        text += f" [{negation}]"
    if condition:
        text += f" when {condition}"
    tls = "aws:SecureTransport" in condition
    public = effect == "Allow" and not condition and any(_is_public(g.principal) for g in changed)
    if effect == "Deny":
        weakens = not gained
        category = "TLS" if tls else "IAM"
        if tls:
            verb = "enforcement added" if gained else "enforcement removed"
        else:
            verb = "deny added" if gained else "deny removed"
    else:
        weakens = gained
        category = "public access" if public and gained else "IAM"
        if gained:
            verb = "widened" if related else "statement added"
        else:
            verb = "narrowed" if related else "statement removed"
    if trust:
        category = "IAM trust policy"
    if gained and effect == "Allow" and any(_wildcard(g) for g in changed):
        text += " (wildcard)"
    return Finding(env, stack, subject, category, f"{verb}: {text}", weakens=weakens)


def _render_grants(items: list[Grant]) -> str:
    """`a1, a2 on R1 for P; a3 on R2`: actions grouped per (principal, resource), equal groups merged."""
    actions_by_target: dict[tuple[str, str], list[str]] = {}
    for grant in items:
        actions_by_target.setdefault((grant.principal, grant.resource), []).append(grant.action)
    targets_by_actions: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for (principal, resource), actions in actions_by_target.items():
        targets_by_actions.setdefault((principal, tuple(sorted(set(actions)))), []).append(resource)
    parts = []
    for (principal, names), resources in targets_by_actions.items():
        part = ", ".join(a for a in names if a) or "(no action)"
        targets = ", ".join(r for r in sorted(resources) if r)
        if targets:
            part += f" on {targets}"
        if principal:
            part += f" for principal {principal}"
        parts.append(part)
    return "; ".join(parts)


def _wildcard(grant: Grant) -> bool:
    return grant.action == "*" or grant.action.endswith(":*") or grant.resource == "*"


def _is_public(principal: str) -> bool:
    return principal in ("*", "AWS:*")


def _managed_policy_findings(env: str, stack: str, change: ResourceChange) -> list[Finding]:
    def arns(resource: Mapping[str, Any] | None) -> set[str]:
        props = (resource or {}).get("Properties") or {}
        return set(_as_list(props.get("ManagedPolicyArns")))

    before, after = arns(change.old), arns(change.new)
    findings = [
        Finding(env, stack, change.label, "IAM", f"widened: + managed policy {arn}", weakens=True)
        for arn in sorted(after - before)
    ]
    findings += [
        Finding(env, stack, change.label, "IAM", f"narrowed: - managed policy {arn}", weakens=False)
        for arn in sorted(before - after)
    ]
    return findings


# --- properties, alarms, retention -------------------------------------------------------------------


def property_findings(env: str, stack: str, change: ResourceChange) -> list[Finding]:
    if change.impact is Impact.ADDED:
        # A new resource's settings are in the full diff; cdk-nag judges them at synth.
        return []
    if change.impact in (Impact.REMOVED, Impact.ORPHANED):
        if change.type in ALARM_TYPES:
            what = "alarm removed" if "Alarm" in change.type else "alarm notification removed"
            return [Finding(env, stack, change.label, "alarms", what, weakens=True)]
        return []
    findings = []
    for prop in change.properties:
        category = SECURITY_PROPERTIES.get((change.type, prop.name))
        if category is None or prop.attribute:
            continue
        message, weakens = f"{prop.name}: {summarize(prop.changes)}", _weakens(prop)
        if _sse_moved_to_kms(change, prop):
            message, weakens = f"{message} (SSE-KMS with KmsMasterKeyId takes its place)", None
        findings.append(Finding(env, stack, change.label, category, message, weakens=weakens))
    return findings


def _sse_moved_to_kms(change: ResourceChange, prop: PropertyChange) -> bool:
    """A queue's SQS-managed SSE removed because a KMS key now encrypts it (the strict compliance
    profile): a change of key, not a loss of encryption."""
    new_properties = (change.new or {}).get("Properties", {})
    return (
        change.type == "AWS::SQS::Queue"
        and prop.name == "SqsManagedSseEnabled"
        and "SqsManagedSseEnabled" not in new_properties
        and bool(new_properties.get("KmsMasterKeyId"))
    )


def lifecycle_findings(env: str, stack: str, change: ResourceChange) -> list[Finding]:
    findings = []
    for prop in change.properties:
        if not prop.attribute or prop.name not in ("DeletionPolicy", "UpdateReplacePolicy"):
            continue
        before = (change.old or {}).get(prop.name) or "Delete"
        after = (change.new or {}).get(prop.name) or "Delete"
        weakens: bool | None = None
        if before in RETAIN and after not in RETAIN:
            weakens = True
        elif before not in RETAIN and after in RETAIN:
            weakens = False
        findings.append(
            Finding(env, stack, change.label, "removal policy", f"{prop.name}: {before} -> {after}", weakens)
        )
    return findings


def summarize(changes: Iterable[ValueChange], limit: int = 3) -> str:
    items = list(changes)
    parts = [_one(c) for c in items[:limit]]
    if len(items) > limit:
        parts.append(f"and {len(items) - limit} more")
    return "; ".join(parts)


def _one(change: ValueChange) -> str:
    where = f"{change.path}: " if change.path else ""
    if change.kind == "added":
        return f"+ {where}{format_value(change.new, limit=100)}"
    if change.kind == "removed":
        return f"- {where}{format_value(change.old, limit=100)}"
    if change.kind == "reordered":
        return f"{where}order changed"
    return f"{where}{format_value(change.old, limit=60)} -> {format_value(change.new, limit=60)}"


def _weakens(prop: PropertyChange) -> bool | None:
    verdicts: set[bool] = set()
    for change in prop.changes:
        leaf = change.path.rsplit(".", 1)[-1] if change.path else prop.name
        if change.kind == "removed" and not change.path:
            verdicts.add(True)  # the whole setting is gone
        elif change.kind == "added" and not change.path:
            verdicts.add(False)
        elif leaf in PROTECTIVE_FLAGS and isinstance(change.old, bool) and isinstance(change.new, bool):
            verdicts.add(change.old and not change.new)
        elif (leaf == "Status" and change.old == "Enabled" and change.new == "Suspended") or (
            prop.name == "AlarmActions" and change.kind == "removed"
        ):
            verdicts.add(True)
    if True in verdicts:
        return True
    if verdicts == {False}:
        return False
    return None
