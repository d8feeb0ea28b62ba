"""The scenarios of `pipeline demo`: five jobs sent through the deployed `local` environment, each with the
outcome the pipeline promises, then followed, reported and checked (status, counters, DLQ reasons, alarms).

`pipeline_cli/commands/demo.py` runs them on the local cloud; the integration tests (tests/integration) run
the same ones on theirs.
"""

from __future__ import annotations

import itertools
import json
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from pipeline_cli import chaos_api
from pipeline_cli.aws import Pipeline
from pipeline_cli.deadletters import DlqMessage, peek_messages
from pipeline_cli.output import percent, render_table
from pipeline_cli.records import build_request, execution_arn, get_record, send_request, upload_input
from pipeline_contract import OUTPUT_PREFIX, TERMINAL, execution_name

# env=local: 64 KiB chunks, one chunk per segment, 20 segments per execution (stacks/config.py). An input
# of 45 chunks therefore takes 45 segments (far past the ~16 hops at which AWS stops a Lambda that
# re-enqueues itself) and 3 executions (2 continue-as-new).
LOCAL_CHUNK_BYTES = 64 * 1024
LONG_CHUNKS = 45
LOCAL_SEGMENT_BUDGET = 20
# The faults job's part writes answered SlowDown this many times: the worker's own retry layer makes 5
# attempts of a call (jobcore.retry.RetryPolicy) before it fails with TransientError, so the state machine
# retries the worker twice, then the job goes on.
FAULT_INJECTIONS = 10
BAD_RECORD_EVERY = 50
DLQ_ALARM = "DeadLetterQueueNotEmpty"


# ------------------------------------------------------------------------------------------- inputs


def write_records(path: Path, *, target_bytes: int, bad_every: int = 0) -> tuple[int, int]:
    """JSON Lines of about `target_bytes`, written line by line; every `bad_every`-th line is broken.
    Returns (good records, bad records)."""
    good = bad = 0
    size = 0
    with path.open("w", encoding="utf-8") as out:
        while size < target_bytes:
            index = good + bad
            if bad_every and index % bad_every == bad_every - 1:
                line = f'{{"id": {index}, "broken": '
                bad += 1
            else:
                line = json.dumps(
                    {
                        "Id": index,
                        "First Name": f" user {index} ",
                        "eMail": f"u{index}@example.com",
                        "Score": index % 97,
                    }
                )
                good += 1
            out.write(line + "\n")
            size += len(line) + 1
    return good, bad


# ---------------------------------------------------------------------------------------- scenarios


@dataclass(kw_only=True)
class Scenario:
    key: str
    title: str
    job_id: str
    expected_status: str
    # Sends the request; for a generated input, returns its (good, bad) record counts.
    submit: Callable[[Pipeline, Path], tuple[int, int] | None]
    check: Callable[[ScenarioRun], list[str]]


@dataclass(kw_only=True)
class ScenarioRun:
    scenario: Scenario
    started: float
    finished: float | None = None
    record: dict[str, Any] | None = None
    dlq: list[DlqMessage] = field(default_factory=list)
    retries: int = 0
    expected_records: tuple[int, int] | None = None  # (out, rejected), for a generated input

    @property
    def status(self) -> str:
        return str((self.record or {}).get("status", "-"))

    def number(self, key: str) -> int:
        return int((self.record or {}).get(key, 0) or 0)

    def problems(self) -> list[str]:
        found = []
        if self.status != self.scenario.expected_status:
            found.append(f"status is {self.status}, expected {self.scenario.expected_status}")
        if self.expected_records and self.status == "SUCCEEDED":
            out, rejected = self.expected_records
            if (self.number("records_out"), self.number("records_rejected")) != (out, rejected):
                found.append(
                    f"records out/rejected {self.number('records_out')}/{self.number('records_rejected')}, "
                    f"expected {out}/{rejected}"
                )
            if self.number("records_in") != self.number("records_out") + self.number("records_rejected"):
                found.append("records_in != records_out + records_rejected")
        return found + self.scenario.check(self)


def _dlq_reason(run: ScenarioRun, error_type: str) -> list[str]:
    if not run.dlq:
        return ["no message in the DLQ"]
    types = {message.attribute("error_type") for message in run.dlq}
    return [] if error_type in types else [f"DLQ message error_type {types}, expected {error_type}"]


def build_scenarios(run_id: str) -> list[Scenario]:
    long_id, faults_id = f"demo-long-{run_id}", f"demo-faults-{run_id}"
    malformed_id, missing_id, bad_id = (
        f"demo-malformed-{run_id}",
        f"demo-missing-{run_id}",
        f"demo-bad-records-{run_id}",
    )

    def upload(
        job_id: str, target_bytes: int, bad_every: int = 0, **request: Any
    ) -> Callable[[Pipeline, Path], tuple[int, int]]:
        def submit(pipeline: Pipeline, workdir: Path) -> tuple[int, int]:
            path = workdir / f"{job_id}.jsonl"
            counts = write_records(path, target_bytes=target_bytes, bad_every=bad_every)
            uri = upload_input(pipeline, path, job_id)
            send_request(pipeline, build_request(job_id=job_id, input_uri=uri, **request))
            return counts

        return submit

    def send_raw(body: dict[str, Any]) -> Callable[[Pipeline, Path], None]:
        def submit(pipeline: Pipeline, _: Path) -> None:
            pipeline.sqs.send_message(
                QueueUrl=pipeline.outputs.ingest_queue_url, MessageBody=json.dumps(body)
            )

        return submit

    def send_missing(pipeline: Pipeline, _: Path) -> None:
        bucket = pipeline.outputs.data_bucket_name
        send_request(
            pipeline,
            build_request(job_id=missing_id, input_uri=f"s3://{bucket}/in/{missing_id}/absent.jsonl"),
        )

    def long_check(run: ScenarioRun) -> list[str]:
        found = []
        if run.number("segments") < 40:
            found.append(f"{run.number('segments')} segments, expected at least 40")
        if run.number("executions") < 3:
            found.append(f"{run.number('executions')} executions, expected at least 3 (2 continue-as-new)")
        return found

    def inject_faults_then_upload(pipeline: Pipeline, workdir: Path) -> tuple[int, int]:
        """The chaos API, on this job's output only (one mechanism for every fault the local cloud injects)."""
        rule = {
            "service": "s3",
            "operation": "PutObject",
            "error": "SlowDown",
            "resource": f"{pipeline.outputs.data_bucket_name}/{OUTPUT_PREFIX}{faults_id}/",
            "count": FAULT_INJECTIONS,
        }
        chaos_api.call("POST", rule, endpoint=pipeline.endpoint_url)
        return upload(faults_id, 8 * LOCAL_CHUNK_BYTES - 1000)(pipeline, workdir)

    return [
        Scenario(
            key="long",
            title=f"long job: {LONG_CHUNKS} segments, continue-as-new every {LOCAL_SEGMENT_BUDGET}",
            job_id=long_id,
            expected_status="SUCCEEDED",
            submit=upload(long_id, LONG_CHUNKS * LOCAL_CHUNK_BYTES - 1000),
            check=long_check,
        ),
        Scenario(
            key="faults",
            title=f"S3 SlowDown on {FAULT_INJECTIONS} part writes: retried in code, then by the state machine",
            job_id=faults_id,
            expected_status="SUCCEEDED",
            submit=inject_faults_then_upload,
            check=lambda run: (
                [] if run.retries >= 2 else [f"{run.retries} retried failures, expected at least 2"]
            ),
        ),
        Scenario(
            key="malformed",
            title="malformed request: rejected at once, reason in the DLQ",
            job_id=malformed_id,
            expected_status="REJECTED",
            submit=send_raw({"job_id": malformed_id, "input": "ftp://not-s3/data.jsonl"}),
            check=lambda run: _dlq_reason(run, "ValidationError"),
        ),
        Scenario(
            key="missing",
            title="input does not exist: FAILED, request in the DLQ",
            job_id=missing_id,
            expected_status="FAILED",
            submit=send_missing,
            check=lambda run: _dlq_reason(run, "InputNotFoundError"),
        ),
        Scenario(
            key="bad-records",
            title=f"bad records (1 in {BAD_RECORD_EVERY}): rejected and counted, job succeeds",
            job_id=bad_id,
            expected_status="SUCCEEDED",
            submit=upload(bad_id, 3 * LOCAL_CHUNK_BYTES, bad_every=BAD_RECORD_EVERY),
            check=lambda run: [],
        ),
    ]


# ------------------------------------------------------------------------------------------- running


def count_failed_tries(pipeline: Pipeline, record: dict[str, Any]) -> int:
    """Failed worker tries in the job's current attempt, over all its executions (e0, e1, ...): the
    transient ones were retried by the state machine; a permanent one ends the job."""
    failures = 0
    paginator = pipeline.stepfunctions.get_paginator("get_execution_history")
    for execution in itertools.count():
        name = execution_name(record["job_id"], int(record.get("attempt", 1)), execution)
        arn = execution_arn(pipeline.outputs.state_machine_arn, name)
        try:
            for page in paginator.paginate(executionArn=arn):
                failures += sum(
                    1 for e in page["events"] if e["type"] in ("LambdaFunctionFailed", "TaskFailed")
                )
        except pipeline.stepfunctions.exceptions.ExecutionDoesNotExist:
            return failures
    raise AssertionError("unreachable")  # pragma: no cover


def run_scenarios(
    pipeline: Pipeline, scenarios: list[Scenario], *, timeout: float, out: TextIO, interval: float = 0.5
) -> list[ScenarioRun]:
    runs = []
    with tempfile.TemporaryDirectory(prefix="pipeline-demo-") as tmp:
        for scenario in scenarios:
            print(f"  submit  {scenario.job_id:<34} {scenario.title}", file=out)
            run = ScenarioRun(scenario=scenario, started=time.monotonic())
            run.expected_records = scenario.submit(pipeline, Path(tmp))
            runs.append(run)
    deadline = time.monotonic() + timeout
    shown: dict[str, str] = {}
    while any(run.finished is None for run in runs) and time.monotonic() < deadline:
        for run in runs:
            if run.finished is not None:
                continue
            run.record = get_record(pipeline, run.scenario.job_id)
            line = progress(run)
            if shown.get(run.scenario.job_id) != line:
                print(f"  {line}", file=out)
                shown[run.scenario.job_id] = line
            if run.status in TERMINAL:
                run.finished = time.monotonic()
        time.sleep(interval)
    messages = peek_messages(pipeline.sqs, pipeline.outputs.dead_letter_queue_url)
    for run in runs:
        run.dlq = [m for m in messages if m.job_id == run.scenario.job_id]
        if run.record:
            run.retries = count_failed_tries(pipeline, run.record)
    return runs


def progress(run: ScenarioRun) -> str:
    record = run.record or {}
    share = percent(record) if record else None
    done = f"{share:3.0f}%" if share is not None else "   -"
    return (
        f"{run.status:<9} {run.scenario.job_id:<34} {done}  segments {run.number('segments'):>3}  "
        f"executions {run.number('executions')}  records {run.number('records_out')}"
    )


def summary_table(runs: list[ScenarioRun]) -> str:
    rows = [
        [
            run.scenario.job_id,
            run.status,
            str(run.number("segments")),
            str(run.number("executions")),
            str(run.number("records_in")),
            str(run.number("records_out")),
            str(run.number("records_rejected")),
            str(run.retries),
            f"{(run.finished or time.monotonic()) - run.started:.1f}s",
        ]
        for run in runs
    ]
    headers = ["job", "status", "segments", "executions", "in", "out", "rejected", "failed tries", "time"]
    return render_table(headers, rows, right=range(2, 9))


def alarm_states(pipeline: Pipeline, *, wait_for_dlq_alarm: float) -> dict[str, str]:
    """Alarm name -> state. Waits (bounded) for the DLQ alarm's evaluation to see the messages."""
    cloudwatch = pipeline.client("cloudwatch")
    deadline = time.monotonic() + wait_for_dlq_alarm
    while True:
        alarms = {
            alarm["AlarmName"]: alarm["StateValue"]
            for page in cloudwatch.get_paginator("describe_alarms").paginate()
            for alarm in page["MetricAlarms"]
        }
        dlq = [state for name, state in alarms.items() if DLQ_ALARM in name]
        if (dlq and dlq[0] == "ALARM") or time.monotonic() > deadline:
            return alarms
        time.sleep(1)


def short_alarm_name(name: str) -> str:
    # CloudFormation names alarms [STACK-]LOGICALID-SUFFIX and CDK's logical ids end in a hash: the
    # construct id in the middle (DeadLetterQueueNotEmpty) is what a person recognises.
    match = re.search(r"Alarms([A-Za-z0-9]+?)[0-9A-F]{8}-[0-9A-Z]+$", name)
    return match.group(1) if match else name


def reason_text(message: DlqMessage) -> str:
    """The error message; a Lambda error's cause arrives as JSON, whose errorMessage is the reason."""
    text = message.attribute("error_message") or ""
    try:
        cause = json.loads(text)
    except ValueError:
        return text
    return str(cause.get("errorMessage", text)) if isinstance(cause, dict) else text


def iter_report(runs: list[ScenarioRun], alarms: dict[str, str], dlq: list[DlqMessage]) -> Iterator[str]:
    yield ""
    yield summary_table(runs)
    yield ""
    yield f"Dead-letter queue ({len(dlq)} messages):"
    for message in dlq:
        yield f"  {message.job_id or '-':<34} {message.attribute('error_type') or '-':<20} {reason_text(message)[:100]}"
    yield ""
    yield f"Alarms ({len(alarms)}):"
    for name, state in sorted(alarms.items(), key=lambda item: (item[1] != "ALARM", item[0])):
        yield f"  {state:<17} {short_alarm_name(name)}"


def check(runs: list[ScenarioRun], alarms: dict[str, str]) -> list[str]:
    problems = [f"{run.scenario.key}: {problem}" for run in runs for problem in run.problems()]
    dlq_states = [state for name, state in alarms.items() if DLQ_ALARM in name]
    if dlq_states != ["ALARM"]:
        problems.append(f"alarms: the DLQ alarm is {dlq_states or 'missing'}, expected ALARM")
    return problems
