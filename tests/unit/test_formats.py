"""Formats are recognised by their first bytes, not guessed line by line: gzip and zstd are read through
their decompressor, every other non-text input is refused naming what it looks like and what to do."""

from __future__ import annotations

import bz2
import gzip
import lzma
import random
import zipfile
from io import BytesIO

import pytest

from jobcore.errors import ValidationError
from jobcore.formats import decide, sniff, zstd_first_frame_end, zstd_seekable

try:
    from compression import zstd  # type: ignore[import-not-found]
except ImportError:
    from backports import zstd  # type: ignore[import-not-found,no-redef]

TEXT = b'{"a": 1}\n{"b": "two"}\n' * 50
URI = "s3://data/in/x"


def _zip(data: bytes) -> bytes:
    buffer = BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("x.jsonl", data)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("body", "compression"),
    [
        (TEXT, "none"),
        (b"\xef\xbb\xbf" + TEXT, "none"),
        (b"", "none"),
        (gzip.compress(TEXT), "gzip"),
        (zstd.compress(TEXT), "zstd"),
    ],
    # Named, not the bytes: gzip and zip write the time into the data, and every worker process of
    # `make test` must collect the same test ids.
    ids=["text", "text-with-bom", "empty", "gzip", "zstd"],
)
def test_readable_inputs(body: bytes, compression: str) -> None:
    assert sniff(body).compression == compression
    assert decide("auto", body, input_uri=URI) == compression


@pytest.mark.parametrize(
    ("body", "named", "advice"),
    [
        (bz2.compress(TEXT), "bzip2", "decompress it"),
        (lzma.compress(TEXT), "xz", "decompress it"),
        (_zip(TEXT), "zip", "extract"),
        (b"PAR1\x15\x04\x15\x10" + b"\x00" * 100, "Parquet", "JSON Lines"),
        (TEXT.decode().encode("utf-16"), "UTF-16LE text (byte order mark", "iconv -f UTF-16LE"),
        (TEXT.decode().encode("utf-16-le"), "UTF-16LE text (NUL bytes", "iconv -f UTF-16LE"),
        (TEXT.decode().encode("utf-16-be"), "UTF-16BE text (NUL bytes", "iconv"),
        (TEXT.decode().encode("utf-32"), "UTF-32LE text (byte order mark", "iconv -f UTF-32LE"),
        (TEXT.decode().encode("utf-32-be"), "UTF-32BE text (NUL bytes", "iconv"),
        (bytes(range(256)) * 20, "binary data", '"compression": "none"'),
    ],
    ids=lambda value: "body" if isinstance(value, bytes) else None,  # zip writes the time into the body
)
def test_unreadable_inputs_are_refused_naming_the_format_and_what_to_do(
    body: bytes, named: str, advice: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        decide("auto", body, input_uri=URI)
    assert raised.value.field == "input"
    assert named in str(raised.value) and advice in str(raised.value)
    assert URI in str(raised.value)


def test_a_named_compression_the_input_contradicts_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"compression: gzip was asked, but s3://data/in/x is zstd"):
        decide("gzip", zstd.compress(TEXT), input_uri=URI)
    with pytest.raises(ValidationError, match=r"zstd was asked, but .* is text"):
        decide("zstd", TEXT, input_uri=URI)
    assert decide("gzip", gzip.compress(TEXT), input_uri=URI) == "gzip"


def test_none_reads_whatever_it_is_as_text() -> None:
    """The escape hatch for text whose first bytes look like something else."""
    assert decide("none", bytes(range(256)), input_uri=URI) == "none"


def test_zstd_frames_are_walked_without_decompressing() -> None:
    first = zstd.compress(TEXT)
    framed = first + zstd.compress(TEXT)
    assert zstd_first_frame_end(framed) == len(first)
    one = zstd.compress(random.Random(1).randbytes(1_000_000))  # incompressible: one frame, many blocks
    assert zstd_first_frame_end(one[:4096]) is None
    assert zstd_first_frame_end(one) == len(one)
    skippable = (0x184D2A50).to_bytes(4, "little") + (4).to_bytes(4, "little") + b"\x00" * 4
    assert zstd_first_frame_end(skippable + framed) == len(skippable) + len(first)


def test_the_seekable_footer_is_recognised() -> None:
    footer = (2).to_bytes(4, "little") + b"\x80" + (0x8F92EAB1).to_bytes(4, "little")
    assert zstd_seekable(b"...." + footer)
    assert not zstd_seekable(zstd.compress(TEXT))
