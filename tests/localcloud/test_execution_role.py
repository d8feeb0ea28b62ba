"""The Step Functions interpreter's clients (localcloud.services.stepfunctions.execution_role): signed as the
state's role, and made once per role and service instead of once per call."""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from localcloud.core.state import DUMMY_CREDENTIALS
from localcloud.services.stepfunctions import execution_role

LAMBDA_TASKS = "moto.stepfunctions.parser.asl.component.state.exec.state_task.lambda_eval_utils"
DYNAMODB_TASKS = (
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_dynamodb"
)


@dataclass(frozen=True)
class StateCredentials:
    role_arn: str


def session_of(role_arn: str) -> Mapping[str, str]:
    name = role_arn.rsplit("/", 1)[-1]
    return {
        "AWS_ACCESS_KEY_ID": f"ASIA{name.upper()}",
        "AWS_SECRET_ACCESS_KEY": f"secret-of-{name}",
        "AWS_SESSION_TOKEN": f"token-of-{name}",
    }


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("MOTO_PORT", "5999")
    undo = execution_role.install(session_of)
    try:
        yield
    finally:
        undo()


def client_for(module: str, service: str, role_arn: str | None) -> Any:
    credentials = StateCredentials(role_arn) if role_arn else None
    return importlib.import_module(module).boto_client_for("us-east-1", service, credentials)


def signing_key(client: Any) -> tuple[str, str | None]:
    credentials = client._request_signer._credentials
    return credentials.access_key, credentials.token


@pytest.mark.usefixtures("installed")
def test_one_client_per_role_and_service_shared_by_every_call() -> None:
    first = client_for(LAMBDA_TASKS, "lambda", "arn:aws:iam::123456789012:role/machine")
    again = client_for(DYNAMODB_TASKS, "lambda", "arn:aws:iam::123456789012:role/machine")
    other_role = client_for(LAMBDA_TASKS, "lambda", "arn:aws:iam::123456789012:role/other")
    other_service = client_for(DYNAMODB_TASKS, "dynamodb", "arn:aws:iam::123456789012:role/machine")

    assert again is first
    assert len({id(first), id(other_role), id(other_service)}) == 3
    assert signing_key(first) == ("ASIAMACHINE", "token-of-machine")
    assert signing_key(other_role) == ("ASIAOTHER", "token-of-other")
    assert signing_key(other_service) == ("ASIAMACHINE", "token-of-machine")
    assert first.meta.endpoint_url == "http://localhost:5999"


@pytest.mark.usefixtures("installed")
def test_a_state_without_a_role_calls_as_the_administrator() -> None:
    client = client_for(LAMBDA_TASKS, "lambda", None)
    assert signing_key(client) == (DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"], None)
    assert client_for(LAMBDA_TASKS, "lambda", None) is client


def test_a_new_port_gets_a_new_client(monkeypatch: pytest.MonkeyPatch) -> None:
    undo = execution_role.install(session_of)
    try:
        monkeypatch.setenv("MOTO_PORT", "5998")
        before = client_for(LAMBDA_TASKS, "lambda", "arn:aws:iam::123456789012:role/machine")
        monkeypatch.setenv("MOTO_PORT", "5997")
        after = client_for(LAMBDA_TASKS, "lambda", "arn:aws:iam::123456789012:role/machine")
    finally:
        undo()
    assert after is not before
    assert after.meta.endpoint_url == "http://localhost:5997"


def test_undo_restores_the_interpreter_and_forgets_the_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOTO_PORT", "5999")
    original = importlib.import_module(LAMBDA_TASKS).boto_client_for
    undo = execution_role.install(session_of)
    cached = client_for(LAMBDA_TASKS, "lambda", "arn:aws:iam::123456789012:role/machine")
    undo()
    assert importlib.import_module(LAMBDA_TASKS).boto_client_for is original

    undo = execution_role.install(session_of)
    try:
        assert client_for(LAMBDA_TASKS, "lambda", "arn:aws:iam::123456789012:role/machine") is not cached
    finally:
        undo()
