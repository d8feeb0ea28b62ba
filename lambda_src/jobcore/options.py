"""A job's `transform_options` (a JSON object) checked against its transform's options dataclass.

The ingest calls `parse_options` before a job starts, so that a bad option is a REJECTED request naming
the option and the rule, not thousands of rejected records; the worker builds the same dataclass from the
options the record keeps. Supported field types: str, int, float, bool, None-able (`X | None`), `Literal`,
`list[X]`, `tuple[X, ...]` and `dict[str, X]` of those; a field without a default is required.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal

from jobcore.errors import ValidationError
from jobcore.transforms import RegisteredTransform

FIELD = "transform_options"


def parse_options(transform: RegisteredTransform, raw: Any) -> Any:
    """The options dataclass instance for `raw` (None when the transform takes no options and got none)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ValidationError(FIELD, f"must be a JSON object, not {_kind(raw)}")
    if transform.options is None:
        if raw:
            raise ValidationError(FIELD, f"transform {transform.name!r} takes no options")
        return None
    cls = transform.options
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ValidationError(
            f"{FIELD}.{unknown[0]}",
            f"unknown option of transform {transform.name!r} (allowed: {', '.join(fields) or 'none'})",
        )
    values: dict[str, Any] = {}
    for name, field in fields.items():
        if name not in raw:
            required = field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
            if required:
                raise ValidationError(f"{FIELD}.{name}", f"required by transform {transform.name!r}")
            continue
        values[name] = _check(f"{FIELD}.{name}", raw[name], hints[name])
    try:
        return cls(**values)
    except (TypeError, ValueError) as error:  # the dataclass's own __post_init__ checks
        raise ValidationError(FIELD, str(error)) from None


def options_document(options: Any) -> dict[str, Any]:
    """The dataclass back as the JSON object it came from (the record keeps the job's options)."""
    return dataclasses.asdict(options) if options is not None else {}


def _kind(value: Any) -> str:
    names = {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "an object",
    }
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _check(path: str, value: Any, hint: Any) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        kinds = [a for a in args if a is not type(None)]
        errors = []
        for kind in kinds:
            try:
                return _check(path, value, kind)
            except ValidationError as error:
                errors.append(error.rule)
        raise ValidationError(path, " or ".join(errors))
    if origin is Literal:
        if value not in args:
            raise ValidationError(path, f"must be one of {', '.join(repr(a) for a in args)}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise ValidationError(path, f"must be a list, not {_kind(value)}")
        item = args[0] if args else Any
        items = [_check(f"{path}[{index}]", element, item) for index, element in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ValidationError(path, f"must be an object, not {_kind(value)}")
        item = args[1] if len(args) == 2 else Any
        return {str(k): _check(f"{path}.{k}", v, item) for k, v in value.items()}
    return _scalar(path, value, hint)


def _scalar(path: str, value: Any, hint: Any) -> Any:
    if hint is Any:
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ValidationError(path, f"must be true or false, not {_kind(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError(path, f"must be an integer, not {_kind(value)}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValidationError(path, f"must be a number, not {_kind(value)}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ValidationError(path, f"must be a string, not {_kind(value)}")
        return value
    raise ValidationError(path, f"has a type options cannot hold: {hint!r}")
