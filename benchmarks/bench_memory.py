"""Memory that does not grow with the input: ``push_bulk`` of a million jobs from a generator.

A fresh child process imports the library, notes its resident size, then ``push_bulk``s
``MILLION`` jobs produced by a generator to the embedded server in another child process,
while a thread samples its resident size every 5 ms; the figure is the peak's growth.  ``push_bulk``
holds only the chunks in flight (4 of 1,000 jobs by default), so the growth is a few MB
whatever the input's size; a ``push_bulk`` that listed its input first would need about
a kilobyte per job (a gigabyte here).  A figure the machine's speed cannot move: gated
directly.

Run: ``python -m pytest benchmarks/bench_memory.py --benchmark-only``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Iterator

import pytest

from faktory.server import ServerProcess

MILLION = int(os.environ.get("FAKTORY_BENCH_MILLION", "1000000"))

BENCHMARK_GATES = [
    {"name": "push_bulk of 1,000,000 jobs from a generator: peak RSS growth <= 8 MB",
     "figure": "push_bulk peak RSS growth MB", "by": "test_push_bulk_memory", "max": 8.0,
     "note": "5 runs: 2.3 / 2.3 / 2.4 MB (the 4 chunks in flight); twice the chunks in flight, or "
             "listing the input (~1 GB), fails"},
]

_CHILD = r"""
import asyncio, json, sys, threading, time
from faktory import Client, Job
from faktory.rss import rss_kb

class Sampler(threading.Thread):
    # The resident size now, every 5 ms: its peak during the push (ru_maxrss would also
    # count whatever peak came before).
    def __init__(self):
        super().__init__(daemon=True)
        self.peak = rss_kb()
        self.done = threading.Event()
    def run(self):
        while not self.done.wait(0.005):
            self.peak = max(self.peak, rss_kb())

async def main(url, count):
    async with Client(url) as client:
        await client.info()
        start = rss_kb()
        sampler = Sampler()
        sampler.start()
        began = time.perf_counter()
        rejected = await client.push_bulk(Job("noop", n, "some payload text", queue="bulkmem", retry=0)
                                          for n in range(count))
        seconds = time.perf_counter() - began
        sampler.done.set()
        sampler.join()
        assert not rejected
        size = (await client.info())["faktory"]["queues"]["bulkmem"]
        await client.queue_remove("bulkmem")
    print(json.dumps({"start_mb": start / 1024, "peak_mb": max(sampler.peak, rss_kb()) / 1024, "queued": size,
                      "seconds": seconds}))

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""

_FIGURES: dict[str, float] = {}


def benchmark_report() -> list[str]:
    if not _FIGURES:
        return []
    return [f"push_bulk of {MILLION:,} jobs from a generator: RSS {_FIGURES['start_mb']:.0f} MB -> peak "
            f"{_FIGURES['peak_mb']:.0f} MB (+{_FIGURES['peak_mb'] - _FIGURES['start_mb']:.1f} MB), "
            f"{MILLION / _FIGURES['seconds']:,.0f} jobs/s"]


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    with ServerProcess() as srv:
        yield srv.url


def test_push_bulk_memory(benchmark, record_figure, server_url: str) -> None:
    """Peak RSS of a child process pushing a million generated jobs."""
    result: dict[str, float] = {}

    def measure() -> None:
        proc = subprocess.run([sys.executable, "-c", _CHILD, server_url, str(MILLION)], capture_output=True,
                              text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
        result.update(json.loads(proc.stdout.strip().splitlines()[-1]))

    benchmark.group = "memory"
    benchmark.pedantic(measure, rounds=1, iterations=1)
    assert result["queued"] == MILLION
    _FIGURES.update(result)
    record_figure("push_bulk peak RSS growth MB", result["peak_mb"] - result["start_mb"])
    benchmark.extra_info.update(result)
