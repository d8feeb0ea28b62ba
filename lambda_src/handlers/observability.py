"""Powertools Logger, Metrics and Tracer, shared by the handlers; jobcore's stdlib loggers log through them."""

from __future__ import annotations

import logging
import os
import resource
from typing import Any, Protocol

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers

from pipeline_contract import METRICS_NAMESPACE

logger = Logger()
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", METRICS_NAMESPACE))


class HandlerTracer(Protocol):
    """What the handlers use of Powertools' Tracer."""

    def capture_lambda_handler(
        self, lambda_handler: Any = None, capture_response: bool | None = None
    ) -> Any: ...

    def put_annotation(self, key: str, value: Any) -> Any: ...


class NoTracer:
    """The Tracer where tracing is switched off (config `powertools_tracer`): nothing recorded, and nothing
    of the X-Ray SDK imported. Powertools' own Tracer imports `aws_xray_sdk.core` when it is constructed,
    even disabled (about 300 ms of every cold start, more than everything else the handlers import)."""

    def capture_lambda_handler(self, lambda_handler: Any = None, capture_response: bool | None = None) -> Any:
        if lambda_handler is None:
            return lambda handler: handler  # used as @tracer.capture_lambda_handler(...)
        return lambda_handler

    def put_annotation(self, key: str, value: Any) -> Any:
        return None


def _tracer() -> HandlerTracer:
    # X-Ray: the handler and every boto3 call as subsegments, where the environment traces (the stack sets
    # POWERTOOLS_TRACE_DISABLED from config `powertools_tracer`; Powertools also disables itself outside
    # Lambda, in tests).
    if os.environ.get("POWERTOOLS_TRACE_DISABLED", "").lower() in ("true", "1"):
        return NoTracer()
    from aws_lambda_powertools import Tracer  # noqa: PLC0415 - only where tracing is on: see NoTracer

    tracer: HandlerTracer = Tracer()
    return tracer


tracer = _tracer()
# jobcore logs with the standard library (it must not depend on Powertools): give its loggers the same
# JSON format and appended keys (job_id, cursor, ...). Powertools configures only top-level loggers that
# exist already, and jobcore's modules may be imported after this one: create their parent first.
logging.getLogger("jobcore")
copy_config_to_registered_loggers(source_logger=logger, include={"jobcore"})


def per_function(context: Any) -> None:
    """This invocation's metrics by function as well as by service: environments sharing an account keep
    their own series. Never by job: a job_id dimension would make a metric per job (and pay for each); the
    job's keys go into the metrics document as properties instead (`metrics.add_metadata`)."""
    metrics.add_dimension(name="FunctionName", value=str(context.function_name))


def peak_memory_mb() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
