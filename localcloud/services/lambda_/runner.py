"""Runs the deployed Lambda code on this machine, in place of moto's Docker-based invocation: warm
subprocess environments (`bootstrap`) with Lambda's timeouts, reserved concurrency, error shape,
logs, metrics and asynchronous invocations.

How it models AWS, and where it differs: docs/local-cloud-internals.md#localcloudserviceslambda_runnerpy
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import importlib.metadata
import json
import logging
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from moto.awslambda.models import LambdaFunction, lambda_backends
from moto.cloudwatch.models import cloudwatch_backends
from moto.core.exceptions import JsonRESTError
from moto.events.models import events_backends
from moto.sns.models import sns_backends
from moto.sqs.models import sqs_backends

from localcloud.core.chaos import CRASH, LambdaFault
from localcloud.core.state import ACCOUNT_ID, DUMMY_CREDENTIALS, REGION
from localcloud.services.iam import enforcement
from localcloud.services.iam.authorization import Check
from localcloud.services.lambda_ import recursion
from localcloud.services.lambda_.bootstrap import ProtocolClosed, write_frame

LOG = logging.getLogger(__name__)

BOOTSTRAP = Path(__file__).with_name("bootstrap.py")
# Lambda's init phase may take up to 10 s, separately from the invocation's own timeout.
INIT_TIMEOUT_SECONDS = 10.0
# A response that arrives this soon after the deadline is IPC latency, not an overrun.
TIMEOUT_GRACE_SECONDS = 0.05
# Lambda keeps an idle environment for minutes; so do we, then free the memory.
IDLE_SECONDS = 600.0
# Unreserved functions may scale far on Lambda; on a laptop, past this many processes per function an
# invocation waits for a free environment instead (it is not throttled and its timeout has not started).
DEFAULT_MAX_ENVIRONMENTS = 8
LOG_TAIL_BYTES = 4096
# Lambda's invocation payload quotas (the Invoke API reference: 6 MB synchronous, 1 MB asynchronous), in
# the bytes its own messages name. A response may be 100 bytes longer than a request: Lambda's error says
# 6291556 where its request error says 6291456.
SYNC_REQUEST_LIMIT_BYTES = 6 * 1024 * 1024
ASYNC_REQUEST_LIMIT_BYTES = 1024 * 1024
SYNC_RESPONSE_LIMIT_BYTES = 6 * 1024 * 1024 + 100
# Lambda retries a failed asynchronous invocation about one minute, then two minutes, after the failure.
ASYNC_RETRY_DELAYS_SECONDS = (60.0, 120.0)
ASYNC_MAXIMUM_RETRY_ATTEMPTS = 2
ASYNC_MAXIMUM_EVENT_AGE_SECONDS = 21_600.0
# A throttled asynchronous event waits in Lambda's queue; backoff between tries (cap).
ASYNC_THROTTLE_BACKOFF_SECONDS = (1.0, 60.0)
# How many recent durations of a function place an injected crash or hang within an invocation.
RECENT_DURATIONS = 20
# How often the memory watcher samples an environment's process tree while it initialises or invokes. It
# reads each process's VmHWM (its peak RSS), so a spike shorter than this is still seen at the next sample.
MEMORY_SAMPLE_SECONDS = 0.01

# What Lambda answers when the OOM killer ends the runtime (errorType Runtime.OutOfMemory).
OUT_OF_MEMORY_EXIT = "Runtime exited with error: signal: killed"

CHAOS_LOG = logging.getLogger("localcloud.core.chaos")
FaultSource = Callable[[str], LambdaFault | None]
# The credentials an environment runs with (the variables boto3 reads), from its function's spec.
CredentialSource = Callable[["FunctionSpec"], Mapping[str, str]]


@dataclass(frozen=True, kw_only=True)
class FunctionSpec:
    """What an execution environment is built from; a change to any field means new environments."""

    name: str
    arn: str
    handler: str
    runtime: str
    timeout_seconds: float
    memory_mb: int
    version: str
    environment: Mapping[str, str]
    code_sha256: str
    reserved_concurrency: int | None = None
    # The code digests of the function's layers, in order (what Lambda unpacks into /opt).
    layers: tuple[str, ...] = ()
    # The execution role: the environment's calls run as a session of it.
    role_arn: str = ""

    @property
    def config_key(self) -> str:
        parts = json.dumps(
            [
                self.handler,
                self.runtime,
                self.timeout_seconds,
                self.memory_mb,
                self.code_sha256,
                list(self.layers),
                sorted(self.environment.items()),
                self.role_arn,
            ]
        )
        return hashlib.sha256(parts.encode()).hexdigest()


@dataclass(frozen=True, kw_only=True)
class InvocationResult:
    request_id: str
    payload: bytes
    # The Lambda errorType when the function failed (FunctionError), else None.
    error_type: str | None = None
    duration_ms: float = 0.0
    # Set on a cold start: the time the environment spent importing the handler.
    init_ms: float | None = None
    throttled: bool = False
    log_tail: str = ""

    @property
    def failed(self) -> bool:
        return self.error_type is not None


@dataclass(frozen=True, kw_only=True)
class AsyncConfig:
    """How Lambda handles a function's asynchronous invocations (its event invoke config)."""

    maximum_retry_attempts: int = ASYNC_MAXIMUM_RETRY_ATTEMPTS
    maximum_event_age_seconds: float = ASYNC_MAXIMUM_EVENT_AGE_SECONDS
    on_success: str | None = None
    on_failure: str | None = None


@dataclass(frozen=True, kw_only=True)
class AsyncOutcome:
    """How an asynchronous invocation ended: `condition` as in Lambda's invocation record."""

    spec: FunctionSpec
    payload: bytes
    config: AsyncConfig
    # Success, RetriesExhausted or EventAgeExceeded
    condition: str
    attempts: int
    # The last attempt's result (None if the event never ran: throttled until it was too old).
    result: InvocationResult | None

    @property
    def destination(self) -> str | None:
        return self.config.on_success if self.condition == "Success" else self.config.on_failure


class FunctionThrottled(Exception):
    """Reserved concurrency is exhausted: Lambda answers 429 TooManyRequestsException."""


def _error_document(error_type: str, message: str, request_id: str) -> bytes:
    return json.dumps({"errorMessage": message, "errorType": error_type, "requestId": request_id}).encode()


def _proc_status_kb(pid: int, field: str) -> int:
    """One `kB` field of /proc/PID/status (VmRSS, VmHWM), 0 when the process is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as children:
                found += [int(child) for child in children.read().split()]
        except (OSError, ValueError):
            continue
    return found


def tree_memory_kb(pid: int) -> int:
    """Resident memory of a process tree, as a cgroup would count it: the root's peak RSS (VmHWM: a spike
    between two samples still counts) plus the current RSS of every descendant."""
    total = _proc_status_kb(pid, "VmHWM:")
    pending = _children(pid)
    seen = {pid}
    while pending:
        child = pending.pop()
        if child in seen:
            continue
        seen.add(child)
        total += _proc_status_kb(child, "VmRSS:")
        pending += _children(child)
    return total


MEMORY_WATCH_SUPPORTED = Path("/proc/self/status").is_file()


class _MemoryWatch:
    """Holds one environment to its function's MemorySize while it initialises or serves an invocation:
    Lambda's cgroup kills the runtime the moment its resident memory goes over the limit. A thread samples
    the process tree (`tree_memory_kb`) and SIGKILLs it once over; the invoking thread then reads EOF and
    reports `Runtime.OutOfMemory`. Resident memory, not address space: an rlimit on the address space would
    refuse mmap-heavy libraries (numpy, pyarrow reserve far more than they touch) that run fine on Lambda."""

    def __init__(self, process: subprocess.Popen[bytes], limit_mb: int) -> None:
        self._process = process
        self._limit_kb = limit_mb * 1024
        self._stop = threading.Event()
        self.peak_kb = 0
        self.exceeded = False
        self._thread = threading.Thread(target=self._watch, name=f"lambda-memory-{process.pid}", daemon=True)

    def __enter__(self) -> _MemoryWatch:
        if MEMORY_WATCH_SUPPORTED:
            self._sample()
            self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        # One last look: an answer may have come between two samples, after the peak.
        if MEMORY_WATCH_SUPPORTED and not self.exceeded:
            self._sample()

    @property
    def peak_mb(self) -> int:
        return self.peak_kb // 1024

    def _sample(self) -> None:
        used = tree_memory_kb(self._process.pid)
        self.peak_kb = max(self.peak_kb, used)
        if used > self._limit_kb and not self.exceeded:
            self.exceeded = True
            _signal_quietly(self._process, signal.SIGKILL)

    def _watch(self) -> None:
        while not self._stop.wait(MEMORY_SAMPLE_SECONDS):
            self._sample()
            if self.exceeded:
                return


class _Environment:
    """One execution environment: a bootstrap subprocess and the two ends of its protocol pipes."""

    def __init__(
        self,
        spec: FunctionSpec,
        *,
        code_dir: Path,
        path: Sequence[Path],
        log_path: Path,
        env: dict[str, str],
    ) -> None:
        self.config_key = spec.config_key
        self.memory_mb = spec.memory_mb
        self.closed = False
        self.last_used = time.monotonic()
        # Lambda reports the environment's peak, which carries over warm invocations.
        self.peak_memory_mb = 0
        request_read, self._request_write = os.pipe()
        self._response_read, response_write = os.pipe()
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and bootstrap, no shell
                [
                    sys.executable,
                    "-P",  # the bootstrap's own directory must not shadow the function's modules
                    # No site: the host's virtualenv is not on the path. What the function imports comes
                    # from its asset, its layers and the runtime's boto3 (`path`), as on Lambda, so a
                    # package missing from the asset fails here as it would there.
                    "-S",
                    str(BOOTSTRAP),
                    str(code_dir),
                    spec.handler,
                    str(request_read),
                    str(response_write),
                    *[str(entry) for entry in path],
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                pass_fds=(request_read, response_write),
                cwd=code_dir,
                env=env,
            )
        # Only the child keeps these ends: its exit then reads as EOF here, our exit as EOF there.
        os.close(request_read)
        os.close(response_write)

    @property
    def pid(self) -> int:
        return self.process.pid

    def watch_memory(self) -> _MemoryWatch:
        return _MemoryWatch(self.process, self.memory_mb)

    def wait_init(self, watch: _MemoryWatch) -> dict[str, Any]:
        with watch:
            return self._read(time.monotonic() + INIT_TIMEOUT_SECONDS)

    def call(self, request: dict[str, Any], deadline: float, watch: _MemoryWatch) -> dict[str, Any]:
        with watch:
            try:
                write_frame(self._request_write, request)
            except OSError as error:
                raise ProtocolClosed from error
            try:
                return self._read(deadline)
            finally:
                self.peak_memory_mb = max(self.peak_memory_mb, watch.peak_mb)

    def _read(self, deadline: float) -> dict[str, Any]:
        header = self._read_exactly(4, deadline)
        body = self._read_exactly(int.from_bytes(header, "big"), deadline)
        message: dict[str, Any] = json.loads(body)
        return message

    def _read_exactly(self, size: int, deadline: float) -> bytes:
        chunks: list[bytes] = []
        remaining = size
        while remaining:
            wait = deadline - time.monotonic()
            if wait <= 0:
                raise TimeoutError
            ready, _, _ = select.select([self._response_read], [], [], wait)
            if not ready:
                raise TimeoutError
            chunk = os.read(self._response_read, min(remaining, 1 << 20))
            if not chunk:
                raise ProtocolClosed
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    def exit_description(self) -> str:
        try:
            code = self.process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            return "Runtime exited without providing a reason"
        if code < 0:
            return f"Runtime exited with error: signal {-code}"
        return f"Runtime exited with error: exit status {code}"

    def close(self, *, kill: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(OSError):
            os.close(self._request_write)
        with contextlib.suppress(OSError):
            os.close(self._response_read)
        if kill:
            self.process.kill()
        try:
            # Closing the request pipe is the polite way: the bootstrap exits at EOF.
            self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@dataclass
class _Pool:
    """The environments of one function; only those with the current config key are reused."""

    config_key: str
    idle: list[_Environment] = field(default_factory=list)
    busy: int = 0


class LambdaRunner:
    """Invokes functions in warm subprocess environments. Thread-safe: one call per invoking thread."""

    def __init__(
        self,
        *,
        home: Path,
        endpoint: str,
        region: str = REGION,
        max_environments: int = DEFAULT_MAX_ENVIRONMENTS,
        on_invocation: Callable[[FunctionSpec, InvocationResult], None] | None = None,
        async_retry_delays: Sequence[float] = ASYNC_RETRY_DELAYS_SECONDS,
        faults: FaultSource | None = None,
        credentials: CredentialSource | None = None,
    ) -> None:
        self._home = home
        self._functions_dir = home / "functions"
        self._layers_dir = home / "layers"
        self._runtime: Path | None = None
        self._logs_dir = home / "logs"
        self._functions_dir.mkdir(parents=True, exist_ok=True)
        self._logs_dir.mkdir(parents=True, exist_ok=True)
        self._endpoint = endpoint
        self._region = region
        self._max_environments = max_environments
        self._on_invocation = on_invocation
        self._async_retry_delays = tuple(async_retry_delays) or ASYNC_RETRY_DELAYS_SECONDS
        # Set at shutdown: asynchronous invocations waiting for a retry give up.
        self._stopping = threading.Event()
        self._lock = threading.Condition()
        self._unpack_lock = threading.Lock()
        self._pools: dict[str, _Pool] = {}
        # Every environment process, busy or idle: shutdown must not leave a busy one running.
        self._live: set[_Environment] = set()
        self._closed = False
        # Chaos: crash and timeout faults per invocation (`localcloud.core.chaos`), placed within the
        # function's recent durations.
        self._faults = faults
        # Lambda gives each environment its execution role's credentials; without a source (tests of the
        # runner alone), the local cloud's dummy administrator credentials.
        self._credentials = credentials
        self._durations: dict[str, deque[float]] = {}

    # -- public API -----------------------------------------------------------------------------------

    def invoke(
        self,
        spec: FunctionSpec,
        payload: bytes,
        *,
        code: Callable[[], bytes],
        client_context: Any = None,
        trace: str | None = None,
        layers: Mapping[str, Callable[[], bytes]] | None = None,
    ) -> InvocationResult:
        """Run one invocation of `spec` with the JSON `payload`. `code` returns the zip when it is needed;
        `trace` is the X-Amzn-Trace-Id the invocation came with (its lineage, see `recursion`); `layers`
        returns each layer's zip by its digest (spec.layers), when it is needed."""
        request_id = str(uuid.uuid4())
        try:
            environment = self._acquire(spec)
        except FunctionThrottled:
            result = InvocationResult(
                request_id=request_id,
                payload=_error_document("TooManyRequestsException", "Rate Exceeded.", request_id),
                throttled=True,
            )
            self._notify(spec, result)
            raise
        log_path = self.log_path(spec.name)
        log_start = _file_size(log_path)
        init_ms: float | None = None
        keep = False
        try:
            if environment is None:
                environment, init_ms, init_error = self._start_environment(spec, code, layers or {})
                if environment is None or init_error is not None:
                    self._log(
                        log_path, f"INIT_REPORT Init Duration: {init_ms:.2f} ms Phase: init Status: error"
                    )
                    failure = init_error or _error_document("Runtime.Unknown", "init failed", request_id)
                    result = InvocationResult(
                        request_id=request_id, payload=failure, error_type=_error_type(failure)
                    )
                    return self._finish(spec, result, log_path, log_start)
            # Drawn once the environment is ready: a fault is injected into an invocation that runs.
            fault = self._faults(spec.name) if self._faults is not None else None
            if fault is not None and fault.latency_ms:
                time.sleep(fault.latency_ms / 1000)
            result, keep = self._run(
                environment=environment,
                spec=spec,
                payload=payload,
                request_id=request_id,
                client_context=client_context,
                init_ms=init_ms,
                fault=fault,
                trace=recursion.invocation_trace(spec.arn, trace),
            )
            return self._finish(spec, result, log_path, log_start)
        finally:
            self._release(spec, environment, keep=keep)

    def invoke_async(
        self,
        spec: FunctionSpec,
        payload: bytes,
        *,
        code: Callable[[], bytes],
        config: AsyncConfig = AsyncConfig(),
        on_outcome: Callable[[AsyncOutcome], None] | None = None,
        trace: str | None = None,
        layers: Mapping[str, Callable[[], bytes]] | None = None,
    ) -> None:
        """An asynchronous (Event) invocation: returns at once; the event runs in the background with
        Lambda's retries, and `on_outcome` gets how it ended (for destinations)."""
        threading.Thread(
            target=self._run_async,
            args=(spec, payload, code, config, on_outcome),
            kwargs={"trace": trace, "layers": layers},
            name=f"lambda-event-{spec.name}",
            daemon=True,
        ).start()

    def _run_async(
        self,
        spec: FunctionSpec,
        payload: bytes,
        code: Callable[[], bytes],
        config: AsyncConfig,
        on_outcome: Callable[[AsyncOutcome], None] | None,
        *,
        trace: str | None = None,
        layers: Mapping[str, Callable[[], bytes]] | None = None,
    ) -> None:
        received = time.time()
        attempts = 0
        throttles = 0
        result: InvocationResult | None = None
        condition = "EventAgeExceeded"
        while True:
            try:
                result = self.invoke(spec, payload, code=code, trace=trace, layers=layers)
            except FunctionThrottled:
                # Kept in Lambda's queue and tried again later; a throttle is not a retry attempt.
                throttles += 1
                base, cap = ASYNC_THROTTLE_BACKOFF_SECONDS
                delay = min(cap, base * 2 ** min(throttles - 1, 10))
            except Exception:
                if not self._stopping.is_set():  # else the runner is shut down: the event is dropped
                    LOG.exception("asynchronous invocation of %s failed", spec.name)
                return
            else:
                attempts += 1
                if not result.failed:
                    condition = "Success"
                    break
                if attempts > config.maximum_retry_attempts:
                    condition = "RetriesExhausted"
                    break
                delay = self._async_retry_delays[min(attempts - 1, len(self._async_retry_delays) - 1)]
                LOG.info(
                    "asynchronous invocation %s of %s failed (%s): retry %d in %.0f s",
                    result.request_id,
                    spec.name,
                    result.error_type,
                    attempts,
                    delay,
                )
            if time.time() + delay - received > config.maximum_event_age_seconds:
                condition = "EventAgeExceeded"
                break
            if self._stopping.wait(delay):
                return
        if condition != "Success":
            LOG.warning(
                "asynchronous invocation of %s given up after %d attempt(s): %s",
                spec.name,
                attempts,
                condition,
            )
        if on_outcome is not None:
            outcome = AsyncOutcome(
                spec=spec,
                payload=payload,
                config=config,
                condition=condition,
                attempts=attempts,
                result=result,
            )
            try:
                on_outcome(outcome)
            except Exception:  # a destination problem must not go unnoticed, nor kill anything
                LOG.exception("delivering the outcome of an asynchronous invocation of %s failed", spec.name)

    def log_path(self, function_name: str) -> Path:
        return self._logs_dir / f"{function_name}.log"

    def environment_pids(self, function_name: str) -> list[int]:
        """Pids of the idle environments of a function (for tests and diagnostics)."""
        with self._lock:
            pool = self._pools.get(function_name)
            return [env.pid for env in pool.idle] if pool else []

    def reap_idle(self, max_idle_seconds: float = IDLE_SECONDS) -> int:
        """Stop environments idle for longer than `max_idle_seconds`; returns how many were stopped."""
        cutoff = time.monotonic() - max_idle_seconds
        stale: list[_Environment] = []
        with self._lock:
            for pool in self._pools.values():
                stale += [env for env in pool.idle if env.last_used < cutoff]
                pool.idle = [env for env in pool.idle if env.last_used >= cutoff]
        for env in stale:
            env.close()
        return len(stale)

    def shutdown(self) -> None:
        self._stopping.set()
        with self._lock:
            self._closed = True
            idle = [env for pool in self._pools.values() for env in pool.idle]
            busy = [env for env in self._live if env not in idle and not env.closed]
            self._pools.clear()
            self._live.clear()
            self._lock.notify_all()
        for env in idle:
            env.close()
        for env in busy:
            # Kill only: the invoking thread owns the pipes, reads EOF and discards the environment.
            env.process.kill()

    # -- environments ---------------------------------------------------------------------------------

    def _acquire(self, spec: FunctionSpec) -> _Environment | None:
        """An idle environment, or None when the caller must start one (a slot is reserved for it)."""
        key = spec.config_key
        retired: list[_Environment] = []
        try:
            with self._lock:
                while True:
                    if self._closed:
                        raise RuntimeError("the Lambda runner is shut down")
                    pool = self._pools.get(spec.name)
                    if pool is None or pool.config_key != key:
                        # New code or configuration: Lambda never reuses an environment across them.
                        if pool is not None:
                            retired = pool.idle
                        pool = self._pools[spec.name] = _Pool(config_key=key, busy=pool.busy if pool else 0)
                    if spec.reserved_concurrency is not None and pool.busy >= spec.reserved_concurrency:
                        raise FunctionThrottled(spec.name)
                    if pool.idle:
                        pool.busy += 1
                        # Most recently used first: the warmest environment, and idle ones age out.
                        return pool.idle.pop()
                    if pool.busy < self._max_environments:
                        pool.busy += 1
                        return None
                    self._lock.wait()
        finally:
            _close_in_background(retired)

    def _release(self, spec: FunctionSpec, environment: _Environment | None, *, keep: bool) -> None:
        discard = environment is not None and not keep
        with self._lock:
            pool = self._pools.get(spec.name)
            if pool is not None:
                pool.busy = max(pool.busy - 1, 0)
                if environment is not None and keep:
                    if pool.config_key == environment.config_key and not self._closed:
                        environment.last_used = time.monotonic()
                        pool.idle.append(environment)
                    else:
                        discard = True
            elif environment is not None:
                discard = True
            self._lock.notify()
        if discard and environment is not None:
            if keep:
                # Healthy but outdated: let it exit on its own without making this caller wait.
                _close_in_background([environment])
            else:
                environment.close(kill=True)

    def _start_environment(
        self, spec: FunctionSpec, code: Callable[[], bytes], layers: Mapping[str, Callable[[], bytes]]
    ) -> tuple[_Environment | None, float, bytes | None]:
        """A ready environment, or None and the init error document (the environment is then gone)."""
        code_dir = self._unpack(spec.code_sha256, code)
        path: list[Path] = []
        for digest in spec.layers:
            # Lambda unpacks every layer into /opt; Python finds its packages in /opt/python (and in
            # /opt/python/lib/pythonX.Y/site-packages), after the function's own code.
            opt = self._unpack(digest, layers[digest], directory=self._layers_dir)
            versioned = opt / "python" / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
            path += [versioned / "site-packages", opt / "python"]
        path.append(self._runtime_dir())
        environment = _Environment(
            spec,
            code_dir=code_dir,
            path=path,
            log_path=self.log_path(spec.name),
            env=self._process_env(spec, code_dir),
        )
        with self._lock:
            self._live = {env for env in self._live if not env.closed}
            self._live.add(environment)
        started = time.monotonic()
        watch = environment.watch_memory()
        try:
            message = environment.wait_init(watch)
        except TimeoutError:
            environment.close(kill=True)
            failure = _error_document("Sandbox.Timedout", "INIT phase timed out", "")
            return None, (time.monotonic() - started) * 1000, failure
        except ProtocolClosed:
            if watch.exceeded:
                failure = _error_document("Runtime.OutOfMemory", OUT_OF_MEMORY_EXIT, "")
            else:
                failure = _error_document("Runtime.ExitError", environment.exit_description(), "")
            environment.close(kill=True)
            return None, (time.monotonic() - started) * 1000, failure
        init_ms = float(message.get("init_ms", (time.monotonic() - started) * 1000))
        if not message.get("ok"):
            environment.close(kill=True)
            return None, init_ms, str(message["payload"]).encode()
        return environment, init_ms, None

    def _run(
        self,
        *,
        environment: _Environment,
        spec: FunctionSpec,
        payload: bytes,
        request_id: str,
        client_context: Any,
        init_ms: float | None,
        fault: LambdaFault | None = None,
        trace: str | None = None,
    ) -> tuple[InvocationResult, bool]:
        log_path = self.log_path(spec.name)
        self._log(log_path, f"START RequestId: {request_id} Version: {spec.version}")
        started = time.monotonic()
        deadline_ms = int(time.time() * 1000 + spec.timeout_seconds * 1000)
        request = {
            "request_id": request_id,
            "payload": payload.decode("utf-8"),
            "deadline_ms": deadline_ms,
            "invoked_function_arn": spec.arn,
            "client_context": client_context,
            "trace_id": trace or recursion.invocation_trace(spec.arn, None),
        }
        keep = True
        watch = environment.watch_memory()
        status = ""
        try:
            message = self._call(environment, spec, request, started, fault, watch=watch)
        except TimeoutError:
            keep = False
            duration_ms = spec.timeout_seconds * 1000
            text = f"RequestId: {request_id} Error: Task timed out after {spec.timeout_seconds:.2f} seconds"
            self._log(log_path, f"{datetime.now(UTC).isoformat()} {text}")
            result = InvocationResult(
                request_id=request_id,
                payload=_error_document("Sandbox.Timedout", text, request_id),
                error_type="Sandbox.Timedout",
                duration_ms=duration_ms,
                init_ms=init_ms,
            )
            status = "\tStatus: timeout"
        except ProtocolClosed:
            keep = False
            duration_ms = (time.monotonic() - started) * 1000
            # Killed by the memory watcher: what Lambda says when its cgroup's OOM killer ends the runtime.
            error_type = "Runtime.OutOfMemory" if watch.exceeded else "Runtime.ExitError"
            exit_text = OUT_OF_MEMORY_EXIT if watch.exceeded else environment.exit_description()
            text = f"RequestId: {request_id} Error: {exit_text}"
            self._log(log_path, f"{text}\n{error_type}")
            result = InvocationResult(
                request_id=request_id,
                payload=_error_document(error_type, text, request_id),
                error_type=error_type,
                duration_ms=duration_ms,
                init_ms=init_ms,
            )
            status = f"\tStatus: error\tError Type: {error_type}"
        else:
            duration_ms = float(message.get("duration_ms", (time.monotonic() - started) * 1000))
            body = str(message["payload"]).encode("utf-8")
            result = InvocationResult(
                request_id=request_id,
                payload=body,
                error_type=None if message.get("ok") else _error_type(body),
                duration_ms=duration_ms,
                init_ms=init_ms,
            )
            self._record_duration(spec.name, duration_ms)
        # Measured by the watcher, not reported by the handler's process: a child's memory counts too.
        max_memory = max(environment.peak_memory_mb, watch.peak_mb) if MEMORY_WATCH_SUPPORTED else "-"
        self._log(log_path, f"END RequestId: {request_id}")
        init = f"\tInit Duration: {init_ms:.2f} ms" if init_ms is not None else ""
        self._log(
            log_path,
            f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\t"
            f"Billed Duration: {int(duration_ms) + 1} ms\tMemory Size: {spec.memory_mb} MB\t"
            f"Max Memory Used: {max_memory} MB{init}{status}",
        )
        return result, keep

    def _call(
        self,
        environment: _Environment,
        spec: FunctionSpec,
        request: dict[str, Any],
        started: float,
        fault: LambdaFault | None,
        *,
        watch: _MemoryWatch,
    ) -> dict[str, Any]:
        """One request/response with the environment; a chaos `fault` raises as the real failure would."""
        deadline = started + spec.timeout_seconds + TIMEOUT_GRACE_SECONDS
        if fault is None:
            return environment.call(request, deadline, watch)
        # The fault strikes at a point within the function's recent durations (its timeout before it has
        # any): SIGKILL for a crash (OOM, host failure), SIGSTOP for a hang that overruns the timeout.
        span = self._fault_span(spec)
        delay = fault.point * span
        signum = signal.SIGKILL if fault.kind == CRASH else signal.SIGSTOP
        CHAOS_LOG.info(
            "chaos injected rule=%s service=lambda operation=Invoke function=%s error=%s at_ms=%d span_ms=%d",
            fault.rule_id,
            spec.name,
            fault.kind,
            delay * 1000,
            span * 1000,
        )
        timer = threading.Timer(delay, _signal_quietly, args=(environment.process, signum))
        timer.daemon = True
        timer.start()
        try:
            environment.call(request, deadline, watch)  # the answer, if any, is discarded below
        finally:
            timer.cancel()
        # The handler answered before the fault struck: its side effects happened, its answer is lost.
        if fault.kind == CRASH:
            environment.process.kill()
            raise ProtocolClosed
        remaining = started + spec.timeout_seconds - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)
        raise TimeoutError

    def _fault_span(self, spec: FunctionSpec) -> float:
        with self._lock:
            recent = list(self._durations.get(spec.name, ()))
        if not recent:
            return spec.timeout_seconds
        return min(max(recent) / 1000, spec.timeout_seconds)

    def _record_duration(self, function_name: str, duration_ms: float) -> None:
        with self._lock:
            self._durations.setdefault(function_name, deque(maxlen=RECENT_DURATIONS)).append(duration_ms)

    def _finish(
        self, spec: FunctionSpec, result: InvocationResult, log_path: Path, log_start: int
    ) -> InvocationResult:
        tail = _read_tail(log_path, log_start)
        final = InvocationResult(
            request_id=result.request_id,
            payload=result.payload,
            error_type=result.error_type,
            duration_ms=result.duration_ms,
            init_ms=result.init_ms,
            throttled=result.throttled,
            log_tail=tail,
        )
        self._notify(spec, final)
        return final

    def _notify(self, spec: FunctionSpec, result: InvocationResult) -> None:
        if self._on_invocation is None:
            return
        try:
            self._on_invocation(spec, result)
        except Exception:  # a metrics problem must never fail the invocation itself
            LOG.exception("publishing invocation metrics of %s failed", spec.name)

    def _runtime_dir(self) -> Path:
        """What Lambda's Python runtime provides besides the standard library: boto3, botocore and their
        dependencies. Here the host's pinned ones (the lock this checkout installs), linked into a
        directory of their own so that nothing else of the host's virtualenv comes with them."""
        with self._unpack_lock:
            if self._runtime is None:
                self._runtime = build_runtime_dir(self._home / "runtime")
            return self._runtime

    def _unpack(self, code_sha256: str, code: Callable[[], bytes], *, directory: Path | None = None) -> Path:
        directory = directory or self._functions_dir
        target = directory / code_sha256
        if target.is_dir():
            return target
        with self._unpack_lock:
            if target.is_dir():
                return target
            directory.mkdir(parents=True, exist_ok=True)
            staging = directory / f".{code_sha256}.{os.getpid()}.tmp"
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
            with zipfile.ZipFile(_BytesReader(code())) as archive:
                # extractall drops absolute paths and `..` components: a zip cannot write outside.
                archive.extractall(staging)
            staging.rename(target)
            LOG.info("unpacked code %s into %s", code_sha256[:12], target)
        return target

    def _process_env(self, spec: FunctionSpec, code_dir: Path) -> dict[str, str]:
        now = datetime.now(UTC)
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "TZ": ":UTC",
            "PYTHONUNBUFFERED": "1",
            # Whatever the function sets, it talks to the local cloud only, as the local account.
            **spec.environment,
            "LAMBDA_TASK_ROOT": str(code_dir),
            "_HANDLER": spec.handler,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": spec.version,
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"{now:%Y/%m/%d}/[{spec.version}]{uuid.uuid4().hex}",
            "AWS_REGION": self._region,
            "AWS_DEFAULT_REGION": self._region,
            "AWS_ENDPOINT_URL": self._endpoint,
            **(self._credentials(spec) if self._credentials is not None else DUMMY_CREDENTIALS),
            # The host's AWS config and instance metadata must not leak in (nor slow down boto3).
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
        }
        return env

    @staticmethod
    def _log(path: Path, line: str) -> None:
        with path.open("a", encoding="utf-8") as log:
            log.write(line + "\n")


class _BytesReader:
    """A seekable view of bytes for zipfile without copying them into a BytesIO first."""

    def __init__(self, data: bytes) -> None:
        self._view = memoryview(data)
        self._pos = 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._view) if size < 0 else min(self._pos + size, len(self._view))
        chunk = bytes(self._view[self._pos : end])
        self._pos = end
        return chunk

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: len(self._view)}[whence]
        self._pos = max(base + offset, 0)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def seekable(self) -> bool:
        return True


def _signal_quietly(process: subprocess.Popen[bytes], signum: int) -> None:
    # The environment may have exited on its own meanwhile; Popen does not signal a reaped process.
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signum)


def _close_in_background(environments: list[_Environment]) -> None:
    # An interpreter with boto3 loaded takes a few hundred ms to exit; no invocation should wait for it.
    def close_all() -> None:
        for environment in environments:
            environment.close()

    if environments:
        threading.Thread(target=close_all, name="lambda-retire", daemon=True).start()


def _error_type(payload: bytes) -> str:
    try:
        document = json.loads(payload)
    except ValueError:
        return "Unhandled"
    if isinstance(document, dict) and isinstance(document.get("errorType"), str):
        return str(document["errorType"])
    return "Unhandled"


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _read_tail(path: Path, start: int) -> str:
    # Concurrent environments share the log file, so this tail may hold their lines too; it is a debugging
    # aid (`--log-type Tail`), not an exact per-request log.
    try:
        with path.open("rb") as log:
            size = log.seek(0, os.SEEK_END)
            log.seek(max(start, size - LOG_TAIL_BYTES))
            return log.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""


# The distributions Lambda's Python runtime ships (stacks.lambda_deps.RUNTIME_PROVIDED, which decides what
# the asset leaves out; a test keeps the two equal).
RUNTIME_DISTRIBUTIONS = ("boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3")
# The deployed runtime's standard library (python3.14) has modules this interpreter's lacks; their backports
# stand in for them here, as the runtime provides them there (requirements-lambda.lock, resolved for 3.14,
# rightly leaves them out of the asset). compression.zstd: jobcore.compressed reads zstd inputs with it.
STDLIB_BACKPORTS = ("backports.zstd",) if sys.version_info < (3, 14) else ()


def build_runtime_dir(directory: Path) -> Path:
    """A directory of links to the host's installs of RUNTIME_DISTRIBUTIONS (their packages, modules and
    .dist-info), built anew each time the server starts (the venv may have been reinstalled)."""
    staging = directory.with_name(f".{directory.name}.{os.getpid()}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name in RUNTIME_DISTRIBUTIONS + STDLIB_BACKPORTS:
        dist = importlib.metadata.distribution(name)
        tops = {Path(str(file)).parts[0] for file in dist.files or [] if not str(file).startswith("..")}
        for top in sorted(tops - {"__pycache__"}):
            source = Path(str(dist.locate_file(top)))
            if source.exists():
                (staging / top).symlink_to(source)
    shutil.rmtree(directory, ignore_errors=True)
    staging.rename(directory)
    return directory


# -- moto glue ----------------------------------------------------------------------------------------


class TooManyRequestsException(JsonRESTError):
    code = 429

    def __init__(self) -> None:
        super().__init__("TooManyRequestsException", "Rate Exceeded.")


class RequestEntityTooLargeException(JsonRESTError):
    code = 413

    def __init__(self, message: str) -> None:
        super().__init__("RequestEntityTooLargeException", message)


class RecursiveInvocationException(JsonRESTError):
    code = 400

    def __init__(self) -> None:
        super().__init__("RecursiveInvocationException", recursion.RECURSIVE_INVOCATION_MESSAGE)


class InvalidRequestContentException(JsonRESTError):
    code = 400

    def __init__(self, message: str) -> None:
        super().__init__("InvalidRequestContentException", message)


def spec_from_moto(function: Any) -> FunctionSpec:
    """A FunctionSpec from moto's `LambdaFunction` (names as in moto 5.2.5's model)."""
    arn = str(function.function_arn)
    if arn.endswith(":$LATEST"):
        # Invoked without a qualifier, Lambda reports the unqualified ARN.
        arn = arn[: -len(":$LATEST")]
    reserved = function.reserved_concurrency
    return FunctionSpec(
        name=function.function_name,
        arn=arn,
        handler=function.handler or "",
        runtime=function.run_time or "python3",
        timeout_seconds=float(function.timeout),
        memory_mb=int(function.memory_size),
        version=str(function.version),
        environment={str(k): str(v) for k, v in (function.environment_vars or {}).items()},
        code_sha256=getattr(function, "code_digest", "") or hashlib.sha256(function.code_bytes).hexdigest(),
        reserved_concurrency=None if reserved in (None, "") else int(reserved),
        role_arn=str(function.role or ""),
        layers=tuple(digest for digest, _ in _layer_versions(function)),
    )


def _layer_versions(function: Any) -> list[tuple[str, Any]]:
    """(code digest, moto LayerVersion) of each layer the function declares, in order."""
    backend = lambda_backends[function.account_id][function.region]
    found = []
    for layer in function.layers or []:
        version = backend.layers_versions_by_arn(layer["Arn"])
        if version is not None:
            # moto holds the digest in base64 (as Lambda's API shows it): a directory name wants hex.
            found.append((base64.b64decode(version.code_sha_256).hex(), version))
    return found


def layer_code(function: Any) -> dict[str, Callable[[], bytes]]:
    """Each of the function's layers' zip by its digest, read when an environment needs it."""
    return {digest: functools.partial(_code_bytes, version) for digest, version in _layer_versions(function)}


def _code_bytes(model: Any) -> bytes:
    return bytes(model.code_bytes)


def cloudwatch_publisher(
    account_id: str = ACCOUNT_ID, region: str = REGION
) -> Callable[[FunctionSpec, InvocationResult], None]:
    """Publishes Lambda's own per-invocation metrics into moto's CloudWatch, in process."""

    def publish(spec: FunctionSpec, result: InvocationResult) -> None:
        dimensions = [{"Name": "FunctionName", "Value": spec.name}]
        if result.throttled:
            data = [{"MetricName": "Throttles", "Value": 1.0, "Unit": "Count"}]
        else:
            data = [
                {"MetricName": "Invocations", "Value": 1.0, "Unit": "Count"},
                {"MetricName": "Errors", "Value": 1.0 if result.failed else 0.0, "Unit": "Count"},
                {"MetricName": "Throttles", "Value": 0.0, "Unit": "Count"},
                {"MetricName": "Duration", "Value": result.duration_ms, "Unit": "Milliseconds"},
            ]
        backend = cloudwatch_backends[account_id][region]
        # No Timestamp: moto stamps the datum itself, in the naive UTC its queries compare against.
        backend.put_metric_data("AWS/Lambda", [{**datum, "Dimensions": dimensions} for datum in data])

    return publish


def publish_recursion_dropped(
    function_name: str, count: int = 1, *, account_id: str = ACCOUNT_ID, region: str = REGION
) -> None:
    """AWS/Lambda RecursiveInvocationsDropped for the function, as Lambda publishes it for each invocation
    its recursive loop detection stops."""
    backend = cloudwatch_backends[account_id][region]
    backend.put_metric_data(
        "AWS/Lambda",
        [
            {
                "MetricName": "RecursiveInvocationsDropped",
                "Value": float(count),
                "Unit": "Count",
                "Dimensions": [{"Name": "FunctionName", "Value": function_name}],
            }
        ],
    )


def install(runner: LambdaRunner) -> Callable[[], None]:
    """Replace moto's `LambdaFunction.invoke` with the runner; returns a function that restores it."""
    original = LambdaFunction.invoke

    def invoke(
        self: Any, body: str | bytes | None, request_headers: Any, response_headers: dict[str, str]
    ) -> bytes:
        headers = request_headers or {}
        invocation_type = _header(headers, "X-Amz-Invocation-Type") or "RequestResponse"
        payload = body if isinstance(body, bytes) else (body or "").encode("utf-8")
        check_request_size(len(payload), invocation_type)
        if not payload.strip():
            payload = b"{}"
        try:
            json.loads(payload)
        except ValueError as error:
            raise InvalidRequestContentException(f"Could not parse request body into json: {error}") from None
        spec = spec_from_moto(self)
        client_context = _client_context(_header(headers, "X-Amz-Client-Context"))
        response_headers["x-amz-executed-version"] = spec.version
        if invocation_type == "DryRun":
            return b""
        # A function's own calls carry its lineage in X-Amzn-Trace-Id (botocore sends _X_AMZN_TRACE_ID);
        # SNS and S3 deliver inside the publishing request, whose header this thread remembers.
        trace = _header(headers, recursion.TRACE_HEADER) or recursion.current_trace()
        if recursion.is_recursive_loop(spec.arn, trace):
            publish_recursion_dropped(spec.name)
            LOG.warning("recursive loop detected: invocation of %s dropped (%s)", spec.name, trace)
            if invocation_type == "Event":
                return b""  # accepted by the API, never run: what Lambda does with an async event
            raise RecursiveInvocationException()
        if invocation_type == "Event":
            runner.invoke_async(
                spec,
                payload,
                code=lambda: bytes(self.code_bytes),
                config=async_config_from_moto(self),
                on_outcome=send_to_destination,
                trace=trace,
                layers=layer_code(self),
            )
            return b""
        try:
            result = runner.invoke(
                spec,
                payload,
                code=lambda: bytes(self.code_bytes),
                client_context=client_context,
                trace=trace,
                layers=layer_code(self),
            )
        except FunctionThrottled:
            raise TooManyRequestsException() from None
        result = check_response_size(result)
        if result.failed:
            response_headers["x-amz-function-error"] = "Unhandled"
        response_headers["x-amz-log-result"] = base64.b64encode(
            result.log_tail.encode("utf-8")[-LOG_TAIL_BYTES:]
        ).decode("ascii")
        return result.payload

    LambdaFunction.invoke = invoke  # type: ignore[method-assign]

    def undo() -> None:
        LambdaFunction.invoke = original  # type: ignore[method-assign]

    return undo


def check_request_size(size: int, invocation_type: str) -> None:
    """Refuse a payload over Lambda's quota for its invocation type, with Lambda's 413 and message."""
    if invocation_type == "Event" and size > ASYNC_REQUEST_LIMIT_BYTES:
        raise RequestEntityTooLargeException(
            f"{size} byte payload is too large for the Event invocation type (limit {ASYNC_REQUEST_LIMIT_BYTES} bytes)"
        )
    if size > SYNC_REQUEST_LIMIT_BYTES:
        raise RequestEntityTooLargeException(
            f"Request must be smaller than {SYNC_REQUEST_LIMIT_BYTES} bytes for the InvokeFunction operation"
        )


def check_response_size(result: InvocationResult) -> InvocationResult:
    """A response over the synchronous quota is not returned: the invocation fails with Lambda's
    Function.ResponseSizeTooLarge (a function error, so Step Functions and callers see it as one)."""
    if len(result.payload) <= SYNC_RESPONSE_LIMIT_BYTES:
        return result
    message = (
        f"Response payload size exceeded maximum allowed payload size ({SYNC_RESPONSE_LIMIT_BYTES} bytes)."
    )
    return replace(
        result,
        payload=json.dumps({"errorMessage": message, "errorType": "Function.ResponseSizeTooLarge"}).encode(),
        error_type="Function.ResponseSizeTooLarge",
    )


def async_config_from_moto(function: Any) -> AsyncConfig:
    """The function's event invoke config (PutFunctionEventInvokeConfig; moto has no CloudFormation model
    for AWS::Lambda::EventInvokeConfig), or Lambda's defaults."""
    configs = getattr(function, "event_invoke_config", None) or []
    config: dict[str, Any] = configs[0].config if configs else {}
    destinations = config.get("DestinationConfig") or {}
    return AsyncConfig(
        maximum_retry_attempts=int(config.get("MaximumRetryAttempts", ASYNC_MAXIMUM_RETRY_ATTEMPTS)),
        maximum_event_age_seconds=float(
            config.get("MaximumEventAgeInSeconds", ASYNC_MAXIMUM_EVENT_AGE_SECONDS)
        ),
        on_success=(destinations.get("OnSuccess") or {}).get("Destination") or None,
        on_failure=(destinations.get("OnFailure") or {}).get("Destination") or None,
    )


def _json_or_text(payload: bytes) -> Any:
    try:
        return json.loads(payload)
    except ValueError:
        return payload.decode("utf-8", errors="replace")


def invocation_record(outcome: AsyncOutcome) -> dict[str, Any]:
    """What Lambda sends to a destination about an asynchronous invocation."""
    now = datetime.now(UTC)
    record: dict[str, Any] = {
        "version": "1.0",
        "timestamp": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
        "requestContext": {
            "requestId": outcome.result.request_id if outcome.result else str(uuid.uuid4()),
            "functionArn": f"{outcome.spec.arn}:{outcome.spec.version}",
            "condition": outcome.condition,
            "approximateInvokeCount": outcome.attempts,
        },
        "requestPayload": _json_or_text(outcome.payload),
    }
    if outcome.result is not None:
        response: dict[str, Any] = {"statusCode": 200, "executedVersion": outcome.spec.version}
        if outcome.result.failed:
            response["functionError"] = "Unhandled"
        record["responseContext"] = response
        record["responsePayload"] = _json_or_text(outcome.result.payload)
    return record


_DESTINATION_ACTIONS = {
    "sqs": "sqs:SendMessage",
    "sns": "sns:Publish",
    "lambda": "lambda:InvokeFunction",
    "events": "events:PutEvents",
}


def send_to_destination(outcome: AsyncOutcome) -> None:
    """Send the invocation record to the outcome's destination, in this process's moto backends."""
    destination = outcome.destination
    if destination is None:
        return
    _, _, service, region, account, resource = destination.split(":", 5)
    # Lambda sends to a destination with the function's execution role.
    action = _DESTINATION_ACTIONS.get(service)
    if action is not None and outcome.spec.role_arn:
        denial = enforcement.active().authorize_role(
            outcome.spec.role_arn,
            outcome.spec.name,
            [Check(action, destination)],
            operation=f"lambda:destination {outcome.condition}",
            region=region,
        )
        if denial is not None:
            LOG.warning(
                "the %s destination of %s was not sent: %s",
                outcome.condition,
                outcome.spec.name,
                denial.message,
            )
            return
    record = json.dumps(invocation_record(outcome))
    if service == "sqs":
        sqs_backends[account][region].send_message(queue_name=resource, message_body=record)
    elif service == "sns":
        sns_backends[account][region].publish(message=record, arn=destination)
    elif service == "lambda":
        target = lambda_backends[account][region].get_function(destination)
        target.invoke(record, {"X-Amz-Invocation-Type": "Event"}, {})
    elif service == "events":
        result = "Success" if outcome.condition == "Success" else "Failure"
        events_backends[account][region].put_events(
            [
                {
                    "Source": "lambda",
                    "DetailType": f"Lambda Function Invocation Result - {result}",
                    "Detail": record,
                    "Resources": [destination, f"{outcome.spec.arn}:{outcome.spec.version}"],
                    "EventBusName": destination,
                }
            ]
        )
    else:
        LOG.warning("destination %s of %s is not supported locally", destination, outcome.spec.name)


def _header(headers: Any, name: str) -> str | None:
    # Werkzeug headers are case-insensitive; moto's internal callers pass plain dicts.
    value = headers.get(name)
    if value is None:
        value = headers.get(name.lower())
    return str(value) if value is not None else None


def _client_context(encoded: str | None) -> Any:
    if not encoded:
        return None
    try:
        return json.loads(base64.b64decode(encoded))
    except ValueError:
        return None
