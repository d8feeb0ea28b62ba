"""Authorization of one request within one account, as AWS combines the policies that apply to it: the
caller's identity policies (inline and managed), its permissions boundary and session policy, and the
target's resource policy. Pure functions over policy documents; `enforcement` finds the documents in moto.

How it models AWS, and where it differs: docs/local-cloud-internals.md#localcloudservicesiamauthorizationpy
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from localcloud.services.iam import policy
from localcloud.services.iam.policy import ContextValue, Outcome, Principal, Request

Document = str | Mapping[str, Any]


@dataclass(frozen=True)
class NamedPolicy:
    """A policy document and what to call it in a log line (`inline policy P of role R`, a managed policy's
    ARN, `bucket policy of B`)."""

    name: str
    document: Document


@dataclass(frozen=True)
class Caller:
    """A principal with the policies IAM attaches to it. For a service principal (`events.amazonaws.com`
    delivering to a target) there are none: only the target's resource policy can let it in."""

    principal: Principal
    identity_policies: tuple[NamedPolicy, ...] = ()
    permissions_boundary: NamedPolicy | None = None
    session_policy: NamedPolicy | None = None

    @property
    def is_service(self) -> bool:
        return self.principal.type == "Service"


@dataclass(frozen=True)
class Check:
    """One authorization a request needs: an IAM action on one resource ARN, with the request's context keys.
    Some operations need several (CopyObject reads one object and writes another)."""

    action: str
    resource: str
    context: Mapping[str, ContextValue] = field(default_factory=dict)


class Reason(enum.Enum):
    ALLOWED = "allowed"
    DENIED_BY_IDENTITY_POLICY = "an explicit deny in an identity-based policy"
    DENIED_BY_RESOURCE_POLICY = "an explicit deny in a resource-based policy"
    DENIED_BY_BOUNDARY = "an explicit deny in a permissions boundary"
    DENIED_BY_SESSION_POLICY = "an explicit deny in a session policy"
    NO_IDENTITY_ALLOW = "no identity-based policy allows the {action} action"
    NO_RESOURCE_ALLOW = "no resource-based policy allows the {action} action"
    NO_BOUNDARY_ALLOW = "no permissions boundary allows the {action} action"
    NO_SESSION_ALLOW = "no session policy allows the {action} action"


@dataclass(frozen=True)
class Verdict:
    check: Check
    reason: Reason
    # Which policy and statements decided, for the log: `inline policy X of role R: statement S`.
    decided_by: tuple[str, ...] = ()

    @property
    def allowed(self) -> bool:
        return self.reason is Reason.ALLOWED

    def message(self, principal: Principal) -> str:
        """AWS's AccessDenied message for this verdict."""
        action = self.check.action
        because = self.reason.value.format(action=action)
        explicit = self.reason.name.startswith("DENIED_BY")
        return (
            f"User: {principal.identifier} is not authorized to perform: {action} on resource: "
            f"{self.check.resource} {'with' if explicit else 'because'} {because}"
        )


def _evaluate_all(policies: Sequence[NamedPolicy], request: Request) -> tuple[list[str], list[str], bool]:
    """(explicit denies, allows, any allow that names the caller itself) across `policies`."""
    denies: list[str] = []
    allows: list[str] = []
    alone = False
    for named in policies:
        decision = policy.evaluate(named.document, request)
        labels = [f"{named.name}: statement {label}" for label in decision.statements]
        if decision.outcome is Outcome.EXPLICIT_DENY:
            denies += labels
        elif decision.allowed:
            allows += labels
            alone = alone or decision.grants_alone
    return denies, allows, alone


def authorize(
    caller: Caller, check: Check, resource_policy: NamedPolicy | None, *, context: Mapping[str, ContextValue]
) -> Verdict:
    """Decide `check` for `caller` in the caller's own account (AWS's policy evaluation logic, same
    account): an explicit Deny anywhere wins; otherwise an Allow in an identity policy, or one in the
    resource policy that names the caller (its session, its role, or everyone, not just its account),
    grants, if the permissions boundary and the session policy (when there are any) allow it too. `context` holds the request-wide keys (aws:SecureTransport,
    aws:PrincipalArn, ...), the check its own."""
    request = Request(caller.principal, check.action, check.resource, {**context, **check.context})
    resource_denies, resource_allows, resource_alone = (
        _evaluate_all([resource_policy], request) if resource_policy is not None else ([], [], False)
    )
    identity_denies, identity_allows, _ = _evaluate_all(caller.identity_policies, request)
    boundary = caller.permissions_boundary
    session = caller.session_policy
    boundary_denies, boundary_allows, _ = _evaluate_all([boundary], request) if boundary else ([], [], False)
    session_denies, session_allows, _ = _evaluate_all([session], request) if session else ([], [], False)

    if caller.is_service:
        # A service principal has no identity policies: the resource policy alone decides.
        granted = resource_allows if resource_alone else []
        missing = [(not granted, Reason.NO_RESOURCE_ALLOW)]
    else:
        granted = identity_allows or (resource_allows if resource_alone else [])
        missing = [
            (not granted, Reason.NO_IDENTITY_ALLOW),
            (boundary is not None and not boundary_allows, Reason.NO_BOUNDARY_ALLOW),
            (session is not None and not session_allows, Reason.NO_SESSION_ALLOW),
        ]
    # In AWS's order: an explicit Deny anywhere first, then what no policy allows.
    refusals = [
        (bool(identity_denies), Reason.DENIED_BY_IDENTITY_POLICY, identity_denies),
        (bool(resource_denies), Reason.DENIED_BY_RESOURCE_POLICY, resource_denies),
        (bool(boundary_denies), Reason.DENIED_BY_BOUNDARY, boundary_denies),
        (bool(session_denies), Reason.DENIED_BY_SESSION_POLICY, session_denies),
        *((applies, reason, []) for applies, reason in missing),
    ]
    for applies, reason, statements in refusals:
        if applies:
            return Verdict(check, reason, tuple(statements))
    return Verdict(check, Reason.ALLOWED, tuple(granted))
