"""Config `triggers`: S3's Object Created events through EventBridge onto the ingest queue, granted exactly,
with no custom resource (the local cloud cannot run CDK's bucket-notifications handler)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from stacks.config import DATA_BUCKET, ConfigError, Location, LocationsConfig, TriggerConfig, load_config
from tests.infra.conftest import Synthesized, synthesize
from tests.infra.template_tools import render, resources

DATA = "<import:ResilientPipeline-{env}-Stateful-DataBucketName>"


def _trigger_rules(synth: Synthesized) -> list[dict[str, Any]]:
    rules = resources(synth.pipeline, "AWS::Events::Rule").values()
    return [r["Properties"] for r in rules if r["Properties"]["EventPattern"]["source"] == ["aws.s3"]]


def _queue_id(synth: Synthesized, *, dead_letter: bool) -> str:
    queues = resources(synth.pipeline, "AWS::SQS::Queue")
    return next(k for k in queues if k.startswith("IngestQueue") and ("DeadLetter" in k) == dead_letter)


def _ingest_variables(synth: Synthesized) -> dict[str, Any]:
    functions = resources(synth.pipeline, "AWS::Lambda::Function").values()
    ingest = next(f for f in functions if f["Properties"]["Handler"] == "handlers.ingest.handler")
    variables: dict[str, Any] = ingest["Properties"]["Environment"]["Variables"]
    return variables


def test_local_objects_under_incoming_become_passthrough_jobs(synthesized: dict[str, Synthesized]) -> None:
    synth = synthesized["local"]
    (rule,) = _trigger_rules(synth)
    pattern = rule["EventPattern"]
    assert pattern["detail-type"] == ["Object Created"]
    assert render(pattern["detail"]["bucket"]["name"][0]) == DATA.format(env="local")
    assert pattern["detail"]["object"]["key"] == [{"prefix": "incoming/"}]
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [_queue_id(synth, dead_letter=False), "Arn"]}
    assert target["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": [_queue_id(synth, dead_letter=True), "Arn"]}
    assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 86400, "MaximumRetryAttempts": 185}
    triggers = json.loads(render(_ingest_variables(synth)["TRIGGERS"]))
    assert triggers == [
        {
            "bucket": DATA.format(env="local"),
            "prefix": "incoming/",
            "suffix": "",
            "transform": "passthrough",
            "transform_options": {},
            "compression": "auto",
        }
    ]
    # S3 sends to EventBridge from the bucket's own configuration: no custom resource anywhere.
    (bucket,) = resources(synth.stateful, "AWS::S3::Bucket").values()
    assert bucket["Properties"]["NotificationConfiguration"] == {
        "EventBridgeConfiguration": {"EventBridgeEnabled": True}
    }
    for template in (synth.stateful, synth.pipeline):
        assert not [r for r in template["Resources"].values() if r["Type"].startswith("Custom::")]


def test_the_queues_accept_exactly_the_trigger_rules(synthesized: dict[str, Synthesized]) -> None:
    synth = synthesized["local"]
    rule_ids = [k for k, r in resources(synth.pipeline, "AWS::Events::Rule").items() if "ObjectTriggers" in k]
    policies = resources(synth.pipeline, "AWS::SQS::QueuePolicy").values()
    granted = [
        (statement, policy["Properties"]["Queues"])
        for policy in policies
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if statement.get("Sid") == "ObjectTriggersSend"
    ]
    assert len(granted) == 2  # the ingest queue, and its DLQ for what cannot be delivered
    assert sorted(queue[0]["Ref"] for _, queue in granted) == sorted(
        [_queue_id(synth, dead_letter=False), _queue_id(synth, dead_letter=True)]
    )
    for statement, _ in granted:
        assert statement["Principal"] == {"Service": "events.amazonaws.com"}
        assert statement["Effect"] == "Allow" and statement["Action"] == "sqs:SendMessage"
        assert statement["Condition"]["ArnEquals"]["aws:SourceArn"] == [
            {"Fn::GetAtt": [i, "Arn"]} for i in rule_ids
        ]
        assert statement["Condition"]["StringEquals"] == {"aws:SourceAccount": "123456789012"}


def test_without_triggers_nothing_is_wired(synthesized: dict[str, Synthesized]) -> None:
    synth = synthesized["dev"]
    assert _trigger_rules(synth) == []
    assert render(_ingest_variables(synth)["TRIGGERS"]) == "[]"
    (bucket,) = resources(synth.stateful, "AWS::S3::Bucket").values()
    assert "NotificationConfiguration" not in bucket["Properties"]


def test_a_prefix_and_a_suffix_make_one_wildcard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import stacks.config as config_module

    dev = load_config("dev")
    with_trigger = replace(
        dev, triggers=(TriggerConfig(prefix="drop/a*b/", suffix=".jsonl.gz", transform="compact", shards=1),)
    )
    monkeypatch.setitem(config_module._CONFIGS, "dev", with_trigger)
    synth = synthesize("dev", tmp_path)
    (rule,) = _trigger_rules(synth)
    assert rule["EventPattern"]["detail"]["object"]["key"] == [{"wildcard": "drop/a\\*b/*.jsonl.gz"}]
    assert json.loads(render(_ingest_variables(synth)["TRIGGERS"]))[0]["shards"] == 1


@pytest.mark.parametrize(
    ("trigger", "locations", "message"),
    [
        (
            TriggerConfig(bucket="partner", prefix="x/"),
            LocationsConfig(),
            "triggers[0] (s3://partner/x/*) is outside locations.inputs",
        ),
        (
            TriggerConfig(prefix="out/"),
            LocationsConfig(),
            "overlaps the output location s3://DATA_BUCKET/out/: every part a job writes would start another job",
        ),
        (TriggerConfig(prefix="", suffix=".gz"), LocationsConfig(), "overlaps the output location"),
        (
            TriggerConfig(prefix="in/", compression="bz2"),
            LocationsConfig(),
            "triggers[0].compression is 'bz2'",
        ),
        (
            TriggerConfig(prefix="in/"),
            LocationsConfig(inputs=(Location(DATA_BUCKET, "other/"),)),
            "is outside locations.inputs",
        ),
    ],
)
def test_a_trigger_that_could_not_work_fails_synth(
    trigger: TriggerConfig, locations: LocationsConfig, message: str
) -> None:
    with pytest.raises(ConfigError, match="triggers") as raised:
        replace(load_config("dev"), triggers=(trigger,), locations=locations).validate()
    assert message in str(raised.value)


def test_a_trigger_naming_an_unknown_transform_fails_synth(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import stacks.config as config_module

    dev = load_config("dev")
    monkeypatch.setitem(
        config_module._CONFIGS, "dev", replace(dev, triggers=(TriggerConfig(prefix="in/", transform="nope"),))
    )
    with pytest.raises(ValueError, match="config triggers name transforms that are not registered: nope"):
        synthesize("dev", tmp_path)
