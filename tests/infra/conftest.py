"""Synthesize every environment once per test session, exactly as `cdk synth` would (cdk.json context
included), and hand the templates to the tests."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest

from app import build_app
from stacks.config import ENVIRONMENT_NAMES, EnvironmentConfig, load_config

ROOT = Path(__file__).resolve().parents[2]
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")


@dataclass(frozen=True)
class Synthesized:
    env: str
    config: EnvironmentConfig
    stateful: dict[str, Any]
    pipeline: dict[str, Any]
    stateful_termination_protection: bool
    outdir: Path

    def template(self, which: str) -> dict[str, Any]:
        return self.stateful if which == "stateful" else self.pipeline


def cdk_json_context() -> dict[str, Any]:
    return dict(json.loads((ROOT / "cdk.json").read_text())["context"])


def synthesize(env: str, outdir: Path, extra_context: dict[str, Any] | None = None) -> Synthesized:
    app = cdk.App(outdir=str(outdir), context={**cdk_json_context(), "env": env, **(extra_context or {})})
    build_app(app)
    assembly = app.synth()
    stateful = assembly.get_stack_by_name(f"ResilientPipeline-{env}-Stateful")
    pipeline = assembly.get_stack_by_name(f"ResilientPipeline-{env}-Pipeline")
    return Synthesized(
        env=env,
        config=load_config(env),
        stateful=stateful.template,
        pipeline=pipeline.template,
        stateful_termination_protection=bool(stateful.termination_protection),
        outdir=outdir,
    )


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Synthesized]]:
    root = tmp_path_factory.mktemp("cdk-out")
    yield {env: synthesize(env, root / env) for env in ENVIRONMENT_NAMES}


@pytest.fixture(params=ENVIRONMENT_NAMES)
def synth(request: pytest.FixtureRequest, synthesized: dict[str, Synthesized]) -> Synthesized:
    return synthesized[request.param]
