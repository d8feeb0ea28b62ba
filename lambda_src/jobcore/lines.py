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
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from jobcore.transforms import Output, RecordError, Transform

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
    own bytes are its output (no parse-and-rewrite)."""
    limits = limits or LineLimits()
    result = ChunkResult()
    offset = start_offset
    raws = data.split(b"\n")
    if raws and not raws[-1]:
        raws.pop()  # the text after the last newline: not a line
    for raw in raws:
        line_offset = offset
        offset += len(raw) + 1
        if len(raw) > limits.max_line_bytes:
            result.rejects.append(
                oversized_reject(line_offset, raw[: REJECT_PREVIEW_BYTES + len(BOM)], len(raw), limits)
            )
            continue
        line = raw[:-1] if raw.endswith(b"\r") else raw
        if line_offset == 0 and line.startswith(BOM):
            line = line[len(BOM) :]
        if not line.strip(JSON_WHITESPACE):
            result.records_blank += 1
            continue
        record, reason = _record_reject(line, limits)
        if record is None:
            result.rejects.append(reject_line(line_offset, line, str(reason)))
        elif keeps_bytes:
            result.output.append(line)
            result.records_transformed += 1
        else:
            _transform_into(result, line_offset, line, record, transform)
    return result


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
    except (RecordError, ValueError, TypeError) as error:
        return None, f"transform failed: {error}"
    except RecursionError:
        return None, "transform failed: nesting too deep for the transform"
    except Exception as error:  # noqa: BLE001 - user code: whatever it raises is this one record's reject
        return None, f"transform failed: {type(error).__name__}: {error}"


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
