"""Render a `Report` for a terminal (plain text) or for a pull-request comment (GitHub Markdown, kept under
GitHub's size limit), in `cdk diff`'s markers and tree, with the destructive and security-relevant changes
first."""

from __future__ import annotations

from dataclasses import dataclass

from infra_diff.model import Finding, Impact, PropertyChange, Report, ResourceChange, StackDiff
from infra_diff.values import ValueChange, format_change, format_value

# GitHub rejects comments over 65,536 characters; leave room for the sticky-comment marker.
MARKDOWN_LIMIT = 60_000
MAX_LINES_PER_PROPERTY = 25

IMPACT_MARK = {
    Impact.ADDED: "+",
    Impact.REMOVED: "-",
    Impact.ORPHANED: "-",
    Impact.UPDATED: "~",
    Impact.REPLACED: "~",
}
IMPACT_SUFFIX = {
    Impact.REMOVED: " destroy",
    Impact.ORPHANED: " orphan",
    Impact.REPLACED: " replace",
}
CHANGE_MARK = {"added": "+", "removed": "-", "changed": "~", "reordered": "~"}


@dataclass(frozen=True)
class Labels:
    """How the two sides are named in the output, e.g. `1a2b3c4 (merge base with main)`, and the base's
    full commit id when it is known (the JSON document carries it)."""

    base: str
    head: str = "working tree"
    base_commit: str | None = None


@dataclass(frozen=True)
class Line:
    mark: str  # "+", "-", "~" or " "
    text: str


# --- shared: resource trees --------------------------------------------------------------------------


def stack_lines(diff: StackDiff) -> list[Line]:
    """The `cdk diff`-style listing of one stack's resource and section changes."""
    lines: list[Line] = []
    if diff.resources:
        lines.append(Line(" ", "Resources"))
    for change in diff.resources:
        lines += resource_lines(change)
    if diff.sections:
        lines.append(Line(" ", "Other changes"))
        for section in diff.sections:
            lines += property_lines(section)
    return lines


def resource_lines(change: ResourceChange) -> list[Line]:
    mark = IMPACT_MARK[change.impact]
    path = f"{change.path} " if change.path else ""
    head = f"[{mark}] {change.type} {path}{change.logical_id}{IMPACT_SUFFIX.get(change.impact, '')}"
    lines = [Line(mark, head)]
    children: list[list[Line]] = []
    propagated = [r for r in change.reasons if "refers to" in r or "type changes" in r]
    for reason in propagated:
        children.append([Line(" ", f"({reason})")])
    if change.replacement_unknown:
        children.append([Line(" ", f"(replacement unknown: {change.type} is not in infra_diff.replacement)")])
    for prop in change.properties:
        children.append(property_lines(prop))
    for index, child in enumerate(children):
        last = index == len(children) - 1
        lines += _graft(child, last)
    return lines


def _graft(child: list[Line], last: bool) -> list[Line]:
    """Indent a child block under its parent with tree glyphs."""
    first, rest = (" └─ ", "    ") if last else (" ├─ ", " │  ")
    return [Line(line.mark, (first if i == 0 else rest) + line.text) for i, line in enumerate(child)]


def property_lines(prop: PropertyChange) -> list[Line]:
    suffix = " (requires replacement)" if prop.replaces else ""
    single = len(prop.changes) == 1 and not prop.changes[0].path and prop.note is None
    if single:
        change = prop.changes[0]
        mark = CHANGE_MARK[change.kind]
        return [Line(mark, f"[{mark}] {prop.name}: {_describe(change)}{suffix}")]
    if not prop.changes and prop.note:
        return [Line("~", f"[~] {prop.name}: {prop.note}{suffix}")]
    lines = [Line("~", f"[~] {prop.name}{suffix}")]
    children: list[list[Line]] = []
    if prop.note:
        children.append([Line("~", f"[~] {prop.note}")])
    shown = prop.changes[:MAX_LINES_PER_PROPERTY]
    for change in shown:
        mark = CHANGE_MARK[change.kind]
        where = f"{change.path}: " if change.path else ""
        children.append([Line(mark, f"[{mark}] {where}{_describe(change)}")])
    if len(prop.changes) > len(shown):
        children.append([Line(" ", f"… and {len(prop.changes) - len(shown)} more changes")])
    for index, child in enumerate(children):
        lines += _graft(child, index == len(children) - 1)
    return lines


def _describe(change: ValueChange) -> str:
    if change.kind == "added":
        return format_value(change.new)
    if change.kind == "removed":
        return format_value(change.old)
    if change.kind == "reordered":
        return "order changed"
    return format_change(change.old, change.new)


def stack_summary(diff: StackDiff) -> str:
    if diff.status == "unchanged":
        return "no changes"
    if diff.status == "added":
        return f"new stack ({len(diff.resources)} resources)"
    if diff.status == "removed":
        return "no longer in the app (left deployed as it is)"
    parts = []
    for label, impacts in (
        ("to add", (Impact.ADDED,)),
        ("to update", (Impact.UPDATED,)),
        ("to replace", (Impact.REPLACED,)),
        ("to destroy", (Impact.REMOVED,)),
        ("to orphan", (Impact.ORPHANED,)),
    ):
        count = diff.count(*impacts)
        if count:
            parts.append(f"{count} {label}")
    if diff.sections:
        parts.append(f"{len(diff.sections)} other")
    return ", ".join(parts)


def verdict_line(report: Report, allow_destructive: bool) -> str:
    count = len(report.destructive)
    if not count:
        return "Result: no stateful resource is replaced or deleted."
    noun = "change" if count == 1 else "changes"
    if allow_destructive:
        return f"Result: {count} destructive {noun}, allowed by --allow-destructive."
    return (
        f"Result: {count} destructive {noun}: exit status 1. If {'it is' if count == 1 else 'they are'} "
        "intended, rerun with --allow-destructive."
    )


def no_change_line(report: Report, labels: Labels) -> str:
    return (
        f"No infrastructure changes: {labels.base} and the {labels.head} synthesize to the same templates "
        f"({', '.join(report.envs)})."
    )


# --- plain text --------------------------------------------------------------------------------------


def render_text(report: Report, labels: Labels, *, allow_destructive: bool = False) -> str:
    if not report.changed:
        return no_change_line(report, labels) + "\n"
    out = [
        f"Infrastructure diff: {labels.base} -> {labels.head}",
        f"Environments: {', '.join(report.envs)}",
        "",
    ]
    if report.destructive:
        count = len(report.destructive)
        out.append(
            f"DESTRUCTIVE: {count} stateful resource{'s' if count > 1 else ''} would be replaced or deleted"
        )
        for finding in report.destructive:
            out.append(f"  x {finding.env}  {finding.stack}  {finding.subject}")
            out.append(f"      {finding.message}")
        out.append("")
    if report.security:
        out.append(f"Security-relevant changes ({len(report.security)})")
        for finding in report.security:
            out.append(
                f"  {_direction(finding)} {finding.env}  {finding.stack}  [{finding.category}] "
                f"{finding.subject}: {finding.message}"
            )
        out.append("  (! weakens a protection, + strengthens one, ~ to judge)")
        out.append("")
    if report.notes:
        out.append("Notes")
        for finding in report.notes:
            where = f"{finding.env}  {finding.stack}: " if finding.stack else f"{finding.env}: "
            out.append(f"  - {where}{finding.message}")
        out.append("")
    unchanged = []
    for env in report.envs:
        stacks = report.stacks_of(env)
        if not report.env_changed(env):
            unchanged.append(env)
            continue
        out.append(f"== {env} ==")
        for diff in stacks:
            out.append(f"Stack {diff.stack}: {stack_summary(diff)}")
            out += [line.text for line in stack_lines(diff)]
        out.append("")
    if unchanged:
        out.append(f"No changes in: {', '.join(unchanged)}")
        out.append("")
    out.append(verdict_line(report, allow_destructive))
    return "\n".join(out) + "\n"


def _direction(finding: Finding) -> str:
    return {True: "!", False: "+", None: "~"}[finding.weakens]


# --- Markdown ----------------------------------------------------------------------------------------


def render_markdown(
    report: Report, labels: Labels, *, allow_destructive: bool = False, limit: int = MARKDOWN_LIMIT
) -> str:
    title = "### Infrastructure diff"
    if not report.changed:
        return f"{title}\n\n{_md_inline(no_change_line(report, labels))}\n"
    head = [
        title,
        "",
        f"`{_code(labels.base)}` → {_md_inline(labels.head)} · environments: "
        + ", ".join(f"`{env}`" for env in report.envs),
        "",
        *_md_destructive(report, allow_destructive),
        *_summary_table(report),
        *_md_security(report),
        *_md_notes(report),
    ]
    verdict = verdict_line(report, allow_destructive)
    if report.destructive and not allow_destructive:
        # On a pull request the switch is the label the workflow maps to --allow-destructive.
        verdict = verdict.replace(
            "rerun with --allow-destructive.",
            "add the `allow-destructive` label to the pull request (locally: `--allow-destructive`).",
        )
    tail = ["", verdict.replace(" --allow-destructive.", " `--allow-destructive`.")]
    unchanged = [env for env in report.envs if not report.env_changed(env)]
    if unchanged:
        tail[:0] = ["", "No changes in: " + ", ".join(f"`{env}`" for env in unchanged)]
    text = "\n".join(head)
    details = _md_details(report)
    if details:
        text += "\n\n#### Details\n"
    budget = limit - len("\n".join(tail)) - 200
    omitted = 0
    for block in details:
        if len(text) + len(block) > budget:
            omitted += 1
            continue
        text += "\n" + block
    if omitted:
        text += (
            f"\n\n_{omitted} stack listing{'s' if omitted > 1 else ''} left out to fit GitHub's comment size "
            "limit: run `make diff` locally for everything._"
        )
    return text + "\n" + "\n".join(tail) + "\n"


def _md_destructive(report: Report, allow_destructive: bool) -> list[str]:
    if not report.destructive:
        return []
    count = len(report.destructive)
    lines = [
        "> [!CAUTION]",
        f"> **{count} destructive change{'s' if count > 1 else ''}**: a stateful resource would be "
        f"replaced or deleted.{' Allowed by `--allow-destructive`.' if allow_destructive else ''}",
    ]
    for finding in report.destructive:
        lines.append(
            f"> - **{finding.env}** `{_code(finding.stack)}` `{_code(finding.subject)}`: "
            f"{_md_inline(finding.message)}"
        )
    return [*lines, ""]


def _md_security(report: Report) -> list[str]:
    if not report.security:
        return []
    lines = [
        "",
        f"#### Security-relevant changes ({len(report.security)})",
        "",
        "| | Env | Stack | Resource | Category | Change |",
        "|---|---|---|---|---|---|",
    ]
    icons = {True: ":warning:", False: ":shield:", None: ":mag:"}
    for finding in report.security:
        lines.append(
            f"| {icons[finding.weakens]} | {finding.env} | `{_code(finding.stack)}` | "
            f"`{_code(finding.subject)}` | {finding.category} | {_cell(finding.message)} |"
        )
    return [*lines, "", ":warning: weakens a protection · :shield: strengthens one · :mag: to judge"]


def _md_notes(report: Report) -> list[str]:
    if not report.notes:
        return []
    lines = ["", "#### Notes", ""]
    for finding in report.notes:
        where = f"**{finding.env}** `{_code(finding.stack)}`: " if finding.stack else f"**{finding.env}**: "
        lines.append(f"- {where}{_md_inline(finding.message)}")
    return lines


def _md_details(report: Report) -> list[str]:
    blocks = []
    for env in report.envs:
        for diff in report.stacks_of(env):
            if diff.status == "unchanged" or not (diff.resources or diff.sections):
                continue
            body = "\n".join(_diff_line(line) for line in stack_lines(diff))
            blocks.append(
                f"<details><summary><b>{env}</b> · <code>{_html(diff.stack)}</code>: "
                f"{_html(stack_summary(diff))}</summary>\n\n```diff\n{body}\n```\n\n</details>"
            )
    return blocks


def _summary_table(report: Report) -> list[str]:
    rows = [
        "| Env | Stack | Added | Updated | Replaced | Destroyed | Other |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for diff in report.stacks:
        if diff.status == "unchanged":
            continue
        status = {"added": " (new)", "removed": " (left the app)"}.get(diff.status, "")
        rows.append(
            f"| {diff.env} | `{_code(diff.stack)}`{status} | {diff.count(Impact.ADDED)} | "
            f"{diff.count(Impact.UPDATED)} | {diff.count(Impact.REPLACED)} | "
            f"{diff.count(Impact.REMOVED, Impact.ORPHANED)} | {len(diff.sections)} |"
        )
    return rows if len(rows) > 2 else []


def _diff_line(line: Line) -> str:
    # In a ```diff block GitHub colours lines by their first character.
    first = {"+": "+", "-": "-", "~": "!"}.get(line.mark, " ")
    return first + " " + line.text.replace("```", "`\u200b``")


def _code(text: str) -> str:
    return text.replace("`", "'")


def _cell(text: str) -> str:
    return _md_inline(text).replace("|", "\\|").replace("\n", " ")


def _md_inline(text: str) -> str:
    # Keep template text (e.g. `${Import:...}`, `<asset-hash>`) literal in Markdown.
    return text.replace("<", "&lt;").replace(">", "&gt;").replace("*", "\\*").replace("_", "\\_")


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
