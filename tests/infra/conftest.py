"""Synthesize every environment once per test session, exactly as `cdk synth` would (cdk.json context
included), in both compliance profiles, and hand the templates to the tests."""

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
from stacks.config import ENVIRONMENT_NAMES, STRICT_PROFILE, EnvironmentConfig, load_config, with_overrides

ROOT = Path(__file__).resolve().parents[2]
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

# Every environment as configured (the default profile), then each with `-c compliance=strict`.
STRICT_VARIANTS = tuple(f"{env}-strict" for env in ENVIRONMENT_NAMES)
VARIANTS = (*ENVIRONMENT_NAMES, *STRICT_VARIANTS)


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

    @property
    def strict(self) -> bool:
        return self.config.compliance.strict

    @property
    def variant(self) -> str:
        """The environment, with `-strict` under the strict profile (snapshot names, test ids)."""
        return f"{self.env}-strict" if self.strict else self.env


def cdk_json_context() -> dict[str, Any]:
    return dict(json.loads((ROOT / "cdk.json").read_text())["context"])


def synthesize(env: str, outdir: Path, extra_context: dict[str, Any] | None = None) -> Synthesized:
    context = {**cdk_json_context(), "env": env, **(extra_context or {})}
    app = cdk.App(outdir=str(outdir), context=context)
    build_app(app)
    assembly = app.synth()
    stateful = assembly.get_stack_by_name(f"ResilientPipeline-{env}-Stateful")
    pipeline = assembly.get_stack_by_name(f"ResilientPipeline-{env}-Pipeline")
    return Synthesized(
        env=env,
        config=with_overrides(load_config(env), compliance=context.get("compliance")),
        stateful=stateful.template,
        pipeline=pipeline.template,
        stateful_termination_protection=bool(stateful.termination_protection),
        outdir=outdir,
    )


def synthesize_variant(variant: str, outdir: Path) -> Synthesized:
    env, _, profile = variant.partition("-")
    return synthesize(env, outdir, {"compliance": STRICT_PROFILE} if profile else None)


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Synthesized]]:
    root = tmp_path_factory.mktemp("cdk-out")
    yield {variant: synthesize_variant(variant, root / variant) for variant in VARIANTS}


@pytest.fixture(params=VARIANTS)
def synth(request: pytest.FixtureRequest, synthesized: dict[str, Synthesized]) -> Synthesized:
    """Every environment in both profiles: the invariants that hold whatever the profile."""
    return synthesized[request.param]


@pytest.fixture(params=ENVIRONMENT_NAMES)
def default_synth(request: pytest.FixtureRequest, synthesized: dict[str, Synthesized]) -> Synthesized:
    """Every environment in the default profile only."""
    return synthesized[request.param]


@pytest.fixture(params=STRICT_VARIANTS)
def strict_synth(request: pytest.FixtureRequest, synthesized: dict[str, Synthesized]) -> Synthesized:
    """Every environment under the strict compliance profile."""
    return synthesized[request.param]
