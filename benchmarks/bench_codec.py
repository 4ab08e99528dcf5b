"""Codec benchmarks: compiled vs pure Python (vs hiredis where installed), in one run.

Run: ``python -m pytest benchmarks/bench_codec.py --benchmark-only``.  The gates at the
bottom (see ``benchmarks/conftest.py``) fail the run when a ratio regresses.

Parsing is measured the way the connection uses the reader: one ``feed()`` of one reply,
then one ``gets()``; each benchmark call does that 100 times so that the benchmark's own
call overhead does not drown a ~50 ns operation.  Like for like with hiredis: our reader
returns bulk strings as ``bytes`` and simple strings as ``str``; so does
``hiredis.Reader()`` for bulk strings, and ``hiredis.Reader(encoding="utf-8")`` for simple
strings (without ``encoding`` it would return ``b"OK"`` and skip the decode we pay for).
"""
from __future__ import annotations

import json

import pytest

from faktory import protocol

try:
    import hiredis
except ImportError:  # optional: the "bench" extra
    hiredis = None

REPEAT = 100
IMPLEMENTATIONS = ["cython", "python", "hiredis"]


def codec_or_skip(name: str):
    if name not in protocol.CODECS:
        pytest.skip(f"{name} codec not available")
    return protocol.CODECS[name]


def make_job(i: int) -> dict:
    return {"jid": f"{i:024x}", "jobtype": "SendWelcomeEmail", "queue": "default", "retry": 25,
            "args": [i, "user@example.com", {"locale": "en", "plan": "pro"}],
            "created_at": "2026-11-28T16:51:29.275574964Z", "custom": {"trace": "abc123"}}


def fetch_reply() -> bytes:
    """``$300\\r\\n<300-byte job json>\\r\\n``, like the real server's FETCH reply."""
    job = make_job(1)
    job["enqueued_at"] = "2026-11-28T16:51:29.275710497Z"
    body = json.dumps(job, separators=(",", ":")).encode()
    job["custom"]["pad"] = "x" * (300 - len(body) - len(',"pad":""'))
    body = json.dumps(job, separators=(",", ":")).encode()
    assert len(body) == 300, len(body)
    return b"$300\r\n" + body + b"\r\n"


def reader_for(impl: str, simple_strings_as_str: bool):
    if impl == "hiredis":
        if hiredis is None:
            pytest.skip("hiredis not installed")
        return hiredis.Reader(encoding="utf-8") if simple_strings_as_str else hiredis.Reader()
    return codec_or_skip(impl).Reader()


def parse_loop(reader, data: bytes):
    feed, gets = reader.feed, reader.gets
    loop = range(REPEAT)

    def run():
        for _ in loop:
            feed(data)
            gets()
    return run


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_parse_fetch(benchmark, impl):
    benchmark.group = f"parse FETCH reply (300-byte job), x{REPEAT}"
    data = fetch_reply()
    reader = reader_for(impl, simple_strings_as_str=False)
    reader.feed(data)
    assert reader.gets() == data[6:-2]
    benchmark(parse_loop(reader, data))


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_parse_ok(benchmark, impl):
    benchmark.group = f"parse +OK, x{REPEAT}"
    reader = reader_for(impl, simple_strings_as_str=True)
    reader.feed(b"+OK\r\n")
    assert reader.gets() == "OK"
    benchmark(parse_loop(reader, b"+OK\r\n"))


@pytest.mark.parametrize("impl", ["cython", "python"])
def test_frame_ack(benchmark, impl):
    benchmark.group = f"frame ACK, x{REPEAT}"
    pack_ack = codec_or_skip(impl).pack_ack
    jid = "0123456789abcdef01234567"
    assert pack_ack(jid) == b'ACK {"jid":"0123456789abcdef01234567"}\r\n'
    loop = range(REPEAT)

    def run():
        for _ in loop:
            pack_ack(jid)
    benchmark(run)


@pytest.mark.parametrize("impl", ["cython", "python"])
def test_frame_pushb_1000(benchmark, impl):
    benchmark.group = "frame PUSHB of 1000 jobs"
    pack_pushb = codec_or_skip(impl).pack_pushb
    jobs = [make_job(i) for i in range(1000)]
    assert pack_pushb(jobs) == protocol.CODECS["python"].pack_pushb(jobs)
    benchmark(pack_pushb, jobs)


@pytest.mark.parametrize("impl", ["cython", "python"])
def test_dispatch_pipelined_oks(benchmark, impl):
    # Informative, not gated: 100 pipelined replies in one chunk, delivered by dispatch().
    benchmark.group = f"feed {REPEAT} pipelined +OK, dispatch"
    reader = codec_or_skip(impl).Reader()
    data = b"+OK\r\n" * REPEAT
    feed, dispatch = reader.feed, reader.dispatch
    sink = [].append

    def run():
        feed(data)
        dispatch(sink)
    benchmark(run)


@pytest.mark.parametrize("impl", ["cython", "python"])
def test_gets_loop_pipelined_oks(benchmark, impl):
    # Informative: the same as above with a gets() loop, to show what dispatch() saves.
    benchmark.group = f"feed {REPEAT} pipelined +OK, dispatch"
    codec = codec_or_skip(impl)
    reader = codec.Reader()
    data = b"+OK\r\n" * REPEAT
    feed, gets, need_data = reader.feed, reader.gets, codec.NEED_DATA
    sink = [].append

    def run():
        feed(data)
        while (reply := gets()) is not need_data:
            sink(reply)
    benchmark(run)


HIREDIS_MARGIN = 1.2

BENCHMARK_GATES = [
    {"name": "parse FETCH: compiled >= 10x pure",
     "slow": "test_parse_fetch[python]", "fast": "test_parse_fetch[cython]", "min_ratio": 10.0},
    {"name": "parse +OK: compiled >= 10x pure",
     "slow": "test_parse_ok[python]", "fast": "test_parse_ok[cython]", "min_ratio": 10.0},
    {"name": f"parse FETCH: compiled within {HIREDIS_MARGIN}x of hiredis",
     "slow": "test_parse_fetch[hiredis]", "fast": "test_parse_fetch[cython]",
     "min_ratio": 1 / HIREDIS_MARGIN},
    {"name": f"parse +OK: compiled within {HIREDIS_MARGIN}x of hiredis",
     "slow": "test_parse_ok[hiredis]", "fast": "test_parse_ok[cython]", "min_ratio": 1 / HIREDIS_MARGIN},
    {"name": "frame ACK: compiled >= pure",
     "slow": "test_frame_ack[python]", "fast": "test_frame_ack[cython]", "min_ratio": 1.0},
    {"name": "frame PUSHB 1000: compiled >= pure",
     "slow": "test_frame_pushb_1000[python]", "fast": "test_frame_pushb_1000[cython]", "min_ratio": 1.0},
]
