"""`make chaos`: the fault matrix on a fresh local cloud.

    python -m faultmatrix [--cells F1 F6 ...] [--seeds 1 2 3 4 5] [--markdown] [--reuse]

First the control run: the checker is fed deliberately broken outcomes and must report each, or nothing is
measured. Then a fresh local cloud (its own home directory; `--reuse` runs on the one already up), and
every cell once per seed. Prints one row per cell and seed, and exits 1 when any row misses a target
(0 lost, 0 duplicated, 0 missing, 0 stuck, DLQ precision = recall = 1).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Sequence

from faultmatrix.cells import CELLS, CELLS_BY_KEY
from faultmatrix.checker import CellReport, control_cases
from faultmatrix.run import Harness
from localcloud.core import cloud
from pipeline_cli import local_deploy
from pipeline_cli.aws import connect_local

DEFAULT_SEEDS = (1, 2, 3, 4, 5)


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def control() -> list[str]:
    """What the checker failed to report; empty when it caught every broken outcome."""
    missed = []
    for what, report in control_cases():
        if what == "nothing broken":
            if not report.ok:
                missed.append(f"a clean outcome was reported as broken: {report.problems()}")
        elif report.ok:
            missed.append(f"{what} was not reported")
        else:
            say(f"  control: {what:<32} -> {'; '.join(report.problems())}")
    return missed


def table(reports: Sequence[CellReport], *, markdown: bool) -> str:
    headers = (
        "cell",
        "seed",
        "requests",
        "lost",
        "dup",
        "missing",
        "stuck",
        "DLQ precision",
        "DLQ recall",
        "wall s",
        "faults",
        "ok",
    )
    rows = [
        (
            r.cell,
            str(r.seed),
            str(r.requests),
            str(len(r.lost)),
            str(r.duplicated),
            str(r.missing),
            str(len(r.stuck)),
            f"{r.precision:.2f}",
            f"{r.recall:.2f}",
            f"{r.wall_seconds:.1f}",
            next((n.split()[0] for n in r.notes if n.endswith("injected")), "-"),
            "yes" if r.ok else "NO",
        )
        for r in reports
    ]
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
    return "\n".join(
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)) for line in [headers, *rows]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m faultmatrix", description=__doc__.splitlines()[0])
    parser.add_argument("--cells", nargs="+", default=[c.key for c in CELLS], choices=list(CELLS_BY_KEY))
    parser.add_argument("--seeds", nargs="+", type=int, default=list(DEFAULT_SEEDS))
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--reuse", action="store_true", help="run on the local cloud already up")
    args = parser.parse_args(argv)

    say("==> control run: the checker must report every deliberately broken outcome")
    missed = control()
    if missed:
        say("the checker cannot fail, so it measures nothing:\n  " + "\n  ".join(missed))
        return 2

    started = time.monotonic()
    reports: list[CellReport] = []
    with contextlib.ExitStack() as scratch:
        if not args.reuse:
            home = scratch.enter_context(cloud.scratch_home("faultmatrix-", say=lambda m: say(f"    {m}")))
            os.environ["LOCALCLOUD_HOME"] = str(home)
            say(f"==> a fresh local cloud in {home}")
            local_deploy.up(home=home, progress=lambda m: say(f"    {m}"))
        harness = Harness(connect_local(), say=say)
        for key in args.cells:
            cell = CELLS_BY_KEY[key]
            for seed in args.seeds:
                say(f"==> {cell.key} seed {seed}: {cell.title}")
                report = harness.run_cell(cell, seed)
                reports.append(report)
                for problem in report.problems():
                    say(f"    {problem}")
    print(table(reports, markdown=args.markdown))
    failing = [r for r in reports if not r.ok]
    say(
        f"==> {len(reports) - len(failing)}/{len(reports)} cell runs met every target in {time.monotonic() - started:.0f}s"
    )
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
