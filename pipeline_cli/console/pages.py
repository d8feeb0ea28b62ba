"""The console's pages as HTML, from the data `views` computes. Every value is escaped (`html.render`);
forms that act carry the session's CSRF token and exist only when the console allows actions."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from pipeline_cli.console import svg
from pipeline_cli.console.html import Html, join, render
from pipeline_cli.console.metrics import GraphData
from pipeline_cli.console.views import (
    AlarmRow,
    DlqRow,
    JobPage,
    JobRow,
    Preview,
    ShardBar,
    reject_lines,
)
from pipeline_cli.deadletters import REDRIVE_CHOICES
from pipeline_cli.output import shorten
from pipeline_contract import ACTIVE, STATUSES

JOBS_REFRESH_MS = 2000
JOB_REFRESH_MS = 2000
ALARMS_REFRESH_MS = 10_000
METRICS_REFRESH_MS = 60_000
HOURS = (1, 3, 12, 24)


@dataclass(frozen=True, kw_only=True)
class Frame:
    """What every page shows around its content: the environment, the mode, the nav's counts."""

    env: str
    endpoint: str
    allow_actions: bool
    csrf: str
    dlq_count: int | None = None
    firing: Mapping[str, int] = field(default_factory=dict)
    problem: str | None = None  # the nav's counts could not be read


def job_link(job_id: str) -> str:
    return f"/jobs/{quote(job_id, safe='')}"


def status_badge(status: str) -> Html:
    return render('<span class="status status-{}">{}</span>', status.lower(), status)


def page(
    frame: Frame, *, title: str, active: str, body: Html, refresh: str | None = None, interval: int = 0
) -> Html:
    """A whole page; `refresh`: the URL whose answer replaces <main> every `interval` ms (live refresh)."""
    nav_items = []
    for key, label, href in (
        ("jobs", "Jobs", "/jobs"),
        ("dlq", "Dead letters", "/dlq"),
        ("alarms", "Alarms", "/alarms"),
        ("metrics", "Metrics", "/metrics"),
    ):
        badge = Html("")
        if key == "dlq" and frame.dlq_count:
            badge = render(' <span class="count warn">{}</span>', frame.dlq_count)
        if key == "alarms":
            critical, warning = frame.firing.get("critical", 0), frame.firing.get("warning", 0)
            if critical:
                badge = render(
                    ' <span class="count bad" title="critical alarms in ALARM">{}</span>', critical
                )
            if warning:
                badge = render(
                    '{} <span class="count warn" title="warning alarms in ALARM">{}</span>', badge, warning
                )
        nav_items.append(
            render(
                '<a href="{}"{}>{}{}</a>',
                href,
                Html(' aria-current="page"' if key == active else ""),
                label,
                badge,
            )
        )
    mode = (
        Html('<span class="mode act" title="started with --allow-actions">actions allowed</span>')
        if frame.allow_actions
        else Html(
            '<span class="mode" title="start with --allow-actions to redrive from here">read-only</span>'
        )
    )
    problem = render('<p class="alert bad">{}</p>', frame.problem) if frame.problem else Html("")
    main_attributes = (
        render(' data-refresh="{}" data-interval="{}"', refresh, interval) if refresh else Html("")
    )
    return render(
        """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="csrf-token" content="{csrf}">
<title>{title} - pipeline console ({env})</title>
<link rel="stylesheet" href="/static/console.css">
<script src="/static/console.js" defer></script>
</head>
<body>
<header>
<a class="brand" href="/jobs">resilient-pipeline</a>
<span class="env" title="{endpoint}">env <b>{env}</b></span>
<nav>{nav}</nav>
{mode}
</header>
{problem}
<main{main_attributes}>
{body}
</main>
</body>
</html>
""",
        csrf=frame.csrf,
        title=title,
        env=frame.env,
        endpoint=frame.endpoint,
        nav=join(nav_items),
        mode=mode,
        problem=problem,
        main_attributes=main_attributes,
        body=body,
    )


def error_body(message: str, *, hint: str | None = None) -> Html:
    return render(
        '<section class="alert bad"><h1>Cannot read the environment</h1><p>{}</p>{}</section>',
        message,
        render("<p>{}</p>", hint) if hint else Html(""),
    )


def table(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], *, css: str = "", numeric: Sequence[int] = ()
) -> Html:
    head = join(
        render("<th{}>{}</th>", Html(' class="num"' if i in numeric else ""), h)
        for i, h in enumerate(headers)
    )
    body = join(
        render(
            "<tr>{}</tr>",
            join(
                render("<td{}>{}</td>", Html(' class="num"' if i in numeric else ""), c)
                for i, c in enumerate(row)
            ),
        )
        for row in rows
    )
    return render('<table class="{}"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>', css, head, body)


def pairs(rows: Sequence[tuple[str, Any]], *, css: str = "pairs") -> Html:
    return render(
        '<dl class="{}">{}</dl>',
        css,
        join(render("<dt>{}</dt><dd>{}</dd>", label, value) for label, value in rows),
    )


def progress(percent: float | None, *, label: str, active: bool = True) -> Html:
    """A bar; without a percent, an indeterminate bar while the job may still start, else `-`."""
    if percent is None and not active:
        return Html('<span class="pct">-</span>')
    if percent is None:
        return render('<progress aria-label="{}"></progress> <span class="pct">?</span>', label)
    return render(
        '<progress max="100" value="{}" aria-label="{}"></progress> <span class="pct">{}</span>',
        f"{percent:.1f}",
        label,
        f"{percent:.1f}%",
    )


# -- jobs ---------------------------------------------------------------------------------------------


def jobs_query(status: str | None, limit: int) -> str:
    return urlencode({k: v for k, v in (("status", status), ("limit", limit)) if v})


def jobs_body(rows: Sequence[JobRow], *, status: str | None, limit: int) -> Html:
    filters = [
        render(
            '<a href="/jobs?{}"{}>{}</a>',
            jobs_query(each, limit),
            Html(' aria-current="true"' if each == status else ""),
            each or "all",
        )
        for each in (None, *STATUSES)
    ]
    if rows:
        body = table(
            (
                "job",
                "status",
                "progress",
                "shards",
                "in",
                "out",
                "rejected",
                "age",
                "ETA",
                "code",
                "updated (UTC)",
            ),
            [
                (
                    render(
                        '<a href="{}">{}</a>{}',
                        job_link(row.job_id),
                        row.job_id,
                        render('<div class="why">{}</div>', shorten(row.error, 120))
                        if row.error
                        else Html(""),
                    ),
                    status_badge(row.status),
                    progress(row.percent, label=f"progress of {row.job_id}", active=row.status in ACTIVE),
                    f"{row.shards_done}/{row.shards}",
                    f"{row.records_in:,}",
                    f"{row.records_out:,}",
                    f"{row.records_rejected:,}",
                    row.age,
                    row.eta or "-",
                    row.code,
                    render('<span title="{}">{}</span>', row.updated_at, row.updated_text),
                )
                for row in rows
            ],
            css="jobs",
            numeric=(4, 5, 6),
        )
    else:
        body = render('<p class="muted">no {}jobs</p>', f"{status} " if status else "")
    return render(
        '<h1>Jobs</h1><p class="filters">status: {}</p>{}<p class="muted small">newest first, at most {} '
        "(a Query per status on the by-status index, as <code>pipeline jobs</code>); refreshed every {} s</p>",
        join(filters, " "),
        body,
        limit,
        JOBS_REFRESH_MS // 1000,
    )


# -- a job --------------------------------------------------------------------------------------------


def shard_rows(bars: Sequence[ShardBar]) -> Html:
    if not bars:
        return Html('<p class="muted">the input size is known after the first segment</p>')
    items = [
        render(
            '<li class="shard shard-{}"><span class="label">shard {}</span>{}'
            '<span class="range">bytes {}-{} &middot; {}</span></li>',
            bar.state.replace(" ", "-"),
            bar.index,
            progress(100 * bar.share, label=f"shard {bar.index}"),
            f"{bar.start:,}",
            f"{bar.end:,}",
            bar.state,
        )
        for bar in bars
    ]
    done = sum(1 for bar in bars if bar.state == "done")
    return render('<p>{} of {} done</p><ul class="shards">{}</ul>', done, len(bars), join(items))


def preview_block(preview: Preview | None, *, rejects: bool) -> Html:
    if preview is None:
        return Html('<p class="muted">no output location</p>')
    if not preview.lines:
        return Html(
            '<p class="muted">nothing written yet</p>' if not rejects else '<p class="muted">no rejects</p>'
        )
    more = render(
        '<p class="muted small">the first {} line(s), of {} part(s){}</p>',
        len(preview.lines),
        preview.parts_text,
        "; more follow" if preview.truncated else "",
    )
    if rejects:
        rows = [(r.offset, r.error, shorten(r.line, 160)) for r in reject_lines(preview)]
        return render("{}{}", table(("offset", "reason", "line"), rows, css="rejects", numeric=(0,)), more)
    return render(
        '<pre class="preview">{}</pre>{}', "\n".join(shorten(line, 400) for line in preview.lines), more
    )


def job_body(view: JobPage, *, frame: Frame, complete_timeline: bool) -> Html:
    row, record = view.row, view.record
    error = (
        render(
            '<section class="alert bad"><h2>Why it {}</h2><p><b>{}</b>: {}</p>{}</section>',
            "failed" if row.status == "FAILED" else "stopped",
            view.error["type"],
            view.error["message"],
            render(
                '<p>Its request went back to the <a href="/dlq">dead-letter queue</a>: fix the cause, then redrive it{}.</p>',
                Html(" there")
                if frame.allow_actions
                else render(" (<code>pipeline dlq redrive --job-id {}</code>)", row.job_id),
            )
            if row.status == "FAILED"
            else Html(""),
        )
        if view.error
        else Html("")
    )
    executions = [
        (
            span.execution.name,
            span.execution.status,
            span.outcome,
            span.execution.start.strftime("%H:%M:%S") if span.execution.start else "-",
            span.execution.stop.strftime("%H:%M:%S") if span.execution.stop else "-",
            span.duration,
            (span.execution.version_arn or "-").rsplit(":", 1)[-1] if span.execution.version_arn else "-",
        )
        for span in view.timeline.spans
    ]
    events = [(event.time, event.detail_type, event.attempt, event.detail) for event in view.events]
    cost = view.cost
    usage = cost["usage"]
    cost_rows = [
        ("total", f"${cost['usd']:.4f}"),
        *((name.replace("_", " "), f"${usd:.4f}") for name, usd in cost["by_service_usd"].items()),
        ("Lambda", f"{usage['lambda_gb_seconds']:,.1f} GB-s in {usage['lambda_requests']:,} invocations"),
        ("state transitions", f"~{usage['state_transitions']:,}"),
        ("S3", f"{usage['s3_gets']:,} GET / {usage['s3_puts']:,} PUT"),
        (
            "DynamoDB",
            f"{usage['dynamodb_write_units']:,} write / {usage['dynamodb_read_units']:,} read units",
        ),
    ]
    final = Html("") if view.active else Html("<div data-final hidden></div>")
    return render(
        """<p class="crumbs"><a href="/jobs">Jobs</a> /</p>
<h1>{job_id} {status}</h1>
<section class="summary">{progress} {eta}
<p class="muted small">accepted {created} ({age} ago), updated {updated}{live}</p></section>
{error}{final}
<div class="grid">
<section><h2>Counters</h2>{counters}</section>
<section><h2>Input (as pinned)</h2>{inputs}</section>
<section><h2>Code</h2>{code}</section>
</div>
<section><h2>Shards</h2>{shards}</section>
<section><h2>Executions</h2>
<p class="muted small">{executions_count} execution(s), {hand_overs} continue-as-new hand-over(s), {attempts} attempt(s){incomplete}</p>
{timeline}{executions}</section>
<section><h2>Job events</h2>
<p class="muted small">Derived from the record and its executions: the events EventBridge was sent for this job
(source <code>resilient-pipeline</code>). They are not read back from the bus: the pipeline keeps no archive of it.</p>
{events}</section>
<div class="grid two">
<section><h2>Output preview</h2>{output}</section>
<section><h2>Rejects preview</h2>{rejects}</section>
</div>
<section><h2>Estimated cost</h2>{cost}<p class="muted small">{prices}: an estimate of the job's work from its counters
(docs/cost.md), not a bill</p></section>
""",
        job_id=row.job_id,
        status=status_badge(row.status),
        progress=progress(row.percent, label="job progress", active=view.active),
        eta=render('<span class="eta">ETA {}</span>', view.eta) if view.eta else Html(""),
        created=str(record.get("created_at", "-")),
        age=row.age,
        updated=row.updated_at,
        live=Html(f"; refreshed every {JOB_REFRESH_MS // 1000} s while it runs") if view.active else Html(""),
        error=error,
        final=final,
        counters=pairs(view.counters),
        inputs=pairs(view.input_rows),
        code=pairs(view.code_rows),
        shards=shard_rows(view.bars),
        executions_count=len(view.timeline.spans),
        hand_overs=view.timeline.hand_overs,
        attempts=view.timeline.attempts,
        incomplete=Html("") if complete_timeline else Html("; only the newest are shown"),
        timeline=svg.timeline_chart(view.timeline),
        executions=table(
            ("execution", "status", "for the job", "start", "stop", "took", "version"),
            executions,
            css="executions",
        )
        if executions
        else Html(""),
        events=table(("time", "event", "attempt", "detail"), events, css="events")
        if events
        else Html('<p class="muted">none yet (a job is announced when it starts)</p>'),
        output=preview_block(view.output, rejects=False),
        rejects=preview_block(view.rejects, rejects=True),
        cost=pairs(cost_rows),
        prices=cost["prices"],
    )


# -- the DLQ ------------------------------------------------------------------------------------------

CHOICE_WORDS = {
    None: (
        "Redrive",
        "resume the job from its checkpoint in a new attempt (refused if its input or its code changed)",
    ),
    "restart": (
        "Restart",
        "run the job again from offset 0 on the input as it is now and the deployed code, into a fresh "
        "output location",
    ),
    "upgrade": (
        "Upgrade",
        "resume the job from its checkpoint on the deployed code (its lineage records where the new code "
        "took over)",
    ),
}


def cli_command(job_id: str | None, choice: str | None) -> str:
    return " ".join(
        [
            "pipeline dlq redrive",
            *([f"--job-id {job_id}"] if job_id else []),
            *([f"--{choice}"] if choice else []),
        ]
    )


def redrive_form(frame: Frame, *, job_id: str | None, choice: str | None, label: str, title: str) -> Html:
    return render(
        '<form method="post" action="/dlq/redrive" class="inline">'
        '<input type="hidden" name="csrf" value="{}">'
        '<input type="hidden" name="job_id" value="{}">'
        '<input type="hidden" name="choice" value="{}">'
        '<button type="submit" title="{}" data-action="{}">{}</button></form>',
        frame.csrf,
        job_id or "",
        choice or "",
        title,
        f"{choice or 'redrive'}{'-' + job_id if job_id else '-all'}",
        label,
    )


def dlq_actions(frame: Frame, row: DlqRow) -> Html:
    if not row.job_id:
        return Html('<span class="muted small">no job id: only with all messages</span>')
    if not frame.allow_actions:
        return render('<code class="small">{}</code>', cli_command(row.job_id, None))
    return join(
        redrive_form(
            frame,
            job_id=row.job_id,
            choice=choice,
            label=CHOICE_WORDS[choice][0],
            title=CHOICE_WORDS[choice][1],
        )
        for choice in (None, *REDRIVE_CHOICES)
    )


def dlq_body(
    rows: Sequence[DlqRow], *, approximate: int, frame: Frame, actions: Sequence[Mapping[str, Any]]
) -> Html:
    if rows:
        listing = table(
            ("sent", "job", "job now", "error", "reason", "receives", "request", "actions"),
            [
                (
                    row.sent_at,
                    render('<a href="{}">{}</a>', job_link(row.job_id), row.job_id) if row.job_id else "-",
                    status_badge(row.job_status) if row.job_status else ("no record" if row.job_id else "-"),
                    render("<b>{}</b>", row.error_type),
                    render('<span class="reason">{}</span>', row.reason),
                    row.receive_count,
                    render(
                        "<details><summary>{}</summary><pre>{}</pre></details>",
                        shorten(row.body, 40),
                        pretty(row.body),
                    ),
                    dlq_actions(frame, row),
                )
                for row in rows
            ],
            css="dlq",
            numeric=(5,),
        )
    else:
        listing = Html('<p class="ok-text">The dead-letter queue is empty.</p>')
    more = (
        render(
            '<p class="muted">SQS counts about {}: the others are in flight elsewhere (a redrive running?); reload to see them.</p>',
            approximate,
        )
        if approximate > len(rows)
        else Html("")
    )
    if frame.allow_actions:
        everything = render(
            '<section class="actions"><h2>Everything</h2>{}<p class="muted small">{}: every message back to the ingest '
            "queue, as <code>pipeline dlq redrive</code> (SQS's message move task on AWS; receive, send, delete "
            "where it is missing). Each button asks for confirmation first.</p></section>",
            redrive_form(frame, job_id=None, choice=None, label="Redrive all", title="every message"),
            "Redrive all",
        )
    else:
        everything = Html(
            '<p class="alert">Read-only: this console was started without <code>--allow-actions</code>. '
            "Redrive with the command shown beside each message, or restart the console with "
            "<code>pipeline console --allow-actions</code>.</p>"
        )
    history = (
        render(
            "<section><h2>Actions taken from this console</h2>{}</section>",
            table(
                ("time", "action", "outcome"),
                [
                    (a["time"], render('<a href="/actions/{}">{}</a>', a["id"], a["command"]), a["outcome"])
                    for a in reversed(actions)
                ],
                css="history",
            ),
        )
        if actions
        else Html("")
    )
    return render(
        """<h1>Dead-letter queue</h1>
<p>{count} message(s): requests the ingest rejected and jobs that failed, each with its reason.</p>
{more}{everything}{listing}
<p class="muted small">SQS has no peek: reading the queue receives each message once (hidden for a few seconds,
then released at once), so its receive count rose by one. That is why this page does not refresh by itself:
reload it to read the queue again.</p>
{history}""",
        count=len(rows),
        more=more,
        everything=everything,
        listing=listing,
        history=history,
    )


def pretty(body: str) -> str:
    try:
        return json.dumps(json.loads(body), indent=2, sort_keys=True)
    except ValueError:
        return body


def confirm_body(frame: Frame, *, job_id: str | None, choice: str | None, messages: int | None) -> Html:
    word, meaning = CHOICE_WORDS[choice]
    scope = (
        render("job <b>{}</b>", job_id) if job_id else Html("<b>every message</b> in the dead-letter queue")
    )
    found = (
        render("<p>{} message(s) of this job are in the dead-letter queue now.</p>", messages)
        if messages is not None
        else Html("")
    )
    return render(
        """<h1>Confirm: {word} {scope}?</h1>
<section class="confirm">
<p>This moves {scope_again} back to the ingest queue{asking}: {meaning}.</p>
{found}
<p>It is the same as <code>{command}</code>, and it is logged.</p>
<form method="post" action="/dlq/redrive">
<input type="hidden" name="csrf" value="{csrf}">
<input type="hidden" name="job_id" value="{job_id}">
<input type="hidden" name="choice" value="{choice}">
<input type="hidden" name="confirm" value="yes">
<button type="submit" class="primary" data-action="confirm">Yes, {word_lower}</button>
<a href="/dlq" class="button">Cancel</a>
</form>
</section>""",
        word=word,
        word_lower=word.lower(),
        scope=scope,
        scope_again=render("the messages of {}", scope) if job_id else scope,
        asking=render(", asking for a {}", choice) if choice else Html(""),
        meaning=meaning,
        found=found,
        command=cli_command(job_id, choice),
        csrf=frame.csrf,
        job_id=job_id or "",
        choice=choice or "",
    )


def action_body(action: Mapping[str, Any]) -> Html:
    ok = action["ok"]
    job_id = action.get("job_id")
    return render(
        """<h1>{title}</h1>
<section class="alert {css}"><pre>{summary}</pre>{problem}</section>
<p><code>{command}</code> at {time}.</p>
<p>{job}<a href="/dlq">Back to the dead-letter queue</a></p>""",
        title="Done" if ok else "The redrive did not do everything",
        css="good" if ok else "bad",
        summary=action["summary"],
        problem=render("<p><b>{}</b></p>", action["problem"]) if action.get("problem") else Html(""),
        command=action["command"],
        time=action["time"],
        job=render('<a href="{}">Follow job {}</a> &middot; ', job_link(job_id), job_id)
        if job_id
        else Html(""),
    )


# -- alarms -------------------------------------------------------------------------------------------


def alarms_body(groups: Mapping[str, Sequence[AlarmRow]]) -> Html:
    sections = []
    for severity, rows in groups.items():
        firing = sum(1 for row in rows if row.state == "ALARM")
        what = {
            "critical": "work is lost or stuck and will not fix itself; pages",
            "warning": "degraded, retries absorb it for now",
            "other": "alarms of this account that the pipeline did not define",
        }[severity]
        sections.append(
            render(
                '<section class="severity severity-{}"><h2>{} <small>{} in ALARM of {}: {}</small></h2>{}</section>',
                severity,
                severity.capitalize(),
                firing,
                len(rows),
                what,
                table(
                    ("state", "alarm", "since", "reason", "what to do"),
                    [
                        (
                            render('<span class="state state-{}">{}</span>', row.state.lower(), row.state),
                            render('<span title="{}">{}</span>', row.name, row.short_name),
                            row.updated,
                            shorten(row.reason, 160),
                            render(
                                "<details><summary>{}</summary><p>{}</p></details>",
                                shorten(row.description, 60),
                                row.description,
                            ),
                        )
                        for row in rows
                    ],
                    css="alarms",
                )
                if rows
                else Html('<p class="muted">none</p>'),
            )
        )
    return render(
        '<h1>Alarms</h1>{}<p class="muted small">DescribeAlarms, refreshed every {} s; the severity is the '
        "<code>[critical]</code> or <code>[warning]</code> that starts each description (stacks/constructs/alarms.py).</p>",
        join(sections),
        ALARMS_REFRESH_MS // 1000,
    )


# -- metrics ------------------------------------------------------------------------------------------


def metrics_body(graphs: Sequence[GraphData], *, hours: float, note: str | None, env: str) -> Html:
    choices = join(
        (
            render(
                '<a href="/metrics?hours={}"{}>{} h</a>',
                each,
                Html(' aria-current="true"' if each == hours else ""),
                each,
            )
            for each in HOURS
        ),
        " ",
    )
    cards = [
        render(
            '<figure class="graph"><figcaption>{}</figcaption>{}{}{}</figure>',
            graph.title,
            svg.line_chart(graph),
            svg.legend(graph.lines),
            join(render('<p class="note">{}</p>', note_) for note_ in graph.notes),
        )
        for graph in graphs
    ]
    return render(
        '<h1>Metrics</h1><p class="filters">last {}</p>{}<div class="graphs">{}</div>'
        '<p class="muted small">The graphs of the CloudWatch dashboard <code>resilient-pipeline-{}</code>, as deployed '
        "(stacks/constructs/dashboard.py), read with GetMetricData; times in UTC; refreshed every {} s.</p>",
        choices,
        render('<p class="alert">{}</p>', note) if note else Html(""),
        join(cards),
        env,
        METRICS_REFRESH_MS // 1000,
    )


def refused(message: str) -> Html:
    return render(
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Refused</title></head>'
        "<body><h1>Refused</h1><p>{}</p></body></html>",
        message,
    )
