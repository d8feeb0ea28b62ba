"""Compressed inputs keep every guarantee of the chunk loop: whatever the cuts (chunk size, segment ends,
crashes between a part and its checkpoint), a gzip or zstd input writes the parts, rejects and counters of
the same text uncompressed; a segment resumes from its restart point, never from the start of the stream."""

from __future__ import annotations

import dataclasses
import gzip
import json
import random
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobcore.compressed import ACCESS_DIR, MAX_POINTS, TextSettings, gzip_member, trim_index
from jobcore.errors import InputChangedError
from jobcore.lines import LineLimits
from jobcore.segment import SegmentLimits, SegmentRequest, run_segment
from pipeline_contract import part_name
from tests.fakes import FakeClock, MemoryJobs, MemoryObjects, running_job
from tests.unit.test_segment import line_st

try:
    from compression import zstd as _zstd  # type: ignore[import-not-found]
except ImportError:
    from backports import zstd as _zstd  # type: ignore[import-not-found,no-redef]

NOW = "2026-12-07T00:00:00.000Z"
SMALL = TextSettings(read_bytes=512, gzip_spacing=64 * 1024)


def gzip_one(data: bytes, level: int = 6) -> bytes:
    return gzip.compress(data, compresslevel=level, mtime=0)


def gzip_members(data: bytes, pieces: int = 3) -> bytes:
    step = max(1, len(data) // pieces)
    return b"".join(gzip_one(data[i : i + step]) for i in range(0, len(data), step)) or gzip_one(b"")


def zstd_one(data: bytes) -> bytes:
    return _zstd.compress(data)


def zstd_frames(data: bytes, pieces: int = 4) -> bytes:
    step = max(1, len(data) // pieces)
    frames = [_zstd.compress(data[i : i + step]) for i in range(0, len(data), step)] or [_zstd.compress(b"")]
    # A skippable frame between the first two: readers pass over it (the seekable format ends with one).
    skippable = (0x184D2A5E).to_bytes(4, "little") + (3).to_bytes(4, "little") + b"abc"
    return frames[0] + skippable + b"".join(frames[1:])


COMPRESSORS = {
    "gzip": ("gzip", gzip_one),
    "gzip-members": ("gzip", gzip_members),
    "zstd": ("zstd", zstd_one),
    "zstd-frames": ("zstd", zstd_frames),
}


def setup(body: bytes, compression: str, **changes: object) -> tuple[MemoryJobs, MemoryObjects]:
    jobs, objects = MemoryJobs(), MemoryObjects()
    objects.put("data", "in/job-1.jsonl", body)
    jobs.create(running_job(compression=compression, **changes))  # type: ignore[arg-type]
    return jobs, objects


def segment(jobs: MemoryJobs, objects: MemoryObjects, *, limits: SegmentLimits):  # type: ignore[no-untyped-def]
    clock = FakeClock()
    return run_segment(
        SegmentRequest(job_id="job-1", attempt=1),
        jobs=jobs,
        objects=objects,
        remaining_ms=clock.remaining_ms,
        limits=limits,
        now=lambda: NOW,
        clock=clock.monotonic,
    )


def run_to_end(
    jobs: MemoryJobs,
    objects: MemoryObjects,
    *,
    cuts: list[int],
    crashes: list[bool] = (),  # type: ignore[assignment]
    text: TextSettings = SMALL,
    **limit_changes: object,
) -> int:
    invocations, done = 0, False
    while not done:
        cut = cuts[invocations % len(cuts)]
        if invocations < len(crashes) and crashes[invocations]:
            jobs.crash_on_checkpoint = 1
        limits = SegmentLimits(safety_margin_ms=1, max_chunks=cut, text=text, **limit_changes)  # type: ignore[arg-type]
        try:
            done = segment(jobs, objects, limits=limits).done
        except RuntimeError:
            jobs.crash_on_checkpoint = 0
        invocations += 1
        assert invocations < 20_000
    return invocations


def written(objects: MemoryObjects) -> dict[str, bytes]:
    """Every part and rejects part, by name (access points left out: they are not output)."""
    return {k: v for k, v in objects.under("data", "out/job-1/").items() if ACCESS_DIR not in k}


def counters(jobs: MemoryJobs) -> tuple[int, ...]:
    record = jobs.get("job-1")
    assert record is not None
    return (
        record.records_in,
        record.records_out,
        record.records_rejected,
        record.records_blank,
        record.records_transformed,
        record.bytes_in,
    )


def plain_run(data: bytes, **changes: object) -> tuple[dict[str, bytes], tuple[int, ...]]:
    jobs, objects = setup(data, "none", **changes)
    run_to_end(jobs, objects, cuts=[1_000_000])
    return written(objects), counters(jobs)


def lines_input(n: int, seed: int = 7) -> bytes:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        if i % 97 == 5:
            out.append(b"not json at all")
        else:
            out.append(json.dumps({"i": i, "v": rng.random(), "w": "x" * rng.randrange(40)}).encode())
    return b"\n".join(out) + b"\n"


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=st.lists(st.tuples(line_st, st.booleans()), max_size=60),
    trailing_newline=st.booleans(),
    compressor=st.sampled_from(sorted(COMPRESSORS)),
    chunk_bytes=st.integers(min_value=1, max_value=200),
    cuts=st.lists(st.integers(min_value=1, max_value=4), min_size=1, max_size=20),
    crashes=st.lists(st.booleans(), max_size=30),
)
def test_compressed_output_equals_the_uncompressed_run_for_any_cut(
    lines: list[tuple[bytes, bool]],
    trailing_newline: bool,
    compressor: str,
    chunk_bytes: int,
    cuts: list[int],
    crashes: list[bool],
) -> None:
    body = b"".join(
        line.replace(b"\n", b"").replace(b"\r", b"") + (b"\r\n" if crlf else b"\n") for line, crlf in lines
    )
    if body and not trailing_newline:
        body = body.rstrip(b"\n")
    compression, compress = COMPRESSORS[compressor]
    expected_parts, expected_counts = plain_run(body, chunk_bytes=chunk_bytes)
    jobs, objects = setup(compress(body), compression, chunk_bytes=chunk_bytes)
    run_to_end(jobs, objects, cuts=cuts, crashes=crashes)
    assert written(objects) == expected_parts
    assert counters(jobs) == expected_counts


@pytest.mark.parametrize("compressor", sorted(COMPRESSORS))
def test_a_long_line_across_segments_gives_the_plain_reject(compressor: str) -> None:
    data = b'{"a": 1}\n' + b'{"long": "' + b"y" * 5000 + b'"}\n' + b'{"b": 2}\n' * 50
    compression, compress = COMPRESSORS[compressor]
    limits = {"lines": LineLimits(max_line_bytes=1024)}
    jobs, objects = setup(data, "none", chunk_bytes=300)
    run_to_end(jobs, objects, cuts=[1], **limits)
    expected = written(objects), counters(jobs)
    jobs, objects = setup(compress(data), compression, chunk_bytes=300)
    run_to_end(jobs, objects, cuts=[1, 2], **limits)
    assert (written(objects), counters(jobs)) == expected


# -- restart points ---------------------------------------------------------------------------------------


def _snapshots(data: bytes, compression: str, text: TextSettings, chunk_bytes: int) -> list[object]:
    """The job record after every segment of a one-chunk-per-segment run (and the objects written)."""
    jobs, objects = setup(data, compression, chunk_bytes=chunk_bytes)
    records = []
    done = False
    while not done:
        limits = SegmentLimits(safety_margin_ms=1, max_chunks=1, text=text)
        done = segment(jobs, objects, limits=limits).done
        records.append(jobs.get("job-1"))
    return [records, objects]


@pytest.mark.parametrize("compressor", ["gzip", "gzip-members", "zstd-frames"])
def test_resume_from_every_checkpoint_reads_from_the_restart_point_not_the_start(compressor: str) -> None:
    data = lines_input(6000)  # ~400 KB of text
    compression, compress = COMPRESSORS[compressor]
    body = compress(data) if compressor != "gzip" else gzip_one(data, level=1)
    text = TextSettings(read_bytes=4096, gzip_spacing=64 * 1024)
    expected_parts, expected_counts = plain_run(data, chunk_bytes=16 * 1024)
    records, first_objects = _snapshots(body, compression, text, 16 * 1024)  # type: ignore[misc]
    points = [r.restart_point.text for r in records if r.restart_point is not None]
    assert points == sorted(points) and len(set(points)) >= 3, "restart points move forward as the job does"
    if compression == "gzip":
        keys = [k for k in first_objects.under("data", "out/job-1/") if ACCESS_DIR in k]
        assert len(keys) == len(set(points))
    for record in records[:-1]:
        # A fresh worker from this checkpoint: the parts already written stay; it writes the rest.
        jobs, objects = MemoryJobs(), MemoryObjects()
        objects.objects = dict(first_objects.objects)
        jobs.records["job-1"] = record
        reads_before = len(objects.reads)
        limits = SegmentLimits(safety_margin_ms=1, max_chunks=1, text=text)
        segment(jobs, objects, limits=limits)
        restart_at = record.restart_point.at if record.restart_point is not None else 0
        # zran reads the gzip header first (one read at 0); every other read is from the restart point on
        # (an access point sits inside a byte: the read starts at the byte before).
        reads = objects.reads[reads_before:]
        if compression == "gzip" and reads[0][0] == 0 and restart_at:
            reads = reads[1:]
        assert min(start for start, _ in reads) >= restart_at - 1, "resumed at its restart point, not byte 0"
        run_to_end(jobs, objects, cuts=[3], text=text)
        assert written(objects) == expected_parts
        assert counters(jobs) == expected_counts


def test_a_long_gzip_segment_keeps_at_most_a_few_access_points_in_memory() -> None:
    data = lines_input(20000)
    body = gzip_one(data, level=1)
    text = TextSettings(read_bytes=4096, gzip_spacing=64 * 1024)
    jobs, objects = setup(body, "gzip", chunk_bytes=8 * 1024)
    counts: list[int] = []
    import jobcore.compressed as compressed

    original = compressed.GzipText.restart_point

    def spy(self, cursor):  # type: ignore[no-untyped-def]
        point = original(self, cursor)
        counts.append(self._gzip.npoints)
        return point

    compressed.GzipText.restart_point = spy  # type: ignore[method-assign]
    try:
        run_to_end(jobs, objects, cuts=[1_000_000], text=text)
    finally:
        compressed.GzipText.restart_point = original  # type: ignore[method-assign]
    assert max(counts) <= MAX_POINTS + 1
    expected_parts, expected_counts = plain_run(data, chunk_bytes=8 * 1024)
    assert written(objects) == expected_parts and counters(jobs) == expected_counts


def test_the_trimmed_index_keeps_the_start_and_one_point() -> None:
    import io

    import indexed_gzip

    data = lines_input(8000)
    body = gzip_one(data, level=1)
    reader = indexed_gzip._IndexedGzipFile(fileobj=io.BytesIO(body), spacing=64 * 1024)
    reader.seek(len(data) - 10)
    points = [text for text, _ in reader.seek_points() if text]
    exported = io.BytesIO()
    reader.export_index(fileobj=exported)
    trimmed = trim_index(exported.getvalue(), points[2])
    fresh = indexed_gzip._IndexedGzipFile(fileobj=io.BytesIO(body), spacing=64 * 1024)
    fresh.import_index(fileobj=io.BytesIO(trimmed))
    assert [text for text, _ in fresh.seek_points()] == [0, points[2]]
    fresh.seek(points[2] + 5)
    assert fresh.read(100) == data[points[2] + 5 : points[2] + 105]


def test_a_changed_compressed_input_fails_with_input_changed() -> None:
    data = lines_input(3000)
    jobs, objects = setup(gzip_one(data), "gzip", chunk_bytes=4096)
    record = jobs.get("job-1")
    assert record is not None
    from jobcore.local import etag_of

    jobs.records["job-1"] = dataclasses.replace(
        record, input_etag=etag_of(gzip_one(data)), input_bytes=len(gzip_one(data))
    )
    segment(jobs, objects, limits=SegmentLimits(safety_margin_ms=1, max_chunks=1, text=SMALL))
    objects.put("data", "in/job-1.jsonl", gzip_one(data + b'{"more": 1}\n'))
    with pytest.raises(InputChangedError):
        run_to_end(jobs, objects, cuts=[1], text=SMALL)


@pytest.mark.parametrize("compressor", ["gzip", "zstd"])
def test_a_truncated_input_fails_with_a_reason(compressor: str) -> None:
    compression, compress = COMPRESSORS[compressor]
    body = compress(lines_input(2000))
    jobs, objects = setup(body[: len(body) // 2], compression, chunk_bytes=4096)
    with pytest.raises(Exception, match=r"truncated|not a readable"):
        run_to_end(jobs, objects, cuts=[1_000], text=SMALL)


# -- compressed output ------------------------------------------------------------------------------------


def test_gzip_output_is_deterministic_per_chunk_and_decompresses_to_the_plain_parts() -> None:
    data = lines_input(800)
    expected_parts, expected_counts = plain_run(data, chunk_bytes=4096)
    jobs, objects = setup(data, "none", chunk_bytes=4096, output_compression="gzip")
    jobs.crash_on_checkpoint = 1
    with pytest.raises(RuntimeError):
        segment(jobs, objects, limits=SegmentLimits(safety_margin_ms=1, max_chunks=1))
    first = dict(written(objects))
    run_to_end(jobs, objects, cuts=[2])
    parts = written(objects)
    for name, body in first.items():
        assert parts[name] == body, "a retried chunk rewrites the same bytes"
    assert all(name.endswith(".jsonl.gz") for name in parts)
    assert {k.removesuffix(".gz"): zlib.decompress(v, wbits=31) for k, v in parts.items()} == expected_parts
    assert counters(jobs) == expected_counts
    assert f"out/job-1/{part_name(0, 'gzip')}" in parts


def test_gzip_member_has_a_fixed_header() -> None:
    body = gzip_member(b'{"a":1}\n')
    assert body[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    assert gzip.decompress(body) == b'{"a":1}\n'
    assert gzip_member(b'{"a":1}\n') == body
