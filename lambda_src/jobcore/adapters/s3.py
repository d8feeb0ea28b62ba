"""S3 as the ObjectStore: ranged GETs in, whole-part PUTs out."""

from __future__ import annotations

from typing import Any

from jobcore.errors import InputNotFoundError, classify


class S3ObjectStore:
    def __init__(self, client: Any) -> None:
        self._s3 = client

    def size(self, bucket: str, key: str) -> int:
        try:
            head = self._s3.head_object(Bucket=bucket, Key=key)
        except Exception as raw:
            error = classify(raw)
            if isinstance(error, InputNotFoundError):
                raise InputNotFoundError(f"input s3://{bucket}/{key} does not exist") from raw
            raise
        return int(head["ContentLength"])

    def read_range(self, bucket: str, key: str, start: int, end: int) -> bytes:
        if end <= start:
            return b""
        response = self._s3.get_object(Bucket=bucket, Key=key, Range=f"bytes={start}-{end - 1}")
        body: bytes = response["Body"].read()
        return body

    def write(self, bucket: str, key: str, body: bytes) -> None:
        self._s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/x-ndjson")
