"""Request threads that serve one connection after another, instead of a new thread for each connection.

moto's server (werkzeug's threaded server) starts a thread for every connection it accepts, and werkzeug
closes every connection after one response (it does not support keep-alive), so every request of every
caller costs a thread start. The accepting thread waits in `Thread.start` until the new thread has run, which
under load means waiting for the GIL behind everything else the process does; in a burst of small jobs the
accepting thread was 14.5% of the server's GIL samples and every request queued behind it. Here an idle
thread takes the next connection from a queue; a thread is started only when none is idle (so a request is
never held up by another's: a connection blocked in a long poll or a Lambda invocation holds only its own
thread), and one idle for `idle_seconds` ends. What is served, and how, is the same: each connection runs
werkzeug's `process_request_thread`, as its own thread did before.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

Undo = Callable[[], None]
StartThread = Callable[[Callable[[], None], str], threading.Thread]

# A burst's peak of threads is not kept for long once it is over.
IDLE_SECONDS = 30.0


def _start_daemon(target: Callable[[], None], name: str) -> threading.Thread:
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread


class RequestThreads:
    """Serves the connections a socketserver accepts on reusable threads (`process_request`)."""

    def __init__(
        self,
        handle: Callable[[Any, Any], None],
        *,
        idle_seconds: float = IDLE_SECONDS,
        start_thread: StartThread = _start_daemon,
    ) -> None:
        self._handle = handle
        self._idle_seconds = idle_seconds
        self._start_thread = start_thread
        self._connections: queue.SimpleQueue[tuple[Any, Any] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        # Threads waiting for a connection that no connection has been promised to yet.
        self._idle = 0
        self._threads: set[threading.Thread] = set()
        self._started = 0
        self._closed = False

    @property
    def started(self) -> int:
        """Threads started so far."""
        return self._started

    @property
    def idle(self) -> int:
        """Threads waiting for a connection."""
        return self._idle

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._lock:
            if self._idle > 0:
                self._idle -= 1  # promised to one of them: it will not end before it takes this
                self._connections.put((request, client_address))
                return
            self._started += 1
            number = self._started
        first = (request, client_address)
        self._start_thread(lambda: self._serve(first), f"localcloud-request-{number}")

    def _serve(self, first: tuple[Any, Any]) -> None:
        with self._lock:
            self._threads.add(threading.current_thread())
        connection: tuple[Any, Any] | None = first
        while connection is not None:
            self._handle(*connection)
            with self._lock:
                if self._closed:
                    break
                self._idle += 1
            connection = self._next()
        with self._lock:
            self._threads.discard(threading.current_thread())

    def _next(self) -> tuple[Any, Any] | None:
        while True:
            try:
                return self._connections.get(timeout=self._idle_seconds)
            except queue.Empty:
                with self._lock:
                    # Ending takes one idle place back. None left means a connection was promised to an
                    # idle thread and is on its way: stay and take it (this one or another will).
                    if self._idle > 0:
                        self._idle -= 1
                        return None

    def close(self, timeout: float | None = None) -> None:
        """Stop taking connections; the threads finish what they serve and end (waited for, as werkzeug's
        `server_close` waits for its request threads)."""
        with self._lock:
            self._closed = True
            threads = list(self._threads)
            for _ in threads:
                self._connections.put(None)
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(timeout)


def install(server: Any, threads: RequestThreads | None = None) -> Undo:
    """Serve the connections of moto's started ThreadedMotoServer on reusable threads (`threads`, made
    here by default, serving with werkzeug's `process_request_thread`); returns the undo."""
    wsgi = server._server  # werkzeug's ThreadedWSGIServer: socketserver calls self.process_request
    threads = threads or RequestThreads(wsgi.process_request_thread)
    original_close = wsgi.server_close

    def server_close() -> None:
        original_close()
        threads.close()

    wsgi.process_request = threads.process_request
    wsgi.server_close = server_close

    def undo() -> None:
        threads.close()
        for name in ("process_request", "server_close"):
            vars(wsgi).pop(name, None)

    return undo
