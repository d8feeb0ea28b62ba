"""S3 object notifications as S3 sends them, for moto 5.2.5, and a bucket's `NotificationConfiguration`
applied from CloudFormation.

What moto gets wrong, and what a consumer of notifications trips over:
- its S3 Event Notification records carry no `sequencer` and no `versionId`: two puts of one key look like
  one delivery twice (a consumer deduplicating on key and sequencer, as AWS advises, drops the second);
  and their keys encode `/` as `%2F` (S3 leaves it);
- its EventBridge "Object Created" events carry a constant sequencer ("617f08299329d189") for every object,
  name the ETag `eTag` where S3 writes `etag`, give `version-id` null on an unversioned bucket (S3 leaves it
  out), and are offered to the rules of every event bus (S3 sends to the account's default bus only);
- its CloudFormation ignores `AWS::S3::Bucket`'s `NotificationConfiguration`, so a bucket deployed with
  EventBridge enabled (or a queue configuration) sends nothing.

The sequencer grows with every event (nanoseconds since the epoch, never repeated in this process, so it
keeps growing across a restart of the local cloud), in upper-case hex as S3 writes it.

How it models AWS, and where it differs: docs/local-cloud-internals.md#localcloudservicess3notificationspy
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote_plus

from moto.s3 import notifications as moto_notifications
from moto.s3.models import FakeBucket, s3_backends
from moto.utilities.utils import get_partition

LOG = logging.getLogger(__name__)
Undo = Callable[[], None]

_lock = threading.Lock()
_last = 0


def next_sequencer() -> str:
    """A sequencer greater than every one before it (S3: "a greater value means a later event")."""
    global _last  # noqa: PLW0603 - one counter per process, as S3 keeps one per key
    with _lock:
        _last = max(_last + 1, time.time_ns())
        return f"{_last:018X}"


def _version_of(key: Any) -> str | None:
    version = getattr(key, "version_id", None)
    return None if version in (None, "null") else str(version)


def _s3_event(event_name: str, bucket: Any, key: Any, notification_id: str) -> dict[str, Any]:
    event = _original_s3_event(event_name, bucket, key, notification_id)
    obj = event["Records"][0]["s3"]["object"]
    # URL-encoded as S3 does it: a space is `+`, a `/` stays (moto encoded it as %2F).
    obj["key"] = quote_plus(key.name, safe="/")
    obj["sequencer"] = next_sequencer()
    version = _version_of(key)
    if version:
        obj["versionId"] = version
    return event


def _send_event_bridge_message(account_id: str, bucket: Any, event_name: str, key: Any) -> None:
    try:
        from moto.events.models import events_backends  # noqa: PLC0415 - as moto imports it
        from moto.events.utils import _BASE_EVENT_MESSAGE  # noqa: PLC0415

        event = copy.deepcopy(_BASE_EVENT_MESSAGE)
        event["detail-type"] = moto_notifications._detail_type(event_name)
        event["source"] = "aws.s3"
        event["account"] = account_id
        event["time"] = time.time()
        event["region"] = bucket.region_name
        event["resources"] = [bucket.arn]
        obj: dict[str, Any] = {"key": key.name, "size": key.size, "etag": key.etag.replace('"', "")}
        version = _version_of(key)
        if version:
            obj["version-id"] = version
        obj["sequencer"] = next_sequencer()
        event["detail"] = {
            "version": "0",
            "bucket": {"name": bucket.name},
            "object": obj,
            "request-id": "LOCALCLOUD00000",
            "requester": account_id,
            "source-ip-address": "127.0.0.1",
            "reason": _REASONS.get(event_name, event_name.split(":")[1]),
        }
        bus = events_backends[account_id][bucket.region_name].event_buses.get("default")
        if bus is None:
            return
        for rule in list(bus.rules.values()):
            rule.send_to_targets(event, transform_input=False)
    except Exception:
        # Asynchronous on AWS: a failed notification never fails the request that caused it.
        LOG.exception("EventBridge notification for s3://%s/%s not sent", bucket.name, key.name)


# The `reason` S3 gives an Object Created event, by the API call that created the object.
_REASONS = {
    "s3:ObjectCreated:Put": "PutObject",
    "s3:ObjectCreated:Post": "POST Object",
    "s3:ObjectCreated:Copy": "CopyObject",
    "s3:ObjectCreated:CompleteMultipartUpload": "CompleteMultipartUpload",
}


def api_notification_configuration(properties: dict[str, Any]) -> dict[str, Any] | None:
    """CloudFormation's `NotificationConfiguration` in the shape moto's PutBucketNotificationConfiguration
    keeps (None: no configuration). EventBridge and queue configurations; topics and functions are kept
    too (moto delivers them)."""
    config = properties.get("NotificationConfiguration")
    if not isinstance(config, dict):
        return None
    shaped: dict[str, Any] = {}
    event_bridge = config.get("EventBridgeConfiguration") or {}
    if str(event_bridge.get("EventBridgeEnabled", "")).lower() == "true":
        shaped["EventBridgeConfiguration"] = {}
    for cfn_name, api_name, arn_name in (
        ("QueueConfigurations", "QueueConfiguration", "Queue"),
        ("TopicConfigurations", "TopicConfiguration", "Topic"),
        ("LambdaConfigurations", "CloudFunctionConfiguration", "CloudFunction"),
    ):
        entries = []
        for index, entry in enumerate(config.get(cfn_name) or []):
            shaped_entry: dict[str, Any] = {
                "Id": f"cfn-{index}",
                arn_name: entry.get(arn_name if arn_name != "CloudFunction" else "Function"),
                "Event": [entry["Event"]],
            }
            rules = ((entry.get("Filter") or {}).get("S3Key") or {}).get("Rules") or []
            if rules:
                shaped_entry["Filter"] = {
                    "S3Key": {"FilterRule": [{"Name": r["Name"], "Value": r["Value"]} for r in rules]}
                }
            entries.append(shaped_entry)
        if entries:
            shaped[api_name] = entries
    return shaped or None


def _apply_notifications(bucket: Any, properties: dict[str, Any], account_id: str, region_name: str) -> None:
    backend = s3_backends[account_id][get_partition(region_name)]
    shaped = api_notification_configuration(properties)
    if shaped is None and bucket.notification_configuration is None:
        return
    backend.put_bucket_notification_configuration(bucket.name, shaped or {})
    LOG.info("bucket %s: notification configuration %s", bucket.name, sorted(shaped or {}))


def install() -> Undo:
    """Patch moto's notifications and its bucket model; returns a function that restores moto."""
    global _original_s3_event  # noqa: PLW0603 - the function this module wraps
    original_s3_event = moto_notifications._get_s3_event
    original_event_bridge = moto_notifications._send_event_bridge_message
    original_create = FakeBucket.__dict__["create_from_cloudformation_json"]
    original_update = FakeBucket.__dict__["update_from_cloudformation_json"]
    _original_s3_event = original_s3_event

    def create(
        cls: Any,
        resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> Any:
        bucket = original_create.__func__(
            cls, resource_name, cloudformation_json, account_id, region_name, **kwargs
        )
        _apply_notifications(bucket, cloudformation_json.get("Properties") or {}, account_id, region_name)
        return bucket

    def update(  # noqa: PLR0917 - moto's classmethod signature
        cls: Any,
        original_resource: Any,
        new_resource_name: str,
        cloudformation_json: Any,
        account_id: str,
        region_name: str,
    ) -> Any:
        bucket = original_update.__func__(
            cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name
        )
        _apply_notifications(bucket, cloudformation_json.get("Properties") or {}, account_id, region_name)
        return bucket

    moto_notifications._get_s3_event = _s3_event
    moto_notifications._send_event_bridge_message = _send_event_bridge_message
    FakeBucket.create_from_cloudformation_json = classmethod(create)  # type: ignore[assignment,method-assign]
    FakeBucket.update_from_cloudformation_json = classmethod(update)  # type: ignore[assignment,method-assign]

    def undo() -> None:
        moto_notifications._get_s3_event = original_s3_event
        moto_notifications._send_event_bridge_message = original_event_bridge
        FakeBucket.create_from_cloudformation_json = original_create  # type: ignore[method-assign]
        FakeBucket.update_from_cloudformation_json = original_update  # type: ignore[method-assign]

    return undo


_original_s3_event: Callable[..., dict[str, Any]] = moto_notifications._get_s3_event
