"""What an input is, from its first bytes: JSON Lines text, gzip or zstd (read through a decompressor), or
something the pipeline cannot read, refused at ingest with what it looks like and what to do.

Pure functions over bytes (the ingest reads the head with one ranged GET of the pinned version), so every
rule is tested without S3. The request field `compression` chooses: `auto` (the default) goes by these
magic bytes; `none`, `gzip` and `zstd` say what the producer wrote, and an input that contradicts them is
refused rather than read as something else.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from jobcore.errors import ValidationError

AUTO = "auto"
NONE = "none"
GZIP = "gzip"
ZSTD = "zstd"
# What a request may ask for, and what a job record holds once the ingest has decided (never `auto`).
COMPRESSIONS = (AUTO, NONE, GZIP, ZSTD)
READABLE = (NONE, GZIP, ZSTD)
OUTPUT_COMPRESSIONS = (NONE, GZIP)

# Enough for every magic number below and for the zstd frame walk over small first frames.
HEAD_BYTES = 256 * 1024
# The share of control bytes (other than TAB, LF, CR) above which a head is not text at all.
BINARY_CONTROL_SHARE = 0.10

_GZIP = b"\x1f\x8b"
_ZSTD_FRAME = b"\x28\xb5\x2f\xfd"
_ZSTD_SKIPPABLE_LOW, _ZSTD_SKIPPABLE_HIGH = 0x184D2A50, 0x184D2A5F
# The seekable format's footer (last 9 bytes: frame count, descriptor, this magic).
ZSTD_SEEKABLE_MAGIC = 0x8F92EAB1
ZSTD_SEEKABLE_FOOTER_BYTES = 9

# Formats recognised and refused: magic bytes, name, what to do instead.
_DECOMPRESS = "decompress it (or recompress it with gzip or zstd) and submit the JSON Lines"
_REFUSED: tuple[tuple[bytes, str, str], ...] = (
    (b"BZh", "bzip2", _DECOMPRESS),
    (b"\xfd7zXZ\x00", "xz", _DECOMPRESS),
    (b"\x5d\x00\x00", "lzma", _DECOMPRESS),
    (b"\x04\x22\x4d\x18", "lz4", _DECOMPRESS),
    (b"\xff\x06\x00\x00sNaPpY", "snappy (framed)", _DECOMPRESS),
    (b"7z\xbc\xaf\x27\x1c", "7-Zip", "extract the JSON Lines file from the archive and submit it"),
    (b"PK\x03\x04", "zip", "extract the JSON Lines file from the archive and submit it (one job per file)"),
    (b"PK\x05\x06", "zip (empty archive)", "extract the JSON Lines file from the archive and submit it"),
    (
        b"PAR1",
        "Parquet",
        "this pipeline reads JSON Lines: export the table as JSON Lines (Athena, Spark, "
        "DuckDB `COPY ... TO 'x.jsonl' (FORMAT JSON)`)",
    ),
    (b"ORC", "ORC", "this pipeline reads JSON Lines: export the table as JSON Lines"),
    (b"Obj\x01", "Avro", "this pipeline reads JSON Lines: convert the records to JSON Lines"),
    (b"%PDF", "PDF", "this pipeline reads JSON Lines"),
    (b"\x89PNG", "PNG image", "this pipeline reads JSON Lines"),
    (b"\xff\xd8\xff", "JPEG image", "this pipeline reads JSON Lines"),
)
_UTF16_32_ADVICE = "re-encode it as UTF-8 (`iconv -f {} -t UTF-8`), the only encoding JSON Lines allows"
_BOMS: tuple[tuple[bytes, str], ...] = (
    # UTF-32 first: its little-endian BOM starts with UTF-16's.
    (b"\xff\xfe\x00\x00", "UTF-32LE"),
    (b"\x00\x00\xfe\xff", "UTF-32BE"),
    (b"\xff\xfe", "UTF-16LE"),
    (b"\xfe\xff", "UTF-16BE"),
)


@dataclass(frozen=True, kw_only=True)
class Sniffed:
    """What the head says the input is: `compression` (none, gzip, zstd) when readable, else `refused`."""

    compression: str | None
    looks_like: str
    refused: str | None = None


def _utf16_or_32(head: bytes) -> str | None:
    """The encoding that NUL bytes in fixed positions give away (ASCII text in UTF-16/32 without a BOM)."""
    sample = head[:4096]
    if len(sample) < 8:
        return None
    quarter = [sample[i::4] for i in range(4)]
    zero = [part.count(0) / len(part) for part in quarter]
    if zero[1] > 0.9 and zero[2] > 0.9 and zero[3] > 0.9 and zero[0] < 0.5:
        return "UTF-32LE"
    if zero[0] > 0.9 and zero[1] > 0.9 and zero[2] > 0.9 and zero[3] < 0.5:
        return "UTF-32BE"
    even, odd = sample[0::2], sample[1::2]
    if odd.count(0) / len(odd) > 0.6 and even.count(0) / len(even) < 0.2:
        return "UTF-16LE"
    if even.count(0) / len(even) > 0.6 and odd.count(0) / len(odd) < 0.2:
        return "UTF-16BE"
    return None


def _control_share(head: bytes) -> float:
    sample = head[:4096]
    if not sample:
        return 0.0
    text_controls = sum(sample.count(byte) for byte in (9, 10, 13))
    controls = sum(1 for byte in sample if byte < 32 or byte == 127) - text_controls
    return controls / len(sample)


def sniff(head: bytes) -> Sniffed:
    """What the first bytes of an input say it is."""
    if head.startswith(_GZIP):
        return Sniffed(compression=GZIP, looks_like="gzip")
    if head.startswith(_ZSTD_FRAME) or _is_zstd_skippable(head):
        return Sniffed(compression=ZSTD, looks_like="zstd")
    return _refused(head) or Sniffed(compression=NONE, looks_like="text")


def _refused(head: bytes) -> Sniffed | None:
    """What a head the pipeline cannot read looks like, and what to do (None: it reads as text)."""
    for bom, encoding in _BOMS:
        if head.startswith(bom):
            return Sniffed(
                compression=None,
                looks_like=f"{encoding} text (byte order mark {bom.hex(' ')})",
                refused=_UTF16_32_ADVICE.format(encoding),
            )
    for magic, name, advice in _REFUSED:
        if head.startswith(magic):
            return Sniffed(compression=None, looks_like=name, refused=advice)
    unmarked = _utf16_or_32(head)
    if unmarked is not None:
        return Sniffed(
            compression=None,
            looks_like=f"{unmarked} text (NUL bytes between the characters, no byte order mark)",
            refused=_UTF16_32_ADVICE.format(unmarked),
        )
    share = _control_share(head)
    if share > BINARY_CONTROL_SHARE:
        return Sniffed(
            compression=None,
            looks_like=f"binary data ({share:.0%} of its first {min(len(head), 4096)} bytes are control "
            f"bytes; it starts {head[:8].hex(' ')})",
            refused="this pipeline reads JSON Lines (UTF-8 text, optionally gzip or zstd compressed); "
            'if this really is text, say so with "compression": "none"',
        )
    return None


def _is_zstd_skippable(head: bytes) -> bool:
    if len(head) < 4:
        return False
    (magic,) = struct.unpack_from("<I", head, 0)
    return _ZSTD_SKIPPABLE_LOW <= magic <= _ZSTD_SKIPPABLE_HIGH


def decide(asked: str, head: bytes, *, input_uri: str) -> str:
    """The compression a job reads its input with (none, gzip, zstd), from the request's `compression` and
    the input's first bytes; raises ValidationError naming what the input looks like and what to do."""
    found = sniff(head)
    if asked == NONE:
        return NONE
    if asked == AUTO:
        if found.compression is None:
            raise ValidationError(
                "input",
                f"{input_uri} is {found.looks_like}, not JSON Lines: {found.refused}",
            )
        return found.compression
    if found.compression != asked:
        raise ValidationError(
            "compression",
            f"{asked} was asked, but {input_uri} is {found.looks_like}: "
            + (
                f"{found.refused}"
                if found.refused
                else f'leave "compression" out (auto) or say "{found.compression}"'
            ),
        )
    return asked


# -- zstd frames: where a decompressor can start over -------------------------------------------------------


def zstd_seekable(tail: bytes) -> bool:
    """The input ends in the seekable format's footer (a seek table: a frame boundary every few MiB)."""
    if len(tail) < ZSTD_SEEKABLE_FOOTER_BYTES:
        return False
    (magic,) = struct.unpack_from("<I", tail, len(tail) - 4)
    return magic == ZSTD_SEEKABLE_MAGIC


def zstd_first_frame_end(head: bytes) -> int | None:
    """Where the first (non-skippable) frame of a zstd input ends, if it ends inside `head`: walking the
    frame header and block headers (RFC 8878), never decompressing. None: it runs past the head."""
    position = 0
    while position + 8 <= len(head) and _is_zstd_skippable(head[position:]):
        (size,) = struct.unpack_from("<I", head, position + 4)
        position += 8 + size
    if not head.startswith(_ZSTD_FRAME, position):
        return None
    position += 4
    if position >= len(head):
        return None
    descriptor = head[position]
    single_segment = descriptor >> 5 & 1
    checksum = descriptor >> 2 & 1
    dictionary_id_bytes = (0, 1, 2, 4)[descriptor & 3]
    content_size_bytes = (single_segment, 2, 4, 8)[descriptor >> 6]
    position += 1 + (0 if single_segment else 1) + dictionary_id_bytes + content_size_bytes
    while position + 3 <= len(head):
        header = int.from_bytes(head[position : position + 3], "little")
        last, block_type, size = header & 1, header >> 1 & 3, header >> 3
        position += 3 + (1 if block_type == 1 else size)  # an RLE block holds one byte
        if last:
            position += 4 if checksum else 0
            return position if position <= len(head) else None
    return None
