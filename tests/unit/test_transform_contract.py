"""The transform contract a team's code relies on: what a transform may return and raise, options checked
like the ingest checks them, the counters' invariant at every checkpoint, the byte-exact passthrough, and
user code loaded from a directory."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobcore.errors import ValidationError
from jobcore.lines import process_lines
from jobcore.options import parse_options
from jobcore.plugins import UserCodeError, load_user_code
from jobcore.segment import SegmentLimits
from jobcore.testing import run_transform
from jobcore.transforms import TRANSFORMS, RecordError, RegistrationError, transform
from tests.fakes import MemoryJobs, MemoryObjects, registered, running_job
from tests.unit.test_segment import outputs, segment


@dataclass(frozen=True)
class SplitOptions:
    field: str
    limit: int = 10
    mode: Literal["words", "chars"] = "words"
    tags: tuple[str, ...] = ()
    ratio: float | None = None


@pytest.fixture
def scratch() -> Iterator[None]:
    """Transforms registered by a test disappear after it."""
    before = dict(TRANSFORMS)
    yield
    TRANSFORMS.clear()
    TRANSFORMS.update(before)


def behaves(record: dict[str, Any]) -> Any:
    """One record in, each possible answer out, chosen by the record itself."""
    kind = record.get("kind")
    if kind == "drop":
        return None
    if kind == "fan":
        return [{"part": i, "of": record["n"]} for i in range(record["n"])]
    if kind == "empty":
        return []
    if kind == "refuse":
        raise RecordError("refused on purpose")
    if kind == "value":
        raise ValueError("bad value")
    if kind == "crash":
        raise KeyError("missing")
    if kind == "junk":
        return [{"ok": 1}, "not a record"]
    return {"kept": record.get("n")}


@pytest.mark.usefixtures("scratch")
def test_what_a_transform_returns_and_raises_becomes_output_drops_and_rejects() -> None:
    transform("behaves")(behaves)
    run = run_transform(
        "behaves",
        [
            {"n": 1},
            {"kind": "drop"},
            {"kind": "fan", "n": 3},
            {"kind": "empty"},
            {"kind": "refuse"},
            {"kind": "value"},
            {"kind": "crash"},
            {"kind": "junk"},
        ],
    )
    assert run.output == [{"kept": 1}, {"part": 0, "of": 3}, {"part": 1, "of": 3}, {"part": 2, "of": 3}]
    assert [r["error"] for r in run.rejects] == [
        "transform failed: refused on purpose",
        "transform failed: bad value",
        "transform failed: KeyError: 'missing'",
        "transform returned str, not a record (an object)",
    ]
    assert run.counts == {"in": 8, "transformed": 2, "filtered": 2, "rejected": 4, "out": 4}


@pytest.mark.usefixtures("scratch")
def test_options_arrive_as_the_dataclass() -> None:
    @transform("split", options=SplitOptions)
    def split(record: dict[str, Any], options: SplitOptions) -> list[dict[str, Any]]:
        words = str(record[options.field]).split()[: options.limit]
        return [{"word": w, "tags": list(options.tags)} for w in words]

    run = run_transform("split", [{"text": "a b c d"}], options={"field": "text", "limit": 2, "tags": ["x"]})
    assert run.output == [{"word": "a", "tags": ["x"]}, {"word": "b", "tags": ["x"]}]


@pytest.mark.usefixtures("scratch")
@pytest.mark.parametrize(
    ("options", "field", "rule"),
    [
        ({}, "transform_options.field", "required by transform 'split'"),
        (
            {"field": "t", "colour": 1},
            "transform_options.colour",
            "unknown option of transform 'split' (allowed: field, limit, mode, tags, ratio)",
        ),
        ({"field": 3}, "transform_options.field", "must be a string, not a number"),
        ({"field": "t", "limit": True}, "transform_options.limit", "must be an integer, not a boolean"),
        ({"field": "t", "limit": 1.5}, "transform_options.limit", "must be an integer, not a number"),
        ({"field": "t", "mode": "lines"}, "transform_options.mode", "must be one of 'words', 'chars'"),
        ({"field": "t", "tags": "x"}, "transform_options.tags", "must be a list, not a string"),
        ({"field": "t", "tags": ["x", 2]}, "transform_options.tags[1]", "must be a string, not a number"),
        ({"field": "t", "ratio": "high"}, "transform_options.ratio", "must be a number, not a string"),
        ([1], "transform_options", "must be a JSON object, not a list"),
    ],
)
def test_bad_options_are_refused_naming_the_option_and_the_rule(options: Any, field: str, rule: str) -> None:
    transform("split", options=SplitOptions)(lambda record, options: record)
    with pytest.raises(ValidationError) as raised:
        parse_options(TRANSFORMS["split"], options)
    assert (raised.value.field, raised.value.rule) == (field, rule)


def test_options_given_to_a_transform_that_takes_none_are_refused() -> None:
    with pytest.raises(ValidationError, match="transform 'normalize' takes no options"):
        parse_options(TRANSFORMS["normalize"], {"x": 1})


@pytest.mark.usefixtures("scratch")
def test_a_name_registered_twice_names_both_modules() -> None:
    with pytest.raises(
        RegistrationError, match=r"'normalize' is registered twice: in jobcore\.transforms and in"
    ):
        transform("normalize")(lambda record: record)


def test_passthrough_keeps_each_valid_lines_bytes_and_compact_rewrites_them() -> None:
    line = b'{"a": 1, "a": 2,  "x": 1.00000000000000000001, "u": "\\u00e9"}'
    kept = process_lines(line + b"\r\n", start_offset=0, **registered("passthrough"))
    assert kept.output == [line]
    rewritten = process_lines(line + b"\n", start_offset=0, **registered("compact"))
    assert rewritten.output == ['{"a":2,"x":1.0,"u":"é"}'.encode()]
    refused = process_lines(b"[1]\n", start_offset=0, **registered("passthrough"))
    assert refused.records_rejected == 1, "passthrough still writes only valid JSON objects"


# --- the counters' invariant, at every checkpoint, whatever the mix and the cuts -----------------------------

record_st = st.one_of(
    st.integers(0, 99).map(lambda n: {"n": n}),
    st.just({"kind": "drop"}),
    st.integers(0, 4).map(lambda n: {"kind": "fan", "n": n}),
    st.sampled_from([{"kind": "refuse"}, {"kind": "value"}, {"kind": "crash"}, {"kind": "junk"}]),
)
line_st = st.one_of(record_st.map(json.dumps), st.sampled_from(["", "not json", "[1]", "  "]))


@pytest.mark.usefixtures("scratch")
@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    lines=st.lists(line_st, max_size=40),
    chunk_bytes=st.integers(min_value=1, max_value=120),
    cuts=st.lists(st.integers(min_value=1, max_value=3), min_size=1, max_size=10),
)
def test_records_in_equals_transformed_plus_filtered_plus_rejected_at_every_checkpoint(
    lines: list[str], chunk_bytes: int, cuts: list[int]
) -> None:
    if "behaves" not in TRANSFORMS:
        transform("behaves")(behaves)
    data = "".join(line + "\n" for line in lines).encode()
    jobs, objects = MemoryJobs(), MemoryObjects()
    objects.put("data", "in/job-1.jsonl", data)
    jobs.create(running_job(chunk_bytes=chunk_bytes, transform="behaves"))
    done, invocations = False, 0
    while not done:
        done = segment(
            jobs, objects, limits=SegmentLimits(safety_margin_ms=1, max_chunks=cuts[invocations % len(cuts)])
        ).done
        invocations += 1
        record = jobs.get("job-1")
        assert record is not None
        assert (
            record.records_in
            == record.records_transformed + record.records_filtered + record.records_rejected
        )
        assert invocations < 5_000
    whole = process_lines(data, start_offset=0, **registered("behaves"))
    assert outputs(objects) == (
        b"".join(line + b"\n" for line in whole.output),
        b"".join(line + b"\n" for line in whole.rejects),
    )
    assert (record.records_out, record.records_filtered) == (whole.records_out, whole.records_filtered)


# --- user code from a directory ------------------------------------------------------------------------------


@pytest.mark.usefixtures("scratch")
def test_every_module_and_package_in_the_directory_is_loaded(tmp_path: Path) -> None:
    (tmp_path / "masks.py").write_text(
        textwrap.dedent(
            """
            from jobcore.transforms import transform

            @transform("tc_mask")
            def mask(record):
                return {**record, "secret": "***"}
            """
        )
    )
    package = tmp_path / "tc_enrich"
    package.mkdir()
    (package / "__init__.py").write_text("from . import impl\n")
    (package / "impl.py").write_text(
        "from jobcore.transforms import transform\n\n@transform('tc_enrich')\ndef enrich(record):\n    return [record, record]\n"
    )
    (tmp_path / "_private.py").write_text("raise RuntimeError('not loaded')\n")
    (tmp_path / "notes.txt").write_text("not code\n")
    assert load_user_code(tmp_path) == ["masks", "tc_enrich"]
    assert run_transform("tc_mask", [{"secret": "x", "a": 1}]).output == [{"secret": "***", "a": 1}]
    assert run_transform("tc_enrich", [{"a": 1}]).counts["out"] == 2


@pytest.mark.usefixtures("scratch")
def test_a_module_that_does_not_import_is_named_with_its_error(tmp_path: Path) -> None:
    (tmp_path / "tc_broken.py").write_text("import this_module_does_not_exist_anywhere\n")
    with pytest.raises(UserCodeError, match=r"tc_broken\.py: ModuleNotFoundError: No module named"):
        load_user_code(tmp_path)


def test_a_missing_directory_loads_nothing(tmp_path: Path) -> None:
    assert load_user_code(tmp_path / "absent") == []
