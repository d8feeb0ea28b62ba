"""Turning bytes of a JSON Lines object into output and reject lines, chunk by chunk.

Pure functions over bytes: no I/O, so the property tests can check every way an input can be cut.
Rules (docs/interfaces.md): lines end in LF or CRLF; a UTF-8 BOM at offset 0 is ignored; a line holding
only JSON whitespace (SP, HT, CR, LF) is blank: skipped, and counted in `records_blank`. Every other line
is a record, counted in `records_in`, and ends in exactly one of three ways:
- transformed (`records_transformed`): it produced output records (`records_out`: one, or several);
- filtered (`records_filtered`): the transform dropped it (returned None);
- rejected (`records_rejected`), with its byte offset and reason: not valid UTF-8, not JSON, not a JSON
  object, nested deeper than `max_depth`, longer than `max_line_bytes`, refused by the transform (or the
  transform raised), or not writable as JSON (a lone surrogate, a number out of range).
So `records_in = records_transformed + records_filtered + records_rejected`, in every chunk and therefore at
every checkpoint. Nothing a line holds can fail the job: every failure of one line is that line's reject.

Two codecs, one set of answers. The standard library's `json` defines them (`reference_process_lines`);
msgspec reads each line first and, for the built-in transforms, writes the output, and hands the line to the
standard library whenever it refuses it or cannot vouch for its answer (see `_fast_decoder`). That is where
the worker's time goes, so it is most of a job's bill (benchmarks/README.md: "Codec").
"""

from __future__ import annotations

import bisect
import functools
import itertools
import json
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Union

import msgspec

from jobcore.transforms import PURE_JSON_TRANSFORMS, Output, RecordError, Transform, compact

BOM = b"\xef\xbb\xbf"
# The only whitespace JSON knows (RFC 8259). Python's bytes.strip() would also eat VT, FF and the
# FS/GS/RS/US separators, turning lines of control characters into silent blanks.
JSON_WHITESPACE = b" \t\r\n"
# A reject of an oversized line keeps this much of it: enough to find it, not the whole line again.
REJECT_PREVIEW_BYTES = 1024
DEFAULT_MAX_LINE_BYTES = 1024 * 1024
# Deeper structures are rejected before parsing: Python's decoder and the transforms recurse, and a
# line of 100,000 `[` would otherwise raise RecursionError out of the chunk loop.
DEFAULT_MAX_DEPTH = 128


@dataclass(frozen=True, kw_only=True)
class LineLimits:
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    max_depth: int = DEFAULT_MAX_DEPTH


def _no_constants(name: str) -> float:
    # NaN and Infinity are not JSON; accepting them would write output other tools cannot read.
    raise ValueError(f"{name} is not valid JSON")


_decoder = json.JSONDecoder(parse_constant=_no_constants)
_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)

# The fast codec: msgspec rather than orjson (measured side by side in benchmarks/bench_codec.py). orjson
# reads an integer past 64 bits as a float (18446744073709551616 becomes 1.8446744073709552e+19), a silent
# change of value that no check of its result can see; msgspec reads it exactly, as the standard library
# does. The two decode at the same speed (orjson 0.89-1.03x msgspec's), which is all passthrough does;
# orjson decodes plus encodes ~1.1x faster, but both spell floats below 1e-4 unlike the standard library,
# and msgspec's other difference (floats from 1e16 up) is kept away by its decoder (below). Typed decoding
# lets the decoder check max_depth and float ranges as it reads, for a few percent of a decode (2-6%).
#
# The fast decoder accepts a line only where the standard library reads the same record from it:
# - a JSON object nested at most FAST_DEPTH levels (and at most `max_depth`): the type has no container
#   past that level, so msgspec refuses a deeper line after reading at most FAST_DEPTH + 1 levels of it,
#   and `max_depth` needs no scan of the bytes (lines nested deeper take the standard library's path);
# - floats in (-1e16, 1e16): msgspec writes larger ones as `1e16` (the standard library: `1e+16`), and it
#   refuses 1e400, which the standard library reads as inf (then writes as a reject).
# msgspec refuses, as the standard library does, invalid UTF-8, control characters in strings, NaN and
# Infinity, trailing data; it refuses more than the standard library (a lone surrogate escape, a BOM, a blank
# line): every refused line is answered by the standard library's path, so its verdict, reason and output
# are the reference's. The property tests (tests/unit/test_codec_paths.py) hold the two paths equal.
FAST_DEPTH = 8  # the decoder's type has 2**FAST_DEPTH leaves: built once, in about 2 ms
_FastFloat = Annotated[float, msgspec.Meta(gt=-1e16, lt=1e16)]


@functools.cache
def _fast_decoder(levels: int) -> Callable[[bytes], Any] | None:
    """msgspec's decode of a JSON object nested at most `levels` deep (None: none, levels < 1)."""
    if levels < 1:
        return None
    union: Any = Union
    value: Any = union[None, bool, int, _FastFloat, str]
    for _ in range(levels - 1):
        value = union[None, bool, int, _FastFloat, str, list[value], dict[str, value]]
    return msgspec.json.Decoder(dict[str, value]).decode


# Writes the output of the built-ins in PURE_JSON_TRANSFORMS, whose records hold only what the decoder makes.
# On such records msgspec writes what the standard library writes (ensure_ascii=False, no spaces, keys in
# order), except floats below 1e-4: `0.00001` and `1.5e-7` where the standard library writes `1e-05` and
# `1.5e-07` (larger ones never get here: the decoder refuses them). So once a chunk is written, each output
# line holding `e-` or `0.0000` is spelled again by the standard library (_respell_small_floats).
_fast_encode = msgspec.json.Encoder().encode


@dataclass(kw_only=True)
class ChunkResult:
    """What one chunk produced: output lines, reject lines, and the counts of its input records
    (records_in = transformed + filtered + rejected)."""

    output: list[bytes] = field(default_factory=list)
    rejects: list[bytes] = field(default_factory=list)
    records_blank: int = 0
    records_transformed: int = 0
    records_filtered: int = 0

    @property
    def records_out(self) -> int:
        return len(self.output)

    @property
    def records_rejected(self) -> int:
        return len(self.rejects)

    @property
    def records_in(self) -> int:
        return self.records_transformed + self.records_filtered + self.records_rejected

    def prepend(self, other: ChunkResult) -> None:
        """Put `other` (the lines before this chunk's) in front."""
        self.output[:0] = other.output
        self.rejects[:0] = other.rejects
        self.records_blank += other.records_blank
        self.records_transformed += other.records_transformed
        self.records_filtered += other.records_filtered


def reject_line(offset: int, raw: bytes, reason: str) -> bytes:
    line = raw.decode("utf-8", errors="replace")
    return _encoder.encode({"offset": offset, "line": line, "error": reason}).encode()


def oversized_reject(offset: int, head: bytes, length: int, limits: LineLimits) -> bytes:
    """The reject of a line longer than the limit, from its first bytes and its length alone, so that a
    line seen whole and one skipped across many ranges give the same reject."""
    if offset == 0 and head.startswith(BOM):
        head = head[len(BOM) :]
    return reject_line(
        offset,
        head[:REJECT_PREVIEW_BYTES],
        f"line is {length} bytes, over the maximum of {limits.max_line_bytes}; "
        f"only its first {REJECT_PREVIEW_BYTES} bytes are kept here",
    )


def nesting_depth(line: bytes) -> int:
    """The deepest nesting of arrays and objects in a JSON text, brackets inside strings excluded."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in line:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest


def _too_deep(line: bytes, limit: int) -> bool:
    # Counting brackets is C-speed; the exact scan runs only on the rare line that could be too deep.
    return line.count(b"[") + line.count(b"{") > limit and nesting_depth(line) > limit


def _record_reject(line: bytes, limits: LineLimits) -> tuple[dict[str, object] | None, str | None]:
    """(the record, None) or (None, why the line is not a record)."""
    if _too_deep(line, limits.max_depth):
        return None, f"nested deeper than {limits.max_depth} levels"
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as error:
        return None, f"not valid UTF-8: {error.reason} at byte {error.start}"
    try:
        record = _decoder.decode(text)
    except ValueError as error:
        return None, f"not JSON: {error}"
    if not isinstance(record, dict):
        return None, f"not a JSON object: {type(record).__name__}"
    return record, None


def _encode(value: object) -> tuple[bytes | None, str | None]:
    try:
        return _encoder.encode(value).encode("utf-8"), None
    except UnicodeEncodeError as error:
        bad = error.object[error.start : error.end] if isinstance(error.object, str) else ""
        codes = ", ".join(f"U+{ord(char):04X}" for char in bad)
        return None, f"not writable as UTF-8 JSON: lone surrogate {codes}"
    except ValueError as error:  # out-of-range floats (1e400 decodes to inf)
        return None, f"not writable as JSON: {error}"


def reference_process_lines(
    data: bytes,
    *,
    start_offset: int,
    transform: Transform,
    keeps_bytes: bool = False,
    limits: LineLimits | None = None,
) -> ChunkResult:
    """`process_lines` with the standard library's codec alone: every line read, checked and written by
    `json`. The worker's answers are defined by this path; the property tests hold the fast one to it."""
    limits = limits or LineLimits()
    result = ChunkResult()
    offset = start_offset
    for raw in _lines_of(data):
        _reference_line(result, raw, offset, transform=transform, keeps_bytes=keeps_bytes, limits=limits)
        offset += len(raw) + 1
    return result


def process_lines(
    data: bytes,
    *,
    start_offset: int,
    transform: Transform,
    keeps_bytes: bool = False,
    limits: LineLimits | None = None,
) -> ChunkResult:
    """Process complete lines: `data` starts at byte `start_offset` of the input and holds only whole
    lines (the last may lack its newline only at the end of the input). With `keeps_bytes`, a valid line's
    own bytes are its output (no parse-and-rewrite). The answers are `reference_process_lines`'s."""
    limits = limits or LineLimits()
    decode = _fast_decoder(min(limits.max_depth, FAST_DEPTH))
    if decode is None:
        return reference_process_lines(
            data, start_offset=start_offset, transform=transform, keeps_bytes=keeps_bytes, limits=limits
        )
    raws = _lines_of(data)
    offsets = _Offsets(raws, start_offset)
    # What the fast decoder reads: the lines themselves, except that a line over the length limit is
    # replaced by b"" (which it refuses, so the reference path rejects the real line), and, for a byte-exact
    # transform, a CRLF line is read and kept without its CR. Checked once a chunk, not in the loop.
    fast_raws = raws
    if raws and max(map(len, raws)) > limits.max_line_bytes:
        fast_raws = [b"" if len(raw) > limits.max_line_bytes else raw for raw in raws]
    if keeps_bytes:
        if data.find(b"\r") >= 0:
            fast_raws = [_without_cr(raw) for raw in fast_raws]
        return _keep_lines(
            raws, fast_raws, offsets=offsets, decode=decode, transform=transform, limits=limits
        )
    return _transform_lines(
        raws, fast_raws, offsets=offsets, decode=decode, transform=transform, limits=limits
    )


class _Offsets:
    """Where each line of the chunk starts, worked out only up to a line that needs it (a reject): the fast
    loop keeps no running offset. Lines are asked for in order."""

    def __init__(self, raws: list[bytes], start_offset: int) -> None:
        self.raws = raws
        self.index = 0
        self.offset = start_offset

    def at(self, index: int) -> int:
        self.offset += sum(map(len, self.raws[self.index : index])) + (index - self.index)
        self.index = index
        return self.offset


def _keep_lines(
    raws: list[bytes],
    fast_raws: list[bytes],
    *,
    offsets: _Offsets,
    decode: Callable[[bytes], Any],
    transform: Transform,
    limits: LineLimits,
) -> ChunkResult:
    """A byte-exact transform: each line msgspec reads as an object is its own output."""
    result = ChunkResult()
    keep = result.output.append
    for index, line in enumerate(fast_raws):
        try:
            decode(line)
            keep(line)
        except msgspec.DecodeError:
            _reference_line(
                result, raws[index], offsets.at(index), transform=transform, keeps_bytes=True, limits=limits
            )
    result.records_transformed = len(result.output)  # one output line for each record kept
    return result


def _transform_lines(
    raws: list[bytes],
    fast_raws: list[bytes],
    *,
    offsets: _Offsets,
    decode: Callable[[bytes], Any],
    transform: Transform,
    limits: LineLimits,
) -> ChunkResult:
    """Decode with msgspec; for a pure built-in, also transform and write with msgspec, and hand any line it
    has a doubt about (refused, raised, a float it spells differently) to the reference path whole."""
    result = ChunkResult()
    write = result.output.append
    encode = _fast_encode

    def reference(index: int) -> None:
        _reference_line(
            result, raws[index], offsets.at(index), transform=transform, keeps_bytes=False, limits=limits
        )

    if transform not in PURE_JSON_TRANSFORMS:
        return _user_lines(
            result, raws, fast_raws, offsets=offsets, decode=decode, transform=transform, limits=limits
        )
    if transform is compact:  # the record itself: decode and write, nothing to call
        for index, line in enumerate(fast_raws):
            try:
                write(encode(decode(line)))
            except (ValueError, TypeError, msgspec.EncodeError):  # DecodeError is a ValueError
                reference(index)
    else:
        for index, line in enumerate(fast_raws):
            try:
                write(encode(transform(decode(line))))
            except Exception:  # noqa: BLE001 - refused, or the transform's reject: the reference path says which
                reference(index)
    _respell_small_floats(result.output)
    # Each of these transforms writes one line for each record it does not reject.
    result.records_transformed = len(result.output)
    return result


def _respell_small_floats(output: list[bytes]) -> None:
    """Spell each output line that may hold a float below 1e-4 as the standard library does: decoded and
    written again by it. Exact: the line's values come back the same (msgspec writes the shortest float that
    reads back as the same value), and a line the standard library wrote comes back unchanged. One search of
    the chunk's output rather than two of each line: the searches are most of the cost."""
    blob = b"\n".join(output)
    hits = []
    for pattern in (b"e-", b"0.0000"):
        at = blob.find(pattern)
        while at >= 0:
            hits.append(at)
            at = blob.find(pattern, at + 1)
    if not hits:
        return
    # Where each line ends in blob (its newline included): a hit at `at` is in line bisect_right(ends, at).
    ends = list(itertools.accumulate(map(operator.add, map(len, output), itertools.repeat(1))))
    for index in {bisect.bisect_right(ends, at) for at in hits}:
        output[index] = _encoder.encode(_decoder.decode(output[index].decode("utf-8"))).encode("utf-8")


def _user_lines(
    result: ChunkResult,
    raws: list[bytes],
    fast_raws: list[bytes],
    *,
    offsets: _Offsets,
    decode: Callable[[bytes], Any],
    transform: Transform,
    limits: LineLimits,
) -> ChunkResult:
    """A user transform: msgspec decodes; the transform runs once a record, as in the reference path, and
    the standard library's encoder writes (or refuses) whatever it returns."""
    output, rejects = result.output, result.rejects
    transformed = filtered = 0
    for index, line in enumerate(fast_raws):
        try:
            record = decode(line)
        except msgspec.DecodeError:
            _reference_line(
                result, raws[index], offsets.at(index), transform=transform, keeps_bytes=False, limits=limits
            )
            continue
        produced, reason = _run(transform, record)
        encoded: list[bytes] = []
        if reason is None and produced is not None:
            encoded, reason = _encode_all(produced)
        if reason is not None:
            rejects.append(reject_line(offsets.at(index), _without_cr(line), reason))
        elif encoded:
            output += encoded
            transformed += 1
        else:
            filtered += 1
    result.records_transformed += transformed
    result.records_filtered += filtered
    return result


def _without_cr(raw: bytes) -> bytes:
    """The line a reject shows: as the reference path does, without the CR of a CRLF (a line the fast
    decoder read has no BOM: it refuses one)."""
    return raw[:-1] if raw.endswith(b"\r") else raw


def _lines_of(data: bytes) -> list[bytes]:
    raws = data.split(b"\n")
    if raws and not raws[-1]:
        raws.pop()  # the text after the last newline: not a line
    return raws


def _reference_line(
    result: ChunkResult,
    raw: bytes,
    line_offset: int,
    *,
    transform: Transform,
    keeps_bytes: bool,
    limits: LineLimits,
) -> None:
    """One line (without its LF) the standard library's way: a blank, a reject, or the transform's output."""
    if len(raw) > limits.max_line_bytes:
        result.rejects.append(
            oversized_reject(line_offset, raw[: REJECT_PREVIEW_BYTES + len(BOM)], len(raw), limits)
        )
        return
    line = raw[:-1] if raw.endswith(b"\r") else raw
    if line_offset == 0 and line.startswith(BOM):
        line = line[len(BOM) :]
    if not line.strip(JSON_WHITESPACE):
        result.records_blank += 1
        return
    record, reason = _record_reject(line, limits)
    if record is None:
        result.rejects.append(reject_line(line_offset, line, str(reason)))
    elif keeps_bytes:
        result.output.append(line)
        result.records_transformed += 1
    else:
        _transform_into(result, line_offset, line, record, transform)


def _transform_into(
    result: ChunkResult, offset: int, line: bytes, record: dict[str, object], transform: Transform
) -> None:
    """Run the transform on one record and file what it gives: output record(s), a drop, or a reject."""
    produced, reason = _run(transform, record)
    encoded: list[bytes] = []
    if reason is None and produced is not None:
        encoded, reason = _encode_all(produced)
    if reason is not None:
        result.rejects.append(reject_line(offset, line, reason))
    elif not encoded:  # None, or an empty list: dropped
        result.records_filtered += 1
    else:
        result.output += encoded
        result.records_transformed += 1


def _run(transform: Transform, record: dict[str, object]) -> tuple[Output, str | None]:
    try:
        return transform(record), None
    except Exception as error:  # noqa: BLE001 - user code: whatever it raises is this one record's reject
        return None, _failure_reason(error)


def _failure_reason(error: Exception) -> str:
    if isinstance(error, RecordError | ValueError | TypeError):
        return f"transform failed: {error}"
    if isinstance(error, RecursionError):
        return "transform failed: nesting too deep for the transform"
    return f"transform failed: {type(error).__name__}: {error}"


def _encode_all(produced: Output) -> tuple[list[bytes], str | None]:
    """The output lines of what the transform returned, or why they cannot be written."""
    encoded: list[bytes] = []
    for item in produced if isinstance(produced, list) else [produced]:
        if not isinstance(item, dict):
            return [], f"transform returned {type(item).__name__}, not a record (an object)"
        output, reason = _encode(item)
        if output is None:
            return [], reason
        encoded.append(output)
    return encoded, None


def split_complete(data: bytes, *, at_end: bool) -> tuple[bytes, bytes]:
    """(complete lines, partial last line to carry). At the end of the input everything is complete."""
    if at_end:
        return data, b""
    cut = data.rfind(b"\n")
    if cut < 0:
        return b"", data
    return data[: cut + 1], data[cut + 1 :]


def join_lines(lines: list[bytes]) -> bytes:
    """A JSON Lines body: one record per line, each line ending in LF."""
    return b"\n".join(lines) + b"\n" if lines else b""
