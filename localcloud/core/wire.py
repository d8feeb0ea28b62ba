"""How AWS calls look on the wire, for the services the local cloud's chaos rules can target.

- `identify`: which service and operation a request to the local cloud calls, from the request alone: the
  SigV4 credential scope names the service; JSON protocols name the operation in `X-Amz-Target`, query
  protocols in the `Action` parameter, REST protocols (S3, Lambda) by method and path, matched against the
  `requestUri` templates of botocore's service model.
- `resolve_error` and `error_response`: an AWS error code answered as the service answers it (REST-XML
  `<Error>` for S3, JSON `__type` for DynamoDB, SQS, Step Functions and EventBridge, REST-JSON with
  `x-amzn-ErrorType` for Lambda, query XML `<ErrorResponse>` for SNS) with its HTTP status, so that
  botocore parses it exactly as it parses AWS's.

Only botocore is imported (not moto): the CLI uses this module too.
"""

from __future__ import annotations

import io
import json
import re
import urllib.parse
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit
from xml.sax.saxutils import escape

from botocore.model import OperationModel, ServiceModel
from botocore.session import get_session

# boto3 service name -> the SigV4 signing name in a request's credential scope.
SERVICES: Mapping[str, str] = {
    "s3": "s3",
    "dynamodb": "dynamodb",
    "sqs": "sqs",
    "stepfunctions": "states",
    "lambda": "lambda",
    "sns": "sns",
    "events": "events",
}
_BY_SIGNING_NAME = {signing: service for service, signing in SERVICES.items()}


# -- the error table ----------------------------------------------------------------------------------

# (service or "*", error code) -> HTTP status, as the service answers it. The codes a fault matrix needs
# (throttling, server errors, access) and those in the pipeline's own error taxonomy. A code that is not
# here takes the status botocore's model declares for it (S3, Lambda and SNS declare theirs), else 400,
# AWS's status for a client error.
HTTP_STATUS: Mapping[tuple[str, str], int] = {
    # throttling
    ("*", "ThrottlingException"): 400,
    ("*", "Throttling"): 400,
    ("*", "RequestLimitExceeded"): 400,
    ("*", "ProvisionedThroughputExceededException"): 400,
    ("*", "LimitExceededException"): 400,
    ("*", "TransactionInProgressException"): 400,
    ("*", "RequestThrottled"): 400,
    ("*", "KmsThrottled"): 400,
    ("*", "ExecutionLimitExceeded"): 400,
    ("*", "TooManyRequestsException"): 429,
    ("sns", "Throttled"): 429,
    ("s3", "SlowDown"): 503,
    ("s3", "RequestTimeout"): 400,
    # server side
    ("*", "InternalError"): 500,
    ("*", "InternalFailure"): 500,
    ("*", "InternalServerError"): 500,
    ("*", "InternalServerErrorException"): 500,
    ("*", "InternalException"): 500,
    ("*", "ServiceException"): 500,
    ("*", "ServiceUnavailable"): 503,
    ("*", "ServiceUnavailableException"): 503,
    # access and existence
    ("*", "AccessDenied"): 403,
    ("*", "AccessDeniedException"): 400,
    ("lambda", "AccessDeniedException"): 403,
    ("*", "ExpiredToken"): 400,
    ("*", "NoSuchKey"): 404,
    ("*", "NoSuchBucket"): 404,
    ("*", "ResourceNotFoundException"): 400,
    ("lambda", "ResourceNotFoundException"): 404,
    ("*", "ConditionalCheckFailedException"): 400,
    ("*", "ValidationException"): 400,
}
DEFAULT_STATUS = 400

_MESSAGES: Mapping[str, str] = {
    "SlowDown": "Please reduce your request rate.",
    "InternalError": "We encountered an internal error. Please try again.",
    "InternalServerError": "Internal server error",
    "ServiceUnavailable": "Service is unable to handle request.",
    "AccessDenied": "Access Denied",
    "ProvisionedThroughputExceededException": "The level of configured provisioned throughput for the "
    "table was exceeded. Consider increasing your provisioning level with the UpdateTable API.",
    "ThrottlingException": "Rate exceeded",
    "Throttled": "Rate exceeded",
    "RequestThrottled": "Rate exceeded",
    "TooManyRequestsException": "Rate Exceeded.",
    "ServiceException": "Lambda was unable to process the request.",
}

# SQS speaks JSON but stays compatible with its query past: the `x-amzn-query-error` header carries the
# old code, which botocore reports as the error code. botocore's model leaves these out.
_SQS_QUERY_CODES: Mapping[str, str] = {
    "QueueDoesNotExist": "AWS.SimpleQueueService.NonExistentQueue",
    "QueueNameExists": "QueueAlreadyExists",
    "QueueDeletedRecently": "AWS.SimpleQueueService.QueueDeletedRecently",
    "PurgeQueueInProgress": "AWS.SimpleQueueService.PurgeQueueInProgress",
    "UnsupportedOperation": "AWS.SimpleQueueService.UnsupportedOperation",
    "MessageNotInflight": "AWS.SimpleQueueService.MessageNotInflight",
    "BatchEntryIdsNotDistinct": "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
    "EmptyBatchRequest": "AWS.SimpleQueueService.EmptyBatchRequest",
    "TooManyEntriesInBatchRequest": "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
    "InvalidBatchEntryId": "AWS.SimpleQueueService.InvalidBatchEntryId",
    "BatchRequestTooLong": "AWS.SimpleQueueService.BatchRequestTooLong",
    "KmsThrottled": "KMS.ThrottlingException",
    "KmsAccessDenied": "KMS.AccessDeniedException",
}

# JSON 1.0 services name the error `namespace#Code` in `__type` (botocore keeps what follows the `#`).
_JSON_NAMESPACES: Mapping[str, str] = {
    "dynamodb": "com.amazonaws.dynamodb.v20120810",
    "sqs": "com.amazonaws.sqs",
    "stepfunctions": "com.amazonaws.swf.service.v2.model",
}
_QUERY_NAMESPACES: Mapping[str, str] = {
    "sns": "http://sns.amazonaws.com/doc/2010-03-31/",
    "sqs": "http://queue.amazonaws.com/doc/2012-11-05/",
}


@dataclass(frozen=True)
class ErrorSpec:
    """One error as the service puts it on the wire."""

    shape: str  # the name in the model (JSON `__type`): QueueDoesNotExist, ThrottledException, ...
    code: str  # what botocore reports as Error.Code: AWS.SimpleQueueService.NonExistentQueue, Throttled
    status: int

    @property
    def server_fault(self) -> bool:
        return self.status >= 500


@cache
def service_model(service: str) -> ServiceModel:
    return get_session().get_service_model(service)


@cache
def _modeled_errors(service: str) -> dict[str, ErrorSpec]:
    """The model's error shapes by shape name and by wire code."""
    errors: dict[str, ErrorSpec] = {}
    for shape in service_model(service).error_shapes:
        trait = shape.metadata.get("error") or {}
        code = str(trait.get("code") or shape.name)
        if service == "sqs":
            code = _SQS_QUERY_CODES.get(shape.name, code)
        status = int(trait.get("httpStatusCode") or 0)
        spec = ErrorSpec(shape=shape.name, code=code, status=status)
        errors.setdefault(shape.name, spec)
        errors.setdefault(code, spec)
    return errors


def resolve_error(service: str, code: str) -> ErrorSpec:
    """`code` as `service` answers it: the shape and wire code it is known by, and its HTTP status."""
    modeled = _modeled_errors(service).get(code)
    shape, wire = (modeled.shape, modeled.code) if modeled else (code, code)
    status = (
        HTTP_STATUS.get((service, wire))
        or HTTP_STATUS.get(("*", wire))
        or HTTP_STATUS.get((service, shape))
        or HTTP_STATUS.get(("*", shape))
        or (modeled.status if modeled else 0)
        or DEFAULT_STATUS
    )
    return ErrorSpec(shape=shape, code=wire, status=status)


@dataclass(frozen=True)
class Call:
    """One API call as the middleware sees it."""

    service: str
    operation: str
    protocol: str  # json | query | rest-xml | rest-json
    function: str | None = None
    # What the call acts on, where rules can name it: `BUCKET/KEY` (or `BUCKET/`) for S3.
    resource: str | None = None


def function_name(value: str) -> str:
    """A function's name from a name, `name:qualifier`, a partial ARN or a full ARN."""
    parts = value.split(":")
    if "function" in parts[:-1]:
        return parts[parts.index("function") + 1]
    return parts[0]


# -- identifying a request ----------------------------------------------------------------------------

_CREDENTIAL = re.compile(r"Credential=[^/,\s]+/\d{8}/[^/,\s]+/([^/,\s]+)/aws4_request")
_S3_VIRTUAL_HOST = re.compile(r"^(?P<bucket>.+?)\.(?:localhost|s3[.-].*amazonaws\.com|s3\.amazonaws\.com)$")


@dataclass(frozen=True)
class _Route:
    operation: str
    method: str
    path: re.Pattern[str]
    query: tuple[tuple[str, str | None], ...]  # literal query keys (and values) of the URI template
    required_query: frozenset[str]
    required_headers: frozenset[str]
    labels: tuple[str, ...]  # the URI labels, in the order of the pattern's groups
    literal_chars: int
    deprecated: bool

    @property
    def rank(self) -> tuple[int, int, int]:
        specificity = len(self.query) + len(self.required_query) + len(self.required_headers)
        return (specificity, self.literal_chars, 0 if self.deprecated else 1)


def _compile_route(operation: OperationModel) -> _Route:
    template = str(operation.http["requestUri"])
    path_template, _, query_template = template.partition("?")
    pattern = ""
    labels: list[str] = []
    literal_chars = 0
    for piece in re.split(r"(\{[^}]+\})", path_template):
        if piece.startswith("{") and piece.endswith("}"):
            name = piece[1:-1]
            greedy = name.endswith("+")
            labels.append(name.rstrip("+"))
            pattern += "(.+)" if greedy else "([^/]+)"
        else:
            pattern += re.escape(piece)
            literal_chars += len(piece)
    query = tuple(
        (key, value or None)
        for key, value in parse_qsl(query_template, keep_blank_values=True)
        if key != "x-id"  # botocore sends x-id, other SDKs may not: it identifies nothing more than the path
    )
    required_query: set[str] = set()
    required_headers: set[str] = set()
    shape = operation.input_shape
    if shape is not None:
        for member in shape.required_members:
            serialization = shape.members[member].serialization
            if serialization.get("location") == "querystring":
                required_query.add(str(serialization.get("name", member)))
            elif serialization.get("location") == "header":
                required_headers.add(str(serialization.get("name", member)).lower())
    return _Route(
        operation=operation.name,
        method=str(operation.http["method"]).upper(),
        path=re.compile("^" + pattern.rstrip("/") + "/?$"),
        query=query,
        required_query=frozenset(required_query),
        required_headers=frozenset(required_headers),
        labels=tuple(labels),
        literal_chars=literal_chars,
        deprecated=bool(operation.deprecated),
    )


@cache
def _routes(service: str) -> tuple[_Route, ...]:
    model = service_model(service)
    return tuple(_compile_route(model.operation_model(name)) for name in model.operation_names)


def match_rest_operation(
    service: str, method: str, path: str, query: Mapping[str, str], headers: Iterable[str]
) -> tuple[str, dict[str, str]] | None:
    """The operation of a REST request, and its URI labels, by botocore's `requestUri` templates.

    Operations that share a template (S3 PutObject, CopyObject, UploadPart) are told apart by the query
    keys and headers the model marks as required; the most specific template that matches wins.
    """
    header_names = {name.lower() for name in headers}
    best: tuple[tuple[int, int, int], _Route, re.Match[str]] | None = None
    for route in _routes(service):
        if route.method != method:
            continue
        matched = route.path.match(path)
        if matched is None:
            continue
        if any(key not in query or (value is not None and query[key] != value) for key, value in route.query):
            continue
        if not route.required_query <= query.keys() or not route.required_headers <= header_names:
            continue
        if best is None or route.rank > best[0]:
            best = (route.rank, route, matched)
    if best is None:
        return None
    _, route, matched = best
    return route.operation, {
        name: unquote(value) for name, value in zip(route.labels, matched.groups(), strict=True)
    }


def _header(environ: Mapping[str, Any], name: str) -> str:
    return str(environ.get("HTTP_" + name.upper().replace("-", "_"), ""))


def _service_of(environ: Mapping[str, Any], query: Mapping[str, str]) -> str | None:
    credential = _header(environ, "Authorization") or ""
    if not credential and "X-Amz-Credential" in query:
        credential = "Credential=" + query["X-Amz-Credential"]
    found = _CREDENTIAL.search(credential)
    if found is None:
        return None
    return _BY_SIGNING_NAME.get(found.group(1).lower())


def _form_body(environ: dict[str, Any]) -> dict[str, str]:
    """The form-encoded body of a query-protocol request, left readable for moto."""
    if not str(environ.get("CONTENT_TYPE", "")).startswith("application/x-www-form-urlencoded"):
        return {}
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return {}
    if length <= 0:
        return {}
    body: bytes = environ["wsgi.input"].read(length)
    environ["wsgi.input"] = io.BytesIO(body)
    return dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))


def _raw_path_and_query(environ: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw:
        parts = urlsplit(str(raw))
        path = parts.path
        query = parts.query
    else:
        path = str(environ.get("PATH_INFO", ""))
        query = str(environ.get("QUERY_STRING", ""))
    return path or "/", dict(parse_qsl(query, keep_blank_values=True))


def identify(environ: dict[str, Any]) -> Call | None:
    """Service and operation of a request to the local cloud, or None when it is not a call to a service
    that rules can target (moto's own API, unsigned requests, other services)."""
    path, query = _raw_path_and_query(environ)
    service = _service_of(environ, query)
    if service is None:
        return None
    target = _header(environ, "X-Amz-Target")
    if target:
        return Call(service=service, operation=target.rpartition(".")[2], protocol="json")
    protocol = service_model(service).protocol
    if protocol in ("rest-xml", "rest-json"):
        if service == "s3":
            host = _header(environ, "Host").rsplit(":", 1)[0]
            virtual = _S3_VIRTUAL_HOST.match(host)
            if virtual is not None:
                path = "/" + virtual.group("bucket") + (path if path != "/" else "")
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        headers = [key[5:].replace("_", "-") for key in environ if key.startswith("HTTP_")]
        found = match_rest_operation(service, method, path, query, headers)
        if found is None:
            return None
        operation, labels = found
        resource = None
        if service == "s3" and labels.get("Bucket"):
            resource = f"{labels['Bucket']}/{urllib.parse.unquote(labels.get('Key') or '')}"
        return Call(
            service=service,
            operation=operation,
            protocol=protocol,
            function=labels.get("FunctionName"),
            resource=resource,
        )
    action = query.get("Action") or _form_body(environ).get("Action")
    if action:
        return Call(service=service, operation=action, protocol="query")
    return None


# -- answering with an error --------------------------------------------------------------------------


def error_response(
    call: Call, spec: ErrorSpec, *, message: str, method: str
) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body of `spec` as `call.service` answers it over `call.protocol`."""
    request_id = str(uuid.uuid4())
    headers: list[tuple[str, str]]
    if call.protocol == "json":
        version = service_model(call.service).metadata.get("jsonVersion", "1.0")
        namespace = _JSON_NAMESPACES.get(call.service) if version == "1.0" else None
        error_type = f"{namespace}#{spec.shape}" if namespace else spec.shape
        body = json.dumps({"__type": error_type, "message": message}).encode()
        headers = [
            ("Content-Type", f"application/x-amz-json-{version}"),
            ("x-amzn-RequestId", request_id),
            ("x-amzn-ErrorType", spec.shape),
        ]
        if "awsQueryCompatible" in service_model(call.service).metadata:
            headers.append(
                ("x-amzn-query-error", f"{spec.code};{'Receiver' if spec.server_fault else 'Sender'}")
            )
    elif call.protocol == "rest-json":
        body = json.dumps({"Type": "Service" if spec.server_fault else "User", "message": message}).encode()
        headers = [
            ("Content-Type", "application/json"),
            ("x-amzn-RequestId", request_id),
            ("x-amzn-ErrorType", spec.code),
        ]
    elif call.protocol == "rest-xml":
        amz_id = uuid.uuid4().hex.upper()[:16]
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{escape(spec.code)}</Code><Message>{escape(message)}</Message>"
            f"<RequestId>{amz_id}</RequestId><HostId>{request_id}</HostId></Error>"
        ).encode()
        headers = [
            ("Content-Type", "application/xml"),
            ("x-amz-request-id", amz_id),
            ("x-amz-id-2", request_id),
        ]
    else:  # query
        namespace = _QUERY_NAMESPACES.get(call.service, "")
        body = (
            f'<ErrorResponse xmlns="{namespace}"><Error><Type>{"Receiver" if spec.server_fault else "Sender"}</Type>'
            f"<Code>{escape(spec.code)}</Code><Message>{escape(message)}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        ).encode()
        headers = [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)]
    if method == "HEAD":
        # A HEAD answer has no body: botocore then names the error by its status ("503"), as with S3.
        body = b""
    headers.append(("Content-Length", str(len(body))))
    return spec.status, headers, body


def default_message(spec: ErrorSpec) -> str:
    """The message the service gives with this error, or a plain one."""
    return _MESSAGES.get(spec.code) or _MESSAGES.get(spec.shape) or f"{spec.code} (injected)"
