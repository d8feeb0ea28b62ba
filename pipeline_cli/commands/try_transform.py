"""`pipeline try`: a transform on a local file, through the real chunk loop, with no cloud at all.

The seconds-long feedback loop of writing a transform: the same line rules, the same registry (the
built-ins plus `--user-code DIR`, loaded as the functions load it), options checked as the ingest checks
them, and the worker's own segment code (jobcore.segment) over local files. Outputs and rejects are
written as the pipeline writes them (`part-OFFSET.jsonl`, `rejects/part-OFFSET.jsonl`).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from jobcore.errors import ValidationError
from jobcore.options import parse_options
from jobcore.plugins import UserCodeError, load_user_code
from jobcore.transforms import TRANSFORMS
from pipeline_cli.errors import CliError
from pipeline_cli.file_run import run_file
from pipeline_cli.output import print_json, render_table
from pipeline_contract import MAX_CHUNK_BYTES, MIN_CHUNK_BYTES, REJECTS_DIR

DEFAULT_CHUNK_BYTES = 1024 * 1024
# The limit a deployed job would meet by default (dev, staging, prod): said, not enforced, here.
DEPLOYED_MAX_REJECT_RATIO = 0.05


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "try",
        help="run a transform on a local file (no cloud): counters, outputs and rejects",
        description="Run a transform on a local JSON Lines file with the pipeline's own chunk loop, and write "
        "its outputs and rejects as the pipeline would. No cloud, no credentials.",
    )
    parser.add_argument("--transform", required=True, metavar="NAME", help="a registered transform")
    parser.add_argument("--input", required=True, metavar="FILE", help="a local JSON Lines file")
    parser.add_argument(
        "--user-code", metavar="DIR", help="a directory of your own transforms (as -c userCode)"
    )
    parser.add_argument("--options", metavar="JSON", help="the transform's options, a JSON object")
    parser.add_argument(
        "-o",
        "--output",
        metavar="DIR",
        default="try-output",
        help="where parts and rejects go (default try-output/)",
    )
    parser.add_argument(
        "--chunk-bytes",
        type=int,
        default=DEFAULT_CHUNK_BYTES,
        metavar="N",
        help="bytes per chunk (default 1 MiB)",
    )
    parser.add_argument("--json", action="store_true", help="print the counters as JSON")
    parser.set_defaults(func=cmd_try)


def cmd_try(args: argparse.Namespace) -> int:
    source = Path(args.input).expanduser()
    if not source.is_file():
        raise CliError(f"--input {args.input}: no such file (give a local JSON Lines file)")
    if not MIN_CHUNK_BYTES <= args.chunk_bytes <= MAX_CHUNK_BYTES:
        raise CliError(
            f"--chunk-bytes {args.chunk_bytes}: must be within {MIN_CHUNK_BYTES}..{MAX_CHUNK_BYTES}"
        )
    if args.user_code:
        directory = Path(args.user_code).expanduser()
        if not directory.is_dir():
            raise CliError(f"--user-code {args.user_code}: not a directory")
        try:
            load_user_code(directory.resolve())
        except UserCodeError as error:
            raise CliError(f"--user-code: {error}") from error
    registered = TRANSFORMS.get(args.transform)
    if registered is None:
        raise CliError(
            f"--transform {args.transform!r} is not registered here: {', '.join(sorted(TRANSFORMS))}"
            + ("" if args.user_code else " (your own transforms need --user-code DIR)")
        )
    options = _options(args.options, registered)
    output = Path(args.output)
    if output.exists():
        shutil.rmtree(output)  # a fresh run: parts of an earlier one would mix in
    started = time.monotonic()
    record = run_file(source, output, args.transform, options, args.chunk_bytes)
    seconds = time.monotonic() - started
    counts = {
        "records_in": record.records_in,
        "records_transformed": record.records_transformed,
        "records_filtered": record.records_filtered,
        "records_rejected": record.records_rejected,
        "records_out": record.records_out,
        "records_blank": record.records_blank,
        "bytes_in": record.bytes_in,
    }
    if args.json:
        print_json(
            {
                "transform": args.transform,
                "input": str(source),
                "output": str(output),
                "seconds": round(seconds, 3),
                **counts,
            }
        )
        return 0
    print(
        render_table(("COUNTER", "VALUE"), [(key, f"{value:,}") for key, value in counts.items()], right=(1,))
    )
    print(f"\noutputs in {output}/ (rejects in {output / REJECTS_DIR}) after {seconds:.2f}s")
    if record.records_in and record.records_rejected / record.records_in > DEPLOYED_MAX_REJECT_RATIO:
        ratio = record.records_rejected / record.records_in
        print(
            f"note: {ratio:.1%} of the records were rejected; a deployed job stops above its reject-ratio limit "
            f"({DEPLOYED_MAX_REJECT_RATIO:.0%} by default)",
            file=sys.stderr,
        )
    return 0


def _options(text: str | None, registered: Any) -> str:
    try:
        raw = json.loads(text) if text else {}
    except ValueError as error:
        raise CliError(f"--options is not JSON: {error}") from None
    try:
        parse_options(registered, raw)
    except ValidationError as error:
        raise CliError(str(error)) from error
    return json.dumps(raw, sort_keys=True, separators=(",", ":")) if raw else ""
