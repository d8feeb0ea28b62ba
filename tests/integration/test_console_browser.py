"""The operator console in a real browser (headless Chromium, tests/console/browser.py) on the local cloud:
the jobs list shows a running sharded job's progress moving without a reload; a failed job's page shows
its reason; a redrive from the DLQ page (console started with --allow-actions), confirmed, ends the job
SUCCEEDED; a read-only console has no action buttons and refuses the action's request; a page on another
origin cannot act (CSRF), and a host name rebound to 127.0.0.1 is refused (DNS rebinding). Every wait is on
a condition, with a bound."""

from __future__ import annotations

import json
import re
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from localcloud.core.state import LocalCloudState
from pipeline_cli.aws import Pipeline
from pipeline_cli.console.server import ActionLog, Console, serve
from pipeline_cli.console.source import Source
from pipeline_cli.deadletters import peek_messages
from pipeline_cli.records import build_request, get_record, send_request, upload_input
from tests.console.browser import chromium, require_browser
from tests.integration.test_integrity import unique, wait_for
from tests.integration.test_scenarios import wait_terminal

pytestmark = pytest.mark.integration

CHUNK = 64 * 1024
REBOUND_HOST = "rebound.test"
# Playwright's waits are in milliseconds.
SECONDS = 1000


@dataclass
class Served:
    console: Console
    server: Any
    thread: threading.Thread
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.console.port}"


def start(*, allow_actions: bool, log: Path) -> Served:
    app = Console(
        Source(env="local"), port=0, allow_actions=allow_actions, actions_log=ActionLog(log, sys.stderr)
    )
    server = serve(app, port=0)
    thread = threading.Thread(target=server.serve_forever, name="console", daemon=True)
    thread.start()
    return Served(console=app, server=server, thread=thread, log=log)


@pytest.fixture(scope="module")
def consoles(
    local_cloud: LocalCloudState, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Served]]:
    logs = tmp_path_factory.mktemp("console")
    served = {
        "acting": start(allow_actions=True, log=logs / "acting.log"),
        "read_only": start(allow_actions=False, log=logs / "read-only.log"),
    }
    try:
        yield served
    finally:
        for each in served.values():
            each.server.shutdown()
            each.server.server_close()
            each.thread.join(timeout=10)


@pytest.fixture(scope="session", autouse=True)
def browser_available() -> None:
    # Before the session's local cloud is deployed: without a browser there is nothing to deploy it for.
    require_browser()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    # The rebound host name resolves to loopback in this browser only: what a DNS-rebinding page does.
    with chromium(f"--host-resolver-rules=MAP {REBOUND_HOST} 127.0.0.1") as launched:
        yield launched


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    opened = context.new_page()
    try:
        yield opened
    finally:
        context.close()


def submit(pipeline: Pipeline, tmp_path: Path, job_id: str, body: bytes, **fields: Any) -> None:
    path = tmp_path / f"{job_id}.jsonl"
    path.write_bytes(body)
    uri = upload_input(pipeline, path, job_id)
    send_request(pipeline, {**build_request(job_id=job_id, input_uri=uri, chunk_bytes=CHUNK), **fields})


def lines(count: int) -> bytes:
    return b"".join(json.dumps({"id": i, "pad": "p" * 60}).encode() + b"\n" for i in range(count))


def dead_letter(pipeline: Pipeline, job_id: str) -> None:
    """A DLQ message of a job, as the state machine's SendToDLQ writes one."""
    pipeline.sqs.send_message(
        QueueUrl=pipeline.outputs.dead_letter_queue_url,
        MessageBody=json.dumps({"job_id": job_id, "input": "s3://nowhere/in/x.jsonl"}),
        MessageAttributes={
            "job_id": {"DataType": "String", "StringValue": job_id},
            "error_type": {"DataType": "String", "StringValue": "InputNotFoundError"},
            "error_message": {"DataType": "String", "StringValue": f"input of {job_id} does not exist"},
            "source_message_id": {"DataType": "String", "StringValue": f"source-{job_id}"},
        },
    )


def in_dlq(pipeline: Pipeline, job_id: str) -> bool:
    return any(
        m.job_id == job_id for m in peek_messages(pipeline.sqs, pipeline.outputs.dead_letter_queue_url)
    )


def progress_of(page: Any, job_id: str) -> float | None:
    value = page.evaluate(
        '(label) => { const bar = document.querySelector(`progress[aria-label="${label}"]`);'
        " return bar && bar.hasAttribute('value') ? Number(bar.value) : null; }",
        f"progress of {job_id}",
    )
    return None if value is None else float(value)


def test_the_jobs_list_shows_a_running_sharded_jobs_progress_moving(
    pipeline: Pipeline, consoles: dict[str, Served], page: Any, tmp_path: Path
) -> None:
    job_id = unique("it-console-shards")
    submit(pipeline, tmp_path, job_id, lines(90_000), shards=4)  # ~7 MB: 4 shards of ~28 chunks
    page.goto(f"{consoles['read_only'].url}/jobs")
    page.evaluate("window.__notReloaded = true")
    row = page.locator("tr", has=page.locator(f'a:text-is("{job_id}")'))
    row.wait_for(timeout=60 * SECONDS)
    # Started, and part of the way: then further along, seen by the page's own refresh.
    page.wait_for_function(
        '(label) => { const bar = document.querySelector(`progress[aria-label="${label}"]`);'
        " return bar && bar.hasAttribute('value') && bar.value > 0 && bar.value < 100; }",
        arg=f"progress of {job_id}",
        timeout=120 * SECONDS,
    )
    first = progress_of(page, job_id)
    assert first is not None
    assert re.search(r"\d/4", row.inner_text()), "the shards column counts the job's 4 shards"
    page.wait_for_function(
        '([label, first]) => { const bar = document.querySelector(`progress[aria-label="${label}"]`);'
        " return bar && bar.hasAttribute('value') && bar.value > first; }",
        arg=[f"progress of {job_id}", first],
        timeout=120 * SECONDS,
    )
    assert page.evaluate("window.__notReloaded === true"), (
        "the list refreshed itself; the page was not reloaded"
    )
    assert wait_terminal(pipeline, job_id, timeout=300)["status"] == "SUCCEEDED"


def test_a_failed_job_shows_its_reason_and_a_redrive_from_the_page_ends_it_succeeded(
    pipeline: Pipeline, consoles: dict[str, Served], page: Any, tmp_path: Path
) -> None:
    job_id = unique("it-console-redrive")
    bucket = pipeline.outputs.data_bucket_name
    key = f"in/{job_id}/late.jsonl"
    send_request(pipeline, build_request(job_id=job_id, input_uri=f"s3://{bucket}/{key}"))
    assert wait_terminal(pipeline, job_id, timeout=120)["status"] == "FAILED"
    acting = consoles["acting"]

    page.goto(f"{acting.url}/jobs/{job_id}")
    reason = page.locator("section.alert.bad")
    assert "InputNotFoundError" in reason.inner_text()
    assert key in reason.inner_text(), "the reason names the missing input"

    # The cause fixed: the input exists now. Redrive it from the DLQ page, confirmed.
    pipeline.s3.put_object(Bucket=bucket, Key=key, Body=lines(2_000))
    wait_for(lambda: in_dlq(pipeline, job_id), timeout=60, what=f"{job_id}'s request in the DLQ")
    page.goto(f"{acting.url}/dlq")
    page.locator(f'button[data-action="redrive-{job_id}"]').click()
    page.wait_for_url(f"{acting.url}/dlq/redrive")
    assert page.locator("h1").inner_text() == f"Confirm: Redrive job {job_id}?"
    assert in_dlq(pipeline, job_id), "nothing moved before the confirmation"
    page.locator('button[data-action="confirm"]').click()
    page.wait_for_url(re.compile(r"/actions/\d+$"))
    assert page.locator("h1").inner_text() == "Done"
    assert f"moved 1 message(s) of job {job_id}" in page.locator("section.alert").inner_text()

    page.get_by_role("link", name=f"Follow job {job_id}").click()
    page.locator("h1 .status").filter(has_text="SUCCEEDED").wait_for(timeout=180 * SECONDS)
    record = get_record(pipeline, job_id)
    assert record is not None and (record["status"], int(record["attempt"])) == ("SUCCEEDED", 2)
    logged = [json.loads(line) for line in acting.log.read_text().splitlines()]
    mine = [entry for entry in logged if entry.get("action", entry.get("command", "")).endswith(job_id)]
    assert [entry["phase"] for entry in mine] == ["confirmed", "finished"]


def test_a_read_only_console_has_no_action_buttons_and_refuses_the_action(
    pipeline: Pipeline, consoles: dict[str, Served], page: Any
) -> None:
    job_id = unique("it-console-ro")
    dead_letter(pipeline, job_id)
    read_only, acting = consoles["read_only"], consoles["acting"]

    page.goto(f"{acting.url}/dlq")
    assert page.locator(f'button[data-action="redrive-{job_id}"]').count() == 1, (
        "control: buttons with actions"
    )

    page.goto(f"{read_only.url}/dlq")
    row = page.locator("tr", has=page.locator(f'a:text-is("{job_id}")'))
    assert f"input of {job_id} does not exist" in row.inner_text()
    assert page.locator("button, form").count() == 0
    assert f"pipeline dlq redrive --job-id {job_id}" in row.inner_text()
    # The action's request, made from the read-only page itself with its own valid token.
    answer = page.evaluate(
        """async (jobId) => {
            const token = document.querySelector('meta[name="csrf-token"]').content;
            const body = new URLSearchParams({csrf: token, job_id: jobId, confirm: "yes"});
            const response = await fetch("/dlq/redrive", {method: "POST", body});
            return {status: response.status, text: await response.text()};
        }""",
        job_id,
    )
    assert answer["status"] == 403
    assert "read-only" in answer["text"]
    assert in_dlq(pipeline, job_id), "nothing moved"


class Attacker(BaseHTTPRequestHandler):
    """A page on another origin that posts a redrive to the console as soon as it loads."""

    target = ""

    def do_GET(self) -> None:
        body = (
            f'<!doctype html><form id="f" method="post" action="{self.target}/dlq/redrive">'
            '<input name="csrf" value="guess"><input name="job_id" value="{job}">'
            '<input name="confirm" value="yes"></form><script>document.getElementById("f").submit()</script>'
        ).replace("{job}", self.path.strip("/"))
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: Any) -> None:
        return None


def test_a_page_on_another_origin_cannot_act_on_the_console(
    pipeline: Pipeline, consoles: dict[str, Served], page: Any
) -> None:
    job_id = unique("it-console-csrf")
    dead_letter(pipeline, job_id)
    acting = consoles["acting"]
    Attacker.target = acting.url
    attacker = ThreadingHTTPServer(("127.0.0.1", 0), Attacker)
    thread = threading.Thread(target=attacker.serve_forever, daemon=True)
    thread.start()
    try:
        page.goto(f"{acting.url}/dlq")  # the victim has a console session (its cookie goes along)
        page.goto(f"http://127.0.0.1:{attacker.server_address[1]}/{job_id}")
        page.wait_for_url(f"{acting.url}/dlq/redrive")
        assert page.locator("h1").inner_text() == "Refused"
        assert "another origin" in page.locator("body").inner_text()
        # From the console's own page but without the session's token: refused too.
        page.goto(f"{acting.url}/dlq")
        answer = page.evaluate(
            """async (jobId) => {
                const body = new URLSearchParams({job_id: jobId, confirm: "yes"});
                const response = await fetch("/dlq/redrive", {method: "POST", body});
                return {status: response.status, text: await response.text()};
            }""",
            job_id,
        )
        assert answer["status"] == 403 and "CSRF token" in answer["text"]
        assert in_dlq(pipeline, job_id), "nothing moved"
        # Control: the console's own button, from its own page, asks for confirmation.
        page.locator(f'button[data-action="redrive-{job_id}"]').click()
        assert page.locator("h1").inner_text() == f"Confirm: Redrive job {job_id}?"
    finally:
        attacker.shutdown()
        attacker.server_close()
        thread.join(timeout=10)


def test_a_host_name_rebound_to_loopback_is_refused(consoles: dict[str, Served], page: Any) -> None:
    port = consoles["read_only"].console.port
    response = page.goto(f"http://{REBOUND_HOST}:{port}/jobs")
    assert response.status == 421
    assert "DNS rebinding" in page.locator("body").inner_text()
    # Control: the console's own address.
    assert page.goto(f"http://127.0.0.1:{port}/jobs").status == 200
    assert page.locator("h1").inner_text() == "Jobs"
