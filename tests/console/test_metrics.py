"""The dashboard's graphs as the console reads them: parsed from the dashboard body the CDK app deploys (the
committed template snapshots), turned into GetMetricData queries for AWS and for the local cloud, and the
local cloud's answer completed with the expressions evaluated by its metric math."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from localcloud.services.cloudwatch import metric_math
from pipeline_cli.console import metrics, svg
from pipeline_cli.console.metrics import ExpressionSeries, Graph, GraphData, Line, MetricSeries
from tests.infra.template_tools import render

SNAPSHOTS = Path(__file__).resolve().parents[1] / "infra" / "__snapshots__" / "test_snapshots"
T0 = datetime(2026, 11, 22, 15, 0, tzinfo=UTC)


def at(minute: int) -> datetime:
    return T0 + timedelta(minutes=minute)


def deployed_dashboard(env: str) -> list[Graph]:
    """The dashboard body of `env`'s synthesized template (references rendered as <...>)."""
    (path,) = SNAPSHOTS.glob(f"test_template_snapshot[[]{env}-pipeline[]]*.json")
    template = json.loads(path.read_text())
    (dashboard,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::CloudWatch::Dashboard"]
    return metrics.parse_dashboard(render(dashboard["Properties"]["DashboardBody"]))


@pytest.mark.parametrize("env", ["local", "dev", "staging", "prod"])
def test_every_graph_of_the_cdk_dashboard_is_read_and_its_expressions_evaluate_locally(env: str) -> None:
    graphs = deployed_dashboard(env)
    assert len(graphs) >= 4
    for graph in graphs:
        ids = {series.id for series in graph.series}
        assert len(ids) == len(graph.series), f"{graph.title}: query ids are unique"
        for series in graph.series:
            if isinstance(series, ExpressionSeries):
                # What the local cloud's metric math must know for the console's graphs to work there.
                node = metric_math.parse(series.expression)
                assert metric_math.references(node) <= ids, f"{graph.title}: {series.expression}"


def test_the_main_graphs_as_the_dashboard_defines_them() -> None:
    graphs = {graph.title: graph for graph in deployed_dashboard("local")}
    assert {"Throughput (bytes/s)", "Bytes processed", "Ingest backlog", "Executions by outcome"} <= set(
        graphs
    )
    throughput = graphs["Throughput (bytes/s)"].series
    expression = throughput[0]
    assert isinstance(expression, ExpressionSeries)
    assert (expression.expression, expression.label, expression.visible) == (
        "bytes / PERIOD(bytes)",
        "all segments",
        True,
    )
    hidden = throughput[1]
    assert isinstance(hidden, MetricSeries)
    assert (hidden.id, hidden.namespace, hidden.name, hidden.stat, hidden.visible) == (
        "bytes",
        "ResilientPipeline",
        "BytesIn",
        "Sum",
        False,
    )
    assert ("service", "worker") in hidden.dimensions
    assert [(s.label, s.axis) for s in throughput[2:]] == [
        ("per segment p50", "right"),
        ("per segment min", "right"),
    ]


def test_a_row_of_dots_repeats_the_row_above_and_ids_never_clash() -> None:
    body = {
        "widgets": [
            {"type": "text", "properties": {"markdown": "hi"}},
            {
                "type": "metric",
                "properties": {
                    "title": "Queues",
                    "metrics": [
                        ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", "a", {"id": "q1"}],
                        [".", ".", ".", "b"],
                        [{"expression": "q1 + q0"}],
                    ],
                },
            },
        ]
    }
    (graph,) = metrics.parse_dashboard(body)
    first, second, total = graph.series
    assert isinstance(second, MetricSeries)
    assert (second.namespace, second.name, second.dimensions) == (
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
        (("QueueName", "b"),),
    )
    assert (first.id, second.id) == ("q1", "q1x"), "a generated id takes none that is given"
    assert second.label == "ApproximateNumberOfMessagesVisible Average"
    assert isinstance(total, ExpressionSeries) and total.label == "q1 + q0"
    assert total.period == 300, "CloudWatch's default period"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{", "not JSON"),
        ({"nope": []}, "no `widgets` list"),
        (
            {"widgets": [{"type": "metric", "properties": {"title": "T", "metrics": [["AWS/SQS"]]}}]},
            "row 1 is not",
        ),
        (
            {"widgets": [{"type": "metric", "properties": {"title": "T", "metrics": ["x"]}}]},
            "not a non-empty list",
        ),
    ],
)
def test_a_dashboard_body_that_cannot_be_read_says_why(body: Any, message: str) -> None:
    with pytest.raises(metrics.DashboardError, match=message):
        metrics.parse_dashboard(body)


THROUGHPUT = Graph(
    title="Throughput",
    series=(
        ExpressionSeries(id="rate", expression="bytes / PERIOD(bytes)", label="all segments", period=60),
        MetricSeries(
            id="bytes",
            namespace="ResilientPipeline",
            name="BytesIn",
            dimensions=(("service", "worker"),),
            stat="Sum",
            period=60,
            label="bytes",
            visible=False,
        ),
        MetricSeries(
            id="p",
            namespace="ResilientPipeline",
            name="SegmentThroughput",
            dimensions=(),
            stat="p50",
            period=60,
            label="p50",
            axis="right",
        ),
    ),
)


def test_aws_gets_every_query_as_the_dashboard_has_it() -> None:
    queries = metrics.queries(THROUGHPUT, local=False)
    assert [q["Id"] for q in queries] == ["rate", "bytes", "p"]
    assert queries[0] == {
        "Id": "rate",
        "Expression": "bytes / PERIOD(bytes)",
        "Label": "all segments",
        "Period": 60,
        "ReturnData": True,
    }
    assert queries[1]["ReturnData"] is False
    assert queries[2]["MetricStat"]["Stat"] == "p50"


def test_the_local_cloud_gets_the_metrics_alone_each_returned_and_percentiles_as_maximum() -> None:
    queries = metrics.queries(THROUGHPUT, local=True)
    assert [q["Id"] for q in queries] == ["bytes", "p"]
    assert all(q["ReturnData"] for q in queries)
    assert queries[1]["MetricStat"]["Stat"] == "Maximum"
    assert queries[0]["MetricStat"]["Metric"]["Dimensions"] == [{"Name": "service", "Value": "worker"}]


def test_locally_the_expressions_are_evaluated_from_the_metric_series() -> None:
    fetched = {"bytes": {at(0): 6_000.0, at(1): 12_000.0}, "p": {at(1): 5.0}}
    data = metrics.graph_data(THROUGHPUT, fetched, local=True, start=at(0), end=at(2))
    assert [(line.label, line.axis, line.points) for line in data.lines] == [
        ("all segments", "left", [(at(0), 100.0), (at(1), 200.0)]),
        ("p50", "right", [(at(1), 5.0)]),
    ], "the hidden metric is not drawn"
    assert "percentiles are read as each period's maximum on the local cloud" in data.notes
    assert metrics.LOCAL_EMF_NOTE in data.notes


def test_on_aws_cloudwatchs_answer_is_drawn_as_it_is() -> None:
    fetched = {"rate": {at(0): 7.0}, "p": {}}
    data = metrics.graph_data(THROUGHPUT, fetched, local=False, start=at(0), end=at(2))
    assert [line.points for line in data.lines] == [[(at(0), 7.0)], []]
    assert data.notes == []


def test_an_expression_the_local_metric_math_cannot_read_is_named() -> None:
    graph = Graph(
        title="G",
        series=(
            ExpressionSeries(id="e", expression="RATE(m)", label="rate", period=60),
            MetricSeries(id="m", namespace="N", name="M", dimensions=(), stat="Sum", period=60, label="m"),
        ),
    )
    data = metrics.graph_data(graph, {"m": {at(0): 1.0}}, local=True, start=at(0), end=at(1))
    assert data.notes == [
        "rate: not evaluated on the local cloud (function RATE is not supported locally "
        "(supported: ABS, FILL, IF, PERIOD))"
    ]
    assert [line.points for line in data.lines] == [[], [(at(0), 1.0)]]


class PagedCloudWatch:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def get_metric_data(self, **arguments: Any) -> dict[str, Any]:
        self.calls.append(arguments)
        if "NextToken" not in arguments:
            return {
                "MetricDataResults": [
                    {"Id": "m", "Timestamps": [datetime(2026, 11, 22, 15, 1)], "Values": [2.0]}
                ],
                "NextToken": "page-2",
            }
        return {"MetricDataResults": [{"Id": "m", "Timestamps": [at(0)], "Values": [1.0]}]}


def test_every_page_of_the_answer_is_read_and_times_are_utc() -> None:
    cloudwatch = PagedCloudWatch()
    found = metrics.get_metric_data(cloudwatch, [{"Id": "m"}], start=at(0), end=at(5))
    assert found == {"m": {at(1): 2.0, at(0): 1.0}}
    assert [call.get("NextToken") for call in cloudwatch.calls] == [None, "page-2"]


def test_the_range_ends_on_the_next_whole_minute() -> None:
    start, end = metrics.time_range(datetime(2026, 11, 22, 15, 4, 31, tzinfo=UTC), hours=1)
    assert (start, end) == (at(5) - timedelta(hours=1), at(5))


# -- drawn as SVG --------------------------------------------------------------------------------------------------


def test_axis_labels_and_tops() -> None:
    assert [svg.compact(v) for v in (0, 950, 1234, 3_400_000, 0.25)] == ["0", "950", "1.23k", "3.4M", "0.25"]
    assert [svg.nice_ceiling(v) for v in (0, 0.3, 7, 12, 2400)] == [1.0, 0.5, 10.0, 20.0, 2500.0]


def test_a_graph_is_inline_svg_with_its_labels_escaped() -> None:
    data = GraphData(
        title="<b>T</b>",
        start=at(0),
        end=at(10),
        lines=[Line(label="<script>x</script>", axis="left", points=[(at(1), 5.0), (at(2), 10.0)])],
    )
    drawn = svg.line_chart(data)
    assert drawn.startswith("<svg") and "<polyline" in drawn
    assert "<script>" not in drawn and "&lt;script&gt;" in drawn
    assert "no datapoints" not in drawn
    # Control: no datapoint at all says so.
    empty = svg.line_chart(
        GraphData(title="T", start=at(0), end=at(10), lines=[Line(label="l", axis="left", points=[])])
    )
    assert "no datapoints in this range" in empty
