"""The embedded server under hostile traffic over TCP, while a well-behaved client measures
its own latency: no case may stall the others.

The server runs in a child process (in memory).  A good client sends INFO in a loop (one
at a time) for the whole run and records how long each took; meanwhile the cases below
run one after another, each on connections of its own, and the figure gated is the good
client's worst INFO during any case (and the case it happened in):

* random byte lines, and mutated valid commands (PUSH with broken JSON, bad verbs...);
* one 10 MB malformed PUSH line, and 10 MB lines of other shapes (below): numbers, strings,
  nested arrays and objects, 300 and 450 levels deep, cut off at the end, each with its
  syntax error at the very end (the whole line must be read to find it), valid JSON that is
  not a valid job, valid jobs whose 10 MB are one argument or 900 levels deep, and a valid
  10 MB PUSHB;
* one PUSHB of 20,000 jobs, and 10,000 pipelined INFO commands;
* 1,000 connections opened at once, then dropped;
* slowloris: 200 connections each dribbling a command a byte at a time;
* 10 connections each holding an unterminated 8 MB line.

Run: ``python -m pytest benchmarks/bench_fuzz_server.py --benchmark-only``.
"""
from __future__ import annotations

import asyncio
import json
import multiprocessing
import random
import time
from typing import Any, Awaitable, Callable, Iterator

import pytest

import pairs
from faktory.client import Client
from faktory.server import ServerProcess

SEED = 20261201

BENCHMARK_GATES = [
    {"name": "fuzzed server: a good client's worst INFO during any case <= 150 ms",
     "figure": "worst good-client INFO ms", "by": "test_fuzz_server", "max": 150.0,
     "note": "3 runs: 66.9 / 68.4 / 72.8 ms, always the 10 MB line (before the server sliced its "
             "work: 3,079 ms, at 10,000 pipelined INFO); wall-clock, so the bound keeps 2x room"},
    {"name": "fuzzed server: a 10 MB malformed line delays another client's INFO < 100 ms",
     "figure": "worst 10 MB malformed line ms", "by": "test_fuzz_server", "max": 100.0,
     "note": "issue 10's bound, the worst of the seven malformed 10 MB shapes (each in the report); "
             "3 runs before the sliced parse of big lines: 5,088 / 3,108 / 4,661 ms (nested, error "
             "at the end); after, at load 2-3: 17-43 ms"},
    {"name": "fuzzed server: a valid 10 MB job (one list argument, 900 levels deep) delays another client's INFO < 100 ms",
     "figure": "worst valid 10 MB job ms", "by": "test_fuzz_server", "max": 100.0,
     "note": "issue 10's 100 ms, as for a malformed line: before they were normalised in steps, "
             "1,258 ms (one list argument) and 1,481 ms (900 deep, which then failed with an internal "
             "error) at load 2-3; 99-170 ms on a later machine, where growing the normalised list in "
             "one step (118 ms: the kernel's pages for its array) and decoding 64 KB per step (20-30 "
             "ms) were the longest steps; 31-47 ms over 3 runs since both are spread over steps"},
    {"name": "fuzzed server: a valid 10 MB PUSHB delays another client's INFO < 100 ms",
     "figure": "10 MB PUSHB ms", "by": "test_fuzz_server", "max": 100.0,
     "note": "issue 10's 100 ms, as for a malformed line: 332-656 ms before the sliced parse, "
             "78-109 ms with the cyclic GC held off during the command, 9-30 ms since the stored "
             "jobs are untracked by the GC and the decoded ones freed in slices (one full run: 30.1)"},
]

_FIGURES: dict[str, Any] = {}


def benchmark_report() -> list[str]:
    if not _FIGURES:
        return []
    lines = [f"{'fuzz case':<34}{'good client worst INFO ms':>27}{'median ms':>11}"]
    for case, (worst, median) in _FIGURES["cases"].items():
        lines.append(f"{case:<34}{worst:>27.1f}{median:>11.2f}")
    return lines


async def _raw(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await reader.readline()  # +HI
    writer.write(b'HELLO {"v":2}\r\n')
    await reader.readline()
    return reader, writer


async def _random_lines(port: int, rng: random.Random) -> None:
    reader, writer = await _raw(port)
    for _ in range(2000):
        line = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200))).replace(b"\n", b"")
        writer.write(line + b"\r\n")
    writer.write(b"END\r\n")
    await writer.drain()
    writer.close()


async def _mutated(port: int, rng: random.Random) -> None:
    reader, writer = await _raw(port)
    good = json.dumps({"jid": "fuzzfuzz01", "jobtype": "X", "args": [1, "a", {"b": None}], "queue": "q"})
    for _ in range(2000):
        chars = list(good)
        for _ in range(rng.randrange(1, 6)):
            chars[rng.randrange(len(chars))] = chr(rng.randrange(32, 127))
        verb = rng.choice(["PUSH", "PUSHB", "ACK", "FAIL", "BEAT", "MUTATE", "QUEUE", "push", "FETCH"])
        writer.write(f"{verb} {''.join(chars)}\r\n".encode())
    writer.write(b"END\r\n")
    await writer.drain()
    writer.close()


async def _huge_malformed(port: int, rng: random.Random) -> None:
    reader, writer = await _raw(port)
    writer.write(b'PUSH {"jid":"' + b"x" * (10 * 1024 * 1024) + b'\r\n')
    await writer.drain()
    await reader.readline()
    writer.close()


MB10 = 10 * 1024 * 1024


def _fill(unit: bytes) -> bytes:
    return unit * (MB10 // len(unit))


#: 10 MB lines, each the whole of its case's traffic: the reply the server must give
HUGE_LINES: dict[str, tuple[bytes, bytes]] = {
    "10 MB numbers, error at end": (
        b'PUSH {"jid":"huge-numbers","jobtype":"X","args":[' + _fill(b"12345.678e-3,-98765,0.5,7,") + b"1,]}",
        b"-ERR invalid JSON: invalid character ']' looking for beginning of value\r\n"),
    "10 MB strings, error at end": (
        b'PUSH {"jid":"huge-strings","jobtype":"X","args":[' + _fill(b'"abc\\u00e9\\n def \xc3\xa9 xyz",')
        + b'"x" "y"]}',
        b"-ERR invalid JSON: invalid character '\"' after array element\r\n"),
    "10 MB nested, error at end": (
        b'PUSH {"jid":"huge-nested","jobtype":"X","args":['
        + _fill(b'{"a":[{"b":[1,{"c":"d"}]},[[[]]]],"e":{"f":{"g":null}}},') + b'{"a":[}]}',
        b"-ERR invalid JSON: invalid character '}' looking for beginning of value\r\n"),
    "10 MB 300 levels deep, error at end": (
        b'PUSH {"jid":"huge-deep","jobtype":"X","args":' + b'[{"k":' * 150 + b"[" + _fill(b"[[1,2],{}],")
        + b"nul]" + b"}]" * 150 + b"}",
        b"-ERR invalid JSON: invalid character ']' in literal null (expecting 'l')\r\n"),
    "10 MB 450 levels deep, error at end": (
        b'PUSH {"jid":"huge-deeper","jobtype":"X","args":' + b"[" * 450 + _fill(b"1.5,") + b"0" + b"]" * 449
        + b"}}",
        b"-ERR invalid JSON: invalid character '}' after array element\r\n"),
    "10 MB cut off at the end": (
        b'PUSH {"jid":"huge-cut-off","jobtype":"X","args":[' + _fill(b'1,"two",{"three":[3.0,true,null]},')
        + b"4]",
        b"-ERR invalid JSON: unexpected end of JSON input\r\n"),
    "10 MB valid JSON, no jobtype": (
        b'PUSH {"jid":"huge-no-jobtype","args":[' + _fill(b'123456,"abcdef",') + b"0]}",
        b"-ERR jobs must have a jobtype parameter\r\n"),
    # valid jobs, stored (a queue of their own, removed after): the big part nested
    "10 MB job, one argument a list": (
        b'PUSH {"jid":"huge-one-arg","jobtype":"X","queue":"fuzzhuge","args":[[' + _fill(b"1.5,") + b"0]]}",
        b"+OK\r\n"),
    "10 MB job, 900 levels deep": (
        b'PUSH {"jid":"huge-900-deep","jobtype":"X","queue":"fuzzhuge","args":' + b"[" * 900
        + _fill(b"1.5,") + b"0" + b"]" * 900 + b"}",
        b"+OK\r\n"),
}


def _huge_line(name: str) -> Callable[[int, random.Random], Awaitable[None]]:
    line, expected = HUGE_LINES[name]

    async def case(port: int, rng: random.Random) -> None:
        reader, writer = await _raw(port)
        writer.write(line + b"\r\n")
        await writer.drain()
        reply = await reader.readline()
        assert reply == expected, (name, reply[:200])
        if reply == b"+OK\r\n":
            writer.write(b"QUEUE REMOVE fuzzhuge\r\n")
            await reader.readline()
        writer.close()
    return case


def pushb_10mb() -> bytes:
    """A valid PUSHB line of about 10 MB (100,000 jobs of about 100 bytes)."""
    jobs = [{"jid": f"bulk{i:012d}", "jobtype": "X", "args": [i, "abcdefghij" * 3], "queue": "fuzzbulk"}
            for i in range(MB10 // 105)]
    return b"PUSHB " + json.dumps(jobs).encode()


async def _pushb_10mb(port: int, rng: random.Random) -> None:
    line = pushb_10mb()
    reader, writer = await _raw(port)
    writer.write(line + b"\r\n")
    await writer.drain()
    assert await reader.readline() == b"$2\r\n"
    await reader.readline()
    writer.write(b"QUEUE REMOVE fuzzbulk\r\n")
    await reader.readline()
    writer.close()


async def _big_pushb(port: int, rng: random.Random) -> None:
    jobs = [{"jid": f"big{i:012d}", "jobtype": "X", "args": [i], "queue": "fuzzbig"} for i in range(20_000)]
    reader, writer = await _raw(port)
    writer.write(b"PUSHB " + json.dumps(jobs).encode() + b"\r\n")
    await writer.drain()
    await reader.readline()
    await reader.readline()
    writer.write(b"QUEUE REMOVE fuzzbig\r\n")
    await reader.readline()
    writer.close()


async def _pipelined_info(port: int, rng: random.Random) -> None:
    reader, writer = await _raw(port)
    writer.write(b"INFO\r\n" * 10_000)
    await writer.drain()
    for _ in range(10_000):
        await reader.readline()
        await reader.readline()
    writer.close()


async def _many_connections(port: int, rng: random.Random) -> None:
    conns = await asyncio.gather(*(asyncio.open_connection("127.0.0.1", port) for _ in range(1000)),
                                 return_exceptions=True)
    await asyncio.sleep(0.2)
    for item in conns:
        if isinstance(item, tuple):
            item[1].transport.abort()


async def _slowloris(port: int, rng: random.Random) -> None:
    conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(200)]
    for index in range(len(b'HELLO {"v":2}\r\n')):
        for _, writer in conns:
            writer.write(b'HELLO {"v":2}\r\n'[index:index + 1])
        await asyncio.sleep(0.05)
    for _, writer in conns:
        writer.transport.abort()


async def _unterminated(port: int, rng: random.Random) -> None:
    conns = [await _raw(port) for _ in range(10)]
    for _, writer in conns:
        writer.write(b"PUSH " + b"y" * (8 * 1024 * 1024))
    await asyncio.gather(*(writer.drain() for _, writer in conns), return_exceptions=True)
    await asyncio.sleep(0.5)
    for _, writer in conns:
        writer.transport.abort()


CASES: dict[str, Callable[[int, random.Random], Awaitable[None]]] = {
    "random byte lines": _random_lines,
    "mutated commands": _mutated,
    "10 MB malformed PUSH": _huge_malformed,
    **{name: _huge_line(name) for name in HUGE_LINES},
    "10 MB PUSHB": _pushb_10mb,
    "PUSHB of 20,000 jobs": _big_pushb,
    "10,000 pipelined INFO": _pipelined_info,
    "1,000 connections at once": _many_connections,
    "slowloris x200": _slowloris,
    "10 unterminated 8 MB lines": _unterminated,
}


def _attack(name: str, port: int) -> None:
    # In a child process: the attacker's own CPU is not the good client's.
    asyncio.run(asyncio.wait_for(CASES[name](port, random.Random(SEED)), 120))


async def fuzz_round(url: str, port: int) -> dict[str, tuple[float, float]]:
    context = multiprocessing.get_context("spawn")
    loop = asyncio.get_running_loop()
    results: dict[str, tuple[float, float]] = {}
    async with Client(url) as good:
        await good.info()
        for name in CASES:
            latencies: list[float] = []
            process = context.Process(target=_attack, args=(name, port), daemon=True)
            process.start()
            ended = loop.run_in_executor(None, process.join, 150)
            while not ended.done():
                started = time.perf_counter()
                await good.info()
                latencies.append(time.perf_counter() - started)
            await ended
            if process.is_alive():  # pragma: no cover - a case that hangs
                process.kill()
                process.join()
            latencies.sort()
            results[name] = (latencies[-1] * 1000, latencies[len(latencies) // 2] * 1000)
    return results


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with ServerProcess() as srv:
        yield srv


def test_fuzz_server(benchmark, record_figure, server: ServerProcess) -> None:
    """The good client's latency through every hostile case."""
    port = int(server.url.rsplit(":", 1)[1])
    results: dict[str, tuple[float, float]] = {}
    benchmark.pedantic(lambda: results.update(pairs.run(lambda: fuzz_round(server.url, port))),
                       rounds=1, iterations=1)
    _FIGURES["cases"] = results
    worst_case = max(results, key=lambda name: results[name][0])
    record_figure("worst good-client INFO ms", results[worst_case][0])
    record_figure("worst 10 MB malformed line ms",
                  max(results[name][0] for name in results if name.startswith("10 MB") and name != "10 MB PUSHB"
                      and HUGE_LINES.get(name, (b"", b""))[1] != b"+OK\r\n"))
    record_figure("worst valid 10 MB job ms",
                  max(results[name][0] for name, (_, reply) in HUGE_LINES.items() if reply == b"+OK\r\n"))
    record_figure("10 MB PUSHB ms", results["10 MB PUSHB"][0])
    benchmark.extra_info.update({"cases": results, "worst case": worst_case})
