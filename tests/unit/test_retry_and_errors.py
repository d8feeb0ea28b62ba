"""Classified retries: full jitter, bounded by attempts and by the invocation's remaining time."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError

from jobcore import retry
from jobcore.adapters.aws_errors import translate, translated
from jobcore.errors import (
    AccessDeniedError,
    InputNotFoundError,
    PermanentError,
    TransientError,
    job_error,
)


def client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op"
    )


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (client_error("ThrottlingException", 400), TransientError),
        (client_error("ProvisionedThroughputExceededException", 400), TransientError),
        (client_error("SlowDown", 503), TransientError),
        (client_error("InternalError", 500), TransientError),
        (client_error("Whatever", 502), TransientError),
        (client_error("InternalServerError", 500), TransientError),
        (client_error("TooManyRequestsException", 429), TransientError),
        (client_error("RequestTimeout", 400), TransientError),
        (ConnectTimeoutError(endpoint_url="http://x"), TransientError),
        (EndpointConnectionError(endpoint_url="http://x"), TransientError),
        (client_error("NoSuchKey", 404), InputNotFoundError),
        (client_error("AccessDenied", 403), AccessDeniedError),
        (client_error("ValidationException", 400), PermanentError),
    ],
)
def test_aws_errors_are_translated_into_the_taxonomy(error: Exception, expected: type) -> None:
    assert type(translate(error)) is expected


def test_programming_errors_are_not_translated() -> None:
    assert translate(KeyError("x")) is None


class Recorder:
    def __init__(self, remaining_ms: int = 60_000) -> None:
        self.sleeps: list[float] = []
        self.remaining = remaining_ms

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.remaining -= int(seconds * 1000)


def failing(times: int, error: Exception):  # type: ignore[no-untyped-def]
    calls = {"n": 0}

    def fn() -> str:
        calls["n"] += 1
        if calls["n"] <= times:
            raise error
        return "ok"

    return fn, calls


def test_transient_errors_are_retried_with_full_jitter_under_the_cap() -> None:
    rec = Recorder()
    policy = retry.RetryPolicy(
        attempts=5, base_delay_s=0.1, max_delay_s=0.3, sleep=rec.sleep, random=lambda: 0.999
    )
    fn, calls = failing(4, TransientError("throttled"))
    assert (
        retry.call(fn, what="x", deadline=retry.Deadline(remaining_ms=lambda: rec.remaining), policy=policy)
        == "ok"
    )
    assert calls["n"] == 5
    caps = [0.1, 0.2, 0.3, 0.3]
    assert all(0 <= s <= cap for s, cap in zip(rec.sleeps, caps, strict=True))


def test_full_jitter_spans_zero_to_the_cap() -> None:
    policy = retry.RetryPolicy(base_delay_s=1.0, max_delay_s=8.0, random=lambda: 0.0)
    assert policy.delay(3) == 0.0
    assert retry.RetryPolicy(base_delay_s=1.0, max_delay_s=8.0, random=lambda: 0.5).delay(3) == 2.0


def test_gives_up_after_the_attempts_with_the_classified_error() -> None:
    rec = Recorder()
    fn, calls = failing(10, TransientError("throttled"))
    policy = retry.RetryPolicy(attempts=3, sleep=rec.sleep)
    with pytest.raises(TransientError):
        retry.call(fn, what="x", deadline=retry.Deadline(remaining_ms=lambda: rec.remaining), policy=policy)
    assert calls["n"] == 3


def test_never_sleeps_past_the_deadline() -> None:
    rec = Recorder(remaining_ms=1_500)
    fn, calls = failing(100, TransientError("throttled"))
    policy = retry.RetryPolicy(
        attempts=100, base_delay_s=0.4, max_delay_s=0.4, sleep=rec.sleep, random=lambda: 1.0
    )
    deadline = retry.Deadline(remaining_ms=lambda: rec.remaining, reserve_ms=500)
    with pytest.raises(TransientError):
        retry.call(fn, what="x", deadline=deadline, policy=policy)
    assert sum(rec.sleeps) * 1000 <= 1_000, "slept into the reserve"
    assert calls["n"] == len(rec.sleeps) + 1


def test_permanent_errors_are_not_retried() -> None:
    rec = Recorder()
    fn, calls = failing(1, AccessDeniedError("denied"))
    with pytest.raises(AccessDeniedError):
        retry.call(
            fn, what="x", deadline=retry.Deadline.unlimited(), policy=retry.RetryPolicy(sleep=rec.sleep)
        )
    assert calls["n"] == 1 and rec.sleeps == []


def test_unknown_errors_propagate_unchanged() -> None:
    fn, calls = failing(1, KeyError("bug"))
    with pytest.raises(KeyError):
        retry.call(fn, what="x", deadline=retry.Deadline.unlimited())
    assert calls["n"] == 1


# --- one retry layer in Lambda; timeouts from the invocation's time ----------------------------------


@pytest.mark.parametrize("budget_ms", [2_000, 8_000, 10_000, 28_000, 300_000, 900_000])
def test_clients_make_one_attempt_with_timeouts_that_fit_the_invocation(budget_ms: int) -> None:
    from jobcore.aws import call_timeouts, client

    timeouts = call_timeouts(budget_ms)
    config = client("s3", timeouts).meta.config
    assert config.retries["total_max_attempts"] == 1, "jobcore.retry is the only retry layer in Lambda"
    assert (config.connect_timeout, config.read_timeout) == (timeouts.connect_s, timeouts.read_s)
    assert timeouts.attempt_ms <= max(budget_ms / 4, 2_000), "one attempt takes at most a quarter of the time"
    assert timeouts.read_s >= 1 and timeouts.connect_s >= 1


def test_clients_share_one_session_so_a_cold_start_reads_the_sdks_data_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A session per client read botocore's endpoints, partitions and defaults again for every client: about
    # 100 ms of the ingest's first invocation (four clients), measured by benchmarks/bench_coldstart.py.
    from jobcore.aws import call_timeouts, client

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    clients = [
        client(service, call_timeouts(budget)) for service in ("sqs", "s3") for budget in (2_000, 60_000)
    ]
    assert len({id(c) for c in clients}) == 4, "a client per service and timeouts, as before"
    assert len({id(c._loader) for c in clients}) == 1, "one session: its loader (and what it read) shared"


def test_an_attempt_that_could_outlive_the_invocation_is_never_started() -> None:
    fn, calls = failing(0, KeyError("unused"))
    deadline = retry.Deadline(remaining_ms=lambda: 2_500, reserve_ms=1_000, attempt_ms=2_000)
    with pytest.raises(TransientError, match="too little time"):
        retry.call(fn, what="read", deadline=deadline)
    assert calls["n"] == 0


def test_no_retry_is_started_when_the_next_attempt_would_not_fit() -> None:
    rec = Recorder(remaining_ms=4_000)
    fn, calls = failing(10, TransientError("slow down"))
    policy = retry.RetryPolicy(
        attempts=10, base_delay_s=0.5, max_delay_s=0.5, sleep=rec.sleep, random=lambda: 1.0
    )
    deadline = retry.Deadline(remaining_ms=lambda: rec.remaining, reserve_ms=1_000, attempt_ms=2_000)
    with pytest.raises(TransientError):
        retry.call(fn, what="read", deadline=deadline, policy=policy)
    # 4.0 s: attempt (fits 3.0 usable), sleep 0.5 -> 3.5 s: 2.5 usable >= 2.0, attempt, sleep -> 3.0 s:
    # 2.0 usable, attempt; the next sleep would leave 1.5 usable < 2.0: stop.
    assert calls["n"] == 3


def test_an_aws_error_escaping_a_handler_is_named_by_the_taxonomy() -> None:
    with pytest.raises(TransientError) as raised, translated():
        raise client_error("InternalServerError", 500)
    assert isinstance(raised.value.__cause__, ClientError)
    with pytest.raises(AccessDeniedError), translated():
        raise client_error("AccessDeniedException", 400)
    with pytest.raises(KeyError), translated():
        raise KeyError("a bug stays a bug")


def test_an_answer_code_is_left_to_the_adapter() -> None:
    with pytest.raises(ClientError), translated(answers={"ConditionalCheckFailedException"}):
        raise client_error("ConditionalCheckFailedException", 400)


def test_the_retry_layer_retries_only_the_taxonomys_transient_errors() -> None:
    fn, calls = failing(1, client_error("ThrottlingException", 400))
    with pytest.raises(ClientError):
        retry.call(fn, what="x", deadline=retry.Deadline.unlimited())
    assert calls["n"] == 1, "adapters translate; the domain's retry layer never sees botocore errors"


LAMBDA_CAUSE = json.dumps(
    {
        "errorMessage": "RequestId: 0f1e2d3c-aaaa-bbbb-cccc-000011112222 Error: Runtime exited with error: signal: killed",
        "errorType": "Runtime.ExitError",
    }
)


@pytest.mark.parametrize(
    ("error", "cause", "expected"),
    [
        (
            "Runtime.ExitError",
            LAMBDA_CAUSE,
            {"type": "Runtime.ExitError", "message": "Runtime exited with error: signal: killed"},
        ),
        ("States.Timeout", "", {"type": "States.Timeout", "message": "States.Timeout"}),
        (
            "DynamoDB.AmazonDynamoDBException",
            "Throughput exceeded (Service: DynamoDb, Status Code: 400)",
            {
                "type": "DynamoDB.AmazonDynamoDBException",
                "message": "Throughput exceeded (Service: DynamoDb, Status Code: 400)",
            },
        ),
        (
            "X",
            "read s3://bucket/in/a/b.jsonl at /home/u/x/y.py",
            {"type": "X", "message": "read s3://bucket/in/a/b.jsonl at y.py"},
        ),
    ],
)
def test_errors_are_type_and_message_without_traces_or_host_paths(
    error: str, cause: str, expected: dict[str, str]
) -> None:
    assert job_error(error, cause) == expected
