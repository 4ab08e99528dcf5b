"""The Go-compatible JSON layer: scanner errors, float formatting, time parsing, encoding."""
from __future__ import annotations

import json
import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faktory.server import gojson
from faktory.server.store import glob_to_regex


@pytest.mark.parametrize("data, message", [
    (b"{not json}", "invalid character 'n' looking for beginning of object key string"),
    (b"[not json", "invalid character 'o' in literal null (expecting 'u')"),
    (b"", "unexpected end of JSON input"),
    (b"   ", "unexpected end of JSON input"),
    (b'{"a":1,}', "invalid character '}' looking for beginning of object key string"),
    (b"[1,]", "invalid character ']' looking for beginning of value"),
    (b'{"a" 1}', "invalid character '1' after object key"),
    (b'{"a":1 "b"}', "invalid character '\"' after object key:value pair"),
    (b"[1 2]", "invalid character '2' after array element"),
    (b"-x", "invalid character 'x' in numeric literal"),
    (b"1.x", "invalid character 'x' after decimal point in numeric literal"),
    (b"1ex", "invalid character 'x' in exponent of numeric literal"),
    (b"01", "invalid character '1' after top-level value"),
    (b'"\x01"', "invalid character '\\x01' in string literal"),
    (b'"\\q"', "invalid character 'q' in string escape code"),
    (b'"\\u12x4"', "invalid character 'x' in \\u hexadecimal character escape"),
    (b"trux", "invalid character 'x' in literal true (expecting 'e')"),
    (b"fals", "unexpected end of JSON input"),
    (b"'a'", "invalid character '\\'' looking for beginning of value"),
    (b"\xc3\xa9", "invalid character '\u00c3' looking for beginning of value"),
    (b"[\x7f]", "invalid character '\\x7f' looking for beginning of value"),
    (b"[\xa0]", "invalid character '\\u00a0' looking for beginning of value"),
])
def test_syntax_error_texts(data: bytes, message: str) -> None:
    assert gojson.syntax_error(data) == message
    with pytest.raises(gojson.JSONError) as info:
        gojson.loads(data)
    assert str(info.value) == message


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_valid_json_has_no_syntax_error(value) -> None:
    data = json.dumps(value).encode()
    assert gojson.syntax_error(data) is None


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=24) | st.text(alphabet='{}[]",:0123456789.eE+-tfnrulase \\', max_size=24).map(str.encode))
def test_scanner_agrees_with_a_strict_parser(data: bytes) -> None:
    try:
        json.loads(data.decode("utf-8", "surrogateescape"),
                   parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
        valid = True
    except (ValueError, RecursionError):
        valid = False
    assert (gojson.syntax_error(data) is None) == valid


@pytest.mark.parametrize("value, text", [
    (1.0, "1"), (0.5, "0.5"), (1e21, "1e+21"), (1e20, "100000000000000000000"),
    (123456789012345678901.0, "123456789012345680000"), (1e-7, "1e-7"), (1.5e-7, "1.5e-7"),
    (0.00001, "0.00001"), (0.000140638, "0.000140638"), (-0.0, "-0"), (1e-10, "1e-10"),
    (-2.5e300, "-2.5e+300"), (0.000001, "0.000001"),
])
def test_format_float_like_go(value: float, text: str) -> None:
    assert gojson.format_float(value) == text


@settings(max_examples=500, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_format_float_round_trips(value: float) -> None:
    text = gojson.format_float(value)
    assert float(text) == value
    if value != 0:
        assert ("e" in text) == (abs(value) < 1e-6 or abs(value) >= 1e21)


@pytest.mark.parametrize("value, message", [
    ("tomorrow", 'parsing time "tomorrow" as "2006-01-02T15:04:05.999999999Z07:00": '
                 'cannot parse "tomorrow" as "2006"'),
    ("2024-13-01T00:00:00Z", 'parsing time "2024-13-01T00:00:00Z": month out of range'),
    ("2024-02-30T00:00:00Z", 'parsing time "2024-02-30T00:00:00Z": day out of range'),
    ("2024-01-01T24:00:00Z", 'parsing time "2024-01-01T24:00:00Z": hour out of range'),
    ("2024-01-01 00:00:00Z", 'parsing time "2024-01-01 00:00:00Z" as '
                             '"2006-01-02T15:04:05.999999999Z07:00": cannot parse " 00:00:00Z" as "T"'),
    ("2024-01-01T00:00:00Zx", 'parsing time "2024-01-01T00:00:00Zx": extra text: "x"'),
    ("2024-01-01T00:00:00+25:00", 'parsing time "2024-01-01T00:00:00+25:00": '
                                  'time zone offset hour out of range'),
])
def test_parse_time_errors(value: str, message: str) -> None:
    with pytest.raises(gojson.TimeParseError) as info:
        gojson.parse_time(value)
    assert str(info.value) == message


@pytest.mark.parametrize("value, epoch", [
    ("2000-01-01T00:00:00Z", 946684800.0),
    ("2000-01-01T01:00:00+01:00", 946684800.0),
    ("2000-01-01T00:00:00.5Z", 946684800.5),
    ("2000-01-01T1:00:00Z", 946688400.0),        # Go's hour field takes one digit too
    ("2000-01-01T00:00:00,25Z", 946684800.25),
    ("1969-12-31T23:59:59Z", -1.0),
])
def test_parse_time_values(value: str, epoch: float) -> None:
    assert math.isclose(gojson.parse_time(value), epoch, abs_tol=1e-6)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=4_000_000_000_000_000_000))
def test_format_then_parse_time(ns: int) -> None:
    t = ns / 1e9
    text = gojson.format_time(t)
    assert text.endswith("Z")
    if "." in text:  # RFC3339Nano trims trailing zeros of the fraction
        assert not text[:-1].split(".")[1].endswith("0")
    assert abs(gojson.parse_time(text) - t) < 1e-6 * max(1.0, abs(t) / 1e9)


def test_encode_escapes_like_go() -> None:
    assert gojson.encode({"k": "<a&b>\u2028\n\x01é"}) == \
        '{"k":"\\u003ca\\u0026b\\u003e\\u2028\\n\\u0001é"}'.encode()
    assert gojson.dumps_map({"b": 1, "a": {"d": 1, "c": 2}}) == b'{"a":{"c":2,"d":1},"b":1}'


def test_decode_struct_rules() -> None:
    errs = gojson.errors()
    job = gojson.decode_struct({"JID": "x", "jid": "y", "unknown": 1, "queue": None}, gojson.JOB, errs)
    assert errs.first is None and job == {"jid": "y"}
    errs = gojson.errors()
    gojson.decode_struct({"failure": {"retry_count": "1"}}, gojson.JOB, errs)
    assert errs.first == ("json: cannot unmarshal string into Go struct field "
                          "Job.failure.retry_count of type int")
    errs = gojson.errors()
    gojson.decode_struct({"retry": 1 << 63}, gojson.JOB, errs)
    assert errs.first == ("json: cannot unmarshal number 9223372036854775808 into Go struct "
                          "field Job.retry of type int")


@pytest.mark.parametrize("pattern, text, match", [
    ("*sched-0002*", b'{"jid":"sched-0002"}', True),
    ("*sched-0002*", b'{"jid":"sched-0003"}', False),
    ("h?llo", b"hello", True),
    ("h[ae]llo", b"hallo", True),
    ("h[^e]llo", b"hello", False),
    ("h[a-c]llo", b"hbllo", True),
    ("h\\*llo", b"h*llo", True),
    ("h\\*llo", b"hello", False),
])
def test_redis_glob(pattern: str, text: bytes, match: bool) -> None:
    assert (glob_to_regex(pattern).fullmatch(text) is not None) == match


@pytest.mark.parametrize("text, upper", [
    ("pause", "PAUSE"), ("LaTeNcY", "LATENCY"), ("stra\u00dfe", "STRA\u00dfE"), ("\ufb00", "\ufb00"),
    ("\u1f80", "\u1f88"), ("\u0131", "I"), ("\u017f", "S"), ("\u0149", "\u0149"), ("\u00e9", "\u00c9"),
    ("a\udcffb", "A\ufffdB"), ("\ufffd", "\ufffd"),
])
def test_go_upper_is_simple_case_mapping(text: str, upper: str) -> None:
    assert gojson.go_upper(text) == upper


@pytest.mark.parametrize("literal, written", [
    (b"-0", b"-0"), (b"0", b"0"), (b"-0.0", b"-0"), (b"-0e3", b"-0"), (b"-0.5", b"-0.5"), (b"-10", b"-10"),
    (b'"a-0"', b'"a-0"'), (b'{"k":-0}', b'{"k":-0}'),
])
def test_negative_zero_in_any_value(literal: bytes, written: bytes) -> None:
    args = gojson.decode_job(gojson.loads(b'{"args":[' + literal + b']}'), gojson.errors())["args"]
    assert gojson.encode({"args": args}) == b'{"args":[' + written + b']}'


def test_negative_zero_in_int_fields() -> None:
    job = gojson.decode_job(gojson.loads(b'{"retry":-0,"reserve_for":-0}'), gojson.errors())
    assert job["retry"] == 0 and gojson.encode({"retry": job["retry"]}) == b'{"retry":0}'
    with pytest.raises(gojson.JSONError, match="cannot unmarshal number -0 into Go struct field ClientData.v of type uint8"):
        gojson.decode_struct(gojson.loads(b'{"v":-0}'), gojson.CLIENT_DATA)
    with pytest.raises(gojson.JSONError, match="invalid character '1' after array element"):
        gojson.loads(b"[-01]")


def _mutated_documents(seed: int, count: int) -> list[bytes]:
    """Valid JSON documents with one to three random edits (most become invalid)."""
    import random

    rnd = random.Random(seed)

    def value(depth: int = 0):
        r = rnd.random()
        if depth > 4 or r < 0.3:
            return rnd.choice([1, -2.5, "s", 'é\\"x', True, None, 0, 1e5, "a\nb", ""])
        if r < 0.65:
            return [value(depth + 1) for _ in range(rnd.randint(0, 4))]
        return {rnd.choice(["a", 'b\\"', "ké", ""]) + str(i): value(depth + 1) for i in range(rnd.randint(0, 4))}

    tokens = [b"{", b"}", b"[", b"]", b",", b":", b'"', b"\\", b"1", b".", b"e", b"-", b"tru", b"nul", b"x",
              b" ", b"\n", b"\x01", b"\xff", b"N", b"0", b"\\u12", b"\\q", b"+"]
    docs = []
    for _ in range(count):
        doc = json.dumps(value(), ensure_ascii=rnd.random() < 0.5,
                         separators=rnd.choice([(",", ":"), (", ", ": ")])).encode()
        for _ in range(rnd.randint(1, 3)):
            k = rnd.randrange(len(doc) + 1)
            op = rnd.random()
            doc = doc[:k] + rnd.choice(tokens) + doc[k:] if op < 0.4 else doc[:k] + doc[k + 1:] if op < 0.7 else doc[:k]
        docs.append(doc)
    return docs


def test_error_text_from_the_decoders_position_matches_the_full_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    # the shortcut for large inputs, forced on small ones: the same text as scanning it all
    monkeypatch.setattr(gojson, "FULL_SCAN_LIMIT", 0)
    checked = 0
    for doc in _mutated_documents(13, 4000):
        expected = gojson.syntax_error(doc)
        if expected is None:
            continue
        with pytest.raises(gojson.JSONError) as caught:
            gojson.loads(doc)
        if str(caught.value) == "exceeded max depth":
            continue
        assert str(caught.value) == expected, doc
        checked += 1
    assert checked > 2500


@pytest.mark.parametrize("data, message", [
    (b'{"args":[' + b"1," * 100_000 + b"x]}", "invalid character 'x' looking for beginning of value"),
    (b'{"args":[' + b'"ab\\"c",' * 20_000 + b"1.]}", "invalid character ']' after decimal point in numeric literal"),
    (b'{"args":["' + b"a" * 200_000 + b'\\q"]}', "invalid character 'q' in string escape code"),
    (b'{"args":[' + b'{"a":[1,{"b":null}]},' * 10_000 + b'{"a" 1}]}', "invalid character '1' after object key"),
    (b'{"args":["' + b"a" * 200_000, "unexpected end of JSON input"),
    (b'{"args":[' + b"1," * 100_000 + b"1]} x", "invalid character 'x' after top-level value"),
])
def test_large_malformed_inputs_get_gos_text(data: bytes, message: str) -> None:
    assert len(data) > gojson.FULL_SCAN_LIMIT
    with pytest.raises(gojson.JSONError, match=re.escape(message)):
        gojson.loads(data)
    assert gojson.syntax_error(data) == message
