"""New objects become jobs: S3 Event Notifications and EventBridge "Object Created" events, read off the
ingest queue like any request.

A message on the ingest queue is a job request, or one of these notification shapes:
- S3 Event Notifications (`{"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
  "s3": {"bucket": {"name"}, "object": {"key" (URL-encoded), "size", "eTag", "versionId", "sequencer"}}}]}`);
  `s3:TestEvent` (what S3 sends when a notification configuration is saved) is ignored, as are records other
  than object creations;
- EventBridge (`{"source": "aws.s3", "detail-type": "Object Created", "detail": {"bucket": {"name"},
  "object": {"key", "size", "etag", "version-id", "sequencer"}}}`), as a rule targeting the queue sends it.

Each created object becomes one job, with the settings of the environment's first trigger (config
`triggers`) whose bucket, prefix and suffix it matches. Its `job_id` is derived from the bucket, the key and
the object's version (VersionId where the bucket is versioned, else the notification's sequencer, which
grows with every put of a key): a notification delivered twice is the same job (the ingest's duplicate
check), two puts of one key are two jobs. The job pins the version the notification names (VersionId, or
the ETag where there is none), so it processes the object that was put, never a later overwrite. An
object that matches no trigger is REJECTED, naming the triggers: nothing was configured to take it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

from jobcore.formats import AUTO, COMPRESSIONS
from pipeline_contract import DEFAULT_TRANSFORM

JOB_ID_PREFIX = "s3-"
# 40 hex characters of SHA-256: the job id stays within `^[A-Za-z0-9_-]{1,64}$`.
JOB_ID_HASH_CHARS = 40


@dataclass(frozen=True, kw_only=True)
class Trigger:
    """Objects in `bucket` whose key starts with `prefix` and ends with `suffix` become jobs with these
    settings (config `triggers`; the CDK app writes them into the ingest's environment)."""

    bucket: str
    prefix: str = ""
    suffix: str = ""
    transform: str = DEFAULT_TRANSFORM
    transform_options: dict[str, Any] = field(default_factory=dict)
    shards: int | None = None
    compression: str = AUTO

    def matches(self, bucket: str, key: str) -> bool:
        return bucket == self.bucket and key.startswith(self.prefix) and key.endswith(self.suffix)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}*{self.suffix}"


def parse_triggers(text: str) -> tuple[Trigger, ...]:
    """The ingest's TRIGGERS variable: a JSON list of triggers (`[]` for none)."""
    items = json.loads(text)
    if not isinstance(items, list):
        raise ValueError("must be a JSON list of triggers")
    triggers = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("bucket"), str):
            raise ValueError(f"a trigger needs a bucket: {item!r}")
        compression = item.get("compression", AUTO)
        if compression not in COMPRESSIONS:
            raise ValueError(f"trigger compression {compression!r} is not one of {', '.join(COMPRESSIONS)}")
        triggers.append(
            Trigger(
                bucket=item["bucket"],
                prefix=str(item.get("prefix", "")),
                suffix=str(item.get("suffix", "")),
                transform=str(item.get("transform", DEFAULT_TRANSFORM)),
                transform_options=dict(item.get("transform_options") or {}),
                shards=int(item["shards"]) if item.get("shards") is not None else None,
                compression=compression,
            )
        )
    return tuple(triggers)


@dataclass(frozen=True, kw_only=True)
class CreatedObject:
    """One object creation, as a notification names it."""

    bucket: str
    key: str
    etag: str | None = None
    version_id: str | None = None
    sequencer: str | None = None

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def job_id(self) -> str:
        """Deterministic: the same object version gives the same job, whoever delivers it how often."""
        version = self.version_id or ""
        # Without either (not what S3 sends), the content decides: the same bytes put twice are one job.
        ordinal = self.sequencer or ("" if version else (self.etag or ""))
        digest = hashlib.sha256("\0".join((self.bucket, self.key, version, ordinal)).encode()).hexdigest()
        return JOB_ID_PREFIX + digest[:JOB_ID_HASH_CHARS]


@dataclass(frozen=True, kw_only=True)
class Notification:
    """What a notification message holds: the objects created, and how many records were not creations
    (ignored: deletions, restores, a test event)."""

    created: tuple[CreatedObject, ...]
    ignored: int = 0


def _text(value: Any) -> str | None:
    return str(value) if value not in (None, "", "null") else None


def _from_s3_record(record: dict[str, Any]) -> CreatedObject | None:
    if record.get("eventSource") != "aws:s3" or not str(record.get("eventName", "")).startswith(
        "ObjectCreated"
    ):
        return None
    s3 = record.get("s3") or {}
    obj = s3.get("object") or {}
    return CreatedObject(
        bucket=str((s3.get("bucket") or {}).get("name", "")),
        # S3 Event Notifications URL-encode the key (a space is `+`).
        key=unquote_plus(str(obj.get("key", ""))),
        etag=_text(obj.get("eTag")),
        version_id=_text(obj.get("versionId")),
        sequencer=_text(obj.get("sequencer")),
    )


def _from_eventbridge(event: dict[str, Any]) -> CreatedObject:
    detail = event.get("detail") or {}
    obj = detail.get("object") or {}
    return CreatedObject(
        bucket=str((detail.get("bucket") or {}).get("name", "")),
        key=str(obj.get("key", "")),  # EventBridge gives the key as it is
        etag=_text(obj.get("etag", obj.get("eTag"))),
        version_id=_text(obj.get("version-id")),
        sequencer=_text(obj.get("sequencer")),
    )


def notification_of(body: str) -> Notification | None:
    """The objects a notification message names; None when the body is not a notification (a job request,
    or something the request parser will reject)."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return _notification(data) if isinstance(data, dict) else None


def _notification(data: dict[str, Any]) -> Notification | None:
    if data.get("Event") == "s3:TestEvent" and data.get("Service") == "Amazon S3":
        return Notification(created=(), ignored=1)
    if data.get("source") == "aws.s3" and "detail-type" in data:
        if data["detail-type"] != "Object Created":
            return Notification(created=(), ignored=1)
        return Notification(created=(_from_eventbridge(data),))
    records = data.get("Records")
    if not isinstance(records, list) or not records:
        return None
    if not all(isinstance(record, dict) and "s3" in record for record in records):
        return None
    created = [_from_s3_record(record) for record in records]
    found = tuple(c for c in created if c is not None)
    return Notification(created=found, ignored=len(created) - len(found))


def request_for(created: CreatedObject, trigger: Trigger | None) -> str:
    """The job request an object's creation stands for: what the job record keeps and what the DLQ gets if
    it is rejected (so a redrive resubmits exactly this job)."""
    request: dict[str, Any] = {"job_id": created.job_id, "input": created.uri}
    if trigger is not None:
        request["transform"] = trigger.transform
        if trigger.transform_options:
            request["transform_options"] = trigger.transform_options
        if trigger.shards is not None:
            request["shards"] = trigger.shards
        if trigger.compression != AUTO:
            request["compression"] = trigger.compression
    if created.version_id:
        request["input_version"] = created.version_id
    elif created.etag:
        request["input_etag"] = created.etag
    return json.dumps(request, sort_keys=True, separators=(",", ":"))


def trigger_for(created: CreatedObject, triggers: tuple[Trigger, ...]) -> Trigger | None:
    return next((trigger for trigger in triggers if trigger.matches(created.bucket, created.key)), None)
