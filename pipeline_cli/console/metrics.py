"""The dashboard's graphs, for the console: read from the deployed CloudWatch dashboard itself
(`resilient-pipeline-ENV`, which stacks/constructs/dashboard.py defines), so the console draws exactly the
metrics and expressions the CDK dashboard draws, as deployed, and needs no second definition of them.

A graph widget's `metrics` (CloudWatch's dashboard body format: `[namespace, name, dim, value, ..., {options}]`
rows, `"."` repeating the row above, and `[{"expression": ...}]` rows) becomes one GetMetricData request. On
AWS, CloudWatch evaluates the expressions. The local cloud's (moto's) GetMetricData does not: it answers an
expression only when it is the bare id of another query, and a percentile statistic fails there. So on the
local cloud the console asks for the metric queries alone (a percentile read as the period's maximum, as the
local alarm evaluator reads it) and evaluates the expressions with the local cloud's own metric math
(`localcloud.services.cloudwatch.metric_math.evaluate_series`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from localcloud.services.cloudwatch import metric_math
from pipeline_contract import METRICS_NAMESPACE

DASHBOARD_NAME = "resilient-pipeline-{env}"
PERCENTILE = re.compile(r"^p\d+(\.\d+)?$")
MAX_QUERY_PAGES = 20
# The worker's metrics reach CloudWatch on AWS as embedded-metric-format log lines, which CloudWatch Logs
# extracts; the local cloud writes them to the function's log file and extracts nothing.
LOCAL_EMF_NOTE = (
    "the local cloud does not turn the worker's embedded-metric-format log lines into CloudWatch metrics "
    f"(AWS does): {METRICS_NAMESPACE} metrics have no datapoints there"
)


class DashboardError(ValueError):
    """A dashboard body this module cannot read."""


@dataclass(frozen=True, kw_only=True)
class MetricSeries:
    id: str
    namespace: str
    name: str
    dimensions: tuple[tuple[str, str], ...]
    stat: str
    period: int
    label: str
    visible: bool = True
    axis: str = "left"


@dataclass(frozen=True, kw_only=True)
class ExpressionSeries:
    id: str
    expression: str
    label: str
    period: int
    visible: bool = True
    axis: str = "left"


Series = MetricSeries | ExpressionSeries


@dataclass(frozen=True, kw_only=True)
class Graph:
    title: str
    series: tuple[Series, ...]


@dataclass(frozen=True, kw_only=True)
class Line:
    label: str
    axis: str
    points: list[tuple[datetime, float]]


@dataclass(frozen=True, kw_only=True)
class GraphData:
    title: str
    start: datetime
    end: datetime
    lines: list[Line]
    notes: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not any(line.points for line in self.lines)


def dashboard_name(env: str) -> str:
    return DASHBOARD_NAME.format(env=env)


def parse_dashboard(body: str | Mapping[str, Any]) -> list[Graph]:
    """Every graph (a `metric` widget with metrics) of a dashboard body, in the body's order."""
    try:
        document = json.loads(body) if isinstance(body, str) else body
    except ValueError as error:
        raise DashboardError(f"the dashboard body is not JSON: {error}") from error
    if not isinstance(document, Mapping) or not isinstance(document.get("widgets"), list):
        raise DashboardError("the dashboard body has no `widgets` list")
    graphs = []
    for position, widget in enumerate(document["widgets"]):
        if not isinstance(widget, Mapping) or widget.get("type") != "metric":
            continue
        properties = widget.get("properties") or {}
        rows = properties.get("metrics") or []
        if not rows:
            continue
        title = str(properties.get("title") or f"graph {position + 1}")
        graphs.append(Graph(title=title, series=tuple(parse_rows(rows, title=title))))
    return graphs


def parse_rows(rows: Sequence[Any], *, title: str) -> list[Series]:
    series: list[Series] = []
    taken = {
        str(row[-1]["id"])
        for row in rows
        if isinstance(row, list) and row and isinstance(row[-1], Mapping) and row[-1].get("id")
    }
    previous: list[Any] = []
    for number, row in enumerate(rows):
        if not isinstance(row, list) or not row:
            raise DashboardError(f"graph {title!r}: metric row {number + 1} is not a non-empty list")
        options: Mapping[str, Any] = row[-1] if isinstance(row[-1], Mapping) else {}
        fields = list(row[:-1] if options else row)
        query_id = str(options.get("id") or _fresh_id(taken, number))
        taken.add(query_id)
        period = int(options.get("period", 300))
        visible = options.get("visible", True) is not False
        axis = "right" if options.get("yAxis") == "right" else "left"
        if "expression" in options:
            series.append(
                ExpressionSeries(
                    expression=str(options["expression"]),
                    label=str(options.get("label") or options["expression"]),
                    id=query_id,
                    period=period,
                    visible=visible,
                    axis=axis,
                )
            )
            continue
        # "." repeats the element at the same position of the row above.
        fields = [
            previous[i] if value == "." and i < len(previous) else value for i, value in enumerate(fields)
        ]
        previous = fields
        if len(fields) < 2 or len(fields) % 2:
            raise DashboardError(
                f"graph {title!r}: metric row {number + 1} is not [namespace, name, dimension, value, ...]"
            )
        namespace, name = str(fields[0]), str(fields[1])
        dimensions = tuple((str(fields[i]), str(fields[i + 1])) for i in range(2, len(fields), 2))
        stat = str(options.get("stat", "Average"))
        series.append(
            MetricSeries(
                namespace=namespace,
                name=name,
                dimensions=dimensions,
                stat=stat,
                label=str(options.get("label") or f"{name} {stat}"),
                id=query_id,
                period=period,
                visible=visible,
                axis=axis,
            )
        )
    return series


def _fresh_id(taken: set[str], number: int) -> str:
    candidate = f"q{number}"
    while candidate in taken:
        candidate += "x"
    return candidate


def local_stat(stat: str) -> str:
    """What the local cloud can compute: a percentile is read as the period's maximum there."""
    return "Maximum" if PERCENTILE.match(stat) else stat


def queries(graph: Graph, *, local: bool) -> list[dict[str, Any]]:
    """The graph's GetMetricData queries: all of them for AWS; on the local cloud, its metric queries only,
    each returned (the expressions are evaluated here from them)."""
    found: list[dict[str, Any]] = []
    for series in graph.series:
        if isinstance(series, ExpressionSeries):
            if not local:
                found.append(
                    {
                        "Id": series.id,
                        "Expression": series.expression,
                        "Label": series.label,
                        "Period": series.period,
                        "ReturnData": series.visible,
                    }
                )
            continue
        found.append(
            {
                "Id": series.id,
                "MetricStat": {
                    "Metric": {
                        "Namespace": series.namespace,
                        "MetricName": series.name,
                        "Dimensions": [{"Name": name, "Value": value} for name, value in series.dimensions],
                    },
                    "Period": series.period,
                    "Stat": local_stat(series.stat) if local else series.stat,
                },
                "Label": series.label,
                "ReturnData": True if local else series.visible,
            }
        )
    return found


def get_metric_data(
    cloudwatch: Any, request: Sequence[Mapping[str, Any]], *, start: datetime, end: datetime
) -> dict[str, dict[datetime, float]]:
    """Query id -> {timestamp: value}, every page of the answer merged."""
    found: dict[str, dict[datetime, float]] = {}
    token: str | None = None
    for _ in range(MAX_QUERY_PAGES):
        arguments: dict[str, Any] = {"MetricDataQueries": list(request), "StartTime": start, "EndTime": end}
        if token:
            arguments["NextToken"] = token
        response = cloudwatch.get_metric_data(**arguments)
        for result in response.get("MetricDataResults", []):
            points = found.setdefault(str(result["Id"]), {})
            for moment, value in zip(result.get("Timestamps", []), result.get("Values", []), strict=False):
                points[as_utc(moment)] = float(value)
        token = response.get("NextToken")
        if not token:
            break
    return found


def as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def graph_data(
    graph: Graph,
    fetched: Mapping[str, Mapping[datetime, float]],
    *,
    local: bool,
    start: datetime,
    end: datetime,
) -> GraphData:
    """The graph's visible lines from GetMetricData's answer (on the local cloud, the expressions evaluated
    from the metric series here), with a note for each thing the reader should know."""
    notes: list[str] = []
    values: dict[str, Mapping[datetime, float]] = dict(fetched)
    if local:
        expressions: dict[str, metric_math.Node] = {}
        for series in graph.series:
            if isinstance(series, ExpressionSeries):
                try:
                    expressions[series.id] = metric_math.parse(series.expression)
                except metric_math.MathError as error:
                    notes.append(f"{series.label}: not evaluated on the local cloud ({error})")
        metric_series = {s.id: fetched.get(s.id, {}) for s in graph.series if isinstance(s, MetricSeries)}
        periods = {s.id: s.period for s in graph.series if isinstance(s, MetricSeries)}
        try:
            values.update(metric_math.evaluate_series(expressions, metric_series, periods))
        except metric_math.MathError as error:
            notes.append(f"the expressions were not evaluated on the local cloud ({error})")
        if any(isinstance(s, MetricSeries) and PERCENTILE.match(s.stat) for s in graph.series):
            notes.append("percentiles are read as each period's maximum on the local cloud")
        if any(isinstance(s, MetricSeries) and s.namespace == METRICS_NAMESPACE for s in graph.series):
            notes.append(LOCAL_EMF_NOTE)
    lines = [
        Line(
            label=series.label,
            axis=series.axis,
            points=sorted(values.get(series.id, {}).items()),
        )
        for series in graph.series
        if series.visible
    ]
    return GraphData(title=graph.title, start=start, end=end, lines=lines, notes=notes)


def time_range(now: datetime, hours: float) -> tuple[datetime, datetime]:
    """The last `hours`, on whole minutes (CloudWatch aligns periods to them)."""
    end = now.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    return end - timedelta(hours=hours), end
