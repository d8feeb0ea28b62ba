"""Start, find, stop and reset the local cloud: the API behind `pipeline local up|down|reset` and the
integration tests.

`up()` reuses the cloud recorded in the state file when its process is alive and its port answers;
otherwise it starts `python -m localcloud.core.server` detached (its own session, so it outlives the terminal
and the calling process) and waits until it answers. The server restores what `<home>/saved/` holds. `up()`
records port and pid in `<home>/state.json`, with the outputs of the last deploy into the saved state.
Given a `deploy` step, it then runs it against the running cloud, still holding the home's lock, and
records the outputs the step returns; calling `up()` with it on a running cloud deploys again, which is
how code changes reach the cloud. What to deploy is the caller's business (the app's CLI deploys the app
with the CDK CLI). `down()` stops the cloud with SIGTERM; the server saves its state first. `reset()` stops
it too and deletes the saved state, so that the next `up()` starts empty.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from localcloud.core.state import (
    LocalCloudState,
    SavedCloud,
    SnapshotError,
    clear_state,
    default_home,
    make_private_dir,
    read_header,
    read_saved_cloud,
    read_state,
    saved_dir,
    snapshot_path,
    write_saved_cloud,
    write_state,
)

START_TIMEOUT_SECONDS = 60.0
# The server saves its state before it stops: that must fit in here, or the save is cut short (the snapshot
# before it stays).
STOP_TIMEOUT_SECONDS = 30.0
SERVER_MODULE = "localcloud.core.server"
# Where this package lives (the directory holding localcloud/, two above this file): the server process
# imports it from there, installed or not.
PACKAGE_PARENT = Path(__file__).resolve().parents[2]

Progress = Callable[[str], None]
Deploy = Callable[[LocalCloudState, Path, Progress], dict[str, str]]
"""Deploys into the running cloud (its state, its home directory, a progress callback) and returns the
outputs to record; raises LocalCloudError with a message that says what to do."""

# Servers started by this process, so that `down()` can reap them (no zombie left behind in tests).
_STARTED: dict[int, subprocess.Popen[bytes]] = {}


class LocalCloudError(Exception):
    """The local cloud cannot be started, reached or deployed; the message says what to do."""


def _quiet(_message: str) -> None:
    pass


def up(
    *,
    port: int | None = None,
    home: Path | None = None,
    deploy: Deploy | None = None,
    progress: Progress | None = None,
    save_interval_seconds: float | None = None,
    iam: bool | None = None,
) -> LocalCloudState:
    """A running local cloud, with what `deploy` deploys deployed (again) when it is given. A cloud started
    here saves its state every `save_interval_seconds` while in use (default: the server's). `iam` switches
    IAM enforcement on or off, in a running cloud too (None: a new cloud's default, on unless
    $LOCALCLOUD_IAM=off; a running one's as it is)."""
    say = progress or _quiet
    home = (home or default_home()).resolve()
    make_private_dir(home)
    with _locked(home):
        state = running(home)
        recorded = read_state(home)
        if (
            state is None
            and recorded is not None
            and _is_alive(recorded.pid)
            and _is_our_server(recorded.pid)
        ):
            raise LocalCloudError(
                f"the local cloud (pid {recorded.pid}) is running but does not answer on {recorded.endpoint}; "
                f"see {home / 'server.log'} and stop it with `pipeline local down`"
            )
        if state is not None and port is not None and port != state.port:
            raise LocalCloudError(
                f"a local cloud already runs on port {state.port} (pid {state.pid}); "
                "stop it first with `pipeline local down`, or omit --port"
            )
        if state is None:
            clear_state(home)
            restoring = snapshot_path(home).exists()
            saved_at = _saved_at(home) if restoring else None
            saved = read_saved_cloud(home)
            if port is None and saved.port is not None and not port_in_use(saved.port):
                port = saved.port  # the same endpoint as before `down`
            state = _start(
                port=port, home=home, say=say, save_interval_seconds=save_interval_seconds, iam=iam
            )
            if restoring:
                # The server restored the resources these outputs name.
                state = replace(state, outputs=saved.outputs)
                # When: after a failed final save, what comes back is the last periodic save, not `down`'s.
                when = f"the state saved at {saved_at}" if saved_at else "the saved state"
                say(f"restored {when} from {saved_dir(home)}")
            # Recorded before the deploy: a failed deploy leaves a cloud that `down` can still stop.
            _record(state, home)
        else:
            say(f"reusing the local cloud at {state.endpoint} (pid {state.pid})")
            if iam is not None:
                set_iam(state.endpoint, enforced=iam)
        if iam is not None:
            say(f"IAM enforcement {'on' if iam else 'OFF (--no-iam): every caller is an administrator'}")
        if deploy is not None:
            state = replace(state, outputs=deploy(state, home, say))
            _record(state, home)
        return state


def _saved_at(home: Path) -> str | None:
    """When the snapshot the server is about to restore was written, and how long ago; None when its header
    cannot be read (the server then says why it refuses the file)."""
    try:
        header = read_header(snapshot_path(home))
    except SnapshotError:
        return None
    if header is None:
        return None
    moment = datetime.fromtimestamp(header.saved_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"{moment} ({_ago(time.time() - header.saved_at)})"


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{max(0, int(seconds))} s ago"
    if seconds < 2 * 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 2 * 86400:
        return f"{int(seconds // 3600)} h ago"
    return f"{int(seconds // 86400)} days ago"


def _record(state: LocalCloudState, home: Path) -> None:
    write_state(state, home)
    write_saved_cloud(SavedCloud(port=state.port, outputs=state.outputs), home)


def down(home: Path | None = None, *, progress: Progress | None = None) -> bool:
    """Stop the recorded local cloud (it saves its state first) and clear the state file; False when none
    was running. `progress` hears where the state was saved, or that the save did not happen."""
    home = (home or default_home()).resolve()
    if not home.is_dir():
        return False
    with _locked(home):
        return _down(home, progress or _quiet)


def _down(home: Path, say: Progress) -> bool:
    state = read_state(home)
    if state is None:
        return False
    stopped = False
    if _is_alive(state.pid) and _is_our_server(state.pid):
        asked = time.time()
        os.kill(state.pid, signal.SIGTERM)
        if not _wait_for_exit(state.pid, STOP_TIMEOUT_SECONDS):
            os.kill(state.pid, signal.SIGKILL)
            _wait_for_exit(state.pid, 5.0)
        stopped = True
        try:
            header = read_header(snapshot_path(home))
        except SnapshotError as error:
            say(f"the saved state cannot be checked: {error}")
            header = None
        if header is not None and header.saved_at >= asked:
            say(f"state saved in {saved_dir(home)}")
        else:
            say(f"the local cloud did not save its state on the way down: see {home / 'server.log'}")
    clear_state(home)
    return stopped


@dataclass(frozen=True, kw_only=True)
class ResetResult:
    stopped: bool
    # The saved-state directory deleted, and how many bytes it held; None when there was none.
    deleted: Path | None
    deleted_bytes: int


@contextlib.contextmanager
def scratch_home(prefix: str, *, say: Progress, parent: Path | None = None) -> Iterator[Path]:
    """A new home for a local cloud that lives as long as one run (a benchmark, the fault matrix), in
    `parent` (the system's temporary directory by default). At the end its cloud is stopped; the home is
    deleted when the run finished, and kept, and named through `say`, when it raised: its server.log and
    saved state are what there is to look at."""
    home = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        yield home
    except BaseException:
        say(f"the local cloud's home is kept for a look: {home}")
        raise
    finally:
        down(home)
    shutil.rmtree(home, ignore_errors=True)


def reset(home: Path | None = None) -> ResetResult:
    """Stop the local cloud if it runs and delete its saved state: the next `up()` starts empty."""
    home = (home or default_home()).resolve()
    make_private_dir(home)
    with _locked(home):
        stopped = _down(home, _quiet)
        saved = saved_dir(home)
        if not saved.exists():
            return ResetResult(stopped=stopped, deleted=None, deleted_bytes=0)
        size = sum(path.stat().st_size for path in saved.rglob("*") if path.is_file())
        shutil.rmtree(saved)
        return ResetResult(stopped=stopped, deleted=saved, deleted_bytes=size)


def running(home: Path | None = None) -> LocalCloudState | None:
    """The recorded cloud if its process is alive and its endpoint answers, else None."""
    state = read_state((home or default_home()).resolve())
    if state is None or not _is_alive(state.pid) or not answers(state.endpoint):
        return None
    return state


def answers(endpoint: str, timeout: float = 2.0) -> bool:
    """True when a moto server answers at `endpoint` (its management API, not just any listener)."""
    try:
        with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=timeout) as response:  # noqa: S310 - http://localhost only
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


IAM_CONTROL_PATH = "/_localcloud/iam"


def iam_status(endpoint: str) -> dict[str, Any]:
    """The running cloud's IAM enforcement: {"enforced": bool, "denials": [...]} (the control API)."""
    with urllib.request.urlopen(f"{endpoint}{IAM_CONTROL_PATH}", timeout=5) as response:  # noqa: S310 - http://localhost only
        document: dict[str, Any] = json.loads(response.read())
    return document


def set_iam(endpoint: str, *, enforced: bool) -> None:
    """Switch the running cloud's IAM enforcement on or off."""
    request = urllib.request.Request(  # noqa: S310 - http://localhost only
        f"{endpoint}{IAM_CONTROL_PATH}",
        data=json.dumps({"enforced": enforced}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=5):  # noqa: S310 - http://localhost only
            pass
    except (urllib.error.URLError, OSError) as error:
        raise LocalCloudError(f"could not switch IAM enforcement at {endpoint}: {error}") from error


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def start_server(
    *,
    port: int,
    home: Path,
    log_path: Path,
    save_interval_seconds: float | None = None,
    iam: bool | None = None,
) -> subprocess.Popen[bytes]:
    """Launch the server process detached from this one (new session, output to `log_path`). `iam` None:
    the server's default (on unless $LOCALCLOUD_IAM=off)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", SERVER_MODULE, "--port", str(port), "--home", str(home)]
    if save_interval_seconds is not None:
        command += ["--save-interval", str(save_interval_seconds)]
    if iam is not None:
        command.append("--iam" if iam else "--no-iam")
    with log_path.open("ab") as log:
        process = subprocess.Popen(  # noqa: S603 - this interpreter running our own module
            command,
            cwd=PACKAGE_PARENT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    _STARTED[process.pid] = process
    return process


def _start(
    *, port: int | None, home: Path, say: Progress, save_interval_seconds: float | None, iam: bool | None
) -> LocalCloudState:
    if port is None:
        port = free_port()
    elif port_in_use(port):
        raise LocalCloudError(f"port {port} is already in use on 127.0.0.1: choose another with --port")
    log_path = home / "server.log"
    say(f"starting the local cloud on http://localhost:{port} (log: {log_path})")
    process = start_server(
        port=port, home=home, log_path=log_path, save_interval_seconds=save_interval_seconds, iam=iam
    )
    endpoint = f"http://localhost:{port}"
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not answers(endpoint, timeout=1.0):
        if process.poll() is not None:
            raise LocalCloudError(
                f"the local cloud server exited with status {process.returncode} while starting:\n"
                + _tail(log_path)
            )
        if time.monotonic() > deadline:
            _terminate(process)
            raise LocalCloudError(
                f"the local cloud did not answer on {endpoint} within {START_TIMEOUT_SECONDS:.0f}s:\n"
                + _tail(log_path)
            )
        time.sleep(0.1)
    return LocalCloudState(port=port, pid=process.pid)


@contextlib.contextmanager
def _locked(home: Path) -> Iterator[None]:
    # Two `up`s from two terminals must not start two servers for one state file.
    with (home / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _is_alive(pid: int) -> bool:
    process = _STARTED.get(pid)
    if process is not None:
        return process.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def _is_our_server(pid: int) -> bool:
    # A recycled pid must never be signalled: check the command line where /proc can tell.
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return SERVER_MODULE.encode() in cmdline.read()
    except FileNotFoundError:
        return False
    except OSError:
        return True


def _wait_for_exit(pid: int, timeout: float) -> bool:
    process = _STARTED.get(pid)
    if process is not None:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        _STARTED.pop(pid, None)
        return True
    deadline = time.monotonic() + timeout
    while _is_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _terminate(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    _STARTED.pop(process.pid, None)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return "    (no server log)"
    return "\n".join(f"    {line}" for line in text.splitlines()[-lines:])
