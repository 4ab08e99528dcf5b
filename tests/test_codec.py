"""The RESP codec, run over every codec in ``protocol.CODECS`` (compiled and pure Python).

Every reply stream is checked fed whole, cut at every byte offset, and one byte at a time.
"""
from __future__ import annotations

import asyncio
import json
import math
import pickle
import tracemalloc

import pytest

from faktory import protocol
from faktory._const import MAX_ARRAY, MAX_DEPTH, NEED_DATA
from faktory.errors import (InvalidPasswordError, JobNotFoundError, NotUniqueError, ProtocolError,
                            ServerError, UnknownWorkerError)


@pytest.fixture(params=sorted(protocol.CODECS))
def codec(request):
    return protocol.CODECS[request.param]


# ---------------------------------------------------------------- helpers

def outcome(codec, chunks, **reader_kw):
    """Feed ``chunks`` one by one, draining after each; return (replies, error text or None)."""
    reader = codec.Reader(**reader_kw)
    replies = []
    try:
        for chunk in chunks:
            reader.feed(chunk)
            while (reply := reader.gets()) is not NEED_DATA:
                replies.append(reply)
    except ProtocolError as exc:
        return replies, str(exc)
    return replies, None


def splits(data: bytes):
    """Every way the stream can arrive: whole, cut at each offset, one byte at a time."""
    yield "whole", [data]
    for cut in range(1, len(data)):
        yield f"cut@{cut}", [data[:cut], data[cut:]]
    yield "bytewise", [data[i:i + 1] for i in range(len(data))]


def assert_stream(codec, data, expected_replies, expected_error=None, **reader_kw):
    for how, chunks in splits(data):
        replies, error = outcome(codec, chunks, **reader_kw)
        assert replies == expected_replies, how
        assert [type(r) for r in replies] == [type(r) for r in expected_replies], how
        assert error == expected_error, how


def naive_json(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


# ---------------------------------------------------------------- selection basics

def test_codec_module_exposes_the_contract(codec):
    for name in ("IMPLEMENTATION", "NEED_DATA", "Reader", "dumps", "pack_command", "pack_json",
                 "pack_fetch", "pack_ack", "pack_push", "pack_pushb"):
        assert hasattr(codec, name), name
    assert codec.NEED_DATA is NEED_DATA
    assert codec.IMPLEMENTATION in ("cython", "python")


def test_need_data_is_a_singleton_sentinel_distinct_from_none():
    assert NEED_DATA is not None and repr(NEED_DATA) == "NEED_DATA"
    assert pickle.loads(pickle.dumps(NEED_DATA)) is NEED_DATA


def test_empty_reader_needs_data(codec):
    reader = codec.Reader()
    assert reader.gets() is NEED_DATA
    assert reader.buffered() == 0


def test_reader_rejects_bad_limits(codec):
    with pytest.raises(ValueError):
        codec.Reader(max_bulk=-1)
    with pytest.raises(ValueError):
        codec.Reader(max_line=0)


# ---------------------------------------------------------------- reply types

def test_simple_string_ok(codec):
    assert_stream(codec, b"+OK\r\n", ["OK"])


def test_simple_string_is_str_not_bytes(codec):
    reader = codec.Reader()
    reader.feed(b"+OK\r\n+QUEUED\r\n")
    assert type(reader.gets()) is str
    assert type(reader.gets()) is str


def test_simple_string_hi_handshake(codec):
    assert_stream(codec, b'+HI {"v":2,"i":5000,"s":"abc"}\r\n', ['HI {"v":2,"i":5000,"s":"abc"}'])


def test_simple_string_empty(codec):
    assert_stream(codec, b"+\r\n", [""])


def test_simple_string_utf8_and_invalid_bytes_replaced(codec):
    assert_stream(codec, "+héllo\r\n".encode(), ["héllo"])
    assert_stream(codec, b"+a\xffb\r\n", ["a\ufffdb"])


def test_bulk_string(codec):
    assert_stream(codec, b"$5\r\nhello\r\n", [b"hello"])


def test_bulk_string_is_bytes(codec):
    reader = codec.Reader()
    reader.feed(b"$2\r\n{}\r\n")
    assert type(reader.gets()) is bytes


def test_bulk_string_empty(codec):
    assert_stream(codec, b"$0\r\n\r\n", [b""])


def test_bulk_string_holding_crlf_and_binary(codec):
    assert_stream(codec, b"$6\r\n\r\n\x00\r\n\xff\r\n", [b"\r\n\x00\r\n\xff"])


def test_bulk_negative_zero_length_is_empty(codec):
    assert_stream(codec, b"$-0\r\n\r\n", [b""])


def test_null_bulk(codec):
    assert_stream(codec, b"$-1\r\n", [None])


def test_fetch_reply_job_json(codec):
    job = {"jid": "0123456789abcdef", "jobtype": "Probe", "args": [1, "x"], "queue": "default"}
    body = naive_json(job)
    replies, error = outcome(codec, [b"$%d\r\n%s\r\n" % (len(body), body)])
    assert error is None and json.loads(replies[0]) == job


def test_integer(codec):
    assert_stream(codec, b":42\r\n:-7\r\n:0\r\n:-0\r\n", [42, -7, 0, 0])


def test_integer_eighteen_digits(codec):
    assert_stream(codec, b":999999999999999999\r\n:-999999999999999999\r\n",
                  [999999999999999999, -999999999999999999])


def test_array(codec):
    assert_stream(codec, b"*3\r\n$1\r\na\r\n:1\r\n+OK\r\n", [[b"a", 1, "OK"]])


def test_array_empty(codec):
    assert_stream(codec, b"*0\r\n", [[]])


def test_null_array(codec):
    assert_stream(codec, b"*-1\r\n", [None])


def test_nested_arrays_with_nulls(codec):
    assert_stream(codec, b"*3\r\n*2\r\n:1\r\n*0\r\n*-1\r\n$-1\r\n", [[[1, []], None, None]])


def test_array_holding_an_error(codec):
    replies, error = outcome(codec, [b"*2\r\n-ERR x\r\n:1\r\n"])
    assert error is None
    assert replies == [[ServerError("ERR", "x"), 1]]


def test_nesting_at_the_limit_is_accepted(codec):
    data = b"*1\r\n" * MAX_DEPTH + b":1\r\n"
    expected = 1
    for _ in range(MAX_DEPTH):
        expected = [expected]
    assert outcome(codec, [data]) == ([expected], None)


def test_pipelined_replies_in_order(codec):
    data = b"+OK\r\n$3\r\nabc\r\n$-1\r\n-ERR no\r\n:5\r\n*1\r\n+x\r\n"
    assert_stream(codec, data, ["OK", b"abc", None, ServerError("ERR", "no"), 5, ["x"]])


# ---------------------------------------------------------------- server errors

def test_error_reply_is_returned_not_raised(codec):
    reader = codec.Reader()
    reader.feed(b"-ERR boom\r\n")
    reply = reader.gets()
    assert type(reply) is ServerError
    assert (reply.code, reply.message, str(reply)) == ("ERR", "boom", "ERR boom")


def test_error_err_stream(codec):
    assert_stream(codec, b"-ERR unknown command FROB\r\n", [ServerError("ERR", "unknown command FROB")])


def test_error_without_message(codec):
    assert_stream(codec, b"-ERR\r\n", [ServerError("ERR", "")])


def test_error_notunique_code(codec):
    assert_stream(codec, b"-NOTUNIQUE Job not unique\r\n", [NotUniqueError("NOTUNIQUE", "Job not unique")])


def test_error_unknown_code_keeps_code(codec):
    assert_stream(codec, b"-WAT something odd\r\n", [ServerError("WAT", "something odd")])


def test_error_unknown_worker(codec):
    assert_stream(codec, b"-ERR unknown worker abc123\r\n", [UnknownWorkerError("ERR", "unknown worker abc123")])


def test_error_unknown_worker_old_capitalisation(codec):
    assert_stream(codec, b"-ERR Unknown worker abc\r\n", [UnknownWorkerError("ERR", "Unknown worker abc")])


def test_error_job_not_found(codec):
    assert_stream(codec, b"-ERR Job not found j-1\r\n", [JobNotFoundError("ERR", "Job not found j-1")])


def test_error_invalid_password(codec):
    assert_stream(codec, b"-ERR Invalid password\r\n", [InvalidPasswordError("ERR", "Invalid password")])


def test_error_invalid_utf8_replaced(codec):
    assert_stream(codec, b"-ERR bad \xfe\r\n", [ServerError("ERR", "bad \ufffd")])


# ---------------------------------------------------------------- malformed input

MALFORMED = [
    # (name, stream, reader kwargs, error text)
    ("bad type byte", b"!oops\r\n", {}, "invalid reply type byte 0x21"),
    ("bad type byte high", b"\xff\r\n", {}, "invalid reply type byte 0xff"),
    ("lowercase type", b"ok\r\n", {}, "invalid reply type byte 0x6f"),
    ("bulk plus sign", b"$+5\r\nhello\r\n", {}, "invalid bulk length: b'+5'"),
    ("bulk underscore", b"$5_0\r\n", {}, "invalid bulk length: b'5_0'"),
    ("bulk leading space", b"$ 5\r\nhello\r\n", {}, "invalid bulk length: b' 5'"),
    ("bulk trailing space", b"$5 \r\nhello\r\n", {}, "invalid bulk length: b'5 '"),
    ("bulk empty length", b"$\r\n", {}, "invalid bulk length: b''"),
    ("bulk lone minus", b"$-\r\n", {}, "invalid bulk length: b'-'"),
    ("bulk double minus", b"$--1\r\n", {}, "invalid bulk length: b'--1'"),
    ("bulk hex", b"$0x5\r\n", {}, "invalid bulk length: b'0x5'"),
    ("bulk unicode digit", "$\u0665\r\n".encode(), {}, "invalid bulk length: b'\\xd9\\xa5'"),
    ("bulk minus two", b"$-2\r\n", {}, "invalid bulk length: -2"),
    ("bulk nineteen digits", b"$1234567890123456789\r\n", {}, "invalid bulk length: b'1234567890123456789'"),
    ("bulk overflow long", b"$" + b"9" * 40 + b"\r\n", {}, "invalid bulk length: b'" + "9" * 32 + "'"),
    ("bulk over cap", b"$11\r\nhello world\r\n", {"max_bulk": 10}, "bulk length 11 exceeds limit 10"),
    ("bulk over default cap", b"$67108865\r\n", {}, "bulk length 67108865 exceeds limit 67108864"),
    ("bulk missing crlf", b"$3\r\nabcXY", {}, "bulk string not terminated by CRLF"),
    ("bulk lf only", b"$3\r\nabc\n\n", {}, "bulk string not terminated by CRLF"),
    ("bulk too short", b"$5\r\nabc\r\n+OK\r\n", {}, "bulk string not terminated by CRLF"),
    ("bare cr", b"+OK\rX", {}, "expected LF after CR"),
    ("cr cr", b"+OK\r\r\n", {}, "expected LF after CR"),
    ("bare cr in bulk header", b"$3\rabc\r\n", {}, "expected LF after CR"),
    ("line too long, no cr", b"+" + b"a" * 9, {"max_line": 8}, "line longer than 8 bytes"),
    ("line too long, with crlf", b"+" + b"a" * 9 + b"\r\n", {"max_line": 8}, "line longer than 8 bytes"),
    ("integer not digits", b":1.5\r\n", {}, "invalid integer: b'1.5'"),
    ("integer nineteen digits", b":1000000000000000000\r\n", {}, "invalid integer: b'1000000000000000000'"),
    ("integer plus", b":+1\r\n", {}, "invalid integer: b'+1'"),
    ("array bad length", b"*x\r\n", {}, "invalid array length: b'x'"),
    ("array minus two", b"*-2\r\n", {}, "invalid array length: -2"),
    ("array too long", b"*%d\r\n" % (MAX_ARRAY + 1), {}, f"array length {MAX_ARRAY + 1} exceeds limit {MAX_ARRAY}"),
    ("nesting too deep", b"*1\r\n" * (MAX_DEPTH + 1) + b":1\r\n", {}, f"arrays nested deeper than {MAX_DEPTH}"),
    ("bad element in array", b"*2\r\n:1\r\n!\r\n", {}, "invalid reply type byte 0x21"),
    ("after good replies", b"+OK\r\n:1\r\n?", {}, "invalid reply type byte 0x3f"),
]


@pytest.mark.parametrize("name, data, kw, message", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_raises_same_error_however_split(codec, name, data, kw, message):
    expected_replies = {"after good replies": ["OK", 1]}.get(name, [])
    assert_stream(codec, data, expected_replies, message, **kw)


def test_line_exactly_at_max_line_is_accepted(codec):
    assert_stream(codec, b"+" + b"a" * 8 + b"\r\n", ["a" * 8], max_line=8)


def test_bulk_exactly_at_cap_is_accepted(codec):
    assert_stream(codec, b"$4\r\nabcd\r\n", [b"abcd"], max_bulk=4)


def test_bulk_over_cap_raises_before_payload_arrives(codec):
    reader = codec.Reader(max_bulk=1024)
    reader.feed(b"$1025\r\n")
    with pytest.raises(ProtocolError, match="exceeds limit 1024"):
        reader.gets()


def test_line_too_long_raises_before_cr_arrives(codec):
    reader = codec.Reader(max_line=16)
    reader.feed(b"+" + b"x" * 17)
    with pytest.raises(ProtocolError, match="line longer than 16 bytes"):
        reader.gets()


def test_protocol_error_is_a_faktory_error(codec):
    from faktory.errors import FaktoryError
    reader = codec.Reader()
    reader.feed(b"?")
    with pytest.raises(FaktoryError):
        reader.gets()


# ---------------------------------------------------------------- dead reader

def test_dead_reader_raises_the_same_error_again(codec):
    reader = codec.Reader()
    reader.feed(b"!")
    with pytest.raises(ProtocolError) as first:
        reader.gets()
    with pytest.raises(ProtocolError) as second:
        reader.gets()
    assert str(first.value) == str(second.value) == "invalid reply type byte 0x21"


def test_dead_reader_ignores_later_valid_data(codec):
    reader = codec.Reader()
    reader.feed(b"$x\r\n")
    with pytest.raises(ProtocolError):
        reader.gets()
    reader.feed(b"+OK\r\n")
    with pytest.raises(ProtocolError, match="invalid bulk length"):
        reader.gets()
    with pytest.raises(ProtocolError, match="invalid bulk length"):
        reader.dispatch(lambda reply: None)


def test_dead_reader_keeps_unconsumed_bytes_counted(codec):
    reader = codec.Reader()
    reader.feed(b"+OK\r\n$3\r\nabcXY")
    assert reader.gets() == "OK"
    with pytest.raises(ProtocolError):
        reader.gets()
    assert reader.buffered() == len(b"$3\r\nabcXY")


# ---------------------------------------------------------------- buffered / dispatch

def test_buffered_counts_unconsumed_bytes(codec):
    reader = codec.Reader()
    reader.feed(b"+OK\r\n$5\r\nhel")
    assert reader.buffered() == 12
    assert reader.gets() == "OK"
    assert reader.buffered() == 7
    assert reader.gets() is NEED_DATA
    assert reader.buffered() == 7
    reader.feed(b"lo\r\n")
    assert reader.gets() == b"hello"
    assert reader.buffered() == 0


def test_feed_accepts_bytearray_and_memoryview(codec):
    reader = codec.Reader()
    reader.feed(bytearray(b"+O"))
    reader.feed(memoryview(b"xxK\r\n")[2:])
    reader.feed(b"")
    assert reader.gets() == "OK"


def test_feed_rejects_str(codec):
    with pytest.raises(TypeError):
        codec.Reader().feed("+OK\r\n")


def test_dispatch_delivers_every_reply_in_order(codec):
    reader = codec.Reader()
    reader.feed(b"+OK\r\n:1\r\n$-1\r\n$2\r\nab")
    got = []
    assert reader.dispatch(got.append) == 3
    assert got == ["OK", 1, None]
    assert reader.dispatch(got.append) == 0
    reader.feed(b"\r\n")
    assert reader.dispatch(got.append) == 1
    assert got[-1] == b"ab"


def test_dispatch_raises_after_delivering_good_replies(codec):
    reader = codec.Reader()
    reader.feed(b"+OK\r\n-ERR x\r\n!")
    got = []
    with pytest.raises(ProtocolError, match="0x21"):
        reader.dispatch(got.append)
    assert got == ["OK", ServerError("ERR", "x")]


def test_dispatch_callback_error_propagates_and_keeps_the_rest(codec):
    reader = codec.Reader()
    reader.feed(b":1\r\n:2\r\n:3\r\n")
    got = []

    def callback(reply):
        got.append(reply)
        if reply == 1:
            raise KeyError("stop")

    with pytest.raises(KeyError):
        reader.dispatch(callback)
    assert got == [1]
    assert reader.dispatch(got.append) == 2
    assert got == [1, 2, 3]


class _Waiter:
    """What ``Reader.resolve`` needs of a waiter: a ``set_result()`` that raises
    ``InvalidStateError`` once it is done, as a future's does."""

    def __init__(self, log, name, done=False):
        self.log, self.name, self._done = log, name, done

    def done(self):
        return self._done

    def set_result(self, reply):
        if self._done:
            raise asyncio.InvalidStateError("done")
        self._done = True
        self.log.append((self.name, reply))


def test_resolve_hands_replies_to_waiters_in_order_and_pops_their_deadlines(codec):
    from collections import deque
    reader = codec.Reader()
    log = []
    waiters = deque(_Waiter(log, n) for n in "abc")
    deadlines = deque([1.0, 2.0, 3.0])
    reader.feed(b"+OK\r\n-ERR x\r\n$2\r\na")
    assert reader.resolve(waiters, deadlines, {}) is None  # the third reply is incomplete
    assert log == [("a", "OK"), ("b", ServerError("ERR", "x"))]
    assert list(deadlines) == [3.0] and len(waiters) == 1
    reader.feed(b"b\r\n")
    assert reader.resolve(waiters, deadlines, {}) is None
    assert log[-1] == ("c", b"ab") and not waiters and not deadlines


def test_resolve_returns_what_it_cannot_hand_over(codec):
    from collections import deque
    reader = codec.Reader()
    log = []
    cancelled = _Waiter(log, "cancelled", done=True)
    waiters = deque([cancelled, _Waiter(log, "next")])
    deadlines = deque([1.0, 2.0])
    reader.feed(b":1\r\n:2\r\n:3\r\n")
    # A waiter that is done already: the reply comes back (consumed), the waiter stays.
    assert reader.resolve(waiters, deadlines, {}) == (1,)
    assert waiters[0] is cancelled and len(deadlines) == 2 and log == []
    waiters.popleft()
    deadlines.popleft()
    # Orphan handlers to consult: every reply comes back, one at a time.
    assert reader.resolve(waiters, deadlines, {"some": "orphan"}) == (2,)
    assert len(waiters) == 1
    # No waiter left for a reply: it comes back too (an unsolicited reply).
    assert reader.resolve(deque(), deque(), {}) == (3,)
    assert reader.resolve(waiters, deadlines, {}) is None
    assert reader.resolve(deque(), deque(), {}) is None  # a None reply would be (None,)
    reader.feed(b"$-1\r\n")
    assert reader.resolve(deque(), deque(), {}) == (None,)


def test_resolve_raises_after_handing_over_the_good_replies(codec):
    from collections import deque
    reader = codec.Reader()
    log = []
    waiters = deque(_Waiter(log, n) for n in "ab")
    deadlines = deque([1.0, 2.0])
    reader.feed(b"+OK\r\n!")
    with pytest.raises(ProtocolError, match="0x21"):
        reader.resolve(waiters, deadlines, {})
    assert log == [("a", "OK")] and len(waiters) == 1
    with pytest.raises(ProtocolError):  # the reader stays dead
        reader.resolve(waiters, deadlines, {})


def test_resolve_lets_a_waiter_send_more_and_close(codec):
    from collections import deque
    reader = codec.Reader()
    log = []
    waiters = deque()
    deadlines = deque()

    class Resending(_Waiter):
        def set_result(self, reply):
            super().set_result(reply)
            waiters.append(_Waiter(log, "sent from a callback"))  # as a worker's FETCH callback does
            deadlines.append(9.0)

    waiters.append(Resending(log, "first"))
    deadlines.append(1.0)
    reader.feed(b"+OK\r\n+OK\r\n")
    assert reader.resolve(waiters, deadlines, {}) is None
    assert log == [("first", "OK"), ("sent from a callback", "OK")]


def test_dispatch_callback_may_feed(codec):
    reader = codec.Reader()
    reader.feed(b":1\r\n")
    got = []

    def callback(reply):
        got.append(reply)
        if reply < 3:
            reader.feed(b":%d\r\n" % (reply + 1) + b"x" * 0)

    assert reader.dispatch(callback) == 3
    assert got == [1, 2, 3]


def test_large_bulk_in_small_chunks(codec):
    payload = bytes(range(256)) * 4096  # 1 MiB
    data = b"$%d\r\n%s\r\n" % (len(payload), payload)
    reader = codec.Reader()
    for i in range(0, len(data), 4096):
        reader.feed(data[i:i + 4096])
        if i + 4096 < len(data):
            assert reader.gets() is NEED_DATA
    assert reader.gets() == payload
    assert reader.buffered() == 0


def test_ten_megabytes_in_small_chunks_keeps_memory_bounded(codec):
    job = naive_json({"jid": "j" * 24, "jobtype": "Probe", "args": ["x" * 200]})
    reply = b"$%d\r\n%s\r\n" % (len(job), job)
    stream = reply * (10 * 1024 * 1024 // len(reply) + 1)
    chunk = 1000  # not a multiple of the reply size: replies straddle chunks
    reader = codec.Reader()
    count = 0

    def on_reply(r):
        nonlocal count
        count += 1

    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        worst = 0
        for i in range(0, len(stream), chunk):
            reader.feed(stream[i:i + chunk])
            reader.dispatch(on_reply)
            assert reader.buffered() < len(reply) + chunk
            worst = max(worst, tracemalloc.get_traced_memory()[0] - base)
    finally:
        tracemalloc.stop()
    assert count == len(stream) // len(reply)
    assert reader.buffered() == 0
    assert worst < 256 * 1024, worst


def test_large_reply_buffer_is_given_back(codec):
    big = b"x" * (4 * 1024 * 1024)
    reader = codec.Reader()
    tracemalloc.start()
    try:
        reader.feed(b"$%d\r\n%s\r\n" % (len(big), big))
        assert len(reader.gets()) == len(big)
        for _ in range(3):
            reader.feed(b"+OK\r\n")
            assert reader.gets() == "OK"
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert held < 1024 * 1024, held


def test_large_reply_buffer_is_given_back_while_replies_straddle_chunks(codec):
    big = b"x" * (4 * 1024 * 1024)
    reader = codec.Reader()
    tracemalloc.start()
    try:
        reader.feed(b"$%d\r\n%s\r\n+O" % (len(big), big))
        assert len(reader.gets()) == len(big)
        for _ in range(3):
            reader.feed(b"K\r\n+O")  # never a chunk boundary at a reply boundary
            assert reader.gets() == "OK"
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert held < 1024 * 1024, held
    assert reader.buffered() == 2


# ---------------------------------------------------------------- framing

def test_pack_command(codec):
    assert codec.pack_command("FETCH", "critical", "default") == b"FETCH critical default\r\n"
    assert codec.pack_command("INFO") == b"INFO\r\n"


def test_pack_command_utf8_argument(codec):
    assert codec.pack_command("QUEUE", "PAUSE", "qü") == "QUEUE PAUSE qü\r\n".encode()


@pytest.mark.parametrize("bad", ["a b", "a\r", "a\nb", "", " "])
def test_pack_command_rejects_bad_arguments(codec, bad):
    with pytest.raises(ValueError):
        codec.pack_command("QUEUE", "PAUSE", bad)
    with pytest.raises(ValueError):
        codec.pack_command(bad)


def test_pack_command_rejects_non_str(codec):
    with pytest.raises(TypeError):
        codec.pack_command("QUEUE", b"x")
    with pytest.raises(TypeError):
        codec.pack_command("QUEUE", 1)


def test_pack_json_compact_without_spaces(codec):
    payload = {"cmd": "kill", "target": "retries", "filter": {"jids": ["a", "b"], "jobtype": "X"}}
    out = codec.pack_json("MUTATE", payload)
    assert out == b'MUTATE {"cmd":"kill","target":"retries","filter":{"jids":["a","b"],"jobtype":"X"}}\r\n'
    assert b" " not in out[len(b"MUTATE "):]


def test_pack_json_is_single_line(codec):
    out = codec.pack_json("PUSH", {"args": ["line1\nline2\r\n"]})
    assert out.count(b"\n") == 1 and out.endswith(b"\r\n")
    assert out == b'PUSH {"args":["line1\\nline2\\r\\n"]}\r\n'


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_pack_json_rejects_nan_and_infinity(codec, value):
    with pytest.raises(ValueError):
        codec.pack_json("PUSH", {"args": [value]})
    with pytest.raises(ValueError):
        codec.dumps(value)


def test_pack_json_rejects_unserialisable(codec):
    with pytest.raises(TypeError):
        codec.pack_json("PUSH", {"args": [object()]})


def test_pack_json_rejects_bad_verb(codec):
    with pytest.raises(ValueError):
        codec.pack_json("BAD VERB", {})


def test_pack_json_escapes_unicode_to_ascii(codec):
    out = codec.pack_json("PUSH", {"args": ["é", "😀", "\x00", '"\\']})
    assert out == b'PUSH {"args":["\\u00e9","\\ud83d\\ude00","\\u0000","\\"\\\\"]}\r\n'
    out.decode("ascii")


def test_dumps_compact_ascii(codec):
    obj = {"a": [1, 2.5, None, True, False], "b": {"c": "d"}, "é": "ü"}
    assert codec.dumps(obj) == naive_json(obj).decode()
    assert codec.dumps("x") == '"x"'


def test_pack_fetch(codec):
    assert codec.pack_fetch(["critical", "default"]) == b"FETCH critical default\r\n"
    assert codec.pack_fetch(("one",)) == b"FETCH one\r\n"


def test_pack_fetch_rejects_no_queue_and_bad_names(codec):
    with pytest.raises(ValueError):
        codec.pack_fetch([])
    with pytest.raises(ValueError):
        codec.pack_fetch(["a b"])
    with pytest.raises(TypeError):
        codec.pack_fetch([None])


@pytest.mark.parametrize("jid", ["0123456789abcdef01234567", "j-1", "", "with space", 'q"uote',
                                 "back\\slash", "tab\t", "del\x7f", "é", "😀", "new\nline"])
def test_pack_ack_equals_json(codec, jid):
    assert codec.pack_ack(jid) == b"ACK " + naive_json({"jid": jid}) + b"\r\n"


def test_pack_ack_str_subclass(codec):
    class Jid(str):
        pass

    assert codec.pack_ack(Jid("abcdefgh")) == b'ACK {"jid":"abcdefgh"}\r\n'


def test_pack_ack_rejects_non_str(codec):
    with pytest.raises(TypeError):
        codec.pack_ack(b"abc")
    with pytest.raises(TypeError):
        codec.pack_ack(None)


def test_pack_push(codec):
    job = {"jid": "abcdefgh12", "jobtype": "Add", "args": [1, 2], "queue": "default", "retry": 25}
    assert codec.pack_push(job) == b"PUSH " + naive_json(job) + b"\r\n"


def make_jobs(n):
    return [{"jid": f"{i:024x}", "jobtype": "Add", "args": [i, "é", 1.5, None, True],
             "queue": "default", "retry": 25, "custom": {"k": "v"}} for i in range(n)]


@pytest.mark.parametrize("n", [0, 1, 1000])
def test_pack_pushb_equals_naive_construction(codec, n):
    jobs = make_jobs(n)
    naive = b"PUSHB [" + b",".join(naive_json(job) for job in jobs) + b"]\r\n"
    assert codec.pack_pushb(jobs) == naive
    assert codec.pack_pushb(iter(jobs)) == naive
    assert codec.pack_pushb(tuple(jobs)) == naive


def test_pack_pushb_rejects_nan(codec):
    jobs = make_jobs(3)
    jobs[2]["args"] = [math.nan]
    with pytest.raises(ValueError):
        codec.pack_pushb(jobs)


class _Color(int):
    pass


TRICKY_JSON = [
    ("ints at the 64-bit edges", [0, -1, 2 ** 63 - 1, -(2 ** 63), 2 ** 63, -(2 ** 63) - 1, 10 ** 30]),
    ("floats", [0.1, -0.0, 1e16, 1e-7, 123456789.125, 5e-324, 1.7976931348623157e308]),
    ("bools and null", [True, False, None]),
    ("escapes", ["\x00\x1f\x7f\b\f\n\r\t\"\\/", "é", "\ud800", "\U0001f600", "a\u2028b"]),
    ("non-str keys", {1: "a", 2.5: "b", None: "c", False: "d"}),
    ("int subclass", [_Color(3)]),
    ("str subclass", [type("S", (str,), {})("sub")]),
    ("ordered dict", __import__("collections").OrderedDict([("b", 1), ("a", 2)])),
    ("empty containers", [[], {}, (), [[]], {"": {}}]),
    ("deep nesting", json.loads("[" * 200 + "]" * 200)),
    ("tuple", (1, (2, 3))),
]


@pytest.mark.parametrize("name, value", TRICKY_JSON, ids=[t[0] for t in TRICKY_JSON])
def test_json_framing_matches_stdlib(codec, name, value):
    expected = naive_json(value)
    assert codec.dumps(value) == expected.decode()
    assert codec.pack_push(value) == b"PUSH " + expected + b"\r\n"
    assert codec.pack_json("X", value) == b"X " + expected + b"\r\n"
    assert codec.pack_pushb([value, value]) == b"PUSHB [" + expected + b"," + expected + b"]\r\n"


def test_json_circular_reference_rejected(codec):
    job = {"jid": "x", "args": []}
    job["args"].append(job)
    with pytest.raises(ValueError, match="Circular reference"):
        codec.pack_push(job)
    with pytest.raises(ValueError, match="Circular reference"):
        codec.pack_pushb([job])


def test_json_unserialisable_key_rejected(codec):
    with pytest.raises(TypeError, match="keys must be"):
        codec.dumps({(1, 2): "x"})


def test_pack_json_non_ascii_verb_rejected(codec):
    with pytest.raises(UnicodeEncodeError):
        codec.pack_json("VÉRB", {})
