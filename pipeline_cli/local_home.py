"""Where `pipeline` keeps its local cloud, so that every command finds the same one from any directory.

`$LOCALCLOUD_HOME` when set; otherwise one directory per user, `resilient-pipeline/localcloud` under
`$XDG_STATE_HOME` (default `~/.local/state`). It holds the running cloud's record (`state.json`), the
saved state that outlives `pipeline local down` (`saved/`), the logs and the deploy's output.
"""

from __future__ import annotations

from pathlib import Path

from localcloud.core.state import default_home

HOME_NAME = "resilient-pipeline/localcloud"


def local_home() -> Path:
    return default_home(HOME_NAME).resolve()
