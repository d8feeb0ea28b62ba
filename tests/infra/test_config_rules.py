"""Each rule that fails synth, with the message a person sees."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import aws_cdk as cdk
import pytest

from app import build_app
from stacks.config import ConfigError, EnvironmentConfig, load_config, with_overrides
from tests.infra.conftest import cdk_json_context


def _invalid(config: EnvironmentConfig) -> str:
    with pytest.raises(ConfigError) as raised:
        config.validate()
    return str(raised.value)


@pytest.mark.parametrize("name", ["local", "dev", "staging", "prod"])
def test_shipped_configs_are_valid(name: str) -> None:
    assert load_config(name).name == name


def test_default_environment_is_dev() -> None:
    assert load_config(None).name == "dev"


def test_unknown_environment_lists_the_valid_ones() -> None:
    with pytest.raises(
        ConfigError, match=r"unknown environment 'qa': valid environments are local, dev, staging, prod"
    ):
        load_config("qa")


def test_unknown_environment_fails_the_app(tmp_path: Path) -> None:
    app = cdk.App(outdir=str(tmp_path), context={**cdk_json_context(), "env": "production"})
    with pytest.raises(ConfigError, match="valid environments are local, dev, staging, prod"):
        build_app(app)


def test_visibility_timeout_rule_names_both_numbers() -> None:
    dev = load_config("dev")
    bad = replace(dev, ingest=replace(dev.ingest, visibility_timeout_seconds=100))
    message = _invalid(bad)
    assert "visibility timeout is 100s but must be at least 181s" in message
    assert "6 x ingest function timeout 30s + batching window 1s" in message


def test_segment_budget_over_history_quota() -> None:
    dev = load_config("dev")
    bad = replace(dev, state_machine=replace(dev.state_machine, segment_budget=2000))
    message = _invalid(bad)
    assert "state_machine.segment_budget is 2000" in message
    assert "over 20000 (80% of the 25000-event quota)" in message
    # 46 events a shard segment: 9 of its own, 10 of its round, 6 transient + 3 crash retries of 3 events;
    # (20000 - 20) // 46 = 434 segments, of which dev's 32 shards may all run in the last round.
    assert (
        "46 history events per shard segment" in message
        and "(2000 - 1 + 32 shards in the last round)" in message
    )
    assert "use at most 403" in message


def test_more_shards_leave_fewer_segments_per_execution() -> None:
    dev = load_config("dev")
    wide = replace(dev, state_machine=replace(dev.state_machine, max_shards=100, max_concurrent_shards=32))
    message = _invalid(wide)
    assert "state_machine.segment_budget is 360" in message and "use at most 335" in message
    none_fits = replace(
        dev, state_machine=replace(dev.state_machine, max_shards=1000, max_concurrent_shards=32)
    )
    assert "(none fits: lower state_machine.max_shards or the retries)" in _invalid(none_fits)


def test_shard_concurrency_stays_within_the_map_and_the_worker_reservation() -> None:
    prod = load_config("prod")
    assert (prod.state_machine.max_shards, prod.state_machine.max_concurrent_shards) == (64, 32)
    too_wide = replace(prod, state_machine=replace(prod.state_machine, max_concurrent_shards=50))
    assert "state_machine.max_concurrent_shards is 50: must be within 1..40" in _invalid(too_wide)
    starved = replace(
        prod, worker=replace(prod.worker, function=replace(prod.worker.function, reserved_concurrency=10))
    )
    assert "state_machine.max_concurrent_shards is 32: must be within 1..10" in _invalid(starved)


def test_max_receive_count_never_above_ten() -> None:
    dev = load_config("dev")
    assert "ingest.max_receive_count is 15: must be within 1..10" in _invalid(
        replace(dev, ingest=replace(dev.ingest, max_receive_count=15))
    )


def test_log_retention_must_be_a_cloudwatch_value() -> None:
    assert "log_retention_days is 10: must be one of 1, 3, 5, 7, 14" in _invalid(
        replace(load_config("dev"), log_retention_days=10)
    )


def test_worker_safety_margin_must_leave_time_to_work() -> None:
    dev = load_config("dev")
    message = _invalid(replace(dev, worker=replace(dev.worker, safety_margin_ms=200_000)))
    assert "worker.safety_margin_ms is 200000: must be above 0 and below half the worker timeout" in message


def test_prod_must_protect_stateful_resources() -> None:
    assert "protect_stateful is off in prod" in _invalid(replace(load_config("prod"), protect_stateful=False))


def test_dlq_must_outlive_the_ingest_queue_retention() -> None:
    assert "dlq_retention_days (3) is shorter than the ingest queue's retention (4)" in _invalid(
        replace(load_config("dev"), dlq_retention_days=3)
    )


def test_reserved_concurrency_below_poller_concurrency() -> None:
    prod = load_config("prod")
    bad = replace(
        prod, ingest=replace(prod.ingest, function=replace(prod.ingest.function, reserved_concurrency=5))
    )
    assert "ingest.function.reserved_concurrency (5) is below ingest.max_concurrency (20)" in _invalid(bad)


def test_large_batches_need_a_batching_window() -> None:
    local = load_config("local")
    bad = replace(local, ingest=replace(local.ingest, batch_size=50))
    assert "ingest.batch_size is 50: above 10 SQS needs max_batching_window_seconds >= 1" in _invalid(bad)


def test_all_problems_reported_at_once() -> None:
    dev = load_config("dev")
    bad = replace(dev, log_retention_days=10, ingest=replace(dev.ingest, max_receive_count=0))
    message = _invalid(bad)
    assert "log_retention_days is 10" in message
    assert "max_receive_count is 0" in message


def test_overrides_are_validated_and_applied() -> None:
    config = with_overrides(load_config("prod"), alarm_email="oncall@example.com", account="111122223333")
    assert config.alarms.critical_email == config.alarms.warning_email == "oncall@example.com"
    assert config.account == "111122223333"


def test_an_email_per_severity_overrides_the_one_for_both() -> None:
    config = with_overrides(
        load_config("prod"), alarm_email="team@example.com", critical_email="pager@example.com"
    )
    assert (config.alarms.critical_email, config.alarms.warning_email) == (
        "pager@example.com",
        "team@example.com",
    )
    only_warnings = with_overrides(load_config("dev"), warning_email="team@example.com")
    assert (only_warnings.alarms.critical_email, only_warnings.alarms.warning_email) == (
        None,
        "team@example.com",
    )


def test_alarm_settings_are_checked() -> None:
    dev = load_config("dev")
    bad = replace(
        dev, alarms=replace(dev.alarms, error_rate_percent=0, sustained_datapoints=6, sustained_periods=5)
    )
    message = _invalid(bad)
    assert "alarms.error_rate_percent is 0: must be within 0..100" in message
    assert "alarms.sustained_datapoints is 6: must be within 1..5" in message


def test_configs_are_frozen() -> None:
    config = load_config("dev")
    with pytest.raises(AttributeError):
        config.name = "prod"  # type: ignore[misc]
