"""Powertools Logger and Metrics, shared by both handlers; jobcore's stdlib loggers log through them."""

from __future__ import annotations

import logging
import os
import resource

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers

from pipeline_contract import METRICS_NAMESPACE

logger = Logger()
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", METRICS_NAMESPACE))
# jobcore logs with the standard library (it must not depend on Powertools): give its loggers the same
# JSON format and appended keys (job_id, cursor, ...). Powertools configures only top-level loggers that
# exist already, and jobcore's modules may be imported after this one: create their parent first.
logging.getLogger("jobcore")
copy_config_to_registered_loggers(source_logger=logger, include={"jobcore"})


def peak_memory_mb() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
