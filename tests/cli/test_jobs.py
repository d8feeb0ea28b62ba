"""`pipeline submit | status | wait | jobs | cancel` against an environment resolved through CloudFormation."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import pipeline_contract as contract
from pipeline_cli import aws, output
from pipeline_cli.commands import jobs

from .conftest import Deployed, Result, drain

Run = Callable[..., Result]


# ---------------------------------------------------------------------------------------------- submit


def test_submit_local_file_uploads_it_and_sends_exactly_the_contract(
    deployed: Deployed, run: Run, tmp_path: Path
) -> None:
    source = tmp_path / "input.jsonl"
    source.write_text('{"a": 1}\n{"a": 2}\n')

    result = run(
        "submit", "--input", str(source), "--job-id", "job-1", "--chunk-bytes", "65536", "--env", "dev",
    )  # fmt: skip

    assert result.code == 0, result.err
    assert result.out == "job-1\n"
    bucket = deployed.outputs["DataBucketName"]
    stored = deployed.s3.get_object(Bucket=bucket, Key="in/job-1/input.jsonl")["Body"].read()
    assert stored == source.read_bytes()
    [message] = drain(deployed.sqs, deployed.ingest_url)
    assert json.loads(message["Body"]) == {
        "job_id": "job-1",
        "input": f"s3://{bucket}/in/job-1/input.jsonl",
        "chunk_bytes": 65536,
    }


def test_submit_s3_input_generates_a_job_id_and_sends_only_the_fields_set(
    deployed: Deployed, run: Run
) -> None:
    result = run("submit", "--input", "s3://some-bucket/data/in.jsonl", "--env", "dev", "--json")

    assert result.code == 0, result.err
    printed = json.loads(result.out)
    job_id = printed["job_id"]
    assert re.fullmatch(r"job-\d{8}-\d{6}-[0-9a-f]{4}", job_id)
    [message] = drain(deployed.sqs, deployed.ingest_url)
    assert json.loads(message["Body"]) == {"job_id": job_id, "input": "s3://some-bucket/data/in.jsonl"}
    assert printed["request"] == json.loads(message["Body"])
    assert printed["message_id"] == message["MessageId"]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["--job-id", "bad id!"],
            r"--job-id 'bad id!' is invalid: a job id must match ^[A-Za-z0-9_-]{1,64}$",
        ),
        (["--job-id", "x" * 65], "--job-id 'xxx"),
        (["--chunk-bytes", "1024"], "chunk_bytes must be between 65536 (64 KiB) and 67108864 (64 MiB)"),
        (["--input", "s3://Bad_Bucket/k"], "is not an s3://BUCKET/KEY URI"),
        (["--input", "s3://bucket/"], "key: not empty"),
    ],
)
def test_submit_rejects_bad_fields_before_sending(
    deployed: Deployed, run: Run, argv: list[str], expected: str
) -> None:
    result = run("submit", "--input", "s3://bucket/k.jsonl", "--env", "dev", *argv)

    assert result.code == 2
    assert result.err.startswith("error: ")
    assert expected in result.err
    assert "Traceback" not in result.err
    assert drain(deployed.sqs, deployed.ingest_url) == []


def test_submit_missing_local_file_names_the_field(deployed: Deployed, run: Run, tmp_path: Path) -> None:
    result = run("submit", "--input", str(tmp_path / "nope.jsonl"), "--env", "dev")

    assert result.code == 2
    assert "--input" in result.err and "does not exist" in result.err


# ---------------------------------------------------------------------------------------------- status


def test_status_of_unknown_job_exits_2_with_message(deployed: Deployed, run: Run) -> None:
    result = run("status", "nope", "--env", "dev")

    assert result.code == 2
    assert result.err == "error: unknown job 'nope' in environment dev\n"


@pytest.mark.parametrize("command", [["status", "job-1"], ["jobs"], ["dlq", "list"], ["cancel", "job-1"]])
def test_an_unknown_environment_is_named_with_the_valid_ones(run: Run, command: list[str]) -> None:
    result = run(*command, "--env", "qa")

    assert result.code == 2
    assert (
        result.err
        == "error: --env: unknown environment 'qa'; valid environments are local, dev, staging, prod\n"
    )


def running_record(deployed: Deployed, job_id: str = "job-7") -> None:
    deployed.put_job(
        job_id,
        "RUNNING",
        input="s3://bucket/in/job-7/input.jsonl",
        transform="normalize",
        output_prefix="s3://bucket/out/job-7/",
        cursor=262144,
        bytes_in=262144,
        input_bytes=1048576,
        records_in=1000,
        records_out=998,
        records_rejected=2,
        segments=12,
        executions=2,
    )


def test_status_shows_progress_counters_and_the_latest_execution(deployed: Deployed, run: Run) -> None:
    running_record(deployed)
    machine = deployed.outputs["StateMachineArn"]
    deployed.stepfunctions.start_execution(stateMachineArn=machine, name="job-7-a1-e1", input="{}")

    result = run("status", "job-7", "--env", "dev")

    assert result.code == 0, result.err
    lines = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in result.out.splitlines())
    assert lines["status"] == "RUNNING"
    assert lines["progress"] == "25.0% (262,144 of 1,048,576 bytes)"
    assert lines["records"] == "1,000 in, 998 out, 2 rejected"
    assert lines["segments"] == "12"
    assert lines["executions"] == "2 (attempt 1)"
    assert lines["output"] == "s3://bucket/out/job-7/"
    assert lines["execution"].startswith("job-7-a1-e1 ")


def test_status_shows_the_code_a_job_runs_on_and_its_lineage(deployed: Deployed, run: Run) -> None:
    v1, v2 = {"worker": "3", "digest": "aaaaaaaaaaaaaaaa"}, {"worker": "5", "digest": "bbbbbbbbbbbbbbbb"}
    deployed.put_job(
        "plain", "RUNNING", code_version=v1, lineage=[{"attempt": 1, "code_version": v1, "offsets": [0]}]
    )
    deployed.put_job(
        "upgraded",
        "RUNNING",
        attempt=2,
        code_version=v2,
        lineage=[
            {"attempt": 1, "code_version": v1, "offsets": [0, 1048576]},
            {"attempt": 2, "code_version": v2, "offsets": [524288, 1200000]},
        ],
    )

    plain = run("status", "plain", "--env", "dev").out
    upgraded = run("status", "upgraded", "--env", "dev").out

    assert re.search(r"^code\s+3 \(aaaaaaaaaaaaaaaa\)$", plain, re.MULTILINE)
    assert "written by" not in plain, "one code wrote all of it: nothing more to say"
    assert re.search(r"^code\s+5 \(bbbbbbbbbbbbbbbb\)$", upgraded, re.MULTILINE)
    written = [
        line.split("written by", 1)[1].strip() for line in upgraded.splitlines() if "written by" in line
    ]
    assert written == [
        "3 (aaaaaaaaaaaaaaaa) from attempt 1, offset(s) 0, 1,048,576",
        "5 (bbbbbbbbbbbbbbbb) from attempt 2, offset(s) 524,288, 1,200,000",
    ]
    as_json = json.loads(run("status", "upgraded", "--env", "dev", "--json").out)
    assert as_json["code_version"] == v2 and len(as_json["lineage"]) == 2


def test_status_shows_an_eta_from_the_throughput_so_far(deployed: Deployed, run: Run) -> None:
    # 60 MB behind the checkpoints 60 s after it was accepted: 1 MB/s, 540 MB to go.
    deployed.put_job(
        "job-e",
        "RUNNING",
        updated_at="2026-11-23T10:01:00.000Z",
        created_at="2026-11-23T10:00:00.000Z",
        input_bytes=600_000_000,
        bytes_in=60_000_000,
    )

    result = run("status", "job-e", "--env", "dev")

    lines = dict(re.split(r"\s{2,}", line, maxsplit=1) for line in result.out.splitlines())
    assert lines["eta"] == "~9m00s after 10:01:00 UTC, at 1.00 MB/s so far"
    deployed.set_fields("job-e", status="SUCCEEDED")
    assert "eta" not in run("status", "job-e", "--env", "dev").out


def test_status_of_a_sharded_job_shows_each_shard_and_the_cost(deployed: Deployed, run: Run) -> None:
    mib = 1024 * 1024
    deployed.put_job(
        "job-s",
        "RUNNING",
        input_bytes=4 * mib,
        bytes_in=mib + mib // 2,
        segments=6,
        executions=1,
        chunks=24,
        parts_written=20,
        worker_ms=30_000,
        worker_memory_mb=1024,
        shards={
            "0": {"start": 0, "end": mib, "cursor": mib},
            "1": {"start": mib, "end": 2 * mib, "cursor": mib + mib // 2},
            "2": {"start": 2 * mib, "end": 3 * mib},
            "3": {"start": 3 * mib, "end": 4 * mib, "cursor": 3 * mib - 100},
        },
    )

    result = run("status", "job-s", "--env", "dev")

    assert result.code == 0, result.err
    rows = [re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in result.out.splitlines()]
    lines = dict(row for row in rows if len(row) == 2)
    assert lines["progress"] == "37.5% (1,572,864 of 4,194,304 bytes)"
    assert lines["shards"] == "4 (1 done)"
    assert lines["shard 0"] == "100.0%  bytes 0-1,048,576  done"
    assert lines["shard 1"] == "50.0%  bytes 1,048,576-2,097,152  running"
    assert lines["shard 2"] == "0.0%  bytes 2,097,152-3,145,728  not started"
    # Still reading back to its first line, before its own range: nothing of its range done yet.
    assert lines["shard 3"] == "0.0%  bytes 3,145,728-4,194,304  running"
    # 30 s at 1 GB: 30 GB-s; 6 invocations; 24 GETs + 4 to locate, 20 PUTs.
    assert lines["cost (est.)"].startswith("$0.00")
    assert "Lambda 30.0 GB-s in 6 invocations" in lines["cost (est.)"]
    assert "S3 28 GET / 20 PUT" in lines["cost (est.)"]

    document = json.loads(run("status", "job-s", "--env", "dev", "--json").out)
    cost = document["estimated_cost"]
    assert cost["usage"]["lambda_gb_seconds"] == 30.0 and cost["usage"]["s3_puts"] == 20
    assert cost["usd"] == round(sum(cost["by_service_usd"].values()), 6)
    assert cost["by_service_usd"]["lambda"] == round(30 * 0.0000166667 + 6 * 0.2 / 1e6, 6)


def test_status_finds_the_latest_execution_after_a_redrive(deployed: Deployed, run: Run) -> None:
    # attempt 2 started e0, but `executions` still counts attempt 1's two executions.
    deployed.put_job("job-r", "RUNNING", attempt=2, executions=3)
    machine = deployed.outputs["StateMachineArn"]
    for name in ("job-r-a1-e0", "job-r-a1-e1", "job-r-a2-e0"):
        deployed.stepfunctions.start_execution(stateMachineArn=machine, name=name, input="{}")

    result = run("status", "job-r", "--env", "dev", "--json")

    assert json.loads(result.out)["latest_execution"]["name"] == "job-r-a2-e0"


def test_status_json_is_the_record_with_plain_numbers(deployed: Deployed, run: Run) -> None:
    running_record(deployed)
    deployed.set_fields("job-7", error={"type": "TransientError", "cause": "boom"})

    result = run("status", "job-7", "--env", "dev", "--json")

    assert result.code == 0, result.err
    record = json.loads(result.out)
    assert record["status"] == "RUNNING"
    assert record["cursor"] == 262144 and isinstance(record["cursor"], int)
    assert record["records_rejected"] == 2
    assert record["error"] == {"type": "TransientError", "message": "boom"}
    # The state machine was never started for this job: absence is tolerated, not an error.
    assert record["latest_execution"] is None


# ------------------------------------------------------------------------------------------------ wait


class FakeTime:
    """A clock that only moves when the CLI sleeps, and runs scripted changes at given poll numbers."""

    def __init__(self, script: dict[int, Callable[[], None]]) -> None:
        self.now = 0.0
        self.sleeps = 0
        self.script = script

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.sleeps += 1
        if self.sleeps in self.script:
            self.script[self.sleeps]()


@pytest.fixture
def fake_time(monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[int, Callable[[], None]]], FakeTime]:
    def install(script: dict[int, Callable[[], None]]) -> FakeTime:
        fake = FakeTime(script)
        monkeypatch.setattr(jobs, "_clock", fake.clock)
        monkeypatch.setattr(jobs, "_sleep", fake.sleep)
        return fake

    return install


def test_wait_waits_for_the_record_to_appear_then_exits_0_on_success(
    deployed: Deployed, run: Run, fake_time: Any
) -> None:
    fake_time(
        {
            1: lambda: deployed.put_job("job-w", "PENDING"),
            2: lambda: deployed.set_fields(
                "job-w", status="RUNNING", cursor=50, bytes_in=50, input_bytes=100, segments=1
            ),
            3: lambda: deployed.set_fields(
                "job-w", status="SUCCEEDED", cursor=100, records_in=10, records_out=10
            ),
        }
    )

    result = run("wait", "job-w", "--env", "dev", "--interval", "1", "--timeout", "60")

    assert result.code == 0, result.err
    assert "waiting for the job record" in result.err
    assert "job-w: RUNNING    50.0%  segments 1" in result.err
    assert result.out.startswith("job job-w SUCCEEDED: 10 records in, 10 out, 0 rejected")


def test_status_json_error_is_type_and_message_without_trace_even_for_raw_lambda_causes(
    deployed: Deployed, run: Run
) -> None:
    running_record(deployed)
    cause = json.dumps(
        {
            "errorType": "Runtime.ExitError",
            "errorMessage": "Runtime exited with error: signal: killed",
            "stackTrace": ['  File "/var/task/handlers/worker.py", line 61, in handler'],
        }
    )
    # What the state machine's fallback path writes: the raw Step Functions error and cause.
    deployed.set_fields("job-7", status="FAILED", error={"type": "Runtime.ExitError", "message": cause})

    result = run("status", "job-7", "--env", "dev", "--json")

    assert json.loads(result.out)["error"] == {
        "type": "Runtime.ExitError",
        "message": "Runtime exited with error: signal: killed",
    }
    assert "stackTrace" not in result.out and "/var/task" not in result.out


def test_wait_exits_1_and_prints_the_error_when_the_job_fails(
    deployed: Deployed, run: Run, fake_time: Any
) -> None:
    deployed.put_job("job-f", "RUNNING")
    cause = json.dumps({"errorType": "InputNotFoundError", "errorMessage": "no such key in/x.jsonl"})
    fake_time(
        {
            1: lambda: deployed.set_fields(
                "job-f", status="FAILED", error={"type": "InputNotFoundError", "cause": cause}
            )
        }
    )

    result = run("wait", "job-f", "--env", "dev", "--interval", "1")

    assert result.code == 1
    assert "job job-f FAILED" in result.out
    assert "error: InputNotFoundError: no such key in/x.jsonl" in result.err


def test_wait_exits_1_on_cancelled_and_json_prints_the_final_record(
    deployed: Deployed, run: Run, fake_time: Any
) -> None:
    deployed.put_job("job-c", "CANCELLED")
    fake_time({})

    result = run("wait", "job-c", "--env", "dev", "--json")

    assert result.code == 1
    assert json.loads(result.out)["status"] == "CANCELLED"


def test_wait_exits_3_on_timeout(deployed: Deployed, run: Run, fake_time: Any) -> None:
    deployed.put_job("job-slow", "RUNNING", cursor=10, bytes_in=10, input_bytes=40)
    fake = fake_time({})

    result = run("wait", "job-slow", "--env", "dev", "--timeout", "10", "--interval", "3")

    assert result.code == 3
    assert "error: timed out after 10s waiting for job job-slow (RUNNING, 25.0%)" in result.err
    assert fake.now == 10  # slept 3 + 3 + 3 + 1: never past the deadline
    # Not a TTY: one plain line, not repeated while nothing changes.
    assert result.err.count("job-slow: RUNNING") == 1


def test_wait_exits_3_when_the_record_never_appears(deployed: Deployed, run: Run, fake_time: Any) -> None:
    fake_time({})

    result = run("wait", "ghost", "--env", "dev", "--timeout", "4")

    assert result.code == 3
    assert "job ghost did not appear in environment dev within 4s" in result.err


def test_submit_wait_behaves_like_wait(deployed: Deployed, run: Run, fake_time: Any) -> None:
    fake_time({1: lambda: deployed.put_job("job-sw", "SUCCEEDED")})

    result = run("submit", "--input", "s3://bucket/k.jsonl", "--job-id", "job-sw", "--wait", "--env", "dev")

    assert result.code == 0, result.err
    assert result.out.splitlines()[0] == "job-sw"
    assert "job job-sw SUCCEEDED" in result.out


def test_tty_progress_is_one_rewritten_line() -> None:
    class Tty:
        def __init__(self) -> None:
            self.text = ""

        def write(self, text: str) -> int:
            self.text += text
            return len(text)

        def flush(self) -> None:
            pass

    stream = Tty()
    reporter = output.ProgressReporter("j", stream=stream, tty=True, clock=lambda: 0.0)  # type: ignore[arg-type]
    reporter(
        {"job_id": "j", "status": "RUNNING", "cursor": 30, "bytes_in": 30, "input_bytes": 100, "segments": 2}
    )
    reporter(
        {"job_id": "j", "status": "RUNNING", "cursor": 60, "bytes_in": 60, "input_bytes": 100, "segments": 4}
    )
    reporter.finish()

    assert stream.text.count("\r") == 2 and stream.text.endswith("\n") and stream.text.count("\n") == 1
    assert "[############--------]  60.0%" in stream.text


# ------------------------------------------------------------------------------------------------ jobs


def seed_jobs(deployed: Deployed) -> None:
    deployed.put_job("old-failed", "FAILED", "2026-11-20T08:00:00.000Z", segments=3)
    deployed.put_job(
        "new-failed",
        "FAILED",
        "2026-11-23T08:00:00.000Z",
        segments=5,
        records_in=1200,
        code_version={"worker": "7", "digest": "3ca330d5dcbb83dd"},
    )
    deployed.put_job("running", "RUNNING", "2026-11-22T08:00:00.000Z", executions=1)
    deployed.put_job("done", "SUCCEEDED", "2026-11-21T08:00:00.000Z")


def test_jobs_with_status_queries_the_index_newest_first(
    deployed: Deployed, run: Run, api_calls: list[tuple[str, dict[str, Any]]]
) -> None:
    seed_jobs(deployed)

    result = run("jobs", "--status", "failed", "--env", "dev")

    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0].split() == [
        "JOB", "STATUS", "CODE", "SEGMENTS", "EXECUTIONS", "IN", "OUT", "REJECTED", "UPDATED"
    ]  # fmt: skip
    assert [line.split()[0] for line in lines[1:]] == ["new-failed", "old-failed"]
    assert "1,200" in lines[1]
    # The code each job runs on (a job from before code versions shows none).
    assert "7 (3ca330d5dcbb83dd)" in lines[1] and lines[2].split()[2] == "-"
    # Aligned: every row is as wide as the header up to the last column.
    assert len({line.index("2026-") for line in lines[1:]}) == 1
    operations = [name for name, _ in api_calls]
    assert "Scan" not in operations
    [query] = [params for name, params in api_calls if name == "Query"]
    assert query["IndexName"] == "by-status" and query["ScanIndexForward"] is False


def test_jobs_without_status_merges_one_query_per_status_never_a_scan(
    deployed: Deployed, run: Run, api_calls: list[tuple[str, dict[str, Any]]]
) -> None:
    seed_jobs(deployed)

    result = run("jobs", "--env", "dev", "--limit", "3", "--json")

    assert result.code == 0, result.err
    assert [record["job_id"] for record in json.loads(result.out)] == ["new-failed", "running", "done"]
    operations = [name for name, _ in api_calls]
    assert "Scan" not in operations
    queried = sorted(
        params["ExpressionAttributeValues"][":s"]["S"] for name, params in api_calls if name == "Query"
    )
    assert queried == sorted(contract.STATUSES)


def test_a_job_changing_status_between_the_queries_is_listed_once_as_it_is_now(
    deployed: Deployed, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found by the console's browser test: a job started between the PENDING and the RUNNING query was in
    # both answers, and the jobs list showed it twice (PENDING and RUNNING).
    deployed.put_job("moving", "PENDING", "2026-11-23T10:00:00.000Z")
    deployed.put_job("still", "PENDING", "2026-11-23T09:00:00.000Z")
    original = aws.Pipeline.client

    def start_the_job_after_the_pending_query(parsed: dict[str, Any], **_: Any) -> None:
        if any(
            item["job_id"]["S"] == "moving" and item["status"]["S"] == "PENDING" for item in parsed["Items"]
        ):
            deployed.put_job("moving", "RUNNING", "2026-11-23T10:00:01.000Z")

    def client(self: aws.Pipeline, service: str, *, max_attempts: int | None = None) -> Any:
        created = original(self, service, max_attempts=max_attempts)
        created.meta.events.register("after-call.dynamodb.Query", start_the_job_after_the_pending_query)
        return created

    monkeypatch.setattr(aws.Pipeline, "client", client)

    result = run("jobs", "--env", "dev", "--json")

    assert result.code == 0, result.err
    listed = [(record["job_id"], record["status"]) for record in json.loads(result.out)]
    assert listed == [("moving", "RUNNING"), ("still", "PENDING")]


def test_jobs_says_when_there_are_none(deployed: Deployed, run: Run) -> None:
    result = run("jobs", "--status", "REJECTED", "--env", "dev")

    assert result.code == 0
    assert result.out == "no REJECTED jobs in environment dev\n"


# ---------------------------------------------------------------------------------------------- cancel


def test_cancel_pending_job(deployed: Deployed, run: Run) -> None:
    deployed.put_job("job-p", "PENDING")

    result = run("cancel", "job-p", "--env", "dev")

    assert result.code == 0, result.err
    assert "cancelled job job-p (was PENDING)" in result.out
    item = deployed.dynamodb.get_item(TableName=deployed.table, Key={"job_id": {"S": "job-p"}})["Item"]
    assert item["status"]["S"] == "CANCELLED"
    updated = datetime.strptime(item["updated_at"]["S"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - updated).total_seconds()) < 60


def test_cancel_running_job_json(deployed: Deployed, run: Run) -> None:
    deployed.put_job("job-r", "RUNNING", segments=4)

    result = run("cancel", "job-r", "--env", "dev", "--json")

    assert result.code == 0, result.err
    record = json.loads(result.out)
    assert record["status"] == "CANCELLED" and record["segments"] == 4


def test_cancel_terminal_job_says_its_status(deployed: Deployed, run: Run) -> None:
    deployed.put_job("job-s", "SUCCEEDED")

    result = run("cancel", "job-s", "--env", "dev")

    assert result.code == 2
    assert "error: job job-s is SUCCEEDED, not PENDING or RUNNING" in result.err
    item = deployed.dynamodb.get_item(TableName=deployed.table, Key={"job_id": {"S": "job-s"}})["Item"]
    assert item["status"]["S"] == "SUCCEEDED"


def test_cancel_unknown_job_creates_nothing(deployed: Deployed, run: Run) -> None:
    result = run("cancel", "nope", "--env", "dev")

    assert result.code == 2
    assert result.err == "error: unknown job 'nope' in environment dev\n"
    assert "Item" not in deployed.dynamodb.get_item(TableName=deployed.table, Key={"job_id": {"S": "nope"}})
