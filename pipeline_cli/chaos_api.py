"""The running local cloud's fault injection API (/_localcloud/chaos, see `localcloud.core.chaos`), as
`pipeline local chaos` calls it: found through `pipeline_cli.local_home`, its refusals turned into one-line
errors that name the command's flags. `ChaosRules` is the same client for programs that drive a cloud (the
fault matrix, the benchmarks, the tests).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from localcloud.core import cloud
from localcloud.core.chaos import CONTROL_PATH
from pipeline_cli.errors import CliError
from pipeline_cli.local_home import local_home

HTTP_TIMEOUT_SECONDS = 10.0


def as_flags(message: str) -> str:
    """A refusal of a rule, its field names given as the command's flags."""
    for field, flag in (("latency_ms", "--latency-ms"), ("rate", "--rate"), ("count", "--count")):
        if message.startswith(field + " "):
            return flag + message[len(field) :]
    for field in ("service", "operation", "error", "function", "resource"):
        if message.startswith(field + " "):
            return "--" + message
    return message


def call(
    method: str, body: dict[str, Any] | None = None, *, endpoint: str | None = None
) -> tuple[int, dict[str, Any]]:
    """One request to the API of the local cloud at `endpoint` (default: the one that runs from
    `local_home()`): (HTTP status, its answer)."""
    if endpoint is None:
        state = cloud.running(local_home())
        if state is None:
            raise CliError("the local cloud is not running: start it with `pipeline local up`", exit_code=1)
        endpoint = state.endpoint
    request = urllib.request.Request(  # noqa: S310 - http://localhost only
        f"{endpoint}{CONTROL_PATH}",
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_SECONDS) as response:  # noqa: S310
            answer: dict[str, Any] = json.loads(response.read())
            return int(response.status), answer
    except urllib.error.HTTPError as error:
        message = _api_error(error)
        if message is None:
            # moto itself answered (404 or 500 HTML): a server from before the chaos API.
            raise CliError(
                f"the local cloud at {endpoint} has no chaos API (started by an older version?): "
                "restart it with `pipeline local down` and `pipeline local up`",
                exit_code=1,
            ) from None
        raise CliError(as_flags(message), exit_code=2 if error.code == 400 else 1) from None
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise CliError(f"the local cloud at {endpoint} did not answer: {error}", exit_code=1) from None


def _api_error(error: urllib.error.HTTPError) -> str | None:
    """The chaos API's `{"error": ...}` message, or None when something else answered."""
    try:
        document = json.loads(error.read())
    except ValueError:
        return None
    if isinstance(document, dict) and isinstance(document.get("error"), str):
        return str(document["error"])
    return None


class ChaosRules:
    """The rules of the local cloud at `endpoint`: add one, list them (with what each injected), clear them."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint

    def add(self, **rule: Any) -> dict[str, Any]:
        return dict(call("POST", rule, endpoint=self.endpoint)[1]["rule"])

    def rules(self) -> list[dict[str, Any]]:
        return list(call("GET", endpoint=self.endpoint)[1]["rules"])

    def clear(self) -> None:
        call("DELETE", endpoint=self.endpoint)
