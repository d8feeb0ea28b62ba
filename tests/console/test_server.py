"""The console's server: what it refuses (another Host, another origin, a missing or foreign CSRF token, an
action on a read-only console) and what it serves, each refusal beside its control (the same request done
right, accepted). A fake source stands in for the environment: these tests are about the server."""

from __future__ import annotations

import io
import json
import re
import threading
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import Client, TestResponse

from pipeline_cli.console.server import SESSION_COOKIE, ActionLog, Console, serve
from pipeline_cli.console.views import Preview
from pipeline_cli.deadletters import DlqMessage, MoveReport, RedriveOutcome
from pipeline_cli.errors import CliError

PORT = 8765
ORIGIN = f"http://127.0.0.1:{PORT}"


class FakePipeline:
    env = "local"


class FakeSource:
    """The environment, as the server asks for it."""

    env = "local"
    is_local = True

    def __init__(self) -> None:
        self.redrives: list[tuple[str | None, str | None]] = []
        self.reason = "input s3://b/in/a.jsonl does not exist"
        self.failing: CliError | None = None

    def dlq_count(self) -> int:
        return 1

    def alarms(self) -> list[dict[str, Any]]:
        return [{"AlarmName": "x", "StateValue": "ALARM", "AlarmDescription": "[critical] DLQ not empty"}]

    def jobs(self, *, status: str | None, limit: int) -> list[dict[str, Any]]:
        if self.failing:
            raise self.failing
        return [{"job_id": "job-a", "status": "FAILED", "created_at": "2026-11-22T15:00:00.000Z"}]

    def record(self, job_id: str) -> dict[str, Any] | None:
        return {
            "job_id": job_id,
            "status": "FAILED",
            "error": {"type": "InputNotFoundError", "message": self.reason},
        }

    def executions(self, record: Any) -> tuple[list[Any], bool]:
        return [], True

    def preview(self, record: Any, *, rejects: bool) -> Preview | None:
        return None

    def dlq(self) -> Any:
        message = DlqMessage(
            message_id="m1",
            receipt_handle="r",
            body='{"job_id": "job-a", "input": "s3://b/in/a.jsonl"}',
            attributes={
                "job_id": {"DataType": "String", "StringValue": "job-a"},
                "error_type": {"DataType": "String", "StringValue": "InputNotFoundError"},
                "error_message": {"DataType": "String", "StringValue": self.reason},
            },
            sent_at="2026-11-22T15:00:00.000Z",
            receive_count=1,
        )
        return type("View", (), {"approximate": 1, "messages": [message], "statuses": {"job-a": "FAILED"}})()

    def redrive(self, *, job_id: str | None, choice: str | None) -> tuple[RedriveOutcome, FakePipeline]:
        self.redrives.append((job_id, choice))
        report = MoveReport(moved=["m1"])
        return RedriveOutcome(
            job_id=job_id, report=report, reason="--job-id selects messages"
        ), FakePipeline()

    def graphs(self, *, hours: float, now: datetime) -> tuple[list[Any], str | None]:
        return [], "there is no dashboard resilient-pipeline-local in this environment: redeploy it"


@pytest.fixture
def source() -> FakeSource:
    return FakeSource()


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "actions.log"


def console(source: FakeSource, log: Path, *, allow_actions: bool) -> Console:
    return Console(
        source,  # type: ignore[arg-type]
        port=PORT,
        allow_actions=allow_actions,
        actions_log=ActionLog(log, io.StringIO()),
        clock=lambda: datetime(2026, 11, 22, 15, 10, tzinfo=UTC),
    )


@pytest.fixture
def acting(source: FakeSource, log: Path) -> Client:
    return Client(console(source, log, allow_actions=True))


@pytest.fixture
def read_only(source: FakeSource, log: Path) -> Client:
    return Client(console(source, log, allow_actions=False))


def get(client: Client, path: str, *, host: str = f"127.0.0.1:{PORT}") -> TestResponse:
    return client.get(path, headers={"Host": host})


def token_of(page: TestResponse) -> str:
    match = re.search(r'<meta name="csrf-token" content="([0-9a-f]+)">', page.get_data(as_text=True))
    assert match, "every page carries the session's token"
    return match.group(1)


def open_session(client: Client) -> str:
    """Open the DLQ page as a browser would: the session cookie is set, the token is in the page."""
    page = get(client, "/dlq")
    assert page.status_code == 200
    assert client.get_cookie(SESSION_COOKIE, domain="127.0.0.1") is not None or page.headers.get("Set-Cookie")
    return token_of(page)


def post(
    client: Client,
    form: dict[str, str],
    *,
    origin: str | None = ORIGIN,
    referer: str | None = None,
    host: str = f"127.0.0.1:{PORT}",
) -> TestResponse:
    headers = {"Host": host}
    if origin is not None:
        headers["Origin"] = origin
    if referer is not None:
        headers["Referer"] = referer
    return client.post("/dlq/redrive", data=form, headers=headers)


# -- Host (DNS rebinding) ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["evil.example:8765", f"127.0.0.1:{PORT + 1}", "127.0.0.1", ""])
def test_a_request_for_another_host_is_refused(read_only: Client, host: str) -> None:
    refused = get(read_only, "/jobs", host=host)
    assert refused.status_code == 421
    assert "DNS rebinding" in refused.get_data(as_text=True)


@pytest.mark.parametrize("host", [f"127.0.0.1:{PORT}", f"localhost:{PORT}"])
def test_control_the_consoles_own_host_is_served(read_only: Client, host: str) -> None:
    page = get(read_only, "/jobs", host=host)
    assert page.status_code == 200
    assert "job-a" in page.get_data(as_text=True)


# -- Origin, Referer and the CSRF token -------------------------------------------------------------------------


@pytest.mark.parametrize("origin", ["http://evil.example", "null", f"http://127.0.0.1:{PORT + 1}"])
def test_an_action_from_another_origin_is_refused(acting: Client, source: FakeSource, origin: str) -> None:
    token = open_session(acting)
    refused = post(acting, {"csrf": token, "job_id": "job-a", "confirm": "yes"}, origin=origin)
    assert refused.status_code == 403
    assert "another origin" in refused.get_data(as_text=True)
    assert source.redrives == []


def test_without_origin_the_referer_decides(acting: Client, source: FakeSource) -> None:
    token = open_session(acting)
    form = {"csrf": token, "job_id": "job-a"}
    assert post(acting, form, origin=None, referer="http://evil.example/x").status_code == 403
    assert post(acting, form, origin=None).status_code == 403, "neither header: refused"
    # Control: this console's own page as the Referer.
    assert post(acting, form, origin=None, referer=f"{ORIGIN}/dlq").status_code == 200


def test_an_action_without_the_sessions_token_is_refused(
    acting: Client, source: FakeSource, log: Path
) -> None:
    token = open_session(acting)
    for form in (
        {"job_id": "job-a", "confirm": "yes"},
        {"csrf": "0" * 64, "job_id": "job-a", "confirm": "yes"},
    ):
        refused = post(acting, form)
        assert refused.status_code == 403
        assert "CSRF token" in refused.get_data(as_text=True)
    # Another browser's token (its session cookie differs) is not this session's.
    other = Client(acting.application)
    other_token = open_session(other)
    assert other_token != token
    assert post(acting, {"csrf": other_token, "job_id": "job-a", "confirm": "yes"}).status_code == 403
    assert source.redrives == [] and not log.exists()
    # Control: this session's own token.
    assert post(acting, {"csrf": token, "job_id": "job-a", "confirm": "yes"}).status_code == 303
    assert source.redrives == [("job-a", None)]


def test_an_action_without_a_session_is_refused(source: FakeSource, log: Path) -> None:
    fresh = Client(console(source, log, allow_actions=True), use_cookies=False)
    refused = post(fresh, {"csrf": "x", "job_id": "job-a"})
    assert refused.status_code == 403
    assert "no console session" in refused.get_data(as_text=True)


def test_the_session_cookie_is_http_only_and_same_site_strict(read_only: Client) -> None:
    page = get(read_only, "/jobs")
    cookie = page.headers["Set-Cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    # Once set, it is not set again.
    assert "Set-Cookie" not in get(read_only, "/jobs").headers


# -- read-only and actions ---------------------------------------------------------------------------------------


def test_a_read_only_console_has_no_action_buttons_and_refuses_the_action(
    read_only: Client, source: FakeSource
) -> None:
    page = get(read_only, "/dlq")
    text = page.get_data(as_text=True)
    assert "<form" not in text and "<button" not in text
    assert "pipeline dlq redrive --job-id job-a" in text, "says how to do it instead"
    assert "read-only" in text
    refused = post(read_only, {"csrf": token_of(page), "job_id": "job-a", "confirm": "yes"})
    assert refused.status_code == 403
    assert "read-only" in refused.get_data(as_text=True)
    assert source.redrives == []


def test_control_a_console_with_actions_shows_the_buttons(acting: Client) -> None:
    text = get(acting, "/dlq").get_data(as_text=True)
    for action in ("redrive-job-a", "restart-job-a", "upgrade-job-a", "redrive-all"):
        assert f'data-action="{action}"' in text


def test_an_action_asks_for_confirmation_then_runs_once_and_is_logged(
    acting: Client, source: FakeSource, log: Path
) -> None:
    token = open_session(acting)
    asked = post(acting, {"csrf": token, "job_id": "job-a", "choice": "restart"})
    assert asked.status_code == 200
    text = asked.get_data(as_text=True)
    assert "Confirm: Restart job <b>job-a</b>?" in text
    assert "pipeline dlq redrive --job-id job-a --restart" in text
    assert source.redrives == [], "nothing happens before the confirmation"

    done = post(acting, {"csrf": token, "job_id": "job-a", "choice": "restart", "confirm": "yes"})
    assert (done.status_code, done.headers["Location"]) == (303, "/actions/1")
    assert source.redrives == [("job-a", "restart")]
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(e["phase"], e["action"] if "action" in e else e["command"]) for e in entries] == [
        ("confirmed", "pipeline dlq redrive --job-id job-a --restart"),
        ("finished", "pipeline dlq redrive --job-id job-a --restart"),
    ]
    assert entries[1]["ok"] is True
    result = get(acting, "/actions/1").get_data(as_text=True)
    assert "moved 1 message(s) of job job-a" in result
    # The DLQ page lists what this console did.
    assert "/actions/1" in get(acting, "/dlq").get_data(as_text=True)


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"job_id": "../etc", "confirm": "yes"}, "job id"),
        ({"job_id": "job-a", "choice": "wipe", "confirm": "yes"}, "unknown redrive choice"),
    ],
)
def test_an_action_with_bad_fields_is_refused(
    acting: Client, source: FakeSource, form: dict[str, str], message: str
) -> None:
    token = open_session(acting)
    refused = post(acting, {"csrf": token, **form})
    assert refused.status_code == 400
    assert message in refused.get_data(as_text=True)
    assert source.redrives == []


def test_other_methods_are_not_allowed(read_only: Client) -> None:
    assert read_only.put("/dlq/redrive", headers={"Host": f"127.0.0.1:{PORT}"}).status_code == 405
    assert get(read_only, "/nothing-here").status_code == 404


# -- what is served ---------------------------------------------------------------------------------------------


def test_every_page_carries_the_security_headers(read_only: Client) -> None:
    for path in ("/jobs", "/jobs/job-a", "/dlq", "/alarms", "/metrics", "/static/console.js"):
        response = get(read_only, path)
        assert response.status_code == 200, path
        csp = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "form-action 'self'" in csp
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Cache-Control"] == "no-store"


def test_what_the_environment_says_is_escaped(read_only: Client, source: FakeSource) -> None:
    source.reason = '<img src=x onerror="alert(1)">'
    for path in ("/dlq", "/jobs/job-a"):
        text = get(read_only, path).get_data(as_text=True)
        assert "<img" not in text
        assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in text


def test_a_live_refresh_gets_the_content_alone(read_only: Client) -> None:
    whole = get(read_only, "/jobs").get_data(as_text=True)
    assert 'data-refresh="/jobs?limit=50&amp;fragment=1"' in whole
    fragment = get(read_only, "/jobs?limit=50&fragment=1").get_data(as_text=True)
    assert fragment.startswith("<h1>Jobs</h1>") and "<html" not in fragment


def test_a_finished_job_stops_its_pages_refresh(read_only: Client) -> None:
    assert "data-final" in get(read_only, "/jobs/job-a?fragment=1").get_data(as_text=True)


def test_an_environment_that_does_not_answer_is_a_message_on_the_page(
    read_only: Client, source: FakeSource
) -> None:
    source.failing = CliError("the local cloud is not running: start it with `pipeline local up`")
    page = get(read_only, "/jobs")
    assert page.status_code == 502
    assert "the local cloud is not running" in page.get_data(as_text=True)


def test_no_dashboard_is_said_on_the_metrics_page(read_only: Client) -> None:
    assert "there is no dashboard resilient-pipeline-local" in get(read_only, "/metrics").get_data(
        as_text=True
    )


def test_only_the_committed_static_files_are_served(read_only: Client) -> None:
    script = get(read_only, "/static/console.js")
    assert script.headers["Content-Type"].startswith("text/javascript")
    assert get(read_only, "/static/console.css").status_code == 200
    for path in ("/static/server.py", "/static/..%2Fserver.py", "/static/nothing.js"):
        assert get(read_only, path).status_code == 404, path


def test_bad_query_values_say_what_is_expected(read_only: Client) -> None:
    assert "unknown status" in get(read_only, "/jobs?status=DONE").get_data(as_text=True)
    assert "limit must be from 1 to 200" in get(read_only, "/jobs?limit=0").get_data(as_text=True)
    assert "hours must be a whole number" in get(read_only, "/metrics?hours=x").get_data(as_text=True)


# -- the socket ------------------------------------------------------------------------------------------------


@pytest.fixture
def served(source: FakeSource, log: Path) -> Iterator[tuple[Console, Any]]:
    app = console(source, log, allow_actions=False)
    server = serve(app, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield app, server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_it_listens_on_loopback_only_and_answers_for_its_port(served: tuple[Console, Any]) -> None:
    app, server = served
    address, port = server.socket.getsockname()[:2]
    assert address == "127.0.0.1"
    assert app.address == f"http://127.0.0.1:{port}/"
    with urllib.request.urlopen(f"{app.address}jobs", timeout=10) as response:
        assert response.status == 200
