"""Line rules (BOM, CRLF, blanks, UTF-8, JSON objects) and the shipped transforms."""

from __future__ import annotations

import json

import pytest

from jobcore.lines import process_lines, split_complete
from jobcore.transforms import RecordError, flatten, normalize
from tests.fakes import registered


def run(data: bytes, transform: str = "passthrough") -> tuple[list[object], list[dict[str, object]]]:
    result = process_lines(data, start_offset=0, **registered(transform))
    return [json.loads(line) for line in result.output], [json.loads(line) for line in result.rejects]


def test_bom_crlf_and_blank_lines() -> None:
    out, rejects = run(b'\xef\xbb\xbf{"a":1}\r\n\r\n   \n{"b":2}\r\n')
    assert out == [{"a": 1}, {"b": 2}] and rejects == []


def test_bom_only_ignored_at_offset_zero() -> None:
    result = process_lines(b'\xef\xbb\xbf{"a":1}\n', start_offset=10, **registered("passthrough"))
    assert result.records_rejected == 1


def test_last_line_without_newline_counts() -> None:
    assert run(b'{"a":1}\n{"b":2}')[0] == [{"a": 1}, {"b": 2}]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"not json", "not JSON"),
        (b"42", "not a JSON object: int"),
        (b'"s"', "not a JSON object: str"),
        (b'{"a": NaN}', "not JSON"),
        (b"\xff", "not valid UTF-8"),
        (b'{"a": 1', "not JSON"),
    ],
)
def test_rejects_carry_offset_line_and_reason(line: bytes, reason: str) -> None:
    out, rejects = run(b'{"ok":1}\n' + line + b"\n")
    assert out == [{"ok": 1}]
    assert rejects[0]["offset"] == 9
    assert str(rejects[0]["error"]).startswith(reason)
    assert rejects[0]["line"] == line.decode("utf-8", errors="replace")


def test_counts_add_up() -> None:
    result = process_lines(b'{"a":1}\nx\n\n{"b":2}\n', start_offset=0, **registered("passthrough"))
    assert (result.records_in, result.records_out, result.records_rejected) == (3, 2, 1)


def test_split_complete_carries_the_partial_line() -> None:
    assert split_complete(b"a\nb\nc", at_end=False) == (b"a\nb\n", b"c")
    assert split_complete(b"abc", at_end=False) == (b"", b"abc")
    assert split_complete(b"a\nbc", at_end=True) == (b"a\nbc", b"")


def test_normalize_snake_cases_keys_and_strips_strings() -> None:
    assert normalize({" First Name ": " Ada ", "lastName": "Lovelace", "Address": {"Zip-Code": " 1 "}}) == {
        "first_name": "Ada",
        "last_name": "Lovelace",
        "address": {"zip_code": "1"},
    }


def test_normalize_refuses_colliding_keys() -> None:
    with pytest.raises(RecordError, match="collide"):
        normalize({"a b": 1, "a_b": 2})


def test_flatten_dots_nested_keys_in_order() -> None:
    assert list(flatten({"a": {"b": 1, "c": {"d": 2}}, "e": [1]}).items()) == [
        ("a.b", 1),
        ("a.c.d", 2),
        ("e", [1]),
    ]


def test_transform_failure_is_a_reject_not_a_crash() -> None:
    _, rejects = run(b'{"a b": 1, "a_b": 2}\n', "normalize")
    assert str(rejects[0]["error"]).startswith("transform failed")


def test_passthrough_keeps_the_record() -> None:
    record = {"z": 1, "a": [1, {"b": None}], "u": "é"}
    assert run(json.dumps(record).encode() + b"\n")[0] == [record]
