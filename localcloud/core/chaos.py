"""Fault injection for the local cloud: throttles, 5xx, latency and Lambda crashes, on demand and reproducible.
This module imports botocore but not moto: the CLI validates rules with it before it calls the server.

How it models AWS, and where it differs: docs/local-cloud-internals.md#localcloudcorechaospy
"""

from __future__ import annotations

import difflib
import http
import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from localcloud.core.wire import (
    SERVICES,
    Call,
    ErrorSpec,
    default_message,
    error_response,
    function_name,
    identify,
    resolve_error,
    service_model,
)

LOG = logging.getLogger("localcloud.core.chaos")

CONTROL_PATH = "/_localcloud/chaos"

CRASH = "crash"
TIMEOUT = "timeout"
LAMBDA_FAULTS = frozenset({CRASH, TIMEOUT})

# An hour: beyond any Lambda or SDK timeout; a slip of a zero or two more is refused.
MAX_LATENCY_MS = 3_600_000
_ERROR_CODE = re.compile(r"^[A-Za-z][A-Za-z0-9._-]{0,127}$")
_FIELDS = ("service", "operation", "error", "latency_ms", "rate", "seed", "function", "resource", "count")
# Services whose calls name a resource a rule can match (`resource`: a prefix of it).
RESOURCE_SERVICES = {"s3": "BUCKET/KEY"}

# -- rules --------------------------------------------------------------------------------------------


class RuleError(ValueError):
    """A malformed rule; the message is one line that says what is wrong."""


@dataclass(frozen=True)
class LambdaFault:
    """A crash or timeout drawn for one invocation: `point` in [0, 1) places it within the invocation."""

    rule_id: str
    kind: str
    point: float
    latency_ms: int = 0


@dataclass
class Rule:
    id: str
    service: str
    operation: str
    error: str | None = None
    latency_ms: int = 0
    rate: float = 1.0
    seed: int = 0
    function: str | None = None
    resource: str | None = None
    count: int | None = None
    matched: int = 0
    injected: int = 0
    _rng: random.Random = field(init=False, repr=False)
    _function_name: str | None = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        # Not for security: a reproducible sequence of draws per seed is the point.
        self._rng = random.Random(self.seed)  # noqa: S311
        self._function_name = function_name(self.function) if self.function else None

    @property
    def exhausted(self) -> bool:
        return self.count is not None and self.injected >= self.count

    @property
    def lambda_fault(self) -> bool:
        return self.error in LAMBDA_FAULTS

    def matches(
        self, service: str, operation: str, function: str | None, resource: str | None = None
    ) -> bool:
        if service != self.service or self.operation not in ("*", operation):
            return False
        if self.resource is not None and (resource is None or not resource.startswith(self.resource)):
            return False
        return self._function_name is None or (
            function is not None and function_name(function) == self._function_name
        )

    def draw(self) -> bool:
        """Count a matching call and decide whether to inject into it (callers hold the store's lock)."""
        self.matched += 1
        if self.exhausted:
            return False
        # One draw per matching call, whatever the rate: the sequence depends on the seed and the calls only.
        if self._rng.random() >= self.rate:
            return False
        self.injected += 1
        return True

    def draw_point(self) -> float:
        return self._rng.random()

    def describe(self) -> str:
        """What the rule injects, in a few words: `+200ms`, `SlowDown 503`, `crash`."""
        parts = []
        if self.latency_ms:
            parts.append(f"+{self.latency_ms}ms")
        if self.error in LAMBDA_FAULTS:
            parts.append(str(self.error))
        elif self.error:
            spec = resolve_error(self.service, self.error)
            parts.append(f"{spec.code} {spec.status}")
        return " ".join(parts)

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "id": self.id,
            "service": self.service,
            "operation": self.operation,
            "error": self.error,
            "latency_ms": self.latency_ms,
            "rate": self.rate,
            "seed": self.seed,
            "function": self.function,
            "resource": self.resource,
            "count": self.count,
            "matched": self.matched,
            "injected": self.injected,
            "exhausted": self.exhausted,
            "fault": self.describe(),
        }
        if self.error and not self.lambda_fault:
            spec = resolve_error(self.service, self.error)
            document["error_code"] = spec.code
            document["http_status"] = spec.status
        return document


def _operations(service: str) -> list[str]:
    return list(service_model(service).operation_names)


def _takes_function_name(service: str, operation: str) -> bool:
    if operation == "*":
        return True
    shape = service_model(service).operation_model(operation).input_shape
    return shape is not None and "FunctionName" in shape.members


def _integer(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise RuleError(f"{name} must be an integer, not {json.dumps(value)}")
    return value


def parse_rule(document: Any, *, rule_id: str = "") -> Rule:
    """A `Rule` from its JSON form, or `RuleError` naming the first thing wrong with it."""
    if not isinstance(document, dict):
        raise RuleError("a rule is a JSON object")
    unknown = sorted(set(document) - set(_FIELDS))
    if unknown:
        raise RuleError(f"unknown field {unknown[0]!r} (fields: {', '.join(_FIELDS)})")
    service, operation = _target(document)
    error = _error(document, service, operation)
    latency_ms = _integer("latency_ms", document.get("latency_ms")) or 0
    if latency_ms < 0:
        raise RuleError(f"latency_ms must not be negative (got {latency_ms})")
    if latency_ms > MAX_LATENCY_MS:
        raise RuleError(f"latency_ms must be at most {MAX_LATENCY_MS} (an hour), got {latency_ms}")
    if error is None and latency_ms == 0:
        raise RuleError("nothing to inject: give an error, a latency, or both")
    rate = document.get("rate")
    if rate is None:
        rate = 1.0
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0.0 <= float(rate) <= 1.0:
        raise RuleError(f"rate must be a number from 0 to 1, not {json.dumps(rate)}")
    seed = _integer("seed", document.get("seed"))
    if seed is None:
        # Drawn here and shown by `chaos list`, so that a run without a seed can still be reproduced.
        seed = random.SystemRandom().randrange(2**31)
    count = _integer("count", document.get("count"))
    if count is not None and count < 1:
        raise RuleError(f"count must be at least 1 (got {count})")
    return Rule(
        id=rule_id,
        service=service,
        operation=operation,
        error=error,
        latency_ms=latency_ms,
        rate=float(rate),
        seed=seed,
        function=_function(document, service, operation),
        resource=_resource(document, service),
        count=count,
    )


def _target(document: dict[str, Any]) -> tuple[str, str]:
    service = document.get("service")
    if not isinstance(service, str) or not service:
        raise RuleError("service is required (one of: " + ", ".join(sorted(SERVICES)) + ")")
    if service not in SERVICES:
        raise RuleError(f"unknown service {service!r} (one of: {', '.join(sorted(SERVICES))})")
    operation = document.get("operation")
    if not isinstance(operation, str) or not operation:
        raise RuleError("operation is required (an API operation name such as GetObject, or *)")
    if operation != "*" and operation not in service_model(service).operation_names:
        close = difflib.get_close_matches(operation, _operations(service), n=3)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        raise RuleError(f"unknown operation {operation!r} for {service}{hint}")
    return service, operation


def _error(document: dict[str, Any], service: str, operation: str) -> str | None:
    error = document.get("error")
    if error is None:
        return None
    if not isinstance(error, str) or not _ERROR_CODE.match(error):
        raise RuleError(
            f"error must be an AWS error code such as ThrottlingException, not {json.dumps(error)}"
        )
    if error in LAMBDA_FAULTS:
        if service != "lambda":
            raise RuleError(
                f"error {error} applies to --service lambda only (it acts on a function's environment)"
            )
        if operation not in ("Invoke", "*"):
            raise RuleError(f"error {error} applies to the Invoke operation (or *), not {operation}")
    return error


def _valid_function_name(value: str) -> bool:
    # The pattern and length Lambda's model gives FunctionName (name, name:qualifier, partial or full ARN).
    member = service_model("lambda").operation_model("Invoke").input_shape.members["FunctionName"]
    limits = member.metadata
    if not int(limits.get("min", 1)) <= len(value) <= int(limits.get("max", 256)):
        return False
    return re.fullmatch(str(limits.get("pattern", r"\S+")), value) is not None


def _function(document: dict[str, Any], service: str, operation: str) -> str | None:
    function = document.get("function")
    if function is None:
        return None
    if not isinstance(function, str) or not _valid_function_name(function):
        raise RuleError(f"function must be a function name or ARN, not {json.dumps(function)}")
    if service != "lambda":
        raise RuleError(f"function applies to --service lambda only, not {service}")
    if not _takes_function_name(service, operation):
        raise RuleError(f"function does not apply to {operation}: it names no function")
    return function


def _resource(document: dict[str, Any], service: str) -> str | None:
    resource = document.get("resource")
    if resource is None:
        return None
    if not isinstance(resource, str) or not resource:
        raise RuleError(f"resource must be a non-empty prefix, not {json.dumps(resource)}")
    if service not in RESOURCE_SERVICES:
        applies = ", ".join(f"--service {name} ({shape})" for name, shape in RESOURCE_SERVICES.items())
        raise RuleError(f"resource applies to {applies} only, not {service}")
    return resource


@dataclass(frozen=True)
class Injection:
    latency_ms: int = 0
    error: ErrorSpec | None = None
    rule_id: str = ""


class ChaosStore:
    """The rules of one server process; thread-safe (every request thread and Lambda invocation uses it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[Rule] = []
        self._next_id = 1

    def add(self, document: Any) -> Rule:
        with self._lock:
            rule = parse_rule(document, rule_id=f"r{self._next_id}")
            self._next_id += 1
            self._rules.append(rule)
        LOG.info("chaos rule %s added: %s", rule.id, json.dumps(_summary(rule), sort_keys=True))
        return rule

    @property
    def empty(self) -> bool:
        # Read without the lock: a rule added during this check applies from the next request on.
        return not self._rules

    def rules(self) -> list[dict[str, Any]]:
        with self._lock:
            return [rule.to_json() for rule in self._rules]

    def get(self, rule_id: str) -> dict[str, Any] | None:
        with self._lock:
            for rule in self._rules:
                if rule.id == rule_id:
                    return rule.to_json()
        return None

    def delete(self, rule_id: str) -> bool:
        with self._lock:
            kept = [rule for rule in self._rules if rule.id != rule_id]
            found = len(kept) != len(self._rules)
            self._rules = kept
        if found:
            LOG.info("chaos rule %s deleted", rule_id)
        return found

    def clear(self) -> int:
        with self._lock:
            cleared = len(self._rules)
            self._rules = []
        LOG.info("chaos rules cleared (%d)", cleared)
        return cleared

    def decide(self, call: Call) -> list[Injection]:
        """The injections for one API call, in rule order; an error ends the list (it is the answer)."""
        injections: list[Injection] = []
        with self._lock:
            for rule in self._rules:
                if rule.lambda_fault or not rule.matches(
                    call.service, call.operation, call.function, call.resource
                ):
                    continue
                if not rule.draw():
                    continue
                error = resolve_error(call.service, rule.error) if rule.error else None
                injections.append(Injection(latency_ms=rule.latency_ms, error=error, rule_id=rule.id))
                if error is not None:
                    break
        return injections

    def lambda_fault(self, function: str) -> LambdaFault | None:
        """A crash or timeout for this invocation of `function` (a name), or None."""
        with self._lock:
            for rule in self._rules:
                if not rule.lambda_fault or not rule.matches("lambda", "Invoke", function):
                    continue
                if rule.draw():
                    return LambdaFault(
                        rule_id=rule.id,
                        kind=str(rule.error),
                        point=rule.draw_point(),
                        latency_ms=rule.latency_ms,
                    )
        return None


def _summary(rule: Rule) -> dict[str, Any]:
    return {key: getattr(rule, key) for key in _FIELDS if getattr(rule, key) is not None}


# -- the WSGI middleware ------------------------------------------------------------------------------

WSGIApp = Callable[[dict[str, Any], Any], Iterable[bytes]]


def _message(spec: ErrorSpec, rule_id: str) -> str:
    return f"{default_message(spec)} [localcloud chaos rule {rule_id}]"


def _status_line(status: int) -> str:
    try:
        return f"{status} {http.HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Error"


def _drain(environ: dict[str, Any]) -> None:
    # werkzeug closes the connection after every answer; a client still sending a body it was not read
    # would see a reset instead of the error.
    stream = environ.get("wsgi.input")
    if stream is None:
        return
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    try:
        if length > 0:
            while length > 0:
                chunk = stream.read(min(length, 1 << 16))
                if not chunk:
                    break
                length -= len(chunk)
        elif environ.get("wsgi.input_terminated"):
            while stream.read(1 << 16):
                pass
    except OSError:
        pass


class ChaosMiddleware:
    """Wraps a WSGI application (moto's) with the rules of `store` and serves the control API."""

    def __init__(self, app: WSGIApp, store: ChaosStore) -> None:
        self.app = app
        self.store = store

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO", ""))
        if path == CONTROL_PATH or path.startswith(CONTROL_PATH + "/"):
            return self._control(environ, start_response, path[len(CONTROL_PATH) :].strip("/"))
        if self.store.empty:
            return self.app(environ, start_response)
        try:
            call = identify(environ)
        except Exception:  # identification must never break a request
            LOG.exception("chaos: could not identify %s %s", environ.get("REQUEST_METHOD"), path)
            call = None
        if call is None:
            return self.app(environ, start_response)
        injections = self.store.decide(call)
        if not injections:
            return self.app(environ, start_response)
        latency_ms = sum(injection.latency_ms for injection in injections)
        for injection in injections:
            LOG.info(
                "chaos injected rule=%s service=%s operation=%s%s %s",
                injection.rule_id,
                call.service,
                call.operation,
                f" function={function_name(call.function)}" if call.function else "",
                _what(injection),
            )
        if latency_ms:
            # In this request's own thread: werkzeug serves every request on a thread of its own.
            time.sleep(latency_ms / 1000)
        error = injections[-1].error
        if error is None:
            return self.app(environ, start_response)
        _drain(environ)
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        status, headers, body = error_response(
            call, error, message=_message(error, injections[-1].rule_id), method=method
        )
        start_response(_status_line(status), headers)
        return [body]

    def _control(self, environ: dict[str, Any], start_response: Any, rule_id: str) -> Iterable[bytes]:
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        try:
            status, document = self._control_answer(method, rule_id, environ)
        except Exception as error:  # the API answers JSON whatever went wrong (and logs it)
            LOG.exception("chaos API: %s %s failed", method, CONTROL_PATH)
            status, document = 500, {"error": f"internal error: {error}"}
        body = json.dumps(document, indent=2, sort_keys=True).encode() + b"\n"
        start_response(
            _status_line(status), [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        return [body]

    def _control_answer(
        self, method: str, rule_id: str, environ: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        if rule_id:
            return self._one_rule(method, rule_id)
        if method == "GET":
            return 200, {"rules": self.store.rules()}
        if method == "DELETE":
            return 200, {"cleared": self.store.clear()}
        if method == "POST":
            return self._add(environ)
        return 405, {"error": f"{method} is not allowed on {CONTROL_PATH} (GET, POST, DELETE)"}

    def _add(self, environ: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            raw = environ["wsgi.input"].read(length) if length > 0 else b""
            document = json.loads(raw or b"null")
            rule = self.store.add(document)
        except RuleError as error:
            return 400, {"error": str(error)}
        except (ValueError, UnicodeDecodeError):
            return 400, {"error": "the body must be a JSON object (a chaos rule)"}
        return 201, {"rule": rule.to_json()}

    def _one_rule(self, method: str, rule_id: str) -> tuple[int, dict[str, Any]]:
        missing = (404, {"error": f"no chaos rule {rule_id}"})
        if method == "GET":
            found = self.store.get(rule_id)
            return (200, {"rule": found}) if found else missing
        if method == "DELETE":
            return (200, {"deleted": rule_id}) if self.store.delete(rule_id) else missing
        return 405, {"error": f"{method} is not allowed on {CONTROL_PATH}/{rule_id} (GET, DELETE)"}


def _what(injection: Injection) -> str:
    parts = []
    if injection.latency_ms:
        parts.append(f"latency_ms={injection.latency_ms}")
    if injection.error is not None:
        parts.append(f"error={injection.error.code} status={injection.error.status}")
    return " ".join(parts)


def install(store: ChaosStore) -> Callable[[], None]:
    """Put `store`'s middleware in front of every moto server application; returns the undo."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication  # noqa: PLC0415 - server side only

    original = DomainDispatcherApplication.__call__

    def call(self: Any, environ: dict[str, Any], start_response: Any) -> Any:
        return ChaosMiddleware(lambda env, respond: original(self, env, respond), store)(
            environ, start_response
        )

    DomainDispatcherApplication.__call__ = call  # type: ignore[method-assign]

    def undo() -> None:
        DomainDispatcherApplication.__call__ = original  # type: ignore[method-assign]

    return undo
