"""Turning bytes of a JSON Lines object into output and reject lines, chunk by chunk.

Pure functions over bytes: no I/O, so the property tests can check every way an input can be cut.
Rules (architecture.md): lines end in LF or CRLF; a UTF-8 BOM at offset 0 is ignored; blank lines are
skipped and not counted; a line that is not valid UTF-8, not JSON, or not a JSON object is rejected with
its byte offset; so is one the transform refuses.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from jobcore.transforms import RecordError, Transform

BOM = b"\xef\xbb\xbf"


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

    @property
    def records_out(self) -> int:
        return len(self.output)

    @property
    def records_rejected(self) -> int:
        return len(self.rejects)

    @property
    def records_in(self) -> int:
        return len(self.output) + len(self.rejects)


def _reject(result: ChunkResult, offset: int, raw: bytes, reason: str) -> None:
    line = raw.decode("utf-8", errors="replace")
    result.rejects.append(_encoder.encode({"offset": offset, "line": line, "error": reason}).encode())


def process_lines(data: bytes, *, start_offset: int, transform: Transform) -> ChunkResult:
    """Process complete lines: `data` starts at byte `start_offset` of the input and holds only whole
    lines (the last may lack its newline only at the end of the input)."""
    result = ChunkResult()
    offset = start_offset
    decode = _decoder.decode
    encode = _encoder.encode
    for raw in data.split(b"\n"):
        line_offset = offset
        offset += len(raw) + 1
        line = raw[:-1] if raw.endswith(b"\r") else raw
        if line_offset == 0 and line.startswith(BOM):
            line = line[len(BOM) :]
        if not line.strip():
            continue
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as error:
            _reject(result, line_offset, line, f"not valid UTF-8: {error.reason} at byte {error.start}")
            continue
        try:
            record = decode(text)
        except ValueError as error:
            _reject(result, line_offset, line, f"not JSON: {error}")
            continue
        if not isinstance(record, dict):
            _reject(result, line_offset, line, f"not a JSON object: {type(record).__name__}")
            continue
        try:
            result.output.append(encode(transform(record)).encode())
        except (RecordError, ValueError, TypeError) as error:
            _reject(result, line_offset, line, f"transform failed: {error}")
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
