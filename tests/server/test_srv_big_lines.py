"""Big PUSH and PUSHB lines (10 MB): the right reply for every shape, and the server's other
clients served while one is parsed (faktory.server.bigline, a slice per pass of the loop).

The checks are on replies, order and state, never on elapsed time (the latency figures are
benchmarks/bench_fuzz_server.py's).
"""
from __future__ import annotations

import gc
import json
import random
import socket
import threading
from typing import Any, Generator, Iterator

import pytest
from conftest import Target, internals
from hypothesis import given, settings
from hypothesis import strategies as st
from srv_helpers import Raw, wait_for

from faktory.server import ServerThread, bigline, gojson, server


def _collector_released() -> None:
    # the big values a command leaves are let go of after its reply, the collector held
    # off until they are gone (this server's or another test's)
    wait_for(lambda: not server._gc_hold.holders, timeout=30)

MB10 = 10 * 1024 * 1024


def _fill(unit: bytes) -> bytes:
    return unit * (MB10 // len(unit))


#: shape -> (line, reply): each a 10 MB line whose whole length must be read to answer it
SHAPES: dict[str, tuple[bytes, bytes]] = {
    "numbers, error at the end": (
        b'PUSH {"jid":"big-numbers","jobtype":"X","args":[' + _fill(b"12345.678e-3,-98765,0.5,7,") + b"1,]}",
        b"-ERR invalid JSON: invalid character ']' looking for beginning of value\r\n"),
    "strings, error at the end": (
        b'PUSH {"jid":"big-strings","jobtype":"X","args":[' + _fill(b'"abc\\u00e9\\n def \xc3\xa9 xyz",')
        + b'"x" "y"]}',
        b"-ERR invalid JSON: invalid character '\"' after array element\r\n"),
    "nested, error at the end": (
        b'PUSH {"jid":"big-nested","jobtype":"X","args":['
        + _fill(b'{"a":[{"b":[1,{"c":"d"}]},[[[]]]],"e":{"f":{"g":null}}},') + b'{"a":[}]}',
        b"-ERR invalid JSON: invalid character '}' looking for beginning of value\r\n"),
    "300 levels deep, error at the end": (
        b'PUSH {"jid":"big-deep","jobtype":"X","args":' + b'[{"k":' * 150 + b"[" + _fill(b"[[1,2],{}],")
        + b"nul]" + b"}]" * 150 + b"}",
        b"-ERR invalid JSON: invalid character ']' in literal null (expecting 'l')\r\n"),
    "450 levels deep (more than bigline.GUARD), error at the end": (
        b'PUSH {"jid":"big-deeper","jobtype":"X","args":' + b"[" * 450 + _fill(b"1.5,") + b"0" + b"]" * 449
        + b"}}",
        b"-ERR invalid JSON: invalid character '}' after array element\r\n"),
    "a bad escape at the end": (
        b'PUSH {"jid":"big-escape","jobtype":"X","args":["' + _fill(b"abcdefgh") + b'\\q"]}',
        b"-ERR invalid JSON: invalid character 'q' in string escape code\r\n"),
    "cut off at the end": (
        b'PUSH {"jid":"big-cut-off","jobtype":"X","args":[' + _fill(b'1,"two",{"three":[3.0,true,null]},') + b"4]",
        b"-ERR invalid JSON: unexpected end of JSON input\r\n"),
    "something after the end": (
        b'PUSH {"jid":"big-after","jobtype":"X","args":[' + _fill(b"1,2,") + b"3]} x",
        b"-ERR invalid JSON: invalid character 'x' after top-level value\r\n"),
    "valid JSON, no jobtype": (
        b'PUSH {"jid":"big-no-jobtype","args":[' + _fill(b'123456,"abcdef",') + b"0]}",
        b"-ERR jobs must have a jobtype parameter\r\n"),
    "valid JSON, retry a string": (
        b'PUSH {"jid":"big-bad-retry","jobtype":"X","retry":"often","args":[' + _fill(b"1.5,") + b"0]}",
        b"-ERR invalid JSON: json: cannot unmarshal string into Go struct field Job.retry of type int\r\n"),
    "valid JSON, a number float64 cannot hold": (
        b'PUSH {"jid":"big-overflow","jobtype":"X","args":[' + _fill(b"1.5,") + b"1e400,2]}",
        b"-ERR invalid JSON: json: cannot unmarshal number 1e400 into Go struct field Job.args of type float64\r\n"),
    "PUSHB, error at the end": (
        b"PUSHB [" + _fill(b'{"jid":"big-pushb-bad","jobtype":"X","args":[1]},') + b"]",
        b"-ERR invalid JSON: invalid character ']' looking for beginning of value\r\n"),
    "PUSHB of an object": (
        b'PUSHB {"jobs":[' + _fill(b'{"jid":"big-pushb-obj","jobtype":"X","args":[1]},') + b"{}]}",
        b"-ERR invalid JSON: json: cannot unmarshal object into Go value of type []client.Job\r\n"),
}


def _big_raw(target: Target) -> Raw:
    raw = target.raw()
    raw.sock.settimeout(60)
    return raw


@pytest.mark.parametrize("shape", list(SHAPES))
def test_a_10mb_line_gets_the_reply_of_its_shape(target: Target, shape: str) -> None:
    line, reply = SHAPES[shape]
    raw = _big_raw(target)
    assert raw.cmd(line + b"\r\n") == reply
    assert raw.cmd(b'PUSH {"jid":"after-the-big-line","jobtype":"X","args":[]}\r\n') == b"+OK\r\n"


def _jobs(n: int, queue: str) -> list[dict[str, Any]]:
    return [{"jid": f"bulk-{queue}-{i:09d}", "jobtype": "X", "args": [i, "abcdefghij" * 3, 2.5, -0.0],
             "queue": queue, "custom": {"k": [i]}} for i in range(n)]


def test_a_10mb_pushb_pushes_every_job(target: Target) -> None:
    jobs = _jobs(MB10 // 130, "big-pushb")
    line = b"PUSHB " + json.dumps(jobs).encode() + b"\r\n"
    assert len(line) > MB10
    raw = _big_raw(target)
    assert raw.cmd(line) == b"$2\r\n{}\r\n"
    first = json.loads(raw.body(b"FETCH big-pushb\r\n"))
    assert first["jid"] == jobs[0]["jid"] and first["args"] == [0, "abcdefghij" * 3, 2.5, -0.0]
    info = json.loads(raw.body(b"INFO\r\n"))
    assert info["faktory"]["queues"]["big-pushb"] == len(jobs) - 1
    assert raw.cmd(b"QUEUE REMOVE big-pushb\r\n") == b"+OK\r\n"


def test_a_10mb_job_is_stored_as_a_small_one_would_be(target: Target) -> None:
    unit = b'1.0, 2.5,12345678901234567890,-0,1e-7,"<&>\\u2028",{"b":1,"a":[null,true],"b":-0.0}'
    head = b'PUSH {"jid":"%s","jobtype":"X","queue":"big-valid","retry":3,"args":['
    raw = _big_raw(target)
    assert raw.cmd(head % b"small-valid-job" + unit + b"]}\r\n") == b"+OK\r\n"
    small = raw.body(b"FETCH big-valid\r\n")
    count = MB10 // len(unit) + 1
    assert raw.cmd(head % b"big-valid-job" + b",".join([unit] * count) + b"]}\r\n") == b"+OK\r\n"
    big = raw.body(b"FETCH big-valid\r\n")
    # args the last field: the big job's are the small one's, repeated
    stored = small[small.index(b'"args":[') + 8:-2]
    assert small.endswith(b"]}") and big.endswith(b"]}")
    assert big[big.index(b'"args":[') + 8:-2] == b",".join([stored] * count)


#: valid 10 MB jobs whose big part is nested: shape -> the args' JSON, stored byte for byte
NESTED_ARGS: dict[str, bytes] = {
    "one argument, a 10 MB list": b"[[" + _fill(b"1.5,") + b"0]]",
    "one argument, a map holding a 10 MB list": b'[{"k":[' + _fill(b"1.5,") + b'0],"a":1}]',
    "a 10 MB list 900 levels deep": b"[" * 900 + _fill(b"1.5,") + b"0" + b"]" * 900,
    "a 200 KB string 900 levels deep": b"[" * 900 + b'"' + b"x" * 200_000 + b'"' + b"]" * 900,
}


@pytest.mark.parametrize("shape", list(NESTED_ARGS))
def test_a_10mb_job_nested_deep_is_stored_whole(target: Target, shape: str) -> None:
    args = NESTED_ARGS[shape]
    raw = _big_raw(target)
    queue = b"big-nested-args"
    assert raw.cmd(b'PUSH {"jid":"big-nested-args","jobtype":"X","queue":"' + queue + b'","args":'
                   + args + b"}\r\n") == b"+OK\r\n"
    job = raw.body(b"FETCH " + queue + b"\r\n")
    # (keys sorted as Go's map encoding sorts them: the map arg's "a" comes first)
    expected = args.replace(b'{"k":[', b'{"a":1,"k":[').replace(b'0],"a":1}', b"0]}")
    assert job.index(b'"args":' + expected) > 0
    assert raw.cmd(b'ACK {"jid":"big-nested-args"}\r\n') == b"+OK\r\n"


def test_a_10mb_job_failed_and_retried_keeps_its_args(target: Target) -> None:
    # FAIL re-encodes the stored job with its failure (a step at a time when it is huge)
    args = b'[[' + _fill(b"1.5,-0,") + b'0],{"b":[-0],"a":"x"}]'
    raw = _big_raw(target)
    assert raw.cmd(b'PUSH {"jid":"big-failed-job","jobtype":"X","queue":"big-fail","retry":3,"args":'
                   + args + b"}\r\n") == b"+OK\r\n"
    raw.body(b"FETCH big-fail\r\n")
    assert raw.cmd(b'FAIL {"jid":"big-failed-job","errtype":"E","message":"boom","backtrace":["x"]}\r\n') \
        == b"+OK\r\n"
    sets = json.loads(raw.body(b"INFO\r\n"))["faktory"]["sets"]
    assert sets["retries"] >= 1
    assert raw.cmd(b'FAIL {"jid":"big-failed-job","errtype":"E","message":"again"}\r\n') \
        == b"-ERR Job not found big-failed-job\r\n"
    assert raw.cmd(b'MUTATE {"cmd":"requeue","target":"retries","filter":{"jids":["big-failed-job"]}}\r\n') \
        == b"+OK\r\n"
    job = raw.body(b"FETCH big-fail\r\n")
    assert job.startswith(b'{"retry":3,"failure":{"failed_at":"')
    assert b'"message":"boom","errtype":"E","backtrace":["x"],"retry_count":0,"remaining":3}' in job
    assert job.endswith(b'"args":' + args.replace(b'{"b":[-0],"a":"x"}', b'{"a":"x","b":[-0]}') + b"}")
    assert raw.cmd(b'ACK {"jid":"big-failed-job"}\r\n') == b"+OK\r\n"


@internals
@pytest.mark.skipif(not bigline.available(), reason="the compiled scanner is not built")
def test_a_client_gone_in_the_middle_of_a_huge_jobs_fail_leaves_it_reserved(
        monkeypatch: pytest.MonkeyPatch) -> None:
    event = threading.Event()
    encode = gojson.encode_steps

    def gated(obj: Any) -> Generator[None, None, bytes]:
        while not event.is_set():
            yield
        return (yield from encode(obj))
    with ServerThread() as srv, Raw("127.0.0.1", srv.port, timeout=60) as other:
        other.hello()
        with Raw("127.0.0.1", srv.port, timeout=60) as gone:
            gone.hello()
            # (a big jobtype: the FAIL cannot keep the big members as stored, and takes steps)
            assert gone.cmd(b'PUSH {"jid":"big-fail-gone","jobtype":"' + b"X" * 70_000
                            + b'","queue":"bfg","args":[[' + _fill(b"1.5,") + b"0]]}\r\n") == b"+OK\r\n"
            gone.body(b"FETCH bfg\r\n")
            monkeypatch.setattr(gojson, "encode_steps", gated)
            gone.send(b'FAIL {"jid":"big-fail-gone","errtype":"E","message":"m"}\r\n')
            wait_for(lambda: _working(srv), timeout=30)
            assert json.loads(other.body(b"INFO\r\n"))["faktory"]["sets"]["retries"] == 0
        wait_for(lambda: not _working(srv), timeout=30)
        event.set()
        # still reserved, as before the FAIL (its connection was a producer's: no worker
        # whose going away would end the reservation): a FAIL on another connection goes through
        assert srv.call(lambda: "big-fail-gone" in srv.server.store.reservations)
        assert other.cmd(b'FAIL {"jid":"big-fail-gone","errtype":"E","message":"m"}\r\n') == b"+OK\r\n"
        assert json.loads(other.body(b"INFO\r\n"))["faktory"]["sets"]["retries"] == 1


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """Big lines' parses (in a ServerThread of this process) wait, a step per pass of the
    server's loop, until the event is set: the test sees the server between two steps."""
    event = threading.Event()
    parse = bigline.parse

    def gated(line: bytes, start: int) -> Generator[None, None, bigline.Outcome]:
        while not event.is_set():
            yield
        return (yield from parse(line, start))
    monkeypatch.setattr(bigline, "parse", gated)
    yield event
    event.set()


def _working(srv: ServerThread) -> bool:
    return bool(srv.call(lambda: any(c._work is not None for c in srv.server._conns)))


@internals
@pytest.mark.skipif(not bigline.available(), reason="the compiled scanner is not built")
def test_other_clients_are_served_while_a_big_line_is_parsed(gate: threading.Event) -> None:
    line, reply = SHAPES["nested, error at the end"]
    with ServerThread() as srv, Raw("127.0.0.1", srv.port, timeout=60) as big, \
            Raw("127.0.0.1", srv.port) as other:
        big.hello()
        other.hello()
        big.send(line + b"\r\nINFO\r\nPUSH {}\r\n")
        wait_for(lambda: _working(srv), timeout=30)
        # another client is answered while the line is in the middle of its parse, which
        # counts as buffered input meanwhile
        assert other.cmd(b"INFO\r\n").startswith(b"$")
        assert srv.call(lambda: srv.server.buffered) >= len(line)
        assert _working(srv)
        assert not gc.isenabled()  # held off while the big line is worked through
        gate.set()
        # the commands behind the big line are answered after it, in order
        assert big.reply() == reply
        assert json.loads(big.reply().split(b"\r\n", 1)[1])["server"]["faktory_version"]
        assert big.reply() == b"-ERR jobs must have a reasonable jid parameter\r\n"
        assert srv.call(lambda: srv.server.buffered) == 0
        _collector_released()
        assert gc.isenabled()


@internals
@pytest.mark.skipif(not bigline.available(), reason="the compiled scanner is not built")
def test_a_client_gone_in_the_middle_of_its_big_line_leaves_nothing_behind(gate: threading.Event) -> None:
    line = b'PUSHB [' + _fill(b'{"jid":"gone-in-the-middle","jobtype":"X","args":[1]},') + b'{}]\r\n'
    with ServerThread() as srv:
        with Raw("127.0.0.1", srv.port, timeout=60) as gone:
            gone.hello()
            gone.send(line)
            wait_for(lambda: _working(srv), timeout=30)
            gone.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        wait_for(lambda: srv.call(lambda: not srv.server._conns and srv.server.buffered == 0), timeout=30)
        assert srv.call(lambda: srv.server.store.queue_sizes()) == {}
        _collector_released()
        assert gc.isenabled()  # the holder went away with its connection


@internals
@pytest.mark.skipif(not bigline.available(), reason="the compiled scanner is not built")
def test_a_server_stopped_in_the_middle_of_a_big_line_stops(gate: threading.Event) -> None:
    line, _ = SHAPES["numbers, error at the end"]
    srv = ServerThread()
    srv.start()
    try:
        with Raw("127.0.0.1", srv.port, timeout=60) as big:
            big.hello()
            big.send(line + b"\r\n")
            wait_for(lambda: _working(srv), timeout=30)
            srv.stop()
            try:
                rest = big.reply()
            except (EOFError, ConnectionError):
                rest = b""
            assert rest in (b"", b"-ERR shutdown in progress\r\n")
        _collector_released()
        assert gc.isenabled()
    finally:
        srv.stop()


@internals
def test_a_10mb_pushb_leaves_a_collector_turned_off_by_the_application_off() -> None:
    gc.disable()
    try:
        with ServerThread() as srv, Raw("127.0.0.1", srv.port, timeout=60) as big:
            big.hello()
            jobs = _jobs(3000, "gcoff")
            assert big.cmd(b"PUSHB " + json.dumps(jobs).encode() + b"\r\n") == b"$2\r\n{}\r\n"
            assert not gc.isenabled()
    finally:
        gc.enable()


@internals
@pytest.mark.skipif(not bigline.available(), reason="the compiled scanner is not built")
def test_big_lines_in_parse_count_towards_max_buffered(gate: threading.Event) -> None:
    line, reply = SHAPES["nested, error at the end"]
    with ServerThread(max_buffered=16 * 1024 * 1024) as srv, \
            Raw("127.0.0.1", srv.port, timeout=60) as first, Raw("127.0.0.1", srv.port, timeout=60) as second:
        first.hello()
        second.hello()
        first.send(line + b"\r\n")
        wait_for(lambda: _working(srv), timeout=30)
        # the second line's bytes and the first one's in parse: over max_buffered, the
        # larger (the first) is dropped with its connection
        second.send(line + b"\r\n")
        with pytest.raises((EOFError, ConnectionError)):
            first.reply()
        wait_for(lambda: _working(srv), timeout=30)
        gate.set()
        assert second.reply() == reply
        assert srv.call(lambda: srv.server.buffered) == 0


# --------------------------------------------------------------------------- the same value or text as gojson.loads

def _shape(value: Any) -> list[Any]:
    # value and exact types (GoFloat, the -0 integer, dict key order), as a flat list (a
    # walk, not recursion: values nested a thousand deep compare too)
    out: list[Any] = []
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            out.append(("dict", list(v)))
            stack.extend(reversed(v.values()))
        elif isinstance(v, list):
            out.append(("list", len(v)))
            stack.extend(reversed(v))
        elif isinstance(v, float):
            out.append((type(v).__name__, repr(v), getattr(v, "lit", None)))
        else:
            out.append((type(v).__name__, v))
    return out


def _sliced(data: bytes) -> tuple[str, Any]:
    gen = bigline.parse(data, 0)
    while True:
        try:
            next(gen)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]


def _loads(data: bytes) -> tuple[str, Any]:
    try:
        return ("value", _shape(gojson.loads(data)))
    except gojson.JSONError as exc:
        return ("error", str(exc))


def _check(data: bytes) -> None:
    kind, value = _sliced(data)
    assert (kind, _shape(value) if kind == "value" else value) == _loads(data), data[:300]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([-0.0, 0, "", "\u00e9\u2028<&>", "\\", '"']) | st.text(),
    lambda children: st.lists(children, max_size=6) | st.dictionaries(
        st.sampled_from(["a", "b", "jid", "\u00e9", "args"]) | st.text(max_size=3), children, max_size=5),
    max_leaves=60)

_TOKENS = [b"{", b"}", b"[", b"]", b",", b":", b'"', b"\\", b"-", b"0", b"1.", b"e", b"tru", b"nul",
           b" ", b"\x01", b"\xff", b"\xc3", b"-0", b"1" * 5000]


@pytest.mark.skipif(not bigline.available(), reason="the compiled scanner is not built")
@settings(max_examples=400, deadline=None)
@given(json_values, st.integers(0, 2**32), st.sampled_from([8, 64, 1024]))
def test_the_sliced_parse_gives_what_loads_gives(value: Any, seed: int, chunk: int) -> None:
    # tiny chunks make the decoding of small documents go through every path of the big one's
    rnd = random.Random(seed)
    doc = json.dumps(value, ensure_ascii=rnd.random() < 0.5, separators=rnd.choice([(",", ":"), (", ", " : ")])).encode()
    saved = bigline.CHUNK
    bigline.CHUNK = chunk
    try:
        _check(doc)
        for _ in range(3):
            k = rnd.randrange(len(doc) + 1)
            op = rnd.random()
            doc = doc[:k] + rnd.choice(_TOKENS) + doc[k:] if op < 0.5 else doc[:k] + doc[k + 1:] if op < 0.8 else doc[:k]
            _check(doc)
    finally:
        bigline.CHUNK = saved


@pytest.mark.skipif(not bigline.available(), reason="the compiled scanner is not built")
@pytest.mark.parametrize("data", [
    b"[" * 100_000,                                             # deeper than Python's decoder goes
    b"[" * 2000 + b"]" * 2000,
    b"[1," * 300 + b"]" * 300,                                   # deep, then a syntax error
    b"[" + b"1" * 5000 + b"," + b"2," * 50_000 + b"3]",          # an integer int() refuses
    b"[" + b"1" * 5000 + b"," + b"2," * 50_000 + b"3,]",         # ... and a syntax error after it
    b"[" + b"1" * 5000 + b"]" + b"[" * 5000,                      # ... and deep after it
    b"[" * 500 + b"1" * 5000 + b"]" * 500,                        # deep then a long integer
    b"[" * 500 + b"]" * 500 + b"[" * 2000,
    # deeper than bigline.GUARD, in steps like any other: valid, and with an error at the end
    b"[" * 450 + b"1.5," * 30_000 + b"0" + b"]" * 450,
    b"[" * 900 + b'"' + b"x" * 100_000 + b'"' + b"]" * 900,
    b"[" * 450 + b"1.5," * 30_000 + b"0" + b"]" * 449 + b"}",
    b'{"a":' * 600 + b"[" + b"1," * 40_000 + b"2]" + b"}" * 599 + b"]",
    b" \r\n" * 30_000 + b'"' + b"a" * 100_000 + b'"  ',          # one huge string
    b'{"a":' + b'{"a":1,' * 20_000 + b'"b":2' + b"}" * 20_001,    # duplicate keys, nested objects
    b'{"a":[' + b"-0," * 40_000 + b'0],"a":[' + b"1.5e3," * 40_000 + b"2]}",
    # huge strings, decoded a piece at a time: cut only where the pieces decode to the same
    b'["' + b"\\u0041\\ud83d\\ude00" * 60_000 + b'", 1]',  # escapes only, surrogate pairs
    b'{"s":"' + b"\\n\\\\\\\"" * 100_000 + b'"}',          # escaped newlines, backslashes, quotes
    b'["' + b"\\udc00" * 100_000 + b'"]',                        # lone low surrogates: no cut at all
    b'{"k":["x", "' + "\u6f22\u5b57".encode() * 150_000 + b'"], "j":"' + b"\xff\xc3(\xe2\x82" * 80_000 + b'"}',
    b'"' + b"ab\\\\cd\\u00e9<" * 100_000 + b'"',             # a top-level string
])
def test_the_sliced_parse_of_an_odd_payload_gives_what_loads_gives(data: bytes) -> None:
    _check(data)




# --------------------------------------------------------------------------- normalised in steps

def _run(work: Generator[None, None, Any]) -> Any:
    while True:
        try:
            next(work)
        except StopIteration as done:
            return done.value


def _normalised_at_once(value: Any) -> Any:
    try:
        return ("value", _shape(gojson.normalize_any(value)))
    except gojson._Overflow as exc:
        return ("overflow", exc.args)


def _normalised_in_steps(value: Any) -> Any:
    known = _run(bigline.normalize_known({"args": value}))
    if id(value) not in known:  # small enough for one call
        return _normalised_at_once(value)
    item, result = known[id(value)]
    assert item is value
    if isinstance(result, gojson._Overflow):
        return ("overflow", result.args)
    return ("value", _shape(result))


@settings(max_examples=300, deadline=None)
@given(json_values, st.sampled_from([(1, 1), (2, 3), (8, 2)]))
def test_normalising_in_steps_gives_what_normalize_any_gives(value: Any, sizes: tuple[int, int]) -> None:
    # tiny steps: every container goes through the stepped path, nested ones included
    parsed = gojson.loads(json.dumps(value).encode())
    saved = bigline.NORMALIZE_COST, bigline.NORMALIZE_STEP
    bigline.NORMALIZE_COST, bigline.NORMALIZE_STEP = sizes
    try:
        assert _normalised_in_steps(parsed) == _normalised_at_once(parsed)
    finally:
        bigline.NORMALIZE_COST, bigline.NORMALIZE_STEP = saved


@pytest.mark.parametrize("doc", [
    b'[[1.0, 2.5, 1e400], {"b": 1, "a": [-0, 3]}]',    # a number float64 cannot hold, deep inside
    b'[{"z": {"y": [1.0]}, "a": 12345678901234567890}]',
    b"[" * 700 + b"1.0" + b"]" * 700,                   # deeper than a recursive normaliser could go
])
def test_normalising_odd_values_in_steps_gives_what_normalize_any_gives(doc: bytes) -> None:
    parsed = gojson.loads(doc)
    saved = bigline.NORMALIZE_COST
    bigline.NORMALIZE_COST = 1
    try:
        if doc.startswith(b"[" * 700):
            # (normalize_any itself would run out of recursion from the test's stack: the
            # stepped result is checked against the value it must be)
            assert _normalised_in_steps(parsed) == ("value", _shape(gojson.loads(doc.replace(b"1.0", b"1"))))
        else:
            assert _normalised_in_steps(parsed) == _normalised_at_once(parsed)
    finally:
        bigline.NORMALIZE_COST = saved


def test_flat_steps_runs_a_chain_of_generators_deeper_than_python_recursion() -> None:
    def level(n: int) -> Generator[Any, Any, Any]:
        yield  # a step
        if n == 0:
            raise KeyError("bottom")
        try:
            below = yield level(n - 1)
        except KeyError:
            if n != 3:
                raise
            below = -1  # caught on the way up, three levels above the bottom
        return below + 1
    steps = 0
    work = gojson.flat_steps(level(5000))
    while True:
        try:
            next(work)
            steps += 1
        except StopIteration as done:
            assert done.value == 4997 and steps == 5001
            break


@pytest.mark.skipif(not bigline.available(), reason="the compiled scanner is not built")
@pytest.mark.parametrize("job", [
    {"retry": 3, "custom": {"k": [1.5] * 30_000, "s": "x"}, "jid": "top-fields-1", "queue": "q1",
     "jobtype": "T", "reserve_for": 60, "enqueued_at": "2026-01-01T00:00:00Z", "args": [[1.5] * 30_000]},
    {"jid": "top-fields-2", "queue": "q\u00e9", "jobtype": "T", "args": ["x" * 100_000, 1, "y" * 70_000],
     "failure": {"message": "m", "backtrace": ["b" * 70_000]}},
    {"jid": "top-fields-3", "queue": "q", "jobtype": "T" * 70_000, "args": [{"a": [[-0.0] * 20_000]}]},
])
def test_the_top_fields_of_a_huge_stored_job_are_read_without_decoding_it(job: dict[str, Any]) -> None:
    # requeue and the reading of a record's reserve_for and enqueued_at take these
    payload = json.dumps(job, separators=(",", ":"), ensure_ascii=False).encode()
    assert len(payload) > bigline.BIG_LINE
    whole = gojson.reparse_job(payload)
    top = bigline.top_fields(payload)
    assert list(top) == list(whole)
    for key, value in top.items():
        if value is None:  # a big member, not built
            assert len(json.dumps(whole[key])) >= bigline.CHUNK
        else:
            assert value == whole[key], key
    assert top["queue"] == job["queue"]


def _one_call_restamp(payload: bytes, stamp: str) -> bytes:
    # what Store.enqueue_due did for every job: reparse, normalise, set, re-encode
    job = gojson.reparse_job(payload)
    job["args"] = gojson.normalize_any(job.get("args"))
    if job.get("custom") is not None:
        job["custom"] = gojson.normalize_any(job["custom"])
    job["enqueued_at"] = stamp
    return gojson.marshal_job(job)


def _stored(job: dict[str, Any]) -> bytes:
    # the bytes the server stores for a pushed job
    line = json.dumps(job, separators=(",", ":"), ensure_ascii=False).encode()
    decoded = gojson.decode_job(gojson.loads(line), gojson.errors())
    assert decoded is not None
    decoded.setdefault("retry", 25)
    return gojson.marshal_job(decoded)


_FLOATS = [1.5, -0.0, 1e300, 12345678901234567890, 0.1] * 8_000


@pytest.mark.skipif(not bigline.available(), reason="the compiled scanner is not built")
@pytest.mark.parametrize("job, spliced", [
    ({"jid": "restamp-1", "jobtype": "T", "queue": "q", "at": "2027-01-15T08:01:00Z", "args": [_FLOATS]}, True),
    ({"jid": "restamp-2", "jobtype": "T", "queue": "q", "custom": {"z": _FLOATS, "a": {"y": 1, "b": "\u2028<"}},
      "args": ["x" * 100_000, 1], "enqueued_at": "2027-01-15T08:00:00Z"}, True),
    ({"jid": "restamp-3", "jobtype": "T", "queue": "q", "args": [1],
      "custom": {"k": "\u00e9" * 70_000}}, True),
    # a big member other than args and custom: the one-call path
    ({"jid": "restamp-4", "jobtype": "T" * 70_000, "queue": "q", "args": [_FLOATS]}, False),
    ({"jid": "restamp-5", "jobtype": "T", "queue": "q", "args": [1], "retry": 3,
      "failure": {"message": "m", "errtype": "E", "backtrace": ["b" * 70_000], "retry_count": 1}}, False),
])
def test_a_huge_job_coming_due_is_restamped_as_the_one_call_path_would(job: dict[str, Any], spliced: bool) -> None:
    payload = _stored(job)
    assert len(payload) > bigline.BIG_LINE
    stamp = "2027-01-15T08:01:00.5Z"
    got = bigline.restamped(payload, {"enqueued_at": stamp})
    if spliced:
        assert got == _one_call_restamp(payload, stamp)
    else:
        assert got is None

    def fail(job: dict[str, Any]) -> str:  # what a FAIL changes
        job["retry"] = 7
        job["failure"] = {"retry_count": 0, "remaining": 7, "failed_at": stamp, "message": "m\u00e9",
                          "errtype": "E", "backtrace": ["a.py:1"], "next_at": stamp}
        return "planned"
    done = bigline.rewritten(payload, fail)
    if spliced:
        assert done is not None and done[1] == "planned"
        whole = gojson.reparse_job(payload)
        whole["args"] = gojson.normalize_any(whole.get("args"))
        if whole.get("custom") is not None:
            whole["custom"] = gojson.normalize_any(whole["custom"])
        fail(whole)
        assert done[0] == gojson.marshal_job(whole)
    else:
        assert done is None


@internals
@pytest.mark.skipif(not bigline.available(), reason="the compiled scanner is not built")
def test_a_huge_scheduled_job_and_a_huge_retry_come_due_whole() -> None:
    from faktory.server.clock import ManualClock
    start = 1_800_000_000.0  # 2027-01-15T08:00:00Z
    clock = ManualClock(start)
    args = b"[[" + b"1.5,-0," * 200_000 + b'0],"' + b"x" * 100_000 + b'"]'
    with ServerThread(clock=clock) as srv, Raw("127.0.0.1", srv.port, timeout=60) as raw:
        raw.hello()
        assert raw.cmd(b'PUSH {"jid":"huge-scheduled","jobtype":"X","queue":"hs","at":"2027-01-15T08:01:00Z",'
                       b'"args":' + args + b"}\r\n") == b"+OK\r\n"
        assert raw.cmd(b'PUSH {"jid":"huge-retried","jobtype":"X","queue":"hs","retry":2,"args":' + args
                       + b"}\r\n") == b"+OK\r\n"
        assert raw.body(b"FETCH hs\r\n").startswith(b'{"retry":2,"jid":"huge-retried"')
        assert raw.cmd(b'FAIL {"jid":"huge-retried","errtype":"E","message":"m"}\r\n') == b"+OK\r\n"
        srv.call(clock.advance, 3600)
        srv.call(srv.server.tick)
        jobs = [raw.body(b"FETCH hs\r\n") for _ in range(2)]
        assert sorted(job[job.index(b'"jid":'):job.index(b',"queue"')] for job in jobs) == \
            [b'"jid":"huge-retried"', b'"jid":"huge-scheduled"']
        for job in jobs:
            assert job.endswith(b'"args":' + args + b"}"), job[-200:]
            assert b'"enqueued_at":"2027-01-15T09:0' in job
        # a reservation of a huge job expiring: a failure like any other, its args whole
        assert raw.cmd(b'PUSH {"jid":"huge-expired","jobtype":"X","queue":"hs","reserve_for":60,"args":'
                       + args + b"}\r\n") == b"+OK\r\n"
        assert b'"jid":"huge-expired"' in raw.body(b"FETCH hs\r\n")
        srv.call(clock.advance, 120)
        srv.call(srv.server.tick)
        retried = srv.call(lambda: [r.payload for r in srv.server.store.retries.ordered()])
        assert len(retried) == 1 and b'"errtype":"ReservationExpired"' in retried[0]
        assert retried[0].endswith(b'"args":' + args + b',"reserve_for":60}'), retried[0][-200:]


@pytest.mark.skipif(not bigline.available(), reason="the compiled scanner is not built")
def test_a_huge_job_is_previewed_for_display_without_decoding_it() -> None:
    job = {"retry": 3, "failure": {"message": "boom", "backtrace": ["b" * 70_000]}, "custom": {"k": [1.5] * 30_000},
           "jid": "preview-1", "queue": "q", "jobtype": "T", "args": [[2.5] * 30_000, "x"]}
    payload = json.dumps(job, separators=(",", ":")).encode()
    shown = bigline.preview_fields(payload, 40)
    assert shown["failure"] == job["failure"]  # decoded: the page reads its fields
    assert (shown["jid"], shown["queue"], shown["retry"]) == ("preview-1", "q", 3)
    assert type(shown["args"]) is bigline.Preview and shown["args"] == payload[
        payload.index(b'"args":') + 7:][:40].decode() + "\u2026"
    assert type(shown["custom"]) is bigline.Preview and shown["custom"].startswith('{"k":[1.5,')
    small = json.dumps({"jid": "preview-2", "args": [1]}).encode()
    assert bigline.preview_fields(small) == {"jid": "preview-2", "args": [1]}
