"""`pipeline local`: one local cloud per user, found from any directory; `down` keeps its state, `reset`
deletes it; `make demo PORT=N`."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from localcloud.core import cloud
from pipeline_cli.local_home import local_home

from .conftest import ROOT, Result

Run = Callable[..., Result]


@pytest.fixture
def per_user_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """No LOCALCLOUD_HOME: the per-user default, under a private XDG_STATE_HOME."""
    monkeypatch.delenv("LOCALCLOUD_HOME", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    home = tmp_path / "state" / "resilient-pipeline" / "localcloud"
    yield home
    cloud.down(home)  # never leave a server behind


def test_the_home_is_localcloud_home_else_per_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCALCLOUD_HOME", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert local_home() == tmp_path / "explicit"

    monkeypatch.delenv("LOCALCLOUD_HOME")
    assert local_home() == tmp_path / "xdg" / "resilient-pipeline" / "localcloud"

    monkeypatch.setenv("XDG_STATE_HOME", "relative/state")  # invalid per the XDG spec: ignored
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert local_home() == tmp_path / "user" / ".local" / "state" / "resilient-pipeline" / "localcloud"
    monkeypatch.delenv("XDG_STATE_HOME")
    assert local_home() == tmp_path / "user" / ".local" / "state" / "resilient-pipeline" / "localcloud"


def test_every_command_finds_the_cloud_from_any_directory(
    run: Run, per_user_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started_in = tmp_path / "somewhere"
    started_in.mkdir()
    monkeypatch.chdir(started_in)
    up = run("local", "up", "--no-deploy", "--json")
    assert up.code == 0, up.err
    pid = json.loads(up.out)["pid"]
    assert json.loads((per_user_home / "state.json").read_text())["pid"] == pid
    assert not (started_in / ".localcloud").exists()

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for directory in (elsewhere, ROOT / "docs", ROOT):
        monkeypatch.chdir(directory)
        status = run("local", "status", "--json")
        assert status.code == 0, (directory, status.err)
        assert json.loads(status.out)["pid"] == pid
        assert run("local", "chaos", "list").code == 0

    down = run("local", "down")
    assert down.code == 0
    assert f"state saved in {per_user_home / 'saved'}" in down.err
    status = run("local", "status")
    assert status.code == 1
    assert "not running: start it with `pipeline local up` (its saved state brings back" in status.err


def test_reset_deletes_the_saved_state_and_says_so_in_one_line(run: Run, per_user_home: Path) -> None:
    assert run("local", "up", "--no-deploy").code == 0
    assert run("local", "down").code == 0
    assert (per_user_home / "saved" / "cloud.pickle").exists()

    reset = run("local", "reset")
    assert reset.code == 0
    assert reset.err.count("\n") == 1
    assert reset.err.startswith("deleted the local cloud's saved state (")
    assert f"in {per_user_home / 'saved'}: the next `pipeline local up` starts empty" in reset.err
    assert not (per_user_home / "saved").exists()

    again = run("local", "reset")
    assert (again.code, again.err) == (
        0,
        f"no saved state in {per_user_home}: the next `pipeline local up` starts empty\n",
    )


def test_reset_stops_a_running_cloud(run: Run, per_user_home: Path) -> None:
    up = run("local", "up", "--no-deploy", "--json")
    endpoint = json.loads(up.out)["endpoint"]

    reset = run("local", "reset")
    assert reset.code == 0
    assert reset.err.startswith("stopped the local cloud and deleted the local cloud's saved state (")
    assert not cloud.answers(endpoint)


def test_down_and_reset_answer_in_json_for_scripts(run: Run, per_user_home: Path) -> None:
    assert run("local", "up", "--no-deploy").code == 0
    down = run("local", "down", "--json")
    assert down.code == 0
    assert json.loads(down.out) == {
        "stopped": True,
        "saved_state": str(per_user_home / "saved" / "cloud.pickle"),
    }
    assert json.loads(run("local", "down", "--json").out)["stopped"] is False

    reset = json.loads(run("local", "reset", "--json").out)
    assert (reset["stopped"], reset["deleted"]) == (False, str(per_user_home / "saved"))
    assert reset["deleted_bytes"] > 0
    assert json.loads(run("local", "reset", "--json").out) == {
        "stopped": False,
        "deleted": None,
        "deleted_bytes": 0,
    }


def test_make_demo_passes_port_to_the_demo() -> None:
    def demo_command(*args: str) -> str:
        # -n: print what would run; -o install: as if everything were installed. A PORT in the environment
        # belongs to some other program.
        printed = subprocess.run(
            ["make", "-n", "-o", "install", "demo", *args],
            cwd=ROOT,
            env={**os.environ, "PORT": "3000"},
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        (line,) = [line for line in printed.splitlines() if "pipeline demo" in line]
        return line

    assert demo_command("PORT=4599").endswith("pipeline demo --port 4599 --console --allow-actions")
    assert demo_command().endswith("pipeline demo --console --allow-actions")


def test_no_iam_turns_enforcement_off_and_iam_back_on_in_the_running_cloud(
    run: Run, per_user_home: Path
) -> None:
    up = run("local", "up", "--no-deploy", "--no-iam", "--json")
    assert up.code == 0, up.err
    assert "IAM enforcement OFF" in up.err
    endpoint = json.loads(up.out)["endpoint"]
    assert json.loads(up.out)["iam_enforced"] is False
    assert cloud.iam_status(endpoint)["enforced"] is False
    again = run("local", "up", "--no-deploy", "--iam")
    assert again.code == 0, again.err
    assert cloud.iam_status(endpoint)["enforced"] is True
    # Without either flag a running cloud is left as it is.
    assert run("local", "up", "--no-deploy").code == 0
    assert cloud.iam_status(endpoint)["enforced"] is True
