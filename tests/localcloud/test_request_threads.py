"""Connections served on reusable threads (localcloud.core.request_threads) instead of a thread each."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from moto.server import ThreadedMotoServer

from localcloud.core.request_threads import RequestThreads, install
from tests.localcloud.support import client, free_port, wait_until


class Recorder:
    """A `handle` that records each connection and, for those named in `hold`, waits until released."""

    def __init__(self, hold: frozenset[str] = frozenset()) -> None:
        self.handled: list[str] = []
        self.threads: set[str] = set()
        self.hold = hold
        self.release = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, request: Any, client_address: Any) -> None:
        if request in self.hold:
            assert self.release.wait(10), "never released"
        with self._lock:
            self.handled.append(request)
            self.threads.add(threading.current_thread().name)

    def count(self) -> Callable[[], int]:
        return lambda: len(self.handled)


def test_connections_one_after_another_are_served_by_one_thread() -> None:
    recorder = Recorder()
    threads = RequestThreads(recorder)
    try:
        for n in range(5):
            threads.process_request(f"c{n}", None)
            wait_until(lambda n=n: len(recorder.handled) == n + 1, timeout=5, message=f"c{n} served")
    finally:
        threads.close(timeout=5)
    assert recorder.handled == [f"c{n}" for n in range(5)]
    assert threads.started == 1
    assert recorder.threads == {"localcloud-request-1"}


def test_a_connection_never_waits_for_a_busy_thread() -> None:
    recorder = Recorder(hold=frozenset({"slow-1", "slow-2"}))
    threads = RequestThreads(recorder)
    try:
        threads.process_request("slow-1", None)
        threads.process_request("slow-2", None)
        threads.process_request("quick", None)
        # Both held, and the third served meanwhile on a third thread.
        wait_until(lambda: recorder.handled == ["quick"], timeout=5, message="the quick one served")
        assert threads.started == 3
        recorder.release.set()
        wait_until(lambda: len(recorder.handled) == 3, timeout=5, message="the held ones served")
        # Now all three are idle: more connections start no thread.
        for n in range(3):
            threads.process_request(f"again-{n}", None)
        wait_until(lambda: len(recorder.handled) == 6, timeout=5, message="the later ones served")
    finally:
        threads.close(timeout=5)
    assert threads.started == 3


def test_an_idle_thread_ends_and_a_new_one_serves_the_next_connection() -> None:
    recorder = Recorder()
    ended: list[str] = []

    def start(target: Callable[[], None], name: str) -> threading.Thread:
        def run() -> None:
            target()
            ended.append(name)

        thread = threading.Thread(target=run, name=name, daemon=True)
        thread.start()
        return thread

    threads = RequestThreads(recorder, idle_seconds=0.05, start_thread=start)
    try:
        threads.process_request("first", None)
        wait_until(lambda: ended == ["localcloud-request-1"], timeout=5, message="the idle thread to end")
        threads.process_request("second", None)
        wait_until(lambda: len(recorder.handled) == 2, timeout=5, message="the second served")
    finally:
        threads.close(timeout=5)
    assert threads.started == 2


def test_close_waits_for_what_is_being_served_and_ends_every_thread() -> None:
    recorder = Recorder(hold=frozenset({"held"}))
    threads = RequestThreads(recorder)
    threads.process_request("held", None)
    threads.process_request("idle-soon", None)
    wait_until(lambda: recorder.handled == ["idle-soon"], timeout=5, message="the free one served")

    closing = threading.Thread(target=threads.close, kwargs={"timeout": 10})
    closing.start()
    closing.join(0.2)
    assert closing.is_alive(), "close returned while a connection was still being served"
    recorder.release.set()
    closing.join(10)
    assert not closing.is_alive()
    assert sorted(recorder.handled) == ["held", "idle-soon"]
    assert not any(t.name.startswith("localcloud-request-") and t.is_alive() for t in threading.enumerate())


def test_moto_server_answers_every_request_on_reused_threads() -> None:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    threads = RequestThreads(server._server.process_request_thread)  # type: ignore[union-attr]
    undo = install(server, threads)
    endpoint = f"http://localhost:{port}"
    try:
        sqs = client(endpoint, "sqs")
        url = sqs.create_queue(QueueName="reused")["QueueUrl"]
        for n in range(10):
            # The thread that served the last connection is back in the pool before the next one comes
            # (werkzeug closes each connection after its response, so each request is a new connection).
            wait_until(lambda: threads.idle == 1, timeout=5, message="the thread to be idle again")
            sqs.send_message(QueueUrl=url, MessageBody=str(n))
        one_after_another = threads.started
        with ThreadPoolExecutor(4) as pool:
            counts = list(
                pool.map(
                    lambda _: len(client(endpoint, "sqs").list_queues(QueueNamePrefix="reused")["QueueUrls"]),
                    range(8),
                )
            )
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    finally:
        server.stop()
        undo()
    assert counts == [1] * 8
    assert attributes["Attributes"]["ApproximateNumberOfMessages"] == "10"
    assert one_after_another == 1
