"""Big FAIL, BEAT and MUTATE lines (over bigline.BIG_LINE): parsed a slice per pass of the
server's loop like big PUSH lines, with the replies the one-go parse gives (the real
server's: FAIL and BEAT echo the payload they could not read, MUTATE gives Go's text).

The checks are on replies and order, never on elapsed time.
"""
from __future__ import annotations

import json
import threading
from typing import Generator, Iterator

import pytest
from conftest import internals
from srv_helpers import Raw, wait_for

from faktory.server import ServerThread, bigline

MB = 1024 * 1024


def _fill(unit: bytes, size: int = MB) -> bytes:
    return unit * (size // len(unit))


LINES = {
    "FAIL, a big backtrace, unknown job": b'FAIL {"jid":"big-fail-job1","message":"m","errtype":"E","backtrace":['
                                          + _fill(b'"frame <&> line 1",') + b'"x"]}',
    "FAIL, error at the end": b'FAIL {"jid":"big-fail-job2","backtrace":[' + _fill(b'"frame",') + b'"x" "y"]}',
    "FAIL, nested, error at the end": b'FAIL {"jid":"x","extra":['
                                      + _fill(b'{"a":[{"b":[1,{"c":"d"}]},[[[]]]],"e":{"f":{"g":null}}},') + b'{"a":[}]}',
    "FAIL, a backtrace of numbers": b'FAIL {"jid":"big-fail-job3","backtrace":[' + _fill(b"1,") + b"2]}",
    "BEAT, error at the end": b'BEAT {"wid":"w","x":[' + _fill(b"1.5,") + b"1,]}",
    "BEAT, unknown worker": b'BEAT {"wid":"no-such-worker","x":[' + _fill(b'"abc",') + b'"d"]}',
    "BEAT, rss_kb a string": b'BEAT {"x":[' + _fill(b'"abc",') + b'"d"],"rss_kb":"a lot"}',
    "MUTATE, error at the end": b'MUTATE {"cmd":"clear","target":"dead","filter":{"jids":['
                                + _fill(b'"abcdef",') + b'"x",]}}',
    "MUTATE, many jids": b'MUTATE {"cmd":"kill","target":"retries","filter":{"jids":[' + _fill(b'"abcdef",') + b'"x"]}}',
    "MUTATE, jids not strings": b'MUTATE {"cmd":"kill","target":"retries","filter":{"jids":[' + _fill(b"1,") + b"2]}}",
}


def _replies(port: int) -> dict[str, bytes]:
    out = {}
    with Raw("127.0.0.1", port, timeout=120) as raw:
        raw.hello(wid="big-commands-worker")
        for name, line in LINES.items():
            out[name] = raw.cmd(line + b"\r\n")
            assert raw.cmd(b"INFO\r\n").startswith(b"$")  # the connection goes on
    return out


@internals
@pytest.mark.skipif(not bigline.available(), reason="the compiled scanner is not built")
def test_big_fail_beat_and_mutate_lines_get_the_replies_of_the_one_go_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    with ServerThread() as srv:
        sliced = _replies(srv.port)
        monkeypatch.setattr(bigline, "BIG_LINE", 1 << 30)  # parsed in one go
        one_go = _replies(srv.port)
    assert sliced == one_go
    assert sliced["FAIL, a big backtrace, unknown job"] == b"-ERR Job not found big-fail-job1\r\n"
    assert sliced["FAIL, error at the end"] == b"-ERR invalid FAIL " + LINES["FAIL, error at the end"][5:] + b"\r\n"
    assert sliced["BEAT, error at the end"] == b"-ERR invalid BEAT " + LINES["BEAT, error at the end"][5:] + b"\r\n"
    assert sliced["BEAT, unknown worker"] == b"-ERR unknown worker no-such-worker\r\n"
    assert sliced["MUTATE, error at the end"] == b"-ERR invalid character ']' looking for beginning of value\r\n"
    assert sliced["MUTATE, many jids"] == b"+OK\r\n"
    assert sliced["MUTATE, jids not strings"].startswith(
        b"-ERR json: cannot unmarshal number into Go struct field ")


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    event = threading.Event()
    parse = bigline.parse

    def gated(line: bytes, start: int) -> Generator[None, None, bigline.Outcome]:
        while not event.is_set():
            yield
        return (yield from parse(line, start))
    monkeypatch.setattr(bigline, "parse", gated)
    yield event
    event.set()


@internals
@pytest.mark.skipif(not bigline.available(), reason="the compiled scanner is not built")
@pytest.mark.parametrize("name", ["FAIL, nested, error at the end", "BEAT, error at the end", "MUTATE, error at the end"])
def test_other_clients_are_served_while_a_big_command_is_parsed(gate: threading.Event, name: str) -> None:
    with ServerThread() as srv, Raw("127.0.0.1", srv.port, timeout=60) as big, \
            Raw("127.0.0.1", srv.port) as other:
        big.hello()
        other.hello()
        big.send(LINES[name] + b"\r\nPUSH {}\r\n")
        wait_for(lambda: srv.call(lambda: any(c._work is not None for c in srv.server._conns)), timeout=30)
        assert other.cmd(b"INFO\r\n").startswith(b"$")
        gate.set()
        assert big.reply().startswith(b"-ERR ")
        assert big.reply() == b"-ERR jobs must have a reasonable jid parameter\r\n"  # in order
        assert json.loads(big.body(b"INFO\r\n"))["server"]
