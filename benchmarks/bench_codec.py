"""Codec benchmark (issue 19): the chunk loop against the fast codecs' floors and against today's loop, in one
run, on the same records, so that the targets are ratios measured side by side (the machine is shared:
compare ratios, not absolute rates).

Measured, each the best of several interleaved rounds of CPU time (time.process_time: what another process
takes from this one's core is not counted against it):
- the floors: msgspec and orjson decoding each line, decoding and re-encoding it; the standard library's;
- `process_lines` (jobcore.lines: msgspec, with the standard library for what it refuses) and
  `reference_process_lines` (the standard library alone, as the worker ran before) for the built-in
  transforms, in 1 MiB chunks as the worker calls them; `normalize` and `flatten` as they were before
  (verbatim copies below, TODAY_*) beside the cached ones;
- the worker end to end (`run_segment` over a file-backed store, 1 MiB chunks; passthrough, compact and
  normalize jobs), with `process_lines`, and as today (the reference path, today's normalize).

    make bench                      # or: .venv/bin/python benchmarks/bench_codec.py [--records 200000]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lambda_src"))

from jobcore import segment as segment_module  # noqa: E402 - after the path is set
from jobcore.lines import process_lines, reference_process_lines, split_complete  # noqa: E402
from jobcore.local import FileObjectStore, MemoryJobStore  # noqa: E402
from jobcore.model import JobRecord  # noqa: E402
from jobcore.segment import SegmentLimits, SegmentRequest, run_segment  # noqa: E402
from jobcore.transforms import TRANSFORMS, RecordError, Transform  # noqa: E402
from pipeline_contract import RUNNING  # noqa: E402

CHUNK_BYTES = 1024 * 1024
ROUNDS = 3
TARGET_PASSTHROUGH = 0.8  # x msgspec's decode-only rate
TARGET_COMPACT = 0.6  # x msgspec's decode + encode rate
TARGET_NORMALIZE = 2.0  # x today's normalize
TARGET_WORKER = 2.0  # x today's worker MiB/s, passthrough


# --- the records: the shape (nested objects, strings, floats, booleans), deterministic ------------


def generate(count: int, seed: int = 19) -> list[bytes]:
    """~237-byte lines as Python's json.dumps writes them (spaces after separators), keys in the mixed
    styles `normalize` converts; one line in 8 holds non-ASCII text or an escape, one in 200 a float below
    1e-4 (written by the standard library: the fast encoder spells it differently)."""
    rng = random.Random(seed)
    cities = ["Paris", "Oslo", "Lima", "Zürich", "København", "Kraków", 'Quote "Q"', "Tab\tCity"]
    lines = []
    for i in range(count):
        record: dict[str, Any] = {
            "id": 100_000 + i,
            "userName": f" user {rng.randrange(10**6)} ",
            "Account": {
                "Plan Type": rng.choice(["free", "pro", "team"]),
                "isActive": rng.random() < 0.5,
                "Credit-Limit": round(rng.uniform(0, 5000), 2),
            },
            "geo": {
                "lat": round(rng.uniform(-90, 90), 4),
                "lon": round(rng.uniform(-180, 180), 4),
                "city": cities[rng.randrange(len(cities))] if i % 8 == 0 else cities[i % 3],
            },
            "Tags": rng.sample(["alpha", "beta", "gamma", "delta"], 2),
            "score": rng.random() * (1e-5 if i % 200 == 0 else 1),
        }
        lines.append(json.dumps(record, ensure_ascii=False).encode())
    return lines


def chunks(data: bytes) -> list[bytes]:
    """The data cut as the worker cuts it: ranges of CHUNK_BYTES, each ending at its last newline."""
    out, carry = [], b""
    for start in range(0, len(data), CHUNK_BYTES):
        complete, carry = split_complete(carry + data[start : start + CHUNK_BYTES], at_end=False)
        out.append(complete)
    return [*out, carry] if carry else out


# --- today's transforms, verbatim from main before the codec work (commit ceb2f93) -------------------------

_NON_WORD = re.compile(r"[^0-9a-zA-Z]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def _today_snake(key: str) -> str:
    return _NON_WORD.sub("_", _CAMEL.sub("_", key.strip())).strip("_").lower()


def _today_normalize_value(value: Any) -> Any:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, dict):
        return _today_normalize_object(value)
    if isinstance(value, list):
        return [_today_normalize_value(item) for item in value]
    return value


def _today_normalize_object(record: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in record.items():
        name = _today_snake(key)
        if not name:
            raise RecordError(f"key {key!r} has no letters or digits")
        if name in out:
            raise RecordError(f"keys collide after normalization: {name!r}")
        out[name] = _today_normalize_value(value)
    return out


def today_normalize(record: dict[str, Any]) -> dict[str, Any]:
    return _today_normalize_object(record)


def today_flatten(record: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    _today_flatten_into(out, "", record)
    return out


def _today_flatten_into(out: dict[str, Any], prefix: str, obj: dict[str, Any]) -> None:
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            _today_flatten_into(out, f"{name}.", value)
        elif name in out:
            raise RecordError(f"key {name!r} appears twice once flattened")
        else:
            out[name] = value


# --- the cases ----------------------------------------------------------------------------------------------


def loop(fn: Callable[[Any], Any], lines: list[Any]) -> Callable[[], None]:
    def run() -> None:
        for line in lines:
            fn(line)

    return run


def decode_chunks(decode: Callable[[bytes], Any], parts: list[bytes]) -> Callable[[], None]:
    """The least a byte-exact chunk loop does with this codec: cut each chunk into its lines (which it
    hands back as its output) and decode each one."""

    def run() -> None:
        for part in parts:
            for line in part.split(b"\n"):
                if line:
                    decode(line)

    return run


def recode_chunks(recode: Callable[[bytes], bytes], parts: list[bytes]) -> Callable[[], None]:
    """The least a re-serializing chunk loop does with this codec: cut each chunk into lines, decode and
    encode each, and keep the chunk's new lines until it is done (they are handed back together)."""

    def run() -> None:
        for part in parts:
            kept = [recode(line) for line in part.split(b"\n") if line]
            del kept

    return run


def chunk_loop(
    fn: Callable[..., Any], parts: list[bytes], transform: Transform, *, keeps_bytes: bool
) -> Callable[[], None]:
    def run() -> None:
        for part in parts:
            fn(part, start_offset=0, transform=transform, keeps_bytes=keeps_bytes)

    return run


def worker(workdir: Path, name: str, transform: str, *, today: bool) -> Callable[[], None]:
    """One job of the whole input through run_segment: with process_lines, or as today (the reference path,
    and today's normalize or flatten in the registry)."""

    def run() -> None:
        jobs = MemoryJobStore()
        jobs.create(
            JobRecord(
                job_id="bench",
                status=RUNNING,
                input=f"s3://data/{name}",
                transform=transform,
                chunk_bytes=CHUNK_BYTES,
                output_prefix=f"s3://data/out/{transform}-{'today' if today else 'now'}/",
            )
        )
        registered = TRANSFORMS[transform]
        if today:
            segment_module.process_lines = reference_process_lines
            fn = {"normalize": today_normalize, "flatten": today_flatten}.get(transform, registered.fn)
            TRANSFORMS[transform] = dataclasses.replace(registered, fn=fn)
        try:
            result = run_segment(
                SegmentRequest(job_id="bench", attempt=1),
                jobs=jobs,
                objects=FileObjectStore(workdir),
                remaining_ms=lambda: 900_000,
                limits=SegmentLimits(safety_margin_ms=1_000),
                now=lambda: "2026-01-01T00:00:00.000Z",
            )
        finally:
            segment_module.process_lines = process_lines
            TRANSFORMS[transform] = registered
        assert result.done

    return run


def measure(cases: dict[str, Callable[[], None]], rounds: int) -> dict[str, float]:
    """The best CPU seconds of each case over `rounds` rounds, the cases interleaved within each round."""
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(rounds):
        for name, run in cases.items():
            started = time.process_time()
            run()
            best[name] = min(best[name], time.process_time() - started)
    return best


def same_answers(parts: list[bytes]) -> Iterator[str]:
    """The fast and reference paths agree on this data (the property tests check it on hostile data)."""
    for name in ("passthrough", "compact", "normalize", "flatten"):
        entry = TRANSFORMS[name]
        for part in parts[:3]:
            args = {"start_offset": 0, "transform": entry.bind(), "keeps_bytes": entry.keeps_bytes}
            fast, reference = process_lines(part, **args), reference_process_lines(part, **args)
            if (fast.output, fast.rejects) != (reference.output, reference.rejects):
                yield name


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    args = parser.parse_args()

    lines = generate(args.records)
    data = b"\n".join(lines) + b"\n"
    parts = chunks(data)
    mib = len(data) / 2**20
    print(
        f"{len(lines):,} records, {len(data) / len(lines):.0f} bytes a line ({mib:.1f} MiB), "
        f"chunks of {CHUNK_BYTES // 1024} KiB; CPU time, best of {args.rounds} interleaved rounds"
    )
    differ = sorted(set(same_answers(parts)))
    if differ:
        print(f"  FAIL  fast and reference paths differ on this data: {', '.join(differ)}")
        return 1

    decode, encode = msgspec.json.decode, msgspec.json.encode
    std_decoder = json.JSONDecoder()
    t = {name: TRANSFORMS[name].bind() for name in ("passthrough", "compact", "normalize", "flatten")}
    cases: dict[str, Callable[[], None]] = {
        "msgspec decode": loop(decode, lines),
        "msgspec decode, chunks": decode_chunks(decode, parts),
        "msgspec decode + encode, chunks": recode_chunks(lambda line: encode(decode(line)), parts),
        "msgspec decode + encode": loop(lambda line: encode(decode(line)), lines),
        "orjson loads": loop(orjson.loads, lines),
        "orjson loads + dumps": loop(lambda line: orjson.dumps(orjson.loads(line)), lines),
        "stdlib json.loads": loop(lambda line: std_decoder.decode(line.decode()), lines),
        "passthrough": chunk_loop(process_lines, parts, t["passthrough"], keeps_bytes=True),
        "compact": chunk_loop(process_lines, parts, t["compact"], keeps_bytes=False),
        "normalize": chunk_loop(process_lines, parts, t["normalize"], keeps_bytes=False),
        "flatten": chunk_loop(process_lines, parts, t["flatten"], keeps_bytes=False),
        "passthrough (today)": chunk_loop(reference_process_lines, parts, t["passthrough"], keeps_bytes=True),
        "compact (today)": chunk_loop(reference_process_lines, parts, t["compact"], keeps_bytes=False),
        "normalize (today)": chunk_loop(reference_process_lines, parts, today_normalize, keeps_bytes=False),
        "flatten (today)": chunk_loop(reference_process_lines, parts, today_flatten, keeps_bytes=False),
    }
    records = [decode(line) for line in lines[: min(len(lines), 50_000)]]
    transform_cases: dict[str, Callable[[], None]] = {
        "normalize alone": loop(t["normalize"], records),
        "normalize alone (today)": loop(today_normalize, records),
        "flatten alone": loop(t["flatten"], records),
        "flatten alone (today)": loop(today_flatten, records),
    }
    with tempfile.TemporaryDirectory(prefix="bench-codec-") as tmp:
        workdir = Path(tmp)
        (workdir / "data").mkdir()
        (workdir / "data" / "input.jsonl").write_bytes(data)
        worker_cases = {
            f"worker {name}{' (today)' if today else ''}": worker(workdir, "input.jsonl", name, today=today)
            for name in ("passthrough", "compact", "normalize")
            for today in (False, True)
        }
        seconds = measure({**cases, **transform_cases, **worker_cases}, args.rounds)

    rate = {name: len(lines) / s for name, s in seconds.items()}
    print()
    for name in cases:
        print(f"  {name:<32} {rate[name] / 1000:8,.0f} k records/s")
    print()
    for name, count in (("normalize", len(records)), ("flatten", len(records))):
        now, before = seconds[f"{name} alone"], seconds[f"{name} alone (today)"]
        print(
            f"  {name} alone: {now / count * 1e9:,.0f} ns a record, today {before / count * 1e9:,.0f} "
            f"({before / now:.2f}x)"
        )
    for name in worker_cases:
        print(
            f"  {name:<32} {mib / seconds[name]:8.1f} MiB/s   ({seconds[name]:.2f} s, "
            f"{seconds[name] / mib * 1024:.1f} s of CPU a GiB)"
        )

    def ratio(name: str, floor: str) -> float:
        return rate[name] / rate[floor]

    print()
    print(f"        orjson / msgspec: loads {ratio('orjson loads', 'msgspec decode'):.2f}x, loads + dumps "
          f"{ratio('orjson loads + dumps', 'msgspec decode + encode'):.2f}x")  # fmt: skip
    print(
        f"        against the codec on lines already cut (no chunk to split, nothing kept): passthrough "
        f"{ratio('passthrough', 'msgspec decode'):.2f}x decode, compact "
        f"{ratio('compact', 'msgspec decode + encode'):.2f}x decode + encode"
    )
    passthrough = ratio("passthrough", "msgspec decode, chunks")
    compact = ratio("compact", "msgspec decode + encode, chunks")
    normalize = ratio("normalize", "normalize (today)")
    worker_gain = seconds["worker passthrough (today)"] / seconds["worker passthrough"]
    checks = [
        (
            f"passthrough / msgspec decode of the same chunks = {passthrough:.2f}x (target >= {TARGET_PASSTHROUGH})",
            passthrough >= TARGET_PASSTHROUGH,
        ),
        (
            f"compact / msgspec decode + encode of the same chunks = {compact:.2f}x (target >= {TARGET_COMPACT})",
            compact >= TARGET_COMPACT,
        ),
        (
            f"normalize / today's = {normalize:.2f}x (target >= {TARGET_NORMALIZE})",
            normalize >= TARGET_NORMALIZE,
        ),
        (
            f"worker passthrough MiB/s / today's = {worker_gain:.2f}x (target >= {TARGET_WORKER})",
            worker_gain >= TARGET_WORKER,
        ),
    ]
    print()
    for text, ok in checks:
        print(f"  {'PASS' if ok else 'FAIL'}  {text}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
