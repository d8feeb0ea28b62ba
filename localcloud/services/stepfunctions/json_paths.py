"""Each JSONPath of a definition parsed once, instead of at every evaluation.

moto 5.2.5's interpreter hands every path it evaluates (`"job_id.$": "$.job_id"`, an InputPath, a ResultPath,
a Choice's Variable) to jsonpath_ng's `parse`, which builds a new PLY lexer and parser each time: in a burst of
small jobs that was 8% of the server's time. A parsed path is an immutable expression: `find` and
`update_or_create` read it and change only the data they are given, so one parse serves every evaluation
of the same text. Two executions that miss the same text at the same moment may both parse it (lru_cache
does not hold a lock while it calls), either result serving. A path that does not parse is not cached and
fails at every evaluation, as before.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jsonpath_ng
import jsonpath_ng.ext
from moto.stepfunctions.parser.asl.component.common.path import result_path
from moto.stepfunctions.parser.asl.utils import json_path

Undo = Callable[[], None]
Parse = Callable[[str], Any]

# Distinct path texts held at once: a definition has tens; tests make many definitions.
MAX_PATHS = 4096


def install(*, extended: Parse = jsonpath_ng.ext.parse, plain: Parse = jsonpath_ng.parse) -> Undo:
    """moto's two parses, cached: the extended syntax (`extract_json`: every path read) and the plain one
    (ResultPath, which writes); returns the undo."""
    original_extended, original_plain = json_path.parse, result_path.parse
    json_path.parse = functools.lru_cache(maxsize=MAX_PATHS)(extended)
    result_path.parse = functools.lru_cache(maxsize=MAX_PATHS)(plain)

    def undo() -> None:
        json_path.parse = original_extended
        result_path.parse = original_plain

    return undo
