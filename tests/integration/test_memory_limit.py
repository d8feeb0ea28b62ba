"""A team's transform that needs more memory than the worker has, as on AWS: the worker (MemorySize 512 in
`local`) allocating 1.5 GiB on one record is killed, Runtime.OutOfMemory, the state machine's crash retrier
tries it again (1 + crash_retry_max_attempts), and the job ends FAILED with that error. Before the local
cloud held environments to their MemorySize, this job SUCCEEDED here (issue 18). Its own local cloud,
deployed with the team's code, so that the session's stays as it was."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline_cli.aws import Pipeline, connect_local
from pipeline_cli.main import main
from pipeline_cli.records import get_record, send_request, upload_input
from pipeline_contract import TERMINAL
from stacks.config import load_config

pytestmark = pytest.mark.integration

HOG = """
from jobcore.transforms import transform


@transform("hog")
def hog(record):
    if record.get("huge"):
        # One record that needs 1.5 GiB resident (written, so every page is touched).
        record["blob"] = len(b"x" * (1536 << 20))
    return record
"""


@pytest.fixture(scope="module")
def hungry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Pipeline, Path]]:
    code = tmp_path_factory.mktemp("hungry-code")
    (code / "hungry").mkdir()
    (code / "hungry" / "__init__.py").write_text(HOG)
    home = tmp_path_factory.mktemp("hungry-cloud")
    previous = os.environ.get("LOCALCLOUD_HOME")
    os.environ["LOCALCLOUD_HOME"] = str(home)
    try:
        assert main(["local", "up", "--context", f"userCode={code}"]) == 0
        yield connect_local(), home
    finally:
        main(["local", "down"])
        if previous is None:
            os.environ.pop("LOCALCLOUD_HOME", None)
        else:
            os.environ["LOCALCLOUD_HOME"] = previous


def test_a_record_needing_1_5_gib_fails_the_job_through_the_crash_retries(
    hungry: tuple[Pipeline, Path], tmp_path: Path
) -> None:
    pipeline, home = hungry
    config = load_config("local")
    assert config.worker.function.memory_mb == 512
    job_id = "hungry-1"
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"n": n, "huge": n == 3}) + "\n" for n in range(6)))
    send_request(
        pipeline, {"job_id": job_id, "input": upload_input(pipeline, source, job_id), "transform": "hog"}
    )
    deadline = time.monotonic() + 180
    record = None
    while time.monotonic() < deadline:
        record = get_record(pipeline, job_id)
        if record and record["status"] in TERMINAL:
            break
        time.sleep(0.5)
    assert record is not None and record["status"] == "FAILED", record
    assert record["error"]["type"] == "Runtime.OutOfMemory", record["error"]

    (log,) = (home / "logs").glob("*Worker*.log")
    reports = [line for line in log.read_text().splitlines() if line.startswith("REPORT")]
    killed = [line for line in reports if "Error Type: Runtime.OutOfMemory" in line]
    # The first try and every crash retry, each in a new environment, each stopped at its MemorySize.
    assert len(killed) == 1 + config.state_machine.crash_retry_max_attempts
    for line in killed:
        used = int(line.split("Max Memory Used: ")[1].split()[0])
        assert 512 <= used < 1536, line
