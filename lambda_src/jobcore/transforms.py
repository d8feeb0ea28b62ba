"""The transform registry: a transform turns one input record (a JSON object) into output records.

A transform is a function of one record, registered with `@transform("name")`; the built-ins below, and a
team's own code deployed with `-c userCode=DIR` (jobcore.plugins), register the same way. It returns
- a dict: one output record;
- None: the record is dropped (counted in `records_filtered`);
- a list of dicts: several output records, in order (fan-out).
A `RecordError`, `ValueError` or `TypeError` makes the record a reject with its message as the reason; any
other exception is a reject too, its type and message as the reason: one record never fails a job (the
reject-ratio limit stops a job whose code fails on everything).

`@transform("name", options=SomeFrozenDataclass)` receives the job's `transform_options` as that dataclass,
second argument; the ingest validates them against it (jobcore.options) before the job starts.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Record = dict[str, Any]
Output = Record | list[Record] | None
# What the chunk loop calls: one record in, output out (options already bound).
Transform = Callable[[Record], Output]


class RecordError(ValueError):
    """One record cannot be transformed; the message is the reason written to the rejects part."""


class RegistrationError(ValueError):
    """A transform name registered twice, or options that are not a dataclass."""


@dataclass(frozen=True)
class RegisteredTransform:
    name: str
    fn: Callable[..., Output]
    # A frozen dataclass the job's `transform_options` become; None: the transform takes none.
    options: type | None = None
    # The line's own bytes are the output (valid JSON objects only): nothing is parsed and re-written.
    keeps_bytes: bool = False

    @property
    def module(self) -> str:
        return str(getattr(self.fn, "__module__", "?"))

    def bind(self, options: Any = None) -> Transform:
        """The function of one record the chunk loop calls, with the job's (validated) options."""
        if self.options is None:
            fn: Transform = self.fn
            return fn
        bound = options if options is not None else self.options()
        return lambda record: self.fn(record, bound)


TRANSFORMS: dict[str, RegisteredTransform] = {}


def built_ins() -> dict[str, RegisteredTransform]:
    """The transforms this module ships, without any user code that joined the registry."""
    return {name: entry for name, entry in TRANSFORMS.items() if entry.module == __name__}


def transform(
    name: str, *, options: type | None = None, keeps_bytes: bool = False
) -> Callable[[Callable[..., Output]], Callable[..., Output]]:
    if options is not None and not dataclasses.is_dataclass(options):
        raise RegistrationError(f"transform {name!r}: options must be a dataclass, not {options!r}")

    def register(fn: Callable[..., Output]) -> Callable[..., Output]:
        if name in TRANSFORMS:
            first = TRANSFORMS[name].module
            raise RegistrationError(
                f"transform {name!r} is registered twice: in {first} and in {getattr(fn, '__module__', '?')}"
            )
        TRANSFORMS[name] = RegisteredTransform(name=name, fn=fn, options=options, keeps_bytes=keeps_bytes)
        return fn

    return register


_NON_WORD = re.compile(r"[^0-9a-zA-Z]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
# normalize's key conversions, each worked out once: an input's records repeat the same keys, and the two
# regular expressions per key were a third of normalize's time (profile in benchmarks/README.md). Bounded,
# since keys are data: past the limit a new key is converted every time, as before, and not kept.
_SNAKE_CACHE: dict[str, str] = {}
_SNAKE_CACHE_MAX = 10_000


def _snake(key: str) -> str:
    name = _SNAKE_CACHE.get(key) if type(key) is str else None
    if name is None:
        name = _NON_WORD.sub("_", _CAMEL.sub("_", key.strip())).strip("_").lower()
        if type(key) is str and len(_SNAKE_CACHE) < _SNAKE_CACHE_MAX:
            _SNAKE_CACHE[key] = name
    return name


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
    known = _SNAKE_CACHE.get  # the cache looked up here, not in a call to _snake for each key
    for key, value in record.items():
        name = known(key)
        if name is None:
            name = _snake(key)
        if not name:
            raise RecordError(f"key {key!r} has no letters or digits")
        if name in out:
            raise RecordError(f"keys collide after normalization: {name!r}")
        # _normalize_value inlined: one call fewer for each value of each record.
        if isinstance(value, str):
            out[name] = value.strip()
        elif isinstance(value, dict):
            out[name] = _normalize_object(value)
        elif isinstance(value, list):
            out[name] = [_normalize_value(item) for item in value]
        else:
            out[name] = value
    return out


@transform("normalize")
def normalize(record: Record) -> Record:
    """Keys to snake_case (`First Name`, `firstName` -> `first_name`), strings stripped, recursively.
    Two keys that normalize to the same name make the record a reject rather than silently losing one."""
    return _normalize_object(record)


@transform("passthrough", keeps_bytes=True)
def passthrough(record: Record) -> Record:
    """Each valid line exactly as it was, byte for byte (duplicate keys, number spellings and all): the
    chunk loop writes the line itself; this function is what a caller of the registry sees."""
    return record


@transform("compact")
def compact(record: Record) -> Record:
    """The record re-serialized compactly (no spaces; keys in their order; a duplicate key keeps its last
    value, as JSON parsers do)."""
    return record


@transform("flatten")
def flatten(record: Record) -> Record:
    """Nested objects become dotted keys (`{"a": {"b": 1}}` -> `{"a.b": 1}`), ready for a columnar
    store. Lists are kept as values. A dotted key that collides with a flattened one is a reject."""
    out: Record = {}
    _flatten_into(out, "", record)
    return out


def _flatten_into(out: Record, prefix: str, obj: Record) -> None:
    # The dotted names are built for each record: caching them (per prefix and key) measured no faster,
    # since the loop's own work per key is most of flatten's time (benchmarks/README.md: "Codec").
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            _flatten_into(out, f"{name}.", value)
        elif name in out:
            raise RecordError(f"key {name!r} appears twice once flattened")
        else:
            out[name] = value


# The built-ins the chunk loop writes with its fast encoder (jobcore.lines): pure functions of the record that
# return one object holding only what the JSON decoder makes (str keys, lists, str, int, float, bool, None)
# or raise, so that running one again on the same record gives the same answer. A user transform may return
# any object (which the standard library's encoder writes or refuses) and need not be pure: it runs once
# for each record, and its output is written by the standard library's encoder.
PURE_JSON_TRANSFORMS: frozenset[Callable[..., Output]] = frozenset({compact, normalize, flatten})
