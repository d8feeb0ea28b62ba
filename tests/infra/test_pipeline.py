"""Invariants of the pipeline stack: queues, functions, event source, outputs, per environment."""

from __future__ import annotations

from typing import Any

from stacks import rules
from tests.infra.conftest import Synthesized
from tests.infra.template_tools import queue_is_encrypted, render, resources


def _queues(synth: Synthesized) -> tuple[dict[str, Any], dict[str, Any]]:
    queues = resources(synth.pipeline, "AWS::SQS::Queue")
    ingest = next(q for q in queues.values() if "RedrivePolicy" in q["Properties"])
    dlq = next(q for q in queues.values() if "RedriveAllowPolicy" in q["Properties"])
    return ingest["Properties"], dlq["Properties"]


def _function(synth: Synthesized, handler: str) -> dict[str, Any]:
    return next(
        f["Properties"]
        for f in resources(synth.pipeline, "AWS::Lambda::Function").values()
        if f["Properties"]["Handler"] == handler
    )


def test_every_queue_encrypted_and_tls_only(synth: Synthesized) -> None:
    queues = resources(synth.pipeline, "AWS::SQS::Queue")
    assert len(queues) == 4  # ingest, its DLQ, the watchdog's DLQ, the job events' DLQ
    assert all(
        queue_is_encrypted(q["Properties"], env=synth.env, strict=synth.strict) for q in queues.values()
    )
    policies = resources(synth.pipeline, "AWS::SQS::QueuePolicy")
    assert len(policies) == 4
    for policy in policies.values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        deny = [s for s in statements if s["Effect"] == "Deny"]
        assert [s["Condition"] for s in deny] == [{"Bool": {"aws:SecureTransport": "false"}}]
        # The only Allow: EventBridge delivering the watchdog rule's undeliverable events.
        for allow in (s for s in statements if s["Effect"] == "Allow"):
            assert allow["Principal"] == {"Service": "events.amazonaws.com"}
            assert allow["Action"] == "sqs:SendMessage"


def test_redrive_to_dlq_after_configured_receives(synth: Synthesized) -> None:
    ingest, dlq = _queues(synth)
    assert ingest["RedrivePolicy"]["maxReceiveCount"] == synth.config.ingest.max_receive_count
    assert 1 <= ingest["RedrivePolicy"]["maxReceiveCount"] <= 10
    assert dlq["MessageRetentionPeriod"] == 14 * 24 * 3600
    # Only the ingest queue may redrive into the DLQ.
    allow = dlq["RedriveAllowPolicy"]
    assert allow["redrivePermission"] == "byQueue"
    (source,) = allow["sourceQueueArns"]
    assert render(source).endswith(f":resilient-pipeline-{synth.env}-ingest")
    assert ingest["QueueName"] == f"resilient-pipeline-{synth.env}-ingest"


def test_visibility_timeout_covers_six_ingest_attempts(synth: Synthesized) -> None:
    ingest, _ = _queues(synth)
    function = _function(synth, "handlers.ingest.handler")
    window = synth.config.ingest.max_batching_window_seconds
    assert ingest["VisibilityTimeout"] >= 6 * function["Timeout"] + window
    assert not rules.check_visibility_timeout(
        visibility_timeout_seconds=ingest["VisibilityTimeout"],
        function_timeout_seconds=function["Timeout"],
        batching_window_seconds=window,
    )


def test_ingest_event_source_reports_partial_batch_failures(synth: Synthesized) -> None:
    (mapping,) = [
        m["Properties"]
        for m in resources(synth.pipeline, "AWS::Lambda::EventSourceMapping").values()
        if "StartingPosition" not in m["Properties"]  # the SQS one (the job events' reads a stream)
    ]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BatchSize"] == synth.config.ingest.batch_size
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": synth.config.ingest.max_concurrency}


def test_tracing_in_the_functions_is_a_switch_per_environment(synth: Synthesized) -> None:
    """Config `powertools_tracer` decides, per environment, whether the handlers construct Powertools' Tracer
    (and import the X-Ray SDK at every cold start, see benchmarks/README.md) or none; local has it off."""
    expected = "false" if synth.config.powertools_tracer else "true"
    for handler in ("ingest", "worker", "failures", "events"):
        variables = _function(synth, f"handlers.{handler}.handler")["Environment"]["Variables"]
        assert variables["POWERTOOLS_TRACE_DISABLED"] == expected, handler
    assert synth.config.powertools_tracer is (synth.env != "local")


def test_functions_have_resilient_defaults(synth: Synthesized) -> None:
    for handler, config in (
        ("handlers.ingest.handler", synth.config.ingest.function),
        ("handlers.worker.handler", synth.config.worker.function),
        ("handlers.failures.handler", synth.config.failures),
        ("handlers.events.handler", synth.config.events.function),
    ):
        function = _function(synth, handler)
        assert function["Architectures"] == ["arm64"]
        assert function["Runtime"] == "python3.14"
        assert function["TracingConfig"] == {"Mode": "Active"}
        assert function["MemorySize"] == config.memory_mb
        assert function["Timeout"] == config.timeout_seconds
        assert function.get("ReservedConcurrentExecutions") == config.reserved_concurrency
        assert function["LoggingConfig"]["LogFormat"] == "JSON"
        assert function["RecursiveLoop"] == "Terminate"
        log_group_id = function["LoggingConfig"]["LogGroup"]["Ref"]
        retention = synth.pipeline["Resources"][log_group_id]["Properties"]["RetentionInDays"]
        assert retention == synth.config.log_retention_days


def test_powertools_comes_from_the_pinned_public_layer_except_locally(synth: Synthesized) -> None:
    for handler in ("handlers.ingest.handler", "handlers.worker.handler", "handlers.failures.handler"):
        layers = [render(layer) for layer in _function(synth, handler).get("Layers", [])]
        if synth.env == "local":
            # moto refuses layer versions it does not hold: the stack deploys a stand-in built from the
            # lock's Powertools pins, which the local cloud puts on the function's path as Lambda does.
            (layer,) = layers
            resource = synth.pipeline["Resources"][layer.strip("<>")]
            assert resource["Type"] == "AWS::Lambda::LayerVersion"
            assert "stand-in" in resource["Properties"]["Description"]
        else:
            (layer,) = layers
            assert layer.endswith(
                f":017000801446:layer:AWSLambdaPowertoolsPythonV3-python314-arm64:{synth.config.powertools_layer_version}"
            )


def test_worker_environment_carries_the_time_guard_knobs(synth: Synthesized) -> None:
    variables = _function(synth, "handlers.worker.handler")["Environment"]["Variables"]
    assert variables["SAFETY_MARGIN_MS"] == str(synth.config.worker.safety_margin_ms)
    assert variables["MAX_CHUNKS_PER_SEGMENT"] == str(synth.config.worker.max_chunks_per_segment)
    ingest = _function(synth, "handlers.ingest.handler")["Environment"]["Variables"]
    assert {
        "DLQ_URL",
        "WORKER_VERSION_ARN",
        "FAILURES_VERSION_ARN",
        "STATE_MACHINE_VERSION_ARN",
        "CODE_DIGEST",
        "JOB_TABLE_NAME",
        "INPUT_LOCATIONS",
        "OUTPUT_LOCATION",
        "MAX_REJECT_RATIO",
        "JOB_TTL_DAYS",
    } <= set(ingest)


def test_stack_outputs_the_cli_reads(synth: Synthesized) -> None:
    assert set(synth.pipeline["Outputs"]) >= {
        "IngestQueueUrl",
        "DeadLetterQueueUrl",
        "StateMachineArn",
        "AlarmTopicArn",
        "WarningAlarmTopicArn",
    }
    assert set(synth.stateful["Outputs"]) >= {"JobTableName", "DataBucketName"}


def test_local_synthesizes_without_the_bootstrap_version_rule(synth: Synthesized) -> None:
    for template in (synth.stateful, synth.pipeline):
        has_rule = "BootstrapVersion" in template.get("Parameters", {})
        assert has_rule is (synth.env != "local")
