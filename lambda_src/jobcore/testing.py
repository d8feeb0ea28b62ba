"""A helper for testing transforms the way the pipeline runs them: `run_transform` feeds JSON Lines through
the real line rules and the real transform registry (no AWS, no chunks), and tells what came out.

    from jobcore.testing import run_transform

    def test_masks_emails():
        run = run_transform("mask_pii", [{"email": "ada@example.com"}], options={"keep_domain": True})
        assert run.output == [{"email": "***@example.com"}]
        assert run.counts == {"in": 1, "transformed": 1, "filtered": 0, "rejected": 0, "out": 1}
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobcore.lines import process_lines
from jobcore.options import parse_options
from jobcore.plugins import load_user_code, modules_in
from jobcore.transforms import TRANSFORMS


@dataclass(frozen=True)
class TransformRun:
    output: list[Any]  # output records, parsed, in order
    rejects: list[dict[str, Any]]  # {"offset", "line", "error"}
    counts: dict[str, int]


def run_transform(
    name: str, records: Iterable[Mapping[str, Any] | str], *, options: Any = None
) -> TransformRun:
    """Run the registered transform `name` over `records` (dicts, or raw lines as strings), with `options`
    checked as the ingest checks a job's `transform_options`."""
    registered = TRANSFORMS[name]
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    data = "".join(line + "\n" for line in lines).encode("utf-8")
    result = process_lines(
        data,
        start_offset=0,
        transform=registered.bind(parse_options(registered, options)),
        keeps_bytes=registered.keeps_bytes,
    )
    return TransformRun(
        output=[json.loads(line) for line in result.output],
        rejects=[json.loads(line) for line in result.rejects],
        counts={
            "in": result.records_in,
            "transformed": result.records_transformed,
            "filtered": result.records_filtered,
            "rejected": result.records_rejected,
            "out": result.records_out,
        },
    )


@contextmanager
def user_code(directory: Path) -> Iterator[list[str]]:
    """Load a user-code directory as the functions do, for the duration of the block: the registry and the
    imported modules are put back afterwards, so one test's transforms never show up in another's."""
    registry = dict(TRANSFORMS)
    path = list(sys.path)
    tops = set(modules_in(directory)) if directory.is_dir() else set()
    imported = {n: m for n, m in sys.modules.items() if n.split(".")[0] in tops}
    for name in imported:
        del sys.modules[name]  # imported afresh, registering as a cold start would
    try:
        yield load_user_code(directory)
    finally:
        TRANSFORMS.clear()
        TRANSFORMS.update(registry)
        sys.path[:] = path
        for name in [n for n in sys.modules if n.split(".")[0] in tops]:
            del sys.modules[name]
        sys.modules.update(imported)
