"""A transform over a local file, for `pipeline try`: the worker's own segment code (jobcore.segment) run
segment after segment on local files, with an in-memory job record and no cloud. Outputs and rejects are
written as the pipeline writes them (`part-OFFSET.jsonl`, `rejects/part-OFFSET.jsonl`). A gzip or zstd file
is read through its decompressor, and a file the ingest would refuse is refused with the same reason
(jobcore.formats).
"""

from __future__ import annotations

from pathlib import Path

from jobcore import formats
from jobcore.errors import PipelineError, ValidationError
from jobcore.local import FileObjectStore, MemoryJobStore
from jobcore.model import JobRecord
from jobcore.segment import SegmentLimits, SegmentRequest, run_segment
from pipeline_cli.errors import CliError
from pipeline_contract import RUNNING, utc_now

INPUT_BUCKET, OUTPUT_BUCKET = "input", "output"


def run_file(source: Path, output: Path, transform: str, options: str, chunk_bytes: int) -> JobRecord:
    """The worker's segments, one after the other, until the file is done (no time budget here)."""
    objects = FileObjectStore(Path("."), buckets={INPUT_BUCKET: source.parent, OUTPUT_BUCKET: output})
    jobs = MemoryJobStore()
    pin = objects.head(INPUT_BUCKET, source.name)
    with source.open("rb") as handle:
        head = handle.read(formats.HEAD_BYTES)
    try:
        compression = formats.decide(formats.AUTO, head, input_uri=str(source))
    except ValidationError as error:
        raise CliError(f"--input {error.rule}") from error
    jobs.create(
        JobRecord(
            job_id="try",
            status=RUNNING,
            input=f"s3://{INPUT_BUCKET}/{source.name}",
            transform=transform,
            transform_options=options,
            chunk_bytes=chunk_bytes,
            output_prefix=f"s3://{OUTPUT_BUCKET}/",
            input_bytes=pin.size,
            input_etag=pin.etag,
            compression=compression,
        )
    )
    segments = 0
    while True:
        try:
            result = run_segment(
                SegmentRequest(job_id="try", attempt=1, segments_in_execution=segments),
                jobs=jobs,
                objects=objects,
                remaining_ms=lambda: 15 * 60 * 1000,
                limits=SegmentLimits(safety_margin_ms=1_000, max_reject_ratio=1.0),
                now=utc_now,
            )
        except PipelineError as error:
            raise CliError(f"{type(error).__name__}: {error}") from error
        segments += 1
        if result.done:
            record = jobs.get("try")
            assert record is not None
            return record
