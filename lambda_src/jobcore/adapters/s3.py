"""S3 as the ObjectStore: HEAD to pin an input, ranged GETs of exactly the pinned version, whole-part PUTs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jobcore.adapters.aws_errors import error_code, translate, translated
from jobcore.errors import InputChangedError, InputNotFoundError
from jobcore.model import InputPin

# S3's answers when a conditional or versioned read no longer finds the pinned version.
# InvalidRange too: the pinned size makes every range valid for the pinned version.
_CHANGED_CODES = frozenset({"PreconditionFailed", "412", "NoSuchVersion", "InvalidRange"})


class S3ObjectStore:
    def __init__(self, client: Any) -> None:
        self._s3 = client

    def head(self, bucket: str, key: str, *, version_id: str | None = None) -> InputPin:
        request: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if version_id:
            request["VersionId"] = version_id
        try:
            head = self._s3.head_object(**request)
        except Exception as raw:
            error = translate(raw)
            if isinstance(error, InputNotFoundError):
                raise InputNotFoundError(f"input s3://{bucket}/{key} does not exist") from raw
            if error is None:
                raise
            raise error from raw
        version = head.get("VersionId")
        return InputPin(
            etag=str(head["ETag"]),
            size=int(head["ContentLength"]),
            # "null" is the version of an object written before versioning was enabled: not a pin.
            version_id=str(version) if version and version != "null" else None,
        )

    def read_range(self, bucket: str, key: str, start: int, end: int, *, pin: InputPin | None) -> bytes:
        if end <= start:
            return b""
        request: dict[str, Any] = {"Bucket": bucket, "Key": key, "Range": f"bytes={start}-{end - 1}"}
        if pin is not None:
            request["IfMatch"] = pin.etag
            if pin.version_id:
                request["VersionId"] = pin.version_id
        try:
            response = self._s3.get_object(**request)
        except Exception as raw:
            if pin is not None and error_code(raw) in _CHANGED_CODES:
                raise InputChangedError(self._changed(bucket, key, pin)) from raw
            error = translate(raw)
            if isinstance(error, InputNotFoundError):
                raise InputNotFoundError(f"input s3://{bucket}/{key} does not exist (deleted?)") from raw
            if error is None:
                raise
            raise error from raw
        with translated():  # a stream cut mid-body is a connection error too
            body: bytes = response["Body"].read()
        return body

    def _changed(self, bucket: str, key: str, pin: InputPin) -> str:
        try:
            now = f"now ETag {self.head(bucket, key).etag}"
        except Exception:  # noqa: BLE001 - the message is best effort; the error stands either way
            now = "now unreadable"
        return (
            f"input s3://{bucket}/{key} changed while the job ran: accepted with ETag {pin.etag}, {now}; "
            "the parts written so far stay, nothing more is read. To process the new version, redrive "
            "with a restart (`pipeline dlq redrive --restart`): it starts over into a fresh output location"
        )

    def write(self, bucket: str, key: str, body: bytes, *, metadata: Mapping[str, str]) -> None:
        with translated():
            self._s3.put_object(
                Bucket=bucket, Key=key, Body=body, ContentType=_content_type(key), Metadata=dict(metadata)
            )


def _content_type(key: str) -> str:
    """A part is JSON Lines (`.jsonl.gz` is a gzip file of it: no Content-Encoding, so that a download
    stays the `.gz` its name says); a gzip access point is the index library's binary."""
    if key.endswith(".gz"):
        return "application/gzip"
    if key.endswith(".gzidx"):
        return "application/octet-stream"
    return "application/x-ndjson"
