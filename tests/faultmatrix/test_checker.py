"""The fault matrix's checker can fail: fed deliberately broken outcomes, it reports each of them, and a
clean outcome passes."""

from __future__ import annotations

import json

import pytest

from faultmatrix.checker import DlqMessage, Observed, SentRequest, check, control_cases

CASES = dict(control_cases())


def test_a_clean_outcome_meets_every_target() -> None:
    report = CASES["nothing broken"]
    assert report.ok, report.problems()
    assert (report.precision, report.recall) == (1.0, 1.0)


@pytest.mark.parametrize(
    ("broken", "reported"),
    [
        ("a duplicated record", "1 duplicated output record(s)"),
        ("a dropped record", "1 missing output record(s)"),
        (
            "a lost request",
            "lost (neither terminal nor in the DLQ): ['poison (no job record, no DLQ message)']",
        ),
        ("a spurious DLQ message", "in the DLQ but should not be: ['good']"),
        ("a stuck job", "stuck non-terminal: ['good (RUNNING)']"),
        ("records out of order", "output out of input order: ['good']"),
        ("a duplicate request started twice", "executions out of bounds: ['good: 2 (expected 0..1)']"),
    ],
)
def test_each_broken_outcome_is_reported(broken: str, reported: str) -> None:
    report = CASES[broken]
    assert not report.ok
    assert reported in report.problems()


def test_precision_and_recall_count_requests() -> None:
    sent = [SentRequest(job_id=f"p{i}", expect="dlq") for i in range(4)] + [
        SentRequest(job_id="g", expect="succeed", records=({"a": 1},))
    ]
    observed = Observed(
        statuses={"p0": "REJECTED", "p1": "REJECTED", "p2": "FAILED", "p3": "FAILED", "g": "SUCCEEDED"},
        outputs={"g": [json.dumps({"a": 1}).encode()]},
        dlq=[
            DlqMessage(job_id="p0", error_type="ValidationError", body="x"),
            DlqMessage(job_id="p1", error_type="ValidationError", body="x"),
            DlqMessage(job_id="p2", error_type="InputNotFoundError", body="x"),
            DlqMessage(job_id="g", error_type="TransientError", body="x"),
        ],
    )
    report = check("F9", 1, sent, observed)
    assert (report.precision, report.recall) == (3 / 4, 3 / 4)
    assert report.lost == ["p3 (FAILED, no DLQ message)"]
