"""Where a running local cloud is recorded, so that the CLI (in any terminal) and the tests find it.

The state file is `<home>/state.json`; `home` is `$LOCALCLOUD_HOME` or `.localcloud/` in the current
directory. It is written by `cloud.up()` (`pipeline local up`) once the cloud is ready and removed by
`down()`.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
# moto accepts any credentials; these make boto3 and the CDK CLI sign requests without a real account.
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def default_home() -> Path:
    return Path(os.environ.get("LOCALCLOUD_HOME") or Path.cwd() / ".localcloud")


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
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(state), indent=2, sort_keys=True))
    tmp.replace(path)
    return path


def clear_state(home: Path | None = None) -> None:
    state_path(home).unlink(missing_ok=True)
