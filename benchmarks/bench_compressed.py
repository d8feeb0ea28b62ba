"""Compressed-input benchmark: the worker's chunk loop over gzip and zstd inputs, in fresh subprocesses,
at two sizes: peak RSS (flat with the input's size) and MiB/s of compressed and of decompressed input; then
what resuming costs: a gzip segment resumed from its access point against decompressing from the start,
and the time a single-frame zstd's resume spends skipping to its cursor (the cost the ingest's
`zstd_single_frame_max_bytes` bounds). Not a timed test: the machine is shared, compare within one run.

    make bench        # or: .venv/bin/python benchmarks/bench_compressed.py [--sizes 500000 2000000]
"""

from __future__ import annotations

import argparse
import gzip
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lambda_src"))

from jobcore.compressed import TextSettings, ZstdText  # noqa: E402 - after the path is set
from jobcore.local import FileObjectStore, MemoryJobStore  # noqa: E402
from jobcore.model import JobRecord  # noqa: E402
from jobcore.segment import SegmentLimits, SegmentRequest, run_segment  # noqa: E402
from pipeline_contract import RUNNING  # noqa: E402

try:
    from compression import zstd  # type: ignore[import-not-found]
except ImportError:
    from backports import zstd  # type: ignore[import-not-found,no-redef]

CHUNK_BYTES = 1024 * 1024
TRANSFORM = "passthrough"
TARGET_FLAT = 1.15  # peak RSS at the largest size within 15% of the smallest


KINDS = ("gzip", "zstd", "zstd-frames")


def prepare(data: Path, records: int) -> None:
    """The plain input and its three compressed forms, written by a child process: the parent never holds
    them (Linux keeps a parent's peak RSS in a child's ru_maxrss across fork and exec)."""
    text = "".join(
        json.dumps({"Id": i, "name": f"user {i}", "email": f"u{i}@example.com", "score": i % 97}) + "\n"
        for i in range(records)
    ).encode()
    (data / "plain.jsonl").write_bytes(text)
    for kind in KINDS:
        (data / f"input.{kind}").write_bytes(compress(kind, text))


def compress(kind: str, text: bytes) -> bytes:
    if kind == "gzip":
        return gzip.compress(text, compresslevel=6, mtime=0)
    if kind == "zstd-frames":  # 4 MiB frames, as `split --filter='zstd -c'` or pzstd would write
        step = 4 * 1024 * 1024
        return b"".join(zstd.compress(text[i : i + step]) for i in range(0, len(text), step))
    return zstd.compress(text)


def run(workdir: Path, name: str, compression: str, max_chunks: int = 0) -> dict[str, float]:
    jobs = MemoryJobStore()
    jobs.create(
        JobRecord(
            job_id="bench",
            status=RUNNING,
            input=f"s3://data/{name}",
            transform=TRANSFORM,
            chunk_bytes=CHUNK_BYTES,
            output_prefix="s3://data/out/bench/",
            compression=compression,
        )
    )
    started = time.perf_counter()
    segments = 0
    done = False
    while not done:
        done = run_segment(
            SegmentRequest(job_id="bench", attempt=1),
            jobs=jobs,
            objects=FileObjectStore(workdir),
            remaining_ms=lambda: 900_000,
            limits=SegmentLimits(safety_margin_ms=1_000, max_chunks=max_chunks),
            now=lambda: "2026-01-01T00:00:00.000Z",
        ).done
        segments += 1
    seconds = time.perf_counter() - started
    record = jobs.get("bench")
    assert record is not None
    return {"records": record.records_out, "seconds": seconds, "segments": segments, "text": record.bytes_in}


def child(mode: str, workdir: Path, name: str, compression: str, max_chunks: int) -> None:
    if mode == "prepare":
        prepare(workdir / "data", max_chunks)
        print(json.dumps({}))
        return
    if mode == "skip":
        print(json.dumps({"mib_per_s": skip_rate((workdir / "data" / name).read_bytes(), max_chunks)}))
        return
    stats = run(workdir, name, compression, max_chunks)
    stats["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(stats))


def call(
    mode: str, workdir: Path, name: str = "-", compression: str = "-", number: int = 0
) -> dict[str, float]:
    output = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(workdir), name, compression, str(number)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return dict(json.loads(output.strip().splitlines()[-1]))


def measure(workdir: Path, name: str, compression: str, max_chunks: int = 0) -> dict[str, float]:
    return call("run", workdir, name, compression, max_chunks)


def skip_rate(body: bytes, text_size: int) -> float:
    """MiB/s of text a resumed single-frame zstd segment skips through to reach its cursor."""
    source = ZstdText(lambda s, e: body[s:e], len(body), restart=None, settings=TextSettings(), describe="x")
    started = time.perf_counter()
    source.read(text_size - 10, text_size)
    return text_size / 2**20 / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[500_000, 2_000_000])
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), args.child[2], args.child[3], int(args.child[4]))
        return 0

    peaks: dict[tuple[str, int], float] = {}
    checks: list[tuple[str, bool]] = []
    large, small = max(args.sizes), min(args.sizes)
    with tempfile.TemporaryDirectory(prefix="bench-compressed-") as tmp:
        workdir = Path(tmp)
        data = workdir / "data"
        data.mkdir()
        for size in args.sizes:
            call("prepare", workdir, number=size)
            text_bytes = (data / "plain.jsonl").stat().st_size
            print(
                f"{size:>9,} records ({text_bytes / 2**20:.0f} MiB of text), chunk 1 MiB, transform {TRANSFORM}"
            )
            plain = measure(workdir, "plain.jsonl", "none")
            peaks[("plain", size)] = plain["peak_rss_mib"]
            print(
                f"  {'plain':<12} peak RSS {plain['peak_rss_mib']:6.1f} MiB   "
                f"{text_bytes / 2**20 / plain['seconds']:7.1f} MiB/s"
            )
            for kind in KINDS:
                name = f"input.{kind}"
                compressed = (data / name).stat().st_size
                stats = measure(workdir, name, "gzip" if kind == "gzip" else "zstd")
                assert stats["records"] == size and stats["text"] == text_bytes, stats
                peaks[(kind, size)] = stats["peak_rss_mib"]
                print(
                    f"  {kind:<12} peak RSS {stats['peak_rss_mib']:6.1f} MiB   "
                    f"{compressed / 2**20 / stats['seconds']:7.1f} MiB/s compressed   "
                    f"{text_bytes / 2**20 / stats['seconds']:7.1f} MiB/s decompressed   "
                    f"({compressed / 2**20:.1f} MiB, {stats['seconds']:.2f} s)"
                )
            if size != large:
                continue
            one = measure(workdir, "input.gzip", "gzip")
            many = measure(workdir, "input.gzip", "gzip", max_chunks=8)
            print(
                f"\n  gzip, {large:,} records in {many['segments']:.0f} segments of 8 chunks (each resumed from "
                f"its access point): {many['seconds']:.2f} s, against {one['seconds']:.2f} s in one segment"
            )
            checks.append(
                (
                    f"gzip resumed every 8 chunks / one segment = {many['seconds'] / one['seconds']:.2f} "
                    "(target <= 1.5: no segment decompresses from the start)",
                    many["seconds"] / one["seconds"] <= 1.5,
                )
            )
            single = (data / "input.zstd").stat().st_size
            rate = call("skip", workdir, "input.zstd", number=text_bytes)["mib_per_s"]
            text_per_limit = 64 * text_bytes / single
            print(
                f"  single-frame zstd: a resumed segment skips {rate:.0f} MiB/s of text to reach its cursor; "
                f"its last segment spends ~{text_bytes / 2**20 / rate:.2f} s skipping {text_bytes / 2**20:.0f} "
                f"MiB of text ({single / 2**20:.1f} MiB compressed); the default limit of 64 MiB compressed "
                f"(~{text_per_limit:.0f} MiB of text at this ratio) costs ~{text_per_limit / rate:.1f} s a segment"
            )
    for kind in ("plain", *KINDS):
        flat = peaks[(kind, large)] / peaks[(kind, small)]
        checks.append(
            (
                f"{kind} peak RSS at {large:,} / at {small:,} = {flat:.3f} (target <= {TARGET_FLAT})",
                flat <= TARGET_FLAT,
            )
        )
    print()
    for label, ok in checks:
        print(f"  {'PASS' if ok else 'FAIL'}  {label}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
