"""The fault matrix's checker: what happened to each request, judged without the pipeline's own counters.

It reads only what a user could: the requests that were sent (with the records their inputs hold, known by
construction), the job table's statuses, the output objects' lines, and the DLQ's messages. The promise it
checks: every request ends as a job in a terminal state with exact output, or as a DLQ message that says
why, and a request is in the DLQ exactly when it must be.

Pure functions over plain data, so that a control run can feed it deliberately broken outcomes (see
`control_cases`): a checker that cannot report a failure measures nothing.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

TERMINAL = frozenset({"SUCCEEDED", "FAILED", "REJECTED", "CANCELLED"})
Expect = Literal["succeed", "dlq"]


@dataclass(frozen=True, kw_only=True)
class SentRequest:
    """One job request as sent. `records` is what its output must hold, in order, when it succeeds."""

    job_id: str
    expect: Expect
    records: tuple[Mapping[str, Any], ...] = ()
    # Sent more than once (duplicate delivery): still one job, one output.
    copies: int = 1
    # Bounds on the executions of its first attempt (duplicates start one; a long job hands over).
    min_executions: int = 0
    max_executions: int | None = None


@dataclass(frozen=True, kw_only=True)
class DlqMessage:
    job_id: str | None
    error_type: str | None
    body: str


@dataclass(frozen=True, kw_only=True)
class Observed:
    """What the cloud holds once the cell has settled (or its time ran out)."""

    statuses: Mapping[str, str | None]  # job_id -> status, None when no record exists
    outputs: Mapping[str, Sequence[bytes]]  # job_id -> output lines (all parts, in name order)
    dlq: Sequence[DlqMessage]
    executions: Mapping[str, int] = field(default_factory=dict)  # job_id -> executions started


@dataclass(kw_only=True)
class CellReport:
    cell: str
    seed: int
    requests: int
    lost: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    duplicated: int = 0
    missing: int = 0
    misordered: list[str] = field(default_factory=list)
    dlq_true_positive: int = 0
    dlq_false_positive: list[str] = field(default_factory=list)
    dlq_false_negative: list[str] = field(default_factory=list)
    unexpected_status: list[str] = field(default_factory=list)
    executions: list[str] = field(default_factory=list)
    wall_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def precision(self) -> float:
        flagged = self.dlq_true_positive + len(self.dlq_false_positive)
        return 1.0 if flagged == 0 else self.dlq_true_positive / flagged

    @property
    def recall(self) -> float:
        due = self.dlq_true_positive + len(self.dlq_false_negative)
        return 1.0 if due == 0 else self.dlq_true_positive / due

    @property
    def ok(self) -> bool:
        return not (
            self.lost
            or self.stuck
            or self.duplicated
            or self.missing
            or self.misordered
            or self.unexpected_status
            or self.executions
            or self.precision < 1.0
            or self.recall < 1.0
        )

    def problems(self) -> list[str]:
        found: list[str] = []
        if self.lost:
            found.append(f"lost (neither terminal nor in the DLQ): {self.lost}")
        if self.stuck:
            found.append(f"stuck non-terminal: {self.stuck}")
        if self.duplicated:
            found.append(f"{self.duplicated} duplicated output record(s)")
        if self.missing:
            found.append(f"{self.missing} missing output record(s)")
        if self.misordered:
            found.append(f"output out of input order: {self.misordered}")
        if self.dlq_false_positive:
            found.append(f"in the DLQ but should not be: {self.dlq_false_positive}")
        if self.dlq_false_negative:
            found.append(f"should be in the DLQ but is not: {self.dlq_false_negative}")
        if self.unexpected_status:
            found.append(f"unexpected final status: {self.unexpected_status}")
        if self.executions:
            found.append(f"executions out of bounds: {self.executions}")
        return found


def _parse(lines: Iterable[bytes]) -> list[Any]:
    parsed: list[Any] = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            parsed.append({"<unparseable>": line.decode("utf-8", errors="replace")})
    return parsed


def _key(record: Any) -> str:
    return json.dumps(record, sort_keys=True, separators=(",", ":"))


def check(
    cell: str, seed: int, sent: Sequence[SentRequest], observed: Observed, *, wall_seconds: float = 0.0
) -> CellReport:
    report = CellReport(cell=cell, seed=seed, requests=len(sent), wall_seconds=wall_seconds)
    in_dlq = Counter(message.job_id for message in observed.dlq)
    known = {request.job_id for request in sent}
    for message in observed.dlq:
        if message.job_id not in known:
            report.dlq_false_positive.append(
                f"{message.job_id} (not a request of this cell: {message.body[:60]!r})"
            )
    for request in sent:
        _check_request(report, request, observed, dead_lettered=in_dlq[request.job_id] > 0)
    return report


def _check_request(
    report: CellReport, request: SentRequest, observed: Observed, *, dead_lettered: bool
) -> None:
    started = observed.executions.get(request.job_id, 0)
    if started < request.min_executions or (
        request.max_executions is not None and started > request.max_executions
    ):
        upper = "" if request.max_executions is None else str(request.max_executions)
        report.executions.append(f"{request.job_id}: {started} (expected {request.min_executions}..{upper})")
    status = observed.statuses.get(request.job_id)
    if status in ("PENDING", "RUNNING"):
        report.stuck.append(f"{request.job_id} ({status})")
    elif not dead_lettered and status != "SUCCEEDED":
        # No job (status None) or a job that did not succeed, and nothing in the DLQ says why.
        report.lost.append(f"{request.job_id} ({status or 'no job record'}, no DLQ message)")
    if request.expect == "dlq":
        if dead_lettered:
            report.dlq_true_positive += 1
        else:
            report.dlq_false_negative.append(request.job_id)
        if status == "SUCCEEDED":
            report.unexpected_status.append(f"{request.job_id}: SUCCEEDED, expected a failure")
        return
    if dead_lettered:
        report.dlq_false_positive.append(request.job_id)
    if status in TERMINAL and status != "SUCCEEDED":
        report.unexpected_status.append(f"{request.job_id}: {status}, expected SUCCEEDED")
    if status == "SUCCEEDED":
        _check_output(report, request, observed.outputs.get(request.job_id, ()))


def _check_output(report: CellReport, request: SentRequest, lines: Sequence[bytes]) -> None:
    got, expected = _parse(lines), list(request.records)
    got_counts, expected_counts = Counter(map(_key, got)), Counter(map(_key, expected))
    report.duplicated += sum((got_counts - expected_counts).values())
    report.missing += sum((expected_counts - got_counts).values())
    if got_counts == expected_counts and got != expected:
        report.misordered.append(request.job_id)


# -- the control run: deliberately broken outcomes the checker must report ------------------------------


def control_cases() -> list[tuple[str, CellReport]]:
    """(what was broken, the checker's report) for each kind of failure the matrix looks for."""
    records = tuple({"id": i} for i in range(5))
    good = SentRequest(job_id="good", expect="succeed", records=records, max_executions=1)
    poison = SentRequest(job_id="poison", expect="dlq")
    lines = [json.dumps(r).encode() for r in records]
    clean = Observed(
        statuses={"good": "SUCCEEDED", "poison": "REJECTED"},
        outputs={"good": lines},
        dlq=[DlqMessage(job_id="poison", error_type="ValidationError", body="{}")],
        executions={"good": 1},
    )
    sent = [good, poison]
    broken = {
        "nothing broken": clean,
        "a duplicated record": Observed(
            statuses=clean.statuses, outputs={"good": [*lines, lines[2]]}, dlq=clean.dlq
        ),
        "a dropped record": Observed(statuses=clean.statuses, outputs={"good": lines[:-1]}, dlq=clean.dlq),
        "a lost request": Observed(
            statuses={"good": "SUCCEEDED", "poison": None}, outputs=clean.outputs, dlq=[]
        ),
        "a spurious DLQ message": Observed(
            statuses=clean.statuses,
            outputs=clean.outputs,
            dlq=[*clean.dlq, DlqMessage(job_id="good", error_type="TransientError", body="{}")],
        ),
        "a stuck job": Observed(
            statuses={"good": "RUNNING", "poison": "REJECTED"}, outputs=clean.outputs, dlq=clean.dlq
        ),
        "records out of order": Observed(
            statuses=clean.statuses, outputs={"good": lines[::-1]}, dlq=clean.dlq
        ),
        "a duplicate request started twice": Observed(
            statuses=clean.statuses, outputs=clean.outputs, dlq=clean.dlq, executions={"good": 2}
        ),
    }
    return [(what, check("control", 0, sent, observed)) for what, observed in broken.items()]
