"""A job's output parts in S3, for `pipeline output`: listed in input order (part names sort by offset,
sharded or not), streamed a megabyte at a time so that memory stays flat for any output size, and written
to a file replaced whole.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from pipeline_cli.aws import Pipeline

STREAM_CHUNK_BYTES = 1024 * 1024


def split_s3_prefix(uri: str) -> tuple[str, str]:
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    return bucket, prefix


def part_keys(pipeline: Pipeline, bucket: str, prefix: str) -> list[str]:
    paginator = pipeline.s3.get_paginator("list_objects_v2")
    keys = [
        o["Key"]
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix)
        for o in page.get("Contents", [])
    ]
    # Part names carry their offset zero-padded: sorted names are input order.
    return sorted(key for key in keys if key.rsplit("/", 1)[-1].startswith("part-"))


def stream_parts(pipeline: Pipeline, bucket: str, keys: list[str], sink: IO[bytes]) -> int:
    written = 0
    for key in keys:
        body = pipeline.s3.get_object(Bucket=bucket, Key=key)["Body"]
        for chunk in body.iter_chunks(STREAM_CHUNK_BYTES):
            sink.write(chunk)
            written += len(chunk)
    return written


@contextmanager
def replaced_whole(path: Path) -> Iterator[IO[bytes]]:
    """A file written beside `path` and renamed over it once complete: never half an output."""
    directory = path.parent if str(path.parent) else Path(".")
    handle = tempfile.NamedTemporaryFile(dir=directory, prefix=f".{path.name}.", delete=False)  # noqa: SIM115
    try:
        with handle:
            yield handle
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise
