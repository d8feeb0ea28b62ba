"""`pipeline output` and `pipeline logs`: what a job wrote, and what its functions said about it, without
the AWS CLI or the bucket's name.

`output` streams the job's parts in input order (part names sort by offset, sharded or not), a megabyte at a
time: memory stays flat for any output size. `logs` reads the functions' structured log lines that carry the
job's id: from CloudWatch Logs on AWS (a JSON filter pattern on each function's log group), from the local
cloud's log files locally. The reading lives in the helpers `pipeline_cli.output_parts` and
`pipeline_cli.job_logs`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pipeline_cli.aws import add_common_options, open_pipeline
from pipeline_cli.errors import CliError
from pipeline_cli.job_logs import cloudwatch_lines, job_functions, local_lines
from pipeline_cli.output import note, print_json
from pipeline_cli.output_parts import part_keys, replaced_whole, split_s3_prefix, stream_parts
from pipeline_cli.records import require_record
from pipeline_cli.validation import validate_job_id
from pipeline_contract import REJECTS_DIR, SUCCEEDED


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
