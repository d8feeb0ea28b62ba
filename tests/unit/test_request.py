"""The job request as the ingest parses it (jobcore.request): every field the contract lists is accepted,
and every broken rule names its field."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from jobcore.errors import ValidationError
from jobcore.model import S3Location
from jobcore.request import RequestRules, parse_request
from jobcore.transforms import TRANSFORMS, transform
from pipeline_contract import REQUEST_FIELDS

RULES = RequestRules(
    environment="local",
    input_locations=(S3Location("data", "in/"),),
    max_reject_ratio=0.5,
    max_shards=8,
)


def parse(**fields: Any) -> Any:
    body = {"job_id": "job-1", "input": "s3://data/in/x.jsonl", **fields}
    return parse_request(json.dumps(body), default_job_id="message-1", rules=RULES)


@dataclass(frozen=True)
class LabelOptions:
    field: str


@pytest.fixture
def label() -> Iterator[None]:
    """A transform with options, registered for one test."""
    saved = dict(TRANSFORMS)
    transform("label", options=LabelOptions)(lambda record, options: record)
    yield
    TRANSFORMS.clear()
    TRANSFORMS.update(saved)


@pytest.mark.usefixtures("label")
def test_every_field_of_the_contract_is_accepted() -> None:
    request = parse(
        transform="label",
        transform_options={"field": "text"},
        chunk_bytes=65_536,
        max_reject_ratio=0.1,
        restart=False,
        upgrade=False,
        shards=4,
    )
    assert set(REQUEST_FIELDS) == {
        "job_id", "input", "transform", "transform_options", "chunk_bytes", "max_reject_ratio", "restart",
        "upgrade", "shards", "compression", "output_compression", "input_version", "input_etag",
    }  # fmt: skip
    assert (request.transform, request.transform_options) == ("label", '{"field":"text"}')
    assert request.shards == 4


def test_shards_default_to_none_and_the_environment_decides() -> None:
    assert parse().shards is None


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        (0, "0 must be within 1..8 (this environment's maximum)"),
        (9, "9 must be within 1..8 (this environment's maximum)"),
        (2.0, "must be an integer"),
        (True, "must be an integer"),
        ("4", "must be an integer"),
    ],
)
def test_shards_out_of_range_name_the_field_and_the_maximum(value: Any, rule: str) -> None:
    with pytest.raises(ValidationError) as raised:
        parse(shards=value)
    assert (raised.value.field, raised.value.rule) == ("shards", rule)


def test_an_unknown_field_is_named_with_the_allowed_ones() -> None:
    with pytest.raises(ValidationError) as raised:
        parse(colour="red")
    assert raised.value.field == "colour"
    assert raised.value.rule.startswith("unknown field (allowed: job_id, input, transform, transform_options")


def test_a_redrive_chooses_restart_or_upgrade_not_both() -> None:
    assert (parse(upgrade=True).upgrade, parse(upgrade=True).restart) == (True, False)
    assert parse().upgrade is False
    with pytest.raises(ValidationError, match=r"^upgrade: cannot be combined with restart"):
        parse(restart=True, upgrade=True)
    with pytest.raises(ValidationError, match=r"^upgrade: must be true or false$"):
        parse(upgrade="yes")
