"""`pipeline console` against moto: what its source reads through the CLI's own helpers (jobs, a job's
executions by the naming contract, output previews, the DLQ with the jobs' statuses, the dashboard), a
redrive from the page moving exactly what `pipeline dlq redrive --job-id` moves, and the command itself
(it fails fast with the CLI's message, and serves until interrupted)."""

from __future__ import annotations

import json
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from werkzeug.test import Client

from pipeline_cli.console.server import ActionLog, Console
from pipeline_cli.console.source import Source

from .conftest import Deployed, LocalCloud, Result, dlq_attributes

Run = Callable[..., Result]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def source(deployed: Deployed) -> Source:
    return Source(env="dev")


def test_jobs_and_a_record_as_pipeline_jobs_reads_them(deployed: Deployed, source: Source) -> None:
    deployed.put_job("old", "SUCCEEDED", "2026-11-23T10:00:00.000Z")
    deployed.put_job("new", "FAILED", "2026-11-23T11:00:00.000Z")
    assert [r["job_id"] for r in source.jobs(status=None, limit=10)] == ["new", "old"]
    assert [r["job_id"] for r in source.jobs(status="FAILED", limit=10)] == ["new"]
    assert source.record("new")["status"] == "FAILED"  # type: ignore[index]
    assert source.record("absent") is None


def test_executions_are_found_by_their_names_across_attempts(deployed: Deployed, source: Source) -> None:
    machine = deployed.outputs["StateMachineArn"]
    for name in ("job-a1-e0", "job-a1-e1", "job-a2-e0", "other-a1-e0"):
        deployed.stepfunctions.start_execution(stateMachineArn=machine, name=name, input="{}")
    executions, complete = source.executions({"job_id": "job", "attempt": 2})
    assert [(e.name, e.attempt, e.index) for e in executions] == [
        ("job-a1-e0", 1, 0),
        ("job-a1-e1", 1, 1),
        ("job-a2-e0", 2, 0),
    ]
    assert complete
    assert all(e.start is not None and e.start.tzinfo is not None for e in executions)


def test_a_long_history_shows_its_newest_executions(
    deployed: Deployed, source: Source, monkeypatch: pytest.MonkeyPatch
) -> None:
    machine = deployed.outputs["StateMachineArn"]
    names = [f"long-a1-e{index}" for index in range(7)] + ["long-a2-e0", "long-a2-e1"]
    for name in names:
        deployed.stepfunctions.start_execution(stateMachineArn=machine, name=name, input="{}")
    executions, complete = source.executions({"job_id": "long", "attempt": 2})
    assert [e.name for e in executions] == names, "every one, found by probing"
    assert complete
    monkeypatch.setattr("pipeline_cli.console.source.MAX_EXECUTIONS", 4)
    executions, complete = source.executions({"job_id": "long", "attempt": 2})
    assert [e.name for e in executions] == ["long-a1-e5", "long-a1-e6", "long-a2-e0", "long-a2-e1"]
    assert not complete


def test_previews_read_the_first_lines_of_the_first_parts(deployed: Deployed, source: Source) -> None:
    bucket = deployed.outputs["DataBucketName"]
    lines = [json.dumps({"id": i, "pad": "x" * 40}) for i in range(600)]  # over the 16 KiB read
    deployed.s3.put_object(
        Bucket=bucket, Key="out/j/part-000000000000000.jsonl", Body="\n".join(lines) + "\n"
    )
    deployed.s3.put_object(
        Bucket=bucket,
        Key="out/j/rejects/part-000000000000000.jsonl",
        Body=json.dumps({"offset": 7, "line": "{bad", "error": "Expecting value"}) + "\n",
    )
    record = {"job_id": "j", "output_prefix": f"s3://{bucket}/out/j/"}
    output = source.preview(record, rejects=False)
    assert output is not None
    assert output.lines == lines[:10]
    assert (output.parts, output.truncated) == (1, True)
    rejects = source.preview(record, rejects=True)
    assert rejects is not None and rejects.lines == [
        '{"offset": 7, "line": "{bad", "error": "Expecting value"}'
    ]
    assert not rejects.truncated
    assert source.preview({"job_id": "x"}, rejects=False) is None, "a rejected request has no output"


def test_the_dlq_with_each_jobs_status_and_the_messages_left_in_place(
    deployed: Deployed, source: Source
) -> None:
    deployed.put_job("job-a", "FAILED")
    for job_id in ("job-a", "ghost"):
        deployed.sqs.send_message(
            QueueUrl=deployed.dlq_url,
            MessageBody=json.dumps({"job_id": job_id, "input": "s3://b/k"}),
            MessageAttributes=dlq_attributes(job_id, "InputNotFoundError", "no such key", f"src-{job_id}"),
        )
    view = source.dlq()
    assert sorted(m.job_id or "" for m in view.messages) == ["ghost", "job-a"]
    assert view.statuses == {"job-a": "FAILED", "ghost": None}
    assert source.dlq_count() == 2, "released: still there, visible"


def test_a_redrive_from_the_page_moves_what_the_command_would(
    deployed: Deployed, source: Source, tmp_path: Path
) -> None:
    for job_id in ("job-a", "job-b"):
        deployed.sqs.send_message(
            QueueUrl=deployed.dlq_url,
            MessageBody=json.dumps({"job_id": job_id, "input": "s3://b/k"}),
            MessageAttributes=dlq_attributes(job_id, "InputNotFoundError", "no such key", f"src-{job_id}"),
        )
    log = tmp_path / "actions.log"
    app = Console(source, port=8765, allow_actions=True, actions_log=ActionLog(log, sys.stderr))
    client = Client(app)
    headers = {"Host": "127.0.0.1:8765", "Origin": "http://127.0.0.1:8765"}
    page = client.get("/dlq", headers=headers).get_data(as_text=True)
    token = re.search(r'name="csrf-token" content="([0-9a-f]+)"', page).group(1)  # type: ignore[union-attr]
    form = {"csrf": token, "job_id": "job-a", "choice": "upgrade", "confirm": "yes"}
    done = client.post("/dlq/redrive", data=form, headers=headers)
    assert done.status_code == 303
    moved = deployed.sqs.receive_message(
        QueueUrl=deployed.ingest_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    )["Messages"]
    assert [json.loads(m["Body"]) for m in moved] == [
        {"job_id": "job-a", "input": "s3://b/k", "upgrade": True}
    ]
    assert set(moved[0]["MessageAttributes"]) == {"job_id", "source_message_id"}, "the reason stays behind"
    assert [m.job_id for m in source.dlq().messages] == ["job-b"]
    finished = json.loads(log.read_text().splitlines()[-1])
    assert (finished["command"], finished["ok"]) == ("pipeline dlq redrive --job-id job-a --upgrade", True)


def test_a_redrive_of_a_job_with_nothing_there_says_so(
    deployed: Deployed, source: Source, tmp_path: Path
) -> None:
    app = Console(
        source, port=8765, allow_actions=True, actions_log=ActionLog(tmp_path / "a.log", sys.stderr)
    )
    client = Client(app)
    headers = {"Host": "127.0.0.1:8765", "Origin": "http://127.0.0.1:8765"}
    page = client.get("/dlq", headers=headers).get_data(as_text=True)
    token = re.search(r'name="csrf-token" content="([0-9a-f]+)"', page).group(1)  # type: ignore[union-attr]
    client.post("/dlq/redrive", data={"csrf": token, "job_id": "nobody", "confirm": "yes"}, headers=headers)
    result = client.get("/actions/1", headers=headers).get_data(as_text=True)
    assert "unknown job &#x27;nobody&#x27; in environment dev" in result, "the command's own error"


def test_the_dashboards_graphs_when_there_is_one(deployed: Deployed, source: Source) -> None:
    now = datetime.now(UTC)
    graphs, note = source.graphs(hours=1, now=now)
    assert (graphs, note) == (
        [],
        "there is no dashboard resilient-pipeline-dev in this environment: redeploy it",
    )
    cloudwatch = Source(env="dev").connect().client("cloudwatch")
    body = {
        "widgets": [
            {
                "type": "metric",
                "properties": {
                    "title": "Executions",
                    "metrics": [
                        [
                            "AWS/States",
                            "ExecutionsStarted",
                            "StateMachineArn",
                            "sm",
                            {"stat": "Sum", "period": 60},
                        ]
                    ],
                },
            }
        ]
    }
    cloudwatch.put_dashboard(DashboardName="resilient-pipeline-dev", DashboardBody=json.dumps(body))
    cloudwatch.put_metric_data(
        Namespace="AWS/States",
        MetricData=[
            {
                "MetricName": "ExecutionsStarted",
                "Value": 3,
                "Dimensions": [{"Name": "StateMachineArn", "Value": "sm"}],
            }
        ],
    )
    graphs, note = source.graphs(hours=1, now=datetime.now(UTC))
    assert note is None
    (graph,) = graphs
    assert graph.title == "Executions"
    assert [value for _, value in graph.lines[0].points] == [3.0]


# -- the command ------------------------------------------------------------------------------------------------


def test_the_command_fails_fast_when_the_environment_cannot_be_read(run: Run) -> None:
    result = run("console")
    assert result.code == 2
    assert "the local cloud is not running" in result.err


def test_a_port_in_use_is_named(deployed: Deployed, run: Run) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("console", "--env", "dev", "--port", str(port))
    assert result.code == 2
    assert f"port {port} on 127.0.0.1 is in use: pick another with --port N" in result.err


def _as_a_background_job() -> None:
    # What `pipeline console &` in a script (or a CI runner's background step) hands the process: SIGINT
    # ignored, in which case Python raises no KeyboardInterrupt of its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "kill"])
@pytest.mark.parametrize("started", ["in-a-terminal", "as-a-background-job"])
def test_the_command_prints_its_address_serves_and_stops_on_ctrl_c(
    local_cloud: LocalCloud, tmp_path: Path, stop: signal.Signals, started: str
) -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipeline_cli.main",
            "console",
            "--port",
            "0",
            "--actions-log",
            str(tmp_path / "a.log"),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'lambda_src'}"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_as_a_background_job if started == "as-a-background-job" else None,  # noqa: PLW1509
    )
    try:
        first = read_line(process, timeout=60)
        match = re.search(r"at (http://127\.0\.0\.1:(\d+)/)", first)
        assert match, first
        assert "read-only" in first
        with urllib.request.urlopen(f"{match.group(1)}jobs", timeout=10) as response:
            assert response.status == 200
            assert "Jobs" in response.read().decode()
        process.send_signal(stop)
        out, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0
    assert "console stopped" in out


def read_line(process: subprocess.Popen[str], *, timeout: float) -> str:
    assert process.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if selector.select(timeout=deadline - time.monotonic()):
            return process.stdout.readline()
    stderr = process.stderr.read() if process.stderr and process.poll() is not None else ""
    raise AssertionError(f"no line from `pipeline console` within {timeout}s: {stderr}")
