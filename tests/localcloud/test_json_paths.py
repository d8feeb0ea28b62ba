"""Each JSONPath parsed once (localcloud.services.stepfunctions.json_paths), on an in-process moto server
executing state machines as the local cloud's server does."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import jsonpath_ng
import jsonpath_ng.ext
import pytest
from moto.core.config import default_user_config
from moto.stepfunctions.parser.asl.utils import json_path

from localcloud.services.stepfunctions import json_paths
from tests.localcloud.support import client, moto_server, wait_until

DEFINITION = {
    "StartAt": "Shape",
    "States": {
        "Shape": {
            "Type": "Pass",
            "InputPath": "$.job",
            "Parameters": {"id.$": "$.id", "first.$": "$.items[0]", "all.$": "$.items[*].n"},
            "ResultPath": "$.shaped",
            "Next": "Big?",
        },
        "Big?": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.shaped.first.n", "NumericGreaterThan": 10, "Next": "Big"}],
            "Default": "Small",
        },
        "Big": {"Type": "Pass", "Result": "big", "ResultPath": "$.size", "End": True},
        "Small": {"Type": "Pass", "Result": "small", "ResultPath": "$.size", "End": True},
    },
}


@pytest.fixture(scope="module")
def parsed() -> Iterator[tuple[Counter[str], Counter[str]]]:
    """Counts of the extended and the plain parses, while the server runs with the caches installed."""
    extended: Counter[str] = Counter()
    plain: Counter[str] = Counter()

    def counting_extended(path: str) -> Any:
        extended[path] += 1
        return jsonpath_ng.ext.parse(path)

    def counting_plain(path: str) -> Any:
        plain[path] += 1
        return jsonpath_ng.parse(path)

    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(default_user_config, "stepfunctions", {"execute_state_machine": True})
        undo = json_paths.install(extended=counting_extended, plain=counting_plain)
        try:
            yield extended, plain
        finally:
            undo()


def test_every_path_is_parsed_once_and_each_execution_reads_its_own_input(
    parsed: tuple[Counter[str], Counter[str]],
) -> None:
    extended, plain = parsed
    with moto_server() as endpoint:
        sfn = client(endpoint, "stepfunctions")
        arn = sfn.create_state_machine(
            name=f"paths-{uuid.uuid4().hex[:8]}",
            definition=json.dumps(DEFINITION),
            roleArn="arn:aws:iam::123456789012:role/states",
        )["stateMachineArn"]

        def run(numbers: tuple[int, ...]) -> dict[int, Any]:
            """Starts one execution per number at once; each one's output once all have ended."""
            arns = {
                n: sfn.start_execution(stateMachineArn=arn, name=f"n{n}", input=json.dumps(job(n)))[
                    "executionArn"
                ]
                for n in numbers
            }
            wait_until(
                lambda: all(
                    sfn.describe_execution(executionArn=a)["status"] != "RUNNING" for a in arns.values()
                ),
                message="the executions to end",
            )
            outputs = {}
            for n, execution in arns.items():
                described = sfn.describe_execution(executionArn=execution)
                assert described["status"] == "SUCCEEDED", described
                outputs[n] = json.loads(described["output"])
            return outputs

        # The first execution parses each path once: reads through the extended parser, writes through the
        # plain one.
        first = run((5,))
        assert {"$.job", "$.id", "$.items[0]", "$.items[*].n", "$.shaped.first.n"} <= set(extended)
        assert {"$.shaped", "$.size"} <= set(plain)
        assert set(extended.values()) == {1}
        assert set(plain.values()) == {1}
        # Executions running at once then share those parses and parse nothing more. (Two executions that miss
        # the same path at the same moment may both parse it, either result serving, so the concurrent ones
        # start after the cache holds every path.)
        before = (extended.copy(), plain.copy())
        outputs = {**first, **run((20, 7, 12))}
        assert (extended, plain) == before

    for n, output in outputs.items():
        assert output == {
            **job(n),
            "shaped": {"id": f"job-{n}", "first": {"n": n}, "all": [n, n + 1]},
            "size": "big" if n > 10 else "small",
        }


def job(n: int) -> dict[str, Any]:
    return {"job": {"id": f"job-{n}", "items": [{"n": n}, {"n": n + 1}]}}


def test_a_path_that_does_not_parse_fails_every_time() -> None:
    attempts: list[str] = []

    def refusing(path: str) -> Any:
        attempts.append(path)
        raise ValueError(f"bad path {path}")

    undo = json_paths.install(extended=refusing)
    try:
        for _ in range(2):
            with pytest.raises(ValueError, match="bad path"):
                json_path.extract_json("$.[", {})
    finally:
        undo()
    assert attempts == ["$.[", "$.["]
