"""The transform registry: a transform turns one input record (a JSON object) into one output record.

To add a transform, write a function here and decorate it with `@transform("name")`: the ingest accepts
the name at once (it validates requests against this registry) and the worker runs it. A transform raises
`RecordError` (or ValueError/TypeError) for a record it cannot handle; that record goes to the rejects
part with the reason and the job goes on.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Record = dict[str, Any]
Transform = Callable[[Record], Record]

TRANSFORMS: dict[str, Transform] = {}


class RecordError(ValueError):
    """One record cannot be transformed; the message is the reason written to the rejects part."""


def transform(name: str) -> Callable[[Transform], Transform]:
    def register(fn: Transform) -> Transform:
        if name in TRANSFORMS:
            raise ValueError(f"transform {name!r} is registered twice")
        TRANSFORMS[name] = fn
        return fn

    return register


_NON_WORD = re.compile(r"[^0-9a-zA-Z]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def _snake(key: str) -> str:
    return _NON_WORD.sub("_", _CAMEL.sub("_", key.strip())).strip("_").lower()


def _normalize_value(value: Any) -> Any:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, dict):
        return _normalize_object(value)
    if isinstance(value, list):
        return [_normalize_value(item) for item in value]
    return value


def _normalize_object(record: Record) -> Record:
    out: Record = {}
    for key, value in record.items():
        name = _snake(key)
        if not name:
            raise RecordError(f"key {key!r} has no letters or digits")
        if name in out:
            raise RecordError(f"keys collide after normalization: {name!r}")
        out[name] = _normalize_value(value)
    return out


@transform("normalize")
def normalize(record: Record) -> Record:
    """Keys to snake_case (`First Name`, `firstName` -> `first_name`), strings stripped, recursively.
    Two keys that normalize to the same name make the record a reject rather than silently losing one."""
    return _normalize_object(record)


@transform("passthrough")
def passthrough(record: Record) -> Record:
    """The record unchanged (re-serialized compactly)."""
    return record


@transform("flatten")
def flatten(record: Record) -> Record:
    """Nested objects become dotted keys (`{"a": {"b": 1}}` -> `{"a.b": 1}`), ready for a columnar
    store. Lists are kept as values. A dotted key that collides with a flattened one is a reject."""
    out: Record = {}
    _flatten_into(out, "", record)
    return out


def _flatten_into(out: Record, prefix: str, obj: Record) -> None:
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            _flatten_into(out, f"{name}.", value)
        elif name in out:
            raise RecordError(f"key {name!r} appears twice once flattened")
        else:
            out[name] = value
