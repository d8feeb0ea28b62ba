"""Masking personal data before it leaves the pipeline."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from jobcore.transforms import RecordError, transform

_EMAIL = re.compile(r"^(?P<user>[^@\s]+)@(?P<domain>[^@\s]+\.[^@\s]+)$")


@dataclass(frozen=True)
class MaskOptions:
    # Which fields to mask; emails keep their domain when `keep_domain` is true.
    fields: tuple[str, ...] = ("email", "phone")
    keep_domain: bool = True
    mask: str = "***"
    # A record without any of the fields is a reject (the input is not what the job expects).
    require_one: bool = False

    def __post_init__(self) -> None:
        if not self.fields:
            raise ValueError("fields must name at least one field")


@transform("mask_pii", options=MaskOptions)
def mask_pii(record: dict[str, Any], options: MaskOptions) -> dict[str, Any]:
    """The record with each named field masked; an email keeps its domain (`***@example.com`)."""
    present = [name for name in options.fields if name in record]
    if options.require_one and not present:
        raise RecordError(f"none of the fields {', '.join(options.fields)} is present")
    masked = dict(record)
    for name in present:
        value = record[name]
        if value is None:
            continue
        if not isinstance(value, str):
            raise RecordError(f"field {name!r} is {type(value).__name__}, not a string")
        match = _EMAIL.match(value)
        if match and options.keep_domain:
            masked[name] = f"{options.mask}@{match.group('domain')}"
        else:
            masked[name] = options.mask
    return masked
