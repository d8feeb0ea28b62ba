"""The fault matrix's cells: a fault (chaos rules of the local cloud) and a handful of jobs of known content.

Each cell builds its jobs from a seed, so a run is reproducible: the same inputs, the same requests and the
same chaos seeds. Inputs are JSON Lines whose records the checker knows by construction (the jobs use the
`passthrough` transform), so the expected output needs no pipeline code to compute.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from faultmatrix.checker import SentRequest

WORKER = "<worker>"  # placeholder for the deployed worker function's name in a chaos rule


@dataclass(frozen=True, kw_only=True)
class Job:
    """One request to send (maybe several times) and the input object it names."""

    request: SentRequest
    body: dict[str, Any] | str  # the request, or raw text (a poison body)
    input_key: str | None = None
    input_bytes: bytes = b""


@dataclass(frozen=True, kw_only=True)
class Cell:
    key: str
    title: str
    rules: tuple[dict[str, Any], ...]
    jobs: Callable[[str, int, Callable[[str], str]], list[Job]]  # (prefix, seed, input_uri) -> jobs
    timeout_seconds: float = 150.0
    notes: tuple[str, ...] = field(default_factory=tuple)


def records(rng: random.Random, count: int, tag: str) -> list[dict[str, Any]]:
    return [
        {"id": i, "tag": tag, "n": rng.randrange(10**6), "pad": "p" * rng.randrange(20, 120)}
        for i in range(count)
    ]


def jsonl(items: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(item).encode() + b"\n" for item in items)


def good_job(
    prefix: str, index: int, rng: random.Random, uri: Callable[[str], str], *, count: int, **expect: Any
) -> Job:
    job_id = f"{prefix}-j{index}"
    items = records(rng, count, job_id)
    key = f"in/{job_id}.jsonl"
    return Job(
        request=SentRequest(job_id=job_id, expect="succeed", records=tuple(items), **expect),
        body={"job_id": job_id, "input": uri(key), "transform": "passthrough"},
        input_key=key,
        input_bytes=jsonl(items),
    )


def handful(count: int = 3, size: int = 8000) -> Callable[[str, int, Callable[[str], str]], list[Job]]:
    """`count` good jobs of `size` records each (8,000 records: ~12 segments of one 64 KiB chunk locally)."""

    def build(prefix: str, seed: int, uri: Callable[[str], str]) -> list[Job]:
        rng = random.Random(f"{prefix}:{seed}")  # noqa: S311 - test data, not cryptography
        return [good_job(prefix, i, rng, uri, count=size, max_executions=1) for i in range(count)]

    return build


def duplicates(prefix: str, seed: int, uri: Callable[[str], str]) -> list[Job]:
    rng = random.Random(f"{prefix}:{seed}")  # noqa: S311
    job = good_job(prefix, 0, rng, uri, count=8000, max_executions=1)
    return [
        Job(
            request=SentRequest(**{**job.request.__dict__, "copies": 20}),
            body=job.body,
            input_key=job.input_key,
            input_bytes=job.input_bytes,
        )
    ]


def poison_mix(prefix: str, seed: int, uri: Callable[[str], str]) -> list[Job]:
    rng = random.Random(f"{prefix}:{seed}")  # noqa: S311
    jobs = [good_job(prefix, i, rng, uri, count=4000, max_executions=1) for i in range(3)]

    def poison(index: int, body: dict[str, Any] | str) -> Job:
        job_id = f"{prefix}-p{index}"
        body = {"job_id": job_id, **body} if isinstance(body, dict) else body.replace("JOB", job_id)
        return Job(request=SentRequest(job_id=job_id, expect="dlq"), body=body)

    jobs += [
        poison(0, '{"job_id": "JOB", "input": '),  # not JSON: its job id is not readable either
        poison(1, {"input": uri(f"in/{prefix}-p1.jsonl"), "colour": "red"}),  # unknown field
        poison(2, {"input": "s3://somebody-elses-bucket/in/x.jsonl"}),  # outside the allowed locations
        poison(3, {"input": uri(f"in/{prefix}-p3-never-uploaded.jsonl")}),  # missing input: FAILED at once
        poison(4, {"input": uri(f"in/{prefix}-p1.jsonl"), "chunk_bytes": 12}),  # out of range
    ]
    return jobs


def long_job(prefix: str, seed: int, uri: Callable[[str], str]) -> list[Job]:
    rng = random.Random(f"{prefix}:{seed}")  # noqa: S311
    # local: 64 KiB a chunk, one chunk a segment, 20 segments an execution: ~70 chunks = 4+ executions.
    return [good_job(prefix, 0, rng, uri, count=40_000, min_executions=4)]


def permanent(prefix: str, seed: int, uri: Callable[[str], str]) -> list[Job]:
    rng = random.Random(f"{prefix}:{seed}")  # noqa: S311
    jobs = [good_job(prefix, i, rng, uri, count=4000) for i in range(2)]
    return [
        Job(
            request=SentRequest(job_id=j.request.job_id, expect="dlq"),
            body=j.body,
            input_key=j.input_key,
            input_bytes=j.input_bytes,
        )
        for j in jobs
    ]


def failing_jobs(prefix: str, seed: int, uri: Callable[[str], str]) -> list[Job]:
    """Good jobs, plus failures whose requests must reach the DLQ through each sender under test: the
    ingest (a missing input, a request without an input) and the failures function (a job that fails in
    the worker: its reject ratio is exceeded)."""
    rng = random.Random(f"{prefix}:{seed}")  # noqa: S311
    jobs = handful(2, 4000)(prefix, seed, uri)
    missing, rejecting = f"{prefix}-m0", f"{prefix}-m2"
    jobs.append(
        Job(
            request=SentRequest(job_id=missing, expect="dlq"),
            body={"job_id": missing, "input": uri(f"in/{missing}.jsonl")},
        )
    )
    for index in range(3):
        invalid = f"{prefix}-m1{index}"
        jobs.append(Job(request=SentRequest(job_id=invalid, expect="dlq"), body={"job_id": invalid}))
    key = f"in/{rejecting}.jsonl"
    jobs.append(
        Job(
            request=SentRequest(job_id=rejecting, expect="dlq"),
            body={
                "job_id": rejecting,
                "input": uri(key),
                "transform": "passthrough",
                "max_reject_ratio": 0.1,
            },
            input_key=key,
            input_bytes=jsonl(records(rng, 300, rejecting)) + b"not json\n" * 300,
        )
    )
    return jobs


CELLS: tuple[Cell, ...] = (
    Cell(
        key="F1",
        title="S3 GetObject throttled 30% (SlowDown 503)",
        rules=({"service": "s3", "operation": "GetObject", "error": "SlowDown", "rate": 0.3},),
        jobs=handful(),
    ),
    Cell(
        key="F2",
        title="S3 PutObject 5xx 20% (InternalError 500)",
        rules=({"service": "s3", "operation": "PutObject", "error": "InternalError", "rate": 0.2},),
        jobs=handful(),
    ),
    Cell(
        key="F3",
        title="DynamoDB UpdateItem throttled 20% (checkpoints and Mark* tasks)",
        rules=(
            {
                "service": "dynamodb",
                "operation": "UpdateItem",
                "error": "ProvisionedThroughputExceededException",
                "rate": 0.2,
            },
        ),
        jobs=handful(),
    ),
    Cell(
        key="F4",
        title="ingest's DynamoDB and StartExecution calls failing 30%",
        rules=(
            {"service": "dynamodb", "operation": "PutItem", "error": "InternalServerError", "rate": 0.3},
            {"service": "dynamodb", "operation": "GetItem", "error": "InternalServerError", "rate": 0.3},
            {
                "service": "stepfunctions",
                "operation": "StartExecution",
                "error": "ThrottlingException",
                "rate": 0.3,
            },
        ),
        jobs=handful(),
    ),
    Cell(
        key="F5",
        title="SQS SendMessage failing 50% (the DLQ sends of the ingest and of the failures function)",
        rules=({"service": "sqs", "operation": "SendMessage", "error": "InternalError", "rate": 0.5},),
        jobs=failing_jobs,
    ),
    Cell(
        key="F6",
        title="worker environment crashes in 10% of invocations",
        rules=(
            {"service": "lambda", "operation": "Invoke", "function": WORKER, "error": "crash", "rate": 0.1},
        ),
        jobs=handful(),
    ),
    Cell(
        key="F7",
        title="S3 GetObject latency 11 s (beyond the 10 s worker timeout) on 20% of reads",
        rules=({"service": "s3", "operation": "GetObject", "latency_ms": 11_000, "rate": 0.2},),
        jobs=handful(),
        timeout_seconds=240.0,
    ),
    Cell(
        key="F8",
        title="the same request delivered 20 times at once",
        rules=(),
        jobs=duplicates,
    ),
    Cell(
        key="F9",
        title="poison requests mixed with good ones",
        rules=(),
        jobs=poison_mix,
    ),
    Cell(
        key="F10",
        title="a long job (4+ executions, 3+ continue-as-new hand-overs) under F1 + F3",
        rules=(
            {"service": "s3", "operation": "GetObject", "error": "SlowDown", "rate": 0.3},
            {
                "service": "dynamodb",
                "operation": "UpdateItem",
                "error": "ProvisionedThroughputExceededException",
                "rate": 0.2,
            },
        ),
        jobs=long_job,
        timeout_seconds=300.0,
    ),
    Cell(
        key="F11",
        title="a permanent fault (AccessDenied on GetObject): the jobs must end in the DLQ",
        rules=({"service": "s3", "operation": "GetObject", "error": "AccessDenied", "rate": 1.0},),
        jobs=permanent,
    ),
)
CELLS_BY_KEY = {cell.key: cell for cell in CELLS}
