"""The embedded server under hostile traffic over TCP, while a well-behaved client measures
its own latency: no case may stall the others.

The server runs in a child process (in memory).  A good client sends INFO in a loop (one
at a time) for the whole run and records how long each took; meanwhile the cases below
run one after another, each on connections of its own, and the figure gated is the good
client's worst INFO during any case (and the case it happened in):

* random byte lines, and mutated valid commands (PUSH with broken JSON, bad verbs...);
* one 10 MB malformed PUSH line;
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
     "figure": "10 MB malformed PUSH ms", "by": "test_fuzz_server", "max": 100.0,
     "note": "issue 10's target; 3 runs: 66.9 / 68.4 / 72.8 ms"},
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
    record_figure("10 MB malformed PUSH ms", results["10 MB malformed PUSH"][0])
    benchmark.extra_info.update({"cases": results, "worst case": worst_case})
