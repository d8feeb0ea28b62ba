"""One parse of a definition for all its executions (localcloud.services.stepfunctions.program_cache), on an
in-process moto server executing state machines as the local cloud's server does."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from moto.core.config import default_user_config
from moto.stepfunctions.parser.asl.component.component import Component
from moto.stepfunctions.parser.asl.component.eval_component import EvalComponent

from localcloud.services.stepfunctions import program_cache
from tests.localcloud.support import client, moto_server, wait_until


@dataclass
class Cloud:
    endpoint: str
    parsed: list[str]

    def client(self, service: str) -> Any:
        return client(self.endpoint, service)


@pytest.fixture(scope="module")
def cloud() -> Iterator[Cloud]:
    parsed: list[str] = []

    def counting_parse(definition: str) -> EvalComponent:
        parsed.append(definition)
        return program_cache.parse_program(definition)

    with moto_server() as endpoint, pytest.MonkeyPatch.context() as patch:
        patch.setitem(default_user_config, "stepfunctions", {"execute_state_machine": True})
        patch.setenv("MOTO_PORT", endpoint.rsplit(":", 1)[1])
        undo = program_cache.install(program_cache.ProgramCache(parse=counting_parse))
        try:
            yield Cloud(endpoint, parsed)
        finally:
            undo()


def definition(version: int) -> str:
    """A Task that fails (its table does not exist) and is retried once, then caught; then a Pass that says
    which definition ran and with what input. The retry's attempt count lives in the execution's heap under
    the Retry components' keys: a count kept in the shared program would leak from one execution to the
    next."""
    return json.dumps(
        {
            "StartAt": "Lookup",
            "States": {
                "Lookup": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::dynamodb:getItem",
                    "Parameters": {"TableName": "no-such-table", "Key": {"k": {"S": "x"}}},
                    "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 1, "MaxAttempts": 1}],
                    "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Answer"}],
                    "Next": "Answer",
                },
                "Answer": {"Type": "Pass", "Parameters": {"version": version, "n.$": "$.n"}, "End": True},
            },
        }
    )


def run(cloud: Cloud, machine_arn: str, inputs: list[int]) -> list[tuple[dict[str, Any], int]]:
    """Starts one execution per input at once; their outputs and how many times each one's task failed."""
    sfn = cloud.client("stepfunctions")
    arns = [
        sfn.start_execution(stateMachineArn=machine_arn, name=f"n{n}", input=json.dumps({"n": n}))[
            "executionArn"
        ]
        for n in inputs
    ]

    def ended() -> bool:
        return all(sfn.describe_execution(executionArn=arn)["status"] != "RUNNING" for arn in arns)

    wait_until(ended, timeout=30, message="the executions to end")
    results = []
    for arn in arns:
        described = sfn.describe_execution(executionArn=arn)
        assert described["status"] == "SUCCEEDED", described
        events = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
        failures = sum(1 for event in events if event["type"] == "TaskFailed")
        results.append((json.loads(described["output"]), failures))
    return results


def machine(cloud: Cloud, text: str) -> str:
    sfn = cloud.client("stepfunctions")
    return str(
        sfn.create_state_machine(
            name=f"cached-{uuid.uuid4().hex[:8]}",
            definition=text,
            roleArn="arn:aws:iam::123456789012:role/states",
        )["stateMachineArn"]
    )


def test_executions_of_one_definition_share_one_parse_and_each_retries_on_its_own(cloud: Cloud) -> None:
    text = definition(1)
    arn = machine(cloud, text)

    assert run(cloud, arn, [1]) == [({"version": 1, "n": 1}, 2)]
    assert cloud.parsed.count(text) == 1
    # Executions at once share that parse (started after it: two that miss at the same moment may both parse,
    # either result serving). Each tried once and retried once: none inherited another's attempts.
    assert run(cloud, arn, [2, 3, 4]) == [({"version": 1, "n": n}, 2) for n in (2, 3, 4)]
    assert cloud.parsed.count(text) == 1
    # A later execution of the same definition still starts from attempt one.
    assert run(cloud, arn, [5]) == [({"version": 1, "n": 5}, 2)]
    assert cloud.parsed.count(text) == 1


def test_an_updated_definition_is_parsed_again_not_served_from_the_cache(cloud: Cloud) -> None:
    sfn = cloud.client("stepfunctions")
    old, new = definition(10), definition(11)
    arn = machine(cloud, old)
    assert run(cloud, arn, [1]) == [({"version": 10, "n": 1}, 2)]

    sfn.update_state_machine(stateMachineArn=arn, definition=new)

    assert run(cloud, arn, [2]) == [({"version": 11, "n": 2}, 2)]
    assert (cloud.parsed.count(old), cloud.parsed.count(new)) == (1, 1)


def test_a_definition_that_does_not_parse_is_not_cached() -> None:
    attempts: list[str] = []

    def refusing(text: str) -> EvalComponent:
        attempts.append(text)
        raise ValueError("not ASL")

    cache = program_cache.ProgramCache(parse=refusing)
    for _ in range(2):
        with pytest.raises(ValueError, match="not ASL"):
            cache.program("{}")
    assert attempts == ["{}", "{}"]


def test_every_component_has_its_heap_key_before_the_program_is_shared() -> None:
    program = program_cache.ProgramCache().program(definition(1))

    found: list[EvalComponent] = []
    pending: list[Any] = [program]
    seen: set[int] = set()
    while pending:
        item = pending.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, EvalComponent):
            found.append(item)
        if isinstance(item, Component):
            pending.extend(vars(item).values())
        elif isinstance(item, (list, tuple)):
            pending.extend(item)
        elif isinstance(item, dict):
            pending.extend(item.values())
    # The Retry's attempt counter and backoff are among them (their keys name the heap slots they use).
    assert len(found) > 20
    assert all(vars(component).get("_EvalComponent__heap_key") for component in found)


def test_least_recently_used_definitions_are_dropped_past_the_bound() -> None:
    parsed: list[str] = []

    def counting(text: str) -> EvalComponent:
        parsed.append(text)
        return program_cache.parse_program(text)

    cache = program_cache.ProgramCache(parse=counting, max_definitions=2)
    first, second, third = definition(1), definition(2), definition(3)
    cache.program(first)
    cache.program(second)
    cache.program(first)  # first is now the most recently used
    cache.program(third)  # drops second
    cache.program(first)
    cache.program(second)
    assert parsed == [first, second, third, second]
