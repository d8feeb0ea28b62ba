"""`pipeline dlq list | redrive` on moto (which has no StartMessageMoveTask: the fallback path)."""

from __future__ import annotations

import functools
import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from pipeline_cli import aws
from pipeline_cli.main import main

from .conftest import MAX_RECEIVE_COUNT, Deployed, Result, dlq_attributes, drain

Run = Callable[..., Result]


def dead_letter(
    deployed: Deployed, job_id: str | None, index: int, error_type: str = "TransientError"
) -> str:
    body = json.dumps({"job_id": job_id, "input": f"s3://b/{index}.jsonl"}) if job_id else f"not json {index}"
    deployed.sqs.send_message(
        QueueUrl=deployed.dlq_url,
        MessageBody=body,
        MessageAttributes=dlq_attributes(job_id, error_type, f"failure number {index}", f"source-{index}"),
    )
    return body


def redriven_by_sqs(deployed: Deployed, body: str) -> None:
    """A message that reached the DLQ the other way: received maxReceiveCount times, never deleted."""
    deployed.sqs.send_message(QueueUrl=deployed.ingest_url, MessageBody=body)
    for _ in range(MAX_RECEIVE_COUNT + 1):
        deployed.sqs.receive_message(QueueUrl=deployed.ingest_url, VisibilityTimeout=0)


def visible_count(deployed: Deployed, queue_url: str) -> int:
    attributes = deployed.sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "0"
    return int(attributes["ApproximateNumberOfMessages"])


def test_dlq_list_shows_every_message_with_its_reason_and_leaves_them(deployed: Deployed, run: Run) -> None:
    dead_letter(deployed, "job-a", 1, "InputNotFoundError")
    dead_letter(deployed, None, 2, "ValidationError")
    redriven_by_sqs(deployed, json.dumps({"job_id": "job-b", "input": "s3://b/k"}))

    result = run("dlq", "list", "--env", "dev")

    assert result.code == 0, result.err
    assert "its ApproximateReceiveCount rose by one" in result.err, "says what reading did"
    lines = result.out.splitlines()
    assert lines[0].split()[:4] == ["SENT", "JOB", "ERROR", "TYPE"]
    assert any(
        "job-a" in line and "InputNotFoundError" in line and "failure number 1" in line for line in lines
    )
    assert any("ValidationError" in line and "source-2" in line and "not json 2" in line for line in lines)
    assert any("job-b" in line for line in lines)  # job id from the body when there is no attribute
    assert "3 message(s) in the dead-letter queue of environment dev" in result.out
    # Released at once: all three are visible again, none in flight.
    assert visible_count(deployed, deployed.dlq_url) == 3


def test_dlq_list_json_and_truncated_bodies(deployed: Deployed, run: Run) -> None:
    long_body = json.dumps({"job_id": "job-l", "input": "s3://b/" + "k" * 200})
    deployed.sqs.send_message(
        QueueUrl=deployed.dlq_url,
        MessageBody=long_body,
        MessageAttributes=dlq_attributes("job-l", "PermanentError", "x", "src"),
    )

    table = run("dlq", "list", "--env", "dev")
    as_json = run("dlq", "list", "--env", "dev", "--json")

    assert long_body not in table.out and "..." in table.out
    [message] = json.loads(as_json.out)
    assert message["body"] == long_body
    assert message["job_id"] == "job-l"
    assert message["error_type"] == "PermanentError"
    assert message["sent_at"].endswith("Z")


def test_dlq_list_reads_each_message_once_over_many_rounds(deployed: Deployed, run: Run) -> None:
    bodies = [dead_letter(deployed, f"job-{index}", index) for index in range(23)]

    result = run("dlq", "list", "--env", "dev", "--json")

    assert sorted(message["body"] for message in json.loads(result.out)) == sorted(bodies)


def test_dlq_list_empty(deployed: Deployed, run: Run) -> None:
    result = run("dlq", "list", "--env", "dev")

    assert result.out == "the dead-letter queue of environment dev is empty\n"


def test_redrive_falls_back_and_moves_every_message_exactly_once(deployed: Deployed, run: Run) -> None:
    bodies = [dead_letter(deployed, f"job-{index}", index) for index in range(24)]
    redriven_by_sqs(deployed, "raw request")
    bodies.append("raw request")

    result = run("dlq", "redrive", "--env", "dev")

    assert result.code == 0, result.err
    assert "moved 25 message(s) from the DLQ" in result.out
    assert "StartMessageMoveTask is not implemented" in result.out
    assert visible_count(deployed, deployed.dlq_url) == 0
    moved = drain(deployed.sqs, deployed.ingest_url)
    assert Counter(message["Body"] for message in moved) == Counter(bodies)
    first = next(message for message in moved if message["Body"] == bodies[0])
    # The reason stays behind; the identity travels with the request.
    assert set(first["MessageAttributes"]) == {"job_id", "source_message_id"}
    assert first["MessageAttributes"]["source_message_id"]["StringValue"] == "source-0"


def test_redrive_job_id_moves_only_that_jobs_messages(deployed: Deployed, run: Run) -> None:
    mine = [dead_letter(deployed, "job-x", index) for index in range(2)]
    others = [dead_letter(deployed, "job-y", index) for index in range(2, 14)]

    result = run("dlq", "redrive", "--job-id", "job-x", "--env", "dev", "--json")

    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["method"] == "receive-send-delete"
    assert report["moved"] == 2 and report["skipped"] == 12
    assert sorted(message["Body"] for message in drain(deployed.sqs, deployed.ingest_url)) == sorted(mine)
    # The others are left, visible again at once (released, not waiting out a visibility timeout).
    assert visible_count(deployed, deployed.dlq_url) == 12
    assert sorted(message["Body"] for message in drain(deployed.sqs, deployed.dlq_url)) == sorted(others)


def test_redrive_job_id_of_an_unknown_job_exits_2_and_moves_nothing(deployed: Deployed, run: Run) -> None:
    others = [dead_letter(deployed, "job-y", index) for index in range(3)]

    result = run("dlq", "redrive", "--job-id", "job-typo", "--env", "dev")

    assert result.code == 2
    assert result.err == (
        "error: unknown job 'job-typo' in environment dev: no job record and no message of it in the DLQ "
        "(3 other message(s) left there)\n"
    )
    assert sorted(message["Body"] for message in drain(deployed.sqs, deployed.dlq_url)) == sorted(others)


def test_redrive_job_id_of_a_job_with_nothing_in_the_dlq_exits_1_saying_its_status(
    deployed: Deployed, run: Run
) -> None:
    deployed.put_job("job-ok", "SUCCEEDED")

    result = run("dlq", "redrive", "--job-id", "job-ok", "--env", "dev")

    assert result.code == 1
    assert result.err == "error: no message of job 'job-ok' in the DLQ to redrive (the job is SUCCEEDED)\n"


def patch_sqs(monkeypatch: Any, **methods: Callable[..., Any]) -> None:
    """Replace methods of the CLI's SQS clients; each replacement gets the real method first."""
    real_client = aws.Pipeline.client

    def client(self: aws.Pipeline, service: str, *, max_attempts: int | None = None) -> Any:
        created = real_client(self, service, max_attempts=max_attempts)
        if service == "sqs":
            for name, replacement in methods.items():
                setattr(created, name, functools.partial(replacement, getattr(created, name, None)))
        return created

    monkeypatch.setattr(aws.Pipeline, "client", client)


def test_redrive_deletes_nothing_whose_send_failed(deployed: Deployed, run: Run, monkeypatch: Any) -> None:
    bodies = [dead_letter(deployed, "job-z", index) for index in range(3)]
    sends = Counter[str]()

    def second_send_fails(real: Callable[..., Any], **params: Any) -> Any:
        sends["n"] += 1
        if sends["n"] == 2:
            raise ClientError({"Error": {"Code": "InternalError", "Message": "boom"}}, "SendMessage")
        return real(**params)

    patch_sqs(monkeypatch, send_message=second_send_fails)

    result = run("dlq", "redrive", "--env", "dev")

    assert result.code == 1
    assert "moved 2 message(s)" in result.out and "could not send 1 message(s)" in result.out
    assert "error: the redrive is incomplete" in result.err
    moved = [message["Body"] for message in drain(deployed.sqs, deployed.ingest_url)]
    left = [message["Body"] for message in drain(deployed.sqs, deployed.dlq_url)]
    assert len(moved) == 2 and len(left) == 1
    assert sorted(moved + left) == sorted(bodies)


def test_redrive_uses_the_move_task_where_the_endpoint_has_it(
    deployed: Deployed, run: Run, monkeypatch: Any
) -> None:
    started: list[dict[str, Any]] = []

    def start_message_move_task(_real: Any, **params: Any) -> dict[str, str]:
        started.append(params)
        return {"TaskHandle": "handle-123"}

    patch_sqs(monkeypatch, start_message_move_task=start_message_move_task)
    dead_letter(deployed, "job-m", 1)

    result = run("dlq", "redrive", "--env", "dev", "--json")

    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["task_handle"] == "handle-123" and report["method"] == "message-move-task"
    assert report["approximate_messages"] == 1
    assert started == [{"SourceArn": report["source_arn"], "DestinationArn": report["destination_arn"]}]
    assert report["destination_arn"].endswith(":resilient-pipeline-dev-ingest")


def test_redrive_holds_back_a_request_that_fails_again_during_the_run(
    deployed: Deployed, run: Run, monkeypatch: Any
) -> None:
    """An ingest that rejects at once puts a new DLQ message (same source_message_id) for each one moved;
    the redrive must not chase its own tail."""
    for index in range(3):
        dead_letter(deployed, f"job-{index}", index, "ValidationError")
    dead_letter_without_source = "no attributes at all"
    deployed.sqs.send_message(QueueUrl=deployed.dlq_url, MessageBody=dead_letter_without_source)

    def rejecting_ingest(real: Callable[..., Any], **params: Any) -> Any:
        sent = real(**params)
        if params["QueueUrl"] == deployed.ingest_url:
            source = params.get("MessageAttributes", {}).get("source_message_id", {}).get("StringValue")
            real(
                QueueUrl=deployed.dlq_url,
                MessageBody=params["MessageBody"],
                MessageAttributes=dlq_attributes(
                    None, "ValidationError", "again", source or sent["MessageId"]
                ),
            )
        return sent

    patch_sqs(monkeypatch, send_message=rejecting_ingest)

    result = run("dlq", "redrive", "--env", "dev", "--json")

    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert (report["moved"], report["held_back"], report["complete"]) == (4, 4, True)
    assert len(drain(deployed.sqs, deployed.ingest_url)) == 4
    assert len(drain(deployed.sqs, deployed.dlq_url)) == 4  # the new failures, for a person to read


def test_dlq_list_shows_the_message_of_a_lambda_cause(deployed: Deployed, run: Run) -> None:
    cause = json.dumps({"errorType": "InputNotFoundError", "errorMessage": "input s3://b/k does not exist"})
    deployed.sqs.send_message(
        QueueUrl=deployed.dlq_url,
        MessageBody=json.dumps({"job_id": "job-c", "input": "s3://b/k"}),
        MessageAttributes=dlq_attributes("job-c", "InputNotFoundError", cause, "src-c"),
    )

    table = run("dlq", "list", "--env", "dev")
    as_json = run("dlq", "list", "--env", "dev", "--json")

    assert "input s3://b/k does not exist" in table.out and "errorType" not in table.out
    assert json.loads(as_json.out)[0]["error_message"] == cause  # JSON keeps the attribute as it is


def test_redrive_restart_asks_every_moved_request_for_a_restart(deployed: Deployed, run: Run) -> None:
    body = dead_letter(deployed, "job-c", 1, "InputChangedError")

    result = run("dlq", "redrive", "--job-id", "job-c", "--restart", "--env", "dev", "--json")

    assert result.code == 0, result.err
    assert (
        json.loads(result.out)["reason"] == "--restart rewrites the requests, which only the fallback can do"
    )
    (moved,) = drain(deployed.sqs, deployed.ingest_url)
    assert json.loads(moved["Body"]) == {**json.loads(body), "restart": True}


def test_redrive_upgrade_asks_for_an_upgrade_and_takes_a_restart_back_out(
    deployed: Deployed, run: Run
) -> None:
    deployed.sqs.send_message(
        QueueUrl=deployed.dlq_url,
        MessageBody=json.dumps({"job_id": "job-u", "input": "s3://b/k", "restart": True}),
        MessageAttributes=dlq_attributes("job-u", "CodeVersionChangedError", "code changed", "source-u"),
    )

    result = run("dlq", "redrive", "--job-id", "job-u", "--upgrade", "--env", "dev", "--json")

    assert result.code == 0, result.err
    assert (
        json.loads(result.out)["reason"] == "--upgrade rewrites the requests, which only the fallback can do"
    )
    (moved,) = drain(deployed.sqs, deployed.ingest_url)
    assert json.loads(moved["Body"]) == {"job_id": "job-u", "input": "s3://b/k", "upgrade": True}


def test_restart_and_upgrade_are_one_choice(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["dlq", "redrive", "--restart", "--upgrade", "--env", "dev"])
    assert exited.value.code == 2
    assert "argument --upgrade: not allowed with argument --restart" in capsys.readouterr().err


def test_a_plain_redrive_takes_an_earlier_restart_back_out(deployed: Deployed, run: Run) -> None:
    deployed.sqs.send_message(
        QueueUrl=deployed.dlq_url,
        MessageBody=json.dumps({"job_id": "job-d", "input": "s3://b/k", "restart": True}),
        MessageAttributes=dlq_attributes("job-d", "RejectRatioExceededError", "too many", "source-d"),
    )
    unchanged = dead_letter(deployed, "job-e", 2)

    assert run("dlq", "redrive", "--job-id", "job-d", "--env", "dev").code == 0
    assert run("dlq", "redrive", "--job-id", "job-e", "--env", "dev").code == 0

    bodies = sorted(message["Body"] for message in drain(deployed.sqs, deployed.ingest_url))
    assert bodies == sorted(
        [json.dumps({"job_id": "job-d", "input": "s3://b/k"}, separators=(",", ":")), unchanged]
    )


def test_dlq_list_json_carries_the_error_as_type_and_message(deployed: Deployed, run: Run) -> None:
    cause = json.dumps({"errorType": "Runtime.ExitError", "errorMessage": "killed", "stackTrace": ["x"]})
    deployed.sqs.send_message(
        QueueUrl=deployed.dlq_url,
        MessageBody="{}",
        MessageAttributes=dlq_attributes("job-f", "Runtime.ExitError", cause, "source-f"),
    )

    (message,) = json.loads(run("dlq", "list", "--env", "dev", "--json").out)

    assert message["error"] == {"type": "Runtime.ExitError", "message": "killed"}
