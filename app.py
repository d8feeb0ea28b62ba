#!/usr/bin/env python3
"""The CDK app: `cdk synth|deploy -c env=NAME` (local, dev, staging, prod; default dev)."""

from __future__ import annotations

import sys
from pathlib import Path

import aws_cdk as cdk

from pipeline_contract import stack_name
from stacks.config import ConfigError, load_config, with_overrides
from stacks.nag import add_nag_packs
from stacks.pipeline_stack import PipelineStack
from stacks.stateful_stack import StatefulStack
from stacks.user_code import UserCodeError, inspect_user_code, resolve_directory

APP_DIR = Path(__file__).resolve().parent


def build_app(app: cdk.App) -> cdk.App:
    context = app.node.try_get_context
    config = with_overrides(
        load_config(context("env")),
        alarm_email=context("alarmEmail"),
        critical_email=context("criticalEmail"),
        warning_email=context("warningEmail"),
        account=context("account"),
        user_code=context("userCode"),
        event_bus=context("eventBus"),
        compliance=context("compliance"),
    )
    user_code = inspect_user_code(resolve_directory(config.user_code, app_dir=APP_DIR))
    env = cdk.Environment(account=config.account, region=config.region)
    stateful = StatefulStack(
        app,
        stack_name(config.name, "Stateful"),
        config=config,
        env=env,
        synthesizer=cdk.DefaultStackSynthesizer(
            generate_bootstrap_version_rule=config.bootstrap_version_rule
        ),
        description=f"resilient-pipeline ({config.name}): job table and data bucket",
    )
    pipeline = PipelineStack(
        app,
        stack_name(config.name, "Pipeline"),
        config=config,
        job_table_name_export=stateful.job_table_name_export,
        data_bucket_name_export=stateful.data_bucket_name_export,
        job_table_stream_arn_export=stateful.job_table_stream_arn_export,
        key_arn_export=stateful.key_arn_export,
        user_code=user_code,
        env=env,
        synthesizer=cdk.DefaultStackSynthesizer(
            generate_bootstrap_version_rule=config.bootstrap_version_rule
        ),
        description=f"resilient-pipeline ({config.name}): ingest, segmented-job state machine, alarms",
    )
    pipeline.add_stack_dependency(stateful)
    for key, value in config.tags.items():
        cdk.Tags.of(app).add(key, value)
    add_nag_packs(app, strict=config.compliance.strict)
    return app


def main() -> None:
    app = cdk.App()
    try:
        build_app(app)
    except (ConfigError, UserCodeError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    app.synth()


if __name__ == "__main__":
    main()
