"""Powertools Logger, Metrics and Tracer, shared by the handlers; jobcore's stdlib loggers log through them."""

from __future__ import annotations

import logging
import os
import resource
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers

from pipeline_contract import METRICS_NAMESPACE

logger = Logger()
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", METRICS_NAMESPACE))
# X-Ray: the handler and every boto3 call as subsegments. Off where POWERTOOLS_TRACE_DISABLED says so (the
# local cloud) and outside Lambda (tests).
tracer = Tracer()
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
