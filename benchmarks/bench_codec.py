"""Codec benchmarks: compiled vs pure Python (vs hiredis where installed), in one run.

Run: ``python -m pytest benchmarks/bench_codec.py --benchmark-only``.  The gates at the
bottom read ratios timed alternately (``test_codec_ratio``); the other benchmarks are the
same operations as pytest-benchmark tables, for comparing commits.

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


# -- the gates: alternating timings ------------------------------------------------------------
#
# Each comparison times the two sides alternately, ROUNDS times each, back to back (a few
# milliseconds apart), and compares the fastest round of each: a busy spell of the shared
# machine slows both sides of a ratio alike, where two separate benchmark series, minutes
# apart, can each catch a different one.

ROUNDS = 41


def _workloads(impl: str) -> dict[str, object]:
    """The functions timed for ``impl``: one call = REPEAT operations (PUSHB: one)."""
    if impl == "hiredis":
        if hiredis is None:
            pytest.skip("hiredis not installed")
        return {"parse FETCH": parse_loop(hiredis.Reader(), fetch_reply()),
                "parse +OK": parse_loop(hiredis.Reader(encoding="utf-8"), b"+OK\r\n")}
    codec = codec_or_skip(impl)
    jobs = [make_job(i) for i in range(1000)]
    pack_ack, pack_pushb = codec.pack_ack, codec.pack_pushb
    loop = range(REPEAT)

    def frame_ack() -> None:
        for _ in loop:
            pack_ack("0123456789abcdef01234567")

    return {"parse FETCH": parse_loop(codec.Reader(), fetch_reply()),
            "parse +OK": parse_loop(codec.Reader(), b"+OK\r\n"),
            "frame ACK": frame_ack, "frame PUSHB 1000": lambda: pack_pushb(jobs)}


def alternating_ratio(slow, fast, rounds: int = ROUNDS) -> float:
    """min time of ``slow`` over min time of ``fast``, timed alternately (see above)."""
    import time

    best = {0: float("inf"), 1: float("inf")}
    for index in range(rounds):
        for side in ((0, 1) if index % 2 else (1, 0)):
            fn = slow if side == 0 else fast
            started = time.perf_counter()
            fn()
            best[side] = min(best[side], time.perf_counter() - started)
    return best[0] / best[1]


COMPARISONS = {  # name: (operation, slow impl, fast impl)
    "parse FETCH compiled/pure": ("parse FETCH", "python", "cython"),
    "parse +OK compiled/pure": ("parse +OK", "python", "cython"),
    "parse FETCH compiled/hiredis": ("parse FETCH", "hiredis", "cython"),
    "parse +OK compiled/hiredis": ("parse +OK", "hiredis", "cython"),
    "frame ACK compiled/pure": ("frame ACK", "python", "cython"),
    "frame PUSHB compiled/pure": ("frame PUSHB 1000", "python", "cython"),
}


@pytest.mark.parametrize("comparison", list(COMPARISONS))
def test_codec_ratio(benchmark, record_figure, comparison: str) -> None:
    """One gated ratio: how many times faster the compiled codec is, alternately timed."""
    operation, slow, fast = COMPARISONS[comparison]
    slow_fn, fast_fn = _workloads(slow)[operation], _workloads(fast)[operation]
    for _ in range(3):  # warm-up
        slow_fn()
        fast_fn()
    result: list[float] = []
    benchmark.group = "codec: alternating ratios"
    benchmark.pedantic(lambda: result.append(alternating_ratio(slow_fn, fast_fn)), rounds=1, iterations=1)
    record_figure(comparison, result[0])
    benchmark.extra_info["ratio"] = result[0]


# Bounds: measured over 5 runs on this 2-core machine (min / median / max); each bound sits
# below the lowest run and above 0.75x the median, so a compiled codec 25% slower fails.
BENCHMARK_GATES = [
    {"name": "parse FETCH: compiled >= 16x pure", "figure": "parse FETCH compiled/pure",
     "by": "test_codec_ratio[parse FETCH compiled/pure]", "min": 16.0,
     "note": "19.1 / 20.7 / 25.6 (0.75x median = 15.5)"},
    {"name": "parse +OK: compiled >= 11.5x pure", "figure": "parse +OK compiled/pure",
     "by": "test_codec_ratio[parse +OK compiled/pure]", "min": 11.5,
     "note": "13.9 / 14.4 / 17.1 (0.75x median = 10.8)"},
    {"name": "parse FETCH: compiled >= 1.65x hiredis", "figure": "parse FETCH compiled/hiredis",
     "by": "test_codec_ratio[parse FETCH compiled/hiredis]", "min": 1.65,
     "note": "1.86 / 2.12 / 2.24 (0.75x median = 1.59)"},
    {"name": "parse +OK: compiled >= 2.65x hiredis", "figure": "parse +OK compiled/hiredis",
     "by": "test_codec_ratio[parse +OK compiled/hiredis]", "min": 2.65,
     "note": "3.16 / 3.39 / 3.47 (0.75x median = 2.54)"},
    {"name": "frame ACK: compiled >= 4.5x pure", "figure": "frame ACK compiled/pure",
     "by": "test_codec_ratio[frame ACK compiled/pure]", "min": 4.5,
     "note": "5.39 / 5.72 / 5.76 (0.75x median = 4.29)"},
    {"name": "frame PUSHB of 1000: compiled >= 5x pure", "figure": "frame PUSHB compiled/pure",
     "by": "test_codec_ratio[frame PUSHB compiled/pure]", "min": 5.0,
     "note": "6.23 / 6.41 / 6.68 (0.75x median = 4.81)"},
]
