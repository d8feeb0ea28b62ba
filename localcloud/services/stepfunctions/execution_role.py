"""Step Functions' service integrations call as the state machine's execution role, as on AWS.

moto 5.2.5's interpreter builds a boto3 client for every integration call (`boto_client_for`, imported by
name into each task module) and signs it with fixed keys (`ak`/`sk`); the state's credentials, which it does
compute (the state machine's RoleArn, or a Task's own `Credentials.RoleArn`), are passed in and ignored.
Here each of those modules gets a `boto_client_for` that signs with a session of that role, so the local
cloud's IAM enforcement authorizes `dynamodb:UpdateItem`, `lambda:InvokeFunction`, `states:StartExecution`,
`sqs:SendMessage`... against the role's policies.

One client per (region, service, credentials, endpoint), made on first use and shared by every state that
calls with them, instead of one per call: building a client (loading the service model, its methods, an SSL
context) took 7.5% of the server's time in a burst of small jobs. A botocore client is thread-safe and
holds no state of a call, so each call still sends the same request with the same credentials.

How it models AWS, and where it differs: docs/local-cloud-internals.md#localcloudservicesstepfunctionsexecution_rolepy
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Mapping
from typing import Any

import boto3
from botocore.client import BaseClient
from botocore.config import Config

from localcloud.core.state import DUMMY_CREDENTIALS

Undo = Callable[[], None]
# role ARN -> the variables of a session of it (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN)
Credentials = Callable[[str], Mapping[str, str]]
# The clients' connection pools: each Lambda task holds a connection for the whole invocation, and the
# executions of a burst call at once. Past the pool, urllib3 opens a connection anyway and warns as it
# drops it.
MAX_POOL_CONNECTIONS = 64

_PARSER = "moto.stepfunctions.parser.asl"
# Every module of moto 5.2.5's interpreter that imports `boto_client_for` (a test walks the package and
# holds this list equal to what it finds: a module missing here would sign with moto's fixed keys).
CLIENT_MODULES = (
    f"{_PARSER}.utils.boto_client",
    f"{_PARSER}.component.state.exec.state_map.item_reader.eval.resource_eval_s3",
    f"{_PARSER}.component.state.exec.state_map.result_writer.resource_eval.resource_eval_s3",
    f"{_PARSER}.component.state.exec.state_task.lambda_eval_utils",
    f"{_PARSER}.component.state.exec.state_task.service.state_task_service_aws_sdk",
    f"{_PARSER}.component.state.exec.state_task.service.state_task_service_batch",
    f"{_PARSER}.component.state.exec.state_task.service.state_task_service_dynamodb",
    f"{_PARSER}.component.state.exec.state_task.service.state_task_service_ecs",
    f"{_PARSER}.component.state.exec.state_task.service.state_task_service_events",
    f"{_PARSER}.component.state.exec.state_task.service.state_task_service_glue",
    f"{_PARSER}.component.state.exec.state_task.service.state_task_service_sfn",
    f"{_PARSER}.component.state.exec.state_task.service.state_task_service_sns",
    f"{_PARSER}.component.state.exec.state_task.service.state_task_service_sqs",
    f"{_PARSER}.component.state.exec.state_task.service.state_task_service_unsupported",
)


def install(credentials: Credentials) -> Undo:
    """Give every integration client of the interpreter the credentials of its state's role; returns the
    undo."""
    from moto.core.models import botocore_stubber  # noqa: PLC0415 - server side only
    from moto.settings import moto_server_port  # noqa: PLC0415
    from moto.stepfunctions.parser.asl.component.common.timeouts.timeout import (  # noqa: PLC0415
        TimeoutSeconds,
    )

    clients: dict[tuple[str | None, ...], BaseClient] = {}
    lock = threading.Lock()

    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> BaseClient:
        role_arn = getattr(state_credentials, "role_arn", None)
        signing = credentials(str(role_arn)) if role_arn else DUMMY_CREDENTIALS
        # As moto's: the server on this machine (in-process mocks intercept boto3 instead).
        endpoint_url = None if botocore_stubber.enabled else f"http://localhost:{moto_server_port()}"
        key = (
            region,
            service,
            signing["AWS_ACCESS_KEY_ID"],
            signing["AWS_SECRET_ACCESS_KEY"],
            signing.get("AWS_SESSION_TOKEN"),
            endpoint_url,
        )
        # Made under the lock: boto3's default session, which builds them, is not thread-safe.
        with lock:
            client = clients.get(key)
            if client is None:
                client = clients[key] = boto3.client(
                    service_name=service,
                    region_name=region,
                    aws_access_key_id=signing["AWS_ACCESS_KEY_ID"],
                    aws_secret_access_key=signing["AWS_SECRET_ACCESS_KEY"],
                    aws_session_token=signing.get("AWS_SESSION_TOKEN"),
                    endpoint_url=endpoint_url,
                    config=Config(
                        parameter_validation=False,
                        retries={"max_attempts": 0, "total_max_attempts": 1},
                        connect_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
                        read_timeout=TimeoutSeconds.DEFAULT_TIMEOUT_SECONDS,
                        max_pool_connections=MAX_POOL_CONNECTIONS,
                    ),
                )
        return client

    originals: list[tuple[Any, Any]] = []
    for name in CLIENT_MODULES:
        module = importlib.import_module(name)
        originals.append((module, getattr(module, "boto_client_for")))  # noqa: B009 - a module, not a name
        setattr(module, "boto_client_for", boto_client_for)  # noqa: B010

    def undo() -> None:
        for module, original in originals:
            module.boto_client_for = original
        with lock:
            for client in clients.values():
                client.close()
            clients.clear()

    return undo
