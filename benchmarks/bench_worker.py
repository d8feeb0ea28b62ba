"""Worker chunk-loop benchmark: peak RSS and records/s at 1e5 and 1e6 records, beside a naive
read-everything baseline, in the same run (the machine is shared: compare ratios, not absolute times).

Each case runs in a fresh subprocess so its peak RSS (ru_maxrss) is its own. The chunked case runs the
real `jobcore.segment.run_segment` over a file-backed ObjectStore (ranged reads, parts written to disk)
and an in-memory JobStore; the naive case reads the whole file into a list, transforms every record into
another list and writes one output file, as the seed article's function did.

    make bench                       # or: .venv/bin/python benchmarks/bench_worker.py [--sizes 100000 1000000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lambda_src"))

from jobcore.local import FileObjectStore, MemoryJobStore  # noqa: E402 - after the path is set
from jobcore.model import JobRecord  # noqa: E402
from jobcore.segment import SegmentLimits, SegmentRequest, run_segment  # noqa: E402
from jobcore.transforms import TRANSFORMS  # noqa: E402
from pipeline_contract import RUNNING  # noqa: E402

CHUNK_BYTES = 1024 * 1024
TRANSFORM = "normalize"
TARGET_FLAT = 1.10  # peak RSS at the largest size within 10% of the smallest
TARGET_VS_NAIVE = 20.0  # at least 20x below the naive baseline
TARGET_SPEED = 1.0  # at least the naive baseline's records/s


def generate(path: Path, records: int) -> None:
    with path.open("w") as out:
        for i in range(records):
            out.write(
                json.dumps(
                    {
                        "Id": i,
                        "First Name": f" user {i} ",
                        "eMail": f"u{i}@example.com",
                        "Tags": ["a", "b"],
                        "Score": i % 97,
                    }
                )
            )
            out.write("\n")


def run_chunked(workdir: Path, input_name: str) -> dict[str, float]:
    jobs = MemoryJobStore()
    jobs.create(
        JobRecord(
            job_id="bench",
            status=RUNNING,
            input=f"s3://data/{input_name}",
            transform=TRANSFORM,
            chunk_bytes=CHUNK_BYTES,
            output_prefix="s3://data/out/chunked/",
        )
    )
    started = time.perf_counter()
    result = run_segment(
        SegmentRequest(job_id="bench", attempt=1),
        jobs=jobs,
        objects=FileObjectStore(workdir),
        remaining_ms=lambda: 900_000,
        limits=SegmentLimits(safety_margin_ms=1_000),
        now=lambda: "2026-01-01T00:00:00.000Z",
    )
    seconds = time.perf_counter() - started
    assert result.done
    record = jobs.get("bench")
    assert record is not None
    return {"records": record.records_out, "seconds": seconds}


def run_naive(workdir: Path, input_name: str) -> dict[str, float]:
    transform = TRANSFORMS[TRANSFORM].bind()
    started = time.perf_counter()
    lines = (workdir / "data" / input_name).read_text().splitlines()
    records = [json.loads(line) for line in lines if line.strip()]
    output = [json.dumps(transform(r), ensure_ascii=False, separators=(",", ":")) for r in records]
    out = workdir / "data" / "out" / "naive.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(output) + "\n")
    return {"records": len(output), "seconds": time.perf_counter() - started}


def child(mode: str, workdir: Path, input_name: str) -> None:
    stats = (run_chunked if mode == "chunked" else run_naive)(workdir, input_name)
    stats["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(stats))


def measure(mode: str, workdir: Path, input_name: str) -> dict[str, float]:
    output = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(workdir), input_name],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return dict(json.loads(output.strip().splitlines()[-1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), args.child[2])
        return 0

    results: dict[tuple[str, int], dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-worker-") as tmp:
        workdir = Path(tmp)
        (workdir / "data").mkdir()
        for size in args.sizes:
            name = f"input-{size}.jsonl"
            generate(workdir / "data" / name, size)
            mib = (workdir / "data" / name).stat().st_size / 2**20
            print(
                f"{size:>9,} records ({mib:.0f} MiB), chunk {CHUNK_BYTES // 1024} KiB, transform {TRANSFORM}"
            )
            for mode in ("chunked", "naive"):
                stats = measure(mode, workdir, name)
                assert stats["records"] == size, (
                    f"{mode} produced {stats['records']} records, expected {size}"
                )
                results[(mode, size)] = stats
                print(
                    f"  {mode:<8} peak RSS {stats['peak_rss_mib']:7.1f} MiB   "
                    f"{size / stats['seconds']:>10,.0f} records/s   ({stats['seconds']:.2f} s)"
                )
            (workdir / "data" / name).unlink()

    small, large = min(args.sizes), max(args.sizes)
    flat = results[("chunked", large)]["peak_rss_mib"] / results[("chunked", small)]["peak_rss_mib"]
    vs_naive = results[("naive", large)]["peak_rss_mib"] / results[("chunked", large)]["peak_rss_mib"]
    speed = results[("naive", large)]["seconds"] / results[("chunked", large)]["seconds"]
    checks = [
        (f"peak RSS at {large:,} / at {small:,} = {flat:.3f} (target <= {TARGET_FLAT})", flat <= TARGET_FLAT),
        (
            f"naive / chunked peak RSS at {large:,} = {vs_naive:.1f}x (target >= {TARGET_VS_NAIVE:.0f}x)",
            vs_naive >= TARGET_VS_NAIVE,
        ),
        (
            f"chunked / naive throughput at {large:,} = {speed:.2f}x (target >= {TARGET_SPEED})",
            speed >= TARGET_SPEED,
        ),
    ]
    print()
    for text, ok in checks:
        print(f"  {'PASS' if ok else 'FAIL'}  {text}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
