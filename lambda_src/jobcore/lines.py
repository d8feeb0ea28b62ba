"""Turning bytes of a JSON Lines object into output and reject lines, chunk by chunk.

Pure functions over bytes: no I/O, so the property tests can check every way an input can be cut.
Rules (docs/interfaces.md): lines end in LF or CRLF; a UTF-8 BOM at offset 0 is ignored; a line holding
only JSON whitespace (SP, HT, CR, LF) is blank: skipped, and counted in `records_blank`. Every other line
is a record, counted in `records_in`, and ends as output or as a reject with its byte offset and reason:
not valid UTF-8, not JSON, not a JSON object, nested deeper than `max_depth`, longer than `max_line_bytes`,
refused by the transform, or not writable as JSON (a lone surrogate, a number out of range). Nothing a
line holds can fail the job: every failure of one line is that line's reject.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from jobcore.transforms import RecordError, Transform

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
    """What one chunk produced: output lines, reject lines, and counts (records_in = out + rejected)."""

    output: list[bytes] = field(default_factory=list)
    rejects: list[bytes] = field(default_factory=list)
    records_blank: int = 0

    @property
    def records_out(self) -> int:
        return len(self.output)

    @property
    def records_rejected(self) -> int:
        return len(self.rejects)

    @property
    def records_in(self) -> int:
        return len(self.output) + len(self.rejects)

    def prepend(self, other: ChunkResult) -> None:
        """Put `other` (the lines before this chunk's) in front."""
        self.output[:0] = other.output
        self.rejects[:0] = other.rejects
        self.records_blank += other.records_blank


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
    data: bytes, *, start_offset: int, transform: Transform, limits: LineLimits | None = None
) -> ChunkResult:
    """Process complete lines: `data` starts at byte `start_offset` of the input and holds only whole
    lines (the last may lack its newline only at the end of the input)."""
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
        if record is not None:
            try:
                transformed = transform(record)
            except (RecordError, ValueError, TypeError) as error:
                reason = f"transform failed: {error}"
            except RecursionError:
                reason = "transform failed: nesting too deep for the transform"
            else:
                encoded, reason = _encode(transformed)
                if encoded is not None:
                    result.output.append(encoded)
                    continue
        result.rejects.append(reject_line(line_offset, line, str(reason)))
    return result


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
