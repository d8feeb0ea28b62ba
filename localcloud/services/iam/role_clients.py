"""boto3 clients that call as a Lambda function's execution role, for the event source mapping pollers: Lambda
reads a mapping's queue or stream, and sends to its on-failure destination, with the function's role.

The role comes from GetFunctionConfiguration on the endpoint (no moto import, as the pollers do), asked with
the administrator credentials the pollers were given; its session's credentials from the local cloud
(`sessions.Sessions`, through the server), which enforces what it issues.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import boto3
from botocore.config import Config

# How long a function's role is remembered: a changed role is picked up within this long.
ROLE_TTL_SECONDS = 30.0
# (role ARN, session name) -> the variables of a session of it (AWS_ACCESS_KEY_ID, ..., AWS_SESSION_TOKEN)
SessionCredentials = Callable[[str, str], Mapping[str, str]]


class RoleClients:
    """Per (role, service) clients, made once (boto3 clients are thread-safe; making them is not)."""

    def __init__(
        self,
        endpoint: str,
        region: str,
        admin: boto3.session.Session,
        config: Config,
        credentials: SessionCredentials,
        *,
        prepare: Callable[[Any], Any] | None = None,
    ) -> None:
        """`prepare`: applied to each client made (the pollers' retry rule while stopping)."""
        self._endpoint = endpoint
        self._prepare = prepare
        self._region = region
        self._config = config
        self._credentials = credentials
        self._lock = threading.Lock()
        self._lambda = admin.client("lambda", endpoint_url=endpoint, config=config)
        # function ARN -> (when looked up, its role ARN)
        self._roles: dict[str, tuple[float, str]] = {}
        # (role ARN, session name) -> session
        self._sessions: dict[tuple[str, str], boto3.session.Session] = {}
        self._clients: dict[tuple[str, str, str], Any] = {}

    def client(self, function_arn: str, service: str) -> Any:
        """A `service` client signing as `function_arn`'s execution role (session named after the function,
        as Lambda names it)."""
        role_arn = self._role_of(function_arn)
        name = _function_name(function_arn)
        key = (role_arn, name, service)
        with self._lock:
            found = self._clients.get(key)
            if found is not None:
                return found
            session = self._sessions.get((role_arn, name))
        if session is None:
            credentials = self._credentials(role_arn, name)
            session = boto3.session.Session(
                aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
                aws_session_token=credentials.get("AWS_SESSION_TOKEN"),
                region_name=self._region,
            )
        with self._lock:
            session = self._sessions.setdefault((role_arn, name), session)
            client = self._clients.get(key)
            if client is None:
                client = session.client(service, endpoint_url=self._endpoint, config=self._config)
                if self._prepare is not None:
                    client = self._prepare(client)
                self._clients[key] = client
        return client

    def _role_of(self, function_arn: str) -> str:
        now = time.monotonic()
        with self._lock:
            found = self._roles.get(function_arn)
        if found is not None and now - found[0] < ROLE_TTL_SECONDS:
            return found[1]
        role = str(self._lambda.get_function_configuration(FunctionName=function_arn)["Role"])
        with self._lock:
            self._roles[function_arn] = (now, role)
        return role


def _function_name(function_arn: str) -> str:
    parts = function_arn.split(":")
    return parts[parts.index("function") + 1] if "function" in parts else parts[-1]
