"""The fast codec path gives today's answers: `process_lines` (msgspec, with the standard library for what it
refuses) against `reference_process_lines` (the standard library alone, as the worker ran before), compared
whole: output bytes, reject lines (offset, text, reason) and every counter.

The hostile kinds include the JSON parsing test suite's (github.com/nst/JSONTestSuite, `test_parsing/`),
written inline below by their file names: `y_` must be accepted, `n_` refused, `i_` are the implementation's
choice (here: whatever the standard library decides). Each runs bare (a record must be an object, so most are
rejects) and as the value of an object.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from jobcore import lines as lines_module
from jobcore.lines import ChunkResult, LineLimits, process_lines, reference_process_lines
from jobcore.transforms import TRANSFORMS, RecordError, transform
from tests.fakes import registered

BUILT_INS = ["passthrough", "compact", "normalize", "flatten"]


def results(result: ChunkResult) -> dict[str, Any]:
    return {
        "output": result.output,
        "rejects": result.rejects,
        "blank": result.records_blank,
        "transformed": result.records_transformed,
        "filtered": result.records_filtered,
    }


def same_answers(
    data: bytes, transform_name: str, *, start_offset: int = 0, limits: LineLimits | None = None
) -> None:
    args = registered(transform_name)
    fast = process_lines(data, start_offset=start_offset, limits=limits, **args)
    reference = reference_process_lines(data, start_offset=start_offset, limits=limits, **args)
    assert results(fast) == results(reference)


# --- the fast path is the path: ordinary lines never reach the standard library ---------------------------


ORDINARY = [
    {"id": 1, "userName": " Ada ", "Account": {"Plan Type": "pro", "isActive": True, "Credit-Limit": 2500.5}},
    {"geo": {"lat": 48.8566, "lon": -2.3522, "city": "København"}, "Tags": ["a", "b"], "score": 0.1234},
    {"n": None, "big": 123456789012345678901234567890, "neg": -0.0, "e": 'é\u2028"\\/\t', "empty": {}},
]


class Refuses:
    """Stands in for the standard library's decoder and encoder, counting the calls that reach it."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        self.calls += 1
        return getattr(self.real, name)


@pytest.mark.parametrize("transform_name", BUILT_INS)
def test_ordinary_lines_never_reach_the_standard_library(
    transform_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoder, encoder = Refuses(lines_module._decoder), Refuses(lines_module._encoder)
    monkeypatch.setattr(lines_module, "_decoder", decoder)
    monkeypatch.setattr(lines_module, "_encoder", encoder)
    data = b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\r\n" for r in ORDINARY * 3)
    result = process_lines(data, start_offset=0, **registered(transform_name))
    assert (result.records_out, result.records_rejected) == (9, 0)
    assert (decoder.calls, encoder.calls) == (0, 0)
    # A line the fast codec refuses (a lone surrogate) is answered by the standard library.
    process_lines(b'{"v":"\\ud800"}\n', start_offset=0, **registered(transform_name))
    assert decoder.calls == 1


# --- fixed cases: the traps named in the issue and JSONTestSuite's kinds -----------------------------------

TRAPS = [
    b'{"v":1e16}',
    b'{"v":1E+16}',
    b'{"v":12345678901234567.0}',
    b'{"v":9999999999999998.0}',
    b'{"v":1e-05}',
    b'{"v":0.00001}',
    b'{"v":0.0001}',
    b'{"v":1.5e-7}',
    b'{"v":1e-10}',
    b'{"v":"e-mail","w":1.5}',
    b'{"v":"0.00001 as text","w":[0.5,"1e-7"]}',
    b'{"s":"e-","f":1e-7,"g":{"h":-2.5e-05}}',
    b'{"v":1E5}',
    b'{"v":-0}',
    b'{"v":-0.0}',
    b'{"v":1e400}',
    b'{"v":-1e400}',
    b'{"v":1e-400}',
    b'{"v":NaN}',
    b'{"v":Infinity}',
    b'{"v":-Infinity}',
    b'{"v":18446744073709551616}',
    b'{"v":-9223372036854775809}',
    b'{"v":' + b"9" * 4300 + b"}",
    b'{"v":' + b"9" * 4301 + b"}",
    b'{"a":1,"b":2,"a":3}',
    b'{"a":{"x":1},"b":0,"a":[2]}',
    b'{"First Name":1,"first_name":2}',
    b'{"a":{"b":1},"a.b":2}',
    b'{"v":"\\ud800"}',
    b'{"v":"\\udfaa\\ud800"}',
    b'{"\\ud800":1}',
    b'{"v":"\\ud834\\udd1e"}',
    b'{"v":"\xed\xa0\x80"}',
    b'{"v":"a\x00b"}',
    b'{"v":"a\x1fb"}',
    b'{"v":"a\x7fb\xc2\x80\xe2\x80\xa8"}',
    b'{"v":"\\u0000\\u001f\\b\\f\\n\\r\\t\\/\\"\\\\"}',
    b'{"v":"\\u00e9\\u20AC"}',
    b'\xef\xbb\xbf{"bom":1}',
    b"\xef\xbb\xbf",
    b'{"v":1}\r',
    b'{"v":1}\r\r',
    b"\r",
    b" \t ",
    b"\x0b",
    b"\x0c",
    b'{"v":1}\x0c',
    b' {"v" : [ 1 , 2 ] } ',
    b'{"v":[[[[[[[[[[1]]]]]]]]]]}',
    b'{"v":' + b"[" * 126 + b"]" * 126 + b"}",
    b'{"v":' + b"[" * 127 + b"]" * 127 + b"}",
    b'{"v":' + b"{" * 127 + b"}" * 127 + b"}",
    b"[" * 100_000,
    b'{"v":"' + b"[" * 300 + b'"}',
    b'{"k":"  padded  ","K2":{"Inner Key":" x "},"l":[" a ",{"B c":" d "}]}',
    b'{"":1}',
    b'{"  ":1}',
    b'{"__":1}',
    b'{"v":[]}',
    b"{}",
    b'{"a":{}}',
    b'{"a":[[[]]]}',
    b'{"a":{"b":{"c":{"d":[1,[2,[3]]]}}}}',
    b'{"a":[{"b":[{"c":[{"d":[{}]}]}]}]}',
]

JSON_TEST_SUITE = {
    # y_: valid JSON
    "y_array_arraysWithSpaces": b"[[]   ]",
    "y_array_empty-string": b'[""]',
    "y_array_with_several_null": b"[1,null,null,null,2]",
    "y_number_0e+1": b"[0e+1]",
    "y_number_0e1": b"[0e1]",
    "y_number_after_space": b"[ 4]",
    "y_number_double_close_to_zero": b"[-0.000000000000000000000000000000000000000000000000000000000000000000000000000001]",
    "y_number_int_with_exp": b"[20e1]",
    "y_number_minus_zero": b"[-0]",
    "y_number_negative_zero": b"[-0]",
    "y_number_real_capital_e": b"[1E22]",
    "y_number_real_capital_e_neg_exp": b"[1E-2]",
    "y_number_real_capital_e_pos_exp": b"[1E+2]",
    "y_number_real_exponent": b"[123e45]",
    "y_number_real_fraction_exponent": b"[123.456e78]",
    "y_number_real_neg_exp": b"[1e-2]",
    "y_number_real_pos_exponent": b"[1e+2]",
    "y_number_simple_real": b"[123.456789]",
    "y_object_basic": b'{"asd":"sdf"}',
    "y_object_duplicated_key": b'{"a":"b","a":"c"}',
    "y_object_duplicated_key_and_value": b'{"a":"b","a":"b"}',
    "y_object_empty_key": b'{"":0}',
    "y_object_escaped_null_in_key": b'{"foo\\u0000bar": 42}',
    "y_object_extreme_numbers": b'{ "min": -1.0e+28, "max": 1.0e+28 }',
    "y_object_long_strings": b'{"x":[{"id": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}], "id": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}',
    "y_string_1_2_3_bytes_UTF-8_sequences": b'["\\u0060\\u012a\\u12AB"]',
    "y_string_accepted_surrogate_pair": b'["\\uD801\\udc37"]',
    "y_string_allowed_escapes": b'["\\"\\\\\\/\\b\\f\\n\\r\\t"]',
    "y_string_escaped_control_character": b'["\\u0012"]',
    "y_string_escaped_noncharacter": b'["\\uFFFF"]',
    "y_string_last_surrogates_1_and_2": b'["\\uDBFF\\uDFFF"]',
    "y_string_nonCharacterInUTF-8_U+FFFF": b'["\xef\xbf\xbf"]',
    "y_string_null_escape": b'["\\u0000"]',
    "y_string_u+2028_line_sep": b'["\xe2\x80\xa8"]',
    "y_string_unescaped_char_delete": b'["\x7f"]',
    "y_string_unicode_escaped_double_quote": b'["\\u0022"]',
    "y_string_utf8": b'["\xe2\x82\xac\xf0\x9d\x84\x9e"]',
    "y_structure_lonely_int": b"42",
    "y_structure_lonely_null": b"null",
    "y_structure_trailing_newline": b'["a"]\r',
    "y_structure_whitespace_array": b" [] ",
    # n_: invalid JSON
    "n_array_extra_comma": b'["",]',
    "n_array_just_minus": b"[-]",
    "n_array_number_and_comma": b"[1,]",
    "n_incomplete_false": b"[fals]",
    "n_number_++": b"[++1234]",
    "n_number_-01": b"[-01]",
    "n_number_0.e1": b"[0.e1]",
    "n_number_0_capital_E": b"[0E]",
    "n_number_1_000": b"[1 000.0]",
    "n_number_2.e3": b"[2.e3]",
    "n_number_Inf": b"[Inf]",
    "n_number_NaN": b"[NaN]",
    "n_number_hex_1_digit": b"[0x1]",
    "n_number_infinity": b"[Infinity]",
    "n_number_minus_infinity": b"[-Infinity]",
    "n_number_neg_int_starting_with_zero": b"[-012]",
    "n_number_plus_one": b"[+1]",
    "n_number_real_without_fractional_part": b"[1.]",
    "n_number_starting_with_dot": b"[.123]",
    "n_number_with_leading_zero": b"[012]",
    "n_object_non_string_key": b"{1:1}",
    "n_object_repeated_null_null": b"{null:null,null:null}",
    "n_object_single_quote": b"{'a':0}",
    "n_object_trailing_comma": b'{"id":0,}',
    "n_object_unquoted_key": b'{a: "b"}',
    "n_string_1_surrogate_then_escape": b'["\\uD800\\"]',
    "n_string_escape_x": b'["\\x00"]',
    "n_string_escaped_emoji": b'["\\\xf0\x9f\x8c\x80"]',
    "n_string_incomplete_surrogate": b'["\\uD834\\uDd"]',
    "n_string_invalid_unicode_escape": b'["\\uqqqq"]',
    "n_string_invalid_utf8_after_escape": b'["\\\xe5"]',
    "n_string_single_quote": b"['single quote']",
    "n_string_unescaped_ctrl_char": b'["a\x00a"]',
    "n_string_unescaped_tab": b'["\t"]',
    "n_structure_UTF8_BOM_no_data": b"\xef\xbb\xbf",
    "n_structure_ascii-unicode-identifier": b"a\xc3\xa5",
    "n_structure_capitalized_True": b"[True]",
    "n_structure_null-byte-outside-string": b"[\x00]",
    "n_structure_object_with_trailing_garbage": b'{"a": true} "x"',
    "n_structure_open_array_object": b'[{"":' * 50_000,
    "n_structure_trailing_#": b'{"a":"b"}#{}',
    "n_structure_whitespace_formfeed": b"[\x0c]",
    # i_: the implementation's choice
    "i_number_double_huge_neg_exp": b"[123.456e-789]",
    "i_number_huge_exp": b"[0.4e00669999999999999999999999999999999999999999999999999999999999999999999999]",
    "i_number_neg_int_huge_exp": b"[-1e+9999]",
    "i_number_pos_double_huge_exp": b"[1.5e+9999]",
    "i_number_real_neg_overflow": b"[-123123e100000]",
    "i_number_real_pos_overflow": b"[123123e100000]",
    "i_number_real_underflow": b"[123e-10000000]",
    "i_number_too_big_neg_int": b"[-123123123123123123123123123123]",
    "i_number_too_big_pos_int": b"[100000000000000000000]",
    "i_number_very_big_negative_int": b"[-237462374673276894279832749832423479823246327846]",
    "i_object_key_lone_2nd_surrogate": b'{"\\uDFAA":0}',
    "i_string_1st_surrogate_but_2nd_missing": b'["\\uDADA"]',
    "i_string_1st_valid_surrogate_2nd_invalid": b'["\\uD888\\u1234"]',
    "i_string_UTF-16LE_with_BOM": b'\xff\xfe[\x00"\x00\xe9\x00"\x00]\x00',
    "i_string_UTF-8_invalid_sequence": b'["\xe6\x97\xa5\xd1\x88\xfa"]',
    "i_string_UTF8_surrogate_U+D800": b'["\xed\xa0\x80"]',
    "i_string_incomplete_surrogate_and_escape_valid": b'["\\uD800\\n"]',
    "i_string_incomplete_surrogates_escape_valid": b'["\\uD800\\uD800\\n"]',
    "i_string_invalid_lonely_surrogate": b'["\\ud800"]',
    "i_string_invalid_surrogate": b'["\\ud800abc"]',
    "i_string_invalid_utf-8": b'["\xff"]',
    "i_string_inverted_surrogates_U+1D11E": b'["\\uDd1e\\uD834"]',
    "i_string_iso_latin_1": b'["\xe9"]',
    "i_string_lone_second_surrogate": b'["\\uDFAA"]',
    "i_string_lone_utf8_continuation_byte": b'["\x81"]',
    "i_string_not_in_unicode_range": b'["\xf4\xbf\xbf\xbf"]',
    "i_string_overlong_sequence_2_bytes": b'["\xc0\xaf"]',
    "i_string_overlong_sequence_6_bytes": b'["\xfc\x83\xbf\xbf\xbf\xbf"]',
    "i_string_truncated-utf-8": b'["\xe0\xff"]',
    "i_string_utf16BE_no_BOM": b'\x00[\x00"\x00\xe9\x00"\x00]',
    "i_structure_500_nested_arrays": b"[" * 500 + b"]" * 500,
    "i_structure_UTF-8_BOM_empty_object": b"\xef\xbb\xbf{}",
}


def fixed_cases() -> list[bytes]:
    cases = list(TRAPS)
    for text in JSON_TEST_SUITE.values():
        cases += [text, b'{"v":' + text + b"}", b'{"k":1, "v":[' + text + b"]}"]
    return cases


@pytest.mark.parametrize("transform_name", [*BUILT_INS, "codec_paths_shapes"])
def test_nesting_limits_below_and_above_the_fast_decoders_depth_give_todays_answers(
    transform_name: str,
) -> None:
    data = b"".join(case + b"\n" for case in TRAPS)
    for max_depth in (1, 2, 3, 4, 6, 7, 8, 9, 10, 128):
        same_answers(data, transform_name, limits=LineLimits(max_depth=max_depth))


@pytest.mark.parametrize("transform_name", [*BUILT_INS, "codec_paths_shapes"])
def test_the_traps_and_json_test_suite_give_todays_answers(transform_name: str) -> None:
    cases = fixed_cases()
    data = b"".join(case + b"\n" for case in cases)
    same_answers(data, transform_name)  # the first line at offset 0: a BOM there is ignored
    same_answers(data, transform_name, start_offset=7)
    for case in cases:  # each alone too: at offset 0, with and without its newline
        same_answers(case, transform_name)
        same_answers(case + b"\r\n", transform_name)


def test_the_suites_verdicts_hold_for_records() -> None:
    """The y_ cases wrapped in an object are records, the n_ cases are not; `passthrough` keeps y_ lines."""
    for name, text in JSON_TEST_SUITE.items():
        result = process_lines(b'{"v":' + text + b"}\n", start_offset=0, **registered("passthrough"))
        if name.startswith("y_"):
            assert result.records_out == 1, name
        elif name.startswith("n_"):
            assert result.records_rejected == 1, name


# --- generated lines -----------------------------------------------------------------------------------------


def shapes(record: dict[str, Any]) -> Any:
    """A user transform with every kind of answer, chosen by the record: its output is written by the
    standard library's encoder, whatever it holds."""
    kind = len(record) % 6
    if kind == 1:
        return None
    if kind == 2:
        return [record, {"n": len(record)}]
    if kind == 3:
        raise RecordError("refused")
    if kind == 4:
        return {"keys": sorted(record), "t": (1, 2.5e-7, 1e16)}
    if kind == 5:
        return [record, "not a record"]
    return record


@pytest.fixture(autouse=True, scope="module")
def shapes_registered() -> Iterator[None]:
    transform("codec_paths_shapes")(shapes)
    yield
    del TRANSFORMS["codec_paths_shapes"]


# Floats where the fast encoder's spelling differs from the standard library's, and their neighbours.
EDGE_FLOATS = [1e16, 9999999999999998.0, 1.0000000000000002e16, 1e-4, 9.999999999999999e-05, 1e-5, 1.5e-7]
EDGE_FLOATS += [1e-10, 5e-324, 1.7976931348623157e308, 0.1, 100000.0, 1e15, 123456789.125, 2.5e-300]
EDGE_INTS = [0, -1, 2**53 + 1, 2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**40, -(10**40)]

numbers = st.one_of(
    st.integers(),
    st.sampled_from(EDGE_INTS),
    # Mostly floats the fast path writes (a record holding one it refuses takes the reference path whole).
    st.floats(min_value=-1e16, max_value=1e16),
    # Where the codecs' spellings differ: |x| < 1e-4 with an exponent from -5 to -9, and |x| >= 1e16.
    st.floats(min_value=1e-10, max_value=1e-4).flatmap(lambda x: st.sampled_from([x, -x])),
    st.sampled_from(EDGE_FLOATS).flatmap(lambda x: st.sampled_from([x, -x])),
    st.floats(allow_nan=False, allow_infinity=False),
)
texts = st.text(st.characters(codec=None, exclude_categories=()), max_size=12)  # surrogates included
keys = st.one_of(texts, st.sampled_from(["a", "A", "a b", "aB", "a_b", "a.b", " a ", "__", "", "ÉtéKey"]))
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)
values = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=4)),
    max_leaves=12,
)
records = st.dictionaries(keys, values, max_size=6)

# How a number is spelled in the input: the standard library's own, or another valid spelling.
SPELLINGS = ["repr", "E", "e+", "padded"]


def write_number(value: int | float, spelling: str) -> str:
    text = json.dumps(value)
    if isinstance(value, bool) or not isinstance(value, float):
        return text
    if spelling == "E":
        return text.replace("e", "E")
    if spelling == "e+":
        mantissa, _, exponent = f"{value:.17e}".partition("e")
        return f"{mantissa}e{int(exponent):+d}"
    if spelling == "padded" and math.isfinite(value) and "e" not in text:
        return text + "000"
    return text


def write(value: Any, spelling: str, spaced: bool, ascii_only: bool, duplicate: bool) -> str:
    """JSON text for `value`, in a style the standard library would not necessarily write."""
    if isinstance(value, dict):
        items = [f"{json.dumps(k, ensure_ascii=ascii_only)}:{write(v, spelling, spaced, ascii_only, duplicate)}"
                 for k, v in value.items()]  # fmt: skip
        if duplicate and items:
            items.insert(0, items[-1].split(":", 1)[0] + ":0")  # the same key earlier: the later one wins
        return "{" + (", " if spaced else ",").join(items) + "}"
    if isinstance(value, list):
        return "[" + (", " if spaced else ",").join(
            write(v, spelling, spaced, ascii_only, duplicate) for v in value
        ) + "]"  # fmt: skip
    if isinstance(value, int | float) and not isinstance(value, bool):
        return write_number(value, spelling)
    return json.dumps(value, ensure_ascii=ascii_only)


@st.composite
def lines(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["record", "record", "record", "mutated", "bytes", "blank"]))
    if kind == "blank":
        return draw(st.sampled_from([b"", b" ", b"\t", b"\r", b" \t\r"]))
    if kind == "bytes":
        return draw(st.binary(max_size=30)).replace(b"\n", b"")
    text = write(
        draw(st.one_of(records, values)),
        draw(st.sampled_from(SPELLINGS)),
        draw(st.booleans()),
        draw(st.booleans()),
        draw(st.booleans()),
    )
    line = text.encode("utf-8", errors="surrogatepass")  # a raw surrogate: invalid UTF-8 on purpose
    if kind == "mutated" and line:
        at = draw(st.integers(0, len(line) - 1))
        byte = draw(
            st.sampled_from([b"", b"\x00", b"\x1f", b"\\", b'"', b"{", b"]", b"\xff", b"\xc3", b"e", b"-"])
        )
        line = line[:at] + byte + line[at + draw(st.integers(0, 1)) :]
    return line.replace(b"\n", b"")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    chunk=st.lists(st.tuples(lines(), st.sampled_from([b"\n", b"\r\n"])), min_size=1, max_size=8),
    transform_name=st.sampled_from([*BUILT_INS, "codec_paths_shapes"]),
    start_offset=st.sampled_from([0, 5]),
    bom=st.booleans(),
    max_depth=st.sampled_from([128, 3, 9]),
    max_line_bytes=st.sampled_from([1024 * 1024, 40]),
    last_newline=st.booleans(),
)
@example(
    chunk=[(b'{"v":1e-05}', b"\n")], transform_name="compact", start_offset=0, bom=False, max_depth=128,
    max_line_bytes=1024 * 1024, last_newline=True,
)  # fmt: skip
def test_generated_and_hostile_lines_give_todays_answers(
    chunk: list[tuple[bytes, bytes]],
    transform_name: str,
    start_offset: int,
    bom: bool,
    max_depth: int,
    max_line_bytes: int,
    last_newline: bool,
) -> None:
    data = (b"\xef\xbb\xbf" if bom else b"") + b"".join(line + end for line, end in chunk)
    if not last_newline:
        data = data.removesuffix(chunk[-1][1])
    limits = LineLimits(max_depth=max_depth, max_line_bytes=max_line_bytes)
    same_answers(data, transform_name, start_offset=start_offset, limits=limits)


@settings(max_examples=300, deadline=None)
@given(value=st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from(EDGE_FLOATS))
def test_every_float_is_written_as_the_standard_library_writes_it(value: float) -> None:
    for text in (json.dumps({"v": value}), json.dumps({"v": [-value, {"w": value}]})):
        for name in ("compact", "normalize", "flatten"):
            same_answers(text.encode() + b"\n", name)


# --- normalize converts each key once ------------------------------------------------------------------------


class CountingPattern:
    def __init__(self, pattern: Any) -> None:
        self.pattern = pattern
        self.calls = 0

    def sub(self, *args: Any) -> Any:
        self.calls += 1
        return self.pattern.sub(*args)


def test_normalize_converts_each_distinct_key_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from jobcore import transforms

    pattern = CountingPattern(transforms._NON_WORD)
    monkeypatch.setattr(transforms, "_NON_WORD", pattern)
    monkeypatch.setattr(transforms, "_SNAKE_CACHE", {}, raising=False)
    records = [{"First Name": f" a{i} ", "Address": {"Zip-Code": i, "firstName": "x"}} for i in range(50)]
    out = [transforms.normalize(record) for record in records]
    assert out[7] == {"first_name": "a7", "address": {"zip_code": 7, "first_name": "x"}}
    assert pattern.calls == 4, "one conversion for each of the 4 distinct keys, not one per record"
    # Past the cache's bound, keys are still converted (each time), with the same answers.
    monkeypatch.setattr(transforms, "_SNAKE_CACHE_MAX", 0, raising=False)
    monkeypatch.setattr(transforms, "_SNAKE_CACHE", {}, raising=False)
    assert [transforms.normalize(record) for record in records] == out
    assert pattern.calls == 4 + 50 * 4
