"""The local cloud's state on disk: moto's backends saved at shutdown (and every few seconds) and restored
when the server starts again, so that a stopped cloud comes back with its resources and data.

How it works, what is kept and what is rebuilt: docs/local-cloud-internals.md#localcloudcorepersistencepy
"""

from __future__ import annotations

import contextlib
import copy
import copyreg
import functools
import importlib
import io
import json
import logging
import os
import pickle
import sys
import tempfile
import threading
import time
import weakref
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from moto.core.base_backend import AccountSpecificBackend, BackendDict
from moto.stepfunctions.parser.backend.execution import Execution, SyncExecution

from localcloud.core.state import Header, make_private_dir, open_snapshot, snapshot_path

# Defined beside open_snapshot (state.py reads headers too); raised by this module, and caught by its callers
# as persistence.SnapshotError: an explicit re-export.
from localcloud.core.state import SnapshotError as SnapshotError  # noqa: PLC0414
from localcloud.services.dynamodb import dynamodb_items
from localcloud.services.stepfunctions import sfn

LOG = logging.getLogger(__name__)

# How long a save waits for the requests being served to finish before it reads the state anyway. Most take
# milliseconds; the rest (a synchronous Lambda Invoke, whose handler's own calls are held; a long-poll
# ReceiveMessage) would not finish in any wait, so it is short.
DRAIN_SECONDS = 0.5
# A save retries when a thread changed a dict while it was being read.
SAVE_ATTEMPTS = 5

WSGIApp = Callable[[dict[str, Any], Any], Iterable[bytes]]
Undo = Callable[[], None]


# -- requests held while the state is read --------------------------------------------------------------


class RequestGate:
    """Every request to the server passes here. While a save holds it, new requests wait, so that the
    snapshot is the state between two requests. Once closed (the final save), it answers every request 503
    until the server stops: a request answered 200 after the final snapshot would be lost at the next start,
    while a 503 is one clients retry (and `up` is there to retry against)."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        # Requests being served that a save waits for (briefly): not those that wait on other requests.
        self._in_flight = 0
        self._holds = 0
        # Set by close(): new requests are refused.
        self._closing = False
        # Set when a closed gate's save reads the state: a request that finishes from then on is refused
        # too (what it did may not be in the snapshot), however long ago it came in.
        self._sealed = False
        self.requests = 0

    def wrap(self, app: WSGIApp) -> WSGIApp:
        def gated(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
            if _passes(environ):
                return app(environ, start_response)
            counted = 0 if _waits(environ) else 1
            with self._condition:
                while self._holds and not self._closing:
                    self._condition.wait()
                if self._closing:
                    return _unavailable(environ, start_response)
                self._in_flight += counted
                self.requests += 1
            # The answer is held back until the request is done, so that one done after the final save
            # read the state can still be refused instead.
            answer: list[Any] = []
            # Set once the answer is let through: an application that starts its response only while its
            # body is iterated (WSGI allows it) reaches the server's start_response directly.
            passed: list[bool] = []

            def defer(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
                if passed:
                    return start_response(status, headers, exc_info)
                answer[:] = [status, headers, exc_info]
                return _no_write

            sealed = True
            try:
                # moto builds the whole response here: the request is done when this returns.
                body = app(environ, defer)
            finally:
                with self._condition:
                    self._in_flight -= counted
                    sealed = self._sealed
                    self._condition.notify_all()
            if sealed:
                close = getattr(body, "close", None)
                if close is not None:
                    close()
                return _unavailable(environ, start_response)
            passed.append(True)
            if answer:
                start_response(*answer)
            return body

        return gated

    def close(self) -> None:
        """From now until the server stops, answer every new request 503 (the final save calls this)."""
        with self._condition:
            self._closing = True
            self._condition.notify_all()  # requests held by a save: refused now

    @contextlib.contextmanager
    def held(self, drain_seconds: float = DRAIN_SECONDS) -> Iterator[int]:
        """Hold new requests; wait up to `drain_seconds` for those being served to finish. Yields how many
        were still being served. On a closed gate, those still being served are answered 503 when they
        finish (their effects may be missing from the snapshot)."""
        deadline = time.monotonic() + drain_seconds
        with self._condition:
            self._holds += 1
            while self._in_flight and (remaining := deadline - time.monotonic()) > 0:
                self._condition.wait(remaining)
            in_flight = self._in_flight
            if self._closing:
                self._sealed = True
        try:
            yield in_flight
        finally:
            with self._condition:
                self._holds -= 1
                self._condition.notify_all()


UNAVAILABLE_MESSAGE = "the local cloud is stopping; retry once it is up again"


def _unavailable(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """A 503 in the shape of AWS's ServiceUnavailable: every SDK retries it. JSON for the JSON protocols
    (X-Amz-Target, Lambda's REST JSON), XML for the others (S3, the query protocols)."""
    content_type = str(environ.get("CONTENT_TYPE", ""))
    if environ.get("HTTP_X_AMZ_TARGET") or "json" in content_type:
        body = json.dumps({"__type": "ServiceUnavailable", "message": UNAVAILABLE_MESSAGE}).encode()
        kind = "application/x-amz-json-1.0"
    else:
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>ServiceUnavailable</Code>'
            f"<Message>{UNAVAILABLE_MESSAGE}</Message></Error>"
        ).encode()
        kind = "application/xml"
    headers = [
        ("Content-Type", kind),
        ("Content-Length", str(len(body))),
        ("x-amzn-ErrorType", "ServiceUnavailable"),
    ]
    # Closed: the client's next try opens a new connection, which reaches the next server, while a kept-alive
    # one would go on being served by this one's handler thread after it stopped listening.
    headers.append(("Connection", "close"))
    start_response("503 Service Unavailable", headers)
    return [body]


def _no_write(_data: bytes) -> None:
    # WSGI's legacy write(): moto's applications return their body instead, and a deferred answer cannot
    # have been started yet.
    raise RuntimeError("the request gate defers the response: write() is not supported")


def _passes(environ: dict[str, Any]) -> bool:
    # The health check (`cloud.answers`) and the chaos control API change no saved state.
    path = str(environ.get("PATH_INFO", ""))
    if path.startswith("/_localcloud/"):
        return True
    return path.startswith("/moto-api") and environ.get("REQUEST_METHOD") in {"GET", "HEAD"}


def _waits(environ: dict[str, Any]) -> bool:
    """A request that no wait would see finish while requests are held: a synchronous Lambda invocation
    (its handler's own calls are held) and an SQS long poll (no message can arrive). What either changes
    after the snapshot, a restore delivers again (the message, the execution behind the invocation)."""
    if environ.get("HTTP_X_AMZ_TARGET") == "AmazonSQS.ReceiveMessage":
        return True
    path = str(environ.get("PATH_INFO", ""))
    return path.startswith("/2015-03-31/functions/") and path.endswith("/invocations")


def gate_server(gate: RequestGate, server: Any) -> None:
    """Put `gate` in front of a started ThreadedMotoServer's application, outside everything installed
    before. On the server's own application, not moto's application class: the handler thread of a
    connection accepted just before the server stopped listening calls it later, after `stop()` returned,
    and must still meet the closed gate (a class patch is undone by then, and would serve the request)."""
    wsgi = server._server  # moto's werkzeug server: its handlers read `.app` per request
    wsgi.app = gate.wrap(wsgi.app)


# -- pickling moto's backends ---------------------------------------------------------------------------

_LOCK_TYPE = type(threading.Lock())
_RLOCK_TYPE = type(threading.RLock())


def _new_event(is_set: bool) -> threading.Event:
    event = threading.Event()
    if is_set:
        event.set()
    return event


def _weak_value_dictionary(items: dict[Any, Any]) -> weakref.WeakValueDictionary[Any, Any]:
    return weakref.WeakValueDictionary(items)


def _new_defaultdict(kind: type[defaultdict[Any, Any]], factory: Any) -> defaultdict[Any, Any]:
    # Not kind(factory): a subclass's __init__ may take other arguments (moto's SSM ParameterDict does).
    made = defaultdict.__new__(kind)
    made.default_factory = factory
    return made


def _is_local_function(factory: Any) -> bool:
    qualname = getattr(factory, "__qualname__", "")
    return "<lambda>" in qualname or "<locals>" in qualname


class _Pickler(pickle.Pickler):
    """pickle with a deliberate answer for each kind of member moto's models hold that pickle refuses:

    - locks, conditions and events: new ones (nothing waits on them in a new process);
    - weak-value dictionaries: rebuilt from their live values;
    - a defaultdict whose factory is a lambda (`defaultdict(lambda: {})`): a factory that returns a copy of
      what the lambda returned (an empty container); a subclass of defaultdict: made without calling its
      `__init__` (pickle's way calls it with the factory alone);
    - a Step Functions execution: without its worker thread (`sfn.execution_state_to_save`);
    - the registries of backends themselves (`BackendDict`, `AccountSpecificBackend`), wherever a model
      refers to one: by name, so that the restored model refers to the live registry.

    Anything else pickle refuses fails the save, naming its type (`SnapshotError`)."""

    def __init__(self, file: io.BufferedWriter, registries: dict[int, tuple[str, ...]]) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._registries = registries

    def persistent_id(self, obj: Any) -> tuple[str, ...] | None:
        if isinstance(obj, BackendDict | AccountSpecificBackend):
            return self._registries.get(id(obj))
        return None

    def reducer_override(self, obj: Any) -> Any:  # noqa: PLR0911 - one return per kind
        kind = type(obj)
        if kind is _LOCK_TYPE:
            return threading.Lock, ()
        if kind is _RLOCK_TYPE:
            return threading.RLock, ()
        if kind is threading.Condition:
            return threading.Condition, ()
        if kind is threading.Event:
            return _new_event, (obj.is_set(),)
        if kind is weakref.WeakValueDictionary:
            return _weak_value_dictionary, (dict(obj.items()),)
        if isinstance(obj, defaultdict) and (
            kind is not defaultdict or _is_local_function(obj.default_factory)
        ):
            factory: Any = obj.default_factory
            if factory is not None and _is_local_function(factory):
                factory = functools.partial(copy.deepcopy, factory())
            return (
                _new_defaultdict,
                (kind, factory),
                getattr(obj, "__dict__", None) or None,
                None,
                iter(obj.items()),
            )
        if kind in (Execution, SyncExecution):
            return copyreg.__newobj__, (kind,), sfn.execution_state_to_save(obj)  # type: ignore[attr-defined]
        return NotImplemented


class _Unpickler(pickle.Unpickler):
    def persistent_load(self, pid: Any) -> Any:
        module, attribute, *account = pid
        registry = getattr(importlib.import_module(module), attribute)
        return registry[account[0]] if account else registry


def _registries() -> dict[tuple[str, str], BackendDict[Any]]:
    """Every backend registry in use, by the module attribute that holds it."""
    found: dict[tuple[str, str], BackendDict[Any]] = {}
    for registry in list(BackendDict._instances):  # type: ignore[misc]
        module = sys.modules.get(registry.backend.__module__)
        names = [name for name, value in vars(module or object).items() if value is registry]
        if not names:
            # moto keeps every registry in its models module; one elsewhere cannot be found again.
            raise SnapshotError(f"the {registry.service_name} backends are not a module attribute")
        found[(registry.backend.__module__, names[0])] = registry
    return found


def _running_executions() -> int:
    return len([execution for execution in sfn.executions() if sfn.status_of(execution) == "RUNNING"])


def dump_state(file: io.BufferedWriter) -> Header:
    """Write every moto backend in use to `file`: a header record, then the state."""
    registries = _registries()
    names: dict[int, tuple[str, ...]] = {}
    backends: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for key, registry in registries.items():
        names[id(registry)] = key
        backends[key] = {}
        for account, per_region in list(registry.items()):
            names[id(per_region)] = (*key, account)
            backends[key][account] = dict(per_region.items())
    header = Header.current(running_executions=_running_executions())
    pickle.dump(header.__dict__, file, protocol=pickle.HIGHEST_PROTOCOL)
    _Pickler(file, names).dump(backends)
    return header


def load_state(file: BinaryIO) -> Header:
    """Read a snapshot written by `dump_state` and put every backend in it in place of moto's."""
    fields = pickle.load(file)  # noqa: S301 - our own file, in the user's own directory
    header = Header(**fields)
    reason = header.incompatibility()
    if reason is not None:
        raise SnapshotError(reason)
    backends: dict[tuple[str, str], dict[str, dict[str, Any]]] = _Unpickler(file).load()
    for (module, attribute), accounts in backends.items():
        registry = getattr(importlib.import_module(module), attribute)
        for account, per_region in accounts.items():
            target = registry[account]
            for region, backend in per_region.items():
                dict.__setitem__(target, region, backend)
    return header


# -- saving and restoring a server's state ---------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class SaveResult:
    path: Path
    bytes: int
    seconds: float
    running_executions: int
    held_in_flight: int


class StateStore:
    """Saves the server's state to `<home>/saved/cloud.pickle` (atomically: a save that fails or is cut
    short leaves the previous snapshot) and restores it at start."""

    def __init__(self, home: Path, gate: RequestGate) -> None:
        self.path = snapshot_path(home)
        self.gate = gate
        self._lock = threading.Lock()

    def restore(self) -> Header | None:
        """Load the snapshot if there is one (before the server serves); None when there is none."""
        started = time.monotonic()
        self._remove_leftovers()
        try:
            # Checked on the handle it is then read from (state.open_snapshot); raises when not trusted.
            file = open_snapshot(self.path)
        except FileNotFoundError:
            return None
        except OSError as error:
            raise SnapshotError(
                f"cannot restore the saved state {self.path} ({type(error).__name__}: {error}); "
                "delete it to start empty"
            ) from error
        try:
            with file:
                size = os.fstat(file.fileno()).st_size
                header = load_state(file)
        except SnapshotError as error:
            raise SnapshotError(
                f"cannot restore the saved state {self.path}: {error}; delete it to start empty"
            ) from error
        except Exception as error:
            raise SnapshotError(
                f"cannot restore the saved state {self.path} ({type(error).__name__}: {error}); "
                "delete it to start empty"
            ) from error
        LOG.info(
            "restored the state saved at %s from %s (%d bytes, %.2fs)",
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(header.saved_at)),
            self.path,
            size,
            time.monotonic() - started,
        )
        return header

    def save(self, *, final: bool = False) -> SaveResult:
        """Hold requests, write the state, let them go. Raises SnapshotError (the previous snapshot stays).
        `final`: the server stops after this save: from its start on, every request is answered 503."""
        if final:
            # Before the gate answers 503: an execution whose next call meets it ends, and must not be
            # saved as ended.
            sfn.hold_running_for_final_save()
            self.gate.close()
        with self._lock:
            started = time.monotonic()
            temporary: Path | None = None
            try:
                make_private_dir(self.path.parent)
                self._remove_leftovers()
                with self.gate.held() as in_flight:
                    temporary, header = self._write()
                os.replace(temporary, self.path)
                _sync_directory(self.path.parent)
                size = self.path.stat().st_size
            except SnapshotError:
                raise
            except Exception as error:
                # A full disk, a directory gone, an I/O error: the caller (the periodic saver, the final
                # save in RunningCloud.stop) handles SnapshotError alone and must go on.
                raise SnapshotError(
                    f"saving the state to {self.path} failed ({type(error).__name__}: {error}); "
                    "the previous snapshot is kept"
                ) from error
            finally:
                if temporary is not None:
                    with contextlib.suppress(OSError):
                        temporary.unlink(missing_ok=True)
            return SaveResult(
                path=self.path,
                bytes=size,
                seconds=time.monotonic() - started,
                running_executions=header.running_executions,
                held_in_flight=in_flight,
            )

    def _remove_leftovers(self) -> None:
        """Delete the temporary files of saves that were killed before their rename: each is as big as a
        snapshot, and none is ever read. Called under the save lock or before the server serves, so no
        save of this store is writing one (one home has one server: cloud.up's lock)."""
        for leftover in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            try:
                leftover.unlink()
            except FileNotFoundError:
                pass
            except OSError as error:
                LOG.warning("cannot remove %s, left by an earlier save: %s", leftover, error)

    def _write(self) -> tuple[Path, Header]:
        """The state written to a new temporary file beside the snapshot: its path, and the header."""
        for attempt in range(1, SAVE_ATTEMPTS + 1):
            # A new name each time, created exclusively (O_EXCL, never through a symbolic link), mode 0600:
            # the state holds whatever the user stored in the cloud.
            descriptor, name = tempfile.mkstemp(
                prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent
            )
            temporary = Path(name)
            try:
                with os.fdopen(descriptor, "wb") as file:
                    # No DynamoDB write half-applied in the snapshot: moto applies an update's actions
                    # one by one to the stored item, and the drain may have given up on that request.
                    with dynamodb_items.items_lock():
                        header = dump_state(file)
                    file.flush()
                    os.fsync(file.fileno())
                return temporary, header
            except RuntimeError as error:
                temporary.unlink(missing_ok=True)
                # A thread of this process (an execution, a metric) changed a dict while it was read.
                if attempt == SAVE_ATTEMPTS or "during iteration" not in str(error):
                    raise SnapshotError(f"saving the state to {self.path} failed: {error}") from error
            except (pickle.PicklingError, TypeError, AttributeError) as error:
                temporary.unlink(missing_ok=True)
                raise SnapshotError(
                    f"saving the state to {self.path} failed: {type(error).__name__}: {error}"
                ) from error
            except BaseException:
                temporary.unlink(missing_ok=True)
                raise
        raise AssertionError("unreachable")


def _sync_directory(directory: Path) -> None:
    # A rename is durable once the directory's entry is: without this, a power cut after the save returned
    # could bring back the previous snapshot (or none).
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class PeriodicSaver:
    """Saves the state every `interval_seconds` while requests keep coming, so that a server that is
    killed (not stopped) loses at most that much."""

    def __init__(self, store: StateStore, interval_seconds: float) -> None:
        self._store = store
        self._interval = interval_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._saved_requests = -1

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="localcloud-saver", daemon=True)
        self._thread.start()

    def stopping(self) -> None:
        """Start no further save; `stop` waits for one under way."""
        self._stop.set()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            requests = self._store.gate.requests
            if requests == self._saved_requests and not _running_executions():
                continue  # nothing changed since the last save
            try:
                result = self._store.save()
            except Exception:
                # Whatever it was (save() turns its own failures into SnapshotError), the next interval
                # tries again: a thread that died here would stop saving for the rest of the server's life.
                LOG.exception("periodic save failed; the previous snapshot is kept")
                continue
            self._saved_requests = requests
            LOG.debug("saved the state (%d bytes, %.2fs)", result.bytes, result.seconds)
