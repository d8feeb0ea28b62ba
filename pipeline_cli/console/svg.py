"""Graphs drawn on the server as inline SVG: a metric graph (lines over time, a left and a right axis) and a
job's executions on a timeline. No chart library, no script: the page is complete as served."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

from pipeline_cli.console.html import Html, join, render
from pipeline_cli.console.metrics import GraphData, Line
from pipeline_cli.console.views import Timeline

# Distinguishable on white and for the common colour-vision deficiencies (Okabe-Ito).
PALETTE = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#000000", "#f0e442")
OUTCOME_COLOURS = {
    "continue-as-new": "#56b4e9",
    "ended": "#009e73",
    "running": "#e69f00",
    "failed": "#d55e00",
    "timed out": "#cc79a7",
    "aborted": "#7f7f7f",
}


def compact(value: float) -> str:
    """`950`, `1.2k`, `3.4M`, `0.25`: an axis label."""
    magnitude = abs(value)
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if magnitude >= limit:
            return f"{value / limit:.3g}{suffix}"
    if magnitude == 0 or magnitude >= 1:
        return f"{value:.3g}"
    return f"{value:.2g}"


def nice_ceiling(value: float) -> float:
    """The axis top: 1, 2, 2.5 or 5 times a power of ten at or above the largest value."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power  # pragma: no cover - the loop always returns


def clock(moment: datetime) -> str:
    return moment.strftime("%H:%M")


def line_chart(data: GraphData, *, width: int = 560, height: int = 200) -> Html:
    has_right = any(line.axis == "right" and line.points for line in data.lines)
    left_margin, right_margin, top, bottom = 52, 52 if has_right else 12, 10, 24
    plot_w, plot_h = width - left_margin - right_margin, height - top - bottom
    span = max((data.end - data.start).total_seconds(), 1.0)
    tops = {
        axis: nice_ceiling(
            max((v for line in data.lines if line.axis == axis for _, v in line.points), default=0)
        )
        for axis in ("left", "right")
    }

    def x(moment: datetime) -> float:
        return left_margin + plot_w * min(max((moment - data.start).total_seconds() / span, 0.0), 1.0)

    def y(value: float, axis: str) -> float:
        return top + plot_h * (1 - min(max(value / tops[axis], 0.0), 1.0))

    parts: list[Html] = []
    for step in range(5):
        fraction = step / 4
        level = top + plot_h * (1 - fraction)
        parts.append(
            render(
                '<line x1="{}" x2="{}" y1="{}" y2="{}" class="grid"/>'
                '<text x="{}" y="{}" class="tick" text-anchor="end">{}</text>',
                left_margin,
                left_margin + plot_w,
                f"{level:.1f}",
                f"{level:.1f}",
                left_margin - 4,
                f"{level + 3:.1f}",
                compact(tops["left"] * fraction),
            )
        )
        if has_right:
            parts.append(
                render(
                    '<text x="{}" y="{}" class="tick" text-anchor="start">{}</text>',
                    left_margin + plot_w + 4,
                    f"{level + 3:.1f}",
                    compact(tops["right"] * fraction),
                )
            )
    for step in range(5):
        moment = data.start + (data.end - data.start) * (step / 4)
        anchor = "start" if step == 0 else "end" if step == 4 else "middle"
        parts.append(
            render(
                '<text x="{}" y="{}" class="tick" text-anchor="{}">{}</text>',
                f"{x(moment):.1f}",
                height - 6,
                anchor,
                clock(moment),
            )
        )
    for index, line in enumerate(data.lines):
        colour = PALETTE[index % len(PALETTE)]
        points = [(x(moment), y(value, line.axis)) for moment, value in line.points]
        if not points:
            continue
        last = line.points[-1][1]
        title = render("<title>{}: {} (latest)</title>", line.label, compact(last))
        if len(points) > 1:
            parts.append(
                render(
                    '<polyline points="{}" fill="none" stroke="{}" stroke-width="1.8"{}>{}</polyline>',
                    " ".join(f"{px:.1f},{py:.1f}" for px, py in points),
                    colour,
                    Html(' stroke-dasharray="5 3"' if line.axis == "right" else ""),
                    title,
                )
            )
        if len(points) <= 60:
            parts.extend(
                render(
                    '<circle cx="{}" cy="{}" r="2.2" fill="{}">{}</circle>',
                    f"{px:.1f}",
                    f"{py:.1f}",
                    colour,
                    title,
                )
                for px, py in points
            )
    if data.empty:
        parts.append(
            render(
                '<text x="{}" y="{}" class="empty" text-anchor="middle">no datapoints in this range</text>',
                left_margin + plot_w / 2,
                top + plot_h / 2,
            )
        )
    return render(
        '<svg class="chart" viewBox="0 0 {} {}" width="{}" height="{}" role="img" aria-label="{}">{}</svg>',
        width,
        height,
        width,
        height,
        data.title,
        join(parts),
    )


def legend(lines: Sequence[Line]) -> Html:
    items = [
        render(
            '<li><svg width="14" height="8" aria-hidden="true"><rect width="14" height="8" fill="{}"/></svg> '
            "{}{}</li>",
            PALETTE[index % len(PALETTE)],
            line.label,
            Html(" <small>(right axis)</small>") if line.axis == "right" else "",
        )
        for index, line in enumerate(lines)
    ]
    return render('<ul class="legend">{}</ul>', join(items))


def timeline_chart(data: Timeline, *, width: int = 760) -> Html:
    """One lane per attempt; each execution a bar from its start to its stop (or now), coloured by how it
    ended for the job; a hand-over (continue-as-new) is the seam between two bars of one lane."""
    if not data.spans:
        return Html('<p class="muted">no execution yet</p>')
    label_w, lane_h, top = 78, 26, 4
    plot_w = width - label_w - 8
    height = top + lane_h * data.attempts + 22
    parts: list[Html] = []
    lanes = sorted({(span.lane, span.execution.attempt) for span in data.spans})
    for lane, attempt in lanes:
        parts.append(
            render('<text x="0" y="{}" class="tick">attempt {}</text>', top + lane * lane_h + 17, attempt)
        )
    for span in data.spans:
        bar_x = label_w + plot_w * span.left
        bar_w = max(plot_w * span.width, 3.0)
        bar_y = top + span.lane * lane_h + 3
        colour = OUTCOME_COLOURS.get(span.outcome, "#7f7f7f")
        name = f"e{span.execution.index}"
        parts.append(
            render(
                '<g class="span"><rect x="{}" y="{}" width="{}" height="{}" rx="3" fill="{}" stroke="#fff">'
                "<title>{} {} ({}, {})</title></rect>{}</g>",
                f"{bar_x:.1f}",
                bar_y,
                f"{bar_w:.1f}",
                lane_h - 6,
                colour,
                span.execution.name,
                span.execution.status,
                span.outcome,
                span.duration,
                render(
                    '<text x="{}" y="{}" class="bar-label">{}</text>', f"{bar_x + 4:.1f}", bar_y + 14, name
                )
                if bar_w >= 26
                else Html(""),
            )
        )
    if data.start is not None and data.end is not None:
        axis_y = top + lane_h * data.attempts + 14
        parts.append(
            render(
                '<text x="{}" y="{}" class="tick">{}</text>'
                '<text x="{}" y="{}" class="tick" text-anchor="end">{} ({} in all)</text>',
                label_w,
                axis_y,
                data.start.strftime("%H:%M:%S"),
                width - 8,
                axis_y,
                data.end.strftime("%H:%M:%S"),
                data.total,
            )
        )
    return render(
        '<svg class="timeline" viewBox="0 0 {} {}" width="{}" height="{}" role="img" '
        'aria-label="executions timeline">{}</svg>',
        width,
        height,
        width,
        height,
        join(parts),
    )
