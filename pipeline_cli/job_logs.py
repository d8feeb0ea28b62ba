"""A job's log lines, for `pipeline logs`: the functions' structured log lines that carry the job's id, from
CloudWatch Logs on AWS (a JSON filter pattern on each function's log group), from the local cloud's log
files locally.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline_cli.aws import Pipeline
from pipeline_cli.local_home import local_home
from pipeline_contract import stack_name


@dataclass(frozen=True)
class LogLine:
    timestamp: str
    function: str
    record: Mapping[str, Any]

    def text(self) -> str:
        fields = {
            k: v for k, v in self.record.items() if k not in ("timestamp", "level", "message", "job_id")
        }
        extra = (
            "  " + " ".join(f"{k}={json.dumps(v, default=str)}" for k, v in fields.items()) if fields else ""
        )
        return f"{self.timestamp}  {self.function}  {self.record.get('level', '-'):<7} {self.record.get('message', '')}{extra}"


def job_functions(pipeline: Pipeline) -> dict[str, str]:
    """The Pipeline stack's functions: physical name -> logical id (e.g. `Worker...`)."""
    cloudformation = pipeline.client("cloudformation")
    resources = cloudformation.describe_stack_resources(StackName=stack_name(pipeline.env, "Pipeline"))
    return {
        r["PhysicalResourceId"]: r["LogicalResourceId"]
        for r in resources["StackResources"]
        if r.get("ResourceType") == "AWS::Lambda::Function"  # moto leaves it out on some resource types
    }


def parse_line(line: str, job_id: str) -> Mapping[str, Any] | None:
    """A structured log line (Powertools JSON) of this job, or None. The worker's metrics (EMF, with an
    `_aws` key) carry the job's keys too, as properties: they are metrics, not lines to show."""
    start = line.find("{")
    if start < 0:
        return None
    try:
        record = json.loads(line[start:])
    except ValueError:
        return None
    if not isinstance(record, dict) or "_aws" in record:
        return None
    return record if record.get("job_id") == job_id else None


def local_lines(functions: Mapping[str, str], job_id: str) -> list[LogLine]:
    lines = []
    for name in functions:
        path = local_home() / "logs" / f"{name}.log"
        if not path.is_file():
            continue
        with path.open(encoding="utf-8", errors="replace") as log:
            for raw in log:
                record = parse_line(raw, job_id)
                if record is not None:
                    lines.append(LogLine(str(record.get("timestamp", "")), name, record))
    return lines


def cloudwatch_lines(pipeline: Pipeline, functions: Mapping[str, str], job_id: str) -> list[LogLine]:
    lambda_ = pipeline.client("lambda")
    logs = pipeline.client("logs")
    lines = []
    for name in functions:
        group = lambda_.get_function_configuration(FunctionName=name).get("LoggingConfig", {}).get("LogGroup")
        paginator = logs.get_paginator("filter_log_events")
        pages = paginator.paginate(
            logGroupName=group or f"/aws/lambda/{name}", filterPattern=f'{{ $.job_id = "{job_id}" }}'
        )
        try:
            for page in pages:
                for event in page.get("events", []):
                    record = parse_line(event["message"], job_id)
                    if record is not None:
                        lines.append(LogLine(str(record.get("timestamp", "")), name, record))
        except logs.exceptions.ResourceNotFoundException:
            continue  # a function that never ran has no log group yet
    return lines
