"""The console's web server: Werkzeug (already a pinned dependency of the local cloud) on 127.0.0.1 only.

Safe by default:
- it binds the loopback address and nothing else; there is no option to bind another;
- a request whose Host header is not the console's own address is refused (a DNS-rebinding page would
  reach 127.0.0.1 under its own host name);
- a state-changing request (POST) must come from the console's own origin (Origin, or Referer when a
  browser sends no Origin) and carry the session's CSRF token (an HMAC of the session cookie, which is
  HttpOnly and SameSite=Strict, with a key made at start); anything else is refused;
- it is read-only unless started with `--allow-actions`: no action buttons, and the action's URL refuses;
- an action asks for confirmation (a second POST), and is logged (stderr and a JSON Lines file) before it
  runs and with its outcome.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import logging
import secrets
import socket
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from pipeline_cli.console import pages, views
from pipeline_cli.console.html import Html
from pipeline_cli.console.source import Source
from pipeline_cli.deadletters import REDRIVE_CHOICES, redrive_problem, redrive_summary
from pipeline_cli.errors import CliError
from pipeline_cli.validation import validate_job_id
from pipeline_contract import JOB_ID, STATUSES

HOST = "127.0.0.1"
DEFAULT_PORT = 8765
SESSION_COOKIE = "pipeline_console_session"
STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
MAX_JOBS = 200
MAX_ACTIONS_KEPT = 100
SECURITY_HEADERS = {
    # Scripts and styles from the console itself only; no inline script, no framing, forms post home.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}

logger = logging.getLogger("pipeline_cli.console")

URLS = Map(
    [
        Rule("/", endpoint="home", methods=["GET"]),
        Rule("/jobs", endpoint="jobs", methods=["GET"]),
        Rule("/jobs/<job_id>", endpoint="job", methods=["GET"]),
        Rule("/dlq", endpoint="dlq", methods=["GET"]),
        Rule("/dlq/redrive", endpoint="redrive", methods=["POST"]),
        Rule("/actions/<int:action_id>", endpoint="action", methods=["GET"]),
        Rule("/alarms", endpoint="alarms", methods=["GET"]),
        Rule("/metrics", endpoint="metrics", methods=["GET"]),
        Rule("/static/<name>", endpoint="static", methods=["GET"]),
    ]
)


class Refused(Exception):
    """A request the console will not serve; the message says why (it is shown and logged)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ActionLog:
    """Where actions are recorded: a JSON object a line, appended, and a line on `stream`."""

    path: Path | None
    stream: TextIO

    def write(self, entry: Mapping[str, Any]) -> None:
        line = json.dumps(dict(entry), sort_keys=True, default=str)
        print(f"console action: {line}", file=self.stream, flush=True)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as log:
                log.write(line + "\n")


class Console:
    """The WSGI application: one environment, read-only or not, for requests addressed to `port`."""

    def __init__(
        self,
        source: Source,
        *,
        port: int,
        allow_actions: bool,
        actions_log: ActionLog,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.source = source
        self.allow_actions = allow_actions
        self.actions_log = actions_log
        self.clock = clock
        self._key = secrets.token_bytes(32)
        self._actions: list[dict[str, Any]] = []
        self._action_ids = itertools.count(1)
        self._lock = threading.Lock()
        self.set_port(port)

    def set_port(self, port: int) -> None:
        """The port it answers on (known once the socket is bound, when asked for port 0)."""
        self.port = port
        self.hosts = frozenset({f"{HOST}:{port}", f"localhost:{port}"})
        self.origins = frozenset(f"http://{host}" for host in self.hosts)

    @property
    def address(self) -> str:
        return f"http://{HOST}:{self.port}/"

    # -- WSGI ----------------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        try:
            response = self.dispatch(request)
        except Refused as refusal:
            logger.warning("refused %s %s: %s", request.method, request.path, refusal)
            response = Response(pages.refused(str(refusal)), status=refusal.status, mimetype="text/html")
        except HTTPException as error:
            response = Response(
                pages.refused(error.description or error.name), status=error.code or 500, mimetype="text/html"
            )
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        self.check_host(request)
        if request.method not in ("GET", "HEAD", "POST"):
            raise MethodNotAllowed(valid_methods=["GET", "POST"])
        if request.method == "POST":
            self.check_origin(request)
            self.check_token(request)
        try:
            endpoint, arguments = URLS.bind_to_environ(request.environ).match()
        except NotFound:
            raise NotFound("no such page") from None
        handler = getattr(self, f"on_{endpoint}")
        response: Response = handler(request, **arguments)
        if request.cookies.get(SESSION_COOKIE) is None:
            response.set_cookie(
                SESSION_COOKIE, self.session_of(request), httponly=True, samesite="Strict", path="/"
            )
        return response

    # -- the checks ----------------------------------------------------------------------------------

    def check_host(self, request: Request) -> None:
        host = request.headers.get("Host", "")
        if host not in self.hosts:
            raise Refused(
                421,
                f"the Host header {host[:80]!r} is not this console's address ({', '.join(sorted(self.hosts))}): "
                "a page on another host name may not read or drive it (DNS rebinding)",
            )

    def check_origin(self, request: Request) -> None:
        origin = request.headers.get("Origin")
        if origin is not None:
            if origin not in self.origins:
                raise Refused(
                    403, f"a request from another origin ({origin[:80]!r}) may not act on this console"
                )
            return
        referer = request.headers.get("Referer")
        if referer is None:
            raise Refused(403, "a request without an Origin or Referer header may not act on this console")
        parts = urlsplit(referer)
        if f"{parts.scheme}://{parts.netloc}" not in self.origins:
            raise Refused(403, f"a request from another page ({referer[:80]!r}) may not act on this console")

    def session_of(self, request: Request) -> str:
        """The browser's session id: its cookie, or a new one (set on the response)."""
        session = request.cookies.get(SESSION_COOKIE)
        if session is None:
            session = request.environ.setdefault("pipeline_console.session", secrets.token_urlsafe(24))
        return str(session)

    def csrf_token(self, request: Request) -> str:
        return hmac.new(self._key, self.session_of(request).encode(), hashlib.sha256).hexdigest()

    def check_token(self, request: Request) -> None:
        if request.cookies.get(SESSION_COOKIE) is None:
            raise Refused(403, "no console session: open the page first, then act from it")
        sent = request.form.get("csrf", "")
        if not hmac.compare_digest(sent.encode(), self.csrf_token(request).encode()):
            raise Refused(
                403, "the form's CSRF token is missing or not this session's: reload the page and retry"
            )

    # -- pages ---------------------------------------------------------------------------------------

    def frame(self, request: Request, *, counts: bool = True) -> pages.Frame:
        dlq_count: int | None = None
        firing: dict[str, int] = {}
        problem = None
        endpoint = self.describe_endpoint()
        if counts:
            try:
                dlq_count = self.source.dlq_count()
                firing = views.firing(views.alarm_groups(self.source.alarms()))
            except CliError as error:
                problem = str(error)
        return pages.Frame(
            env=self.source.env,
            endpoint=endpoint,
            allow_actions=self.allow_actions,
            csrf=self.csrf_token(request),
            dlq_count=dlq_count,
            firing=firing,
            problem=problem,
        )

    def describe_endpoint(self) -> str:
        return "the local cloud" if self.source.is_local else f"AWS, environment {self.source.env}"

    def html(
        self,
        request: Request,
        *,
        title: str,
        active: str,
        body: Callable[[], Html],
        refresh: str | None = None,
        interval: int = 0,
        status: int = 200,
    ) -> Response:
        """The page, or only its <main> for a live refresh (`?fragment=1`); a CliError becomes the page's
        message (502: the environment did not answer as it should)."""
        fragment = request.args.get("fragment") == "1"
        try:
            content = body()
        except CliError as error:
            content, status = pages.error_body(str(error)), 502
        if fragment:
            return Response(content, status=status, mimetype="text/html")
        frame = self.frame(request, counts=status != 502)
        document = pages.page(
            frame, title=title, active=active, body=content, refresh=refresh, interval=interval
        )
        return Response(document, status=status, mimetype="text/html")

    def on_home(self, request: Request) -> Response:
        return Response(status=303, headers={"Location": "/jobs"})

    def on_static(self, request: Request, name: str) -> Response:
        path = STATIC_DIR / name
        if path.suffix not in STATIC_TYPES or path.parent != STATIC_DIR or not path.is_file():
            raise NotFound("no such file")
        return Response(
            path.read_bytes(),
            mimetype=STATIC_TYPES[path.suffix].split(";")[0],
            content_type=STATIC_TYPES[path.suffix],
        )

    def on_jobs(self, request: Request) -> Response:
        status = (request.args.get("status") or "").upper() or None
        if status is not None and status not in STATUSES:
            raise Refused(400, f"unknown status {status[:20]!r}: one of {', '.join(STATUSES)}")
        limit = parse_int(request.args.get("limit"), default=50, low=1, high=MAX_JOBS, name="limit")
        query = pages.jobs_query(status, limit)

        def body() -> Html:
            now = self.clock()
            rows = [views.job_row(record, now) for record in self.source.jobs(status=status, limit=limit)]
            return pages.jobs_body(rows, status=status, limit=limit)

        return self.html(
            request,
            title="Jobs",
            active="jobs",
            body=body,
            refresh=f"/jobs?{query}&fragment=1",
            interval=pages.JOBS_REFRESH_MS,
        )

    def on_job(self, request: Request, job_id: str) -> Response:
        if not JOB_ID.match(job_id):
            raise Refused(400, f"{job_id[:80]!r} is not a job id")

        def body() -> Html:
            record = self.source.record(job_id)
            if record is None:
                raise CliError(f"unknown job {job_id!r} in environment {self.source.env}")
            executions, complete = self.source.executions(record)
            view = views.job_page(
                record,
                executions,
                self.clock(),
                output=self.source.preview(record, rejects=False),
                rejects=self.source.preview(record, rejects=True),
            )
            frame = pages.Frame(env=self.source.env, endpoint="", allow_actions=self.allow_actions, csrf="")
            return pages.job_body(view, frame=frame, complete_timeline=complete)

        return self.html(
            request,
            title=f"Job {job_id}",
            active="jobs",
            body=body,
            refresh=f"{pages.job_link(job_id)}?fragment=1",
            interval=pages.JOB_REFRESH_MS,
        )

    def on_dlq(self, request: Request) -> Response:
        def body() -> Html:
            dlq = self.source.dlq()
            frame = pages.Frame(
                env=self.source.env,
                endpoint="",
                allow_actions=self.allow_actions,
                csrf=self.csrf_token(request),
            )
            with self._lock:
                actions = list(self._actions)
            return pages.dlq_body(
                views.dlq_rows(dlq.messages, dlq.statuses),
                approximate=dlq.approximate,
                frame=frame,
                actions=actions,
            )

        return self.html(request, title="Dead-letter queue", active="dlq", body=body)

    def on_redrive(self, request: Request) -> Response:
        if not self.allow_actions:
            raise Refused(
                403,
                "this console is read-only: restart it with `pipeline console --allow-actions` to redrive",
            )
        job_id = request.form.get("job_id") or None
        choice = request.form.get("choice") or None
        if job_id is not None:
            try:
                validate_job_id(job_id)
            except CliError as error:
                raise Refused(400, str(error)) from error
        if choice is not None and choice not in REDRIVE_CHOICES:
            raise Refused(
                400, f"unknown redrive choice {choice[:20]!r}: {' or '.join(REDRIVE_CHOICES)}, or none"
            )
        if request.form.get("confirm") != "yes":
            frame = pages.Frame(
                env=self.source.env, endpoint="", allow_actions=True, csrf=self.csrf_token(request)
            )

            def confirm() -> Html:
                return pages.confirm_body(frame, job_id=job_id, choice=choice, messages=None)

            return self.html(request, title="Confirm", active="dlq", body=confirm)
        return self.run_redrive(job_id=job_id, choice=choice)

    def run_redrive(self, *, job_id: str | None, choice: str | None) -> Response:
        command = pages.cli_command(job_id, choice)
        with self._lock:
            action_id = next(self._action_ids)
        started = self.clock()
        self.actions_log.write(
            {
                "id": action_id,
                "time": started,
                "env": self.source.env,
                "action": command,
                "phase": "confirmed",
            }
        )
        problem: str | None
        try:
            outcome, pipeline = self.source.redrive(job_id=job_id, choice=choice)
        except CliError as failure:
            summary, problem = "nothing was moved", str(failure)
        else:
            if outcome.task is not None:
                summary = (
                    f"started a message move task ({outcome.task['approximate_messages']} message(s) approx.) "
                    f"from the DLQ to the ingest queue: {outcome.task['task_handle']}"
                )
            else:
                assert outcome.report is not None
                summary = redrive_summary(outcome.report, reason=outcome.reason, job_id=job_id)
            ended = redrive_problem(outcome, env=pipeline.env)
            problem = str(ended) if ended else None
        ok = problem is None
        action = {
            "id": action_id,
            "time": views.iso(started),
            "command": command,
            "job_id": job_id,
            "ok": ok,
            "summary": summary,
            "problem": problem,
            "outcome": "done" if ok else f"incomplete: {problem}",
        }
        self.actions_log.write({**action, "env": self.source.env, "phase": "finished"})
        with self._lock:
            self._actions.append(action)
            del self._actions[:-MAX_ACTIONS_KEPT]
        return Response(status=303, headers={"Location": f"/actions/{action_id}"})

    def on_action(self, request: Request, action_id: int) -> Response:
        with self._lock:
            found = next((a for a in self._actions if a["id"] == action_id), None)
        if found is None:
            raise NotFound(f"no action {action_id} in this console's run")
        return self.html(request, title="Action", active="dlq", body=lambda: pages.action_body(found))

    def on_alarms(self, request: Request) -> Response:
        return self.html(
            request,
            title="Alarms",
            active="alarms",
            body=lambda: pages.alarms_body(views.alarm_groups(self.source.alarms())),
            refresh="/alarms?fragment=1",
            interval=pages.ALARMS_REFRESH_MS,
        )

    def on_metrics(self, request: Request) -> Response:
        hours = parse_int(request.args.get("hours"), default=1, low=1, high=24 * 14, name="hours")

        def body() -> Html:
            graphs, note = self.source.graphs(hours=hours, now=self.clock())
            return pages.metrics_body(graphs, hours=hours, note=note, env=self.source.env)

        return self.html(
            request,
            title="Metrics",
            active="metrics",
            body=body,
            refresh=f"/metrics?hours={hours}&fragment=1",
            interval=pages.METRICS_REFRESH_MS,
        )


def parse_int(text: str | None, *, default: int, low: int, high: int, name: str) -> int:
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise Refused(400, f"{name} must be a whole number, not {text[:20]!r}") from None
    if not low <= value <= high:
        raise Refused(400, f"{name} must be from {low} to {high}, not {value}")
    return value


def serve(console: Console, *, port: int) -> BaseWSGIServer:
    """A threaded server bound to 127.0.0.1:port (0: a free port), answering for `console`. The socket is
    bound here, so that a port in use is an OSError to report (Werkzeug would print and exit)."""
    listening = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.bind((HOST, port))
        listening.listen(socket.SOMAXCONN)
        server = make_server(HOST, port, console, threaded=True, fd=listening.fileno())
    finally:
        listening.close()  # the server holds its own duplicate of the socket
    console.set_port(server.port)
    return server


def quiet_request_log() -> None:
    # Werkzeug logs every request at INFO: the console's own log lines (actions, refusals) are what matter.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
