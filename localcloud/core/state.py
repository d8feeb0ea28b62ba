"""Where a local cloud lives, so that the CLI (in any terminal, from any directory) and the tests find it.

`home` is `$LOCALCLOUD_HOME`, else a per-user directory (`default_home`; an application passes its own
name). In it, `state.json` records the running cloud: written by `cloud.up()` once the cloud is ready and
removed by `down()`. `saved/` is what outlives a `down()`: the server's snapshot of its state
(`localcloud.core.persistence`), and the port and outputs of the last cloud; only `cloud.reset()` deletes it.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import platform
import stat
import time
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import BinaryIO

import boto3

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
# moto accepts any credentials; these make boto3 and the CDK CLI sign requests without a real account.
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def dummy_session(region: str) -> boto3.session.Session:
    """A boto3 session for the cloud's own services, with the dummy credentials on purpose: whatever the host
    environment holds never leaves for the emulator. Each costs a few tenths of a second of botocore parsing
    (the service models, for each client): a caller making many (a test) makes one and passes it on."""
    return boto3.session.Session(
        aws_access_key_id=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=region,
    )


HOME_VARIABLE = "LOCALCLOUD_HOME"
DEFAULT_HOME_NAME = "localcloud"
# What outlives `down()`: the server's snapshot and the outputs of the last deploy.
SAVED_DIR = "saved"
SNAPSHOT_FILE = "cloud.pickle"
# What a snapshot is written in: a new format, another moto or another Python refuses to load it. Bump it
# when a change to localcloud alters what is pickled (sfn.SavedWorker, an attribute hung on a moto model
# such as stream_poller.MotoPositions'), or moves a pickled class or function to another module (pickle
# names them by module path): nothing else tells an old snapshot from a new one.
# 2: the modules moved into localcloud/core/ and localcloud/services/<service>/.
SNAPSHOT_FORMAT = 2


class SnapshotError(Exception):
    """A snapshot cannot be written or read, or may not be loaded; the message says which and why."""


def make_private_dir(path: Path) -> Path:
    """`path` and any missing parents, made readable and writable by this user only (whatever the umask):
    the home and `saved/` hold the snapshot, which is loaded with pickle. An existing directory is left as
    it is; `open_snapshot` refuses to load from one that others can write."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def default_home(name: str = DEFAULT_HOME_NAME) -> Path:
    """`$LOCALCLOUD_HOME`, else `name` under the user's state directory (`$XDG_STATE_HOME`, else
    `~/.local/state`): the same directory whatever the current directory is."""
    configured = os.environ.get(HOME_VARIABLE)
    if configured:
        return Path(configured).expanduser()
    state_home = os.environ.get("XDG_STATE_HOME")
    # The XDG spec: a relative path is invalid and must be ignored.
    base = (
        Path(state_home)
        if state_home and Path(state_home).is_absolute()
        else Path.home() / ".local" / "state"
    )
    return base / name


@dataclass(frozen=True, kw_only=True)
class LocalCloudState:
    port: int
    pid: int
    region: str = REGION
    account: str = ACCOUNT_ID
    # The outputs of what `cloud.up(deploy=...)` deployed into it, by output key.
    outputs: dict[str, str] = field(default_factory=dict)

    @property
    def endpoint(self) -> str:
        # `localhost`, not 127.0.0.1: with the IP, moto misreads bucket names in CDK asset URLs.
        return f"http://localhost:{self.port}"


def state_path(home: Path | None = None) -> Path:
    return (home or default_home()) / "state.json"


def read_state(home: Path | None = None) -> LocalCloudState | None:
    path = state_path(home)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    return LocalCloudState(**data)


def write_state(state: LocalCloudState, home: Path | None = None) -> Path:
    path = state_path(home)
    make_private_dir(path.parent)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(state), indent=2, sort_keys=True))
    tmp.replace(path)
    return path


def clear_state(home: Path | None = None) -> None:
    state_path(home).unlink(missing_ok=True)


def saved_dir(home: Path | None = None) -> Path:
    return (home or default_home()) / SAVED_DIR


def saved_cloud_path(home: Path | None = None) -> Path:
    return saved_dir(home) / "cloud.json"


@dataclass(frozen=True, kw_only=True)
class SavedCloud:
    """What `cloud.up()` keeps beside the server's snapshot: the port the cloud ran on (the next start
    takes it again when it is free, so that the endpoint does not change) and the last deploy's outputs."""

    port: int | None = None
    outputs: dict[str, str] = field(default_factory=dict)


def read_saved_cloud(home: Path | None = None) -> SavedCloud:
    try:
        data = json.loads(saved_cloud_path(home).read_text())
        return SavedCloud(
            port=int(data["port"]) if data.get("port") else None,
            outputs={str(key): str(value) for key, value in dict(data.get("outputs") or {}).items()},
        )
    except (FileNotFoundError, ValueError, TypeError, AttributeError):
        return SavedCloud()


def write_saved_cloud(saved: SavedCloud, home: Path | None = None) -> None:
    path = saved_cloud_path(home)
    make_private_dir(path.parent.parent)
    make_private_dir(path.parent)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(saved), indent=2, sort_keys=True))
    tmp.replace(path)


def snapshot_path(home: Path | None = None) -> Path:
    return saved_dir(home) / SNAPSHOT_FILE


@dataclass(frozen=True, kw_only=True)
class Header:
    """The first record of a snapshot file, readable without loading the state itself."""

    format: int
    moto: str
    python: str
    saved_at: float
    running_executions: int

    @classmethod
    def current(cls, *, running_executions: int) -> Header:
        return cls(
            format=SNAPSHOT_FORMAT,
            moto=version("moto"),
            python=platform.python_version(),
            saved_at=time.time(),
            running_executions=running_executions,
        )

    def incompatibility(self) -> str | None:
        """Why this process cannot load the snapshot, or None."""
        here = Header.current(running_executions=0)
        if self.format != here.format:
            return f"it is in format {self.format}, this local cloud reads format {here.format}"
        if self.moto != here.moto:
            return f"it was written by moto {self.moto}, this is moto {here.moto}"
        if self.python.rsplit(".", 1)[0] != here.python.rsplit(".", 1)[0]:
            return f"it was written by Python {self.python}, this is Python {here.python}"
        return None


def read_header(path: Path) -> Header | None:
    """The header of the snapshot at `path`; None when there is none or it is unreadable. Raises
    SnapshotError when the file may not be loaded (`open_snapshot`): the header is a pickle too."""
    try:
        file = open_snapshot(path)
    except OSError:
        return None
    try:
        with file:
            fields = pickle.load(file)  # noqa: S301 - checked by open_snapshot
        return Header(**fields)
    except (OSError, EOFError, pickle.UnpicklingError, TypeError, ValueError, AttributeError):
        return None


# Loading a pickle runs code named in it: a snapshot is loaded only when no one but this user could have
# written it, or replaced it in its directory.
_REFUSAL = "(loading it would run code from it); delete it to start empty"


def open_snapshot(path: Path) -> BinaryIO:
    """Open the snapshot at `path` for loading, the header and the state read from this one handle.

    Raises FileNotFoundError when there is none, and SnapshotError (naming the path and the rule) when it
    is a symbolic link or not a regular file, is not owned by this user or is writable by group or others,
    or its directory or the home above it is. The file's checks are made on the open file (fstat), so
    that what is checked is what is read."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK  # NONBLOCK: a FIFO cannot hang us
    try:
        descriptor = os.open(path, flags)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise SnapshotError(
                f"will not load the saved state {path}: it is a symbolic link {_REFUSAL}"
            ) from error
        raise
    file = os.fdopen(descriptor, "rb")
    try:
        status = os.fstat(file.fileno())
        if not stat.S_ISREG(status.st_mode):
            raise SnapshotError(f"will not load the saved state {path}: it is not a regular file {_REFUSAL}")
        reason = _not_private(status, "it")
        for directory in (path.parent, path.parent.parent):  # saved/, then the home
            reason = reason or _not_private(os.stat(directory), f"its directory {directory}")
        if reason is not None:
            raise SnapshotError(f"will not load the saved state {path}: {reason} {_REFUSAL}")
    except BaseException:
        file.close()
        raise
    return file


def _not_private(status: os.stat_result, what: str) -> str | None:
    if status.st_uid != os.getuid():
        return f"{what} is owned by another user (uid {status.st_uid})"
    if status.st_mode & 0o022:
        return f"{what} is writable by others (mode {stat.S_IMODE(status.st_mode):04o})"
    return None
