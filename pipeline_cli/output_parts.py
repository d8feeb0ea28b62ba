"""A job's output parts in S3, for `pipeline output`: listed in input order (part names sort by offset,
sharded or not), streamed a megabyte at a time so that memory stays flat for any output size (a `.jsonl.gz`
part, from `output_compression: gzip`, decompressed on the way), and written to a file replaced whole.
"""

from __future__ import annotations

import os
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

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
    """Write the parts' JSON Lines to `sink`; returns the bytes written (of text, after decompression)."""
    written = 0
    for key in keys:
        body = pipeline.s3.get_object(Bucket=bucket, Key=key)["Body"]
        # wbits 31: a gzip member, header and trailer checked (a part is one member).
        inflate = zlib.decompressobj(wbits=31) if key.endswith(".gz") else None
        for chunk in body.iter_chunks(STREAM_CHUNK_BYTES):
            for text in [chunk] if inflate is None else _inflate(inflate, chunk):
                sink.write(text)
                written += len(text)
        if inflate is not None and not inflate.eof:
            raise ValueError(f"s3://{bucket}/{key} ends inside its gzip stream")
    return written


def _inflate(inflate: Any, chunk: bytes) -> Iterator[bytes]:
    # A megabyte of text at a time: a part compressed 1000:1 never lands in memory whole.
    yield inflate.decompress(chunk, STREAM_CHUNK_BYTES)
    while inflate.unconsumed_tail:
        yield inflate.decompress(inflate.unconsumed_tail, STREAM_CHUNK_BYTES)


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
