"""The synthesized app and the contract agree: every function gets exactly the variables its settings read,
the state machine writes only the contract's statuses, and every status it writes follows the contract's
transitions."""

from __future__ import annotations

import importlib
import json
import re
from typing import Any

import pipeline_contract as contract
from tests.infra.conftest import Synthesized
from tests.infra.template_tools import all_states, resources, state_machine_definition


def test_every_function_gets_exactly_the_variables_its_settings_read(synth: Synthesized) -> None:
    functions = resources(synth.pipeline, "AWS::Lambda::Function").values()
    handlers = {f["Properties"]["Handler"] for f in functions}
    assert handlers == {
        "handlers.ingest.handler",
        "handlers.worker.handler",
        "handlers.failures.handler",
        "handlers.events.handler",
    }
    for function in functions:
        properties = function["Properties"]
        module = importlib.import_module(properties["Handler"].rpartition(".")[0])
        expected = set(module.SETTINGS.VARIABLES.values()) | set(contract.POWERTOOLS_VARIABLES)
        assert set(properties["Environment"]["Variables"]) == expected, properties["Handler"]


def _status_writes(definition: dict[str, Any]) -> dict[str, tuple[str, set[str]]]:
    """DynamoDB updateItem states of the definition: state -> (status written, statuses it may leave)."""
    writes: dict[str, tuple[str, set[str]]] = {}
    for name, state in all_states(definition).items():
        parameters = state.get("Parameters", {})
        if not str(state.get("Resource", "")).endswith(":dynamodb:updateItem"):
            continue
        values = parameters["ExpressionAttributeValues"]
        names = parameters.get("ExpressionAttributeNames", {})
        status_ref = next(ref for ref, attribute in names.items() if attribute == "status")
        written = re.search(rf"SET {status_ref} = (:\w+)", parameters["UpdateExpression"])
        assert written, f"{name} does not set the status"
        allowed = re.search(rf"{status_ref} IN \(([^)]*)\)", parameters["ConditionExpression"])
        assert allowed, f"{name} writes the status without a condition on it"
        sources = {values[ref.strip()]["S"] for ref in allowed.group(1).split(",")}
        writes[name] = (values[written.group(1)]["S"], sources)
    return writes


def test_the_state_machines_status_writes_follow_the_contracts_transitions(synth: Synthesized) -> None:
    writes = _status_writes(state_machine_definition(synth.pipeline))
    assert set(writes) == {"MarkRunning", "MarkSucceeded", "MarkFailed"}
    for name, (target, sources) in writes.items():
        assert sources == set(contract.sources(target)), f"{name}: {sources} -> {target}"
        assert all(target in contract.TRANSITIONS[source] for source in sources)


def test_every_status_literal_in_the_definition_belongs_to_the_contract(synth: Synthesized) -> None:
    text = json.dumps(state_machine_definition(synth.pipeline))
    literals = set(re.findall(r'"S": "([A-Z_]+)"', text))
    assert literals, "the definition writes statuses"
    assert literals <= set(contract.STATUSES)


def test_the_transitions_table_is_closed_and_terminal_statuses_are_final() -> None:
    assert set(contract.TRANSITIONS) == set(contract.STATUSES)
    assert all(targets <= set(contract.STATUSES) for targets in contract.TRANSITIONS.values())
    for status in (contract.SUCCEEDED, contract.REJECTED, contract.CANCELLED):
        assert contract.TRANSITIONS[status] == frozenset(), f"{status} is final"
    assert contract.TRANSITIONS[contract.FAILED] == {contract.PENDING}, "only a redrive leaves FAILED"


def test_the_cli_knows_exactly_the_environments_the_app_defines() -> None:
    from pipeline_contract import ENVIRONMENTS
    from stacks import config

    assert tuple(config._CONFIGS) == ENVIRONMENTS
    for name in ENVIRONMENTS:
        assert config.load_config(name).name == name
