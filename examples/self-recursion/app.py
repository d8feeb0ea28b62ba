#!/usr/bin/env python3
"""A tiny CDK app: the seed's anti-pattern (an SQS-triggered function that re-sends a continuation to its
own queue) with this project's defaults and its RecursiveInvocationsDropped alarm.

    cdk deploy --app "python examples/self-recursion/app.py" -c dataBucket=NAME   (into the local cloud)

`make demo-recursion` deploys it beside the pipeline and runs the same long job through both.
"""

from __future__ import annotations

import sys
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from stacks.config import load_config
from stacks.constructs.alarms import build_alarm, recursive_loop_spec
from stacks.constructs.pipeline_function import PipelineFunction

STACK_NAME = "SelfRecursionExample"
FUNCTION_TIMEOUT_SECONDS = 5
# Short, so that the dropped continuation reaches the DLQ within seconds (it is received, not delivered,
# and becomes visible again twice before the redrive policy moves it).
VISIBILITY_TIMEOUT_SECONDS = 6
MAX_RECEIVE_COUNT = 2


class SelfRecursionStack(cdk.Stack):
    def __init__(self, scope: Construct, construct_id: str, *, data_bucket: str, **kwargs: object) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        dead_letters = sqs.Queue(self, "DeadLetters", enforce_ssl=True)
        queue = sqs.Queue(
            self,
            "Continuations",
            enforce_ssl=True,
            visibility_timeout=cdk.Duration.seconds(VISIBILITY_TIMEOUT_SECONDS),
            dead_letter_queue=sqs.DeadLetterQueue(queue=dead_letters, max_receive_count=MAX_RECEIVE_COUNT),
        )
        function = PipelineFunction(
            self,
            "Continuation",
            handler="continuation.handler",
            code=lambda_.Code.from_asset(str(Path(__file__).parent / "function")),
            description="the anti-pattern: re-sends the rest of its job to its own queue",
            memory_mb=256,
            timeout_seconds=FUNCTION_TIMEOUT_SECONDS,
            reserved_concurrency=None,
            service_name="self-recursion",
            environment={"QUEUE_URL": queue.queue_url},
            log_retention_days=1,
            powertools_layer_version=None,
            powertools_tracer=False,
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        function.function.add_event_source(event_sources.SqsEventSource(queue, batch_size=1))
        queue.grant_send_messages(function.role)
        s3.Bucket.from_bucket_name(self, "Data", data_bucket).grant_read(function.role, "in/*")
        # The project's own alarm for a loop Lambda stopped, as the pipeline's functions have it.
        build_alarm(
            self, recursive_loop_spec("Continuation", function.function, period=cdk.Duration.minutes(1))
        )
        cdk.CfnOutput(self, "QueueUrl", value=queue.queue_url)
        cdk.CfnOutput(self, "DeadLettersUrl", value=dead_letters.queue_url)
        cdk.CfnOutput(self, "FunctionName", value=function.function.function_name)


def main() -> None:
    app = cdk.App()
    config = load_config("local")
    data_bucket = app.node.try_get_context("dataBucket")
    if not data_bucket:
        print("error: -c dataBucket=NAME is required (the pipeline's data bucket)", file=sys.stderr)
        sys.exit(1)
    SelfRecursionStack(
        app,
        STACK_NAME,
        data_bucket=data_bucket,
        env=cdk.Environment(account=config.account, region=config.region),
        synthesizer=cdk.DefaultStackSynthesizer(generate_bootstrap_version_rule=False),
    )
    app.synth()


if __name__ == "__main__":
    main()
