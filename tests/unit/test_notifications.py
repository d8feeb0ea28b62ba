"""Object notifications (S3 Event Notifications, EventBridge Object Created) as jobs: one job per object
version, whatever the deliveries."""

from __future__ import annotations

import json

from jobcore.notifications import (
    CreatedObject,
    Trigger,
    notification_of,
    parse_triggers,
    request_for,
    trigger_for,
)
from pipeline_contract import JOB_ID


def s3_record(key: str, *, sequencer: str = "0055AED6DCD90281E5", version: str | None = None) -> dict:
    obj = {"key": key, "size": 10, "eTag": "d41d8cd98f00b204e9800998ecf8427e", "sequencer": sequencer}
    if version:
        obj["versionId"] = version
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": "data-bucket"}, "object": obj},
    }


def eventbridge(key: str, *, sequencer: str = "617f08299329d189", version: str | None = None) -> dict:
    obj = {"key": key, "size": 5, "etag": "b1946ac92492d2347c6235b4d2611184", "sequencer": sequencer}
    if version:
        obj["version-id"] = version
    return {
        "version": "0",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "detail": {"version": "0", "bucket": {"name": "data-bucket"}, "object": obj, "reason": "PutObject"},
    }


def test_s3_records_each_name_an_object_with_the_key_decoded() -> None:
    body = json.dumps({"Records": [s3_record("incoming/a+b%2Bc.jsonl"), s3_record("incoming/two.gz")]})
    found = notification_of(body)
    assert found is not None
    assert [c.key for c in found.created] == ["incoming/a b+c.jsonl", "incoming/two.gz"]


def test_a_test_event_and_other_records_are_ignored() -> None:
    test = notification_of(json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b"}))
    assert test is not None and test.created == () and test.ignored == 1
    removed = dict(s3_record("incoming/x"), eventName="ObjectRemoved:Delete")
    found = notification_of(json.dumps({"Records": [removed, s3_record("incoming/y")]}))
    assert found is not None and len(found.created) == 1 and found.ignored == 1


def test_an_eventbridge_event_names_its_object() -> None:
    found = notification_of(json.dumps(eventbridge("incoming/a b.jsonl", version="v1")))
    assert found is not None
    assert found.created == (
        CreatedObject(
            bucket="data-bucket",
            key="incoming/a b.jsonl",
            etag="b1946ac92492d2347c6235b4d2611184",
            version_id="v1",
            sequencer="617f08299329d189",
        ),
    )


def test_job_requests_are_not_notifications() -> None:
    assert notification_of(json.dumps({"input": "s3://b/k", "Records": "x"})) is None
    assert notification_of("not json") is None


def test_job_ids_are_deterministic_per_object_version_and_valid() -> None:
    a = CreatedObject(bucket="b", key="k", sequencer="01")
    assert a.job_id == CreatedObject(bucket="b", key="k", sequencer="01").job_id
    assert a.job_id != CreatedObject(bucket="b", key="k", sequencer="02").job_id
    assert a.job_id != CreatedObject(bucket="b", key="k2", sequencer="01").job_id
    versioned = CreatedObject(bucket="b", key="k", version_id="v1", sequencer="01")
    assert versioned.job_id != CreatedObject(bucket="b", key="k", version_id="v2", sequencer="01").job_id
    assert all(JOB_ID.match(o.job_id) for o in (a, versioned))


def test_the_request_pins_what_the_notification_names() -> None:
    trigger = Trigger(bucket="b", prefix="incoming/", transform="passthrough", shards=None)
    unversioned = json.loads(
        request_for(CreatedObject(bucket="b", key="incoming/k", etag="e1", sequencer="1"), trigger)
    )
    assert unversioned["input_etag"] == "e1" and "input_version" not in unversioned
    assert unversioned["transform"] == "passthrough" and unversioned["input"] == "s3://b/incoming/k"
    versioned = json.loads(
        request_for(CreatedObject(bucket="b", key="incoming/k", etag="e1", version_id="v"), trigger)
    )
    assert versioned["input_version"] == "v" and "input_etag" not in versioned


def test_triggers_match_bucket_prefix_and_suffix() -> None:
    triggers = parse_triggers(
        json.dumps(
            [
                {"bucket": "b", "prefix": "in/", "suffix": ".gz", "transform": "compact"},
                {"bucket": "b", "prefix": "in/"},
            ]
        )
    )
    assert trigger_for(CreatedObject(bucket="b", key="in/x.gz"), triggers) == triggers[0]
    assert trigger_for(CreatedObject(bucket="b", key="in/x.jsonl"), triggers) == triggers[1]
    assert trigger_for(CreatedObject(bucket="other", key="in/x.gz"), triggers) is None
