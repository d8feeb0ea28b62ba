"""The seed's anti-pattern on the local cloud, as on AWS: examples/self-recursion deployed beside the
pipeline, the same long job through both. Lambda's recursive loop detection stops the queue that feeds
itself after 16 invocations (its continuation in its DLQ, its RecursiveInvocationsDropped alarm in ALARM);
the pipeline, whose segments a state machine drives, finishes the job. What `make demo-recursion` shows."""

from __future__ import annotations

import importlib.util
import io
import os
import sys
from pathlib import Path
from types import ModuleType

from localcloud.core.state import LocalCloudState
from pipeline_cli.aws import Pipeline

DEMO = Path(__file__).resolve().parents[2] / "examples" / "self-recursion" / "demo.py"


def _demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("self_recursion_demo", DEMO)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Its dataclasses look their module up by name.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_loop_is_stopped_at_16_hops_and_pages_while_the_pipeline_finishes(
    local_cloud: LocalCloudState, pipeline: Pipeline
) -> None:
    demo = _demo()
    log = io.StringIO()
    outcome = demo.run(pipeline, local_cloud, Path(os.environ["LOCALCLOUD_HOME"]), "it", out=log)
    assert outcome.problems() == [], log.getvalue()
    assert outcome.chunks_done == list(range(16))
    assert outcome.dead_letter["chunk"] == 16
    assert outcome.pipeline_status == "SUCCEEDED"
    assert outcome.segments >= 40
    assert demo.report(outcome, io.StringIO()) == 0
