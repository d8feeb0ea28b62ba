"""`pipeline output` and `pipeline logs`: what a job wrote, and what its functions said about it, without
the AWS CLI or the bucket's name.

`output` streams the job's parts in input order (part names sort by offset, sharded or not), a megabyte at a
time: memory stays flat for any output size. `logs` reads the functions' structured log lines that carry the
job's id: from CloudWatch Logs on AWS (a JSON filter pattern on each function's log group), from the local
cloud's log files locally.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from pipeline_cli.aws import Pipeline, add_common_options, open_pipeline
from pipeline_cli.errors import CliError
from pipeline_cli.local_home import local_home
from pipeline_cli.output import note, print_json
from pipeline_cli.records import require_record
from pipeline_cli.validation import validate_job_id
from pipeline_contract import REJECTS_DIR, SUCCEEDED, stack_name

STREAM_CHUNK_BYTES = 1024 * 1024


def register(subparsers: Any) -> None:
    output = subparsers.add_parser(
        "output",
        help="stream a job's output (or its rejects) in input order",
        description="Write the job's output parts, in input order, to stdout or to a file. The output is "
        "JSON Lines already, so this command takes no --json.",
    )
    output.add_argument("job_id", metavar="JOB_ID")
    output.add_argument(
        "--rejects", action="store_true", help="the rejected lines instead, with their reasons"
    )
    output.add_argument(
        "-o", "--output", metavar="FILE", help="write to FILE (replaced whole) instead of stdout"
    )
    add_common_options(output, json_flag=False)
    output.set_defaults(func=cmd_output)

    logs = subparsers.add_parser(
        "logs",
        help="show a job's log lines",
        description="The log lines of the job's functions that carry its job id (CloudWatch Logs on AWS, "
        "the local cloud's log files locally), oldest first.",
    )
    logs.add_argument("job_id", metavar="JOB_ID")
    add_common_options(logs)
    logs.set_defaults(func=cmd_logs)


# -- output --------------------------------------------------------------------------------------------------


def split_s3_prefix(uri: str) -> tuple[str, str]:
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    return bucket, prefix


def part_keys(pipeline: Pipeline, bucket: str, prefix: str) -> list[str]:
    paginator = pipeline.s3.get_paginator("list_objects_v2")
    keys = [
        o["Key"]
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix)
        for o in page.get("Contents", [])
    ]
    # Part names carry their offset zero-padded: sorted names are input order.
    return sorted(key for key in keys if key.rsplit("/", 1)[-1].startswith("part-"))


def stream_parts(pipeline: Pipeline, bucket: str, keys: list[str], sink: IO[bytes]) -> int:
    written = 0
    for key in keys:
        body = pipeline.s3.get_object(Bucket=bucket, Key=key)["Body"]
        for chunk in body.iter_chunks(STREAM_CHUNK_BYTES):
            sink.write(chunk)
            written += len(chunk)
    return written


@contextmanager
def replaced_whole(path: Path) -> Iterator[IO[bytes]]:
    """A file written beside `path` and renamed over it once complete: never half an output."""
    directory = path.parent if str(path.parent) else Path(".")
    handle = tempfile.NamedTemporaryFile(dir=directory, prefix=f".{path.name}.", delete=False)  # noqa: SIM115
    try:
        with handle:
            yield handle
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


def cmd_output(args: argparse.Namespace) -> int:
    validate_job_id(args.job_id, field="JOB_ID")
    target = Path(args.output) if args.output else None
    if target is not None and target.is_dir():
        raise CliError(f"-o {args.output}: is a directory; name a file")
    with open_pipeline(args) as pipeline:
        record = require_record(pipeline, args.job_id)
        if not record.get("output_prefix"):
            raise CliError(f"job {args.job_id!r} is {record.get('status')}: it has no output", exit_code=1)
        bucket, prefix = split_s3_prefix(str(record["output_prefix"]))
        keys = part_keys(pipeline, bucket, prefix + (REJECTS_DIR if args.rejects else ""))
        if not args.rejects:
            keys = [key for key in keys if f"/{REJECTS_DIR}" not in key]
        if record.get("status") != SUCCEEDED:
            note(
                f"job {args.job_id} is {record.get('status')}: this is the output written so far (whole chunks)"
            )
        if target is None:
            written = stream_parts(pipeline, bucket, keys, sys.stdout.buffer)
            sys.stdout.flush()
        else:
            with replaced_whole(target) as sink:
                written = stream_parts(pipeline, bucket, keys, sink)
    what = "rejects" if args.rejects else "output"
    note(
        f"{what} of job {args.job_id}: {len(keys)} part(s), {written:,} bytes"
        + (f" in {target}" if target else "")
    )
    return 0


# -- logs ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogLine:
    timestamp: str
    function: str
    record: Mapping[str, Any]

    def text(self) -> str:
        fields = {
            k: v for k, v in self.record.items() if k not in ("timestamp", "level", "message", "job_id")
        }
        extra = (
            "  " + " ".join(f"{k}={json.dumps(v, default=str)}" for k, v in fields.items()) if fields else ""
        )
        return f"{self.timestamp}  {self.function}  {self.record.get('level', '-'):<7} {self.record.get('message', '')}{extra}"


def job_functions(pipeline: Pipeline) -> dict[str, str]:
    """The Pipeline stack's functions: physical name -> logical id (e.g. `Worker...`)."""
    cloudformation = pipeline.client("cloudformation")
    resources = cloudformation.describe_stack_resources(StackName=stack_name(pipeline.env, "Pipeline"))
    return {
        r["PhysicalResourceId"]: r["LogicalResourceId"]
        for r in resources["StackResources"]
        if r.get("ResourceType") == "AWS::Lambda::Function"  # moto leaves it out on some resource types
    }


def parse_line(line: str, job_id: str) -> Mapping[str, Any] | None:
    """A structured log line (Powertools JSON) of this job, or None. The worker's metrics (EMF, with an
    `_aws` key) carry the job's keys too, as properties: they are metrics, not lines to show."""
    start = line.find("{")
    if start < 0:
        return None
    try:
        record = json.loads(line[start:])
    except ValueError:
        return None
    if not isinstance(record, dict) or "_aws" in record:
        return None
    return record if record.get("job_id") == job_id else None


def local_lines(functions: Mapping[str, str], job_id: str) -> list[LogLine]:
    lines = []
    for name in functions:
        path = local_home() / "logs" / f"{name}.log"
        if not path.is_file():
            continue
        with path.open(encoding="utf-8", errors="replace") as log:
            for raw in log:
                record = parse_line(raw, job_id)
                if record is not None:
                    lines.append(LogLine(str(record.get("timestamp", "")), name, record))
    return lines


def cloudwatch_lines(pipeline: Pipeline, functions: Mapping[str, str], job_id: str) -> list[LogLine]:
    lambda_ = pipeline.client("lambda")
    logs = pipeline.client("logs")
    lines = []
    for name in functions:
        group = lambda_.get_function_configuration(FunctionName=name).get("LoggingConfig", {}).get("LogGroup")
        paginator = logs.get_paginator("filter_log_events")
        pages = paginator.paginate(
            logGroupName=group or f"/aws/lambda/{name}", filterPattern=f'{{ $.job_id = "{job_id}" }}'
        )
        try:
            for page in pages:
                for event in page.get("events", []):
                    record = parse_line(event["message"], job_id)
                    if record is not None:
                        lines.append(LogLine(str(record.get("timestamp", "")), name, record))
        except logs.exceptions.ResourceNotFoundException:
            continue  # a function that never ran has no log group yet
    return lines


def cmd_logs(args: argparse.Namespace) -> int:
    validate_job_id(args.job_id, field="JOB_ID")
    with open_pipeline(args) as pipeline:
        require_record(pipeline, args.job_id)
        functions = job_functions(pipeline)
        found = (
            local_lines(functions, args.job_id)
            if pipeline.is_local
            else cloudwatch_lines(pipeline, functions, args.job_id)
        )
    found.sort(key=lambda line: line.timestamp)
    if args.json:
        print_json([{"function": line.function, **line.record} for line in found])
        return 0
    for line in found:
        print(line.text())
    note(f"{len(found)} log line(s) of job {args.job_id} from {len(functions)} function(s)")
    return 0
