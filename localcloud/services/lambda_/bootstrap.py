"""The inside of one local Lambda execution environment: a long-lived subprocess of the local cloud.

`runner` starts it with the server's own interpreter as

    python -P -S bootstrap.py CODE_DIR HANDLER REQUEST_FD RESPONSE_FD [PATH ...]

It imports the handler once (the *init* phase, so module-level state survives between invocations as it
does on Lambda), then serves invocations one at a time. Requests and responses travel as length-prefixed
JSON frames on two inherited pipe descriptors; fd 1 and fd 2 belong to the handler (its logs and EMF
metrics go to the function's log file), so nothing the handler prints can corrupt the protocol.

Only the standard library is used here, and the interpreter starts without `site` (no virtualenv): the
handler's imports come from its code directory first, then the PATH entries (its layers' `/opt/python`,
then the runtime's boto3), as on Lambda (`/var/task` precedes the layers and the runtime's packages).
"""

from __future__ import annotations

import decimal
import importlib
import json
import os
import struct
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

_HEADER = struct.Struct(">I")

Handler = Callable[[Any, Any], Any]


class ProtocolClosed(Exception):
    """The runner closed the request pipe: the environment is being shut down."""


def read_frame(fd: int) -> dict[str, Any]:
    header = _read_exactly(fd, _HEADER.size)
    (length,) = _HEADER.unpack(header)
    message: dict[str, Any] = json.loads(_read_exactly(fd, length))
    return message


def write_frame(fd: int, message: dict[str, Any]) -> None:
    body = json.dumps(message, separators=(",", ":")).encode("utf-8")
    data = memoryview(_HEADER.pack(len(body)) + body)
    while data:
        written = os.write(fd, data)
        data = data[written:]


def _read_exactly(fd: int, size: int) -> bytes:
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        chunk = os.read(fd, remaining)
        if not chunk:
            raise ProtocolClosed
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


class LambdaContext:
    """The attributes and method of the Python runtime's context object (awslambdaric's LambdaContext)."""

    def __init__(self, request: dict[str, Any]) -> None:
        self.aws_request_id: str = request["request_id"]
        self.invoked_function_arn: str = request["invoked_function_arn"]
        self.function_name: str = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        self.function_version: str = os.environ["AWS_LAMBDA_FUNCTION_VERSION"]
        # A string, as in the real runtime (it reads the environment variable).
        self.memory_limit_in_mb: str = os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]
        self.log_group_name: str = os.environ["AWS_LAMBDA_LOG_GROUP_NAME"]
        self.log_stream_name: str = os.environ["AWS_LAMBDA_LOG_STREAM_NAME"]
        self.identity: Any = None
        self.client_context: Any = request.get("client_context")
        self.tenant_id: str | None = None
        self._deadline_ms: int = request["deadline_ms"]

    def get_remaining_time_in_millis(self) -> int:
        # Wall-clock based like Lambda's own deadline; the runner kills the process when it reaches 0.
        return max(self._deadline_ms - int(time.time() * 1000), 0)

    def __repr__(self) -> str:
        return (
            f"LambdaContext([aws_request_id={self.aws_request_id},"
            f"function_name={self.function_name},memory_limit_in_mb={self.memory_limit_in_mb}])"
        )


def error_payload(exc: BaseException, *, request_id: str = "") -> dict[str, Any]:
    """The Lambda error document for an exception: what the Invoke API returns with FunctionError set."""
    return {
        "errorMessage": str(exc),
        "errorType": type(exc).__name__,
        "requestId": request_id,
        "stackTrace": traceback.format_list(_user_frames(exc)),
    }


def _user_frames(exc: BaseException) -> list[traceback.FrameSummary]:
    # Like the real runtime, leave out the runtime's own frames that lead into the handler.
    frames = traceback.extract_tb(exc.__traceback__)
    while frames and frames[0].filename == __file__:
        frames.pop(0)
    return frames


def _fault(error_type: str, message: str) -> dict[str, Any]:
    return {"errorMessage": message, "errorType": error_type, "requestId": "", "stackTrace": []}


def load_handler(spec: str) -> tuple[Handler | None, dict[str, Any] | None]:
    """Import `module.path.function`; return the handler or the runtime's fault for a broken one."""
    module_name, _, function_name = spec.rpartition(".")
    if not module_name or not function_name:
        return None, _fault(
            "Runtime.MalformedHandlerName", f"Bad handler '{spec}': not enough values to unpack"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        return None, _fault("Runtime.ImportModuleError", f"Unable to import module '{module_name}': {exc}")
    except SyntaxError as exc:
        return None, _fault("Runtime.UserCodeSyntaxError", f"Syntax error in module '{module_name}': {exc}")
    except Exception as exc:  # noqa: BLE001 - an init error of any kind is reported, as Lambda does
        _log_unhandled(exc)
        return None, error_payload(exc)
    handler = getattr(module, function_name, None)
    if handler is None:
        return None, _fault(
            "Runtime.HandlerNotFound", f"Handler '{function_name}' missing on module '{module_name}'"
        )
    return handler, None


def _json_default(value: Any) -> Any:
    # The Python runtime marshals Decimal (what boto3 returns for DynamoDB numbers) as a JSON number.
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _log_unhandled(exc: BaseException) -> None:
    # What the runtime writes to the function's log for an unhandled exception.
    lines = traceback.format_exception(exc)
    sys.stderr.write(f"[ERROR] {type(exc).__name__}: {exc}\n{''.join(lines)}")


def invoke(handler: Handler, request: dict[str, Any]) -> dict[str, Any]:
    """Run one invocation; never raises for the handler's exceptions (BaseException ends the process)."""
    context = LambdaContext(request)
    os.environ["_X_AMZN_TRACE_ID"] = request.get("trace_id") or ""
    started = time.monotonic()
    try:
        event = json.loads(request["payload"])
        result = handler(event, context)
    except Exception as exc:  # noqa: BLE001 - every handler exception becomes a Lambda function error
        _log_unhandled(exc)
        payload = error_payload(exc, request_id=context.aws_request_id)
        outcome: dict[str, Any] = {"ok": False, "payload": json.dumps(payload)}
    else:
        try:
            outcome = {"ok": True, "payload": json.dumps(result, default=_json_default)}
        except (TypeError, ValueError) as exc:
            outcome = {
                "ok": False,
                "payload": json.dumps(_fault("Runtime.MarshalError", f"Unable to marshal response: {exc}")),
            }
    outcome["duration_ms"] = (time.monotonic() - started) * 1000
    return outcome


def _exit_with_parent() -> None:
    # A handler stuck in a loop must not outlive a server that was killed (only the server enforces the
    # timeout): when the parent goes, so does this environment.
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def serve(
    code_dir: str, handler_spec: str, request_fd: int, response_fd: int, path: list[str] | None = None
) -> int:
    _exit_with_parent()
    # Lambda's working directory is the code directory, and the code directory comes first on sys.path,
    # then the layers and the runtime's packages, before the standard library.
    os.chdir(code_dir)
    sys.path[0:0] = [code_dir, *(path or [])]
    started = time.monotonic()
    handler, fault = load_handler(handler_spec)
    init_ms = (time.monotonic() - started) * 1000
    if handler is None:
        write_frame(
            response_fd, {"type": "init", "ok": False, "payload": json.dumps(fault), "init_ms": init_ms}
        )
        return 1
    write_frame(response_fd, {"type": "init", "ok": True, "init_ms": init_ms})
    while True:
        try:
            request = read_frame(request_fd)
        except ProtocolClosed:
            return 0
        outcome = invoke(handler, request)
        sys.stdout.flush()
        sys.stderr.flush()
        write_frame(response_fd, {"type": "result", **outcome})


def main(argv: list[str]) -> int:
    code_dir, handler_spec, request_fd, response_fd, *path = argv
    return serve(code_dir, handler_spec, int(request_fd), int(response_fd), path)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
