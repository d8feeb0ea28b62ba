"""A stopping local cloud stops at once (localcloud.core.server.RunningCloud.stop): every background service
is told to start nothing new before the final save closes the gate, and the pollers and the alarm evaluator
do not retry a failed call once stopping (localcloud.core.stopping).

Found timing the test suite: each `down` of a deployed cloud took 5 to 11 s after its final save, the alarm
evaluator and the pollers in turn retrying their in-flight calls against the closed gate's 503s (botocore's
standard retries, with backoff) before each one's stop could return."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError

from localcloud.core.server import RunningCloud
from localcloud.core.stopping import Stopping
from localcloud.services.cloudwatch.alarm_evaluator import AlarmEvaluator
from localcloud.services.lambda_.event_source_mapping import sqs_poller, stream_poller
from tests.localcloud.support import free_port


class Recorded:
    def __init__(self, log: list[str], name: str) -> None:
        self.log, self.name = log, name

    def start(self) -> None:
        self.log.append(f"{self.name} start")

    def stopping(self) -> None:
        self.log.append(f"{self.name} stopping")

    def stop(self) -> None:
        self.log.append(f"{self.name} stop")


def test_every_service_hears_of_the_stop_before_the_final_save_closes_the_gate(tmp_path: Path) -> None:
    log: list[str] = []
    store = SimpleNamespace(save=lambda final: log.append(f"save final={final}"))
    cloud = RunningCloud(
        port=0,
        home=tmp_path,
        server=SimpleNamespace(stop=lambda: log.append("server stop")),
        runner=SimpleNamespace(shutdown=lambda: log.append("runner shutdown")),
        store=store,  # type: ignore[arg-type]
        services=[Recorded(log, "pollers"), Recorded(log, "alarms")],
    )
    cloud.stop()
    assert log == [
        "pollers stopping",
        "alarms stopping",
        "save final=True",
        "runner shutdown",
        "alarms stop",
        "pollers stop",
        "server stop",
    ]


def closed_port_endpoint() -> str:
    # A port nothing listens on: every attempt fails at once with a connection error.
    return f"http://127.0.0.1:{free_port()}"


def attempts_of(client: Any) -> list[str]:
    sent: list[str] = []
    client.meta.events.register("before-send", lambda **kwargs: sent.append(kwargs["request"].url))
    return sent


# Each background service that calls the cloud, with a call to make and the client it goes through.
SERVICES: dict[str, Callable[[str], tuple[Any, Callable[[], Any], Any]]] = {
    "sqs poller": lambda endpoint: (
        poller := sqs_poller.EventSourcePoller(endpoint, "us-east-1"),
        poller._sqs.list_queues,
        poller._sqs,
    ),
    "stream poller": lambda endpoint: (
        poller := stream_poller.StreamPoller(endpoint, "us-east-1"),
        poller._streams.list_streams,
        poller._streams,
    ),
    "alarm evaluator": lambda endpoint: (
        evaluator := AlarmEvaluator(endpoint, "us-east-1"),
        evaluator._cw.describe_alarms,
        evaluator._cw,
    ),
}


@pytest.mark.parametrize("kind", sorted(SERVICES))
def test_a_stopping_service_does_not_retry_a_failed_call(kind: str) -> None:
    service, call, client = SERVICES[kind](closed_port_endpoint())
    sent = attempts_of(client)
    service.stopping()
    with pytest.raises(Stopping):
        call()
    assert len(sent) == 1


def test_a_running_service_still_retries_a_failed_call() -> None:
    # The control: the same failure is retried while the service runs. One service is enough, the rule is
    # one function for all three (and each retry waits out botocore's backoff: seconds a service).
    _, call, client = SERVICES["sqs poller"](closed_port_endpoint())
    sent = attempts_of(client)
    with pytest.raises(EndpointConnectionError):
        call()
    assert len(sent) > 1


class ListingFails(sqs_poller.MappingSupervisor):
    """A supervisor whose listing of the mappings fails (as it does against the closed gate's 503s), the
    stop arriving during the call when `stop_during_call` is set."""

    def __init__(self, *, stop_during_call: bool) -> None:
        super().__init__(closed_port_endpoint(), refresh_interval_seconds=60.0)
        self.stop_during_call = stop_during_call
        self.calls = 0

    def refresh(self) -> None:
        self.calls += 1
        if self.stop_during_call or self.calls > 1:
            self.stopping()
        if self.calls == 1:
            raise EndpointConnectionError(endpoint_url=self._endpoint)


def test_a_listing_failed_by_the_stop_is_not_logged_as_an_error(caplog: pytest.LogCaptureFixture) -> None:
    # Found re-timing `down`: a `down` just after `up` logged a traceback for the supervisor's listing,
    # whose (one-attempt) Lambda client met the closed gate.
    supervisor = ListingFails(stop_during_call=True)
    supervisor._supervise()
    assert supervisor.calls == 1
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_a_listing_that_fails_while_running_is_logged_and_retried(caplog: pytest.LogCaptureFixture) -> None:
    # The control: the same failure while the poller runs is an error worth a traceback, then a retry
    # (after the supervisor's one-second backoff).
    supervisor = ListingFails(stop_during_call=False)
    supervisor._supervise()
    assert supervisor.calls == 2
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == ["listing event source mappings failed; retrying in 1.0s"]
    assert errors[0].exc_info is not None
