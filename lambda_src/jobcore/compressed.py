"""The text of an input, as the chunk loop reads it: byte ranges of the plain object, or of the stream a
gzip or zstd decompressor gives, with restart points so that a segment resumes without decompressing from
the start.

Every offset the worker uses (cursor, chunk, part name, reject offset) is an offset in the *text*: for a
compressed input, in the decompressed stream. So a compressed input writes the same parts, rejects and
counters as the same text uncompressed.

- `PlainText`: ranged GETs of the pinned object; its size is known.
- `GzipText`: indexed_gzip's zran over ranged GETs of the pinned object. Every `spacing` bytes of text zran
  makes an access point (a compressed bit offset and the 32 KiB window before it). At a checkpoint the
  newest point behind the cursor is written beside the job's outputs (`_access/gzip-OFFSET.gzidx`: the
  library's own index format, cut to that point) before the checkpoint records it, so a resumed segment
  decompresses at most `spacing` bytes before its cursor. Multi-member gzip is one stream to zran. Memory:
  the decompressor holds the points made since its last restart; once it holds `MAX_POINTS`, it is
  reopened from the newest (constant memory whatever the input's size).
- `ZstdText`: the standard library's zstd decompressor (Python 3.14's compression.zstd; its backport before),
  one frame at a time. A frame boundary is a restart point by itself (no window), so multi-frame and
  seekable-format inputs resume at the last boundary behind the cursor; a single-frame input resumes at 0
  and skips (the ingest refuses one above `zstd_single_frame_max_bytes`).

The size of a compressed input's text is found when the decompressor reaches the end (`size`, None until
then). Reads are sequential; a read behind the position reopens at the nearest restart point.
"""

from __future__ import annotations

import importlib
import io
import struct
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jobcore import retry
from jobcore.errors import PermanentError, PipelineError, ValidationError
from jobcore.formats import GZIP, NONE, ZSTD
from jobcore.model import InputPin, RestartPoint
from jobcore.ports import ObjectStore
from pipeline_contract import ACCESS_DIR

# Access points the gzip decompressor may hold before it is reopened from the newest one.
MAX_POINTS = 4
# zran's window: the 32 KiB of text before an access point (deflate's longest back-reference).
WINDOW_BYTES = 32 * 1024


class InputCorruptError(PermanentError):
    """The compressed input cannot be decompressed (truncated, or not what its first bytes said)."""


# Parts written with `output_compression: gzip`: the header fixed (no name, mtime 0, OS "unknown"), level fixed,
# so a retried chunk rewrites the same bytes on the same code (the header does not vary with Python's gzip).
GZIP_OUTPUT_LEVEL = 6
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"


def gzip_member(body: bytes) -> bytes:
    """`body` as one gzip member, deterministically."""
    deflate = zlib.compressobj(GZIP_OUTPUT_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS, 9, zlib.Z_DEFAULT_STRATEGY)
    packed = deflate.compress(body) + deflate.flush()
    return _GZIP_HEADER + packed + struct.pack("<II", zlib.crc32(body), len(body) & 0xFFFFFFFF)


def access_point_key(prefix: str, text_offset: int) -> str:
    return f"{prefix}{ACCESS_DIR}gzip-{text_offset:015d}.gzidx"


@dataclass(frozen=True, kw_only=True)
class TextSettings:
    """How a compressed input is read: compressed bytes per GET, and the text between gzip access points."""

    read_bytes: int = 1024 * 1024
    # Above the window (zran refuses a spacing of the window's size or less).
    gzip_spacing: int = 32 * 1024 * 1024

    @classmethod
    def for_chunks(cls, chunk_bytes: int) -> TextSettings:
        """A job's: an access point every 4 chunks of text (a resumed segment decompresses at most that
        much before its cursor, about a quarter of what it then processes in 16 chunks), within 1..64 MiB;
        GETs of one chunk's size, within 256 KiB..8 MiB."""
        return cls(
            read_bytes=min(max(chunk_bytes, 256 * 1024), 8 * 1024 * 1024),
            gzip_spacing=min(max(4 * chunk_bytes, 1024 * 1024), 64 * 1024 * 1024),
        )


class PlainText:
    """An uncompressed input: the object's bytes are the text."""

    random_access = True
    compression = NONE

    def __init__(self, read: Callable[[int, int], bytes], size: int) -> None:
        self._read = read
        self.size: int | None = size

    def read(self, start: int, end: int) -> bytes:
        return self._read(start, end)

    def restart_point(self, cursor: int) -> RestartPoint | None:
        return None

    def close(self) -> None:
        pass


class _InputFile(io.RawIOBase):
    """The pinned input as a read-only, seekable file for zran: each read is one ranged GET (retried within
    the segment's deadline). A permanent error is kept, because zran reports only that a read failed."""

    def __init__(self, read: Callable[[int, int], bytes], size: int) -> None:
        super().__init__()
        self._read = read
        self._size = size
        self._position = 0
        self.error: BaseException | None = None
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        end = min(self._size, self._position + len(view))
        if end <= self._position:
            return 0
        try:
            data = self._read(self._position, end)
        except BaseException as error:
            self.error = error
            raise
        view[: len(data)] = data
        self._position += len(data)
        self.bytes_read += len(data)
        return len(data)


# indexed_gzip's index file, format version 1 (zran.c, `zran_export_index`): a header, then per point its
# compressed offset, text offset, bit offset and whether a window follows, then the windows in point order.
_HEADER = struct.Struct("<5sBBQQIII")
_POINT = struct.Struct("<QQBB")


def _points_of(index: bytes) -> tuple[tuple[Any, ...], list[tuple[tuple[int, int, int, int], bytes]]]:
    magic, version, flags, compressed, text, spacing, window, count = _HEADER.unpack_from(index, 0)
    if magic != b"GZIDX" or version != 1:
        raise ValueError(f"unexpected gzip index format {magic!r} v{version}")
    position = _HEADER.size
    heads = []
    for _ in range(count):
        heads.append(_POINT.unpack_from(index, position))
        position += _POINT.size
    points = []
    for head in heads:
        size = window if head[3] else 0
        points.append((head, index[position : position + size]))
        position += size
    return (magic, version, flags, compressed, text, spacing, window), points


def trim_index(index: bytes, text_offset: int) -> bytes:
    """The index cut to its first point (the stream's start: zran needs it) and the point at `text_offset`:
    one window, whatever the number of points the decompressor made."""
    header, points = _points_of(index)
    kept = [points[0]] + [point for point in points[1:] if point[0][1] == text_offset]
    if len(kept) != 2 and text_offset != 0:
        raise ValueError(f"the gzip index has no access point at {text_offset}")
    return (
        _HEADER.pack(*header, len(kept))
        + b"".join(_POINT.pack(*head) for head, _ in kept)
        + b"".join(window for _, window in kept)
    )


class GzipText:
    """A gzip input's text, read through indexed_gzip (docs/jobs.md: compressed inputs)."""

    random_access = False
    compression = GZIP

    def __init__(
        self,
        read: Callable[[int, int], bytes],
        size: int,
        *,
        restart: RestartPoint | None,
        load: Callable[[str, int], bytes],
        save: Callable[[str, bytes], None],
        index_prefix: str,
        settings: TextSettings,
        describe: str,
    ) -> None:
        self._read = read
        self._compressed_size = size
        self._load, self._save = load, save
        self._prefix = index_prefix
        self._settings = settings
        self._describe = describe
        self.size: int | None = None
        self._restart = restart
        self._position = 0
        self._ahead = b""
        self._index: bytes | None = None
        self._file: _InputFile | None = None
        self._gzip: Any = None
        self._open(restart)

    def _open(self, restart: RestartPoint | None, *, index: bytes | None = None) -> None:
        import indexed_gzip  # noqa: PLC0415 - compiled; only a gzip job needs it

        self.close()
        self._file = _InputFile(self._read, self._compressed_size)
        self._gzip = indexed_gzip._IndexedGzipFile(
            fileobj=self._file,
            spacing=self._settings.gzip_spacing,
            window_size=WINDOW_BYTES,
            readbuf_size=self._settings.read_bytes,
            # Its default (16 MiB) is a buffer for read() with no size, which the worker never makes.
            readall_buf_size=self._settings.read_bytes,
            drop_handles=False,
        )
        if restart is not None and restart.index:
            index = index if index is not None else self._load(restart.index, restart.index_bytes)
            self._call(lambda: self._gzip.import_index(fileobj=io.BytesIO(index)))
        self._position, self._ahead = 0, b""

    def _call(self, fn: Callable[[], Any]) -> Any:
        """zran's call, its failures as the pipeline's errors: a read that failed raises what the read
        raised (transient or changed input), anything else is a corrupt input."""
        try:
            return fn()
        except PipelineError:
            raise
        except Exception as error:
            cause = self._file.error if self._file is not None else None
            if cause is not None:
                raise cause from error
            raise InputCorruptError(
                f"{self._describe} is not a readable gzip stream (at compressed byte "
                f"{self._file.tell() if self._file else 0}: {error}); was it truncated, or written as "
                'something else? Submit it again, or with "compression": "none" if it is plain text'
            ) from error

    def _seek(self, offset: int) -> None:
        self._call(lambda: self._gzip.seek(offset))
        self._position, self._ahead = offset, b""

    def read(self, start: int, end: int) -> bytes:
        if start != self._position:
            self._seek(start)
        wanted = end - start
        data = self._ahead + self._call(lambda: self._gzip.read(wanted + 1 - len(self._ahead)))
        if len(data) <= wanted:
            self.size = start + len(data)
            self._ahead = b""
            self._check_trailer(self.size)
        else:
            data, self._ahead = data[:wanted], data[wanted:]
        self._position = start + len(data)
        return data

    def _check_trailer(self, text_size: int) -> None:
        """zran ends quietly where a stream truncated inside its deflate data runs out (as rapidgzip does,
        its issue 71): check the last member's trailer against the text read. Its ISIZE is the last
        member's text size mod 2^32: the whole text's for one member; at most the text for several. A
        truncated input's last 4 bytes are deflate data, larger than the text read more often than not
        (always, for a small input)."""
        if self._compressed_size < 18:  # a gzip member is at least 18 bytes
            raise InputCorruptError(
                f"{self._describe} is too short to be gzip ({self._compressed_size} bytes)"
            )
        trailer = self._read(self._compressed_size - 4, self._compressed_size)
        (last_member_size,) = struct.unpack("<I", trailer)
        if text_size < 2**32 and last_member_size > text_size:
            raise InputCorruptError(
                f"{self._describe} ends before its gzip stream does (truncated?): its last 4 bytes say "
                f"{last_member_size} bytes of text, {text_size} were read. Upload it again"
            )

    def restart_point(self, cursor: int) -> RestartPoint | None:
        """The newest access point behind `cursor`, once written beside the outputs (None: no newer one
        than the job's). Reopens the decompressor from it when it holds too many points."""
        points = [text for text, _ in self._gzip.seek_points() if 0 < text <= cursor]
        newest = max(points, default=0)
        known = self._restart.text if self._restart is not None else 0
        if newest <= known:
            return None
        exported = io.BytesIO()
        self._call(lambda: self._gzip.export_index(fileobj=exported))
        index = trim_index(exported.getvalue(), newest)
        key = access_point_key(self._prefix, newest)
        self._save(key, index)
        compressed = next(at for text, at in self._gzip.seek_points() if text == newest)
        self._restart = RestartPoint(text=newest, at=compressed, index=key, index_bytes=len(index))
        if self._gzip.npoints > MAX_POINTS:
            position, ahead = self._position, len(self._ahead)
            self._open(self._restart, index=index)
            self._seek(position)
            if ahead:
                self._ahead = self._call(lambda: self._gzip.read(ahead))
        return self._restart

    def close(self) -> None:
        if self._gzip is not None:
            self._gzip.close()
            self._gzip = None


def _zstd_module() -> Any:
    """Python 3.14's compression.zstd (the functions' runtime), else its backport (the same module)."""
    try:
        return importlib.import_module("compression.zstd")
    except ImportError:
        return importlib.import_module("backports.zstd")


class ZstdText:
    """A zstd input's text, frame by frame (docs/jobs.md: compressed inputs)."""

    random_access = False
    compression = ZSTD

    def __init__(
        self,
        read: Callable[[int, int], bytes],
        size: int,
        *,
        restart: RestartPoint | None,
        settings: TextSettings,
        describe: str,
    ) -> None:
        self._zstd = _zstd_module()
        self._read = read
        self._compressed_size = size
        self._settings = settings
        self._describe = describe
        self.size: int | None = None
        self._restart = restart
        # Frame boundaries seen, (text offset, compressed offset), newest last: the restart candidates.
        self._boundaries: deque[tuple[int, int]] = deque(maxlen=64)
        self._open(restart or RestartPoint(text=0, at=0))

    def _open(self, point: RestartPoint) -> None:
        self._decompressor = self._zstd.ZstdDecompressor()
        self._fed = point.at  # compressed bytes handed to the decompressor
        self._position = point.text  # text bytes given out
        self._pending = b""  # compressed bytes not yet handed over
        self._ahead = b""
        self._handed = False  # the current decompressor has had input
        self._boundaries.append((point.text, point.at))

    def _next_input(self) -> bytes:
        if self._pending:
            data, self._pending = self._pending, b""
            return data
        if self._fed >= self._compressed_size:
            return b""
        end = min(self._compressed_size, self._fed + self._settings.read_bytes)
        data = self._read(self._fed, end)
        self._fed += len(data)
        return data

    def _decompress(self, limit: int) -> bytes:
        """Up to `limit` bytes of text (fewer only at the end of the input)."""
        out: list[bytes] = []
        got = 0
        while got < limit:
            decompressor = self._decompressor
            if decompressor.eof:
                unused = decompressor.unused_data
                # A frame ended: the next one starts where its unused input begins.
                self._boundaries.append((self._position + got, self._fed - len(unused) - len(self._pending)))
                self._pending = unused + self._pending
                self._decompressor = self._zstd.ZstdDecompressor()
                self._handed = False
                if not self._pending and self._fed >= self._compressed_size:
                    break
                continue
            data = b"" if not decompressor.needs_input else self._next_input()
            if decompressor.needs_input and not data:
                if not self._handed:
                    break  # the input ends where a frame ended
                raise InputCorruptError(
                    f"{self._describe} ends inside a zstd frame (truncated?): submit it again"
                )
            self._handed = self._handed or bool(data)
            try:
                chunk = decompressor.decompress(data, max_length=limit - got)
            except self._zstd.ZstdError as error:
                raise InputCorruptError(
                    f"{self._describe} is not a readable zstd stream near compressed byte {self._fed}: {error}"
                ) from error
            out.append(chunk)
            got += len(chunk)
        return b"".join(out)

    def read(self, start: int, end: int) -> bytes:
        # `_position` is where the decompressor's output is; `_ahead` the bytes it gave beyond the last read.
        logical = self._position - len(self._ahead)
        if start < logical:
            self._reopen_before(start)
            logical = self._position
        if start > logical:
            drop = start - logical
            if drop <= len(self._ahead):
                self._ahead = self._ahead[drop:]
            else:
                self._skip(drop - len(self._ahead))
                self._ahead = b""
        wanted = end - start
        extra = self._decompress(wanted + 1 - len(self._ahead)) if wanted + 1 > len(self._ahead) else b""
        self._position += len(extra)
        data = self._ahead + extra
        if len(data) <= wanted:
            self.size = start + len(data)
            self._ahead = b""
        else:
            data, self._ahead = data[:wanted], data[wanted:]
        return data

    def _skip(self, count: int) -> None:
        while count:
            skipped = len(self._decompress(min(count, self._settings.read_bytes * 4)))
            if not skipped:
                return
            self._position += skipped
            count -= skipped

    def _reopen_before(self, text: int) -> None:
        text_at, compressed = max(((t, c) for t, c in self._boundaries if t <= text), default=(0, 0))
        self._open(RestartPoint(text=text_at, at=compressed))

    def restart_point(self, cursor: int) -> RestartPoint | None:
        """The last frame boundary behind `cursor` (None: no newer one than the job's)."""
        text, compressed = max(((t, c) for t, c in self._boundaries if t <= cursor), default=(0, 0))
        known = self._restart.text if self._restart is not None else 0
        if text <= known:
            return None
        self._restart = RestartPoint(text=text, at=compressed)
        return self._restart

    def close(self) -> None:
        pass


def open_text(
    compression: str,
    *,
    objects: ObjectStore,
    bucket: str,
    key: str,
    pin: InputPin,
    restart: RestartPoint | None,
    index_location: tuple[str, str],
    settings: TextSettings,
    deadline: retry.Deadline,
) -> PlainText | GzipText | ZstdText:
    """The text source of an input read with `compression` (none, gzip, zstd)."""

    def read(start: int, end: int) -> bytes:
        return retry.call(
            lambda: objects.read_range(bucket, key, start, end, pin=pin),
            what="read input range",
            deadline=deadline,
        )

    describe = f"input s3://{bucket}/{key}"
    if compression in ("", NONE):
        return PlainText(read, pin.size)
    if compression == ZSTD:
        return ZstdText(read, pin.size, restart=restart, settings=settings, describe=describe)
    if compression == GZIP:
        out_bucket, prefix = index_location

        def load(index_key: str, size: int) -> bytes:
            return retry.call(
                lambda: objects.read_range(out_bucket, index_key, 0, size, pin=None),
                what="read gzip access point",
                deadline=deadline,
            )

        def save(index_key: str, body: bytes) -> None:
            retry.call(
                lambda: objects.write(out_bucket, index_key, body, metadata={}),
                what="write gzip access point",
                deadline=deadline,
            )

        return GzipText(
            read,
            pin.size,
            restart=restart,
            load=load,
            save=save,
            index_prefix=prefix,
            settings=settings,
            describe=describe,
        )
    raise ValidationError("compression", f"{compression!r} is not one of none, gzip, zstd")
