"""No line can fail a job: whatever a line holds, it ends as output or as a reject with its reason.

The hostile kinds come from the JSON parsing test suite (github.com/nst/JSONTestSuite, `test_parsing/`):
n_structure_100000_opening_arrays, i_structure_500_nested_arrays, i_string_lone_second_surrogate,
i_string_UTF8_surrogate_U+D800, i_string_overlong_sequence_2_bytes, i_number_huge_exp,
i_number_real_pos_overflow, i_number_too_big_pos_int, n_string_unescaped_ctrl_char; wrapped in an object
where the suite has a bare array, since a record must be an object.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobcore.lines import DEFAULT_MAX_DEPTH, REJECT_PREVIEW_BYTES, LineLimits, join_lines, process_lines
from jobcore.segment import SegmentLimits
from jobcore.transforms import built_ins
from tests.fakes import MemoryJobs, MemoryObjects, registered, running_job
from tests.unit.test_segment import outputs, segment, setup

GOOD = b'{"ok": 1}\n'


def run(line: bytes, transform: str = "normalize") -> tuple[list[object], list[dict[str, object]], int]:
    """The line between two good ones: (outputs, rejects, records_blank)."""
    result = process_lines(GOOD + line + b"\n" + GOOD, start_offset=0, **registered(transform))
    return (
        [json.loads(out) for out in result.output],
        [json.loads(reject) for reject in result.rejects],
        result.records_blank,
    )


HOSTILE = [
    ("100000 opening arrays", b"[" * 100_000, "nested deeper than 128 levels"),
    ("100000 opening objects", b'{"a":' * 100_000, "nested deeper than 128 levels"),
    ("500 nested arrays", b'{"v":' + b"[" * 500 + b"]" * 500 + b"}", "nested deeper than 128 levels"),
    ("lone second surrogate", b'{"v":"\\uDFAA"}', "lone surrogate U+DFAA"),
    ("lone first surrogate, nested", b'{"k":{"x":"\\uD800"}}', "lone surrogate U+D800"),
    ("UTF-8 encoded surrogate", b'{"v":"\xed\xa0\x80"}', "not valid UTF-8"),
    ("overlong UTF-8", b'{"v":"\xc0\xaf"}', "not valid UTF-8"),
    ("huge exponent", b'{"v":0.4e00669999999999999999999999999999999999999999999}', "not writable as JSON"),
    ("real overflow", b'{"v":123123e100000}', "not writable as JSON"),
    ("integer of 5000 digits", b'{"v":' + b"1" * 5000 + b"}", "not JSON"),
    ("unescaped control character", b'{"v":"a\x00a"}', "not JSON: Invalid control character"),
    ("vertical tab alone", b"\x0b", "not JSON"),
    ("form feed alone", b"\x0c", "not JSON"),
    ("unit separator alone", b"\x1f", "not JSON"),
    ("NUL alone", b"\x00", "not JSON"),
]


@pytest.mark.parametrize(("line", "reason"), [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_a_hostile_line_is_one_reject_and_the_job_goes_on(line: bytes, reason: str) -> None:
    out, rejects, blank = run(line)
    assert out == [{"ok": 1}, {"ok": 1}]
    (reject,) = rejects
    assert reject["offset"] == len(GOOD)
    assert reason in str(reject["error"])
    assert blank == 0


def test_nesting_at_the_limit_is_accepted_one_more_is_rejected() -> None:
    at_limit = b"[" * (DEFAULT_MAX_DEPTH - 1) + b"]" * (DEFAULT_MAX_DEPTH - 1)
    out, rejects, _ = run(b'{"v":' + at_limit + b"}")
    assert rejects == [] and len(out) == 3
    over = b"[" * DEFAULT_MAX_DEPTH + b"]" * DEFAULT_MAX_DEPTH
    out, rejects, _ = run(b'{"v":' + over + b"}")
    assert len(out) == 2 and rejects[0]["error"] == f"nested deeper than {DEFAULT_MAX_DEPTH} levels"


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    out, rejects, _ = run(json.dumps({"v": "[" * 1000 + '\\"{' * 300}).encode())
    assert rejects == [] and len(out) == 3


@pytest.mark.parametrize("transform", sorted(built_ins()))
def test_every_shipped_transform_survives_the_hostile_lines(transform: str) -> None:
    data = b"".join(GOOD + line + b"\n" for _, line, _ in HOSTILE)
    result = process_lines(data, start_offset=0, **registered(transform))
    # A byte-exact transform writes a valid line as it was: a lone surrogate escape or an out-of-range
    # number is valid JSON text, only not writable once parsed (the re-serializing transforms reject it).
    kept = sum(1 for _, _, reason in HOSTILE if reason.startswith(("lone surrogate", "not writable")))
    kept = kept if built_ins()[transform].keeps_bytes else 0
    assert (result.records_out, result.records_rejected) == (len(HOSTILE) + kept, len(HOSTILE) - kept)
    assert result.records_in == result.records_transformed + result.records_filtered + result.records_rejected


def test_only_json_whitespace_makes_a_blank_line_and_blanks_are_counted() -> None:
    data = b" \t\r\n\r\n\n   \n" + GOOD + b"\t\n"
    result = process_lines(data, start_offset=0, **registered("passthrough"))
    assert (result.records_blank, result.records_in) == (5, 1)


def test_input_lines_equal_blank_plus_records() -> None:
    lines = [b"", b"x", b" ", GOOD.strip(), b"\x0b", b"\r", b"[1]", GOOD.strip()]
    data = b"\n".join(lines)  # no newline after the last line: it is still a line
    result = process_lines(data, start_offset=0, **registered("passthrough"))
    assert result.records_blank + result.records_in == len(lines)
    assert (result.records_blank, result.records_out, result.records_rejected) == (3, 2, 3)


def test_an_oversized_line_is_rejected_with_its_length_and_a_preview() -> None:
    limits = LineLimits(max_line_bytes=4096)
    long_line = b'{"v":"' + b"x" * 10_000 + b'"}'
    result = process_lines(
        GOOD + long_line + b"\n" + GOOD, start_offset=0, **registered("passthrough"), limits=limits
    )
    assert result.records_out == 2
    (reject,) = [json.loads(r) for r in result.rejects]
    assert reject["offset"] == len(GOOD)
    assert reject["error"].startswith(f"line is {len(long_line)} bytes, over the maximum of 4096")
    assert reject["line"] == long_line[:REJECT_PREVIEW_BYTES].decode()


# --- long lines in the worker: constant memory, progress, and the same result however it is cut --------


def test_a_line_longer_than_the_limit_is_skipped_range_by_range_with_bounded_memory() -> None:
    limits = LineLimits(max_line_bytes=1000)
    long_line = b'{"v":"' + b"y" * 50_000 + b'"}'
    data = GOOD * 3 + long_line + b"\n" + GOOD * 3
    jobs, objects = setup(data, chunk_bytes=256)
    largest_read = 0

    def watch(start: int, end: int) -> None:
        nonlocal largest_read
        largest_read = max(largest_read, end - start)

    objects.on_read = watch
    done = False
    invocations = 0
    while not done:  # one chunk per invocation: the skip must survive invocation boundaries
        done = segment(
            jobs, objects, limits=SegmentLimits(safety_margin_ms=1, max_chunks=1, lines=limits)
        ).done
        invocations += 1
        record = jobs.get("job-1")
        assert record is not None
        assert invocations < 1000
    assert largest_read <= 1024 + 3, "never more than a preview or a range at once"
    assert outputs(objects) == (
        join_lines(process_lines(data, start_offset=0, **registered("passthrough"), limits=limits).output),
        join_lines(process_lines(data, start_offset=0, **registered("passthrough"), limits=limits).rejects),
    )
    record = jobs.get("job-1")
    assert record is not None and record.long_line_from is None
    assert (record.records_in, record.records_out, record.records_rejected) == (7, 6, 1)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=st.lists(
        st.one_of(
            st.integers(0, 40).map(lambda n: json.dumps({"n": "z" * n}).encode()),
            st.integers(41, 400).map(lambda n: b"L" * n),  # too long for the limit below
            st.sampled_from([b"", b" ", b"\t\r", b"\x0b", b"[" * 30]),
        ),
        max_size=30,
    ),
    trailing_newline=st.booleans(),
    chunk_bytes=st.integers(min_value=1, max_value=90),
    max_line_bytes=st.integers(min_value=8, max_value=60),
    cuts=st.lists(st.integers(min_value=1, max_value=3), min_size=1, max_size=20),
)
def test_long_lines_give_the_one_shot_result_for_any_cut(
    lines: list[bytes], trailing_newline: bool, chunk_bytes: int, max_line_bytes: int, cuts: list[int]
) -> None:
    data = b"\n".join(lines) + (b"\n" if trailing_newline and lines else b"")
    limits = LineLimits(max_line_bytes=max_line_bytes, max_depth=20)
    jobs, objects = MemoryJobs(), MemoryObjects()
    objects.put("data", "in/job-1.jsonl", data)
    jobs.create(running_job(chunk_bytes=chunk_bytes))
    done, invocations = False, 0
    while not done:
        cut = cuts[invocations % len(cuts)]
        done = segment(
            jobs, objects, limits=SegmentLimits(safety_margin_ms=1, max_chunks=cut, lines=limits)
        ).done
        invocations += 1
        assert invocations < 10_000
    whole = process_lines(data, start_offset=0, **registered("passthrough"), limits=limits)
    assert outputs(objects) == (join_lines(whole.output), join_lines(whole.rejects))
    record = jobs.get("job-1")
    assert record is not None
    assert (record.records_in, record.records_blank) == (whole.records_in, whole.records_blank)
    assert record.records_in + record.records_blank == line_count(data)


def line_count(data: bytes) -> int:
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
