"""IAM enforced in the local cloud: every request signed by a role session (a Lambda environment, a state
machine's service integration, an event source mapping's read) is authorized against the role's policies
and the target's resource policy before moto sees it, and answered AccessDenied in the service's wire shape
otherwise; the local cloud's own deliveries (EventBridge targets, Lambda destinations) ask here too. Any
other caller (CloudFormation, the CLI, tests' clients: the dummy credentials) keeps administrator rights.

Control API on the server's port, never itself enforced:

    GET  /_localcloud/iam    {"enforced": bool, "denials": [the most recent denials, oldest first]}
    POST /_localcloud/iam    {"enforced": bool} -> the same document

How it models AWS, and where it differs: docs/local-cloud-internals.md#localcloudservicesiamenforcementpy
"""

from __future__ import annotations

import http
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from moto.awslambda.models import lambda_backends
from moto.dynamodb.models import dynamodb_backends
from moto.events.models import events_backends
from moto.iam.models import iam_backends
from moto.s3.models import s3_backends
from moto.sns.models import sns_backends
from moto.sqs.models import sqs_backends

from localcloud.core import wire
from localcloud.core.state import ACCOUNT_ID, REGION
from localcloud.services.iam import actions, requests
from localcloud.services.iam.authorization import Caller, Check, NamedPolicy, Verdict, authorize
from localcloud.services.iam.policy import ContextValue, PolicyError, Principal
from localcloud.services.iam.sessions import RoleSession, Sessions

LOG = logging.getLogger("localcloud.services.iam.enforcement")

CONTROL_PATH = "/_localcloud/iam"
# Turns enforcement off when the server starts (`pipeline local up --no-iam` sets it too): 0, off, false, no.
ENV_VARIABLE = "LOCALCLOUD_IAM"
RECENT_DENIALS = 200

WSGIApp = Callable[[dict[str, Any], Any], Iterable[bytes]]

# The code each service answers a denied request with (botocore's Error.Code); the rest say
# AccessDeniedException. `wire.resolve_error` gives each its HTTP status and wire shape.
_DENIED_CODES = {
    "s3": "AccessDenied",
    "sqs": "AccessDenied",
    "sns": "AuthorizationError",
    "sts": "AccessDenied",
    "cloudwatch": "AccessDenied",
}


def enabled_by_environment(value: str | None) -> bool:
    """Whether `$LOCALCLOUD_IAM` leaves enforcement on (it is on unless the variable says off)."""
    return (value or "").strip().lower() not in ("0", "off", "false", "no")


@dataclass(frozen=True)
class Denial:
    """One refused request, as the log line and the control API show it."""

    principal: str
    action: str
    resource: str
    operation: str
    message: str
    # Why, for a person: `no Allow in ...`, the statements of an explicit Deny, or the missing table row.
    detail: str
    at: str

    def log_line(self) -> str:
        return (
            f"IAM denied principal={self.principal} action={self.action} resource={self.resource} "
            f"operation={self.operation}: {self.detail}"
        )


class Enforcement:
    """The on/off switch, the sessions, the moto lookups and the recent denials of one server process."""

    def __init__(self, sessions: Sessions | None = None, *, enabled: bool = True) -> None:
        self.sessions = sessions or Sessions()
        self._enabled = enabled
        self._lock = threading.Lock()
        self._denials: deque[Denial] = deque(maxlen=RECENT_DENIALS)

    @property
    def enabled(self) -> bool:
        return self._enabled

    def set_enabled(self, enabled: bool) -> None:
        if enabled != self._enabled:
            LOG.warning(
                "IAM enforcement is now %s", "on" if enabled else "OFF: every caller is an administrator"
            )
        self._enabled = enabled

    def denials(self) -> list[dict[str, str]]:
        with self._lock:
            return [asdict(denial) for denial in self._denials]

    # -- deciding ---------------------------------------------------------------------------------------

    def authorize_request(self, request: requests.ApiRequest, session: RoleSession) -> Denial | None:
        """None when the role session may make `request`; else the denial (already logged)."""
        operation = f"{request.service}:{request.operation or '?'}"
        found = actions.checks(request, actions.Scope(account=session.account, region=request.region))
        if found is None:
            # Fail closed: a call the table does not know is refused, so that the missing row shows up.
            return self._deny(
                Denial(
                    principal=session.arn,
                    action=f"{request.service}:{request.operation or '?'}",
                    resource="?",
                    operation=operation,
                    message=(
                        f"User: {session.arn} is not authorized to perform: {operation} (the local cloud "
                        "has no IAM action for this operation; see localcloud/services/iam/actions.py)"
                    ),
                    detail="no row for this operation in the operation table (localcloud/services/iam/"
                    "actions.py): the local cloud refuses what it cannot authorize; add the row",
                    at=_now(),
                )
            )
        return self.authorize_session(session, found, operation=operation, region=request.region)

    def authorize_session(
        self, session: RoleSession, checks: Iterable[Check], *, operation: str, region: str = REGION
    ) -> Denial | None:
        """Every check for the role session, or the first denial (logged)."""
        caller = self.caller(session)
        context = _session_context(session, region)
        for check in checks:
            verdict = authorize(caller, check, self.resource_policy(check.resource, region), context=context)
            if not verdict.allowed:
                return self._deny(_denial(verdict, caller.principal, operation))
        return None

    def authorize_role(
        self,
        role_arn: str,
        session_name: str,
        checks: Iterable[Check],
        *,
        operation: str,
        region: str = REGION,
    ) -> Denial | None:
        """What a service does as a role it assumes (Lambda sending to a destination with the function's
        role, EventBridge with a target's RoleArn). None when enforcement is off."""
        if not self._enabled:
            return None
        session = self.sessions.issue(role_arn, session_name)
        return self.authorize_session(session, checks, operation=operation, region=region)

    def authorize_service(
        self, service: str, check: Check, *, source_arn: str, source_account: str, operation: str
    ) -> Denial | None:
        """A delivery by an AWS service principal (`events.amazonaws.com`): the target's resource policy
        alone decides, with the source's ARN and account as condition keys. None when enforcement is off."""
        if not self._enabled:
            return None
        region = check.resource.split(":")[3] if check.resource.count(":") >= 5 else REGION
        context: dict[str, ContextValue] = {
            "aws:SecureTransport": "true",
            "aws:SourceArn": source_arn,
            "aws:SourceAccount": source_account,
            "aws:CurrentTime": _now(),
            "aws:EpochTime": str(int(time.time())),
        }
        principal = Principal.service(service)
        verdict = authorize(
            Caller(principal), check, self.resource_policy(check.resource, region), context=context
        )
        return None if verdict.allowed else self._deny(_denial(verdict, principal, operation))

    def _deny(self, denial: Denial) -> Denial:
        LOG.warning("%s", denial.log_line())
        with self._lock:
            self._denials.append(denial)
        return denial

    # -- what moto holds ----------------------------------------------------------------------------------

    def caller(self, session: RoleSession) -> Caller:
        """The session's principal with its role's identity policies (inline, then attached managed), its
        permissions boundary and the session policy. A role that no longer exists has none."""
        principal = Principal.session(session.arn, session.role_arn)
        session_policy = (
            NamedPolicy("session policy", session.session_policy) if session.session_policy else None
        )
        backend = iam_backends[session.account]["aws"]
        try:
            role = backend.get_role_by_arn(session.role_arn)
        except Exception:  # noqa: BLE001 - moto's IAMNotFoundException: the role was deleted
            return Caller(principal, session_policy=session_policy)
        policies = [
            NamedPolicy(f"inline policy {name} of role {role.name}", _text(document))
            for name, document in list(role.policies.items())
        ]
        for arn, managed in list(role.managed_policies.items()):
            document = _default_version(managed)
            if document is not None:
                policies.append(NamedPolicy(f"managed policy {arn}", document))
        boundary = None
        if role.permissions_boundary_arn:
            limit = backend.managed_policies.get(role.permissions_boundary_arn)
            document = _default_version(limit) if limit is not None else None
            # A boundary that does not exist allows nothing (fail closed).
            boundary = NamedPolicy(
                f"permissions boundary {role.permissions_boundary_arn}", document or '{"Statement": []}'
            )
        return Caller(principal, tuple(policies), boundary, session_policy)

    def resource_policy(self, arn: str, region: str) -> NamedPolicy | None:
        """The resource-based policy AWS evaluates for `arn` (the bucket's for an object), or None."""
        try:
            return _resource_policy(arn, region)
        except Exception:  # noqa: BLE001 - a resource that does not exist has no policy; moto raises its own
            return None


@dataclass(frozen=True)
class _Arn:
    whole: str
    region: str
    account: str
    resource: str


def _resource_policy(arn: str, region: str) -> NamedPolicy | None:
    parts = arn.split(":", 5)
    if len(parts) < 6:
        return None
    _, _, service, arn_region, account, resource = parts
    lookup = _RESOURCE_POLICIES.get(service)
    if lookup is None:
        return None
    # S3 ARNs carry neither region nor account: the bucket is the caller's account's.
    return lookup(_Arn(arn, arn_region or region, account or ACCOUNT_ID, resource))


def _bucket_policy(arn: _Arn) -> NamedPolicy | None:
    bucket = arn.resource.split("/", 1)[0]
    raw = s3_backends[arn.account]["aws"].get_bucket(bucket).policy
    if not raw:
        return None
    return NamedPolicy(f"bucket policy of {bucket}", raw.decode() if isinstance(raw, bytes) else raw)


def _queue_policy(arn: _Arn) -> NamedPolicy | None:
    text = sqs_backends[arn.account][arn.region].get_queue(arn.resource).policy
    return NamedPolicy(f"queue policy of {arn.resource}", text) if text else None


def _topic_policy(arn: _Arn) -> NamedPolicy | None:
    topic = sns_backends[arn.account][arn.region].get_topic(arn.whole)
    return NamedPolicy(f"topic policy of {topic.name}", topic.policy) if topic.policy else None


def _function_policy(arn: _Arn) -> NamedPolicy | None:
    # Permissions for every qualifier live on the function (each statement names its own Resource).
    name = arn.resource.split(":")[1] if arn.resource.startswith("function:") else arn.resource
    statements = lambda_backends[arn.account][arn.region].get_function(name).policy.statements
    if not statements:
        return None
    document = {"Version": "2012-10-17", "Statement": statements}
    return NamedPolicy(f"resource policy of function {name}", json.dumps(document))


def _bus_policy(arn: _Arn) -> NamedPolicy | None:
    if not arn.resource.startswith("event-bus/"):
        return None
    bus = events_backends[arn.account][arn.region].event_buses.get(arn.resource.split("/", 1)[1])
    if bus is None or not bus.policy:
        return None
    return NamedPolicy(f"resource policy of event bus {bus.name}", bus.policy)


def _table_policy(arn: _Arn) -> NamedPolicy | None:
    # A table's policy covers its indexes and streams too.
    table_arn = "/".join(arn.whole.split("/", 2)[:2])
    found = dynamodb_backends[arn.account][arn.region].resource_policies.get(table_arn)
    return NamedPolicy(f"resource policy of {table_arn}", found.policy_doc) if found is not None else None


def _trust_policy(arn: _Arn) -> NamedPolicy | None:
    # For sts:AssumeRole, the role's trust policy is the resource policy.
    if not arn.resource.startswith("role/"):
        return None
    role = iam_backends[arn.account]["aws"].get_role_by_arn(arn.whole)
    return NamedPolicy(f"trust policy of role {role.name}", role.assume_role_policy_document)


# The resource policies AWS evaluates together with a same-account caller's identity policies.
_RESOURCE_POLICIES: dict[str, Callable[[_Arn], NamedPolicy | None]] = {
    "s3": _bucket_policy,
    "sqs": _queue_policy,
    "sns": _topic_policy,
    "lambda": _function_policy,
    "events": _bus_policy,
    "dynamodb": _table_policy,
    "iam": _trust_policy,
}


def _default_version(managed: Any) -> str | None:
    for version in getattr(managed, "versions", []):
        if version.is_default:
            return _text(version.document)
    return None


def _text(document: Any) -> Any:
    # moto keeps a policy as the JSON text it was given, or (CloudFormation's Role.Policies) as an object.
    return document if isinstance(document, str | Mapping) else json.dumps(document)


def _session_context(session: RoleSession, region: str) -> dict[str, ContextValue]:
    return {
        # AWS's endpoints are TLS only, so every request AWS evaluates arrives with aws:SecureTransport true;
        # the local cloud is plain HTTP on loopback, never leaves the machine, and stands in for those TLS
        # endpoints: a TLS-only Deny (CDK's enforce_ssl) must not apply, as it does not on AWS.
        "aws:SecureTransport": "true",
        "aws:PrincipalArn": session.role_arn,
        "aws:PrincipalAccount": session.account,
        "aws:PrincipalType": "AssumedRole",
        "aws:RequestedRegion": region,
        "aws:CurrentTime": _now(),
        "aws:EpochTime": str(int(time.time())),
    }


def _denial(verdict: Verdict, principal: Principal, operation: str) -> Denial:
    decided = "; ".join(verdict.decided_by)
    detail = verdict.reason.value.format(action=verdict.check.action)
    return Denial(
        principal=principal.identifier,
        action=verdict.check.action,
        resource=verdict.check.resource,
        operation=operation,
        message=verdict.message(principal),
        detail=f"{detail} ({decided})" if decided else detail,
        at=_now(),
    )


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- the WSGI middleware ------------------------------------------------------------------------------------


def _status_line(status: int) -> str:
    try:
        return f"{status} {http.HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Error"


def _drain(environ: dict[str, Any]) -> None:
    # An unread body (an S3 PutObject refused before moto read it) would reset the connection under the error.
    stream = environ.get("wsgi.input")
    try:
        remaining = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        remaining = 0
    try:
        while remaining > 0 and stream is not None:
            chunk = stream.read(min(remaining, 1 << 16))
            if not chunk:
                break
            remaining -= len(chunk)
    except OSError:
        pass


class IamMiddleware:
    """Wraps moto's WSGI application: authorizes role sessions' requests, serves the control API."""

    def __init__(self, app: WSGIApp, enforcement: Enforcement) -> None:
        self.app = app
        self.enforcement = enforcement

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if str(environ.get("PATH_INFO", "")) == CONTROL_PATH:
            return self._control(environ, start_response)
        if not self.enforcement.enabled:
            return self.app(environ, start_response)
        signed = requests.signer(environ)
        session = self.enforcement.sessions.lookup(signed[0]) if signed is not None else None
        if session is None:
            # Not a role session: the administrator (dummy credentials), or unsigned (moto's own API).
            return self.app(environ, start_response)
        request = requests.parse(environ)
        if request is None:
            return self.app(environ, start_response)
        try:
            denial = self.enforcement.authorize_request(request, session)
        except PolicyError as error:
            # IAM refuses such a document when it is put; here it can only be hand-made. Fail closed.
            LOG.error("IAM: a policy of %s cannot be read (%s): the request is refused", session.arn, error)
            denial = Denial(
                session.arn, "?", "?", "?", f"a policy cannot be read: {error}", str(error), _now()
            )
        if denial is None:
            return self.app(environ, start_response)
        _drain(environ)
        code = _DENIED_CODES.get(request.service, "AccessDeniedException")
        spec = wire.resolve_error(request.service, code)
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        status, headers, body = wire.error_response(request.call, spec, message=denial.message, method=method)
        start_response(_status_line(status), headers)
        return [body]

    def _control(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        status = 200
        document: dict[str, Any]
        if method == "POST":
            try:
                length = int(environ.get("CONTENT_LENGTH") or 0)
                wanted = json.loads(environ["wsgi.input"].read(length) or b"null")
                if not isinstance(wanted, dict) or not isinstance(wanted.get("enforced"), bool):
                    raise ValueError
            except (ValueError, KeyError):
                status, document = 400, {"error": 'the body must be {"enforced": true|false}'}
            else:
                self.enforcement.set_enabled(bool(wanted["enforced"]))
        elif method != "GET":
            status, document = 405, {"error": f"{method} is not allowed on {CONTROL_PATH} (GET, POST)"}
        if status == 200:
            document = {"enforced": self.enforcement.enabled, "denials": self.enforcement.denials()}
        body = json.dumps(document, indent=2, sort_keys=True).encode() + b"\n"
        start_response(
            _status_line(status), [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        return [body]


# The enforcement of this process: the server installs its own; in-process callers (EventBridge deliveries,
# Lambda destinations) ask it. Until then (tests that run moto in process), resource policies are enforced.
_ACTIVE = Enforcement()


def active() -> Enforcement:
    return _ACTIVE


def install(enforcement: Enforcement) -> Callable[[], None]:
    """Put the middleware in front of moto's server application and make `enforcement` the process's;
    returns the undo. Install before chaos (`localcloud.core.chaos.install`): chaos then sees a request
    first, as AWS throttles before it authorizes."""
    global _ACTIVE  # noqa: PLW0603 - one enforcement per server process
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication  # noqa: PLC0415 - server side only

    original = DomainDispatcherApplication.__call__
    previous = _ACTIVE
    _ACTIVE = enforcement

    def call(self: Any, environ: dict[str, Any], start_response: Any) -> Any:
        return IamMiddleware(lambda env, respond: original(self, env, respond), enforcement)(
            environ, start_response
        )

    DomainDispatcherApplication.__call__ = call  # type: ignore[method-assign]
    LOG.info(
        "IAM enforcement %s",
        "on: role sessions are authorized against their policies"
        if enforcement.enabled
        else "OFF (--no-iam / LOCALCLOUD_IAM=off): every caller is an administrator",
    )

    def undo() -> None:
        global _ACTIVE  # noqa: PLW0603
        DomainDispatcherApplication.__call__ = original  # type: ignore[method-assign]
        _ACTIVE = previous

    return undo
