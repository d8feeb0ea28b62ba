"""The handlers' cold start: where tracing is off (config `powertools_tracer`: the local environment), no
handler imports the X-Ray SDK (Powertools' Tracer imports it when constructed, even disabled: ~300 ms of
every cold start); where it is on, the handlers trace with Powertools' Tracer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

LAMBDA_SOURCE = Path(__file__).resolve().parents[2] / "lambda_src"
HANDLERS = ("handlers.ingest", "handlers.worker", "handlers.failures", "handlers.events")


def imported_after(module: str, *, trace_disabled: str | None) -> dict[str, object]:
    """In a fresh interpreter, as a Lambda cold start: which tracer the module got, and what it imported."""
    script = (
        f"import sys, json, importlib; handler = importlib.import_module({module!r}); "
        "from handlers import observability; "
        "print(json.dumps({'xray': 'aws_xray_sdk' in sys.modules, "
        "'tracer': type(observability.tracer).__name__}))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("POWERTOOLS_")}
    env |= {"POWERTOOLS_SERVICE_NAME": "test", "PYTHONPATH": str(LAMBDA_SOURCE)}
    if trace_disabled is not None:
        env["POWERTOOLS_TRACE_DISABLED"] = trace_disabled
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True, timeout=120
    )
    answer: dict[str, object] = json.loads(completed.stdout.strip().splitlines()[-1])
    return answer


@pytest.mark.parametrize("module", HANDLERS)
def test_no_handler_imports_the_xray_sdk_where_tracing_is_off(module: str) -> None:
    assert imported_after(module, trace_disabled="true") == {"xray": False, "tracer": "NoTracer"}


def test_where_tracing_is_on_the_handlers_trace_with_powertools() -> None:
    assert imported_after("handlers.worker", trace_disabled="false") == {"xray": True, "tracer": "Tracer"}
