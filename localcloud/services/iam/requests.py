"""An AWS API request as IAM needs to see it: who signed it (the access key in the SigV4 credential scope),
which service and operation it calls, in which region, and the parameters that name its resources (a JSON
or form body, a REST path's labels, the query string, headers). Reads the WSGI environ and leaves the body
readable for moto. Imports botocore (through `localcloud.core.wire`), not moto.
"""

from __future__ import annotations

import functools
import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from localcloud.core import wire

_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/,\s]+)/([^/,\s]+)/aws4_request")
# SigV4 signing name -> boto3 service name, where they differ or the table has rows. DynamoDB Streams signs
# as `dynamodb`: its X-Amz-Target prefix tells it apart.
_SERVICE_OF_SIGNING_NAME = {
    "states": "stepfunctions",
    "monitoring": "cloudwatch",
}
_SERVICE_OF_TARGET_PREFIX = {
    "DynamoDBStreams_20120810": "dynamodbstreams",
}
# How many body bytes are read to find resource names (a DeleteObjects key list, a PutEvents batch).
MAX_BODY_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class ApiRequest:
    service: str
    # None when the request names no operation this module can tell (a service's REST path unknown to
    # botocore's model, say).
    operation: str | None
    protocol: str
    region: str
    access_key_id: str
    # The JSON body (JSON protocols), the form (query protocols), or the REST path's labels.
    params: Mapping[str, Any] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    # Lower-case header names.
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def call(self) -> wire.Call:
        """The request as `localcloud.core.wire.error_response` answers it."""
        return wire.Call(service=self.service, operation=self.operation or "", protocol=self.protocol)


def signer(environ: Mapping[str, Any]) -> tuple[str, str, str] | None:
    """(access key id, region, signing name) of a SigV4-signed request (header or presigned URL)."""
    credential = str(environ.get("HTTP_AUTHORIZATION", ""))
    if "Credential=" not in credential:
        query = dict(parse_qsl(str(environ.get("QUERY_STRING", ""))))
        if "X-Amz-Credential" not in query:
            return None
        credential = "Credential=" + query["X-Amz-Credential"]
    found = _CREDENTIAL.search(credential)
    if found is None:
        return None
    return found.group(1), found.group(2), found.group(3)


def parse(environ: dict[str, Any]) -> ApiRequest | None:
    """The request, or None when it is not SigV4-signed (moto's own API, the local cloud's control API)."""
    signed = signer(environ)
    if signed is None:
        return None
    access_key_id, region, signing_name = signed
    path, query = wire._raw_path_and_query(environ)
    headers = {
        key[5:].replace("_", "-").lower(): str(value)
        for key, value in environ.items()
        if key.startswith("HTTP_")
    }
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if key in environ:
            headers[key.replace("_", "-").lower()] = str(environ[key])
    service = _SERVICE_OF_SIGNING_NAME.get(signing_name, signing_name)
    base = functools.partial(
        ApiRequest, region=region, access_key_id=access_key_id, query=query, headers=headers
    )

    target = headers.get("x-amz-target", "")
    if target:
        prefix, _, operation = target.rpartition(".")
        service = _SERVICE_OF_TARGET_PREFIX.get(prefix, service)
        body = _read_body(environ)
        try:
            params = json.loads(body) if body else {}
        except ValueError:
            params = {}
        return base(
            service=service,
            operation=operation,
            protocol="json",
            params=params if isinstance(params, dict) else {},
            body=body,
        )
    protocol = _protocol(service)
    if protocol in ("rest-xml", "rest-json"):
        if service == "s3":
            host = headers.get("host", "").rsplit(":", 1)[0]
            virtual = wire._S3_VIRTUAL_HOST.match(host)
            if virtual is not None:
                path = "/" + virtual.group("bucket") + (path if path != "/" else "")
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        found = wire.match_rest_operation(service, method, path, query, headers)
        rest_operation, labels = found if found is not None else (None, {})
        body = _read_body(environ) if (service, rest_operation) in _REST_BODIES else b""
        return base(service=service, operation=rest_operation, protocol=protocol, params=labels, body=body)
    body = _read_body(environ) if "x-www-form-urlencoded" in headers.get("content-type", "") else b""
    form = dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))
    form.update({key: value for key, value in query.items() if key not in form})
    return base(service=service, operation=form.get("Action"), protocol="query", params=form, body=body)


# REST operations whose resources are named in the body.
_REST_BODIES = frozenset({("s3", "DeleteObjects")})


def _protocol(service: str) -> str:
    try:
        return str(wire.service_model(service).protocol)
    except Exception:  # noqa: BLE001 - a service botocore does not know: answered as a JSON service
        return "json"


def _read_body(environ: dict[str, Any]) -> bytes:
    """The request body, put back for the application to read again."""
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > 0:
        body: bytes = stream.read(min(length, MAX_BODY_BYTES))
        if length > MAX_BODY_BYTES:
            # Too large to inspect whole: the rest is still the application's to read.
            environ["wsgi.input"] = _Chained(body, stream)
            return body
    elif environ.get("wsgi.input_terminated"):
        body = stream.read()
    else:
        return b""
    environ["wsgi.input"] = io.BytesIO(body)
    return body


class _Chained(io.RawIOBase):
    """What was read first, then the rest of the original stream."""

    def __init__(self, head: bytes, rest: Any) -> None:
        self._head = io.BytesIO(head)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        chunk = self._head.read(size)
        if size < 0:
            return chunk + self._rest.read()
        if len(chunk) < size:
            chunk += self._rest.read(size - len(chunk))
        return chunk

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)
