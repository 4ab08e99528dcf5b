"""A huge valid job stored: its bytes encoded a step at a time (gojson.encode_steps), the
server's other clients served meanwhile, the bytes those the one-call encoder gives.

The checks are on replies, order, stored bytes and state, never on elapsed time.
"""
from __future__ import annotations

import gc
import json
import re
import socket
import threading
from typing import Any, Generator, Iterator

import pytest
from conftest import internals
from hypothesis import given, settings
from hypothesis import strategies as st
from srv_helpers import Raw, wait_for

from faktory.server import ServerThread, bigline, gojson, server


def _collector_released() -> None:
    # the big values a command leaves are let go of after its reply, the collector held
    # off until they are gone (this server's or another test's)
    wait_for(lambda: not server._gc_hold.holders, timeout=30)

MB = 1024 * 1024


def _float_job(jid: str, size: int, queue: str) -> bytes:
    floats = b",".join(b"%r" % (i * 1.0001 + 0.123456789) for i in range(size // 18))
    return b'PUSH {"jid":"%s","jobtype":"X","queue":"%s","args":[%s]}\r\n' % (
        jid.encode(), queue.encode(), floats)


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[threading.Event, threading.Event]]:
    """``(encoding, go)``: the sliced encodes of the server (a ServerThread of this process)
    set ``encoding`` after their first step, then wait, a step per pass of the server's
    loop, until ``go`` is set."""
    encoding, go = threading.Event(), threading.Event()
    steps = gojson.encode_steps

    def gated(obj: Any) -> Generator[None, None, bytes]:
        work = steps(obj)
        try:
            next(work)
        except StopIteration as done:  # pragma: no cover - a huge job takes many steps
            return done.value  # type: ignore[no-any-return]
        encoding.set()
        while not go.is_set():
            yield
        return (yield from work)
    monkeypatch.setattr(gojson, "encode_steps", gated)
    yield encoding, go
    go.set()


def _working(srv: ServerThread) -> bool:
    return bool(srv.call(lambda: any(c._work is not None for c in srv.server._conns)))


@internals
@pytest.mark.skipif(not bigline.available(), reason="the compiled scanner is not built")
def test_other_clients_are_served_while_a_huge_job_is_stored(
        gate: tuple[threading.Event, threading.Event]) -> None:
    encoding, go = gate
    line = _float_job("huge-floats", 8 * MB, "huge")
    with ServerThread() as srv, Raw("127.0.0.1", srv.port, timeout=60) as big, \
            Raw("127.0.0.1", srv.port) as other:
        big.hello()
        other.hello()
        big.send(line + b"INFO\r\nPUSH {}\r\n")
        assert encoding.wait(60)
        # in the middle of the encode: another client is answered, the job is not stored yet
        assert other.cmd(b"INFO\r\n").startswith(b"$")
        assert other.cmd(b'PUSH {"jid":"small-one-1","jobtype":"X","queue":"small","args":[]}\r\n') == b"+OK\r\n"
        assert _working(srv)
        assert srv.call(lambda: srv.server.store.queue_sizes()) == {"small": 1}
        assert not gc.isenabled()  # held off while the big line is worked through
        go.set()
        # then the job is stored and the commands behind it answered, in order
        assert big.reply() == b"+OK\r\n"
        assert json.loads(big.reply().split(b"\r\n", 1)[1])["server"]["faktory_version"]
        assert big.reply() == b"-ERR jobs must have a reasonable jid parameter\r\n"
        stored = json.loads(big.body(b"FETCH huge\r\n"))
        assert stored["jid"] == "huge-floats" and len(stored["args"]) == 8 * MB // 18
        assert stored["args"][:2] == [0.123456789, 1.123556789]
        assert srv.call(lambda: srv.server.buffered) == 0
        _collector_released()
        assert gc.isenabled()


_ENQUEUED = re.compile(rb'"enqueued_at":"[^"]*"')
#: a bit of everything the encoder rewrites: floats, numbers that become tokens, integers
#: past 2**53, Go's HTML escapes, control characters, invalid UTF-8, an unsorted map,
#: nested containers big and small
_UNIT = (b'1.0, 2.5,12345678901234567890,-0,-0.0,1e-7,3.25e-5,1e21,"<&>\\u2028\\u2029\\u0000\\t",'
         b'"\xff\xc3(\xed\xa0\x80","\\ud83d\\ude00\\ud83d",{"b":1,"a":[null,true,{"d":1e-9,"c":"&"}],"b":-0.0},'
         b'[[],{},"\xc3\xa9\xe2\x80\xa8"]')


def _mixed_job(jid: str) -> bytes:
    count = 3 * MB // len(_UNIT)
    custom = b"{" + b",".join(b'"k%06d":[%d,"<v>",1.5e-8]' % (count - i, i) for i in range(count // 8)) + b"}"
    big_string = b'"' + b"<abc&\\n\xc3\xa9\\u2028>" * (MB // 16) + b'"'
    return (b'PUSH {"jid":"%s","jobtype":"X","queue":"mixed","retry":3,"created_at":"2026-01-01T00:00:00Z",'
            b'"custom":%s,"args":[%s,%s]}\r\n' % (jid.encode(), custom, b",".join([_UNIT] * count), big_string))


@internals
@pytest.mark.skipif(not bigline.available(), reason="the compiled scanner is not built")
def test_a_huge_job_is_stored_as_the_one_call_path_stores_it(monkeypatch: pytest.MonkeyPatch) -> None:
    with ServerThread() as srv, Raw("127.0.0.1", srv.port, timeout=120) as raw:
        raw.hello()
        assert raw.cmd(_mixed_job("mixed-sliced")) == b"+OK\r\n"
        sliced = raw.body(b"FETCH mixed\r\n")
        monkeypatch.setattr(bigline, "BIG_LINE", 1 << 30)  # the line parsed and stored in one go
        assert raw.cmd(_mixed_job("mixed-one-go")) == b"+OK\r\n"
        one_go = raw.body(b"FETCH mixed\r\n")
    assert len(sliced) > 5 * MB
    assert _ENQUEUED.sub(b"", sliced) == _ENQUEUED.sub(b"", one_go).replace(b"mixed-one-go", b"mixed-sliced")


@internals
@pytest.mark.skipif(not bigline.available(), reason="the compiled scanner is not built")
def test_a_client_gone_in_the_middle_of_storing_its_huge_job_leaves_nothing_behind(
        gate: tuple[threading.Event, threading.Event]) -> None:
    encoding, go = gate
    with ServerThread() as srv:
        with Raw("127.0.0.1", srv.port, timeout=60) as gone:
            gone.hello()
            gone.send(_float_job("gone-in-the-middle", 4 * MB, "gone"))
            assert encoding.wait(60)
            gone.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        wait_for(lambda: srv.call(lambda: not srv.server._conns and srv.server.buffered == 0), timeout=30)
        assert srv.call(lambda: srv.server.store.queue_sizes()) == {}
        _collector_released()
        assert gc.isenabled()  # the holder went away with its connection
        go.set()
        with Raw("127.0.0.1", srv.port) as after:
            after.hello()
            assert after.cmd(b'PUSH {"jid":"after-the-gone","jobtype":"X","queue":"gone","args":[1]}\r\n') == b"+OK\r\n"
            assert json.loads(after.body(b"FETCH gone\r\n"))["jid"] == "after-the-gone"


@internals
@pytest.mark.skipif(not bigline.available(), reason="the compiled scanner is not built")
def test_a_huge_job_for_a_bad_queue_is_refused_before_it_is_encoded(
        gate: tuple[threading.Event, threading.Event]) -> None:
    encoding, _ = gate
    with ServerThread() as srv, Raw("127.0.0.1", srv.port, timeout=60) as raw:
        raw.hello()
        assert raw.cmd(_float_job("bad-queue-job", 1 * MB, "no good")) == (
            b'-ERR cannot get "no good" queue: queue names must match \\A[a-zA-Z0-9._-]+\\z\r\n')
        assert not encoding.is_set()
        assert srv.call(lambda: srv.server.store.queue_sizes()) == {}


# --------------------------------------------------------------------------- the same bytes as encode

_strings = st.text() | st.sampled_from(["", "<&>\u2028\u2029", "\udc80\udcff", "\ud83d", "\x00\x1f\x7f", '"\\'])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from([-0.0, 1e-7, 1e21, 2.5e-5]) | _strings,
    lambda children: st.lists(children, max_size=8) | st.dictionaries(_strings, children, max_size=6),
    max_leaves=80)


@settings(max_examples=300, deadline=None)
@given(json_values, st.sampled_from([1, 3, 16, 2048]), st.sampled_from([1, 2, 5, 1024]),
       st.sampled_from([1, 2, 7, 32768]))
def test_the_sliced_encode_gives_what_encode_gives(value: Any, cost: int, items: int, chars: int) -> None:
    # tiny steps make small values go through every path of a huge one's
    value = gojson.normalize_any(value)
    saved = gojson.STEP_COST, gojson.STEP_ITEMS, gojson.STEP_CHARS
    gojson.STEP_COST, gojson.STEP_ITEMS, gojson.STEP_CHARS = cost, items, chars
    try:
        work = gojson.encode_steps({"retry": 25, "custom": value, "jid": "x", "args": [value, value]})
        while True:
            try:
                next(work)
            except StopIteration as done:
                sliced = done.value
                break
    finally:
        gojson.STEP_COST, gojson.STEP_ITEMS, gojson.STEP_CHARS = saved
    assert sliced == gojson.encode({"retry": 25, "custom": value, "jid": "x", "args": [value, value]})


def test_a_huge_value_is_encoded_in_many_small_steps() -> None:
    value = {"args": [i * 1.5 for i in range(100_000)], "custom": {"s": "<é>" * 200_000}}
    work = gojson.encode_steps(value)
    steps = 0
    while True:
        try:
            next(work)
            steps += 1
        except StopIteration as done:
            assert done.value == gojson.encode(value)
            break
    # 100,000 floats and a 600,000-character string: each step a bounded part of them
    assert steps >= 100_000 // gojson.STEP_COST + 600_000 // gojson.STEP_CHARS


def _huge_batch(prefix: str) -> bytes:
    floats = b",".join(b"%r" % (i * 1.0001 + 0.123456789) for i in range(2 * MB // 18))
    strings = b",".join(b'"s<%d>&"' % i for i in range(MB // 10))
    return (b'PUSHB [{"jid":"%s-floats","jobtype":"X","queue":"batch","created_at":"2026-01-01T00:00:00Z",'
            b'"args":[%s]},{"jid":"%s-small","jobtype":"X","queue":"batch","created_at":"2026-01-01T00:00:00Z",'
            b'"args":[1]},{"jid":"%s-strings","jobtype":"X","queue":"batch","created_at":"2026-01-01T00:00:00Z",'
            b'"custom":{"b":-0,"a":1e-7},"args":[%s]}]\r\n') % (
        prefix.encode(), floats, prefix.encode(), prefix.encode(), strings)


@internals
@pytest.mark.skipif(not bigline.available(), reason="the compiled scanner is not built")
def test_a_pushb_of_a_few_huge_jobs_stores_them_as_the_one_call_path_does(monkeypatch: pytest.MonkeyPatch) -> None:
    with ServerThread() as srv, Raw("127.0.0.1", srv.port, timeout=120) as raw:
        raw.hello()
        assert raw.cmd(_huge_batch("aaaa")) == b"$2\r\n{}\r\n"
        sliced = [raw.body(b"FETCH batch\r\n") for _ in range(3)]
        monkeypatch.setattr(bigline, "BIG_LINE", 1 << 30)  # the line parsed and stored in one go
        assert raw.cmd(_huge_batch("bbbb")) == b"$2\r\n{}\r\n"
        one_go = [raw.body(b"FETCH batch\r\n") for _ in range(3)]
    assert [len(b) > 64 * 1024 for b in sliced] == [True, False, True]
    assert [_ENQUEUED.sub(b"", b) for b in sliced] == [
        _ENQUEUED.sub(b"", b).replace(b'"bbbb-', b'"aaaa-') for b in one_go]


@internals
@pytest.mark.skipif(not bigline.available(), reason="the compiled scanner is not built")
def test_other_clients_are_served_while_a_pushb_of_huge_jobs_is_stored(
        gate: tuple[threading.Event, threading.Event]) -> None:
    encoding, go = gate
    with ServerThread() as srv, Raw("127.0.0.1", srv.port, timeout=60) as big, \
            Raw("127.0.0.1", srv.port) as other:
        big.hello()
        other.hello()
        big.send(_huge_batch("cccc") + b"PUSH {}\r\n")
        assert encoding.wait(60)
        assert other.cmd(b"INFO\r\n").startswith(b"$")
        assert srv.call(lambda: srv.server.store.queue_sizes()) == {}  # the first one not stored yet
        go.set()
        assert big.reply() == b"$2\r\n{}\r\n"
        assert big.reply() == b"-ERR jobs must have a reasonable jid parameter\r\n"
        assert srv.call(lambda: srv.server.store.queue_sizes()) == {"batch": 3}


@internals
@pytest.mark.skipif(not bigline.available(), reason="the compiled scanner is not built")
def test_a_pushb_of_huge_jobs_with_a_bad_one_stores_none() -> None:
    line = _huge_batch("dddd").replace(b'"args":[1]}', b'"args":[1],"retry":"x"}')
    with ServerThread() as srv, Raw("127.0.0.1", srv.port, timeout=60) as raw:
        raw.hello()
        assert raw.cmd(line) == (
            b"-ERR invalid JSON: json: cannot unmarshal string into Go struct field Job.retry of type int\r\n")
        assert srv.call(lambda: srv.server.store.queue_sizes()) == {}
