"""Policy evaluation: one request against one policy document (resource-based, or an identity policy, whose
statements name no principal), decided the way AWS decides it. Pure functions over the policy JSON; no moto,
no AWS calls. How several policies combine: `localcloud.services.iam.authorization`.

How it models AWS, and where it differs: docs/local-cloud-internals.md#localcloudservicesiampolicypy
"""

from __future__ import annotations

import enum
import ipaddress
import json
import logging
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

logger = logging.getLogger(__name__)

ContextValue = str | Sequence[str]


class PolicyError(ValueError):
    """The policy is not a policy document this module can read (not JSON, no statements, bad Effect)."""


@dataclass(frozen=True)
class Principal:
    """Who makes the request: `AWS` (an account id or IAM ARN), `Service`, `Federated`, `CanonicalUser`
    or `Anonymous`. A role session (`session`) is its `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`
    ARN, with the role's ARN in `role_arn`: a resource policy may name either."""

    type: str
    identifier: str = ""
    role_arn: str = ""

    @classmethod
    def service(cls, name: str) -> Principal:
        return cls("Service", name)

    @classmethod
    def aws(cls, arn_or_account: str) -> Principal:
        return cls("AWS", arn_or_account)

    @classmethod
    def session(cls, session_arn: str, role_arn: str) -> Principal:
        return cls("AWS", session_arn, role_arn)

    @property
    def account(self) -> str | None:
        if self.type != "AWS":
            return None
        if _ACCOUNT_ID.fullmatch(self.identifier):
            return self.identifier
        parts = self.identifier.split(":")
        return parts[4] if len(parts) > 5 and parts[4] else None

    def __str__(self) -> str:
        return f"{self.type} principal {self.identifier}".strip()


@dataclass(frozen=True)
class Request:
    """One request: the context keys are the request's (`aws:SourceArn`, ...); a list is a multi-valued key."""

    principal: Principal
    action: str
    resource: str
    context: Mapping[str, ContextValue] = field(default_factory=dict)


class Outcome(enum.Enum):
    ALLOWED = "Allowed"
    EXPLICIT_DENY = "ExplicitDeny"
    IMPLICIT_DENY = "ImplicitDeny"


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    # Labels (Sid, or `#index` without one) of the statements that decided: the Denies, or the Allows.
    statements: tuple[str, ...] = ()
    # Statements left out, or applied as a Deny, because of a condition operator this module does not know.
    unsupported: tuple[str, ...] = ()
    # The Allows among `statements` whose Principal names the caller only through its account (`{"AWS":
    # ACCOUNT}`, `arn:aws:iam::ACCOUNT:root`): in a resource policy, such a statement lets the account's
    # own IAM policies decide; it grants nothing on its own to a role of that account.
    through_account: tuple[str, ...] = ()

    @property
    def allowed(self) -> bool:
        return self.outcome is Outcome.ALLOWED

    @property
    def grants_alone(self) -> bool:
        """An Allow names the caller itself (its ARN, its role's, a service, or everyone: `*`)."""
        return self.allowed and len(self.through_account) < len(self.statements)

    @property
    def reason(self) -> str:
        named = ", ".join(self.statements)
        if self.outcome is Outcome.EXPLICIT_DENY:
            text = f"explicitly denied by statement {named}"
        elif self.outcome is Outcome.ALLOWED:
            text = f"allowed by statement {named}"
        else:
            text = "no statement allows it (implicit deny)"
        if self.unsupported:
            text += f"; unsupported condition operators in {', '.join(self.unsupported)}"
        return text


def evaluate(policy: str | Mapping[str, Any], request: Request) -> Decision:
    """Decide `request` against one resource-based policy (a JSON string or a parsed document)."""
    statements = _statements(policy)
    context = {str(k).lower(): v for k, v in request.context.items()}
    allows: list[str] = []
    through_account: list[str] = []
    denies: list[str] = []
    unsupported: list[str] = []
    for index, statement in enumerate(statements):
        label = str(statement.get("Sid") or f"#{index}")
        effect = statement.get("Effect")
        if effect not in ("Allow", "Deny"):
            raise PolicyError(f"statement {label}: Effect must be Allow or Deny, not {effect!r}")
        match = _principal_matches(statement, request.principal, label)
        if not (
            match is not _Match.NONE
            and _action_matches(statement, request.action, label)
            and _resource_matches(statement, request.resource)
        ):
            continue
        result = _conditions_hold(statement.get("Condition"), context, label)
        if result is None:
            unsupported.append(label)
            applies = effect == "Deny"
        else:
            applies = result
        if applies:
            (denies if effect == "Deny" else allows).append(label)
            if effect == "Allow" and match is _Match.ACCOUNT:
                through_account.append(label)
    if denies:
        return Decision(Outcome.EXPLICIT_DENY, tuple(denies), tuple(unsupported))
    if allows:
        return Decision(Outcome.ALLOWED, tuple(allows), tuple(unsupported), tuple(through_account))
    return Decision(Outcome.IMPLICIT_DENY, (), tuple(unsupported))


def _statements(policy: str | Mapping[str, Any]) -> list[Mapping[str, Any]]:
    document = _parsed(policy) if isinstance(policy, str) else policy
    if not isinstance(document, Mapping) or "Statement" not in document:
        raise PolicyError("no Statement")
    statements = document["Statement"]
    if isinstance(statements, Mapping):
        statements = [statements]
    if not isinstance(statements, list) or not all(isinstance(s, Mapping) for s in statements):
        raise PolicyError("Statement must be an object or a list of objects")
    return statements


@lru_cache(maxsize=1024)
def _parsed(text: str) -> Any:
    # Every request of a role session reads the same few documents; nothing here mutates what it parsed.
    try:
        return json.loads(text)
    except ValueError as error:
        raise PolicyError(f"not JSON: {error}") from error


def _strings(value: Any) -> list[str]:
    """A policy or context value as a list of strings (JSON booleans as `true`/`false`, as IAM reads them)."""
    items = value if isinstance(value, list | tuple) else [value]
    return ["true" if v is True else "false" if v is False else str(v) for v in items if v is not None]


# -- principal, action, resource -------------------------------------------------------------------------

_ACCOUNT_ID = re.compile(r"\d{12}")
_ACCOUNT_ROOT = re.compile(r"arn:[^:]+:iam::(\d{12}):root")


class _Match(enum.Enum):
    NONE = 0
    # Through the caller's account only (`{"AWS": ACCOUNT}`, the account's root ARN).
    ACCOUNT = 1
    # The caller itself, or everyone.
    DIRECT = 2


def _principal_matches(statement: Mapping[str, Any], principal: Principal, label: str) -> _Match:
    if "Principal" in statement and "NotPrincipal" in statement:
        raise PolicyError(f"statement {label}: both Principal and NotPrincipal")
    if "Principal" in statement:
        return _principal_in(statement["Principal"], principal, label)
    if "NotPrincipal" in statement:
        inside = _principal_in(statement["NotPrincipal"], principal, label)
        return _Match.DIRECT if inside is _Match.NONE else _Match.NONE
    return _Match.DIRECT


def _principal_in(spec: Any, principal: Principal, label: str) -> _Match:
    if spec == "*":
        return _Match.DIRECT
    if not isinstance(spec, Mapping):
        raise PolicyError(f'statement {label}: Principal must be "*" or an object')
    best = _Match.NONE
    for kind, identifiers in spec.items():
        for identifier in _strings(identifiers):
            if kind == "AWS":
                if identifier == "*":
                    return _Match.DIRECT
                if principal.type == "AWS":
                    found = _aws_principal(identifier, principal)
                    if found is _Match.DIRECT:
                        return found
                    best = max(best, found, key=lambda m: m.value)
            elif kind == principal.type:
                same = (
                    identifier.lower() == principal.identifier.lower()
                    if kind == "Service"
                    else identifier == principal.identifier
                )
                if same:
                    return _Match.DIRECT
    return best


def _aws_principal(identifier: str, principal: Principal) -> _Match:
    root = _ACCOUNT_ROOT.fullmatch(identifier)
    account = identifier if _ACCOUNT_ID.fullmatch(identifier) else root.group(1) if root else None
    if account is not None:
        return _Match.ACCOUNT if principal.account == account else _Match.NONE
    # A role session is named by its session ARN or by its role's ARN.
    if identifier == principal.identifier or (principal.role_arn and identifier == principal.role_arn):
        return _Match.DIRECT
    return _Match.NONE


def _action_matches(statement: Mapping[str, Any], action: str, label: str) -> bool:
    if "Action" in statement:
        return any(_wildcard(p, True).fullmatch(action) for p in _strings(statement["Action"]))
    if "NotAction" in statement:
        return not any(_wildcard(p, True).fullmatch(action) for p in _strings(statement["NotAction"]))
    raise PolicyError(f"statement {label}: no Action or NotAction")


def _resource_matches(statement: Mapping[str, Any], resource: str) -> bool:
    if "Resource" in statement:
        return any(_wildcard(p, False).fullmatch(resource) for p in _strings(statement["Resource"]))
    if "NotResource" in statement:
        return not any(_wildcard(p, False).fullmatch(resource) for p in _strings(statement["NotResource"]))
    return True


@lru_cache(maxsize=2048)
def _wildcard(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(regex, re.DOTALL | (re.IGNORECASE if ignore_case else 0))


# -- conditions ------------------------------------------------------------------------------------------


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _date(text: str) -> datetime | None:
    epoch = _number(text)
    if epoch is not None:
        return datetime.fromtimestamp(epoch, UTC)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _ordered(parse: Callable[[str], Any], compare: Callable[[Any, Any], bool]) -> Callable[[str, str], bool]:
    def test(value: str, expected: str) -> bool:
        left, right = parse(value), parse(expected)
        return left is not None and right is not None and bool(compare(left, right))

    return test


def _arn_like(value: str, pattern: str) -> bool:
    expected = pattern.split(":", 5)
    if len(expected) < 6:
        return bool(_wildcard(pattern, False).fullmatch(value))
    actual = value.split(":", 5)
    return len(actual) == 6 and all(
        _wildcard(p, False).fullmatch(a) for a, p in zip(actual, expected, strict=True)
    )


def _in_network(value: str, network: str) -> bool:
    try:
        return ipaddress.ip_address(value) in ipaddress.ip_network(network, strict=False)
    except ValueError:
        return False


def _like(value: str, pattern: str) -> bool:
    return bool(_wildcard(pattern, False).fullmatch(value))


def _equals_ignore_case(value: str, expected: str) -> bool:
    return value.casefold() == expected.casefold()


def _bool_equals(value: str, expected: str) -> bool:
    return value.lower() == expected.lower()


# Operator -> (negated, the positive test of one request value against one policy value).
_OPERATORS: dict[str, tuple[bool, Callable[[str, str], bool]]] = {
    "StringEquals": (False, operator.eq),
    "StringNotEquals": (True, operator.eq),
    "StringEqualsIgnoreCase": (False, _equals_ignore_case),
    "StringNotEqualsIgnoreCase": (True, _equals_ignore_case),
    "StringLike": (False, _like),
    "StringNotLike": (True, _like),
    "NumericEquals": (False, _ordered(_number, operator.eq)),
    "NumericNotEquals": (True, _ordered(_number, operator.eq)),
    "NumericLessThan": (False, _ordered(_number, operator.lt)),
    "NumericLessThanEquals": (False, _ordered(_number, operator.le)),
    "NumericGreaterThan": (False, _ordered(_number, operator.gt)),
    "NumericGreaterThanEquals": (False, _ordered(_number, operator.ge)),
    "DateEquals": (False, _ordered(_date, operator.eq)),
    "DateNotEquals": (True, _ordered(_date, operator.eq)),
    "DateLessThan": (False, _ordered(_date, operator.lt)),
    "DateLessThanEquals": (False, _ordered(_date, operator.le)),
    "DateGreaterThan": (False, _ordered(_date, operator.gt)),
    "DateGreaterThanEquals": (False, _ordered(_date, operator.ge)),
    "Bool": (False, _bool_equals),
    "BinaryEquals": (False, operator.eq),
    "IpAddress": (False, _in_network),
    "NotIpAddress": (True, _in_network),
    "ArnEquals": (False, _arn_like),
    "ArnLike": (False, _arn_like),
    "ArnNotEquals": (True, _arn_like),
    "ArnNotLike": (True, _arn_like),
}
_QUALIFIERS = ("ForAnyValue:", "ForAllValues:")
_reported_operators: set[str] = set()


def _conditions_hold(condition: Any, context: Mapping[str, ContextValue], label: str) -> bool | None:
    """True / False, or None when an unknown operator leaves the answer open (and nothing else is False)."""
    if not condition:
        return True
    if not isinstance(condition, Mapping):
        raise PolicyError(f"statement {label}: Condition must be an object")
    unknown = False
    for name, keys in condition.items():
        if not isinstance(keys, Mapping):
            raise PolicyError(f"statement {label}: {name} must map condition keys to values")
        test = _operator(str(name))
        if test is None:
            unknown = True
            if name not in _reported_operators:
                _reported_operators.add(name)
                logger.warning(
                    "condition operator %s is not supported by the local policy evaluator: an Allow using "
                    "it does not apply, a Deny using it does",
                    name,
                )
            continue
        for key, expected in keys.items():
            if not test(_present(context.get(str(key).lower())), _strings(expected)):
                return False
    return None if unknown else True


def _present(value: ContextValue | None) -> list[str] | None:
    if value is None:
        return None
    values = _strings(list(value) if not isinstance(value, str) else value)
    return values or None


def _operator(name: str) -> Callable[[list[str] | None, list[str]], bool] | None:
    qualifier = next((q for q in _QUALIFIERS if name.startswith(q)), "")
    base = name[len(qualifier) :]
    if base == "Null" and not qualifier:
        return lambda values, expected: any((values is None) == (e.lower() == "true") for e in expected)
    if_exists = base.endswith("IfExists")
    if if_exists:
        base = base[: -len("IfExists")]
    if base not in _OPERATORS:
        return None
    negated, positive = _OPERATORS[base]

    def one(value: str, expected: list[str]) -> bool:
        hit = any(positive(value, e) for e in expected)
        return not hit if negated else hit

    def test(values: list[str] | None, expected: list[str]) -> bool:
        if values is None:
            if if_exists or qualifier == "ForAllValues:":
                return True
            if qualifier == "ForAnyValue:":
                return False
            return negated
        if qualifier == "ForAllValues:":
            return all(one(v, expected) for v in values)
        return any(one(v, expected) for v in values)

    return test
