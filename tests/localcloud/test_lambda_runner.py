"""The local Lambda runner on its own (no moto): a tiny deployed zip, run like Lambda runs it."""

from __future__ import annotations

import io
import json
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from localcloud.services.lambda_.runner import (
    AsyncConfig,
    AsyncOutcome,
    FunctionSpec,
    FunctionThrottled,
    InvocationResult,
    LambdaRunner,
    invocation_record,
)
from tests.localcloud.support import wait_until

APP = """
import decimal
import os
import sys
import time

from helpers.errors import InputNotFoundError

STATE = {"calls": 0}


class TransientError(Exception):
    pass


def ok(event, context):
    STATE["calls"] += 1
    print("hello on stdout")
    print("hello on stderr", file=sys.stderr)
    return {"echo": event, "calls": STATE["calls"], "pid": os.getpid()}


def transient(event, context):
    raise TransientError("try again")


def not_found(event, context):
    raise InputNotFoundError("s3://bucket/missing.jsonl does not exist")


def sleep(event, context):
    if "started" in event:  # tells the test this invocation is running
        open(event["started"], "w").close()
    time.sleep(event["seconds"])
    return {"slept": event["seconds"], "pid": os.getpid()}


def remaining(event, context):
    first = context.get_remaining_time_in_millis()
    time.sleep(0.3)
    return [first, context.get_remaining_time_in_millis()]


def environment(event, context):
    return {key: os.environ.get(key) for key in event["keys"]}


def context_attributes(event, context):
    return {
        "aws_request_id": context.aws_request_id,
        "function_name": context.function_name,
        "function_version": context.function_version,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "invoked_function_arn": context.invoked_function_arn,
        "cwd": os.getcwd(),
        "sys_path_0": sys.path[0],
    }


def crash(event, context):
    os._exit(3)


def decimals(event, context):
    return {"int": decimal.Decimal("3"), "float": decimal.Decimal("1.5")}


def unmarshallable(event, context):
    return {"value": object()}


def allocate(event, context):
    # Written to, so that every page is resident (a bare bytearray may be left untouched by the kernel).
    block = b"x" * (event["mib"] << 20)
    return {"allocated": len(block), "pid": os.getpid()}


def imports(event, context):
    import importlib
    found = {}
    for name in event["modules"]:
        try:
            module = importlib.import_module(name)
        except ImportError as error:
            found[name] = f"ImportError: {error}"
        else:
            found[name] = getattr(module, "__file__", None)
    return {"found": found, "path": sys.path}


def allocate_in_child(event, context):
    import subprocess
    code = f"b = b'x' * ({event['mib']} << 20); import time; time.sleep(5)"
    subprocess.run([sys.executable, "-c", code], check=True)
    return {"pid": os.getpid()}
"""

ERRORS = """
class PermanentError(Exception):
    pass


class InputNotFoundError(PermanentError):
    pass
"""

BROKEN = "import module_that_does_not_exist\n"


def build_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", APP)
        archive.writestr("broken.py", BROKEN)
        archive.writestr("helpers/__init__.py", "")
        archive.writestr("helpers/errors.py", ERRORS)
    return buffer.getvalue()


CODE = build_zip()
SHA = "0" * 63 + "1"


def spec(
    handler: str, *, timeout: float = 3.0, reserved: int | None = None, memory_mb: int = 256, **env: str
) -> FunctionSpec:
    return FunctionSpec(
        name=f"fixture-{handler.replace('.', '-')}",
        arn=f"arn:aws:lambda:us-east-1:123456789012:function:fixture-{handler.replace('.', '-')}",
        handler=handler,
        runtime="python3.14",
        timeout_seconds=timeout,
        memory_mb=memory_mb,
        version="$LATEST",
        environment={"FIXTURE": "yes", **env},
        code_sha256=SHA,
        reserved_concurrency=reserved,
    )


@pytest.fixture
def published() -> list[tuple[str, InvocationResult]]:
    return []


@pytest.fixture
def runner(tmp_path: Path, published: list[tuple[str, InvocationResult]]) -> Iterator[LambdaRunner]:
    lambda_runner = LambdaRunner(
        home=tmp_path,
        endpoint="http://localhost:4599",
        on_invocation=lambda s, result: published.append((s.name, result)),
    )
    yield lambda_runner
    lambda_runner.shutdown()


def invoke(runner: LambdaRunner, function: FunctionSpec, event: object = None) -> InvocationResult:
    return runner.invoke(function, json.dumps(event or {}).encode(), code=lambda: CODE)


def test_returns_the_handler_result_and_keeps_logs_off_the_result_channel(
    runner: LambdaRunner, tmp_path: Path
) -> None:
    function = spec("app.ok")
    result = invoke(runner, function, {"a": 1})
    assert not result.failed
    body = json.loads(result.payload)
    assert body["echo"] == {"a": 1}
    log = (tmp_path / "logs" / f"{function.name}.log").read_text()
    assert "hello on stdout" in log
    assert "hello on stderr" in log
    assert f"START RequestId: {result.request_id}" in log
    assert f"REPORT RequestId: {result.request_id}" in log
    assert "Init Duration" in log
    assert "hello on stdout" in result.log_tail
    assert (tmp_path / "functions" / SHA / "app.py").is_file()


def test_unhandled_exception_is_a_lambda_error_named_after_the_class(runner: LambdaRunner) -> None:
    result = invoke(runner, spec("app.transient"))
    assert result.error_type == "TransientError"
    document = json.loads(result.payload)
    assert document["errorType"] == "TransientError"
    assert document["errorMessage"] == "try again"
    assert any("in transient" in line for line in document["stackTrace"])

    subclass = json.loads(invoke(runner, spec("app.not_found")).payload)
    assert subclass["errorType"] == "InputNotFoundError"


def test_timeout_kills_the_environment_and_the_next_call_gets_a_new_one(runner: LambdaRunner) -> None:
    function = spec("app.sleep", timeout=1)
    warm = json.loads(invoke(runner, function, {"seconds": 0}).payload)
    started = time.monotonic()
    result = invoke(runner, function, {"seconds": 5})
    elapsed = time.monotonic() - started
    assert result.error_type == "Sandbox.Timedout"
    assert json.loads(result.payload)["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 1.00 seconds" in json.loads(result.payload)["errorMessage"]
    assert 0.9 < elapsed < 2.5
    after = json.loads(invoke(runner, function, {"seconds": 0}).payload)
    assert after["pid"] != warm["pid"]


def test_remaining_time_is_real_and_decreases(runner: LambdaRunner) -> None:
    first, second = json.loads(invoke(runner, spec("app.remaining", timeout=3)).payload)
    assert 2500 < first <= 3000
    assert 200 <= first - second < 1500


def test_function_environment_and_lambda_variables_are_set(runner: LambdaRunner) -> None:
    keys = [
        "FIXTURE",
        "JOB_TABLE_NAME",
        "AWS_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_VERSION",
    ]
    function = spec("app.environment", JOB_TABLE_NAME="jobs")
    values = json.loads(invoke(runner, function, {"keys": keys}).payload)
    assert values == {
        "FIXTURE": "yes",
        "JOB_TABLE_NAME": "jobs",
        "AWS_ENDPOINT_URL": "http://localhost:4599",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_LAMBDA_FUNCTION_NAME": function.name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
    }


def test_context_object(runner: LambdaRunner, tmp_path: Path) -> None:
    function = spec("app.context_attributes")
    result = invoke(runner, function)
    attributes = json.loads(result.payload)
    assert attributes["aws_request_id"] == result.request_id
    assert attributes["function_name"] == function.name
    assert attributes["function_version"] == "$LATEST"
    assert attributes["memory_limit_in_mb"] == "256"
    assert attributes["invoked_function_arn"] == function.arn
    assert attributes["cwd"] == str(tmp_path / "functions" / SHA)
    assert attributes["sys_path_0"] == str(tmp_path / "functions" / SHA)


def test_warm_environment_keeps_module_state(runner: LambdaRunner) -> None:
    function = spec("app.ok")
    first = invoke(runner, function)
    second = invoke(runner, function)
    assert first.init_ms is not None
    assert second.init_ms is None
    one, two = json.loads(first.payload), json.loads(second.payload)
    assert (one["calls"], two["calls"]) == (1, 2)
    assert one["pid"] == two["pid"]


def test_busy_environment_makes_a_second_one_and_both_stay_warm(runner: LambdaRunner) -> None:
    function = spec("app.sleep")
    results: list[InvocationResult] = []
    threads = [
        threading.Thread(target=lambda: results.append(invoke(runner, function, {"seconds": 0.5})))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    pids = {json.loads(result.payload)["pid"] for result in results}
    assert len(pids) == 2
    assert sorted(runner.environment_pids(function.name)) == sorted(pids)


def test_new_configuration_retires_old_environments(runner: LambdaRunner) -> None:
    first = json.loads(invoke(runner, spec("app.ok", VERSION="1")).payload)
    second = json.loads(invoke(runner, spec("app.ok", VERSION="2")).payload)
    assert second["pid"] != first["pid"]
    assert second["calls"] == 1


def test_crash_is_a_runtime_exit_error_and_the_environment_is_replaced(runner: LambdaRunner) -> None:
    result = invoke(runner, spec("app.crash"))
    assert result.error_type == "Runtime.ExitError"
    assert "exit status 3" in json.loads(result.payload)["errorMessage"]
    assert runner.environment_pids(spec("app.crash").name) == []


def test_import_error_is_reported_like_the_python_runtime(runner: LambdaRunner) -> None:
    result = invoke(runner, spec("broken.handler"))
    assert result.error_type == "Runtime.ImportModuleError"
    assert "Unable to import module 'broken'" in json.loads(result.payload)["errorMessage"]
    missing = invoke(runner, spec("app.no_such_function"))
    assert missing.error_type == "Runtime.HandlerNotFound"


def test_decimals_are_marshalled_as_numbers_and_objects_are_refused(runner: LambdaRunner) -> None:
    assert json.loads(invoke(runner, spec("app.decimals")).payload) == {"int": 3, "float": 1.5}
    assert invoke(runner, spec("app.unmarshallable")).error_type == "Runtime.MarshalError"


def test_reserved_concurrency_throttles(runner: LambdaRunner, tmp_path: Path) -> None:
    function = spec("app.sleep", reserved=1)
    started = tmp_path / "started"
    thread = threading.Thread(target=invoke, args=(runner, function, {"seconds": 2, "started": str(started)}))
    thread.start()
    wait_until(started.exists, timeout=30, message="the first invocation running")
    with pytest.raises(FunctionThrottled):
        invoke(runner, function, {"seconds": 0})
    thread.join()


def test_every_invocation_is_reported_for_metrics(
    runner: LambdaRunner, published: list[tuple[str, InvocationResult]]
) -> None:
    invoke(runner, spec("app.ok"))
    invoke(runner, spec("app.transient"))
    assert [(name, result.failed) for name, result in published] == [
        ("fixture-app-ok", False),
        ("fixture-app-transient", True),
    ]
    assert all(result.duration_ms > 0 for _, result in published)


def test_shutdown_stops_busy_environments_too(runner: LambdaRunner, tmp_path: Path) -> None:
    function = spec("app.sleep", timeout=30)
    results: list[InvocationResult] = []
    started = tmp_path / "started"
    event = {"seconds": 20, "started": str(started)}
    thread = threading.Thread(target=lambda: results.append(invoke(runner, function, event)))
    thread.start()
    wait_until(started.exists, timeout=30, message="the invocation running")
    started = time.monotonic()
    runner.shutdown()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert time.monotonic() - started < 5
    assert results[0].error_type == "Runtime.ExitError"


# -- asynchronous (Event) invocations: Lambda's retries and the outcome for destinations ----------------


@pytest.fixture
def async_runner(tmp_path: Path, published: list[tuple[str, InvocationResult]]) -> Iterator[LambdaRunner]:
    lambda_runner = LambdaRunner(
        home=tmp_path,
        endpoint="http://localhost:4599",
        on_invocation=lambda s, result: published.append((s.name, result)),
        async_retry_delays=(0.1, 0.2),
    )
    yield lambda_runner
    lambda_runner.shutdown()


def invoke_async(runner: LambdaRunner, function: FunctionSpec, config: AsyncConfig) -> AsyncOutcome:
    outcomes: list[AsyncOutcome] = []
    runner.invoke_async(function, b'{"n": 1}', code=lambda: CODE, config=config, on_outcome=outcomes.append)
    wait_until(lambda: bool(outcomes), message="the asynchronous invocation's outcome")
    return outcomes[0]


def test_async_function_error_is_retried_twice_then_the_retries_are_exhausted(
    async_runner: LambdaRunner, published: list[tuple[str, InvocationResult]]
) -> None:
    destination = "arn:aws:sqs:us-east-1:123456789012:on-failure"
    outcome = invoke_async(async_runner, spec("app.transient"), AsyncConfig(on_failure=destination))
    assert (outcome.condition, outcome.attempts, outcome.destination) == ("RetriesExhausted", 3, destination)
    assert [result.error_type for _, result in published] == ["TransientError"] * 3

    record = invocation_record(outcome)
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert record["requestContext"]["functionArn"].endswith(":function:fixture-app-transient:$LATEST")
    assert record["requestPayload"] == {"n": 1}
    assert record["responseContext"] == {
        "statusCode": 200,
        "executedVersion": "$LATEST",
        "functionError": "Unhandled",
    }
    assert record["responsePayload"]["errorType"] == "TransientError"


def test_async_success_needs_one_attempt_and_goes_to_on_success(async_runner: LambdaRunner) -> None:
    config = AsyncConfig(on_success="arn:aws:sqs:us-east-1:123456789012:ok", on_failure="arn:aws:sqs:x:1:no")
    outcome = invoke_async(async_runner, spec("app.ok"), config)
    assert (outcome.condition, outcome.attempts, outcome.destination) == ("Success", 1, config.on_success)
    assert "functionError" not in invocation_record(outcome)["responseContext"]


def test_async_retries_follow_the_event_invoke_config(
    async_runner: LambdaRunner, published: list[tuple[str, InvocationResult]]
) -> None:
    assert (
        invoke_async(async_runner, spec("app.transient"), AsyncConfig(maximum_retry_attempts=0)).attempts == 1
    )
    # Too old for the next retry (0.1 s away): given up after the first attempt.
    too_old = invoke_async(async_runner, spec("app.transient"), AsyncConfig(maximum_event_age_seconds=0.05))
    assert (too_old.condition, too_old.attempts) == ("EventAgeExceeded", 1)
    assert len(published) == 2


def _report(log: str, request_id: str) -> str:
    (line,) = [line for line in log.splitlines() if line.startswith(f"REPORT RequestId: {request_id}")]
    return line


def test_over_its_memory_size_the_environment_is_killed_as_out_of_memory(
    runner: LambdaRunner, tmp_path: Path
) -> None:
    function = spec("app.allocate", memory_mb=128, timeout=10)
    warm = json.loads(invoke(runner, function, {"mib": 1}).payload)
    result = invoke(runner, function, {"mib": 400})
    assert result.error_type == "Runtime.OutOfMemory"
    document = json.loads(result.payload)
    assert document["errorType"] == "Runtime.OutOfMemory"
    assert document["errorMessage"] == (
        f"RequestId: {result.request_id} Error: Runtime exited with error: signal: killed"
    )
    log = (tmp_path / "logs" / f"{function.name}.log").read_text()
    report = _report(log, result.request_id)
    assert "Memory Size: 128 MB" in report
    assert "Status: error\tError Type: Runtime.OutOfMemory" in report
    # The measured peak: at the limit or just over it when the watcher struck, never the 400 MiB asked for.
    used = int(report.split("Max Memory Used: ")[1].split()[0])
    assert 128 <= used < 400
    after = json.loads(invoke(runner, function, {"mib": 1}).payload)
    assert after["pid"] != warm["pid"]


def test_max_memory_used_is_the_measured_peak_and_within_the_limit_all_is_well(
    runner: LambdaRunner, tmp_path: Path
) -> None:
    function = spec("app.allocate", memory_mb=512, timeout=10)
    result = invoke(runner, function, {"mib": 200})
    assert not result.failed, result.payload
    log = (tmp_path / "logs" / f"{function.name}.log").read_text()
    used = int(_report(log, result.request_id).split("Max Memory Used: ")[1].split()[0])
    # 200 MiB allocated on top of the interpreter's own baseline.
    assert 200 <= used < 512


def test_a_child_process_counts_against_the_function_memory(runner: LambdaRunner) -> None:
    function = spec("app.allocate_in_child", memory_mb=128, timeout=10)
    result = invoke(runner, function, {"mib": 300})
    assert result.error_type == "Runtime.OutOfMemory"


def _layer_zip(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def test_a_function_sees_its_asset_its_layers_and_the_runtime_boto3_not_the_host_virtualenv(
    runner: LambdaRunner, tmp_path: Path
) -> None:
    layer = _layer_zip({"python/layered/__init__.py": "VALUE = 'from the layer'\n"})
    function = replace(spec("app.imports"), layers=("layer-digest",))
    result = runner.invoke(
        function,
        json.dumps({"modules": ["helpers.errors", "layered", "boto3", "botocore", "yaml", "moto"]}).encode(),
        code=lambda: CODE,
        layers={"layer-digest": lambda: layer},
    )
    assert not result.failed, result.payload
    answer = json.loads(result.payload)
    found = answer["found"]
    assert found["helpers.errors"].startswith(str(tmp_path / "functions"))
    assert found["layered"].startswith(str(tmp_path / "layers" / "layer-digest" / "python"))
    # Lambda's runtime provides boto3 and botocore: the host's pinned ones, from the runtime directory.
    assert found["boto3"].startswith(str(tmp_path / "runtime"))
    assert found["botocore"].startswith(str(tmp_path / "runtime"))
    # Installed in the host's virtualenv, in no asset, layer or runtime: on Lambda an ImportError.
    assert found["yaml"].startswith("ImportError")
    assert found["moto"].startswith("ImportError")
    assert not any("site-packages" in entry and "layers" not in entry for entry in answer["path"])


def test_a_handler_importing_what_only_the_host_has_fails_its_init_as_on_lambda(runner: LambdaRunner) -> None:
    code = _layer_zip({"needs_yaml.py": "import yaml\n\ndef handler(event, context):\n    return 1\n"})
    function = replace(spec("needs_yaml.handler"), code_sha256="yaml" + "0" * 60)
    result = runner.invoke(function, b"{}", code=lambda: code)
    assert result.error_type == "Runtime.ImportModuleError"
    assert "No module named 'yaml'" in json.loads(result.payload)["errorMessage"]
